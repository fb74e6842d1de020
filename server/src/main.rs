//! `wsmschat`: run the chat server, or manage sites, agents and API keys from the shell.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use wsmschat::v1;
use wsmschat_server::core::access::AdminGrant;
use wsmschat_server::core::{CoreConfig, FileStore};
use wsmschat_server::demo::DemoOptions;
use wsmschat_server::http::assets::embedded;
use wsmschat_server::http::{Source, StaticDirs};
use wsmschat_server::{Config, Database, build_core};

#[derive(Parser)]
#[command(
    name = "wsmschat",
    version,
    about = "Self-hosted live customer-support chat server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: gRPC + gRPC-web + widget + console on one port.
    Serve(Box<ServeArgs>),
    /// Manage sites (the database may be in use by a running server).
    Site {
        #[command(subcommand)]
        command: SiteCommand,
    },
    /// Manage agents.
    Agent {
        #[command(subcommand)]
        command: AgentCommand,
    },
    /// Manage API keys for backend services.
    ApiKey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
    /// Benchmarks: fill a new database with synthetic history (resolved conversations, one
    /// visitor each, one conversation much longer than the rest), as `wsmschat-bench history`
    /// does before measuring searches, history paging and resume.
    SeedHistory {
        #[command(flatten)]
        data: DataArgs,
        /// Conversations (and visitors).
        #[arg(long, default_value_t = 100_000)]
        conversations: u64,
        /// Messages in all.
        #[arg(long, default_value_t = 1_000_000)]
        messages: u64,
        /// Messages of the first conversation (`c_seed0`).
        #[arg(long, default_value_t = 10_000)]
        big: u64,
    },
}

#[derive(Args, Clone)]
struct DataArgs {
    /// Directory holding the SQLite database (wsmschat.db), when no database URL is given.
    #[arg(long, env = "WSMSCHAT_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// PostgreSQL URL (postgres://user@host:5432/db) for several nodes; default: SQLite in the data dir.
    #[arg(long, env = "WSMSCHAT_DATABASE_URL")]
    database_url: Option<String>,
    /// PostgreSQL connections per node (reads; the writer takes one per batch).
    #[arg(long, env = "WSMSCHAT_DATABASE_POOL_SIZE", default_value_t = 16)]
    database_pool_size: usize,
}

