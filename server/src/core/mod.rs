//! The server core: every rule of the chat lives here, whatever the transport, and it is the
//! only door to state (the store, the hub, the token cache and presence are private to it).
//! rpc handlers, the CLI and the demo seeding call its use cases, one file per concern:
//!
//! - [`access`]: every permission rule (who a token is, what a caller may see or do).
//! - [`session`]: visitor sessions, agent login and logout, idle visitor cleanup.
//! - [`admin`]: sites, agents, API keys, canned replies; [`report`]: the site report.
//! - [`queries`]: the inbox list and search, history, visitor profiles, presence lists.
//! - [`events`]: one client event (send, typing, read, assign, resolve ...), one file per
//!   family, checked against the caller's rights and limits, stored, then fanned out.
//! - [`stream`]: what a Subscribe/Chat stream delivers (replay after cursors, then live).
//! - [`workflow`]: assignment, the queue and its order.
//! - [`sites`]: the site cache (origins, CORS, topics); [`charges`]: rates, slots, throttles.
//! - [`hub`]: in-process fan-out; [`cluster`]: fan-out to the other nodes, re-sequencing,
//!   remote presence; [`presence`]: who is online; [`limits`]: the limiters.

pub mod access;
pub mod admin;
pub mod alerts;
pub mod blocks;
mod charges;
pub mod cluster;
pub mod context;
pub mod email;
mod email_words;
mod events;
pub mod files;
pub mod hours;
pub mod hub;
pub mod inbound;
pub mod labels;
pub mod limits;
pub mod presence;
pub mod queries;
pub mod queue;
pub mod report;
pub mod session;
mod sites;
pub mod stream;
#[cfg(test)]
pub(crate) mod testkit;
pub mod transcript;
pub mod webhooks;
pub mod workflow;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use wsmschat::v1;
use wsmschat::v1::server_event::Event as Se;

use crate::auth::Authenticator;
use crate::error::{CoreError, CoreResult};
use crate::metrics::Metrics;
use crate::store::Store;
use crate::util::now_ms;
use hub::{Hub, Route};
use limits::{RateLimiter, StreamCounter};
use presence::Presence;

/// The topics a site gets when none are given (the original app's).
pub const DEFAULT_TOPICS: [&str; 5] = ["Product", "Order", "Delivery", "Payment", "Other"];

/// Default [`CoreConfig::inbox_coalesce`], milliseconds: below what a person notices in a
/// console, and enough to turn a busy floor's event-per-write into a few writes per second
/// per agent (docs/performance.md, "Support floor").
pub const DEFAULT_INBOX_COALESCE_MS: u64 = 20;

/// Limits and timings of the core.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Largest message text, bytes.
    pub max_message_bytes: usize,
    /// Events per second per token, and burst.
    pub events_per_second: u32,
    pub events_burst: u32,
    /// Events per second per client IP, and burst (many visitors can share one IP).
    pub ip_events_per_second: u32,
    pub ip_events_burst: u32,
    /// Open streams per token.
    pub streams_per_token: usize,
    /// Heartbeat interval on idle streams.
    pub heartbeat: Duration,
    /// Staff inbox streams write at most once per this long while busy (events in between go
    /// out together, one socket write); the first event after a quiet spell goes at once.
    /// Zero: every event at once.
    pub inbox_coalesce: Duration,
    /// Agent session lifetime.
    pub agent_session_ttl: Duration,
    /// Origins allowed besides the sites' (the console's, when hosted elsewhere).
    pub extra_origins: Vec<String>,
    /// Open streams per client address (0: unlimited); counts every token's streams.
    pub streams_per_ip: usize,
    /// How long a Chat call may take to send its first request.
    pub first_request_timeout: Duration,
    /// Password hashes computed at once (argon2id takes 19 MiB and a core's worth of time each).
    pub hash_concurrency: usize,
    /// How often the site cache (CORS, origins, topics) is re-read from the store.
    pub site_refresh: Duration,
    /// New visitors per minute per client address (burst the same).
    pub new_visitors_per_minute: u32,
    /// New conversations per minute per client address (burst the same).
    pub new_conversations_per_minute: u32,
    /// Attribute writes and page reports per minute per caller (burst the same).
    pub context_updates_per_minute: u32,
    /// Unresolved conversations one visitor may have at once (0: no cap).
    pub open_conversations_per_visitor: u32,
    /// How often idle conversations are looked for (sites with `auto_resolve_hours`).
    pub auto_resolve_every: Duration,
    /// How long a site's typical reply time (`SiteInfo.typical_reply_s`) is reused before it
    /// is computed again (one range read of the site's last 14 days of conversations).
    pub reply_time_ttl: Duration,
    /// New conversations per client address per hour on a site, for sites that set none
    /// (`Site.new_conversations_per_ip_hour`); 0: no cap. Counted in the store.
    pub new_conversations_per_ip_hour: u32,
    /// Anonymous visitors without conversations are deleted (with their tokens) after this
    /// long unseen; None: kept.
    pub idle_visitor_retention: Option<Duration>,
    /// Uploads per caller per hour (burst the same).
    pub uploads_per_hour: u32,
    /// Where uploaded files go (and their spool); None: `files/` beside an SQLite database,
    /// or a temporary spool with PostgreSQL (whose files live in the database).
    pub files_dir: Option<std::path::PathBuf>,
    /// Which store keeps the files' bytes.
    pub files_store: FileStore,
    /// Webhook delivery settings.
    pub webhooks: webhooks::WebhookConfig,
    /// Email (SMTP); None: the server sends no email and promises none.
    pub email: Option<email::EmailConfig>,
    /// The server's public base URL (e.g. `https://chat.example.com`): absolute file links in
    /// webhook bodies; None: links relative to the server.
    pub public_url: Option<String>,
}

