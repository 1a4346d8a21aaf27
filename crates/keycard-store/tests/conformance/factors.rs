//! Second factors (issue 17): pending and active factors, a TOTP step accepted once, recovery
//! codes spent once and replaced together, logins waiting for their second step, step-ups on a
//! session.

use std::sync::Arc;

use keycard_core::amr::{Amr, AuthMethod};
use keycard_store::{
    AuditEvent, AuditFilter, AuditKind, FactorConfirmation, FactorConfirmed, FactorRecord, MfaChallengeRecord,
    RevocationReason, Store, WebauthnChallengeRecord,
};

use crate::harness::{NOW, audited, session, token, user};

fn totp(id: &str, user_id: &str) -> FactorRecord {
    FactorRecord {
        id: id.into(),
        user_id: user_id.into(),
        kind: "totp".into(),
        name: "Authenticator app".into(),
        secret: b"sealed".to_vec(),
        created_at: NOW,
        confirmed_at: None,
        last_used_at: None,
        last_step: None,
    }
}

fn confirmation(user_id: &str, factor_id: &str, step: i64, codes: usize) -> FactorConfirmation {
    FactorConfirmation {
        user_id: user_id.into(),
        factor_id: factor_id.into(),
        step,
        now: NOW + 1,
        recovery_codes: (0..codes).map(|_| token()).collect(),
        audit: AuditEvent { user_id: Some(user_id.into()), ..AuditEvent::new(AuditKind::MfaEnrolled, NOW + 1) },
    }
}

async fn events(store: &dyn Store, kind: AuditKind) -> usize {
    store.audit_events(&AuditFilter { kind: Some(kind), limit: 100, ..AuditFilter::default() }).await.unwrap().len()
}

pub async fn a_factor_is_active_only_once_confirmed_and_its_first_confirmation_brings_the_codes(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada@example.com").await;
    store.add_factor(&totp("f1", &ada)).await.unwrap();
    // Starting again replaces the pending factor.
    store.add_factor(&totp("f2", &ada)).await.unwrap();
    let factors = store.factors(&ada).await.unwrap();
    assert_eq!(factors.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(), ["f2"]);
    assert_eq!(factors[0].confirmed_at, None);
    assert_eq!(factors[0].secret, b"sealed");
    assert!(!store.use_totp_step("f2", 100, NOW).await.unwrap(), "a pending factor accepts no code");

    assert_eq!(store.confirm_factor(&confirmation(&ada, "f1", 100, 10)).await.unwrap(), FactorConfirmed::NotPending);
    assert_eq!(
        store.confirm_factor(&confirmation(&ada, "f2", 100, 10)).await.unwrap(),
        FactorConfirmed::WithRecoveryCodes
    );
    assert_eq!(store.recovery_codes_left(&ada).await.unwrap(), 10);
    assert_eq!(events(&*store, AuditKind::MfaEnrolled).await, 1, "the event is written with the change");
    assert_eq!(store.confirm_factor(&confirmation(&ada, "f2", 101, 10)).await.unwrap(), FactorConfirmed::NotPending);
    let active = store.factors(&ada).await.unwrap();
    assert_eq!((active[0].confirmed_at, active[0].last_step), (Some(NOW + 1), Some(100)));

    // A second factor keeps the codes the account has.
    store.add_factor(&totp("f3", &ada)).await.unwrap();
    assert_eq!(store.confirm_factor(&confirmation(&ada, "f3", 5, 10)).await.unwrap(), FactorConfirmed::Active);
    assert_eq!(store.recovery_codes_left(&ada).await.unwrap(), 10);
    assert_eq!(store.factors(&ada).await.unwrap().len(), 2);
    assert!(store.factors(&user(&*store, "eve@example.com").await).await.unwrap().is_empty());
}

pub async fn a_totp_step_is_accepted_once_and_never_an_older_one(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada@example.com").await;
    store.add_factor(&totp("f", &ada)).await.unwrap();
    store.confirm_factor(&confirmation(&ada, "f", 100, 10)).await.unwrap();
    assert!(!store.use_totp_step("f", 100, NOW + 2).await.unwrap(), "the confirmation spent step 100");
    assert!(store.use_totp_step("f", 101, NOW + 30).await.unwrap());
    assert!(!store.use_totp_step("f", 101, NOW + 31).await.unwrap(), "replay");
    assert!(!store.use_totp_step("f", 99, NOW + 31).await.unwrap(), "older than one accepted");
    assert!(!store.use_totp_step("nope", 500, NOW).await.unwrap());
    assert_eq!(store.factors(&ada).await.unwrap()[0].last_used_at, Some(NOW + 30));

    // Ten concurrent uses of one step: exactly one wins.
    let mut tries = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let store = store.clone();
        tries.spawn(async move { store.use_totp_step("f", 102, NOW + 60).await.unwrap() });
    }
    let wins = tries.join_all().await.into_iter().filter(|won| *won).count();
    assert_eq!(wins, 1);
}

