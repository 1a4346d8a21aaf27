//! Logout and sessions ended elsewhere: later calls fail with a typed error.

use keycard_client::{ClientError, ErrorCode, LogoutScope};

use crate::helpers::start_keycard;

#[tokio::test]
async fn logout_makes_later_calls_fail_with_not_logged_in() {
    let keycard = start_keycard().await;
    let client = keycard.logged_in("bye@example.com").await;
    client.me().await.unwrap();
    client.logout(LogoutScope::Local).await.unwrap();
    assert!(matches!(client.me().await, Err(ClientError::NotLoggedIn)));
    assert!(!client.is_logged_in().await);
    assert!(client.me().await.unwrap_err().is_session_ended());
    assert!(matches!(client.logout(LogoutScope::Local).await, Err(ClientError::NotLoggedIn)));
    assert_eq!(keycard.audit_count("logout").await, 1);
}

#[tokio::test]
async fn logout_of_other_sessions_keeps_this_one() {
    let keycard = start_keycard().await;
    let laptop = keycard.logged_in("two@example.com").await;
    let phone = keycard.logged_in("two@example.com").await;
    laptop.logout(LogoutScope::Others).await.unwrap();
    assert!(laptop.me().await.is_ok(), "this session goes on");
    let error = phone.me().await.unwrap_err();
    assert!(error.is_session_ended(), "the other session ended: {error:?}");
    assert!(matches!(phone.me().await, Err(ClientError::NotLoggedIn)));
}

#[tokio::test]
async fn a_session_ended_at_keycard_surfaces_as_invalid_grant_then_not_logged_in() {
    let keycard = start_keycard().await;
    let client = keycard.logged_in("ended@example.com").await;
    let other = keycard.logged_in("ended@example.com").await;
    other.logout(LogoutScope::Global).await.unwrap();

    // /auth/me refuses the revoked session's token; the refresh is refused too.
    let error = client.me().await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::InvalidGrant), "{error:?}");
    assert!(error.is_session_ended());
    assert!(matches!(client.me().await, Err(ClientError::NotLoggedIn)));
    assert_eq!(keycard.audit_count("refresh_token_reused").await, 0);
}
