//! The cluster, as the core sees it: several server nodes sharing one database, with a
//! transport ([`crate::bus`], Redis pub/sub) below for what must reach every node at once.
//!
//! Every event a node's hub delivers is also published (the hub's [`Remote`] seam); every
//! node delivers what the other nodes published to its own streams. The transport is
//! at-most-once, so messages are re-sequenced per conversation ([`Sequencer`]): a message whose
//! seq is not the next one this node knows makes it read the missing ones from the store first
//! (no gap, no duplicate, in order). When the connection is lost and comes back, the node cannot
//! know what it missed: every local stream is told to resync (clients resume from their
//! cursors, replayed from the store). Presence is announced and refreshed every few seconds,
//! so an agent online on one node is online for every node's router, and a dead node's agents
//! expire. Revocations and site changes travel as control envelopes.
//!
//! The wire format is `wsmschat.cluster.v1.Envelope` (`proto/wsmschat/cluster/v1/`).

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use prost::Message as _;
use tokio::sync::watch;
use wsmschat::cluster::v1::Control;
use wsmschat::v1;
use wsmschat::v1::server_event::Event as Se;

pub use wsmschat::cluster::v1::Envelope;

use super::hub::{Remote, Route};
use super::{Core, Revoked};
use crate::bus::{Inbound, RedisTransport};
use crate::util::new_id;

/// How often a node re-announces its online agents.
pub const PRESENCE_REFRESH: Duration = Duration::from_secs(5);
/// Messages re-read from the store when a conversation is first seen by this node.
const FIRST_SEEN_WINDOW: u64 = 32;
/// Conversations whose last seq is remembered before the map is reset.
const SEQ_MEMORY: usize = 200_000;
/// Messages read at most to fill one gap.
const GAP_READ_LIMIT: u32 = 10_000;

/// This node's membership: its id and the transport.
pub struct Cluster {
    /// Random id of this node (process).
    node: String,
    transport: Arc<RedisTransport>,
}

impl Core {
    /// Joins the cluster on Redis at `url`: connects, plugs the cluster into the hub, and
    /// starts receiving and the presence refresher. Stops at shutdown.
    pub async fn join_cluster(self: &Arc<Self>, url: &str, namespace: &str) -> anyhow::Result<()> {
        let node = new_id("n_");
        let loss_notice = Envelope {
            node: node.clone(),
            control: Control::Resync as i32,
            ..Default::default()
        }
        .encode_to_vec();
        let transport =
            RedisTransport::connect(url, namespace, loss_notice, self.stopping.subscribe()).await?;
        let cluster = Arc::new(Cluster {
            node: node.clone(),
            transport: transport.clone(),
        });
        transport
            .subscribe(
                Receiver {
                    core: Arc::downgrade(self),
                    node: node.clone(),
                    seq: Sequencer::default(),
                },
                self.stopping.subscribe(),
            )
            .await;
        tokio::spawn(presence_refresher(
            cluster.clone(),
            Arc::downgrade(self),
            self.stopping.subscribe(),
        ));
        self.hub.set_remote(cluster.clone());
        let _ = self.cluster.set(cluster);
        tracing::info!(%node, channel = %transport.channel(), "Joined the cluster (Redis bus connected)");
        Ok(())
    }
}

impl Cluster {
    fn send(&self, env: Envelope) {
        self.transport.publish(env.encode_to_vec());
    }

    fn control(&self, control: Control, subject: String) {
        self.send(Envelope {
            node: self.node.clone(),
            control: control as i32,
            subject,
            ..Default::default()
        });
    }

    /// Tells the other nodes that tokens lost their rights.
    pub fn publish_revoked(&self, what: &Revoked) {
        match what {
            Revoked::Staff => self.control(Control::RevokedStaff, String::new()),
            Revoked::Visitor(id) => self.control(Control::RevokedVisitor, id.clone()),
        }
    }

    /// Tells the other nodes to reload their sites.
    pub fn publish_sites_changed(&self) {
        self.control(Control::Sites, String::new());
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

    /// The transport answers (readiness).
    pub async fn ping(&self) -> anyhow::Result<()> {
        self.transport.ping().await
    }
}

impl Remote for Cluster {
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

/// What the transport's subscriber hands envelopes to.
struct Receiver {
    core: Weak<Core>,
    node: String,
    seq: Sequencer,
}

impl Inbound for Receiver {
    async fn connected(&mut self, again: bool) {
        // A fresh subscription knows nothing of where conversations are.
        self.seq = Sequencer::default();
        if again {
            // Whatever was published while we were away is lost to us: streams resume from
            // the store.
            tracing::warn!("Redis bus reconnected; asking local streams to resync");
            if let Some(core) = self.core.upgrade() {
                core.hub.resync_all();
                if let Err(error) = core.reconcile_queue().await {
                    tracing::warn!(%error, "Cannot reload the queue index");
                }
            }
        }
    }

