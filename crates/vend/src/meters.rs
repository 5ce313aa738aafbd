//! Meters: their key record (what they hold and what they should hold), utility and status.

mod import;

use std::{collections::BTreeMap, fmt, str::FromStr};

use serde_json::{Map, Value, json};
use sqlx::{Any, Row, Transaction, any::AnyRow};
use sts_core::{
    BaseDate, EncryptionAlgorithm, IdentifierError, KeyDerivationAlgorithm, KeyExpiryNumber,
    KeyRevisionNumber, KeyType, MeterDescription, MeterPan, Service, SupplyGroupCode, TariffIndex,
    TokenIdentifier,
};

use crate::{Backend, Caller, Database, VendError, audit, db::now_seconds, retry};

/// The part of a meter's description a key change set changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRecord {
    /// Supply group code.
    pub supply_group: SupplyGroupCode,
    /// Tariff index.
    pub tariff_index: TariffIndex,
    /// Key revision number.
    pub key_revision: KeyRevisionNumber,
    /// Key type.
    pub key_type: KeyType,
    /// Base date.
    pub base_date: BaseDate,
    /// Decoder key generation algorithm.
    pub derivation: KeyDerivationAlgorithm,
}

impl KeyRecord {
    fn json(&self) -> Value {
        json!({
            "sgc": self.supply_group.to_string(),
            "ti": self.tariff_index.to_string(),
            "krn": self.key_revision.to_string(),
            "kt": self.key_type.to_string(),
            "base_date": self.base_date.to_string(),
            "dkga": self.derivation.to_string(),
        })
    }
}

/// Whether a meter may be vended to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeterStatus {
    /// Tokens are issued.
    Active,
    /// Temporarily no tokens.
    Suspended,
    /// Removed from service; kept for its history.
    Retired,
}

impl MeterStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Retired => "retired",
        }
    }
}

impl fmt::Display for MeterStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MeterStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(Self::Active),
            "suspended" => Ok(Self::Suspended),
            "retired" => Ok(Self::Retired),
            _ => Err("one of active, suspended, retired".into()),
        }
    }
}

/// The service name of the JSON API.
pub(crate) fn service_name(s: Service) -> &'static str {
    match s {
        Service::Electricity => "electricity",
        Service::Water => "water",
        Service::Gas => "gas",
        Service::Time => "time",
    }
}

pub(crate) fn parse_service(s: &str) -> Result<Service, String> {
    Service::ALL
        .into_iter()
        .find(|v| service_name(*v) == s)
        .ok_or_else(|| "one of electricity, water, gas, time".to_owned())
}

/// A registered meter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meter {
    /// The PAN.
    pub pan: MeterPan,
    /// The key record the meter should hold.
    pub target: KeyRecord,
    /// The key record the meter holds, as far as this service knows.
    pub current: KeyRecord,
    /// Encryption algorithm.
    pub algorithm: EncryptionAlgorithm,
    /// Key expiry number (informative: the security module uses its key's KEN).
    pub key_expiry: KeyExpiryNumber,
    /// The service it meters.
    pub utility: Service,
    /// Whether it may be vended to.
    pub status: MeterStatus,
    /// The last TID issued to it, with the base date it counts from.
    pub last_tid: Option<(BaseDate, TokenIdentifier)>,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds.
    pub updated: i64,
}

impl Meter {
    /// True while the meter should get a key change set.
    #[must_use]
    pub fn key_change_pending(&self) -> bool {
        self.target != self.current
    }

    /// The description of the meter under one of its key records.
    #[must_use]
    pub fn description(&self, key: &KeyRecord) -> MeterDescription {
        MeterDescription {
            pan: self.pan,
            supply_group: key.supply_group,
            tariff_index: key.tariff_index,
            key_revision: key.key_revision,
            key_type: key.key_type,
            base_date: key.base_date,
            algorithm: self.algorithm,
            derivation: key.derivation,
        }
    }

