//! Time as text: the manifest's duration syntax (`90s`, `10m`, `1h 30m`), how Forge prints a
//! duration, and the RFC 3339 timestamps it writes. The clock and the calendar are jiff's.
//!
//! Durations are parsed and printed here, not by jiff, because the manifest's syntax is
//! humantime 2.4's (Forge's original parser) and jiff's "friendly" format accepts other inputs:
//! jiff rejects `0`, `1M` (a month), `1 0s` (digits split by spaces), `1.5h 30m` (a fraction
//! before another unit) and days or longer in a fixed duration, and it accepts `PT1H` and `-1s`.
//! Its error messages differ too, and the manifest's are pinned by snapshots. This module keeps
//! humantime's grammar, arithmetic (a month is 30.44 days, a year 365.25 days), printing and
//! error messages exactly (the tests below were recorded from humantime 2.4.0), so what a user
//! can write did not change when humantime went.

use std::str::Chars;
use std::time::{Duration, SystemTime};

/// Why a duration does not parse. The messages are humantime 2.4's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// A character that is neither a digit, a letter, `µ`, `.` nor whitespace (a byte offset).
    #[error("invalid character at {0}")]
    InvalidCharacter(usize),
    /// Something other than a number where a number must start (a byte offset).
    #[error("expected number at {0}")]
    NumberExpected(usize),
    /// A number with no unit after it.
    #[error("time unit needed, for example {0}sec or {0}ms")]
    UnitNeeded(u64),
    /// A unit that is not one of the known names.
    #[error(
        "unknown time unit {0:?}, supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations)"
    )]
    UnknownUnit(String),
    /// Too large, or a fraction finer than a nanosecond.
    #[error(
        "number is too large or cannot be represented without a lack of precision (values below 1ns are not supported)"
    )]
    NumberOverflow,
    /// Empty or only whitespace.
    #[error("value was empty")]
    Empty,
}

/// Parses a duration: numbers each followed by a unit (`1h 30m`, `90s`, `1.5h`, `250ms`).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    Parser {
        iter: text.chars(),
        text,
    }
    .parse()
}

/// Prints a duration the way the manifest writes one (`1h 30m`, `10s`, `1day 2h`, `0s`).
pub fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    let nanos = u64::from(duration.subsec_nanos());
    if secs == 0 && nanos == 0 {
        return "0s".to_string();
    }
    let in_year = secs % YEAR_S;
    let in_month = in_year % MONTH_S;
    let in_day = in_month % DAY_S;
    let parts = [
        (secs / YEAR_S, "year", true),
        (in_year / MONTH_S, "month", true),
        (in_month / DAY_S, "day", true),
        (in_day / 3600, "h", false),
        (in_day % 3600 / 60, "m", false),
        (in_day % 60, "s", false),
        (nanos / 1_000_000, "ms", false),
        (nanos / 1000 % 1000, "us", false),
        (nanos % 1000, "ns", false),
    ];
    let words: Vec<String> = parts
        .iter()
        .filter(|(value, _, _)| *value > 0)
        .map(|&(value, unit, plural)| {
            let s = if plural && value > 1 { "s" } else { "" };
            format!("{value}{unit}{s}")
        })
        .collect();
    words.join(" ")
}

/// A time as RFC 3339 in UTC, whole seconds (`2026-05-01T12:00:00Z`).
pub fn rfc3339(time: SystemTime) -> String {
    let at =
        jiff::Timestamp::try_from(time).expect("the clock reads a year between -9999 and 9999");
    format!("{at:.0}")
}

/// The current time as RFC 3339 in UTC, whole seconds.
pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

/// The current UTC time as `YYYYmmdd-HHMMSS` (vLLM's `bench serve` result `date`).
pub fn now_compact() -> String {
    jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S").to_string()
}

/// 365.25 days.
const YEAR_S: u64 = 31_557_600;
/// 30.44 days.
const MONTH_S: u64 = 2_630_016;
const DAY_S: u64 = 86_400;

/// A unit's size: sub-second units count nanoseconds, the others seconds.
#[derive(Clone, Copy)]
enum Unit {
    Nanos(u64),
    Seconds(u64),
}

