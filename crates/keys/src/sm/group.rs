//! Group commit: token batches of concurrent callers share one transaction and one commit.
//!
//! A commit costs the store an fsync (0.3-1 ms here), more than a thousand tokens cost the
//! engine, so a caller that issues one token at a time pays almost only for the commit. When
//! callers run concurrently, the batches that arrive while one commits wait in a queue, and
//! the next caller to get the writer takes all of them (up to [`GROUP_TOKENS`] tokens) and
//! issues them in one transaction: one commit for the group.
//!
//! Each caller's batch is still all or nothing, on its own: a batch that is refused (a credit
//! limit, a key not held) is taken out of the group with what it had planned undone - its
//! TIDs, its credit, its audit records - and the others commit. What fails the group as a
//! whole (the store, the OS CSPRNG) fails each of its batches with
//! [`SmError::SharedCommitFailed`]: everything a batch could be refused for was checked
//! before the commit.
//!
//! A caller that leads a group does the others' work on its own task. Should its future be
//! dropped (a client that went away), the batches it carried are answered when it drops: a
//! batch that was not committing yet goes back to the queue; one that was (the commit may or
//! may not have reached the store) gets [`SmError::BatchCutShort`], never a second try that
//! could issue its tokens twice.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, Ordering},
};

use sts_core::{MeterDescription, TokenIdentifier};
use tokio::sync::oneshot;

use super::{IssuedToken, SecurityModule, SmError, TokenRequest, writer::Turn};

/// A token request as the queue holds it (see `issue::Request`).
pub(super) type Owned = (MeterDescription, TokenRequest, Option<TokenIdentifier>);

/// The most tokens a group takes from the queue; a single batch may be larger.
const GROUP_TOKENS: usize = 16_384;

/// What a waiting caller hears.
enum Reply {
    /// Its batch was issued or refused.
    Done(Result<Vec<IssuedToken>, SmError>),
    /// The caller leading its group went away; `committing`: the group's commit had begun.
    CutShort { committing: bool },
}

/// A caller's batch in the queue or in a group.
struct Member {
    id: u64,
    requests: Arc<[Owned]>,
    reply: Option<oneshot::Sender<Reply>>,
}

impl Member {
    fn answer(&mut self, reply: Reply) {
        if let Some(tx) = self.reply.take() {
            // A caller that went away hears nothing.
            let _ = tx.send(reply);
        }
    }
}

/// The batches waiting for the writer.
#[derive(Default)]
pub(super) struct Queue {
    inner: Mutex<QueueInner>,
}

#[derive(Default)]
struct QueueInner {
    next_id: u64,
    members: Vec<Member>,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueInner> {
        // The queue is left whole by every operation on it: a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues a batch; returns its ID and where its reply comes.
    fn push(&self, requests: &Arc<[Owned]>) -> (u64, oneshot::Receiver<Reply>) {
        let (tx, rx) = oneshot::channel();
        let mut q = self.lock();
        let id = q.next_id;
        q.next_id = q.next_id.wrapping_add(1);
        q.members.push(Member {
            id,
            requests: Arc::clone(requests),
            reply: Some(tx),
        });
        (id, rx)
    }

    /// Takes a group from the queue: batch `first` (if queued, else none at all), then the
    /// others in order while the group stays within [`GROUP_TOKENS`]. Batches whose callers
    /// went away are dropped.
    fn take(&self, first: Option<u64>) -> Vec<Member> {
        let mut q = self.lock();
        q.members
            .retain(|m| m.reply.as_ref().is_some_and(|tx| !tx.is_closed()));
        let mut group = Vec::new();
        if let Some(first) = first {
            let Some(at) = q.members.iter().position(|m| m.id == first) else {
                return group;
            };
            group.push(q.members.remove(at));
        }
        let mut tokens: usize = group.iter().map(|m| m.requests.len()).sum();
        let mut rest = Vec::new();
        for m in q.members.drain(..) {
            if group.is_empty() || tokens + m.requests.len() <= GROUP_TOKENS {
                tokens += m.requests.len();
                group.push(m);
            } else {
                rest.push(m);
            }
        }
        q.members = rest;
        group
    }

    fn is_empty(&self) -> bool {
        self.lock().members.is_empty()
    }
}

/// The members of a group being issued: those still unanswered when it is dropped (its
/// leader went away) are told whether the group's commit had begun.
struct Group<'a> {
    members: Vec<Member>,
    committing: &'a AtomicBool,
}

