//! Tokens: the typed meaning, the 64-bit data block, and the 20-digit number (STS.md 2, 5).
//!
//! Encoding: [`Token::to_block`] lays out the fields and computes the CRC; [`seal`] encrypts
//! the block (classes 0 and 2) and inserts the class. [`decode`] reverses both and checks the
//! CRC, class, subclass and every field.

mod block;
mod class;
mod key_change;
mod number;

pub use block::DataBlock;
pub use class::{TokenClass, TokenSubclass};
pub use key_change::{KeyChange, KeyChangeSection, KeyChangeSet, KeyChangeToken};
pub use number::{Grouped, TokenNumber, TokenNumberError};

use core::fmt;

use crate::{
    CurrencyAmount, EncryptionAlgorithm, KeyRevisionNumber, KeyType, SupplyGroupCode, TariffIndex,
    TokenCipher, TokenIdentifier, TransferAmount,
};

/// The service a credit token is for; its subclass (0-3 units, 4-7 currency).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    /// Electricity: 0.1 kWh per unit of the transfer amount.
    Electricity,
    /// Water: 0.1 m3 (kL) per unit (STS-detail.md 4.1; STS.md marks the unit unsettled).
    Water,
    /// Gas: 0.1 m3 per unit (unsettled, as for water).
    Gas,
    /// Connection time: 0.1 minute per unit (unsettled, as for water).
    Time,
}

impl Service {
    /// Every service, in subclass order.
    pub const ALL: [Self; 4] = [Self::Electricity, Self::Water, Self::Gas, Self::Time];

    /// The service's offset within its subclass group (0-3).
    #[must_use]
    pub const fn index(self) -> u8 {
        self as u8
    }

    const fn from_index(index: u8) -> Self {
        match index & 3 {
            0 => Self::Electricity,
            1 => Self::Water,
            2 => Self::Gas,
            _ => Self::Time,
        }
    }

    /// The name, lower case.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Electricity => "electricity",
            Self::Water => "water",
            Self::Gas => "gas",
            Self::Time => "time",
        }
    }

    /// The unit of one tenth of the transfer amount's unit count.
    #[must_use]
    pub const fn unit(self) -> &'static str {
        match self {
            Self::Electricity => "kWh",
            Self::Water => "kL",
            Self::Gas => "m3",
            Self::Time => "min",
        }
    }
}

/// The random nibble (RND) that makes otherwise equal tokens differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct RandomNumber(u8);

impl RandomNumber {
    /// The nibble from the low four bits of a byte.
    #[must_use]
    pub const fn from_low_bits(byte: u8) -> Self {
        Self(byte & 0xF)
    }

    /// The nibble.
    #[must_use]
    pub const fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for RandomNumber {
    type Error = EncodeError;
    fn try_from(value: u8) -> Result<Self, Self::Error> {
        if value < 16 {
            Ok(Self(value))
        } else {
            Err(EncodeError::Field(TokenField::RandomNumber))
        }
    }
}

/// The register a clear credit token (2/1) clears: an open code, since most values are
/// reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Register(pub u16);

impl Register {
    /// Every register.
    pub const ALL: Self = Self(0xFFFF);

    /// The unit register of a service (0-3).
    #[must_use]
    pub const fn units(service: Service) -> Self {
        Self(service.index() as u16)
    }

    /// The currency register of a service (4-7).
    #[must_use]
    pub const fn currency(service: Service) -> Self {
        Self(4 + service.index() as u16)
    }

    /// True for the codes the standard defines: 0-7 and 65535.
    #[must_use]
    pub const fn is_defined(self) -> bool {
        self.0 <= 7 || self.0 == 0xFFFF
    }
}

/// Class 1 subclass: how the control field and manufacturer code are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MeterTestFormat {
    /// 1/0: 36-bit control, 8-bit manufacturer code (2-digit codes).
    Short,
    /// 1/1: 28-bit control, 16-bit manufacturer code (4-digit codes).
    Long,
    /// 1/2: extended token read (STS202-5), laid out like 1/0 (one source; STS.md marks it
    /// unsettled).
    ExtendedRead,
}

impl MeterTestFormat {
    const fn control_bits(self) -> u32 {
        match self {
            Self::Short | Self::ExtendedRead => 36,
            Self::Long => 28,
        }
    }

