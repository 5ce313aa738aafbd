//! The `sts` binary end to end: stdout, stderr and exit codes, against STS 531 vectors.

#![allow(clippy::unwrap_used, clippy::panic)] // test helpers fail loudly

use std::path::PathBuf;

use assert_cmd::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sts() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sts"));
    cmd.current_dir(repo())
        .env_remove("STS_VENDING_KEY")
        .env_remove("STS_DECODER_KEY");
    cmd
}

/// The STS 531-1-07 test meter (PAN1, SGC 201457, TI 01, KRN 1, base 2014, DKGA04/EA07).
const METER: &[&str] = &[
    "--pan",
    "600727000000000009",
    "--sgc",
    "201457",
    "--ti",
    "01",
    "--krn",
    "1",
    "--vending-key-file",
    "examples/test-vending-key-dkga04.hex",
];

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(cmd: &mut Command) -> Run {
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

#[test]
fn issues_the_ctsa01_credit_token() {
    let r = run(sts()
        .args([
            "issue",
            "credit",
            "--amount",
            "0.1",
            "--time",
            "2014-03-01 13:00",
            "--rnd",
            "5",
        ])
        .args(METER));
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "7063 0503 4700 2872 6114\n"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("TID 85740"), "{}", r.stderr);
}

#[test]
fn issues_every_kind_and_decodes_it_back() {
    let kinds: &[&[&str]] = &[
        &["credit", "--amount", "12.5", "--service", "water"],
        &["currency", "--amount", "-1.5", "--service", "gas"],
        &["max-power", "--watts", "5000"],
        &["clear-credit", "--register", "electricity"],
        &["tariff-rate", "--rate", "7"],
        &["clear-tamper"],
        &["phase-unbalance", "--watts", "300"],
        &["water-factor", "--factor", "3"],
        &["extended", "--field", "FC00"],
    ];
    for kind in kinds {
        let issued = run(sts().arg("--json").arg("issue").args(*kind).args(METER));
        assert_eq!(issued.code, 0, "{kind:?}: {}", issued.stderr);
        let json: serde_json::Value = serde_json::from_str(&issued.stdout).unwrap();
        let token = json["token"].as_str().unwrap();
        let decoded = run(sts().arg("--json").arg("decode").arg(token).args(METER));
        assert_eq!(decoded.code, 0, "{kind:?}: {}", decoded.stderr);
        let back: serde_json::Value = serde_json::from_str(&decoded.stdout).unwrap();
        assert_eq!(back["valid"], true);
        assert_eq!(back["kind"], json["kind"], "{kind:?}");
        assert_eq!(back["tid"], json["tid"], "{kind:?}");
    }
}

#[test]
fn decode_explains_and_rejects() {
    let ok = run(sts()
        .args(["decode", "7063 0503 4700 2872 6114"])
        .args(METER));
    assert_eq!(ok.code, 0);
    assert!(
        ok.stdout
            .starts_with("valid: electricity credit 0.1 kWh, TID 85740 (2014-03-01 13:00 UTC)"),
        "{}",
        ok.stdout
    );

    let other_meter = run(sts().args(["decode", "70630503470028726115"]).args(METER));
    assert_eq!(other_meter.code, 1, "a CRC mismatch is a negative answer");
    assert!(
        other_meter.stdout.contains("CRC mismatch"),
        "{}",
        other_meter.stdout
    );

    let class_one = run(sts().args(["decode", "5649 3153 7254 5031 3471"]));
    assert_eq!(
        class_one.code, 0,
        "class 1 needs no key: {}",
        class_one.stderr
    );
    assert!(
        class_one.stdout.contains("meter test"),
        "{}",
        class_one.stdout
    );

    let no_key = run(sts().args(["decode", "70630503470028726114"]));
    assert_eq!(no_key.code, 2);
    assert!(
        no_key.stderr.contains("encrypted") && no_key.stderr.contains("hint:"),
        "{}",
        no_key.stderr
    );
}

