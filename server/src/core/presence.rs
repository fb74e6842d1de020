//! Agent presence: who is online, for which topics. An agent is online while at least one of
//! their streams is open and they have not set themselves away.

use std::collections::HashMap;
use std::sync::Mutex;

use wsmschat::v1;

struct State {
    /// The agent as last loaded (topics, capacity, name).
    agent: v1::Agent,
    /// Chosen status while connected (online or away).
    chosen: v1::PresenceStatus,
    /// Open streams.
    streams: u32,
}

/// Presence of every agent this node knows.
#[derive(Default)]
pub struct Presence {
    agents: Mutex<HashMap<String, State>>,
}

/// Does an agent answer this topic? No topics means every topic.
pub fn serves_topic(agent: &v1::Agent, topic: &str) -> bool {
    agent.topics.is_empty() || agent.topics.iter().any(|t| t.eq_ignore_ascii_case(topic))
}

impl Presence {
    /// The effective status of an agent.
    pub fn status(&self, agent_id: &str) -> v1::PresenceStatus {
        self.agents
            .lock()
            .unwrap()
            .get(agent_id)
            .map(effective)
            .unwrap_or(v1::PresenceStatus::Offline)
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
        self.agents
            .lock()
            .unwrap()
            .values()
            .filter(|s| {
                effective(s) == v1::PresenceStatus::Online
                    && s.agent.active
                    && serves_topic(&s.agent, topic)
            })
            .map(|s| s.agent.id.clone())
            .collect()
    }

    /// Topics of an agent as last known (empty = all).
    pub fn topics_of(&self, agent_id: &str) -> Option<Vec<String>> {
        self.agents
            .lock()
            .unwrap()
            .get(agent_id)
            .map(|s| s.agent.topics.clone())
    }

    /// Status of every known agent.
    pub fn snapshot(&self) -> HashMap<String, v1::PresenceStatus> {
        self.agents
            .lock()
            .unwrap()
            .iter()
            .map(|(id, s)| (id.clone(), effective(s)))
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

fn changed(before: v1::PresenceStatus, after: v1::PresenceStatus) -> Option<v1::PresenceStatus> {
    (before != after).then_some(after)
}
