//! Second factors (issue 17): TOTP enrolment and checks, recovery codes, the login's second
//! step, step-up, and the rule keycard's sensitive routes apply ([`Factors::require_recent`]).
//!
//! ```text
//! POST /auth/login ── password right, account has a factor ──▶ 200 {mfa_required, mfa_token}
//! POST /auth/mfa/verify {mfa_token, code | recovery_code} ──▶ the usual token response
//! POST /auth/step-up {code | recovery_code | password} ──▶ a new access token, auth_time = now
//! ```
//!
//! The store makes each step atomic (a TOTP time step accepted once across every instance, a
//! recovery code spent once, an `mfa_token` completed once); the rules are here.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use keycard_core::ErrorCode;
use keycard_core::amr::{Amr, AuthMethod};
use keycard_core::refresh::{MfaToken, TokenHash};
use keycard_core::wire::Delivery;
use keycard_core::wire::mfa::*;
use keycard_store::{AuditKind, FactorConfirmation, FactorConfirmed, FactorRecord, MfaChallengeRecord, UserRecord};
use serde::{Deserialize, Serialize};
use totp_rs::{Algorithm, Totp};

use crate::error::ApiError;
use crate::extract::{Authenticated, ClientInfo};
use crate::routes::timestamp;
use crate::sessions::Issued;
use crate::state::AppState;

/// How long an `mfa_token` works (seconds).
pub const MFA_TOKEN_TTL: i64 = 5 * 60;
/// Answers one `mfa_token` takes before it stops working (each failure also counts toward the
/// login's backoff).
pub const MAX_MFA_ATTEMPTS: i64 = 5;
/// Recovery codes made at once.
pub const RECOVERY_CODE_COUNT: usize = 10;
/// TOTP parameters every authenticator app supports (RFC 6238's defaults): SHA-1, 6 digits,
/// 30-second steps; a code of the step before or after is accepted too.
const TOTP_DIGITS: u8 = 6;
const TOTP_STEP: u64 = 30;
const TOTP_SKEW: u16 = 1;
/// 160-bit secrets, the HMAC-SHA-1 block RFC 4226 recommends.
const TOTP_SECRET_BYTES: usize = 20;
/// The associated data a factor's secret is sealed under (with its id).
const SEAL_ALG: &str = "totp";
/// `mfa_factors.kind` of an authenticator app.
const KIND_TOTP: &str = "totp";
/// Recovery codes: 20 characters of Crockford's base32 (100 bits), shown in groups of five;
/// no `i`, `l`, `o` or `u` to misread.
const RECOVERY_ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// What a login stored with its `mfa_token`: how to answer once the second factor is right.
#[derive(Serialize, Deserialize)]
struct PendingLogin {
    /// Cookie or body delivery, as the login asked.
    delivery: Delivery,
    /// Whether the login came with a valid device token for the account.
    known_device: bool,
    /// The backoff key the password's failures counted against: the code's failures count
    /// there too.
    failure_key: String,
    /// The passkey challenge offered with it, when the account has passkeys.
    #[serde(default)]
    passkey: Option<webauthn_rs::prelude::PasskeyAuthentication>,
}

/// The answer to a correct password: tokens, or the second step.
pub enum LoginStep {
    /// Signed in: the session, its user, and the delivery to answer in.
    Done(Box<Issued>, UserRecord),
    /// The account has a second factor: no tokens yet.
    Mfa(MfaChallenge),
}

/// The second-factor rules over one server's state.
pub struct Factors<'a> {
    state: &'a AppState,
}

impl AppState {
    /// The second-factor rules over this state.
    pub fn factors(&self) -> Factors<'_> {
        Factors { state: self }
    }
}

fn totp(secret: Vec<u8>, account: &str, issuer: &str) -> Result<Totp, ApiError> {
    totp_rs::Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(TOTP_DIGITS)
        .with_skew(TOTP_SKEW)
        .with_step_duration(TOTP_STEP)
        .with_secret(secret)
        .with_issuer(Some(issuer))
        .with_account_name(account)
        .build()
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("TOTP parameters refused: {e}")))
}

