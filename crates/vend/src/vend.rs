//! Vending: one client request ID, one result, issued through the security module and
//! recorded in the same transaction that allocates the meter's TID.
//!
//! Credit is priced at the time of the sale (the database's clock): a money vend buys units
//! at the tariff version in force for the token's utility and the TI of the key it is made
//! under ([`pricing`]); the first units or money purchase of a calendar month (UTC) to a meter
//! whose tariff has a free allowance brings a second token with it, recorded in `allowances`
//! (one per meter and month) in the same transaction.

mod batch;
mod postgres;
mod pricing;

use batch::Answer;
pub(crate) use batch::Batcher;
use pricing::{Priced, allowances_issued, price};

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use serde::Deserialize;
use serde_json::{Map, Value, json};
use sqlx::{Any, Row, Transaction};
use sts_core::{
    CurrencyAmount, MeterPan, Register, Service, Token, TokenNumber, TransferAmount,
    amount::parse_fixed,
};
use sts_keys::{KeyCheckValue, TokenRequest, sm::describe};

use crate::{
    AppState, Caller, KeyChangePolicy, KeyRecord, Role, VendError, audit, calendar, campaign,
    db::{Backend, ROWS_PER_STATEMENT, placeholders},
    meters::{self, Meter, MeterStatus, parse_pan, parse_service, service_name},
    money::Decimal,
    retry,
    tariff::{MAX_CURRENCY_DECIMALS, Sale, Tariff, units_text},
};

/// What a vend request asks for, by the role it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VendKind {
    /// Transfer or currency credit (vendor, admin).
    Credit,
    /// A management token (engineer, admin).
    Management,
    /// A key change set (engineer, admin).
    KeyChange,
}

impl VendKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Credit => "credit",
            Self::Management => "management",
            Self::KeyChange => "key_change",
        }
    }

    fn roles(self) -> (&'static [Role], &'static str) {
        match self {
            Self::Credit => (&[Role::Admin, Role::Vendor], "issue credit tokens"),
            Self::Management => (&[Role::Admin, Role::Engineer], "issue management tokens"),
            Self::KeyChange => (&[Role::Admin, Role::Engineer], "issue key change tokens"),
        }
    }
}

/// The body of `POST /v1/vends`.
#[derive(Debug, Deserialize)]
pub struct VendRequest {
    /// The client's request ID: repeating it reprints the same tokens.
    pub request_id: String,
    /// The meter's PAN (18 digits) or DRN (11 or 13).
    pub meter: String,
    /// The token: `{"type": "credit", "amount": "12.5"}` (units),
    /// `{"type": "money", "amount": "100.00"}` (money, priced by the tariff in force) ...
    pub token: Map<String, Value>,
}

/// A parsed token specification.
#[derive(Debug, Clone, Copy)]
enum Spec {
    Token(VendKind, TokenRequest),
    /// Credit bought with money: the units come from the tariff in force at the sale.
    Money {
        service: Service,
        money: Decimal,
    },
    KeyChange {
        include_sgc: bool,
    },
}

const MAX_REQUEST_ID: usize = 128;

fn parse_request_id(id: &str) -> Result<(), VendError> {
    if id.is_empty() || id.len() > MAX_REQUEST_ID || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(VendError::field(
            "request_id",
            format!("1 to {MAX_REQUEST_ID} printable ASCII characters without spaces"),
        ));
    }
    Ok(())
}

fn text<'a>(token: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, VendError> {
    match token.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(VendError::field(
            &format!("token.{name}"),
            "expected a string",
        )),
    }
}

fn required_text<'a>(token: &'a Map<String, Value>, name: &str) -> Result<&'a str, VendError> {
    text(token, name)?.ok_or_else(|| VendError::field(&format!("token.{name}"), "required"))
}

fn integer<T: TryFrom<u64>>(
    token: &Map<String, Value>,
    name: &str,
    max: u64,
) -> Result<T, VendError> {
    let problem = format!("an integer from 0 to {max}");
    let value = match token.get(name) {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        None => return Err(VendError::field(&format!("token.{name}"), "required")),
        Some(_) => None,
    };
    value
        .filter(|v| *v <= max)
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| VendError::field(&format!("token.{name}"), problem))
}

fn only(token: &Map<String, Value>, allowed: &[&str]) -> Result<(), VendError> {
    let unknown: BTreeMap<String, String> = token
        .keys()
        .filter(|k| k.as_str() != "type" && !allowed.contains(&k.as_str()))
        .map(|k| (format!("token.{k}"), "unknown field".to_owned()))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(VendError::fields(unknown))
    }
}