    async fn received(&mut self, payload: Vec<u8>) {
        let Ok(env) = Envelope::decode(payload.as_slice()) else {
            tracing::warn!("Undecodable bus envelope");
            return;
        };
        let Some(core) = self.core.upgrade() else {
            return;
        };
        handle(&core, &self.node, &mut self.seq, env).await;
    }
}

/// What to do with a message received from the bus, given what this node has seen of its
/// conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Already delivered (this node's own, or an old or repeated seq).
    Skip,
    /// The next seq: deliver it.
    Deliver,
    /// A gap, or a conversation new to this node: read the messages after `after` from the
    /// store first, in order, then deliver (streams drop what they already have).
    Fill { after: u64 },
}

/// Per-conversation order of messages received from the bus.
#[derive(Default)]
struct Sequencer {
    last: HashMap<String, u64>,
}

impl Sequencer {
    /// Decides for message `seq` of `conversation_id`; `own`: published by this node, which
    /// delivered it locally at commit already.
    fn next(&mut self, conversation_id: &str, seq: u64, own: bool) -> Next {
        if self.last.len() >= SEQ_MEMORY {
            self.last.clear();
        }
        if own {
            let l = self.last.entry(conversation_id.to_owned()).or_insert(0);
            *l = (*l).max(seq);
            return Next::Skip;
        }
        match self.last.get(conversation_id).copied() {
            Some(l) if seq <= l => Next::Skip,
            Some(l) if seq == l + 1 => {
                self.last.insert(conversation_id.to_owned(), seq);
                Next::Deliver
            }
            Some(l) => Next::Fill { after: l },
            None => Next::Fill {
                after: seq.saturating_sub(FIRST_SEEN_WINDOW),
            },
        }
    }

    /// After a fill: the conversation is known up to `top`.
    fn filled(&mut self, conversation_id: &str, top: u64) {
        self.last.insert(conversation_id.to_owned(), top);
    }

