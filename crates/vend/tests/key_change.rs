//! Key changes: a changed key record makes the next vend answer with the key change set and
//! then the token under the new key (issue-first), or refuse until an engineer issues the set.

#![allow(clippy::unwrap_used, clippy::panic)]

#[path = "support/world.rs"]
mod support;

use axum::http::{Method, StatusCode};
use serde_json::json;
use sts_core::{Service, Token};
use sts_meter::Applied;
use sts_vend::KeyChangePolicy;
use support::{Engine, PAN, description, enter_all, numbers, sim_meter, world, world_with};

fn is_key_change(applied: &Applied) -> bool {
    !matches!(
        applied,
        Applied::Credit { .. } | Applied::CurrencyCredit { .. }
    )
}

async fn new_revision_key_change_set_first_then_credit_under_the_new_key(engine: Engine) {
    let w = world(engine).await;
    w.register(w.meter_body(PAN)).await;
    let path = format!("/v1/meters/{PAN}");
    let old = description(&w.get(&path, &w.admin).await.body);
    let mut sim = sim_meter(&w, &old).await;
    let first = w
        .vend(
            &w.vendor,
            "v1",
            PAN,
            json!({"type": "credit", "amount": "1"}),
        )
        .await;
    enter_all(&mut sim, &first.body);

    let up = w
        .call(
            Method::PATCH,
            &path,
            Some(&w.admin),
            Some(json!({"krn": "3"})),
        )
        .await;
    assert!(up.body["pending_key_change"].is_object());
    let new = description(&up.body);
    let a = w
        .vend(
            &w.vendor,
            "v2",
            PAN,
            json!({"type": "credit", "amount": "10"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let tokens = numbers(&a.body);
    assert_eq!(tokens.len(), 3, "two key change tokens, then the credit");
    assert_eq!(a.body["key_change"]["tokens"], 2);
    assert_eq!(a.body["key_change"]["to"]["krn"], "3");
    assert_ne!(
        a.body["key_change"]["from_check_value"],
        a.body["key_change"]["to_check_value"]
    );
    assert_eq!(
        a.body["check_value"],
        a.body["key_change"]["to_check_value"]
    );
    // The credit decodes under the new key only.
    assert!(matches!(
        w.decode_for(&new, &tokens[2]).await.unwrap(),
        Token::TransferCredit { .. }
    ));
    assert!(w.decode_for(&old, &tokens[2]).await.is_err());
    // The meter takes the set and then the credit.
    let applied = enter_all(&mut sim, &a.body);
    assert!(applied[..2].iter().all(is_key_change), "{applied:?}");
    match applied[2] {
        Applied::Credit { service, added, .. } => {
            assert_eq!((service, added), (Service::Electricity, 100))
        }
        ref other => panic!("{other:?}"),
    }
    // Nothing pending any more; the next credit is one token.
    assert!(w.get(&path, &w.admin).await.body["pending_key_change"].is_null());
    let b = w
        .vend(
            &w.vendor,
            "v3",
            PAN,
            json!({"type": "credit", "amount": "2"}),
        )
        .await;
    assert_eq!(numbers(&b.body).len(), 1);
    enter_all(&mut sim, &b.body);
    // A reprint of the key change vend is the same three tokens.
    let again = w
        .vend(
            &w.vendor,
            "v2",
            PAN,
            json!({"type": "credit", "amount": "10"}),
        )
        .await;
    assert_eq!(numbers(&again.body), tokens);
}

async fn rollover_from_base_date_1993_to_2014(engine: Engine) {
    let w = world(engine).await;
    let mut body = w.meter_body(PAN);
    body["krn"] = json!("1");
    body["base_date"] = json!("1993");
    w.register(body).await;
    let path = format!("/v1/meters/{PAN}");
    let old = description(&w.get(&path, &w.admin).await.body);
    let mut sim = sim_meter(&w, &old).await;
    // Past the 1993 base date's last TID: the security module refuses credit on the old key.
    let refused = w
        .vend(
            &w.vendor,
            "r0",
            PAN,
            json!({"type": "credit", "amount": "1"}),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );

    w.call(
        Method::PATCH,
        &path,
        Some(&w.admin),
        Some(json!({"krn": "2", "base_date": "2014"})),
    )
    .await;
    let a = w
        .vend(
            &w.vendor,
            "r1",
            PAN,
            json!({"type": "credit", "amount": "25"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert_eq!(a.body["key_change"]["from"]["base_date"], "1993");
    assert_eq!(a.body["key_change"]["to"]["base_date"], "2014");
    let applied = enter_all(&mut sim, &a.body);
    match applied.last().unwrap() {
        Applied::Credit { added, .. } => assert_eq!(*added, 250),
        other => panic!("{other:?}"),
    }
}

async fn refuse_policy_waits_for_an_engineer(engine: Engine) {
    let w = world_with(engine, KeyChangePolicy::Refuse).await;
    w.register(w.meter_body(PAN)).await;
    let path = format!("/v1/meters/{PAN}");
    let old = description(&w.get(&path, &w.admin).await.body);
    let mut sim = sim_meter(&w, &old).await;
    w.call(
        Method::PATCH,
        &path,
        Some(&w.admin),
        Some(json!({"krn": "3", "ti": "05"})),
    )
    .await;
    let a = w
        .vend(
            &w.vendor,
            "q1",
            PAN,
            json!({"type": "credit", "amount": "1"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert_eq!(a.body["code"], "key_change_pending");
    assert!(a.body["error"].as_str().unwrap().contains("key change"));
    // The refused request ID was not used up.
    assert_eq!(
        w.get("/v1/vends/q1", &w.admin).await.status,
        StatusCode::NOT_FOUND
    );

    let kc = w
        .vend(
            &w.engineer,
            "e1",
            PAN,
            json!({"type": "key_change", "include_sgc": true}),
        )
        .await;
    assert_eq!(kc.status, StatusCode::CREATED, "{}", kc.body);
    assert_eq!(kc.body["kind"], "key_change");
    assert_eq!(
        numbers(&kc.body).len(),
        3,
        "the 3-token set carrying the SGC"
    );
    assert!(enter_all(&mut sim, &kc.body).iter().all(is_key_change));
    let a = w
        .vend(
            &w.vendor,
            "q1",
            PAN,
            json!({"type": "credit", "amount": "1"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert_eq!(numbers(&a.body).len(), 1);
    assert!(matches!(
        enter_all(&mut sim, &a.body)[0],
        Applied::Credit { added: 10, .. }
    ));
}

on_both_engines!(
    new_revision_key_change_set_first_then_credit_under_the_new_key,
    rollover_from_base_date_1993_to_2014,
    refuse_policy_waits_for_an_engineer,
);
