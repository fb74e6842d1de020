//! Webhooks: per-site HTTP endpoints told what happens, signed per the Standard Webhooks
//! specification (<https://www.standardwebhooks.com>), durable and ordered per conversation.
//!
//! - **Outbox.** The store writes one delivery row per (endpoint, event) in the transaction of
//!   the message (or visitor change) that made the event (`store/webhooks.rs`): a committed
//!   event is never lost, an uncommitted one never sent.
//! - **Dispatcher.** One task per node wakes on commits that queued deliveries (and once a
//!   second, for retries and other nodes' events), reads what is due (per endpoint and
//!   conversation only the oldest pending delivery, so order holds through retries), and hands
//!   each endpoint's share to a task of that endpoint: a slow or dead endpoint holds up only
//!   itself, never the chat (which never waits for webhooks) or other endpoints.
//! - **At least once.** A delivery is leased to a node before its attempt (cluster-safe); a
//!   node killed mid-send leaves the lease to expire and another attempt follows, with the same
//!   `webhook-id`. Retries follow the specification's schedule (5 s, 5 min, 30 min, 2 h, 5 h,
//!   10 h, 10 h: over 27 hours), then the delivery is failed (admins can resend it); an endpoint
//!   whose every delivery failed for 5 days is disabled with a reason admins see.
//! - **Safe by default.** Only http(s) URLs without credentials; names resolved by us at every
//!   attempt and refused when any address is loopback, private, link-local or otherwise not
//!   public (unless `--webhooks-allow-private`); no redirects, no proxies; a time-out on the
//!   whole exchange; at most 512 bytes of the answer are read.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::StreamExt as _;
use hmac::{Hmac, Mac};
use tokio::sync::Notify;
use wsmschat::v1;

use super::Core;
use super::access::AdminGrant;
use crate::error::{CoreError, CoreResult};
use crate::store::webhooks::{Attempt, DueDelivery, Outcome};
use crate::util::{new_id, now_ms, random_bytes};

/// The Standard Webhooks retry schedule: the wait after each failed attempt.
pub const RETRY_SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];
/// Endpoints per site.
const MAX_ENDPOINTS_PER_SITE: usize = 20;
/// Longest endpoint URL, bytes.
const MAX_URL_BYTES: usize = 2048;
/// Longest description, bytes.
const MAX_DESCRIPTION_BYTES: usize = 200;
/// Bytes of an endpoint's answer kept in the log.
const RESPONSE_EXCERPT_BYTES: usize = 512;
/// Deliveries read, leased and recorded together per endpoint.
const DUE_BATCH: u32 = 64;
/// Concurrent deliveries per endpoint (each to a different conversation: order holds).
const PER_ENDPOINT_CONCURRENCY: usize = 16;
/// How long a woken dispatcher waits for more commits before its pass.
const WAKE_COALESCE: Duration = Duration::from_millis(5);
/// A lease outlives its attempt by this much (ms).
const LEASE_MARGIN_MS: i64 = 5_000;
/// How often the dispatcher looks without being woken (retries; other nodes' events).
const POLL: Duration = Duration::from_secs(1);

/// Webhook settings (part of [`super::CoreConfig`]).
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Deliver to loopback, private and link-local addresses too (tests, trusted networks).
    pub allow_private: bool,
    /// Wait after each failed attempt; after the last, the delivery fails.
    pub retry: Vec<Duration>,
    /// One attempt's limit (connect, send, answer).
    pub timeout: Duration,
    /// An endpoint whose every delivery failed for this long is disabled.
    pub disable_after: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            allow_private: false,
            retry: RETRY_SCHEDULE.to_vec(),
            timeout: Duration::from_secs(10),
            disable_after: Duration::from_secs(5 * 86_400),
        }
    }
}

/// The dispatcher's state.
pub struct Webhooks {
    wake: Arc<Notify>,
    /// Endpoints with a delivery task running (on this node).
    busy: Mutex<HashSet<String>>,
    /// The earliest retry this node scheduled (ms since epoch): the dispatcher wakes for it
    /// rather than at its next poll.
    next_retry: Mutex<Option<i64>>,
    client: reqwest::Client,
}

