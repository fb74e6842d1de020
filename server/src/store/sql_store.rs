//! The store's logic, written once against [`Db`] and run by both engines (SQLite, PostgreSQL).
//!
//! Writes go through the engine's group commit ([`Engine::write`]); reads run on a reader
//! connection. Concurrency rules that must hold across several server nodes on PostgreSQL use
//! the database's row locks: a message append locks its conversation row (`UPDATE ... RETURNING
//! last_seq`), so seqs are dense and idempotency checks see every committed retry; an assignment
//! locks the conversation and the candidate agents (in id order) before counting loads.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::oneshot;
use wsmschat::v1;

use super::db::{Db, DbFuture, EngineKind, Job, Row, Value, WriteCtx};
use super::sql::*;
use super::*;
use crate::args;
use crate::util::now_ms;

/// A read job: runs on a reader connection.
pub type ReadJob =
    Box<dyn for<'a> FnOnce(&'a mut dyn Db) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> + Send>;

/// What an engine provides: group-committed writes and pooled reads.
#[async_trait]
pub trait Engine: Send + Sync + 'static {
    /// Queues a write for the next batch.
    fn write(&self, job: Job) -> StoreResult<()>;
    /// Runs a read on a reader connection.
    async fn read(&self, job: ReadJob) -> StoreResult<()>;
    /// Stops taking writes and commits what is queued.
    fn close(&self);
}

/// The [`Store`] over an engine.
pub struct SqlStore<E> {
    engine: E,
}

impl<E: Engine> SqlStore<E> {
    pub fn new(engine: E) -> Self {
        Self { engine }
    }

    async fn write<R, F>(&self, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: for<'a, 'c> Fn(&'a mut WriteCtx<'c>) -> DbFuture<'a, R> + Send + Sync + 'static,
    {
        // A job that lost a lock conflict against another node was rolled back to its
        // savepoint: run it again, a few times, before giving up.
        let f = Arc::new(f);
        let mut attempt = 0;
        loop {
            let f = f.clone();
            let result = self.write_once(move |ctx| f(ctx)).await;
            match result {
                Err(StoreError::Busy(_)) if attempt < 5 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(2 << attempt)).await;
                }
                other => return other,
            }
        }
    }

    async fn write_once<R, F>(&self, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: for<'a, 'c> Fn(&'a mut WriteCtx<'c>) -> DbFuture<'a, R> + Send + Sync + 'static,
    {
        let slot: Arc<Mutex<Option<StoreResult<R>>>> = Arc::new(Mutex::new(None));
        let (tx, rx) = oneshot::channel();
        let run_slot = slot.clone();
        let job = Job {
            run: Box::new(move |ctx| {
                let slot = run_slot.clone();
                let fut = f(ctx);
                Box::pin(async move {
                    let result = fut.await;
                    let ok = result.is_ok();
                    *slot.lock().unwrap() = Some(result);
                    ok
                })
            }),
            complete: Box::new(move |commit| {
                let result = slot
                    .lock()
                    .unwrap()
                    .take()
                    .unwrap_or_else(|| Err(StoreError::internal("write did not run")));
                let _ = tx.send(commit.and(result));
            }),
        };
        self.engine.write(job)?;
        rx.await
            .map_err(|_| StoreError::internal("the writer dropped the write"))?
    }

    /// One row decoded, or `NotFound(what)`.
    async fn read_one<T: Send + 'static>(
        &self,
        sql: String,
        args: Vec<Value>,
        what: &'static str,
        decode: fn(&Row) -> T,
    ) -> StoreResult<T> {
        self.read(move |db| {
            Box::pin(async move { Ok(decode(&db.query_one(&sql, &args, what).await?)) })
        })
        .await
    }

    /// All rows decoded.
    async fn read_rows<T: Send + 'static>(
        &self,
        sql: String,
        args: Vec<Value>,
        decode: fn(&Row) -> T,
    ) -> StoreResult<Vec<T>> {
        self.read(move |db| Box::pin(async move { query_rows(db, &sql, &args, decode).await }))
            .await
    }

    /// One statement in the next batch; `NotFound(what)` if it changed nothing and `what` is set.
    async fn write_exec(
        &self,
        sql: &'static str,
        args: Vec<Value>,
        what: Option<&'static str>,
    ) -> StoreResult<()> {
        self.write(move |ctx| {
            let args = args.clone();
            Box::pin(async move {
                let n = ctx.db.exec(sql, &args).await?;
                match what {
                    Some(what) if n == 0 => Err(StoreError::NotFound(what)),
                    _ => Ok(()),
                }
            })
        })
        .await
    }

    async fn read<R, F>(&self, f: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: for<'a> FnOnce(&'a mut dyn Db) -> DbFuture<'a, R> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.engine
            .read(Box::new(move |db| {
                Box::pin(async move {
                    let _ = tx.send(f(db).await);
                })
            }))
            .await?;
        rx.await
            .map_err(|_| StoreError::internal("the read was dropped"))?
    }
}

// ---------------------------------------------------------------- migrations

/// Applies the embedded migrations not yet applied.
pub async fn migrate(db: &mut dyn Db) -> StoreResult<()> {
    db.batch("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
        .await?;
    let current = db
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
            "version",
        )
        .await?
        .int(0);
    for (i, migration) in MIGRATIONS.iter().enumerate() {
        let version = i as i64 + 1;
        if version <= current {
            continue;
        }
        db.batch("BEGIN").await?;
        let applied = async {
            db.batch(migration.sql(db.engine())).await?;
            db.exec(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                args![version, now_ms()],
            )
            .await
        }
        .await;
        match applied {
            Ok(_) => db.batch("COMMIT").await?,
            Err(e) => {
                let _ = db.batch("ROLLBACK").await;
                // Another node may have applied it at the same moment.
                let now = db
                    .query_one(
                        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                        &[],
                        "version",
                    )
                    .await?
                    .int(0);
                if now < version {
                    return Err(e);
                }
            }
        }
        tracing::info!(version, "Applied migration");
    }
    Ok(())
}

// ---------------------------------------------------------------- row decoding

pub(super) fn conversation_from_row(r: &Row) -> v1::Conversation {
    v1::Conversation {
        id: r.text(0),
        site_id: r.text(1),
        visitor_id: r.text(2),
        visitor_name: r.text(3),
        topic: r.text(4),
        status: r.i32(5),
        assignee_id: r.text(6),
        assignee_name: r.text(7),
        queue_position: 0,
        queued_at_ms: r.int(8),
        last_seq: r.u64(9),
        last_message_preview: r.text(10),
        visitor_read_seq: r.u64(11),
        agent_read_seq: r.u64(12),
        created_at_ms: r.int(13),
        updated_at_ms: r.int(14),
        rating: r.u32(15),
        rating_comment: r.text(16),
        agents_online: 0,
        label_ids: split_list(&r.text(17)),
        snoozed: r.opt_int(18).is_some(),
        snoozed_until_ms: r.opt_int(18).unwrap_or(0),
        attributes: super::context::decode_values(&r.text(19)),
    }
}

pub(super) fn message_from_row(r: &Row) -> v1::Message {
    let sys_kind = r.i32(9);
    v1::Message {
        conversation_id: r.text(0),
        seq: r.u64(1),
        client_msg_id: r.text(2),
        kind: r.i32(3),
        author_kind: r.i32(4),
        author_id: r.text(5),
        author_name: r.text(6),
        text: r.text(7),
        created_at_ms: r.int(8),
        system: (sys_kind != 0).then(|| v1::SystemEvent {
            kind: sys_kind,
            agent_id: r.text(10),
            agent_name: r.text(11),
            score: r.u32(12),
        }),
        attachments: decode_attachments(&r.text(13)),
    }
}

/// How a message row keeps its files' metadata: the protobuf list, base64 in a TEXT column.
#[derive(Clone, PartialEq, prost::Message)]
struct StoredAttachments {
    #[prost(message, repeated, tag = "1")]
    items: Vec<v1::Attachment>,
}

fn encode_attachments(items: &[v1::Attachment]) -> String {
    use base64::Engine as _;
    use prost::Message as _;
    if items.is_empty() {
        return String::new();
    }
    let list = StoredAttachments {
        items: items.to_vec(),
    };
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(list.encode_to_vec())
}

fn decode_attachments(text: &str) -> Vec<v1::Attachment> {
    use base64::Engine as _;
    use prost::Message as _;
    if text.is_empty() {
        return Vec::new();
    }
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(text)
        .ok()
        .and_then(|b| StoredAttachments::decode(b.as_slice()).ok())
        .map(|l| l.items)
        .unwrap_or_default()
}

fn upload_from_row(r: &Row) -> UploadRecord {
    UploadRecord {
        id: r.text(0),
        site_id: r.text(1),
        owner_key: r.text(2),
        name: r.text(3),
        content_type: r.text(4),
        size: r.u64(5),
        width: r.u32(6),
        height: r.u32(7),
        thumb_size: r.u64(8),
        created_at: r.int(9),
        conversation_id: r.opt_int(11).map(|_| r.text(10)),
        seq: r.opt_int(11).map(|v| v.max(0) as u64),
        note: r.bool(12),
        deleted_at: r.opt_int(13),
    }
}

pub(super) fn site_from_row(r: &Row) -> v1::Site {
    v1::Site {
        id: r.text(0),
        site_key: r.text(1),
        name: r.text(2),
        allowed_origins: split_list(&r.text(3)),
        topics: split_list(&r.text(4)),
        color: r.text(5),
        greeting: r.text(6),
        identity_secret: r.text(7),
        identity_required: r.bool(8),
        restrict_agents_to_topics: r.bool(9),
        max_file_bytes: r.u64(10),
        file_kinds: r.i32(11),
        file_retention_days: r.u32(12),
        email_delay_minutes: r.u32(13),
        notify_email: r.text(14),
        new_conversations_per_ip_hour: r.u32(15),
        auto_resolve_hours: r.u32(16),
        time_zone: r.text(17),
        opening_hours: decode_hours(&r.text(18)),
        closed_dates: split_list(&r.text(19)),
        away_message: r.text(20),
        widget_texts: decode_texts(&r.text(21)),
        attributes: super::context::decode_definitions(&r.text(22)),
    }
}

/// `Site.widget_texts` as a TEXT column: a JSON array of [key, text].
fn encode_texts(texts: &[v1::WidgetText]) -> String {
    if texts.is_empty() {
        return String::new();
    }
    let pairs: Vec<[&str; 2]> = texts
        .iter()
        .map(|t| [t.key.as_str(), t.text.as_str()])
        .collect();
    serde_json::to_string(&pairs).unwrap_or_default()
}

fn decode_texts(json: &str) -> Vec<v1::WidgetText> {
    serde_json::from_str::<Vec<[String; 2]>>(json)
        .unwrap_or_default()
        .into_iter()
        .map(|[key, text]| v1::WidgetText { key, text })
        .collect()
}

/// `Site.opening_hours` as a TEXT column: "<weekday>:<open>-<close>" per line.
fn encode_hours(hours: &[v1::OpeningHours]) -> String {
    hours
        .iter()
        .map(|h| format!("{}:{}-{}", h.weekday, h.open_minute, h.close_minute))
        .collect::<Vec<_>>()
        .join("\n")
}

fn decode_hours(text: &str) -> Vec<v1::OpeningHours> {
    split_list(text)
        .iter()
        .filter_map(|line| {
            let (weekday, span) = line.split_once(':')?;
            let (open, close) = span.split_once('-')?;
            Some(v1::OpeningHours {
                weekday: weekday.parse().ok()?,
                open_minute: open.parse().ok()?,
                close_minute: close.parse().ok()?,
            })
        })
        .collect()
}

