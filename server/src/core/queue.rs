//! Queue positions without counting: an in-memory order-statistics index of every queue.
//!
//! A conversation's position is its rank among the queued conversations of its site and topic,
//! ordered by `(queued_at, id)`. Counting that in SQL for every conversation read was
//! O(position), and telling a queue its new positions after each change re-read and
//! re-announced a page to every stream: a campaign burst of N arrivals cost O(N²).
//!
//! Here each queue is an order-statistics B-tree ([`indexset::BTreeSet`]: rank in about
//! constant time), kept up to date from the conversation snapshots this node sees: its own
//! store writes and reads (every snapshot passes [`Core::decorate`]) and, in a cluster, the
//! other nodes' conversation events from the bus. Snapshots carry a version (last seq, then
//! update time): an older one never undoes a newer one, and a tombstone keeps a conversation
//! that left the queue from being put back by a stale read. The index is loaded from the store
//! at start, and reconciled with it every [`RECONCILE_EVERY`] and after a bus resync, so a
//! missed event (the bus is at-most-once) heals within that period.
//!
//! When a queue changes in a way that moves others (anything but an arrival at its tail), it is
//! marked dirty; the announcer task, at most once per [`SWEEP_EVERY`] per change burst, walks
//! each dirty queue in order (O(queue) per sweep, not per change) and sends the conversations
//! whose position changed a fresh snapshot, to this node's visitor streams only (every node
//! tells its own visitors; staff see a conversation's own changes and read positions with it).
//! So positions are right within about [`SWEEP_DELAY`] + [`SWEEP_EVERY`] of a change, and a
//! burst of assignments costs one event per waiting visitor per sweep, not per assignment.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indexset::BTreeSet;
use tokio::sync::Notify;
use wsmschat::v1;
use wsmschat::v1::server_event::Event as Se;

use super::{Core, event};

/// How long the announcer waits after the first change, so a burst of changes makes one sweep.
pub const SWEEP_DELAY: Duration = Duration::from_millis(100);
/// The least time between two sweeps.
pub const SWEEP_EVERY: Duration = Duration::from_millis(500);
/// How often the index is compared with the store.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(30);

/// A queue: (site id, topic).
type QueueKey = (String, String);
/// Order within a queue: (queued_at, conversation id).
type Order = (i64, String);
/// Which of two snapshots of a conversation is newer: (last seq, updated_at).
type Version = (u64, i64);

fn version(c: &v1::Conversation) -> Version {
    (c.last_seq, c.updated_at_ms)
}

fn is_queued(c: &v1::Conversation) -> bool {
    c.status == v1::ConversationStatus::Queued as i32
}

struct Member {
    queue: QueueKey,
    order: Order,
    version: Version,
    /// The newest snapshot seen (what a position update re-sends).
    snapshot: v1::Conversation,
    /// The reconcile generation in which it was last seen.
    seen: u64,
    /// The position this node's visitor streams were last told (0: none yet).
    announced: u32,
}

#[derive(Default)]
struct Inner {
    queues: HashMap<QueueKey, BTreeSet<Order>>,
    members: HashMap<String, Member>,
    /// Conversations that left a queue: their version then, and the generation it happened in.
    left: HashMap<String, (Version, u64)>,
    dirty: HashSet<QueueKey>,
    generation: u64,
}

/// The index (one per node). See the module doc.
#[derive(Default)]
pub struct QueueIndex {
    inner: Mutex<Inner>,
    /// Woken when a queue became dirty.
    wake: Notify,
}

impl Inner {
    fn rank(&self, m: &Member) -> u32 {
        self.queues
            .get(&m.queue)
            .map(|q| q.rank(&m.order) as u32 + 1)
            .unwrap_or(0)
    }

    fn remove(&mut self, id: &str) -> Option<Member> {
        let m = self.members.remove(id)?;
        if let Some(q) = self.queues.get_mut(&m.queue) {
            let at_tail = q.last() == Some(&m.order);
            q.remove(&m.order);
            if q.is_empty() {
                self.queues.remove(&m.queue);
                self.dirty.remove(&m.queue);
            } else if !at_tail {
                self.dirty.insert(m.queue.clone());
            }
        }
        Some(m)
    }

