//! Customer context (migration 0014), written once for both engines: the custom attributes a
//! site declares (`sites.attributes`), their values on visitors and conversations, and each
//! visitor's page trail.
//!
//! Values live twice: `attribute_values` (one row per owner and key, with the folded value
//! indexed per site and key) answers searches; the owner's own `attributes` column (a JSON
//! array of `[key, value]`, by key) is what every read returns without a join. Both change in
//! the same transaction. The core validates keys and values against the declarations before
//! anything reaches here.

use async_trait::async_trait;
use wsmschat::v1;

use super::StoreResult;
use super::db::{Db, Value};
use super::rows::{conversation_from_row, visitor_from_row};
use super::sql::{CONVERSATION_SELECT, VISITOR_SELECT};
use super::sql_store::{Engine, SqlStore};
use crate::args;
use crate::util::now_ms;

/// Pages kept per visitor.
pub const MAX_PAGES: usize = 20;

/// `Site.attributes` as a TEXT column: a JSON array of [key, name, type, target, page_writable].
pub fn encode_definitions(defs: &[v1::AttributeDefinition]) -> String {
    if defs.is_empty() {
        return String::new();
    }
    let rows: Vec<(&str, &str, i32, i32, bool)> = defs
        .iter()
        .map(|d| {
            (
                d.key.as_str(),
                d.name.as_str(),
                d.r#type,
                d.target,
                d.page_writable,
            )
        })
        .collect();
    serde_json::to_string(&rows).unwrap_or_default()
}

pub fn decode_definitions(json: &str) -> Vec<v1::AttributeDefinition> {
    serde_json::from_str::<Vec<(String, String, i32, i32, bool)>>(json)
        .unwrap_or_default()
        .into_iter()
        .map(
            |(key, name, r#type, target, page_writable)| v1::AttributeDefinition {
                key,
                name,
                r#type,
                target,
                page_writable,
            },
        )
        .collect()
}

/// An owner's `attributes` column: a JSON array of [key, value].
fn encode_values(values: &[(String, String)]) -> String {
    if values.is_empty() {
        return String::new();
    }
    serde_json::to_string(values).unwrap_or_default()
}

pub fn decode_values(json: &str) -> Vec<v1::AttributeValue> {
    if json.is_empty() {
        return Vec::new();
    }
    serde_json::from_str::<Vec<(String, String)>>(json)
        .unwrap_or_default()
        .into_iter()
        .map(|(key, value)| v1::AttributeValue { key, value })
        .collect()
}

/// `visitors.pages`: a JSON array of [url, title, referrer, at_ms], newest first.
fn encode_pages(pages: &[v1::PageView]) -> String {
    let rows: Vec<(&str, &str, &str, i64)> = pages
        .iter()
        .map(|p| {
            (
                p.url.as_str(),
                p.title.as_str(),
                p.referrer.as_str(),
                p.at_ms,
            )
        })
        .collect();
    serde_json::to_string(&rows).unwrap_or_default()
}

pub fn decode_pages(json: &str) -> Vec<v1::PageView> {
    if json.is_empty() {
        return Vec::new();
    }
    serde_json::from_str::<Vec<(String, String, String, i64)>>(json)
        .unwrap_or_default()
        .into_iter()
        .map(|(url, title, referrer, at_ms)| v1::PageView {
            url,
            title,
            referrer,
            at_ms,
        })
        .collect()
}

/// Which table owns an attribute value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Visitor,
    Conversation,
}

impl Owner {
    fn table(self) -> &'static str {
        match self {
            Owner::Visitor => "visitors",
            Owner::Conversation => "conversations",
        }
    }
}

/// Writes `values` (key, value; "" removes) on one owner and rewrites its column; whether
/// anything changed.
async fn set_values(
    db: &mut dyn Db,
    owner: Owner,
    owner_id: &str,
    site_id: &str,
    values: &[(String, String)],
) -> StoreResult<bool> {
    let now = now_ms();
    let mut changed = false;
    for (key, value) in values {
        let n = if value.is_empty() {
            db.exec(
                "DELETE FROM attribute_values WHERE owner_id = $1 AND key = $2",
                args![owner_id, key],
            )
            .await?
        } else {
            // Only when the value differs: an unchanged write is not news to anyone.
            db.exec(
                "INSERT INTO attribute_values (owner_id, key, site_id, value, folded, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (owner_id, key) DO UPDATE \
                 SET value = excluded.value, folded = excluded.folded, updated_at = excluded.updated_at \
                 WHERE attribute_values.value <> excluded.value",
                args![owner_id, key, site_id, value, value.to_lowercase(), now],
            )
            .await?
        };
        changed |= n > 0;
    }
    if changed {
        refresh_column(db, owner, owner_id).await?;
    }
    Ok(changed)
}

