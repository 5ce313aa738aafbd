//! The daily sales report: sums per day, vendor and tariff version that add up to the vends
//! made; the CSV export parses back to the same rows; who may read it; bad dates refused.

#![allow(clippy::unwrap_used, clippy::panic)]

#[path = "support/world.rs"]
mod support;

use axum::{
    body::{Body, to_bytes},
    http::{Request, StatusCode, header},
};
use serde_json::{Value, json};
use support::{Engine, World, minute, pan, world};
use tower::ServiceExt;

/// Reads RFC 4180 CSV: quoted fields may hold commas, doubled quotes and line breaks.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(!quoted, "unterminated quote");
    assert!(field.is_empty() && row.is_empty(), "last line without CRLF");
    rows
}

/// `GET path` with the key and extra headers: status, headers, body text.
async fn raw_get(
    w: &World,
    path: &str,
    key: &str,
    accept: Option<&str>,
) -> (StatusCode, header::HeaderMap, String) {
    let mut request = Request::builder()
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {key}"));
    if let Some(accept) = accept {
        request = request.header(header::ACCEPT, accept);
    }
    let response = w
        .router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = to_bytes(response.into_body(), 1 << 24).await.unwrap();
    (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
}

fn money(amount: &str) -> Value {
    json!({"type": "money", "amount": amount})
}

async fn sell(w: &World, key: &str, id: &str, meter: &str, token: Value) {
    let a = w.vend(key, id, meter, token).await;
    assert_eq!(a.status, StatusCode::CREATED, "{id}: {}", a.body);
}

/// The row of (day, vendor, tariff ID) of a JSON report.
fn row<'a>(report: &'a Value, day: &str, vendor: &str, tariff: Value) -> &'a Value {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["day"] == day && r["vendor"] == vendor && r["tariff_id"] == tariff)
        .unwrap_or_else(|| panic!("no row {day} {vendor} {tariff} in {report}"))
}

