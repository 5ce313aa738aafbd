//! Vending: every token type through the security module, decoded under a decoder key derived
//! independently and accepted by a simulated meter; reprints by request ID; roles; refusals.

#![allow(clippy::unwrap_used, clippy::panic)]

#[path = "support/world.rs"]
mod support;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use sts_core::{BaseDate, CurrencyAmount, Service, Token, TokenIdentifier};
use sts_meter::Applied;
use support::{Engine, PAN, description, enter_all, minute, numbers, pan, sim_meter, world};

async fn every_token_type_decodes_and_the_meter_accepts_credit(engine: Engine) {
    let w = world(engine).await;
    w.register(w.meter_body(PAN)).await;
    let meter = w.get(&format!("/v1/meters/{PAN}"), &w.admin).await.body;
    let desc = description(&meter);
    let mut sim = sim_meter(&w, &desc).await;

    let credits = [
        (
            "c1",
            json!({"type": "credit", "amount": "12.5"}),
            Service::Electricity,
            125,
        ),
        (
            "c2",
            json!({"type": "credit", "service": "water", "amount": "3"}),
            Service::Water,
            30,
        ),
        (
            "c3",
            json!({"type": "credit", "service": "gas", "amount": "0.1"}),
            Service::Gas,
            1,
        ),
        (
            "c4",
            json!({"type": "credit", "service": "time", "amount": "60"}),
            Service::Time,
            600,
        ),
    ];
    let mut tids = Vec::new();
    for (id, token, service, tenths) in credits {
        let a = w.vend(&w.vendor, id, PAN, token).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
        assert_eq!(a.body["reprint"], false);
        assert_eq!(a.body["security_module"], "SM-VEND-1");
        assert_eq!(a.body["check_value"].as_str().unwrap().len(), 6);
        let n = numbers(&a.body);
        assert_eq!(n.len(), 1);
        match w.decode_for(&desc, &n[0]).await.unwrap() {
            Token::TransferCredit {
                service: s,
                amount,
                tid,
                ..
            } => {
                assert_eq!((s, amount.value()), (service, tenths));
                assert_eq!(a.body["tid"], tid.get());
                tids.push(tid.get());
            }
            other => panic!("{other:?}"),
        }
        match enter_all(&mut sim, &a.body)[0] {
            Applied::Credit {
                service: s, added, ..
            } => assert_eq!((s, added), (service, u64::from(tenths))),
            ref other => panic!("{other:?}"),
        }
    }
    let cur = w
        .vend(
            &w.vendor,
            "c5",
            PAN,
            json!({"type": "currency", "amount": "25.50"}),
        )
        .await;
    assert_eq!(cur.status, StatusCode::CREATED, "{}", cur.body);
    match w.decode_for(&desc, &numbers(&cur.body)[0]).await.unwrap() {
        Token::CurrencyCredit { amount, tid, .. } => {
            assert_eq!(amount, CurrencyAmount::parse("25.50").unwrap());
            tids.push(tid.get());
        }
        other => panic!("{other:?}"),
    }
    enter_all(&mut sim, &cur.body);

    // Management tokens, by an engineer.
    let management = [
        json!({"type": "max_power", "watts": 5000}),
        json!({"type": "clear_tamper"}),
        json!({"type": "clear_credit", "register": "all"}),
        json!({"type": "tariff_rate", "rate": 42}),
        json!({"type": "water_factor", "factor": 7}),
        json!({"type": "phase_unbalance", "watts": 300}),
    ];
    for (i, token) in management.into_iter().enumerate() {
        let kind = token["type"].as_str().unwrap().to_owned();
        let a = w.vend(&w.engineer, &format!("m{i}"), PAN, token).await;
        assert_eq!(a.status, StatusCode::CREATED, "{kind}: {}", a.body);
        assert_eq!(a.body["kind"], "management");
        let decoded = w.decode_for(&desc, &numbers(&a.body)[0]).await.unwrap();
        tids.push(decoded.tid().unwrap().get());
        if kind == "max_power" || kind == "clear_tamper" || kind == "clear_credit" {
            enter_all(&mut sim, &a.body);
        }
    }

    // All in one minute of the SM's clock: successive TIDs from that minute's TID.
    let first = TokenIdentifier::issue(minute("2026-06-01 12:00"), BaseDate::Y2014).unwrap();
    assert_eq!(tids[0], first.get());
    for pair in tids.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "{tids:?}");
    }
    // The meter keeps the last TID.
    let meter = w.get(&format!("/v1/meters/{PAN}"), &w.admin).await.body;
    assert_eq!(meter["last_tid"], *tids.last().unwrap());
}

