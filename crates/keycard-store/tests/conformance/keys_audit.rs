//! Signing keys and the audit log.

use std::sync::Arc;

use keycard_store::{AuditEvent, AuditFilter, AuditKind, RotateOutcome, Rotation, Store, StoredKey};

use crate::harness::{NOW, rotation, session, token, user};

fn key(kid: &str, created_at: i64) -> StoredKey {
    StoredKey { kid: kid.into(), alg: "EdDSA".into(), private_key: vec![1, 2, 3, 0, 255], created_at, retired_at: None }
}

pub async fn signing_keys_are_stored_once_per_kid(store: Arc<dyn Store>) {
    assert!(store.signing_keys().await.unwrap().is_empty(), "a fresh store has no keys");

    assert!(store.insert_signing_key(&key("k2", NOW + 10)).await.unwrap());
    assert!(store.insert_signing_key(&key("k1", NOW)).await.unwrap());
    let duplicate = StoredKey { private_key: vec![9; 8], ..key("k1", NOW + 99) };
    assert!(!store.insert_signing_key(&duplicate).await.unwrap(), "a duplicate kid is refused");
    let retired = StoredKey { retired_at: Some(NOW + 5), ..key("k0", NOW - 10) };
    assert!(store.insert_signing_key(&retired).await.unwrap());

    let keys = store.signing_keys().await.unwrap();
    let summary: Vec<(&str, i64, Option<i64>)> =
        keys.iter().map(|k| (k.kid.as_str(), k.created_at, k.retired_at)).collect();
    assert_eq!(
        summary,
        vec![("k0", NOW - 10, Some(NOW + 5)), ("k1", NOW, None), ("k2", NOW + 10, None)],
        "oldest first"
    );
    assert_eq!(keys[1].private_key, vec![1, 2, 3, 0, 255], "the first k1 was kept, byte for byte");
    assert_eq!(keys[1].alg, "EdDSA");
}

pub async fn the_wrapped_master_key_is_stored_once_and_replaced_by_compare_and_set(store: Arc<dyn Store>) {
    use keycard_store::WrappedMasterKey;
    assert_eq!(store.wrapped_master_key().await.unwrap(), None, "a fresh store has none");
    let first = WrappedMasterKey { key_name: "km".into(), ciphertext: "vault:v1:aaa".into(), updated_at: NOW };
    assert!(store.replace_wrapped_master_key(None, &first).await.unwrap());
    let rival = WrappedMasterKey { ciphertext: "vault:v1:bbb".into(), ..first.clone() };
    assert!(!store.replace_wrapped_master_key(None, &rival).await.unwrap(), "a second first-start loses");
    assert_eq!(store.wrapped_master_key().await.unwrap(), Some(first.clone()));

    let rewrapped = WrappedMasterKey { ciphertext: "vault:v2:ccc".into(), updated_at: NOW + 5, ..first.clone() };
    assert!(!store.replace_wrapped_master_key(Some("vault:v1:zzz"), &rewrapped).await.unwrap(), "stale expectation");
    assert!(store.replace_wrapped_master_key(Some("vault:v1:aaa"), &rewrapped).await.unwrap());
    assert_eq!(store.wrapped_master_key().await.unwrap(), Some(rewrapped));
}

pub async fn a_key_is_retired_once_and_kept(store: Arc<dyn Store>) {
    assert!(store.insert_signing_key(&key("k1", NOW)).await.unwrap());
    assert!(store.insert_signing_key(&key("k2", NOW + 10)).await.unwrap());

    assert!(store.retire_signing_key("k1", NOW + 20).await.unwrap());

    assert!(!store.retire_signing_key("k1", NOW + 30).await.unwrap(), "already retired: the first time stands");
    assert!(!store.retire_signing_key("nope", NOW + 30).await.unwrap(), "unknown kid");
    let keys = store.signing_keys().await.unwrap();
    let summary: Vec<(&str, Option<i64>)> = keys.iter().map(|k| (k.kid.as_str(), k.retired_at)).collect();
    assert_eq!(summary, vec![("k1", Some(NOW + 20)), ("k2", None)], "retired keys stay listed");
}

