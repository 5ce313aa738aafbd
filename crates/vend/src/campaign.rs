//! Key change campaigns: move many meters to a new key record (a new KRN, SGC, TI, DKGA or
//! base date - the 2024 TID rollover moves base-1993 meters to 2014) without computing a key
//! change set at the till.
//!
//! A campaign is a selection (meters whose *current* key record has a given SGC, KRN and base
//! date, or a list of PANs) and a target (the fields to change; the rest stays the meter's
//! own). [`Database::run_campaign`] walks the selected meters in PAN order, a chunk at a time:
//! one security module call issues the chunk's key change sets
//! ([`SecurityModule::issue_key_change_many`]), and one database transaction stores them as
//! campaign items, sets each meter's target key record (so a key change is pending) and moves
//! the campaign's checkpoint to the chunk's last PAN. A run that stops - Ctrl-C, a crash, a
//! `kill -9` - resumes after the last committed chunk; no meter gets two items.
//!
//! Delivery: the next vend to such a meter hands out the stored set (then the token under the
//! new key) instead of computing one, and marks the item delivered; a reprint returns the same
//! answer. [`Database::campaign_pending_sets`] and [`Database::mark_exported`] serve the export of
//! pending sets for field teams (`sts campaign export`).
//!
//! [`SecurityModule::issue_key_change_many`]: sts_keys::SecurityModule::issue_key_change_many

mod delivery;
mod export;
mod run;

pub(crate) use delivery::key_change_set;
pub use export::ExportedItem;
pub use run::{ChunkDone, RunEnd};

use std::fmt;

use serde_json::{Value, json};
use sqlx::{Any, Row, Transaction, any::AnyRow};
use sts_core::{
    BaseDate, KeyDerivationAlgorithm, KeyRevisionNumber, MeterPan, SupplyGroupCode, TariffIndex,
};

use crate::{
    Backend, Database, VendError, audit,
    db::{now_seconds, placeholders_in},
    meters::KeyRecord,
    retry,
};

/// Which meters a campaign moves: those whose current key record matches every filter given
/// (all meters when none is), within the PAN list when there is one. Retired meters are
/// never selected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CampaignSelection {
    /// Only meters holding a key of this supply group.
    pub supply_group: Option<SupplyGroupCode>,
    /// Only meters holding a key of this revision.
    pub key_revision: Option<KeyRevisionNumber>,
    /// Only meters whose key is for this base date (1993 for the 2024 TID rollover).
    pub base_date: Option<BaseDate>,
    /// Only these meters (every one must be registered).
    pub pans: Option<Vec<MeterPan>>,
}

/// The key record a campaign moves its meters to: each field given replaces the meter's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CampaignTarget {
    /// New supply group code.
    pub supply_group: Option<SupplyGroupCode>,
    /// New tariff index.
    pub tariff_index: Option<TariffIndex>,
    /// New key revision number.
    pub key_revision: Option<KeyRevisionNumber>,
    /// New base date (a later one sets the rollover bit: the meter clears its TID memory).
    pub base_date: Option<BaseDate>,
    /// New decoder key generation algorithm.
    pub derivation: Option<KeyDerivationAlgorithm>,
    /// Send the SGC in the set (3 tokens for a 64-bit key) even when it does not change.
    pub include_supply_group: bool,
}

impl CampaignTarget {
    /// The key record a meter holding `current` moves to.
    #[must_use]
    pub fn apply(&self, current: &KeyRecord) -> KeyRecord {
        KeyRecord {
            supply_group: self.supply_group.unwrap_or(current.supply_group),
            tariff_index: self.tariff_index.unwrap_or(current.tariff_index),
            key_revision: self.key_revision.unwrap_or(current.key_revision),
            key_type: current.key_type,
            base_date: self.base_date.unwrap_or(current.base_date),
            derivation: self.derivation.unwrap_or(current.derivation),
        }
    }

    fn changes_something(&self) -> bool {
        self.supply_group.is_some()
            || self.tariff_index.is_some()
            || self.key_revision.is_some()
            || self.base_date.is_some()
            || self.derivation.is_some()
    }
}

