//! Every meter's last TID, kept in memory and recovered from the audit log.
//!
//! A token's TID must come after every TID this module issued before to the meter (per base
//! date). The audit log records each token with its meter and TID, in the same transaction
//! that issues it, so it *is* the durable record of the TIDs: no table of last TIDs is written
//! per token, and none is read per token (measured: a SELECT and a write of such a table cost
//! more per meter than issuing the token, about 1-2 µs against 0.6).
//!
//! The ledger keeps, per base date, the last TID of every meter whose last TID is at least a
//! threshold `complete_from`, the TID of the current minute when it was last brought up to
//! date. Every other meter's last TID is below that and so below the TID of any later minute:
//! it does not matter, the meter gets the TID of the current minute. Entries are dropped as the
//! minutes pass, so the ledger holds the meters of the current minute and those with TIDs
//! issued ahead of the clock (several tokens in one minute).
//!
//! The ledger is valid for the audit head it was built or last committed at. A batch that
//! finds another head (the module was just opened, or another process wrote to the store), or
//! a clock that went back below the threshold, rebuilds it: newest token batch entries first,
//! until an entry whose running maximum TID (`tid_max` in its details: the highest TID this
//! store issued up to that entry, per base date) is below the threshold, so that no older
//! entry can hold a TID that matters. Stores written before batch entries kept their last TIDs
//! in the `meter_tids` table, which is read then too (and no longer written).

use std::collections::{HashMap, hash_map::Entry};

use sqlx::SqliteConnection;
use sts_core::{BaseDate, MeterDescription, TokenIdentifier, UtcMinute};

use super::SmError;
use crate::{
    StoreError,
    audit::{AuditHead, BatchRecords, records::pan_number},
};

/// A meter as TIDs count: its PAN (as a number, below 2^60) and base date (in the top bits),
/// one word to hash and compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct MeterKey(u64);

impl MeterKey {
    pub(super) fn of(meter: &MeterDescription) -> Self {
        Self::new(pan_number(&meter.pan), meter.base_date)
    }

    fn new(pan: u64, base_date: BaseDate) -> Self {
        Self(pan | (base_index(base_date) as u64) << 60)
    }

    fn base_date(self) -> BaseDate {
        BaseDate::ALL[(self.0 >> 60) as usize % 3]
    }
}

fn base_index(base_date: BaseDate) -> usize {
    match base_date {
        BaseDate::Y1993 => 0,
        BaseDate::Y2014 => 1,
        BaseDate::Y2035 => 2,
    }
}

/// A TID per base date.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PerBaseDate([Option<TokenIdentifier>; 3]);

impl PerBaseDate {
    pub(crate) fn get(&self, base_date: BaseDate) -> Option<TokenIdentifier> {
        self.0[base_index(base_date)]
    }

    fn set(&mut self, base_date: BaseDate, tid: Option<TokenIdentifier>) {
        self.0[base_index(base_date)] = tid;
    }

    /// Raises the TID of `base_date` to `tid` if lower.
    pub(crate) fn raise(&mut self, base_date: BaseDate, tid: TokenIdentifier) {
        let slot = &mut self.0[base_index(base_date)];
        *slot = (*slot).max(Some(tid));
    }

    fn raise_all(&mut self, other: &Self) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a = (*a).max(b);
        }
    }

    /// `{"2014": 5871715}`: the base dates that have a TID.
    pub(crate) fn to_json(self) -> serde_json::Value {
        BaseDate::ALL
            .iter()
            .filter_map(|&b| Some((b.to_string(), self.get(b)?.get().into())))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }

    fn from_json(value: &serde_json::Value) -> Option<Self> {
        let mut out = Self::default();
        for (base, tid) in value.as_object()? {
            let base: BaseDate = base.parse().ok()?;
            let tid = TokenIdentifier::from_raw(u32::try_from(tid.as_u64()?).ok()?).ok()?;
            out.set(base, Some(tid));
        }
        Some(out)
    }
}

/// The TIDs of the current minute under each base date (none where the minute has no TID).
fn now_tids(now: UtcMinute) -> PerBaseDate {
    let mut out = PerBaseDate::default();
    for b in BaseDate::ALL {
        out.set(b, TokenIdentifier::issue(now, b).ok());
    }
    out
}

