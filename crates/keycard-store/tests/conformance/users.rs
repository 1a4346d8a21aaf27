//! Users: creation, lookup, email uniqueness; and the readiness ping.

use std::sync::Arc;

use keycard_store::{NewUser, Store, StoreError};

use crate::harness::{NOW, user};

pub async fn users_are_created_and_found_by_email_and_by_id(store: Arc<dyn Store>) {
    let id = user(&*store, "ada@example.com").await;

    let by_email = store.user_by_email("ada@example.com").await.unwrap().expect("found by email");
    let by_id = store.user_by_id(&id).await.unwrap().expect("found by id");

    for found in [by_email, by_id] {
        assert_eq!(found.id, id);
        assert_eq!(found.email, "ada@example.com");
        assert_eq!(found.password_hash, "$argon2id$stub");
        assert_eq!(found.created_at, NOW);
    }
    assert!(store.user_by_email("nobody@example.com").await.unwrap().is_none(), "unknown email");
    assert!(store.user_by_id("00000000-0000-0000-0000-000000000000").await.unwrap().is_none(), "unknown id");
    // Emails are stored normalised by the server; the store compares them exactly.
    assert!(store.user_by_email("ADA@example.com").await.unwrap().is_none(), "lookup is exact");
}

pub async fn a_second_account_with_the_same_email_is_refused_as_email_taken(store: Arc<dyn Store>) {
    let first = user(&*store, "grace@example.com").await;

    let again = NewUser {
        id: uuid::Uuid::new_v4().to_string(),
        email: "grace@example.com".into(),
        password_hash: "$argon2id$other".into(),
        created_at: NOW + 5,
        verification: None,
    };
    let result = store.create_user(&again).await;

    assert!(matches!(result, Err(StoreError::EmailTaken)), "got {result:?}");
    let kept = store.user_by_email("grace@example.com").await.unwrap().unwrap();
    assert_eq!((kept.id, kept.password_hash), (first, "$argon2id$stub".to_owned()), "the first account is untouched");
}

pub async fn ping_answers(store: Arc<dyn Store>) {
    store.ping().await.expect("a fresh store answers");
}
