-- Webhooks for security events (issue 20). An endpoint lists the events it receives (names
-- separated by spaces, `*` for all) and its signing secret, sealed under the master key (keycard
-- signs with it, so it cannot be hashed). Appending an audit event of a webhook kind inserts one
-- delivery per subscribed endpoint in the same transaction (`INSERT … SELECT` from the
-- endpoints). A delivery's `id` is the `webhook-id`: one per event, the same on every attempt.
-- A pending delivery is due at `next_attempt_at`; claiming it pushes that to the end of a lease,
-- so a sender that dies mid-delivery leaves it due again when the lease ends.
CREATE TABLE webhook_endpoints (
    id         TEXT PRIMARY KEY,
    url        TEXT NOT NULL,
    events     TEXT NOT NULL,
    secret     BLOB NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE webhook_deliveries (
    id              TEXT NOT NULL,
    endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    delivered_at    INTEGER,
    PRIMARY KEY (endpoint_id, id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at);
