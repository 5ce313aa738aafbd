//! Group commit: batches of concurrent callers share a transaction, each still issued or
//! refused on its own, and callers whose group's leader went away are answered honestly.

// Helpers outside #[test] functions may unwrap too: a panic is a test failure with its message.
#![allow(clippy::unwrap_used, clippy::panic)]

#[path = "support/fixture.rs"]
mod fixture;

use std::{collections::HashMap, sync::Arc};

use proptest::strategy::Strategy;

use fixture::{World, credit, loaded_world, meter_cipher, tid_now, unique_meter};
use sts_core::{MeterPan, decode};
use sts_keys::{CreditLimit, IssuedToken, SmError, TokenRequest, audit::BatchRecords};

fn tid(t: &IssuedToken) -> u32 {
    t.token.tid().unwrap().get()
}

/// The token records of the log, by (entry, index).
async fn records(w: &World) -> HashMap<(u64, u32), sts_keys::audit::TokenRecord> {
    let mut out = HashMap::new();
    for entry in w.sm.audit_log().await.unwrap() {
        if let Some(BatchRecords::Tokens(records)) = entry.batch_records().unwrap() {
            for (i, r) in records.into_iter().enumerate() {
                out.insert((entry.sequence, i as u32), r);
            }
        }
    }
    out
}

/// Runs `f` while another connection holds the store's write lock for its first 100 ms: the
/// first batch `f` starts waits for the lock, so that the batches started with it queue
/// behind it whatever the timing.
async fn while_locked<F: Future>(w: &World, f: F) -> F::Output {
    use sqlx::Connection;
    let url = format!("sqlite://{}", w.sm_path().display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut conn)
        .await
        .unwrap();
    let (out, ()) = tokio::join!(f, async {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        sqlx::query("COMMIT").execute(&mut conn).await.unwrap();
    });
    conn.close().await.unwrap();
    out
}

/// 200 callers issue one token each at once (40 meters, 5 tokens each): every token is
/// issued, decodes for its meter, has its own TID and its own audit record, and the 200
/// tokens took far fewer commits than 200.
#[tokio::test]
async fn concurrent_callers_share_commits() {
    let w = Arc::new(loaded_world(CreditLimit::NONE).await);
    let id = w.kmc.keys().await.unwrap()[0].id;
    let key = w.read_key_independently(id).await;
    let entries_before = w.sm.audit_log().await.unwrap().len();
    let mut callers = tokio::task::JoinSet::new();
    for i in 0..200u64 {
        let w = Arc::clone(&w);
        callers.spawn(async move {
            let m = unique_meter(&w, i % 40);
            let issued = w.sm.issue(&m, credit(1 + i as u32)).await.unwrap();
            (m, i, issued)
        });
    }
    let mut tids: HashMap<MeterPan, Vec<u32>> = HashMap::new();
    let mut issued = Vec::new();
    while let Some(done) = callers.join_next().await {
        let (m, i, t) = done.unwrap();
        let decoded = decode(t.number, Some(&meter_cipher(&key, &m))).unwrap();
        assert_eq!(decoded.token, t.token);
        let sts_core::Token::TransferCredit { amount, .. } = t.token else {
            panic!("{:?}", t.token)
        };
        assert_eq!(amount.value(), 1 + i as u32);
        tids.entry(m.pan).or_default().push(tid(&t));
        issued.push((m, t));
    }
    let now = tid_now(&w);
    for (pan, list) in &mut tids {
        list.sort_unstable();
        assert_eq!(list, &(now..now + 5).collect::<Vec<_>>(), "{pan}");
    }
    let records = records(&w).await;
    for (m, t) in &issued {
        let r = &records[&(t.audit_sequence, t.audit_record)];
        assert_eq!((r.meter, r.tid), (*m, t.token.tid()));
    }
    let log = w.sm.audit_log().await.unwrap();
    let commits = log.len() - entries_before;
    assert!(commits < 50, "200 tokens took {commits} commits");
    assert_eq!(records.len(), 200);
    assert_eq!(w.sm.verify_audit().await.unwrap(), log.len() as u64);
}

