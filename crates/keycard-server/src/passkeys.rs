//! Passkeys (issue 17): WebAuthn registration, passwordless sign-in with discoverable
//! credentials, and the passkey as a second factor (through [`crate::mfa`]).
//!
//! ```text
//! POST /auth/passkeys/register/options ─▶ {passkey_token, options}   (signed in, recent sign-in)
//! POST /auth/passkeys/register {passkey_token, name, credential} ─▶ the factor (+ recovery codes)
//! POST /auth/passkeys/login/options ─▶ {passkey_token, options}        (discoverable, conditional UI)
//! POST /auth/passkeys/login {passkey_token, credential} ─▶ the usual token response
//! POST /auth/step-up/options ─▶ {passkey_token, options}               (the account's passkeys)
//! ```
//!
//! webauthn-rs does the ceremonies; its state between the two requests is kept in the store
//! (`webauthn_challenges`, or with the login's `mfa_token`), taken by the one answer that reads
//! it. A passkey is a row of `mfa_factors` (kind `passkey`): the credential as JSON, its highest
//! signature counter in `last_step`, so a counter that goes back (a cloned authenticator) is
//! refused on every instance and audited as `passkey_counter_regressed`.

use keycard_core::ErrorCode;
use keycard_core::amr::{Amr, AuthMethod};
use keycard_core::refresh::MfaToken;
use keycard_core::wire::mfa::*;
use keycard_store::{
    AuditKind, FactorConfirmation, FactorConfirmed, FactorRecord, UserRecord, WebauthnChallengeRecord,
};
use serde_json::Value;
use webauthn_rs::prelude::*;

use crate::error::ApiError;
use crate::extract::{Authenticated, ClientInfo};
use crate::ratelimit::Rule;
use crate::sessions::Issued;
use crate::settings::{Settings, SettingsError};
use crate::state::AppState;

/// `mfa_factors.kind` of a passkey.
pub const KIND_PASSKEY: &str = "passkey";
/// How long a ceremony's `passkey_token` works (seconds); WebAuthn's own timeout is the same.
pub const PASSKEY_TOKEN_TTL: i64 = 5 * 60;
/// The longest passkey name kept.
const MAX_NAME_CHARS: usize = 64;

/// What a stored ceremony is for: an answer is only good for its own.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Register,
    Login,
    StepUp,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::Login => "login",
            Self::StepUp => "step_up",
        }
    }
}

/// The relying party of `webauthn_rp_id`, `webauthn_rp_name` and `webauthn_origins` (see
/// [`Settings`]): checked once at start-up, so a wrong pairing never reaches a user. `None` (and a
/// warning) when nothing was set and `app_url` has no domain name (an IP address): browsers do
/// not allow passkeys there, and a server that never offered them must still start.
pub fn relying_party(settings: &Settings) -> Result<Option<Webauthn>, SettingsError> {
    let explicit = settings.webauthn_rp_id.is_some() || !settings.webauthn_origins.0.is_empty();
    match build(settings) {
        Ok(webauthn) => Ok(Some(webauthn)),
        Err(e) if explicit => Err(e),
        Err(e) => {
            tracing::warn!(error = %e, "passkeys are off: app_url has no domain name; set webauthn_origins to offer them");
            Ok(None)
        }
    }
}

