//! The email outbox (migration 0006), written once for both engines.
//!
//! A staff reply writes [`queue_continuity`] in its own transaction; [`take_continuity`] turns
//! a due pending row into one email of the replies the visitor has not seen, in the
//! transaction that deletes the row, so a reply is emailed at most once and never lost.

use std::sync::Arc;

use async_trait::async_trait;
use wsmschat::v1;

use super::db::{Db, Row};
use super::rows::{load_conversation, message_from_row, site_from_row, visitor_from_row};
use super::sql::{MESSAGE_SELECT, SITE_SELECT, VISITOR_SELECT};
use super::sql_store::{Engine, SqlStore};
use super::{StoreError, StoreResult};
use crate::args;
use crate::util::now_ms;

/// Queued, sent, failed (as `EmailState`).
pub const QUEUED: i64 = v1::EmailState::Queued as i64;
pub const SENT: i64 = v1::EmailState::Sent as i64;
pub const FAILED: i64 = v1::EmailState::Failed as i64;
/// The most replies one continuity email carries (the newest are kept).
const MAX_REPLIES: u32 = 50;
/// The default delay, minutes (site setting 0).
pub const DEFAULT_DELAY_MINUTES: i64 = 3;

/// Queues the conversation's continuity email after the site's delay, unless one is queued
/// already (a burst of replies is one email) or the visitor has no address or opted out.
pub async fn queue_continuity(
    db: &mut dyn Db,
    conversation_id: &str,
    now: i64,
    minute_ms: i64,
) -> StoreResult<()> {
    db.exec(
        "INSERT INTO email_pending (conversation_id, due_at, created_at) \
         SELECT c.id, CAST($2 AS BIGINT) + (CASE WHEN s.email_delay_minutes > 0 \
         THEN s.email_delay_minutes ELSE CAST($3 AS BIGINT) END) * CAST($4 AS BIGINT), \
         CAST($2 AS BIGINT) \
         FROM conversations c JOIN visitors v ON v.id = c.visitor_id JOIN sites s ON s.id = c.site_id \
         WHERE c.id = $1 AND v.email <> '' AND v.email_opt_out = 0 \
         ON CONFLICT (conversation_id) DO NOTHING",
        args![conversation_id, now, DEFAULT_DELAY_MINUTES, minute_ms],
    )
    .await?;
    Ok(())
}

/// Conversations whose continuity email is due.
pub async fn due_continuity(db: &mut dyn Db, now: i64, limit: u32) -> StoreResult<Vec<String>> {
    Ok(db
        .query(
            "SELECT conversation_id FROM email_pending WHERE due_at <= $1 ORDER BY due_at LIMIT $2",
            args![now, limit],
        )
        .await?
        .iter()
        .map(|r| r.text(0))
        .collect())
}

/// What a continuity email is made of.
#[derive(Debug, Clone)]
pub struct ContinuityInput {
    pub site: v1::Site,
    pub visitor: v1::Visitor,
    pub conversation: v1::Conversation,
    /// The unseen staff replies, oldest first.
    pub replies: Vec<v1::Message>,
}

/// An email to queue.
#[derive(Debug, Clone, Default)]
pub struct NewEmail {
    pub id: String,
    pub kind: String,
    pub conversation_id: String,
    pub to: String,
    pub from_name: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// "Name: value" lines.
    pub headers: String,
}

/// The composer, run inside the transaction.
pub type Compose = dyn Fn(&ContinuityInput) -> NewEmail + Send + Sync;

