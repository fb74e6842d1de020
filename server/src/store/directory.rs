//! The directory: sites, agents and their sessions, API keys, canned replies.

use async_trait::async_trait;
use wsmschat::v1;

use super::rows::*;
use super::sql::*;
use super::sql_store::{Engine, SqlStore};
use super::*;
use crate::args;
use crate::util::now_ms;

/// Sites: their settings, keys and widget texts.
#[async_trait]
pub trait SiteStore: Send + Sync {
    async fn create_site(&self, site: v1::Site) -> StoreResult<v1::Site>;
    async fn update_site(&self, site: v1::Site) -> StoreResult<v1::Site>;
    async fn list_sites(&self) -> StoreResult<Vec<v1::Site>>;
    async fn site_by_key(&self, site_key: &str) -> StoreResult<v1::Site>;
    async fn site_by_id(&self, id: &str) -> StoreResult<v1::Site>;
}

#[async_trait]
impl<E: Engine> SiteStore for SqlStore<E> {
    async fn create_site(&self, site: v1::Site) -> StoreResult<v1::Site> {
        self.write(move |ctx| {
            let site = site.clone();
            Box::pin(async move {
                ctx.db
                    .exec(
                        "INSERT INTO sites (id, site_key, name, allowed_origins, topics, color, greeting, \
                         identity_secret, identity_required, created_at, restrict_agents_to_topics, \
                         max_file_bytes, file_kinds, file_retention_days, email_delay_minutes, notify_email, \
                         new_conversations_per_ip_hour, auto_resolve_hours, time_zone, opening_hours, \
                         closed_dates, away_message, widget_texts, attributes) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
                         $19, $20, $21, $22, $23, $24)",
                        args![
                            &site.id,
                            &site.site_key,
                            &site.name,
                            join_list(&site.allowed_origins),
                            join_list(&site.topics),
                            &site.color,
                            &site.greeting,
                            &site.identity_secret,
                            site.identity_required,
                            now_ms(),
                            site.restrict_agents_to_topics,
                            site.max_file_bytes,
                            site.file_kinds,
                            site.file_retention_days,
                            site.email_delay_minutes,
                            &site.notify_email,
                            site.new_conversations_per_ip_hour,
                            site.auto_resolve_hours,
                            &site.time_zone,
                            encode_hours(&site.opening_hours),
                            join_list(&site.closed_dates),
                            &site.away_message,
                            encode_texts(&site.widget_texts),
                            super::context::encode_definitions(&site.attributes)
                        ],
                    )
                    .await?;
                Ok(site)
            })
        })
        .await
    }

    async fn update_site(&self, site: v1::Site) -> StoreResult<v1::Site> {
        self.write(move |ctx| {
            let site = site.clone();
            Box::pin(async move {
                let before = ctx
                    .db
                    .query_opt("SELECT attributes FROM sites WHERE id = $1", args![&site.id])
                    .await?
                    .map(|r| super::context::decode_definitions(&r.text(0)))
                    .unwrap_or_default();
                let n = ctx
                    .db
                    .exec(
                        "UPDATE sites SET name = $2, allowed_origins = $3, topics = $4, color = $5, greeting = $6, \
                         identity_secret = $7, identity_required = $8, restrict_agents_to_topics = $9, \
                         max_file_bytes = $10, file_kinds = $11, file_retention_days = $12, \
                         email_delay_minutes = $13, notify_email = $14, new_conversations_per_ip_hour = $15, \
                         auto_resolve_hours = $16, time_zone = $17, opening_hours = $18, closed_dates = $19, \
                         away_message = $20, widget_texts = $21, attributes = $22 WHERE id = $1",
                        args![
                            &site.id,
                            &site.name,
                            join_list(&site.allowed_origins),
                            join_list(&site.topics),
                            &site.color,
                            &site.greeting,
                            &site.identity_secret,
                            site.identity_required,
                            site.restrict_agents_to_topics,
                            site.max_file_bytes,
                            site.file_kinds,
                            site.file_retention_days,
                            site.email_delay_minutes,
                            &site.notify_email,
                            site.new_conversations_per_ip_hour,
                            site.auto_resolve_hours,
                            &site.time_zone,
                            encode_hours(&site.opening_hours),
                            join_list(&site.closed_dates),
                            &site.away_message,
                            encode_texts(&site.widget_texts),
                            super::context::encode_definitions(&site.attributes)
                        ],
                    )
                    .await?;
                if n == 0 {
                    return Err(StoreError::NotFound("site"));
                }
                super::context::drop_undeclared(ctx.db, &site.id, &before, &site.attributes)
                    .await?;
                let row = ctx
                    .db
                    .query_one(&format!("{SITE_SELECT} WHERE id = $1"), args![&site.id], "site")
                    .await?;
                Ok(site_from_row(&row))
            })
        })
        .await
    }

    async fn list_sites(&self) -> StoreResult<Vec<v1::Site>> {
        self.read_rows(
            format!("{SITE_SELECT} ORDER BY name, id"),
            vec![],
            site_from_row,
        )
        .await
    }

    async fn site_by_key(&self, site_key: &str) -> StoreResult<v1::Site> {
        self.read_one(
            format!("{SITE_SELECT} WHERE site_key = $1"),
            vec![site_key.into()],
            "site",
            site_from_row,
        )
        .await
    }

    async fn site_by_id(&self, id: &str) -> StoreResult<v1::Site> {
        self.read_one(
            format!("{SITE_SELECT} WHERE id = $1"),
            vec![id.into()],
            "site",
            site_from_row,
        )
        .await
    }
}

