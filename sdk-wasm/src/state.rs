//! The SDK's chat state as plain Rust, with no JS types: the client half of the delivery
//! contract. It compiles on every target and is unit-tested on the host (`cargo test -p
//! wsmschat-sdk`); `client/` drives it from the browser.
//!
//! - [`Cursors`]: the highest seq delivered per conversation (resume points, and the dedupe
//!   of messages a reconnect or a history load brings twice).
//! - [`Outbox`]: sends not yet acknowledged, in `send` order, each retried with its own
//!   `client_msg_id`; a send made before its conversation exists follows the send that creates
//!   it.
//! - [`retryable`], [`Faults`], [`reconnect_delay`]: what a failure means for a send or the
//!   stream.

use std::collections::{HashMap, VecDeque};

/// gRPC status codes the decisions below look at (numeric, as on the wire).
pub mod code {
    pub const CANCELLED: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const DEADLINE_EXCEEDED: i32 = 4;
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    pub const ABORTED: i32 = 10;
    pub const INTERNAL: i32 = 13;
    pub const UNAVAILABLE: i32 = 14;
}

/// Resume cursors: the highest seq delivered per conversation.
#[derive(Debug, Default)]
pub struct Cursors(HashMap<String, u64>);

impl Cursors {
    /// A message arrived: true if it is new (above the cursor), which then moves.
    pub fn accept(&mut self, conversation_id: &str, seq: u64) -> bool {
        let last = self.0.entry(conversation_id.to_owned()).or_insert(0);
        if seq <= *last {
            return false;
        }
        *last = seq;
        true
    }

    /// Everything up to `seq` is known (the newest history page was loaded).
    pub fn advance(&mut self, conversation_id: &str, seq: u64) {
        let last = self.0.entry(conversation_id.to_owned()).or_insert(0);
        *last = (*last).max(seq);
    }

    /// Follow a conversation from its start (one this client just created).
    pub fn follow(&mut self, conversation_id: &str) {
        self.0.entry(conversation_id.to_owned()).or_insert(0);
    }

    /// The cursors to resume from.
    pub fn list(&self) -> Vec<(String, u64)> {
        self.0.iter().map(|(c, s)| (c.clone(), *s)).collect()
    }

    /// Forget every conversation (another visitor on this browser).
    pub fn clear(&mut self) {
        self.0.clear();
    }
}

/// One send waiting for its Ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Its idempotency key, kept across retries and reloads.
    pub client_msg_id: String,
    /// Where it goes; empty until known for a conversation-starting send.
    pub conversation_id: String,
    /// The topic a conversation-starting send opens.
    pub topic: String,
    /// The earlier send (by client_msg_id) that creates this one's conversation; empty: none.
    pub follows: String,
    pub text: String,
    /// A private note (agents).
    pub note: bool,
}

/// The outbox: pending sends in order, each with a caller's handle `T` (the JS promise's
/// resolve/reject in the browser).
#[derive(Debug)]
pub struct Outbox<T> {
    entries: VecDeque<(Pending, T)>,
    /// client_msg_id of a conversation-starting send -> the conversation it created.
    created: HashMap<String, String>,
}

impl<T> Default for Outbox<T> {
    fn default() -> Self {
        Self {
            entries: VecDeque::new(),
            created: HashMap::new(),
        }
    }
}

