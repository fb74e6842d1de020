//! The two HTTP routes of attachments, on the chat port:
//!
//! - `POST /uploads?name=<file name>[&conversation=<id>]`: the browser's upload (a gRPC-web
//!   call is one buffered frame of at most 64 KiB, so files do not go through gRPC-web). The
//!   body is the raw file, streamed to a spool file chunk by chunk (never held whole);
//!   `Authorization: Bearer <token>` as for every call, and a visitor's `Origin` must be one of
//!   its site's. Answers `201` with the attachment as JSON, or a JSON error whose `message`
//!   is for the user (the limit included): `413` too large (refused from `Content-Length`
//!   before any byte is read, or as soon as the body passes the limit), `415` a kind the site
//!   refuses (as soon as the first 8 KiB show it), `429` too many uploads.
//! - `GET /files/<id>/<o|t>?e=<expiry>&s=<signature>`: a file or its thumbnail by a signed,
//!   expiring link (handed out with the message, so only its receivers have it). Served with
//!   `nosniff`, `Content-Security-Policy: sandbox`, `Content-Disposition: attachment` for all
//!   but raster images, an ETag and single byte ranges.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::json;
use wsmschat::v1;

use crate::core::Core;
use crate::core::files::{Refused, UploadStart};
use crate::error::CoreError;
use crate::files::{self, Variant};
use crate::server::PeerAddr;

fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    q.map(|q| {
        q.split('&')
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                let dec = |s: &str| {
                    percent_encoding::percent_decode_str(&s.replace('+', " "))
                        .decode_utf8_lossy()
                        .into_owned()
                };
                (dec(k), dec(v))
            })
            .collect()
    })
    .unwrap_or_default()
}

/// The attachment as the browser SDK's JSON (the same names as its `Attachment` type).
pub fn attachment_json(a: &v1::Attachment) -> serde_json::Value {
    json!({
        "id": a.id,
        "name": a.name,
        "contentType": a.content_type,
        "size": a.size,
        "width": a.width,
        "height": a.height,
        "hasThumbnail": a.has_thumbnail,
        "url": a.url,
        "thumbnailUrl": a.thumbnail_url,
        "urlsExpireAt": a.urls_expire_at_ms,
        "deleted": a.deleted,
    })
}

