//! The 16-bit transfer amount: credit in tenths of a unit, power limits in watts
//! (STS.md section 4).

use core::fmt;

/// An amount that cannot be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AmountError {
    /// Larger than the encoding's maximum.
    TooLarge,
    /// Not a decimal number (`12.5`, `-3`, `1.5E3`).
    Syntax,
    /// More decimal places than the unit allows.
    TooPrecise,
    /// A negative amount where only positive ones exist.
    Negative,
}

impl fmt::Display for AmountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooLarge => "amount too large for a token",
            Self::Syntax => "not a decimal number",
            Self::TooPrecise => "more decimal places than the token's resolution",
            Self::Negative => "amount must not be negative",
        })
    }
}

impl core::error::Error for AmountError {}

/// The encoded 16-bit transfer amount: exponent `e` (2 bits) and mantissa `m` (14 bits).
///
/// Its value is `m * 10^e + sum(16384 * 10^(i-1), i = 1..e)`, from 0 to 18 201 624. Encoding
/// rounds **up** (in the customer's favour), so a token never carries less than asked.
///
/// ```
/// use sts_core::TransferAmount;
/// let a = TransferAmount::from_value_ceil(20_000)?; // 2000.0 kWh in tenths
/// assert_eq!((a.field(), a.value()), (0x416A, 20_004));
/// # Ok::<(), sts_core::AmountError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TransferAmount(u16);

/// `16384 * (10^e - 1) / 9`, the value of mantissa 0 at exponent `e`.
const fn offset(e: u32) -> u128 {
    16_384 * ((10u128.pow(e) - 1) / 9)
}

/// Encodes a magnitude with the exponent/mantissa iteration, rounding each division up (`ceil`)
/// or down; returns `(e, m)`, or `None` past `max_e`.
const fn encode_magnitude(value: u128, ceil: bool, max_e: u32) -> Option<(u32, u16)> {
    let mut x = value;
    let mut e = 0;
    while x > 16_383 {
        let rest = x - 16_384;
        x = if ceil { rest.div_ceil(10) } else { rest / 10 };
        e += 1;
        if e > max_e {
            return None;
        }
    }
    Some((e, x as u16))
}

const fn decode_magnitude(e: u32, m: u16) -> u128 {
    m as u128 * 10u128.pow(e) + offset(e)
}

impl TransferAmount {
    /// The largest value a transfer amount holds.
    pub const MAX_VALUE: u32 = 18_201_624;

    /// The smallest encoding whose value is at least `value`.
    ///
    /// # Errors
    /// [`AmountError::TooLarge`] above [`TransferAmount::MAX_VALUE`].
    pub const fn from_value_ceil(value: u32) -> Result<Self, AmountError> {
        match encode_magnitude(value as u128, true, 3) {
            Some((e, m)) => Ok(Self(((e as u16) << 14) | m)),
            None => Err(AmountError::TooLarge),
        }
    }

    /// The largest encoding whose value is at most `value`: for a sale paid in money, where
    /// the token must never carry more than was paid for. Below 1638.4 (16 384 tenths) every
    /// value is encodable; above, the token's resolution is 1, then 10, then 100 tenths.
    ///
    /// ```
    /// use sts_core::TransferAmount;
    /// let a = TransferAmount::from_value_floor(49_999)?; // 4999.9 kWh in tenths
    /// assert_eq!(a.value(), 49_994); // 16 384 + 3361 * 10
    /// # Ok::<(), sts_core::AmountError>(())
    /// ```
    ///
    /// # Errors
    /// [`AmountError::TooLarge`] above [`TransferAmount::MAX_VALUE`].
    pub const fn from_value_floor(value: u32) -> Result<Self, AmountError> {
        match Self::from_value_ceil(value) {
            // Field order is value order, so the field below the ceiling is the floor.
            Ok(ceil) if ceil.value() > value => Ok(Self(ceil.0 - 1)),
            other => other,
        }
    }

