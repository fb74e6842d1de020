//! Shared setup of the fuzz targets that drive the real server: one tokio current-thread
//! runtime and one core (SQLite in a temporary directory, demo site and admin seeded), built
//! once per fuzzing process, plus the principals and ids the targets act with.
//!
//! The database lives in `$WSMSCHAT_FUZZ_DIR`, else under `/dev/shm` when it exists (tmpfs: the
//! store's fsync per commit costs nothing there), else under the system temp directory. It is
//! removed when the process exits normally; directories of dead fuzzing processes are swept
//! on the next start.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use tonic::Request;
use wsmschat::v1;
use wsmschat::v1::client_event::Event as Ce;
use wsmschat::v1::session_service_server::SessionService;
use wsmschat_server::auth::Principal;
use wsmschat_server::core::{Core, CoreConfig};
use wsmschat_server::demo::DemoOptions;
use wsmschat_server::rpc::session::SessionApi;
use wsmschat_server::server::NetConfig;
use wsmschat_server::{Config, Database};

/// Admin password of the seeded demo admin.
pub const ADMIN_PASSWORD: &str = "fuzz-admin-password";
/// A conversation id (or assignee agent id) of "@" in a fuzzed event is replaced by the seeded
/// conversation's (admin's) id, so the fuzzer reaches the code behind "the conversation exists
/// and I may see it" without guessing random ids.
pub const PLACEHOLDER: &str = "@";

/// The process-wide fuzzing fixture.
pub struct Fixture {
    pub rt: tokio::runtime::Runtime,
    pub core: Arc<Core>,
    /// The whole HTTP application (`wsmschat_server::http::app`), built once.
    pub app: axum::Router,
    /// A demo-site visitor and its bearer token.
    pub visitor: Principal,
    pub visitor_token: String,
    /// The seeded admin agent.
    pub agent: Principal,
    /// A conversation the visitor started (assigned to nobody at first).
    pub conversation_id: String,
    /// Where the database lives (removed at exit).
    pub dir: PathBuf,
}

static FIXTURE: OnceLock<Fixture> = OnceLock::new();

/// The fixture, built on first use.
pub fn fixture() -> &'static Fixture {
    FIXTURE.get_or_init(build)
}

/// Limits high enough that the fuzzer is never rate limited (a rate limit error would hide
/// every code path behind it); otherwise the defaults.
fn core_config() -> CoreConfig {
    CoreConfig {
        events_per_second: 1_000_000_000,
        events_burst: 1_000_000_000,
        ip_events_per_second: 1_000_000_000,
        ip_events_burst: 1_000_000_000,
        new_visitors_per_minute: 1_000_000_000,
        new_conversations_per_minute: 1_000_000_000,
        open_conversations_per_visitor: 0,
        new_conversations_per_ip_hour: 0,
        auto_resolve_every: std::time::Duration::from_millis(200),
        hash_concurrency: 1,
        // No background sweeps racing the fuzzer's own calls.
        idle_visitor_retention: None,
        ..CoreConfig::default()
    }
}

fn base_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WSMSCHAT_FUZZ_DIR") {
        return PathBuf::from(dir);
    }
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    }
}

