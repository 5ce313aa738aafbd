//! DKGA04: HMAC-SHA-256 over a 160-bit vending key, NIST SP 800-108 style (STS.md section 6).
//!
//! The message is `04 | LV("04") | LV(base date "93"/"14"/"35") | LV(EA "07"/"11") | LV(TI) |
//! 00 | 04 | LV(SGC) | LV(KT) | LV(KRN) | LV(PAN, 18 digits) | L`, where LV is a length byte
//! then ASCII and L the output length in bits as a 32-bit big-endian number (64 or 128). The
//! decoder key is the first 8 (EA07) or 16 (EA11) bytes of the HMAC. Verified by the
//! conformance vectors.
//!
//! For a common key (KT 3) the PAN is used as given: one public source substitutes
//! `600727000000000000`, another does not, and no vector settles it (STS-detail.md 6.6).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::MeterDescription;
use crate::{DecoderKey, EncryptionAlgorithm};

/// Length of the KDF message.
pub const MESSAGE_LEN: usize = 49;

/// A DKGA04 vending key as a keyed HMAC state (wiped on drop by the hmac crate).
#[derive(Clone)]
pub(crate) struct Dkga04(Hmac<Sha256>);

impl Dkga04 {
    pub(crate) fn new(bytes: &[u8]) -> Self {
        // HMAC takes keys of any length: this cannot fail.
        match Hmac::<Sha256>::new_from_slice(bytes) {
            Ok(mac) => Self(mac),
            Err(_) => unreachable!("HMAC accepts every key length"),
        }
    }

    pub(crate) fn derive(&self, meter: &MeterDescription) -> DecoderKey {
        let mut output = self.hmac(&kdf_input(meter));
        let len = output_len(meter.algorithm);
        let key = DecoderKey::from_bytes(&output[..len]);
        zeroize::Zeroize::zeroize(&mut output);
        // The length is 8 or 16, both decoder key lengths.
        key.unwrap_or_else(|_| DecoderKey::from_u64(0))
    }

    /// The full 32-byte HMAC of a message.
    pub(crate) fn hmac(&self, message: &[u8]) -> [u8; 32] {
        let mut mac = self.0.clone();
        mac.update(message);
        mac.finalize().into_bytes().into()
    }
}

const fn output_len(algorithm: EncryptionAlgorithm) -> usize {
    match algorithm {
        EncryptionAlgorithm::Misty1 => 16,
        EncryptionAlgorithm::Sta | EncryptionAlgorithm::Des => 8,
    }
}

/// The KDF message for a meter.
#[must_use]
pub fn kdf_input(meter: &MeterDescription) -> [u8; MESSAGE_LEN] {
    let mut m = [0u8; MESSAGE_LEN];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        m[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    put(&[4, 2, b'0', b'4', 2]);
    put(&meter.base_date.to_digits());
    put(&[2]);
    put(&meter.algorithm.to_digits());
    put(&[2]);
    put(&meter.tariff_index.to_digits());
    put(&[0, 4, 6]);
    put(&meter.supply_group.to_digits());
    put(&[
        1,
        b'0' + meter.key_type.code(),
        1,
        b'0' + meter.key_revision.get(),
        18,
    ]);
    put(meter.pan.as_bytes());
    put(&((output_len(meter.algorithm) * 8) as u32).to_be_bytes());
    m
}

/// The full HMAC-SHA-256 of the KDF message, for checking intermediate values.
///
/// # Security
/// Exports key material (its first bytes are the decoder key).
#[must_use]
pub fn expose_hmac(vending_key: &crate::VendingKey, meter: &MeterDescription) -> [u8; 32] {
    Dkga04::new(vending_key.expose_secret()).hmac(&kdf_input(meter))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BaseDate, KeyDerivationAlgorithm, KeyType, VendingKey};

    #[test]
    fn worked_example_message_and_key() {
        let meter = MeterDescription {
            pan: "600727000000000009".parse().unwrap(),
            supply_group: "201457".parse().unwrap(),
            tariff_index: "01".parse().unwrap(),
            key_revision: "1".parse().unwrap(),
            key_type: KeyType::Unique,
            base_date: BaseDate::Y2014,
            algorithm: EncryptionAlgorithm::Sta,
            derivation: KeyDerivationAlgorithm::Dkga04,
        };
        let expected = "04023034023134023037023031000406323031343537013201311236303037323730303030303030303030303900000040";
        let m = kdf_input(&meter);
        let hex: std::string::String = m.iter().map(|b| std::format!("{b:02x}")).collect();
        assert_eq!(hex, expected);
        let vk = VendingKey::from_hex("ABABABABABABABAB949494949494949401234567").unwrap();
        let dk = super::super::derive_decoder_key(&vk, &meter).unwrap();
        assert_eq!(dk, DecoderKey::from_hex("87F3ECBB2E46B48F").unwrap());
    }
}