fn agent_from_row(r: &Row) -> v1::Agent {
    v1::Agent {
        id: r.text(0),
        email: r.text(1),
        name: r.text(2),
        role: r.i32(3),
        topics: split_list(&r.text(4)),
        capacity: r.u32(5),
        active: r.bool(6),
        site_ids: split_list(&r.text(7)),
        email_alerts_off: r.bool(8),
    }
}

pub(super) fn visitor_from_row(r: &Row) -> v1::Visitor {
    let user_id = r.text(4);
    v1::Visitor {
        id: r.text(0),
        site_id: r.text(1),
        name: r.text(2),
        email: r.text(3),
        verified: !user_id.is_empty(),
        user_id,
        page_url: r.text(5),
        user_agent: r.text(6),
        locale: r.text(7),
        first_seen_ms: r.int(8),
        last_seen_ms: r.int(9),
        last_ip: r.text(10),
        blocked: r.bool(11),
        attributes: super::context::decode_values(&r.text(12)),
        pages: super::context::decode_pages(&r.text(13)),
    }
}

fn api_key_from_row(r: &Row) -> v1::ApiKey {
    v1::ApiKey {
        id: r.text(0),
        name: r.text(1),
        scopes: split_list(&r.text(2))
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect(),
        created_at_ms: r.int(3),
        active: r.bool(4),
        site_ids: split_list(&r.text(5)),
    }
}

fn canned_from_row(r: &Row) -> v1::CannedReply {
    v1::CannedReply {
        id: r.text(0),
        site_id: r.text(1),
        shortcut: r.text(2),
        text: r.text(3),
    }
}

// ---------------------------------------------------------------- statements

pub(super) async fn load_conversation(db: &mut dyn Db, id: &str) -> StoreResult<v1::Conversation> {
    let row = db
        .query_one(
            &format!("{CONVERSATION_SELECT} WHERE c.id = $1"),
            args![id],
            "conversation",
        )
        .await?;
    Ok(conversation_from_row(&row))
}

async fn load_message(
    db: &mut dyn Db,
    conversation_id: &str,
    seq: u64,
) -> StoreResult<v1::Message> {
    let row = db
        .query_one(
            &format!("{MESSAGE_SELECT} WHERE conversation_id = $1 AND seq = $2"),
            args![conversation_id, seq],
            "message",
        )
        .await?;
    Ok(message_from_row(&row))
}

async fn query_rows<T>(
    db: &mut dyn Db,
    sql: &str,
    args: &[Value],
    decode: fn(&Row) -> T,
) -> StoreResult<Vec<T>> {
    Ok(db.query(sql, args).await?.iter().map(decode).collect())
}

fn preview(text: &str) -> String {
    text.chars().take(PREVIEW_CHARS).collect()
}

/// Appends one message to an existing conversation inside the current transaction: takes the
/// next seq (locking the conversation row), updates its activity and queues the message for
/// fan-out.
async fn insert_message(
    ctx: &mut WriteCtx<'_>,
    m: &NewMessage,
    conversation_id: &str,
    visitor_id: &str,
    seq: u64,
    attachments: Vec<v1::Attachment>,
) -> StoreResult<v1::Message> {
    let now = now_ms();
    ctx.db
        .exec(
            "INSERT INTO messages (conversation_id, seq, author_key, client_msg_id, kind, author_kind, \
             author_id, author_name, text, created_at, sys_kind, sys_agent_id, sys_agent_name, sys_score, \
             attachments) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            args![
                conversation_id,
                seq,
                &m.author_key,
                m.client_msg_id.clone(),
                m.kind as i32,
                m.author_kind as i32,
                &m.author_id,
                &m.author_name,
                &m.text,
                now,
                m.system.as_ref().map(|s| s.kind).unwrap_or(0),
                m.system.as_ref().map(|s| s.agent_id.clone()).unwrap_or_default(),
                m.system.as_ref().map(|s| s.agent_name.clone()).unwrap_or_default(),
                m.system.as_ref().map(|s| s.score).unwrap_or(0),
                encode_attachments(&attachments),
            ],
        )
        .await?;
    let message = v1::Message {
        conversation_id: conversation_id.to_owned(),
        seq,
        client_msg_id: m.client_msg_id.clone().unwrap_or_default(),
        kind: m.kind as i32,
        author_kind: m.author_kind as i32,
        author_id: m.author_id.clone(),
        author_name: m.author_name.clone(),
        text: m.text.clone(),
        created_at_ms: now,
        system: m.system.clone(),
        attachments,
    };
    if !m.alert_topics.is_empty() {
        let topic = match &m.new_conversation {
            Some(n) => n.topic.clone(),
            None => ctx
                .db
                .query_one(
                    "SELECT topic FROM conversations WHERE id = $1",
                    args![conversation_id],
                    "conversation",
                )
                .await?
                .text(0),
        };
        if m.alert_topics
            .iter()
            .any(|t| t.eq_ignore_ascii_case(&topic))
        {
            super::email::queue_alert(ctx.db, conversation_id, now, m.alert_delay_ms).await?;
        }
    }
    if let Some(minute_ms) = m.email_visitor {
        super::email::queue_continuity(ctx.db, conversation_id, now, minute_ms).await?;
    }
    // The outbox: deliveries for the site's webhook endpoints, in this same transaction.
    let webhooks = super::webhooks::enqueue_for_message(
        ctx.db,
        &message,
        visitor_id,
        m.new_conversation.is_some(),
    )
    .await?
        > 0;
    ctx.emitted.push(Committed {
        message: message.clone(),
        visitor_id: visitor_id.to_owned(),
        origin_stream: m.origin_stream,
        webhooks,
    });
    Ok(message)
}

/// Takes the next seq of a conversation and records its activity. The UPDATE locks the row
/// until commit, which serialises appends to one conversation across nodes.
async fn next_seq(
    db: &mut dyn Db,
    m: &NewMessage,
    conversation_id: &str,
    preview_text: &str,
) -> StoreResult<u64> {
    let is_text = m.kind == v1::MessageKind::Text;
    let by_visitor = m.author_kind == v1::AuthorKind::Visitor;
    let by_staff = matches!(
        m.author_kind,
        v1::AuthorKind::Agent | v1::AuthorKind::Service
    );
    // One statement; the optional columns are chosen in the SQL text (a handful of variants),
    // not by flag parameters whose type the engines would infer differently.
    let mut sql = String::from("UPDATE conversations SET last_seq = last_seq + 1, updated_at = $2");
    let mut args: Vec<Value> = vec![conversation_id.into(), now_ms().into()];
    if is_text {
        sql.push_str(", last_preview = $3");
        args.push(preview(preview_text).into());
        if by_visitor {
            sql.push_str(", first_message_at = COALESCE(first_message_at, $2)");
        }
        if by_staff {
            sql.push_str(", first_response_at = COALESCE(first_response_at, $2)");
        }
    }
    sql.push_str(" WHERE id = $1 RETURNING last_seq");
    Ok(db.query_one(&sql, &args, "conversation").await?.u64(0))
}

/// Writes a system message about the conversation.
async fn insert_system(
    ctx: &mut WriteCtx<'_>,
    conversation: &v1::Conversation,
    system: v1::SystemEvent,
) -> StoreResult<v1::Message> {
    let m = NewMessage {
        conversation_id: Some(conversation.id.clone()),
        new_conversation: None,
        client_msg_id: None,
        author_key: "s:".into(),
        kind: v1::MessageKind::System,
        author_kind: v1::AuthorKind::System,
        author_id: String::new(),
        author_name: String::new(),
        text: String::new(),
        system: Some(system),
        require_visitor: None,
        origin_stream: None,
        attachment_ids: Vec::new(),
        email_visitor: None,
        alert_topics: Vec::new(),
        alert_delay_ms: 0,
    };
    let seq = next_seq(ctx.db, &m, &conversation.id, "").await?;
    insert_message(
        ctx,
        &m,
        &conversation.id,
        &conversation.visitor_id,
        seq,
        Vec::new(),
    )
    .await
}

async fn existing_send(db: &mut dyn Db, m: &NewMessage) -> StoreResult<Option<Appended>> {
    let Some(client_msg_id) = &m.client_msg_id else {
        return Ok(None);
    };
    let Some(row) = db
        .query_opt(
            "SELECT conversation_id, seq FROM messages WHERE author_key = $1 AND client_msg_id = $2",
            args![&m.author_key, client_msg_id],
        )
        .await?
    else {
        return Ok(None);
    };
    let (conversation_id, seq) = (row.text(0), row.u64(1));
    Ok(Some(Appended {
        message: load_message(db, &conversation_id, seq).await?,
        duplicate: true,
        conversation: None,
        created: false,
        reopened: false,
    }))
}

async fn append_in_tx(ctx: &mut WriteCtx<'_>, m: NewMessage) -> StoreResult<Appended> {
    let now = now_ms();
    let (conversation_id, created) = match (&m.conversation_id, &m.new_conversation) {
        (Some(id), _) => (id.clone(), false),
        (None, Some(new)) => {
            // A retried first send finds the conversation it created.
            if let Some(found) = existing_send(ctx.db, &m).await? {
                return Ok(found);
            }
            if new.max_open > 0 {
                let open = ctx
                    .db
                    .query_one(
                        "SELECT COUNT(*) FROM conversations WHERE visitor_id = $1 AND status <> $2",
                        args![&new.visitor_id, v1::ConversationStatus::Resolved as i32],
                        "count",
                    )
                    .await?
                    .int(0);
                if open >= new.max_open as i64 {
                    return Err(StoreError::Quota(
                        wsmschat::errors::OPEN_CONVERSATION_LIMIT,
                        format!(
                            "this visitor already has {open} open conversations (at most {})",
                            new.max_open
                        ),
                        None,
                    ));
                }
            }
            if let Some(quota) = &new.ip_quota {
                // Counted in the store, so every node of a cluster shares one count.
                let since = now - 3_600_000;
                let row = ctx
                    .db
                    .query_one(
                        "SELECT COUNT(*), MIN(created_at) FROM conversations \
                         WHERE site_id = $1 AND ip_key = $2 AND created_at > $3",
                        args![&new.site_id, &quota.ip_key, since],
                        "count",
                    )
                    .await?;
                let started = row.int(0);
                if started >= quota.per_hour as i64 {
                    let oldest = row.opt_int(1).unwrap_or(now);
                    let retry_after_s = ((oldest + 3_600_000 - now).max(1000) / 1000) as u64;
                    return Err(StoreError::Quota(
                        wsmschat::errors::NEW_CONVERSATION_QUOTA,
                        format!(
                            "{started} conversations were started from this address in the last hour \
                             (at most {} on this site); try again in {} minutes",
                            quota.per_hour,
                            retry_after_s.div_ceil(60)
                        ),
                        Some(retry_after_s),
                    ));
                }
            }
            ctx.db
                .exec(
                    "INSERT INTO conversations (id, site_id, visitor_id, topic, status, created_at, updated_at, queued_at, ip_key) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6, $6, $7)",
                    args![
                        &new.id,
                        &new.site_id,
                        &new.visitor_id,
                        &new.topic,
                        v1::ConversationStatus::Queued as i32,
                        now,
                        new.ip_quota.as_ref().map(|q| q.ip_key.as_str()).unwrap_or("")
                    ],
                )
                .await?;
            (new.id.clone(), true)
        }
        (None, None) => return Err(StoreError::NotFound("conversation")),
    };
    let row = ctx
        .db
        .query_one(
            &format!(
                "SELECT visitor_id, status, site_id, snoozed_until FROM conversations WHERE id = $1{}",
                ctx.db.for_update()
            ),
            args![&conversation_id],
            "conversation",
        )
        .await?;
    let (visitor_id, status, site_id) = (row.text(0), row.i32(1), row.text(2));
    let snoozed = row.opt_int(3).is_some();
    if let Some(owner) = &m.require_visitor {
        if *owner != visitor_id {
            // Same answer as a missing conversation: ids of others' conversations leak nothing.
            return Err(StoreError::NotFound("conversation"));
        }
    }
    // With the conversation row locked, a retry committed by another node is visible now.
    if !created {
        if let Some(found) = existing_send(ctx.db, &m).await? {
            return Ok(found);
        }
    }
    // The files: each an upload of this author for this site, not sent with another message
    // (checked before anything is written; the rows stay locked until commit).
    let files = claim_uploads(ctx.db, &m, &site_id).await?;
    let mut reopened = false;
    if status == v1::ConversationStatus::Resolved as i32
        && m.author_kind == v1::AuthorKind::Visitor
        && m.kind == v1::MessageKind::Text
    {
        ctx.db
            .exec(
                "UPDATE conversations SET status = $2, assignee_id = NULL, queued_at = $3, resolved_at = NULL \
                 WHERE id = $1",
                args![&conversation_id, v1::ConversationStatus::Queued as i32, now],
            )
            .await?;
        reopened = true;
    }
    // The customer writing ends a snooze (whatever it was until).
    let woke =
        snoozed && m.author_kind == v1::AuthorKind::Visitor && m.kind == v1::MessageKind::Text;
    if woke {
        ctx.db
            .exec(
                "UPDATE conversations SET snoozed_until = NULL WHERE id = $1",
                args![&conversation_id],
            )
            .await?;
    }
    let preview_text = if m.text.trim().is_empty() && !files.is_empty() {
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        format!("\u{1F4CE} {}", names.join(", "))
    } else {
        m.text.clone()
    };
    let seq = next_seq(ctx.db, &m, &conversation_id, &preview_text).await?;
    for f in &files {
        ctx.db
            .exec(
                "UPDATE uploads SET conversation_id = $2, seq = $3, note = $4 WHERE id = $1",
                args![
                    &f.id,
                    &conversation_id,
                    seq,
                    m.kind == v1::MessageKind::Note
                ],
            )
            .await?;
    }
    let attachments = files.iter().map(UploadRecord::attachment).collect();
    let message = insert_message(ctx, &m, &conversation_id, &visitor_id, seq, attachments).await?;
    // The snapshot is re-read only when the conversation itself changed (the hot path of a
    // message in an ongoing conversation skips this join).
    let conversation = if created || reopened || woke {
        Some(load_conversation(ctx.db, &conversation_id).await?)
    } else {
        None
    };
    Ok(Appended {
        message,
        duplicate: false,
        conversation,
        created,
        reopened,
    })
}

