//! The meter: decides on every token it is given.

use sts_core::{
    DecodeError, DecoderKey, KeyChangeSection, KeyExpiryNumber, KeyType, MeterDescription,
    Register, SupplyGroupCode, Token, TokenCipher, TokenClass, TokenIdentifier, TokenNumber,
    UtcMinute,
    token::{MeterTestFormat, TokenField, open},
};

use crate::{
    Applied, FormatProblem, KeyAttributes, MeterConfig, MeterSecrets, MeterState, MismatchProblem,
    RangeProblem, Rejection, RestoreError,
    key_change::{CompleteSet, Staging},
    tid_memory::TidVerdict,
};

/// An STS meter (decoder): accepts, applies and rejects tokens as the standard's meter does.
///
/// Every token goes through the same steps, each of which may refuse it (STS.md 8,
/// STS-detail.md 9.2; the order between the checks is synthesised from public firmware):
///
/// 1. **Parse** 20 digits below 2^66 ([`Meter::enter_digits`]) - else Format.
/// 2. **Class** from the two transposed bits. Class 1 goes to step 8. While the keypad is
///    locked every other class is refused with Lockout, without decryption.
/// 3. **Decrypt** with the current decoder key (class 3 is refused here: Function) and check
///    the **CRC** - else CRC, which is also what another meter's token gives.
/// 4. **Class and subclass**: reserved and proprietary subclasses, the extended token set
///    (2/10) - Function. Key change fields out of range (KRN 0, TI above 99) - Range.
/// 5. Key change sections (2/3, 2/4, 2/8, 2/9) are staged until their set is complete (see
///    [`crate::StagedKeyChange`]); they are **not** checked against the KEN or the TID memory
///    (STS.md 5: "KCTs carry no RND and no TID and are never TID-checked").
/// 6. Class 0 at a meter with a DDTK - DDTK. Then **key expiry**: `TID >> 16 > KEN` -
///    KeyExpired. Then the **TID memory**: stored - Used; memory full and older than the oldest
///    - Old.
/// 7. **Range and overflow**, then **apply**, then store the TID (evicting the oldest when the
///    memory is full). A refused token changes nothing.
/// 8. Class 1: CRC, subclass (1/0 and 1/1; 1/2 extended read is not supported: Function),
///    then the manufacturer code must be the meter's own - else MfrCode. Class 1 tokens carry
///    no TID and may be entered any number of times.
///
/// The meter never panics and reads no clock: the caller passes a monotonic seconds counter
/// for the lockout and the key change timeout.
#[derive(Clone, Debug)]
pub struct Meter {
    state: MeterState,
    secrets: MeterSecrets,
    cipher: TokenCipher,
}

impl Meter {
    /// A new meter: no credit, empty TID memory.
    ///
    /// # Errors
    /// As [`Meter::from_parts`].
    pub fn new(
        config: MeterConfig,
        key: KeyAttributes,
        decoder_key: DecoderKey,
    ) -> Result<Self, RestoreError> {
        Self::from_parts(MeterState::new(config, key), MeterSecrets::new(decoder_key))
    }

    /// A meter from a saved state and its secrets.
    ///
    /// # Errors
    /// [`RestoreError`] when they do not fit: a setting out of range, a key whose length does
    /// not fit the algorithm, more TIDs than the memory depth, a balance outside its limits,
    /// staged key change sections that do not fit the key width or the secret key words.
    pub fn from_parts(state: MeterState, secrets: MeterSecrets) -> Result<Self, RestoreError> {
        state.check(&secrets)?;
        let cipher = TokenCipher::new(state.key.algorithm, &secrets.key).map_err(|_| {
            RestoreError::KeyLength {
                algorithm: state.key.algorithm,
                found: secrets.key.expose_secret().len(),
            }
        })?;
        Ok(Self {
            state,
            secrets,
            cipher,
        })
    }

    /// The state and the secrets, to save.
    #[must_use]
    pub fn into_parts(self) -> (MeterState, MeterSecrets) {
        (self.state, self.secrets)
    }

    /// The public state.
    #[must_use]
    pub const fn state(&self) -> &MeterState {
        &self.state
    }

    /// The secrets.
    ///
    /// # Security
    /// Holds the decoder key: see [`MeterSecrets`].
    #[must_use]
    pub const fn secrets(&self) -> &MeterSecrets {
        &self.secrets
    }

    /// The key derivation inputs of the meter's current key, for a vending system.
    #[must_use]
    pub const fn description(&self) -> MeterDescription {
        self.state.key.description(self.state.config.pan)
    }

