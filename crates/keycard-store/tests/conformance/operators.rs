//! Operators' commands (`keycard users …`, `keycard sessions …`): disabling and enabling a user,
//! revoking any session by id, listing users and every user's sessions.

use std::sync::Arc;

use keycard_store::RevocationReason;
use keycard_store::{NewSession, RotateOutcome, SessionRecord, Store, StoreError, UserFilter};

use crate::harness::{ABSOLUTE, NOW, audited, rotation, session, session_at, token, user};

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

fn ids(list: Vec<SessionRecord>) -> Vec<String> {
    list.into_iter().map(|s| s.id).collect()
}

pub async fn disabling_a_user_revokes_their_live_sessions_onto_the_feed(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada@example.com").await;
    let eve = user(&*store, "eve@example.com").await;
    let (expired, _) = session_at(&*store, &ada, NOW - ABSOLUTE).await;
    let (logged_out, _) = session(&*store, &ada).await;
    assert!(store.revoke_session(&ada, &logged_out, RevocationReason::Logout, NOW + 1, &audited()).await.unwrap());
    let (one, _) = session(&*store, &ada).await;
    let (two, _) = session(&*store, &ada).await;
    let (eves, _) = session(&*store, &eve).await;

    let revoked = store.set_user_disabled(&ada, true, NOW + 10, &audited()).await.unwrap().expect("ada exists");

    assert_eq!(sorted(revoked), sorted(vec![one.clone(), two.clone()]), "only live sessions, not {expired}");
    assert_eq!(store.user_by_id(&ada).await.unwrap().unwrap().disabled_at, Some(NOW + 10));
    assert_eq!(store.user_by_email("ada@example.com").await.unwrap().unwrap().disabled_at, Some(NOW + 10));
    assert!(store.list_sessions(&ada, NOW + 11).await.unwrap().is_empty());
    let feed = store.revocations_since(0, 100).await.unwrap();
    let disabled: Vec<String> =
        feed.iter().filter(|r| r.reason == "user_disabled").map(|r| r.session_id.clone()).collect();
    assert_eq!(sorted(disabled), sorted(vec![one, two]), "{feed:?}");
    assert!(feed.iter().all(|r| r.user_id == ada && r.revoked_at <= NOW + 10), "{feed:?}");
    assert_eq!(feed.len(), 3, "the logout, then the two revoked by disabling: {feed:?}");
    assert!(store.session_user(&eves, &eve, NOW + 11).await.unwrap().is_some(), "eve is untouched");
    assert_eq!(store.user_by_id(&eve).await.unwrap().unwrap().disabled_at, None);

    let again = store.set_user_disabled(&ada, true, NOW + 20, &audited()).await.unwrap();
    assert_eq!(again, Some(Vec::new()), "nothing left to revoke");
    assert_eq!(store.user_by_id(&ada).await.unwrap().unwrap().disabled_at, Some(NOW + 10), "the first time stays");
    assert_eq!(store.revocations_since(0, 100).await.unwrap().len(), 3, "each session published once");
}

pub async fn a_disabled_users_access_tokens_are_refused_and_no_session_of_theirs_rotates(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada@example.com").await;
    let (before, before_token) = session(&*store, &ada).await;
    assert!(store.session_user(&before, &ada, NOW + 1).await.unwrap().is_some());

    store.set_user_disabled(&ada, true, NOW + 10, &audited()).await.unwrap().expect("ada exists");

    assert!(store.session_user(&before, &ada, NOW + 11).await.unwrap().is_none(), "access tokens refused at once");
    let refused = store.rotate_refresh(&rotation(before_token, token(), NOW + 11)).await.unwrap();
    assert_eq!(refused, RotateOutcome::Invalid, "the revoked session does not rotate");
    // A session cannot even be created for a disabled user (a login racing the operator), so no
    // live session of a disabled user exists and rotation need not look at the user.
    let new = NewSession {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: ada.clone(),
        created_at: NOW + 12,
        idle_expires_at: NOW + 100,
        absolute_expires_at: NOW + 200,
        user_agent: None,
        ip: None,
        amr: keycard_core::amr::Amr::of(&[keycard_core::amr::AuthMethod::Pwd]),
        auth_time: NOW + 12,
        dpop_jkt: None,
    };
    let refused = store.create_session(&new, &token(), &audited()).await;
    assert!(matches!(refused, Err(StoreError::UserDisabled)), "{refused:?}");
    assert!(store.list_all_sessions(Some(&ada), NOW + 13, 10).await.unwrap().is_empty());
    let revoked = store.set_user_disabled(&ada, true, NOW + 15, &audited()).await.unwrap();
    assert_eq!(revoked, Some(vec![]), "disabling again finds nothing live");
}

