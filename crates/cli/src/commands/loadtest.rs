//! `sts loadtest`: concurrent credit vends against a running `sts serve`, reporting vends per
//! second, latency percentiles and errors, and checking that no meter got one TID twice.
//!
//! The client is a minimal HTTP/1.1 client over a tokio `TcpStream` with keep-alive: one
//! connection per simulated point of sale, one request at a time on it.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::PathBuf,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use clap::Args;
use serde_json::{Value, json};
use sts_core::MeterPan;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

use crate::{
    Outcome,
    failure::{Failure, Hint, fail},
    output::print_json,
};

#[derive(Debug, Args)]
pub(crate) struct LoadtestArgs {
    /// The vending service: `http://HOST:PORT`.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// File holding a vendor (or admin) API key; default the environment variable STS_API_KEY.
    #[arg(long, value_name = "FILE")]
    api_key_file: Option<PathBuf>,
    /// File holding an admin API key, to register the meters (with --sgc); default the
    /// environment variable STS_ADMIN_KEY.
    #[arg(long, value_name = "FILE")]
    admin_key_file: Option<PathBuf>,
    /// How many meters to vend to: the PANs of the 11-digit DRNs from --first-drn on.
    #[arg(long, default_value_t = 10)]
    meters: u64,
    /// The first meter's DRN (11 digits, IIN 600727).
    #[arg(long, default_value = "90000000000")]
    first_drn: u64,
    /// Register the meters first (an existing one is fine) with this SGC and a DKGA04,
    /// EA07, TI 01, KRN 1, KT 2, base date 2014 key record. Without it they must exist.
    #[arg(long)]
    sgc: Option<String>,
    /// Concurrent clients, each on its own keep-alive connection.
    #[arg(long, default_value_t = 64)]
    clients: u64,
    /// Stop after this many vends in all (default: run for --seconds).
    #[arg(long, conflicts_with = "seconds")]
    requests: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// The credit of each token, in units (kWh ...); with --money, the money paid.
    #[arg(long, default_value = "1.0")]
    amount: String,
    /// Sell money (`{"type": "money"}`), priced by the tariff in force for the meters (TI 01:
    /// create one with `sts tariff set`), instead of units.
    #[arg(long)]
    money: bool,
}

/// One answer the service gave: the status, or `None` for a connection failure.
struct Sample {
    status: Option<u16>,
    latency: Duration,
    /// On 201: the meter and the credit token's TID.
    tid: Option<(usize, u64)>,
}

/// Where the load goes and how.
struct Target {
    host: String,
    key: String,
    pans: Vec<MeterPan>,
    run: String,
    amount: String,
    /// The token type: `credit` (units) or `money`.
    kind: &'static str,
    next: AtomicU64,
    done: AtomicU64,
    limit: Option<u64>,
    deadline: Instant,
}

impl Target {
    /// The next request's sequence number, or `None` when the run is over.
    fn take(&self) -> Option<u64> {
        if Instant::now() >= self.deadline {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.limit.is_none_or(|limit| n < limit).then_some(n)
    }
}

pub(crate) fn key(file: Option<&PathBuf>, env: &str, what: &str) -> Result<String, Failure> {
    let text = match file {
        Some(path) => std::fs::read_to_string(path).hint(
            format!("cannot read {}", path.display()),
            "pass a file holding one API key (sts_...)",
        )?,
        None => std::env::var(env).map_err(|_| {
            fail(
                format!("no {what} key"),
                format!(
                    "set {env} or pass the key file option (create one with `sts api-key create`)"
                ),
            )
        })?,
    };
    Ok(text.trim().to_owned())
}

pub(crate) fn host(url: &str) -> Result<String, Failure> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        fail(
            format!("--url {url} is not http://HOST:PORT"),
            "the load generator speaks plain HTTP/1.1; put a TLS proxy's backend address here",
        )
    })?;
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains('/') {
        return Err(fail(
            format!("--url {url} is not http://HOST:PORT"),
            "give the service's address without a path",
        ));
    }
    Ok(if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:80")
    })
}

/// A keep-alive HTTP/1.1 connection.
pub(crate) struct Connection {
    stream: BufReader<TcpStream>,
}

