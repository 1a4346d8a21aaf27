//! Errors carry the status and keycard's decoded error body.

use keycard_client::{Client, ClientError, ErrorCode};

use crate::helpers::{PASSWORD, start_keycard};

#[tokio::test]
async fn server_errors_are_typed_with_status_and_code() {
    let keycard = start_keycard().await;
    let client = Client::new(&keycard.base).unwrap();
    assert!(matches!(client.me().await, Err(ClientError::NotLoggedIn)), "no session yet");

    client.signup("typed@example.com", PASSWORD).await.unwrap();
    let taken = client.signup("typed@example.com", PASSWORD).await.unwrap_err();
    assert_eq!((taken.status().map(|s| s.as_u16()), taken.code()), (Some(409), Some(ErrorCode::EmailTaken)));
    let weak = client.signup("weak@example.com", "short").await.unwrap_err();
    assert_eq!(weak.status().map(|s| s.as_u16()), Some(422), "{weak}");
    let wrong = client.login("typed@example.com", "not the password").await.unwrap_err();
    assert_eq!(wrong.code(), Some(ErrorCode::InvalidCredentials), "{wrong}");
    let ClientError::Api { error: Some(body), .. } = &wrong else { panic!("{wrong:?}") };
    assert!(!body.error_description.is_empty());
    assert!(!client.is_logged_in().await, "a failed login leaves no session");
}

#[tokio::test]
async fn bad_base_urls_and_unreachable_servers_are_errors_not_panics() {
    assert!(matches!(Client::new("not a url"), Err(ClientError::InvalidUrl(_))));
    assert!(matches!(Client::new("ftp://example.com"), Err(ClientError::InvalidUrl(_))));
    let client = Client::new("http://127.0.0.1:9").unwrap();
    let error = client.login("x@example.com", PASSWORD).await.unwrap_err();
    assert!(matches!(error, ClientError::Http(_)), "{error:?}");
}

/// The client keeps the device token of its login and sends it with the next ones, so failed
/// guesses by strangers (which spend the account's unknown-device budget) never lock it out.
#[tokio::test]
async fn a_client_that_logged_in_before_is_a_known_device() {
    let keycard = crate::helpers::start_keycard_with(|s| s.login_per_account_per_minute = 2).await;
    let owner = keycard.logged_in("device@example.com").await;
    let stranger = Client::new(&keycard.base).unwrap();
    let throttled = async {
        for _ in 0..10 {
            let error = stranger.login("device@example.com", "a stranger's guess").await.unwrap_err();
            if error.status().map(|s| s.as_u16()) == Some(429) {
                return true;
            }
        }
        false
    };
    assert!(throttled.await, "strangers are throttled");
    owner.login("device@example.com", PASSWORD).await.expect("the owner's client is never throttled by them");
    assert!(owner.me().await.is_ok());
}
