//! Group commit: concurrent credit vends share security module and vend transactions, and
//! each keeps the guarantees of a vend made alone - successive TIDs for one meter within a
//! batch, and a refused vend answers only itself.

#![allow(clippy::unwrap_used, clippy::panic)]

#[path = "support/world.rs"]
mod support;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Answer, Engine, call, description, pan, world};

/// Sends `bodies` to `POST /v1/vends` all at once; the answers in the same order.
async fn at_once(w: &support::World, bodies: Vec<Value>) -> Vec<Answer> {
    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let router = w.router.clone();
            let key = w.vendor.clone();
            tokio::spawn(async move {
                call(&router, Method::POST, "/v1/vends", Some(&key), Some(body)).await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    answers
}

/// A counter of the `/metrics` text.
async fn metric(w: &support::World, name: &str) -> u64 {
    let text = w.get("/metrics", &w.admin).await.body;
    let text = text.as_str().unwrap_or_default().to_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

async fn concurrent_vends_to_one_meter_share_commits_and_get_successive_tids(engine: Engine) {
    let w = world(engine).await;
    let meter = pan(7);
    w.register(w.meter_body(&meter)).await;
    let answers = at_once(
        &w,
        (0..64)
            .map(|i| json!({"request_id": format!("one-meter-{i}"), "meter": meter, "token": {"type": "credit", "amount": "2.5"}}))
            .collect(),
    )
    .await;
    let mut tids: Vec<u64> = answers
        .iter()
        .map(|a| {
            assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
            a.body["tid"].as_u64().unwrap()
        })
        .collect();
    tids.sort_unstable();
    // The clock stands still: one minute, so 64 successive TIDs from the first.
    for pair in tids.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "TIDs {tids:?}");
    }
    // The meter's record agrees: its vends in commit order have increasing TIDs.
    let list = w
        .get(&format!("/v1/meters/{meter}/vends?limit=100"), &w.auditor)
        .await;
    let mut recorded: Vec<u64> = list.body["vends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["tid"].as_u64().unwrap())
        .collect();
    recorded.reverse();
    assert_eq!(recorded, tids, "recorded in TID order");
    // Every token decodes for the meter with its TID.
    let m = w.get(&format!("/v1/meters/{meter}"), &w.admin).await.body;
    let d = description(&m);
    for a in &answers {
        let number = a.body["tokens"][0]["number"].as_str().unwrap();
        let token = w.decode_for(&d, number).await.unwrap();
        assert_eq!(
            token.tid().map(|t| u64::from(t.get())),
            a.body["tid"].as_u64()
        );
    }
    // And the 64 vends shared commits.
    let batches = metric(&w, "sts_vend_batches_total").await;
    let batched = metric(&w, "sts_vend_batched_total").await;
    assert_eq!(batched, 64);
    assert!(batches < 64, "{batches} batches for 64 vends");
    // Repeating them reprints the same tokens.
    let again = at_once(
        &w,
        (0..64)
            .map(|i| json!({"request_id": format!("one-meter-{i}"), "meter": meter, "token": {"type": "credit", "amount": "2.5"}}))
            .collect(),
    )
    .await;
    for (a, b) in answers.iter().zip(&again) {
        assert_eq!(b.status, StatusCode::OK, "{}", b.body);
        assert_eq!(b.body["reprint"], true);
        assert_eq!(a.body["tokens"], b.body["tokens"]);
    }
}

async fn a_refused_vend_does_not_fail_the_others_in_its_batch(engine: Engine) {
    let w = world(engine).await;
    let good = pan(20);
    w.register(w.meter_body(&good)).await;
    // KRN 9: a key the security module does not hold, so it refuses the token.
    let no_key = pan(21);
    let mut body = w.meter_body(&no_key);
    body["krn"] = json!("9");
    w.register(body).await;
    let suspended = pan(22);
    let mut body = w.meter_body(&suspended);
    body["status"] = json!("suspended");
    w.register(body).await;
    let unknown = pan(23);
    let mut bodies = Vec::new();
    for i in 0..48 {
        let meter = match i % 6 {
            1 => &no_key,
            3 => &suspended,
            5 => &unknown,
            _ => &good,
        };
        bodies.push(json!({"request_id": format!("mixed-{i}"), "meter": meter, "token": {"type": "credit", "amount": "1"}}));
    }
    let answers = at_once(&w, bodies).await;
    let mut tids = Vec::new();
    for (i, a) in answers.iter().enumerate() {
        let expected = match i % 6 {
            1 => StatusCode::UNPROCESSABLE_ENTITY,
            3 => StatusCode::CONFLICT,
            5 => StatusCode::NOT_FOUND,
            _ => StatusCode::CREATED,
        };
        assert_eq!(a.status, expected, "vend {i}: {}", a.body);
        if expected == StatusCode::CREATED {
            tids.push(a.body["tid"].as_u64().unwrap());
        }
    }
    tids.sort_unstable();
    assert_eq!(tids.len(), 24);
    for pair in tids.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "TIDs {tids:?}");
    }
    // Nothing is recorded for the refused ones; a retry of one is refused again, not reprinted.
    for p in [&no_key, &suspended] {
        let list = w.get(&format!("/v1/meters/{p}/vends"), &w.auditor).await;
        assert_eq!(list.body["vends"].as_array().unwrap().len(), 0, "{p}");
    }
    let retry = w
        .vend(
            &w.vendor,
            "mixed-1",
            &no_key,
            json!({"type": "credit", "amount": "1"}),
        )
        .await;
    assert_eq!(
        retry.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        retry.body
    );
    let good_list = w
        .get(&format!("/v1/meters/{good}/vends?limit=100"), &w.auditor)
        .await;
    assert_eq!(good_list.body["vends"].as_array().unwrap().len(), 24);
}

