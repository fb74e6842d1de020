//! Agent presence: who is online, for which topics. An agent is online while at least one of
//! their streams is open and they have not set themselves away.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

// tokio's clock (the system's unless a test pauses it): expiry is tested on a paused clock.
use tokio::time::Instant;

use wsmschat::v1;

struct State {
    /// The agent as last loaded (topics, capacity, name).
    agent: v1::Agent,
    /// Chosen status while connected (online or away).
    chosen: v1::PresenceStatus,
    /// Open streams.
    streams: u32,
}

/// An agent connected to another node, as announced on the bus.
struct RemoteState {
    node: String,
    status: v1::PresenceStatus,
    topics: Vec<String>,
    /// When last announced: entries not refreshed in time belong to a dead node.
    seen: Instant,
}

/// How long a remote announcement counts without a refresh.
const REMOTE_TTL: Duration = Duration::from_secs(15);

/// Presence of every agent: those connected here, and those other nodes announced.
#[derive(Default)]
pub struct Presence {
    agents: Mutex<HashMap<String, State>>,
    remote: Mutex<HashMap<String, RemoteState>>,
}

/// Does an agent answer this topic? No topics means every topic.
pub fn serves_topic(agent: &v1::Agent, topic: &str) -> bool {
    agent.topics.is_empty() || agent.topics.iter().any(|t| t.eq_ignore_ascii_case(topic))
}

impl Presence {
    /// The effective status of an agent, cluster-wide (online beats away beats offline).
    pub fn status(&self, agent_id: &str) -> v1::PresenceStatus {
        let local = self
            .agents
            .lock()
            .unwrap()
            .get(agent_id)
            .map(effective)
            .unwrap_or(v1::PresenceStatus::Offline);
        let remote = self
            .remote
            .lock()
            .unwrap()
            .get(agent_id)
            .filter(|r| r.seen.elapsed() < REMOTE_TTL)
            .map(|r| r.status)
            .unwrap_or(v1::PresenceStatus::Offline);
        best(local, remote)
    }

    /// Records another node's announcement; true if the agent's cluster status changed.
    pub fn set_remote(
        &self,
        node: &str,
        agent_id: &str,
        status: v1::PresenceStatus,
        topics: Vec<String>,
    ) -> bool {
        let before = self.status(agent_id);
        {
            let mut remote = self.remote.lock().unwrap();
            let keep_other_node = remote.get(agent_id).is_some_and(|r| {
                r.node != node
                    && r.seen.elapsed() < REMOTE_TTL
                    && status == v1::PresenceStatus::Offline
            });
            if !keep_other_node {
                remote.insert(
                    agent_id.to_owned(),
                    RemoteState {
                        node: node.to_owned(),
                        status,
                        topics,
                        seen: Instant::now(),
                    },
                );
            }
        }
        before != self.status(agent_id)
    }

    /// Agents with at least one stream on this node, and their status (for announcements).
    pub fn local_connected(&self) -> Vec<(v1::Agent, v1::PresenceStatus)> {
        self.agents
            .lock()
            .unwrap()
            .values()
            .filter(|s| s.streams > 0)
            .map(|s| (s.agent.clone(), effective(s)))
            .collect()
    }

    /// A stream of the agent opened. Returns the new status if it changed.
    pub fn stream_opened(&self, agent: &v1::Agent) -> Option<v1::PresenceStatus> {
        let mut agents = self.agents.lock().unwrap();
        let state = agents.entry(agent.id.clone()).or_insert_with(|| State {
            agent: agent.clone(),
            chosen: v1::PresenceStatus::Online,
            streams: 0,
        });
        let before = effective(state);
        state.agent = agent.clone();
        state.streams += 1;
        changed(before, effective(state))
    }

    /// A stream of the agent closed. Returns the new status if it changed.
    pub fn stream_closed(&self, agent_id: &str) -> Option<v1::PresenceStatus> {
        let mut agents = self.agents.lock().unwrap();
        let state = agents.get_mut(agent_id)?;
        let before = effective(state);
        state.streams = state.streams.saturating_sub(1);
        if state.streams == 0 {
            // Next connection starts online again.
            state.chosen = v1::PresenceStatus::Online;
        }
        changed(before, effective(state))
    }

    /// The agent chose online or away. Returns the new status if it changed.
    pub fn set(&self, agent: &v1::Agent, status: v1::PresenceStatus) -> Option<v1::PresenceStatus> {
        let mut agents = self.agents.lock().unwrap();
        let state = agents.entry(agent.id.clone()).or_insert_with(|| State {
            agent: agent.clone(),
            chosen: status,
            streams: 0,
        });
        let before = effective(state);
        state.chosen = status;
        changed(before, effective(state))
    }

    /// Updates what is known of an agent (after an admin change).
    pub fn refresh(&self, agent: &v1::Agent) {
        if let Some(state) = self.agents.lock().unwrap().get_mut(&agent.id) {
            state.agent = agent.clone();
        }
    }

