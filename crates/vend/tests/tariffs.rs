//! Tariffs and money vends: versions by effective time, exact arithmetic, refusals that issue
//! nothing, and the monthly free allowance - once per meter and month, also under concurrency
//! and through the group-commit batch, the same two tokens on a reprint.

#![allow(clippy::unwrap_used, clippy::panic)]

#[path = "support/world.rs"]
mod support;

use std::collections::HashSet;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use sts_core::{MeterDescription, Service, Token};
use support::{Answer, Engine, World, call, description, minute, numbers, pan, sim_meter, world};

async fn tariff(w: &World, body: Value) -> Answer {
    w.post("/v1/tariffs", &w.admin, body).await
}

async fn created_tariff(w: &World, body: Value) -> Value {
    let a = tariff(w, body).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    a.body
}

fn money(amount: &str) -> Value {
    json!({"type": "money", "amount": amount})
}

/// The units (tenths) and service of every token of a vend answer, decoded for the meter;
/// each token's TID must be the one the answer states.
async fn decoded(w: &World, d: &MeterDescription, vend: &Value) -> Vec<(Service, u32)> {
    let mut out = Vec::new();
    for (i, number) in numbers(vend).iter().enumerate() {
        match w.decode_for(d, number).await.unwrap() {
            Token::TransferCredit {
                service,
                amount,
                tid,
                ..
            } => {
                assert_eq!(vend["tokens"][i]["tid"], tid.get(), "{vend}");
                out.push((service, amount.value()));
            }
            other => panic!("not a credit token: {other:?}"),
        }
    }
    out
}

async fn meter_description(w: &World, meter: &str) -> MeterDescription {
    description(&w.get(&format!("/v1/meters/{meter}"), &w.admin).await.body)
}

