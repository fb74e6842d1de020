//! The Subscribe stream: one open at a time, resumed from the cursors, ended after silence
//! (no heartbeat), reopened with backoff; messages are deduplicated against the cursors.

use std::rc::Rc;

use futures_channel::mpsc::UnboundedReceiver;
use futures_util::StreamExt;
use futures_util::future::{Either, select};
use tonic::Status;
use wsmschat::v1;
use wsmschat::v1::server_event::Event as Se;

use super::Shared;
use super::errors::{classify, status_error};
use crate::js::{self, O};
use crate::raw;
use crate::rt::{backoff_ms, sleep};
use crate::state;

const SUBSCRIBE: &str = "/wsmschat.v1.ChatService/Subscribe";
/// Stream silence tolerated before the first `ready` tells the heartbeat interval.
const DEFAULT_SILENCE_MS: u32 = 40_000;

impl Shared {
    pub(super) fn wake_stream(&self) {
        if let Some(tx) = self.stream_wake.borrow().as_ref() {
            let _ = tx.unbounded_send(());
        }
    }

    pub(super) fn on_event(self: &Rc<Self>, ev: Se) -> bool {
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
            Se::Message(mut m) => {
                if !self.cursors.borrow_mut().accept(&m.conversation_id, m.seq) {
                    return false;
                }
                self.absolutize(&mut m);
                // The app hears of the message first (to pick what it shows), then of the view.
                self.emit("message", &js::message(&m));
                let conversation = m.conversation_id.clone();
                let mut views = self.views.borrow_mut();
                if !self.site_key.is_empty() {
                    // A visitor's stream brings only their own conversations: keep them all.
                    views.open(&conversation);
                }
                let changed = views.message(&conversation, super::Stored::new(&m));
                drop(views);
                if changed {
                    self.emit_view(&conversation, "");
                }
            }
            Se::Conversation(c) => {
                self.emit("conversation", &js::conversation(&c));
                self.conversation_marks(&c);
            }
            Se::Typing(t) => self.emit("typing", &js::typing(&t)),
            Se::Read(r) => {
                self.emit("read", &js::read(&r));
                let by_visitor = r.reader_kind == v1::AuthorKind::Visitor as i32;
                if self
                    .views
                    .borrow_mut()
                    .read(&r.conversation_id, by_visitor, r.seq)
                {
                    self.emit_view(&r.conversation_id, "");
                }
            }
            Se::Presence(p) => self.emit("presence", &js::presence_changed(&p)),
            Se::ResyncRequired(_) => return true,
            #[cfg(feature = "agent")]
            Se::Visitor(v) => self.emit(
                "visitor",
                &O::new()
                    .s("visitorId", &v.visitor_id)
                    .s("siteId", &v.site_id)
                    .done(),
            ),
            #[cfg(not(feature = "agent"))]
            Se::Visitor(_) => {}
            Se::Heartbeat(_) | Se::Ack(_) | Se::Error(_) => {}
        }
        false
    }
}

/// Keeps one Subscribe stream open until the client is closed.
pub(super) async fn run_stream(sh: Rc<Shared>, mut wake: UnboundedReceiver<()>) {
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
            .list()
            .into_iter()
            .map(|(conversation_id, after_seq)| v1::ConversationCursor {
                conversation_id,
                after_seq,
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
            if !state::retryable(code as i32) {
                sh.closed.set(true);
                sh.set_state("closed", attempt, None, Some(&msg));
                sh.fail(status_error(
                    code,
                    &format!("wsmschat: the chat stream was refused: {msg}"),
                    status,
                ));
                break;
            }
            reason = Some(msg);
        }
        attempt += 1;
        let delay = state::reconnect_delay(attempt, woken || resync, backoff_ms);
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
