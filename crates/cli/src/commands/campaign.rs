//! `sts campaign`: key change campaigns over the vending service's database (sts-vend) and a
//! security module - create, run (resumable, Ctrl-C stops at a chunk boundary), status,
//! export for field teams, and a benchmark.

mod bench;

use std::{
    path::PathBuf,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use clap::{Args, Subcommand};
use indicatif::ProgressBar;
use serde_json::{Value, json};
use sts_core::{
    BaseDate, KeyDerivationAlgorithm, KeyRevisionNumber, MeterPan, SupplyGroupCode, TariffIndex,
};
use sts_keys::SecurityModule;
use sts_vend::{
    Campaign, CampaignSelection, CampaignTarget, ChunkDone, Database, NewCampaign, RunEnd,
    VendError,
};

use crate::{
    Outcome,
    commands::kmc::{StoreArgs, passphrase},
    failure::{Failure, Hint, fail},
    output::{print_json, progress_bar},
};

const AFTER_HELP: &str = "\
A campaign moves many meters to a new key record. `run` computes every selected meter's key
change set ahead of time, a chunk of meters at a time, and marks each meter: its next purchase
hands out the stored set, then the credit token under the new key. A run that stops (Ctrl-C,
a crash, a power cut) resumes where the last committed chunk ended; no meter is done twice.

The 2024 TID rollover, for meters on base date 1993 (load the KRN 2, base 2014 key first):
  sts campaign create --name rollover-2024 --sgc 123457 --krn 1 --base-date 1993 \\
      --new-krn 2 --new-base-date 2014
  sts campaign run rollover-2024 --store sm.db --passphrase-file sm.pass
  sts campaign status rollover-2024
  sts campaign export rollover-2024 --csv field-teams.csv

Every command takes --database (default sqlite://sts-vend.db, as `sts serve`).";

#[derive(Debug, Subcommand)]
#[command(after_help = AFTER_HELP)]
pub(crate) enum CampaignCommand {
    /// Create a campaign: which meters (by the key record they hold, or a PAN list) and the
    /// key record to move them to. Nothing is issued until `run`.
    Create(CreateArgs),
    /// Compute the key change sets of a campaign's meters, resuming after its checkpoint.
    ///
    /// Exit 0 when every selected meter has its set, 1 when the run stopped (Ctrl-C) or
    /// some meters failed (see `status`), 2 on an error.
    Run(RunArgs),
    /// Show one campaign's progress and the meters without a set, or list every campaign.
    Status(StatusArgs),
    /// Write a campaign's pending key change sets as CSV for field teams.
    ///
    /// Columns: pan, token_1 .. token_4 (20 digits, in the order to enter them; empty when the
    /// set is shorter), new_sgc, new_ti, new_krn, new_base_date. Exported sets stay pending: the
    /// meter's next purchase still hands the set out (a meter that already took it refuses the
    /// copy and takes the credit token after it). `status` counts the exported sets.
    Export(ExportArgs),
    /// Measure a campaign: register N meters in a throwaway database, run a rollover campaign
    /// over them, print meters per second and the peak memory (VmHWM).
    Bench(bench::BenchArgs),
}

/// The vending service's database.
#[derive(Debug, Args, Clone)]
pub(crate) struct DatabaseArg {
    /// `sqlite://FILE` (as `sts serve`) or `postgres://USER:PASSWORD@HOST/DB`.
    #[arg(long, default_value = "sqlite://sts-vend.db")]
    pub(crate) database: String,
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    #[command(flatten)]
    db: DatabaseArg,
    /// A unique name, e.g. rollover-2024 (not a number: campaigns are found by ID or name).
    #[arg(long)]
    name: String,
    /// Select meters holding a key of this supply group.
    #[arg(long, value_name = "SGC", help_heading = "Selection")]
    sgc: Option<SupplyGroupCode>,
    /// Select meters holding a key of this revision.
    #[arg(long, value_name = "KRN", help_heading = "Selection")]
    krn: Option<KeyRevisionNumber>,
    /// Select meters whose key is for this base date (1993 for the 2024 TID rollover).
    #[arg(long, value_name = "YEAR", help_heading = "Selection")]
    base_date: Option<BaseDate>,
    /// Select the meters listed in this file: one PAN per line (or CSV whose first column is
    /// the PAN; a first line `pan` is a header). Every PAN must be registered.
    #[arg(long, value_name = "FILE", help_heading = "Selection")]
    pans: Option<PathBuf>,
    /// Select every meter (when no other selection is given).
    #[arg(long, help_heading = "Selection")]
    all: bool,
    /// New key revision number.
    #[arg(long, value_name = "KRN", help_heading = "Target")]
    new_krn: Option<KeyRevisionNumber>,
    /// New base date: 2014 moves base-1993 meters past the 2024 rollover (the set carries RO=1,
    /// the meter clears its TID memory).
    #[arg(long, value_name = "YEAR", help_heading = "Target")]
    new_base_date: Option<BaseDate>,
    /// New supply group code (the set then carries it).
    #[arg(long, value_name = "SGC", help_heading = "Target")]
    new_sgc: Option<SupplyGroupCode>,
    /// New tariff index.
    #[arg(long, value_name = "TI", help_heading = "Target")]
    new_ti: Option<TariffIndex>,
    /// New decoder key generation algorithm (e.g. 04).
    #[arg(long, value_name = "DKGA", help_heading = "Target")]
    new_dkga: Option<KeyDerivationAlgorithm>,
    /// Send the SGC in every set (3 tokens for a 64-bit key) even when it does not change.
    #[arg(long, help_heading = "Target")]
    with_sgc: bool,
    /// Meters per chunk: one security module call and one database transaction each.
    #[arg(long, default_value_t = NewCampaign::DEFAULT_CHUNK_SIZE)]
    chunk_size: u32,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The campaign's ID or name.
    campaign: String,
    #[command(flatten)]
    db: DatabaseArg,
    /// The security module that issues the sets: its store and passphrase (STS_SM_PASSPHRASE).
    #[command(flatten)]
    sm: StoreArgs,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The campaign's ID or name; without it, every campaign.
    campaign: Option<String>,
    #[command(flatten)]
    db: DatabaseArg,
    /// How many meters without a set to list (failed, skipped, superseded).
    #[arg(long, default_value_t = 20)]
    problems: i64,
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// The campaign's ID or name.
    campaign: String,
    #[command(flatten)]
    db: DatabaseArg,
    /// The CSV file to write (`-` for standard output). A file is written whole or not at
    /// all, readable by its owner only: it holds tokens.
    #[arg(long, value_name = "FILE")]
    csv: PathBuf,
}

pub(crate) fn run(command: &CampaignCommand, json: bool) -> Outcome {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .hint(
            "cannot start the async runtime",
            "this is a bug: please report it",
        )?;
    runtime.block_on(async {
        match command {
            CampaignCommand::Create(args) => create(args, json).await,
            CampaignCommand::Run(args) => run_campaign(args, json).await,
            CampaignCommand::Status(args) => status(args, json).await,
            CampaignCommand::Export(args) => export(args, json).await,
            CampaignCommand::Bench(args) => bench::run(args, json).await,
        }
    })
}

pub(crate) async fn connect(url: &str) -> Result<Database, Failure> {
    Database::connect(url).await.hint(
        format!("cannot open database {url}"),
        "use sqlite://FILE (the one `sts serve` uses) or postgres://...",
    )
}

/// A campaign by ID or name.
async fn find(db: &Database, which: &str) -> Result<Campaign, Failure> {
    let found = match which.parse::<i64>() {
        Ok(id) => db.campaign(id).await,
        Err(_) => db.campaign_named(which).await,
    };
    found.hint(
        format!("no campaign {which}"),
        "list the campaigns with `sts campaign status`",
    )
}

/// An error from the vending library, with the fields at fault spelled out.
fn vend_failure(e: VendError, context: &str, hint: &str) -> Failure {
    let text = match &e {
        VendError::Invalid { fields, .. } if !fields.is_empty() => fields
            .iter()
            .map(|(field, problem)| format!("{field}: {problem}"))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    };
    fail(format!("{context}: {text}"), hint)
}

/// Reads a PAN list: one per line, or CSV with the PAN first; a `pan` header is skipped.
/// Every bad line is reported (up to 10), and nothing is created then.
fn read_pans(path: &PathBuf) -> Result<Vec<MeterPan>, Failure> {
    let file = std::fs::File::open(path).hint(
        format!("cannot read {}", path.display()),
        "pass a file with one PAN per line",
    )?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(std::io::BufReader::new(file));
    let mut pans = Vec::new();
    let mut bad = Vec::new();
    let mut bad_count = 0usize;
    for (i, record) in reader.records().enumerate() {
        let line = record
            .as_ref()
            .ok()
            .and_then(|r| r.position())
            .map_or(i as u64 + 1, |p| p.line());
        let text = match &record {
            Ok(r) => r.get(0).unwrap_or("").trim().to_owned(),
            Err(e) => {
                bad_count += 1;
                if bad.len() < 10 {
                    bad.push(format!("line {line}: {e}"));
                }
                continue;
            }
        };
        if text.is_empty() || (i == 0 && text.eq_ignore_ascii_case("pan")) {
            continue;
        }
        match text.parse::<MeterPan>() {
            Ok(pan) => pans.push(pan),
            Err(e) => {
                bad_count += 1;
                if bad.len() < 10 {
                    bad.push(format!("line {line}: {text:?}: {e}"));
                }
            }
        }
    }
    if bad_count > 0 {
        return Err(fail(
            format!(
                "{} has {bad_count} bad line(s): {}{}",
                path.display(),
                bad.join("; "),
                if bad_count > bad.len() { "; ..." } else { "" }
            ),
            "fix or remove those lines (18-digit PANs with their check digit); nothing was created",
        ));
    }
    if pans.is_empty() {
        return Err(fail(
            format!("{} lists no PAN", path.display()),
            "one PAN per line",
        ));
    }
    Ok(pans)
}

async fn create(args: &CreateArgs, json: bool) -> Outcome {
    let filtered = args.sgc.is_some() || args.krn.is_some() || args.base_date.is_some();
    if !filtered && args.pans.is_none() && !args.all {
        return Err(fail(
            "no selection",
            "select meters with --sgc, --krn, --base-date and/or --pans FILE, or pass --all",
        ));
    }
    if args.all && (filtered || args.pans.is_some()) {
        return Err(fail(
            "--all with another selection",
            "--all selects every meter: leave it out to filter",
        ));
    }
    let pans = args.pans.as_ref().map(read_pans).transpose()?;
    let listed = pans.as_ref().map(Vec::len);
    let new = NewCampaign {
        name: args.name.clone(),
        selection: CampaignSelection {
            supply_group: args.sgc,
            key_revision: args.krn,
            base_date: args.base_date,
            pans,
        },
        target: CampaignTarget {
            supply_group: args.new_sgc,
            tariff_index: args.new_ti,
            key_revision: args.new_krn,
            base_date: args.new_base_date,
            derivation: args.new_dkga,
            include_supply_group: args.with_sgc,
        },
        chunk_size: args.chunk_size,
    };
    let db = connect(&args.db.database).await?;
    let campaign = db.create_campaign(&new).await.map_err(|e| {
        vend_failure(
            e,
            "cannot create the campaign",
            "check the options (`sts campaign create --help`); nothing was created",
        )
    })?;
    if json {
        print_json(&campaign.to_json());
    } else {
        println!("{}", campaign.id);
        eprintln!(
            "campaign {} ({}): {} meters selected{}; run it with `sts campaign run {}`",
            campaign.id,
            campaign.name,
            campaign.selected,
            listed.map_or(String::new(), |n| format!(" from {n} PANs listed")),
            campaign.name
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The progress display: an indicatif bar on a terminal, a line per chunk otherwise.
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    base: u64,
}

impl Progress {
    pub(crate) fn new(campaign: &Campaign) -> Self {
        let total = campaign.selected.max(campaign.processed);
        let bar = progress_bar(total, "meters").inspect(|bar| {
            bar.set_position(campaign.processed);
            bar.reset_eta();
        });
        Self {
            bar,
            started: Instant::now(),
            base: campaign.processed,
        }
    }

    pub(crate) fn chunk(&self, c: &ChunkDone) {
        let total = c.selected.max(c.processed);
        match &self.bar {
            Some(bar) => {
                bar.set_length(total);
                bar.set_position(c.processed);
            }
            None => {
                let seconds = self.started.elapsed().as_secs_f64();
                let rate = (c.processed - self.base) as f64 / seconds.max(1e-9);
                eprintln!(
                    "campaign {}: chunk {} done, {} of {total} meters, {rate:.0} meters/s",
                    c.campaign, c.chunk, c.processed
                );
            }
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

async fn run_campaign(args: &RunArgs, json: bool) -> Outcome {
    let db = connect(&args.db.database).await?;
    let campaign = find(&db, &args.campaign).await?;
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
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.store(true, Ordering::Relaxed);
                eprintln!("stopping after the chunk in progress (Ctrl-C again to abort)");
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
    }
    let progress = Progress::new(&campaign);
    let started = Instant::now();
    let before = campaign.processed;
    let end = db
        .run_campaign(campaign.id, &sm, &stop, |c| progress.chunk(c))
        .await;
    progress.finish();
    sm.close().await;
    let end = end.map_err(|e| {
        let hint = match &e {
            VendError::Invalid { .. } => {
                "load the target key into the security module, then run again: it resumes at the checkpoint"
            }
            VendError::Refused(_) => {
                "the security module refused this chunk; fix the key's dates or attributes, then run again: it resumes at the checkpoint"
            }
            _ => "run again: it resumes after the last committed chunk",
        };
        vend_failure(e, &format!("campaign {} stopped", campaign.name), hint)
    })?;
    let after = find(&db, &campaign.id.to_string()).await?;
    let seconds = started.elapsed().as_secs_f64();
    let done_now = after.processed - before;
    let rate = done_now as f64 / seconds.max(1e-9);
    if json {
        let mut v = after.to_json();
        v["run"] = json!({
            "end": match end { RunEnd::Done => "done", RunEnd::Stopped => "stopped" },
            "meters": done_now,
            "seconds": (seconds * 1000.0).round() / 1000.0,
            "meters_per_second": rate.round(),
        });
        print_json(&v);
    } else {
        println!(
            "campaign {} ({}): {} - {done_now} meters in {seconds:.1} s ({rate:.0}/s); {} of {} done: {} sets pending, {} delivered, {} failed, {} skipped",
            after.id,
            after.name,
            match end {
                RunEnd::Done => "done",
                RunEnd::Stopped => "stopped at a chunk boundary",
            },
            after.processed,
            after.selected.max(after.processed),
            after.items.pending,
            after.items.delivered,
            after.items.failed,
            after.items.skipped,
        );
    }
    if end == RunEnd::Stopped {
        eprintln!(
            "run `sts campaign run {}` again to go on from PAN {}",
            after.name,
            after
                .checkpoint
                .map_or("(start)".to_owned(), |p| p.to_string())
        );
        return Ok(ExitCode::from(1));
    }
    if after.items.failed > 0 {
        eprintln!(
            "{} meters failed: `sts campaign status {}` lists them with the reason",
            after.items.failed, after.name
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn summary_line(c: &Campaign) -> String {
    let total = c.selected.max(c.processed);
    let percent = (c.processed * 100).checked_div(total).unwrap_or(100);
    format!(
        "{:>4}  {:<24} {:<8} {:>3}%  {}/{} meters  pending {}  delivered {}  failed {}  skipped {}  superseded {}  exported {}",
        c.id,
        c.name,
        c.state,
        percent,
        c.processed,
        total,
        c.items.pending,
        c.items.delivered,
        c.items.failed,
        c.items.skipped,
        c.items.superseded,
        c.items.exported
    )
}

async fn status(args: &StatusArgs, json: bool) -> Outcome {
    let db = connect(&args.db.database).await?;
    let Some(which) = &args.campaign else {
        let all = db
            .campaigns()
            .await
            .hint("cannot read the campaigns", "check --database")?;
        if json {
            print_json(
                &json!({"campaigns": all.iter().map(Campaign::to_json).collect::<Vec<_>>()}),
            );
        } else if all.is_empty() {
            println!("no campaigns (create one with `sts campaign create`)");
        } else {
            for c in &all {
                println!("{}", summary_line(c));
            }
        }
        return Ok(ExitCode::SUCCESS);
    };
    let c = find(&db, which).await?;
    let problems = db
        .campaign_problems(c.id, "", args.problems.clamp(0, 100_000))
        .await
        .hint("cannot read the campaign's items", "check --database")?;
    if json {
        let mut v = c.to_json();
        v["problems"] = problems
            .iter()
            .map(|p| json!({"pan": p.pan, "state": p.state, "reason": p.reason}))
            .collect::<Vec<Value>>()
            .into();
        print_json(&v);
    } else {
        println!("{}", summary_line(&c));
        println!(
            "  checkpoint: {} after {} chunks of up to {}",
            c.checkpoint
                .map_or("none (not run yet)".to_owned(), |p| p.to_string()),
            c.chunks,
            c.chunk_size
        );
        for p in &problems {
            println!("  {} {}: {}", p.pan, p.state, p.reason);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn export(args: &ExportArgs, json: bool) -> Outcome {
    let db = connect(&args.db.database).await?;
    let c = find(&db, &args.campaign).await?;
    let to_stdout = args.csv.as_os_str() == "-";
    let temp = args.csv.with_extension("csv.partial");
    let out: Box<dyn std::io::Write> = if to_stdout {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(private_file(&temp).hint(
            format!("cannot write {}", temp.display()),
            "check the directory exists and is writable",
        )?)
    };
    let mut writer = csv::Writer::from_writer(std::io::BufWriter::new(out));
    let write_failed = |e: csv::Error| Failure::from(anyhow::Error::from(e));
    writer
        .write_record([
            "pan",
            "token_1",
            "token_2",
            "token_3",
            "token_4",
            "new_sgc",
            "new_ti",
            "new_krn",
            "new_base_date",
        ])
        .map_err(write_failed)?;
    let mut after = String::new();
    let mut count = 0u64;
    loop {
        let page = db
            .campaign_pending_sets(c.id, &after, 5_000)
            .await
            .hint("cannot read the campaign's sets", "check --database")?;
        let Some(last) = page.last().map(|i| i.pan.clone()) else {
            break;
        };
        for item in &page {
            let mut row = vec![item.pan.clone()];
            for i in 0..4 {
                row.push(
                    item.tokens
                        .get(i)
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                );
            }
            row.push(item.to.supply_group.to_string());
            row.push(item.to.tariff_index.to_string());
            row.push(item.to.key_revision.to_string());
            row.push(item.to.base_date.to_string());
            writer.write_record(&row).map_err(write_failed)?;
        }
        writer
            .flush()
            .hint("cannot write the CSV", "check the disk")?;
        db.mark_exported(c.id, &after, &last, page.len() as u64)
            .await
            .hint("cannot record the export", "check --database")?;
        count += page.len() as u64;
        after = last;
    }
    writer
        .flush()
        .hint("cannot write the CSV", "check the disk")?;
    drop(writer);
    if !to_stdout {
        std::fs::rename(&temp, &args.csv).hint(
            format!("cannot move {} to {}", temp.display(), args.csv.display()),
            "check the directory is writable",
        )?;
    }
    if json {
        print_json(
            &json!({"campaign": c.id, "exported": count, "file": args.csv.display().to_string()}),
        );
    } else {
        eprintln!(
            "{count} pending key change sets of campaign {} written to {}",
            c.name,
            args.csv.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A new file readable by its owner only (tokens are in it).
pub(crate) fn private_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Seconds as `1.2 s`.
pub(crate) fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}