/// The uploads a send names, in its order: each must be the author's, for the conversation's
/// site, and not attached yet.
async fn claim_uploads(
    db: &mut dyn Db,
    m: &NewMessage,
    site_id: &str,
) -> StoreResult<Vec<UploadRecord>> {
    let mut files = Vec::with_capacity(m.attachment_ids.len());
    for id in &m.attachment_ids {
        let sql = format!("{UPLOAD_SELECT} WHERE id = $1{}", db.for_update());
        let found = db
            .query_opt(&sql, args![id])
            .await?
            .map(|r| upload_from_row(&r));
        match found {
            Some(u)
                if u.owner_key == m.author_key
                    && u.conversation_id.is_none()
                    && u.deleted_at.is_none()
                    && (u.site_id == site_id || u.site_id.is_empty()) =>
            {
                files.push(u)
            }
            Some(u) if u.owner_key == m.author_key && u.conversation_id.is_some() => {
                return Err(StoreError::Precondition(format!(
                    "attachment {id} was already sent with another message"
                )));
            }
            Some(u) if u.owner_key == m.author_key => {
                return Err(StoreError::Precondition(format!(
                    "attachment {id} was uploaded for another site"
                )));
            }
            // Another's upload gets the same answer as a missing one.
            _ => {
                return Err(StoreError::Precondition(format!(
                    "attachment {id} is not an upload of yours (uploads not sent within a day are deleted)"
                )));
            }
        }
    }
    Ok(files)
}

/// `%\n<site id>\n%` with LIKE wildcards escaped: matches a newline-separated `site_ids`
/// list (wrapped in newlines) that contains the site.
fn site_pattern(site_id: &str) -> String {
    let escaped = site_id
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%\n{escaped}\n%")
}

async fn agent_name(db: &mut dyn Db, agent_id: &str) -> StoreResult<String> {
    Ok(db
        .query_one(
            "SELECT name FROM agents WHERE id = $1 AND active = 1",
            args![agent_id],
            "agent",
        )
        .await?
        .text(0))
}

async fn assign_in_tx(
    ctx: &mut WriteCtx<'_>,
    conversation_id: &str,
    target: AssignTarget,
) -> StoreResult<Option<Changed>> {
    // Lock the conversation first: two nodes cannot assign it at once.
    let lock = format!(
        "SELECT id FROM conversations WHERE id = $1{}",
        ctx.db.for_update()
    );
    ctx.db
        .query_one(&lock, args![conversation_id], "conversation")
        .await?;
    let before = load_conversation(ctx.db, conversation_id).await?;
    let previous = (!before.assignee_id.is_empty()).then(|| before.assignee_id.clone());
    let (agent_id, kind) = match target {
        AssignTarget::LeastLoaded(mut candidates) => {
            if before.status != v1::ConversationStatus::Queued as i32 {
                return Ok(None);
            }
            // Lock candidates in one order (no deadlock between nodes), then count loads:
            // nobody else can assign to them until this transaction ends.
            candidates.sort();
            candidates.dedup();
            let mut best: Option<(i64, i64, String)> = None;
            for candidate in candidates {
                let Some(row) = ctx
                    .db
                    .query_opt(
                        &format!(
                            "SELECT capacity, last_assigned_at FROM agents WHERE id = $1 AND active = 1 \
                             AND (site_ids = '' OR $3 || site_ids || $3 LIKE $2 ESCAPE '\\'){}",
                            ctx.db.for_update()
                        ),
                        args![&candidate, site_pattern(&before.site_id), "\n"],
                    )
                    .await?
                else {
                    continue;
                };
                let (capacity, last_assigned) = (row.int(0), row.int(1));
                let load = ctx
                    .db
                    .query_one(
                        "SELECT COUNT(*) FROM conversations WHERE assignee_id = $1 AND status = $2",
                        args![&candidate, v1::ConversationStatus::Open as i32],
                        "load",
                    )
                    .await?
                    .int(0);
                if load >= capacity {
                    continue;
                }
                if best
                    .as_ref()
                    .is_none_or(|(l, t, _)| (load, last_assigned) < (*l, *t))
                {
                    best = Some((load, last_assigned, candidate));
                }
            }
            match best {
                Some((_, _, id)) => (id, v1::SystemEventKind::Assigned),
                None => return Ok(None),
            }
        }
        AssignTarget::Agent {
            agent_id,
            system_kind,
        } => (agent_id, system_kind),
    };
    let name = agent_name(ctx.db, &agent_id).await?;
    let now = now_ms();
    ctx.db
        .exec(
            "UPDATE conversations SET status = $2, assignee_id = $3, updated_at = $4 WHERE id = $1",
            args![
                conversation_id,
                v1::ConversationStatus::Open as i32,
                &agent_id,
                now
            ],
        )
        .await?;
    ctx.db
        .exec(
            "UPDATE agents SET last_assigned_at = $2 WHERE id = $1",
            args![&agent_id, now],
        )
        .await?;
    let after = load_conversation(ctx.db, conversation_id).await?;
    insert_system(
        ctx,
        &after,
        v1::SystemEvent {
            kind: kind as i32,
            agent_id: agent_id.clone(),
            agent_name: name,
            score: 0,
        },
    )
    .await?;
    Ok(Some(Changed {
        conversation: load_conversation(ctx.db, conversation_id).await?,
        previous_assignee: previous,
    }))
}

/// Open conversations of sites with auto-resolve whose newest message is a staff reply older
/// than the site's hours (`$1`: now, ms). The numbers are ConversationStatus::Open (2),
/// MessageKind::Text (1), AuthorKind::Agent (2) and Service (3); a test pins them.
const IDLE_FROM: &str = "FROM conversations c JOIN sites s ON s.id = c.site_id \
     JOIN messages m ON m.conversation_id = c.id AND m.seq = c.last_seq \
     WHERE c.status = 2 AND s.auto_resolve_hours > 0 AND m.kind = 1 AND m.author_kind IN (2, 3) \
     AND m.created_at < $1 - s.auto_resolve_hours * 3600000 AND c.snoozed_until IS NULL";

async fn set_status_in_tx(
    ctx: &mut WriteCtx<'_>,
    conversation_id: &str,
    resolve: bool,
) -> StoreResult<Changed> {
    let lock = format!(
        "SELECT id FROM conversations WHERE id = $1{}",
        ctx.db.for_update()
    );
    ctx.db
        .query_one(&lock, args![conversation_id], "conversation")
        .await?;
    let before = load_conversation(ctx.db, conversation_id).await?;
    let previous = (!before.assignee_id.is_empty()).then(|| before.assignee_id.clone());
    let now = now_ms();
    let kind = if resolve {
        if before.status == v1::ConversationStatus::Resolved as i32 {
            return Err(StoreError::Precondition(
                "conversation is already resolved".into(),
            ));
        }
        ctx.db
            .exec(
                "UPDATE conversations SET status = $2, resolved_at = $3, updated_at = $3, snoozed_until = NULL WHERE id = $1",
                args![conversation_id, v1::ConversationStatus::Resolved as i32, now],
            )
            .await?;
        v1::SystemEventKind::Resolved
    } else {
        if before.status != v1::ConversationStatus::Resolved as i32 {
            return Err(StoreError::Precondition(
                "only a resolved conversation can be reopened".into(),
            ));
        }
        // Back to the queue; the core assigns it again.
        ctx.db
            .exec(
                "UPDATE conversations SET status = $2, assignee_id = NULL, resolved_at = NULL, queued_at = $3, \
                 updated_at = $3 WHERE id = $1",
                args![conversation_id, v1::ConversationStatus::Queued as i32, now],
            )
            .await?;
        v1::SystemEventKind::Reopened
    };
    let after = load_conversation(ctx.db, conversation_id).await?;
    insert_system(
        ctx,
        &after,
        v1::SystemEvent {
            kind: kind as i32,
            ..Default::default()
        },
    )
    .await?;
    Ok(Changed {
        conversation: load_conversation(ctx.db, conversation_id).await?,
        previous_assignee: previous,
    })
}

async fn rate_in_tx(
    ctx: &mut WriteCtx<'_>,
    conversation_id: &str,
    score: u32,
    comment: &str,
) -> StoreResult<Changed> {
    let before = load_conversation(ctx.db, conversation_id).await?;
    if before.status != v1::ConversationStatus::Resolved as i32 {
        return Err(StoreError::Precondition(
            "only a resolved conversation can be rated".into(),
        ));
    }
    // Once: a rating is the customer's verdict, not a counter (security review F16).
    if before.rating != 0 {
        return Err(StoreError::Precondition(
            "this conversation is already rated".into(),
        ));
    }
    ctx.db
        .exec(
            "UPDATE conversations SET rating = $2, rating_comment = $3, updated_at = $4 WHERE id = $1",
            args![conversation_id, score, comment, now_ms()],
        )
        .await?;
    let after = load_conversation(ctx.db, conversation_id).await?;
    insert_system(
        ctx,
        &after,
        v1::SystemEvent {
            kind: v1::SystemEventKind::Rated as i32,
            score,
            ..Default::default()
        },
    )
    .await?;
    Ok(Changed {
        conversation: load_conversation(ctx.db, conversation_id).await?,
        previous_assignee: None,
    })
}

