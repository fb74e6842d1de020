//! In-process fan-out: which open streams get which event.
//!
//! A stream registers once and is reached three ways: by conversation (streams that watch it),
//! by visitor (a visitor's streams follow all of their conversations) and by the inbox (agents'
//! streams that follow everything). Delivery never waits: each stream has a bounded queue, and a
//! stream whose queue is full is dropped from the hub and marked lagged, so it tells its client
//! to resync (one slow reader never blocks the others, and is never silently skipped).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use tokio::sync::mpsc;
use wsmschat::v1;

use crate::metrics::Metrics;
use crate::store::{CommitSink, Committed};

/// Events queued per stream before it counts as lagging.
pub const STREAM_QUEUE: usize = 256;
/// The same for a staff inbox stream, which sees every event of its sites and, while it
/// coalesces writes, leaves its queue unread for up to 20 ms (`core/stream.rs`): 100,000 events
/// per second for 20 ms. tokio's channel allocates slots in blocks of 32 as they fill, so an
/// idle stream costs no more than with the small queue.
pub const INBOX_STREAM_QUEUE: usize = 2048;

/// What the hub puts in a stream's queue.
#[derive(Debug)]
pub enum Outbound {
    /// An event to send as is (after the stream's own filtering).
    Event(Arc<v1::ServerEvent>),
    /// Start following a conversation: replay after the cursor, then live. Boxed: the queue's
    /// slots are allocated up front at the size of the largest variant.
    Watch(Box<v1::ConversationCursor>),
}

/// Where an event goes.
#[derive(Debug, Clone, Copy)]
pub struct Route<'a> {
    /// Its conversation.
    pub conversation_id: &'a str,
    /// That conversation's visitor.
    pub visitor_id: &'a str,
    /// Agents only (private notes): never to visitor streams.
    pub staff_only: bool,
}

/// Flags a stream shares with the hub.
#[derive(Debug, Default)]
pub struct StreamFlags {
    /// Set when the hub dropped the stream because its queue was full.
    pub lagged: AtomicBool,
}

struct Entry {
    /// The stream's queue.
    tx: mpsc::Sender<Outbound>,
    /// A visitor's stream: never gets notes.
    visitor_view: bool,
    /// Shared with the stream.
    flags: Arc<StreamFlags>,
    /// Conversations this stream watches explicitly (to unindex on removal).
    conversations: Vec<String>,
    /// The visitor this stream follows.
    visitor_id: Option<String>,
    /// Follows the inbox.
    inbox: bool,
}

#[derive(Default)]
struct Index {
    entries: HashMap<u64, Entry>,
    by_conversation: HashMap<String, Vec<u64>>,
    by_visitor: HashMap<String, Vec<u64>>,
    inbox: Vec<u64>,
    /// Set by shutdown: no new streams.
    closed: bool,
}

/// Where events also go beyond this process (the Redis bus, when clustered).
pub trait Remote: Send + Sync {
    /// Publishes an event for the other nodes; `None` route: inbox streams only.
    fn publish(&self, route: Option<Route<'_>>, event: &v1::ServerEvent);
}

/// The fan-out hub. Shared by all streams; also the store's [`CommitSink`].
pub struct Hub {
    index: RwLock<Index>,
    next_id: AtomicU64,
    metrics: Arc<Metrics>,
    /// Other nodes, when clustered.
    remote: OnceLock<Arc<dyn Remote>>,
    /// Signs the file links of committed messages once, for every receiver.
    pub signer: Arc<crate::files::Signer>,
    /// Woken when a commit queued webhook deliveries (the dispatcher waits on it).
    pub webhook_wake: Arc<tokio::sync::Notify>,
}

/// What a stream needs to subscribe.
pub struct Registration {
    /// Visitor streams never get notes.
    pub visitor_view: bool,
    /// Follow this visitor's conversations.
    pub visitor_id: Option<String>,
    /// Follow everything.
    pub inbox: bool,
    /// Follow these conversations.
    pub conversations: Vec<String>,
}

/// A registered stream's receiving end. Unregisters on drop.
pub struct Subscription {
    /// Hub id of the stream.
    pub id: u64,
    /// The stream's queue.
    pub rx: mpsc::Receiver<Outbound>,
    /// Shared flags.
    pub flags: Arc<StreamFlags>,
    hub: Arc<Hub>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.remove(self.id);
    }
}

