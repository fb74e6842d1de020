//! `ChatClient`: one duplex chat connection over gRPC-web (see the crate docs).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::rc::{Rc, Weak};

use futures_channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use futures_util::StreamExt;
use futures_util::future::{Either, select};
use js_sys::{Array, Function, Promise, Reflect};
use tonic::{Code, Request, Status};
use tonic_web_wasm_client::Client;
use tonic_web_wasm_client::options::FetchOptions;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, spawn_local};
use wsmschat::v1;
use wsmschat::v1::client_event::Event as Ce;
use wsmschat::v1::server_event::Event as Se;

use crate::js::{self, O, get_bool, get_num, get_opt_str, get_str};
use crate::raw;
use crate::rt::{self, Store, backoff_ms, sleep};
use crate::types::*;

const SUBSCRIBE: &str = "/wsmschat.v1.ChatService/Subscribe";

/// Unary calls give up after this long (and sends are then retried).
const UNARY_TIMEOUT_MS: u64 = 15_000;
/// Stream silence tolerated before the first `ready` tells the heartbeat interval.
const DEFAULT_SILENCE_MS: u32 = 40_000;

struct Entry {
    cmid: String,
    conversation_id: String,
    topic: String,
    /// The earlier send (by client_msg_id) that creates this entry's conversation.
    follows: String,
    text: String,
    note: bool,
    settle: Option<(Function, Function)>,
}

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
    cursors: RefCell<HashMap<String, u64>>,
    inbox: Cell<bool>,
    started: Cell<bool>,
    closed: Cell<bool>,
    heartbeat_ms: Cell<u32>,
    stream_wake: RefCell<Option<UnboundedSender<()>>>,
    outbox: RefCell<VecDeque<Entry>>,
    /// client_msg_id of a conversation-starting send -> the conversation it created.
    created: RefCell<HashMap<String, String>>,
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

pub(crate) fn normalize_server(raw: &str) -> Result<String, JsValue> {
    let s = raw.trim().trim_end_matches('/');
    if !(s.starts_with("http://") || s.starts_with("https://")) {
        return Err(error(
            Code::InvalidArgument,
            &format!("wsmschat: `server` must be an http(s) URL, got {raw:?}"),
        ));
    }
    Ok(s.to_owned())
}

/// A JS `Error` with the gRPC status `code` and `codeName`.
fn error(code: Code, message: &str) -> JsValue {
    let e = js_sys::Error::new(message);
    let _ = Reflect::set(&e, &"code".into(), &JsValue::from_f64(code as i32 as f64));
    let _ = Reflect::set(&e, &"codeName".into(), &format!("{code:?}").into());
    e.into()
}

/// Transport failures surface as `Unknown` with a fetch message: call them `Unavailable`.
fn classify(server: &str, s: &Status) -> (Code, String) {
    let msg = s.message();
    if s.code() == Code::Unknown && (msg.contains("fetch") || msg.contains("JS API error")) {
        return (
            Code::Unavailable,
            format!(
                "cannot reach the chat server at {server} (it is down, the network is offline, or \
                 this page's origin is not allowed by the server's CORS settings)"
            ),
        );
    }
    let text = if msg.is_empty() {
        format!("{:?}", s.code())
    } else {
        msg.to_owned()
    };
    (s.code(), text)
}

/// How often a send the server answered with INTERNAL or UNKNOWN is tried before it fails:
/// such an answer may be a passing fault (disk full, a restart) or a message the server can
/// never take, and a message that can never be sent must not hold up every later one.
const SERVER_ERROR_TRIES: u32 = 5;

/// Retried only [`SERVER_ERROR_TRIES`] times.
fn server_fault(code: Code) -> bool {
    matches!(code, Code::Internal | Code::Unknown)
}