async fn one_request_id_twice_in_a_batch_is_issued_once(engine: Engine) {
    let w = world(engine).await;
    let meter = pan(30);
    w.register(w.meter_body(&meter)).await;
    // The same ID 16 times with one content and 16 times with another, among other vends.
    let mut bodies = Vec::new();
    for i in 0..48 {
        bodies.push(match i % 3 {
            0 => json!({"request_id": "twice", "meter": meter, "token": {"type": "credit", "amount": "3"}}),
            1 => json!({"request_id": "twice", "meter": meter, "token": {"type": "credit", "amount": "4"}}),
            _ => json!({"request_id": format!("other-{i}"), "meter": meter, "token": {"type": "credit", "amount": "1"}}),
        });
    }
    let answers = at_once(&w, bodies).await;
    let stored = w.get("/v1/vends/twice", &w.auditor).await.body;
    let winner = stored["request"].clone();
    let mut created = 0;
    for (i, a) in answers.iter().enumerate() {
        if i % 3 == 2 {
            assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
            continue;
        }
        if a.status == StatusCode::CONFLICT {
            assert_eq!(a.body["code"], "request_id_reused", "{}", a.body);
            continue;
        }
        assert!(
            a.status == StatusCode::CREATED || a.status == StatusCode::OK,
            "{}",
            a.body
        );
        created += usize::from(a.status == StatusCode::CREATED);
        assert_eq!(a.body["request"], winner);
        assert_eq!(a.body["tokens"], stored["tokens"]);
    }
    assert_eq!(created, 1, "issued once");
    let list = w
        .get(&format!("/v1/meters/{meter}/vends?limit=100"), &w.auditor)
        .await;
    assert_eq!(list.body["vends"].as_array().unwrap().len(), 17);
}

on_both_engines!(
    concurrent_vends_to_one_meter_share_commits_and_get_successive_tids,
    a_refused_vend_does_not_fail_the_others_in_its_batch,
    one_request_id_twice_in_a_batch_is_issued_once,
);
