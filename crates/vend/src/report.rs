//! The daily sales report: credit vends per UTC day, per vendor (the API key that sold) and
//! per tariff version - how many, the units sold, the money paid and the free allowances
//! issued - as JSON or as CSV (RFC 4180).

use std::{borrow::Cow, collections::HashMap};

use serde_json::{Value, json};
use sqlx::Row;

use crate::{
    Database, Tariff, VendError,
    calendar::{SECONDS_PER_DAY, date, parse_date},
    meters::service_name,
    money::write_fixed,
};

/// The most days one report covers.
pub const MAX_REPORT_DAYS: i64 = 366;

/// One line of the report: the sales of one vendor under one tariff version on one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DailyRow {
    /// Days since 1970-01-01 (UTC).
    day: i64,
    /// The API key's public ID.
    vendor: String,
    /// The API key's name.
    vendor_name: Option<String>,
    /// The tariff version in force at the sales (`None`: no tariff was in force, or a
    /// currency token).
    tariff: Option<Tariff>,
    /// Credit vends.
    sales: i64,
    /// Units on the purchase tokens, in tenths.
    units_tenths: i64,
    /// Money paid, in minor units of the tariff's currency.
    money_minor: i64,
    /// Free allowance tokens issued.
    allowances: i64,
    /// Units on them, in tenths.
    allowance_tenths: i64,
}

/// The CSV columns, in order; the JSON rows have the same names.
pub const COLUMNS: [&str; 13] = [
    "day",
    "vendor",
    "vendor_name",
    "tariff_id",
    "tariff_version",
    "utility",
    "ti",
    "currency",
    "sales",
    "units",
    "money",
    "allowances",
    "allowance_units",
];

impl DailyRow {
    /// The row's values as text, in the order of [`COLUMNS`]; `None` where there is none.
    fn values(&self) -> [Option<String>; 13] {
        let t = self.tariff.as_ref();
        [
            Some(date(self.day)),
            Some(self.vendor.clone()),
            self.vendor_name.clone(),
            t.map(|t| t.id().to_string()),
            t.map(|t| t.version().to_string()),
            t.map(|t| service_name(t.utility()).to_owned()),
            t.map(|t| t.tariff_index().to_string()),
            t.map(|t| t.currency().to_string()),
            Some(self.sales.to_string()),
            Some(tenths_text(self.units_tenths)),
            t.map(|t| {
                write_fixed(
                    u128::try_from(self.money_minor).unwrap_or(0),
                    t.currency_decimals(),
                )
            }),
            Some(self.allowances.to_string()),
            Some(tenths_text(self.allowance_tenths)),
        ]
    }

    fn json(&self) -> Value {
        let values = self.values();
        let mut row = serde_json::Map::new();
        for (name, value) in COLUMNS.iter().zip(values) {
            let v = match (*name, value) {
                (_, None) => Value::Null,
                ("sales" | "allowances" | "tariff_id" | "tariff_version", Some(v)) => {
                    v.parse::<i64>().map_or(Value::String(v), Value::from)
                }
                (_, Some(v)) => Value::String(v),
            };
            row.insert((*name).to_owned(), v);
        }
        Value::Object(row)
    }
}

fn tenths_text(tenths: i64) -> String {
    write_fixed(u128::try_from(tenths).unwrap_or(0), 1)
}

/// The daily sales from one day to another (both included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyReport {
    from: i64,
    to: i64,
    rows: Vec<DailyRow>,
}

/// A field of a CSV line, quoted when it holds a comma, a quote, a line break or edge spaces
/// (RFC 4180: quotes inside are doubled).
fn csv_field(text: &str) -> Cow<'_, str> {
    let plain = !text.contains([',', '"', '\n', '\r']) && text.trim() == text;
    if plain {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(format!("\"{}\"", text.replace('"', "\"\"")))
    }
}

impl DailyReport {
    /// The report as JSON: `from`, `to`, `columns` and `rows` (objects by column name).
    #[must_use]
    pub fn to_json(&self) -> Value {
        json!({
            "from": date(self.from),
            "to": date(self.to),
            "rows": self.rows.iter().map(DailyRow::json).collect::<Vec<_>>(),
        })
    }

    /// The report as CSV: a header line of [`COLUMNS`], then one line per row, CRLF line
    /// ends; an empty field where the JSON has `null`.
    #[must_use]
    pub fn to_csv(&self) -> String {
        let mut out = COLUMNS.join(",");
        out.push_str("\r\n");
        for row in &self.rows {
            let line: Vec<Cow<'_, str>> = row
                .values()
                .iter()
                .map(|v| match v {
                    Some(v) => Cow::Owned(csv_field(v).into_owned()),
                    None => Cow::Borrowed(""),
                })
                .collect();
            out.push_str(&line.join(","));
            out.push_str("\r\n");
        }
        out
    }