    const fn manufacturer_bits(self) -> u32 {
        44 - self.control_bits()
    }

    const fn subclass(self) -> u8 {
        match self {
            Self::Short => 0,
            Self::Long => 1,
            Self::ExtendedRead => 2,
        }
    }
}

/// The meaning of a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Token {
    /// 0/0-0/3: credit in tenths of the service's unit.
    TransferCredit {
        /// Which service.
        service: Service,
        /// RND.
        rnd: RandomNumber,
        /// TID.
        tid: TokenIdentifier,
        /// Amount in tenths of a unit.
        amount: TransferAmount,
    },
    /// 0/4-0/7: currency credit (or debit) in 10^-5 currency units; no RND.
    CurrencyCredit {
        /// Which service.
        service: Service,
        /// TID.
        tid: TokenIdentifier,
        /// Signed amount.
        amount: CurrencyAmount,
    },
    /// 1/0-1/2: initiate a meter test or display; not encrypted, not meter specific.
    InitiateMeterTest {
        /// Layout.
        format: MeterTestFormat,
        /// Control bits: which tests or displays (bit 0 load switch, 1 display, 2 total
        /// energy, 3 KRN, 4 TI ...); all ones tests everything.
        control: u64,
        /// The manufacturer code; a meter acts only on its own.
        manufacturer: u16,
    },
    /// 2/0: set the maximum power limit in watts.
    SetMaximumPowerLimit {
        /// RND.
        rnd: RandomNumber,
        /// TID.
        tid: TokenIdentifier,
        /// Limit in watts.
        limit: TransferAmount,
    },
    /// 2/1: clear a credit register.
    ClearCredit {
        /// RND.
        rnd: RandomNumber,
        /// TID.
        tid: TokenIdentifier,
        /// Register.
        register: Register,
    },
    /// 2/2: set tariff rate; content reserved by the STS Association.
    SetTariffRate {
        /// RND.
        rnd: RandomNumber,
        /// TID.
        tid: TokenIdentifier,
        /// Rate field.
        rate: u16,
    },
    /// 2/3, 2/4, 2/8, 2/9: a section of a key change set.
    KeyChange(KeyChangeSection),
    /// 2/5: clear the tamper condition.
    ClearTamperCondition {
        /// RND.
        rnd: RandomNumber,
        /// TID.
        tid: TokenIdentifier,
        /// Pad, zero when issued.
        pad: u16,
    },
    /// 2/6: set the maximum phase power unbalance limit in watts.
    SetMaximumPhasePowerUnbalanceLimit {
        /// RND.
        rnd: RandomNumber,
        /// TID.
        tid: TokenIdentifier,
        /// Limit in watts.
        limit: TransferAmount,
    },
    /// 2/7: set the water meter factor; content reserved by the STS Association.
    SetWaterMeterFactor {
        /// RND.
        rnd: RandomNumber,
        /// TID.
        tid: TokenIdentifier,
        /// Factor field.
        factor: u16,
    },
    /// 2/10: extended token set (STS202-5): `index(6)` then index-specific bits.
    ExtendedTokenSet {
        /// RND.
        rnd: RandomNumber,
        /// TID.
        tid: TokenIdentifier,
        /// The 16-bit field.
        field: u16,
    },
}

/// A token field whose value is out of range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenField {
    /// RND above 15.
    RandomNumber,
    /// Class 1 control bits wider than the format allows.
    Control,
    /// Manufacturer code wider than the format allows.
    Manufacturer,
    /// Key revision number outside 1-9.
    KeyRevision,
    /// Tariff index above 99.
    TariffIndex,
    /// Supply group code above 999999, or a 3rd section with non-zero padding.
    SupplyGroup,
}

impl fmt::Display for TokenField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::RandomNumber => "random number (0-15)",
            Self::Control => "control field",
            Self::Manufacturer => "manufacturer code",
            Self::KeyRevision => "key revision number (1-9)",
            Self::TariffIndex => "tariff index (0-99)",
            Self::SupplyGroup => "supply group code",
        })
    }
}

