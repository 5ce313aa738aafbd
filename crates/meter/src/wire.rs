//! How sts-core's identifiers are saved: as the plain numbers or digits the standard writes,
//! checked again when read. Used as `#[serde(with = "crate::wire")]`.
//!
//! sts-core has no serde dependency; this module keeps it that way.

use core::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};
use sts_core::{
    BaseDate, EncryptionAlgorithm, KeyDerivationAlgorithm, KeyExpiryNumber, KeyRevisionNumber,
    KeyType, MeterPan, SupplyGroupCode, TariffIndex,
};

/// A type saved as a simpler representation.
pub(crate) trait Wire: Sized {
    /// What is written.
    type Repr: Serialize + for<'de> Deserialize<'de>;
    /// To the representation.
    fn to_wire(&self) -> Self::Repr;
    /// From the representation, checked.
    fn from_wire(repr: Self::Repr) -> Result<Self, Invalid>;
}

/// A saved value that does not make a valid identifier.
pub(crate) struct Invalid(&'static str);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}", self.0)
    }
}

pub(crate) fn serialize<T: Wire, S: Serializer>(
    value: &T,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    value.to_wire().serialize(serializer)
}

pub(crate) fn deserialize<'de, T: Wire, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<T, D::Error> {
    T::from_wire(T::Repr::deserialize(deserializer)?).map_err(D::Error::custom)
}

impl<T: Wire> Wire for Option<T> {
    type Repr = Option<T::Repr>;
    fn to_wire(&self) -> Self::Repr {
        self.as_ref().map(T::to_wire)
    }
    fn from_wire(repr: Self::Repr) -> Result<Self, Invalid> {
        repr.map(T::from_wire).transpose()
    }
}

impl Wire for KeyType {
    type Repr = u8;
    fn to_wire(&self) -> u8 {
        self.code()
    }
    fn from_wire(repr: u8) -> Result<Self, Invalid> {
        Self::try_from(repr).map_err(|_| Invalid("key type (0-3)"))
    }
}

impl Wire for KeyRevisionNumber {
    type Repr = u8;
    fn to_wire(&self) -> u8 {
        self.get()
    }
    fn from_wire(repr: u8) -> Result<Self, Invalid> {
        Self::try_from(repr).map_err(|_| Invalid("key revision number (1-9)"))
    }
}

impl Wire for TariffIndex {
    type Repr = u8;
    fn to_wire(&self) -> u8 {
        self.get()
    }
    fn from_wire(repr: u8) -> Result<Self, Invalid> {
        Self::try_from(repr).map_err(|_| Invalid("tariff index (0-99)"))
    }
}

impl Wire for SupplyGroupCode {
    type Repr = u32;
    fn to_wire(&self) -> u32 {
        self.get()
    }
    fn from_wire(repr: u32) -> Result<Self, Invalid> {
        Self::try_from(repr).map_err(|_| Invalid("supply group code (0-999999)"))
    }
}

impl Wire for KeyExpiryNumber {
    type Repr = u8;
    fn to_wire(&self) -> u8 {
        self.get()
    }
    fn from_wire(repr: u8) -> Result<Self, Invalid> {
        Ok(Self::from(repr))
    }
}

impl Wire for BaseDate {
    type Repr = u16;
    fn to_wire(&self) -> u16 {
        self.year()
    }
    fn from_wire(repr: u16) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|b| b.year() == repr)
            .ok_or(Invalid("base date (1993, 2014 or 2035)"))
    }
}

impl Wire for EncryptionAlgorithm {
    type Repr = u8;
    fn to_wire(&self) -> u8 {
        self.code()
    }
    fn from_wire(repr: u8) -> Result<Self, Invalid> {
        [Self::Sta, Self::Des, Self::Misty1]
            .into_iter()
            .find(|a| a.code() == repr)
            .ok_or(Invalid("encryption algorithm (7, 9 or 11)"))
    }
}

impl Wire for KeyDerivationAlgorithm {
    type Repr = u8;
    fn to_wire(&self) -> u8 {
        self.code()
    }
    fn from_wire(repr: u8) -> Result<Self, Invalid> {
        [Self::Dkga01, Self::Dkga02, Self::Dkga03, Self::Dkga04]
            .into_iter()
            .find(|a| a.code() == repr)
            .ok_or(Invalid("key derivation algorithm (1-4)"))
    }
}

impl Wire for MeterPan {
    type Repr = PanText;
    fn to_wire(&self) -> PanText {
        PanText(*self.as_bytes())
    }
    fn from_wire(repr: PanText) -> Result<Self, Invalid> {
        core::str::from_utf8(&repr.0)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(Invalid("meter PAN"))
    }
}

/// A PAN as its 18 digits, written as a string (no allocation when read).
pub(crate) struct PanText([u8; 18]);

impl Serialize for PanText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(core::str::from_utf8(&self.0).map_err(serde::ser::Error::custom)?)
    }
}

impl<'de> Deserialize<'de> for PanText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = PanText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an 18-digit meter PAN")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PanText, E> {
                let bytes: [u8; 18] = v
                    .as_bytes()
                    .try_into()
                    .map_err(|_| E::custom("a meter PAN has 18 digits"))?;
                Ok(PanText(bytes))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}
