//! `ChatClient`: one duplex chat connection over gRPC-web (see the crate docs), split by
//! concern:
//!
//! - this file: the state one client shares between its tasks ([`Shared`]), events to JS,
//!   the visitor session;
//! - [`stream`]: the Subscribe stream, heartbeats and reconnects;
//! - [`outbox`]: ordered, retried, persisted sends;
//! - [`errors`]: JS errors from statuses; [`rpc`]: the unary calls;
//! - [`api`]: the `#[wasm_bindgen]` JS API.
//!
//! What to do with a message, a send or a failure is decided in [`crate::state`] (plain Rust,
//! unit-tested on the host); these files only carry it out in the browser.

mod api;
mod errors;
mod outbox;
mod rpc;
mod stream;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;

use futures_channel::mpsc::UnboundedSender;
use js_sys::{Array, Function, Promise};
use tonic::{Request, Status};
use tonic_web_wasm_client::Client;
use tonic_web_wasm_client::options::FetchOptions;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;
use wsmschat::v1;
use wsmschat::v1::client_event::Event as Ce;

#[cfg(feature = "agent")]
pub(crate) use errors::normalize_server;
use errors::{classify, status_error};
pub(crate) use rpc::Rpc;

use crate::js::{self, O, get_opt_str, get_str};
use crate::rt::Store;
use crate::state::{Cursors, Item, Line, Outbox, Pending, Views};

/// Unary calls give up after this long (and sends are then retried).
const UNARY_TIMEOUT_MS: u64 = 15_000;

/// The caller's promise handles of one send (resolve, reject); None once settled.
pub(crate) type Settle = Option<(Function, Function)>;

pub(crate) struct Shared {
    server: String,
    unary: Client,
    streaming: Client,
    pub(crate) token: RefCell<String>,
    store: Store,
    /// Visitor clients persist their token and outbox under this site key; "" for agents.
    site_key: String,
    state: Cell<&'static str>,
    handlers: RefCell<Vec<(String, Function)>>,
    /// Highest seq delivered per conversation: the resume cursors.
    cursors: RefCell<Cursors>,
    inbox: Cell<bool>,
    started: Cell<bool>,
    closed: Cell<bool>,
    heartbeat_ms: Cell<u32>,
    stream_wake: RefCell<Option<UnboundedSender<()>>>,
    /// Sends not yet acknowledged, with their callers' promise handles.
    outbox: RefCell<Outbox<Settle>>,
    /// The conversations the app opened: what `view()` merges with the outbox.
    views: RefCell<Views<Stored>>,
    pump_wake: RefCell<Option<UnboundedSender<()>>>,
    visitor_id: RefCell<String>,
    verified: Cell<bool>,
    site: RefCell<JsValue>,
    pub(crate) agent: RefCell<JsValue>,
    open_conversations: RefCell<JsValue>,
    connect_opts: RefCell<JsValue>,
}

/// A chat connection: a visitor on a site (`ChatClient.connect`), an agent
/// (`ChatClient.login`) or a service/agent token (`ChatClient.withToken`). Subscribe to events
/// with `on`, open the live stream with `start`, and send with `send`.
#[wasm_bindgen]
pub struct ChatClient {
    pub(crate) sh: Rc<Shared>,
}

pub(crate) fn promise<F>(fut: F) -> Promise
where
    F: Future<Output = Result<JsValue, JsValue>> + 'static,
{
    future_to_promise(fut)
}