/// A token that cannot be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// A field does not fit its bits.
    Field(TokenField),
    /// Classes 0 and 2 are encrypted: a decoder key is needed.
    KeyRequired,
    /// A key change's new key is not as wide as the meter's current key. A meter's encryption
    /// algorithm is fixed, so its new key has the same width (64 bits for EA07 and EA09, 128
    /// for EA11); the 2/8 section's layout depends on it (STS.md section 5).
    KeyWidth,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Field(field) => write!(f, "{field} out of range"),
            Self::KeyRequired => f.write_str("this token is encrypted: a decoder key is needed"),
            Self::KeyWidth => f.write_str(
                "the new key must be as wide as the current one (64 bits for EA07/EA09, 128 for EA11)",
            ),
        }
    }
}

impl core::error::Error for EncodeError {}

/// A token number that does not decode to a valid token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// Classes 0 and 2 are encrypted: a decoder key is needed.
    KeyRequired,
    /// The CRC does not match: a mistyped token or another meter's (wrong key).
    Crc,
    /// Class 3 is reserved.
    ReservedClass,
    /// The subclass is reserved for this class (0/8-15, 1/3-5, 2/12-15 reserved or undefined).
    ReservedSubclass {
        /// Class.
        class: TokenClass,
        /// Subclass.
        subclass: TokenSubclass,
    },
    /// The subclass is for proprietary use (1/6-15, 2/11-15): no standard meaning.
    ProprietarySubclass {
        /// Class.
        class: TokenClass,
        /// Subclass.
        subclass: TokenSubclass,
    },
    /// A field's value is out of range.
    Field(TokenField),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::KeyRequired => f.write_str("this token is encrypted: a decoder key is needed"),
            Self::Crc => f.write_str(
                "CRC mismatch: the token was mistyped or is for another meter (wrong key)",
            ),
            Self::ReservedClass => f.write_str("token class 3 is reserved"),
            Self::ReservedSubclass { class, subclass } => {
                write!(f, "token class {class} subclass {subclass} is reserved")
            }
            Self::ProprietarySubclass { class, subclass } => {
                write!(
                    f,
                    "token class {class} subclass {subclass} is for proprietary use"
                )
            }
            Self::Field(field) => write!(f, "{field} out of range"),
        }
    }
}

impl core::error::Error for DecodeError {}

/// `rnd(4) | tid(24) | value(16)`, the layout of credit and most management tokens.
const fn rnd_tid_value(rnd: RandomNumber, tid: TokenIdentifier, value: u16) -> u64 {
    ((rnd.get() as u64) << 40) | ((tid.get() as u64) << 16) | value as u64
}

impl Token {
    /// The class.
    #[must_use]
    pub const fn class(&self) -> TokenClass {
        match self {
            Self::TransferCredit { .. } | Self::CurrencyCredit { .. } => {
                TokenClass::TRANSFER_CREDIT
            }
            Self::InitiateMeterTest { .. } => TokenClass::INITIATE_METER_TEST,
            _ => TokenClass::MANAGEMENT,
        }
    }

    /// The subclass.
    #[must_use]
    pub const fn subclass(&self) -> TokenSubclass {
        TokenSubclass::from_bits(match self {
            Self::TransferCredit { service, .. } => service.index(),
            Self::CurrencyCredit { service, .. } => 4 + service.index(),
            Self::InitiateMeterTest { format, .. } => format.subclass(),
            Self::SetMaximumPowerLimit { .. } => 0,
            Self::ClearCredit { .. } => 1,
            Self::SetTariffRate { .. } => 2,
            Self::KeyChange(section) => section.subclass().get(),
            Self::ClearTamperCondition { .. } => 5,
            Self::SetMaximumPhasePowerUnbalanceLimit { .. } => 6,
            Self::SetWaterMeterFactor { .. } => 7,
            Self::ExtendedTokenSet { .. } => 10,
        })
    }

    /// The TID, for tokens that carry one (all but class 1 and key change tokens).
    #[must_use]
    pub const fn tid(&self) -> Option<TokenIdentifier> {
        match *self {
            Self::TransferCredit { tid, .. }
            | Self::CurrencyCredit { tid, .. }
            | Self::SetMaximumPowerLimit { tid, .. }
            | Self::ClearCredit { tid, .. }
            | Self::SetTariffRate { tid, .. }
            | Self::ClearTamperCondition { tid, .. }
            | Self::SetMaximumPhasePowerUnbalanceLimit { tid, .. }
            | Self::SetWaterMeterFactor { tid, .. }
            | Self::ExtendedTokenSet { tid, .. } => Some(tid),
            Self::InitiateMeterTest { .. } | Self::KeyChange(_) => None,
        }
    }