impl Webhooks {
    pub fn new(config: &WebhookConfig, wake: Arc<Notify>) -> Self {
        let client = reqwest::Client::builder()
            .user_agent(concat!("wsmschat-webhooks/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .pool_idle_timeout(Duration::from_secs(30))
            .dns_resolver(Arc::new(GuardedResolver {
                allow_private: config.allow_private,
            }))
            .build()
            .expect("the webhook HTTP client builds");
        Self {
            wake,
            busy: Mutex::default(),
            next_retry: Mutex::default(),
            client,
        }
    }

    /// A commit queued deliveries: look now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// How long the dispatcher may sleep: until the earliest retry, at most [`POLL`]. A retry
    /// is forgotten only once its time has passed (a wake-up before it must not lose it).
    fn pause(&self, now: i64) -> Duration {
        let mut next = self.next_retry.lock().unwrap();
        match *next {
            Some(at) if at <= now => {
                *next = None;
                Duration::ZERO
            }
            Some(at) => Duration::from_millis((at - now) as u64).min(POLL),
            None => POLL,
        }
    }

    fn retry_at(&self, at: i64) {
        let mut next = self.next_retry.lock().unwrap();
        *next = Some(next.map_or(at, |n| n.min(at)));
    }
}

/// The wire name of an event type.
pub fn event_name(t: v1::WebhookEventType) -> &'static str {
    use v1::WebhookEventType as T;
    match t {
        T::ConversationCreated => "conversation.created",
        T::ConversationAssigned => "conversation.assigned",
        T::ConversationResolved => "conversation.resolved",
        T::ConversationReopened => "conversation.reopened",
        T::MessageCreated => "message.created",
        T::NoteCreated => "note.created",
        T::RatingSubmitted => "rating.submitted",
        T::VisitorIdentified => "visitor.identified",
        T::Unspecified => "unspecified",
    }
}

/// Whether an address is on the public internet (not loopback, private, link-local, shared,
/// documentation, multicast, reserved or unspecified; IPv4-mapped and NAT64 addresses are
/// judged by the IPv4 address inside).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10 shared
                || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0.0/24
                || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18.0.0/15 benchmarking
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                let v4 = std::net::Ipv4Addr::new(
                    (s[6] >> 8) as u8,
                    s[6] as u8,
                    (s[7] >> 8) as u8,
                    s[7] as u8,
                );
                return is_public(IpAddr::V4(v4));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || s[0..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible (deprecated)
        }
    }
}

/// Resolves names for webhook deliveries and refuses those with a non-public address.
struct GuardedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !allow_private && let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
                return Err(format!(
                    "{host} resolves to {}, which is not a public address",
                    bad.ip()
                )
                .into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Checks an endpoint URL (syntax, scheme, no credentials, and an IP literal's range).
pub fn check_url(url: &str, allow_private: bool) -> Result<reqwest::Url, String> {
    if url.len() > MAX_URL_BYTES {
        return Err(format!("the URL is longer than {MAX_URL_BYTES} bytes"));
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("the URL must start with https:// (or http://)".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("the URL must not carry credentials (receivers verify the signature)".into());
    }
    let ip = match parsed.host() {
        None => return Err("the URL has no host".into()),
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        Some(url::Host::Domain(_)) => None,
    };
    if let Some(ip) = ip
        && !allow_private
        && !is_public(ip)
    {
        return Err(format!(
            "{ip} is not a public address (the server refuses loopback, private and \
             link-local endpoints unless started with --webhooks-allow-private)"
        ));
    }
    Ok(parsed)
}

/// A new signing secret: "whsec_" + base64 of 24 random bytes.
fn new_secret() -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(random_bytes::<24>())
    )
}

/// The `webhook-signature` value: "v1," + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))
/// with the key the base64 part of the secret.
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .unwrap_or_else(|_| secret.as_bytes().to_vec());
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// The error chain of a failed request, in one line.
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {} s", timeout.as_secs_f32());
    }
    let head = if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    crate::util::error_chain(head.to_owned(), e)
}

fn invalid(msg: impl Into<String>) -> CoreError {
    CoreError::InvalidArgument(msg.into())
}

impl Core {
    // ------------------------------------------------------------ administration

    fn normalize_webhook(&self, w: &mut v1::WebhookEndpoint) -> CoreResult<()> {
        w.url = w.url.trim().to_owned();
        check_url(&w.url, self.config.webhooks.allow_private)
            .map_err(|e| invalid(format!("url: {e}")))?;
        w.events.sort_unstable();
        w.events.dedup();
        if w.events.is_empty()
            || w.events.iter().any(|e| {
                !matches!(v1::WebhookEventType::try_from(*e), Ok(t) if t != v1::WebhookEventType::Unspecified)
            })
        {
            return Err(invalid(
                "events: at least one, each a known WebhookEventType",
            ));
        }
        w.description = w.description.trim().to_owned();
        if w.description.len() > MAX_DESCRIPTION_BYTES {
            return Err(invalid(format!(
                "description: at most {MAX_DESCRIPTION_BYTES} bytes"
            )));
        }
        super::check_no_nul(&w.description, "description")?;
        Ok(())
    }

