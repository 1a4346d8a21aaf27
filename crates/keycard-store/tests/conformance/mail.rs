//! The mail outbox: queueing, claims with a lease, delivery and failure, listing; concurrent
//! claimers never get the same message, and a claim that is never finished runs out.

use std::collections::HashSet;
use std::sync::Arc;

use keycard_store::{MailFilter, MailRecord, MailState, NewMail, Store};

use crate::harness::NOW;

const LEASE: i64 = 60;

fn mail(n: usize, at: i64) -> NewMail {
    NewMail {
        id: format!("mail-{n:03}"),
        recipient: format!("user{n}@example.com"),
        subject: format!("Message {n}"),
        text_body: format!("text {n}"),
        html_body: n.is_multiple_of(2).then(|| format!("<p>html {n}</p>")),
        created_at: at,
    }
}

fn ids(records: &[MailRecord]) -> Vec<&str> {
    records.iter().map(|m| m.id.as_str()).collect()
}

pub async fn queued_mail_is_claimed_once_oldest_first_and_listed(store: Arc<dyn Store>) {
    assert!(store.claim_mail(NOW, NOW + LEASE, 10).await.unwrap().is_empty());
    store.enqueue_mail(&mail(2, NOW + 1)).await.unwrap();
    store.enqueue_mail(&mail(1, NOW)).await.unwrap();
    store.enqueue_mail(&mail(3, NOW + 50)).await.unwrap();
    assert!(store.enqueue_mail(&mail(1, NOW)).await.is_err(), "an id is queued once");

    let claimed = store.claim_mail(NOW + 1, NOW + 1 + LEASE, 10).await.unwrap();
    assert_eq!(ids(&claimed), ["mail-001", "mail-002"], "only due ones, oldest first");
    let first = &claimed[0];
    assert_eq!(
        (first.recipient.as_str(), first.subject.as_str(), first.text_body.as_str(), first.html_body.as_deref()),
        ("user1@example.com", "Message 1", "text 1", None)
    );
    assert_eq!(claimed[1].html_body.as_deref(), Some("<p>html 2</p>"));
    assert!(claimed.iter().all(|m| m.state == MailState::Queued && m.attempts == 1));
    assert!(claimed.iter().all(|m| m.next_attempt_at == NOW + 1 + LEASE), "leased");
    assert!(store.claim_mail(NOW + 2, NOW + 2 + LEASE, 10).await.unwrap().is_empty(), "claimed ones are leased");

    let limited = store.claim_mail(NOW + 50, NOW + 50 + LEASE, 1).await.unwrap();
    assert_eq!(ids(&limited), ["mail-003"], "the others are still leased");

    let all = store.list_mail(&MailFilter::default()).await.unwrap();
    assert_eq!(ids(&all), ["mail-003", "mail-002", "mail-001"], "newest first");
    let queued = store.list_mail(&MailFilter { state: Some(MailState::Queued), limit: 2 }).await.unwrap();
    assert_eq!(ids(&queued), ["mail-003", "mail-002"]);
    assert!(store.list_mail(&MailFilter { state: Some(MailState::Sent), limit: 0 }).await.unwrap().is_empty());
}

pub async fn a_sent_message_is_never_claimed_again(store: Arc<dyn Store>) {
    store.enqueue_mail(&mail(1, NOW)).await.unwrap();
    let claimed = store.claim_mail(NOW, NOW + LEASE, 10).await.unwrap();
    assert_eq!(ids(&claimed), ["mail-001"]);
    assert!(store.mail_sent("mail-001", NOW + 5).await.unwrap());
    assert!(!store.mail_sent("mail-001", NOW + 6).await.unwrap(), "sent once");
    assert!(!store.mail_failed("mail-001", "late", Some(NOW)).await.unwrap(), "a sent message stays sent");
    assert!(!store.mail_sent("nope", NOW).await.unwrap());

    assert!(store.claim_mail(NOW + 10 * LEASE, NOW + 11 * LEASE, 10).await.unwrap().is_empty());
    let sent = store.list_mail(&MailFilter { state: Some(MailState::Sent), limit: 0 }).await.unwrap();
    assert_eq!(ids(&sent), ["mail-001"]);
    assert_eq!((sent[0].sent_at, sent[0].attempts, sent[0].last_error.as_deref()), (Some(NOW + 5), 1, None));
}

