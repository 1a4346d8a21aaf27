-- OAuth clients registered by operators (`keycard clients add`, issue 18). A client has a secret
-- (stored as its SHA-256: secrets are 256-bit random, so a fast hash is enough) or a JWK set for
-- `private_key_jwt`. `grant_id` is the `sid` of its current `client_credentials` access tokens:
-- revoking them publishes it on the revocation feed and draws a new one.
CREATE TABLE oauth_clients (
    id                TEXT COLLATE "C" PRIMARY KEY,
    name              TEXT NOT NULL,
    secret_hash       TEXT,
    jwks              TEXT,
    scopes            TEXT NOT NULL,
    grant_id          TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    secret_rotated_at BIGINT
);
-- `jti`s of `private_key_jwt` assertions already used, until they expire (single use).
CREATE TABLE oauth_assertions (
    client_id  TEXT COLLATE "C" NOT NULL,
    jti        TEXT COLLATE "C" NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
