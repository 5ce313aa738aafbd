//! Tariffs: the price per unit of a utility's tariff index, in versions that take effect at a
//! time and never change afterwards; the sale of money for units; the monthly free allowance.
//!
//! A tariff is named by its utility and tariff index (the meter's TI). Each version has an ID
//! (unique over all tariffs), a version number (1, 2 ... per tariff, in order of creation), a
//! currency, a price per unit, the time it takes effect, and optionally a monthly free
//! allowance in units. The version in force at a time is the one with the latest
//! `effective_from` at or before it. A version may not take effect in the past: a sale made
//! already used the version then in force, and its record says which.

use std::{collections::BTreeMap, fmt, sync::Arc};

use serde_json::{Map, Value, json};
use sqlx::{Row, any::AnyRow};
use sts_core::{Service, TariffIndex, TransferAmount};

use crate::{
    Database, VendError, audit,
    calendar::{parse_time, rfc3339},
    meters::{parse_service, service_name},
    money::{Decimal, DecimalError, write_fixed},
    retry,
};

/// The most decimal places of a price per unit.
pub(crate) const PRICE_PLACES: u32 = 6;

/// The most decimal places of a currency (its minor unit: 2 for ZAR, 0 for JPY, 3 for KWD).
pub(crate) const MAX_CURRENCY_DECIMALS: u32 = 4;

/// An ISO 4217 alphabetic currency code: three capital letters (`ZAR`, `USD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency([u8; 3]);

impl Currency {
    /// The code.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Three ASCII capitals, checked when parsed.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl std::str::FromStr for Currency {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_uppercase) => Ok(Self([a, b, c])),
            _ => Err("three capital letters (an ISO 4217 code such as ZAR)".to_owned()),
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One version of a tariff; never changed once created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tariff {
    id: i64,
    utility: Service,
    tariff_index: TariffIndex,
    version: i64,
    currency: Currency,
    currency_decimals: u32,
    price: Decimal,
    effective_from: i64,
    allowance: Option<TransferAmount>,
    created: i64,
    created_by: Option<String>,
}

/// `tenths` as units with one decimal (`407` -> `40.7`).
pub(crate) fn units_text(tenths: u32) -> String {
    write_fixed(u128::from(tenths), 1)
}

impl Tariff {
    /// The version's ID, unique over all tariffs.
    #[must_use]
    pub fn id(&self) -> i64 {
        self.id
    }

    /// The version number: 1, 2 ... per utility and tariff index, in order of creation.
    #[must_use]
    pub fn version(&self) -> i64 {
        self.version
    }

    /// The utility.
    #[must_use]
    pub fn utility(&self) -> Service {
        self.utility
    }

    /// The tariff index (the meter's TI).
    #[doc(alias = "TI")]
    #[must_use]
    pub fn tariff_index(&self) -> TariffIndex {
        self.tariff_index
    }

    /// The currency.
    #[must_use]
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// The price per unit, as a decimal string (`2.4536`).
    #[must_use]
    pub fn price(&self) -> String {
        self.price.to_string()
    }

    /// Unix seconds from which this version is in force.
    #[must_use]
    pub fn effective_from(&self) -> i64 {
        self.effective_from
    }

    /// The monthly free allowance in tenths of a unit, if any.
    #[must_use]
    pub fn allowance_tenths(&self) -> Option<u32> {
        self.allowance.map(TransferAmount::value)
    }

    pub(crate) fn allowance(&self) -> Option<TransferAmount> {
        self.allowance
    }

    pub(crate) fn currency_decimals(&self) -> u32 {
        self.currency_decimals
    }

