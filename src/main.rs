//! The `s2kit` command line: argument parsing, progress bars and printing only. All work is
//! done by the library.

mod cli;

use clap::Parser;

fn main() {
    // A closed pipe (`s2kit ... | head`) ends the process quietly, as it does every Unix
    // tool; Rust's default ignores SIGPIPE and then panics in `print!`.
    // SAFETY: resetting a signal to its default action, before any thread is started.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    s2kit::runtime::configure();
    let args = cli::Cli::parse();
    if let Err(err) = cli::run(args) {
        eprintln!("error: {err}");
        std::process::exit(1);
    }
}
