//! Test support for the core's unit tests: a core over a fresh store, with one site and
//! callers on it, in process (no listener, no network but PostgreSQL's when asked for).
//!
//! The store is SQLite in a temporary directory, or, like the integration tests, a fresh
//! PostgreSQL database when `WSMSCHAT_TEST_POSTGRES` names a server ([`TestCore::any`]).
//! Paused-clock tests take [`TestCore::sqlite`]: its reads run on the blocking pool, which
//! holds tokio's auto-advance, where PostgreSQL's socket waits would let paused timers fire.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tempfile::TempDir;
use wsmschat::ids::AGENT_TOKEN_PREFIX;
use wsmschat::v1;
use wsmschat::v1::client_event::Event as Ce;

use super::access::AdminGrant;
use super::session::SessionStart;
use super::{Core, CoreConfig, DEFAULT_TOPICS};
use crate::auth::{self, Principal};
use crate::core::hub::Hub;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;
use crate::util::{new_id, new_token, now_ms};

/// Limits generous enough that only tests about limits hit them (as `tests/common`'s).
pub(crate) fn config() -> CoreConfig {
    CoreConfig {
        events_per_second: 10_000,
        events_burst: 10_000,
        ip_events_per_second: 100_000,
        ip_events_burst: 100_000,
        new_visitors_per_minute: 1_000_000,
        new_conversations_per_minute: 1_000_000,
        context_updates_per_minute: 1_000_000,
        open_conversations_per_visitor: 0,
        new_conversations_per_ip_hour: 0,
        auto_resolve_every: std::time::Duration::from_millis(200),
        ..CoreConfig::default()
    }
}

/// A core over its own store, with the site `site` (the default topics).
pub(crate) struct TestCore {
    pub(crate) core: Arc<Core>,
    pub(crate) site: v1::Site,
    _dir: TempDir,
    /// The PostgreSQL server and database, dropped by [`TestCore::finish`].
    postgres: Option<(String, String)>,
}

/// Makes client message ids unique within a test process.
static NEXT_MSG: AtomicU64 = AtomicU64::new(1);

impl TestCore {
    /// On SQLite, whatever `WSMSCHAT_TEST_POSTGRES` says.
    pub(crate) async fn sqlite() -> Self {
        Self::open(config(), false).await
    }

    /// On PostgreSQL when `WSMSCHAT_TEST_POSTGRES` is set, else on SQLite.
    pub(crate) async fn any() -> Self {
        Self::open(config(), true).await
    }

