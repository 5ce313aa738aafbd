//! Batches: many meters in one `issue_many`, TID floors from a database shared by several
//! security modules (`issue_many_after`), and batch audit entries larger than one entry holds.

// Helpers outside #[test] functions may unwrap too: a panic is a test failure with its message.
#![allow(clippy::unwrap_used)]

#[path = "support/fixture.rs"]
mod fixture;

use std::{collections::HashMap, sync::Arc};

use fixture::{World, attributes, credit, loaded_world, meter_cipher, tid_now, unique_meter};
use sts_core::{
    KeyDerivationAlgorithm, MeterPan, TidError, TokenIdentifier, UtcMinute, decode,
    token::MeterTestFormat,
};
use sts_keys::{
    CreditLimit, KdfCost, Passphrase, SecurityModule, SecurityModuleId, SmError, TokenRequest,
    VendingKeyType, audit::BatchRecords,
};

#[tokio::test]
async fn a_thousand_meters_in_one_batch_get_their_own_successive_tids() {
    let w = loaded_world(CreditLimit::NONE).await;
    let id = w.kmc.keys().await.unwrap()[0].id;
    let key = w.read_key_independently(id).await;
    // 1,000 meters, the first 10 of them three times (interleaved with the others).
    let meters: Vec<_> = (0..1000).map(|n| unique_meter(&w, n)).collect();
    let mut batch: Vec<_> = meters.iter().map(|m| (*m, credit(10))).collect();
    for (i, m) in meters[..10].iter().enumerate() {
        batch.insert(i * 50, (*m, credit(20)));
        batch.push((*m, TokenRequest::ClearTamperCondition));
    }
    let issued = w.sm.issue_many(&batch).await.unwrap();
    assert_eq!(issued.len(), 1020);
    let now = tid_now(&w);
    let mut tids: HashMap<MeterPan, Vec<u32>> = HashMap::new();
    for ((m, _), t) in batch.iter().zip(&issued) {
        // Each token decodes for its meter, under a key the test derived itself.
        assert_eq!(
            decode(t.number, Some(&meter_cipher(&key, m)))
                .unwrap()
                .token,
            t.token
        );
        tids.entry(m.pan)
            .or_default()
            .push(t.token.tid().unwrap().get());
    }
    for (pan, list) in &tids {
        let expected: Vec<u32> = (now..now + list.len() as u32).collect();
        assert_eq!(list, &expected, "{pan}");
    }
    // One audit entry for the batch, one record per token, in order.
    assert!(
        issued
            .iter()
            .all(|t| t.audit_sequence == issued[0].audit_sequence)
    );
    let log = w.sm.audit_log().await.unwrap();
    let entry = log.last().unwrap();
    assert_eq!(entry.sequence, issued[0].audit_sequence);
    let Some(BatchRecords::Tokens(records)) = entry.batch_records().unwrap() else {
        panic!("{entry:?}")
    };
    assert_eq!(records.len(), 1020);
    for (i, (((m, request), t), r)) in batch.iter().zip(&issued).zip(&records).enumerate() {
        assert_eq!(t.audit_record as usize, i);
        assert_eq!(r.meter, *m);
        assert_eq!(r.tid, t.token.tid());
        assert_eq!(r.credit_units, request.credit_units());
        assert_eq!(r.check_value, t.check_value);
    }
    assert!(
        entry.details.contains("\"records\":1020"),
        "{}",
        entry.details
    );
    assert!(
        entry.details.contains("\"credit_units\":10200"),
        "{}",
        entry.details
    );

    // The next batch in the same minute continues every meter's TIDs: they were all written.
    let again: Vec<_> = meters.iter().map(|m| (*m, credit(1))).collect();
    let next = w.sm.issue_many(&again).await.unwrap();
    for ((m, _), t) in again.iter().zip(&next) {
        assert_eq!(
            t.token.tid().unwrap().get(),
            tids[&m.pan].last().unwrap() + 1,
            "{}",
            m.pan
        );
    }
    assert_eq!(w.sm.verify_audit().await.unwrap(), log.len() as u64 + 1);
}