    /// The version as the JSON API shows it.
    #[must_use]
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "utility": service_name(self.utility),
            "ti": self.tariff_index.to_string(),
            "version": self.version,
            "currency": self.currency.as_str(),
            "currency_decimals": self.currency_decimals,
            "price": self.price.to_string(),
            "unit": self.utility.unit(),
            "effective_from": rfc3339(self.effective_from),
            "allowance": self.allowance.map(|a| units_text(a.value())),
            "created": self.created,
            "created_by": self.created_by,
        })
    }

    /// What a vend result records of the tariff it was sold under.
    pub(crate) fn vend_json(&self) -> Value {
        json!({
            "id": self.id,
            "version": self.version,
            "utility": service_name(self.utility),
            "ti": self.tariff_index.to_string(),
            "currency": self.currency.as_str(),
            "price": self.price.to_string(),
            "unit": self.utility.unit(),
            "effective_from": rfc3339(self.effective_from),
            "allowance": self.allowance.map(|a| units_text(a.value())),
        })
    }

    /// Sells `money` for units at this version's price.
    ///
    /// The rule: `units = money / price`, rounded **down** to the token's resolution (0.1 unit,
    /// coarser above 1638.3 units: see [`TransferAmount::from_value_floor`]), so a token never
    /// carries more than was paid for; `cost = units * price` and `change = money - cost`,
    /// both exact. Integer arithmetic throughout.
    ///
    /// # Errors
    /// [`VendError::Invalid`] on `token.amount`: more decimal places than the currency has,
    /// too little to buy the smallest unit, or more than one token carries.
    pub(crate) fn sell(&self, money: Decimal) -> Result<Sale, VendError> {
        let field = |problem: String| VendError::field("token.amount", problem);
        let decimals = self.currency_decimals;
        if money.at_scale(decimals).is_none() {
            return Err(field(format!(
                "{} has {decimals} decimal places: {money} has more",
                self.currency
            )));
        }
        let unit = self.utility.unit();
        let (price, price_scale) = self.price.parts();
        let (paid, paid_scale) = money.parts();
        let scale = price_scale.max(paid_scale);
        // Both mantissas are below 10^18 and scales at most 9: the products fit in a u128.
        let paid_at = paid * 10u128.pow(scale - paid_scale);
        let price_at = price * 10u128.pow(scale - price_scale);
        if price_at == 0 {
            return Err(VendError::Internal(format!(
                "tariff {} has price zero",
                self.id
            )));
        }
        let tenths = paid_at * 10 / price_at;
        if tenths == 0 {
            // The least money that buys 0.1 unit: price / 10, rounded up to the currency.
            let least = (price * 10u128.pow(decimals)).div_ceil(10u128.pow(price_scale + 1));
            return Err(field(format!(
                "{money} {} buys less than 0.1 {unit} at {} {}/{unit}; the least is {}",
                self.currency,
                self.price,
                self.currency,
                write_fixed(least, decimals)
            )));
        }
        let amount = u32::try_from(tenths)
            .ok()
            .and_then(|t| TransferAmount::from_value_floor(t).ok())
            .ok_or_else(|| {
                field(format!(
                    "{money} {} buys more than one token carries ({} {unit}): split the sale",
                    self.currency,
                    units_text(TransferAmount::MAX_VALUE)
                ))
            })?;
        let cost = Decimal::new(u128::from(amount.value()) * price, price_scale + 1)
            .map_err(|e| VendError::Internal(format!("cost of a sale: {e}")))?;
        let change = money
            .checked_sub(cost)
            .ok_or_else(|| VendError::Internal("a sale cost more than was paid".into()))?;
        Ok(Sale {
            money,
            amount,
            cost,
            change,
        })
    }

    fn from_row(row: &AnyRow) -> Result<Self, VendError> {
        let id: i64 = row.try_get("id")?;
        let corrupt =
            |name: &str| VendError::Internal(format!("tariff {id}: {name} does not parse"));
        let text =
            |name: &str| -> Result<String, VendError> { Ok(row.try_get::<String, _>(name)?) };
        let allowance: Option<i64> = row.try_get("allowance_tenths")?;
        let created_by: Option<String> = row.try_get("created_by")?;
        Ok(Self {
            id,
            utility: parse_service(&text("utility")?).map_err(|_| corrupt("utility"))?,
            tariff_index: text("ti")?.parse().map_err(|_| corrupt("ti"))?,
            version: row.try_get("version")?,
            currency: text("currency")?.parse().map_err(|_| corrupt("currency"))?,
            currency_decimals: u32::try_from(row.try_get::<i64, _>("currency_decimals")?)
                .map_err(|_| corrupt("currency_decimals"))?,
            price: Decimal::parse(&text("price")?, PRICE_PLACES).map_err(|_| corrupt("price"))?,
            effective_from: row.try_get("effective_from")?,
            allowance: allowance
                .map(|t| {
                    u32::try_from(t)
                        .ok()
                        .and_then(|t| TransferAmount::from_value_ceil(t).ok())
                        .ok_or_else(|| corrupt("allowance_tenths"))
                })
                .transpose()?,
            created: row.try_get("created")?,
            created_by,
        })
    }
}

