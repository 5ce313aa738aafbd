//! `sts vend bulk`: credit vends from a CSV file through a running `sts serve` (its HTTP API,
//! so every vend has the server's guarantees: idempotent by request ID, committed before the
//! answer). Concurrent, with progress; a report CSV says what each row did.

use std::{
    collections::{BTreeMap, HashMap},
    io::Write,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use clap::{Args, Subcommand};
use serde_json::json;
use sts_core::{MeterPan, TransferAmount, amount::parse_fixed};
use tokio::sync::mpsc;

use crate::{
    Outcome,
    commands::{
        campaign::private_file,
        loadtest::{Connection, host, key},
    },
    failure::{Failure, Hint, fail},
    output::{print_json, progress_bar},
};

#[derive(Debug, Subcommand)]
pub(crate) enum VendCommand {
    /// Vend credit to many meters from a CSV file, through a running `sts serve`.
    ///
    /// The file needs a header naming the columns `meter` (PAN, or an 11- or 13-digit DRN),
    /// `amount` (units, at most one decimal, e.g. 12.5) and `request_id` (1-128 printable
    /// characters, unique in the file); other columns are ignored. Rows that do not parse
    /// are reported and not sent; the others are vended concurrently.
    ///
    /// Running the same file again is safe: the request IDs make repeated rows reprints (the
    /// report says `reprint` and gives the same tokens). The report CSV has one row per data
    /// row: line, request_id, meter, status (ok, reprint, failed), tokens (space-separated, a
    /// key change set first when the meter had one pending), error. It holds tokens, so it is
    /// readable by its owner only. Exit 0 when no row failed, 1 when some did, 2 on an error.
    #[command(
        after_help = "Example:\n  printf 'meter,amount,request_id\\n600727000000000009,12.5,shop-1/0001\\n' > sales.csv\n  STS_API_KEY=$VENDOR sts vend bulk --file sales.csv --report sales-report.csv"
    )]
    Bulk(BulkArgs),
}

#[derive(Debug, Args)]
pub(crate) struct BulkArgs {
    /// The CSV file of sales.
    #[arg(long, value_name = "FILE")]
    file: PathBuf,
    /// Where to write the report (default: FILE with `.report.csv`).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// The vending service: `http://HOST:PORT`.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// File holding a vendor (or admin) API key; default the environment variable STS_API_KEY.
    #[arg(long, value_name = "FILE")]
    api_key_file: Option<PathBuf>,
    /// Vends in flight at once, each client on its own keep-alive connection.
    #[arg(long, default_value_t = 16)]
    clients: u64,
}

pub(crate) fn run(command: &VendCommand, json: bool) -> Outcome {
    match command {
        VendCommand::Bulk(args) => bulk(args, json),
    }
}

/// One data row, parsed.
struct Sale {
    seq: u64,
    line: u64,
    request_id: String,
    meter: String,
    amount: String,
}

/// What a row came to.
struct RowResult {
    seq: u64,
    line: u64,
    request_id: String,
    meter: String,
    status: &'static str,
    tokens: String,
    error: String,
}

const MAX_REQUEST_ID: usize = 128;

fn check_request_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("missing request ID".into());
    }
    if id.len() > MAX_REQUEST_ID || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "bad request ID: 1 to {MAX_REQUEST_ID} printable ASCII characters without spaces"
        ));
    }
    Ok(())
}

fn check_meter(text: &str) -> Result<(), String> {
    let parsed = if text.len() == 11 || text.len() == 13 {
        MeterPan::from_drn(text)
    } else {
        text.parse()
    };
    parsed
        .map(|_| ())
        .map_err(|e| format!("bad meter {text:?}: {e}"))
}

fn check_amount(text: &str) -> Result<(), String> {
    let tenths = parse_fixed(text, 1)
        .map_err(|e| format!("bad amount {text:?}: {e} (units, at most one decimal)"))?;
    if tenths == 0 {
        return Err(format!("bad amount {text:?}: must be more than 0"));
    }
    TransferAmount::from_value_ceil(tenths).map_err(|e| format!("bad amount {text:?}: {e}"))?;
    Ok(())
}

