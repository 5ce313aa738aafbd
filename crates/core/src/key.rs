//! Secret key types: decoder keys (per meter) and vending keys (per supply group).
//!
//! # Security
//! Neither type is `Copy`; both wipe their bytes on drop, print as `..` in `Debug`, compare in
//! constant time, and hand out their bytes only through `expose_secret`.

use core::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Key material that could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// The key has the wrong number of bytes.
    Length {
        /// Bytes expected.
        expected: usize,
        /// Bytes found.
        found: usize,
    },
    /// The text has a character that is not a hex digit, or an odd number of digits.
    NotHex,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Length { expected, found } => write!(
                f,
                "key has {found} bytes ({} hex digits), expected {expected} bytes ({} hex digits)",
                found * 2,
                expected * 2
            ),
            Self::NotHex => {
                f.write_str("key must be hex digits (0-9, A-F), an even number of them")
            }
        }
    }
}

impl core::error::Error for KeyError {}

/// Decodes hex (upper or lower case; spaces, `-` and `:` between digit pairs ignored) into
/// `out`, returning the number of bytes written.
fn decode_hex(text: &str, out: &mut [u8]) -> Result<usize, KeyError> {
    let mut len = 0usize;
    let mut high: Option<u8> = None;
    for c in text.trim().bytes() {
        let nibble = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            b' ' | b'-' | b':' if high.is_none() => continue,
            _ => return Err(KeyError::NotHex),
        };
        match high.take() {
            None => high = Some(nibble),
            Some(h) => {
                if let Some(slot) = out.get_mut(len) {
                    *slot = (h << 4) | nibble;
                }
                len += 1;
            }
        }
    }
    if high.is_some() {
        return Err(KeyError::NotHex);
    }
    Ok(len)
}

macro_rules! secret_key {
    ($(#[$doc:meta])* $name:ident, max = $max:literal, lengths = [$($len:literal),+]) => {
        $(#[$doc])*
        #[derive(Clone, Zeroize, ZeroizeOnDrop)]
        pub struct $name {
            bytes: [u8; $max],
            len: u8,
        }

        impl $name {
            /// The key from its bytes in the standard byte order.
            ///
            /// # Errors
            /// [`KeyError::Length`] for a length the key type does not have.
            pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
                if ![$($len),+].contains(&bytes.len()) {
                    return Err(KeyError::Length { expected: Self::LENGTHS[0], found: bytes.len() });
                }
                let mut key = Self { bytes: [0; $max], len: bytes.len() as u8 };
                key.bytes[..bytes.len()].copy_from_slice(bytes);
                Ok(key)
            }

            /// The key from hex digits in the standard byte order.
            ///
            /// # Errors
            /// Not hex, or a length the key type does not have.
            pub fn from_hex(text: &str) -> Result<Self, KeyError> {
                let mut buf = [0u8; $max];
                let result = decode_hex(text, &mut buf).and_then(|len| {
                    if len > $max {
                        Err(KeyError::Length { expected: Self::LENGTHS[0], found: len })
                    } else {
                        Self::from_bytes(&buf[..len])
                    }
                });
                buf.zeroize();
                result
            }

            /// The lengths in bytes this key type takes.
            pub const LENGTHS: &'static [usize] = &[$($len),+];

            /// The key bytes.
            ///
            /// # Security
            /// The caller takes over the duty to keep them secret.
            #[must_use]
            pub fn expose_secret(&self) -> &[u8] {
                &self.bytes[..usize::from(self.len)]
            }

            /// Length in bits.
            #[must_use]
            pub const fn bits(&self) -> usize {
                self.len as usize * 8
            }
        }

        impl core::str::FromStr for $name {
            type Err = KeyError;
            /// Hex digits, as [`Self::from_hex`].
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::from_hex(s)
            }
        }

        impl ConstantTimeEq for $name {
            fn ct_eq(&self, other: &Self) -> subtle::Choice {
                self.len.ct_eq(&other.len) & self.bytes.ct_eq(&other.bytes)
            }
        }

        impl PartialEq for $name {
            /// Constant time in the key bytes.
            fn eq(&self, other: &Self) -> bool {
                self.ct_eq(other).into()
            }
        }

        impl Eq for $name {}

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({}-bit, ..)"), self.bits())
            }
        }
    };
}