    /// The amount from its 16-bit field; every field is valid.
    #[must_use]
    pub const fn from_field(field: u16) -> Self {
        Self(field)
    }

    /// The 16-bit field.
    #[must_use]
    pub const fn field(self) -> u16 {
        self.0
    }

    /// The value the field stands for.
    #[must_use]
    pub const fn value(self) -> u32 {
        decode_magnitude((self.0 >> 14) as u32, self.0 & 0x3FFF) as u32
    }
}

/// Parses a non-negative decimal with at most `places` decimal places into an integer count of
/// `10^-places` units (`"12.5"` with 1 place is 125).
///
/// # Errors
/// Syntax, too many places, negative, or more than `u32::MAX` units.
pub fn parse_fixed(text: &str, places: u32) -> Result<u32, AmountError> {
    let decimal = Decimal::parse(text)?;
    if decimal.negative && decimal.mantissa != 0 {
        return Err(AmountError::Negative);
    }
    let scaled = decimal.scaled(places as i32).ok_or(AmountError::TooLarge)?;
    match scaled {
        Scaled::Exact(v) => u32::try_from(v).map_err(|_| AmountError::TooLarge),
        Scaled::Inexact { .. } => Err(AmountError::TooPrecise),
    }
}

/// A decimal number as read: `mantissa * 10^exponent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Decimal {
    pub(crate) negative: bool,
    pub(crate) mantissa: u128,
    pub(crate) exponent: i32,
}

/// A decimal scaled to an integer unit.
pub(crate) enum Scaled {
    Exact(u128),
    /// Lies strictly between `floor` and `floor + 1`.
    Inexact {
        floor: u128,
    },
}

impl Decimal {
    /// Reads `[+-]digits[.digits][(e|E)[+-]digits]`.
    pub(crate) fn parse(text: &str) -> Result<Self, AmountError> {
        let s = text.trim().as_bytes();
        let (negative, s) = match s.first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let (number, exp_part) = match s.iter().position(|&c| c == b'e' || c == b'E') {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        };
        let mut mantissa: u128 = 0;
        let mut exponent: i32 = 0;
        let mut digits = 0usize;
        let mut seen_point = false;
        for &c in number {
            match c {
                b'0'..=b'9' => {
                    digits += 1;
                    if mantissa == 0 && c == b'0' {
                        // Leading zeros add no precision.
                    } else {
                        mantissa = mantissa
                            .checked_mul(10)
                            .and_then(|m| m.checked_add(u128::from(c - b'0')))
                            .ok_or(AmountError::TooLarge)?;
                    }
                    if seen_point {
                        exponent = exponent.checked_sub(1).ok_or(AmountError::TooPrecise)?;
                    }
                }
                b'.' if !seen_point => seen_point = true,
                _ => return Err(AmountError::Syntax),
            }
        }
        if digits == 0 {
            return Err(AmountError::Syntax);
        }
        if let Some(exp) = exp_part {
            let (exp_negative, exp) = match exp.first() {
                Some(b'-') => (true, &exp[1..]),
                Some(b'+') => (false, &exp[1..]),
                _ => (false, exp),
            };
            if exp.is_empty() || exp.len() > 4 || !exp.iter().all(u8::is_ascii_digit) {
                return Err(AmountError::Syntax);
            }
            let value = exp
                .iter()
                .fold(0i32, |acc, d| acc * 10 + i32::from(d - b'0'));
            exponent += if exp_negative { -value } else { value };
        }
        Ok(Self {
            negative,
            mantissa,
            exponent,
        })
    }

