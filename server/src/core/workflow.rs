//! The support workflow: assignment and the queue.
//!
//! A conversation enters the queue when it is created (or reopened). Draining a topic's queue
//! hands its conversations, oldest first, to the least-loaded online agent of the topic that is
//! under capacity; it stops at the first conversation nobody can take, so order is kept. The
//! capacity check and the assignment run in one store transaction, so concurrent assignments
//! never push an agent over capacity. Draining runs when a conversation is queued, an agent
//! comes online, or an agent's load drops (resolve, transfer): those events nudge the router,
//! a task of its own, so no ack waits for an assignment and nudges during a pass coalesce.
//!
//! A site's queue in a topic whose oldest conversation found nobody with room is *blocked*: an
//! arrival there cannot be served before it, so arrivals do not nudge the router until
//! capacity changes (a campaign burst with every agent busy costs no pass per arrival).
//! Positions are the queue index's business ([`super::queue`]), not the router's.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use wsmschat::v1;

use super::Core;
use crate::error::CoreResult;
use crate::store::{AssignTarget, Changed};

/// Topics whose queues need serving, and the router's wake-up.
#[derive(Default)]
pub(super) struct RouterInbox {
    pending: Mutex<BTreeSet<String>>,
    wake: Notify,
    /// (topic, site) queues whose head found no agent with room at the last pass.
    blocked: Mutex<HashSet<(String, String)>>,
}

/// How many queued conversations one drain pass looks at per topic.
const DRAIN_PAGE: u32 = 100;

impl Core {
    /// Assigns a conversation to a chosen agent (join, assign, transfer).
    pub async fn assign_to(
        self: &Arc<Self>,
        c: &v1::Conversation,
        agent_id: &str,
        kind: v1::SystemEventKind,
    ) -> CoreResult<()> {
        if c.assignee_id == agent_id && c.status == v1::ConversationStatus::Open as i32 {
            return Ok(());
        }
        let changed = self
            .store
            .assign(
                c.id.clone(),
                AssignTarget::Agent {
                    agent_id: agent_id.to_owned(),
                    system_kind: kind,
                },
            )
            .await?;
        if let Some(changed) = changed {
            self.after_change(changed).await;
        }
        Ok(())
    }

    /// Announces a changed conversation; if an agent was freed, their queue is drained. (If it
    /// left the queue, the queue index marks the positions behind it to be re-announced.)
    pub async fn after_change(self: &Arc<Self>, changed: Changed) {
        let c = changed.conversation;
        let topic = c.topic.clone();
        self.announce(c.clone());
        let freed = changed.previous_assignee.filter(|prev| {
            !(c.assignee_id == *prev && c.status == v1::ConversationStatus::Open as i32)
        });
        if let Some(prev) = freed {
            if let Some(topics) = self.presence.topics_of(&prev) {
                let topics = if topics.is_empty() {
                    vec![topic.clone()]
                } else {
                    topics
                };
                self.drain(topics);
            }
        }
    }

    /// A conversation entered the queue of `topic` at `site_id`: serve it, unless that queue is
    /// blocked (its head waits for capacity, and this one waits behind it).
    pub fn drain_arrival(&self, topic: &str, site_id: &str) {
        let blocked = self
            .router
            .blocked
            .lock()
            .unwrap()
            .contains(&(topic.to_owned(), site_id.to_owned()));
        if !blocked {
            self.drain(vec![topic.to_owned()]);
        }
    }

    /// Asks the router to serve these topics' queues. Never waits: an ack does not include an
    /// assignment; the router's assignments reach clients as conversation events.
    pub fn drain(&self, topics: Vec<String>) {
        if topics.is_empty() {
            return;
        }
        self.router.pending.lock().unwrap().extend(topics);
        self.router.wake.notify_one();
    }

