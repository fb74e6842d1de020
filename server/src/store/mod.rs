//! Durable state: the `Store` trait the core talks to, written once over a small `Db`
//! interface for two engines (SQLite, PostgreSQL).
//!
//! Records are the protocol's own messages (`v1::Conversation`, `v1::Message`, ...) so nothing
//! is converted twice; what the wire must not see (password hashes, secrets' hashes) stays in
//! the store. The SQL is written to run unchanged on PostgreSQL (`$1` placeholders, no
//! SQLite-only syntax), so a PostgreSQL store can share the statements in [`sql`].

pub mod blocks;
pub mod context;
pub mod db;
pub mod email;
pub mod labels;
pub mod postgres;
pub mod seed;
pub mod sql;
pub mod sql_store;
pub mod sqlite;
pub mod webhooks;

use async_trait::async_trait;
use wsmschat::v1;

/// The cause of an internal failure, kept as the original error (shared: a failed batch
/// fails each of its jobs with the same cause).
pub type Cause = std::sync::Arc<dyn std::error::Error + Send + Sync>;

/// A store failure. `Conflict` and `NotFound` are the caller's fault; `Internal` is ours.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The record does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness rule was broken (e.g. an email already in use).
    #[error("{0}")]
    Conflict(String),
    /// The operation does not fit the record's state (e.g. rating an open conversation).
    #[error("{0}")]
    Precondition(String),
    /// A limit on stored records was reached (e.g. open conversations per visitor).
    #[error("{0}")]
    Exhausted(String),
    /// A per-visitor or per-address quota was reached: refused with a machine-readable reason
    /// (`wsmschat::errors`), and how long until it passes when known (seconds).
    #[error("{1}")]
    Quota(&'static str, String, Option<u64>),
    /// A transient conflict (deadlock, serialization failure, busy): retry.
    #[error("database busy: {0}")]
    Busy(String),
    /// The database failed.
    #[error("database error: {0}")]
    Internal(#[source] Cause),
}

impl StoreError {
    /// An internal failure with its cause (an error, or a message).
    pub fn internal(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        StoreError::Internal(Cause::from(cause.into()))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// An agent with what only the server may see.
#[derive(Debug, Clone)]
pub struct AgentRecord {
    /// The public part.
    pub agent: v1::Agent,
    /// argon2id PHC string.
    pub password_hash: String,
}

/// An API key as the auth layer needs it.
#[derive(Debug, Clone)]
pub struct ApiKeyRecord {
    /// The public part.
    pub key: v1::ApiKey,
}

/// A message to append. `conversation_id = None` starts a conversation (`new_conversation`).
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Existing conversation, or None with `new_conversation` set.
    pub conversation_id: Option<String>,
    /// How to create the conversation when `conversation_id` is None.
    pub new_conversation: Option<NewConversation>,
    /// Idempotency: `(author_key, client_msg_id)` is unique.
    pub client_msg_id: Option<String>,
    /// "v:<visitor id>", "a:<agent id>", "k:<key id>" or "s:" for system messages.
    pub author_key: String,
    /// Text, note or system.
    pub kind: v1::MessageKind,
    /// Who wrote it.
    pub author_kind: v1::AuthorKind,
    /// Their id.
    pub author_id: String,
    /// Their display name.
    pub author_name: String,
    /// The text as given.
    pub text: String,
    /// For system messages.
    pub system: Option<v1::SystemEvent>,
    /// Only for messages of an existing conversation: the visitor it must belong to.
    pub require_visitor: Option<String>,
    /// The hub id of the Chat stream that sent it: that stream gets the ack (with the seq)
    /// instead of an echo of the message. Other streams (other tabs) still get it.
    pub origin_stream: Option<u64>,
    /// Uploads of the same author (`author_key`) to attach, not attached to anything yet.
    pub attachment_ids: Vec<String>,
    /// A visitor's message while no agent of these topics is online (email on): queue the
    /// conversation's alert to agents (due after `alert_delay_ms`) if its topic is one of them.
    pub alert_topics: Vec<String>,
    /// See `alert_topics`.
    pub alert_delay_ms: i64,
    /// A staff reply the visitor may get by email if unseen (the server sends email): queue
    /// the conversation's continuity email in this transaction, the site's delay counted in
    /// "minutes" of this many ms (60,000 but in tests).
    pub email_visitor: Option<i64>,
}

/// An uploaded file, as stored (see migration 0004).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UploadRecord {
    pub id: String,
    /// The site whose limits applied (the visitor's, or the conversation's for staff).
    pub site_id: String,
    /// Author key of the uploader: only they may attach it.
    pub owner_key: String,
    pub name: String,
    pub content_type: String,
    pub size: u64,
    pub width: u32,
    pub height: u32,
    /// Bytes of the thumbnail; 0: none.
    pub thumb_size: u64,
    pub created_at: i64,
    /// Set when a message carries it.
    pub conversation_id: Option<String>,
    pub seq: Option<u64>,
    /// Its message is a private note.
    pub note: bool,
    /// The bytes were deleted (retention), ms since epoch.
    pub deleted_at: Option<i64>,
}

impl UploadRecord {
    /// The metadata a message carries (no links: they are signed on the way out).
    pub fn attachment(&self) -> v1::Attachment {
        v1::Attachment {
            id: self.id.clone(),
            name: self.name.clone(),
            content_type: self.content_type.clone(),
            size: self.size,
            width: self.width,
            height: self.height,
            has_thumbnail: self.thumb_size > 0,
            deleted: self.deleted_at.is_some(),
            ..Default::default()
        }
    }
}

/// A conversation to create with its first message.
#[derive(Debug, Clone)]
pub struct NewConversation {
    /// Its id (generated by the caller so retries can be matched).
    pub id: String,
    /// The site.
    pub site_id: String,
    /// The visitor starting it.
    pub visitor_id: String,
    /// One of the site's topics.
    pub topic: String,
    /// Refused (RESOURCE_EXHAUSTED) when the visitor already has this many unresolved
    /// conversations; 0: no cap. Checked after the retry lookup, so a retried first send
    /// still finds the conversation it created.
    pub max_open: u32,
    /// The starting client's address and its hourly quota on the site (None: not counted).
    pub ip_quota: Option<IpQuota>,
}

/// New conversations per client address and hour on a site.
#[derive(Debug, Clone)]
pub struct IpQuota {
    /// `core::limits::ip_key` of the address (an IPv6 /64 counts as one).
    pub ip_key: String,
    /// Refused (NEW_CONVERSATION_QUOTA) when this many were started in the last hour.
    pub per_hour: u32,
}

/// What an append did.
#[derive(Debug, Clone)]
pub struct Appended {
    /// The stored message (the first one, for a retried send).
    pub message: v1::Message,
    /// The send was a retry: nothing new was stored.
    pub duplicate: bool,
    /// The conversation after the append, when the append created or reopened it (otherwise
    /// only its seq and activity moved, which the message itself tells).
    pub conversation: Option<v1::Conversation>,
    /// The append created the conversation.
    pub created: bool,
    /// A visitor message moved the conversation from resolved back to queued.
    pub reopened: bool,
}

/// A stored message, as fanned out after commit: the message and where it must go.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The message.
    pub message: v1::Message,
    /// The conversation's visitor (their streams follow all of their conversations).
    pub visitor_id: String,
    /// The local stream that sent it (see [`NewMessage::origin_stream`]).
    pub origin_stream: Option<u64>,
    /// Webhook deliveries were queued with it (the dispatcher is woken).
    pub webhooks: bool,
}

