//! `sts meter`: a meter simulator whose state survives in a file, end to end.

#![allow(clippy::unwrap_used, clippy::panic)] // test helpers fail loudly

use std::{
    path::{Path, PathBuf},
    process::Output,
};

use assert_cmd::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sts() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sts"));
    cmd.current_dir(repo())
        .env_remove("STS_VENDING_KEY")
        .env_remove("STS_DECODER_KEY")
        .env_remove("STS_METER_STATE_KEY");
    cmd
}

fn text(out: &Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout.clone()).unwrap(),
        String::from_utf8(out.stderr.clone()).unwrap(),
    )
}

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("sts-meter-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A DKGA04/EA07 meter on base date 1993 (SGC 123457, the STS 531-1-0-02 test meter).
fn meter_1993(krn: &str, base: &str) -> Vec<String> {
    [
        "--pan",
        "600727000000000009",
        "--sgc",
        "123457",
        "--ti",
        "01",
        "--krn",
        krn,
        "--base-date",
        base,
        "--vending-key-file",
        "examples/test-vending-key-dkga04.hex",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

fn issue(args: &[&str], meter: &[String]) -> String {
    let out = sts().arg("issue").args(args).args(meter).output().unwrap();
    let (code, stdout, stderr) = text(&out);
    assert_eq!(code, 0, "{stderr}");
    stdout.trim().to_owned()
}

fn create(dir: &Dir, meter: &[String]) -> (PathBuf, PathBuf) {
    let (state, key) = (dir.path("meter.json"), dir.path("state.key"));
    let out = sts()
        .args(["meter", "create", "--state"])
        .arg(&state)
        .arg("--state-key-file")
        .arg(&key)
        .args(meter)
        .output()
        .unwrap();
    let (code, _, stderr) = text(&out);
    assert_eq!(code, 0, "{stderr}");
    (state, key)
}

fn enter(state: &Path, key: &Path, tokens: &[&str]) -> (i32, String, String) {
    text(
        &sts()
            .args(["meter", "enter", "--state"])
            .arg(state)
            .arg("--state-key-file")
            .arg(key)
            .args(tokens)
            .output()
            .unwrap(),
    )
}

#[test]
fn the_2024_rollover_end_to_end() {
    let dir = Dir::new("rollover");
    let old = meter_1993("1", "1993");
    let new = meter_1993("2", "2014");
    let (state, key) = create(&dir, &old);

    let before = issue(
        &["credit", "--amount", "10", "--time", "2024-11-20 08:00"],
        &old,
    );
    let (code, stdout, _) = enter(&state, &key, &[&before]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("10.0 kWh of electricity added"), "{stdout}");

    // After 2024-11-24 20:15 no 1993 TID exists: the vending side refuses.
    let late = text(
        &sts()
            .arg("issue")
            .args(["credit", "--amount", "1", "--time", "2024-11-25 08:00"])
            .args(&old)
            .output()
            .unwrap(),
    );
    assert_eq!(late.0, 2);
    assert!(late.2.contains("rollover"), "{}", late.2);

    // The rollover key change: base 2014, KRN 2, RO set; entered through standard input.
    let kct = text(
        &sts()
            .args(["key-change", "--new-base-date", "2014", "--new-krn", "2"])
            .args(&old)
            .output()
            .unwrap(),
    );
    assert_eq!(kct.0, 0, "{}", kct.2);
    let out = sts()
        .args(["meter", "enter", "--file", "-", "--state"])
        .arg(&state)
        .arg("--state-key-file")
        .arg(&key)
        .write_stdin(kct.1.clone())
        .output()
        .unwrap();
    let (code, stdout, stderr) = text(&out);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("1stKCT") && stdout.contains("base date 2014, TID memory cleared"),
        "{stdout}"
    );

    let after = issue(
        &["credit", "--amount", "25", "--time", "2024-12-01 09:30"],
        &new,
    );
    let (code, stdout, _) = enter(&state, &key, &[&after, &before, &after]);
    assert_eq!(code, 1, "two of three are rejected: {stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].contains("balance 35.0"), "{stdout}");
    assert!(
        lines[1].contains("CRC (13)"),
        "the 1993 token is for the old key: {stdout}"
    );
    assert!(lines[2].contains("Used (10)"), "{stdout}");

    let show = text(
        &sts()
            .args(["meter", "show", "--state"])
            .arg(&state)
            .output()
            .unwrap(),
    );
    assert!(
        show.1.contains("KRN 2")
            && show.1.contains("base date 2014")
            && show.1.contains("35.0 kWh"),
        "{}",
        show.1
    );
    let history = text(
        &sts()
            .args(["--json", "meter", "history", "--state"])
            .arg(&state)
            .output()
            .unwrap(),
    );
    let entries: serde_json::Value = serde_json::from_str(&history.1).unwrap();
    assert_eq!(entries.as_array().map(Vec::len), Some(6));
}

#[test]
fn the_state_file_never_holds_the_key_in_clear_and_resists_editing() {
    let dir = Dir::new("sealed");
    let meter = meter_1993("1", "2014");
    let (state, key) = create(&dir, &meter);
    let token = issue(
        &["credit", "--amount", "5", "--time", "2020-01-01 00:00"],
        &meter,
    );
    assert_eq!(enter(&state, &key, &[&token]).0, 0);

    // DKGA04 key of this meter (SGC 123457, KRN 1, base 2014) is not in the file, in any case.
    let dk = text(&sts().arg("derive-key").args(&meter).output().unwrap())
        .1
        .trim()
        .to_owned();
    assert_eq!(dk.len(), 16);
    let file = std::fs::read_to_string(&state).unwrap();
    assert!(
        !file.to_uppercase().contains(&dk),
        "decoder key in clear in the state file"
    );

    // Editing the clear part (more credit) is detected, and the file is left as it was.
    let edited = file.replacen("\"electricity\": 50", "\"electricity\": 5000", 1);
    assert_ne!(edited, file, "the test must change something");
    std::fs::write(&state, &edited).unwrap();
    let (code, _, stderr) = enter(&state, &key, &[&token]);
    assert_eq!(code, 2);
    assert!(stderr.contains("modified"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&state).unwrap(),
        edited,
        "a failed load must not rewrite the file"
    );

    // The wrong state key cannot open it either.
    std::fs::write(&state, &file).unwrap();
    let other = dir.path("other.key");
    std::fs::write(&other, "00".repeat(32)).unwrap();
    let (code, _, stderr) = enter(&state, &other, &[&token]);
    assert_eq!(code, 2);
    assert!(stderr.contains("wrong state key"), "{stderr}");
}

#[test]
fn a_corrupt_state_file_is_reported_and_the_previous_good_state_kept() {
    let dir = Dir::new("corrupt");
    let meter = meter_1993("1", "2014");
    let (state, key) = create(&dir, &meter);
    let t1 = issue(
        &["credit", "--amount", "1", "--time", "2020-01-01 00:00"],
        &meter,
    );
    let t2 = issue(
        &["credit", "--amount", "2", "--time", "2020-01-01 00:05"],
        &meter,
    );
    assert_eq!(enter(&state, &key, &[&t1]).0, 0);
    assert_eq!(enter(&state, &key, &[&t2]).0, 0);
    let prev = dir.path("meter.json.prev");
    let good_prev = std::fs::read(&prev).unwrap();
    assert!(
        String::from_utf8_lossy(&good_prev).contains(&t1),
        "FILE.prev holds the state before the last save"
    );

    let full = std::fs::read(&state).unwrap();
    std::fs::write(&state, &full[..full.len() / 2]).unwrap();
    let (code, stdout, stderr) = enter(&state, &key, &[&t2]);
    assert_eq!(code, 2);
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("corrupt") && stderr.contains("meter.json.prev"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(&prev).unwrap(),
        good_prev,
        "the previous good state is untouched"
    );

    // Restoring the previous state works, and it remembers the first token.
    std::fs::copy(&prev, &state).unwrap();
    let (code, stdout, _) = enter(&state, &key, &[&t1]);
    assert_eq!(code, 1);
    assert!(stdout.contains("Used"), "{stdout}");
}

#[test]
fn create_refuses_to_overwrite_and_needs_a_state_key() {
    let dir = Dir::new("create");
    let meter = meter_1993("1", "2014");
    let (state, key) = create(&dir, &meter);
    let again = text(
        &sts()
            .args(["meter", "create", "--state"])
            .arg(&state)
            .arg("--state-key-file")
            .arg(&key)
            .args(&meter)
            .output()
            .unwrap(),
    );
    assert_eq!(again.0, 2);
    assert!(
        again.2.contains("already exists") && again.2.contains("--force"),
        "{}",
        again.2
    );
    let no_key = text(
        &sts()
            .args(["meter", "enter", "--state"])
            .arg(&state)
            .arg("12345678901234567890")
            .output()
            .unwrap(),
    );
    assert_eq!(no_key.0, 2);
    assert!(no_key.2.contains("no state key"), "{}", no_key.2);
    let missing = text(
        &sts()
            .args(["meter", "show", "--state"])
            .arg(dir.path("nope.json"))
            .output()
            .unwrap(),
    );
    assert_eq!(missing.0, 2);
    assert!(missing.2.contains("meter create"), "{}", missing.2);
    // A malformed token is the meter's Format rejection, not a CLI error.
    let (code, stdout, _) = enter(&state, &key, &["1234"]);
    assert_eq!(code, 1);
    assert!(stdout.contains("Format (6)"), "{stdout}");
}

#[test]
fn conformance_meter_mode_over_the_shared_vectors() {
    let vectors = repo().join("../shared/vectors/sts-vectors.jsonl");
    let (code, stdout, _) = text(
        &sts()
            .args(["conformance", "--meter"])
            .arg(&vectors)
            .output()
            .unwrap(),
    );
    assert_eq!(code, 0);
    assert_eq!(
        stdout.lines().last(),
        Some("401 passed, 0 failed, 303 skipped")
    );
}
