//! Why a meter refuses a token, and the status codes it shows.
//!
//! The names follow IEC 62055-41's token status list as public sources give it (STS-detail.md
//! 9.1: Accept, 1stKCT, 2ndKCT, OverflowError ... MfrCodeError); the numbers are the one
//! vendor numbering on record (Conlog, STS.md 8): 1 Accept ... 14 MfrCode, 15 lockout, 16 not
//! ready. This crate adds 17 for a key change set whose sections do not belong together.

use core::fmt;

use sts_core::{
    DecodeError, KeyExpiryNumber, KeyType, Register, TokenClass, TokenIdentifier, TokenSubclass,
    token::{TokenField, TokenNumberError},
};

use crate::ManufacturerCode;

/// A token status as a meter displays it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u8)]
pub enum Status {
    /// 1: the token was accepted and applied.
    Accept = 1,
    /// 2: the first section of a key change set was accepted; the rest are awaited.
    FirstKct = 2,
    /// 3: a further section was accepted; the set is still incomplete.
    SecondKct = 3,
    /// 4: a credit register would pass its maximum.
    Overflow = 4,
    /// 5: the key type change is not allowed.
    KeyType = 5,
    /// 6: the token is malformed.
    Format = 6,
    /// 7: a value is outside what the meter accepts.
    Range = 7,
    /// 8: the meter does not support this token.
    Function = 8,
    /// 9: the token is older than every remembered one.
    Old = 9,
    /// 10: the token was used before.
    Used = 10,
    /// 11: the token is dated after the key's expiry.
    KeyExpired = 11,
    /// 12: a credit token reached a meter with a default key.
    Ddtk = 12,
    /// 13: the CRC does not match: mistyped, or another meter's token.
    Crc = 13,
    /// 14: a class 1 token for another manufacturer.
    MfrCode = 14,
    /// 15: the keypad is locked after too many invalid entries.
    Lockout = 15,
    /// 17 (this crate's choice; 16 is a vendor's "not ready"): key change sections that do not
    /// belong to one set.
    KeyChangeMismatch = 17,
}

impl Status {
    /// The display number.
    #[must_use]
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The status name as meters show it: `Accept`, `1stKCT`, `CRC` ...
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Accept => "Accept",
            Self::FirstKct => "1stKCT",
            Self::SecondKct => "2ndKCT",
            Self::Overflow => "Overflow",
            Self::KeyType => "KeyType",
            Self::Format => "Format",
            Self::Range => "Range",
            Self::Function => "Function",
            Self::Old => "Old",
            Self::Used => "Used",
            Self::KeyExpired => "KeyExpired",
            Self::Ddtk => "DDTK",
            Self::Crc => "CRC",
            Self::MfrCode => "MfrCode",
            Self::Lockout => "Lockout",
            Self::KeyChangeMismatch => "KCTMismatch",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What makes a token malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormatProblem {
    /// The entry is not 20 digits below 2^66.
    Digits(TokenNumberError),
    /// A clear tamper token (2/5) whose pad is not zero.
    Pad,
    /// The SGC section (2/8) of a 64-bit set whose low 20 bits are not zero.
    SupplyGroupPadding,
    /// Any other decoding failure (none is expected: kept so no input can panic the meter).
    Unreadable,
}

/// What value is out of range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RangeProblem {
    /// A clear credit token names a register other than 0-7 and 65535.
    Register(Register),
    /// A debit would take a currency register below its minimum.
    BelowMinimum(Register),
    /// A key change carries a key revision number outside 1-9.
    KeyRevision,
    /// A key change carries a tariff index above 99.
    TariffIndex,
    /// A key change carries a supply group code above 999999.
    SupplyGroup,
    /// A rollover key change reached a meter on the last base date (2035).
    NoLaterBaseDate,
}

/// Why key change sections do not make one set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MismatchProblem {
    /// A 64-bit set's SGC section (2/8) with a 2/3 section whose 3KCT bit is 0.
    SupplyGroupWithoutThreeSections,
    /// A 2/3 section with the 3KCT bit set at a 128-bit (EA11) meter, whose sets never set it.
    ThreeSectionsOnWideKey,
    /// The set counts enough sections but they do not assemble into a key (a section or key
    /// word is missing). Not expected from tokens; kept so a damaged staging cannot apply.
    Incomplete,
}