impl DataArgs {
    fn database(&self) -> anyhow::Result<Database> {
        match &self.database_url {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(Database::Postgres {
                    url: url.clone(),
                    pool_size: self.database_pool_size,
                })
            }
            Some(url) => match url.strip_prefix("sqlite://") {
                Some(path) => Ok(Database::Sqlite(path.into())),
                None => anyhow::bail!("database URL must start with postgres:// or sqlite://"),
            },
            None => Ok(Database::Sqlite(self.data_dir.join("wsmschat.db"))),
        }
    }
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Address and port to listen on.
    #[arg(long, env = "WSMSCHAT_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Do not create the demo site and admin on an empty database.
    #[arg(long, env = "WSMSCHAT_NO_DEMO")]
    no_demo: bool,
    /// Password of the demo admin (admin@example.com); random if unset. Only used on first start.
    #[arg(long, env = "WSMSCHAT_DEMO_PASSWORD")]
    demo_password: Option<String>,
    /// Largest message text in bytes.
    #[arg(long, env = "WSMSCHAT_MAX_MESSAGE_BYTES", default_value_t = wsmschat::limits::DEFAULT_MAX_MESSAGE_BYTES)]
    max_message_bytes: usize,
    /// Events per second per token (sends, typing, reads ...).
    #[arg(long, env = "WSMSCHAT_EVENTS_PER_SECOND", default_value_t = wsmschat::limits::DEFAULT_EVENTS_PER_SECOND)]
    events_per_second: u32,
    /// Burst of events per token.
    #[arg(long, env = "WSMSCHAT_EVENTS_BURST", default_value_t = wsmschat::limits::DEFAULT_EVENTS_BURST)]
    events_burst: u32,
    /// Events per second per client IP address.
    #[arg(long, env = "WSMSCHAT_IP_EVENTS_PER_SECOND", default_value_t = 500)]
    ip_events_per_second: u32,
    /// Open streams per token.
    #[arg(long, env = "WSMSCHAT_STREAMS_PER_TOKEN", default_value_t = wsmschat::limits::DEFAULT_STREAMS_PER_TOKEN)]
    streams_per_token: usize,
    /// Seconds between heartbeats on idle streams.
    #[arg(long, env = "WSMSCHAT_HEARTBEAT_SECS", default_value_t = 15)]
    heartbeat_secs: u64,
    /// Milliseconds a busy staff inbox stream gathers events into one write (0: none). The
    /// first event after a quiet spell is never held.
    #[arg(long, env = "WSMSCHAT_INBOX_COALESCE_MS", default_value_t = wsmschat_server::core::DEFAULT_INBOX_COALESCE_MS)]
    inbox_coalesce_ms: u64,
    /// Hours an agent session lasts.
    #[arg(long, env = "WSMSCHAT_AGENT_SESSION_HOURS", default_value_t = 12)]
    agent_session_hours: u64,
    /// Extra origins allowed by CORS (e.g. where the console is hosted), comma-separated.
    #[arg(long, env = "WSMSCHAT_ALLOW_ORIGINS", value_delimiter = ',')]
    allow_origin: Vec<String>,
    /// Directory of the built widget (served at /widget.js and /widget/) instead of the copy
    /// built into this binary. Default: `widget/dist` when it exists (a repository checkout).
    #[arg(long, env = "WSMSCHAT_WIDGET_DIR")]
    widget_dir: Option<PathBuf>,
    /// Directory of the built full browser SDK (served at /sdk/; the console imports it) instead
    /// of the embedded copy. Default: `sdk-wasm/dist` when it exists.
    #[arg(long, env = "WSMSCHAT_SDK_DIR")]
    sdk_dir: Option<PathBuf>,
    /// Directory of the agent console (served at /console/) instead of the embedded copy.
    /// Default: `console/dist` when it exists.
    #[arg(long, env = "WSMSCHAT_CONSOLE_DIR")]
    console_dir: Option<PathBuf>,
    /// Directory of the demo page (served on the demo listener) instead of the embedded copy.
    /// Default: `examples/embed` when it exists.
    #[arg(long, env = "WSMSCHAT_DEMO_DIR")]
    demo_dir: Option<PathBuf>,
    /// Where the demo page listens: its own origin, never the console's (default: the next port
    /// on the same address; port 0 with --listen port 0). `off`: no demo page.
    #[arg(long, env = "WSMSCHAT_DEMO_LISTEN")]
    demo_listen: Option<String>,
    /// Redis URL (redis://host:6379) for the cluster bus when several nodes share PostgreSQL.
    #[arg(long, env = "WSMSCHAT_REDIS_URL")]
    redis_url: Option<String>,
    /// Redis channel prefix; nodes of one cluster use the same one.
    #[arg(long, env = "WSMSCHAT_REDIS_NAMESPACE", default_value = "wsmschat")]
    redis_namespace: String,
    /// Open streams per client address, all tokens together (0: unlimited).
    #[arg(long, env = "WSMSCHAT_STREAMS_PER_IP", default_value_t = 1024)]
    streams_per_ip: usize,
    /// New visitors per minute per client address.
    #[arg(long, env = "WSMSCHAT_NEW_VISITORS_PER_MINUTE", default_value_t = 120)]
    new_visitors_per_minute: u32,
    /// New conversations per minute per client address.
    #[arg(
        long,
        env = "WSMSCHAT_NEW_CONVERSATIONS_PER_MINUTE",
        default_value_t = 60
    )]
    new_conversations_per_minute: u32,
    /// Custom-attribute writes and page reports (`SetAttributes`, `TrackPage`) per minute per
    /// caller.
    #[arg(
        long,
        env = "WSMSCHAT_CONTEXT_UPDATES_PER_MINUTE",
        default_value_t = 60
    )]
    context_updates_per_minute: u32,
    /// Unresolved conversations one visitor may have at once (0: no cap).
    #[arg(
        long,
        env = "WSMSCHAT_OPEN_CONVERSATIONS_PER_VISITOR",
        default_value_t = 5
    )]
    open_conversations_per_visitor: u32,
    /// New conversations one client address may start per hour on a site that sets no
    /// limit of its own (`Site.new_conversations_per_ip_hour`; 0: no cap).
    #[arg(
        long,
        env = "WSMSCHAT_NEW_CONVERSATIONS_PER_IP_HOUR",
        default_value_t = 30
    )]
    new_conversations_per_ip_hour: u32,
    /// Days after which anonymous visitors who never chatted are deleted (0: keep them).
    #[arg(long, env = "WSMSCHAT_IDLE_VISITOR_DAYS", default_value_t = 30)]
    idle_visitor_days: u64,
    /// Uploads per visitor, agent or API key per hour.
    #[arg(long, env = "WSMSCHAT_UPLOADS_PER_HOUR", default_value_t = 100)]
    uploads_per_hour: u32,
    /// Where uploaded files are kept (and spooled); default: `files/` in the data dir.
    #[arg(long, env = "WSMSCHAT_FILES_DIR")]
    files_dir: Option<PathBuf>,
    /// Which store keeps uploaded files: auto (the directory with SQLite, the database with
    /// PostgreSQL, so every node reads them), dir or postgres.
    #[arg(long, env = "WSMSCHAT_FILES_STORE", value_enum, default_value_t = FileStore::Auto)]
    files_store: FileStore,
    /// Deliver webhooks to loopback, private and link-local addresses too (refused by default:
    /// an admin could otherwise make the server probe its own network).
    #[arg(long, env = "WSMSCHAT_WEBHOOKS_ALLOW_PRIVATE")]
    webhooks_allow_private: bool,
    /// Waits between webhook attempts, comma-separated (e.g. "5s,5m,30m,2h,5h,10h,10h", the
    /// default); after the last the delivery fails.
    #[arg(long, env = "WSMSCHAT_WEBHOOK_RETRY", value_parser = parse_durations)]
    webhook_retry: Option<Durations>,
    /// Seconds one webhook attempt may take (connect, send, answer).
    #[arg(long, env = "WSMSCHAT_WEBHOOK_TIMEOUT_SECS", default_value_t = 10)]
    webhook_timeout_secs: u64,
    /// Send email through this SMTP server: smtp://user:pass@host:587?tls=required
    /// (STARTTLS), smtps://user:pass@host:465 (TLS) or smtp://host:25 (a local relay, plain).
    /// Without it the server sends no email and the widget promises none.
    #[arg(long, env = "WSMSCHAT_SMTP_URL")]
    smtp_url: Option<String>,
    /// The sender address of emails (e.g. support@shop.example); needed with --smtp-url.
    #[arg(long, env = "WSMSCHAT_MAIL_FROM")]
    mail_from: Option<String>,
    /// Waits between SMTP attempts, comma-separated (default "1m,5m,15m,1h,3h,6h,12h").
    #[arg(long, env = "WSMSCHAT_EMAIL_RETRY", value_parser = parse_durations)]
    email_retry: Option<Durations>,
    /// Accept replies to the emails by SMTP here (e.g. 0.0.0.0:25 behind the MX of the reply
    /// domain): a reply lands in its conversation as the visitor's message.
    #[arg(long, env = "WSMSCHAT_SMTP_LISTEN")]
    smtp_listen: Option<std::net::SocketAddr>,
    /// The domain of reply addresses (reply+TOKEN@domain); default: --mail-from's domain.
    #[arg(long, env = "WSMSCHAT_REPLY_DOMAIN")]
    reply_domain: Option<String>,
    /// The UTC hour after which the daily digest of waiting conversations is emailed to the
    /// team (24: none).
    #[arg(long, env = "WSMSCHAT_DIGEST_HOUR", default_value_t = 8)]
    digest_hour: u8,
    /// For tests: the length of one "minute" of the sites' email delay, ms.
    #[arg(long, hide = true, default_value_t = 60_000)]
    email_minute_ms: u64,
    /// The server's public base URL (e.g. https://chat.example.com): links in emails
    /// (unsubscribe) and absolute file links in webhook bodies. Needed with --smtp-url.
    #[arg(long, env = "WSMSCHAT_PUBLIC_URL")]
    public_url: Option<String>,
    /// Open connections at most (0: the file limit less a reserve).
    #[arg(long, env = "WSMSCHAT_MAX_CONNECTIONS", default_value_t = 0)]
    max_connections: usize,
    /// Open connections per client address (0: unlimited; trusted proxies are exempt).
    #[arg(long, env = "WSMSCHAT_MAX_CONNECTIONS_PER_IP", default_value_t = 256)]
    max_connections_per_ip: usize,
    /// Seconds a new connection may stay silent before it is closed.
    #[arg(long, env = "WSMSCHAT_FIRST_BYTE_TIMEOUT_SECS", default_value_t = 10)]
    first_byte_timeout_secs: u64,
    /// Proxies (addresses or CIDRs, comma-separated) whose X-Forwarded-For / Forwarded
    /// headers name the client for per-address limits. Without it those headers are ignored.
    #[arg(long, env = "WSMSCHAT_TRUSTED_PROXIES", value_delimiter = ',')]
    trusted_proxy: Vec<String>,
    /// Bearer token /metrics requires (default: /metrics is open; keep it off the internet).
    #[arg(long, env = "WSMSCHAT_METRICS_TOKEN")]
    metrics_token: Option<String>,
    /// Send Strict-Transport-Security (set it when clients reach the server over HTTPS).
    #[arg(long, env = "WSMSCHAT_HSTS")]
    hsts: bool,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "WSMSCHAT_LOG_JSON")]
    log_json: bool,
}

