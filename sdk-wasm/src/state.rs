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
//! - [`Views`]: the merged view of a conversation the UIs render (messages by seq, then its
//!   pending and refused sends with their status, and the read marks).

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
    /// Ids of uploaded files it carries.
    pub attachment_ids: Vec<String>,
    /// Those files as JSON (the upload's answers), to show them while the send is pending.
    pub attachments_json: String,
    /// Where it stands (not persisted: a restored send is `Waiting`).
    pub state: SendState,
    /// Why its last try failed ("" when it did not).
    pub error: String,
}

/// Where a send not yet acknowledged stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SendState {
    /// Queued or in flight.
    #[default]
    Sending,
    /// Its last try failed for a reason that may pass; it will be tried again.
    Waiting,
    /// Refused (or given up after [`SERVER_ERROR_TRIES`] server faults): never retried by
    /// itself; the app may send it again with the same `client_msg_id`, or discard it.
    Failed,
}

impl SendState {
    pub fn as_str(self) -> &'static str {
        match self {
            SendState::Sending => "sending",
            SendState::Waiting => "waiting",
            SendState::Failed => "failed",
        }
    }
}

/// How many refused sends are kept for the UI to show (oldest dropped first).
pub const MAX_REFUSED: usize = 50;

/// The outbox: pending sends in order, each with a caller's handle `T` (the JS promise's
/// resolve/reject in the browser).
#[derive(Debug)]
pub struct Outbox<T> {
    entries: VecDeque<(Pending, T)>,
    /// client_msg_id of a conversation-starting send -> the conversation it created.
    created: HashMap<String, String>,
    /// Sends that left the outbox refused, kept (with their error) until sent again or
    /// discarded, so the UI can offer a retry.
    refused: VecDeque<Pending>,
}

impl<T> Default for Outbox<T> {
    fn default() -> Self {
        Self {
            entries: VecDeque::new(),
            created: HashMap::new(),
            refused: VecDeque::new(),
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
        self.refused
            .retain(|p| p.client_msg_id != pending.client_msg_id);
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

    /// The send's state changed (`Sending` again, or `Waiting` after a failure that may pass).
    pub fn mark(&mut self, client_msg_id: &str, state: SendState, error: &str) {
        if let Some((p, _)) = self
            .entries
            .iter_mut()
            .find(|(p, _)| p.client_msg_id == client_msg_id)
        {
            p.state = state;
            p.error = error.to_owned();
        }
    }

    /// The send was refused: it leaves the outbox (returned with its handle) and is kept as
    /// `Failed` with `error` until sent again or discarded.
    pub fn refuse(&mut self, client_msg_id: &str, error: &str) -> Option<(Pending, T)> {
        let (mut p, t) = self.remove(client_msg_id)?;
        p.state = SendState::Failed;
        p.error = error.to_owned();
        if p.conversation_id.is_empty() {
            if let Some(id) = self.created.get(&p.follows) {
                p.conversation_id = id.clone();
            }
        }
        if self.refused.len() == MAX_REFUSED {
            self.refused.pop_front();
        }
        self.refused.push_back(p.clone());
        Some((p, t))
    }

    /// Drops a send, pending or refused (the user gave up on it); a pending one's handle is
    /// returned. A send already in flight may still land.
    pub fn discard(&mut self, client_msg_id: &str) -> Option<Pending> {
        if let Some(i) = self
            .refused
            .iter()
            .position(|p| p.client_msg_id == client_msg_id)
        {
            return self.refused.remove(i);
        }
        self.remove(client_msg_id).map(|(p, _)| p)
    }

    /// The conversation a send goes to: its own, the one the send it follows created, or ""
    /// (not created yet).
    pub fn conversation_of<'a>(&'a self, p: &'a Pending) -> &'a str {
        if !p.conversation_id.is_empty() {
            return &p.conversation_id;
        }
        self.created
            .get(&p.follows)
            .map(String::as_str)
            .unwrap_or("")
    }

    /// The sends of one conversation, pending first (in order) then refused; with
    /// `conversation_id` "", the sends that will start a new conversation on `topic`.
    pub fn sends_for(&self, conversation_id: &str, topic: &str) -> Vec<&Pending> {
        // Plain loops, not iterator adapters: this runs in the widget's wasm, kept small.
        let mut out = Vec::new();
        for p in self.entries.iter().map(|(p, _)| p).chain(&self.refused) {
            let c = self.conversation_of(p);
            if c == conversation_id && (!c.is_empty() || p.topic == topic) {
                out.push(p);
            }
        }
        out
    }

    /// Forget every send (another visitor on this browser).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.created.clear();
        self.refused.clear();
    }
}

/// What the view needs of a stored message.
pub trait Item {
    fn seq(&self) -> u64;
    fn client_msg_id(&self) -> &str;
}

/// The stored part of one conversation's view: its messages by seq and the read marks.
#[derive(Debug)]
pub struct View<M> {
    /// Sorted by seq. (A sorted Vec rather than a map or a set: a few hundred messages at
    /// most are held, and it keeps the widget's wasm small.)
    messages: Vec<M>,
    /// The visitor has read up to this seq.
    pub visitor_read_seq: u64,
    /// The agents have read up to this seq.
    pub agent_read_seq: u64,
    /// Older messages exist before the oldest one held.
    pub has_more: bool,
    /// The newest history page was loaded (before that, only live messages are held).
    pub loaded: bool,
    used: u64,
}

impl<M> Default for View<M> {
    fn default() -> Self {
        Self {
            messages: Vec::new(),
            visitor_read_seq: 0,
            agent_read_seq: 0,
            has_more: false,
            loaded: false,
            used: 0,
        }
    }
}

impl<M: Item> View<M> {
    /// The messages held, by seq.
    pub fn messages(&self) -> impl Iterator<Item = &M> {
        self.messages.iter()
    }