/// Takes a due pending row: deletes it and, when the visitor still has unseen replies and an
/// address, queues their email (and remembers the last reply emailed). The email's id, if any.
pub async fn take_continuity(
    db: &mut dyn Db,
    conversation_id: &str,
    now: i64,
    compose: &Compose,
) -> StoreResult<Option<String>> {
    let lock = db.for_update();
    let Some(_) = db
        .query_opt(
            &format!(
                "SELECT due_at FROM email_pending WHERE conversation_id = $1 AND due_at <= $2{lock}"
            ),
            args![conversation_id, now],
        )
        .await?
    else {
        return Ok(None); // another node took it, or not due
    };
    db.exec(
        "DELETE FROM email_pending WHERE conversation_id = $1",
        args![conversation_id],
    )
    .await?;
    let conversation = load_conversation(db, conversation_id).await?;
    let row = db
        .query_one(
            &format!("{VISITOR_SELECT} WHERE id = $1"),
            args![&conversation.visitor_id],
            "visitor",
        )
        .await?;
    let visitor = visitor_from_row(&row);
    let opted_out = db
        .query_one(
            "SELECT email_opt_out FROM visitors WHERE id = $1",
            args![&visitor.id],
            "visitor",
        )
        .await?
        .bool(0);
    if visitor.email.is_empty() || opted_out {
        return Ok(None);
    }
    let emailed = db
        .query_one(
            "SELECT email_seq FROM conversations WHERE id = $1",
            args![conversation_id],
            "conversation",
        )
        .await?
        .u64(0);
    let after = emailed.max(conversation.visitor_read_seq);
    let mut replies: Vec<v1::Message> = db
        .query(
            &format!(
                "{MESSAGE_SELECT} WHERE conversation_id = $1 AND seq > $2 AND kind = $3 \
                 AND author_kind IN ($4, $5) ORDER BY seq DESC LIMIT $6"
            ),
            args![
                conversation_id,
                after,
                v1::MessageKind::Text as i32,
                v1::AuthorKind::Agent as i32,
                v1::AuthorKind::Service as i32,
                MAX_REPLIES
            ],
        )
        .await?
        .iter()
        .map(message_from_row)
        .collect();
    if replies.is_empty() {
        return Ok(None); // seen in the meantime
    }
    replies.reverse();
    let site = site_from_row(
        &db.query_one(
            &format!("{SITE_SELECT} WHERE id = $1"),
            args![&conversation.site_id],
            "site",
        )
        .await?,
    );
    let last = replies.last().map(|m| m.seq).unwrap_or(0);
    let email = compose(&ContinuityInput {
        site,
        visitor,
        conversation,
        replies,
    });
    insert(db, &email, now).await?;
    db.exec(
        "UPDATE conversations SET email_seq = $2 WHERE id = $1",
        args![conversation_id, last],
    )
    .await?;
    Ok(Some(email.id))
}

/// Queues an email (its own transaction).
pub async fn queue(db: &mut dyn Db, e: &NewEmail, now: i64) -> StoreResult<()> {
    insert(db, e, now).await
}

/// Whether an email of `kind` about the conversation was queued since `since`.
pub async fn recent(
    db: &mut dyn Db,
    conversation_id: &str,
    kind: &str,
    since: i64,
) -> StoreResult<bool> {
    Ok(db
        .query_opt(
            "SELECT id FROM emails WHERE conversation_id = $1 AND kind = $2 AND created_at >= $3",
            args![conversation_id, kind, since],
        )
        .await?
        .is_some())
}

async fn insert(db: &mut dyn Db, e: &NewEmail, now: i64) -> StoreResult<()> {
    db.exec(
        "INSERT INTO emails (id, kind, conversation_id, to_addr, from_name, subject, text_body, \
         html_body, headers, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        args![
            &e.id,
            &e.kind,
            &e.conversation_id,
            &e.to,
            &e.from_name,
            &e.subject,
            &e.text,
            &e.html,
            &e.headers,
            now
        ],
    )
    .await?;
    Ok(())
}

/// A queued email as the sender needs it.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub email: NewEmail,
    pub attempts: u32,
}

