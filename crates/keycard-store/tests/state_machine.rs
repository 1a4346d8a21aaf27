//! Property tests of the session state machine: random interleavings of login, rotation (of the
//! live token, of any token ever issued, of unknown tokens), logout scopes, password change,
//! account deletion and time passing, run on a real `SqliteStore` (a fresh temp file per case)
//! and compared after every step with a small in-memory model.
//!
//! The model is the contract: a session is live while not revoked and before both expiries;
//! rotating its unused token uses it and issues one replacement; presenting a used token
//! revokes the session (unless inside the reuse interval, where it retires the live token and
//! issues another); a revoked, expired or deleted session's tokens yield nothing, and leave
//! nothing changed. Besides matching the model, a token presented after its session was revoked
//! must never yield a token, and with no reuse interval no token yields twice.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use keycard_core::refresh::{RefreshToken, TokenHash};
use keycard_store::RevocationReason;
use keycard_store::{
    AuditEvent, AuditKind, NewSession, NewUser, Presenter, ReuseVerdict, RotateOutcome, Rotation, SessionRecord,
    SqliteStore, Store, classify_reuse,
};
use proptest::prelude::*;

/// The audit event handed to the store methods that write one with their change.
fn audited() -> AuditEvent {
    AuditEvent::new(AuditKind::Logout, T0)
}

/// Start of time for every case (2023-11-14).
const T0: i64 = 1_700_000_000;
/// Idle lifetime: short, so time steps cross it often.
const IDLE: i64 = 100;
/// Absolute lifetime.
const ABSOLUTE: i64 = 250;
/// Users per case.
const USERS: usize = 3;

#[derive(Debug, Clone)]
enum Pick {
    /// The live token of the n-th session (mod the number of sessions): long rotation chains.
    Live(usize),
    /// The n-th token ever issued (mod): used, revoked and live tokens alike.
    Any(usize),
    /// A token the store never saw.
    Unknown,
}

#[derive(Debug, Clone)]
enum Op {
    Login {
        user: usize,
    },
    Rotate(Pick),
    /// `DELETE /auth/sessions/{id}` or logout `local`: `user` revokes session n (maybe not theirs).
    RevokeOne {
        user: usize,
        session: usize,
    },
    /// Logout `global`.
    RevokeAll {
        user: usize,
    },
    /// Logout `others`, keeping session n.
    RevokeOthers {
        user: usize,
        session: usize,
    },
    SetPassword {
        user: usize,
        keep: Option<usize>,
    },
    DeleteUser {
        user: usize,
    },
    Advance {
        secs: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let user = 0..USERS;
    prop_oneof![
        4 => user.clone().prop_map(|user| Op::Login { user }),
        8 => any::<usize>().prop_map(|n| Op::Rotate(Pick::Live(n))),
        4 => any::<usize>().prop_map(|n| Op::Rotate(Pick::Any(n))),
        1 => Just(Op::Rotate(Pick::Unknown)),
        2 => (user.clone(), any::<usize>()).prop_map(|(user, session)| Op::RevokeOne { user, session }),
        1 => user.clone().prop_map(|user| Op::RevokeAll { user }),
        1 => (user.clone(), any::<usize>()).prop_map(|(user, session)| Op::RevokeOthers { user, session }),
        1 => (user.clone(), proptest::option::of(any::<usize>())).prop_map(|(user, keep)| Op::SetPassword { user, keep }),
        1 => user.prop_map(|user| Op::DeleteUser { user }),
        3 => prop_oneof![Just(1i64), Just(4), Just(5), Just(9), Just(30), Just(60), Just(101), Just(260)]
            .prop_map(|secs| Op::Advance { secs }),
    ]
}

#[derive(Debug, Clone)]
struct MSession {
    id: String,
    user: usize,
    created_at: i64,
    last_used_at: i64,
    idle_expires_at: i64,
    absolute_expires_at: i64,
    revoked: bool,
    /// Deleted with its user (ON DELETE CASCADE).
    gone: bool,
}

#[derive(Debug)]
struct MToken {
    token: RefreshToken,
    session: usize,
    used_at: Option<i64>,
    /// How many times presenting it yielded a new token.
    yields: u32,
}

struct Model {
    now: i64,
    reuse_interval: i64,
    user_ids: Vec<String>,
    user_alive: Vec<bool>,
    sessions: Vec<MSession>,
    tokens: Vec<MToken>,
    revocations: usize,
}

impl Model {
    fn live(&self, s: &MSession) -> bool {
        !s.revoked && !s.gone && s.idle_expires_at > self.now && s.absolute_expires_at > self.now
    }