    /// The meter as the JSON API shows it.
    #[must_use]
    pub fn to_json(&self) -> Value {
        let t = &self.target;
        json!({
            "pan": self.pan.as_str(),
            "drn": self.pan.drn(),
            "sgc": t.supply_group.to_string(),
            "ti": t.tariff_index.to_string(),
            "krn": t.key_revision.to_string(),
            "kt": t.key_type.to_string(),
            "ea": self.algorithm.to_string(),
            "dkga": t.derivation.to_string(),
            "base_date": t.base_date.to_string(),
            "ken": self.key_expiry.to_string(),
            "utility": service_name(self.utility),
            "status": self.status.as_str(),
            "last_tid": self.last_tid.map(|(_, tid)| tid.get()),
            "pending_key_change": self.key_change_pending().then(|| json!({
                "from": self.current.json(),
                "to": self.target.json(),
            })),
            "created": self.created,
            "updated": self.updated,
        })
    }

    pub(crate) fn from_row(row: &AnyRow) -> Result<Self, VendError> {
        let text =
            |name: &str| -> Result<String, VendError> { Ok(row.try_get::<String, _>(name)?) };
        let corrupt = |name: &str| VendError::Internal(format!("meters.{name} does not parse"));
        macro_rules! parsed {
            ($name:literal) => {
                text($name)?.parse().map_err(|_| corrupt($name))?
            };
        }
        let key = |p: &str| -> Result<KeyRecord, VendError> {
            let get = |n: &str| text(&format!("{p}{n}"));
            let c = |n: &str| corrupt(&format!("{p}{n}"));
            Ok(KeyRecord {
                supply_group: get("sgc")?.parse().map_err(|_| c("sgc"))?,
                tariff_index: get("ti")?.parse().map_err(|_| c("ti"))?,
                key_revision: get("krn")?.parse().map_err(|_| c("krn"))?,
                key_type: get("kt")?.parse().map_err(|_| c("kt"))?,
                base_date: get("base_date")?.parse().map_err(|_| c("base_date"))?,
                derivation: get("dkga")?.parse().map_err(|_| c("dkga"))?,
            })
        };
        let last_tid: Option<i64> = row.try_get("last_tid")?;
        let last_base: Option<String> = row.try_get("last_tid_base")?;
        let last_tid = match (last_tid, last_base) {
            (Some(tid), Some(base)) => Some((
                base.parse().map_err(|_| corrupt("last_tid_base"))?,
                u32::try_from(tid)
                    .ok()
                    .and_then(|t| TokenIdentifier::from_raw(t).ok())
                    .ok_or_else(|| corrupt("last_tid"))?,
            )),
            _ => None,
        };
        Ok(Self {
            pan: parsed!("pan"),
            target: key("")?,
            current: key("cur_")?,
            algorithm: parsed!("ea"),
            key_expiry: parsed!("ken"),
            utility: parse_service(&text("utility")?).map_err(|_| corrupt("utility"))?,
            status: parsed!("status"),
            last_tid,
            created: row.try_get("created")?,
            updated: row.try_get("updated")?,
        })
    }
}

/// Field-level parse errors, collected.
#[derive(Default)]
struct Problems(BTreeMap<String, String>);

impl Problems {
    fn add(&mut self, field: &str, problem: impl Into<String>) {
        self.0.insert(field.to_owned(), problem.into());
    }

    fn identifier(&mut self, field: &str, e: IdentifierError) {
        let text = e.to_string();
        let problem = text
            .split_once(": ")
            .map_or(text.as_str(), |(_, p)| p)
            .to_owned();
        self.add(field, problem);
    }

    fn finish(self) -> Result<(), VendError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(VendError::fields(self.0))
        }
    }
}

/// A JSON value as the text of an identifier: strings as they are, integers in decimal.
fn field_text(body: &Map<String, Value>, name: &str, problems: &mut Problems) -> Option<String> {
    match body.get(name)? {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) if n.is_u64() => Some(n.to_string()),
        _ => {
            problems.add(name, "expected a string");
            None
        }
    }
}

fn parse_field<T: FromStr<Err = IdentifierError>>(
    body: &Map<String, Value>,
    name: &str,
    required: bool,
    problems: &mut Problems,
) -> Option<T> {
    let text = field_text(body, name, problems);
    match text {
        None if required && !problems.0.contains_key(name) => {
            problems.add(name, "required");
            None
        }
        None => None,
        Some(t) => match t.parse() {
            Ok(v) => Some(v),
            Err(e) => {
                problems.identifier(name, e);
                None
            }
        },
    }
}