impl fmt::Display for Tariff {
    /// `tariff 3: electricity TI 01 version 2, 2.4536 ZAR/kWh from 2026-07-01T00:00:00Z,
    /// free allowance 50.0 kWh a month`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = self.utility.unit();
        write!(
            f,
            "tariff {}: {} TI {} version {}, {} {}/{unit} from {}",
            self.id,
            service_name(self.utility),
            self.tariff_index,
            self.version,
            self.price,
            self.currency,
            rfc3339(self.effective_from)
        )?;
        if let Some(a) = self.allowance {
            write!(
                f,
                ", free allowance {} {unit} a month",
                units_text(a.value())
            )?;
        }
        Ok(())
    }
}

/// Money sold for units under a tariff version.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sale {
    /// What was paid.
    pub(crate) money: Decimal,
    /// The units on the token (tenths, as the token encodes them).
    pub(crate) amount: TransferAmount,
    /// `units * price`.
    pub(crate) cost: Decimal,
    /// `money - cost`: not on the token.
    pub(crate) change: Decimal,
}

/// The rule every money vend states in its result.
pub(crate) const RULE: &str = "units = paid / price, rounded down to 0.1 unit (and to the token's encoding above 1638.3 units); cost = units * price; change = paid - cost";

impl Sale {
    /// What a vend result records of the sale.
    pub(crate) fn json(&self, tariff: &Tariff) -> Value {
        let decimals = tariff.currency_decimals;
        json!({
            "currency": tariff.currency.as_str(),
            "paid": self.money.with_places(decimals),
            "price": tariff.price.to_string(),
            "units": units_text(self.amount.value()),
            "cost": self.cost.with_places(decimals),
            "change": self.change.with_places(decimals),
            "rule": RULE,
        })
    }

    /// What was paid in minor units of the currency (cents), for the daily report's sums.
    pub(crate) fn minor_units(&self, tariff: &Tariff) -> Option<i64> {
        self.money
            .at_scale(tariff.currency_decimals)
            .and_then(|m| i64::try_from(m).ok())
    }
}

/// Every tariff version, as read at one time.
#[derive(Debug, Default)]
pub(crate) struct TariffSet {
    versions: Vec<Tariff>,
}

impl TariffSet {
    /// The version of (utility, TI) in force at `at` (Unix seconds): the latest to take
    /// effect at or before it.
    pub(crate) fn in_force(
        &self,
        utility: Service,
        tariff_index: TariffIndex,
        at: i64,
    ) -> Option<&Tariff> {
        self.versions
            .iter()
            .filter(|t| {
                t.utility == utility && t.tariff_index == tariff_index && t.effective_from <= at
            })
            .max_by_key(|t| t.effective_from)
    }

    /// The set of `versions`.
    pub(crate) fn new(versions: Vec<Tariff>) -> Self {
        Self { versions }
    }

