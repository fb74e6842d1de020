//! The server core: every rule of the chat lives here, whatever the transport.
//!
//! - [`Core::publish`]: one client event (send, typing, read, assign, resolve ...), checked
//!   against the caller's rights and limits, stored, then fanned out.
//! - [`stream`]: what a Subscribe/Chat stream delivers (replay after cursors, then live).
//! - [`workflow`]: assignment, the queue and its order.
//! - [`hub`]: in-process fan-out; [`presence`]: who is online; [`limits`]: rates and counts.

pub mod hub;
pub mod limits;
pub mod presence;
pub mod stream;
pub mod workflow;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::Mutex as AsyncMutex;
use wsmschat::v1;
use wsmschat::v1::client_event::Event as Ce;
use wsmschat::v1::server_event::Event as Se;

use crate::auth::{self, Authenticator, Principal};
use crate::error::{CoreError, CoreResult};
use crate::metrics::Metrics;
use crate::store::{NewConversation, NewMessage, Store};
use crate::util::{new_id, now_ms};
use hub::{Hub, Route};
use limits::{RateLimiter, StreamCounter};
use presence::Presence;

/// The topics a site gets when none are given (the original app's).
pub const DEFAULT_TOPICS: [&str; 5] = ["Product", "Order", "Delivery", "Payment", "Other"];

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
    /// Unresolved conversations one visitor may have at once (0: no cap).
    pub open_conversations_per_visitor: u32,
    /// Anonymous visitors without conversations are deleted (with their tokens) after this
    /// long unseen; None: kept.
    pub idle_visitor_retention: Option<Duration>,
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
            open_conversations_per_visitor: 5,
            idle_visitor_retention: Some(Duration::from_secs(30 * 86_400)),
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

/// The longest search query, bytes (a `LIKE '%q%'` costs query length x text length per row).
pub const MAX_SEARCH_BYTES: usize = 256;
/// Searches that run at once; others wait (never all the store's readers busy with searches).
const SEARCH_CONCURRENCY: usize = 2;

/// The core. One per server process, shared by every RPC handler.
pub struct Core {
    pub config: CoreConfig,
    pub store: Arc<dyn Store>,
    pub hub: Arc<Hub>,
    pub metrics: Arc<Metrics>,
    pub auth: Authenticator,
    pub presence: Presence,
    /// Token bucket per caller (author key).
    token_limiter: RateLimiter,
    /// Token bucket per client IP.
    ip_limiter: RateLimiter,
    /// Open streams per caller.
    pub streams: StreamCounter,
    /// Sites by id, for origin checks and topics without a database read per call.
    sites: RwLock<(HashMap<String, v1::Site>, Instant)>,
    /// Serialises queue draining so the queue is served strictly in order.
    drain_lock: AsyncMutex<()>,
    /// The Redis bus, when clustered.
    pub bus: OnceLock<Arc<crate::bus::RedisBus>>,
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
    pub fn new(
        config: CoreConfig,
        store: Arc<dyn Store>,
        hub: Arc<Hub>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let hash_slots = config.hash_concurrency.max(1);
        let new_visitor_limiter = RateLimiter::per_minute(config.new_visitors_per_minute);
        let new_conversation_limiter = RateLimiter::per_minute(config.new_conversations_per_minute);
        Arc::new(Self {
            token_limiter: RateLimiter::new(config.events_per_second, config.events_burst),
            ip_limiter: RateLimiter::new(config.ip_events_per_second, config.ip_events_burst),
            streams: StreamCounter::new(config.streams_per_token),
            config,
            store,
            hub,
            metrics,
            auth: Authenticator::new(),
            presence: Presence::default(),
            sites: RwLock::new((HashMap::new(), Instant::now() - SITE_CACHE_TTL * 2)),
            drain_lock: AsyncMutex::new(()),
            bus: OnceLock::new(),
            stopping: tokio::sync::watch::Sender::new(false),
            revocations: tokio::sync::broadcast::Sender::new(1024),
            hash_permits: tokio::sync::Semaphore::new(hash_slots),
            hash_pool: limits::HashPool::new(hash_slots),
            login_by_account: limits::FailureThrottle::new(5, Duration::from_secs(15 * 60)),
            login_by_ip: limits::FailureThrottle::new(30, Duration::from_secs(15 * 60)),
            search_permits: tokio::sync::Semaphore::new(SEARCH_CONCURRENCY),
            new_visitor_limiter,
            new_conversation_limiter,
        })
    }

