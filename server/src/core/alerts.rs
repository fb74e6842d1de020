//! Emails to the team: an alert when a customer writes while nobody of the topic is online
//! (one per conversation and burst, a minute later, skipped if someone came online), a daily
//! digest of the conversations still waiting (once per site and day, whichever node sends it),
//! and a notice to admins when the server disables a failing webhook endpoint. Recipients: the
//! active agents who may see the conversation and answer its topic, without `email_alerts_off`,
//! and the site's `notify_email`. All of them go through the durable email outbox.

use wsmschat::v1;

use super::Core;
use crate::auth::Principal;
use crate::error::CoreResult;
use crate::store::ConversationFilter;
use crate::store::email::NewEmail;
use crate::util::{html_escape as esc, new_id, now_ms, utc_minute as hm};

impl Core {
    /// Who gets a site's team emails (name, address), without duplicates.
    async fn team(
        &self,
        site: &v1::Site,
        topic: Option<&str>,
        admins_only: bool,
    ) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        if let Ok(agents) = self.store.list_agents().await {
            for agent in agents {
                if !agent.active || agent.email_alerts_off {
                    continue;
                }
                let admin = agent.role == v1::AgentRole::Admin as i32;
                if admins_only && !admin {
                    continue;
                }
                let serves = match topic {
                    Some(t) => {
                        agent.topics.is_empty()
                            || agent.topics.iter().any(|x| x.eq_ignore_ascii_case(t))
                    }
                    None => true,
                };
                let email = agent.email.clone();
                let name = agent.name.clone();
                let p = Principal::Agent { agent };
                if serves && self.may_see(&p, &site.id, topic.unwrap_or("")) {
                    out.push((name, email));
                }
            }
        }
        if !site.notify_email.is_empty() {
            out.push((site.name.clone(), site.notify_email.clone()));
        }
        out.sort_by_key(|a| a.1.to_lowercase());
        out.dedup_by(|a, b| a.1.eq_ignore_ascii_case(&b.1));
        out
    }

    fn console_link(&self) -> String {
        format!(
            "{}/console/",
            self.config.public_url.as_deref().unwrap_or("")
        )
    }

    /// Due alerts: an email to the team per conversation whose customer still waits.
    pub(super) async fn alert_pass(&self, now: i64) {
        let due = match self.store.due_alerts(now, 50).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot read due alerts");
                return;
            }
        };
        for conversation_id in due {
            let emails = match self.compose_alert(&conversation_id).await {
                Ok(emails) => emails,
                Err(e) => {
                    tracing::warn!(error = %e, "Cannot compose an alert");
                    Vec::new()
                }
            };
            if let Err(e) = self.store.take_alert(conversation_id, emails, now).await {
                tracing::warn!(error = %e, "Cannot queue an alert");
            }
        }
    }

    async fn compose_alert(&self, conversation_id: &str) -> CoreResult<Vec<NewEmail>> {
        let c = self.store.conversation(conversation_id).await?;
        // Somebody came online, or it was answered: no alert.
        if !self.presence.online_for(&c.topic).is_empty()
            || c.status == v1::ConversationStatus::Resolved as i32
        {
            return Ok(Vec::new());
        }
        let recent = self.store.history(conversation_id, 0, 20, false).await?.0;
        let last_staff = recent
            .iter()
            .rposition(|m| {
                m.author_kind == v1::AuthorKind::Agent as i32
                    || m.author_kind == v1::AuthorKind::Service as i32
            })
            .map(|i| i + 1)
            .unwrap_or(0);
        let waiting: Vec<&v1::Message> = recent[last_staff..]
            .iter()
            .filter(|m| {
                m.author_kind == v1::AuthorKind::Visitor as i32
                    && m.kind == v1::MessageKind::Text as i32
            })
            .collect();
        if waiting.is_empty() {
            return Ok(Vec::new());
        }
        let site = self.site(&c.site_id).await?;
        let who = if c.visitor_name.is_empty() {
            "A visitor".to_owned()
        } else {
            c.visitor_name.clone()
        };
        let subject = format!("{who} is waiting ({}) - {}", c.topic, site.name);
        let mut text = format!(
            "{who} wrote on {} while nobody answering {} was online:\n\n",
            site.name, c.topic
        );
        let mut items = String::new();
        for m in &waiting {
            text.push_str(&format!("[{}]\n{}\n\n", hm(m.created_at_ms), m.text));
            items.push_str(&format!(
                "<p style=\"margin:0 0 4px;color:#555;font-size:13px\">{}</p>\
                 <p style=\"margin:0 0 14px;white-space:pre-wrap\">{}</p>",
                esc(&hm(m.created_at_ms)),
                esc(&m.text)
            ));
        }
        let link = self.console_link();
        text.push_str(&format!(
            "Answer in the console: {link} (conversation {})\n\n--\nAlert emails can be turned \
             off in the console (your menu).\n",
            c.id
        ));
        let html = format!(
            "<!doctype html><html><body style=\"font-family:system-ui,sans-serif\">\
             <p>{} wrote on {} while nobody answering {} was online:</p>{items}\
             <p><a href=\"{}\">Answer in the console</a> (conversation {})</p>\
             <p style=\"font-size:12px;color:#777\">Alert emails can be turned off in the console.</p>\
             </body></html>",
            esc(&who),
            esc(&site.name),
            esc(&c.topic),
            esc(&link),
            esc(&c.id)
        );
        Ok(self
            .team(&site, Some(&c.topic), false)
            .await
            .into_iter()
            .map(|(_, to)| NewEmail {
                id: new_id("em_"),
                kind: "alert".into(),
                conversation_id: c.id.clone(),
                to,
                from_name: format!("wsmschat ({})", site.name),
                subject: subject.clone(),
                text: text.clone(),
                html: html.clone(),
                headers: String::new(),
            })
            .collect())
    }

    /// Sends each site's digest of `day` ("YYYY-MM-DD") unless it was sent: the conversations
    /// queued, and the open ones with visitor messages the agents have not read.
    pub async fn send_digests(&self, day: &str) -> CoreResult<u32> {
        let mut sent = 0;
        for site in self.store.list_sites().await? {
            if self
                .store
                .digest_sent(site.id.clone(), day.to_owned())
                .await?
            {
                continue;
            }
            let mut waiting = Vec::new();
            for (status, unread_only) in [
                (v1::ConversationStatus::Queued, false),
                (v1::ConversationStatus::Open, true),
            ] {
                let (list, _) = self
                    .store
                    .list_conversations(ConversationFilter {
                        status: Some(status),
                        site_id: Some(site.id.clone()),
                        limit: 100,
                        ..Default::default()
                    })
                    .await?;
                waiting.extend(
                    list.into_iter()
                        .filter(|c| !unread_only || c.agent_read_seq < c.last_seq),
                );
            }
            let emails: Vec<NewEmail> = if waiting.is_empty() {
                Vec::new()
            } else {
                let subject = format!(
                    "{} conversation{} waiting - {}",
                    waiting.len(),
                    if waiting.len() == 1 { "" } else { "s" },
                    site.name
                );
                let mut text = format!("Still waiting on {} ({day}):\n\n", site.name);
                let mut rows = String::new();
                for c in &waiting {
                    let who = if c.visitor_name.is_empty() {
                        "Visitor"
                    } else {
                        &c.visitor_name
                    };
                    let status = if c.status == v1::ConversationStatus::Queued as i32 {
                        "queued"
                    } else {
                        "unread"
                    };
                    text.push_str(&format!(
                        "- {who} ({}, {status}) since {}: {}\n",
                        c.topic,
                        hm(c.updated_at_ms),
                        c.last_message_preview
                    ));
                    rows.push_str(&format!(
                        "<li>{} ({}, {status}) since {}: {}</li>",
                        esc(who),
                        esc(&c.topic),
                        esc(&hm(c.updated_at_ms)),
                        esc(&c.last_message_preview)
                    ));
                }
                let link = self.console_link();
                text.push_str(&format!("\nOpen the console: {link}\n"));
                let html = format!(
                    "<!doctype html><html><body style=\"font-family:system-ui,sans-serif\">\
                     <p>Still waiting on {} ({day}):</p><ul>{rows}</ul>\
                     <p><a href=\"{}\">Open the console</a></p></body></html>",
                    esc(&site.name),
                    esc(&link)
                );
                self.team(&site, None, false)
                    .await
                    .into_iter()
                    .map(|(_, to)| NewEmail {
                        id: new_id("em_"),
                        kind: "digest".into(),
                        conversation_id: String::new(),
                        to,
                        from_name: format!("wsmschat ({})", site.name),
                        subject: subject.clone(),
                        text: text.clone(),
                        html: html.clone(),
                        headers: String::new(),
                    })
                    .collect()
            };
            let n = emails.len() as u32;
            if self
                .store
                .record_digest(site.id.clone(), day.to_owned(), emails, now_ms())
                .await?
            {
                sent += n;
            }
        }
        Ok(sent)
    }

    /// The server disabled a failing endpoint: tell the site's admins (and notify address).
    pub(super) async fn notify_webhook_disabled(&self, endpoint_id: &str, reason: &str) {
        if !self.email_enabled() {
            return;
        }
        let Ok(endpoint) = self.store.webhook(endpoint_id).await else {
            return;
        };
        let Ok(site) = self.site(&endpoint.site_id).await else {
            return;
        };
        let text = format!(
            "The webhook endpoint {} of {} was disabled: {reason}.\n\nFix the receiver, then \
             enable it again in the console (site settings, Webhooks); its queued events are \
             kept and go out then.\n",
            endpoint.url, site.name
        );
        let html = format!(
            "<!doctype html><html><body><p>{}</p></body></html>",
            esc(&text).replace('\n', "<br>")
        );
        for (_, to) in self.team(&site, None, true).await {
            let email = NewEmail {
                id: new_id("em_"),
                kind: "webhook-disabled".into(),
                conversation_id: String::new(),
                to,
                from_name: format!("wsmschat ({})", site.name),
                subject: format!("Webhook disabled - {}", site.name),
                text: text.clone(),
                html: html.clone(),
                headers: String::new(),
            };
            if let Err(e) = self.store.queue_email(email, 0).await {
                tracing::warn!(error = %e, "Cannot queue a webhook notice");
            }
        }
    }

    /// The calling agent's alert emails on or off.
    pub async fn set_email_alerts(
        &self,
        principal: &Principal,
        off: bool,
    ) -> CoreResult<v1::Agent> {
        let agent = Self::require_agent(principal)?;
        self.store.set_agent_alerts(agent.id.clone(), off).await?;
        Ok(self.store.agent_by_id(&agent.id).await?)
    }
}
