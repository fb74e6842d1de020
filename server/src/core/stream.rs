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
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use wsmschat::v1;
use wsmschat::v1::server_event::Event as Se;

use super::Core;
use super::hub::{Outbound, Registration, Subscription};
use crate::auth::Principal;
use crate::error::{CoreError, CoreResult};

/// Messages read from the store per replay page.
const REPLAY_PAGE: u32 = 500;

/// A boxed stream of server events.
pub type EventStream = Pin<Box<dyn Stream<Item = v1::ServerEvent> + Send>>;

struct State {
    core: Arc<Core>,
    principal: Principal,
    sub: Subscription,
    /// Events ready to send, in order.
    pending: VecDeque<v1::ServerEvent>,
    /// Conversations still to replay.
    to_replay: Vec<v1::ConversationCursor>,
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
    /// The key counted in the per-token stream limit.
    counted_as: String,
    /// The stream ended (queue closed or resync sent).
    done: bool,
}

impl Drop for State {
    fn drop(&mut self) {
        self.core.metrics.streams.dec();
        self.core.streams.release(&self.counted_as);
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
    /// Opens a stream for `principal`. `acks` carries a Chat stream's answers to its own events.
    /// Returns the stream and its hub id (for `watch`).
    pub async fn open_stream(
        self: &Arc<Self>,
        principal: Principal,
        subscription: v1::Subscription,
        acks: Option<mpsc::Receiver<v1::ServerEvent>>,
    ) -> CoreResult<(EventStream, u64)> {
        let key = principal.author_key();
        if !self.streams.acquire(&key) {
            return Err(CoreError::ResourceExhausted(format!(
                "too many open streams for this token (at most {})",
                self.config.streams_per_token
            )));
        }
        let (visitor_view, visitor_id, inbox) = match &principal {
            Principal::Visitor { visitor_id, .. } => (true, Some(visitor_id.clone()), false),
            p if p.is_staff() => (false, None, subscription.inbox),
            _ => {
                self.streams.release(&key);
                return Err(CoreError::PermissionDenied(
                    "this API key has no chat scope".into(),
                ));
            }
        };
        let mut cursors = Vec::new();
        for c in subscription.cursors {
            // Only conversations the caller may see; others are refused, not ignored.
            if let Err(e) = self
                .visible_conversation(&principal, &c.conversation_id)
                .await
            {
                self.streams.release(&key);
                return Err(e);
            }
            cursors.push(c);
        }
        let reg = Registration {
            visitor_view,
            visitor_id,
            inbox,
            conversations: cursors.iter().map(|c| c.conversation_id.clone()).collect(),
        };
        let Some(sub) = self.hub.register(reg) else {
            self.streams.release(&key);
            return Err(CoreError::Unavailable("server is shutting down".into()));
        };
        self.metrics.streams.inc();
        let id = sub.id;
        let mut heartbeat = tokio::time::interval_at(
            Instant::now() + self.config.heartbeat,
            self.config.heartbeat,
        );
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let state = State {
            core: self.clone(),
            pending: VecDeque::from([self.ready_event(id)]),
            waiting: cursors.iter().map(|c| c.conversation_id.clone()).collect(),
            to_replay: cursors,
            last_seq: HashMap::new(),
            first_live: HashMap::new(),
            replayed: HashSet::new(),
            wide: visitor_view || inbox,
            visitor_view,
            heartbeat,
            acks,
            counted_as: key,
            done: false,
            sub,
            principal: principal.clone(),
        };
        if let Principal::Agent { agent } = &principal {
            if let Some(status) = self.presence.stream_opened(agent) {
                self.presence_changed(agent, status).await;
            }
        }
        let stream = futures_util::stream::unfold(state, |mut st| async move {
            let ev = st.next_event().await?;
            Some((ev, st))
        });
        Ok((Box::pin(stream), id))
    }
}

impl State {
    async fn next_event(&mut self) -> Option<v1::ServerEvent> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                self.heartbeat.reset();
                if matches!(ev.event, Some(Se::Message(_))) {
                    self.core.metrics.messages_out.inc();
                }
                return Some(ev);
            }
            if self.done {
                return None;
            }
            if self.sub.flags.lagged.load(Ordering::Relaxed) {
                self.done = true;
                self.pending.push_back(v1::ServerEvent {
                    event: Some(Se::ResyncRequired(v1::ResyncRequired {
                        reason: "this stream fell too far behind; reconnect with your cursors"
                            .into(),
                    })),
                });
                continue;
            }
            if let Some(cursor) = self.to_replay.pop() {
                if let Err(error) = self.replay(cursor).await {
                    tracing::warn!(%error, "Replay failed; asking the client to resync");
                    self.sub.flags.lagged.store(true, Ordering::Relaxed);
                }
                continue;
            }
            tokio::select! {
                biased;
                out = self.sub.rx.recv() => match out {
                    Some(Outbound::Event(ev)) => self.accept(&ev),
                    Some(Outbound::Watch(cursor)) => {
                        if !self.replayed.contains(&cursor.conversation_id) {
                            self.waiting.insert(cursor.conversation_id.clone());
                            self.to_replay.push(*cursor);
                        }
                    }
                    // Dropped by the hub: lagged (handled above) or shutdown (end cleanly).
                    None => {
                        if !self.sub.flags.lagged.load(Ordering::Relaxed) {
                            self.done = true;
                        }
                    }
                },
                ack = async { self.acks.as_mut()?.recv().await }, if self.acks.is_some() => match ack {
                    Some(ev) => self.pending.push_back(ev),
                    None => self.acks = None,
                },
                _ = self.heartbeat.tick() => return Some(Core::heartbeat_event()),
            }
        }
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
            Some(Se::Conversation(c)) => Some(&c.id),
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

    /// Replays a conversation after its cursor, page by page. On a wide stream that already
    /// sent live messages of it (seqs `first_live..=last_seq`, gapless since the stream opened),
    /// only the messages before those are sent: they follow the newer live ones, so a client of
    /// such a watch orders by seq.
    async fn replay(&mut self, cursor: v1::ConversationCursor) -> CoreResult<()> {
        let id = cursor.conversation_id;
        let last = self.last_seq.get(&id).copied().unwrap_or(0);
        let sent = self.first_live.remove(&id).map(|first| first..=last);
        let mut after = match &sent {
            Some(_) => cursor.after_seq,
            None => cursor.after_seq.max(last),
        };
        loop {
            let page = self
                .core
                .store
                .messages_after(&id, after, REPLAY_PAGE, !self.visitor_view)
                .await?;
            let full = page.len() == REPLAY_PAGE as usize;
            for m in page {
                after = m.seq;
                if sent.as_ref().is_some_and(|s| s.contains(&m.seq)) {
                    continue;
                }
                self.pending.push_back(v1::ServerEvent {
                    event: Some(Se::Message(m)),
                });
            }
            if !full {
                break;
            }
        }
        self.last_seq.insert(id.clone(), after.max(last));
        self.waiting.remove(&id);
        self.replayed.insert(id);
        Ok(())
    }
}