    // ------------------------------------------------------------ revocation

    /// Something lost its rights: forget cached tokens, tell open streams here and on every
    /// other node (they re-check their token and end if it no longer holds).
    pub fn revoke(&self, what: Revoked) {
        self.revoke_local(what.clone());
        if let Some(bus) = self.bus.get() {
            bus.publish_revoked(&what);
        }
    }

    /// [`Core::revoke`] on this node only (what the bus delivers from other nodes).
    pub fn revoke_local(&self, what: Revoked) {
        self.auth.clear();
        let _ = self.revocations.send(what);
    }

    // ------------------------------------------------------------ passwords

    /// Runs `f` (an argon2 hash or verify) on the hash pool, at most `hash_concurrency` at
    /// once; waits at most 5 s for a slot (UNAVAILABLE then), so a login flood costs bounded
    /// memory and never takes the threads store reads run on.
    pub async fn with_hash_slot<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> CoreResult<T> {
        let permit = tokio::time::timeout(Duration::from_secs(5), self.hash_permits.acquire())
            .await
            .map_err(|_| {
                CoreError::Unavailable("the server is busy with logins; try again shortly".into())
            })?
            .map_err(|_| CoreError::Unavailable("shutting down".into()))?;
        let out = self
            .hash_pool
            .run(f)
            .await
            .ok_or_else(|| CoreError::Internal("password hashing failed".into()))?;
        drop(permit);
        Ok(out)
    }

    /// Refuses a login attempt while its account or address is locked out.
    pub fn login_allowed(&self, email: &str, ip: Option<std::net::IpAddr>) -> CoreResult<()> {
        let account = email.trim().to_lowercase();
        let wait = [
            self.login_by_account.locked_for(&account),
            ip.and_then(|ip| self.login_by_ip.locked_for(&limits::ip_key(ip))),
        ]
        .into_iter()
        .flatten()
        .max();
        match wait {
            Some(d) => Err(CoreError::ResourceExhausted(format!(
                "too many failed logins; try again in {} s",
                d.as_secs().max(1)
            ))),
            None => Ok(()),
        }
    }

    /// Records a login outcome for the throttles.
    pub fn login_result(&self, email: &str, ip: Option<std::net::IpAddr>, ok: bool) {
        let account = email.trim().to_lowercase();
        if ok {
            self.login_by_account.succeeded(&account);
        } else {
            self.login_by_account.failed(&account);
            if let Some(ip) = ip {
                self.login_by_ip.failed(&limits::ip_key(ip));
            }
        }
    }

    // ------------------------------------------------------------ searches