/// Emails due for an attempt, not held by a node.
pub async fn due_emails(db: &mut dyn Db, now: i64, limit: u32) -> StoreResult<Vec<Outgoing>> {
    Ok(db
        .query(
            "SELECT id, kind, conversation_id, to_addr, from_name, subject, text_body, html_body, \
             headers, attempts FROM emails WHERE state = 1 AND next_attempt_at <= $1 \
             AND lease_until <= $1 ORDER BY next_attempt_at LIMIT $2",
            args![now, limit],
        )
        .await?
        .iter()
        .map(|r: &Row| Outgoing {
            email: NewEmail {
                id: r.text(0),
                kind: r.text(1),
                conversation_id: r.text(2),
                to: r.text(3),
                from_name: r.text(4),
                subject: r.text(5),
                text: r.text(6),
                html: r.text(7),
                headers: r.text(8),
            },
            attempts: r.u32(9),
        })
        .collect())
}

/// Takes an email for one attempt until `lease_until`; false when another node has it.
pub async fn claim(db: &mut dyn Db, id: &str, now: i64, lease_until: i64) -> StoreResult<bool> {
    Ok(db
        .exec(
            "UPDATE emails SET lease_until = $3, attempts = attempts + 1 \
             WHERE id = $1 AND state = 1 AND lease_until <= $2",
            args![id, now, lease_until],
        )
        .await?
        == 1)
}

/// Records an attempt: sent, retry at a time, or failed.
pub async fn record(
    db: &mut dyn Db,
    id: &str,
    state: i64,
    next_attempt_at: i64,
    error: &str,
    at: i64,
) -> StoreResult<()> {
    db.exec(
        "UPDATE emails SET state = $2, next_attempt_at = $3, lease_until = 0, last_error = $4, \
         sent_at = CASE WHEN CAST($2 AS BIGINT) = 2 THEN CAST($5 AS BIGINT) ELSE sent_at END WHERE id = $1",
        args![id, state, next_attempt_at, error, at],
    )
    .await?;
    Ok(())
}

/// A conversation's emails, newest first.
pub async fn list(
    db: &mut dyn Db,
    conversation_id: &str,
    domain: &str,
) -> StoreResult<Vec<v1::Email>> {
    Ok(db
        .query(
            "SELECT id, kind, to_addr, subject, state, attempts, created_at, sent_at, last_error \
             FROM emails WHERE conversation_id = $1 ORDER BY created_at DESC LIMIT 100",
            args![conversation_id],
        )
        .await?
        .iter()
        .map(|r| v1::Email {
            message_id: format!("<{}@{domain}>", r.text(0)),
            id: r.text(0),
            kind: r.text(1),
            to: r.text(2),
            subject: r.text(3),
            state: r.i32(4),
            attempts: r.u32(5),
            created_at_ms: r.int(6),
            sent_at_ms: r.int(7),
            last_error: r.text(8),
        })
        .collect())
}

/// The visitor wants no more email.
pub async fn opt_out(db: &mut dyn Db, visitor_id: &str) -> StoreResult<()> {
    if db
        .exec(
            "UPDATE visitors SET email_opt_out = 1 WHERE id = $1",
            args![visitor_id],
        )
        .await?
        == 0
    {
        return Err(StoreError::NotFound("visitor"));
    }
    db.exec(
        "DELETE FROM email_pending WHERE conversation_id IN \
         (SELECT id FROM conversations WHERE visitor_id = $1)",
        args![visitor_id],
    )
    .await?;
    Ok(())
}

// ---------------------------------------------------------------- agent alerts and digests

/// Queues the conversation's alert to agents (a visitor wrote while nobody of the topic was
/// online), due after `delay_ms`, unless one is queued.
pub async fn queue_alert(
    db: &mut dyn Db,
    conversation_id: &str,
    now: i64,
    delay_ms: i64,
) -> StoreResult<()> {
    db.exec(
        "INSERT INTO alert_pending (conversation_id, due_at, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (conversation_id) DO NOTHING",
        args![conversation_id, now + delay_ms, now],
    )
    .await?;
    Ok(())
}