/// Removes `wsmschat-fuzz-<pid>` directories whose process is gone (crashed runs).
fn sweep_stale(base: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("wsmschat-fuzz-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

extern "C" fn remove_dir_at_exit() {
    if let Some(f) = FIXTURE.get() {
        let _ = std::fs::remove_dir_all(&f.dir);
    }
}

fn build() -> Fixture {
    let base = base_dir();
    sweep_stale(&base);
    let dir = base.join(format!("wsmschat-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the fuzz database directory");
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database: Database::Sqlite(dir.join("wsmschat.db")),
        core: core_config(),
        static_dirs: Default::default(),
        demo: Some(DemoOptions {
            admin_password: Some(ADMIN_PASSWORD.into()),
            ..Default::default()
        }),
        redis_url: None,
        redis_namespace: String::new(),
        net: NetConfig::default(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (core, app, visitor, visitor_token, agent, conversation_id) = rt.block_on(async {
        let core = wsmschat_server::build_core(&config)
            .await
            .expect("build the core");
        let demo = config.demo.as_ref().unwrap();
        wsmschat_server::demo::seed(&core, demo)
            .await
            .expect("seed the demo site");
        core.reload_sites().await.expect("load the sites");
        // `app` spawns the health reporter: it needs the runtime.
        let app = wsmschat_server::http::app(
            core.clone(),
            wsmschat_server::http::StaticDirs::default(),
            &config.net,
        );
        // A visitor exactly as a browser widget gets one.
        let session = SessionApi { core: core.clone() };
        let started = session
            .start_visitor_session(Request::new(v1::StartVisitorSessionRequest {
                site_key: demo.site_key.clone(),
                name: "Fuzz Visitor".into(),
                ..Default::default()
            }))
            .await
            .expect("start a visitor session")
            .into_inner();
        let visitor = core
            .authenticate(&started.visitor_token)
            .await
            .expect("the visitor token resolves");
        let login = core
            .login(&demo.admin_email, ADMIN_PASSWORD.into(), None)
            .await
            .expect("the seeded admin logs in");
        let agent = core
            .authenticate(&login.token)
            .await
            .expect("the admin token resolves");
        let ack = core
            .publish(
                &visitor,
                None,
                v1::ClientEvent {
                    request_id: "seed".into(),
                    event: Some(Ce::SendMessage(v1::SendMessage {
                        conversation_id: String::new(),
                        topic: wsmschat_server::core::DEFAULT_TOPICS[0].into(),
                        client_msg_id: "seed-1".into(),
                        text: "hello from the fuzzer".into(),
                        kind: 0,
                    })),
                },
                None,
            )
            .await
            .expect("start the seed conversation");
        (
            core,
            app,
            visitor,
            started.visitor_token,
            agent,
            ack.conversation_id,
        )
    });
    // SAFETY: registers a plain `extern "C"` function with no captured state.
    unsafe {
        libc::atexit(remove_dir_at_exit);
    }
    Fixture {
        rt,
        core,
        app,
        visitor,
        visitor_token,
        agent,
        conversation_id,
        dir,
    }
}

/// Replaces a conversation id of "@" by the seeded conversation's id, and an agent id of "@"
/// (assign) by the seeded admin's.
pub fn resolve_placeholders(ev: &mut v1::ClientEvent, conversation_id: &str, agent_id: &str) {
    let slot = match &mut ev.event {
        Some(Ce::SendMessage(e)) => &mut e.conversation_id,
        Some(Ce::Typing(e)) => &mut e.conversation_id,
        Some(Ce::MarkRead(e)) => &mut e.conversation_id,
        Some(Ce::Join(e)) => &mut e.conversation_id,
        Some(Ce::Assign(e)) => {
            if e.agent_id == PLACEHOLDER {
                e.agent_id = agent_id.to_owned();
            }
            &mut e.conversation_id
        }
        Some(Ce::Resolve(e)) => &mut e.conversation_id,
        Some(Ce::Reopen(e)) => &mut e.conversation_id,
        Some(Ce::Rate(e)) => &mut e.conversation_id,
        Some(Ce::Watch(e)) => match &mut e.cursor {
            Some(c) => &mut c.conversation_id,
            None => return,
        },
        Some(Ce::SetPresence(_)) | None => return,
    };
    if slot == PLACEHOLDER {
        *slot = conversation_id.to_owned();
    }
}

impl Fixture {
    /// The seeded admin's agent id.
    pub fn agent_id(&self) -> &str {
        match &self.agent {
            Principal::Agent { agent } => &agent.id,
            _ => unreachable!("the fixture's agent is an agent"),
        }
    }
}