    /// True when `tariff` is the version of its utility and TI in force at `at`.
    pub(crate) fn is_in_force(&self, tariff: &Tariff, at: i64) -> bool {
        self.in_force(tariff.utility, tariff.tariff_index, at)
            .is_some_and(|t| t.id == tariff.id)
    }

    /// The versions.
    pub(crate) fn versions(&self) -> &[Tariff] {
        &self.versions
    }
}

/// The tariff versions last read, with how many rows they were: versions are never changed
/// or deleted, so an equal count means nothing was added since.
#[derive(Debug, Default)]
pub(crate) struct TariffCache(Option<(i64, Arc<TariffSet>)>);

/// A new version, parsed.
#[derive(Debug)]
struct NewTariff {
    utility: Service,
    tariff_index: TariffIndex,
    currency: Currency,
    currency_decimals: u32,
    price: Decimal,
    effective_from: i64,
    allowance: Option<TransferAmount>,
}

const FIELDS: &[&str] = &[
    "utility",
    "ti",
    "currency",
    "currency_decimals",
    "price",
    "effective_from",
    "allowance",
];

fn parse_new_tariff(body: &Map<String, Value>, now: i64) -> Result<NewTariff, VendError> {
    let mut problems: BTreeMap<String, String> = BTreeMap::new();
    for name in body.keys() {
        if !FIELDS.contains(&name.as_str()) {
            problems.insert(name.clone(), "unknown field".into());
        }
    }
    let mut text = |name: &str, required: bool| -> Option<String> {
        match body.get(name) {
            Some(Value::String(s)) => Some(s.trim().to_owned()),
            Some(Value::Number(_)) => {
                problems.insert(
                    name.into(),
                    "expected a string: a JSON number may not be exact".into(),
                );
                None
            }
            Some(_) => {
                problems.insert(name.into(), "expected a string".into());
                None
            }
            None => {
                if required {
                    problems.insert(name.into(), "required".into());
                }
                None
            }
        }
    };
    let utility = text("utility", true);
    let ti = text("ti", true);
    let currency = text("currency", true);
    let price = text("price", true);
    let effective_from = text("effective_from", false);
    let allowance = text("allowance", false);
    let mut problem = |name: &str, p: String| {
        problems.insert(name.to_owned(), p);
    };
    let utility = utility.and_then(|s| parse_service(&s).map_err(|e| problem("utility", e)).ok());
    let tariff_index = ti.and_then(|s| {
        s.parse::<TariffIndex>()
            .map_err(|_| problem("ti", "the meter's tariff index: 00 to 99".into()))
            .ok()
    });
    let currency = currency.and_then(|s| {
        s.parse::<Currency>()
            .map_err(|e| problem("currency", e))
            .ok()
    });
    let currency_decimals = match body.get("currency_decimals") {
        None => Some(2),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(d) if d <= u64::from(MAX_CURRENCY_DECIMALS) => Some(d as u32),
            _ => {
                problem(
                    "currency_decimals",
                    format!("an integer from 0 to {MAX_CURRENCY_DECIMALS}"),
                );
                None
            }
        },
        Some(_) => {
            problem(
                "currency_decimals",
                format!("an integer from 0 to {MAX_CURRENCY_DECIMALS}"),
            );
            None
        }
    };
    let price = price.and_then(|s| match Decimal::parse(&s, PRICE_PLACES) {
        Ok(p) if p.is_zero() => {
            problem("price", "must be more than 0".into());
            None
        }
        Ok(p) => Some(p),
        Err(e) => {
            problem("price", format!("{e} (a price per unit)"));
            None
        }
    });
    let effective_from = match effective_from {
        None => Some(now),
        Some(s) => match parse_time(&s) {
            Ok(t) if t < now => {
                problem(
                    "effective_from",
                    format!(
                        "{} is in the past (now {}): a new version takes effect now or later",
                        rfc3339(t),
                        rfc3339(now)
                    ),
                );
                None
            }
            Ok(t) => Some(t),
            Err(e) => {
                problem("effective_from", e);
                None
            }
        },
    };
    let allowance = match allowance {
        None => Some(None),
        Some(s) => match Decimal::parse(&s, 1) {
            Ok(a) if a.is_zero() => {
                problem(
                    "allowance",
                    "must be more than 0 (leave it out for no allowance)".into(),
                );
                None
            }
            Ok(a) => {
                let tenths = a.at_scale(1).and_then(|t| u32::try_from(t).ok());
                match tenths.map(|t| (t, TransferAmount::from_value_floor(t))) {
                    Some((t, Ok(floor))) if floor.value() == t => Some(Some(floor)),
                    Some((_, Ok(floor))) => {
                        problem(
                            "allowance",
                            format!(
                                "a token cannot carry exactly {a} units; {} can",
                                units_text(floor.value())
                            ),
                        );
                        None
                    }
                    _ => {
                        problem(
                            "allowance",
                            format!(
                                "more than a token carries ({})",
                                units_text(TransferAmount::MAX_VALUE)
                            ),
                        );
                        None
                    }
                }
            }
            Err(DecimalError::TooPrecise(_)) => {
                problem("allowance", "units with at most one decimal place".into());
                None
            }
            Err(e) => {
                problem("allowance", format!("{e} (units)"));
                None
            }
        },
    };
    if !problems.is_empty() {
        return Err(VendError::fields(problems));
    }
    match (
        utility,
        tariff_index,
        currency,
        currency_decimals,
        price,
        effective_from,
        allowance,
    ) {
        (
            Some(utility),
            Some(tariff_index),
            Some(currency),
            Some(currency_decimals),
            Some(price),
            Some(effective_from),
            Some(allowance),
        ) => Ok(NewTariff {
            utility,
            tariff_index,
            currency,
            currency_decimals,
            price,
            effective_from,
            allowance,
        }),
        _ => Err(VendError::Internal(
            "tariff fields parsed without values".into(),
        )),
    }
}

