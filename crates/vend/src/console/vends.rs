//! Vend forms (credit, management, key change), the result page (also the reprint) and the
//! printable receipt. Every vend goes through [`AppState::vend`], as `POST /v1/vends` does.
//!
//! [`AppState::vend`]: crate::AppState::vend

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use maud::{Markup, html};
use serde_json::{Map, Value};
use sts_core::{MeterPan, TokenNumber};

use super::{
    Console,
    form::{Fields, Params},
    meters::{meter_page, summary},
    page::{Notice, Page, Problem, groups, page, segment, spoken, time, vend_error_text},
    session::Operator,
};
use crate::{KeyRecord, Meter, VendError, VendRequest, auth::READERS, meters::parse_pan};

/// The request ID a vend form was rendered with: `console-` and 32 hex digits.
fn form_request_id(fields: &Fields) -> Result<String, Problem> {
    match fields.get("request_id") {
        Some(id)
            if id.len() == 40
                && id.starts_with("console-")
                && id[8..].bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Ok(id.to_owned())
        }
        _ => Err(Problem::Form(
            "the form has no valid request ID: reload the meter page".to_owned(),
        )),
    }
}

fn text(value: &str) -> Value {
    Value::String(value.to_owned())
}

pub(super) async fn credit(
    State(console): State<Console>,
    operator: Operator,
    Path(pan): Path<String>,
    fields: Fields,
) -> Result<Response, Problem> {
    operator.check_csrf(fields.get("csrf"))?;
    let request_id = form_request_id(&fields)?;
    let kind = match fields.get("type") {
        None | Some("credit") => "credit",
        Some("money") => "money",
        Some("currency") => "currency",
        Some(_) => return Err(Problem::Form("type: credit, money or currency".to_owned())),
    };
    let mut token = Map::new();
    token.insert("type".into(), text(kind));
    if let Some(amount) = fields.get("amount") {
        token.insert("amount".into(), text(amount));
    }
    issue(&console, &operator, &pan, request_id, token).await
}

pub(super) async fn management(
    State(console): State<Console>,
    operator: Operator,
    Path(pan): Path<String>,
    fields: Fields,
) -> Result<Response, Problem> {
    operator.check_csrf(fields.get("csrf"))?;
    let request_id = form_request_id(&fields)?;
    let (kind, value_field) = match fields.get("type") {
        Some("max_power") => ("max_power", Some("watts")),
        Some("phase_unbalance") => ("phase_unbalance", Some("watts")),
        Some("clear_credit") => ("clear_credit", Some("register")),
        Some("clear_tamper") => ("clear_tamper", None),
        Some("tariff_rate") => ("tariff_rate", Some("rate")),
        Some("water_factor") => ("water_factor", Some("factor")),
        _ => return Err(Problem::Form("type: a management token type".to_owned())),
    };
    let mut token = Map::new();
    token.insert("type".into(), text(kind));
    match (value_field, fields.get("value")) {
        (Some(name), Some(value)) => {
            token.insert(name.into(), text(value));
        }
        (None, Some(_)) => {
            return refused(
                &console,
                &operator,
                &pan,
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("value: a {kind} token takes no value; leave it empty"),
            )
            .await;
        }
        (_, None) => {}
    }
    issue(&console, &operator, &pan, request_id, token).await
}

pub(super) async fn key_change(
    State(console): State<Console>,
    operator: Operator,
    Path(pan): Path<String>,
    fields: Fields,
) -> Result<Response, Problem> {
    operator.check_csrf(fields.get("csrf"))?;
    let request_id = form_request_id(&fields)?;
    let mut token = Map::new();
    token.insert("type".into(), text("key_change"));
    token.insert(
        "include_sgc".into(),
        Value::Bool(fields.checked("include_sgc")),
    );
    issue(&console, &operator, &pan, request_id, token).await
}

/// Vends through the JSON API's code path, then redirects to the result (post/redirect/get);
/// a refusal shows the meter page again with the reason.
async fn issue(
    console: &Console,
    operator: &Operator,
    pan: &str,
    request_id: String,
    token: Map<String, Value>,
) -> Result<Response, Problem> {
    let request = VendRequest {
        request_id,
        meter: pan.to_owned(),
        token,
    };
    match console.app.vend(&operator.caller, &request).await {
        Ok(outcome) => {
            let issued = if outcome.reprint { "reprint" } else { "new" };
            let to = format!(
                "/console/vends/{}?issued={issued}",
                segment(&request.request_id)
            );
            Ok(Redirect::to(&to).into_response())
        }
        Err(e @ VendError::NotFound(_)) => Err(e.into()),
        Err(e) => {
            let (status, text) = vend_error_text(&e);
            refused(console, operator, pan, status, text).await
        }
    }
}

