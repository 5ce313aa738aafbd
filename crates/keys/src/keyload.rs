//! Keyload files: vending keys and their attributes, encrypted for one security module and
//! signed by the KMC. The format is documented in `docs/keyload-format.md`.

use std::{fmt, str::FromStr};

use chacha20poly1305::{
    ChaCha20Poly1305, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hkdf::Hkdf;
use sha2::Sha256;
use sts_core::{
    BaseDate, KeyDerivationAlgorithm, KeyExpiryNumber, KeyRevisionNumber, SupplyGroupCode,
    UtcMinute, VendingKey,
};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

use crate::{
    CreditLimit, KeyAttributes, KeyCheckValue, KeyId, SecurityModuleId, VendingKeyType, hex,
    random::{self, RandomError},
};

/// The first line of every keyload file of this version.
pub const MAGIC: &str = "STS-KEYLOAD-FILE v1";

const HKDF_SALT: &[u8] = b"sts-keys keyload v1";

/// A keyload file that is refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyloadError {
    /// The file ends early: lines or characters are missing.
    #[error("the keyload file is truncated")]
    Truncated,
    /// A line is not what the format expects.
    #[error("the keyload file is malformed: {0}")]
    Malformed(&'static str),
    /// The first line names another format or version.
    #[error("not a keyload file of a supported version (expected {MAGIC:?})")]
    UnsupportedVersion,
    /// The file is addressed to another security module.
    #[error("the keyload file is addressed to security module {addressed}, not {this}")]
    OtherSecurityModule {
        /// The module it is for.
        addressed: SecurityModuleId,
        /// This module.
        this: SecurityModuleId,
    },
    /// The file is encrypted to another public key than this module's.
    #[error("the keyload file is encrypted for another key pair than this security module's")]
    OtherRecipientKey,
    /// The KMC signature does not verify with the trusted KMC key: the file was modified or
    /// signed by someone else.
    #[error(
        "the keyload file's signature does not verify against the trusted KMC key (tampered or foreign file)"
    )]
    BadSignature,
    /// The signature verified but the body does not decrypt (a KMC fault).
    #[error("the keyload file's body does not decrypt")]
    Undecryptable,
    /// A key does not match its check value.
    #[error("key {0} in the keyload file does not match its check value")]
    CheckValue(KeyId),
    /// The OS CSPRNG failed.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// The KMC's Ed25519 public key, which security modules trust; 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KmcPublicKey(VerifyingKey);

impl KmcPublicKey {
    /// The key bytes.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub(crate) fn from_signing(key: &SigningKey) -> Self {
        Self(key.verifying_key())
    }
}

/// An X25519 public key of a security module, to which keyload files are encrypted; 64 hex
/// digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SecurityModulePublicKey([u8; 32]);

impl SecurityModulePublicKey {
    /// The key bytes.
    #[must_use]
    pub const fn to_bytes(&self) -> [u8; 32] {
        self.0
    }
}

/// A public key that cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a public key is 64 hex digits (32 bytes) of a valid key")]
pub struct PublicKeyError;

macro_rules! hex_public_key {
    ($name:ident, $from:expr) => {
        impl FromStr for $name {
            type Err = PublicKeyError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let bytes: [u8; 32] = hex::decode_array(s.trim()).ok_or(PublicKeyError)?;
                $from(bytes)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode_upper(&self.to_bytes()))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }
    };
}

hex_public_key!(KmcPublicKey, |b: [u8; 32]| VerifyingKey::from_bytes(&b)
    .map(KmcPublicKey)
    .map_err(|_| PublicKeyError));
hex_public_key!(
    SecurityModulePublicKey,
    |b: [u8; 32]| Ok::<_, PublicKeyError>(SecurityModulePublicKey(b))
);

/// A security module's X25519 secret key: opens the keyload files addressed to it.
///
/// # Security
/// Zeroized on drop; `Debug` redacted.
pub struct RecipientSecret(StaticSecret);

impl RecipientSecret {
    /// A new key pair from the OS CSPRNG.
    ///
    /// # Errors
    /// The CSPRNG fails.
    pub fn generate() -> Result<Self, RandomError> {
        let mut bytes: [u8; 32] = random::bytes()?;
        let secret = StaticSecret::from(bytes);
        bytes.zeroize();
        Ok(Self(secret))
    }

