//! The meter's secrets: its decoder key and the key words of a partial key change set.

use core::fmt;

use sts_core::DecoderKey;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::key_change::KeyWords;

/// The decoder key and the staged key change words, kept apart from [`crate::MeterState`] so
/// that saving the state never writes key material.
///
/// Not `Serialize`: a host saves it with [`MeterSecrets::to_bytes`], encrypting the bytes
/// first, and reads it back with [`MeterSecrets::from_bytes`].
///
/// # Layout of [`MeterSecrets::to_bytes`], version 1 ([`MeterSecrets::ENCODED_LEN`] = 39 bytes)
///
/// | offset | bytes | content |
/// |---|---|---|
/// | 0 | 4 | magic `STSM` |
/// | 4 | 1 | version, 1 |
/// | 5 | 1 | decoder key length in bytes: 8 or 16 |
/// | 6 | 16 | decoder key in the standard byte order, zero padded |
/// | 22 | 1 | staged word mask: bit 0 the 2/3 word, 1 the 2/4 word, 2 the 2/8 word (128-bit keys), 3 the 2/9 word |
/// | 23 | 16 | the four staged words in that order, 32-bit big-endian, zero when absent |
///
/// # Security
/// Wiped on drop; `Debug` shows no key material; the bytes come out in a [`Zeroizing`] buffer.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct MeterSecrets {
    pub(crate) key: DecoderKey,
    pub(crate) words: KeyWords,
}

/// Bytes that are not a saved [`MeterSecrets`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretsError {
    /// Not [`MeterSecrets::ENCODED_LEN`] bytes.
    Length(usize),
    /// The bytes do not start with `STSM`.
    Magic,
    /// A layout version this crate does not read.
    Version(u8),
    /// A key length other than 8 or 16.
    KeyLength(u8),
    /// Non-zero padding, an unknown mask bit, or a word that the mask says is absent.
    Padding,
}

impl fmt::Display for SecretsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Length(n) => write!(
                f,
                "saved meter secrets have {n} bytes, expected {}",
                MeterSecrets::ENCODED_LEN
            ),
            Self::Magic => f.write_str("these bytes are not saved meter secrets (no STSM magic)"),
            Self::Version(v) => write!(f, "saved meter secrets version {v} is not supported"),
            Self::KeyLength(n) => write!(f, "saved decoder key has {n} bytes, expected 8 or 16"),
            Self::Padding => f.write_str("saved meter secrets have stray bytes"),
        }
    }
}

impl core::error::Error for SecretsError {}

impl MeterSecrets {
    /// The length of [`MeterSecrets::to_bytes`].
    pub const ENCODED_LEN: usize = 39;
    /// The layout version written.
    pub const VERSION: u8 = 1;
    const MAGIC: [u8; 4] = *b"STSM";

    /// Secrets holding `key` and no staged key change.
    #[must_use]
    pub fn new(key: DecoderKey) -> Self {
        Self {
            key,
            words: KeyWords::default(),
        }
    }

    /// The decoder key.
    ///
    /// # Security
    /// Key material: [`DecoderKey::expose_secret`] hands out the bytes.
    #[must_use]
    pub const fn decoder_key(&self) -> &DecoderKey {
        &self.key
    }

    /// How many key change words are staged.
    #[must_use]
    pub const fn staged_words(&self) -> u32 {
        self.words.present.count_ones()
    }