    /// Ids of online agents answering `topic`.
    pub fn online_for(&self, topic: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .agents
            .lock()
            .unwrap()
            .values()
            .filter(|s| {
                effective(s) == v1::PresenceStatus::Online
                    && s.agent.active
                    && serves_topic(&s.agent, topic)
            })
            .map(|s| s.agent.id.clone())
            .collect();
        // Agents online on other nodes (announced on the bus, not expired).
        for (id, r) in self.remote.lock().unwrap().iter() {
            let serves =
                r.topics.is_empty() || r.topics.iter().any(|t| t.eq_ignore_ascii_case(topic));
            if r.status == v1::PresenceStatus::Online
                && r.seen.elapsed() < REMOTE_TTL
                && serves
                && !ids.contains(id)
            {
                ids.push(id.clone());
            }
        }
        ids
    }

    /// Topics of an agent as last known (empty = all).
    pub fn topics_of(&self, agent_id: &str) -> Option<Vec<String>> {
        if let Some(s) = self.agents.lock().unwrap().get(agent_id) {
            return Some(s.agent.topics.clone());
        }
        self.remote
            .lock()
            .unwrap()
            .get(agent_id)
            .map(|r| r.topics.clone())
    }

    /// Status of every known agent, cluster-wide.
    pub fn snapshot(&self) -> HashMap<String, v1::PresenceStatus> {
        let mut ids: Vec<String> = self.agents.lock().unwrap().keys().cloned().collect();
        ids.extend(self.remote.lock().unwrap().keys().cloned());
        ids.into_iter()
            .map(|id| {
                let s = self.status(&id);
                (id, s)
            })
            .collect()
    }
}

fn effective(s: &State) -> v1::PresenceStatus {
    if s.streams == 0 {
        v1::PresenceStatus::Offline
    } else {
        s.chosen
    }
}

fn rank(s: v1::PresenceStatus) -> u8 {
    match s {
        v1::PresenceStatus::Online => 2,
        v1::PresenceStatus::Away => 1,
        _ => 0,
    }
}

fn best(a: v1::PresenceStatus, b: v1::PresenceStatus) -> v1::PresenceStatus {
    if rank(a) >= rank(b) { a } else { b }
}

fn changed(before: v1::PresenceStatus, after: v1::PresenceStatus) -> Option<v1::PresenceStatus> {
    (before != after).then_some(after)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::advance;
    use wsmschat::v1::PresenceStatus::{Away, Offline, Online};

    use super::{Presence, REMOTE_TTL};

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn another_nodes_agent_expires_unless_refreshed() {
        let p = Presence::default();
        assert!(p.set_remote("n1", "a1", Online, vec!["Order".into()]));
        assert_eq!(p.status("a1"), Online);
        assert_eq!(p.online_for("order"), ["a1"]);
        assert!(p.online_for("Payment").is_empty(), "not one of its topics");

        // A refresh just before the TTL changes nothing but keeps the agent for another TTL.
        advance(REMOTE_TTL - SECOND).await;
        assert!(!p.set_remote("n1", "a1", Online, vec!["Order".into()]));
        advance(REMOTE_TTL - SECOND).await;
        assert_eq!(
            p.status("a1"),
            Online,
            "refreshed {:?} ago",
            REMOTE_TTL - SECOND
        );
        assert_eq!(p.online_for("Order"), ["a1"]);

        // No refresh for a whole TTL: its node is taken for dead.
        advance(SECOND).await;
        assert_eq!(p.status("a1"), Offline);
        assert!(p.online_for("Order").is_empty());
        assert_eq!(p.snapshot().get("a1"), Some(&Offline));
        // An announcement brings it back, as a change.
        assert!(p.set_remote("n1", "a1", Away, vec![]));
        assert_eq!(p.status("a1"), Away);
    }

    #[tokio::test(start_paused = true)]
    async fn an_offline_from_another_node_counts_once_the_online_one_is_stale() {
        let p = Presence::default();
        p.set_remote("n1", "a1", Online, vec!["Order".into()]);
        // The agent left n2 while still online on n1: n1's fresh entry stands.
        advance(REMOTE_TTL - SECOND).await;
        assert!(!p.set_remote("n2", "a1", Offline, vec!["Payment".into()]));
        assert_eq!(p.status("a1"), Online);
        assert_eq!(p.topics_of("a1"), Some(vec!["Order".to_string()]));
        // Once n1's entry is stale, n2's word replaces it.
        advance(SECOND).await;
        assert!(!p.set_remote("n2", "a1", Offline, vec!["Payment".into()]));
        assert_eq!(p.topics_of("a1"), Some(vec!["Payment".to_string()]));
        assert_eq!(p.status("a1"), Offline);
    }
}