impl Hub {
    pub fn new(metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            index: RwLock::new(Index::default()),
            next_id: AtomicU64::new(1),
            metrics,
            remote: OnceLock::new(),
            signer: Arc::default(),
            webhook_wake: Arc::default(),
        })
    }

    /// Registers a stream. Its events start queueing at once (before any replay, so nothing
    /// committed after this call can be missed). None after shutdown.
    pub fn register(self: &Arc<Self>, reg: Registration) -> Option<Subscription> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(if reg.inbox && !reg.visitor_view {
            INBOX_STREAM_QUEUE
        } else {
            STREAM_QUEUE
        });
        let flags = Arc::new(StreamFlags::default());
        let mut index = self.index.write().unwrap();
        if index.closed {
            return None;
        }
        for c in &reg.conversations {
            index.by_conversation.entry(c.clone()).or_default().push(id);
        }
        if let Some(v) = &reg.visitor_id {
            index.by_visitor.entry(v.clone()).or_default().push(id);
        }
        if reg.inbox {
            index.inbox.push(id);
        }
        index.entries.insert(
            id,
            Entry {
                tx,
                visitor_view: reg.visitor_view,
                flags: flags.clone(),
                conversations: reg.conversations,
                visitor_id: reg.visitor_id,
                inbox: reg.inbox,
            },
        );
        Some(Subscription {
            id,
            rx,
            flags,
            hub: self.clone(),
        })
    }

    /// Adds a conversation to a registered stream and asks it to replay after the cursor.
    pub fn watch(&self, id: u64, cursor: v1::ConversationCursor) {
        let mut index = self.index.write().unwrap();
        let Some(entry) = index.entries.get_mut(&id) else {
            return;
        };
        if entry.conversations.contains(&cursor.conversation_id) {
            return;
        }
        entry.conversations.push(cursor.conversation_id.clone());
        let tx = entry.tx.clone();
        let flags = entry.flags.clone();
        index
            .by_conversation
            .entry(cursor.conversation_id.clone())
            .or_default()
            .push(id);
        drop(index);
        if tx.try_send(Outbound::Watch(Box::new(cursor))).is_err() {
            flags.lagged.store(true, Ordering::Relaxed);
            self.remove(id);
        }
    }

    fn remove(&self, id: u64) {
        let mut index = self.index.write().unwrap();
        let Some(entry) = index.entries.remove(&id) else {
            return;
        };
        for c in &entry.conversations {
            unindex(&mut index.by_conversation, c, id);
        }
        if let Some(v) = &entry.visitor_id {
            unindex(&mut index.by_visitor, v, id);
        }
        if entry.inbox {
            index.inbox.retain(|x| *x != id);
        }
    }

    /// Plugs in the other nodes (once, at start).
    pub fn set_remote(&self, remote: Arc<dyn Remote>) {
        let _ = self.remote.set(remote);
    }

    /// Sends an event of a conversation to every stream that follows it, here and on the
    /// other nodes.
    pub fn deliver(&self, route: Route<'_>, event: Arc<v1::ServerEvent>) {
        self.deliver_except(route, event, None);
    }

    /// [`Hub::deliver`], skipping the local stream `except` (the Chat stream that sent the
    /// message: it has the ack, so an echo would only cost a write).
    pub fn deliver_except(
        &self,
        route: Route<'_>,
        event: Arc<v1::ServerEvent>,
        except: Option<u64>,
    ) {
        if let Some(remote) = self.remote.get() {
            remote.publish(Some(route), &event);
        }
        self.deliver_local_except(route, event, except);
    }

    /// Sends an event to this node's streams only (events that came from the bus).
    pub fn deliver_local(&self, route: Route<'_>, event: Arc<v1::ServerEvent>) {
        self.deliver_local_except(route, event, None);
    }

    fn deliver_local_except(
        &self,
        route: Route<'_>,
        event: Arc<v1::ServerEvent>,
        except: Option<u64>,
    ) {
        let mut failed = Vec::new();
        {
            let index = self.index.read().unwrap();
            let mut seen = HashSet::new();
            let targets = index
                .by_conversation
                .get(route.conversation_id)
                .into_iter()
                .flatten()
                .chain(
                    (!route.staff_only)
                        .then(|| index.by_visitor.get(route.visitor_id))
                        .flatten()
                        .into_iter()
                        .flatten(),
                )
                .chain(index.inbox.iter());
            for id in targets {
                if Some(*id) == except || !seen.insert(*id) {
                    continue;
                }
                let Some(entry) = index.entries.get(id) else {
                    continue;
                };
                if route.staff_only && entry.visitor_view {
                    continue;
                }
                if entry.tx.try_send(Outbound::Event(event.clone())).is_err() {
                    entry.flags.lagged.store(true, Ordering::Relaxed);
                    failed.push(*id);
                }
            }
        }
        self.drop_lagged(failed);
    }

    /// Sends an event to this node's streams of a visitor only (queue positions: each node
    /// tells its own visitors, see [`super::queue`]).
    pub fn deliver_visitor_local(&self, visitor_id: &str, event: Arc<v1::ServerEvent>) {
        let mut failed = Vec::new();
        {
            let index = self.index.read().unwrap();
            for id in index.by_visitor.get(visitor_id).into_iter().flatten() {
                if let Some(entry) = index.entries.get(id) {
                    if entry.tx.try_send(Outbound::Event(event.clone())).is_err() {
                        entry.flags.lagged.store(true, Ordering::Relaxed);
                        failed.push(*id);
                    }
                }
            }
        }
        self.drop_lagged(failed);
    }

    /// Sends an event to every inbox stream, here and on the other nodes.
    pub fn deliver_inbox(&self, event: Arc<v1::ServerEvent>) {
        if let Some(remote) = self.remote.get() {
            remote.publish(None, &event);
        }
        self.deliver_inbox_local(event);
    }

    /// Sends an event to this node's inbox streams only.
    pub fn deliver_inbox_local(&self, event: Arc<v1::ServerEvent>) {
        let mut failed = Vec::new();
        {
            let index = self.index.read().unwrap();
            for id in &index.inbox {
                if let Some(entry) = index.entries.get(id) {
                    if entry.tx.try_send(Outbound::Event(event.clone())).is_err() {
                        entry.flags.lagged.store(true, Ordering::Relaxed);
                        failed.push(*id);
                    }
                }
            }
        }
        self.drop_lagged(failed);
    }

    fn drop_lagged(&self, failed: Vec<u64>) {
        for id in failed {
            self.metrics.resyncs.inc();
            self.remove(id);
        }
    }

    /// Tells every stream to resync (they may have missed events) and drops them.
    pub fn resync_all(&self) {
        let ids: Vec<u64> = {
            let index = self.index.read().unwrap();
            for entry in index.entries.values() {
                entry.flags.lagged.store(true, Ordering::Relaxed);
            }
            index.entries.keys().copied().collect()
        };
        self.drop_lagged(ids);
    }

    /// Closes every stream (they end cleanly) and refuses new ones.
    pub fn shutdown(&self) {
        let mut index = self.index.write().unwrap();
        index.closed = true;
        index.entries.clear();
        index.by_conversation.clear();
        index.by_visitor.clear();
        index.inbox.clear();
    }
}

