-- Email verification and address change (issue 16). Only the SHA-256 of each mailed token is
-- kept. `kind` is `verify` (proves `email` belongs to the user), `change` (confirms the change
-- from `old_email` to `email`, mailed to the new address) or `cancel` (mailed to the old address;
-- cancels the change with the same `change_id`, or undoes it once made). A new request deletes
-- the user's older tokens of its flow (superseded). Spending sets `used_at` with
-- `WHERE used_at IS NULL`, so of concurrent spends exactly one wins.
CREATE TABLE email_tokens (
    token_hash BLOB PRIMARY KEY,
    kind       TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    email      TEXT NOT NULL,
    old_email  TEXT,
    change_id  TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX email_tokens_user ON email_tokens (user_id, kind);
CREATE INDEX email_tokens_change ON email_tokens (change_id);

-- When the address was verified (NULL: not yet). A changed address is verified by its change.
ALTER TABLE users ADD COLUMN email_verified_at INTEGER;
-- The user's verification state as of the session's last token, so that a refresh (which reads
-- only the session) can put `email_verified` in the new access token without a second lookup.
-- Verifying or changing the address updates every session of the user.
ALTER TABLE sessions ADD COLUMN email_verified INTEGER NOT NULL DEFAULT 0;
