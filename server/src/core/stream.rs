//! What one Subscribe/Chat stream delivers, and in which order.
//!
//! Resume without gap or duplicate: the stream registers with the hub first (live events start
//! queueing), then replays from the store everything after each cursor, then forwards the
//! queue, dropping messages at or below the last seq it already sent for that conversation.
//! A conversation added later (Chat `watch`) is treated the same way: live events for it are
//! ignored until its replay has run.

use std::collections::{HashMap, HashSet, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::Stream;
use tokio::sync::{broadcast, mpsc};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use wsmschat::v1;
use wsmschat::v1::server_event::Event as Se;

use super::hub::{Outbound, Registration, Subscription};
use super::{Core, Revoked};
use crate::auth::Principal;
use crate::error::{CoreError, CoreResult};

/// Messages read from the store per replay page. One page is read at a time, when the client
/// has taken everything before it, so a stalled reader pins at most one page (4 KiB texts:
/// 400 KiB), however large the backlog (security review F6).
const REPLAY_PAGE: u32 = 100;
/// Cursors one stream may carry.
pub const MAX_CURSORS: usize = 200;
/// How often staff streams re-read their token from the store (a revocation on a node whose
/// bus message was lost still ends them within this time).
const RECHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// A boxed stream of server events; an error ends it (revoked token).
pub type EventStream = Pin<Box<dyn Stream<Item = CoreResult<v1::ServerEvent>> + Send>>;

/// One open-stream slot, counted per token and per address until dropped.
pub struct StreamPermit {
    core: Arc<Core>,
    keys: Vec<String>,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        for key in &self.keys {
            self.core.streams.release(key);
        }
    }
}

/// A conversation's replay, possibly part done.
struct Replay {
    cursor: v1::ConversationCursor,
    /// Seqs already sent live on a wide stream before the replay began (skipped).
    sent: Option<std::ops::RangeInclusive<u64>>,
    started: bool,
}

struct State {
    core: Arc<Core>,
    principal: Principal,
    /// The bearer token, re-checked on revocations.
    token: String,
    revocations: broadcast::Receiver<Revoked>,
    /// Re-reads a staff token from the store now and then (None for visitors).
    recheck: Option<Interval>,
    /// When the token expires (agent sessions).
    expires: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The error that ends the stream, sent after what is pending.
    error: Option<CoreError>,
    /// For staff limited to some sites or topics: which conversations they may see (cached
    /// per conversation). None: the principal sees everything.
    scope: Option<HashMap<String, bool>>,
    sub: Subscription,
    /// Events ready to send, in order.
    pending: VecDeque<v1::ServerEvent>,
    /// Conversations still to replay (the last one first).
    to_replay: Vec<Replay>,
    /// Highest seq sent per conversation (dedupe of replay vs live).
    last_seq: HashMap<String, u64>,
    /// First live seq sent per conversation on a wide stream before any replay of it: from
    /// there on the hub delivered every message, so a later watch replays only what precedes it.
    first_live: HashMap<String, u64>,
    /// Conversations that are followed explicitly (watch/cursors) and have been replayed.
    replayed: HashSet<String>,
    /// Conversations being replayed: their live events wait for the replay.
    waiting: HashSet<String>,
    /// Follows every conversation of a visitor or the inbox (live events of any conversation pass).
    wide: bool,
    /// A visitor's stream: no notes.
    visitor_view: bool,
    /// Heartbeat timer, reset by every event sent.
    heartbeat: Interval,
    /// Acks of a Chat stream's own events.
    acks: Option<mpsc::Receiver<v1::ServerEvent>>,
    /// The stream's slot in the per-token and per-address limits.
    _permit: StreamPermit,
    /// The stream ended (queue closed or resync sent).
    done: bool,
    /// Write coalescing (staff inbox streams): see [`State::may_send`].
    coalesce: Option<Coalesce>,
}

/// A busy inbox stream sends what it gathered at most once per `every`: each event to each
/// agent console is otherwise one socket write, the largest per-stream cost on a support
/// floor (docs/performance.md).
struct Coalesce {
    every: std::time::Duration,
    /// The earliest start of the next write.
    next_write: Instant,
    /// Sending what is pending, until it is empty.
    draining: bool,
    /// Waiting for `next_write` (armed while holding).
    hold: Pin<Box<tokio::time::Sleep>>,
    holding: bool,
}

