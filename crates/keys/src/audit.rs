//! The hash-chained audit log of a store.
//!
//! Every change to a KMC or security module store appends one entry in the same transaction.
//! An entry's hash is SHA-256 over a canonical encoding of the entry and the previous entry's
//! hash:
//!
//! ```text
//! "sts-keys audit v1\0" | prev_hash (32) | sequence (u64 BE) | time (i64 BE, Unix seconds)
//!   | LV(actor) | LV(action) | LV(details)          LV = u32 BE length, then UTF-8 bytes
//! ```
//!
//! A security module's batch entry (`token.issue-batch`, `token.key-change-batch`) also
//! carries `records`, one compact binary record per token or key change set (see
//! [`records`]), and is hashed with its own prefix so that no entry of one form can pass for
//! the other:
//!
//! ```text
//! "sts-keys audit v2\0" | prev_hash | sequence | time | LV(actor) | LV(action) | LV(details)
//!   | u64 BE length of records | records
//! ```
//!
//! Verification recomputes every hash and decodes every entry's records. Entries written
//! before batch entries existed (one `token.issue` entry per token) have no records and
//! verify as before.
//!
//! The first entry's `prev_hash` is 32 zero bytes. The store's `meta` table keeps the head
//! (count and last hash), updated in the same transaction, so that removing the last entries
//! is detected too; copy the head elsewhere (`verify_audit` returns it) to detect a rewrite of
//! the whole file. Details are JSON and records are binary; neither carries key material or
//! a token number.

pub mod records;

use std::path::Path;

use sha2::{Digest, Sha256};
use sqlx::{Row, SqliteConnection};

use crate::{hex, store};

pub use records::{BatchRecords, KeyChangeRecord, RecordsError, TokenRecord};

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// 1, 2, 3 ... without gaps.
    pub sequence: u64,
    /// Unix seconds.
    pub time: i64,
    /// Who: `kmc`, `owner:<id>`, `sm:<id>`.
    pub actor: String,
    /// What, e.g. `vending-key.generate`.
    pub action: String,
    /// JSON details without secrets.
    pub details: String,
    /// A batch entry's per-token records ([`BatchRecords`] decodes them); `None` for other
    /// entries.
    pub records: Option<Vec<u8>>,
    /// The previous entry's hash.
    pub prev_hash: [u8; 32],
    /// This entry's hash.
    pub hash: [u8; 32],
}

impl AuditEntry {
    /// The entry as one line of JSON (hashes in hex); a batch entry's records are listed
    /// one object per token or key change set.
    #[must_use]
    pub fn to_json_line(&self) -> String {
        let mut line = self.to_json();
        if let Some(records) = &self.records {
            line["records"] = match BatchRecords::decode(records) {
                Ok(decoded) => decoded.to_json(),
                Err(e) => serde_json::Value::String(e.to_string()),
            };
        }
        line.to_string()
    }

    /// The entry as JSON (hashes in hex), without a batch entry's records: its details say
    /// how many it holds, [`AuditEntry::batch_records`] decodes them.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "sequence": self.sequence,
            "time": self.time,
            "actor": self.actor,
            "action": self.action,
            "details": serde_json::from_str::<serde_json::Value>(&self.details)
                .unwrap_or(serde_json::Value::String(self.details.clone())),
            "prev_hash": hex::encode_upper(&self.prev_hash),
            "hash": hex::encode_upper(&self.hash),
        })
    }

    /// The decoded records of a batch entry (`None` for other entries).
    ///
    /// # Errors
    /// [`RecordsError`] when the records do not decode.
    pub fn batch_records(&self) -> Result<Option<BatchRecords>, RecordsError> {
        self.records
            .as_deref()
            .map(BatchRecords::decode)
            .transpose()
    }

    /// The hash this entry's content and `prev_hash` give.
    #[must_use]
    pub fn computed_hash(&self) -> [u8; 32] {
        match &self.records {
            None => entry_hash(
                &self.prev_hash,
                self.sequence,
                self.time,
                &self.actor,
                &self.action,
                &self.details,
            ),
            Some(records) => entry_hash_with_records(
                &self.prev_hash,
                self.sequence,
                self.time,
                &self.actor,
                &self.action,
                &self.details,
                records,
            ),
        }
    }
}

/// The end of a verified chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditHead {
    /// Number of entries.
    pub count: u64,
    /// The last entry's hash (zeros for an empty log).
    pub hash: [u8; 32],
}

impl AuditHead {
    fn encode(&self) -> String {
        format!("{}:{}", self.count, hex::encode_upper(&self.hash))
    }