#[tokio::test]
async fn a_refused_batch_writes_no_tid() {
    let w = loaded_world(CreditLimit::NONE).await;
    let (a, b) = (unique_meter(&w, 1), unique_meter(&w, 2));
    let mut unknown = unique_meter(&w, 3);
    unknown.key_revision = 9.try_into().unwrap();
    let refused =
        w.sm.issue_many(&[(a, credit(1)), (b, credit(1)), (unknown, credit(1))])
            .await;
    assert!(matches!(refused, Err(SmError::NoKey { .. })), "{refused:?}");
    // Had the refused batch written its TIDs, these would come after them.
    let now = tid_now(&w);
    let issued =
        w.sm.issue_many(&[(a, credit(1)), (b, credit(1))])
            .await
            .unwrap();
    assert_eq!(issued[0].token.tid().unwrap().get(), now);
    assert_eq!(issued[1].token.tid().unwrap().get(), now);
}

#[tokio::test]
async fn issue_many_after_a_floor() {
    let w = loaded_world(CreditLimit::NONE).await;
    let (a, b, c) = (
        unique_meter(&w, 1),
        unique_meter(&w, 2),
        unique_meter(&w, 3),
    );
    let now = tid_now(&w);
    let floor = TokenIdentifier::from_raw(now + 100).unwrap();
    let issued =
        w.sm.issue_many_after(&[
            // Above the module's own last TID: the floor wins.
            (a, credit(1), Some(floor)),
            // A floor in the past: the current minute's TID.
            (
                b,
                credit(1),
                Some(TokenIdentifier::from_raw(now - 100).unwrap()),
            ),
            // No floor: as issue_many.
            (c, credit(1), None),
            // A second token for `a`: after the first, whatever floor it is given.
            (a, credit(1), Some(TokenIdentifier::from_raw(now).unwrap())),
        ])
        .await
        .unwrap();
    let tids: Vec<u32> = issued
        .iter()
        .map(|t| t.token.tid().unwrap().get())
        .collect();
    assert_eq!(tids, [now + 101, now, now, now + 102]);
    // The module remembers: without a floor, `a` continues after its last TID.
    let next = w.sm.issue(&a, credit(1)).await.unwrap();
    assert_eq!(next.token.tid().unwrap().get(), now + 103);

    // A floor at the base date's last TID leaves none: refused, nothing issued.
    let log = w.sm.audit_log().await.unwrap().len();
    let max = TokenIdentifier::from_raw(TokenIdentifier::MAX).unwrap();
    let refused =
        w.sm.issue_many_after(&[(b, credit(1), None), (c, credit(1), Some(max))])
            .await;
    assert!(
        matches!(refused, Err(SmError::Tid(TidError::AfterRollover))),
        "{refused:?}"
    );
    assert_eq!(w.sm.audit_log().await.unwrap().len(), log);
    // Class 1 has no TID: a floor does not apply.
    let test =
        w.sm.issue_many_after(&[(
            b,
            TokenRequest::InitiateMeterTest {
                format: MeterTestFormat::Short,
                control: 1,
                manufacturer: 0,
            },
            Some(max),
        )])
        .await
        .unwrap();
    assert_eq!(test[0].token.tid(), None);
}

