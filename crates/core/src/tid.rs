//! Token identifier (TID): minutes since the base date, 24 bits (STS.md section 3).

use core::fmt;

use crate::{BaseDate, KeyExpiryNumber, time::UtcMinute};

/// A 24-bit token identifier: whole minutes from the base date to the token's issue time.
///
/// ```
/// use sts_core::{BaseDate, TokenIdentifier, UtcMinute};
/// let t: UtcMinute = "2004-03-01 13:55".parse()?;
/// assert_eq!(TokenIdentifier::issue(t, BaseDate::Y1993)?.get(), 5_871_715);
/// // The minute 00:01 is reserved: a token issued then carries the TID of 00:02.
/// let t: UtcMinute = "2004-03-29 00:01".parse()?;
/// assert_eq!(TokenIdentifier::issue(t, BaseDate::Y1993)?.get(), 5_911_202);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(alias = "TID")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenIdentifier(u32);

/// A time that has no TID under the base date.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TidError {
    /// The time is before the base date.
    BeforeBaseDate,
    /// The time is after the last minute of the base date (2^24 minutes later): the meter needs
    /// a rollover key change to a later base date.
    AfterRollover,
    /// A raw TID does not fit in 24 bits.
    TooLarge,
}

impl fmt::Display for TidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BeforeBaseDate => "the time is before the meter's base date",
            Self::AfterRollover => {
                "the time is after the base date's last minute: the meter needs a rollover key change"
            }
            Self::TooLarge => "a token identifier has 24 bits (at most 16777215)",
        })
    }
}

impl core::error::Error for TidError {}

impl TokenIdentifier {
    /// The largest TID, 2^24 - 1.
    pub const MAX: u32 = (1 << 24) - 1;

    /// The TID for a token issued at `time` under `base`, with the reserved-minute rule.
    ///
    /// A TID whose minute of day is 1 (00:01) is never issued: it becomes the next minute, as
    /// both transcriptions of conformance test CTSA09 do (STS.md section 3; the normative text
    /// has not been seen). Issuing several tokens for one meter in one minute needs successive
    /// TIDs: see [`TokenIdentifier::next_after`].
    ///
    /// # Errors
    /// The time is before the base date or past its 2^24th minute.
    pub const fn issue(time: UtcMinute, base: BaseDate) -> Result<Self, TidError> {
        let minutes = time.unix_minutes() - base.start().unix_minutes();
        if minutes < 0 {
            return Err(TidError::BeforeBaseDate);
        }
        let minutes = Self::skip_reserved(minutes);
        if minutes > Self::MAX as i64 {
            return Err(TidError::AfterRollover);
        }
        Ok(Self(minutes as u32))
    }

    const fn skip_reserved(minutes: i64) -> i64 {
        if minutes % UtcMinute::MINUTES_PER_DAY == 1 {
            minutes + 1
        } else {
            minutes
        }
    }

    /// The TID for issuing at `time` to a meter whose last issued TID is `last`: the TID of
    /// `time`, or the first non-reserved TID after `last` when that is not later.
    ///
    /// This is how a vending system keeps a meter's TIDs strictly increasing when it issues
    /// several tokens in one minute (CTSA09: 00:03, 00:04, 00:05).
    ///
    /// # Errors
    /// As [`TokenIdentifier::issue`]; also when the TIDs after `last` are used up.
    pub const fn next_after(
        time: UtcMinute,
        base: BaseDate,
        last: Option<Self>,
    ) -> Result<Self, TidError> {
        let now = match Self::issue(time, base) {
            Ok(tid) => tid,
            Err(e) => return Err(e),
        };
        match last {
            Some(last) if last.0 >= now.0 => {
                let next = Self::skip_reserved(last.0 as i64 + 1);
                if next > Self::MAX as i64 {
                    return Err(TidError::AfterRollover);
                }
                Ok(Self(next as u32))
            }
            _ => Ok(now),
        }
    }

    /// A TID from its raw 24-bit value (no reserved-minute adjustment).
    ///
    /// # Errors
    /// [`TidError::TooLarge`] above 2^24 - 1.
    pub const fn from_raw(value: u32) -> Result<Self, TidError> {
        if value > Self::MAX {
            return Err(TidError::TooLarge);
        }
        Ok(Self(value))
    }

