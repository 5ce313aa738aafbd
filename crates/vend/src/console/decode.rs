//! Decode and verify a token a customer reads out: is it valid for this meter, what does it
//! carry, and did this service issue it?
//!
//! The form is a `POST` so that token digits stay out of URLs (and so out of access logs and
//! browser history).

use axum::{extract::State, http::StatusCode};
use maud::{Markup, html};
use sqlx::Row;
use sts_core::TokenNumber;
use sts_keys::sm::Verified;

use super::{
    Console,
    form::Fields,
    page::{Notice, Page, Problem, groups, page, segment, time, vend_error_text},
    session::Operator,
};
use crate::{KeyRecord, VendError, auth::READERS, meters::parse_pan};

fn decode_form(csrf: &str, pan: &str, token: &str) -> Markup {
    html! {
        form method="post" action="/console/decode" {
            input type="hidden" name="csrf" value=(csrf);
            p {
                label for="pan" { "Meter number (PAN or DRN)" }
                input #pan type="text" name="pan" value=(pan) inputmode="numeric"
                    autocomplete="off" required spellcheck="false";
            }
            p {
                label for="token" { "Token (20 digits; spaces and dashes are ignored)" }
                input #token type="text" name="token" value=(token) inputmode="numeric"
                    autocomplete="off" required spellcheck="false";
            }
            p { button type="submit" { "Decode" } }
        }
    }
}

pub(super) async fn form(operator: Operator) -> Result<Page, Problem> {
    operator.caller.require(READERS, "read meters")?;
    Ok(Page {
        status: StatusCode::OK,
        html: page(
            &operator,
            "Decode a token",
            None,
            &decode_form(&operator.csrf, "", ""),
        ),
    })
}

/// What decoding found.
enum Finding {
    /// The token decodes under one of the meter's key records.
    Valid {
        verified: Verified,
        record: KeyRecord,
        /// The vend that issued it here: request ID and time.
        issued_here: Option<(String, i64)>,
    },
    /// It does not: why, per key record tried.
    Invalid(String),
}

pub(super) async fn decode(
    State(console): State<Console>,
    operator: Operator,
    fields: Fields,
) -> Result<Page, Problem> {
    operator.check_csrf(fields.get("csrf"))?;
    operator.caller.require(READERS, "read meters")?;
    let pan_text = fields.get("pan").unwrap_or("");
    let token_text = fields.get("token").unwrap_or("");
    let form = decode_form(&operator.csrf, pan_text, token_text);
    let refuse = |status: StatusCode, text: String| Page {
        status,
        html: page(
            &operator,
            "Decode a token",
            Some(&Notice::Error(text)),
            &form,
        ),
    };
    let pan = match parse_pan(pan_text) {
        Ok(pan) => pan,
        Err(e) => {
            let (status, text) = vend_error_text(&e);
            return Ok(refuse(status, text));
        }
    };
    let number: TokenNumber = match token_text.parse() {
        Ok(n) => n,
        Err(e) => {
            return Ok(refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("token: {e}"),
            ));
        }
    };
    let meter = match console.app.db().meter(&pan).await {
        Ok(m) => m,
        Err(e) => {
            let (status, text) = vend_error_text(&e);
            return Ok(refuse(status, text));
        }
    };
    let mut records = vec![meter.current];
    if meter.key_change_pending() {
        records.push(meter.target);
    }
    let mut reasons = Vec::new();
    let mut finding = None;
    for record in records {
        match console
            .app
            .security_module()
            .verify(&meter.description(&record), number)
            .await
        {
            Ok(verified) => {
                finding = Some(Finding::Valid {
                    verified,
                    record,
                    issued_here: issued_here(&console, &pan.to_string(), number).await?,
                });
                break;
            }
            Err(e) => {
                let (status, text) = vend_error_text(&VendError::from(e));
                if status.is_server_error() {
                    return Ok(refuse(status, text));
                }
                reasons.push(format!(
                    "under KRN {} (SGC {}, TI {}): {text}",
                    record.key_revision, record.supply_group, record.tariff_index
                ));
            }
        }
    }
    let finding = finding.unwrap_or_else(|| Finding::Invalid(reasons.join("; ")));
    tracing::info!(
        pan = pan.as_str(),
        key = operator.caller.key_id,
        valid = matches!(finding, Finding::Valid { .. }),
        "console decode"
    );
    let digits = number.to_string();
    let body = html! {
        (form)
        section aria-labelledby="finding-heading" {
            @match &finding {
                Finding::Valid { verified, record, issued_here } => {
                    h2 #finding-heading { "Valid for meter " (pan) }
                    p.token { (groups(&digits)) }
                    p.explanation { (verified.description) }
                    table.record { tbody {
                        tr { th scope="row" { "Class, subclass" } td { (verified.token.class().get()) ", " (verified.token.subclass().get()) } }
                        tr { th scope="row" { "TID" } td {
                            @if let Some(tid) = verified.token.tid() { (tid.get()) } @else { "-" }
                        } }
                        tr { th scope="row" { "Issued (from the TID)" } td {
                            @if let Some(at) = verified.issued_at { (at) " UTC" } @else { "-" }
                        } }
                        tr { th scope="row" { "Key record" } td {
                            "SGC " (record.supply_group) ", TI " (record.tariff_index) ", KRN " (record.key_revision)
                        } }
                        tr { th scope="row" { "Vending key check value" } td { code { (verified.check_value.to_hex()) } } }
                        tr { th scope="row" { "Issued by this service" } td {
                            @match issued_here {
                                Some((rid, created)) => {
                                    "yes: " a href={ "/console/vends/" (segment(rid)) } { (rid) } ", " (time(*created))
                                },
                                None => "no: not among this service's vends to the meter",
                            }
                        } }
                    } }
                    p { "Whether the meter has already accepted it only the meter knows (its TID memory)." }
                },
                Finding::Invalid(why) => {
                    h2 #finding-heading { "Not valid for meter " (pan) }
                    p.token { (groups(&digits)) }
                    p.notice.error role="alert" { (why) }
                    p { "A digit misheard, a token for another meter, or one made with another key all look like this: check the digits with the customer." }
                },
            }
        }
    };
    Ok(Page {
        status: StatusCode::OK,
        html: page(&operator, "Decode a token", None, &body),
    })
}

/// The vend of this service that issued `number` to the meter, if any.
async fn issued_here(
    console: &Console,
    pan: &str,
    number: TokenNumber,
) -> Result<Option<(String, i64)>, Problem> {
    let row = sqlx::query(
        "SELECT vends.request_id, vends.created FROM tokens \
         JOIN vends ON vends.request_id = tokens.request_id \
         WHERE tokens.pan = $1 AND tokens.number = $2",
    )
    .bind(pan)
    .bind(number.to_string())
    .fetch_optional(console.app.db().pool())
    .await?;
    Ok(match row {
        Some(r) => Some((r.try_get(0)?, r.try_get(1)?)),
        None => None,
    })
}
