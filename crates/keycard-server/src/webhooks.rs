//! Webhooks for security events: the background sender of the store's webhook deliveries,
//! Standard Webhooks signing, and the endpoint operations behind `keycard webhooks`.
//!
//! An event of a webhook kind queues its deliveries in the transaction that appends it (see
//! [`keycard_store::webhook`]); the request that caused it only wakes the sender, never waits
//! for it. The sender spawned in `startup.rs` claims due deliveries with a lease
//! ([`Store::claim_webhooks`]: `FOR UPDATE SKIP LOCKED` on PostgreSQL, so with several
//! instances each delivery is attempted by one at a time) and POSTs them concurrently, each
//! attempt bounded by `webhook_timeout`, redirects not followed. A 2xx marks the delivery
//! delivered; anything else is retried with exponential backoff and jitter ([`retry_delay`])
//! until `webhook_max_attempts`. The `webhook-id` is the delivery's stored id, the same on every
//! attempt (and after a restart), so receivers deduplicate: delivery is at least once.
//!
//! Signing follows Standard Webhooks: `webhook-signature: v1,<base64 HMAC-SHA256(secret,
//! "{id}.{timestamp}.{body}")>` with aws-lc-rs's HMAC. The secret is random, shown once as
//! `whsec_<base64>` at `add`, and stored sealed under the master key (keycard must sign with
//! it, so it cannot be hashed). Logs carry ids, types, status codes and hosts, never a secret.

use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keycard_store::{NewWebhookEndpoint, Store, WebhookDelivery, WebhookEvent, WebhookMessage};
use tokio::task::JoinHandle;

use crate::keys::MasterKey;
use crate::settings::Secret;
use crate::state::AppState;

/// The prefix of a webhook secret as operators and receivers see it.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a secret.
const SECRET_BYTES: usize = 32;
/// What the secret is sealed as (the sealing binds the endpoint id and this as associated data).
const SEAL_ALG: &str = "webhook-secret";
/// How many deliveries one claim takes.
pub const BATCH: i64 = 20;
/// How often the sender looks for due deliveries when nothing wakes it (deliveries queued by
/// another instance or `keycard webhooks test`, retries coming due).
pub const POLL_EVERY: Duration = Duration::from_secs(5);
/// The longest delay between two attempts.
pub const RETRY_CAP: i64 = 3600;

/// The webhook settings, resolved ([`crate::state::RuntimeConfig::webhooks`]).
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// The longest one attempt may take.
    pub timeout: Duration,
    /// Failed attempts after which a delivery is given up on.
    pub max_attempts: i64,
    /// The first retry's delay, seconds.
    pub retry_base: i64,
}

impl WebhookConfig {
    /// How long a claim keeps its deliveries from other senders: the batch is attempted
    /// concurrently, each attempt bounded by the timeout, plus a margin for recording results.
    pub fn lease(&self) -> i64 {
        60 + 2 * i64::try_from(self.timeout.as_secs()).unwrap_or(60)
    }
}

/// The delay, in seconds, before the attempt after failed attempt number `attempts` (1, 2, …):
/// `retry_base` doubling each time up to [`RETRY_CAP`] (or `retry_base` if larger), of which the
/// upper half is random (`jitter` in `[0, 1]`), so the retries of many deliveries that failed
/// together (a receiver outage) spread out instead of arriving together. At least one second.
pub fn retry_delay(config: &WebhookConfig, attempts: i64, jitter: f64) -> i64 {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let full = config.retry_base.saturating_mul(1i64 << doublings).min(RETRY_CAP.max(config.retry_base));
    let half = full as f64 / 2.0;
    ((half + half * jitter.clamp(0.0, 1.0)).ceil() as i64).max(1)
}

/// A random number in `[0, 1]` from the OS.
fn jitter() -> f64 {
    let mut bytes = [0u8; 4];
    if getrandom::fill(&mut bytes).is_err() {
        return 1.0;
    }
    f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX)
}

