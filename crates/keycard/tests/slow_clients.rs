//! Slow clients against the real `keycard serve` binary under a 64-descriptor limit (the outside
//! review's reproduction): 60 sockets that send nothing, half a request line or half the headers
//! used to hold 60 descriptors for good, so `/healthz` timed out and the key reload failed with
//! "Too many open files". Now the connection cap (automatic: from the descriptor limit) keeps
//! descriptors for the server, the header-read timeout closes every slow socket, and the server
//! answers.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn sixty_slow_sockets_under_a_64_descriptor_limit_are_closed_and_the_server_answers() {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let log = dir.path().join("server.log");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -n 64 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_keycard"))
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .args(["--database", &dir.path().join("keycard.db").display().to_string()]);
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("KEYCARD_")) {
        cmd.env_remove(key);
    }
    let mut child = KillOnDrop(
        cmd.env("KEYCARD_HEADER_READ_TIMEOUT", "1s")
            .env("KEYCARD_KEY_RELOAD_INTERVAL", "1s")
            .env("KEYCARD_ARGON2_MEMORY_KIB", "64")
            .env("KEYCARD_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("keycard serve starts"),
    );
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !client.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status() == 200) {
        assert!(child.0.try_wait().unwrap().is_none(), "the server exited during start-up");
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let partials: [&[u8]; 3] = [b"", b"GET /heal", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "];
    let mut sockets = Vec::new();
    for i in 0..60 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(partials[i % partials.len()]).await.unwrap();
        sockets.push(s);
    }
    // While they are held, a normal request on a new connection is served (it may queue behind
    // them for a while: the cap keeps descriptors for the server).
    let started = Instant::now();
    let fresh = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let resp = fresh.get(format!("{base}/healthz")).send().await.expect("/healthz answers under the flood");
    assert_eq!(resp.status(), 200);
    eprintln!("/healthz answered after {:?} with 60 slow sockets open", started.elapsed());
    // Every slow socket is closed by the server.
    for (i, s) in sockets.iter_mut().enumerate() {
        let mut buf = [0u8; 256];
        let closed = loop {
            match tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf)).await {
                Err(_) => break false,
                Ok(Ok(0) | Err(_)) => break true,
                Ok(Ok(_)) => continue,
            }
        };
        assert!(closed, "slow socket {i} is still open");
    }
    // And the server is whole: it answers, signs up and logs in (the store has its descriptors).
    let resp = client
        .post(format!("{base}/auth/signup"))
        .json(&serde_json::json!({"email": "after@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert!(child.0.try_wait().unwrap().is_none(), "the server is still running");
    drop(child);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(!logged.contains("Too many open files"), "the server ran out of descriptors:\n{logged}");
}

/// The server process, killed however the test ends (a failed assertion included).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
