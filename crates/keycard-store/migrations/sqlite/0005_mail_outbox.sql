-- The mail outbox (issue 16): a message is written in the same transaction as the event that
-- causes it and delivered by the server's background sender. A queued message is due at
-- `next_attempt_at`; claiming it pushes that time to the end of a lease, so a sender that dies
-- mid-delivery leaves it due again when the lease ends. `last_error` is the SMTP reply, never a
-- body.
CREATE TABLE mail_outbox (
    id              TEXT PRIMARY KEY,
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    text_body       TEXT NOT NULL,
    html_body       TEXT,
    created_at      INTEGER NOT NULL,
    state           TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    sent_at         INTEGER
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE state = 'queued';
CREATE INDEX mail_outbox_created ON mail_outbox (created_at);
