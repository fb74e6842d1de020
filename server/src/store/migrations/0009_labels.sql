-- Labels (issue #15): admins define them per site; staff put them on conversations. The join
-- table answers "conversations with this label" (inbox filter, report); the conversation's own
-- `labels` column (ids, newline-separated, by label name) is what every
-- conversation read returns, without an aggregate that SQLite and PostgreSQL spell differently.
CREATE TABLE labels (
    id TEXT PRIMARY KEY,
    site_id TEXT NOT NULL REFERENCES sites(id),
    name TEXT NOT NULL,
    color TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX labels_by_site ON labels (site_id);
CREATE TABLE conversation_labels (
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    label_id TEXT NOT NULL REFERENCES labels(id),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, label_id)
);
CREATE INDEX conversation_labels_by_label ON conversation_labels (label_id, conversation_id);
ALTER TABLE conversations ADD COLUMN labels TEXT NOT NULL DEFAULT '';
