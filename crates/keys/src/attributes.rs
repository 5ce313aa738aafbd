//! What the KMC and the security module know about a vending key besides its bytes.

use std::{fmt, str::FromStr};

use sts_core::{
    BaseDate, KeyDerivationAlgorithm, KeyExpiryNumber, KeyRevisionNumber, KeyType, SupplyGroupCode,
    UtcMinute,
};

/// The kind of vending key: which decoder key type it derives (STS.md section 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VendingKeyType {
    /// VDDK: derives default keys (DDTK, KT 1); key changes and management only, no credit.
    #[doc(alias = "VDDK")]
    Default,
    /// VUDK: derives unique keys (DUTK, KT 2).
    #[doc(alias = "VUDK")]
    Unique,
    /// VCDK: derives common keys (DCTK, KT 3).
    #[doc(alias = "VCDK")]
    Common,
}

impl VendingKeyType {
    /// The decoder key type the vending key derives.
    #[must_use]
    pub const fn decoder_key_type(self) -> KeyType {
        match self {
            Self::Default => KeyType::Default,
            Self::Unique => KeyType::Unique,
            Self::Common => KeyType::Common,
        }
    }

    /// The vending key type that derives `key_type`; none for DITK (KT 0).
    #[must_use]
    pub const fn for_decoder_key_type(key_type: KeyType) -> Option<Self> {
        match key_type {
            KeyType::Initialization => None,
            KeyType::Default => Some(Self::Default),
            KeyType::Unique => Some(Self::Unique),
            KeyType::Common => Some(Self::Common),
        }
    }

    /// `VDDK`, `VUDK` or `VCDK`.
    #[must_use]
    pub const fn abbreviation(self) -> &'static str {
        match self {
            Self::Default => "VDDK",
            Self::Unique => "VUDK",
            Self::Common => "VCDK",
        }
    }
}

/// Not a vending key type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a vending key type is VDDK, VUDK or VCDK")]
pub struct VendingKeyTypeError;

impl FromStr for VendingKeyType {
    type Err = VendingKeyTypeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Default, Self::Unique, Self::Common]
            .into_iter()
            .find(|t| s.eq_ignore_ascii_case(t.abbreviation()))
            .ok_or(VendingKeyTypeError)
    }
}

impl fmt::Display for VendingKeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.abbreviation())
    }
}

/// The most credit a security module may issue under one vending key, in credit units.
///
/// A project decision (the public record names the attribute, CLM, but not how it counts): the
/// limit is **cumulative per key and per security module**. Each credit token adds its amount:
/// a transfer credit its value in tenths of the service unit (`TransferAmount::value`), a
/// currency credit its amount in 10^-5 currency units (`CurrencyAmount::units`; debits add
/// nothing). A token that would take the total past the limit is refused. [`CreditLimit::NONE`]
/// means no limit.
#[doc(alias = "CLM")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CreditLimit(u64);

impl CreditLimit {
    /// No limit.
    pub const NONE: Self = Self(u64::MAX);

    /// A limit of `units` credit units.
    #[must_use]
    pub const fn new(units: u64) -> Self {
        Self(units)
    }

    /// The limit in credit units.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }
}

/// The attributes of a vending key (STS-detail.md section 10: ACT, BDT, CLM, EXP, IUT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyAttributes {
    /// The supply group the key serves.
    pub supply_group: SupplyGroupCode,
    /// VDDK, VUDK or VCDK.
    pub key_type: VendingKeyType,
    /// DKGA02 (64-bit DES key) or DKGA04 (160-bit key).
    pub derivation: KeyDerivationAlgorithm,
    /// KRN, 1-9: a new revision of a key has a higher one.
    pub key_revision: KeyRevisionNumber,
    /// KEN: the security module refuses tokens whose `TID >> 16` exceeds it (CTSA16), and
    /// key change tokens carry it.
    pub key_expiry: KeyExpiryNumber,
    /// BDT: the base date of the meters the key serves (an input of DKGA04).
    pub base_date: BaseDate,
    /// ACT: no token before this minute.
    pub activation: UtcMinute,
    /// EXP: the KMC issues no keyload file with this key from this minute.
    pub expiry: UtcMinute,
    /// IUT: the security module issues no token with this key from this minute.
    pub issued_until: UtcMinute,
    /// CLM.
    pub credit_limit: CreditLimit,
}