/// Agents and their login sessions.
#[async_trait]
pub trait AgentStore: Send + Sync {
    async fn create_agent(&self, agent: v1::Agent, password_hash: String)
    -> StoreResult<v1::Agent>;
    /// Replaces name, role, topics, capacity, active; and the password hash when given.
    async fn update_agent(
        &self,
        agent: v1::Agent,
        password_hash: Option<String>,
    ) -> StoreResult<v1::Agent>;
    async fn list_agents(&self) -> StoreResult<Vec<v1::Agent>>;
    async fn agent_by_email(&self, email: &str) -> StoreResult<AgentRecord>;
    async fn agent_by_id(&self, id: &str) -> StoreResult<v1::Agent>;
    async fn create_agent_session(
        &self,
        token_hash: String,
        agent_id: String,
        expires_at: i64,
    ) -> StoreResult<()>;
    /// The agent of a session that has not expired at `now`.
    async fn agent_by_session(&self, token_hash: &str, now: i64) -> StoreResult<(v1::Agent, i64)>;
    async fn delete_agent_session(&self, token_hash: String) -> StoreResult<()>;
}

#[async_trait]
impl<E: Engine> AgentStore for SqlStore<E> {
    async fn create_agent(
        &self,
        agent: v1::Agent,
        password_hash: String,
    ) -> StoreResult<v1::Agent> {
        self.write(move |ctx| {
            let (agent, password_hash) = (agent.clone(), password_hash.clone());
            Box::pin(async move {
                ctx.db
                    .exec(
                        "INSERT INTO agents (id, email, name, password_hash, role, topics, capacity, active, created_at, site_ids) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                        args![
                            &agent.id,
                            &agent.email,
                            &agent.name,
                            password_hash,
                            agent.role,
                            join_list(&agent.topics),
                            agent.capacity,
                            agent.active,
                            now_ms(),
                            join_list(&agent.site_ids)
                        ],
                    )
                    .await?;
                Ok(agent)
            })
        })
        .await
    }

    async fn update_agent(
        &self,
        agent: v1::Agent,
        password_hash: Option<String>,
    ) -> StoreResult<v1::Agent> {
        self.write(move |ctx| {
            let (agent, password_hash) = (agent.clone(), password_hash.clone());
            Box::pin(async move {
                let n = ctx
                    .db
                    .exec(
                        "UPDATE agents SET name = $2, role = $3, topics = $4, capacity = $5, active = $6, site_ids = $7, \
                         email_alerts_off = $8 WHERE id = $1",
                        args![
                            &agent.id,
                            &agent.name,
                            agent.role,
                            join_list(&agent.topics),
                            agent.capacity,
                            agent.active,
                            join_list(&agent.site_ids),
                            agent.email_alerts_off
                        ],
                    )
                    .await?;
                if n == 0 {
                    return Err(StoreError::NotFound("agent"));
                }
                if let Some(hash) = &password_hash {
                    ctx.db
                        .exec("UPDATE agents SET password_hash = $2 WHERE id = $1", args![&agent.id, hash])
                        .await?;
                }
                // Deactivation and a password reset end every session of the agent.
                if !agent.active || password_hash.is_some() {
                    ctx.db
                        .exec("DELETE FROM agent_sessions WHERE agent_id = $1", args![&agent.id])
                        .await?;
                }
                let row = ctx
                    .db
                    .query_one(&format!("{AGENT_SELECT} WHERE id = $1"), args![&agent.id], "agent")
                    .await?;
                Ok(agent_from_row(&row))
            })
        })
        .await
    }

    async fn list_agents(&self) -> StoreResult<Vec<v1::Agent>> {
        self.read_rows(
            format!("{AGENT_SELECT} ORDER BY name, id"),
            vec![],
            agent_from_row,
        )
        .await
    }

    async fn agent_by_email(&self, email: &str) -> StoreResult<AgentRecord> {
        self.read_one(
            "SELECT id, email, name, role, topics, capacity, active, site_ids, email_alerts_off, \
             password_hash FROM agents WHERE LOWER(email) = LOWER($1)"
                .into(),
            vec![email.into()],
            "agent",
            // Columns 0..=8 are agent_from_row's (AGENT_SELECT's order).
            |row| AgentRecord {
                agent: agent_from_row(row),
                password_hash: row.text(9),
            },
        )
        .await
    }

    async fn agent_by_id(&self, id: &str) -> StoreResult<v1::Agent> {
        self.read_one(
            format!("{AGENT_SELECT} WHERE id = $1"),
            vec![id.into()],
            "agent",
            agent_from_row,
        )
        .await
    }

    async fn create_agent_session(
        &self,
        token_hash: String,
        agent_id: String,
        expires_at: i64,
    ) -> StoreResult<()> {
        self.write(move |ctx| {
            let (token_hash, agent_id) = (token_hash.clone(), agent_id.clone());
            Box::pin(async move {
                let now = now_ms();
                // Expired sessions are swept when new ones are made.
                ctx.db
                    .exec("DELETE FROM agent_sessions WHERE expires_at < $1", args![now])
                    .await?;
                ctx.db
                    .exec(
                        "INSERT INTO agent_sessions (token_hash, agent_id, expires_at, created_at) VALUES ($1, $2, $3, $4)",
                        args![token_hash, agent_id, expires_at, now],
                    )
                    .await?;
                Ok(())
            })
        })
        .await
    }

    async fn agent_by_session(&self, token_hash: &str, now: i64) -> StoreResult<(v1::Agent, i64)> {
        self.read_one(
            "SELECT a.id, a.email, a.name, a.role, a.topics, a.capacity, a.active, a.site_ids, \
             a.email_alerts_off, s.expires_at \
             FROM agent_sessions s JOIN agents a ON a.id = s.agent_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND a.active = 1"
                .into(),
            vec![token_hash.into(), now.into()],
            "session",
            // Columns 0..=8 are agent_from_row's (AGENT_SELECT's order).
            |row| (agent_from_row(row), row.int(9)),
        )
        .await
    }

    async fn delete_agent_session(&self, token_hash: String) -> StoreResult<()> {
        self.write_exec(
            "DELETE FROM agent_sessions WHERE token_hash = $1",
            vec![token_hash.into()],
            None,
        )
        .await
    }
}