/// Events a coalescing stream holds at most before it writes anyway. While it holds it does
/// not read its queue, so this bounds what it took in before the hold began (the queue's
/// depth, `hub::INBOX_STREAM_QUEUE`, bounds the hold itself).
const COALESCE_MAX: usize = 128;

impl Drop for State {
    fn drop(&mut self) {
        self.core.metrics.streams.dec();
        if let Principal::Agent { agent } = &self.principal {
            if let Some(status) = self.core.presence.stream_closed(&agent.id) {
                let core = self.core.clone();
                let agent = agent.clone();
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    rt.spawn(async move { core.presence_changed(&agent, status).await });
                }
            }
        }
    }
}

impl Core {
    /// Takes a stream slot for `principal` from `ip`: at most `streams_per_token` per token and
    /// `streams_per_ip` per address. Held from before a Chat call's first request, so calls that
    /// never send one count too.
    pub fn reserve_stream(
        self: &Arc<Self>,
        principal: &Principal,
        ip: Option<std::net::IpAddr>,
    ) -> CoreResult<StreamPermit> {
        let key = principal.author_key();
        if !self.streams.acquire(&key) {
            return Err(CoreError::ResourceExhausted(format!(
                "too many open streams for this token (at most {})",
                self.config.streams_per_token
            )));
        }
        let mut permit = StreamPermit {
            core: self.clone(),
            keys: vec![key],
        };
        if let Some(ip) = ip {
            let key = format!("ip:{}", super::limits::ip_key(ip));
            if !self.streams.acquire_max(&key, self.config.streams_per_ip) {
                return Err(CoreError::ResourceExhausted(format!(
                    "too many open streams from this address (at most {})",
                    self.config.streams_per_ip
                )));
            }
            permit.keys.push(key);
        }
        Ok(permit)
    }

