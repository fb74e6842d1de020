//! The `conversations` load, one load process's share: visitor/agent pairs, an open-loop send
//! schedule, and what each side saw.
//!
//! Per pair: a visitor (session token, a `Subscribe` stream and unary `Publish` calls, over
//! native HTTP/2 or gRPC-web on HTTP/1.1; or one bidi `Chat` stream) and an "agent" (a chat-scope API key holding one bidi
//! `Chat` stream whose cursor follows that one conversation). Message j of the run is due at
//! `t0 + j / (pairs * rate)` and belongs to visitor `j % pairs` (evenly staggered, like the
//! socket.io baseline). Latency is measured from the scheduled send time, so a late sender
//! cannot hide queueing (no coordinated omission); the time from the actual send is reported
//! too, as is the send lag.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::Request;
use tonic::transport::Channel;
use wsmschat::v1;
use wsmschat::v1::chat_service_client::ChatServiceClient;
use wsmschat::v1::client_event::Event as Ce;
use wsmschat::v1::server_event::Event as Se;
use wsmschat::v1::session_service_client::SessionServiceClient;

use crate::hist::{Hist, SparseHist};
use crate::net::{self, WebConn, WebStream};

/// How visitors reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// gRPC over HTTP/2, one connection per visitor (Subscribe + Publish multiplexed on it).
    Native,
    /// gRPC over HTTP/2, one connection per visitor holding one bidirectional `Chat` stream:
    /// sends and their acks, and live events, on the same stream (how a native client or bot
    /// talks; the stream gets no echo of its own messages).
    Chat,
    /// gRPC-web over HTTP/1.1 like a browser on http://: one connection holds the Subscribe
    /// stream, a second one carries the Publish calls.
    Web,
}

/// The load shape (same for every load process).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConvParams {
    pub url: String,
    pub api_key: String,
    pub transport: Transport,
    pub conversations: usize,
    /// Messages per second per visitor.
    pub rate: f64,
    /// Messages per visitor.
    pub messages: usize,
    /// Text bytes per message.
    pub payload: usize,
    /// Agents answer every message.
    pub reply: bool,
    pub drain_ms: u64,
    /// HTTP/2 connections shared by the agents' streams; 0 = one per agent.
    pub agent_conns: usize,
    /// Loopback source addresses to spread sockets over (0 = 127.0.0.1 only).
    pub source_ips: usize,
    pub setup_concurrency: usize,
    pub threads: usize,
    /// Extra staff streams following the whole inbox (as the agent console does), held by
    /// the first load process; each should see every visitor message and every reply.
    #[serde(default)]
    pub inbox_streams: usize,
}

/// One load process's share.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConvJob {
    pub params: ConvParams,
    pub worker: usize,
    pub first: usize,
    pub count: usize,
}

/// What one load process measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConvResult {
    pub pairs_ready: usize,
    pub setup_ms: u64,
    pub sent: u64,
    pub not_sent: u64,
    pub acked: u64,
    pub delivered: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub acked_not_delivered: u64,
    pub delivered_not_acked: u64,
    pub echoes: u64,
    pub replies_sent: u64,
    pub replies_delivered: u64,
    pub reply_duplicates: u64,
    pub errors: BTreeMap<String, u64>,
    pub latency: SparseHist,
    pub latency_from_send: SparseHist,
    pub ack: SparseHist,
    pub lag: SparseHist,
    pub reply_latency: SparseHist,
    /// Inbox streams this process held (open when the run started).
    pub inbox_streams: u64,
    /// Visitor messages of the run seen on those streams (all of them: streams x delivered).
    pub inbox_messages: u64,
    /// Agent replies of the run seen on them.
    pub inbox_replies: u64,
    /// Every event they received.
    pub inbox_events: u64,
    /// Visitor message, from its scheduled send to each inbox stream.
    pub inbox_latency: SparseHist,
    /// ns after the common start time.
    pub first_send_ns: u64,
    pub last_send_ns: u64,
    pub last_recv_ns: u64,
    pub end_ns: u64,
    /// This process's CPU over the run, in clock ticks.
    pub cpu_ticks: u64,
    pub max_rss_kb: u64,
}