    /// The secrets in the versioned layout above.
    ///
    /// # Security
    /// Exports key material: encrypt the bytes before they leave memory.
    #[must_use]
    pub fn to_bytes(&self) -> Zeroizing<[u8; Self::ENCODED_LEN]> {
        let mut out = Zeroizing::new([0u8; Self::ENCODED_LEN]);
        let key = self.key.expose_secret();
        out[..4].copy_from_slice(&Self::MAGIC);
        out[4] = Self::VERSION;
        out[5] = key.len() as u8;
        out[6..6 + key.len()].copy_from_slice(key);
        out[22] = self.words.present;
        for (i, word) in self.words.words.iter().enumerate() {
            out[23 + 4 * i..27 + 4 * i].copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    /// Reads secrets written by [`MeterSecrets::to_bytes`].
    ///
    /// [`crate::Meter::from_parts`] then checks them against the state (key length for the
    /// algorithm, staged words for the staged sections).
    ///
    /// # Errors
    /// See [`SecretsError`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SecretsError> {
        let bytes: &[u8; Self::ENCODED_LEN] = bytes
            .try_into()
            .map_err(|_| SecretsError::Length(bytes.len()))?;
        if bytes[..4] != Self::MAGIC {
            return Err(SecretsError::Magic);
        }
        if bytes[4] != Self::VERSION {
            return Err(SecretsError::Version(bytes[4]));
        }
        let len = usize::from(bytes[5]);
        if len != 8 && len != 16 {
            return Err(SecretsError::KeyLength(bytes[5]));
        }
        if bytes[6 + len..22].iter().any(|&b| b != 0) {
            return Err(SecretsError::Padding);
        }
        let key = DecoderKey::from_bytes(&bytes[6..6 + len])
            .map_err(|_| SecretsError::KeyLength(bytes[5]))?;
        let present = bytes[22];
        if present > 0xF {
            return Err(SecretsError::Padding);
        }
        let mut words = KeyWords {
            words: [0; 4],
            present,
        };
        for (i, word) in words.words.iter_mut().enumerate() {
            let mut b = [0u8; 4];
            b.copy_from_slice(&bytes[23 + 4 * i..27 + 4 * i]);
            *word = u32::from_be_bytes(b);
            b.zeroize();
            if present & (1 << i) == 0 && *word != 0 {
                return Err(SecretsError::Padding);
            }
        }
        Ok(Self { key, words })
    }
}

impl fmt::Debug for MeterSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MeterSecrets({}-bit key, {} staged words, ..)",
            self.key.bits(),
            self.staged_words()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_and_layout() {
        let mut secrets = MeterSecrets::new(DecoderKey::from_hex("E653341F9D5BF36F").unwrap());
        secrets.words.words = [0x0102_0304, 0, 0, 0xA0B0_C0D0];
        secrets.words.present = 0b1001;
        let bytes = secrets.to_bytes();
        assert_eq!(&bytes[..6], b"STSM\x01\x08");
        assert_eq!(
            &bytes[6..14],
            [0xE6, 0x53, 0x34, 0x1F, 0x9D, 0x5B, 0xF3, 0x6F]
        );
        assert_eq!(bytes[22], 0b1001);
        assert_eq!(&bytes[23..27], [1, 2, 3, 4]);
        assert_eq!(&bytes[35..39], [0xA0, 0xB0, 0xC0, 0xD0]);
        assert_eq!(MeterSecrets::from_bytes(&bytes[..]), Ok(secrets));
    }

    #[test]
    fn refuses_damaged_bytes() {
        let secrets =
            MeterSecrets::new(DecoderKey::from_hex("00112233445566778899AABBCCDDEEFF").unwrap());
        let good = *secrets.to_bytes();
        assert_eq!(
            MeterSecrets::from_bytes(&good[..38]),
            Err(SecretsError::Length(38))
        );
        let mut bad = good;
        bad[0] = b'X';
        assert_eq!(MeterSecrets::from_bytes(&bad), Err(SecretsError::Magic));
        let mut bad = good;
        bad[4] = 2;
        assert_eq!(
            MeterSecrets::from_bytes(&bad),
            Err(SecretsError::Version(2))
        );
        let mut bad = good;
        bad[5] = 9;
        assert_eq!(
            MeterSecrets::from_bytes(&bad),
            Err(SecretsError::KeyLength(9))
        );
        let mut bad = good;
        bad[5] = 8;
        assert_eq!(MeterSecrets::from_bytes(&bad), Err(SecretsError::Padding));
        let mut bad = good;
        bad[30] = 1;
        assert_eq!(MeterSecrets::from_bytes(&bad), Err(SecretsError::Padding));
        let mut bad = good;
        bad[22] = 0x10;
        assert_eq!(MeterSecrets::from_bytes(&bad), Err(SecretsError::Padding));
    }

    #[test]
    fn debug_shows_no_key() {
        let secrets = MeterSecrets::new(DecoderKey::from_hex("E653341F9D5BF36F").unwrap());
        let text = format!("{secrets:?}");
        assert_eq!(text, "MeterSecrets(64-bit key, 0 staged words, ..)");
    }
}