impl Shared {
    pub(crate) fn new(server: String, store: Store, site_key: String) -> Rc<Self> {
        let timeout = std::time::Duration::from_millis(UNARY_TIMEOUT_MS);
        Rc::new(Shared {
            unary: Client::new_with_options(server.clone(), FetchOptions::new().timeout(timeout)),
            streaming: Client::new(server.clone()),
            server,
            token: RefCell::new(String::new()),
            store,
            site_key,
            state: Cell::new("idle"),
            handlers: RefCell::new(Vec::new()),
            cursors: RefCell::new(Cursors::default()),
            inbox: Cell::new(false),
            started: Cell::new(false),
            closed: Cell::new(false),
            heartbeat_ms: Cell::new(0),
            stream_wake: RefCell::new(None),
            outbox: RefCell::new(Outbox::default()),
            views: RefCell::new(Views::default()),
            pump_wake: RefCell::new(None),
            visitor_id: RefCell::new(String::new()),
            verified: Cell::new(false),
            site: RefCell::new(JsValue::UNDEFINED),
            agent: RefCell::new(JsValue::UNDEFINED),
            open_conversations: RefCell::new(Array::new().into()),
            connect_opts: RefCell::new(JsValue::UNDEFINED),
        })
    }

    pub(super) fn key(&self, what: &str) -> String {
        format!("wsmschat:{}:{what}", self.site_key)
    }

    pub(crate) fn req<T>(&self, msg: T) -> Request<T> {
        let mut r = Request::new(msg);
        if self.token.borrow().is_empty() {
            return r;
        }
        if let Ok(v) = format!("Bearer {}", self.token.borrow()).parse() {
            r.metadata_mut().insert("authorization", v);
        }
        r
    }

    pub(crate) fn err(&self, s: &Status) -> JsValue {
        let (code, msg) = classify(&self.server, s);
        status_error(code, &format!("wsmschat: {msg}"), s)
    }