/// The Standard Webhooks signature of one attempt: `v1,<base64 HMAC-SHA256>` over
/// `{id}.{timestamp}.{body}`.
pub fn sign(secret: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let tag = hmac::sign(&key, format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", STANDARD.encode(tag.as_ref()))
}

/// Checks an endpoint URL: absolute `http://` or `https://` with a host.
pub fn check_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("webhook URL {url:?}: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("webhook URL {url:?}: only http:// and https:// URLs are allowed"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("webhook URL {url:?}: no host"));
    }
    Ok(parsed)
}

/// Adds an endpoint receiving `events` (empty: all) at `url`: a new random secret, sealed under
/// `master` in the store. Returns the endpoint's id and the secret as `whsec_<base64>`, to be
/// shown once.
pub async fn add_endpoint(
    store: &dyn Store,
    master: &MasterKey,
    url: &str,
    events: &[WebhookEvent],
    now: i64,
) -> anyhow::Result<(String, Secret)> {
    check_url(url).map_err(anyhow::Error::msg)?;
    let mut secret = [0u8; SECRET_BYTES];
    getrandom::fill(&mut secret).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    let id = format!("wh_{}", uuid::Uuid::new_v4().simple());
    let endpoint = NewWebhookEndpoint {
        id: id.clone(),
        url: url.to_owned(),
        events: events.to_vec(),
        sealed_secret: master.seal(&id, SEAL_ALG, &secret)?,
        created_at: now,
    };
    store.add_webhook_endpoint(&endpoint).await?;
    Ok((id, Secret::new(format!("{SECRET_PREFIX}{}", STANDARD.encode(secret)))))
}

/// Queues a `webhook.test` message to one endpoint; false when there is no such endpoint.
pub async fn send_test(store: &dyn Store, endpoint_id: &str, now: i64) -> anyhow::Result<bool> {
    let data = serde_json::json!({"endpoint_id": endpoint_id, "message": "a test of this endpoint from keycard"});
    let message = WebhookMessage::new(WebhookEvent::Test, now, data);
    Ok(store.enqueue_webhook(endpoint_id, &message, now).await?)
}

