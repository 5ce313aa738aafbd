//! Concurrency: 64 clients vending to 10 meters through the real router at once; one request
//! ID sent concurrently; every acknowledged vend is in the database and decodes.

#![allow(clippy::unwrap_used, clippy::panic)]

#[path = "support/world.rs"]
mod support;

use std::{
    collections::{BTreeSet, HashMap},
    time::Instant,
};

use axum::http::{Method, StatusCode};
use serde_json::json;
use sts_core::{TokenNumber, decode};
use support::{Engine, call, description, numbers, pan, world};

const CLIENTS: usize = 64;
const METERS: u64 = 10;
const VENDS_PER_CLIENT: usize = 5;

async fn sixty_four_clients_ten_meters_no_duplicate_tid_no_lost_vend(engine: Engine) {
    let w = world(engine).await;
    for m in 0..METERS {
        w.register(w.meter_body(&pan(100 + m))).await;
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let router = w.router.clone();
        let key = w.vendor.clone();
        tasks.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0..VENDS_PER_CLIENT {
                let meter = pan(100 + ((client + i) as u64 % METERS));
                let id = format!("client-{client}-{i}");
                let body = json!({"request_id": id, "meter": meter, "token": {"type": "credit", "amount": format!("{}.{}", client + 1, i)}});
                let a = call(&router, Method::POST, "/v1/vends", Some(&key), Some(body)).await;
                assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
                acknowledged.push((id, meter, a.body));
            }
            acknowledged
        }));
    }
    let mut acknowledged = Vec::new();
    for t in tasks {
        acknowledged.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    let total = CLIENTS * VENDS_PER_CLIENT;
    assert_eq!(acknowledged.len(), total);
    println!(
        "{total} vends by {CLIENTS} clients in {:.2} s: {:.0} vends/s ({engine:?}, {} build)",
        elapsed.as_secs_f64(),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        total as f64 / elapsed.as_secs_f64()
    );

    // Per meter: TIDs unique, and strictly increasing in the order the vends were recorded.
    let mut by_meter: HashMap<String, Vec<u64>> = HashMap::new();
    let mut ciphers = HashMap::new();
    for m in 0..METERS {
        let p = pan(100 + m);
        let meter = w.get(&format!("/v1/meters/{p}"), &w.admin).await.body;
        ciphers.insert(p.clone(), w.cipher_for(&description(&meter)).await);
        let list = w
            .get(&format!("/v1/meters/{p}/vends?limit=1000"), &w.auditor)
            .await;
        let mut tids: Vec<u64> = list.body["vends"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["tid"].as_u64().unwrap())
            .collect();
        tids.reverse();
        for pair in tids.windows(2) {
            assert!(pair[0] < pair[1], "meter {p}: TIDs {tids:?}");
        }
        assert_eq!(meter["last_tid"].as_u64(), tids.last().copied());
        by_meter.insert(p, tids);
    }
    assert_eq!(
        by_meter.values().map(Vec::len).sum::<usize>(),
        total,
        "no lost or extra vend"
    );

    // Every acknowledged vend is stored as answered, and its token decodes for its meter.
    let mut seen = BTreeSet::new();
    for (id, meter, body) in &acknowledged {
        let stored = w.get(&format!("/v1/vends/{id}"), &w.auditor).await;
        assert_eq!(numbers(&stored.body), numbers(body));
        let number: TokenNumber = numbers(body)[0].parse().unwrap();
        assert!(seen.insert(number), "duplicate token");
        let token = decode(number, Some(&ciphers[meter])).unwrap().token;
        assert_eq!(
            u64::from(token.tid().unwrap().get()),
            body["tid"].as_u64().unwrap()
        );
    }
}