/// The last TIDs that still matter, valid at one audit head.
#[derive(Debug)]
pub(super) struct TidLedger {
    head: AuditHead,
    complete_from: PerBaseDate,
    last: HashMap<MeterKey, TokenIdentifier>,
    max: PerBaseDate,
    /// The batch in progress: what its TIDs replaced, undone unless it commits.
    undo: Vec<(MeterKey, Option<TokenIdentifier>)>,
}

/// The audit action of a token batch entry.
pub(super) const TOKEN_BATCH: &str = "token.issue-batch";
/// The details key of a token batch entry's running maximum TID.
pub(super) const TID_MAX: &str = "tid_max";

impl TidLedger {
    /// Assigns the meter's next TID: `next` gets its last TID (if it may still matter, the
    /// batch's own included) and returns the new one, which becomes the last. Undone unless
    /// the batch commits.
    pub(super) fn assign(
        &mut self,
        key: MeterKey,
        next: impl FnOnce(Option<TokenIdentifier>) -> Result<TokenIdentifier, SmError>,
    ) -> Result<TokenIdentifier, SmError> {
        // One probe of the table per token: it is large and cold, the probe is a cache miss.
        let (tid, replaced) = match self.last.entry(key) {
            Entry::Occupied(mut e) => {
                let old = *e.get();
                let tid = next(Some(old))?;
                e.insert(tid);
                (tid, Some(old))
            }
            Entry::Vacant(e) => (*e.insert(next(None)?), None),
        };
        self.undo.push((key, replaced));
        Ok(tid)
    }

    /// Makes room in the undo log for a batch of `tokens`.
    pub(super) fn reserve(&mut self, tokens: usize) {
        self.undo.reserve(tokens);
    }

    /// Where the TIDs assigned from now on begin, for [`TidLedger::rollback_to`].
    pub(super) fn mark(&self) -> usize {
        self.undo.len()
    }

    /// Undoes the TIDs of a batch that did not commit.
    pub(super) fn rollback(&mut self) {
        self.rollback_to(0);
    }

    /// Undoes the TIDs assigned since `mark` (a batch of a group that was refused).
    pub(super) fn rollback_to(&mut self, mark: usize) {
        for (key, replaced) in self.undo.drain(mark.min(self.undo.len())..).rev() {
            match replaced {
                Some(tid) => {
                    self.last.insert(key, tid);
                }
                None => {
                    self.last.remove(&key);
                }
            }
        }
    }

    /// The highest TID this store has issued, per base date.
    pub(super) fn max(&self) -> PerBaseDate {
        self.max
    }

    /// A ledger valid at `head` for a batch at `now`: this one when it is, else rebuilt from
    /// the store.
    pub(super) async fn ready(
        ledger: Option<Self>,
        conn: &mut SqliteConnection,
        head: AuditHead,
        now: UtcMinute,
    ) -> Result<Self, SmError> {
        let now = now_tids(now);
        let mut ledger = match ledger {
            Some(l) if l.head == head && !l.behind(&now) => l,
            _ => Self::build(conn, head, now).await?,
        };
        ledger.advance(&now);
        Ok(ledger)
    }

    /// True when the ledger cannot answer for `now`: the clock went back below its threshold,
    /// or a base date has TIDs now and had none then.
    fn behind(&self, now: &PerBaseDate) -> bool {
        BaseDate::ALL
            .iter()
            .any(|&b| match (self.complete_from.get(b), now.get(b)) {
                (Some(from), Some(now)) => now < from,
                (None, Some(_)) => true,
                _ => false,
            })
    }

    /// Drops what no longer matters: TIDs below the current minute's.
    fn advance(&mut self, now: &PerBaseDate) {
        let mut moved = false;
        for b in BaseDate::ALL {
            if let (Some(from), Some(now)) = (self.complete_from.get(b), now.get(b))
                && now > from
            {
                self.complete_from.set(b, Some(now));
                moved = true;
            }
        }
        if moved {
            let from = self.complete_from;
            self.last
                .retain(|k, tid| from.get(k.base_date()).is_none_or(|f| *tid >= f));
        }
    }

    /// Keeps a committed batch's TIDs; records its running maximum and the new head.
    pub(super) fn commit(&mut self, max: PerBaseDate, head: AuditHead) {
        self.undo.clear();
        self.max.raise_all(&max);
        self.head = head;
    }

