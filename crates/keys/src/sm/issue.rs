//! Issuing tokens: every token type of the engine, under the vending key's attributes.

use serde_json::json;
use sqlx::{Row, SqliteConnection};
use sts_core::{
    BaseDate, CurrencyAmount, KeyChange, KeyChangeSet, MeterDescription, RandomNumber, Register,
    Service, Token, TokenCipher, TokenIdentifier, TokenNumber, TransferAmount, UtcMinute,
    token::MeterTestFormat,
};

use std::collections::HashMap;

use super::{CachedKey, SecurityModule, Slot, SmError};
use crate::audit::Appender;
use crate::{KeyAttributes, KeyCheckValue, SecurityModuleId, VendingKeyType, random};

/// A token to issue; the module adds the TID (from its clock) and the random nibble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenRequest {
    /// 0/0-0/3: credit in tenths of the service unit.
    TransferCredit {
        /// The service.
        service: Service,
        /// The amount.
        amount: TransferAmount,
    },
    /// 0/4-0/7: currency credit.
    CurrencyCredit {
        /// The service.
        service: Service,
        /// The amount.
        amount: CurrencyAmount,
    },
    /// 1/0-1/2: initiate a meter test or display. Not encrypted: no key is used.
    InitiateMeterTest {
        /// Layout.
        format: MeterTestFormat,
        /// Control bits.
        control: u64,
        /// Manufacturer code.
        manufacturer: u16,
    },
    /// 2/0: maximum power limit in watts.
    SetMaximumPowerLimit {
        /// The limit.
        limit: TransferAmount,
    },
    /// 2/1: clear a credit register.
    ClearCredit {
        /// The register.
        register: Register,
    },
    /// 2/2: tariff rate (content reserved by the STS Association).
    SetTariffRate {
        /// The rate field.
        rate: u16,
    },
    /// 2/5: clear the tamper condition.
    ClearTamperCondition,
    /// 2/6: maximum phase power unbalance limit in watts.
    SetMaximumPhasePowerUnbalanceLimit {
        /// The limit.
        limit: TransferAmount,
    },
    /// 2/7: water meter factor (content reserved by the STS Association).
    SetWaterMeterFactor {
        /// The factor field.
        factor: u16,
    },
    /// 2/10: extended token set (STS202-5).
    ExtendedTokenSet {
        /// The 16-bit field.
        field: u16,
    },
}

impl TokenRequest {
    /// The credit the token carries, in credit units (see [`crate::CreditLimit`]).
    #[must_use]
    pub fn credit_units(&self) -> Option<u64> {
        match self {
            Self::TransferCredit { amount, .. } => Some(u64::from(amount.value())),
            Self::CurrencyCredit { amount, .. } => {
                Some(u64::try_from(amount.units().max(0)).unwrap_or(u64::MAX))
            }
            _ => None,
        }
    }

    fn token(self, rnd: RandomNumber, tid: TokenIdentifier) -> Token {
        match self {
            Self::TransferCredit { service, amount } => Token::TransferCredit {
                service,
                rnd,
                tid,
                amount,
            },
            Self::CurrencyCredit { service, amount } => Token::CurrencyCredit {
                service,
                tid,
                amount,
            },
            Self::InitiateMeterTest {
                format,
                control,
                manufacturer,
            } => Token::InitiateMeterTest {
                format,
                control,
                manufacturer,
            },
            Self::SetMaximumPowerLimit { limit } => Token::SetMaximumPowerLimit { rnd, tid, limit },
            Self::ClearCredit { register } => Token::ClearCredit { rnd, tid, register },
            Self::SetTariffRate { rate } => Token::SetTariffRate { rnd, tid, rate },
            Self::ClearTamperCondition => Token::ClearTamperCondition { rnd, tid, pad: 0 },
            Self::SetMaximumPhasePowerUnbalanceLimit { limit } => {
                Token::SetMaximumPhasePowerUnbalanceLimit { rnd, tid, limit }
            }
            Self::SetWaterMeterFactor { factor } => Token::SetWaterMeterFactor { rnd, tid, factor },
            Self::ExtendedTokenSet { field } => Token::ExtendedTokenSet { rnd, tid, field },
        }
    }
}

/// A token the module issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The 20-digit token.
    pub number: TokenNumber,
    /// What it means.
    pub token: Token,
    /// The module that issued it.
    pub security_module: SecurityModuleId,
    /// The check value of the vending key used (none for class 1, which uses no key).
    pub check_value: Option<KeyCheckValue>,
    /// The audit entry that records it.
    pub audit_sequence: u64,
}

