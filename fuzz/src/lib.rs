//! Shared fixtures of the keycard fuzz targets: a fixed key ring (one key per algorithm, fixed
//! kids, so seed tokens stay valid across runs), a forger that signs arbitrary header and
//! payload bytes, and one in-process keycard server per fuzzing process.
//!
//! The keys in `keys/` are test keys generated for the fuzzer; they sign nothing else.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use axum::Router;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keycard_core::keys::{KeyAlg, KeyMaterial, KeyRing, PublicKeys, SigningKey};
use keycard_core::validate::Validator;
use keycard_server::{AppState, Application, Settings};
use keycard_store::{AuditEvent, AuditKind, NewSession, NewUser, SessionRecord};

/// Issuer and audience every fixture token is checked against.
pub const ISS: &str = "https://id.fuzz.example";
/// Audience of fixture tokens.
pub const AUD: &str = "fuzz-api";
/// A fixed "now" (2025-06-15), so a seed's expiry means the same thing on every run.
pub const NOW: i64 = 1_750_000_000;
/// Clock leeway of the fixture validator.
pub const LEEWAY: i64 = 30;
/// The HS256 secret of kid `fz-hs` (32 bytes).
pub const HS_SECRET: &[u8; 32] = b"keycard-fuzz-hs256-secret-32byte";

/// Kids of the fixture keys, in [`Fixture::keys`] order.
pub const KIDS: [&str; 4] = ["fz-ed", "fz-es", "fz-hs", "fz-rs"];

/// The fixed key ring and validators.
pub struct Fixture {
    /// One key per algorithm: EdDSA, ES256, HS256, RS256 (kids in [`KIDS`]).
    pub keys: Vec<SigningKey>,
    /// All four keys; EdDSA is active.
    pub ring: KeyRing,
    /// The ring's public side (HS256 included, as a service sharing the secret would hold it).
    pub public: PublicKeys,
    /// What a resource server builds from JWKS (no HS256).
    pub from_jwks: PublicKeys,
    /// `ISS`, `AUD`, 30 s leeway.
    pub validator: Validator,
}

/// The process-wide fixture key ring.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
        let pem = |kid: &str, alg, text: &str| SigningKey::from_pem(kid, alg, text.as_bytes()).expect("fixture key");
        let keys = vec![
            pem(KIDS[0], KeyAlg::EdDsa, include_str!("../keys/ed25519.pem")),
            pem(KIDS[1], KeyAlg::Es256, include_str!("../keys/p256.pem")),
            SigningKey::from_material(KeyMaterial {
                kid: KIDS[2].into(),
                alg: KeyAlg::Hs256,
                private_der: HS_SECRET.to_vec(),
            })
            .expect("fixture key"),
            pem(KIDS[3], KeyAlg::Rs256, include_str!("../keys/rsa2048.pem")),
        ];
        let ring = KeyRing::new(keys.clone(), KIDS[0].into()).expect("fixture ring");
        let public = PublicKeys::from(&ring);
        let (from_jwks, skipped) = PublicKeys::from_jwk_set(&ring.jwks());
        assert!(skipped.is_empty(), "{skipped:?}");
        Fixture { keys, ring, public, from_jwks, validator: Validator::new(ISS, AUD, LEEWAY as u64) }
    });
    &FIXTURE
}

/// Signs `header.payload` (both raw bytes, base64url-encoded here) with `key` using the key's
/// own algorithm, whatever the header says: the forger an attacker with the key would be.
pub fn forge(key: &SigningKey, header: &[u8], payload: &[u8]) -> String {
    let message = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
    let der = &key.material().private_der;
    let encoding = match key.alg() {
        KeyAlg::EdDsa => jsonwebtoken::EncodingKey::from_ed_der(der),
        KeyAlg::Es256 => jsonwebtoken::EncodingKey::from_ec_der(der),
        KeyAlg::Hs256 => jsonwebtoken::EncodingKey::from_secret(der),
        KeyAlg::Rs256 => {
            let text = pem::encode(&pem::Pem::new("PRIVATE KEY", der.clone()));
            jsonwebtoken::EncodingKey::from_rsa_pem(text.as_bytes()).expect("fixture RSA key")
        }
    };
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &encoding, key.alg().algorithm()).expect("sign");
    format!("{message}.{signature}")
}

