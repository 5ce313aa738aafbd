//! `verify_audit` on real store files: a modified, deleted, reordered or truncated log is
//! detected.

// Helpers outside #[test] functions may unwrap too: a panic is a test failure with its message.
#![allow(clippy::unwrap_used)]

#[path = "support/fixture.rs"]
mod fixture;

use std::path::{Path, PathBuf};

use fixture::{attributes, world};
use sqlx::{Connection, SqliteConnection};
use sts_core::KeyDerivationAlgorithm;
use sts_keys::{AuditError, VendingKeyType, audit::entry_hash, verify_audit};

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