fn error_response(status: StatusCode, e: &CoreError, reason: &str) -> Response {
    if let CoreError::Internal(cause) = e {
        tracing::error!(error = %cause, "Upload failed");
    }
    let body = json!({
        "code": e.code() as i32,
        "reason": reason,
        "message": e.to_string(),
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn refused_response(core: &Core, r: Refused) -> Response {
    core.metrics.upload_refused(r.reason);
    let status = match (r.reason, &r.error) {
        ("too_large", _) => StatusCode::PAYLOAD_TOO_LARGE,
        ("kind", CoreError::InvalidArgument(_)) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ("rate", _) => StatusCode::TOO_MANY_REQUESTS,
        (_, e) => status_of(e),
    };
    error_response(status, &r.error, r.reason)
}

fn status_of(e: &CoreError) -> StatusCode {
    match e {
        CoreError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        CoreError::PermissionDenied(_) => StatusCode::FORBIDDEN,
        CoreError::InvalidArgument(_) => StatusCode::BAD_REQUEST,
        CoreError::NotFound(_) => StatusCode::NOT_FOUND,
        CoreError::AlreadyExists(_) | CoreError::FailedPrecondition(_) => StatusCode::CONFLICT,
        CoreError::ResourceExhausted(_) => StatusCode::TOO_MANY_REQUESTS,
        CoreError::Refused { code, .. } if *code == tonic::Code::PermissionDenied => {
            StatusCode::FORBIDDEN
        }
        CoreError::Refused { .. } => StatusCode::TOO_MANY_REQUESTS,
        CoreError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        CoreError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// `POST /uploads`.
pub async fn upload(State(core): State<Arc<Core>>, req: Request) -> Response {
    let headers = req.headers().clone();
    let pairs = query_pairs(req.uri().query());
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let start = UploadStart {
        name: get("name"),
        conversation_id: get("conversation"),
        declared_size: headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok()),
    };
    let ip = req.extensions().get::<PeerAddr>().map(|p| p.0.ip());
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    if token.is_empty() {
        let e = CoreError::Unauthenticated("missing `Authorization: Bearer <token>`".into());
        core.metrics.upload_refused("rights");
        return error_response(StatusCode::UNAUTHORIZED, &e, "rights");
    }
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let principal = match core.identify(&token, ip, origin.as_deref()).await {
        Ok(p) => p,
        Err(e) => {
            core.metrics.upload_refused("rights");
            return error_response(status_of(&e), &e, "rights");
        }
    };
    let mut upload = match core.begin_upload(&principal, ip, start).await {
        Ok(u) => u,
        Err(r) => return refused_response(&core, r),
    };
    let mut body = req.into_body().into_data_stream();
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(error) => {
                // The client went away mid-upload: the spool file goes with `upload`.
                tracing::debug!(%error, "Upload body ended early");
                let e = CoreError::InvalidArgument("the upload was interrupted".into());
                core.metrics.upload_refused("invalid");
                return error_response(StatusCode::BAD_REQUEST, &e, "invalid");
            }
        };
        if let Err(r) = upload.write(&chunk).await {
            return refused_response(&core, r);
        }
    }
    match upload.finish().await {
        Ok(a) => (
            StatusCode::CREATED,
            [(header::CONTENT_TYPE, "application/json")],
            attachment_json(&a).to_string(),
        )
            .into_response(),
        Err(r) => refused_response(&core, r),
    }
}

/// One byte range of `size` bytes from a `Range` header: Ok(None) for no (or an ignored)
/// header, Err for an unsatisfiable one.
fn byte_range(headers: &HeaderMap, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(v) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None); // several ranges: the whole file instead
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().map_err(|_| ())?;
            if n == 0 {
                return Err(());
            }
            (size.saturating_sub(n), size.saturating_sub(1))
        }
        (a, "") => (a.parse().map_err(|_| ())?, size.saturating_sub(1)),
        (a, b) => {
            let (a, b): (u64, u64) = (a.parse().map_err(|_| ())?, b.parse().map_err(|_| ())?);
            (a, b.min(size.saturating_sub(1)))
        }
    };
    if size == 0 || start >= size || end < start {
        return Err(());
    }
    Ok(Some((start, end)))
}

/// Types a browser would run or render as a page: served as bytes to download.
fn served_type(content_type: &str) -> &str {
    let t = content_type.to_ascii_lowercase();
    if t.contains("html") || t.contains("xml") || t.contains("javascript") || t.contains("svg") {
        "application/octet-stream"
    } else {
        content_type
    }
}