async fn one_request_id_sent_concurrently_issues_one_token(engine: Engine) {
    let w = world(engine).await;
    w.register(w.meter_body(&pan(1))).await;
    w.register(w.meter_body(&pan(2))).await;
    let mut tasks = Vec::new();
    for i in 0..32 {
        let router = w.router.clone();
        let key = w.vendor.clone();
        // Half the copies name the meter by DRN: the same request all the same.
        let meter = if i % 2 == 0 {
            pan(1)
        } else {
            "00000000001".to_owned()
        };
        tasks.push(tokio::spawn(async move {
            let body = json!({"request_id": "same", "meter": meter, "token": {"type": "credit", "amount": "7"}});
            call(&router, Method::POST, "/v1/vends", Some(&key), Some(body)).await
        }));
    }
    // Meanwhile the same ID with other content, to another meter.
    let mut others = Vec::new();
    for _ in 0..8 {
        let router = w.router.clone();
        let key = w.vendor.clone();
        others.push(tokio::spawn(async move {
            let body = json!({"request_id": "same", "meter": pan(2), "token": {"type": "credit", "amount": "7"}});
            call(&router, Method::POST, "/v1/vends", Some(&key), Some(body)).await
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    let mut other_answers = Vec::new();
    for t in others {
        other_answers.push(t.await.unwrap());
    }
    let stored = w.get("/v1/vends/same", &w.auditor).await.body;
    let winner = stored["meter"].as_str().unwrap().to_owned();
    let (same, different) = if winner == pan(1) {
        (&answers, &other_answers)
    } else {
        (&other_answers, &answers)
    };
    let created = same
        .iter()
        .filter(|a| a.status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "exactly one issue");
    for a in same {
        assert!(
            a.status == StatusCode::OK || a.status == StatusCode::CREATED,
            "{}",
            a.body
        );
        assert_eq!(numbers(&a.body), numbers(&stored));
    }
    for a in different {
        assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);
    }
    let mut total = 0;
    for p in [pan(1), pan(2)] {
        let list = w.get(&format!("/v1/meters/{p}/vends"), &w.auditor).await;
        total += list.body["vends"].as_array().unwrap().len();
    }
    assert_eq!(total, 1, "one vend recorded");
}

/// Two server processes (two pools, two security modules) on one database: TIDs stay unique
/// and increasing per meter, and every vend is issued. Each security module knows only its
/// own TIDs; the service gives it the database's last TID for the meter as a floor
/// (`issue_many_after`), read under the meter's lock. Were a TID ever not after the recorded
/// one, the vend would be refused (503 `tid_conflict`) with nothing recorded.
async fn two_servers_on_one_database_never_duplicate_a_tid(engine: Engine) {
    let w = world(engine).await;
    let (_second, router2) = w.second_server("SM-VEND-2").await;
    for m in 0..4 {
        w.register(w.meter_body(&pan(200 + m))).await;
    }
    let mut tasks = Vec::new();
    for client in 0..32_usize {
        let router = if client % 2 == 0 {
            w.router.clone()
        } else {
            router2.clone()
        };
        let key = w.vendor.clone();
        tasks.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for i in 0..4 {
                let id = format!("two-{client}-{i}");
                let body = json!({"request_id": id, "meter": pan(200 + (client as u64 + i) % 4), "token": {"type": "credit", "amount": "1"}});
                answers.push((id, call(&router, Method::POST, "/v1/vends", Some(&key), Some(body)).await));
            }
            answers
        }));
    }
    let mut issued = 0;
    let mut conflicts = 0;
    for t in tasks {
        for (id, a) in t.await.unwrap() {
            match a.status {
                StatusCode::CREATED => issued += 1,
                StatusCode::SERVICE_UNAVAILABLE => {
                    assert_eq!(a.body["code"], "tid_conflict");
                    assert_eq!(
                        w.get(&format!("/v1/vends/{id}"), &w.admin).await.status,
                        StatusCode::NOT_FOUND
                    );
                    conflicts += 1;
                }
                other => panic!("{other}: {}", a.body),
            }
        }
    }
    println!("two servers: {issued} issued, {conflicts} refused as TID conflicts ({engine:?})");
    assert_eq!(conflicts, 0, "the TID floor leaves no conflict");
    assert_eq!(issued, 32 * 4, "every vend issued");
    let mut recorded = 0;
    for m in 0..4 {
        let list = w
            .get(
                &format!("/v1/meters/{}/vends?limit=1000", pan(200 + m)),
                &w.auditor,
            )
            .await;
        let mut tids: Vec<u64> = list.body["vends"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["tid"].as_u64().unwrap())
            .collect();
        tids.reverse();
        for pair in tids.windows(2) {
            assert!(pair[0] < pair[1], "TIDs {tids:?}");
        }
        recorded += tids.len();
    }
    assert_eq!(recorded, issued);
}

/// A restart: every acknowledged vend is in the database, and a retry of its request ID on
/// the new server (a new pool, the security module store opened again) returns the same
/// tokens; new vends continue after the old TIDs.
async fn after_a_restart_every_acknowledged_vend_is_reprinted(engine: Engine) {
    let w = world(engine).await;
    for m in 0..3 {
        w.register(w.meter_body(&pan(300 + m))).await;
    }
    let mut tasks = Vec::new();
    for client in 0..16_u64 {
        let router = w.router.clone();
        let key = w.vendor.clone();
        tasks.push(tokio::spawn(async move {
            let body = json!({"request_id": format!("r-{client}"), "meter": pan(300 + client % 3), "token": {"type": "credit", "amount": "2.5"}});
            let a = call(&router, Method::POST, "/v1/vends", Some(&key), Some(body.clone())).await;
            assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
            (body, a.body)
        }));
    }
    let mut acknowledged = Vec::new();
    for t in tasks {
        acknowledged.push(t.await.unwrap());
    }
    // The old server is gone: its pool closed.
    w.state.db().close().await;
    let (_state, router) = w.restarted_server().await;
    for (body, first) in &acknowledged {
        let a = call(
            &router,
            Method::POST,
            "/v1/vends",
            Some(&w.vendor),
            Some(body.clone()),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        assert_eq!(a.body["reprint"], true);
        assert_eq!(numbers(&a.body), numbers(first));
        assert_eq!(a.body["security_module"], "SM-VEND-1");
    }
    // New vends go on after the old TIDs.
    let body = json!({"request_id": "after", "meter": pan(300), "token": {"type": "credit", "amount": "1"}});
    let a = call(
        &router,
        Method::POST,
        "/v1/vends",
        Some(&w.vendor),
        Some(body),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let last = acknowledged
        .iter()
        .filter(|(b, _)| b["meter"] == pan(300))
        .map(|(_, v)| v["tid"].as_u64().unwrap())
        .max()
        .unwrap();
    assert!(a.body["tid"].as_u64().unwrap() > last);
}

on_both_engines!(
    sixty_four_clients_ten_meters_no_duplicate_tid_no_lost_vend,
    one_request_id_sent_concurrently_issues_one_token,
    two_servers_on_one_database_never_duplicate_a_tid,
    after_a_restart_every_acknowledged_vend_is_reprinted,
);
