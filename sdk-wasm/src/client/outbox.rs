//! The outbox: sends in `send` order, one at a time (so seqs follow the order of `send`
//! calls), retried with their own client_msg_id, persisted for visitors so a reload keeps
//! them. The order and retry decisions are [`crate::state`]'s.

use std::rc::Rc;

use futures_channel::mpsc::{UnboundedReceiver, unbounded};
use futures_util::StreamExt;
use futures_util::future::select;
use js_sys::Array;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;
use wsmschat::v1;
use wsmschat::v1::client_event::Event as Ce;

use super::Shared;
use super::errors::{classify, reason, status_error};
use crate::js::{self, O, get_str};
use crate::rt::{backoff_ms, sleep};
use crate::state::{self, Pending, SendState};

impl Shared {
    pub(super) fn kick_pump(self: &Rc<Self>) {
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

    /// Tells the app a send moved (sending, waiting, stored, refused): a `view` event for
    /// its conversation, whose view says where the send stands. The view is the one place a
    /// send's status is read from.
    fn send_moved(&self, e: &Pending, stored_in: Option<&str>) {
        let conversation = match stored_in {
            Some(c) => c.to_owned(),
            None => self.outbox.borrow().conversation_of(e).to_owned(),
        };
        self.emit_view(&conversation, &e.topic);
    }

    pub(super) fn save_outbox(&self) {
        if self.site_key.is_empty() {
            return;
        }
        let items: Array = self.outbox.borrow().iter().map(pending_js).collect();
        if items.length() == 0 {
            self.store.remove(&self.key("outbox"));
        } else if let Ok(s) = js_sys::JSON::stringify(&items) {
            self.store.set(&self.key("outbox"), &String::from(s));
        }
    }

    pub(super) fn restore_outbox(&self) {
        let Some(raw) = self.store.get(&self.key("outbox")) else {
            return;
        };
        let Ok(items) = js_sys::JSON::parse(&raw) else {
            return;
        };
        if !Array::is_array(&items) {
            return;
        }
        let items: Array = items.unchecked_into();
        let items = items.iter().map(|o| Pending {
            client_msg_id: get_str(&o, "clientMsgId"),
            conversation_id: get_str(&o, "conversationId"),
            topic: get_str(&o, "topic"),
            follows: get_str(&o, "follows"),
            text: get_str(&o, "text"),
            note: get_str(&o, "kind") == "note",
            attachment_ids: js::get_strs(&o, "attachmentIds"),
            attachments_json: get_str(&o, "attachments"),
            state: SendState::Waiting,
            error: String::new(),
        });
        self.outbox.borrow_mut().restore(items, || None);
    }
}

/// A pending send as JS (what `pending()` lists and the outbox keeps in storage).
pub(super) fn pending_js(e: &Pending) -> JsValue {
    O::new()
        .s("clientMsgId", &e.client_msg_id)
        .s("conversationId", &e.conversation_id)
        .s("topic", &e.topic)
        .s("follows", &e.follows)
        .s("text", &e.text)
        .s("kind", if e.note { "note" } else { "text" })
        .strs("attachmentIds", &e.attachment_ids)
        .s("attachments", &e.attachments_json)
        .done()
}

/// Sends the outbox in order, one at a time (so seqs follow the order of `send` calls), retrying
/// what failed for a retryable reason with the same client_msg_id. Ends when the outbox is empty.
async fn pump(sh: Rc<Shared>, mut wake: UnboundedReceiver<()>) {
    let mut attempt: u32 = 0;
    let mut faults = state::Faults::default();
    loop {
        if sh.closed.get() {
            break;
        }
        let next = sh.outbox.borrow_mut().head().cloned();
        let Some(head) = next else { break };
        sh.outbox
            .borrow_mut()
            .mark(&head.client_msg_id, SendState::Sending, "");
        sh.send_moved(&head, None);
        let cmid = head.client_msg_id.clone();
        let msg = v1::SendMessage {
            conversation_id: head.conversation_id.clone(),
            topic: head.topic.clone(),
            client_msg_id: cmid.clone(),
            text: head.text.clone(),
            kind: if head.note {
                v1::MessageKind::Note
            } else {
                v1::MessageKind::Text
            } as i32,
            attachment_ids: head.attachment_ids.clone(),
        };
        let result = sh.publish(Ce::SendMessage(msg)).await;
        match result {
            Ok(ack) => {
                attempt = 0;
                let done = sh.outbox.borrow_mut().acked(&cmid, &ack.conversation_id);
                let Some((e, mut settle)) = done else {
                    continue;
                };
                sh.cursors.borrow_mut().follow(&ack.conversation_id);
                sh.views
                    .borrow_mut()
                    .acked(&ack.conversation_id, sh.own_message(&e, &ack));
                sh.save_outbox();
                sh.send_moved(&e, Some(&ack.conversation_id));
                if let Some((resolve, _)) = settle.take() {
                    let _ = resolve.call1(&JsValue::NULL, &js::ack(&ack));
                }
            }
            Err(status) => {
                let (code, msg) = classify(&sh.server, &status);
                if reason(&status).is_none() && faults.retry(&cmid, code as i32) {
                    attempt += 1;
                    sh.outbox.borrow_mut().mark(&cmid, SendState::Waiting, &msg);
                    sh.send_moved(&head, None);
                    let delay = backoff_ms(attempt);
                    let _ = select(Box::pin(sleep(delay)), wake.next()).await;
                    while wake.try_recv().is_ok() {}
                } else {
                    let gone = sh.outbox.borrow_mut().refuse(&cmid, &msg);
                    if let Some((e, mut settle)) = gone {
                        sh.save_outbox();
                        sh.send_moved(&e, None);
                        if let Some((_, reject)) = settle.take() {
                            let _ = reject.call1(
                                &JsValue::NULL,
                                &status_error(code, &format!("wsmschat: {msg}"), &status),
                            );
                        }
                    }
                }
            }
        }
    }
    sh.pump_wake.borrow_mut().take();
}