/// A campaign to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCampaign {
    /// A unique name, 1 to 100 printable characters (`rollover-2024`).
    pub name: String,
    /// Which meters.
    pub selection: CampaignSelection,
    /// To which key record.
    pub target: CampaignTarget,
    /// Meters per chunk (one security module call and one transaction each).
    pub chunk_size: u32,
}

impl NewCampaign {
    /// The default chunk: large enough that a statement's cost is spread over many meters,
    /// small enough that a chunk's transaction holds the SQLite write lock for well under a
    /// second.
    pub const DEFAULT_CHUNK_SIZE: u32 = 10_000;
    /// The largest chunk.
    pub const MAX_CHUNK_SIZE: u32 = 50_000;
}

/// Where a campaign is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CampaignState {
    /// Created, never run.
    Created,
    /// A run started (it may be running now, or have stopped: run it again to go on).
    Running,
    /// Every selected meter has its item.
    Done,
}

impl CampaignState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Done => "done",
        }
    }

    fn parse(text: &str) -> Result<Self, VendError> {
        match text {
            "created" => Ok(Self::Created),
            "running" => Ok(Self::Running),
            "done" => Ok(Self::Done),
            _ => Err(VendError::Internal(format!("campaign state {text:?}"))),
        }
    }
}

impl fmt::Display for CampaignState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many of a campaign's items are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ItemCounts {
    /// Sets waiting for the meter's next vend.
    pub pending: u64,
    /// Sets handed out with a vend.
    pub delivered: u64,
    /// Meters the security module cannot move (no set; the reason is stored).
    pub failed: u64,
    /// Meters with nothing to do (already on the target) or another key change pending.
    pub skipped: u64,
    /// Sets not delivered because the meter's key record changed first.
    pub superseded: u64,
    /// Items written to an export file at least once.
    pub exported: u64,
}

/// A campaign and its progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Campaign {
    /// Its ID.
    pub id: i64,
    /// Its unique name.
    pub name: String,
    /// The selection (`pans` is `None` here; see `pan_list`).
    pub selection: CampaignSelection,
    /// True when the campaign selects by a PAN list.
    pub pan_list: bool,
    /// The target.
    pub target: CampaignTarget,
    /// Meters per chunk.
    pub chunk_size: u32,
    /// Where it is.
    pub state: CampaignState,
    /// The last PAN of the last committed chunk.
    pub checkpoint: Option<MeterPan>,
    /// Chunks committed.
    pub chunks: u64,
    /// Meters that matched the selection when the campaign was created (for progress: the
    /// selection is applied as the run reaches each PAN).
    pub selected: u64,
    /// Items written (one per meter processed).
    pub processed: u64,
    /// Items by state.
    pub items: ItemCounts,
    /// Unix seconds.
    pub created: i64,
    /// When the first run started.
    pub started: Option<i64>,
    /// When it was done.
    pub finished: Option<i64>,
    /// Last change.
    pub updated: i64,
}

impl Campaign {
    /// The campaign as the JSON API shows it (never a token).
    #[must_use]
    pub fn to_json(&self) -> Value {
        let s = &self.selection;
        let t = &self.target;
        let text = |v: Option<String>| v.map_or(Value::Null, Value::String);
        let done = self.processed;
        let total = self.selected.max(done);
        json!({
            "id": self.id,
            "name": self.name,
            "selection": {
                "sgc": text(s.supply_group.map(|v| v.to_string())),
                "krn": text(s.key_revision.map(|v| v.to_string())),
                "base_date": text(s.base_date.map(|v| v.to_string())),
                "pan_list": self.pan_list,
            },
            "target": {
                "sgc": text(t.supply_group.map(|v| v.to_string())),
                "ti": text(t.tariff_index.map(|v| v.to_string())),
                "krn": text(t.key_revision.map(|v| v.to_string())),
                "base_date": text(t.base_date.map(|v| v.to_string())),
                "dkga": text(t.derivation.map(|v| v.to_string())),
                "include_sgc": t.include_supply_group,
            },
            "chunk_size": self.chunk_size,
            "state": self.state.as_str(),
            "checkpoint": self.checkpoint.map(|p| p.as_str().to_owned()),
            "chunks": self.chunks,
            "selected": self.selected,
            "processed": done,
            "progress": if total == 0 { 1.0 } else { done as f64 / total as f64 },
            "items": {
                "pending": self.items.pending,
                "delivered": self.items.delivered,
                "failed": self.items.failed,
                "skipped": self.items.skipped,
                "superseded": self.items.superseded,
                "exported": self.items.exported,
            },
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "updated": self.updated,
        })
    }
}

