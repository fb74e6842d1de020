//! Email: the customer-continuity email of unseen replies, sent over SMTP from a durable outbox.
//!
//! - **Off without SMTP.** With no `--smtp-url` nothing is queued, the widget is told email is
//!   off (`SiteInfo.email_enabled`) and promises nothing.
//! - **Continuity.** An agent's or service's reply to a visitor with an address queues, in its
//!   own transaction, the conversation's pending email, due after the site's delay (default 3
//!   minutes). When it is due the mailer, in one transaction, deletes it and queues one email of
//!   every reply the visitor has still not seen (read marks count), so a burst of replies is one
//!   email and a reply is never mailed twice. Sender: the replying agent's name and the site's;
//!   plain text and HTML (user text escaped, never markup), in the visitor's language (English or
//!   German), with a signed link that reopens the conversation in the widget on the site (7 days;
//!   also moves it to another device) and an unsubscribe link (RFC 8058 one-click too).
//! - **At least once.** Each email is a row, leased to a node per attempt and sent with a stable
//!   `Message-ID`; SMTP errors are retried with growing waits (a 5xx reply fails it at once), and
//!   its state and the server's reply are listed on the conversation (`ListConversationEmails`).
//!   A node killed mid-send resends at most the email in flight, with the same `Message-ID`.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use wsmschat::v1;

use super::Core;
use crate::error::{CoreError, CoreResult};
use crate::store::email::{ContinuityInput, FAILED, NewEmail, QUEUED, SENT};
use crate::util::{html_escape as esc, new_id, now_ms};

/// How long a continuation link works.
pub const CONTINUATION_TTL_MS: i64 = 7 * 86_400_000;
/// Token purposes.
pub const CONTINUE: &str = "continue";
pub const UNSUBSCRIBE: &str = "unsubscribe";
/// How often the mailer looks.
const POLL: Duration = Duration::from_secs(1);
/// Emails per pass.
const BATCH: u32 = 50;

/// Email settings (part of [`super::CoreConfig`]; None there: email is off).
#[derive(Debug, Clone)]
pub struct EmailConfig {
    /// `smtp://user:pass@host:587?tls=required` (STARTTLS), `smtps://host:465` (TLS), or
    /// `smtp://host:25` (plain, for a local relay).
    pub smtp_url: String,
    /// The sender address (`support@shop.example`); its domain names the Message-IDs.
    pub from: String,
    /// Waits after each failed attempt; after the last the email fails.
    pub retry: Vec<Duration>,
    /// One SMTP exchange's limit.
    pub timeout: Duration,
    /// The length of a delay "minute" of the site setting (tests shorten it).
    pub minute: Duration,
    /// Where to accept replies by email (`--smtp-listen`); None: replies go nowhere.
    pub smtp_listen: Option<std::net::SocketAddr>,
    /// The domain of reply addresses (`reply+TOKEN@...`; its MX must reach the listener);
    /// None: the sender address's domain.
    pub reply_domain: Option<String>,
    /// The UTC hour after which the daily digest of waiting conversations goes out; None: no
    /// digest.
    pub digest_hour: Option<u8>,
}

impl EmailConfig {
    /// The domain of reply addresses.
    pub fn reply_domain(&self) -> String {
        self.reply_domain.clone().unwrap_or_else(|| {
            self.from
                .rsplit_once('@')
                .map(|(_, d)| d.to_owned())
                .unwrap_or_default()
        })
    }
}

impl EmailConfig {
    pub fn new(smtp_url: String, from: String) -> Self {
        Self {
            smtp_url,
            from,
            retry: [60, 300, 900, 3600, 3 * 3600, 6 * 3600, 12 * 3600]
                .map(Duration::from_secs)
                .to_vec(),
            timeout: Duration::from_secs(30),
            minute: Duration::from_secs(60),
            smtp_listen: None,
            reply_domain: None,
            digest_hour: Some(8),
        }
    }
}

/// The SMTP side.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: lettre::Address,
    domain: String,
}

impl Mailer {
    pub fn new(c: &EmailConfig) -> anyhow::Result<Self> {
        let from: lettre::Address = c
            .from
            .parse()
            .map_err(|e| anyhow::anyhow!("--mail-from {:?}: {e}", c.from))?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&c.smtp_url)
            .map_err(|e| anyhow::anyhow!("--smtp-url: {e}"))?
            .timeout(Some(c.timeout))
            .build();
        Ok(Self {
            domain: from.domain().to_owned(),
            from,
            transport,
        })
    }

    /// The Message-ID of an email.
    pub fn message_id(&self, id: &str) -> String {
        format!("<{id}@{}>", self.domain)
    }
}

