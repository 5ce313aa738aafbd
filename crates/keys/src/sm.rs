//! The virtual security module: holds vending keys wrapped under its KEK, imports keyload
//! files addressed to it, issues tokens with its keys under their attributes, and verifies
//! tokens.

mod batch;
mod group;
mod issue;
mod key_change;
mod tids;
mod verify;
mod writer;

pub use issue::{IssuedToken, TokenRequest};
pub use key_change::{IssuedKeyChange, KeyChangeRequest};
pub use verify::{Verified, describe};

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex},
};

use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::{Row, SqliteConnection, sqlite::SqlitePool};
use sts_core::{
    DecodeError, DecoderKeyGenerator, DeriveError, EncodeError, KeyRevisionNumber, KeyType,
    SupplyGroupCode, TidError, UtcMinute, VendingKey,
};
use zeroize::Zeroizing;

use crate::{
    AuditEntry, AuditError, Clock, KeyAttributes, KeyCheckValue, KmcPublicKey, Passphrase,
    RecipientSecret, SecurityModuleId, SecurityModulePublicKey, SystemClock, VendingKeyType, audit,
    hex,
    keyload::{self, KeyloadError, attributes_binding},
    random::RandomError,
    store::{self, StoreError, StoreKind},
    wrap::{KdfCost, KdfParams, KeyWrapper, PASSPHRASE_SCHEME, PassphraseWrapper, WrapError},
};