/// Worth retrying: the server or network may come back; anything else is a refusal.
fn retryable(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::Unknown
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::Internal
            | Code::ResourceExhausted
            | Code::Cancelled
    )
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
            cursors: RefCell::new(HashMap::new()),
            inbox: Cell::new(false),
            started: Cell::new(false),
            closed: Cell::new(false),
            heartbeat_ms: Cell::new(0),
            stream_wake: RefCell::new(None),
            outbox: RefCell::new(VecDeque::new()),
            created: RefCell::new(HashMap::new()),
            pump_wake: RefCell::new(None),
            visitor_id: RefCell::new(String::new()),
            verified: Cell::new(false),
            site: RefCell::new(JsValue::UNDEFINED),
            agent: RefCell::new(JsValue::UNDEFINED),
            open_conversations: RefCell::new(Array::new().into()),
            connect_opts: RefCell::new(JsValue::UNDEFINED),
        })
    }

    fn key(&self, what: &str) -> String {
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
        error(code, &format!("wsmschat: {msg}"))
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

    fn emit(&self, name: &str, payload: &JsValue) {
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

    fn set_state(
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

    async fn publish(&self, ev: Ce) -> Result<v1::Ack, Status> {
        let req = self.req(v1::PublishRequest {
            event: Some(v1::ClientEvent {
                request_id: String::new(),
                event: Some(ev),
            }),
        });
        Ok(self.chat().publish(req).await?.ack.unwrap_or_default())
    }

    // ---- visitor session -----------------------------------------------------------------

    async fn start_session(&self, o: &JsValue) -> Result<(), JsValue> {
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
            page_url: get_opt_str(o, "pageUrl").unwrap_or_else(|| {
                window
                    .as_ref()
                    .and_then(|w| w.location().href().ok())
                    .unwrap_or_default()
            }),
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
            self.save_outbox();
        }
        *self.token.borrow_mut() = r.visitor_token;
        *self.visitor_id.borrow_mut() = r.visitor_id;
        self.verified.set(r.verified);
        *self.site.borrow_mut() = r.site.as_ref().map(js::site_info).unwrap_or_default();
        *self.open_conversations.borrow_mut() = js::array(&r.open_conversations, js::conversation);
        if changed_visitor {
            self.wake_stream();
        }
        Ok(())
    }

    // ---- the stream ----------------------------------------------------------------------

    fn wake_stream(&self) {
        if let Some(tx) = self.stream_wake.borrow().as_ref() {
            let _ = tx.unbounded_send(());
        }
    }

    fn on_event(self: &Rc<Self>, ev: Se) -> bool {
        match ev {
            Se::Ready(r) => {
                self.heartbeat_ms.set(r.heartbeat_interval_ms);
                self.set_state("online", 0, None, None);
                self.kick_pump();
                let o = O::new()
                    .s("streamId", &r.stream_id)
                    .n("heartbeatMs", r.heartbeat_interval_ms as f64)
                    .done();
                self.emit("ready", &o);
            }
            Se::Message(m) => {
                {
                    let mut c = self.cursors.borrow_mut();
                    let last = c.entry(m.conversation_id.clone()).or_insert(0);
                    if m.seq <= *last {
                        return false;
                    }
                    *last = m.seq;
                }
                self.emit("message", &js::message(&m));
            }
            Se::Conversation(c) => self.emit("conversation", &js::conversation(&c)),
            Se::Typing(t) => self.emit("typing", &js::typing(&t)),
            Se::Read(r) => self.emit("read", &js::read(&r)),
            Se::Presence(p) => self.emit("presence", &js::presence_changed(&p)),
            Se::ResyncRequired(_) => return true,
            Se::Heartbeat(_) | Se::Ack(_) | Se::Error(_) => {}
        }
        false
    }

    fn fail(&self, e: JsValue) {
        if let Some(m) = Reflect::get(&e, &"message".into())
            .ok()
            .and_then(|m| m.as_string())
        {
            rt::error(&m);
        }
        self.emit("error", &e);
    }
}

/// Keeps one Subscribe stream open until the client is closed.
async fn run_stream(sh: Rc<Shared>, mut wake: UnboundedReceiver<()>) {
    let mut attempt: u32 = 0;
    loop {
        while wake.try_recv().is_ok() {}
        if sh.closed.get() {
            break;
        }
        sh.set_state("connecting", attempt, None, None);
        let cursors: Vec<v1::ConversationCursor> = sh
            .cursors
            .borrow()
            .iter()
            .map(|(id, seq)| v1::ConversationCursor {
                conversation_id: id.clone(),
                after_seq: *seq,
            })
            .collect();
        let req = sh.req(v1::SubscribeRequest {
            subscription: Some(v1::Subscription {
                cursors,
                inbox: sh.inbox.get(),
            }),
        });
        let mut failure: Option<Status> = None;
        let mut woken = false;
        let mut resync = false;
        let opening = raw::server_streaming(sh.streaming.clone(), req, SUBSCRIBE);
        match select(Box::pin(opening), wake.next()).await {
            Either::Right(_) => woken = true,
            Either::Left((Err(status), _)) => failure = Some(status),
            Either::Left((Ok(mut stream), _)) => {
                loop {
                    let silence = match sh.heartbeat_ms.get() {
                        0 => DEFAULT_SILENCE_MS,
                        hb => hb.saturating_mul(5) / 2 + 1_000,
                    };
                    let next = select(Box::pin(stream.message()), Box::pin(sleep(silence)));
                    match select(next, wake.next()).await {
                        Either::Right(_) => {
                            woken = true;
                            break;
                        }
                        Either::Left((Either::Right(_), _)) => {
                            failure = Some(Status::unavailable("no heartbeat from the server"));
                            break;
                        }
                        Either::Left((Either::Left((next, _)), _)) => match next {
                            Ok(Some(bytes)) => {
                                let resp = <v1::SubscribeResponse as prost::Message>::decode(
                                    bytes.as_slice(),
                                )
                                .unwrap_or_default();
                                if let Some(ev) = resp.event.and_then(|e| e.event) {
                                    let ready = matches!(ev, Se::Ready(_));
                                    resync |= sh.on_event(ev);
                                    if ready {
                                        attempt = 0;
                                    }
                                }
                            }
                            Ok(None) => {
                                if !resync {
                                    failure =
                                        Some(Status::unavailable("the server closed the stream"));
                                }
                                break;
                            }
                            Err(status) => {
                                failure = Some(status);
                                break;
                            }
                        },
                    }
                }
                // Dropping the stream aborts its fetch: one open stream per client, always.
            }
        }
        if sh.closed.get() {
            break;
        }
        let mut reason = None;
        if let Some(status) = &failure {
            let (code, msg) = classify(&sh.server, status);
            if !retryable(code) {
                sh.closed.set(true);
                sh.set_state("closed", attempt, None, Some(&msg));
                sh.fail(error(
                    code,
                    &format!("wsmschat: the chat stream was refused: {msg}"),
                ));
                break;
            }
            reason = Some(msg);
        }
        attempt += 1;
        let delay = if (woken || resync) && attempt == 1 {
            0
        } else {
            backoff_ms(attempt)
        };
        sh.set_state("offline", attempt, Some(delay), reason.as_deref());
        if delay > 0 {
            let _ = select(Box::pin(sleep(delay)), wake.next()).await;
        }
    }
    sh.stream_wake.borrow_mut().take();
    if sh.state.get() != "closed" {
        sh.set_state("closed", 0, None, None);
    }
}

// ---- the outbox ----------------------------------------------------------------------------

impl Shared {
    fn kick_pump(self: &Rc<Self>) {
        if self.outbox.borrow().is_empty() || self.closed.get() {
            return;
        }
        if let Some(tx) = self.pump_wake.borrow().as_ref() {
            let _ = tx.unbounded_send(());
            return;
        }
        let (tx, rx) = unbounded();
        *self.pump_wake.borrow_mut() = Some(tx);
        spawn_local(pump(self.clone(), rx));
    }

    fn outbox_event(&self, e: &Entry, status: &str, err: Option<&str>, ack: Option<&v1::Ack>) {
        let mut o = O::new()
            .s("clientMsgId", &e.cmid)
            .s("conversationId", &e.conversation_id)
            .s("topic", &e.topic)
            .s("text", &e.text)
            .s("status", status);
        if let Some(m) = err {
            o = o.s("error", m);
        }
        if let Some(a) = ack {
            o = o.v("ack", js::ack(a));
        }
        self.emit("outbox", &o.done());
    }

    fn save_outbox(&self) {
        if self.site_key.is_empty() {
            return;
        }
        let items: Array = self
            .outbox
            .borrow()
            .iter()
            .map(|e| {
                O::new()
                    .s("clientMsgId", &e.cmid)
                    .s("conversationId", &e.conversation_id)
                    .s("topic", &e.topic)
                    .s("follows", &e.follows)
                    .s("text", &e.text)
                    .s("kind", if e.note { "note" } else { "text" })
                    .done()
            })
            .collect();
        if items.length() == 0 {
            self.store.remove(&self.key("outbox"));
        } else if let Ok(s) = js_sys::JSON::stringify(&items) {
            self.store.set(&self.key("outbox"), &String::from(s));
        }
    }

    fn restore_outbox(&self) {
        let Some(raw) = self.store.get(&self.key("outbox")) else {
            return;
        };
        let Ok(items) = js_sys::JSON::parse(&raw) else {
            return;
        };
        if !Array::is_array(&items) {
            return;
        }
        let mut out = self.outbox.borrow_mut();
        for o in items.unchecked_into::<Array>().iter() {
            let cmid = get_str(&o, "clientMsgId");
            if cmid.is_empty() || out.iter().any(|e| e.cmid == cmid) {
                continue;
            }
            out.push_back(Entry {
                cmid,
                conversation_id: get_str(&o, "conversationId"),
                topic: get_str(&o, "topic"),
                follows: get_str(&o, "follows"),
                text: get_str(&o, "text"),
                note: get_str(&o, "kind") == "note",
                settle: None,
            });
        }
    }
}

/// Sends the outbox in order, one at a time (so seqs follow the order of `send` calls), retrying
/// what failed for a retryable reason with the same client_msg_id. Ends when the outbox is empty.
async fn pump(sh: Rc<Shared>, mut wake: UnboundedReceiver<()>) {
    let mut attempt: u32 = 0;
    // Server faults of the message at the head of the outbox.
    let mut faults: (String, u32) = (String::new(), 0);
    loop {
        if sh.closed.get() {
            break;
        }
        let next = {
            let mut out = sh.outbox.borrow_mut();
            match out.front_mut() {
                None => None,
                Some(e) => {
                    if e.conversation_id.is_empty() && !e.follows.is_empty() {
                        if let Some(id) = sh.created.borrow().get(&e.follows) {
                            e.conversation_id = id.clone();
                        }
                    }
                    Some(v1::SendMessage {
                        conversation_id: e.conversation_id.clone(),
                        topic: e.topic.clone(),
                        client_msg_id: e.cmid.clone(),
                        text: e.text.clone(),
                        kind: if e.note {
                            v1::MessageKind::Note
                        } else {
                            v1::MessageKind::Text
                        } as i32,
                    })
                }
            }
        };
        let Some(msg) = next else { break };
        let cmid = msg.client_msg_id.clone();
        if let Some(e) = sh.outbox.borrow().front() {
            sh.outbox_event(e, "sending", None, None);
        }
        let result = sh.publish(Ce::SendMessage(msg)).await;
        let entry_pos = sh.outbox.borrow().iter().position(|e| e.cmid == cmid);
        match result {
            Ok(ack) => {
                attempt = 0;
                let Some(pos) = entry_pos else { continue };
                let entry = sh.outbox.borrow_mut().remove(pos);
                if let Some(mut e) = entry {
                    sh.created
                        .borrow_mut()
                        .insert(e.cmid.clone(), ack.conversation_id.clone());
                    sh.cursors
                        .borrow_mut()
                        .entry(ack.conversation_id.clone())
                        .or_insert(0);
                    e.conversation_id = ack.conversation_id.clone();
                    sh.save_outbox();
                    sh.outbox_event(&e, "sent", None, Some(&ack));
                    if let Some((resolve, _)) = e.settle.take() {
                        let _ = resolve.call1(&JsValue::NULL, &js::ack(&ack));
                    }
                }
            }
            Err(status) => {
                let (code, msg) = classify(&sh.server, &status);
                let give_up = server_fault(code) && {
                    if faults.0 != cmid {
                        faults = (cmid.clone(), 0);
                    }
                    faults.1 += 1;
                    faults.1 >= SERVER_ERROR_TRIES
                };
                if retryable(code) && !give_up {
                    attempt += 1;
                    if let Some(e) = sh.outbox.borrow().front() {
                        sh.outbox_event(e, "waiting", Some(&msg), None);
                    }
                    let delay = backoff_ms(attempt);
                    let _ = select(Box::pin(sleep(delay)), wake.next()).await;
                    while wake.try_recv().is_ok() {}
                } else if let Some(pos) = entry_pos {
                    let entry = sh.outbox.borrow_mut().remove(pos);
                    if let Some(mut e) = entry {
                        sh.save_outbox();
                        sh.outbox_event(&e, "failed", Some(&msg), None);
                        if let Some((_, reject)) = e.settle.take() {
                            let _ = reject
                                .call1(&JsValue::NULL, &error(code, &format!("wsmschat: {msg}")));
                        }
                    }
                }
            }
        }
    }
    sh.pump_wake.borrow_mut().take();
}

/// The RPCs, with the generated clients' method names, all through [`raw::unary`].
pub(crate) struct Rpc<'a>(&'a Shared);