/// Receives every committed message once, in commit order (so per-conversation seq order).
pub trait CommitSink: Send + Sync + 'static {
    /// Called after the batch holding the messages is durable.
    fn committed(&self, messages: &[Committed]);
}

/// How to assign a conversation.
#[derive(Debug, Clone)]
pub enum AssignTarget {
    /// To the least-loaded of these agents that is under capacity (none: stays queued).
    LeastLoaded(Vec<String>),
    /// To this agent, regardless of capacity (a human decision).
    Agent {
        /// The agent.
        agent_id: String,
        /// The system message kind to write (assigned, joined, transferred).
        system_kind: v1::SystemEventKind,
    },
}

/// Result of a workflow change.
#[derive(Debug, Clone)]
pub struct Changed {
    /// The conversation after the change.
    pub conversation: v1::Conversation,
    /// The agent the conversation was assigned to before the change (for queue draining).
    pub previous_assignee: Option<String>,
}

/// How many conversations match a list's filter, over all pages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Total {
    pub count: u32,
    /// `count` is a lower bound: the query's text matched more messages than a search reads
    /// ([`sql_store::SEARCH_MESSAGES`]), so only the conversations of the newest of them are
    /// listed and counted.
    pub capped: bool,
}

/// Inbox filters (see `ListConversationsRequest`).
#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    /// Only this status.
    pub status: Option<v1::ConversationStatus>,
    /// Only this topic.
    pub topic: Option<String>,
    /// Only assigned to this agent.
    pub assignee_id: Option<String>,
    /// Only unassigned.
    pub unassigned: bool,
    /// Only this site.
    pub site_id: Option<String>,
    /// Only this visitor.
    pub visitor_id: Option<String>,
    /// Only conversations carrying this label.
    pub label_id: Option<String>,
    /// Some(true): only snoozed ones; Some(false): only those not snoozed.
    pub snoozed: Option<bool>,
    /// Only where the conversation's or its visitor's attribute (key) equals the value
    /// (case-insensitively).
    pub attribute: Option<(String, String)>,
    /// Case-insensitive search in visitor name/email and message text.
    pub query: Option<String>,
    /// Page size.
    pub limit: u32,
    /// Resume after this (updated_at, id).
    pub after: Option<(i64, String)>,
    /// Only these sites (and, per site, these topics); None: everywhere.
    pub scope: Option<Vec<SiteScope>>,
}

