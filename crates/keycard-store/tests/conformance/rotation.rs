//! Rotation: one winner, reuse detection, the reuse interval, and races between requests.

use std::sync::Arc;

use keycard_store::{AuditFilter, AuditKind, Binding, ReuseVerdict, RotateOutcome, Rotation, Store};

use crate::harness::{NOW, rotation, session, token, user};

pub async fn rotation_marks_the_token_used_and_makes_the_replacement_live(store: Arc<dyn Store>) {
    let uid = user(&*store, "ada@example.com").await;
    let (sid, first) = session(&*store, &uid).await;
    let second = token();

    let outcome = store.rotate_refresh(&rotation(first, second, NOW + 60)).await.unwrap();

    let RotateOutcome::Rotated(rotated) = outcome else { panic!("expected a rotation, got {outcome:?}") };
    assert_eq!((rotated.id.as_str(), rotated.user_id.as_str()), (sid.as_str(), uid.as_str()));
    assert!(store.session_by_refresh(&first, NOW + 61).await.unwrap().is_none(), "the old token is used");
    let live = store.session_by_refresh(&second, NOW + 61).await.unwrap().expect("the replacement is live");
    assert_eq!(live.id, sid);
    let next = store.rotate_refresh(&rotation(second, token(), NOW + 120)).await.unwrap();
    assert!(matches!(next, RotateOutcome::Rotated(_)), "the replacement rotates in turn: {next:?}");
    assert!(store.revocations_since(0, 100).await.unwrap().is_empty(), "nothing was revoked");
}

pub async fn an_unknown_token_is_invalid_and_changes_nothing(store: Arc<dyn Store>) {
    let uid = user(&*store, "ada@example.com").await;
    let (_, first) = session(&*store, &uid).await;

    let outcome = store.rotate_refresh(&rotation(token(), token(), NOW + 60)).await.unwrap();

    assert_eq!(outcome, RotateOutcome::Invalid);
    assert!(store.revocations_since(0, 100).await.unwrap().is_empty());
    assert!(store.session_by_refresh(&first, NOW + 60).await.unwrap().is_some(), "other sessions untouched");
}

pub async fn reusing_a_rotated_token_revokes_the_session_and_its_replacement(store: Arc<dyn Store>) {
    let uid = user(&*store, "ada@example.com").await;
    let (sid, first) = session(&*store, &uid).await;
    let second = token();
    assert!(matches!(
        store.rotate_refresh(&rotation(first, second, NOW + 60)).await.unwrap(),
        RotateOutcome::Rotated(_)
    ));

    let reuse = store.rotate_refresh(&rotation(first, token(), NOW + 120)).await.unwrap();

    assert_eq!(
        reuse,
        RotateOutcome::Reused { session_id: sid.clone(), user_id: uid.clone(), verdict: ReuseVerdict::Unknown }
    );
    assert_eq!(
        store.rotate_refresh(&rotation(second, token(), NOW + 130)).await.unwrap(),
        RotateOutcome::Invalid,
        "the replacement died with its family"
    );
    assert!(store.session_user(&sid, &uid, NOW + 130).await.unwrap().is_none(), "access tokens are revoked");
    assert!(store.list_sessions(&uid, NOW + 130).await.unwrap().is_empty());
    assert_eq!(
        store.rotate_refresh(&rotation(first, token(), NOW + 140)).await.unwrap(),
        RotateOutcome::Invalid,
        "a second reuse finds nothing left to revoke"
    );
    let feed = store.revocations_since(0, 100).await.unwrap();
    assert_eq!(feed.len(), 1, "published once: {feed:?}");
    assert_eq!((&feed[0].session_id, &feed[0].user_id), (&sid, &uid));
    assert_eq!((feed[0].reason.as_str(), feed[0].revoked_at), ("refresh_token_reused", NOW + 120));
}

