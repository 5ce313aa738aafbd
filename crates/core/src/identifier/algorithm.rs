use core::{fmt, str::FromStr};

use super::{Field, IdentifierError, Problem};

/// Encryption algorithm code (EA), STS.md section 7.
#[doc(alias = "EA")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EncryptionAlgorithm {
    /// EA07, the Standard Transfer Algorithm: a 64-bit substitution-permutation cipher.
    #[doc(alias = "STA")]
    Sta,
    /// EA09, single DES (FIPS 46). Deprecated by the standard: no new products may use it.
    #[doc(alias = "DEA")]
    Des,
    /// EA11, MISTY1 (RFC 2994) with a 128-bit decoder key.
    Misty1,
}

impl EncryptionAlgorithm {
    /// The two-digit code: 7, 9 or 11.
    #[must_use]
    pub const fn code(self) -> u8 {
        match self {
            Self::Sta => 7,
            Self::Des => 9,
            Self::Misty1 => 11,
        }
    }

    /// The two ASCII digits DKGA04 writes (`"07"`, `"11"`).
    #[must_use]
    pub const fn to_digits(self) -> [u8; 2] {
        let c = self.code();
        [b'0' + c / 10, b'0' + c % 10]
    }

    /// Decoder key length in bytes: 8 for EA07 and EA09, 16 for EA11.
    #[must_use]
    pub const fn key_len(self) -> usize {
        match self {
            Self::Sta | Self::Des => 8,
            Self::Misty1 => 16,
        }
    }
}

impl FromStr for EncryptionAlgorithm {
    type Err = IdentifierError;
    /// `07`, `7`, `EA07`, `09`, `11` ... in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s
            .strip_prefix("EA")
            .or_else(|| s.strip_prefix("ea"))
            .unwrap_or(s);
        match digits {
            "07" | "7" => Ok(Self::Sta),
            "09" | "9" => Ok(Self::Des),
            "11" => Ok(Self::Misty1),
            "" => Err(IdentifierError::new(
                Field::EncryptionAlgorithm,
                Problem::Empty,
            )),
            _ => Err(IdentifierError::new(
                Field::EncryptionAlgorithm,
                Problem::UnknownCode,
            )),
        }
    }
}

impl fmt::Display for EncryptionAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}", self.code())
    }
}

/// Decoder key generation algorithm (DKGA), STS.md section 6.
#[doc(alias = "DKGA")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyDerivationAlgorithm {
    /// DKGA01, legacy: DES keyed by the PAN/control block over the vending key. Unverified.
    Dkga01,
    /// DKGA02: DES of the PAN/control block under a 64-bit vending key. Verified by vectors.
    Dkga02,
    /// DKGA03, withdrawn in 2018: two-key triple DES. Unverified.
    Dkga03,
    /// DKGA04: HMAC-SHA-256 KDF over a 160-bit vending key. Verified by vectors.
    Dkga04,
}

impl KeyDerivationAlgorithm {
    /// The two-digit code, 1 to 4.
    #[must_use]
    pub const fn code(self) -> u8 {
        match self {
            Self::Dkga01 => 1,
            Self::Dkga02 => 2,
            Self::Dkga03 => 3,
            Self::Dkga04 => 4,
        }
    }

    /// Vending key length in bytes this algorithm takes.
    #[must_use]
    pub const fn vending_key_len(self) -> usize {
        match self {
            Self::Dkga01 | Self::Dkga02 => 8,
            Self::Dkga03 => 16,
            Self::Dkga04 => 20,
        }
    }
}

impl FromStr for KeyDerivationAlgorithm {
    type Err = IdentifierError;
    /// `02`, `2`, `DKGA02` ... in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = if s.len() > 4 && s.is_char_boundary(4) && s[..4].eq_ignore_ascii_case("dkga")
        {
            &s[4..]
        } else {
            s
        };
        match digits {
            "01" | "1" => Ok(Self::Dkga01),
            "02" | "2" => Ok(Self::Dkga02),
            "03" | "3" => Ok(Self::Dkga03),
            "04" | "4" => Ok(Self::Dkga04),
            "" => Err(IdentifierError::new(
                Field::KeyDerivationAlgorithm,
                Problem::Empty,
            )),
            _ => Err(IdentifierError::new(
                Field::KeyDerivationAlgorithm,
                Problem::UnknownCode,
            )),
        }
    }
}

impl fmt::Display for KeyDerivationAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}", self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(
            "EA11".parse::<EncryptionAlgorithm>(),
            Ok(EncryptionAlgorithm::Misty1)
        );
        assert_eq!(
            "7".parse::<EncryptionAlgorithm>(),
            Ok(EncryptionAlgorithm::Sta)
        );
        assert!("08".parse::<EncryptionAlgorithm>().is_err());
        assert_eq!(
            "dkga04".parse::<KeyDerivationAlgorithm>(),
            Ok(KeyDerivationAlgorithm::Dkga04)
        );
        assert!("dkga05".parse::<KeyDerivationAlgorithm>().is_err());
        assert!("dkgaé".parse::<KeyDerivationAlgorithm>().is_err());
        assert_eq!(EncryptionAlgorithm::Sta.to_digits(), *b"07");
    }
}
