//! `sts serve` as a real process: kill -9 it while vending, restart it, and every vend it
//! acknowledged is still there - a retry with its request ID returns the very same tokens.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers fail loudly

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sts(dir: &Path, args: &[&str]) -> String {
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

/// A KMC, a security module holding one DKGA04 vending key for a fresh SGC; returns the SGC.
fn keys(dir: &Path) -> String {
    std::fs::write(dir.join("kmc.pass"), "correct horse battery staple\n").unwrap();
    std::fs::write(dir.join("sm.pass"), "another long sm passphrase\n").unwrap();
    let k = ["--store", "kmc.db", "--passphrase-file", "kmc.pass"];
    let m = ["--store", "sm.db", "--passphrase-file", "sm.pass"];
    let cat = |a: &[&str], b: &[&str]| -> Vec<String> {
        a.iter().chain(b).map(|s| (*s).to_owned()).collect()
    };
    let run = |args: Vec<String>| sts(dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let kmc_pub = run(cat(
        &["kmc", "init"],
        &[&k[..], &["--kdf-cost", "insecure-for-tests"]].concat(),
    ));
    let owner = run(cat(
        &["kmc", "register-owner"],
        &[&k[..], &["--name", "U", "--contact", "u@example.org"]].concat(),
    ));
    let sgc = run(cat(
        &["kmc", "allocate-sgc"],
        &[&k[..], &["--owner", &owner]].concat(),
    ));
    run(cat(
        &["kmc", "request-key"],
        &[
            &k[..],
            &[
                "--owner",
                &owner,
                "--sgc",
                &sgc,
                "--activation",
                "2020-01-01 00:00",
            ],
        ]
        .concat(),
    ));
    let sm_pub = run(cat(
        &["sm", "init"],
        &[
            &m[..],
            &[
                "--id",
                "SM-1",
                "--kmc-public-key",
                &kmc_pub,
                "--kdf-cost",
                "insecure-for-tests",
            ],
        ]
        .concat(),
    ));
    run(cat(
        &["kmc", "register-sm"],
        &[&k[..], &["--sm", "SM-1", "--sm-public-key", &sm_pub]].concat(),
    ));
    run(cat(
        &["kmc", "authorize"],
        &[&k[..], &["--owner", &owner, "--key", "1", "--sm", "SM-1"]].concat(),
    ));
    run(cat(
        &["kmc", "keyload"],
        &[
            &k[..],
            &[
                "--owner", &owner, "--sm", "SM-1", "--key", "1", "--out", "klf.txt",
            ],
        ]
        .concat(),
    ));
    run(cat(
        &["sm", "import"],
        &[&m[..], &["--file", "klf.txt"]].concat(),
    ));
    sgc
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(dir: &Path, port: u16) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sts"))
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
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if request(port, "GET", "/healthz", None, None).is_some_and(|(status, _)| status == 200) {
            return child;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("sts serve did not become healthy on port {port}");
}

/// One HTTP/1.1 request; `None` when the connection fails (the server is down).
fn request(
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

/// Request IDs the server acknowledged, with the tokens it returned.
type Acknowledged = Vec<(String, Vec<String>)>;

fn tokens(body: &Value) -> Vec<String> {
    let list = body["tokens"]
        .as_array()
        .unwrap_or_else(|| panic!("no tokens in {body}"));
    list.iter()
        .map(|t| {
            t["number"]
                .as_str()
                .unwrap_or_else(|| panic!("no number in {t}"))
                .to_owned()
        })
        .collect()
}

#[test]
fn kill_9_during_vending_loses_no_acknowledged_vend() {
    let dir = Dir(std::env::temp_dir().join(format!("sts-serve-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let sgc = keys(&dir.0);
    let admin = sts(
        &dir.0,
        &[
            "api-key",
            "create",
            "--database",
            "sqlite://vend.db",
            "--role",
            "admin",
            "--name",
            "test admin",
        ],
    );
    let vendor = sts(
        &dir.0,
        &[
            "api-key",
            "create",
            "--database",
            "sqlite://vend.db",
            "--role",
            "vendor",
            "--name",
            "pos-1",
        ],
    );
    assert!(admin.starts_with("sts_") && vendor.starts_with("sts_"));

    let port = free_port();
    let mut server = start(&dir.0, port);
    let meter = json!({"pan": "600727000000000009", "sgc": sgc, "ti": "01", "krn": "1", "kt": "2", "ea": "07", "dkga": "04", "base_date": "2014"});
    let (status, body) = request(port, "POST", "/v1/meters", Some(&admin), Some(&meter)).unwrap();
    assert_eq!(status, 201, "{body}");

    // Vend until killed; remember what the server acknowledged.
    let acknowledged: Arc<Mutex<Acknowledged>> = Arc::default();
    let seen = Arc::clone(&acknowledged);
    let vendor_key = vendor.clone();
    let load = std::thread::spawn(move || {
        for i in 0..10_000 {
            let id = format!("pos-1/{i:05}");
            let vend = json!({"request_id": id, "meter": "600727000000000009", "token": {"type": "credit", "amount": "1.5"}});
            match request(port, "POST", "/v1/vends", Some(&vendor_key), Some(&vend)) {
                Some((201, body)) => seen.lock().unwrap().push((id, tokens(&body))),
                Some((status, body)) => panic!("vend {id}: {status} {body}"),
                None => return, // the server is gone
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    while acknowledged.lock().unwrap().len() < 20 {
        assert!(Instant::now() < deadline, "too few vends acknowledged");
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill().unwrap(); // SIGKILL: no shutdown, no flush
    server.wait().unwrap();
    load.join().unwrap();
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 20);

    let mut server = start(&dir.0, port);
    for (id, issued) in &acknowledged {
        let (status, body) = request(
            port,
            "GET",
            &format!("/v1/vends/{}", id.replace('/', "%2F")),
            Some(&admin),
            None,
        )
        .unwrap();
        assert_eq!(status, 200, "{id}: {body}");
        assert_eq!(&tokens(&body), issued, "{id}");
        // A retry of the same request is a reprint of the same tokens, never a new token.
        let vend = json!({"request_id": id, "meter": "600727000000000009", "token": {"type": "credit", "amount": "1.5"}});
        let (status, body) =
            request(port, "POST", "/v1/vends", Some(&vendor), Some(&vend)).unwrap();
        assert_eq!(status, 200, "{id}: {body}");
        assert_eq!(body["reprint"], true);
        assert_eq!(&tokens(&body), issued, "{id}");
    }
    server.kill().unwrap();
    server.wait().unwrap();
}
