//! Messages and notes: the write half of the delivery contract (idempotent per
//! `client_msg_id`, acked after commit; the hub delivers in commit order).

use std::sync::Arc;

use wsmschat::v1;

use crate::auth::Principal;
use crate::core::{Core, check_no_nul};
use crate::error::{CoreError, CoreResult};
use crate::store::{IpQuota, NewConversation, NewMessage};
use crate::util::new_id;

impl Core {
    /// Rejects empty or oversize text.
    pub(super) fn check_text(&self, text: &str, may_be_empty: bool) -> CoreResult<()> {
        if text.len() > self.config.max_message_bytes {
            return Err(CoreError::InvalidArgument(format!(
                "text is {} bytes; the limit is {} bytes",
                text.len(),
                self.config.max_message_bytes
            )));
        }
        if !may_be_empty && text.trim().is_empty() {
            return Err(CoreError::InvalidArgument("text is empty".into()));
        }
        check_no_nul(text, "text")
    }

    /// A message or note: checked, stored (ack after commit), fanned out by the hub from the
    /// store's commit; a new conversation is announced and its topic's queue served.
    pub(super) async fn send_message(
        self: &Arc<Self>,
        principal: &Principal,
        ip: Option<std::net::IpAddr>,
        m: v1::SendMessage,
        origin: Option<u64>,
        ack: &mut v1::Ack,
    ) -> CoreResult<()> {
        self.check_text(&m.text, !m.attachment_ids.is_empty())?;
        if m.attachment_ids.len() > crate::files::MAX_FILES_PER_MESSAGE {
            return Err(CoreError::InvalidArgument(format!(
                "{} files in one message; at most {} may be sent together",
                m.attachment_ids.len(),
                crate::files::MAX_FILES_PER_MESSAGE
            )));
        }
        let mut attachment_ids = m.attachment_ids.clone();
        attachment_ids.dedup();
        if attachment_ids
            .iter()
            .any(|id| !id.starts_with("f_") || id.len() > 64)
        {
            return Err(CoreError::InvalidArgument(
                "attachment_ids must be ids of uploads (f_...)".into(),
            ));
        }
        if !wsmschat::ids::valid_client_id(&m.client_msg_id) {
            return Err(CoreError::InvalidArgument(format!(
                "client_msg_id must be 1 to {} printable ASCII bytes",
                wsmschat::limits::MAX_CLIENT_ID_BYTES
            )));
        }
        let kind = match v1::MessageKind::try_from(m.kind).unwrap_or_default() {
            v1::MessageKind::Unspecified | v1::MessageKind::Text => v1::MessageKind::Text,
            v1::MessageKind::Note => {
                Self::require_staff(principal)?;
                v1::MessageKind::Note
            }
            v1::MessageKind::System => {
                return Err(CoreError::InvalidArgument(
                    "clients cannot send system messages".into(),
                ));
            }
        };
        let (author_kind, author_id, author_name) = principal.author();
        let mut new = NewMessage {
            conversation_id: None,
            new_conversation: None,
            client_msg_id: Some(m.client_msg_id.clone()),
            author_key: principal.author_key(),
            kind,
            author_kind,
            author_id,
            author_name,
            text: m.text,
            system: None,
            require_visitor: None,
            origin_stream: origin,
            attachment_ids,
            alert_topics: Vec::new(),
            alert_delay_ms: 0,
            email_visitor: self
                .config
                .email
                .as_ref()
                .filter(|_| {
                    kind == v1::MessageKind::Text
                        && matches!(author_kind, v1::AuthorKind::Agent | v1::AuthorKind::Service)
                })
                .map(|e| e.minute.as_millis() as i64),
        };
        match principal {
            Principal::Visitor {
                visitor_id,
                site_id,
                ..
            } => {
                new.require_visitor = Some(visitor_id.clone());
                // Email on: a message while nobody of its topic is online alerts the agents.
                if self.email_enabled() && kind == v1::MessageKind::Text {
                    let site = self.site(site_id).await?;
                    new.alert_topics = site
                        .topics
                        .iter()
                        .filter(|t| self.presence.online_for(t).is_empty())
                        .cloned()
                        .collect();
                    new.alert_delay_ms = self
                        .config
                        .email
                        .as_ref()
                        .map(|e| e.minute.as_millis() as i64)
                        .unwrap_or(60_000);
                }
                if m.conversation_id.is_empty() {
                    let site = self.site(site_id).await?;
                    let topic = site
                        .topics
                        .iter()
                        .find(|t| t.eq_ignore_ascii_case(m.topic.trim()))
                        .cloned()
                        .ok_or_else(|| {
                            CoreError::InvalidArgument(format!(
                                "unknown topic {:?}; this site offers: {}",
                                m.topic,
                                site.topics.join(", ")
                            ))
                        })?;
                    self.charge_new_conversation(ip)?;
                    self.refuse_blocked(site_id, "", ip).await?;
                    let per_hour = match site.new_conversations_per_ip_hour {
                        0 => self.config.new_conversations_per_ip_hour,
                        n => n,
                    };
                    new.new_conversation = Some(NewConversation {
                        id: new_id("c_"),
                        site_id: site_id.clone(),
                        visitor_id: visitor_id.clone(),
                        topic,
                        max_open: self.config.open_conversations_per_visitor,
                        ip_quota: ip.filter(|_| per_hour > 0).map(|ip| IpQuota {
                            ip_key: crate::core::limits::ip_key(ip),
                            per_hour,
                        }),
                    });
                } else {
                    new.conversation_id = Some(m.conversation_id);
                }
            }
            _ => {
                Self::require_staff(principal)?;
                if m.conversation_id.is_empty() {
                    return Err(CoreError::InvalidArgument(
                        "conversation_id is required (only visitors start conversations)".into(),
                    ));
                }
                // Only into conversations the caller may see; an agent answering a queued
                // conversation takes it (as Chatwoot does).
                // (An unscoped service key may write anywhere: no read on its hot path.)
                let unscoped_key =
                    matches!(principal, Principal::Service { site_ids, .. } if site_ids.is_empty());
                if !unscoped_key {
                    let c = self
                        .visible_conversation(principal, &m.conversation_id)
                        .await?;
                    if let Principal::Agent { agent } = principal {
                        if kind == v1::MessageKind::Text
                            && c.status == v1::ConversationStatus::Queued as i32
                        {
                            self.assign_to(&c, &agent.id, v1::SystemEventKind::Joined)
                                .await?;
                        }
                    }
                }
                new.conversation_id = Some(m.conversation_id);
            }
        }
        let started_conversation = new.new_conversation.is_some();
        let appended = self.store.append_message(new).await?;
        if started_conversation {
            // The event named no conversation (events/mod.rs recorded none): now it has one.
            tracing::Span::current()
                .record("conversation", appended.message.conversation_id.as_str());
        }
        if !appended.duplicate {
            self.metrics.messages_in.inc();
            if let Principal::Visitor { site_id, .. } = principal {
                if kind == v1::MessageKind::Text {
                    self.away_reply(site_id, &appended.message.conversation_id);
                }
            }
        }
        // A new or reopened conversation enters the queue: announce it and serve the queue.
        // Other messages need no snapshot: the message event carries the news.
        if let Some(c) = appended.conversation.clone() {
            let (topic, site_id) = (c.topic.clone(), c.site_id.clone());
            self.announce(c);
            self.drain_arrival(&topic, &site_id);
        }
        ack.conversation_id = appended.message.conversation_id;
        ack.seq = appended.message.seq;
        ack.client_msg_id = appended.message.client_msg_id;
        ack.duplicate = appended.duplicate;
        ack.created_at_ms = appended.message.created_at_ms;
        Ok(())
    }
}