use super::email_words::words;

/// The origin (`scheme://host[:port]`) of a URL.
fn origin_of(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    let o = u.origin();
    o.is_tuple().then(|| o.ascii_serialization())
}

/// Where the continuation link opens the widget: the page the visitor chatted on when its
/// origin is one of the site's configured origins (a bare "*" does not count), else the first
/// configured origin without a wildcard. Never an origin taken only from what the browser said
/// (the link carries a credential); None when the site names no origin.
pub fn continuation_page(site: &v1::Site, page_url: &str) -> Option<String> {
    let patterns: Vec<String> = site
        .allowed_origins
        .iter()
        .filter(|o| o.trim() != "*")
        .cloned()
        .collect();
    if let Some(o) = origin_of(page_url)
        && crate::auth::origin_allowed(&patterns, &o)
    {
        let mut u = url::Url::parse(page_url).ok()?;
        u.set_fragment(None);
        return Some(u.to_string());
    }
    patterns
        .iter()
        .find(|o| !o.contains('*'))
        .map(|o| format!("{}/", o.trim_end_matches('/')))
}

impl Core {
    /// Whether this server sends email.
    pub fn email_enabled(&self) -> bool {
        self.mailer.is_some()
    }

    /// What admins may know of the configuration.
    pub fn server_info(&self, _: super::access::AdminGrant) -> v1::GetServerInfoResponse {
        v1::GetServerInfoResponse {
            version: env!("CARGO_PKG_VERSION").into(),
            email_enabled: self.email_enabled(),
            mail_from: self
                .config
                .email
                .as_ref()
                .map(|e| e.from.clone())
                .unwrap_or_default(),
            webhooks_allow_private: self.config.webhooks.allow_private,
            public_url: self.config.public_url.clone().unwrap_or_default(),
        }
    }

    /// The continuity email of `input` (runs inside the store's transaction: no I/O).
    fn compose_continuity(&self, input: &ContinuityInput) -> NewEmail {
        let ContinuityInput {
            site,
            visitor,
            conversation,
            replies,
        } = input;
        let w = words(&visitor.locale);
        let now = now_ms();
        let signer = &self.hub.signer;
        let public = self.config.public_url.clone().unwrap_or_default();
        let continue_link = continuation_page(site, &visitor.page_url).and_then(|page| {
            signer
                .token(
                    CONTINUE,
                    &[&visitor.id, &conversation.id],
                    now + CONTINUATION_TTL_MS,
                )
                .map(|t| format!("{page}#wsmschat-continue={t}"))
        });
        let unsubscribe = signer
            .token(UNSUBSCRIBE, &[&visitor.id], 0)
            .map(|t| format!("{public}/email/unsubscribe?t={t}"));
        let name = visitor.name.as_str();
        let fill = |s: &str| s.replace("{site}", &site.name).replace("{name}", name);
        let hello = if name.is_empty() {
            w.hello_anonymous.to_owned()
        } else {
            fill(w.hello)
        };
        let agent = replies
            .last()
            .map(|m| m.author_name.clone())
            .unwrap_or_default();
        let mut text = format!("{hello}\n\n{}\n\n", fill(w.unseen));
        let mut items = String::new();
        for m in replies {
            let time = &crate::util::rfc3339(m.created_at_ms)[11..16];
            text.push_str(&format!("{} ({time} UTC):\n{}\n\n", m.author_name, m.text));
            items.push_str(&format!(
                "<p style=\"margin:0 0 4px;color:#555;font-size:13px\">{} &middot; {time} UTC</p>\
                 <p style=\"margin:0 0 16px;white-space:pre-wrap\">{}</p>",
                esc(&m.author_name),
                esc(&m.text)
            ));
        }
        let mut html = format!(
            "<!doctype html><html lang=\"{lang}\" dir=\"{dir}\"><body style=\"font-family:system-ui,sans-serif;color:#222\">\
             <div style=\"border-top:4px solid {color};padding:16px;max-width:560px\">\
             <p>{hello}</p><p>{unseen}</p>{items}",
            lang = w.lang,
            dir = if w.rtl { "rtl" } else { "ltr" },
            color = esc(&site.color),
            hello = esc(&hello),
            unseen = esc(&fill(w.unseen)),
        );
        match &continue_link {
            Some(link) => {
                text.push_str(&format!("{}: {link}\n", w.continue_));
                html.push_str(&format!(
                    "<p><a href=\"{}\" style=\"background:{};color:#fff;padding:8px 14px;\
                     border-radius:6px;text-decoration:none\">{}</a></p>",
                    esc(link),
                    esc(&site.color),
                    esc(w.continue_)
                ));
            }
            None => {
                text.push_str(w.reply_in_chat);
                text.push('\n');
                html.push_str(&format!("<p>{}</p>", esc(w.reply_in_chat)));
            }
        }
        if self
            .config
            .email
            .as_ref()
            .is_some_and(|e| e.smtp_listen.is_some())
        {
            text.push_str(&format!("{}\n", w.reply_here));
            html.push_str(&format!("<p>{}</p>", esc(w.reply_here)));
        }
        text.push_str(&format!("\n--\n{}\n", fill(w.why)));
        html.push_str(&format!(
            "<hr style=\"border:0;border-top:1px solid #ddd\"><p style=\"font-size:12px;color:#777\">{}",
            esc(&fill(w.why))
        ));
        let mut headers = String::new();
        if let Some(reply_to) = self.reply_address(&conversation.id) {
            headers.push_str(&format!("Reply-To: {reply_to}\n"));
        }
        if let Some(u) = &unsubscribe {
            text.push_str(&format!("{}: {u}\n", w.unsubscribe));
            html.push_str(&format!(
                " <a href=\"{}\">{}</a>",
                esc(u),
                esc(w.unsubscribe)
            ));
            headers.push_str(&format!(
                "List-Unsubscribe: <{u}>\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\n"
            ));
        }
        html.push_str("</p></div></body></html>");
        NewEmail {
            id: new_id("em_"),
            kind: "continuity".into(),
            conversation_id: conversation.id.clone(),
            to: visitor.email.clone(),
            from_name: if agent.is_empty() {
                site.name.clone()
            } else {
                format!("{agent} ({})", site.name)
            },
            subject: fill(w.subject),
            text,
            html,
            headers,
        }
    }

