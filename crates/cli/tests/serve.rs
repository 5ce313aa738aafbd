//! `sts serve` as a real process: kill -9 it while vending, restart it, and every vend it
//! acknowledged is still there - a retry with its request ID returns the very same tokens.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers fail loudly

#[path = "support/server.rs"]
mod server;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use server::{Dir, Server, api_key, keys, request};

/// Request IDs the server acknowledged, with the tokens it returned.
type Acknowledged = Vec<(String, Vec<String>)>;

fn tokens(body: &Value) -> Vec<String> {
    let list = body["tokens"]
        .as_array()
        .unwrap_or_else(|| panic!("no tokens in {body}"));
    list.iter()
        .map(|t| {
            t["number"]
                .as_str()
                .unwrap_or_else(|| panic!("no number in {t}"))
                .to_owned()
        })
        .collect()
}

#[test]
fn kill_9_during_vending_loses_no_acknowledged_vend() {
    let dir = Dir::new("sts-serve");
    let sgc = keys(&dir.0);
    let admin = api_key(&dir.0, "admin");
    let vendor = api_key(&dir.0, "vendor");
    assert!(admin.starts_with("sts_") && vendor.starts_with("sts_"));

    let server = Server::start(&dir.0);
    let port = server.port;
    let meter = json!({"pan": "600727000000000009", "sgc": sgc, "ti": "01", "krn": "1", "kt": "2", "ea": "07", "dkga": "04", "base_date": "2014"});
    let (status, body) = request(port, "POST", "/v1/meters", Some(&admin), Some(&meter)).unwrap();
    assert_eq!(status, 201, "{body}");

    // Vend until killed; remember what the server acknowledged.
    let acknowledged: Arc<Mutex<Acknowledged>> = Arc::default();
    let seen = Arc::clone(&acknowledged);
    let vendor_key = vendor.clone();
    let load = std::thread::spawn(move || {
        for i in 0..10_000 {
            let id = format!("pos-1/{i:05}");
            let vend = json!({"request_id": id, "meter": "600727000000000009", "token": {"type": "credit", "amount": "1.5"}});
            match request(port, "POST", "/v1/vends", Some(&vendor_key), Some(&vend)) {
                Some((201, body)) => seen.lock().unwrap().push((id, tokens(&body))),
                Some((status, body)) => panic!("vend {id}: {status} {body}"),
                None => return, // the server is gone
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    while acknowledged.lock().unwrap().len() < 20 {
        assert!(Instant::now() < deadline, "too few vends acknowledged");
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill_9(); // no shutdown, no flush
    load.join().unwrap();
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 20);

    let server = Server::start(&dir.0);
    let port = server.port;
    for (id, issued) in &acknowledged {
        let (status, body) = request(
            port,
            "GET",
            &format!("/v1/vends/{}", id.replace('/', "%2F")),
            Some(&admin),
            None,
        )
        .unwrap();
        assert_eq!(status, 200, "{id}: {body}");
        assert_eq!(&tokens(&body), issued, "{id}");
        // A retry of the same request is a reprint of the same tokens, never a new token.
        let vend = json!({"request_id": id, "meter": "600727000000000009", "token": {"type": "credit", "amount": "1.5"}});
        let (status, body) =
            request(port, "POST", "/v1/vends", Some(&vendor), Some(&vend)).unwrap();
        assert_eq!(status, 200, "{id}: {body}");
        assert_eq!(body["reprint"], true);
        assert_eq!(&tokens(&body), issued, "{id}");
    }
    drop(server);
}