impl Drop for Group<'_> {
    fn drop(&mut self) {
        let committing = self.committing.load(Ordering::Acquire);
        for m in &mut self.members {
            m.answer(Reply::CutShort { committing });
        }
    }
}

impl SecurityModule {
    /// Issues a batch, alone when no other is waiting for the writer, else in a group (see
    /// the module documentation).
    pub(super) async fn issue_grouped<R: super::issue::Request>(
        &self,
        requests: &[R],
    ) -> Result<Vec<IssuedToken>, SmError> {
        // The work of a batch or a group is a large future (about 3 KB, most of it the store
        // calls'): boxed, so that a caller's own future stays small to move and to spawn.
        if let Some(mut turn) = self.try_turn() {
            if self.queue.is_empty() {
                let committing = AtomicBool::new(false);
                return Box::pin(self.issue_alone(&mut turn, requests, &committing)).await;
            }
            drop(turn);
        }
        let owned: Arc<[Owned]> = requests.iter().map(|r| r.owned()).collect();
        let (mut id, mut reply) = self.queue.push(&owned);
        loop {
            tokio::select! {
                biased;
                heard = &mut reply => match heard {
                    Ok(Reply::Done(result)) => return result,
                    Ok(Reply::CutShort { committing: false }) => {
                        (id, reply) = self.queue.push(&owned);
                    }
                    Ok(Reply::CutShort { committing: true }) | Err(_) => {
                        return Err(SmError::BatchCutShort);
                    }
                },
                turn = self.turn() => {
                    let members = self.queue.take(Some(id));
                    if members.is_empty() {
                        // The batch is with a group whose leader is going away: its reply
                        // is on the way.
                        drop(turn);
                        tokio::task::yield_now().await;
                    } else {
                        Box::pin(self.lead(turn, members)).await;
                    }
                }
            }
        }
    }

    /// Issues `members` as one group; answers each.
    async fn lead(&self, mut turn: Turn<'_>, members: Vec<Member>) {
        let committing = AtomicBool::new(false);
        let mut group = Group {
            members,
            committing: &committing,
        };
        let batches: Vec<Arc<[Owned]>> = group
            .members
            .iter()
            .map(|m| Arc::clone(&m.requests))
            .collect();
        let slices: Vec<&[Owned]> = batches.iter().map(|b| &b[..]).collect();
        match self.issue_group(&mut turn, &slices, &committing).await {
            Ok(results) => {
                for (m, result) in group.members.iter_mut().zip(results) {
                    m.answer(Reply::Done(result));
                }
            }
            Err(e) if slices.len() == 1 => {
                if let Some(m) = group.members.first_mut() {
                    m.answer(Reply::Done(Err(e)));
                }
            }
            Err(e) => {
                // Every batch was checked before the commit: what failed the group (the
                // store, the OS CSPRNG) fails each of its batches alike.
                let shared = Arc::new(e);
                for m in &mut group.members {
                    m.answer(Reply::Done(Err(SmError::SharedCommitFailed(Arc::clone(
                        &shared,
                    )))));
                }
            }
        }
    }

    /// Issues one batch in `turn`.
    async fn issue_alone<R: super::issue::Request>(
        &self,
        turn: &mut Turn<'_>,
        requests: &[R],
        committing: &AtomicBool,
    ) -> Result<Vec<IssuedToken>, SmError> {
        let mut results = self.issue_group(turn, &[requests], committing).await?;
        results.pop().unwrap_or_else(|| {
            Err(SmError::Store(crate::StoreError::Corrupt(
                "a group of one batch had no outcome".into(),
            )))
        })
    }
}