    /// The minute a TID stands for under the meter's base date.
    #[must_use]
    pub const fn issue_time(&self, tid: TokenIdentifier) -> UtcMinute {
        tid.to_time(self.state.key.base_date)
    }

    /// The meter detected tampering: sets the flag a clear tamper token (2/5) clears.
    pub const fn report_tamper(&mut self) {
        self.state.management.tamper = true;
    }

    /// A power cycle: ends a keypad lock and its count, as the one vendor on record does
    /// (STS-detail.md 9.5). Staged key change sections are kept.
    pub const fn power_cycle(&mut self) {
        self.state.lockout = crate::LockoutState::UNLOCKED;
    }

    /// Decides on a token typed as text (spaces and dashes between digits are allowed).
    ///
    /// # Errors
    /// [`Rejection::Format`] when the text is not 20 digits below 2^66 (counted toward the
    /// lockout; refused with Lockout while the keypad is locked); otherwise as
    /// [`Meter::enter`].
    pub fn enter_digits(&mut self, digits: &str, now_seconds: u64) -> Result<Applied, Rejection> {
        match digits.parse::<TokenNumber>() {
            Ok(number) => self.enter(number, now_seconds),
            Err(e) => {
                if let Some(remaining_seconds) = self.state.lockout.remaining(now_seconds) {
                    return Err(Rejection::Lockout { remaining_seconds });
                }
                self.state
                    .lockout
                    .record_invalid(now_seconds, &self.state.config.lockout);
                Err(Rejection::Format(FormatProblem::Digits(e)))
            }
        }
    }

    /// Decides on a token: applies it and says what changed, or says why it was refused.
    ///
    /// `now_seconds` is a monotonic seconds counter (for the keypad lockout and the key change
    /// timeout). An accepted class 0 or 2 token (a staged key change section included) resets
    /// the lockout count; class 1 tokens do not, since anyone can make them.
    ///
    /// # Errors
    /// The [`Rejection`], with its display code.
    pub fn enter(&mut self, number: TokenNumber, now_seconds: u64) -> Result<Applied, Rejection> {
        let result = if number.class() == TokenClass::INITIATE_METER_TEST {
            self.meter_test(number)
        } else {
            if let Some(remaining_seconds) = self.state.lockout.remaining(now_seconds) {
                return Err(Rejection::Lockout { remaining_seconds });
            }
            let result = self.meter_specific(number, now_seconds);
            if result.is_ok() {
                self.state.lockout.reset();
            }
            result
        };
        if let Err(rejection) = &result
            && rejection.counts_toward_lockout()
        {
            self.state
                .lockout
                .record_invalid(now_seconds, &self.state.config.lockout);
        }
        result
    }

    /// Class 1: not encrypted, not meter specific; the manufacturer code must be the meter's.
    fn meter_test(&self, number: TokenNumber) -> Result<Applied, Rejection> {
        let class = TokenClass::INITIATE_METER_TEST;
        let block = open(number, None).map_err(|e| Rejection::from_decode(e, class))?;
        if !block.crc_is_valid() {
            return Err(Rejection::Crc { class });
        }
        let token =
            Token::from_block(&block, false).map_err(|e| Rejection::from_decode(e, class))?;
        match token {
            Token::InitiateMeterTest {
                format: MeterTestFormat::ExtendedRead,
                ..
            } if !self.state.config.extended_tokens => Err(Rejection::Function {
                class,
                subclass: Some(block.subclass()),
            }),
            Token::InitiateMeterTest {
                format,
                control,
                manufacturer,
            } => {
                let expected = self.state.config.manufacturer;
                if manufacturer == expected.get() {
                    Ok(Applied::MeterTest { format, control })
                } else {
                    Err(Rejection::MfrCode {
                        expected,
                        found: manufacturer,
                    })
                }
            }
            _ => Err(Rejection::Function {
                class,
                subclass: Some(block.subclass()),
            }),
        }
    }

    /// Classes 0, 2 and 3: decrypt, CRC, subclass, then key change or TID-checked token.
    fn meter_specific(
        &mut self,
        number: TokenNumber,
        now_seconds: u64,
    ) -> Result<Applied, Rejection> {
        let class = number.class();
        let block =
            open(number, Some(&self.cipher)).map_err(|e| Rejection::from_decode(e, class))?;
        if !block.crc_is_valid() {
            return Err(Rejection::Crc { class });
        }
        let token = Token::from_block(&block, self.state.key.is_wide()).map_err(|e| match e {
            // Core reports a 2/8 SGC section with stray low bits as a field error: a format one.
            DecodeError::Field(TokenField::SupplyGroup) if block.data() & 0xF_FFFF != 0 => {
                Rejection::Format(FormatProblem::SupplyGroupPadding)
            }
            e => Rejection::from_decode(e, class),
        })?;
        match token {
            Token::KeyChange(section) => self.key_change(section, now_seconds),
            Token::ExtendedTokenSet { .. } if !self.state.config.extended_tokens => {
                Err(Rejection::Function {
                    class,
                    subclass: Some(block.subclass()),
                })
            }
            token => self.tid_token(token),
        }
    }