/// A security module request that is refused or fails.
#[derive(Debug, thiserror::Error)]
pub enum SmError {
    /// The passphrase does not open this store's key-encryption key.
    #[error("wrong passphrase for this security module store")]
    WrongPassphrase,
    /// The store's secrets are wrapped by another backend than the one given.
    #[error("the store's keys are wrapped with {store}, not {given}")]
    WrongKeyWrapper {
        /// The store's scheme.
        store: String,
        /// The scheme given.
        given: &'static str,
    },
    /// `create` on a store that already holds a security module.
    #[error("the store is already initialized")]
    AlreadyInitialized,
    /// A keyload file is refused before anything is imported.
    #[error(transparent)]
    Keyload(#[from] KeyloadError),
    /// The keyload file carries a key revision older than (or as old as) one this module has
    /// seen: a replayed file.
    #[error(
        "replayed keyload file: {key_type} of supply group {supply_group} revision {offered} (file {serial}) is not newer than the held revision {held} (file {held_serial})"
    )]
    ReplayedRevision {
        /// The supply group.
        supply_group: SupplyGroupCode,
        /// The vending key type.
        key_type: VendingKeyType,
        /// The revision in the file.
        offered: KeyRevisionNumber,
        /// The file's serial.
        serial: u64,
        /// The newest revision held.
        held: KeyRevisionNumber,
        /// The serial of the file that loaded it.
        held_serial: u64,
    },
    /// The keyload file carries a different key for a revision this module holds.
    #[error(
        "the keyload file has a different {key_type} for supply group {supply_group} revision {revision} than the one held"
    )]
    ConflictingKey {
        /// The supply group.
        supply_group: SupplyGroupCode,
        /// The vending key type.
        key_type: VendingKeyType,
        /// The revision.
        revision: KeyRevisionNumber,
    },
    /// A DITK (key type 0) is not derived from a vending key.
    #[error("a meter with a DITK (key type 0) has no vending key")]
    InitializationKey,
    /// This module holds no vending key for the meter's SGC, key type and KRN.
    #[error(
        "no {key_type} for supply group {supply_group} revision {revision} is loaded in this security module"
    )]
    NoKey {
        /// The supply group.
        supply_group: SupplyGroupCode,
        /// The vending key type.
        key_type: VendingKeyType,
        /// The revision.
        revision: KeyRevisionNumber,
    },
    /// The meter's DKGA or base date differs from the key's.
    #[error("the meter description does not fit the vending key: {0}")]
    KeyMismatch(&'static str),
    /// The key's activation time (ACT) has not come.
    #[error("the vending key is not active until {activation}")]
    KeyNotYetActive {
        /// ACT.
        activation: UtcMinute,
    },
    /// The key's issued-until time (IUT) has passed: expired for issuing.
    #[error("the vending key may not issue tokens from {issued_until} (issued-until)")]
    KeyExpiredForIssuing {
        /// IUT.
        issued_until: UtcMinute,
    },
    /// The token's TID is past the key expiry number: `TID >> 16 > KEN` (CTSA16).
    #[error("the token's TID is past the key expiry number {key_expiry}")]
    KeyExpiryNumberPassed {
        /// KEN.
        key_expiry: sts_core::KeyExpiryNumber,
    },
    /// The credit would take the key's total past its credit limit.
    #[error("credit limit exceeded: {issued} issued + {requested} requested > limit {limit}")]
    CreditLimitExceeded {
        /// The limit.
        limit: u64,
        /// Credit issued so far under the key.
        issued: u64,
        /// This token's credit.
        requested: u64,
    },
    /// A default key (VDDK) cannot issue credit tokens.
    #[error("a default key (VDDK, key type 1) cannot issue credit tokens")]
    DefaultKeyCredit,
    /// The decoder key cannot be derived.
    #[error(transparent)]
    Derive(#[from] DeriveError),
    /// The token cannot be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// No TID for the time under the base date.
    #[error(transparent)]
    Tid(#[from] TidError),
    /// The token does not decode under the meter's key.
    #[error("the token does not verify for this meter: {0}")]
    Decode(#[from] DecodeError),
    /// Key wrapping failed (a wrapped key that no longer opens means a tampered store).
    #[error(transparent)]
    Wrap(#[from] WrapError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The OS CSPRNG failed.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// The batch was issued in a group with other callers' batches (see
    /// [`SecurityModule::issue`]) whose leading caller went away while the group committed:
    /// its tokens may be recorded in the audit log, but none can be returned. It is not
    /// tried again, which could issue them twice.
    #[error(
        "the batch was cut short while committing with other callers' batches: its tokens may be recorded in the audit log, but none is returned"
    )]
    BatchCutShort,
    /// The batch was issued in a group with other callers' batches (see
    /// [`SecurityModule::issue`]), and what failed the group (the store, the OS CSPRNG)
    /// failed it too: nothing of the group was issued.
    #[error("the commit this batch shared with other callers' batches failed: {0}")]
    SharedCommitFailed(#[source] Arc<SmError>),
}

impl From<sqlx::Error> for SmError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

/// A vending key the module holds: its attributes and use, never its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldKey {
    /// The KMC's key record ID.
    pub kmc_key_id: i64,
    /// The attributes.
    pub attributes: KeyAttributes,
    /// The key check value.
    pub check_value: KeyCheckValue,
    /// Credit issued so far under the key by this module (see [`crate::CreditLimit`]).
    pub credit_issued: u64,
    /// The serial of the keyload file that loaded it.
    pub keyload_serial: u64,
}

/// What an import loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// The file's serial.
    pub serial: u64,
    /// The keys loaded: attributes and check values.
    pub keys: Vec<(KeyAttributes, KeyCheckValue)>,
    /// The audit entry.
    pub audit_sequence: u64,
}

/// Which key: (SGC, vending key type, KRN).
type Slot = (u32, VendingKeyType, u8);

/// An unwrapped key, cached: the generator (its DES schedule or HMAC state) and the
/// attributes its wrapping authenticated.
struct CachedKey {
    generator: DecoderKeyGenerator,
    attributes: KeyAttributes,
    check_value: KeyCheckValue,
}

/// A security module over its store.
///
/// # Security
/// Unwrapped keys live only in memory, as [`DecoderKeyGenerator`]s (zeroized on drop), cached
/// for speed and dropped with the module or when a keyload replaces them.
pub struct SecurityModule {
    pool: SqlitePool,
    wrapper: Box<dyn KeyWrapper>,
    id: SecurityModuleId,
    recipient: RecipientSecret,
    trusted_kmc: KmcPublicKey,
    clock: Arc<dyn Clock>,
    cache: Mutex<HashMap<Slot, Arc<CachedKey>>>,
    /// The connection batches write through, and what is known at the audit head.
    writer: tokio::sync::Mutex<writer::Writer>,
    /// Token batches waiting for the writer, to be issued as a group.
    queue: group::Queue,
}

impl std::fmt::Debug for SecurityModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecurityModule({}, ..)", self.id)
    }
}

const KDF: &str = "kdf";
const KEK_SCHEME: &str = "kek-scheme";
const KEK_CHECK: &str = "kek-check";
const SM_ID: &str = "sm-id";
const KMC_KEY: &str = "trusted-kmc-key";
const RECIPIENT_SECRET: &str = "recipient-secret";
const KEK_CHECK_BINDING: &[u8] = b"sm kek-check";

