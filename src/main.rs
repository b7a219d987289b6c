//! The `forge` binary: parses the arguments and hands them to `forge::run`.
use clap::Parser;

fn main() {
    // Die quietly on a closed pipe (`forge plan ... | head`), as command-line tools do.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = forge::cli::Cli::parse();
    std::process::exit(forge::run(cli));
}
