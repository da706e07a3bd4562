//! `ware`: the warefs command. It parses the command line and hands it to [`warefs::cli`],
//! which does everything else.
#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    warefs::cli::main(warefs::cli::Cli::parse())
}