fn service(
    token: &Map<String, Value>,
    meter_default: Option<Service>,
) -> Result<Option<Service>, VendError> {
    match text(token, "service")? {
        Some(s) => parse_service(s)
            .map(Some)
            .map_err(|e| VendError::field("token.service", e)),
        None => Ok(meter_default),
    }
}

fn watts(token: &Map<String, Value>) -> Result<TransferAmount, VendError> {
    let watts: u32 = integer(token, "watts", u64::from(TransferAmount::MAX_VALUE))?;
    TransferAmount::from_value_ceil(watts)
        .map_err(|e| VendError::field("token.watts", e.to_string()))
}

/// Parses the token object. The service of a credit token defaults to the meter's utility,
/// so the spec is parsed again once the meter is known; here `None` stands for "the meter's".
fn parse_spec(token: &Map<String, Value>, utility: Option<Service>) -> Result<Spec, VendError> {
    let kind = required_text(token, "type")?;
    let default_service = utility.unwrap_or(Service::Electricity);
    let spec = match kind {
        "credit" => {
            only(token, &["service", "amount"])?;
            let amount = required_text(token, "amount")?;
            let tenths = parse_fixed(amount, 1).map_err(|e| {
                VendError::field(
                    "token.amount",
                    format!("{e} (units, at most one decimal place)"),
                )
            })?;
            if tenths == 0 {
                return Err(VendError::field("token.amount", "must be more than 0"));
            }
            let amount = TransferAmount::from_value_ceil(tenths)
                .map_err(|e| VendError::field("token.amount", e.to_string()))?;
            Spec::Token(
                VendKind::Credit,
                TokenRequest::TransferCredit {
                    service: service(token, None)?.unwrap_or(default_service),
                    amount,
                },
            )
        }
        "money" => {
            only(token, &["service", "amount"])?;
            let money = Decimal::parse(required_text(token, "amount")?, MAX_CURRENCY_DECIMALS)
                .map_err(|e| {
                    VendError::field("token.amount", format!("{e} (money, in currency units)"))
                })?;
            if money.is_zero() {
                return Err(VendError::field("token.amount", "must be more than 0"));
            }
            Spec::Money {
                service: service(token, None)?.unwrap_or(default_service),
                money,
            }
        }
        "currency" => {
            only(token, &["service", "amount"])?;
            let amount = CurrencyAmount::parse(required_text(token, "amount")?)
                .map_err(|e| VendError::field("token.amount", e.to_string()))?;
            if amount.units() <= 0 {
                return Err(VendError::field("token.amount", "must be more than 0"));
            }
            Spec::Token(
                VendKind::Credit,
                TokenRequest::CurrencyCredit {
                    service: service(token, None)?.unwrap_or(default_service),
                    amount,
                },
            )
        }
        "max_power" => {
            only(token, &["watts"])?;
            Spec::Token(
                VendKind::Management,
                TokenRequest::SetMaximumPowerLimit {
                    limit: watts(token)?,
                },
            )
        }
        "phase_unbalance" => {
            only(token, &["watts"])?;
            Spec::Token(
                VendKind::Management,
                TokenRequest::SetMaximumPhasePowerUnbalanceLimit {
                    limit: watts(token)?,
                },
            )
        }
        "clear_credit" => {
            only(token, &["register"])?;
            let register = match token.get("register") {
                None => Register::ALL,
                Some(Value::String(s)) if s == "all" => Register::ALL,
                Some(_) => {
                    let r = Register(integer(token, "register", 0xFFFF)?);
                    if !r.is_defined() {
                        return Err(VendError::field(
                            "token.register",
                            "\"all\", or a register code 0-7 or 65535",
                        ));
                    }
                    r
                }
            };
            Spec::Token(VendKind::Management, TokenRequest::ClearCredit { register })
        }
        "clear_tamper" => {
            only(token, &[])?;
            Spec::Token(VendKind::Management, TokenRequest::ClearTamperCondition)
        }
        "tariff_rate" => {
            only(token, &["rate"])?;
            Spec::Token(
                VendKind::Management,
                TokenRequest::SetTariffRate {
                    rate: integer(token, "rate", 0xFFFF)?,
                },
            )
        }
        "water_factor" => {
            only(token, &["factor"])?;
            Spec::Token(
                VendKind::Management,
                TokenRequest::SetWaterMeterFactor {
                    factor: integer(token, "factor", 0xFFFF)?,
                },
            )
        }
        "key_change" => {
            only(token, &["include_sgc"])?;
            let include_sgc = match token.get("include_sgc") {
                None | Some(Value::Bool(false)) => false,
                Some(Value::Bool(true)) => true,
                Some(_) => {
                    return Err(VendError::field(
                        "token.include_sgc",
                        "expected true or false",
                    ));
                }
            };
            Spec::KeyChange { include_sgc }
        }
        _ => {
            return Err(VendError::field(
                "token.type",
                "one of credit, money, currency, max_power, phase_unbalance, clear_credit, clear_tamper, tariff_rate, water_factor, key_change",
            ));
        }
    };
    Ok(spec)
}

