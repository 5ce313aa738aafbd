//! `sts sm ...`: a virtual security module holding vending keys wrapped at rest.
//!
//! It imports keyload files addressed to it (step 8 of the KMC process), issues every token
//! type for a meter from the vending key it holds, enforcing the key's attributes, and
//! verifies tokens. Every token is recorded with the module's ID and the vending key's check
//! value in its hash-chained audit log.

use std::{io::Write as _, path::PathBuf, process::ExitCode};

use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use sts_core::{
    BaseDate, CurrencyAmount, KeyDerivationAlgorithm, KeyRevisionNumber, KeyType, MeterDescription,
    SupplyGroupCode, TariffIndex, TokenNumber, TransferAmount, amount::parse_fixed,
};
use sts_keys::{KmcPublicKey, SecurityModule, SecurityModuleId, TokenRequest};

use crate::{
    Outcome,
    args::{MeterIdentityArgs, ServiceArg},
    commands::{
        issue::{parse_register, watts},
        kmc::{StoreArgs, cost, passphrase, runtime, verify_audit},
    },
    failure::{Failure, Hint, fail},
    keys,
    output::{describe, grouped, print_json},
};

#[derive(Debug, Subcommand)]
pub(crate) enum SmCommand {
    /// Create a security module store with its ID, its X25519 key pair and the KMC public key
    /// it trusts. Prints its public key, for `sts kmc register-sm`.
    Init {
        #[command(flatten)]
        store: StoreArgs,
        /// The module's ID (letters, digits, `-`).
        #[arg(long)]
        id: SecurityModuleId,
        /// The KMC public key to trust (hex, from `sts kmc init`).
        #[arg(long)]
        kmc_public_key: KmcPublicKey,
        /// Argon2id cost: `default` or `insecure-for-tests`.
        #[arg(long, default_value = "default")]
        kdf_cost: String,
    },
    /// Print the module's ID and public key.
    PublicKey {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Step 8: import a keyload file. Refused unless it is addressed to this module, signed by
    /// the trusted KMC, intact, and newer than any file seen for its keys.
    Import {
        #[command(flatten)]
        store: StoreArgs,
        /// The keyload file.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
    /// List the keys held (attributes, check values, credit issued; never the keys).
    Keys {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Issue a token for a meter from the vending key held for its SGC, key type and KRN.
    Issue(SmIssueArgs),
    /// Issue a key change set moving a meter to a new key (KRN, SGC, TI, KT or base date).
    KeyChange(SmKeyChangeArgs),
    /// Decode a token for a meter with the key held, and explain it; exit 1 if invalid.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        meter: MeterIdentityArgs,
        /// The token.
        token: String,
    },
    /// The hash-chained audit log: verify it, or show its entries and the tokens they record.
    #[command(subcommand)]
    Audit(SmAuditCommand),
    /// Check the module's hash-chained audit log; exit 1 if broken (as `audit verify`).
    #[command(hide = true)]
    AuditVerify {
        /// The store file.
        #[arg(long, value_name = "FILE")]
        store: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum SmAuditCommand {
    /// Check every entry's hash and the chain; exit 1 if it is broken. Needs no passphrase.
    Verify {
        /// The store file.
        #[arg(long, value_name = "FILE")]
        store: PathBuf,
    },
    /// Print the entries as JSON lines, oldest first. A batch entry shows how many tokens (or
    /// key change sets) it records; --records adds one line per record after it (meter, KCV,
    /// class, subclass, TID, credit). Needs no passphrase: the log holds no key and no token
    /// number.
    Show {
        /// The store file.
        #[arg(long, value_name = "FILE")]
        store: PathBuf,
        /// Only entries after this sequence number.
        #[arg(long, value_name = "SEQUENCE", default_value_t = 0)]
        after: u64,
        /// Also print every record of the batch entries, one line each.
        #[arg(long)]
        records: bool,
    },
}

/// What token to issue.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Kind {
    /// Credit in units (--amount, --service).
    Credit,
    /// Currency credit (--amount, --service).
    Currency,
    /// Maximum power limit (--watts).
    MaxPower,
    /// Clear credit (--register).
    ClearCredit,
    /// Tariff rate (--rate).
    TariffRate,
    /// Clear tamper.
    ClearTamper,
    /// Phase unbalance limit (--watts).
    PhaseUnbalance,
    /// Water meter factor (--factor).
    WaterFactor,
}

#[derive(Debug, Args)]
pub(crate) struct SmIssueArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    meter: MeterIdentityArgs,
    /// The kind of token.
    #[arg(long, value_enum)]
    kind: Kind,
    /// Amount for credit (units, 0.1 resolution) or currency.
    #[arg(long, allow_hyphen_values = true)]
    amount: Option<String>,
    /// Service for credit.
    #[arg(long, value_enum, default_value = "electricity")]
    service: ServiceArg,
    /// Watts for max-power and phase-unbalance.
    #[arg(long)]
    watts: Option<u32>,
    /// Register for clear-credit.
    #[arg(long, default_value = "all")]
    register: String,
    /// Field for tariff-rate.
    #[arg(long)]
    rate: Option<u16>,
    /// Field for water-factor.
    #[arg(long)]
    factor: Option<u16>,
}

#[derive(Debug, Args)]
pub(crate) struct SmKeyChangeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The meter as it is now.
    #[command(flatten)]
    meter: MeterIdentityArgs,
    /// New supply group code. Default: unchanged.
    #[arg(long)]
    new_sgc: Option<SupplyGroupCode>,
    /// New tariff index. Default: unchanged.
    #[arg(long)]
    new_ti: Option<TariffIndex>,
    /// New key revision number. Default: unchanged.
    #[arg(long)]
    new_krn: Option<KeyRevisionNumber>,
    /// New key type. Default: unchanged.
    #[arg(long)]
    new_kt: Option<KeyType>,
    /// New base date (a later one sets the rollover bit).
    #[arg(long)]
    new_base_date: Option<BaseDate>,
    /// Carry the SGC (3-token set for a 64-bit key).
    #[arg(long)]
    with_sgc: bool,
}

fn description(meter: &MeterIdentityArgs) -> Result<MeterDescription, Failure> {
    keys::description(meter, meter.dkga.unwrap_or(KeyDerivationAlgorithm::Dkga04))
}

fn request(args: &SmIssueArgs) -> Result<TokenRequest, Failure> {
    let need = |what: &str| {
        fail(
            format!("--kind {:?} needs --{what}", args.kind),
            format!("add --{what}"),
        )
    };
    Ok(match args.kind {
        Kind::Credit => {
            let text = args.amount.as_deref().ok_or_else(|| need("amount"))?;
            let tenths = parse_fixed(text, 1).hint(
                format!("invalid --amount {text:?}"),
                "at most one decimal place, e.g. 12.5",
            )?;
            let amount = TransferAmount::from_value_ceil(tenths).hint(
                format!("invalid --amount {text:?}"),
                "at most 1820162.4 units a token",
            )?;
            TokenRequest::TransferCredit {
                service: args.service.into(),
                amount,
            }
        }
        Kind::Currency => {
            let text = args.amount.as_deref().ok_or_else(|| need("amount"))?;
            let amount = CurrencyAmount::parse(text).hint(
                format!("invalid --amount {text:?}"),
                "a decimal amount such as 50.00",
            )?;
            TokenRequest::CurrencyCredit {
                service: args.service.into(),
                amount,
            }
        }
        Kind::MaxPower => TokenRequest::SetMaximumPowerLimit {
            limit: watts(args.watts.ok_or_else(|| need("watts"))?)?,
        },
        Kind::PhaseUnbalance => TokenRequest::SetMaximumPhasePowerUnbalanceLimit {
            limit: watts(args.watts.ok_or_else(|| need("watts"))?)?,
        },
        Kind::ClearCredit => TokenRequest::ClearCredit {
            register: parse_register(&args.register)?,
        },
        Kind::TariffRate => TokenRequest::SetTariffRate {
            rate: args.rate.ok_or_else(|| need("rate"))?,
        },
        Kind::WaterFactor => TokenRequest::SetWaterMeterFactor {
            factor: args.factor.ok_or_else(|| need("factor"))?,
        },
        Kind::ClearTamper => TokenRequest::ClearTamperCondition,
    })
}

async fn open(store: &StoreArgs) -> Result<SecurityModule, Failure> {
    let passphrase = passphrase(store, "STS_SM_PASSPHRASE")?;
    SecurityModule::open(&store.store, &passphrase).await.hint(
        format!(
            "cannot open security module store {}",
            store.store.display()
        ),
        "check the path and the passphrase",
    )
}

pub(crate) fn run(command: &SmCommand, json: bool) -> Outcome {
    runtime()?.block_on(run_async(command, json))
}

async fn run_async(command: &SmCommand, json: bool) -> Outcome {
    let say = |text: String, value: serde_json::Value| {
        if json {
            print_json(&value);
        } else {
            println!("{text}");
        }
    };
    match command {
        SmCommand::Init {
            store,
            id,
            kmc_public_key,
            kdf_cost,
        } => {
            let passphrase = passphrase(store, "STS_SM_PASSPHRASE")?;
            let sm = SecurityModule::create(
                &store.store,
                &passphrase,
                cost(kdf_cost)?,
                id.clone(),
                *kmc_public_key,
            )
            .await
            .hint(
                format!(
                    "cannot create security module store {}",
                    store.store.display()
                ),
                "the file must not hold a module yet",
            )?;
            let key = sm.public_key().to_string();
            sm.close().await;
            say(
                key.clone(),
                json!({ "sm": id.to_string(), "sm_public_key": key }),
            );
        }
        SmCommand::PublicKey { store } => {
            let sm = open(store).await?;
            let (id, key) = (sm.id().to_string(), sm.public_key().to_string());
            sm.close().await;
            say(
                format!("{id} {key}"),
                json!({ "sm": id, "sm_public_key": key }),
            );
        }
        SmCommand::Import { store, file } => {
            let bytes = std::fs::read(file)
                .hint(format!("cannot read {}", file.display()), "check the path")?;
            let sm = open(store).await?;
            let report = sm.import_keyload(&bytes).await.hint(
                format!("the security module refused {}", file.display()),
                "a keyload file must be addressed to this module, signed by its KMC, intact, and newer than the last one",
            )?;
            sm.close().await;
            for (attributes, kcv) in &report.keys {
                say(
                    format!(
                        "imported SGC {} {} KRN {} KCV {kcv} (keyload serial {})",
                        attributes.supply_group,
                        attributes.key_type,
                        attributes.key_revision,
                        report.serial
                    ),
                    json!({ "sgc": attributes.supply_group.to_string(), "type": attributes.key_type.to_string(),
                            "krn": attributes.key_revision.get(), "kcv": kcv.to_string(), "serial": report.serial }),
                );
            }
        }
        SmCommand::Keys { store } => {
            let sm = open(store).await?;
            let held = sm
                .keys()
                .await
                .hint("cannot list the keys", "check the store")?;
            sm.close().await;
            for key in held {
                let a = &key.attributes;
                say(
                    format!(
                        "SGC {} {} DKGA{} KRN {} KCV {} credit issued {}",
                        a.supply_group,
                        a.key_type,
                        a.derivation,
                        a.key_revision,
                        key.check_value,
                        key.credit_issued
                    ),
                    json!({ "sgc": a.supply_group.to_string(), "type": a.key_type.to_string(), "dkga": a.derivation.to_string(),
                            "krn": a.key_revision.get(), "kcv": key.check_value.to_string(), "credit_issued": key.credit_issued }),
                );
            }
        }
        SmCommand::Issue(args) => {
            let meter = description(&args.meter)?;
            let request = request(args)?;
            let sm = open(&args.store).await?;
            let issued = sm.issue(&meter, request).await.hint(
                "the security module refused the token",
                "it needs a key for the meter's SGC, key type and KRN that is active, not past issued-until, within its credit limit (and no credit from a VDDK)",
            )?;
            sm.close().await;
            let (summary, mut fields) = describe(&issued.token, Some(meter.base_date));
            let kcv = issued
                .check_value
                .map(|k| k.to_string())
                .unwrap_or_default();
            if let Some(map) = fields.as_object_mut() {
                map.insert("token".into(), json!(issued.number.to_string()));
                map.insert("sm".into(), json!(issued.security_module.to_string()));
                map.insert("kcv".into(), json!(kcv));
            }
            if json {
                print_json(&fields);
            } else {
                println!("{}", grouped(issued.number));
                eprintln!("{summary} (SM {}, KCV {kcv})", issued.security_module);
            }
        }
        SmCommand::KeyChange(args) => {
            let current = description(&args.meter)?;
            let new = MeterDescription {
                supply_group: args.new_sgc.unwrap_or(current.supply_group),
                tariff_index: args.new_ti.unwrap_or(current.tariff_index),
                key_revision: args.new_krn.unwrap_or(current.key_revision),
                key_type: args.new_kt.unwrap_or(current.key_type),
                base_date: args.new_base_date.unwrap_or(current.base_date),
                ..current
            };
            let sm = open(&args.store).await?;
            let issued = sm.issue_key_change(&current, &new, args.with_sgc).await.hint(
                "the security module refused the key change",
                "it must hold active keys for both the current and the new SGC, key type and KRN",
            )?;
            sm.close().await;
            let tokens: Vec<String> = issued.set.iter().map(|t| t.number.to_string()).collect();
            if json {
                print_json(
                    &json!({ "tokens": tokens, "sm": issued.security_module.to_string(),
                                    "current_kcv": issued.current_check_value.to_string(), "new_kcv": issued.new_check_value.to_string() }),
                );
            } else {
                for t in issued.set.iter() {
                    println!("{}", grouped(t.number));
                }
                eprintln!(
                    "{} tokens (SM {}, current KCV {}, new KCV {})",
                    tokens.len(),
                    issued.security_module,
                    issued.current_check_value,
                    issued.new_check_value
                );
            }
        }
        SmCommand::Verify {
            store,
            meter,
            token,
        } => {
            let number: TokenNumber = token
                .parse()
                .hint(format!("invalid token {token:?}"), "a token is 20 digits")?;
            let meter = description(meter)?;
            let sm = open(store).await?;
            let verified = sm.verify(&meter, number).await;
            sm.close().await;
            match verified {
                Ok(v) => say(
                    format!("valid: {} (KCV {})", v.description, v.check_value),
                    json!({ "valid": true, "description": v.description, "kcv": v.check_value.to_string() }),
                ),
                Err(sts_keys::SmError::Decode(e)) => {
                    say(
                        format!("rejected: {e}"),
                        json!({ "valid": false, "error": e.to_string() }),
                    );
                    return Ok(ExitCode::from(1));
                }
                Err(e) => return Err(Failure::from(e)),
            }
        }
        SmCommand::AuditVerify { store } | SmCommand::Audit(SmAuditCommand::Verify { store }) => {
            return verify_audit(store, json).await;
        }
        SmCommand::Audit(SmAuditCommand::Show {
            store,
            after,
            records,
        }) => show_audit(store, *after, *records).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the audit entries after `after` as JSON lines; with `records`, each batch entry's
/// records follow it, one line each (`{"sequence", "record", ...}`).
async fn show_audit(store: &std::path::Path, after: u64, records: bool) -> Result<(), Failure> {
    let entries = sts_keys::read_audit(store)
        .await
        .hint("cannot read the audit log", "check the --store path")?;
    let mut out = std::io::stdout().lock();
    for entry in entries.iter().filter(|e| e.sequence > after) {
        let mut line = entry.to_json();
        let decoded = entry.batch_records();
        if let Err(e) = &decoded {
            line["records_error"] = json!(e.to_string());
        }
        writeln!(out, "{line}").hint("cannot write the output", "check where the output goes")?;
        if let (true, Ok(Some(batch))) = (records, decoded)
            && let serde_json::Value::Array(list) = batch.to_json()
        {
            for (i, mut record) in list.into_iter().enumerate() {
                record["sequence"] = json!(entry.sequence);
                record["record"] = json!(i);
                writeln!(out, "{record}")
                    .hint("cannot write the output", "check where the output goes")?;
            }
        }
    }
    Ok(())
}
