use core::{fmt, str::FromStr};

use super::{Field, IdentifierError, Problem, parse_digits};

/// Decoder key type, 0 to 3; the standard defines every value (STS.md section 1).
#[doc(alias = "KT")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum KeyType {
    /// DITK, initialization key: plain, for manufacturer testing; not derived from a vending key.
    #[doc(alias = "DITK")]
    Initialization = 0,
    /// DDTK, default key, derived from a VDDK: key changes and management only, no credit.
    #[doc(alias = "DDTK")]
    Default = 1,
    /// DUTK, unique key, derived from a VUDK: one key per meter.
    #[doc(alias = "DUTK")]
    Unique = 2,
    /// DCTK, common key, derived from a VCDK: one key for every meter of a supply group.
    #[doc(alias = "DCTK")]
    Common = 3,
}

impl KeyType {
    /// The 2-bit code.
    #[must_use]
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The key type for a 2-bit code (only the low two bits are read).
    #[must_use]
    pub const fn from_bits(bits: u8) -> Self {
        match bits & 3 {
            0 => Self::Initialization,
            1 => Self::Default,
            2 => Self::Unique,
            _ => Self::Common,
        }
    }

    /// The short name used in the standard (`DUTK` ...).
    #[must_use]
    pub const fn abbreviation(self) -> &'static str {
        match self {
            Self::Initialization => "DITK",
            Self::Default => "DDTK",
            Self::Unique => "DUTK",
            Self::Common => "DCTK",
        }
    }
}

impl TryFrom<u8> for KeyType {
    type Error = IdentifierError;
    fn try_from(value: u8) -> Result<Self, Self::Error> {
        if value > 3 {
            return Err(IdentifierError::new(
                Field::KeyType,
                Problem::Range { min: 0, max: 3 },
            ));
        }
        Ok(Self::from_bits(value))
    }
}

impl FromStr for KeyType {
    type Err = IdentifierError;
    /// A digit 0-3, or one of `DITK`, `DDTK`, `DUTK`, `DCTK` in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        for kt in [
            Self::Initialization,
            Self::Default,
            Self::Unique,
            Self::Common,
        ] {
            if s.eq_ignore_ascii_case(kt.abbreviation()) {
                return Ok(kt);
            }
        }
        Self::try_from(parse_digits(s, Field::KeyType, 1, 1)? as u8)
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names() {
        assert_eq!("2".parse::<KeyType>(), Ok(KeyType::Unique));
        assert_eq!("dctk".parse::<KeyType>(), Ok(KeyType::Common));
        assert!("4".parse::<KeyType>().is_err());
        assert!(KeyType::try_from(4).is_err());
        assert_eq!(KeyType::from_bits(1).abbreviation(), "DDTK");
    }
}