    pub(crate) fn chat(&self) -> Rpc<'_> {
        Rpc(self)
    }

    pub(crate) fn admin(&self) -> Rpc<'_> {
        Rpc(self)
    }

    pub(crate) fn session(&self) -> Rpc<'_> {
        Rpc(self)
    }

    pub(super) fn emit(&self, name: &str, payload: &JsValue) {
        let targets: Vec<Function> = self
            .handlers
            .borrow()
            .iter()
            .filter(|(n, _)| n == name || n == "*")
            .map(|(_, f)| f.clone())
            .collect();
        for f in targets {
            if let Err(e) = f.call2(&JsValue::NULL, payload, &JsValue::from_str(name)) {
                web_sys::console::error_2(&"wsmschat: an event handler threw".into(), &e);
            }
        }
    }

    pub(super) fn set_state(
        &self,
        state: &'static str,
        attempt: u32,
        retry_in: Option<u32>,
        err: Option<&str>,
    ) {
        if self.state.get() == state && state != "offline" {
            return;
        }
        self.state.set(state);
        let mut o = O::new().s("state", state).n("attempt", attempt as f64);
        if let Some(ms) = retry_in {
            o = o.n("retryInMs", ms as f64);
        }
        if let Some(e) = err {
            o = o.s("error", e);
        }
        self.emit("state", &o.done());
    }

    pub(super) async fn publish(&self, ev: Ce) -> Result<v1::Ack, Status> {
        let req = self.req(v1::PublishRequest {
            event: Some(v1::ClientEvent {
                request_id: String::new(),
                event: Some(ev),
            }),
        });
        Ok(self.chat().publish(req).await?.ack.unwrap_or_default())
    }

    // ---- visitor session -----------------------------------------------------------------

    pub(super) async fn start_session(&self, o: &JsValue) -> Result<(), JsValue> {
        let window = web_sys::window();
        let nav = window.as_ref().map(|w| w.navigator());
        let token = self.store.get(&self.key("token")).unwrap_or_default();
        let req = v1::StartVisitorSessionRequest {
            site_key: self.site_key.clone(),
            visitor_token: token.clone(),
            user_id: get_str(o, "userId"),
            user_hash: get_str(o, "userHash"),
            name: get_str(o, "name"),
            email: get_str(o, "email"),
            continuation_token: get_str(o, "continuation"),
            page_url: get_opt_str(o, "pageUrl").unwrap_or_else(|| {
                window
                    .as_ref()
                    .and_then(|w| w.location().href().ok())
                    .unwrap_or_default()
            }),
            page_title: document_title(),
            referrer: window
                .as_ref()
                .and_then(|w| w.document())
                .map(|d| d.referrer())
                .unwrap_or_default(),
            locale: get_opt_str(o, "locale")
                .unwrap_or_else(|| nav.as_ref().and_then(|n| n.language()).unwrap_or_default()),
            user_agent: nav
                .as_ref()
                .and_then(|n| n.user_agent().ok())
                .unwrap_or_default(),
        };
        let r = self
            .session()
            .start_visitor_session(Request::new(req))
            .await
            .map_err(|s| self.err(&s))?;
        let changed_visitor = *self.visitor_id.borrow() != r.visitor_id;
        if r.visitor_token != token {
            self.store.set(&self.key("token"), &r.visitor_token);
        }
        if changed_visitor && !self.visitor_id.borrow().is_empty() {
            // Another person (identify/shutdown): nothing of the previous one may leak.
            self.cursors.borrow_mut().clear();
            self.outbox.borrow_mut().clear();
            self.views.borrow_mut().clear();
            self.save_outbox();
        }
        *self.token.borrow_mut() = r.visitor_token;
        *self.visitor_id.borrow_mut() = r.visitor_id;
        self.verified.set(r.verified);
        *self.site.borrow_mut() = r.site.as_ref().map(js::site_info).unwrap_or_default();
        let mut open = r.open_conversations;
        // An email link: the conversation it is about comes first (the widget opens it). No
        // sort: a generic sort of conversations costs kilobytes of wasm.
        if let Some(i) = open.iter().position(|c| {
            !r.continued_conversation_id.is_empty() && c.id == r.continued_conversation_id
        }) {
            let c = open.remove(i);
            open.insert(0, c);
        }
        *self.open_conversations.borrow_mut() = js::array(&open, js::conversation);
        if changed_visitor {
            self.wake_stream();
        }
        Ok(())
    }

    // ---- the merged conversation view ----------------------------------------------------

    /// Tells the app that `view(conversation_id, topic)` changed.
    pub(super) fn emit_view(&self, conversation_id: &str, topic: &str) {
        let o = O::new()
            .s("conversationId", conversation_id)
            .s("topic", topic)
            .done();
        self.emit("view", &o);
    }

    /// Who this client's own messages are from.
    fn own_author(&self) -> (v1::AuthorKind, String) {
        if !self.site_key.is_empty() {
            return (v1::AuthorKind::Visitor, self.visitor_id.borrow().clone());
        }
        let agent = self.agent.borrow();
        match js::get_opt_str(&agent, "id") {
            Some(id) => (v1::AuthorKind::Agent, id),
            None => (v1::AuthorKind::Service, String::new()),
        }
    }

    /// One of our sends as a view line: `seq` 0 and `createdAt` 0 until it is stored.
    fn send_js(
        &self,
        p: &Pending,
        conversation_id: &str,
        seq: u64,
        created_at_ms: i64,
        status: &str,
    ) -> O {
        let (kind, id) = self.own_author();
        O::new()
            .s("conversationId", conversation_id)
            .n("seq", seq as f64)
            .s("clientMsgId", &p.client_msg_id)
            .s("kind", if p.note { "note" } else { "text" })
            .s("authorKind", js::author_kind(kind as i32))
            .s("authorId", &id)
            .s("authorName", "")
            .s("text", &p.text)
            .n("createdAt", created_at_ms as f64)
            .v("attachments", pending_attachments(p))
            .s("status", status)
    }

    /// File links of a message as absolute URLs on this client's server.
    pub(super) fn absolutize(&self, m: &mut v1::Message) {
        for a in &mut m.attachments {
            self.absolute_links(a);
        }
    }

    pub(super) fn absolute_links(&self, a: &mut v1::Attachment) {
        let base = self.server.trim_end_matches('/');
        for url in [&mut a.url, &mut a.thumbnail_url] {
            if url.starts_with('/') {
                *url = format!("{base}{url}");
            }
        }
    }

    /// Our acknowledged send as a message, until the stream or history brings the stored one.
    pub(super) fn own_message(&self, p: &Pending, ack: &v1::Ack) -> Stored {
        let js = self
            .send_js(p, &ack.conversation_id, ack.seq, ack.created_at_ms, "sent")
            .done();
        Stored {
            seq: ack.seq,
            client_msg_id: p.client_msg_id.clone(),
            js,
        }
    }

    /// The merged view as JS (see `ConversationView` in types.rs).
    pub(super) fn view_js(&self, conversation_id: &str, topic: &str) -> JsValue {
        let views = self.views.borrow();
        let outbox = self.outbox.borrow();
        let view = views.get(conversation_id);
        let lines: Array = crate::state::lines(view, &outbox, conversation_id, topic)
            .into_iter()
            .map(|l| match l {
                Line::Stored(m) => m.js.clone(),
                Line::Send(p) => {
                    let mut o = self
                        .send_js(p, outbox.conversation_of(p), 0, 0, p.state.as_str())
                        .s("topic", &p.topic);
                    if !p.error.is_empty() {
                        o = o.s("error", &p.error);
                    }
                    o.done()
                }
            })
            .collect();
        let (visitor_read, agent_read, has_more, loaded) = view
            .map(|v| (v.visitor_read_seq, v.agent_read_seq, v.has_more, v.loaded))
            .unwrap_or_default();
        O::new()
            .s("conversationId", conversation_id)
            .s("topic", topic)
            .v("messages", lines)
            .n("visitorReadSeq", visitor_read as f64)
            .n("agentReadSeq", agent_read as f64)
            .b("hasMore", has_more)
            .b("loaded", loaded)
            .n(
                "oldestSeq",
                view.map(|v| v.oldest_seq()).unwrap_or(0) as f64,
            )
            .done()
    }

    /// A conversation's read marks as a Conversation event or a fetch tells them.
    pub(super) fn conversation_marks(&self, c: &v1::Conversation) {
        let mut views = self.views.borrow_mut();
        let a = views.read(&c.id, true, c.visitor_read_seq);
        let b = views.read(&c.id, false, c.agent_read_seq);
        drop(views);
        if a || b {
            self.emit_view(&c.id, "");
        }
    }

    pub(super) fn fail(&self, e: JsValue) {
        if let Some(m) = js_sys::Reflect::get(&e, &"message".into())
            .ok()
            .and_then(|m| m.as_string())
        {
            crate::rt::error(&m);
        }
        self.emit("error", &e);
    }
}