/// An item that did not get (or keep) a set: failed, skipped or superseded, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemProblem {
    /// The meter.
    pub pan: String,
    /// `failed`, `skipped` or `superseded`.
    pub state: String,
    /// Why.
    pub reason: String,
}

/// A key record as one text column: `SGC TI KRN KT BASE_DATE DKGA`.
pub(crate) fn key_text(k: &KeyRecord) -> String {
    format!(
        "{} {} {} {} {} {}",
        k.supply_group, k.tariff_index, k.key_revision, k.key_type, k.base_date, k.derivation
    )
}

/// Reads [`key_text`] back.
pub(crate) fn parse_key_text(text: &str) -> Result<KeyRecord, VendError> {
    let corrupt = || VendError::Internal(format!("campaign key record {text:?} does not parse"));
    let mut parts = text.split(' ');
    let mut next = || parts.next().ok_or_else(corrupt);
    let record = KeyRecord {
        supply_group: next()?.parse().map_err(|_| corrupt())?,
        tariff_index: next()?.parse().map_err(|_| corrupt())?,
        key_revision: next()?.parse().map_err(|_| corrupt())?,
        key_type: next()?.parse().map_err(|_| corrupt())?,
        base_date: next()?.parse().map_err(|_| corrupt())?,
        derivation: next()?.parse().map_err(|_| corrupt())?,
    };
    Ok(record)
}

fn parse_opt<T: std::str::FromStr>(row: &AnyRow, column: &str) -> Result<Option<T>, VendError> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|t| {
        t.parse()
            .map_err(|_| VendError::Internal(format!("campaigns.{column} does not parse")))
    })
    .transpose()
}

fn count(row: &AnyRow, column: &str) -> Result<u64, VendError> {
    Ok(u64::try_from(row.try_get::<i64, _>(column)?).unwrap_or(0))
}

fn campaign_from_row(row: &AnyRow) -> Result<Campaign, VendError> {
    let checkpoint: String = row.try_get("checkpoint")?;
    Ok(Campaign {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        selection: CampaignSelection {
            supply_group: parse_opt(row, "sel_sgc")?,
            key_revision: parse_opt(row, "sel_krn")?,
            base_date: parse_opt(row, "sel_base_date")?,
            pans: None,
        },
        pan_list: row.try_get::<i64, _>("pan_list")? != 0,
        target: CampaignTarget {
            supply_group: parse_opt(row, "new_sgc")?,
            tariff_index: parse_opt(row, "new_ti")?,
            key_revision: parse_opt(row, "new_krn")?,
            base_date: parse_opt(row, "new_base_date")?,
            derivation: parse_opt(row, "new_dkga")?,
            include_supply_group: row.try_get::<i64, _>("include_sgc")? != 0,
        },
        chunk_size: u32::try_from(row.try_get::<i64, _>("chunk_size")?)
            .unwrap_or(NewCampaign::DEFAULT_CHUNK_SIZE),
        state: CampaignState::parse(&row.try_get::<String, _>("state")?)?,
        checkpoint: if checkpoint.is_empty() {
            None
        } else {
            Some(
                checkpoint.parse().map_err(|_| {
                    VendError::Internal("campaigns.checkpoint does not parse".into())
                })?,
            )
        },
        chunks: count(row, "chunks")?,
        selected: count(row, "selected")?,
        processed: count(row, "processed")?,
        items: ItemCounts::default(),
        created: row.try_get("created")?,
        started: row.try_get("started")?,
        finished: row.try_get("finished")?,
        updated: row.try_get("updated")?,
    })
}