/// Why a meter refused a token. A refused token changes nothing except the lockout count (and,
/// for [`Rejection::KeyChangeMismatch`] and a refused complete key change set, the staged
/// sections, which are dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// Code 4. Crediting the token would take the register past its maximum
    /// ([`crate::MeterConfig::unit_maximum`], `currency_maximum`). Fires after the TID checks;
    /// the token is not stored, so it can be entered again once credit has been used.
    Overflow {
        /// The register.
        register: Register,
    },
    /// Code 5. A key change to a DITK (KT 0) at a meter that does not hold a DITK. STS.md 8 and
    /// STS-detail.md 8: the full IEC rule table (62055-41 6.5.2.4) is not public; this is the
    /// one rule on record (one firmware). Fires when the 2/3 section arrives.
    KeyType {
        /// The meter's key type.
        current: KeyType,
        /// The key type the set would install.
        requested: KeyType,
    },
    /// Code 6. The entry is not a token (not 20 digits, or 2^66 or more), or a field that must
    /// be zero is not.
    Format(FormatProblem),
    /// Code 7. A value out of range: see [`RangeProblem`]. Key change fields that core's
    /// decoder refuses (KRN 0, TI above 99) land here too.
    Range(RangeProblem),
    /// Code 8. The meter does not support the token: class 3, a reserved or proprietary
    /// subclass, the extended token set (2/10) and extended token read (1/2) of STS202-5, or a
    /// 4th key change section (2/9) at a 64-bit meter.
    Function {
        /// The class.
        class: TokenClass,
        /// The subclass, when the token was decrypted far enough to read it.
        subclass: Option<TokenSubclass>,
    },
    /// Code 9. The TID memory is full and the token is older than the oldest TID in it
    /// (STS.md 3 and 8).
    Old {
        /// The token's TID.
        tid: TokenIdentifier,
        /// The oldest remembered TID.
        oldest: TokenIdentifier,
    },
    /// Code 10. The token's TID is in the TID memory: it was accepted before.
    Used {
        /// The token's TID.
        tid: TokenIdentifier,
    },
    /// Code 11. The token's TID is past the key's expiry: `TID >> 16 > KEN` (STS.md 3).
    /// Checked for every class 0 and class 2 token except key change tokens.
    KeyExpired {
        /// The token's TID.
        tid: TokenIdentifier,
        /// The meter's key expiry number.
        expiry: KeyExpiryNumber,
    },
    /// Code 12. A credit token (class 0) at a meter whose key is a DDTK (KT 1): default keys
    /// may change keys and manage, not transfer credit (STS-detail.md 8, two sources).
    Ddtk,
    /// Code 5. A credit token (class 0) at a meter whose key is a DITK (KT 0). The public record
    /// has no rule for this; a DITK is a manufacturer's plain test key, not secret, so credit
    /// under it could be forged by anyone. Project decision (conservative): refused, like
    /// credit under a DDTK, with the key type code.
    DitkCredit,
    /// Code 13. The CRC does not match after decryption: the token was mistyped or is for
    /// another meter (a wrong key looks the same).
    Crc {
        /// The class.
        class: TokenClass,
    },
    /// Code 14. A class 1 token whose manufacturer code is not the meter's.
    MfrCode {
        /// The meter's code.
        expected: ManufacturerCode,
        /// The token's code.
        found: u16,
    },
    /// Code 15. The keypad is locked (see [`crate::LockoutPolicy`]): class 0, 2 and 3 tokens are
    /// refused without being decrypted. Class 1 tokens still work.
    Lockout {
        /// Seconds until the lock ends.
        remaining_seconds: u64,
    },
    /// Code 17 (this crate's choice). Key change sections that cannot belong to one set; every
    /// staged section is dropped.
    KeyChangeMismatch(MismatchProblem),
}

impl Rejection {
    /// The status the meter shows.
    #[must_use]
    pub const fn status(&self) -> Status {
        match self {
            Self::Overflow { .. } => Status::Overflow,
            Self::KeyType { .. } => Status::KeyType,
            Self::Format(_) => Status::Format,
            Self::Range(_) => Status::Range,
            Self::Function { .. } => Status::Function,
            Self::Old { .. } => Status::Old,
            Self::Used { .. } => Status::Used,
            Self::KeyExpired { .. } => Status::KeyExpired,
            Self::Ddtk => Status::Ddtk,
            Self::DitkCredit => Status::KeyType,
            Self::Crc { .. } => Status::Crc,
            Self::MfrCode { .. } => Status::MfrCode,
            Self::Lockout { .. } => Status::Lockout,
            Self::KeyChangeMismatch(_) => Status::KeyChangeMismatch,
        }
    }