    /// A file name for the CSV: `sales-FROM-TO.csv`.
    #[must_use]
    pub fn file_name(&self) -> String {
        format!("sales-{}-{}.csv", date(self.from), date(self.to))
    }

    /// The rows, for display: day, vendor, vendor name, tariff (`v1 electricity 01 ZAR` or
    /// none), sales, units, money, allowance units.
    #[must_use]
    pub fn lines(&self) -> Vec<[String; 8]> {
        self.rows
            .iter()
            .map(|r| {
                let v = r.values();
                let text = |i: usize| v[i].clone().unwrap_or_default();
                let tariff = match &r.tariff {
                    Some(t) => format!(
                        "{} v{} ({} TI {}, {})",
                        t.id(),
                        t.version(),
                        service_name(t.utility()),
                        t.tariff_index(),
                        t.currency()
                    ),
                    None => "none".to_owned(),
                };
                [
                    text(0),
                    text(1),
                    text(2),
                    tariff,
                    text(8),
                    text(9),
                    match (&v[10], &v[7]) {
                        (Some(m), Some(c)) => format!("{m} {c}"),
                        _ => String::new(),
                    },
                    text(12),
                ]
            })
            .collect()
    }
}

impl Database {
    /// The daily sales report from `from` to `to` (`YYYY-MM-DD`, UTC, both included, at most
    /// [`MAX_REPORT_DAYS`] days): credit vends grouped by day, vendor and tariff version,
    /// ordered by day, vendor and tariff.
    ///
    /// # Errors
    /// [`VendError::Invalid`] naming `from` or `to`; database failures.
    pub async fn daily_report(
        &self,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<DailyReport, VendError> {
        let mut problems = std::collections::BTreeMap::new();
        let mut day = |name: &str, text: Option<&str>| match text {
            None => {
                problems.insert(name.to_owned(), "required (YYYY-MM-DD)".to_owned());
                None
            }
            Some(t) => parse_date(t)
                .map_err(|e| {
                    problems.insert(name.to_owned(), e);
                })
                .ok(),
        };
        let (from, to) = (day("from", from), day("to", to));
        if let (Some(from), Some(to)) = (from, to) {
            if to < from {
                problems.insert("to".into(), "before from".into());
            } else if to - from >= MAX_REPORT_DAYS {
                problems.insert(
                    "to".into(),
                    format!("at most {MAX_REPORT_DAYS} days from from"),
                );
            }
        }
        let (Some(from), Some(to), true) = (from, to, problems.is_empty()) else {
            return Err(VendError::fields(problems));
        };
        let rows = sqlx::query(
            "SELECT v.created / 86400, v.key_id, k.name, v.tariff_id, COUNT(*), \
             CAST(SUM(v.units_tenths) AS BIGINT), CAST(SUM(v.money_minor) AS BIGINT), \
             COUNT(v.allowance_tenths), CAST(SUM(v.allowance_tenths) AS BIGINT) \
             FROM vends v LEFT JOIN api_keys k ON k.id = v.key_id \
             WHERE v.kind = 'credit' AND v.created >= $1 AND v.created < $2 \
             GROUP BY v.created / 86400, v.key_id, k.name, v.tariff_id",
        )
        .bind(from * SECONDS_PER_DAY)
        .bind((to + 1) * SECONDS_PER_DAY)
        .fetch_all(self.pool())
        .await?;
        let tariffs: HashMap<i64, Tariff> = self
            .tariffs()
            .await?
            .into_iter()
            .map(|t| (t.id(), t))
            .collect();
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let tariff_id: Option<i64> = row.try_get(3)?;
            let tariff = match tariff_id {
                Some(id) => Some(tariffs.get(&id).cloned().ok_or_else(|| {
                    VendError::Internal(format!("a vend names tariff {id}, which is not stored"))
                })?),
                None => None,
            };
            out.push(DailyRow {
                day: row.try_get(0)?,
                vendor: row.try_get(1)?,
                vendor_name: row.try_get(2)?,
                tariff,
                sales: row.try_get(4)?,
                units_tenths: row.try_get::<Option<i64>, _>(5)?.unwrap_or(0),
                money_minor: row.try_get::<Option<i64>, _>(6)?.unwrap_or(0),
                allowances: row.try_get(7)?,
                allowance_tenths: row.try_get::<Option<i64>, _>(8)?.unwrap_or(0),
            });
        }
        out.sort_by(|a, b| {
            (a.day, &a.vendor, a.tariff.as_ref().map(Tariff::id)).cmp(&(
                b.day,
                &b.vendor,
                b.tariff.as_ref().map(Tariff::id),
            ))
        });
        Ok(DailyReport {
            from,
            to,
            rows: out,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_fields_are_quoted_when_they_must_be() {
        assert_eq!(csv_field("pos-1"), "pos-1");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field(" padded"), "\" padded\"");
        assert_eq!(csv_field(""), "");
    }
}
