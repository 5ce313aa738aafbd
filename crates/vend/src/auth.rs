//! API keys: random secrets stored as SHA-256 digests, each with one role.

use std::{
    collections::HashMap,
    fmt,
    str::FromStr,
    time::{Duration, Instant},
};

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;
use subtle::ConstantTimeEq;

use crate::{Database, VendError, audit, db::now_seconds};

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything: meters, API keys, every token.
    Admin,
    /// Credit tokens only (and reads).
    Vendor,
    /// Management and key change tokens (and reads).
    Engineer,
    /// Reads only, including the audit table.
    Auditor,
}

impl Role {
    /// The role's name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Vendor => "vendor",
            Self::Engineer => "engineer",
            Self::Auditor => "auditor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = VendError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Self::Admin),
            "vendor" => Ok(Self::Vendor),
            "engineer" => Ok(Self::Engineer),
            "auditor" => Ok(Self::Auditor),
            _ => Err(VendError::field(
                "role",
                "one of admin, vendor, engineer, auditor",
            )),
        }
    }
}

/// Every role may read meters and vends (the JSON API and the console).
pub(crate) const READERS: &[Role] = &[Role::Admin, Role::Vendor, Role::Engineer, Role::Auditor];

/// The roles that may read the audit table.
pub(crate) const AUDIT_READERS: &[Role] = &[Role::Admin, Role::Auditor];

/// The roles that may read the sales reports.
pub(crate) const REPORT_READERS: &[Role] = &[Role::Admin, Role::Auditor];

/// The caller, once its API key is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The key's public ID (recorded in the audit table).
    pub key_id: String,
    /// Its role.
    pub role: Role,
}

impl Caller {
    /// Refuses unless the caller's role is one of `roles`.
    ///
    /// # Errors
    /// [`VendError::Forbidden`].
    pub fn require(&self, roles: &[Role], action: &'static str) -> Result<(), VendError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(VendError::Forbidden {
                role: self.role.as_str(),
                action,
            })
        }
    }
}

/// A new API key: shown once, then only its digest is kept.
#[derive(Debug, Clone, Serialize)]
pub struct NewApiKey {
    /// The public ID.
    pub id: String,
    /// The role.
    pub role: Role,
    /// The whole key, `sts_<id>_<secret>`: the caller sends it as `Authorization: Bearer`.
    ///
    /// # Security
    /// A secret: shown once, never logged, stored only as its SHA-256 digest.
    pub key: String,
}

const PREFIX: &str = "sts_";

/// How long a verified API key is trusted without reading the database again. A key revoked
/// through this server's API stops working at once; one revoked from another process (`sts
/// api-key revoke`, another server) within this time.
pub(crate) const CALLER_TTL: Duration = Duration::from_secs(2);

/// The most API keys remembered; the cache is emptied when it is full.
const CALLER_CACHE_SIZE: usize = 4096;

/// API keys verified lately, by the SHA-256 digest of the whole key (never the key).
#[derive(Debug, Default)]
pub(crate) struct CallerCache(HashMap<String, (Caller, Instant)>);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn digest(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

fn random_hex<const N: usize>() -> Result<String, VendError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| VendError::Internal(format!("OS CSPRNG: {e}")))?;
    Ok(hex(&bytes))
}

impl Database {
    /// Creates an API key with `role`, recorded in the audit table as made by `by` (an API key
    /// ID, or `None` when the operator makes it at the command line).
    ///
    /// # Errors
    /// Database failures.
    pub async fn create_api_key(
        &self,
        role: Role,
        name: &str,
        by: Option<&str>,
    ) -> Result<NewApiKey, VendError> {
        let id = random_hex::<8>()?;
        let key = format!("{PREFIX}{id}_{}", random_hex::<32>()?);
        let _turn = self.write_turn().await;
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO api_keys (id, digest, role, name, created, revoked) VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(&id)
        .bind(digest(&key))
        .bind(role.as_str())
        .bind(name)
        .bind(now_seconds())
        .execute(&mut *tx)
        .await?;
        audit::append(
            &mut tx,
            &audit::Entry {
                key_id: by,
                action: "api_key.create",
                details: serde_json::json!({"id": id, "role": role, "name": name}),
                ..audit::Entry::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(NewApiKey { id, role, key })
    }

    /// Revokes an API key.
    ///
    /// # Errors
    /// [`VendError::NotFound`]; database failures.
    pub async fn revoke_api_key(&self, id: &str, by: Option<&str>) -> Result<(), VendError> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool().begin().await?;
        let done =
            sqlx::query("UPDATE api_keys SET revoked = $1 WHERE id = $2 AND revoked IS NULL")
                .bind(now_seconds())
                .bind(id)
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() == 0 {
            return Err(VendError::NotFound(format!("API key {id}")));
        }
        audit::append(
            &mut tx,
            &audit::Entry {
                key_id: by,
                action: "api_key.revoke",
                details: serde_json::json!({"id": id}),
                ..audit::Entry::default()
            },
        )
        .await?;
        tx.commit().await?;
        // After the commit: a lookup from now on reads the revoked row.
        if let Ok(mut cache) = self.callers.lock() {
            cache.0.retain(|_, (caller, _)| caller.key_id != id);
        }
        Ok(())
    }

    /// The role of the API key with public ID `id`, or `None` when it is unknown or revoked
    /// (the console checks its sessions' keys with this on every request).
    ///
    /// # Errors
    /// Database failures; a stored role that does not parse ([`VendError::Internal`]).
    pub async fn api_key_role(&self, id: &str) -> Result<Option<Role>, VendError> {
        let row = sqlx::query("SELECT role FROM api_keys WHERE id = $1 AND revoked IS NULL")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let role: String = row.try_get(0)?;
        role.parse()
            .map(Some)
            .map_err(|_| VendError::Internal(format!("API key {id} has role {role:?}")))
    }

    /// The caller of a whole API key, if it is known and not revoked. The digest is compared
    /// in constant time. A key verified in the last 2 seconds (`CALLER_TTL`) is answered from
    /// memory.
    ///
    /// # Errors
    /// [`VendError::Unauthorized`]; database failures.
    pub async fn authenticate(&self, key: &str) -> Result<Caller, VendError> {
        let id = key
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once('_'))
            .map(|(id, _)| id)
            .filter(|id| id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or(VendError::Unauthorized)?;
        let presented = digest(key);
        if let Ok(cache) = self.callers.lock()
            && let Some((caller, at)) = cache.0.get(&presented)
            && at.elapsed() < CALLER_TTL
        {
            return Ok(caller.clone());
        }
        let row =
            sqlx::query("SELECT digest, role FROM api_keys WHERE id = $1 AND revoked IS NULL")
                .bind(id)
                .fetch_optional(self.pool())
                .await?
                .ok_or(VendError::Unauthorized)?;
        let stored: String = row.try_get(0)?;
        if !bool::from(stored.as_bytes().ct_eq(presented.as_bytes())) {
            return Err(VendError::Unauthorized);
        }
        let role: String = row.try_get(1)?;
        let caller = Caller {
            key_id: id.to_owned(),
            role: role
                .parse()
                .map_err(|_| VendError::Internal(format!("API key {id} has role {role:?}")))?,
        };
        if let Ok(mut cache) = self.callers.lock() {
            if cache.0.len() >= CALLER_CACHE_SIZE {
                cache.0.clear();
            }
            cache.0.insert(presented, (caller.clone(), Instant::now()));
        }
        Ok(caller)
    }
}
