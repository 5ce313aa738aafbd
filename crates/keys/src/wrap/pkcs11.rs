//! A KEK that never leaves a PKCS#11 token: AES-256-GCM inside the token (for example an HSM,
//! or SoftHSM2 in tests).

use std::{
    collections::HashMap,
    fmt,
    path::{Path, PathBuf},
    sync::{Mutex, OnceLock},
};

use cryptoki::{
    context::{CInitializeArgs, CInitializeFlags, Pkcs11},
    error::{Error as CkError, RvError},
    mechanism::{Mechanism, aead::GcmParams},
    object::{Attribute, KeyType, ObjectClass, ObjectHandle},
    session::{Session, UserType},
    types::AuthPin,
};

use super::{KeyWrapper, WrapError};
use crate::{Passphrase, random, secret::SecretBytes};

/// The scheme name of [`Pkcs11Wrapper`], recorded in stores it wraps.
pub const PKCS11_SCHEME: &str = "pkcs11-aes256gcm-v1";

const VERSION: u8 = 2;
const AAD_PREFIX: &[u8] = b"sts-keys wrap v1\0";

/// Wraps secrets with AES-256-GCM under a key kept in a PKCS#11 token.
///
/// The key is a token object with `CKA_SENSITIVE` true and `CKA_EXTRACTABLE` false: it can
/// encrypt and decrypt inside the token and never be read out. Wrapped format: `0x02 |
/// IV (12 bytes, from the OS CSPRNG) | ciphertext and 16-byte tag`, associated data
/// `"sts-keys wrap v1\0" | binding`, as for [`super::PassphraseWrapper`].
pub struct Pkcs11Wrapper {
    // Declared before the context so that the session closes first.
    session: Mutex<Session>,
    key: ObjectHandle,
    _context: Pkcs11,
}

impl fmt::Debug for Pkcs11Wrapper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pkcs11Wrapper(..)")
    }
}

/// One initialized context per module and process: PKCS#11 libraries are initialized once,
/// and finalizing one context would end every other's sessions.
fn context(module: &Path) -> Result<Pkcs11, WrapError> {
    static CONTEXTS: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut contexts = CONTEXTS
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .map_err(|_| WrapError::Backend("PKCS#11 context lock poisoned".into()))?;
    if let Some(context) = contexts.get(module) {
        return Ok(context.clone());
    }
    let context = Pkcs11::new(module).map_err(|e| backend(&e))?;
    match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(backend(&e)),
    }
    contexts.insert(module.to_path_buf(), context.clone());
    Ok(context)
}

fn backend(e: &CkError) -> WrapError {
    WrapError::Backend(e.to_string())
}

impl Pkcs11Wrapper {
    /// Loads the PKCS#11 `module`, logs in to the token labelled `token_label` with the user
    /// `pin`, and finds the AES key labelled `key_label`; with `generate`, makes that key in
    /// the token when it is missing.
    ///
    /// # Errors
    /// [`WrapError::WrongPin`]; [`WrapError::Backend`] when the module does not load, the token
    /// or key is not found, or the token refuses.
    pub fn open(
        module: &Path,
        token_label: &str,
        pin: &Passphrase,
        key_label: &str,
        generate: bool,
    ) -> Result<Self, WrapError> {
        let context = context(module)?;
        let slot = context
            .get_slots_with_token()
            .map_err(|e| backend(&e))?
            .into_iter()
            .find(|&slot| {
                context
                    .get_token_info(slot)
                    .is_ok_and(|info| info.label() == token_label)
            })
            .ok_or_else(|| {
                WrapError::Backend(format!("no PKCS#11 token labelled {token_label}"))
            })?;
        let session = context.open_rw_session(slot).map_err(|e| backend(&e))?;
        let pin_text = std::str::from_utf8(pin.expose_secret())
            .map_err(|_| WrapError::Backend("the PIN is not UTF-8".into()))?;
        let pin = AuthPin::new(Box::from(pin_text));
        match session.login(UserType::User, Some(&pin)) {
            // Login is per application and token: a second wrapper on a token this process is
            // logged in to shares that login.
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => return Err(WrapError::WrongPin),
            Err(e) => return Err(backend(&e)),
        }
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Label(key_label.as_bytes().to_vec()),
        ];
        let found = session.find_objects(&template).map_err(|e| backend(&e))?;
        let key = match (found.first(), generate) {
            (Some(&key), _) => key,
            (None, true) => session
                .generate_key(
                    &Mechanism::AesKeyGen,
                    &[
                        Attribute::Token(true),
                        Attribute::Private(true),
                        Attribute::Sensitive(true),
                        Attribute::Extractable(false),
                        Attribute::Encrypt(true),
                        Attribute::Decrypt(true),
                        Attribute::ValueLen(32.into()),
                        Attribute::Label(key_label.as_bytes().to_vec()),
                    ],
                )
                .map_err(|e| backend(&e))?,
            (None, false) => {
                return Err(WrapError::Backend(format!(
                    "no AES key labelled {key_label} in token {token_label}"
                )));
            }
        };
        Ok(Self {
            session: Mutex::new(session),
            key,
            _context: context,
        })
    }

    fn aad(binding: &[u8]) -> Vec<u8> {
        [AAD_PREFIX, binding].concat()
    }

    fn session(&self) -> Result<std::sync::MutexGuard<'_, Session>, WrapError> {
        self.session
            .lock()
            .map_err(|_| WrapError::Backend("PKCS#11 session lock poisoned".into()))
    }
}

impl KeyWrapper for Pkcs11Wrapper {
    fn scheme(&self) -> &'static str {
        PKCS11_SCHEME
    }

    fn wrap(&self, secret: &[u8], binding: &[u8]) -> Result<Vec<u8>, WrapError> {
        let mut iv: [u8; 12] = random::bytes()?;
        let aad = Self::aad(binding);
        let params = GcmParams::new(&mut iv, &aad, 128.into()).map_err(|e| backend(&e))?;
        let sealed = self
            .session()?
            .encrypt(&Mechanism::AesGcm(params), self.key, secret)
            .map_err(|e| backend(&e))?;
        let mut out = Vec::with_capacity(1 + 12 + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&iv);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn unwrap(&self, wrapped: &[u8], binding: &[u8]) -> Result<SecretBytes, WrapError> {
        let [version, rest @ ..] = wrapped else {
            return Err(WrapError::Malformed);
        };
        if *version != VERSION || rest.len() < 12 + 16 {
            return Err(WrapError::Malformed);
        }
        let (iv, sealed) = rest.split_at(12);
        let mut iv: [u8; 12] = iv.try_into().map_err(|_| WrapError::Malformed)?;
        let aad = Self::aad(binding);
        let params = GcmParams::new(&mut iv, &aad, 128.into()).map_err(|e| backend(&e))?;
        match self
            .session()?
            .decrypt(&Mechanism::AesGcm(params), self.key, sealed)
        {
            Ok(plain) => Ok(SecretBytes::new(plain)),
            // A GCM tag mismatch: CKR_ENCRYPTED_DATA_INVALID by the standard; SoftHSM2 answers
            // CKR_GENERAL_ERROR.
            Err(CkError::Pkcs11(
                RvError::EncryptedDataInvalid
                | RvError::EncryptedDataLenRange
                | RvError::GeneralError,
                _,
            )) => Err(WrapError::Unauthentic),
            Err(e) => Err(backend(&e)),
        }
    }
}
