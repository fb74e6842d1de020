//! Uploaded files' records (the bytes are in `files::blob`) and shared secrets.

use async_trait::async_trait;
use wsmschat::v1;

use super::rows::*;
use super::sql::*;
use super::sql_store::{Engine, SqlStore};
use super::*;
use crate::args;

/// Uploaded files and the shared secrets their links are signed with.
#[async_trait]
pub trait UploadStore: Send + Sync {
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
}

#[async_trait]
impl<E: Engine> UploadStore for SqlStore<E> {
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
}
