//! `sts tariff`: the vending service's tariff versions, straight in its database (as `sts
//! api-key` makes keys): set a new version, list them.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{Map, Value, json};
use sts_vend::{Database, VendError};

use crate::{
    Outcome,
    commands::serve::runtime,
    failure::{Failure, Hint, fail},
    output::print_json,
};

#[derive(Debug, Subcommand)]
pub(crate) enum TariffCommand {
    /// Create a tariff version: a price per unit for a utility's tariff index from a time on.
    ///
    /// Versions never change: a new one supersedes the one before from its effective time.
    /// Recorded in the audit table as made at the command line.
    Set {
        /// The service's database (as for `sts serve --database`).
        #[arg(long, default_value = "sqlite://sts-vend.db")]
        database: String,
        /// electricity, water, gas or time.
        #[arg(long)]
        utility: String,
        /// The meters' tariff index (TI), 00 to 99.
        #[arg(long)]
        ti: String,
        /// ISO 4217 currency code, such as ZAR.
        #[arg(long)]
        currency: String,
        /// Decimal places of money in the currency (0 to 4).
        #[arg(long, default_value_t = 2)]
        currency_decimals: u8,
        /// Price per unit, an exact decimal with at most 6 places (2.4536).
        #[arg(long, allow_negative_numbers = true)]
        price: String,
        /// When it takes effect (UTC): YYYY-MM-DD, "YYYY-MM-DD HH:MM" or YYYY-MM-DDTHH:MM:SSZ;
        /// now or later. Default: now.
        #[arg(long)]
        effective_from: Option<String>,
        /// Monthly free allowance in units (one decimal), issued as its own token with a
        /// meter's first purchase of each calendar month (UTC).
        #[arg(long, allow_negative_numbers = true)]
        allowance: Option<String>,
    },
    /// List every tariff version, marking the ones in force now.
    List {
        /// The service's database.
        #[arg(long, default_value = "sqlite://sts-vend.db")]
        database: String,
    },
}

/// A refused field as the command line names it (`--effective-from: ...`), one per line.
pub(crate) fn field_failure(e: VendError, what: &str, hint: &str) -> Failure {
    match e {
        VendError::Invalid { fields, .. } if !fields.is_empty() => {
            let lines: Vec<String> = fields
                .iter()
                .map(|(field, problem)| format!("--{}: {problem}", field.replace('_', "-")))
                .collect();
            fail(format!("{what}: {}", lines.join("; ")), hint)
        }
        other => fail(format!("{what}: {other}"), hint),
    }
}

async fn open(database: &str) -> Result<Database, Failure> {
    Database::connect(database).await.hint(
        format!("cannot open database {database}"),
        "use sqlite://FILE or postgres://...",
    )
}

pub(crate) fn run(command: &TariffCommand, json: bool) -> Outcome {
    runtime()?.block_on(async {
        match command {
            TariffCommand::Set {
                database,
                utility,
                ti,
                currency,
                currency_decimals,
                price,
                effective_from,
                allowance,
            } => {
                let mut body = Map::new();
                let mut put = |name: &str, value: Value| {
                    body.insert(name.to_owned(), value);
                };
                put("utility", json!(utility));
                put("ti", json!(ti));
                put("currency", json!(currency));
                put("currency_decimals", json!(currency_decimals));
                put("price", json!(price));
                if let Some(t) = effective_from {
                    put("effective_from", json!(t));
                }
                if let Some(a) = allowance {
                    put("allowance", json!(a));
                }
                let db = open(database).await?;
                let tariff = db.create_tariff(None, &body).await.map_err(|e| {
                    field_failure(
                        e,
                        "tariff refused",
                        "nothing was stored; see `sts tariff set --help`",
                    )
                })?;
                if json {
                    print_json(&tariff.to_json());
                } else {
                    println!("{tariff}");
                }
            }
            TariffCommand::List { database } => {
                let db = open(database).await?;
                let tariffs = db
                    .tariffs_in_force()
                    .await
                    .hint("cannot read the tariffs", "check the database")?;
                if json {
                    let list: Vec<Value> = tariffs
                        .iter()
                        .map(|(t, in_force)| {
                            let mut v = t.to_json();
                            v["in_force"] = Value::Bool(*in_force);
                            v
                        })
                        .collect();
                    print_json(&json!({ "tariffs": list }));
                } else if tariffs.is_empty() {
                    eprintln!("no tariffs yet: create one with `sts tariff set`");
                } else {
                    for (t, in_force) in &tariffs {
                        println!("{t}{}", if *in_force { " (in force)" } else { "" });
                    }
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
