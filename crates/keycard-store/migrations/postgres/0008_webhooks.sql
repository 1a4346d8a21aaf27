-- Webhooks for security events (issue 20): the same tables and meanings as
-- migrations/sqlite/0009_webhooks.sql. An endpoint's signing secret is sealed under the master
-- key (keycard signs with it, so it cannot be hashed). Appending an audit event of a webhook kind
-- inserts one delivery per subscribed endpoint in the same statement (a data-modifying CTE).
-- Claims take their rows `FOR UPDATE SKIP LOCKED`: two instances never claim the same delivery.
CREATE TABLE webhook_endpoints (
    id         TEXT COLLATE "C" PRIMARY KEY,
    url        TEXT NOT NULL,
    events     TEXT NOT NULL,
    secret     BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE webhook_deliveries (
    id              TEXT COLLATE "C" NOT NULL,
    endpoint_id     TEXT COLLATE "C" NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    delivered_at    BIGINT,
    PRIMARY KEY (endpoint_id, id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at);