    /// Opens a stream for `principal` (authenticated by `token`, re-checked on revocations).
    /// `acks` carries a Chat stream's answers to its own events. Returns the stream and its hub
    /// id (for `watch`).
    pub async fn open_stream(
        self: &Arc<Self>,
        permit: StreamPermit,
        principal: Principal,
        token: String,
        subscription: v1::Subscription,
        acks: Option<mpsc::Receiver<v1::ServerEvent>>,
    ) -> CoreResult<(EventStream, u64)> {
        let (visitor_view, visitor_id, inbox) = match &principal {
            Principal::Visitor { visitor_id, .. } => (true, Some(visitor_id.clone()), false),
            p if p.is_staff() => (false, None, subscription.inbox),
            _ => {
                return Err(CoreError::PermissionDenied(
                    "this API key has no chat scope".into(),
                ));
            }
        };
        if subscription.cursors.len() > MAX_CURSORS {
            return Err(CoreError::InvalidArgument(format!(
                "{} cursors; a stream takes at most {MAX_CURSORS}",
                subscription.cursors.len()
            )));
        }
        // Listening first, then resolving again (a cache hit): a revocation since the caller was
        // authenticated (a Chat call may wait 10 s for its first request) is not missed.
        let revocations = self.revocations.subscribe();
        let (_, expires_at_ms) = self.authenticate_full(&token).await?;
        let mut cursors = Vec::new();
        for c in subscription.cursors {
            // Only conversations the caller may see; others are refused, not ignored.
            self.visible_conversation(&principal, &c.conversation_id)
                .await?;
            cursors.push(c);
        }
        let reg = Registration {
            visitor_view,
            visitor_id,
            inbox,
            conversations: cursors.iter().map(|c| c.conversation_id.clone()).collect(),
        };
        let Some(sub) = self.hub.register(reg) else {
            return Err(CoreError::Unavailable("server is shutting down".into()));
        };
        self.metrics.streams.inc();
        let id = sub.id;
        // On the span of the RPC that opened the stream (rpc/chat.rs declares the field): what
        // is logged while the stream runs carries its id.
        tracing::Span::current().record("stream", id);
        let mut heartbeat = tokio::time::interval_at(
            Instant::now() + self.config.heartbeat,
            self.config.heartbeat,
        );
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let recheck = (!visitor_view).then(|| {
            let mut i = tokio::time::interval_at(Instant::now() + RECHECK_EVERY, RECHECK_EVERY);
            i.set_missed_tick_behavior(MissedTickBehavior::Delay);
            i
        });
        let expires = (expires_at_ms != i64::MAX).then(|| {
            let left = (expires_at_ms - crate::util::now_ms()).max(0) as u64;
            Box::pin(tokio::time::sleep(std::time::Duration::from_millis(left)))
        });
        let state = State {
            core: self.clone(),
            pending: VecDeque::from([self.ready_event(id)]),
            waiting: cursors.iter().map(|c| c.conversation_id.clone()).collect(),
            to_replay: cursors
                .into_iter()
                .map(|cursor| Replay {
                    cursor,
                    sent: None,
                    started: false,
                })
                .collect(),
            last_seq: HashMap::new(),
            first_live: HashMap::new(),
            replayed: HashSet::new(),
            wide: visitor_view || inbox,
            visitor_view,
            heartbeat,
            acks,
            _permit: permit,
            done: false,
            sub,
            principal: principal.clone(),
            token,
            revocations,
            recheck,
            expires,
            error: None,
            scope: (!visitor_view && self.staff_scope(&principal).is_some()).then(HashMap::new),
            coalesce: (inbox && !visitor_view && !self.config.inbox_coalesce.is_zero()).then(
                || Coalesce {
                    every: self.config.inbox_coalesce,
                    next_write: Instant::now(),
                    draining: false,
                    hold: Box::pin(tokio::time::sleep_until(Instant::now())),
                    holding: false,
                },
            ),
        };
        if let Principal::Agent { agent } = &principal {
            if let Some(status) = self.presence.stream_opened(agent) {
                self.presence_changed(agent, status).await;
            }
        }
        // Boxed: unfold moves its state into each item's future and back out, and a State
        // is large (maps, timers): a pointer per event instead of a copy of the state per
        // event on every stream (the largest memmove in an inbox profile).
        let stream = futures_util::stream::unfold(Box::new(state), |mut st| async move {
            let ev = st.next_event().await?;
            Some((ev, st))
        });
        Ok((Box::pin(stream), id))
    }
}

impl State {
    async fn next_event(&mut self) -> Option<CoreResult<v1::ServerEvent>> {
        loop {
            if !self.pending.is_empty() && self.may_send() {
                let ev = self.pending.pop_front()?;
                if self.pending.is_empty() {
                    if let Some(c) = self.coalesce.as_mut() {
                        c.draining = false;
                    }
                }
                self.heartbeat.reset();
                if matches!(ev.event, Some(Se::Message(_))) {
                    self.core.metrics.messages_out.inc();
                }
                return Some(Ok(ev));
            }
            if let Some(error) = self.error.take() {
                self.done = true;
                return Some(Err(error));
            }
            if self.done {
                return None;
            }
            if self.sub.flags.lagged.load(Ordering::Relaxed) {
                tracing::debug!("Stream fell behind; asking the client to resync");
                self.done = true;
                self.pending.push_back(v1::ServerEvent {
                    event: Some(Se::ResyncRequired(v1::ResyncRequired {
                        reason: "this stream fell too far behind; reconnect with your cursors"
                            .into(),
                    })),
                });
                continue;
            }
            if let Some(job) = self.to_replay.pop() {
                if let Err(error) = self.replay(job).await {
                    tracing::warn!(%error, "Replay failed; asking the client to resync");
                    self.sub.flags.lagged.store(true, Ordering::Relaxed);
                }
                // A replay answers the client's own request: at once.
                self.send_now();
                continue;
            }
            let holding = self.coalesce.as_ref().is_some_and(|c| c.holding);
            tokio::select! {
                biased;
                // A holding stream does not poll its queue: the hub's pushes land in the
                // channel without waking this task, and the hold's end takes them all at once
                // (one wake per hold instead of one per event).
                out = self.sub.rx.recv(), if !holding => self.take(out).await,
                ack = async { self.acks.as_mut()?.recv().await }, if self.acks.is_some() => match ack {
                    // The client waits for its ack: it goes at once, with what is held, behind
                    // the events queued before it.
                    Some(ev) => {
                        self.take_queued().await;
                        self.pending.push_back(ev);
                        self.send_now();
                    }
                    None => self.acks = None,
                },
                _ = async { self.coalesce.as_mut()?.hold.as_mut().await; Some(()) }, if holding => {
                    self.take_queued().await;
                    self.send_now();
                }
                _ = self.heartbeat.tick() => return Some(Ok(Core::heartbeat_event())),
                revoked = self.revocations.recv() => {
                    let concerns_me = match &revoked {
                        Ok(Revoked::Staff) => !self.visitor_view,
                        Ok(Revoked::Visitor(id)) => matches!(
                            &self.principal,
                            Principal::Visitor { visitor_id, .. } if visitor_id == id
                        ),
                        // Missed some: re-check to be sure.
                        Err(broadcast::error::RecvError::Lagged(_)) => true,
                        Err(broadcast::error::RecvError::Closed) => false,
                    };
                    if concerns_me {
                        self.recheck_token().await;
                    }
                }
                _ = async { self.recheck.as_mut()?.tick().await; Some(()) }, if self.recheck.is_some() => {
                    self.core.auth.forget(&self.token);
                    self.recheck_token().await;
                }
                _ = async { self.expires.as_mut()?.as_mut().await; Some(()) }, if self.expires.is_some() => {
                    self.expires = None;
                    self.end_with(CoreError::Unauthenticated("the session expired; log in again".into()));
                }
            }
        }
    }

