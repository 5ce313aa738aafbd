//! Export: a campaign's pending sets, a page at a time, for field teams that enter them by
//! hand. Exporting does not change delivery: an exported set is still handed out with the
//! meter's next vend (a meter that already took it refuses the second copy - it no longer
//! decrypts under the new key - and takes the credit token that follows).

use serde_json::json;
use sqlx::Row;
use sts_core::TokenNumber;

use super::parse_key_text;
use crate::{Database, VendError, audit, db::now_seconds, meters::KeyRecord, retry};

/// A pending set as exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedItem {
    /// The meter.
    pub pan: String,
    /// The tokens, in the order to enter them.
    pub tokens: Vec<TokenNumber>,
    /// The key record the meter moves to.
    pub to: KeyRecord,
}

impl Database {
    /// The pending sets of campaign `id` after PAN `after`, in PAN order, at most `limit`.
    ///
    /// # Errors
    /// Database failures.
    pub async fn campaign_pending_sets(
        &self,
        id: i64,
        after: &str,
        limit: i64,
    ) -> Result<Vec<ExportedItem>, VendError> {
        let rows = sqlx::query(
            "SELECT pan, to_key, tokens FROM campaign_items WHERE campaign_id = $1 AND pan > $2 \
             AND state = 'pending' ORDER BY pan LIMIT $3",
        )
        .bind(id)
        .bind(after)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let tokens: Option<String> = r.try_get(2)?;
                let tokens = tokens
                    .unwrap_or_default()
                    .split(' ')
                    .map(|t| {
                        t.split_once(':')
                            .and_then(|(_, n)| n.parse().ok())
                            .ok_or_else(|| {
                                VendError::Internal("campaign_items.tokens does not parse".into())
                            })
                    })
                    .collect::<Result<_, _>>()?;
                Ok(ExportedItem {
                    pan: r.try_get(0)?,
                    tokens,
                    to: parse_key_text(&r.try_get::<String, _>(1)?)?,
                })
            })
            .collect()
    }

    /// Records that the pending sets of campaign `id` with PANs in `(after, last]` were
    /// written to an export file (their `exported` time), with an audit entry.
    ///
    /// # Errors
    /// Database failures.
    pub async fn mark_exported(
        &self,
        id: i64,
        after: &str,
        last: &str,
        count: u64,
    ) -> Result<(), VendError> {
        retry(|| async {
            let _turn = self.write_turn().await;
            let mut tx = self.pool().begin().await?;
            sqlx::query(
                "UPDATE campaign_items SET exported = $1 WHERE campaign_id = $2 AND pan > $3 \
                 AND pan <= $4 AND state = 'pending'",
            )
            .bind(now_seconds())
            .bind(id)
            .bind(after)
            .bind(last)
            .execute(&mut *tx)
            .await?;
            audit::append(
                &mut tx,
                &audit::Entry {
                    action: "campaign.export",
                    details: json!({"campaign": id, "after": after, "last": last, "sets": count}),
                    ..audit::Entry::default()
                },
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }
}