    fn decode(text: &str) -> Option<Self> {
        let (count, hash) = text.split_once(':')?;
        Some(Self {
            count: count.parse().ok()?,
            hash: hex::decode_array(hash)?,
        })
    }
}

/// An audit log that does not verify.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// An entry's content does not match its hash: it was modified.
    #[error("audit entry {sequence} was modified: its hash does not match its content")]
    Modified {
        /// The entry.
        sequence: u64,
    },
    /// An entry does not follow the one before it: an entry was removed, inserted or moved.
    #[error(
        "audit entry {sequence} does not follow the entry before it (removed, inserted or reordered entries)"
    )]
    Broken {
        /// The entry.
        sequence: u64,
    },
    /// The sequence numbers have a gap or are out of order.
    #[error("audit entry {found} found where entry {expected} was expected")]
    Sequence {
        /// The sequence number expected.
        expected: u64,
        /// The sequence number found.
        found: u64,
    },
    /// A batch entry's records do not decode (its hash matches: whoever wrote it wrote them
    /// so).
    #[error("audit entry {sequence} has malformed records: {error}")]
    Malformed {
        /// The entry.
        sequence: u64,
        /// What is wrong.
        error: RecordsError,
    },
    /// The chain ends elsewhere than the recorded head: entries were removed from the end.
    #[error("the audit log ends at entry {found} but its recorded head is entry {recorded}")]
    Head {
        /// Entries recorded in the head.
        recorded: u64,
        /// Entries found.
        found: u64,
    },
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

impl From<sqlx::Error> for AuditError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

/// The hash of an entry without records.
#[must_use]
pub fn entry_hash(
    prev_hash: &[u8; 32],
    sequence: u64,
    time: i64,
    actor: &str,
    action: &str,
    details: &str,
) -> [u8; 32] {
    hasher(
        b"sts-keys audit v1\0",
        prev_hash,
        sequence,
        time,
        actor,
        action,
        details,
    )
    .finalize()
    .into()
}

/// The hash of a batch entry: as [`entry_hash`] with another prefix, and its records.
#[must_use]
pub fn entry_hash_with_records(
    prev_hash: &[u8; 32],
    sequence: u64,
    time: i64,
    actor: &str,
    action: &str,
    details: &str,
    records: &[u8],
) -> [u8; 32] {
    let mut h = hasher(
        b"sts-keys audit v2\0",
        prev_hash,
        sequence,
        time,
        actor,
        action,
        details,
    );
    h.update((records.len() as u64).to_be_bytes());
    h.update(records);
    h.finalize().into()
}

fn hasher(
    prefix: &[u8],
    prev_hash: &[u8; 32],
    sequence: u64,
    time: i64,
    actor: &str,
    action: &str,
    details: &str,
) -> Sha256 {
    let mut h = Sha256::new();
    h.update(prefix);
    h.update(prev_hash);
    h.update(sequence.to_be_bytes());
    h.update(time.to_be_bytes());
    for field in [actor, action, details] {
        h.update((field.len() as u32).to_be_bytes());
        h.update(field.as_bytes());
    }
    h
}

/// Verifies a chain of entries from the first.
///
/// # Errors
/// The first entry that is out of sequence, does not match its hash, does not link to its
/// predecessor, or whose records do not decode.
pub fn verify_chain(entries: &[AuditEntry]) -> Result<AuditHead, AuditError> {
    let mut prev = [0u8; 32];
    for (i, e) in entries.iter().enumerate() {
        let expected = i as u64 + 1;
        if e.sequence != expected {
            return Err(AuditError::Sequence {
                expected,
                found: e.sequence,
            });
        }
        if e.computed_hash() != e.hash {
            return Err(AuditError::Modified {
                sequence: e.sequence,
            });
        }
        if e.prev_hash != prev {
            return Err(AuditError::Broken {
                sequence: e.sequence,
            });
        }
        if let Err(error) = e.batch_records() {
            return Err(AuditError::Malformed {
                sequence: e.sequence,
                error,
            });
        }
        prev = e.hash;
    }
    Ok(AuditHead {
        count: entries.len() as u64,
        hash: prev,
    })
}

/// Verifies the audit log of a KMC or security module store file, without its passphrase.
///
/// Returns the number of entries.
///
/// # Errors
/// See [`AuditError`].
pub async fn verify_audit(path: &Path) -> Result<u64, AuditError> {
    let pool = store::open_read_only(path).await?;
    let mut conn = pool.acquire().await?;
    let head = verify_connection(&mut conn).await?;
    drop(conn);
    pool.close().await;
    Ok(head.count)
}