    /// Adds an endpoint; returns it with its secret (shown once).
    pub async fn create_webhook(
        &self,
        _: AdminGrant,
        r: v1::CreateWebhookRequest,
    ) -> CoreResult<(v1::WebhookEndpoint, String)> {
        let site = self.store.site_by_id(&r.site_id).await?;
        if self.store.list_webhooks(Some(site.id.clone())).await?.len() >= MAX_ENDPOINTS_PER_SITE {
            return Err(CoreError::ResourceExhausted(format!(
                "a site has at most {MAX_ENDPOINTS_PER_SITE} webhook endpoints"
            )));
        }
        let mut w = v1::WebhookEndpoint {
            id: new_id("wh_"),
            site_id: site.id,
            url: r.url,
            events: r.events,
            enabled: true,
            description: r.description,
            ..Default::default()
        };
        self.normalize_webhook(&mut w)?;
        let secret = new_secret();
        let w = self.store.create_webhook(w, secret.clone()).await?;
        Ok((w, secret))
    }

    /// Changes an endpoint; a new secret when asked (returned, else empty).
    pub async fn update_webhook(
        &self,
        _: AdminGrant,
        mut w: v1::WebhookEndpoint,
        rotate_secret: bool,
    ) -> CoreResult<(v1::WebhookEndpoint, String)> {
        let before = self.store.webhook(&w.id).await?;
        w.site_id = before.site_id;
        self.normalize_webhook(&mut w)?;
        let secret = rotate_secret.then(new_secret);
        let w = self.store.update_webhook(w, secret.clone()).await?;
        if w.enabled {
            self.webhooks.wake();
        }
        Ok((w, secret.unwrap_or_default()))
    }

    pub async fn delete_webhook(&self, _: AdminGrant, id: String) -> CoreResult<()> {
        Ok(self.store.delete_webhook(id).await?)
    }

    pub async fn list_webhooks(
        &self,
        _: AdminGrant,
        site_id: String,
    ) -> CoreResult<Vec<v1::WebhookEndpoint>> {
        let site = (!site_id.is_empty()).then_some(site_id);
        Ok(self.store.list_webhooks(site).await?)
    }

    pub async fn list_webhook_deliveries(
        &self,
        _: AdminGrant,
        r: v1::ListWebhookDeliveriesRequest,
    ) -> CoreResult<Vec<v1::WebhookDelivery>> {
        self.store.webhook(&r.webhook_id).await?;
        if r.before_event_id.len() > 200 {
            return Err(invalid("before_event_id: at most 200 bytes"));
        }
        let state = match v1::WebhookDeliveryState::try_from(r.state) {
            Ok(v1::WebhookDeliveryState::Unspecified) => None,
            Ok(s) => Some(s as i64),
            Err(_) => return Err(invalid("state is not a known WebhookDeliveryState")),
        };
        let limit = match r.limit {
            0 => 50,
            n => n.min(200),
        };
        Ok(self
            .store
            .list_webhook_deliveries(r.webhook_id, state, (r.before_ms, r.before_event_id), limit)
            .await?)
    }

    pub async fn resend_webhook_deliveries(
        &self,
        _: AdminGrant,
        r: v1::ResendWebhookDeliveriesRequest,
    ) -> CoreResult<u32> {
        self.store.webhook(&r.webhook_id).await?;
        if r.event_ids.len() > 1000 || r.event_ids.iter().any(|id| id.len() > 200) {
            return Err(invalid("event_ids: at most 1000 ids of at most 200 bytes"));
        }
        if r.event_ids.is_empty() && !r.all_failed {
            return Err(invalid("name event_ids, or set all_failed"));
        }
        let n = self
            .store
            .resend_webhook_deliveries(r.webhook_id, r.event_ids, r.all_failed, now_ms())
            .await?;
        self.webhooks.wake();
        Ok(n)
    }

    // ------------------------------------------------------------ delivery