const REGISTER_FIELDS: &[&str] = &[
    "pan",
    "drn",
    "sgc",
    "ti",
    "krn",
    "kt",
    "ea",
    "dkga",
    "base_date",
    "ken",
    "utility",
    "status",
];
const UPDATE_FIELDS: &[&str] = &[
    "sgc",
    "ti",
    "krn",
    "kt",
    "ea",
    "dkga",
    "base_date",
    "ken",
    "utility",
    "status",
    "apply_without_key_change",
];

fn unknown_fields(body: &Map<String, Value>, known: &[&str], problems: &mut Problems) {
    for name in body.keys() {
        if !known.contains(&name.as_str()) {
            problems.add(name, "unknown field");
        }
    }
}

fn parse_utility(body: &Map<String, Value>, problems: &mut Problems) -> Option<Service> {
    let text = field_text(body, "utility", problems)?;
    parse_service(&text)
        .map_err(|e| problems.add("utility", e))
        .ok()
}

fn parse_status(body: &Map<String, Value>, problems: &mut Problems) -> Option<MeterStatus> {
    let text = field_text(body, "status", problems)?;
    text.parse().map_err(|e| problems.add("status", e)).ok()
}

/// Parses a PAN (18 digits) or a DRN (11 or 13 digits) as a path segment.
///
/// # Errors
/// [`VendError::Invalid`] naming the field `pan`.
pub fn parse_pan(text: &str) -> Result<MeterPan, VendError> {
    let parsed = if text.len() == 11 || text.len() == 13 {
        MeterPan::from_drn(text)
    } else {
        text.parse()
    };
    parsed.map_err(|e| {
        let mut p = Problems::default();
        p.identifier("pan", e);
        VendError::fields(p.0)
    })
}

/// Parses a registration body.
fn parse_new_meter(body: &Map<String, Value>, now: i64) -> Result<Meter, VendError> {
    let mut p = Problems::default();
    unknown_fields(body, REGISTER_FIELDS, &mut p);
    let pan = match (
        field_text(body, "pan", &mut p),
        field_text(body, "drn", &mut p),
    ) {
        (Some(pan), None) => pan.parse().map_err(|e| p.identifier("pan", e)).ok(),
        (None, Some(drn)) => MeterPan::from_drn(&drn)
            .map_err(|e| p.identifier("drn", e))
            .ok(),
        (Some(_), Some(_)) => {
            p.add("drn", "give the pan or the drn, not both");
            None
        }
        (None, None) => {
            p.add("pan", "required (or drn)");
            None
        }
    };
    let sgc = parse_field(body, "sgc", true, &mut p);
    let ti = parse_field(body, "ti", true, &mut p);
    let krn = parse_field(body, "krn", true, &mut p);
    let kt = parse_field(body, "kt", true, &mut p);
    let ea = parse_field(body, "ea", true, &mut p);
    let dkga = parse_field(body, "dkga", true, &mut p);
    let base_date = parse_field(body, "base_date", true, &mut p);
    let ken = parse_field(body, "ken", false, &mut p);
    let utility = parse_utility(body, &mut p);
    let status = parse_status(body, &mut p);
    p.finish()?;
    let (
        Some(pan),
        Some(supply_group),
        Some(tariff_index),
        Some(key_revision),
        Some(key_type),
        Some(algorithm),
        Some(derivation),
        Some(base_date),
    ) = (pan, sgc, ti, krn, kt, ea, dkga, base_date)
    else {
        return Err(VendError::Internal(
            "meter fields parsed without values".into(),
        ));
    };
    let key = KeyRecord {
        supply_group,
        tariff_index,
        key_revision,
        key_type,
        base_date,
        derivation,
    };
    Ok(Meter {
        pan,
        target: key,
        current: key,
        algorithm,
        key_expiry: ken.unwrap_or(KeyExpiryNumber::NEVER),
        utility: utility.unwrap_or(Service::Electricity),
        status: status.unwrap_or(MeterStatus::Active),
        last_tid: None,
        created: now,
        updated: now,
    })
}

