//! Operations: health, metrics, the OpenAPI document, unknown routes, graceful shutdown.

#![allow(clippy::unwrap_used, clippy::panic)]

#[path = "support/world.rs"]
mod support;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::json;
use support::{Engine, PAN, world};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

async fn health_metrics_and_openapi(engine: Engine) {
    let w = world(engine).await;
    let h = w.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.body["status"], "ok");
    assert_eq!(h.body["security_module"], "SM-VEND-1");

    w.register(w.meter_body(PAN)).await;
    w.vend(
        &w.vendor,
        "m1",
        PAN,
        json!({"type": "credit", "amount": "1"}),
    )
    .await;
    w.vend(
        &w.vendor,
        "m1",
        PAN,
        json!({"type": "credit", "amount": "1"}),
    )
    .await;
    w.vend(
        &w.vendor,
        "m1",
        PAN,
        json!({"type": "credit", "amount": "2"}),
    )
    .await;
    let m = w.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(m.status, StatusCode::OK);
    let text = m.body.as_str().unwrap();
    for line in [
        "sts_vends_total{kind=\"credit\"} 1",
        "sts_vend_reprints_total 1",
        "sts_vend_request_id_conflicts_total 1",
        "sts_vend_duration_seconds_count 1",
        "# TYPE sts_vend_duration_seconds histogram",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }

    let doc = w.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(doc.body["openapi"], "3.1.0");
    for path in [
        "/healthz",
        "/metrics",
        "/openapi.json",
        "/v1/meters",
        "/v1/meters/{pan}",
        "/v1/meters/{pan}/vends",
        "/v1/vends",
        "/v1/vends/{request_id}",
        "/v1/api-keys",
        "/v1/api-keys/{id}",
        "/v1/audit",
        "/v1/tariffs",
        "/v1/tariffs/{id}",
        "/v1/reports/daily",
    ] {
        assert!(doc.body["paths"][path].is_object(), "{path}");
    }
    let token_types = &doc.body["components"]["schemas"]["VendRequest"]["properties"]["token"]["properties"]
        ["type"]["enum"];
    assert!(
        token_types
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("money")),
        "{token_types}"
    );
    let none = w.get("/v2/nothing", &w.admin).await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
    assert_eq!(none.body["code"], "not_found");
}

async fn shutdown_finishes_the_vend_in_flight(engine: Engine) {
    let w = world(engine).await;
    w.register(w.meter_body(PAN)).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(sts_vend::serve_on(listener, w.state.clone(), async {
        stopped.await.ok();
    }));

    // A vend whose body is only half sent when the shutdown begins.
    let body = json!({"request_id": "in-flight", "meter": PAN, "token": {"type": "credit", "amount": "4"}})
        .to_string();
    let (head, tail) = body.split_at(body.len() / 2);
    let mut stream = TcpStream::connect(address).await.unwrap();
    let request = format!(
        "POST /v1/vends HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{head}",
        w.vendor,
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !server.is_finished(),
        "the server waits for the request in flight"
    );
    stream.write_all(tail.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // The vend was recorded; new connections are refused.
    assert_eq!(
        w.get("/v1/vends/in-flight", &w.admin).await.status,
        StatusCode::OK
    );
    assert!(TcpStream::connect(address).await.is_err());
}

async fn internal_errors_are_a_generic_500_and_health_turns_503(engine: Engine) {
    let w = world(engine).await;
    w.register(w.meter_body(PAN)).await;
    w.state.db().close().await;
    let a = w.get(&format!("/v1/meters/{PAN}"), &w.admin).await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        a.body,
        json!({"error": "internal error (logged on the server)", "code": "internal"})
    );
    let h = w.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(h.status, StatusCode::SERVICE_UNAVAILABLE);
}

on_both_engines!(
    health_metrics_and_openapi,
    shutdown_finishes_the_vend_in_flight,
    internal_errors_are_a_generic_500_and_health_turns_503,
);
