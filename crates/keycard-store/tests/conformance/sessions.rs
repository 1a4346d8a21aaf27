//! Sessions: creation, listing, lookup by refresh token, idle and absolute expiry.

use std::sync::Arc;

use keycard_store::{RotateOutcome, Rotation, SessionRecord, Store};

use crate::harness::{ABSOLUTE, IDLE, NOW, rotation, session, session_at, token, user};

pub async fn a_new_session_is_listed_and_found_by_its_refresh_token(store: Arc<dyn Store>) {
    let uid = user(&*store, "ada@example.com").await;
    let (sid, first) = session(&*store, &uid).await;
    let expected = SessionRecord {
        id: sid.clone(),
        user_id: uid.clone(),
        created_at: NOW,
        last_used_at: NOW,
        idle_expires_at: NOW + IDLE,
        absolute_expires_at: NOW + ABSOLUTE,
        user_agent: Some("conformance".into()),
        ip: Some("192.0.2.1".into()),
        email_verified: false,
        amr: keycard_core::amr::Amr::of(&[keycard_core::amr::AuthMethod::Pwd]),
        auth_time: NOW,
        dpop_jkt: None,
    };

    assert_eq!(store.session_by_refresh(&first, NOW + 1).await.unwrap(), Some(expected.clone()));
    assert_eq!(store.session_by_refresh(&token(), NOW + 1).await.unwrap(), None, "unknown token");
    assert_eq!(store.list_sessions(&uid, NOW + 1).await.unwrap(), vec![expected]);
    let owner = store.session_user(&sid, &uid, NOW + 1).await.unwrap().expect("the session's user");
    assert_eq!(owner.id, uid);
    let other = user(&*store, "eve@example.com").await;
    assert!(store.session_user(&sid, &other, NOW + 1).await.unwrap().is_none(), "not eve's session");
}

pub async fn sessions_are_listed_newest_first_and_only_to_their_owner(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada@example.com").await;
    let eve = user(&*store, "eve@example.com").await;
    let (oldest, _) = session_at(&*store, &ada, NOW).await;
    let (middle, _) = session_at(&*store, &ada, NOW + 10).await;
    let (newest, _) = session_at(&*store, &ada, NOW + 20).await;
    let (eves, _) = session_at(&*store, &eve, NOW + 15).await;

    let ids = |list: Vec<SessionRecord>| list.into_iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(ids(store.list_sessions(&ada, NOW + 30).await.unwrap()), vec![newest, middle, oldest]);
    assert_eq!(ids(store.list_sessions(&eve, NOW + 30).await.unwrap()), vec![eves]);
}

pub async fn rotation_pushes_idle_expiry_forward_but_never_past_the_absolute_limit(store: Arc<dyn Store>) {
    let uid = user(&*store, "ada@example.com").await;
    let (sid, first) = session(&*store, &uid).await;
    let second = token();

    let RotateOutcome::Rotated(after_one) = store.rotate_refresh(&rotation(first, second, NOW + 100)).await.unwrap()
    else {
        panic!("the first rotation wins");
    };
    let long_idle = Rotation { idle_ttl: 2 * ABSOLUTE, ..rotation(second, token(), NOW + 200) };
    let RotateOutcome::Rotated(after_two) = store.rotate_refresh(&long_idle).await.unwrap() else {
        panic!("the second rotation wins");
    };

    assert_eq!((after_one.id.as_str(), after_one.last_used_at), (sid.as_str(), NOW + 100));
    assert_eq!(after_one.idle_expires_at, NOW + 100 + IDLE, "idle expiry moves with each rotation");
    assert_eq!(after_one.created_at, NOW, "creation time stays");
    assert_eq!(after_two.idle_expires_at, NOW + ABSOLUTE, "capped at the absolute expiry");
    assert_eq!(after_two.absolute_expires_at, NOW + ABSOLUTE, "the absolute expiry never moves");
    let listed = store.list_sessions(&uid, NOW + 300).await.unwrap();
    assert_eq!(listed, vec![after_two], "the store keeps what rotation returned");
}

pub async fn an_idle_session_cannot_rotate_but_its_access_tokens_live_until_the_absolute_limit(store: Arc<dyn Store>) {
    let uid = user(&*store, "ada@example.com").await;
    let (sid, first) = session(&*store, &uid).await;
    let idle_over = NOW + IDLE;

    let outcome = store.rotate_refresh(&rotation(first, token(), idle_over)).await.unwrap();

    assert_eq!(outcome, RotateOutcome::Invalid);
    assert!(store.session_by_refresh(&first, idle_over).await.unwrap().is_none(), "idle: not live");
    assert!(store.list_sessions(&uid, idle_over).await.unwrap().is_empty(), "idle: not listed");
    assert!(store.session_user(&sid, &uid, idle_over).await.unwrap().is_some(), "access tokens still valid");
    assert!(
        store.session_by_refresh(&first, idle_over - 1).await.unwrap().is_some(),
        "the refused rotation changed nothing: the token is still unused"
    );
}

pub async fn a_session_past_its_absolute_limit_is_over_everywhere(store: Arc<dyn Store>) {
    let uid = user(&*store, "ada@example.com").await;
    let (sid, first) = session(&*store, &uid).await;
    let second = token();
    // Keep the session from idling out so only the absolute limit applies.
    let keep_alive = Rotation { idle_ttl: 2 * ABSOLUTE, ..rotation(first, second, NOW + 100) };
    assert!(matches!(store.rotate_refresh(&keep_alive).await.unwrap(), RotateOutcome::Rotated(_)));
    let over = NOW + ABSOLUTE;

    assert!(store.session_user(&sid, &uid, over - 1).await.unwrap().is_some(), "live until the limit");
    assert!(store.session_user(&sid, &uid, over).await.unwrap().is_none(), "access tokens end at the limit");
    assert!(store.session_by_refresh(&second, over).await.unwrap().is_none());
    assert!(store.list_sessions(&uid, over).await.unwrap().is_empty());
    assert_eq!(store.rotate_refresh(&rotation(second, token(), over)).await.unwrap(), RotateOutcome::Invalid);
}