    /// Credit and management tokens: DDTK, key expiry, TID memory, then apply.
    fn tid_token(&mut self, token: Token) -> Result<Applied, Rejection> {
        let class = token.class();
        let Some(tid) = token.tid() else {
            return Err(Rejection::Function {
                class,
                subclass: Some(token.subclass()),
            });
        };
        if class == TokenClass::TRANSFER_CREDIT {
            match self.state.key.key_type {
                KeyType::Default => return Err(Rejection::Ddtk),
                KeyType::Initialization => return Err(Rejection::DitkCredit),
                KeyType::Unique | KeyType::Common => {}
            }
        }
        let expiry = self.state.key.expiry;
        if tid.is_expired_under(expiry) {
            return Err(Rejection::KeyExpired { tid, expiry });
        }
        let depth = usize::from(self.state.config.tid_memory_depth);
        self.state
            .tids
            .check(tid, depth)
            .map_err(|verdict| match verdict {
                TidVerdict::Used => Rejection::Used { tid },
                TidVerdict::Old { oldest } => Rejection::Old { tid, oldest },
            })?;
        let applied = self.apply(token, tid)?;
        self.state.tids.insert(tid, depth);
        Ok(applied)
    }

    /// Range and overflow checks, then the change. Nothing changes when it fails.
    fn apply(&mut self, token: Token, tid: TokenIdentifier) -> Result<Applied, Rejection> {
        let config = self.state.config;
        let management = &mut self.state.management;
        match token {
            Token::TransferCredit {
                service, amount, ..
            } => {
                let added = u64::from(amount.value());
                let balance = self.state.registers.units.get_mut(service);
                let new_balance = balance
                    .checked_add(added)
                    .filter(|&b| b <= config.unit_maximum)
                    .ok_or(Rejection::Overflow {
                        register: Register::units(service),
                    })?;
                *balance = new_balance;
                Ok(Applied::Credit {
                    service,
                    tid,
                    added,
                    new_balance,
                })
            }
            Token::CurrencyCredit {
                service, amount, ..
            } => {
                let added = amount.units();
                let register = Register::currency(service);
                let balance = self.state.registers.currency.get_mut(service);
                let new_balance = match balance.checked_add(added) {
                    Some(b) if b > config.currency_maximum => {
                        return Err(Rejection::Overflow { register });
                    }
                    Some(b) if b < config.currency_minimum => {
                        return Err(Rejection::Range(RangeProblem::BelowMinimum(register)));
                    }
                    Some(b) => b,
                    None if added > 0 => return Err(Rejection::Overflow { register }),
                    None => return Err(Rejection::Range(RangeProblem::BelowMinimum(register))),
                };
                *balance = new_balance;
                Ok(Applied::CurrencyCredit {
                    service,
                    tid,
                    added,
                    new_balance,
                })
            }
            Token::SetMaximumPowerLimit { limit, .. } => {
                let watts = limit.value();
                management.maximum_power_limit = Some(watts);
                Ok(Applied::MaximumPowerLimit { tid, watts })
            }
            Token::SetMaximumPhasePowerUnbalanceLimit { limit, .. } => {
                let watts = limit.value();
                management.phase_unbalance_limit = Some(watts);
                Ok(Applied::PhaseUnbalanceLimit { tid, watts })
            }
            Token::ClearCredit { register, .. } => {
                if self.state.registers.clear(register) {
                    Ok(Applied::CreditCleared { tid, register })
                } else {
                    Err(Rejection::Range(RangeProblem::Register(register)))
                }
            }
            Token::SetTariffRate { rate, .. } => {
                management.tariff_rate = Some(rate);
                Ok(Applied::TariffRate { tid, raw: rate })
            }
            Token::SetWaterMeterFactor { factor, .. } => {
                management.water_meter_factor = Some(factor);
                Ok(Applied::WaterMeterFactor { tid, raw: factor })
            }
            Token::ExtendedTokenSet { field, .. } => {
                management.extended_set = Some(field);
                Ok(Applied::ExtendedSet { tid, raw: field })
            }
            Token::ClearTamperCondition { pad, .. } => {
                if pad != 0 {
                    return Err(Rejection::Format(FormatProblem::Pad));
                }
                let was_tampered = management.tamper;
                management.tamper = false;
                Ok(Applied::TamperCleared { tid, was_tampered })
            }
            other => Err(Rejection::Function {
                class: other.class(),
                subclass: Some(other.subclass()),
            }),
        }
    }