fn build(settings: &Settings) -> Result<Webauthn, SettingsError> {
    let bad = |why: String| SettingsError::new(format!("webauthn_origins / webauthn_rp_id: {why}"));
    let mut any_port = false;
    let origins: Vec<String> = if !settings.webauthn_origins.0.is_empty() {
        settings.webauthn_origins.0.clone()
    } else if let Some(app_url) = &settings.app_url {
        vec![app_url.clone()]
    } else {
        // Development: the demo page on http://localhost, whichever port it runs on.
        any_port = true;
        vec!["http://localhost".to_owned()]
    };
    let origins = origins
        .iter()
        .map(|o| Url::parse(o).map_err(|e| bad(format!("{o:?} is not a URL: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let rp_id = match &settings.webauthn_rp_id {
        Some(id) => id.clone(),
        None => origins[0].host_str().ok_or_else(|| bad(format!("{} has no host", origins[0])))?.to_owned(),
    };
    let mut builder = WebauthnBuilder::new(&rp_id, &origins[0])
        .map_err(|_| bad(format!("{rp_id:?} is not the host of {} nor a parent domain of it", origins[0])))?
        .rp_name(&settings.webauthn_rp_name)
        .allow_any_port(any_port);
    for origin in &origins[1..] {
        if !origin.host_str().is_some_and(|h| h == rp_id || h.ends_with(&format!(".{rp_id}"))) {
            return Err(bad(format!("{rp_id:?} is not the host of {origin} nor a parent domain of it")));
        }
        builder = builder.append_allowed_origin(origin);
    }
    builder.build().map_err(|e| bad(e.to_string()))
}

/// A passkey answer refused: 400 `invalid_mfa` (or `code`), saying why when the reason helps the
/// user or the operator (wrong site, no user verification) and nothing an attacker could use.
fn refused(e: &WebauthnError, code: ErrorCode) -> ApiError {
    tracing::debug!(error = %e, "passkey answer refused");
    let why = match e {
        WebauthnError::InvalidRPOrigin => "the passkey answered for another origin than this site's (webauthn_origins)",
        WebauthnError::InvalidRPIDHash => {
            "the passkey belongs to another relying party than this site's (webauthn_rp_id)"
        }
        WebauthnError::UserNotVerified => "the authenticator did not verify the user (PIN or biometrics)",
        WebauthnError::UserNotPresent => "the authenticator did not check that the user was present",
        WebauthnError::MismatchedChallenge | WebauthnError::InvalidClientDataType => {
            "the answer is not for this passkey challenge"
        }
        _ => "the passkey's answer was not accepted",
    };
    ApiError::new(code, why)
}

fn stale() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidMfa,
        "the passkey challenge is unknown, expired or already used: ask for new options",
    )
}

fn json<T: serde::Serialize>(value: &T) -> Result<Value, ApiError> {
    serde_json::to_value(value).map_err(|e| ApiError::Internal(e.into()))
}

fn parse<T: serde::de::DeserializeOwned>(value: Value, what: &str) -> Result<T, ApiError> {
    serde_json::from_value(value).map_err(|e| {
        ApiError::bad_request(format!("{what} is not a WebAuthn answer (PublicKeyCredential.toJSON()): {e}"))
    })
}

/// Whether `factor` is a passkey (the other factors are authenticator apps).
pub fn is_passkey(factor: &FactorRecord) -> bool {
    factor.kind == KIND_PASSKEY
}

/// The passkeys among `factors`.
pub fn only(factors: &[FactorRecord]) -> Vec<FactorRecord> {
    factors.iter().filter(|f| is_passkey(f)).cloned().collect()
}

/// The passkey stored in a factor.
pub fn credential(factor: &FactorRecord) -> Result<Passkey, ApiError> {
    serde_json::from_slice(&factor.secret)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("passkey {} is not readable: {e}", factor.id)))
}

/// Whether the passkey of `factor` is backed up (synced), as its authenticator last said.
pub fn backed_up(factor: &FactorRecord) -> Option<bool> {
    credential(factor).ok().map(|p| Credential::from(p).backup_state)
}

/// RFC 8176 methods a passkey proves: a hardware-bound key (`hwk`) or a synced one (`swk`, backup
/// eligible), with user verification (webauthn-rs requires it for passkeys): `mfa`.
fn methods_of(result: &AuthenticationResult) -> Amr {
    let key = if result.backup_eligible() { AuthMethod::Swk } else { AuthMethod::Hwk };
    Amr::of(&[key, AuthMethod::Mfa])
}

/// The passkey rules over one server's state.
pub struct Passkeys<'a> {
    state: &'a AppState,
}

impl AppState {
    /// The passkey rules over this state.
    pub fn passkeys(&self) -> Passkeys<'_> {
        Passkeys { state: self }
    }
}

