//! The SQLite files behind the KMC and the security module: opening, migrations, settings.

use std::{path::Path, str::FromStr};

use sqlx::{
    Row, SqliteConnection,
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
    },
};

/// Which store a file is: each has its own migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreKind {
    Kmc,
    SecurityModule,
}

/// Opens (and with `create`, creates) a store and brings its schema up to date.
///
/// A pool of one connection, WAL journal, `synchronous = FULL` (a commit is on disk when it
/// returns), `secure_delete` so that freed pages are overwritten with zeros. The security
/// module's token batches write through a second connection with the same options (see
/// `sm::writer`), and its writers take the write lock with `BEGIN IMMEDIATE` before they
/// read what they decide on, so they never race.
pub(crate) async fn open(
    path: &Path,
    kind: StoreKind,
    create: bool,
) -> Result<SqlitePool, StoreError> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(create)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .pragma("secure_delete", "on");
    // No ping before each use: the connection is a local file, and a ping is a round trip
    // to the driver's worker thread per transaction.
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        .connect_with(options)
        .await?;
    match kind {
        StoreKind::Kmc => sqlx::migrate!("./migrations/kmc").run(&pool).await?,
        StoreKind::SecurityModule => sqlx::migrate!("./migrations/sm").run(&pool).await?,
    }
    Ok(pool)
}

/// Opens a store read-only, without migrating: for audit verification.
pub(crate) async fn open_read_only(path: &Path) -> Result<SqlitePool, StoreError> {
    let options = SqliteConnectOptions::from_str("sqlite://")
        .map_err(StoreError::Database)?
        .filename(path)
        .read_only(true);
    Ok(SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await?)
}

/// A store that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused.
    #[error("store: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("store migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The store holds something this version cannot read.
    #[error("store is corrupt: {0}")]
    Corrupt(String),
}

/// A value from the `meta` table.
pub(crate) async fn meta(
    conn: &mut SqliteConnection,
    name: &str,
) -> Result<Option<String>, StoreError> {
    let row = sqlx::query("SELECT value FROM meta WHERE name = ?")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map(|r| r.get::<String, _>(0)))
}

/// A value from the `meta` table that must be there.
pub(crate) async fn required_meta(
    conn: &mut SqliteConnection,
    name: &str,
) -> Result<String, StoreError> {
    meta(conn, name)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("meta value {name} is missing")))
}

/// Sets a value in the `meta` table.
pub(crate) async fn set_meta(
    conn: &mut SqliteConnection,
    name: &str,
    value: &str,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value")
        .bind(name)
        .bind(value)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Reads the attribute columns (`sgc`, `key_type`, `dkga`, `krn`, `ken`, `base_date`,
/// `activation`, `expiry`, `issued_until`, `credit_limit`) of a key row.
pub(crate) fn read_attributes(
    row: &sqlx::sqlite::SqliteRow,
) -> Result<crate::KeyAttributes, StoreError> {
    fn text<T: FromStr>(row: &sqlx::sqlite::SqliteRow, column: &str) -> Result<T, StoreError> {
        row.try_get::<String, _>(column)?
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("key column {column}")))
    }
    let sgc: i64 = row.try_get("sgc")?;
    Ok(crate::KeyAttributes {
        supply_group: u32::try_from(sgc)
            .ok()
            .and_then(|v| sts_core::SupplyGroupCode::try_from(v).ok())
            .ok_or_else(|| StoreError::Corrupt("key column sgc".into()))?,
        key_type: text(row, "key_type")?,
        derivation: text(row, "dkga")?,
        key_revision: text(row, "krn")?,
        key_expiry: text(row, "ken")?,
        base_date: text(row, "base_date")?,
        activation: text(row, "activation")?,
        expiry: text(row, "expiry")?,
        issued_until: text(row, "issued_until")?,
        credit_limit: crate::keyload::parse_credit_limit(
            &row.try_get::<String, _>("credit_limit")?,
        )
        .ok_or_else(|| StoreError::Corrupt("key column credit_limit".into()))?,
    })
}

/// Statements sent to SQLite in one call: one round trip to the driver's worker thread
/// (each call costs one, 20-50 µs, more than the statements of a batch themselves).
///
/// Parameters are `?` placeholders, bound in the order of the statements.
#[derive(Default)]
pub(crate) struct Script {
    sql: String,
    args: sqlx::sqlite::SqliteArguments<'static>,
    bad: Option<sqlx::error::BoxDynError>,
}

impl Script {
    /// Appends a statement.
    pub(crate) fn statement(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self.sql.push_str(";\n");
        self
    }

    /// Puts a statement without parameters before the others.
    pub(crate) fn prepend(&mut self, sql: &str) {
        self.sql.insert_str(0, &format!("{sql};\n"));
    }

    /// Binds the next parameter.
    pub(crate) fn bind<T>(&mut self, value: T) -> &mut Self
    where
        T: 'static + sqlx::Encode<'static, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
    {
        use sqlx::Arguments as _;
        if let Err(e) = self.args.add(value) {
            self.bad.get_or_insert(e);
        }
        self
    }

    /// Runs the statements.
    pub(crate) async fn execute(self, conn: &mut SqliteConnection) -> Result<(), StoreError> {
        if let Some(e) = self.bad {
            return Err(StoreError::Database(sqlx::Error::Encode(e)));
        }
        if self.sql.is_empty() {
            return Ok(());
        }
        sqlx::query_with(&self.sql, self.args)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}
