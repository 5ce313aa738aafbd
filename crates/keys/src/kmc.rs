//! The key management centre: SGC owners, supply group codes, vending keys, key use
//! authorizations and keyload files (STS-detail.md section 10).
//!
//! Every method that changes the store runs in one transaction that also appends to the audit
//! log; a refused request changes nothing.

use std::{path::Path, sync::Arc};

use ed25519_dalek::SigningKey;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::{Row, SqliteConnection, sqlite::SqlitePool};
use sts_core::{KeyRevisionNumber, SupplyGroupCode, UtcMinute, VendingKey};
use zeroize::Zeroizing;

use crate::{
    AuditEntry, AuditError, Clock, KeyAttributes, KeyCheckValue, KeyId, KeyloadFile, KmcPublicKey,
    OwnerId, Passphrase, SecurityModuleId, SecurityModulePublicKey, SystemClock, VendingKeyType,
    audit, hex,
    keyload::{self, KeyloadError, KeyloadKey, attributes_binding},
    random::{self, RandomError},
    store::{self, StoreError, StoreKind},
    vending::{GenerateError, generate_vending_key},
    wrap::{KdfCost, KdfParams, KeyWrapper, PASSPHRASE_SCHEME, PassphraseWrapper, WrapError},
};

/// A KMC request that is refused or fails.
#[derive(Debug, thiserror::Error)]
pub enum KmcError {
    /// The passphrase does not open this store's key-encryption key.
    #[error("wrong passphrase for this KMC store")]
    WrongPassphrase,
    /// The store's secrets are wrapped by another backend than the one given.
    #[error("the store's keys are wrapped with {store}, not {given}")]
    WrongKeyWrapper {
        /// The store's scheme.
        store: String,
        /// The scheme given.
        given: &'static str,
    },
    /// `create` on a store that already holds a KMC.
    #[error("the store is already initialized")]
    AlreadyInitialized,
    /// No owner has this ID.
    #[error("no SGC owner has ID {0}")]
    UnknownOwner(OwnerId),
    /// The supply group was never allocated.
    #[error("supply group {0} is not allocated")]
    UnknownSupplyGroup(SupplyGroupCode),
    /// The supply group belongs to another owner.
    #[error("owner {owner} does not own supply group {supply_group}")]
    WrongOwner {
        /// The owner who asked.
        owner: OwnerId,
        /// The supply group.
        supply_group: SupplyGroupCode,
    },
    /// No vending key has this ID.
    #[error("no vending key has ID {0}")]
    UnknownKey(KeyId),
    /// The security module is not registered.
    #[error("security module {0} is not registered with the KMC")]
    UnknownSecurityModule(SecurityModuleId),
    /// The security module is already registered.
    #[error("security module {0} is already registered")]
    SecurityModuleExists(SecurityModuleId),
    /// No key use authorization for this key and security module.
    #[error("vending key {key} is not authorized for security module {security_module}")]
    NotAuthorized {
        /// The key.
        key: KeyId,
        /// The security module.
        security_module: SecurityModuleId,
    },
    /// A key of this supply group and type already has this or a later revision.
    #[error(
        "supply group {supply_group} already has a {key_type} with revision {latest}; a new key needs a higher KRN"
    )]
    RevisionNotNewer {
        /// The supply group.
        supply_group: SupplyGroupCode,
        /// The vending key type.
        key_type: VendingKeyType,
        /// The latest revision.
        latest: KeyRevisionNumber,
    },
    /// KRN 9 is the last revision.
    #[error("vending key {0} has KRN 9: there is no later revision")]
    RevisionsExhausted(KeyId),
    /// The key's expiry (EXP) has passed: no more keyload files with it.
    #[error("vending key {key} expired at {expiry}: the KMC issues no more keyload files with it")]
    KeyExpired {
        /// The key.
        key: KeyId,
        /// Its expiry.
        expiry: UtcMinute,
    },
    /// The attributes contradict each other or the request.
    #[error("invalid request: {0}")]
    Invalid(&'static str),
    /// Every six-digit SGC is taken (or the random draw kept hitting taken ones).
    #[error("no supply group code is left to allocate")]
    SupplyGroupsExhausted,
    /// The key cannot be generated.
    #[error(transparent)]
    Generate(#[from] GenerateError),
    /// The keyload file cannot be made.
    #[error(transparent)]
    Keyload(#[from] KeyloadError),
    /// Key wrapping failed.
    #[error(transparent)]
    Wrap(#[from] WrapError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The OS CSPRNG failed.
    #[error(transparent)]
    Random(#[from] RandomError),
}

impl From<sqlx::Error> for KmcError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

/// A vending key record: its attributes and check value, never its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The record's ID.
    pub id: KeyId,
    /// The attributes.
    pub attributes: KeyAttributes,
    /// The key check value.
    pub check_value: KeyCheckValue,
}

/// A registered SGC owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The owner's ID.
    pub id: OwnerId,
    /// Name.
    pub name: String,
    /// Contact.
    pub contact: String,
}

/// A key management centre over its store.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use sts_keys::{Kmc, KdfCost, Passphrase};
/// let passphrase = Passphrase::from_env("STS_KMC_PASSPHRASE")?;
/// let kmc = Kmc::create("kmc.sqlite".as_ref(), &passphrase, KdfCost::DEFAULT).await?;
/// let owner = kmc.register_owner("City Power", "keys@example.org").await?;
/// let sgc = kmc.allocate_supply_group(owner).await?;
/// # Ok(()) }
/// ```
pub struct Kmc {
    pool: SqlitePool,
    wrapper: Box<dyn KeyWrapper>,
    signing_key: SigningKey,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Kmc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kmc(public key {}, ..)", self.public_key())
    }
}

const KDF: &str = "kdf";
const KEK_SCHEME: &str = "kek-scheme";
const KEK_CHECK: &str = "kek-check";
const SIGNING_KEY: &str = "signing-key";
const PUBLIC_KEY: &str = "public-key";
const KEK_CHECK_BINDING: &[u8] = b"kmc kek-check";
const SIGNING_KEY_BINDING: &[u8] = b"kmc signing-key";

fn owner_actor(owner: OwnerId) -> String {
    format!("owner:{owner}")
}

fn key_binding(id: KeyId, attributes: &KeyAttributes) -> Vec<u8> {
    format!("kmc vending-key id={id} {}", attributes_binding(attributes)).into_bytes()
}

impl Kmc {
    /// Creates a KMC in a new store file: a KEK from `passphrase` (Argon2id with `cost`, the
    /// parameters and salt stored in the store) and an Ed25519 signing key, stored wrapped.
    ///
    /// # Errors
    /// [`KmcError::AlreadyInitialized`] for a store that holds a KMC; store and randomness
    /// failures.
    pub async fn create(
        path: &Path,
        passphrase: &Passphrase,
        cost: KdfCost,
    ) -> Result<Self, KmcError> {
        let params = KdfParams::generate(cost)?;
        let wrapper = PassphraseWrapper::derive(passphrase, &params)?;
        Self::create_inner(path, Box::new(wrapper), Some(&params)).await
    }

    /// Creates a KMC whose secrets are wrapped by `wrapper` (for example a KEK held in an
    /// HSM); open it again with [`Kmc::open_with_wrapper`] and the same backend.
    ///
    /// # Errors
    /// As [`Kmc::create`].
    pub async fn create_with_wrapper(
        path: &Path,
        wrapper: Box<dyn KeyWrapper>,
    ) -> Result<Self, KmcError> {
        Self::create_inner(path, wrapper, None).await
    }

    async fn create_inner(
        path: &Path,
        wrapper: Box<dyn KeyWrapper>,
        params: Option<&KdfParams>,
    ) -> Result<Self, KmcError> {
        let pool = store::open(path, StoreKind::Kmc, true).await?;
        let mut tx = pool.begin().await?;
        if store::meta(&mut tx, KEK_CHECK).await?.is_some() {
            return Err(KmcError::AlreadyInitialized);
        }
        let seed = Zeroizing::new(random::bytes::<32>()?);
        let signing_key = SigningKey::from_bytes(&seed);
        let public = KmcPublicKey::from_signing(&signing_key);
        if let Some(params) = params {
            store::set_meta(&mut tx, KDF, &params.to_string()).await?;
        }
        store::set_meta(&mut tx, KEK_SCHEME, wrapper.scheme()).await?;
        let check = wrapper.wrap(KEK_CHECK_BINDING, KEK_CHECK_BINDING)?;
        store::set_meta(&mut tx, KEK_CHECK, &hex::encode_upper(&check)).await?;
        let wrapped = wrapper.wrap(seed.as_slice(), SIGNING_KEY_BINDING)?;
        store::set_meta(&mut tx, SIGNING_KEY, &hex::encode_upper(&wrapped)).await?;
        store::set_meta(&mut tx, PUBLIC_KEY, &public.to_string()).await?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let cost = params.map(|p| {
            let c = p.cost();
            json!({"m": c.memory_kib, "t": c.iterations, "p": c.parallelism})
        });
        audit::append(
            &mut tx,
            clock.unix_seconds(),
            "kmc",
            "kmc.create",
            &json!({
                "kmc_public_key": public.to_string(),
                "kek": wrapper.scheme(),
                "argon2id": cost,
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(Self {
            pool,
            wrapper,
            signing_key,
            clock,
        })
    }

    /// Opens an existing KMC store with its passphrase.
    ///
    /// # Errors
    /// [`KmcError::WrongPassphrase`]; [`KmcError::WrongKeyWrapper`] for a store created with
    /// another backend; store failures.
    pub async fn open(path: &Path, passphrase: &Passphrase) -> Result<Self, KmcError> {
        let pool = store::open(path, StoreKind::Kmc, false).await?;
        let mut conn = pool.acquire().await?;
        let params = store::meta(&mut conn, KDF).await?;
        drop(conn);
        let Some(params) = params else {
            return Err(KmcError::WrongKeyWrapper {
                store: scheme_of(&pool).await?,
                given: PASSPHRASE_SCHEME,
            });
        };
        let wrapper = PassphraseWrapper::derive(passphrase, &params.parse()?)?;
        Self::open_inner(pool, Box::new(wrapper)).await
    }

    /// Opens an existing KMC store whose secrets `wrapper` wraps.
    ///
    /// # Errors
    /// As [`Kmc::open`].
    pub async fn open_with_wrapper(
        path: &Path,
        wrapper: Box<dyn KeyWrapper>,
    ) -> Result<Self, KmcError> {
        let pool = store::open(path, StoreKind::Kmc, false).await?;
        Self::open_inner(pool, wrapper).await
    }

    async fn open_inner(pool: SqlitePool, wrapper: Box<dyn KeyWrapper>) -> Result<Self, KmcError> {
        let store_scheme = scheme_of(&pool).await?;
        if store_scheme != wrapper.scheme() {
            return Err(KmcError::WrongKeyWrapper {
                store: store_scheme,
                given: wrapper.scheme(),
            });
        }
        let mut conn = pool.acquire().await?;
        let check = hex_meta(&mut conn, KEK_CHECK).await?;
        match wrapper.unwrap(&check, KEK_CHECK_BINDING) {
            Ok(_) => {}
            Err(WrapError::Unauthentic) => return Err(KmcError::WrongPassphrase),
            Err(e) => return Err(e.into()),
        }
        let wrapped = hex_meta(&mut conn, SIGNING_KEY).await?;
        let seed = wrapper.unwrap(&wrapped, SIGNING_KEY_BINDING)?;
        let seed: &[u8; 32] = seed
            .expose_secret()
            .try_into()
            .map_err(|_| StoreError::Corrupt("signing key length".into()))?;
        let signing_key = SigningKey::from_bytes(seed);
        drop(conn);
        Ok(Self {
            pool,
            wrapper,
            signing_key,
            clock: Arc::new(SystemClock),
        })
    }

    /// Uses `clock` for the time from now on.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The KMC's public key, which security modules trust.
    #[must_use]
    pub fn public_key(&self) -> KmcPublicKey {
        KmcPublicKey::from_signing(&self.signing_key)
    }

    /// Step 1: registers an SGC owner.
    ///
    /// # Errors
    /// [`KmcError::Invalid`] for an empty name or contact; store failures.
    pub async fn register_owner(&self, name: &str, contact: &str) -> Result<OwnerId, KmcError> {
        let (name, contact) = (name.trim(), contact.trim());
        if name.is_empty() || contact.is_empty() {
            return Err(KmcError::Invalid("an owner needs a name and a contact"));
        }
        let now = self.clock.unix_seconds();
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO owners (name, contact, registered) VALUES (?, ?, ?) RETURNING id",
        )
        .bind(name)
        .bind(contact)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .get(0);
        let owner = OwnerId::from_db(id);
        audit::append(
            &mut tx,
            now,
            "kmc",
            "owner.register",
            &json!({"owner": id, "name": name, "contact": contact}),
        )
        .await?;
        tx.commit().await?;
        Ok(owner)
    }

    /// Step 2: allocates a new six-digit supply group code to `owner`, drawn at random from
    /// 100000-999999 among the codes never allocated.
    ///
    /// # Errors
    /// [`KmcError::UnknownOwner`]; [`KmcError::SupplyGroupsExhausted`].
    pub async fn allocate_supply_group(&self, owner: OwnerId) -> Result<SupplyGroupCode, KmcError> {
        let now = self.clock.unix_seconds();
        let mut tx = self.pool.begin().await?;
        require_owner(&mut tx, owner).await?;
        let mut chosen = None;
        for _ in 0..10_000 {
            let draw = u32::from_be_bytes(random::bytes()?);
            // Rejection sampling: no modulo bias.
            if draw >= u32::MAX - u32::MAX % 900_000 {
                continue;
            }
            let candidate = 100_000 + draw % 900_000;
            let taken = sqlx::query("SELECT 1 FROM supply_groups WHERE sgc = ?")
                .bind(i64::from(candidate))
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if !taken {
                chosen = Some(candidate);
                break;
            }
        }
        let sgc = chosen.ok_or(KmcError::SupplyGroupsExhausted)?;
        let code = SupplyGroupCode::try_from(sgc).map_err(|_| KmcError::SupplyGroupsExhausted)?;
        sqlx::query("INSERT INTO supply_groups (sgc, owner_id, allocated) VALUES (?, ?, ?)")
            .bind(i64::from(sgc))
            .bind(owner.get())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        audit::append(
            &mut tx,
            now,
            &owner_actor(owner),
            "supply-group.allocate",
            &json!({"owner": owner.get(), "sgc": code.to_string()}),
        )
        .await?;
        tx.commit().await?;
        Ok(code)
    }

    /// Steps 3 and 4: generates a vending key for the owner's supply group from the OS CSPRNG
    /// and stores it wrapped under the KMC's KEK, bound to its ID and attributes.
    ///
    /// A key for a supply group and key type that already has keys is a new revision: its
    /// KRN must be higher than every earlier one.
    ///
    /// # Errors
    /// [`KmcError::UnknownOwner`], [`KmcError::UnknownSupplyGroup`], [`KmcError::WrongOwner`],
    /// [`KmcError::RevisionNotNewer`], [`KmcError::Invalid`] for contradictory dates,
    /// [`KmcError::Generate`] for DKGA01/03.
    pub async fn request_vending_key(
        &self,
        owner: OwnerId,
        attributes: &KeyAttributes,
    ) -> Result<KeyRecord, KmcError> {
        if attributes.issued_until < attributes.activation
            || attributes.expiry < attributes.activation
        {
            return Err(KmcError::Invalid(
                "activation must come before expiry and issued-until",
            ));
        }
        let now = self.clock.unix_seconds();
        let mut tx = self.pool.begin().await?;
        require_owner(&mut tx, owner).await?;
        require_supply_group_owner(&mut tx, owner, attributes.supply_group).await?;
        let latest: Option<String> = sqlx::query(
            "SELECT krn FROM vending_keys WHERE sgc = ? AND key_type = ? ORDER BY krn DESC LIMIT 1",
        )
        .bind(i64::from(attributes.supply_group.get()))
        .bind(attributes.key_type.abbreviation())
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.get(0));
        let previous = match latest {
            Some(text) => {
                let latest: KeyRevisionNumber = text
                    .parse()
                    .map_err(|_| StoreError::Corrupt("vending key krn".into()))?;
                if attributes.key_revision <= latest {
                    return Err(KmcError::RevisionNotNewer {
                        supply_group: attributes.supply_group,
                        key_type: attributes.key_type,
                        latest,
                    });
                }
                Some(latest)
            }
            None => None,
        };
        let key = generate_vending_key(attributes.derivation)?;
        let check_value = KeyCheckValue::of(&key);
        let id: i64 = sqlx::query("SELECT COALESCE(MAX(id), 0) + 1 FROM vending_keys")
            .fetch_one(&mut *tx)
            .await?
            .get(0);
        let id = KeyId::from_db(id);
        let wrapped = self
            .wrapper
            .wrap(key.expose_secret(), &key_binding(id, attributes))?;
        drop(key);
        let a = attributes;
        sqlx::query(
            "INSERT INTO vending_keys (id, sgc, key_type, dkga, krn, ken, base_date, activation, expiry, issued_until, credit_limit, kcv, wrapped, created) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id.get())
        .bind(i64::from(a.supply_group.get()))
        .bind(a.key_type.abbreviation())
        .bind(a.derivation.to_string())
        .bind(a.key_revision.to_string())
        .bind(a.key_expiry.to_string())
        .bind(a.base_date.to_string())
        .bind(a.activation.to_string())
        .bind(a.expiry.to_string())
        .bind(a.issued_until.to_string())
        .bind(keyload::credit_limit_text(a.credit_limit))
        .bind(check_value.to_hex())
        .bind(wrapped)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        audit::append(
            &mut tx,
            now,
            &owner_actor(owner),
            "vending-key.generate",
            &json!({
                "key": id.get(),
                "kcv": check_value.to_hex(),
                "previous_krn": previous.map(|k| k.to_string()),
                "attributes": attributes_json(attributes),
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(KeyRecord {
            id,
            attributes: *attributes,
            check_value,
        })
    }

    /// Step 3, new revision: a new key with the attributes of `previous` and the next KRN.
    ///
    /// # Errors
    /// [`KmcError::UnknownKey`], [`KmcError::RevisionsExhausted`], and as
    /// [`Kmc::request_vending_key`].
    pub async fn request_key_revision(
        &self,
        owner: OwnerId,
        previous: KeyId,
    ) -> Result<KeyRecord, KmcError> {
        let record = self.key(previous).await?;
        let next = KeyRevisionNumber::try_from(record.attributes.key_revision.get() + 1)
            .map_err(|_| KmcError::RevisionsExhausted(previous))?;
        let attributes = KeyAttributes {
            key_revision: next,
            ..record.attributes
        };
        self.request_vending_key(owner, &attributes).await
    }

    /// Registers a security module and the X25519 public key its keyload files are encrypted
    /// to (a KMC operator's step, before any authorization names the module).
    ///
    /// # Errors
    /// [`KmcError::SecurityModuleExists`]; store failures.
    pub async fn register_security_module(
        &self,
        id: &SecurityModuleId,
        public_key: &SecurityModulePublicKey,
    ) -> Result<(), KmcError> {
        let now = self.clock.unix_seconds();
        let mut tx = self.pool.begin().await?;
        if security_module_key(&mut tx, id).await?.is_some() {
            return Err(KmcError::SecurityModuleExists(id.clone()));
        }
        sqlx::query("INSERT INTO security_modules (id, public_key, registered) VALUES (?, ?, ?)")
            .bind(id.as_str())
            .bind(public_key.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        audit::append(
            &mut tx,
            now,
            "kmc",
            "security-module.register",
            &json!({"sm": id.as_str(), "public_key": public_key.to_string()}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Step 5: the owner of the key's supply group authorizes a security module to use it
    /// (key use authorization). Authorizing twice changes nothing.
    ///
    /// # Errors
    /// [`KmcError::UnknownOwner`], [`KmcError::UnknownKey`], [`KmcError::WrongOwner`],
    /// [`KmcError::UnknownSecurityModule`].
    pub async fn authorize(
        &self,
        owner: OwnerId,
        key: KeyId,
        security_module: &SecurityModuleId,
    ) -> Result<(), KmcError> {
        let now = self.clock.unix_seconds();
        let mut tx = self.pool.begin().await?;
        require_owner(&mut tx, owner).await?;
        let record = load_key(&mut tx, key).await?;
        require_supply_group_owner(&mut tx, owner, record.attributes.supply_group).await?;
        if security_module_key(&mut tx, security_module)
            .await?
            .is_none()
        {
            return Err(KmcError::UnknownSecurityModule(security_module.clone()));
        }
        let done = sqlx::query("INSERT INTO authorizations (key_id, sm_id, granted) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
            .bind(key.get())
            .bind(security_module.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if done == 0 {
            return Ok(());
        }
        audit::append(&mut tx, now, &owner_actor(owner), "key.authorize", &json!({"key": key.get(), "kcv": record.check_value.to_hex(), "sm": security_module.as_str()})).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Steps 6 and 7: a keyload file with `keys` for `security_module`, encrypted to its public
    /// key and signed by the KMC.
    ///
    /// # Errors
    /// [`KmcError::Invalid`] for no keys; [`KmcError::UnknownOwner`], [`KmcError::UnknownKey`],
    /// [`KmcError::WrongOwner`], [`KmcError::UnknownSecurityModule`],
    /// [`KmcError::NotAuthorized`], [`KmcError::KeyExpired`].
    pub async fn issue_keyload(
        &self,
        owner: OwnerId,
        security_module: &SecurityModuleId,
        keys: &[KeyId],
    ) -> Result<KeyloadFile, KmcError> {
        if keys.is_empty() {
            return Err(KmcError::Invalid("a keyload file needs at least one key"));
        }
        let now_seconds = self.clock.unix_seconds();
        let now = self.clock.now();
        let mut tx = self.pool.begin().await?;
        require_owner(&mut tx, owner).await?;
        let recipient = security_module_key(&mut tx, security_module)
            .await?
            .ok_or_else(|| KmcError::UnknownSecurityModule(security_module.clone()))?;
        let mut contents = Vec::with_capacity(keys.len());
        for &id in keys {
            let record = load_key(&mut tx, id).await?;
            require_supply_group_owner(&mut tx, owner, record.attributes.supply_group).await?;
            let authorized =
                sqlx::query("SELECT 1 FROM authorizations WHERE key_id = ? AND sm_id = ?")
                    .bind(id.get())
                    .bind(security_module.as_str())
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_some();
            if !authorized {
                return Err(KmcError::NotAuthorized {
                    key: id,
                    security_module: security_module.clone(),
                });
            }
            if now >= record.attributes.expiry {
                return Err(KmcError::KeyExpired {
                    key: id,
                    expiry: record.attributes.expiry,
                });
            }
            let key = self.unwrap_key(&mut tx, &record).await?;
            contents.push(KeyloadKey {
                key_id: id,
                attributes: record.attributes,
                check_value: record.check_value,
                key,
            });
        }
        let serial: i64 = sqlx::query("SELECT COALESCE(MAX(serial), 0) + 1 FROM keyload_files")
            .fetch_one(&mut *tx)
            .await?
            .get(0);
        let text = keyload::seal(
            u64::try_from(serial).map_err(|_| StoreError::Corrupt("keyload serial".into()))?,
            security_module,
            &recipient,
            &self.signing_key,
            now,
            &contents,
        )?;
        drop(contents);
        let digest = hex::encode_upper(&Sha256::digest(text.as_bytes()));
        sqlx::query(
            "INSERT INTO keyload_files (serial, sm_id, created, sha256) VALUES (?, ?, ?, ?)",
        )
        .bind(serial)
        .bind(security_module.as_str())
        .bind(now_seconds)
        .bind(&digest)
        .execute(&mut *tx)
        .await?;
        let listed: Vec<_> = keys.iter().map(|k| k.get()).collect();
        audit::append(&mut tx, now_seconds, &owner_actor(owner), "keyload.issue", &json!({"serial": serial, "sm": security_module.as_str(), "keys": listed, "sha256": digest})).await?;
        tx.commit().await?;
        Ok(KeyloadFile::new(text))
    }

    async fn unwrap_key(
        &self,
        conn: &mut SqliteConnection,
        record: &KeyRecord,
    ) -> Result<VendingKey, KmcError> {
        let wrapped: Vec<u8> = sqlx::query("SELECT wrapped FROM vending_keys WHERE id = ?")
            .bind(record.id.get())
            .fetch_one(&mut *conn)
            .await?
            .get(0);
        let secret = self
            .wrapper
            .unwrap(&wrapped, &key_binding(record.id, &record.attributes))?;
        let key = VendingKey::from_bytes(secret.expose_secret())
            .map_err(|_| StoreError::Corrupt("vending key length".into()))?;
        if KeyCheckValue::of(&key) != record.check_value {
            return Err(StoreError::Corrupt(format!(
                "vending key {} does not match its check value",
                record.id
            ))
            .into());
        }
        Ok(key)
    }

    /// The record of a vending key.
    ///
    /// # Errors
    /// [`KmcError::UnknownKey`].
    pub async fn key(&self, id: KeyId) -> Result<KeyRecord, KmcError> {
        let mut conn = self.pool.acquire().await?;
        load_key(&mut conn, id).await
    }

    /// Every vending key record, by ID.
    ///
    /// # Errors
    /// Store failures.
    pub async fn keys(&self) -> Result<Vec<KeyRecord>, KmcError> {
        let rows = sqlx::query("SELECT * FROM vending_keys ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(key_record).collect()
    }

    /// The supply groups of an owner.
    ///
    /// # Errors
    /// Store failures.
    pub async fn supply_groups(&self, owner: OwnerId) -> Result<Vec<SupplyGroupCode>, KmcError> {
        let rows = sqlx::query("SELECT sgc FROM supply_groups WHERE owner_id = ? ORDER BY sgc")
            .bind(owner.get())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                u32::try_from(r.get::<i64, _>(0))
                    .ok()
                    .and_then(|v| SupplyGroupCode::try_from(v).ok())
                    .ok_or_else(|| StoreError::Corrupt("supply group".into()).into())
            })
            .collect()
    }

    /// Every registered SGC owner.
    ///
    /// # Errors
    /// Store failures.
    pub async fn owners(&self) -> Result<Vec<Owner>, KmcError> {
        let rows = sqlx::query("SELECT id, name, contact FROM owners ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| Owner {
                id: OwnerId::from_db(r.get(0)),
                name: r.get(1),
                contact: r.get(2),
            })
            .collect())
    }

    /// Every registered security module and its public key.
    ///
    /// # Errors
    /// Store failures.
    pub async fn security_modules(
        &self,
    ) -> Result<Vec<(SecurityModuleId, SecurityModulePublicKey)>, KmcError> {
        let rows = sqlx::query("SELECT id, public_key FROM security_modules ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let corrupt = || StoreError::Corrupt("security module".into());
                Ok((
                    r.get::<String, _>(0).parse().map_err(|_| corrupt())?,
                    r.get::<String, _>(1).parse().map_err(|_| corrupt())?,
                ))
            })
            .collect()
    }

    /// The security modules a key is authorized for.
    ///
    /// # Errors
    /// Store failures.
    pub async fn authorizations(&self, key: KeyId) -> Result<Vec<SecurityModuleId>, KmcError> {
        let rows = sqlx::query("SELECT sm_id FROM authorizations WHERE key_id = ? ORDER BY sm_id")
            .bind(key.get())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                r.get::<String, _>(0)
                    .parse()
                    .map_err(|_| StoreError::Corrupt("authorization".into()).into())
            })
            .collect()
    }

    /// The audit log, oldest first.
    ///
    /// # Errors
    /// Store failures.
    pub async fn audit_log(&self) -> Result<Vec<AuditEntry>, KmcError> {
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

    /// Closes the store (checkpointing its WAL).
    pub async fn close(self) {
        self.pool.close().await;
    }
}

pub(crate) fn attributes_json(a: &KeyAttributes) -> serde_json::Value {
    json!({
        "sgc": a.supply_group.to_string(),
        "key_type": a.key_type.abbreviation(),
        "dkga": a.derivation.to_string(),
        "krn": a.key_revision.to_string(),
        "ken": a.key_expiry.to_string(),
        "base_date": a.base_date.to_string(),
        "activation": a.activation.to_string(),
        "expiry": a.expiry.to_string(),
        "issued_until": a.issued_until.to_string(),
        "credit_limit": keyload::credit_limit_text(a.credit_limit),
    })
}

/// The wrapping scheme a store was created with.
async fn scheme_of(pool: &SqlitePool) -> Result<String, StoreError> {
    let mut conn = pool.acquire().await?;
    store::required_meta(&mut conn, KEK_SCHEME).await
}

async fn hex_meta(conn: &mut SqliteConnection, name: &str) -> Result<Vec<u8>, StoreError> {
    hex::decode(&store::required_meta(conn, name).await?)
        .ok_or_else(|| StoreError::Corrupt(format!("meta value {name}")))
}

async fn require_owner(conn: &mut SqliteConnection, owner: OwnerId) -> Result<(), KmcError> {
    let found = sqlx::query("SELECT 1 FROM owners WHERE id = ?")
        .bind(owner.get())
        .fetch_optional(&mut *conn)
        .await?;
    found.map(|_| ()).ok_or(KmcError::UnknownOwner(owner))
}

async fn require_supply_group_owner(
    conn: &mut SqliteConnection,
    owner: OwnerId,
    sgc: SupplyGroupCode,
) -> Result<(), KmcError> {
    let row = sqlx::query("SELECT owner_id FROM supply_groups WHERE sgc = ?")
        .bind(i64::from(sgc.get()))
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(KmcError::UnknownSupplyGroup(sgc))?;
    if row.get::<i64, _>(0) != owner.get() {
        return Err(KmcError::WrongOwner {
            owner,
            supply_group: sgc,
        });
    }
    Ok(())
}

async fn security_module_key(
    conn: &mut SqliteConnection,
    id: &SecurityModuleId,
) -> Result<Option<SecurityModulePublicKey>, KmcError> {
    let row = sqlx::query("SELECT public_key FROM security_modules WHERE id = ?")
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| {
        r.get::<String, _>(0)
            .parse()
            .map_err(|_| StoreError::Corrupt("security module public key".into()).into())
    })
    .transpose()
}

fn key_record(row: &sqlx::sqlite::SqliteRow) -> Result<KeyRecord, KmcError> {
    Ok(KeyRecord {
        id: KeyId::from_db(row.try_get("id")?),
        attributes: store::read_attributes(row)?,
        check_value: KeyCheckValue::from_hex(&row.try_get::<String, _>("kcv")?)
            .ok_or_else(|| StoreError::Corrupt("kcv".into()))?,
    })
}

async fn load_key(conn: &mut SqliteConnection, id: KeyId) -> Result<KeyRecord, KmcError> {
    let row = sqlx::query("SELECT * FROM vending_keys WHERE id = ?")
        .bind(id.get())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(KmcError::UnknownKey(id))?;
    key_record(&row)
}
