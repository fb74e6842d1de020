//! Every permission rule in one place: who a token is, which sites, topics and conversations a
//! caller may see, what needs staff, an agent or an admin, and the origins a visitor's browser
//! may call from. Use cases call these before they touch state.

use std::net::IpAddr;

use wsmschat::v1;

use super::Core;
use crate::auth::{self, Principal};
use crate::error::{CoreError, CoreResult};
use crate::store::SiteScope;

/// Proof that the caller may administer (an admin agent or admin key, or the operator at the
/// shell): the admin use cases take one, so none runs unchecked.
#[derive(Debug, Clone, Copy)]
pub struct AdminGrant(());

impl AdminGrant {
    /// The operator on the server's machine (the CLI, the demo seeding): they own the
    /// database already.
    pub fn operator() -> Self {
        AdminGrant(())
    }
}

impl Core {
    /// Resolves a bearer token.
    pub async fn authenticate(&self, token: &str) -> CoreResult<Principal> {
        self.auth.resolve(self.store.as_ref(), token).await
    }

    /// Resolves a bearer token, with when it expires (ms; `i64::MAX`: never).
    pub(super) async fn authenticate_full(&self, token: &str) -> CoreResult<(Principal, i64)> {
        self.auth.resolve_full(self.store.as_ref(), token).await
    }

    /// Who a bearer token is, for a client at `ip` on a browser `origin`. A token not in the
    /// cache costs a store read, so it is charged to the address first (a flood of made-up
    /// tokens is refused before it reaches the store); a visitor's browser must be on one of
    /// its site's origins.
    pub async fn identify(
        &self,
        token: &str,
        ip: Option<IpAddr>,
        origin: Option<&str>,
    ) -> CoreResult<Principal> {
        if !self.auth.is_cached(token) {
            self.charge_ip(ip)?;
        }
        let principal = self.authenticate(token).await?;
        self.check_origin(&principal, origin).await?;
        Ok(principal)
    }

    /// Checks that `principal` may administer.
    pub fn require_admin(principal: &Principal) -> CoreResult<AdminGrant> {
        if principal.is_admin() {
            Ok(AdminGrant(()))
        } else {
            Err(CoreError::PermissionDenied(
                "administration needs an admin agent or an admin API key".into(),
            ))
        }
    }

    /// A visitor's browser must be on one of its site's allowed origins. Calls without an
    /// `Origin` header come from native clients, which CORS does not concern.
    pub async fn check_origin(
        &self,
        principal: &Principal,
        origin: Option<&str>,
    ) -> CoreResult<()> {
        let (Principal::Visitor { site_id, .. }, Some(origin)) = (principal, origin) else {
            return Ok(());
        };
        let site = self.site(site_id).await?;
        if auth::origin_allowed(&site.allowed_origins, origin) {
            Ok(())
        } else {
            Err(CoreError::PermissionDenied(format!(
                "origin {origin} is not allowed for this site"
            )))
        }
    }

    /// May a staff member see conversations of `site_id` under `topic`? Admins see all; agents
    /// their sites (all when they list none), and on a site that restricts agents to their
    /// topics only those (agents without topics: all); chat keys their sites.
    pub(super) fn may_see(&self, principal: &Principal, site_id: &str, topic: &str) -> bool {
        if !self.may_see_site(principal, site_id) {
            return false;
        }
        let Principal::Agent { agent } = principal else {
            return true;
        };
        if principal.is_admin() || agent.topics.is_empty() {
            return true;
        }
        let restricted = self
            .sites
            .read()
            .unwrap()
            .0
            .get(site_id)
            .is_some_and(|s| s.restrict_agents_to_topics);
        !restricted || agent.topics.iter().any(|t| t.eq_ignore_ascii_case(topic))
    }

    /// May a staff member see a site's visitors at all?
    pub(super) fn may_see_site(&self, principal: &Principal, site_id: &str) -> bool {
        match principal {
            Principal::Agent { agent } if !principal.is_admin() => {
                agent.site_ids.is_empty() || agent.site_ids.iter().any(|s| s == site_id)
            }
            Principal::Service { site_ids, .. } => {
                site_ids.is_empty() || site_ids.iter().any(|s| s == site_id)
            }
            _ => true,
        }
    }

