//! `verify_audit` on real store files: a modified, deleted, reordered or truncated log is
//! detected, a changed token record inside a batch entry too; stores written before batch
//! entries still verify.

// Helpers outside #[test] functions may unwrap too: a panic is a test failure with its message.
#![allow(clippy::unwrap_used)]

#[path = "support/fixture.rs"]
mod fixture;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use fixture::{attributes, world};
use sqlx::{Connection, SqliteConnection};
use sts_core::{
    BaseDate, EncryptionAlgorithm, KeyDerivationAlgorithm, KeyType, MeterDescription, MeterPan,
    Service, TransferAmount,
};
use sts_keys::{
    AuditError, ManualClock, Passphrase, SecurityModule, TokenRequest, VendingKeyType,
    audit::{BatchRecords, entry_hash, entry_hash_with_records},
    verify_audit,
};

/// A KMC store with a few entries, closed; returns its directory and path.
async fn kmc_store() -> (tempfile::TempDir, PathBuf, u64) {
    let w = world().await;
    let a = attributes(
        w.sgc,
        VendingKeyType::Unique,
        KeyDerivationAlgorithm::Dkga02,
        1,
    );
    w.load_key(&a).await;
    let count = w.kmc.verify_audit().await.unwrap();
    let path = w.kmc_path();
    w.kmc.close().await;
    w.sm.close().await;
    (w.dir, path, count)
}

