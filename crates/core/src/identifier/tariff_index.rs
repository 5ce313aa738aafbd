use core::{fmt, str::FromStr};

use super::{Field, IdentifierError, check_range, parse_digits};

/// Tariff index: two decimal digits, 00 to 99 (STS.md section 1).
///
/// Plain binary in the 2/4 key change token (99 is `0x63`), two BCD digits in the DKGA02
/// control block (99 is `0x99`), two ASCII digits in DKGA04.
#[doc(alias = "TI")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TariffIndex(u8);

impl TariffIndex {
    /// The largest tariff index, 99.
    pub const MAX: u8 = 99;

    /// The index as a number.
    #[must_use]
    pub const fn get(self) -> u8 {
        self.0
    }

    /// The two ASCII digits.
    #[must_use]
    pub const fn to_digits(self) -> [u8; 2] {
        [b'0' + self.0 / 10, b'0' + self.0 % 10]
    }
}

impl TryFrom<u8> for TariffIndex {
    type Error = IdentifierError;
    fn try_from(value: u8) -> Result<Self, Self::Error> {
        check_range(
            u64::from(value),
            Field::TariffIndex,
            0,
            u32::from(Self::MAX),
        )
        .map(|v| Self(v as u8))
    }
}

impl FromStr for TariffIndex {
    type Err = IdentifierError;
    /// One or two digits (`1` and `01` are the same index).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_digits(s, Field::TariffIndex, 1, 2).map(|v| Self(v as u8))
    }
}

impl fmt::Display for TariffIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert_eq!("7".parse::<TariffIndex>().map(TariffIndex::get), Ok(7));
        assert_eq!(
            "07".parse::<TariffIndex>()
                .map(|t| t.to_string())
                .as_deref(),
            Ok("07")
        );
        assert!("100".parse::<TariffIndex>().is_err());
        assert!(TariffIndex::try_from(100).is_err());
        assert_eq!(
            TariffIndex::try_from(99).map(TariffIndex::to_digits),
            Ok(*b"99")
        );
    }
}