    /// Takes one item of the hub's queue (None: the hub dropped the stream).
    async fn take(&mut self, out: Option<Outbound>) {
        match out {
            Some(Outbound::Event(ev)) => {
                if self.in_scope(&ev).await {
                    self.accept(&ev);
                }
            }
            Some(Outbound::Watch(cursor)) => {
                if !self.replayed.contains(&cursor.conversation_id)
                    && !self.waiting.contains(&cursor.conversation_id)
                {
                    self.waiting.insert(cursor.conversation_id.clone());
                    self.to_replay.push(Replay {
                        cursor: *cursor,
                        sent: None,
                        started: false,
                    });
                }
            }
            // Dropped by the hub: lagged (handled by the loop) or shutdown (end cleanly).
            None => {
                if !self.sub.flags.lagged.load(Ordering::Relaxed) {
                    self.done = true;
                }
            }
        }
    }

    /// Takes everything queued now (a holding stream's hold ended, or an ack must go behind
    /// what came before it).
    async fn take_queued(&mut self) {
        loop {
            match self.sub.rx.try_recv() {
                Ok(out) => self.take(Some(out)).await,
                Err(mpsc::error::TryRecvError::Empty) => return,
                Err(mpsc::error::TryRecvError::Disconnected) => return self.take(None).await,
            }
        }
    }

    /// May the next pending event go now? Always, except on a coalescing stream that wrote
    /// less than `every` ago: then it holds (and arms its timer) until `next_write`, unless it
    /// has gathered [`COALESCE_MAX`] events or the stream is ending.
    fn may_send(&mut self) -> bool {
        let ending = self.done || self.error.is_some();
        let full = self.pending.len() >= COALESCE_MAX;
        let Some(c) = self.coalesce.as_mut() else {
            return true;
        };
        if c.draining {
            return true;
        }
        let now = Instant::now();
        if ending || full || now >= c.next_write {
            c.draining = true;
            c.holding = false;
            c.next_write = now + c.every;
            return true;
        }
        if !c.holding {
            c.holding = true;
            let at = c.next_write;
            c.hold.as_mut().reset(at);
        }
        false
    }

    /// Sends what is pending without waiting (acks, replays, the hold's end).
    fn send_now(&mut self) {
        if let Some(c) = self.coalesce.as_mut() {
            // Disarmed even with nothing pending: a fired timer stays ready.
            c.holding = false;
            if !self.pending.is_empty() && !c.draining {
                c.draining = true;
                c.next_write = Instant::now() + c.every;
            }
        }
    }

