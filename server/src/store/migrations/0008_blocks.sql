-- Safety (issue #15): blocks, the audit log, the per-address hourly quota of new
-- conversations.
--
-- A block matches a visitor (value: visitor id), an email (lower case) or a network
-- (canonical CIDR text, e.g. "198.51.100.0/24"); an address is checked by looking up the few
-- networks that contain it (one indexed IN per check, whatever the number of blocks).
CREATE TABLE blocks (
    id TEXT PRIMARY KEY,
    site_id TEXT NOT NULL REFERENCES sites(id),
    kind BIGINT NOT NULL,
    value TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_by_name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (site_id, kind, value)
);
CREATE INDEX blocks_by_site ON blocks (site_id, created_at);
CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    site_id TEXT NOT NULL,
    actor TEXT NOT NULL,
    actor_name TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX audit_log_by_site ON audit_log (site_id, created_at);
-- The block that holds a visitor off (their tokens stop resolving); NULL: not blocked.
ALTER TABLE visitors ADD COLUMN blocked_by TEXT;
CREATE INDEX visitors_by_block ON visitors (blocked_by) WHERE blocked_by IS NOT NULL;
-- The address of the visitor's last session start.
ALTER TABLE visitors ADD COLUMN last_ip TEXT NOT NULL DEFAULT '';
CREATE INDEX visitors_by_email ON visitors (site_id, email);
CREATE INDEX visitors_by_seen ON visitors (site_id, last_seen);
-- The address key (core::limits::ip_key) that started a conversation: the hourly quota.
ALTER TABLE conversations ADD COLUMN ip_key TEXT NOT NULL DEFAULT '';
CREATE INDEX conversations_by_ip ON conversations (site_id, ip_key, created_at);
ALTER TABLE sites ADD COLUMN new_conversations_per_ip_hour BIGINT NOT NULL DEFAULT 0;
