//! `wsmschat.v1.AdminService`: sites, agents, API keys, canned replies, reports.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use wsmschat::ids::API_KEY_PREFIX;
use wsmschat::v1;
use wsmschat::v1::admin_service_server::AdminService;

use super::caller;
use crate::auth;
use crate::core::{Core, DEFAULT_TOPICS, Revoked};
use crate::util::{new_id, new_token, now_ms, random_bytes};

/// The AdminService handlers.
pub struct AdminApi {
    pub core: Arc<Core>,
}

impl AdminApi {
    /// Every id names an existing site.
    async fn check_sites(&self, ids: &[String]) -> Result<(), Status> {
        for id in ids {
            if self.core.site(id).await.is_err() {
                return Err(Status::invalid_argument(format!("no site {id:?}")));
            }
        }
        Ok(())
    }

    async fn admin<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let who = caller(&self.core, req).await?;
        if who.principal.is_admin() {
            Ok(())
        } else {
            Err(Status::permission_denied(
                "administration needs an admin agent or an admin API key",
            ))
        }
    }
}

/// Checks and normalises a site; fills defaults.
pub fn normalize_site(mut s: v1::Site) -> Result<v1::Site, Status> {
    s.name = s.name.trim().to_owned();
    if s.name.is_empty() {
        return Err(Status::invalid_argument("site name is required"));
    }
    s.topics = s
        .topics
        .into_iter()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect();
    s.topics.dedup();
    if s.topics.is_empty() {
        s.topics = DEFAULT_TOPICS.iter().map(|t| t.to_string()).collect();
    }
    if s.topics.iter().any(|t| t.len() > 64 || t.contains('\n')) {
        return Err(Status::invalid_argument(
            "a topic is at most 64 bytes, one line",
        ));
    }
    s.allowed_origins = s
        .allowed_origins
        .into_iter()
        .map(|o| o.trim().trim_end_matches('/').to_owned())
        .filter(|o| !o.is_empty())
        .collect();
    for o in &s.allowed_origins {
        if o != "*" && !(o.starts_with("http://") || o.starts_with("https://")) {
            return Err(Status::invalid_argument(format!(
                "allowed origin {o:?} must look like https://shop.example.com (or http://localhost:*)"
            )));
        }
    }
    if s.color.is_empty() {
        s.color = "#0b5fff".into();
    }
    if !(s.color.starts_with('#')
        && s.color.len() <= 9
        && s.color[1..].bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(Status::invalid_argument(
            "color must be a hex colour like #0b5fff",
        ));
    }
    Ok(s)
}

/// Checks and normalises an agent; fills defaults.
pub fn normalize_agent(mut a: v1::Agent) -> Result<v1::Agent, Status> {
    a.email = a.email.trim().to_lowercase();
    a.name = super::session::display_name(&a.name);
    if !a.email.contains('@') {
        return Err(Status::invalid_argument("a valid email is required"));
    }
    if a.name.is_empty() {
        a.name = a.email.split('@').next().unwrap_or_default().to_owned();
    }
    if a.role == v1::AgentRole::Unspecified as i32 {
        a.role = v1::AgentRole::Agent as i32;
    }
    if a.capacity == 0 {
        a.capacity = 5;
    }
    a.topics = a
        .topics
        .into_iter()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect();
    a.site_ids = a
        .site_ids
        .into_iter()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect();
    a.site_ids.sort();
    a.site_ids.dedup();
    Ok(a)
}

/// Passwords: at least 8 characters.
pub fn check_password(p: &str) -> Result<(), Status> {
    if p.chars().count() < 8 {
        return Err(Status::invalid_argument(
            "the password needs at least 8 characters",
        ));
    }
    Ok(())
}

fn median(mut v: Vec<i64>) -> i64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    }
}

