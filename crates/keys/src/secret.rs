//! Secret byte strings and passphrases: zeroized on drop, redacted in `Debug`.

use std::{fmt, path::Path};

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Secret bytes of any length (an unwrapped key, a plaintext keyload body).
///
/// # Security
/// Not `Clone`; wiped on drop; `Debug` shows only the length. The bytes are reachable only
/// through [`SecretBytes::expose_secret`].
#[derive(Zeroize, ZeroizeOnDrop, Default)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Takes ownership of `bytes`.
    #[must_use]
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The bytes.
    ///
    /// # Security
    /// The caller takes over the duty to keep them secret.
    #[must_use]
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// Number of bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no bytes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes({} bytes, ..)", self.0.len())
    }
}

/// The passphrase a store's key-encryption key is derived from.
///
/// # Security
/// Wiped on drop; `Debug` is redacted. Read it from a file or the environment, never from a
/// command-line argument (which other users can see in the process list).
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct Passphrase(String);

/// A passphrase that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PassphraseError {
    /// Empty (after removing a final newline).
    #[error("the passphrase is empty")]
    Empty,
    /// The environment variable is not set or not UTF-8.
    #[error("environment variable {0} is not set (or not UTF-8)")]
    MissingVariable(String),
    /// The file cannot be read.
    #[error("cannot read the passphrase file: {0}")]
    File(#[source] std::io::Error),
    /// The file is not UTF-8.
    #[error("the passphrase file is not UTF-8")]
    NotUtf8,
}

impl Passphrase {
    /// The passphrase from text.
    ///
    /// # Errors
    /// [`PassphraseError::Empty`].
    pub fn new(text: impl Into<String>) -> Result<Self, PassphraseError> {
        let text = Self(text.into());
        if text.0.is_empty() {
            return Err(PassphraseError::Empty);
        }
        Ok(text)
    }

    /// The passphrase from the first line of a file (a final `\n` or `\r\n` is removed).
    ///
    /// # Errors
    /// The file cannot be read, is not UTF-8, or holds an empty passphrase.
    pub fn from_file(path: &Path) -> Result<Self, PassphraseError> {
        let bytes = Zeroizing::new(std::fs::read(path).map_err(PassphraseError::File)?);
        let text = std::str::from_utf8(&bytes).map_err(|_| PassphraseError::NotUtf8)?;
        let line = text.strip_suffix('\n').unwrap_or(text);
        let line = line.strip_suffix('\r').unwrap_or(line);
        Self::new(line)
    }

    /// The passphrase from an environment variable.
    ///
    /// # Errors
    /// The variable is unset, not UTF-8, or empty.
    pub fn from_env(name: &str) -> Result<Self, PassphraseError> {
        let value =
            std::env::var(name).map_err(|_| PassphraseError::MissingVariable(name.to_owned()))?;
        Self::new(value)
    }

    /// The passphrase bytes.
    ///
    /// # Security
    /// The caller takes over the duty to keep them secret.
    #[must_use]
    pub fn expose_secret(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let p = Passphrase::new("correct horse").unwrap();
        assert_eq!(format!("{p:?}"), "Passphrase(..)");
        let s = SecretBytes::new(vec![0xAB; 5]);
        assert_eq!(format!("{s:?}"), "SecretBytes(5 bytes, ..)");
        assert!(Passphrase::new("").is_err());
    }
}
