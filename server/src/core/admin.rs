//! Administration use cases: sites, agents, API keys and canned replies, each checked and
//! normalised here once, whoever asks (AdminService, the CLI, the demo seeding). Every one
//! takes an [`AdminGrant`]: proof the caller may administer.

use wsmschat::ids::API_KEY_PREFIX;
use wsmschat::v1;

use super::access::AdminGrant;
use super::session::display_name;
use super::{Core, DEFAULT_TOPICS, Revoked};
use crate::auth;
use crate::error::{CoreError, CoreResult};
use crate::util::{new_id, new_token, now_ms, random_bytes};

/// Id prefixes of the records created here.
const SITE_ID_PREFIX: &str = "site_";
const SITE_KEY_PREFIX: &str = "pk_";
const AGENT_ID_PREFIX: &str = "ag_";
const API_KEY_ID_PREFIX: &str = "key_";
const CANNED_ID_PREFIX: &str = "cr_";

fn invalid(msg: impl Into<String>) -> CoreError {
    CoreError::InvalidArgument(msg.into())
}

/// Checks and normalises a site; fills defaults.
fn normalize_site(mut s: v1::Site) -> CoreResult<v1::Site> {
    s.name = s.name.trim().to_owned();
    if s.name.is_empty() {
        return Err(invalid("site name is required"));
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
        return Err(invalid("a topic is at most 64 bytes, one line"));
    }
    if s.max_file_bytes > crate::files::MAX_FILE_BYTES_CAP {
        return Err(invalid(format!(
            "the largest file may be at most {} bytes (1 GB)",
            crate::files::MAX_FILE_BYTES_CAP
        )));
    }
    if v1::FileKinds::try_from(s.file_kinds).is_err() {
        return Err(invalid("file_kinds is not a known FileKinds value"));
    }
    if s.file_retention_days > 36_500 {
        return Err(invalid("file_retention_days is at most 36500 (0: keep)"));
    }
    if s.email_delay_minutes > 10_080 {
        return Err(invalid(
            "email_delay_minutes is at most 10080 (a week; 0: 3)",
        ));
    }
    if s.auto_resolve_hours > 8_760 {
        return Err(invalid(
            "auto_resolve_hours is at most 8760 (a year; 0: off)",
        ));
    }
    super::hours::normalize(&mut s)?;
    super::sites::normalize_texts(&mut s)?;
    super::context::normalize_definitions(&mut s)?;
    if s.new_conversations_per_ip_hour > 100_000 {
        return Err(invalid(
            "new_conversations_per_ip_hour is at most 100000 (0: the server's default)",
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
            return Err(invalid(format!(
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
        return Err(invalid("color must be a hex colour like #0b5fff"));
    }
    Ok(s)
}

/// Checks and normalises an agent; fills defaults.
fn normalize_agent(mut a: v1::Agent) -> CoreResult<v1::Agent> {
    a.email = a.email.trim().to_lowercase();
    a.name = display_name(&a.name);
    if !a.email.contains('@') {
        return Err(invalid("a valid email is required"));
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
fn check_password(p: &str) -> CoreResult<()> {
    if p.chars().count() < 8 {
        return Err(invalid("the password needs at least 8 characters"));
    }
    Ok(())
}

impl Core {
    /// Every id names an existing site.
    async fn check_sites(&self, ids: &[String]) -> CoreResult<()> {
        for id in ids {
            if self.site(id).await.is_err() {
                return Err(invalid(format!("no site {id:?}")));
            }
        }
        Ok(())
    }

    /// Hashes a password on the hash pool.
    async fn hash(&self, password: String) -> CoreResult<String> {
        self.with_hash_slot(move || auth::hash_password(&password))
            .await
    }

    /// Creates a site with a new id and identity secret; `site_key` is the public key the
    /// script tag names (None: a random one; the demo seeds a fixed one).
    pub async fn create_site(
        &self,
        _: AdminGrant,
        site: v1::Site,
        site_key: Option<String>,
    ) -> CoreResult<v1::Site> {
        let mut site = normalize_site(site)?;
        site.id = new_id(SITE_ID_PREFIX);
        site.site_key = site_key.unwrap_or_else(|| new_id(SITE_KEY_PREFIX));
        site.identity_secret = hex::encode(random_bytes::<32>());
        let site = self.store.create_site(site).await?;
        self.sites_changed().await?;
        Ok(site)
    }

    /// Updates a site (its key stays); the identity secret is kept unless rotated.
    pub async fn update_site(
        &self,
        _: AdminGrant,
        site: v1::Site,
        rotate_identity_secret: bool,
    ) -> CoreResult<v1::Site> {
        let mut site = normalize_site(site)?;
        let current = self.store.site_by_id(&site.id).await?;
        site.site_key = current.site_key;
        if rotate_identity_secret {
            site.identity_secret = hex::encode(random_bytes::<32>());
        } else if site.identity_secret.is_empty() {
            site.identity_secret = current.identity_secret;
        }
        let site = self.store.update_site(site).await?;
        self.sites_changed().await?;
        Ok(site)
    }

    /// Benchmarks (`wsmschat seed-history`): writes the synthetic history `spec` describes into
    /// the first site (creating one if there is none), `per_transaction` conversations per
    /// transaction, the first agent as the one who answered; `progress` hears the count
    /// written so far. Returns the site's id.
    pub async fn seed_history(
        &self,
        _: AdminGrant,
        spec: crate::store::seed::HistorySpec,
        per_transaction: u64,
        progress: impl Fn(u64),
    ) -> CoreResult<String> {
        use crate::store::seed::generate;
        let site = match self.store.list_sites().await?.into_iter().next() {
            Some(site) => site,
            None => {
                self.create_site(
                    AdminGrant::operator(),
                    v1::Site {
                        name: "History".into(),
                        ..Default::default()
                    },
                    None,
                )
                .await?
            }
        };
        let (agent_id, agent_name) = match self.store.list_agents().await?.into_iter().next() {
            Some(a) => (a.id, a.name),
            None => ("a_seed".to_owned(), "Support".to_owned()),
        };
        let mut i = 0;
        while i < spec.conversations {
            let end = (i + per_transaction.max(1)).min(spec.conversations);
            let batch = (i..end)
                .map(|k| generate(&spec, k, &agent_id, &agent_name))
                .collect();
            self.store.seed_history(site.id.clone(), batch).await?;
            i = end;
            progress(i);
        }
        self.store.analyze_seeded().await?;
        Ok(site.id)
    }

    /// Every site.
    pub async fn list_sites(&self, _: AdminGrant) -> CoreResult<Vec<v1::Site>> {
        Ok(self.store.list_sites().await?)
    }

    /// Creates an active agent with a password.
    pub async fn create_agent(
        &self,
        _: AdminGrant,
        agent: v1::Agent,
        password: String,
    ) -> CoreResult<v1::Agent> {
        let mut agent = normalize_agent(agent)?;
        self.check_sites(&agent.site_ids).await?;
        check_password(&password)?;
        agent.id = new_id(AGENT_ID_PREFIX);
        agent.active = true;
        let hash = self.hash(password).await?;
        Ok(self.store.create_agent(agent, hash).await?)
    }

    /// Updates an agent (the email stays); a non-empty password replaces the old one. The
    /// agent's cached sessions are read again and open staff streams re-check their tokens.
    pub async fn update_agent(
        &self,
        _: AdminGrant,
        mut agent: v1::Agent,
        password: String,
    ) -> CoreResult<v1::Agent> {
        let current = self.store.agent_by_id(&agent.id).await?;
        agent.email = current.email;
        // The agent's own choice (SetEmailAlerts): an admin's edit keeps it.
        agent.email_alerts_off = current.email_alerts_off;
        let agent = normalize_agent(agent)?;
        self.check_sites(&agent.site_ids).await?;
        let hash = if password.is_empty() {
            None
        } else {
            check_password(&password)?;
            Some(self.hash(password).await?)
        };
        let agent = self.store.update_agent(agent, hash).await?;
        self.presence.refresh(&agent);
        // More capacity or other topics may serve waiting conversations (blocked queues wait
        // for such a change, see workflow).
        let topics = if agent.topics.is_empty() {
            self.all_topics().await
        } else {
            agent.topics.clone()
        };
        self.drain(topics);
        // Role, active or password may have changed: cached sessions are read again and open
        // streams re-check their tokens, on every node.
        self.revoke(Revoked::Staff);
        Ok(agent)
    }

    /// Every agent.
    pub async fn list_agents(&self, _: AdminGrant) -> CoreResult<Vec<v1::Agent>> {
        Ok(self.store.list_agents().await?)
    }

    /// Creates an API key; returns it with its secret (shown once, stored as a hash).
    pub async fn create_api_key(
        &self,
        _: AdminGrant,
        name: &str,
        scopes: Vec<i32>,
        site_ids: Vec<String>,
    ) -> CoreResult<(v1::ApiKey, String)> {
        if name.trim().is_empty() {
            return Err(invalid("an API key needs a name"));
        }
        let scopes: Vec<i32> = scopes
            .into_iter()
            .filter(|s| *s != v1::ApiKeyScope::Unspecified as i32)
            .collect();
        if scopes.is_empty()
            || scopes
                .iter()
                .any(|s| v1::ApiKeyScope::try_from(*s).is_err())
        {
            return Err(invalid("give at least one valid scope (CHAT, ADMIN)"));
        }
        self.check_sites(&site_ids).await?;
        let secret = new_token(API_KEY_PREFIX);
        let key = v1::ApiKey {
            site_ids,
            id: new_id(API_KEY_ID_PREFIX),
            name: name.trim().to_owned(),
            scopes,
            created_at_ms: now_ms(),
            active: true,
        };
        let key = self
            .store
            .create_api_key(key, auth::token_hash(&secret))
            .await?;
        Ok((key, secret))
    }

    /// Every API key (never their secrets).
    pub async fn list_api_keys(&self, _: AdminGrant) -> CoreResult<Vec<v1::ApiKey>> {
        Ok(self.store.list_api_keys().await?)
    }

    /// Revokes an API key; its open streams end on every node.
    pub async fn revoke_api_key(&self, _: AdminGrant, id: String) -> CoreResult<()> {
        self.store.revoke_api_key(id).await?;
        self.revoke(Revoked::Staff);
        Ok(())
    }

    /// Creates or replaces (by shortcut and site) a canned reply.
    pub async fn put_canned_reply(
        &self,
        _: AdminGrant,
        mut reply: v1::CannedReply,
    ) -> CoreResult<v1::CannedReply> {
        reply.shortcut = reply.shortcut.trim().trim_start_matches('/').to_lowercase();
        if reply.shortcut.is_empty()
            || reply.shortcut.len() > 64
            || reply.shortcut.contains(char::is_whitespace)
        {
            return Err(invalid("shortcut: 1 to 64 characters, no spaces"));
        }
        if reply.text.trim().is_empty() || reply.text.len() > self.config.max_message_bytes {
            return Err(invalid(format!(
                "text: 1 to {} bytes",
                self.config.max_message_bytes
            )));
        }
        reply.id = new_id(CANNED_ID_PREFIX);
        Ok(self.store.put_canned_reply(reply).await?)
    }

    /// Deletes a canned reply.
    pub async fn delete_canned_reply(&self, _: AdminGrant, id: String) -> CoreResult<()> {
        Ok(self.store.delete_canned_reply(id).await?)
    }
}