    /// The 44 data bits.
    ///
    /// # Errors
    /// [`EncodeError::Field`] when a class 1 field is wider than its format.
    pub const fn data(&self) -> Result<u64, EncodeError> {
        Ok(match *self {
            Self::TransferCredit {
                rnd, tid, amount, ..
            } => rnd_tid_value(rnd, tid, amount.field()),
            Self::CurrencyCredit { tid, amount, .. } => {
                let field = amount.field() as u64;
                ((field >> 16) << 40) | ((tid.get() as u64) << 16) | (field & 0xFFFF)
            }
            Self::InitiateMeterTest {
                format,
                control,
                manufacturer,
            } => {
                let mfr_bits = format.manufacturer_bits();
                if control >> format.control_bits() != 0 {
                    return Err(EncodeError::Field(TokenField::Control));
                }
                if (manufacturer as u64) >> mfr_bits != 0 {
                    return Err(EncodeError::Field(TokenField::Manufacturer));
                }
                (control << mfr_bits) | manufacturer as u64
            }
            Self::SetMaximumPowerLimit { rnd, tid, limit }
            | Self::SetMaximumPhasePowerUnbalanceLimit { rnd, tid, limit } => {
                rnd_tid_value(rnd, tid, limit.field())
            }
            Self::ClearCredit { rnd, tid, register } => rnd_tid_value(rnd, tid, register.0),
            Self::SetTariffRate {
                rnd,
                tid,
                rate: value,
            }
            | Self::ClearTamperCondition {
                rnd,
                tid,
                pad: value,
            }
            | Self::SetWaterMeterFactor {
                rnd,
                tid,
                factor: value,
            }
            | Self::ExtendedTokenSet {
                rnd,
                tid,
                field: value,
            } => rnd_tid_value(rnd, tid, value),
            Self::KeyChange(section) => section.data(),
        })
    }

    /// The plain data block, CRC included.
    ///
    /// # Errors
    /// As [`Token::data`].
    pub const fn to_block(&self) -> Result<DataBlock, EncodeError> {
        match self.data() {
            Ok(data) => Ok(DataBlock::new(self.class(), self.subclass(), data)),
            Err(e) => Err(e),
        }
    }

    /// The token number: encrypted with `cipher` for classes 0 and 2.
    ///
    /// # Errors
    /// A field out of range, or no cipher for an encrypted class.
    pub fn encode(&self, cipher: Option<&TokenCipher>) -> Result<TokenNumber, EncodeError> {
        seal(self.to_block()?, cipher)
    }

