//! Verifying a token for a meter: decode it with the meter's key and explain it.

use sts_core::{KeyType, MeterDescription, Token, TokenCipher, TokenNumber, UtcMinute, decode};

use super::{SecurityModule, SmError};
use crate::KeyCheckValue;

/// A token that decodes for a meter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// What the token means.
    pub token: Token,
    /// The check value of the vending key whose decoder key opened it.
    pub check_value: KeyCheckValue,
    /// When it was issued (from its TID and the meter's base date), for tokens with a TID.
    pub issued_at: Option<UtcMinute>,
    /// A one-line explanation.
    pub description: String,
}

impl SecurityModule {
    /// Decodes `number` with the decoder key of `meter` (derived from the vending key held
    /// for its SGC, key type and KRN) and explains it. A token for another meter or key
    /// fails its CRC check. Verification changes nothing and applies no key attribute: old
    /// tokens can be checked after the key's issuing period.
    ///
    /// # Errors
    /// [`SmError::NoKey`], [`SmError::KeyMismatch`], [`SmError::Decode`] (CRC mismatch,
    /// reserved class ...).
    pub async fn verify(
        &self,
        meter: &MeterDescription,
        number: TokenNumber,
    ) -> Result<Verified, SmError> {
        if meter.key_type == KeyType::Initialization {
            return Err(SmError::InitializationKey);
        }
        let mut conn = self.pool.acquire().await?;
        let key = self
            .key_for(
                &mut conn,
                meter.supply_group,
                meter.key_type,
                meter.key_revision,
            )
            .await?;
        drop(conn);
        super::issue::check_fit(&key.attributes, meter)?;
        let dk = key.generator.derive(meter)?;
        let cipher = TokenCipher::new(meter.algorithm, &dk).map_err(|_| {
            SmError::KeyMismatch("the decoder key does not fit the encryption algorithm")
        })?;
        let decoded = decode(number, Some(&cipher))?;
        let token = decoded.token;
        let issued_at = token.tid().map(|tid| tid.to_time(meter.base_date));
        Ok(Verified {
            token,
            check_value: key.check_value,
            issued_at,
            description: describe(&token, issued_at),
        })
    }
}

/// A one-line explanation of a token.
#[must_use]
pub fn describe(token: &Token, issued_at: Option<UtcMinute>) -> String {
    let what = match token {
        Token::TransferCredit {
            service, amount, ..
        } => {
            let tenths = amount.value();
            format!(
                "transfer credit: {}.{} {} of {}",
                tenths / 10,
                tenths % 10,
                service.unit(),
                service.name()
            )
        }
        Token::CurrencyCredit {
            service, amount, ..
        } => format!("currency credit: {amount} for {}", service.name()),
        Token::InitiateMeterTest {
            control,
            manufacturer,
            ..
        } => format!(
            "initiate meter test/display: control {control:#x}, manufacturer {manufacturer}"
        ),
        Token::SetMaximumPowerLimit { limit, .. } => {
            format!("set maximum power limit: {} W", limit.value())
        }
        Token::ClearCredit { register, .. } => format!("clear credit: register {}", register.0),
        Token::SetTariffRate { rate, .. } => format!("set tariff rate: {rate:#06x}"),
        Token::KeyChange(section) => {
            format!("key change section, subclass {}", section.subclass().get())
        }
        Token::ClearTamperCondition { .. } => "clear tamper condition".to_owned(),
        Token::SetMaximumPhasePowerUnbalanceLimit { limit, .. } => {
            format!(
                "set maximum phase power unbalance limit: {} W",
                limit.value()
            )
        }
        Token::SetWaterMeterFactor { factor, .. } => {
            format!("set water meter factor: {factor:#06x}")
        }
        Token::ExtendedTokenSet { field, .. } => format!("extended token set: {field:#06x}"),
        _ => "token".to_owned(),
    };
    match (issued_at, token.tid()) {
        (Some(at), Some(tid)) => format!("{what}; TID {} issued {at}", tid.get()),
        _ => what,
    }
}
