-- Password-reset tokens (issue 16): only the SHA-256 of each token is kept. A user has at most
-- one row: a new request deletes the older ones (superseded), in the same transaction as its
-- outbox message. Spending a token sets `used_at` with `WHERE used_at IS NULL`, so of concurrent
-- spends exactly one wins (the loser re-reads the row after the winner commits).
CREATE TABLE password_resets (
    token_hash BYTEA PRIMARY KEY,
    user_id    TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX password_resets_user ON password_resets (user_id);
