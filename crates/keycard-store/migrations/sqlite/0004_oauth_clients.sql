-- OAuth clients registered by operators (`keycard clients add`, issue 18). A client has a secret
-- (stored as its SHA-256: secrets are 256-bit random, so a fast hash is enough) or a JWK set for
-- `private_key_jwt`. `grant_id` is the `sid` of its current `client_credentials` access tokens:
-- revoking them publishes it on the revocation feed and draws a new one.
CREATE TABLE oauth_clients (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    secret_hash       TEXT,
    jwks              TEXT,
    scopes            TEXT NOT NULL,
    grant_id          TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    secret_rotated_at INTEGER
);
-- `jti`s of `private_key_jwt` assertions already used, until they expire (single use).
CREATE TABLE oauth_assertions (
    client_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (client_id, jti)
);
