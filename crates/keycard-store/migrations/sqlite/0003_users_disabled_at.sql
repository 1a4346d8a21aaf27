-- Operators disable accounts (`keycard users disable`, security review item 7). A disabled user
-- keeps their row, email and password hash; `disabled_at` (Unix seconds) set means every access
-- token of theirs is refused (the per-request session lookup checks it) and no session of theirs
-- rotates. Disabling also revokes their sessions, onto the revocation feed. NULL: enabled.
ALTER TABLE users ADD COLUMN disabled_at INTEGER;
-- `keycard sessions list` without a user: the newest sessions first, without sorting the table.
CREATE INDEX sessions_by_created ON sessions(created_at, id);
