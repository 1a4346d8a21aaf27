//! DPoP (RFC 9449): a session bound to a key rotates only with that key's proof, and a proof's
//! `(jkt, jti)` is spent once across every instance.

use std::sync::Arc;

use keycard_store::{NewSession, RotateOutcome, Rotation, Store};

use crate::harness::{ABSOLUTE, IDLE, NOW, audited, rotation, token, user};

pub async fn a_bound_session_rotates_only_with_its_key(store: Arc<dyn Store>) {
    let uid = user(&*store, "ada@example.com").await;
    let (sid, first) = (uuid::Uuid::new_v4().to_string(), token());
    let new = NewSession {
        id: sid.clone(),
        user_id: uid.clone(),
        created_at: NOW,
        idle_expires_at: NOW + IDLE,
        absolute_expires_at: NOW + ABSOLUTE,
        user_agent: None,
        ip: None,
        amr: keycard_core::amr::Amr::of(&[keycard_core::amr::AuthMethod::Pwd]),
        auth_time: NOW,
        dpop_jkt: Some("key-a".into()),
    };
    store.create_session(&new, &first, &audited()).await.unwrap();
    let with = |jkt: Option<&str>, presented, now| Rotation {
        dpop_jkt: jkt.map(Into::into),
        ..rotation(presented, token(), now)
    };

    let mismatch = RotateOutcome::DpopMismatch { session_id: sid.clone(), user_id: uid.clone() };
    assert_eq!(store.rotate_refresh(&with(None, first, NOW + 1)).await.unwrap(), mismatch, "no proof");
    assert_eq!(store.rotate_refresh(&with(Some("key-b"), first, NOW + 2)).await.unwrap(), mismatch, "another key");
    // Nothing changed: the token is still live and the session is not revoked.
    assert!(store.session_by_refresh(&first, NOW + 3).await.unwrap().is_some());
    match store.rotate_refresh(&with(Some("key-a"), first, NOW + 4)).await.unwrap() {
        RotateOutcome::Rotated(session) => assert_eq!(session.dpop_jkt.as_deref(), Some("key-a")),
        other => panic!("the key's proof rotates: {other:?}"),
    }
    let listed = store.session_by_refresh(&first, NOW + 5).await.unwrap();
    assert!(listed.is_none(), "the presented token is spent");
}

pub async fn a_dpop_proof_is_spent_once_until_it_expires(store: Arc<dyn Store>) {
    assert!(store.spend_dpop_proof("k1", "j1", NOW + 60, NOW).await.unwrap());
    assert!(!store.spend_dpop_proof("k1", "j1", NOW + 60, NOW + 60).await.unwrap(), "replay at the last second");
    assert!(store.spend_dpop_proof("k2", "j1", NOW + 60, NOW).await.unwrap(), "per key");
    assert!(store.spend_dpop_proof("k1", "j1", NOW + 200, NOW + 61).await.unwrap(), "forgotten once expired");

    let tries: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.spend_dpop_proof("k1", "race", NOW + 60, NOW).await.unwrap() })
        })
        .collect();
    let mut won = 0;
    for t in tries {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1, "twenty concurrent spends of one proof: exactly one wins");
}
