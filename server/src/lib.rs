//! wsmschat server: live customer-support chat over gRPC (HTTP/2) and gRPC-web (browsers).
//!
//! Layers, outside in; each imports only the ones below it:
//! - [`server`]: the TCP listener (HTTP/1.1 + HTTP/2 on one port), connection limits and
//!   graceful shutdown.
//! - [`http`]: the application: gRPC services, gRPC-web, CORS, health, metrics, static files.
//! - [`rpc`]: thin gRPC handlers: request metadata in, one core use case, `CoreError` out.
//! - [`core`]: every rule, and the only door to state. Where a rule lives:
//!   - `core/access.rs`: permissions (tokens, sites, topics, conversations, admin grants, origins)
//!   - `core/session.rs`: visitor sessions, login, logout; `core/admin.rs`: sites, agents, keys,
//!     canned replies; `core/report.rs`: the site report; `core/queries.rs`: reads and search
//!   - `core/events/`: one file per client event family; `core/stream.rs`: replay then live
//!   - `core/workflow.rs`: the queue router and assignment; `core/presence.rs`: who is online
//!   - `core/hub.rs`: fan-out to local streams; `core/cluster.rs`: to and from the other nodes
//!   - `core/sites.rs`: the site cache; `core/charges.rs` + `core/limits.rs`: rates and slots
//! - [`store`]: durable state behind the `Store` trait (SQLite or PostgreSQL, group commit).
//! - [`bus`]: the cluster's Redis transport (bytes only; the meaning is `core::cluster`'s).
//! - [`auth`]: tokens, passwords, identity verification, origin patterns (pure functions and
//!   the token cache, used by core).
//! - [`demo`]: seeds a demo site and admin through the core's admin use cases.
//!
//! Tracing: every RPC runs in an `rpc` span (`method`, then `principal` and `principal_id`
//! once the caller is known); a stream's events are polled inside it (with `stream`), and a
//! Chat event in a child `event` span with its `conversation`. Core unit tests build an
//! in-process core with `core/testkit.rs`; time-dependent ones run on tokio's paused clock
//! (limits, presence, the token cache and heartbeats read `tokio::time::Instant`).

pub mod auth;
pub mod bus;
pub mod core;
pub mod demo;
pub mod error;
pub mod files;
pub mod http;
pub mod metrics;
pub mod rpc;
pub mod server;
pub mod store;
pub mod util;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::core::hub::Hub;
use crate::core::{Core, CoreConfig};
use crate::metrics::Metrics;
use crate::store::Store;
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;

/// Everything needed to run a server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// Where the data lives.
    pub database: Database,
    /// Core limits and timings.
    pub core: CoreConfig,
    /// Static apps to serve.
    pub static_dirs: http::StaticDirs,
    /// Seed a demo site and admin on an empty database.
    pub demo: Option<demo::DemoOptions>,
    /// Redis URL for the cluster bus (several nodes on one PostgreSQL); None: one node.
    pub redis_url: Option<String>,
    /// Prefix of the Redis channel (one per cluster).
    pub redis_namespace: String,
    /// Connection limits, trusted proxies, metrics access.
    pub net: server::NetConfig,
}

/// A running server.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its core (tests inspect it).
    pub core: Arc<Core>,
    /// What the demo seeding created, if it ran.
    pub demo: Option<demo::DemoInfo>,
    /// Where the demo page is served, if it is.
    pub demo_addr: Option<SocketAddr>,
    /// Where replies by email are accepted (`--smtp-listen`), if they are.
    pub smtp_addr: Option<SocketAddr>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

/// The database: an SQLite file (one node) or PostgreSQL (one or many nodes).
#[derive(Debug, Clone)]
pub enum Database {
    /// SQLite database file.
    Sqlite(PathBuf),
    /// PostgreSQL URL (`postgres://user@host:5432/db`) and connection pool size.
    Postgres { url: String, pool_size: usize },
}

impl Running {
    /// Graceful stop: streams closed, connections drained, last batch committed.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let result = (&mut self.task).await.unwrap_or(Ok(()));
        self.core.close();
        result
    }

    /// Resolves when the server stops by itself (it never does unless it fails).
    pub async fn wait(mut self) -> std::io::Result<()> {
        let result = (&mut self.task).await.unwrap_or(Ok(()));
        self.core.close();
        result
    }

    /// A handle to trigger shutdown from elsewhere (signals).
    pub fn take_shutdown(&mut self) -> Option<oneshot::Sender<()>> {
        self.shutdown.take()
    }
}

