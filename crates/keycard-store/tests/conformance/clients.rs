//! OAuth clients: registration, secrets, grant revocation onto the feed, single-use assertions.

use std::sync::Arc;

use keycard_store::{ClientRecord, RevocationReason, Store};

use crate::harness::NOW;

fn client(id: &str) -> ClientRecord {
    ClientRecord {
        id: id.into(),
        name: format!("{id} service"),
        secret_hash: Some("ab".repeat(32)),
        jwks: None,
        scopes: "read write".into(),
        grant_id: format!("grant-{id}-1"),
        created_at: NOW,
        secret_rotated_at: None,
    }
}

pub async fn clients_are_registered_listed_and_found(store: Arc<dyn Store>) {
    assert!(store.list_clients().await.unwrap().is_empty());
    store.create_client(&client("kcc_b")).await.unwrap();
    let with_keys = ClientRecord { secret_hash: None, jwks: Some(r#"{"keys":[]}"#.into()), ..client("kcc_a") };
    store.create_client(&with_keys).await.unwrap();
    assert!(store.create_client(&client("kcc_b")).await.is_err(), "an id is registered once");

    assert_eq!(store.client("kcc_a").await.unwrap(), Some(with_keys.clone()));
    assert_eq!(store.client("kcc_b").await.unwrap(), Some(client("kcc_b")));
    assert_eq!(store.client("nope").await.unwrap(), None);
    let ids: Vec<String> = store.list_clients().await.unwrap().into_iter().map(|c| c.id).collect();
    assert_eq!(ids, ["kcc_a", "kcc_b"], "by id");
}

pub async fn a_new_secret_replaces_the_old_one(store: Arc<dyn Store>) {
    store.create_client(&client("kcc_a")).await.unwrap();
    assert!(store.set_client_secret("kcc_a", &"cd".repeat(32), NOW + 5).await.unwrap());
    let stored = store.client("kcc_a").await.unwrap().unwrap();
    assert_eq!(
        (stored.secret_hash.as_deref(), stored.secret_rotated_at),
        (Some("cd".repeat(32).as_str()), Some(NOW + 5))
    );
    assert!(!store.set_client_secret("nope", "x", NOW).await.unwrap());
}

pub async fn revoking_a_grant_publishes_it_once_and_draws_a_new_one(store: Arc<dyn Store>) {
    store.create_client(&client("kcc_a")).await.unwrap();
    let revoke = |grant: &'static str, new: &'static str| {
        let store = store.clone();
        async move { store.revoke_client_grant("kcc_a", grant, new, RevocationReason::TokenRevoked, NOW + 1).await }
    };
    assert!(revoke("grant-kcc_a-1", "grant-kcc_a-2").await.unwrap());
    assert!(!revoke("grant-kcc_a-1", "grant-kcc_a-3").await.unwrap(), "an old grant is already revoked");
    assert_eq!(store.client("kcc_a").await.unwrap().unwrap().grant_id, "grant-kcc_a-2");

    let feed = store.revocations_since(0, 10).await.unwrap();
    let entries: Vec<(&str, &str, RevocationReason)> =
        feed.iter().map(|r| (r.session_id.as_str(), r.user_id.as_str(), r.reason)).collect();
    assert_eq!(entries, [("grant-kcc_a-1", "kcc_a", RevocationReason::TokenRevoked)]);
    assert!(!store.revoke_client_grant("nope", "g", "h", RevocationReason::TokenRevoked, NOW).await.unwrap());
}

pub async fn removing_a_client_revokes_its_grant(store: Arc<dyn Store>) {
    store.create_client(&client("kcc_a")).await.unwrap();
    assert!(store.spend_assertion("kcc_a", "j1", NOW + 60, NOW).await.unwrap());
    assert!(store.remove_client("kcc_a", NOW + 2).await.unwrap());
    assert!(!store.remove_client("kcc_a", NOW + 3).await.unwrap(), "removed once");
    assert_eq!(store.client("kcc_a").await.unwrap(), None);
    let feed = store.revocations_since(0, 10).await.unwrap();
    assert_eq!(feed.len(), 1);
    assert_eq!((feed[0].session_id.as_str(), feed[0].reason), ("grant-kcc_a-1", RevocationReason::ClientRemoved));
}

pub async fn an_assertion_is_spent_once_until_it_expires(store: Arc<dyn Store>) {
    assert!(store.spend_assertion("kcc_a", "j1", NOW + 60, NOW).await.unwrap());
    assert!(!store.spend_assertion("kcc_a", "j1", NOW + 60, NOW + 30).await.unwrap(), "replay refused");
    assert!(store.spend_assertion("kcc_b", "j1", NOW + 60, NOW).await.unwrap(), "per client");
    // Once expired, an assertion is refused by its `exp` anyway: the row may go.
    assert!(store.spend_assertion("kcc_a", "j1", NOW + 200, NOW + 61).await.unwrap());

    let tries: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.spend_assertion("kcc_a", "race", NOW + 60, NOW).await.unwrap() })
        })
        .collect();
    let mut won = 0;
    for t in tries {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1, "twenty concurrent spends of one jti: exactly one wins");
}
