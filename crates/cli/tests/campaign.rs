//! `sts campaign` as a real process: Ctrl-C stops a run at a chunk boundary, `kill -9` half
//! way loses nothing committed, and the re-runs finish with every meter done exactly once -
//! the items, the meters' key records and the security module's audit log agree.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers fail loudly

use std::{
    path::Path,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use sts_core::{
    BaseDate, EncryptionAlgorithm, KeyDerivationAlgorithm, KeyExpiryNumber, MeterPan, Service,
    SupplyGroupCode, UtcMinute,
};
use sts_keys::{
    CreditLimit, KdfCost, KeyAttributes, Kmc, Passphrase, SecurityModule, SecurityModuleId,
    VendingKeyType, audit::BatchRecords,
};
use sts_vend::{Database, KeyRecord, Meter, MeterStatus};

const METERS: u64 = 6_000;
const CHUNK: u64 = 100;
const PASSPHRASE: &str = "campaign test sm passphrase";

fn sts(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sts"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn attributes(sgc: SupplyGroupCode, krn: u8, base_date: BaseDate) -> KeyAttributes {
    KeyAttributes {
        supply_group: sgc,
        key_type: VendingKeyType::Unique,
        derivation: KeyDerivationAlgorithm::Dkga02,
        key_revision: krn.try_into().unwrap(),
        key_expiry: KeyExpiryNumber::NEVER,
        base_date,
        activation: "2020-01-01 00:00".parse::<UtcMinute>().unwrap(),
        expiry: "2099-01-01 00:00".parse().unwrap(),
        issued_until: "2098-01-01 00:00".parse().unwrap(),
        credit_limit: CreditLimit::NONE,
    }
}

fn pan(i: u64) -> String {
    MeterPan::from_drn(&format!("{:011}", 50_000_000_000 + i))
        .unwrap()
        .to_string()
}

/// A security module (`sm.db`, passphrase in `sm.pass`) with KRN 1 (base 1993) and KRN 2
/// (base 2014) of one SGC, and `vend.db` with METERS meters on KRN 1.
async fn setup(dir: &Path) -> SupplyGroupCode {
    std::fs::write(dir.join("sm.pass"), format!("{PASSPHRASE}\n")).unwrap();
    let passphrase = Passphrase::new(PASSPHRASE).unwrap();
    let kmc = Kmc::create(
        &dir.join("kmc.db"),
        &passphrase,
        KdfCost::INSECURE_FOR_TESTS,
    )
    .await
    .unwrap();
    let owner = kmc.register_owner("U", "u@example.org").await.unwrap();
    let sgc = kmc.allocate_supply_group(owner).await.unwrap();
    let id: SecurityModuleId = "SM-CAMPAIGN".parse().unwrap();
    let sm = SecurityModule::create(
        &dir.join("sm.db"),
        &passphrase,
        KdfCost::INSECURE_FOR_TESTS,
        id.clone(),
        kmc.public_key(),
    )
    .await
    .unwrap();
    kmc.register_security_module(&id, &sm.public_key())
        .await
        .unwrap();
    let mut ids = Vec::new();
    for (krn, base) in [(1, BaseDate::Y1993), (2, BaseDate::Y2014)] {
        let record = kmc
            .request_vending_key(owner, &attributes(sgc, krn, base))
            .await
            .unwrap();
        kmc.authorize(owner, record.id, &id).await.unwrap();
        ids.push(record.id);
    }
    let file = kmc.issue_keyload(owner, &id, &ids).await.unwrap();
    sm.import_keyload(file.as_bytes()).await.unwrap();
    sm.close().await;
    let db = Database::connect(&format!("sqlite://{}", dir.join("vend.db").display()))
        .await
        .unwrap();
    let key = KeyRecord {
        supply_group: sgc,
        tariff_index: "01".parse().unwrap(),
        key_revision: "1".parse().unwrap(),
        key_type: "2".parse().unwrap(),
        base_date: BaseDate::Y1993,
        derivation: KeyDerivationAlgorithm::Dkga02,
    };
    let meters: Vec<Meter> = (0..METERS)
        .map(|i| Meter {
            pan: pan(i).parse().unwrap(),
            target: key,
            current: key,
            algorithm: EncryptionAlgorithm::Sta,
            key_expiry: KeyExpiryNumber::NEVER,
            utility: Service::Electricity,
            status: MeterStatus::Active,
            last_tid: None,
            created: 0,
            updated: 0,
        })
        .collect();
    db.import_meters(&meters).await.unwrap();
    db.close().await;
    sgc
}

async fn scalar(db: &Database, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(db.pool()).await.unwrap()
}

/// Starts `sts campaign run crash` and waits until at least `chunks` more chunks are
/// committed; the child is still running then.
fn run_until(
    dir: &Path,
    rt: &tokio::runtime::Runtime,
    db: &Database,
    chunks: i64,
) -> std::process::Child {
    let before = rt.block_on(scalar(
        db,
        "SELECT chunks FROM campaigns WHERE name = 'crash'",
    ));
    let mut child = Command::new(env!("CARGO_BIN_EXE_sts"))
        .current_dir(dir)
        .args(["campaign", "run", "crash", "--database", "sqlite://vend.db"])
        .args(["--store", "sm.db", "--passphrase-file", "sm.pass"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done = rt.block_on(scalar(
            db,
            "SELECT chunks FROM campaigns WHERE name = 'crash'",
        ));
        if done >= before + chunks {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before {chunks} chunks: too fast to interrupt");
        }
        assert!(Instant::now() < deadline, "no progress: {done} chunks");
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}

#[test]
fn a_campaign_stopped_and_killed_half_way_finishes_with_every_meter_done_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let sgc = rt.block_on(setup(dir)).to_string();
    let chunk = CHUNK.to_string();
    let created = sts(
        dir,
        &[
            "campaign",
            "create",
            "--database",
            "sqlite://vend.db",
            "--name",
            "crash",
            "--sgc",
            &sgc,
            "--krn",
            "1",
            "--base-date",
            "1993",
            "--new-krn",
            "2",
            "--new-base-date",
            "2014",
            "--chunk-size",
            &chunk,
        ],
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let id: i64 = String::from_utf8(created.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let db = rt
        .block_on(Database::connect(&format!(
            "sqlite://{}",
            dir.join("vend.db").display()
        )))
        .unwrap();

    // Ctrl-C: the run finishes the chunk in progress and stops (exit 1), saying how to go on.
    let child = run_until(dir, &rt, &db, 2);
    let signalled = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(signalled.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("run `sts campaign run crash` again"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("stopped at a chunk boundary"));
    let stopped_at = rt.block_on(scalar(
        &db,
        "SELECT processed FROM campaigns WHERE name = 'crash'",
    ));
    assert_eq!(stopped_at % CHUNK as i64, 0, "stops at a chunk boundary");
    assert!(stopped_at < METERS as i64);

    // kill -9 half way through the rest: whatever chunk was in flight is lost, nothing else.
    let mut child = run_until(dir, &rt, &db, 5);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let killed_at = rt.block_on(scalar(
        &db,
        "SELECT processed FROM campaigns WHERE name = 'crash'",
    ));
    assert!(
        killed_at < METERS as i64,
        "killed half way ({killed_at} done)"
    );
    assert_eq!(
        rt.block_on(scalar(&db, "SELECT COUNT(*) FROM campaign_items")),
        killed_at,
        "the items are the committed chunks'"
    );

    // The re-run finishes.
    let out = sts(
        dir,
        &[
            "campaign",
            "run",
            "crash",
            "--database",
            "sqlite://vend.db",
            "--store",
            "sm.db",
            "--passphrase-file",
            "sm.pass",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Every meter has exactly one item, a pending set, and its target key record.
    let n = METERS as i64;
    for (sql, want) in [
        ("SELECT COUNT(*) FROM campaign_items", n),
        ("SELECT COUNT(DISTINCT pan) FROM campaign_items", n),
        (
            "SELECT COUNT(*) FROM campaign_items WHERE state = 'pending' AND tokens IS NOT NULL",
            n,
        ),
        (
            "SELECT COUNT(*) FROM meters WHERE krn = '2' AND base_date = '2014' AND cur_krn = '1' AND cur_base_date = '1993'",
            n,
        ),
        (
            "SELECT COUNT(*) FROM campaigns WHERE state = 'done' AND processed = 6000",
            1,
        ),
    ] {
        assert_eq!(rt.block_on(scalar(&db, sql)), want, "{sql}");
    }
    let status = sts(
        dir,
        &[
            "--json",
            "campaign",
            "status",
            "crash",
            "--database",
            "sqlite://vend.db",
        ],
    );
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["id"], id);
    assert_eq!(status["checkpoint"], pan(METERS - 1));
    assert_eq!(status["items"]["pending"], 6000);

    // The security module issued a set for every meter; at most the chunk killed in flight
    // twice (its set is the same: key change tokens carry no TID or random part).
    let items: Vec<(String, String)> = rt
        .block_on(
            sqlx::query_as("SELECT pan, tokens FROM campaign_items ORDER BY pan")
                .fetch_all(db.pool()),
        )
        .unwrap();
    let sm = rt
        .block_on(SecurityModule::open(
            &dir.join("sm.db"),
            &Passphrase::new(PASSPHRASE).unwrap(),
        ))
        .unwrap();
    rt.block_on(sm.verify_audit()).unwrap();
    let mut issued: Vec<String> = Vec::new();
    for entry in rt.block_on(sm.audit_log()).unwrap() {
        if let Ok(Some(BatchRecords::KeyChanges(records))) = entry.batch_records() {
            issued.extend(records.iter().map(|r| r.current.pan.as_str().to_owned()));
        }
    }
    let extra = issued.len() - items.len();
    assert!(extra <= CHUNK as usize, "{extra} sets issued twice");
    issued.sort();
    issued.dedup();
    assert_eq!(
        issued,
        items.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>()
    );
    // The stored sets are the module's: the same set made again for a few meters.
    let key = |krn: &str, base| sts_core::MeterDescription {
        pan: MeterPan::from_drn("50000000000").unwrap(),
        supply_group: sgc.parse().unwrap(),
        tariff_index: "01".parse().unwrap(),
        key_revision: krn.parse().unwrap(),
        key_type: "2".parse().unwrap(),
        base_date: base,
        algorithm: EncryptionAlgorithm::Sta,
        derivation: KeyDerivationAlgorithm::Dkga02,
    };
    for i in [0, 1_234, 5_999] {
        let (p, tokens) = &items[i];
        let mut current = key("1", BaseDate::Y1993);
        let mut new = key("2", BaseDate::Y2014);
        current.pan = p.parse().unwrap();
        new.pan = current.pan;
        let again = rt
            .block_on(sm.issue_key_change(&current, &new, false))
            .unwrap();
        let again: Vec<String> = again
            .set
            .iter()
            .map(|t| format!("{}:{}", t.block.subclass().get(), t.number))
            .collect();
        assert_eq!(tokens, &again.join(" "), "meter {p}");
    }

    // Export for field teams: every pending set, owner-only file.
    let out = sts(
        dir,
        &[
            "campaign",
            "export",
            "crash",
            "--database",
            "sqlite://vend.db",
            "--csv",
            "field.csv",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = std::fs::read_to_string(dir.join("field.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 6001);
    assert_eq!(
        lines[0],
        "pan,token_1,token_2,token_3,token_4,new_sgc,new_ti,new_krn,new_base_date"
    );
    let first_tokens: Vec<&str> = items[0].1.split(' ').map(|t| &t[2..]).collect();
    assert_eq!(
        lines[1],
        format!(
            "{},{},{},,,{sgc},01,2,2014",
            items[0].0, first_tokens[0], first_tokens[1]
        )
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("field.csv"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let status = sts(
        dir,
        &[
            "--json",
            "campaign",
            "status",
            "crash",
            "--database",
            "sqlite://vend.db",
        ],
    );
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["items"]["exported"], 6000);
}

#[test]
fn campaign_errors_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let db = ["--database", "sqlite://vend.db"];
    for (args, expect) in [
        (
            vec!["campaign", "create", "--name", "x", "--new-krn", "2"],
            "no selection",
        ),
        (
            vec![
                "campaign",
                "create",
                "--name",
                "x",
                "--all",
                "--krn",
                "1",
                "--new-krn",
                "2",
            ],
            "--all with another selection",
        ),
        (
            vec!["campaign", "create", "--name", "x", "--all"],
            "change at least one",
        ),
        (
            vec!["campaign", "run", "nope", "--store", "sm.db"],
            "no campaign nope",
        ),
        (vec!["campaign", "status", "42"], "no campaign 42"),
        (
            vec![
                "campaign",
                "create",
                "--name",
                "x",
                "--pans",
                "pans.txt",
                "--new-krn",
                "2",
            ],
            "2 bad line(s): line 2: \"600727000000000008\"",
        ),
    ] {
        std::fs::write(
            dir.join("pans.txt"),
            "pan\n600727000000000008\nnot-a-pan\n600727000000000009\n",
        )
        .unwrap();
        let out = sts(dir, &[&args[..], &db[..]].concat());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
        assert!(stderr.contains("\nhint: "), "{args:?}: {stderr}");
    }
    let help = sts(dir, &["campaign", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    for word in [
        "create", "run", "status", "export", "bench", "rollover", "resumes",
    ] {
        assert!(help.contains(word), "{word}: {help}");
    }
}