impl<T> Outbox<T> {
    /// Nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The pending sends, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Pending> {
        self.entries.iter().map(|(p, _)| p)
    }

    /// The handles of every pending send (to reject them at close).
    pub fn handles_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.entries.iter_mut().map(|(_, t)| t)
    }

    /// The conversation-starting send a new send for `topic` without a conversation id
    /// follows (so sends made before the first Ack land in the same new conversation).
    pub fn follows_for(&self, topic: &str) -> String {
        self.iter()
            .find(|e| e.conversation_id.is_empty() && e.topic == topic && e.follows.is_empty())
            .map(|e| e.client_msg_id.clone())
            .unwrap_or_default()
    }

    /// Queues a send; a send whose client_msg_id is already waiting is the same send (a
    /// retry by the caller): its handle is returned to be merged, and nothing is queued twice.
    pub fn push(&mut self, pending: Pending, handle: T) -> Option<(&mut T, T)> {
        match self
            .entries
            .iter()
            .position(|(p, _)| p.client_msg_id == pending.client_msg_id)
        {
            Some(i) => Some((&mut self.entries[i].1, handle)),
            None => {
                self.entries.push_back((pending, handle));
                None
            }
        }
    }

    /// Puts back sends kept from an earlier page (a reload), skipping any already waiting.
    pub fn restore(&mut self, items: impl IntoIterator<Item = Pending>, handle: impl Fn() -> T) {
        for p in items {
            if p.client_msg_id.is_empty() || self.iter().any(|e| e.client_msg_id == p.client_msg_id)
            {
                continue;
            }
            self.entries.push_back((p, handle()));
        }
    }

    /// The send to try next: the oldest, with its conversation filled in once the send it
    /// follows has created it.
    pub fn head(&mut self) -> Option<&Pending> {
        let (e, _) = self.entries.front_mut()?;
        if e.conversation_id.is_empty() && !e.follows.is_empty() {
            if let Some(id) = self.created.get(&e.follows) {
                e.conversation_id = id.clone();
            }
        }
        Some(e)
    }

    /// The send was acknowledged into `conversation_id`: it leaves the outbox (returned with
    /// its handle), and sends following it now know their conversation.
    pub fn acked(&mut self, client_msg_id: &str, conversation_id: &str) -> Option<(Pending, T)> {
        let (mut p, t) = self.remove(client_msg_id)?;
        self.created
            .insert(p.client_msg_id.clone(), conversation_id.to_owned());
        p.conversation_id = conversation_id.to_owned();
        Some((p, t))
    }

    /// The send leaves the outbox without an Ack (refused).
    pub fn remove(&mut self, client_msg_id: &str) -> Option<(Pending, T)> {
        let pos = self
            .entries
            .iter()
            .position(|(p, _)| p.client_msg_id == client_msg_id)?;
        self.entries.remove(pos)
    }

    /// Forget every send (another visitor on this browser).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.created.clear();
    }
}

/// Worth retrying: the server or network may come back; anything else is a refusal.
pub fn retryable(code: i32) -> bool {
    matches!(
        code,
        code::UNAVAILABLE
            | code::UNKNOWN
            | code::DEADLINE_EXCEEDED
            | code::ABORTED
            | code::INTERNAL
            | code::RESOURCE_EXHAUSTED
            | code::CANCELLED
    )
}

/// How often a send the server answered with INTERNAL or UNKNOWN is tried before it fails:
/// such an answer may be a passing fault (disk full, a restart) or a message the server can
/// never take, and a message that can never be sent must not hold up every later one.
pub const SERVER_ERROR_TRIES: u32 = 5;

/// Counts the server faults of the send at the head of the outbox.
#[derive(Debug, Default)]
pub struct Faults {
    client_msg_id: String,
    count: u32,
}

impl Faults {
    /// A send failed with `code`: true to retry it, false to give up (a refusal, or the
    /// [`SERVER_ERROR_TRIES`]th server fault of the same send).
    pub fn retry(&mut self, client_msg_id: &str, code: i32) -> bool {
        if !retryable(code) {
            return false;
        }
        if matches!(code, code::INTERNAL | code::UNKNOWN) {
            if self.client_msg_id != client_msg_id {
                self.client_msg_id = client_msg_id.to_owned();
                self.count = 0;
            }
            self.count += 1;
            return self.count < SERVER_ERROR_TRIES;
        }
        true
    }
}