/// Which store keeps uploaded files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum FileStore {
    /// A directory with SQLite, PostgreSQL with PostgreSQL (every node reads the same files).
    #[default]
    Auto,
    /// The files directory (`files_dir`); for a cluster only on a volume every node mounts.
    Dir,
    /// PostgreSQL (bytea chunks); needs a PostgreSQL database.
    Postgres,
}

impl Default for CoreConfig {
    fn default() -> Self {
        use wsmschat::limits::*;
        Self {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            events_per_second: DEFAULT_EVENTS_PER_SECOND,
            events_burst: DEFAULT_EVENTS_BURST,
            ip_events_per_second: 500,
            ip_events_burst: 1000,
            streams_per_token: DEFAULT_STREAMS_PER_TOKEN,
            heartbeat: Duration::from_secs(15),
            inbox_coalesce: Duration::from_millis(DEFAULT_INBOX_COALESCE_MS),
            agent_session_ttl: Duration::from_secs(12 * 3600),
            extra_origins: Vec::new(),
            streams_per_ip: 1024,
            first_request_timeout: Duration::from_secs(10),
            hash_concurrency: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            site_refresh: Duration::from_secs(5),
            new_visitors_per_minute: 120,
            new_conversations_per_minute: 60,
            context_updates_per_minute: 60,
            open_conversations_per_visitor: 5,
            new_conversations_per_ip_hour: 30,
            auto_resolve_every: Duration::from_secs(60),
            reply_time_ttl: Duration::from_secs(300),
            idle_visitor_retention: Some(Duration::from_secs(30 * 86_400)),
            uploads_per_hour: 100,
            files_dir: None,
            files_store: FileStore::Auto,
            webhooks: Default::default(),
            email: None,
            public_url: None,
        }
    }
}

/// What lost its rights: open streams of it re-check their token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// An agent session, an agent or an API key: every staff stream re-checks.
    Staff,
    /// One visitor's token (their logout): that visitor's streams re-check.
    Visitor(String),
}

/// What `/readyz` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Store and (clustered) Redis answer.
    Ready,
    /// The store answers, Redis does not: local delivery works, cross-node delivery waits.
    Degraded,
    /// The store does not answer.
    Unavailable,
}

/// The longest search query, bytes (a `LIKE '%q%'` costs query length x text length per row).
pub const MAX_SEARCH_BYTES: usize = 256;
/// Searches that run at once; others wait (never all the store's readers busy with searches).
const SEARCH_CONCURRENCY: usize = 2;