    /// The public half.
    #[must_use]
    pub fn public_key(&self) -> SecurityModulePublicKey {
        SecurityModulePublicKey(PublicKey::from(&self.0).to_bytes())
    }

    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(StaticSecret::from(bytes))
    }

    pub(crate) fn to_secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }
}

impl fmt::Debug for RecipientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecipientSecret(public {}, ..)", self.public_key())
    }
}

/// One vending key in a keyload file.
#[derive(Debug, Clone)]
pub struct KeyloadKey {
    /// The KMC's record of the key.
    pub key_id: KeyId,
    /// Its attributes.
    pub attributes: KeyAttributes,
    /// Its check value.
    pub check_value: KeyCheckValue,
    /// The key.
    pub key: VendingKey,
}

/// The public header of a keyload file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyloadHeader {
    /// The KMC's serial number of the file, increasing.
    pub serial: u64,
    /// The security module it is addressed to.
    pub security_module: SecurityModuleId,
    /// That module's public key, to which the body is encrypted.
    pub recipient: SecurityModulePublicKey,
    /// The signing KMC's public key.
    pub kmc: KmcPublicKey,
    /// When the KMC made the file.
    pub created: UtcMinute,
    /// Number of keys in the body.
    pub key_count: usize,
}

/// A keyload file parsed (nothing verified yet).
#[derive(Debug)]
pub struct ParsedKeyload<'a> {
    /// The header.
    pub header: KeyloadHeader,
    ephemeral: [u8; 32],
    aad: &'a [u8],
    signed: &'a [u8],
    ciphertext: Vec<u8>,
    signature: Signature,
}

/// Makes a keyload file: encrypts `keys` to `recipient` and signs the whole file with `kmc`.
pub(crate) fn seal(
    serial: u64,
    security_module: &SecurityModuleId,
    recipient: &SecurityModulePublicKey,
    kmc: &SigningKey,
    created: UtcMinute,
    keys: &[KeyloadKey],
) -> Result<String, KeyloadError> {
    let ephemeral = RecipientSecret::generate()?;
    let ephemeral_public = ephemeral.public_key();
    let mut out = format!(
        "{MAGIC}\nserial: {serial}\nsecurity-module: {security_module}\nrecipient-key: {recipient}\nkmc-key: {}\ncreated: {created}\nkeys: {}\nephemeral-key: {ephemeral_public}\n",
        KmcPublicKey::from_signing(kmc),
        keys.len()
    );
    let shared = ephemeral.0.diffie_hellman(&PublicKey::from(recipient.0));
    if !shared.was_contributory() {
        return Err(KeyloadError::Malformed(
            "recipient key is a low-order point",
        ));
    }
    let (cipher, nonce) = body_cipher(shared.as_bytes(), &ephemeral_public, recipient);
    let body = encode_body(keys);
    let sealed = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: body.as_bytes(),
                aad: out.as_bytes(),
            },
        )
        .map_err(|_| KeyloadError::Undecryptable)?;
    out.push_str("ciphertext: ");
    out.push_str(&hex::encode_upper(&sealed));
    out.push('\n');
    let signature = kmc.sign(out.as_bytes());
    out.push_str("signature: ");
    out.push_str(&hex::encode_upper(&signature.to_bytes()));
    out.push('\n');
    Ok(out)
}

fn body_cipher(
    shared: &[u8; 32],
    ephemeral: &SecurityModulePublicKey,
    recipient: &SecurityModulePublicKey,
) -> (ChaCha20Poly1305, Nonce) {
    let hk = Hkdf::<Sha256>::new(Some(HKDF_SALT), shared);
    let mut info = [0u8; 64];
    info[..32].copy_from_slice(&ephemeral.0);
    info[32..].copy_from_slice(&recipient.0);
    let mut okm = Zeroizing::new([0u8; 44]);
    // 44 bytes is far below HKDF-SHA-256's limit of 255 * 32: expand cannot fail.
    let _ = hk.expand(&info, okm.as_mut());
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&okm[..32]);
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&okm[32..]);
    (ChaCha20Poly1305::new(&(*key).into()), Nonce::from(nonce))
}

