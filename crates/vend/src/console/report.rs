//! The daily sales report (admin and auditor, as `GET /v1/reports/daily`): a form for the
//! days, the table, and its CSV download.

use axum::{
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use maud::html;

use super::{
    Console,
    form::Params,
    page::{Notice, Page, Problem, page, vend_error_text},
    session::Operator,
};
use crate::{VendError, auth::REPORT_READERS, calendar};

/// The days asked for: both given, or today (UTC, by the service's clock) for both.
fn days(console: &Console, query: &super::form::Fields) -> (String, String) {
    let today = calendar::date(console.app.db().now().div_euclid(calendar::SECONDS_PER_DAY));
    (
        query.get("from").unwrap_or(&today).to_owned(),
        query.get("to").unwrap_or(&today).to_owned(),
    )
}

/// A query string value: dates are digits and dashes, anything else is percent-encoded.
fn query_value(text: &str) -> String {
    super::page::segment(text)
}

pub(super) async fn daily(
    State(console): State<Console>,
    operator: Operator,
    Params(query): Params,
) -> Result<Page, Problem> {
    operator
        .caller
        .require(REPORT_READERS, "read sales reports")?;
    let (from, to) = days(&console, &query);
    let report = console.app.db().daily_report(Some(&from), Some(&to)).await;
    let (status, notice, report) = match report {
        Ok(r) => (StatusCode::OK, None, Some(r)),
        Err(e @ VendError::Invalid { .. }) => {
            let (status, text) = vend_error_text(&e);
            (status, Some(Notice::Error(text)), None)
        }
        Err(e) => return Err(e.into()),
    };
    let body = html! {
        p { "Credit vends per UTC day, per vendor (API key) and per tariff version: sales, units bought, money paid and free allowances. Management tokens and key changes are not sales." }
        form.report method="get" action="/console/reports/daily" {
            p {
                label for="from" { "From (YYYY-MM-DD, UTC)" }
                input #from type="date" name="from" value=(from) required;
            }
            p {
                label for="to" { "To (included)" }
                input #to type="date" name="to" value=(to) required;
            }
            p { button type="submit" { "Show" } }
        }
        @if let Some(report) = &report {
            @let lines = report.lines();
            @if lines.is_empty() {
                p { "No sales from " (from) " to " (to) "." }
            } @else {
                table.report {
                    thead { tr {
                        th scope="col" { "Day" } th scope="col" { "Vendor (API key)" } th scope="col" { "Name" }
                        th scope="col" { "Tariff" } th scope="col" { "Sales" } th scope="col" { "Units" }
                        th scope="col" { "Money" } th scope="col" { "Free allowance" }
                    } }
                    tbody {
                        @for [day, vendor, name, tariff, sales, units, money, free] in &lines {
                            tr {
                                td { (day) } td { code { (vendor) } } td { (name) } td { (tariff) }
                                td.number { (sales) } td.number { (units) } td.number { (money) } td.number { (free) }
                            }
                        }
                    }
                }
            }
            p { a href={ "/console/reports/daily.csv?from=" (query_value(&from)) "&to=" (query_value(&to)) } { "Download as CSV" } }
        }
    };
    Ok(Page {
        status,
        html: page(&operator, "Daily sales", notice.as_ref(), &body),
    })
}

pub(super) async fn daily_csv(
    State(console): State<Console>,
    operator: Operator,
    Params(query): Params,
) -> Result<Response, Problem> {
    operator
        .caller
        .require(REPORT_READERS, "read sales reports")?;
    let (from, to) = days(&console, &query);
    let report = console
        .app
        .db()
        .daily_report(Some(&from), Some(&to))
        .await?;
    let disposition = format!("attachment; filename=\"{}\"", report.file_name());
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        report.to_csv(),
    )
        .into_response())
}