    /// Key type rule: a change to a DITK only from a DITK (STS.md 8; the full table is not
    /// public).
    const fn check_key_type(&self, requested: KeyType) -> Result<(), Rejection> {
        let current = self.state.key.key_type;
        if matches!(requested, KeyType::Initialization)
            && !matches!(current, KeyType::Initialization)
        {
            return Err(Rejection::KeyType { current, requested });
        }
        Ok(())
    }

    /// Stages a key change section; applies the set when it is complete.
    fn key_change(
        &mut self,
        section: KeyChangeSection,
        now_seconds: u64,
    ) -> Result<Applied, Rejection> {
        let wide = self.state.key.is_wide();
        let subclass = section.subclass();
        match section {
            KeyChangeSection::Fourth { .. } if !wide => {
                return Err(Rejection::Function {
                    class: TokenClass::MANAGEMENT,
                    subclass: Some(subclass),
                });
            }
            KeyChangeSection::First {
                three_sections: true,
                ..
            } if wide => {
                self.state.key_change.clear(&mut self.secrets.words);
                return Err(Rejection::KeyChangeMismatch(
                    MismatchProblem::ThreeSectionsOnWideKey,
                ));
            }
            KeyChangeSection::First {
                key_type, rollover, ..
            } => {
                self.check_key_type(key_type)?;
                if rollover && self.state.key.base_date.next().is_none() {
                    return Err(Rejection::Range(RangeProblem::NoLaterBaseDate));
                }
            }
            _ => {}
        }
        let timeout = self.state.config.key_change_timeout;
        match self.state.key_change.stage(
            &mut self.secrets.words,
            section,
            wide,
            now_seconds,
            timeout,
        ) {
            Staging::Partial { have, need } => Ok(Applied::KeyChangeStaged {
                section: subclass,
                have,
                need,
            }),
            Staging::Mismatch(problem) => Err(Rejection::KeyChangeMismatch(problem)),
            Staging::Complete(set) => {
                let result = self.apply_key_change(set);
                self.state.key_change.clear(&mut self.secrets.words);
                result
            }
        }
    }

    /// Installs a complete set: key, KT, KRN, TI, KEN, SGC when carried; RO moves the base
    /// date on and clears the TID memory (STS.md 5 and 8, STS-detail.md 3.2 and 9.3).
    fn apply_key_change(&mut self, set: CompleteSet) -> Result<Applied, Rejection> {
        let CompleteSet {
            key,
            first,
            second,
            supply_group,
        } = set;
        self.check_key_type(first.key_type)?;
        let rollover = if first.rollover {
            Some(
                self.state
                    .key
                    .base_date
                    .next()
                    .ok_or(Rejection::Range(RangeProblem::NoLaterBaseDate))?,
            )
        } else {
            None
        };
        let supply_group = supply_group
            .map(|raw| {
                SupplyGroupCode::try_from(raw)
                    .map_err(|_| Rejection::Range(RangeProblem::SupplyGroup))
            })
            .transpose()?;
        let cipher = TokenCipher::new(self.state.key.algorithm, &key)
            .map_err(|_| Rejection::KeyChangeMismatch(MismatchProblem::Incomplete))?;
        let sections = if self.state.key.is_wide() {
            4
        } else {
            2 + u8::from(first.three_sections)
        };
        let attributes = &mut self.state.key;
        attributes.key_type = first.key_type;
        attributes.key_revision = first.key_revision;
        attributes.tariff_index = second.tariff_index;
        attributes.expiry = KeyExpiryNumber::from_nibbles(first.expiry_high, second.expiry_low);
        if let Some(sgc) = supply_group {
            attributes.supply_group = sgc;
        }
        if let Some(base_date) = rollover {
            attributes.base_date = base_date;
            self.state.tids.clear();
        }
        self.secrets.key = key;
        self.cipher = cipher;
        Ok(Applied::KeyChanged {
            key_type: first.key_type,
            key_revision: first.key_revision,
            tariff_index: second.tariff_index,
            expiry: self.state.key.expiry,
            supply_group,
            rollover,
            sections,
        })
    }
}

#[cfg(test)]
mod tests {
    use sts_core::{
        BaseDate, EncryptionAlgorithm, KeyDerivationAlgorithm, KeyRevisionNumber, RandomNumber,
        Service, SupplyGroupCode, TariffIndex, TransferAmount,
    };

    use super::*;
    use crate::Status;

