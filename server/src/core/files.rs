//! Attachments' use cases: who may upload (and against which site's limits), the upload
//! itself (spooled to a file, typed from its bytes, images inspected and stripped of their
//! location, stored durably before its row), who may fetch, and the sweeper that deletes
//! uploads never sent and files past their site's retention.
//!
//! Rights: a visitor uploads for their own site (and conversation); staff upload for a
//! conversation they may see. Only the uploader may attach an upload. A file is fetched by a
//! signed link (handed only to those who get its message: notes' messages never reach a
//! visitor) or by `GetAttachment`/`DownloadAttachment`, which check the conversation like
//! history does.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use wsmschat::v1;

use crate::auth::Principal;
use crate::core::Core;
use crate::core::limits::RateLimiter;
use crate::error::{CoreError, CoreResult};
use crate::files::blob::{BlobStore, BlobStream};
use crate::files::{self, Class, Signer, Variant};
use crate::store::UploadRecord;
use crate::util::{new_id, now_ms, random_bytes};

/// Name of the link-signing key in `server_secrets`.
const LINK_KEY: &str = "file_links";
/// Unsent uploads are deleted after this long.
pub const STALE_UPLOAD_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How often the sweeper runs.
const SWEEP_EVERY: Duration = Duration::from_secs(600);
/// Images decoded at once (each can take hundreds of MB for a few hundred ms).
const DECODE_SLOTS: usize = 2;

/// The core's file state.
pub struct Files {
    blobs: OnceLock<Arc<dyn BlobStore>>,
    spool: OnceLock<PathBuf>,
    decode: tokio::sync::Semaphore,
    per_hour: RateLimiter,
    per_hour_max: u32,
}

impl Files {
    pub fn new(uploads_per_hour: u32) -> Self {
        Self {
            blobs: OnceLock::new(),
            spool: OnceLock::new(),
            decode: tokio::sync::Semaphore::new(DECODE_SLOTS),
            per_hour: RateLimiter::per_hour(uploads_per_hour),
            per_hour_max: uploads_per_hour,
        }
    }
}

/// Why an upload was refused: the reason names the metric label and the HTTP status.
#[derive(Debug)]
pub struct Refused {
    /// too_large, kind, rate, rights, invalid, storage.
    pub reason: &'static str,
    pub error: CoreError,
}

impl From<Refused> for tonic::Status {
    fn from(r: Refused) -> Self {
        r.error.into()
    }
}

fn refused(reason: &'static str, error: CoreError) -> Refused {
    Refused { reason, error }
}

/// Bytes for a human: "10 MB", "512 KB", "1.5 GB" (binary units, as file managers show).
pub fn human_bytes(n: u64) -> String {
    let (value, unit) = match n {
        n if n >= 1 << 30 => (n as f64 / (1u64 << 30) as f64, "GB"),
        n if n >= 1 << 20 => (n as f64 / (1u64 << 20) as f64, "MB"),
        n if n >= 1 << 10 => (n as f64 / 1024.0, "KB"),
        n => return format!("{n} bytes"),
    };
    let text = format!("{value:.1}");
    format!("{} {unit}", text.trim_end_matches(".0"))
}

/// What a new upload is.
#[derive(Debug, Clone, Default)]
pub struct UploadStart {
    /// The file name as given.
    pub name: String,
    /// The conversation it is for ("" for a visitor's next new conversation).
    pub conversation_id: String,
    /// The size announced (Content-Length), if any.
    pub declared_size: Option<u64>,
}

