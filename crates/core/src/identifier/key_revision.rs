use core::{fmt, str::FromStr};

use super::{Field, IdentifierError, check_range, parse_digits};

/// Key revision number: 1 to 9 (STS.md section 1).
///
/// A 4-bit field in the 2/3 key change token; one hex digit in the DKGA02 control block and
/// one ASCII digit in DKGA04. DITK keys have no revision; the standard gives them none here.
#[doc(alias = "KRN")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyRevisionNumber(u8);

impl KeyRevisionNumber {
    /// The number, 1 to 9.
    #[must_use]
    pub const fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for KeyRevisionNumber {
    type Error = IdentifierError;
    fn try_from(value: u8) -> Result<Self, Self::Error> {
        check_range(u64::from(value), Field::KeyRevisionNumber, 1, 9).map(|v| Self(v as u8))
    }
}

impl FromStr for KeyRevisionNumber {
    type Err = IdentifierError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let value = parse_digits(s, Field::KeyRevisionNumber, 1, 1)?;
        check_range(value, Field::KeyRevisionNumber, 1, 9).map(|v| Self(v as u8))
    }
}

impl fmt::Display for KeyRevisionNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_to_nine() {
        assert!("0".parse::<KeyRevisionNumber>().is_err());
        assert!("10".parse::<KeyRevisionNumber>().is_err());
        assert_eq!(
            "9".parse::<KeyRevisionNumber>().map(KeyRevisionNumber::get),
            Ok(9)
        );
        assert!(KeyRevisionNumber::try_from(0).is_err());
    }
}