impl Passkeys<'_> {
    fn webauthn(&self) -> Result<&Webauthn, ApiError> {
        self.state.config.webauthn.as_deref().ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotFound,
                "passkeys are off on this server (its app_url has no domain name; set webauthn_origins)",
            )
        })
    }

    /// Whether this server offers passkeys.
    pub fn enabled(&self) -> bool {
        self.state.config.webauthn.is_some()
    }

    /// The user's active passkeys.
    pub async fn of(&self, user_id: &str) -> Result<Vec<FactorRecord>, ApiError> {
        let mut factors = self.state.factors().active(user_id).await?;
        factors.retain(is_passkey);
        Ok(factors)
    }

    /// Stores a ceremony's state and returns its options under a new `passkey_token`.
    async fn stash(
        &self,
        purpose: Purpose,
        user_id: Option<&str>,
        state: Value,
        options: Value,
    ) -> Result<PasskeyOptions, ApiError> {
        let now = self.state.now();
        let token = MfaToken::generate();
        let record = WebauthnChallengeRecord {
            token: token.hash(),
            user_id: user_id.map(str::to_owned),
            purpose: purpose.as_str().into(),
            data: state.to_string(),
            created_at: now,
            expires_at: now + PASSKEY_TOKEN_TTL,
        };
        self.state.store.create_webauthn_challenge(&record).await?;
        Ok(PasskeyOptions { passkey_token: token.expose().to_owned(), options })
    }

    /// Takes the ceremony of `token` when it is live, for `purpose` and (when given) this user.
    async fn take<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        purpose: Purpose,
        user_id: Option<&str>,
    ) -> Result<T, ApiError> {
        let token = MfaToken::parse(token).ok_or_else(stale)?;
        let record =
            self.state.store.take_webauthn_challenge(&token.hash(), self.state.now()).await?.ok_or_else(stale)?;
        if record.purpose != purpose.as_str() || record.user_id.as_deref() != user_id {
            return Err(stale());
        }
        serde_json::from_str(&record.data).map_err(|e| ApiError::Internal(e.into()))
    }

    /// `POST /auth/passkeys/register/options`: a registration for the caller, who signed in
    /// recently (a stolen session must not add a passkey its owner does not have).
    pub async fn register_options(&self, auth: &Authenticated) -> Result<PasskeyOptions, ApiError> {
        self.state.factors().require_recent(auth, false).await?;
        let user = &auth.user;
        let handle = Uuid::parse_str(&user.id).map_err(|e| ApiError::Internal(anyhow::anyhow!("user id: {e}")))?;
        let existing = self.of(&user.id).await?;
        let exclude = existing.iter().map(|f| credential(f).map(|p| p.cred_id().clone())).collect::<Result<_, _>>()?;
        let (options, registration) = self
            .webauthn()?
            .start_passkey_registration(handle, &user.email, &user.email, Some(exclude))
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("passkey registration: {e}")))?;
        let mut options = json(&options)?;
        // A discoverable credential where the authenticator can make one, so the passkey also
        // signs in without a password; "preferred" keeps security keys without room working.
        if let Some(selection) = options.pointer_mut("/publicKey/authenticatorSelection").and_then(Value::as_object_mut)
        {
            selection.insert("residentKey".into(), "preferred".into());
            selection.insert("requireResidentKey".into(), false.into());
        }
        self.stash(Purpose::Register, Some(&user.id), json(&registration)?, options).await
    }

    /// `POST /auth/passkeys/register`: checks the authenticator's answer and adds the passkey
    /// (`passkey_added`); the account's first factor brings its recovery codes.
    pub async fn register(
        &self,
        auth: &Authenticated,
        client: &ClientInfo,
        req: PasskeyRegisterRequest,
    ) -> Result<PasskeyAdded, ApiError> {
        let state = self.state;
        let name = match req.name.as_deref().map(str::trim) {
            None | Some("") => "Passkey".to_owned(),
            Some(name) if name.chars().count() > MAX_NAME_CHARS => {
                return Err(ApiError::bad_request("name: at most 64 characters"));
            }
            Some(name) => name.to_owned(),
        };
        let registration: PasskeyRegistration =
            self.take(&req.passkey_token, Purpose::Register, Some(&auth.user.id)).await?;
        let answer: RegisterPublicKeyCredential = parse(req.credential, "credential")?;
        let now = state.now();
        let passkey = match self.webauthn()?.finish_passkey_registration(&answer, &registration) {
            Ok(passkey) => passkey,
            Err(e) => {
                let (uid, sid) = (Some(auth.user.id.clone()), Some(auth.claims.sid.clone()));
                state
                    .audit(client.event(AuditKind::MfaFailed, uid, sid, Some("passkey registration".into()), now))
                    .await;
                return Err(refused(&e, ErrorCode::InvalidMfa));
            }
        };
        let id = uuid::Uuid::new_v4().to_string();
        let factor = FactorRecord {
            id: id.clone(),
            user_id: auth.user.id.clone(),
            kind: KIND_PASSKEY.into(),
            name: name.clone(),
            secret: serde_json::to_vec(&passkey).map_err(|e| ApiError::Internal(e.into()))?,
            created_at: now,
            confirmed_at: None,
            last_used_at: None,
            last_step: None,
        };
        state.store.add_factor(&factor).await?;
        let (codes, hashes) = crate::mfa::new_recovery_codes()?;
        let event = client.event(
            AuditKind::PasskeyAdded,
            Some(auth.user.id.clone()),
            Some(auth.claims.sid.clone()),
            Some(format!("passkey {id}")),
            now,
        );
        let confirmation = FactorConfirmation {
            user_id: auth.user.id.clone(),
            factor_id: id.clone(),
            // A passkey's `last_step` is its signature counter: none seen yet.
            step: 0,
            now,
            recovery_codes: hashes,
            audit: event.clone(),
        };
        let recovery_codes = match state.store.confirm_factor(&confirmation).await? {
            FactorConfirmed::NotPending => {
                return Err(ApiError::bad_request("another passkey was being added at the same time: try again"));
            }
            FactorConfirmed::WithRecoveryCodes => Some(codes),
            FactorConfirmed::Active => None,
        };
        state.recorded(&event);
        Ok(PasskeyAdded { factor_id: id, name, recovery_codes })
    }

    /// `POST /auth/passkeys/login/options`: a sign-in with any discoverable passkey of this site
    /// (the browser lists them, or offers them in the username field's autofill).
    pub async fn login_options(&self, client: &ClientInfo) -> Result<PasskeyOptions, ApiError> {
        self.state.limits.check(Rule::LoginIp, &client.rate_key()).await?;
        let (options, authentication) = self
            .webauthn()?
            .start_discoverable_authentication()
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("passkey sign-in: {e}")))?;
        self.stash(Purpose::Login, None, json(&authentication)?, json(&options)?).await
    }

    /// `POST /auth/passkeys/login`: a passwordless sign-in. The session's `amr` is the passkey's
    /// key kind and `mfa` (possession and user verification). A refusal never says whether the
    /// passkey's account exists.
    pub async fn login(
        &self,
        passkey_token: &str,
        credential_json: Value,
        device_token: Option<&str>,
        client: &ClientInfo,
    ) -> Result<(Issued, UserRecord), ApiError> {
        let state = self.state;
        state.limits.check(Rule::LoginIp, &client.rate_key()).await?;
        let refusal = || ApiError::new(ErrorCode::InvalidCredentials, "the passkey was not accepted");
        let authentication: DiscoverableAuthentication =
            self.take(passkey_token, Purpose::Login, None).await.map_err(|_| {
                ApiError::new(
                    ErrorCode::InvalidCredentials,
                    "the passkey sign-in expired or was used: ask for new options",
                )
            })?;
        let answer: PublicKeyCredential = parse(credential_json, "credential")?;
        let now = state.now();
        let webauthn = self.webauthn()?;
        let (handle, credential_id) = webauthn.identify_discoverable_authentication(&answer).map_err(|_| refusal())?;
        let user = state.store.user_by_id(&handle.to_string()).await?;
        let passkeys = match &user {
            Some(user) => self.of(&user.id).await?,
            None => Vec::new(),
        };
        let mut matching = None;
        for factor in &passkeys {
            let passkey = credential(factor)?;
            if passkey.cred_id().as_slice() == credential_id {
                matching = Some((factor.id.as_str(), passkey));
            }
        }
        let result = matching
            .as_ref()
            .map(|(_, passkey)| webauthn.finish_discoverable_authentication_v2(&answer, authentication, passkey));
        if let (Some(user), Some(Err(WebauthnError::CredentialPossibleCompromise))) = (&user, &result) {
            self.regressed(&user.id, matching.as_ref().map(|(id, _)| *id), client, None).await;
        }
        let (Some(user), Some(Ok(result))) = (user, result) else {
            metrics::counter!("keycard_logins_total", "outcome" => "failure").increment(1);
            let detail = Some("passkey".to_owned());
            state.audit(client.event(AuditKind::LoginFailed, None, None, detail, now)).await;
            return Err(refusal());
        };
        self.record_use(&user.id, &passkeys, &result, client, None).await.map_err(|_| refusal())?;
        state.sessions().admit(&user, client, now).await?;
        let device = device_token.and_then(|token| {
            crate::devices::verify(state.device_key(), token, &user.id, now, state.config.device_ttl)
        });
        let detail = device.is_none().then(|| keycard_store::NEW_DEVICE_DETAIL.to_owned());
        let issued = state.sessions().start(&user, client, detail, methods_of(&result), now).await?;
        metrics::counter!("keycard_logins_total", "outcome" => "success").increment(1);
        Ok((issued, user))
    }

    /// Request options for the user's passkeys (second factor, step-up), and the state to keep.
    pub fn challenge(&self, passkeys: &[FactorRecord]) -> Result<(Value, PasskeyAuthentication), ApiError> {
        let keys = passkeys.iter().map(credential).collect::<Result<Vec<_>, _>>()?;
        let (options, authentication) = self
            .webauthn()?
            .start_passkey_authentication(&keys)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("passkey challenge: {e}")))?;
        Ok((json(&options)?, authentication))
    }

    /// `POST /auth/step-up/options`: a challenge for the caller's passkeys.
    pub async fn step_up_options(&self, auth: &Authenticated) -> Result<PasskeyOptions, ApiError> {
        let passkeys = self.of(&auth.user.id).await?;
        if passkeys.is_empty() {
            return Err(ApiError::new(ErrorCode::NotFound, "this account has no passkey"));
        }
        let (options, authentication) = self.challenge(&passkeys)?;
        self.stash(Purpose::StepUp, Some(&auth.user.id), json(&authentication)?, options).await
    }

    /// The state of a step-up's passkey challenge, taken.
    pub async fn take_step_up(&self, token: &str, user_id: &str) -> Result<PasskeyAuthentication, ApiError> {
        self.take(token, Purpose::StepUp, Some(user_id)).await
    }

    /// Checks an assertion against a challenge of the user's passkeys and records the use; the
    /// methods it proves, or 400 `invalid_mfa`.
    pub async fn verify(
        &self,
        user_id: &str,
        passkeys: &[FactorRecord],
        answer: Value,
        authentication: &PasskeyAuthentication,
        client: &ClientInfo,
        session_id: Option<&str>,
    ) -> Result<Amr, ApiError> {
        let answer: PublicKeyCredential = parse(answer, "webauthn")?;
        let result = match self.webauthn()?.finish_passkey_authentication(&answer, authentication) {
            Ok(result) => result,
            Err(WebauthnError::CredentialPossibleCompromise) => {
                let factor = passkeys
                    .iter()
                    .find(|f| credential(f).is_ok_and(|p| p.cred_id().as_slice() == answer.get_credential_id()));
                self.regressed(user_id, factor.map(|f| f.id.as_str()), client, session_id).await;
                return Err(ApiError::new(ErrorCode::InvalidMfa, "the passkey was not accepted"));
            }
            Err(e) => return Err(refused(&e, ErrorCode::InvalidMfa)),
        };
        self.record_use(user_id, passkeys, &result, client, session_id).await?;
        Ok(methods_of(&result))
    }

    /// Keeps the passkey's new counter and flags; a counter that did not move forward (another
    /// instance saw it first, or a clone) is refused and audited.
    async fn record_use(
        &self,
        user_id: &str,
        passkeys: &[FactorRecord],
        result: &AuthenticationResult,
        client: &ClientInfo,
        session_id: Option<&str>,
    ) -> Result<(), ApiError> {
        let state = self.state;
        for factor in passkeys {
            let mut passkey = credential(factor)?;
            if passkey.cred_id() != result.cred_id() {
                continue;
            }
            passkey.update_credential(result);
            let stored = serde_json::to_vec(&passkey).map_err(|e| ApiError::Internal(e.into()))?;
            if state.store.use_passkey(&factor.id, i64::from(result.counter()), &stored, state.now()).await? {
                return Ok(());
            }
            self.regressed(user_id, Some(&factor.id), client, session_id).await;
            return Err(ApiError::new(ErrorCode::InvalidMfa, "the passkey was not accepted"));
        }
        Err(ApiError::new(ErrorCode::InvalidMfa, "the passkey was not accepted"))
    }

    async fn regressed(&self, user_id: &str, factor_id: Option<&str>, client: &ClientInfo, session_id: Option<&str>) {
        let factor = factor_id.unwrap_or("unknown");
        tracing::warn!(user_id, factor_id = factor, "passkey signature counter went back: a cloned authenticator?");
        metrics::counter!("keycard_passkey_counter_regressed_total").increment(1);
        let detail = Some(format!("passkey {factor}"));
        let event = client.event(
            AuditKind::PasskeyCounterRegressed,
            Some(user_id.to_owned()),
            session_id.map(str::to_owned),
            detail,
            self.state.now(),
        );
        self.state.audit(event).await;
    }
}