#[derive(Default)]
struct PairState {
    sent_ns: Vec<u64>,
    acked: Vec<bool>,
    delivered: Vec<bool>,
    replied: Vec<bool>,
    last_k: Option<usize>,
}

#[derive(Default)]
struct Stats {
    latency: Hist,
    latency_from_send: Hist,
    ack: Hist,
    lag: Hist,
    reply: Hist,
    inbox: Hist,
    errors: BTreeMap<String, u64>,
    duplicates: u64,
    out_of_order: u64,
    echoes: u64,
    reply_duplicates: u64,
}

struct Shared {
    epoch: Instant,
    /// Unique per worker run: prefixes the agents' reply ids, which share one API key and so
    /// one idempotency scope with every earlier run against the same server (a soak's minutes).
    run_id: String,
    /// `epoch`-relative ns of the run start (set at start).
    t0_ns: AtomicU64,
    messages: usize,
    reply: bool,
    payload: usize,
    pairs: Vec<Mutex<PairState>>,
    stats: Mutex<Stats>,
    sent: AtomicU64,
    publish_done: AtomicU64,
    acked: AtomicU64,
    delivered: AtomicU64,
    replies_sent: AtomicU64,
    replies_delivered: AtomicU64,
    inbox_messages: AtomicU64,
    inbox_replies: AtomicU64,
    inbox_events: AtomicU64,
    first_send: AtomicU64,
    last_send: AtomicU64,
    last_recv: AtomicU64,
    running: AtomicBool,
    progress: Notify,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn error(&self, kind: impl Into<String>) {
        *self
            .stats
            .lock()
            .unwrap()
            .errors
            .entry(kind.into())
            .or_default() += 1;
    }
}

/// `"{k} {ns} "` padded with `x` to `payload` bytes.
fn text(prefix: &str, k: usize, ns: u64, payload: usize) -> String {
    let mut s = format!("{prefix}{k} {ns} ");
    if s.len() < payload {
        s.extend(std::iter::repeat_n('x', payload - s.len()));
    }
    s
}

fn parse_text(t: &str, prefix: &str) -> Option<(usize, u64)> {
    let t = t.strip_prefix(prefix)?;
    let mut it = t.splitn(3, ' ');
    let k = it.next()?.parse().ok()?;
    let ns = it.next()?.parse().ok()?;
    Some((k, ns))
}

fn code_name(code: i32) -> String {
    format!("{:?}", tonic::Code::from_i32(code))
}

enum Publisher {
    Native(
        ChatServiceClient<Channel>,
        tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
    ),
    Web(WebConn, String),
    /// Sends on the visitor's Chat stream; its reader forwards the answers.
    Chat(
        mpsc::UnboundedSender<v1::ChatRequest>,
        mpsc::UnboundedReceiver<Result<v1::Ack, String>>,
    ),
}

impl Publisher {
    async fn publish(&mut self, ev: v1::ClientEvent) -> Result<v1::Ack, String> {
        let req = v1::PublishRequest { event: Some(ev) };
        match self {
            Publisher::Chat(tx, answers) => {
                tx.send(v1::ChatRequest {
                    subscribe: None,
                    event: req.event,
                })
                .map_err(|_| "publish: chat stream closed".to_owned())?;
                answers
                    .recv()
                    .await
                    .unwrap_or_else(|| Err("publish: chat stream ended".to_owned()))
            }
            Publisher::Native(client, auth) => {
                let mut r = Request::new(req);
                r.metadata_mut().insert("authorization", auth.clone());
                match client.publish(r).await {
                    Ok(resp) => resp
                        .into_inner()
                        .ack
                        .ok_or_else(|| "publish: no ack".to_owned()),
                    Err(s) => Err(format!("publish: {:?}", s.code())),
                }
            }
            Publisher::Web(conn, token) => {
                match conn
                    .unary::<v1::PublishResponse>("/wsmschat.v1.ChatService/Publish", token, &req)
                    .await
                {
                    Ok(resp) => resp.ack.ok_or_else(|| "publish: no ack".to_owned()),
                    Err(e) if e.code < 0 => Err("publish: transport".to_owned()),
                    Err(e) => Err(format!("publish: {}", code_name(e.code))),
                }
            }
        }
    }
}

