//! DKGA03 (withdrawn in 2018): `X = PANBlock ^ CONTROLBlock; DK = 3DES-EDE2_{VK1,VK2}(X) ^ X`
//! with the 128-bit vending key as two DES keys.
//!
//! **Unverified.** One public source only, no test vectors (STS-detail.md 6.5).

use des::cipher::{BlockCipherEncrypt, KeyInit};

use super::{MeterDescription, control_block, pan_block};
use crate::DecoderKey;

/// A DKGA03 vending key's two-key triple-DES schedule (wiped on drop by the des crate).
#[derive(Clone)]
pub(crate) struct Dkga03(des::TdesEde2);

impl Dkga03 {
    pub(crate) fn new(bytes: &[u8]) -> Self {
        let mut k = [0u8; 16];
        k.copy_from_slice(&bytes[..16]);
        let cipher = des::TdesEde2::new(&k.into());
        zeroize::Zeroize::zeroize(&mut k);
        Self(cipher)
    }

    pub(crate) fn derive(&self, meter: &MeterDescription) -> DecoderKey {
        let x = pan_block(meter) ^ control_block(meter);
        let mut block = x.to_be_bytes().into();
        self.0.encrypt_block(&mut block);
        DecoderKey::from_u64(u64::from_be_bytes(block.into()) ^ x)
    }
}

#[cfg(test)]
mod tests {
    use crate::{
        DecoderKey, KeyDerivationAlgorithm, KeyType, MeterDescription, VendingKey,
        derive_decoder_key,
    };

    fn meter(derivation: KeyDerivationAlgorithm) -> MeterDescription {
        crate::dkga::tests::meter("600727000000000009", KeyType::Unique, derivation)
    }

    /// With both halves equal, EDE2 is single DES, so DKGA03(K|K) = DES_K(X) ^ X, which is
    /// DKGA02(K) ^ K. Checked on the DKGA02 worked example (STS-detail.md 11.1).
    #[test]
    fn equal_halves_reduce_to_dkga02() {
        let doubled = VendingKey::from_hex("ABABABABABABABAB ABABABABABABABAB").unwrap();
        let dk03 = derive_decoder_key(&doubled, &meter(KeyDerivationAlgorithm::Dkga03)).unwrap();
        // E653341F9D5BF36F ^ ABABABABABABABAB
        assert_eq!(dk03, DecoderKey::from_hex("4DF89FB436F058C4").unwrap());
    }

    #[test]
    fn distinct_halves_differ() {
        let vk = VendingKey::from_hex("ABABABABABABABAB 9494949494949494").unwrap();
        let dk03 = derive_decoder_key(&vk, &meter(KeyDerivationAlgorithm::Dkga03)).unwrap();
        assert_ne!(dk03, DecoderKey::from_hex("4DF89FB436F058C4").unwrap());
    }
}