/// A stored message as the view keeps it: converted to JS once (with `status: "sent"`), so a
/// render only hands out the same objects again.
pub(crate) struct Stored {
    seq: u64,
    client_msg_id: String,
    js: JsValue,
}

impl Stored {
    pub(crate) fn new(m: &v1::Message) -> Self {
        let js = js::message(m);
        let _ = js_sys::Reflect::set(&js, &"status".into(), &"sent".into());
        Stored {
            seq: m.seq,
            client_msg_id: m.client_msg_id.clone(),
            js,
        }
    }
}

impl Item for Stored {
    fn seq(&self) -> u64 {
        self.seq
    }
    fn client_msg_id(&self) -> &str {
        &self.client_msg_id
    }
}

/// A pending send's files as given to `send` (the upload answers), or `[]`.
fn pending_attachments(p: &Pending) -> JsValue {
    if p.attachments_json.is_empty() {
        return js_sys::Array::new().into();
    }
    js_sys::JSON::parse(&p.attachments_json)
        .ok()
        .filter(js_sys::Array::is_array)
        .unwrap_or_else(|| js_sys::Array::new().into())
}

/// The page's title (`document.title`), "" when there is none.
pub(super) fn document_title() -> String {
    web_sys::window()
        .and_then(|w| w.document())
        .map(|d| d.title())
        .unwrap_or_default()
}
