//! The PostgreSQL backend: one database shared by any number of keycard instances.
//!
//! Every instance holds its own connection pool; the database is the only shared state. Write
//! transactions run at READ COMMITTED (set explicitly, whatever the server's default), which is
//! what the rotation relies on: a statement that waited for a row lock re-reads the row as
//! committed by the holder (see `rotate` for the one-winner argument).
//!
//! Row locks are always taken in the same order — user, then sessions (by id), then refresh
//! tokens, then the revocation feed — so two writers can wait for each other but never deadlock.

mod mfa;
mod queries;
mod revoke;
mod rotate;
mod webhooks;

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

use crate::Result;

/// Pool sizing and timeouts of a [`PgStore`]. `Default` gives values fit for one instance of a
/// small deployment; with N instances, keep `N × max_connections` under the server's
/// `max_connections` (minus a reserve for administration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgStoreOptions {
    /// Most connections this instance opens (default 10).
    pub max_connections: u32,
    /// Connections kept open even when idle (default 1: the first request after a quiet spell
    /// does not pay for a TLS handshake and authentication).
    pub min_connections: u32,
    /// How long a request waits for a connection — including (re)connecting to a database that
    /// refuses connections — before the store answers "unavailable" and the server 503 (default 5 s).
    pub acquire_timeout: Duration,
    /// Server-side limit on one statement, and on a transaction sitting idle with its locks
    /// (`idle_in_transaction_session_timeout`); `None` leaves the server's settings (default 10 s).
    pub statement_timeout: Option<Duration>,
    /// Idle connections above `min_connections` are closed after this long (default 10 min).
    pub idle_timeout: Option<Duration>,
    /// Connections are replaced after this long, so fail-overs and DNS changes are picked up
    /// (default 30 min).
    pub max_lifetime: Option<Duration>,
}

impl Default for PgStoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            min_connections: 1,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Some(Duration::from_secs(10)),
            idle_timeout: Some(Duration::from_secs(10 * 60)),
            max_lifetime: Some(Duration::from_secs(30 * 60)),
        }
    }
}

/// The PostgreSQL store.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to `url` (`postgres://user:pass@host:port/db?sslmode=…`), runs the migrations and
    /// opens the pool. Fails when the database cannot be reached now.
    ///
    /// Several instances may start at once: sqlx's migrator takes a session-level
    /// `pg_advisory_lock` keyed on the database name before reading `_sqlx_migrations` and
    /// releases it after the last migration (`Migrate::lock` for `PgConnection` in
    /// sqlx-postgres 0.9.0, `src/migrate.rs`, called from `Migrator::run_direct`), so the second
    /// instance waits, then finds every migration applied. Each migration runs in its own
    /// transaction. We migrate on a dedicated connection that is closed afterwards, not one of the
    /// store's pool: if a migration fails, sqlx returns without unlocking, and a pooled connection
    /// would keep holding the lock while the process lives.
    pub async fn connect(url: &str, options: PgStoreOptions) -> Result<Self> {
        let base = PgConnectOptions::from_str(url)?;
        // Without our timeouts: waiting for another instance's migrations (on the advisory lock),
        // or a slow migration, must not be cut off after `statement_timeout`.
        // A one-connection pool rather than a bare `&mut PgConnection`: with the latter, sqlx's
        // `Migrator::run` makes this future not `Send` for every lifetime, so it could not be spawned.
        let migrator = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(base.clone().application_name("keycard-migrate"))
            .await?;
        let migrated = sqlx::migrate!("./migrations/postgres").run(&migrator).await;
        // Closing ends the session, which releases the advisory lock even when migrating failed.
        migrator.close().await;
        migrated?;

        let mut connect = base.application_name("keycard").statement_cache_capacity(128);
        if let Some(timeout) = options.statement_timeout {
            let ms = timeout.as_millis().max(1);
            connect = connect.options([
                ("statement_timeout", format!("{ms}ms")),
                ("idle_in_transaction_session_timeout", format!("{ms}ms")),
            ]);
        }

        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .min_connections(options.min_connections.min(options.max_connections.max(1)))
            .acquire_timeout(options.acquire_timeout)
            .idle_timeout(options.idle_timeout)
            .max_lifetime(options.max_lifetime)
            .connect_with(connect)
            .await?;
        Ok(Self { pool })
    }

    /// Creates the database `url` names unless it exists, connecting to the server's `postgres`
    /// maintenance database as `createdb` does (the URL's user needs `CREATEDB`). For set-up
    /// scripts and test suites: [`connect`](Self::connect) never creates a database.
    pub async fn create_database(url: &str) -> Result<()> {
        if !Postgres::database_exists(url).await? {
            Postgres::create_database(url).await?;
        }
        Ok(())
    }

    /// Drops the database `url` names, ending every other session on it first. For test suites.
    pub async fn drop_database(url: &str) -> Result<()> {
        Postgres::force_drop_database(url).await?;
        Ok(())
    }

    /// Closes the pool, waiting for connections in use to come back.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts a write transaction. READ COMMITTED is spelt out because the one-winner rotation
    /// and the lock ordering assume it: at REPEATABLE READ the loser of a race would fail with a
    /// serialization error instead of seeing the winner's commit.
    async fn write_tx(&self) -> Result<Transaction<'static, Postgres>> {
        Ok(self.pool.begin_with("BEGIN ISOLATION LEVEL READ COMMITTED").await?)
    }
}
