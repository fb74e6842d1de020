-- Email continuity (issue #13). An agent's or service's reply to a visitor with an email
-- address writes (in its own transaction) a pending row for its conversation, due after the
-- site's delay; the mailer turns a due row into one email of every reply the visitor has not
-- seen (a burst of replies is one email), in the transaction that deletes the row. Emails are
-- rows of a durable outbox, sent at least once with a stable Message-ID.
CREATE TABLE email_pending (
    conversation_id TEXT PRIMARY KEY,
    due_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX email_pending_due ON email_pending (due_at);

CREATE TABLE emails (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    to_addr TEXT NOT NULL,
    from_name TEXT NOT NULL,
    subject TEXT NOT NULL,
    text_body TEXT NOT NULL,
    html_body TEXT NOT NULL,
    -- Extra headers, one "Name: value" per line (List-Unsubscribe ...).
    headers TEXT NOT NULL DEFAULT '',
    -- 1 queued, 2 sent, 3 failed (EmailState).
    state BIGINT NOT NULL DEFAULT 1,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until BIGINT NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    sent_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX emails_due ON emails (state, next_attempt_at);
CREATE INDEX emails_by_conversation ON emails (conversation_id, created_at);

-- The highest seq already emailed to the visitor (replies up to it are not sent again).
ALTER TABLE conversations ADD COLUMN email_seq BIGINT NOT NULL DEFAULT 0;
-- The visitor unsubscribed from emails.
ALTER TABLE visitors ADD COLUMN email_opt_out BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sites ADD COLUMN email_delay_minutes BIGINT NOT NULL DEFAULT 0;
