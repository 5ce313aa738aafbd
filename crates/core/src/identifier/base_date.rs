use core::{fmt, str::FromStr};

use super::{Field, IdentifierError, Problem};
use crate::time::UtcMinute;

/// Base date of the token identifier: TIDs count minutes from 00:00 UTC on 1 January of it.
///
/// Each base date lasts 2^24 minutes (about 31.9 years); STS.md section 3. The base date is
/// never sent in a token: DKGA04 binds it into the decoder key and a key change set with the
/// rollover bit moves a meter to the next one.
#[doc(alias = "BDT")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BaseDate {
    /// 1993-01-01; rolled over on 2024-11-24 at 20:16.
    Y1993,
    /// 2014-01-01; rolls over on 2045-11-24 at 20:16.
    Y2014,
    /// 2035-01-01; rolls over on 2066-11-24 at 20:16.
    Y2035,
}

impl BaseDate {
    /// Every base date, oldest first.
    pub const ALL: [Self; 3] = [Self::Y1993, Self::Y2014, Self::Y2035];

    /// The year.
    #[must_use]
    pub const fn year(self) -> u16 {
        match self {
            Self::Y1993 => 1993,
            Self::Y2014 => 2014,
            Self::Y2035 => 2035,
        }
    }

    /// The two ASCII digits DKGA04 writes (`"93"`, `"14"`, `"35"`).
    #[must_use]
    pub const fn to_digits(self) -> [u8; 2] {
        let yy = (self.year() % 100) as u8;
        [b'0' + yy / 10, b'0' + yy % 10]
    }

    /// The first minute of the base date.
    #[must_use]
    pub const fn start(self) -> UtcMinute {
        UtcMinute::from_days_and_minute(crate::time::days_from_civil(self.year() as i32, 1, 1), 0)
    }

    /// The base date after this one, if any.
    #[must_use]
    pub const fn next(self) -> Option<Self> {
        match self {
            Self::Y1993 => Some(Self::Y2014),
            Self::Y2014 => Some(Self::Y2035),
            Self::Y2035 => None,
        }
    }
}

impl FromStr for BaseDate {
    type Err = IdentifierError;
    /// `1993`, `2014`, `2035`, or their two-digit forms `93`, `14`, `35`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "1993" | "93" => Ok(Self::Y1993),
            "2014" | "14" => Ok(Self::Y2014),
            "2035" | "35" => Ok(Self::Y2035),
            "" => Err(IdentifierError::new(Field::BaseDate, Problem::Empty)),
            _ => Err(IdentifierError::new(Field::BaseDate, Problem::UnknownCode)),
        }
    }
}

impl fmt::Display for BaseDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.year())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_digits() {
        assert_eq!("93".parse::<BaseDate>(), Ok(BaseDate::Y1993));
        assert_eq!("2035".parse::<BaseDate>(), Ok(BaseDate::Y2035));
        assert!("2000".parse::<BaseDate>().is_err());
        assert_eq!(BaseDate::Y2014.to_digits(), *b"14");
        assert_eq!(BaseDate::Y1993.start().to_string(), "1993-01-01 00:00");
    }
}