/// A refused batch of a group is left out whole: its TIDs and its credit are undone and it
/// has no audit record, while the batches before and after it in the group are issued.
#[tokio::test]
async fn a_refused_batch_leaves_its_group() {
    let w = loaded_world(CreditLimit::new(3_000)).await;
    let (m1, m2) = (unique_meter(&w, 1_000_001), unique_meter(&w, 1_000_002));
    // The first batch commits alone; the next three queue behind it and go as one group.
    let first: Vec<_> = (0..2_000)
        .map(|n| (unique_meter(&w, n), credit(1)))
        .collect();
    let a = [(m1, credit(10)), (m1, credit(10))];
    let b = [(m2, credit(5)), (m1, credit(990))];
    let c = [(m2, credit(7)), (m1, credit(3))];
    let (first, a, b, c) = while_locked(&w, async {
        tokio::join!(
            w.sm.issue_many(&first),
            w.sm.issue_many(&a),
            w.sm.issue_many(&b),
            w.sm.issue_many(&c),
        )
    })
    .await;
    let (first, a, c) = (first.unwrap(), a.unwrap(), c.unwrap());
    match b {
        Err(SmError::CreditLimitExceeded {
            limit: 3_000,
            issued: 2_025,
            requested: 990,
        }) => {}
        other => panic!("{other:?}"),
    }
    // A and C were issued together, after the first batch.
    assert!(
        a.iter()
            .chain(&c)
            .all(|t| t.audit_sequence == a[0].audit_sequence)
    );
    assert_ne!(a[0].audit_sequence, first[0].audit_sequence);
    // B's TIDs were undone: C continues from A on m1, and m2 starts afresh.
    let now = tid_now(&w);
    assert_eq!(a.iter().map(tid).collect::<Vec<_>>(), [now, now + 1]);
    assert_eq!(c.iter().map(tid).collect::<Vec<_>>(), [now, now + 2]);
    // B's credit was undone too.
    let held = w.sm.keys().await.unwrap();
    assert_eq!(held[0].credit_issued, 2_000 + 20 + 10);
    let records = records(&w).await;
    assert_eq!(records.len(), 2_000 + 4);
    assert!(w.sm.verify_audit().await.is_ok());
}

/// A group whose every batch is refused (or empty) writes nothing.
#[tokio::test]
async fn a_group_of_refused_batches_writes_nothing() {
    let w = loaded_world(CreditLimit::new(2_100)).await;
    let first: Vec<_> = (0..2_000)
        .map(|n| (unique_meter(&w, n), credit(1)))
        .collect();
    let m = unique_meter(&w, 7);
    let mut unknown = m;
    unknown.key_revision = 9.try_into().unwrap();
    let (first, a, b, empty) = while_locked(&w, async {
        tokio::join!(
            w.sm.issue_many(&first),
            w.sm.issue(&m, credit(101)),
            w.sm.issue(&unknown, credit(1)),
            w.sm.issue_many(&[]),
        )
    })
    .await;
    first.unwrap();
    assert!(empty.unwrap().is_empty());
    assert!(
        matches!(a, Err(SmError::CreditLimitExceeded { .. })),
        "{a:?}"
    );
    assert!(matches!(b, Err(SmError::NoKey { .. })), "{b:?}");
    let entries = w.sm.audit_log().await.unwrap().len();
    // Nothing of the refused group is recorded, and the meter's TIDs are as they were.
    let next = w.sm.issue(&m, credit(1)).await.unwrap();
    assert_eq!(tid(&next), tid_now(&w) + 1);
    assert_eq!(w.sm.audit_log().await.unwrap().len(), entries + 1);
    assert_eq!(w.sm.keys().await.unwrap()[0].credit_issued, 2_001);
    // An empty batch alone issues and writes nothing either.
    assert!(w.sm.issue_many(&[]).await.unwrap().is_empty());
    assert_eq!(w.sm.audit_log().await.unwrap().len(), entries + 1);
}

/// Polls `f` at most `polls` times: none when it did not finish then (it is dropped).
async fn cut_after<F: Future>(polls: usize, f: F) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    let mut left = polls;
    std::future::poll_fn(|cx| {
        if left == 0 {
            return std::task::Poll::Ready(None);
        }
        left -= 1;
        f.as_mut().poll(cx).map(Some)
    })
    .await
}

