//! A conversation's life: assignment (the conversation and the candidate agents are locked, in
//! id order, before loads are counted), resolve/reopen, snoozes, ratings, read marks, the queue.

use async_trait::async_trait;
use wsmschat::v1;

use super::db::{Db, WriteCtx};
use super::messages::insert_system;
use super::rows::*;
use super::sql::*;
use super::sql_store::{Engine, SqlStore};
use super::*;
use crate::args;
use crate::util::now_ms;

/// `%\n<site id>\n%` with LIKE wildcards escaped: matches a newline-separated `site_ids`
/// list (wrapped in newlines) that contains the site.
pub fn site_pattern(site_id: &str) -> String {
    let escaped = site_id
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%\n{escaped}\n%")
}

pub async fn agent_name(db: &mut dyn Db, agent_id: &str) -> StoreResult<String> {
    Ok(db
        .query_one(
            "SELECT name FROM agents WHERE id = $1 AND active = 1",
            args![agent_id],
            "agent",
        )
        .await?
        .text(0))
}

pub async fn assign_in_tx(
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
pub const IDLE_FROM: &str = "FROM conversations c JOIN sites s ON s.id = c.site_id \
     JOIN messages m ON m.conversation_id = c.id AND m.seq = c.last_seq \
     WHERE c.status = 2 AND s.auto_resolve_hours > 0 AND m.kind = 1 AND m.author_kind IN (2, 3) \
     AND m.created_at < $1 - s.auto_resolve_hours * 3600000 AND c.snoozed_until IS NULL";

pub async fn set_status_in_tx(
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

pub async fn rate_in_tx(
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

#[test]
fn the_idle_query_names_the_right_enum_values() {
    assert_eq!(v1::ConversationStatus::Open as i32, 2);
    assert_eq!(v1::MessageKind::Text as i32, 1);
    assert_eq!(
        (v1::AuthorKind::Agent as i32, v1::AuthorKind::Service as i32),
        (2, 3)
    );
}

/// A conversation's life: assignment, status, snoozes, ratings, read marks and the queue.
#[async_trait]
pub trait WorkflowStore: Send + Sync {
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
}

#[async_trait]
impl<E: Engine> WorkflowStore for SqlStore<E> {
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
}
