-- Agent alerts (issue #13): a visitor writing while no agent of the topic is online queues
-- (in the message's transaction) the conversation's alert, due a minute later (a burst is one
-- alert); the daily digest of waiting conversations is sent once per site and day (the row is
-- written with the digest's emails). Agents may turn alert emails off; a site may name an
-- address that gets them too.
CREATE TABLE alert_pending (
    conversation_id TEXT PRIMARY KEY,
    due_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX alert_pending_due ON alert_pending (due_at);
CREATE TABLE digests (
    site_id TEXT NOT NULL,
    day TEXT NOT NULL,
    sent_at BIGINT NOT NULL,
    PRIMARY KEY (site_id, day)
);
ALTER TABLE agents ADD COLUMN email_alerts_off BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sites ADD COLUMN notify_email TEXT NOT NULL DEFAULT '';
