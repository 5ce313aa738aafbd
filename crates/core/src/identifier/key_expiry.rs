use core::{fmt, str::FromStr};

use super::{Field, IdentifierError, check_range, parse_digits};

/// Key expiry number: 8 bits, compared with the top 8 bits of a token's TID (STS.md section 3).
///
/// A token whose `TID >> 16` is greater than the KEN must not be issued, and a meter refuses it
/// as "key expired". KEN 255 never expires. In key change tokens it travels as two nibbles,
/// KENHO in the 2/3 token and KENLO in the 2/4 token.
#[doc(alias = "KEN")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyExpiryNumber(u8);

impl KeyExpiryNumber {
    /// The KEN that never expires.
    pub const NEVER: Self = Self(255);

    /// The expiry number from its two 4-bit halves.
    #[must_use]
    pub const fn from_nibbles(high: u8, low: u8) -> Self {
        Self(((high & 0xF) << 4) | (low & 0xF))
    }

    /// The KEN as a number.
    #[must_use]
    pub const fn get(self) -> u8 {
        self.0
    }

    /// KENHO, the high nibble.
    #[must_use]
    pub const fn high(self) -> u8 {
        self.0 >> 4
    }

    /// KENLO, the low nibble.
    #[must_use]
    pub const fn low(self) -> u8 {
        self.0 & 0xF
    }
}

impl From<u8> for KeyExpiryNumber {
    fn from(value: u8) -> Self {
        Self(value)
    }
}

impl FromStr for KeyExpiryNumber {
    type Err = IdentifierError;
    /// A decimal number 0-255.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let value = parse_digits(s, Field::KeyExpiryNumber, 1, 3)?;
        check_range(value, Field::KeyExpiryNumber, 0, 255).map(|v| Self(v as u8))
    }
}

impl fmt::Display for KeyExpiryNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nibbles() {
        let ken = KeyExpiryNumber::from_nibbles(0xA, 0x5);
        assert_eq!((ken.get(), ken.high(), ken.low()), (0xA5, 0xA, 0x5));
        assert!("256".parse::<KeyExpiryNumber>().is_err());
        assert_eq!("255".parse::<KeyExpiryNumber>(), Ok(KeyExpiryNumber::NEVER));
    }
}