/// An upload in progress: bytes go to a spool file; dropped unfinished, the file goes too.
pub struct Upload {
    core: Arc<Core>,
    site_id: String,
    owner_key: String,
    name: String,
    max: u64,
    kinds: v1::FileKinds,
    path: PathBuf,
    file: Option<tokio::fs::File>,
    size: u64,
    head: Vec<u8>,
    sniffed: Option<(String, Class)>,
    done: bool,
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Core {
    /// Sets where files are kept and loads (or creates) the link-signing key every node shares.
    pub async fn init_files(&self, blobs: Arc<dyn BlobStore>, spool: PathBuf) -> CoreResult<()> {
        std::fs::create_dir_all(&spool).map_err(CoreError::internal)?;
        let candidate = hex::encode(random_bytes::<32>());
        let key = self.store.shared_secret(LINK_KEY.into(), candidate).await?;
        self.hub.signer.set_key(key.as_bytes());
        tracing::info!(store = %blobs.describe(), "Files stored in");
        let _ = self.files.blobs.set(blobs);
        let _ = self.files.spool.set(spool);
        Ok(())
    }

    fn blobs(&self) -> CoreResult<&Arc<dyn BlobStore>> {
        self.files
            .blobs
            .get()
            .ok_or_else(|| CoreError::Unavailable("file storage is not configured".into()))
    }

    /// Signs a message's file links for whoever receives it.
    pub(crate) fn sign(&self, m: &mut v1::Message) {
        if !m.attachments.is_empty() {
            self.hub.signer.sign_message(m, "", now_ms());
        }
    }

    /// The signer of file links (the HTTP routes verify with it).
    pub fn signer(&self) -> &Signer {
        &self.hub.signer
    }

    /// Starts an upload: checks the caller's right to upload there, the rates and the
    /// announced size (a file over the limit is refused before its first byte).
    pub async fn begin_upload(
        self: &Arc<Self>,
        principal: &Principal,
        ip: Option<std::net::IpAddr>,
        start: UploadStart,
    ) -> Result<Upload, Refused> {
        let invalid = |m: String| refused("invalid", CoreError::InvalidArgument(m));
        let rights = |e: CoreError| refused("rights", e);
        let owner_key = principal.author_key();
        self.charge(&owner_key, ip)
            .map_err(|e| refused("rate", e))?;
        let site_id = match principal {
            Principal::Visitor { site_id, .. } => {
                if !start.conversation_id.is_empty() {
                    self.visible_conversation(principal, &start.conversation_id)
                        .await
                        .map_err(rights)?;
                }
                site_id.clone()
            }
            _ => {
                Self::require_staff(principal).map_err(rights)?;
                if start.conversation_id.is_empty() {
                    return Err(invalid(
                        "conversation_id is required: agents and services upload for a conversation"
                            .into(),
                    ));
                }
                self.visible_conversation(principal, &start.conversation_id)
                    .await
                    .map_err(rights)?
                    .site_id
            }
        };
        let site = self.site(&site_id).await.map_err(rights)?;
        let (max, kinds) = (files::max_file_bytes(&site), files::file_kinds(&site));
        if kinds == v1::FileKinds::None {
            return Err(refused(
                "kind",
                CoreError::PermissionDenied("this site does not accept files".into()),
            ));
        }
        if let Some(size) = start.declared_size {
            if size > max {
                return Err(too_large(max, Some(size)));
            }
        }
        if !self.files.per_hour.check(&owner_key) {
            return Err(refused(
                "rate",
                CoreError::ResourceExhausted(format!(
                    "too many uploads: at most {} an hour; try again later",
                    self.files.per_hour_max
                )),
            ));
        }
        let spool = self.files.spool.get().ok_or_else(|| {
            refused(
                "storage",
                CoreError::Unavailable("file storage is not configured".into()),
            )
        })?;
        let path = spool.join(format!("{}.part", hex::encode(random_bytes::<12>())));
        let file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| refused("storage", CoreError::internal(e)))?;
        Ok(Upload {
            core: self.clone(),
            site_id,
            owner_key,
            name: files::clean_name(&start.name),
            max,
            kinds,
            path,
            file: Some(file),
            size: 0,
            head: Vec::new(),
            sniffed: None,
            done: false,
        })
    }

    /// An attachment with fresh links, if the caller may see it.
    pub async fn attachment(
        &self,
        principal: &Principal,
        id: &str,
    ) -> CoreResult<(UploadRecord, v1::Attachment)> {
        let not_found = || CoreError::NotFound("attachment not found".into());
        let u = self.store.upload_by_id(id).await.map_err(|e| match e {
            crate::store::StoreError::NotFound(_) => not_found(),
            e => e.into(),
        })?;
        match &u.conversation_id {
            None if u.owner_key != principal.author_key() => return Err(not_found()),
            None => {}
            Some(c) => {
                self.visible_conversation(principal, c)
                    .await
                    .map_err(|e| match e {
                        CoreError::NotFound(_) => not_found(),
                        e => e,
                    })?;
                if u.note && !principal.is_staff() {
                    return Err(not_found());
                }
            }
        }
        let mut a = u.attachment();
        self.hub.signer.sign(&mut a, "", now_ms());
        Ok((u, a))
    }

    /// The bytes of an attachment the caller may see (DownloadAttachment).
    pub async fn download(
        &self,
        principal: &Principal,
        id: &str,
        thumbnail: bool,
    ) -> CoreResult<(v1::Attachment, BlobStream)> {
        let (u, a) = self.attachment(principal, id).await?;
        let variant = if thumbnail {
            Variant::Thumbnail
        } else {
            Variant::Original
        };
        let stream = self.open_upload(&u, variant, 0, None).await?;
        Ok((a, stream))
    }

