//! Running a campaign: chunks of meters in PAN order, each one security module call and one
//! database transaction that stores the items, sets the meters' target key records and moves
//! the checkpoint.

use std::sync::{
    Mutex,
    atomic::{AtomicBool, Ordering},
};

use serde_json::json;
use sqlx::{Any, Transaction};
use sts_core::{EncryptionAlgorithm, MeterDescription};
use sts_keys::{
    HeldKey, IssuedKeyChange, KeyChangeRequest, SecurityModule, SmError, StoreError, VendingKeyType,
};

use super::{Campaign, CampaignState, campaign_from_row, filter_sql, key_text};
use crate::{
    Backend, Database, VendError, audit,
    db::{now_seconds, placeholders_in, retryable},
    meters::{KeyRecord, Meter},
    retry,
};

/// Items per multi-row `INSERT` (10 columns: 5,000 parameters, within both engines' limits).
const ITEM_ROWS: usize = 500;

/// What one committed chunk did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkDone {
    /// The campaign.
    pub campaign: i64,
    /// The chunk's number, from 1.
    pub chunk: u64,
    /// Its first and last PAN (the last is the new checkpoint).
    pub first: String,
    /// See `first`.
    pub last: String,
    /// Meters in the chunk (one item each).
    pub meters: u64,
    /// Items with a key change set, now pending delivery.
    pub issued: u64,
    /// Items the security module cannot do (the reason is stored).
    pub failed: u64,
    /// Items with nothing to do.
    pub skipped: u64,
    /// Items written by the campaign so far, this chunk's included.
    pub processed: u64,
    /// Meters the selection matched when the campaign was created.
    pub selected: u64,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// Every selected meter has its item.
    Done,
    /// Stopped at a chunk boundary on request; run again to go on.
    Stopped,
}

/// The keys the security module holds, and what was found about each key record a chunk met.
struct Plan {
    keys: Vec<HeldKey>,
    /// Key record and algorithm -> the reason the module cannot use it (none: it can).
    seen: Mutex<Vec<Seen>>,
}

type Seen = ((KeyRecord, EncryptionAlgorithm), Option<String>);

impl Plan {
    /// Why the security module cannot make a key change from or to `d`: what it would answer
    /// (no such key, DKGA or base date does not fit, a DITK). Activation and issued-until are
    /// left to the module itself.
    fn problem(&self, key: &KeyRecord, d: &MeterDescription) -> Option<String> {
        let Ok(mut seen) = self.seen.lock() else {
            return problem(&self.keys, d);
        };
        if let Some((_, p)) = seen
            .iter()
            .find(|((k, ea), _)| k == key && *ea == d.algorithm)
        {
            return p.clone();
        }
        let p = problem(&self.keys, d);
        seen.push(((*key, d.algorithm), p.clone()));
        p
    }
}

fn problem(keys: &[HeldKey], d: &MeterDescription) -> Option<String> {
    let Some(vkt) = VendingKeyType::for_decoder_key_type(d.key_type) else {
        return Some(SmError::InitializationKey.to_string());
    };
    let Some(held) = keys.iter().find(|k| {
        let a = &k.attributes;
        a.supply_group == d.supply_group && a.key_type == vkt && a.key_revision == d.key_revision
    }) else {
        return Some(
            SmError::NoKey {
                supply_group: d.supply_group,
                key_type: vkt,
                revision: d.key_revision,
            }
            .to_string(),
        );
    };
    if held.attributes.derivation != d.derivation {
        return Some(SmError::KeyMismatch("the meter's DKGA differs from the key's").to_string());
    }
    if held.attributes.base_date != d.base_date {
        return Some(
            SmError::KeyMismatch("the meter's base date differs from the key's").to_string(),
        );
    }
    None
}

/// One meter's item before it is stored.
struct Item {
    pan: String,
    state: &'static str,
    reason: Option<String>,
    from: KeyRecord,
    to: KeyRecord,
    /// Index into the chunk's issued sets.
    set: Option<usize>,
}

