//! `burst`: a marketing-campaign burst on one topic's queue.
//!
//! The shape: V visitors (`--visitors`, 5000) each open a conversation on one topic ("Order" of
//! the demo site, `site_key` "demo") within T seconds (`--seconds`, 10). Arrival j is due at
//! `t0 + j * T / V`: an open-loop schedule, each arrival its own task, so a slow server makes
//! arrivals late on the clock, never fewer. Before the window every visitor has a session and
//! an open `Subscribe` stream (`--visitors-per-conn` streams share one HTTP/2 connection: the
//! server's queue logic, not the socket count, is what this shape measures); an arrival is the
//! `Publish` of the visitor's first message, which creates the conversation.
//!
//! A agents (`--agents`, 20) of capacity C (`--capacity`, 5) are created for the run with the
//! demo admin's login; each logs in and holds one bidi `Chat` stream on the inbox, so it is
//! online from the start and the router assigns it queued conversations of the topic. An agent
//! "serves" each conversation it sees assigned to itself (status OPEN) for `--hold-ms` (500),
//! then resolves it on its stream, which frees the slot for the next one in the queue. With
//! `--hold-until-arrivals-done` no resolve is sent before every arrival is acked; with
//! `--no-agents` nobody is online and the queue only grows (the pure arrival cost). An inbox
//! stream the server drops (lagged: `ResyncRequired`) is reopened, as a console would, and the
//! agent lists its open conversations to catch up on what it missed.
//!
//! Measured: arrivals/s (acked creations) over the arrival window (t0 until the last
//! arrival's answer) and errors by kind; the server's CPU (from /proc) over that window per
//! arrival, and over the drain (from there until the queue is empty) per assignment;
//! assignments/s and the time until the queue is empty; the events received by the visitor
//! streams and the agents' inbox streams; and whether every visitor's queue position is right.
//!
//! Queue-position correctness, "every visitor's queue position is right within 1 s of each
//! change", judged after the run from the recorded timeline (every stream event is kept with
//! its arrival time):
//! - The true queue order is by (created_at_ms, conversation id): the server orders its queue
//!   by (queued_at, id), and queued_at == created_at for a conversation never reopened.
//!   created_at_ms is taken from the first Conversation event the visitor or the agents get for
//!   it. A conversation is queued from that time (the server's clock: same machine) until the
//!   moment the agents' inbox streams first see it with a status other than QUEUED.
//! - truepos(c, s) = 1 + the number of conversations ahead of c in that order queued at s. It
//!   only falls over time.
//! - Every `--sample-ms` (100) instant s, for every truly queued conversation c, the visitor's
//!   last seen state is right if it is QUEUED at a position p with
//!   truepos(c, s) <= p <= truepos(c, s - 1 s). Wrong ones, by kind: `stale` (p above
//!   truepos(s - 1 s): the truth moved more than 1 s ago), `ahead` (p below truepos(s): no
//!   delay explains it, or the visitor heard of an assignment before every agent stream did),
//!   `notYetQueued` (no state yet more than 1 s after creation), `leftEarly` (the visitor's
//!   view left the queue more than 1 s before the agents saw it leave). For every conversation
//!   that left the queue more than 1 s before s, a view still saying QUEUED is `stillQueued`.
//!   The staleness of a wrong view is how long ago the truth stopped being what it shows (to
//!   the sample grid; 0 for `ahead`).
//! - Time until consistent: after the last change (the last creation or the last departure
//!   from the queue), the time until every visitor's view is exact (QUEUED at its exact true
//!   position, or not QUEUED for one that left) and stays so until the end of the run; "never"
//!   if that does not happen within `--settle-secs` (10), with the number still wrong.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::Request;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use wsmschat::v1;
use wsmschat::v1::admin_service_client::AdminServiceClient;
use wsmschat::v1::chat_service_client::ChatServiceClient;
use wsmschat::v1::client_event::Event as Ce;
use wsmschat::v1::server_event::Event as Se;
use wsmschat::v1::session_service_client::SessionServiceClient;

use crate::hist::Hist;
use crate::procfs::{self, ProcSample};
use crate::{log, net, r1, r3};

const QUEUED: i32 = v1::ConversationStatus::Queued as i32;
const OPEN: i32 = v1::ConversationStatus::Open as i32;
/// The agents' password (CreateAgent wants at least 8 characters).
const AGENT_PASSWORD: &str = "bench-agent-password";
/// Session, stream and login calls of the setup.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// One arrival's Publish.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(60);
/// "Within 1 s of each change".
const GRACE_NS: u64 = 1_000_000_000;
/// The prefix of a resolve's request_id (the rest is the conversation id).
const RESOLVE_ID: &str = "resolve:";

type Auth = MetadataValue<Ascii>;

/// The load shape and the server to load.
#[derive(Debug, Clone)]
pub struct BurstParams {
    pub url: String,
    pub pid: Option<u32>,
    pub label: String,
    pub visitors: usize,
    pub seconds: f64,
    pub topic: String,
    pub agents: usize,
    pub capacity: u32,
    pub hold_ms: u64,
    pub no_agents: bool,
    pub hold_until_arrivals_done: bool,
    pub visitors_per_conn: usize,
    pub sample_ms: u64,
    pub settle_secs: f64,
    pub drain_timeout_secs: f64,
    pub setup_concurrency: usize,
    pub threads: usize,
    pub admin_email: String,
    pub admin_password: String,
}

// ---------------------------------------------------------------- what the streams saw

/// One conversation as the streams saw it.
#[derive(Debug, Default)]
struct ConvRec {
    /// The server's creation time, ms since epoch, from the first Conversation event.
    created_at_ms: Option<i64>,
    /// The same from the Publish ack (the first message's commit), if no event ever came.
    ack_created_ms: Option<i64>,
    /// The visitor who opened it (None: not one of this run's, e.g. on an external server).
    visitor: Option<usize>,
    /// When an agent inbox stream first saw it with a status other than QUEUED (bench ns).
    left_ns: Option<u64>,
}

/// One visitor: its conversation and every Conversation event its stream got.
#[derive(Debug, Default)]
struct VisitorRec {
    conversation_id: Option<String>,
    views: Vec<View>,
}

/// A visitor's view of its conversation from one Conversation event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct View {
    at_ns: u64,
    status: i32,
    position: u32,
}

struct Shared {
    epoch: Instant,
    /// Unix time of `epoch`, ns: maps the server's created_at_ms onto the bench clock.
    epoch_unix_ns: i128,
    running: AtomicBool,
    convs: Mutex<HashMap<String, ConvRec>>,
    visitors: Vec<Mutex<VisitorRec>>,
    errors: Mutex<BTreeMap<String, u64>>,
    visitor_events: AtomicU64,
    visitor_conv_events: AtomicU64,
    agent_events: AtomicU64,
    agent_conv_events: AtomicU64,
    resolves_sent: AtomicU64,
    resolved: AtomicU64,
    agent_reconnects: AtomicU64,
    visitor_reconnects: AtomicU64,
    /// Departures first learnt from an agent's listing after a reconnect, not from a stream.
    left_by_listing: AtomicU64,
}

