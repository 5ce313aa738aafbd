//! The connection that token and key change batches write through, and what the module
//! knows at its audit head.
//!
//! A batch's cost outside the engine is mostly round trips to the SQLite driver's worker
//! thread (measured here: 80-100 µs each, a thread wake-up both ways) and the commit's fsync.
//! So batches have a connection of their own, outside the pool (a pooled connection is pinged
//! on every release: one more round trip per batch), and a token batch makes one round trip
//! when nothing else wrote to the store since this module's last batch: the script that
//! begins the transaction (`BEGIN IMMEDIATE`), writes the batch and commits, planned on the
//! head of the last commit ([`Turn::begin_optimistic`]). Otherwise, and for key change
//! batches, it makes two: one that begins the transaction and reads the audit head under the
//! write lock ([`Turn::begin`]), one that writes and commits. The transaction is begun and
//! ended in SQL, not through the driver's transaction type, so that it can share a round
//! trip with other statements; [`Turn`] keeps track of it instead: a batch that fails rolls
//! back, and a batch whose future is dropped mid-way closes the connection (SQLite rolls back
//! an open transaction when its connection closes), so the next batch begins on a fresh one.
//! A commit script already handed to the driver's worker thread still runs as the connection
//! closes: such a batch may commit after its future is gone (its tokens recorded, none
//! returned, as for a caller that goes away just after the commit). The next batch takes the
//! write lock after it and reads the new head, since the dropped turn forgot the old one.
//!
//! Other writers (keyload imports, another process on the same store) take the write lock
//! with `BEGIN IMMEDIATE` too, and append to the audit log: what is kept in memory here (the
//! TID ledger, the credit totals, the head of the last commit) is valid only at the head it
//! was read or committed at, and is read again from the store when the head moved.

use sqlx::{Connection, Row, SqliteConnection};
use tokio::sync::MutexGuard;

use super::{SecurityModule, Slot, SmError, tids::TidLedger};
use crate::{
    StoreError,
    audit::{self, AuditHead},
    store::Script,
};

/// The batches' connection and what is known at the audit head.
#[derive(Default)]
pub(super) struct Writer {
    /// Opened by the first batch; dropped (closed) when a batch was cut short.
    conn: Option<SqliteConnection>,
    pub(super) ledger: Option<TidLedger>,
    pub(super) credits: CreditTotals,
    /// The audit head this connection's last transaction committed at: the store's, unless
    /// another writer committed since (see [`Turn::begin_optimistic`]).
    head: Option<AuditHead>,
}

/// The credit issued under each key, as the store held it at `head`.
#[derive(Default)]
pub(super) struct CreditTotals {
    head: Option<AuditHead>,
    totals: Vec<(Slot, u64)>,
}

impl CreditTotals {
    /// The total under `slot`, if known at `head`.
    pub(super) fn get(&self, head: AuditHead, slot: Slot) -> Option<u64> {
        if self.head != Some(head) {
            return None;
        }
        self.totals
            .iter()
            .find(|(s, _)| *s == slot)
            .map(|(_, total)| *total)
    }

    /// Keeps the totals a batch read or wrote, committed at `head`; forgets the rest when
    /// the head moved since they were known (`before` is the batch's starting head).
    pub(super) fn commit(
        &mut self,
        before: AuditHead,
        head: AuditHead,
        totals: impl IntoIterator<Item = (Slot, u64)>,
    ) {
        if self.head != Some(before) {
            self.totals.clear();
        }
        for (slot, total) in totals {
            match self.totals.iter_mut().find(|(s, _)| *s == slot) {
                Some(known) => known.1 = total,
                None => self.totals.push((slot, total)),
            }
        }
        self.head = Some(head);
    }

    /// Moves the totals to `after` when they were valid at `before`: for a transaction that
    /// issued no credit.
    pub(super) fn carry(&mut self, before: AuditHead, after: AuditHead) {
        if self.head == Some(before) {
            self.head = Some(after);
        }
    }
}

impl Writer {
    /// Closes the connection (checkpointing the WAL when it is the store's last).
    pub(super) async fn close(&mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = conn.close().await;
        }
    }
}

/// A batch's turn at the writer: at most one transaction, begun by [`Turn::begin`], or by
/// [`Turn::commit`] after [`Turn::begin_optimistic`].
pub(super) struct Turn<'a> {
    writer: MutexGuard<'a, Writer>,
    /// A transaction may be open on the connection.
    open: bool,
    /// The transaction begins in the commit script.
    optimistic: bool,
    /// An optimistic commit failed: the batch may have been planned on a stale head.
    stale: bool,
}

impl SecurityModule {
    /// Waits for the writer (batches run one at a time).
    pub(super) async fn turn(&self) -> Turn<'_> {
        Turn::new(self.writer.lock().await)
    }

    /// The writer if no batch has it now.
    pub(super) fn try_turn(&self) -> Option<Turn<'_>> {
        self.writer.try_lock().ok().map(Turn::new)
    }
}

