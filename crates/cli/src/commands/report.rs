//! `sts report`: the vending service's sales reports, straight from its database.

use std::process::ExitCode;

use clap::Subcommand;

use crate::{
    Outcome,
    commands::{serve::runtime, tariff::field_failure},
    failure::Hint,
    output::print_json,
};

#[derive(Debug, Subcommand)]
pub(crate) enum ReportCommand {
    /// Daily sales per vendor (API key) and tariff version: sales, units, money, free
    /// allowances. Days are UTC.
    Daily {
        /// The service's database (as for `sts serve --database`).
        #[arg(long, default_value = "sqlite://sts-vend.db")]
        database: String,
        /// First day, YYYY-MM-DD.
        #[arg(long)]
        from: String,
        /// Last day, YYYY-MM-DD (included; at most 366 days in all).
        #[arg(long)]
        to: String,
        /// Print CSV (RFC 4180, a header line) instead of a table.
        #[arg(long)]
        csv: bool,
    },
}

pub(crate) fn run(command: &ReportCommand, json: bool) -> Outcome {
    let ReportCommand::Daily {
        database,
        from,
        to,
        csv,
    } = command;
    runtime()?.block_on(async {
        let db = sts_vend::Database::connect(database).await.hint(
            format!("cannot open database {database}"),
            "use sqlite://FILE or postgres://...",
        )?;
        let report = db
            .daily_report(Some(from), Some(to))
            .await
            .map_err(|e| field_failure(e, "cannot make the report", "give --from and --to as YYYY-MM-DD"))?;
        if *csv {
            print!("{}", report.to_csv());
        } else if json {
            print_json(&report.to_json());
        } else {
            let lines = report.lines();
            if lines.is_empty() {
                eprintln!("no sales from {from} to {to}");
            }
            for [day, vendor, name, tariff, sales, units, money, free] in lines {
                println!(
                    "{day}  {vendor} ({name})  tariff {tariff}  sales {sales}  units {units}  money {money}  free {free}"
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
