//! `sts vend bulk` against a real `sts serve`: good rows vended concurrently, bad rows
//! reported per line without stopping the others, a second run reprints, exit 1 on failures.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers fail loudly

#[path = "support/server.rs"]
mod server;

use std::process::Command;

use serde_json::{Value, json};
use server::{Dir, Server, api_key, keys, request};

fn pan(n: u64) -> String {
    sts_core::MeterPan::from_drn(&format!("{n:011}"))
        .unwrap()
        .to_string()
}

fn bulk(dir: &std::path::Path, port: u16, vendor: &str, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sts"))
        .current_dir(dir)
        .args([
            "vend",
            "bulk",
            "--file",
            "sales.csv",
            "--report",
            "report.csv",
            "--clients",
            "4",
        ])
        .args(["--url", &format!("http://127.0.0.1:{port}")])
        .args(extra)
        .env("STS_API_KEY", vendor)
        .output()
        .unwrap()
}

fn report(dir: &std::path::Path) -> Vec<Vec<String>> {
    let mut rdr = csv::Reader::from_path(dir.join("report.csv")).unwrap();
    assert_eq!(
        rdr.headers().unwrap().iter().collect::<Vec<_>>(),
        ["line", "request_id", "meter", "status", "tokens", "error"]
    );
    rdr.records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

#[test]
fn bulk_vending_reports_every_row_and_a_second_run_reprints() {
    let dir = Dir::new("sts-vend-bulk");
    let sgc = keys(&dir.0);
    let admin = api_key(&dir.0, "admin");
    let vendor = api_key(&dir.0, "vendor");
    let server = Server::start(&dir.0);
    let meters: Vec<String> = (0..3).map(|i| pan(70_000 + i)).collect();
    for p in &meters {
        let body = json!({"pan": p, "sgc": sgc, "ti": "01", "krn": "1", "kt": "2", "ea": "07",
                          "dkga": "04", "base_date": "2014"});
        let (status, answer) =
            request(server.port, "POST", "/v1/meters", Some(&admin), Some(&body)).unwrap();
        assert_eq!(status, 201, "{answer}");
    }
    let drn = &meters[2][6..17];
    let unregistered = pan(79_999);
    std::fs::write(
        dir.0.join("sales.csv"),
        format!(
            "request_id,meter,amount,note\n\
             b-1,{m0},12.5,first\n\
             b-2,{m1},1,\n\
             b-3,{drn},2.0,by DRN\n\
             b-4,600727000000000008,1,bad check digit\n\
             b-5,{m0},abc,bad amount\n\
             ,{m0},1,no request ID\n\
             b-1,{m1},3,repeated ID\n\
             b-6,{unregistered},1,not registered\n",
            m0 = meters[0],
            m1 = meters[1],
        ),
    )
    .unwrap();

    let out = bulk(&dir.0, server.port, &vendor, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("8 rows") && stdout.contains("3 ok, 0 reprint, 5 failed"),
        "{stdout}"
    );
    let rows = report(&dir.0);
    let status: Vec<&str> = rows.iter().map(|r| r[3].as_str()).collect();
    assert_eq!(
        status,
        [
            "ok", "ok", "ok", "failed", "failed", "failed", "failed", "failed"
        ]
    );
    let lines: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(lines, ["2", "3", "4", "5", "6", "7", "8", "9"]);
    for r in &rows[..3] {
        assert_eq!(r[4].len(), 20, "one 20-digit token: {r:?}");
        assert!(r[4].bytes().all(|b| b.is_ascii_digit()));
        assert!(r[5].is_empty());
        assert!(
            !stdout.contains(&r[4]) && !stderr.contains(&r[4]),
            "no token on the terminal"
        );
    }
    assert!(rows[3][5].contains("check digit"), "{:?}", rows[3]);
    assert!(rows[4][5].contains("bad amount"), "{:?}", rows[4]);
    assert_eq!(rows[5][5], "missing request ID");
    assert_eq!(rows[6][5], "duplicate request ID (first on line 2)");
    assert!(
        rows[7][5].starts_with("404:") && rows[7][5].contains("not found"),
        "{:?}",
        rows[7]
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.0.join("report.csv"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The service holds the three vends.
    let (s, vend) = request(server.port, "GET", "/v1/vends/b-1", Some(&vendor), None).unwrap();
    assert_eq!(s, 200);
    assert_eq!(vend["tokens"][0]["number"], rows[0][4]);

    // Again: the same tokens, as reprints.
    let first = rows;
    let out = bulk(&dir.0, server.port, &vendor, &[]);
    assert_eq!(out.status.code(), Some(1));
    let rows = report(&dir.0);
    for (a, b) in first[..3].iter().zip(&rows[..3]) {
        assert_eq!((b[3].as_str(), &b[4]), ("reprint", &a[4]));
    }

    // JSON summary; a file without the needed header is refused before anything is sent.
    let out = bulk(&dir.0, server.port, &vendor, &["--json"]);
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (summary["reprint"].as_u64(), summary["failed"].as_u64()),
        (Some(3), Some(5))
    );
    std::fs::write(
        dir.0.join("sales.csv"),
        "pan,amount\n600727000000000009,1\n",
    )
    .unwrap();
    std::fs::remove_file(dir.0.join("report.csv")).unwrap();
    let out = bulk(&dir.0, server.port, &vendor, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("meter, amount and request_id") && stderr.contains("hint:"),
        "{stderr}"
    );
    assert!(!dir.0.join("report.csv").exists(), "nothing written");

    // The service goes away: the rows that could not reach it, and the ones after, fail with
    // the reason; nothing hangs.
    let port = server.port;
    drop(server);
    let mut rows = String::from("meter,amount,request_id\n");
    for i in 0..40 {
        rows.push_str(&format!("{},1,down-{i}\n", meters[0]));
    }
    std::fs::write(dir.0.join("sales.csv"), rows).unwrap();
    let out = bulk(&dir.0, port, &vendor, &[]);
    assert_eq!(out.status.code(), Some(1));
    let rows = report(&dir.0);
    assert_eq!(rows.len(), 40);
    assert!(rows.iter().all(|r| r[3] == "failed"));
    assert!(rows[0][5].contains("cannot connect"), "{:?}", rows[0]);
    assert!(
        rows.iter().any(|r| r[5].starts_with("not sent:")),
        "later rows are not sent: {rows:?}"
    );
}