/// Reads the audit log of a KMC or security module store file, oldest first, without its
/// passphrase (the log holds no secret) and without changing the file.
///
/// # Errors
/// The file cannot be opened or read.
pub async fn read_audit(path: &Path) -> Result<Vec<AuditEntry>, AuditError> {
    let pool = store::open_read_only(path).await?;
    let mut conn = pool.acquire().await?;
    let entries = load(&mut conn).await?;
    drop(conn);
    pool.close().await;
    Ok(entries)
}

pub(crate) async fn verify_connection(
    conn: &mut SqliteConnection,
) -> Result<AuditHead, AuditError> {
    let entries = load(conn).await?;
    let head = verify_chain(&entries)?;
    let recorded = match store::meta(conn, HEAD).await? {
        Some(text) => AuditHead::decode(&text)
            .ok_or_else(|| store::StoreError::Corrupt("audit head".into()))?,
        None => AuditHead {
            count: 0,
            hash: [0; 32],
        },
    };
    if recorded != head {
        return Err(AuditError::Head {
            recorded: recorded.count,
            found: head.count,
        });
    }
    Ok(head)
}

/// The `meta` row that holds the head.
pub(crate) const HEAD: &str = "audit-head";

/// The head from its `meta` value (none: an empty log).
pub(crate) fn decode_head(text: Option<&str>) -> Result<AuditHead, store::StoreError> {
    match text {
        Some(text) => {
            AuditHead::decode(text).ok_or_else(|| store::StoreError::Corrupt("audit head".into()))
        }
        None => Ok(AuditHead {
            count: 0,
            hash: [0; 32],
        }),
    }
}

/// Reads every entry in sequence order.
///
/// A store written before batch entries existed, and not opened for writing since, has no
/// `records` column: its entries have none.
pub(crate) async fn load(
    conn: &mut SqliteConnection,
) -> Result<Vec<AuditEntry>, store::StoreError> {
    let has_records: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('audit') WHERE name = 'records')",
    )
    .fetch_one(&mut *conn)
    .await?;
    let rows = sqlx::query(if has_records {
        "SELECT sequence, time, actor, action, details, prev_hash, hash, records FROM audit ORDER BY sequence"
    } else {
        "SELECT sequence, time, actor, action, details, prev_hash, hash, NULL FROM audit ORDER BY sequence"
    })
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            let sequence: i64 = r.get(0);
            let corrupt = || store::StoreError::Corrupt(format!("audit entry {sequence}"));
            Ok(AuditEntry {
                sequence: u64::try_from(sequence).map_err(|_| corrupt())?,
                time: r.get(1),
                actor: r.get(2),
                action: r.get(3),
                details: r.get(4),
                prev_hash: r.get::<Vec<u8>, _>(5).try_into().map_err(|_| corrupt())?,
                hash: r.get::<Vec<u8>, _>(6).try_into().map_err(|_| corrupt())?,
                records: r.get(7),
            })
        })
        .collect()
}

/// Appends an entry; call inside the transaction that makes the change.
pub(crate) async fn append(
    conn: &mut SqliteConnection,
    time: i64,
    actor: &str,
    action: &str,
    details: &serde_json::Value,
) -> Result<u64, store::StoreError> {
    let mut appender = Appender::begin(conn).await?;
    let sequence = appender.push(time, actor, action, details.to_string());
    appender.flush(conn).await?;
    Ok(sequence)
}

/// Entries appended in one transaction: chained in memory, written in one go by
/// [`Appender::flush`] with the new head.
pub(crate) struct Appender {
    head: AuditHead,
    pending: Vec<AuditEntry>,
}

/// Rows per INSERT statement (7 parameters each, far below SQLite's limit).
const ROWS_PER_INSERT: usize = 64;

impl Appender {
    /// Reads the head; call inside the transaction.
    pub(crate) async fn begin(conn: &mut SqliteConnection) -> Result<Self, store::StoreError> {
        let text = store::meta(conn, HEAD).await?;
        Ok(Self::at(decode_head(text.as_deref())?))
    }

    /// Appends after `head`, read inside the transaction.
    pub(crate) fn at(head: AuditHead) -> Self {
        Self {
            head,
            pending: Vec::new(),
        }
    }

    /// The head: the store's, then that of the last entry pushed.
    pub(crate) fn head(&self) -> AuditHead {
        self.head
    }

    /// The sequence number the next entry will get.
    pub(crate) fn next_sequence(&self) -> u64 {
        self.head.count + 1
    }

