-- DPoP (RFC 9449, issue 19). A session started with a DPoP proof is bound to that key: its
-- RFC 7638 thumbprint, which every refresh's proof must match. NULL for a Bearer session.
ALTER TABLE sessions ADD COLUMN dpop_jkt TEXT;

-- Proofs seen within their acceptance window (replay detection shared by every instance):
-- a (jkt, jti) pair is inserted once; expired pairs are pruned as new ones arrive.
CREATE TABLE dpop_proofs (
    jkt        TEXT   NOT NULL,
    jti        TEXT   NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (jkt, jti)
);
CREATE INDEX dpop_proofs_expires_at ON dpop_proofs (expires_at);
