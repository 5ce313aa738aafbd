//! `sts tariff` and `sts report` against a real `sts serve`: a tariff set at the command line
//! while the server runs prices its next money vend (no restart), refusals name the flags
//! and store nothing, and the daily report counts the sale (text, JSON and CSV).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers fail loudly

#[path = "support/server.rs"]
mod server;

use std::process::Command;

use serde_json::{Value, json};
use server::{Dir, Server, api_key, keys, request, sts};

/// Runs `sts ARGS` in `dir`: exit code, stdout, stderr.
fn run(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sts"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// `YYYY-MM-DD` of the day `offset` days from today (UTC).
fn day(offset: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (y, m, d, _, _) =
        sts_core::UtcMinute::from_unix_seconds(i64::try_from(now).unwrap() + offset * 86_400)
            .to_civil();
    format!("{y:04}-{m:02}-{d:02}")
}

#[test]
fn a_tariff_set_at_the_command_line_prices_the_running_servers_next_sale() {
    let dir = Dir::new("sts-tariff");
    let d = &dir.0;
    let sgc = keys(d);
    let admin = api_key(d, "admin");
    let vendor = api_key(d, "vendor");
    let server = Server::start(d);
    let port = server.port;
    let pan = "600727000000000009";
    let meter = json!({"pan": pan, "sgc": sgc, "ti": "01", "krn": "1", "kt": "2", "ea": "07", "dkga": "04", "base_date": "2014"});
    let (status, body) = request(port, "POST", "/v1/meters", Some(&admin), Some(&meter)).unwrap();
    assert_eq!(status, 201, "{body}");
    let sale = |id: &str| {
        let vend =
            json!({"request_id": id, "meter": pan, "token": {"type": "money", "amount": "100.00"}});
        request(port, "POST", "/v1/vends", Some(&vendor), Some(&vend)).unwrap()
    };
    let (status, body) = sale("before");
    assert_eq!(
        (status, &body["code"]),
        (409, &json!("no_tariff")),
        "{body}"
    );

    // Refused: every bad flag named, nothing stored.
    let (code, out, err) = run(
        d,
        &[
            "tariff",
            "set",
            "--database",
            "sqlite://vend.db",
            "--utility",
            "steam",
            "--ti",
            "01",
            "--currency",
            "ZAR",
            "--price",
            "-1",
            "--effective-from",
            "2020-01-01",
        ],
    );
    assert_eq!(code, 2, "{out}{err}");
    for words in [
        "error: tariff refused: ",
        "--effective-from: 2020-01-01T00:00:00Z is in the past",
        "--price: must not be negative",
        "--utility: one of electricity, water, gas, time",
        "hint: nothing was stored",
    ] {
        assert!(err.contains(words), "{words} not in {err}");
    }
    let listed: Value = serde_json::from_str(&sts(
        d,
        &["--json", "tariff", "list", "--database", "sqlite://vend.db"],
    ))
    .unwrap();
    assert_eq!(listed["tariffs"], json!([]));

    let set = sts(
        d,
        &[
            "tariff",
            "set",
            "--database",
            "sqlite://vend.db",
            "--utility",
            "electricity",
            "--ti",
            "01",
            "--currency",
            "ZAR",
            "--price",
            "2.4536",
            "--allowance",
            "50",
        ],
    );
    assert!(
        set.starts_with("tariff 1: electricity TI 01 version 1, 2.4536 ZAR/kWh from "),
        "{set}"
    );
    assert!(set.ends_with(", free allowance 50.0 kWh a month"), "{set}");
    let listed = sts(d, &["tariff", "list", "--database", "sqlite://vend.db"]);
    assert!(
        listed.starts_with("tariff 1: ") && listed.ends_with(" (in force)"),
        "{listed}"
    );

    // The running server sees the new version at its next sale.
    let (status, body) = sale("after");
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["money"]["units"], "40.7");
    assert_eq!(body["money"]["change"], "0.13848");
    assert_eq!(body["tariff"]["id"], 1);
    assert_eq!(body["allowance"]["units"], "50.0");
    assert_eq!(body["tokens"].as_array().unwrap().len(), 2);
    drop(server);

    // The report counts it, in every form; the range is around today (UTC).
    let (from, to) = (day(-1), day(1));
    let report = [
        "report",
        "daily",
        "--database",
        "sqlite://vend.db",
        "--from",
        &from,
        "--to",
        &to,
    ];
    let csv = sts(d, &[&report[..], &["--csv"]].concat());
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(
        lines[0].starts_with("day,vendor,vendor_name,tariff_id,"),
        "{csv}"
    );
    assert!(
        lines[1].contains(",test vendor,1,1,electricity,01,ZAR,1,40.7,100.00,1,50.0"),
        "{csv}"
    );
    let json: Value = serde_json::from_str(&sts(d, &[&["--json"], &report[..]].concat())).unwrap();
    assert_eq!(json["rows"][0]["money"], "100.00");
    let text = sts(d, &report);
    assert!(
        text.contains("money 100.00 ZAR") && text.contains("units 40.7"),
        "{text}"
    );
    let (code, _, err) = run(
        d,
        &[
            "report",
            "daily",
            "--database",
            "sqlite://vend.db",
            "--from",
            "2026-02-30",
            "--to",
            "x",
        ],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("--from: no such date") && err.contains("--to: expected a date YYYY-MM-DD"),
        "{err}"
    );
    assert!(err.contains("hint: "), "{err}");
}