    /// Reads the meaning of a plain data block whose CRC has been checked. `key_width_128`
    /// selects the 2/8 layout: the SGC section of a 64-bit set or the third section of a
    /// 128-bit set.
    ///
    /// # Errors
    /// Reserved class or subclass, or a field out of range.
    pub fn from_block(block: &DataBlock, key_width_128: bool) -> Result<Self, DecodeError> {
        let class = block.class();
        let subclass = block.subclass();
        let data = block.data();
        let rnd = RandomNumber::from_low_bits((data >> 40) as u8);
        let tid = TokenIdentifier::from_bits(data >> 16);
        let value = data as u16;
        let reserved = DecodeError::ReservedSubclass { class, subclass };
        let proprietary = DecodeError::ProprietarySubclass { class, subclass };
        Ok(match (class.get(), subclass.get()) {
            (0, s @ 0..=3) => Self::TransferCredit {
                service: Service::from_index(s),
                rnd,
                tid,
                amount: TransferAmount::from_field(value),
            },
            (0, s @ 4..=7) => Self::CurrencyCredit {
                service: Service::from_index(s - 4),
                tid,
                amount: CurrencyAmount::from_field((((data >> 40) as u32) << 16) | value as u32),
            },
            (0, _) => return Err(reserved),
            (1, s @ 0..=2) => {
                let format = match s {
                    0 => MeterTestFormat::Short,
                    1 => MeterTestFormat::Long,
                    _ => MeterTestFormat::ExtendedRead,
                };
                let mfr_bits = format.manufacturer_bits();
                Self::InitiateMeterTest {
                    format,
                    control: data >> mfr_bits,
                    manufacturer: (data & ((1 << mfr_bits) - 1)) as u16,
                }
            }
            (1, 3..=5) => return Err(reserved),
            (1, _) => return Err(proprietary),
            (2, 0) => Self::SetMaximumPowerLimit {
                rnd,
                tid,
                limit: TransferAmount::from_field(value),
            },
            (2, 1) => Self::ClearCredit {
                rnd,
                tid,
                register: Register(value),
            },
            (2, 2) => Self::SetTariffRate {
                rnd,
                tid,
                rate: value,
            },
            (2, 3) => Self::KeyChange(KeyChangeSection::First {
                expiry_high: (data >> 40) as u8 & 0xF,
                key_revision: KeyRevisionNumber::try_from((data >> 36) as u8 & 0xF)
                    .map_err(|_| DecodeError::Field(TokenField::KeyRevision))?,
                rollover: (data >> 35) & 1 == 1,
                three_sections: (data >> 34) & 1 == 1,
                key_type: KeyType::from_bits((data >> 32) as u8),
                key_word: data as u32,
            }),
            (2, 4) => Self::KeyChange(KeyChangeSection::Second {
                expiry_low: (data >> 40) as u8 & 0xF,
                tariff_index: TariffIndex::try_from((data >> 32) as u8)
                    .map_err(|_| DecodeError::Field(TokenField::TariffIndex))?,
                key_word: data as u32,
            }),
            (2, 5) => Self::ClearTamperCondition {
                rnd,
                tid,
                pad: value,
            },
            (2, 6) => Self::SetMaximumPhasePowerUnbalanceLimit {
                rnd,
                tid,
                limit: TransferAmount::from_field(value),
            },
            (2, 7) => Self::SetWaterMeterFactor {
                rnd,
                tid,
                factor: value,
            },
            (2, 8) if key_width_128 => Self::KeyChange(KeyChangeSection::Third {
                supply_group_low: (data >> 32) as u16,
                key_word: data as u32,
            }),
            (2, 8) => {
                if data & 0xF_FFFF != 0 {
                    return Err(DecodeError::Field(TokenField::SupplyGroup));
                }
                Self::KeyChange(KeyChangeSection::SupplyGroup {
                    supply_group: SupplyGroupCode::try_from((data >> 20) as u32)
                        .map_err(|_| DecodeError::Field(TokenField::SupplyGroup))?,
                })
            }
            (2, 9) => Self::KeyChange(KeyChangeSection::Fourth {
                supply_group_high: (data >> 32) as u16,
                key_word: data as u32,
            }),
            (2, 10) => Self::ExtendedTokenSet {
                rnd,
                tid,
                field: value,
            },
            (2, _) => return Err(proprietary),
            _ => return Err(DecodeError::ReservedClass),
        })
    }
}

/// Encrypts a plain block (classes 0 and 2) and inserts the class.
///
/// # Errors
/// [`EncodeError::KeyRequired`] for an encrypted class without a cipher.
pub fn seal(block: DataBlock, cipher: Option<&TokenCipher>) -> Result<TokenNumber, EncodeError> {
    let class = block.class();
    let bits = if class.is_encrypted() {
        cipher
            .ok_or(EncodeError::KeyRequired)?
            .encrypt(block.bits())
    } else {
        block.bits()
    };
    Ok(TokenNumber::from_block(class, bits))
}

/// Removes the class and decrypts (classes 0 and 2), without checking the CRC.
///
/// # Errors
/// [`DecodeError::KeyRequired`] for an encrypted class without a cipher;
/// [`DecodeError::ReservedClass`] for class 3.
pub fn open(number: TokenNumber, cipher: Option<&TokenCipher>) -> Result<DataBlock, DecodeError> {
    let class = number.class();
    if class == TokenClass::RESERVED {
        return Err(DecodeError::ReservedClass);
    }
    let bits = if class.is_encrypted() {
        cipher
            .ok_or(DecodeError::KeyRequired)?
            .decrypt(number.block())
    } else {
        number.block()
    };
    Ok(DataBlock::from_bits(class, bits))
}

