//! Forge: a declarative pipeline runner that answers "should I self-host an open LLM instead of
//! paying for an API?" with numbers that trace back to files.
pub mod cache;
pub mod cli;
pub mod commands;
pub mod estimate;
pub mod executor;
pub mod fsutil;
pub mod gate;
pub mod graph;
pub mod host;
pub mod manifest;
pub mod plan;
pub mod preflight;
pub mod remote;
pub mod results;
pub mod steps;
pub mod time;

use clap::CommandFactory;

/// Runs the CLI with parsed arguments and returns the process exit code.
pub fn run(cli: cli::Cli) -> i32 {
    use cli::Command;
    let result = match &cli.command {
        Command::Run(args) => commands::run(args),
        Command::Plan(args) => commands::plan(args),
        Command::Preflight(args) => commands::preflight(args),
        Command::Graph(args) => commands::graph(args),
        Command::Show(args) => commands::show(args),
        Command::Clean(args) => commands::clean(args),
        Command::Bench(args) => commands::bench(args.as_ref()),
        Command::Profiles(args) => commands::profiles(args),
        Command::Compare(args) => commands::compare(args),
        Command::Completions(args) => {
            clap_complete::generate(
                args.shell,
                &mut cli::Cli::command(),
                "forge",
                &mut std::io::stdout(),
            );
            Ok(0)
        }
    };
    match result {
        Ok(code) => code,
        Err(failure) => {
            eprint!("{}", failure.message);
            if !failure.message.ends_with('\n') {
                eprintln!();
            }
            failure.code
        }
    }
}
