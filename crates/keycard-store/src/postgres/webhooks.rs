//! Webhook endpoints and deliveries on PostgreSQL (see [`crate::webhook`]). The trait methods in
//! `queries` call these; the delivery rows of an event are inserted by the statement that appends
//! it (`rotate::append_audit`).

use sqlx::AssertSqlSafe;

use super::PgStore;
use crate::webhook::*;
use crate::{Result, StoreError};

/// Appends an audit event (`$1`…`$7`) and queues message `$8` of type `$9` with payload `$10`
/// to every endpoint subscribed to it (`*`: every event), in one statement.
pub(super) const APPEND_AUDIT_AND_QUEUE: &str = "WITH appended AS (
         INSERT INTO audit_events (at, kind, user_id, session_id, ip, user_agent, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING at
     )
     INSERT INTO webhook_deliveries (id, endpoint_id, event_type, payload, created_at, next_attempt_at)
     SELECT $8, e.id, $9, $10, a.at, a.at FROM webhook_endpoints e CROSS JOIN appended a
     WHERE e.events = '*' OR position(' ' || $9 || ' ' IN ' ' || e.events || ' ') > 0";

/// The columns of a [`WebhookDelivery`], on `d` joined with its endpoint `e`.
const DELIVERY_COLS: &str = "d.id, d.endpoint_id, e.url, e.secret, d.event_type, d.payload, d.created_at, d.state, \
     d.attempts, d.next_attempt_at, d.last_error, d.delivered_at";
type DeliveryRow =
    (String, String, String, Vec<u8>, String, String, i64, String, i64, i64, Option<String>, Option<i64>);

fn delivery(row: DeliveryRow) -> Result<WebhookDelivery> {
    let (id, endpoint_id, url, sealed_secret, event_type, payload, created_at, state, attempts, next, error, at) = row;
    Ok(WebhookDelivery {
        id,
        endpoint_id,
        url,
        sealed_secret,
        event_type,
        payload,
        created_at,
        state: DeliveryState::parse(&state)
            .ok_or_else(|| StoreError::Internal(format!("unknown webhook delivery state {state}")))?,
        attempts,
        next_attempt_at: next,
        last_error: error,
        delivered_at: at,
    })
}

type EndpointRow = (String, String, String, Vec<u8>, i64, i64, i64, i64, i64, Option<String>, Option<i64>);

impl PgStore {
    pub(super) async fn wh_add(&self, e: &NewWebhookEndpoint) -> Result<()> {
        sqlx::query("INSERT INTO webhook_endpoints (id, url, events, secret, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&e.id)
            .bind(&e.url)
            .bind(e.events_column())
            .bind(&e.sealed_secret)
            .bind(e.created_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(super) async fn wh_endpoints(&self) -> Result<Vec<WebhookEndpoint>> {
        let rows: Vec<EndpointRow> = sqlx::query_as(
            "SELECT e.id, e.url, e.events, e.secret, e.created_at,
                (SELECT count(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.state = 'pending'),
                (SELECT count(*) FROM webhook_deliveries d
                 WHERE d.endpoint_id = e.id AND d.state = 'pending' AND d.last_error IS NOT NULL),
                (SELECT count(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.state = 'delivered'),
                (SELECT count(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.state = 'failed'),
                (SELECT d.last_error FROM webhook_deliveries d
                 WHERE d.endpoint_id = e.id AND d.state <> 'delivered' AND d.last_error IS NOT NULL
                 ORDER BY d.created_at DESC, d.id DESC LIMIT 1),
                (SELECT min(d.next_attempt_at) FROM webhook_deliveries d
                 WHERE d.endpoint_id = e.id AND d.state = 'pending')
             FROM webhook_endpoints e ORDER BY e.created_at, e.id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(
                    id,
                    url,
                    events,
                    sealed_secret,
                    created_at,
                    pending,
                    failing,
                    delivered,
                    failed,
                    last_error,
                    next,
                )| {
                    WebhookEndpoint {
                        id,
                        url,
                        events: events.split(' ').map(str::to_owned).collect(),
                        sealed_secret,
                        created_at,
                        status: WebhookStatus {
                            pending,
                            failing,
                            delivered,
                            failed,
                            last_error,
                            next_attempt_at: next,
                        },
                    }
                },
            )
            .collect())
    }

    pub(super) async fn wh_remove(&self, id: &str) -> Result<bool> {
        // The deliveries go with it (ON DELETE CASCADE).
        let done = sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn wh_enqueue(&self, endpoint_id: &str, m: &WebhookMessage, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO webhook_deliveries (id, endpoint_id, event_type, payload, created_at, next_attempt_at)
             SELECT $1, e.id, $2, $3, $4, $4 FROM webhook_endpoints e WHERE e.id = $5",
        )
        .bind(&m.id)
        .bind(m.event.as_str())
        .bind(&m.payload)
        .bind(now)
        .bind(endpoint_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn wh_claim(&self, now: i64, lease_until: i64, limit: i64) -> Result<Vec<WebhookDelivery>> {
        // SKIP LOCKED: a delivery another instance is claiming right now is left to it; once that
        // claim commits, its lease makes the delivery not due, so it is not claimed twice.
        let rows: Vec<DeliveryRow> = sqlx::query_as(AssertSqlSafe(format!(
            "WITH claimed AS (
                 UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = $2
                 WHERE (endpoint_id, id) IN (
                     SELECT endpoint_id, id FROM webhook_deliveries WHERE state = 'pending' AND next_attempt_at <= $1
                     ORDER BY next_attempt_at, created_at, id LIMIT $3 FOR UPDATE SKIP LOCKED)
                 RETURNING *
             )
             SELECT {DELIVERY_COLS} FROM claimed d JOIN webhook_endpoints e ON e.id = d.endpoint_id"
        )))
        .bind(now)
        .bind(lease_until)
        .bind(limit.max(1))
        .fetch_all(&self.pool)
        .await?;
        let mut claimed = rows.into_iter().map(delivery).collect::<Result<Vec<_>>>()?;
        claimed.sort_by(|a, b| (a.created_at, &a.id, &a.endpoint_id).cmp(&(b.created_at, &b.id, &b.endpoint_id)));
        Ok(claimed)
    }

    pub(super) async fn wh_delivered(&self, endpoint_id: &str, id: &str, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET state = 'delivered', delivered_at = $3
             WHERE endpoint_id = $1 AND id = $2 AND state = 'pending'",
        )
        .bind(endpoint_id)
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn wh_failed(
        &self,
        endpoint_id: &str,
        id: &str,
        error: &str,
        retry_at: Option<i64>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET last_error = $3,
                state = CASE WHEN $4::BIGINT IS NULL THEN 'failed' ELSE 'pending' END,
                next_attempt_at = COALESCE($4, next_attempt_at)
             WHERE endpoint_id = $1 AND id = $2 AND state = 'pending'",
        )
        .bind(endpoint_id)
        .bind(id)
        .bind(error)
        .bind(retry_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn wh_deliveries(&self, endpoint_id: Option<&str>, limit: i64) -> Result<Vec<WebhookDelivery>> {
        let rows: Vec<DeliveryRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLS} FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
             WHERE ($1::TEXT IS NULL OR d.endpoint_id = $1) ORDER BY d.created_at DESC, d.id DESC LIMIT $2"
        )))
        .bind(endpoint_id)
        .bind(if limit > 0 { limit } else { 100 })
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(delivery).collect()
    }
}