    async fn open(config: CoreConfig, postgres_if_asked: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::new());
        let hub = Hub::new(metrics.clone());
        let base = std::env::var("WSMSCHAT_TEST_POSTGRES")
            .ok()
            .filter(|b| postgres_if_asked && !b.is_empty());
        let (store, postgres): (Arc<dyn Store>, _) = match base {
            Some(base) => {
                let base = base.trim_end_matches('/').to_owned();
                let name = format!("wsmschat_u_{}", new_id("").to_lowercase());
                admin_sql(&base, &format!("CREATE DATABASE {name}")).await;
                let store = PostgresStore::connect(
                    &format!("{base}/{name}"),
                    4,
                    hub.clone(),
                    metrics.clone(),
                )
                .await
                .unwrap();
                (Arc::new(store), Some((base, name)))
            }
            None => {
                let path = dir.path().join("wsmschat.db");
                let store = SqliteStore::open(&path, hub.clone(), metrics.clone()).unwrap();
                (Arc::new(store), None)
            }
        };
        let core = Core::new(config, store, hub, metrics);
        // (No announcer task: its timers would let a paused clock run ahead.)
        core.reconcile_queue().await.unwrap();
        let site = core
            .create_site(
                AdminGrant::operator(),
                v1::Site {
                    name: "Test Shop".into(),
                    allowed_origins: vec!["http://localhost:*".into()],
                    topics: DEFAULT_TOPICS.iter().map(|t| t.to_string()).collect(),
                    ..Default::default()
                },
                Some(new_id("test_")),
            )
            .await
            .unwrap();
        Self {
            core,
            site,
            _dir: dir,
            postgres,
        }
    }

    /// Another site with the default topics.
    pub(crate) async fn other_site(&self) -> v1::Site {
        self.core
            .create_site(
                AdminGrant::operator(),
                v1::Site {
                    name: "Other Shop".into(),
                    topics: DEFAULT_TOPICS.iter().map(|t| t.to_string()).collect(),
                    ..Default::default()
                },
                None,
            )
            .await
            .unwrap()
    }

    /// A new visitor of the test site: (visitor id, token).
    pub(crate) async fn visitor(&self) -> (String, String) {
        self.visitor_of(&self.site).await
    }

    /// A new visitor of `site`: (visitor id, token).
    pub(crate) async fn visitor_of(&self, site: &v1::Site) -> (String, String) {
        let r = self
            .core
            .start_visitor_session(SessionStart {
                request: v1::StartVisitorSessionRequest {
                    site_key: site.site_key.clone(),
                    name: "Test Visitor".into(),
                    ..Default::default()
                },
                origin: None,
                header_user_agent: String::new(),
                ip: None,
            })
            .await
            .unwrap();
        (r.visitor_id, r.visitor_token)
    }

    /// A chat-scoped API key limited to `site_ids` (empty: every site); its secret.
    pub(crate) async fn service_key(&self, site_ids: Vec<String>) -> String {
        let (_, secret) = self
            .core
            .create_api_key(
                AdminGrant::operator(),
                "test-bot",
                vec![v1::ApiKeyScope::Chat as i32],
                site_ids,
            )
            .await
            .unwrap();
        secret
    }

    /// An agent with a session that expires in `ttl` (written to the store directly: no
    /// password hashing); the agent and the session token.
    pub(crate) async fn agent_session(&self, ttl: std::time::Duration) -> (v1::Agent, String) {
        let agent = self
            .core
            .store
            .create_agent(
                v1::Agent {
                    id: new_id("ag_"),
                    email: format!("{}@example.com", new_id("agent")),
                    name: "Test Agent".into(),
                    role: v1::AgentRole::Agent as i32,
                    capacity: 5,
                    active: true,
                    ..Default::default()
                },
                "not-a-password-hash".into(),
            )
            .await
            .unwrap();
        let token = new_token(AGENT_TOKEN_PREFIX);
        self.core
            .store
            .create_agent_session(
                auth::token_hash(&token),
                agent.id.clone(),
                now_ms() + ttl.as_millis() as i64,
            )
            .await
            .unwrap();
        (agent, token)
    }

    /// The principal of a token.
    pub(crate) async fn principal(&self, token: &str) -> Principal {
        self.core.authenticate(token).await.unwrap()
    }

    /// Sends `text` as `token` into `conversation_id` (empty: a visitor's new conversation
    /// about "Order"), through the core's publish; its ack.
    pub(crate) async fn send(&self, token: &str, conversation_id: &str, text: &str) -> v1::Ack {
        self.send_kind(token, conversation_id, text, v1::MessageKind::Text)
            .await
    }

    /// A private note (staff only) into `conversation_id`; its ack.
    pub(crate) async fn send_note(
        &self,
        token: &str,
        conversation_id: &str,
        text: &str,
    ) -> v1::Ack {
        self.send_kind(token, conversation_id, text, v1::MessageKind::Note)
            .await
    }

    async fn send_kind(
        &self,
        token: &str,
        conversation_id: &str,
        text: &str,
        kind: v1::MessageKind,
    ) -> v1::Ack {
        let principal = self.principal(token).await;
        let id = format!("m{}", NEXT_MSG.fetch_add(1, Ordering::Relaxed));
        let ev = v1::ClientEvent {
            request_id: id.clone(),
            event: Some(Ce::SendMessage(v1::SendMessage {
                conversation_id: conversation_id.into(),
                topic: "Order".into(),
                client_msg_id: id,
                text: text.into(),
                kind: kind as i32,
                ..Default::default()
            })),
        };
        self.core.publish(&principal, None, ev, None).await.unwrap()
    }

    /// Stops the core, commits what is queued and drops a PostgreSQL database.
    pub(crate) async fn finish(self) {
        self.core.shutdown();
        self.core.close();
        if let Some((base, name)) = &self.postgres {
            admin_sql(
                base,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            )
            .await;
        }
    }
}

/// Runs one statement on the PostgreSQL server's `postgres` database.
async fn admin_sql(base: &str, sql: &str) {
    let (client, conn) =
        tokio_postgres::connect(&format!("{base}/postgres"), tokio_postgres::NoTls)
            .await
            .expect("connect to the test PostgreSQL");
    tokio::spawn(conn);
    client.batch_execute(sql).await.unwrap();
}
