//! Labels (migration 0009), written once for both engines: a site's labels, and which
//! conversations carry them (the join table, plus the conversation's own `labels` column that
//! every conversation read returns).

use async_trait::async_trait;
use wsmschat::v1;

use super::db::{Db, Row, Value};
use super::sql::CONVERSATION_SELECT;
use super::sql_store::{Engine, SqlStore};
use super::{StoreError, StoreResult, join_list};
use crate::args;
use crate::util::now_ms;

/// Labels one site may define.
pub const MAX_LABELS_PER_SITE: i64 = 100;
/// Labels one conversation may carry.
pub const MAX_LABELS_PER_CONVERSATION: usize = 20;

fn label_from_row(r: &Row) -> v1::Label {
    v1::Label {
        id: r.text(0),
        site_id: r.text(1),
        name: r.text(2),
        color: r.text(3),
        conversations: r.u32(4),
    }
}

const LABEL_SELECT: &str = "SELECT l.id, l.site_id, l.name, l.color, \
     (SELECT COUNT(*) FROM conversation_labels cl WHERE cl.label_id = l.id) FROM labels l";

pub async fn load(db: &mut dyn Db, id: &str) -> StoreResult<v1::Label> {
    let row = db
        .query_one(
            &format!("{LABEL_SELECT} WHERE l.id = $1"),
            args![id],
            "label",
        )
        .await?;
    Ok(label_from_row(&row))
}

/// Creates (a new `id`, not stored yet) or changes a label; names are unique on a site,
/// case-insensitively.
pub async fn put(db: &mut dyn Db, label: &v1::Label, create: bool) -> StoreResult<v1::Label> {
    if let Some(row) = db
        .query_opt(
            "SELECT id FROM labels WHERE site_id = $1 AND LOWER(name) = LOWER($2) AND id <> $3",
            args![&label.site_id, &label.name, &label.id],
        )
        .await?
    {
        return Err(StoreError::Conflict(format!(
            "the site already has a label {:?} ({})",
            label.name,
            row.text(0)
        )));
    }
    if create {
        let count = db
            .query_one(
                "SELECT COUNT(*) FROM labels WHERE site_id = $1",
                args![&label.site_id],
                "count",
            )
            .await?
            .int(0);
        if count >= MAX_LABELS_PER_SITE {
            return Err(StoreError::Exhausted(format!(
                "this site has {count} labels (at most {MAX_LABELS_PER_SITE})"
            )));
        }
        db.exec(
            "INSERT INTO labels (id, site_id, name, color, created_at) VALUES ($1, $2, $3, $4, $5)",
            args![
                &label.id,
                &label.site_id,
                &label.name,
                &label.color,
                now_ms()
            ],
        )
        .await?;
    } else {
        let n = db
            .exec(
                "UPDATE labels SET name = $2, color = $3 WHERE id = $1 AND site_id = $4",
                args![&label.id, &label.name, &label.color, &label.site_id],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound("label"));
        }
    }
    load(db, &label.id).await
}

/// Rewrites a conversation's `labels` column from the join table (by name).
async fn refresh_column(db: &mut dyn Db, conversation_id: &str) -> StoreResult<()> {
    let ids: Vec<String> = db
        .query(
            "SELECT cl.label_id FROM conversation_labels cl JOIN labels l ON l.id = cl.label_id \
             WHERE cl.conversation_id = $1 ORDER BY LOWER(l.name), l.id",
            args![conversation_id],
        )
        .await?
        .iter()
        .map(|r| r.text(0))
        .collect();
    db.exec(
        "UPDATE conversations SET labels = $2 WHERE id = $1",
        args![conversation_id, join_list(&ids)],
    )
    .await?;
    Ok(())
}

/// Deletes a label and takes it off every conversation; the label and those conversations.
pub async fn delete(db: &mut dyn Db, id: &str) -> StoreResult<(v1::Label, Vec<String>)> {
    let label = load(db, id).await?;
    let conversations: Vec<String> = db
        .query(
            "SELECT conversation_id FROM conversation_labels WHERE label_id = $1",
            args![id],
        )
        .await?
        .iter()
        .map(|r| r.text(0))
        .collect();
    db.exec(
        "DELETE FROM conversation_labels WHERE label_id = $1",
        args![id],
    )
    .await?;
    for c in &conversations {
        refresh_column(db, c).await?;
    }
    db.exec("DELETE FROM labels WHERE id = $1", args![id])
        .await?;
    Ok((label, conversations))
}

/// A site's labels (every site's with ""), by name, with how many conversations carry each.
pub async fn list(db: &mut dyn Db, site_id: &str) -> StoreResult<Vec<v1::Label>> {
    Ok(db
        .query(
            &format!(
                "{LABEL_SELECT} WHERE (l.site_id = $1 OR $1 = '') ORDER BY LOWER(l.name), l.id"
            ),
            args![site_id],
        )
        .await?
        .iter()
        .map(label_from_row)
        .collect())
}

