//! DKGA01 (legacy): `X = PANBlock ^ CONTROLBlock; DK = DES_X(VK') ^ VK'` with VK' the vending
//! key adjusted to odd parity - X is the DES key here.
//!
//! **Unverified.** One public source only (a port of a commercial security module), no test
//! vectors (STS-detail.md 6.3). The IEC text limits DKGA01 to early meters with IIN 600727,
//! KRN 1 and EA07 (and, for key types 1 and 2, DRNs in the ranges of its Table 38, for key type
//! 3 the SGCs of its Table 39); this implementation enforces the IIN, KRN and EA conditions and
//! not the tables.

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::{DeriveError, MeterDescription, control_block, pan_block};
use crate::{DecoderKey, EncryptionAlgorithm, IssuerIdentificationNumber, cipher::des_encrypt};

/// A DKGA01 vending key, parity-adjusted.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct Dkga01 {
    vk: [u8; 8],
}

/// Sets bit 0 of each byte so that every byte has odd parity (FIPS 46-3 key parity).
pub(crate) fn odd_parity(mut key: [u8; 8]) -> [u8; 8] {
    for b in &mut key {
        *b = (*b & 0xFE) | u8::from((*b & 0xFE).count_ones() % 2 == 0);
    }
    key
}

impl Dkga01 {
    pub(crate) fn new(bytes: &[u8]) -> Self {
        let mut k = [0u8; 8];
        k.copy_from_slice(&bytes[..8]);
        let vk = odd_parity(k);
        k.zeroize();
        Self { vk }
    }

    /// DKGA01 is defined for IIN 600727 meters at KRN 1 with EA07 only.
    pub(crate) fn applies(meter: &MeterDescription) -> bool {
        meter.pan.iin() == IssuerIdentificationNumber::Sts600727
            && meter.key_revision.get() == 1
            && meter.algorithm == EncryptionAlgorithm::Sta
    }

    pub(crate) fn derive(&self, meter: &MeterDescription) -> Result<DecoderKey, DeriveError> {
        if !Self::applies(meter) {
            return Err(DeriveError::NotApplicable);
        }
        let mut x = (pan_block(meter) ^ control_block(meter)).to_be_bytes();
        let vk = u64::from_be_bytes(self.vk);
        let dk = des_encrypt(&x, vk) ^ vk;
        x.zeroize();
        Ok(DecoderKey::from_u64(dk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parity() {
        assert_eq!(
            odd_parity([0x00, 0x01, 0xFE, 0xAB, 0x94, 0x02, 0x03, 0x80]),
            [0x01, 0x01, 0xFE, 0xAB, 0x94, 0x02, 0x02, 0x80]
        );
    }
}

#[cfg(test)]
mod derive_tests {
    use super::*;
    use crate::{KeyDerivationAlgorithm, KeyType, VendingKey, derive_decoder_key};

    fn meter() -> MeterDescription {
        crate::dkga::tests::meter(
            "600727000000000009",
            KeyType::Unique,
            KeyDerivationAlgorithm::Dkga01,
        )
    }

    /// The roles are swapped against DKGA02: X (PANBlock ^ CONTROLBlock = 2151356011FFFFFF for
    /// the worked example) is the DES key and the parity-adjusted vending key the data.
    #[test]
    fn follows_the_published_description() {
        let vk = VendingKey::from_hex("ABABABABABABABAB").unwrap();
        let dk = derive_decoder_key(&vk, &meter()).unwrap();
        let x = 0x2151_3560_11FF_FFFFu64.to_be_bytes();
        let expected = des_encrypt(&x, 0xABAB_ABAB_ABAB_ABAB) ^ 0xABAB_ABAB_ABAB_ABAB;
        assert_eq!(dk, DecoderKey::from_u64(expected));
        assert_ne!(
            dk,
            DecoderKey::from_hex("E653341F9D5BF36F").unwrap(),
            "must differ from DKGA02"
        );
        // A vending key with a parity error gives the same key: the parity bits are fixed first.
        let even = VendingKey::from_hex("AAABABABABABABAB").unwrap();
        assert_eq!(derive_decoder_key(&even, &meter()).unwrap(), dk);
    }

    #[test]
    fn applies_only_to_early_meters() {
        let vk = VendingKey::from_hex("ABABABABABABABAB").unwrap();
        let mut m = meter();
        m.key_revision = "2".parse().unwrap();
        assert_eq!(derive_decoder_key(&vk, &m), Err(DeriveError::NotApplicable));
        let mut m = meter();
        m.pan = "000001000000000082".parse().unwrap();
        assert_eq!(derive_decoder_key(&vk, &m), Err(DeriveError::NotApplicable));
        let mut m = meter();
        m.algorithm = EncryptionAlgorithm::Des;
        assert_eq!(derive_decoder_key(&vk, &m), Err(DeriveError::NotApplicable));
    }
}
