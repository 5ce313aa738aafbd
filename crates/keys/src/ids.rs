//! Identifiers the KMC issues: owners, vending key records and security modules.

use std::{fmt, str::FromStr};

/// An identifier that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Not a positive decimal number.
    #[error("{0} must be a positive decimal number")]
    NotANumber(&'static str),
    /// A security module ID must be 1 to 32 characters of `A-Z a-z 0-9 . _ -`.
    #[error("a security module ID is 1 to 32 characters of A-Z, a-z, 0-9, '.', '_' and '-'")]
    SecurityModule,
}

macro_rules! numeric_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(i64);

        impl $name {
            /// The number.
            #[must_use]
            pub const fn get(self) -> i64 {
                self.0
            }

            pub(crate) const fn from_db(value: i64) -> Self {
                Self(value)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.trim().parse::<i64>() {
                    Ok(v) if v > 0 && s.trim().bytes().all(|b| b.is_ascii_digit()) => Ok(Self(v)),
                    _ => Err(IdError::NotANumber($what)),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

numeric_id!(
    /// An SGC owner registered with the KMC.
    OwnerId, "an owner ID"
);
numeric_id!(
    /// A vending key record at the KMC (one per key revision).
    KeyId, "a key ID"
);

/// A security module's identity: the address of its keyload files.
///
/// Shared, not copied, by every token the module issues (a clone is a reference count).
#[doc(alias = "SM ID")]
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecurityModuleId(std::sync::Arc<str>);

impl SecurityModuleId {
    /// The ID as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for SecurityModuleId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = (1..=32).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(s.into()))
        } else {
            Err(IdError::SecurityModule)
        }
    }
}

impl fmt::Display for SecurityModuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ids() {
        assert_eq!("12".parse::<OwnerId>().unwrap().get(), 12);
        assert!("0".parse::<OwnerId>().is_err());
        assert!("-3".parse::<KeyId>().is_err());
        assert!("SM-0001".parse::<SecurityModuleId>().is_ok());
        assert!("".parse::<SecurityModuleId>().is_err());
        assert!("SM 1".parse::<SecurityModuleId>().is_err());
        assert!("a\nb".parse::<SecurityModuleId>().is_err());
        assert!("x".repeat(33).parse::<SecurityModuleId>().is_err());
    }
}