/// A decoded token: its plain block and its meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// The plain data block.
    pub block: DataBlock,
    /// The meaning.
    pub token: Token,
}

/// Decodes a token number: class, decryption, CRC, subclass, fields.
///
/// `cipher` is the meter's decoder key; class 1 tokens need none.
///
/// # Errors
/// See [`DecodeError`]: the CRC is checked before the subclass, so a token for another meter
/// reports [`DecodeError::Crc`].
pub fn decode(number: TokenNumber, cipher: Option<&TokenCipher>) -> Result<Decoded, DecodeError> {
    let block = open(number, cipher)?;
    if !block.crc_is_valid() {
        return Err(DecodeError::Crc);
    }
    let wide = cipher.is_some_and(|c| c.algorithm() == EncryptionAlgorithm::Misty1);
    Ok(Decoded {
        block,
        token: Token::from_block(&block, wide)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DecoderKey, EncryptionAlgorithm};

    fn sta(hex: &str) -> TokenCipher {
        TokenCipher::new(
            EncryptionAlgorithm::Sta,
            &DecoderKey::from_hex(hex).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn worked_example_credit_token() {
        let cipher = sta("E653341F9D5BF36F");
        let token = Token::TransferCredit {
            service: Service::Electricity,
            rnd: RandomNumber::from_low_bits(5),
            tid: TokenIdentifier::from_raw(5_871_715).unwrap(),
            amount: TransferAmount::from_value_ceil(1).unwrap(),
        };
        let number = token.encode(Some(&cipher)).unwrap();
        assert_eq!(number.to_string(), "23716100501183194197");
        let decoded = decode(number, Some(&cipher)).unwrap();
        assert_eq!(decoded.token, token);
        assert_eq!(decoded.block.bits(), 0x0559_9863_0001_19E6);
    }

    #[test]
    fn wrong_key_is_a_crc_error() {
        let number: TokenNumber = "23716100501183194197".parse().unwrap();
        assert_eq!(
            decode(number, Some(&sta("E653341F9D5BF36E"))).unwrap_err(),
            DecodeError::Crc
        );
        assert_eq!(decode(number, None).unwrap_err(), DecodeError::KeyRequired);
    }

    #[test]
    fn class_one_needs_no_key() {
        let number: TokenNumber = "56493153725450313471".parse().unwrap();
        let decoded = decode(number, None).unwrap();
        assert_eq!(
            decoded.token,
            Token::InitiateMeterTest {
                format: MeterTestFormat::Short,
                control: (1 << 36) - 1,
                manufacturer: 0
            }
        );
    }

    #[test]
    fn reserved_and_proprietary_subclasses() {
        for (class, sub, proprietary) in [
            (0, 8, false),
            (1, 3, false),
            (1, 6, true),
            (2, 11, true),
            (2, 15, true),
        ] {
            let block = DataBlock::new(
                TokenClass::from_bits(class),
                TokenSubclass::from_bits(sub),
                0,
            );
            let number = seal(block, Some(&sta("0123456789ABCDEF"))).unwrap();
            let err = decode(number, Some(&sta("0123456789ABCDEF"))).unwrap_err();
            assert_eq!(
                matches!(err, DecodeError::ProprietarySubclass { .. }),
                proprietary,
                "{class}/{sub}"
            );
        }
        let number = TokenNumber::from_block(TokenClass::RESERVED, 0);
        assert_eq!(
            decode(number, None).unwrap_err(),
            DecodeError::ReservedClass
        );
    }

    #[test]
    fn class_one_field_widths() {
        let token = Token::InitiateMeterTest {
            format: MeterTestFormat::Long,
            control: 1 << 28,
            manufacturer: 0,
        };
        assert_eq!(
            token.to_block(),
            Err(EncodeError::Field(TokenField::Control))
        );
        let token = Token::InitiateMeterTest {
            format: MeterTestFormat::Short,
            control: 0,
            manufacturer: 256,
        };
        assert_eq!(
            token.to_block(),
            Err(EncodeError::Field(TokenField::Manufacturer))
        );
    }
}