/// Opens the store and the core, wired together (the hub receives committed messages).
pub async fn build_core(config: &Config) -> anyhow::Result<Arc<Core>> {
    let metrics = Arc::new(Metrics::new());
    let hub = Hub::new(metrics.clone());
    let store: Arc<dyn Store> = match &config.database {
        Database::Sqlite(path) => Arc::new(SqliteStore::open(path, hub.clone(), metrics.clone())?),
        Database::Postgres { url, pool_size } => {
            Arc::new(PostgresStore::connect(url, *pool_size, hub.clone(), metrics.clone()).await?)
        }
    };
    if let Some(email) = &config.core.email {
        crate::core::email::Mailer::new(email)?;
        if config.core.public_url.is_none() {
            anyhow::bail!("email needs --public-url (the unsubscribe link in every email)");
        }
    }
    let core = Core::new(config.core.clone(), store, hub, metrics);
    let (blobs, spool) = file_store(config).await?;
    core.init_files(blobs, spool).await?;
    Ok(core)
}

/// The blob store the configuration names, and where uploads are spooled.
async fn file_store(config: &Config) -> anyhow::Result<(Arc<dyn files::blob::BlobStore>, PathBuf)> {
    use crate::core::FileStore;
    use files::blob::{FsBlobs, PgBlobs};
    let dir = config.core.files_dir.clone();
    match (&config.database, config.core.files_store) {
        (Database::Postgres { url, .. }, FileStore::Auto | FileStore::Postgres) => {
            let spool = match dir {
                Some(d) => {
                    // The spool of the files directory outlives a crash: swept as the
                    // directory store's is (files cut off mid-upload are never named).
                    let spool = d.join("tmp");
                    files::blob::sweep_spool(&spool)?;
                    spool
                }
                None => std::env::temp_dir().join(format!(
                    "wsmschat-spool-{}",
                    hex::encode(util::random_bytes::<6>())
                )),
            };
            Ok((Arc::new(PgBlobs::connect(url).await?), spool))
        }
        (Database::Sqlite(_), FileStore::Postgres) => {
            anyhow::bail!("--files-store postgres needs a PostgreSQL database")
        }
        (db, _) => {
            let dir = match (dir, db) {
                (Some(d), _) => d,
                (None, Database::Sqlite(path)) => path
                    .parent()
                    .map(|p| p.join("files"))
                    .unwrap_or_else(|| PathBuf::from("files")),
                (None, Database::Postgres { .. }) => PathBuf::from("data/files"),
            };
            let blobs = FsBlobs::open(dir.clone())?;
            Ok((Arc::new(blobs), dir.join("tmp")))
        }
    }
}

/// Starts a server: binds, seeds the demo if asked, and serves in a task.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let core = build_core(&config).await?;
    let demo = match &config.demo {
        Some(opts) => demo::seed(&core, opts).await?,
        None => None,
    };
    core.reload_sites().await?;
    core.reconcile_queue().await?;
    core.spawn_queue_announcer();
    core.spawn_site_refresher();
    core.spawn_visitor_cleanup();
    core.spawn_auto_resolve();
    core.spawn_file_sweeper();
    core.spawn_webhook_dispatcher();
    core.spawn_mailer();
    if let Some(url) = &config.redis_url {
        core.join_cluster(url, &config.redis_namespace).await?;
    }
    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let smtp_addr = match config.core.email.as_ref().and_then(|e| e.smtp_listen) {
        Some(at) => {
            let l = TcpListener::bind(at)
                .await
                .map_err(|e| anyhow::anyhow!("--smtp-listen {at}: {e}"))?;
            let bound = l.local_addr()?;
            core.spawn_smtp_listener(l);
            tracing::info!(addr = %bound, "Accepting replies by email (SMTP)");
            Some(bound)
        }
        None => None,
    };
    let mut dirs = config.static_dirs.clone();
    let mut demo_addr = None;
    let demo_listener = match (dirs.demo.is_some(), dirs.demo_listen) {
        (true, Some(at)) => match TcpListener::bind(at).await {
            Ok(l) => Some(l),
            Err(error) => {
                // The demo is a convenience: a taken port must not stop the chat server.
                tracing::warn!(%error, %at, "Demo page not served: cannot listen (--demo-listen)");
                None
            }
        },
        _ => None,
    };
    if let (Some(src), Some(demo_listener)) = (dirs.demo.clone(), demo_listener) {
        let bound = demo_listener.local_addr()?;
        dirs.demo_port = bound.port();
        demo_addr = Some(bound);
        let mut stopping = core.stopping.subscribe();
        let app = http::demo_app(src, addr.port());
        tokio::spawn(async move {
            let stop = async move {
                let _ = stopping.wait_for(|s| *s).await;
            };
            if let Err(error) = axum::serve(demo_listener, app)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::warn!(%error, "Demo listener failed");
            }
        });
    }
    let app = http::app(core.clone(), dirs, &config.net);
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server::serve(
        listener,
        app,
        core.clone(),
        config.net.clone(),
        async move {
            let _ = rx.await;
        },
    ));
    tracing::info!(%addr, "wsmschat listening (gRPC, gRPC-web, HTTP)");
    Ok(Running {
        addr,
        core,
        demo,
        demo_addr,
        smtp_addr,
        shutdown: Some(tx),
        task,
    })
}