/// Two security modules, each with its own store, vend for one meter; the "database" knows
/// the last TID either issued and passes it as the floor.
#[tokio::test]
async fn two_security_modules_on_one_database_never_repeat_a_tid() {
    let w = loaded_world(CreditLimit::NONE).await;
    let second_id: SecurityModuleId = "SM-0002".parse().unwrap();
    let second = SecurityModule::create(
        &w.dir.path().join("sm2.sqlite"),
        &Passphrase::new("second sm passphrase").unwrap(),
        KdfCost::INSECURE_FOR_TESTS,
        second_id.clone(),
        w.kmc.public_key(),
    )
    .await
    .unwrap()
    .with_clock(Arc::new(w.clock.clone()));
    w.kmc
        .register_security_module(&second_id, &second.public_key())
        .await
        .unwrap();
    let key = w.kmc.keys().await.unwrap()[0].id;
    w.kmc.authorize(w.owner, key, &second_id).await.unwrap();
    let file = w
        .kmc
        .issue_keyload(w.owner, &second_id, &[key])
        .await
        .unwrap();
    second.import_keyload(file.as_bytes()).await.unwrap();

    let m = unique_meter(&w, 7);
    let mut database: Option<TokenIdentifier> = None;
    let mut seen = Vec::new();
    for round in 0..6 {
        let sm = if round % 2 == 0 { &w.sm } else { &second };
        let issued = sm
            .issue_many_after(&[(m, credit(1), database), (m, credit(2), database)])
            .await
            .unwrap();
        for t in issued {
            let tid = t.token.tid().unwrap();
            assert!(
                database.is_none_or(|last| tid > last),
                "round {round}: {tid}"
            );
            database = Some(tid);
            seen.push(tid.get());
        }
    }
    let now = tid_now(&w);
    assert_eq!(seen, (now..now + 12).collect::<Vec<_>>());
    // Without the floor, the first module would repeat the second one's TIDs.
    let blind = w.sm.issue(&m, credit(1)).await.unwrap();
    assert!(seen.contains(&blind.token.tid().unwrap().get()));
}

#[tokio::test]
async fn a_batch_larger_than_one_audit_entry() {
    let w = loaded_world(CreditLimit::NONE).await;
    // Class 1 tokens are cheap to make (no key): 65,537 of them take two entries.
    let m = unique_meter(&w, 1);
    let request = TokenRequest::InitiateMeterTest {
        format: MeterTestFormat::Short,
        control: 1,
        manufacturer: 0,
    };
    let mut batch = vec![(m, request); 65_537];
    batch[65_536] = (m, credit(5));
    let before = w.sm.audit_log().await.unwrap().len() as u64;
    let issued = w.sm.issue_many(&batch).await.unwrap();
    assert_eq!(issued[0].audit_sequence, before + 1);
    assert_eq!(issued[65_535].audit_sequence, before + 1);
    assert_eq!(issued[65_535].audit_record, 65_535);
    assert_eq!(issued[65_536].audit_sequence, before + 2);
    assert_eq!(issued[65_536].audit_record, 0);
    let log = w.sm.audit_log().await.unwrap();
    let counts: Vec<usize> = log[before as usize..]
        .iter()
        .map(|e| e.batch_records().unwrap().unwrap().len())
        .collect();
    assert_eq!(counts, [65_536, 1]);
    assert!(log.last().unwrap().details.contains("\"credit_units\":5"));
    assert_eq!(w.sm.verify_audit().await.unwrap(), before + 2);
}

#[tokio::test]
async fn time_moves_on_between_batches() {
    let w = loaded_world(CreditLimit::NONE).await;
    let m = unique_meter(&w, 1);
    let first =
        w.sm.issue_many(&[(m, credit(1)), (m, credit(1))])
            .await
            .unwrap();
    w.clock
        .set("2026-06-01 13:00".parse::<UtcMinute>().unwrap());
    let later = w.sm.issue(&m, credit(1)).await.unwrap();
    assert_eq!(
        later.token.tid().unwrap().get(),
        first[1].token.tid().unwrap().get() - 1 + 60
    );
}

async fn reopen(w: &mut World) {
    let sm = SecurityModule::open(&w.sm_path(), &Passphrase::new(fixture::SM_PASS).unwrap())
        .await
        .unwrap()
        .with_clock(Arc::new(w.clock.clone()));
    std::mem::replace(&mut w.sm, sm).close().await;
}

