//! The web console through the real router: sign-in, sessions and CSRF, roles as in the JSON
//! API, vending (a double submit reprints), decode, receipts, headers, hostile input, logs.
//! The end-to-end browser test (headless Chromium) is `crates/cli/tests/console.rs`.

#![allow(clippy::unwrap_used, clippy::panic)]

#[path = "support/world.rs"]
mod support;

use std::collections::HashMap;

use axum::{
    Router,
    body::{Body, to_bytes},
    http::{HeaderMap, Method, Request, StatusCode, header},
};
use serde_json::json;
use support::{Engine, PAN, World, numbers, world};
use tower::ServiceExt;

/// A browser without a browser: keeps cookies, sends forms, reads pages.
struct Client {
    router: Router,
    cookies: HashMap<String, String>,
}

/// An answer: status, headers and the body as text.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Reply {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .map_or("", |v| v.to_str().unwrap())
    }

    /// The value of the first form field `name` in the page.
    fn field(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .text
            .find(&marker)
            .unwrap_or_else(|| panic!("no field {name} in:\n{}", self.text))
            + marker.len();
        let end = self.text[start..].find('"').unwrap() + start;
        self.text[start..end].to_owned()
    }

    fn has(&self, needle: &str) -> bool {
        self.text.contains(needle)
    }
}