    /// The oldest seq held (0: none): where the next older page ends.
    pub fn oldest_seq(&self) -> u64 {
        self.messages.first().map(|m| m.seq()).unwrap_or(0)
    }

    /// A message of this conversation, new or a richer copy of one held (the stream's copy
    /// of a send first shown from its Ack). true: the view changed.
    fn put(&mut self, m: M, replace: bool) -> bool {
        let seq = m.seq();
        match self.messages.binary_search_by_key(&seq, |x| x.seq()) {
            Ok(_) if !replace => return false,
            Ok(i) => self.messages[i] = m,
            Err(i) => self.messages.insert(i, m),
        }
        true
    }

    /// True when the message of this send is held.
    pub fn has_send(&self, client_msg_id: &str) -> bool {
        !client_msg_id.is_empty()
            && self
                .messages
                .iter()
                .rev()
                .any(|m| m.client_msg_id() == client_msg_id)
    }
}

/// How many conversation views are kept (the least recently used is dropped beyond this).
pub const MAX_VIEWS: usize = 32;

/// The views of the conversations the app opened (a console's inbox stream brings every
/// conversation's messages; only the open ones are held).
#[derive(Debug)]
pub struct Views<M> {
    open: Vec<(String, View<M>)>,
    clock: u64,
}

impl<M> Default for Views<M> {
    fn default() -> Self {
        Self {
            open: Vec::new(),
            clock: 0,
        }
    }
}

impl<M: Item> Views<M> {
    /// The view of a conversation, opened if it was not (dropping the least recently used
    /// beyond [`MAX_VIEWS`]).
    pub fn open(&mut self, conversation_id: &str) -> &mut View<M> {
        self.clock += 1;
        let i = match self.open.iter().position(|(k, _)| k == conversation_id) {
            Some(i) => i,
            None => {
                if self.open.len() >= MAX_VIEWS {
                    if let Some(oldest) = (0..self.open.len()).min_by_key(|&i| self.open[i].1.used)
                    {
                        self.open.swap_remove(oldest);
                    }
                }
                self.open
                    .push((conversation_id.to_owned(), View::default()));
                self.open.len() - 1
            }
        };
        let v = &mut self.open[i].1;
        v.used = self.clock;
        v
    }

    pub fn get(&self, conversation_id: &str) -> Option<&View<M>> {
        self.open
            .iter()
            .find(|(k, _)| k == conversation_id)
            .map(|(_, v)| v)
    }

    fn get_mut(&mut self, conversation_id: &str) -> Option<&mut View<M>> {
        self.open
            .iter_mut()
            .find(|(k, _)| k == conversation_id)
            .map(|(_, v)| v)
    }

    /// Stops holding a conversation.
    pub fn close(&mut self, conversation_id: &str) {
        self.open.retain(|(k, _)| k != conversation_id);
    }

    /// Forgets every view (another visitor on this browser).
    pub fn clear(&mut self) {
        self.open.clear();
    }

