//! Webhook endpoints and deliveries on SQLite (see [`crate::webhook`]). The trait methods in
//! `queries` call these; [`queue_deliveries`] runs inside the job that appends the event.

use rusqlite::{Connection, Row, params};

use super::SqliteStore;
use super::writer::Done;
use crate::Result;
use crate::webhook::*;

/// One delivery per endpoint subscribed to the event `?2` (`*`: every event).
const QUEUE_DELIVERIES: &str =
    "INSERT INTO webhook_deliveries (id, endpoint_id, event_type, payload, created_at, next_attempt_at)
     SELECT ?1, e.id, ?2, ?3, ?4, ?4 FROM webhook_endpoints e
     WHERE e.events = '*' OR instr(' ' || e.events || ' ', ' ' || ?2 || ' ') > 0";

/// The columns of a [`WebhookDelivery`], on `d` joined with its endpoint `e`, in [`delivery`]'s order.
const DELIVERY_COLS: &str = "d.id, d.endpoint_id, e.url, e.secret, d.event_type, d.payload, d.created_at, d.state, \
     d.attempts, d.next_attempt_at, d.last_error, d.delivered_at";

/// Queues `message` to every endpoint subscribed to it, on `c`: in the caller's job, so in the
/// transaction that appends its event.
pub(super) fn queue_deliveries(c: &Connection, message: &WebhookMessage, at: i64) -> rusqlite::Result<()> {
    c.prepare_cached(QUEUE_DELIVERIES)?.execute(params![message.id, message.event.as_str(), message.payload, at])?;
    Ok(())
}

/// A delivery row in [`DELIVERY_COLS`] order.
fn delivery(row: &Row<'_>) -> rusqlite::Result<WebhookDelivery> {
    let state: String = row.get(7)?;
    Ok(WebhookDelivery {
        id: row.get(0)?,
        endpoint_id: row.get(1)?,
        url: row.get(2)?,
        sealed_secret: row.get(3)?,
        event_type: row.get(4)?,
        payload: row.get(5)?,
        created_at: row.get(6)?,
        state: DeliveryState::parse(&state).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                7,
                rusqlite::types::Type::Text,
                format!("delivery state {state}").into(),
            )
        })?,
        attempts: row.get(8)?,
        next_attempt_at: row.get(9)?,
        last_error: row.get(10)?,
        delivered_at: row.get(11)?,
    })
}