macro_rules! rpcs {
    ($($name:ident: $path:literal, $req:ty => $resp:ty;)*) => {
        impl Rpc<'_> {
            $(
                pub(crate) async fn $name(&self, r: Request<$req>) -> Result<$resp, Status> {
                    raw::unary(self.0.unary.clone(), r, $path).await
                }
            )*
        }
    };
}

rpcs! {
    publish: "/wsmschat.v1.ChatService/Publish", v1::PublishRequest => v1::PublishResponse;
    get_conversation: "/wsmschat.v1.ChatService/GetConversation", v1::GetConversationRequest => v1::GetConversationResponse;
    get_history: "/wsmschat.v1.ChatService/GetHistory", v1::GetHistoryRequest => v1::GetHistoryResponse;
    start_visitor_session: "/wsmschat.v1.SessionService/StartVisitorSession", v1::StartVisitorSessionRequest => v1::StartVisitorSessionResponse;
    logout: "/wsmschat.v1.SessionService/Logout", v1::LogoutRequest => v1::LogoutResponse;
}

#[cfg(feature = "agent")]
rpcs! {
    list_conversations: "/wsmschat.v1.ChatService/ListConversations", v1::ListConversationsRequest => v1::ListConversationsResponse;
    get_visitor: "/wsmschat.v1.ChatService/GetVisitor", v1::GetVisitorRequest => v1::GetVisitorResponse;
    list_canned_replies: "/wsmschat.v1.ChatService/ListCannedReplies", v1::ListCannedRepliesRequest => v1::ListCannedRepliesResponse;
    list_agent_presence: "/wsmschat.v1.ChatService/ListAgentPresence", v1::ListAgentPresenceRequest => v1::ListAgentPresenceResponse;
    login: "/wsmschat.v1.SessionService/Login", v1::LoginRequest => v1::LoginResponse;
    list_sites: "/wsmschat.v1.AdminService/ListSites", v1::ListSitesRequest => v1::ListSitesResponse;
    create_site: "/wsmschat.v1.AdminService/CreateSite", v1::CreateSiteRequest => v1::CreateSiteResponse;
    update_site: "/wsmschat.v1.AdminService/UpdateSite", v1::UpdateSiteRequest => v1::UpdateSiteResponse;
    list_agents: "/wsmschat.v1.AdminService/ListAgents", v1::ListAgentsRequest => v1::ListAgentsResponse;
    create_agent: "/wsmschat.v1.AdminService/CreateAgent", v1::CreateAgentRequest => v1::CreateAgentResponse;
    update_agent: "/wsmschat.v1.AdminService/UpdateAgent", v1::UpdateAgentRequest => v1::UpdateAgentResponse;
    create_api_key: "/wsmschat.v1.AdminService/CreateApiKey", v1::CreateApiKeyRequest => v1::CreateApiKeyResponse;
    list_api_keys: "/wsmschat.v1.AdminService/ListApiKeys", v1::ListApiKeysRequest => v1::ListApiKeysResponse;
    revoke_api_key: "/wsmschat.v1.AdminService/RevokeApiKey", v1::RevokeApiKeyRequest => v1::RevokeApiKeyResponse;
    put_canned_reply: "/wsmschat.v1.AdminService/PutCannedReply", v1::PutCannedReplyRequest => v1::PutCannedReplyResponse;
    delete_canned_reply: "/wsmschat.v1.AdminService/DeleteCannedReply", v1::DeleteCannedReplyRequest => v1::DeleteCannedReplyResponse;
    get_site_report: "/wsmschat.v1.AdminService/GetSiteReport", v1::GetSiteReportRequest => v1::GetSiteReportResponse;
}

