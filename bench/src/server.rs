//! The server under test: one given by URL (and optionally its pid), or a fresh one this tool
//! starts from a `wsmschat` binary in a temporary data directory, with benchmark limits.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};

/// Limits raised so that the load, not the abuse limits, is measured.
pub const BENCH_ENV: &[(&str, &str)] = &[
    ("WSMSCHAT_EVENTS_PER_SECOND", "1000000"),
    ("WSMSCHAT_EVENTS_BURST", "1000000"),
    ("WSMSCHAT_IP_EVENTS_PER_SECOND", "100000000"),
    ("WSMSCHAT_STREAMS_PER_TOKEN", "1000000"),
    // Every simulated client comes from 127.0.0.1: no per-address caps, and no demo listener.
    ("WSMSCHAT_STREAMS_PER_IP", "0"),
    ("WSMSCHAT_MAX_CONNECTIONS_PER_IP", "0"),
    ("WSMSCHAT_DEMO_LISTEN", "off"),
    ("WSMSCHAT_NEW_VISITORS_PER_MINUTE", "100000000"),
    ("WSMSCHAT_NEW_CONVERSATIONS_PER_MINUTE", "100000000"),
    ("WSMSCHAT_NEW_CONVERSATIONS_PER_IP_HOUR", "0"),
    ("WSMSCHAT_OPEN_CONVERSATIONS_PER_VISITOR", "0"),
    ("WSMSCHAT_UPLOADS_PER_HOUR", "1000000"),
    ("RUST_LOG", "warn"),
];

/// Creates an API key with the server's CLI on its data directory; the secret.
pub fn create_api_key(
    bin: &Path,
    dir: &Path,
    env: &[(String, String)],
    name: &str,
    scope: &str,
) -> anyhow::Result<String> {
    let out = Command::new(bin)
        .envs(env.iter().cloned())
        .args([
            "api-key",
            "create",
            "--name",
            name,
            "--scope",
            scope,
            "--data-dir",
        ])
        .arg(dir)
        .output()?;
    if !out.status.success() {
        bail!(
            "api-key create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("secret (shown once):"))
        .map(|s| s.trim().to_owned())
        .ok_or_else(|| anyhow!("no secret in api-key create output: {stdout}"))
}

pub struct Server {
    pub url: String,
    pub pid: Option<u32>,
    pub api_key: Option<String>,
    child: Option<Child>,
    dir: Option<PathBuf>,
}

impl Server {
    pub fn external(url: String, pid: Option<u32>, api_key: Option<String>) -> Self {
        Self {
            url,
            pid,
            api_key,
            child: None,
            dir: None,
        }
    }

    /// Starts `bin serve` on 127.0.0.1 (any port) in a new temporary directory, then creates a
    /// chat-scope API key for the agents.
    pub fn spawn(
        bin: &Path,
        extra_env: &[(String, String)],
        taskset: Option<&str>,
    ) -> anyhow::Result<Self> {
        Self::spawn_prepared(bin, extra_env, taskset, |_| Ok(()))
    }

    /// [`Server::spawn`], with `prepare` run on the new data directory before the server
    /// starts (e.g. `wsmschat seed-history` filling its database).
    pub fn spawn_prepared(
        bin: &Path,
        extra_env: &[(String, String)],
        taskset: Option<&str>,
        prepare: impl FnOnce(&Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "wsmschat-bench-{}-{}",
            std::process::id(),
            nanos % 1_000_000_000
        ));
        std::fs::create_dir_all(&dir)?;
        if let Err(e) = prepare(&dir) {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        let log = std::fs::File::create(dir.join("server.log"))?;
        let mut cmd = match taskset {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpus).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&dir)
            .arg("--demo-password")
            .arg("bench-password-1")
            // No demo listener (one port less; the static apps are never asked for here).
            .arg("--demo-listen")
            .arg("off")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        for (k, v) in BENCH_ENV {
            cmd.env(k, v);
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id();
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("wsmschat listening on ") {
                    let _ = tx.send(rest.trim().to_owned());
                }
            }
        });
        let mut server = Self {
            url: String::new(),
            pid: Some(pid),
            api_key: None,
            child: Some(child),
            dir: Some(dir.clone()),
        };
        let base = rx.recv_timeout(Duration::from_secs(60)).map_err(|_| {
            anyhow!(
                "the server did not start (see {})",
                dir.join("server.log").display()
            )
        })?;
        let port = base
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok())
            .ok_or_else(|| anyhow!("unexpected listening line {base:?}"))?;
        server.url = format!("http://127.0.0.1:{port}");
        server.api_key = Some(create_api_key(bin, &dir, extra_env, "bench", "chat")?);
        // When started under taskset, the pid to watch is the server itself (exec replaces taskset).
        Ok(server)
    }

    /// The data directory of a server this tool started.
    pub fn data_dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM: graceful stop; SIGKILL if it lingers.
            // SAFETY: kill(2) on our own child's pid.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            for _ in 0..100 {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(dir) = self.dir.take() {
            if std::env::var_os("WSMSCHAT_BENCH_KEEP").is_none() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
