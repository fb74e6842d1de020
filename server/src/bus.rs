//! Cluster fan-out over Redis pub/sub, for several server nodes sharing one PostgreSQL.
//!
//! Every event a node's hub delivers is also published on one Redis channel; every node
//! delivers what other nodes published to its own streams. Redis pub/sub is at-most-once, so
//! messages are re-sequenced per conversation: a message whose seq is not the next one this
//! node knows makes it read the missing ones from the store first (no gap, no duplicate, in
//! order). When the Redis connection is lost and comes back, the node cannot know what it
//! missed: every local stream is told to resync (clients resume from their cursors, replayed
//! from the store). Presence is announced on the bus and refreshed every few seconds, so an
//! agent online on one node is online for every node's router, and a dead node's agents
//! expire.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use prost::Message as _;
use tokio::sync::{mpsc, watch};
use wsmschat::v1;
use wsmschat::v1::server_event::Event as Se;

use crate::core::Core;
use crate::core::hub::{Remote, Route};
use crate::util::new_id;

/// How often a node re-announces its online agents.
pub const PRESENCE_REFRESH: Duration = Duration::from_secs(5);
/// Messages re-read from the store when a conversation is first seen by this node.
const FIRST_SEEN_WINDOW: u64 = 32;
/// Conversations whose last seq is remembered before the map is reset.
const SEQ_MEMORY: usize = 200_000;

/// What travels on the bus.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Envelope {
    /// The node that published it.
    #[prost(string, tag = "1")]
    pub node: String,
    /// Routing (see `Route`).
    #[prost(string, tag = "2")]
    pub conversation_id: String,
    #[prost(string, tag = "3")]
    pub visitor_id: String,
    #[prost(bool, tag = "4")]
    pub staff_only: bool,
    /// Inbox streams only (presence).
    #[prost(bool, tag = "5")]
    pub inbox_only: bool,
    /// The event.
    #[prost(message, optional, tag = "6")]
    pub event: Option<v1::ServerEvent>,
    /// For presence: the agent's topics (empty = all), so other routers can use them.
    #[prost(string, repeated, tag = "7")]
    pub agent_topics: Vec<String>,
    /// For presence: a periodic refresh (not a change).
    #[prost(bool, tag = "8")]
    pub refresh: bool,
    /// A control message instead of an event (see `CONTROL_*`).
    #[prost(uint32, tag = "9")]
    pub control: u32,
    /// For `CONTROL_REVOKED_VISITOR`: the visitor.
    #[prost(string, tag = "10")]
    pub subject: String,
}

/// Tokens of agents or API keys lost rights: staff streams re-check them.
const CONTROL_REVOKED_STAFF: u32 = 1;
/// A visitor's token was revoked.
const CONTROL_REVOKED_VISITOR: u32 = 2;
/// Sites changed: reload the site cache (CORS, origins, topics).
const CONTROL_SITES: u32 = 3;
/// The sending node lost some of its publishes (Redis away, queue full): every other node
/// tells its streams to resync, which replays the gap from the store at once.
const CONTROL_RESYNC: u32 = 4;
/// Envelopes queued for Redis at most; past that they are dropped (and a resync announced).
const PUBLISH_QUEUE: usize = 10_000;

/// The bus handle: publishes, and knows this node's id.
pub struct RedisBus {
    /// Random id of this node (process).
    pub node: String,
    channel: String,
    client: redis::Client,
    /// Encoded envelopes for the publisher task (one task keeps this node's order).
    out: mpsc::Sender<Vec<u8>>,
    /// Some envelopes never reached Redis since the last announced resync.
    lost: Arc<std::sync::atomic::AtomicBool>,
}

