//! Group commit for credit vends: concurrent credit vends share one security module
//! transaction ([`SecurityModule::issue_many`](sts_keys::SecurityModule::issue_many)) and one
//! vend database transaction.
//!
//! One task per [`AppState`] takes every credit vend waiting when it is free (up to
//! [`MAX_BATCH`]) - while a batch commits, the next one gathers, so the batch grows with the
//! load and a lone vend waits for nobody. Each vend of a batch is answered only after the
//! batch's vend transaction committed. The guarantees of the one-by-one path hold:
//!
//! - a request ID already recorded is a reprint (or `409` when the content differs), and a
//!   request ID twice in one batch is issued once;
//! - the meters' rows are locked in PAN order, and the security module gives several tokens
//!   for one meter in one batch successive TIDs, which are checked against the recorded one;
//! - a refusal (meter unknown or not active, credit limit, key expiry ...) answers that vend
//!   only: when the security module refuses the batch, its vends are issued one by one;
//! - a vend with a key change pending, or any vend of a batch whose transaction fails, goes
//!   back to the one-by-one path (with its retries), as if it had never been batched.

use std::collections::HashMap;

use serde_json::{Map, Value};
use sts_core::MeterPan;
use sts_keys::{IssuedToken, SmError, sm::describe};
use tokio::sync::{mpsc, oneshot};

use super::{
    IssuedRow, Record, Spec, VendKind, VendOutcome, credit_amount, find_many, parse_spec,
    record_many, reprint,
};
use crate::{
    AppState, VendError,
    db::now_seconds,
    meters::{self, Meter, MeterStatus},
    state::WeakState,
};

/// The most vends in one batch.
pub(crate) const MAX_BATCH: usize = 256;

/// A credit vend waiting for its batch.
pub(crate) struct Job {
    pub(crate) key_id: String,
    pub(crate) request_id: String,
    pub(crate) pan: MeterPan,
    /// The request's `token` object: resolved in the batch, with the meter's utility.
    pub(crate) token: Map<String, Value>,
    pub(crate) reply: oneshot::Sender<Answer>,
}

/// What the batch did with a vend.
pub(crate) enum Answer {
    /// Answered: issued and committed, reprinted, or refused.
    Done(Result<VendOutcome, VendError>),
    /// Not handled: vend it on the one-by-one path.
    Alone,
}

/// The queue of the batching task.
#[derive(Debug)]
pub(crate) struct Batcher(mpsc::UnboundedSender<Job>);

impl Batcher {
    /// Starts the batching task of `state` on the current runtime. The task ends when the
    /// state is dropped.
    pub(crate) fn start(state: WeakState) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run(state, receiver));
        Self(sender)
    }

    /// Queues `job`; gives it back when the task is gone (its runtime stopped).
    pub(crate) fn send(&self, job: Job) -> Result<(), Job> {
        self.0.send(job).map_err(|e| e.0)
    }
}

async fn run(state: WeakState, mut receiver: mpsc::UnboundedReceiver<Job>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let batch = std::mem::take(&mut jobs);
        match state.upgrade() {
            Some(state) => state.vend_batch(batch).await,
            None => {
                for job in batch {
                    let _ = job.reply.send(Answer::Alone);
                }
                return;
            }
        }
    }
}

/// A vend's place in a batch while the batch runs.
enum Slot {
    /// Not decided yet.
    Open,
    /// Answered.
    Done(Result<VendOutcome, VendError>),
    /// Back to the one-by-one path.
    Alone,
    /// The same request ID as an earlier job of the batch.
    SameAs(usize),
}