async fn the_daily_report_adds_up_and_its_csv_parses_back(engine: Engine) {
    let w = world(engine).await;
    let meter = pan(11);
    w.register(w.meter_body(&meter)).await;
    // A second vendor whose name needs quoting in CSV.
    let name = "north, \"shop\" 2";
    let key2 = w
        .post(
            "/v1/api-keys",
            &w.admin,
            json!({"role": "vendor", "name": name}),
        )
        .await;
    assert_eq!(key2.status, StatusCode::CREATED);
    let (id2, key2) = (
        key2.body["id"].as_str().unwrap().to_owned(),
        key2.body["key"].as_str().unwrap().to_owned(),
    );
    let id1 = w.vendor.split('_').nth(1).unwrap().to_owned();
    let v1 = w
        .post(
            "/v1/tariffs",
            &w.admin,
            json!({"utility": "electricity", "ti": "01", "currency": "ZAR", "price": "2.00", "allowance": "10"}),
        )
        .await
        .body;
    let v2 = w
        .post(
            "/v1/tariffs",
            &w.admin,
            json!({"utility": "electricity", "ti": "01", "currency": "ZAR", "price": "4.00",
                   "effective_from": "2026-06-02 12:00"}),
        )
        .await
        .body;

    // 1 June: the first vendor's first sale brings the allowance.
    sell(&w, &w.vendor, "d1-a", &meter, money("10.00")).await;
    sell(&w, &w.vendor, "d1-b", &meter, money("10")).await;
    sell(&w, &key2, "d1-c", &meter, money("4.00")).await;
    sell(
        &w,
        &key2,
        "d1-d",
        &meter,
        json!({"type": "credit", "amount": "3.5"}),
    )
    .await;
    sell(
        &w,
        &w.vendor,
        "d1-e",
        &meter,
        json!({"type": "currency", "amount": "5"}),
    )
    .await;
    // Not a sale: management tokens are not in the report.
    let a = w
        .vend(&w.engineer, "d1-m", &meter, json!({"type": "clear_tamper"}))
        .await;
    assert_eq!(a.status, StatusCode::CREATED);
    // 2 June, before and after version 2 takes effect.
    w.clock.set(minute("2026-06-02 11:59"));
    sell(&w, &w.vendor, "d2-a", &meter, money("1.00")).await;
    w.clock.set(minute("2026-06-02 12:00"));
    sell(&w, &w.vendor, "d2-b", &meter, money("8.00")).await;
    // 3 June: outside the report.
    w.clock.set(minute("2026-06-03 00:00"));
    sell(&w, &w.vendor, "d3-a", &meter, money("2.00")).await;

    let path = "/v1/reports/daily?from=2026-06-01&to=2026-06-02";
    let report = w.get(path, &w.auditor).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.body);
    let r = &report.body;
    assert_eq!(
        (r["from"].as_str(), r["to"].as_str()),
        (Some("2026-06-01"), Some("2026-06-02"))
    );
    assert_eq!(r["rows"].as_array().unwrap().len(), 5, "{r}");
    let a = row(r, "2026-06-01", &id1, v1["id"].clone());
    assert_eq!(
        (
            &a["sales"],
            &a["units"],
            &a["money"],
            &a["allowances"],
            &a["allowance_units"]
        ),
        (
            &json!(2),
            &json!("10.0"),
            &json!("20.00"),
            &json!(1),
            &json!("10.0")
        ),
        "{a}"
    );
    assert_eq!(
        (
            &a["vendor_name"],
            &a["currency"],
            &a["ti"],
            &a["tariff_version"]
        ),
        (&json!("pos"), &json!("ZAR"), &json!("01"), &json!(1))
    );
    let b = row(r, "2026-06-01", &id2, v1["id"].clone());
    assert_eq!(
        (
            &b["sales"],
            &b["units"],
            &b["money"],
            &b["allowances"],
            &b["vendor_name"]
        ),
        (
            &json!(2),
            &json!("5.5"),
            &json!("4.00"),
            &json!(0),
            &json!(name)
        ),
        "units credit counts its units, no money: {b}"
    );
    let c = row(r, "2026-06-01", &id1, Value::Null);
    assert_eq!(
        (&c["sales"], &c["money"], &c["utility"]),
        (&json!(1), &Value::Null, &Value::Null),
        "the currency token: {c}"
    );
    let d = row(r, "2026-06-02", &id1, v1["id"].clone());
    assert_eq!(
        (&d["sales"], &d["units"], &d["money"]),
        (&json!(1), &json!("0.5"), &json!("1.00"))
    );
    let e = row(r, "2026-06-02", &id1, v2["id"].clone());
    assert_eq!(
        (&e["sales"], &e["units"], &e["money"], &e["tariff_version"]),
        (&json!(1), &json!("2.0"), &json!("8.00"), &json!(2))
    );
    // Rows are in order of day, vendor and tariff.
    let keys: Vec<(String, String)> = r["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["day"].as_str().unwrap().to_owned(),
                x["vendor"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);

    // The CSV: asked for by ?format=csv or by Accept, parses back to the JSON rows.
    let (status, headers, text) = raw_get(&w, &format!("{path}&format=csv"), &w.admin, None).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    assert_eq!(
        headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"sales-2026-06-01-2026-06-02.csv\""
    );
    assert!(text.contains("\"north, \"\"shop\"\" 2\""), "{text}");
    let (_, _, by_accept) = raw_get(&w, path, &w.admin, Some("text/csv")).await;
    assert_eq!(by_accept, text);
    let csv = parse_csv(&text);
    assert_eq!(
        csv[0],
        sts_vend::REPORT_COLUMNS.map(str::to_owned).to_vec(),
        "header"
    );
    assert_eq!(csv.len(), 6);
    for (line, json_row) in csv[1..].iter().zip(r["rows"].as_array().unwrap()) {
        for (column, field) in sts_vend::REPORT_COLUMNS.iter().zip(line) {
            let expected = match &json_row[*column] {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert_eq!(field, &expected, "{column} of {json_row}");
        }
    }

    // 3 June alone; an empty day.
    let third = w
        .get("/v1/reports/daily?from=2026-06-03&to=2026-06-03", &w.admin)
        .await
        .body;
    assert_eq!(third["rows"].as_array().unwrap().len(), 1);
    assert_eq!(third["rows"][0]["money"], "2.00");
    let empty = w
        .get("/v1/reports/daily?from=2026-05-01&to=2026-05-31", &w.admin)
        .await
        .body;
    assert_eq!(empty["rows"], json!([]));
    let (_, _, empty_csv) = raw_get(
        &w,
        "/v1/reports/daily?from=2026-05-01&to=2026-05-31&format=csv",
        &w.admin,
        None,
    )
    .await;
    assert_eq!(
        empty_csv,
        format!("{}\r\n", sts_vend::REPORT_COLUMNS.join(","))
    );
}

async fn report_readers_and_bad_dates(engine: Engine) {
    let w = world(engine).await;
    for key in [&w.vendor, &w.engineer] {
        let a = w
            .get("/v1/reports/daily?from=2026-06-01&to=2026-06-01", key)
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
    }
    for (query, fields) in [
        ("from=2026-06-31&to=2026-07-01", vec!["from"]),
        ("from=2026-06-01&to=2026-05-31", vec!["to"]),
        ("from=2026-01-01&to=2027-01-02", vec!["to"]),
        ("from=20260601&to=2026-06-02", vec!["from"]),
        ("", vec!["from", "to"]),
        ("from=2026-06-01&to=2026-06-01&format=xml", vec!["format"]),
    ] {
        let a = w
            .get(&format!("/v1/reports/daily?{query}"), &w.auditor)
            .await;
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {}",
            a.body
        );
        let named: Vec<&str> = a.body["fields"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(named, fields, "{query}");
    }
    // 366 days is the most.
    let a = w
        .get(
            "/v1/reports/daily?from=2026-01-01&to=2027-01-01",
            &w.auditor,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
}

on_both_engines!(
    the_daily_report_adds_up_and_its_csv_parses_back,
    report_readers_and_bad_dates,
);