pub async fn recovery_codes_are_spent_once_replaced_together_and_go_with_the_last_factor(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada@example.com").await;
    let eve = user(&*store, "eve@example.com").await;
    let codes = (0..10).map(|_| token()).collect::<Vec<_>>();
    assert!(!store.replace_recovery_codes(&ada, &codes, &audited()).await.unwrap(), "no factor, no codes");
    store.add_factor(&totp("f", &ada)).await.unwrap();
    let mut first = confirmation(&ada, "f", 1, 0);
    first.recovery_codes = codes.clone();
    store.confirm_factor(&first).await.unwrap();

    let used = AuditEvent::new(AuditKind::RecoveryCodeUsed, NOW + 5);
    assert!(!store.spend_recovery_code(&eve, &codes[0], &used).await.unwrap(), "another user's code");
    assert!(store.spend_recovery_code(&ada, &codes[0], &used).await.unwrap());
    assert!(!store.spend_recovery_code(&ada, &codes[0], &used).await.unwrap(), "spent");
    assert_eq!(store.recovery_codes_left(&ada).await.unwrap(), 9);
    assert_eq!(events(&*store, AuditKind::RecoveryCodeUsed).await, 1);

    let fresh = (0..10).map(|_| token()).collect::<Vec<_>>();
    let regenerated = AuditEvent::new(AuditKind::RecoveryCodesRegenerated, NOW + 6);
    assert!(store.replace_recovery_codes(&ada, &fresh, &regenerated).await.unwrap());
    assert_eq!(store.recovery_codes_left(&ada).await.unwrap(), 10);
    assert!(!store.spend_recovery_code(&ada, &codes[1], &used).await.unwrap(), "old codes are gone");
    assert!(store.spend_recovery_code(&ada, &fresh[1], &used).await.unwrap());

    let removed = AuditEvent::new(AuditKind::MfaRemoved, NOW + 7);
    assert!(!store.remove_factor(&eve, "f", &removed).await.unwrap(), "not eve's");
    assert!(store.remove_factor(&ada, "f", &removed).await.unwrap());
    assert!(!store.remove_factor(&ada, "f", &removed).await.unwrap());
    assert_eq!(store.recovery_codes_left(&ada).await.unwrap(), 0, "codes go with the last factor");
    assert_eq!(events(&*store, AuditKind::MfaRemoved).await, 1);
}

pub async fn a_waiting_login_takes_a_bounded_number_of_answers_and_completes_once(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada@example.com").await;
    let hash = token();
    let challenge = MfaChallengeRecord {
        token: hash,
        user_id: ada.clone(),
        data: r#"{"delivery":"body"}"#.into(),
        attempts: 0,
        created_at: NOW,
        expires_at: NOW + 300,
    };
    store.create_mfa_challenge(&challenge).await.unwrap();
    assert!(store.attempt_mfa_challenge(&token(), NOW + 1, 5).await.unwrap().is_none(), "unknown");
    for attempt in 1..=3 {
        let found = store.attempt_mfa_challenge(&hash, NOW + 1, 3).await.unwrap().expect("live");
        assert_eq!(
            (found.attempts, found.user_id.as_str(), found.data.as_str()),
            (attempt, ada.as_str(), challenge.data.as_str())
        );
    }
    assert!(store.attempt_mfa_challenge(&hash, NOW + 1, 3).await.unwrap().is_none(), "out of attempts");
    assert!(store.attempt_mfa_challenge(&hash, NOW + 300, 5).await.unwrap().is_none(), "expired");
    assert!(store.attempt_mfa_challenge(&hash, NOW + 2, 5).await.unwrap().is_some());
    assert!(store.finish_mfa_challenge(&hash).await.unwrap());
    assert!(!store.finish_mfa_challenge(&hash).await.unwrap(), "completed once");
    assert!(store.attempt_mfa_challenge(&hash, NOW + 2, 5).await.unwrap().is_none());

    // An expired challenge is forgotten when the next one is stored.
    let old = MfaChallengeRecord { token: token(), expires_at: NOW + 10, ..challenge.clone() };
    store.create_mfa_challenge(&old).await.unwrap();
    let later = MfaChallengeRecord { token: token(), created_at: NOW + 20, expires_at: NOW + 320, ..challenge };
    store.create_mfa_challenge(&later).await.unwrap();
    assert!(!store.finish_mfa_challenge(&old.token).await.unwrap(), "forgotten");
}

pub async fn a_step_up_is_kept_on_the_session_and_carried_by_its_rotations(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada@example.com").await;
    let (sid, first) = session(&*store, &ada).await;
    let mfa = Amr::of(&[AuthMethod::Pwd, AuthMethod::Otp, AuthMethod::Mfa]);
    assert!(!store.set_session_auth("someone", &sid, mfa, NOW + 5).await.unwrap(), "not theirs");
    assert!(store.set_session_auth(&ada, &sid, mfa, NOW + 5).await.unwrap());
    let live = store.session_by_refresh(&first, NOW + 6).await.unwrap().expect("live");
    assert_eq!((live.amr, live.auth_time), (mfa, NOW + 5));
    let outcome = store.rotate_refresh(&crate::harness::rotation(first, token(), NOW + 7)).await.unwrap();
    let keycard_store::RotateOutcome::Rotated(rotated) = outcome else { panic!("{outcome:?}") };
    assert_eq!((rotated.amr, rotated.auth_time), (mfa, NOW + 5));
    assert!(store.revoke_session(&ada, &sid, RevocationReason::Logout, NOW + 8, &audited()).await.unwrap());
    assert!(!store.set_session_auth(&ada, &sid, mfa, NOW + 9).await.unwrap(), "a revoked session");
}

