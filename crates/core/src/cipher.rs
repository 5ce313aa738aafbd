//! The token ciphers: EA07 (STA), EA09 (DES) and EA11 (MISTY1), behind one type.

pub mod misty1;
pub mod sta;

use core::fmt;

use des::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use zeroize::Zeroize;

use crate::{DecoderKey, EncryptionAlgorithm, KeyError};

pub use misty1::Misty1;
pub use sta::StaTables;

/// A decoder key made ready to encrypt and decrypt 64-bit token blocks with one algorithm.
///
/// Build it once per meter and reuse it: the DES and MISTY1 key schedules run in
/// [`TokenCipher::new`].
///
/// # Security
/// Holds key material; wiped on drop.
#[derive(Clone)]
pub struct TokenCipher(Inner);

#[derive(Clone)]
enum Inner {
    Sta {
        tables: &'static StaTables,
        key: u64,
    },
    Des(des::Des),
    Misty1(Misty1),
}

impl TokenCipher {
    /// The cipher for `algorithm` under `key`, with the production STA tables for EA07.
    ///
    /// # Errors
    /// [`KeyError::Length`] when the key's length does not fit the algorithm (8 bytes for EA07
    /// and EA09, 16 for EA11).
    pub fn new(algorithm: EncryptionAlgorithm, key: &DecoderKey) -> Result<Self, KeyError> {
        Self::with_sta_tables(algorithm, key, &sta::PRODUCTION)
    }

    /// As [`TokenCipher::new`], with the given STA tables for EA07.
    ///
    /// # Errors
    /// As [`TokenCipher::new`].
    pub fn with_sta_tables(
        algorithm: EncryptionAlgorithm,
        key: &DecoderKey,
        tables: &'static StaTables,
    ) -> Result<Self, KeyError> {
        let bytes = key.expose_secret();
        if bytes.len() != algorithm.key_len() {
            return Err(KeyError::Length {
                expected: algorithm.key_len(),
                found: bytes.len(),
            });
        }
        Ok(Self(match algorithm {
            EncryptionAlgorithm::Sta => Inner::Sta {
                tables,
                key: key.to_u64_secret(),
            },
            EncryptionAlgorithm::Des => {
                let mut k = [0u8; 8];
                k.copy_from_slice(bytes);
                let cipher = des::Des::new(&k.into());
                k.zeroize();
                Inner::Des(cipher)
            }
            EncryptionAlgorithm::Misty1 => {
                let mut k = [0u8; 16];
                k.copy_from_slice(bytes);
                let cipher = Misty1::new(&k);
                k.zeroize();
                Inner::Misty1(cipher)
            }
        }))
    }

    /// The algorithm.
    #[must_use]
    pub const fn algorithm(&self) -> EncryptionAlgorithm {
        match self.0 {
            Inner::Sta { .. } => EncryptionAlgorithm::Sta,
            Inner::Des(_) => EncryptionAlgorithm::Des,
            Inner::Misty1(_) => EncryptionAlgorithm::Misty1,
        }
    }

    /// Encrypts one block.
    #[must_use]
    #[inline]
    pub fn encrypt(&self, block: u64) -> u64 {
        match &self.0 {
            Inner::Sta { tables, key } => tables.encrypt(*key, block),
            Inner::Des(cipher) => {
                let mut b = block.to_be_bytes().into();
                cipher.encrypt_block(&mut b);
                u64::from_be_bytes(b.into())
            }
            Inner::Misty1(cipher) => cipher.encrypt_block(block),
        }
    }

    /// Decrypts one block.
    #[must_use]
    #[inline]
    pub fn decrypt(&self, block: u64) -> u64 {
        match &self.0 {
            Inner::Sta { tables, key } => tables.decrypt(*key, block),
            Inner::Des(cipher) => {
                let mut b = block.to_be_bytes().into();
                cipher.decrypt_block(&mut b);
                u64::from_be_bytes(b.into())
            }
            Inner::Misty1(cipher) => cipher.decrypt_block(block),
        }
    }
}

impl Drop for TokenCipher {
    fn drop(&mut self) {
        // des::Des and Misty1 wipe themselves on drop.
        if let Inner::Sta { key, .. } = &mut self.0 {
            key.zeroize();
        }
    }
}

impl fmt::Debug for TokenCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenCipher(EA{}, ..)", self.algorithm())
    }
}

/// Single DES encryption of one big-endian block, for key derivation.
pub(crate) fn des_encrypt(key: &[u8; 8], block: u64) -> u64 {
    let cipher = des::Des::new(&(*key).into());
    let mut b = block.to_be_bytes().into();
    cipher.encrypt_block(&mut b);
    u64::from_be_bytes(b.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn des_known_answer() {
        // FIPS 81 / STS.md section 7: key 0123456789ABCDEF, 0123456789ABCDE7 -> C95744256A5ED31D.
        let key = DecoderKey::from_hex("0123456789ABCDEF").unwrap();
        let cipher = TokenCipher::new(EncryptionAlgorithm::Des, &key).unwrap();
        assert_eq!(cipher.encrypt(0x0123_4567_89AB_CDE7), 0xC957_4425_6A5E_D31D);
        assert_eq!(cipher.decrypt(0xC957_4425_6A5E_D31D), 0x0123_4567_89AB_CDE7);
        assert_eq!(
            des_encrypt(
                &[0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF],
                0x0123_4567_89AB_CDE7
            ),
            0xC957_4425_6A5E_D31D
        );
    }

    #[test]
    fn key_length_must_fit_the_algorithm() {
        let key = DecoderKey::from_hex("0123456789ABCDEF").unwrap();
        assert_eq!(
            TokenCipher::new(EncryptionAlgorithm::Misty1, &key).unwrap_err(),
            KeyError::Length {
                expected: 16,
                found: 8
            }
        );
    }

    #[test]
    fn debug_is_redacted() {
        let key = DecoderKey::from_hex("0123456789ABCDEF").unwrap();
        let cipher = TokenCipher::new(EncryptionAlgorithm::Sta, &key).unwrap();
        let text = format!("{cipher:?}");
        assert_eq!(text, "TokenCipher(EA07, ..)");
    }
}
