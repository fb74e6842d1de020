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
pub mod directory;
pub mod email;
pub mod group_commit;
pub mod labels;
pub mod listing;
pub mod messages;
pub mod postgres;
pub mod rows;
pub mod search_index;
pub mod seed;
pub mod sql;
pub mod sql_store;
pub mod sqlite;
pub mod uploads;
pub mod visitors;
pub mod webhooks;
pub mod workflow;

pub use blocks::BlockStore;
pub use context::ContextStore;
pub use directory::{AgentStore, ApiKeyStore, CannedReplyStore, SiteStore};
pub use email::EmailStore;
pub use labels::LabelStore;
pub use listing::ListingStore;
pub use messages::MessageStore;
pub use seed::SeedStore;
pub use uploads::UploadStore;
pub use visitors::VisitorStore;
pub use webhooks::WebhookStore;
pub use workflow::WorkflowStore;

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
    /// ([`listing::SEARCH_MESSAGES`]), so only the conversations of the newest of them are
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

/// Everything the server keeps, one trait per aggregate (each in its own file with its SQL,
/// written once for both engines: [`sql_store::SqlStore`]).
#[async_trait]
pub trait Store:
    SiteStore
    + AgentStore
    + ApiKeyStore
    + VisitorStore
    + MessageStore
    + ListingStore
    + WorkflowStore
    + UploadStore
    + WebhookStore
    + BlockStore
    + LabelStore
    + SeedStore
    + ContextStore
    + EmailStore
    + CannedReplyStore
    + Send
    + Sync
    + 'static
{
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