/// One site a staff member may look at, optionally only some of its topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteScope {
    pub site_id: String,
    /// Only these topics (compared case-insensitively); None: all.
    pub topics: Option<Vec<String>>,
}

/// Visitor session input (StartVisitorSession).
#[derive(Debug, Clone, Default)]
pub struct VisitorUpsert {
    /// The site.
    pub site_id: String,
    /// This visitor (of the site), proven by a continuation link: gets a new token.
    pub visitor_id: Option<String>,
    /// Hash of the token being resumed, if any.
    pub token_hash: Option<String>,
    /// Verified user id: the visitor is the one with this user id on the site.
    pub verified_user_id: Option<String>,
    /// Profile fields; empty values keep what is stored.
    pub name: String,
    pub email: String,
    pub page_url: String,
    pub user_agent: String,
    pub locale: String,
    /// The client's address ("" keeps the stored one).
    pub last_ip: String,
    /// Id for a new visitor.
    pub new_visitor_id: String,
    /// Hash of the new token to store when a new token is issued.
    pub new_token_hash: String,
    /// The page the session starts on, for the page trail (None: none valid).
    pub page: Option<v1::PageView>,
}

/// One conversation's times for the site report (ms since epoch).
#[derive(Debug, Clone, Default)]
pub struct ReportRow {
    pub created_at: i64,
    /// First visitor text message.
    pub first_message_at: Option<i64>,
    /// First agent or service text message.
    pub first_response_at: Option<i64>,
    pub resolved_at: Option<i64>,
    /// 0 when not rated.
    pub rating: u32,
}

/// Figures for the site report.
#[derive(Debug, Clone, Default)]
pub struct ReportRows {
    /// Conversations created in the period, oldest first.
    pub conversations: Vec<ReportRow>,
}

