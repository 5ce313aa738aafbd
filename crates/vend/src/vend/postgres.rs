//! A batch of credit vends written to PostgreSQL in one statement.
//!
//! On PostgreSQL each statement is a round trip to another process, and under load a round
//! trip costs 0.3-1 ms here (the server process has to be scheduled), more than the rows it
//! writes. The multi-row `INSERT`s of the portable path (see [`super::record_many`]) are also
//! a new statement text for every batch size, parsed and planned again, with hundreds of
//! parameters each. So a batch's vends, tokens, allowances and audit rows and its meters'
//! last TIDs go in one statement of constant text: data-modifying `WITH` clauses, each
//! reading its rows from one JSON parameter with `json_populate_recordset` and the table's
//! own row type (PostgreSQL 9.4+; also CockroachDB 21.2+ and YugabyteDB). The statement is
//! prepared once per connection; the foreign keys between the tables are checked at its end,
//! as for separate statements.

use serde_json::{Value, json};
use sqlx::{Any, Transaction};

use super::{Record, VendRow, audit_entries, grant_rows, token_rows, vend_rows};
use crate::{VendError, db::now_seconds, meters::Meter, tariff::Tariff};

const WRITE_BATCH: &str = "\
WITH v AS (
    INSERT INTO vends (request_id, pan, kind, request, response, sm_id, kcv, tid, key_id,
        created, tariff_id, units_tenths, money_minor, allowance_tenths)
    SELECT request_id, pan, kind, request, response, sm_id, kcv, tid, key_id,
        created, tariff_id, units_tenths, money_minor, allowance_tenths
    FROM json_populate_recordset(NULL::vends, $1::json) WITH ORDINALITY AS r ORDER BY ordinality
), t AS (
    INSERT INTO tokens (request_id, position, pan, number, class, subclass, tid, tid_base)
    SELECT request_id, position, pan, number, class, subclass, tid, tid_base
    FROM json_populate_recordset(NULL::tokens, $2::json)
), g AS (
    INSERT INTO allowances (pan, month, request_id, tariff_id, tenths, created)
    SELECT pan, month, request_id, tariff_id, tenths, created
    FROM json_populate_recordset(NULL::allowances, $3::json)
), a AS (
    INSERT INTO audit (time, key_id, request_id, sm_id, kcv, action, details)
    SELECT time, key_id, request_id, sm_id, kcv, action, details
    FROM json_populate_recordset(NULL::audit, $4::json) WITH ORDINALITY AS r ORDER BY ordinality
)
UPDATE meters SET last_tid = m.last_tid, last_tid_base = m.last_tid_base, updated = m.updated,
    version = meters.version + 1
FROM json_populate_recordset(NULL::meters, $5::json) AS m
WHERE meters.pan = m.pan";

/// Writes the results, tokens, allowances and audit entries of `records` and the last TIDs
/// of `meters` inside `tx`, in one statement; returns the answers in order.
pub(super) async fn record_batch(
    tx: &mut Transaction<'_, Any>,
    records: &[Record<'_>],
    meters: &[&Meter],
) -> Result<Vec<Value>, VendError> {
    let rows = vend_rows(records);
    let vends: Vec<Value> = rows.iter().map(vend_json).collect();
    let tokens: Vec<Value> = token_rows(records)
        .into_iter()
        .map(|(r, position, t)| {
            json!({
                "request_id": r.request_id,
                "position": position,
                "pan": r.pan.as_str(),
                "number": t.number.to_string(),
                "class": t.class,
                "subclass": t.subclass,
                "tid": t.tid,
                "tid_base": t.tid.map(|_| r.tid_base.as_str()),
            })
        })
        .collect();
    let grants: Vec<Value> = grant_rows(records)
        .into_iter()
        .map(|(r, g)| {
            json!({
                "pan": r.pan.as_str(),
                "month": g.month,
                "request_id": r.request_id,
                "tariff_id": g.tariff_id,
                "tenths": g.amount.value(),
                "created": r.now,
            })
        })
        .collect();
    let now = now_seconds();
    let audit: Vec<Value> = audit_entries(&rows)
        .into_iter()
        .map(|e| {
            json!({
                "time": now,
                "key_id": e.key_id,
                "request_id": e.request_id,
                "sm_id": e.sm_id,
                "kcv": e.kcv,
                "action": e.action,
                "details": e.details.to_string(),
            })
        })
        .collect();
    let last_tids: Vec<Value> = meters
        .iter()
        .map(|m| {
            json!({
                "pan": m.pan.as_str(),
                "last_tid": m.last_tid.map(|(_, t)| t.get()),
                "last_tid_base": m.last_tid.map(|(base, _)| base.to_string()),
                "updated": m.updated,
            })
        })
        .collect();
    sqlx::query(WRITE_BATCH)
        .bind(Value::from(vends).to_string())
        .bind(Value::from(tokens).to_string())
        .bind(Value::from(grants).to_string())
        .bind(Value::from(audit).to_string())
        .bind(Value::from(last_tids).to_string())
        .execute(&mut **tx)
        .await?;
    Ok(rows.into_iter().map(|row| row.body).collect())
}

fn vend_json(row: &VendRow<'_>) -> Value {
    let r = row.r;
    json!({
        "request_id": r.request_id,
        "pan": r.pan.as_str(),
        "kind": r.spec.kind().as_str(),
        "request": r.canonical,
        "response": row.body.to_string(),
        "sm_id": r.sm_id,
        "kcv": row.kcv,
        "tid": r.tid,
        "key_id": r.key_id,
        "created": r.now,
        "tariff_id": r.tariff.map(Tariff::id),
        "units_tenths": r.units,
        "money_minor": row.money_minor(),
        "allowance_tenths": row.allowance_tenths(),
    })
}