impl Database {
    /// Runs a campaign until every selected meter has its item, or until `stop` is set (checked
    /// between chunks, so a run stops at a chunk boundary). `progress` is called after each
    /// committed chunk. Running a campaign that is done does nothing; running one that stopped
    /// (or crashed) resumes after its checkpoint.
    ///
    /// Each chunk holds the database's write lock (SQLite) or its meters' row locks
    /// (PostgreSQL) from reading its meters to its commit; two runs of one campaign take turns
    /// chunk by chunk and never do a meter twice.
    ///
    /// # Errors
    /// [`VendError::NotFound`]; [`VendError::Invalid`] (field `target`) when the security
    /// module does not hold the key a meter would move to; [`VendError::Refused`] when it
    /// refuses a chunk (a key not yet active, past issued-until ...); database failures. The
    /// chunk in progress is not recorded then; the committed ones stay.
    pub async fn run_campaign(
        &self,
        id: i64,
        sm: &SecurityModule,
        stop: &AtomicBool,
        mut progress: impl FnMut(&ChunkDone),
    ) -> Result<RunEnd, VendError> {
        let campaign = self.campaign(id).await?;
        if campaign.state == CampaignState::Done {
            return Ok(RunEnd::Done);
        }
        let plan = Plan {
            keys: sm.keys().await?,
            seen: Mutex::new(Vec::new()),
        };
        loop {
            if stop.load(Ordering::Relaxed) {
                tracing::info!(campaign = id, "campaign run stopped");
                return Ok(RunEnd::Stopped);
            }
            match retry(|| self.campaign_chunk(id, sm, &plan)).await? {
                Some(done) => progress(&done),
                None => return Ok(RunEnd::Done),
            }
        }
    }

