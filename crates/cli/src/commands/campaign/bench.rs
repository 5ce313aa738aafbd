//! `sts campaign bench`: the campaign's throughput on this machine. Throwaway stores in a
//! temporary directory: a KMC and a security module (fast KDF: they hold test keys only)
//! with the KRN 1 (base 1993) and KRN 2 (base 2014) keys of one supply group, a vend database
//! with N meters on the 1993 key, and the 2024 rollover campaign over them.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{Arc, atomic::AtomicBool},
    time::Instant,
};

use clap::Args;
use serde_json::json;
use sts_core::{
    BaseDate, EncryptionAlgorithm, KeyDerivationAlgorithm, KeyExpiryNumber, MeterPan, Service,
    UtcMinute,
};
use sts_keys::{
    CreditLimit, KdfCost, KeyAttributes, Kmc, Passphrase, SecurityModule, SecurityModuleId,
    VendingKeyType,
};
use sts_vend::{
    CampaignSelection, CampaignTarget, KeyRecord, Meter, MeterStatus, NewCampaign, RunEnd,
};

use super::{Progress, connect, seconds};
use crate::{
    Outcome,
    failure::{Failure, Hint, fail},
    output::print_json,
};

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Meters to register and move.
    #[arg(long, default_value_t = 100_000)]
    meters: u64,
    /// Meters per chunk.
    #[arg(long, default_value_t = NewCampaign::DEFAULT_CHUNK_SIZE)]
    chunk_size: u32,
    /// The meters' key derivation: 02 (DES, the usual for base-1993 meters) or 04 (HMAC-SHA-256).
    #[arg(long, default_value = "02")]
    dkga: KeyDerivationAlgorithm,
    /// Directory for the throwaway stores (default: a new one under the system's temporary
    /// directory, removed afterwards).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The vend database (default: SQLite in the directory); a PostgreSQL one must be empty.
    #[arg(long)]
    database: Option<String>,
}

/// Peak resident memory of this process in KiB (VmHWM), where /proc has it.
pub(crate) fn peak_memory_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Removes the directory on drop when we made it.
struct Scratch {
    path: PathBuf,
    remove: bool,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn attributes(
    sgc: sts_core::SupplyGroupCode,
    dkga: KeyDerivationAlgorithm,
    krn: u8,
    base_date: BaseDate,
) -> Result<KeyAttributes, Failure> {
    let now = UtcMinute::from_unix_seconds(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0)),
    );
    Ok(KeyAttributes {
        supply_group: sgc,
        key_type: VendingKeyType::Unique,
        derivation: dkga,
        key_revision: krn
            .try_into()
            .map_err(|_| fail("bad key revision", "this is a bug: please report it"))?,
        key_expiry: KeyExpiryNumber::NEVER,
        base_date,
        activation: now.add_minutes(-24 * 60),
        expiry: now.add_minutes(2 * 365 * 24 * 60),
        issued_until: now.add_minutes(365 * 24 * 60),
        credit_limit: CreditLimit::NONE,
    })
}

/// A KMC and a security module holding KRN 1 (base 1993) and KRN 2 (base 2014) of one SGC.
async fn keys(
    dir: &Path,
    dkga: KeyDerivationAlgorithm,
) -> Result<(SecurityModule, sts_core::SupplyGroupCode), Failure> {
    let setup = "cannot set up the benchmark's key stores";
    let hint = "check the directory is writable";
    let passphrase = Passphrase::new("throwaway benchmark passphrase").hint(setup, hint)?;
    let kmc = Kmc::create(
        &dir.join("kmc.db"),
        &passphrase,
        KdfCost::INSECURE_FOR_TESTS,
    )
    .await
    .hint(setup, hint)?;
    let owner = kmc
        .register_owner("Benchmark utility", "bench@example.invalid")
        .await
        .hint(setup, hint)?;
    let sgc = kmc.allocate_supply_group(owner).await.hint(setup, hint)?;
    let sm_id: SecurityModuleId = "SM-BENCH".parse().hint(setup, hint)?;
    let sm = SecurityModule::create(
        &dir.join("sm.db"),
        &passphrase,
        KdfCost::INSECURE_FOR_TESTS,
        sm_id.clone(),
        kmc.public_key(),
    )
    .await
    .hint(setup, hint)?;
    kmc.register_security_module(&sm_id, &sm.public_key())
        .await
        .hint(setup, hint)?;
    let mut ids = Vec::new();
    for (krn, base) in [(1, BaseDate::Y1993), (2, BaseDate::Y2014)] {
        let record = kmc
            .request_vending_key(owner, &attributes(sgc, dkga, krn, base)?)
            .await
            .hint(setup, hint)?;
        kmc.authorize(owner, record.id, &sm_id)
            .await
            .hint(setup, hint)?;
        ids.push(record.id);
    }
    let file = kmc
        .issue_keyload(owner, &sm_id, &ids)
        .await
        .hint(setup, hint)?;
    sm.import_keyload(file.as_bytes()).await.hint(setup, hint)?;
    kmc.close().await;
    Ok((sm, sgc))
}