    fn record(&self, s: &MSession) -> SessionRecord {
        SessionRecord {
            id: s.id.clone(),
            user_id: self.user_ids[s.user].clone(),
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            idle_expires_at: s.idle_expires_at,
            absolute_expires_at: s.absolute_expires_at,
            user_agent: None,
            ip: None,
            email_verified: false,
            amr: keycard_core::amr::Amr::of(&[keycard_core::amr::AuthMethod::Pwd]),
            auth_time: s.created_at,
            dpop_jkt: None,
        }
    }

    fn live_ids(&self, user: usize, except: Option<&str>) -> BTreeSet<String> {
        self.sessions
            .iter()
            .filter(|s| s.user == user && self.live(s) && Some(s.id.as_str()) != except)
            .map(|s| s.id.clone())
            .collect()
    }

    fn revoke(&mut self, ids: &BTreeSet<String>) {
        for s in self.sessions.iter_mut().filter(|s| ids.contains(&s.id)) {
            s.revoked = true;
        }
        self.revocations += ids.len();
    }

    fn session_index(&self, n: usize) -> Option<usize> {
        (!self.sessions.is_empty()).then(|| n % self.sessions.len())
    }
}

async fn fresh_store() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("keycard.db");
    let store = SqliteStore::open(&path.display().to_string(), 2).await.expect("SQLite opens");
    (Arc::new(store), dir)
}

async fn run(ops: Vec<Op>, reuse_interval: i64) {
    let (store, _dir) = fresh_store().await;
    let mut m = Model {
        now: T0,
        reuse_interval,
        user_ids: (0..USERS).map(|i| format!("user-{i}")).collect(),
        user_alive: vec![true; USERS],
        sessions: Vec::new(),
        tokens: Vec::new(),
        revocations: 0,
    };
    for (i, id) in m.user_ids.iter().enumerate() {
        let user = NewUser {
            id: id.clone(),
            email: format!("u{i}@example.com"),
            password_hash: "h".into(),
            created_at: T0,
            verification: None,
        };
        store.create_user(&user).await.expect("create user");
    }
    for (step, op) in ops.into_iter().enumerate() {
        apply(store.as_ref(), &mut m, &op).await;
        check(store.as_ref(), &m).await.unwrap_or_else(|e| panic!("after step {step} ({op:?}): {e}"));
    }
}

