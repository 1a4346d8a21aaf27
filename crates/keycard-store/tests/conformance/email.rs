//! Email verification and address change: a signup's verification link is written with the
//! user; a verification token is spent once, before it expires, only for the address it was sent
//! to, and marks the user and their sessions verified; a change waits for its confirmation, is
//! superseded by a newer one, refused for a taken address, and its cancel token cancels it while
//! pending or undoes it once confirmed (revoking every session onto the feed).

use std::sync::Arc;

use keycard_core::refresh::TokenHash;
use keycard_store::{
    AuditEvent, AuditFilter, AuditKind, EmailChangeCancelled, EmailChangeOutcome, EmailChangeRequest, EmailTokenUse,
    LinkRequest, MailFilter, NewMail, NewUser, Store,
};

use crate::harness::{NOW, session, token, user};

const TTL: i64 = 3600;

fn mail(id: &str, to: &str, at: i64) -> NewMail {
    NewMail {
        id: id.into(),
        recipient: to.into(),
        subject: id.into(),
        text_body: "link".into(),
        html_body: None,
        created_at: at,
    }
}

fn link(email: &str, hash: TokenHash, id: &str, at: i64) -> LinkRequest {
    LinkRequest {
        email: email.into(),
        token: hash,
        expires_at: at + TTL,
        mail: mail(id, email, at),
        audit: AuditEvent::new(AuditKind::EmailVerificationSent, at),
    }
}

fn used(hash: TokenHash, kind: AuditKind, now: i64) -> EmailTokenUse {
    EmailTokenUse { token: hash, now, audit: AuditEvent::new(kind, now) }
}

struct Change {
    request: EmailChangeRequest,
    confirm: TokenHash,
    cancel: TokenHash,
}

fn change(user_id: &str, new_email: &str, at: i64) -> Change {
    let (confirm, cancel) = (token(), token());
    let request = EmailChangeRequest {
        user_id: user_id.into(),
        new_email: new_email.into(),
        change_id: uuid::Uuid::new_v4().to_string(),
        confirm,
        cancel,
        expires_at: at + TTL,
        cancel_expires_at: at + 7 * 86_400,
        confirm_mail: mail(&format!("confirm-{new_email}-{at}"), new_email, at),
        notice_mail: mail(&format!("notice-{new_email}-{at}"), "", at),
        audit: AuditEvent { user_id: Some(user_id.into()), ..AuditEvent::new(AuditKind::EmailChangeRequested, at) },
    };
    Change { request, confirm, cancel }
}

async fn email_of(store: &dyn Store, id: &str) -> (String, bool) {
    let user = store.user_by_id(id).await.unwrap().unwrap();
    (user.email, user.email_verified_at.is_some())
}

pub async fn a_signup_link_is_written_with_the_user_and_verifies_it_and_its_sessions_once(store: Arc<dyn Store>) {
    let hash = token();
    let id = uuid::Uuid::new_v4().to_string();
    let new = NewUser {
        id: id.clone(),
        email: "ada@example.com".into(),
        password_hash: "$argon2id$stub".into(),
        created_at: NOW,
        verification: Some(link("ada@example.com", hash, "m1", NOW)),
    };
    store.create_user(&new).await.unwrap();
    assert_eq!(store.list_mail(&MailFilter::default()).await.unwrap().len(), 1, "the link's mail is queued");
    let events = store
        .audit_events(&AuditFilter { kind: Some(AuditKind::EmailVerificationSent), ..AuditFilter::default() })
        .await
        .unwrap();
    assert_eq!(events[0].event.user_id.as_deref(), Some(id.as_str()));
    let (sid, _) = session(&*store, &id).await;
    assert!(!store.list_sessions(&id, NOW).await.unwrap()[0].email_verified);

    assert_eq!(store.verify_email(&used(token(), AuditKind::EmailVerified, NOW + 1)).await.unwrap(), None);
    assert_eq!(store.verify_email(&used(hash, AuditKind::EmailVerified, NOW + 1)).await.unwrap(), Some(id.clone()));
    assert_eq!(store.verify_email(&used(hash, AuditKind::EmailVerified, NOW + 2)).await.unwrap(), None, "once");
    assert_eq!(email_of(&*store, &id).await, ("ada@example.com".into(), true));
    let sessions = store.list_sessions(&id, NOW + 2).await.unwrap();
    assert!(sessions.iter().all(|s| s.email_verified) && sessions[0].id == sid, "{sessions:?}");
    let (later, _) = session(&*store, &id).await;
    let sessions = store.list_sessions(&id, NOW + 2).await.unwrap();
    assert!(sessions.iter().find(|s| s.id == later).unwrap().email_verified, "new sessions start verified");
}