    /// Applies a snapshot; true if a queue became dirty.
    fn observe(&mut self, c: &v1::Conversation) -> bool {
        let v = version(c);
        if let Some(m) = self.members.get(&c.id) {
            if m.version > v {
                return false;
            }
        } else if let Some((left, _)) = self.left.get(&c.id) {
            if *left >= v {
                return false;
            }
        }
        let was_dirty = self.dirty.len();
        if !is_queued(c) {
            if self.remove(&c.id).is_some() || !self.left.contains_key(&c.id) {
                self.left.insert(c.id.clone(), (v, self.generation));
            }
            return self.dirty.len() > was_dirty;
        }
        self.left.remove(&c.id);
        let queue = (c.site_id.clone(), c.topic.clone());
        let order = (c.queued_at_ms, c.id.clone());
        let generation = self.generation;
        if let Some(m) = self.members.get_mut(&c.id) {
            if m.queue == queue && m.order == order {
                m.version = v;
                m.snapshot = c.clone();
                m.seen = generation;
                return false;
            }
        }
        // New, or back in the queue at another place: (re)insert.
        let announced = self.remove(&c.id).map(|m| m.announced).unwrap_or(0);
        let q = self.queues.entry(queue.clone()).or_default();
        q.insert(order.clone());
        if q.last() != Some(&order) {
            self.dirty.insert(queue.clone());
        }
        self.members.insert(
            c.id.clone(),
            Member {
                queue,
                order,
                version: v,
                snapshot: c.clone(),
                seen: generation,
                announced,
            },
        );
        self.dirty.len() > was_dirty
    }
}

impl QueueIndex {
    /// Applies a snapshot (if it is not older than what is known) and returns the
    /// conversation's position as now known (0 when not queued).
    pub fn observe(&self, c: &v1::Conversation) -> u32 {
        let mut inner = self.inner.lock().unwrap();
        let dirty = inner.observe(c);
        let pos = inner.members.get(&c.id).map(|m| inner.rank(m)).unwrap_or(0);
        drop(inner);
        if dirty {
            self.wake.notify_one();
        }
        pos
    }

    /// Records that this node's streams were told `position` for a conversation (an
    /// announcement, or another node's event delivered here); a disagreement with the index
    /// makes the queue dirty, so the next sweep corrects it.
    pub fn told(&self, conversation_id: &str, position: u32) {
        let mut inner = self.inner.lock().unwrap();
        let Some(m) = inner.members.get(conversation_id) else {
            return;
        };
        let (queue, rank) = (m.queue.clone(), inner.rank(m));
        if let Some(m) = inner.members.get_mut(conversation_id) {
            m.announced = position;
        }
        let dirty = rank != position && inner.dirty.insert(queue);
        drop(inner);
        if dirty {
            self.wake.notify_one();
        }
    }

    /// The position of a conversation (0: not queued, as far as this node knows).
    pub fn position(&self, conversation_id: &str) -> u32 {
        let inner = self.inner.lock().unwrap();
        inner
            .members
            .get(conversation_id)
            .map(|m| inner.rank(m))
            .unwrap_or(0)
    }

    /// Takes the dirty queues and returns, for each conversation whose position changed since
    /// its visitor was last told, its snapshot with the new position (marked as told).
    fn sweep(&self) -> Vec<v1::Conversation> {
        let mut inner = self.inner.lock().unwrap();
        let dirty: Vec<QueueKey> = inner.dirty.drain().collect();
        let mut out = Vec::new();
        for key in dirty {
            let ids: Vec<String> = match inner.queues.get(&key) {
                Some(q) => q.iter().map(|(_, id)| id.clone()).collect(),
                None => continue,
            };
            for (i, id) in ids.into_iter().enumerate() {
                let pos = i as u32 + 1;
                if let Some(m) = inner.members.get_mut(&id) {
                    if m.announced != pos {
                        m.announced = pos;
                        let mut c = m.snapshot.clone();
                        c.queue_position = pos;
                        out.push(c);
                    }
                }
            }
        }
        out
    }