impl Shared {
    fn new(visitors: usize) -> Self {
        let epoch = Instant::now();
        let epoch_unix_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        Self {
            epoch,
            epoch_unix_ns,
            running: AtomicBool::new(true),
            convs: Mutex::default(),
            visitors: (0..visitors).map(|_| Mutex::default()).collect(),
            errors: Mutex::default(),
            visitor_events: AtomicU64::new(0),
            visitor_conv_events: AtomicU64::new(0),
            agent_events: AtomicU64::new(0),
            agent_conv_events: AtomicU64::new(0),
            resolves_sent: AtomicU64::new(0),
            resolved: AtomicU64::new(0),
            agent_reconnects: AtomicU64::new(0),
            visitor_reconnects: AtomicU64::new(0),
            left_by_listing: AtomicU64::new(0),
        }
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    fn error(&self, kind: impl Into<String>) {
        *self.errors.lock().unwrap().entry(kind.into()).or_default() += 1;
    }

    /// A server time (ms since epoch) on the bench clock (ns since `epoch`, 0 if before).
    fn server_ms_to_ns(&self, ms: i64) -> u64 {
        (ms as i128 * 1_000_000 - self.epoch_unix_ns).max(0) as u64
    }

    /// Notes a Conversation event: its creation time (first one wins), its visitor when it
    /// came on that visitor's stream, its departure from the queue when it came on an inbox
    /// stream (`inbox`) with a status other than QUEUED.
    fn saw(&self, c: &v1::Conversation, visitor: Option<usize>, inbox: bool, now: u64) {
        let mut convs = self.convs.lock().unwrap();
        let rec = convs.entry(c.id.clone()).or_default();
        if rec.created_at_ms.is_none() && c.created_at_ms > 0 {
            rec.created_at_ms = Some(c.created_at_ms);
        }
        if visitor.is_some() {
            rec.visitor = visitor;
        }
        if inbox && c.status != QUEUED && rec.left_ns.is_none() {
            rec.left_ns = Some(now);
        }
    }
}

fn short(e: impl std::fmt::Display) -> String {
    e.to_string().chars().take(80).collect()
}

fn authed<T>(msg: T, auth: &Auth) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert("authorization", auth.clone());
    r
}

fn code_name(code: i32) -> String {
    format!("{:?}", tonic::Code::from_i32(code))
}

// ---------------------------------------------------------------- visitors

/// Opens a visitor's Subscribe stream (an empty subscription: a visitor's stream follows all
/// of its conversations) and waits for its Ready event.
/// Opens a broken stream again every 200 ms until it opens (each failure counted as
/// `<what> reconnect: ...`); None once the run is over.
async fn reopen<T, F, Fut>(sh: &Shared, what: &str, open: F) -> Option<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if !sh.running() {
            return None;
        }
        match open().await {
            Ok(s) => return Some(s),
            Err(e) => sh.error(format!("{what} reconnect: {}", short(e))),
        }
    }
}

async fn open_visitor_stream(
    ch: &Channel,
    auth: &Auth,
) -> anyhow::Result<tonic::Streaming<v1::SubscribeResponse>> {
    let req = v1::SubscribeRequest {
        subscription: Some(v1::Subscription::default()),
    };
    let mut s = ChatServiceClient::new(ch.clone())
        .subscribe(authed(req, auth))
        .await?
        .into_inner();
    match tokio::time::timeout(SETUP_TIMEOUT, s.message()).await {
        Ok(Ok(Some(v1::SubscribeResponse {
            event: Some(v1::ServerEvent {
                event: Some(Se::Ready(_)),
            }),
        }))) => Ok(s),
        Ok(Ok(other)) => bail!("visitor stream: expected ready, got {other:?}"),
        Ok(Err(s)) => bail!("visitor stream: {:?}", s.code()),
        Err(_) => bail!("visitor stream: no ready"),
    }
}

/// Sets up one visitor before the window: session, then its stream (read by a task of its
/// own). Returns its authorization.
async fn setup_visitor(sh: Arc<Shared>, idx: usize, ch: Channel) -> anyhow::Result<Auth> {
    let session = SessionServiceClient::new(ch.clone())
        .start_visitor_session(v1::StartVisitorSessionRequest {
            site_key: "demo".into(),
            name: format!("burst visitor {idx}"),
            ..Default::default()
        })
        .await
        .map_err(|s| anyhow!("session: {:?}", s.code()))?
        .into_inner();
    let auth = net::bearer(&session.visitor_token);
    let stream = open_visitor_stream(&ch, &auth).await?;
    tokio::spawn(read_visitor(sh, idx, stream, ch, auth.clone()));
    Ok(auth)
}

/// Records a visitor's Conversation events; reopens the stream if the server ends it (and
/// then reads the conversation once, as a widget would, since a new stream replays no state).
async fn read_visitor(
    sh: Arc<Shared>,
    idx: usize,
    mut stream: tonic::Streaming<v1::SubscribeResponse>,
    ch: Channel,
    auth: Auth,
) {
    loop {
        let mut resync = false;
        let ended = loop {
            match stream.message().await {
                Ok(Some(r)) => {
                    sh.visitor_events.fetch_add(1, Ordering::Relaxed);
                    match r.event.and_then(|e| e.event) {
                        Some(Se::Conversation(c)) => {
                            sh.visitor_conv_events.fetch_add(1, Ordering::Relaxed);
                            visitor_view(&sh, idx, &c);
                        }
                        Some(Se::ResyncRequired(_)) => {
                            resync = true;
                            sh.error("visitor stream: resync required");
                        }
                        _ => {}
                    }
                }
                Ok(None) => break "visitor stream: ended".to_owned(),
                Err(s) => break format!("visitor stream: {:?}", s.code()),
            }
        };
        if !sh.running() {
            return;
        }
        if !resync {
            sh.error(ended);
        }
        let Some(s) = reopen(&sh, "visitor", || open_visitor_stream(&ch, &auth)).await else {
            return;
        };
        stream = s;
        sh.visitor_reconnects.fetch_add(1, Ordering::Relaxed);
        let id = sh.visitors[idx].lock().unwrap().conversation_id.clone();
        if let Some(id) = id {
            let req = v1::GetConversationRequest {
                conversation_id: id,
            };
            match ChatServiceClient::new(ch.clone())
                .get_conversation(authed(req, &auth))
                .await
            {
                Ok(r) => {
                    if let Some(c) = r.into_inner().conversation {
                        visitor_view(&sh, idx, &c);
                    }
                }
                Err(s) => sh.error(format!("visitor refresh: {:?}", s.code())),
            }
        }
    }
}

/// A Conversation snapshot reached visitor `idx`: its view now.
fn visitor_view(sh: &Shared, idx: usize, c: &v1::Conversation) {
    let now = sh.now_ns();
    let first = {
        let mut v = sh.visitors[idx].lock().unwrap();
        v.views.push(View {
            at_ns: now,
            status: c.status,
            position: c.queue_position,
        });
        let first = v.conversation_id.is_none();
        if first {
            v.conversation_id = Some(c.id.clone());
        }
        first
    };
    if first {
        sh.saw(c, Some(idx), false, now);
    }
}

/// One arrival: the visitor's first message, which creates its conversation.
struct Arrival {
    sched_ns: u64,
    sent_ns: u64,
    /// When the answer came; None: refused or timed out.
    acked_ns: Option<u64>,
}

async fn arrive(
    sh: Arc<Shared>,
    idx: usize,
    ch: Channel,
    auth: Auth,
    topic: String,
    sched_ns: u64,
) -> Arrival {
    let sent_ns = sh.now_ns();
    let req = v1::PublishRequest {
        event: Some(v1::ClientEvent {
            request_id: String::new(),
            event: Some(Ce::SendMessage(v1::SendMessage {
                conversation_id: String::new(),
                topic,
                client_msg_id: format!("burst-{idx}"),
                text: "Hello! A question about my order.".into(),
                ..Default::default()
            })),
        }),
    };
    let r = tokio::time::timeout(
        PUBLISH_TIMEOUT,
        ChatServiceClient::new(ch).publish(authed(req, &auth)),
    )
    .await;
    let now = sh.now_ns();
    let ack = match r {
        Ok(Ok(resp)) => resp.into_inner().ack,
        Ok(Err(s)) => {
            sh.error(format!("publish: {:?}", s.code()));
            None
        }
        Err(_) => {
            sh.error("publish: timed out");
            None
        }
    };
    let Some(ack) = ack else {
        return Arrival {
            sched_ns,
            sent_ns,
            acked_ns: None,
        };
    };
    if ack.conversation_id.is_empty() {
        sh.error("publish: ack without a conversation");
    } else {
        sh.visitors[idx]
            .lock()
            .unwrap()
            .conversation_id
            .get_or_insert_with(|| ack.conversation_id.clone());
        let mut convs = sh.convs.lock().unwrap();
        let rec = convs.entry(ack.conversation_id.clone()).or_default();
        rec.visitor = Some(idx);
        rec.ack_created_ms = Some(ack.created_at_ms);
    }
    Arrival {
        sched_ns,
        sent_ns,
        acked_ns: Some(now),
    }
}

// ---------------------------------------------------------------- agents