async fn upsert_visitor_in_tx(db: &mut dyn Db, u: &VisitorUpsert) -> StoreResult<v1::Visitor> {
    let now = now_ms();
    let by_user = match &u.verified_user_id {
        Some(user_id) => db
            .query_opt(
                "SELECT id FROM visitors WHERE site_id = $1 AND user_id = $2",
                args![&u.site_id, user_id],
            )
            .await?
            .map(|r| r.text(0)),
        None => None,
    };
    let by_token = match (&by_user, &u.token_hash) {
        (None, Some(hash)) => db
            .query_opt(
                "SELECT v.id, COALESCE(v.user_id, '') FROM visitor_tokens t JOIN visitors v ON v.id = t.visitor_id \
                 WHERE t.token_hash = $1 AND v.site_id = $2",
                args![hash, &u.site_id],
            )
            .await?
            .map(|r| (r.text(0), r.text(1)))
            // A token of a verified user does not carry over to another identity.
            .filter(|(_, user)| {
                u.verified_user_id.is_none()
                    || user.is_empty()
                    || u.verified_user_id.as_deref() == Some(user)
            })
            .map(|(id, _)| id),
        _ => None,
    };
    let by_id = match &u.visitor_id {
        Some(id) => db
            .query_opt(
                "SELECT id FROM visitors WHERE id = $1 AND site_id = $2",
                args![id, &u.site_id],
            )
            .await?
            .map(|r| r.text(0)),
        None => None,
    };
    let found = by_id.or(by_user).or(by_token);
    // Who the visitor was before (for "visitor.identified").
    let before = match &found {
        Some(id) => db
            .query_opt(
                "SELECT email, COALESCE(user_id, '') FROM visitors WHERE id = $1",
                args![id],
            )
            .await?
            .map(|r| (r.text(0), r.text(1)))
            .unwrap_or_default(),
        None => Default::default(),
    };
    let id = match found {
        Some(id) => {
            // Empty profile fields keep what is stored.
            for (column, value) in [
                ("name", &u.name),
                ("email", &u.email),
                ("page_url", &u.page_url),
                ("user_agent", &u.user_agent),
                ("locale", &u.locale),
            ] {
                if !value.is_empty() {
                    db.exec(
                        &format!("UPDATE visitors SET {column} = $2 WHERE id = $1"),
                        args![&id, value],
                    )
                    .await?;
                }
            }
            db.exec(
                "UPDATE visitors SET user_id = COALESCE(user_id, $2), last_seen = $3, \
                 last_ip = CASE WHEN $4 = '' THEN last_ip ELSE $4 END WHERE id = $1",
                args![&id, u.verified_user_id.clone(), now, &u.last_ip],
            )
            .await?;
            id
        }
        None => {
            db.exec(
                "INSERT INTO visitors (id, site_id, user_id, name, email, page_url, user_agent, locale, first_seen, last_seen, last_ip) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10)",
                args![
                    &u.new_visitor_id,
                    &u.site_id,
                    u.verified_user_id.clone(),
                    &u.name,
                    &u.email,
                    &u.page_url,
                    &u.user_agent,
                    &u.locale,
                    now,
                    &u.last_ip
                ],
            )
            .await?;
            u.new_visitor_id.clone()
        }
    };
    if let Some(page) = &u.page {
        super::context::push_page(db, &id, page).await?;
    }
    if !u.new_token_hash.is_empty() {
        db.exec(
            "INSERT INTO visitor_tokens (token_hash, visitor_id, created_at) VALUES ($1, $2, $3)",
            args![&u.new_token_hash, &id, now],
        )
        .await?;
    }
    let row = db
        .query_one(
            &format!("{VISITOR_SELECT} WHERE id = $1"),
            args![&id],
            "visitor",
        )
        .await?;
    let visitor = visitor_from_row(&row);
    if (!visitor.email.is_empty() && visitor.email != before.0)
        || (!visitor.user_id.is_empty() && visitor.user_id != before.1)
    {
        super::webhooks::enqueue_for_visitor(db, &visitor).await?;
    }
    Ok(visitor)
}

/// Shortest query (in characters) searched for in message text: the trigram indexes on both
/// engines (migration 0015) need three characters to look anything up, and a shorter one
/// would read every message. Names, emails and attribute values are searched at any length.
pub const MIN_TEXT_QUERY_CHARS: usize = 3;

/// Most messages a search reads from the text index: a query matching more (a common word)
/// lists and counts the conversations of the newest this many matches, and says its total is
/// a lower bound ([`Total::capped`]). Reading every match of a word in a third of a million
/// messages costs a third of a second; this many cost a few milliseconds.
pub const SEARCH_MESSAGES: u32 = 5_000;

/// What a search reads: `with` (a `WITH m(id) AS (...)` of the newest matching messages'
/// conversations, or empty for a query too short for the text index) and `set`, a `SELECT` of
/// the ids of every conversation found: message text (through `m`), visitor names and emails,
/// attribute values of the conversation or its visitor. Each part is served by an index
/// (trigram indexes for text, names and emails: migrations 0015 and 0016); the set then drives
/// the count and the page, so a search costs what it finds, not the size of the store. A
/// case-insensitive substring on both engines.
struct Search {
    with: String,
    set: String,
}

fn search_sets(engine: EngineKind, q: &str, arg: &mut impl FnMut(Value) -> String) -> Search {
    let folded = q.to_lowercase();
    let like = format!(
        "%{}%",
        folded
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let p = arg(Value::Text(like));
    let indexed = q.chars().count() >= MIN_TEXT_QUERY_CHARS;
    // SQLite's MATCH argument: one phrase of the query's trigrams, in order (the substring,
    // case-folded), bound once for the message and the visitor table.
    let phrase = match (engine, indexed) {
        (EngineKind::Sqlite, true) => arg(Value::Text(format!("\"{}\"", q.replace('"', "\"\"")))),
        _ => String::new(),
    };
    let mut sets = Vec::new();
    let mut with = String::new();
    if indexed {
        let cap = SEARCH_MESSAGES + 1;
        let messages = match engine {
            // Rowids grow with insertion, so the newest matches come first.
            EngineKind::Sqlite => format!(
                "SELECT conversation_id FROM message_search WHERE message_search MATCH {phrase} \
                 ORDER BY rowid DESC LIMIT {cap}"
            ),
            EngineKind::Postgres => format!(
                "SELECT conversation_id FROM messages WHERE kind = 1 AND text ILIKE {p} \
                 ORDER BY created_at DESC LIMIT {cap}"
            ),
        };
        with = format!("WITH m(id) AS ({messages}) ");
        sets.push("SELECT id FROM m".to_owned());
    }
    sets.push(match (engine, indexed) {
        // Candidates from the trigram table, re-checked against the visitor's current row
        // (the table keeps old names: 0016).
        (EngineKind::Sqlite, true) => format!(
            "SELECT sc.id FROM visitor_search vs CROSS JOIN visitors sv ON sv.id = vs.visitor_id \
             CROSS JOIN conversations sc ON sc.visitor_id = sv.id \
             WHERE visitor_search MATCH {phrase} \
             AND (sv.name LIKE {p} ESCAPE '\\' OR sv.email LIKE {p} ESCAPE '\\')"
        ),
        // SQLite's LIKE ignores ASCII case, as LOWER() folds only ASCII.
        (EngineKind::Sqlite, false) => format!(
            "SELECT sc.id FROM conversations sc JOIN visitors sv ON sv.id = sc.visitor_id \
             WHERE sv.name LIKE {p} ESCAPE '\\' OR sv.email LIKE {p} ESCAPE '\\'"
        ),
        // ILIKE (backslash is its default escape) is what the pg_trgm indexes serve.
        (EngineKind::Postgres, _) => format!(
            "SELECT sc.id FROM conversations sc JOIN visitors sv ON sv.id = sc.visitor_id \
             WHERE sv.name ILIKE {p} OR sv.email ILIKE {p}"
        ),
    });
    sets.push(format!(
        "SELECT av.owner_id FROM attribute_values av WHERE av.folded LIKE {p} ESCAPE '\\'"
    ));
    sets.push(format!(
        "SELECT sc.id FROM conversations sc JOIN attribute_values av ON av.owner_id = sc.visitor_id \
         WHERE av.folded LIKE {p} ESCAPE '\\'"
    ));
    Search {
        with,
        set: sets.join(" UNION "),
    }
}

async fn list_conversations_in(
    db: &mut dyn Db,
    f: &ConversationFilter,
) -> StoreResult<(Vec<v1::Conversation>, Total)> {
    let mut clauses: Vec<String> = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    let mut arg = |v: Value| {
        args.push(v);
        format!("${}", args.len())
    };
    if let Some(status) = f.status {
        let p = arg(Value::Int(status as i64));
        clauses.push(format!("c.status = {p}"));
    }
    if let Some(topic) = &f.topic {
        let p = arg(topic.into());
        clauses.push(format!("c.topic = {p}"));
    }
    if let Some(assignee) = &f.assignee_id {
        let p = arg(assignee.into());
        clauses.push(format!("c.assignee_id = {p}"));
    }
    if f.unassigned {
        clauses.push("c.assignee_id IS NULL".into());
    }
    if let Some(site) = &f.site_id {
        let p = arg(site.into());
        clauses.push(format!("c.site_id = {p}"));
    }
    if let Some(visitor) = &f.visitor_id {
        let p = arg(visitor.into());
        clauses.push(format!("c.visitor_id = {p}"));
    }
    match f.snoozed {
        Some(true) => clauses.push("c.snoozed_until IS NOT NULL".into()),
        Some(false) => clauses.push("c.snoozed_until IS NULL".into()),
        None => {}
    }
    if let Some(label) = &f.label_id {
        let p = arg(label.into());
        clauses.push(format!(
            "EXISTS (SELECT 1 FROM conversation_labels cl WHERE cl.conversation_id = c.id AND cl.label_id = {p})"
        ));
    }
    if let Some((key, value)) = &f.attribute {
        clauses.push(super::context::filter_clause(key.clone(), value, &mut arg));
    }
    if let Some(scope) = &f.scope {
        let mut any = Vec::new();
        for s in scope {
            let site = arg(s.site_id.as_str().into());
            match &s.topics {
                None => any.push(format!("c.site_id = {site}")),
                Some(topics) if topics.is_empty() => {}
                Some(topics) => {
                    let list: Vec<String> = topics
                        .iter()
                        .map(|t| arg(Value::Text(t.to_lowercase())))
                        .collect();
                    any.push(format!(
                        "(c.site_id = {site} AND LOWER(c.topic) IN ({}))",
                        list.join(", ")
                    ));
                }
            }
        }
        if any.is_empty() {
            clauses.push("1 = 0".into());
        } else {
            clauses.push(format!("({})", any.join(" OR ")));
        }
    }
    let search = f
        .query
        .as_deref()
        .map(|q| search_sets(db.engine(), q, &mut arg));
    let where_of = |clauses: &[String]| {
        if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        }
    };
    // A search reads the found set first and looks each conversation up by id (SQLite's CROSS
    // JOIN keeps that order; PostgreSQL's planner picks it from its statistics); a list without
    // one reads conversations by its filters' indexes.
    let (with, from) = match &search {
        Some(s) => (
            s.with.as_str(),
            format!(
                "FROM ({}) found {} conversations c ON c.id = found.id",
                s.set,
                match db.engine() {
                    EngineKind::Sqlite => "CROSS JOIN",
                    EngineKind::Postgres => "JOIN",
                }
            ),
        ),
        None => ("", "FROM conversations c".to_owned()),
    };
    let capped_column = match &search {
        Some(s) if !s.with.is_empty() => format!(", (SELECT COUNT(*) FROM m) > {SEARCH_MESSAGES}"),
        _ => ", 0 = 1".to_owned(),
    };
    let counted = db
        .query_one(
            &format!(
                "{with}SELECT COUNT(*){capped_column} {from}{}",
                where_of(&clauses)
            ),
            &args,
            "count",
        )
        .await?;
    let total = Total {
        count: counted.u32(0),
        capped: counted.bool(1),
    };
    let mut page_args = args.clone();
    if let Some((updated, id)) = &f.after {
        page_args.push(Value::Int(*updated));
        let a = page_args.len();
        page_args.push(id.into());
        let b = page_args.len();
        clauses.push(format!(
            "(c.updated_at < ${a} OR (c.updated_at = ${a} AND c.id < ${b}))"
        ));
    }
    page_args.push(Value::Int(f.limit as i64));
    let limit_p = page_args.len();
    // A search sorts the found ids alone and reads the columns (and the joined names) of the
    // page's rows only.
    let sql = match &search {
        Some(_) => format!(
            "{with}{CONVERSATION_SELECT} WHERE c.id IN (SELECT c.id {from}{} \
             ORDER BY c.updated_at DESC, c.id DESC LIMIT ${limit_p}) \
             ORDER BY c.updated_at DESC, c.id DESC",
            where_of(&clauses)
        ),
        None => format!(
            "{CONVERSATION_SELECT}{} ORDER BY c.updated_at DESC, c.id DESC LIMIT ${limit_p}",
            where_of(&clauses)
        ),
    };
    let rows = query_rows(db, &sql, &page_args, conversation_from_row).await?;
    Ok((rows, total))
}

