//! The embedded KEK: Argon2id over a passphrase, XChaCha20-Poly1305 wrapping.

use std::{fmt, str::FromStr};

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::{
    KeyInit, XChaCha20Poly1305, XNonce,
    aead::{Aead, Payload},
};
use zeroize::Zeroizing;

use super::{KeyWrapper, WrapError};
use crate::{hex, random, secret::Passphrase, secret::SecretBytes};

/// The cost of Argon2id: memory in KiB, passes, lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfCost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl KdfCost {
    /// The production default: 64 MiB, 3 passes, 1 lane (RFC 9106's second recommended option
    /// with a higher pass count for a key that opens a whole key store).
    pub const DEFAULT: Self = Self {
        memory_kib: 64 * 1024,
        iterations: 3,
        parallelism: 1,
    };

    /// The smallest cost Argon2 accepts, for tests only: it protects nothing.
    pub const INSECURE_FOR_TESTS: Self = Self {
        memory_kib: 8,
        iterations: 1,
        parallelism: 1,
    };
}

impl Default for KdfCost {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Argon2id parameters and salt: stored in the store beside what the KEK wraps, written
/// `argon2id$v=19$m=65536,t=3,p=1$<salt hex>`.
#[derive(Clone, PartialEq, Eq)]
pub struct KdfParams {
    cost: KdfCost,
    salt: [u8; 16],
}

impl KdfParams {
    /// Fresh parameters with a random salt.
    ///
    /// # Errors
    /// The OS CSPRNG fails.
    pub fn generate(cost: KdfCost) -> Result<Self, WrapError> {
        Ok(Self {
            cost,
            salt: random::bytes()?,
        })
    }

    /// The cost.
    #[must_use]
    pub const fn cost(&self) -> KdfCost {
        self.cost
    }

    fn derive(&self, passphrase: &Passphrase) -> Result<Zeroizing<[u8; 32]>, WrapError> {
        let params = Params::new(
            self.cost.memory_kib,
            self.cost.iterations,
            self.cost.parallelism,
            Some(32),
        )
        .map_err(|e| WrapError::Parameters(e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut kek = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(passphrase.expose_secret(), &self.salt, kek.as_mut())
            .map_err(|e| WrapError::Parameters(e.to_string()))?;
        Ok(kek)
    }
}

impl fmt::Display for KdfParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "argon2id$v=19$m={},t={},p={}${}",
            self.cost.memory_kib,
            self.cost.iterations,
            self.cost.parallelism,
            hex::encode_upper(&self.salt)
        )
    }
}

impl fmt::Debug for KdfParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KdfParams({self})")
    }
}

impl FromStr for KdfParams {
    type Err = WrapError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s
            .strip_prefix("argon2id$v=19$m=")
            .ok_or(WrapError::Malformed)?;
        let (cost, salt) = rest.split_once('$').ok_or(WrapError::Malformed)?;
        let mut parts = cost.split(',');
        let mut field = |prefix: &str| -> Result<u32, WrapError> {
            let part = parts.next().ok_or(WrapError::Malformed)?;
            part.strip_prefix(prefix)
                .and_then(|v| v.parse().ok())
                .ok_or(WrapError::Malformed)
        };
        let memory_kib = field("")?;
        let iterations = field("t=")?;
        let parallelism = field("p=")?;
        if parts.next().is_some() {
            return Err(WrapError::Malformed);
        }
        Ok(Self {
            cost: KdfCost {
                memory_kib,
                iterations,
                parallelism,
            },
            salt: hex::decode_array(salt).ok_or(WrapError::Malformed)?,
        })
    }
}

/// Wraps secrets under a KEK derived from a passphrase with Argon2id.
///
/// Wrapped format (version 1): `0x01 | nonce (24 bytes, random) | XChaCha20-Poly1305
/// ciphertext and tag`, associated data `"sts-keys wrap v1" | binding`.
///
/// # Security
/// The KEK lives in this value only, zeroized on drop.
pub struct PassphraseWrapper {
    cipher: XChaCha20Poly1305,
}

const VERSION: u8 = 1;