async fn tamper(original: &Path, sql: &[&str]) -> PathBuf {
    let copy = original.with_extension(format!("tampered-{}", sql.len() + sql.concat().len()));
    std::fs::copy(original, &copy).unwrap();
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", copy.display()))
        .await
        .unwrap();
    for statement in sql {
        sqlx::query(statement).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();
    copy
}

#[tokio::test]
async fn intact_log_verifies() {
    let (_dir, path, count) = kmc_store().await;
    assert!(count >= 7);
    assert_eq!(verify_audit(&path).await.unwrap(), count);
}

#[tokio::test]
async fn modified_entry() {
    let (_dir, path, _) = kmc_store().await;
    let copy = tamper(
        &path,
        &[r#"UPDATE audit SET details = '{"owner":99}' WHERE sequence = 2"#],
    )
    .await;
    assert!(matches!(
        verify_audit(&copy).await,
        Err(AuditError::Modified { sequence: 2 })
    ));
    let copy = tamper(
        &path,
        &["UPDATE audit SET actor = 'owner:2' WHERE sequence = 3"],
    )
    .await;
    assert!(matches!(
        verify_audit(&copy).await,
        Err(AuditError::Modified { sequence: 3 })
    ));
}

#[tokio::test]
async fn modified_entry_with_its_hash_recomputed() {
    let (_dir, path, _) = kmc_store().await;
    // The attacker rewrites entry 2 and its hash: entry 3 no longer follows it.
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let row: (i64, String, String, Vec<u8>) =
        sqlx::query_as("SELECT time, actor, action, prev_hash FROM audit WHERE sequence = 2")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    conn.close().await.unwrap();
    let details = r#"{"owner":99}"#;
    let prev: [u8; 32] = row.3.try_into().unwrap();
    let hash = entry_hash(&prev, 2, row.0, &row.1, &row.2, details);
    let hex: String = hash.iter().map(|b| format!("{b:02X}")).collect();
    let sql = format!("UPDATE audit SET details = '{details}', hash = X'{hex}' WHERE sequence = 2");
    let copy = tamper(&path, &[&sql]).await;
    assert!(matches!(
        verify_audit(&copy).await,
        Err(AuditError::Broken { sequence: 3 })
    ));
}

#[tokio::test]
async fn deleted_entry() {
    let (_dir, path, count) = kmc_store().await;
    let copy = tamper(&path, &["DELETE FROM audit WHERE sequence = 2"]).await;
    assert!(matches!(
        verify_audit(&copy).await,
        Err(AuditError::Sequence {
            expected: 2,
            found: 3
        })
    ));
    // Deleting the last entry is caught by the recorded head.
    let last = format!("DELETE FROM audit WHERE sequence = {count}");
    let copy = tamper(&path, &[&last]).await;
    assert!(
        matches!(verify_audit(&copy).await, Err(AuditError::Head { recorded, found }) if recorded == count && found == count - 1)
    );
}

#[tokio::test]
async fn reordered_entries() {
    let (_dir, path, _) = kmc_store().await;
    // Swap entries 2 and 3 by their sequence numbers.
    let copy = tamper(
        &path,
        &[
            "UPDATE audit SET sequence = -1 WHERE sequence = 2",
            "UPDATE audit SET sequence = 2 WHERE sequence = 3",
            "UPDATE audit SET sequence = 3 WHERE sequence = -1",
        ],
    )
    .await;
    let result = verify_audit(&copy).await;
    assert!(
        matches!(result, Err(AuditError::Modified { sequence: 2 })),
        "{result:?}"
    );
}

/// A security module store with a batch of five tokens as its last entry but one; closed.
async fn sm_store_with_a_batch() -> (tempfile::TempDir, PathBuf, u64) {
    let w = world().await;
    let a = attributes(
        w.sgc,
        VendingKeyType::Unique,
        KeyDerivationAlgorithm::Dkga02,
        1,
    );
    w.load_key(&a).await;
    let mut batch = Vec::new();
    for n in 0..5u32 {
        let mut m = fixture::meter(
            w.sgc,
            KeyType::Unique,
            KeyDerivationAlgorithm::Dkga02,
            EncryptionAlgorithm::Sta,
            1,
        );
        m.pan = MeterPan::from_drn(&format!("{n:011}")).unwrap();
        batch.push((
            m,
            TokenRequest::TransferCredit {
                service: Service::Electricity,
                amount: TransferAmount::from_value_ceil(100 + n).unwrap(),
            },
        ));
    }
    let issued = w.sm.issue_many(&batch).await.unwrap();
    // One more entry after the batch, so that a rewritten batch entry breaks the chain.
    w.sm.issue(&batch[0].0, TokenRequest::ClearTamperCondition)
        .await
        .unwrap();
    let path = w.sm_path();
    w.kmc.close().await;
    w.sm.close().await;
    (w.dir, path, issued[0].audit_sequence)
}

async fn records_of(path: &Path, sequence: u64) -> Vec<u8> {
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let records: Vec<u8> = sqlx::query_scalar("SELECT records FROM audit WHERE sequence = ?")
        .bind(sequence as i64)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    records
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[tokio::test]
async fn a_tampered_token_record_inside_a_batch_entry() {
    let (_dir, path, batch) = sm_store_with_a_batch().await;
    let count = verify_audit(&path).await.unwrap();
    let records = records_of(&path, batch).await;
    let decoded = BatchRecords::decode(&records).unwrap();
    let BatchRecords::Tokens(tokens) = &decoded else {
        panic!("{decoded:?}")
    };
    assert_eq!(tokens.len(), 5);
    assert_eq!(tokens[2].credit_units, Some(102));

    // The third token's credit, 102 units, becomes 103 (the record's last byte is the low
    // byte of its credit): still a well-formed record, but no longer the one hashed.
    let record_len = 26;
    let credit_low = records.len() - 2 * record_len - 1;
    let mut changed = records.clone();
    changed[credit_low] += 1;
    let BatchRecords::Tokens(forged) = BatchRecords::decode(&changed).unwrap() else {
        panic!()
    };
    assert_eq!(forged[2].credit_units, Some(103));
    let sql = format!(
        "UPDATE audit SET records = X'{}' WHERE sequence = {batch}",
        hex(&changed)
    );
    let copy = tamper(&path, &[&sql]).await;
    let result = verify_audit(&copy).await;
    assert!(
        matches!(result, Err(AuditError::Modified { sequence }) if sequence == batch),
        "{result:?}"
    );

    // A record removed (and the count fixed), or the records dropped altogether.
    let mut shorter = records.clone();
    shorter.truncate(records.len() - record_len);
    let count_at = shorter.len() - 4 * record_len - 4;
    shorter[count_at + 3] -= 1;
    assert_eq!(BatchRecords::decode(&shorter).unwrap().len(), 4);
    let sql = format!(
        "UPDATE audit SET records = X'{}' WHERE sequence = {batch}",
        hex(&shorter)
    );
    for sql in [
        sql.as_str(),
        &format!("UPDATE audit SET records = NULL WHERE sequence = {batch}"),
    ] {
        let copy = tamper(&path, &[sql]).await;
        let result = verify_audit(&copy).await;
        assert!(
            matches!(result, Err(AuditError::Modified { sequence }) if sequence == batch),
            "{sql}: {result:?}"
        );
    }

    // The forged record with the entry's hash recomputed: the next entry no longer follows.
    let row: (i64, String, String, String, Vec<u8>) = {
        let mut conn = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let row = sqlx::query_as(
            "SELECT time, actor, action, details, prev_hash FROM audit WHERE sequence = ?",
        )
        .bind(batch as i64)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
        row
    };
    let prev: [u8; 32] = row.4.try_into().unwrap();
    let hash = entry_hash_with_records(&prev, batch, row.0, &row.1, &row.2, &row.3, &changed);
    let sql = format!(
        "UPDATE audit SET records = X'{}', hash = X'{}' WHERE sequence = {batch}",
        hex(&changed),
        hex(&hash)
    );
    let copy = tamper(&path, &[&sql]).await;
    let result = verify_audit(&copy).await;
    assert!(
        matches!(result, Err(AuditError::Broken { sequence }) if sequence == batch + 1),
        "{result:?}"
    );
    // The intact file still verifies.
    assert_eq!(verify_audit(&path).await.unwrap(), count);
}

#[tokio::test]
async fn malformed_records_are_reported_even_with_a_matching_hash() {
    let (_dir, path, _) = sm_store_with_a_batch().await;
    let count = verify_audit(&path).await.unwrap();
    // Whoever rewrites the last entry and the recorded head can make any hash match (keep a
    // copy of the head elsewhere for that); records that do not decode are still reported.
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let row: (i64, String, String, String, Vec<u8>) = sqlx::query_as(
        "SELECT time, actor, action, details, prev_hash FROM audit WHERE sequence = ?",
    )
    .bind(count as i64)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let garbage = b"not records";
    let prev: [u8; 32] = row.4.try_into().unwrap();
    let hash = entry_hash_with_records(&prev, count, row.0, &row.1, &row.2, &row.3, garbage);
    let copy = tamper(
        &path,
        &[
            &format!(
                "UPDATE audit SET records = X'{}', hash = X'{}' WHERE sequence = {count}",
                hex(garbage),
                hex(&hash)
            ),
            &format!(
                "UPDATE meta SET value = '{count}:{}' WHERE name = 'audit-head'",
                hex(&hash)
            ),
        ],
    )
    .await;
    let result = verify_audit(&copy).await;
    assert!(
        matches!(result, Err(AuditError::Malformed { sequence, .. }) if sequence == count),
        "{result:?}"
    );
}

/// A store written by sts-keys 0.1 before batch entries (one `token.issue` entry per token,
/// no `records` column): generated by the tests of commit a71080a, kept as data.
const OLD_STORE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/sm-store-0.1.sqlite"
);

#[tokio::test]
async fn a_store_written_before_batch_entries_still_verifies_and_takes_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite");
    std::fs::copy(OLD_STORE, &path).unwrap();
    // Read-only, as `sts sm audit-verify` does: the file is not migrated.
    assert_eq!(verify_audit(&path).await.unwrap(), 9);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        std::fs::read(OLD_STORE).unwrap()
    );

    // Opened by this version: migrated, and new batch entries follow the old ones.
    let clock = ManualClock::new("2026-06-01 12:00".parse().unwrap());
    let sm = SecurityModule::open(&path, &Passphrase::new(fixture::SM_PASS).unwrap())
        .await
        .unwrap()
        .with_clock(Arc::new(clock));
    let log = sm.audit_log().await.unwrap();
    let old: Vec<_> = log.iter().filter(|e| e.action == "token.issue").collect();
    assert_eq!(old.len(), 5);
    assert!(log.iter().all(|e| e.records.is_none()));
    let old_tids: Vec<u64> = old
        .iter()
        .filter_map(|e| {
            serde_json::from_str::<serde_json::Value>(&e.details).unwrap()["tid"].as_u64()
        })
        .collect();
    assert_eq!(old_tids.len(), 4);
    let key = &sm.keys().await.unwrap()[1];
    assert_eq!(key.attributes.key_type, VendingKeyType::Unique);
    let m = MeterDescription {
        pan: "600727000000000009".parse().unwrap(),
        supply_group: key.attributes.supply_group,
        tariff_index: "01".parse().unwrap(),
        key_revision: key.attributes.key_revision,
        key_type: KeyType::Unique,
        base_date: BaseDate::Y2014,
        algorithm: EncryptionAlgorithm::Sta,
        derivation: KeyDerivationAlgorithm::Dkga02,
    };
    let request = TokenRequest::ClearTamperCondition;
    let issued = sm.issue_many(&[(m, request), (m, request)]).await.unwrap();
    // TIDs continue after those the old store issued in the same minute.
    let last_old = *old_tids.iter().max().unwrap();
    assert_eq!(
        u64::from(issued[0].token.tid().unwrap().get()),
        last_old + 1
    );
    assert_eq!(issued[0].audit_sequence, 10);
    assert_eq!(sm.verify_audit().await.unwrap(), 10);
    sm.close().await;
    assert_eq!(verify_audit(&path).await.unwrap(), 10);
}