    /// True when the refusal counts toward the keypad lockout.
    ///
    /// Counted: Format, CRC, Function and MfrCode - what a guessed or mistyped entry produces
    /// (a guess at a class 0/2 token fails the CRC 65535 times in 65536). Not counted: refusals
    /// of tokens that decrypted with a valid CRC (Used, Old, KeyExpired, KeyType, DDTK, Range,
    /// Overflow, a key change mismatch) - whoever entered them holds a genuine token, so they
    /// are no guessing attempt, and locking a customer out for re-entering a used token would
    /// punish an honest mistake - and Lockout itself. The vendor on record counts "wrong
    /// entries" without defining them (STS-detail.md 9.5).
    #[must_use]
    pub const fn counts_toward_lockout(&self) -> bool {
        matches!(
            self,
            Self::Format(_) | Self::Crc { .. } | Self::Function { .. } | Self::MfrCode { .. }
        )
    }

    /// The rejection for a decoding failure of sts-core:
    ///
    /// | [`DecodeError`] | rejection |
    /// |---|---|
    /// | `Crc` | CRC |
    /// | `ReservedClass` (class 3) | Function |
    /// | `ReservedSubclass`, `ProprietarySubclass` | Function |
    /// | `Field(KeyRevision)`, `Field(TariffIndex)`, `Field(SupplyGroup)` | Range |
    /// | anything else (`KeyRequired`, other `Field`s: not produced when decoding) | Format |
    ///
    /// The meter itself reports a 2/8 SGC section with non-zero padding, which core also calls
    /// `Field(SupplyGroup)`, as Format.
    #[must_use]
    pub const fn from_decode(error: DecodeError, class: TokenClass) -> Self {
        match error {
            DecodeError::Crc => Self::Crc { class },
            DecodeError::ReservedClass => Self::Function {
                class,
                subclass: None,
            },
            DecodeError::ReservedSubclass { class, subclass }
            | DecodeError::ProprietarySubclass { class, subclass } => Self::Function {
                class,
                subclass: Some(subclass),
            },
            DecodeError::Field(TokenField::KeyRevision) => Self::Range(RangeProblem::KeyRevision),
            DecodeError::Field(TokenField::TariffIndex) => Self::Range(RangeProblem::TariffIndex),
            DecodeError::Field(TokenField::SupplyGroup) => Self::Range(RangeProblem::SupplyGroup),
            _ => Self::Format(FormatProblem::Unreadable),
        }
    }
}