pub async fn enabling_a_user_lets_new_sessions_work_and_leaves_old_ones_revoked(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada@example.com").await;
    let (old, old_token) = session(&*store, &ada).await;
    store.set_user_disabled(&ada, true, NOW + 10, &audited()).await.unwrap().expect("ada exists");

    let enabled = store.set_user_disabled(&ada, false, NOW + 20, &audited()).await.unwrap();

    assert_eq!(enabled, Some(vec![]), "no session was created while disabled");
    assert_eq!(store.user_by_id(&ada).await.unwrap().unwrap().disabled_at, None);
    assert!(store.session_user(&old, &ada, NOW + 21).await.unwrap().is_none(), "revoked sessions stay revoked");
    assert_eq!(store.rotate_refresh(&rotation(old_token, token(), NOW + 21)).await.unwrap(), RotateOutcome::Invalid);
    let feed = store.revocations_since(0, 100).await.unwrap();
    assert_eq!(feed.last().map(|r| (&r.session_id, r.reason.as_str())), Some((&old, "user_disabled")));
    let (new, new_token) = session_at(&*store, &ada, NOW + 22).await;
    assert_eq!(store.session_user(&new, &ada, NOW + 23).await.unwrap().expect("a new session works").id, ada);
    let rotated = store.rotate_refresh(&rotation(new_token, token(), NOW + 23)).await.unwrap();
    assert!(matches!(rotated, RotateOutcome::Rotated(ref s) if s.id == new), "{rotated:?}");
    let enabled_again = store.set_user_disabled(&ada, false, NOW + 30, &audited()).await.unwrap();
    assert_eq!(enabled_again, Some(Vec::new()), "enabling an enabled user changes nothing");
    assert!(store.session_user(&new, &ada, NOW + 31).await.unwrap().is_some(), "the live session stays");
}

pub async fn disabling_or_enabling_an_unknown_user_is_none(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada@example.com").await;
    let (sid, _) = session(&*store, &ada).await;
    let nobody = "00000000-0000-0000-0000-000000000000";

    assert_eq!(store.set_user_disabled(nobody, true, NOW + 1, &audited()).await.unwrap(), None);
    assert_eq!(store.set_user_disabled(nobody, false, NOW + 1, &audited()).await.unwrap(), None);

    assert!(store.revocations_since(0, 100).await.unwrap().is_empty());
    assert!(store.session_user(&sid, &ada, NOW + 2).await.unwrap().is_some(), "nobody else touched");
}

pub async fn an_operator_revokes_any_live_session_by_id(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada@example.com").await;
    let eve = user(&*store, "eve@example.com").await;
    let (gone, gone_token) = session(&*store, &ada).await;
    let (kept, _) = session(&*store, &ada).await;
    let (eves, _) = session(&*store, &eve).await;
    let (expired, _) = session_at(&*store, &eve, NOW - ABSOLUTE).await;

    let owner =
        store.revoke_session_by_id(&gone, RevocationReason::RevokedByOperator, NOW + 10, &audited()).await.unwrap();

    assert_eq!(owner, Some(ada.clone()));
    assert!(store.session_user(&gone, &ada, NOW + 11).await.unwrap().is_none(), "access tokens refused");
    assert_eq!(store.rotate_refresh(&rotation(gone_token, token(), NOW + 11)).await.unwrap(), RotateOutcome::Invalid);
    assert_eq!(ids(store.list_sessions(&ada, NOW + 11).await.unwrap()), vec![kept]);
    assert!(store.session_user(&eves, &eve, NOW + 11).await.unwrap().is_some(), "eve is untouched");
    assert_eq!(
        store.revoke_session_by_id(&gone, RevocationReason::RevokedByOperator, NOW + 12, &audited()).await.unwrap(),
        None,
        "not live"
    );
    assert_eq!(
        store.revoke_session_by_id(&expired, RevocationReason::RevokedByOperator, NOW + 12, &audited()).await.unwrap(),
        None,
        "expired"
    );
    assert_eq!(
        store
            .revoke_session_by_id("no-such-session", RevocationReason::RevokedByOperator, NOW + 12, &audited())
            .await
            .unwrap(),
        None
    );
    let feed = store.revocations_since(0, 100).await.unwrap();
    assert_eq!(feed.len(), 1, "{feed:?}");
    assert_eq!((&feed[0].session_id, &feed[0].user_id, feed[0].reason.as_str()), (&gone, &ada, "revoked_by_operator"));
}