    /// A message from the stream: held if its conversation is open. true: the view changed.
    pub fn message(&mut self, conversation_id: &str, m: M) -> bool {
        match self.get_mut(conversation_id) {
            Some(v) => v.put(m, true),
            None => false,
        }
    }

    /// A history page, ascending; `newest`: the page ends at the newest message. Its
    /// `has_more` counts when it reaches at least as far back as what is held.
    pub fn page(&mut self, conversation_id: &str, messages: Vec<M>, has_more: bool, newest: bool) {
        let v = self.open(conversation_id);
        let oldest = v.oldest_seq();
        match messages.first() {
            // Nothing (older): the conversation starts at what is held.
            None => v.has_more = has_more,
            Some(first) if oldest == 0 || first.seq() <= oldest => v.has_more = has_more,
            Some(_) => {}
        }
        if newest {
            v.loaded = true;
        }
        for m in messages {
            v.put(m, true);
        }
    }

    /// Our own send was acknowledged: `m` (built from the send and its Ack) stands in for the
    /// message until the stream or a history page brings the stored one.
    pub fn acked(&mut self, conversation_id: &str, m: M) {
        self.open(conversation_id).put(m, false);
    }

    /// A read mark moved (a Read event, a conversation update, our own mark). true: changed.
    pub fn read(&mut self, conversation_id: &str, by_visitor: bool, seq: u64) -> bool {
        let Some(v) = self.get_mut(conversation_id) else {
            return false;
        };
        let mark = if by_visitor {
            &mut v.visitor_read_seq
        } else {
            &mut v.agent_read_seq
        };
        if seq <= *mark {
            return false;
        }
        *mark = seq;
        true
    }
}

/// One line of a conversation as the UI shows it.
#[derive(Debug)]
pub enum Line<'a, M> {
    /// Stored (its seq is its place).
    Stored(&'a M),
    /// Ours, not acknowledged yet, or refused ([`SendState`] says which).
    Send(&'a Pending),
}

/// The merged view of a conversation: its stored messages by seq, then the sends of ours
/// not yet stored (pending in order, then refused); with `conversation_id` "", the sends
/// that will start a new conversation on `topic`.
pub fn lines<'a, M: Item, T>(
    view: Option<&'a View<M>>,
    outbox: &'a Outbox<T>,
    conversation_id: &str,
    topic: &str,
) -> Vec<Line<'a, M>> {
    let mut out = Vec::new();
    if let Some(v) = view {
        for m in &v.messages {
            out.push(Line::Stored(m));
        }
    }
    for p in outbox.sends_for(conversation_id, topic) {
        if !view.is_some_and(|v| v.has_send(&p.client_msg_id)) {
            out.push(Line::Send(p));
        }
    }
    out
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
            attachment_ids: Vec::new(),
            attachments_json: String::new(),
            state: SendState::Sending,
            error: String::new(),
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

    #[derive(Debug, Clone, PartialEq)]
    struct Msg(u64, &'static str, &'static str);
    impl Item for Msg {
        fn seq(&self) -> u64 {
            self.0
        }
        fn client_msg_id(&self) -> &str {
            self.1
        }
    }

    /// (seq or 0, client_msg_id, status) of each line.
    fn shown(
        views: &Views<Msg>,
        o: &Outbox<u32>,
        conversation: &str,
        topic: &str,
    ) -> Vec<(u64, String, &'static str)> {
        lines(views.get(conversation), o, conversation, topic)
            .into_iter()
            .map(|l| match l {
                Line::Stored(m) => (m.0, m.1.to_string(), m.2),
                Line::Send(p) => (0, p.client_msg_id.clone(), p.state.as_str()),
            })
            .collect()
    }