async fn apply(store: &dyn Store, m: &mut Model, op: &Op) {
    let now = m.now;
    match *op {
        Op::Login { user } => {
            let id = format!("s{}", m.sessions.len());
            let new = NewSession {
                id: id.clone(),
                user_id: m.user_ids[user].clone(),
                created_at: now,
                idle_expires_at: (now + IDLE).min(now + ABSOLUTE),
                absolute_expires_at: now + ABSOLUTE,
                user_agent: None,
                ip: None,
                amr: keycard_core::amr::Amr::of(&[keycard_core::amr::AuthMethod::Pwd]),
                auth_time: now,
                dpop_jkt: None,
            };
            let first = RefreshToken::generate();
            let created = store.create_session(&new, &first.hash(), &audited()).await;
            if !m.user_alive[user] {
                assert!(created.is_err(), "a session was created for a deleted user");
                return;
            }
            created.expect("create session");
            m.sessions.push(MSession {
                id,
                user,
                created_at: now,
                last_used_at: now,
                idle_expires_at: new.idle_expires_at,
                absolute_expires_at: new.absolute_expires_at,
                revoked: false,
                gone: false,
            });
            let session = m.sessions.len() - 1;
            m.tokens.push(MToken { token: first, session, used_at: None, yields: 0 });
        }
        Op::Rotate(ref pick) => rotate(store, m, pick).await,
        Op::RevokeOne { user, session } => {
            let Some(si) = m.session_index(session) else { return };
            let s = m.sessions[si].clone();
            let expected = s.user == user && m.live(&s);
            let done = store
                .revoke_session(&m.user_ids[user], &s.id, RevocationReason::Logout, now, &audited())
                .await
                .expect("revoke_session");
            assert_eq!(done, expected, "revoke_session({}, {})", m.user_ids[user], s.id);
            if done {
                m.revoke(&BTreeSet::from([s.id]));
            }
        }
        Op::RevokeAll { user } => {
            let expected = m.live_ids(user, None);
            let ids = store
                .revoke_user_sessions(&m.user_ids[user], None, RevocationReason::LogoutGlobal, now, &audited())
                .await
                .expect("revoke all");
            assert_eq!(ids.into_iter().collect::<BTreeSet<_>>(), expected, "logout global");
            m.revoke(&expected);
        }
        Op::RevokeOthers { user, session } => {
            let keep = m.session_index(session).map(|i| m.sessions[i].id.clone());
            let expected = m.live_ids(user, keep.as_deref());
            let ids = store
                .revoke_user_sessions(
                    &m.user_ids[user],
                    keep.as_deref(),
                    RevocationReason::LogoutOthers,
                    now,
                    &audited(),
                )
                .await
                .expect("revoke others");
            assert_eq!(ids.into_iter().collect::<BTreeSet<_>>(), expected, "logout others");
            m.revoke(&expected);
        }
        Op::SetPassword { user, keep } => {
            let keep = keep.and_then(|n| m.session_index(n)).map(|i| m.sessions[i].id.clone());
            let expected = m.live_ids(user, keep.as_deref());
            let ids = store
                .set_password(&m.user_ids[user], "h2", keep.as_deref(), now, &audited())
                .await
                .expect("set_password");
            assert_eq!(ids.into_iter().collect::<BTreeSet<_>>(), expected, "password change");
            m.revoke(&expected);
        }
        Op::DeleteUser { user } => {
            let expected = m.live_ids(user, None);
            let ids = store.delete_user(&m.user_ids[user], now, &audited()).await.expect("delete_user");
            assert_eq!(ids.into_iter().collect::<BTreeSet<_>>(), expected, "account deletion");
            m.revoke(&expected);
            m.user_alive[user] = false;
            for s in m.sessions.iter_mut().filter(|s| s.user == user) {
                s.gone = true;
            }
        }
        Op::Advance { secs } => m.now += secs,
    }
}