pub async fn a_passkey_counter_only_moves_forward_and_a_rename_is_the_owners(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada@example.com").await;
    let key = FactorRecord { kind: "passkey".into(), secret: b"{\"counter\":0}".to_vec(), ..totp("pk", &ada) };
    store.add_factor(&key).await.unwrap();
    assert!(!store.use_passkey("pk", 1, b"x", NOW).await.unwrap(), "a pending passkey is not used");
    store.confirm_factor(&confirmation(&ada, "pk", 0, 10)).await.unwrap();
    assert!(store.use_passkey("pk", 3, b"{\"counter\":3}", NOW + 5).await.unwrap());
    let stored = &store.factors(&ada).await.unwrap()[0];
    assert_eq!((stored.last_step, stored.last_used_at), (Some(3), Some(NOW + 5)));
    assert_eq!(stored.secret, b"{\"counter\":3}", "the credential's new state is kept");
    // A clone answers with a counter the original has passed: refused, nothing written.
    assert!(!store.use_passkey("pk", 3, b"clone", NOW + 6).await.unwrap());
    assert!(!store.use_passkey("pk", 2, b"clone", NOW + 6).await.unwrap());
    assert!(!store.use_passkey("pk", 0, b"clone", NOW + 6).await.unwrap(), "0 after a counter is a regression");
    assert_eq!(store.factors(&ada).await.unwrap()[0].secret, b"{\"counter\":3}");
    // Ten instances answering with the same counter at once: one is accepted.
    let mut tries = tokio::task::JoinSet::new();
    for i in 0..10 {
        let store = store.clone();
        tries.spawn(async move { store.use_passkey("pk", 4, format!("{i}").as_bytes(), NOW + 7).await.unwrap() });
    }
    assert_eq!(tries.join_all().await.into_iter().filter(|won| *won).count(), 1);

    // An authenticator that keeps no counter (synced passkeys) answers 0 every time.
    let bob = user(&*store, "bob@example.com").await;
    store.add_factor(&FactorRecord { id: "pk0".into(), user_id: bob.clone(), ..key.clone() }).await.unwrap();
    store.confirm_factor(&confirmation(&bob, "pk0", 0, 10)).await.unwrap();
    assert!(store.use_passkey("pk0", 0, b"a", NOW).await.unwrap());
    assert!(store.use_passkey("pk0", 0, b"b", NOW + 1).await.unwrap());

    assert!(!store.rename_factor(&bob, "pk", "mine now").await.unwrap(), "another user's factor");
    assert!(store.rename_factor(&ada, "pk", "Laptop").await.unwrap());
    assert_eq!(store.factors(&ada).await.unwrap()[0].name, "Laptop");
    assert!(!store.rename_factor(&ada, "gone", "x").await.unwrap());
}

pub async fn a_webauthn_challenge_is_taken_once_before_it_expires(store: Arc<dyn Store>) {
    let ada = user(&*store, "ada@example.com").await;
    let challenge = |user_id: Option<&str>, expires_at: i64| WebauthnChallengeRecord {
        token: token(),
        user_id: user_id.map(str::to_owned),
        purpose: "login".into(),
        data: "{\"state\":1}".into(),
        created_at: NOW,
        expires_at,
    };
    // A passwordless sign-in's challenge has no user yet.
    let anonymous = challenge(None, NOW + 300);
    let registration = WebauthnChallengeRecord { purpose: "register".into(), ..challenge(Some(&ada), NOW + 300) };
    let expired = challenge(Some(&ada), NOW + 10);
    for ch in [&anonymous, &registration, &expired] {
        store.create_webauthn_challenge(ch).await.unwrap();
    }
    let taken = store.take_webauthn_challenge(&registration.token, NOW + 1).await.unwrap().unwrap();
    assert_eq!((taken.user_id.as_deref(), taken.purpose.as_str()), (Some(ada.as_str()), "register"));
    assert_eq!(taken.data, "{\"state\":1}");
    assert!(store.take_webauthn_challenge(&registration.token, NOW + 1).await.unwrap().is_none(), "taken once");
    assert!(store.take_webauthn_challenge(&expired.token, NOW + 10).await.unwrap().is_none(), "expired");
    assert!(store.take_webauthn_challenge(&token(), NOW).await.unwrap().is_none(), "unknown");
    // Ten answers to one challenge at once: one takes it.
    let mut tries = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (store, token) = (store.clone(), anonymous.token);
        tries.spawn(async move { store.take_webauthn_challenge(&token, NOW + 2).await.unwrap().is_some() });
    }
    assert_eq!(tries.join_all().await.into_iter().filter(|won| *won).count(), 1);
}