    /// May a staff member see another agent (presence lists)? Staff limited to sites see the
    /// agents serving one of their sites or every site.
    pub(super) fn may_see_agent(&self, principal: &Principal, other: &v1::Agent) -> bool {
        let mine: &[String] = match principal {
            Principal::Agent { agent } if !principal.is_admin() => &agent.site_ids,
            Principal::Service { site_ids, .. } => site_ids,
            _ => return true,
        };
        mine.is_empty()
            || other.site_ids.is_empty()
            || other.site_ids.iter().any(|s| mine.contains(s))
    }

    /// Where a staff member may look, for list queries; None: everywhere.
    pub(super) fn staff_scope(&self, principal: &Principal) -> Option<Vec<SiteScope>> {
        match principal {
            Principal::Agent { agent } if !principal.is_admin() => {
                let sites = self.sites.read().unwrap();
                let restricts =
                    |s: &v1::Site| s.restrict_agents_to_topics && !agent.topics.is_empty();
                let mine: Vec<&v1::Site> = sites
                    .0
                    .values()
                    .filter(|s| agent.site_ids.is_empty() || agent.site_ids.contains(&s.id))
                    .collect();
                if agent.site_ids.is_empty() && !mine.iter().any(|s| restricts(s)) {
                    return None;
                }
                Some(
                    mine.into_iter()
                        .map(|s| SiteScope {
                            site_id: s.id.clone(),
                            topics: restricts(s).then(|| agent.topics.clone()),
                        })
                        .collect(),
                )
            }
            Principal::Service { site_ids, .. } if !site_ids.is_empty() => Some(
                site_ids
                    .iter()
                    .map(|id| SiteScope {
                        site_id: id.clone(),
                        topics: None,
                    })
                    .collect(),
            ),
            _ => None,
        }
    }

    /// The conversation, if the caller may see it (NOT_FOUND otherwise: ids leak nothing).
    pub async fn visible_conversation(
        &self,
        principal: &Principal,
        id: &str,
    ) -> CoreResult<v1::Conversation> {
        let c = self.store.conversation(id).await?;
        match principal {
            Principal::Visitor { visitor_id, .. } if *visitor_id != c.visitor_id => {
                Err(CoreError::NotFound("conversation not found".into()))
            }
            p if !p.is_staff() && !matches!(p, Principal::Visitor { .. }) => Err(
                CoreError::PermissionDenied("this API key has no chat scope".into()),
            ),
            p if !self.may_see(p, &c.site_id, &c.topic) => {
                Err(CoreError::NotFound("conversation not found".into()))
            }
            Principal::Visitor { .. } => Ok(super::context::visitor_copy(self.decorate(c))),
            _ => Ok(self.decorate(c)),
        }
    }

    /// A conversation a staff member acts on (assign, resolve, reopen): staff only, and one
    /// they may see.
    pub(super) async fn staff_conversation(
        &self,
        principal: &Principal,
        id: &str,
    ) -> CoreResult<v1::Conversation> {
        Self::require_staff(principal)?;
        self.visible_conversation(principal, id).await
    }

    pub(super) fn require_staff(principal: &Principal) -> CoreResult<()> {
        if principal.is_staff() {
            Ok(())
        } else {
            Err(CoreError::PermissionDenied(
                "only agents and chat API keys may do this".into(),
            ))
        }
    }

    pub(super) fn require_agent(principal: &Principal) -> CoreResult<&v1::Agent> {
        match principal {
            Principal::Agent { agent } => Ok(agent),
            _ => Err(CoreError::PermissionDenied(
                "only agents may do this".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::auth::{CACHE_TTL, token_hash};
    use crate::core::testkit::TestCore;
    use crate::error::CoreError;

    #[tokio::test(start_paused = true)]
    async fn a_token_deleted_behind_the_cache_stops_working_within_the_cache_ttl() {
        let t = TestCore::sqlite().await;
        let (_, token) = t.visitor().await;
        t.core.authenticate(&token).await.unwrap();
        // Another node logs the visitor out: this node's cache does not hear of it.
        t.core
            .store
            .delete_visitor_token(token_hash(&token))
            .await
            .unwrap();
        tokio::time::advance(CACHE_TTL - Duration::from_millis(1)).await;
        assert!(t.core.auth.is_cached(&token));
        assert!(
            t.core.authenticate(&token).await.is_ok(),
            "trusted while cached"
        );
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(!t.core.auth.is_cached(&token));
        assert!(matches!(
            t.core.authenticate(&token).await,
            Err(CoreError::Unauthenticated(_))
        ));
        t.finish().await;
    }
}
