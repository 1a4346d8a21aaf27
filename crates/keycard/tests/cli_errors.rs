//! Operator commands that fail print `error: ` and the error chain on one line, and exit non-zero,
//! whatever the environment: with `RUST_BACKTRACE=1` and `RUST_LIB_BACKTRACE=1` set (anyhow
//! would capture and print a backtrace from `main`) there is still no backtrace.

use std::process::Output;

/// Runs the real binary with backtraces asked for everywhere.
async fn keycard(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_keycard"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LIB_BACKTRACE", "1")
        .env_remove("KEYCARD_LOG")
        .env_remove("KEYCARD_LOG_FORMAT")
        .env_remove("KEYCARD_CONFIG")
        .output()
        .await
        .expect("keycard runs")
}

/// A failure: exit code 1, stderr one `error:` line holding the whole chain, no backtrace.
fn assert_clean_failure(out: &Output, chain: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(stderr.starts_with("error: "), "stderr:\n{stderr}");
    for needle in ["stack backtrace", "Stack backtrace", "Caused by", "anyhow::", "RUST_BACKTRACE"] {
        assert!(!stderr.contains(needle), "{needle:?} in stderr:\n{stderr}");
    }
    assert!(!stderr.lines().any(|l| l.trim_start().starts_with("at ")), "a frame line in stderr:\n{stderr}");
    assert!(!stderr.lines().any(|l| l.trim_start().starts_with("0: ")), "a numbered chain in stderr:\n{stderr}");
    let first = stderr.lines().next().unwrap_or("");
    for part in chain {
        assert!(first.contains(part), "{part:?} not on the error line: {first}");
    }
    stderr
}

#[tokio::test]
async fn keycard_check_against_nothing_listening_fails_with_a_one_line_error() {
    // Without an account `check` only reads discovery (failures there mean "defaults") and
    // passes with everything skipped, so it is given one: the login cannot connect.
    let out = keycard(&["check", "http://127.0.0.1:1", "--email", "a@example.com", "--password", "hunter2"]).await;
    let stderr = assert_clean_failure(&out, &["error: logging in: request failed: ", "127.0.0.1:1/auth/login"]);
    assert!(!stderr.contains("hunter2"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("keycard check http://127.0.0.1:1\n"), "{stdout}");
}

#[tokio::test]
async fn keys_list_on_a_database_that_cannot_be_opened_fails_with_a_one_line_error() {
    let out = keycard(&["keys", "list", "--database", "/nonexistent/dir/x.db"]).await;
    assert_clean_failure(&out, &["unable to open database file"]);
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[tokio::test]
async fn token_inspect_of_something_that_is_not_a_token_fails_with_a_one_line_error() {
    let out = keycard(&["token", "inspect", "not-a-jwt"]).await;
    assert_clean_failure(&out, &["error: "]);
}

#[tokio::test]
async fn a_usage_error_is_still_clap_s_with_exit_code_2() {
    let out = keycard(&["check"]).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: the following required arguments were not provided"), "{stderr}");
    assert!(stderr.contains("Usage: keycard check"), "{stderr}");
}

/// Flags are typed like their settings: a bad value is refused by name before anything starts
/// (clap's usage error, exit code 2), and `audit --kind` lists the kinds there are.
#[tokio::test]
async fn bad_flag_values_are_refused_by_name_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("k.db").display().to_string();
    for (args, needles) in [
        (vec!["serve", "--database", &database, "--access-ttl", "5x"], vec!["--access-ttl", "invalid duration \"5x\""]),
        (vec!["serve", "--database", &database, "--bind", "localhost"], vec!["--bind", "localhost"]),
        (
            vec!["audit", "--database", &database, "--kind", "refresh_reused"],
            vec!["--kind", "unknown audit kind \"refresh_reused\"", "refresh_token_reused"],
        ),
    ] {
        let out = keycard(&args).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        for needle in needles {
            assert!(stderr.contains(needle), "{needle:?} not in the error of {args:?}: {stderr}");
        }
        assert!(!dir.path().join("k.db").exists(), "{args:?} started something");
    }
}