impl Spec {
    fn kind(self) -> VendKind {
        match self {
            Self::Token(kind, _) => kind,
            Self::Money { .. } => VendKind::Credit,
            Self::KeyChange { .. } => VendKind::KeyChange,
        }
    }

    /// The request as stored: equal content gives equal text (`"12.5"` and `"12.50"` agree).
    fn canonical(self, pan: &MeterPan) -> Value {
        let token = match self {
            Self::KeyChange { include_sgc } => {
                json!({"type": "key_change", "include_sgc": include_sgc})
            }
            Self::Money { service, money } => {
                json!({"type": "money", "service": service_name(service), "amount": money.normalized().to_string()})
            }
            Self::Token(_, request) => match request {
                TokenRequest::TransferCredit { service, amount } => {
                    json!({"type": "credit", "service": service_name(service), "tenths": amount.value()})
                }
                TokenRequest::CurrencyCredit { service, amount } => {
                    json!({"type": "currency", "service": service_name(service), "units": amount.units().to_string()})
                }
                TokenRequest::SetMaximumPowerLimit { limit } => {
                    json!({"type": "max_power", "watts": limit.value()})
                }
                TokenRequest::SetMaximumPhasePowerUnbalanceLimit { limit } => {
                    json!({"type": "phase_unbalance", "watts": limit.value()})
                }
                TokenRequest::ClearCredit { register } => {
                    json!({"type": "clear_credit", "register": register.0})
                }
                TokenRequest::ClearTamperCondition => json!({"type": "clear_tamper"}),
                TokenRequest::SetTariffRate { rate } => {
                    json!({"type": "tariff_rate", "rate": rate})
                }
                TokenRequest::SetWaterMeterFactor { factor } => {
                    json!({"type": "water_factor", "factor": factor})
                }
                other => json!({"type": format!("{other:?}")}),
            },
        };
        json!({"meter": pan.as_str(), "token": token})
    }
}

/// One token of a result, as stored and answered.
struct IssuedRow {
    number: TokenNumber,
    class: u8,
    subclass: u8,
    tid: Option<u32>,
    description: String,
}

fn grouped(number: TokenNumber) -> String {
    let digits = number.to_string();
    digits
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap_or(""))
        .collect::<Vec<_>>()
        .join(" ")
}

fn token_json(row: &IssuedRow) -> Value {
    json!({
        "number": row.number.to_string(),
        "formatted": grouped(row.number),
        "class": row.class,
        "subclass": row.subclass,
        "tid": row.tid,
        "description": row.description,
    })
}

/// A past result by request ID, read inside or outside a transaction.
async fn find<'e, E>(exec: E, request_id: &str) -> Result<Option<(String, String)>, VendError>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let row = sqlx::query("SELECT request, response FROM vends WHERE request_id = $1")
        .bind(request_id)
        .fetch_optional(exec)
        .await?;
    Ok(match row {
        Some(r) => Some((r.try_get(0)?, r.try_get(1)?)),
        None => None,
    })
}

/// The stored answer, marked as a reprint; or a conflict when the content differs.
fn reprint(
    request_id: &str,
    canonical: &str,
    stored: (String, String),
) -> Result<Value, VendError> {
    let (request, response) = stored;
    if request != canonical {
        return Err(VendError::RequestIdReused(request_id.to_owned()));
    }
    let mut value: Value = serde_json::from_str(&response)
        .map_err(|e| VendError::Internal(format!("stored response of {request_id}: {e}")))?;
    value["reprint"] = Value::Bool(true);
    Ok(value)
}

/// What a vend stores: the result under its request ID, its tokens and its audit entry.
struct Record<'a> {
    key_id: &'a str,
    request_id: &'a str,
    pan: &'a MeterPan,
    spec: Spec,
    canonical: &'a str,
    rows: &'a [IssuedRow],
    tid: Option<u32>,
    sm_id: &'a str,
    check_value: Option<KeyCheckValue>,
    key_change: Value,
    amount: Value,
    tid_base: String,
    /// A key change set was issued before the token.
    with_key_change: bool,
    /// The key record the tokens were made under (after a key change set, the new one).
    key: KeyRecord,
    /// The tariff version in force for a credit vend.
    tariff: Option<&'a Tariff>,
    /// Money sold for units.
    sale: Option<Sale>,
    /// The units the purchase token carries, in tenths.
    units: Option<u32>,
    /// The free allowance issued with the vend.
    allowance: Option<Grant>,
    now: i64,
}

