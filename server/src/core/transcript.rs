//! Transcripts: a conversation as plain text, to download (visitor: their own, without notes;
//! staff: with notes) or to have emailed (the visitor asks, once per 10 minutes).

use wsmschat::v1;

use super::Core;
use crate::auth::Principal;
use crate::error::{CoreError, CoreResult};
use crate::store::email::NewEmail;
use crate::util::{new_id, now_ms, utc_minute as when};

/// The most messages a transcript carries (the newest are dropped past it, and said so).
const MAX_MESSAGES: usize = 10_000;
/// How often a visitor may have a conversation's transcript emailed.
const EMAIL_EVERY_MS: i64 = 10 * 60_000;

fn system_line(s: &v1::SystemEvent, text: &str) -> String {
    match v1::SystemEventKind::try_from(s.kind).unwrap_or_default() {
        v1::SystemEventKind::Away => format!("out-of-office reply: {text}"),
        v1::SystemEventKind::Assigned => format!("{} was assigned", s.agent_name),
        v1::SystemEventKind::Joined => format!("{} joined", s.agent_name),
        v1::SystemEventKind::Transferred => format!("transferred to {}", s.agent_name),
        v1::SystemEventKind::Resolved => "resolved".into(),
        v1::SystemEventKind::Reopened => "reopened".into(),
        v1::SystemEventKind::Rated => format!("rated {}/5", s.score),
        v1::SystemEventKind::Unspecified => "update".into(),
    }
}

/// The text of a transcript.
pub fn render(site: &str, c: &v1::Conversation, messages: &[v1::Message], cut: bool) -> String {
    let mut out = format!(
        "Conversation with {site}\nTopic: {}\nStarted: {}\nId: {}\n\n",
        c.topic,
        when(c.created_at_ms),
        c.id
    );
    for m in messages {
        let kind = v1::MessageKind::try_from(m.kind).unwrap_or_default();
        if kind == v1::MessageKind::System {
            if let Some(s) = &m.system {
                out.push_str(&format!(
                    "[{}] -- {} --\n\n",
                    when(m.created_at_ms),
                    system_line(s, &m.text)
                ));
            }
            continue;
        }
        let who = match v1::AuthorKind::try_from(m.author_kind).unwrap_or_default() {
            v1::AuthorKind::Visitor if m.author_name.is_empty() => "You".to_owned(),
            _ if m.author_name.is_empty() => "Support".to_owned(),
            _ => m.author_name.clone(),
        };
        let note = if kind == v1::MessageKind::Note {
            " (private note)"
        } else {
            ""
        };
        out.push_str(&format!("[{}] {who}{note}:\n", when(m.created_at_ms)));
        if !m.text.is_empty() {
            out.push_str(&m.text);
            out.push('\n');
        }
        for a in &m.attachments {
            out.push_str(&format!(
                "(file: {}, {} bytes{})\n",
                a.name,
                a.size,
                if a.deleted { ", deleted" } else { "" }
            ));
        }
        out.push('\n');
    }
    if cut {
        out.push_str(&format!(
            "(the transcript stops after {MAX_MESSAGES} messages)\n"
        ));
    }
    out
}

impl Core {
    /// A conversation's transcript and a file name for it.
    pub async fn transcript(
        &self,
        principal: &Principal,
        conversation_id: &str,
    ) -> CoreResult<(String, String)> {
        let c = self
            .visible_conversation(principal, conversation_id)
            .await?;
        let with_notes = principal.is_staff();
        let mut messages = Vec::new();
        let mut after = 0;
        loop {
            let page = self
                .store
                .messages_after(conversation_id, after, 500, with_notes)
                .await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            messages.extend(page);
            if messages.len() >= MAX_MESSAGES {
                break;
            }
        }
        let cut = messages.len() > MAX_MESSAGES;
        messages.truncate(MAX_MESSAGES);
        let site = self.site(&c.site_id).await?;
        Ok((
            render(&site.name, &c, &messages, cut),
            format!("conversation-{}.txt", c.id),
        ))
    }

