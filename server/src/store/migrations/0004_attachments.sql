-- Attachments (issue #12). A file is uploaded first (a row here, its bytes in the blob store),
-- then attached by one send: the row gets the conversation and seq of that message, and the
-- message keeps a copy of the files' metadata (messages.attachments) so history and replay
-- read no join. Unattached uploads are deleted after a while; files of resolved conversations
-- after the site's retention (the row stays with deleted_at set, the bytes go).
CREATE TABLE uploads (
    id TEXT PRIMARY KEY,
    site_id TEXT NOT NULL,
    -- The uploader's author key ("v:<visitor>", "a:<agent>", "k:<key>"): only they may send it.
    owner_key TEXT NOT NULL,
    name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    width BIGINT NOT NULL DEFAULT 0,
    height BIGINT NOT NULL DEFAULT 0,
    thumb_size BIGINT NOT NULL DEFAULT 0,
    sha256 TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    conversation_id TEXT,
    seq BIGINT,
    note BIGINT NOT NULL DEFAULT 0,
    deleted_at BIGINT
);
CREATE INDEX uploads_by_conversation ON uploads (conversation_id, seq);
CREATE INDEX uploads_by_age ON uploads (created_at);

-- Base64 of the protobuf-encoded attachment list; '' for messages without files.
ALTER TABLE messages ADD COLUMN attachments TEXT NOT NULL DEFAULT '';

ALTER TABLE sites ADD COLUMN max_file_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sites ADD COLUMN file_kinds BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sites ADD COLUMN file_retention_days BIGINT NOT NULL DEFAULT 0;

-- Secrets the nodes of a cluster share (the key signing file links).
CREATE TABLE server_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