/// Spawns the sender: it delivers due webhooks until the task is aborted (with the server).
pub fn spawn_sender(state: AppState) -> JoinHandle<()> {
    tokio::spawn(async move {
        let config = state.config.webhooks.clone();
        let client = match reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("keycard-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
        {
            Ok(client) => client,
            Err(e) => {
                tracing::error!(error = %e, "the webhook sender cannot start: deliveries stay queued");
                return;
            }
        };
        loop {
            match deliver_due(&state, &config, &client).await {
                // A full batch: there may be more due at once.
                Ok(n) if n >= BATCH as usize => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not claim due webhook deliveries"),
            }
            tokio::select! {
                _ = state.webhook_wake.notified() => {}
                _ = tokio::time::sleep(POLL_EVERY) => {}
            }
        }
    })
}

/// Claims one batch of due deliveries and attempts them concurrently; returns how many.
async fn deliver_due(
    state: &AppState,
    config: &WebhookConfig,
    client: &reqwest::Client,
) -> keycard_store::Result<usize> {
    let now = state.now();
    let claimed = state.store.claim_webhooks(now, now + config.lease(), BATCH).await?;
    let count = claimed.len();
    let mut attempts = tokio::task::JoinSet::new();
    for delivery in claimed {
        let (state, config, client) = (state.clone(), config.clone(), client.clone());
        attempts.spawn(async move { deliver_one(&state, &config, &client, delivery).await });
    }
    while attempts.join_next().await.is_some() {}
    Ok(count)
}

/// Attempts one delivery and records the outcome.
async fn deliver_one(state: &AppState, config: &WebhookConfig, client: &reqwest::Client, d: WebhookDelivery) {
    let result = match state.master_key().open(&d.endpoint_id, SEAL_ALG, &d.sealed_secret) {
        Ok(secret) => {
            let attempt = post(client, &d, &secret);
            // reqwest's timeout bounds the attempt already; this bounds it whatever happens.
            match tokio::time::timeout(config.timeout + Duration::from_secs(1), attempt).await {
                Ok(result) => result,
                Err(_) => Err("timed out".to_owned()),
            }
        }
        Err(_) => Err("the endpoint's secret does not open with this master key".to_owned()),
    };
    let host = reqwest::Url::parse(&d.url).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default();
    let recorded = match result {
        Ok(()) => {
            metrics::counter!("keycard_webhooks_delivered_total").increment(1);
            tracing::info!(id = %d.id, endpoint = %d.endpoint_id, host = %host, event = %d.event_type, attempts = d.attempts, "webhook delivered");
            state.store.webhook_delivered(&d.endpoint_id, &d.id, state.now()).await
        }
        Err(error) => {
            let gave_up = d.attempts >= config.max_attempts;
            let retry_at = (!gave_up).then(|| state.now() + retry_delay(config, d.attempts, jitter()));
            metrics::counter!("keycard_webhooks_failed_total", "final" => if gave_up { "true" } else { "false" })
                .increment(1);
            tracing::warn!(
                id = %d.id,
                endpoint = %d.endpoint_id,
                host = %host,
                event = %d.event_type,
                attempts = d.attempts,
                error = %error,
                state = if gave_up { "failed" } else { "pending" },
                retry_at,
                "webhook delivery failed"
            );
            state.store.webhook_failed(&d.endpoint_id, &d.id, &error, retry_at).await
        }
    };
    if let Err(e) = recorded {
        // The lease runs out and the delivery is attempted again (same id: receivers dedupe).
        tracing::warn!(id = %d.id, error = %e, "could not record the webhook delivery attempt");
    }
}

/// One signed POST; `Err` with what to store as `last_error` unless the answer is a 2xx.
async fn post(client: &reqwest::Client, d: &WebhookDelivery, secret: &[u8]) -> Result<(), String> {
    // The attempt's time by the system clock: receivers compare it with their own clock (the
    // Standard Webhooks libraries refuse one more than 5 minutes off), whatever clock schedules.
    let timestamp = keycard_core::now_unix();
    let response = client
        .post(&d.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", &d.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", sign(secret, &d.id, timestamp, &d.payload))
        .body(d.payload.clone())
        .send()
        .await
        .map_err(|e| {
            let what = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "could not connect"
            } else {
                "request failed"
            };
            format!("{what}: {e}").chars().take(500).collect::<String>()
        })?;
    let status = response.status();
    if status.is_success() { Ok(()) } else { Err(format!("HTTP {}", status.as_u16())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(base: i64) -> WebhookConfig {
        WebhookConfig { timeout: Duration::from_secs(10), max_attempts: 10, retry_base: base }
    }

    #[test]
    fn retries_back_off_exponentially_with_jitter_in_the_upper_half() {
        let c = config(30);
        let low: Vec<i64> = (1..=9).map(|n| retry_delay(&c, n, 0.0)).collect();
        let high: Vec<i64> = (1..=9).map(|n| retry_delay(&c, n, 1.0)).collect();
        assert_eq!(high, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(low, [15, 30, 60, 120, 240, 480, 960, 1800, 1800]);
        assert_eq!(retry_delay(&config(1), 1, 0.0), 1, "at least a second");
        assert_eq!(retry_delay(&c, 10_000, 1.0), RETRY_CAP);
    }

    #[test]
    fn the_signature_is_standard_webhooks_v1() {
        // The example of the Standard Webhooks specification's reference implementations.
        let secret = STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn only_http_and_https_urls_with_a_host_are_accepted() {
        assert!(check_url("https://hooks.example.com/keycard").is_ok());
        assert!(check_url("http://127.0.0.1:9000/").is_ok());
        for bad in ["ftp://example.com/", "file:///etc/passwd", "example.com/hook", "javascript:alert(1)", "http://"] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