fn unindex(map: &mut HashMap<String, Vec<u64>>, key: &str, id: u64) {
    if let Some(ids) = map.get_mut(key) {
        ids.retain(|x| *x != id);
        if ids.is_empty() {
            map.remove(key);
        }
    }
}

impl CommitSink for Hub {
    fn committed(&self, messages: &[Committed]) {
        if messages.iter().any(|c| c.webhooks) {
            self.webhook_wake.notify_one();
        }
        for c in messages {
            let mut message = c.message.clone();
            if !message.attachments.is_empty() {
                self.signer
                    .sign_message(&mut message, "", crate::util::now_ms());
            }
            let event = Arc::new(v1::ServerEvent {
                event: Some(v1::server_event::Event::Message(message)),
            });
            self.deliver_except(
                Route {
                    conversation_id: &c.message.conversation_id,
                    visitor_id: &c.visitor_id,
                    staff_only: c.message.kind == v1::MessageKind::Note as i32,
                },
                event,
                c.origin_stream,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn hub() -> Arc<Hub> {
        Hub::new(Arc::new(Metrics::new()))
    }

    fn reg(visitor: Option<&str>, inbox: bool, conversations: &[&str]) -> Registration {
        Registration {
            visitor_view: visitor.is_some(),
            visitor_id: visitor.map(str::to_owned),
            inbox,
            conversations: conversations.iter().map(|c| c.to_string()).collect(),
        }
    }

    /// A staff stream: no visitor, following `conversations` (and the inbox if asked).
    fn staff(inbox: bool, conversations: &[&str]) -> Registration {
        reg(None, inbox, conversations)
    }

    fn route<'a>(conversation_id: &'a str, visitor_id: &'a str, staff_only: bool) -> Route<'a> {
        Route {
            conversation_id,
            visitor_id,
            staff_only,
        }
    }

    fn message(conversation_id: &str, seq: u64) -> Arc<v1::ServerEvent> {
        Arc::new(v1::ServerEvent {
            event: Some(v1::server_event::Event::Message(v1::Message {
                conversation_id: conversation_id.into(),
                seq,
                ..Default::default()
            })),
        })
    }

    /// The seqs of the messages waiting in a stream's queue (and the watches, as 0).
    fn drain(sub: &mut Subscription) -> Vec<u64> {
        let mut seqs = Vec::new();
        while let Ok(out) = sub.rx.try_recv() {
            seqs.push(match out {
                Outbound::Event(ev) => match &ev.event {
                    Some(v1::server_event::Event::Message(m)) => m.seq,
                    other => panic!("not a message: {other:?}"),
                },
                Outbound::Watch(_) => 0,
            });
        }
        seqs
    }

    #[test]
    fn an_event_reaches_its_conversation_its_visitor_and_the_inbox_only() {
        let hub = hub();
        let mut conv = hub.register(staff(false, &["c1"])).unwrap();
        let mut other_conv = hub.register(staff(false, &["c2"])).unwrap();
        let mut visitor = hub.register(reg(Some("v1"), false, &[])).unwrap();
        let mut other_visitor = hub.register(reg(Some("v2"), false, &[])).unwrap();
        let mut inbox = hub.register(staff(true, &[])).unwrap();
        // Followed three ways at once: one copy.
        let mut all = hub.register(reg(Some("v1"), true, &["c1"])).unwrap();

        hub.deliver(route("c1", "v1", false), message("c1", 1));
        assert_eq!(drain(&mut conv), [1]);
        assert_eq!(drain(&mut visitor), [1]);
        assert_eq!(drain(&mut inbox), [1]);
        assert_eq!(drain(&mut all), [1]);
        assert!(drain(&mut other_conv).is_empty());
        assert!(drain(&mut other_visitor).is_empty());
        assert_eq!(hub.metrics.resyncs.get(), 0);
    }

    #[test]
    fn notes_never_reach_visitor_streams() {
        let hub = hub();
        let mut staff_stream = hub.register(staff(false, &["c1"])).unwrap();
        let mut inbox = hub.register(staff(true, &[])).unwrap();
        let mut visitor = hub.register(reg(Some("v1"), false, &[])).unwrap();
        // A visitor stream with a cursor on its conversation, and one (wrongly) on the inbox.
        let mut visitor_cursor = hub.register(reg(Some("v1"), false, &["c1"])).unwrap();
        let mut visitor_inbox = hub.register(reg(Some("v9"), true, &[])).unwrap();

        hub.deliver(route("c1", "v1", true), message("c1", 7));
        assert_eq!(drain(&mut staff_stream), [7]);
        assert_eq!(drain(&mut inbox), [7]);
        assert!(drain(&mut visitor).is_empty());
        assert!(drain(&mut visitor_cursor).is_empty());
        assert!(drain(&mut visitor_inbox).is_empty());
    }

    #[test]
    fn the_sending_stream_gets_no_echo_and_inbox_events_reach_the_inbox_only() {
        let hub = hub();
        let mut sender = hub.register(reg(Some("v1"), false, &[])).unwrap();
        let mut agent = hub.register(staff(true, &[])).unwrap();
        let mut watcher = hub.register(staff(false, &["c1"])).unwrap();
        hub.deliver_except(route("c1", "v1", false), message("c1", 1), Some(sender.id));
        assert!(drain(&mut sender).is_empty(), "the ack carries its seq");
        assert_eq!(drain(&mut agent), [1]);
        assert_eq!(drain(&mut watcher), [1]);

        hub.deliver_inbox(message("c1", 2));
        assert_eq!(drain(&mut agent), [2]);
        assert!(drain(&mut watcher).is_empty());
        assert!(drain(&mut sender).is_empty());
    }

    #[test]
    fn watch_adds_a_conversation_and_asks_for_its_replay_first() {
        let hub = hub();
        let mut s = hub.register(staff(false, &[])).unwrap();
        hub.deliver(route("c1", "v1", false), message("c1", 1));
        assert!(drain(&mut s).is_empty(), "not followed yet");
        let cursor = |after_seq| v1::ConversationCursor {
            conversation_id: "c1".into(),
            after_seq,
        };
        hub.watch(s.id, cursor(1));
        hub.deliver(route("c1", "v1", false), message("c1", 2));
        // The watch (the replay request) is queued ahead of the live message.
        assert_eq!(drain(&mut s), [0, 2]);
        // Watching it again changes nothing.
        hub.watch(s.id, cursor(2));
        assert!(drain(&mut s).is_empty());
        assert_eq!(hub.index.read().unwrap().by_conversation["c1"], [s.id]);
    }

    #[test]
    fn a_dropped_stream_is_unindexed_everywhere() {
        let hub = hub();
        let keep = hub.register(staff(false, &["c1"])).unwrap();
        let gone = hub.register(reg(Some("v1"), true, &["c1", "c2"])).unwrap();
        hub.watch(
            gone.id,
            v1::ConversationCursor {
                conversation_id: "c3".into(),
                after_seq: 0,
            },
        );
        drop(gone);
        let index = hub.index.read().unwrap();
        assert_eq!(index.entries.len(), 1);
        assert_eq!(index.by_conversation.len(), 1, "c2 and c3 had no one else");
        assert_eq!(index.by_conversation["c1"], [keep.id]);
        assert!(index.by_visitor.is_empty());
        assert!(index.inbox.is_empty());
    }

    #[test]
    fn a_full_queue_drops_its_stream_as_lagged_and_only_it() {
        let hub = hub();
        let mut slow = hub.register(staff(false, &["c1"])).unwrap();
        let mut fast = hub.register(staff(false, &["c1"])).unwrap();
        for seq in 1..=STREAM_QUEUE as u64 {
            hub.deliver(route("c1", "v1", false), message("c1", seq));
            assert_eq!(drain(&mut fast), [seq]);
        }
        assert!(!slow.flags.lagged.load(Ordering::Relaxed), "full, not over");
        hub.deliver(
            route("c1", "v1", false),
            message("c1", STREAM_QUEUE as u64 + 1),
        );
        assert!(slow.flags.lagged.load(Ordering::Relaxed));
        assert_eq!(hub.metrics.resyncs.get(), 1);
        assert_eq!(drain(&mut fast), [STREAM_QUEUE as u64 + 1]);
        assert!(!fast.flags.lagged.load(Ordering::Relaxed));
        // What it had queued is still there; then its queue ends (the stream resyncs).
        assert_eq!(drain(&mut slow).len(), STREAM_QUEUE);
        assert!(slow.rx.try_recv().is_err());
        assert!(slow.rx.is_closed());
        assert!(!hub.index.read().unwrap().entries.contains_key(&slow.id));
    }

    #[test]
    fn shutdown_ends_every_stream_and_refuses_new_ones() {
        let hub = hub();
        let mut s = hub.register(staff(true, &["c1"])).unwrap();
        hub.shutdown();
        assert!(s.rx.is_closed());
        assert!(
            !s.flags.lagged.load(Ordering::Relaxed),
            "a clean end, not a resync"
        );
        assert!(hub.register(staff(true, &[])).is_none());
        hub.deliver(route("c1", "v1", false), message("c1", 1));
        assert!(drain(&mut s).is_empty());
    }

    /// Records what the hub hands to the other nodes.
    #[derive(Default)]
    struct Nodes(Mutex<Vec<Option<String>>>);

    impl Remote for Nodes {
        fn publish(&self, route: Option<Route<'_>>, _: &v1::ServerEvent) {
            let route = route.map(|r| r.conversation_id.to_owned());
            self.0.lock().unwrap().push(route);
        }
    }

    #[test]
    fn local_deliveries_go_to_the_other_nodes_and_theirs_do_not_come_back() {
        let hub = hub();
        let nodes = Arc::new(Nodes::default());
        hub.set_remote(nodes.clone());
        let mut s = hub.register(staff(true, &[])).unwrap();
        hub.deliver(route("c1", "v1", false), message("c1", 1));
        hub.deliver_inbox(message("c1", 2));
        // From the bus: this node's streams only.
        hub.deliver_local(route("c1", "v1", false), message("c1", 3));
        hub.deliver_inbox_local(message("c1", 4));
        assert_eq!(drain(&mut s), [1, 2, 3, 4]);
        assert_eq!(*nodes.0.lock().unwrap(), [Some("c1".to_string()), None]);
    }
}
