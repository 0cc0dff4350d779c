//! The `s2kit` command line: argument parsing, progress bars and printing only. All work is
//! done by the library.

mod cli;

use clap::Parser;

fn main() {
    s2kit::runtime::configure();
    let args = cli::Cli::parse();
    if let Err(err) = cli::run(args) {
        eprintln!("error: {err}");
        std::process::exit(1);
    }
}
