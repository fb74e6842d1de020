//! The listener: accepts TCP connections and serves the app on each with HTTP/1.1 or HTTP/2
//! (detected per connection), until shutdown.
//!
//! Shutdown order: stop accepting; close every stream (clients see a clean end and reconnect
//! elsewhere); let connections finish in-flight calls (bounded); then the caller closes the
//! store, which commits the last batch.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use futures_util::FutureExt;
use futures_util::future::Either;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::core::Core;

/// The TCP peer of a request (the client, after trusted proxies), put into request
/// extensions by the accept loop; handlers read it for per-address limits.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// How long in-flight calls get to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections over `max_connections` still taken (health checks of a full server): each is
/// served for `RESERVE_DEADLINE` at most.
const RESERVE: usize = 32;
const RESERVE_DEADLINE: Duration = Duration::from_secs(5);

/// Connection limits and the trusted proxies.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Open connections at most (0: the process's file limit less a reserve for the store).
    pub max_connections: usize,
    /// Open connections per client address at most (0: unlimited). Not applied to trusted
    /// proxies (their clients are limited by their forwarded address in the core).
    pub max_connections_per_ip: usize,
    /// A connection that sends no byte within this time is closed.
    pub first_byte_timeout: Duration,
    /// Peers whose `X-Forwarded-For` / `Forwarded` headers name the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `/metrics` needs `Authorization: Bearer <this>` when set.
    pub metrics_token: Option<String>,
    /// Send `Strict-Transport-Security` (the server is reached over TLS, via a proxy).
    pub hsts: bool,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            max_connections: 0,
            max_connections_per_ip: 256,
            first_byte_timeout: Duration::from_secs(10),
            trusted_proxies: Vec::new(),
            metrics_token: None,
            hsts: false,
        }
    }
}

/// The soft limit on open files of this process (Linux), if it can be read.
pub fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

impl NetConfig {
    /// The connection cap in force.
    pub fn connection_cap(&self) -> usize {
        if self.max_connections != 0 {
            return self.max_connections;
        }
        // Files the rest of the server needs: the store, its WAL and readers, a PostgreSQL
        // pool, Redis, the demo listener, logs; and the health-check reserve.
        let files = open_files_limit().unwrap_or(1024);
        files.saturating_sub(256 + RESERVE).max(64)
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|n| n.contains(&ip))
    }

    /// The client's address: the peer, or, when the peer is a trusted proxy, the nearest
    /// untrusted address its forwarding headers name (right to left; spoofed entries further
    /// left are never reached).
    pub fn client_ip(&self, peer: IpAddr, headers: &http::HeaderMap) -> IpAddr {
        if !self.trusted(peer) {
            return peer;
        }
        let mut hops: Vec<Option<IpAddr>> = Vec::new();
        for v in headers.get_all("x-forwarded-for") {
            let Ok(v) = v.to_str() else { return peer };
            hops.extend(v.split(',').map(|h| parse_hop(h.trim())));
        }
        if hops.is_empty() {
            for v in headers.get_all(http::header::FORWARDED) {
                let Ok(v) = v.to_str() else { return peer };
                for element in v.split(',') {
                    let for_ = element.split(';').find_map(|pair| {
                        let (k, v) = pair.trim().split_once('=')?;
                        k.eq_ignore_ascii_case("for")
                            .then(|| v.trim().trim_matches('"'))
                    });
                    if let Some(f) = for_ {
                        hops.push(parse_hop(f));
                    }
                }
            }
        }
        for hop in hops.into_iter().rev() {
            match hop {
                Some(ip) if self.trusted(ip) => continue,
                Some(ip) => return ip,
                // Unparsable ("unknown", garbage): stop at the last trusted hop.
                None => return peer,
            }
        }
        peer
    }
}

/// One forwarding hop: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]:443`.
fn parse_hop(h: &str) -> Option<IpAddr> {
    if let Ok(ip) = h.parse() {
        return Some(ip);
    }
    if let Ok(sa) = h.parse::<std::net::SocketAddr>() {
        return Some(sa.ip());
    }
    h.strip_prefix('[')?.split(']').next()?.parse().ok()
}

/// Open connections, in all and per address.
#[derive(Default)]
struct Open {
    total: usize,
    per_ip: HashMap<String, usize>,
}

/// Admission of new connections: the global cap (past it, a short-lived reserve so a full
/// server still answers its health checks) and the per-address cap (0: none).
struct Admission {
    cap: usize,
    open: Mutex<Open>,
    /// `wsmschat_connections`: up while a slot lives.
    gauge: Gauge<i64, AtomicI64>,
}

/// One admitted connection, counted until dropped.
struct Slot {
    admission: Arc<Admission>,
    ip_key: String,
    /// Admitted into the reserve: served for `RESERVE_DEADLINE` at most.
    reserve: bool,
}