    /// Checks a search query and takes a search slot (held while the search runs).
    pub async fn search_slot(&self, query: &str) -> CoreResult<tokio::sync::SemaphorePermit<'_>> {
        if query.len() > MAX_SEARCH_BYTES {
            return Err(CoreError::InvalidArgument(format!(
                "query is {} bytes; the limit is {MAX_SEARCH_BYTES}",
                query.len()
            )));
        }
        check_no_nul(query, "query")?;
        tokio::time::timeout(Duration::from_secs(10), self.search_permits.acquire())
            .await
            .map_err(|_| CoreError::Unavailable("too many searches at once; try again".into()))?
            .map_err(|_| CoreError::Unavailable("shutting down".into()))
    }

    /// Resolves a bearer token.
    pub async fn authenticate(&self, token: &str) -> CoreResult<Principal> {
        self.auth.resolve(self.store.as_ref(), token).await
    }

    /// Resolves a bearer token, with when it expires (ms; `i64::MAX`: never).
    pub async fn authenticate_full(&self, token: &str) -> CoreResult<(Principal, i64)> {
        self.auth.resolve_full(self.store.as_ref(), token).await
    }

    // ------------------------------------------------------------ sites and origins

    /// Reloads the site cache from the store.
    pub async fn reload_sites(&self) -> CoreResult<()> {
        let sites = self.store.list_sites().await?;
        *self.sites.write().unwrap() = (
            sites.into_iter().map(|s| (s.id.clone(), s)).collect(),
            Instant::now(),
        );
        Ok(())
    }

    /// Sites were created or changed here: reload now, and tell the other nodes to.
    pub async fn sites_changed(&self) -> CoreResult<()> {
        self.reload_sites().await?;
        if let Some(bus) = self.bus.get() {
            bus.publish_sites_changed();
        }
        Ok(())
    }

    /// Keeps the site cache fresh (CORS for sites made by the CLI or on another node, within
    /// `site_refresh`), until shutdown.
    pub fn spawn_site_refresher(self: &Arc<Self>) {
        self.spawn_periodic(self.config.site_refresh, |core| async move {
            if let Err(error) = core.reload_sites().await {
                tracing::warn!(%error, "Could not refresh the site cache");
            }
        });
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

    /// A site by id (cached).
    pub async fn site(&self, id: &str) -> CoreResult<v1::Site> {
        {
            let sites = self.sites.read().unwrap();
            if sites.1.elapsed() < SITE_CACHE_TTL {
                if let Some(s) = sites.0.get(id) {
                    return Ok(s.clone());
                }
            }
        }
        self.reload_sites().await?;
        self.sites
            .read()
            .unwrap()
            .0
            .get(id)
            .cloned()
            .ok_or_else(|| CoreError::NotFound("site not found".into()))
    }

    /// CORS: may a browser on `origin` call this server at all? (Any site's origin, or an
    /// extra origin such as a separately hosted console.) The per-site check is in
    /// [`Core::check_origin`].
    pub fn cors_origin_allowed(&self, origin: &str) -> bool {
        if auth::origin_allowed(&self.config.extra_origins, origin) {
            return true;
        }
        self.sites
            .read()
            .unwrap()
            .0
            .values()
            .any(|s| auth::origin_allowed(&s.allowed_origins, origin))
    }

    /// A visitor's browser must be on one of its site's allowed origins. Calls without an
    /// `Origin` header come from native clients, which CORS does not concern.
    pub async fn check_origin(
        &self,
        principal: &Principal,
        origin: Option<&str>,
    ) -> CoreResult<()> {
        let (Principal::Visitor { site_id, .. }, Some(origin)) = (principal, origin) else {
            return Ok(());
        };
        let site = self.site(site_id).await?;
        if auth::origin_allowed(&site.allowed_origins, origin) {
            Ok(())
        } else {
            Err(CoreError::PermissionDenied(format!(
                "origin {origin} is not allowed for this site"
            )))
        }
    }

    /// Charges one event to the caller's and the IP's rate limits.
    pub fn charge(&self, principal_key: &str, ip: Option<std::net::IpAddr>) -> CoreResult<()> {
        if !self.token_limiter.check(principal_key) {
            return Err(CoreError::ResourceExhausted(format!(
                "too many events: at most {}/s per token (burst {})",
                self.config.events_per_second, self.config.events_burst
            )));
        }
        if let Some(ip) = ip {
            if !self.ip_limiter.check(&limits::ip_key(ip)) {
                return Err(CoreError::ResourceExhausted(format!(
                    "too many events from {ip}: at most {}/s per address",
                    self.config.ip_events_per_second
                )));
            }
        }
        Ok(())
    }

    /// A new visitor from `ip` (flood of fresh visitor tokens).
    pub fn charge_new_visitor(&self, ip: Option<std::net::IpAddr>) -> CoreResult<()> {
        Self::charge_per_minute(
            &self.new_visitor_limiter,
            ip,
            "new visitors",
            self.config.new_visitors_per_minute,
        )
    }

    /// A new conversation from `ip`.
    fn charge_new_conversation(&self, ip: Option<std::net::IpAddr>) -> CoreResult<()> {
        Self::charge_per_minute(
            &self.new_conversation_limiter,
            ip,
            "new conversations",
            self.config.new_conversations_per_minute,
        )
    }

    fn charge_per_minute(
        limiter: &RateLimiter,
        ip: Option<std::net::IpAddr>,
        what: &str,
        per_minute: u32,
    ) -> CoreResult<()> {
        match ip {
            Some(ip) if !limiter.check(&limits::ip_key(ip)) => Err(CoreError::ResourceExhausted(
                format!("too many {what} from {ip}: at most {per_minute}/min"),
            )),
            _ => Ok(()),
        }
    }

    /// Deletes idle anonymous visitors in batches, once an hour, until shutdown.
    pub fn spawn_visitor_cleanup(self: &Arc<Self>) {
        let Some(retention) = self.config.idle_visitor_retention else {
            return;
        };
        self.spawn_periodic(Duration::from_secs(3600), move |core| async move {
            if let Err(error) = core.purge_idle_visitors(retention).await {
                tracing::warn!(%error, "Could not delete idle visitors");
            }
        });
    }

    /// One cleanup pass: every idle anonymous visitor older than `retention`, 1,000 a batch.
    pub async fn purge_idle_visitors(&self, retention: Duration) -> CoreResult<u64> {
        let before = now_ms() - retention.as_millis() as i64;
        let mut total = 0;
        loop {
            let n = self.store.purge_idle_visitors(before, 1000).await?;
            total += n;
            if n < 1000 {
                break;
            }
        }
        if total > 0 {
            tracing::info!(visitors = total, "Deleted idle anonymous visitors");
        }
        Ok(total)
    }

    /// Charges the IP limiter alone (session starts, logins).
    pub fn charge_ip(&self, ip: Option<std::net::IpAddr>) -> CoreResult<()> {
        match ip {
            Some(ip) if !self.ip_limiter.check(&limits::ip_key(ip)) => Err(
                CoreError::ResourceExhausted(format!("too many requests from {ip}")),
            ),
            _ => Ok(()),
        }
    }

    // ------------------------------------------------------------ access

    /// May a staff member see conversations of `site_id` under `topic`? Admins see all; agents
    /// their sites (all when they list none), and on a site that restricts agents to their
    /// topics only those (agents without topics: all); chat keys their sites.
    pub fn may_see(&self, principal: &Principal, site_id: &str, topic: &str) -> bool {
        if !self.may_see_site(principal, site_id) {
            return false;
        }
        let Principal::Agent { agent } = principal else {
            return true;
        };
        if principal.is_admin() || agent.topics.is_empty() {
            return true;
        }
        let restricted = self
            .sites
            .read()
            .unwrap()
            .0
            .get(site_id)
            .is_some_and(|s| s.restrict_agents_to_topics);
        !restricted || agent.topics.iter().any(|t| t.eq_ignore_ascii_case(topic))
    }

    /// May a staff member see a site's visitors at all?
    pub fn may_see_site(&self, principal: &Principal, site_id: &str) -> bool {
        match principal {
            Principal::Agent { agent } if !principal.is_admin() => {
                agent.site_ids.is_empty() || agent.site_ids.iter().any(|s| s == site_id)
            }
            Principal::Service { site_ids, .. } => {
                site_ids.is_empty() || site_ids.iter().any(|s| s == site_id)
            }
            _ => true,
        }
    }

    /// Where a staff member may look, for list queries; None: everywhere.
    pub fn staff_scope(&self, principal: &Principal) -> Option<Vec<crate::store::SiteScope>> {
        use crate::store::SiteScope;
        match principal {
            Principal::Agent { agent } if !principal.is_admin() => {
                let sites = self.sites.read().unwrap();
                let restricts =
                    |s: &v1::Site| s.restrict_agents_to_topics && !agent.topics.is_empty();
                let mine: Vec<&v1::Site> = sites
                    .0
                    .values()
                    .filter(|s| agent.site_ids.is_empty() || agent.site_ids.contains(&s.id))
                    .collect();
                if agent.site_ids.is_empty() && !mine.iter().any(|s| restricts(s)) {
                    return None;
                }
                Some(
                    mine.into_iter()
                        .map(|s| SiteScope {
                            site_id: s.id.clone(),
                            topics: restricts(s).then(|| agent.topics.clone()),
                        })
                        .collect(),
                )
            }
            Principal::Service { site_ids, .. } if !site_ids.is_empty() => Some(
                site_ids
                    .iter()
                    .map(|id| SiteScope {
                        site_id: id.clone(),
                        topics: None,
                    })
                    .collect(),
            ),
            _ => None,
        }
    }

    /// The conversation, if the caller may see it (NOT_FOUND otherwise: ids leak nothing).
    pub async fn visible_conversation(
        &self,
        principal: &Principal,
        id: &str,
    ) -> CoreResult<v1::Conversation> {
        let c = self.store.conversation(id).await?;
        match principal {
            Principal::Visitor { visitor_id, .. } if *visitor_id != c.visitor_id => {
                Err(CoreError::NotFound("conversation not found".into()))
            }
            p if !p.is_staff() && !matches!(p, Principal::Visitor { .. }) => Err(
                CoreError::PermissionDenied("this API key has no chat scope".into()),
            ),
            p if !self.may_see(p, &c.site_id, &c.topic) => {
                Err(CoreError::NotFound("conversation not found".into()))
            }
            _ => Ok(self.decorate(c)),
        }
    }

    /// Fills what the store does not know (agents online for the topic).
    pub fn decorate(&self, mut c: v1::Conversation) -> v1::Conversation {
        c.agents_online = self.presence.online_for(&c.topic).len() as u32;
        c
    }

    /// Pushes a conversation snapshot to everyone following it.
    pub fn announce(&self, c: v1::Conversation) {
        let c = self.decorate(c);
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

    fn require_staff(principal: &Principal) -> CoreResult<()> {
        if principal.is_staff() {
            Ok(())
        } else {
            Err(CoreError::PermissionDenied(
                "only agents and chat API keys may do this".into(),
            ))
        }
    }

    fn require_agent(principal: &Principal) -> CoreResult<&v1::Agent> {
        match principal {
            Principal::Agent { agent } => Ok(agent),
            _ => Err(CoreError::PermissionDenied(
                "only agents may do this".into(),
            )),
        }
    }

    // ------------------------------------------------------------ events

    /// Handles one client event. For messages, returns after the message is durably stored.
    /// `origin`: the hub id of the Chat stream it came on, which gets no echo of its own message
    /// (the ack carries its seq); None for unary Publish.
    pub async fn publish(
        self: &Arc<Self>,
        principal: &Principal,
        ip: Option<std::net::IpAddr>,
        ev: v1::ClientEvent,
        origin: Option<u64>,
    ) -> CoreResult<v1::Ack> {
        let started = Instant::now();
        let result = self.publish_inner(principal, ip, ev, origin).await;
        match &result {
            Ok(_) => self
                .metrics
                .publish_latency
                .observe(started.elapsed().as_secs_f64()),
            Err(_) => {
                self.metrics.publish_errors.inc();
            }
        }
        result
    }

    async fn publish_inner(
        self: &Arc<Self>,
        principal: &Principal,
        ip: Option<std::net::IpAddr>,
        ev: v1::ClientEvent,
        origin: Option<u64>,
    ) -> CoreResult<v1::Ack> {
        if ev.request_id.len() > wsmschat::limits::MAX_CLIENT_ID_BYTES {
            return Err(CoreError::InvalidArgument(format!(
                "request_id is longer than {} bytes",
                wsmschat::limits::MAX_CLIENT_ID_BYTES
            )));
        }
        self.charge(&principal.author_key(), ip)?;
        let mut ack = v1::Ack {
            request_id: ev.request_id.clone(),
            ..Default::default()
        };
        let Some(body) = ev.event else {
            return Err(CoreError::InvalidArgument("empty event".into()));
        };
        match body {
            Ce::SendMessage(m) => {
                let (stored, duplicate, created_at) =
                    self.send_message(principal, ip, m, origin).await?;
                ack.conversation_id = stored.conversation_id;
                ack.seq = stored.seq;
                ack.client_msg_id = stored.client_msg_id;
                ack.duplicate = duplicate;
                ack.created_at_ms = created_at;
            }
            Ce::Typing(t) => {
                let c = self
                    .visible_conversation(principal, &t.conversation_id)
                    .await?;
                let (author_kind, author_id, author_name) = principal.author();
                self.hub.deliver(
                    Route {
                        conversation_id: &c.id,
                        visitor_id: &c.visitor_id,
                        // A visitor's own typing is not echoed to their other tabs.
                        staff_only: author_kind == v1::AuthorKind::Visitor,
                    },
                    event(Se::Typing(v1::TypingChanged {
                        conversation_id: c.id.clone(),
                        author_kind: author_kind as i32,
                        author_id,
                        author_name,
                        on: t.on,
                    })),
                );
                ack.conversation_id = c.id;
            }
            Ce::MarkRead(r) => {
                let c = self
                    .visible_conversation(principal, &r.conversation_id)
                    .await?;
                let by_visitor = matches!(principal, Principal::Visitor { .. });
                let after = self
                    .store
                    .mark_read(c.id.clone(), by_visitor, r.seq)
                    .await?;
                let seq = if by_visitor {
                    after.visitor_read_seq
                } else {
                    after.agent_read_seq
                };
                self.hub.deliver(
                    Route {
                        conversation_id: &c.id,
                        visitor_id: &c.visitor_id,
                        staff_only: false,
                    },
                    event(Se::Read(v1::ReadChanged {
                        conversation_id: c.id.clone(),
                        reader_kind: if by_visitor {
                            v1::AuthorKind::Visitor
                        } else {
                            v1::AuthorKind::Agent
                        } as i32,
                        seq,
                    })),
                );
                ack.conversation_id = c.id;
                ack.seq = seq;
            }
            Ce::Join(j) => {
                let agent = Self::require_agent(principal)?;
                let c = self
                    .visible_conversation(principal, &j.conversation_id)
                    .await?;
                self.assign_to(&c, &agent.id, v1::SystemEventKind::Joined)
                    .await?;
                ack.conversation_id = c.id;
            }
            Ce::Assign(a) => {
                Self::require_staff(principal)?;
                let c = self
                    .visible_conversation(principal, &a.conversation_id)
                    .await?;
                let kind = if c.assignee_id.is_empty() {
                    v1::SystemEventKind::Assigned
                } else {
                    v1::SystemEventKind::Transferred
                };
                self.assign_to(&c, &a.agent_id, kind).await?;
                ack.conversation_id = c.id;
            }
            Ce::Resolve(r) => {
                Self::require_staff(principal)?;
                let c = self
                    .visible_conversation(principal, &r.conversation_id)
                    .await?;
                let changed = self.store.resolve(c.id.clone()).await?;
                self.after_change(changed).await;
                ack.conversation_id = c.id;
            }
            Ce::Reopen(r) => {
                Self::require_staff(principal)?;
                let c = self
                    .visible_conversation(principal, &r.conversation_id)
                    .await?;
                let changed = self.store.reopen(c.id.clone()).await?;
                let topic = changed.conversation.topic.clone();
                self.after_change(changed).await;
                self.drain(vec![topic]).await;
                ack.conversation_id = c.id;
            }
            Ce::SetPresence(p) => {
                let agent = Self::require_agent(principal)?;
                let status = v1::PresenceStatus::try_from(p.status).unwrap_or_default();
                if !matches!(
                    status,
                    v1::PresenceStatus::Online | v1::PresenceStatus::Away
                ) {
                    return Err(CoreError::InvalidArgument(
                        "presence must be ONLINE or AWAY (OFFLINE follows from closing streams)"
                            .into(),
                    ));
                }
                if let Some(now) = self.presence.set(agent, status) {
                    self.presence_changed(agent, now).await;
                }
            }
            Ce::Rate(r) => {
                let Principal::Visitor { .. } = principal else {
                    return Err(CoreError::PermissionDenied(
                        "only the visitor may rate".into(),
                    ));
                };
                if !(1..=5).contains(&r.score) {
                    return Err(CoreError::InvalidArgument("score must be 1 to 5".into()));
                }
                self.check_text(&r.comment, true)?;
                let c = self
                    .visible_conversation(principal, &r.conversation_id)
                    .await?;
                let changed = self.store.rate(c.id.clone(), r.score, r.comment).await?;
                self.announce(changed.conversation);
                ack.conversation_id = c.id;
            }
            Ce::Watch(_) => {
                return Err(CoreError::InvalidArgument(
                    "watch only works on a Chat stream; Subscribe takes cursors".into(),
                ));
            }
        }
        Ok(ack)
    }

    /// Rejects empty or oversize text.
    fn check_text(&self, text: &str, may_be_empty: bool) -> CoreResult<()> {
        if text.len() > self.config.max_message_bytes {
            return Err(CoreError::InvalidArgument(format!(
                "text is {} bytes; the limit is {} bytes",
                text.len(),
                self.config.max_message_bytes
            )));
        }
        if !may_be_empty && text.trim().is_empty() {
            return Err(CoreError::InvalidArgument("text is empty".into()));
        }
        check_no_nul(text, "text")
    }

    async fn send_message(
        self: &Arc<Self>,
        principal: &Principal,
        ip: Option<std::net::IpAddr>,
        m: v1::SendMessage,
        origin: Option<u64>,
    ) -> CoreResult<(v1::Message, bool, i64)> {
        self.check_text(&m.text, false)?;
        if !wsmschat::ids::valid_client_id(&m.client_msg_id) {
            return Err(CoreError::InvalidArgument(format!(
                "client_msg_id must be 1 to {} printable ASCII bytes",
                wsmschat::limits::MAX_CLIENT_ID_BYTES
            )));
        }
        let kind = match v1::MessageKind::try_from(m.kind).unwrap_or_default() {
            v1::MessageKind::Unspecified | v1::MessageKind::Text => v1::MessageKind::Text,
            v1::MessageKind::Note => {
                Self::require_staff(principal)?;
                v1::MessageKind::Note
            }
            v1::MessageKind::System => {
                return Err(CoreError::InvalidArgument(
                    "clients cannot send system messages".into(),
                ));
            }
        };
        let (author_kind, author_id, author_name) = principal.author();
        let mut new = NewMessage {
            conversation_id: None,
            new_conversation: None,
            client_msg_id: Some(m.client_msg_id.clone()),
            author_key: principal.author_key(),
            kind,
            author_kind,
            author_id,
            author_name,
            text: m.text,
            system: None,
            require_visitor: None,
            origin_stream: origin,
        };
        match principal {
            Principal::Visitor {
                visitor_id,
                site_id,
                ..
            } => {
                new.require_visitor = Some(visitor_id.clone());
                if m.conversation_id.is_empty() {
                    let site = self.site(site_id).await?;
                    let topic = site
                        .topics
                        .iter()
                        .find(|t| t.eq_ignore_ascii_case(m.topic.trim()))
                        .cloned()
                        .ok_or_else(|| {
                            CoreError::InvalidArgument(format!(
                                "unknown topic {:?}; this site offers: {}",
                                m.topic,
                                site.topics.join(", ")
                            ))
                        })?;
                    self.charge_new_conversation(ip)?;
                    new.new_conversation = Some(NewConversation {
                        id: new_id("c_"),
                        site_id: site_id.clone(),
                        visitor_id: visitor_id.clone(),
                        topic,
                        max_open: self.config.open_conversations_per_visitor,
                    });
                } else {
                    new.conversation_id = Some(m.conversation_id);
                }
            }
            _ => {
                Self::require_staff(principal)?;
                if m.conversation_id.is_empty() {
                    return Err(CoreError::InvalidArgument(
                        "conversation_id is required (only visitors start conversations)".into(),
                    ));
                }
                // Only into conversations the caller may see; an agent answering a queued
                // conversation takes it (as Chatwoot does).
                // (An unscoped service key may write anywhere: no read on its hot path.)
                let unscoped_key =
                    matches!(principal, Principal::Service { site_ids, .. } if site_ids.is_empty());
                if !unscoped_key {
                    let c = self
                        .visible_conversation(principal, &m.conversation_id)
                        .await?;
                    if let Principal::Agent { agent } = principal {
                        if kind == v1::MessageKind::Text
                            && c.status == v1::ConversationStatus::Queued as i32
                        {
                            self.assign_to(&c, &agent.id, v1::SystemEventKind::Joined)
                                .await?;
                        }
                    }
                }
                new.conversation_id = Some(m.conversation_id);
            }
        }
        let appended = self.store.append_message(new).await?;
        if !appended.duplicate {
            self.metrics.messages_in.inc();
        }
        // A new or reopened conversation enters the queue: announce it and serve the queue.
        // Other messages need no snapshot: the message event carries the news.
        if let Some(c) = appended.conversation.clone() {
            let topic = c.topic.clone();
            self.announce(c);
            self.drain(vec![topic]).await;
        }
        let created_at = appended.message.created_at_ms;
        Ok((appended.message, appended.duplicate, created_at))
    }

    /// Agent presence changed: tell the inbox, and an agent coming online takes queued work.
    pub async fn presence_changed(self: &Arc<Self>, agent: &v1::Agent, status: v1::PresenceStatus) {
        // Other nodes get it with the agent's topics (their routers need them).
        if let Some(bus) = self.bus.get() {
            bus.publish_presence(agent, status, false);
        }
        // Inbox streams get the cluster-wide status (the agent may be online on another node).
        let cluster_status = self.presence.status(&agent.id);
        self.hub
            .deliver_inbox_local(event(Se::Presence(v1::PresenceChanged {
                agent_id: agent.id.clone(),
                agent_name: agent.name.clone(),
                status: cluster_status as i32,
            })));
        if status == v1::PresenceStatus::Online {
            let topics = self.topics_for(agent).await;
            self.drain(topics).await;
        }
    }

    /// The topics an agent serves, as concrete topic names (empty = every site's topics).
    async fn topics_for(&self, agent: &v1::Agent) -> Vec<String> {
        if !agent.topics.is_empty() {
            return agent.topics.clone();
        }
        self.all_topics().await
    }

    /// Every topic of every site.
    pub async fn all_topics(&self) -> Vec<String> {
        let _ = self.reload_sites().await;
        let mut all: Vec<String> = self
            .sites
            .read()
            .unwrap()
            .0
            .values()
            .flat_map(|s| s.topics.clone())
            .collect();
        all.sort();
        all.dedup();
        all
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

    /// Stops all streams (graceful shutdown).
    pub fn shutdown(&self) {
        self.stopping.send_replace(true);
        self.hub.shutdown();
    }
}
