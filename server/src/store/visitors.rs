//! Visitors: find-or-create by verified user id or token, lookups, idle purge.

use async_trait::async_trait;
use wsmschat::v1;

use super::db::Db;
use super::rows::*;
use super::sql::*;
use super::sql_store::{Engine, SqlStore};
use super::*;
use crate::args;
use crate::util::now_ms;

pub async fn upsert_visitor_in_tx(db: &mut dyn Db, u: &VisitorUpsert) -> StoreResult<v1::Visitor> {
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

/// Visitors and their tokens.
#[async_trait]
pub trait VisitorStore: Send + Sync {
    /// Finds (by verified user id, else by token) or creates the visitor; stores the new token.
    async fn upsert_visitor(&self, upsert: VisitorUpsert) -> StoreResult<v1::Visitor>;
    async fn visitor_by_token(&self, token_hash: &str) -> StoreResult<v1::Visitor>;
    async fn visitor_by_id(&self, id: &str) -> StoreResult<v1::Visitor>;
    async fn delete_visitor_token(&self, token_hash: String) -> StoreResult<()>;
    /// Deletes up to `limit` anonymous visitors without conversations last seen before
    /// `seen_before_ms`, with their tokens; returns how many.
    async fn purge_idle_visitors(&self, seen_before_ms: i64, limit: u32) -> StoreResult<u64>;
}

#[async_trait]
impl<E: Engine> VisitorStore for SqlStore<E> {
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

    async fn delete_visitor_token(&self, token_hash: String) -> StoreResult<()> {
        self.write_exec(
            "DELETE FROM visitor_tokens WHERE token_hash = $1",
            vec![token_hash.into()],
            None,
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
}