// ---- the JS API ----------------------------------------------------------------------------

fn online_listener(sh: &Rc<Shared>) {
    let weak: Weak<Shared> = Rc::downgrade(sh);
    let cb = Closure::<dyn FnMut()>::new(move || {
        if let Some(sh) = weak.upgrade() {
            if sh.state.get() == "offline" {
                sh.wake_stream();
            }
            sh.kick_pump();
            if let Some(tx) = sh.pump_wake.borrow().as_ref() {
                let _ = tx.unbounded_send(());
            }
        }
    });
    if let Some(w) = web_sys::window() {
        let _ = w.add_event_listener_with_callback("online", cb.as_ref().unchecked_ref());
    }
    cb.forget();
}

#[wasm_bindgen]
impl ChatClient {
    /// Starts (or resumes, with the token kept in localStorage) a visitor session on a site.
    /// Opens no stream yet: call `start()` when the visitor opens the chat.
    pub async fn connect(opts: ConnectOptions) -> Result<ChatClient, JsValue> {
        let o: JsValue = opts.into();
        let server = normalize_server(&get_str(&o, "server"))?;
        let site_key = get_str(&o, "siteKey");
        if site_key.is_empty() {
            return Err(error(
                Code::InvalidArgument,
                "wsmschat: `siteKey` is required",
            ));
        }
        let store = if get_str(&o, "storage") == "memory" {
            Store::Memory
        } else {
            Store::Local
        };
        let sh = Shared::new(server, store, site_key);
        sh.start_session(&o).await?;
        *sh.connect_opts.borrow_mut() = o;
        sh.restore_outbox();
        sh.kick_pump();
        Ok(ChatClient { sh })
    }

