//! Reply by email: an SMTP listener (`--smtp-listen`) that accepts mail only for the
//! per-conversation reply addresses of the continuity emails (`reply+TOKEN@reply-domain`, the
//! token signed and expiring after 30 days) and posts the reply into the conversation as the
//! visitor's message. It is no relay: every other recipient is refused at `RCPT` (550), as is a
//! wrong or expired token.
//!
//! The text is the reply without the quoted history and the signature (`reply_text`); files
//! attached to the mail become the message's attachments (the site's size and kind rules
//! apply; refused ones are named in the text). A mail delivered twice (the sender's server
//! retrying) is one message: its `client_msg_id` is derived from the `Message-ID`.
//! Limits: the visitor's event budget (`publish` charges it as for the widget's calls, with no
//! address: one mail provider carries many customers; 451 when spent), 10 MB per mail
//! (`SIZE`), 10 recipients, 64 connections at once, a 60 s time-out per command; plain SMTP (put a TLS-terminating MX in front on the internet).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sha2::Digest;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use wsmschat::v1;
use wsmschat::v1::client_event::Event as Ce;

use super::Core;
use super::files::UploadStart;
use crate::auth::Principal;
use crate::error::CoreError;
use crate::util::now_ms;

/// Token purpose of reply addresses.
pub const REPLY: &str = "reply";
/// How long a reply address works, days.
pub const REPLY_TTL_DAYS: i64 = 30;
/// Bytes of the MAC in a reply token.
const REPLY_MAC_BYTES: usize = 12;

/// A reply token: hex of (the conversation id's 12 random bytes, the expiry day as u16, a
/// 96-bit MAC): 52 characters, so `reply+TOKEN` fits the 64 characters an address's local
/// part may have (RFC 5321), and case-insensitive like mail servers may treat it.
pub fn reply_token_for(
    signer: &crate::files::Signer,
    conversation_id: &str,
    now: i64,
) -> Option<String> {
    let raw = hex::decode(conversation_id.strip_prefix("c_")?).ok()?;
    let day = u16::try_from(now / 86_400_000 + REPLY_TTL_DAYS).ok()?;
    let mut data = raw;
    data.extend_from_slice(&day.to_be_bytes());
    let mac = signer.mac_for(REPLY, &data)?;
    data.extend_from_slice(&mac[..REPLY_MAC_BYTES]);
    Some(hex::encode(data))
}

/// The conversation of a reply token that is this server's and has not expired.
pub fn open_reply_token(signer: &crate::files::Signer, token: &str, now: i64) -> Option<String> {
    use subtle::ConstantTimeEq;
    let bytes = hex::decode(token.to_ascii_lowercase()).ok()?;
    if bytes.len() < 2 + REPLY_MAC_BYTES + 1 {
        return None;
    }
    let (data, tag) = bytes.split_at(bytes.len() - REPLY_MAC_BYTES);
    let mac = signer.mac_for(REPLY, data)?;
    if !bool::from(mac[..REPLY_MAC_BYTES].ct_eq(tag)) {
        return None;
    }
    let (raw, day) = data.split_at(data.len() - 2);
    let day = u16::from_be_bytes([day[0], day[1]]) as i64;
    if day * 86_400_000 < now {
        return None;
    }
    Some(format!("c_{}", hex::encode(raw)))
}
/// Largest mail accepted, bytes.
pub const MAX_MAIL_BYTES: usize = 10 * 1024 * 1024;
const MAX_RECIPIENTS: usize = 10;
const MAX_CONNECTIONS: usize = 64;
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// SMTP lines are at most 1000 bytes with CRLF (RFC 5321 4.5.3.1.6); a little slack.
const MAX_LINE: u64 = 2048;

/// The reply text of a mail body: what comes before the quoted history ("On ... wrote:",
/// "Am ... schrieb ...:", "-----Original Message-----", Outlook's separator) and the signature
/// ("-- "), without quoted lines ("> ...") or "Sent from my ..." footers.
pub fn reply_text(body: &str) -> String {
    let lines: Vec<&str> = body.lines().collect();
    let mut out: Vec<&str> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_end();
        let tt = t.trim_start();
        let next = lines.get(i + 1).map(|l| l.trim_end()).unwrap_or("");
        let attribution = (tt.starts_with("On ")
            && (tt.ends_with("wrote:") || next.ends_with("wrote:")))
            || (tt.starts_with("Am ") && (tt.contains("schrieb") || next.contains("schrieb")))
            || tt.starts_with("-----Original Message")
            || tt.starts_with("-----Ursprüngliche Nachricht")
            || tt.starts_with("________________________________")
            || (tt.starts_with("From: ") && !out.is_empty() && next.starts_with("Sent: "));
        if attribution || t == "--" || t == "-- " {
            break;
        }
        if tt.starts_with('>') {
            continue;
        }
        if tt.starts_with("Sent from my ") || tt.starts_with("Von meinem ") {
            continue;
        }
        out.push(t);
    }
    while out.last().is_some_and(|l| l.trim().is_empty()) {
        out.pop();
    }
    while out.first().is_some_and(|l| l.trim().is_empty()) {
        out.remove(0);
    }
    out.join("\n")
}

