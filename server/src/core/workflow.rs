//! The support workflow: assignment and the queue.
//!
//! A conversation enters the queue when it is created (or reopened). Draining a topic's queue
//! hands its conversations, oldest first, to the least-loaded online agent of the topic that is
//! under capacity; it stops at the first conversation nobody can take, so order is kept. The
//! capacity check and the assignment run in one store transaction, so concurrent assignments
//! never push an agent over capacity. Draining runs when a conversation is queued, an agent
//! comes online, or an agent's load drops (resolve, transfer).

use std::sync::Arc;

use wsmschat::v1;

use super::Core;
use crate::error::CoreResult;
use crate::store::{AssignTarget, Changed};

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
                self.drain(topics).await;
            }
        }
        if left_queue {
            self.announce_queue(&topic).await;
        }
    }

    /// Serves the queues of these topics, oldest conversation first.
    pub async fn drain(self: &Arc<Self>, topics: Vec<String>) {
        let _serial = self.drain_lock.lock().await;
        for topic in topics {
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