enum VisitorStream {
    Native(tonic::Streaming<v1::SubscribeResponse>),
    /// The connection is kept with its stream.
    Web(WebStream, #[allow(dead_code)] WebConn),
    /// Acks and errors (answers to the sends) go to the publisher.
    Chat(
        tonic::Streaming<v1::ChatResponse>,
        mpsc::UnboundedSender<Result<v1::Ack, String>>,
    ),
}

impl VisitorStream {
    async fn next(&mut self) -> Result<Option<v1::ServerEvent>, String> {
        let r = match self {
            // Answers to the sends go to the publisher; the rest is the stream's.
            VisitorStream::Chat(s, answers) => loop {
                let Some(r) = s
                    .message()
                    .await
                    .map_err(|s| format!("visitor stream: {:?}", s.code()))?
                else {
                    return Ok(None);
                };
                let ev = r.event.unwrap_or_default();
                let answer = match ev.event {
                    Some(Se::Ack(a)) => Ok(a),
                    Some(Se::Error(e)) => Err(format!("publish: {}", code_name(e.code))),
                    _ => return Ok(Some(ev)),
                };
                let _ = answers.send(answer);
            },
            VisitorStream::Native(s) => s
                .message()
                .await
                .map_err(|s| format!("visitor stream: {:?}", s.code()))?,
            VisitorStream::Web(s, _) => s
                .message::<v1::SubscribeResponse>()
                .await
                .map_err(|e| format!("visitor stream: {}", code_name(e.code)))?,
        };
        Ok(r.map(|r| r.event.unwrap_or_default()))
    }
}

fn send_event(
    conversation_id: &str,
    topic: &str,
    client_msg_id: String,
    text: String,
) -> v1::ClientEvent {
    v1::ClientEvent {
        request_id: String::new(),
        event: Some(Ce::SendMessage(v1::SendMessage {
            conversation_id: conversation_id.to_owned(),
            topic: topic.to_owned(),
            client_msg_id,
            text,
            kind: 0,
            ..Default::default()
        })),
    }
}

const SETUP_TIMEOUT: Duration = Duration::from_secs(20);

/// Sets up one pair: session, visitor stream, first message (creates the conversation), agent
/// stream. Returns the visitor's send queue.
async fn setup_pair(
    sh: Arc<Shared>,
    p: Arc<ConvParams>,
    addr: SocketAddr,
    idx: usize,
    global: usize,
    setup: Channel,
    agent_channel: Option<Channel>,
) -> anyhow::Result<mpsc::UnboundedSender<(usize, u64)>> {
    let src = net::source_ip(global, p.source_ips);
    let session = SessionServiceClient::new(setup)
        .start_visitor_session(v1::StartVisitorSessionRequest {
            site_key: "demo".into(),
            name: format!("bench visitor {global}"),
            ..Default::default()
        })
        .await?
        .into_inner();
    let token = session.visitor_token;
    let auth = net::bearer(&token);
    let sub_req = v1::SubscribeRequest {
        subscription: Some(v1::Subscription::default()),
    };
    // Visitor: stream first (as the widget does), then the first message.
    let (mut vstream, mut publisher) = match p.transport {
        Transport::Native => {
            let ch = net::native_channel(addr, src).await?;
            let mut client = ChatServiceClient::new(ch);
            let mut r = Request::new(sub_req);
            r.metadata_mut().insert("authorization", auth.clone());
            let s = client.subscribe(r).await?.into_inner();
            (VisitorStream::Native(s), Publisher::Native(client, auth))
        }
        Transport::Chat => {
            let ch = net::native_channel(addr, src).await?;
            let (tx, rx) = mpsc::unbounded_channel::<v1::ChatRequest>();
            tx.send(v1::ChatRequest {
                subscribe: sub_req.subscription.clone(),
                event: None,
            })?;
            let mut r = Request::new(UnboundedReceiverStream::new(rx));
            r.metadata_mut().insert("authorization", auth.clone());
            let s = ChatServiceClient::new(ch).chat(r).await?.into_inner();
            let (answers_tx, answers_rx) = mpsc::unbounded_channel();
            (
                VisitorStream::Chat(s, answers_tx),
                Publisher::Chat(tx, answers_rx),
            )
        }
        Transport::Web => {
            let mut sub = WebConn::connect(addr, src).await?;
            let s = sub
                .server_stream("/wsmschat.v1.ChatService/Subscribe", &token, &sub_req)
                .await
                .map_err(|e| anyhow::anyhow!("subscribe: {e}"))?;
            let pubc = WebConn::connect(addr, net::source_ip(global + 1, p.source_ips)).await?;
            (
                VisitorStream::Web(s, sub),
                Publisher::Web(pubc, token.clone()),
            )
        }
    };
    match vstream.next().await {
        Ok(Some(v1::ServerEvent {
            event: Some(Se::Ready(_)),
        })) => {}
        other => anyhow::bail!("visitor stream: expected ready, got {other:?}"),
    }
    // A Chat stream answers sends on the stream itself: its reader must run before the first.
    let mut vstream = Some(vstream);
    if p.transport == Transport::Chat {
        tokio::spawn(read_visitor(sh.clone(), idx, vstream.take().unwrap()));
    }
    let ack = publisher
        .publish(send_event(
            "",
            "Order",
            format!("hello-{global}"),
            "hello".into(),
        ))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // Agent: a Chat stream following this one conversation.
    let agent_channel = match agent_channel {
        Some(c) => c,
        None => net::native_channel(addr, net::source_ip(global + 2, p.source_ips)).await?,
    };
    let (atx, arx) = mpsc::unbounded_channel::<v1::ChatRequest>();
    atx.send(v1::ChatRequest {
        subscribe: Some(v1::Subscription {
            cursors: vec![v1::ConversationCursor {
                conversation_id: ack.conversation_id.clone(),
                after_seq: ack.seq,
            }],
            inbox: false,
        }),
        event: None,
    })?;
    let mut r = Request::new(UnboundedReceiverStream::new(arx));
    r.metadata_mut()
        .insert("authorization", net::bearer(&p.api_key));
    let mut astream = ChatServiceClient::new(agent_channel)
        .chat(r)
        .await?
        .into_inner();
    match astream.message().await? {
        Some(v1::ChatResponse {
            event: Some(v1::ServerEvent {
                event: Some(Se::Ready(_)),
            }),
        }) => {}
        other => anyhow::bail!("agent stream: expected ready, got {other:?}"),
    }
    // Readers.
    tokio::spawn(read_agent(
        sh.clone(),
        idx,
        global,
        astream,
        atx,
        ack.conversation_id.clone(),
    ));
    if let Some(vstream) = vstream {
        tokio::spawn(read_visitor(sh.clone(), idx, vstream));
    }
    // Publisher: sends in order, each at (or after) its scheduled time.
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, u64)>();
    let conversation_id = ack.conversation_id;
    tokio::spawn(async move {
        while let Some((k, sched)) = rx.recv().await {
            let send_ns = sh.now_ns();
            sh.pairs[idx].lock().unwrap().sent_ns[k] = send_ns;
            sh.stats
                .lock()
                .unwrap()
                .lag
                .record_ns(send_ns.saturating_sub(sched));
            let t0 = sh.t0_ns.load(Ordering::Relaxed);
            sh.first_send
                .fetch_min(send_ns - t0.min(send_ns), Ordering::Relaxed);
            sh.last_send
                .fetch_max(send_ns.saturating_sub(t0), Ordering::Relaxed);
            sh.sent.fetch_add(1, Ordering::Relaxed);
            let ev = send_event(
                &conversation_id,
                "",
                format!("m{k}"),
                text("", k, sched, sh.payload),
            );
            match publisher.publish(ev).await {
                Ok(ack) => {
                    if ack.duplicate {
                        sh.error("publish acked as a duplicate");
                    }
                    let now = sh.now_ns();
                    sh.pairs[idx].lock().unwrap().acked[k] = true;
                    sh.stats.lock().unwrap().ack.record_ns(now - sched.min(now));
                    sh.acked.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => sh.error(e),
            }
            sh.publish_done.fetch_add(1, Ordering::Relaxed);
            sh.progress.notify_one();
        }
    });
    Ok(tx)
}

async fn read_agent(
    sh: Arc<Shared>,
    idx: usize,
    global: usize,
    mut stream: tonic::Streaming<v1::ChatResponse>,
    tx: mpsc::UnboundedSender<v1::ChatRequest>,
    conversation_id: String,
) {
    loop {
        let ev = match stream.message().await {
            Ok(Some(r)) => r.event.unwrap_or_default(),
            Ok(None) => {
                if sh.running.load(Ordering::Relaxed) {
                    sh.error("agent stream: ended");
                }
                return;
            }
            Err(s) => {
                if sh.running.load(Ordering::Relaxed) {
                    sh.error(format!("agent stream: {:?}", s.code()));
                }
                return;
            }
        };
        match ev.event {
            Some(Se::Message(m)) if m.author_kind == v1::AuthorKind::Visitor as i32 => {
                let now = sh.now_ns();
                let Some((k, sched)) = parse_text(&m.text, "") else {
                    continue;
                };
                if k >= sh.messages {
                    sh.error("agent: unknown message");
                    continue;
                }
                {
                    let mut pair = sh.pairs[idx].lock().unwrap();
                    if pair.delivered[k] {
                        drop(pair);
                        sh.stats.lock().unwrap().duplicates += 1;
                        continue;
                    }
                    pair.delivered[k] = true;
                    let ooo = pair.last_k.is_some_and(|l| k < l);
                    pair.last_k = Some(pair.last_k.map_or(k, |l| l.max(k)));
                    let sent = pair.sent_ns[k];
                    drop(pair);
                    let mut st = sh.stats.lock().unwrap();
                    st.latency.record_ns(now.saturating_sub(sched));
                    if sent > 0 {
                        st.latency_from_send.record_ns(now.saturating_sub(sent));
                    }
                    if ooo {
                        st.out_of_order += 1;
                    }
                }
                let t0 = sh.t0_ns.load(Ordering::Relaxed);
                sh.last_recv
                    .fetch_max(now.saturating_sub(t0), Ordering::Relaxed);
                sh.delivered.fetch_add(1, Ordering::Relaxed);
                if sh.reply {
                    let sent = sh.now_ns();
                    let ev = send_event(
                        &conversation_id,
                        "",
                        // Idempotency keys are per author: all agents share one API key.
                        format!("r{}-{global}-{k}", sh.run_id),
                        text("r", k, sent, sh.payload),
                    );
                    if tx
                        .send(v1::ChatRequest {
                            subscribe: None,
                            event: Some(ev),
                        })
                        .is_ok()
                    {
                        sh.replies_sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
                sh.progress.notify_one();
            }
            Some(Se::Ack(a)) if a.duplicate => sh.error("agent reply acked as a duplicate"),
            Some(Se::Error(e)) => sh.error(format!("agent event error: {}", code_name(e.code))),
            Some(Se::ResyncRequired(_)) => sh.error("agent stream: resync required"),
            _ => {}
        }
    }
}

async fn read_visitor(sh: Arc<Shared>, idx: usize, mut stream: VisitorStream) {
    loop {
        let ev = match stream.next().await {
            Ok(Some(ev)) => ev,
            Ok(None) => {
                if sh.running.load(Ordering::Relaxed) {
                    sh.error("visitor stream: ended");
                }
                return;
            }
            Err(e) => {
                if sh.running.load(Ordering::Relaxed) {
                    sh.error(e);
                }
                return;
            }
        };
        match ev.event {
            Some(Se::Message(m)) if m.author_kind == v1::AuthorKind::Visitor as i32 => {
                sh.stats.lock().unwrap().echoes += 1;
            }
            Some(Se::Message(m)) => {
                let now = sh.now_ns();
                let Some((k, sent)) = parse_text(&m.text, "r") else {
                    continue;
                };
                if k >= sh.messages {
                    continue;
                }
                let dup = {
                    let mut pair = sh.pairs[idx].lock().unwrap();
                    std::mem::replace(&mut pair.replied[k], true)
                };
                let mut st = sh.stats.lock().unwrap();
                if dup {
                    st.reply_duplicates += 1;
                } else {
                    st.reply.record_ns(now.saturating_sub(sent));
                    drop(st);
                    sh.replies_delivered.fetch_add(1, Ordering::Relaxed);
                    sh.progress.notify_one();
                }
            }
            Some(Se::ResyncRequired(_)) => sh.error("visitor stream: resync required"),
            _ => {}
        }
    }
}

/// Opens a staff Chat stream on the whole inbox and waits for its Ready.
async fn open_inbox(
    conn: Channel,
    api_key: &str,
) -> anyhow::Result<(
    tonic::Streaming<v1::ChatResponse>,
    mpsc::UnboundedSender<v1::ChatRequest>,
)> {
    let (tx, rx) = mpsc::unbounded_channel::<v1::ChatRequest>();
    tx.send(v1::ChatRequest {
        subscribe: Some(v1::Subscription {
            cursors: Vec::new(),
            inbox: true,
        }),
        event: None,
    })?;
    let mut r = Request::new(UnboundedReceiverStream::new(rx));
    r.metadata_mut()
        .insert("authorization", net::bearer(api_key));
    let mut s = ChatServiceClient::new(conn).chat(r).await?.into_inner();
    match s.message().await? {
        Some(v1::ChatResponse {
            event: Some(v1::ServerEvent {
                event: Some(Se::Ready(_)),
            }),
        }) => {}
        other => anyhow::bail!("inbox stream: expected ready, got {other:?}"),
    }
    Ok((s, tx))
}

/// Reads an inbox stream: every visitor message of the run (its latency from the schedule)
/// and every reply; a resync or an end while running is an error. `_requests` keeps the
/// request side open (dropping it would half-close the stream).
async fn read_inbox(
    sh: Arc<Shared>,
    mut stream: tonic::Streaming<v1::ChatResponse>,
    _requests: mpsc::UnboundedSender<v1::ChatRequest>,
) {
    loop {
        let ev = match stream.message().await {
            Ok(Some(r)) => r.event.unwrap_or_default(),
            Ok(None) => {
                if sh.running.load(Ordering::Relaxed) {
                    sh.error("inbox stream: ended");
                }
                return;
            }
            Err(s) => {
                if sh.running.load(Ordering::Relaxed) {
                    sh.error(format!("inbox stream: {:?}", s.code()));
                }
                return;
            }
        };
        sh.inbox_events.fetch_add(1, Ordering::Relaxed);
        match ev.event {
            Some(Se::Message(m)) if m.author_kind == v1::AuthorKind::Visitor as i32 => {
                if let Some((_, sched)) = parse_text(&m.text, "") {
                    let now = sh.now_ns();
                    sh.stats
                        .lock()
                        .unwrap()
                        .inbox
                        .record_ns(now.saturating_sub(sched));
                    sh.inbox_messages.fetch_add(1, Ordering::Relaxed);
                    sh.progress.notify_one();
                }
            }
            Some(Se::Message(m)) if parse_text(&m.text, "r").is_some() => {
                sh.inbox_replies.fetch_add(1, Ordering::Relaxed);
            }
            Some(Se::ResyncRequired(_)) => sh.error("inbox stream: resync required"),
            _ => {}
        }
    }
}

/// Runs one load process's share: setup, report ready, wait for the start time, run, report.
/// `ready` is called with the number of pairs set up; it returns the start time as
/// nanoseconds from now.
pub async fn run<F, Fut>(job: ConvJob, ready: F) -> anyhow::Result<ConvResult>
where
    F: FnOnce(usize, u64, BTreeMap<String, u64>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<u64>>,
{
    let p = Arc::new(job.params.clone());
    let addr = net::loopback_addr(&p.url)?;
    let count = job.count;
    let sh = Arc::new(Shared {
        epoch: Instant::now(),
        run_id: format!(
            "{:x}{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ),
        t0_ns: AtomicU64::new(u64::MAX / 4),
        messages: p.messages,
        reply: p.reply,
        payload: p.payload,
        pairs: (0..count)
            .map(|_| {
                Mutex::new(PairState {
                    sent_ns: vec![0; p.messages],
                    acked: vec![false; p.messages],
                    delivered: vec![false; p.messages],
                    replied: vec![false; p.messages],
                    last_k: None,
                })
            })
            .collect(),
        stats: Mutex::default(),
        sent: AtomicU64::new(0),
        publish_done: AtomicU64::new(0),
        acked: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        replies_sent: AtomicU64::new(0),
        replies_delivered: AtomicU64::new(0),
        inbox_messages: AtomicU64::new(0),
        inbox_replies: AtomicU64::new(0),
        inbox_events: AtomicU64::new(0),
        first_send: AtomicU64::new(u64::MAX),
        last_send: AtomicU64::new(0),
        last_recv: AtomicU64::new(0),
        running: AtomicBool::new(true),
        progress: Notify::new(),
    });

    // Setup, bounded concurrency.
    let setup_started = Instant::now();
    let setup = net::native_channel(addr, None).await?;
    let mut agent_channels = Vec::new();
    for i in 0..p.agent_conns {
        agent_channels.push(net::native_channel(addr, net::source_ip(i + 3, p.source_ips)).await?);
    }
    let sem = Arc::new(Semaphore::new(p.setup_concurrency.max(1)));
    let mut tasks = Vec::with_capacity(count);
    for idx in 0..count {
        let global = job.first + idx;
        let agent = (!agent_channels.is_empty())
            .then(|| agent_channels[global % agent_channels.len()].clone());
        let (sh, p, setup, sem) = (sh.clone(), p.clone(), setup.clone(), sem.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await;
            tokio::time::timeout(
                SETUP_TIMEOUT,
                setup_pair(sh, p, addr, idx, global, setup, agent),
            )
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("setup timed out")))
        }));
    }
    let mut senders = Vec::with_capacity(count);
    let mut setup_errors: BTreeMap<String, u64> = BTreeMap::new();
    for t in tasks {
        match t.await? {
            Ok(tx) => senders.push(Some(tx)),
            Err(e) => {
                let msg = e.to_string();
                let key = format!("setup: {}", msg.chars().take(80).collect::<String>());
                *setup_errors.entry(key).or_default() += 1;
                senders.push(None);
            }
        }
    }
    // Inbox streams last: the pairs' first messages are history to them, not load.
    let inbox_streams = if job.worker == 0 { p.inbox_streams } else { 0 };
    let mut inbox_open = 0u64;
    for i in 0..inbox_streams {
        let conn = match agent_channels.get(i % agent_channels.len().max(1)) {
            Some(c) => c.clone(),
            None => net::native_channel(addr, net::source_ip(i + 3, p.source_ips)).await?,
        };
        match tokio::time::timeout(SETUP_TIMEOUT, open_inbox(conn, &p.api_key)).await {
            Ok(Ok((stream, requests))) => {
                inbox_open += 1;
                tokio::spawn(read_inbox(sh.clone(), stream, requests));
            }
            Ok(Err(e)) => {
                let key = format!(
                    "setup: inbox: {}",
                    e.to_string().chars().take(80).collect::<String>()
                );
                *setup_errors.entry(key).or_default() += 1;
            }
            Err(_) => {
                *setup_errors
                    .entry("setup: inbox: timed out".into())
                    .or_default() += 1
            }
        }
    }
    let pairs_ready = senders.iter().filter(|s| s.is_some()).count();
    let setup_ms = setup_started.elapsed().as_millis() as u64;
    let start_in = ready(pairs_ready, setup_ms, setup_errors.clone()).await?;

    // Run: the schedule.
    let t0 = sh.now_ns() + start_in;
    sh.t0_ns.store(t0, Ordering::Relaxed);
    sh.stats.lock().unwrap().errors.extend(setup_errors);
    tokio::time::sleep(Duration::from_nanos(start_in)).await;
    let cpu0 = crate::procfs::sample(std::process::id()).map(|s| s.ticks);
    let total = count * p.messages;
    let interval = 1e9 / (count as f64 * p.rate);
    let mut next = 0usize;
    let mut not_sent = 0u64;
    while next < total {
        let now = sh.now_ns();
        let due = if now < t0 {
            0
        } else {
            (((now - t0) as f64 / interval) as usize + 1).min(total)
        };
        while next < due {
            let (c, k) = (next % count, next / count);
            let sched = t0 + (next as f64 * interval) as u64;
            match &senders[c] {
                Some(tx) if tx.send((k, sched)).is_ok() => {}
                _ => not_sent += 1,
            }
            next += 1;
        }
        if next < total {
            let at = t0 + (next as f64 * interval) as u64;
            let wait = at.saturating_sub(sh.now_ns());
            tokio::time::sleep(Duration::from_nanos(wait.max(200_000))).await;
        }
    }
    // Drain: until everything sent is answered and delivered, bounded.
    let deadline = Instant::now() + Duration::from_millis(p.drain_ms);
    loop {
        let sent = sh.sent.load(Ordering::Relaxed);
        let queued = total as u64 - not_sent;
        let done = sh.publish_done.load(Ordering::Relaxed);
        let delivered = sh.delivered.load(Ordering::Relaxed);
        let acked = sh.acked.load(Ordering::Relaxed);
        let replies_ok = !p.reply
            || sh.replies_delivered.load(Ordering::Relaxed)
                >= sh.replies_sent.load(Ordering::Relaxed);
        // Every inbox stream sees every acked message of every process; this process knows
        // its own pairs' only, a floor that is enough to wait out the tail.
        let inbox_ok = sh.inbox_messages.load(Ordering::Relaxed) >= inbox_open * acked
            && sh.inbox_replies.load(Ordering::Relaxed)
                >= inbox_open * sh.replies_delivered.load(Ordering::Relaxed);
        if sent == queued && done == sent && delivered >= acked && replies_ok && inbox_ok {
            break;
        }
        if Instant::now() >= deadline {
            break;
        }
        let _ = tokio::time::timeout(Duration::from_millis(50), sh.progress.notified()).await;
    }
    let end_ns = sh.now_ns().saturating_sub(t0);
    let cpu1 = crate::procfs::sample(std::process::id());
    sh.running.store(false, Ordering::Relaxed);

    let mut r = ConvResult {
        pairs_ready,
        setup_ms,
        sent: sh.sent.load(Ordering::Relaxed),
        not_sent: not_sent + (total as u64 - not_sent - sh.sent.load(Ordering::Relaxed)),
        acked: sh.acked.load(Ordering::Relaxed),
        delivered: sh.delivered.load(Ordering::Relaxed),
        replies_sent: sh.replies_sent.load(Ordering::Relaxed),
        replies_delivered: sh.replies_delivered.load(Ordering::Relaxed),
        first_send_ns: match sh.first_send.load(Ordering::Relaxed) {
            u64::MAX => 0,
            v => v,
        },
        last_send_ns: sh.last_send.load(Ordering::Relaxed),
        last_recv_ns: sh.last_recv.load(Ordering::Relaxed),
        end_ns,
        cpu_ticks: match (cpu0, cpu1) {
            (Some(a), Some(b)) => b.ticks.saturating_sub(a),
            _ => 0,
        },
        max_rss_kb: cpu1.map(|s| s.hwm_kb).unwrap_or(0),
        inbox_streams: inbox_open,
        inbox_messages: sh.inbox_messages.load(Ordering::Relaxed),
        inbox_replies: sh.inbox_replies.load(Ordering::Relaxed),
        inbox_events: sh.inbox_events.load(Ordering::Relaxed),
        ..Default::default()
    };
    for pair in &sh.pairs {
        let pair = pair.lock().unwrap();
        for k in 0..p.messages {
            if pair.acked[k] && !pair.delivered[k] {
                r.acked_not_delivered += 1;
            }
            if !pair.acked[k] && pair.delivered[k] {
                r.delivered_not_acked += 1;
            }
        }
    }
    let st = sh.stats.lock().unwrap();
    r.errors = st.errors.clone();
    r.duplicates = st.duplicates;
    r.out_of_order = st.out_of_order;
    r.echoes = st.echoes;
    r.reply_duplicates = st.reply_duplicates;
    r.latency = st.latency.to_sparse();
    r.latency_from_send = st.latency_from_send.to_sparse();
    r.ack = st.ack.to_sparse();
    r.lag = st.lag.to_sparse();
    r.reply_latency = st.reply.to_sparse();
    r.inbox_latency = st.inbox.to_sparse();
    Ok(r)
}
