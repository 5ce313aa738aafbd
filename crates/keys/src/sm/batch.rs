//! What a batch of tokens or key change sets reads and writes, with as few statements as the
//! batch allows: the sqlx SQLite driver runs each statement on its worker thread, so a
//! statement per token would cost more than the token.
//!
//! A batch reads the last TIDs of all its meters with one statement per base date and writes
//! them back with one multi-row upsert (the PANs travel as one JSON array: one bound
//! parameter, whatever the batch size); it reads each vending key's credit total once and
//! writes it once; and it records its tokens as one audit entry per
//! [`MAX_RECORDS_PER_ENTRY`](crate::audit::records) records.

use std::{collections::HashMap, fmt::Write as _, sync::Arc};

use serde_json::json;
use sqlx::{Row, SqliteConnection};
use sts_core::{BaseDate, MeterDescription, MeterPan, TokenIdentifier};

use super::{CachedKey, SecurityModule, Slot, SmError};
use crate::{
    KeyAttributes, KeyCheckValue, VendingKeyType,
    audit::{
        Appender,
        records::{KeyChangeRecord, RecordsWriter, TokenRecord},
    },
};

/// The vending keys a batch uses, looked up once each.
#[derive(Default)]
pub(super) struct BatchKeys {
    held: Vec<(Slot, Arc<CachedKey>)>,
}

impl BatchKeys {
    /// The key for the meter's SGC, key type and KRN.
    pub(super) async fn get(
        &mut self,
        sm: &SecurityModule,
        conn: &mut SqliteConnection,
        meter: &MeterDescription,
    ) -> Result<Arc<CachedKey>, SmError> {
        if let Some(vkt) = VendingKeyType::for_decoder_key_type(meter.key_type) {
            let slot = (meter.supply_group.get(), vkt, meter.key_revision.get());
            if let Some((_, key)) = self.held.iter().find(|(s, _)| *s == slot) {
                return Ok(Arc::clone(key));
            }
        }
        let key = sm
            .key_for(conn, meter.supply_group, meter.key_type, meter.key_revision)
            .await?;
        self.held
            .push((super::slot(&key.attributes), Arc::clone(&key)));
        Ok(key)
    }
}

/// Credit under one key: the total issued so far (store and batch) and the batch's part.
#[derive(Clone, Copy)]
pub(super) struct Credit {
    pub(super) total: u64,
    pub(super) added: u64,
}

/// The credit totals of the keys a batch issues credit with, read once each.
#[derive(Default)]
pub(super) struct Credits {
    slots: Vec<(Slot, Credit)>,
}

impl Credits {
    /// The credit issued so far under the key.
    pub(super) async fn get(
        &mut self,
        conn: &mut SqliteConnection,
        a: &KeyAttributes,
    ) -> Result<&mut Credit, SmError> {
        let slot = super::slot(a);
        let at = match self.slots.iter().position(|(s, _)| *s == slot) {
            Some(at) => at,
            None => {
                let issued: i64 = sqlx::query(
                    "SELECT credit_issued FROM keys WHERE sgc = ? AND key_type = ? AND krn = ?",
                )
                .bind(i64::from(a.supply_group.get()))
                .bind(a.key_type.abbreviation())
                .bind(a.key_revision.to_string())
                .fetch_one(&mut *conn)
                .await?
                .get(0);
                self.slots.push((
                    slot,
                    Credit {
                        total: u64::try_from(issued).unwrap_or(0),
                        added: 0,
                    },
                ));
                self.slots.len() - 1
            }
        };
        Ok(&mut self.slots[at].1)
    }

