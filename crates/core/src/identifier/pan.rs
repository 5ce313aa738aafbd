use core::{fmt, str::FromStr};

use super::{Field, IdentifierError, Problem, parse_digits};

/// Issuer identification number at the head of a meter PAN (STS.md section 1).
#[doc(alias = "IIN")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IssuerIdentificationNumber {
    /// `600727`, followed by an 11-digit decoder reference number.
    Sts600727,
    /// `0000`, followed by a 13-digit decoder reference number.
    Zero0000,
}

impl IssuerIdentificationNumber {
    /// The IIN digits.
    #[must_use]
    pub const fn digits(self) -> &'static str {
        match self {
            Self::Sts600727 => "600727",
            Self::Zero0000 => "0000",
        }
    }

    /// Length of the decoder reference number that follows this IIN.
    #[must_use]
    pub const fn drn_len(self) -> usize {
        match self {
            Self::Sts600727 => 11,
            Self::Zero0000 => 13,
        }
    }
}

/// Meter primary account number: IIN, decoder reference number (DRN) and a Luhn check digit,
/// 18 digits in all (STS.md section 1).
///
/// Parsing checks the check digit and the IIN; [`MeterPan::from_drn`] computes the check digit.
///
/// ```
/// use sts_core::MeterPan;
/// let pan: MeterPan = "600727000000000009".parse()?;
/// assert_eq!(pan.drn(), "00000000000");
/// assert_eq!(MeterPan::from_drn("0100000000008")?, "000001000000000082".parse()?);
/// assert!("600727000000000008".parse::<MeterPan>().is_err()); // wrong check digit
/// # Ok::<(), sts_core::IdentifierError>(())
/// ```
#[doc(alias = "PAN")]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MeterPan {
    digits: [u8; 18],
    iin: IssuerIdentificationNumber,
}

impl MeterPan {
    /// The PAN for a decoder reference number: an 11-digit DRN takes IIN `600727`, a 13-digit
    /// DRN takes IIN `0000`; the check digit is computed.
    ///
    /// # Errors
    /// The DRN is not 11 or 13 digits.
    pub fn from_drn(drn: &str) -> Result<Self, IdentifierError> {
        parse_digits(drn, Field::DecoderReferenceNumber, 11, 13)?;
        let iin = match drn.len() {
            11 => IssuerIdentificationNumber::Sts600727,
            13 => IssuerIdentificationNumber::Zero0000,
            found => {
                return Err(IdentifierError::new(
                    Field::DecoderReferenceNumber,
                    Problem::Length {
                        expected: 11,
                        found,
                    },
                ));
            }
        };
        let mut digits = [0u8; 18];
        let prefix = iin.digits().as_bytes();
        digits[..prefix.len()].copy_from_slice(prefix);
        digits[prefix.len()..17].copy_from_slice(drn.as_bytes());
        digits[17] = b'0' + luhn_check_digit(&digits[..17]);
        Ok(Self { digits, iin })
    }

    /// The 18 ASCII digits.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 18] {
        &self.digits
    }

    /// The 18 digits as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Invariant: `digits` holds ASCII digits only (checked at construction).
        core::str::from_utf8(&self.digits).unwrap_or("")
    }

    /// The issuer identification number.
    #[must_use]
    pub const fn iin(&self) -> IssuerIdentificationNumber {
        self.iin
    }

    /// The decoder reference number (11 or 13 digits).
    #[must_use]
    pub fn drn(&self) -> &str {
        let start = self.iin.digits().len();
        self.as_str().get(start..17).unwrap_or("")
    }

    /// The check digit.
    #[must_use]
    pub const fn check_digit(&self) -> u8 {
        self.digits[17] - b'0'
    }
}

/// The Luhn check digit for ASCII digits (ISO/IEC 7812).
pub(crate) fn luhn_check_digit(digits: &[u8]) -> u8 {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d - b'0');
            if i % 2 == 0 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

impl FromStr for MeterPan {
    type Err = IdentifierError;
    /// Exactly 18 digits with IIN `600727` or `0000` and a correct check digit.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_digits(s, Field::MeterPan, 18, 18)?;
        let mut digits = [0u8; 18];
        digits.copy_from_slice(s.as_bytes());
        let iin = if s.starts_with("600727") {
            IssuerIdentificationNumber::Sts600727
        } else if s.starts_with("0000") {
            IssuerIdentificationNumber::Zero0000
        } else {
            return Err(IdentifierError::new(Field::MeterPan, Problem::UnknownCode));
        };
        let expected = luhn_check_digit(&digits[..17]);
        let found = digits[17] - b'0';
        if expected != found {
            return Err(IdentifierError::new(
                Field::MeterPan,
                Problem::CheckDigit { expected, found },
            ));
        }
        Ok(Self { digits, iin })
    }
}

impl fmt::Display for MeterPan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for MeterPan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MeterPan({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_known_values() {
        assert_eq!(luhn_check_digit(b"60072700000000000"), 9);
        assert_eq!(luhn_check_digit(b"00000100000000008"), 2);
        assert_eq!(luhn_check_digit(b"7992739871"), 3); // ISO/IEC 7812 textbook example
    }

    #[test]
    fn parse_rejects_bad_pans() {
        let err = "600727000000000001".parse::<MeterPan>().unwrap_err();
        assert_eq!(
            err.problem,
            Problem::CheckDigit {
                expected: 9,
                found: 1
            }
        );
        assert_eq!(
            "123456000000000009"
                .parse::<MeterPan>()
                .unwrap_err()
                .problem,
            Problem::UnknownCode
        );
        assert!("60072700000000009".parse::<MeterPan>().is_err());
        assert!("60072700000000000x".parse::<MeterPan>().is_err());
    }

    #[test]
    fn drn_round_trip() {
        let pan = MeterPan::from_drn("01234567890").unwrap();
        assert_eq!(pan.drn(), "01234567890");
        assert_eq!(pan.as_str().parse::<MeterPan>().unwrap(), pan);
        assert!(MeterPan::from_drn("012345678").is_err());
    }
}
