//! What the meter knows about its decoder key, apart from the key itself.

use sts_core::{
    BaseDate, EncryptionAlgorithm, KeyDerivationAlgorithm, KeyExpiryNumber, KeyRevisionNumber,
    KeyType, MeterDescription, MeterPan, SupplyGroupCode, TariffIndex,
};

/// The public attributes of the meter's decoder key: the registers a key change sets (KT, KRN,
/// TI, KEN and, with a 3- or 4-token set, SGC), the base date its TIDs count from, and the
/// algorithms it serves (STS.md 1, 3 and 5; STS-detail.md 9.3).
///
/// The key bytes are secret and live in [`crate::MeterSecrets`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct KeyAttributes {
    /// Key type (KT): 0 DITK, 1 DDTK, 2 DUTK, 3 DCTK.
    #[cfg_attr(feature = "serde", serde(with = "crate::wire"))]
    pub key_type: KeyType,
    /// Key revision number (KRN).
    #[cfg_attr(feature = "serde", serde(with = "crate::wire"))]
    pub key_revision: KeyRevisionNumber,
    /// Tariff index (TI).
    #[cfg_attr(feature = "serde", serde(with = "crate::wire"))]
    pub tariff_index: TariffIndex,
    /// Supply group code (SGC). A 2-token key change does not carry it and leaves it as it
    /// was (one FAQ says such meters show 0 after a rollover; this meter keeps the old value).
    #[cfg_attr(feature = "serde", serde(with = "crate::wire"))]
    pub supply_group: SupplyGroupCode,
    /// Key expiry number (KEN): tokens with `TID >> 16 > KEN` are refused.
    #[cfg_attr(feature = "serde", serde(with = "crate::wire"))]
    pub expiry: KeyExpiryNumber,
    /// The base date TIDs count from; moved on by a rollover key change (RO = 1).
    #[cfg_attr(feature = "serde", serde(with = "crate::wire"))]
    pub base_date: BaseDate,
    /// Encryption algorithm (EA): fixes the key length (8 bytes EA07/EA09, 16 bytes EA11).
    #[cfg_attr(feature = "serde", serde(with = "crate::wire"))]
    pub algorithm: EncryptionAlgorithm,
    /// Decoder key generation algorithm (DKGA) the vending side uses for this meter. The meter
    /// derives nothing; it is recorded so the key can be re-derived and shown.
    #[cfg_attr(feature = "serde", serde(with = "crate::wire"))]
    pub derivation: KeyDerivationAlgorithm,
}

impl KeyAttributes {
    /// The attributes of the key derived for `meter`, with expiry number `expiry`.
    #[must_use]
    pub const fn from_description(meter: &MeterDescription, expiry: KeyExpiryNumber) -> Self {
        Self {
            key_type: meter.key_type,
            key_revision: meter.key_revision,
            tariff_index: meter.tariff_index,
            supply_group: meter.supply_group,
            expiry,
            base_date: meter.base_date,
            algorithm: meter.algorithm,
            derivation: meter.derivation,
        }
    }

    /// The key derivation inputs for the meter with this PAN: what a vending system needs to
    /// derive the same key.
    #[must_use]
    pub const fn description(&self, pan: MeterPan) -> MeterDescription {
        MeterDescription {
            pan,
            supply_group: self.supply_group,
            tariff_index: self.tariff_index,
            key_revision: self.key_revision,
            key_type: self.key_type,
            base_date: self.base_date,
            algorithm: self.algorithm,
            derivation: self.derivation,
        }
    }

    /// True for a 128-bit (EA11) key, changed by 4-token sets.
    #[must_use]
    pub const fn is_wide(&self) -> bool {
        matches!(self.algorithm, EncryptionAlgorithm::Misty1)
    }
}
