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
