//! The KMC process, steps 1 to 8, from the command line, and a token issued by the security
//! module that the engine and a meter accept.

#![allow(clippy::unwrap_used, clippy::panic)] // test helpers fail loudly

use std::path::{Path, PathBuf};

use assert_cmd::Command;

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("sts-kmc-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("kmc.pass"), "correct horse battery staple\n").unwrap();
        std::fs::write(dir.join("sm.pass"), "another long sm passphrase\n").unwrap();
        std::fs::write(dir.join("sm2.pass"), "a third long sm passphrase\n").unwrap();
        Self(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn sts(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_sts"))
        .current_dir(dir)
        .env_remove("STS_KMC_PASSPHRASE")
        .env_remove("STS_SM_PASSPHRASE")
        .args(args)
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let r = sts(dir, args);
    assert_eq!(r.code, 0, "{args:?}: {}{}", r.stdout, r.stderr);
    r.stdout.trim().to_owned()
}

const KMC: [&str; 4] = ["--store", "kmc.db", "--passphrase-file", "kmc.pass"];
const SM: [&str; 4] = ["--store", "sm.db", "--passphrase-file", "sm.pass"];

fn with<'a>(head: &[&'a str], store: &[&'a str], tail: &[&'a str]) -> Vec<&'a str> {
    head.iter().chain(store).chain(tail).copied().collect()
}

