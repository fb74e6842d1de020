//! The support workflow: assignment and the queue.
//!
//! A conversation enters the queue when it is created (or reopened). Draining a topic's queue
//! hands its conversations, oldest first, to the least-loaded online agent of the topic that is
//! under capacity; it stops at the first conversation nobody can take, so order is kept. The
//! capacity check and the assignment run in one store transaction, so concurrent assignments
//! never push an agent over capacity. Draining runs when a conversation is queued, an agent
//! comes online, or an agent's load drops (resolve, transfer): those events nudge the router,
//! a task of its own, so no ack waits for an assignment and nudges during a pass coalesce.

use std::collections::BTreeSet;
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

    /// Announces a changed conversation; if an agent was freed, their queue is drained; if the
    /// conversation left the queue, the positions behind it moved.
    pub async fn after_change(self: &Arc<Self>, changed: Changed) {
        let c = changed.conversation;
        let topic = c.topic.clone();
        let left_queue = c.status != v1::ConversationStatus::Queued as i32;
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
        if left_queue {
            self.announce_queue(&topic).await;
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
            // Nobody online for the topic: nothing can move, so the queue is not even read
            // (an arrival while every agent is away costs no queue scan).
            if self.presence.online_for(&topic).is_empty() {
                continue;
            }
            let mut assigned_any = false;
            // Sites whose oldest queued conversation found no agent (none serving the site
            // has room): their later conversations wait too, other sites' go on.
            let mut blocked: std::collections::HashSet<String> = Default::default();
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
                            assigned_any = true;
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
            if assigned_any {
                self.announce_queue(&topic).await;
            }
        }
    }

    /// Tells every queued conversation of a topic its (new) position.
    async fn announce_queue(&self, topic: &str) {
        match self
            .store
            .queued(vec![topic.to_owned()], DRAIN_PAGE * 2)
            .await
        {
            Ok(queued) => {
                for c in queued {
                    self.announce(c);
                }
            }
            Err(error) => tracing::error!(%error, topic, "Cannot read the queue"),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::core::testkit::TestCore;

    /// The head of a topic's queue read in one pass numbers each site's conversations as a
    /// count per conversation would (sites interleaved in the topic's order), on both engines.
    #[tokio::test]
    async fn a_queue_page_numbers_each_sites_conversations_like_a_count() {
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
            // Distinct queue times, so the queue's order is the order of creation.
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        }
        let page = t
            .core
            .store
            .queued(vec!["Order".into()], 100)
            .await
            .unwrap();
        assert_eq!(page.len(), 7);
        let got: Vec<(String, u32)> = page
            .iter()
            .map(|c| (c.id.clone(), c.queue_position))
            .collect();
        let mut counted = Vec::new();
        for c in &page {
            let one = t.core.store.conversation(&c.id).await.unwrap();
            counted.push((one.id, one.queue_position));
        }
        assert_eq!(
            got, counted,
            "positions from the page equal the per-row counts"
        );
        // Sites are numbered apart: the first site has 5 queued, the other 2.
        let mut mine: Vec<u32> = page
            .iter()
            .filter(|c| c.site_id == t.site.id)
            .map(|c| c.queue_position)
            .collect();
        mine.sort();
        assert_eq!(mine, [1, 2, 3, 4, 5]);
        assert!(
            page.iter()
                .filter(|c| c.site_id == other.id)
                .map(|c| c.queue_position)
                .eq([1, 2])
        );
        // A short page is still the head: positions 1..n per site.
        let head = t.core.store.queued(vec!["Order".into()], 3).await.unwrap();
        assert_eq!(
            head.iter().map(|c| c.queue_position).collect::<Vec<_>>(),
            [1, 1, 2]
        );
        assert_eq!(
            ids[..3],
            head.iter().map(|c| c.id.clone()).collect::<Vec<_>>()[..]
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
