//! The append-only audit table: every state change with the API key, request ID, security
//! module and vending key check value. Never a token number or key material.

use serde::Serialize;
use sqlx::{Any, Row, Transaction};

use crate::{
    Database, VendError,
    db::{ROWS_PER_STATEMENT, now_seconds, placeholders},
};

/// One audit row to append.
#[derive(Debug, Default)]
pub(crate) struct Entry<'a> {
    pub(crate) key_id: Option<&'a str>,
    pub(crate) request_id: Option<&'a str>,
    pub(crate) sm_id: Option<&'a str>,
    pub(crate) kcv: Option<&'a str>,
    pub(crate) action: &'a str,
    pub(crate) details: serde_json::Value,
}

/// Appends `entry` inside `tx`.
pub(crate) async fn append(
    tx: &mut Transaction<'_, Any>,
    entry: &Entry<'_>,
) -> Result<(), VendError> {
    append_many(tx, std::slice::from_ref(entry)).await
}

/// Appends `entries` inside `tx`, in order, with multi-row statements.
pub(crate) async fn append_many(
    tx: &mut Transaction<'_, Any>,
    entries: &[Entry<'_>],
) -> Result<(), VendError> {
    let now = now_seconds();
    for chunk in entries.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO audit (time, key_id, request_id, sm_id, kcv, action, details) VALUES {}",
            placeholders(chunk.len(), 7)
        );
        let mut query = sqlx::query(&sql);
        for entry in chunk {
            query = query
                .bind(now)
                .bind(entry.key_id)
                .bind(entry.request_id)
                .bind(entry.sm_id)
                .bind(entry.kcv)
                .bind(entry.action)
                .bind(entry.details.to_string());
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// An audit row as read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// Sequence number, increasing.
    pub seq: i64,
    /// Unix seconds.
    pub time: i64,
    /// The API key that made the change (none for changes made at the command line, such as
    /// `sts api-key create`; the web console acts with the signed-in API key).
    pub key_id: Option<String>,
    /// The client request ID.
    pub request_id: Option<String>,
    /// The security module that issued tokens.
    pub sm_id: Option<String>,
    /// The vending key check value.
    pub kcv: Option<String>,
    /// What happened (`meter.register`, `vend.issue` ...).
    pub action: String,
    /// JSON details.
    pub details: serde_json::Value,
}

impl Database {
    /// Audit rows after sequence `after`, oldest first, at most `limit`.
    ///
    /// # Errors
    /// Database failures.
    pub async fn audit(&self, after: i64, limit: i64) -> Result<Vec<AuditRecord>, VendError> {
        let rows = sqlx::query(
            "SELECT seq, time, key_id, request_id, sm_id, kcv, action, details FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let details: String = r.try_get(7)?;
                Ok(AuditRecord {
                    seq: r.try_get(0)?,
                    time: r.try_get(1)?,
                    key_id: r.try_get(2)?,
                    request_id: r.try_get(3)?,
                    sm_id: r.try_get(4)?,
                    kcv: r.try_get(5)?,
                    action: r.try_get(6)?,
                    details: serde_json::from_str(&details)
                        .unwrap_or(serde_json::Value::String(details)),
                })
            })
            .collect()
    }
}
