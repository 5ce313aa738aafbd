//! Vending key generation and key check values.
//!
//! Keys come from the operating system's CSPRNG. A 64-bit DES key (DKGA02) gets odd parity in
//! every byte and is drawn again if it is one of the 64 weak, semi-weak or possibly weak DES keys
//! (`des::weak_key_test`). A 160-bit DKGA04 key is 20 random bytes.

use std::fmt;

use des::cipher::{BlockCipherEncrypt, KeyInit};
use sha2::{Digest, Sha256};
use sts_core::{KeyDerivationAlgorithm, VendingKey};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use crate::random::{self, RandomError};

/// A vending key that cannot be generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GenerateError {
    /// Only DKGA02 (64-bit DES) and DKGA04 (160-bit) keys are issued; DKGA01 is legacy and
    /// DKGA03 was withdrawn in 2018.
    #[error("the KMC issues vending keys for DKGA02 and DKGA04 only, not DKGA{0}")]
    Unsupported(KeyDerivationAlgorithm),
    /// The OS CSPRNG failed.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// A 64-bit DES key that must not be a vending key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DesKeyError {
    /// A byte has even parity.
    #[error("a DES key byte has even parity")]
    Parity,
    /// A weak, semi-weak or possibly weak DES key.
    #[error("a weak or semi-weak DES key")]
    Weak,
}

/// Generates a vending key for `derivation` from the OS CSPRNG.
///
/// # Errors
/// [`GenerateError::Unsupported`] for DKGA01 and DKGA03; [`GenerateError::Random`] when the OS
/// CSPRNG fails.
pub fn generate_vending_key(
    derivation: KeyDerivationAlgorithm,
) -> Result<VendingKey, GenerateError> {
    match derivation {
        KeyDerivationAlgorithm::Dkga02 => {
            let mut bytes = [0u8; 8];
            // A random key is weak with probability 2^-50: the loop ends at once in practice.
            loop {
                random::fill(&mut bytes)?;
                set_odd_parity(&mut bytes);
                if check_des_key(&bytes).is_ok() {
                    break;
                }
            }
            let key = VendingKey::from_bytes(&bytes);
            bytes.zeroize();
            key.map_err(|_| GenerateError::Unsupported(derivation))
        }
        KeyDerivationAlgorithm::Dkga04 => {
            let mut bytes = [0u8; 20];
            random::fill(&mut bytes)?;
            let key = VendingKey::from_bytes(&bytes);
            bytes.zeroize();
            key.map_err(|_| GenerateError::Unsupported(derivation))
        }
        other => Err(GenerateError::Unsupported(other)),
    }
}

/// Sets the low bit of each byte so that the byte has an odd number of ones.
pub fn set_odd_parity(key: &mut [u8]) {
    for b in key {
        *b = (*b & 0xFE) | u8::from((*b >> 1).count_ones() % 2 == 0);
    }
}

/// Checks that a 64-bit key is fit to be a DES vending key: odd parity, not weak or semi-weak.
///
/// # Errors
/// [`DesKeyError::Parity`] or [`DesKeyError::Weak`].
pub fn check_des_key(key: &[u8; 8]) -> Result<(), DesKeyError> {
    if key.iter().any(|b| b.count_ones() % 2 == 0) {
        return Err(DesKeyError::Parity);
    }
    des::weak_key_test(key).map_err(|_| DesKeyError::Weak)
}

/// A key check value: 3 bytes that identify a key without revealing it.
///
/// - 64-bit DES key: the first 3 bytes of `DES(key, 0^64)`, the usual convention.
/// - 160-bit DKGA04 key: the first 3 bytes of `SHA-256(0x01 || key)`. The public record does
///   not settle this (STS.md section 1); this is a **project decision**, after the one public
///   port that publishes a rule, truncated to the same 3 bytes as for DES keys.
///
/// Compares in constant time.
#[doc(alias = "KCV")]
#[derive(Clone, Copy, Eq)]
pub struct KeyCheckValue([u8; 3]);