    /// A client for a token the caller already has (an agent session token or an API key).
    #[wasm_bindgen(js_name = withToken)]
    pub fn with_token(opts: TokenOptions) -> Result<ChatClient, JsValue> {
        let o: JsValue = opts.into();
        let server = normalize_server(&get_str(&o, "server"))?;
        let sh = Shared::new(server, Store::Memory, String::new());
        *sh.token.borrow_mut() = get_str(&o, "token");
        Ok(ChatClient { sh })
    }

    /// A fresh idempotency key for `send`.
    #[wasm_bindgen(js_name = newId)]
    pub fn new_id() -> String {
        rt::new_id()
    }

    /// Forgets the visitor kept for a site on this browser (token and unsent messages).
    pub fn forget(site_key: &str) {
        for what in ["token", "outbox"] {
            Store::Local.remove(&format!("wsmschat:{site_key}:{what}"));
        }
    }

    /// The server base URL (normalised: no trailing slash).
    #[wasm_bindgen(getter)]
    pub fn server(&self) -> String {
        self.sh.server.clone()
    }

    /// The bearer token (visitor token, agent token or API key).
    #[wasm_bindgen(getter)]
    pub fn token(&self) -> String {
        self.sh.token.borrow().clone()
    }

    /// `idle` (no stream yet), `connecting`, `online`, `offline` (retrying) or `closed`.
    #[wasm_bindgen(getter, unchecked_return_type = "ConnectionState")]
    pub fn state(&self) -> String {
        self.sh.state.get().to_owned()
    }