impl Database {
    /// Creates a tariff version from its JSON description (`utility`, `ti`, `currency`,
    /// `price`, optional `currency_decimals` (default 2), `effective_from` (default now) and
    /// `allowance`), recorded in the audit table as made by `by` (an API key ID, or `None` at
    /// the command line).
    ///
    /// # Errors
    /// [`VendError::Invalid`] with a message per bad field (nothing is stored), database
    /// failures.
    pub async fn create_tariff(
        &self,
        by: Option<&str>,
        body: &Map<String, Value>,
    ) -> Result<Tariff, VendError> {
        let now = self.now();
        let new = parse_new_tariff(body, now)?;
        let tariff = retry(|| self.create_tariff_once(by, &new, now)).await?;
        tracing::info!(
            id = tariff.id,
            utility = service_name(tariff.utility),
            ti = %tariff.tariff_index,
            version = tariff.version,
            key = by,
            "tariff version created"
        );
        Ok(tariff)
    }

    async fn create_tariff_once(
        &self,
        by: Option<&str>,
        new: &NewTariff,
        now: i64,
    ) -> Result<Tariff, VendError> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool().begin().await?;
        let utility = service_name(new.utility);
        let ti = new.tariff_index.to_string();
        let same_time = sqlx::query(
            "SELECT version FROM tariffs WHERE utility = $1 AND ti = $2 AND effective_from = $3",
        )
        .bind(utility)
        .bind(&ti)
        .bind(new.effective_from)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = same_time {
            let version: i64 = row.try_get(0)?;
            return Err(VendError::field(
                "effective_from",
                format!(
                    "version {version} of {utility} TI {ti} takes effect at {} already",
                    rfc3339(new.effective_from)
                ),
            ));
        }
        let last: Option<i64> =
            sqlx::query("SELECT MAX(version) FROM tariffs WHERE utility = $1 AND ti = $2")
                .bind(utility)
                .bind(&ti)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
        let version = last.unwrap_or(0) + 1;
        let row = sqlx::query(
            "INSERT INTO tariffs (utility, ti, version, currency, currency_decimals, price, \
             effective_from, allowance_tenths, created, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(utility)
        .bind(&ti)
        .bind(version)
        .bind(new.currency.as_str())
        .bind(i64::from(new.currency_decimals))
        .bind(new.price.to_string())
        .bind(new.effective_from)
        .bind(new.allowance.map(|a| i64::from(a.value())))
        .bind(now)
        .bind(by)
        .fetch_one(&mut *tx)
        .await?;
        let tariff = Tariff {
            id: row.try_get(0)?,
            utility: new.utility,
            tariff_index: new.tariff_index,
            version,
            currency: new.currency,
            currency_decimals: new.currency_decimals,
            price: new.price,
            effective_from: new.effective_from,
            allowance: new.allowance,
            created: now,
            created_by: by.map(str::to_owned),
        };
        audit::append(
            &mut tx,
            &audit::Entry {
                key_id: by,
                action: "tariff.create",
                details: tariff.to_json(),
                ..audit::Entry::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(tariff)
    }

    /// Every tariff version, by utility, tariff index and effective time.
    ///
    /// # Errors
    /// Database failures.
    pub async fn tariffs(&self) -> Result<Vec<Tariff>, VendError> {
        let rows = sqlx::query("SELECT * FROM tariffs ORDER BY utility, ti, effective_from")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(Tariff::from_row).collect()
    }

    /// Every tariff version (as [`Database::tariffs`]), each with whether it is the version
    /// of its utility and TI in force now.
    ///
    /// # Errors
    /// Database failures.
    pub async fn tariffs_in_force(&self) -> Result<Vec<(Tariff, bool)>, VendError> {
        let set = TariffSet::new(self.tariffs().await?);
        let now = self.now();
        Ok(set
            .versions()
            .iter()
            .map(|t| (t.clone(), set.is_in_force(t, now)))
            .collect())
    }

    /// A tariff version by ID.
    ///
    /// # Errors
    /// [`VendError::NotFound`], database failures.
    pub async fn tariff(&self, id: i64) -> Result<Tariff, VendError> {
        let row = sqlx::query("SELECT * FROM tariffs WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| VendError::NotFound(format!("tariff {id}")))?;
        Tariff::from_row(&row)
    }

    /// The version of (utility, TI) in force now, if any.
    ///
    /// # Errors
    /// Database failures.
    pub async fn tariff_in_force(
        &self,
        utility: Service,
        tariff_index: TariffIndex,
    ) -> Result<Option<Tariff>, VendError> {
        let mut conn = self.pool().acquire().await?;
        let set = self.tariff_set(&mut conn).await?;
        Ok(set.in_force(utility, tariff_index, self.now()).cloned())
    }

    /// Every tariff version, from memory when none was added since the last read: one
    /// `COUNT(*)` statement, and a full read only after a change (by this process or
    /// another, such as `sts tariff set`).
    pub(crate) async fn tariff_set(
        &self,
        conn: &mut sqlx::AnyConnection,
    ) -> Result<Arc<TariffSet>, VendError> {
        let count: i64 = sqlx::query("SELECT COUNT(*) FROM tariffs")
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        if let Ok(cache) = self.tariff_cache.lock()
            && let Some((n, set)) = &cache.0
            && *n == count
        {
            return Ok(Arc::clone(set));
        }
        let rows = sqlx::query("SELECT * FROM tariffs ORDER BY id")
            .fetch_all(&mut *conn)
            .await?;
        let versions = rows
            .iter()
            .map(Tariff::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let read = i64::try_from(versions.len()).unwrap_or(i64::MAX);
        let set = Arc::new(TariffSet { versions });
        if let Ok(mut cache) = self.tariff_cache.lock() {
            cache.0 = Some((read, Arc::clone(&set)));
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tariff(price: &str, decimals: u32) -> Tariff {
        Tariff {
            id: 1,
            utility: Service::Electricity,
            tariff_index: "01".parse().unwrap(),
            version: 1,
            currency: "ZAR".parse().unwrap(),
            currency_decimals: decimals,
            price: Decimal::parse(price, PRICE_PLACES).unwrap(),
            effective_from: 0,
            allowance: None,
            created: 0,
            created_by: None,
        }
    }

    fn sell(price: &str, money: &str) -> Result<(String, String, String), String> {
        let t = tariff(price, 2);
        t.sell(Decimal::parse(money, 4).unwrap())
            .map(|s| {
                (
                    units_text(s.amount.value()),
                    s.cost.with_places(2),
                    s.change.with_places(2),
                )
            })
            .map_err(|e| e.to_string())
    }

    fn ok(a: &str, b: &str, c: &str) -> Result<(String, String, String), String> {
        Ok((a.into(), b.into(), c.into()))
    }

    #[test]
    fn money_buys_units_rounded_down() {
        assert_eq!(sell("2.4536", "100.00"), ok("40.7", "99.86152", "0.13848"));
        assert_eq!(sell("2.4536", "0.25"), ok("0.1", "0.24536", "0.00464"));
        assert_eq!(sell("2", "10"), ok("5.0", "10.00", "0.00"));
        assert_eq!(sell("0.001", "0.01"), ok("10.0", "0.01", "0.00"));
        assert_eq!(sell("0.123456", "1"), ok("8.1", "0.9999936", "0.0000064"));
        // 5000 kWh is above 1638.3: the token's resolution there is 1 kWh, and the value
        // nearest below 5000 is 4999.4 (16 384 + 3361 * 10 tenths).
        assert_eq!(sell("1", "5000.00"), ok("4999.4", "4999.40", "0.60"));
    }

    #[test]
    fn too_little_and_too_much_are_refused() {
        let e = sell("2.4536", "0.24").unwrap_err();
        assert!(
            e.contains("buys less than 0.1 kWh") && e.contains("the least is 0.25"),
            "{e}"
        );
        let e = sell("0.01", "100000000").unwrap_err();
        assert!(e.contains("more than one token carries"), "{e}");
        let e = sell("2", "1.001").unwrap_err();
        assert!(e.contains("ZAR has 2 decimal places"), "{e}");
    }

    #[test]
    fn the_version_in_force_is_the_latest_to_take_effect() {
        let mut a = tariff("1", 2);
        a.effective_from = 100;
        let mut b = tariff("2", 2);
        b.id = 2;
        b.version = 2;
        b.effective_from = 50;
        let mut c = tariff("3", 2);
        c.id = 3;
        c.version = 3;
        c.effective_from = 200;
        let set = TariffSet {
            versions: vec![a, b, c],
        };
        let ti = "01".parse().unwrap();
        let at = |t| set.in_force(Service::Electricity, ti, t).map(|t| t.id);
        assert_eq!(at(49), None);
        assert_eq!(at(50), Some(2));
        assert_eq!(at(99), Some(2));
        assert_eq!(at(100), Some(1));
        assert_eq!(at(200), Some(3));
        assert_eq!(set.in_force(Service::Water, ti, 500).map(|t| t.id), None);
        assert_eq!(
            set.in_force(Service::Electricity, "02".parse().unwrap(), 500)
                .map(|t| t.id),
            None
        );
    }

    #[test]
    fn bad_fields_are_named() {
        let body = json!({"utility": "steam", "ti": "100", "currency": "zar", "price": "-1",
                          "effective_from": "yesterday", "allowance": "50.05", "colour": "red",
                          "currency_decimals": 7});
        let Err(VendError::Invalid { fields, .. }) = parse_new_tariff(body.as_object().unwrap(), 0)
        else {
            panic!("accepted");
        };
        let names: Vec<&str> = fields.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "allowance",
                "colour",
                "currency",
                "currency_decimals",
                "effective_from",
                "price",
                "ti",
                "utility"
            ]
        );
    }
}
