//! The listener: accepts TCP connections and serves the app on each with HTTP/1.1 or HTTP/2
//! (detected per connection), until shutdown.
//!
//! Shutdown order: stop accepting; close every stream (clients see a clean end and reconnect
//! elsewhere); let connections finish in-flight calls (bounded); then the caller closes the
//! store, which commits the last batch.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::core::Core;
use crate::rpc::PeerAddr;

/// How long in-flight calls get to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    core: Arc<Core>,
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
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        // hyper's minimum: per-connection read buffers dominate an idle browser stream's memory.
        .max_buf_size(8 * 1024);
    let graceful = GracefulShutdown::new();
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
                let _ = stream.set_nodelay(true);
                let svc = app.clone().map_request(move |mut req: http::Request<Incoming>| {
                    req.extensions_mut().insert(PeerAddr(peer));
                    req
                });
                let conn = builder.serve_connection_with_upgrades(
                    TokioIo::new(stream),
                    TowerToHyperService::new(svc),
                );
                let conn = graceful.watch(conn.into_owned());
                let metrics = core.metrics.clone();
                metrics.connections.inc();
                tokio::spawn(async move {
                    if let Err(error) = conn.await {
                        tracing::debug!(%error, %peer, "Connection ended with an error");
                    }
                    metrics.connections.dec();
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
