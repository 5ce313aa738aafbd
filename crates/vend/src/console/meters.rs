//! Finding meters and the meter page: key record, status, vend forms by role, history.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use maud::{Markup, html};
use serde_json::Value;
use sts_core::MeterPan;

use super::{
    Console,
    form::Params,
    page::{
        Notice, Page, Problem, groups, may_credit, may_manage, page, segment, time, vend_error_text,
    },
    session::{Operator, random_hex},
};
use crate::{KeyRecord, Meter, Tariff, VendError, auth::READERS, meters::parse_pan};

/// Meters per page of the list, vends per page of a meter's history.
const PAGE: i64 = 50;

fn find_form(value: &str) -> Markup {
    html! {
        form.find method="get" action="/console/meters" role="search" {
            p {
                label for="pan" { "Meter number (PAN, 18 digits, or DRN, 11 or 13 digits)" }
                input #pan type="text" name="pan" value=(value) inputmode="numeric"
                    autocomplete="off" required spellcheck="false";
            }
            p { button type="submit" { "Find meter" } }
        }
    }
}

pub(super) async fn home(operator: Operator) -> Result<Page, Problem> {
    operator.caller.require(READERS, "read meters")?;
    Ok(Page {
        status: StatusCode::OK,
        html: page(&operator, "Find a meter", None, &find_form("")),
    })
}

/// `?pan=` finds one meter (and redirects to it); otherwise lists meters in PAN order.
pub(super) async fn list(
    State(console): State<Console>,
    operator: Operator,
    Params(query): Params,
) -> Result<Response, Problem> {
    operator.caller.require(READERS, "read meters")?;
    let db = console.app.db();
    if let Some(text) = query.get("pan") {
        let problem = match parse_pan(text) {
            Ok(pan) => match db.meter(&pan).await {
                Ok(meter) => {
                    let to = format!("/console/meters/{}", meter.pan);
                    return Ok(Redirect::to(&to).into_response());
                }
                Err(e) => e,
            },
            Err(e) => e,
        };
        let (status, text) = vend_error_text(&problem);
        let html = page(
            &operator,
            "Find a meter",
            Some(&Notice::Error(text)),
            &find_form(text_or_blank(query.get("pan"))),
        );
        return Ok(Page { status, html }.into_response());
    }
    let after = query.get("after").unwrap_or("");
    let meters = db.meters(after, PAGE).await?;
    let body = html! {
        (find_form(""))
        h2 { "Registered meters" }
        @if meters.is_empty() {
            p { "No meters" @if !after.is_empty() { " after " (after) } "." }
        } @else {
            table {
                thead { tr {
                    th scope="col" { "PAN" } th scope="col" { "SGC" } th scope="col" { "TI" }
                    th scope="col" { "KRN" } th scope="col" { "Utility" } th scope="col" { "Status" }
                } }
                tbody {
                    @for m in &meters {
                        tr {
                            td { a href={ "/console/meters/" (m.pan) } { (m.pan) } }
                            td { (m.target.supply_group) } td { (m.target.tariff_index) }
                            td { (m.target.key_revision) } td { (crate::meters::service_name(m.utility)) }
                            td { (m.status) @if m.key_change_pending() { ", key change pending" } }
                        }
                    }
                }
            }
            @if let (true, Some(last)) = (meters.len() as i64 == PAGE, meters.last()) {
                p { a href={ "/console/meters?after=" (last.pan) } { "Next meters" } }
            }
        }
    };
    Ok(Page {
        status: StatusCode::OK,
        html: page(&operator, "Meters", None, &body),
    }
    .into_response())
}

fn text_or_blank(v: Option<&str>) -> &str {
    v.unwrap_or("")
}

pub(super) async fn show(
    State(console): State<Console>,
    operator: Operator,
    Path(pan): Path<String>,
    Params(query): Params,
) -> Result<Page, Problem> {
    let before = query
        .get("before")
        .map(str::parse::<i64>)
        .transpose()
        .map_err(|_| Problem::Form("before: a vend sequence number".to_owned()))?
        .unwrap_or(0);
    meter_page(&console, &operator, &pan, None, before).await
}