/// API keys for services (bots, CRMs).
#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    async fn create_api_key(&self, key: v1::ApiKey, secret_hash: String)
    -> StoreResult<v1::ApiKey>;
    async fn list_api_keys(&self) -> StoreResult<Vec<v1::ApiKey>>;
    async fn revoke_api_key(&self, id: String) -> StoreResult<()>;
    async fn api_key_by_secret_hash(&self, secret_hash: &str) -> StoreResult<ApiKeyRecord>;
}

#[async_trait]
impl<E: Engine> ApiKeyStore for SqlStore<E> {
    async fn create_api_key(
        &self,
        key: v1::ApiKey,
        secret_hash: String,
    ) -> StoreResult<v1::ApiKey> {
        self.write(move |ctx| {
            let (key, secret_hash) = (key.clone(), secret_hash.clone());
            Box::pin(async move {
                let scopes: Vec<String> = key.scopes.iter().map(|s| s.to_string()).collect();
                ctx.db
                    .exec(
                        "INSERT INTO api_keys (id, name, secret_hash, scopes, active, created_at, site_ids) \
                         VALUES ($1, $2, $3, $4, 1, $5, $6)",
                        args![
                            &key.id,
                            &key.name,
                            secret_hash,
                            join_list(&scopes),
                            key.created_at_ms,
                            join_list(&key.site_ids)
                        ],
                    )
                    .await?;
                Ok(key)
            })
        })
        .await
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<v1::ApiKey>> {
        self.read_rows(
            format!("{API_KEY_SELECT} ORDER BY created_at DESC, id"),
            vec![],
            api_key_from_row,
        )
        .await
    }

    async fn revoke_api_key(&self, id: String) -> StoreResult<()> {
        self.write_exec(
            "UPDATE api_keys SET active = 0 WHERE id = $1",
            vec![id.into()],
            Some("API key"),
        )
        .await
    }

    async fn api_key_by_secret_hash(&self, secret_hash: &str) -> StoreResult<ApiKeyRecord> {
        self.read_one(
            format!("{API_KEY_SELECT} WHERE secret_hash = $1 AND active = 1"),
            vec![secret_hash.into()],
            "API key",
            |row| ApiKeyRecord {
                key: api_key_from_row(row),
            },
        )
        .await
    }
}

/// Canned replies agents insert.
#[async_trait]
pub trait CannedReplyStore: Send + Sync {
    async fn put_canned_reply(&self, reply: v1::CannedReply) -> StoreResult<v1::CannedReply>;
    async fn delete_canned_reply(&self, id: String) -> StoreResult<()>;
    async fn list_canned_replies(
        &self,
        site_id: Option<String>,
    ) -> StoreResult<Vec<v1::CannedReply>>;
}

#[async_trait]
impl<E: Engine> CannedReplyStore for SqlStore<E> {
    async fn put_canned_reply(&self, reply: v1::CannedReply) -> StoreResult<v1::CannedReply> {
        self.write(move |ctx| {
            let reply = reply.clone();
            Box::pin(async move {
                ctx.db
                    .exec(
                        "INSERT INTO canned_replies (id, site_id, shortcut, text) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (site_id, shortcut) DO UPDATE SET text = excluded.text",
                        args![&reply.id, &reply.site_id, &reply.shortcut, &reply.text],
                    )
                    .await?;
                let row = ctx
                    .db
                    .query_one(
                        &format!("{CANNED_SELECT} WHERE site_id = $1 AND shortcut = $2"),
                        args![&reply.site_id, &reply.shortcut],
                        "canned reply",
                    )
                    .await?;
                Ok(canned_from_row(&row))
            })
        })
        .await
    }

    async fn delete_canned_reply(&self, id: String) -> StoreResult<()> {
        self.write_exec(
            "DELETE FROM canned_replies WHERE id = $1",
            vec![id.into()],
            Some("canned reply"),
        )
        .await
    }

    async fn list_canned_replies(
        &self,
        site_id: Option<String>,
    ) -> StoreResult<Vec<v1::CannedReply>> {
        match site_id {
            Some(site) => {
                self.read_rows(
                    format!("{CANNED_SELECT} WHERE site_id = $1 OR site_id = '' ORDER BY shortcut"),
                    vec![site.into()],
                    canned_from_row,
                )
                .await
            }
            None => {
                self.read_rows(
                    format!("{CANNED_SELECT} ORDER BY shortcut"),
                    vec![],
                    canned_from_row,
                )
                .await
            }
        }
    }
}