#[test]
fn the_idle_query_names_the_right_enum_values() {
    assert_eq!(v1::ConversationStatus::Open as i32, 2);
    assert_eq!(v1::MessageKind::Text as i32, 1);
    assert_eq!(
        (v1::AuthorKind::Agent as i32, v1::AuthorKind::Service as i32),
        (2, 3)
    );
}

/// `AND kind <> note` unless notes are wanted (built into the SQL: no flag parameter).
fn notes_filter(with_notes: bool) -> &'static str {
    if with_notes { "" } else { " AND kind <> 2" }
}

#[async_trait]
impl<E: Engine> Store for SqlStore<E> {
    async fn create_site(&self, site: v1::Site) -> StoreResult<v1::Site> {
        self.write(move |ctx| {
            let site = site.clone();
            Box::pin(async move {
                ctx.db
                    .exec(
                        "INSERT INTO sites (id, site_key, name, allowed_origins, topics, color, greeting, \
                         identity_secret, identity_required, created_at, restrict_agents_to_topics, \
                         max_file_bytes, file_kinds, file_retention_days, email_delay_minutes, notify_email, \
                         new_conversations_per_ip_hour, auto_resolve_hours, time_zone, opening_hours, \
                         closed_dates, away_message, widget_texts, attributes) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
                         $19, $20, $21, $22, $23, $24)",
                        args![
                            &site.id,
                            &site.site_key,
                            &site.name,
                            join_list(&site.allowed_origins),
                            join_list(&site.topics),
                            &site.color,
                            &site.greeting,
                            &site.identity_secret,
                            site.identity_required,
                            now_ms(),
                            site.restrict_agents_to_topics,
                            site.max_file_bytes,
                            site.file_kinds,
                            site.file_retention_days,
                            site.email_delay_minutes,
                            &site.notify_email,
                            site.new_conversations_per_ip_hour,
                            site.auto_resolve_hours,
                            &site.time_zone,
                            encode_hours(&site.opening_hours),
                            join_list(&site.closed_dates),
                            &site.away_message,
                            encode_texts(&site.widget_texts),
                            super::context::encode_definitions(&site.attributes)
                        ],
                    )
                    .await?;
                Ok(site)
            })
        })
        .await
    }

    async fn update_site(&self, site: v1::Site) -> StoreResult<v1::Site> {
        self.write(move |ctx| {
            let site = site.clone();
            Box::pin(async move {
                let before = ctx
                    .db
                    .query_opt("SELECT attributes FROM sites WHERE id = $1", args![&site.id])
                    .await?
                    .map(|r| super::context::decode_definitions(&r.text(0)))
                    .unwrap_or_default();
                let n = ctx
                    .db
                    .exec(
                        "UPDATE sites SET name = $2, allowed_origins = $3, topics = $4, color = $5, greeting = $6, \
                         identity_secret = $7, identity_required = $8, restrict_agents_to_topics = $9, \
                         max_file_bytes = $10, file_kinds = $11, file_retention_days = $12, \
                         email_delay_minutes = $13, notify_email = $14, new_conversations_per_ip_hour = $15, \
                         auto_resolve_hours = $16, time_zone = $17, opening_hours = $18, closed_dates = $19, \
                         away_message = $20, widget_texts = $21, attributes = $22 WHERE id = $1",
                        args![
                            &site.id,
                            &site.name,
                            join_list(&site.allowed_origins),
                            join_list(&site.topics),
                            &site.color,
                            &site.greeting,
                            &site.identity_secret,
                            site.identity_required,
                            site.restrict_agents_to_topics,
                            site.max_file_bytes,
                            site.file_kinds,
                            site.file_retention_days,
                            site.email_delay_minutes,
                            &site.notify_email,
                            site.new_conversations_per_ip_hour,
                            site.auto_resolve_hours,
                            &site.time_zone,
                            encode_hours(&site.opening_hours),
                            join_list(&site.closed_dates),
                            &site.away_message,
                            encode_texts(&site.widget_texts),
                            super::context::encode_definitions(&site.attributes)
                        ],
                    )
                    .await?;
                if n == 0 {
                    return Err(StoreError::NotFound("site"));
                }
                super::context::drop_undeclared(ctx.db, &site.id, &before, &site.attributes)
                    .await?;
                let row = ctx
                    .db
                    .query_one(&format!("{SITE_SELECT} WHERE id = $1"), args![&site.id], "site")
                    .await?;
                Ok(site_from_row(&row))
            })
        })
        .await
    }

    async fn list_sites(&self) -> StoreResult<Vec<v1::Site>> {
        self.read_rows(
            format!("{SITE_SELECT} ORDER BY name, id"),
            vec![],
            site_from_row,
        )
        .await
    }

    async fn site_by_key(&self, site_key: &str) -> StoreResult<v1::Site> {
        self.read_one(
            format!("{SITE_SELECT} WHERE site_key = $1"),
            vec![site_key.into()],
            "site",
            site_from_row,
        )
        .await
    }

    async fn site_by_id(&self, id: &str) -> StoreResult<v1::Site> {
        self.read_one(
            format!("{SITE_SELECT} WHERE id = $1"),
            vec![id.into()],
            "site",
            site_from_row,
        )
        .await
    }

    async fn create_agent(
        &self,
        agent: v1::Agent,
        password_hash: String,
    ) -> StoreResult<v1::Agent> {
        self.write(move |ctx| {
            let (agent, password_hash) = (agent.clone(), password_hash.clone());
            Box::pin(async move {
                ctx.db
                    .exec(
                        "INSERT INTO agents (id, email, name, password_hash, role, topics, capacity, active, created_at, site_ids) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                        args![
                            &agent.id,
                            &agent.email,
                            &agent.name,
                            password_hash,
                            agent.role,
                            join_list(&agent.topics),
                            agent.capacity,
                            agent.active,
                            now_ms(),
                            join_list(&agent.site_ids)
                        ],
                    )
                    .await?;
                Ok(agent)
            })
        })
        .await
    }

    async fn update_agent(
        &self,
        agent: v1::Agent,
        password_hash: Option<String>,
    ) -> StoreResult<v1::Agent> {
        self.write(move |ctx| {
            let (agent, password_hash) = (agent.clone(), password_hash.clone());
            Box::pin(async move {
                let n = ctx
                    .db
                    .exec(
                        "UPDATE agents SET name = $2, role = $3, topics = $4, capacity = $5, active = $6, site_ids = $7, \
                         email_alerts_off = $8 WHERE id = $1",
                        args![
                            &agent.id,
                            &agent.name,
                            agent.role,
                            join_list(&agent.topics),
                            agent.capacity,
                            agent.active,
                            join_list(&agent.site_ids),
                            agent.email_alerts_off
                        ],
                    )
                    .await?;
                if n == 0 {
                    return Err(StoreError::NotFound("agent"));
                }
                if let Some(hash) = &password_hash {
                    ctx.db
                        .exec("UPDATE agents SET password_hash = $2 WHERE id = $1", args![&agent.id, hash])
                        .await?;
                }
                // Deactivation and a password reset end every session of the agent.
                if !agent.active || password_hash.is_some() {
                    ctx.db
                        .exec("DELETE FROM agent_sessions WHERE agent_id = $1", args![&agent.id])
                        .await?;
                }
                let row = ctx
                    .db
                    .query_one(&format!("{AGENT_SELECT} WHERE id = $1"), args![&agent.id], "agent")
                    .await?;
                Ok(agent_from_row(&row))
            })
        })
        .await
    }

    async fn list_agents(&self) -> StoreResult<Vec<v1::Agent>> {
        self.read_rows(
            format!("{AGENT_SELECT} ORDER BY name, id"),
            vec![],
            agent_from_row,
        )
        .await
    }

    async fn agent_by_email(&self, email: &str) -> StoreResult<AgentRecord> {
        self.read_one(
            "SELECT id, email, name, role, topics, capacity, active, site_ids, email_alerts_off, \
             password_hash FROM agents WHERE LOWER(email) = LOWER($1)"
                .into(),
            vec![email.into()],
            "agent",
            // Columns 0..=8 are agent_from_row's (AGENT_SELECT's order).
            |row| AgentRecord {
                agent: agent_from_row(row),
                password_hash: row.text(9),
            },
        )
        .await
    }

    async fn agent_by_id(&self, id: &str) -> StoreResult<v1::Agent> {
        self.read_one(
            format!("{AGENT_SELECT} WHERE id = $1"),
            vec![id.into()],
            "agent",
            agent_from_row,
        )
        .await
    }

    async fn create_agent_session(
        &self,
        token_hash: String,
        agent_id: String,
        expires_at: i64,
    ) -> StoreResult<()> {
        self.write(move |ctx| {
            let (token_hash, agent_id) = (token_hash.clone(), agent_id.clone());
            Box::pin(async move {
                let now = now_ms();
                // Expired sessions are swept when new ones are made.
                ctx.db
                    .exec("DELETE FROM agent_sessions WHERE expires_at < $1", args![now])
                    .await?;
                ctx.db
                    .exec(
                        "INSERT INTO agent_sessions (token_hash, agent_id, expires_at, created_at) VALUES ($1, $2, $3, $4)",
                        args![token_hash, agent_id, expires_at, now],
                    )
                    .await?;
                Ok(())
            })
        })
        .await
    }

    async fn agent_by_session(&self, token_hash: &str, now: i64) -> StoreResult<(v1::Agent, i64)> {
        self.read_one(
            "SELECT a.id, a.email, a.name, a.role, a.topics, a.capacity, a.active, a.site_ids, \
             a.email_alerts_off, s.expires_at \
             FROM agent_sessions s JOIN agents a ON a.id = s.agent_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND a.active = 1"
                .into(),
            vec![token_hash.into(), now.into()],
            "session",
            // Columns 0..=8 are agent_from_row's (AGENT_SELECT's order).
            |row| (agent_from_row(row), row.int(9)),
        )
        .await
    }

    async fn delete_agent_session(&self, token_hash: String) -> StoreResult<()> {
        self.write_exec(
            "DELETE FROM agent_sessions WHERE token_hash = $1",
            vec![token_hash.into()],
            None,
        )
        .await
    }

    async fn create_api_key(
        &self,
        key: v1::ApiKey,
        secret_hash: String,
    ) -> StoreResult<v1::ApiKey> {
        self.write(move |ctx| {
            let (key, secret_hash) = (key.clone(), secret_hash.clone());
            Box::pin(async move {
                let scopes: Vec<String> = key.scopes.iter().map(|s| s.to_string()).collect();
                ctx.db
                    .exec(
                        "INSERT INTO api_keys (id, name, secret_hash, scopes, active, created_at, site_ids) \
                         VALUES ($1, $2, $3, $4, 1, $5, $6)",
                        args![
                            &key.id,
                            &key.name,
                            secret_hash,
                            join_list(&scopes),
                            key.created_at_ms,
                            join_list(&key.site_ids)
                        ],
                    )
                    .await?;
                Ok(key)
            })
        })
        .await
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<v1::ApiKey>> {
        self.read_rows(
            format!("{API_KEY_SELECT} ORDER BY created_at DESC, id"),
            vec![],
            api_key_from_row,
        )
        .await
    }

    async fn revoke_api_key(&self, id: String) -> StoreResult<()> {
        self.write_exec(
            "UPDATE api_keys SET active = 0 WHERE id = $1",
            vec![id.into()],
            Some("API key"),
        )
        .await
    }

    async fn api_key_by_secret_hash(&self, secret_hash: &str) -> StoreResult<ApiKeyRecord> {
        self.read_one(
            format!("{API_KEY_SELECT} WHERE secret_hash = $1 AND active = 1"),
            vec![secret_hash.into()],
            "API key",
            |row| ApiKeyRecord {
                key: api_key_from_row(row),
            },
        )
        .await
    }

    async fn upsert_visitor(&self, upsert: VisitorUpsert) -> StoreResult<v1::Visitor> {
        self.write(move |ctx| {
            let upsert = upsert.clone();
            Box::pin(async move { upsert_visitor_in_tx(ctx.db, &upsert).await })
        })
        .await
    }

    async fn visitor_by_token(&self, token_hash: &str) -> StoreResult<v1::Visitor> {
        self.read_one(
            format!("{VISITOR_SELECT} WHERE id = (SELECT visitor_id FROM visitor_tokens WHERE token_hash = $1)"),
            vec![token_hash.into()],
            "visitor",
            visitor_from_row,
        )
        .await
    }

    async fn visitor_by_id(&self, id: &str) -> StoreResult<v1::Visitor> {
        self.read_one(
            format!("{VISITOR_SELECT} WHERE id = $1"),
            vec![id.into()],
            "visitor",
            visitor_from_row,
        )
        .await
    }

    async fn purge_idle_visitors(&self, seen_before_ms: i64, limit: u32) -> StoreResult<u64> {
        self.write(move |ctx| {
            Box::pin(async move {
                // Anonymous visitors who never started a conversation and have not been seen
                // since the cut-off: their tokens, then themselves (a bounded batch per job).
                const IDLE: &str = "SELECT id FROM visitors WHERE user_id IS NULL AND last_seen < $1 \
                     AND NOT EXISTS (SELECT 1 FROM conversations c WHERE c.visitor_id = visitors.id) \
                     ORDER BY last_seen LIMIT $2";
                ctx.db
                    .exec(
                        &format!("DELETE FROM visitor_tokens WHERE visitor_id IN ({IDLE})"),
                        args![seen_before_ms, limit as i64],
                    )
                    .await?;
                ctx.db
                    .exec(
                        &format!("DELETE FROM attribute_values WHERE owner_id IN ({IDLE})"),
                        args![seen_before_ms, limit as i64],
                    )
                    .await?;
                ctx.db
                    .exec(
                        &format!("DELETE FROM visitors WHERE id IN ({IDLE})"),
                        args![seen_before_ms, limit as i64],
                    )
                    .await
            })
        })
        .await
    }

    async fn delete_visitor_token(&self, token_hash: String) -> StoreResult<()> {
        self.write_exec(
            "DELETE FROM visitor_tokens WHERE token_hash = $1",
            vec![token_hash.into()],
            None,
        )
        .await
    }

    async fn append_message(&self, message: NewMessage) -> StoreResult<Appended> {
        self.write(move |ctx| {
            let message = message.clone();
            Box::pin(async move { append_in_tx(ctx, message).await })
        })
        .await
    }

    async fn conversation(&self, id: &str) -> StoreResult<v1::Conversation> {
        self.read_one(
            format!("{CONVERSATION_SELECT} WHERE c.id = $1"),
            vec![id.into()],
            "conversation",
            conversation_from_row,
        )
        .await
    }

    async fn list_conversations(
        &self,
        filter: ConversationFilter,
    ) -> StoreResult<(Vec<v1::Conversation>, Total)> {
        self.read(move |db| Box::pin(async move { list_conversations_in(db, &filter).await }))
            .await
    }

    async fn history(
        &self,
        conversation_id: &str,
        before_seq: u64,
        limit: u32,
        with_notes: bool,
    ) -> StoreResult<(Vec<v1::Message>, bool)> {
        let id = conversation_id.to_owned();
        self.read(move |db| {
            Box::pin(async move {
                let before = if before_seq == 0 { i64::MAX } else { before_seq as i64 };
                let mut rows = query_rows(
                    db,
                    &format!(
                        "{MESSAGE_SELECT} WHERE conversation_id = $1 AND seq < $2{} ORDER BY seq DESC LIMIT $3",
                        notes_filter(with_notes)
                    ),
                    args![id, before, limit as i64 + 1],
                    message_from_row,
                )
                .await?;
                let has_more = rows.len() > limit as usize;
                rows.truncate(limit as usize);
                rows.reverse();
                Ok((rows, has_more))
            })
        })
        .await
    }

    async fn messages_after(
        &self,
        conversation_id: &str,
        after_seq: u64,
        limit: u32,
        with_notes: bool,
    ) -> StoreResult<Vec<v1::Message>> {
        self.read_rows(
            format!(
                "{MESSAGE_SELECT} WHERE conversation_id = $1 AND seq > $2{} ORDER BY seq LIMIT $3",
                notes_filter(with_notes)
            ),
            vec![conversation_id.into(), after_seq.into(), limit.into()],
            message_from_row,
        )
        .await
    }

    async fn assign(
        &self,
        conversation_id: String,
        target: AssignTarget,
    ) -> StoreResult<Option<Changed>> {
        self.write(move |ctx| {
            let (id, target) = (conversation_id.clone(), target.clone());
            Box::pin(async move { assign_in_tx(ctx, &id, target).await })
        })
        .await
    }

    async fn idle_conversations(&self, now: i64, limit: u32) -> StoreResult<Vec<String>> {
        self.read(move |db| {
            Box::pin(async move {
                Ok(db
                    .query(
                        &format!("SELECT c.id {IDLE_FROM} ORDER BY m.created_at LIMIT $2"),
                        args![now, limit as i64],
                    )
                    .await?
                    .iter()
                    .map(|r| r.text(0))
                    .collect())
            })
        })
        .await
    }

    async fn resolve_idle(
        &self,
        conversation_id: String,
        now: i64,
    ) -> StoreResult<Option<Changed>> {
        self.write(move |ctx| {
            let id = conversation_id.clone();
            Box::pin(async move {
                let lock = format!(
                    "SELECT id FROM conversations WHERE id = $1{}",
                    ctx.db.for_update()
                );
                ctx.db.query_one(&lock, args![&id], "conversation").await?;
                // Still idle with the row locked: a reply or a resolve since the scan wins.
                let idle = ctx
                    .db
                    .query_opt(
                        &format!("SELECT c.id {IDLE_FROM} AND c.id = $2"),
                        args![now, &id],
                    )
                    .await?
                    .is_some();
                if !idle {
                    return Ok(None);
                }
                set_status_in_tx(ctx, &id, true).await.map(Some)
            })
        })
        .await
    }

    async fn resolve(&self, conversation_id: String) -> StoreResult<Changed> {
        self.write(move |ctx| {
            let id = conversation_id.clone();
            Box::pin(async move { set_status_in_tx(ctx, &id, true).await })
        })
        .await
    }

    async fn reopen(&self, conversation_id: String) -> StoreResult<Changed> {
        self.write(move |ctx| {
            let id = conversation_id.clone();
            Box::pin(async move { set_status_in_tx(ctx, &id, false).await })
        })
        .await
    }

    async fn rate(
        &self,
        conversation_id: String,
        score: u32,
        comment: String,
    ) -> StoreResult<Changed> {
        self.write(move |ctx| {
            let (id, comment) = (conversation_id.clone(), comment.clone());
            Box::pin(async move { rate_in_tx(ctx, &id, score, &comment).await })
        })
        .await
    }

    async fn mark_read(
        &self,
        conversation_id: String,
        by_visitor: bool,
        seq: u64,
    ) -> StoreResult<v1::Conversation> {
        self.write(move |ctx| {
            let id = conversation_id.clone();
            Box::pin(async move {
                let column = if by_visitor { "visitor_read_seq" } else { "agent_read_seq" };
                ctx.db
                    .exec(
                        &format!(
                            "UPDATE conversations SET {column} = $2 WHERE id = $1 AND {column} < $2 AND last_seq >= $2"
                        ),
                        args![&id, seq],
                    )
                    .await?;
                load_conversation(ctx.db, &id).await
            })
        })
        .await
    }

    async fn queued(&self, topics: Vec<String>, limit: u32) -> StoreResult<Vec<v1::Conversation>> {
        self.read(move |db| {
            Box::pin(async move {
                // No topics: the whole queue (the core's queue index loads it so).
                let topics: Vec<Option<String>> = if topics.is_empty() {
                    vec![None]
                } else {
                    topics.into_iter().map(Some).collect()
                };
                let mut out = Vec::new();
                for topic in topics {
                    let page = match topic {
                        Some(topic) => {
                            query_rows(
                                db,
                                &format!(
                                    "{CONVERSATION_SELECT} WHERE c.status = 1 AND c.topic = $1 \
                                     ORDER BY c.queued_at, c.id LIMIT $2"
                                ),
                                args![topic, limit],
                                conversation_from_row,
                            )
                            .await?
                        }
                        None => {
                            query_rows(
                                db,
                                &format!(
                                    "{CONVERSATION_SELECT} WHERE c.status = 1 \
                                     ORDER BY c.queued_at, c.id LIMIT $1"
                                ),
                                args![limit],
                                conversation_from_row,
                            )
                            .await?
                        }
                    };
                    out.extend(page);
                }
                Ok(out)
            })
        })
        .await
    }

    async fn agent_loads(&self) -> StoreResult<Vec<(String, u32)>> {
        self.read(|db| {
            Box::pin(async move {
                Ok(db
                    .query(
                        "SELECT assignee_id, COUNT(*) FROM conversations WHERE status = 2 AND assignee_id IS NOT NULL \
                         GROUP BY assignee_id",
                        &[],
                    )
                    .await?
                    .iter()
                    .map(|r| (r.text(0), r.u32(1)))
                    .collect())
            })
        })
        .await
    }

    async fn shared_secret(&self, name: String, candidate: String) -> StoreResult<String> {
        self.write(move |ctx| {
            let (name, candidate) = (name.clone(), candidate.clone());
            Box::pin(async move {
                ctx.db
                    .exec(
                        "INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                        args![&name, &candidate],
                    )
                    .await?;
                Ok(ctx
                    .db
                    .query_one(
                        "SELECT value FROM server_secrets WHERE name = $1",
                        args![&name],
                        "secret",
                    )
                    .await?
                    .text(0))
            })
        })
        .await
    }

    async fn create_upload(&self, u: UploadRecord) -> StoreResult<()> {
        self.write(move |ctx| {
            let u = u.clone();
            Box::pin(async move {
                ctx.db
                    .exec(
                        "INSERT INTO uploads (id, site_id, owner_key, name, content_type, size, width, height, \
                         thumb_size, sha256, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, '', $10)",
                        args![
                            &u.id,
                            &u.site_id,
                            &u.owner_key,
                            &u.name,
                            &u.content_type,
                            u.size,
                            u.width,
                            u.height,
                            u.thumb_size,
                            u.created_at
                        ],
                    )
                    .await?;
                Ok(())
            })
        })
        .await
    }

    async fn upload_by_id(&self, id: &str) -> StoreResult<UploadRecord> {
        let id = id.to_owned();
        self.read(move |db| {
            Box::pin(async move {
                let row = db
                    .query_one(
                        &format!("{UPLOAD_SELECT} WHERE id = $1"),
                        args![&id],
                        "file",
                    )
                    .await?;
                Ok(upload_from_row(&row))
            })
        })
        .await
    }

    async fn conversation_uploads(
        &self,
        conversation_id: &str,
        with_notes: bool,
    ) -> StoreResult<Vec<v1::ConversationFile>> {
        let notes = if with_notes { "" } else { " AND u.note = 0" };
        self.read_rows(
            format!(
                "SELECT u.id, u.site_id, u.owner_key, u.name, u.content_type, u.size, u.width, u.height, \
                 u.thumb_size, u.created_at, u.conversation_id, u.seq, u.note, u.deleted_at, \
                 m.author_kind, m.author_name, m.created_at FROM uploads u \
                 JOIN messages m ON m.conversation_id = u.conversation_id AND m.seq = u.seq \
                 WHERE u.conversation_id = $1{notes} ORDER BY u.seq DESC, u.id LIMIT 500"
            ),
            vec![conversation_id.into()],
            |r| {
                let u = upload_from_row(r);
                v1::ConversationFile {
                    seq: u.seq.unwrap_or(0),
                    note: u.note,
                    attachment: Some(u.attachment()),
                    author_kind: r.i32(14),
                    author_name: r.text(15),
                    created_at_ms: r.int(16),
                }
            },
        )
        .await
    }

    async fn stale_uploads(&self, before: i64, limit: u32) -> StoreResult<Vec<UploadRecord>> {
        self.read_rows(
            format!(
                "{UPLOAD_SELECT} WHERE conversation_id IS NULL AND created_at < $1 ORDER BY created_at LIMIT $2"
            ),
            vec![before.into(), limit.into()],
            upload_from_row,
        )
        .await
    }

    async fn expired_uploads(&self, now: i64, limit: u32) -> StoreResult<Vec<UploadRecord>> {
        self.read_rows(
            "SELECT u.id, u.site_id, u.owner_key, u.name, u.content_type, u.size, u.width, u.height, \
             u.thumb_size, u.created_at, u.conversation_id, u.seq, u.note, u.deleted_at FROM uploads u \
             JOIN conversations c ON c.id = u.conversation_id JOIN sites s ON s.id = c.site_id \
             WHERE u.deleted_at IS NULL AND s.file_retention_days > 0 AND c.status = 3 \
             AND c.resolved_at < $1 - s.file_retention_days * 86400000 LIMIT $2"
                .to_owned(),
            vec![now.into(), limit.into()],
            upload_from_row,
        )
        .await
    }

    async fn delete_uploads(&self, ids: Vec<String>) -> StoreResult<()> {
        self.write(move |ctx| {
            let ids = ids.clone();
            Box::pin(async move {
                for id in &ids {
                    ctx.db
                        .exec(
                            "DELETE FROM uploads WHERE id = $1 AND conversation_id IS NULL",
                            args![id],
                        )
                        .await?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn mark_uploads_deleted(&self, ids: Vec<String>, at: i64) -> StoreResult<()> {
        self.write(move |ctx| {
            let ids = ids.clone();
            Box::pin(async move {
                for id in &ids {
                    let n = ctx
                        .db
                        .exec(
                            "UPDATE uploads SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL",
                            args![id, at],
                        )
                        .await?;
                    if n == 0 {
                        continue;
                    }
                    // The message's copy of the metadata says so too (history reads only it).
                    let Some(r) = ctx
                        .db
                        .query_opt(
                            "SELECT m.conversation_id, m.seq, m.attachments FROM uploads u JOIN messages m \
                             ON m.conversation_id = u.conversation_id AND m.seq = u.seq WHERE u.id = $1",
                            args![id],
                        )
                        .await?
                    else {
                        continue;
                    };
                    let mut items = decode_attachments(&r.text(2));
                    for a in items.iter_mut().filter(|a| a.id == *id) {
                        a.deleted = true;
                    }
                    ctx.db
                        .exec(
                            "UPDATE messages SET attachments = $3 WHERE conversation_id = $1 AND seq = $2",
                            args![r.text(0), r.u64(1), encode_attachments(&items)],
                        )
                        .await?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn upload_totals(&self) -> StoreResult<(u64, u64)> {
        self.read(move |db| {
            Box::pin(async move {
                let r = db
                    .query_one(
                        "SELECT COUNT(*), CAST(COALESCE(SUM(size + thumb_size), 0) AS BIGINT) FROM uploads WHERE deleted_at IS NULL",
                        &[],
                        "totals",
                    )
                    .await?;
                Ok((r.u64(0), r.u64(1)))
            })
        })
        .await
    }

    async fn create_webhook(
        &self,
        endpoint: v1::WebhookEndpoint,
        secret: String,
    ) -> StoreResult<v1::WebhookEndpoint> {
        self.write(move |ctx| {
            let (endpoint, secret) = (endpoint.clone(), secret.clone());
            Box::pin(async move { webhooks::create_endpoint(ctx.db, &endpoint, &secret).await })
        })
        .await
    }

    async fn update_webhook(
        &self,
        endpoint: v1::WebhookEndpoint,
        secret: Option<String>,
    ) -> StoreResult<v1::WebhookEndpoint> {
        self.write(move |ctx| {
            let (endpoint, secret) = (endpoint.clone(), secret.clone());
            Box::pin(async move {
                webhooks::update_endpoint(ctx.db, &endpoint, secret.as_deref()).await
            })
        })
        .await
    }

    async fn delete_webhook(&self, id: String) -> StoreResult<()> {
        self.write(move |ctx| {
            let id = id.clone();
            Box::pin(async move { webhooks::delete_endpoint(ctx.db, &id).await })
        })
        .await
    }

    async fn webhook(&self, id: &str) -> StoreResult<v1::WebhookEndpoint> {
        let id = id.to_owned();
        self.read(move |db| Box::pin(async move { webhooks::load_endpoint(db, &id).await }))
            .await
    }

    async fn list_webhooks(
        &self,
        site_id: Option<String>,
    ) -> StoreResult<Vec<v1::WebhookEndpoint>> {
        self.read(move |db| {
            Box::pin(async move { webhooks::list_endpoints(db, site_id.as_deref()).await })
        })
        .await
    }

    async fn enabled_webhooks(&self) -> StoreResult<Vec<String>> {
        self.read(move |db| Box::pin(async move { webhooks::enabled_endpoints(db).await }))
            .await
    }

    async fn due_webhook_deliveries(
        &self,
        endpoint_id: String,
        now: i64,
        limit: u32,
    ) -> StoreResult<Vec<webhooks::DueDelivery>> {
        self.read(move |db| {
            Box::pin(async move { webhooks::due(db, &endpoint_id, now, limit).await })
        })
        .await
    }

    async fn claim_webhook_deliveries(
        &self,
        keys: Vec<(String, String)>,
        now: i64,
        lease_until: i64,
    ) -> StoreResult<Vec<bool>> {
        self.write(move |ctx| {
            let keys = keys.clone();
            Box::pin(async move { webhooks::claim_batch(ctx.db, &keys, now, lease_until).await })
        })
        .await
    }

    async fn record_webhook_attempts(
        &self,
        attempts: Vec<(String, String, webhooks::Attempt)>,
        disable_after_ms: i64,
    ) -> StoreResult<Option<String>> {
        self.write(move |ctx| {
            let attempts = attempts.clone();
            Box::pin(
                async move { webhooks::record_batch(ctx.db, &attempts, disable_after_ms).await },
            )
        })
        .await
    }

    async fn list_webhook_deliveries(
        &self,
        endpoint_id: String,
        state: Option<i64>,
        before: (i64, String),
        limit: u32,
    ) -> StoreResult<Vec<v1::WebhookDelivery>> {
        self.read(move |db| {
            Box::pin(async move {
                webhooks::list_deliveries(db, &endpoint_id, state, (before.0, &before.1), limit)
                    .await
            })
        })
        .await
    }

    async fn resend_webhook_deliveries(
        &self,
        endpoint_id: String,
        event_ids: Vec<String>,
        all_failed: bool,
        now: i64,
    ) -> StoreResult<u32> {
        self.write(move |ctx| {
            let (endpoint_id, event_ids) = (endpoint_id.clone(), event_ids.clone());
            Box::pin(async move {
                webhooks::resend(ctx.db, &endpoint_id, &event_ids, all_failed, now).await
            })
        })
        .await
    }

    async fn create_block(
        &self,
        block: v1::Block,
        network: Option<ipnet::IpNet>,
    ) -> StoreResult<(v1::Block, Vec<String>)> {
        self.write(move |ctx| {
            let block = block.clone();
            Box::pin(async move { super::blocks::create(ctx.db, &block, network).await })
        })
        .await
    }

    async fn delete_block(
        &self,
        id: String,
        actor: super::blocks::Actor,
    ) -> StoreResult<(v1::Block, Vec<String>)> {
        self.write(move |ctx| {
            let (id, actor) = (id.clone(), actor.clone());
            Box::pin(async move { super::blocks::delete(ctx.db, &id, &actor).await })
        })
        .await
    }

    async fn block_by_id(&self, id: &str) -> StoreResult<v1::Block> {
        let id = id.to_owned();
        self.read(move |db| Box::pin(async move { super::blocks::load(db, &id).await }))
            .await
    }

    async fn list_blocks(&self, site_id: &str) -> StoreResult<Vec<v1::Block>> {
        let site_id = site_id.to_owned();
        self.read(move |db| Box::pin(async move { super::blocks::list(db, &site_id).await }))
            .await
    }

    async fn matching_block(
        &self,
        site_id: &str,
        email: &str,
        ip: Option<std::net::IpAddr>,
    ) -> StoreResult<Option<v1::Block>> {
        let (site_id, email) = (site_id.to_owned(), email.to_owned());
        self.read(move |db| {
            Box::pin(async move { super::blocks::matching(db, &site_id, &email, ip).await })
        })
        .await
    }

    async fn audit_log(
        &self,
        site_id: &str,
        before_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<v1::AuditEntry>> {
        let site_id = site_id.to_owned();
        self.read(move |db| {
            Box::pin(async move { super::blocks::audit_log(db, &site_id, before_ms, limit).await })
        })
        .await
    }

    async fn seed_history(
        &self,
        site_id: String,
        conversations: Vec<super::seed::SeedConversation>,
    ) -> StoreResult<()> {
        let conversations = Arc::new(conversations);
        self.write(move |ctx| {
            let (site_id, conversations) = (site_id.clone(), conversations.clone());
            Box::pin(async move { super::seed::write(ctx.db, &site_id, &conversations).await })
        })
        .await
    }

    async fn put_label(&self, label: v1::Label, create: bool) -> StoreResult<v1::Label> {
        self.write(move |ctx| {
            let label = label.clone();
            Box::pin(async move { super::labels::put(ctx.db, &label, create).await })
        })
        .await
    }

    async fn delete_label(&self, id: String) -> StoreResult<(v1::Label, Vec<String>)> {
        self.write(move |ctx| {
            let id = id.clone();
            Box::pin(async move { super::labels::delete(ctx.db, &id).await })
        })
        .await
    }

    async fn label_by_id(&self, id: &str) -> StoreResult<v1::Label> {
        let id = id.to_owned();
        self.read(move |db| Box::pin(async move { super::labels::load(db, &id).await }))
            .await
    }

    async fn list_labels(&self, site_id: &str) -> StoreResult<Vec<v1::Label>> {
        let site_id = site_id.to_owned();
        self.read(move |db| Box::pin(async move { super::labels::list(db, &site_id).await }))
            .await
    }

    async fn snooze(
        &self,
        conversation_id: String,
        until: Option<i64>,
    ) -> StoreResult<v1::Conversation> {
        self.write(move |ctx| {
            let id = conversation_id.clone();
            Box::pin(async move {
                let status = ctx
                    .db
                    .query_one(
                        &format!(
                            "SELECT status FROM conversations WHERE id = $1{}",
                            ctx.db.for_update()
                        ),
                        args![&id],
                        "conversation",
                    )
                    .await?
                    .i32(0);
                match until {
                    Some(until) => {
                        if status != v1::ConversationStatus::Open as i32 {
                            return Err(StoreError::Precondition(
                                "only an open conversation can be snoozed (take or assign it first)"
                                    .into(),
                            ));
                        }
                        ctx.db
                            .exec(
                                "UPDATE conversations SET snoozed_until = $2 WHERE id = $1",
                                args![&id, until],
                            )
                            .await?;
                    }
                    None => {
                        ctx.db
                            .exec(
                                "UPDATE conversations SET snoozed_until = NULL WHERE id = $1",
                                args![&id],
                            )
                            .await?;
                    }
                }
                load_conversation(ctx.db, &id).await
            })
        })
        .await
    }

    async fn wake_snoozed(&self, now: i64, limit: u32) -> StoreResult<Vec<v1::Conversation>> {
        self.write(move |ctx| {
            Box::pin(async move {
                let due: Vec<String> = ctx
                    .db
                    .query(
                        "SELECT id FROM conversations WHERE snoozed_until > 0 AND snoozed_until <= $1 \
                         ORDER BY snoozed_until LIMIT $2",
                        args![now, limit as i64],
                    )
                    .await?
                    .iter()
                    .map(|r| r.text(0))
                    .collect();
                let mut woken = Vec::new();
                for id in due {
                    // Another node's pass, or the customer, may have woken it meanwhile.
                    let n = ctx
                        .db
                        .exec(
                            "UPDATE conversations SET snoozed_until = NULL \
                             WHERE id = $1 AND snoozed_until > 0 AND snoozed_until <= $2",
                            args![&id, now],
                        )
                        .await?;
                    if n > 0 {
                        woken.push(load_conversation(ctx.db, &id).await?);
                    }
                }
                Ok(woken)
            })
        })
        .await
    }

    async fn label_conversation(
        &self,
        conversation_id: String,
        add: Vec<String>,
        remove: Vec<String>,
    ) -> StoreResult<v1::Conversation> {
        self.write(move |ctx| {
            let (id, add, remove) = (conversation_id.clone(), add.clone(), remove.clone());
            Box::pin(
                async move { super::labels::label_conversation(ctx.db, &id, &add, &remove).await },
            )
        })
        .await
    }

    async fn label_report(&self, site_id: String, since: i64) -> StoreResult<Vec<v1::LabelCount>> {
        self.read(move |db| {
            Box::pin(async move { super::labels::report(db, &site_id, since).await })
        })
        .await
    }

    async fn set_attributes(
        &self,
        write: super::context::AttributeWrite,
    ) -> StoreResult<super::context::AttributesWritten> {
        self.write(move |ctx| {
            let write = write.clone();
            Box::pin(async move { super::context::write(ctx.db, &write).await })
        })
        .await
    }

    async fn track_page(
        &self,
        visitor_id: String,
        page: v1::PageView,
    ) -> StoreResult<(v1::Visitor, bool)> {
        self.write(move |ctx| {
            let (id, page) = (visitor_id.clone(), page.clone());
            Box::pin(async move { super::context::track_page(ctx.db, &id, &page).await })
        })
        .await
    }

    async fn due_continuity(&self, now: i64, limit: u32) -> StoreResult<Vec<String>> {
        self.read(move |db| Box::pin(async move { email::due_continuity(db, now, limit).await }))
            .await
    }

    async fn take_continuity(
        &self,
        conversation_id: String,
        now: i64,
        compose: Arc<email::Compose>,
    ) -> StoreResult<Option<String>> {
        self.write(move |ctx| {
            let (conversation_id, compose) = (conversation_id.clone(), compose.clone());
            Box::pin(async move {
                email::take_continuity(ctx.db, &conversation_id, now, compose.as_ref()).await
            })
        })
        .await
    }

    async fn due_emails(&self, now: i64, limit: u32) -> StoreResult<Vec<email::Outgoing>> {
        self.read(move |db| Box::pin(async move { email::due_emails(db, now, limit).await }))
            .await
    }

    async fn claim_email(&self, id: String, now: i64, lease_until: i64) -> StoreResult<bool> {
        self.write(move |ctx| {
            let id = id.clone();
            Box::pin(async move { email::claim(ctx.db, &id, now, lease_until).await })
        })
        .await
    }

    async fn record_email(
        &self,
        id: String,
        state: i64,
        next_attempt_at: i64,
        error: String,
        at: i64,
    ) -> StoreResult<()> {
        self.write(move |ctx| {
            let (id, error) = (id.clone(), error.clone());
            Box::pin(
                async move { email::record(ctx.db, &id, state, next_attempt_at, &error, at).await },
            )
        })
        .await
    }

    async fn conversation_emails(
        &self,
        conversation_id: String,
        domain: String,
    ) -> StoreResult<Vec<v1::Email>> {
        self.read(move |db| {
            Box::pin(async move { email::list(db, &conversation_id, &domain).await })
        })
        .await
    }

    async fn due_alerts(&self, now: i64, limit: u32) -> StoreResult<Vec<String>> {
        self.read(move |db| Box::pin(async move { email::due_alerts(db, now, limit).await }))
            .await
    }

    async fn take_alert(
        &self,
        conversation_id: String,
        emails: Vec<email::NewEmail>,
        now: i64,
    ) -> StoreResult<bool> {
        self.write(move |ctx| {
            let (conversation_id, emails) = (conversation_id.clone(), emails.clone());
            Box::pin(async move { email::take_alert(ctx.db, &conversation_id, &emails, now).await })
        })
        .await
    }

    async fn digest_sent(&self, site_id: String, day: String) -> StoreResult<bool> {
        self.read(move |db| Box::pin(async move { email::digest_sent(db, &site_id, &day).await }))
            .await
    }

    async fn record_digest(
        &self,
        site_id: String,
        day: String,
        emails: Vec<email::NewEmail>,
        now: i64,
    ) -> StoreResult<bool> {
        self.write(move |ctx| {
            let (site_id, day, emails) = (site_id.clone(), day.clone(), emails.clone());
            Box::pin(
                async move { email::record_digest(ctx.db, &site_id, &day, &emails, now).await },
            )
        })
        .await
    }

    async fn set_agent_alerts(&self, agent_id: String, off: bool) -> StoreResult<()> {
        self.write(move |ctx| {
            let agent_id = agent_id.clone();
            Box::pin(async move { email::set_agent_alerts(ctx.db, &agent_id, off).await })
        })
        .await
    }

    async fn queue_email(&self, e: email::NewEmail, unless_since: i64) -> StoreResult<bool> {
        self.write(move |ctx| {
            let e = e.clone();
            Box::pin(async move {
                if unless_since > 0
                    && email::recent(ctx.db, &e.conversation_id, &e.kind, unless_since).await?
                {
                    return Ok(false);
                }
                email::queue(ctx.db, &e, now_ms()).await?;
                Ok(true)
            })
        })
        .await
    }

    async fn email_opt_out(&self, visitor_id: String) -> StoreResult<()> {
        self.write(move |ctx| {
            let visitor_id = visitor_id.clone();
            Box::pin(async move { email::opt_out(ctx.db, &visitor_id).await })
        })
        .await
    }

    async fn put_canned_reply(&self, reply: v1::CannedReply) -> StoreResult<v1::CannedReply> {
        self.write(move |ctx| {
            let reply = reply.clone();
            Box::pin(async move {
                ctx.db
                    .exec(
                        "INSERT INTO canned_replies (id, site_id, shortcut, text) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (site_id, shortcut) DO UPDATE SET text = excluded.text",
                        args![&reply.id, &reply.site_id, &reply.shortcut, &reply.text],
                    )
                    .await?;
                let row = ctx
                    .db
                    .query_one(
                        &format!("{CANNED_SELECT} WHERE site_id = $1 AND shortcut = $2"),
                        args![&reply.site_id, &reply.shortcut],
                        "canned reply",
                    )
                    .await?;
                Ok(canned_from_row(&row))
            })
        })
        .await
    }

    async fn delete_canned_reply(&self, id: String) -> StoreResult<()> {
        self.write_exec(
            "DELETE FROM canned_replies WHERE id = $1",
            vec![id.into()],
            Some("canned reply"),
        )
        .await
    }

    async fn list_canned_replies(
        &self,
        site_id: Option<String>,
    ) -> StoreResult<Vec<v1::CannedReply>> {
        match site_id {
            Some(site) => {
                self.read_rows(
                    format!("{CANNED_SELECT} WHERE site_id = $1 OR site_id = '' ORDER BY shortcut"),
                    vec![site.into()],
                    canned_from_row,
                )
                .await
            }
            None => {
                self.read_rows(
                    format!("{CANNED_SELECT} ORDER BY shortcut"),
                    vec![],
                    canned_from_row,
                )
                .await
            }
        }
    }

    async fn report_rows(&self, site_id: String, since: i64) -> StoreResult<ReportRows> {
        self.read(move |db| {
            Box::pin(async move {
                let conversations = db
                    .query(
                        "SELECT created_at, first_message_at, first_response_at, resolved_at, rating FROM conversations \
                         WHERE site_id = $1 AND created_at >= $2 ORDER BY created_at",
                        args![site_id, since],
                    )
                    .await?
                    .iter()
                    .map(|r| ReportRow {
                        created_at: r.int(0),
                        first_message_at: r.opt_int(1),
                        first_response_at: r.opt_int(2),
                        resolved_at: r.opt_int(3),
                        rating: r.u32(4),
                    })
                    .collect();
                Ok(ReportRows { conversations })
            })
        })
        .await
    }

    fn close(&self) {
        self.engine.close();
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read(|db| {
            Box::pin(async move {
                db.query_one("SELECT 1", &[], "ping").await?;
                Ok(())
            })
        })
        .await
    }
}