/// "YYYY-MM-DD" of a UTC day number (days since 1970-01-01).
fn day_string(days: i64) -> String {
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

const DAY_MS: i64 = 86_400_000;

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn create_site(
        &self,
        req: Request<v1::CreateSiteRequest>,
    ) -> Result<Response<v1::CreateSiteResponse>, Status> {
        self.admin(&req).await?;
        let mut site = normalize_site(req.into_inner().site.unwrap_or_default())?;
        site.id = new_id("site_");
        site.site_key = new_id("pk_");
        site.identity_secret = hex::encode(random_bytes::<32>());
        let site = self.core.store.create_site(site).await?;
        self.core.sites_changed().await?;
        Ok(Response::new(v1::CreateSiteResponse { site: Some(site) }))
    }

    async fn update_site(
        &self,
        req: Request<v1::UpdateSiteRequest>,
    ) -> Result<Response<v1::UpdateSiteResponse>, Status> {
        self.admin(&req).await?;
        let r = req.into_inner();
        let mut site = normalize_site(r.site.unwrap_or_default())?;
        let current = self.core.store.site_by_id(&site.id).await?;
        site.site_key = current.site_key;
        if r.rotate_identity_secret {
            site.identity_secret = hex::encode(random_bytes::<32>());
        } else if site.identity_secret.is_empty() {
            site.identity_secret = current.identity_secret;
        }
        let site = self.core.store.update_site(site).await?;
        self.core.sites_changed().await?;
        Ok(Response::new(v1::UpdateSiteResponse { site: Some(site) }))
    }

    async fn list_sites(
        &self,
        req: Request<v1::ListSitesRequest>,
    ) -> Result<Response<v1::ListSitesResponse>, Status> {
        self.admin(&req).await?;
        let sites = self.core.store.list_sites().await?;
        Ok(Response::new(v1::ListSitesResponse { sites }))
    }

    async fn create_agent(
        &self,
        req: Request<v1::CreateAgentRequest>,
    ) -> Result<Response<v1::CreateAgentResponse>, Status> {
        self.admin(&req).await?;
        let r = req.into_inner();
        let mut agent = normalize_agent(r.agent.unwrap_or_default())?;
        self.check_sites(&agent.site_ids).await?;
        check_password(&r.password)?;
        agent.id = new_id("ag_");
        agent.active = true;
        let hash = hash_blocking(&self.core, r.password).await?;
        let agent = self.core.store.create_agent(agent, hash).await?;
        Ok(Response::new(v1::CreateAgentResponse {
            agent: Some(agent),
        }))
    }

    async fn update_agent(
        &self,
        req: Request<v1::UpdateAgentRequest>,
    ) -> Result<Response<v1::UpdateAgentResponse>, Status> {
        self.admin(&req).await?;
        let r = req.into_inner();
        let mut agent = r.agent.unwrap_or_default();
        let current = self.core.store.agent_by_id(&agent.id).await?;
        agent.email = current.email;
        let agent = normalize_agent(agent)?;
        self.check_sites(&agent.site_ids).await?;
        let hash = if r.password.is_empty() {
            None
        } else {
            check_password(&r.password)?;
            Some(hash_blocking(&self.core, r.password).await?)
        };
        let agent = self.core.store.update_agent(agent, hash).await?;
        self.core.presence.refresh(&agent);
        // Role, active or password may have changed: cached sessions are read again and open
        // streams re-check their tokens, on every node.
        self.core.revoke(Revoked::Staff);
        Ok(Response::new(v1::UpdateAgentResponse {
            agent: Some(agent),
        }))
    }

    async fn list_agents(
        &self,
        req: Request<v1::ListAgentsRequest>,
    ) -> Result<Response<v1::ListAgentsResponse>, Status> {
        self.admin(&req).await?;
        let agents = self.core.store.list_agents().await?;
        Ok(Response::new(v1::ListAgentsResponse { agents }))
    }

    async fn create_api_key(
        &self,
        req: Request<v1::CreateApiKeyRequest>,
    ) -> Result<Response<v1::CreateApiKeyResponse>, Status> {
        self.admin(&req).await?;
        let r = req.into_inner();
        if r.name.trim().is_empty() {
            return Err(Status::invalid_argument("an API key needs a name"));
        }
        let scopes: Vec<i32> = r
            .scopes
            .into_iter()
            .filter(|s| *s != v1::ApiKeyScope::Unspecified as i32)
            .collect();
        if scopes.is_empty()
            || scopes
                .iter()
                .any(|s| v1::ApiKeyScope::try_from(*s).is_err())
        {
            return Err(Status::invalid_argument(
                "give at least one valid scope (CHAT, ADMIN)",
            ));
        }
        let secret = new_token(API_KEY_PREFIX);
        self.check_sites(&r.site_ids).await?;
        let key = v1::ApiKey {
            site_ids: r.site_ids.clone(),
            id: new_id("key_"),
            name: r.name.trim().to_owned(),
            scopes,
            created_at_ms: now_ms(),
            active: true,
        };
        let key = self
            .core
            .store
            .create_api_key(key, auth::token_hash(&secret))
            .await?;
        Ok(Response::new(v1::CreateApiKeyResponse {
            api_key: Some(key),
            secret,
        }))
    }

    async fn list_api_keys(
        &self,
        req: Request<v1::ListApiKeysRequest>,
    ) -> Result<Response<v1::ListApiKeysResponse>, Status> {
        self.admin(&req).await?;
        let api_keys = self.core.store.list_api_keys().await?;
        Ok(Response::new(v1::ListApiKeysResponse { api_keys }))
    }

    async fn revoke_api_key(
        &self,
        req: Request<v1::RevokeApiKeyRequest>,
    ) -> Result<Response<v1::RevokeApiKeyResponse>, Status> {
        self.admin(&req).await?;
        self.core.store.revoke_api_key(req.into_inner().id).await?;
        self.core.revoke(Revoked::Staff);
        Ok(Response::new(v1::RevokeApiKeyResponse {}))
    }

    async fn put_canned_reply(
        &self,
        req: Request<v1::PutCannedReplyRequest>,
    ) -> Result<Response<v1::PutCannedReplyResponse>, Status> {
        self.admin(&req).await?;
        let mut reply = req.into_inner().canned_reply.unwrap_or_default();
        reply.shortcut = reply.shortcut.trim().trim_start_matches('/').to_lowercase();
        if reply.shortcut.is_empty()
            || reply.shortcut.len() > 64
            || reply.shortcut.contains(char::is_whitespace)
        {
            return Err(Status::invalid_argument(
                "shortcut: 1 to 64 characters, no spaces",
            ));
        }
        if reply.text.trim().is_empty() || reply.text.len() > self.core.config.max_message_bytes {
            return Err(Status::invalid_argument(format!(
                "text: 1 to {} bytes",
                self.core.config.max_message_bytes
            )));
        }
        reply.id = new_id("cr_");
        let reply = self.core.store.put_canned_reply(reply).await?;
        Ok(Response::new(v1::PutCannedReplyResponse {
            canned_reply: Some(reply),
        }))
    }

    async fn delete_canned_reply(
        &self,
        req: Request<v1::DeleteCannedReplyRequest>,
    ) -> Result<Response<v1::DeleteCannedReplyResponse>, Status> {
        self.admin(&req).await?;
        self.core
            .store
            .delete_canned_reply(req.into_inner().id)
            .await?;
        Ok(Response::new(v1::DeleteCannedReplyResponse {}))
    }

    async fn get_site_report(
        &self,
        req: Request<v1::GetSiteReportRequest>,
    ) -> Result<Response<v1::GetSiteReportResponse>, Status> {
        self.admin(&req).await?;
        let r = req.into_inner();
        let days = if r.days == 0 { 30 } else { r.days.min(366) } as i64;
        let today = now_ms().div_euclid(DAY_MS);
        let first_day = today - days + 1;
        let rows = self
            .core
            .store
            .report_rows(r.site_id, first_day * DAY_MS)
            .await?
            .conversations;
        let mut per_day: Vec<v1::DayCount> = (first_day..=today)
            .map(|d| v1::DayCount {
                day: day_string(d),
                conversations: 0,
            })
            .collect();
        let mut first_response = Vec::new();
        let mut resolution = Vec::new();
        let (mut rating_sum, mut ratings, mut resolved) = (0u64, 0u32, 0u32);
        for row in &rows {
            let idx = (row.created_at.div_euclid(DAY_MS) - first_day) as usize;
            if let Some(d) = per_day.get_mut(idx) {
                d.conversations += 1;
            }
            if let (Some(m), Some(reply)) = (row.first_message_at, row.first_response_at) {
                first_response.push((reply - m).max(0));
            }
            if let Some(at) = row.resolved_at {
                resolved += 1;
                resolution.push(at - row.created_at);
            }
            if row.rating > 0 {
                ratings += 1;
                rating_sum += row.rating as u64;
            }
        }
        Ok(Response::new(v1::GetSiteReportResponse {
            per_day,
            conversations: rows.len() as u32,
            median_first_response_ms: median(first_response),
            median_resolution_ms: median(resolution),
            satisfaction_average: if ratings == 0 {
                0.0
            } else {
                rating_sum as f64 / ratings as f64
            },
            ratings,
            resolved,
        }))
    }
}

async fn hash_blocking(core: &Core, password: String) -> Result<String, Status> {
    Ok(core
        .with_hash_slot(move || auth::hash_password(&password))
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_medians() {
        assert_eq!(day_string(0), "1970-01-01");
        assert_eq!(day_string(20_454), "2026-01-01");
        assert_eq!(median(vec![5, 1, 3]), 3);
        assert_eq!(median(vec![4, 1, 3, 2]), 2);
        assert_eq!(median(vec![]), 0);
    }
}