/// A parsed update: each field that was given.
#[derive(Debug, Default)]
struct MeterUpdate {
    supply_group: Option<SupplyGroupCode>,
    tariff_index: Option<TariffIndex>,
    key_revision: Option<KeyRevisionNumber>,
    key_type: Option<KeyType>,
    base_date: Option<BaseDate>,
    derivation: Option<KeyDerivationAlgorithm>,
    algorithm: Option<EncryptionAlgorithm>,
    key_expiry: Option<KeyExpiryNumber>,
    utility: Option<Service>,
    status: Option<MeterStatus>,
    apply_without_key_change: bool,
}

impl MeterUpdate {
    fn parse(body: &Map<String, Value>) -> Result<Self, VendError> {
        let mut p = Problems::default();
        unknown_fields(body, UPDATE_FIELDS, &mut p);
        let update = Self {
            supply_group: parse_field(body, "sgc", false, &mut p),
            tariff_index: parse_field(body, "ti", false, &mut p),
            key_revision: parse_field(body, "krn", false, &mut p),
            key_type: parse_field(body, "kt", false, &mut p),
            base_date: parse_field(body, "base_date", false, &mut p),
            derivation: parse_field(body, "dkga", false, &mut p),
            algorithm: parse_field(body, "ea", false, &mut p),
            key_expiry: parse_field(body, "ken", false, &mut p),
            utility: parse_utility(body, &mut p),
            status: parse_status(body, &mut p),
            apply_without_key_change: match body.get("apply_without_key_change") {
                None | Some(Value::Bool(false)) => false,
                Some(Value::Bool(true)) => true,
                Some(_) => {
                    p.add("apply_without_key_change", "expected true or false");
                    false
                }
            },
        };
        p.finish()?;
        Ok(update)
    }

    fn apply(&self, meter: &mut Meter) {
        let t = &mut meter.target;
        t.supply_group = self.supply_group.unwrap_or(t.supply_group);
        t.tariff_index = self.tariff_index.unwrap_or(t.tariff_index);
        t.key_revision = self.key_revision.unwrap_or(t.key_revision);
        t.key_type = self.key_type.unwrap_or(t.key_type);
        t.base_date = self.base_date.unwrap_or(t.base_date);
        t.derivation = self.derivation.unwrap_or(t.derivation);
        meter.algorithm = self.algorithm.unwrap_or(meter.algorithm);
        meter.key_expiry = self.key_expiry.unwrap_or(meter.key_expiry);
        meter.utility = self.utility.unwrap_or(meter.utility);
        meter.status = self.status.unwrap_or(meter.status);
        if self.apply_without_key_change {
            meter.current = meter.target;
        }
    }
}

fn key_binds(k: &KeyRecord) -> [String; 6] {
    [
        k.supply_group.to_string(),
        k.tariff_index.to_string(),
        k.key_revision.to_string(),
        k.key_type.to_string(),
        k.base_date.to_string(),
        k.derivation.to_string(),
    ]
}

/// Reads a meter inside a transaction.
pub(crate) async fn load(
    tx: &mut Transaction<'_, Any>,
    pan: &MeterPan,
) -> Result<Option<Meter>, VendError> {
    let row = sqlx::query("SELECT * FROM meters WHERE pan = $1")
        .bind(pan.as_str())
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(Meter::from_row).transpose()
}

/// Locks and reads the meters of `pans` (sorted, distinct) that exist, in a few statements
/// inside `tx`. SQLite: one `UPDATE` takes the file's write lock first (no other writer can
/// come between the read and the write). PostgreSQL: `SELECT ... ORDER BY pan FOR UPDATE`
/// locks the rows in PAN order, as every writer does.
pub(crate) async fn lock_many(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    pans: &[&str],
) -> Result<Vec<Meter>, VendError> {
    let mut meters = Vec::with_capacity(pans.len());
    for chunk in pans.chunks(crate::db::ROWS_PER_STATEMENT) {
        let list = crate::db::placeholders(1, chunk.len());
        let sql = match backend {
            Backend::Sqlite => {
                let update = format!("UPDATE meters SET version = version + 1 WHERE pan IN {list}");
                let mut lock = sqlx::query(&update);
                for pan in chunk {
                    lock = lock.bind(*pan);
                }
                lock.execute(&mut **tx).await?;
                format!("SELECT * FROM meters WHERE pan IN {list}")
            }
            Backend::Postgres => {
                format!("SELECT * FROM meters WHERE pan IN {list} ORDER BY pan FOR UPDATE")
            }
        };
        let mut query = sqlx::query(&sql);
        for pan in chunk {
            query = query.bind(*pan);
        }
        for row in query.fetch_all(&mut **tx).await? {
            meters.push(Meter::from_row(&row)?);
        }
    }
    Ok(meters)
}