pub async fn users_are_listed_by_email_with_filter_pages_and_live_session_counts(store: Arc<dyn Store>) {
    let eve = user(&*store, "eve@example.org").await;
    let ada = user(&*store, "ada@example.com").await;
    let bob = user(&*store, "bob@example.com").await;
    let cy = user(&*store, "cy@example.org").await;
    session(&*store, &ada).await;
    session(&*store, &ada).await;
    let (revoked, _) = session(&*store, &ada).await;
    assert!(store.revoke_session(&ada, &revoked, RevocationReason::Logout, NOW + 1, &audited()).await.unwrap());
    session_at(&*store, &ada, NOW - ABSOLUTE).await; // expired: not counted
    session(&*store, &eve).await;
    session(&*store, &cy).await;
    store.set_user_disabled(&cy, true, NOW + 2, &audited()).await.unwrap().expect("cy exists");

    let all = store.list_users(&UserFilter::default(), NOW + 10).await.unwrap();

    let rows: Vec<(&str, &str, Option<i64>, i64)> =
        all.iter().map(|u| (u.id.as_str(), u.email.as_str(), u.disabled_at, u.live_sessions)).collect();
    assert_eq!(
        rows,
        vec![
            (ada.as_str(), "ada@example.com", None, 2),
            (bob.as_str(), "bob@example.com", None, 0),
            (cy.as_str(), "cy@example.org", Some(NOW + 2), 0),
            (eve.as_str(), "eve@example.org", None, 1),
        ]
    );
    assert!(all.iter().all(|u| u.created_at == NOW));

    let emails = |list: Vec<keycard_store::UserSummary>| list.into_iter().map(|u| u.email).collect::<Vec<_>>();
    let org = UserFilter { email_contains: Some("example.org".into()), ..UserFilter::default() };
    assert_eq!(emails(store.list_users(&org, NOW + 10).await.unwrap()), vec!["cy@example.org", "eve@example.org"]);
    // Substring, not a pattern: `_` and `%` match only themselves.
    let pattern = UserFilter { email_contains: Some("%".into()), ..UserFilter::default() };
    assert!(store.list_users(&pattern, NOW + 10).await.unwrap().is_empty());
    let first = UserFilter { limit: 2, ..UserFilter::default() };
    assert_eq!(emails(store.list_users(&first, NOW + 10).await.unwrap()), vec!["ada@example.com", "bob@example.com"]);
    let next = UserFilter { limit: 2, after_email: Some("bob@example.com".into()), ..UserFilter::default() };
    assert_eq!(emails(store.list_users(&next, NOW + 10).await.unwrap()), vec!["cy@example.org", "eve@example.org"]);
    let org_after = UserFilter { after_email: Some("cy@example.org".into()), ..org };
    assert_eq!(emails(store.list_users(&org_after, NOW + 10).await.unwrap()), vec!["eve@example.org"]);
}