async fn a_request_id_gives_one_result_forever(engine: Engine) {
    let w = world(engine).await;
    w.register(w.meter_body(PAN)).await;
    w.register(w.meter_body(&pan(3))).await;
    let token = json!({"type": "credit", "amount": "12.5"});
    let first = w.vend(&w.vendor, "pos-1/0001", PAN, token.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED);
    // Repeated (the network lost the answer): the very same tokens, marked as a reprint.
    let again = w.vend(&w.vendor, "pos-1/0001", PAN, token).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["reprint"], true);
    assert_eq!(numbers(&again.body), numbers(&first.body));
    assert_eq!(again.body["tid"], first.body["tid"]);
    // The same content written differently is the same request.
    let same = w
        .vend(
            &w.admin,
            "pos-1/0001",
            "00000000000",
            json!({"type": "credit", "amount": "12.50", "service": "electricity"}),
        )
        .await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.body);
    assert_eq!(numbers(&same.body), numbers(&first.body));
    // Different content under the same ID is refused, for any difference.
    for (meter, token) in [
        (PAN.to_owned(), json!({"type": "credit", "amount": "12.6"})),
        (
            PAN.to_owned(),
            json!({"type": "credit", "amount": "12.5", "service": "water"}),
        ),
        (pan(3), json!({"type": "credit", "amount": "12.5"})),
    ] {
        let a = w.vend(&w.vendor, "pos-1/0001", &meter, token).await;
        assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);
        assert_eq!(a.body["code"], "request_id_reused");
    }
    // Fetched by request ID and listed by meter.
    let fetched = w.get("/v1/vends/pos-1%2F0001", &w.auditor).await;
    assert_eq!(fetched.status, StatusCode::OK, "{}", fetched.body);
    assert_eq!(numbers(&fetched.body), numbers(&first.body));
    assert_eq!(fetched.body["amount"]["units"], "12.5");
    let second = w
        .vend(
            &w.vendor,
            "pos-1/0002",
            PAN,
            json!({"type": "credit", "amount": "1"}),
        )
        .await;
    let list = w.get(&format!("/v1/meters/{PAN}/vends"), &w.auditor).await;
    let vends = list.body["vends"].as_array().unwrap();
    assert_eq!(vends.len(), 2);
    assert_eq!(numbers(&vends[0]), numbers(&second.body));
    assert_eq!(numbers(&vends[1]), numbers(&first.body));
    let older = w
        .get(
            &format!("/v1/meters/{PAN}/vends?before={}", vends[0]["sequence"]),
            &w.auditor,
        )
        .await;
    assert_eq!(older.body["vends"].as_array().unwrap().len(), 1);
    assert_eq!(
        w.get("/v1/vends/nope", &w.auditor).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        w.get(&format!("/v1/meters/{}/vends", pan(3)), &w.auditor)
            .await
            .body["vends"],
        json!([])
    );
}

