//! The audit trail, newest first, a page at a time (admin and auditor, as `GET /v1/audit`).

use axum::{extract::State, http::StatusCode};
use maud::html;

use super::{
    Console,
    form::Params,
    page::{Page, Problem, page, segment, time},
    session::Operator,
};
use crate::auth::AUDIT_READERS;

/// Rows per page.
const PAGE: i64 = 50;

pub(super) async fn trail(
    State(console): State<Console>,
    operator: Operator,
    Params(query): Params,
) -> Result<Page, Problem> {
    operator
        .caller
        .require(AUDIT_READERS, "read the audit table")?;
    let db = console.app.db();
    let newest: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM audit")
        .fetch_one(db.pool())
        .await?;
    // A page holds the rows after `after`; the first page is the newest.
    let after = match query.get("after") {
        Some(text) => text
            .parse::<i64>()
            .map_err(|_| Problem::Form("after: an audit sequence number".to_owned()))?
            .clamp(0, newest),
        None => (newest - PAGE).max(0),
    };
    let mut rows = db.audit(after, PAGE).await?;
    rows.reverse();
    let body = html! {
        p { "Every change: who (API key), why (request ID) and with what (security module, vending key check value). Never a token number or key." }
        @if rows.is_empty() {
            p { "No entries." }
        } @else {
            table.audit {
                thead { tr {
                    th scope="col" { "#" } th scope="col" { "Time" } th scope="col" { "Action" }
                    th scope="col" { "API key" } th scope="col" { "Request ID" }
                    th scope="col" { "Security module, KCV" } th scope="col" { "Details" }
                } }
                tbody {
                    @for r in &rows {
                        tr {
                            td { (r.seq) }
                            td { (time(r.time)) }
                            td { (r.action) }
                            td { code { (r.key_id.as_deref().unwrap_or("(command line)")) } }
                            td {
                                @if let Some(rid) = &r.request_id {
                                    a href={ "/console/vends/" (segment(rid)) } { code { (rid) } }
                                }
                            }
                            td { (r.sm_id.as_deref().unwrap_or("")) " " code { (r.kcv.as_deref().unwrap_or("")) } }
                            td { code.details { (r.details.to_string()) } }
                        }
                    }
                }
            }
        }
        nav.pages aria-label="Audit pages" {
            @if after + PAGE < newest {
                a href={ "/console/audit?after=" (after + PAGE) } { "Newer entries" } " "
            }
            @if after > 0 {
                a href={ "/console/audit?after=" ((after - PAGE).max(0)) } { "Older entries" }
            }
        }
    };
    Ok(Page {
        status: StatusCode::OK,
        html: page(&operator, "Audit trail", None, &body),
    })
}
