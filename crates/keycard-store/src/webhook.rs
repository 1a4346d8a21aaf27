//! Webhooks for security events: which audit events go out, their payload, and the records of
//! endpoints and deliveries.
//!
//! An audit event of a webhook kind ([`WebhookEvent::of`]) is written together with one
//! delivery row per endpoint subscribed to it, by the same statement or transaction that
//! appends the event (each backend's `append_audit` helper): the event and its deliveries are
//! committed together or not at all. The server's sender claims due deliveries with a lease,
//! signs them (Standard Webhooks) and POSTs them; see `keycard-server/src/webhooks.rs`.
//!
//! To send another event: add a variant to [`WebhookEvent`] and the audit kind it comes from to
//! [`WebhookEvent::of`]; nothing else changes. Factor changes are sent from the audit kinds the
//! second-factor flows record (`mfa_enrolled`, `mfa_removed`, `passkey_added`,
//! `passkey_removed`, `recovery_codes_regenerated`, `recovery_code_used`), whichever code writes
//! them.

use keycard_core::events::AuditKind;

use crate::model::AuditEvent;

/// The `detail` of a `login` event from a device the account did not know (no valid device
/// token): such a login is sent as [`WebhookEvent::NewDeviceLogin`].
pub const NEW_DEVICE_DETAIL: &str = "new device";

/// What a webhook announces: its payload's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebhookEvent {
    /// A used refresh token came back: its session was revoked (the verdict is in the data).
    RefreshTokenReused,
    /// The user changed their password.
    PasswordChanged,
    /// A password was reset with a mailed token.
    PasswordReset,
    /// The user deleted their account.
    AccountDeleted,
    /// A session was revoked by its user, an operator or a binding mismatch.
    SessionRevoked,
    /// A password login from a device the account did not know.
    NewDeviceLogin,
    /// A second factor (authenticator app) was enrolled.
    MfaEnrolled,
    /// A second factor was removed.
    MfaRemoved,
    /// A passkey was registered.
    PasskeyAdded,
    /// A passkey was deleted.
    PasskeyRemoved,
    /// The recovery codes were replaced.
    RecoveryCodesRegenerated,
    /// A recovery code was spent (someone got in without the other factor).
    RecoveryCodeUsed,
    /// `keycard webhooks test`: to one endpoint, whatever it subscribes to.
    Test,
}

impl WebhookEvent {
    /// Every event an endpoint can subscribe to (not [`WebhookEvent::Test`]).
    pub const ALL: &'static [WebhookEvent] = &[
        Self::RefreshTokenReused,
        Self::PasswordChanged,
        Self::PasswordReset,
        Self::AccountDeleted,
        Self::SessionRevoked,
        Self::NewDeviceLogin,
        Self::MfaEnrolled,
        Self::MfaRemoved,
        Self::PasskeyAdded,
        Self::PasskeyRemoved,
        Self::RecoveryCodesRegenerated,
        Self::RecoveryCodeUsed,
    ];

    /// The payload's `type`, and what `events` lists.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::PasswordChanged => "password_changed",
            Self::PasswordReset => "password_reset",
            Self::AccountDeleted => "account_deleted",
            Self::SessionRevoked => "session_revoked",
            Self::NewDeviceLogin => "new_device_login",
            Self::MfaEnrolled => "mfa_enrolled",
            Self::MfaRemoved => "mfa_removed",
            Self::PasskeyAdded => "passkey_added",
            Self::PasskeyRemoved => "passkey_removed",
            Self::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            Self::RecoveryCodeUsed => "recovery_code_used",
            Self::Test => "webhook.test",
        }
    }

    /// The subscribable event named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|e| e.as_str() == name)
    }

    /// The webhook an audit event sends, if any: the one place that decides which events go out.
    pub fn of(event: &AuditEvent) -> Option<Self> {
        Some(match event.kind {
            AuditKind::RefreshTokenReused => Self::RefreshTokenReused,
            AuditKind::PasswordChanged => Self::PasswordChanged,
            AuditKind::PasswordReset => Self::PasswordReset,
            AuditKind::AccountDeleted => Self::AccountDeleted,
            AuditKind::SessionRevoked => Self::SessionRevoked,
            AuditKind::Login if event.detail.as_deref() == Some(NEW_DEVICE_DETAIL) => Self::NewDeviceLogin,
            AuditKind::MfaEnrolled => Self::MfaEnrolled,
            AuditKind::MfaRemoved => Self::MfaRemoved,
            AuditKind::PasskeyAdded => Self::PasskeyAdded,
            AuditKind::PasskeyRemoved => Self::PasskeyRemoved,
            AuditKind::RecoveryCodesRegenerated => Self::RecoveryCodesRegenerated,
            AuditKind::RecoveryCodeUsed => Self::RecoveryCodeUsed,
            _ => return None,
        })
    }
}