async fn refused(
    console: &Console,
    operator: &Operator,
    pan: &str,
    status: StatusCode,
    text: String,
) -> Result<Response, Problem> {
    let notice = Notice::Error(format!("Nothing was issued. {text}"));
    Ok(
        meter_page(console, operator, pan, Some((status, notice)), 0)
            .await?
            .into_response(),
    )
}

/// A stored vend result (the page checks the role as `GET /v1/vends/{id}` does).
async fn stored(
    console: &Console,
    operator: &Operator,
    request_id: &str,
) -> Result<(Value, MeterPan), Problem> {
    operator.caller.require(READERS, "read vends")?;
    let vend = console.app.vend_result(request_id).await?;
    let pan = vend["meter"]
        .as_str()
        .map(parse_pan)
        .transpose()?
        .ok_or_else(|| VendError::Internal(format!("stored vend {request_id} has no meter")))?;
    Ok((vend, pan))
}

/// A JSON value as plain text: strings as they are, anything else as JSON.
fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The tokens of a result, large, in groups of four.
fn token_list(vend: &Value) -> Markup {
    let tokens = vend["tokens"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let n = tokens.len();
    html! {
        @if n > 1 {
            p { "Enter the " (n) " tokens in this order:" }
        }
        ol.tokens.single[n == 1] {
            @for t in tokens {
                @let number = t["number"].as_str().unwrap_or("");
                li {
                    @if let Some(d) = t["description"].as_str() {
                        p.token-label { (d) }
                    }
                    p.token aria-label=(spoken(number)) { (groups(number)) }
                }
            }
        }
    }
}

pub(super) async fn result(
    State(console): State<Console>,
    operator: Operator,
    Path(request_id): Path<String>,
    Params(query): Params,
) -> Result<Page, Problem> {
    let (vend, pan) = stored(&console, &operator, &request_id).await?;
    let (title, notice) = match query.get("issued") {
        Some("new") => ("Token issued", None),
        Some("reprint") => (
            "Reprint",
            Some(Notice::Done(
                "This request was issued before (a repeated submit): these are the tokens \
                 issued then, nothing was vended twice."
                    .to_owned(),
            )),
        ),
        _ => ("Reprint", None),
    };
    let body = html! {
        p.meter-line { "Meter " a href={ "/console/meters/" (pan) } { (pan) } }
        (token_list(&vend))
        table.record {
            tbody {
                tr { th scope="row" { "What" } td { (summary(&vend)) } }
                (sale_rows(&vend))
                tr { th scope="row" { "TID" } td { @if let Some(tid) = vend["tid"].as_u64() { (tid) } @else { "-" } } }
                tr { th scope="row" { "Issued" } td { (vend["created"].as_i64().map(time).unwrap_or_default()) } }
                tr { th scope="row" { "Request ID" } td { code { (request_id) } } }
                tr { th scope="row" { "Security module" } td { (plain(&vend["security_module"])) } }
                @if let Some(kcv) = vend["check_value"].as_str() {
                    tr { th scope="row" { "Vending key check value" } td { code { (kcv) } } }
                }
            }
        }
        p.actions {
            a href={ "/console/vends/" (segment(&request_id)) "/receipt" } { "Printable receipt" }
            " "
            a href={ "/console/meters/" (pan) } { "Back to the meter" }
        }
    };
    Ok(Page {
        status: StatusCode::OK,
        html: page(&operator, title, notice.as_ref(), &body),
    })
}

/// The TI, KRN and SGC a stored result names (`key`), as text.
fn key_of(vend: &Value) -> Option<(String, String, String)> {
    let k = &vend["key"];
    Some((
        k["ti"].as_str()?.to_owned(),
        k["krn"].as_str()?.to_owned(),
        k["sgc"].as_str()?.to_owned(),
    ))
}

/// The tariff, money and free allowance rows of a result and its receipt (none for a vend
/// that has none).
fn sale_rows(vend: &Value) -> Markup {
    let tariff = &vend["tariff"];
    let money = &vend["money"];
    let allowance = &vend["allowance"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let unit = text(&tariff["unit"]);
    html! {
        @if tariff.is_object() {
            tr { th scope="row" { "Tariff" } td {
                (text(&tariff["utility"])) " TI " (text(&tariff["ti"])) ", version " (plain(&tariff["version"]))
                " (ID " (plain(&tariff["id"])) "): " (text(&tariff["price"])) " " (text(&tariff["currency"])) "/" (unit)
                ", in force from " (text(&tariff["effective_from"]).replace('T', " ").replace(":00Z", " UTC"))
            } }
        }
        @if money.is_object() {
            @let currency = text(&money["currency"]);
            tr { th scope="row" { "Paid" } td { (text(&money["paid"])) " " (currency) } }
            tr { th scope="row" { "Units bought" } td {
                (text(&money["units"])) " " (unit) " at " (text(&money["price"])) " = " (text(&money["cost"])) " " (currency)
            } }
            tr { th scope="row" { "Change" } td { (text(&money["change"])) " " (currency) " (not on the token)" } }
        }
        @if allowance.is_object() {
            tr { th scope="row" { "Free allowance" } td {
                (text(&allowance["units"])) " " (unit) " for " (text(&allowance["month"])) " (its own token, TID " (plain(&allowance["tid"])) ")"
            } }
        }
    }
}

/// A key record from a stored result's `key_change.to` (or `from`).
fn key_record_json(v: &Value) -> Option<KeyRecord> {
    let field = |name: &str| v[name].as_str();
    Some(KeyRecord {
        supply_group: field("sgc")?.parse().ok()?,
        tariff_index: field("ti")?.parse().ok()?,
        key_revision: field("krn")?.parse().ok()?,
        key_type: field("kt")?.parse().ok()?,
        base_date: field("base_date")?.parse().ok()?,
        derivation: field("dkga")?.parse().ok()?,
    })
}

/// How many of a meter's newest vends the receipt searches for past key records.
const KEY_HISTORY: i64 = 200;

/// The key record a stored vend was issued under, for results made before they stored it
/// (`key`). The result does not store it, and the
/// meter's record may have changed since, so each candidate is checked: the result's key
/// change target, the meter's current and target records, and the records before and after
/// each key change set in the meter's history. The security module must decode the vend's
/// dated token under it with the stored TID. `None` when no candidate does.
async fn issued_under(console: &Console, meter: &Meter, vend: &Value) -> Option<KeyRecord> {
    let set_target = key_record_json(&vend["key_change"]["to"]);
    let dated = vend["tokens"]
        .as_array()?
        .iter()
        .rev()
        .find(|t| t["tid"].as_u64().is_some());
    let Some(dated) = dated else {
        // A key change set alone: it moves the meter to its target.
        return set_target;
    };
    let number: TokenNumber = dated["number"].as_str()?.parse().ok()?;
    let tid = dated["tid"].as_u64()?;
    let history = console
        .app
        .vends_of(&meter.pan, 0, KEY_HISTORY)
        .await
        .unwrap_or_default();
    let past = history.iter().flat_map(|v| {
        [
            key_record_json(&v["key_change"]["from"]),
            key_record_json(&v["key_change"]["to"]),
        ]
    });
    let mut candidates: Vec<KeyRecord> = Vec::new();
    for record in [set_target, Some(meter.current), Some(meter.target)]
        .into_iter()
        .chain(past)
        .flatten()
    {
        if !candidates.contains(&record) {
            candidates.push(record);
        }
    }
    for record in candidates {
        let verified = console
            .app
            .security_module()
            .verify(&meter.description(&record), number)
            .await;
        if let Ok(v) = verified
            && v.token.tid().map(|t| u64::from(t.get())) == Some(tid)
        {
            return Some(record);
        }
    }
    None
}

pub(super) async fn receipt(
    State(console): State<Console>,
    operator: Operator,
    Path(request_id): Path<String>,
) -> Result<Page, Problem> {
    let (vend, pan) = stored(&console, &operator, &request_id).await?;
    // The result names the key record it was made under; older results do not, so the
    // console finds it by verifying the token.
    let record = match key_of(&vend) {
        Some(k) => Some(k),
        None => {
            let meter = console.app.db().meter(&pan).await?;
            issued_under(&console, &meter, &vend).await.map(|r| {
                (
                    r.tariff_index.to_string(),
                    r.key_revision.to_string(),
                    r.supply_group.to_string(),
                )
            })
        }
    };
    let body = html! {
        div.receipt {
            table.record {
                tbody {
                    tr { th scope="row" { "Meter" } td { (pan) } }
                    tr { th scope="row" { "Date" } td { (vend["created"].as_i64().map(time).unwrap_or_default()) } }
                    tr { th scope="row" { "Units" } td { (summary(&vend)) } }
                    (sale_rows(&vend))
                    @match &record {
                        Some((ti, krn, sgc)) => {
                            tr { th scope="row" { "TI" } td { (ti) } }
                            tr { th scope="row" { "KRN" } td { (krn) } }
                            tr { th scope="row" { "SGC" } td { (sgc) } }
                        },
                        None => {
                            tr { th scope="row" { "TI, KRN, SGC" } td { "not on record (the key record it was issued under is not known here)" } }
                        },
                    }
                    tr { th scope="row" { "TID" } td { @if let Some(tid) = vend["tid"].as_u64() { (tid) } @else { "-" } } }
                    tr { th scope="row" { "Reference" } td { code { (request_id) } } }
                }
            }
            (token_list(&vend))
        }
        p.actions.no-print {
            button type="button" data-print hidden { "Print" }
            " "
            a href={ "/console/vends/" (segment(&request_id)) } { "Back to the result" }
        }
    };
    Ok(Page {
        status: StatusCode::OK,
        html: page(&operator, "Receipt", None, &body),
    })
}