/// A new recovery code, `xxxxx-xxxxx-xxxxx-xxxxx`.
fn recovery_code() -> Result<String, ApiError> {
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::Internal(anyhow::anyhow!("no OS randomness: {e}")))?;
    let mut code = String::with_capacity(23);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 && i % 5 == 0 {
            code.push('-');
        }
        // 256 is a multiple of 32: every character is equally likely.
        code.push(RECOVERY_ALPHABET[usize::from(b % 32)] as char);
    }
    Ok(code)
}

/// The stored form of a recovery code: SHA-256 of the code without separators, lower case, with
/// Crockford's readings of look-alikes (`o` is `0`, `i` and `l` are `1`), so a code typed from
/// paper as `ABCDE FGHIJ…` matches.
fn recovery_hash(code: &str) -> TokenHash {
    let normal: String = code
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'o' => '0',
            'i' | 'l' => '1',
            c => c,
        })
        .collect();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, normal.as_bytes());
    let mut hash = [0u8; 32];
    hash.copy_from_slice(digest.as_ref());
    TokenHash(hash)
}

/// Ten new recovery codes, and their stored form.
pub(crate) fn new_recovery_codes() -> Result<(Vec<String>, Vec<TokenHash>), ApiError> {
    let codes = (0..RECOVERY_CODE_COUNT).map(|_| recovery_code()).collect::<Result<Vec<_>, _>>()?;
    let hashes = codes.iter().map(|c| recovery_hash(c)).collect();
    Ok((codes, hashes))
}

/// A QR code of `text` as a `data:` URL of an SVG image.
fn qr_data_url(text: &str) -> Result<String, ApiError> {
    let code = qrcode::QrCode::new(text.as_bytes()).map_err(|e| ApiError::Internal(anyhow::anyhow!("QR code: {e}")))?;
    let svg = code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(200, 200).build();
    Ok(format!("data:image/svg+xml;base64,{}", STANDARD.encode(svg)))
}

/// Exactly one of the answers, or 400.
fn one_answer(
    code: Option<String>,
    recovery_code: Option<String>,
    webauthn: Option<serde_json::Value>,
) -> Result<Answer, ApiError> {
    match (code, recovery_code, webauthn) {
        (Some(code), None, None) => Ok(Answer::Code(code)),
        (None, Some(code), None) => Ok(Answer::Recovery(code)),
        (None, None, Some(assertion)) => Ok(Answer::Passkey(assertion)),
        _ => Err(ApiError::bad_request("give exactly one of code, recovery_code and webauthn")),
    }
}

enum Answer {
    Code(String),
    Recovery(String),
    /// A passkey's assertion (`PublicKeyCredential.toJSON()`), for the challenge kept with it.
    Passkey(serde_json::Value),
}

fn invalid_mfa() -> ApiError {
    ApiError::new(ErrorCode::InvalidMfa, "the code is wrong, expired or already used")
}