/// One agent of the run.
struct Agent {
    id: String,
    auth: Auth,
    channel: Channel,
    /// The current Chat stream's sending half (replaced on a reconnect).
    tx: Mutex<Option<mpsc::UnboundedSender<v1::ChatRequest>>>,
    /// Conversations it saw assigned to itself (each gets one resolve task).
    taken: Mutex<HashSet<String>>,
    /// Resolves sent and not answered yet (sent again after a reconnect if still open).
    unanswered: Mutex<HashSet<String>>,
}

/// What every agent does with what it is assigned.
#[derive(Clone)]
struct AgentRules {
    hold: Duration,
    /// Some: resolve only once this says the arrivals are done.
    gate: Option<watch::Receiver<bool>>,
}

/// Opens the agent's inbox Chat stream and waits for its Ready event: the agent is online.
async fn open_agent_stream(ag: &Agent) -> anyhow::Result<tonic::Streaming<v1::ChatResponse>> {
    let (tx, rx) = mpsc::unbounded_channel();
    tx.send(v1::ChatRequest {
        subscribe: Some(v1::Subscription {
            cursors: Vec::new(),
            inbox: true,
        }),
        event: None,
    })?;
    let mut s = ChatServiceClient::new(ag.channel.clone())
        .chat(authed(UnboundedReceiverStream::new(rx), &ag.auth))
        .await?
        .into_inner();
    match tokio::time::timeout(SETUP_TIMEOUT, s.message()).await {
        Ok(Ok(Some(v1::ChatResponse {
            event: Some(v1::ServerEvent {
                event: Some(Se::Ready(_)),
            }),
        }))) => {}
        Ok(Ok(other)) => bail!("agent stream: expected ready, got {other:?}"),
        Ok(Err(s)) => bail!("agent stream: {:?}", s.code()),
        Err(_) => bail!("agent stream: no ready"),
    }
    *ag.tx.lock().unwrap() = Some(tx);
    Ok(s)
}

/// Reads an agent's inbox stream; reopens it when the server ends it.
async fn agent_loop(
    sh: Arc<Shared>,
    ag: Arc<Agent>,
    rules: AgentRules,
    mut stream: tonic::Streaming<v1::ChatResponse>,
) {
    loop {
        let mut resync = false;
        let ended = loop {
            match stream.message().await {
                Ok(Some(r)) => {
                    if let Some(ev) = r.event.and_then(|e| e.event) {
                        resync |= agent_event(&sh, &ag, &rules, ev);
                    }
                }
                Ok(None) => break "agent stream: ended".to_owned(),
                Err(s) => break format!("agent stream: {:?}", s.code()),
            }
        };
        if !sh.running() {
            return;
        }
        if !resync {
            sh.error(ended);
        }
        let Some(s) = reopen(&sh, "agent", || open_agent_stream(&ag)).await else {
            return;
        };
        stream = s;
        sh.agent_reconnects.fetch_add(1, Ordering::Relaxed);
        catch_up(&sh, &ag, &rules).await;
    }
}