    /// Starts the router: one task that serves the queues of nudged topics, one pass at a
    /// time (so each queue is served strictly in order), coalescing the nudges that arrive
    /// during a pass. Stops at shutdown or when the core is gone.
    pub(super) fn spawn_router(self: &Arc<Self>) {
        let core = Arc::downgrade(self);
        let inbox = self.router.clone();
        let mut stopping = self.stopping.subscribe();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = inbox.wake.notified() => {}
                    _ = stopping.wait_for(|s| *s) => return,
                }
                let topics = std::mem::take(&mut *inbox.pending.lock().unwrap());
                let Some(core) = core.upgrade() else { return };
                core.serve_queues(topics).await;
            }
        });
    }

    /// Serves the queues of these topics, oldest conversation first.
    async fn serve_queues(self: &Arc<Self>, topics: BTreeSet<String>) {
        for topic in topics {
            // This pass decides anew which of the topic's queues are blocked.
            self.router
                .blocked
                .lock()
                .unwrap()
                .retain(|(t, _)| *t != topic);
            // Nobody online for the topic: nothing can move, so the queue is not even read
            // (an arrival while every agent is away costs no queue scan).
            if self.presence.online_for(&topic).is_empty() {
                continue;
            }
            // Sites whose oldest queued conversation found no agent (none serving the site
            // has room): their later conversations wait too, other sites' go on.
            let mut blocked: HashSet<String> = Default::default();
            // Outside its opening hours a site's conversations wait in the queue (agents may
            // still take one by hand); they are served when it opens (`opening_pass`).
            let now = crate::util::now_ms();
            let mut closed: std::collections::HashMap<String, bool> = Default::default();
            'topic: loop {
                let mut progress = false;
                let queued = match self.store.queued(vec![topic.clone()], DRAIN_PAGE).await {
                    Ok(q) => q,
                    Err(error) => {
                        tracing::error!(%error, topic, "Cannot read the queue");
                        break;
                    }
                };
                if queued.is_empty() {
                    break;
                }
                for c in queued {
                    if blocked.contains(&c.site_id) {
                        continue;
                    }
                    let site_closed = *closed.entry(c.site_id.clone()).or_insert_with(|| {
                        self.schedule(&c.site_id)
                            .is_some_and(|s| !s.status(now).open)
                    });
                    if site_closed {
                        blocked.insert(c.site_id.clone());
                        continue;
                    }
                    let candidates = self.presence.online_for(&topic);
                    if candidates.is_empty() {
                        break 'topic;
                    }
                    match self
                        .store
                        .assign(c.id.clone(), AssignTarget::LeastLoaded(candidates))
                        .await
                    {
                        Ok(Some(changed)) => {
                            progress = true;
                            self.announce(changed.conversation);
                        }
                        Ok(None) => {
                            blocked.insert(c.site_id.clone());
                        }
                        Err(error) => {
                            tracing::error!(%error, conversation = c.id, "Assignment failed");
                            break 'topic;
                        }
                    }
                }
                if !progress {
                    break;
                }
            }
            self.router
                .blocked
                .lock()
                .unwrap()
                .extend(blocked.into_iter().map(|site| (topic.clone(), site)));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::core::testkit::TestCore;
    use wsmschat::v1;

    /// Positions from the queue index equal a count over the store's queue order, per site
    /// (sites interleaved in one topic), on both engines; when the head leaves, the index
    /// moves everyone behind it, and an index loaded from the store agrees.
    #[tokio::test]
    async fn queue_positions_equal_a_count_over_the_stores_order_per_site() {
        let t = TestCore::any().await;
        let other = t.other_site().await;
        let mut ids = Vec::new();
        for i in 0..7 {
            let (_, token) = if i % 3 == 1 {
                t.visitor_of(&other).await
            } else {
                t.visitor().await
            };
            ids.push(
                t.send(&token, "", &format!("question {i}"))
                    .await
                    .conversation_id,
            );
        }
        let counted = |rows: &[v1::Conversation]| -> Vec<(String, u32)> {
            let mut seen = std::collections::HashMap::<String, u32>::new();
            rows.iter()
                .map(|c| {
                    let n = seen.entry(c.site_id.clone()).or_insert(0);
                    *n += 1;
                    (c.id.clone(), *n)
                })
                .collect()
        };
        let rows = t.core.store.queued(Vec::new(), 100).await.unwrap();
        assert_eq!(rows.len(), 7);
        let from_index = |core: &crate::core::Core, rows: &[v1::Conversation]| {
            rows.iter()
                .map(|c| (c.id.clone(), core.queue.position(&c.id)))
                .collect::<Vec<_>>()
        };
        assert_eq!(from_index(&t.core, &rows), counted(&rows));
        let mut mine: Vec<u32> = counted(&rows)
            .into_iter()
            .filter(|(id, _)| rows.iter().any(|c| c.id == *id && c.site_id == t.site.id))
            .map(|(_, n)| n)
            .collect();
        mine.sort();
        assert_eq!(mine, [1, 2, 3, 4, 5], "the first site has 5 queued");
        // The first site's head leaves (its visitor's conversation is resolved).
        let head = rows
            .iter()
            .find(|c| c.site_id == t.site.id)
            .unwrap()
            .id
            .clone();
        let changed = t.core.store.resolve(head.clone()).await.unwrap();
        t.core.after_change(changed).await;
        assert_eq!(t.core.queue.position(&head), 0);
        let rows = t.core.store.queued(Vec::new(), 100).await.unwrap();
        assert_eq!(from_index(&t.core, &rows), counted(&rows));
        // A node starting now loads the same positions from the store.
        let fresh = crate::core::queue::QueueIndex::default();
        let g = fresh.begin_reconcile();
        fresh.reconcile(g, &rows);
        assert!(
            rows.iter()
                .all(|c| fresh.position(&c.id) == t.core.queue.position(&c.id))
        );
        t.finish().await;
    }
}

