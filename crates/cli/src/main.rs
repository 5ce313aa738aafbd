//! `sts`: issue, decode and verify STS (IEC 62055-41) prepaid tokens from the command line.
//!
//! A thin shell over `sts-core` and `sts-conformance`: argument parsing, key material from
//! files or the environment (never from the command line), and output for people or, with
//! `--json`, for programs. Exit codes: 0 success, 1 a negative answer (a token rejected, a
//! conformance failure), 2 an error (bad input, unreadable file).

mod args;
mod commands;
mod failure;
mod keys;
mod output;
mod state_file;

use std::process::ExitCode;

use clap::Parser;

use crate::{args::Cli, failure::Failure};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::run(&cli) {
        Ok(code) => code,
        Err(failure) => {
            failure.print();
            ExitCode::from(2)
        }
    }
}

/// The result of a command: its exit code, or an error to print.
type Outcome = Result<ExitCode, Failure>;
