//! Sessions: a visitor's session start (site key, origin, identity verification, token reuse),
//! agent login (throttled, timing-safe) and logout, and the cleanup of idle anonymous visitors.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use wsmschat::ids::{AGENT_TOKEN_PREFIX, VISITOR_TOKEN_PREFIX};
use wsmschat::limits::MAX_FIELD_BYTES;
use wsmschat::v1;

use super::{Core, Revoked};
use crate::auth::{self, Principal};
use crate::error::{CoreError, CoreResult};
use crate::store::{ConversationFilter, StoreError, VisitorUpsert};
use crate::util::{new_id, new_token, now_ms};

/// A visitor session request as it reached the server.
pub struct SessionStart {
    /// What the widget or client sent.
    pub request: v1::StartVisitorSessionRequest,
    /// The browser's `Origin`, if any (native clients send none).
    pub origin: Option<String>,
    /// The `User-Agent` header, used when the request names none.
    pub header_user_agent: String,
    /// The client address (rate limits).
    pub ip: Option<IpAddr>,
}

/// A display name as shown to agents: one line, no control or bidi-override characters
/// (a name cannot fake line breaks or reverse the text around it), spaces collapsed, at most
/// the field limit.
pub fn display_name(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .filter(|c| !is_format_override(*c))
        .collect();
    field(cleaned.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Bidi embeddings, overrides and isolates, and zero-width marks that reorder or hide text.
fn is_format_override(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}' | '\u{061C}')
}

/// Truncates an optional profile field to the field limit (on a char boundary); NULs (which
/// PostgreSQL cannot store) are dropped.
fn field(s: String) -> String {
    let s = if s.contains('\0') {
        s.replace('\0', "")
    } else {
        s
    };
    if s.len() <= MAX_FIELD_BYTES {
        return s;
    }
    let mut end = MAX_FIELD_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// An argon2id hash of a random password, verified when the email is unknown.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| auth::hash_password(&new_token("")));

impl Core {
    /// Starts (or resumes) a visitor session on a site: the site key must exist, the browser
    /// must be on an allowed origin, a user id counts only with a valid HMAC, and a known
    /// visitor token is reused unless it belongs to another verified user.
    pub async fn start_visitor_session(
        &self,
        start: SessionStart,
    ) -> CoreResult<v1::StartVisitorSessionResponse> {
        let SessionStart {
            request: r,
            origin,
            header_user_agent,
            ip,
        } = start;
        self.charge_ip(ip)?;
        let site = self
            .store
            .site_by_key(&r.site_key)
            .await
            .map_err(|e| match e {
                StoreError::NotFound(_) => {
                    CoreError::NotFound(format!("unknown site key {:?}", r.site_key))
                }
                other => CoreError::from(other),
            })?;
        if let Some(origin) = &origin {
            if !auth::origin_allowed(&site.allowed_origins, origin) {
                return Err(CoreError::PermissionDenied(format!(
                    "origin {origin} is not allowed for this site; add it to the site's allowed origins"
                )));
            }
        }
        // A blocked address or email gets no session (and no visitor row). The email as it
        // will be stored (no NUL: PostgreSQL cannot take one, and both engines must agree).
        let r_email = field(r.email.clone());
        self.refuse_blocked(&site.id, &r_email, ip).await?;
        let verified = if r.user_id.is_empty() {
            None
        } else if auth::verify_identity(&site.identity_secret, &r.user_id, &r.user_hash) {
            Some(r.user_id.clone())
        } else if !r.user_hash.is_empty() || site.identity_required {
            return Err(CoreError::PermissionDenied(
                "user_hash does not match user_id (expected hex(HMAC-SHA256(identity secret, user_id)))".into(),
            ));
        } else {
            // An unverified user id proves nothing: the visitor stays anonymous.
            None
        };
        if site.identity_required && verified.is_none() {
            return Err(CoreError::PermissionDenied(
                "this site requires a verified identity (user_id + user_hash)".into(),
            ));
        }
        // A continuation link from an email: this device becomes that visitor.
        let continued = if r.continuation_token.is_empty() {
            None
        } else {
            Some(self.continuation(&r.continuation_token, &site.id).await?)
        };
        let old = if continued.is_some() {
            None
        } else if r.visitor_token.starts_with(VISITOR_TOKEN_PREFIX) {
            self.store
                .visitor_by_token(&auth::token_hash(&r.visitor_token))
                .await
                .ok()
                .filter(|v| v.site_id == site.id)
        } else {
            None
        };
        if old.as_ref().is_some_and(|v| v.blocked) {
            return Err(CoreError::chat_unavailable());
        }
        let reuse = old
            .as_ref()
            .is_some_and(|v| verified.is_none() || verified.as_deref() == Some(v.user_id.as_str()));
        let token = if reuse {
            r.visitor_token.clone()
        } else {
            self.charge_new_visitor(ip)?;
            new_token(VISITOR_TOKEN_PREFIX)
        };
        let page = super::context::page_view(&r.page_url, &r.page_title, &r.referrer);
        let visitor = self
            .store
            .upsert_visitor(VisitorUpsert {
                site_id: site.id.clone(),
                visitor_id: continued.as_ref().map(|(v, _)| v.clone()),
                token_hash: reuse.then(|| auth::token_hash(&r.visitor_token)),
                verified_user_id: verified.clone(),
                name: display_name(&r.name),
                email: r_email.clone(),
                page_url: field(r.page_url),
                user_agent: field(if r.user_agent.is_empty() {
                    header_user_agent
                } else {
                    r.user_agent
                }),
                locale: field(r.locale),
                last_ip: ip
                    .map(|ip| ip.to_canonical().to_string())
                    .unwrap_or_default(),
                new_visitor_id: new_id("v_"),
                page,
                new_token_hash: if reuse {
                    String::new()
                } else {
                    auth::token_hash(&token)
                },
            })
            .await?;
        // The visitor found by verified identity or email link may be blocked, or carry a
        // blocked email from before.
        if visitor.blocked {
            return Err(CoreError::chat_unavailable());
        }
        if !visitor.email.eq_ignore_ascii_case(r_email.trim()) {
            self.refuse_blocked(&site.id, &visitor.email, None).await?;
        }
        if reuse {
            // The cached principal may carry an old name.
            self.auth.forget(&token);
        }
        let (conversations, _) = self
            .store
            .list_conversations(ConversationFilter {
                visitor_id: Some(visitor.id.clone()),
                limit: 20,
                ..Default::default()
            })
            .await?;
        let agents_online = site
            .topics
            .iter()
            .map(|t| self.presence.online_for(t).len() as u32)
            .collect();
        let texts = super::sites::texts_for(&site, &visitor.locale);
        let (closed, opens_at_ms, closes_at_ms) = self.hours_now(&site.id);
        let typical_reply_s = self.typical_reply_s(&site.id).await;
        let max_file_bytes = crate::files::max_file_bytes(&site);
        let file_kinds = crate::files::file_kinds(&site) as i32;
        Ok(v1::StartVisitorSessionResponse {
            visitor_token: token,
            visitor_id: visitor.id,
            verified: verified.is_some(),
            site: Some(v1::SiteInfo {
                id: site.id,
                name: site.name,
                topics: site.topics,
                color: site.color,
                greeting: site.greeting,
                agents_online,
                max_file_bytes,
                file_kinds,
                max_files_per_message: crate::files::MAX_FILES_PER_MESSAGE as u32,
                email_enabled: self.email_enabled(),
                closed,
                opens_at_ms,
                closes_at_ms,
                typical_reply_s,
                texts,
            }),
            open_conversations: conversations
                .into_iter()
                .filter(|c| c.status != v1::ConversationStatus::Resolved as i32)
                .map(|c| super::context::visitor_copy(self.decorate(c)))
                .collect(),
            continued_conversation_id: continued.map(|(_, c)| c).unwrap_or_default(),
        })
    }

    /// Agent login: refused while the account or address is locked out; the password is
    /// verified even for an unknown email (timing reveals nothing), on the hash pool.
    pub async fn login(
        &self,
        email: &str,
        password: String,
        ip: Option<IpAddr>,
    ) -> CoreResult<v1::LoginResponse> {
        self.charge_ip(ip)?;
        let email = email.trim().to_owned();
        if email.len() > MAX_FIELD_BYTES || password.len() > 1024 {
            return Err(CoreError::InvalidArgument(
                "email or password too long".into(),
            ));
        }
        // Locked accounts and addresses are refused before any hashing.
        self.login_allowed(&email, ip)?;
        let record = self.store.agent_by_email(&email).await;
        let wrong = || CoreError::Unauthenticated("wrong email or password".into());
        let (agent, hash) = match record {
            Ok(rec) => (Some(rec.agent), rec.password_hash),
            Err(StoreError::NotFound(_)) => (None, String::new()),
            Err(e) => return Err(e.into()),
        };
        let ok = self
            .with_hash_slot(move || {
                if hash.is_empty() {
                    let _ = auth::verify_password(&password, &DUMMY_HASH);
                    false
                } else {
                    auth::verify_password(&password, &hash)
                }
            })
            .await?;
        let agent = match agent {
            Some(a) if ok && a.active => {
                self.login_result(&email, ip, true);
                a
            }
            _ => {
                self.login_result(&email, ip, false);
                return Err(wrong());
            }
        };
        let token = new_token(AGENT_TOKEN_PREFIX);
        let expires_at_ms = now_ms() + self.config.agent_session_ttl.as_millis() as i64;
        self.store
            .create_agent_session(auth::token_hash(&token), agent.id.clone(), expires_at_ms)
            .await?;
        tracing::info!(agent = %agent.id, "Agent logged in");
        Ok(v1::LoginResponse {
            token,
            expires_at_ms,
            agent: Some(agent),
        })
    }

    /// Ends an agent session or a visitor token; its open streams end, here and on every
    /// node. API keys do not log out (they are revoked).
    pub async fn logout(&self, token: &str) -> CoreResult<()> {
        let principal = self.authenticate(token).await?;
        let hash = auth::token_hash(token);
        let revoked = match &principal {
            Principal::Visitor { visitor_id, .. } => Revoked::Visitor(visitor_id.clone()),
            _ => Revoked::Staff,
        };
        match principal {
            Principal::Agent { .. } => self.store.delete_agent_session(hash).await,
            Principal::Visitor { .. } => self.store.delete_visitor_token(hash).await,
            Principal::Service { .. } => {
                return Err(CoreError::FailedPrecondition(
                    "API keys do not log out; revoke them with AdminService.RevokeApiKey".into(),
                ));
            }
        }?;
        self.auth.forget(token);
        self.revoke(revoked);
        Ok(())
    }

    /// Deletes idle anonymous visitors in batches, once an hour, until shutdown.
    pub fn spawn_visitor_cleanup(self: &Arc<Self>) {
        let Some(retention) = self.config.idle_visitor_retention else {
            return;
        };
        self.spawn_periodic(Duration::from_secs(3600), move |core| async move {
            if let Err(error) = core.purge_idle_visitors(retention).await {
                tracing::warn!(%error, "Could not delete idle visitors");
            }
        });
    }

    /// One cleanup pass: every idle anonymous visitor older than `retention`, 1,000 a batch.
    pub async fn purge_idle_visitors(&self, retention: Duration) -> CoreResult<u64> {
        let before = now_ms() - retention.as_millis() as i64;
        let mut total = 0;
        loop {
            let n = self.store.purge_idle_visitors(before, 1000).await?;
            total += n;
            if n < 1000 {
                break;
            }
        }
        if total > 0 {
            // Their tokens stop working at once here (other nodes within the cache TTL; the
            // visitors were idle for `retention` anyway).
            self.auth.clear();
            tracing::info!(visitors = total, "Deleted idle anonymous visitors");
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::display_name;

    #[test]
    fn display_names_are_one_plain_line() {
        assert_eq!(
            display_name("Support Team (official)\n\u{202e}evil"),
            "Support Team (official) evil"
        );
        assert_eq!(display_name("  Ana\t\u{2066}B\u{2069}  "), "Ana B");
        assert_eq!(display_name("Zoë 李"), "Zoë 李");
        assert_eq!(display_name("a\0b"), "a b");
    }
}