impl Admission {
    fn admit(self: &Arc<Self>, ip_key: String, per_ip_cap: usize) -> Option<Slot> {
        let mut o = self.open.lock().unwrap();
        let mine = o.per_ip.get(&ip_key).copied().unwrap_or(0);
        if o.total >= self.cap + RESERVE || (per_ip_cap != 0 && mine >= per_ip_cap) {
            return None;
        }
        o.total += 1;
        *o.per_ip.entry(ip_key.clone()).or_insert(0) += 1;
        self.gauge.inc();
        Some(Slot {
            admission: self.clone(),
            reserve: o.total > self.cap,
            ip_key,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.admission.gauge.dec();
        let mut o = self.admission.open.lock().unwrap();
        o.total -= 1;
        if let Some(n) = o.per_ip.get_mut(&self.ip_key) {
            *n -= 1;
            if *n == 0 {
                o.per_ip.remove(&self.ip_key);
            }
        }
    }
}

/// Runs one connection to its end (a reserve slot's for at most [`RESERVE_DEADLINE`]), then
/// gives its slot back. Combinators, not an async block: a block that awaits a future moved
/// into it stores that future twice (rust-lang/rust#62958), and a connection is the largest
/// thing an idle stream holds.
fn drive<E: std::fmt::Display>(
    conn: impl Future<Output = Result<(), E>> + Send,
    slot: Slot,
    peer: std::net::SocketAddr,
) -> impl Future<Output = ()> + Send {
    let conn = match slot.reserve {
        true => {
            Either::Left(tokio::time::timeout(RESERVE_DEADLINE, conn).map(|r| r.unwrap_or(Ok(()))))
        }
        false => Either::Right(conn),
    };
    conn.map(move |result| {
        if let Err(error) = result {
            tracing::debug!(%error, %peer, "Connection ended with an error");
        }
        drop(slot);
    })
}

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    core: Arc<Core>,
    net: NetConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        .timer(TokioTimer::new())
        // Many small DATA frames per stream: a large connection window keeps a busy
        // multiplexed connection from stalling (FACTS: h2 too_many_data_frames).
        .initial_connection_window_size(8 * 1024 * 1024)
        .initial_stream_window_size(1024 * 1024)
        .max_concurrent_streams(1000)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    // The same HTTP/1 settings for a connection whose first bytes could not tell (see below).
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .max_buf_size(8 * 1024);
    // HTTP/1 connections skip protocol detection (see the accept loop), so they get their own
    // builder; nothing served here upgrades a connection.
    let mut http1 = http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .keep_alive(true)
        // hyper's minimum (its buffers are 3.5 KB of an idle browser stream: docs/performance.md).
        .max_buf_size(8 * 1024);
    let graceful = GracefulShutdown::new();
    let admission = Arc::new(Admission {
        cap: net.connection_cap(),
        open: Mutex::default(),
        gauge: core.metrics.connections.clone(),
    });
    let net = Arc::new(net);
    tracing::info!(max_connections = admission.cap, "Connection limit");
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(error) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(%error, "Accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let per_ip_cap = if net.trusted(peer.ip()) { 0 } else { net.max_connections_per_ip };
                let Some(slot) = admission.admit(crate::core::limits::ip_key(peer.ip()), per_ip_cap) else {
                    core.metrics.connections_refused.inc();
                    continue; // the socket is closed as it drops
                };
                let _ = stream.set_nodelay(true);
                let net2 = net.clone();
                let svc = app.clone().map_request(move |mut req: http::Request<Incoming>| {
                    let ip = net2.client_ip(peer.ip(), req.headers());
                    req.extensions_mut().insert(PeerAddr(std::net::SocketAddr::new(ip, peer.port())));
                    req
                });
                let metrics = core.metrics.clone();
                let first_byte = net.first_byte_timeout;
                let watcher = graceful.watcher();
                let builder = builder.clone();
                let http1 = http1.clone();
                tokio::spawn(async move {
                    // hyper waits for the first bytes (protocol detection) with no deadline: a
                    // socket that sends nothing is closed here instead of holding a file.
                    let mut probe = [0u8; 4];
                    let n = match tokio::time::timeout(first_byte, stream.peek(&mut probe)).await {
                        Ok(Ok(n)) if n > 0 => n,
                        _ => {
                            metrics.connections_idle_closed.inc();
                            return;
                        }
                    };
                    let io = TokioIo::new(stream);
                    let svc = TowerToHyperService::new(svc);
                    // The connection runs in a task of its own, as large as that connection
                    // (this one, holding the detection's state, ends here).
                    if b"PRI ".starts_with(&probe[..n]) {
                        // HTTP/2's preface, or too few bytes to tell: detected by hyper-util.
                        let conn = watcher.watch(builder.serve_connection(io, svc).into_owned());
                        tokio::spawn(drive(conn, slot, peer));
                    } else {
                        // HTTP/1.x (a browser's gRPC-web): hyper's own HTTP/1 connection, half
                        // the size of the auto one, which holds both protocols' state.
                        let conn = watcher.watch(http1.serve_connection(io, svc));
                        tokio::spawn(drive(conn, slot, peer));
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("Shutting down: closing streams");
    core.shutdown();
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("Some connections did not finish in time");
    }
    Ok(())
}