    /// `|self| * 10^places`, exactly or between two integers; `None` past `u128`.
    pub(crate) fn scaled(self, places: i32) -> Option<Scaled> {
        let shift = self.exponent + places;
        if self.mantissa == 0 {
            return Some(Scaled::Exact(0));
        }
        if shift >= 0 {
            let factor = 10u128.checked_pow(u32::try_from(shift).ok()?)?;
            return self.mantissa.checked_mul(factor).map(Scaled::Exact);
        }
        let divisor_exp = u32::try_from(-shift).ok()?;
        match 10u128.checked_pow(divisor_exp) {
            Some(divisor) if self.mantissa.is_multiple_of(divisor) => {
                Some(Scaled::Exact(self.mantissa / divisor))
            }
            Some(divisor) => Some(Scaled::Inexact {
                floor: self.mantissa / divisor,
            }),
            // 10^divisor_exp exceeds u128, so the mantissa is smaller than it.
            None => Some(Scaled::Inexact { floor: 0 }),
        }
    }
}

/// A signed currency amount for class 0 subclasses 4-7: 20 bits of sign, 5-bit exponent and
/// 14-bit mantissa, in units of 10^-5 of the currency (STS.md section 4).
///
/// Rounding favours the customer: a credit is rounded up in magnitude, a debit (negative
/// amount) down in magnitude, at every step of the encoding.
///
/// ```
/// use sts_core::CurrencyAmount;
/// assert_eq!(CurrencyAmount::parse("1")?.field(), 0x060AA);
/// assert_eq!(CurrencyAmount::parse("-1")?.field(), 0x860A9);
/// assert_eq!(CurrencyAmount::parse("180224")?.field(), 0x1BF4A);
/// # Ok::<(), sts_core::AmountError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CurrencyAmount(u32);

impl CurrencyAmount {
    /// Units per currency unit: the resolution is 10^-5.
    pub const UNITS_PER_CURRENCY_UNIT: u128 = 100_000;

    /// The encoding of a signed count of 10^-5 currency units.
    ///
    /// # Errors
    /// [`AmountError::TooLarge`] when the magnitude needs an exponent above 31.
    pub const fn from_units(units: i128) -> Result<Self, AmountError> {
        let negative = units < 0;
        match encode_magnitude(units.unsigned_abs(), !negative, 31) {
            Some((e, m)) => {
                let sign = if negative && (e > 0 || m > 0) {
                    1u32 << 19
                } else {
                    0
                };
                Ok(Self(sign | (e << 14) | m as u32))
            }
            None => Err(AmountError::TooLarge),
        }
    }

    /// The encoding of a decimal amount in currency units (`"12.50"`, `"-1"`, `"1.82044E+20"`).
    /// Digits beyond 10^-5 are rounded like the encoding: up for credit, down for debit.
    ///
    /// # Errors
    /// Syntax or magnitude.
    pub fn parse(text: &str) -> Result<Self, AmountError> {
        let decimal = Decimal::parse(text)?;
        let magnitude = match decimal.scaled(5).ok_or(AmountError::TooLarge)? {
            Scaled::Exact(v) => v,
            Scaled::Inexact { floor } if decimal.negative => floor,
            Scaled::Inexact { floor } => floor + 1,
        };
        let magnitude = i128::try_from(magnitude).map_err(|_| AmountError::TooLarge)?;
        Self::from_units(if decimal.negative {
            -magnitude
        } else {
            magnitude
        })
    }

    /// The amount from its 20-bit field (higher bits are ignored).
    #[must_use]
    pub const fn from_field(field: u32) -> Self {
        Self(field & 0xF_FFFF)
    }

    /// The 20-bit field: sign, exponent, mantissa.
    #[must_use]
    pub const fn field(self) -> u32 {
        self.0
    }

    /// True for a debit.
    #[must_use]
    pub const fn is_negative(self) -> bool {
        self.0 >> 19 == 1
    }

    /// The signed count of 10^-5 units the field stands for.
    #[must_use]
    pub const fn units(self) -> i128 {
        let magnitude = decode_magnitude((self.0 >> 14) & 0x1F, (self.0 & 0x3FFF) as u16) as i128;
        if self.is_negative() {
            -magnitude
        } else {
            magnitude
        }
    }
}