pub async fn a_retry_inside_the_reuse_interval_rotates_again_and_retires_the_unreceived_token(store: Arc<dyn Store>) {
    let uid = user(&*store, "ada@example.com").await;
    let (sid, first) = session(&*store, &uid).await;
    let (lost, retried) = (token(), token());
    let with_interval =
        |presented, replacement, now| Rotation { reuse_interval: 30, ..rotation(presented, replacement, now) };
    assert!(matches!(
        store.rotate_refresh(&with_interval(first, lost, NOW + 100)).await.unwrap(),
        RotateOutcome::Rotated(_)
    ));

    // The client never received `lost` and retries with `first`, 10 s later.
    let retry = store.rotate_refresh(&with_interval(first, retried, NOW + 110)).await.unwrap();

    let RotateOutcome::Rotated(session) = retry else { panic!("the retry rotates again, got {retry:?}") };
    assert_eq!(session.id, sid, "same session");
    assert!(store.session_by_refresh(&lost, NOW + 111).await.unwrap().is_none(), "the unreceived token is retired");
    assert!(store.session_by_refresh(&retried, NOW + 111).await.unwrap().is_some(), "the retry's token is live");
    assert!(store.revocations_since(0, 100).await.unwrap().is_empty(), "no revocation inside the interval");
    // Past the interval, `first` is plain reuse again.
    let late = store.rotate_refresh(&with_interval(first, token(), NOW + 200)).await.unwrap();
    assert_eq!(late, RotateOutcome::Reused { session_id: sid, user_id: uid, verdict: ReuseVerdict::Unknown });
}

pub async fn a_retry_after_the_reuse_interval_is_reuse(store: Arc<dyn Store>) {
    let uid = user(&*store, "ada@example.com").await;
    let (sid, first) = session(&*store, &uid).await;
    let with_interval = |presented, now| Rotation { reuse_interval: 30, ..rotation(presented, token(), now) };
    assert!(matches!(store.rotate_refresh(&with_interval(first, NOW + 100)).await.unwrap(), RotateOutcome::Rotated(_)));

    let retry = store.rotate_refresh(&with_interval(first, NOW + 130)).await.unwrap();

    assert_eq!(
        retry,
        RotateOutcome::Reused { session_id: sid, user_id: uid, verdict: ReuseVerdict::Unknown },
        "the interval is half-open: [used, used + 30)"
    );
}

/// Presents `presented` from `n` tasks at once, each with its own replacement.
async fn race(
    store: &Arc<dyn Store>,
    presented: keycard_core::refresh::TokenHash,
    n: usize,
    reuse_interval: i64,
) -> Vec<(RotateOutcome, keycard_core::refresh::TokenHash)> {
    let start = Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (store, start) = (store.clone(), start.clone());
        tasks.spawn(async move {
            let replacement = token();
            let r = Rotation { reuse_interval, ..rotation(presented, replacement, NOW + 60) };
            start.wait().await;
            (store.rotate_refresh(&r).await.expect("no store error under contention"), replacement)
        });
    }
    tasks.join_all().await
}

pub async fn fifty_concurrent_rotations_of_one_token_have_exactly_one_winner(store: Arc<dyn Store>) {
    let uid = user(&*store, "ada@example.com").await;
    let (sid, first) = session(&*store, &uid).await;

    let outcomes = race(&store, first, 50, 0).await;

    let rotated = outcomes.iter().filter(|(o, _)| matches!(o, RotateOutcome::Rotated(_))).count();
    let reused = outcomes.iter().filter(|(o, _)| matches!(o, RotateOutcome::Reused { .. })).count();
    let invalid = outcomes.iter().filter(|(o, _)| *o == RotateOutcome::Invalid).count();
    assert_eq!(
        (rotated, reused, invalid),
        (1, 1, 48),
        "one winner; the first loser is reuse and revokes; the rest find nothing"
    );
    // Strictly single-use: the duplicate presentation revoked the family, the winner's token too.
    let feed = store.revocations_since(0, 100).await.unwrap();
    assert_eq!(feed.iter().map(|r| r.session_id.as_str()).collect::<Vec<_>>(), vec![sid.as_str()], "published once");
    assert!(store.session_by_refresh(&first, NOW + 61).await.unwrap().is_none());
    for (_, replacement) in &outcomes {
        assert!(store.session_by_refresh(replacement, NOW + 61).await.unwrap().is_none(), "no token survives");
    }
}

pub async fn concurrent_retries_inside_the_reuse_interval_leave_exactly_one_live_token(store: Arc<dyn Store>) {
    let uid = user(&*store, "ada@example.com").await;
    let (sid, first) = session(&*store, &uid).await;

    let outcomes = race(&store, first, 50, 30).await;

    assert!(
        outcomes.iter().all(|(o, _)| matches!(o, RotateOutcome::Rotated(s) if s.id == sid)),
        "inside the interval every retry rotates: {:?}",
        outcomes.iter().map(|(o, _)| o).collect::<Vec<_>>()
    );
    let mut live = 0;
    for (_, replacement) in &outcomes {
        live += usize::from(store.session_by_refresh(replacement, NOW + 61).await.unwrap().is_some());
    }
    assert_eq!(live, 1, "the family keeps exactly one live token");
    assert!(store.revocations_since(0, 100).await.unwrap().is_empty());
}