/// The caller leading a group goes away at every point in turn (its future dropped after
/// 1, 2, ... polls). The batches it carried are issued once or reported cut short, never
/// issued twice or lost without a word: every token returned is in the audit log, every
/// batch the log records whole, the chain verifies, and each meter's TIDs only go up.
#[tokio::test]
async fn a_group_whose_leader_goes_away() {
    let w = loaded_world(CreditLimit::NONE).await;
    // Meter test tokens are not encrypted: the first batch is still committing when its
    // first poll returns, so the others queue behind it.
    let test = TokenRequest::InitiateMeterTest {
        format: sts_core::token::MeterTestFormat::Short,
        control: 1,
        manufacturer: 0,
    };
    let big: Vec<_> = (0..1_500).map(|n| (unique_meter(&w, n), test)).collect();
    let leader: Vec<_> = (0..5).map(|n| (unique_meter(&w, n), credit(1))).collect();
    let others: Vec<Vec<_>> = (0..4)
        .map(|k| {
            (0..5)
                .map(|n| (unique_meter(&w, n * 4 + k), credit(1)))
                .collect()
        })
        .collect();
    let mut outcomes = HashMap::<&str, usize>::new();
    let mut returned = Vec::new();
    let mut batches = 0;
    for polls in 1..=30 {
        // The first batch commits alone; the leader's batch queues first behind it.
        let (big, led, o0, o1, o2, o3) = tokio::join!(
            w.sm.issue_many(&big),
            cut_after(polls, w.sm.issue_many(&leader)),
            w.sm.issue_many(&others[0]),
            w.sm.issue_many(&others[1]),
            w.sm.issue_many(&others[2]),
            w.sm.issue_many(&others[3]),
        );
        returned.extend(big.unwrap());
        batches += 1;
        match led {
            Some(led) => {
                returned.extend(led.unwrap());
                batches += 1;
            }
            None => *outcomes.entry("leader gone").or_default() += 1,
        }
        for other in [o0, o1, o2, o3] {
            match other {
                Ok(tokens) => {
                    assert_eq!(tokens.len(), 5);
                    returned.extend(tokens);
                    batches += 1;
                    *outcomes.entry("issued").or_default() += 1;
                }
                Err(SmError::BatchCutShort) => *outcomes.entry("cut short").or_default() += 1,
                Err(e) => panic!("{e}"),
            }
        }
    }
    // The leader went away in some rounds and finished in the last.
    assert!(outcomes["leader gone"] > 0, "{outcomes:?}");
    assert!(batches > 30 * 5, "{outcomes:?}");
    let records = records(&w).await;
    for t in &returned {
        let r = &records[&(t.audit_sequence, t.audit_record)];
        assert_eq!((r.class, r.tid), (t.token.class(), t.token.tid()));
    }
    let mut last: HashMap<MeterPan, u32> = HashMap::new();
    for entry in w.sm.audit_log().await.unwrap() {
        if let Some(BatchRecords::Tokens(records)) = entry.batch_records().unwrap() {
            for r in records {
                if let Some(tid) = r.tid {
                    let previous = last.insert(r.meter.pan, tid.get());
                    assert!(previous.is_none_or(|p| p < tid.get()), "{}", r.meter.pan);
                }
            }
        }
    }
    // No batch was recorded twice: beyond the tokens returned, the log holds at most the
    // batches that were not answered with tokens.
    let unanswered =
        outcomes.get("leader gone").unwrap_or(&0) + outcomes.get("cut short").unwrap_or(&0);
    assert!(
        (returned.len()..=returned.len() + 5 * unanswered).contains(&records.len()),
        "{} records, {} returned, {outcomes:?}",
        records.len(),
        returned.len()
    );
    w.sm.verify_audit().await.unwrap();
}