/// A key change token set the module issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedKeyChange {
    /// The 2, 3 or 4 tokens.
    pub set: KeyChangeSet,
    /// The module that issued it.
    pub security_module: SecurityModuleId,
    /// The check value of the vending key of the meter's current key.
    pub current_check_value: KeyCheckValue,
    /// The check value of the vending key of the new key.
    pub new_check_value: KeyCheckValue,
    /// The audit entry that records it.
    pub audit_sequence: u64,
}

/// The meter must fit the key: same DKGA and base date.
pub(super) fn check_fit(a: &KeyAttributes, meter: &MeterDescription) -> Result<(), SmError> {
    if a.derivation != meter.derivation {
        return Err(SmError::KeyMismatch(
            "the meter's DKGA differs from the key's",
        ));
    }
    if a.base_date != meter.base_date {
        return Err(SmError::KeyMismatch(
            "the meter's base date differs from the key's",
        ));
    }
    Ok(())
}

fn check_active(a: &KeyAttributes, now: UtcMinute) -> Result<(), SmError> {
    if now < a.activation {
        return Err(SmError::KeyNotYetActive {
            activation: a.activation,
        });
    }
    Ok(())
}

fn check_issuing(a: &KeyAttributes, now: UtcMinute) -> Result<(), SmError> {
    check_active(a, now)?;
    if now >= a.issued_until {
        return Err(SmError::KeyExpiredForIssuing {
            issued_until: a.issued_until,
        });
    }
    Ok(())
}

fn cipher(key: &CachedKey, meter: &MeterDescription) -> Result<TokenCipher, SmError> {
    let dk = key.generator.derive(meter)?;
    TokenCipher::new(meter.algorithm, &dk)
        .map_err(|_| SmError::KeyMismatch("the decoder key does not fit the encryption algorithm"))
}

fn meter_json(meter: &MeterDescription) -> serde_json::Value {
    json!({
        "pan": meter.pan.as_str(),
        "sgc": meter.supply_group.to_string(),
        "ti": meter.tariff_index.to_string(),
        "krn": meter.key_revision.to_string(),
        "kt": meter.key_type.to_string(),
        "base_date": meter.base_date.to_string(),
        "ea": meter.algorithm.to_string(),
        "dkga": meter.derivation.to_string(),
    })
}

async fn last_tid(
    conn: &mut SqliteConnection,
    meter: &MeterDescription,
) -> Result<Option<TokenIdentifier>, SmError> {
    let row = sqlx::query("SELECT last_tid FROM meter_tids WHERE pan = ? AND base_date = ?")
        .bind(meter.pan.as_str())
        .bind(meter.base_date.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.and_then(|r| {
        u32::try_from(r.get::<i64, _>(0))
            .ok()
            .and_then(|v| TokenIdentifier::from_raw(v).ok())
    }))
}

/// Credit under one key: the total issued so far (store and batch) and the batch's part.
#[derive(Clone, Copy)]
struct Credit {
    total: u64,
    added: u64,
}

/// What a batch of tokens changes, written once at its end.
struct Batch {
    audit: Appender,
    tids: HashMap<(String, BaseDate), TokenIdentifier>,
    credits: HashMap<Slot, Credit>,
}

impl Batch {
    async fn credit_issued(
        &mut self,
        conn: &mut SqliteConnection,
        a: &KeyAttributes,
    ) -> Result<Credit, SmError> {
        let slot = super::slot(a);
        if let Some(&c) = self.credits.get(&slot) {
            return Ok(c);
        }
        let issued: i64 = sqlx::query(
            "SELECT credit_issued FROM keys WHERE sgc = ? AND key_type = ? AND krn = ?",
        )
        .bind(i64::from(a.supply_group.get()))
        .bind(a.key_type.abbreviation())
        .bind(a.key_revision.to_string())
        .fetch_one(&mut *conn)
        .await?
        .get(0);
        let c = Credit {
            total: u64::try_from(issued).unwrap_or(0),
            added: 0,
        };
        self.credits.insert(slot, c);
        Ok(c)
    }