    pub(crate) const fn from_bits(bits: u64) -> Self {
        Self((bits & Self::MAX as u64) as u32)
    }

    /// The TID as a number.
    #[must_use]
    pub const fn get(self) -> u32 {
        self.0
    }

    /// The minute this TID stands for under `base`.
    #[must_use]
    pub const fn to_time(self, base: BaseDate) -> UtcMinute {
        base.start().add_minutes(self.0 as i64)
    }

    /// True when a key with expiry number `ken` may not issue (and a meter must refuse) a token
    /// with this TID: `TID >> 16 > KEN` (STS.md section 3).
    #[must_use]
    pub const fn is_expired_under(self, ken: KeyExpiryNumber) -> bool {
        (self.0 >> 16) > ken.get() as u32
    }
}

impl fmt::Display for TokenIdentifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> UtcMinute {
        s.parse().unwrap()
    }

    #[test]
    fn spec_examples() {
        assert_eq!(
            TokenIdentifier::issue(t("1996-03-25 13:55"), BaseDate::Y1993)
                .unwrap()
                .get(),
            1_698_595
        );
        assert_eq!(
            TokenIdentifier::issue(t("2014-03-01 13:00"), BaseDate::Y2014)
                .unwrap()
                .get(),
            85_740
        );
        assert_eq!(
            TokenIdentifier::issue(t("2026-07-29 00:01"), BaseDate::Y2014)
                .unwrap()
                .get(),
            6_612_482
        );
    }

    #[test]
    fn rollover_boundaries() {
        let last = TokenIdentifier::issue(t("2024-11-24 20:15"), BaseDate::Y1993).unwrap();
        assert_eq!(last.get(), TokenIdentifier::MAX);
        assert_eq!(
            TokenIdentifier::issue(t("2024-11-24 20:16"), BaseDate::Y1993),
            Err(TidError::AfterRollover)
        );
        assert_eq!(
            TokenIdentifier::issue(t("2013-12-31 23:59"), BaseDate::Y2014),
            Err(TidError::BeforeBaseDate)
        );
        assert_eq!(
            TokenIdentifier::issue(t("2045-11-24 20:15"), BaseDate::Y2014)
                .unwrap()
                .get(),
            TokenIdentifier::MAX
        );
    }

    #[test]
    fn same_minute_gets_successive_tids() {
        let now = t("2004-03-29 00:03");
        let a = TokenIdentifier::next_after(now, BaseDate::Y1993, None).unwrap();
        let b = TokenIdentifier::next_after(now, BaseDate::Y1993, Some(a)).unwrap();
        let c = TokenIdentifier::next_after(now, BaseDate::Y1993, Some(b)).unwrap();
        assert_eq!((b.get() - a.get(), c.get() - b.get()), (1, 1));
        // Successors skip the reserved minute too.
        let midnight = TokenIdentifier::issue(t("2004-03-29 00:00"), BaseDate::Y1993).unwrap();
        let next =
            TokenIdentifier::next_after(t("2004-03-29 00:00"), BaseDate::Y1993, Some(midnight))
                .unwrap();
        assert_eq!(next.get(), midnight.get() + 2);
    }

    #[test]
    fn key_expiry_boundary() {
        let ken = KeyExpiryNumber::from(85);
        assert!(
            !TokenIdentifier::from_raw((85 << 16) | 0xFFFF)
                .unwrap()
                .is_expired_under(ken)
        );
        assert!(
            TokenIdentifier::from_raw(86 << 16)
                .unwrap()
                .is_expired_under(ken)
        );
        assert!(
            !TokenIdentifier::from_raw(TokenIdentifier::MAX)
                .unwrap()
                .is_expired_under(KeyExpiryNumber::NEVER)
        );
        // CTSA16: 2004-04-01 09:30 under KEN 85 must be refused.
        assert!(
            TokenIdentifier::issue(t("2004-04-01 09:30"), BaseDate::Y1993)
                .unwrap()
                .is_expired_under(ken)
        );
    }
}