    /// Merges a full read of the store's queues: rows newer than what is known are applied;
    /// members seen before the read began and absent from it left the queue unseen.
    pub(super) fn reconcile(&self, started: u64, rows: &[v1::Conversation]) {
        let mut inner = self.inner.lock().unwrap();
        let in_store: HashSet<&str> = rows.iter().map(|c| c.id.as_str()).collect();
        for c in rows {
            inner.observe(c);
        }
        let gone: Vec<String> = inner
            .members
            .iter()
            .filter(|(id, m)| m.seen < started && !in_store.contains(id.as_str()))
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            if let Some(m) = inner.remove(&id) {
                inner.left.insert(id, (m.version, started));
            }
        }
        // Tombstones older than a whole period guard against nothing in flight any more.
        inner.left.retain(|_, (_, g)| *g + 1 >= started);
        let dirty = !inner.dirty.is_empty();
        drop(inner);
        if dirty {
            self.wake.notify_one();
        }
    }

    /// Starts a reconcile: the generation that rows read from now on belong to.
    pub(super) fn begin_reconcile(&self) -> u64 {
        let mut inner = self.inner.lock().unwrap();
        inner.generation += 1;
        inner.generation
    }

    /// Queued conversations known, in all queues.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap().members.len()
    }

    /// No conversation queued anywhere.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Core {
    /// Loads the queues from the store (at start) or compares them with it (periodically,
    /// after a bus resync).
    pub async fn reconcile_queue(&self) -> crate::error::CoreResult<()> {
        let started = self.queue.begin_reconcile();
        let rows = self.store.queued(Vec::new(), u32::MAX).await?;
        self.queue.reconcile(started, &rows);
        Ok(())
    }

    /// Starts the position announcer and the periodic reconcile.
    pub fn spawn_queue_announcer(self: &Arc<Self>) {
        let core = Arc::downgrade(self);
        let index = self.queue.clone();
        let mut stopping = self.stopping.subscribe();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = index.wake.notified() => {}
                    _ = stopping.wait_for(|s| *s) => return,
                }
                tokio::time::sleep(SWEEP_DELAY).await;
                let Some(core) = core.upgrade() else { return };
                core.announce_positions();
                drop(core);
                tokio::time::sleep(SWEEP_EVERY.saturating_sub(SWEEP_DELAY)).await;
            }
        });
        self.spawn_periodic(RECONCILE_EVERY, |core| async move {
            if let Err(error) = core.reconcile_queue().await {
                tracing::warn!(%error, "Cannot compare the queue index with the store");
            }
        });
    }

    /// One sweep: tells this node's visitors the positions that moved.
    fn announce_positions(&self) {
        let moved = self.queue.sweep();
        if moved.is_empty() {
            return;
        }
        self.metrics
            .queue_position_events
            .inc_by(moved.len() as u64);
        let mut online: HashMap<String, u32> = HashMap::new();
        for mut c in moved {
            c.agents_online = *online
                .entry(c.topic.clone())
                .or_insert_with(|| self.presence.online_for(&c.topic).len() as u32);
            let visitor_id = c.visitor_id.clone();
            self.hub
                .deliver_visitor_local(&visitor_id, event(Se::Conversation(c)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(
        id: &str,
        site: &str,
        queued_at: i64,
        status: v1::ConversationStatus,
    ) -> v1::Conversation {
        v1::Conversation {
            id: id.into(),
            site_id: site.into(),
            visitor_id: format!("v-{id}"),
            topic: "Order".into(),
            status: status as i32,
            queued_at_ms: queued_at,
            last_seq: 1,
            updated_at_ms: queued_at,
            ..Default::default()
        }
    }

    fn queued(id: &str, site: &str, at: i64) -> v1::Conversation {
        conv(id, site, at, v1::ConversationStatus::Queued)
    }

    fn assigned(mut c: v1::Conversation) -> v1::Conversation {
        c.status = v1::ConversationStatus::Open as i32;
        c.last_seq += 1;
        c.updated_at_ms += 1;
        c
    }

    #[test]
    fn positions_are_ranks_per_site_and_topic_and_move_when_the_head_leaves() {
        let q = QueueIndex::default();
        assert_eq!(q.observe(&queued("a", "s1", 10)), 1);
        assert_eq!(
            q.observe(&queued("b", "s2", 11)),
            1,
            "another site: its own queue"
        );
        assert_eq!(q.observe(&queued("c", "s1", 12)), 2);
        assert_eq!(q.observe(&queued("d", "s1", 12)), 3, "same time: by id");
        // Arrivals at the tail move nobody: nothing to sweep.
        assert!(q.sweep().iter().all(|c| c.queue_position == 0));
        q.told("c", 2);
        q.told("d", 3);
        assert_eq!(q.observe(&assigned(queued("a", "s1", 10))), 0);
        assert_eq!(q.position("c"), 1);
        assert_eq!(q.position("d"), 2);
        let moved: Vec<(String, u32)> = q
            .sweep()
            .into_iter()
            .map(|c| (c.id, c.queue_position))
            .collect();
        assert_eq!(moved, vec![("c".into(), 1), ("d".into(), 2)]);
        assert!(q.sweep().is_empty(), "told once");
        assert_eq!(q.len(), 3);
    }

    #[test]
    fn an_older_snapshot_never_undoes_a_newer_one() {
        let q = QueueIndex::default();
        let a = queued("a", "s1", 10);
        q.observe(&a);
        q.observe(&queued("b", "s1", 11));
        q.observe(&assigned(a.clone()));
        // A read that began before the assignment arrives late: ignored (the tombstone).
        assert_eq!(q.observe(&a), 0);
        assert_eq!(q.position("b"), 1);
        // Reopened later: back in the queue, at the tail.
        let mut again = assigned(assigned(a.clone()));
        again.status = v1::ConversationStatus::Queued as i32;
        again.queued_at_ms = 20;
        assert_eq!(q.observe(&again), 2);
    }

    #[test]
    fn reconcile_adds_what_was_missed_and_drops_what_left_unseen() {
        let q = QueueIndex::default();
        q.observe(&queued("a", "s1", 10));
        q.observe(&queued("gone", "s1", 11));
        let g = q.begin_reconcile();
        // Observed while the read runs: kept though the read missed it.
        q.observe(&queued("fresh", "s1", 30));
        q.reconcile(g, &[queued("a", "s1", 10), queued("missed", "s1", 20)]);
        assert_eq!(q.position("a"), 1);
        assert_eq!(q.position("gone"), 0);
        assert_eq!(q.position("missed"), 2);
        assert_eq!(q.position("fresh"), 3);
    }

    #[test]
    fn a_position_told_by_another_node_that_disagrees_is_corrected_by_the_next_sweep() {
        let q = QueueIndex::default();
        q.observe(&queued("a", "s1", 10));
        q.observe(&queued("b", "s1", 11));
        q.told("a", 1);
        q.told("b", 1); // stale: another node had not seen "a" yet
        let moved: Vec<(String, u32)> = q
            .sweep()
            .into_iter()
            .map(|c| (c.id, c.queue_position))
            .collect();
        assert_eq!(moved, vec![("b".into(), 2)]);
    }

    /// Not a test: the cost of the index at campaign-burst sizes. Run with
    /// `cargo test --release -p wsmschat-server --lib measure_queue_index -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn measure_queue_index() {
        for n in [5_000usize, 50_000] {
            let q = QueueIndex::default();
            let t = std::time::Instant::now();
            for i in 0..n {
                q.observe(&queued(&format!("c{i:06}"), "s1", i as i64));
            }
            let arrive = t.elapsed() / n as u32;
            let t = std::time::Instant::now();
            for i in 0..n {
                q.position(&format!("c{i:06}"));
            }
            let pos = t.elapsed() / n as u32;
            let t = std::time::Instant::now();
            q.observe(&assigned(queued("c000000", "s1", 0)));
            let leave = t.elapsed();
            let t = std::time::Instant::now();
            let moved = q.sweep().len();
            let sweep = t.elapsed();
            println!(
                "{n} queued: arrival {arrive:?}, position {pos:?}, head leaves {leave:?}, sweep {sweep:?} ({moved} moved)"
            );
        }
    }
}