impl Unit {
    fn named(name: &str) -> Option<Self> {
        Some(match name {
            "nanos" | "nsec" | "ns" => Unit::Nanos(1),
            "usec" | "us" | "µs" => Unit::Nanos(1000),
            "millis" | "msec" | "ms" => Unit::Nanos(1_000_000),
            "seconds" | "second" | "secs" | "sec" | "s" => Unit::Seconds(1),
            "minutes" | "minute" | "min" | "mins" | "m" => Unit::Seconds(60),
            "hours" | "hour" | "hr" | "hrs" | "h" => Unit::Seconds(3600),
            "days" | "day" | "d" => Unit::Seconds(DAY_S),
            "weeks" | "week" | "wk" | "wks" | "w" => Unit::Seconds(DAY_S * 7),
            "months" | "month" | "M" => Unit::Seconds(MONTH_S),
            "years" | "year" | "yr" | "yrs" | "y" => Unit::Seconds(YEAR_S),
            _ => return None,
        })
    }

    /// `whole` units plus `numerator / denominator` of one, as (seconds, nanoseconds).
    /// A fraction of a second or a minute counts in nanoseconds, of an hour or longer in whole
    /// seconds; either must divide exactly (humantime's rule).
    fn amount(self, whole: u64, fraction: Option<Fraction>) -> Result<[(u64, u64); 2], Error> {
        let integer = match self {
            Unit::Nanos(size) => (0, mul(whole, size)?),
            Unit::Seconds(size) => (mul(whole, size)?, 0),
        };
        let Some(Fraction {
            numerator: n,
            denominator: d,
        }) = fraction
        else {
            return Ok([integer, (0, 0)]);
        };
        let part = match self {
            Unit::Nanos(1) => return Err(Error::NumberOverflow),
            Unit::Nanos(size) => (0, div(mul(n, size)?, d)?),
            Unit::Seconds(size) if size <= 60 => (0, div(mul(n, size * 1_000_000_000)?, d)?),
            Unit::Seconds(size) => (div(mul(n, size)?, d)?, 0),
        };
        Ok([integer, part])
    }
}

type Error = DurationError;

fn mul(a: u64, b: u64) -> Result<u64, Error> {
    a.checked_mul(b).ok_or(Error::NumberOverflow)
}

fn add(a: u64, b: u64) -> Result<u64, Error> {
    a.checked_add(b).ok_or(Error::NumberOverflow)
}

fn div(a: u64, b: u64) -> Result<u64, Error> {
    if a.is_multiple_of(b) {
        Ok(a / b)
    } else {
        Err(Error::NumberOverflow)
    }
}

fn digit(c: char) -> u64 {
    u64::from(c) - u64::from('0')
}

fn is_unit_char(c: char) -> bool {
    c.is_ascii_alphabetic() || c == 'µ'
}

#[derive(Clone, Copy)]
struct Fraction {
    numerator: u64,
    denominator: u64,
}

/// humantime 2.4's parser, restructured: byte offsets in errors are the same as its.
struct Parser<'a> {
    iter: Chars<'a>,
    text: &'a str,
}

impl Parser<'_> {
    fn off(&self) -> usize {
        self.text.len() - self.iter.as_str().len()
    }

    fn parse(mut self) -> Result<Duration, Error> {
        let mut n = self.first_digit()?.ok_or(Error::Empty)?;
        let mut out = Duration::ZERO;
        loop {
            // The number: digits (spaces between them are skipped), then an optional fraction.
            let mut fraction = None;
            let mut off = self.off();
            while let Some(c) = self.iter.next() {
                match c {
                    '0'..='9' => n = add(mul(n, 10)?, digit(c))?,
                    c if c.is_whitespace() => {}
                    c if is_unit_char(c) => break,
                    '.' => {
                        fraction = Some(self.fraction(&mut off)?);
                        break;
                    }
                    _ => return Err(Error::InvalidCharacter(off)),
                }
                off = self.off();
            }
            // The unit: letters up to whitespace or the next number's first digit.
            let start = off;
            let mut end = self.off();
            let mut next = None;
            while let Some(c) = self.iter.next() {
                match c {
                    '0'..='9' => {
                        next = Some(digit(c));
                        break;
                    }
                    c if c.is_whitespace() => break,
                    c if is_unit_char(c) => {}
                    _ => return Err(Error::InvalidCharacter(end)),
                }
                end = self.off();
            }
            let name = &self.text[start..end];
            let unit = match Unit::named(name) {
                Some(unit) => unit,
                None if name.is_empty() => return Err(Error::UnitNeeded(n)),
                None => return Err(Error::UnknownUnit(name.to_string())),
            };
            for (secs, nanos) in unit.amount(n, fraction)? {
                out = plus(out, secs, nanos)?;
            }
            n = match next {
                Some(d) => d,
                None => match self.first_digit()? {
                    Some(d) => d,
                    None => return Ok(out),
                },
            };
        }
    }

    /// Skips whitespace to the first digit of a number; `None` at the end of the text.
    fn first_digit(&mut self) -> Result<Option<u64>, Error> {
        let off = self.off();
        for c in self.iter.by_ref() {
            match c {
                '0'..='9' => return Ok(Some(digit(c))),
                c if c.is_whitespace() => {}
                _ => return Err(Error::NumberExpected(off)),
            }
        }
        Ok(None)
    }

    /// The digits after a `.`; `off` follows the last character read.
    fn fraction(&mut self, off: &mut usize) -> Result<Fraction, Error> {
        let (mut numerator, mut denominator) = (0u64, 1u64);
        while let Some(c) = self.iter.next() {
            match c {
                '0'..='9' => {
                    denominator = mul(denominator, 10)?;
                    numerator = add(mul(numerator, 10)?, digit(c))?;
                }
                c if c.is_whitespace() => {}
                c if is_unit_char(c) => break,
                _ => return Err(Error::InvalidCharacter(*off)),
            }
            *off = self.off();
        }
        if denominator == 1 {
            // No digit after the `.` (`1.`).
            return Err(Error::InvalidCharacter(*off));
        }
        Ok(Fraction {
            numerator,
            denominator,
        })
    }
}

