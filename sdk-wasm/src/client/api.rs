//! The `ChatClient` JS API (`#[wasm_bindgen]`).

use std::rc::{Rc, Weak};

use futures_channel::mpsc::unbounded;
use js_sys::{Array, Function, Promise};
use prost::Message as _;
use tonic::Code;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;
use wsmschat::v1;
use wsmschat::v1::client_event::Event as Ce;

use super::errors::{error, normalize_server};
use super::outbox::pending_js;
use super::stream::run_stream;
use super::{ChatClient, Shared, promise};
use crate::js::{self, O, get_bool, get_num, get_opt_str, get_str};
use crate::rt::{self, Store};
use crate::state::{Pending, SendState};
use crate::types::*;

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
        // A continuation token stays in the options: a later identify() on this page sends it
        // again, which resumes the same visitor (it is only in memory, gone with the page).
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
            .map(pending_js)
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
        // The files: upload answers (`{ id, name, ... }`) or ids.
        let files = crate::js::get(&opts, "attachments");
        let files: Vec<JsValue> = if js_sys::Array::is_array(&files) {
            js_sys::Array::from(&files).iter().collect()
        } else {
            Vec::new()
        };
        let attachment_ids: Vec<String> = files
            .iter()
            .filter_map(|f| f.as_string().or_else(|| get_opt_str(f, "id")))
            .collect();
        let attachments_json = if files.is_empty() {
            String::new()
        } else {
            let objects: js_sys::Array = files.iter().filter(|f| f.is_object()).collect();
            js_sys::JSON::stringify(&objects)
                .map(String::from)
                .unwrap_or_default()
        };
        if (text.trim().is_empty() && attachment_ids.is_empty())
            || text.len() > wsmschat::limits::DEFAULT_MAX_MESSAGE_BYTES
        {
            let e = error(
                Code::InvalidArgument,
                "wsmschat: a message must have text or files, and at most 4 KiB of text",
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
            sh.outbox.borrow().follows_for(&topic)
        } else {
            String::new()
        };
        let mut settle = None;
        let p = Promise::new(&mut |resolve, reject| settle = Some((resolve, reject)));
        let pending = Pending {
            client_msg_id: cmid,
            conversation_id,
            topic,
            follows,
            text,
            note,
            attachment_ids,
            attachments_json,
            state: SendState::Sending,
            error: String::new(),
        };
        let (view_conversation, view_topic) = {
            let o = sh.outbox.borrow();
            (
                o.conversation_of(&pending).to_owned(),
                pending.topic.clone(),
            )
        };
        if let Some((existing, settle)) = sh.outbox.borrow_mut().push(pending, settle) {
            // A retry of a send still in the outbox: answer both callers with one Ack.
            *existing = match (existing.take(), settle) {
                (Some((res, rej)), Some((r2, j2))) => {
                    let both = Closure::once_into_js(move |ack: JsValue| {
                        let _ = res.call1(&JsValue::NULL, &ack);
                        let _ = r2.call1(&JsValue::NULL, &ack);
                    });
                    let both_err = Closure::once_into_js(move |err: JsValue| {
                        let _ = rej.call1(&JsValue::NULL, &err);
                        let _ = j2.call1(&JsValue::NULL, &err);
                    });
                    Some((both.unchecked_into(), both_err.unchecked_into()))
                }
                (old, new) => new.or(old),
            };
        }
        sh.save_outbox();
        sh.emit_view(&view_conversation, &view_topic);
        sh.kick_pump();
        p
    }

    /// The merged view of a conversation, the one thing a chat UI needs to render it: its
    /// messages by seq (history pages and live ones, each once), then this client's sends not
    /// stored yet (status "sending", "waiting" or "failed", with `error`), and the read marks.
    /// Opens the conversation's view: from now on its live messages are kept (call
    /// `history` to load the stored ones) and every change is a `view` event. With
    /// `conversationId` "", the sends that will start a new conversation on `topic`.
    #[wasm_bindgen(unchecked_return_type = "ConversationView")]
    pub fn view(&self, conversation_id: String, topic: Option<String>) -> JsValue {
        if !conversation_id.is_empty() {
            self.sh.views.borrow_mut().open(&conversation_id);
        }
        self.sh
            .view_js(&conversation_id, topic.as_deref().unwrap_or_default())
    }

    /// Stops keeping a conversation's view (the UI left it). Only memory: nothing is lost.
    #[wasm_bindgen(js_name = closeView)]
    pub fn close_view(&self, conversation_id: String) {
        self.sh.views.borrow_mut().close(&conversation_id);
    }

    /// Drops a failed (or still pending) send from the view and the outbox. A send already in
    /// flight may still be stored. Returns whether there was one.
    pub fn discard(&self, client_msg_id: String) -> bool {
        let sh = &self.sh;
        let gone = sh.outbox.borrow_mut().discard(&client_msg_id);
        let Some(p) = gone else { return false };
        let conversation = sh.outbox.borrow().conversation_of(&p).to_owned();
        sh.save_outbox();
        sh.emit_view(&conversation, &p.topic);
        true
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
        let by_visitor = !self.sh.site_key.is_empty();
        if self
            .sh
            .views
            .borrow_mut()
            .read(&conversation_id, by_visitor, seq as u64)
        {
            self.sh.emit_view(&conversation_id, "");
        }
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
    /// ascending. Loading the newest page also moves the resume cursor; every page is merged
    /// into the conversation's `view` (which it opens).
    #[wasm_bindgen(unchecked_return_type = "Promise<{ text: string; filename: string }>")]
    /// The conversation as plain text (visitors: without notes; staff: with them).
    pub fn transcript(&self, conversation_id: String) -> Promise {
        let sh = self.sh.clone();
        promise(async move {
            let r = sh
                .chat()
                .get_transcript(sh.req(v1::GetTranscriptRequest { conversation_id }))
                .await
                .map_err(|s| sh.err(&s))?;
            Ok(O::new()
                .s("text", &r.text)
                .s("filename", &r.filename)
                .done())
        })
    }

    /// The visitor has the transcript emailed to them; resolves with the address.
    #[wasm_bindgen(js_name = emailTranscript, unchecked_return_type = "Promise<string>")]
    pub fn email_transcript(&self, conversation_id: String) -> Promise {
        let sh = self.sh.clone();
        promise(async move {
            let r = sh
                .chat()
                .email_transcript(sh.req(v1::EmailTranscriptRequest { conversation_id }))
                .await
                .map_err(|s| sh.err(&s))?;
            Ok(JsValue::from_str(&r.to))
        })
    }

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
            let mut r = sh
                .chat()
                .get_history(sh.req(v1::GetHistoryRequest {
                    conversation_id: conversation_id.clone(),
                    before_seq,
                    limit: get_num(&opts, "limit") as u32,
                }))
                .await
                .map_err(|s| sh.err(&s))?;
            for m in &mut r.messages {
                sh.absolutize(m);
            }
            if before_seq == 0 {
                let newest = r.messages.last().map(|m| m.seq).unwrap_or(0);
                sh.cursors.borrow_mut().advance(&conversation_id, newest);
            }
            let page = O::new()
                .v("messages", js::array(&r.messages, js::message))
                .b("hasMore", r.has_more)
                .done();
            sh.views.borrow_mut().page(
                &conversation_id,
                r.messages.iter().map(super::Stored::new).collect(),
                r.has_more,
                before_seq == 0,
            );
            sh.emit_view(&conversation_id, "");
            Ok(page)
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
        for settle in sh.outbox.borrow_mut().handles_mut() {
            if let Some((_, reject)) = settle.take() {
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
            if let Some(c) = &r.conversation {
                sh.conversation_marks(c);
            }
            Ok(r.conversation
                .as_ref()
                .map(js::conversation)
                .unwrap_or_default())
        })
    }

    /// Sets custom attributes the site declares: `{ plan: "pro", orderId: "1001" }` (text in
    /// each type's form: "42", "2026-12-24", "https://..."; `""` removes one). A visitor sets
    /// its own (only those the site marks page-writable; conversation attributes go to its
    /// conversations that are not resolved); staff name `{ visitorId }` or `{ conversationId }`.
    /// The agent build resolves to `{ visitor, conversations }`.
    #[wasm_bindgen(js_name = setAttributes, unchecked_return_type = "Promise<any>")]
    pub fn set_attributes(&self, attributes: JsValue, target: JsValue) -> Promise {
        let sh = self.sh.clone();
        let mut values = Vec::new();
        if attributes.is_object() {
            for e in js_sys::Object::entries(attributes.unchecked_ref()).iter() {
                let e: Array = e.unchecked_into();
                values.push(v1::AttributeValue {
                    key: e.get(0).as_string().unwrap_or_default(),
                    value: e.get(1).as_string().unwrap_or_default(),
                });
            }
        }
        let req = v1::SetAttributesRequest {
            visitor_id: get_str(&target, "visitorId"),
            conversation_id: get_str(&target, "conversationId"),
            attributes: values,
        };
        #[cfg(not(feature = "agent"))]
        return fire(
            sh,
            "/wsmschat.v1.ChatService/SetAttributes",
            req.encode_to_vec(),
        );
        #[cfg(feature = "agent")]
        promise(async move {
            let r = sh
                .chat()
                .set_attributes(sh.req(req))
                .await
                .map_err(|s| sh.err(&s))?;
            Ok(O::new()
                .v(
                    "visitor",
                    r.visitor.as_ref().map(js::visitor).unwrap_or_default(),
                )
                .v(
                    "conversations",
                    js::array(&r.conversations, js::conversation),
                )
                .done())
        })
    }

    /// Visitors: tells the server the page shown now (call it after a single-page app
    /// navigated; a page load is reported by `connect`). Opens no stream.
    #[wasm_bindgen(js_name = trackPage, unchecked_return_type = "Promise<void>")]
    pub fn track_page(&self) -> Promise {
        let req = v1::TrackPageRequest {
            url: web_sys::window()
                .and_then(|w| w.location().href().ok())
                .unwrap_or_default(),
            title: super::document_title(),
            referrer: String::new(),
        };
        fire(
            self.sh.clone(),
            "/wsmschat.v1.ChatService/TrackPage",
            req.encode_to_vec(),
        )
    }

    /// Where `POST` uploads go (`<server>/uploads`): the widget and console upload with
    /// `XMLHttpRequest` for progress, with `Authorization: Bearer <token>`.
    #[wasm_bindgen(getter, js_name = uploadUrl)]
    pub fn upload_url(&self) -> String {
        format!("{}/uploads", self.sh.server.trim_end_matches('/'))
    }
}

/// A unary call whose answer is only its status (page trail, the widget's attribute writes):
/// one future for all of them, and no response decoding.
fn fire(sh: Rc<Shared>, path: &'static str, body: Vec<u8>) -> Promise {
    promise(async move {
        crate::raw::unary_bytes(sh.unary.clone(), sh.req(body), path)
            .await
            .map_err(|s| sh.err(&s))?;
        Ok(JsValue::UNDEFINED)
    })
}