const MAX_NAME: usize = 100;

fn check_new(new: &NewCampaign) -> Result<(), VendError> {
    let name = new.name.trim();
    if name.is_empty()
        || name.len() > MAX_NAME
        || name != new.name
        || new.name.chars().any(char::is_control)
    {
        return Err(VendError::field(
            "name",
            format!("1 to {MAX_NAME} characters, no control characters or surrounding spaces"),
        ));
    }
    if name.parse::<i64>().is_ok() {
        return Err(VendError::field(
            "name",
            "not a number (campaigns are found by ID or by name)",
        ));
    }
    if !new.target.changes_something() {
        return Err(VendError::field(
            "target",
            "change at least one of the SGC, TI, KRN, base date or DKGA",
        ));
    }
    if new.chunk_size == 0 || new.chunk_size > NewCampaign::MAX_CHUNK_SIZE {
        return Err(VendError::field(
            "chunk_size",
            format!("1 to {}", NewCampaign::MAX_CHUNK_SIZE),
        ));
    }
    if new.selection.pans.as_ref().is_some_and(Vec::is_empty) {
        return Err(VendError::field("pans", "the PAN list is empty"));
    }
    Ok(())
}

/// `WHERE` conditions on `meters m` for a campaign's filters, with the parameters they bind
/// (numbered from `first`).
pub(crate) fn filter_sql(selection: &CampaignSelection, first: usize) -> (String, Vec<String>) {
    let mut sql = String::from("m.status <> 'retired'");
    let mut binds = Vec::new();
    for (column, value) in [
        ("cur_sgc", selection.supply_group.map(|v| v.to_string())),
        ("cur_krn", selection.key_revision.map(|v| v.to_string())),
        ("cur_base_date", selection.base_date.map(|v| v.to_string())),
    ] {
        if let Some(value) = value {
            sql.push_str(&format!(" AND m.{column} = ${}", first + binds.len()));
            binds.push(value);
        }
    }
    (sql, binds)
}

impl Database {
    /// Creates a campaign. A PAN list is sorted and its repeats dropped; every PAN in it must
    /// be a registered meter. Nothing runs yet.
    ///
    /// # Errors
    /// [`VendError::Invalid`] (name taken or malformed, nothing to change, chunk size, an
    /// unregistered PAN in the list), database failures. Nothing is stored then.
    pub async fn create_campaign(&self, new: &NewCampaign) -> Result<Campaign, VendError> {
        check_new(new)?;
        let mut pans: Option<Vec<&str>> = new
            .selection
            .pans
            .as_ref()
            .map(|list| list.iter().map(MeterPan::as_str).collect());
        if let Some(list) = &mut pans {
            list.sort_unstable();
            list.dedup();
        }
        let id = retry(|| self.create_campaign_once(new, pans.as_deref())).await?;
        tracing::info!(campaign = id, name = new.name, "campaign created");
        self.campaign(id).await
    }