    /// Starts the mailer (one per node) when email is on.
    pub fn spawn_mailer(self: &Arc<Self>) {
        if self.mailer.is_none() {
            return;
        }
        self.spawn_periodic(POLL, |core| async move { core.mail_pass().await });
    }

    /// One pass: due continuity rows and alerts become emails, the day's digest is made once
    /// its hour has come, and due emails are sent.
    async fn mail_pass(self: &Arc<Self>) {
        let now = now_ms();
        self.alert_pass(now).await;
        if let Some(hour) = self.config.email.as_ref().and_then(|e| e.digest_hour) {
            let day = crate::util::rfc3339(now)[..10].to_owned();
            let due = (now % 86_400_000) / 3_600_000 >= i64::from(hour);
            let fresh = self.digest_day.lock().unwrap().as_deref() != Some(day.as_str());
            if due && fresh {
                match self.send_digests(&day).await {
                    Ok(_) => *self.digest_day.lock().unwrap() = Some(day),
                    Err(e) => tracing::warn!(error = %e, "Cannot send the daily digest"),
                }
            }
        }
        match self.store.due_continuity(now, BATCH).await {
            Ok(ids) => {
                for id in ids {
                    let core = self.clone();
                    let compose: Arc<crate::store::email::Compose> =
                        Arc::new(move |input: &ContinuityInput| core.compose_continuity(input));
                    if let Err(e) = self.store.take_continuity(id, now, compose).await {
                        tracing::warn!(error = %e, "Cannot queue a continuity email");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "Cannot read due continuity emails"),
        }
        let due = match self.store.due_emails(now_ms(), BATCH).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot read due emails");
                return;
            }
        };
        for out in due {
            self.send_one(out).await;
        }
    }

