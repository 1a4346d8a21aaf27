//! SQLite migrations on the writer's own rusqlite connection, in sqlx's bookkeeping format.
//!
//! Databases created by earlier versions of keycard were migrated by sqlx's migrator, which
//! records each migration in `_sqlx_migrations` with the SHA-384 of its SQL. This runner reads
//! and writes that same table the same way, so one SQLite library (rusqlite) serves the store
//! and every existing database keeps its history: an applied migration is never run twice, an
//! applied migration whose SQL changed since is refused (as sqlx refuses it), a migration that
//! failed half-way (`success = false`) stops start-up, and a database migrated by a newer
//! keycard (a version this binary does not know) is refused rather than written to. The
//! compatibility is tested both ways against sqlx's own migrator (`tests/conformance`).
//!
//! Each migration runs in one `BEGIN IMMEDIATE` transaction together with its bookkeeping row,
//! as sqlx does (its `-- no-transaction` opt-out is not used by any keycard migration).

use std::time::Instant;

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha384};

use crate::{Result, StoreError};

/// One migration: its version and description as sqlx derives them from the file name
/// (`0002_refresh_tokens_rowid.sql` → 2, "refresh tokens rowid"), and its SQL.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The number the file name starts with.
    pub version: i64,
    /// The rest of the file name without `.sql`, underscores as spaces.
    pub description: &'static str,
    /// The file's text, byte for byte (its checksum is what sqlx recorded).
    pub sql: &'static str,
}

impl Migration {
    /// The SHA-384 of the SQL, as sqlx records it.
    fn checksum(&self) -> Vec<u8> {
        Sha384::digest(self.sql.as_bytes()).to_vec()
    }
}

/// keycard's SQLite migrations, in order. `migrations_match_the_folder` keeps this list and
/// `migrations/sqlite/` the same.
pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, description: "init", sql: include_str!("../../migrations/sqlite/0001_init.sql") },
    Migration {
        version: 2,
        description: "refresh tokens rowid",
        sql: include_str!("../../migrations/sqlite/0002_refresh_tokens_rowid.sql"),
    },
    Migration {
        version: 3,
        description: "users disabled at",
        sql: include_str!("../../migrations/sqlite/0003_users_disabled_at.sql"),
    },
    Migration {
        version: 4,
        description: "oauth clients",
        sql: include_str!("../../migrations/sqlite/0004_oauth_clients.sql"),
    },
    Migration {
        version: 5,
        description: "mail outbox",
        sql: include_str!("../../migrations/sqlite/0005_mail_outbox.sql"),
    },
    Migration {
        version: 6,
        description: "password resets",
        sql: include_str!("../../migrations/sqlite/0006_password_resets.sql"),
    },
    Migration {
        version: 7,
        description: "email tokens",
        sql: include_str!("../../migrations/sqlite/0007_email_tokens.sql"),
    },
    Migration {
        version: 8,
        description: "wrapped master key",
        sql: include_str!("../../migrations/sqlite/0008_wrapped_master_key.sql"),
    },
    Migration { version: 9, description: "webhooks", sql: include_str!("../../migrations/sqlite/0009_webhooks.sql") },
    Migration {
        version: 10,
        description: "second factors",
        sql: include_str!("../../migrations/sqlite/0010_second_factors.sql"),
    },
    Migration { version: 11, description: "passkeys", sql: include_str!("../../migrations/sqlite/0011_passkeys.sql") },
    Migration { version: 12, description: "dpop", sql: include_str!("../../migrations/sqlite/0012_dpop.sql") },
];

/// Brings the database on `conn` up to date with [`MIGRATIONS`].
pub(super) fn run(conn: &mut Connection) -> Result<()> {
    run_migrations(conn, MIGRATIONS)
}