/// The meter page, optionally with a notice (a refused vend, shown with status `status`).
pub(super) async fn meter_page(
    console: &Console,
    operator: &Operator,
    pan: &str,
    notice: Option<(StatusCode, Notice)>,
    before: i64,
) -> Result<Page, Problem> {
    operator.caller.require(READERS, "read meters")?;
    let pan = parse_pan(pan)?;
    let meter = console.app.db().meter(&pan).await?;
    let vends = console.app.vends_of(&pan, before, PAGE).await?;
    // The next vend is made under the target key record (after a pending key change set).
    let tariff = console
        .app
        .db()
        .tariff_in_force(meter.utility, meter.target.tariff_index)
        .await?;
    let role = operator.caller.role;
    let form_id =
        || -> Result<String, VendError> { Ok(format!("console-{}", &random_hex()?[..32])) };
    let body = html! {
        (key_record(&meter))
        @if may_credit(role) { (credit_form(&meter, tariff.as_ref(), &operator.csrf, &form_id()?)) }
        @if may_manage(role) {
            (management_form(&meter.pan, &operator.csrf, &form_id()?))
            (key_change_form(&meter, &operator.csrf, &form_id()?))
        }
        (history(&meter.pan, &vends, before))
    };
    let (status, notice) = match notice {
        Some((status, notice)) => (status, Some(notice)),
        None => (StatusCode::OK, None),
    };
    Ok(Page {
        status,
        html: page(
            operator,
            &format!("Meter {}", meter.pan),
            notice.as_ref(),
            &body,
        ),
    })
}

/// The form's hidden fields: the session's CSRF token and this render's request ID.
fn hidden(csrf: &str, request_id: &str) -> Markup {
    html! {
        input type="hidden" name="csrf" value=(csrf);
        input type="hidden" name="request_id" value=(request_id);
    }
}

fn record_rows(k: &KeyRecord) -> Markup {
    html! {
        tr { th scope="row" { "Supply group code (SGC)" } td { (k.supply_group) } }
        tr { th scope="row" { "Tariff index (TI)" } td { (k.tariff_index) } }
        tr { th scope="row" { "Key revision number (KRN)" } td { (k.key_revision) } }
        tr { th scope="row" { "Key type (KT)" } td { (k.key_type) } }
        tr { th scope="row" { "Base date" } td { (k.base_date) } }
        tr { th scope="row" { "Key derivation (DKGA)" } td { (k.derivation) } }
    }
}

fn key_record(meter: &Meter) -> Markup {
    html! {
        h2 { "Key record and status" }
        table.record {
            tbody {
                tr { th scope="row" { "Status" } td { (meter.status) } }
                tr { th scope="row" { "Utility" } td { (crate::meters::service_name(meter.utility)) } }
                (record_rows(&meter.target))
                tr { th scope="row" { "Encryption algorithm (EA)" } td { (meter.algorithm) } }
                tr { th scope="row" { "Key expiry number (KEN)" } td { (meter.key_expiry) } }
                tr { th scope="row" { "Last TID" } td {
                    @match meter.last_tid {
                        Some((base, tid)) => { (tid.get()) " (" (tid.to_time(base)) " UTC)" },
                        None => "none yet",
                    }
                } }
            }
        }
        @if meter.key_change_pending() {
            div.notice.pending role="note" {
                p { strong { "Key change pending." } " The meter holds the record below; the next token starts with a key change set (or an engineer issues it)." }
                table.record { tbody { (record_rows(&meter.current)) } }
            }
        }
    }
}

fn credit_form(meter: &Meter, tariff: Option<&Tariff>, csrf: &str, request_id: &str) -> Markup {
    let unit = meter.utility.unit();
    html! {
        section aria-labelledby="credit-heading" {
            h2 #credit-heading { "Vend credit" }
            p #tariff-in-force {
                @match tariff {
                    Some(t) => {
                        "Tariff in force: " (t.price()) " " (t.currency()) "/" (unit)
                        " (version " (t.version()) ", ID " (t.id()) ")"
                        @if let Some(a) = t.allowance_tenths() {
                            "; free allowance " (a / 10) "." (a % 10) " " (unit) " with the first purchase of each month (UTC)"
                        }
                        "."
                    },
                    None => { "No tariff is in force for this meter's utility and TI: money cannot be sold, units can." },
                }
            }
            form method="post" action={ "/console/meters/" (meter.pan) "/credit" } {
                (hidden(csrf, request_id))
                p {
                    label for="credit_type" { "Kind" }
                    select #credit_type name="type" aria-describedby="tariff-in-force" {
                        option value="credit" selected { "Units (" (unit) ")" }
                        @if let Some(t) = tariff {
                            option value="money" { "Money (" (t.currency()) ", priced by the tariff)" }
                        }
                        option value="currency" { "Currency token" }
                    }
                }
                p {
                    label for="amount" { "Amount (units with at most one decimal, money, or currency)" }
                    input #amount type="text" name="amount" inputmode="decimal" autocomplete="off"
                        required;
                }
                p { button type="submit" { "Vend" } }
            }
        }
    }
}