#[test]
fn malformed_input_is_one_clear_line_and_exit_2() {
    let cases: &[(&[&str], &str)] = &[
        (&["decode", "7063 0503 4700 2872 611"], "19 digits"),
        (&["decode", "99999999999999999999"], "2^66"),
        (&["decode", "7063-0503-4700-2872-611x"], "character"),
        (&["issue", "credit", "--amount", "1.25"], "decimal places"),
        (
            &["issue", "credit", "--amount", "abc"],
            "not a decimal number",
        ),
        (&["issue", "credit", "--amount", "2000000"], "too large"),
        (&["issue", "max-power", "--watts", "99999999"], "18201624"),
        (&["issue", "clear-credit", "--register", "9"], "reserved"),
    ];
    for (args, needle) in cases {
        let r = run(sts().args(*args).args(METER));
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{args:?} printed {}", r.stdout);
        let first = r.stderr.lines().next().unwrap_or_default();
        assert!(first.starts_with("error: "), "{args:?}: {}", r.stderr);
    }
    let bad_pan = run(sts().args([
        "issue",
        "credit",
        "--amount",
        "1",
        "--pan",
        "600727000000000008",
    ]));
    assert_eq!(bad_pan.code, 2);
    assert!(
        bad_pan.stderr.contains("check digit is 8"),
        "{}",
        bad_pan.stderr
    );
    let bad_key = run(sts()
        .args([
            "derive-key",
            "--pan",
            "600727000000000009",
            "--sgc",
            "123456",
            "--ti",
            "1",
            "--krn",
            "1",
        ])
        .env("STS_VENDING_KEY", "ABABABABABABABZZ"));
    assert_eq!(bad_key.code, 2);
    assert!(bad_key.stderr.contains("hex"), "{}", bad_key.stderr);
}

#[test]
fn keys_never_come_from_the_command_line() {
    let r = run(sts().args(["derive-key", "--vending-key", "ABABABABABABABAB"]));
    assert_eq!(r.code, 2);
    // From the environment instead; DKGA02 worked example (STS-detail.md 11.1).
    let r = run(sts()
        .args([
            "derive-key",
            "--pan",
            "600727000000000009",
            "--sgc",
            "123456",
            "--ti",
            "01",
            "--krn",
            "1",
        ])
        .env("STS_VENDING_KEY", "ABABABABABABABAB"));
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "E653341F9D5BF36F\n"),
        "{}",
        r.stderr
    );
}

#[test]
fn key_change_set_matches_ctsa05() {
    // STS 531-1-07 CTSA05/4: a 3-token set to TI 02 (vector V0019).
    let r = run(sts()
        .args(["key-change", "--new-ti", "02", "--with-sgc"])
        .args(METER));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "5250 6022 8503 9960 3630\n2297 9178 2799 9720 8272\n3962 0459 0596 1503 7790\n"
    );
    // A base date may only move forward by one.
    let r = run(sts()
        .args(["key-change", "--new-base-date", "1993"])
        .args(METER));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("next base date"), "{}", r.stderr);
}

#[test]
fn refuses_to_issue_past_key_expiry() {
    // CTSA16: KEN 85 and 2004-04-01 09:30 on base 1993 (TID >> 16 = 90).
    let r = run(sts()
        .args([
            "issue",
            "credit",
            "--amount",
            "1",
            "--time",
            "2004-04-01 09:30",
            "--base-date",
            "1993",
            "--ken",
            "85",
        ])
        .args(METER));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("expired"), "{}", r.stderr);
}

#[test]
fn conformance_over_the_shared_vectors() {
    let vectors = repo().join("../shared/vectors/sts-vectors.jsonl");
    let r = run(sts().arg("conformance").arg(&vectors));
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_eq!(
        r.stdout.lines().last(),
        Some("702 passed, 0 failed, 2 skipped")
    );
    assert_eq!(
        r.stdout.lines().filter(|l| l.starts_with("SKIP ")).count(),
        2
    );
}

#[test]
fn conformance_reports_failures_with_exit_1() {
    let dir = std::env::temp_dir().join(format!("sts-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.jsonl");
    std::fs::write(&file, "{\"id\":\"T1\",\"v\":\"des_block\",\"key\":\"0123456789ABCDEF\",\"plaintext\":\"0123456789ABCDE7\",\"ciphertext\":\"C95744256A5ED31E\"}\n").unwrap();
    let r = run(sts().arg("conformance").arg(&file));
    assert_eq!(r.code, 1);
    assert!(
        r.stdout
            .contains("FAIL T1: encrypt: expected C95744256A5ED31E, got C95744256A5ED31D"),
        "{}",
        r.stdout
    );
    assert_eq!(
        r.stdout.lines().last(),
        Some("0 passed, 1 failed, 0 skipped")
    );
    let missing = run(sts().arg("conformance").arg(dir.join("nope.jsonl")));
    assert_eq!(missing.code, 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn class_one_test_token_needs_no_key() {
    let r = run(sts().args(["issue", "test"]));
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "5649 3153 7254 5031 3471\n"),
        "{}",
        r.stderr
    );
    let r = run(sts().args(["issue", "test", "--format", "long"]));
    assert_eq!(r.stdout, "0230 5843 0050 5295 1967\n");
}
