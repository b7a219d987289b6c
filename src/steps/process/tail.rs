//! The last lines of a log, as a person reads them in an error message.

use std::path::Path;

/// Lines of a log quoted when a process fails.
pub const TAIL_LINES: usize = 20;

/// A line longer than this is cut (a progress bar or a JSON dump on one line).
const MAX_LINE_CHARS: usize = 400;

/// The last `n` lines of `log` (none when it cannot be read). See [`tail_from`].
pub fn tail(log: &Path, n: usize) -> Vec<String> {
    tail_from(log, 0, n).unwrap_or_default()
}

/// The last `n` lines of `log` from byte `offset` on: a line redrawn with `\r` (tqdm) keeps its
/// last state, blank lines are left out, and lines over 400 characters are cut.
pub fn tail_from(log: &Path, offset: u64, n: usize) -> std::io::Result<Vec<String>> {
    let bytes = std::fs::read(log)?;
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let text = String::from_utf8_lossy(&bytes[start..]);
    let kept: Vec<String> = text
        .lines()
        .map(|line| {
            line.rsplit('\r')
                .find(|part| !part.trim().is_empty())
                .unwrap_or("")
        })
        .filter(|line| !line.trim().is_empty())
        .map(|line| truncate(line, MAX_LINE_CHARS))
        .collect();
    Ok(kept[kept.len().saturating_sub(n)..].to_vec())
}

fn truncate(line: &str, max: usize) -> String {
    if line.chars().count() <= max {
        return line.to_string();
    }
    let mut cut: String = line.chars().take(max).collect();
    cut.push_str(" …");
    cut
}
