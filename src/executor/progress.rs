//! Progress on long work: one indicatif line per running step with its elapsed time on a
//! terminal; plain lines when stderr is not a terminal (CI logs).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where step progress goes.
#[derive(Clone)]
pub struct Progress {
    multi: Option<MultiProgress>,
}

impl Progress {
    /// Bars on a terminal, plain lines otherwise (or when `quiet`, nothing but failures).
    pub fn new() -> Self {
        let tty = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        Self {
            multi: tty.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
        }
    }

    /// A bar for a step that starts now (hidden when not on a terminal).
    pub fn start(&self, id: &str, what: &str) -> ProgressBar {
        match &self.multi {
            Some(multi) => {
                let bar = multi.add(ProgressBar::new_spinner());
                let style = ProgressStyle::with_template(
                    "{spinner:.cyan} {prefix:.bold} {elapsed:>4} {wide_msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
                bar.set_style(style);
                bar.set_prefix(id.to_string());
                bar.set_message(what.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            }
            None => {
                eprintln!("[forge] {id}: {what}");
                ProgressBar::hidden()
            }
        }
    }

    /// Prints a line above the bars (or plainly).
    pub fn line(&self, text: &str) {
        match &self.multi {
            Some(multi) => {
                let _ = multi.println(text);
            }
            None => eprintln!("[forge] {text}"),
        }
    }

    /// Ends a step's bar with a final line.
    pub fn finish(&self, bar: &ProgressBar, text: &str) {
        bar.finish_and_clear();
        self.line(text);
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}