secret_key!(
    /// A decoder key: 64 bits for EA07 and EA09, 128 bits for EA11.
    ///
    /// Derived per meter from a vending key (see [`crate::dkga`]), or given directly.
    DecoderKey, max = 16, lengths = [8, 16]
);

secret_key!(
    /// A vending key: 64 bits (DKGA01/02), 128 bits (DKGA03, two DES keys) or 160 bits (DKGA04).
    VendingKey, max = 20, lengths = [8, 16, 20]
);

impl DecoderKey {
    /// A 64-bit key as a big-endian integer, for STA.
    pub(crate) fn to_u64_secret(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.bytes[..8]);
        let value = u64::from_be_bytes(b);
        b.zeroize();
        value
    }

    /// A 64-bit key from a big-endian integer.
    #[must_use]
    pub fn from_u64(value: u64) -> Self {
        let mut key = Self {
            bytes: [0; 16],
            len: 8,
        };
        key.bytes[..8].copy_from_slice(&value.to_be_bytes());
        key
    }

    /// Writes the key as upper-case hex into `out` and returns it as text.
    ///
    /// # Security
    /// Exports key material, for tests, key ceremonies and conformance output only.
    pub fn expose_hex<'a>(&self, out: &'a mut [u8; 32]) -> &'a str {
        const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
        let bytes = self.expose_secret();
        for (i, b) in bytes.iter().enumerate() {
            out[2 * i] = DIGITS[usize::from(b >> 4)];
            out[2 * i + 1] = DIGITS[usize::from(b & 0xF)];
        }
        core::str::from_utf8(&out[..bytes.len() * 2]).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hex_in_any_case_with_separators() {
        let a = DecoderKey::from_hex("e653341f9d5bf36f").unwrap();
        let b = DecoderKey::from_hex("E6 53 34 1F-9D:5B F3 6F").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.bits(), 64);
        let mut out = [0u8; 32];
        assert_eq!(a.expose_hex(&mut out), "E653341F9D5BF36F");
    }

    #[test]
    fn rejects_bad_material() {
        assert_eq!(
            DecoderKey::from_hex("E653341F9D5BF36"),
            Err(KeyError::NotHex)
        );
        assert_eq!(
            DecoderKey::from_hex("E653341F9D5BF3XX"),
            Err(KeyError::NotHex)
        );
        assert_eq!(
            DecoderKey::from_hex("E653341F9D5B"),
            Err(KeyError::Length {
                expected: 8,
                found: 6
            })
        );
        assert_eq!(
            DecoderKey::from_hex("00112233445566778899AABBCCDDEEFF0011"),
            Err(KeyError::Length {
                expected: 8,
                found: 18
            })
        );
        assert!(VendingKey::from_hex("ABABABABABABABAB949494949494949401234567").is_ok());
        assert!(VendingKey::from_hex("ABABABABABABABAB9494").is_err());
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        let key = VendingKey::from_hex("ABABABABABABABAB949494949494949401234567").unwrap();
        let text = format!("{key:?}");
        assert_eq!(text, "VendingKey(160-bit, ..)");
    }

    #[test]
    fn equality_depends_on_every_byte() {
        let a = DecoderKey::from_hex("0000000000000000").unwrap();
        let b = DecoderKey::from_hex("0000000000000001").unwrap();
        assert_ne!(a, b);
        assert_ne!(
            DecoderKey::from_hex("00000000000000000000000000000000").unwrap(),
            a
        );
    }
}