    /// Resolves the stream's token again: a revoked or expired token, or one that lost the
    /// rights this stream needs, ends the stream. A store that cannot answer keeps it open.
    async fn recheck_token(&mut self) {
        match self
            .core
            .auth
            .resolve(self.core.store.as_ref(), &self.token)
            .await
        {
            Ok(p) if self.visitor_view || p.is_staff() => {
                // Its sites or topics may have changed.
                self.scope =
                    (!self.visitor_view && self.core.staff_scope(&p).is_some()).then(HashMap::new);
                self.principal = p;
            }
            Ok(_) => self.end_with(CoreError::PermissionDenied(
                "this token lost its chat scope".into(),
            )),
            Err(CoreError::Unauthenticated(_)) => self.end_with(CoreError::Unauthenticated(
                "this token was revoked or has expired".into(),
            )),
            // A blocked visitor: the neutral refusal, with its reason.
            Err(refused @ CoreError::Refused { .. }) => self.end_with(refused),
            Err(error) => tracing::warn!(%error, "Could not re-check a stream's token"),
        }
    }

    /// Is this live event about a conversation the (scoped) principal may see?
    async fn in_scope(&mut self, ev: &v1::ServerEvent) -> bool {
        if self.scope.is_none() {
            return true;
        }
        let (id, known) = match &ev.event {
            Some(Se::Message(m)) => (&m.conversation_id, None),
            Some(Se::Typing(t)) => (&t.conversation_id, None),
            Some(Se::Read(r)) => (&r.conversation_id, None),
            Some(Se::Conversation(c)) => (&c.id, Some((c.site_id.clone(), c.topic.clone()))),
            // A visitor's context: for staff who may see the visitor's site.
            Some(Se::Visitor(v)) => return self.core.may_see_site(&self.principal, &v.site_id),
            _ => return true,
        };
        if let Some(&ok) = self.scope.as_ref().and_then(|s| s.get(id)) {
            return ok;
        }
        let (site, topic) = match known {
            Some(k) => k,
            None => match self.core.store.conversation(id).await {
                Ok(c) => (c.site_id, c.topic),
                Err(_) => return false,
            },
        };
        let ok = self.core.may_see(&self.principal, &site, &topic);
        if let Some(cache) = self.scope.as_mut() {
            if cache.len() >= 10_000 {
                cache.clear();
            }
            cache.insert(id.clone(), ok);
        }
        ok
    }

    /// Ends the stream with `error`, dropping what it had not sent yet.
    fn end_with(&mut self, error: CoreError) {
        tracing::debug!(%error, "Stream ended");
        self.pending.clear();
        self.to_replay.clear();
        self.error = Some(error);
        self.done = true;
    }

    /// Filters a live event for this stream.
    fn accept(&mut self, ev: &Arc<v1::ServerEvent>) {
        let conversation = match &ev.event {
            Some(Se::Message(m)) => {
                if self.visitor_view && m.kind == v1::MessageKind::Note as i32 {
                    return;
                }
                if !self.followed(&m.conversation_id) {
                    return;
                }
                let last = self.last_seq.entry(m.conversation_id.clone()).or_insert(0);
                if m.seq <= *last {
                    return;
                }
                *last = m.seq;
                if !self.replayed.contains(&m.conversation_id) {
                    self.first_live
                        .entry(m.conversation_id.clone())
                        .or_insert(m.seq);
                }
                None
            }
            Some(Se::Typing(t)) => Some(&t.conversation_id),
            Some(Se::Read(r)) => Some(&r.conversation_id),
            Some(Se::Conversation(c)) => {
                if self.visitor_view && !c.attributes.is_empty() {
                    // Attributes are staff business.
                    if self.followed(&c.id) {
                        let mut c = c.clone();
                        c.attributes.clear();
                        self.pending.push_back(v1::ServerEvent {
                            event: Some(Se::Conversation(c)),
                        });
                    }
                    return;
                }
                Some(&c.id)
            }
            // Visitors' context is for staff (it only reaches inbox streams anyway).
            Some(Se::Visitor(_)) if self.visitor_view => return,
            _ => None,
        };
        if let Some(id) = conversation {
            if !self.followed(id) {
                return;
            }
        }
        self.pending.push_back(ev.as_ref().clone());
    }

