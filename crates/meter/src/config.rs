//! The meter's settings: what its maker fixes and no token changes.
//!
//! None of these values comes from the standard except where a doc comment cites it; each is a
//! setting so a host can model the meter it simulates.

use core::fmt;

use sts_core::MeterPan;

use crate::{LockoutPolicy, TidMemory};

/// A manufacturer code: 2 digits (00-99) or 4 digits (0000-9999), compared with the code a class
/// 1 token carries (STS-detail.md 5.3; STS.md 5: "a meter accepts a class 1 token only when the
/// manufacturer code is its own").
#[doc(alias = "MfrCode")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "u16", into = "u16")
)]
pub struct ManufacturerCode(u16);

/// A manufacturer code above 9999.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ManufacturerCodeError(pub u16);

impl fmt::Display for ManufacturerCodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "manufacturer code {} has more than 4 digits (at most 9999)",
            self.0
        )
    }
}

impl core::error::Error for ManufacturerCodeError {}

impl ManufacturerCode {
    /// The largest code, 9999.
    pub const MAX: u16 = 9999;

    /// The code in the meter's PAN: the first 2 digits of an 11-digit DRN (IIN 600727) or the
    /// first 4 of a 13-digit DRN (IIN 0000) (STS-detail.md 6.1, one source).
    #[must_use]
    pub fn from_pan(pan: &MeterPan) -> Self {
        let drn = pan.drn().as_bytes();
        let digits = if drn.len() == 13 { 4 } else { 2 };
        Self(drn.iter().take(digits).fold(0u16, |acc, d| {
            acc * 10 + u16::from(d.wrapping_sub(b'0') % 10)
        }))
    }

    /// The code as a number.
    #[must_use]
    pub const fn get(self) -> u16 {
        self.0
    }
}

impl TryFrom<u16> for ManufacturerCode {
    type Error = ManufacturerCodeError;
    fn try_from(value: u16) -> Result<Self, Self::Error> {
        if value > Self::MAX {
            Err(ManufacturerCodeError(value))
        } else {
            Ok(Self(value))
        }
    }
}

impl From<ManufacturerCode> for u16 {
    fn from(code: ManufacturerCode) -> Self {
        code.0
    }
}

impl fmt::Display for ManufacturerCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}", self.0)
    }
}

/// The settings a meter is made with.
///
/// Build one with [`MeterConfig::new`] and change fields as needed; [`crate::Meter::new`] and
/// [`crate::Meter::from_parts`] check them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MeterConfig {
    /// The meter's primary account number (an input of its decoder key, and its identity).
    #[cfg_attr(feature = "serde", serde(with = "crate::wire"))]
    pub pan: MeterPan,
    /// The manufacturer code class 1 tokens must carry; by default the one in the PAN.
    pub manufacturer: ManufacturerCode,
    /// How many TIDs the meter remembers, 1 to [`TidMemory::CAPACITY`]. The standard's minimum
    /// is not public; 50 is the common figure (STS.md 8, STS-detail.md 9.2).
    pub tid_memory_depth: u16,
    /// The largest value of each unit credit register, in tenths of a unit (0.1 kWh ...). A
    /// credit token that would pass it is refused with Overflow.
    pub unit_maximum: u64,
    /// The largest value of each currency register, in 10^-5 currency units.
    pub currency_maximum: i128,
    /// The smallest value of each currency register, in 10^-5 currency units: a debit (negative
    /// currency token) that would go below it is refused with Range. Default 0: no debt.
    pub currency_minimum: i128,
    /// Keypad lockout after consecutive invalid entries (vendor behaviour, not normative).
    pub lockout: LockoutPolicy,
    /// Seconds after its first section that a partial key change set is dropped; `None` keeps
    /// it until the set completes. The standard sets no timeout; one firmware uses 90 s
    /// (STS-detail.md 5.5, one source).
    pub key_change_timeout: Option<u64>,
    /// Whether the meter implements the STS202-5 extended tokens: the extended token set (2/10,
    /// TID-checked, its 16-bit field stored) and the extended token read (1/2). Off by default:
    /// STS202-5 is an optional companion specification, and a meter without it answers
    /// Function (STS.md 5; the layouts come from one source).
    #[cfg_attr(feature = "serde", serde(default))]
    pub extended_tokens: bool,
}

