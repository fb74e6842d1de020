//! Test harness: a real server on a loopback port (port 0) with its own database, and native
//! tonic clients acting as visitors, agents and services.
#![allow(dead_code)]

pub mod receiver;
pub mod smtp;

use std::time::Duration;

use tempfile::TempDir;
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Streaming};
use wsmschat::v1;
use wsmschat::v1::admin_service_client::AdminServiceClient;
use wsmschat::v1::chat_service_client::ChatServiceClient;
use wsmschat::v1::client_event::Event as Ce;
use wsmschat::v1::server_event::Event as Se;
use wsmschat::v1::session_service_client::SessionServiceClient;
use wsmschat_server::core::CoreConfig;
use wsmschat_server::demo::DemoOptions;
use wsmschat_server::{Config, Database, Running};

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "admin-password-1";
pub const WAIT: Duration = Duration::from_secs(10);

/// A server with its database directory (kept for restarts).
pub struct TestServer {
    pub running: Option<Running>,
    pub dir: TempDir,
    pub config: Config,
    pub url: String,
}

/// Limits generous enough that only the tests about limits hit them.
pub fn test_core_config() -> CoreConfig {
    CoreConfig {
        events_per_second: 10_000,
        events_burst: 10_000,
        ip_events_per_second: 100_000,
        ip_events_burst: 100_000,
        new_visitors_per_minute: 1_000_000,
        new_conversations_per_minute: 1_000_000,
        open_conversations_per_visitor: 0,
        new_conversations_per_ip_hour: 0,
        auto_resolve_every: std::time::Duration::from_millis(200),
        reply_time_ttl: std::time::Duration::ZERO,
        ..CoreConfig::default()
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(test_core_config()).await
    }

    pub async fn start_with(core: CoreConfig) -> Self {
        Self::start_full(core, Default::default(), Default::default()).await
    }

    /// A server with its own core limits, network limits and static directories.
    pub async fn start_full(
        core: CoreConfig,
        net: wsmschat_server::server::NetConfig,
        static_dirs: wsmschat_server::http::StaticDirs,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            database: test_database(&dir).await,
            core,
            static_dirs,
            demo: Some(DemoOptions {
                admin_password: Some(ADMIN_PASSWORD.into()),
                ..Default::default()
            }),
            redis_url: None,
            redis_namespace: String::new(),
            net,
        };
        let running = wsmschat_server::start(config.clone()).await.unwrap();
        let url = format!("http://{}", running.addr);
        Self {
            running: Some(running),
            dir,
            config,
            url,
        }
    }

    /// Graceful stop, then a new server on the same database (and the same port when free).
    pub async fn restart(&mut self) {
        self.restart_after(|_| {}).await;
    }

    /// [`restart`](Self::restart), with `between` run while no server is up (to change the
    /// database behind the server's back, as a crash or an operator would).
    pub async fn restart_after(&mut self, between: impl FnOnce(&Config)) {
        let addr = self.running.as_ref().unwrap().addr;
        self.running.take().unwrap().stop().await.unwrap();
        between(&self.config);
        let mut config = self.config.clone();
        config.listen = addr;
        let running = match wsmschat_server::start(config.clone()).await {
            Ok(r) => r,
            Err(_) => {
                config.listen = "127.0.0.1:0".parse().unwrap();
                wsmschat_server::start(config).await.unwrap()
            }
        };
        self.url = format!("http://{}", running.addr);
        self.running = Some(running);
    }

    pub async fn channel(&self) -> Channel {
        Endpoint::from_shared(self.url.clone())
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    pub async fn chat(&self) -> ChatServiceClient<Channel> {
        ChatServiceClient::new(self.channel().await)
    }

    pub async fn sessions(&self) -> SessionServiceClient<Channel> {
        SessionServiceClient::new(self.channel().await)
    }

    pub async fn admin_client(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(self.channel().await)
    }

    pub async fn login(&self, email: &str, password: &str) -> String {
        self.sessions()
            .await
            .login(v1::LoginRequest {
                email: email.into(),
                password: password.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .token
    }

    pub async fn admin_token(&self) -> String {
        self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    /// Creates an agent (through the admin API) and logs them in. Returns (agent, token).
    pub async fn agent(&self, name: &str, topics: &[&str], capacity: u32) -> (v1::Agent, String) {
        let admin = self.admin_token().await;
        let email = format!("{}@example.com", name.to_lowercase());
        let agent = self
            .admin_client()
            .await
            .create_agent(authed(
                &admin,
                v1::CreateAgentRequest {
                    agent: Some(v1::Agent {
                        email: email.clone(),
                        name: name.into(),
                        role: v1::AgentRole::Agent as i32,
                        topics: topics.iter().map(|t| t.to_string()).collect(),
                        capacity,
                        ..Default::default()
                    }),
                    password: "agent-password".into(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .agent
            .unwrap();
        let token = self.login(&email, "agent-password").await;
        (agent, token)
    }

    /// Creates an API key with the chat scope; returns its secret.
    pub async fn service_key(&self) -> String {
        let admin = self.admin_token().await;
        self.admin_client()
            .await
            .create_api_key(authed(
                &admin,
                v1::CreateApiKeyRequest {
                    name: "test-bot".into(),
                    scopes: vec![v1::ApiKeyScope::Chat as i32],
                    site_ids: vec![],
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .secret
    }

    /// A new visitor of the demo site; returns (visitor id, token).
    pub async fn visitor(&self, name: &str) -> (String, String) {
        let r = self
            .sessions()
            .await
            .start_visitor_session(v1::StartVisitorSessionRequest {
                site_key: "demo".into(),
                name: name.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        (r.visitor_id, r.visitor_token)
    }

    /// The demo site, as the admin `admin` sees it.
    pub async fn demo_site(&self, admin: &str) -> v1::Site {
        self.admin_client()
            .await
            .list_sites(authed(admin, v1::ListSitesRequest {}))
            .await
            .unwrap()
            .into_inner()
            .sites
            .into_iter()
            .find(|x| x.site_key == "demo")
            .unwrap()
    }

    /// Saves a site (every field; the identity secret kept).
    pub async fn save_site(&self, admin: &str, site: v1::Site) -> Result<v1::Site, tonic::Status> {
        self.admin_client()
            .await
            .update_site(authed(
                admin,
                v1::UpdateSiteRequest {
                    site: Some(site),
                    rotate_identity_secret: false,
                },
            ))
            .await
            .map(|r| r.into_inner().site.unwrap())
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.unwrap();
        }
        drop_database(&self.config.database).await;
    }
}

/// The database a test server uses: SQLite in `dir` by default; with
/// `WSMSCHAT_TEST_POSTGRES=postgres://user@host:port` a fresh PostgreSQL database per test
/// (the same suite runs against both engines).
pub async fn test_database(dir: &TempDir) -> Database {
    match std::env::var("WSMSCHAT_TEST_POSTGRES") {
        Ok(base) if !base.is_empty() => postgres_database(&base).await,
        _ => Database::Sqlite(dir.path().join("wsmschat.db")),
    }
}

/// The PostgreSQL server tests use when they need one whatever the suite's engine (a
/// cluster): `WSMSCHAT_TEST_POSTGRES`, else the local one.
pub fn postgres_base() -> String {
    std::env::var("WSMSCHAT_TEST_POSTGRES")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432".into())
}

/// A fresh PostgreSQL database on the server at `base`.
pub async fn postgres_database(base: &str) -> Database {
    let base = base.trim_end_matches('/').to_owned();
    let name = format!(
        "wsmschat_t_{}",
        wsmschat_server::util::new_id("").to_lowercase()
    );
    let (client, conn) =
        tokio_postgres::connect(&format!("{base}/postgres"), tokio_postgres::NoTls)
            .await
            .expect("connect to the test PostgreSQL");
    tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    Database::Postgres {
        url: format!("{base}/{name}"),
        pool_size: 8,
    }
}

/// Drops a per-test PostgreSQL database (best effort).
pub async fn drop_database(db: &Database) {
    if let Database::Postgres { url, .. } = db {
        let (base, name) = url.rsplit_once('/').unwrap();
        if let Ok((client, conn)) =
            tokio_postgres::connect(&format!("{base}/postgres"), tokio_postgres::NoTls).await
        {
            tokio::spawn(conn);
            let _ = client
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        }
    }
}

/// A request with `authorization: Bearer <token>`.
pub fn authed<T>(token: &str, msg: T) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}

pub fn send(
    conversation_id: &str,
    topic: &str,
    client_msg_id: &str,
    text: &str,
) -> v1::ClientEvent {
    v1::ClientEvent {
        request_id: client_msg_id.into(),
        event: Some(Ce::SendMessage(v1::SendMessage {
            conversation_id: conversation_id.into(),
            topic: topic.into(),
            client_msg_id: client_msg_id.into(),
            text: text.into(),
            kind: 0,
            ..Default::default()
        })),
    }
}

pub fn ev(event: Ce) -> v1::ClientEvent {
    v1::ClientEvent {
        request_id: String::new(),
        event: Some(event),
    }
}

/// Publishes; returns the ack.
pub async fn publish(
    chat: &mut ChatServiceClient<Channel>,
    token: &str,
    event: v1::ClientEvent,
) -> Result<v1::Ack, tonic::Status> {
    chat.publish(authed(token, v1::PublishRequest { event: Some(event) }))
        .await
        .map(|r| r.into_inner().ack.unwrap())
}

/// Starts a conversation as a visitor; returns (conversation id, ack).
pub async fn start_conversation(
    chat: &mut ChatServiceClient<Channel>,
    visitor_token: &str,
    topic: &str,
    text: &str,
) -> (String, v1::Ack) {
    let ack = publish(chat, visitor_token, send("", topic, &uuid(), text))
        .await
        .unwrap();
    (ack.conversation_id.clone(), ack)
}

pub fn uuid() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "m-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// An open Subscribe stream.
pub struct Sub {
    pub stream: Streaming<v1::SubscribeResponse>,
}

impl Sub {
    pub async fn open(
        chat: &mut ChatServiceClient<Channel>,
        token: &str,
        cursors: Vec<(String, u64)>,
        inbox: bool,
    ) -> Result<Sub, tonic::Status> {
        let stream = chat
            .subscribe(authed(
                token,
                v1::SubscribeRequest {
                    subscription: Some(v1::Subscription {
                        cursors: cursors
                            .into_iter()
                            .map(|(conversation_id, after_seq)| v1::ConversationCursor {
                                conversation_id,
                                after_seq,
                            })
                            .collect(),
                        inbox,
                    }),
                },
            ))
            .await?
            .into_inner();
        let mut sub = Sub { stream };
        match sub.next().await {
            Some(Se::Ready(_)) => Ok(sub),
            other => panic!("expected ready first, got {other:?}"),
        }
    }

    /// Next event (skipping nothing), None at the end of the stream; panics after WAIT.
    pub async fn next(&mut self) -> Option<Se> {
        let item = tokio::time::timeout(WAIT, self.stream.next())
            .await
            .expect("stream event in time")?;
        Some(item.expect("stream ok").event.unwrap().event.unwrap())
    }

    /// Next event matching `f` (skipping heartbeats, presence and others).
    pub async fn next_where<T>(&mut self, mut f: impl FnMut(&Se) -> Option<T>) -> T {
        loop {
            let e = self.next().await.expect("stream ended while waiting");
            if let Some(t) = f(&e) {
                return t;
            }
        }
    }

    /// Next message event.
    pub async fn next_message(&mut self) -> v1::Message {
        self.next_where(|e| match e {
            Se::Message(m) => Some(m.clone()),
            _ => None,
        })
        .await
    }

    /// Reads on until the stream ends with an error status (a revoked or blocked caller);
    /// panics after WAIT or on an end without one.
    pub async fn end_status(&mut self) -> tonic::Status {
        loop {
            match tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("the stream ends in time")
            {
                Some(Ok(_)) => continue,
                Some(Err(status)) => return status,
                None => panic!("the stream ended without a status"),
            }
        }
    }

    /// Asserts that no message arrives within `d`.
    pub async fn no_message_within(&mut self, d: Duration) {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return,
                Ok(Some(Ok(r))) => {
                    if let Some(Se::Message(m)) = r.event.unwrap().event {
                        panic!("unexpected message {m:?}");
                    }
                }
                Ok(other) => panic!("stream ended: {other:?}"),
            }
        }
    }
}

/// The conversation event for `id` with a predicate.
pub async fn wait_conversation(
    sub: &mut Sub,
    id: &str,
    mut pred: impl FnMut(&v1::Conversation) -> bool,
) -> v1::Conversation {
    sub.next_where(|e| match e {
        Se::Conversation(c) if c.id == id && pred(c) => Some(c.clone()),
        _ => None,
    })
    .await
}

pub async fn history(
    chat: &mut ChatServiceClient<Channel>,
    token: &str,
    conversation_id: &str,
) -> Vec<v1::Message> {
    chat.get_history(authed(
        token,
        v1::GetHistoryRequest {
            conversation_id: conversation_id.into(),
            before_seq: 0,
            limit: 500,
        },
    ))
    .await
    .unwrap()
    .into_inner()
    .messages
}

pub async fn conversation(
    chat: &mut ChatServiceClient<Channel>,
    token: &str,
    id: &str,
) -> v1::Conversation {
    chat.get_conversation(authed(
        token,
        v1::GetConversationRequest {
            conversation_id: id.into(),
        },
    ))
    .await
    .unwrap()
    .into_inner()
    .conversation
    .unwrap()
}

/// A server process (`wsmschat serve`) for tests that kill or cluster servers.
pub struct Proc {
    pub child: std::process::Child,
    pub url: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the server binary on a free loopback port with `database` and extra arguments.
pub fn spawn(database: &Database, extra: &[&str]) -> Proc {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wsmschat"));
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--demo-password",
        ADMIN_PASSWORD,
    ]);
    match database {
        Database::Sqlite(path) => cmd.arg("--data-dir").arg(path.parent().unwrap()),
        Database::Postgres { url, .. } => cmd.arg("--database-url").arg(url),
    };
    let mut child = cmd
        .args(extra)
        .env("WSMSCHAT_EVENTS_PER_SECOND", "100000")
        .env("WSMSCHAT_EVENTS_BURST", "100000")
        .env("WSMSCHAT_IP_EVENTS_PER_SECOND", "100000")
        .env("WSMSCHAT_NEW_VISITORS_PER_MINUTE", "1000000")
        .env("WSMSCHAT_NEW_CONVERSATIONS_PER_MINUTE", "1000000")
        .env("WSMSCHAT_NEW_CONVERSATIONS_PER_IP_HOUR", "0")
        .env("WSMSCHAT_OPEN_CONVERSATIONS_PER_VISITOR", "0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines.next().expect("server printed its address").unwrap();
        if let Some(url) = line.strip_prefix("wsmschat listening on ") {
            break url.replace("localhost", "127.0.0.1");
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Proc { child, url }
}

/// A new demo-site visitor on the server at `url`; returns the visitor token.
pub async fn visitor_at(url: &str) -> String {
    SessionServiceClient::connect(url.to_owned())
        .await
        .unwrap()
        .start_visitor_session(v1::StartVisitorSessionRequest {
            site_key: "demo".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .visitor_token
}

/// An open bidirectional Chat stream: send events, read what comes back.
pub struct ChatStream {
    pub tx: tokio::sync::mpsc::UnboundedSender<v1::ChatRequest>,
    pub stream: Streaming<v1::ChatResponse>,
}

impl ChatStream {
    /// Opens the stream with `subscription` and reads its Ready event.
    pub async fn open(
        chat: &mut ChatServiceClient<Channel>,
        token: &str,
        subscription: v1::Subscription,
    ) -> ChatStream {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<v1::ChatRequest>();
        tx.send(v1::ChatRequest {
            subscribe: Some(subscription),
            event: None,
        })
        .unwrap();
        let stream = chat
            .chat(authed(
                token,
                tokio_stream::wrappers::UnboundedReceiverStream::new(rx),
            ))
            .await
            .unwrap()
            .into_inner();
        let mut c = ChatStream { tx, stream };
        assert!(matches!(c.next().await, Se::Ready(_)));
        c
    }

    /// Sends an event on the stream.
    pub fn send(&self, event: v1::ClientEvent) {
        self.tx
            .send(v1::ChatRequest {
                subscribe: None,
                event: Some(event),
            })
            .unwrap();
    }

    /// The next event; panics after WAIT or if the stream ends.
    pub async fn next(&mut self) -> Se {
        let r = tokio::time::timeout(WAIT, self.stream.next())
            .await
            .expect("chat event in time")
            .expect("chat stream open")
            .expect("chat ok");
        r.event.unwrap().event.unwrap()
    }

    /// The next event that is not a heartbeat, presence or conversation snapshot.
    pub async fn next_significant(&mut self) -> Se {
        loop {
            match self.next().await {
                Se::Heartbeat(_) | Se::Conversation(_) | Se::Presence(_) => continue,
                other => return other,
            }
        }
    }
}

/// Creates a webhook for every message of the demo site at `server_url`; its id.
pub async fn webhook_at(server_url: &str, receiver_url: &str) -> String {
    use wsmschat::v1::admin_service_client::AdminServiceClient;
    use wsmschat::v1::session_service_client::SessionServiceClient;
    let admin = SessionServiceClient::connect(server_url.to_owned())
        .await
        .unwrap()
        .login(v1::LoginRequest {
            email: ADMIN_EMAIL.into(),
            password: ADMIN_PASSWORD.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    let mut adm = AdminServiceClient::connect(server_url.to_owned())
        .await
        .unwrap();
    let site_id = adm
        .list_sites(authed(&admin, v1::ListSitesRequest {}))
        .await
        .unwrap()
        .into_inner()
        .sites[0]
        .id
        .clone();
    adm.create_webhook(authed(
        &admin,
        v1::CreateWebhookRequest {
            site_id,
            url: receiver_url.into(),
            events: vec![v1::WebhookEventType::MessageCreated as i32],
            description: String::new(),
        },
    ))
    .await
    .unwrap()
    .into_inner()
    .webhook
    .unwrap()
    .id
}
