//! `upload`: N concurrent uploads of M MiB each over HTTP `POST /uploads` as one visitor, the
//! way the browser widget uploads. Each body is streamed from one 64 KiB block of
//! pseudo-random bytes sent again and again (the first block starts with `%PDF-1.4\n`, so the
//! default file kinds take it), so the load generator never holds N x M MiB. Measured: each
//! upload's time (connect to the `201` read), the total throughput, the server's CPU seconds
//! and its peak RSS above idle (VmRSS sampled every 20 ms on a thread of its own).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use wsmschat::v1;
use wsmschat::v1::admin_service_client::AdminServiceClient;
use wsmschat::v1::session_service_client::SessionServiceClient;

use crate::net;

/// Bytes per body frame (and of the repeated block).
pub const BLOCK: usize = 64 * 1024;
/// The server's default largest file (a site's `max_file_bytes` of 0).
pub const DEFAULT_SITE_MAX: u64 = 10 * 1024 * 1024;

/// A body of `len` bytes: `first` once, then `block` again and again (the last one cut), each
/// frame a cheap clone of the same allocation.
pub struct RepeatBody {
    first: Option<Bytes>,
    block: Bytes,
    left: u64,
}

impl RepeatBody {
    pub fn new(first: Bytes, block: Bytes, len: u64) -> Self {
        Self {
            first: Some(first),
            block,
            left: len,
        }
    }
}

impl Body for RepeatBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let next = self.first.take().unwrap_or_else(|| self.block.clone());
        let take = (self.left as usize).min(next.len());
        self.left -= take as u64;
        Poll::Ready(Some(Ok(Frame::data(next.slice(..take)))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

/// The two 64 KiB blocks: the first with the PDF header, then the repeated one (xorshift
/// bytes: incompressible, no structure a sniffer could read as another type).
pub fn blocks() -> (Bytes, Bytes) {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = Vec::with_capacity(BLOCK);
    while block.len() < BLOCK {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        block.extend_from_slice(&x.to_le_bytes());
    }
    let mut first = block.clone();
    let header = b"%PDF-1.4\n";
    first[..header.len()].copy_from_slice(header);
    (Bytes::from(first), Bytes::from(block))
}

/// One upload's outcome.
#[derive(Debug)]
pub struct Outcome {
    /// Connect to response read.
    pub elapsed: Duration,
    /// HTTP status (0: the request failed before a status).
    pub status: u16,
    /// The stored attachment (201) or the error body.
    pub body: serde_json::Value,
}

/// `POST /uploads?name=<name>` with a streamed body of `len` bytes.
pub async fn upload_once(
    addr: SocketAddr,
    token: &str,
    name: &str,
    first: Bytes,
    block: Bytes,
    len: u64,
) -> Outcome {
    let t0 = Instant::now();
    let r = async {
        let s = net::tcp_connect(addr, None).await?;
        let (mut tx, conn) = http1::handshake(TokioIo::new(s)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = http::Request::post(format!("/uploads?name={name}"))
            .header(http::header::HOST, addr.to_string())
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .header(http::header::CONTENT_LENGTH, len)
            .header(http::header::CONTENT_TYPE, "application/pdf")
            .body(RepeatBody::new(first, block, len))?;
        let res = tx.send_request(req).await?;
        let status = res.status().as_u16();
        let bytes = res.into_body().collect().await?.to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| serde_json::json!({ "raw": String::from_utf8_lossy(&bytes) }));
        anyhow::Ok((status, body))
    }
    .await;
    let elapsed = t0.elapsed();
    match r {
        Ok((status, body)) => Outcome {
            elapsed,
            status,
            body,
        },
        Err(e) => Outcome {
            elapsed,
            status: 0,
            body: serde_json::json!({ "message": e.to_string() }),
        },
    }
}

/// A new visitor of the demo site; its token.
pub async fn visitor_token(addr: SocketAddr) -> anyhow::Result<String> {
    let ch = net::native_channel(addr, None).await?;
    let r = SessionServiceClient::new(ch)
        .start_visitor_session(v1::StartVisitorSessionRequest {
            site_key: "demo".into(),
            name: "bench uploader".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok(r.visitor_token)
}

/// Raises the demo site's largest file to at least `bytes` (as the admin).
pub async fn raise_site_limit(
    addr: SocketAddr,
    email: &str,
    password: &str,
    bytes: u64,
) -> anyhow::Result<()> {
    let ch = net::native_channel(addr, None).await?;
    let token = SessionServiceClient::new(ch.clone())
        .login(v1::LoginRequest {
            email: email.into(),
            password: password.into(),
        })
        .await
        .context("admin login (to raise the demo site's file limit)")?
        .into_inner()
        .token;
    let auth = net::bearer(&token);
    let mut admin = AdminServiceClient::new(ch);
    let mut req = tonic::Request::new(v1::ListSitesRequest {});
    req.metadata_mut().insert("authorization", auth.clone());
    let mut site = admin
        .list_sites(req)
        .await?
        .into_inner()
        .sites
        .into_iter()
        .find(|s| s.site_key == "demo")
        .ok_or_else(|| anyhow!("no demo site"))?;
    site.max_file_bytes = site.max_file_bytes.max(bytes);
    let mut req = tonic::Request::new(v1::UpdateSiteRequest {
        site: Some(site),
        rotate_identity_secret: false,
    });
    req.metadata_mut().insert("authorization", auth);
    admin.update_site(req).await?;
    Ok(())
}

/// Samples a process's VmRSS every `every` on its own thread until stopped.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<(u64, u64)>>,
}

impl RssSampler {
    pub fn start(pid: u32, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let (mut peak, mut samples) = (0u64, 0u64);
            while !flag.load(Ordering::Relaxed) {
                if let Some(kb) = crate::procfs::rss_kb(pid) {
                    peak = peak.max(kb);
                    samples += 1;
                }
                std::thread::sleep(every);
            }
            (peak, samples)
        });
        Self {
            stop,
            handle: Some(handle),
        }
    }

    /// (peak VmRSS kB, samples taken).
    pub fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or((0, 0))
    }
}

/// The value at quantile `q` of sorted `v` (nearest rank).
pub fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// Checks a `201` answer: the stored size and the detected type.
pub fn check_stored(o: &Outcome, len: u64) -> anyhow::Result<()> {
    if o.status != 201 {
        bail!("HTTP {}: {}", o.status, o.body);
    }
    let size = o.body["size"].as_u64().unwrap_or(0);
    let ty = o.body["contentType"].as_str().unwrap_or("");
    if size != len || ty != "application/pdf" {
        bail!("stored {size} bytes as {ty:?}, sent {len} bytes of PDF");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_the_exact_length_and_starts_as_a_pdf() {
        let (first, block) = blocks();
        assert!(first.starts_with(b"%PDF-1.4\n"));
        assert_eq!(first[9..], block[9..]);
        let mut body = RepeatBody::new(first, block, 3 * BLOCK as u64 + 10);
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut total = 0;
        let mut head = None;
        while let Poll::Ready(Some(Ok(f))) = Pin::new(&mut body).poll_frame(&mut cx) {
            let d = f.into_data().unwrap();
            head.get_or_insert_with(|| d.slice(..9));
            total += d.len();
        }
        assert_eq!(total, 3 * BLOCK + 10);
        assert_eq!(&head.unwrap()[..], b"%PDF-1.4\n");
        assert!(body.is_end_stream());
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), 2.0);
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.99), 4.0);
    }
}
