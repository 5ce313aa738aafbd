//! Exact decimal arithmetic for prices and money: integers scaled by a power of ten, never a
//! float.
//!
//! A [`Decimal`] is a non-negative `mantissa * 10^-scale` with at most [`MAX_SCALE`] decimal
//! places and [`MAX_DIGITS`] significant digits, so that the products a sale needs (money times
//! ten, units times price) fit in a `u128` with room to spare. No crate is needed for this:
//! a sale multiplies, divides rounding down, and subtracts, each exact on integers.

use std::{cmp::Ordering, fmt};

/// The most decimal places of any amount (prices have at most six).
pub(crate) const MAX_SCALE: u32 = 9;

/// The most digits of a decimal as parsed: far below what `u128` holds (38 digits) after the
/// scaling and multiplications of a sale.
pub(crate) const MAX_DIGITS: usize = 18;

/// The bound of any mantissa, parsed or computed (a sale's cost, up to 18 201 624 tenths
/// times an 18-digit price, stays below it): rescaled by up to `10^MAX_SCALE` it still fits
/// in a `u128` (below `3.4 * 10^38`).
const MAX_MANTISSA: u128 = 10u128.pow(27);

/// An exact non-negative decimal number: `mantissa * 10^-scale`.
///
/// Two decimals with the same value may differ in scale (`2.50` and `2.5`); [`PartialEq`]
/// and [`Ord`] compare values.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Decimal {
    mantissa: u128,
    scale: u32,
}

/// Why a decimal does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecimalError {
    /// Not of the form `123` or `123.45`.
    Syntax,
    /// A minus sign.
    Negative,
    /// More decimal places than allowed.
    TooPrecise(u32),
    /// More digits than [`MAX_DIGITS`].
    TooLarge,
}

impl fmt::Display for DecimalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax => f.write_str(
                "not a decimal number (digits, optionally a point and more digits, e.g. 12.50)",
            ),
            Self::Negative => f.write_str("must not be negative"),
            Self::TooPrecise(0) => f.write_str("must be a whole number (no decimal places)"),
            Self::TooPrecise(1) => f.write_str("at most 1 decimal place"),
            Self::TooPrecise(n) => write!(f, "at most {n} decimal places"),
            Self::TooLarge => write!(f, "too large (at most {MAX_DIGITS} digits)"),
        }
    }
}

fn pow10(n: u32) -> u128 {
    10u128.pow(n)
}

impl Decimal {
    /// `mantissa * 10^-scale`.
    ///
    /// # Errors
    /// [`DecimalError::TooPrecise`] above [`MAX_SCALE`]; [`DecimalError::TooLarge`] for a
    /// mantissa of more than 27 digits.
    pub(crate) fn new(mantissa: u128, scale: u32) -> Result<Self, DecimalError> {
        if scale > MAX_SCALE {
            return Err(DecimalError::TooPrecise(MAX_SCALE));
        }
        if mantissa >= MAX_MANTISSA {
            return Err(DecimalError::TooLarge);
        }
        Ok(Self { mantissa, scale })
    }