impl AppState {
    async fn vend_batch(&self, jobs: Vec<Job>) {
        let (slots, canonical) = match self.vend_batch_once(&jobs).await {
            Ok(answers) => answers,
            Err(e) => {
                tracing::warn!(error = %e, vends = jobs.len(), "batched vend failed: vending them one by one");
                (
                    jobs.iter().map(|_| Slot::Alone).collect(),
                    vec![None; jobs.len()],
                )
            }
        };
        // Resolve repeats of a request ID inside the batch from the first one's answer.
        let mut answers: Vec<Option<Answer>> = Vec::with_capacity(jobs.len());
        let mut slots: Vec<Option<Slot>> = slots.into_iter().map(Some).collect();
        for i in 0..jobs.len() {
            let answer = match slots[i].take() {
                Some(Slot::Done(result)) => {
                    if let Ok(outcome) = &result {
                        // Keep the first answer for its repeats.
                        slots[i] = Some(Slot::Done(Ok(outcome.clone())));
                    }
                    Answer::Done(result)
                }
                Some(Slot::SameAs(first)) => match &slots[first] {
                    Some(Slot::Done(Ok(outcome))) => {
                        Answer::Done(if canonical[first] == canonical[i] {
                            let mut body = outcome.body.clone();
                            body["reprint"] = Value::Bool(true);
                            Ok(VendOutcome {
                                body,
                                reprint: true,
                            })
                        } else {
                            Err(VendError::RequestIdReused(jobs[i].request_id.clone()))
                        })
                    }
                    _ => Answer::Alone,
                },
                Some(Slot::Open | Slot::Alone) | None => Answer::Alone,
            };
            answers.push(Some(answer));
        }
        for (job, answer) in jobs.into_iter().zip(answers) {
            let _ = job.reply.send(answer.unwrap_or(Answer::Alone));
        }
    }