async fn a_sale_uses_the_version_in_force_at_its_time(engine: Engine) {
    let w = world(engine).await;
    let meter = pan(1);
    w.register(w.meter_body(&meter)).await;
    let d = meter_description(&w, &meter).await;
    let v1 = created_tariff(
        &w,
        json!({"utility": "electricity", "ti": "01", "currency": "ZAR", "price": "2.4536"}),
    )
    .await;
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["effective_from"], "2026-06-01T12:00:00Z", "default: now");
    assert_eq!(v1["in_force"], true);
    assert_eq!(v1["unit"], "kWh");
    let v2 = created_tariff(
        &w,
        json!({"utility": "electricity", "ti": "01", "currency": "ZAR", "price": "3.00",
               "effective_from": "2026-06-15T00:00:00Z"}),
    )
    .await;
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["in_force"], false);
    // Another TI's tariff plays no part.
    created_tariff(
        &w,
        json!({"utility": "electricity", "ti": "02", "currency": "ZAR", "price": "0.50"}),
    )
    .await;

    let mut sim = sim_meter(&w, &d).await;
    let mut sell =
        async |id: &str, at: &str, price: &str, version: i64, units: &str, tenths: u32| {
            w.clock.set(minute(at));
            let a = w.vend(&w.vendor, id, &meter, money("100.00")).await;
            assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
            let b = &a.body;
            assert_eq!(b["tariff"]["version"], version, "{b}");
            assert_eq!(b["tariff"]["price"], price);
            assert_eq!(b["tariff"]["ti"], "01");
            assert_eq!(b["money"]["paid"], "100.00");
            assert_eq!(b["money"]["units"], units);
            assert_eq!(b["amount"]["units"], units);
            assert_eq!(b["key"]["ti"], "01");
            assert_eq!(b["key"]["krn"], "2");
            assert_eq!(b["key"]["sgc"], w.sgc.to_string());
            assert_eq!(
                decoded(&w, &d, b).await,
                [(Service::Electricity, tenths)],
                "{b}"
            );
            support::enter_all(&mut sim, b);
            a.body
        };
    let first = sell("v-1", "2026-06-01 12:00", "2.4536", 1, "40.7", 407).await;
    assert_eq!(first["money"]["cost"], "99.86152");
    assert_eq!(first["money"]["change"], "0.13848");
    assert_eq!(first["tariff"]["id"], v1["id"]);
    assert_eq!(first["tariff"]["effective_from"], "2026-06-01T12:00:00Z");
    // The last minute before version 2, then its first.
    sell("v-2", "2026-06-14 23:59", "2.4536", 1, "40.7", 407).await;
    let third = sell("v-3", "2026-06-15 00:00", "3.00", 2, "33.3", 333).await;
    assert_eq!(third["money"]["cost"], "99.90");
    assert_eq!(third["money"]["change"], "0.10");
    assert_eq!(third["tariff"]["id"], v2["id"]);

    // The list says which version is in force now.
    let list = w
        .get("/v1/tariffs?utility=electricity&ti=01", &w.auditor)
        .await;
    assert_eq!(list.status, StatusCode::OK);
    let versions = list.body["tariffs"].as_array().unwrap();
    let flags: Vec<(i64, bool)> = versions
        .iter()
        .map(|t| {
            (
                t["version"].as_i64().unwrap(),
                t["in_force"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(flags, [(1, false), (2, true)]);
    let one = w.get(&format!("/v1/tariffs/{}", v1["id"]), &w.vendor).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.body["price"], "2.4536");
    assert_eq!(
        w.get("/v1/tariffs/999", &w.vendor).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        w.get("/v1/tariffs/x", &w.vendor).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

async fn money_is_exact_and_bad_amounts_are_refused(engine: Engine) {
    let w = world(engine).await;
    let meter = pan(2);
    w.register(w.meter_body(&meter)).await;
    let d = meter_description(&w, &meter).await;
    // A meter on TI 05, where a unit costs 1.00: 5000 kWh is beyond 1638.3, where the token
    // counts in whole kWh.
    let big = pan(3);
    let mut body = w.meter_body(&big);
    body["ti"] = json!("05");
    w.register(body).await;
    let d_big = meter_description(&w, &big).await;
    created_tariff(
        &w,
        json!({"utility": "electricity", "ti": "01", "currency": "ZAR", "price": "2.4536"}),
    )
    .await;
    created_tariff(
        &w,
        json!({"utility": "electricity", "ti": "05", "currency": "ZAR", "price": "1"}),
    )
    .await;
    let audit_before = w.get("/v1/audit?limit=1000", &w.admin).await.body["audit"]
        .as_array()
        .unwrap()
        .len();

    for (id, token, field, words) in [
        (
            "bad-1",
            money("0.24"),
            "token.amount",
            "buys less than 0.1 kWh at 2.4536 ZAR/kWh; the least is 0.25",
        ),
        ("bad-2", money("-5"), "token.amount", "must not be negative"),
        (
            "bad-3",
            money("1.001"),
            "token.amount",
            "ZAR has 2 decimal places",
        ),
        (
            "bad-4",
            money("1.00001"),
            "token.amount",
            "at most 4 decimal places",
        ),
        (
            "bad-5",
            money("abc"),
            "token.amount",
            "not a decimal number",
        ),
        (
            "bad-6",
            money("0.00"),
            "token.amount",
            "must be more than 0",
        ),
        (
            "bad-7",
            money("1e3"),
            "token.amount",
            "not a decimal number",
        ),
        (
            "bad-8",
            json!({"type": "money", "amount": 100}),
            "token.amount",
            "expected a string",
        ),
        (
            "bad-9",
            json!({"type": "money"}),
            "token.amount",
            "required",
        ),
        (
            "bad-10",
            json!({"type": "money", "amount": "1", "price": "1"}),
            "token.price",
            "unknown field",
        ),
        (
            "bad-11",
            json!({"type": "money", "amount": "1", "service": "steam"}),
            "token.service",
            "one of",
        ),
        (
            "bad-12",
            money("100000000"),
            "token.amount",
            "more than one token carries",
        ),
    ] {
        let a = w.vend(&w.vendor, id, &meter, token).await;
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{id}: {}",
            a.body
        );
        let problem = a.body["fields"][field]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: {}", a.body));
        assert!(problem.contains(words), "{id}: {problem}");
        // Nothing was recorded under the request ID.
        assert_eq!(
            w.get(&format!("/v1/vends/{id}"), &w.admin).await.status,
            StatusCode::NOT_FOUND,
            "{id}"
        );
    }
    let audit_after = w.get("/v1/audit?limit=1000", &w.admin).await.body["audit"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(audit_before, audit_after, "a refusal changes nothing");

    // The least that buys 0.1 kWh.
    let a = w.vend(&w.vendor, "least", &meter, money("0.25")).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert_eq!(a.body["money"]["units"], "0.1");
    assert_eq!(a.body["money"]["cost"], "0.24536");
    assert_eq!(a.body["money"]["change"], "0.00464");
    assert!(
        a.body["money"]["rule"]
            .as_str()
            .unwrap()
            .contains("rounded down")
    );
    assert_eq!(decoded(&w, &d, &a.body).await, [(Service::Electricity, 1)]);

    // Rounded down to the token's encoding: 5000 kWh -> 4999.4 kWh, change 0.60.
    let a = w.vend(&w.vendor, "big", &big, money("5000.00")).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert_eq!(a.body["money"]["units"], "4999.4");
    assert_eq!(a.body["money"]["cost"], "4999.40");
    assert_eq!(a.body["money"]["change"], "0.60");
    assert_eq!(a.body["key"]["ti"], "05");
    assert_eq!(
        decoded(&w, &d_big, &a.body).await,
        [(Service::Electricity, 49_994)]
    );

    // "100" and "100.00" are the same request: a reprint. Another amount is a conflict.
    let a = w.vend(&w.vendor, "same", &meter, money("100.00")).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let b = w.vend(&w.vendor, "same", &meter, money("100")).await;
    assert_eq!(b.status, StatusCode::OK, "{}", b.body);
    assert_eq!(b.body["reprint"], true);
    assert_eq!(numbers(&a.body), numbers(&b.body));
    assert_eq!(b.body["money"], a.body["money"]);
    let c = w.vend(&w.vendor, "same", &meter, money("99")).await;
    assert_eq!(c.status, StatusCode::CONFLICT);
    assert_eq!(c.body["code"], "request_id_reused");
    // Engineers do not sell.
    let e = w
        .vend(&w.engineer, "engineer-sale", &meter, money("10"))
        .await;
    assert_eq!(e.status, StatusCode::FORBIDDEN);
}

async fn without_a_tariff_in_force_money_is_refused(engine: Engine) {
    let w = world(engine).await;
    let meter = pan(4);
    w.register(w.meter_body(&meter)).await;
    let a = w.vend(&w.vendor, "none-1", &meter, money("10")).await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);
    assert_eq!(a.body["code"], "no_tariff");
    let text = a.body["error"].as_str().unwrap();
    assert!(
        text.contains("electricity tariff for TI 01") && text.contains("2026-06-01T12:00:00Z"),
        "{text}"
    );
    // A version that takes effect later is not in force yet.
    created_tariff(
        &w,
        json!({"utility": "electricity", "ti": "01", "currency": "ZAR", "price": "2",
               "effective_from": "2026-06-02 00:00", "allowance": "50"}),
    )
    .await;
    let a = w.vend(&w.vendor, "none-2", &meter, money("10")).await;
    assert_eq!(a.body["code"], "no_tariff", "{}", a.body);
    // Nor is a water tariff for an electricity sale.
    created_tariff(
        &w,
        json!({"utility": "water", "ti": "01", "currency": "ZAR", "price": "2"}),
    )
    .await;
    let a = w.vend(&w.vendor, "none-3", &meter, money("10")).await;
    assert_eq!(a.body["code"], "no_tariff", "{}", a.body);
    // Water bought with money on the same meter uses the water tariff.
    let a = w
        .vend(
            &w.vendor,
            "water",
            &meter,
            json!({"type": "money", "service": "water", "amount": "10"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert_eq!(
        a.body["amount"],
        json!({"service": "water", "units": "5.0"})
    );
    let d = meter_description(&w, &meter).await;
    assert_eq!(decoded(&w, &d, &a.body).await, [(Service::Water, 50)]);
    // Units credit needs no tariff; none is named and no allowance comes with it.
    let a = w
        .vend(
            &w.vendor,
            "units",
            &meter,
            json!({"type": "credit", "amount": "5"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert_eq!(a.body["tariff"], Value::Null);
    assert_eq!(a.body["money"], Value::Null);
    assert_eq!(a.body["allowance"], Value::Null);
    assert_eq!(numbers(&a.body).len(), 1);
}

/// Sends `bodies` to `POST /v1/vends` all at once as the vendor; the answers in order.
async fn at_once(w: &World, bodies: Vec<Value>) -> Vec<Answer> {
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

async fn the_allowance_comes_once_per_meter_and_month(engine: Engine) {
    let w = world(engine).await;
    let meter = pan(5);
    w.register(w.meter_body(&meter)).await;
    let other = pan(6);
    w.register(w.meter_body(&other)).await;
    let d = meter_description(&w, &meter).await;
    let t = created_tariff(
        &w,
        json!({"utility": "electricity", "ti": "01", "currency": "ZAR", "price": "2.00",
               "allowance": "50"}),
    )
    .await;
    assert_eq!(t["allowance"], "50.0");

    // 32 purchases to one meter at once (and 8 to another): one allowance each.
    let mut bodies: Vec<Value> = (0..32)
        .map(
            |i| json!({"request_id": format!("june-{i}"), "meter": meter, "token": money("10.00")}),
        )
        .collect();
    bodies.extend(
        (0..8).map(
            |i| json!({"request_id": format!("other-{i}"), "meter": other, "token": money("1")}),
        ),
    );
    let answers = at_once(&w, bodies).await;
    let mut with_allowance = Vec::new();
    let mut tids = HashSet::new();
    for (i, a) in answers.iter().enumerate().take(32) {
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
        let units = decoded(&w, &d, &a.body).await;
        for t in a.body["tokens"].as_array().unwrap() {
            assert!(
                tids.insert(t["tid"].as_u64().unwrap()),
                "TID twice: {}",
                a.body
            );
        }
        match units.as_slice() {
            [(Service::Electricity, 50)] => assert_eq!(a.body["allowance"], Value::Null),
            [(Service::Electricity, 50), (Service::Electricity, 500)] => {
                assert_eq!(a.body["allowance"]["month"], "2026-06");
                assert_eq!(a.body["allowance"]["units"], "50.0");
                assert_eq!(a.body["allowance"]["tariff_id"], t["id"]);
                assert_eq!(a.body["allowance"]["tid"], a.body["tokens"][1]["tid"]);
                assert!(
                    a.body["tokens"][1]["description"]
                        .as_str()
                        .unwrap()
                        .starts_with("free allowance for 2026-06")
                );
                with_allowance.push(i);
            }
            other => panic!("unexpected tokens {other:?}: {}", a.body),
        }
    }
    assert_eq!(with_allowance.len(), 1, "one allowance for 32 purchases");
    let others_with: usize = answers[32..]
        .iter()
        .map(|a| {
            assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
            numbers(&a.body).len() - 1
        })
        .sum();
    assert_eq!(others_with, 1, "the other meter has its own allowance");
    // All 40 went through the group-commit batch (none fell back to the one-by-one path,
    // where a failed batch would have sent them).
    let metrics = w.get("/metrics", &w.admin).await.body;
    let batched = metrics.as_str().unwrap().lines().find_map(|l| {
        l.strip_prefix("sts_vend_batched_total")?
            .trim()
            .parse::<u64>()
            .ok()
    });
    assert_eq!(batched, Some(40), "{metrics}");

    // A reprint returns the same two tokens and issues no new allowance.
    let lucky = with_allowance[0];
    let again = w
        .vend(&w.vendor, &format!("june-{lucky}"), &meter, money("10"))
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(numbers(&again.body), numbers(&answers[lucky].body));
    assert_eq!(again.body["allowance"], answers[lucky].body["allowance"]);
    let plain = (lucky + 1) % 32;
    let again = w
        .vend(&w.vendor, &format!("june-{plain}"), &meter, money("10"))
        .await;
    assert_eq!(numbers(&again.body), numbers(&answers[plain].body));

    // Entered into the meter (in TID order), every token adds its credit: 32 x 5 + 50 kWh.
    let mut all: Vec<(u64, Value)> = answers[..32]
        .iter()
        .flat_map(|a| a.body["tokens"].as_array().unwrap().clone())
        .map(|t| (t["tid"].as_u64().unwrap(), t))
        .collect();
    all.sort_by_key(|(tid, _)| *tid);
    let mut sim = sim_meter(&w, &d).await;
    let tokens: Vec<Value> = all.into_iter().map(|(_, t)| t).collect();
    let added: u64 = support::enter_all(&mut sim, &json!({"tokens": tokens}))
        .iter()
        .map(|applied| match applied {
            sts_meter::Applied::Credit { added, .. } => *added,
            other => panic!("{other:?}"),
        })
        .sum();
    assert_eq!(added, 32 * 50 + 500);

    // Later in June, units credit: no allowance. In July, the first purchase (units credit
    // counts as a purchase) brings July's; the next does not.
    w.clock.set(minute("2026-06-30 23:59"));
    let a = w
        .vend(
            &w.vendor,
            "june-late",
            &meter,
            json!({"type": "credit", "amount": "1"}),
        )
        .await;
    assert_eq!(
        (a.status, numbers(&a.body).len()),
        (StatusCode::CREATED, 1),
        "{}",
        a.body
    );
    assert_eq!(
        a.body["tariff"]["id"], t["id"],
        "units credit names the tariff in force"
    );
    w.clock.set(minute("2026-07-01 00:00"));
    let a = w
        .vend(
            &w.vendor,
            "july-1",
            &meter,
            json!({"type": "credit", "amount": "1"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert_eq!(a.body["allowance"]["month"], "2026-07");
    assert_eq!(
        decoded(&w, &d, &a.body).await,
        [(Service::Electricity, 10), (Service::Electricity, 500)]
    );
    let a = w.vend(&w.vendor, "july-2", &meter, money("2")).await;
    assert_eq!(a.body["allowance"], Value::Null, "{}", a.body);
    assert_eq!(numbers(&a.body).len(), 1);
    // A currency token is not a purchase of units: it never brings the allowance.
    w.clock.set(minute("2026-08-01 00:00"));
    let a = w
        .vend(
            &w.vendor,
            "aug-currency",
            &meter,
            json!({"type": "currency", "amount": "5"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert_eq!(
        (numbers(&a.body).len(), &a.body["allowance"]),
        (1, &Value::Null)
    );
    let a = w.vend(&w.vendor, "aug-1", &meter, money("2")).await;
    assert_eq!(a.body["allowance"]["month"], "2026-08", "{}", a.body);
}

async fn a_key_change_comes_first_and_the_allowance_follows_under_the_new_key(engine: Engine) {
    let w = world(engine).await;
    let meter = pan(7);
    w.register(w.meter_body(&meter)).await;
    for ti in ["01", "02"] {
        created_tariff(
            &w,
            json!({"utility": "electricity", "ti": ti, "currency": "ZAR",
                   "price": if ti == "01" { "1" } else { "4" }, "allowance": "25.5"}),
        )
        .await;
    }
    // A new KRN and TI: the next vend issues the key change set first; its TI (02) chooses
    // the tariff.
    let a = w
        .call(
            Method::PATCH,
            &format!("/v1/meters/{meter}"),
            Some(&w.admin),
            Some(json!({"krn": "3", "ti": "02"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = w.vend(&w.vendor, "kc-sale", &meter, money("8")).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let tokens = a.body["tokens"].as_array().unwrap();
    assert_eq!(
        tokens.len(),
        4,
        "two key change tokens, the sale, the allowance: {}",
        a.body
    );
    assert_eq!(a.body["key"]["krn"], "3");
    assert_eq!(a.body["key"]["ti"], "02");
    assert_eq!(a.body["tariff"]["ti"], "02");
    assert_eq!(a.body["money"]["units"], "2.0");
    assert_eq!(a.body["allowance"]["units"], "25.5");
    let new = meter_description(&w, &meter).await;
    let credit = json!({"tokens": tokens[2..].to_vec()});
    assert_eq!(
        decoded(&w, &new, &credit).await,
        [(Service::Electricity, 20), (Service::Electricity, 255)]
    );
    // Another key change in the same month (one-by-one path again): no second allowance.
    let a = w
        .call(
            Method::PATCH,
            &format!("/v1/meters/{meter}"),
            Some(&w.admin),
            Some(json!({"krn": "2"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let again = w.vend(&w.vendor, "kc-sale-2", &meter, money("8")).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    assert_eq!(numbers(&again.body).len(), 3, "{}", again.body);
    assert_eq!(again.body["allowance"], Value::Null);
    assert_eq!(again.body["key"]["krn"], "2");
    // The audit entry names the tariff and the allowance, never a token.
    let log = w.get("/v1/audit?limit=1000", &w.auditor).await.body;
    let entry = log["audit"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["request_id"] == "kc-sale")
        .unwrap()
        .clone();
    assert_eq!(entry["action"], "vend.key_change_and_token");
    assert_eq!(entry["details"]["allowance"], "25.5");
    assert_eq!(entry["details"]["money"], "8");
    for t in tokens {
        assert!(!log.to_string().contains(t["number"].as_str().unwrap()));
    }
}

async fn bad_tariffs_are_refused_field_by_field_and_change_nothing(engine: Engine) {
    let w = world(engine).await;
    let good = json!({"utility": "electricity", "ti": "01", "currency": "ZAR", "price": "2.4536",
                      "effective_from": "2026-07-01T00:00:00Z", "allowance": "50"});
    created_tariff(&w, good.clone()).await;
    let with = |field: &str, value: Value| {
        let mut b = good.clone();
        if value.is_null() {
            b.as_object_mut().unwrap().remove(field);
        } else {
            b[field] = value;
        }
        b
    };
    for (body, field, words) in [
        (with("price", json!("-1")), "price", "must not be negative"),
        (with("price", json!("0")), "price", "more than 0"),
        (
            with("price", json!("1.1234567")),
            "price",
            "at most 6 decimal places",
        ),
        (with("price", json!(2.4536)), "price", "may not be exact"),
        (with("price", Value::Null), "price", "required"),
        (
            with("utility", json!("steam")),
            "utility",
            "one of electricity",
        ),
        (with("ti", json!("100")), "ti", "00 to 99"),
        (
            with("currency", json!("zar")),
            "currency",
            "three capital letters",
        ),
        (
            with("currency_decimals", json!(7)),
            "currency_decimals",
            "0 to 4",
        ),
        (
            with("effective_from", json!("2026-13-01")),
            "effective_from",
            "no such date",
        ),
        (
            with("effective_from", json!("July")),
            "effective_from",
            "expected a UTC time",
        ),
        (
            with("effective_from", json!("2026-05-31T00:00:00Z")),
            "effective_from",
            "in the past",
        ),
        (
            with("effective_from", json!("2026-07-01T00:00:00Z")),
            "effective_from",
            "version 1 of electricity TI 01 takes effect at 2026-07-01T00:00:00Z already",
        ),
        (
            with("allowance", json!("50.05")),
            "allowance",
            "at most one decimal place",
        ),
        (
            with("allowance", json!("1700.5")),
            "allowance",
            "1700.4 can",
        ),
        (with("allowance", json!("0")), "allowance", "more than 0"),
        (with("colour", json!("red")), "colour", "unknown field"),
    ] {
        let a = tariff(&w, body.clone()).await;
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            a.body
        );
        let problem = a.body["fields"][field]
            .as_str()
            .unwrap_or_else(|| panic!("{body}: {}", a.body));
        assert!(problem.contains(words), "{field}: {problem}");
    }
    // Several at once, each named.
    let a = tariff(&w, json!({"ti": "x", "price": "abc"})).await;
    let fields: Vec<&str> = a.body["fields"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(fields, ["currency", "price", "ti", "utility"]);
    // Only admins create; every role reads; nobody without a key.
    let a = w.post("/v1/tariffs", &w.vendor, good.clone()).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(
        w.call(Method::GET, "/v1/tariffs", None, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        w.get("/v1/tariffs?utility=steam", &w.auditor).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // Nothing changed: one version, one audit entry.
    let list = w.get("/v1/tariffs", &w.engineer).await.body;
    assert_eq!(list["tariffs"].as_array().unwrap().len(), 1, "{list}");
    let log = w.get("/v1/audit?limit=1000", &w.auditor).await.body;
    let creations: Vec<&Value> = log["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "tariff.create")
        .collect();
    assert_eq!(creations.len(), 1);
    assert_eq!(creations[0]["details"]["price"], "2.4536");
    assert!(
        creations[0]["key_id"].is_string(),
        "made by the admin's key"
    );
}

on_both_engines!(
    a_sale_uses_the_version_in_force_at_its_time,
    money_is_exact_and_bad_amounts_are_refused,
    without_a_tariff_in_force_money_is_refused,
    the_allowance_comes_once_per_meter_and_month,
    a_key_change_comes_first_and_the_allowance_follows_under_the_new_key,
    bad_tariffs_are_refused_field_by_field_and_change_nothing,
);