/// One keycard server per fuzzing process: real router, real SQLite store in a temp directory,
/// cheap Argon2 (8 KiB) and no rate limits so inputs reach the handlers.
pub struct Server {
    /// The runtime requests run on (current-thread: the fuzzer is single-threaded).
    pub rt: tokio::runtime::Runtime,
    /// Shared state (store, keys, config).
    pub state: AppState,
    /// The whole application, every layer included.
    pub router: Router,
    /// Password of every user [`Server::principal`] creates.
    pub password: &'static str,
    hash: String,
    counter: AtomicU64,
}

/// A user with a live session, made directly in the store for one input.
pub struct Principal {
    /// User id.
    pub user_id: String,
    /// Email.
    pub email: String,
    /// Session id.
    pub session_id: String,
    /// A valid access token of the session.
    pub access: String,
    /// The session's live refresh token.
    pub refresh: String,
}

/// The process-wide server.
pub fn server() -> &'static Server {
    static SERVER: LazyLock<Server> = LazyLock::new(|| {
        let dir = scratch_dir();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let settings = Settings {
            bind: "127.0.0.1:0".parse().expect("addr"),
            database: dir.join("keycard.db").display().to_string().into(),
            issuer: Some("https://id.fuzz.example".into()),
            argon2_memory_kib: 8,
            rate_limit_enabled: false,
            trusted_proxies: keycard_server::settings::IpList::new(["127.0.0.1".parse().expect("ip")]),
            allowed_origins: keycard_server::settings::StringList(vec!["https://app.fuzz.example".into()]),
            ..Settings::default()
        };
        let (state, router, hash) = rt.block_on(async {
            let app = Application::build(settings.clone()).await.expect("the fuzz server starts");
            let state = app.state().clone();
            let router = keycard_server::app(state.clone(), &settings);
            let hash = state.passwords.hash("fuzz password 1".into()).await.expect("hash");
            (state, router, hash)
        });
        Server { rt, state, router, password: "fuzz password 1", hash, counter: AtomicU64::new(0) }
    });
    &SERVER
}

impl Server {
    /// A new user with a live session and tokens, written straight to the store.
    pub fn principal(&self) -> Principal {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let now = keycard_core::now_unix();
        let user_id = format!("fz-user-{n}");
        let email = format!("u{n}@fuzz.example");
        let refresh = keycard_core::refresh::RefreshToken::generate();
        let c = &self.state.config;
        let session = SessionRecord {
            id: format!("fz-session-{n}"),
            user_id: user_id.clone(),
            created_at: now,
            last_used_at: now,
            idle_expires_at: now + c.idle_ttl,
            absolute_expires_at: now + c.absolute_ttl,
            user_agent: None,
            ip: None,
            email_verified: false,
            amr: keycard_core::amr::Amr::of(&[keycard_core::amr::AuthMethod::Pwd]),
            auth_time: now,
            dpop_jkt: None,
        };
        let store: Arc<dyn keycard_store::Store> = self.state.store.clone();
        self.rt.block_on(async {
            let user = NewUser {
                id: user_id.clone(),
                email: email.clone(),
                password_hash: self.hash.clone(),
                created_at: now,
                verification: None,
            };
            store.create_user(&user).await.expect("create user");
            let new = NewSession {
                id: session.id.clone(),
                user_id: user_id.clone(),
                created_at: now,
                idle_expires_at: session.idle_expires_at,
                absolute_expires_at: session.absolute_expires_at,
                user_agent: None,
                ip: None,
                amr: session.amr,
                auth_time: now,
                dpop_jkt: None,
            };
            let login = AuditEvent { user_id: Some(user_id.clone()), ..AuditEvent::new(AuditKind::Login, now) };
            store.create_session(&new, &refresh.hash(), &login).await.expect("create session");
        });
        let access = self.rt.block_on(keycard_server::issue::access_token(&self.state, &session, now)).expect("sign");
        Principal { user_id, email, session_id: session.id, access, refresh: refresh.expose().to_owned() }
    }
}

/// A fresh directory for this process's database; directories of fuzzing processes that are
/// gone are removed first, so repeated runs do not fill /tmp.
fn scratch_dir() -> std::path::PathBuf {
    let base = std::env::temp_dir();
    if let Ok(entries) = std::fs::read_dir(&base) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("keycard-fuzz-")
                && pid.parse::<u32>().is_ok()
                && !std::path::Path::new(&format!("/proc/{pid}")).exists()
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = base.join(format!("keycard-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}