/// A month's free allowance, issued with a vend as a token of its own.
#[derive(Debug, Clone)]
struct Grant {
    /// `YYYY-MM` (UTC).
    month: String,
    amount: TransferAmount,
    tid: Option<u32>,
    tariff_id: i64,
}

impl Grant {
    fn json(&self) -> Value {
        json!({
            "month": self.month,
            "units": units_text(self.amount.value()),
            "tid": self.tid,
            "tariff_id": self.tariff_id,
        })
    }
}

/// The TI, KRN and SGC (and key type) of a key record, as a vend result and its receipt show
/// them.
fn key_json(k: &KeyRecord) -> Value {
    json!({
        "sgc": k.supply_group.to_string(),
        "ti": k.tariff_index.to_string(),
        "krn": k.key_revision.to_string(),
        "kt": k.key_type.to_string(),
    })
}

/// Writes a vend's result, tokens and audit entry inside `tx`; returns the answer.
async fn record(tx: &mut Transaction<'_, Any>, r: &Record<'_>) -> Result<Value, VendError> {
    record_many(tx, std::slice::from_ref(r))
        .await?
        .pop()
        .ok_or_else(|| VendError::Internal("a vend recorded no answer".into()))
}

/// Writes the results, tokens and audit entries of `records` inside `tx` with a few multi-row
/// statements (the cost of a statement, not of a row, is what counts); returns the answers
/// in order.
async fn record_many(
    tx: &mut Transaction<'_, Any>,
    records: &[Record<'_>],
) -> Result<Vec<Value>, VendError> {
    let rows = vend_rows(records);
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO vends (request_id, pan, kind, request, response, sm_id, kcv, tid, key_id, created, \
             tariff_id, units_tenths, money_minor, allowance_tenths) VALUES {}",
            placeholders(chunk.len(), 14)
        );
        let mut query = sqlx::query(&sql);
        for row in chunk {
            let r = row.r;
            query = query
                .bind(r.request_id)
                .bind(r.pan.as_str())
                .bind(r.spec.kind().as_str())
                .bind(r.canonical)
                .bind(row.body.to_string())
                .bind(r.sm_id)
                .bind(row.kcv.as_deref())
                .bind(r.tid.map(i64::from))
                .bind(r.key_id)
                .bind(r.now)
                .bind(r.tariff.map(Tariff::id))
                .bind(r.units.map(i64::from))
                .bind(row.money_minor())
                .bind(row.allowance_tenths());
        }
        query.execute(&mut **tx).await?;
    }
    let tokens = token_rows(records);
    for chunk in tokens.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO tokens (request_id, position, pan, number, class, subclass, tid, tid_base) VALUES {}",
            placeholders(chunk.len(), 8)
        );
        let mut query = sqlx::query(&sql);
        for (r, position, t) in chunk {
            query = query
                .bind(r.request_id)
                .bind(i64::try_from(*position).unwrap_or(i64::MAX))
                .bind(r.pan.as_str())
                .bind(t.number.to_string())
                .bind(i64::from(t.class))
                .bind(i64::from(t.subclass))
                .bind(t.tid.map(i64::from))
                .bind(t.tid.map(|_| r.tid_base.clone()));
        }
        query.execute(&mut **tx).await?;
    }
    let grants = grant_rows(records);
    for chunk in grants.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO allowances (pan, month, request_id, tariff_id, tenths, created) VALUES {}",
            placeholders(chunk.len(), 6)
        );
        let mut query = sqlx::query(&sql);
        for (r, g) in chunk {
            query = query
                .bind(r.pan.as_str())
                .bind(g.month.as_str())
                .bind(r.request_id)
                .bind(g.tariff_id)
                .bind(i64::from(g.amount.value()))
                .bind(r.now);
        }
        query.execute(&mut **tx).await?;
    }
    audit::append_many(tx, &audit_entries(&rows)).await?;
    Ok(rows.into_iter().map(|row| row.body).collect())
}