fn management_form(pan: &MeterPan, csrf: &str, request_id: &str) -> Markup {
    html! {
        section aria-labelledby="management-heading" {
            h2 #management-heading { "Management token" }
            form method="post" action={ "/console/meters/" (pan) "/management" } {
                (hidden(csrf, request_id))
                p {
                    label for="management_type" { "Token" }
                    select #management_type name="type" {
                        option value="max_power" { "Set maximum power limit (watts)" }
                        option value="phase_unbalance" { "Set maximum phase power unbalance limit (watts)" }
                        option value="clear_credit" { "Clear credit (register: empty for all, or 0-7)" }
                        option value="clear_tamper" { "Clear tamper condition (no value)" }
                        option value="tariff_rate" { "Set tariff rate (0-65535)" }
                        option value="water_factor" { "Set water meter factor (0-65535)" }
                    }
                }
                p {
                    label for="management_value" { "Value" }
                    input #management_value type="text" name="value" inputmode="numeric"
                        autocomplete="off";
                }
                p { button type="submit" { "Issue management token" } }
            }
        }
    }
}

fn key_change_form(meter: &Meter, csrf: &str, request_id: &str) -> Markup {
    html! {
        section aria-labelledby="key-change-heading" {
            h2 #key-change-heading { "Key change set" }
            form method="post" action={ "/console/meters/" (meter.pan) "/key-change" } {
                (hidden(csrf, request_id))
                p {
                    @if meter.key_change_pending() {
                        "Moves the meter to the key record above."
                    } @else {
                        "No key change is pending: this re-issues the set for the current record."
                    }
                }
                p.check {
                    input #include_sgc type="checkbox" name="include_sgc" value="yes";
                    label for="include_sgc" { "Include the SGC tokens (a new supply group)" }
                }
                p { button type="submit" { "Issue key change set" } }
            }
        }
    }
}

/// The tokens of a stored vend result.
pub(super) fn token_numbers(vend: &Value) -> Vec<&str> {
    vend["tokens"]
        .as_array()
        .map(|ts| ts.iter().filter_map(|t| t["number"].as_str()).collect())
        .unwrap_or_default()
}

/// What a stored vend asked for, in a few words.
pub(super) fn summary(vend: &Value) -> String {
    let amount = &vend["amount"];
    if let Some(units) = amount["units"].as_str() {
        let unit = amount["service"]
            .as_str()
            .and_then(|s| crate::meters::parse_service(s).ok())
            .map_or("units", |s| s.unit());
        let mut text = format!("{units} {unit}");
        if let (Some(paid), Some(currency)) = (
            vend["money"]["paid"].as_str(),
            vend["money"]["currency"].as_str(),
        ) {
            text.push_str(&format!(" for {paid} {currency}"));
        }
        if let Some(free) = vend["allowance"]["units"].as_str() {
            text.push_str(&format!(" + {free} {unit} free allowance"));
        }
        return text;
    }
    if let Some(currency) = amount["currency"].as_str() {
        return format!("currency {currency}");
    }
    let kind = vend["kind"].as_str().unwrap_or("vend");
    match vend["request"]["type"].as_str() {
        Some(t) if t != kind => format!("{kind}: {t}"),
        _ => kind.to_owned(),
    }
}

fn history(pan: &MeterPan, vends: &[Value], before: i64) -> Markup {
    html! {
        section aria-labelledby="history-heading" {
            h2 #history-heading { "History" }
            @if vends.is_empty() {
                p { "No vends" @if before > 0 { " before this page" } "." }
            } @else {
                table.history {
                    thead { tr {
                        th scope="col" { "Issued" } th scope="col" { "What" }
                        th scope="col" { "TID" } th scope="col" { "Tokens" }
                        th scope="col" { "Request ID" } th scope="col" { "Actions" }
                    } }
                    tbody {
                        @for v in vends {
                            @let rid = v["request_id"].as_str().unwrap_or("");
                            tr {
                                td { (v["created"].as_i64().map(time).unwrap_or_default()) }
                                td { (summary(v)) }
                                td { @if let Some(tid) = v["tid"].as_u64() { (tid) } }
                                td {
                                    @for n in token_numbers(v) {
                                        span.token-small { (groups(n)) } br;
                                    }
                                }
                                td { code { (rid) } }
                                td {
                                    a href={ "/console/vends/" (segment(rid)) } { "Reprint" }
                                    " "
                                    a href={ "/console/vends/" (segment(rid)) "/receipt" } { "Receipt" }
                                }
                            }
                        }
                    }
                }
                @if let (true, Some(last)) = (vends.len() as i64 == PAGE, vends.last().and_then(|v| v["sequence"].as_i64())) {
                    p { a href={ "/console/meters/" (pan) "?before=" (last) } { "Older vends" } }
                }
            }
        }
    }
}
