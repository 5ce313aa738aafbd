//! Delivery: a vend that must hand out a key change set takes the meter's pending campaign
//! set, if it still fits, instead of asking the security module for one.

use serde_json::{Value, json};
use sqlx::{Any, Row, Transaction};
use sts_core::{EncryptionAlgorithm, TokenNumber};
use sts_keys::{KeyCheckValue, SecurityModule};

use super::{key_text, parse_key_text};
use crate::{VendError, db::now_seconds, meters::Meter};

/// One token of a key change set.
pub(crate) struct SetToken {
    pub(crate) number: TokenNumber,
    pub(crate) subclass: u8,
}

/// The key change set a vend hands out, from a campaign or made now.
pub(crate) struct KeyChangeSet {
    pub(crate) tokens: Vec<SetToken>,
    pub(crate) from_check_value: KeyCheckValue,
    pub(crate) to_check_value: KeyCheckValue,
    /// The campaign whose precomputed set this is.
    pub(crate) campaign: Option<i64>,
}

impl KeyChangeSet {
    /// The vend answer's `key_change` object, given its `from` and `to` key records.
    pub(crate) fn json(&self, from: Value, to: Value) -> Value {
        let mut v = json!({
            "from": from,
            "to": to,
            "from_check_value": self.from_check_value.to_hex(),
            "to_check_value": self.to_check_value.to_hex(),
            "tokens": self.tokens.len(),
        });
        if let Some(id) = self.campaign {
            v["campaign"] = json!(id);
        }
        v
    }
}

fn parse_tokens(text: &str) -> Result<Vec<SetToken>, VendError> {
    let corrupt = || VendError::Internal("campaign_items.tokens does not parse".into());
    text.split(' ')
        .map(|t| {
            let (subclass, number) = t.split_once(':').ok_or_else(corrupt)?;
            Ok(SetToken {
                number: number.parse().map_err(|_| corrupt())?,
                subclass: subclass.parse().map_err(|_| corrupt())?,
            })
        })
        .collect()
}

/// The key change set that moves `meter` from its current key record to its target, for the
/// vend `request_id`, inside the vend's transaction.
///
/// A pending campaign item for the meter is delivered (and marked so) when it moves between
/// the same key records and, for an engineer's explicit `key_change` vend
/// (`include_sgc: Some(..)`), carries the SGC exactly when a set made now would. Otherwise
/// such an item is superseded and the security module makes the set now.
pub(crate) async fn key_change_set(
    sm: &SecurityModule,
    tx: &mut Transaction<'_, Any>,
    meter: &Meter,
    include_sgc: Option<bool>,
    request_id: &str,
) -> Result<KeyChangeSet, VendError> {
    let pan = meter.pan.as_str();
    let row = sqlx::query(
        "SELECT campaign_id, from_key, to_key, tokens, from_kcv, to_kcv FROM campaign_items \
         WHERE pan = $1 AND state = 'pending'",
    )
    .bind(pan)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(row) = row {
        let campaign: i64 = row.try_get(0)?;
        let from = parse_key_text(&row.try_get::<String, _>(1)?)?;
        let to = parse_key_text(&row.try_get::<String, _>(2)?)?;
        let tokens = parse_tokens(&row.try_get::<Option<String>, _>(3)?.unwrap_or_default())?;
        let kcv = |i: usize| -> Result<KeyCheckValue, VendError> {
            row.try_get::<Option<String>, _>(i)?
                .as_deref()
                .and_then(KeyCheckValue::from_hex)
                .ok_or_else(|| VendError::Internal("campaign_items check value".into()))
        };
        let carries_sgc = tokens.iter().any(|t| t.subclass == 8);
        let same_records = from == meter.current && to == meter.target;
        let sgc_fits = include_sgc.is_none_or(|want| {
            carries_sgc
                == (want
                    || from.supply_group != to.supply_group
                    || meter.algorithm == EncryptionAlgorithm::Misty1)
        });
        if same_records && sgc_fits {
            sqlx::query(
                "UPDATE campaign_items SET state = 'delivered', request_id = $1, delivered = $2 \
                 WHERE campaign_id = $3 AND pan = $4 AND state = 'pending'",
            )
            .bind(request_id)
            .bind(now_seconds())
            .bind(campaign)
            .bind(pan)
            .execute(&mut **tx)
            .await?;
            return Ok(KeyChangeSet {
                tokens,
                from_check_value: kcv(4)?,
                to_check_value: kcv(5)?,
                campaign: Some(campaign),
            });
        }
        let reason = if same_records {
            format!("vend {request_id} asked for a key change set with the SGC set otherwise")
        } else {
            format!(
                "the meter's key record changed before delivery (now {} to {})",
                key_text(&meter.current),
                key_text(&meter.target)
            )
        };
        sqlx::query(
            "UPDATE campaign_items SET state = 'superseded', reason = $1 \
             WHERE campaign_id = $2 AND pan = $3 AND state = 'pending'",
        )
        .bind(reason)
        .bind(campaign)
        .bind(pan)
        .execute(&mut **tx)
        .await?;
    }
    let issued = sm
        .issue_key_change(
            &meter.description(&meter.current),
            &meter.description(&meter.target),
            include_sgc.unwrap_or(false),
        )
        .await?;
    Ok(KeyChangeSet {
        tokens: issued
            .set
            .iter()
            .map(|t| SetToken {
                number: t.number,
                subclass: t.block.subclass().get(),
            })
            .collect(),
        from_check_value: issued.current_check_value,
        to_check_value: issued.new_check_value,
        campaign: None,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_tokens;

    #[test]
    fn stored_tokens_parse_in_order_and_garbage_does_not() {
        let t = parse_tokens("3:12345678901234567890 4:00000000000000000001").unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].subclass, t[1].subclass), (3, 4));
        assert_eq!(t[1].number.to_string(), "00000000000000000001");
        for bad in [
            "",
            "3",
            "3:123",
            "x:12345678901234567890",
            "3:99999999999999999999",
        ] {
            assert!(parse_tokens(bad).is_err(), "{bad:?}");
        }
    }
}