async fn roles_refusals_and_bad_requests_issue_nothing(engine: Engine) {
    let w = world(engine).await;
    w.register(w.meter_body(PAN)).await;
    let credit = json!({"type": "credit", "amount": "5"});
    let forbidden = [
        (&w.engineer, credit.clone()),
        (&w.auditor, credit.clone()),
        (&w.vendor, json!({"type": "max_power", "watts": 1000})),
        (&w.vendor, json!({"type": "key_change"})),
        (&w.auditor, json!({"type": "clear_tamper"})),
    ];
    for (i, (key, token)) in forbidden.into_iter().enumerate() {
        let a = w.vend(key, &format!("f{i}"), PAN, token).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    }
    let bad: [(Value, &str); 9] = [
        (json!({"type": "credit"}), "token.amount"),
        (json!({"type": "credit", "amount": "1.25"}), "token.amount"),
        (json!({"type": "credit", "amount": "-1"}), "token.amount"),
        (json!({"type": "credit", "amount": "0"}), "token.amount"),
        (
            json!({"type": "credit", "amount": "1", "service": "steam"}),
            "token.service",
        ),
        (
            json!({"type": "credit", "amount": "1", "extra": 1}),
            "token.extra",
        ),
        (json!({"type": "gift"}), "token.type"),
        (json!({"type": "currency", "amount": "-3"}), "token.amount"),
        (
            json!({"type": "clear_credit", "register": 9}),
            "token.register",
        ),
    ];
    for (i, (token, field)) in bad.into_iter().enumerate() {
        let a = w.vend(&w.admin, &format!("b{i}"), PAN, token).await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
        assert!(a.body["fields"][field].is_string(), "{field}: {}", a.body);
    }
    let a = w.vend(&w.admin, "", PAN, credit.clone()).await;
    assert!(a.body["fields"]["request_id"].is_string());
    let a = w
        .vend(&w.admin, "x", "600727000000000008", credit.clone())
        .await;
    assert!(a.body["fields"]["meter"].is_string(), "{}", a.body);
    let a = w.vend(&w.admin, "x", &pan(77), credit.clone()).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);

    // A suspended meter gets nothing.
    let path = format!("/v1/meters/{PAN}");
    w.call(
        Method::PATCH,
        &path,
        Some(&w.admin),
        Some(json!({"status": "suspended"})),
    )
    .await;
    let a = w.vend(&w.vendor, "s1", PAN, credit.clone()).await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert_eq!(a.body["code"], "meter_not_active");
    w.call(
        Method::PATCH,
        &path,
        Some(&w.admin),
        Some(json!({"status": "active"})),
    )
    .await;

    // The security module refuses a meter whose key it does not hold: a clear 422.
    let mut body = w.meter_body(&pan(8));
    body["krn"] = json!("9");
    w.register(body).await;
    let a = w.vend(&w.vendor, "k1", &pan(8), credit.clone()).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    assert_eq!(a.body["code"], "refused");
    assert!(
        a.body["error"].as_str().unwrap().contains("no VUDK"),
        "{}",
        a.body
    );

    // None of these left a vend behind.
    for id in ["f0", "b0", "x", "s1", "k1"] {
        assert_eq!(
            w.get(&format!("/v1/vends/{id}"), &w.admin).await.status,
            StatusCode::NOT_FOUND
        );
    }
    // A DKGA04 / MISTY1 meter works the same way.
    let body = json!({"pan": pan(11), "sgc": w.sgc04.to_string(), "ti": "07", "krn": "1", "kt": "2",
                      "ea": "11", "dkga": "04", "base_date": "2014", "utility": "gas"});
    w.register(body).await;
    let a = w.vend(&w.vendor, "misty", &pan(11), credit).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let desc = description(
        &w.get(&format!("/v1/meters/{}", pan(11)), &w.admin)
            .await
            .body,
    );
    let mut sim = sim_meter(&w, &desc).await;
    match enter_all(&mut sim, &a.body)[0] {
        Applied::Credit { service, added, .. } => assert_eq!((service, added), (Service::Gas, 50)),
        ref other => panic!("{other:?}"),
    }
}

on_both_engines!(
    every_token_type_decodes_and_the_meter_accepts_credit,
    a_request_id_gives_one_result_forever,
    roles_refusals_and_bad_requests_issue_nothing,
);
