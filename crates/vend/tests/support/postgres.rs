//! A PostgreSQL server for the tests of one test binary: started on first use in a temporary
//! directory on a free localhost port; a watchdog stops it and removes the directory when the
//! test process exits.
//!
//! PostgreSQL must be installed (Debian: `apt-get install postgresql`; `.ci/run` installs
//! it). Set `STS_PG_BIN` to its `bin` directory when it is not under `/usr/lib/postgresql`.
//! A missing server fails the tests with that message: they never skip themselves.

#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::panic
)]

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    sync::{
        OnceLock,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

pub struct PgServer {
    pub port: u16,
    _dir: tempfile::TempDir,
}

static SERVER: OnceLock<Result<PgServer, String>> = OnceLock::new();

fn bin_dir() -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var("STS_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("no /usr/lib/postgresql ({e})"))?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| "no /usr/lib/postgresql/*/bin/initdb".to_owned())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A command run as the `postgres` user when we are root (PostgreSQL refuses root).
fn as_server_user(program: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", program]);
        c
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start() -> Result<PgServer, String> {
    let bin = bin_dir()?;
    let dir = tempfile::Builder::new()
        .prefix("sts-vend-pg-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let data = dir.path().join("data");
    if is_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .map_err(|e| format!("chown: {e}"))?;
        if !status.success() {
            return Err("chown of the server directory to postgres failed".into());
        }
    }
    let initdb = bin.join("initdb");
    let out = as_server_user(initdb.to_str().unwrap())
        .args([
            "-D",
            data.to_str().unwrap(),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ])
        .output()
        .map_err(|e| format!("{}: {e}", initdb.display()))?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let port = free_port();
    let postgres = bin.join("postgres");
    let log = dir.path().join("server.log");
    // The watchdog stops the server when this test process is gone (even after kill -9).
    let script = format!(
        "'{postgres}' -D '{data}' -p {port} -k '{sock}' -c listen_addresses=127.0.0.1 -c max_connections=200 >'{log}' 2>&1 & pg=$!; \
         while [ -d /proc/{parent} ] && kill -0 $pg 2>/dev/null; do sleep 1; done; kill -INT $pg 2>/dev/null; wait $pg; rm -rf '{top}'",
        postgres = postgres.display(),
        data = data.display(),
        sock = dir.path().display(),
        top = dir.path().display(),
        log = log.display(),
        parent = std::process::id(),
    );
    as_server_user("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting postgres: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(format!(
                "postgres did not listen on port {port} within 60 s: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(PgServer { port, _dir: dir })
}

/// The shared server; panics with what to install when PostgreSQL is missing.
pub fn server() -> &'static PgServer {
    match SERVER.get_or_init(start) {
        Ok(s) => s,
        Err(e) => panic!(
            "these tests need a PostgreSQL server and could not start one: {e}\n\
             install it (Debian: apt-get install postgresql; .ci/run does), or set STS_PG_BIN to its bin directory"
        ),
    }
}

/// A new, empty database on the shared server; its URL.
pub async fn fresh_database() -> String {
    use sqlx::Connection;
    static N: AtomicU32 = AtomicU32::new(0);
    let server = server();
    let name = format!(
        "t{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    let admin = format!("postgres://postgres@127.0.0.1:{}/postgres", server.port);
    // The server may still be starting up even though it listens.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut conn = loop {
        match sqlx::PgConnection::connect(&admin).await {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("connecting to the test PostgreSQL: {e}"),
        }
    };
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    format!("postgres://postgres@127.0.0.1:{}/{name}", server.port)
}