pub async fn a_refresh_from_another_device_revokes_a_bound_session_in_the_rotation(store: Arc<dyn Store>) {
    let uid = user(&*store, "ada@example.com").await;
    let (sid, first) = session(&*store, &uid).await; // started from user agent "conformance"
    let bound = |presented, replacement, ua: &str, now| Rotation {
        binding: Binding::UserAgent,
        user_agent: Some(ua.into()),
        ..rotation(presented, replacement, now)
    };
    let second = token();
    let same = store.rotate_refresh(&bound(first, second, "conformance", NOW + 10)).await.unwrap();
    assert!(matches!(same, RotateOutcome::Rotated(_)), "the same device rotates: {same:?}");

    // The live token presented from another device: one store call revokes the session.
    let stolen = store.rotate_refresh(&bound(second, token(), "thief/1.0", NOW + 20)).await.unwrap();
    assert_eq!(stolen, RotateOutcome::BindingMismatch { session_id: sid.clone(), user_id: uid.clone() });
    assert!(store.session_user(&sid, &uid, NOW + 21).await.unwrap().is_none(), "access tokens are revoked");
    assert!(store.list_sessions(&uid, NOW + 21).await.unwrap().is_empty());
    let feed = store.revocations_since(0, 100).await.unwrap();
    assert_eq!(feed.len(), 1, "{feed:?}");
    assert_eq!((feed[0].session_id.as_str(), feed[0].reason.as_str()), (sid.as_str(), "binding_mismatch"));
    let filter = AuditFilter { user_id: Some(uid.clone()), limit: 10, ..Default::default() };
    let events = store.audit_events(&filter).await.unwrap();
    let revoked = events.iter().find(|e| e.event.kind == "session_revoked").expect("audited");
    assert_eq!(revoked.event.detail.as_deref(), Some("refresh binding (user_agent) mismatch"));
    // The owner's device cannot go on either: the session is over.
    let after = store.rotate_refresh(&bound(second, token(), "conformance", NOW + 30)).await.unwrap();
    assert_eq!(after, RotateOutcome::Invalid);
}

/// Who presents the replay decides the verdict: the same IP network and user agent a moment after
/// the rotation is a race; another device, or the same one long after, suspected theft. Both
/// revoke the session; the event carries the verdict and both presenters.
pub async fn a_reuse_is_classified_race_or_theft_from_the_two_presenters(store: Arc<dyn Store>) {
    let uid = user(&*store, "ada@example.com").await;
    let from = |ip: &str, ua: &str, r: Rotation| Rotation { ip: Some(ip.into()), user_agent: Some(ua.into()), ..r };
    let cases = [
        ("198.51.100.7", "tab", 2, ReuseVerdict::Race),
        ("198.51.100.99", "tab", 10, ReuseVerdict::Race),
        ("203.0.113.5", "tab", 2, ReuseVerdict::TheftSuspected),
        ("198.51.100.7", "curl/8", 2, ReuseVerdict::TheftSuspected),
        ("198.51.100.7", "tab", 3600, ReuseVerdict::TheftSuspected),
        ("198.51.100.7", "tab", 60, ReuseVerdict::Unknown),
    ];
    for (ip, ua, after, expected) in cases {
        let (sid, first) = session(&*store, &uid).await;
        let spent = from("198.51.100.7", "tab", rotation(first, token(), NOW + 100));
        assert!(matches!(store.rotate_refresh(&spent).await.unwrap(), RotateOutcome::Rotated(_)));
        let replay = from(ip, ua, rotation(first, token(), NOW + 100 + after));
        let outcome = store.rotate_refresh(&replay).await.unwrap();
        let reused = RotateOutcome::Reused { session_id: sid.clone(), user_id: uid.clone(), verdict: expected };
        assert_eq!(outcome, reused, "{ip} {ua} +{after}s");
        let filter = AuditFilter { kind: Some(AuditKind::RefreshTokenReused), ..AuditFilter::default() };
        let event = store.audit_events(&filter).await.unwrap().remove(0).event;
        let detail: serde_json::Value = serde_json::from_str(event.detail.as_deref().unwrap()).unwrap();
        assert_eq!(detail["verdict"], expected.as_str());
        assert_eq!(detail["rotation"]["ip"], "198.51.100.7");
        assert_eq!(
            (detail["replay"]["ip"].as_str(), detail["seconds_after_rotation"].as_i64()),
            (Some(ip), Some(after))
        );
    }
}
