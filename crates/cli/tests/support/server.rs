//! A real `sts serve` for end-to-end tests: a KMC and a security module made with the `sts`
//! binary, API keys, the server process, and plain HTTP/1.1 requests to it.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::panic)]

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

/// A temporary directory, removed on drop.
pub struct Dir(pub PathBuf);

impl Dir {
    pub fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `sts ARGS` in `dir`; its trimmed standard output.
pub fn sts(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sts"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A KMC and a security module (`sm.db`, passphrase in `sm.pass`) holding one DKGA04 vending
/// key (KRN 1, base date 2014) for a fresh SGC; returns the SGC.
pub fn keys(dir: &Path) -> String {
    std::fs::write(dir.join("kmc.pass"), "correct horse battery staple\n").unwrap();
    std::fs::write(dir.join("sm.pass"), "another long sm passphrase\n").unwrap();
    let k = ["--store", "kmc.db", "--passphrase-file", "kmc.pass"];
    let m = ["--store", "sm.db", "--passphrase-file", "sm.pass"];
    let run = |a: &[&str], b: &[&str], c: &[&str]| sts(dir, &[a, b, c].concat());
    let kmc_pub = run(&["kmc", "init"], &k, &["--kdf-cost", "insecure-for-tests"]);
    let owner = run(
        &["kmc", "register-owner"],
        &k,
        &["--name", "U", "--contact", "u@example.org"],
    );
    let sgc = run(&["kmc", "allocate-sgc"], &k, &["--owner", &owner]);
    run(
        &["kmc", "request-key"],
        &k,
        &[
            "--owner",
            &owner,
            "--sgc",
            &sgc,
            "--activation",
            "2020-01-01 00:00",
        ],
    );
    let sm_pub = run(
        &["sm", "init"],
        &m,
        &[
            "--id",
            "SM-1",
            "--kmc-public-key",
            &kmc_pub,
            "--kdf-cost",
            "insecure-for-tests",
        ],
    );
    run(
        &["kmc", "register-sm"],
        &k,
        &["--sm", "SM-1", "--sm-public-key", &sm_pub],
    );
    run(
        &["kmc", "authorize"],
        &k,
        &["--owner", &owner, "--key", "1", "--sm", "SM-1"],
    );
    run(
        &["kmc", "keyload"],
        &k,
        &[
            "--owner", &owner, "--sm", "SM-1", "--key", "1", "--out", "klf.txt",
        ],
    );
    run(&["sm", "import"], &m, &["--file", "klf.txt"]);
    sgc
}

/// A new API key with `role` in the server's database (`vend.db`).
pub fn api_key(dir: &Path, role: &str) -> String {
    sts(
        dir,
        &[
            "api-key",
            "create",
            "--database",
            "sqlite://vend.db",
            "--role",
            role,
            "--name",
            &format!("test {role}"),
        ],
    )
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `sts serve`, killed on drop; its standard error goes to `serve.log` in the
/// directory.
pub struct Server {
    pub port: u16,
    pub log: PathBuf,
    child: Child,
}

impl Server {
    /// Starts `sts serve` in `dir` on a free port and waits until `/healthz` answers 200.
    pub fn start(dir: &Path) -> Self {
        let port = free_port();
        let log = dir.join("serve.log");
        let child = Command::new(env!("CARGO_BIN_EXE_sts"))
            .current_dir(dir)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--database",
                "sqlite://vend.db",
            ])
            .args(["--store", "sm.db", "--passphrase-file", "sm.pass"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let server = Self { port, log, child };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if request(port, "GET", "/healthz", None, None).is_some_and(|(s, _)| s == 200) {
                return server;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "sts serve did not become healthy on port {port}:\n{}",
            server.logs()
        );
    }

    /// Kills the process with SIGKILL (no shutdown, no flush) and waits for it.
    pub fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// What the server logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request with a JSON body; `None` when the connection fails.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> Option<(u16, Value)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let json = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    Some((status, json))
}