    fn meter(key_type: KeyType, expiry: u8) -> Meter {
        let attributes = KeyAttributes {
            key_type,
            key_revision: KeyRevisionNumber::try_from(1).unwrap(),
            tariff_index: TariffIndex::try_from(1).unwrap(),
            supply_group: SupplyGroupCode::try_from(123_456).unwrap(),
            expiry: KeyExpiryNumber::from(expiry),
            base_date: BaseDate::Y1993,
            algorithm: EncryptionAlgorithm::Sta,
            derivation: KeyDerivationAlgorithm::Dkga02,
        };
        let mut config = MeterConfig::new("600727000000000009".parse().unwrap());
        config.tid_memory_depth = 2;
        Meter::new(
            config,
            attributes,
            DecoderKey::from_hex("E653341F9D5BF36F").unwrap(),
        )
        .unwrap()
    }

    fn token(meter: &Meter, token: Token) -> TokenNumber {
        token.encode(Some(&meter.cipher)).unwrap()
    }

    fn tid(raw: u32) -> TokenIdentifier {
        TokenIdentifier::from_raw(raw).unwrap()
    }

    fn credit(meter: &Meter, raw: u32) -> TokenNumber {
        token(
            meter,
            Token::TransferCredit {
                service: Service::Electricity,
                rnd: RandomNumber::from_low_bits(1),
                tid: tid(raw),
                amount: TransferAmount::from_field(1),
            },
        )
    }

    fn clear(meter: &Meter, raw: u32, register: u16) -> TokenNumber {
        token(
            meter,
            Token::ClearCredit {
                rnd: RandomNumber::from_low_bits(1),
                tid: tid(raw),
                register: Register(register),
            },
        )
    }

    #[test]
    fn subclass_before_ddtk_before_expiry_before_tid_before_range() {
        // Function (2/10) comes before the key expiry check.
        let mut m = meter(KeyType::Default, 0);
        let extended = token(
            &m,
            Token::ExtendedTokenSet {
                rnd: RandomNumber::from_low_bits(1),
                tid: tid(5 << 16),
                field: 0,
            },
        );
        assert_eq!(m.enter(extended, 0).unwrap_err().status(), Status::Function);
        // DDTK comes before the key expiry check.
        assert_eq!(m.enter(credit(&m, 5 << 16), 0), Err(Rejection::Ddtk));
        // Key expiry comes before the TID memory.
        let mut m = meter(KeyType::Unique, 255);
        m.enter(credit(&m, 5 << 16), 0).unwrap();
        let (mut state, secrets) = m.into_parts();
        state.key.expiry = KeyExpiryNumber::from(4);
        let mut m = Meter::from_parts(state, secrets).unwrap();
        assert!(matches!(
            m.enter(credit(&m, 5 << 16), 0),
            Err(Rejection::KeyExpired { .. })
        ));
        // The TID memory comes before the range check.
        m.enter(clear(&m, 10, 0), 0).unwrap();
        m.enter(clear(&m, 11, 0), 0).unwrap();
        assert!(matches!(
            m.enter(clear(&m, 9, 99), 0),
            Err(Rejection::Old { .. })
        ));
        assert!(matches!(
            m.enter(clear(&m, 11, 99), 0),
            Err(Rejection::Used { .. })
        ));
        assert!(matches!(
            m.enter(clear(&m, 12, 99), 0),
            Err(Rejection::Range(_))
        ));
    }

    #[test]
    fn crc_comes_before_the_subclass() {
        // A reserved subclass under another key is a CRC error, not a Function error.
        let mut m = meter(KeyType::Unique, 255);
        let other = TokenCipher::new(
            EncryptionAlgorithm::Sta,
            &DecoderKey::from_hex("0000000000000001").unwrap(),
        )
        .unwrap();
        let block = sts_core::DataBlock::new(
            TokenClass::TRANSFER_CREDIT,
            sts_core::TokenSubclass::from_bits(9),
            0,
        );
        let number = sts_core::token::seal(block, Some(&other)).unwrap();
        assert_eq!(m.enter(number, 0).unwrap_err().status(), Status::Crc);
    }

    #[test]
    fn description_and_parts() {
        let m = meter(KeyType::Unique, 255);
        assert_eq!(m.description().supply_group.get(), 123_456);
        assert_eq!(m.issue_time(tid(5_871_715)).to_string(), "2004-03-01 13:55");
        let text = format!("{m:?}");
        assert!(!text.contains("E653") && !text.contains("e653"), "{text}");
        let (state, secrets) = m.into_parts();
        assert!(Meter::from_parts(state, secrets).is_ok());
    }
}