/// How long the stream waits before reconnect attempt `attempt` (1 = the first after a
/// loss): at once when the loss was asked for (woken by the app, or the server asked for a
/// resync) and it is the first attempt, else `backoff(attempt)`.
pub fn reconnect_delay(attempt: u32, asked: bool, backoff: impl Fn(u32) -> u32) -> u32 {
    if asked && attempt == 1 {
        0
    } else {
        backoff(attempt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(id: &str, conversation: &str, topic: &str, follows: &str) -> Pending {
        Pending {
            client_msg_id: id.into(),
            conversation_id: conversation.into(),
            topic: topic.into(),
            follows: follows.into(),
            text: format!("text of {id}"),
            note: false,
        }
    }

    #[test]
    fn cursors_drop_what_was_delivered_and_resume_after_it() {
        let mut c = Cursors::default();
        assert!(c.accept("c1", 1));
        assert!(c.accept("c1", 2));
        // A replay after reconnect brings 2 again: dropped; 3 is new.
        assert!(!c.accept("c1", 2));
        assert!(c.accept("c1", 3));
        // History loaded up to 10: live 7 is old news, 11 is not.
        c.advance("c1", 10);
        assert!(!c.accept("c1", 7));
        c.advance("c1", 4);
        assert_eq!(c.list(), vec![("c1".to_string(), 10)]);
        c.follow("c2");
        c.follow("c1");
        let mut l = c.list();
        l.sort();
        assert_eq!(l, vec![("c1".into(), 10), ("c2".into(), 0)]);
        c.clear();
        assert!(c.list().is_empty());
    }

    #[test]
    fn sends_before_the_first_ack_follow_it_into_the_new_conversation() {
        let mut o: Outbox<u32> = Outbox::default();
        assert_eq!(o.follows_for("Order"), "");
        o.push(send("a", "", "Order", ""), 1);
        let f = o.follows_for("Order");
        assert_eq!(f, "a");
        o.push(send("b", "", "Order", &f), 2);
        // Another topic starts its own conversation.
        assert_eq!(o.follows_for("Payment"), "");
        assert_eq!(o.head().unwrap().client_msg_id, "a");
        let (p, handle) = o.acked("a", "c_new").unwrap();
        assert_eq!((p.conversation_id.as_str(), handle), ("c_new", 1));
        // The follower now goes to the conversation its leader created.
        let head = o.head().unwrap();
        assert_eq!(
            (head.client_msg_id.as_str(), head.conversation_id.as_str()),
            ("b", "c_new")
        );
        assert!(o.acked("b", "c_new").is_some());
        assert!(o.is_empty());
        assert!(o.head().is_none());
    }

    #[test]
    fn a_repeated_send_and_a_restore_never_queue_twice() {
        let mut o: Outbox<Vec<u32>> = Outbox::default();
        assert!(o.push(send("a", "c", "", ""), vec![1]).is_none());
        let (existing, new) = o.push(send("a", "c", "", ""), vec![2]).unwrap();
        existing.extend(new);
        assert_eq!(o.iter().count(), 1);
        o.restore(
            [
                send("a", "c", "", ""),
                send("b", "c", "", ""),
                send("", "c", "", ""),
            ],
            Vec::new,
        );
        let ids: Vec<_> = o.iter().map(|p| p.client_msg_id.clone()).collect();
        assert_eq!(ids, ["a", "b"]);
        let (_, handles) = o.remove("a").unwrap();
        assert_eq!(handles, [1, 2]);
        assert!(o.remove("a").is_none());
        o.clear();
        assert!(o.is_empty());
    }

    #[test]
    fn refusals_fail_at_once_and_server_faults_after_five_tries() {
        let mut f = Faults::default();
        assert!(!f.retry("a", 3), "INVALID_ARGUMENT is a refusal");
        assert!(!f.retry("a", 7), "PERMISSION_DENIED is a refusal");
        for _ in 0..100 {
            assert!(f.retry("a", code::UNAVAILABLE), "the network may come back");
        }
        for n in 1..SERVER_ERROR_TRIES {
            assert!(f.retry("a", code::INTERNAL), "try {n}");
        }
        assert!(
            !f.retry("a", code::INTERNAL),
            "the fifth server fault gives up"
        );
        // The next send starts counting afresh.
        assert!(f.retry("b", code::UNKNOWN));
    }

    #[test]
    fn a_reconnect_that_was_asked_for_is_immediate_once() {
        let backoff = |a: u32| 500 * a;
        assert_eq!(reconnect_delay(1, true, backoff), 0);
        assert_eq!(reconnect_delay(2, true, backoff), 1000);
        assert_eq!(reconnect_delay(1, false, backoff), 500);
    }
}
