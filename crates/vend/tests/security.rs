//! Security: API keys stored hashed, roles, revocation; the append-only audit table; the
//! request body limit.

#![allow(clippy::unwrap_used, clippy::panic)]

#[path = "support/world.rs"]
mod support;

use axum::http::{Method, StatusCode};
use serde_json::json;
use sqlx::Row;
use support::{Engine, PAN, numbers, world};

async fn api_keys_are_hashed_role_bound_and_revocable(engine: Engine) {
    let w = world(engine).await;
    let made = w
        .post(
            "/v1/api-keys",
            &w.admin,
            json!({"role": "vendor", "name": "till 7"}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let key = made.body["key"].as_str().unwrap().to_owned();
    let id = made.body["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with(&format!("sts_{id}_")));
    assert_eq!(key.len(), 4 + 16 + 1 + 64);
    w.register(w.meter_body(PAN)).await;
    let a = w
        .vend(&key, "t7-1", PAN, json!({"type": "credit", "amount": "1"}))
        .await;
    assert_eq!(a.status, StatusCode::CREATED);
    let a = w
        .vend(&key, "t7-2", PAN, json!({"type": "clear_tamper"}))
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);

    // Only digests are stored: no row holds a key's secret part.
    let rows = sqlx::query("SELECT id, digest FROM api_keys")
        .fetch_all(w.state.db().pool())
        .await
        .unwrap();
    assert_eq!(rows.len(), 5);
    for row in &rows {
        let digest: String = row.get(1);
        assert_eq!(digest.len(), 64);
        for k in [&key, &w.admin, &w.vendor, &w.engineer, &w.auditor] {
            assert!(!k.contains(&digest) && !digest.contains(&k[21..]));
        }
    }

    // A right ID with a wrong secret, a malformed key, no key: 401.
    let wrong = format!(
        "{}{}",
        &key[..key.len() - 1],
        if key.ends_with('0') { '1' } else { '0' }
    );
    for k in [wrong.as_str(), "sts_", "Basic abc", ""] {
        let a = w.get("/v1/meters", k).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{k}");
        assert_eq!(a.body["code"], "unauthorized");
    }
    // Only an admin makes or revokes keys; roles are checked.
    for k in [&w.vendor, &w.engineer, &w.auditor] {
        let a = w
            .post("/v1/api-keys", k, json!({"role": "admin", "name": "x"}))
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
    }
    let a = w
        .post(
            "/v1/api-keys",
            &w.admin,
            json!({"role": "root", "name": "x"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    let revoked = w
        .call(
            Method::DELETE,
            &format!("/v1/api-keys/{id}"),
            Some(&w.admin),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    assert_eq!(
        w.get("/v1/meters", &key).await.status,
        StatusCode::UNAUTHORIZED
    );
    let again = w
        .call(
            Method::DELETE,
            &format!("/v1/api-keys/{id}"),
            Some(&w.admin),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

async fn every_change_is_in_the_append_only_audit_table(engine: Engine) {
    let w = world(engine).await;
    w.register(w.meter_body(PAN)).await;
    let a = w
        .vend(
            &w.vendor,
            "audit-1",
            PAN,
            json!({"type": "credit", "amount": "3"}),
        )
        .await;
    let token = numbers(&a.body)[0].clone();
    w.call(
        Method::PATCH,
        &format!("/v1/meters/{PAN}"),
        Some(&w.admin),
        Some(json!({"status": "suspended"})),
    )
    .await;
    assert_eq!(
        w.get("/v1/audit", &w.vendor).await.status,
        StatusCode::FORBIDDEN
    );
    let log = w.get("/v1/audit", &w.auditor).await;
    assert_eq!(log.status, StatusCode::OK);
    let rows = log.body["audit"].as_array().unwrap();
    let actions: Vec<&str> = rows.iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "api_key.create",
            "api_key.create",
            "api_key.create",
            "api_key.create",
            "meter.register",
            "vend.credit",
            "meter.update"
        ]
    );
    let vend = &rows[5];
    assert_eq!(vend["request_id"], "audit-1");
    assert_eq!(vend["sm_id"], "SM-VEND-1");
    assert_eq!(vend["kcv"], a.body["check_value"]);
    assert_eq!(vend["key_id"].as_str().unwrap(), &w.vendor[4..20]);
    assert!(
        !log.body.to_string().contains(&token),
        "no token number in the audit"
    );
    let after = w
        .get(&format!("/v1/audit?after={}", rows[5]["seq"]), &w.admin)
        .await;
    assert_eq!(after.body["audit"].as_array().unwrap().len(), 1);

    // Append-only: the database itself refuses changes and deletions.
    let pool = w.state.db().pool();
    assert!(
        sqlx::query("UPDATE audit SET action = 'nothing'")
            .execute(pool)
            .await
            .is_err()
    );
    assert!(
        sqlx::query("DELETE FROM audit")
            .execute(pool)
            .await
            .is_err()
    );
    let log2 = w.get("/v1/audit", &w.auditor).await;
    assert_eq!(log2.body["audit"].as_array().unwrap().len(), rows.len());
}

async fn bodies_over_the_limit_are_refused(engine: Engine) {
    let w = world(engine).await;
    let big = "x".repeat(20 * 1024);
    let a = w
        .post("/v1/meters", &w.admin, json!({"pan": PAN, "padding": big}))
        .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.body);
    assert_eq!(a.body["code"], "too_large");
    let a = w
        .vend(
            &w.vendor,
            &"r".repeat(129),
            PAN,
            json!({"type": "credit", "amount": "1"}),
        )
        .await;
    assert!(a.body["fields"]["request_id"].is_string());
}

/// A writer into a shared buffer, for the log subscriber.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn logs_at_info_name_no_token_and_no_key(engine: Engine) {
    let w = world(engine).await;
    // A process-wide subscriber, set once per test binary: a thread-local one misses events
    // while other tests run (tracing caches each call site's interest globally).
    static CAPTURED: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    let captured = CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        captured
    });
    w.register(w.meter_body(PAN)).await;
    let made = w
        .post(
            "/v1/api-keys",
            &w.admin,
            json!({"role": "vendor", "name": "logged"}),
        )
        .await;
    let new_key = made.body["key"].as_str().unwrap().to_owned();
    let mut tokens = Vec::new();
    let a = w
        .vend(
            &new_key,
            &format!("log-{engine:?}-1"),
            PAN,
            json!({"type": "credit", "amount": "9"}),
        )
        .await;
    tokens.extend(numbers(&a.body));
    w.call(
        Method::PATCH,
        &format!("/v1/meters/{PAN}"),
        Some(&w.admin),
        Some(json!({"krn": "3"})),
    )
    .await;
    let a = w
        .vend(
            &new_key,
            &format!("log-{engine:?}-2"),
            PAN,
            json!({"type": "credit", "amount": "9"}),
        )
        .await;
    tokens.extend(numbers(&a.body));
    assert_eq!(tokens.len(), 4);
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("vend issued") && logs.contains(&format!("log-{engine:?}-2")),
        "{logs}"
    );
    for token in &tokens {
        assert!(
            !logs.contains(token.as_str()),
            "token {token} in the logs:\n{logs}"
        );
    }
    for key in [&new_key, &w.admin, &w.vendor] {
        assert!(!logs.contains(&key[21..]), "an API key secret in the logs");
    }
}

on_both_engines!(
    api_keys_are_hashed_role_bound_and_revocable,
    every_change_is_in_the_append_only_audit_table,
    bodies_over_the_limit_are_refused,
    logs_at_info_name_no_token_and_no_key,
);