    /// Forget everything (a failed fill: streams resync from the store).
    fn reset(&mut self) {
        self.last.clear();
    }
}

/// Handles one envelope from the bus.
async fn handle(core: &Arc<Core>, me: &str, seq: &mut Sequencer, env: Envelope) {
    let own = env.node == me;
    if env.control != Control::Unspecified as i32 {
        if !own {
            match Control::try_from(env.control) {
                Ok(Control::RevokedStaff) => core.revoke_local(Revoked::Staff),
                Ok(Control::RevokedVisitor) => core.revoke_local(Revoked::Visitor(env.subject)),
                Ok(Control::Resync) => {
                    tracing::warn!(node = %env.node, "A node lost bus publishes; resyncing streams");
                    core.hub.resync_all();
                    // Queue changes may have been lost too.
                    if let Err(error) = core.reconcile_queue().await {
                        tracing::warn!(%error, "Cannot reload the queue index");
                    }
                }
                Ok(Control::Sites) => {
                    if let Err(error) = core.reload_sites().await {
                        tracing::warn!(%error, "Could not reload sites");
                    }
                }
                _ => tracing::debug!(control = env.control, "Unknown bus control message"),
            }
        }
        return;
    }
    let Some(event) = env.event else { return };
    if env.inbox_only {
        if let Some(Se::Presence(p)) = &event.event {
            if !own {
                remote_presence(core, &env.node, p, env.agent_topics, env.refresh, &event).await;
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
            if let Some(Se::Conversation(c)) = &event.event {
                // Another node's change: this node's queue index follows it, and notes what
                // position this node's visitors are now told.
                core.queue.observe(c);
                core.queue.told(&c.id, c.queue_position);
            }
            core.hub
                .deliver_local(route_of(env.staff_only), Arc::new(event));
        }
        return;
    };
    match seq.next(&m.conversation_id, m.seq, own) {
        Next::Skip => {}
        Next::Deliver => core
            .hub
            .deliver_local(route_of(env.staff_only), Arc::new(event.clone())),
        Next::Fill { after } => {
            match core
                .store
                .messages_after(&m.conversation_id, after, GAP_READ_LIMIT, true)
                .await
            {
                Ok(missing) => {
                    let mut top = after;
                    for mut mm in missing {
                        top = top.max(mm.seq);
                        core.sign(&mut mm);
                        let staff_only = mm.kind == v1::MessageKind::Note as i32;
                        core.hub.deliver_local(
                            route_of(staff_only),
                            Arc::new(v1::ServerEvent {
                                event: Some(Se::Message(mm)),
                            }),
                        );
                    }
                    seq.filled(&m.conversation_id, top.max(m.seq));
                    if top < m.seq {
                        // Not yet visible to our reader (replica lag): deliver as received.
                        core.hub
                            .deliver_local(route_of(env.staff_only), Arc::new(event.clone()));
                    }
                }
                Err(error) => {
                    tracing::error!(%error, conversation = %m.conversation_id, "Gap recovery failed; asking streams to resync");
                    core.hub.resync_all();
                    seq.reset();
                }
            }
        }
    }
}

/// An agent's presence on another node: merged into ours; a change is told to the inbox, and
/// an agent coming online may take queued work here (its own node drains too; draining twice is
/// harmless, assignment is locked).
async fn remote_presence(
    core: &Arc<Core>,
    node: &str,
    p: &v1::PresenceChanged,
    agent_topics: Vec<String>,
    refresh: bool,
    event: &v1::ServerEvent,
) {
    let status = v1::PresenceStatus::try_from(p.status).unwrap_or_default();
    let changed = core
        .presence
        .set_remote(node, &p.agent_id, status, agent_topics.clone());
    if changed && !refresh {
        core.hub.deliver_inbox_local(Arc::new(event.clone()));
    }
    if changed && status == v1::PresenceStatus::Online {
        let topics = if agent_topics.is_empty() {
            core.all_topics().await
        } else {
            agent_topics
        };
        core.drain(topics);
    }
}

/// Re-announces this node's online agents so other nodes keep them (and forget dead nodes').
async fn presence_refresher(
    cluster: Arc<Cluster>,
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
            cluster.publish_presence(&agent, status, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use wsmschat::v1;
    use wsmschat::v1::server_event::Event as Se;

    use super::{Envelope, FIRST_SEEN_WINDOW, Next, SEQ_MEMORY, Sequencer, handle};
    use crate::core::hub::{Outbound, Registration, Subscription};
    use crate::core::testkit::TestCore;

    #[test]
    fn the_sequencer_delivers_in_order_and_fills_gaps() {
        let mut s = Sequencer::default();
        // A conversation new to this node: read the recent window first.
        assert_eq!(
            s.next("c", 40, false),
            Next::Fill {
                after: 40 - FIRST_SEEN_WINDOW
            }
        );
        assert_eq!(s.next("young", 3, false), Next::Fill { after: 0 });
        s.filled("c", 40);
        assert_eq!(s.next("c", 41, false), Next::Deliver);
        // Repeats and old seqs are dropped.
        assert_eq!(s.next("c", 41, false), Next::Skip);
        assert_eq!(s.next("c", 12, false), Next::Skip);
        // A lost publish: 42 never came, 43 makes the node read after 41.
        assert_eq!(s.next("c", 43, false), Next::Fill { after: 41 });
        s.filled("c", 43);
        assert_eq!(s.next("c", 44, false), Next::Deliver);
    }

    #[test]
    fn own_messages_are_remembered_not_redelivered() {
        let mut s = Sequencer::default();
        assert_eq!(s.next("c", 7, true), Next::Skip);
        assert_eq!(s.next("c", 5, true), Next::Skip);
        // Another node's next message follows ours without a store read.
        assert_eq!(s.next("c", 8, false), Next::Deliver);
        s.reset();
        assert_eq!(s.next("c", 9, false), Next::Fill { after: 0 });
    }

    #[test]
    fn repeats_and_late_copies_are_skipped() {
        let mut s = Sequencer::default();
        s.filled("c", 5);
        assert_eq!(s.next("c", 6, false), Next::Deliver);
        // The same publish twice, or an old one late: never delivered again.
        for seq in [6, 6, 5, 1] {
            assert_eq!(s.next("c", seq, false), Next::Skip, "seq {seq}");
        }
        // An echo of our own older message moves nothing back.
        assert_eq!(s.next("c", 3, true), Next::Skip);
        assert_eq!(s.next("c", 7, false), Next::Deliver);
    }

    #[test]
    fn arrivals_beyond_a_gap_ask_for_the_same_fill_until_one_is_done() {
        let mut s = Sequencer::default();
        s.filled("c", 10);
        // 11 was lost; 13 then 12 arrive: each asks to read after 10 (nothing moves before a
        // fill).
        assert_eq!(s.next("c", 13, false), Next::Fill { after: 10 });
        assert_eq!(s.next("c", 12, false), Next::Fill { after: 10 });
        // The fill read up to 13: 11 and 12 arriving late are old news, 14 is next.
        s.filled("c", 13);
        assert_eq!(s.next("c", 11, false), Next::Skip);
        assert_eq!(s.next("c", 12, false), Next::Skip);
        assert_eq!(s.next("c", 14, false), Next::Deliver);
        // Our own messages (delivered here at commit) need no fill, even past a gap.
        assert_eq!(s.next("c", 20, true), Next::Skip);
        assert_eq!(s.next("c", 21, false), Next::Deliver);
        // Conversations are sequenced apart.
        assert_eq!(s.next("d", 2, false), Next::Fill { after: 0 });
        assert_eq!(s.next("c", 22, false), Next::Deliver);
    }

    #[test]
    fn a_full_memory_starts_over_from_the_store() {
        let mut s = Sequencer::default();
        for i in 0..SEQ_MEMORY {
            s.filled(&format!("c{i}"), 100);
        }
        // Everything was forgotten: the next message re-reads its conversation's recent window.
        assert_eq!(
            s.next("c0", 101, false),
            Next::Fill {
                after: 101 - FIRST_SEEN_WINDOW
            }
        );
        // Another conversation known before is new again too (until a fill).
        assert_eq!(
            s.next("c1", 101, false),
            Next::Fill {
                after: 101 - FIRST_SEEN_WINDOW
            }
        );
        s.filled("c0", 101);
        assert_eq!(s.next("c0", 102, false), Next::Deliver);
    }

    /// The texts of the messages waiting in a subscription's queue.
    fn texts(sub: &mut Subscription) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(Outbound::Event(ev)) = sub.rx.try_recv() {
            if let Some(Se::Message(m)) = &ev.event {
                out.push(m.text.clone());
            }
        }
        out
    }

    #[tokio::test]
    async fn a_gap_is_filled_from_the_store_in_order_and_notes_stay_with_staff() {
        let t = TestCore::any().await;
        let (visitor_id, visitor) = t.visitor().await;
        let bot = t.service_key(vec![]).await;
        let conv = t.send(&visitor, "", "1").await.conversation_id;
        t.send(&visitor, &conv, "2").await;
        t.send(&visitor, &conv, "3").await;
        t.send_note(&bot, &conv, "4 (note)").await;
        t.send(&visitor, &conv, "5").await;
        // This node's streams: staff following the conversation, and the visitor's.
        let mut staff = t
            .core
            .hub
            .register(Registration {
                visitor_view: false,
                visitor_id: None,
                inbox: false,
                conversations: vec![conv.clone()],
            })
            .unwrap();
        let mut own = t
            .core
            .hub
            .register(Registration {
                visitor_view: true,
                visitor_id: Some(visitor_id.clone()),
                inbox: false,
                conversations: vec![],
            })
            .unwrap();
        let envelope = |node: &str, seq: u64| Envelope {
            node: node.into(),
            conversation_id: conv.clone(),
            visitor_id: visitor_id.clone(),
            event: Some(v1::ServerEvent {
                event: Some(Se::Message(v1::Message {
                    conversation_id: conv.clone(),
                    seq,
                    text: format!("{seq} (bus)"),
                    ..Default::default()
                })),
            }),
            ..Default::default()
        };
        let core: &Arc<_> = &t.core;
        let mut seq = Sequencer::default();
        // This node has delivered up to 2; 3 and 4 were lost on the bus; 5 arrives: 3, 4 and
        // 5 are read from the store and delivered in order (the bus copy of 5 is not).
        seq.filled(&conv, 2);
        handle(core, "me", &mut seq, envelope("n2", 5)).await;
        assert_eq!(texts(&mut staff), ["3", "4 (note)", "5"]);
        assert_eq!(texts(&mut own), ["3", "5"], "the note is staff only");
        // A repeat of 5 and an echo of our own 6: nothing. 7 follows at once, from the bus.
        handle(core, "me", &mut seq, envelope("n2", 5)).await;
        handle(core, "me", &mut seq, envelope("me", 6)).await;
        assert!(texts(&mut staff).is_empty());
        handle(core, "me", &mut seq, envelope("n2", 7)).await;
        assert_eq!(texts(&mut staff), ["7 (bus)"]);
        // 9 after a lost 8 that the store does not have yet (replica lag): read, then
        // delivered as received.
        handle(core, "me", &mut seq, envelope("n2", 9)).await;
        assert_eq!(texts(&mut staff), ["9 (bus)"]);
        assert_eq!(texts(&mut own), ["7 (bus)", "9 (bus)"]);

        // A node that never saw the conversation reads its recent window first.
        let mut fresh = Sequencer::default();
        handle(core, "me", &mut fresh, envelope("n2", 5)).await;
        assert_eq!(texts(&mut staff), ["1", "2", "3", "4 (note)", "5"]);
        handle(core, "me", &mut fresh, envelope("n2", 6)).await;
        assert_eq!(texts(&mut staff), ["6 (bus)"]);
        drop((staff, own));
        t.finish().await;
    }
}
