//! Meters: register, look up, list, update; field-level errors; roles.

#![allow(clippy::unwrap_used, clippy::panic)]

#[path = "support/world.rs"]
mod support;

use axum::http::{Method, StatusCode};
use serde_json::json;
use support::{Engine, PAN, pan, world};

async fn register_look_up_list_and_update(engine: Engine) {
    let w = world(engine).await;
    let a = w.post("/v1/meters", &w.admin, w.meter_body(PAN)).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert_eq!(a.body["pan"], PAN);
    assert_eq!(a.body["drn"], "00000000000");
    assert_eq!(a.body["ken"], "255");
    assert_eq!(a.body["utility"], "electricity");
    assert_eq!(a.body["status"], "active");
    assert_eq!(a.body["pending_key_change"], serde_json::Value::Null);

    // By PAN and by DRN; every role may read.
    for key in [&w.admin, &w.vendor, &w.engineer, &w.auditor] {
        let got = w.get(&format!("/v1/meters/{PAN}"), key).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.body["sgc"], w.sgc.to_string());
    }
    let by_drn = w.get("/v1/meters/00000000000", &w.auditor).await;
    assert_eq!(by_drn.body["pan"], PAN);

    // A DRN registers too; the list is in PAN order and pages with `after`.
    let mut body = w.meter_body("");
    body.as_object_mut().unwrap().remove("pan");
    body["drn"] = json!("00000000042");
    w.register(body).await;
    w.register(w.meter_body(&pan(7))).await;
    let list = w.get("/v1/meters?limit=2", &w.vendor).await;
    let pans: Vec<_> = list.body["meters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["pan"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(pans, vec![PAN.to_owned(), pan(7)]);
    let rest = w
        .get(&format!("/v1/meters?after={}", pan(7)), &w.vendor)
        .await;
    assert_eq!(rest.body["meters"][0]["pan"], pan(42));
    assert_eq!(rest.body["meters"].as_array().unwrap().len(), 1);

    // Update: utility and status change at once; a new KRN makes a key change pending.
    let path = format!("/v1/meters/{PAN}");
    let up = w
        .call(
            Method::PATCH,
            &path,
            Some(&w.admin),
            Some(json!({"utility": "water", "krn": "3"})),
        )
        .await;
    assert_eq!(up.status, StatusCode::OK, "{}", up.body);
    assert_eq!(up.body["utility"], "water");
    assert_eq!(up.body["krn"], "3");
    assert_eq!(up.body["pending_key_change"]["from"]["krn"], "2");
    assert_eq!(up.body["pending_key_change"]["to"]["krn"], "3");
    // The meter already has the key: no key change.
    let up = w
        .call(
            Method::PATCH,
            &path,
            Some(&w.admin),
            Some(json!({"apply_without_key_change": true})),
        )
        .await;
    assert_eq!(up.body["pending_key_change"], serde_json::Value::Null);
    assert_eq!(w.get(&path, &w.admin).await.body["krn"], "3");
}

async fn bad_identifiers_are_refused_field_by_field(engine: Engine) {
    let w = world(engine).await;
    let a = w
        .post(
            "/v1/meters",
            &w.admin,
            json!({"pan": "600727000000000008", "sgc": "12345", "ti": "1x", "krn": "0",
                   "kt": "7", "ea": "08", "dkga": "05", "base_date": "2000", "ken": "256",
                   "utility": "steam", "colour": "red"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.body["code"], "invalid");
    let fields = a.body["fields"].as_object().unwrap();
    assert_eq!(
        fields["pan"], "check digit is 8, the digits before it call for 9",
        "{fields:?}"
    );
    for f in [
        "sgc",
        "ti",
        "krn",
        "kt",
        "ea",
        "dkga",
        "base_date",
        "ken",
        "utility",
        "colour",
    ] {
        assert!(fields.contains_key(f), "{f} missing from {fields:?}");
    }
    // Missing fields are named.
    let a = w.post("/v1/meters", &w.admin, json!({"pan": PAN})).await;
    let fields = a.body["fields"].as_object().unwrap();
    assert_eq!(fields["sgc"], "required");
    assert_eq!(fields["base_date"], "required");
    // Not JSON at all.
    let a = w.post("/v1/meters", &w.admin, json!([1, 2])).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.body["fields"]["body"].is_string());
    // A bad PAN in a path.
    let a = w.get("/v1/meters/600727000000000008", &w.admin).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.body["fields"]["pan"].is_string());
    // Bad update fields change nothing.
    w.register(w.meter_body(PAN)).await;
    let path = format!("/v1/meters/{PAN}");
    let a = w
        .call(
            Method::PATCH,
            &path,
            Some(&w.admin),
            Some(json!({"krn": "3", "ti": "100"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(a.body["fields"]["ti"].is_string());
    assert_eq!(w.get(&path, &w.admin).await.body["krn"], "2");
}

async fn duplicates_unknown_meters_and_roles(engine: Engine) {
    let w = world(engine).await;
    w.register(w.meter_body(PAN)).await;
    let again = w.post("/v1/meters", &w.admin, w.meter_body(PAN)).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.body["code"], "meter_exists");
    let missing = w.get(&format!("/v1/meters/{}", pan(5)), &w.admin).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let missing = w
        .call(
            Method::PATCH,
            &format!("/v1/meters/{}", pan(5)),
            Some(&w.admin),
            Some(json!({"ti": "02"})),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    for key in [&w.vendor, &w.engineer, &w.auditor] {
        let a = w.post("/v1/meters", key, w.meter_body(&pan(9))).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
        let a = w
            .call(
                Method::PATCH,
                &format!("/v1/meters/{PAN}"),
                Some(key),
                Some(json!({"ti": "02"})),
            )
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
    }
    let anonymous = w.call(Method::GET, "/v1/meters", None, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

on_both_engines!(
    register_look_up_list_and_update,
    bad_identifiers_are_refused_field_by_field,
    duplicates_unknown_meters_and_roles,
);