pub(crate) async fn run(args: &BenchArgs, json: bool) -> Outcome {
    if args.meters == 0 || args.meters > 10_000_000 {
        return Err(fail(
            "--meters must be 1 to 10,000,000",
            "e.g. --meters 1000000",
        ));
    }
    let scratch = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).hint(
                format!("cannot create {}", dir.display()),
                "pass a writable directory",
            )?;
            Scratch {
                path: dir.clone(),
                remove: false,
            }
        }
        None => {
            let path =
                std::env::temp_dir().join(format!("sts-campaign-bench-{}", std::process::id()));
            std::fs::create_dir_all(&path).hint(
                format!("cannot create {}", path.display()),
                "pass --dir DIR",
            )?;
            Scratch { path, remove: true }
        }
    };
    let dir = &scratch.path;
    if dir.join("vend.db").exists() || dir.join("sm.db").exists() {
        return Err(fail(
            format!("{} already holds benchmark stores", dir.display()),
            "pass an empty --dir",
        ));
    }
    let (sm, sgc) = keys(dir, args.dkga).await?;
    let url = args
        .database
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.join("vend.db").display()));
    let db = connect(&url).await?;

    // Register the meters: DRNs 10000000000 on, EA07, the 1993 key.
    let started = Instant::now();
    let key = KeyRecord {
        supply_group: sgc,
        tariff_index: "01".parse().hint("bad TI", "this is a bug")?,
        key_revision: "1".parse().hint("bad KRN", "this is a bug")?,
        key_type: "2".parse().hint("bad KT", "this is a bug")?,
        base_date: BaseDate::Y1993,
        derivation: args.dkga,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    let batch = 20_000u64;
    let mut first = 0;
    while first < args.meters {
        let last = (first + batch).min(args.meters);
        let meters = (first..last)
            .map(|i| {
                Ok(Meter {
                    pan: MeterPan::from_drn(&format!("{:011}", 10_000_000_000 + i))?,
                    target: key,
                    current: key,
                    algorithm: EncryptionAlgorithm::Sta,
                    key_expiry: KeyExpiryNumber::NEVER,
                    utility: Service::Electricity,
                    status: MeterStatus::Active,
                    last_tid: None,
                    created: now,
                    updated: now,
                })
            })
            .collect::<Result<Vec<_>, sts_core::IdentifierError>>()
            .hint("cannot make the meters' PANs", "use fewer --meters")?;
        db.import_meters(&meters)
            .await
            .hint("cannot register the meters", "pass an empty database")?;
        first = last;
    }
    let registered = started.elapsed();
    eprintln!(
        "registered {} meters in {}",
        args.meters,
        seconds(registered)
    );

    let started = Instant::now();
    let campaign = db
        .create_campaign(&NewCampaign {
            name: "bench-rollover".into(),
            selection: CampaignSelection {
                supply_group: Some(sgc),
                key_revision: Some(key.key_revision),
                base_date: Some(BaseDate::Y1993),
                pans: None,
            },
            target: CampaignTarget {
                key_revision: Some("2".parse().hint("bad KRN", "this is a bug")?),
                base_date: Some(BaseDate::Y2014),
                ..CampaignTarget::default()
            },
            chunk_size: args.chunk_size,
        })
        .await
        .hint("cannot create the campaign", "check --chunk-size")?;
    let created = started.elapsed();

    let progress = Progress::new(&campaign);
    let started = Instant::now();
    let end = db
        .run_campaign(campaign.id, &sm, &Arc::new(AtomicBool::new(false)), |c| {
            progress.chunk(c)
        })
        .await
        .hint("the campaign failed", "see the error above")?;
    let ran = started.elapsed();
    progress.finish();
    let after = db
        .campaign(campaign.id)
        .await
        .hint("cannot read the campaign", "check the database")?;
    if end != RunEnd::Done || after.items.pending != args.meters {
        return Err(fail(
            format!(
                "the campaign ended {end:?} with {} of {} sets pending",
                after.items.pending, args.meters
            ),
            "this is a bug: please report it",
        ));
    }
    let rate = args.meters as f64 / ran.as_secs_f64().max(1e-9);
    let peak = peak_memory_kib();
    db.close().await;
    sm.close().await;
    if json {
        print_json(&json!({
            "meters": args.meters,
            "chunk_size": args.chunk_size,
            "dkga": args.dkga.to_string(),
            "database": if url.starts_with("sqlite:") { "sqlite" } else { "postgres" },
            "register_seconds": (registered.as_secs_f64() * 100.0).round() / 100.0,
            "create_seconds": (created.as_secs_f64() * 100.0).round() / 100.0,
            "run_seconds": (ran.as_secs_f64() * 100.0).round() / 100.0,
            "meters_per_second": rate.round(),
            "peak_memory_kib": peak,
        }));
    } else {
        println!(
            "campaign of {} meters (DKGA{}, chunks of {}): key change sets in {} - {rate:.0} meters/s",
            args.meters,
            args.dkga,
            args.chunk_size,
            seconds(ran)
        );
        println!(
            "registering took {}, creating the campaign {}; peak memory (VmHWM) {}",
            seconds(registered),
            seconds(created),
            peak.map_or("unknown".to_owned(), |k| format!(
                "{:.1} MiB",
                k as f64 / 1024.0
            ))
        );
    }
    Ok(ExitCode::SUCCESS)
}
