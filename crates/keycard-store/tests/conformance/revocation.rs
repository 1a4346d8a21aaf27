//! Revocation: one session, all, all but one, password change, account deletion, and the feed.

use std::collections::HashMap;
use std::sync::Arc;

use keycard_store::RevocationReason;
use keycard_store::{NewUser, RotateOutcome, Store};

use crate::harness::{ABSOLUTE, NOW, audited, rotation, session, session_at, token, user};

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

pub async fn revoking_one_session_leaves_the_others_alone(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada@example.com").await;
    let eve = user(&*store, "eve@example.com").await;
    let (gone, gone_token) = session(&*store, &ada).await;
    let (kept, _) = session(&*store, &ada).await;
    let (eves, _) = session(&*store, &eve).await;

    assert!(store.revoke_session(&ada, &gone, RevocationReason::Logout, NOW + 10, &audited()).await.unwrap());

    assert!(
        !store.revoke_session(&ada, &gone, RevocationReason::Logout, NOW + 11, &audited()).await.unwrap(),
        "already revoked"
    );
    assert!(
        !store.revoke_session(&ada, &eves, RevocationReason::Logout, NOW + 11, &audited()).await.unwrap(),
        "not ada's session"
    );
    let listed: Vec<String> = store.list_sessions(&ada, NOW + 12).await.unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(listed, vec![kept]);
    assert!(store.session_user(&gone, &ada, NOW + 12).await.unwrap().is_none());
    assert!(store.session_user(&eves, &eve, NOW + 12).await.unwrap().is_some(), "eve is untouched");
    assert!(store.session_by_refresh(&gone_token, NOW + 12).await.unwrap().is_none());
    assert_eq!(store.rotate_refresh(&rotation(gone_token, token(), NOW + 12)).await.unwrap(), RotateOutcome::Invalid);
    let feed = store.revocations_since(0, 100).await.unwrap();
    assert_eq!(feed.len(), 1, "{feed:?}");
    assert_eq!((&feed[0].session_id, &feed[0].user_id, feed[0].reason.as_str()), (&gone, &ada, "logout"));
}

pub async fn revoking_all_sessions_but_one_keeps_only_that_one(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada@example.com").await;
    let eve = user(&*store, "eve@example.com").await;
    let (one, _) = session(&*store, &ada).await;
    let (this, _) = session(&*store, &ada).await;
    let (three, _) = session(&*store, &ada).await;
    let (eves, _) = session(&*store, &eve).await;

    let revoked = store
        .revoke_user_sessions(&ada, Some(&this), RevocationReason::LogoutOthers, NOW + 10, &audited())
        .await
        .unwrap();

    assert_eq!(sorted(revoked), sorted(vec![one, three]));
    let listed: Vec<String> = store.list_sessions(&ada, NOW + 11).await.unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(listed, vec![this]);
    assert!(store.session_user(&eves, &eve, NOW + 11).await.unwrap().is_some(), "eve is untouched");
    let feed = store.revocations_since(0, 100).await.unwrap();
    assert!(feed.len() == 2 && feed.iter().all(|r| r.reason == "logout_others" && r.user_id == ada), "{feed:?}");
}

pub async fn revoking_all_sessions_ends_every_one(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada@example.com").await;
    let (expired, _) = session_at(&*store, &ada, NOW - ABSOLUTE).await;
    let mut live = Vec::new();
    for _ in 0..3 {
        live.push(session(&*store, &ada).await.0);
    }

    let revoked =
        store.revoke_user_sessions(&ada, None, RevocationReason::LogoutGlobal, NOW + 10, &audited()).await.unwrap();

    assert_eq!(sorted(revoked), sorted(live.clone()), "only live sessions are revoked, not {expired}");
    assert!(store.list_sessions(&ada, NOW + 11).await.unwrap().is_empty());
    for sid in &live {
        assert!(store.session_user(sid, &ada, NOW + 11).await.unwrap().is_none(), "{sid} revoked");
    }
    assert!(
        store
            .revoke_user_sessions(&ada, None, RevocationReason::LogoutGlobal, NOW + 12, &audited())
            .await
            .unwrap()
            .is_empty(),
        "idempotent"
    );
    assert_eq!(store.revocations_since(0, 100).await.unwrap().len(), 3, "each published once");
}

pub async fn changing_the_password_revokes_every_other_session(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada@example.com").await;
    let (this, this_token) = session(&*store, &ada).await;
    let (other, _) = session(&*store, &ada).await;
    let (third, _) = session(&*store, &ada).await;

    let revoked = store.set_password(&ada, "$argon2id$new", Some(&this), NOW + 10, &audited()).await.unwrap();

    assert_eq!(sorted(revoked), sorted(vec![other, third]));
    assert_eq!(store.user_by_id(&ada).await.unwrap().unwrap().password_hash, "$argon2id$new");
    assert!(store.session_by_refresh(&this_token, NOW + 11).await.unwrap().is_some(), "the current session stays");
    let feed = store.revocations_since(0, 100).await.unwrap();
    assert!(feed.len() == 2 && feed.iter().all(|r| r.reason == "password_change"), "{feed:?}");
    let all = store.set_password(&ada, "$argon2id$newer", None, NOW + 20, &audited()).await.unwrap();
    assert_eq!(all, vec![this], "without a session to keep, every session goes");
}