/// Adds and removes labels of the conversation's site; the conversation after.
pub async fn label_conversation(
    db: &mut dyn Db,
    conversation_id: &str,
    add: &[String],
    remove: &[String],
) -> StoreResult<v1::Conversation> {
    let site_id = db
        .query_one(
            &format!(
                "SELECT site_id FROM conversations WHERE id = $1{}",
                db.for_update()
            ),
            args![conversation_id],
            "conversation",
        )
        .await?
        .text(0);
    if !add.is_empty() {
        let mut args: Vec<Value> = vec![site_id.into()];
        let list: Vec<String> = add
            .iter()
            .map(|id| {
                args.push(id.into());
                format!("${}", args.len())
            })
            .collect();
        let known = db
            .query(
                &format!(
                    "SELECT id FROM labels WHERE site_id = $1 AND id IN ({})",
                    list.join(", ")
                ),
                &args,
            )
            .await?
            .len();
        if known != add.len() {
            // A label of another site is no more visible than one that does not exist.
            return Err(StoreError::NotFound("label"));
        }
    }
    let now = now_ms();
    for id in remove {
        db.exec(
            "DELETE FROM conversation_labels WHERE conversation_id = $1 AND label_id = $2",
            args![conversation_id, id],
        )
        .await?;
    }
    for id in add {
        let there = db
            .query_opt(
                "SELECT 1 FROM conversation_labels WHERE conversation_id = $1 AND label_id = $2",
                args![conversation_id, id],
            )
            .await?
            .is_some();
        if !there {
            db.exec(
                "INSERT INTO conversation_labels (conversation_id, label_id, created_at) VALUES ($1, $2, $3)",
                args![conversation_id, id, now],
            )
            .await?;
        }
    }
    let count = db
        .query_one(
            "SELECT COUNT(*) FROM conversation_labels WHERE conversation_id = $1",
            args![conversation_id],
            "count",
        )
        .await?
        .int(0);
    if count as usize > MAX_LABELS_PER_CONVERSATION {
        return Err(StoreError::Exhausted(format!(
            "a conversation carries at most {MAX_LABELS_PER_CONVERSATION} labels"
        )));
    }
    refresh_column(db, conversation_id).await?;
    let row = db
        .query_one(
            &format!("{CONVERSATION_SELECT} WHERE c.id = $1"),
            args![conversation_id],
            "conversation",
        )
        .await?;
    Ok(super::rows::conversation_from_row(&row))
}

/// Conversations created since `since` per label (of one site, or all with ""), most first.
pub async fn report(
    db: &mut dyn Db,
    site_id: &str,
    since: i64,
) -> StoreResult<Vec<v1::LabelCount>> {
    Ok(db
        .query(
            "SELECT l.id, l.name, COUNT(*) FROM conversation_labels cl \
             JOIN labels l ON l.id = cl.label_id JOIN conversations c ON c.id = cl.conversation_id \
             WHERE (c.site_id = $1 OR $1 = '') AND c.created_at >= $2 \
             GROUP BY l.id, l.name ORDER BY COUNT(*) DESC, l.name",
            args![site_id, since],
        )
        .await?
        .iter()
        .map(|r| v1::LabelCount {
            label_id: r.text(0),
            name: r.text(1),
            conversations: r.u32(2),
        })
        .collect())
}

// ---------------------------------------------------------------- the store's side

/// Labels and the conversations that carry them.
#[async_trait]
pub trait LabelStore: Send + Sync {
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
}

#[async_trait]
impl<E: Engine> LabelStore for SqlStore<E> {
    async fn put_label(&self, label: v1::Label, create: bool) -> StoreResult<v1::Label> {
        self.write(move |ctx| {
            let label = label.clone();
            Box::pin(async move { put(ctx.db, &label, create).await })
        })
        .await
    }

    async fn delete_label(&self, id: String) -> StoreResult<(v1::Label, Vec<String>)> {
        self.write(move |ctx| {
            let id = id.clone();
            Box::pin(async move { delete(ctx.db, &id).await })
        })
        .await
    }

    async fn label_by_id(&self, id: &str) -> StoreResult<v1::Label> {
        let id = id.to_owned();
        self.read(move |db| Box::pin(async move { load(db, &id).await }))
            .await
    }

    async fn list_labels(&self, site_id: &str) -> StoreResult<Vec<v1::Label>> {
        let site_id = site_id.to_owned();
        self.read(move |db| Box::pin(async move { list(db, &site_id).await }))
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
            Box::pin(async move { label_conversation(ctx.db, &id, &add, &remove).await })
        })
        .await
    }

    async fn label_report(&self, site_id: String, since: i64) -> StoreResult<Vec<v1::LabelCount>> {
        self.read(move |db| Box::pin(async move { report(db, &site_id, since).await }))
            .await
    }
}