    /// The upload a signed link names, if the signature holds and has not expired.
    pub async fn linked_upload(
        &self,
        id: &str,
        variant: Variant,
        expires: i64,
        sig: &str,
    ) -> CoreResult<UploadRecord> {
        if !self.hub.signer.verify(id, variant, expires, sig, now_ms()) {
            return Err(CoreError::PermissionDenied(
                "this file link is invalid or has expired; reload the conversation for a new one"
                    .into(),
            ));
        }
        let u = self.store.upload_by_id(id).await?;
        if variant == Variant::Thumbnail && u.thumb_size == 0 {
            return Err(CoreError::NotFound("this file has no thumbnail".into()));
        }
        Ok(u)
    }

    /// `len` bytes (None: to the end) of an upload's file or thumbnail from `start`.
    pub async fn open_upload(
        &self,
        u: &UploadRecord,
        variant: Variant,
        start: u64,
        len: Option<u64>,
    ) -> CoreResult<BlobStream> {
        if u.deleted_at.is_some() {
            return Err(CoreError::NotFound(
                "this file was deleted after the site's retention period".into(),
            ));
        }
        let size = match variant {
            Variant::Original => u.size,
            Variant::Thumbnail => u.thumb_size,
        };
        let len = len.unwrap_or(size.saturating_sub(start));
        self.blobs()?
            .open(&variant.key(&u.id), start, len)
            .await
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    CoreError::NotFound("file not found".into())
                } else {
                    CoreError::internal(e)
                }
            })
    }

    /// A conversation's files (ListAttachments), newest first.
    pub async fn conversation_files(
        &self,
        principal: &Principal,
        conversation_id: &str,
    ) -> CoreResult<v1::ListAttachmentsResponse> {
        let c = self
            .visible_conversation(principal, conversation_id)
            .await?;
        let mut files = self
            .store
            .conversation_uploads(&c.id, principal.is_staff())
            .await?;
        let now = now_ms();
        for f in &mut files {
            if let Some(a) = &mut f.attachment {
                self.hub.signer.sign(a, "", now);
            }
        }
        Ok(v1::ListAttachmentsResponse { files })
    }

    /// Runs the sweeper every few minutes (unsent uploads, retention, the stored totals).
    pub fn spawn_file_sweeper(self: &Arc<Self>) {
        self.spawn_periodic(SWEEP_EVERY, |core| async move {
            if let Err(error) = core.sweep_files(now_ms()).await {
                tracing::warn!(%error, "File sweep failed");
            }
        });
    }

    /// One sweep at `now`: deletes uploads never sent within [`STALE_UPLOAD_AFTER`] and the
    /// bytes of files past their site's retention; returns how many of each.
    pub async fn sweep_files(&self, now: i64) -> CoreResult<(usize, usize)> {
        let Ok(blobs) = self.blobs() else {
            return Ok((0, 0));
        };
        let before = now - STALE_UPLOAD_AFTER.as_millis() as i64;
        let (mut stale, mut expired) = (0, 0);
        loop {
            let batch = self.store.stale_uploads(before, 200).await?;
            for u in &batch {
                delete_bytes(blobs.as_ref(), u).await?;
            }
            stale += batch.len();
            let done = batch.len() < 200;
            self.store
                .delete_uploads(batch.into_iter().map(|u| u.id).collect())
                .await?;
            if done {
                break;
            }
        }
        loop {
            let batch = self.store.expired_uploads(now, 200).await?;
            for u in &batch {
                delete_bytes(blobs.as_ref(), u).await?;
            }
            expired += batch.len();
            let done = batch.len() < 200;
            self.store
                .mark_uploads_deleted(batch.into_iter().map(|u| u.id).collect(), now)
                .await?;
            if done {
                break;
            }
        }
        let (count, bytes) = self.store.upload_totals().await?;
        self.metrics.files_stored.set(count as i64);
        self.metrics.files_stored_bytes.set(bytes as i64);
        if stale + expired > 0 {
            tracing::info!(stale, expired, "Deleted files");
        }
        Ok((stale, expired))
    }
}

async fn delete_bytes(blobs: &dyn BlobStore, u: &UploadRecord) -> CoreResult<()> {
    blobs
        .delete(&Variant::Original.key(&u.id))
        .await
        .map_err(CoreError::internal)?;
    if u.thumb_size > 0 {
        blobs
            .delete(&Variant::Thumbnail.key(&u.id))
            .await
            .map_err(CoreError::internal)?;
    }
    Ok(())
}