/// Everything the server keeps. Implementations: [`sqlite::SqliteStore`].
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // --- sites
    async fn create_site(&self, site: v1::Site) -> StoreResult<v1::Site>;
    async fn update_site(&self, site: v1::Site) -> StoreResult<v1::Site>;
    async fn list_sites(&self) -> StoreResult<Vec<v1::Site>>;
    async fn site_by_key(&self, site_key: &str) -> StoreResult<v1::Site>;
    async fn site_by_id(&self, id: &str) -> StoreResult<v1::Site>;

    // --- agents and their sessions
    async fn create_agent(&self, agent: v1::Agent, password_hash: String)
    -> StoreResult<v1::Agent>;
    /// Replaces name, role, topics, capacity, active; and the password hash when given.
    async fn update_agent(
        &self,
        agent: v1::Agent,
        password_hash: Option<String>,
    ) -> StoreResult<v1::Agent>;
    async fn list_agents(&self) -> StoreResult<Vec<v1::Agent>>;
    async fn agent_by_email(&self, email: &str) -> StoreResult<AgentRecord>;
    async fn agent_by_id(&self, id: &str) -> StoreResult<v1::Agent>;
    async fn create_agent_session(
        &self,
        token_hash: String,
        agent_id: String,
        expires_at: i64,
    ) -> StoreResult<()>;
    /// The agent of a session that has not expired at `now`.
    async fn agent_by_session(&self, token_hash: &str, now: i64) -> StoreResult<(v1::Agent, i64)>;
    async fn delete_agent_session(&self, token_hash: String) -> StoreResult<()>;

    // --- API keys
    async fn create_api_key(&self, key: v1::ApiKey, secret_hash: String)
    -> StoreResult<v1::ApiKey>;
    async fn list_api_keys(&self) -> StoreResult<Vec<v1::ApiKey>>;
    async fn revoke_api_key(&self, id: String) -> StoreResult<()>;
    async fn api_key_by_secret_hash(&self, secret_hash: &str) -> StoreResult<ApiKeyRecord>;

    // --- visitors
    /// Finds (by verified user id, else by token) or creates the visitor; stores the new token.
    async fn upsert_visitor(&self, upsert: VisitorUpsert) -> StoreResult<v1::Visitor>;
    async fn visitor_by_token(&self, token_hash: &str) -> StoreResult<v1::Visitor>;
    async fn visitor_by_id(&self, id: &str) -> StoreResult<v1::Visitor>;
    async fn delete_visitor_token(&self, token_hash: String) -> StoreResult<()>;
    /// Deletes up to `limit` anonymous visitors without conversations last seen before
    /// `seen_before_ms`, with their tokens; returns how many.
    async fn purge_idle_visitors(&self, seen_before_ms: i64, limit: u32) -> StoreResult<u64>;

    // --- conversations and messages
    /// Appends a message durably (group-committed), assigning the next seq; idempotent on
    /// `(author_key, client_msg_id)`. Returns after commit.
    async fn append_message(&self, message: NewMessage) -> StoreResult<Appended>;
    async fn conversation(&self, id: &str) -> StoreResult<v1::Conversation>;
    /// Conversations newest activity first, and the number matching the filter.
    async fn list_conversations(
        &self,
        filter: ConversationFilter,
    ) -> StoreResult<(Vec<v1::Conversation>, Total)>;
    /// Messages with seq < before (0 = newest), up to limit, ascending; and whether older exist.
    async fn history(
        &self,
        conversation_id: &str,
        before_seq: u64,
        limit: u32,
        with_notes: bool,
    ) -> StoreResult<(Vec<v1::Message>, bool)>;
    /// Messages with seq > after_seq, ascending, at most limit.
    async fn messages_after(
        &self,
        conversation_id: &str,
        after_seq: u64,
        limit: u32,
        with_notes: bool,
    ) -> StoreResult<Vec<v1::Message>>;

    // --- workflow
    /// Assigns (status open) and writes the system message; None when no candidate fits.
    async fn assign(
        &self,
        conversation_id: String,
        target: AssignTarget,
    ) -> StoreResult<Option<Changed>>;
    /// Open conversations (of sites with auto-resolve) whose customer has not answered a staff
    /// reply for the site's hours at `now`, longest idle first.
    async fn idle_conversations(&self, now: i64, limit: u32) -> StoreResult<Vec<String>>;
    /// Resolves the conversation if it is still idle (checked with its row locked).
    async fn resolve_idle(&self, conversation_id: String, now: i64)
    -> StoreResult<Option<Changed>>;
    /// Resolves an open or queued conversation and writes the system message.
    async fn resolve(&self, conversation_id: String) -> StoreResult<Changed>;
    /// Snoozes an open conversation until `until` ms (0: the customer's next message), or
    /// ends its snooze (None). The conversation after the change.
    async fn snooze(
        &self,
        conversation_id: String,
        until: Option<i64>,
    ) -> StoreResult<v1::Conversation>;
    /// Ends the snoozes due at `now` (at most `limit`): the conversations woken.
    async fn wake_snoozed(&self, now: i64, limit: u32) -> StoreResult<Vec<v1::Conversation>>;
    /// Reopens a resolved conversation (queued again) and writes the system message.
    async fn reopen(&self, conversation_id: String) -> StoreResult<Changed>;
    /// Rates a resolved conversation.
    async fn rate(
        &self,
        conversation_id: String,
        score: u32,
        comment: String,
    ) -> StoreResult<Changed>;
    /// Raises the visitor's or agent side's read mark (never lowers it).
    async fn mark_read(
        &self,
        conversation_id: String,
        by_visitor: bool,
        seq: u64,
    ) -> StoreResult<v1::Conversation>;
    /// Queued conversations of these topics (any site; no topics: every topic), oldest first
    /// (by `queued_at`, then id), at most `limit`. Positions are not filled in (see core::queue).
    async fn queued(&self, topics: Vec<String>, limit: u32) -> StoreResult<Vec<v1::Conversation>>;
    /// Open conversations per agent.
    async fn agent_loads(&self) -> StoreResult<Vec<(String, u32)>>;

    // --- uploaded files
    /// The stored value of a shared secret, storing `candidate` if there is none yet (every
    /// node of a cluster ends up with the first one written).
    async fn shared_secret(&self, name: String, candidate: String) -> StoreResult<String>;
    /// Records an upload whose bytes are durably stored.
    async fn create_upload(&self, upload: UploadRecord) -> StoreResult<()>;
    async fn upload_by_id(&self, id: &str) -> StoreResult<UploadRecord>;
    /// A conversation's attached files with their messages' authors, newest first (notes'
    /// only `with_notes`); links not signed.
    async fn conversation_uploads(
        &self,
        conversation_id: &str,
        with_notes: bool,
    ) -> StoreResult<Vec<v1::ConversationFile>>;
    /// Uploads never attached and created before `before`, oldest first, at most `limit`.
    async fn stale_uploads(&self, before: i64, limit: u32) -> StoreResult<Vec<UploadRecord>>;
    /// Attached files not deleted yet whose conversation was resolved longer ago than its
    /// site's retention (sites with a retention only), at most `limit`.
    async fn expired_uploads(&self, now: i64, limit: u32) -> StoreResult<Vec<UploadRecord>>;
    /// Deletes unattached upload rows (their bytes are gone already).
    async fn delete_uploads(&self, ids: Vec<String>) -> StoreResult<()>;
    /// Marks attached files deleted (their bytes are gone; the metadata stays on messages).
    async fn mark_uploads_deleted(&self, ids: Vec<String>, at: i64) -> StoreResult<()>;
    /// Files kept and their bytes (metrics).
    async fn upload_totals(&self) -> StoreResult<(u64, u64)>;

    // --- webhooks (see [`webhooks`])
    async fn create_webhook(
        &self,
        endpoint: v1::WebhookEndpoint,
        secret: String,
    ) -> StoreResult<v1::WebhookEndpoint>;
    /// Replaces url, events, description, enabled; and the secret when given.
    async fn update_webhook(
        &self,
        endpoint: v1::WebhookEndpoint,
        secret: Option<String>,
    ) -> StoreResult<v1::WebhookEndpoint>;
    async fn delete_webhook(&self, id: String) -> StoreResult<()>;
    async fn webhook(&self, id: &str) -> StoreResult<v1::WebhookEndpoint>;
    async fn list_webhooks(&self, site_id: Option<String>)
    -> StoreResult<Vec<v1::WebhookEndpoint>>;
    /// Enabled webhook endpoints.
    async fn enabled_webhooks(&self) -> StoreResult<Vec<String>>;
    /// An endpoint's deliveries to attempt now (per conversation only the oldest pending).
    async fn due_webhook_deliveries(
        &self,
        endpoint_id: String,
        now: i64,
        limit: u32,
    ) -> StoreResult<Vec<webhooks::DueDelivery>>;
    /// Takes deliveries for one attempt each (one transaction); which were taken (another
    /// node may hold some).
    async fn claim_webhook_deliveries(
        &self,
        keys: Vec<(String, String)>,
        now: i64,
        lease_until: i64,
    ) -> StoreResult<Vec<bool>>;
    /// Records attempts (one transaction); the reason when the endpoint got disabled.
    async fn record_webhook_attempts(
        &self,
        attempts: Vec<(String, String, webhooks::Attempt)>,
        disable_after_ms: i64,
    ) -> StoreResult<Option<String>>;
    async fn list_webhook_deliveries(
        &self,
        endpoint_id: String,
        state: Option<i64>,
        before: (i64, String),
        limit: u32,
    ) -> StoreResult<Vec<v1::WebhookDelivery>>;
    /// Queues deliveries again; how many.
    async fn resend_webhook_deliveries(
        &self,
        endpoint_id: String,
        event_ids: Vec<String>,
        all_failed: bool,
        now: i64,
    ) -> StoreResult<u32>;

    // --- blocks and the audit log (see [`blocks`])
    /// Stores a block and holds off the visitors it names; the block and those visitors.
    async fn create_block(
        &self,
        block: v1::Block,
        network: Option<ipnet::IpNet>,
    ) -> StoreResult<(v1::Block, Vec<String>)>;
    /// Lifts a block; the block and the visitors it held.
    async fn delete_block(
        &self,
        id: String,
        actor: blocks::Actor,
    ) -> StoreResult<(v1::Block, Vec<String>)>;
    async fn block_by_id(&self, id: &str) -> StoreResult<v1::Block>;
    async fn list_blocks(&self, site_id: &str) -> StoreResult<Vec<v1::Block>>;
    /// A block of the site on the email or a network containing the address.
    async fn matching_block(
        &self,
        site_id: &str,
        email: &str,
        ip: Option<std::net::IpAddr>,
    ) -> StoreResult<Option<v1::Block>>;
    async fn audit_log(
        &self,
        site_id: &str,
        before_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<v1::AuditEntry>>;

    // --- labels (see [`labels`])
    /// Creates (`create`: the id is new) or changes a label.
    async fn put_label(&self, label: v1::Label, create: bool) -> StoreResult<v1::Label>;
    /// Deletes a label; the label and the conversations that carried it.
    async fn delete_label(&self, id: String) -> StoreResult<(v1::Label, Vec<String>)>;
    async fn label_by_id(&self, id: &str) -> StoreResult<v1::Label>;
    async fn list_labels(&self, site_id: &str) -> StoreResult<Vec<v1::Label>>;
    /// Adds and removes labels of the conversation's site; the conversation after.
    async fn label_conversation(
        &self,
        conversation_id: String,
        add: Vec<String>,
        remove: Vec<String>,
    ) -> StoreResult<v1::Conversation>;
    /// Conversations created since `since` per label (one site, or all with "").
    async fn label_report(&self, site_id: String, since: i64) -> StoreResult<Vec<v1::LabelCount>>;

    // --- benchmarks (see [`seed`])
    /// Writes synthetic visitors, conversations and messages in one transaction.
    async fn seed_history(
        &self,
        site_id: String,
        conversations: Vec<seed::SeedConversation>,
    ) -> StoreResult<()>;

    // --- customer context (see [`context`])
    /// Sets and removes validated attribute values in one transaction.
    async fn set_attributes(
        &self,
        write: context::AttributeWrite,
    ) -> StoreResult<context::AttributesWritten>;
    /// Adds a page to a visitor's trail; the visitor, and whether they have a conversation
    /// that is not resolved.
    async fn track_page(
        &self,
        visitor_id: String,
        page: v1::PageView,
    ) -> StoreResult<(v1::Visitor, bool)>;

    // --- email (see [`email`])
    /// Conversations whose continuity email is due.
    async fn due_continuity(&self, now: i64, limit: u32) -> StoreResult<Vec<String>>;
    /// Turns a due pending row into an email (see [`email::take_continuity`]).
    async fn take_continuity(
        &self,
        conversation_id: String,
        now: i64,
        compose: std::sync::Arc<email::Compose>,
    ) -> StoreResult<Option<String>>;
    async fn due_emails(&self, now: i64, limit: u32) -> StoreResult<Vec<email::Outgoing>>;
    async fn claim_email(&self, id: String, now: i64, lease_until: i64) -> StoreResult<bool>;
    async fn record_email(
        &self,
        id: String,
        state: i64,
        next_attempt_at: i64,
        error: String,
        at: i64,
    ) -> StoreResult<()>;
    /// A conversation's emails, newest first (`domain` for their Message-IDs).
    async fn conversation_emails(
        &self,
        conversation_id: String,
        domain: String,
    ) -> StoreResult<Vec<v1::Email>>;
    /// The visitor unsubscribed: no more email to them.
    async fn email_opt_out(&self, visitor_id: String) -> StoreResult<()>;
    /// Conversations whose agent alert is due.
    async fn due_alerts(&self, now: i64, limit: u32) -> StoreResult<Vec<String>>;
    /// Takes a due alert with its emails (see [`email::take_alert`]).
    async fn take_alert(
        &self,
        conversation_id: String,
        emails: Vec<email::NewEmail>,
        now: i64,
    ) -> StoreResult<bool>;
    /// Whether a site's digest of a day ("YYYY-MM-DD") was sent.
    async fn digest_sent(&self, site_id: String, day: String) -> StoreResult<bool>;
    /// Records a site's digest with its emails; false when it was sent already.
    async fn record_digest(
        &self,
        site_id: String,
        day: String,
        emails: Vec<email::NewEmail>,
        now: i64,
    ) -> StoreResult<bool>;
    /// An agent's own alert preference.
    async fn set_agent_alerts(&self, agent_id: String, off: bool) -> StoreResult<()>;
    /// Queues an email unless one of its kind about its conversation was queued since
    /// `unless_since` (0: always); whether it was queued.
    async fn queue_email(&self, email: email::NewEmail, unless_since: i64) -> StoreResult<bool>;

    // --- canned replies
    async fn put_canned_reply(&self, reply: v1::CannedReply) -> StoreResult<v1::CannedReply>;
    async fn delete_canned_reply(&self, id: String) -> StoreResult<()>;
    async fn list_canned_replies(
        &self,
        site_id: Option<String>,
    ) -> StoreResult<Vec<v1::CannedReply>>;

    // --- reports and health
    async fn report_rows(&self, site_id: String, since: i64) -> StoreResult<ReportRows>;
    /// Cheap round trip to the database (readiness).
    async fn ping(&self) -> StoreResult<()>;
    /// Stops taking writes and commits what is queued (shutdown).
    fn close(&self);
}

/// Joins a list for a TEXT column.
pub fn join_list(items: &[String]) -> String {
    items.join("\n")
}

/// Splits a TEXT list column.
pub fn split_list(text: &str) -> Vec<String> {
    text.split('\n')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}