    /// The visitor's id (visitor clients).
    #[wasm_bindgen(getter, js_name = visitorId)]
    pub fn visitor_id(&self) -> String {
        self.sh.visitor_id.borrow().clone()
    }

    /// True when the site vouched for the visitor's identity (`userHash`).
    #[wasm_bindgen(getter)]
    pub fn verified(&self) -> bool {
        self.sh.verified.get()
    }

    /// What the widget shows of the site (visitor clients).
    #[wasm_bindgen(getter, unchecked_return_type = "SiteInfo | undefined")]
    pub fn site(&self) -> JsValue {
        self.sh.site.borrow().clone()
    }

    /// The logged-in agent (`login` clients).
    #[wasm_bindgen(getter, unchecked_return_type = "Agent | undefined")]
    pub fn agent(&self) -> JsValue {
        self.sh.agent.borrow().clone()
    }

    /// The visitor's unresolved conversations at session start, newest first.
    #[wasm_bindgen(getter, js_name = openConversations, unchecked_return_type = "Conversation[]")]
    pub fn open_conversations(&self) -> JsValue {
        self.sh.open_conversations.borrow().clone()
    }

    /// Sends not yet acknowledged, oldest first (restored after a reload).
    #[wasm_bindgen(unchecked_return_type = "PendingSend[]")]
    pub fn pending(&self) -> JsValue {
        self.sh
            .outbox
            .borrow()
            .iter()
            .map(|e| {
                O::new()
                    .s("clientMsgId", &e.cmid)
                    .s("conversationId", &e.conversation_id)
                    .s("topic", &e.topic)
                    .s("text", &e.text)
                    .s("kind", if e.note { "note" } else { "text" })
                    .done()
            })
            .collect::<Array>()
            .into()
    }

    /// Calls `handler(payload, name)` on every `name` event ("*" for all).
    pub fn on(
        &self,
        #[wasm_bindgen(unchecked_param_type = "ChatEventName | \"*\"")] name: String,
        #[wasm_bindgen(unchecked_param_type = "(payload: any, name: ChatEventName) => void")]
        handler: Function,
    ) {
        self.sh.handlers.borrow_mut().push((name, handler));
    }

    /// Removes a handler added with `on`.
    pub fn off(
        &self,
        #[wasm_bindgen(unchecked_param_type = "ChatEventName | \"*\"")] name: String,
        handler: Function,
    ) {
        self.sh
            .handlers
            .borrow_mut()
            .retain(|(n, f)| !(*n == name && *f == handler));
    }