impl Connection {
    pub(crate) async fn open(host: &str) -> std::io::Result<Self> {
        let stream = TcpStream::connect(host).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream: BufReader::new(stream),
        })
    }

    /// Sends one request and reads the answer: status and JSON body (null if none).
    pub(crate) async fn send(
        &mut self,
        host: &str,
        method: &str,
        path: &str,
        key: &str,
        body: &str,
    ) -> std::io::Result<(u16, Value)> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let stream = self.stream.get_mut();
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        let bad =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
        let mut line = String::new();
        if self.stream.read_line(&mut line).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("no status line"))?;
        let mut length = 0usize;
        loop {
            line.clear();
            if self.stream.read_line(&mut line).await? == 0 {
                return Err(bad("headers cut short"));
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value
                    .trim()
                    .parse()
                    .map_err(|_| bad("bad content-length"))?;
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await?;
        Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
    }
}

async fn register(target: &Target, admin: &str, sgc: &str) -> Result<(), Failure> {
    let mut conn = Connection::open(&target.host).await.hint(
        format!("cannot connect to {}", target.host),
        "start the service with `sts serve` and check --url",
    )?;
    for pan in &target.pans {
        let meter = json!({"pan": pan.as_str(), "sgc": sgc, "ti": "01", "krn": "1", "kt": "2", "ea": "07", "dkga": "04", "base_date": "2014"});
        let (status, body) = conn
            .send(
                &target.host,
                "POST",
                "/v1/meters",
                admin,
                &meter.to_string(),
            )
            .await
            .hint("cannot register the meters", "check that the service is up")?;
        if status != 201 && status != 409 {
            return Err(fail(
                format!("registering meter {pan}: {status} {body}"),
                "pass an admin key (--admin-key-file or STS_ADMIN_KEY) and the SGC of a key the security module holds",
            ));
        }
    }
    Ok(())
}

/// One client: vends until the run is over, on one connection (reopened after a failure).
async fn client(target: Arc<Target>) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut conn: Option<Connection> = None;
    while let Some(n) = target.take() {
        let meter = usize::try_from(n % target.pans.len() as u64).unwrap_or(0);
        let body = json!({
            "request_id": format!("{}-{n}", target.run),
            "meter": target.pans[meter].as_str(),
            "token": {"type": target.kind, "amount": target.amount},
        })
        .to_string();
        let started = Instant::now();
        let answer = match &mut conn {
            Some(c) => {
                c.send(&target.host, "POST", "/v1/vends", &target.key, &body)
                    .await
            }
            None => match Connection::open(&target.host).await {
                Ok(c) => {
                    conn.insert(c)
                        .send(&target.host, "POST", "/v1/vends", &target.key, &body)
                        .await
                }
                Err(e) => Err(e),
            },
        };
        let latency = started.elapsed();
        let sample = match answer {
            Ok((status, body)) => Sample {
                status: Some(status),
                latency,
                tid: (status == 201)
                    .then(|| body["tid"].as_u64().map(|tid| (meter, tid)))
                    .flatten(),
            },
            Err(_) => {
                conn = None;
                // Do not spin on a server that is down.
                tokio::time::sleep(Duration::from_millis(10)).await;
                Sample {
                    status: None,
                    latency,
                    tid: None,
                }
            }
        };
        samples.push(sample);
        target.done.fetch_add(1, Ordering::Relaxed);
    }
    samples
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    // Nearest rank: the smallest value with at least p of the samples at or below it.
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