pub async fn a_new_link_supersedes_the_old_one_and_links_expire(store: Arc<dyn Store>) {
    let id = user(&*store, "bob@example.com").await;
    assert!(!store.request_verification(&link("nobody@example.com", token(), "m0", NOW)).await.unwrap());
    let (old, new) = (token(), token());
    assert!(store.request_verification(&link("bob@example.com", old, "m1", NOW)).await.unwrap());
    assert!(store.request_verification(&link("bob@example.com", new, "m2", NOW)).await.unwrap());
    assert_eq!(store.verify_email(&used(old, AuditKind::EmailVerified, NOW + 1)).await.unwrap(), None, "superseded");
    assert_eq!(store.verify_email(&used(new, AuditKind::EmailVerified, NOW + TTL)).await.unwrap(), None, "expired");
    assert!(!email_of(&*store, &id).await.1);
    let fresh = token();
    assert!(store.request_verification(&link("bob@example.com", fresh, "m3", NOW)).await.unwrap());
    assert!(store.verify_email(&used(fresh, AuditKind::EmailVerified, NOW + 1)).await.unwrap().is_some());
    let before = store.list_mail(&MailFilter::default()).await.unwrap().len();
    assert!(store.request_verification(&link("bob@example.com", token(), "m4", NOW)).await.unwrap());
    assert_eq!(store.list_mail(&MailFilter::default()).await.unwrap().len(), before, "verified: no new link");
}

pub async fn an_address_changes_only_on_confirmation_and_never_to_a_taken_one(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada@example.com").await;
    user(&*store, "taken@example.com").await;
    assert!(!store.request_email_change(&change(&ada, "taken@example.com", NOW).request).await.unwrap());
    assert!(store.list_mail(&MailFilter::default()).await.unwrap().is_empty(), "no mail for a taken address");

    let c = change(&ada, "ada@new.example", NOW);
    assert!(store.request_email_change(&c.request).await.unwrap());
    let mut recipients: Vec<String> =
        store.list_mail(&MailFilter::default()).await.unwrap().into_iter().map(|m| m.recipient).collect();
    recipients.sort();
    assert_eq!(recipients, ["ada@example.com", "ada@new.example"], "confirmation to the new, notice to the old");
    assert_eq!(email_of(&*store, &ada).await.0, "ada@example.com", "not before the confirmation");

    let (sid, _) = session(&*store, &ada).await;
    let confirm = used(c.confirm, AuditKind::EmailChanged, NOW + 1);
    assert_eq!(
        store.confirm_email_change(&used(c.cancel, AuditKind::EmailChanged, NOW + 1)).await.unwrap(),
        EmailChangeOutcome::Invalid
    );
    assert_eq!(
        store.confirm_email_change(&confirm).await.unwrap(),
        EmailChangeOutcome::Changed { user_id: ada.clone() }
    );
    assert_eq!(store.confirm_email_change(&confirm).await.unwrap(), EmailChangeOutcome::Invalid, "once");
    assert_eq!(email_of(&*store, &ada).await, ("ada@new.example".into(), true));
    assert!(store.user_by_email("ada@example.com").await.unwrap().is_none());
    assert!(store.list_sessions(&ada, NOW + 1).await.unwrap().iter().any(|s| s.id == sid && s.email_verified));

    // Someone else takes the address of a pending change before it is confirmed.
    let d = change(&ada, "race@example.com", NOW + 2);
    assert!(store.request_email_change(&d.request).await.unwrap());
    user(&*store, "race@example.com").await;
    let late = used(d.confirm, AuditKind::EmailChanged, NOW + 3);
    assert_eq!(store.confirm_email_change(&late).await.unwrap(), EmailChangeOutcome::Taken);
    assert_eq!(email_of(&*store, &ada).await.0, "ada@new.example");
}

