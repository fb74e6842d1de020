//! The `idle` load, one load process's share: N visitor sessions, then N `Subscribe` streams
//! held open (gRPC-web on HTTP/1.1, one connection each, or native HTTP/2 with S streams per
//! connection), counting heartbeats and any stream that ends.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tonic::Request;
use tonic::transport::Channel;
use wsmschat::v1;
use wsmschat::v1::chat_service_client::ChatServiceClient;
use wsmschat::v1::server_event::Event as Se;
use wsmschat::v1::session_service_client::SessionServiceClient;

use crate::conv::Transport;
use crate::net::{self, WebConn};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdleParams {
    pub url: String,
    pub transport: Transport,
    /// Native only: streams sharing one HTTP/2 connection.
    pub streams_per_conn: usize,
    pub source_ips: usize,
    pub concurrency: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdleJob {
    pub params: IdleParams,
    pub worker: usize,
    pub first: usize,
    pub count: usize,
}

#[derive(Default)]
pub struct IdleState {
    pub opened: AtomicU64,
    pub ended: AtomicU64,
    pub heartbeats: AtomicU64,
    pub errors: Mutex<BTreeMap<String, u64>>,
}

impl IdleState {
    fn error(&self, kind: impl Into<String>) {
        *self.errors.lock().unwrap().entry(kind.into()).or_default() += 1;
    }
}

/// Creates the visitor sessions; returns their tokens (None: failed).
pub async fn sessions(
    job: &IdleJob,
    state: &Arc<IdleState>,
) -> anyhow::Result<Vec<Option<String>>> {
    let addr = net::loopback_addr(&job.params.url)?;
    let setup = net::native_channel(addr, None).await?;
    let sem = Arc::new(Semaphore::new(job.params.concurrency.max(1)));
    let mut tasks = Vec::with_capacity(job.count);
    for i in 0..job.count {
        let (setup, sem, global) = (setup.clone(), sem.clone(), job.first + i);
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await;
            SessionServiceClient::new(setup)
                .start_visitor_session(v1::StartVisitorSessionRequest {
                    site_key: "demo".into(),
                    name: format!("idle visitor {global}"),
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner().visitor_token)
        }));
    }
    let mut out = Vec::with_capacity(job.count);
    for t in tasks {
        match t.await? {
            Ok(tok) => out.push(Some(tok)),
            Err(s) => {
                state.error(format!("session: {:?}", s.code()));
                out.push(None);
            }
        }
    }
    Ok(out)
}

const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens one stream per token and keeps reading them in the background.
/// Returns (opened, failed, milliseconds).
pub async fn open(
    job: &IdleJob,
    tokens: Vec<Option<String>>,
    state: &Arc<IdleState>,
) -> anyhow::Result<(u64, u64, u64)> {
    let started = Instant::now();
    let p = &job.params;
    let addr = net::loopback_addr(&p.url)?;
    let sem = Arc::new(Semaphore::new(p.concurrency.max(1)));
    let spc = p.streams_per_conn.max(1);
    let mut channel: Option<Channel> = None;
    let mut tasks = Vec::new();
    let mut failed = 0u64;
    for (i, tok) in tokens.into_iter().enumerate() {
        let global = job.first + i;
        let src = net::source_ip(global, p.source_ips);
        let Some(tok) = tok else {
            failed += 1;
            continue;
        };
        let ch = if p.transport == Transport::Native {
            if i % spc == 0 || channel.is_none() {
                match net::native_channel(addr, src).await {
                    Ok(c) => channel = Some(c),
                    Err(e) => {
                        state.error(format!("connect: {e}"));
                        failed += 1;
                        continue;
                    }
                }
            }
            channel.clone()
        } else {
            None
        };
        let (sem, state) = (sem.clone(), state.clone());
        tasks.push(tokio::spawn(async move {
            let permit = sem.acquire_owned().await;
            let res =
                tokio::time::timeout(OPEN_TIMEOUT, open_one(addr, src, ch, tok, state.clone()))
                    .await;
            drop(permit);
            match res {
                Ok(Ok(())) => true,
                Ok(Err(e)) => {
                    state.error(format!(
                        "open: {}",
                        e.to_string().chars().take(80).collect::<String>()
                    ));
                    false
                }
                Err(_) => {
                    state.error("open: timed out");
                    false
                }
            }
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await? {
            ok += 1;
        } else {
            failed += 1;
        }
    }
    Ok((ok, failed, started.elapsed().as_millis() as u64))
}

/// The first event of a stream must be `Ready`.
fn expect_ready<E: std::fmt::Debug>(
    first: Result<Option<v1::SubscribeResponse>, E>,
) -> anyhow::Result<()> {
    match first {
        Ok(Some(v1::SubscribeResponse {
            event: Some(v1::ServerEvent {
                event: Some(Se::Ready(_)),
            }),
        })) => Ok(()),
        other => anyhow::bail!("expected ready, got {other:?}"),
    }
}

impl IdleState {
    /// Counts what a held stream received; false once the stream is over.
    fn received(&self, item: Result<Option<v1::SubscribeResponse>, String>) -> bool {
        match item {
            Ok(Some(v1::SubscribeResponse {
                event:
                    Some(v1::ServerEvent {
                        event: Some(Se::Heartbeat(_)),
                    }),
            })) => {
                self.heartbeats.fetch_add(1, Ordering::Relaxed);
                true
            }
            Ok(Some(_)) => true,
            Ok(None) => {
                self.ended.fetch_add(1, Ordering::Relaxed);
                self.error("stream ended");
                false
            }
            Err(e) => {
                self.ended.fetch_add(1, Ordering::Relaxed);
                self.error(format!("stream: {e}"));
                false
            }
        }
    }
}

/// Opens a stream, waits for `ready`, then reads it in a task until it ends.
async fn open_one(
    addr: std::net::SocketAddr,
    src: Option<std::net::IpAddr>,
    ch: Option<Channel>,
    token: String,
    state: Arc<IdleState>,
) -> anyhow::Result<()> {
    let req = v1::SubscribeRequest {
        subscription: Some(v1::Subscription::default()),
    };
    match ch {
        Some(ch) => {
            let mut client = ChatServiceClient::new(ch);
            let mut r = Request::new(req);
            r.metadata_mut()
                .insert("authorization", net::bearer(&token));
            let mut s = client.subscribe(r).await?.into_inner();
            expect_ready(s.message().await)?;
            state.opened.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                while state.received(s.message().await.map_err(|e| format!("{:?}", e.code()))) {}
            });
        }
        None => {
            let mut conn = WebConn::connect(addr, src).await?;
            let mut s = conn
                .server_stream("/wsmschat.v1.ChatService/Subscribe", &token, &req)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            expect_ready(s.message::<v1::SubscribeResponse>().await)?;
            state.opened.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let _conn = conn;
                while state.received(
                    s.message::<v1::SubscribeResponse>()
                        .await
                        .map_err(|e| e.to_string()),
                ) {}
            });
        }
    }
    Ok(())
}