    /// Opens the live stream (idempotent). `inbox: true` (agents, services) follows every
    /// conversation; a visitor's stream always follows all of their conversations.
    pub fn start(
        &self,
        #[wasm_bindgen(unchecked_param_type = "{ inbox?: boolean } | undefined")] opts: JsValue,
    ) {
        let sh = &self.sh;
        if sh.closed.get() || sh.started.get() {
            return;
        }
        sh.started.set(true);
        sh.inbox.set(get_bool(&opts, "inbox"));
        let (tx, rx) = unbounded();
        *sh.stream_wake.borrow_mut() = Some(tx);
        online_listener(sh);
        spawn_local(run_stream(sh.clone(), rx));
    }

    /// Reconnects now (e.g. after the app knows the network is back).
    pub fn reconnect(&self) {
        self.sh.wake_stream();
        if let Some(tx) = self.sh.pump_wake.borrow().as_ref() {
            let _ = tx.unbounded_send(());
        }
    }

    /// Sends a message; resolves with the server's Ack once it is durably stored. Without a
    /// `conversationId`, `topic` starts a conversation (later sends with the same topic made
    /// before that first Ack go to the same new conversation). Network failures are retried
    /// (same clientMsgId) until the server answers; refusals reject.
    #[wasm_bindgen(unchecked_return_type = "Promise<Ack>")]
    pub fn send(
        &self,
        text: String,
        #[wasm_bindgen(unchecked_param_type = "SendOptions | undefined")] opts: JsValue,
    ) -> Promise {
        let sh = self.sh.clone();
        if text.trim().is_empty() || text.len() > wsmschat::limits::DEFAULT_MAX_MESSAGE_BYTES {
            let e = error(
                Code::InvalidArgument,
                "wsmschat: a message must have text, at most 4 KiB",
            );
            return Promise::reject(&e);
        }
        let cmid = get_opt_str(&opts, "clientMsgId")
            .filter(|c| wsmschat::ids::valid_client_id(c))
            .unwrap_or_else(rt::new_id);
        let conversation_id = get_str(&opts, "conversationId");
        let topic = get_str(&opts, "topic");
        let note = get_str(&opts, "kind") == "note";
        let follows = if conversation_id.is_empty() {
            sh.outbox
                .borrow()
                .iter()
                .find(|e| e.conversation_id.is_empty() && e.topic == topic && e.follows.is_empty())
                .map(|e| e.cmid.clone())
                .unwrap_or_default()
        } else {
            String::new()
        };
        let mut settle = None;
        let p = Promise::new(&mut |resolve, reject| settle = Some((resolve, reject)));
        {
            let mut out = sh.outbox.borrow_mut();
            if let Some(e) = out.iter_mut().find(|e| e.cmid == cmid) {
                // A retry of a send still in the outbox: answer both callers with one Ack.
                if let Some((res, rej)) = e.settle.take() {
                    let (r2, j2) = settle.clone().unwrap_or((res.clone(), rej.clone()));
                    let both = Closure::once_into_js(move |ack: JsValue| {
                        let _ = res.call1(&JsValue::NULL, &ack);
                        let _ = r2.call1(&JsValue::NULL, &ack);
                    });
                    let both_err = Closure::once_into_js(move |err: JsValue| {
                        let _ = rej.call1(&JsValue::NULL, &err);
                        let _ = j2.call1(&JsValue::NULL, &err);
                    });
                    e.settle = Some((both.unchecked_into(), both_err.unchecked_into()));
                } else {
                    e.settle = settle;
                }
            } else {
                out.push_back(Entry {
                    cmid,
                    conversation_id,
                    topic,
                    follows,
                    text,
                    note,
                    settle,
                });
            }
        }
        sh.save_outbox();
        sh.kick_pump();
        p
    }