impl<'a> Turn<'a> {
    fn new(writer: MutexGuard<'a, Writer>) -> Self {
        Self {
            writer,
            open: false,
            optimistic: false,
            stale: false,
        }
    }
}

impl Turn<'_> {
    /// Begins the transaction, taking the store's write lock now (waiting for it up to the
    /// busy timeout) rather than at the first write, and reads the audit head: one round
    /// trip. Opens the connection first when there is none.
    pub(super) async fn begin(&mut self, sm: &SecurityModule) -> Result<AuditHead, SmError> {
        if self.writer.conn.is_none() {
            let options = sm.pool.connect_options();
            self.writer.conn = Some(SqliteConnection::connect_with(&options).await?);
        }
        self.open = true;
        let rows = sqlx::query("BEGIN IMMEDIATE; SELECT value FROM meta WHERE name = ?")
            .bind(audit::HEAD)
            .fetch_all(self.conn()?)
            .await?;
        let text: Option<String> = rows.first().map(|r| r.try_get(0)).transpose()?;
        Ok(audit::decode_head(text.as_deref())?)
    }

    /// Plans the batch at the head this connection last committed at, without a round trip:
    /// the transaction then begins (`BEGIN IMMEDIATE`) in the commit script. Should another
    /// writer have committed since, the batch's first audit entry takes a sequence number
    /// that exists (`audit.sequence` is the primary key): the commit fails, nothing is
    /// written, and [`Turn::stale`] tells the caller to plan again from [`Turn::begin`].
    /// Every change to the store appends to its audit log, so none goes unnoticed; and what
    /// a stale plan refuses (a credit limit on a lower total, a key not held) the store
    /// would refuse too. None when nothing was committed through this connection yet.
    pub(super) fn begin_optimistic(&mut self) -> Option<AuditHead> {
        let head = self.writer.head.filter(|_| self.writer.conn.is_some())?;
        self.optimistic = true;
        Some(head)
    }

    /// True when an optimistic commit failed (see [`Turn::begin_optimistic`]).
    pub(super) fn stale(&self) -> bool {
        self.stale
    }

    /// The connection, inside the transaction.
    pub(super) fn conn(&mut self) -> Result<&mut SqliteConnection, SmError> {
        self.writer
            .conn
            .as_mut()
            .ok_or_else(|| StoreError::Corrupt("the batch connection is closed".into()).into())
    }

    /// The connection and what is known at the head, borrowed together.
    pub(super) fn parts(
        &mut self,
    ) -> Result<
        (
            &mut SqliteConnection,
            &mut Option<TidLedger>,
            &mut CreditTotals,
        ),
        SmError,
    > {
        let Writer {
            conn,
            ledger,
            credits,
            ..
        } = &mut *self.writer;
        let conn = conn
            .as_mut()
            .ok_or_else(|| StoreError::Corrupt("the batch connection is closed".into()))?;
        Ok((conn, ledger, credits))
    }

    /// Runs `script` and commits, leaving the store at `head`: one round trip (beginning the
    /// transaction too after [`Turn::begin_optimistic`]). On failure the transaction may
    /// still be open: [`Turn::rollback`] it.
    pub(super) async fn commit(
        &mut self,
        mut script: Script,
        head: AuditHead,
    ) -> Result<(), SmError> {
        if self.optimistic {
            script.prepend("BEGIN IMMEDIATE");
            self.open = true;
        }
        script.statement("COMMIT");
        let done = script.execute(self.conn()?).await;
        if done.is_err() && self.optimistic {
            self.stale = true;
        }
        done?;
        self.open = false;
        self.optimistic = false;
        self.writer.head = Some(head);
        Ok(())
    }

    /// Ends a transaction that did not commit, and undoes the batch's TIDs in the ledger.
    /// When even the rollback fails, the connection is closed (which rolls back).
    pub(super) async fn rollback(&mut self) {
        if let Some(ledger) = &mut self.writer.ledger {
            ledger.rollback();
        }
        // The next batch reads the head.
        self.writer.head = None;
        self.optimistic = false;
        if !self.open {
            return;
        }
        self.open = false;
        let rolled_back = match self.writer.conn.as_mut() {
            Some(conn) => sqlx::query("ROLLBACK").execute(conn).await.is_ok(),
            None => true,
        };
        if !rolled_back {
            self.writer.conn = None;
        }
    }
}

impl Drop for Turn<'_> {
    /// A batch cut short (its future dropped) leaves its transaction open: closing the
    /// connection rolls it back, unless its commit script had reached the driver (see the
    /// module documentation). Its TIDs are undone in the ledger either way, and the head is
    /// forgotten, so that the next batch reads what the store holds.
    fn drop(&mut self) {
        if let Some(ledger) = &mut self.writer.ledger {
            ledger.rollback();
        }
        if self.open {
            self.writer.conn = None;
            self.writer.head = None;
        }
    }
}