async fn rotate(store: &dyn Store, m: &mut Model, pick: &Pick) {
    let now = m.now;
    let index = match *pick {
        Pick::Unknown => None,
        Pick::Any(n) if !m.tokens.is_empty() => Some(n % m.tokens.len()),
        Pick::Live(n) => m.session_index(n).and_then(|si| {
            // The session's newest token: its live one if it has one.
            m.tokens.iter().rposition(|t| t.session == si)
        }),
        Pick::Any(_) => None,
    };
    let presented = match index {
        Some(i) => m.tokens[i].token.hash(),
        None => RefreshToken::generate().hash(),
    };
    let replacement = RefreshToken::generate();
    let rotation = Rotation {
        presented,
        replacement: replacement.hash(),
        now,
        idle_ttl: IDLE,
        reuse_interval: m.reuse_interval,
        ip: None,
        user_agent: None,
        binding: Default::default(),
        dpop_jkt: None,
    };
    let outcome = store.rotate_refresh(&rotation).await.expect("rotate_refresh");

    let Some(i) = index else {
        assert_eq!(outcome, RotateOutcome::Invalid, "an unknown token");
        return;
    };
    let si = m.tokens[i].session;
    let s = m.sessions[si].clone();
    let revoked_before = s.revoked || s.gone;
    let expected = if !m.live(&s) {
        RotateOutcome::Invalid
    } else {
        match m.tokens[i].used_at {
            Some(used_at) if now - used_at >= m.reuse_interval => {
                let unknown = |at| Presenter { at, ip: None, user_agent: None };
                let verdict = classify_reuse(Some(&unknown(used_at)), &unknown(now));
                RotateOutcome::Reused { session_id: s.id.clone(), user_id: m.user_ids[s.user].clone(), verdict }
            }
            used => {
                if used.is_some() {
                    // Inside the reuse interval: the live token of the family is retired too.
                    for t in m.tokens.iter_mut().filter(|t| t.session == si && t.used_at.is_none()) {
                        t.used_at = Some(now);
                    }
                }
                m.tokens[i].used_at.get_or_insert(now);
                let session = &mut m.sessions[si];
                session.last_used_at = now;
                session.idle_expires_at = (now + IDLE).min(session.absolute_expires_at);
                RotateOutcome::Rotated(m.record(&m.sessions[si]))
            }
        }
    };
    assert_eq!(outcome, expected, "rotating token #{i} of session {}", s.id);
    match outcome {
        RotateOutcome::Rotated(_) => {
            assert!(!revoked_before, "a token of a revoked session yielded a token");
            m.tokens[i].yields += 1;
            if m.reuse_interval == 0 {
                assert_eq!(m.tokens[i].yields, 1, "with no reuse interval a token yielded twice");
            }
            m.tokens.push(MToken { token: replacement, session: si, used_at: None, yields: 0 });
        }
        RotateOutcome::Reused { .. } => m.revoke(&BTreeSet::from([s.id])),
        // The model's rotations carry no binding, so no mismatch can happen.
        RotateOutcome::BindingMismatch { .. } => panic!("a rotation without binding reported a mismatch"),
        RotateOutcome::DpopMismatch { .. } => panic!("a session without DPoP reported a DPoP mismatch"),
        RotateOutcome::Invalid => {}
    }
}

/// Compares everything the store answers about sessions and tokens with the model.
async fn check(store: &dyn Store, m: &Model) -> Result<(), String> {
    let now = m.now;
    for (u, uid) in m.user_ids.iter().enumerate() {
        let listed = store.list_sessions(uid, now).await.map_err(|e| e.to_string())?;
        let mut expected: Vec<SessionRecord> =
            m.sessions.iter().filter(|s| s.user == u && m.live(s)).map(|s| m.record(s)).collect();
        expected.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        if listed != expected {
            return Err(format!("list_sessions({uid}) = {listed:#?}, model {expected:#?}"));
        }
    }
    for s in &m.sessions {
        let uid = &m.user_ids[s.user];
        // Access tokens outlive idle expiry: only revocation, deletion and the absolute limit end them.
        let expected = !s.revoked && !s.gone && s.absolute_expires_at > now;
        let found = store.session_user(&s.id, uid, now).await.map_err(|e| e.to_string())?;
        if found.is_some() != expected {
            return Err(format!("session_user({}) = {found:?}, model says live: {expected}", s.id));
        }
    }
    let by_session: HashMap<usize, &MSession> = m.sessions.iter().enumerate().collect();
    for (i, t) in m.tokens.iter().enumerate() {
        let s = by_session[&t.session];
        let expected = (t.used_at.is_none() && m.live(s)).then(|| m.record(s));
        let found = store.session_by_refresh(&t.token.hash(), now).await.map_err(|e| e.to_string())?;
        if found != expected {
            return Err(format!("session_by_refresh(token #{i}) = {found:?}, model {expected:?}"));
        }
    }
    let feed = store.revocations_since(0, 100_000).await.map_err(|e| e.to_string())?;
    if feed.len() != m.revocations {
        return Err(format!("revocation feed has {} entries, model {}", feed.len(), m.revocations));
    }
    Ok(())
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(f)
}