    async fn send_one(&self, out: crate::store::email::Outgoing) {
        let (Some(mailer), Some(cfg)) = (&self.mailer, &self.config.email) else {
            return;
        };
        let now = now_ms();
        let lease = now + cfg.timeout.as_millis() as i64 * 2 + 5_000;
        match self
            .store
            .claim_email(out.email.id.clone(), now, lease)
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot lease an email");
                return;
            }
        }
        let e = &out.email;
        let result = match build_message(mailer, e) {
            Ok(message) => mailer
                .transport
                .send(message)
                .await
                .map(drop)
                .map_err(|err| (err.is_permanent(), smtp_error(&err))),
            Err(err) => Err((true, err)),
        };
        let at = now_ms();
        let attempt = out.attempts as usize + 1;
        let (state, next, error) = match result {
            Ok(()) => (SENT, 0, String::new()),
            Err((permanent, error)) => match cfg.retry.get(attempt - 1) {
                Some(wait) if !permanent => (QUEUED, at + wait.as_millis() as i64, error),
                _ => (FAILED, 0, error),
            },
        };
        if state != SENT {
            tracing::info!(email = %e.id, attempt, %error, "Email not sent");
        }
        self.metrics.email_attempt(match state {
            SENT => "sent",
            QUEUED => "retry",
            _ => "failed",
        });
        if let Err(err) = self
            .store
            .record_email(e.id.clone(), state, next, error, at)
            .await
        {
            tracing::warn!(error = %err, "Cannot record an email attempt");
        }
    }

    /// The emails about a conversation (staff who may read it).
    pub async fn conversation_emails(
        &self,
        principal: &crate::auth::Principal,
        conversation_id: String,
    ) -> CoreResult<Vec<v1::Email>> {
        self.staff_conversation(principal, &conversation_id).await?;
        let domain = self
            .mailer
            .as_ref()
            .map(|m| m.domain.clone())
            .unwrap_or_else(|| "localhost".into());
        Ok(self
            .store
            .conversation_emails(conversation_id, domain)
            .await?)
    }

    /// An unsubscribe link was followed: no more email to that visitor.
    pub async fn unsubscribe(&self, token: &str) -> CoreResult<()> {
        let fields = self
            .hub
            .signer
            .open_token(UNSUBSCRIBE, token, now_ms())
            .ok_or_else(|| {
                CoreError::InvalidArgument("this unsubscribe link is not valid".into())
            })?;
        let visitor = fields.first().ok_or_else(|| {
            CoreError::InvalidArgument("this unsubscribe link is not valid".into())
        })?;
        Ok(self.store.email_opt_out(visitor.clone()).await?)
    }

    /// The visitor and conversation of a continuation token, if it is valid and of `site_id`.
    pub(super) async fn continuation(
        &self,
        token: &str,
        site_id: &str,
    ) -> CoreResult<(String, String)> {
        let bad = || {
            CoreError::Unauthenticated(
                "this link to the conversation has expired or is not valid".into(),
            )
        };
        let fields = self
            .hub
            .signer
            .open_token(CONTINUE, token, now_ms())
            .ok_or_else(bad)?;
        let [visitor_id, conversation_id] = fields.as_slice() else {
            return Err(bad());
        };
        let visitor = self
            .store
            .visitor_by_id(visitor_id)
            .await
            .map_err(|_| bad())?;
        if visitor.site_id != site_id {
            return Err(bad());
        }
        Ok((visitor_id.clone(), conversation_id.clone()))
    }
}

/// lettre's message already carries the server's reply: each part once.
fn smtp_error(e: &lettre::transport::smtp::Error) -> String {
    crate::util::error_chain(e.to_string(), e)
}

fn build_message(mailer: &Mailer, e: &NewEmail) -> Result<lettre::Message, String> {
    let to: Mailbox =
        e.to.parse()
            .map_err(|err| format!("the address {:?} is not valid: {err}", e.to))?;
    let mut b = lettre::Message::builder()
        .from(Mailbox::new(Some(e.from_name.clone()), mailer.from.clone()))
        .to(to)
        .subject(e.subject.clone())
        .message_id(Some(mailer.message_id(&e.id)));
    for line in e.headers.lines() {
        if let Some((name, value)) = line.split_once(": ") {
            let name = HeaderName::new_from_ascii(name.to_owned())
                .map_err(|_| format!("bad header name {name:?}"))?;
            b = b.raw_header(HeaderValue::new(name, value.to_owned()));
        }
    }
    b.multipart(MultiPart::alternative_plain_html(
        e.text.clone(),
        e.html.clone(),
    ))
    .map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_continuation_page_is_one_of_the_sites_origins() {
        let site = v1::Site {
            allowed_origins: vec!["https://shop.example".into(), "*".into()],
            ..Default::default()
        };
        let demo = v1::Site {
            allowed_origins: vec!["http://localhost:*".into()],
            ..Default::default()
        };
        assert_eq!(
            continuation_page(&demo, "http://localhost:8081/demo/").as_deref(),
            Some("http://localhost:8081/demo/")
        );
        assert_eq!(continuation_page(&demo, "http://evil.example/"), None);
        assert_eq!(
            continuation_page(&site, "https://shop.example/orders/7?x=1#top").as_deref(),
            Some("https://shop.example/orders/7?x=1")
        );
        // A page the browser named on another origin is not trusted with the token.
        assert_eq!(
            continuation_page(&site, "https://evil.example/phish").as_deref(),
            Some("https://shop.example/")
        );
        let open = v1::Site {
            allowed_origins: vec!["*".into()],
            ..Default::default()
        };
        assert_eq!(continuation_page(&open, "https://evil.example/"), None);
    }
}