/// Rewrites an owner's `attributes` column from `attribute_values`.
async fn refresh_column(db: &mut dyn Db, owner: Owner, owner_id: &str) -> StoreResult<()> {
    let all: Vec<(String, String)> = db
        .query(
            "SELECT key, value FROM attribute_values WHERE owner_id = $1 ORDER BY key",
            args![owner_id],
        )
        .await?
        .iter()
        .map(|r| (r.text(0), r.text(1)))
        .collect();
    db.exec(
        &format!("UPDATE {} SET attributes = $2 WHERE id = $1", owner.table()),
        args![owner_id, encode_values(&all)],
    )
    .await?;
    Ok(())
}

/// Where a write's conversation attributes go.
#[derive(Debug, Clone)]
pub enum ConversationTarget {
    /// No conversation attributes in the write.
    None,
    /// This conversation (of the write's visitor).
    One(String),
    /// Every conversation of the visitor that is not resolved (the page's own writes).
    Unresolved,
}

/// One SetAttributes, validated.
#[derive(Debug, Clone)]
pub struct AttributeWrite {
    pub site_id: String,
    pub visitor_id: String,
    /// VISITOR attributes.
    pub visitor_values: Vec<(String, String)>,
    /// CONVERSATION attributes and where they go.
    pub conversation_values: Vec<(String, String)>,
    pub conversations: ConversationTarget,
}

/// What a write did.
#[derive(Debug, Clone)]
pub struct AttributesWritten {
    /// The visitor after it.
    pub visitor: v1::Visitor,
    /// The visitor's attributes changed.
    pub visitor_changed: bool,
    /// The conversations whose attributes changed, after it.
    pub conversations: Vec<v1::Conversation>,
}

/// Applies a write in one transaction.
pub async fn write(db: &mut dyn Db, w: &AttributeWrite) -> StoreResult<AttributesWritten> {
    let visitor_changed = if w.visitor_values.is_empty() {
        false
    } else {
        set_values(
            db,
            Owner::Visitor,
            &w.visitor_id,
            &w.site_id,
            &w.visitor_values,
        )
        .await?
    };
    let targets: Vec<String> = match (&w.conversations, w.conversation_values.is_empty()) {
        (_, true) | (ConversationTarget::None, _) => Vec::new(),
        (ConversationTarget::One(id), false) => vec![id.clone()],
        (ConversationTarget::Unresolved, false) => db
            .query(
                "SELECT id FROM conversations WHERE visitor_id = $1 AND status <> $2 ORDER BY id",
                args![&w.visitor_id, v1::ConversationStatus::Resolved as i32],
            )
            .await?
            .iter()
            .map(|r| r.text(0))
            .collect(),
    };
    let mut conversations = Vec::new();
    for id in targets {
        if set_values(
            db,
            Owner::Conversation,
            &id,
            &w.site_id,
            &w.conversation_values,
        )
        .await?
        {
            let row = db
                .query_one(
                    &format!("{CONVERSATION_SELECT} WHERE c.id = $1"),
                    args![&id],
                    "conversation",
                )
                .await?;
            conversations.push(conversation_from_row(&row));
        }
    }
    let row = db
        .query_one(
            &format!("{VISITOR_SELECT} WHERE id = $1"),
            args![&w.visitor_id],
            "visitor",
        )
        .await?;
    Ok(AttributesWritten {
        visitor: visitor_from_row(&row),
        visitor_changed,
        conversations,
    })
}