impl RedisBus {
    /// Connects to Redis, starts the publisher and subscriber tasks, and plugs the bus into the
    /// core's hub. Stops when `shutdown` flips to true.
    pub async fn start(
        url: &str,
        namespace: &str,
        core: &Arc<Core>,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<Arc<Self>> {
        let client = redis::Client::open(url)?;
        // Fail fast on a wrong URL: the first connection must work.
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<()>(&mut conn).await?;
        let (out, rx) = mpsc::channel(PUBLISH_QUEUE);
        let bus = Arc::new(Self {
            node: new_id("n_"),
            channel: format!("{namespace}:events"),
            client: client.clone(),
            out,
            lost: Arc::default(),
        });
        tokio::spawn(publisher(
            client.clone(),
            bus.channel.clone(),
            bus.node.clone(),
            bus.lost.clone(),
            rx,
            shutdown.clone(),
        ));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(subscriber(
            bus.clone(),
            Arc::downgrade(core),
            shutdown.clone(),
            ready_tx,
        ));
        let _ = tokio::time::timeout(Duration::from_secs(5), ready_rx).await;
        tokio::spawn(presence_refresher(
            bus.clone(),
            Arc::downgrade(core),
            shutdown,
        ));
        core.hub.set_remote(bus.clone());
        tracing::info!(node = %bus.node, channel = %bus.channel, "Redis bus connected");
        Ok(bus)
    }

    fn send(&self, env: Envelope) {
        if self.out.try_send(env.encode_to_vec()).is_err() {
            // Redis is slow or away: memory stays bounded, and the other nodes resync.
            self.lost.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Tells the other nodes that tokens lost their rights.
    pub fn publish_revoked(&self, what: &crate::core::Revoked) {
        let (control, subject) = match what {
            crate::core::Revoked::Staff => (CONTROL_REVOKED_STAFF, String::new()),
            crate::core::Revoked::Visitor(id) => (CONTROL_REVOKED_VISITOR, id.clone()),
        };
        self.send(Envelope {
            node: self.node.clone(),
            control,
            subject,
            ..Default::default()
        });
    }

    /// Tells the other nodes to reload their sites.
    pub fn publish_sites_changed(&self) {
        self.send(Envelope {
            node: self.node.clone(),
            control: CONTROL_SITES,
            ..Default::default()
        });
    }

    /// Announces an agent's presence to the other nodes.
    pub fn publish_presence(&self, agent: &v1::Agent, status: v1::PresenceStatus, refresh: bool) {
        self.send(Envelope {
            node: self.node.clone(),
            inbox_only: true,
            event: Some(v1::ServerEvent {
                event: Some(Se::Presence(v1::PresenceChanged {
                    agent_id: agent.id.clone(),
                    agent_name: agent.name.clone(),
                    status: status as i32,
                })),
            }),
            agent_topics: agent.topics.clone(),
            refresh,
            ..Default::default()
        });
    }

    /// Redis answers (readiness).
    pub async fn ping(&self) -> anyhow::Result<()> {
        let mut conn = tokio::time::timeout(
            Duration::from_secs(2),
            self.client.get_multiplexed_async_connection(),
        )
        .await??;
        redis::cmd("PING").query_async::<()>(&mut conn).await?;
        Ok(())
    }
}

impl Remote for RedisBus {
    fn publish(&self, route: Option<Route<'_>>, event: &v1::ServerEvent) {
        let mut env = Envelope {
            node: self.node.clone(),
            event: Some(event.clone()),
            ..Default::default()
        };
        match route {
            Some(r) => {
                env.conversation_id = r.conversation_id.to_owned();
                env.visitor_id = r.visitor_id.to_owned();
                env.staff_only = r.staff_only;
            }
            None => env.inbox_only = true,
        }
        self.send(env);
    }
}

/// Publishes this node's envelopes in order; reconnects after errors. What cannot be sent
/// while Redis is away is dropped, not hoarded (a stale backlog is worth nothing), and the
/// first pipeline after the loss tells the other nodes to resync, so they recover the gap at
/// once instead of at that conversation's next message.
async fn publisher(
    client: redis::Client,
    channel: String,
    node: String,
    lost: Arc<std::sync::atomic::AtomicBool>,
    mut rx: mpsc::Receiver<Vec<u8>>,
    mut shutdown: watch::Receiver<bool>,
) {
    use std::sync::atomic::Ordering;
    let mut conn = None;
    let mut backoff = Duration::from_millis(100);
    let resync = Envelope {
        node,
        control: CONTROL_RESYNC,
        ..Default::default()
    }
    .encode_to_vec();
    let drop_queued = |rx: &mut mpsc::Receiver<Vec<u8>>| {
        while rx.try_recv().is_ok() {}
        lost.store(true, Ordering::Relaxed);
    };
    loop {
        // After a loss the resync notice goes out at once, not with the next event.
        let payload = if lost.load(Ordering::Relaxed) {
            None
        } else {
            tokio::select! {
                p = rx.recv() => match p { Some(p) => Some(p), None => return },
                _ = shutdown.changed() => return,
            }
        };
        if conn.is_none() {
            match client.get_multiplexed_async_connection().await {
                Ok(c) => {
                    conn = Some(c);
                    backoff = Duration::from_millis(100);
                }
                Err(error) => {
                    tracing::warn!(%error, "Redis publish connection failed; dropping events");
                    drop_queued(&mut rx);
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            }
        }
        // Send everything queued in one pipeline, after a resync notice if events were lost.
        let mut pipe = redis::pipe();
        let announced = lost.swap(false, Ordering::Relaxed);
        if announced {
            pipe.cmd("PUBLISH").arg(&channel).arg(&resync).ignore();
        }
        if let Some(payload) = payload {
            pipe.cmd("PUBLISH").arg(&channel).arg(payload).ignore();
        }
        while let Ok(more) = rx.try_recv() {
            pipe.cmd("PUBLISH").arg(&channel).arg(more).ignore();
        }
        let c = conn.as_mut().expect("connected above");
        if let Err(error) = pipe.query_async::<()>(c).await {
            tracing::warn!(%error, "Redis publish failed; reconnecting");
            conn = None;
            drop_queued(&mut rx);
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }
}

/// Receives every node's envelopes and delivers the other nodes' ones locally.
async fn subscriber(
    bus: Arc<RedisBus>,
    core: Weak<Core>,
    mut shutdown: watch::Receiver<bool>,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let mut connected_before = false;
    let mut backoff = Duration::from_millis(100);
    loop {
        let pubsub = async {
            let mut p = bus.client.get_async_pubsub().await?;
            p.subscribe(&bus.channel).await?;
            Ok::<_, redis::RedisError>(p)
        };
        let pubsub = tokio::select! {
            p = pubsub => p,
            _ = shutdown.changed() => return,
        };
        let pubsub = match pubsub {
            Ok(p) => p,
            Err(error) => {
                tracing::warn!(%error, "Redis subscribe failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        let Some(c) = core.upgrade() else { return };
        if connected_before {
            // Whatever was published while we were away is lost to us: streams resume from
            // the store.
            tracing::warn!("Redis bus reconnected; asking local streams to resync");
            c.hub.resync_all();
        }
        drop(c);
        connected_before = true;
        if let Some(r) = ready.take() {
            let _ = r.send(());
        }
        let mut seq = Sequencer::default();
        let mut messages = pubsub.into_on_message();
        loop {
            let msg = tokio::select! {
                m = messages.next() => m,
                _ = shutdown.changed() => return,
            };
            let Some(msg) = msg else {
                tracing::warn!("Redis bus connection lost");
                break;
            };
            let Ok(payload) = msg.get_payload::<Vec<u8>>() else {
                continue;
            };
            let Ok(env) = Envelope::decode(payload.as_slice()) else {
                tracing::warn!("Undecodable bus envelope");
                continue;
            };
            let Some(core) = core.upgrade() else { return };
            seq.handle(&core, &bus.node, env).await;
        }
    }
}

/// Per-conversation order of messages received from the bus.
#[derive(Default)]
struct Sequencer {
    last: HashMap<String, u64>,
}

impl Sequencer {
    async fn handle(&mut self, core: &Arc<Core>, me: &str, env: Envelope) {
        if env.control != 0 {
            if env.node != me {
                match env.control {
                    CONTROL_REVOKED_STAFF => core.revoke_local(crate::core::Revoked::Staff),
                    CONTROL_REVOKED_VISITOR => {
                        core.revoke_local(crate::core::Revoked::Visitor(env.subject))
                    }
                    CONTROL_RESYNC => {
                        tracing::warn!(node = %env.node, "A node lost bus publishes; resyncing streams");
                        core.hub.resync_all();
                    }
                    CONTROL_SITES => {
                        if let Err(error) = core.reload_sites().await {
                            tracing::warn!(%error, "Could not reload sites");
                        }
                    }
                    other => tracing::debug!(control = other, "Unknown bus control message"),
                }
            }
            return;
        }
        let Some(event) = env.event else { return };
        let own = env.node == me;
        if env.inbox_only {
            if let Some(Se::Presence(p)) = &event.event {
                if own {
                    return;
                }
                let status = v1::PresenceStatus::try_from(p.status).unwrap_or_default();
                let changed = core.presence.set_remote(
                    &env.node,
                    &p.agent_id,
                    status,
                    env.agent_topics.clone(),
                );
                if changed && !env.refresh {
                    core.hub.deliver_inbox_local(Arc::new(event));
                }
                if changed && status == v1::PresenceStatus::Online {
                    // A router here may now assign queued work to that agent: the agent's own
                    // node drains too; draining twice is harmless (assignment is locked).
                    let topics = if env.agent_topics.is_empty() {
                        core.all_topics().await
                    } else {
                        env.agent_topics
                    };
                    core.drain(topics).await;
                }
            } else if !own {
                core.hub.deliver_inbox_local(Arc::new(event));
            }
            return;
        }
        let route_of = |staff_only: bool| Route {
            conversation_id: &env.conversation_id,
            visitor_id: &env.visitor_id,
            staff_only,
        };
        let Some(Se::Message(m)) = &event.event else {
            if !own {
                core.hub
                    .deliver_local(route_of(env.staff_only), Arc::new(event));
            }
            return;
        };
        if self.last.len() >= SEQ_MEMORY {
            self.last.clear();
        }
        let last = self.last.get(&m.conversation_id).copied();
        if own {
            // Already delivered locally at commit; just remember where the conversation is.
            let l = self.last.entry(m.conversation_id.clone()).or_insert(0);
            *l = (*l).max(m.seq);
            return;
        }
        match last {
            Some(l) if m.seq <= l => {}
            Some(l) if m.seq == l + 1 => {
                self.last.insert(m.conversation_id.clone(), m.seq);
                core.hub
                    .deliver_local(route_of(env.staff_only), Arc::new(event.clone()));
            }
            _ => {
                // A gap (or a conversation new to this node): read what is missing from the
                // store, in order. Streams drop anything they already have.
                let after = match last {
                    Some(l) => l,
                    None => m.seq.saturating_sub(FIRST_SEEN_WINDOW),
                };
                match core
                    .store
                    .messages_after(&m.conversation_id, after, 10_000, true)
                    .await
                {
                    Ok(missing) => {
                        let mut top = after;
                        for mm in missing {
                            top = top.max(mm.seq);
                            let staff_only = mm.kind == v1::MessageKind::Note as i32;
                            core.hub.deliver_local(
                                route_of(staff_only),
                                Arc::new(v1::ServerEvent {
                                    event: Some(Se::Message(mm)),
                                }),
                            );
                        }
                        self.last.insert(m.conversation_id.clone(), top.max(m.seq));
                        if top < m.seq {
                            // Not yet visible to our reader (replica lag): deliver as received.
                            core.hub
                                .deliver_local(route_of(env.staff_only), Arc::new(event.clone()));
                        }
                    }
                    Err(error) => {
                        tracing::error!(%error, "Gap recovery failed; asking streams to resync");
                        core.hub.resync_all();
                        self.last.clear();
                    }
                }
            }
        }
    }
}

/// Re-announces this node's online agents so other nodes keep them (and forget dead nodes').
async fn presence_refresher(
    bus: Arc<RedisBus>,
    core: Weak<Core>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(PRESENCE_REFRESH);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let Some(core) = core.upgrade() else { return };
        for (agent, status) in core.presence.local_connected() {
            bus.publish_presence(&agent, status, true);
        }
    }
}