    /// Moves the ledger to `after` when it was valid at `before`: for a transaction that
    /// issued no TID (a key change batch).
    pub(super) fn carry(&mut self, before: AuditHead, after: AuditHead) {
        if self.head == before {
            self.head = after;
        }
    }

    async fn build(
        conn: &mut SqliteConnection,
        head: AuditHead,
        now: PerBaseDate,
    ) -> Result<Self, SmError> {
        let mut ledger = Self {
            head,
            complete_from: now,
            last: HashMap::new(),
            max: PerBaseDate::default(),
            undo: Vec::new(),
        };
        ledger.read_legacy_table(conn).await?;
        let mut before = i64::MAX;
        let mut newest = true;
        'entries: loop {
            let page: Vec<(i64, String, Option<Vec<u8>>)> = sqlx::query_as(
                "SELECT sequence, details, records FROM audit \
                 WHERE action = ? AND sequence < ? ORDER BY sequence DESC LIMIT 16",
            )
            .bind(TOKEN_BATCH)
            .bind(before)
            .fetch_all(&mut *conn)
            .await?;
            let Some(last) = page.last() else {
                break;
            };
            before = last.0;
            for (sequence, details, records) in page {
                let corrupt = || StoreError::Corrupt(format!("audit entry {sequence}"));
                let details: serde_json::Value =
                    serde_json::from_str(&details).map_err(|_| corrupt())?;
                let max = details
                    .get(TID_MAX)
                    .and_then(PerBaseDate::from_json)
                    .ok_or_else(corrupt)?;
                if newest {
                    ledger.max.raise_all(&max);
                    newest = false;
                }
                // The running maximum only grows: when it is below the threshold everywhere,
                // so is every TID of this entry and of every older one.
                let matters = BaseDate::ALL.iter().any(|&b| {
                    matches!((max.get(b), ledger.complete_from.get(b)), (Some(m), Some(f)) if m >= f)
                });
                if !matters {
                    break 'entries;
                }
                let records = records.ok_or_else(corrupt)?;
                let BatchRecords::Tokens(tokens) =
                    BatchRecords::decode(&records).map_err(|_| corrupt())?
                else {
                    return Err(corrupt().into());
                };
                for t in tokens {
                    if let Some(tid) = t.tid {
                        ledger.remember(MeterKey::of(&t.meter), tid);
                    }
                }
            }
        }
        Ok(ledger)
    }

    /// Keeps `tid` as the meter's last if it matters and is the highest seen.
    fn remember(&mut self, key: MeterKey, tid: TokenIdentifier) {
        if self
            .complete_from
            .get(key.base_date())
            .is_some_and(|from| tid >= from)
        {
            let last = self.last.entry(key).or_insert(tid);
            *last = (*last).max(tid);
        }
    }

    /// The last TIDs written by stores before batch entries (`meter_tids`, no longer
    /// written): the maximum per base date, and those that still matter. One row each.
    async fn read_legacy_table(&mut self, conn: &mut SqliteConnection) -> Result<(), SmError> {
        let corrupt = || StoreError::Corrupt("meter_tids".into());
        for b in BaseDate::ALL {
            let from = self
                .complete_from
                .get(b)
                .map_or(i64::MAX, |t| i64::from(t.get()));
            let (max, matters): (Option<i64>, Option<String>) = sqlx::query_as(
                "SELECT max(last_tid), group_concat(CASE WHEN last_tid >= ?1 THEN pan || ':' || last_tid END) \
                 FROM meter_tids WHERE base_date = ?2",
            )
            .bind(from)
            .bind(b.to_string())
            .fetch_one(&mut *conn)
            .await?;
            let tid = |v: i64| {
                u32::try_from(v)
                    .ok()
                    .and_then(|v| TokenIdentifier::from_raw(v).ok())
                    .ok_or_else(corrupt)
            };
            if let Some(max) = max {
                self.max.raise(b, tid(max)?);
            }
            for item in matters.iter().flat_map(|m| m.split(',')) {
                let (pan, last) = item.split_once(':').ok_or_else(corrupt)?;
                let pan: sts_core::MeterPan = pan.parse().map_err(|_| corrupt())?;
                let last: i64 = last.parse().map_err(|_| corrupt())?;
                self.remember(MeterKey::new(pan_number(&pan), b), tid(last)?);
            }
        }
        Ok(())
    }
}