fn encode_body(keys: &[KeyloadKey]) -> Zeroizing<String> {
    // Room for every record up front: a growing String would leave copies of earlier keys in
    // freed memory. A record takes under 400 bytes.
    let mut body = Zeroizing::new(String::with_capacity(512 * keys.len()));
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            body.push('\n');
        }
        let a = &k.attributes;
        body.push_str(&format!(
            "key-id: {}\nsupply-group: {}\nkey-type: {}\ndkga: {}\nkrn: {}\nken: {}\nbase-date: {}\nactivation: {}\nexpiry: {}\nissued-until: {}\ncredit-limit: {}\nkcv: {}\nkey: ",
            k.key_id,
            a.supply_group,
            a.key_type,
            a.derivation,
            a.key_revision,
            a.key_expiry,
            a.base_date,
            a.activation,
            a.expiry,
            a.issued_until,
            credit_limit_text(a.credit_limit),
            k.check_value,
        ));
        let mut hex_key = Zeroizing::new(hex::encode_upper(k.key.expose_secret()));
        body.push_str(&hex_key);
        hex_key.zeroize();
        body.push('\n');
    }
    body
}

pub(crate) fn credit_limit_text(limit: CreditLimit) -> String {
    if limit == CreditLimit::NONE {
        "none".to_owned()
    } else {
        limit.get().to_string()
    }
}

pub(crate) fn parse_credit_limit(text: &str) -> Option<CreditLimit> {
    if text == "none" {
        Some(CreditLimit::NONE)
    } else {
        text.parse().ok().map(CreditLimit::new)
    }
}

/// Reads `name: value` lines in a fixed order.
struct Lines<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Lines<'a> {
    /// The next complete line; `Truncated` when the text ends first.
    fn line(&mut self) -> Result<&'a str, KeyloadError> {
        let rest = &self.text[self.pos..];
        let end = rest.find('\n').ok_or(KeyloadError::Truncated)?;
        self.pos += end + 1;
        Ok(&rest[..end])
    }

    fn field(&mut self, name: &'static str) -> Result<&'a str, KeyloadError> {
        let line = self.line()?;
        line.strip_prefix(name)
            .and_then(|l| l.strip_prefix(": "))
            .ok_or(KeyloadError::Malformed(name))
    }
}

fn parse_field<T: FromStr>(value: &str, name: &'static str) -> Result<T, KeyloadError> {
    value.parse().map_err(|_| KeyloadError::Malformed(name))
}

/// Parses a keyload file without verifying it.
///
/// # Errors
/// [`KeyloadError::Truncated`], [`KeyloadError::Malformed`] or
/// [`KeyloadError::UnsupportedVersion`].
pub fn parse(file: &[u8]) -> Result<ParsedKeyload<'_>, KeyloadError> {
    let text = std::str::from_utf8(file).map_err(|_| KeyloadError::Malformed("not UTF-8 text"))?;
    let mut lines = Lines { text, pos: 0 };
    let magic = lines.line()?;
    if magic != MAGIC {
        return Err(if magic.starts_with("STS-KEYLOAD-FILE") {
            KeyloadError::UnsupportedVersion
        } else {
            KeyloadError::Malformed("first line")
        });
    }
    let serial = parse_field(lines.field("serial")?, "serial")?;
    let security_module = parse_field(lines.field("security-module")?, "security-module")?;
    let recipient = parse_field(lines.field("recipient-key")?, "recipient-key")?;
    let kmc = parse_field(lines.field("kmc-key")?, "kmc-key")?;
    let created = parse_field(lines.field("created")?, "created")?;
    let key_count = parse_field(lines.field("keys")?, "keys")?;
    let ephemeral: SecurityModulePublicKey =
        parse_field(lines.field("ephemeral-key")?, "ephemeral-key")?;
    let aad = &text.as_bytes()[..lines.pos];
    let ciphertext = hex::decode(lines.field("ciphertext")?)
        .filter(|c| c.len() >= 16)
        .ok_or(KeyloadError::Malformed("ciphertext"))?;
    let signed = &text.as_bytes()[..lines.pos];
    let signature = hex::decode_array::<64>(lines.field("signature")?)
        .map(|b| Signature::from_bytes(&b))
        .ok_or(KeyloadError::Malformed("signature"))?;
    if lines.pos != text.len() {
        return Err(KeyloadError::Malformed("text after the signature"));
    }
    Ok(ParsedKeyload {
        header: KeyloadHeader {
            serial,
            security_module,
            recipient,
            kmc,
            created,
            key_count,
        },
        ephemeral: ephemeral.0,
        aad,
        signed,
        ciphertext,
        signature,
    })
}