/// Writes a batch of credit vends inside `tx` (results, tokens, allowances, audit entries) and
/// the last TIDs of its `meters`: one statement on PostgreSQL (see [`postgres`]), a few
/// multi-row statements on SQLite. Returns the answers in order.
async fn record_batch(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    records: &[Record<'_>],
    meters: &[&Meter],
) -> Result<Vec<Value>, VendError> {
    match backend {
        Backend::Postgres => postgres::record_batch(tx, records, meters).await,
        Backend::Sqlite => {
            let bodies = record_many(tx, records).await?;
            meters::store_last_tids(tx, meters).await?;
            Ok(bodies)
        }
    }
}

/// A vend's row in `vends`, with its answer.
struct VendRow<'a> {
    body: Value,
    kcv: Option<String>,
    request: Option<Value>,
    r: &'a Record<'a>,
}

impl VendRow<'_> {
    fn money_minor(&self) -> Option<i64> {
        match (self.r.sale, self.r.tariff) {
            (Some(sale), Some(tariff)) => sale.minor_units(tariff),
            _ => None,
        }
    }

    fn allowance_tenths(&self) -> Option<i64> {
        self.r
            .allowance
            .as_ref()
            .map(|a| i64::from(a.amount.value()))
    }
}

/// The `vends` rows of `records`, each with its answer.
fn vend_rows<'a>(records: &'a [Record<'a>]) -> Vec<VendRow<'a>> {
    records
        .iter()
        .map(|r| {
            let kcv = r.check_value.map(|k| k.to_hex());
            let request = serde_json::from_str::<Value>(r.canonical)
                .ok()
                .and_then(|v| v.get("token").cloned());
            let body = json!({
                "request_id": r.request_id,
                "meter": r.pan.as_str(),
                "kind": r.spec.kind().as_str(),
                "request": request,
                "tokens": r.rows.iter().map(token_json).collect::<Vec<_>>(),
                "tid": r.tid,
                "security_module": r.sm_id,
                "check_value": kcv,
                "key_change": r.key_change,
                "amount": r.amount,
                "key": key_json(&r.key),
                "tariff": r.tariff.map(Tariff::vend_json),
                "money": match (r.sale, r.tariff) {
                    (Some(sale), Some(tariff)) => sale.json(tariff),
                    _ => Value::Null,
                },
                "allowance": r.allowance.as_ref().map(Grant::json),
                "created": r.now,
                "reprint": false,
            });
            VendRow {
                body,
                kcv,
                request,
                r,
            }
        })
        .collect()
}

/// The `tokens` rows of `records`: each token with its vend and position.
fn token_rows<'a>(records: &'a [Record<'a>]) -> Vec<(&'a Record<'a>, usize, &'a IssuedRow)> {
    records
        .iter()
        .flat_map(|r| r.rows.iter().enumerate().map(move |(i, t)| (r, i, t)))
        .collect()
}

/// The `allowances` rows of `records`.
fn grant_rows<'a>(records: &'a [Record<'a>]) -> Vec<(&'a Record<'a>, &'a Grant)> {
    records
        .iter()
        .filter_map(|r| r.allowance.as_ref().map(|g| (r, g)))
        .collect()
}

/// The audit entries of `rows`, in order.
fn audit_entries<'a>(rows: &'a [VendRow<'a>]) -> Vec<audit::Entry<'a>> {
    rows.iter()
        .map(|row| {
            let r = row.r;
            audit::Entry {
                key_id: Some(r.key_id),
                request_id: Some(r.request_id),
                sm_id: Some(r.sm_id),
                kcv: row.kcv.as_deref(),
                action: if r.with_key_change && !matches!(r.spec, Spec::KeyChange { .. }) {
                    "vend.key_change_and_token"
                } else {
                    match r.spec.kind() {
                        VendKind::Credit => "vend.credit",
                        VendKind::Management => "vend.management",
                        VendKind::KeyChange => "vend.key_change",
                    }
                },
                details: json!({
                    "meter": r.pan.as_str(),
                    "tokens": r.rows.len(),
                    "tid": r.tid,
                    "request": row.request,
                    "tariff": r.tariff.map(|t| json!({"id": t.id(), "version": t.version()})),
                    "money": r.sale.map(|s| s.money.to_string()),
                    "allowance": r.allowance.as_ref().map(|g| units_text(g.amount.value())),
                }),
            }
        })
        .collect()
}

/// The stored results (request, response) of those of `request_ids` that have one.
async fn find_many(
    tx: &mut Transaction<'_, Any>,
    request_ids: &[&str],
) -> Result<HashMap<String, (String, String)>, VendError> {
    let mut found = HashMap::new();
    for chunk in request_ids.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT request_id, request, response FROM vends WHERE request_id IN {}",
            placeholders(1, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut **tx).await? {
            found.insert(row.try_get(0)?, (row.try_get(1)?, row.try_get(2)?));
        }
    }
    Ok(found)
}

/// The result of a vend.
#[derive(Debug, Clone)]
pub struct VendOutcome {
    /// The JSON answer (the stored one for a reprint, with `"reprint": true`).
    pub body: Value,
    /// True when the tokens were issued before, under the same request ID.
    pub reprint: bool,
}

impl AppState {
    /// Vends: validates the request, checks the caller's role, and either reprints the result
    /// stored under the request ID or issues new tokens and stores them before answering.
    ///
    /// # Errors
    /// [`VendError::Invalid`], [`VendError::Forbidden`], [`VendError::NotFound`],
    /// [`VendError::RequestIdReused`], [`VendError::KeyChangePending`],
    /// [`VendError::MeterNotActive`], [`VendError::NoTariff`], [`VendError::Refused`],
    /// database failures.
    pub async fn vend(
        &self,
        caller: &Caller,
        request: &VendRequest,
    ) -> Result<VendOutcome, VendError> {
        parse_request_id(&request.request_id)?;
        let pan = parse_pan(&request.meter).map_err(|e| match e {
            VendError::Invalid { fields, .. } => VendError::fields(
                fields
                    .into_values()
                    .map(|v| ("meter".to_owned(), v))
                    .collect(),
            ),
            other => other,
        })?;
        // Validate the shape now; the utility default needs the meter (read below).
        let spec = parse_spec(&request.token, None)?;
        let (roles, action) = spec.kind().roles();
        caller.require(roles, action)?;
        let started = std::time::Instant::now();
        let batched = match spec.kind() {
            VendKind::Credit => {
                self.vend_batched(caller, &request.request_id, pan, &request.token)
                    .await
            }
            _ => Answer::Alone,
        };
        let outcome = match batched {
            Answer::Done(outcome) => outcome,
            Answer::Alone => self.vend_alone(caller, request, &pan).await,
        };
        match &outcome {
            Ok(o) if o.reprint => self.metrics().reprint(),
            Ok(_) => {
                self.metrics().vend(spec.kind().as_str(), started.elapsed());
            }
            Err(e) => self.metrics().vend_error(e.status().1),
        }
        outcome
    }

    /// Queues a credit vend for the next batch and waits for its answer.
    async fn vend_batched(
        &self,
        caller: &Caller,
        request_id: &str,
        pan: MeterPan,
        token: &Map<String, Value>,
    ) -> Answer {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = batch::Job {
            key_id: caller.key_id.clone(),
            request_id: request_id.to_owned(),
            pan,
            token: token.clone(),
            reply,
        };
        if self.batcher().send(job).is_err() {
            return Answer::Alone;
        }
        answer.await.unwrap_or(Answer::Alone)
    }

    /// A vend in a transaction of its own: a reprint when the request ID is known (no lock
    /// needed), otherwise issued (retried on a serialization failure).
    async fn vend_alone(
        &self,
        caller: &Caller,
        request: &VendRequest,
        pan: &MeterPan,
    ) -> Result<VendOutcome, VendError> {
        let db = self.db();
        let utility = db.meter(pan).await?.utility;
        let spec = parse_spec(&request.token, Some(utility))?;
        let canonical = spec.canonical(pan).to_string();
        if let Some(stored) = find(db.pool(), &request.request_id).await? {
            return reprint(&request.request_id, &canonical, stored).map(|body| VendOutcome {
                body,
                reprint: true,
            });
        }
        retry(|| self.vend_once(caller, &request.request_id, pan, spec, &canonical)).await
    }

    async fn vend_once(
        &self,
        caller: &Caller,
        request_id: &str,
        pan: &MeterPan,
        spec: Spec,
        canonical: &str,
    ) -> Result<VendOutcome, VendError> {
        let db = self.db();
        let sm = self.security_module();
        let _turn = db.write_turn().await;
        let mut tx = db.pool().begin().await?;
        if !meters::lock(&mut tx, pan).await? {
            return Err(VendError::NotFound(format!("meter {pan}")));
        }
        if let Some(stored) = find(&mut *tx, request_id).await? {
            return Ok(VendOutcome {
                body: reprint(request_id, canonical, stored)?,
                reprint: true,
            });
        }
        let mut meter = meters::load(&mut tx, pan)
            .await?
            .ok_or_else(|| VendError::NotFound(format!("meter {pan}")))?;
        if meter.status != MeterStatus::Active {
            return Err(VendError::MeterNotActive {
                pan: pan.to_string(),
                status: meter.status.to_string(),
            });
        }
        let now = db.now();
        let mut rows = Vec::new();
        let mut key_change = Value::Null;
        let want_key_change = match spec {
            Spec::KeyChange { include_sgc } => Some(include_sgc),
            _ if meter.key_change_pending() => match self.key_change_policy() {
                KeyChangePolicy::IssueFirst => Some(false),
                KeyChangePolicy::Refuse => {
                    return Err(VendError::KeyChangePending(pan.to_string()));
                }
            },
            _ => None,
        };
        // The token is made under the key the meter holds once a key change set is entered:
        // its TI chooses the tariff. Priced before anything is issued, so a refusal (no
        // tariff, too little money) issues nothing.
        let key = if want_key_change.is_some() {
            meter.target
        } else {
            meter.current
        };
        // Only credit reads the tariffs (one `COUNT(*)` while they are unchanged).
        let tariffs = if spec.kind() == VendKind::Credit {
            db.tariff_set(&mut tx).await?
        } else {
            Arc::default()
        };
        let priced = price(spec, &tariffs, key.tariff_index, now)?;
        let month = calendar::month(now);
        let allowance_due = match priced.as_ref().and_then(Priced::allowance) {
            Some(allowance) => {
                if allowances_issued(&mut tx, &month, &[pan.as_str()])
                    .await?
                    .is_empty()
                {
                    Some(allowance)
                } else {
                    None
                }
            }
            None => None,
        };
        let mut check_value = None;
        if let Some(include_sgc) = want_key_change {
            // A campaign's precomputed set when the meter has one, else made now.
            let explicit = matches!(spec, Spec::KeyChange { .. }).then_some(include_sgc);
            let set = campaign::key_change_set(sm, &mut tx, &meter, explicit, request_id).await?;
            let n = set.tokens.len();
            for (i, t) in set.tokens.iter().enumerate() {
                rows.push(IssuedRow {
                    number: t.number,
                    class: t.number.class().get(),
                    subclass: t.subclass,
                    tid: None,
                    description: format!("key change token {} of {n}", i + 1),
                });
            }
            key_change = set.json(meter_key_json(&meter, false), meter_key_json(&meter, true));
            check_value = Some(set.to_check_value);
            meter.current = meter.target;
        }
        let mut tid_issued = None;
        let mut amount = Value::Null;
        let mut grant = None;
        if let Some(priced) = &priced {
            let description = meter.description(&meter.current);
            let issued = issue_after(sm, &meter, &description, priced.request).await?;
            let tid = check_tid(&mut meter, description.base_date, &issued.token)?;
            tid_issued = tid;
            check_value = issued.check_value.or(check_value);
            rows.push(issued_row(&issued, description.base_date, None));
            amount = credit_amount(&issued.token);
            if let (Some((request, allowance)), Some(tariff)) = (allowance_due, priced.tariff) {
                // A refused allowance does not undo the sale: the meter's next purchase this
                // month gets it.
                match issue_after(sm, &meter, &description, request).await {
                    Ok(issued) => {
                        let tid = check_tid(&mut meter, description.base_date, &issued.token)?;
                        rows.push(issued_row(&issued, description.base_date, Some(&month)));
                        grant = Some(Grant {
                            month: month.clone(),
                            amount: allowance,
                            tid,
                            tariff_id: tariff.id(),
                        });
                    }
                    Err(e) => {
                        tracing::warn!(request_id, pan = pan.as_str(), error = %e, "free allowance refused by the security module: left for the next purchase");
                    }
                }
            }
        }
        let body = record(
            &mut tx,
            &Record {
                key_id: &caller.key_id,
                request_id,
                pan,
                spec,
                canonical,
                rows: &rows,
                tid: tid_issued,
                sm_id: sm.id().as_str(),
                check_value,
                key_change,
                amount,
                tid_base: meter.current.base_date.to_string(),
                with_key_change: want_key_change.is_some(),
                key: meter.current,
                tariff: priced.as_ref().and_then(|p| p.tariff),
                sale: priced.as_ref().and_then(|p| p.sale),
                units: priced.as_ref().and_then(Priced::units),
                allowance: grant,
                now,
            },
        )
        .await?;
        meter.updated = now;
        meters::store(&mut tx, &meter).await?;
        tx.commit().await?;
        tracing::info!(
            request_id,
            pan = pan.as_str(),
            kind = spec.kind().as_str(),
            tokens = rows.len(),
            tid = tid_issued,
            key = caller.key_id,
            "vend issued"
        );
        Ok(VendOutcome {
            body,
            reprint: false,
        })
    }

    /// A past result by request ID.
    ///
    /// # Errors
    /// [`VendError::NotFound`], database failures.
    pub async fn vend_result(&self, request_id: &str) -> Result<Value, VendError> {
        let (_, response) = find(self.db().pool(), request_id)
            .await?
            .ok_or_else(|| VendError::NotFound(format!("request ID {request_id}")))?;
        serde_json::from_str(&response)
            .map_err(|e| VendError::Internal(format!("stored response of {request_id}: {e}")))
    }

    /// A meter's results, newest first, before the vend sequence `before` (0 for the newest).
    ///
    /// # Errors
    /// Database failures.
    pub async fn vends_of(
        &self,
        pan: &MeterPan,
        before: i64,
        limit: i64,
    ) -> Result<Vec<Value>, VendError> {
        let before = if before <= 0 { i64::MAX } else { before };
        let rows = sqlx::query(
            "SELECT id, response FROM vends WHERE pan = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(pan.as_str())
        .bind(before)
        .bind(limit)
        .fetch_all(self.db().pool())
        .await?;
        rows.iter()
            .map(|r| {
                let id: i64 = r.try_get(0)?;
                let text: String = r.try_get(1)?;
                let mut v: Value = serde_json::from_str(&text)
                    .map_err(|e| VendError::Internal(format!("stored vend {id}: {e}")))?;
                v["sequence"] = json!(id);
                Ok(v)
            })
            .collect()
    }
}

fn meter_key_json(meter: &Meter, target: bool) -> Value {
    let k = if target {
        &meter.target
    } else {
        &meter.current
    };
    json!({
        "sgc": k.supply_group.to_string(),
        "ti": k.tariff_index.to_string(),
        "krn": k.key_revision.to_string(),
        "kt": k.key_type.to_string(),
        "base_date": k.base_date.to_string(),
        "dkga": k.derivation.to_string(),
    })
}

/// Checks that the TID of `token` (if dated) is after the meter's last recorded one and
/// records it as the last.
///
/// # Errors
/// [`VendError::TidConflict`].
/// The TID a new token for `meter` under `base` must come after: the last one this database
/// recorded (another server's security module may have issued it, unknown to ours).
fn tid_floor(meter: &Meter, base: sts_core::BaseDate) -> Option<sts_core::TokenIdentifier> {
    meter
        .last_tid
        .filter(|(last_base, _)| *last_base == base)
        .map(|(_, tid)| tid)
}

/// Issues one token for `meter` with a TID after its recorded last one (see [`tid_floor`]).
async fn issue_after(
    sm: &sts_keys::SecurityModule,
    meter: &Meter,
    description: &sts_core::MeterDescription,
    request: TokenRequest,
) -> Result<sts_keys::IssuedToken, sts_keys::SmError> {
    let floor = tid_floor(meter, description.base_date);
    sm.issue_many_after(&[(*description, request, floor)])
        .await?
        .pop()
        .ok_or(sts_keys::SmError::Store(sts_keys::StoreError::Corrupt(
            "a batch of one issued no token".into(),
        )))
}

fn check_tid(
    meter: &mut Meter,
    base: sts_core::BaseDate,
    token: &Token,
) -> Result<Option<u32>, VendError> {
    let Some(tid) = token.tid() else {
        return Ok(None);
    };
    if let Some((last_base, last)) = meter.last_tid
        && last_base == base
        && tid.get() <= last.get()
    {
        tracing::error!(
            pan = meter.pan.as_str(),
            tid = tid.get(),
            last = last.get(),
            "security module TID is not after the recorded one"
        );
        return Err(VendError::TidConflict(meter.pan.to_string()));
    }
    meter.last_tid = Some((base, tid));
    Ok(Some(tid.get()))
}

/// A token as stored and answered; `allowance` names the month of a free allowance token.
fn issued_row(
    issued: &sts_keys::IssuedToken,
    base: sts_core::BaseDate,
    allowance: Option<&str>,
) -> IssuedRow {
    let described = describe(&issued.token, issued.token.tid().map(|t| t.to_time(base)));
    IssuedRow {
        number: issued.number,
        class: issued.token.class().get(),
        subclass: issued.token.subclass().get(),
        tid: issued.token.tid().map(|t| t.get()),
        description: match allowance {
            Some(month) => format!("free allowance for {month}: {described}"),
            None => described,
        },
    }
}

/// The credit a token carries (null for other tokens).
fn credit_amount(token: &Token) -> Value {
    match token {
        Token::TransferCredit {
            service, amount, ..
        } => {
            let t = amount.value();
            json!({"service": service_name(*service), "units": format!("{}.{}", t / 10, t % 10)})
        }
        Token::CurrencyCredit {
            service, amount, ..
        } => json!({"service": service_name(*service), "currency": amount.to_string()}),
        _ => Value::Null,
    }
}