    /// Parses `123` or `123.45` (ASCII digits, at most one point with digits on both sides,
    /// no sign, exponent or spaces inside) with at most `max_places` decimal places.
    ///
    /// # Errors
    /// [`DecimalError`].
    pub(crate) fn parse(text: &str, max_places: u32) -> Result<Self, DecimalError> {
        let text = text.trim();
        if text.starts_with('-') {
            return Err(DecimalError::Negative);
        }
        let (whole, fraction) = match text.split_once('.') {
            Some((w, f)) => (w, f),
            None => (text, ""),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || (text.contains('.') && !digits(fraction)) {
            return Err(DecimalError::Syntax);
        }
        // Trailing zeros of the fraction carry no value: "2.50" has two places as written,
        // but a limit of one place accepts it.
        let significant = fraction.trim_end_matches('0');
        let limit = max_places.min(MAX_SCALE);
        if u32::try_from(significant.len()).map_or(true, |n| n > limit) {
            return Err(DecimalError::TooPrecise(limit));
        }
        let fraction = if fraction.len() as u32 > limit {
            significant
        } else {
            fraction
        };
        let whole = whole.trim_start_matches('0');
        if whole.len() + fraction.len() > MAX_DIGITS {
            return Err(DecimalError::TooLarge);
        }
        let mut mantissa: u128 = 0;
        for b in whole.bytes().chain(fraction.bytes()) {
            mantissa = mantissa * 10 + u128::from(b - b'0');
        }
        Self::new(mantissa, fraction.len() as u32)
    }

    /// True for zero.
    pub(crate) fn is_zero(self) -> bool {
        self.mantissa == 0
    }

    /// The mantissa at `scale` decimal places: exact, or `None` when the value has more
    /// places than that (or would overflow).
    pub(crate) fn at_scale(self, scale: u32) -> Option<u128> {
        match scale.cmp(&self.scale) {
            Ordering::Equal => Some(self.mantissa),
            Ordering::Greater => self.mantissa.checked_mul(pow10(scale - self.scale)),
            Ordering::Less => {
                let d = pow10(self.scale - scale);
                self.mantissa.is_multiple_of(d).then(|| self.mantissa / d)
            }
        }
    }

    /// The mantissa and scale.
    pub(crate) fn parts(self) -> (u128, u32) {
        (self.mantissa, self.scale)
    }

    /// The same value with no trailing zeros in the fraction (`2.50` -> `2.5`, `100.00` -> `100`).
    #[must_use]
    pub(crate) fn normalized(self) -> Self {
        let mut d = self;
        while d.scale > 0 && d.mantissa.is_multiple_of(10) {
            d.mantissa /= 10;
            d.scale -= 1;
        }
        d
    }

    /// The value written with at least `places` decimal places (more when it has more):
    /// `99.86152` with 2 stays `99.86152`, `100` with 2 is `100.00`.
    pub(crate) fn with_places(self, places: u32) -> String {
        let d = self.normalized();
        let scale = d.scale.max(places);
        let mantissa = d.mantissa * pow10(scale - d.scale);
        write_fixed(mantissa, scale)
    }

    /// `self - other`, or `None` when negative.
    pub(crate) fn checked_sub(self, other: Self) -> Option<Self> {
        let scale = self.scale.max(other.scale);
        let a = self.at_scale(scale)?;
        let b = other.at_scale(scale)?;
        Some(Self {
            mantissa: a.checked_sub(b)?,
            scale,
        })
    }
}

/// `mantissa` as a decimal with `scale` places.
pub(crate) fn write_fixed(mantissa: u128, scale: u32) -> String {
    let digits = mantissa.to_string();
    if scale == 0 {
        return digits;
    }
    let scale = scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    format!("{whole}.{fraction}")
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Decimal {}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        // Both mantissas are below 10^27 and scales at most 9: the rescaled values fit.
        let scale = self.scale.max(other.scale);
        let a = self.mantissa * pow10(scale - self.scale);
        let b = other.mantissa * pow10(scale - other.scale);
        a.cmp(&b)
    }
}

impl fmt::Display for Decimal {
    /// As stored: with its own number of decimal places.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&write_fixed(self.mantissa, self.scale))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        Decimal::parse(text, MAX_SCALE).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn parses_what_it_writes() {
        for text in ["0", "1", "2.4536", "100.00", "0.001", "123456789012.345678"] {
            assert_eq!(d(text).to_string(), text);
        }
        assert_eq!(d("007.50").to_string(), "7.50");
        assert_eq!(d(" 2.5 ").to_string(), "2.5");
    }

    #[test]
    fn refuses_what_is_not_a_plain_decimal() {
        for text in [
            "", ".", "1.", ".5", "1e3", "1,5", "+1", "1 000", "0x10", "1.2.3", "١٢",
        ] {
            assert_eq!(
                Decimal::parse(text, 6),
                Err(DecimalError::Syntax),
                "{text:?}"
            );
        }
        assert_eq!(Decimal::parse("-1", 6), Err(DecimalError::Negative));
        assert_eq!(Decimal::parse("-0.5", 6), Err(DecimalError::Negative));
        assert_eq!(Decimal::parse("1.001", 2), Err(DecimalError::TooPrecise(2)));
        assert_eq!(
            Decimal::parse("1234567890123456789", 2),
            Err(DecimalError::TooLarge)
        );
        assert_eq!(
            Decimal::parse(&"9".repeat(100), 2),
            Err(DecimalError::TooLarge)
        );
    }

    #[test]
    fn trailing_zeros_do_not_count_against_the_places() {
        assert_eq!(
            Decimal::parse("2.500", 1).map(|d| d.to_string()),
            Ok("2.5".into())
        );
        assert_eq!(
            Decimal::parse("100.00", 0).map(|d| d.to_string()),
            Ok("100".into())
        );
    }

    #[test]
    fn compares_values_not_spellings() {
        assert_eq!(d("2.50"), d("2.5"));
        assert!(d("2.4536") < d("2.5"));
        assert!(d("10") > d("9.999999"));
        assert_eq!(d("100.00").normalized().to_string(), "100");
    }

    #[test]
    fn writes_at_least_the_places_asked() {
        assert_eq!(d("100").with_places(2), "100.00");
        assert_eq!(d("99.86152").with_places(2), "99.86152");
        assert_eq!(d("0.1").with_places(2), "0.10");
        assert_eq!(d("0.0005").with_places(0), "0.0005");
        assert_eq!(write_fixed(5, 3), "0.005");
    }

    #[test]
    fn subtracts_exactly() {
        assert_eq!(
            d("100.00")
                .checked_sub(d("99.86152"))
                .map(|r| r.to_string()),
            Some("0.13848".into())
        );
        assert_eq!(d("1").checked_sub(d("1.01")), None);
    }
}
