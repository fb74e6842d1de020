//! Client events, one file per family (mini-redis `cmd/` style): [`Core::publish`] checks the
//! envelope and the caller's rate, then hands the event to its file, which checks the caller's
//! rights, changes state through the store and tells the hub.
//!
//! - [`send`]: messages and notes (the delivery contract's write half).
//! - [`typing`], [`read`]: ephemeral typing and durable read marks.
//! - [`assign`]: join, assign and transfer; [`status`]: resolve and reopen.
//! - [`presence`]: an agent's online/away status; [`rate`]: the visitor's rating.

mod assign;
mod presence;
mod rate;
mod read;
mod send;
mod status;
mod typing;

use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;
use wsmschat::v1;
use wsmschat::v1::client_event::Event as Ce;
use wsmschat::v1::server_event::Event as Se;

use super::Core;
use crate::auth::Principal;
use crate::error::{CoreError, CoreResult};

impl Core {
    /// Handles one client event. For messages, returns after the message is durably stored.
    /// `origin`: the hub id of the Chat stream it came on, which gets no echo of its own message
    /// (the ack carries its seq); None for unary Publish.
    pub async fn publish(
        self: &Arc<Self>,
        principal: &Principal,
        ip: Option<std::net::IpAddr>,
        ev: v1::ClientEvent,
        origin: Option<u64>,
    ) -> CoreResult<v1::Ack> {
        let started = Instant::now();
        // On the current span (a Publish RPC's, or a Chat event's): logs from here on name
        // the conversation. A new conversation's id is recorded once it has one (send.rs).
        if let Some(id) = ev.event.as_ref().and_then(conversation_of) {
            tracing::Span::current().record("conversation", id);
        }
        let result = self.apply(principal, ip, ev, origin).await;
        match &result {
            Ok(_) => self
                .metrics
                .publish_latency
                .observe(started.elapsed().as_secs_f64()),
            Err(_) => {
                self.metrics.publish_errors.inc();
            }
        }
        result
    }

    /// One event of a Chat stream, answered in-band with an Ack or an EventError. It is
    /// authorised with the token's current rights (a revoked token's events are refused while
    /// its stream winds down); `watch` adds a conversation to this stream, anything else is
    /// published with the stream as its origin (no echo of its own messages).
    pub async fn stream_event(
        self: &Arc<Self>,
        token: &str,
        ip: Option<std::net::IpAddr>,
        stream_id: u64,
        ev: v1::ClientEvent,
    ) -> v1::ServerEvent {
        // One span per event, inside the stream's: a Chat stream carries events of many
        // conversations, so each event's conversation is its own span's field.
        // `publish` records the conversation too (for a unary Publish's span); a watch is
        // named here, and a new conversation once it exists (send.rs).
        let span = tracing::info_span!("event", conversation = tracing::field::Empty);
        if let Some(id) = ev.event.as_ref().and_then(conversation_of) {
            span.record("conversation", id);
        }
        async move {
            let (request_id, client_msg_id) = event_ids(&ev);
            let result = async {
                let principal = self.authenticate(token).await?;
                match ev.event {
                    Some(Ce::Watch(w)) => {
                        self.watch(&principal, stream_id, w).await.map(|_| v1::Ack {
                            request_id: request_id.clone(),
                            ..Default::default()
                        })
                    }
                    _ => self.publish(&principal, ip, ev, Some(stream_id)).await,
                }
            }
            .await;
            match result {
                Ok(ack) => v1::ServerEvent {
                    event: Some(Se::Ack(ack)),
                },
                Err(e) => event_error(request_id, client_msg_id, e),
            }
        }
        .instrument(span)
        .await
    }

    /// Checks the envelope, charges the caller, and dispatches to the event's file.
    async fn apply(
        self: &Arc<Self>,
        principal: &Principal,
        ip: Option<std::net::IpAddr>,
        ev: v1::ClientEvent,
        origin: Option<u64>,
    ) -> CoreResult<v1::Ack> {
        if ev.request_id.len() > wsmschat::limits::MAX_CLIENT_ID_BYTES {
            return Err(CoreError::InvalidArgument(format!(
                "request_id is longer than {} bytes",
                wsmschat::limits::MAX_CLIENT_ID_BYTES
            )));
        }
        self.charge(&principal.author_key(), ip)?;
        let mut ack = v1::Ack {
            request_id: ev.request_id.clone(),
            ..Default::default()
        };
        let Some(body) = ev.event else {
            return Err(CoreError::InvalidArgument("empty event".into()));
        };
        match body {
            Ce::SendMessage(m) => {
                self.send_message(principal, ip, m, origin, &mut ack)
                    .await?
            }
            Ce::Typing(t) => self.typing(principal, t, &mut ack).await?,
            Ce::MarkRead(r) => self.mark_read(principal, r, &mut ack).await?,
            Ce::Join(j) => self.join(principal, j, &mut ack).await?,
            Ce::Assign(a) => self.assign(principal, a, &mut ack).await?,
            Ce::Resolve(r) => self.resolve(principal, r, &mut ack).await?,
            Ce::Reopen(r) => self.reopen(principal, r, &mut ack).await?,
            Ce::SetPresence(p) => self.set_presence(principal, p).await?,
            Ce::Rate(r) => self.rate(principal, r, &mut ack).await?,
            Ce::Label(l) => self.label(principal, l, &mut ack).await?,
            Ce::Snooze(z) => self.snooze(principal, z, &mut ack).await?,
            Ce::Watch(_) => {
                return Err(CoreError::InvalidArgument(
                    "watch only works on a Chat stream; Subscribe takes cursors".into(),
                ));
            }
        }
        Ok(ack)
    }
}

/// The conversation an event names, if any (a visitor's first message names none yet).
fn conversation_of(body: &Ce) -> Option<&str> {
    let id = match body {
        Ce::SendMessage(m) => &m.conversation_id,
        Ce::Typing(t) => &t.conversation_id,
        Ce::MarkRead(r) => &r.conversation_id,
        Ce::Join(j) => &j.conversation_id,
        Ce::Assign(a) => &a.conversation_id,
        Ce::Resolve(r) => &r.conversation_id,
        Ce::Reopen(r) => &r.conversation_id,
        Ce::Rate(r) => &r.conversation_id,
        Ce::Label(l) => &l.conversation_id,
        Ce::Snooze(z) => &z.conversation_id,
        Ce::Watch(w) => &w.cursor.as_ref()?.conversation_id,
        Ce::SetPresence(_) => return None,
    };
    (!id.is_empty()).then_some(id.as_str())
}

/// The request id and (for a send) the client_msg_id an answer to `ev` carries.
fn event_ids(ev: &v1::ClientEvent) -> (String, String) {
    let client_msg_id = match &ev.event {
        Some(Ce::SendMessage(m)) => m.client_msg_id.clone(),
        _ => String::new(),
    };
    (ev.request_id.clone(), client_msg_id)
}

/// The EventError answering an event (an internal cause is logged, never sent).
fn event_error(request_id: String, client_msg_id: String, e: CoreError) -> v1::ServerEvent {
    if let CoreError::Internal(cause) = &e {
        tracing::error!(error = %cause, "Internal error in a Chat event");
    }
    v1::ServerEvent {
        event: Some(Se::Error(v1::EventError {
            request_id,
            code: e.code() as i32,
            message: e.to_string(),
            client_msg_id,
            reason: e.reason().unwrap_or_default().to_owned(),
        })),
    }
}