impl MeterConfig {
    /// The default TID memory depth, 50 (STS.md 8: "the common figure").
    pub const DEFAULT_TID_MEMORY_DEPTH: u16 = 50;
    /// The default unit register maximum: 999 999 999 tenths (99 999 999.9 units, a 9-digit
    /// register). A setting, not from the standard.
    pub const DEFAULT_UNIT_MAXIMUM: u64 = 999_999_999;
    /// The default currency register maximum: 10^15 - 1 (9 999 999 999.99999 currency units).
    /// A setting, not from the standard.
    pub const DEFAULT_CURRENCY_MAXIMUM: i128 = 999_999_999_999_999;

    /// The default settings for a meter with this PAN: manufacturer code from the PAN, TID
    /// memory depth 50, the default register limits, no debt, the default lockout policy and no
    /// key change timeout.
    #[must_use]
    pub fn new(pan: MeterPan) -> Self {
        Self {
            pan,
            manufacturer: ManufacturerCode::from_pan(&pan),
            tid_memory_depth: Self::DEFAULT_TID_MEMORY_DEPTH,
            unit_maximum: Self::DEFAULT_UNIT_MAXIMUM,
            currency_maximum: Self::DEFAULT_CURRENCY_MAXIMUM,
            currency_minimum: 0,
            lockout: LockoutPolicy::DEFAULT,
            key_change_timeout: None,
            extended_tokens: false,
        }
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// The first setting out of range.
    pub const fn check(&self) -> Result<(), ConfigError> {
        if self.tid_memory_depth == 0 || self.tid_memory_depth as usize > TidMemory::CAPACITY {
            return Err(ConfigError::TidMemoryDepth(self.tid_memory_depth));
        }
        if self.currency_minimum > 0 || self.currency_maximum < 0 {
            return Err(ConfigError::CurrencyLimits);
        }
        if self.lockout.threshold == 0
            || self.lockout.initial_seconds > self.lockout.maximum_seconds
        {
            return Err(ConfigError::Lockout);
        }
        Ok(())
    }
}

/// A setting out of range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The TID memory depth is 0 or above [`TidMemory::CAPACITY`].
    TidMemoryDepth(u16),
    /// The currency limits do not include zero.
    CurrencyLimits,
    /// The lockout threshold is 0, or its first lock is longer than its longest.
    Lockout,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TidMemoryDepth(depth) => write!(
                f,
                "TID memory depth {depth} is out of range (1-{})",
                TidMemory::CAPACITY
            ),
            Self::CurrencyLimits => {
                f.write_str("currency register limits must satisfy minimum <= 0 <= maximum")
            }
            Self::Lockout => f.write_str(
                "lockout threshold must be at least 1 and the first lock no longer than the longest",
            ),
        }
    }
}

impl core::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manufacturer_code_from_pan() {
        let pan: MeterPan = "600727000000000009".parse().unwrap();
        assert_eq!(ManufacturerCode::from_pan(&pan).get(), 0);
        let pan = MeterPan::from_drn("47123456789").unwrap();
        assert_eq!(ManufacturerCode::from_pan(&pan).get(), 47);
        let pan = MeterPan::from_drn("1234000000001").unwrap();
        assert_eq!(ManufacturerCode::from_pan(&pan).get(), 1234);
        assert!(ManufacturerCode::try_from(10_000).is_err());
        assert_eq!(ManufacturerCode::try_from(7).unwrap().to_string(), "07");
    }

    #[test]
    fn defaults_are_valid_and_checked() {
        let mut config = MeterConfig::new("600727000000000009".parse().unwrap());
        assert_eq!(config.check(), Ok(()));
        config.tid_memory_depth = 257;
        assert_eq!(config.check(), Err(ConfigError::TidMemoryDepth(257)));
        config.tid_memory_depth = 0;
        assert_eq!(config.check(), Err(ConfigError::TidMemoryDepth(0)));
        config.tid_memory_depth = 256;
        config.currency_minimum = 1;
        assert_eq!(config.check(), Err(ConfigError::CurrencyLimits));
        config.currency_minimum = -5;
        config.lockout.threshold = 0;
        assert_eq!(config.check(), Err(ConfigError::Lockout));
    }
}