    /// One chunk; `None` when there was nothing left (the campaign is done).
    async fn campaign_chunk(
        &self,
        id: i64,
        sm: &SecurityModule,
        plan: &Plan,
    ) -> Result<Option<ChunkDone>, VendError> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool().begin().await?;
        let now = now_seconds();
        // Take the campaign first: SQLite's write lock (this is a write), PostgreSQL's row
        // lock. Runs of one campaign take turns here.
        match self.backend() {
            Backend::Sqlite => {
                sqlx::query("UPDATE campaigns SET updated = $1 WHERE id = $2")
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            Backend::Postgres => {
                sqlx::query("SELECT id FROM campaigns WHERE id = $1 FOR UPDATE")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let row = sqlx::query("SELECT * FROM campaigns WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| VendError::NotFound(format!("campaign {id}")))?;
        let campaign = campaign_from_row(&row)?;
        if campaign.state == CampaignState::Done {
            tx.commit().await?;
            return Ok(None);
        }
        let meters = chunk_meters(&mut tx, self.backend(), &campaign).await?;
        let (Some(first), Some(last)) = (meters.first(), meters.last()) else {
            sqlx::query(
                "UPDATE campaigns SET state = 'done', finished = $1, updated = $1 WHERE id = $2",
            )
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            audit::append(
                &mut tx,
                &audit::Entry {
                    action: "campaign.done",
                    details: json!({"campaign": id, "chunks": campaign.chunks, "processed": campaign.processed}),
                    ..audit::Entry::default()
                },
            )
            .await?;
            tx.commit().await?;
            tracing::info!(campaign = id, "campaign done");
            return Ok(None);
        };
        let (first, last) = (first.pan.as_str().to_owned(), last.pan.as_str().to_owned());

        // Decide each meter's item; collect the key changes to issue.
        let mut items = Vec::with_capacity(meters.len());
        let mut requests = Vec::new();
        for m in &meters {
            let to = campaign.target.apply(&m.current);
            let mut item = Item {
                pan: m.pan.as_str().to_owned(),
                state: "pending",
                reason: None,
                from: m.current,
                to,
                set: None,
            };
            if m.key_change_pending() {
                item.state = "skipped";
                item.reason = Some(format!(
                    "another key change is pending (to {})",
                    key_text(&m.target)
                ));
            } else if to == m.current {
                item.state = "skipped";
                item.reason = Some("the meter already holds the target key record".into());
            } else if let Some(p) = plan.problem(&m.current, &m.description(&m.current)) {
                item.state = "failed";
                item.reason = Some(p);
            } else if let Some(p) = plan.problem(&to, &m.description(&to)) {
                return Err(VendError::field(
                    "target",
                    format!(
                        "meter {} would move to {} (SGC TI KRN KT base date DKGA): {p}. Load that key into the security module (`sts sm import`), or make a campaign with another target",
                        m.pan,
                        key_text(&to)
                    ),
                ));
            } else {
                item.set = Some(requests.len());
                requests.push(KeyChangeRequest {
                    current: m.description(&m.current),
                    new: m.description(&to),
                    include_supply_group: campaign.target.include_supply_group,
                });
            }
            items.push(item);
        }
        let issued = issue(sm, &requests).await?;
        let sm_id = sm.id().as_str();
        let pending: Vec<&str> = items
            .iter()
            .filter(|i| i.state == "pending")
            .map(|i| i.pan.as_str())
            .collect();
        supersede_stale(&mut tx, id, &first, &last, &pending, now).await?;
        insert_items(&mut tx, self.backend(), id, &items, &issued, sm_id).await?;
        set_targets(&mut tx, &campaign, &first, &last, pending.len(), now).await?;

        let n = |state: &str| items.iter().filter(|i| i.state == state).count() as u64;
        let (issued_n, failed_n, skipped_n) = (n("pending"), n("failed"), n("skipped"));
        let chunk = campaign.chunks + 1;
        let processed = campaign.processed + items.len() as u64;
        sqlx::query(
            "UPDATE campaigns SET state = 'running', checkpoint = $1, chunks = $2, processed = $3, \
             issued = issued + $4, failed = failed + $5, skipped = skipped + $6, \
             started = COALESCE(started, $7), updated = $7 WHERE id = $8",
        )
        .bind(&last)
        .bind(i64::try_from(chunk).unwrap_or(i64::MAX))
        .bind(i64::try_from(processed).unwrap_or(i64::MAX))
        .bind(i64::try_from(issued_n).unwrap_or(i64::MAX))
        .bind(i64::try_from(failed_n).unwrap_or(i64::MAX))
        .bind(i64::try_from(skipped_n).unwrap_or(i64::MAX))
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        audit::append(
            &mut tx,
            &audit::Entry {
                sm_id: Some(sm_id),
                action: "campaign.chunk",
                details: json!({
                    "campaign": id, "chunk": chunk, "first": first, "last": last,
                    "meters": items.len(), "issued": issued_n, "failed": failed_n, "skipped": skipped_n,
                }),
                ..audit::Entry::default()
            },
        )
        .await?;
        tx.commit().await?;
        tracing::info!(
            campaign = id,
            chunk,
            meters = items.len(),
            issued = issued_n,
            failed = failed_n,
            skipped = skipped_n,
            "campaign chunk committed"
        );
        Ok(Some(ChunkDone {
            campaign: id,
            chunk,
            first,
            last,
            meters: items.len() as u64,
            issued: issued_n,
            failed: failed_n,
            skipped: skipped_n,
            processed,
            selected: campaign.selected,
        }))
    }
}

/// The security module call of a chunk: every set in one transaction of the module. A busy
/// store (another process - `sts serve` - wrote to it between this transaction's read and
/// write) is tried again, a few times.
async fn issue(
    sm: &SecurityModule,
    requests: &[KeyChangeRequest],
) -> Result<Vec<IssuedKeyChange>, VendError> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    let mut delay = std::time::Duration::from_millis(2);
    let mut attempt = 1;
    loop {
        match sm.issue_key_change_many(requests).await {
            Err(SmError::Store(StoreError::Database(e))) if attempt < 8 && retryable(&e) => {
                tracing::debug!(attempt, error = %e, "security module store busy: trying the chunk again");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            other => return Ok(other?),
        }
    }
}

/// The next chunk's meters after the checkpoint, in PAN order (locked on PostgreSQL).
async fn chunk_meters(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    campaign: &Campaign,
) -> Result<Vec<Meter>, VendError> {
    let after = campaign
        .checkpoint
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let lock = match backend {
        Backend::Sqlite => "",
        Backend::Postgres => " FOR UPDATE OF m",
    };
    let limit = i64::from(campaign.chunk_size);
    let rows = if campaign.pan_list {
        let (filter, binds) = filter_sql(&campaign.selection, 3);
        let sql = format!(
            "SELECT m.* FROM campaign_pans p JOIN meters m ON m.pan = p.pan \
             WHERE p.campaign_id = $1 AND p.pan > $2 AND {filter} ORDER BY p.pan LIMIT {limit}{lock}"
        );
        let mut query = sqlx::query(&sql).bind(campaign.id).bind(after);
        for b in binds {
            query = query.bind(b);
        }
        query.fetch_all(&mut **tx).await?
    } else {
        let (filter, binds) = filter_sql(&campaign.selection, 2);
        let sql = format!(
            "SELECT m.* FROM meters m WHERE m.pan > $1 AND {filter} ORDER BY m.pan LIMIT {limit}{lock}"
        );
        let mut query = sqlx::query(&sql).bind(after);
        for b in binds {
            query = query.bind(b);
        }
        query.fetch_all(&mut **tx).await?
    };
    rows.iter().map(Meter::from_row).collect()
}

/// A meter about to get a pending set may still have one from another campaign that no
/// longer applies (its key record was set without a key change since): that one is
/// superseded, so each meter keeps at most one pending set.
async fn supersede_stale(
    tx: &mut Transaction<'_, Any>,
    id: i64,
    first: &str,
    last: &str,
    pending: &[&str],
    now: i64,
) -> Result<(), VendError> {
    if pending.is_empty() {
        return Ok(());
    }
    let stale: Vec<String> = sqlx::query_scalar(
        "SELECT pan FROM campaign_items WHERE state = 'pending' AND pan >= $1 AND pan <= $2 AND campaign_id <> $3",
    )
    .bind(first)
    .bind(last)
    .bind(id)
    .fetch_all(&mut **tx)
    .await?;
    for pan in stale
        .iter()
        .filter(|p| pending.binary_search(&p.as_str()).is_ok())
    {
        sqlx::query(
            "UPDATE campaign_items SET state = 'superseded', reason = $1 WHERE pan = $2 AND state = 'pending'",
        )
        .bind(format!(
            "the meter's key record was changed without a key change before delivery; campaign {id} took over ({now})"
        ))
        .bind(pan)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// The tokens of a set as stored: `SUBCLASS:NUMBER` in entry order, space-separated.
fn tokens_text(set: &IssuedKeyChange) -> String {
    set.set
        .iter()
        .map(|t| format!("{}:{}", t.block.subclass().get(), t.number))
        .collect::<Vec<_>>()
        .join(" ")
}

async fn insert_items(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    id: i64,
    items: &[Item],
    issued: &[IssuedKeyChange],
    sm_id: &str,
) -> Result<(), VendError> {
    for chunk in items.chunks(ITEM_ROWS) {
        let sql = format!(
            "INSERT INTO campaign_items (campaign_id, pan, state, reason, from_key, to_key, tokens, sm_id, from_kcv, to_kcv) VALUES {}",
            placeholders_in(backend, chunk.len(), 10)
        );
        let mut query = sqlx::query(&sql);
        for item in chunk {
            let set = item.set.and_then(|i| issued.get(i));
            query = query
                .bind(id)
                .bind(item.pan.as_str())
                .bind(item.state)
                .bind(item.reason.as_deref())
                .bind(key_text(&item.from))
                .bind(key_text(&item.to))
                .bind(set.map(tokens_text))
                .bind(set.map(|_| sm_id))
                .bind(set.map(|s| s.current_check_value.to_hex()))
                .bind(set.map(|s| s.new_check_value.to_hex()));
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Sets the target key record of the chunk's meters that got a pending set: the campaign's
/// fields, the rest stays (their target is their current record).
async fn set_targets(
    tx: &mut Transaction<'_, Any>,
    campaign: &Campaign,
    first: &str,
    last: &str,
    expected: usize,
    now: i64,
) -> Result<(), VendError> {
    if expected == 0 {
        return Ok(());
    }
    let t = &campaign.target;
    let mut sets = Vec::new();
    let mut binds = Vec::new();
    for (column, value) in [
        ("sgc", t.supply_group.map(|v| v.to_string())),
        ("ti", t.tariff_index.map(|v| v.to_string())),
        ("krn", t.key_revision.map(|v| v.to_string())),
        ("base_date", t.base_date.map(|v| v.to_string())),
        ("dkga", t.derivation.map(|v| v.to_string())),
    ] {
        if let Some(value) = value {
            binds.push(value);
            sets.push(format!("{column} = ${}", binds.len()));
        }
    }
    let n = binds.len();
    let sql = format!(
        "UPDATE meters SET {}, version = version + 1, updated = ${} WHERE pan IN \
         (SELECT pan FROM campaign_items WHERE campaign_id = ${} AND pan >= ${} AND pan <= ${} AND state = 'pending')",
        sets.join(", "),
        n + 1,
        n + 2,
        n + 3,
        n + 4
    );
    let mut query = sqlx::query(&sql);
    for b in binds {
        query = query.bind(b);
    }
    let done = query
        .bind(now)
        .bind(campaign.id)
        .bind(first)
        .bind(last)
        .execute(&mut **tx)
        .await?;
    if done.rows_affected() != expected as u64 {
        return Err(VendError::Internal(format!(
            "campaign {}: {} meters updated for {expected} pending sets",
            campaign.id,
            done.rows_affected()
        )));
    }
    Ok(())
}