/// `out` plus `secs` seconds and `nanos` nanoseconds.
fn plus(out: Duration, secs: u64, nanos: u64) -> Result<Duration, Error> {
    let nanos = add(u64::from(out.subsec_nanos()), nanos)?;
    let secs = add(add(out.as_secs(), secs)?, nanos / 1_000_000_000)?;
    let nanos = u32::try_from(nanos % 1_000_000_000).expect("below one second");
    Ok(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error as the table writes it: the two long messages shortened.
    fn short(error: DurationError) -> String {
        match error {
            DurationError::UnknownUnit(unit) => format!("unknown:{unit}"),
            DurationError::NumberOverflow => "overflow".to_string(),
            other => other.to_string(),
        }
    }

    /// Every row was recorded from `humantime::parse_duration` 2.4.0, Forge's parser before this
    /// module: what it accepted, what it made of it, and its error.
    #[test]
    fn parses_exactly_what_humantime_parsed() {
        // An input, then `Ok((seconds, nanoseconds))` or the error.
        type Row = (&'static str, Result<(u64, u32), &'static str>);
        let table: &[Row] = &[
            ("0", Ok((0, 0))),
            ("90s", Ok((90, 0))),
            ("10m", Ok((600, 0))),
            ("1h 30m", Ok((5400, 0))),
            ("1h30m", Ok((5400, 0))),
            ("1 0s", Ok((10, 0))),
            ("10 s", Ok((10, 0))),
            ("1.5h", Ok((5400, 0))),
            ("0.5s", Ok((0, 500000000))),
            ("1.5h 30m", Ok((7200, 0))),
            ("2 hours", Ok((7200, 0))),
            ("1hour 12min 5s", Ok((4325, 0))),
            ("3 days", Ok((259200, 0))),
            ("1w", Ok((604800, 0))),
            ("2wk", Ok((1209600, 0))),
            ("1M", Ok((2630016, 0))),
            ("1 month", Ok((2630016, 0))),
            ("2years", Ok((63115200, 0))),
            ("1y", Ok((31557600, 0))),
            ("1yr", Ok((31557600, 0))),
            ("5mins", Ok((300, 0))),
            ("2hrs", Ok((7200, 0))),
            ("1hr", Ok((3600, 0))),
            ("250ms", Ok((0, 250000000))),
            ("1millis", Ok((0, 1000000))),
            ("3nanos", Ok((0, 3))),
            ("7ns", Ok((0, 7))),
            ("8us", Ok((0, 8000))),
            ("9µs", Ok((0, 9000))),
            ("4usec", Ok((0, 4000))),
            ("5msec", Ok((0, 5000000))),
            ("1sec", Ok((1, 0))),
            ("2secs", Ok((2, 0))),
            ("1second", Ok((1, 0))),
            ("3seconds", Ok((3, 0))),
            ("1minute", Ok((60, 0))),
            ("2minutes", Ok((120, 0))),
            ("00s", Ok((0, 0))),
            ("  5m  ", Ok((300, 0))),
            ("5m\t3s", Ok((303, 0))),
            ("1.000s", Ok((1, 0))),
            ("1.0000000001s", Err("overflow")),
            ("0.1ns", Err("overflow")),
            ("1.25m", Ok((75, 0))),
            ("0.5d", Ok((43200, 0))),
            ("0.0001h", Err("overflow")),
            ("1.5ms", Ok((0, 1500000))),
            ("0.0005s", Ok((0, 500000))),
            ("", Err("value was empty")),
            ("   ", Err("value was empty")),
            ("soon", Err("expected number at 0")),
            ("10 parsecs", Err("unknown:parsecs")),
            ("10", Err("time unit needed, for example 10sec or 10ms")),
            ("00", Err("time unit needed, for example 0sec or 0ms")),
            ("10 ", Err("time unit needed, for example 10sec or 10ms")),
            ("1.", Err("invalid character at 1")),
            ("1.s", Err("invalid character at 1")),
            ("1. s", Err("invalid character at 3")),
            ("1h x", Err("expected number at 3")),
            ("1h  x", Err("expected number at 3")),
            ("1h.5", Err("invalid character at 2")),
            ("1.5.5s", Err("invalid character at 3")),
            ("-1s", Err("expected number at 0")),
            ("+1s", Err("expected number at 0")),
            ("1h,30m", Err("invalid character at 2")),
            ("1H", Err("unknown:H")),
            ("1S", Err("unknown:S")),
            ("1Min", Err("unknown:Min")),
            ("PT1H", Err("expected number at 0")),
            ("1.3333333333s", Err("overflow")),
            ("99999999999999999999s", Err("overflow")),
            ("18446744073709551615h", Err("overflow")),
            ("18446744073709551615s", Ok((18446744073709551615, 0))),
            ("1.5ns", Err("overflow")),
            ("5 m s", Err("expected number at 4")),
            ("1hr30", Err("time unit needed, for example 30sec or 30ms")),
            ("m", Err("expected number at 0")),
            ("1h 30", Err("time unit needed, for example 30sec or 30ms")),
            ("1µ", Err("unknown:µ")),
            ("1_000s", Err("invalid character at 1")),
            ("١s", Err("expected number at 0")),
            ("1 h 30 m", Ok((5400, 0))),
            ("1h30m15s500ms", Ok((5415, 500000000))),
            ("1 .5s", Ok((1, 500000000))),
            ("1µs2", Err("time unit needed, for example 2sec or 2ms")),
            ("x1s", Err("expected number at 0")),
            (" x", Err("expected number at 0")),
            ("5m 3x", Err("unknown:x")),
            ("1mo", Err("unknown:mo")),
            ("1d 2h 3m 4s 5ms 6us 7ns", Ok((93784, 5006007))),
            ("999ms 1ms", Ok((1, 0))),
            ("1.5 s", Ok((1, 500000000))),
            ("2h!", Err("invalid character at 2")),
            ("1é", Err("invalid character at 1")),
        ];
        for (text, expected) in table {
            let got = parse_duration(text)
                .map(|d| (d.as_secs(), d.subsec_nanos()))
                .map_err(short);
            assert_eq!(got, expected.map_err(str::to_string), "{text:?}");
        }
    }

    #[test]
    fn long_messages_are_humantime_s() {
        assert_eq!(
            parse_duration("10 parsecs").unwrap_err().to_string(),
            "unknown time unit \"parsecs\", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations)"
        );
        assert_eq!(
            parse_duration("0.1ns").unwrap_err().to_string(),
            "number is too large or cannot be represented without a lack of precision (values below 1ns are not supported)"
        );
    }

    /// Recorded from `humantime::format_duration` 2.4.0.
    #[test]
    fn prints_what_humantime_printed() {
        let table: &[((u64, u32), &str)] = &[
            ((0, 0), "0s"),
            ((0, 1), "1ns"),
            ((90, 0), "1m 30s"),
            ((5400, 0), "1h 30m"),
            ((86400, 0), "1day"),
            ((90061, 500000000), "1day 1h 1m 1s 500ms"),
            ((2630016, 0), "1month"),
            (
                (71181771, 1001001),
                "2years 3months 2days 1h 2m 3s 1ms 1us 1ns",
            ),
            ((10, 0), "10s"),
            ((300, 0), "5m"),
            ((3600, 0), "1h"),
            ((0, 250000000), "250ms"),
            ((172800, 2000), "2days 2us"),
        ];
        for &((secs, nanos), expected) in table {
            let duration = Duration::new(secs, nanos);
            assert_eq!(format_duration(duration), expected);
            assert_eq!(
                parse_duration(expected),
                Ok(duration),
                "{expected} parses back"
            );
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc_in_whole_seconds() {
        let at = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 999_999_999);
        assert_eq!(rfc3339(at), "2023-11-14T22:13:20Z");
        assert_eq!(now_compact().len(), "20231114-221320".len());
    }
}