/// The local part of a reply address ("reply+TOKEN") for `domain`; the token.
fn reply_token<'a>(address: &'a str, domain: &str) -> Option<&'a str> {
    let address = address.trim().trim_start_matches('<').trim_end_matches('>');
    let (local, host) = address.rsplit_once('@')?;
    if !host.eq_ignore_ascii_case(domain) {
        return None;
    }
    local.strip_prefix("reply+")
}

/// The address of `MAIL FROM:<a> ...` / `RCPT TO:<a> ...`.
fn path_of(arg: &str) -> &str {
    let arg = arg.trim();
    match (arg.find('<'), arg.find('>')) {
        (Some(a), Some(b)) if b > a => &arg[a + 1..b],
        _ => arg.split_whitespace().next().unwrap_or(""),
    }
}

impl Core {
    /// A conversation's reply address (None when the listener is off).
    pub(super) fn reply_address(&self, conversation_id: &str) -> Option<String> {
        let cfg = self.config.email.as_ref()?;
        cfg.smtp_listen?;
        let token = reply_token_for(&self.hub.signer, conversation_id, now_ms())?;
        Some(format!("reply+{token}@{}", cfg.reply_domain()))
    }

    /// Serves SMTP on `listener` until shutdown.
    pub fn spawn_smtp_listener(self: &Arc<Self>, listener: TcpListener) {
        let core = self.clone();
        let mut stopping = self.stopping.subscribe();
        let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = stopping.wait_for(|s| *s) => return,
                };
                let Ok((stream, peer)) = accepted else {
                    continue;
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    let mut stream = stream;
                    let _ = stream
                        .write_all(b"421 4.3.2 too many connections, try again later\r\n")
                        .await;
                    continue;
                };
                let core = core.clone();
                tokio::spawn(async move {
                    if let Err(e) = core.smtp_session(stream, peer).await {
                        tracing::debug!(error = %e, %peer, "SMTP session ended");
                    }
                    drop(permit);
                });
            }
        });
    }

    async fn smtp_session(
        self: &Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> std::io::Result<()> {
        let domain = self
            .config
            .email
            .as_ref()
            .map(|e| e.reply_domain())
            .unwrap_or_default();
        let (r, mut w) = stream.into_split();
        let mut r = BufReader::new(r);
        w.write_all(format!("220 {domain} wsmschat ESMTP\r\n").as_bytes())
            .await?;
        let mut from: Option<String> = None;
        // Conversations the mail is for.
        let mut rcpts: Vec<String> = Vec::new();
        loop {
            let mut line = Vec::new();
            let n = tokio::time::timeout(
                COMMAND_TIMEOUT,
                (&mut r).take(MAX_LINE).read_until(b'\n', &mut line),
            )
            .await
            .map_err(|_| std::io::Error::other("command time-out"))??;
            if n == 0 {
                return Ok(());
            }
            let cmd = String::from_utf8_lossy(&line).trim_end().to_owned();
            let upper = cmd.to_ascii_uppercase();
            let reply: String = if upper.starts_with("EHLO") {
                format!(
                    "250-{domain}\r\n250-SIZE {MAX_MAIL_BYTES}\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
                )
            } else if upper.starts_with("HELO") {
                format!("250 {domain}\r\n")
            } else if upper.starts_with("MAIL FROM:") {
                let size = upper
                    .split_whitespace()
                    .find_map(|p| p.strip_prefix("SIZE="))
                    .and_then(|s| s.parse::<usize>().ok());
                if size.is_some_and(|s| s > MAX_MAIL_BYTES) {
                    "552 5.3.4 message too large\r\n".into()
                } else {
                    from = Some(path_of(&cmd[10..]).to_owned());
                    rcpts.clear();
                    "250 2.1.0 ok\r\n".into()
                }
            } else if upper.starts_with("RCPT TO:") {
                if from.is_none() {
                    "503 5.5.1 MAIL first\r\n".into()
                } else if rcpts.len() >= MAX_RECIPIENTS {
                    "452 4.5.3 too many recipients\r\n".into()
                } else {
                    let to = path_of(&cmd[8..]).to_owned();
                    match reply_token(&to, &domain)
                        .and_then(|t| open_reply_token(&self.hub.signer, t, now_ms()))
                    {
                        Some(conversation) => {
                            rcpts.push(conversation);
                            "250 2.1.5 ok\r\n".into()
                        }
                        None => "550 5.1.1 unknown or expired reply address\r\n".into(),
                    }
                }
            } else if upper == "DATA" {
                if rcpts.is_empty() {
                    "503 5.5.1 RCPT first\r\n".into()
                } else {
                    w.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                    let (data, too_big) = read_data(&mut r).await?;
                    let reply = if too_big {
                        "552 5.3.4 message too large\r\n".to_owned()
                    } else {
                        let mut reply = "250 2.0.0 ok\r\n".to_owned();
                        for conversation in &rcpts {
                            if let Err(r) = self.post_reply(conversation, &data).await {
                                tracing::info!(%peer, error = %r, "Reply by email refused");
                                reply = r;
                                break;
                            }
                        }
                        reply
                    };
                    from = None;
                    rcpts.clear();
                    reply
                }
            } else if upper == "RSET" {
                from = None;
                rcpts.clear();
                "250 2.0.0 ok\r\n".into()
            } else if upper == "NOOP" {
                "250 2.0.0 ok\r\n".into()
            } else if upper == "QUIT" {
                w.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            } else if upper.starts_with("VRFY") {
                "252 2.1.5 cannot verify\r\n".into()
            } else {
                "502 5.5.2 command not implemented\r\n".into()
            };
            w.write_all(reply.as_bytes()).await?;
        }
    }

    /// Posts a mail as the visitor's message; the SMTP reply line on failure.
    async fn post_reply(
        self: &Arc<Self>,
        conversation_id: &str,
        data: &[u8],
    ) -> Result<(), String> {
        let parsed = mail_parser::MessageParser::default()
            .parse(data)
            .ok_or("550 5.6.0 not a valid message\r\n")?;
        let gone = || "550 5.1.1 unknown or expired reply address\r\n".to_owned();
        let conversation = self
            .store
            .conversation(conversation_id)
            .await
            .map_err(|_| gone())?;
        let visitor = self
            .store
            .visitor_by_id(&conversation.visitor_id)
            .await
            .map_err(|_| gone())?;
        let principal = Principal::Visitor {
            visitor_id: visitor.id.clone(),
            site_id: visitor.site_id.clone(),
            name: visitor.name.clone(),
        };
        let mut text = reply_text(&parsed.body_text(0).unwrap_or_default());
        // Files attached to the mail, as the widget would upload them.
        let mut attachment_ids = Vec::new();
        let mut refused = Vec::new();
        for a in parsed.attachments() {
            let name = mail_parser::MimeHeaders::attachment_name(a)
                .unwrap_or("attachment")
                .to_owned();
            if attachment_ids.len() >= crate::files::MAX_FILES_PER_MESSAGE {
                refused.push(format!("{name}: too many files"));
                continue;
            }
            let bytes = a.contents();
            let upload = self
                .begin_upload(
                    &principal,
                    None,
                    UploadStart {
                        name: name.clone(),
                        conversation_id: conversation_id.to_owned(),
                        declared_size: Some(bytes.len() as u64),
                    },
                )
                .await;
            let stored = match upload {
                Ok(mut u) => match u.write(bytes).await {
                    Ok(()) => u.finish().await,
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            match stored {
                Ok(a) => attachment_ids.push(a.id),
                Err(e) => refused.push(format!("{name}: {}", e.error)),
            }
        }
        if !refused.is_empty() {
            text.push_str(&format!("\n\n[not attached: {}]", refused.join("; ")));
        }
        let text = truncate(text.trim(), self.config.max_message_bytes);
        if text.is_empty() && attachment_ids.is_empty() {
            return Err("550 5.6.0 no reply text found in the message\r\n".into());
        }
        let message_id = parsed
            .message_id()
            .map(str::to_owned)
            .unwrap_or_else(|| hex::encode(sha2::Sha256::digest(data)));
        let client_msg_id = format!(
            "email-{}",
            &hex::encode(sha2::Sha256::digest(message_id.as_bytes()))[..40]
        );
        let ev = v1::ClientEvent {
            request_id: String::new(),
            event: Some(Ce::SendMessage(v1::SendMessage {
                conversation_id: conversation_id.to_owned(),
                client_msg_id,
                text,
                attachment_ids,
                ..Default::default()
            })),
        };
        match self.publish(&principal, None, ev, None).await {
            Ok(_) => Ok(()),
            Err(CoreError::InvalidArgument(m)) | Err(CoreError::FailedPrecondition(m)) => {
                Err(format!("550 5.6.0 {}\r\n", m.replace(['\r', '\n'], " ")))
            }
            Err(CoreError::NotFound(_)) | Err(CoreError::PermissionDenied(_)) => {
                Err("550 5.1.1 unknown or expired reply address\r\n".into())
            }
            Err(e) => {
                tracing::warn!(error = %e, "Cannot post a reply by email");
                Err("451 4.3.0 try again later\r\n".into())
            }
        }
    }
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// Reads a DATA section (dot-unstuffed) up to the lone "."; (bytes, whether it was too large:
/// then the rest is read and dropped).
async fn read_data<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
) -> std::io::Result<(Vec<u8>, bool)> {
    let mut data = Vec::new();
    let mut too_big = false;
    loop {
        let mut line = Vec::new();
        let n = tokio::time::timeout(
            COMMAND_TIMEOUT,
            (&mut *r).take(MAX_LINE * 8).read_until(b'\n', &mut line),
        )
        .await
        .map_err(|_| std::io::Error::other("data time-out"))??;
        if n == 0 {
            return Err(std::io::Error::other("connection closed in DATA"));
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok((data, too_big));
        }
        let line = line.strip_prefix(b".").unwrap_or(&line);
        if data.len() + line.len() > MAX_MAIL_BYTES {
            too_big = true;
            data.clear();
        }
        if !too_big {
            data.extend_from_slice(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reply_without_history_and_signature() {
        let gmail = "Thanks, that helps!\r\nSee you.\r\n\r\nOn Tue, 1 Dec 2026 at 10:00, Ann (Shop) <support@shop.test>\r\nwrote:\r\n> Hello Vera,\r\n> your parcel left today.\r\n";
        assert_eq!(reply_text(gmail), "Thanks, that helps!\nSee you.");
        let german = "Danke!\n\nAm 01.12.2026 um 10:00 schrieb Ann:\n> Hallo\n";
        assert_eq!(reply_text(german), "Danke!");
        let sig = "Yes please.\n-- \nVera Example\nCEO\n";
        assert_eq!(reply_text(sig), "Yes please.");
        let outlook = "Ok\n\n-----Original Message-----\nFrom: Shop\n";
        assert_eq!(reply_text(outlook), "Ok");
        let phone = "\n\nWorks now\n\nSent from my iPhone\n";
        assert_eq!(reply_text(phone), "Works now");
        let inline = "> Did it arrive?\nYes, today.\n";
        assert_eq!(reply_text(inline), "Yes, today.");
    }

    #[test]
    fn reply_tokens_fit_an_address_and_cannot_be_forged() {
        let signer = crate::files::Signer::default();
        signer.set_key(b"test key");
        let conv = "c_79f282afdcf8295361e6db08";
        let now = 1_764_000_000_000;
        let t = reply_token_for(&signer, conv, now).unwrap();
        assert!(format!("reply+{t}").len() <= 64, "{t}");
        assert_eq!(open_reply_token(&signer, &t, now).as_deref(), Some(conv));
        assert_eq!(
            open_reply_token(&signer, &t.to_ascii_uppercase(), now).as_deref(),
            Some(conv),
            "case-insensitive"
        );
        let mut forged = t.clone().into_bytes();
        forged[3] = if forged[3] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            open_reply_token(&signer, std::str::from_utf8(&forged).unwrap(), now),
            None
        );
        assert_eq!(
            open_reply_token(&signer, &t, now + 31 * 86_400_000),
            None,
            "expired"
        );
    }

    #[test]
    fn reply_addresses() {
        assert_eq!(
            reply_token("<reply+abc.def@Shop.Test>", "shop.test"),
            Some("abc.def")
        );
        assert_eq!(reply_token("reply+abc@other.test", "shop.test"), None);
        assert_eq!(reply_token("support@shop.test", "shop.test"), None);
        assert_eq!(path_of(" <a@b.c> SIZE=100"), "a@b.c");
    }
}