    async fn create_campaign_once(
        &self,
        new: &NewCampaign,
        pans: Option<&[&str]>,
    ) -> Result<i64, VendError> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool().begin().await?;
        let taken: Option<i64> = sqlx::query_scalar("SELECT id FROM campaigns WHERE name = $1")
            .bind(&new.name)
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Err(VendError::field(
                "name",
                format!("a campaign named {:?} exists", new.name),
            ));
        }
        let s = &new.selection;
        let t = &new.target;
        let now = now_seconds();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO campaigns (name, sel_sgc, sel_krn, sel_base_date, pan_list, new_sgc, new_ti, \
             new_krn, new_base_date, new_dkga, include_sgc, chunk_size, state, checkpoint, chunks, \
             selected, processed, issued, failed, skipped, created, started, finished, updated) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'created', '', 0, 0, 0, 0, 0, 0, $13, NULL, NULL, $14) \
             RETURNING id",
        )
        .bind(&new.name)
        .bind(s.supply_group.map(|v| v.to_string()))
        .bind(s.key_revision.map(|v| v.to_string()))
        .bind(s.base_date.map(|v| v.to_string()))
        .bind(i64::from(pans.is_some()))
        .bind(t.supply_group.map(|v| v.to_string()))
        .bind(t.tariff_index.map(|v| v.to_string()))
        .bind(t.key_revision.map(|v| v.to_string()))
        .bind(t.base_date.map(|v| v.to_string()))
        .bind(t.derivation.map(|v| v.to_string()))
        .bind(i64::from(t.include_supply_group))
        .bind(i64::from(new.chunk_size))
        .bind(now)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let (filter, binds) = filter_sql(s, 2);
        let selected: i64 = if let Some(pans) = pans {
            insert_pans(&mut tx, self.backend(), id, pans).await?;
            let missing: Vec<String> = sqlx::query_scalar(
                "SELECT p.pan FROM campaign_pans p LEFT JOIN meters m ON m.pan = p.pan \
                 WHERE p.campaign_id = $1 AND m.pan IS NULL ORDER BY p.pan LIMIT 11",
            )
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
            if !missing.is_empty() {
                let shown = missing.iter().take(10).cloned().collect::<Vec<_>>();
                let more = if missing.len() > 10 { " ..." } else { "" };
                return Err(VendError::field(
                    "pans",
                    format!(
                        "not registered: {}{more} (register them first, or take them out of the list)",
                        shown.join(", ")
                    ),
                ));
            }
            let sql = format!(
                "SELECT COUNT(*) FROM campaign_pans p JOIN meters m ON m.pan = p.pan \
                 WHERE p.campaign_id = $1 AND {filter}"
            );
            let mut query = sqlx::query_scalar(&sql).bind(id);
            for b in &binds {
                query = query.bind(b.clone());
            }
            query.fetch_one(&mut *tx).await?
        } else {
            let (filter, binds) = filter_sql(s, 1);
            let sql = format!("SELECT COUNT(*) FROM meters m WHERE {filter}");
            let mut query = sqlx::query_scalar(&sql);
            for b in &binds {
                query = query.bind(b.clone());
            }
            query.fetch_one(&mut *tx).await?
        };
        sqlx::query("UPDATE campaigns SET selected = $1 WHERE id = $2")
            .bind(selected)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        audit::append(
            &mut tx,
            &audit::Entry {
                action: "campaign.create",
                details: json!({
                    "campaign": id,
                    "name": new.name,
                    "selected": selected,
                    "pan_list": pans.map(<[&str]>::len),
                }),
                ..audit::Entry::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// A campaign by ID, with its item counts.
    ///
    /// # Errors
    /// [`VendError::NotFound`], database failures.
    pub async fn campaign(&self, id: i64) -> Result<Campaign, VendError> {
        let row = sqlx::query("SELECT * FROM campaigns WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| VendError::NotFound(format!("campaign {id}")))?;
        let mut campaign = campaign_from_row(&row)?;
        campaign.items = self.item_counts(id).await?;
        Ok(campaign)
    }

    /// A campaign by name.
    ///
    /// # Errors
    /// [`VendError::NotFound`], database failures.
    pub async fn campaign_named(&self, name: &str) -> Result<Campaign, VendError> {
        let id: i64 = sqlx::query_scalar("SELECT id FROM campaigns WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| VendError::NotFound(format!("campaign {name:?}")))?;
        self.campaign(id).await
    }

    /// Every campaign, newest first, with item counts.
    ///
    /// # Errors
    /// Database failures.
    pub async fn campaigns(&self) -> Result<Vec<Campaign>, VendError> {
        let rows = sqlx::query("SELECT * FROM campaigns ORDER BY id DESC")
            .fetch_all(self.pool())
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut c = campaign_from_row(row)?;
            c.items = self.item_counts(c.id).await?;
            out.push(c);
        }
        Ok(out)
    }

    async fn item_counts(&self, id: i64) -> Result<ItemCounts, VendError> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) FROM campaign_items WHERE campaign_id = $1 GROUP BY state",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        let mut counts = ItemCounts::default();
        for row in rows {
            let state: String = row.try_get(0)?;
            let n = u64::try_from(row.try_get::<i64, _>(1)?).unwrap_or(0);
            match state.as_str() {
                "pending" => counts.pending = n,
                "delivered" => counts.delivered = n,
                "failed" => counts.failed = n,
                "skipped" => counts.skipped = n,
                "superseded" => counts.superseded = n,
                _ => {}
            }
        }
        let exported: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM campaign_items WHERE campaign_id = $1 AND exported IS NOT NULL",
        )
        .bind(id)
        .fetch_one(self.pool())
        .await?;
        counts.exported = u64::try_from(exported).unwrap_or(0);
        Ok(counts)
    }

    /// A campaign's items without a set to deliver (failed, skipped, superseded), in PAN
    /// order after `after`, at most `limit`.
    ///
    /// # Errors
    /// Database failures.
    pub async fn campaign_problems(
        &self,
        id: i64,
        after: &str,
        limit: i64,
    ) -> Result<Vec<ItemProblem>, VendError> {
        let rows = sqlx::query(
            "SELECT pan, state, reason FROM campaign_items WHERE campaign_id = $1 AND pan > $2 \
             AND state IN ('failed', 'skipped', 'superseded') ORDER BY pan LIMIT $3",
        )
        .bind(id)
        .bind(after)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ItemProblem {
                    pan: r.try_get(0)?,
                    state: r.try_get(1)?,
                    reason: r.try_get::<Option<String>, _>(2)?.unwrap_or_default(),
                })
            })
            .collect()
    }
}