proptest! {
    // Each case opens a fresh SQLite file; 160 cases of up to 80 steps run in about 10 s per test.
    #![proptest_config(ProptestConfig { cases: 160, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn the_store_follows_the_session_model_strictly_single_use(ops in proptest::collection::vec(op(), 1..80)) {
        block_on(run(ops, 0));
    }

    #[test]
    fn the_store_follows_the_session_model_with_a_reuse_interval(
        ops in proptest::collection::vec(op(), 1..80),
        interval in prop_oneof![Just(5i64), Just(30)],
    ) {
        block_on(run(ops, interval));
    }
}

/// The reuse interval, step by step: a client that lost the answer may present its used token
/// again within the interval and gets a fresh pair (the token it missed is retired); after the
/// interval the same presentation is reuse and ends the session.
#[test]
fn a_used_token_yields_again_only_inside_the_reuse_interval() {
    block_on(async {
        let (store, _dir) = fresh_store().await;
        let user = NewUser {
            id: "u".into(),
            email: "u@example.com".into(),
            password_hash: "h".into(),
            created_at: T0,
            verification: None,
        };
        store.create_user(&user).await.unwrap();
        let session = NewSession {
            id: "s".into(),
            user_id: "u".into(),
            created_at: T0,
            idle_expires_at: T0 + IDLE,
            absolute_expires_at: T0 + ABSOLUTE,
            user_agent: None,
            ip: None,
            amr: keycard_core::amr::Amr::of(&[keycard_core::amr::AuthMethod::Pwd]),
            auth_time: T0,
            dpop_jkt: None,
        };
        let t0 = RefreshToken::generate();
        store.create_session(&session, &t0.hash(), &audited()).await.unwrap();
        let rotate = |presented: TokenHash, now: i64| {
            let store = store.clone();
            async move {
                let replacement = RefreshToken::generate();
                let r = Rotation {
                    presented,
                    replacement: replacement.hash(),
                    now,
                    idle_ttl: IDLE,
                    reuse_interval: 10,
                    ip: None,
                    user_agent: None,
                    binding: Default::default(),
                    dpop_jkt: None,
                };
                (store.rotate_refresh(&r).await.unwrap(), replacement)
            }
        };
        let (first, t1) = rotate(t0.hash(), T0).await;
        assert!(matches!(first, RotateOutcome::Rotated(_)), "{first:?}");
        // The answer carrying t1 was lost; the client retries with t0 three seconds later.
        let (retry, t2) = rotate(t0.hash(), T0 + 3).await;
        assert!(matches!(retry, RotateOutcome::Rotated(_)), "a retry inside the interval rotates: {retry:?}");
        assert!(store.session_by_refresh(&t1.hash(), T0 + 3).await.unwrap().is_none(), "t1 was retired");
        assert!(store.session_by_refresh(&t2.hash(), T0 + 3).await.unwrap().is_some(), "t2 is the live token");
        // t1 itself was used (retired) at T0 + 3: inside its own interval it also still rotates.
        let (late_t1, t3) = rotate(t1.hash(), T0 + 12).await;
        assert!(matches!(late_t1, RotateOutcome::Rotated(_)), "{late_t1:?}");
        // t0 was used at T0: at T0 + 10 the interval is over and presenting it is reuse.
        let (reuse, _) = rotate(t0.hash(), T0 + 13).await;
        let reused =
            RotateOutcome::Reused { session_id: "s".into(), user_id: "u".into(), verdict: ReuseVerdict::Unknown };
        assert_eq!(reuse, reused, "the same (absent) device signals, 13 s after the rotation that spent t0");
        for (name, token) in [("t0", &t0), ("t1", &t1), ("t2", &t2), ("t3", &t3)] {
            let (outcome, _) = rotate(token.hash(), T0 + 14).await;
            assert_eq!(outcome, RotateOutcome::Invalid, "{name} after the session was revoked");
        }
    });
}
