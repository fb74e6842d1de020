//! SQL shared by the store implementations: migrations and the column lists that rows are
//! decoded from. Placeholders are PostgreSQL's `$1..$n`; the SQLite engine rewrites them to `?N`.

/// One migration: the same SQL on both engines, or one script per engine where they differ
/// (full-text indexes).
pub enum Migration {
    Both(&'static str),
    PerEngine {
        sqlite: &'static str,
        postgres: &'static str,
    },
}

impl Migration {
    /// The SQL to run on `engine`.
    pub fn sql(&self, engine: super::db::EngineKind) -> &'static str {
        match (self, engine) {
            (Migration::Both(sql), _) => sql,
            (Migration::PerEngine { sqlite, .. }, super::db::EngineKind::Sqlite) => sqlite,
            (Migration::PerEngine { postgres, .. }, super::db::EngineKind::Postgres) => postgres,
        }
    }
}

/// Embedded migrations, applied in order once each (version = index + 1).
pub const MIGRATIONS: &[Migration] = &[
    Migration::Both(include_str!("migrations/0001_init.sql")),
    Migration::Both(include_str!("migrations/0002_scopes.sql")),
    Migration::Both(include_str!("migrations/0003_queue_index.sql")),
    Migration::Both(include_str!("migrations/0004_attachments.sql")),
    Migration::Both(include_str!("migrations/0005_webhooks.sql")),
    Migration::Both(include_str!("migrations/0006_email.sql")),
    Migration::Both(include_str!("migrations/0007_alerts.sql")),
    Migration::Both(include_str!("migrations/0008_blocks.sql")),
    Migration::Both(include_str!("migrations/0009_labels.sql")),
    Migration::Both(include_str!("migrations/0010_auto_resolve.sql")),
    Migration::Both(include_str!("migrations/0011_hours.sql")),
    Migration::Both(include_str!("migrations/0012_snooze.sql")),
    Migration::Both(include_str!("migrations/0013_widget_texts.sql")),
    Migration::Both(include_str!("migrations/0014_context.sql")),
    Migration::PerEngine {
        sqlite: include_str!("migrations/0015_search.sqlite.sql"),
        postgres: include_str!("migrations/0015_search.postgres.sql"),
    },
    Migration::PerEngine {
        sqlite: include_str!("migrations/0016_visitor_search.sqlite.sql"),
        postgres: include_str!("migrations/0016_visitor_search.postgres.sql"),
    },
    Migration::PerEngine {
        sqlite: include_str!("migrations/0017_search_by_time.sqlite.sql"),
        postgres: include_str!("migrations/0017_search_by_time.postgres.sql"),
    },
    Migration::PerEngine {
        sqlite: include_str!("migrations/0018_search_in_batches.sqlite.sql"),
        postgres: include_str!("migrations/0018_search_in_batches.postgres.sql"),
    },
    Migration::PerEngine {
        sqlite: include_str!("migrations/0019_attribute_search.sqlite.sql"),
        postgres: include_str!("migrations/0019_attribute_search.postgres.sql"),
    },
];

/// How many columns [`CONVERSATION_SELECT`] has. A search's summary row (`listing.rs`) pads
/// this many NULLs before its count in a `UNION ALL` with the page's rows, which fails on both
/// engines if the two disagree: every search test checks this count.
pub const CONVERSATION_COLUMNS: usize = 20;

/// Columns of a conversation row, decoded by `conversation_from_row`. The queue position is not
/// a column: the core's queue index ([`crate::core::queue`]) knows it without a count per row.
pub const CONVERSATION_SELECT: &str = "SELECT c.id, c.site_id, c.visitor_id, v.name, c.topic, c.status, \
     COALESCE(c.assignee_id, ''), COALESCE(a.name, ''), c.queued_at, c.last_seq, c.last_preview, \
     c.visitor_read_seq, c.agent_read_seq, c.created_at, c.updated_at, c.rating, c.rating_comment, c.labels, \
     c.snoozed_until, c.attributes \
     FROM conversations c JOIN visitors v ON v.id = c.visitor_id \
     LEFT JOIN agents a ON a.id = c.assignee_id";

/// Columns of a message row, decoded by `message_from_row`.
pub const MESSAGE_SELECT: &str = "SELECT conversation_id, seq, COALESCE(client_msg_id, ''), kind, author_kind, \
     author_id, author_name, text, created_at, sys_kind, sys_agent_id, sys_agent_name, sys_score, attachments FROM messages";

/// Columns of a site row.
pub const SITE_SELECT: &str = "SELECT id, site_key, name, allowed_origins, topics, color, greeting, \
     identity_secret, identity_required, restrict_agents_to_topics, max_file_bytes, file_kinds, \
     file_retention_days, email_delay_minutes, notify_email, new_conversations_per_ip_hour, auto_resolve_hours, \
     time_zone, opening_hours, closed_dates, away_message, widget_texts, attributes FROM sites";

/// Columns of an agent row (without the password hash).
pub const AGENT_SELECT: &str = "SELECT id, email, name, role, topics, capacity, active, site_ids, email_alerts_off FROM agents";

/// Columns of a visitor row.
pub const VISITOR_SELECT: &str = "SELECT id, site_id, name, email, COALESCE(user_id, ''), page_url, user_agent, \
     locale, first_seen, last_seen, last_ip, CASE WHEN blocked_by IS NULL THEN 0 ELSE 1 END, attributes, pages FROM visitors";

/// Columns of an API key row.
pub const API_KEY_SELECT: &str =
    "SELECT id, name, scopes, created_at, active, site_ids FROM api_keys";

/// Columns of a canned reply row.
pub const CANNED_SELECT: &str = "SELECT id, site_id, shortcut, text FROM canned_replies";

/// Longest `last_preview` kept on a conversation, in characters.
pub const PREVIEW_CHARS: usize = 140;

/// Columns of an upload row, decoded by `upload_from_row`.
pub const UPLOAD_SELECT: &str = "SELECT id, site_id, owner_key, name, content_type, size, width, height, thumb_size, \
     created_at, conversation_id, seq, note, deleted_at FROM uploads";
