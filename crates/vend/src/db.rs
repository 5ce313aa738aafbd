//! The vend database: SQLite (embedded default, WAL) or PostgreSQL, behind one pool.
//!
//! Queries are standard SQL with `$1, $2 ...` parameters in order of appearance, which both
//! engines read the same way; no stored procedures. Each write transaction runs through
//! [`retry`], which repeats it on a serialization failure, a deadlock or a busy SQLite file.

use std::{future::Future, str::FromStr, sync::Arc, time::Duration};

use sqlx::{
    AnyPool, Executor,
    any::{AnyConnectOptions, AnyPoolOptions, install_default_drivers},
};
use sts_keys::{Clock, SystemClock};
use tokio::sync::{Mutex, MutexGuard};

use crate::VendError;

/// The database engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One SQLite file in WAL mode, `synchronous = FULL`.
    Sqlite,
    /// PostgreSQL (or a compatible engine).
    Postgres,
}

/// A connection pool to the vend database, migrated.
#[derive(Clone)]
pub struct Database {
    pool: AnyPool,
    /// How the pool connects: for [`Database::batch_pool`].
    options: AnyConnectOptions,
    backend: Backend,
    /// SQLite has one writer per file: writers of this process queue here instead of
    /// spinning on `SQLITE_BUSY`. `None` for PostgreSQL, where row locks order writers.
    write_lock: Option<Arc<Mutex<()>>>,
    /// API keys verified in the last [`crate::auth::CALLER_TTL`], by the digest of the key.
    pub(crate) callers: Arc<std::sync::Mutex<crate::auth::CallerCache>>,
    /// The tariff versions last read (they never change; new ones are noticed by count).
    pub(crate) tariff_cache: Arc<std::sync::Mutex<crate::tariff::TariffCache>>,
    /// Where the time of a sale comes from (which tariff is in force, which month's
    /// allowance, the day of the daily report).
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Connects to `url` (`sqlite://path`, created when missing, or `postgres://...`) and runs
    /// the migrations of its engine.
    ///
    /// # Errors
    /// An unknown scheme ([`VendError::Invalid`]), connection and migration failures.
    pub async fn connect(url: &str) -> Result<Self, VendError> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(VendError::field(
                "database",
                "use sqlite://PATH or postgres://USER@HOST/DB",
            ));
        };
        let url = match backend {
            Backend::Sqlite if !url.contains('?') => format!("{url}?mode=rwc"),
            _ => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = pool_options(backend, 16)
            .connect_with(options.clone())
            .await?;
        match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&pool).await?,
            Backend::Postgres => sqlx::migrate!("./migrations/postgres").run(&pool).await?,
        }
        Ok(Self {
            pool,
            options,
            backend,
            write_lock: (backend == Backend::Sqlite).then(|| Arc::new(Mutex::new(()))),
            callers: Arc::default(),
            tariff_cache: Arc::default(),
            clock: Arc::new(SystemClock),
        })
    }

    /// Reads the time of sales from `clock` instead of the system clock (tests, replays).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The time now by this database's clock, in Unix seconds.
    #[must_use]
    pub fn now(&self) -> i64 {
        self.clock.unix_seconds()
    }

    /// The engine.
    #[must_use]
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool.
    #[must_use]
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A second, small pool on the same database, for the vend batch task, which runs on a
    /// thread and runtime of its own: its connections' I/O is driven by that runtime. Its
    /// connections are not pinged before each batch (a round trip): a broken one fails its
    /// batch, whose vends then go the one-by-one path on the main pool.
    pub(crate) async fn batch_pool(&self) -> Result<AnyPool, VendError> {
        Ok(pool_options(self.backend, 2)
            .test_before_acquire(false)
            .connect_with(self.options.clone())
            .await?)
    }

    /// Holds this process's SQLite write turn (nothing for PostgreSQL) for the length of a
    /// write transaction.
    pub(crate) async fn write_turn(&self) -> Option<MutexGuard<'_, ()>> {
        match &self.write_lock {
            Some(lock) => Some(lock.lock().await),
            None => None,
        }
    }

    /// Checks that the database answers.
    ///
    /// # Errors
    /// The database is unreachable.
    pub async fn ping(&self) -> Result<(), VendError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool (checkpointing SQLite's WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The pool settings of `backend`, with at most `max` PostgreSQL connections (SQLite: 8).
fn pool_options(backend: Backend, max: u32) -> AnyPoolOptions {
    match backend {
        Backend::Sqlite => AnyPoolOptions::new()
            .max_connections(8.min(max))
            .after_connect(|conn, _| {
                Box::pin(async move {
                    // The page cache: SQLite's default (2 MiB per connection) holds the
                    // indexes of a small database only, and a vend inserts into several at
                    // random places (request IDs): 64 MiB per connection, taken as pages
                    // are read (the batch pool's two connections do the writing).
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                         PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; \
                         PRAGMA cache_size = -65536;",
                    )
                    .await?;
                    Ok(())
                })
            }),
        Backend::Postgres => AnyPoolOptions::new().max_connections(max),
    }
}