pub async fn a_failed_attempt_is_retried_at_its_time_and_a_final_failure_is_kept(store: Arc<dyn Store>) {
    store.enqueue_mail(&mail(1, NOW)).await.unwrap();
    store.claim_mail(NOW, NOW + LEASE, 10).await.unwrap();
    assert!(store.mail_failed("mail-001", "421 4.3.2 try again later", Some(NOW + 30)).await.unwrap());
    assert!(store.claim_mail(NOW + 29, NOW + 29 + LEASE, 10).await.unwrap().is_empty(), "not before its retry time");

    let retried = store.claim_mail(NOW + 30, NOW + 30 + LEASE, 10).await.unwrap();
    assert_eq!((retried[0].attempts, retried[0].last_error.as_deref()), (2, Some("421 4.3.2 try again later")));
    assert!(store.mail_failed("mail-001", "550 5.1.1 no such user", None).await.unwrap());

    assert!(store.claim_mail(NOW + 10 * LEASE, NOW + 11 * LEASE, 10).await.unwrap().is_empty(), "failed for good");
    let failed = store.list_mail(&MailFilter { state: Some(MailState::Failed), limit: 0 }).await.unwrap();
    assert_eq!(
        (failed[0].state, failed[0].attempts, failed[0].last_error.as_deref(), failed[0].sent_at),
        (MailState::Failed, 2, Some("550 5.1.1 no such user"), None)
    );
    assert!(!store.mail_sent("mail-001", NOW).await.unwrap(), "a failed message stays failed");
}

/// A sender that claimed a message and stopped (a crash) leaves it due again when the lease ends.
pub async fn a_claim_never_finished_is_due_again_after_its_lease(store: Arc<dyn Store>) {
    store.enqueue_mail(&mail(1, NOW)).await.unwrap();
    assert_eq!(store.claim_mail(NOW, NOW + LEASE, 10).await.unwrap().len(), 1);
    // The claimer is gone: nothing is ever recorded for its attempt.
    assert!(store.claim_mail(NOW + LEASE - 1, NOW + 2 * LEASE, 10).await.unwrap().is_empty());
    let again = store.claim_mail(NOW + LEASE, NOW + 2 * LEASE, 10).await.unwrap();
    assert_eq!((ids(&again), again[0].attempts), (vec!["mail-001"], 2));
    assert!(store.mail_sent("mail-001", NOW + LEASE + 1).await.unwrap());
}

/// Eight claimers at once over 40 due messages, a few at a time: every message is claimed by
/// exactly one of them.
pub async fn concurrent_claimers_never_get_the_same_message(store: Arc<dyn Store>) {
    for n in 0..40 {
        store.enqueue_mail(&mail(n, NOW)).await.unwrap();
    }
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.spawn(async move {
            let mut mine = Vec::new();
            loop {
                let claimed = store.claim_mail(NOW, NOW + LEASE, 3).await.unwrap();
                if claimed.is_empty() {
                    break mine;
                }
                for m in claimed {
                    assert!(store.mail_sent(&m.id, NOW + 1).await.unwrap(), "{} was sent by another claimer", m.id);
                    mine.push(m.id);
                }
            }
        });
    }
    let all: Vec<String> = tasks.join_all().await.into_iter().flatten().collect();
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!((all.len(), unique.len()), (40, 40), "each message claimed exactly once");
    let sent = store.list_mail(&MailFilter { state: Some(MailState::Sent), limit: 100 }).await.unwrap();
    assert!(sent.len() == 40 && sent.iter().all(|m| m.attempts == 1));
}