    /// Queues the transcript email to the visitor who asks; (email id, address).
    pub async fn email_transcript(
        &self,
        principal: &Principal,
        conversation_id: &str,
    ) -> CoreResult<(String, String)> {
        let Principal::Visitor { visitor_id, .. } = principal else {
            return Err(CoreError::PermissionDenied(
                "only the conversation's visitor may have its transcript emailed".into(),
            ));
        };
        // Whose it is first: others learn nothing, not even whether email is on.
        let (text, _) = self.transcript(principal, conversation_id).await?;
        if !self.email_enabled() {
            return Err(CoreError::FailedPrecondition(
                "this server sends no email".into(),
            ));
        }
        let visitor = self.store.visitor_by_id(visitor_id).await?;
        if visitor.email.is_empty() {
            return Err(CoreError::FailedPrecondition(
                "leave your email address first".into(),
            ));
        }
        let c = self.store.conversation(conversation_id).await?;
        let site = self.site(&c.site_id).await?;
        let subject = super::email_words::words(&visitor.locale)
            .transcript_subject
            .replace("{site}", &site.name);
        let html = format!(
            "<!doctype html><html><body><pre style=\"font-family:ui-monospace,monospace;white-space:pre-wrap\">{}</pre></body></html>",
            text.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        );
        let email = NewEmail {
            id: new_id("em_"),
            kind: "transcript".into(),
            conversation_id: conversation_id.to_owned(),
            to: visitor.email.clone(),
            from_name: site.name.clone(),
            subject,
            text,
            html,
            headers: String::new(),
        };
        let id = email.id.clone();
        if !self
            .store
            .queue_email(email, now_ms() - EMAIL_EVERY_MS)
            .await?
        {
            return Err(CoreError::ResourceExhausted(
                "the transcript was emailed a few minutes ago; try again in 10 minutes".into(),
            ));
        }
        Ok((id, visitor.email))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transcript_reads_as_text() {
        let c = v1::Conversation {
            id: "c_1".into(),
            topic: "Order".into(),
            created_at_ms: 1_764_684_000_000,
            ..Default::default()
        };
        let messages = vec![
            v1::Message {
                seq: 1,
                kind: v1::MessageKind::Text as i32,
                author_kind: v1::AuthorKind::Visitor as i32,
                author_name: "Vera".into(),
                text: "Where is <b>it</b>?".into(),
                created_at_ms: 1_764_684_000_000,
                ..Default::default()
            },
            v1::Message {
                seq: 2,
                kind: v1::MessageKind::System as i32,
                system: Some(v1::SystemEvent {
                    kind: v1::SystemEventKind::Joined as i32,
                    agent_name: "Ann".into(),
                    ..Default::default()
                }),
                created_at_ms: 1_764_684_060_000,
                ..Default::default()
            },
            v1::Message {
                seq: 3,
                kind: v1::MessageKind::Text as i32,
                author_kind: v1::AuthorKind::Agent as i32,
                author_name: "Ann".into(),
                text: "Here.".into(),
                attachments: vec![v1::Attachment {
                    name: "label.pdf".into(),
                    size: 2048,
                    ..Default::default()
                }],
                created_at_ms: 1_764_684_120_000,
                ..Default::default()
            },
        ];
        let t = render("Demo Shop", &c, &messages, false);
        assert!(
            t.starts_with(
                "Conversation with Demo Shop\nTopic: Order\nStarted: 2025-12-02 14:00 UTC\n"
            ),
            "{t}"
        );
        assert!(
            t.contains("[2025-12-02 14:00 UTC] Vera:\nWhere is <b>it</b>?\n"),
            "{t}"
        );
        assert!(t.contains("-- Ann joined --"), "{t}");
        assert!(
            t.contains("Ann:\nHere.\n(file: label.pdf, 2048 bytes)\n"),
            "{t}"
        );
    }
}