    /// Tells the other side that I am typing (`on`) or stopped. Best effort.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn typing(&self, conversation_id: String, on: bool) -> Promise {
        let sh = self.sh.clone();
        promise(async move {
            sh.publish(Ce::Typing(v1::Typing {
                conversation_id,
                on,
            }))
            .await
            .map_err(|s| sh.err(&s))?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Marks the conversation read up to and including `seq`.
    #[wasm_bindgen(js_name = markRead, unchecked_return_type = "Promise<Ack>")]
    pub fn mark_read(&self, conversation_id: String, seq: f64) -> Promise {
        self.event(Ce::MarkRead(v1::MarkRead {
            conversation_id,
            seq: seq as u64,
        }))
    }

    /// Rates a resolved conversation 1..5 (visitors).
    #[wasm_bindgen(unchecked_return_type = "Promise<Ack>")]
    pub fn rate(&self, conversation_id: String, score: u32, comment: Option<String>) -> Promise {
        self.event(Ce::Rate(v1::RateConversation {
            conversation_id,
            score,
            comment: comment.unwrap_or_default(),
        }))
    }

    /// A page of a conversation's messages before `beforeSeq` (0/omitted: the newest),
    /// ascending. Loading the newest page also moves the resume cursor.
    #[wasm_bindgen(unchecked_return_type = "Promise<HistoryPage>")]
    pub fn history(
        &self,
        conversation_id: String,
        #[wasm_bindgen(
            unchecked_param_type = "{ beforeSeq?: number; limit?: number } | undefined"
        )]
        opts: JsValue,
    ) -> Promise {
        let sh = self.sh.clone();
        promise(async move {
            let before_seq = get_num(&opts, "beforeSeq") as u64;
            let r = sh
                .chat()
                .get_history(sh.req(v1::GetHistoryRequest {
                    conversation_id: conversation_id.clone(),
                    before_seq,
                    limit: get_num(&opts, "limit") as u32,
                }))
                .await
                .map_err(|s| sh.err(&s))?;
            if before_seq == 0 {
                let newest = r.messages.last().map(|m| m.seq).unwrap_or(0);
                let mut c = sh.cursors.borrow_mut();
                let e = c.entry(conversation_id).or_insert(0);
                *e = (*e).max(newest);
            }
            Ok(O::new()
                .v("messages", js::array(&r.messages, js::message))
                .b("hasMore", r.has_more)
                .done())
        })
    }

    /// Updates the visitor's identity or profile (`WsmsChat('identify', ...)`). A different
    /// verified user becomes a different visitor: the stream restarts for them.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn identify(&self, identity: Identity) -> Promise {
        let sh = self.sh.clone();
        let id: JsValue = identity.into();
        promise(async move {
            let merged = js_sys::Object::assign(
                &js_sys::Object::new(),
                sh.connect_opts.borrow().unchecked_ref(),
            );
            let merged = js_sys::Object::assign(&merged, id.unchecked_ref());
            sh.start_session(&merged).await?;
            *sh.connect_opts.borrow_mut() = merged.into();
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Closes the stream and stops retrying. Unsent messages stay stored for the next visit.
    pub fn close(&self) {
        let sh = &self.sh;
        sh.closed.set(true);
        sh.wake_stream();
        if let Some(tx) = sh.pump_wake.borrow().as_ref() {
            let _ = tx.unbounded_send(());
        }
        if !sh.started.get() {
            sh.set_state("closed", 0, None, None);
        }
        for e in sh.outbox.borrow_mut().iter_mut() {
            if let Some((_, reject)) = e.settle.take() {
                let _ = reject.call1(
                    &JsValue::NULL,
                    &error(Code::Cancelled, "wsmschat: client closed"),
                );
            }
        }
    }

    /// Ends the session on the server, forgets the visitor on this browser and closes.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn logout(&self) -> Promise {
        let sh = self.sh.clone();
        self.close();
        promise(async move {
            let r = sh.session().logout(sh.req(v1::LogoutRequest {})).await;
            if !sh.site_key.is_empty() {
                ChatClient::forget(&sh.site_key);
            }
            r.map_err(|s| sh.err(&s))?;
            Ok(JsValue::UNDEFINED)
        })
    }

    pub(crate) fn event(&self, ev: Ce) -> Promise {
        let sh = self.sh.clone();
        promise(async move {
            let ack = sh.publish(ev).await.map_err(|s| sh.err(&s))?;
            Ok(js::ack(&ack))
        })
    }

    /// One conversation.
    #[wasm_bindgen(js_name = getConversation, unchecked_return_type = "Promise<Conversation>")]
    pub fn get_conversation(&self, conversation_id: String) -> Promise {
        let sh = self.sh.clone();
        promise(async move {
            let r = sh
                .chat()
                .get_conversation(sh.req(v1::GetConversationRequest { conversation_id }))
                .await
                .map_err(|s| sh.err(&s))?;
            Ok(r.conversation
                .as_ref()
                .map(js::conversation)
                .unwrap_or_default())
        })
    }
}