impl fmt::Display for CurrencyAmount {
    /// The amount in currency units with five decimal places.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = self.units();
        let sign = if units < 0 { "-" } else { "" };
        let magnitude = units.unsigned_abs();
        let per = Self::UNITS_PER_CURRENCY_UNIT;
        write!(f, "{sign}{}.{:05}", magnitude / per, magnitude % per)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_amount_checks_from_the_spec() {
        for (value, field) in [
            (1, 0x0001),
            (16_383, 0x3FFF),
            (16_384, 0x4000),
            (20_000, 0x416A),
            (180_223, 0x8000),
            (180_224, 0x8000),
            (1_818_623, 0xC000),
            (18_201_624, 0xFFFF),
        ] {
            assert_eq!(
                TransferAmount::from_value_ceil(value).map(TransferAmount::field),
                Ok(field),
                "{value}"
            );
        }
        assert_eq!(
            TransferAmount::from_value_ceil(18_201_625),
            Err(AmountError::TooLarge)
        );
        assert_eq!(
            TransferAmount::from_field(0xFFFF).value(),
            TransferAmount::MAX_VALUE
        );
    }

    #[test]
    fn transfer_amount_floor_never_exceeds_the_value() {
        for (value, floor) in [
            (0, 0),
            (1, 1),
            (16_383, 16_383),
            (16_384, 16_384),
            (16_393, 16_384),
            (16_394, 16_394),
            (49_999, 49_994),
            (180_223, 180_214),
            (180_224, 180_224),
            (18_201_624, 18_201_624),
        ] {
            assert_eq!(
                TransferAmount::from_value_floor(value).map(TransferAmount::value),
                Ok(floor),
                "{value}"
            );
        }
        assert_eq!(
            TransferAmount::from_value_floor(18_201_625),
            Err(AmountError::TooLarge)
        );
    }

    #[test]
    fn currency_checks_from_the_spec() {
        for (text, field) in [
            ("1", 0x060AA),
            ("16383", 0x178E3),
            ("16384", 0x178E4),
            ("180224", 0x1BF4A),
            ("-1", 0x860A9),
            ("-180224", 0x9BF49),
            ("-1.82044E+14", 0xBFFFF),
            ("1.82044E+20", 0x58000),
        ] {
            assert_eq!(
                CurrencyAmount::parse(text).map(CurrencyAmount::field),
                Ok(field),
                "{text}"
            );
        }
        assert_eq!(
            CurrencyAmount::parse("1").map(|a| a.to_string()).as_deref(),
            Ok("1.00004")
        );
        assert_eq!(
            CurrencyAmount::parse("-1")
                .map(|a| a.to_string())
                .as_deref(),
            Ok("-0.99994")
        );
        assert_eq!(CurrencyAmount::parse("1e40"), Err(AmountError::TooLarge));
        assert_eq!(CurrencyAmount::parse("1.2.3"), Err(AmountError::Syntax));
        assert_eq!(
            CurrencyAmount::parse("-0").map(CurrencyAmount::field),
            Ok(0)
        );
        // Sub-resolution digits round in the customer's favour.
        assert_eq!(
            CurrencyAmount::parse("0.000001").map(CurrencyAmount::units),
            Ok(1)
        );
        assert_eq!(
            CurrencyAmount::parse("-0.000019").map(CurrencyAmount::units),
            Ok(-1)
        );
    }

    #[test]
    fn fixed_point_parsing() {
        assert_eq!(parse_fixed("12.5", 1), Ok(125));
        assert_eq!(parse_fixed("12", 1), Ok(120));
        assert_eq!(parse_fixed("0.05", 1), Err(AmountError::TooPrecise));
        assert_eq!(parse_fixed("-1", 1), Err(AmountError::Negative));
        assert_eq!(parse_fixed("abc", 1), Err(AmountError::Syntax));
        assert_eq!(parse_fixed("", 1), Err(AmountError::Syntax));
        assert_eq!(parse_fixed("1e3", 0), Ok(1000));
        assert_eq!(parse_fixed("99999999999", 0), Err(AmountError::TooLarge));
    }
}
