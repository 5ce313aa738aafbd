//! What a batch of tokens or key change sets reads and writes, with as few statements as the
//! batch allows: the sqlx SQLite driver runs each statement on its worker thread, so a
//! statement per token would cost more than the token.
//!
//! A batch reads each vending key's credit total once and writes it once, and records its
//! tokens as one audit entry per 65,536 records; the meters' last TIDs come from memory (see
//! [`super::tids`]).

use std::sync::Arc;

use serde_json::json;
use sqlx::{Row, SqliteConnection};
use sts_core::MeterDescription;

use super::{
    CachedKey, SecurityModule, Slot, SmError,
    tids::{PerBaseDate, TID_MAX, TOKEN_BATCH},
    writer::CreditTotals,
};
use crate::{
    KeyAttributes, KeyCheckValue, VendingKeyType,
    audit::{
        Appender, AuditHead,
        records::{KeyChangeRecord, MAX_RECORDS_PER_ENTRY, RecordsWriter, TokenRecord},
    },
    store::Script,
};

/// The vending keys a batch uses, looked up once each.
#[derive(Default)]
pub(super) struct BatchKeys {
    held: Vec<(Slot, Arc<CachedKey>)>,
}

impl BatchKeys {
    /// The key for the meter's SGC, key type and KRN, if the batch has read it.
    pub(super) fn cached(&self, meter: &MeterDescription) -> Option<Arc<CachedKey>> {
        let vkt = VendingKeyType::for_decoder_key_type(meter.key_type)?;
        let slot = (meter.supply_group.get(), vkt, meter.key_revision.get());
        self.held
            .iter()
            .find(|(s, _)| *s == slot)
            .map(|(_, key)| Arc::clone(key))
    }

    /// The key for the meter's SGC, key type and KRN.
    pub(super) async fn get(
        &mut self,
        sm: &SecurityModule,
        conn: &mut SqliteConnection,
        meter: &MeterDescription,
    ) -> Result<Arc<CachedKey>, SmError> {
        if let Some(key) = self.cached(meter) {
            return Ok(key);
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

/// The credit totals of the keys a batch issues credit with: from memory when they are known
/// at the batch's audit head, else read once each.
#[derive(Clone)]
pub(super) struct Credits {
    head: AuditHead,
    slots: Vec<(Slot, Credit)>,
}

impl Credits {
    /// The credit of a batch that began at `head`.
    pub(super) fn at(head: AuditHead) -> Self {
        Self {
            head,
            slots: Vec::new(),
        }
    }

    fn position(&self, a: &KeyAttributes) -> Option<usize> {
        let slot = super::slot(a);
        self.slots.iter().position(|(s, _)| *s == slot)
    }

    /// Reads the credit issued so far under the key, unless the batch has it: from memory
    /// when it is known at the batch's head, else from the store.
    pub(super) async fn load(
        &mut self,
        conn: &mut SqliteConnection,
        known: &CreditTotals,
        a: &KeyAttributes,
    ) -> Result<(), SmError> {
        if self.has(a) {
            return Ok(());
        }
        let slot = super::slot(a);
        let total = match known.get(self.head, slot) {
            Some(total) => total,
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
                u64::try_from(issued).unwrap_or(0)
            }
        };
        self.slots.push((slot, Credit { total, added: 0 }));
        Ok(())
    }

    /// True when the batch has read the key's credit total.
    pub(super) fn has(&self, a: &KeyAttributes) -> bool {
        self.position(a).is_some()
    }

    /// The credit issued so far under the key, if the batch has read it.
    pub(super) fn cached(&mut self, a: &KeyAttributes) -> Option<&mut Credit> {
        let at = self.position(a)?;
        Some(&mut self.slots[at].1)
    }

    /// The totals with the batch's credit: what the store holds once the batch commits.
    pub(super) fn totals(&self) -> impl Iterator<Item = (Slot, u64)> + '_ {
        self.slots.iter().map(|(slot, c)| (*slot, c.total))
    }

    pub(super) fn write_into(&self, script: &mut Script) {
        for ((sgc, key_type, krn), c) in &self.slots {
            if c.added == 0 {
                continue;
            }
            script
                .statement(
                    "UPDATE keys SET credit_issued = MIN(credit_issued + ?, 9223372036854775807) WHERE sgc = ? AND key_type = ? AND krn = ?",
                )
                .bind(i64::try_from(c.added).unwrap_or(i64::MAX))
                .bind(i64::from(*sgc))
                .bind(key_type.abbreviation())
                .bind(krn.to_string());
        }
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
    tid_max: PerBaseDate,
}

impl BatchAudit {
    /// An audit for a batch of `capacity` tokens.
    pub(super) fn tokens(sm: &SecurityModule, head: AuditHead, time: i64, capacity: usize) -> Self {
        Self::new(
            sm,
            head,
            time,
            TOKEN_BATCH,
            RecordsWriter::tokens(capacity),
            true,
        )
    }

    /// An audit for a batch of `capacity` key change sets.
    pub(super) fn key_changes(
        sm: &SecurityModule,
        head: AuditHead,
        time: i64,
        capacity: usize,
    ) -> Self {
        Self::new(
            sm,
            head,
            time,
            "token.key-change-batch",
            RecordsWriter::key_changes(capacity),
            false,
        )
    }

    fn new(
        sm: &SecurityModule,
        head: AuditHead,
        time: i64,
        action: &'static str,
        writer: RecordsWriter,
        tokens: bool,
    ) -> Self {
        Self {
            appender: Appender::at(head),
            time,
            actor: sm.actor(),
            sm: sm.id.as_str().to_owned(),
            action,
            writer,
            tokens,
            credit_units: 0,
            tid_max: PerBaseDate::default(),
        }
    }

    /// Continues the running maximum TID from the store's (see [`super::tids`]).
    pub(super) fn continue_tid_max(&mut self, max: PerBaseDate) {
        self.tid_max = max;
    }

    /// The running maximum TID, with the batch's.
    pub(super) fn tid_max(&self) -> PerBaseDate {
        self.tid_max
    }

    /// Where the next record goes: its entry's sequence number and its index there.
    fn next(&mut self) -> (u64, u32) {
        if self.writer.is_full() {
            self.close_entry(MAX_RECORDS_PER_ENTRY);
        }
        (self.appender.next_sequence(), self.writer.len() as u32)
    }

    /// Records a token; returns its entry and index there.
    pub(super) fn token(&mut self, record: &TokenRecord) -> (u64, u32) {
        let at = self.next();
        if let Some(tid) = record.tid {
            self.tid_max.raise(record.meter.base_date, tid);
        }
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

    /// Chains the records so far as an entry; the next entry has room for `capacity`.
    fn close_entry(&mut self, capacity: usize) {
        let fresh = if self.tokens {
            RecordsWriter::tokens(capacity)
        } else {
            RecordsWriter::key_changes(capacity)
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
            details[TID_MAX] = self.tid_max.to_json();
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

    /// Writes the batch's audit entries and the new head into `script`; returns that head.
    pub(super) fn finish(mut self, script: &mut Script) -> AuditHead {
        self.close_entry(0);
        let head = self.appender.head();
        self.appender.write_into(script);
        head
    }
}
