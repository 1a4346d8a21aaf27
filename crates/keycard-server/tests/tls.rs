//! HTTPS with rustls: a TLS handshake against a freshly generated certificate, and HSTS.

use keycard_server::{Application, Settings};

#[tokio::test]
async fn serves_https_with_hsts_when_given_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();

    let settings = Settings {
        bind: "127.0.0.1:0".parse().unwrap(),
        database: dir.path().join("k.db").display().to_string(),
        tls_cert: Some(cert_path.display().to_string()),
        tls_key: Some(key_path.display().to_string()),
        ..Settings::default()
    };
    let app = Application::build(settings).await.unwrap();
    let port = app.local_addr().port();
    tokio::spawn(app.run_until(std::future::pending()));

    let root = reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(root)
        .resolve("localhost", format!("127.0.0.1:{port}").parse().unwrap())
        .build()
        .unwrap();
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
        database: dir.path().join("k.db").display().to_string(),
        tls_cert: Some("/nonexistent/cert.pem".into()),
        tls_key: Some("/nonexistent/key.pem".into()),
        ..Settings::default()
    };
    let err = Application::build(settings).await.err().expect("must not start");
    assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
}