    /// Runs one batch in one vend transaction; the slots are the answers once it committed,
    /// with each job's canonical request (when its meter was found).
    async fn vend_batch_once(
        &self,
        jobs: &[Job],
    ) -> Result<(Vec<Slot>, Vec<Option<String>>), VendError> {
        let db = self.db();
        let sm = self.security_module();
        let _turn = db.write_turn().await;
        let mut tx = db.pool().begin().await?;
        let mut slots: Vec<Slot> = jobs.iter().map(|_| Slot::Open).collect();
        // Lock the meters in PAN order (no deadlock with another batch or process); a
        // stable sort keeps the arrival order of one meter's vends.
        let mut order: Vec<usize> = (0..jobs.len()).collect();
        order.sort_by(|&a, &b| jobs[a].pan.as_str().cmp(jobs[b].pan.as_str()));
        // Lock and read each meter once, in PAN order, then the stored results of the
        // batch's request IDs: a few statements for the whole batch.
        let mut distinct: Vec<&str> = order.iter().map(|&i| jobs[i].pan.as_str()).collect();
        distinct.dedup();
        let mut meters: HashMap<String, Meter> =
            meters::lock_many(&mut tx, db.backend(), &distinct)
                .await?
                .into_iter()
                .map(|m| (m.pan.as_str().to_owned(), m))
                .collect();
        let mut first: HashMap<&str, usize> = HashMap::new();
        for &i in &order {
            first.entry(jobs[i].request_id.as_str()).or_insert(i);
        }
        let ids: Vec<&str> = first.keys().copied().collect();
        let stored = find_many(&mut tx, &ids).await?;
        let mut to_issue = Vec::new();
        let mut canonical: Vec<Option<String>> = vec![None; jobs.len()];
        for &i in &order {
            let job = &jobs[i];
            // What the one-by-one path checks first: the meter, then the request's content
            // with the meter's utility as the default service.
            let Some(meter) = meters.get(job.pan.as_str()) else {
                slots[i] = Slot::Done(Err(VendError::NotFound(format!("meter {}", job.pan))));
                continue;
            };
            let request = match parse_spec(&job.token, Some(meter.utility)) {
                Ok(spec @ Spec::Token(VendKind::Credit, request)) => {
                    canonical[i] = Some(spec.canonical(&job.pan).to_string());
                    request
                }
                Ok(_) => {
                    slots[i] = Slot::Alone;
                    continue;
                }
                Err(e) => {
                    slots[i] = Slot::Done(Err(e));
                    continue;
                }
            };
            let earlier = first.get(job.request_id.as_str()).copied().unwrap_or(i);
            if earlier != i {
                slots[i] = Slot::SameAs(earlier);
                continue;
            }
            let this = canonical[i].as_deref().unwrap_or_default();
            if let Some(stored) = stored.get(&job.request_id) {
                slots[i] = Slot::Done(reprint(&job.request_id, this, stored.clone()).map(|body| {
                    VendOutcome {
                        body,
                        reprint: true,
                    }
                }));
                continue;
            }
            slots[i] = if meter.status != MeterStatus::Active {
                Slot::Done(Err(VendError::MeterNotActive {
                    pan: job.pan.to_string(),
                    status: meter.status.to_string(),
                }))
            } else if meter.key_change_pending() {
                Slot::Alone
            } else {
                to_issue.push((i, meter.description(&meter.current), request));
                Slot::Open
            };
        }
        if to_issue.is_empty() {
            tx.commit().await?;
            return Ok((slots, canonical));
        }
        let requests: Vec<_> = to_issue
            .iter()
            .map(|(_, description, request)| (*description, *request))
            .collect();
        let issued: Vec<Result<IssuedToken, SmError>> = match sm.issue_many(&requests).await {
            Ok(tokens) => tokens.into_iter().map(Ok).collect(),
            Err(e) => {
                // All or nothing: find the refused ones by issuing one by one.
                tracing::debug!(error = %e, vends = requests.len(), "batch refused: issuing one by one");
                let mut each = Vec::with_capacity(requests.len());
                for (description, request) in &requests {
                    each.push(sm.issue(description, *request).await);
                }
                each
            }
        };
        let now = now_seconds();
        let sm_id = sm.id().as_str().to_owned();
        let mut stored_meters = Vec::new();
        // (job, its token, TID, check value, amount, base date of the TID)
        let mut done = Vec::with_capacity(to_issue.len());
        for ((i, description, request), issued) in to_issue.iter().zip(issued) {
            let job = &jobs[*i];
            let issued = match issued {
                Ok(issued) => issued,
                Err(e) => {
                    slots[*i] = Slot::Done(Err(e.into()));
                    continue;
                }
            };
            let key = job.pan.as_str();
            let Some(meter) = meters.get_mut(key) else {
                slots[*i] = Slot::Done(Err(VendError::Internal(format!(
                    "meter {key} of a batched vend was not loaded"
                ))));
                continue;
            };
            let mut tid_issued = None;
            if let Some(tid) = issued.token.tid() {
                let base = description.base_date;
                if let Some((last_base, last)) = meter.last_tid
                    && last_base == base
                    && tid.get() <= last.get()
                {
                    tracing::error!(
                        pan = key,
                        tid = tid.get(),
                        last = last.get(),
                        "security module TID is not after the recorded one"
                    );
                    slots[*i] = Slot::Done(Err(VendError::TidConflict(key.to_owned())));
                    continue;
                }
                meter.last_tid = Some((base, tid));
                tid_issued = Some(tid.get());
            }
            let row = [IssuedRow {
                number: issued.number,
                class: issued.token.class().get(),
                subclass: issued.token.subclass().get(),
                tid: tid_issued,
                description: describe(
                    &issued.token,
                    issued.token.tid().map(|t| t.to_time(description.base_date)),
                ),
            }];
            if !stored_meters.contains(&key) {
                stored_meters.push(key);
            }
            done.push((
                *i,
                *request,
                row,
                tid_issued,
                issued.check_value,
                credit_amount(&issued.token),
                meter.current.base_date.to_string(),
            ));
        }
        let records: Vec<Record<'_>> = done
            .iter()
            .map(|(i, request, rows, tid, check_value, amount, tid_base)| {
                let job = &jobs[*i];
                Record {
                    key_id: &job.key_id,
                    request_id: &job.request_id,
                    pan: &job.pan,
                    spec: Spec::Token(VendKind::Credit, *request),
                    canonical: canonical[*i].as_deref().unwrap_or_default(),
                    rows,
                    tid: *tid,
                    sm_id: &sm_id,
                    check_value: *check_value,
                    key_change: Value::Null,
                    amount: amount.clone(),
                    tid_base: tid_base.clone(),
                    with_key_change: false,
                    now,
                }
            })
            .collect();
        let bodies = record_many(&mut tx, &records).await?;
        let mut logged = Vec::with_capacity(done.len());
        for ((i, _, _, tid, ..), body) in done.iter().zip(bodies) {
            logged.push((*i, *tid));
            slots[*i] = Slot::Done(Ok(VendOutcome {
                body,
                reprint: false,
            }));
        }
        let mut changed = Vec::with_capacity(stored_meters.len());
        for key in &stored_meters {
            if let Some(meter) = meters.get_mut(*key) {
                meter.updated = now;
            }
        }
        for key in stored_meters {
            if let Some(meter) = meters.get(key) {
                changed.push(meter);
            }
        }
        meters::store_last_tids(&mut tx, &changed).await?;
        tx.commit().await?;
        self.metrics().batch(logged.len());
        for (i, tid) in logged {
            let job = &jobs[i];
            tracing::info!(
                request_id = job.request_id,
                pan = job.pan.as_str(),
                kind = "credit",
                tokens = 1,
                tid,
                key = job.key_id,
                batch = jobs.len(),
                "vend issued"
            );
        }
        Ok((slots, canonical))
    }
}