/// Puts a page at the front of a visitor's trail (a reload of the newest page refreshes it
/// instead), keeping [`MAX_PAGES`]; the page also becomes the visitor's `page_url`.
pub async fn push_page(db: &mut dyn Db, visitor_id: &str, page: &v1::PageView) -> StoreResult<()> {
    let stored = db
        .query_one(
            &format!(
                "SELECT pages FROM visitors WHERE id = $1{}",
                db.for_update()
            ),
            args![visitor_id],
            "visitor",
        )
        .await?
        .text(0);
    let mut pages = decode_pages(&stored);
    if pages.first().is_some_and(|p| p.url == page.url) {
        pages.remove(0);
    }
    pages.insert(0, page.clone());
    pages.truncate(MAX_PAGES);
    db.exec(
        "UPDATE visitors SET pages = $2, page_url = $3, last_seen = $4 WHERE id = $1",
        args![visitor_id, encode_pages(&pages), &page.url, page.at_ms],
    )
    .await?;
    Ok(())
}

/// [`push_page`], then the visitor, and whether they have a conversation that is not
/// resolved (only then is the change worth telling the inbox).
pub async fn track_page(
    db: &mut dyn Db,
    visitor_id: &str,
    page: &v1::PageView,
) -> StoreResult<(v1::Visitor, bool)> {
    push_page(db, visitor_id, page).await?;
    let row = db
        .query_one(
            &format!("{VISITOR_SELECT} WHERE id = $1"),
            args![visitor_id],
            "visitor",
        )
        .await?;
    let live = db
        .query_opt(
            "SELECT 1 FROM conversations WHERE visitor_id = $1 AND status <> $2 LIMIT 1",
            args![visitor_id, v1::ConversationStatus::Resolved as i32],
        )
        .await?
        .is_some();
    Ok((visitor_from_row(&row), live))
}

/// After a site's declarations changed: values of keys no longer declared, or declared with
/// another type or target, are deleted (their owners' columns rewritten). Bounded by the
/// number of owners holding such keys: an admin's edit, not a hot path.
pub async fn drop_undeclared(
    db: &mut dyn Db,
    site_id: &str,
    before: &[v1::AttributeDefinition],
    after: &[v1::AttributeDefinition],
) -> StoreResult<()> {
    for old in before {
        let kept = after
            .iter()
            .any(|d| d.key == old.key && d.r#type == old.r#type && d.target == old.target);
        if kept {
            continue;
        }
        let owners: Vec<String> = db
            .query(
                "SELECT owner_id FROM attribute_values WHERE site_id = $1 AND key = $2",
                args![site_id, &old.key],
            )
            .await?
            .iter()
            .map(|r| r.text(0))
            .collect();
        db.exec(
            "DELETE FROM attribute_values WHERE site_id = $1 AND key = $2",
            args![site_id, &old.key],
        )
        .await?;
        for owner_id in owners {
            let owner = if owner_id.starts_with("c_") {
                Owner::Conversation
            } else {
                Owner::Visitor
            };
            refresh_column(db, owner, &owner_id).await?;
        }
    }
    Ok(())
}

/// The list filter: the conversation's own attribute or its visitor's equals the value.
pub fn filter_clause(key: String, value: &str, arg: &mut dyn FnMut(Value) -> String) -> String {
    let k = arg(key.into());
    let v = arg(Value::Text(value.to_lowercase()));
    format!(
        "EXISTS (SELECT 1 FROM attribute_values av WHERE av.owner_id IN (c.id, c.visitor_id) \
         AND av.key = {k} AND av.folded = {v})"
    )
}

// ---------------------------------------------------------------- the store's side

/// Customer context: attributes and the page trail.
#[async_trait]
pub trait ContextStore: Send + Sync {
    /// Sets and removes validated attribute values in one transaction.
    async fn set_attributes(&self, write: AttributeWrite) -> StoreResult<AttributesWritten>;
    /// Adds a page to a visitor's trail; the visitor, and whether they have a conversation
    /// that is not resolved.
    async fn track_page(
        &self,
        visitor_id: String,
        page: v1::PageView,
    ) -> StoreResult<(v1::Visitor, bool)>;
}

#[async_trait]
impl<E: Engine> ContextStore for SqlStore<E> {
    async fn set_attributes(&self, write: AttributeWrite) -> StoreResult<AttributesWritten> {
        self.write(move |ctx| {
            let write = write.clone();
            Box::pin(async move { self::write(ctx.db, &write).await })
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
            Box::pin(async move { track_page(ctx.db, &id, &page).await })
        })
        .await
    }
}