    #[test]
    fn the_view_merges_history_live_messages_and_pending_sends_once() {
        let mut v: Views<Msg> = Views::default();
        let mut o: Outbox<u32> = Outbox::default();
        // A stream message for a conversation nobody opened is not held.
        assert!(!v.message("c1", Msg(9, "", "live")));
        assert!(v.get("c1").is_none());
        // Opened: live 4 arrives before the newest page (1..3) returns.
        v.open("c1");
        assert!(v.message("c1", Msg(4, "", "live")));
        v.page("c1", vec![Msg(2, "", "h"), Msg(3, "", "h")], true, true);
        assert!(v.get("c1").unwrap().has_more && v.get("c1").unwrap().loaded);
        // Two sends of ours; the second is refused.
        o.push(send("a", "c1", "", ""), 1);
        o.push(send("b", "c1", "", ""), 2);
        o.mark("a", SendState::Waiting, "offline");
        o.refuse("b", "too long").unwrap();
        assert_eq!(
            shown(&v, &o, "c1", ""),
            vec![
                (2, "".into(), "h"),
                (3, "".into(), "h"),
                (4, "".into(), "live"),
                (0, "a".into(), "waiting"),
                (0, "b".into(), "failed"),
            ]
        );
        // The stream brings "a" before its Ack: shown once, as stored.
        v.message("c1", Msg(5, "a", "live"));
        assert_eq!(shown(&v, &o, "c1", "").len(), 5);
        // The Ack's stand-in never replaces the stored copy.
        o.acked("a", "c1");
        v.acked("c1", Msg(5, "a", "from ack"));
        assert_eq!(v.get("c1").unwrap().messages().last().unwrap().2, "live");
        // The oldest page: nothing before it.
        v.page("c1", vec![Msg(1, "", "h")], false, false);
        assert!(!v.get("c1").unwrap().has_more);
        let seqs: Vec<u64> = v.get("c1").unwrap().messages().map(|m| m.0).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5]);
        // A retry of the refused send makes it pending again; a discard drops it.
        o.push(send("b", "c1", "", ""), 3);
        assert_eq!(shown(&v, &o, "c1", "").last().unwrap().2, "sending");
        assert!(o.discard("b").is_some());
        assert_eq!(shown(&v, &o, "c1", "").len(), 5);
    }

    #[test]
    fn sends_starting_a_conversation_show_under_their_topic_then_in_it() {
        let v: Views<Msg> = Views::default();
        let mut o: Outbox<u32> = Outbox::default();
        o.push(send("a", "", "Order", ""), 1);
        let f = o.follows_for("Order");
        o.push(send("b", "", "Order", &f), 2);
        o.push(send("x", "", "Payment", ""), 3);
        let ids = |o: &Outbox<u32>, conversation: &str, topic: &str| -> Vec<String> {
            shown(&v, o, conversation, topic)
                .into_iter()
                .map(|l| l.1)
                .collect()
        };
        assert_eq!(ids(&o, "", "Order"), ["a", "b"]);
        assert_eq!(ids(&o, "", "Payment"), ["x"]);
        o.acked("a", "c_new");
        // The follower is the new conversation's now, not the draft's.
        assert!(ids(&o, "", "Order").is_empty());
        assert_eq!(ids(&o, "c_new", ""), ["b"]);
        // Refused after its leader created the conversation: shown there.
        o.refuse("b", "no").unwrap();
        assert_eq!(ids(&o, "c_new", ""), ["b"]);
    }

    #[test]
    fn views_keep_read_marks_rising_and_drop_the_least_recently_used() {
        let mut v: Views<Msg> = Views::default();
        assert!(!v.read("c", true, 3), "not open: nothing held");
        v.open("c");
        assert!(v.read("c", true, 3));
        assert!(!v.read("c", true, 2), "marks never go back");
        assert!(v.read("c", false, 1));
        let c = v.get("c").unwrap();
        assert_eq!((c.visitor_read_seq, c.agent_read_seq), (3, 1));
        for i in 0..MAX_VIEWS {
            v.open(&format!("other{i}"));
        }
        assert!(v.get("c").is_none(), "the least recently used went");
        assert!(v.get(&format!("other{}", MAX_VIEWS - 1)).is_some());
        v.clear();
        assert!(v.get("other0").is_none());
    }

    #[test]
    fn refused_sends_are_bounded() {
        let mut o: Outbox<u32> = Outbox::default();
        for i in 0..MAX_REFUSED + 5 {
            let id = format!("s{i}");
            o.push(send(&id, "c", "", ""), 0);
            o.refuse(&id, "no").unwrap();
        }
        let shown: Vec<String> = o
            .sends_for("c", "")
            .into_iter()
            .map(|p| p.client_msg_id.clone())
            .collect();
        assert_eq!(shown.len(), MAX_REFUSED);
        assert_eq!(shown[0], "s5");
    }

    #[test]
    fn a_reconnect_that_was_asked_for_is_immediate_once() {
        let backoff = |a: u32| 500 * a;
        assert_eq!(reconnect_delay(1, true, backoff), 0);
        assert_eq!(reconnect_delay(2, true, backoff), 1000);
        assert_eq!(reconnect_delay(1, false, backoff), 500);
    }
}
