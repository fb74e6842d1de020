-- Portable SQL (SQLite and PostgreSQL): TEXT ids made by the server, BIGINT times in ms since
-- the epoch, lists as newline-separated TEXT, booleans as BIGINT 0/1.

CREATE TABLE sites (
    id TEXT PRIMARY KEY,
    site_key TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    allowed_origins TEXT NOT NULL,
    topics TEXT NOT NULL,
    color TEXT NOT NULL,
    greeting TEXT NOT NULL,
    identity_secret TEXT NOT NULL,
    identity_required BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role BIGINT NOT NULL,
    topics TEXT NOT NULL,
    capacity BIGINT NOT NULL,
    active BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    -- Ties between equally loaded agents go to the one assigned least recently.
    last_assigned_at BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE agent_sessions (
    token_hash TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL REFERENCES agents(id),
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    active BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE visitors (
    id TEXT PRIMARY KEY,
    site_id TEXT NOT NULL REFERENCES sites(id),
    -- The site's user id, set only for verified identities.
    user_id TEXT,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    page_url TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    locale TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    UNIQUE (site_id, user_id)
);

CREATE TABLE visitor_tokens (
    token_hash TEXT PRIMARY KEY,
    visitor_id TEXT NOT NULL REFERENCES visitors(id),
    created_at BIGINT NOT NULL
);

CREATE TABLE conversations (
    id TEXT PRIMARY KEY,
    site_id TEXT NOT NULL REFERENCES sites(id),
    visitor_id TEXT NOT NULL REFERENCES visitors(id),
    topic TEXT NOT NULL,
    status BIGINT NOT NULL,
    assignee_id TEXT,
    last_seq BIGINT NOT NULL DEFAULT 0,
    last_preview TEXT NOT NULL DEFAULT '',
    visitor_read_seq BIGINT NOT NULL DEFAULT 0,
    agent_read_seq BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    -- When it entered the queue: queue order.
    queued_at BIGINT NOT NULL,
    first_message_at BIGINT,
    first_response_at BIGINT,
    resolved_at BIGINT,
    rating BIGINT NOT NULL DEFAULT 0,
    rating_comment TEXT NOT NULL DEFAULT ''
);
CREATE INDEX conversations_by_activity ON conversations (updated_at, id);
CREATE INDEX conversations_by_queue ON conversations (status, site_id, topic, queued_at);
CREATE INDEX conversations_by_assignee ON conversations (assignee_id, status);
CREATE INDEX conversations_by_visitor ON conversations (visitor_id);

CREATE TABLE messages (
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    seq BIGINT NOT NULL,
    -- "<author kind>:<author id>" + client_msg_id is the idempotency key of a send.
    author_key TEXT NOT NULL,
    client_msg_id TEXT,
    kind BIGINT NOT NULL,
    author_kind BIGINT NOT NULL,
    author_id TEXT NOT NULL,
    author_name TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    sys_kind BIGINT NOT NULL DEFAULT 0,
    sys_agent_id TEXT NOT NULL DEFAULT '',
    sys_agent_name TEXT NOT NULL DEFAULT '',
    sys_score BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, seq)
);
CREATE UNIQUE INDEX messages_idempotency ON messages (author_key, client_msg_id);

CREATE TABLE canned_replies (
    id TEXT PRIMARY KEY,
    site_id TEXT NOT NULL,
    shortcut TEXT NOT NULL,
    text TEXT NOT NULL,
    UNIQUE (site_id, shortcut)
);