/// The scheme name of [`PassphraseWrapper`], recorded in stores it wraps.
pub const PASSPHRASE_SCHEME: &str = "argon2id-xchacha20poly1305-v1";
const AAD_PREFIX: &[u8] = b"sts-keys wrap v1\0";

impl PassphraseWrapper {
    /// Derives the KEK (this takes the Argon2id time, by design).
    ///
    /// # Errors
    /// Parameters Argon2 refuses.
    pub fn derive(passphrase: &Passphrase, params: &KdfParams) -> Result<Self, WrapError> {
        let kek = params.derive(passphrase)?;
        Ok(Self {
            cipher: XChaCha20Poly1305::new(&(*kek).into()),
        })
    }

    fn aad(binding: &[u8]) -> Zeroizing<Vec<u8>> {
        let mut aad = Zeroizing::new(Vec::with_capacity(AAD_PREFIX.len() + binding.len()));
        aad.extend_from_slice(AAD_PREFIX);
        aad.extend_from_slice(binding);
        aad
    }
}

impl fmt::Debug for PassphraseWrapper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PassphraseWrapper(..)")
    }
}

impl KeyWrapper for PassphraseWrapper {
    fn scheme(&self) -> &'static str {
        PASSPHRASE_SCHEME
    }

    fn wrap(&self, secret: &[u8], binding: &[u8]) -> Result<Vec<u8>, WrapError> {
        let nonce: [u8; 24] = random::bytes()?;
        let aad = Self::aad(binding);
        let sealed = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: secret,
                    aad: &aad,
                },
            )
            .map_err(|_| WrapError::Malformed)?;
        let mut out = Vec::with_capacity(1 + 24 + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn unwrap(&self, wrapped: &[u8], binding: &[u8]) -> Result<SecretBytes, WrapError> {
        let [version, rest @ ..] = wrapped else {
            return Err(WrapError::Malformed);
        };
        if *version != VERSION || rest.len() < 24 + 16 {
            return Err(WrapError::Malformed);
        }
        let (nonce, sealed) = rest.split_at(24);
        let nonce: [u8; 24] = nonce.try_into().map_err(|_| WrapError::Malformed)?;
        let aad = Self::aad(binding);
        self.cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map(SecretBytes::new)
            .map_err(|_| WrapError::Unauthentic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrapper(pass: &str, params: &KdfParams) -> PassphraseWrapper {
        PassphraseWrapper::derive(&Passphrase::new(pass).unwrap(), params).unwrap()
    }

    #[test]
    fn round_trip_and_binding() {
        let params = KdfParams::generate(KdfCost::INSECURE_FOR_TESTS).unwrap();
        let w = wrapper("right", &params);
        let wrapped = w.wrap(b"secret key bytes", b"key 1").unwrap();
        assert_eq!(
            w.unwrap(&wrapped, b"key 1").unwrap().expose_secret(),
            b"secret key bytes"
        );
        assert!(matches!(
            w.unwrap(&wrapped, b"key 2"),
            Err(WrapError::Unauthentic)
        ));
        assert!(matches!(
            wrapper("wrong", &params).unwrap(&wrapped, b"key 1"),
            Err(WrapError::Unauthentic)
        ));
        let mut flipped = wrapped.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(
            w.unwrap(&flipped, b"key 1"),
            Err(WrapError::Unauthentic)
        ));
        assert!(matches!(
            w.unwrap(&wrapped[..20], b"key 1"),
            Err(WrapError::Malformed)
        ));
        assert!(matches!(w.unwrap(&[], b"key 1"), Err(WrapError::Malformed)));
    }

    #[test]
    fn parameters_round_trip_as_text() {
        let params = KdfParams::generate(KdfCost::DEFAULT).unwrap();
        let text = params.to_string();
        assert!(text.starts_with("argon2id$v=19$m=65536,t=3,p=1$"));
        assert_eq!(text.parse::<KdfParams>().unwrap(), params);
        assert!("argon2id$v=19$m=1,t=1$00".parse::<KdfParams>().is_err());
        assert!("scrypt".parse::<KdfParams>().is_err());
    }
}