/// `GET /files/{id}/{variant}`.
pub async fn download(
    State(core): State<Arc<Core>>,
    Path((id, variant)): Path<(String, String)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let q: std::collections::HashMap<String, String> =
        query_pairs(uri.query()).into_iter().collect();
    let Some(variant) = Variant::parse(&variant) else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let expires = q.get("e").and_then(|e| e.parse().ok()).unwrap_or(0);
    let sig = q.get("s").cloned().unwrap_or_default();
    let u = match core.linked_upload(&id, variant, expires, &sig).await {
        Ok(u) => u,
        Err(e) => {
            let status = match &e {
                CoreError::NotFound(_) => StatusCode::NOT_FOUND,
                e => status_of(e),
            };
            return (status, format!("{e}\n")).into_response();
        }
    };
    if u.deleted_at.is_some() {
        return (
            StatusCode::GONE,
            "this file was deleted after the site's retention period\n",
        )
            .into_response();
    }
    let etag = format!("\"{}-{}\"", u.id, variant.as_str());
    let mut h = HeaderMap::new();
    let size = match variant {
        Variant::Original => u.size,
        Variant::Thumbnail => u.thumb_size,
    };
    let raster = matches!(
        u.content_type.as_str(),
        "image/png" | "image/jpeg" | "image/gif" | "image/webp"
    );
    let set = |h: &mut HeaderMap, k: header::HeaderName, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    };
    set(&mut h, header::ETAG, &etag);
    set(
        &mut h,
        header::CACHE_CONTROL,
        "private, max-age=3600, immutable",
    );
    set(
        &mut h,
        header::CONTENT_SECURITY_POLICY,
        "sandbox; default-src 'none'",
    );
    set(
        &mut h,
        header::HeaderName::from_static("cross-origin-resource-policy"),
        "cross-origin",
    );
    set(&mut h, header::ACCEPT_RANGES, "bytes");
    let inline = raster || variant == Variant::Thumbnail;
    let name = match variant {
        Variant::Original => u.name.clone(),
        Variant::Thumbnail => format!("thumbnail-{}", u.name),
    };
    set(
        &mut h,
        header::CONTENT_DISPOSITION,
        &files::content_disposition(inline, &name),
    );
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        return (StatusCode::NOT_MODIFIED, h).into_response();
    }
    let range = match byte_range(&headers, size) {
        Ok(r) => r,
        Err(()) => {
            set(&mut h, header::CONTENT_RANGE, &format!("bytes */{size}"));
            return (StatusCode::RANGE_NOT_SATISFIABLE, h).into_response();
        }
    };
    let (start, len, status) = match range {
        Some((a, b)) => {
            set(
                &mut h,
                header::CONTENT_RANGE,
                &format!("bytes {a}-{b}/{size}"),
            );
            (a, b - a + 1, StatusCode::PARTIAL_CONTENT)
        }
        None => (0, size, StatusCode::OK),
    };
    let mut stream = match core.open_upload(&u, variant, start, Some(len)).await {
        Ok(s) => s,
        Err(e) => return (status_of(&e), format!("{e}\n")).into_response(),
    };
    let content_type = match variant {
        Variant::Original => served_type(&u.content_type).to_owned(),
        Variant::Thumbnail => {
            // Thumbnails are JPEG, or PNG for images with transparency: the first bytes say.
            let first = match stream.next().await {
                Some(Ok(b)) => b,
                Some(Err(e)) => {
                    tracing::error!(error = %e, "Reading a thumbnail failed");
                    return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                }
                None => Bytes::new(),
            };
            let t = if first.starts_with(b"\x89PNG") {
                "image/png"
            } else {
                "image/jpeg"
            };
            stream = Box::pin(futures_util::stream::once(async move { Ok(first) }).chain(stream));
            t.to_owned()
        }
    };
    set(&mut h, header::CONTENT_TYPE, &content_type);
    set(&mut h, header::CONTENT_LENGTH, &len.to_string());
    (status, h, Body::from_stream(stream)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(v: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(v).unwrap());
        byte_range(&h, size)
    }

    #[test]
    fn single_byte_ranges() {
        assert_eq!(range("bytes=0-99", 1000), Ok(Some((0, 99))));
        assert_eq!(range("bytes=900-", 1000), Ok(Some((900, 999))));
        assert_eq!(range("bytes=-100", 1000), Ok(Some((900, 999))));
        assert_eq!(range("bytes=990-2000", 1000), Ok(Some((990, 999))));
        assert_eq!(range("bytes=1000-", 1000), Err(()));
        assert_eq!(range("bytes=5-1", 1000), Err(()));
        assert_eq!(range("bytes=0-1,5-6", 1000), Ok(None));
        assert_eq!(range("items=0-1", 1000), Ok(None));
        assert_eq!(served_type("text/html"), "application/octet-stream");
        assert_eq!(served_type("image/svg+xml"), "application/octet-stream");
        assert_eq!(served_type("application/pdf"), "application/pdf");
    }
}
