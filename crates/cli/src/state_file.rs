//! The meter simulator's state file: public state in clear JSON, secrets sealed, written
//! atomically, the previous good version kept beside it.
//!
//! ```text
//! { "format": "sts-meter-state/1",
//!   "state": { ... },                 // registers, TIDs, settings: readable without a key
//!   "history": [ { ... }, ... ],      // every token entered and the meter's answer
//!   "secrets": { "algorithm": "ChaCha20-Poly1305", "nonce": "<24 hex>", "ciphertext": "<hex>" } }
//! ```
//! The secrets (decoder key, staged key change words) are sealed under a 256-bit state key
//! with the exact bytes of `format`, `state` and `history` as associated data: editing the
//! clear part (say, adding credit) makes the file fail to open.
//!
//! # Crash safety
//! A save writes `FILE.tmp`, syncs it, copies the current `FILE` to `FILE.prev`, renames the
//! temporary file over `FILE` and syncs the directory. At every instant `FILE` is a complete
//! old or new version; a corrupt `FILE` is never overwritten by a load error.

use std::{
    fs::{self, File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
};

use chacha20poly1305::{
    ChaCha20Poly1305, KeyInit,
    aead::{Aead, Payload},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::failure::{Failure, Hint, fail};

/// The format tag; a reader refuses any other.
pub(crate) const FORMAT: &str = "sts-meter-state/1";

/// One token entered into the meter, and the answer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct HistoryEntry {
    /// When it was entered (UTC, from the host clock or `--clock`).
    pub(crate) at: String,
    /// The token as entered.
    pub(crate) token: String,
    /// Status name (Accept, 1stKCT, CRC, Used ...).
    pub(crate) status: String,
    /// Display code.
    pub(crate) code: u8,
    /// What happened, in words.
    pub(crate) detail: String,
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    algorithm: String,
    nonce: String,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    format: String,
    state: Value,
    history: Vec<HistoryEntry>,
    secrets: Sealed,
}

/// The clear part of a state file.
pub(crate) struct Public {
    /// The meter state as JSON.
    pub(crate) state: Value,
    /// Every token entered so far.
    pub(crate) history: Vec<HistoryEntry>,
}

/// A 256-bit key sealing the secrets of state files.
pub(crate) struct StateKey(Zeroizing<[u8; 32]>);

impl StateKey {
    /// Parses 64 hex digits.
    pub(crate) fn from_hex(text: &str) -> Result<Self, Failure> {
        let text = text.trim();
        let mut key = Zeroizing::new([0u8; 32]);
        let valid = text.len() == 64
            && text
                .as_bytes()
                .chunks(2)
                .zip(key.iter_mut())
                .all(|(pair, out)| {
                    std::str::from_utf8(pair)
                        .ok()
                        .and_then(|p| u8::from_str_radix(p, 16).ok())
                        .map(|b| *out = b)
                        .is_some()
                });
        if !valid {
            return Err(fail(
                "invalid state key",
                "a state key is 64 hex digits (32 random bytes)",
            ));
        }
        Ok(Self(key))
    }

    /// A fresh random key.
    pub(crate) fn generate() -> Result<Self, Failure> {
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::fill(key.as_mut())
            .map_err(|e| anyhow::anyhow!("{e}"))
            .hint("the system random number generator failed", "try again")?;
        Ok(Self(key))
    }

    /// The key as 64 hex digits, for writing a new key file.
    ///
    /// # Security
    /// Exports the key.
    pub(crate) fn expose_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(self.0.iter().map(|b| format!("{b:02x}")).collect())
    }

    fn cipher(&self) -> Result<ChaCha20Poly1305, Failure> {
        // Borrowed, not copied: no unwiped copy of the key is left on the stack.
        let key: &chacha20poly1305::Key = self.0.as_slice().try_into().hint(
            "the state key has the wrong length",
            "this is a bug: please report it",
        )?;
        Ok(ChaCha20Poly1305::new(key))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|p| u8::from_str_radix(p, 16).ok())
        })
        .collect()
}

/// The associated data: the exact serialization of the clear part.
fn associated_data(state: &Value, history: &[HistoryEntry]) -> Result<Vec<u8>, Failure> {
    let mut aad = FORMAT.as_bytes().to_vec();
    aad.push(0);
    aad.extend(serde_json::to_vec(&(state, history)).hint(
        "cannot serialize the meter state",
        "this is a bug: please report it",
    )?);
    Ok(aad)
}