/// `application/x-www-form-urlencoded`.
fn encode(fields: &[(&str, &str)]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

impl Client {
    fn new(w: &World) -> Self {
        Self {
            router: w.router.clone(),
            cookies: HashMap::new(),
        }
    }

    async fn send(&mut self, method: Method, path: &str, body: Option<Vec<u8>>) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if !self.cookies.is_empty() {
            let cookie = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            request = request.header(header::COOKIE, cookie);
        }
        let request = match body {
            Some(b) => request
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(b)),
            None => request.body(Body::empty()),
        }
        .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        for set in headers.get_all(header::SET_COOKIE) {
            let set = set.to_str().unwrap();
            let (pair, attributes) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let bytes = to_bytes(response.into_body(), 1 << 24).await.unwrap();
        Reply {
            status,
            headers,
            text: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    async fn get(&mut self, path: &str) -> Reply {
        self.send(Method::GET, path, None).await
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Reply {
        self.send(Method::POST, path, Some(encode(fields).into_bytes()))
            .await
    }

    /// Signs in with `key`; returns the first page.
    async fn sign_in(&mut self, key: &str) -> Reply {
        let form = self.get("/console/sign-in").await;
        assert_eq!(form.status, StatusCode::OK);
        let token = form.field("sign_in_token");
        let done = self
            .post(
                "/console/sign-in",
                &[("sign_in_token", &token), ("api_key", key)],
            )
            .await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text);
        assert_eq!(done.location(), "/console/");
        self.get("/console/").await
    }
}

/// The grouped token numbers shown in large type on a page.
fn shown_tokens(page: &str) -> Vec<String> {
    page.match_indices("<p class=\"token\"")
        .map(|(i, _)| {
            let start = page[i..].find('>').unwrap() + i + 1;
            let end = page[start..].find('<').unwrap() + start;
            page[start..end].to_owned()
        })
        .collect()
}

fn grouped(number: &str) -> String {
    number
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The number of vends recorded for the meter, read through the JSON API.
async fn vend_count(w: &World, pan: &str) -> usize {
    let a = w.get(&format!("/v1/meters/{pan}/vends"), &w.admin).await;
    a.body["vends"].as_array().unwrap().len()
}

/// Submits the meter page's credit form; returns the redirect.
async fn vend_credit(c: &mut Client, meter_page: &Reply, amount: &str) -> Reply {
    c.post(
        &format!("/console/meters/{PAN}/credit"),
        &[
            ("csrf", &meter_page.field("csrf")),
            ("request_id", &meter_page.field("request_id")),
            ("type", "credit"),
            ("amount", amount),
        ],
    )
    .await
}

async fn a_vendor_signs_in_vends_reprints_decodes_and_signs_out(engine: Engine) {
    let w = world(engine).await;
    w.register(w.meter_body(PAN)).await;
    let mut c = Client::new(&w);

    // Not signed in: every page leads to the sign-in form.
    let home = c.get("/console/").await;
    assert_eq!(home.status, StatusCode::SEE_OTHER);
    assert_eq!(home.location(), "/console/sign-in");
    assert_eq!(c.get("/").await.location(), "/console/");

    // A wrong key is refused and starts no session.
    let form = c.get("/console/sign-in").await;
    // The key with its last digit changed (to 0, or to 1 when it is 0: the same key would sign
    // in, one run in sixteen).
    let (head, last) = w.vendor.split_at(w.vendor.len() - 1);
    let wrong_key = format!("{head}{}", if last == "0" { "1" } else { "0" });
    let wrong = c
        .post(
            "/console/sign-in",
            &[
                ("sign_in_token", &form.field("sign_in_token")),
                ("api_key", &wrong_key),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.has("Unknown or revoked API key"));
    assert!(!c.cookies.contains_key("sts_session"));

    let home = c.sign_in(&w.vendor).await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.text);
    assert!(home.has("Find a meter") && home.has("(vendor)"));
    assert!(!home.has("Audit trail"), "a vendor has no audit link");

    // Find the meter by its DRN: a redirect to its page.
    let missing = c.get("/console/meters?pan=00000000001").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.text);
    assert!(missing.has("not found") && missing.has("role=\"alert\""));
    let drn = &PAN[6..17];
    let found = c.get(&format!("/console/meters?pan={drn}")).await;
    assert_eq!(found.location(), format!("/console/meters/{PAN}"));
    let meter = c.get(found.location()).await;
    assert_eq!(meter.status, StatusCode::OK);
    assert!(meter.has("Vend credit"));
    assert!(
        !meter.has("Management token"),
        "a vendor sees no management form"
    );

    // Vend: post, then redirect to the result.
    let issued = vend_credit(&mut c, &meter, "12.5").await;
    assert_eq!(issued.status, StatusCode::SEE_OTHER, "{}", issued.text);
    let request_id = meter.field("request_id");
    assert!(request_id.starts_with("console-"));
    assert_eq!(
        issued.location(),
        format!("/console/vends/{request_id}?issued=new")
    );
    let result = c.get(issued.location()).await;
    assert_eq!(result.status, StatusCode::OK);
    assert!(result.has("Token issued"));
    let stored = w.get(&format!("/v1/vends/{request_id}"), &w.admin).await;
    let number = numbers(&stored.body).remove(0);
    assert_eq!(shown_tokens(&result.text), vec![grouped(&number)]);
    assert!(result.has("12.5 kWh"));
    let tid = stored.body["tid"].as_u64().unwrap();
    assert!(result.has(&format!("<td>{tid}</td>")));

    // The same form submitted again reprints: one vend, the same token.
    let again = vend_credit(&mut c, &meter, "12.5").await;
    assert_eq!(
        again.location(),
        format!("/console/vends/{request_id}?issued=reprint")
    );
    let reprint = c.get(again.location()).await;
    assert!(reprint.has("nothing was vended twice"));
    assert_eq!(shown_tokens(&reprint.text), vec![grouped(&number)]);
    assert_eq!(vend_count(&w, PAN).await, 1);

    // A fresh render of the meter page is a new vend: a new request ID.
    let meter = c.get(&format!("/console/meters/{PAN}")).await;
    assert_ne!(meter.field("request_id"), request_id);
    assert!(meter.has(&grouped(&number)), "history shows the token");
    let second = vend_credit(&mut c, &meter, "1").await;
    assert!(second.location().ends_with("?issued=new"));
    assert_eq!(vend_count(&w, PAN).await, 2);

    // Decode what the customer reads out, with spaces.
    let decoded = c
        .post(
            "/console/decode",
            &[
                ("csrf", &meter.field("csrf")),
                ("pan", PAN),
                ("token", &grouped(&number)),
            ],
        )
        .await;
    assert_eq!(decoded.status, StatusCode::OK, "{}", decoded.text);
    assert!(
        decoded.has(&format!("Valid for meter {PAN}")),
        "{}",
        decoded.text
    );
    assert!(decoded.has("transfer credit: 12.5 kWh of electricity"));
    assert!(decoded.has(&format!("TID {tid}")));
    assert!(decoded.has(&format!("yes: <a href=\"/console/vends/{request_id}\"")));
    // One digit misheard: not valid.
    let mut misheard = number.clone().into_bytes();
    misheard[10] = if misheard[10] == b'9' {
        b'0'
    } else {
        misheard[10] + 1
    };
    let misheard = String::from_utf8(misheard).unwrap();
    let decoded = c
        .post(
            "/console/decode",
            &[
                ("csrf", &meter.field("csrf")),
                ("pan", PAN),
                ("token", &misheard),
            ],
        )
        .await;
    assert!(
        decoded.has(&format!("Not valid for meter {PAN}")),
        "{}",
        decoded.text
    );

    // The receipt: token, units, TI, KRN, SGC, TID.
    let receipt = c.get(&format!("/console/vends/{request_id}/receipt")).await;
    assert_eq!(receipt.status, StatusCode::OK);
    for needle in [
        format!("<td>{}</td>", w.sgc),
        "<th scope=\"row\">KRN</th><td>2</td>".to_owned(),
        "<th scope=\"row\">TI</th><td>01</td>".to_owned(),
        "12.5 kWh".to_owned(),
        format!("<td>{tid}</td>"),
        grouped(&number),
    ] {
        assert!(
            receipt.has(&needle),
            "{needle} not in the receipt:\n{}",
            receipt.text
        );
    }
    assert!(!receipt.has("Tariff"), "no tariff until vends carry one");

    // Signing in again replaces the session: the old cookie no longer works.
    let first = c.cookies["sts_session"].clone();
    c.sign_in(&w.vendor).await;
    assert_ne!(c.cookies["sts_session"], first);
    let mut stale = Client::new(&w);
    stale.cookies.insert("sts_session".into(), first);
    assert_eq!(stale.get("/console/").await.location(), "/console/sign-in");
    let meter = c.get(&format!("/console/meters/{PAN}")).await;

    // Sign out: the session is gone, even for a copy of its cookie.
    let cookie = c.cookies["sts_session"].clone();
    let out = c
        .post("/console/sign-out", &[("csrf", &meter.field("csrf"))])
        .await;
    assert_eq!(out.location(), "/console/sign-in?signed_out=1");
    assert!(!c.cookies.contains_key("sts_session"));
    c.cookies.insert("sts_session".into(), cookie);
    assert_eq!(c.get("/console/").await.location(), "/console/sign-in");
}

async fn roles_are_those_of_the_json_api(engine: Engine) {
    let w = world(engine).await;
    w.register(w.meter_body(PAN)).await;
    let meter_path = format!("/console/meters/{PAN}");

    // Vendor: no management token, no audit trail.
    let mut vendor = Client::new(&w);
    vendor.sign_in(&w.vendor).await;
    let page = vendor.get(&meter_path).await;
    let refused = vendor
        .post(
            &format!("{meter_path}/management"),
            &[
                ("csrf", &page.field("csrf")),
                ("request_id", &page.field("request_id")),
                ("type", "max_power"),
                ("value", "1000"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    assert!(refused.has("the vendor role may not issue management tokens"));
    assert_eq!(
        vendor.get("/console/audit").await.status,
        StatusCode::FORBIDDEN
    );

    // Auditor: reads, the audit trail, no vend of any kind.
    let mut auditor = Client::new(&w);
    auditor.sign_in(&w.auditor).await;
    let page = auditor.get(&meter_path).await;
    assert!(!page.has("Vend credit") && !page.has("Management token"));
    let forged = auditor
        .post(
            &format!("{meter_path}/credit"),
            &[
                ("csrf", &page.field("csrf")),
                ("request_id", "console-00000000000000000000000000000001"),
                ("amount", "5"),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(auditor.get("/console/audit").await.status, StatusCode::OK);
    assert_eq!(vend_count(&w, PAN).await, 0);

    // Engineer: management tokens and key change sets, no credit.
    let mut engineer = Client::new(&w);
    engineer.sign_in(&w.engineer).await;
    let page = engineer.get(&meter_path).await;
    assert!(!page.has("Vend credit") && page.has("Key change set"));
    let done = engineer
        .post(
            &format!("{meter_path}/management"),
            &[
                ("csrf", &page.field("csrf")),
                ("request_id", &page.field("request_id")),
                ("type", "max_power"),
                ("value", "1000"),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text);
    let result = engineer.get(done.location()).await;
    assert!(
        result.has("set maximum power limit: 1000 W"),
        "{}",
        result.text
    );
    let credit = engineer
        .post(
            &format!("{meter_path}/credit"),
            &[
                ("csrf", &page.field("csrf")),
                ("request_id", "console-00000000000000000000000000000002"),
                ("amount", "5"),
            ],
        )
        .await;
    assert_eq!(credit.status, StatusCode::FORBIDDEN);
    assert_eq!(
        engineer.get("/console/audit").await.status,
        StatusCode::FORBIDDEN
    );

    // A key change set after the key record changes (engineer); its tokens in order.
    w.call(
        Method::PATCH,
        &format!("/v1/meters/{PAN}"),
        Some(&w.admin),
        Some(json!({"krn": "3"})),
    )
    .await;
    let page = engineer.get(&meter_path).await;
    assert!(page.has("Key change pending"));
    let set = engineer
        .post(
            &format!("{meter_path}/key-change"),
            &[
                ("csrf", &page.field("csrf")),
                ("request_id", &page.field("request_id")),
            ],
        )
        .await;
    assert_eq!(set.status, StatusCode::SEE_OTHER, "{}", set.text);
    let result = engineer.get(set.location()).await;
    assert_eq!(shown_tokens(&result.text).len(), 2, "{}", result.text);
    assert!(
        result.has("key change token 1 of 2") && result.has("Enter the 2 tokens in this order")
    );
    assert!(!engineer.get(&meter_path).await.has("Key change pending"));

    // A refusal is shown on the meter page and issues nothing.
    let page = engineer.get(&meter_path).await;
    let before = vend_count(&w, PAN).await;
    let bad = engineer
        .post(
            &format!("{meter_path}/management"),
            &[
                ("csrf", &page.field("csrf")),
                ("request_id", &page.field("request_id")),
                ("type", "max_power"),
                ("value", "lots"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.has("Nothing was issued. watts: an integer from 0 to"),
        "{}",
        bad.text
    );
    assert_eq!(vend_count(&w, PAN).await, before);
}

async fn forms_need_the_session_csrf_token(engine: Engine) {
    let w = world(engine).await;
    w.register(w.meter_body(PAN)).await;
    let mut a = Client::new(&w);
    a.sign_in(&w.admin).await;
    let mut b = Client::new(&w);
    b.sign_in(&w.admin).await;
    let page_a = a.get(&format!("/console/meters/{PAN}")).await;
    let page_b = b.get(&format!("/console/meters/{PAN}")).await;
    assert_ne!(page_a.field("csrf"), page_b.field("csrf"));
    for csrf in [None, Some(page_b.field("csrf")), Some(String::new())] {
        let mut fields = vec![
            ("request_id", page_a.field("request_id")),
            ("amount", "5".to_owned()),
        ];
        if let Some(csrf) = csrf {
            fields.push(("csrf", csrf));
        }
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = a
            .post(&format!("/console/meters/{PAN}/credit"), &fields)
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        assert!(r.has("Form expired"));
    }
    // Sign-out needs it too.
    let r = a.post("/console/sign-out", &[("csrf", "0")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(a.get("/console/").await.status, StatusCode::OK);
    // Sign-in needs the token set with its form (login CSRF).
    let mut c = Client::new(&w);
    let r = c
        .post(
            "/console/sign-in",
            &[("sign_in_token", "00"), ("api_key", &w.admin)],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!c.cookies.contains_key("sts_session"));
    assert_eq!(vend_count(&w, PAN).await, 0);
}

async fn revoking_the_key_ends_its_sessions(engine: Engine) {
    let w = world(engine).await;
    let made = w
        .post(
            "/v1/api-keys",
            &w.admin,
            json!({"role": "vendor", "name": "till <b>9</b>"}),
        )
        .await;
    let key = made.body["key"].as_str().unwrap().to_owned();
    let id = made.body["id"].as_str().unwrap().to_owned();
    let mut c = Client::new(&w);
    c.sign_in(&key).await;
    assert_eq!(c.get("/console/").await.status, StatusCode::OK);
    let a = w
        .call(
            Method::DELETE,
            &format!("/v1/api-keys/{id}"),
            Some(&w.admin),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    assert_eq!(c.get("/console/").await.location(), "/console/sign-in");

    // The audit trail escapes what API clients wrote (the key's name).
    let mut auditor = Client::new(&w);
    auditor.sign_in(&w.auditor).await;
    let trail = auditor.get("/console/audit").await;
    assert!(trail.has("api_key.revoke") && trail.has("api_key.create"));
    assert!(trail.has("till &lt;b&gt;9&lt;/b&gt;"), "{}", trail.text);
    assert!(!trail.has("<b>9</b>"));
}

async fn every_answer_carries_the_security_headers(engine: Engine) {
    let w = world(engine).await;
    w.register(w.meter_body(PAN)).await;
    let mut c = Client::new(&w);
    let css = c.get("/console/static/console.css").await;
    assert_eq!(css.headers[header::CONTENT_TYPE], "text/css; charset=utf-8");
    assert!(css.has(".token"));
    let js = c.get("/console/static/console.js").await;
    assert!(
        js.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    c.sign_in(&w.admin).await;
    let meter = c.get(&format!("/console/meters/{PAN}")).await;
    let vended = vend_credit(&mut c, &meter, "3").await;
    let result = c.get(vended.location()).await;
    for reply in [
        &css,
        &js,
        &c.get("/console/sign-in").await,
        &c.get("/").await,
        &meter,
        &vended,
        &result,
        &c.get("/console/vends/unknown").await,
    ] {
        let h = &reply.headers;
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.starts_with("default-src 'self';"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"));
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }
    // No inline script or style anywhere: the policy would block it.
    for page in [&meter.text, &result.text] {
        assert!(!page.contains("<style") && !page.contains("style=\""));
        assert!(!page.contains("<script>") && !page.contains("onclick"));
    }
    let cookie = c.get("/console/sign-in").await;
    let set = cookie.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        set.contains("HttpOnly")
            && set.contains("SameSite=Strict")
            && set.contains("Path=/console")
    );
}

async fn hostile_input_gets_an_error_page_never_a_panic(engine: Engine) {
    let w = world(engine).await;
    w.register(w.meter_body(PAN)).await;
    let mut c = Client::new(&w);
    c.sign_in(&w.admin).await;
    let page = c.get(&format!("/console/meters/{PAN}")).await;
    let csrf = page.field("csrf");
    let rid = page.field("request_id");
    let credit = format!("/console/meters/{PAN}/credit");

    for (path, status) in [
        ("/console/meters/12345", StatusCode::UNPROCESSABLE_ENTITY),
        (
            "/console/meters/600727000000000000",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            &format!("/console/meters/{}", support::pan(1)),
            StatusCode::NOT_FOUND,
        ),
        (
            &format!("/console/meters/{PAN}?before=x"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/console/meters?pan=%FF%FE",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("/console/vends/no-such-request", StatusCode::NOT_FOUND),
        ("/console/vends/pos%2F1%3Fx/receipt", StatusCode::NOT_FOUND),
        ("/console/audit?after=-5", StatusCode::OK),
        (
            "/console/audit?after=99999999999999999999",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let r = c.get(path).await;
        assert_eq!(r.status, status, "{path}: {}", r.text);
        assert!(r.text.starts_with("<!DOCTYPE html>"), "{path}: {}", r.text);
    }
    let long = "9".repeat(600);
    let with = |amount: &str| -> Vec<(&str, String)> {
        vec![
            ("csrf", csrf.clone()),
            ("request_id", rid.clone()),
            ("type", "credit".into()),
            ("amount", amount.to_owned()),
        ]
    };
    for amount in [
        "",
        "abc",
        "-5",
        "0",
        "1e9",
        "99999999",
        "1.25",
        "<script>",
        long.as_str(),
    ] {
        let fields = with(amount);
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = c.post(&credit, &fields).await;
        assert!(
            r.status.is_client_error(),
            "amount {amount:?}: {}",
            r.status
        );
        assert!(!r.has("<script>"), "unescaped input echoed");
    }
    // Bodies that are not forms at all.
    for body in [
        b"%%%=%%&csrf".to_vec(),
        vec![0xff, 0xfe, b'=', 0x80],
        format!("csrf={csrf}&request_id=console-zz&amount=5").into_bytes(),
        format!("csrf={csrf}&request_id={rid}&type=max_power&amount=5").into_bytes(),
        vec![b'a'; 32 * 1024],
    ] {
        let r = c.send(Method::POST, &credit, Some(body)).await;
        assert!(r.status.is_client_error(), "{}: {}", r.status, r.text);
    }
    let r = c
        .post(
            &format!("/console/meters/{PAN}/management"),
            &[("csrf", &csrf), ("request_id", &rid), ("type", "reboot")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    for token in ["", "12345", "1234567890123456789x", &"1".repeat(40)] {
        let r = c
            .post(
                "/console/decode",
                &[("csrf", &csrf), ("pan", PAN), ("token", token)],
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{token:?}: {}",
            r.text
        );
    }
    // A forged session cookie is no session.
    c.cookies.insert("sts_session".into(), "0".repeat(64));
    assert_eq!(c.get("/console/").await.location(), "/console/sign-in");
    c.cookies.insert("sts_session".into(), "zz; a=b".into());
    assert_eq!(c.get("/console/").await.status, StatusCode::SEE_OTHER);
    assert_eq!(vend_count(&w, PAN).await, 0);
}

async fn receipts_show_the_key_record_each_vend_was_issued_under(engine: Engine) {
    let w = world(engine).await;
    w.register(w.meter_body(PAN)).await;
    let mut c = Client::new(&w);
    c.sign_in(&w.admin).await;
    let page = c.get(&format!("/console/meters/{PAN}")).await;
    let first = page.field("request_id");
    vend_credit(&mut c, &page, "4").await;
    w.call(
        Method::PATCH,
        &format!("/v1/meters/{PAN}"),
        Some(&w.admin),
        Some(json!({"krn": "3", "ti": "07"})),
    )
    .await;
    let page = c.get(&format!("/console/meters/{PAN}")).await;
    let second = page.field("request_id");
    let r = vend_credit(&mut c, &page, "4").await;
    let result = c.get(r.location()).await;
    assert_eq!(
        shown_tokens(&result.text).len(),
        3,
        "key change set, then the credit"
    );
    for (id, krn, ti) in [(first, "2", "01"), (second, "3", "07")] {
        let receipt = c.get(&format!("/console/vends/{id}/receipt")).await;
        assert!(
            receipt.has(&format!("<th scope=\"row\">KRN</th><td>{krn}</td>"))
                && receipt.has(&format!("<th scope=\"row\">TI</th><td>{ti}</td>")),
            "{id}: {}",
            receipt.text
        );
    }
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

async fn logs_at_info_name_no_token_key_or_session(engine: Engine) {
    let w = world(engine).await;
    // One process-wide subscriber per test binary (see tests/security.rs).
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
    let mut c = Client::new(&w);
    // A refused sign-in with a real-looking key, then a good one.
    let form = c.get("/console/sign-in").await;
    let wrong = format!("{}f", &w.vendor[..w.vendor.len() - 1]);
    c.post(
        "/console/sign-in",
        &[
            ("sign_in_token", &form.field("sign_in_token")),
            ("api_key", &wrong),
        ],
    )
    .await;
    c.sign_in(&w.vendor).await;
    let session = c.cookies["sts_session"].clone();
    let page = c.get(&format!("/console/meters/{PAN}")).await;
    let r = vend_credit(&mut c, &page, "7").await;
    let request_id = page.field("request_id");
    c.get(r.location()).await;
    vend_credit(&mut c, &page, "7").await;
    let number = numbers(
        &w.get(&format!("/v1/vends/{request_id}"), &w.admin)
            .await
            .body,
    )
    .remove(0);
    c.post(
        "/console/decode",
        &[
            ("csrf", &page.field("csrf")),
            ("pan", PAN),
            ("token", &number),
        ],
    )
    .await;
    c.get(&format!("/console/vends/{request_id}/receipt")).await;
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("console sign-in")
            && logs.contains(&request_id)
            && logs.contains("console decode"),
        "{logs}"
    );
    assert!(
        !logs.contains(&number),
        "token {number} in the logs:\n{logs}"
    );
    assert!(
        !logs.contains(&grouped(&number)),
        "grouped token in the logs"
    );
    for secret in [&w.vendor[21..], &wrong[21..], &session, &page.field("csrf")] {
        assert!(!logs.contains(secret), "a secret in the logs:\n{logs}");
    }
}

async fn money_vends_show_tariff_money_and_allowance_and_the_daily_report(engine: Engine) {
    let w = world(engine).await;
    w.register(w.meter_body(PAN)).await;
    let mut c = Client::new(&w);
    c.sign_in(&w.vendor).await;
    let page = c.get(&format!("/console/meters/{PAN}")).await;
    assert!(page.has("No tariff is in force"), "{}", page.text);
    assert!(!page.has("value=\"money\""), "no money without a tariff");
    let t = w
        .post(
            "/v1/tariffs",
            &w.admin,
            json!({"utility": "electricity", "ti": "01", "currency": "ZAR", "price": "2.4536", "allowance": "50"}),
        )
        .await;
    assert_eq!(t.status, StatusCode::CREATED, "{}", t.body);
    let page = c.get(&format!("/console/meters/{PAN}")).await;
    assert!(
        page.has("Tariff in force: 2.4536 ZAR/kWh (version 1, ID 1); free allowance 50.0 kWh"),
        "{}",
        page.text
    );
    assert!(page.has("value=\"money\""));
    // Too little money: refused on the meter page, nothing recorded.
    let refused = c
        .post(
            &format!("/console/meters/{PAN}/credit"),
            &[
                ("csrf", &page.field("csrf")),
                ("request_id", &page.field("request_id")),
                ("type", "money"),
                ("amount", "0.10"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.has("amount: 0.10 ZAR buys less than 0.1 kWh at 2.4536 ZAR/kWh; the least is 0.25"),
        "{}",
        refused.text
    );
    assert_eq!(vend_count(&w, PAN).await, 0);
    let page = c.get(&format!("/console/meters/{PAN}")).await;
    let request_id = page.field("request_id");
    let done = c
        .post(
            &format!("/console/meters/{PAN}/credit"),
            &[
                ("csrf", &page.field("csrf")),
                ("request_id", &request_id),
                ("type", "money"),
                ("amount", "100.00"),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text);
    let result = c.get(done.location()).await;
    let tokens = shown_tokens(&result.text);
    assert_eq!(tokens.len(), 2, "the sale and the free allowance");
    assert!(
        result.has("40.7 kWh for 100.00 ZAR + 50.0 kWh free allowance"),
        "{}",
        result.text
    );
    let vend = w
        .get(&format!("/v1/vends/{request_id}"), &w.admin)
        .await
        .body;
    let receipt = c.get(&format!("/console/vends/{request_id}/receipt")).await;
    assert_eq!(receipt.status, StatusCode::OK);
    for needle in [
        "<th scope=\"row\">TI</th><td>01</td>".to_owned(),
        "<th scope=\"row\">KRN</th><td>2</td>".to_owned(),
        format!("<th scope=\"row\">SGC</th><td>{}</td>", w.sgc),
        "electricity TI 01, version 1 (ID 1): 2.4536 ZAR/kWh, in force from 2026-06-01 12:00 UTC"
            .to_owned(),
        "<th scope=\"row\">Paid</th><td>100.00 ZAR</td>".to_owned(),
        "40.7 kWh at 2.4536 = 99.86152 ZAR".to_owned(),
        "0.13848 ZAR (not on the token)".to_owned(),
        format!(
            "50.0 kWh for 2026-06 (its own token, TID {})",
            vend["allowance"]["tid"]
        ),
        "free allowance for 2026-06".to_owned(),
        grouped(numbers(&vend)[0].as_str()),
        grouped(numbers(&vend)[1].as_str()),
    ] {
        assert!(
            receipt.has(&needle),
            "{needle} not in the receipt:\n{}",
            receipt.text
        );
    }

    // The daily report: not for vendors; for auditors, with a CSV download.
    assert!(
        !receipt.has("/console/reports/daily"),
        "no report link for a vendor"
    );
    assert_eq!(
        c.get("/console/reports/daily").await.status,
        StatusCode::FORBIDDEN
    );
    let mut a = Client::new(&w);
    let home = a.sign_in(&w.auditor).await;
    assert!(home.has("href=\"/console/reports/daily\""));
    let today = a.get("/console/reports/daily").await;
    assert_eq!(today.status, StatusCode::OK, "{}", today.text);
    assert!(
        today.has("value=\"2026-06-01\""),
        "today by the service's clock"
    );
    assert!(
        today.has("<td class=\"number\">40.7</td>"),
        "{}",
        today.text
    );
    assert!(today.has("<td class=\"number\">100.00 ZAR</td>"));
    assert!(today.has("<td class=\"number\">50.0</td>"));
    let csv = a
        .get("/console/reports/daily.csv?from=2026-06-01&to=2026-06-01")
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    assert!(
        csv.text.starts_with("day,vendor,vendor_name,"),
        "{}",
        csv.text
    );
    assert!(csv.text.contains(",100.00,1,50.0\r\n"), "{}", csv.text);
    let bad = a.get("/console/reports/daily?from=2026-02-30&to=x").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.has("from: no such date") && bad.has("to: expected a date YYYY-MM-DD"),
        "{}",
        bad.text
    );
}

async fn campaigns_show_their_progress_and_the_meters_without_a_set(engine: Engine) {
    use std::sync::atomic::AtomicBool;
    use sts_vend::{CampaignSelection, CampaignTarget, NewCampaign};
    let w = world(engine).await;
    // Two meters on the 1993 key, one on a key the security module does not hold (KRN 4).
    for (drn, krn) in [(11_000, "1"), (11_001, "1"), (11_002, "4")] {
        let mut body = w.meter_body(&support::pan(drn));
        body["krn"] = json!(krn);
        body["base_date"] = json!("1993");
        w.register(body).await;
    }
    let db = w.state.db();
    let c = db
        .create_campaign(&NewCampaign {
            name: "rollover <2024>".into(),
            selection: CampaignSelection {
                supply_group: Some(w.sgc),
                base_date: Some(sts_core::BaseDate::Y1993),
                ..CampaignSelection::default()
            },
            target: CampaignTarget {
                key_revision: Some("2".parse().unwrap()),
                base_date: Some(sts_core::BaseDate::Y2014),
                ..CampaignTarget::default()
            },
            chunk_size: 2,
        })
        .await
        .unwrap();
    let mut c2 = Client::new(&w);
    let home = c2.sign_in(&w.vendor).await;
    assert!(
        home.has("href=\"/console/campaigns\""),
        "every role sees the link"
    );
    let list = c2.get("/console/campaigns").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(
        list.has("rollover &lt;2024&gt;"),
        "names are escaped: {}",
        list.text
    );
    assert!(
        list.has("0 of 3 meters (0%)") && list.has("created"),
        "{}",
        list.text
    );
    db.run_campaign(
        c.id,
        w.state.security_module(),
        &AtomicBool::new(false),
        |_| {},
    )
    .await
    .unwrap();
    let list = c2.get("/console/campaigns").await;
    assert!(list.has("<progress value=\"3\" max=\"3\""), "{}", list.text);
    assert!(
        list.has("3 of 3 meters (100%)") && list.has("KRN 2, base date 2014"),
        "{}",
        list.text
    );
    let page = c2.get(&format!("/console/campaigns/{}", c.id)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.has("Sets waiting for a purchase</dt><dd>2</dd>"),
        "{}",
        page.text
    );
    assert!(page.has("Failed</dt><dd>1</dd>"), "{}", page.text);
    assert!(
        page.has(&support::pan(11_002)) && page.has("revision 4"),
        "{}",
        page.text
    );
    assert_eq!(
        c2.get("/console/campaigns/99").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c2.get("/console/campaigns/x%3Cy").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        Client::new(&w).get("/console/campaigns").await.status,
        StatusCode::SEE_OTHER
    );
}

on_both_engines!(
    a_vendor_signs_in_vends_reprints_decodes_and_signs_out,
    roles_are_those_of_the_json_api,
    forms_need_the_session_csrf_token,
    revoking_the_key_ends_its_sessions,
    every_answer_carries_the_security_headers,
    hostile_input_gets_an_error_page_never_a_panic,
    receipts_show_the_key_record_each_vend_was_issued_under,
    logs_at_info_name_no_token_key_or_session,
    money_vends_show_tariff_money_and_allowance_and_the_daily_report,
    campaigns_show_their_progress_and_the_meters_without_a_set,
);
