use clap::Parser;

fn main() {
    let cli = forge::cli::Cli::parse();
    std::process::exit(forge::run(cli));
}