/// True for failures a transaction may be retried after: PostgreSQL serialization failure
/// (40001) and deadlock (40P01); SQLite busy and locked (5, 6 and their extended codes);
/// a unique violation (a concurrent request took the request ID or TID: the retry sees it).
pub(crate) fn retryable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() {
                return true;
            }
            let code = db.code();
            match code.as_deref() {
                Some("40001" | "40P01") => true,
                Some(c) => c.parse::<i64>().is_ok_and(|n| matches!(n & 0xFF, 5 | 6)),
                None => false,
            }
        }
        _ => false,
    }
}

/// The most attempts of one transaction.
const ATTEMPTS: u32 = 12;

/// Runs `attempt` until it succeeds, fails for good, or has failed [`ATTEMPTS`] times with a
/// retryable database error; waits 1, 2, 4 ... ms (capped at 100 ms) between attempts.
///
/// # Errors
/// The last error.
pub(crate) async fn retry<T, F, Fut>(mut attempt: F) -> Result<T, VendError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, VendError>>,
{
    let mut delay = Duration::from_millis(1);
    let mut n = 1;
    loop {
        match attempt().await {
            Err(VendError::Database(e)) if n < ATTEMPTS && retryable(&e) => {
                tracing::debug!(attempt = n, error = %e, "retrying transaction");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(100));
                n += 1;
            }
            other => return other,
        }
    }
}

/// Rows per multi-row statement: with at most 14 columns, 1,400 parameters, far below
/// SQLite's (32,766) and PostgreSQL's (65,535) limits.
pub(crate) const ROWS_PER_STATEMENT: usize = 100;

/// `($1, $2), ($3, $4)` for `rows` rows of `columns` parameters each: the `VALUES` of a
/// multi-row `INSERT`; with one row, the list of an `IN`.
pub(crate) fn placeholders(rows: usize, columns: usize) -> String {
    let mut out = String::with_capacity(rows * columns * 6);
    let mut n = 0;
    for row in 0..rows {
        if row > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for column in 0..columns {
            if column > 0 {
                out.push_str(", ");
            }
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        }
        out.push(')');
    }
    out
}

/// As [`placeholders`], in the style that binds fastest on `backend`: anonymous `?` on
/// SQLite, `$n` on PostgreSQL. (sqlx looks every parameter of a statement up by name, and
/// SQLite finds a numbered name by a linear search: with `$n`, binding a statement of `p`
/// parameters costs `p * p`, which dominated multi-row inserts of thousands of parameters.)
pub(crate) fn placeholders_in(backend: Backend, rows: usize, columns: usize) -> String {
    match backend {
        Backend::Postgres => placeholders(rows, columns),
        Backend::Sqlite => {
            let row = format!("({})", vec!["?"; columns].join(", "));
            vec![row; rows].join(", ")
        }
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::{Backend, placeholders, placeholders_in};

    #[test]
    fn placeholders_number_every_parameter_in_order() {
        assert_eq!(placeholders(1, 1), "($1)");
        assert_eq!(placeholders(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(placeholders(0, 3), "");
        assert_eq!(
            placeholders_in(Backend::Postgres, 2, 2),
            "($1, $2), ($3, $4)"
        );
        assert_eq!(placeholders_in(Backend::Sqlite, 2, 2), "(?, ?), (?, ?)");
        assert_eq!(placeholders_in(Backend::Sqlite, 0, 2), "");
    }
}