/// One event on an agent's stream; true for ResyncRequired (the stream ends next).
fn agent_event(sh: &Arc<Shared>, ag: &Arc<Agent>, rules: &AgentRules, ev: Se) -> bool {
    sh.agent_events.fetch_add(1, Ordering::Relaxed);
    match ev {
        Se::Conversation(c) => {
            sh.agent_conv_events.fetch_add(1, Ordering::Relaxed);
            sh.saw(&c, None, true, sh.now_ns());
            if c.assignee_id == ag.id && c.status == OPEN {
                take(sh, ag, rules, c.id);
            }
        }
        Se::Ack(a) => {
            if let Some(id) = a.request_id.strip_prefix(RESOLVE_ID) {
                if ag.unanswered.lock().unwrap().remove(id) {
                    sh.resolved.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Se::Error(e) => {
            if let Some(id) = e.request_id.strip_prefix(RESOLVE_ID) {
                ag.unanswered.lock().unwrap().remove(id);
                sh.error(format!("resolve: {}", code_name(e.code)));
            } else {
                sh.error(format!("agent event error: {}", code_name(e.code)));
            }
        }
        Se::ResyncRequired(_) => {
            sh.error("agent stream: resync required");
            return true;
        }
        _ => {}
    }
    false
}

/// The agent starts serving a conversation assigned to it: resolve it after the hold (and,
/// with the gate, not before the arrivals are done). Once per conversation.
fn take(sh: &Arc<Shared>, ag: &Arc<Agent>, rules: &AgentRules, id: String) {
    if !ag.taken.lock().unwrap().insert(id.clone()) {
        return;
    }
    let (sh, ag, rules) = (sh.clone(), ag.clone(), rules.clone());
    tokio::spawn(async move {
        tokio::time::sleep(rules.hold).await;
        if let Some(mut gate) = rules.gate {
            let _ = gate.wait_for(|done| *done).await;
        }
        if sh.running() {
            send_resolve(&sh, &ag, id);
        }
    });
}

/// Sends a resolve on the agent's current stream (answered on it by an Ack or EventError).
/// If the stream is gone, the catch-up after the reconnect sends it again.
fn send_resolve(sh: &Shared, ag: &Agent, id: String) {
    ag.unanswered.lock().unwrap().insert(id.clone());
    let req = v1::ChatRequest {
        subscribe: None,
        event: Some(v1::ClientEvent {
            request_id: format!("{RESOLVE_ID}{id}"),
            event: Some(Ce::Resolve(v1::ResolveConversation {
                conversation_id: id,
            })),
        }),
    };
    if let Some(tx) = ag.tx.lock().unwrap().as_ref() {
        if tx.send(req).is_ok() {
            sh.resolves_sent.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// After a reconnect: the agent's open conversations, which its new stream will not replay.
/// Each is taken (if its assignment was missed) or resolved again (if the answer was lost).
async fn catch_up(sh: &Arc<Shared>, ag: &Arc<Agent>, rules: &AgentRules) {
    let mut page_token = String::new();
    loop {
        let req = v1::ListConversationsRequest {
            status: OPEN,
            assignee_id: "me".into(),
            page_size: 200,
            page_token: page_token.clone(),
            ..Default::default()
        };
        let page = match ChatServiceClient::new(ag.channel.clone())
            .list_conversations(authed(req, &ag.auth))
            .await
        {
            Ok(r) => r.into_inner(),
            Err(s) => {
                sh.error(format!("agent catch-up: {:?}", s.code()));
                return;
            }
        };
        let now = sh.now_ns();
        for c in page.conversations {
            {
                let mut convs = sh.convs.lock().unwrap();
                let rec = convs.entry(c.id.clone()).or_default();
                if rec.left_ns.is_none() {
                    rec.left_ns = Some(now);
                    sh.left_by_listing.fetch_add(1, Ordering::Relaxed);
                }
                rec.created_at_ms.get_or_insert(c.created_at_ms);
            }
            let resend = ag.unanswered.lock().unwrap().contains(&c.id);
            if resend {
                send_resolve(sh, ag, c.id);
            } else {
                take(sh, ag, rules, c.id);
            }
        }
        if page.next_page_token.is_empty() {
            return;
        }
        page_token = page.next_page_token;
    }
}

/// Creates the run's agents as the admin, logs each in (two at a time: argon2 is slow) and
/// opens its inbox stream.
async fn setup_agents(
    sh: &Arc<Shared>,
    p: &BurstParams,
    addr: std::net::SocketAddr,
    admin: &Auth,
    rules: &AgentRules,
) -> anyhow::Result<Vec<Arc<Agent>>> {
    let ch = net::native_channel(addr, None).await?;
    let run = format!("{:x}", sh.epoch_unix_ns % 1_000_000_000_000);
    let mut emails = Vec::new();
    for i in 0..p.agents {
        let email = format!("burst-{run}-{i}@bench.example");
        let req = v1::CreateAgentRequest {
            agent: Some(v1::Agent {
                email: email.clone(),
                name: format!("Burst agent {i}"),
                role: v1::AgentRole::Agent as i32,
                topics: vec![p.topic.clone()],
                capacity: p.capacity,
                active: true,
                ..Default::default()
            }),
            password: AGENT_PASSWORD.into(),
        };
        AdminServiceClient::new(ch.clone())
            .create_agent(authed(req, admin))
            .await
            .context("CreateAgent")?;
        emails.push(email);
    }
    let sem = Arc::new(Semaphore::new(2));
    let mut logins = Vec::new();
    for email in emails {
        let (ch, sem) = (ch.clone(), sem.clone());
        logins.push(tokio::spawn(async move {
            let _permit = sem.acquire().await;
            SessionServiceClient::new(ch)
                .login(v1::LoginRequest {
                    email,
                    password: AGENT_PASSWORD.into(),
                })
                .await
                .map(|r| r.into_inner())
        }));
    }
    let mut agents = Vec::new();
    for l in logins {
        let login = l.await?.context("agent login")?;
        let id = login.agent.map(|a| a.id).unwrap_or_default();
        let ag = Arc::new(Agent {
            id,
            auth: net::bearer(&login.token),
            // One HTTP/2 connection per agent, as each console has its own.
            channel: net::native_channel(addr, None).await?,
            tx: Mutex::new(None),
            taken: Mutex::default(),
            unanswered: Mutex::default(),
        });
        let stream = open_agent_stream(&ag).await?;
        tokio::spawn(agent_loop(sh.clone(), ag.clone(), rules.clone(), stream));
        agents.push(ag);
    }
    Ok(agents)
}

// ---------------------------------------------------------------- the judgement

/// One conversation for the judgement.
#[derive(Debug, Clone)]
struct Track {
    id: String,
    created_at_ms: i64,
    /// created_at_ms on the bench clock.
    created_ns: u64,
    left_ns: Option<u64>,
    /// The visitor's views in the order they came; None: not one of ours (it counts in the
    /// order, it is not checked).
    views: Option<Vec<View>>,
}

impl Track {
    fn queued_at(&self, s: u64) -> bool {
        self.created_ns <= s && self.left_ns.is_none_or(|l| s < l)
    }
}

/// The kinds of wrong view (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wrong {
    Stale,
    Ahead,
    NotYetQueued,
    LeftEarly,
    StillQueued,
}

const KINDS: [Wrong; 5] = [
    Wrong::Stale,
    Wrong::Ahead,
    Wrong::NotYetQueued,
    Wrong::LeftEarly,
    Wrong::StillQueued,
];

impl Wrong {
    fn name(self) -> &'static str {
        match self {
            Wrong::Stale => "stale",
            Wrong::Ahead => "ahead",
            Wrong::NotYetQueued => "notYetQueued",
            Wrong::LeftEarly => "leftEarly",
            Wrong::StillQueued => "stillQueued",
        }
    }
}

/// What the sampling found.
#[derive(Debug, Default, Clone)]
struct Verdict {
    samples: u64,
    queued_pairs: u64,
    left_pairs: u64,
    /// Count and worst staleness (ns) per kind, in `KINDS` order.
    wrong: [(u64, u64); 5],
    visitors_wrong: u64,
    /// Departures the visitor saw before any agent stream did: count, largest lead (ns).
    visitor_first: (u64, u64),
}

impl Verdict {
    fn violations(&self) -> u64 {
        self.wrong.iter().map(|(n, _)| n).sum()
    }
    fn worst_ns(&self) -> u64 {
        self.wrong.iter().map(|(_, w)| *w).max().unwrap_or(0)
    }
}

/// When every view became exact for good.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Consistency {
    /// The last change of the truth: the last creation or departure (bench ns).
    last_change_ns: u64,
    /// When the last view became exact for good (None: some are still wrong).
    consistent_ns: Option<u64>,
    /// Views still wrong at the end: left but still QUEUED / wrong position / no view at all.
    still_queued: u64,
    wrong_position: u64,
    no_view: u64,
}

impl Consistency {
    fn wrong(&self) -> u64 {
        self.still_queued + self.wrong_position + self.no_view
    }
}

/// Conversation indices in the true queue order: (created_at_ms, id).
fn queue_order(tracks: &[Track]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..tracks.len()).collect();
    order.sort_by(|&a, &b| {
        (tracks[a].created_at_ms, &tracks[a].id).cmp(&(tracks[b].created_at_ms, &tracks[b].id))
    });
    order
}

/// truepos of every conversation at `s`: 1 + the conversations ahead of it queued at `s`.
fn true_positions(tracks: &[Track], order: &[usize], s: u64, out: &mut [u32]) {
    let mut ahead = 0u32;
    for &i in order {
        out[i] = 1 + ahead;
        if tracks[i].queued_at(s) {
            ahead += 1;
        }
    }
}

/// Samples every `step` ns from `start` to `end` and judges each visitor's last view.
fn judge(tracks: &[Track], start: u64, end: u64, step: u64) -> Verdict {
    let order = queue_order(tracks);
    let n = tracks.len();
    let mut v = Verdict::default();
    let (mut now, mut before) = (vec![0u32; n], vec![0u32; n]);
    // Views consumed so far, per conversation.
    let mut cursor = vec![0usize; n];
    // truepos as it fell, on the sample grid: (position, first sample it was seen).
    let mut history: Vec<Vec<(u32, u64)>> = vec![Vec::new(); n];
    let mut wrong_once = vec![false; n];
    // truepos at creation: the upper bound while the conversation is younger than the grace
    // (truepos(s - 1 s) is not defined then, and everything ahead of it exists at its creation).
    let at_creation: Vec<u32> = (0..n)
        .map(|i| {
            let t = &tracks[i];
            let ahead = order
                .iter()
                .take_while(|&&j| j != i)
                .filter(|&&j| tracks[j].left_ns.is_none_or(|l| l > t.created_ns))
                .count();
            1 + ahead as u32
        })
        .collect();
    // Conversations ahead of it created in the same millisecond: the clock cannot tell which
    // came first, and the server orders a tie by id, so one created a moment later with a
    // smaller id goes ahead of it and moves it back by one. Its visitor may show the position
    // from before that for up to the grace; not longer.
    let tied_ahead: Vec<u32> = (0..n)
        .map(|i| {
            let t = &tracks[i];
            order
                .iter()
                .take_while(|&&j| j != i)
                .filter(|&&j| tracks[j].created_at_ms == t.created_at_ms)
                .count() as u32
        })
        .collect();
    // When the visitor's view first left QUEUED.
    let view_left: Vec<Option<u64>> = tracks
        .iter()
        .map(|t| {
            t.views
                .as_ref()?
                .iter()
                .find(|w| w.status != QUEUED)
                .map(|w| w.at_ns)
        })
        .collect();
    for (t, vl) in tracks.iter().zip(&view_left) {
        if let (Some(vl), Some(l)) = (vl, t.left_ns) {
            if *vl < l {
                v.visitor_first.0 += 1;
                v.visitor_first.1 = v.visitor_first.1.max(l - vl);
            }
        }
    }
    let mut s = start;
    while s <= end {
        true_positions(tracks, &order, s, &mut now);
        // Inclusive: a view exactly 1 s behind the truth is still within 1 s.
        true_positions(tracks, &order, s.saturating_sub(GRACE_NS + 1), &mut before);
        v.samples += 1;
        for (i, t) in tracks.iter().enumerate() {
            let Some(views) = &t.views else { continue };
            if s < t.created_ns {
                continue;
            }
            while cursor[i] < views.len() && views[cursor[i]].at_ns <= s {
                cursor[i] += 1;
            }
            let view = cursor[i].checked_sub(1).map(|k| views[k]);
            let bad = if t.queued_at(s) {
                v.queued_pairs += 1;
                let h = &mut history[i];
                if h.last().is_none_or(|(p, _)| *p != now[i]) {
                    h.push((now[i], s));
                }
                match view {
                    None => {
                        let age = s - t.created_ns;
                        (age > GRACE_NS).then_some((Wrong::NotYetQueued, age))
                    }
                    Some(w) if w.status != QUEUED => {
                        let age = s - view_left[i].unwrap_or(w.at_ns);
                        (age > GRACE_NS).then_some((Wrong::LeftEarly, age))
                    }
                    Some(w)
                        if w.position
                            > if s.saturating_sub(GRACE_NS + 1) < t.created_ns {
                                at_creation[i]
                            } else {
                                before[i]
                            } =>
                    {
                        // The first sample at which the truth was below what the view shows.
                        let k = h.partition_point(|(p, _)| *p >= w.position);
                        let since = h.get(k).map_or(s, |(_, at)| *at);
                        Some((Wrong::Stale, s - since))
                    }
                    Some(w)
                        if w.position
                            < if s <= t.created_ns + GRACE_NS {
                                now[i].saturating_sub(tied_ahead[i])
                            } else {
                                now[i]
                            } =>
                    {
                        Some((Wrong::Ahead, 0))
                    }
                    Some(_) => None,
                }
            } else if let Some(left) = t.left_ns.filter(|l| *l <= s) {
                v.left_pairs += 1;
                let age = s - left;
                match view {
                    Some(w) if w.status == QUEUED && age > GRACE_NS => {
                        Some((Wrong::StillQueued, age))
                    }
                    _ => None,
                }
            } else {
                None
            };
            if let Some((kind, age)) = bad {
                let k = KINDS.iter().position(|x| *x == kind).expect("a kind");
                v.wrong[k].0 += 1;
                v.wrong[k].1 = v.wrong[k].1.max(age);
                if !std::mem::replace(&mut wrong_once[i], true) {
                    v.visitors_wrong += 1;
                }
            }
        }
        s += step;
    }
    v
}

/// When every visitor's view became exact for good, judged against the truth at `end` (after
/// the last change the truth stands still).
fn consistency(tracks: &[Track], end: u64) -> Consistency {
    let order = queue_order(tracks);
    let mut pos = vec![0u32; tracks.len()];
    true_positions(tracks, &order, end, &mut pos);
    let mut c = Consistency {
        last_change_ns: tracks
            .iter()
            .map(|t| t.created_ns.max(t.left_ns.unwrap_or(0)))
            .max()
            .unwrap_or(0),
        ..Default::default()
    };
    let mut latest = 0u64;
    for (i, t) in tracks.iter().enumerate() {
        let Some(views) = &t.views else { continue };
        let queued = t.queued_at(end);
        let exact = |w: &View| {
            if queued {
                w.status == QUEUED && w.position == pos[i]
            } else {
                w.status != QUEUED
            }
        };
        match views.last() {
            None => c.no_view += 1,
            Some(w) if !exact(w) => {
                if queued {
                    c.wrong_position += 1;
                } else {
                    c.still_queued += 1;
                }
            }
            Some(_) => {
                // The start of the final run of exact views.
                let k = views.iter().rposition(|w| !exact(w)).map_or(0, |k| k + 1);
                latest = latest.max(views[k].at_ns);
            }
        }
    }
    if c.wrong() == 0 {
        c.consistent_ns = Some(latest);
    }
    c
}

/// The conversations of the run as they stand (with every view, or only the last one).
fn tracks(sh: &Shared, all_views: bool) -> Vec<Track> {
    let convs = sh.convs.lock().unwrap();
    convs
        .iter()
        .filter_map(|(id, rec)| {
            let created_at_ms = rec.created_at_ms.or(rec.ack_created_ms)?;
            let views = rec.visitor.map(|idx| {
                let v = sh.visitors[idx].lock().unwrap();
                if all_views {
                    v.views.clone()
                } else {
                    v.views.last().copied().into_iter().collect()
                }
            });
            Some(Track {
                id: id.clone(),
                created_at_ms,
                created_ns: sh.server_ms_to_ns(created_at_ms),
                left_ns: rec.left_ns,
                views,
            })
        })
        .collect()
}

// ---------------------------------------------------------------- the run

/// Server and load generator CPU at one moment.
#[derive(Clone, Copy)]
struct Mark {
    ns: u64,
    server: Option<ProcSample>,
    me: Option<ProcSample>,
    machine: procfs::MachineSample,
}

fn mark(sh: &Shared, pid: Option<u32>) -> Mark {
    Mark {
        ns: sh.now_ns(),
        server: pid.and_then(procfs::sample),
        me: procfs::sample(std::process::id()),
        machine: procfs::machine(),
    }
}

/// CPU between two marks: server seconds and % of a core, load generator %, machine %.
fn cpu(a: &Mark, b: &Mark) -> (Option<f64>, Option<f64>, Option<f64>, f64) {
    let secs = |x: Option<ProcSample>, y: Option<ProcSample>| match (x, y) {
        (Some(x), Some(y)) => Some(y.ticks.saturating_sub(x.ticks) as f64 / procfs::clk_tck()),
        _ => None,
    };
    let pct = |x: Option<ProcSample>, y: Option<ProcSample>| match (x, y) {
        (Some(x), Some(y)) => Some(procfs::cpu_pct(&x, &y)),
        _ => None,
    };
    (
        secs(a.server, b.server),
        pct(a.server, b.server),
        pct(a.me, b.me),
        procfs::machine_pct(&a.machine, &b.machine),
    )
}

/// Runs the burst against the server at `p.url`; the result as one JSON object.
pub async fn run(p: &BurstParams) -> anyhow::Result<Value> {
    if p.visitors == 0 || p.seconds <= 0.0 || p.visitors_per_conn == 0 {
        bail!("--visitors, --seconds and --visitors-per-conn must be positive");
    }
    let agents_n = if p.no_agents { 0 } else { p.agents };
    let addr = net::loopback_addr(&p.url)?;
    let sh = Arc::new(Shared::new(p.visitors));
    let setup_started = Instant::now();

    // The admin: the demo site, its topic, and whether its queue is empty to begin with.
    let admin_ch = net::native_channel(addr, None).await?;
    let admin_token = SessionServiceClient::new(admin_ch.clone())
        .login(v1::LoginRequest {
            email: p.admin_email.clone(),
            password: p.admin_password.clone(),
        })
        .await
        .context("admin login (--admin-email / --admin-password)")?
        .into_inner()
        .token;
    let admin = net::bearer(&admin_token);
    let site = AdminServiceClient::new(admin_ch.clone())
        .list_sites(authed(v1::ListSitesRequest {}, &admin))
        .await?
        .into_inner()
        .sites
        .into_iter()
        .find(|s| s.site_key == "demo")
        .ok_or_else(|| anyhow!("no site with site_key \"demo\""))?;
    let topic = site
        .topics
        .iter()
        .find(|t| t.eq_ignore_ascii_case(&p.topic))
        .cloned()
        .ok_or_else(|| anyhow!("the demo site has no topic {:?}", p.topic))?;
    let queued_before = ChatServiceClient::new(admin_ch.clone())
        .list_conversations(authed(
            v1::ListConversationsRequest {
                status: QUEUED,
                topic: topic.clone(),
                site_id: site.id.clone(),
                page_size: 1,
                ..Default::default()
            },
            &admin,
        ))
        .await?
        .into_inner()
        .total;
    if queued_before > 0 {
        log(format!(
            "WARNING: {queued_before} conversations of {topic:?} already queued: true positions count only what this run sees"
        ));
    }

    // Agents, online from the start.
    let (done_tx, done_rx) = watch::channel(false);
    let rules = AgentRules {
        hold: Duration::from_millis(p.hold_ms),
        gate: p.hold_until_arrivals_done.then_some(done_rx),
    };
    let agents = if agents_n > 0 {
        setup_agents(&sh, p, addr, &admin, &rules).await?
    } else {
        Vec::new()
    };
    log(format!("{} agents online", agents.len()));

    // Visitors: sessions and streams, `visitors_per_conn` per HTTP/2 connection.
    let conns = p.visitors.div_ceil(p.visitors_per_conn);
    let mut channels = Vec::with_capacity(conns);
    for _ in 0..conns {
        channels.push(net::native_channel(addr, None).await?);
    }
    let sem = Arc::new(Semaphore::new(p.setup_concurrency.max(1)));
    let mut tasks = Vec::with_capacity(p.visitors);
    for idx in 0..p.visitors {
        let (sh, sem, ch) = (
            sh.clone(),
            sem.clone(),
            channels[idx / p.visitors_per_conn].clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await;
            tokio::time::timeout(SETUP_TIMEOUT, setup_visitor(sh, idx, ch))
                .await
                .unwrap_or_else(|_| Err(anyhow!("setup timed out")))
        }));
    }
    let mut auths = Vec::with_capacity(p.visitors);
    for t in tasks {
        match t.await? {
            Ok(a) => auths.push(Some(a)),
            Err(e) => {
                sh.error(format!("setup: {}", short(e)));
                auths.push(None);
            }
        }
    }
    let ready = auths.iter().filter(|a| a.is_some()).count();
    let setup_s = setup_started.elapsed().as_secs_f64();
    log(format!(
        "{ready}/{} visitor streams open on {conns} connections; setup {setup_s:.1} s",
        p.visitors
    ));

    // Server CPU every second, for the timeline.
    let ticks: Arc<Mutex<Vec<Mark>>> = Arc::default();
    {
        let (sh, ticks, pid) = (sh.clone(), ticks.clone(), p.pid);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            while sh.running() {
                every.tick().await;
                ticks.lock().unwrap().push(mark(&sh, pid));
            }
        });
    }

    // The arrival window: the open-loop schedule.
    let start_in = Duration::from_millis(500);
    tokio::time::sleep(start_in).await;
    let t0 = sh.now_ns();
    let m0 = mark(&sh, p.pid);
    let interval = p.seconds * 1e9 / p.visitors as f64;
    let mut handles = Vec::with_capacity(p.visitors);
    let mut next = 0usize;
    let mut not_ready = 0u64;
    while next < p.visitors {
        let now = sh.now_ns();
        let due = ((((now - t0) as f64) / interval) as usize + 1).min(p.visitors);
        while next < due {
            let sched = t0 + (next as f64 * interval) as u64;
            match &auths[next] {
                Some(auth) => handles.push(tokio::spawn(arrive(
                    sh.clone(),
                    next,
                    channels[next / p.visitors_per_conn].clone(),
                    auth.clone(),
                    topic.clone(),
                    sched,
                ))),
                None => not_ready += 1,
            }
            next += 1;
        }
        if next < p.visitors {
            let at = t0 + (next as f64 * interval) as u64;
            let wait = at.saturating_sub(sh.now_ns()).max(200_000);
            tokio::time::sleep(Duration::from_nanos(wait)).await;
        }
    }
    let mut arrivals = Vec::with_capacity(handles.len());
    for h in handles {
        arrivals.push(h.await?);
    }
    let m1 = mark(&sh, p.pid);
    let _ = done_tx.send(true);
    let acked = arrivals.iter().filter(|a| a.acked_ns.is_some()).count() as u64;
    log(format!(
        "{acked} arrivals acked in {:.2} s",
        (m1.ns - t0) as f64 / 1e9
    ));

    // The drain: until every conversation of ours has left the queue.
    let ours_left = |sh: &Shared| {
        let convs = sh.convs.lock().unwrap();
        let ours = convs.values().filter(|c| c.visitor.is_some());
        let (mut n, mut left) = (0u64, 0u64);
        for c in ours {
            n += 1;
            left += u64::from(c.left_ns.is_some());
        }
        (n, left)
    };
    let mut drained = agents_n == 0;
    let m2 = if agents_n > 0 {
        let deadline = Instant::now() + Duration::from_secs_f64(p.drain_timeout_secs);
        loop {
            let (n, left) = ours_left(&sh);
            if n >= acked && left >= n {
                drained = true;
                break;
            }
            if Instant::now() >= deadline {
                log(format!(
                    "the queue did not drain within {} s: {} of {n} still queued",
                    p.drain_timeout_secs,
                    n - left
                ));
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Some(mark(&sh, p.pid))
    } else {
        None
    };

    // Settle: until every view is exact (checked live on the last views), or the timeout.
    let settle_deadline = Instant::now() + Duration::from_secs_f64(p.settle_secs);
    if drained {
        loop {
            let c = consistency(&tracks(&sh, false), sh.now_ns());
            if c.wrong() == 0 || Instant::now() >= settle_deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(p.sample_ms.max(10))).await;
        }
    }
    let end = mark(&sh, p.pid);
    sh.running.store(false, Ordering::Relaxed);

    // The judgement, from the recorded timeline.
    let all = tracks(&sh, true);
    let verdict = judge(&all, t0, end.ns, p.sample_ms.max(1) * 1_000_000);
    let cons = consistency(&all, end.ns);
    let ours: Vec<&Track> = all.iter().filter(|t| t.views.is_some()).collect();
    let mut lefts: Vec<u64> = ours.iter().filter_map(|t| t.left_ns).collect();
    lefts.sort_unstable();
    let never_seen = ours
        .iter()
        .filter(|t| t.views.as_ref().is_some_and(|v| v.is_empty()))
        .count();

    // Arrivals.
    let (mut ack_h, mut lag_h) = (Hist::default(), Hist::default());
    for a in &arrivals {
        lag_h.record_ns(a.sent_ns.saturating_sub(a.sched_ns));
        if let Some(at) = a.acked_ns {
            ack_h.record_ns(at.saturating_sub(a.sched_ns));
        }
    }
    let window_s = (m1.ns - t0) as f64 / 1e9;
    let last_ack = arrivals
        .iter()
        .filter_map(|a| a.acked_ns)
        .max()
        .unwrap_or(t0);

    // Drain.
    let assigned = lefts.len() as u64;
    let assigned_in_drain = lefts.iter().filter(|l| **l > m1.ns).count() as u64;
    let span_s = match (lefts.first(), lefts.last()) {
        (Some(a), Some(b)) if b > a => (b - a) as f64 / 1e9,
        _ => 0.0,
    };
    let empty_ns = lefts.last().copied().filter(|_| drained && agents_n > 0);

    // CPU.
    let (a_cpu, a_pct, a_me, a_mach) = cpu(&m0, &m1);
    let drain_cpu = m2.as_ref().map(|m2| cpu(&m1, m2));
    let total_cpu = cpu(&m0, m2.as_ref().unwrap_or(&m1)).0;
    let per = |c: Option<f64>, n: u64| c.filter(|_| n > 0).map(|c| r3(c * 1000.0 / n as f64));

    // The timeline, one row per second from t0.
    let marks = ticks.lock().unwrap().clone();
    let mut timeline = Vec::new();
    let secs = ((end.ns - t0) as f64 / 1e9).ceil() as u64;
    for k in 0..secs {
        let (a, b) = (t0 + k * 1_000_000_000, t0 + (k + 1) * 1_000_000_000);
        let in_sec = |x: u64| x >= a && x < b;
        let arrived = arrivals
            .iter()
            .filter(|x| x.acked_ns.is_some_and(in_sec))
            .count();
        let left = lefts.iter().filter(|l| in_sec(**l)).count();
        let queued = all.iter().filter(|t| t.queued_at(b)).count();
        let m_a = marks.iter().rev().find(|m| m.ns <= a);
        let m_b = marks.iter().find(|m| m.ns >= b);
        let srv = match (m_a, m_b) {
            (Some(x), Some(y)) => cpu(x, y).1.map(r1),
            _ => None,
        };
        timeline.push(json!([k, arrived, left, queued, srv]));
    }

    let ms = |ns: u64| r1(ns as f64 / 1e6);
    let s_of = |ns: u64| r3(ns.saturating_sub(t0) as f64 / 1e9);
    let errors = sh.errors.lock().unwrap().clone();
    let errors_total: u64 = errors.values().sum();
    let pairs = verdict.queued_pairs + verdict.left_pairs;
    let n_arr = acked.max(1) as f64;
    let ev = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let mut by_kind = serde_json::Map::new();
    let mut worst_kind = serde_json::Map::new();
    for (k, kind) in KINDS.iter().enumerate() {
        by_kind.insert(kind.name().into(), json!(verdict.wrong[k].0));
        worst_kind.insert(kind.name().into(), json!(ms(verdict.wrong[k].1)));
    }
    Ok(json!({
        "mode": "burst",
        "label": p.label,
        "params": {
            "visitors": p.visitors,
            "seconds": p.seconds,
            "offeredRate": r1(p.visitors as f64 / p.seconds),
            "topic": topic,
            "agents": agents_n,
            "capacity": p.capacity,
            "holdMs": p.hold_ms,
            "noAgents": p.no_agents,
            "holdUntilArrivalsDone": p.hold_until_arrivals_done,
            "visitorsPerConn": p.visitors_per_conn,
            "conns": conns,
            "sampleMs": p.sample_ms,
            "settleSecs": p.settle_secs,
            "drainTimeoutSecs": p.drain_timeout_secs,
            "threads": p.threads,
        },
        "setup": {
            "visitorsReady": ready,
            "agentsOnline": agents.len(),
            "setupS": r3(setup_s),
            "queuedBefore": queued_before,
        },
        "arrivals": {
            "scheduled": p.visitors,
            "notReady": not_ready,
            "acked": acked,
            "failed": arrivals.len() as u64 - acked,
            "windowS": r3(window_s),
            "lastAckS": s_of(last_ack),
            "perSec": if window_s > 0.0 { r1(acked as f64 / window_s) } else { 0.0 },
            "ackMs": ack_h.summary_ms(),
            "sendLagMs": lag_h.summary_ms(),
        },
        "errors": errors,
        "errorsTotal": errors_total,
        "server": {
            "arrivals": {
                "cpuS": a_cpu.map(r3),
                "cpuPct": a_pct.map(r1),
                "msPerArrival": per(a_cpu, acked),
            },
            "drain": drain_cpu.map(|(c, pct, _, _)| json!({
                "cpuS": c.map(r3),
                "cpuPct": pct.map(r1),
                "msPerAssignment": per(c, assigned_in_drain),
            })),
            "totalCpuS": total_cpu.map(r3),
            "rssMB": end.server.map(|s| r1(s.rss_kb as f64 / 1024.0)),
            "peakRssMB": end.server.map(|s| r1(s.hwm_kb as f64 / 1024.0)),
        },
        "drain": {
            "drained": drained && agents_n > 0,
            "assigned": assigned,
            "assignedAfterArrivals": assigned_in_drain,
            "stillQueued": ours.iter().filter(|t| t.left_ns.is_none()).count(),
            "resolvesSent": ev(&sh.resolves_sent),
            "resolved": ev(&sh.resolved),
            "assignmentsPerSec": if span_s > 0.0 { Some(r1(assigned as f64 / span_s)) } else { None },
            "drainS": drain_cpu.map(|_| r3((m2.as_ref().expect("drain").ns - m1.ns) as f64 / 1e9)),
            "queueEmptyAfterS": empty_ns.map(s_of),
            "queueEmptyAfterLastArrivalS": empty_ns.map(|e| r3(e.saturating_sub(last_ack) as f64 / 1e9)),
            "agentReconnects": ev(&sh.agent_reconnects),
            "leftSeenOnlyByListing": ev(&sh.left_by_listing),
            "visitorSawLeaveFirst": verdict.visitor_first.0,
            "visitorLeadMaxMs": ms(verdict.visitor_first.1),
        },
        "events": {
            "visitorConversation": ev(&sh.visitor_conv_events),
            "visitorTotal": ev(&sh.visitor_events),
            "agentConversation": ev(&sh.agent_conv_events),
            "agentTotal": ev(&sh.agent_events),
            "visitorConversationPerArrival": r1(ev(&sh.visitor_conv_events) as f64 / n_arr),
            "agentConversationPerArrival": r1(ev(&sh.agent_conv_events) as f64 / n_arr),
            "visitorReconnects": ev(&sh.visitor_reconnects),
        },
        "positions": {
            "samples": verdict.samples,
            "pairsChecked": pairs,
            "queuedPairs": verdict.queued_pairs,
            "leftPairs": verdict.left_pairs,
            "violations": verdict.violations(),
            "violationsPct": if pairs > 0 { r3(verdict.violations() as f64 * 100.0 / pairs as f64) } else { 0.0 },
            "byKind": by_kind,
            "worstStalenessMs": ms(verdict.worst_ns()),
            "worstStalenessMsByKind": worst_kind,
            "visitorsWithViolation": verdict.visitors_wrong,
            "visitorsNeverSawTheirConversation": never_seen,
        },
        "consistency": {
            "lastChangeS": s_of(cons.last_change_ns),
            "consistentAfterLastChangeMs": cons.consistent_ns.map(|c| ms(c.saturating_sub(cons.last_change_ns))),
            "never": cons.consistent_ns.is_none(),
            "judged": drained,
            "wrongAtEnd": cons.wrong(),
            "wrongAtEndStillQueued": cons.still_queued,
            "wrongAtEndPosition": cons.wrong_position,
            "wrongAtEndNoView": cons.no_view,
            "observedAfterLastChangeS": r3(end.ns.saturating_sub(cons.last_change_ns) as f64 / 1e9),
        },
        "loadgen": {
            "cpuPctArrivals": a_me.map(r1),
            "cpuPctDrain": drain_cpu.and_then(|d| d.2).map(r1),
            "peakRssMB": end.me.map(|s| r1(s.hwm_kb as f64 / 1024.0)),
        },
        "machine": {
            "cpus": procfs::cpus(),
            "cpuPctArrivals": r1(a_mach),
            "cpuPctDrain": drain_cpu.map(|d| r1(d.3)),
        },
        "timelineColumns": ["second", "acked", "leftQueue", "queuedAtEnd", "serverCpuPct"],
        "timeline": timeline,
    }))
}

