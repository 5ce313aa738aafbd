//! `sts kmc ...`: the key management centre, one command per step of the process.
//!
//! 1 `register-owner`, 2 `allocate-sgc`, 3-4 `request-key` / `revise-key` (generated from the
//! OS CSPRNG and stored wrapped), 5 `register-sm` + `authorize`, 6-7 `keyload` (encrypted to the
//! security module, signed by the KMC); step 8 is `sts sm import`. Every change is a
//! transaction with an entry in the store's hash-chained audit log (`sts kmc audit verify`).

use std::{path::PathBuf, process::ExitCode};

use clap::{Args, Subcommand};
use serde_json::json;
use sts_core::{
    BaseDate, KeyDerivationAlgorithm, KeyExpiryNumber, KeyRevisionNumber, SupplyGroupCode,
    UtcMinute,
};
use sts_keys::{
    CreditLimit, KdfCost, KeyAttributes, KeyId, Kmc, OwnerId, SecurityModuleId,
    SecurityModulePublicKey, VendingKeyType,
};

use crate::{
    Outcome,
    commands::issue::now,
    failure::{Failure, Hint, fail},
    output::print_json,
};

/// A store file and its passphrase.
#[derive(Debug, Args, Clone)]
pub(crate) struct StoreArgs {
    /// The store file (SQLite).
    #[arg(long, value_name = "FILE")]
    pub(crate) store: PathBuf,
    /// File holding the store's passphrase (first line).
    #[arg(long, value_name = "FILE")]
    pub(crate) passphrase_file: Option<PathBuf>,
    /// Environment variable holding the passphrase.
    #[arg(long, value_name = "NAME")]
    pub(crate) passphrase_env: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KmcCommand {
    /// Create a KMC store: its key-encryption key (Argon2id from the passphrase) and Ed25519
    /// signing key. Prints the KMC public key that security modules trust.
    Init {
        #[command(flatten)]
        store: StoreArgs,
        /// Argon2id cost: `default` (64 MiB, 3 passes) or `insecure-for-tests`.
        #[arg(long, default_value = "default")]
        kdf_cost: String,
    },
    /// Print the KMC public key.
    PublicKey {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Step 1: register an SGC owner; prints its owner ID.
    RegisterOwner {
        #[command(flatten)]
        store: StoreArgs,
        /// The owner's name (a utility).
        #[arg(long)]
        name: String,
        /// Contact (e-mail or phone).
        #[arg(long)]
        contact: String,
    },
    /// Step 2: allocate a new supply group code to an owner.
    AllocateSgc {
        #[command(flatten)]
        store: StoreArgs,
        /// The owner ID.
        #[arg(long)]
        owner: OwnerId,
    },
    /// Steps 3-4: generate a vending key for an owner's SGC (stored wrapped); prints its key ID
    /// and key check value.
    RequestKey(RequestKeyArgs),
    /// Step 3: a new revision (KRN + 1) of an existing key, with the same attributes.
    ReviseKey {
        #[command(flatten)]
        store: StoreArgs,
        /// The owner ID.
        #[arg(long)]
        owner: OwnerId,
        /// The key to revise.
        #[arg(long)]
        key: KeyId,
    },
    /// Step 5: record a security module and its public key (from `sts sm init`).
    RegisterSm {
        #[command(flatten)]
        store: StoreArgs,
        /// The security module ID.
        #[arg(long)]
        sm: SecurityModuleId,
        /// Its X25519 public key (hex, from `sts sm public-key`).
        #[arg(long)]
        sm_public_key: SecurityModulePublicKey,
    },
    /// Step 5: authorize a security module to use a key. Only the SGC's owner may.
    Authorize {
        #[command(flatten)]
        store: StoreArgs,
        /// The owner ID.
        #[arg(long)]
        owner: OwnerId,
        /// The key ID.
        #[arg(long)]
        key: KeyId,
        /// The security module ID.
        #[arg(long)]
        sm: SecurityModuleId,
    },
    /// Steps 6-7: a keyload file for a security module: the keys encrypted to it, signed by
    /// the KMC. Refused without an authorization for every key.
    Keyload {
        #[command(flatten)]
        store: StoreArgs,
        /// The owner ID.
        #[arg(long)]
        owner: OwnerId,
        /// The security module ID.
        #[arg(long)]
        sm: SecurityModuleId,
        /// The keys to load (repeat for several).
        #[arg(long = "key", required = true)]
        keys: Vec<KeyId>,
        /// Where to write the file (refuses to overwrite).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// List the vending keys (attributes and check values, never the keys).
    Keys {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// The hash-chained audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Check every entry's hash and the chain; exit 1 if it is broken.
    Verify {
        /// The store file.
        #[arg(long, value_name = "FILE")]
        store: PathBuf,
    },
    /// Print the entries as JSON lines.
    Show {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Args)]
pub(crate) struct RequestKeyArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The owner ID.
    #[arg(long)]
    owner: OwnerId,
    /// The owner's supply group code.
    #[arg(long)]
    sgc: SupplyGroupCode,
    /// VUDK (unique), VCDK (common) or VDDK (default: key changes only, no credit).
    #[arg(long = "type", value_name = "TYPE", default_value = "VUDK")]
    key_type: VendingKeyType,
    /// 02 (64-bit DES vending key) or 04 (160-bit).
    #[arg(long, default_value = "04")]
    dkga: KeyDerivationAlgorithm,
    /// Key revision number.
    #[arg(long, default_value = "1")]
    krn: KeyRevisionNumber,
    /// Key expiry number (255 never expires).
    #[arg(long, default_value = "255")]
    ken: KeyExpiryNumber,
    /// Base date of the meters the key serves.
    #[arg(long, default_value = "2014")]
    base_date: BaseDate,
    /// Activation (ACT), `YYYY-MM-DD HH:MM` UTC. Default: now.
    #[arg(long)]
    activation: Option<UtcMinute>,
    /// Expiry (EXP): no keyload files from then. Default: 10 years after activation.
    #[arg(long)]
    expiry: Option<UtcMinute>,
    /// Issued-until (IUT): no tokens from then. Default: the expiry.
    #[arg(long)]
    issued_until: Option<UtcMinute>,
    /// Credit limit (CLM) in credit units; default none.
    #[arg(long)]
    credit_limit: Option<u64>,
}

/// The passphrase of a store: `--passphrase-file`, else the variable (default `default_env`).
pub(crate) fn passphrase(
    store: &StoreArgs,
    default_env: &str,
) -> Result<sts_keys::Passphrase, Failure> {
    let hint = format!("pass --passphrase-file FILE or set {default_env} (at least 12 characters)");
    match &store.passphrase_file {
        Some(path) => {
            sts_keys::Passphrase::from_file(path).hint("cannot read the passphrase", hint)
        }
        None => {
            let env = store.passphrase_env.as_deref().unwrap_or(default_env);
            sts_keys::Passphrase::from_env(env).hint("no passphrase", hint)
        }
    }
}

/// A runtime for the async stores.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .hint(
            "cannot start the async runtime",
            "this is a bug: please report it",
        )
}

pub(crate) fn cost(name: &str) -> Result<KdfCost, Failure> {
    match name {
        "default" => Ok(KdfCost::DEFAULT),
        "insecure-for-tests" => Ok(KdfCost::INSECURE_FOR_TESTS),
        other => Err(fail(
            format!("unknown --kdf-cost {other:?}"),
            "use default or insecure-for-tests",
        )),
    }
}

async fn open(store: &StoreArgs) -> Result<Kmc, Failure> {
    let passphrase = passphrase(store, "STS_KMC_PASSPHRASE")?;
    Kmc::open(&store.store, &passphrase).await.hint(
        format!("cannot open KMC store {}", store.store.display()),
        "check the path and the passphrase",
    )
}

fn refused(what: &str) -> String {
    format!("the KMC refused to {what}")
}

pub(crate) fn run(command: &KmcCommand, json: bool) -> Outcome {
    runtime()?.block_on(run_async(command, json))
}

async fn run_async(command: &KmcCommand, json: bool) -> Outcome {
    let say = |text: String, value: serde_json::Value| {
        if json {
            print_json(&value);
        } else {
            println!("{text}");
        }
    };
    match command {
        KmcCommand::Init { store, kdf_cost } => {
            let passphrase = passphrase(store, "STS_KMC_PASSPHRASE")?;
            let kmc = Kmc::create(&store.store, &passphrase, cost(kdf_cost)?)
                .await
                .hint(
                    format!("cannot create KMC store {}", store.store.display()),
                    "the file must not hold a KMC yet",
                )?;
            let key = kmc.public_key().to_string();
            kmc.close().await;
            say(key.clone(), json!({ "kmc_public_key": key }));
        }
        KmcCommand::PublicKey { store } => {
            let kmc = open(store).await?;
            let key = kmc.public_key().to_string();
            kmc.close().await;
            say(key.clone(), json!({ "kmc_public_key": key }));
        }
        KmcCommand::RegisterOwner {
            store,
            name,
            contact,
        } => {
            let kmc = open(store).await?;
            let owner = kmc
                .register_owner(name, contact)
                .await
                .hint(refused("register the owner"), "give a name and a contact")?;
            kmc.close().await;
            say(owner.to_string(), json!({ "owner": owner.to_string() }));
        }
        KmcCommand::AllocateSgc { store, owner } => {
            let kmc = open(store).await?;
            let sgc = kmc
                .allocate_supply_group(*owner)
                .await
                .hint(refused("allocate an SGC"), "check --owner")?;
            kmc.close().await;
            say(sgc.to_string(), json!({ "sgc": sgc.to_string() }));
        }
        KmcCommand::RequestKey(args) => {
            let kmc = open(&args.store).await?;
            let activation = args.activation.unwrap_or_else(now);
            let expiry = args
                .expiry
                .unwrap_or(activation.add_minutes(10 * 365 * 1440));
            let attributes = KeyAttributes {
                supply_group: args.sgc,
                key_type: args.key_type,
                derivation: args.dkga,
                key_revision: args.krn,
                key_expiry: args.ken,
                base_date: args.base_date,
                activation,
                expiry,
                issued_until: args.issued_until.unwrap_or(expiry),
                credit_limit: args
                    .credit_limit
                    .map_or(CreditLimit::NONE, CreditLimit::new),
            };
            let record = kmc
                .request_vending_key(args.owner, &attributes)
                .await
                .hint(
                    refused("make the key"),
                    "only the SGC's owner may request its keys; a new key needs a higher --krn",
                )?;
            kmc.close().await;
            say(
                format!(
                    "key {} (KCV {}) for SGC {}",
                    record.id, record.check_value, args.sgc
                ),
                json!({ "key": record.id.to_string(), "kcv": record.check_value.to_string(), "sgc": args.sgc.to_string() }),
            );
        }
        KmcCommand::ReviseKey { store, owner, key } => {
            let kmc = open(store).await?;
            let record = kmc
                .request_key_revision(*owner, *key)
                .await
                .hint(refused("revise the key"), "check --owner and --key")?;
            kmc.close().await;
            say(
                format!(
                    "key {} (KCV {}), KRN {}",
                    record.id, record.check_value, record.attributes.key_revision
                ),
                json!({ "key": record.id.to_string(), "kcv": record.check_value.to_string(), "krn": record.attributes.key_revision.get() }),
            );
        }
        KmcCommand::RegisterSm {
            store,
            sm,
            sm_public_key,
        } => {
            let kmc = open(store).await?;
            kmc.register_security_module(sm, sm_public_key).await.hint(
                refused("register the security module"),
                "each ID is registered once",
            )?;
            kmc.close().await;
            say(
                format!("security module {sm} registered"),
                json!({ "sm": sm.to_string() }),
            );
        }
        KmcCommand::Authorize {
            store,
            owner,
            key,
            sm,
        } => {
            let kmc = open(store).await?;
            kmc.authorize(*owner, *key, sm).await.hint(
                refused("authorize"),
                "only the owner of the key's SGC may authorize a registered module",
            )?;
            kmc.close().await;
            say(
                format!("key {key} authorized for {sm}"),
                json!({ "key": key.to_string(), "sm": sm.to_string() }),
            );
        }
        KmcCommand::Keyload {
            store,
            owner,
            sm,
            keys,
            out,
        } => {
            if out.exists() {
                return Err(fail(
                    format!("{} already exists", out.display()),
                    "choose another --out",
                ));
            }
            let kmc = open(store).await?;
            let file = kmc.issue_keyload(*owner, sm, keys).await.hint(
                refused("issue the keyload file"),
                "every key needs an authorization for the module (sts kmc authorize)",
            )?;
            kmc.close().await;
            std::fs::write(out, file.as_bytes()).hint(
                format!("cannot write {}", out.display()),
                "check the directory",
            )?;
            say(
                format!("keyload file for {sm} written to {}", out.display()),
                json!({ "file": out.display().to_string(), "sm": sm.to_string() }),
            );
        }
        KmcCommand::Keys { store } => {
            let kmc = open(store).await?;
            let keys = kmc
                .keys()
                .await
                .hint("cannot list the keys", "check the store")?;
            kmc.close().await;
            for record in keys {
                let a = &record.attributes;
                say(
                    format!(
                        "key {} SGC {} {} DKGA{} KRN {} KEN {} base {} KCV {}",
                        record.id,
                        a.supply_group,
                        a.key_type,
                        a.derivation,
                        a.key_revision,
                        a.key_expiry,
                        a.base_date,
                        record.check_value
                    ),
                    json!({ "key": record.id.to_string(), "sgc": a.supply_group.to_string(), "type": a.key_type.to_string(),
                            "dkga": a.derivation.to_string(), "krn": a.key_revision.get(), "ken": a.key_expiry.get(),
                            "base_date": a.base_date.year(), "kcv": record.check_value.to_string() }),
                );
            }
        }
        KmcCommand::Audit(AuditCommand::Verify { store }) => {
            return verify_audit(store, json).await;
        }
        KmcCommand::Audit(AuditCommand::Show { store }) => {
            let kmc = open(store).await?;
            let entries = kmc
                .audit_log()
                .await
                .hint("cannot read the audit log", "check the store")?;
            kmc.close().await;
            for entry in entries {
                println!("{}", entry.to_json_line());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Checks a store's audit chain: exit 0 intact, 1 broken.
pub(crate) async fn verify_audit(store: &std::path::Path, json: bool) -> Outcome {
    match sts_keys::verify_audit(store).await {
        Ok(count) => {
            if json {
                print_json(&json!({ "intact": true, "entries": count }));
            } else {
                println!("audit log intact: {count} entries");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            if json {
                print_json(&json!({ "intact": false, "error": error.to_string() }));
            } else {
                println!("audit log BROKEN: {error}");
            }
            Ok(ExitCode::from(1))
        }
    }
}
