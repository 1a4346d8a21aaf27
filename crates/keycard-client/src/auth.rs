//! The `/auth` resource: signup, login (body delivery), logout, and the caller's own account.

use std::time::Duration;

use keycard_core::wire::{
    Delivery, LoginRequest, LogoutRequest, LogoutScope, SignupRequest, TokenResponse, UserInfo, mfa,
};

use crate::client::{Client, Inner, check_status, decode};
use crate::error::ClientError;
use crate::mfa::MfaChallenge;
use crate::session::{SessionState, Tokens};

/// A session just started by [`Client::login`] (or [`Client::login_with_mfa`],
/// [`Client::complete_mfa`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Login {
    /// The session id (the `sid` claim).
    pub session_id: String,
    /// Lifetime of the first access token.
    pub expires_in: Duration,
    /// Time the session lasts without a refresh.
    pub refresh_expires_in: Duration,
}

fn secs(n: i64) -> Duration {
    Duration::from_secs(u64::try_from(n).unwrap_or(0))
}

impl Client {
    /// Creates an account (`POST /auth/signup`); does not log in.
    pub async fn signup(&self, email: &str, password: &str) -> Result<UserInfo, ClientError> {
        let body = SignupRequest { email: email.to_owned(), password: password.to_owned() };
        let response = self.inner.post_json("/auth/signup", &body).await?;
        decode(check_status(response).await?).await
    }

    /// Logs in with body delivery: the refresh token comes in the JSON body and, like the access
    /// token, is kept in memory only. Replaces any session the client held. Requests made
    /// meanwhile wait for the login to finish.
    ///
    /// An account with a second factor answers a right password with
    /// [`ClientError::MfaRequired`]: no session yet (an earlier one is kept); complete it with
    /// [`Client::complete_mfa`], or log in with [`Client::login_with_mfa`] instead.
    pub async fn login(&self, email: &str, password: &str) -> Result<Login, ClientError> {
        let mut state = self.inner.session.lock().await;
        let body = LoginRequest {
            email: email.to_owned(),
            password: password.to_owned(),
            delivery: Some(Delivery::Body),
            device_token: state.device_token.as_ref().map(|t| t.expose().to_owned()),
        };
        let sent_at = self.inner.clock.now_ms();
        let response = self.inner.post_json("/auth/login", &body).await?;
        let answer: serde_json::Value = decode(check_status(response).await?).await?;
        if answer.get("mfa_required").and_then(serde_json::Value::as_bool) == Some(true) {
            let challenge: mfa::MfaChallenge = serde_json::from_value(answer).map_err(ClientError::Decode)?;
            return Err(ClientError::MfaRequired(Box::new(MfaChallenge::from_wire(challenge, sent_at))));
        }
        let response: TokenResponse = serde_json::from_value(answer).map_err(ClientError::Decode)?;
        self.inner.start_session(&mut state, response, sent_at)
    }

    /// Ends this session (`Local`), every session of the user (`Global`), or every other one
    /// (`Others`, which keeps this one). For `Local` and `Global` the client forgets its tokens
    /// even if the server cannot be reached; later calls fail with
    /// [`ClientError::NotLoggedIn`]. A session keycard already ended counts as logged out.
    pub async fn logout(&self, scope: LogoutScope) -> Result<(), ClientError> {
        let mut state = self.inner.session.lock().await;
        let refresh = state.tokens.as_ref().ok_or(ClientError::NotLoggedIn)?.refresh.expose().to_owned();
        if scope != LogoutScope::Others {
            state.set(None);
        }
        let body = LogoutRequest { scope: Some(scope), refresh_token: Some(refresh) };
        let response = self.inner.post_json("/auth/logout", &body).await?;
        match check_status(response).await {
            Ok(_) => Ok(()),
            Err(error) if scope != LogoutScope::Others && error.is_session_ended() => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// The logged-in user (`GET /auth/me`).
    pub async fn me(&self) -> Result<UserInfo, ClientError> {
        self.get_json("/auth/me").await
    }
}

impl Inner {
    /// Starts the session of a login's token response (a password login, or its second step
    /// sent at `sent_at`): keeps the device token, stores the tokens, replacing any session.
    pub(crate) fn start_session(
        &self,
        state: &mut SessionState,
        mut response: TokenResponse,
        sent_at: i64,
    ) -> Result<Login, ClientError> {
        self.check_token_type(&response.token_type)?;
        if let Some(device) = response.device_token.take() {
            state.device_token = Some(crate::session::Secret::new(device));
        }
        let login = Login {
            session_id: response.session_id.clone(),
            expires_in: secs(response.expires_in),
            refresh_expires_in: secs(response.refresh_expires_in),
        };
        let tokens = Tokens::from_response(response, sent_at, self.refresh_margin);
        // keycard always returns the refresh token with body delivery.
        let tokens = tokens.ok_or_else(|| ClientError::Decode(serde::de::Error::missing_field("refresh_token")))?;
        state.set(Some(tokens));
        Ok(login)
    }
}