/// `10.0.0.1` or `10.0.0.0/8` (or IPv6) as a network.
fn parse_net(s: &str) -> anyhow::Result<ipnet::IpNet> {
    let s = s.trim();
    if let Ok(net) = s.parse() {
        return Ok(net);
    }
    let ip: std::net::IpAddr = s
        .parse()
        .map_err(|_| anyhow::anyhow!("--trusted-proxy {s:?}: not an address or CIDR"))?;
    Ok(ipnet::IpNet::from(ip))
}

#[derive(Subcommand)]
enum SiteCommand {
    /// Create a site and print its script tag.
    Create {
        #[command(flatten)]
        data: DataArgs,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Allowed origin (repeat), e.g. https://shop.example.com or http://localhost:*.
        #[arg(long = "origin")]
        origins: Vec<String>,
        /// Topic (repeat); default: Product, Order, Delivery, Payment, Other.
        #[arg(long = "topic")]
        topics: Vec<String>,
        /// Refuse visitors without a verified identity.
        #[arg(long)]
        identity_required: bool,
        /// Public URL of this server, for the printed script tag.
        #[arg(long, default_value = "http://localhost:8080")]
        public_url: String,
    },
    /// List sites.
    List {
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Subcommand)]
enum AgentCommand {
    /// Create an agent.
    Create {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// At least 8 characters (or env WSMSCHAT_AGENT_PASSWORD).
        #[arg(long, env = "WSMSCHAT_AGENT_PASSWORD")]
        password: String,
        /// Make the agent an admin.
        #[arg(long)]
        admin: bool,
        /// Topic the agent answers (repeat); none = all topics.
        #[arg(long = "topic")]
        topics: Vec<String>,
        /// Most open conversations at once.
        #[arg(long, default_value_t = 5)]
        capacity: u32,
        /// A site id this agent works for (repeat); none: every site.
        #[arg(long = "site")]
        sites: Vec<String>,
    },
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Create an API key and print its secret (shown once).
    Create {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        name: String,
        /// Scope (repeat): chat, admin.
        #[arg(long = "scope", default_value = "chat")]
        scopes: Vec<String>,
        /// Limit the key to a site id (repeat); none: every site.
        #[arg(long = "site")]
        sites: Vec<String>,
    },
}

fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a terminal: a log file or journal gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Where one static tree is served from: the folder named by its flag (which must exist), else
/// the repository's build output when the server runs from a checkout (so `scripts/build-web`
/// takes effect without a rebuild), else the copy built into the binary; None (with a warning)
/// when there is none of those.
fn static_source(
    tree: &str,
    flag: Option<PathBuf>,
    checkout: &str,
) -> anyhow::Result<Option<Source>> {
    if let Some(dir) = flag.filter(|d| !d.as_os_str().is_empty()) {
        anyhow::ensure!(
            dir.is_dir(),
            "the {tree} folder {} does not exist (unset the flag to use the copy built into this binary)",
            dir.display()
        );
        return Ok(Some(Source::Dir(dir)));
    }
    let checkout = PathBuf::from(checkout);
    if checkout.is_dir() && checkout.read_dir()?.next().is_some() {
        return Ok(Some(Source::Dir(checkout)));
    }
    Ok(embedded(tree).then_some(Source::Embedded))
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logs(args.log_json);
    let config = Config {
        listen: args.listen,
        database: args.data.database()?,
        core: CoreConfig {
            max_message_bytes: args.max_message_bytes,
            events_per_second: args.events_per_second,
            events_burst: args.events_burst.max(args.events_per_second),
            ip_events_per_second: args.ip_events_per_second,
            ip_events_burst: args.ip_events_per_second.saturating_mul(2),
            streams_per_token: args.streams_per_token,
            heartbeat: Duration::from_secs(args.heartbeat_secs.max(1)),
            inbox_coalesce: Duration::from_millis(args.inbox_coalesce_ms.min(1_000)),
            agent_session_ttl: Duration::from_secs(args.agent_session_hours.max(1) * 3600),
            extra_origins: args.allow_origin,
            streams_per_ip: args.streams_per_ip,
            new_visitors_per_minute: args.new_visitors_per_minute,
            new_conversations_per_minute: args.new_conversations_per_minute,
            context_updates_per_minute: args.context_updates_per_minute,
            open_conversations_per_visitor: args.open_conversations_per_visitor,
            new_conversations_per_ip_hour: args.new_conversations_per_ip_hour,
            idle_visitor_retention: (args.idle_visitor_days > 0)
                .then(|| Duration::from_secs(args.idle_visitor_days * 86_400)),
            uploads_per_hour: args.uploads_per_hour,
            files_dir: args.files_dir.clone().or_else(|| {
                args.data
                    .database_url
                    .is_none()
                    .then(|| args.data.data_dir.join("files"))
            }),
            files_store: args.files_store,
            webhooks: wsmschat_server::core::webhooks::WebhookConfig {
                allow_private: args.webhooks_allow_private,
                retry: args
                    .webhook_retry
                    .clone()
                    .map(|d| d.0)
                    .unwrap_or_else(|| wsmschat_server::core::webhooks::RETRY_SCHEDULE.to_vec()),
                timeout: Duration::from_secs(args.webhook_timeout_secs.clamp(1, 120)),
                ..Default::default()
            },
            email: match (&args.smtp_url, &args.mail_from) {
                (Some(url), Some(from)) => {
                    let mut e =
                        wsmschat_server::core::email::EmailConfig::new(url.clone(), from.clone());
                    if let Some(r) = &args.email_retry {
                        e.retry = r.0.clone();
                    }
                    e.minute = Duration::from_millis(args.email_minute_ms.max(1));
                    Some(e)
                }
                (Some(_), None) => {
                    anyhow::bail!("--smtp-url needs --mail-from (the sender address)")
                }
                _ => None,
            },
            public_url: args
                .public_url
                .clone()
                .map(|u| u.trim_end_matches('/').to_owned()),
            ..CoreConfig::default()
        },
        net: wsmschat_server::server::NetConfig {
            max_connections: args.max_connections,
            max_connections_per_ip: args.max_connections_per_ip,
            first_byte_timeout: Duration::from_secs(args.first_byte_timeout_secs.max(1)),
            trusted_proxies: args
                .trusted_proxy
                .iter()
                .filter(|s| !s.trim().is_empty())
                .map(|s| parse_net(s))
                .collect::<anyhow::Result<_>>()?,
            metrics_token: args.metrics_token.filter(|t| !t.is_empty()),
            hsts: args.hsts,
        },
        static_dirs: StaticDirs {
            widget: static_source("widget", args.widget_dir, "widget/dist")?,
            console: static_source("console", args.console_dir, "console/dist")?,
            sdk: static_source("sdk", args.sdk_dir, "sdk-wasm/dist")?,
            demo: static_source("demo", args.demo_dir, "examples/embed")?,
            demo_listen: match args.demo_listen.as_deref() {
                Some("off") => None,
                Some(at) => Some(at.parse().map_err(|e| {
                    anyhow::anyhow!("--demo-listen {at:?}: {e} (an address:port or `off`)")
                })?),
                None => {
                    let mut at = args.listen;
                    if at.port() != 0 {
                        at.set_port(at.port().checked_add(1).unwrap_or(0));
                    }
                    Some(at)
                }
            },
            demo_port: 0,
        },
        demo: (!args.no_demo).then(|| DemoOptions {
            admin_password: args.demo_password,
            ..Default::default()
        }),
        redis_url: args.redis_url,
        redis_namespace: args.redis_namespace,
    };
    let statics = config.static_dirs.clone();
    for (tree, src, what) in [
        ("widget", &statics.widget, "/widget.js"),
        ("console", &statics.console, "/console/"),
        ("sdk", &statics.sdk, "/sdk/"),
        ("demo", &statics.demo, "the demo page"),
    ] {
        match src {
            Some(Source::Dir(dir)) => {
                tracing::info!(tree, dir = %dir.display(), "Static files from a folder")
            }
            Some(Source::Embedded) => {
                let (files, bytes) = wsmschat_server::http::assets::embedded_size(tree);
                tracing::info!(tree, files, bytes, "Static files built into the binary")
            }
            None => tracing::warn!(
                tree,
                "Not served: {what} (this binary was built without it and no folder was given; \
                 run scripts/build-web before building, or pass --{tree}-dir)"
            ),
        }
    }
    let mut running = wsmschat_server::start(config).await?;
    let base = format!("http://localhost:{}", running.addr.port());
    let demo_page = match running.demo_addr {
        Some(at) => format!("http://localhost:{}/", at.port()),
        None => "(not served)".into(),
    };
    if let Some(demo) = &running.demo {
        let missing = |src: &Option<Source>| {
            if src.is_none() {
                "  (NOT SERVED: see the warning above)"
            } else {
                ""
            }
        };
        println!(
            "\nFirst start: created the demo site {:?} and an admin.\n  \
             Console:   {base}/console/  (login {} / {}){}\n  \
             Demo page: {demo_page}{}\n  \
             Embed:     <script src=\"{base}/widget.js\" data-site=\"{}\" async></script>{}\n",
            demo.site.name,
            demo.admin_email,
            demo.admin_password,
            missing(&statics.console),
            missing(&statics.demo),
            demo.site.site_key,
            missing(&statics.widget),
        );
    }
    if let Some(at) = running.demo_addr {
        println!("wsmschat demo page on http://localhost:{}/", at.port());
    }
    // One stable line for scripts and tests that start the server on port 0.
    println!("wsmschat listening on {base}");
    let stop = running.take_shutdown();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("Signal received");
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
    });
    running.wait().await?;
    tracing::info!("Stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

async fn open(data: &DataArgs) -> anyhow::Result<std::sync::Arc<wsmschat_server::core::Core>> {
    let config = Config {
        listen: "127.0.0.1:0".parse()?,
        database: data.database()?,
        core: CoreConfig::default(),
        static_dirs: StaticDirs::default(),
        demo: None,
        redis_url: None,
        redis_namespace: String::new(),
        net: Default::default(),
    };
    build_core(&config).await
}

fn script_tag(public_url: &str, site_key: &str) -> String {
    format!(
        "<script src=\"{}/widget.js\" data-site=\"{site_key}\" async></script>",
        public_url.trim_end_matches('/')
    )
}

#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(*args).await,
        Command::Site { command } => match command {
            SiteCommand::Create {
                data,
                name,
                origins,
                topics,
                identity_required,
                public_url,
            } => {
                let core = open(&data).await?;
                let site = core
                    .create_site(
                        AdminGrant::operator(),
                        v1::Site {
                            name,
                            allowed_origins: origins,
                            topics,
                            identity_required,
                            ..Default::default()
                        },
                        None,
                    )
                    .await?;
                println!("site id:         {}", site.id);
                println!("site key:        {}", site.site_key);
                println!("identity secret: {}", site.identity_secret);
                println!(
                    "script tag:      {}",
                    script_tag(&public_url, &site.site_key)
                );
                Ok(())
            }
            SiteCommand::List { data } => {
                let core = open(&data).await?;
                for s in core.list_sites(AdminGrant::operator()).await? {
                    println!(
                        "{}\t{}\t{}\torigins={}\ttopics={}",
                        s.id,
                        s.site_key,
                        s.name,
                        s.allowed_origins.join(","),
                        s.topics.join(",")
                    );
                }
                Ok(())
            }
        },
        Command::Agent { command } => match command {
            AgentCommand::Create {
                data,
                email,
                name,
                password,
                admin,
                topics,
                capacity,
                sites,
            } => {
                let core = open(&data).await?;
                let agent = core
                    .create_agent(
                        AdminGrant::operator(),
                        v1::Agent {
                            email,
                            name,
                            role: if admin {
                                v1::AgentRole::Admin
                            } else {
                                v1::AgentRole::Agent
                            } as i32,
                            topics,
                            capacity,
                            site_ids: sites,
                            ..Default::default()
                        },
                        password,
                    )
                    .await?;
                println!("agent id: {} ({})", agent.id, agent.email);
                Ok(())
            }
        },
        Command::ApiKey { command } => match command {
            ApiKeyCommand::Create {
                data,
                name,
                scopes,
                sites,
            } => {
                let scopes = scopes
                    .iter()
                    .map(|s| match s.to_ascii_lowercase().as_str() {
                        "chat" => Ok(v1::ApiKeyScope::Chat as i32),
                        "admin" => Ok(v1::ApiKeyScope::Admin as i32),
                        other => Err(anyhow::anyhow!("unknown scope {other:?} (chat, admin)")),
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let core = open(&data).await?;
                let (key, secret) = core
                    .create_api_key(AdminGrant::operator(), &name, scopes, sites)
                    .await?;
                println!("api key id: {}", key.id);
                println!("secret (shown once): {secret}");
                Ok(())
            }
        },
        Command::SeedHistory {
            data,
            conversations,
            messages,
            big,
        } => {
            let core = open(&data).await?;
            let spec = wsmschat_server::store::seed::HistorySpec {
                conversations,
                messages,
                big,
                now_ms: wsmschat_server::util::now_ms(),
            };
            let started = std::time::Instant::now();
            let site = core
                .seed_history(AdminGrant::operator(), spec, 1_000, |n| {
                    if n % 10_000 == 0 || n == conversations {
                        eprintln!(
                            "{n} conversations ({:.1} s)",
                            started.elapsed().as_secs_f64()
                        );
                    }
                })
                .await?;
            core.close();
            println!(
                "seeded site {site}: {conversations} conversations, {messages} messages in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
    }
}

/// A list of waits ("500ms,5s,5m,2h").
#[derive(Debug, Clone)]
struct Durations(Vec<Duration>);

fn parse_durations(s: &str) -> Result<Durations, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let digits = part.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("{part:?}: a number with ms, s, m or h"))?;
        let d = match &part[digits.len()..] {
            "ms" => Duration::from_millis(n),
            "s" | "" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            other => return Err(format!("{part:?}: unknown unit {other:?} (ms, s, m, h)")),
        };
        out.push(d);
    }
    if out.len() > 20 {
        return Err("at most 20 retries".into());
    }
    Ok(Durations(out))
}
