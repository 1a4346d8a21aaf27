//! Webhooks: an event of a webhook kind queues one delivery per subscribed endpoint in the
//! transaction that appends it (also inside a rotation); claims with a lease, delivery, retries
//! and final failure; the status operators see; concurrent claimers never share a delivery.

use std::collections::HashSet;
use std::sync::Arc;

use keycard_store::{
    AuditEvent, AuditFilter, AuditKind, DeliveryState, NEW_DEVICE_DETAIL, NewWebhookEndpoint, RevocationReason,
    RotateOutcome, Store, WebhookEvent, WebhookMessage,
};

use crate::harness::{NOW, rotation, session, token, user};

const LEASE: i64 = 60;

async fn endpoint(store: &dyn Store, id: &str, events: &[WebhookEvent]) {
    let endpoint = NewWebhookEndpoint {
        id: id.into(),
        url: format!("http://127.0.0.1:9/{id}"),
        events: events.to_vec(),
        sealed_secret: format!("sealed-{id}").into_bytes(),
        created_at: NOW,
    };
    store.add_webhook_endpoint(&endpoint).await.unwrap();
}

fn event(kind: AuditKind, at: i64) -> AuditEvent {
    AuditEvent { user_id: Some("u1".into()), ..AuditEvent::new(kind, at) }
}

pub async fn an_event_queues_one_delivery_per_subscribed_endpoint_with_one_id(store: Arc<dyn Store>) {
    endpoint(&*store, "wh_all", &[]).await;
    endpoint(&*store, "wh_pw", &[WebhookEvent::PasswordChanged, WebhookEvent::NewDeviceLogin]).await;
    endpoint(&*store, "wh_del", &[WebhookEvent::AccountDeleted]).await;

    store.append_audit(&event(AuditKind::PasswordChanged, NOW)).await.unwrap();
    store.append_audit(&event(AuditKind::Login, NOW + 1)).await.unwrap();
    store.append_audit(&event(AuditKind::Refresh, NOW + 1)).await.unwrap();
    let mut new_device = event(AuditKind::Login, NOW + 2);
    new_device.detail = Some(NEW_DEVICE_DETAIL.into());
    store.append_audit(&new_device).await.unwrap();
    store.append_audit(&event(AuditKind::PasskeyAdded, NOW + 3)).await.unwrap();

    let mut all = store.webhook_deliveries(None, 0).await.unwrap();
    all.sort_by(|a, b| (a.created_at, &a.endpoint_id).cmp(&(b.created_at, &b.endpoint_id)));
    let got: Vec<(&str, &str)> = all.iter().map(|d| (d.event_type.as_str(), d.endpoint_id.as_str())).collect();
    assert_eq!(
        got,
        [
            ("password_changed", "wh_all"),
            ("password_changed", "wh_pw"),
            ("new_device_login", "wh_all"),
            ("new_device_login", "wh_pw"),
            ("passkey_added", "wh_all")
        ],
        "a plain login, a refresh and unsubscribed endpoints queue nothing"
    );
    assert_eq!(all[0].id, all[1].id, "one webhook-id per event, whatever the endpoint");
    assert_ne!(all[0].id, all[2].id);
    assert!(all.iter().all(|d| d.state == DeliveryState::Pending && d.attempts == 0));
    assert_eq!(
        (all[1].url.as_str(), all[1].sealed_secret.as_slice()),
        ("http://127.0.0.1:9/wh_pw", &b"sealed-wh_pw"[..])
    );
    let payload: serde_json::Value = serde_json::from_str(&all[0].payload).unwrap();
    assert_eq!((payload["type"].as_str(), payload["data"]["user_id"].as_str()), (Some("password_changed"), Some("u1")));

    assert!(store.remove_webhook_endpoint("wh_all").await.unwrap());
    assert!(!store.remove_webhook_endpoint("wh_all").await.unwrap());
    assert_eq!(store.webhook_deliveries(None, 0).await.unwrap().len(), 2, "its deliveries went with it");
    let ids: Vec<String> = store.webhook_endpoints().await.unwrap().into_iter().map(|e| e.id).collect();
    assert_eq!(ids, ["wh_del", "wh_pw"], "by creation time, then id");
}

