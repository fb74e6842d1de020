//! An agent's presence (online, away; offline follows from closing streams), told to the inbox
//! and the other nodes; an agent coming online takes queued work.

use std::sync::Arc;

use wsmschat::v1;
use wsmschat::v1::server_event::Event as Se;

use crate::auth::Principal;
use crate::core::{Core, event};
use crate::error::{CoreError, CoreResult};

impl Core {
    pub(super) async fn set_presence(
        self: &Arc<Self>,
        principal: &Principal,
        p: v1::SetPresence,
    ) -> CoreResult<()> {
        let agent = Self::require_agent(principal)?;
        let status = v1::PresenceStatus::try_from(p.status).unwrap_or_default();
        if !matches!(
            status,
            v1::PresenceStatus::Online | v1::PresenceStatus::Away
        ) {
            return Err(CoreError::InvalidArgument(
                "presence must be ONLINE or AWAY (OFFLINE follows from closing streams)".into(),
            ));
        }
        if let Some(now) = self.presence.set(agent, status) {
            self.presence_changed(agent, now).await;
        }
        Ok(())
    }

    /// Agent presence changed: tell the inbox, and an agent coming online takes queued work.
    pub async fn presence_changed(self: &Arc<Self>, agent: &v1::Agent, status: v1::PresenceStatus) {
        // Other nodes get it with the agent's topics (their routers need them).
        if let Some(bus) = self.cluster.get() {
            bus.publish_presence(agent, status, false);
        }
        // Inbox streams get the cluster-wide status (the agent may be online on another node).
        let cluster_status = self.presence.status(&agent.id);
        self.hub
            .deliver_inbox_local(event(Se::Presence(v1::PresenceChanged {
                agent_id: agent.id.clone(),
                agent_name: agent.name.clone(),
                status: cluster_status as i32,
            })));
        if status == v1::PresenceStatus::Online {
            let topics = self.topics_for(agent).await;
            self.drain(topics);
        }
    }

    /// The topics an agent serves, as concrete topic names (empty = every site's topics).
    async fn topics_for(&self, agent: &v1::Agent) -> Vec<String> {
        if !agent.topics.is_empty() {
            return agent.topics.clone();
        }
        self.all_topics().await
    }
}