pub async fn a_cancel_token_cancels_a_pending_change_or_undoes_a_confirmed_one(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada@example.com").await;
    // Pending, superseded, then cancelled.
    let first = change(&ada, "one@example.com", NOW);
    let second = change(&ada, "two@example.com", NOW + 1);
    assert!(store.request_email_change(&first.request).await.unwrap());
    assert!(store.request_email_change(&second.request).await.unwrap());
    let cancel = |hash, now| used(hash, AuditKind::EmailChangeCancelled, now);
    assert_eq!(store.cancel_email_change(&cancel(first.cancel, NOW + 2)).await.unwrap(), None, "superseded");
    let done = store.cancel_email_change(&cancel(second.cancel, NOW + 2)).await.unwrap();
    assert_eq!(done, Some(EmailChangeCancelled { user_id: ada.clone(), undone: false, revoked: vec![] }));
    let confirm = used(second.confirm, AuditKind::EmailChanged, NOW + 3);
    assert_eq!(store.confirm_email_change(&confirm).await.unwrap(), EmailChangeOutcome::Invalid, "cancelled");

    // Confirmed, then undone from the old address: every session ends, on the feed.
    let third = change(&ada, "thief@example.com", NOW + 4);
    assert!(store.request_email_change(&third.request).await.unwrap());
    let (one, _) = session(&*store, &ada).await;
    let (two, _) = session(&*store, &ada).await;
    let confirm = used(third.confirm, AuditKind::EmailChanged, NOW + 5);
    assert_eq!(
        store.confirm_email_change(&confirm).await.unwrap(),
        EmailChangeOutcome::Changed { user_id: ada.clone() }
    );
    // A newer change by the thief does not take the old address's cancel token away.
    assert!(store.request_email_change(&change(&ada, "thief2@example.com", NOW + 6).request).await.unwrap());
    let undone = store.cancel_email_change(&cancel(third.cancel, NOW + 7)).await.unwrap().expect("undone");
    assert!(undone.undone);
    let mut revoked = undone.revoked.clone();
    revoked.sort();
    let mut expected = vec![one, two];
    expected.sort();
    assert_eq!(revoked, expected);
    assert_eq!(email_of(&*store, &ada).await, ("ada@example.com".into(), true));
    let feed = store.revocations_since(0, 100).await.unwrap();
    assert_eq!(
        feed.iter().filter(|r| r.reason == keycard_store::RevocationReason::EmailChangeCancelled).count(),
        2,
        "{feed:?}"
    );
    assert_eq!(store.cancel_email_change(&cancel(third.cancel, NOW + 8)).await.unwrap(), None, "once");
    let events = store
        .audit_events(&AuditFilter { kind: Some(AuditKind::EmailChangeCancelled), ..AuditFilter::default() })
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
}

pub async fn concurrent_spends_of_one_verification_token_have_exactly_one_winner(store: Arc<dyn Store>) {
    user(&*store, "ada@example.com").await;
    let hash = token();
    assert!(store.request_verification(&link("ada@example.com", hash, "m1", NOW)).await.unwrap());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let store = store.clone();
        tasks.spawn(async move { store.verify_email(&used(hash, AuditKind::EmailVerified, NOW + 1)).await.unwrap() });
    }
    assert_eq!(tasks.join_all().await.into_iter().filter(Option::is_some).count(), 1);
}