fn tids(issued: &[sts_keys::IssuedToken]) -> Vec<u32> {
    issued
        .iter()
        .map(|t| t.token.tid().unwrap().get())
        .collect()
}

/// The last TIDs live in memory; the audit log is their durable record. A module reopened in
/// the same minute, or after a burst of TIDs ahead of the clock, continues every meter's TIDs.
#[tokio::test]
async fn reopened_in_the_same_minute_and_after_a_burst() {
    let mut w = loaded_world(CreditLimit::NONE).await;
    let now = tid_now(&w);
    let (a, b, c) = (
        unique_meter(&w, 1),
        unique_meter(&w, 2),
        unique_meter(&w, 3),
    );
    // A burst: 100 tokens for `a` in one minute (TIDs up to now + 99), one for `b`.
    let mut burst = vec![(a, credit(1)); 100];
    burst.push((b, credit(1)));
    w.sm.issue_many(&burst).await.unwrap();
    // Reopened in the same minute.
    reopen(&mut w).await;
    let issued =
        w.sm.issue_many(&[(a, credit(1)), (b, credit(1))])
            .await
            .unwrap();
    assert_eq!(tids(&issued), [now + 100, now + 1]);

    // Ten minutes on, other meters are vended in several batches (the ledger drops what no
    // longer matters).
    w.clock
        .set("2026-06-01 12:10".parse::<UtcMinute>().unwrap());
    let later = tid_now(&w);
    for n in 10..13 {
        w.sm.issue(&unique_meter(&w, n), credit(1)).await.unwrap();
    }
    let issued =
        w.sm.issue_many(&[(a, credit(1)), (c, credit(1))])
            .await
            .unwrap();
    assert_eq!(tids(&issued), [now + 101, later]);
    // Reopened: `a`'s TIDs are still ahead of the clock, found in an older batch entry;
    // `b`'s last TID is in the past and no longer matters.
    reopen(&mut w).await;
    let issued =
        w.sm.issue_many(&[(a, credit(1)), (b, credit(1)), (c, credit(1))])
            .await
            .unwrap();
    assert_eq!(tids(&issued), [now + 102, later, later + 1]);
    assert!(w.sm.verify_audit().await.unwrap() > 0);
}

#[tokio::test]
async fn a_clock_that_goes_back() {
    let w = loaded_world(CreditLimit::NONE).await;
    let (a, b) = (unique_meter(&w, 1), unique_meter(&w, 2));
    let at_noon = w.sm.issue(&a, credit(1)).await.unwrap();
    // Five minutes on, another meter: `a`'s TID is in the past and leaves the ledger.
    w.clock
        .set("2026-06-01 12:05".parse::<UtcMinute>().unwrap());
    let later = w.sm.issue(&b, credit(1)).await.unwrap();
    // The clock goes back to noon: both meters continue after their last TIDs.
    w.clock
        .set("2026-06-01 12:00".parse::<UtcMinute>().unwrap());
    let issued =
        w.sm.issue_many(&[(a, credit(1)), (b, credit(1))])
            .await
            .unwrap();
    assert_eq!(
        tids(&issued),
        [
            at_noon.token.tid().unwrap().get() + 1,
            later.token.tid().unwrap().get() + 1
        ]
    );
    // A meter without tokens gets the TID of the (earlier) current minute.
    let other = w.sm.issue(&unique_meter(&w, 3), credit(1)).await.unwrap();
    assert_eq!(other.token.tid().unwrap().get(), tid_now(&w));
}

