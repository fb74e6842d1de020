//! `wsmschat.v1.SessionService`: visitor sessions, agent login and logout.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use wsmschat::ids::{AGENT_TOKEN_PREFIX, VISITOR_TOKEN_PREFIX};
use wsmschat::limits::MAX_FIELD_BYTES;
use wsmschat::v1;
use wsmschat::v1::session_service_server::SessionService;

use super::{bearer, origin, peer_ip};
use crate::auth::{self, Principal};
use crate::core::{Core, Revoked};
use crate::error::CoreError;
use crate::store::{ConversationFilter, StoreError, VisitorUpsert};
use crate::util::{new_id, new_token, now_ms};

/// The SessionService handlers.
pub struct SessionApi {
    pub core: Arc<Core>,
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

#[tonic::async_trait]
impl SessionService for SessionApi {
    async fn start_visitor_session(
        &self,
        req: Request<v1::StartVisitorSessionRequest>,
    ) -> Result<Response<v1::StartVisitorSessionResponse>, Status> {
        let core = &self.core;
        let ip = peer_ip(&req);
        core.charge_ip(ip)?;
        let origin = origin(&req);
        let header_ua = req
            .metadata()
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let r = req.into_inner();
        let site = core
            .store
            .site_by_key(&r.site_key)
            .await
            .map_err(|e| match e {
                StoreError::NotFound(_) => {
                    Status::not_found(format!("unknown site key {:?}", r.site_key))
                }
                other => CoreError::from(other).into(),
            })?;
        if let Some(origin) = &origin {
            if !auth::origin_allowed(&site.allowed_origins, origin) {
                return Err(Status::permission_denied(format!(
                    "origin {origin} is not allowed for this site; add it to the site's allowed origins"
                )));
            }
        }
        let verified = if r.user_id.is_empty() {
            None
        } else if auth::verify_identity(&site.identity_secret, &r.user_id, &r.user_hash) {
            Some(r.user_id.clone())
        } else if !r.user_hash.is_empty() || site.identity_required {
            return Err(Status::permission_denied(
                "user_hash does not match user_id (expected hex(HMAC-SHA256(identity secret, user_id)))",
            ));
        } else {
            // An unverified user id proves nothing: the visitor stays anonymous.
            None
        };
        if site.identity_required && verified.is_none() {
            return Err(Status::permission_denied(
                "this site requires a verified identity (user_id + user_hash)",
            ));
        }
        let old = if r.visitor_token.starts_with(VISITOR_TOKEN_PREFIX) {
            core.store
                .visitor_by_token(&auth::token_hash(&r.visitor_token))
                .await
                .ok()
                .filter(|v| v.site_id == site.id)
        } else {
            None
        };
        let reuse = old
            .as_ref()
            .is_some_and(|v| verified.is_none() || verified.as_deref() == Some(v.user_id.as_str()));
        let token = if reuse {
            r.visitor_token.clone()
        } else {
            core.charge_new_visitor(ip)?;
            new_token(VISITOR_TOKEN_PREFIX)
        };
        let visitor = core
            .store
            .upsert_visitor(VisitorUpsert {
                site_id: site.id.clone(),
                token_hash: reuse.then(|| auth::token_hash(&r.visitor_token)),
                verified_user_id: verified.clone(),
                name: display_name(&r.name),
                email: field(r.email),
                page_url: field(r.page_url),
                user_agent: field(if r.user_agent.is_empty() {
                    header_ua
                } else {
                    r.user_agent
                }),
                locale: field(r.locale),
                new_visitor_id: new_id("v_"),
                new_token_hash: if reuse {
                    String::new()
                } else {
                    auth::token_hash(&token)
                },
            })
            .await?;
        if reuse {
            // The cached principal may carry an old name.
            core.auth.forget(&token);
        }
        let (conversations, _) = core
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
            .map(|t| core.presence.online_for(t).len() as u32)
            .collect();
        Ok(Response::new(v1::StartVisitorSessionResponse {
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
            }),
            open_conversations: conversations
                .into_iter()
                .filter(|c| c.status != v1::ConversationStatus::Resolved as i32)
                .map(|c| core.decorate(c))
                .collect(),
        }))
    }

    async fn login(
        &self,
        req: Request<v1::LoginRequest>,
    ) -> Result<Response<v1::LoginResponse>, Status> {
        let core = &self.core;
        let ip = peer_ip(&req);
        core.charge_ip(ip)?;
        let r = req.into_inner();
        let email = r.email.trim().to_owned();
        if email.len() > MAX_FIELD_BYTES || r.password.len() > 1024 {
            return Err(Status::invalid_argument("email or password too long"));
        }
        // Locked accounts and addresses are refused before any hashing.
        core.login_allowed(&email, ip)?;
        let record = core.store.agent_by_email(&email).await;
        let wrong = || Status::unauthenticated("wrong email or password");
        let (agent, hash) = match record {
            Ok(rec) => (Some(rec.agent), rec.password_hash),
            Err(StoreError::NotFound(_)) => (None, String::new()),
            Err(e) => return Err(CoreError::from(e).into()),
        };
        // Verify even for an unknown email, so timing does not reveal which emails exist.
        let password = r.password;
        let ok = core
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
                core.login_result(&email, ip, true);
                a
            }
            _ => {
                core.login_result(&email, ip, false);
                return Err(wrong());
            }
        };
        let token = new_token(AGENT_TOKEN_PREFIX);
        let expires_at_ms = now_ms() + core.config.agent_session_ttl.as_millis() as i64;
        core.store
            .create_agent_session(auth::token_hash(&token), agent.id.clone(), expires_at_ms)
            .await?;
        tracing::info!(agent = %agent.id, "Agent logged in");
        Ok(Response::new(v1::LoginResponse {
            token,
            expires_at_ms,
            agent: Some(agent),
        }))
    }

    async fn logout(
        &self,
        req: Request<v1::LogoutRequest>,
    ) -> Result<Response<v1::LogoutResponse>, Status> {
        let core = &self.core;
        let token = bearer(&req)?;
        let principal = core.authenticate(&token).await?;
        let hash = auth::token_hash(&token);
        let revoked = match &principal {
            Principal::Visitor { visitor_id, .. } => Revoked::Visitor(visitor_id.clone()),
            _ => Revoked::Staff,
        };
        match principal {
            Principal::Agent { .. } => core.store.delete_agent_session(hash).await,
            Principal::Visitor { .. } => core.store.delete_visitor_token(hash).await,
            Principal::Service { .. } => {
                return Err(Status::failed_precondition(
                    "API keys do not log out; revoke them with AdminService.RevokeApiKey",
                ));
            }
        }?;
        core.auth.forget(&token);
        // Open streams of this token end (here and on every node).
        core.revoke(revoked);
        Ok(Response::new(v1::LogoutResponse {}))
    }
}

/// An argon2id hash of a random password, verified when the email is unknown.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| auth::hash_password(&new_token("")));

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
