//! Many concurrent writes of different kinds, some of them failing: each caller gets its own
//! answer, and a failure undoes only its own operation. (On SQLite the writes share group
//! transactions, a savepoint each; on PostgreSQL each is its own transaction.)

use std::sync::Arc;

use keycard_store::{AuditEvent, AuditFilter, AuditKind, NewUser, RotateOutcome, Store, StoreError};
use tokio::task::JoinSet;

use crate::harness::{NOW, rotation, session, token, user};

/// What one concurrent operation was and what it answered.
enum Answer {
    SignUp { email: String, id: String, result: Result<(), StoreError> },
    Rotate(Result<RotateOutcome, StoreError>),
    Audit(Result<(), StoreError>),
}

pub async fn concurrent_writes_with_failing_ones_each_get_their_own_answer(store: Arc<dyn Store>) {
    let taken = user(&*store, "taken@example.com").await;
    let owner = user(&*store, "owner@example.com").await;
    let mut chains = Vec::new();
    for _ in 0..8 {
        chains.push(session(&*store, &owner).await);
    }

    let mut tasks = JoinSet::new();
    for i in 0..96 {
        let store = store.clone();
        // Every sixth sign-up takes an existing email, and each fresh email is tried twice.
        let email = if i % 6 == 0 { "taken@example.com".to_owned() } else { format!("fresh{}@example.com", i / 2) };
        tasks.spawn(async move {
            let id = uuid::Uuid::new_v4().to_string();
            let new = NewUser {
                id: id.clone(),
                email: email.clone(),
                password_hash: "$argon2id$x".into(),
                created_at: NOW,
                verification: None,
            };
            Answer::SignUp { email, id, result: store.create_user(&new).await }
        });
    }
    for (i, (_, first)) in chains.iter().enumerate() {
        // Two rotations of each chain's token: one wins, the other (strictly single use) is reuse.
        for _ in 0..2 {
            let (store, r) = (store.clone(), rotation(*first, token(), NOW + 60));
            tasks.spawn(async move { Answer::Rotate(store.rotate_refresh(&r).await) });
        }
        let store = store.clone();
        let event =
            AuditEvent { detail: Some(format!("concurrent-{i}")), ..AuditEvent::new(AuditKind::Login, NOW + 60) };
        tasks.spawn(async move { Answer::Audit(store.append_audit(&event).await) });
    }
    let answers = tasks.join_all().await;

    let mut winners = std::collections::HashMap::new();
    let (mut rotated, mut reused, mut audited) = (0, 0, 0);
    for answer in answers {
        match answer {
            Answer::SignUp { email, id, result: Ok(()) } => {
                assert_ne!(email, "taken@example.com", "an existing email was taken twice");
                assert!(winners.insert(email.clone(), id).is_none(), "{email} was signed up twice");
            }
            Answer::SignUp { result: Err(StoreError::EmailTaken), .. } => {}
            Answer::SignUp { email, result: Err(e), .. } => panic!("signing up {email}: {e}"),
            Answer::Rotate(Ok(RotateOutcome::Rotated(_))) => rotated += 1,
            Answer::Rotate(Ok(RotateOutcome::Reused { .. })) => reused += 1,
            Answer::Rotate(other) => panic!("a rotation answered {other:?}"),
            Answer::Audit(result) => {
                result.expect("the audit event is appended");
                audited += 1;
            }
        }
    }
    let fresh: std::collections::HashSet<String> =
        (0..96).filter(|i| i % 6 != 0).map(|i| format!("fresh{}@example.com", i / 2)).collect();
    assert_eq!(winners.len(), fresh.len(), "each fresh email is signed up exactly once");
    for (email, id) in &winners {
        let found = store.user_by_email(email).await.unwrap().expect("the winner's account exists");
        assert_eq!(&found.id, id, "{email} belongs to the sign-up that was told it succeeded");
    }
    let kept = store.user_by_email("taken@example.com").await.unwrap().unwrap();
    assert_eq!((kept.id, kept.password_hash.as_str()), (taken, "$argon2id$stub"), "the existing account is untouched");
    assert_eq!((rotated, reused, audited), (8, 8, 8));
    assert!(store.list_sessions(&owner, NOW + 61).await.unwrap().is_empty(), "every reused chain is revoked");
    assert_eq!(store.revocations_since(0, 100).await.unwrap().len(), 8, "one revocation per reused chain");
    let events = store.audit_events(&AuditFilter { limit: 100, ..AuditFilter::default() }).await.unwrap();
    assert_eq!(
        events.iter().filter(|e| e.event.detail.as_deref().is_some_and(|d| d.starts_with("concurrent-"))).count(),
        8
    );
}