// ---------------------------------------------------------------- the table

fn f(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// Prints a result of [`run`] for humans.
pub fn print_table(v: &Value) {
    let p = &v["params"];
    let agents = if p["noAgents"] == true {
        "no agents".to_owned()
    } else {
        format!(
            "{} agents x {}, hold {} ms{}",
            p["agents"],
            p["capacity"],
            p["holdMs"],
            if p["holdUntilArrivalsDone"] == true {
                " (resolving after the arrivals)"
            } else {
                ""
            }
        )
    };
    println!(
        "burst: {} visitors in {} s on {} ({}/s offered); {}; {} streams per connection ({} connections)",
        p["visitors"],
        p["seconds"],
        p["topic"],
        p["offeredRate"],
        agents,
        p["visitorsPerConn"],
        p["conns"]
    );
    let s = &v["setup"];
    println!(
        "setup      {} visitor streams, {} agents online in {} s{}",
        s["visitorsReady"],
        s["agentsOnline"],
        s["setupS"],
        if s["queuedBefore"].as_u64().unwrap_or(0) > 0 {
            format!(" ({} conversations were queued before!)", s["queuedBefore"])
        } else {
            String::new()
        }
    );
    let a = &v["arrivals"];
    println!(
        "arrivals   {} acked, {} failed in {} s: {}/s   ack ms p50 {} p99 {} max {}   send lag ms p99 {}",
        a["acked"],
        a["failed"],
        a["windowS"],
        a["perSec"],
        f(&a["ackMs"]["p50"]),
        f(&a["ackMs"]["p99"]),
        f(&a["ackMs"]["max"]),
        f(&a["sendLagMs"]["p99"])
    );
    let sv = &v["server"];
    let drain_cpu = if sv["drain"].is_null() {
        String::new()
    } else {
        format!(
            " | drain: CPU {} s ({}% of a core), {} ms/assignment",
            f(&sv["drain"]["cpuS"]),
            f(&sv["drain"]["cpuPct"]),
            f(&sv["drain"]["msPerAssignment"])
        )
    };
    println!(
        "server     arrivals: CPU {} s ({}% of a core), {} ms/arrival{} | peak RSS {} MB",
        f(&sv["arrivals"]["cpuS"]),
        f(&sv["arrivals"]["cpuPct"]),
        f(&sv["arrivals"]["msPerArrival"]),
        drain_cpu,
        f(&sv["peakRssMB"])
    );
    let d = &v["drain"];
    if p["noAgents"] != true {
        let empty = if d["drained"] == true {
            format!(
                "queue empty {} s after the first arrival, {} s after the last ack",
                f(&d["queueEmptyAfterS"]),
                f(&d["queueEmptyAfterLastArrivalS"])
            )
        } else {
            format!(
                "queue NOT empty after {} s: {} still queued",
                p["drainTimeoutSecs"], d["stillQueued"]
            )
        };
        println!(
            "drain      {} assigned ({} after the arrivals), {} resolved; {} assignments/s; {}",
            d["assigned"],
            d["assignedAfterArrivals"],
            d["resolved"],
            f(&d["assignmentsPerSec"]),
            empty
        );
        println!(
            "           agent stream reconnects {}; departures seen only by listing {}; visitor saw the departure first {} (max lead {} ms)",
            d["agentReconnects"],
            d["leftSeenOnlyByListing"],
            d["visitorSawLeaveFirst"],
            d["visitorLeadMaxMs"]
        );
    }
    let e = &v["events"];
    println!(
        "events     visitor streams {} conversation events ({}/arrival, {} in all); agent inboxes {} ({}/arrival, {} in all)",
        e["visitorConversation"],
        e["visitorConversationPerArrival"],
        e["visitorTotal"],
        e["agentConversation"],
        e["agentConversationPerArrival"],
        e["agentTotal"]
    );
    let q = &v["positions"];
    println!(
        "positions  {} samples, {} (visitor, sample) pairs ({} queued, {} left): {} violations ({}%) at {} visitors; worst staleness {} ms",
        q["samples"],
        q["pairsChecked"],
        q["queuedPairs"],
        q["leftPairs"],
        q["violations"],
        q["violationsPct"],
        q["visitorsWithViolation"],
        q["worstStalenessMs"]
    );
    let kinds: Vec<String> = KINDS
        .iter()
        .map(|k| {
            format!(
                "{} {} (worst {} ms)",
                k.name(),
                q["byKind"][k.name()],
                q["worstStalenessMsByKind"][k.name()]
            )
        })
        .collect();
    println!("           {}", kinds.join(", "));
    let c = &v["consistency"];
    if c["judged"] != true {
        println!("consistent not judged: the queue did not drain");
    } else if c["never"] == true {
        println!(
            "consistent NEVER within {} s after the last change: {} views still wrong ({} still QUEUED after leaving, {} wrong position, {} never saw their conversation)",
            c["observedAfterLastChangeS"],
            c["wrongAtEnd"],
            c["wrongAtEndStillQueued"],
            c["wrongAtEndPosition"],
            c["wrongAtEndNoView"]
        );
    } else {
        println!(
            "consistent {} ms after the last change ({} s after the first arrival)",
            c["consistentAfterLastChangeMs"], c["lastChangeS"]
        );
    }
    let l = &v["loadgen"];
    let m = &v["machine"];
    println!(
        "loadgen    CPU {}% (arrivals), {}% (drain); machine {}% / {}% of one core ({} cores)",
        f(&l["cpuPctArrivals"]),
        f(&l["cpuPctDrain"]),
        f(&m["cpuPctArrivals"]),
        f(&m["cpuPctDrain"]),
        m["cpus"]
    );
    let errors = v["errors"].as_object().cloned().unwrap_or_default();
    if errors.is_empty() {
        println!("errors     none");
    } else {
        for (k, n) in errors {
            println!("errors     {n} x {k}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn view(at_ms: u64, status: i32, position: u32) -> View {
        View {
            at_ns: at_ms * MS,
            status,
            position,
        }
    }

    fn track(id: &str, created_ms: u64, left_ms: Option<u64>, views: Vec<View>) -> Track {
        Track {
            id: id.into(),
            created_at_ms: created_ms as i64,
            created_ns: created_ms * MS,
            left_ns: left_ms.map(|l| l * MS),
            views: Some(views),
        }
    }

    #[test]
    fn positions_told_in_time_are_right_and_consistent() {
        // a leaves at 2 s; b learns it is first 100 ms later.
        let tracks = vec![
            track(
                "c_a",
                0,
                Some(2000),
                vec![view(5, QUEUED, 1), view(2001, OPEN, 0)],
            ),
            track(
                "c_b",
                10,
                None,
                vec![view(12, QUEUED, 2), view(2100, QUEUED, 1)],
            ),
        ];
        let v = judge(&tracks, 0, 4000 * MS, 100 * MS);
        assert_eq!(v.violations(), 0, "{v:?}");
        assert_eq!(v.samples, 41);
        let c = consistency(&tracks, 4000 * MS);
        assert_eq!(c.last_change_ns, 2000 * MS);
        assert_eq!(c.consistent_ns, Some(2100 * MS));
    }

    #[test]
    fn a_late_position_is_stale_and_a_missing_one_never_consistent() {
        // a leaves at 1 s; b hears nothing until 3.5 s; c never hears it left the queue.
        let tracks = vec![
            track("c_a", 0, Some(1000), vec![view(5, QUEUED, 1)]),
            track(
                "c_b",
                10,
                None,
                vec![view(12, QUEUED, 2), view(3500, QUEUED, 1)],
            ),
            // Tied on created_at: ordered by id, so "c_c" is behind "c_b".
            track("c_c", 10, None, vec![view(13, QUEUED, 3)]),
        ];
        let v = judge(&tracks, 0, 4000 * MS, 100 * MS);
        let stale = v.wrong[0];
        // b: stale from 2.1 s to 3.4 s (14 samples), at most 2.4 s stale (since 1.0 s);
        // c: stale from 2.1 s to 4.0 s (20 samples).
        assert_eq!(stale.0, 14 + 20, "{v:?}");
        assert_eq!(stale.1, 3000 * MS);
        // a: left at 1 s, its view says QUEUED from 2.1 s on.
        assert_eq!(v.wrong[4].0, 20);
        assert_eq!(v.visitors_wrong, 3);
        let c = consistency(&tracks, 4000 * MS);
        assert_eq!(c.consistent_ns, None);
        assert_eq!((c.still_queued, c.wrong_position), (1, 1));
    }

    #[test]
    fn a_growing_queue_with_fixed_positions_is_right() {
        // Nobody leaves: every position is fixed from creation, including inside the first
        // second (where truepos(s - 1 s) would count fewer conversations ahead).
        let tracks: Vec<Track> = (0..20u64)
            .map(|k| {
                let id = format!("c_{k:02}");
                track(
                    &id,
                    k * 50,
                    None,
                    vec![view(k * 50 + 3, QUEUED, k as u32 + 1)],
                )
            })
            .collect();
        let v = judge(&tracks, 0, 3000 * MS, 100 * MS);
        assert_eq!(v.violations(), 0, "{v:?}");
    }

    #[test]
    fn a_tie_in_the_same_millisecond_may_be_told_late_but_within_the_grace() {
        // "c_b" is created in the same millisecond as "c_a", just after it, and goes ahead of
        // it (ties by id): a's visitor was told 1 at creation and hears 2 within 300 ms.
        let ok = vec![
            track("c_b", 10, None, vec![view(12, QUEUED, 1)]),
            track(
                "c_c",
                10,
                None,
                vec![view(11, QUEUED, 1), view(310, QUEUED, 2)],
            ),
        ];
        let v = judge(&ok, 0, 3000 * MS, 100 * MS);
        assert_eq!(v.violations(), 0, "{v:?}");
        // Never corrected: ahead from the first sample past the grace (1100 .. 3000 ms).
        let never = vec![
            track("c_b", 10, None, vec![view(12, QUEUED, 1)]),
            track("c_c", 10, None, vec![view(11, QUEUED, 1)]),
        ];
        let v = judge(&never, 0, 3000 * MS, 100 * MS);
        assert_eq!(v.wrong[1].0, 20, "{v:?}");
    }

    #[test]
    fn a_position_below_the_truth_is_ahead_and_a_silent_visitor_not_yet_queued() {
        let tracks = vec![
            track("c_a", 0, None, vec![view(5, QUEUED, 1)]),
            track("c_b", 10, None, vec![view(12, QUEUED, 1)]),
            track("c_c", 20, None, vec![]),
        ];
        let v = judge(&tracks, 0, 2000 * MS, 100 * MS);
        // b says 1 from the first sample after 12 ms (100 ms .. 2000 ms: 20 samples).
        assert_eq!(v.wrong[1].0, 20);
        // c: nothing more than 1 s after creation (1100 .. 2000 ms: 10 samples).
        assert_eq!(v.wrong[2].0, 10);
    }
}
