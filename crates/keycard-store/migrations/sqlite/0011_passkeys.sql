-- Passkeys (issue 17). A passkey is a row of mfa_factors with kind 'passkey': `secret` holds the
-- credential (webauthn-rs's Passkey as JSON: its id, public key, counter and backup flags; public
-- data, not sealed), `last_step` the highest signature counter seen (a counter that goes back is
-- refused and audited as a possible clone).
--
-- A WebAuthn ceremony waiting for its answer: the `passkey_token`'s SHA-256, the user (none for a
-- passwordless sign-in, whose user the answer names), what it is for, webauthn-rs's state (JSON).
-- Taken (deleted) by the one answer that reads it: a challenge is good once.
CREATE TABLE webauthn_challenges (
    token_hash BLOB PRIMARY KEY,
    user_id    TEXT REFERENCES users(id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX webauthn_challenges_expiry ON webauthn_challenges (expires_at);