impl SqliteStore {
    pub(super) async fn wh_add(&self, e: &NewWebhookEndpoint) -> Result<()> {
        let (e, events) = (e.clone(), e.events_column());
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO webhook_endpoints (id, url, events, secret, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![e.id, e.url, events, e.sealed_secret, e.created_at])?;
            Ok(Done::Keep(()))
        })
        .await
    }

    pub(super) async fn wh_endpoints(&self) -> Result<Vec<WebhookEndpoint>> {
        self.read(|c| {
            c.prepare_cached(
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
            )?
            .query_map([], |row| {
                let events: String = row.get(2)?;
                Ok(WebhookEndpoint {
                    id: row.get(0)?,
                    url: row.get(1)?,
                    events: events.split(' ').map(str::to_owned).collect(),
                    sealed_secret: row.get(3)?,
                    created_at: row.get(4)?,
                    status: WebhookStatus {
                        pending: row.get(5)?,
                        failing: row.get(6)?,
                        delivered: row.get(7)?,
                        failed: row.get(8)?,
                        last_error: row.get(9)?,
                        next_attempt_at: row.get(10)?,
                    },
                })
            })?
            .collect()
        })
    }

    pub(super) async fn wh_remove(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.write(move |c| {
            c.prepare_cached("DELETE FROM webhook_deliveries WHERE endpoint_id = ?1")?.execute(params![id])?;
            let done = c.prepare_cached("DELETE FROM webhook_endpoints WHERE id = ?1")?.execute(params![id])?;
            Ok(Done::Keep(done == 1))
        })
        .await
    }

    pub(super) async fn wh_enqueue(&self, endpoint_id: &str, m: &WebhookMessage, now: i64) -> Result<bool> {
        let (endpoint_id, m) = (endpoint_id.to_owned(), m.clone());
        self.write(move |c| {
            let done = c
                .prepare_cached(
                    "INSERT INTO webhook_deliveries (id, endpoint_id, event_type, payload, created_at, next_attempt_at)
                     SELECT ?1, e.id, ?2, ?3, ?4, ?4 FROM webhook_endpoints e WHERE e.id = ?5",
                )?
                .execute(params![m.id, m.event.as_str(), m.payload, now, endpoint_id])?;
            Ok(Done::Keep(done == 1))
        })
        .await
    }

    pub(super) async fn wh_claim(&self, now: i64, lease_until: i64, limit: i64) -> Result<Vec<WebhookDelivery>> {
        // Update, then read back what this job claimed with its endpoint (one job of the single
        // writer, so nothing claims in between).
        let limit = limit.max(1);
        let mut claimed = self
            .write(move |c| {
                let keys = c
                    .prepare_cached(
                        "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = ?2
                         WHERE rowid IN (SELECT rowid FROM webhook_deliveries
                                         WHERE state = 'pending' AND next_attempt_at <= ?1
                                         ORDER BY next_attempt_at, created_at, id LIMIT ?3)
                         RETURNING endpoint_id, id",
                    )?
                    .query_map(params![now, lease_until, limit], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect::<Result<Vec<(String, String)>, _>>()?;
                let mut rows = Vec::with_capacity(keys.len());
                let mut select = c.prepare_cached(&format!(
                    "SELECT {DELIVERY_COLS} FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
                     WHERE d.endpoint_id = ?1 AND d.id = ?2"
                ))?;
                for (endpoint_id, id) in keys {
                    rows.push(select.query_row(params![endpoint_id, id], delivery)?);
                }
                Ok(Done::Keep(rows))
            })
            .await?;
        claimed.sort_by(|a, b| (a.created_at, &a.id, &a.endpoint_id).cmp(&(b.created_at, &b.id, &b.endpoint_id)));
        Ok(claimed)
    }

    pub(super) async fn wh_delivered(&self, endpoint_id: &str, id: &str, now: i64) -> Result<bool> {
        let (endpoint_id, id) = (endpoint_id.to_owned(), id.to_owned());
        self.write(move |c| {
            let done = c
                .prepare_cached(
                    "UPDATE webhook_deliveries SET state = 'delivered', delivered_at = ?3
                     WHERE endpoint_id = ?1 AND id = ?2 AND state = 'pending'",
                )?
                .execute(params![endpoint_id, id, now])?;
            Ok(Done::Keep(done == 1))
        })
        .await
    }

    pub(super) async fn wh_failed(
        &self,
        endpoint_id: &str,
        id: &str,
        error: &str,
        retry_at: Option<i64>,
    ) -> Result<bool> {
        let (endpoint_id, id, error) = (endpoint_id.to_owned(), id.to_owned(), error.to_owned());
        self.write(move |c| {
            let done = c
                .prepare_cached(
                    "UPDATE webhook_deliveries SET last_error = ?3,
                        state = CASE WHEN ?4 IS NULL THEN 'failed' ELSE 'pending' END,
                        next_attempt_at = COALESCE(?4, next_attempt_at)
                     WHERE endpoint_id = ?1 AND id = ?2 AND state = 'pending'",
                )?
                .execute(params![endpoint_id, id, error, retry_at])?;
            Ok(Done::Keep(done == 1))
        })
        .await
    }

    pub(super) async fn wh_deliveries(&self, endpoint_id: Option<&str>, limit: i64) -> Result<Vec<WebhookDelivery>> {
        let sql = format!(
            "SELECT {DELIVERY_COLS} FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
             WHERE (?1 IS NULL OR d.endpoint_id = ?1) ORDER BY d.created_at DESC, d.id DESC LIMIT ?2"
        );
        let limit = if limit > 0 { limit } else { 100 };
        self.read(|c| c.prepare_cached(&sql)?.query_map(params![endpoint_id, limit], delivery)?.collect())
    }
}
