//! Test support, not part of the API: a PostgreSQL database of its own for one test, shared by
//! the test suites of keycard-store and keycard-server.
//!
//! PostgreSQL comes from `KEYCARD_TEST_POSTGRES_URL` (an admin URL such as
//! `postgres://postgres@127.0.0.1:5432/test`). Unset, the PostgreSQL tests print a notice and
//! pass — unless `CI` is set, where they fail.

use std::io::Write;
use std::sync::Once;

use crate::PgStore;

/// The environment variable naming the PostgreSQL admin URL.
pub const POSTGRES_URL_VAR: &str = "KEYCARD_TEST_POSTGRES_URL";

/// Whether we run under CI, where a missing database must fail the run.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// The admin URL; `None` (with a notice, once per process) when unset outside CI; a panic when
/// unset in CI. `tests` names the tests in both messages, e.g. "the multi-instance tests".
pub fn postgres_admin_url(tests: &str) -> Option<String> {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if in_ci() => panic!(
            "{POSTGRES_URL_VAR} is not set, but CI is: {tests} must run in CI. \
             Set it to an admin URL, e.g. postgres://postgres@127.0.0.1:5432/test"
        ),
        _ => {
            static NOTICE: Once = Once::new();
            NOTICE.call_once(|| {
                // Straight to stderr: the test harness captures eprintln! of passing tests.
                let _ =
                    writeln!(std::io::stderr(), "notice: {POSTGRES_URL_VAR} is unset; {tests} pass without running");
            });
            None
        }
    }
}

/// `url` with its database name replaced by `db` (query parameters kept).
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let host_start = base.find("://").map_or(0, |i| i + 3);
    let base = base[host_start..].find('/').map_or(base, |i| &base[..host_start + i]);
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

/// A database created for one test, dropped (connections and all) when this drops.
pub struct TestDatabase {
    name: String,
    /// URL of the new database.
    pub url: String,
}

impl TestDatabase {
    /// Creates `kc_test_<uuid>` through the admin URL; `None` when PostgreSQL tests are not
    /// configured (see [`postgres_admin_url`], which `tests` is passed to).
    pub async fn create(tests: &str) -> Option<Self> {
        let admin_url = postgres_admin_url(tests)?;
        let name = format!("kc_test_{}", uuid::Uuid::new_v4().simple());
        let url = with_database(&admin_url, &name);
        PgStore::create_database(&url)
            .await
            .unwrap_or_else(|e| panic!("cannot create a database through {POSTGRES_URL_VAR} ({admin_url}): {e}"));
        Some(Self { name, url })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop may run inside the test's runtime (and while unwinding): do the async clean-up on
        // a thread of its own with a runtime of its own.
        let url = self.url.clone();
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(PgStore::drop_database(&url)).ok()
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn with_database_replaces_only_the_database_name() {
        let admin = "postgres://postgres@127.0.0.1:5432/test";
        assert_eq!(with_database(admin, "kc_x"), "postgres://postgres@127.0.0.1:5432/kc_x");
        assert_eq!(
            with_database("postgres://u:p@h/test?sslmode=disable", "kc_x"),
            "postgres://u:p@h/kc_x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h:5432", "kc_x"), "postgres://h:5432/kc_x");
    }
}
