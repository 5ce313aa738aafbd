//! Validated identifiers of the standard: every type here can only hold a legal value.
//!
//! Each type parses from the text an operator types (`FromStr`) and converts from the integer a
//! program holds (`TryFrom`). Invalid input gives an [`IdentifierError`] naming the field and
//! what was wrong.

mod algorithm;
mod base_date;
mod key_expiry;
mod key_revision;
mod key_type;
mod pan;
mod supply_group;
mod tariff_index;

pub use algorithm::{EncryptionAlgorithm, KeyDerivationAlgorithm};
pub use base_date::BaseDate;
pub use key_expiry::KeyExpiryNumber;
pub use key_revision::KeyRevisionNumber;
pub use key_type::KeyType;
pub use pan::{IssuerIdentificationNumber, MeterPan};
pub use supply_group::SupplyGroupCode;
pub use tariff_index::TariffIndex;

use core::fmt;

/// The identifier a parse error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Field {
    /// Supply group code.
    SupplyGroupCode,
    /// Tariff index.
    TariffIndex,
    /// Key revision number.
    KeyRevisionNumber,
    /// Key type.
    KeyType,
    /// Key expiry number.
    KeyExpiryNumber,
    /// Meter primary account number.
    MeterPan,
    /// Decoder reference number.
    DecoderReferenceNumber,
    /// Base date.
    BaseDate,
    /// Encryption algorithm code.
    EncryptionAlgorithm,
    /// Decoder key generation algorithm code.
    KeyDerivationAlgorithm,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SupplyGroupCode => "supply group code",
            Self::TariffIndex => "tariff index",
            Self::KeyRevisionNumber => "key revision number",
            Self::KeyType => "key type",
            Self::KeyExpiryNumber => "key expiry number",
            Self::MeterPan => "meter PAN",
            Self::DecoderReferenceNumber => "decoder reference number",
            Self::BaseDate => "base date",
            Self::EncryptionAlgorithm => "encryption algorithm",
            Self::KeyDerivationAlgorithm => "key derivation algorithm",
        })
    }
}

/// What was wrong with an identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// The text was empty.
    Empty,
    /// The text had a character other than an ASCII digit.
    NotDigits,
    /// The text had the wrong number of digits.
    Length {
        /// The number of digits the field takes (the smallest, where several lengths are legal).
        expected: u8,
        /// The number of characters found.
        found: usize,
    },
    /// The value is outside the legal range.
    Range {
        /// Smallest legal value.
        min: u32,
        /// Largest legal value.
        max: u32,
    },
    /// The value is not one of the codes the standard defines.
    UnknownCode,
    /// The Luhn check digit does not match the digits before it.
    CheckDigit {
        /// The check digit the other digits call for.
        expected: u8,
        /// The check digit given.
        found: u8,
    },
}

/// An identifier failed to parse or was out of range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdentifierError {
    /// Which identifier.
    pub field: Field,
    /// What was wrong with it.
    pub problem: Problem,
}

impl IdentifierError {
    pub(crate) const fn new(field: Field, problem: Problem) -> Self {
        Self { field, problem }
    }
}

impl fmt::Display for IdentifierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: ", self.field)?;
        match self.problem {
            Problem::Empty => f.write_str("empty"),
            Problem::NotDigits => f.write_str("only the digits 0-9 are allowed"),
            Problem::Length { expected, found } => {
                write!(f, "expected {expected} digits, found {found}")
            }
            Problem::Range { min, max } => write!(f, "must be from {min} to {max}"),
            Problem::UnknownCode => f.write_str("not a code the standard defines"),
            Problem::CheckDigit { expected, found } => {
                write!(
                    f,
                    "check digit is {found}, the digits before it call for {expected}"
                )
            }
        }
    }
}

impl core::error::Error for IdentifierError {}

/// Parses an all-digit string of `min_len..=max_len` digits into a `u64`.
///
/// Shared by the identifier parsers; the length bound keeps the value inside `u64`.
pub(crate) fn parse_digits(
    text: &str,
    field: Field,
    min_len: u8,
    max_len: u8,
) -> Result<u64, IdentifierError> {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return Err(IdentifierError::new(field, Problem::Empty));
    }
    if !bytes.iter().all(u8::is_ascii_digit) {
        return Err(IdentifierError::new(field, Problem::NotDigits));
    }
    if bytes.len() < usize::from(min_len) || bytes.len() > usize::from(max_len) {
        return Err(IdentifierError::new(
            field,
            Problem::Length {
                expected: min_len,
                found: bytes.len(),
            },
        ));
    }
    Ok(bytes
        .iter()
        .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0')))
}

/// Checks `value` against `min..=max`, as the identifier `field`.
pub(crate) fn check_range(
    value: u64,
    field: Field,
    min: u32,
    max: u32,
) -> Result<u32, IdentifierError> {
    if value < u64::from(min) || value > u64::from(max) {
        return Err(IdentifierError::new(field, Problem::Range { min, max }));
    }
    Ok(value as u32)
}