    /// Live events of a conversation pass once its replay (if any) is done.
    fn followed(&self, conversation_id: &str) -> bool {
        !self.waiting.contains(conversation_id)
            && (self.wide || self.replayed.contains(conversation_id))
    }

    /// Replays one page of a conversation after its cursor; a full page puts the rest back in
    /// line, read when the client has taken this one. On a wide stream that already sent live
    /// messages of it (seqs `first_live..=last_seq`, gapless since the stream opened), only the
    /// messages before those are sent: they follow the newer live ones, so a client of such a
    /// watch orders by seq.
    async fn replay(&mut self, mut job: Replay) -> CoreResult<()> {
        let id = job.cursor.conversation_id.clone();
        let last = self.last_seq.get(&id).copied().unwrap_or(0);
        if !job.started {
            job.started = true;
            job.sent = self.first_live.remove(&id).map(|first| first..=last);
            if job.sent.is_none() {
                job.cursor.after_seq = job.cursor.after_seq.max(last);
            }
        }
        let page = self
            .core
            .store
            .messages_after(&id, job.cursor.after_seq, REPLAY_PAGE, !self.visitor_view)
            .await?;
        let full = page.len() == REPLAY_PAGE as usize;
        for mut m in page {
            job.cursor.after_seq = m.seq;
            if job.sent.as_ref().is_some_and(|s| s.contains(&m.seq)) {
                continue;
            }
            self.core.sign(&mut m);
            self.pending.push_back(v1::ServerEvent {
                event: Some(Se::Message(m)),
            });
        }
        if full {
            self.to_replay.push(job);
            return Ok(());
        }
        self.last_seq
            .insert(id.clone(), job.cursor.after_seq.max(last));
        self.waiting.remove(&id);
        self.replayed.insert(id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::StreamExt;
    use tokio::time::{Instant, timeout, timeout_at};
    use wsmschat::v1;
    use wsmschat::v1::client_event::Event as Ce;
    use wsmschat::v1::server_event::Event as Se;

    use super::{EventStream, REPLAY_PAGE};
    use crate::core::event;
    use crate::core::hub::Route;
    use crate::core::testkit::TestCore;
    use crate::error::CoreError;

    /// How long a test waits for an event that must come.
    const WAIT: Duration = Duration::from_secs(10);

    fn cursor(conversation_id: &str, after_seq: u64) -> v1::ConversationCursor {
        v1::ConversationCursor {
            conversation_id: conversation_id.into(),
            after_seq,
        }
    }

    async fn open(
        t: &TestCore,
        token: &str,
        cursors: Vec<v1::ConversationCursor>,
        inbox: bool,
    ) -> (EventStream, u64) {
        let principal = t.principal(token).await;
        let permit = t.core.reserve_stream(&principal, None).unwrap();
        let subscription = v1::Subscription { cursors, inbox };
        t.core
            .open_stream(permit, principal, token.to_owned(), subscription, None)
            .await
            .unwrap()
    }

    async fn next(s: &mut EventStream) -> Se {
        timeout(WAIT, s.next())
            .await
            .expect("an event in time")
            .expect("the stream is open")
            .expect("not an error")
            .event
            .unwrap()
    }

    /// The seqs of the next `n` messages (other events are skipped).
    async fn seqs(s: &mut EventStream, n: usize) -> Vec<u64> {
        let mut out = Vec::new();
        while out.len() < n {
            if let Se::Message(m) = next(s).await {
                out.push(m.seq);
            }
        }
        out
    }

    /// Nothing more comes for a while.
    async fn quiet(s: &mut EventStream) {
        let more = timeout(Duration::from_millis(200), s.next()).await;
        assert!(more.is_err(), "unexpected {more:?}");
    }

    fn conversation_of(ev: &Se) -> Option<&str> {
        match ev {
            Se::Message(m) => Some(&m.conversation_id),
            Se::Conversation(c) => Some(&c.id),
            Se::Typing(t) => Some(&t.conversation_id),
            Se::Read(r) => Some(&r.conversation_id),
            _ => None,
        }
    }

    #[tokio::test]
    async fn a_resumed_stream_replays_after_its_cursor_then_goes_live_without_gap_or_duplicate() {
        let t = TestCore::any().await;
        let (_, v) = t.visitor().await;
        let conv = t.send(&v, "", "1").await.conversation_id;
        for text in ["2", "3", "4", "5"] {
            t.send(&v, &conv, text).await;
        }
        let (mut s, _) = open(&t, &v, vec![cursor(&conv, 2)], false).await;
        // Committed after the stream registered and before it replayed: in the store and in
        // the stream's live queue both.
        t.send(&v, &conv, "6").await;
        t.send(&v, &conv, "7").await;
        assert!(matches!(next(&mut s).await, Se::Ready(_)));
        assert_eq!(seqs(&mut s, 5).await, [3, 4, 5, 6, 7]);
        t.send(&v, &conv, "8").await;
        assert_eq!(
            seqs(&mut s, 1).await,
            [8],
            "the live copies of 6 and 7 were dropped"
        );
        quiet(&mut s).await;
        drop(s);
        t.finish().await;
    }

    #[tokio::test]
    async fn a_long_replay_is_paged_and_a_message_between_pages_comes_once() {
        let t = TestCore::any().await;
        let (_, v) = t.visitor().await;
        let conv = t.send(&v, "", "1").await.conversation_id;
        let page = REPLAY_PAGE as u64;
        let stored = page + 20;
        futures_util::future::join_all((2..=stored).map(|_| t.send(&v, &conv, "x"))).await;
        let (mut s, _) = open(&t, &v, vec![cursor(&conv, 0)], false).await;
        assert!(matches!(next(&mut s).await, Se::Ready(_)));
        assert_eq!(seqs(&mut s, page as usize).await, Vec::from_iter(1..=page));
        // The client has taken the first page; the next one is read after this commit.
        t.send(&v, &conv, "between pages").await;
        let rest = seqs(&mut s, (stored + 1 - page) as usize).await;
        assert_eq!(rest, Vec::from_iter(page + 1..=stored + 1));
        t.send(&v, &conv, "live").await;
        assert_eq!(seqs(&mut s, 1).await, [stored + 2]);
        quiet(&mut s).await;
        drop(s);
        t.finish().await;
    }

    #[tokio::test]
    async fn a_watch_on_a_wide_stream_replays_only_what_precedes_its_live_messages() {
        let t = TestCore::any().await;
        let (_, v) = t.visitor().await;
        let bot = t.service_key(vec![]).await;
        let conv = t.send(&v, "", "1").await.conversation_id;
        t.send(&v, &conv, "2").await;
        t.send(&v, &conv, "3").await;
        let (mut s, stream_id) = open(&t, &bot, vec![], true).await;
        assert!(matches!(next(&mut s).await, Se::Ready(_)));
        t.send(&v, &conv, "4").await;
        assert_eq!(
            seqs(&mut s, 1).await,
            [4],
            "the inbox follows every conversation"
        );
        let watch = v1::ClientEvent {
            request_id: "w".into(),
            event: Some(Ce::Watch(v1::WatchConversation {
                cursor: Some(cursor(&conv, 1)),
            })),
        };
        let answer = t.core.stream_event(&bot, None, stream_id, watch).await;
        assert!(matches!(answer.event, Some(Se::Ack(_))), "{answer:?}");
        // 2 and 3 were missed; 4 was sent live already.
        assert_eq!(seqs(&mut s, 2).await, [2, 3]);
        t.send(&v, &conv, "5").await;
        assert_eq!(seqs(&mut s, 1).await, [5]);
        quiet(&mut s).await;
        drop(s);
        t.finish().await;
    }

    #[tokio::test]
    async fn a_site_scoped_inbox_gets_its_sites_conversations_only() {
        let t = TestCore::any().await;
        let other = t.other_site().await;
        let key = t.service_key(vec![t.site.id.clone()]).await;
        let (_, mine) = t.visitor().await;
        let (_, theirs) = t.visitor_of(&other).await;
        let (mut s, _) = open(&t, &key, vec![], true).await;
        assert!(matches!(next(&mut s).await, Se::Ready(_)));
        // Each time the other site's event comes first: only ours may arrive.
        let their_conv = t.send(&theirs, "", "theirs").await.conversation_id;
        let my_conv = t.send(&mine, "", "mine").await.conversation_id;
        for round in 0..2 {
            if round == 1 {
                t.send(&theirs, &their_conv, "theirs again").await;
                t.send(&mine, &my_conv, "mine again").await;
            }
            loop {
                let ev = next(&mut s).await;
                assert_ne!(conversation_of(&ev), Some(their_conv.as_str()), "{ev:?}");
                if matches!(&ev, Se::Message(m) if m.conversation_id == my_conv) {
                    break;
                }
            }
        }
        drop(s);
        t.finish().await;
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_stream_beats_every_interval_and_any_event_pushes_the_beat_back() {
        let t = TestCore::sqlite().await;
        let (visitor_id, v) = t.visitor().await;
        let conv = t.send(&v, "", "hello").await.conversation_id;
        let every = t.core.config.heartbeat;
        let early = every - Duration::from_millis(1);
        let (mut s, _) = open(&t, &v, vec![], false).await;
        let opened = Instant::now();
        assert!(matches!(next(&mut s).await, Se::Ready(_)));
        for n in 1..=2 {
            assert!(
                timeout(early, s.next()).await.is_err(),
                "beat {n} came early"
            );
            assert!(matches!(next(&mut s).await, Se::Heartbeat(_)));
            assert_eq!(opened.elapsed(), every * n);
        }
        // An event 5 s later goes out at once, and the next beat is due an interval after it.
        tokio::time::advance(Duration::from_secs(5)).await;
        let typing = event(Se::Typing(v1::TypingChanged {
            conversation_id: conv.clone(),
            on: true,
            ..Default::default()
        }));
        let route = Route {
            conversation_id: &conv,
            visitor_id: &visitor_id,
            staff_only: false,
        };
        t.core.hub.deliver(route, typing);
        assert!(matches!(next(&mut s).await, Se::Typing(_)));
        let sent = Instant::now();
        assert!(
            timeout(early, s.next()).await.is_err(),
            "the beat was not pushed back"
        );
        assert!(matches!(next(&mut s).await, Se::Heartbeat(_)));
        assert_eq!(sent.elapsed(), every);
        drop(s);
        t.finish().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_ends_when_its_agent_session_expires() {
        let t = TestCore::sqlite().await;
        let ttl = Duration::from_secs(120);
        let (_, token) = t.agent_session(ttl).await;
        let (mut s, _) = open(&t, &token, vec![], false).await;
        let opened = Instant::now();
        assert!(matches!(next(&mut s).await, Se::Ready(_)));
        // Until then it only beats (and re-checks its token every 30 s: still valid).
        let beats = opened + ttl - Duration::from_secs(5);
        let mut n = 0;
        loop {
            match timeout_at(beats, s.next()).await {
                Err(_) => break,
                Ok(Some(Ok(v1::ServerEvent {
                    event: Some(Se::Heartbeat(_)),
                }))) => n += 1,
                Ok(other) => panic!("at {:?}: {other:?}", opened.elapsed()),
            }
        }
        assert_eq!(n, 7, "a beat every 15 s");
        // The eighth beat is due at the expiry instant itself (both 120 s after opening, the
        // expiry a few wall-clock ms earlier at most), and `select!` picks either: one beat there
        // is fine, anything after the expiry is not.
        let mut late_beats = 0;
        loop {
            match timeout(WAIT, s.next()).await {
                Ok(Some(Err(CoreError::Unauthenticated(_)))) => break,
                Ok(Some(Ok(v1::ServerEvent {
                    event: Some(Se::Heartbeat(_)),
                }))) if late_beats == 0 && opened.elapsed() <= ttl => late_beats += 1,
                other => panic!("not ended at expiry: {other:?} at {:?}", opened.elapsed()),
            }
        }
        assert!(opened.elapsed() <= ttl, "ended at {:?}", opened.elapsed());
        assert!(s.next().await.is_none());
        drop(s);
        t.finish().await;
    }
}
