//! Key change campaigns: their progress, for every role (as `GET /v1/campaigns`). Campaigns
//! are created and run at the command line (`sts campaign`); the console only shows them.

use axum::{
    extract::{Path, State},
    http::StatusCode,
};
use maud::{Markup, html};

use super::{
    Console,
    page::{Page, Problem, page, time},
    session::Operator,
};
use crate::{Campaign, VendError, api::CAMPAIGN_PROBLEMS, auth::READERS};

/// `done of total (percent)` and a `<progress>` bar (no inline style: the CSP forbids it).
fn progress(c: &Campaign) -> Markup {
    let total = c.selected.max(c.processed);
    let percent = (c.processed * 100).checked_div(total).unwrap_or(100);
    html! {
        progress value=(c.processed) max=(total.max(1)) aria-label={ "Progress of campaign " (c.name) } { (percent) "%" }
        " " (c.processed) " of " (total) " meters (" (percent) "%)"
    }
}

fn key_change(c: &Campaign) -> String {
    let t = &c.target;
    let mut parts = Vec::new();
    if let Some(v) = t.supply_group {
        parts.push(format!("SGC {v}"));
    }
    if let Some(v) = t.tariff_index {
        parts.push(format!("TI {v}"));
    }
    if let Some(v) = t.key_revision {
        parts.push(format!("KRN {v}"));
    }
    if let Some(v) = t.base_date {
        parts.push(format!("base date {v}"));
    }
    if let Some(v) = t.derivation {
        parts.push(format!("DKGA {v}"));
    }
    parts.join(", ")
}

fn selection(c: &Campaign) -> String {
    let s = &c.selection;
    let mut parts = Vec::new();
    if let Some(v) = s.supply_group {
        parts.push(format!("SGC {v}"));
    }
    if let Some(v) = s.key_revision {
        parts.push(format!("KRN {v}"));
    }
    if let Some(v) = s.base_date {
        parts.push(format!("base date {v}"));
    }
    if c.pan_list {
        parts.push("a PAN list".to_owned());
    }
    if parts.is_empty() {
        "every meter".to_owned()
    } else {
        parts.join(", ")
    }
}

pub(super) async fn list(
    State(console): State<Console>,
    operator: Operator,
) -> Result<Page, Problem> {
    operator.caller.require(READERS, "read campaigns")?;
    let campaigns = console.app.db().campaigns().await?;
    let body = html! {
        p { "Key change campaigns move many meters to a new key record; each meter's set is handed out with its next purchase. They are created and run with " code { "sts campaign" } "." }
        @if campaigns.is_empty() {
            p { "No campaigns." }
        } @else {
            table {
                thead { tr {
                    th scope="col" { "Campaign" } th scope="col" { "Meters holding" }
                    th scope="col" { "Moves to" } th scope="col" { "State" } th scope="col" { "Progress" }
                    th scope="col" { "Delivered" }
                } }
                tbody {
                    @for c in &campaigns {
                        tr {
                            td { a href={ "/console/campaigns/" (c.id) } { (c.name) } }
                            td { (selection(c)) }
                            td { (key_change(c)) }
                            td { (c.state) }
                            td { (progress(c)) }
                            td { (c.items.delivered) " of " (c.items.delivered + c.items.pending) }
                        }
                    }
                }
            }
        }
    };
    Ok(Page {
        status: StatusCode::OK,
        html: page(&operator, "Campaigns", None, &body),
    })
}

pub(super) async fn show(
    State(console): State<Console>,
    operator: Operator,
    Path(id): Path<String>,
) -> Result<Page, Problem> {
    operator.caller.require(READERS, "read campaigns")?;
    let id: i64 = id
        .parse()
        .map_err(|_| VendError::NotFound(format!("campaign {id:?}")))?;
    let db = console.app.db();
    let c = db.campaign(id).await?;
    let problems = db.campaign_problems(id, "", CAMPAIGN_PROBLEMS).await?;
    let i = &c.items;
    let body = html! {
        p { (progress(&c)) }
        p { a href={ "/console/campaigns/" (c.id) } { "Refresh" } }
        dl {
            dt { "Meters holding" } dd { (selection(&c)) }
            dt { "Moves them to" } dd { (key_change(&c)) @if c.target.include_supply_group { ", SGC sent in every set" } }
            dt { "State" } dd { (c.state) @if let Some(p) = c.checkpoint { ", up to PAN " (p) } }
            dt { "Chunks" } dd { (c.chunks) " of up to " (c.chunk_size) " meters" }
            dt { "Sets waiting for a purchase" } dd { (i.pending) }
            dt { "Sets delivered" } dd { (i.delivered) }
            dt { "Failed" } dd { (i.failed) }
            dt { "Skipped" } dd { (i.skipped) }
            dt { "Superseded" } dd { (i.superseded) }
            dt { "Exported for field teams" } dd { (i.exported) }
            dt { "Created" } dd { (time(c.created)) }
            @if let Some(t) = c.started { dt { "First run" } dd { (time(t)) } }
            @if let Some(t) = c.finished { dt { "Done" } dd { (time(t)) } }
        }
        @if !problems.is_empty() {
            h2 { "Meters without a set" }
            table {
                thead { tr { th scope="col" { "PAN" } th scope="col" { "State" } th scope="col" { "Why" } } }
                tbody {
                    @for p in &problems {
                        tr {
                            td { a href={ "/console/meters/" (p.pan) } { (p.pan) } }
                            td { (p.state) }
                            td { (p.reason) }
                        }
                    }
                }
            }
            @if problems.len() as i64 == CAMPAIGN_PROBLEMS {
                p { "The first " (CAMPAIGN_PROBLEMS) " are shown; " code { "sts campaign status" } " lists them all." }
            }
        }
    };
    Ok(Page {
        status: StatusCode::OK,
        html: page(&operator, &format!("Campaign {}", c.name), None, &body),
    })
}