pub async fn a_reuse_queues_its_webhook_with_the_verdict_in_the_rotation(store: Arc<dyn Store>) {
    endpoint(&*store, "wh_reuse", &[WebhookEvent::RefreshTokenReused]).await;
    let uid = user(&*store, "ada@example.com").await;
    let (sid, first) = session(&*store, &uid).await;
    assert!(matches!(
        store.rotate_refresh(&rotation(first, token(), NOW + 60)).await.unwrap(),
        RotateOutcome::Rotated(_)
    ));
    assert!(store.webhook_deliveries(None, 0).await.unwrap().is_empty(), "a rotation sends nothing");
    assert!(matches!(
        store.rotate_refresh(&rotation(first, token(), NOW + 120)).await.unwrap(),
        RotateOutcome::Reused { .. }
    ));
    let deliveries = store.webhook_deliveries(Some("wh_reuse"), 0).await.unwrap();
    assert_eq!(deliveries.len(), 1);
    let payload: serde_json::Value = serde_json::from_str(&deliveries[0].payload).unwrap();
    assert_eq!(payload["type"], "refresh_token_reused");
    assert_eq!(
        (payload["data"]["user_id"].as_str(), payload["data"]["session_id"].as_str()),
        (Some(&*uid), Some(&*sid))
    );
    assert_eq!(payload["data"]["verdict"], "unknown");
}

pub async fn deliveries_are_claimed_with_a_lease_retried_and_given_up_on(store: Arc<dyn Store>) {
    endpoint(&*store, "wh_a", &[]).await;
    store.append_audit(&event(AuditKind::AccountDeleted, NOW)).await.unwrap();
    let test = WebhookMessage::new(WebhookEvent::Test, NOW + 1, serde_json::json!({}));
    assert!(store.enqueue_webhook("wh_a", &test, NOW + 1).await.unwrap());
    assert!(!store.enqueue_webhook("wh_nobody", &test, NOW + 1).await.unwrap());

    let claimed = store.claim_webhooks(NOW + 1, NOW + 1 + LEASE, 10).await.unwrap();
    let types: Vec<&str> = claimed.iter().map(|d| d.event_type.as_str()).collect();
    assert_eq!(types, ["account_deleted", "webhook.test"], "oldest first");
    assert!(claimed.iter().all(|d| d.attempts == 1 && d.next_attempt_at == NOW + 1 + LEASE));
    assert!(store.claim_webhooks(NOW + 2, NOW + 2 + LEASE, 10).await.unwrap().is_empty(), "leased");

    let (deleted, tested) = (&claimed[0], &claimed[1]);
    assert!(store.webhook_delivered(&tested.endpoint_id, &tested.id, NOW + 2).await.unwrap());
    assert!(!store.webhook_delivered(&tested.endpoint_id, &tested.id, NOW + 3).await.unwrap(), "once");
    assert!(store.webhook_failed(&deleted.endpoint_id, &deleted.id, "HTTP 500", Some(NOW + 30)).await.unwrap());

    let status = &store.webhook_endpoints().await.unwrap()[0].status;
    assert_eq!((status.pending, status.failing, status.delivered, status.failed), (1, 1, 1, 0));
    assert_eq!((status.last_error.as_deref(), status.next_attempt_at), (Some("HTTP 500"), Some(NOW + 30)));

    assert!(store.claim_webhooks(NOW + 29, NOW + 29 + LEASE, 10).await.unwrap().is_empty(), "not due yet");
    let again = store.claim_webhooks(NOW + 30, NOW + 30 + LEASE, 10).await.unwrap();
    assert_eq!((again.len(), again[0].id.as_str(), again[0].attempts), (1, deleted.id.as_str(), 2), "same id");
    assert!(store.webhook_failed(&deleted.endpoint_id, &deleted.id, "timed out", None).await.unwrap());
    assert!(store.claim_webhooks(NOW + 10_000, NOW + 10_000 + LEASE, 10).await.unwrap().is_empty(), "given up");
    let status = &store.webhook_endpoints().await.unwrap()[0].status;
    assert_eq!((status.pending, status.failing, status.delivered, status.failed), (0, 0, 1, 1));
    assert_eq!((status.last_error.as_deref(), status.next_attempt_at), (Some("timed out"), None));

    // A claim never finished (the sender died) is due again when its lease ends.
    store.append_audit(&event(AuditKind::SessionRevoked, NOW + 100)).await.unwrap();
    let lost = store.claim_webhooks(NOW + 100, NOW + 100 + LEASE, 10).await.unwrap();
    assert!(store.claim_webhooks(NOW + 100 + LEASE - 1, NOW + 200 + LEASE, 10).await.unwrap().is_empty());
    let reclaimed = store.claim_webhooks(NOW + 100 + LEASE, NOW + 200 + LEASE, 10).await.unwrap();
    assert_eq!((reclaimed[0].id.as_str(), reclaimed[0].attempts), (lost[0].id.as_str(), 2));
}