/// Writes the last TID and update time of each of `meters` (what a batch of credit vends
/// changes) with one `UPDATE ... FROM` per chunk; bumps their versions.
pub(crate) async fn store_last_tids(
    tx: &mut Transaction<'_, Any>,
    meters: &[&Meter],
) -> Result<(), VendError> {
    for chunk in meters.chunks(crate::db::ROWS_PER_STATEMENT) {
        // `(VALUES ...) AS v (columns)` is not SQLite; a UNION ALL of SELECTs is both.
        let mut rows = String::new();
        for i in 0..chunk.len() {
            let n = i * 4;
            if i > 0 {
                rows.push_str(" UNION ALL ");
            }
            rows.push_str(&format!(
                "SELECT ${} AS pan, ${} AS last_tid, ${} AS last_tid_base, ${} AS updated",
                n + 1,
                n + 2,
                n + 3,
                n + 4
            ));
        }
        let sql = format!(
            "UPDATE meters SET last_tid = v.last_tid, last_tid_base = v.last_tid_base, \
             updated = v.updated, version = meters.version + 1 \
             FROM ({rows}) AS v WHERE meters.pan = v.pan"
        );
        let mut query = sqlx::query(&sql);
        for meter in chunk {
            query = query
                .bind(meter.pan.as_str())
                .bind(meter.last_tid.map(|(_, t)| i64::from(t.get())))
                .bind(meter.last_tid.map(|(base, _)| base.to_string()))
                .bind(meter.updated);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Writes every column of `meter` but the identity and creation time; bumps the version.
pub(crate) async fn store(tx: &mut Transaction<'_, Any>, meter: &Meter) -> Result<(), VendError> {
    let [sgc, ti, krn, kt, bd, dkga] = key_binds(&meter.target);
    let [csgc, cti, ckrn, ckt, cbd, cdkga] = key_binds(&meter.current);
    sqlx::query(
        "UPDATE meters SET sgc = $1, ti = $2, krn = $3, kt = $4, base_date = $5, dkga = $6, \
         cur_sgc = $7, cur_ti = $8, cur_krn = $9, cur_kt = $10, cur_base_date = $11, cur_dkga = $12, \
         ea = $13, ken = $14, utility = $15, status = $16, last_tid = $17, last_tid_base = $18, \
         version = version + 1, updated = $19 WHERE pan = $20",
    )
    .bind(sgc)
    .bind(ti)
    .bind(krn)
    .bind(kt)
    .bind(bd)
    .bind(dkga)
    .bind(csgc)
    .bind(cti)
    .bind(ckrn)
    .bind(ckt)
    .bind(cbd)
    .bind(cdkga)
    .bind(meter.algorithm.to_string())
    .bind(meter.key_expiry.to_string())
    .bind(service_name(meter.utility))
    .bind(meter.status.as_str())
    .bind(meter.last_tid.map(|(_, t)| i64::from(t.get())))
    .bind(meter.last_tid.map(|(b, _)| b.to_string()))
    .bind(meter.updated)
    .bind(meter.pan.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Takes the meter's row lock (PostgreSQL) or the write lock (SQLite) for the rest of the
/// transaction; false when there is no such meter.
pub(crate) async fn lock(tx: &mut Transaction<'_, Any>, pan: &MeterPan) -> Result<bool, VendError> {
    let done = sqlx::query("UPDATE meters SET version = version + 1 WHERE pan = $1")
        .bind(pan.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() > 0)
}

impl Database {
    /// Registers a meter from its JSON description.
    ///
    /// # Errors
    /// [`VendError::Invalid`] with a message per bad field, [`VendError::MeterExists`],
    /// database failures.
    pub async fn register_meter(
        &self,
        caller: &Caller,
        body: &Map<String, Value>,
    ) -> Result<Meter, VendError> {
        let meter = parse_new_meter(body, now_seconds())?;
        retry(|| self.register_once(caller, &meter)).await?;
        tracing::info!(
            pan = meter.pan.as_str(),
            key = caller.key_id,
            "meter registered"
        );
        Ok(meter)
    }

    async fn register_once(&self, caller: &Caller, meter: &Meter) -> Result<(), VendError> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool().begin().await?;
        if load(&mut tx, &meter.pan).await?.is_some() {
            return Err(VendError::MeterExists(meter.pan.to_string()));
        }
        let [sgc, ti, krn, kt, bd, dkga] = key_binds(&meter.target);
        let inserted = sqlx::query(
            "INSERT INTO meters (pan, sgc, ti, krn, kt, base_date, dkga, ea, ken, \
             cur_sgc, cur_ti, cur_krn, cur_kt, cur_base_date, cur_dkga, utility, status, \
             last_tid, last_tid_base, version, created, updated) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, NULL, NULL, 0, $18, $19)",
        )
        .bind(meter.pan.as_str())
        .bind(sgc.clone())
        .bind(ti.clone())
        .bind(krn.clone())
        .bind(kt.clone())
        .bind(bd.clone())
        .bind(dkga.clone())
        .bind(meter.algorithm.to_string())
        .bind(meter.key_expiry.to_string())
        .bind(sgc)
        .bind(ti)
        .bind(krn)
        .bind(kt)
        .bind(bd)
        .bind(dkga)
        .bind(service_name(meter.utility))
        .bind(meter.status.as_str())
        .bind(meter.created)
        .bind(meter.updated)
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(VendError::MeterExists(meter.pan.to_string()));
            }
            other => {
                other?;
            }
        }
        audit::append(
            &mut tx,
            &audit::Entry {
                key_id: Some(&caller.key_id),
                action: "meter.register",
                details: meter.to_json(),
                ..audit::Entry::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Updates a meter. A new SGC, TI, KRN, KT, base date or DKGA makes a key change pending
    /// (unless `apply_without_key_change` is true: the meter already holds that key).
    ///
    /// # Errors
    /// [`VendError::Invalid`], [`VendError::NotFound`], database failures.
    pub async fn update_meter(
        &self,
        caller: &Caller,
        pan: &MeterPan,
        body: &Map<String, Value>,
    ) -> Result<Meter, VendError> {
        let update = MeterUpdate::parse(body)?;
        let meter = retry(|| self.update_once(caller, pan, &update)).await?;
        tracing::info!(pan = pan.as_str(), key = caller.key_id, "meter updated");
        Ok(meter)
    }

    async fn update_once(
        &self,
        caller: &Caller,
        pan: &MeterPan,
        update: &MeterUpdate,
    ) -> Result<Meter, VendError> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool().begin().await?;
        if !lock(&mut tx, pan).await? {
            return Err(VendError::NotFound(format!("meter {pan}")));
        }
        let mut meter = load(&mut tx, pan)
            .await?
            .ok_or_else(|| VendError::NotFound(format!("meter {pan}")))?;
        let before = meter.to_json();
        update.apply(&mut meter);
        meter.updated = now_seconds();
        store(&mut tx, &meter).await?;
        audit::append(
            &mut tx,
            &audit::Entry {
                key_id: Some(&caller.key_id),
                action: "meter.update",
                details: json!({"pan": pan.as_str(), "before": before, "after": meter.to_json()}),
                ..audit::Entry::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(meter)
    }

    /// Looks a meter up.
    ///
    /// # Errors
    /// [`VendError::NotFound`], database failures.
    pub async fn meter(&self, pan: &MeterPan) -> Result<Meter, VendError> {
        let row = sqlx::query("SELECT * FROM meters WHERE pan = $1")
            .bind(pan.as_str())
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| VendError::NotFound(format!("meter {pan}")))?;
        Meter::from_row(&row)
    }

    /// Meters in PAN order after `after`, at most `limit`.
    ///
    /// # Errors
    /// Database failures.
    pub async fn meters(&self, after: &str, limit: i64) -> Result<Vec<Meter>, VendError> {
        let rows = sqlx::query("SELECT * FROM meters WHERE pan > $1 ORDER BY pan LIMIT $2")
            .bind(after)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(Meter::from_row).collect()
    }
}