pub async fn every_users_live_sessions_are_listed_newest_first(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada@example.com").await;
    let eve = user(&*store, "eve@example.com").await;
    let (a1, _) = session_at(&*store, &ada, NOW).await;
    let (e1, _) = session_at(&*store, &eve, NOW + 10).await;
    let (a2, _) = session_at(&*store, &ada, NOW + 20).await;
    let (revoked, _) = session_at(&*store, &eve, NOW + 30).await;
    assert!(store.revoke_session(&eve, &revoked, RevocationReason::Logout, NOW + 31, &audited()).await.unwrap());
    session_at(&*store, &ada, NOW - ABSOLUTE).await; // expired

    assert_eq!(
        ids(store.list_all_sessions(None, NOW + 40, 0).await.unwrap()),
        vec![a2.clone(), e1.clone(), a1.clone()]
    );
    assert_eq!(ids(store.list_all_sessions(None, NOW + 40, 2).await.unwrap()), vec![a2.clone(), e1.clone()]);
    assert_eq!(ids(store.list_all_sessions(Some(&ada), NOW + 40, 10).await.unwrap()), vec![a2.clone(), a1]);
    assert_eq!(ids(store.list_all_sessions(Some(&ada), NOW + 40, 1).await.unwrap()), vec![a2.clone()]);
    assert_eq!(ids(store.list_all_sessions(Some(&eve), NOW + 40, 10).await.unwrap()), vec![e1]);
    assert!(store.list_all_sessions(Some("nobody"), NOW + 40, 10).await.unwrap().is_empty());
    let listed = store.list_all_sessions(Some(&ada), NOW + 40, 1).await.unwrap();
    assert_eq!(listed, store.list_sessions(&ada, NOW + 40).await.unwrap()[..1], "the same records as the user sees");
    // Ties on creation time come out by id, descending, on both backends.
    let (t1, _) = session_at(&*store, &eve, NOW + 50).await;
    let (t2, _) = session_at(&*store, &eve, NOW + 50).await;
    let mut tied = sorted(vec![t1, t2]);
    tied.reverse();
    assert_eq!(ids(store.list_all_sessions(None, NOW + 60, 2).await.unwrap()), tied);
}

pub async fn disabling_a_user_while_their_sessions_rotate_and_log_in_leaves_none_usable(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada@example.com").await;
    let mut sessions = Vec::new();
    for _ in 0..8 {
        sessions.push(session(&*store, &ada).await);
    }

    // Refreshes of every session and new logins race the operator's disabling (and a second
    // operator disabling at the same time).
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..2 {
        let (store, ada) = (store.clone(), ada.clone());
        tasks.spawn(async move { store.set_user_disabled(&ada, true, NOW + 10, &audited()).await.map(|_| ()) });
    }
    for (_, first) in &sessions {
        let (store, first) = (store.clone(), *first);
        tasks.spawn(async move { store.rotate_refresh(&rotation(first, token(), NOW + 10)).await.map(|_| ()) });
    }
    let mut late = Vec::new();
    for _ in 0..4 {
        let (sid, first) = (uuid::Uuid::new_v4().to_string(), token());
        late.push(sid.clone());
        let new = keycard_store::NewSession {
            id: sid,
            user_id: ada.clone(),
            created_at: NOW + 10,
            idle_expires_at: NOW + 10 + crate::harness::IDLE,
            absolute_expires_at: NOW + ABSOLUTE,
            user_agent: None,
            ip: None,
            amr: keycard_core::amr::Amr::of(&[keycard_core::amr::AuthMethod::Pwd]),
            auth_time: NOW + 10,
            dpop_jkt: None,
        };
        let store = store.clone();
        tasks.spawn(async move {
            match store.create_session(&new, &first, &audited()).await {
                // After the disabling committed, a login gets no session at all.
                Err(keycard_store::StoreError::UserDisabled) => Ok(()),
                other => other,
            }
        });
    }
    for result in tasks.join_all().await {
        result.expect("no store error (and no deadlock) under contention");
    }

    let feed = store.revocations_since(0, 100).await.unwrap();
    let published = sorted(feed.iter().map(|r| r.session_id.clone()).collect());
    let mut unique = published.clone();
    unique.dedup();
    assert_eq!(published, unique, "each session published once: {feed:?}");
    for (sid, _) in &sessions {
        assert!(published.contains(sid), "{sid} was live before disabling: it is on the feed");
        assert!(store.session_user(sid, &ada, NOW + 11).await.unwrap().is_none());
    }
    for sid in &late {
        assert!(store.session_user(sid, &ada, NOW + 11).await.unwrap().is_none(), "a racing login gets no access");
    }
    // A racing login either committed first (then the disabling revoked it) or was refused.
    assert_eq!(store.list_sessions(&ada, NOW + 11).await.unwrap(), vec![], "no live session of a disabled user");
}
