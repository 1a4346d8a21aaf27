-- Operators disable accounts (`keycard users disable`, security review item 7); the same column
-- and meaning as migrations/sqlite/0003_users_disabled_at.sql (SQLite's 0002 was a SQLite-only
-- table rebuild). A disabled user keeps their row; `disabled_at` (Unix seconds) set means every
-- access token of theirs is refused and no session of theirs rotates. NULL: enabled.
-- Adding a nullable column without a default is a catalogue change only: no table rewrite.
ALTER TABLE users ADD COLUMN disabled_at BIGINT;
-- `keycard sessions list` without a user: the newest sessions first, without sorting the table.
-- (Plain CREATE INDEX: sqlx runs each migration in a transaction, where CONCURRENTLY is refused;
-- it blocks session writes while it builds, a short pause on the upgrade's first start.)
CREATE INDEX sessions_by_created ON sessions(created_at, id);