/// Conversations whose alert is due.
pub async fn due_alerts(db: &mut dyn Db, now: i64, limit: u32) -> StoreResult<Vec<String>> {
    Ok(db
        .query(
            "SELECT conversation_id FROM alert_pending WHERE due_at <= $1 ORDER BY due_at LIMIT $2",
            args![now, limit],
        )
        .await?
        .iter()
        .map(|r| r.text(0))
        .collect())
}

/// Takes a due alert: deletes it and queues `emails` with it; false when another node took
/// it first (then nothing is queued).
pub async fn take_alert(
    db: &mut dyn Db,
    conversation_id: &str,
    emails: &[NewEmail],
    now: i64,
) -> StoreResult<bool> {
    if db
        .exec(
            "DELETE FROM alert_pending WHERE conversation_id = $1",
            args![conversation_id],
        )
        .await?
        == 0
    {
        return Ok(false);
    }
    for e in emails {
        insert(db, e, now).await?;
    }
    Ok(true)
}

/// Records a site's digest of `day` with its emails; false when it was sent already.
pub async fn record_digest(
    db: &mut dyn Db,
    site_id: &str,
    day: &str,
    emails: &[NewEmail],
    now: i64,
) -> StoreResult<bool> {
    if db
        .exec(
            "INSERT INTO digests (site_id, day, sent_at) VALUES ($1, $2, $3) \
             ON CONFLICT (site_id, day) DO NOTHING",
            args![site_id, day, now],
        )
        .await?
        == 0
    {
        return Ok(false);
    }
    for e in emails {
        insert(db, e, now).await?;
    }
    Ok(true)
}

/// Whether a site's digest of `day` was sent.
pub async fn digest_sent(db: &mut dyn Db, site_id: &str, day: &str) -> StoreResult<bool> {
    Ok(db
        .query_opt(
            "SELECT sent_at FROM digests WHERE site_id = $1 AND day = $2",
            args![site_id, day],
        )
        .await?
        .is_some())
}

/// An agent turns alert emails on or off.
pub async fn set_agent_alerts(db: &mut dyn Db, agent_id: &str, off: bool) -> StoreResult<()> {
    if db
        .exec(
            "UPDATE agents SET email_alerts_off = $2 WHERE id = $1",
            args![agent_id, off],
        )
        .await?
        == 0
    {
        return Err(StoreError::NotFound("agent"));
    }
    Ok(())
}

// ---------------------------------------------------------------- the store's side

/// Email continuity, agent alerts and digests.
#[async_trait]
pub trait EmailStore: Send + Sync {
    /// Conversations whose continuity email is due.
    async fn due_continuity(&self, now: i64, limit: u32) -> StoreResult<Vec<String>>;
    /// Turns a due pending row into an email (see [`take_continuity`]).
    async fn take_continuity(
        &self,
        conversation_id: String,
        now: i64,
        compose: std::sync::Arc<Compose>,
    ) -> StoreResult<Option<String>>;
    async fn due_emails(&self, now: i64, limit: u32) -> StoreResult<Vec<Outgoing>>;
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
    /// Takes a due alert with its emails (see [`take_alert`]).
    async fn take_alert(
        &self,
        conversation_id: String,
        emails: Vec<NewEmail>,
        now: i64,
    ) -> StoreResult<bool>;
    /// Whether a site's digest of a day ("YYYY-MM-DD") was sent.
    async fn digest_sent(&self, site_id: String, day: String) -> StoreResult<bool>;
    /// Records a site's digest with its emails; false when it was sent already.
    async fn record_digest(
        &self,
        site_id: String,
        day: String,
        emails: Vec<NewEmail>,
        now: i64,
    ) -> StoreResult<bool>;
    /// An agent's own alert preference.
    async fn set_agent_alerts(&self, agent_id: String, off: bool) -> StoreResult<()>;
    /// Queues an email unless one of its kind about its conversation was queued since
    /// `unless_since` (0: always); whether it was queued.
    async fn queue_email(&self, email: NewEmail, unless_since: i64) -> StoreResult<bool>;
}