    async fn flush(self, conn: &mut SqliteConnection) -> Result<(), SmError> {
        for ((sgc, key_type, krn), c) in &self.credits {
            if c.added == 0 {
                continue;
            }
            sqlx::query(
                "UPDATE keys SET credit_issued = MIN(credit_issued + ?, 9223372036854775807) WHERE sgc = ? AND key_type = ? AND krn = ?",
            )
            .bind(i64::try_from(c.added).unwrap_or(i64::MAX))
            .bind(i64::from(*sgc))
            .bind(key_type.abbreviation())
            .bind(krn.to_string())
            .execute(&mut *conn)
            .await?;
        }
        for ((pan, base_date), tid) in &self.tids {
            sqlx::query(
                "INSERT INTO meter_tids (pan, base_date, last_tid) VALUES (?, ?, ?) \
                 ON CONFLICT (pan, base_date) DO UPDATE SET last_tid = excluded.last_tid",
            )
            .bind(pan.as_str())
            .bind(base_date.to_string())
            .bind(i64::from(tid.get()))
            .execute(&mut *conn)
            .await?;
        }
        self.audit.flush(conn).await?;
        Ok(())
    }
}

impl SecurityModule {
    /// Issues a token for `meter` with the vending key this module holds for the meter's SGC,
    /// key type and KRN, at the module clock's current minute.
    ///
    /// Enforced: the meter fits the key (DKGA, base date); the key is active (ACT) and not past
    /// issued-until (IUT); a VDDK issues no credit; credit stays within the key's cumulative
    /// credit limit; the TID is not past the key expiry number. Tokens for one meter in one
    /// minute get successive TIDs. The token is recorded in the audit log with this module's ID
    /// and the vending key's check value (not the token number).
    ///
    /// # Errors
    /// [`SmError::NoKey`], [`SmError::KeyMismatch`], [`SmError::KeyNotYetActive`],
    /// [`SmError::KeyExpiredForIssuing`], [`SmError::DefaultKeyCredit`],
    /// [`SmError::CreditLimitExceeded`], [`SmError::KeyExpiryNumberPassed`], and engine errors.
    pub async fn issue(
        &self,
        meter: &MeterDescription,
        request: TokenRequest,
    ) -> Result<IssuedToken, SmError> {
        let mut issued = self.issue_many(&[(*meter, request)]).await?;
        issued
            .pop()
            .ok_or(SmError::Store(crate::StoreError::Corrupt(
                "a batch of one issued no token".into(),
            )))
    }

    /// Issues several tokens in one transaction: all of them, or none if one is refused.
    ///
    /// Each token is checked and recorded as by [`SecurityModule::issue`]; the batch's audit
    /// entries, TIDs and credit totals are written together at its end, so this is the fast
    /// path for bulk vending.
    ///
    /// # Errors
    /// The first refusal, as [`SecurityModule::issue`]; nothing is issued then.
    pub async fn issue_many(
        &self,
        requests: &[(MeterDescription, TokenRequest)],
    ) -> Result<Vec<IssuedToken>, SmError> {
        let now_seconds = self.clock.unix_seconds();
        let mut tx = self.pool.begin().await?;
        let mut batch = Batch {
            audit: Appender::begin(&mut tx).await?,
            tids: HashMap::new(),
            credits: HashMap::new(),
        };
        let mut issued = Vec::with_capacity(requests.len());
        for (meter, request) in requests {
            issued.push(
                self.issue_in(&mut tx, &mut batch, now_seconds, meter, *request)
                    .await?,
            );
        }
        batch.flush(&mut tx).await?;
        tx.commit().await?;
        Ok(issued)
    }

