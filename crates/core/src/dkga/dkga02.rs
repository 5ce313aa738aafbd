//! DKGA02: `X = PANBlock ^ CONTROLBlock; DK = DES_VK(X) ^ X ^ VK` (STS.md section 6).
//!
//! Verified by the conformance vectors. The vending key is used as given in the final XOR; the
//! published vending keys already have odd parity, so the vectors cannot tell whether real
//! systems parity-adjust it first (STS-detail.md 6.4, an open item).

use des::cipher::{BlockCipherEncrypt, KeyInit};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::{MeterDescription, control_block, pan_block};
use crate::DecoderKey;

/// A DKGA02 vending key with its DES key schedule.
#[derive(Clone, ZeroizeOnDrop)]
pub(crate) struct Dkga02 {
    #[zeroize(skip)] // des::Des wipes itself on drop.
    des: des::Des,
    vk: u64,
}

impl Zeroize for Dkga02 {
    fn zeroize(&mut self) {
        self.vk.zeroize();
    }
}

impl Dkga02 {
    /// `bytes` is 8 bytes long (checked by the caller).
    pub(crate) fn new(bytes: &[u8]) -> Self {
        let mut k = [0u8; 8];
        k.copy_from_slice(&bytes[..8]);
        let des = des::Des::new(&k.into());
        let vk = u64::from_be_bytes(k);
        k.zeroize();
        Self { des, vk }
    }

    pub(crate) fn derive(&self, meter: &MeterDescription) -> DecoderKey {
        let x = pan_block(meter) ^ control_block(meter);
        let mut block = x.to_be_bytes().into();
        self.des.encrypt_block(&mut block);
        let y = u64::from_be_bytes(block.into());
        DecoderKey::from_u64(y ^ x ^ self.vk)
    }
}