pub async fn audit_events_are_appended_and_filtered_newest_first(store: Arc<dyn Store>) {
    let event = |at: i64, kind: &str, user: Option<&str>| AuditEvent {
        at,
        kind: kind.parse().unwrap(),
        user_id: user.map(Into::into),
        session_id: Some("s".into()),
        ip: Some("192.0.2.1".into()),
        user_agent: Some("ua".into()),
        detail: Some(format!("{kind} at {at}")),
    };
    store.append_audit(&event(NOW, "login", Some("ada"))).await.unwrap();
    store.append_audit(&event(NOW + 1, "login_failed", None)).await.unwrap();
    store.append_audit(&event(NOW + 2, "refresh", Some("ada"))).await.unwrap();
    store.append_audit(&event(NOW + 3, "login", Some("eve"))).await.unwrap();
    store.append_audit(&event(NOW + 4, "logout", Some("ada"))).await.unwrap();

    let kinds = |filter: AuditFilter| {
        let store = store.clone();
        async move {
            store.audit_events(&filter).await.unwrap().into_iter().map(|r| r.event.kind.to_string()).collect::<Vec<_>>()
        }
    };
    assert_eq!(
        kinds(AuditFilter::default()).await,
        ["logout", "login", "refresh", "login_failed", "login"],
        "newest first; limit 0 means the default"
    );
    assert_eq!(
        kinds(AuditFilter { user_id: Some("ada".into()), ..Default::default() }).await,
        ["logout", "refresh", "login"]
    );
    assert_eq!(kinds(AuditFilter { kind: Some(AuditKind::Login), ..Default::default() }).await, ["login", "login"]);
    assert_eq!(kinds(AuditFilter { since: Some(NOW + 2), ..Default::default() }).await, ["logout", "login", "refresh"]);
    assert_eq!(kinds(AuditFilter { limit: 2, ..Default::default() }).await, ["logout", "login"]);
    let both = AuditFilter { user_id: Some("ada".into()), kind: Some(AuditKind::Login), since: Some(NOW), limit: 10 };
    assert_eq!(kinds(both).await, ["login"]);

    let all = store.audit_events(&AuditFilter::default()).await.unwrap();
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "ids decrease");
    let failed = &all[3].event;
    assert_eq!(
        (failed.at, failed.user_id.as_deref(), failed.detail.as_deref()),
        (NOW + 1, None, Some("login_failed at 1700000001"))
    );
    assert_eq!(
        (failed.session_id.as_deref(), failed.ip.as_deref(), failed.user_agent.as_deref()),
        (Some("s"), Some("192.0.2.1"), Some("ua"))
    );
}

pub async fn pruning_the_audit_log_deletes_only_events_before_the_cutoff(store: Arc<dyn Store>) {
    for at in [NOW - 20, NOW - 10, NOW, NOW + 10] {
        let event = AuditEvent::new(AuditKind::Login, at);
        store.append_audit(&event).await.unwrap();
    }

    let deleted = store.prune_audit(NOW).await.unwrap();

    assert_eq!(deleted, 2, "events strictly before the cutoff go");
    let left: Vec<i64> =
        store.audit_events(&AuditFilter::default()).await.unwrap().into_iter().map(|r| r.event.at).collect();
    assert_eq!(left, vec![NOW + 10, NOW]);
    assert_eq!(store.prune_audit(NOW).await.unwrap(), 0, "nothing left to prune");
}

pub async fn a_rotation_records_its_audit_event_with_its_outcome(store: Arc<dyn Store>) {
    let uid = user(&*store, "ada@example.com").await;
    let (sid, first) = session(&*store, &uid).await;
    let second = token();
    let client = |r: Rotation| Rotation { ip: Some("192.0.2.7".into()), user_agent: Some("ua/1".into()), ..r };

    let rotated = store.rotate_refresh(&client(rotation(first, second, NOW + 1))).await.unwrap();
    assert!(matches!(rotated, RotateOutcome::Rotated(_)));
    let unknown = store.rotate_refresh(&client(rotation(token(), token(), NOW + 2))).await.unwrap();
    assert_eq!(unknown, RotateOutcome::Invalid);
    let reused = store.rotate_refresh(&client(rotation(first, token(), NOW + 3))).await.unwrap();
    assert!(matches!(reused, RotateOutcome::Reused { .. }));

    // From NOW + 1: the login's event (the session's creation, at NOW) is not the rotations'.
    let events = store.audit_events(&AuditFilter { since: Some(NOW + 1), ..AuditFilter::default() }).await.unwrap();
    let seen: Vec<_> = events
        .iter()
        .map(|r| {
            let e = &r.event;
            (
                e.at,
                e.kind.as_str(),
                e.user_id.as_deref(),
                e.session_id.as_deref(),
                e.ip.as_deref(),
                e.user_agent.as_deref(),
            )
        })
        .collect();
    let (u, s) = (Some(uid.as_str()), Some(sid.as_str()));
    assert_eq!(
        seen,
        vec![
            (NOW + 3, "refresh_token_reused", u, s, Some("192.0.2.7"), Some("ua/1")),
            (NOW + 1, "refresh", u, s, Some("192.0.2.7"), Some("ua/1")),
        ],
        "one row per rotation that changed something, none for an invalid token"
    );
}