/// Two modules (two connections) on one store file, taking turns: each sees the other's
/// tokens (the store's audit head moved) and continues after them.
#[tokio::test]
async fn two_processes_on_one_store() {
    let w = loaded_world(CreditLimit::NONE).await;
    let other = SecurityModule::open(&w.sm_path(), &Passphrase::new(fixture::SM_PASS).unwrap())
        .await
        .unwrap()
        .with_clock(Arc::new(w.clock.clone()));
    let meters: Vec<_> = (0..50).map(|n| unique_meter(&w, n)).collect();
    let batch: Vec<_> = meters.iter().map(|m| (*m, credit(1))).collect();
    let now = tid_now(&w);
    for round in 0..6u32 {
        let sm = if round % 2 == 0 { &w.sm } else { &other };
        let issued = sm.issue_many(&batch).await.unwrap();
        assert!(
            tids(&issued).iter().all(|&t| t == now + round),
            "round {round}"
        );
    }
    other.close().await;
    assert!(w.sm.verify_audit().await.unwrap() > 6);
}

/// Batches cut short at every point (their futures dropped: a caller's timeout) leave
/// nothing behind: each batch committed all of its tokens or none, the audit log verifies,
/// and the next batch's TIDs come after every TID the log records.
///
/// A batch cut short while its commit is on its way to the store may still commit after its
/// future is gone (the caller gave up; its tokens may be recorded). The next batch waits for
/// the store's write lock, so it comes after any such commit: the log is read after it.
#[tokio::test]
async fn batches_cut_short_leave_the_store_consistent() {
    let w = loaded_world(CreditLimit::NONE).await;
    let meters: Vec<_> = (0..300).map(|n| unique_meter(&w, n)).collect();
    let batch: Vec<_> = meters.iter().map(|m| (*m, credit(1))).collect();
    let mut finished = 0;
    for i in 0..40u64 {
        let cut = std::time::Duration::from_micros(i * 60);
        if tokio::time::timeout(cut, w.sm.issue_many(&batch))
            .await
            .is_ok()
        {
            finished += 1;
        }
    }
    let issued = w.sm.issue_many(&batch).await.unwrap();
    let log = w.sm.audit_log().await.unwrap();
    let (last_entry, earlier) = log.split_last().unwrap();
    assert_eq!(last_entry.sequence, issued[0].audit_sequence);
    let mut last: HashMap<MeterPan, u32> = HashMap::new();
    let mut recorded = 0;
    for entry in earlier {
        if let Some(BatchRecords::Tokens(records)) = entry.batch_records().unwrap() {
            assert_eq!(records.len(), batch.len(), "a batch is recorded whole");
            recorded += 1;
            for r in records {
                let tid = r.tid.unwrap().get();
                let previous = last.insert(r.meter.pan, tid);
                assert!(previous.is_none_or(|p| p < tid), "{}", r.meter.pan);
            }
        }
    }
    assert!(
        recorded >= finished,
        "{recorded} recorded, {finished} answered"
    );
    for ((m, _), t) in batch.iter().zip(&issued) {
        let tid = t.token.tid().unwrap().get();
        assert!(last.get(&m.pan).is_none_or(|&l| tid > l), "{}", m.pan);
    }
    assert_eq!(w.sm.verify_audit().await.unwrap(), log.len() as u64);
}

/// A keyload import while a batch is under way: both take the store's write lock in turn.
#[tokio::test]
async fn an_import_during_a_batch() {
    let w = loaded_world(CreditLimit::NONE).await;
    let batch: Vec<_> = (0..2000)
        .map(|n| (unique_meter(&w, n), credit(1)))
        .collect();
    let second = attributes(
        w.sgc,
        VendingKeyType::Unique,
        KeyDerivationAlgorithm::Dkga02,
        2,
    );
    let (issued, _) = tokio::join!(w.sm.issue_many(&batch), w.load_key(&second));
    assert_eq!(issued.unwrap().len(), batch.len());
    let mut on_two = unique_meter(&w, 1);
    on_two.key_revision = 2.try_into().unwrap();
    w.sm.issue(&on_two, credit(1)).await.unwrap();
    w.sm.verify_audit().await.unwrap();
}
