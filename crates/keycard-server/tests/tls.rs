//! HTTPS with rustls: a TLS handshake against a freshly generated certificate, and HSTS.

use keycard_server::{Application, Settings};

/// A self-signed certificate for `localhost`, written as PEM files into `dir`: (cert, cert path,
/// key path).
fn self_signed(dir: &std::path::Path) -> (rcgen::CertifiedKey<rcgen::KeyPair>, String, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    (cert, cert_path.display().to_string(), key_path.display().to_string())
}

/// A client trusting `cert` that resolves `localhost` to the server on `port`.
fn https_client(cert: &rcgen::CertifiedKey<rcgen::KeyPair>, port: u16) -> reqwest::Client {
    let root = reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(root)
        .resolve("localhost", format!("127.0.0.1:{port}").parse().unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn serves_https_with_hsts_when_given_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, cert_path, key_path) = self_signed(dir.path());
    let settings = Settings {
        bind: "127.0.0.1:0".parse().unwrap(),
        database: dir.path().join("k.db").display().to_string().into(),
        tls_cert: Some(cert_path),
        tls_key: Some(key_path),
        ..Settings::default()
    };
    let app = Application::build(settings).await.unwrap();
    let port = app.local_addr().port();
    tokio::spawn(app.run_until(std::future::pending()));

    let client = https_client(&cert, port);
    let resp = client.get(format!("https://localhost:{port}/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers().get("strict-transport-security").unwrap(), "max-age=31536000; includeSubDomains");

    // Plain HTTP to the TLS port gets no answer a client could mistake for success.
    let plain = reqwest::Client::new().get(format!("http://127.0.0.1:{port}/healthz")).send().await;
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));
}

#[tokio::test]
async fn a_missing_certificate_is_a_clear_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        bind: "127.0.0.1:0".parse().unwrap(),
        database: dir.path().join("k.db").display().to_string().into(),
        tls_cert: Some("/nonexistent/cert.pem".into()),
        tls_key: Some("/nonexistent/key.pem".into()),
        ..Settings::default()
    };
    let err = Application::build(settings).await.err().expect("must not start");
    assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
}

#[tokio::test]
async fn slow_tls_handshakes_and_slow_headers_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().unwrap();
    let (cert, cert_path, key_path) = self_signed(dir.path());
    let settings = Settings {
        tls_cert: Some(cert_path),
        tls_key: Some(key_path),
        header_read_timeout: keycard_server::settings::HumanDuration::secs(1),
        max_connections: 8,
        ..Settings::loopback(dir.path().join("k.db").display().to_string())
    };
    let app = Application::build(settings).await.unwrap();
    let port = app.local_addr().port();
    tokio::spawn(app.run_until(std::future::pending()));

    // Sockets that never start (or never finish) their handshake: all 8 connection slots.
    let mut stalled = Vec::new();
    for i in 0..8 {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        if i % 2 == 1 {
            s.write_all(&[0x16, 0x03, 0x01, 0x02]).await.unwrap(); // the start of a ClientHello
        }
        stalled.push(s);
    }
    for (i, s) in stalled.iter_mut().enumerate() {
        let mut buf = [0u8; 64];
        let closed = loop {
            match tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf)).await {
                Err(_) => break false,
                Ok(Ok(0) | Err(_)) => break true,
                Ok(Ok(_)) => continue, // a TLS alert before the close
            }
        };
        assert!(closed, "stalled handshake {i} was not closed");
    }
    // The slots are free again: a real client is served.
    let resp = https_client(&cert, port).get(format!("https://localhost:{port}/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}
