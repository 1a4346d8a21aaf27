//! Second factors: the login's second step ([`Client::login_with_mfa`], or
//! [`ClientError::MfaRequired`] then [`Client::complete_mfa`]) and step-up
//! ([`Client::step_up`]) for routes that want a recent sign-in.
//!
//! ```text
//! login(email, password) ──▶ Err(MfaRequired(challenge)) ──▶ complete_mfa(&challenge, answer)
//! login_with_mfa(email, password, callback)   (the same, asking the callback for each answer)
//! a call ──▶ Err(StepUpRequired { max_age }) ──▶ step_up(answer) ──▶ the call again
//! ```
//!
//! Codes, recovery codes, passwords and the `mfa_token` never appear in `Debug` output or
//! errors.

use std::future::Future;
use std::time::Duration;

use keycard_core::ErrorCode;
use keycard_core::wire::mfa::{MfaVerifyRequest, StepUpRequest, StepUpResponse};
use keycard_core::wire::{TokenResponse, mfa};

use crate::auth::Login;
use crate::client::{Client, check_status, decode};
use crate::error::ClientError;
use crate::session::Secret;

pub use keycard_core::wire::mfa::MfaMethod;

/// Answers keycard takes for one `mfa_token` before it stops working.
pub const MAX_MFA_ANSWERS: u32 = 5;

/// The second step of a login: the password was right and the account has a second factor.
/// Answer it with [`Client::complete_mfa`] (or let [`Client::login_with_mfa`] do it) before it
/// expires. `Debug` never prints the `mfa_token`.
#[derive(Clone)]
pub struct MfaChallenge {
    token: Secret,
    methods: Vec<MfaMethod>,
    expires_in: Duration,
    /// When the token expires, at the latest (Unix ms by the client's clock, counted from when
    /// the login was sent).
    expires_at: i64,
    failed_answers: u32,
}

impl std::fmt::Debug for MfaChallenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaChallenge")
            .field("mfa_token", &self.token)
            .field("methods", &self.methods)
            .field("expires_in", &self.expires_in)
            .field("failed_answers", &self.failed_answers)
            .finish()
    }
}

impl MfaChallenge {
    /// The challenge of a login answer sent at `sent_at` (Unix ms by the client's clock).
    pub(crate) fn from_wire(challenge: mfa::MfaChallenge, sent_at: i64) -> Self {
        let expires_in = Duration::from_secs(u64::try_from(challenge.expires_in).unwrap_or(0));
        let expires_ms = i64::try_from(expires_in.as_millis()).unwrap_or(i64::MAX);
        Self {
            token: Secret::new(challenge.mfa_token),
            methods: challenge.methods,
            expires_in,
            expires_at: sent_at.saturating_add(expires_ms),
            failed_answers: 0,
        }
    }

    /// The answers the account can give ([`MfaMethod::Totp`]: [`MfaAnswer::Code`];
    /// [`MfaMethod::RecoveryCode`]: [`MfaAnswer::RecoveryCode`]).
    pub fn methods(&self) -> &[MfaMethod] {
        &self.methods
    }

    /// Whether the account can answer with `method`.
    pub fn allows(&self, method: MfaMethod) -> bool {
        self.methods.contains(&method)
    }

    /// How long the challenge was valid for when keycard issued it (5 minutes).
    pub fn expires_in(&self) -> Duration {
        self.expires_in
    }

    /// Answers keycard refused so far within [`Client::login_with_mfa`] (0 on the first call of
    /// its callback; more means the previous answer was wrong or already used).
    pub fn failed_answers(&self) -> u32 {
        self.failed_answers
    }

    /// Whether the challenge can take no more answers: expired by the client's clock, or
    /// [`MAX_MFA_ANSWERS`] refused.
    fn is_spent(&self, now_ms: i64) -> bool {
        self.failed_answers >= MAX_MFA_ANSWERS || now_ms >= self.expires_at
    }
}

/// The answer to a login's second step. `Debug` never prints the code.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MfaAnswer {
    /// The 6-digit code of the authenticator app ([`MfaMethod::Totp`]).
    Code(String),
    /// One of the account's single-use recovery codes ([`MfaMethod::RecoveryCode`]); spent when
    /// it matches.
    RecoveryCode(String),
}

impl std::fmt::Debug for MfaAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Code(_) => "Code(<redacted>)",
            Self::RecoveryCode(_) => "RecoveryCode(<redacted>)",
        })
    }
}

/// How [`Client::step_up`] proves the user again: an account with a second factor answers with
/// it, an account without one with its password. `Debug` never prints the secret.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StepUpAnswer {
    /// The 6-digit code of the authenticator app.
    Code(String),
    /// One of the account's single-use recovery codes (spent when it matches).
    RecoveryCode(String),
    /// The account's password (accounts without a second factor).
    Password(String),
}

impl std::fmt::Debug for StepUpAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Code(_) => "Code(<redacted>)",
            Self::RecoveryCode(_) => "RecoveryCode(<redacted>)",
            Self::Password(_) => "Password(<redacted>)",
        })
    }
}

impl From<MfaAnswer> for StepUpAnswer {
    fn from(answer: MfaAnswer) -> Self {
        match answer {
            MfaAnswer::Code(code) => Self::Code(code),
            MfaAnswer::RecoveryCode(code) => Self::RecoveryCode(code),
        }
    }
}