    async fn issue_in(
        &self,
        tx: &mut SqliteConnection,
        batch: &mut Batch,
        now_seconds: i64,
        meter: &MeterDescription,
        request: TokenRequest,
    ) -> Result<IssuedToken, SmError> {
        let now = UtcMinute::from_unix_seconds(now_seconds);
        if let TokenRequest::InitiateMeterTest { .. } = request {
            let token = request.token(RandomNumber::default(), TokenIdentifier::from_raw(0)?);
            let number = token.encode(None)?;
            let sequence = batch.audit.push(
                now_seconds,
                &self.actor(),
                "token.issue",
                json!({"sm": self.id.as_str(), "kcv": null, "class": 1, "subclass": token.subclass().get(), "meter": meter_json(meter)}).to_string(),
            );
            return Ok(IssuedToken {
                number,
                token,
                security_module: self.id.clone(),
                check_value: None,
                audit_sequence: sequence,
            });
        }
        let key = self
            .key_for(
                &mut *tx,
                meter.supply_group,
                meter.key_type,
                meter.key_revision,
            )
            .await?;
        let a = &key.attributes;
        check_fit(a, meter)?;
        check_issuing(a, now)?;
        let credit = request.credit_units();
        if credit.is_some() && a.key_type == VendingKeyType::Default {
            return Err(SmError::DefaultKeyCredit);
        }
        let slot = super::slot(a);
        if let Some(requested) = credit {
            let issued = batch.credit_issued(tx, a).await?;
            let limit = a.credit_limit.get();
            if issued
                .total
                .checked_add(requested)
                .is_none_or(|total| total > limit)
            {
                return Err(SmError::CreditLimitExceeded {
                    limit,
                    issued: issued.total,
                    requested,
                });
            }
        }
        let tid_key = (meter.pan.as_str().to_owned(), meter.base_date);
        let last = match batch.tids.get(&tid_key) {
            Some(&tid) => Some(tid),
            None => last_tid(&mut *tx, meter).await?,
        };
        let tid = TokenIdentifier::next_after(now, meter.base_date, last)?;
        if tid.is_expired_under(a.key_expiry) {
            return Err(SmError::KeyExpiryNumberPassed {
                key_expiry: a.key_expiry,
            });
        }
        let rnd = RandomNumber::from_low_bits(random::bytes::<1>()?[0]);
        let token = request.token(rnd, tid);
        let number = token.encode(Some(&cipher(&key, meter)?))?;
        // Every check passed: record the token in the batch.
        if let Some(requested) = credit
            && let Some(c) = batch.credits.get_mut(&slot)
        {
            c.total = c.total.saturating_add(requested);
            c.added = c.added.saturating_add(requested);
        }
        batch.tids.insert(tid_key, tid);
        let sequence = batch.audit.push(
            now_seconds,
            &self.actor(),
            "token.issue",
            json!({
                "sm": self.id.as_str(),
                "kcv": key.check_value.to_hex(),
                "class": token.class().get(),
                "subclass": token.subclass().get(),
                "tid": tid.get(),
                "credit_units": credit,
                "meter": meter_json(meter),
            })
            .to_string(),
        );
        Ok(IssuedToken {
            number,
            token,
            security_module: self.id.clone(),
            check_value: Some(key.check_value),
            audit_sequence: sequence,
        })
    }

    /// Issues the key change set that moves a meter from `current` to `new`: encrypted with
    /// the current decoder key, carrying the new one (derived with the new SGC, KT, KRN, TI
    /// and base date) and the new key's KEN. RO is set when the base date changes; the set
    /// carries the SGC (3 tokens for a 64-bit key) when `include_supply_group` is set or the
    /// SGC changes; a 128-bit key always takes 4 tokens.
    ///
    /// The new key must be active and not past issued-until. The current key must be held and
    /// active, but its issued-until is **not** enforced: moving meters off a key is what a
    /// key past its issuing period is still good for (a project decision).
    ///
    /// # Errors
    /// As [`SecurityModule::issue`], for either key.
    pub async fn issue_key_change(
        &self,
        current: &MeterDescription,
        new: &MeterDescription,
        include_supply_group: bool,
    ) -> Result<IssuedKeyChange, SmError> {
        let now_seconds = self.clock.unix_seconds();
        let now = UtcMinute::from_unix_seconds(now_seconds);
        let mut tx = self.pool.begin().await?;
        let old_key = self
            .key_for(
                &mut tx,
                current.supply_group,
                current.key_type,
                current.key_revision,
            )
            .await?;
        check_fit(&old_key.attributes, current)?;
        check_active(&old_key.attributes, now)?;
        let new_key = self
            .key_for(&mut tx, new.supply_group, new.key_type, new.key_revision)
            .await?;
        check_fit(&new_key.attributes, new)?;
        check_issuing(&new_key.attributes, now)?;
        let change = KeyChange {
            key: new_key.generator.derive(new)?,
            key_type: new.key_type,
            key_revision: new.key_revision,
            tariff_index: new.tariff_index,
            expiry: new_key.attributes.key_expiry,
            supply_group: new.supply_group,
            rollover: new.base_date != current.base_date,
            include_supply_group: include_supply_group || new.supply_group != current.supply_group,
        };
        let set = change.encode(&cipher(&old_key, current)?)?;
        drop(change);
        let sequence = crate::audit::append(
            &mut tx,
            now_seconds,
            &self.actor(),
            "token.key-change",
            &json!({
                "sm": self.id.as_str(),
                "kcv": old_key.check_value.to_hex(),
                "new_kcv": new_key.check_value.to_hex(),
                "tokens": set.len(),
                "meter": meter_json(current),
                "new_meter": meter_json(new),
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(IssuedKeyChange {
            set,
            security_module: self.id.clone(),
            current_check_value: old_key.check_value,
            new_check_value: new_key.check_value,
            audit_sequence: sequence,
        })
    }
}