fn register_name(register: Register) -> &'static str {
    match register.0 {
        0 => "electricity units",
        1 => "water units",
        2 => "gas units",
        3 => "time units",
        4 => "electricity currency",
        5 => "water currency",
        6 => "gas currency",
        7 => "time currency",
        0xFFFF => "all",
        _ => "an undefined",
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): ", self.status(), self.status().code())?;
        match self {
            Self::Overflow { register } => write!(
                f,
                "the {} register would pass its maximum",
                register_name(*register)
            ),
            Self::KeyType { current, requested } => write!(
                f,
                "a change from key type {} ({}) to {} ({}) is not allowed",
                current.code(),
                current.abbreviation(),
                requested.code(),
                requested.abbreviation()
            ),
            Self::Format(FormatProblem::Digits(e)) => write!(f, "{e}"),
            Self::Format(FormatProblem::Pad) => {
                f.write_str("the pad of a clear tamper token must be zero")
            }
            Self::Format(FormatProblem::SupplyGroupPadding) => {
                f.write_str("the padding of a supply group section must be zero")
            }
            Self::Format(FormatProblem::Unreadable) => f.write_str("the token cannot be read"),
            Self::Range(RangeProblem::Register(r)) => write!(
                f,
                "register {} is not defined (0-7 or 65535)",
                r.0
            ),
            Self::Range(RangeProblem::BelowMinimum(r)) => write!(
                f,
                "the debit would take the {} register below its minimum",
                register_name(*r)
            ),
            Self::Range(RangeProblem::KeyRevision) => {
                f.write_str("the key revision number must be 1-9")
            }
            Self::Range(RangeProblem::TariffIndex) => {
                f.write_str("the tariff index must be 0-99")
            }
            Self::Range(RangeProblem::SupplyGroup) => {
                f.write_str("the supply group code must be at most 999999")
            }
            Self::Range(RangeProblem::NoLaterBaseDate) => {
                f.write_str("a rollover needs a later base date, and 2035 is the last")
            }
            Self::Function { class, subclass: Some(s) } => {
                write!(f, "token class {class} subclass {s} is not supported")
            }
            Self::Function { class, subclass: None } => {
                write!(f, "token class {class} is not supported")
            }
            Self::Old { tid, oldest } => write!(
                f,
                "TID {tid} is older than the oldest remembered TID {oldest}"
            ),
            Self::Used { tid } => write!(f, "the token with TID {tid} was used before"),
            Self::KeyExpired { tid, expiry } => write!(
                f,
                "TID {tid} is past the key's expiry (TID >> 16 = {} > KEN {expiry})",
                tid.get() >> 16
            ),
            Self::Ddtk => f.write_str("a meter with a default key (DDTK) accepts no credit"),
            Self::DitkCredit => f.write_str(
                "a meter with an initialization key (DITK) accepts no credit: that key is not secret",
            ),
            Self::Crc { .. } => f.write_str(
                "the CRC does not match: the token was mistyped or is for another meter",
            ),
            Self::MfrCode { expected, found } => write!(
                f,
                "the token is for manufacturer {found:02}, this meter's is {expected}"
            ),
            Self::Lockout { remaining_seconds } => write!(
                f,
                "the keypad is locked for {remaining_seconds} more seconds"
            ),
            Self::KeyChangeMismatch(MismatchProblem::SupplyGroupWithoutThreeSections) => f
                .write_str(
                    "a supply group section does not fit a first section without the 3KCT bit; the key change was dropped",
                ),
            Self::KeyChangeMismatch(MismatchProblem::ThreeSectionsOnWideKey) => f.write_str(
                "a 128-bit key change never sets the 3KCT bit; the key change was dropped",
            ),
            Self::KeyChangeMismatch(MismatchProblem::Incomplete) => f.write_str(
                "the key change sections do not make a key; the key change was dropped",
            ),
        }
    }
}

impl core::error::Error for Rejection {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_vendor_numbering() {
        let all = [
            Status::Accept,
            Status::FirstKct,
            Status::SecondKct,
            Status::Overflow,
            Status::KeyType,
            Status::Format,
            Status::Range,
            Status::Function,
            Status::Old,
            Status::Used,
            Status::KeyExpired,
            Status::Ddtk,
            Status::Crc,
            Status::MfrCode,
            Status::Lockout,
        ];
        for (i, s) in all.iter().enumerate() {
            assert_eq!(usize::from(s.code()), i + 1, "{s}");
        }
        assert_eq!(Status::KeyChangeMismatch.code(), 17);
        assert_eq!(Status::FirstKct.to_string(), "1stKCT");
    }

    #[test]
    fn decode_errors_map_as_documented() {
        let c2 = TokenClass::MANAGEMENT;
        assert_eq!(
            Rejection::from_decode(DecodeError::Crc, c2),
            Rejection::Crc { class: c2 }
        );
        assert_eq!(
            Rejection::from_decode(DecodeError::ReservedClass, TokenClass::RESERVED).status(),
            Status::Function
        );
        assert_eq!(
            Rejection::from_decode(
                DecodeError::ProprietarySubclass {
                    class: c2,
                    subclass: TokenSubclass::from_bits(11)
                },
                c2
            ),
            Rejection::Function {
                class: c2,
                subclass: Some(TokenSubclass::from_bits(11))
            }
        );
        assert_eq!(
            Rejection::from_decode(DecodeError::Field(TokenField::KeyRevision), c2),
            Rejection::Range(RangeProblem::KeyRevision)
        );
        assert_eq!(
            Rejection::from_decode(DecodeError::KeyRequired, c2).status(),
            Status::Format
        );
    }

    #[test]
    fn messages_name_the_code() {
        let r = Rejection::Used {
            tid: TokenIdentifier::from_raw(5_871_715).unwrap(),
        };
        assert_eq!(
            r.to_string(),
            "Used (10): the token with TID 5871715 was used before"
        );
        assert!(!r.counts_toward_lockout());
        assert!(
            Rejection::Crc {
                class: TokenClass::TRANSFER_CREDIT
            }
            .counts_toward_lockout()
        );
    }
}
