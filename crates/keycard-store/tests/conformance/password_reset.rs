//! Password resets: a request stores one token per user with its message and event (nothing
//! for an unknown address), a new request supersedes the old token, a token is spent once and
//! only before it expires, and spending it sets the password and revokes every session.

use std::sync::Arc;

use keycard_store::{AuditEvent, AuditFilter, AuditKind, LinkRequest, MailFilter, NewMail, PasswordReset, Store};

use crate::harness::{NOW, session, token, user};

const TTL: i64 = 30 * 60;

fn request(email: &str, hash: keycard_core::refresh::TokenHash, id: &str, at: i64) -> LinkRequest {
    LinkRequest {
        email: email.into(),
        token: hash,
        expires_at: at + TTL,
        mail: NewMail {
            id: id.into(),
            recipient: email.into(),
            subject: "Reset".into(),
            text_body: "link".into(),
            html_body: None,
            created_at: at,
        },
        audit: AuditEvent::new(AuditKind::PasswordResetRequested, at),
    }
}

fn reset(hash: keycard_core::refresh::TokenHash, id: &str, now: i64) -> PasswordReset {
    PasswordReset {
        token: hash,
        password_hash: format!("new-hash-{id}"),
        now,
        notice: NewMail {
            id: id.into(),
            recipient: String::new(),
            subject: "Changed".into(),
            text_body: "notice".into(),
            html_body: None,
            created_at: now,
        },
        audit: AuditEvent::new(AuditKind::PasswordReset, now),
    }
}

pub async fn a_reset_request_stores_its_token_mail_and_event_and_an_unknown_address_writes_nothing(
    store: Arc<dyn Store>,
) {
    let ada = user(&*store, "ada@example.com").await;
    assert!(!store.request_password_reset(&request("nobody@example.com", token(), "m0", NOW)).await.unwrap());
    assert!(store.list_mail(&MailFilter::default()).await.unwrap().is_empty(), "nothing for an unknown address");

    let hash = token();
    assert!(store.request_password_reset(&request("ada@example.com", hash, "m1", NOW)).await.unwrap());
    let mail = store.list_mail(&MailFilter::default()).await.unwrap();
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].recipient, "ada@example.com");
    let events = store
        .audit_events(&AuditFilter { kind: Some(AuditKind::PasswordResetRequested), ..AuditFilter::default() })
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event.user_id.as_deref(), Some(ada.as_str()));

    let (sid, _) = session(&*store, &ada).await;
    let done = store.reset_password(&reset(hash, "n1", NOW + 60)).await.unwrap().expect("spent");
    assert_eq!(done.user_id, ada);
    assert_eq!(done.revoked, vec![sid.clone()]);
    assert_eq!(store.user_by_id(&ada).await.unwrap().unwrap().password_hash, "new-hash-n1");
    assert!(store.list_sessions(&ada, NOW + 61).await.unwrap().is_empty());
    let feed = store.revocations_since(0, 10).await.unwrap();
    assert_eq!((feed[0].session_id.as_str(), feed[0].reason.as_str()), (sid.as_str(), "password_reset"));
    let notice = store.list_mail(&MailFilter::default()).await.unwrap();
    assert_eq!((notice[0].id.as_str(), notice[0].recipient.as_str()), ("n1", "ada@example.com"));
    let events = store
        .audit_events(&AuditFilter { kind: Some(AuditKind::PasswordReset), ..AuditFilter::default() })
        .await
        .unwrap();
    assert_eq!(events[0].event.user_id.as_deref(), Some(ada.as_str()));

    assert!(store.reset_password(&reset(hash, "n2", NOW + 61)).await.unwrap().is_none(), "used once");
    assert!(store.reset_password(&reset(token(), "n3", NOW + 61)).await.unwrap().is_none(), "unknown");
    assert_eq!(store.list_mail(&MailFilter::default()).await.unwrap().len(), 2, "no notice for a refusal");
}

pub async fn a_new_request_supersedes_the_old_token_and_tokens_expire(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada@example.com").await;
    let (old, new) = (token(), token());
    assert!(store.request_password_reset(&request("ada@example.com", old, "m1", NOW)).await.unwrap());
    assert!(store.request_password_reset(&request("ada@example.com", new, "m2", NOW + 1)).await.unwrap());
    assert!(store.reset_password(&reset(old, "n1", NOW + 2)).await.unwrap().is_none(), "superseded");
    assert!(store.reset_password(&reset(new, "n2", NOW + 1 + TTL)).await.unwrap().is_none(), "expired");
    assert_eq!(store.user_by_id(&ada).await.unwrap().unwrap().password_hash.as_str(), "$argon2id$stub");
    assert!(store.reset_password(&reset(new, "n3", NOW + TTL)).await.unwrap().is_some(), "live until then");
}

pub async fn concurrent_spends_of_one_reset_token_have_exactly_one_winner(store: Arc<dyn Store>) {
    user(&*store, "ada@example.com").await;
    let hash = token();
    assert!(store.request_password_reset(&request("ada@example.com", hash, "m1", NOW)).await.unwrap());
    let spends = (0..10).map(|i| {
        let store = store.clone();
        tokio::spawn(async move { store.reset_password(&reset(hash, &format!("n{i}"), NOW + 5)).await.unwrap() })
    });
    let mut winners = 0;
    for spend in spends.collect::<Vec<_>>() {
        winners += usize::from(spend.await.unwrap().is_some());
    }
    assert_eq!(winners, 1);
}