#[test]
fn the_whole_process_from_the_command_line() {
    let d = Dir::new("process");
    let dir = d.0.as_path();
    let kmc_pub = ok(
        dir,
        &with(
            &["kmc", "init"],
            &KMC,
            &["--kdf-cost", "insecure-for-tests"],
        ),
    );
    assert_eq!(kmc_pub.len(), 64);
    let owner = ok(
        dir,
        &with(
            &["kmc", "register-owner"],
            &KMC,
            &["--name", "City Power", "--contact", "keys@example.org"],
        ),
    );
    let sgc = ok(
        dir,
        &with(&["kmc", "allocate-sgc"], &KMC, &["--owner", &owner]),
    );
    assert_eq!(sgc.len(), 6, "{sgc}");
    let key: serde_json::Value = serde_json::from_str(&ok(
        dir,
        &with(
            &["--json", "kmc", "request-key"],
            &KMC,
            &[
                "--owner",
                &owner,
                "--sgc",
                &sgc,
                "--activation",
                "2020-01-01 00:00",
            ],
        ),
    ))
    .unwrap();
    let key_id = key["key"].as_str().unwrap().to_owned();
    let kcv = key["kcv"].as_str().unwrap().to_owned();

    let sm_pub = ok(
        dir,
        &with(
            &["sm", "init"],
            &SM,
            &[
                "--id",
                "SM-0001",
                "--kmc-public-key",
                &kmc_pub,
                "--kdf-cost",
                "insecure-for-tests",
            ],
        ),
    );
    ok(
        dir,
        &with(
            &["kmc", "register-sm"],
            &KMC,
            &["--sm", "SM-0001", "--sm-public-key", &sm_pub],
        ),
    );

    // No keyload file without an authorization; no authorization from another owner.
    let refused = sts(
        dir,
        &with(
            &["kmc", "keyload"],
            &KMC,
            &[
                "--owner", &owner, "--sm", "SM-0001", "--key", &key_id, "--out", "klf.txt",
            ],
        ),
    );
    assert_eq!(refused.code, 2);
    assert!(
        refused.stderr.contains("not authorized"),
        "{}",
        refused.stderr
    );
    let other = ok(
        dir,
        &with(
            &["kmc", "register-owner"],
            &KMC,
            &["--name", "Other", "--contact", "x@example.org"],
        ),
    );
    let wrong_owner = sts(
        dir,
        &with(
            &["kmc", "authorize"],
            &KMC,
            &["--owner", &other, "--key", &key_id, "--sm", "SM-0001"],
        ),
    );
    assert_eq!(wrong_owner.code, 2, "{}", wrong_owner.stderr);

    ok(
        dir,
        &with(
            &["kmc", "authorize"],
            &KMC,
            &["--owner", &owner, "--key", &key_id, "--sm", "SM-0001"],
        ),
    );
    ok(
        dir,
        &with(
            &["kmc", "keyload"],
            &KMC,
            &[
                "--owner", &owner, "--sm", "SM-0001", "--key", &key_id, "--out", "klf.txt",
            ],
        ),
    );
    let klf = std::fs::read_to_string(dir.join("klf.txt")).unwrap();
    assert!(klf.starts_with("STS-KEYLOAD-FILE v1"), "{klf}");

    // A tampered file is refused and changes nothing; the real one imports once.
    std::fs::write(
        dir.join("tampered.txt"),
        klf.replacen("serial: 1", "serial: 2", 1),
    )
    .unwrap();
    let tampered = sts(
        dir,
        &with(&["sm", "import"], &SM, &["--file", "tampered.txt"]),
    );
    assert_eq!(tampered.code, 2, "{}", tampered.stderr);
    assert!(
        ok(dir, &with(&["sm", "keys"], &SM, &[])).is_empty(),
        "a refused import loads nothing"
    );
    let imported = ok(dir, &with(&["sm", "import"], &SM, &["--file", "klf.txt"]));
    assert!(imported.contains(&kcv), "{imported}");
    let replay = sts(dir, &with(&["sm", "import"], &SM, &["--file", "klf.txt"]));
    assert_eq!(replay.code, 2);
    assert!(replay.stderr.contains("replayed"), "{}", replay.stderr);

    // A second module cannot open the first one's file.
    let sm2_pub_args = [
        "sm",
        "init",
        "--store",
        "sm2.db",
        "--passphrase-file",
        "sm2.pass",
        "--id",
        "SM-0002",
        "--kmc-public-key",
        &kmc_pub,
        "--kdf-cost",
        "insecure-for-tests",
    ];
    ok(dir, &sm2_pub_args);
    let elsewhere = sts(
        dir,
        &[
            "sm",
            "import",
            "--store",
            "sm2.db",
            "--passphrase-file",
            "sm2.pass",
            "--file",
            "klf.txt",
        ],
    );
    assert_eq!(elsewhere.code, 2, "{}", elsewhere.stderr);

    // The module issues and verifies a token; its audit log names the module and the KCV.
    let meter = [
        "--pan",
        "600727000000000009",
        "--sgc",
        &sgc,
        "--ti",
        "01",
        "--krn",
        "1",
        "--base-date",
        "2014",
    ];
    let issued: serde_json::Value = serde_json::from_str(&ok(
        dir,
        &with(
            &["--json", "sm", "issue"],
            &SM,
            &[&meter[..], &["--kind", "credit", "--amount", "20"]].concat(),
        ),
    ))
    .unwrap();
    assert_eq!(issued["kcv"].as_str(), Some(kcv.as_str()));
    assert_eq!(issued["sm"].as_str(), Some("SM-0001"));
    let token = issued["token"].as_str().unwrap();
    let verified = ok(
        dir,
        &with(&["sm", "verify"], &SM, &[&meter[..], &[token]].concat()),
    );
    assert!(
        verified.starts_with("valid:") && verified.contains("20.0 kWh"),
        "{verified}"
    );
    let other_meter = [
        "--pan",
        "600727000000000017",
        "--sgc",
        &sgc,
        "--ti",
        "01",
        "--krn",
        "1",
        "--base-date",
        "2014",
    ];
    let wrong = sts(
        dir,
        &with(
            &["sm", "verify"],
            &SM,
            &[&other_meter[..], &[token]].concat(),
        ),
    );
    assert_eq!(
        wrong.code, 1,
        "a token for another meter fails its CRC: {}",
        wrong.stdout
    );

    // A wrong passphrase opens nothing.
    std::fs::write(dir.join("bad.pass"), "not the right passphrase\n").unwrap();
    let bad = sts(
        dir,
        &[
            "sm",
            "keys",
            "--store",
            "sm.db",
            "--passphrase-file",
            "bad.pass",
        ],
    );
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.to_lowercase().contains("passphrase"),
        "{}",
        bad.stderr
    );

    for store in ["kmc.db", "sm.db"] {
        let r = sts(dir, &["kmc", "audit", "verify", "--store", store]);
        assert_eq!(r.code, 0, "{store}: {}", r.stdout);
        assert!(r.stdout.starts_with("audit log intact"), "{}", r.stdout);
    }
    let r = sts(dir, &["sm", "audit", "verify", "--store", "sm.db"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);

    // The module's audit log, without its passphrase: the issue batch, then with --records
    // the token it records (meter, KCV, TID), and never the token number.
    let show = |extra: &[&str]| -> Vec<serde_json::Value> {
        ok(
            dir,
            &[&["sm", "audit", "show", "--store", "sm.db"][..], extra].concat(),
        )
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
    };
    let entries = show(&[]);
    let batch = entries
        .iter()
        .find(|e| e["action"] == "token.issue-batch")
        .unwrap_or_else(|| panic!("no issue batch in {entries:?}"));
    assert_eq!(batch["details"]["records"], 1, "{batch}");
    assert_eq!(batch["details"]["sm"], "SM-0001", "{batch}");
    let sequence = batch["sequence"].as_u64().unwrap();
    let with_records = show(&["--records"]);
    let record = with_records
        .iter()
        .find(|r| r["sequence"] == sequence && r["record"] == 0)
        .unwrap_or_else(|| panic!("no record of entry {sequence} in {with_records:?}"));
    assert_eq!(record["meter"]["pan"], "600727000000000009", "{record}");
    assert_eq!(record["kcv"].as_str(), Some(kcv.as_str()), "{record}");
    assert_eq!(record["tid"], issued["tid"], "{record}");
    let text = ok(
        dir,
        &["sm", "audit", "show", "--store", "sm.db", "--records"],
    );
    assert!(!text.contains(token), "the log holds no token number");
    // --after skips the entries up to a sequence number.
    let later = show(&["--after", &sequence.to_string()]);
    assert!(
        later
            .iter()
            .all(|e| e["sequence"].as_u64().unwrap() > sequence)
    );
    assert_eq!(later.len(), entries.len() - sequence as usize);
}