pub(crate) fn run(args: &LoadtestArgs, json: bool) -> Outcome {
    if args.meters == 0 || args.clients == 0 {
        return Err(fail(
            "--meters and --clients must be at least 1",
            "e.g. --meters 10 --clients 64",
        ));
    }
    let pans = (0..args.meters)
        .map(|i| MeterPan::from_drn(&format!("{:011}", args.first_drn + i)))
        .collect::<Result<Vec<_>, _>>()
        .hint(
            "--first-drn and --meters give DRNs past 11 digits",
            "use a smaller --first-drn",
        )?;
    let key = key(args.api_key_file.as_ref(), "STS_API_KEY", "vendor API")?;
    let admin = match &args.sgc {
        Some(_) => Some(key_admin(args)?),
        None => None,
    };
    let host = host(&args.url)?;
    let started_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .hint(
            "cannot start the async runtime",
            "this is a bug: please report it",
        )?;
    runtime.block_on(async {
        let mut target = Target {
            host,
            key,
            pans,
            run: format!("loadtest-{started_at}-{}", std::process::id()),
            amount: args.amount.clone(),
            kind: if args.money { "money" } else { "credit" },
            next: AtomicU64::new(0),
            done: AtomicU64::new(0),
            limit: args.requests,
            deadline: Instant::now() + Duration::from_secs(86_400),
        };
        if let (Some(sgc), Some(admin)) = (&args.sgc, &admin) {
            register(&target, admin, sgc).await?;
        }
        let start = Instant::now();
        if args.requests.is_none() {
            target.deadline = start + Duration::from_secs(args.seconds);
        }
        let target = Arc::new(target);
        let clients: Vec<_> = (0..args.clients)
            .map(|_| tokio::spawn(client(Arc::clone(&target))))
            .collect();
        let progress = {
            let target = Arc::clone(&target);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                tick.tick().await;
                let mut last = 0;
                loop {
                    tick.tick().await;
                    let done = target.done.load(Ordering::Relaxed);
                    eprintln!(
                        "loadtest: {:>4.0} s  {done} answers  {}/s",
                        start.elapsed().as_secs_f64(),
                        done - last
                    );
                    last = done;
                }
            })
        };
        let mut samples = Vec::new();
        for c in clients {
            samples.extend(
                c.await
                    .hint("a client task failed", "this is a bug: please report it")?,
            );
        }
        let elapsed = start.elapsed();
        progress.abort();
        report(&target, &samples, elapsed, args.clients, json)
    })
}

fn key_admin(args: &LoadtestArgs) -> Result<String, Failure> {
    key(args.admin_key_file.as_ref(), "STS_ADMIN_KEY", "admin API")
}

fn report(
    target: &Target,
    samples: &[Sample],
    elapsed: Duration,
    clients: u64,
    json: bool,
) -> Outcome {
    let mut latencies: Vec<Duration> = samples
        .iter()
        .filter(|s| s.status == Some(201))
        .map(|s| s.latency)
        .collect();
    latencies.sort_unstable();
    let ok = latencies.len();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for s in samples.iter().filter(|s| s.status != Some(201)) {
        let name = s
            .status
            .map_or_else(|| "connection".to_owned(), |c| c.to_string());
        *errors.entry(name).or_default() += 1;
    }
    // Every TID answered for a meter must be new for that meter.
    let mut seen: HashMap<usize, HashSet<u64>> = HashMap::new();
    let mut duplicates = 0u64;
    for (meter, tid) in samples.iter().filter_map(|s| s.tid) {
        if !seen.entry(meter).or_default().insert(tid) {
            duplicates += 1;
            eprintln!(
                "loadtest: duplicate TID {tid} for meter {}",
                target.pans[meter]
            );
        }
    }
    let missing_tid = samples
        .iter()
        .filter(|s| s.status == Some(201) && s.tid.is_none())
        .count();
    let seconds = elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        ok as f64 / seconds
    } else {
        0.0
    };
    let (p50, p99, max) = (
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default(),
    );
    if json {
        print_json(&json!({
            "clients": clients,
            "meters": target.pans.len(),
            "seconds": (seconds * 100.0).round() / 100.0,
            "vends": ok,
            "vends_per_second": rate.round(),
            "latency_ms": {"p50": millis(p50), "p99": millis(p99), "max": millis(max)},
            "errors": errors,
            "duplicate_tids": duplicates,
            "answers_without_tid": missing_tid,
        }));
    } else {
        println!(
            "{ok} vends in {seconds:.2} s from {clients} clients to {} meters: {rate:.0} vends/s",
            target.pans.len()
        );
        println!(
            "latency: p50 {} ms, p99 {} ms, max {} ms",
            millis(p50),
            millis(p99),
            millis(max)
        );
        if errors.is_empty() {
            println!("errors: none");
        } else {
            let list: Vec<String> = errors.iter().map(|(k, v)| format!("{k} x{v}")).collect();
            println!("errors: {}", list.join(", "));
        }
        println!(
            "TIDs: {} answered, {duplicates} duplicate per meter{}",
            ok - missing_tid,
            if missing_tid > 0 {
                format!(", {missing_tid} answers without a TID")
            } else {
                String::new()
            }
        );
    }
    if duplicates > 0 || missing_tid > 0 {
        eprintln!(
            "error: the service answered a TID twice for one meter, or a credit vend without a TID"
        );
        eprintln!(
            "hint: this breaks the service's guarantee: keep the server's logs and report it"
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