/// One event as it goes out: the same id and payload to every endpoint, on every attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookMessage {
    /// The `webhook-id` (`msg_<uuid>`): receivers deduplicate on it.
    pub id: String,
    /// What it announces.
    pub event: WebhookEvent,
    /// The JSON body: `{"type", "timestamp", "data"}`.
    pub payload: String,
}

impl WebhookMessage {
    /// The message an audit event sends, if it is of a webhook kind.
    pub fn of(event: &AuditEvent) -> Option<Self> {
        let kind = WebhookEvent::of(event)?;
        // The detail is JSON for some kinds (a reuse's verdict and presenters): kept as JSON.
        let detail = event.detail.as_deref().map(|d| match serde_json::from_str::<serde_json::Value>(d) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            _ => serde_json::Value::String(d.to_owned()),
        });
        let mut data = serde_json::json!({
            "user_id": event.user_id,
            "session_id": event.session_id,
            "ip": event.ip,
            "user_agent": event.user_agent,
            "occurred_at": event.at,
        });
        if let Some(verdict) = detail.as_ref().and_then(|d| d.get("verdict")).cloned() {
            data["verdict"] = verdict;
        }
        data["detail"] = detail.unwrap_or(serde_json::Value::Null);
        Some(Self::new(kind, event.at, data))
    }

    /// A message of `event` at `at` carrying `data`, with a new id.
    pub fn new(event: WebhookEvent, at: i64, data: serde_json::Value) -> Self {
        let timestamp = time::OffsetDateTime::from_unix_timestamp(at)
            .ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_else(|| at.to_string());
        let payload = serde_json::json!({"type": event.as_str(), "timestamp": timestamp, "data": data}).to_string();
        Self { id: format!("msg_{}", uuid::Uuid::new_v4().simple()), event, payload }
    }
}

/// An endpoint to add (`keycard webhooks add`).
#[derive(Clone)]
pub struct NewWebhookEndpoint {
    /// Its id (`wh_<uuid>`).
    pub id: String,
    /// Where deliveries are POSTed (http or https).
    pub url: String,
    /// The events it receives; empty means all of [`WebhookEvent::ALL`].
    pub events: Vec<WebhookEvent>,
    /// The signing secret, sealed by the server under the master key (never stored in clear).
    pub sealed_secret: Vec<u8>,
    /// When it was added.
    pub created_at: i64,
}

impl NewWebhookEndpoint {
    /// The stored `events` column: names separated by spaces, `*` for all.
    pub fn events_column(&self) -> String {
        if self.events.is_empty() {
            "*".into()
        } else {
            self.events.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(" ")
        }
    }
}

impl std::fmt::Debug for NewWebhookEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewWebhookEndpoint").field("id", &self.id).field("url", &self.url).finish_non_exhaustive()
    }
}

/// A configured endpoint with its delivery status.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// Its id.
    pub id: String,
    /// Where deliveries go.
    pub url: String,
    /// The event names it receives (`*`: all).
    pub events: Vec<String>,
    /// The sealed signing secret.
    pub sealed_secret: Vec<u8>,
    /// When it was added.
    pub created_at: i64,
    /// Its deliveries.
    pub status: WebhookStatus,
}

