use core::{fmt, str::FromStr};

use super::TokenClass;

/// The 66-bit token as a customer types it: 20 decimal digits.
///
/// The two class bits replace bits 28 and 27 of the (encrypted) data block, whose bits move to
/// 65 and 64 (STS.md section 2). Parsing accepts spaces and dashes between digits (`2371 6100
/// 5011 8319 4197`) and refuses anything that is not exactly 20 digits below 2^66.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenNumber(u128);

/// Text that is not a token number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenNumberError {
    /// No digits at all.
    Empty,
    /// A character other than a digit, space or dash.
    InvalidCharacter(char),
    /// Not 20 digits.
    Length(usize),
    /// 20 digits, but 2^66 or more: no token has that number.
    OutOfRange,
}

impl fmt::Display for TokenNumberError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("no token given"),
            Self::InvalidCharacter(c) => {
                write!(f, "token has the character {c:?}; only digits are allowed")
            }
            Self::Length(n) => write!(f, "token has {n} digits, a token has 20"),
            Self::OutOfRange => {
                f.write_str("token number is 2^66 or more (73786976294838206464): no token has it")
            }
        }
    }
}

impl core::error::Error for TokenNumberError {}

impl TokenNumber {
    /// The largest token number, 2^66 - 1.
    pub const MAX: u128 = (1 << 66) - 1;

    const CLASS_BITS: u64 = 3 << 27;

    /// The token number for a class and an (encrypted, for classes 0 and 2) data block.
    #[must_use]
    pub const fn from_block(class: TokenClass, block: u64) -> Self {
        let moved = ((block >> 27) & 3) as u128;
        let low = (block & !Self::CLASS_BITS) | ((class.get() as u64) << 27);
        Self((moved << 64) | low as u128)
    }

    /// The token's class.
    #[must_use]
    pub const fn class(self) -> TokenClass {
        TokenClass::from_bits(((self.0 >> 27) & 3) as u8)
    }

    /// The data block, class bits put back in their place (still encrypted for classes 0/2).
    #[must_use]
    pub const fn block(self) -> u64 {
        let low = self.0 as u64 & !Self::CLASS_BITS;
        low | ((((self.0 >> 64) & 3) as u64) << 27)
    }

    /// The number.
    #[must_use]
    pub const fn get(self) -> u128 {
        self.0
    }

    /// The token for a number below 2^66.
    ///
    /// # Errors
    /// [`TokenNumberError::OutOfRange`] otherwise.
    pub const fn from_u128(value: u128) -> Result<Self, TokenNumberError> {
        if value > Self::MAX {
            Err(TokenNumberError::OutOfRange)
        } else {
            Ok(Self(value))
        }
    }

    /// The 20 ASCII digits, zero padded.
    #[must_use]
    pub fn to_digits(self) -> [u8; 20] {
        // Split at 10^10 so the digit loops run on u64, avoiding 18 u128 divisions.
        const TEN_DIGITS: u128 = 10_000_000_000;
        let mut out = [b'0'; 20];
        let mut high = (self.0 / TEN_DIGITS) as u64;
        let mut low = (self.0 % TEN_DIGITS) as u64;
        for i in (10..20).rev() {
            out[i] = b'0' + (low % 10) as u8;
            low /= 10;
        }
        for i in (0..10).rev() {
            out[i] = b'0' + (high % 10) as u8;
            high /= 10;
        }
        out
    }

    /// Displays the token in five groups of four digits separated by spaces.
    #[must_use]
    pub const fn grouped(self) -> Grouped {
        Grouped(self)
    }
}

/// A token shown in groups of four digits: `2371 6100 5011 8319 4197`.
#[derive(Clone, Copy, Debug)]
pub struct Grouped(TokenNumber);

impl fmt::Display for Grouped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.0.to_digits();
        for (i, group) in digits.chunks(4).enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(core::str::from_utf8(group).map_err(|_| fmt::Error)?)?;
        }
        Ok(())
    }
}

impl fmt::Display for TokenNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.to_digits();
        f.write_str(core::str::from_utf8(&digits).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for TokenNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenNumber({self})")
    }
}

impl FromStr for TokenNumber {
    type Err = TokenNumberError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut value: u128 = 0;
        let mut digits = 0usize;
        for c in s.trim().chars() {
            match c {
                '0'..='9' => {
                    digits += 1;
                    if digits <= 20 {
                        value = value * 10 + u128::from(c as u8 - b'0');
                    }
                }
                ' ' | '-' => {}
                other => return Err(TokenNumberError::InvalidCharacter(other)),
            }
        }
        match digits {
            0 => Err(TokenNumberError::Empty),
            20 => Self::from_u128(value),
            n => Err(TokenNumberError::Length(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposition_worked_example() {
        // STS-detail.md 11.1: encrypted 492083C0AE7CE455, class 0 -> 0x1492083C0A67CE455.
        let t = TokenNumber::from_block(TokenClass::TRANSFER_CREDIT, 0x4920_83C0_AE7C_E455);
        assert_eq!(t.get(), 0x1_4920_83C0_A67C_E455);
        assert_eq!(t.to_string(), "23716100501183194197");
        assert_eq!(t.grouped().to_string(), "2371 6100 5011 8319 4197");
        assert_eq!(t.block(), 0x4920_83C0_AE7C_E455);
        assert_eq!(t.class(), TokenClass::TRANSFER_CREDIT);
    }

    #[test]
    fn parse() {
        let t: TokenNumber = "2371 6100 5011 8319 4197".parse().unwrap();
        assert_eq!(t.to_string(), "23716100501183194197");
        assert_eq!(
            "00000000000000000000"
                .parse::<TokenNumber>()
                .map(TokenNumber::get),
            Ok(0)
        );
        assert_eq!(
            "73786976294838206463"
                .parse::<TokenNumber>()
                .map(TokenNumber::get),
            Ok(TokenNumber::MAX)
        );
        assert_eq!(
            "73786976294838206464".parse::<TokenNumber>(),
            Err(TokenNumberError::OutOfRange)
        );
        assert_eq!(
            "99999999999999999999".parse::<TokenNumber>(),
            Err(TokenNumberError::OutOfRange)
        );
        assert_eq!(
            "1234".parse::<TokenNumber>(),
            Err(TokenNumberError::Length(4))
        );
        assert_eq!(
            "123456789012345678901234567890123456789012".parse::<TokenNumber>(),
            Err(TokenNumberError::Length(42))
        );
        assert_eq!(
            "2371x".parse::<TokenNumber>(),
            Err(TokenNumberError::InvalidCharacter('x'))
        );
        assert_eq!("  ".parse::<TokenNumber>(), Err(TokenNumberError::Empty));
    }
}