impl ParsedKeyload<'_> {
    /// Checks the KMC signature over the whole file with the trusted key.
    ///
    /// # Errors
    /// [`KeyloadError::BadSignature`].
    pub fn verify(&self, trusted: &KmcPublicKey) -> Result<(), KeyloadError> {
        trusted
            .0
            .verify_strict(self.signed, &self.signature)
            .map_err(|_| KeyloadError::BadSignature)
    }

    /// Decrypts the body with the recipient's secret key and reads the keys.
    ///
    /// Call [`ParsedKeyload::verify`] first.
    ///
    /// # Errors
    /// [`KeyloadError::OtherRecipientKey`], [`KeyloadError::Undecryptable`],
    /// [`KeyloadError::Malformed`] for a body that does not read, [`KeyloadError::CheckValue`].
    pub fn open(&self, recipient: &RecipientSecret) -> Result<Vec<KeyloadKey>, KeyloadError> {
        if recipient.public_key() != self.header.recipient {
            return Err(KeyloadError::OtherRecipientKey);
        }
        let shared = recipient.0.diffie_hellman(&PublicKey::from(self.ephemeral));
        let (cipher, nonce) = body_cipher(
            shared.as_bytes(),
            &SecurityModulePublicKey(self.ephemeral),
            &self.header.recipient,
        );
        let body = Zeroizing::new(
            cipher
                .decrypt(
                    &nonce,
                    Payload {
                        msg: &self.ciphertext,
                        aad: self.aad,
                    },
                )
                .map_err(|_| KeyloadError::Undecryptable)?,
        );
        let text = std::str::from_utf8(&body).map_err(|_| KeyloadError::Malformed("body"))?;
        let keys = decode_body(text)?;
        if keys.len() != self.header.key_count {
            return Err(KeyloadError::Malformed("keys"));
        }
        Ok(keys)
    }
}

fn decode_body(text: &str) -> Result<Vec<KeyloadKey>, KeyloadError> {
    let mut lines = Lines { text, pos: 0 };
    let mut keys = Vec::new();
    loop {
        let key_id = parse_field(lines.field("key-id")?, "key-id")?;
        let supply_group: SupplyGroupCode =
            parse_field(lines.field("supply-group")?, "supply-group")?;
        let key_type: VendingKeyType = parse_field(lines.field("key-type")?, "key-type")?;
        let derivation: KeyDerivationAlgorithm = parse_field(lines.field("dkga")?, "dkga")?;
        let key_revision: KeyRevisionNumber = parse_field(lines.field("krn")?, "krn")?;
        let key_expiry: KeyExpiryNumber = parse_field(lines.field("ken")?, "ken")?;
        let base_date: BaseDate = parse_field(lines.field("base-date")?, "base-date")?;
        let activation = parse_field(lines.field("activation")?, "activation")?;
        let expiry = parse_field(lines.field("expiry")?, "expiry")?;
        let issued_until = parse_field(lines.field("issued-until")?, "issued-until")?;
        let credit_limit = parse_credit_limit(lines.field("credit-limit")?)
            .ok_or(KeyloadError::Malformed("credit-limit"))?;
        let check_value =
            KeyCheckValue::from_hex(lines.field("kcv")?).ok_or(KeyloadError::Malformed("kcv"))?;
        let key = VendingKey::from_hex(lines.field("key")?)
            .map_err(|_| KeyloadError::Malformed("key"))?;
        if key.expose_secret().len() != derivation.vending_key_len() {
            return Err(KeyloadError::Malformed("key length"));
        }
        if KeyCheckValue::of(&key) != check_value {
            return Err(KeyloadError::CheckValue(key_id));
        }
        keys.push(KeyloadKey {
            key_id,
            attributes: KeyAttributes {
                supply_group,
                key_type,
                derivation,
                key_revision,
                key_expiry,
                base_date,
                activation,
                expiry,
                issued_until,
                credit_limit,
            },
            check_value,
            key,
        });
        if lines.pos == text.len() {
            return Ok(keys);
        }
        if !lines.line()?.is_empty() {
            return Err(KeyloadError::Malformed("record separator"));
        }
    }
}

/// A keyload file as the KMC issues it: UTF-8 text, see `docs/keyload-format.md`.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyloadFile(String);