fn run_migrations(conn: &mut Connection, migrations: &[Migration]) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
            version BIGINT PRIMARY KEY,
            description TEXT NOT NULL,
            installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
            success BOOLEAN NOT NULL,
            checksum BLOB NOT NULL,
            execution_time BIGINT NOT NULL
        );",
    )?;
    let dirty: Option<i64> = conn
        .query_row("SELECT version FROM _sqlx_migrations WHERE success = false ORDER BY version LIMIT 1", [], |row| {
            row.get(0)
        })
        .optional()?;
    if let Some(version) = dirty {
        return Err(refused(format!("migration {version} was left partially applied; fix the database by hand")));
    }
    let applied: Vec<(i64, Vec<u8>)> = {
        let mut statement = conn.prepare("SELECT version, checksum FROM _sqlx_migrations ORDER BY version")?;
        statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?.collect::<rusqlite::Result<_>>()?
    };
    for (version, checksum) in &applied {
        match migrations.iter().find(|m| m.version == *version) {
            None => {
                return Err(refused(format!(
                    "migration {version} was applied to this database but is unknown to this keycard \
                     (a newer version created it?)"
                )));
            }
            Some(known) if known.checksum() != *checksum => {
                return Err(refused(format!("migration {version} was applied but its SQL has changed since")));
            }
            Some(_) => {}
        }
    }
    for migration in migrations.iter().filter(|m| applied.iter().all(|(v, _)| *v != m.version)) {
        let started = Instant::now();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(migration.sql)
            .map_err(|e| refused(format!("migration {} ({}) failed: {e}", migration.version, migration.description)))?;
        tx.execute(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
             VALUES (?1, ?2, TRUE, ?3, -1)",
            params![migration.version, migration.description, migration.checksum()],
        )?;
        tx.commit()?;
        let nanos = i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX);
        conn.execute(
            "UPDATE _sqlx_migrations SET execution_time = ?1 WHERE version = ?2",
            params![nanos, migration.version],
        )?;
        tracing::info!(version = migration.version, description = migration.description, "applied a migration");
    }
    Ok(())
}

fn refused(message: String) -> StoreError {
    StoreError::Unavailable(format!("SQLite migrations: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_match_the_folder() {
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
        let mut files: Vec<String> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(files.len(), MIGRATIONS.len(), "every file in {folder:?} is listed in MIGRATIONS: {files:?}");
        for (file, migration) in files.iter().zip(MIGRATIONS) {
            let (version, rest) = file.split_once('_').unwrap();
            assert_eq!(version.parse::<i64>().unwrap(), migration.version, "{file}");
            assert_eq!(rest.trim_end_matches(".sql").replace('_', " "), migration.description, "{file}");
            assert_eq!(std::fs::read_to_string(folder.join(file)).unwrap(), migration.sql, "{file}");
        }
    }

    fn memory() -> Connection {
        Connection::open_in_memory().unwrap()
    }

    #[test]
    fn a_second_run_applies_nothing_and_a_changed_migration_is_refused() {
        let mut conn = memory();
        run(&mut conn).unwrap();
        run(&mut conn).unwrap();
        let count: i64 =
            conn.query_row("SELECT count(*) FROM _sqlx_migrations WHERE success", [], |r| r.get(0)).unwrap();
        assert_eq!(count, MIGRATIONS.len() as i64);

        let mut changed = MIGRATIONS.to_vec();
        changed[0].sql = "CREATE TABLE other (x INTEGER);";
        let error = run_migrations(&mut conn, &changed).unwrap_err().to_string();
        assert!(error.contains("migration 1 was applied but its SQL has changed"), "{error}");
    }

    #[test]
    fn a_database_from_a_newer_keycard_or_left_dirty_is_refused() {
        let mut conn = memory();
        run(&mut conn).unwrap();
        let error = run_migrations(&mut conn, &MIGRATIONS[..1]).unwrap_err().to_string();
        assert!(error.contains("migration 2 was applied to this database but is unknown"), "{error}");

        conn.execute("UPDATE _sqlx_migrations SET success = false WHERE version = 3", []).unwrap();
        let error = run(&mut conn).unwrap_err().to_string();
        assert!(error.contains("migration 3 was left partially applied"), "{error}");
    }

    #[test]
    fn a_failing_migration_leaves_nothing_behind() {
        let mut conn = memory();
        let broken = [
            MIGRATIONS[0],
            Migration {
                version: 2,
                description: "broken",
                sql: "CREATE TABLE half (x INTEGER); SELECT * FROM missing;",
            },
        ];
        let error = run_migrations(&mut conn, &broken).unwrap_err().to_string();
        assert!(error.contains("migration 2 (broken) failed"), "{error}");
        let half: i64 =
            conn.query_row("SELECT count(*) FROM sqlite_master WHERE name = 'half'", [], |r| r.get(0)).unwrap();
        assert_eq!(half, 0, "the failed migration's own statements were rolled back");
        let recorded: Vec<i64> = conn
            .prepare("SELECT version FROM _sqlx_migrations")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(recorded, [1]);
    }
}
