//! The `keycard` binary with key files: `keycard keys list` shows the files' keys (files from
//! `KEYCARD_SIGNING_KEY_FILES`, comma-separated), `keycard keys import` seals a PEM key into the
//! store, `keycard serve --signing-key-files` with a bad file exits naming it, and the store's
//! key commands are refused while files are configured.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine;
use keycard_core::keys::{KeyAlg, SigningKey};
use serde_json::Value;

fn pem_of(key: &SigningKey) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(&key.material().private_der);
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", lines.join("\n"))
}

fn write_key(dir: &Path, name: &str, alg: KeyAlg) -> (SigningKey, PathBuf) {
    let key = SigningKey::generate(alg).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, pem_of(&key)).unwrap();
    (key, path)
}

fn keycard(dir: &Path, args: &[&str], files: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keycard"));
    command
        .args(args)
        .env("KEYCARD_LOG", "warn")
        .env("KEYCARD_DATABASE", dir.join("keycard.db"))
        .env_remove("KEYCARD_CONFIG")
        .env_remove("KEYCARD_SIGNING_KEY_FILES");
    if let Some(files) = files {
        command.env("KEYCARD_SIGNING_KEY_FILES", files);
    }
    command.output().expect("keycard runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn keys_list_shows_the_files_keys_and_the_store_commands_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (a, a_path) = write_key(dir.path(), "a.pem", KeyAlg::Es256);
    let (b, b_path) = write_key(dir.path(), "b.pem", KeyAlg::EdDsa);
    let files = format!("{}, {}", a_path.display(), b_path.display());
    let out = keycard(dir.path(), &["keys", "list", "--json"], Some(&files));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows: Vec<(&str, &str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["kid"].as_str().unwrap(), k["alg"].as_str().unwrap(), k["state"].as_str().unwrap()))
        .collect();
    let (a_kid, b_kid) = (a.thumbprint(), b.thumbprint());
    assert_eq!(rows, vec![(a_kid.as_str(), "ES256", "verify"), (b_kid.as_str(), "EdDSA", "active")]);
    let table = text(&keycard(dir.path(), &["keys", "list"], Some(&files)).stdout);
    assert!(table.contains(&a_kid) && table.contains("a.pem"), "{table}");

    let rotate = keycard(dir.path(), &["keys", "rotate"], Some(&files));
    assert!(!rotate.status.success());
    assert!(text(&rotate.stderr).contains("signing_key_files"), "{}", text(&rotate.stderr));
}

#[test]
fn keys_import_seals_a_pem_key_into_the_store_and_makes_it_active() {
    let dir = tempfile::tempdir().unwrap();
    let (key, path) = write_key(dir.path(), "imported.pem", KeyAlg::Rs256);
    let out = keycard(dir.path(), &["keys", "import", &path.display().to_string()], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&key.thumbprint()), "{}", text(&out.stdout));
    let listed: Value = serde_json::from_slice(&keycard(dir.path(), &["keys", "list", "--json"], None).stdout).unwrap();
    let active: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["state"] == "active")
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(active, vec![key.thumbprint().as_str()]);

    let again = keycard(dir.path(), &["keys", "import", &path.display().to_string()], None);
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("already in the store"), "{}", text(&again.stderr));
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").unwrap();
    let refused = keycard(dir.path(), &["keys", "import", &bad.display().to_string()], None);
    assert!(!refused.status.success());
    let stderr = text(&refused.stderr);
    assert!(stderr.contains("bad.pem") && stderr.lines().count() == 1, "{stderr}");
}

#[test]
fn serve_with_a_bad_key_file_exits_with_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_, good) = write_key(dir.path(), "good.pem", KeyAlg::EdDsa);
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not a key\n").unwrap();
    let flag = format!("{},{}", good.display(), bad.display());
    let out = keycard(dir.path(), &["serve", "--bind", "127.0.0.1:0", "--signing-key-files", &flag], None);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("signing key file") && stderr.contains("bad.pem"), "{stderr}");
}

#[test]
fn a_malformed_replacement_is_logged_naming_the_file_without_key_bytes_and_the_server_keeps_running() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let (_, current) = write_key(dir.path(), "current.pem", KeyAlg::EdDsa);
    let mut child = Command::new(env!("CARGO_BIN_EXE_keycard"))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("KEYCARD_DATABASE", dir.path().join("keycard.db"))
        .env("KEYCARD_SIGNING_KEY_FILES", &current)
        .env("KEYCARD_KEY_RELOAD_INTERVAL", "100ms")
        .env("KEYCARD_LOG", "info")
        .env_remove("KEYCARD_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("keycard runs");
    let (lines, received) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let mut log = Vec::new();
    let mut wait_for = |what: &str, found: &dyn Fn(&str) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match received.recv_timeout(left.max(Duration::from_millis(1))) {
                Ok(line) => {
                    let hit = found(&line);
                    log.push(line);
                    if hit {
                        return;
                    }
                }
                Err(_) => panic!("no log line {what} within 30 s:\n{}", log.join("\n")),
            }
        }
    };
    wait_for("saying keycard listens", &|l| l.contains("keycard listening"));

    // The secret manager writes a broken key (half of a new one) over the file.
    let replacement = pem_of(&SigningKey::generate(KeyAlg::EdDsa).unwrap());
    let broken = &replacement[..replacement.len() / 2];
    std::fs::write(&current, broken).unwrap();
    wait_for("about the broken file", &|l| l.contains("current.pem") && l.contains("WARN"));
    assert!(child.try_wait().unwrap().is_none(), "the server keeps running");
    let _ = child.kill();
    let _ = child.wait();
    let all = log.join("\n");
    for key_line in broken.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!all.contains(&key_line[..key_line.len().min(24)]), "key bytes in the log:\n{all}");
    }
}