impl KeyloadFile {
    pub(crate) fn new(text: String) -> Self {
        Self(text)
    }

    /// The file's bytes, to write to disk.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The file's text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for KeyloadFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyloadFile({} bytes)", self.0.len())
    }
}

/// The canonical text of a key's attributes: bound into the wrapping of the key at rest, so
/// that a changed attribute in a store makes the key unusable rather than more usable.
pub(crate) fn attributes_binding(attributes: &KeyAttributes) -> String {
    let a = attributes;
    format!(
        "sgc={} type={} dkga={} krn={} ken={} bd={} act={} exp={} iut={} clm={}",
        a.supply_group,
        a.key_type,
        a.derivation,
        a.key_revision,
        a.key_expiry,
        a.base_date,
        a.activation.unix_minutes(),
        a.expiry.unix_minutes(),
        a.issued_until.unix_minutes(),
        credit_limit_text(a.credit_limit)
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use sts_core::{BaseDate, KeyDerivationAlgorithm, KeyExpiryNumber};

    use super::*;
    use crate::{CreditLimit, generate_vending_key};

    fn key(id: i64, derivation: KeyDerivationAlgorithm) -> KeyloadKey {
        let key = generate_vending_key(derivation).unwrap();
        KeyloadKey {
            key_id: KeyId::from_db(id),
            attributes: KeyAttributes {
                supply_group: "123456".parse().unwrap(),
                key_type: VendingKeyType::Unique,
                derivation,
                key_revision: "3".parse().unwrap(),
                key_expiry: KeyExpiryNumber::from(200),
                base_date: BaseDate::Y2014,
                activation: "2026-01-01 00:00".parse().unwrap(),
                expiry: "2030-01-01 00:00".parse().unwrap(),
                issued_until: "2029-01-01 00:00".parse().unwrap(),
                credit_limit: CreditLimit::new(123_456),
            },
            check_value: KeyCheckValue::of(&key),
            key,
        }
    }

    struct Fixture {
        kmc: SigningKey,
        sm: RecipientSecret,
        keys: Vec<KeyloadKey>,
        file: String,
    }

    fn fixture() -> Fixture {
        let kmc = SigningKey::from_bytes(&[7u8; 32]);
        let sm = RecipientSecret::generate().unwrap();
        let keys = vec![
            key(1, KeyDerivationAlgorithm::Dkga02),
            key(2, KeyDerivationAlgorithm::Dkga04),
        ];
        let file = seal(
            5,
            &"SM-1".parse().unwrap(),
            &sm.public_key(),
            &kmc,
            "2026-06-01 12:00".parse().unwrap(),
            &keys,
        )
        .unwrap();
        Fixture {
            kmc,
            sm,
            keys,
            file,
        }
    }

    fn open_all(f: &Fixture, bytes: &[u8]) -> Result<Vec<KeyloadKey>, KeyloadError> {
        let parsed = parse(bytes)?;
        parsed.verify(&KmcPublicKey::from_signing(&f.kmc))?;
        parsed.open(&f.sm)
    }

    #[test]
    fn round_trip() {
        let f = fixture();
        let parsed = parse(f.file.as_bytes()).unwrap();
        assert_eq!(parsed.header.serial, 5);
        assert_eq!(parsed.header.key_count, 2);
        let opened = open_all(&f, f.file.as_bytes()).unwrap();
        for (a, b) in opened.iter().zip(&f.keys) {
            assert_eq!(a.key, b.key);
            assert_eq!(a.attributes, b.attributes);
            assert_eq!(a.check_value, b.check_value);
            assert_eq!(a.key_id, b.key_id);
        }
        let stranger = RecipientSecret::generate().unwrap();
        assert!(matches!(
            parse(f.file.as_bytes()).unwrap().open(&stranger),
            Err(KeyloadError::OtherRecipientKey)
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn any_bytes_are_refused_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let f = fixture();
            prop_assert!(open_all(&f, &bytes).is_err());
        }

        #[test]
        fn any_changed_byte_is_refused(at in 0usize..10_000, delta in 1u8..=255) {
            let f = fixture();
            let mut bytes = f.file.clone().into_bytes();
            let at = at % bytes.len();
            bytes[at] = bytes[at].wrapping_add(delta);
            prop_assert!(open_all(&f, &bytes).is_err());
        }
    }
}