/// Not a test: the figures of docs/performance.md's "queue head" table. Run with
/// `N=5000 cargo test --release -p wsmschat-server --lib measure_queue_head_reads -- --ignored --nocapture`.
#[cfg(test)]
mod measure {
    use crate::core::testkit::TestCore;

    #[tokio::test]
    #[ignore = "a measurement, run by hand"]
    async fn measure_queue_head_reads() {
        let t = TestCore::sqlite().await;
        let n: usize = std::env::var("N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5000);
        let start = std::time::Instant::now();
        for i in 0..n {
            let (_, token) = t.visitor().await;
            t.send(&token, "", &format!("q{i}")).await;
        }
        let arrivals = start.elapsed();
        let start = std::time::Instant::now();
        for _ in 0..20 {
            let page = t
                .core
                .store
                .queued(vec!["Order".into()], 200)
                .await
                .unwrap();
            assert_eq!(page.len(), 200.min(n));
        }
        println!(
            "{n} queued: arrivals {:?} each (sequential), queued(200) {:?}",
            arrivals / n as u32,
            start.elapsed() / 20
        );
        t.finish().await;
    }
}

impl Core {
    /// Auto-resolve (issue #15): every `auto_resolve_every`, resolves the open conversations
    /// whose customer has not answered a staff reply for their site's `auto_resolve_hours`,
    /// through the usual resolve (system message, snapshot, webhooks, the rating prompt). Every
    /// node may run it: each resolve re-checks under the conversation's row lock. The same
    /// clock serves the queues of sites that have just opened ([`Core::opening_pass`]) and
    /// wakes snoozed conversations whose time has come ([`Core::wake_pass`]).
    pub fn spawn_auto_resolve(self: &Arc<Self>) {
        self.spawn_periodic(self.config.auto_resolve_every, |core| async move {
            if let Err(error) = core.auto_resolve_pass().await {
                tracing::warn!(%error, "Auto-resolve pass failed");
            }
            core.opening_pass().await;
            if let Err(error) = core.wake_pass().await {
                tracing::warn!(%error, "Snooze wake-up pass failed");
            }
        });
    }

    /// One pass: at most 500 conversations; how many were resolved.
    pub async fn auto_resolve_pass(self: &Arc<Self>) -> CoreResult<u32> {
        let now = crate::util::now_ms();
        let mut resolved = 0;
        for id in self.store.idle_conversations(now, 500).await? {
            if let Some(changed) = self.store.resolve_idle(id, now).await? {
                tracing::info!(conversation = %changed.conversation.id, "Auto-resolved");
                self.after_change(changed).await;
                resolved += 1;
            }
        }
        Ok(resolved)
    }
}
