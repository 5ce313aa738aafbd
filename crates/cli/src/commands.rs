//! One module per subcommand.

mod bench;
pub(crate) mod campaign;
mod conformance;
mod decode;
mod derive;
mod issue;
mod key_change;
pub(crate) mod kmc;
pub(crate) mod loadtest;
mod meter;
pub(crate) mod report;
pub(crate) mod serve;
pub(crate) mod sm;
pub(crate) mod tariff;
pub(crate) mod vend;

use crate::{
    Outcome,
    args::{Cli, Command},
};

/// Runs the parsed command line.
pub(crate) fn run(cli: &Cli) -> Outcome {
    match &cli.command {
        Command::DeriveKey(args) => derive::run(args, cli.json),
        Command::Issue(command) => issue::run(command, cli.json),
        Command::KeyChange(args) => key_change::run(args, cli.json),
        Command::Decode(args) => decode::run(args, cli.json),
        Command::Conformance(args) => conformance::run(args, cli.json),
        Command::Bench(args) => bench::run(args, cli.json),
        Command::Meter(command) => meter::run(command, cli.json),
        Command::Kmc(command) => kmc::run(command, cli.json),
        Command::Sm(command) => sm::run(command, cli.json),
        Command::Serve(args) => serve::serve(args),
        Command::ApiKey(command) => serve::api_key(command, cli.json),
        Command::Tariff(command) => tariff::run(command, cli.json),
        Command::Report(command) => report::run(command, cli.json),
        Command::Loadtest(args) => loadtest::run(args, cli.json),
        Command::Campaign(command) => campaign::run(command, cli.json),
        Command::Vend(command) => vend::run(command, cli.json),
    }
}