#[async_trait]
impl<E: Engine> EmailStore for SqlStore<E> {
    async fn due_continuity(&self, now: i64, limit: u32) -> StoreResult<Vec<String>> {
        self.read(move |db| Box::pin(async move { due_continuity(db, now, limit).await }))
            .await
    }

    async fn take_continuity(
        &self,
        conversation_id: String,
        now: i64,
        compose: Arc<Compose>,
    ) -> StoreResult<Option<String>> {
        self.write(move |ctx| {
            let (conversation_id, compose) = (conversation_id.clone(), compose.clone());
            Box::pin(async move {
                take_continuity(ctx.db, &conversation_id, now, compose.as_ref()).await
            })
        })
        .await
    }

    async fn due_emails(&self, now: i64, limit: u32) -> StoreResult<Vec<Outgoing>> {
        self.read(move |db| Box::pin(async move { due_emails(db, now, limit).await }))
            .await
    }

    async fn claim_email(&self, id: String, now: i64, lease_until: i64) -> StoreResult<bool> {
        self.write(move |ctx| {
            let id = id.clone();
            Box::pin(async move { claim(ctx.db, &id, now, lease_until).await })
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
            Box::pin(async move { record(ctx.db, &id, state, next_attempt_at, &error, at).await })
        })
        .await
    }

    async fn conversation_emails(
        &self,
        conversation_id: String,
        domain: String,
    ) -> StoreResult<Vec<v1::Email>> {
        self.read(move |db| Box::pin(async move { list(db, &conversation_id, &domain).await }))
            .await
    }

    async fn email_opt_out(&self, visitor_id: String) -> StoreResult<()> {
        self.write(move |ctx| {
            let visitor_id = visitor_id.clone();
            Box::pin(async move { opt_out(ctx.db, &visitor_id).await })
        })
        .await
    }

    async fn due_alerts(&self, now: i64, limit: u32) -> StoreResult<Vec<String>> {
        self.read(move |db| Box::pin(async move { due_alerts(db, now, limit).await }))
            .await
    }

    async fn take_alert(
        &self,
        conversation_id: String,
        emails: Vec<NewEmail>,
        now: i64,
    ) -> StoreResult<bool> {
        self.write(move |ctx| {
            let (conversation_id, emails) = (conversation_id.clone(), emails.clone());
            Box::pin(async move { take_alert(ctx.db, &conversation_id, &emails, now).await })
        })
        .await
    }

    async fn digest_sent(&self, site_id: String, day: String) -> StoreResult<bool> {
        self.read(move |db| Box::pin(async move { digest_sent(db, &site_id, &day).await }))
            .await
    }

    async fn record_digest(
        &self,
        site_id: String,
        day: String,
        emails: Vec<NewEmail>,
        now: i64,
    ) -> StoreResult<bool> {
        self.write(move |ctx| {
            let (site_id, day, emails) = (site_id.clone(), day.clone(), emails.clone());
            Box::pin(async move { record_digest(ctx.db, &site_id, &day, &emails, now).await })
        })
        .await
    }

    async fn set_agent_alerts(&self, agent_id: String, off: bool) -> StoreResult<()> {
        self.write(move |ctx| {
            let agent_id = agent_id.clone();
            Box::pin(async move { set_agent_alerts(ctx.db, &agent_id, off).await })
        })
        .await
    }

    async fn queue_email(&self, e: NewEmail, unless_since: i64) -> StoreResult<bool> {
        self.write(move |ctx| {
            let e = e.clone();
            Box::pin(async move {
                if unless_since > 0
                    && recent(ctx.db, &e.conversation_id, &e.kind, unless_since).await?
                {
                    return Ok(false);
                }
                queue(ctx.db, &e, now_ms()).await?;
                Ok(true)
            })
        })
        .await
    }
}
