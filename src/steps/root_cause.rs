//! The first error in a process's log: what a failing step names as the root cause, instead of
//! only the last lines (a vLLM server that dies logs the real exception first and ends with
//! "Engine core initialization failed. See root cause above" or an HTTP 500 per request).
//!
//! Understands Python tracebacks (the exception line that ends the first traceback), vLLM's line
//! prefixes (`(EngineCore_DP0 pid=42) ERROR 12-01 10:00:00 [core.py:710] `), and plain
//! `name: error: message` lines of Forge's own launchers.

use std::path::Path;

/// Longest root-cause text shown, in characters.
const MAX_CHARS: usize = 400;

/// The first error of a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootCause {
    /// 1-based line number in the log.
    pub line: usize,
    /// The error, without vLLM's prefixes.
    pub text: String,
}

/// The first error in the log file at `path`, if it has one.
pub fn in_file(path: &Path) -> Option<RootCause> {
    let bytes = std::fs::read(path).ok()?;
    first_error(&String::from_utf8_lossy(&bytes))
}

/// `service `id` failed: <first error> (`log` line N)`, when the service's log has an error.
pub fn service_failure(id: &str, log: &Path) -> Option<String> {
    let cause = in_file(log)?;
    Some(format!(
        "service `{id}` failed: {} (`{}` line {})",
        cause.text,
        log.display(),
        cause.line
    ))
}

/// The first error in `log`: the exception that ends the first Python traceback, else the first
/// `ERROR`-level or `: error:` line.
pub fn first_error(log: &str) -> Option<RootCause> {
    let lines: Vec<&str> = log.lines().map(strip_prefixes).collect();
    let traceback = lines
        .iter()
        .position(|l| l.starts_with("Traceback (most recent call last)"));
    if let Some(start) = traceback {
        let found = lines[start + 1..].iter().enumerate().find(|(_, l)| {
            !l.is_empty()
                && !l.starts_with(char::is_whitespace)
                && !l.starts_with("Traceback")
                && !l.starts_with('^')
                && !l.starts_with('~')
        });
        if let Some((offset, text)) = found {
            return Some(cause(start + 1 + offset, text));
        }
    }
    log.lines().enumerate().find_map(|(index, raw)| {
        let text = strip_prefixes(raw);
        let error_level = strip_origin(raw).unwrap_or(raw).starts_with("ERROR ");
        (error_level || text.contains(": error: ")).then(|| cause(index, text))
    })
}

fn cause(index: usize, text: &str) -> RootCause {
    let mut text = text.trim().to_string();
    if text.chars().count() > MAX_CHARS {
        text = text.chars().take(MAX_CHARS).collect::<String>() + "...";
    }
    RootCause {
        line: index + 1,
        text,
    }
}

/// `(EngineCore_DP0 pid=42) ` -> the rest; other lines unchanged.
fn strip_origin(line: &str) -> Option<&str> {
    let rest = line.strip_prefix('(')?;
    let (inside, after) = rest.split_once(") ")?;
    inside.contains("pid=").then_some(after)
}

/// Removes vLLM's process origin and `LEVEL MM-DD HH:MM:SS [file.py:N] ` prefixes.
fn strip_prefixes(line: &str) -> &str {
    let line = strip_origin(line).unwrap_or(line);
    let Some((level, rest)) = line.split_once(' ') else {
        return line;
    };
    if !matches!(level, "DEBUG" | "INFO" | "WARNING" | "ERROR" | "CRITICAL") {
        return line;
    }
    match rest.split_once("] ") {
        Some((stamp, message)) if stamp.contains('[') && stamp.len() < 80 => message,
        Some((stamp, "")) if stamp.contains('[') => "",
        _ if rest.ends_with(']') && rest.len() < 80 => "",
        _ => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of vLLM 0.32's log when the engine dies on the first request on an AVX2 CPU
    /// (shared/reference/cpu-rehearsal.md), shortened.
    const ENGINE_DEATH: &str = "\
INFO 12-01 10:00:00 [api_server.py:100] vLLM API server version 0.32.0
(EngineCore_DP0 pid=42) WARNING 12-01 10:00:01 [cpu.py:650] Failed to create oneDNN linear
(EngineCore_DP0 pid=42) ERROR 12-01 10:00:05 [core.py:710] EngineCore encountered a fatal error.
(EngineCore_DP0 pid=42) ERROR 12-01 10:00:05 [core.py:710] Traceback (most recent call last):
(EngineCore_DP0 pid=42) ERROR 12-01 10:00:05 [core.py:710]   File \"/env/vllm/v1/engine/core.py\", line 701, in run_engine_core
(EngineCore_DP0 pid=42) ERROR 12-01 10:00:05 [core.py:710]     engine_core.run_busy_loop()
(EngineCore_DP0 pid=42) ERROR 12-01 10:00:05 [core.py:710]     ~~~~~~~~~~~~~~~~~~~~~~~~~^^
(EngineCore_DP0 pid=42) ERROR 12-01 10:00:05 [core.py:710] AttributeError: '_OpNamespace' '_C' object has no attribute 'cpu_gemm_wna16'
ERROR 12-01 10:00:05 [async_llm.py:500] AsyncLLM output_handler failed.
Traceback (most recent call last):
  File \"/env/vllm/v1/engine/async_llm.py\", line 480, in output_handler
vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue. See stack trace (above) for the root cause.
";

    #[test]
    fn the_first_traceback_names_the_root_cause() {
        let cause = first_error(ENGINE_DEATH).expect("a traceback");
        assert_eq!(
            cause.text,
            "AttributeError: '_OpNamespace' '_C' object has no attribute 'cpu_gemm_wna16'"
        );
        assert_eq!(cause.line, 8);
    }

    #[test]
    fn without_a_traceback_the_first_error_line() {
        let log = "vllm_serve: exec python -m vllm\nvllm_serve: error: port 8099 on 127.0.0.1 is not free\n";
        let cause = first_error(log).expect("an error line");
        assert_eq!(cause.line, 2);
        assert!(cause.text.starts_with("vllm_serve: error: port 8099"));
        let vllm = "INFO 12-01 10:00:00 [a.py:1] up\nERROR 12-01 10:00:01 [b.py:2] out of memory\n";
        assert_eq!(
            first_error(vllm).map(|c| c.text).as_deref(),
            Some("out of memory")
        );
    }

    #[test]
    fn a_clean_log_has_no_root_cause() {
        let log = "INFO 12-01 10:00:00 [api_server.py:100] started\nWARNING 12-01 [x.py:1] slow\n";
        assert_eq!(first_error(log), None);
        assert_eq!(first_error(""), None);
    }

    #[test]
    fn long_errors_are_cut() {
        let log = format!(
            "Traceback (most recent call last):\n  x\nValueError: {}\n",
            "v".repeat(900)
        );
        let cause = first_error(&log).expect("a traceback");
        assert!(cause.text.ends_with("...") && cause.text.chars().count() == MAX_CHARS + 3);
    }
}