async fn insert_pans(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    id: i64,
    pans: &[&str],
) -> Result<(), VendError> {
    // Two columns a row: 2,000 parameters a statement.
    for chunk in pans.chunks(1_000) {
        let sql = format!(
            "INSERT INTO campaign_pans (campaign_id, pan) VALUES {}",
            placeholders_in(backend, chunk.len(), 2)
        );
        let mut query = sqlx::query(&sql);
        for pan in chunk {
            query = query.bind(id).bind(*pan);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_records_round_trip_as_text() {
        let k = KeyRecord {
            supply_group: "123456".parse().unwrap(),
            tariff_index: "07".parse().unwrap(),
            key_revision: "2".parse().unwrap(),
            key_type: "2".parse().unwrap(),
            base_date: "2014".parse().unwrap(),
            derivation: "04".parse().unwrap(),
        };
        assert_eq!(key_text(&k), "123456 07 2 2 2014 04");
        assert_eq!(parse_key_text(&key_text(&k)).unwrap(), k);
        assert!(parse_key_text("123456 07 2").is_err());
        assert!(parse_key_text("").is_err());
    }

    #[test]
    fn a_target_replaces_only_the_fields_it_gives() {
        let k = parse_key_text("123456 01 1 2 1993 02").unwrap();
        let t = CampaignTarget {
            key_revision: Some("2".parse().unwrap()),
            base_date: Some(BaseDate::Y2014),
            ..CampaignTarget::default()
        };
        assert_eq!(key_text(&t.apply(&k)), "123456 01 2 2 2014 02");
        assert!(t.changes_something());
        assert!(!CampaignTarget::default().changes_something());
    }

    #[test]
    fn filters_bind_only_what_is_given() {
        let s = CampaignSelection {
            key_revision: Some("1".parse().unwrap()),
            base_date: Some(BaseDate::Y1993),
            ..CampaignSelection::default()
        };
        let (sql, binds) = filter_sql(&s, 3);
        assert_eq!(
            sql,
            "m.status <> 'retired' AND m.cur_krn = $3 AND m.cur_base_date = $4"
        );
        assert_eq!(binds, ["1", "1993"]);
    }
}
