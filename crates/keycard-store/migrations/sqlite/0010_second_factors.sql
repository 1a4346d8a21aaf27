-- Second factors (issue 17). A session keeps how its user signed in (`amr`, a bit set of RFC 8176
-- methods: 1 = pwd, 2 = otp, 4 = hwk, 8 = swk, 16 = mfa) and when (`auth_time`: the login, or the
-- latest step-up), so every access token a refresh signs carries them without a user lookup.
ALTER TABLE sessions ADD COLUMN amr INTEGER NOT NULL DEFAULT 1;
ALTER TABLE sessions ADD COLUMN auth_time INTEGER NOT NULL DEFAULT 0;
UPDATE sessions SET auth_time = created_at;

-- A factor is pending until its first code is confirmed (`confirmed_at`). `secret` is the TOTP
-- secret sealed under the master key (AES-256-GCM, the factor id bound as associated data).
-- `last_step` is the highest TOTP time step accepted: a code is good once, and no older code
-- is good after it.
CREATE TABLE mfa_factors (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    name         TEXT NOT NULL,
    secret       BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    confirmed_at INTEGER,
    last_used_at INTEGER,
    last_step    INTEGER
);
CREATE INDEX mfa_factors_user ON mfa_factors (user_id);

-- Recovery codes, SHA-256 only (each carries 100 random bits); spent once.
CREATE TABLE recovery_codes (
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash  BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    used_at    INTEGER,
    PRIMARY KEY (user_id, code_hash)
);

-- A login waiting for its second factor: the `mfa_token`'s SHA-256, what the login asked for
-- (JSON), the attempts made with it. Deleted by the answer that completes it.
CREATE TABLE mfa_challenges (
    token_hash BLOB PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    data       TEXT NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX mfa_challenges_expiry ON mfa_challenges (expires_at);
