//! Messages: the append path (seq, idempotency, system messages), history and resume.
//!
//! A message append locks its conversation row (`UPDATE ... RETURNING last_seq`), so seqs are
//! dense and idempotency checks see every committed retry, on one node or many.

use async_trait::async_trait;
use wsmschat::v1;

use super::db::{Db, Value, WriteCtx};
use super::rows::*;
use super::sql::*;
use super::sql_store::{Engine, SqlStore};
use super::*;
use crate::args;
use crate::util::now_ms;

pub fn preview(text: &str) -> String {
    text.chars().take(PREVIEW_CHARS).collect()
}

/// Appends one message to an existing conversation inside the current transaction: takes the
/// next seq (locking the conversation row), updates its activity and queues the message for
/// fan-out.
pub async fn insert_message(
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
pub async fn next_seq(
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
pub async fn insert_system(
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

pub async fn existing_send(db: &mut dyn Db, m: &NewMessage) -> StoreResult<Option<Appended>> {
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

pub async fn append_in_tx(ctx: &mut WriteCtx<'_>, m: NewMessage) -> StoreResult<Appended> {
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
pub async fn claim_uploads(
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

/// `AND kind <> note` unless notes are wanted (built into the SQL: no flag parameter).
pub fn notes_filter(with_notes: bool) -> &'static str {
    if with_notes { "" } else { " AND kind <> 2" }
}

/// Appending messages and reading a conversation and its history.
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Appends a message durably (group-committed), assigning the next seq; idempotent on
    /// `(author_key, client_msg_id)`. Returns after commit.
    async fn append_message(&self, message: NewMessage) -> StoreResult<Appended>;
    async fn conversation(&self, id: &str) -> StoreResult<v1::Conversation>;
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
}

#[async_trait]
impl<E: Engine> MessageStore for SqlStore<E> {
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
}