/// The core. One per server process, shared by every RPC handler.
pub struct Core {
    /// Limits and timings (read by the transports too: timeouts, heartbeats).
    pub config: CoreConfig,
    /// Durable state; only core reaches it.
    store: Arc<dyn Store>,
    /// Fan-out to open streams (and, clustered, to the other nodes).
    pub(crate) hub: Arc<Hub>,
    /// Counters and histograms for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Bearer tokens to principals, with a short cache.
    auth: Authenticator,
    /// Which agents are online, here and (clustered) on the other nodes.
    pub(crate) presence: Presence,
    /// Token bucket per caller (author key).
    token_limiter: RateLimiter,
    /// Token bucket per client IP.
    ip_limiter: RateLimiter,
    /// Open streams per caller.
    streams: StreamCounter,
    /// Sites by id, for origin checks and topics without a database read per call.
    sites: RwLock<(HashMap<String, v1::Site>, Instant)>,
    /// Opening-hours schedules and typical reply times (see [`hours`]).
    hours: hours::HoursCache,
    /// Topics the router task is asked to serve (see [`workflow`]).
    router: Arc<workflow::RouterInbox>,
    /// Every queue's order, for positions (see [`queue`]).
    queue: Arc<queue::QueueIndex>,
    /// This node's cluster membership, when clustered.
    cluster: OnceLock<Arc<cluster::Cluster>>,
    /// Flipped at shutdown: background tasks (bus) stop.
    pub stopping: tokio::sync::watch::Sender<bool>,
    /// Revocations (logout, deactivation, key revoked, password reset), local or from other
    /// nodes: open streams re-check their token on each.
    pub revocations: tokio::sync::broadcast::Sender<Revoked>,
    /// Password hashing slots (login, agent create/update) and the threads that hash.
    hash_permits: tokio::sync::Semaphore,
    hash_pool: limits::HashPool,
    /// Failed logins per account and per address, with growing lockouts.
    login_by_account: limits::FailureThrottle,
    login_by_ip: limits::FailureThrottle,
    /// Search slots.
    search_permits: tokio::sync::Semaphore,
    /// New visitors and new conversations per client address.
    new_visitor_limiter: RateLimiter,
    new_conversation_limiter: RateLimiter,
    /// Attribute writes and page reports per caller (see [`context`]).
    context_limiter: RateLimiter,
    /// Attachments: where bytes go, the upload rate, image decoding slots.
    files: files::Files,
    /// Webhook dispatcher state (see [`webhooks`]).
    webhooks: webhooks::Webhooks,
    /// The SMTP side when email is on (see [`email`]).
    mailer: Option<email::Mailer>,
    /// The day ("YYYY-MM-DD") this node last made the digests for.
    digest_day: std::sync::Mutex<Option<String>>,
}

/// How long the site cache is trusted (other nodes may change sites).
const SITE_CACHE_TTL: Duration = Duration::from_secs(30);

/// U+0000 is refused in every text a client sends: PostgreSQL cannot store it in `text`
/// columns, and both engines must behave alike (security review F11).
pub fn check_no_nul(text: &str, what: &str) -> CoreResult<()> {
    if text.contains('\0') {
        return Err(CoreError::InvalidArgument(format!(
            "{what} contains a NUL character (U+0000)"
        )));
    }
    Ok(())
}

fn event(e: Se) -> Arc<v1::ServerEvent> {
    Arc::new(v1::ServerEvent { event: Some(e) })
}

impl Core {
    /// A core over `store` and `hub`; starts its queue router (needs a tokio runtime).
    pub fn new(
        config: CoreConfig,
        store: Arc<dyn Store>,
        hub: Arc<Hub>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let hash_slots = config.hash_concurrency.max(1);
        let new_visitor_limiter = RateLimiter::per_minute(config.new_visitors_per_minute);
        let new_conversation_limiter = RateLimiter::per_minute(config.new_conversations_per_minute);
        let files = files::Files::new(config.uploads_per_hour);
        let webhooks = webhooks::Webhooks::new(&config.webhooks, hub.webhook_wake.clone());
        // Checked by `build_core` before: a bad SMTP URL stops the start.
        let mailer = config
            .email
            .as_ref()
            .and_then(|c| email::Mailer::new(c).ok());
        let core = Arc::new(Self {
            token_limiter: RateLimiter::new(config.events_per_second, config.events_burst),
            context_limiter: RateLimiter::per_minute(config.context_updates_per_minute),
            ip_limiter: RateLimiter::new(config.ip_events_per_second, config.ip_events_burst),
            streams: StreamCounter::new(config.streams_per_token),
            config,
            store,
            hub,
            metrics,
            auth: Authenticator::new(),
            presence: Presence::default(),
            sites: RwLock::new((HashMap::new(), Instant::now() - SITE_CACHE_TTL * 2)),
            hours: Default::default(),
            router: Arc::default(),
            queue: Arc::default(),
            cluster: OnceLock::new(),
            stopping: tokio::sync::watch::Sender::new(false),
            revocations: tokio::sync::broadcast::Sender::new(1024),
            hash_permits: tokio::sync::Semaphore::new(hash_slots),
            hash_pool: limits::HashPool::new(hash_slots),
            login_by_account: limits::FailureThrottle::new(5, Duration::from_secs(15 * 60)),
            login_by_ip: limits::FailureThrottle::new(30, Duration::from_secs(15 * 60)),
            search_permits: tokio::sync::Semaphore::new(SEARCH_CONCURRENCY),
            new_visitor_limiter,
            new_conversation_limiter,
            files,
            webhooks,
            mailer,
            digest_day: Default::default(),
        });
        core.spawn_router();
        core
    }