pub async fn deleting_a_user_cascades_and_keeps_its_revocations_in_the_feed(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada@example.com").await;
    let eve = user(&*store, "eve@example.com").await;
    let (logged_out, _) = session(&*store, &ada).await;
    let (live, live_token) = session(&*store, &ada).await;
    let (eves, _) = session(&*store, &eve).await;
    assert!(store.revoke_session(&ada, &logged_out, RevocationReason::Logout, NOW + 5, &audited()).await.unwrap());

    let revoked = store.delete_user(&ada, NOW + 10, &audited()).await.unwrap();

    assert_eq!(revoked, vec![live.clone()], "the live session is revoked; the logged-out one already was");
    assert!(store.user_by_id(&ada).await.unwrap().is_none());
    assert!(store.user_by_email("ada@example.com").await.unwrap().is_none());
    assert!(store.session_user(&live, &ada, NOW + 11).await.unwrap().is_none());
    assert!(store.session_by_refresh(&live_token, NOW + 11).await.unwrap().is_none());
    assert_eq!(store.rotate_refresh(&rotation(live_token, token(), NOW + 11)).await.unwrap(), RotateOutcome::Invalid);
    let feed: Vec<(String, String)> = store
        .revocations_since(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.session_id, r.reason.to_string()))
        .collect();
    assert_eq!(feed, vec![(logged_out, "logout".into()), (live, "account_deleted".into())]);
    assert!(store.session_user(&eves, &eve, NOW + 11).await.unwrap().is_some(), "eve is untouched");
    let again = NewUser {
        id: uuid::Uuid::new_v4().to_string(),
        email: "ada@example.com".into(),
        password_hash: "x".into(),
        created_at: NOW + 20,
        verification: None,
    };
    store.create_user(&again).await.expect("the email is free again");
}

pub async fn the_revocation_feed_pages_in_order(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada@example.com").await;
    let mut order = Vec::new();
    for i in 0..5 {
        let (sid, _) = session(&*store, &ada).await;
        assert!(store.revoke_session(&ada, &sid, RevocationReason::Logout, NOW + i, &audited()).await.unwrap());
        order.push(sid);
    }

    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = store.revocations_since(after, 2).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2, "the limit holds");
        for r in page {
            assert!(r.seq > after, "sequence numbers increase: {} after {after}", r.seq);
            after = r.seq;
            seen.push(r.session_id);
        }
    }

    assert_eq!(seen, order, "every revocation once, oldest first");
    assert!(store.revocations_since(after, 100).await.unwrap().is_empty(), "nothing past the end");
}

pub async fn concurrent_logouts_publish_each_session_once(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada@example.com").await;
    let mut sessions = Vec::new();
    for _ in 0..5 {
        sessions.push(session(&*store, &ada).await);
    }

    // Global logouts from several instances at once, racing a rotation of every session.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (store, ada) = (store.clone(), ada.clone());
        tasks.spawn(async move {
            store
                .revoke_user_sessions(&ada, None, RevocationReason::LogoutGlobal, NOW + 10, &audited())
                .await
                .map(|_| ())
        });
    }
    for (_, first) in &sessions {
        let (store, first) = (store.clone(), *first);
        tasks.spawn(async move { store.rotate_refresh(&rotation(first, token(), NOW + 10)).await.map(|_| ()) });
    }
    for result in tasks.join_all().await {
        result.expect("no store error (and no deadlock) under contention");
    }

    let mut published: HashMap<String, usize> = HashMap::new();
    for r in store.revocations_since(0, 100).await.unwrap() {
        *published.entry(r.session_id).or_default() += 1;
    }
    assert_eq!(published.len(), 5, "every session revoked: {published:?}");
    assert!(published.values().all(|&n| n == 1), "each published exactly once: {published:?}");
    assert!(store.list_sessions(&ada, NOW + 11).await.unwrap().is_empty());
}

pub async fn a_feed_reader_polling_during_concurrent_revocations_misses_none(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada@example.com").await;
    let mut sessions = Vec::new();
    for _ in 0..60 {
        sessions.push(session(&*store, &ada).await.0);
    }
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));

    // A resource server polls the feed while logouts on several instances commit in any order.
    let reader = tokio::spawn({
        let (store, done) = (store.clone(), done.clone());
        async move {
            let (mut after, mut seen) = (0, Vec::new());
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                for r in store.revocations_since(after, 1000).await.unwrap() {
                    after = r.seq;
                    seen.push(r.session_id);
                }
                if finished {
                    return seen;
                }
                tokio::task::yield_now().await;
            }
        }
    });
    let mut writers = tokio::task::JoinSet::new();
    for chunk in sessions.chunks(6) {
        let (store, ada, chunk) = (store.clone(), ada.clone(), chunk.to_vec());
        writers.spawn(async move {
            for sid in chunk {
                assert!(
                    store.revoke_session(&ada, &sid, RevocationReason::Logout, NOW + 10, &audited()).await.unwrap()
                );
            }
        });
    }
    writers.join_all().await;
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = reader.await.unwrap();

    let published: Vec<String> =
        store.revocations_since(0, 1000).await.unwrap().into_iter().map(|r| r.session_id).collect();
    assert_eq!(published.len(), 60);
    assert_eq!(seen, published, "the poller saw every revocation, in feed order, none skipped");
}