    async fn flush(&self, conn: &mut SqliteConnection) -> Result<(), SmError> {
        for ((sgc, key_type, krn), c) in &self.slots {
            if c.added == 0 {
                continue;
            }
            sqlx::query(
                "UPDATE keys SET credit_issued = MIN(credit_issued + ?, 9223372036854775807) WHERE sgc = ? AND key_type = ? AND krn = ?",
            )
            .bind(i64::try_from(c.added).unwrap_or(i64::MAX))
            .bind(i64::from(*sgc))
            .bind(key_type.abbreviation())
            .bind(krn.to_string())
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

/// A meter's TIDs in a batch: the last one issued (by the store before, or in the batch).
#[derive(Clone, Copy)]
pub(super) struct MeterTid {
    pub(super) last: Option<TokenIdentifier>,
    issued: bool,
}

/// The last TIDs of a batch's meters, per PAN and base date.
pub(super) struct Tids {
    meters: HashMap<(MeterPan, BaseDate), MeterTid>,
}

impl Tids {
    /// Reads the last TIDs of `meters` (duplicates allowed): one statement per base date.
    pub(super) async fn load(
        conn: &mut SqliteConnection,
        meters: impl Iterator<Item = (MeterPan, BaseDate)>,
    ) -> Result<Self, SmError> {
        let mut map = HashMap::new();
        for key in meters {
            map.entry(key).or_insert(MeterTid {
                last: None,
                issued: false,
            });
        }
        let mut by_base: Vec<(BaseDate, String)> = Vec::new();
        for (pan, base) in map.keys() {
            let at = match by_base.iter().position(|(b, _)| b == base) {
                Some(at) => at,
                None => {
                    by_base.push((*base, String::with_capacity(map.len() * 21 + 2)));
                    by_base.len() - 1
                }
            };
            let list = &mut by_base[at].1;
            list.push(if list.is_empty() { '[' } else { ',' });
            list.push('"');
            list.push_str(pan.as_str());
            list.push('"');
        }
        for (base, mut list) in by_base {
            list.push(']');
            let rows = sqlx::query(
                "SELECT pan, last_tid FROM meter_tids \
                 WHERE base_date = ? AND pan IN (SELECT value FROM json_each(?))",
            )
            .bind(base.to_string())
            .bind(list)
            .fetch_all(&mut *conn)
            .await?;
            for row in rows {
                let pan: MeterPan = row
                    .get::<&str, _>(0)
                    .parse()
                    .map_err(|_| crate::StoreError::Corrupt("meter_tids pan".into()))?;
                let tid = u32::try_from(row.get::<i64, _>(1))
                    .ok()
                    .and_then(|v| TokenIdentifier::from_raw(v).ok())
                    .ok_or_else(|| crate::StoreError::Corrupt("meter_tids last_tid".into()))?;
                if let Some(m) = map.get_mut(&(pan, base)) {
                    m.last = Some(tid);
                }
            }
        }
        Ok(Self { meters: map })
    }

    /// The meter's last TID (`None` when it has none, or was not loaded).
    pub(super) fn last(&self, meter: &MeterDescription) -> Option<TokenIdentifier> {
        self.meters
            .get(&(meter.pan, meter.base_date))
            .and_then(|m| m.last)
    }

    /// Records `tid` as the meter's last.
    pub(super) fn set(&mut self, meter: &MeterDescription, tid: TokenIdentifier) {
        self.meters.insert(
            (meter.pan, meter.base_date),
            MeterTid {
                last: Some(tid),
                issued: true,
            },
        );
    }

    /// Writes the TIDs the batch issued: one multi-row upsert.
    async fn flush(&self, conn: &mut SqliteConnection) -> Result<(), SmError> {
        let mut rows = String::new();
        for ((pan, base), m) in &self.meters {
            if let (true, Some(tid)) = (m.issued, m.last) {
                rows.push(if rows.is_empty() { '[' } else { ',' });
                // PANs are digits, base dates are years: nothing to escape.
                let _ = write!(rows, "[\"{pan}\",\"{base}\",{}]", tid.get());
            }
        }
        if rows.is_empty() {
            return Ok(());
        }
        rows.push(']');
        sqlx::query(
            "INSERT INTO meter_tids (pan, base_date, last_tid) \
             SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(?) WHERE true \
             ON CONFLICT (pan, base_date) DO UPDATE SET last_tid = excluded.last_tid",
        )
        .bind(rows)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

/// What a batch records in the audit log: one entry per [`RecordsWriter`] full of records.
pub(super) struct BatchAudit {
    appender: Appender,
    time: i64,
    actor: String,
    sm: String,
    action: &'static str,
    writer: RecordsWriter,
    tokens: bool,
    credit_units: u64,
}

impl BatchAudit {
    /// An audit for a batch of `capacity` tokens.
    pub(super) async fn tokens(
        sm: &SecurityModule,
        conn: &mut SqliteConnection,
        time: i64,
        capacity: usize,
    ) -> Result<Self, SmError> {
        Self::new(
            sm,
            conn,
            time,
            "token.issue-batch",
            RecordsWriter::tokens(capacity),
            true,
        )
        .await
    }

    /// An audit for a batch of `capacity` key change sets.
    pub(super) async fn key_changes(
        sm: &SecurityModule,
        conn: &mut SqliteConnection,
        time: i64,
        capacity: usize,
    ) -> Result<Self, SmError> {
        Self::new(
            sm,
            conn,
            time,
            "token.key-change-batch",
            RecordsWriter::key_changes(capacity),
            false,
        )
        .await
    }

    async fn new(
        sm: &SecurityModule,
        conn: &mut SqliteConnection,
        time: i64,
        action: &'static str,
        writer: RecordsWriter,
        tokens: bool,
    ) -> Result<Self, SmError> {
        Ok(Self {
            appender: Appender::begin(conn).await?,
            time,
            actor: sm.actor(),
            sm: sm.id.as_str().to_owned(),
            action,
            writer,
            tokens,
            credit_units: 0,
        })
    }

    /// Where the next record goes: its entry's sequence number and its index there.
    fn next(&mut self) -> (u64, u32) {
        if self.writer.is_full() {
            self.close_entry();
        }
        (self.appender.next_sequence(), self.writer.len() as u32)
    }

    /// Records a token; returns its entry and index there.
    pub(super) fn token(&mut self, record: &TokenRecord) -> (u64, u32) {
        let at = self.next();
        self.credit_units = self
            .credit_units
            .saturating_add(record.credit_units.unwrap_or(0));
        self.writer.push_token(record);
        at
    }

    /// Records a key change set; returns its entry and index there.
    pub(super) fn key_change(&mut self, record: &KeyChangeRecord) -> (u64, u32) {
        let at = self.next();
        self.writer.push_key_change(record);
        at
    }

    fn close_entry(&mut self) {
        let fresh = if self.tokens {
            RecordsWriter::tokens(self.writer.len())
        } else {
            RecordsWriter::key_changes(self.writer.len())
        };
        let writer = std::mem::replace(&mut self.writer, fresh);
        if writer.is_empty() {
            return;
        }
        let kcv: Vec<String> = writer
            .check_values()
            .into_iter()
            .map(KeyCheckValue::to_hex)
            .collect();
        let mut details = json!({"sm": self.sm, "records": writer.len(), "kcv": kcv});
        if self.tokens {
            details["credit_units"] = json!(self.credit_units);
        }
        self.credit_units = 0;
        self.appender.push_with_records(
            self.time,
            &self.actor,
            self.action,
            details.to_string(),
            writer.finish(),
        );
    }

    /// Writes the batch: credit totals, last TIDs, audit entries and head.
    pub(super) async fn flush(
        mut self,
        conn: &mut SqliteConnection,
        credits: Option<&Credits>,
        tids: Option<&Tids>,
    ) -> Result<(), SmError> {
        if let Some(credits) = credits {
            credits.flush(conn).await?;
        }
        if let Some(tids) = tids {
            tids.flush(conn).await?;
        }
        self.close_entry();
        self.appender.flush(conn).await?;
        Ok(())
    }
}