impl Factors<'_> {
    /// The user's active factors.
    pub async fn active(&self, user_id: &str) -> Result<Vec<FactorRecord>, ApiError> {
        let mut factors = self.state.store.factors(user_id).await?;
        factors.retain(|f| f.confirmed_at.is_some());
        Ok(factors)
    }

    fn open_totp(&self, factor: &FactorRecord, account: &str) -> Result<Totp, ApiError> {
        let secret = self.state.master_key().open(&factor.id, SEAL_ALG, &factor.secret)?;
        totp(secret, account, &self.state.config.totp_issuer)
    }

    /// Checks `answer` against the user's active factors: a TOTP code (its step accepted once)
    /// or a recovery code (spent). The methods it proves, or 400 `invalid_mfa`.
    async fn check(
        &self,
        user: &UserRecord,
        factors: &[FactorRecord],
        answer: Answer,
        passkey: Option<&webauthn_rs::prelude::PasskeyAuthentication>,
        client: &ClientInfo,
        session_id: Option<&str>,
    ) -> Result<Amr, ApiError> {
        let state = self.state;
        let now = state.now();
        match answer {
            Answer::Passkey(assertion) => {
                let challenge = passkey.ok_or_else(|| {
                    ApiError::new(ErrorCode::InvalidMfa, "no passkey challenge goes with this answer")
                })?;
                let passkeys = crate::passkeys::only(factors);
                state.passkeys().verify(&user.id, &passkeys, assertion, challenge, client, session_id).await
            }
            Answer::Code(code) => {
                for factor in factors.iter().filter(|f| f.kind == KIND_TOTP) {
                    let totp = self.open_totp(factor, &user.email)?;
                    let Some(step) = totp.check(code.trim(), now.max(0) as u64) else { continue };
                    // Once per step, across every instance: a replayed code finds its step taken.
                    if state.store.use_totp_step(&factor.id, step as i64, now).await? {
                        return Ok(Amr::of(&[AuthMethod::Otp]));
                    }
                    return Err(invalid_mfa());
                }
                Err(invalid_mfa())
            }
            Answer::Recovery(code) => {
                let (uid, sid) = (Some(user.id.clone()), session_id.map(str::to_owned));
                let event = client.event(AuditKind::RecoveryCodeUsed, uid, sid, None, now);
                if state.store.spend_recovery_code(&user.id, &recovery_hash(&code), &event).await? {
                    state.recorded(&event);
                    let left = state.store.recovery_codes_left(&user.id).await?;
                    tracing::info!(user_id = %user.id, left, "recovery code used");
                    return Ok(Amr::of(&[AuthMethod::Otp]));
                }
                Err(invalid_mfa())
            }
        }
    }

    /// The second step of a login whose password was right: stores the pending login and
    /// returns the challenge.
    pub async fn begin_login(
        &self,
        user: &UserRecord,
        delivery: Delivery,
        known_device: bool,
        failure_key: String,
        factors: &[FactorRecord],
    ) -> Result<MfaChallenge, ApiError> {
        let now = self.state.now();
        let token = MfaToken::generate();
        let passkeys = crate::passkeys::only(factors);
        let (webauthn, passkey) = if passkeys.is_empty() || !self.state.passkeys().enabled() {
            (None, None)
        } else {
            let (options, challenge) = self.state.passkeys().challenge(&passkeys)?;
            (Some(options), Some(challenge))
        };
        let pending = PendingLogin { delivery, known_device, failure_key, passkey };
        let record = MfaChallengeRecord {
            token: token.hash(),
            user_id: user.id.clone(),
            data: serde_json::to_string(&pending).map_err(|e| ApiError::Internal(e.into()))?,
            attempts: 0,
            created_at: now,
            expires_at: now + MFA_TOKEN_TTL,
        };
        self.state.store.create_mfa_challenge(&record).await?;
        let mut methods = Vec::new();
        if factors.iter().any(|f| f.kind == KIND_TOTP) {
            methods.push(MfaMethod::Totp);
        }
        if webauthn.is_some() {
            methods.push(MfaMethod::Webauthn);
        }
        methods.push(MfaMethod::RecoveryCode);
        Ok(MfaChallenge {
            mfa_required: true,
            mfa_token: token.expose().to_owned(),
            methods,
            expires_in: MFA_TOKEN_TTL,
            webauthn,
        })
    }

    /// `POST /auth/mfa/verify`: completes a login with its second factor. The session starts
    /// with `amr` = the password, the factor and `mfa`, `auth_time` = now.
    pub async fn verify_login(
        &self,
        req: MfaVerifyRequest,
        client: &ClientInfo,
    ) -> Result<(Issued, UserRecord, Delivery), ApiError> {
        let state = self.state;
        let answer = one_answer(req.code, req.recovery_code, req.webauthn)?;
        let token = MfaToken::parse(&req.mfa_token).ok_or_else(invalid_mfa)?;
        state.limits.check(crate::ratelimit::Rule::LoginIp, &client.rate_key()).await?;
        let now = state.now();
        let challenge =
            state.store.attempt_mfa_challenge(&token.hash(), now, MAX_MFA_ATTEMPTS).await?.ok_or_else(invalid_mfa)?;
        let pending: PendingLogin = serde_json::from_str(&challenge.data).map_err(|e| ApiError::Internal(e.into()))?;
        state.limits.check_backoff(&pending.failure_key).await?;
        let user = state.store.user_by_id(&challenge.user_id).await?.ok_or_else(invalid_mfa)?;
        let factors = self.active(&user.id).await?;
        let proved = match self.check(&user, &factors, answer, pending.passkey.as_ref(), client, None).await {
            Ok(proved) => proved,
            Err(e) => {
                state.limits.record_failure(&pending.failure_key).await?;
                metrics::counter!("keycard_mfa_total", "outcome" => "failure").increment(1);
                let detail = Some(format!("login, attempt {}", challenge.attempts));
                state.audit(client.event(AuditKind::MfaFailed, Some(user.id.clone()), None, detail, now)).await;
                return Err(e);
            }
        };
        // The one answer that deletes the challenge completes the login; a concurrent second
        // answer (another right code) finds it gone.
        if !state.store.finish_mfa_challenge(&token.hash()).await? {
            return Err(invalid_mfa());
        }
        state.limits.reset_failures(&pending.failure_key).await?;
        metrics::counter!("keycard_mfa_total", "outcome" => "success").increment(1);
        state.audit(client.event(AuditKind::MfaVerified, Some(user.id.clone()), None, Some("login".into()), now)).await;
        let amr = Amr::of(&[AuthMethod::Pwd, AuthMethod::Mfa]).union(proved);
        let detail = (!pending.known_device).then(|| keycard_store::NEW_DEVICE_DETAIL.to_owned());
        let issued = state.sessions().start(&user, client, detail, amr, now).await?;
        metrics::counter!("keycard_logins_total", "outcome" => "success").increment(1);
        Ok((issued, user, pending.delivery))
    }

    /// `POST /auth/step-up`: proves the user again on the caller's session. An account with a
    /// factor answers with it (the session's `amr` gains `mfa`); one without, with its password.
    pub async fn step_up(
        &self,
        auth: &Authenticated,
        client: &ClientInfo,
        req: StepUpRequest,
    ) -> Result<StepUpResponse, ApiError> {
        let state = self.state;
        let factors = self.active(&auth.user.id).await?;
        let sid = auth.claims.sid.as_str();
        let amr = if factors.is_empty() {
            if req.code.is_some() || req.recovery_code.is_some() || req.webauthn.is_some() {
                return Err(ApiError::bad_request("this account has no second factor: step up with its password"));
            }
            let password = req.password.ok_or_else(|| ApiError::bad_request("password is required"))?;
            state.sessions().confirm_password(auth, client, password).await?;
            Amr::of(&[AuthMethod::Pwd])
        } else {
            let passkey = match (&req.passkey_token, &req.webauthn) {
                (Some(token), Some(_)) => Some(state.passkeys().take_step_up(token, &auth.user.id).await?),
                (None, Some(_)) => return Err(ApiError::bad_request("webauthn needs its passkey_token")),
                (Some(_), None) => return Err(ApiError::bad_request("passkey_token needs its webauthn answer")),
                (None, None) => None,
            };
            let answer = one_answer(req.code, req.recovery_code, req.webauthn)?;
            if let Some(password) = req.password {
                state.sessions().confirm_password(auth, client, password).await?;
            }
            let proved = self.check_throttled(auth, client, &factors, answer, passkey.as_ref()).await?;
            auth.claims.amr.with(AuthMethod::Pwd).with(AuthMethod::Mfa).union(proved)
        };
        let now = state.now();
        if !state.store.set_session_auth(&auth.user.id, sid, amr, now).await? {
            return Err(ApiError::new(ErrorCode::InvalidToken, "the session has ended"));
        }
        let detail = Some(format!("step-up: {}", amr.to_names()));
        state
            .audit(client.event(AuditKind::MfaVerified, Some(auth.user.id.clone()), Some(sid.into()), detail, now))
            .await;
        let claims = crate::issue::claims_for(
            state,
            &auth.user.id,
            sid,
            auth.claims.email_verified.unwrap_or(false),
            amr,
            now,
            now,
        );
        let bound = auth.claims.cnf.is_some();
        let claims = keycard_core::claims::AccessClaims { cnf: auth.claims.cnf.clone(), ..claims };
        let access_token = state.sign(&claims).await?;
        let token_type = crate::dpop::token_type(bound).into();
        Ok(StepUpResponse { access_token, token_type, expires_in: state.config.access_ttl })
    }

    /// A code on a signed-in session (step-up, enrolment): throttled and audited like the
    /// password checks of `confirm_password`.
    async fn check_throttled(
        &self,
        auth: &Authenticated,
        client: &ClientInfo,
        factors: &[FactorRecord],
        answer: Answer,
        passkey: Option<&webauthn_rs::prelude::PasskeyAuthentication>,
    ) -> Result<Amr, ApiError> {
        let state = self.state;
        let (user_key, ip_key) =
            (format!("pwcheck:user:{}", auth.user.id), format!("pwcheck:ip:{}", client.rate_key()));
        state.limits.check_backoff(&user_key).await?;
        state.limits.check_backoff(&ip_key).await?;
        state.limits.check(crate::ratelimit::Rule::PasswordCheckUser, &auth.user.id).await?;
        match self.check(&auth.user, factors, answer, passkey, client, Some(&auth.claims.sid)).await {
            Ok(proved) => {
                state.limits.reset_failures(&user_key).await?;
                Ok(proved)
            }
            Err(e) => {
                state.limits.record_failure(&user_key).await?;
                state.limits.record_failure(&ip_key).await?;
                metrics::counter!("keycard_mfa_total", "outcome" => "failure").increment(1);
                let (uid, sid) = (Some(auth.user.id.clone()), Some(auth.claims.sid.clone()));
                state.audit(client.event(AuditKind::MfaFailed, uid, sid, Some("signed in".into()), state.now())).await;
                Err(e)
            }
        }
    }

    /// The rule of keycard's sensitive routes. On an account with a second factor the caller's
    /// token must carry `mfa` and an `auth_time` within `step_up_max_age`. On one without, a
    /// password confirmed by this request is enough (`password_confirmed`), else `auth_time`
    /// must be recent. Otherwise 401 `insufficient_user_authentication` (RFC 9470).
    pub async fn require_recent(&self, auth: &Authenticated, password_confirmed: bool) -> Result<(), ApiError> {
        let has_factor = !self.active(&auth.user.id).await?.is_empty();
        let max_age = self.state.config.step_up_max_age;
        let recent = auth.claims.auth_time.is_some_and(|t| self.state.now() - t <= max_age);
        let satisfied =
            if has_factor { recent && auth.claims.amr.contains(AuthMethod::Mfa) } else { password_confirmed || recent };
        if satisfied { Ok(()) } else { Err(ApiError::StepUp { max_age, second_factor: has_factor }) }
    }

    /// `GET /auth/mfa`.
    pub async fn list(&self, user_id: &str) -> Result<FactorList, ApiError> {
        let factors = self
            .active(user_id)
            .await?
            .into_iter()
            .map(|f| {
                let passkey = crate::passkeys::is_passkey(&f);
                FactorInfo {
                    kind: if passkey { FactorKind::Passkey } else { FactorKind::Totp },
                    backed_up: if passkey { crate::passkeys::backed_up(&f) } else { None },
                    created_at: timestamp(f.confirmed_at.unwrap_or(f.created_at)),
                    last_used_at: f.last_used_at.map(timestamp),
                    id: f.id,
                    name: f.name,
                }
            })
            .collect();
        let recovery_codes_left = self.state.store.recovery_codes_left(user_id).await?;
        Ok(FactorList { factors, recovery_codes_left })
    }

    /// `POST /auth/mfa/totp`: a new pending TOTP factor (replacing a pending one). Needs a
    /// recent sign-in: a stolen session must not add a factor the owner does not have.
    pub async fn begin_totp(&self, auth: &Authenticated) -> Result<TotpEnrollment, ApiError> {
        self.require_recent(auth, false).await?;
        let state = self.state;
        let id = uuid::Uuid::new_v4().to_string();
        let mut secret = vec![0u8; TOTP_SECRET_BYTES];
        getrandom::fill(&mut secret).map_err(|e| ApiError::Internal(anyhow::anyhow!("no OS randomness: {e}")))?;
        let totp = totp(secret.clone(), &auth.user.email, &state.config.totp_issuer)?;
        let otpauth_uri = totp.to_url().map_err(|e| ApiError::Internal(anyhow::anyhow!("otpauth URI: {e}")))?;
        let factor = FactorRecord {
            id: id.clone(),
            user_id: auth.user.id.clone(),
            kind: KIND_TOTP.into(),
            name: "Authenticator app".into(),
            secret: state.master_key().seal(&id, SEAL_ALG, &secret)?,
            created_at: state.now(),
            confirmed_at: None,
            last_used_at: None,
            last_step: None,
        };
        state.store.add_factor(&factor).await?;
        Ok(TotpEnrollment {
            factor_id: id,
            secret: totp.secret().to_base32(),
            qr_code: qr_data_url(&otpauth_uri)?,
            otpauth_uri,
        })
    }

    /// `POST /auth/mfa/totp/confirm`: the first code activates the factor; the account's first
    /// factor also gets its recovery codes, returned this once.
    pub async fn confirm_totp(
        &self,
        auth: &Authenticated,
        client: &ClientInfo,
        req: TotpConfirmRequest,
    ) -> Result<TotpConfirmed, ApiError> {
        let state = self.state;
        let factor = state
            .store
            .factors(&auth.user.id)
            .await?
            .into_iter()
            .find(|f| f.id == req.factor_id && f.confirmed_at.is_none())
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such pending factor"))?;
        let totp = self.open_totp(&factor, &auth.user.email)?;
        let now = state.now();
        let Some(step) = totp.check(req.code.trim(), now.max(0) as u64) else {
            let (uid, sid) = (Some(auth.user.id.clone()), Some(auth.claims.sid.clone()));
            state.audit(client.event(AuditKind::MfaFailed, uid, sid, Some("enrolment".into()), now)).await;
            return Err(invalid_mfa());
        };
        let (codes, hashes) = new_recovery_codes()?;
        let detail = Some(format!("totp {}", factor.id));
        let event = client.event(
            AuditKind::MfaEnrolled,
            Some(auth.user.id.clone()),
            Some(auth.claims.sid.clone()),
            detail,
            now,
        );
        let confirmation = FactorConfirmation {
            user_id: auth.user.id.clone(),
            factor_id: factor.id.clone(),
            step: step as i64,
            now,
            recovery_codes: hashes,
            audit: event.clone(),
        };
        let recovery_codes = match state.store.confirm_factor(&confirmation).await? {
            FactorConfirmed::NotPending => return Err(ApiError::new(ErrorCode::NotFound, "no such pending factor")),
            FactorConfirmed::WithRecoveryCodes => Some(codes),
            FactorConfirmed::Active => None,
        };
        state.recorded(&event);
        Ok(TotpConfirmed { factor_id: factor.id, recovery_codes })
    }

    /// `DELETE /auth/mfa/factors/{id}`: needs a recent sign-in with a second factor.
    pub async fn remove(&self, auth: &Authenticated, client: &ClientInfo, factor_id: &str) -> Result<(), ApiError> {
        let state = self.state;
        let factors = state.store.factors(&auth.user.id).await?;
        let factor = factors.iter().find(|f| f.id == factor_id);
        // A pending factor proves nothing yet: dropping it needs no step-up.
        if factor.is_none_or(|f| f.confirmed_at.is_some()) {
            self.require_recent(auth, false).await?;
        }
        let passkey = factor.is_some_and(crate::passkeys::is_passkey);
        let detail = Some(format!("{} {factor_id}", if passkey { "passkey" } else { "factor" }));
        let event = client.event(
            if passkey { AuditKind::PasskeyRemoved } else { AuditKind::MfaRemoved },
            Some(auth.user.id.clone()),
            Some(auth.claims.sid.clone()),
            detail,
            state.now(),
        );
        if !state.store.remove_factor(&auth.user.id, factor_id, &event).await? {
            return Err(ApiError::new(ErrorCode::NotFound, "no such factor"));
        }
        state.recorded(&event);
        Ok(())
    }

    /// `PATCH /auth/mfa/factors/{id}`: a new name for one of the caller's factors (no step-up: a
    /// name changes nothing a sign-in checks).
    pub async fn rename(&self, auth: &Authenticated, factor_id: &str, name: &str) -> Result<(), ApiError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 64 {
            return Err(ApiError::bad_request("name: 1 to 64 characters"));
        }
        if !self.state.store.rename_factor(&auth.user.id, factor_id, name).await? {
            return Err(ApiError::new(ErrorCode::NotFound, "no such factor"));
        }
        Ok(())
    }

    /// `POST /auth/mfa/recovery-codes`: ten new codes replace every earlier one; needs a recent
    /// sign-in with a second factor.
    pub async fn regenerate_codes(&self, auth: &Authenticated, client: &ClientInfo) -> Result<RecoveryCodes, ApiError> {
        self.require_recent(auth, false).await?;
        let state = self.state;
        let (codes, hashes) = new_recovery_codes()?;
        let event = client.event(
            AuditKind::RecoveryCodesRegenerated,
            Some(auth.user.id.clone()),
            Some(auth.claims.sid.clone()),
            None,
            state.now(),
        );
        if !state.store.replace_recovery_codes(&auth.user.id, &hashes, &event).await? {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                "recovery codes come with a second factor: enrol one first",
            ));
        }
        state.recorded(&event);
        Ok(RecoveryCodes { recovery_codes: codes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_are_100_bits_in_four_groups_and_match_however_typed() {
        let code = recovery_code().unwrap();
        assert_eq!(code.len(), 23);
        assert_eq!(code.split('-').map(str::len).collect::<Vec<_>>(), [5, 5, 5, 5]);
        assert!(code.chars().all(|c| c == '-' || RECOVERY_ALPHABET.contains(&(c as u8))));
        let typed = code.replace('-', " ").to_uppercase();
        assert_eq!(recovery_hash(&typed), recovery_hash(&code));
        assert_ne!(recovery_hash(&recovery_code().unwrap()), recovery_hash(&code));
    }

    #[test]
    fn a_totp_code_matches_its_step_and_the_neighbours_only() {
        let totp = totp(vec![7; TOTP_SECRET_BYTES], "a@example.com", "keycard").unwrap();
        let now = 1_700_000_000u64;
        let code = totp.generate(now).to_string();
        assert_eq!(totp.check(&code, now), Some(now / 30));
        assert_eq!(totp.check(&code, now + 30), Some(now / 30), "one step of skew");
        assert_eq!(totp.check(&code, now + 90), None);
        assert!(totp.to_url().unwrap().starts_with("otpauth://totp/keycard:a%40example.com?"));
    }
}