impl KeyCheckValue {
    /// The check value of `key`.
    #[must_use]
    pub fn of(key: &VendingKey) -> Self {
        let bytes = key.expose_secret();
        let mut out = [0u8; 3];
        if bytes.len() == 8 {
            let mut k = [0u8; 8];
            k.copy_from_slice(bytes);
            let cipher = des::Des::new(&k.into());
            k.zeroize();
            let mut block = [0u8; 8].into();
            cipher.encrypt_block(&mut block);
            out.copy_from_slice(&block[..3]);
        } else {
            let mut hasher = Sha256::new();
            hasher.update([0x01]);
            hasher.update(bytes);
            let digest = hasher.finalize();
            out.copy_from_slice(&digest[..3]);
        }
        Self(out)
    }

    /// The check value from its bytes.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 3]) -> Self {
        Self(bytes)
    }

    /// The 3 bytes.
    #[must_use]
    pub const fn to_bytes(self) -> [u8; 3] {
        self.0
    }

    /// Six upper-case hex digits.
    #[must_use]
    pub fn to_hex(self) -> String {
        crate::hex::encode_upper(&self.0)
    }

    /// From six hex digits.
    #[must_use]
    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes = crate::hex::decode(text)?;
        <[u8; 3]>::try_from(bytes.as_slice()).ok().map(Self)
    }
}

impl PartialEq for KeyCheckValue {
    /// Constant time.
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for KeyCheckValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyCheckValue({})", self.to_hex())
    }
}

impl fmt::Display for KeyCheckValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn des_keys_have_odd_parity_and_are_not_weak() {
        for _ in 0..200 {
            let key = generate_vending_key(KeyDerivationAlgorithm::Dkga02).unwrap();
            let bytes: [u8; 8] = key.expose_secret().try_into().unwrap();
            assert_eq!(check_des_key(&bytes), Ok(()));
        }
        let key = generate_vending_key(KeyDerivationAlgorithm::Dkga04).unwrap();
        assert_eq!(key.bits(), 160);
        assert!(matches!(
            generate_vending_key(KeyDerivationAlgorithm::Dkga03),
            Err(GenerateError::Unsupported(_))
        ));
    }

    #[test]
    fn weak_and_semi_weak_keys_are_refused() {
        for hex in [
            "0101010101010101",
            "FEFEFEFEFEFEFEFE",
            "E0E0E0E0F1F1F1F1",
            "1F1F1F1F0E0E0E0E",
            "01FE01FE01FE01FE",
            "FE01FE01FE01FE01",
            "1FE01FE00EF10EF1",
            "E01FE01FF10EF10E",
            "01E001E001F101F1",
            "E001E001F101F101",
            "1FFE1FFE0EFE0EFE",
            "FE1FFE1FFE0EFE0E",
        ] {
            let bytes: [u8; 8] = crate::hex::decode(hex).unwrap().try_into().unwrap();
            assert_eq!(check_des_key(&bytes), Err(DesKeyError::Weak), "{hex}");
        }
        let mut even = [0u8; 8];
        assert_eq!(check_des_key(&even), Err(DesKeyError::Parity));
        set_odd_parity(&mut even);
        assert_eq!(even, [1; 8]);
    }

    #[test]
    fn check_values() {
        // DES(0123456789ABCDEF, 0^64) = D5D44FF720683D0D (FIPS 81 style known answer).
        let key = VendingKey::from_hex("0123456789ABCDEF").unwrap();
        assert_eq!(KeyCheckValue::of(&key).to_hex(), "D5D44F");
        let long = VendingKey::from_hex("ABABABABABABABAB949494949494949401234567").unwrap();
        let kcv = KeyCheckValue::of(&long);
        let mut h = Sha256::new();
        h.update([1]);
        h.update(long.expose_secret());
        assert_eq!(kcv.to_bytes(), h.finalize()[..3]);
        assert_eq!(KeyCheckValue::from_hex(&kcv.to_hex()), Some(kcv));
    }
}