    /// Chains an entry and returns its sequence number.
    pub(crate) fn push(&mut self, time: i64, actor: &str, action: &str, details: String) -> u64 {
        self.push_entry(time, actor, action, details, None)
    }

    /// Chains a batch entry with its records and returns its sequence number.
    pub(crate) fn push_with_records(
        &mut self,
        time: i64,
        actor: &str,
        action: &str,
        details: String,
        records: Vec<u8>,
    ) -> u64 {
        self.push_entry(time, actor, action, details, Some(records))
    }

    fn push_entry(
        &mut self,
        time: i64,
        actor: &str,
        action: &str,
        details: String,
        records: Option<Vec<u8>>,
    ) -> u64 {
        let mut entry = AuditEntry {
            sequence: self.head.count + 1,
            time,
            actor: actor.to_owned(),
            action: action.to_owned(),
            details,
            records,
            prev_hash: self.head.hash,
            hash: [0; 32],
        };
        entry.hash = entry.computed_hash();
        let (sequence, hash) = (entry.sequence, entry.hash);
        self.pending.push(entry);
        self.head = AuditHead {
            count: sequence,
            hash,
        };
        sequence
    }

    /// Writes the pending entries and the new head.
    pub(crate) async fn flush(self, conn: &mut SqliteConnection) -> Result<(), store::StoreError> {
        let mut script = store::Script::default();
        self.write_into(&mut script);
        script.execute(conn).await
    }

    /// Appends the statements that write the pending entries and the new head.
    pub(crate) fn write_into(self, script: &mut store::Script) {
        if self.pending.is_empty() {
            return;
        }
        let head = self.head.encode();
        let (batches, plain): (Vec<_>, Vec<_>) =
            self.pending.into_iter().partition(|e| e.records.is_some());
        // Batch entries are few and large: one row each, in the `records` column that only
        // security module stores have.
        for e in batches {
            script
                .statement(
                    "INSERT INTO audit (sequence, time, actor, action, details, prev_hash, hash, records) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(e.sequence as i64)
                .bind(e.time)
                .bind(e.actor)
                .bind(e.action)
                .bind(e.details)
                .bind(e.prev_hash.to_vec())
                .bind(e.hash.to_vec())
                .bind(e.records);
        }
        let mut plain = plain.into_iter().peekable();
        while plain.peek().is_some() {
            let chunk: Vec<AuditEntry> = plain.by_ref().take(ROWS_PER_INSERT).collect();
            let mut sql = String::from(
                "INSERT INTO audit (sequence, time, actor, action, details, prev_hash, hash) VALUES ",
            );
            for i in 0..chunk.len() {
                sql.push_str(if i == 0 {
                    "(?, ?, ?, ?, ?, ?, ?)"
                } else {
                    ", (?, ?, ?, ?, ?, ?, ?)"
                });
            }
            script.statement(&sql);
            for e in chunk {
                script
                    .bind(e.sequence as i64)
                    .bind(e.time)
                    .bind(e.actor)
                    .bind(e.action)
                    .bind(e.details)
                    .bind(e.prev_hash.to_vec())
                    .bind(e.hash.to_vec());
            }
        }
        script
            .statement(
                "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            )
            .bind(HEAD)
            .bind(head);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<AuditEntry> {
        let mut prev = [0u8; 32];
        (1..=n)
            .map(|sequence| {
                let hash = entry_hash(&prev, sequence, 60, "kmc", "test", "{}");
                let e = AuditEntry {
                    sequence,
                    time: 60,
                    actor: "kmc".into(),
                    action: "test".into(),
                    details: "{}".into(),
                    records: None,
                    prev_hash: prev,
                    hash,
                };
                prev = hash;
                e
            })
            .collect()
    }

    #[test]
    fn detects_modification_deletion_and_reordering() {
        let good = chain(4);
        assert_eq!(verify_chain(&good).unwrap().count, 4);

        let mut modified = good.clone();
        modified[2].details = r#"{"x":1}"#.into();
        assert!(matches!(
            verify_chain(&modified),
            Err(AuditError::Modified { sequence: 3 })
        ));

        let mut deleted = good.clone();
        deleted.remove(1);
        assert!(matches!(
            verify_chain(&deleted),
            Err(AuditError::Sequence {
                expected: 2,
                found: 3
            })
        ));

        let mut reordered = good.clone();
        reordered.swap(1, 2);
        assert!(matches!(
            verify_chain(&reordered),
            Err(AuditError::Sequence { .. })
        ));
    }
}