/// What fails a group as a whole fails each of its batches, each told so, and writes
/// nothing. Here another module on the same store wrote a token batch whose audit entry was
/// then damaged: the TID ledger, read again because the store's head moved, cannot be.
#[tokio::test]
async fn a_failed_group_fails_each_batch() {
    use sqlx::Connection;
    let w = loaded_world(CreditLimit::NONE).await;
    let m = |n| unique_meter(&w, n);
    w.sm.issue(&m(1), credit(1)).await.unwrap();
    let other = sts_keys::SecurityModule::open(
        &w.sm_path(),
        &sts_keys::Passphrase::new(fixture::SM_PASS).unwrap(),
    )
    .await
    .unwrap()
    .with_clock(Arc::new(w.clock.clone()));
    let theirs = other.issue(&m(2), credit(1)).await.unwrap();
    other.close().await;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", w.sm_path().display()))
        .await
        .unwrap();
    sqlx::query("UPDATE audit SET details = 'not json' WHERE sequence = ?")
        .bind(theirs.audit_sequence as i64)
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let entries = w.sm.audit_log().await.unwrap().len();
    let first: Vec<_> = (0..100).map(|n| (m(n), credit(1))).collect();
    let (m3, m4) = (m(3), m(4));
    let (first, a, b) = while_locked(&w, async {
        tokio::join!(
            w.sm.issue_many(&first),
            w.sm.issue(&m3, credit(1)),
            w.sm.issue(&m4, credit(1)),
        )
    })
    .await;
    // The first batch failed alone; the two tokens queued behind it failed as a group.
    assert!(
        matches!(first, Err(SmError::Store(sts_keys::StoreError::Corrupt(_)))),
        "{first:?}"
    );
    for shared in [a, b] {
        match shared {
            Err(SmError::SharedCommitFailed(e)) => assert!(
                matches!(*e, SmError::Store(sts_keys::StoreError::Corrupt(_))),
                "{e:?}"
            ),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(w.sm.audit_log().await.unwrap().len(), entries);
}

/// A request of the model test: credit for one of four meters, or a token for a meter whose
/// key revision the module does not hold.
#[derive(Debug, Clone, Copy)]
enum Asked {
    Credit { meter: u64, units: u32 },
    NoKey { meter: u64 },
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Tids(Vec<u32>),
    CreditLimit,
    NoKey,
}

/// What the batches must give when they are issued one after the other, in queue order.
fn model(batches: &[Vec<Asked>], limit: u64, now: u32) -> (Vec<Outcome>, u64) {
    let mut total = 0u64;
    let mut last: HashMap<u64, u32> = HashMap::new();
    let outcomes = batches
        .iter()
        .map(|batch| {
            let mut running = total;
            for asked in batch {
                match *asked {
                    Asked::NoKey { .. } => return Outcome::NoKey,
                    Asked::Credit { units, .. } if running + u64::from(units) > limit => {
                        return Outcome::CreditLimit;
                    }
                    Asked::Credit { units, .. } => running += u64::from(units),
                }
            }
            total = running;
            Outcome::Tids(
                batch
                    .iter()
                    .map(|asked| {
                        let Asked::Credit { meter, .. } = *asked else {
                            unreachable!("refused above")
                        };
                        let tid = last.get(&meter).map_or(now, |l| (l + 1).max(now));
                        last.insert(meter, tid);
                        tid
                    })
                    .collect(),
            )
        })
        .collect();
    (outcomes, total)
}

/// Batches queued behind a first one and issued as a group give what they would give one
/// after the other: the same refusals, the same TIDs, the same credit total; the accepted
/// ones share one audit entry.
fn group_matches_model(batches: Vec<Vec<Asked>>) {
    const LIMIT: u64 = 100;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let w = Arc::new(loaded_world(CreditLimit::new(LIMIT)).await);
        let (expected, total) = model(&batches, LIMIT, tid_now(&w));
        let requests: Vec<Vec<_>> = batches
            .iter()
            .map(|batch| {
                batch
                    .iter()
                    .map(|asked| match *asked {
                        Asked::Credit { meter, units } => (unique_meter(&w, meter), credit(units)),
                        Asked::NoKey { meter } => {
                            let mut m = unique_meter(&w, meter);
                            m.key_revision = 9.try_into().unwrap();
                            (m, credit(1))
                        }
                    })
                    .collect()
            })
            .collect();
        let got = while_locked(&w, async {
            let mut tasks = tokio::task::JoinSet::new();
            // The first batch waits for the store's lock; the others queue behind it, in
            // the order they are spawned.
            let blocker: Vec<_> = (100..110)
                .map(|n| (unique_meter(&w, n), test_token()))
                .collect();
            let sm_world = Arc::clone(&w);
            tasks.spawn(async move { (usize::MAX, sm_world.sm.issue_many(&blocker).await) });
            for (i, batch) in requests.into_iter().enumerate() {
                let w = Arc::clone(&w);
                tasks.spawn(async move { (i, w.sm.issue_many(&batch).await) });
            }
            let mut got: Vec<_> = tasks.join_all().await;
            got.sort_by_key(|(i, _)| *i);
            got
        })
        .await;
        let mut entries = Vec::new();
        for ((i, result), expected) in got.iter().zip(&expected) {
            let outcome = match result {
                Ok(tokens) => {
                    entries.extend(tokens.iter().map(|t| t.audit_sequence));
                    Outcome::Tids(tokens.iter().map(tid).collect())
                }
                Err(SmError::CreditLimitExceeded { .. }) => Outcome::CreditLimit,
                Err(SmError::NoKey { .. }) => Outcome::NoKey,
                Err(e) => panic!("batch {i}: {e}"),
            };
            assert_eq!(&outcome, expected, "batch {i} of {batches:?}");
        }
        assert!(got.last().unwrap().1.is_ok(), "the first batch");
        entries.dedup();
        assert!(
            entries.len() <= 1,
            "the group took {} entries",
            entries.len()
        );
        assert_eq!(w.sm.keys().await.unwrap()[0].credit_issued, total);
        w.sm.verify_audit().await.unwrap();
    });
}

fn test_token() -> TokenRequest {
    TokenRequest::InitiateMeterTest {
        format: sts_core::token::MeterTestFormat::Short,
        control: 1,
        manufacturer: 0,
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    #[test]
    fn a_group_gives_what_its_batches_give_one_after_the_other(
        batches in proptest::collection::vec(
            proptest::collection::vec(
                proptest::prop_oneof![
                    6 => (0..4u64, 1..40u32).prop_map(|(meter, units)| Asked::Credit { meter, units }),
                    1 => (0..4u64).prop_map(|meter| Asked::NoKey { meter }),
                ],
                0..4,
            ),
            1..7,
        )
    ) {
        group_matches_model(batches);
    }
}
