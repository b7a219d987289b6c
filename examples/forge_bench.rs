//! Development entry point for `forge bench` until the lead wires it into the CLI:
//! `cargo run --example forge_bench -- --url http://127.0.0.1:8101 --dataset data/sharegpt-sample.json ...`

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: forge::steps::bench::BenchArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match forge::steps::bench::run_adhoc(cli.args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
