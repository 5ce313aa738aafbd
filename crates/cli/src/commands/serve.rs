//! `sts serve` and `sts api-key`: the vending service (sts-vend) and its API keys.

use std::{net::SocketAddr, process::ExitCode};

use clap::{Args, Subcommand};
use serde_json::json;
use sts_keys::SecurityModule;
use sts_vend::{Config, Database, KeyChangePolicy, Role};

use crate::{
    Outcome,
    commands::kmc::{StoreArgs, passphrase},
    failure::{Hint, fail},
    output::print_json,
};

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Database: `sqlite://FILE` (the embedded default, created when missing) or
    /// `postgres://USER:PASSWORD@HOST/DB`. Migrations run at start.
    #[arg(long, default_value = "sqlite://sts-vend.db")]
    database: String,
    /// The security module that issues every token: its store and passphrase (STS_SM_PASSPHRASE).
    #[command(flatten)]
    sm: StoreArgs,
    /// When a meter's key record changed: `issue-first` (send the key change set, then the
    /// token made with the new key) or `refuse` (until an engineer vends the key change).
    #[arg(long, default_value = "issue-first")]
    key_change_policy: KeyChangePolicy,
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = Config::DEFAULT_BODY_LIMIT)]
    body_limit: usize,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ApiKeyCommand {
    /// Create an API key and print it once: only its digest is stored.
    Create {
        /// The service's database (as for `sts serve --database`).
        #[arg(long, default_value = "sqlite://sts-vend.db")]
        database: String,
        /// admin, vendor (credit only), engineer (management and key change), auditor (read only).
        #[arg(long)]
        role: Role,
        /// Who or what the key is for.
        #[arg(long)]
        name: String,
    },
    /// Revoke an API key by its ID.
    Revoke {
        /// The service's database.
        #[arg(long, default_value = "sqlite://sts-vend.db")]
        database: String,
        /// The key's ID (the part after `sts_`).
        #[arg(long)]
        id: String,
    },
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, crate::failure::Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .hint(
            "cannot start the async runtime",
            "this is a bug: please report it",
        )
}

pub(crate) fn serve(args: &ServeArgs) -> Outcome {
    // Logs go to standard error; RUST_LOG adjusts them (default: info).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    runtime()?.block_on(async {
        let passphrase = passphrase(&args.sm, "STS_SM_PASSPHRASE")?;
        let sm = SecurityModule::open(&args.sm.store, &passphrase)
            .await
            .hint(
                format!(
                    "cannot open security module store {}",
                    args.sm.store.display()
                ),
                "create one with `sts sm init` and load keys with `sts sm import`",
            )?;
        let mut config = Config::new(args.listen, args.database.clone(), sm);
        config.key_change_policy = args.key_change_policy;
        config.body_limit = args.body_limit;
        eprintln!(
            "sts serve: listening on http://{} (database {})",
            args.listen, args.database
        );
        sts_vend::serve(config, sts_vend::shutdown_signal())
            .await
            .hint(
                "the vending service stopped with an error",
                "check --listen, --database and the logs above",
            )?;
        Ok(ExitCode::SUCCESS)
    })
}

pub(crate) fn api_key(command: &ApiKeyCommand, json: bool) -> Outcome {
    runtime()?.block_on(async {
        match command {
            ApiKeyCommand::Create { database, role, name } => {
                if name.trim().is_empty() {
                    return Err(fail("--name is empty", "name the person or system the key is for"));
                }
                let db = Database::connect(database)
                    .await
                    .hint(format!("cannot open database {database}"), "use sqlite://FILE or postgres://...")?;
                let key = db.create_api_key(*role, name, None).await.hint("cannot create the key", "check the database")?;
                if json {
                    print_json(&json!({ "id": key.id, "role": key.role.to_string(), "key": key.key }));
                } else {
                    println!("{}", key.key);
                    eprintln!("API key {} ({}) for {name}: shown this once; send it as `Authorization: Bearer <key>`", key.id, key.role);
                }
            }
            ApiKeyCommand::Revoke { database, id } => {
                let db = Database::connect(database)
                    .await
                    .hint(format!("cannot open database {database}"), "use sqlite://FILE or postgres://...")?;
                db.revoke_api_key(id, None).await.hint(format!("cannot revoke key {id}"), "check the ID")?;
                if json {
                    print_json(&json!({ "revoked": id }));
                } else {
                    println!("revoked {id}");
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
