-- Refresh tokens in insertion order (issue 7, docs/BENCHMARKS.md "Before/after: refresh tokens in
-- a rowid table"). v1 kept them in a WITHOUT ROWID table keyed by their hash: every rotation wrote
-- three random B-tree pages (the presented token's row, the new token's row, and its entry in the
-- by-session index), each one more WAL frame per group commit. Keyed by rowid, new rows go to the
-- table's last page and the presented token (issued by the previous rotation) sits near it; only
-- the hash index takes a random page. Same columns, same queries.
CREATE TABLE refresh_tokens_v2 (
    id         INTEGER PRIMARY KEY,
    hash       BLOB NOT NULL UNIQUE,
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    used_at    INTEGER
);
INSERT INTO refresh_tokens_v2 (hash, session_id, created_at, used_at)
    SELECT hash, session_id, created_at, used_at FROM refresh_tokens ORDER BY created_at, used_at IS NULL;
DROP TABLE refresh_tokens;
ALTER TABLE refresh_tokens_v2 RENAME TO refresh_tokens;
CREATE INDEX refresh_tokens_by_session ON refresh_tokens(session_id);