/// The column index of each of meter, amount and request_id in the header.
fn columns(header: &csv::StringRecord, path: &Path) -> Result<[usize; 3], Failure> {
    let find = |name: &str| {
        header.iter().position(|h| {
            h.trim()
                .trim_start_matches('\u{feff}')
                .eq_ignore_ascii_case(name)
        })
    };
    match (find("meter"), find("amount"), find("request_id")) {
        (Some(m), Some(a), Some(r)) => Ok([m, a, r]),
        _ => Err(fail(
            format!(
                "{} has no header with the columns meter, amount and request_id (found: {})",
                path.display(),
                header.iter().collect::<Vec<_>>().join(", ")
            ),
            "put a first line `meter,amount,request_id` (in any order); nothing was vended",
        )),
    }
}

fn reader(path: &Path) -> Result<csv::Reader<std::fs::File>, Failure> {
    csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(path)
        .hint(
            format!("cannot read {}", path.display()),
            "pass the sales file with --file",
        )
}

/// Sends one sale, retrying a connection failure twice on a new connection (the request ID
/// makes a retry safe: a vend the server did commit comes back as a reprint). Once a row
/// could not reach the service at all, `down` is set and the rows after it are not sent.
async fn send(
    host: &str,
    api_key: &str,
    conn: &mut Option<Connection>,
    sale: &Sale,
    down: &AtomicBool,
) -> RowResult {
    let body = json!({
        "request_id": sale.request_id,
        "meter": sale.meter,
        "token": {"type": "credit", "amount": sale.amount},
    })
    .to_string();
    let mut outcome = RowResult {
        seq: sale.seq,
        line: sale.line,
        request_id: sale.request_id.clone(),
        meter: sale.meter.clone(),
        status: "failed",
        tokens: String::new(),
        error: String::new(),
    };
    if down.load(Ordering::Relaxed) {
        outcome.error = format!("not sent: {host} stopped answering (run the file again later)");
        return outcome;
    }
    for attempt in 0..3 {
        if conn.is_none() {
            match Connection::open(host).await {
                Ok(c) => *conn = Some(c),
                Err(e) => {
                    outcome.error = format!("cannot connect to {host}: {e}");
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        match c.send(host, "POST", "/v1/vends", api_key, &body).await {
            Ok((status, answer)) => {
                match status {
                    201 | 200 => {
                        outcome.status = if status == 200 { "reprint" } else { "ok" };
                        outcome.tokens = answer["tokens"]
                            .as_array()
                            .map(|t| {
                                t.iter()
                                    .filter_map(|t| t["number"].as_str())
                                    .collect::<Vec<_>>()
                                    .join(" ")
                            })
                            .unwrap_or_default();
                        outcome.error.clear();
                    }
                    _ => {
                        let text = answer["error"].as_str().unwrap_or("no error text");
                        outcome.error = format!("{status}: {text}");
                    }
                }
                return outcome;
            }
            Err(e) => {
                *conn = None;
                outcome.error = format!("connection to {host} failed: {e}");
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
        }
    }
    down.store(true, Ordering::Relaxed);
    outcome
}

fn bulk(args: &BulkArgs, json: bool) -> Outcome {
    if args.clients == 0 || args.clients > 1024 {
        return Err(fail("--clients must be 1 to 1024", "e.g. --clients 16"));
    }
    let host = host(&args.url)?;
    let api_key = key(args.api_key_file.as_ref(), "STS_API_KEY", "vendor API")?;
    // First pass: the header and the number of rows (for the progress bar).
    let mut first = reader(&args.file)?;
    let header = first.headers().cloned().hint(
        format!("cannot read the header of {}", args.file.display()),
        "the first line must name the columns meter, amount and request_id",
    )?;
    let [meter_col, amount_col, id_col] = columns(&header, &args.file)?;
    let rows = first.records().count() as u64;
    drop(first);
    let report_path = args
        .report
        .clone()
        .unwrap_or_else(|| args.file.with_extension("report.csv"));
    let report = private_file(&report_path).hint(
        format!("cannot write the report {}", report_path.display()),
        "pass --report FILE in a writable directory",
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .hint(
            "cannot start the async runtime",
            "this is a bug: please report it",
        )?;
    let started = Instant::now();
    let counts = runtime.block_on(async {
        let (work_tx, work_rx) = mpsc::channel::<Sale>(args.clients as usize * 4);
        let work_rx = Arc::new(tokio::sync::Mutex::new(work_rx));
        let (done_tx, mut done_rx) = mpsc::channel::<RowResult>(args.clients as usize * 4);
        let sent = Arc::new(AtomicU64::new(0));
        let down = Arc::new(AtomicBool::new(false));
        let host = Arc::new(host);
        let api_key = Arc::new(api_key);
        for _ in 0..args.clients {
            let (work_rx, done_tx, host, api_key, down) = (
                Arc::clone(&work_rx),
                done_tx.clone(),
                Arc::clone(&host),
                Arc::clone(&api_key),
                Arc::clone(&down),
            );
            tokio::spawn(async move {
                let mut conn = None;
                loop {
                    let Some(sale) = work_rx.lock().await.recv().await else {
                        return;
                    };
                    let outcome = send(&host, &api_key, &mut conn, &sale, &down).await;
                    if done_tx.send(outcome).await.is_err() {
                        return;
                    }
                }
            });
        }
        // The reader: parses each row; bad ones go straight to the report.
        let path = args.file.clone();
        let reader_done = done_tx.clone();
        drop(done_tx);
        let reading = tokio::task::spawn_blocking(move || -> Result<(), String> {
            let mut rdr = reader(&path).map_err(|_| format!("cannot read {}", path.display()))?;
            let mut seen: HashMap<String, u64> = HashMap::new();
            for (seq, record) in rdr.records().enumerate() {
                let seq = seq as u64;
                let (line, parsed) = match record {
                    Ok(r) => {
                        let line = r.position().map_or(seq + 2, csv::Position::line);
                        let field = |i: usize| r.get(i).unwrap_or("").to_owned();
                        (
                            line,
                            Ok((field(id_col), field(meter_col), field(amount_col))),
                        )
                    }
                    Err(e) => (
                        e.position().map_or(seq + 2, csv::Position::line),
                        Err(format!("unreadable row: {e}")),
                    ),
                };
                let (request_id, meter, amount) = match &parsed {
                    Ok((i, m, a)) => (i.clone(), m.clone(), a.clone()),
                    Err(_) => Default::default(),
                };
                let problem = parsed.err().or_else(|| {
                    check_request_id(&request_id)
                        .and_then(|()| check_meter(&meter))
                        .and_then(|()| check_amount(&amount))
                        .err()
                        .or_else(|| {
                            seen.get(&request_id).map(|first| {
                                format!("duplicate request ID (first on line {first})")
                            })
                        })
                });
                let item = if let Some(error) = problem {
                    Err(RowResult {
                        seq,
                        line,
                        request_id,
                        meter,
                        status: "failed",
                        tokens: String::new(),
                        error,
                    })
                } else {
                    seen.insert(request_id.clone(), line);
                    Ok(Sale {
                        seq,
                        line,
                        request_id,
                        meter,
                        amount,
                    })
                };
                let sent = match item {
                    Ok(sale) => work_tx.blocking_send(sale).is_ok(),
                    Err(outcome) => reader_done.blocking_send(outcome).is_ok(),
                };
                if !sent {
                    return Err("the vending tasks stopped".into());
                }
            }
            Ok(())
        });
        // The writer: the report in file order, progress as rows finish.
        let bar = progress_bar(rows, "rows");
        let mut out = csv::Writer::from_writer(std::io::BufWriter::new(report));
        let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut waiting: BTreeMap<u64, RowResult> = BTreeMap::new();
        let mut next = 0u64;
        let mut last_line = Instant::now();
        let mut write_error = None;
        if let Err(e) =
            out.write_record(["line", "request_id", "meter", "status", "tokens", "error"])
        {
            write_error = Some(e.to_string());
        }
        while let Some(outcome) = done_rx.recv().await {
            waiting.insert(outcome.seq, outcome);
            while let Some(o) = waiting.remove(&next) {
                *counts.entry(o.status).or_default() += 1;
                if let Err(e) = out.write_record([
                    o.line.to_string().as_str(),
                    &o.request_id,
                    &o.meter,
                    o.status,
                    &o.tokens,
                    &o.error,
                ]) {
                    write_error.get_or_insert(e.to_string());
                }
                next += 1;
                sent.fetch_add(1, Ordering::Relaxed);
            }
            match &bar {
                Some(bar) => bar.set_position(next),
                None if last_line.elapsed() >= Duration::from_secs(2) => {
                    eprintln!("vend bulk: {next} of {rows} rows");
                    last_line = Instant::now();
                }
                None => {}
            }
        }
        if let Some(bar) = &bar {
            bar.finish_and_clear();
        }
        if let Err(e) = out.flush() {
            write_error.get_or_insert(e.to_string());
        }
        let read = reading.await;
        Ok::<_, Failure>((counts, next, read, write_error))
    })?;
    let (counts, done, read, write_error) = counts;
    match read {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            return Err(fail(
                e,
                "check the file and the service, then run again: done rows reprint",
            ));
        }
        Err(e) => {
            return Err(fail(
                format!("the reader failed: {e}"),
                "this is a bug: please report it",
            ));
        }
    }
    if let Some(e) = write_error {
        return Err(fail(
            format!("cannot write the report {}: {e}", report_path.display()),
            "free some disk space and run again: the rows done come back as reprints",
        ));
    }
    let seconds = started.elapsed().as_secs_f64();
    let get = |k: &str| counts.get(k).copied().unwrap_or(0);
    let (ok, reprint, failed) = (get("ok"), get("reprint"), get("failed"));
    let rate = done as f64 / seconds.max(1e-9);
    if json {
        print_json(&json!({
            "rows": done, "ok": ok, "reprint": reprint, "failed": failed,
            "seconds": (seconds * 100.0).round() / 100.0, "rows_per_second": rate.round(),
            "report": report_path.display().to_string(),
        }));
    } else {
        println!(
            "{done} rows in {seconds:.1} s ({rate:.0}/s): {ok} ok, {reprint} reprint, {failed} failed; report in {}",
            report_path.display()
        );
    }
    let _ = std::io::stdout().flush();
    if failed > 0 {
        eprintln!(
            "{failed} rows failed: the report's error column says why; fix them and run the file again (done rows reprint)"
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_checked_as_the_service_would() {
        assert!(check_request_id("shop-1/0001").is_ok());
        assert_eq!(check_request_id("").unwrap_err(), "missing request ID");
        assert!(check_request_id("has space").is_err());
        assert!(check_request_id(&"x".repeat(129)).is_err());
        assert!(check_meter("600727000000000009").is_ok());
        assert!(check_meter("60072700000").is_ok(), "an 11-digit DRN");
        assert!(
            check_meter("600727000000000008")
                .unwrap_err()
                .contains("check digit")
        );
        assert!(check_meter("abc").is_err());
        assert!(check_amount("12.5").is_ok());
        assert!(check_amount("0").unwrap_err().contains("more than 0"));
        assert!(check_amount("1.25").is_err());
        assert!(check_amount("-1").is_err());
        assert!(check_amount("ten").is_err());
        assert!(
            check_amount("99999999").is_err(),
            "past the largest transfer amount"
        );
    }
}