fn too_large(max: u64, size: Option<u64>) -> Refused {
    let what = match size {
        Some(s) => format!("the file is {}", human_bytes(s)),
        None => "the file is too large".into(),
    };
    refused(
        "too_large",
        CoreError::ResourceExhausted(format!(
            "{what}; this site accepts files up to {}",
            human_bytes(max)
        )),
    )
}

impl Upload {
    /// The site's largest file, bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max
    }

    /// Appends bytes; refuses as soon as the file is over the limit or its first bytes show
    /// a kind the site does not accept.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), Refused> {
        if chunk.is_empty() {
            return Ok(());
        }
        self.size += chunk.len() as u64;
        if self.size > self.max {
            return Err(too_large(self.max, None));
        }
        if self.sniffed.is_none() {
            let want = files::SNIFF_BYTES - self.head.len();
            self.head.extend_from_slice(&chunk[..want.min(chunk.len())]);
            if self.head.len() >= files::SNIFF_BYTES {
                self.classify(false)?;
            }
        }
        let file = self.file.as_mut().expect("open until finished");
        file.write_all(chunk)
            .await
            .map_err(|e| refused("storage", CoreError::internal(e)))
    }

    fn classify(&mut self, complete: bool) -> Result<(), Refused> {
        let (mime, class) = files::sniff(&self.head, complete);
        if !class.allowed(self.kinds) {
            return Err(refused(
                "kind",
                CoreError::InvalidArgument(format!(
                    "this kind of file ({mime}) is not accepted here; this site accepts {}",
                    files::kinds_text(self.kinds)
                )),
            ));
        }
        self.sniffed = Some((mime, class));
        Ok(())
    }

    /// The whole file arrived: inspects images, stores the bytes durably, then the row.
    pub async fn finish(mut self) -> Result<v1::Attachment, Refused> {
        let internal = |e: std::io::Error| refused("storage", CoreError::internal(e));
        if self.size == 0 {
            return Err(refused(
                "invalid",
                CoreError::InvalidArgument("the file is empty".into()),
            ));
        }
        if self.sniffed.is_none() {
            self.classify(true)?;
        }
        let mut file = self.file.take().expect("open until finished");
        file.flush().await.map_err(internal)?;
        drop(file);
        let (mime, class) = self.sniffed.clone().expect("classified");
        let core = self.core.clone();
        let blobs = core.blobs().map_err(|e| refused("storage", e))?.clone();
        let mut record = UploadRecord {
            id: new_id("f_"),
            site_id: self.site_id.clone(),
            owner_key: self.owner_key.clone(),
            name: self.name.clone(),
            content_type: mime.clone(),
            size: self.size,
            created_at: now_ms(),
            ..Default::default()
        };
        let mut thumbnail = None;
        if class == Class::Raster && self.size <= files::MAX_DECODE_FILE_BYTES {
            let _slot = core.files.decode.acquire().await.expect("never closed");
            let path = self.path.clone();
            let jpeg = mime == "image/jpeg";
            let inspected = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
                let mut bytes = std::fs::read(&path)?;
                if jpeg {
                    if let Some(clean) = files::strip_jpeg_location(&bytes) {
                        std::fs::write(&path, &clean)?;
                        bytes = clean;
                    }
                }
                Ok((bytes.len() as u64, files::inspect_image(&bytes)))
            })
            .await
            .map_err(|e| refused("storage", CoreError::internal(e)))?
            .map_err(internal)?;
            record.size = inspected.0;
            if let Some(info) = inspected.1 {
                record.width = info.width;
                record.height = info.height;
                if let Some((bytes, _)) = info.thumbnail {
                    record.thumb_size = bytes.len() as u64;
                    thumbnail = Some(bytes);
                }
            }
        }
        // Bytes first, durably; then the row that names them.
        blobs
            .put_file(&Variant::Original.key(&record.id), &self.path)
            .await
            .map_err(internal)?;
        self.done = true;
        if let Some(t) = thumbnail {
            blobs
                .put_bytes(&Variant::Thumbnail.key(&record.id), t.into())
                .await
                .map_err(internal)?;
        }
        if let Err(e) = core.store.create_upload(record.clone()).await {
            let _ = delete_bytes(blobs.as_ref(), &record).await;
            return Err(refused("storage", e.into()));
        }
        core.metrics.uploads.inc();
        core.metrics.upload_bytes.inc_by(record.size);
        let mut a = record.attachment();
        core.hub.signer.sign(&mut a, "", now_ms());
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_a_file_manager() {
        assert_eq!(human_bytes(10 * 1024 * 1024), "10 MB");
        assert_eq!(human_bytes(1536 * 1024), "1.5 MB");
        assert_eq!(human_bytes(2048), "2 KB");
        assert_eq!(human_bytes(12), "12 bytes");
    }
}
