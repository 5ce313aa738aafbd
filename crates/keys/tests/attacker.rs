//! Read the store files, their write-ahead logs, the audit logs and the keyload files as an
//! attacker would: no vending key appears in them, raw or as hex in either case.

// Helpers outside #[test] functions may unwrap too: a panic is a test failure with its message.
#![allow(clippy::unwrap_used)]

#[path = "support/fixture.rs"]
mod fixture;

use std::path::{Path, PathBuf};

use fixture::{attributes, meter, world};
use sts_core::{EncryptionAlgorithm, KeyDerivationAlgorithm, KeyType, Service, TransferAmount};
use sts_keys::{TokenRequest, VendingKeyType};

fn patterns(key: &[u8]) -> Vec<Vec<u8>> {
    let upper: String = key.iter().map(|b| format!("{b:02X}")).collect();
    vec![
        key.to_vec(),
        upper.clone().into_bytes(),
        upper.to_lowercase().into_bytes(),
    ]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn store_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn assert_no_key(files: &[PathBuf], keys: &[(String, Vec<u8>)]) {
    let mut scanned = 0;
    for file in files {
        let bytes = std::fs::read(file).unwrap();
        scanned += bytes.len();
        for (name, key) in keys {
            for p in patterns(key) {
                assert!(!contains(&bytes, &p), "{name} found in {}", file.display());
            }
        }
    }
    assert!(scanned > 10_000, "scanned only {scanned} bytes");
}

#[tokio::test]
async fn no_key_bytes_in_stores_logs_or_keyload_files() {
    let w = world().await;
    let mut ids = Vec::new();
    for (vkt, dkga) in [
        (VendingKeyType::Unique, KeyDerivationAlgorithm::Dkga02),
        (VendingKeyType::Common, KeyDerivationAlgorithm::Dkga04),
        (VendingKeyType::Default, KeyDerivationAlgorithm::Dkga02),
    ] {
        ids.push(w.load_key(&attributes(w.sgc, vkt, dkga, 1)).await);
    }
    ids.push(
        w.kmc
            .request_key_revision(w.owner, ids[0])
            .await
            .unwrap()
            .id,
    );
    // Use the keys: tokens, a key change, verification.
    let m = meter(
        w.sgc,
        KeyType::Unique,
        KeyDerivationAlgorithm::Dkga02,
        EncryptionAlgorithm::Sta,
        1,
    );
    for tenths in 1..20 {
        let amount = TransferAmount::from_value_ceil(tenths).unwrap();
        let t =
            w.sm.issue(
                &m,
                TokenRequest::TransferCredit {
                    service: Service::Electricity,
                    amount,
                },
            )
            .await
            .unwrap();
        w.sm.verify(&m, t.number).await.unwrap();
    }
    let d = meter(
        w.sgc,
        KeyType::Default,
        KeyDerivationAlgorithm::Dkga02,
        EncryptionAlgorithm::Sta,
        1,
    );
    w.sm.issue_key_change(&d, &m, true).await.unwrap();

    // The keyload files an attacker might intercept.
    let intercepted = w.dir.path().join("intercepted");
    std::fs::create_dir(&intercepted).unwrap();
    for (i, &id) in ids.iter().enumerate() {
        w.kmc.authorize(w.owner, id, &w.sm_id).await.unwrap();
        let file = w.kmc.issue_keyload(w.owner, &w.sm_id, &[id]).await.unwrap();
        std::fs::write(intercepted.join(format!("{i}.klf")), file.as_bytes()).unwrap();
    }
    // The audit logs, exported.
    let kmc_log: String = w
        .kmc
        .audit_log()
        .await
        .unwrap()
        .iter()
        .map(|e| e.to_json_line() + "\n")
        .collect();
    let sm_log: String =
        w.sm.audit_log()
            .await
            .unwrap()
            .iter()
            .map(|e| e.to_json_line() + "\n")
            .collect();
    std::fs::write(intercepted.join("kmc-audit.jsonl"), kmc_log).unwrap();
    std::fs::write(intercepted.join("sm-audit.jsonl"), sm_log).unwrap();

    let mut keys = Vec::new();
    for &id in &ids {
        let key = w.read_key_independently(id).await;
        keys.push((format!("vending key {id}"), key.expose_secret().to_vec()));
    }

    // The scan finds a key where one is planted.
    let planted = [
        b"prefix".to_vec(),
        patterns(&keys[0].1)[2].clone(),
        b"suffix".to_vec(),
    ]
    .concat();
    assert!(patterns(&keys[0].1).iter().any(|p| contains(&planted, p)));

    // While the stores are open (WAL files hold recent pages) ...
    let mut files = store_files(w.dir.path());
    files.extend(store_files(&intercepted));
    assert!(files.iter().any(|f| f.to_string_lossy().ends_with("-wal")));
    assert_no_key(&files, &keys);
    // ... and after they are closed and checkpointed.
    let dir = w.dir;
    w.kmc.close().await;
    w.sm.close().await;
    let mut files = store_files(dir.path());
    files.extend(store_files(&intercepted));
    assert_no_key(&files, &keys);
}
