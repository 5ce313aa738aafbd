use core::{fmt, str::FromStr};

use super::{Field, IdentifierError, check_range, parse_digits};

/// Supply group code: six decimal digits, allocated to a utility by the KMC (STS.md section 1).
///
/// Written as six digits with leading zeros (`000123`). In key change tokens it travels as a
/// 24-bit binary number; in the DKGA02 control block as six BCD digits; in DKGA04 as ASCII.
#[doc(alias = "SGC")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SupplyGroupCode(u32);

impl SupplyGroupCode {
    /// The largest code, 999999.
    pub const MAX: u32 = 999_999;

    /// The code as a number.
    #[must_use]
    pub const fn get(self) -> u32 {
        self.0
    }

    /// The six ASCII digits, zero padded.
    #[must_use]
    pub const fn to_digits(self) -> [u8; 6] {
        let mut out = [0u8; 6];
        let mut value = self.0;
        let mut i = 6;
        while i > 0 {
            i -= 1;
            out[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
        out
    }
}

impl TryFrom<u32> for SupplyGroupCode {
    type Error = IdentifierError;
    fn try_from(value: u32) -> Result<Self, Self::Error> {
        check_range(u64::from(value), Field::SupplyGroupCode, 0, Self::MAX).map(Self)
    }
}

impl FromStr for SupplyGroupCode {
    type Err = IdentifierError;
    /// Exactly six digits; leading zeros are part of the code.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_digits(s, Field::SupplyGroupCode, 6, 6).map(|v| Self(v as u32))
    }
}

impl fmt::Display for SupplyGroupCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_six_digits_only() {
        assert_eq!(
            "123456"
                .parse::<SupplyGroupCode>()
                .map(SupplyGroupCode::get),
            Ok(123_456)
        );
        assert_eq!(
            "000001"
                .parse::<SupplyGroupCode>()
                .map(|s| s.to_string())
                .as_deref(),
            Ok("000001")
        );
        assert!("12345".parse::<SupplyGroupCode>().is_err());
        assert!("1234567".parse::<SupplyGroupCode>().is_err());
        assert!("12a456".parse::<SupplyGroupCode>().is_err());
        assert!(SupplyGroupCode::try_from(1_000_000).is_err());
        assert_eq!(
            SupplyGroupCode::try_from(201_457).map(SupplyGroupCode::to_digits),
            Ok(*b"201457")
        );
    }
}