impl std::fmt::Debug for WebhookEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookEndpoint")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// How an endpoint's deliveries stand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookStatus {
    /// Deliveries waiting for a (first or further) attempt.
    pub pending: i64,
    /// Of those, the ones whose last attempt failed (retrying).
    pub failing: i64,
    /// Deliveries the endpoint accepted (2xx).
    pub delivered: i64,
    /// Deliveries given up on after `webhook_max_attempts`.
    pub failed: i64,
    /// The newest error of a delivery not delivered.
    pub last_error: Option<String>,
    /// The earliest time a pending delivery is due.
    pub next_attempt_at: Option<i64>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting for an attempt.
    Pending,
    /// Accepted by the endpoint.
    Delivered,
    /// Given up on.
    Failed,
}

impl DeliveryState {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    /// The state stored as `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed].into_iter().find(|s| s.as_str() == name)
    }
}

/// One message to one endpoint, as claimed for delivery or listed.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// The `webhook-id`.
    pub id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// The endpoint's URL.
    pub url: String,
    /// The endpoint's sealed secret.
    pub sealed_secret: Vec<u8>,
    /// The payload's `type`.
    pub event_type: String,
    /// The JSON body.
    pub payload: String,
    /// When the event happened.
    pub created_at: i64,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made (a claim counts as one).
    pub attempts: i64,
    /// When it is due (or, while claimed, when the lease ends).
    pub next_attempt_at: i64,
    /// The last failed attempt's error.
    pub last_error: Option<String>,
    /// When the endpoint accepted it.
    pub delivered_at: Option<i64>,
}

impl std::fmt::Debug for WebhookDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookDelivery")
            .field("id", &self.id)
            .field("endpoint_id", &self.endpoint_id)
            .field("event_type", &self.event_type)
            .field("state", &self.state)
            .field("attempts", &self.attempts)
            .field("next_attempt_at", &self.next_attempt_at)
            .field("last_error", &self.last_error)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_security_events_go_out_and_a_login_only_from_a_new_device() {
        let mut login = AuditEvent::new(AuditKind::Login, 1);
        assert_eq!(WebhookEvent::of(&login), None);
        login.detail = Some(NEW_DEVICE_DETAIL.into());
        assert_eq!(WebhookEvent::of(&login), Some(WebhookEvent::NewDeviceLogin));
        assert_eq!(WebhookEvent::of(&AuditEvent::new(AuditKind::Refresh, 1)), None);
        // Factor changes go out under their audit kind's name; a factor merely used does not.
        for kind in [
            AuditKind::MfaEnrolled,
            AuditKind::MfaRemoved,
            AuditKind::PasskeyAdded,
            AuditKind::PasskeyRemoved,
            AuditKind::RecoveryCodesRegenerated,
            AuditKind::RecoveryCodeUsed,
        ] {
            let sent = WebhookEvent::of(&AuditEvent::new(kind, 1)).map(WebhookEvent::as_str);
            assert_eq!(sent, Some(kind.as_str()));
        }
        for kind in [AuditKind::MfaVerified, AuditKind::MfaFailed, AuditKind::PasskeyCounterRegressed] {
            assert_eq!(WebhookEvent::of(&AuditEvent::new(kind, 1)), None, "{kind}");
        }
        for event in WebhookEvent::ALL {
            assert_eq!(WebhookEvent::parse(event.as_str()), Some(*event));
        }
        assert_eq!(WebhookEvent::parse("webhook.test"), None, "nobody subscribes to tests");
    }

    #[test]
    fn a_reuse_payload_carries_its_verdict_and_presenters_as_json() {
        let mut event = AuditEvent::new(AuditKind::RefreshTokenReused, 1_800_000_000);
        event.user_id = Some("u1".into());
        event.detail = Some(r#"{"verdict":"race","rotation":null}"#.into());
        let message = WebhookMessage::of(&event).unwrap();
        assert!(message.id.starts_with("msg_"));
        let payload: serde_json::Value = serde_json::from_str(&message.payload).unwrap();
        assert_eq!(payload["type"], "refresh_token_reused");
        assert_eq!(payload["timestamp"], "2027-01-15T08:00:00Z");
        assert_eq!(payload["data"]["verdict"], "race");
        assert_eq!(payload["data"]["detail"]["rotation"], serde_json::Value::Null);
        assert_eq!(payload["data"]["user_id"], "u1");
    }
}