    /// Starts the dispatcher (one per node).
    pub fn spawn_webhook_dispatcher(self: &Arc<Self>) {
        let core = Arc::downgrade(self);
        let wake = self.webhooks.wake.clone();
        let mut stopping = self.stopping.subscribe();
        tokio::spawn(async move {
            loop {
                {
                    let Some(core) = core.upgrade() else { return };
                    core.dispatch_due().await;
                }
                let pause = match core.upgrade() {
                    Some(core) => core.webhooks.pause(now_ms()),
                    None => return,
                };
                let woken = tokio::select! {
                    _ = wake.notified() => true,
                    _ = tokio::time::sleep(pause) => false,
                    _ = stopping.wait_for(|s| *s) => return,
                };
                if woken {
                    // Commits come in bursts: one pass for all of them.
                    tokio::time::sleep(WAKE_COALESCE).await;
                }
            }
        });
    }

    /// One pass: every enabled endpoint without a running task gets one, which sends what is
    /// due for it. A busy endpoint (a slow or dead receiver) costs no query at all.
    async fn dispatch_due(self: &Arc<Self>) {
        let endpoints = match self.store.enabled_webhooks().await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot read webhook endpoints");
                return;
            }
        };
        for endpoint in endpoints {
            if !self.webhooks.busy.lock().unwrap().insert(endpoint.clone()) {
                continue; // its task looks again when its batch is done
            }
            let core = self.clone();
            tokio::spawn(async move {
                let sent = core.endpoint_task(&endpoint).await;
                core.webhooks.busy.lock().unwrap().remove(&endpoint);
                if sent {
                    // Commits that came in meanwhile may have woken nobody.
                    core.webhooks.wake();
                }
            });
        }
    }

    /// Sends an endpoint's due deliveries in batches: one read, one claim transaction, up to
    /// [`PER_ENDPOINT_CONCURRENCY`] requests at once (each to another conversation: order
    /// holds), one transaction recording the outcomes; until nothing is due. Whether it sent.
    async fn endpoint_task(self: &Arc<Self>, endpoint: &str) -> bool {
        let cfg = &self.config.webhooks;
        let mut sent = false;
        loop {
            let now = now_ms();
            let due = match self
                .store
                .due_webhook_deliveries(endpoint.to_owned(), now, DUE_BATCH)
                .await
            {
                Ok(d) if !d.is_empty() => d,
                Ok(_) => return sent,
                Err(e) => {
                    tracing::warn!(error = %e, "Cannot read due webhook deliveries");
                    return sent;
                }
            };
            // Held for the attempt's time-out and a margin: a node killed mid-send loses it
            // soon after.
            let lease = now + cfg.timeout.as_millis() as i64 + LEASE_MARGIN_MS;
            let keys = due
                .iter()
                .map(|d| (d.endpoint_id.clone(), d.event_id.clone()))
                .collect();
            let taken = match self.store.claim_webhook_deliveries(keys, now, lease).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(error = %e, "Cannot lease webhook deliveries");
                    return sent;
                }
            };
            let mine: Vec<DueDelivery> = due
                .into_iter()
                .zip(taken)
                .filter_map(|(d, t)| t.then_some(d))
                .collect();
            if mine.is_empty() {
                return sent; // another node has them
            }
            sent = true;
            let attempts: Vec<(String, String, Attempt)> = futures_util::stream::iter(mine)
                .map(|d| async move {
                    let attempt = self.attempt(&d).await;
                    (d.endpoint_id, d.event_id, attempt)
                })
                .buffer_unordered(PER_ENDPOINT_CONCURRENCY)
                .collect()
                .await;
            for (_, _, a) in &attempts {
                if let Outcome::Retry(at) = a.outcome {
                    self.webhooks.retry_at(at);
                }
            }
            match self
                .store
                .record_webhook_attempts(attempts, cfg.disable_after.as_millis() as i64)
                .await
            {
                Ok(Some(reason)) => {
                    tracing::warn!(%endpoint, %reason, "Webhook endpoint disabled");
                    self.notify_webhook_disabled(endpoint, &reason).await;
                    return sent;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "Cannot record webhook attempts");
                    return sent;
                }
            }
        }
    }

    /// One attempt of one (leased) delivery.
    async fn attempt(&self, d: &DueDelivery) -> Attempt {
        let cfg = &self.config.webhooks;
        let started = Instant::now();
        let result = match self.webhook_body(d).await {
            Ok(body) => self.post(d, body).await,
            Err(e) => Err(format!("cannot build the event: {e}")),
        };
        let latency_ms = started.elapsed().as_millis().min(u32::MAX as u128) as u32;
        let at = now_ms();
        let (status, response, error) = match result {
            Ok((status, response)) => (status, response, String::new()),
            Err(error) => (0, String::new(), error),
        };
        let attempt_no = d.attempts as usize + 1;
        let outcome = if (200..300).contains(&status) {
            Outcome::Delivered
        } else if let Some(wait) = cfg.retry.get(attempt_no - 1) {
            Outcome::Retry(at + wait.as_millis() as i64)
        } else {
            Outcome::Failed
        };
        self.metrics.webhook_delivered(
            match outcome {
                Outcome::Delivered => "delivered",
                Outcome::Retry(_) => "retry",
                Outcome::Failed => "failed",
            },
            latency_ms,
        );
        if outcome != Outcome::Delivered {
            tracing::info!(
                endpoint = %d.endpoint_id, event = %d.event_id, status, %error,
                attempt = attempt_no, "Webhook delivery failed"
            );
        }
        Attempt {
            outcome,
            at,
            status,
            latency_ms,
            response,
            error,
        }
    }

    /// POSTs a signed body; (status, the answer's first bytes) or why there was no answer.
    async fn post(&self, d: &DueDelivery, body: Vec<u8>) -> Result<(u32, String), String> {
        let cfg = &self.config.webhooks;
        let url = check_url(&d.url, cfg.allow_private)?;
        let timestamp = now_ms() / 1000;
        let response = self
            .webhooks
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &d.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                signature(&d.secret, &d.event_id, timestamp, &body),
            )
            .body(body)
            .send()
            .await
            .map_err(|e| describe(&e, cfg.timeout))?;
        let status = response.status().as_u16() as u32;
        let mut response = response;
        let mut excerpt = Vec::new();
        while excerpt.len() < RESPONSE_EXCERPT_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => excerpt.extend_from_slice(&chunk),
                _ => break,
            }
        }
        excerpt.truncate(RESPONSE_EXCERPT_BYTES);
        Ok((status, String::from_utf8_lossy(&excerpt).into_owned()))
    }

    /// The JSON body of a delivery: the event's records as they are now (the message as it was
    /// written; a visitor event's visitor as it was).
    async fn webhook_body(&self, d: &DueDelivery) -> CoreResult<Vec<u8>> {
        let t = v1::WebhookEventType::try_from(d.event_type).unwrap_or_default();
        let mut data = v1::WebhookEventData {
            event_id: d.event_id.clone(),
            site_id: d.site_id.clone(),
            ..Default::default()
        };
        if d.conversation_id.is_empty() {
            data.visitor = serde_json::from_str(&d.payload).ok();
        } else {
            let conversation = self.store.conversation(&d.conversation_id).await?;
            let mut message = self
                .store
                .messages_after(&d.conversation_id, d.seq.saturating_sub(1), 1, true)
                .await?
                .into_iter()
                .find(|m| m.seq == d.seq);
            if let Some(m) = &mut message
                && !m.attachments.is_empty()
            {
                let base = self.config.public_url.as_deref().unwrap_or("");
                self.hub.signer.sign_message(m, base, now_ms());
            }
            data.visitor = self
                .store
                .visitor_by_id(&conversation.visitor_id)
                .await
                .ok();
            data.conversation = Some(self.decorate(conversation));
            data.message = message;
        }
        let payload = v1::WebhookPayload {
            r#type: event_name(t).into(),
            timestamp: crate::util::rfc3339(d.created_at),
            data: Some(data),
        };
        Ok(serde_json::to_vec(&payload).map_err(crate::store::StoreError::internal)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_addresses() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2001:db8::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in [
            "1.1.1.1",
            "93.184.216.34",
            "2606:4700::1111",
            "64:ff9b::101:101",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn urls() {
        assert!(check_url("https://hooks.example.com/in", false).is_ok());
        assert!(check_url("http://127.0.0.1:9/x", true).is_ok());
        for (bad, why) in [
            ("ftp://example.com/", "https://"),
            ("https://user:pw@example.com/", "credentials"),
            ("http://127.0.0.1:8080/", "not a public address"),
            ("http://[::1]/", "not a public address"),
            (
                "http://169.254.169.254/latest/meta-data",
                "not a public address",
            ),
            ("not a url", "not a URL"),
        ] {
            let e = check_url(bad, false).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert!(check_url(&format!("https://e.com/{}", "a".repeat(2100)), false).is_err());
    }

    #[test]
    fn signature_matches_the_specification_example() {
        // The example of the Standard Webhooks reference libraries' tests.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let sig = signature(
            secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn the_schedule_retries_for_over_a_day() {
        let total: Duration = RETRY_SCHEDULE.iter().sum();
        assert!(total > Duration::from_secs(24 * 3600), "{total:?}");
    }
}