    // ------------------------------------------------------------ revocation

    /// Something lost its rights: forget cached tokens, tell open streams here and on every
    /// other node (they re-check their token and end if it no longer holds).
    pub fn revoke(&self, what: Revoked) {
        self.revoke_local(what.clone());
        if let Some(bus) = self.cluster.get() {
            bus.publish_revoked(&what);
        }
    }

    /// [`Core::revoke`] on this node only (what the bus delivers from other nodes).
    fn revoke_local(&self, what: Revoked) {
        self.auth.clear();
        let _ = self.revocations.send(what);
    }

    /// Runs `job` at once and then every `every`, until shutdown or the core is gone.
    fn spawn_periodic<F, Fut>(self: &Arc<Self>, every: Duration, job: F)
    where
        F: Fn(Arc<Self>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let core = Arc::downgrade(self);
        let mut stopping = self.stopping.subscribe();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopping.wait_for(|s| *s) => return,
                }
                let Some(core) = core.upgrade() else { return };
                job(core).await;
            }
        });
    }

    /// Fills what the store does not know (agents online for the topic).
    /// Every snapshot passes here, so the queue index sees every change this node makes or
    /// reads (and fills in the position).
    fn decorate(&self, mut c: v1::Conversation) -> v1::Conversation {
        c.agents_online = self.presence.online_for(&c.topic).len() as u32;
        c.queue_position = self.queue.observe(&c);
        c
    }

    /// Pushes a conversation snapshot to everyone following it.
    fn announce(&self, c: v1::Conversation) {
        let c = self.decorate(c);
        self.queue.told(&c.id, c.queue_position);
        let (conversation_id, visitor_id) = (c.id.clone(), c.visitor_id.clone());
        self.hub.deliver(
            Route {
                conversation_id: &conversation_id,
                visitor_id: &visitor_id,
                staff_only: false,
            },
            event(Se::Conversation(c)),
        );
    }

    /// Builds the ServerEvent for a stream's first message.
    pub fn ready_event(&self, stream_id: u64) -> v1::ServerEvent {
        v1::ServerEvent {
            event: Some(Se::Ready(v1::StreamReady {
                stream_id: format!("s{stream_id}"),
                heartbeat_interval_ms: self.config.heartbeat.as_millis() as u32,
            })),
        }
    }

    /// A heartbeat event.
    pub fn heartbeat_event() -> v1::ServerEvent {
        v1::ServerEvent {
            event: Some(Se::Heartbeat(v1::Heartbeat {
                server_time_ms: now_ms(),
            })),
        }
    }

    /// Whether this node can serve: the store must answer; Redis being away only degrades
    /// cross-node delivery (reported, not failed on). Causes go to the log.
    pub async fn readiness(&self) -> Readiness {
        if let Err(error) = self.store.ping().await {
            tracing::warn!(%error, "Readiness: the database does not answer");
            return Readiness::Unavailable;
        }
        if let Some(bus) = self.cluster.get() {
            if let Err(error) = bus.ping().await {
                tracing::warn!(%error, "Readiness: Redis does not answer");
                return Readiness::Degraded;
            }
        }
        Readiness::Ready
    }

    /// Stops taking writes and commits what is queued (after [`Core::shutdown`]).
    pub fn close(&self) {
        self.store.close();
    }

    /// Stops all streams (graceful shutdown).
    pub fn shutdown(&self) {
        self.stopping.send_replace(true);
        self.hub.shutdown();
    }
}