pub async fn concurrent_claimers_never_get_the_same_delivery(store: Arc<dyn Store>) {
    endpoint(&*store, "wh_1", &[]).await;
    endpoint(&*store, "wh_2", &[]).await;
    for n in 0..20 {
        store.append_audit(&event(AuditKind::PasswordChanged, NOW + n)).await.unwrap();
    }
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let store = store.clone();
        tasks.spawn(async move {
            let mut mine = Vec::new();
            loop {
                let claimed = store.claim_webhooks(NOW + 100, NOW + 100 + LEASE, 3).await.unwrap();
                if claimed.is_empty() {
                    break mine;
                }
                for d in claimed {
                    assert!(store.webhook_delivered(&d.endpoint_id, &d.id, NOW + 101).await.unwrap());
                    mine.push((d.endpoint_id, d.id));
                }
            }
        });
    }
    let all: Vec<(String, String)> = tasks.join_all().await.into_iter().flatten().collect();
    let unique: HashSet<&(String, String)> = all.iter().collect();
    assert_eq!((all.len(), unique.len()), (40, 40), "each delivery claimed exactly once");
}

/// Each user or session change writes the event it is given (count and user filled in) and
/// queues its webhook in its own transaction; one that changes nothing writes neither.
pub async fn changes_write_their_event_and_webhook_in_their_own_transaction(store: Arc<dyn Store>) {
    endpoint(&*store, "wh_all", &[]).await;
    let uid = user(&*store, "ada@example.com").await;
    let (sid, _) = session(&*store, &uid).await;
    let (other, _) = session(&*store, &uid).await;
    let change = |kind: AuditKind, detail: &str| AuditEvent {
        user_id: None,
        detail: Some(detail.into()),
        ..AuditEvent::new(kind, NOW + 10)
    };
    let kinds = |events: Vec<keycard_store::AuditRecord>| -> Vec<(AuditKind, Option<String>, Option<String>)> {
        events.into_iter().rev().map(|r| (r.event.kind, r.event.user_id, r.event.detail)).collect()
    };
    let since = |at: i64| AuditFilter { since: Some(at), limit: 100, ..AuditFilter::default() };

    let revoked = change(AuditKind::SessionRevoked, "revoked {revoked}");
    assert!(
        !store
            .revoke_session(&uid, "not-a-session", RevocationReason::RevokedByUser, NOW + 10, &revoked)
            .await
            .unwrap()
    );
    assert!(
        store
            .revoke_session_by_id("not-a-session", RevocationReason::RevokedByOperator, NOW + 10, &revoked)
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.audit_events(&since(NOW + 10)).await.unwrap().is_empty(), "nothing changed, nothing written");
    assert!(store.webhook_deliveries(None, 0).await.unwrap().is_empty());

    assert!(store.revoke_session(&uid, &other, RevocationReason::RevokedByUser, NOW + 10, &revoked).await.unwrap());
    let password = change(AuditKind::PasswordChanged, "revoked {revoked} other sessions");
    assert!(store.set_password(&uid, "$argon2id$new", Some(&sid), NOW + 10, &password).await.unwrap().is_empty());
    let deleted = change(AuditKind::AccountDeleted, "revoked {revoked} sessions");
    assert_eq!(store.delete_user(&uid, NOW + 10, &deleted).await.unwrap(), std::slice::from_ref(&sid));

    let uid = Some(uid);
    assert_eq!(
        kinds(store.audit_events(&since(NOW + 10)).await.unwrap()),
        [
            (AuditKind::SessionRevoked, uid.clone(), Some("revoked 1".into())),
            (AuditKind::PasswordChanged, uid.clone(), Some("revoked 0 other sessions".into())),
            (AuditKind::AccountDeleted, uid.clone(), Some("revoked 1 sessions".into())),
        ],
        "each change's event, its user and count filled in by the store"
    );
    let mut sent: Vec<String> =
        store.webhook_deliveries(None, 0).await.unwrap().into_iter().map(|d| d.event_type).collect();
    sent.sort();
    assert_eq!(sent, ["account_deleted", "password_changed", "session_revoked"]);
}
