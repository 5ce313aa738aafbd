//! The shared state of the service: database, security module, policy, metrics.

use std::{
    net::SocketAddr,
    str::FromStr,
    sync::{Arc, OnceLock, Weak},
};

use sts_keys::SecurityModule;

use crate::{Database, Metrics, VendError, vend::Batcher};

/// What to do when a meter's key record changed (new KRN, SGC, TI, KT, base date or DKGA)
/// and a token is requested for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyChangePolicy {
    /// Answer with the key change set first, then the token made with the new key.
    #[default]
    IssueFirst,
    /// Refuse (409 `key_change_pending`) until an engineer issues the key change set.
    Refuse,
}

impl FromStr for KeyChangePolicy {
    type Err = VendError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "issue-first" => Ok(Self::IssueFirst),
            "refuse" => Ok(Self::Refuse),
            _ => Err(VendError::field(
                "key_change_policy",
                "issue-first or refuse",
            )),
        }
    }
}

/// How to run the service.
#[derive(Debug)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// `sqlite://PATH` (created when missing) or `postgres://...`.
    pub database_url: String,
    /// The opened security module that issues every token.
    pub security_module: SecurityModule,
    /// See [`KeyChangePolicy`].
    pub key_change_policy: KeyChangePolicy,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
}

impl Config {
    /// The default request body limit: 16 KiB, far above any valid request.
    pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024;

    /// A configuration with the default key change policy (issue-first) and body limit.
    #[must_use]
    pub fn new(
        listen: SocketAddr,
        database_url: impl Into<String>,
        security_module: SecurityModule,
    ) -> Self {
        Self {
            listen,
            database_url: database_url.into(),
            security_module,
            key_change_policy: KeyChangePolicy::default(),
            body_limit: Self::DEFAULT_BODY_LIMIT,
        }
    }
}

struct Inner {
    db: Database,
    sm: SecurityModule,
    policy: KeyChangePolicy,
    body_limit: usize,
    metrics: Metrics,
    /// The group commit queue of credit vends, started by the first one.
    batcher: OnceLock<Batcher>,
}

/// A reference to the state that does not keep it alive (held by the batching task).
pub(crate) struct WeakState(Weak<Inner>);

impl WeakState {
    /// The state, while it lives.
    pub(crate) fn upgrade(&self) -> Option<AppState> {
        self.0.upgrade().map(AppState)
    }
}

/// The state every handler shares; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("db", &self.0.db.backend())
            .field("sm", &self.0.sm)
            .field("policy", &self.0.policy)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State over a connected database and an opened security module.
    #[must_use]
    pub fn new(
        db: Database,
        sm: SecurityModule,
        policy: KeyChangePolicy,
        body_limit: usize,
    ) -> Self {
        Self(Arc::new(Inner {
            db,
            sm,
            policy,
            body_limit,
            metrics: Metrics::default(),
            batcher: OnceLock::new(),
        }))
    }

    /// The database.
    #[must_use]
    pub fn db(&self) -> &Database {
        &self.0.db
    }

    /// The security module.
    #[must_use]
    pub fn security_module(&self) -> &SecurityModule {
        &self.0.sm
    }

    /// The key change policy.
    #[must_use]
    pub fn key_change_policy(&self) -> KeyChangePolicy {
        self.0.policy
    }

    /// The request body limit in bytes.
    #[must_use]
    pub fn body_limit(&self) -> usize {
        self.0.body_limit
    }

    /// The metrics.
    #[must_use]
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    /// The group commit queue of credit vends; starts its task on the current runtime the
    /// first time.
    pub(crate) fn batcher(&self) -> &Batcher {
        self.0
            .batcher
            .get_or_init(|| Batcher::start(WeakState(Arc::downgrade(&self.0))))
    }
}