fn recipient_binding(id: &SecurityModuleId) -> Vec<u8> {
    format!("sm {id} recipient-secret").into_bytes()
}

fn key_binding(id: &SecurityModuleId, kmc_key_id: i64, attributes: &KeyAttributes) -> Vec<u8> {
    format!(
        "sm {id} vending-key kmc-id={kmc_key_id} {}",
        attributes_binding(attributes)
    )
    .into_bytes()
}

fn slot(a: &KeyAttributes) -> Slot {
    (a.supply_group.get(), a.key_type, a.key_revision.get())
}

impl SecurityModule {
    /// Creates a security module in a new store: its ID, the KMC key it trusts, an X25519 key
    /// pair and a KEK from `passphrase` (Argon2id with `cost`).
    ///
    /// # Errors
    /// [`SmError::AlreadyInitialized`]; store and randomness failures.
    pub async fn create(
        path: &Path,
        passphrase: &Passphrase,
        cost: KdfCost,
        id: SecurityModuleId,
        trusted_kmc: KmcPublicKey,
    ) -> Result<Self, SmError> {
        let params = KdfParams::generate(cost)?;
        let wrapper = PassphraseWrapper::derive(passphrase, &params)?;
        Self::create_inner(path, Box::new(wrapper), Some(&params), id, trusted_kmc).await
    }

    /// Creates a security module whose secrets are wrapped by `wrapper` (for example a KEK
    /// held in an HSM); open it again with [`SecurityModule::open_with_wrapper`].
    ///
    /// # Errors
    /// As [`SecurityModule::create`].
    pub async fn create_with_wrapper(
        path: &Path,
        wrapper: Box<dyn KeyWrapper>,
        id: SecurityModuleId,
        trusted_kmc: KmcPublicKey,
    ) -> Result<Self, SmError> {
        Self::create_inner(path, wrapper, None, id, trusted_kmc).await
    }