fn read_envelope(path: &Path) -> Result<Envelope, Failure> {
    let text = fs::read_to_string(path).hint(
        format!("cannot read meter state {}", path.display()),
        "create a meter first with `sts meter create --state FILE ...`",
    )?;
    let corrupt_hint = format!(
        "the file is damaged or not a meter state; the previous good state, if any, is in {}",
        prev_path(path).display()
    );
    let envelope: Envelope = serde_json::from_str(&text).hint(
        format!("meter state {} is corrupt", path.display()),
        &corrupt_hint,
    )?;
    if envelope.format != FORMAT {
        return Err(fail(
            format!(
                "meter state {} has format {:?}, this program reads {FORMAT:?}",
                path.display(),
                envelope.format
            ),
            "use the sts version that wrote it",
        ));
    }
    Ok(envelope)
}

/// Reads the clear part only: no key needed.
pub(crate) fn load_public(path: &Path) -> Result<Public, Failure> {
    let envelope = read_envelope(path)?;
    Ok(Public {
        state: envelope.state,
        history: envelope.history,
    })
}

/// Reads a state file and opens its secrets.
pub(crate) fn load(path: &Path, key: &StateKey) -> Result<(Public, Zeroizing<Vec<u8>>), Failure> {
    let envelope = read_envelope(path)?;
    let nonce = unhex(&envelope.secrets.nonce).and_then(|n| <[u8; 12]>::try_from(n).ok());
    let ciphertext = unhex(&envelope.secrets.ciphertext);
    let (Some(nonce), Some(ciphertext)) = (nonce, ciphertext) else {
        return Err(fail(
            format!(
                "meter state {} is corrupt: its sealed secrets are not valid hex",
                path.display()
            ),
            format!(
                "the previous good state, if any, is in {}",
                prev_path(path).display()
            ),
        ));
    };
    let aad = associated_data(&envelope.state, &envelope.history)?;
    let secrets = key
        .cipher()?
        .decrypt(&nonce.into(), Payload { msg: &ciphertext, aad: &aad })
        .map_err(|_| {
            fail(
                format!("cannot open meter state {}: wrong state key, or the file was modified", path.display()),
                format!(
                    "check --state-key-file (or STS_METER_STATE_KEY); if the file was damaged, the previous good state is in {}",
                    prev_path(path).display()
                ),
            )
        })?;
    Ok((
        Public {
            state: envelope.state,
            history: envelope.history,
        },
        Zeroizing::new(secrets),
    ))
}

/// `FILE.prev`.
pub(crate) fn prev_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".prev");
    path.with_file_name(name)
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Writes a state file atomically, keeping the previous version as `FILE.prev`.
pub(crate) fn save(
    path: &Path,
    key: &StateKey,
    public: &Public,
    secrets: &[u8],
) -> Result<(), Failure> {
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .hint("the system random number generator failed", "try again")?;
    let aad = associated_data(&public.state, &public.history)?;
    let ciphertext = key
        .cipher()?
        .encrypt(
            (&nonce).into(),
            Payload {
                msg: secrets,
                aad: &aad,
            },
        )
        .map_err(|_| {
            fail(
                "cannot seal the meter's secrets",
                "this is a bug: please report it",
            )
        })?;
    let envelope = Envelope {
        format: FORMAT.to_owned(),
        state: public.state.clone(),
        history: public.history.clone(),
        secrets: Sealed {
            algorithm: "ChaCha20-Poly1305".to_owned(),
            nonce: hex(&nonce),
            ciphertext: hex(&ciphertext),
        },
    };
    let mut bytes = serde_json::to_vec_pretty(&envelope).hint(
        "cannot serialize the meter state",
        "this is a bug: please report it",
    )?;
    bytes.push(b'\n');
    let tmp = tmp_path(path);
    let write_hint = "check that the directory exists and is writable";
    {
        let mut file =
            File::create(&tmp).hint(format!("cannot write {}", tmp.display()), write_hint)?;
        file.write_all(&bytes)
            .hint(format!("cannot write {}", tmp.display()), write_hint)?;
        file.sync_all()
            .hint(format!("cannot sync {}", tmp.display()), write_hint)?;
    }
    if path.exists() {
        fs::copy(path, prev_path(path)).hint(
            format!(
                "cannot keep the previous state in {}",
                prev_path(path).display()
            ),
            write_hint,
        )?;
    }
    fs::rename(&tmp, path).hint(format!("cannot replace {}", path.display()), write_hint)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Make the rename itself durable.
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

/// Writes a new state key file readable by its owner only; refuses to overwrite one.
pub(crate) fn write_new_key(path: &Path, key: &StateKey) -> Result<(), Failure> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).hint(
        format!("cannot create state key file {}", path.display()),
        "it must not exist yet; pass another path or use the existing key",
    )?;
    let text = key.expose_hex();
    file.write_all(text.as_bytes()).hint(
        format!("cannot write {}", path.display()),
        "check the directory",
    )?;
    file.write_all(b"\n").hint(
        format!("cannot write {}", path.display()),
        "check the directory",
    )?;
    file.sync_all().hint(
        format!("cannot sync {}", path.display()),
        "check the directory",
    )?;
    Ok(())
}