impl Client {
    /// Logs in like [`Client::login`]; if the account has a second factor, asks `answer` for it
    /// and completes the login with [`Client::complete_mfa`]. When keycard refuses an answer
    /// (400 `invalid_mfa`: a wrong or already used code) the callback is asked again with the
    /// same challenge ([`MfaChallenge::failed_answers`] counts the refusals), until it returns an
    /// error (return [`ClientError::MfaCancelled`] to give up), keycard refuses anything else
    /// (a rate limit…), or the challenge is spent ([`MAX_MFA_ANSWERS`] refused, or expired):
    /// then the last refusal is returned. An account without a second factor never calls the
    /// callback.
    ///
    /// The session lock is held while each request is in flight and its tokens are stored, as
    /// [`Client::login`] does, but not while the callback runs: the callback may use the client,
    /// and a session it held stays until the second step succeeds.
    ///
    /// ```no_run
    /// use keycard_client::{Client, ClientError, MfaAnswer, MfaMethod};
    ///
    /// # async fn run(client: Client) -> Result<(), ClientError> {
    /// client
    ///     .login_with_mfa("alice@example.com", "correct horse battery staple", |challenge| async move {
    ///         if challenge.failed_answers() > 0 {
    ///             eprintln!("wrong code, try again");
    ///         }
    ///         if !challenge.allows(MfaMethod::Totp) {
    ///             return Err(ClientError::MfaCancelled);
    ///         }
    ///         let code = String::from("123456"); // read from the user
    ///         Ok(MfaAnswer::Code(code))
    ///     })
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn login_with_mfa<F, Fut>(&self, email: &str, password: &str, mut answer: F) -> Result<Login, ClientError>
    where
        F: FnMut(MfaChallenge) -> Fut,
        Fut: Future<Output = Result<MfaAnswer, ClientError>>,
    {
        let mut challenge = match self.login(email, password).await {
            Err(ClientError::MfaRequired(challenge)) => *challenge,
            done => return done,
        };
        loop {
            let reply = answer(challenge.clone()).await?;
            match self.complete_mfa(&challenge, reply).await {
                Err(refused) if refused.code() == Some(ErrorCode::InvalidMfa) => {
                    challenge.failed_answers += 1;
                    if challenge.is_spent(self.inner.clock.now_ms()) {
                        return Err(refused);
                    }
                    tracing::debug!(failed = challenge.failed_answers, "second factor refused; asking again");
                }
                done => return done,
            }
        }
    }

    /// Completes a login that answered [`ClientError::MfaRequired`]: `POST /auth/mfa/verify`
    /// with the challenge's token and `answer`. On success the session starts exactly as with
    /// [`Client::login`] (tokens in memory, the device token kept, any earlier session
    /// replaced). A wrong or already used code is 400 `invalid_mfa`
    /// ([`ClientError::is_invalid_mfa`]); the same challenge can be answered again, up to
    /// [`MAX_MFA_ANSWERS`] answers within its [`MfaChallenge::expires_in`].
    pub async fn complete_mfa(&self, challenge: &MfaChallenge, answer: MfaAnswer) -> Result<Login, ClientError> {
        let mut state = self.inner.session.lock().await;
        let (code, recovery_code) = match answer {
            MfaAnswer::Code(code) => (Some(code), None),
            MfaAnswer::RecoveryCode(code) => (None, Some(code)),
        };
        let body =
            MfaVerifyRequest { mfa_token: challenge.token.expose().to_owned(), code, recovery_code, webauthn: None };
        let sent_at = self.inner.clock.now_ms();
        let response = self.inner.post_json("/auth/mfa/verify", &body).await?;
        let response: TokenResponse = decode(check_status(response).await?).await?;
        self.inner.start_session(&mut state, response, sent_at)
    }

    /// Proves the user again on the current session (`POST /auth/step-up`), after a call failed
    /// with [`ClientError::StepUpRequired`]: keycard answers with a new access token carrying a
    /// fresh `auth_time`, which replaces the one the client holds (the refresh token is kept;
    /// later refreshes carry the new `auth_time` too). Then make the call again.
    ///
    /// An account with a second factor answers with a code or a recovery code (an
    /// [`MfaAnswer`] converts), one without with [`StepUpAnswer::Password`]. A wrong code is 400
    /// `invalid_mfa` ([`ClientError::is_invalid_mfa`]), a wrong password 401
    /// `invalid_credentials`. Like any authenticated call, the access token is refreshed first
    /// if it is due. If the session ended meanwhile this is [`ClientError::NotLoggedIn`]; if a
    /// login replaced it meanwhile, the new session is kept as it is.
    pub async fn step_up(&self, answer: impl Into<StepUpAnswer>) -> Result<(), ClientError> {
        let body = match answer.into() {
            StepUpAnswer::Code(code) => StepUpRequest { code: Some(code), ..StepUpRequest::default() },
            StepUpAnswer::RecoveryCode(code) => StepUpRequest { recovery_code: Some(code), ..StepUpRequest::default() },
            StepUpAnswer::Password(password) => StepUpRequest { password: Some(password), ..StepUpRequest::default() },
        };
        let session_id = self.session_id().await.ok_or(ClientError::NotLoggedIn)?;
        let sent_at = self.inner.clock.now_ms();
        let response: StepUpResponse = decode(self.send(self.post("/auth/step-up").json(&body)).await?).await?;
        self.inner.check_token_type(&response.token_type)?;
        let mut state = self.inner.session.lock().await;
        match state.tokens.as_ref() {
            None => Err(ClientError::NotLoggedIn),
            Some(tokens) if tokens.session_id != session_id => {
                tracing::debug!("a login replaced the session during the step-up; keeping the new one");
                Ok(())
            }
            Some(_) => {
                let lifetime = Duration::from_secs(u64::try_from(response.expires_in).unwrap_or(0));
                state.replace_access(Secret::new(response.access_token), sent_at, lifetime, self.inner.refresh_margin);
                Ok(())
            }
        }
    }
}
