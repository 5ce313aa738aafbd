//! Key wrapping: how secrets rest in a store.
//!
//! A [`KeyWrapper`] encrypts a secret under a key-encryption key (KEK) with associated data
//! that binds the wrapped secret to its record (key ID, SGC, key type, KRN ...): a wrapped key
//! copied into another record fails to unwrap. The embedded default is
//! [`PassphraseWrapper`]: a KEK derived from a passphrase with Argon2id, XChaCha20-Poly1305.
//! A PKCS#11 backend that keeps the KEK inside a token implements the same trait.

mod passphrase;
#[cfg(feature = "pkcs11")]
mod pkcs11;

pub use passphrase::{KdfCost, KdfParams, PASSPHRASE_SCHEME, PassphraseWrapper};
#[cfg(feature = "pkcs11")]
pub use pkcs11::{PKCS11_SCHEME, Pkcs11Wrapper};

use crate::{random::RandomError, secret::SecretBytes};

/// A secret that cannot be wrapped or unwrapped.
#[derive(Debug, thiserror::Error)]
pub enum WrapError {
    /// The wrapped bytes are not in a known format.
    #[error("wrapped key material is malformed or in an unknown format")]
    Malformed,
    /// Authentication failed: another KEK (wrong passphrase), another record's binding, or
    /// modified bytes.
    #[error("wrapped key material does not open under this key-encryption key and record")]
    Unauthentic,
    /// The KDF parameters are out of range.
    #[error("key derivation parameters out of range: {0}")]
    Parameters(String),
    /// The token refused the PIN.
    #[error("the PKCS#11 token refused the PIN")]
    WrongPin,
    /// The wrapping backend (a PKCS#11 token) failed.
    #[error("key wrapping backend: {0}")]
    Backend(String),
    /// The OS CSPRNG failed.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// Encrypts secrets at rest under a key-encryption key the wrapper holds or reaches.
///
/// # Security
/// `binding` is authenticated, not encrypted: it must name the record the secret belongs to,
/// so that a wrapped secret cannot be moved between records.
pub trait KeyWrapper: Send + Sync {
    /// A short name of the scheme, recorded in the store.
    fn scheme(&self) -> &'static str;

    /// Encrypts `secret`, bound to `binding`.
    ///
    /// # Errors
    /// The backend fails (randomness, token access).
    fn wrap(&self, secret: &[u8], binding: &[u8]) -> Result<Vec<u8>, WrapError>;

    /// Decrypts what [`KeyWrapper::wrap`] made with the same `binding`.
    ///
    /// # Errors
    /// [`WrapError::Unauthentic`] for another KEK, another binding or modified bytes;
    /// [`WrapError::Malformed`] for bytes in no known format.
    fn unwrap(&self, wrapped: &[u8], binding: &[u8]) -> Result<SecretBytes, WrapError>;
}