    async fn create_inner(
        path: &Path,
        wrapper: Box<dyn KeyWrapper>,
        params: Option<&KdfParams>,
        id: SecurityModuleId,
        trusted_kmc: KmcPublicKey,
    ) -> Result<Self, SmError> {
        let pool = store::open(path, StoreKind::SecurityModule, true).await?;
        let mut tx = pool.begin().await?;
        if store::meta(&mut tx, KEK_CHECK).await?.is_some() {
            return Err(SmError::AlreadyInitialized);
        }
        let recipient = RecipientSecret::generate()?;
        if let Some(params) = params {
            store::set_meta(&mut tx, KDF, &params.to_string()).await?;
        }
        store::set_meta(&mut tx, KEK_SCHEME, wrapper.scheme()).await?;
        let check = wrapper.wrap(KEK_CHECK_BINDING, KEK_CHECK_BINDING)?;
        store::set_meta(&mut tx, KEK_CHECK, &hex::encode_upper(&check)).await?;
        store::set_meta(&mut tx, SM_ID, id.as_str()).await?;
        store::set_meta(&mut tx, KMC_KEY, &trusted_kmc.to_string()).await?;
        let wrapped = wrapper.wrap(
            recipient.to_secret_bytes().as_slice(),
            &recipient_binding(&id),
        )?;
        store::set_meta(&mut tx, RECIPIENT_SECRET, &hex::encode_upper(&wrapped)).await?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let cost = params.map(|p| {
            let c = p.cost();
            json!({"m": c.memory_kib, "t": c.iterations, "p": c.parallelism})
        });
        audit::append(
            &mut tx,
            clock.unix_seconds(),
            &format!("sm:{id}"),
            "sm.create",
            &json!({
                "sm": id.as_str(),
                "public_key": recipient.public_key().to_string(),
                "trusted_kmc_key": trusted_kmc.to_string(),
                "kek": wrapper.scheme(),
                "argon2id": cost,
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(Self {
            pool,
            wrapper,
            id,
            recipient,
            trusted_kmc,
            clock,
            cache: Mutex::new(HashMap::new()),
            writer: tokio::sync::Mutex::default(),
            queue: group::Queue::default(),
        })
    }

    /// Opens an existing security module store with its passphrase.
    ///
    /// # Errors
    /// [`SmError::WrongPassphrase`]; [`SmError::WrongKeyWrapper`] for a store created with
    /// another backend; store failures.
    pub async fn open(path: &Path, passphrase: &Passphrase) -> Result<Self, SmError> {
        let pool = store::open(path, StoreKind::SecurityModule, false).await?;
        let mut conn = pool.acquire().await?;
        let params = store::meta(&mut conn, KDF).await?;
        let scheme = store::required_meta(&mut conn, KEK_SCHEME).await?;
        drop(conn);
        let Some(params) = params else {
            return Err(SmError::WrongKeyWrapper {
                store: scheme,
                given: PASSPHRASE_SCHEME,
            });
        };
        let wrapper = PassphraseWrapper::derive(passphrase, &params.parse()?)?;
        Self::open_inner(pool, Box::new(wrapper)).await
    }

    /// Opens an existing security module store whose secrets `wrapper` wraps.
    ///
    /// # Errors
    /// As [`SecurityModule::open`].
    pub async fn open_with_wrapper(
        path: &Path,
        wrapper: Box<dyn KeyWrapper>,
    ) -> Result<Self, SmError> {
        let pool = store::open(path, StoreKind::SecurityModule, false).await?;
        Self::open_inner(pool, wrapper).await
    }

    async fn open_inner(pool: SqlitePool, wrapper: Box<dyn KeyWrapper>) -> Result<Self, SmError> {
        let mut conn = pool.acquire().await?;
        let scheme = store::required_meta(&mut conn, KEK_SCHEME).await?;
        if scheme != wrapper.scheme() {
            return Err(SmError::WrongKeyWrapper {
                store: scheme,
                given: wrapper.scheme(),
            });
        }
        let check = hex_meta(&mut conn, KEK_CHECK).await?;
        match wrapper.unwrap(&check, KEK_CHECK_BINDING) {
            Ok(_) => {}
            Err(WrapError::Unauthentic) => return Err(SmError::WrongPassphrase),
            Err(e) => return Err(e.into()),
        }
        let corrupt = |what: &str| StoreError::Corrupt(format!("meta value {what}"));
        let id: SecurityModuleId = store::required_meta(&mut conn, SM_ID)
            .await?
            .parse()
            .map_err(|_| corrupt(SM_ID))?;
        let trusted_kmc: KmcPublicKey = store::required_meta(&mut conn, KMC_KEY)
            .await?
            .parse()
            .map_err(|_| corrupt(KMC_KEY))?;
        let wrapped = hex_meta(&mut conn, RECIPIENT_SECRET).await?;
        let secret = wrapper.unwrap(&wrapped, &recipient_binding(&id))?;
        let bytes: [u8; 32] = secret
            .expose_secret()
            .try_into()
            .map_err(|_| corrupt(RECIPIENT_SECRET))?;
        let bytes = Zeroizing::new(bytes);
        let recipient = RecipientSecret::from_bytes(*bytes);
        drop(conn);
        Ok(Self {
            pool,
            wrapper,
            id,
            recipient,
            trusted_kmc,
            clock: Arc::new(SystemClock),
            cache: Mutex::new(HashMap::new()),
            writer: tokio::sync::Mutex::default(),
            queue: group::Queue::default(),
        })
    }

    /// Uses `clock` for the time from now on.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The module's ID.
    #[must_use]
    pub fn id(&self) -> &SecurityModuleId {
        &self.id
    }

    /// The public key keyload files for this module are encrypted to.
    #[must_use]
    pub fn public_key(&self) -> SecurityModulePublicKey {
        self.recipient.public_key()
    }

    /// The KMC key this module trusts.
    #[must_use]
    pub fn trusted_kmc(&self) -> KmcPublicKey {
        self.trusted_kmc
    }

    fn actor(&self) -> String {
        format!("sm:{}", self.id)
    }

    /// Step 8: imports a keyload file.
    ///
    /// Accepted only when the file parses, is addressed to this module's ID and public key,
    /// its signature verifies against the trusted KMC key, its body decrypts, every key
    /// matches its check value, and every key is newer than what the module holds for that
    /// supply group and key type: a higher KRN, or the same KRN from a later file (attribute
    /// updates). Anything else is refused and nothing changes.
    ///
    /// # Errors
    /// [`SmError::Keyload`] (truncated, malformed, other module, bad signature ...),
    /// [`SmError::ReplayedRevision`], [`SmError::ConflictingKey`].
    pub async fn import_keyload(&self, file: &[u8]) -> Result<ImportReport, SmError> {
        let parsed = keyload::parse(file)?;
        if parsed.header.security_module != self.id {
            return Err(KeyloadError::OtherSecurityModule {
                addressed: parsed.header.security_module.clone(),
                this: self.id.clone(),
            }
            .into());
        }
        parsed.verify(&self.trusted_kmc)?;
        let keys = parsed.open(&self.recipient)?;
        let serial = parsed.header.serial;
        let serial_db = i64::try_from(serial).map_err(|_| KeyloadError::Malformed("serial"))?;
        let now = self.clock.unix_seconds();
        // IMMEDIATE: batches write through a connection of their own (see `writer`); take
        // the write lock before reading what the import decides on.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut loaded = Vec::with_capacity(keys.len());
        for k in &keys {
            let a = &k.attributes;
            let newest = sqlx::query(
                "SELECT krn, keyload_serial, kcv FROM keys WHERE sgc = ? AND key_type = ? ORDER BY krn DESC, keyload_serial DESC LIMIT 1",
            )
            .bind(i64::from(a.supply_group.get()))
            .bind(a.key_type.abbreviation())
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = newest {
                let held: KeyRevisionNumber = row
                    .get::<String, _>(0)
                    .parse()
                    .map_err(|_| StoreError::Corrupt("key krn".into()))?;
                let held_serial = u64::try_from(row.get::<i64, _>(1)).unwrap_or(0);
                if a.key_revision < held || (a.key_revision == held && serial <= held_serial) {
                    return Err(SmError::ReplayedRevision {
                        supply_group: a.supply_group,
                        key_type: a.key_type,
                        offered: a.key_revision,
                        serial,
                        held,
                        held_serial,
                    });
                }
                if a.key_revision == held
                    && KeyCheckValue::from_hex(&row.get::<String, _>(2)) != Some(k.check_value)
                {
                    return Err(SmError::ConflictingKey {
                        supply_group: a.supply_group,
                        key_type: a.key_type,
                        revision: held,
                    });
                }
            }
            let wrapped = self.wrapper.wrap(
                k.key.expose_secret(),
                &key_binding(&self.id, k.key_id.get(), a),
            )?;
            sqlx::query(
                "INSERT INTO keys (sgc, key_type, krn, kmc_key_id, dkga, ken, base_date, activation, expiry, issued_until, credit_limit, kcv, wrapped, keyload_serial, loaded) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (sgc, key_type, krn) DO UPDATE SET kmc_key_id = excluded.kmc_key_id, dkga = excluded.dkga, ken = excluded.ken, \
                 base_date = excluded.base_date, activation = excluded.activation, expiry = excluded.expiry, issued_until = excluded.issued_until, \
                 credit_limit = excluded.credit_limit, kcv = excluded.kcv, wrapped = excluded.wrapped, keyload_serial = excluded.keyload_serial, loaded = excluded.loaded",
            )
            .bind(i64::from(a.supply_group.get()))
            .bind(a.key_type.abbreviation())
            .bind(a.key_revision.to_string())
            .bind(k.key_id.get())
            .bind(a.derivation.to_string())
            .bind(a.key_expiry.to_string())
            .bind(a.base_date.to_string())
            .bind(a.activation.to_string())
            .bind(a.expiry.to_string())
            .bind(a.issued_until.to_string())
            .bind(keyload::credit_limit_text(a.credit_limit))
            .bind(k.check_value.to_hex())
            .bind(wrapped)
            .bind(serial_db)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            loaded.push((*a, k.check_value));
        }
        drop(keys);
        let digest = hex::encode_upper(&Sha256::digest(file));
        sqlx::query("INSERT INTO keyload_imports (serial, sha256, imported) VALUES (?, ?, ?)")
            .bind(serial_db)
            .bind(&digest)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let listed: Vec<_> = loaded
            .iter()
            .map(|(a, kcv)| {
                let mut v = crate::kmc::attributes_json(a);
                v["kcv"] = json!(kcv.to_hex());
                v
            })
            .collect();
        let sequence = audit::append(
            &mut tx,
            now,
            &self.actor(),
            "keyload.import",
            &json!({"sm": self.id.as_str(), "serial": serial, "sha256": digest, "keys": listed}),
        )
        .await?;
        tx.commit().await?;
        if let Ok(mut cache) = self.cache.lock() {
            for (a, _) in &loaded {
                cache.remove(&slot(a));
            }
        }
        Ok(ImportReport {
            serial,
            keys: loaded,
            audit_sequence: sequence,
        })
    }

    /// The keys this module holds.
    ///
    /// # Errors
    /// Store failures.
    pub async fn keys(&self) -> Result<Vec<HeldKey>, SmError> {
        let rows = sqlx::query("SELECT * FROM keys ORDER BY sgc, key_type, krn")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(HeldKey {
                    kmc_key_id: row.try_get("kmc_key_id")?,
                    attributes: store::read_attributes(row)?,
                    check_value: KeyCheckValue::from_hex(&row.try_get::<String, _>("kcv")?)
                        .ok_or_else(|| StoreError::Corrupt("kcv".into()))?,
                    credit_issued: u64::try_from(row.try_get::<i64, _>("credit_issued")?)
                        .unwrap_or(0),
                    keyload_serial: u64::try_from(row.try_get::<i64, _>("keyload_serial")?)
                        .unwrap_or(0),
                })
            })
            .collect()
    }

    /// The cached key for a meter's SGC, key type and KRN, unwrapping it on first use.
    async fn key_for(
        &self,
        conn: &mut SqliteConnection,
        supply_group: SupplyGroupCode,
        key_type: KeyType,
        revision: KeyRevisionNumber,
    ) -> Result<Arc<CachedKey>, SmError> {
        let vkt =
            VendingKeyType::for_decoder_key_type(key_type).ok_or(SmError::InitializationKey)?;
        let slot = (supply_group.get(), vkt, revision.get());
        if let Some(hit) = self.cache.lock().ok().and_then(|c| c.get(&slot).cloned()) {
            return Ok(hit);
        }
        let row = sqlx::query("SELECT * FROM keys WHERE sgc = ? AND key_type = ? AND krn = ?")
            .bind(i64::from(supply_group.get()))
            .bind(vkt.abbreviation())
            .bind(revision.to_string())
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(SmError::NoKey {
                supply_group,
                key_type: vkt,
                revision,
            })?;
        let attributes = store::read_attributes(&row)?;
        let kmc_key_id: i64 = row.try_get("kmc_key_id")?;
        let check_value = KeyCheckValue::from_hex(&row.try_get::<String, _>("kcv")?)
            .ok_or_else(|| StoreError::Corrupt("kcv".into()))?;
        let wrapped: Vec<u8> = row.try_get("wrapped")?;
        let secret = self
            .wrapper
            .unwrap(&wrapped, &key_binding(&self.id, kmc_key_id, &attributes))?;
        let key = VendingKey::from_bytes(secret.expose_secret())
            .map_err(|_| StoreError::Corrupt("vending key length".into()))?;
        drop(secret);
        if KeyCheckValue::of(&key) != check_value {
            return Err(
                StoreError::Corrupt("vending key does not match its check value".into()).into(),
            );
        }
        let generator = DecoderKeyGenerator::new(attributes.derivation, &key)?;
        drop(key);
        let cached = Arc::new(CachedKey {
            generator,
            attributes,
            check_value,
        });
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(slot, Arc::clone(&cached));
        }
        Ok(cached)
    }

    /// The audit log, oldest first.
    ///
    /// # Errors
    /// Store failures.
    pub async fn audit_log(&self) -> Result<Vec<AuditEntry>, SmError> {
        let mut conn = self.pool.acquire().await?;
        Ok(audit::load(&mut conn).await?)
    }

    /// Verifies the audit chain and its recorded head; returns the number of entries.
    ///
    /// # Errors
    /// See [`AuditError`].
    pub async fn verify_audit(&self) -> Result<u64, AuditError> {
        let mut conn = self.pool.acquire().await?;
        Ok(audit::verify_connection(&mut conn).await?.count)
    }

    /// Closes the store (checkpointing its WAL); cached keys are wiped.
    pub async fn close(self) {
        self.writer.lock().await.close().await;
        self.pool.close().await;
    }
}

async fn hex_meta(conn: &mut SqliteConnection, name: &str) -> Result<Vec<u8>, StoreError> {
    hex::decode(&store::required_meta(conn, name).await?)
        .ok_or_else(|| StoreError::Corrupt(format!("meta value {name}")))
}
