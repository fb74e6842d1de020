//! The cluster's Redis transport: one pub/sub channel per cluster, an ordered publisher and a
//! subscriber that reconnects. It moves bytes and knows nothing of the chat; what the bytes
//! mean, and what a node does after a loss, is [`crate::core::cluster`]'s.
//!
//! Redis pub/sub is at-most-once: a payload published while a node is disconnected never
//! reaches it. The transport says so instead of hiding it: the subscriber reports each
//! reconnection ([`Inbound::connected`] with `again`), and the publisher, after dropping
//! payloads it could not send, publishes the `loss_notice` it was given before anything else.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

/// Payloads queued for Redis at most; past that they are dropped (and a loss announced).
const PUBLISH_QUEUE: usize = 10_000;
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What the subscriber hands its payloads to.
pub trait Inbound: Send + 'static {
    /// The subscription is (re)established. `again`: after a lost connection, so payloads
    /// published meanwhile will never arrive.
    fn connected(&mut self, again: bool) -> impl Future<Output = ()> + Send;
    /// One payload from the channel, in the channel's order (this node's own included).
    fn received(&mut self, payload: Vec<u8>) -> impl Future<Output = ()> + Send;
}

/// The transport handle: publishes in order, pings.
pub struct RedisTransport {
    channel: String,
    client: redis::Client,
    /// Payloads for the publisher task (one task keeps this node's order).
    out: mpsc::Sender<Vec<u8>>,
    /// Some payloads never reached Redis since the last loss notice.
    lost: Arc<AtomicBool>,
}

impl RedisTransport {
    /// Connects to Redis (the first connection must work: a wrong URL fails here) and starts
    /// the publisher. Stops when `shutdown` flips to true.
    pub async fn connect(
        url: &str,
        namespace: &str,
        loss_notice: Vec<u8>,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<Arc<Self>> {
        let client = redis::Client::open(url)?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<()>(&mut conn).await?;
        let (out, rx) = mpsc::channel(PUBLISH_QUEUE);
        let transport = Arc::new(Self {
            channel: format!("{namespace}:events"),
            client: client.clone(),
            out,
            lost: Arc::default(),
        });
        tokio::spawn(publisher(
            client,
            transport.channel.clone(),
            loss_notice,
            transport.lost.clone(),
            rx,
            shutdown,
        ));
        Ok(transport)
    }

    /// The channel's name.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Starts the subscriber, which hands every payload to `inbound`; returns once the first
    /// subscription holds (or after 5 s, the subscriber retrying in the background).
    pub async fn subscribe(
        self: &Arc<Self>,
        inbound: impl Inbound,
        shutdown: watch::Receiver<bool>,
    ) {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(subscriber(
            self.client.clone(),
            self.channel.clone(),
            inbound,
            shutdown,
            ready_tx,
        ));
        let _ = tokio::time::timeout(Duration::from_secs(5), ready_rx).await;
    }

    /// Queues a payload; never waits. While Redis is slow or away the queue stays bounded:
    /// what does not fit is dropped and a loss notice follows.
    pub fn publish(&self, payload: Vec<u8>) {
        if self.out.try_send(payload).is_err() {
            self.lost.store(true, Ordering::Relaxed);
        }
    }

    /// Redis answers (readiness).
    pub async fn ping(&self) -> anyhow::Result<()> {
        let mut conn = tokio::time::timeout(
            Duration::from_secs(2),
            self.client.get_multiplexed_async_connection(),
        )
        .await??;
        redis::cmd("PING").query_async::<()>(&mut conn).await?;
        Ok(())
    }
}

/// Waits `backoff` (or until shutdown: false), then doubles it.
async fn back_off(backoff: &mut Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(*backoff) => {}
        _ = shutdown.changed() => return false,
    }
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
    true
}

/// Publishes this node's payloads in order; reconnects after errors. What cannot be sent
/// while Redis is away is dropped, not hoarded (a stale backlog is worth nothing), and the
/// first pipeline after the loss starts with the loss notice, so the other nodes recover the
/// gap at once instead of at that conversation's next message.
async fn publisher(
    client: redis::Client,
    channel: String,
    loss_notice: Vec<u8>,
    lost: Arc<AtomicBool>,
    mut rx: mpsc::Receiver<Vec<u8>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conn = None;
    let mut backoff = Duration::from_millis(100);
    let drop_queued = |rx: &mut mpsc::Receiver<Vec<u8>>| {
        while rx.try_recv().is_ok() {}
        lost.store(true, Ordering::Relaxed);
    };
    loop {
        // After a loss the notice goes out at once, not with the next payload.
        let payload = if lost.load(Ordering::Relaxed) {
            None
        } else {
            tokio::select! {
                p = rx.recv() => match p { Some(p) => Some(p), None => return },
                _ = shutdown.changed() => return,
            }
        };
        if conn.is_none() {
            match client.get_multiplexed_async_connection().await {
                Ok(c) => {
                    conn = Some(c);
                    backoff = Duration::from_millis(100);
                }
                Err(error) => {
                    tracing::warn!(%error, "Redis publish connection failed; dropping events");
                    drop_queued(&mut rx);
                    if !back_off(&mut backoff, &mut shutdown).await {
                        return;
                    }
                    continue;
                }
            }
        }
        // Everything queued in one pipeline, after the loss notice if payloads were lost.
        let mut pipe = redis::pipe();
        if lost.swap(false, Ordering::Relaxed) {
            pipe.cmd("PUBLISH").arg(&channel).arg(&loss_notice).ignore();
        }
        if let Some(payload) = payload {
            pipe.cmd("PUBLISH").arg(&channel).arg(payload).ignore();
        }
        while let Ok(more) = rx.try_recv() {
            pipe.cmd("PUBLISH").arg(&channel).arg(more).ignore();
        }
        let c = conn.as_mut().expect("connected above");
        if let Err(error) = pipe.query_async::<()>(c).await {
            tracing::warn!(%error, "Redis publish failed; reconnecting");
            conn = None;
            drop_queued(&mut rx);
            if !back_off(&mut backoff, &mut shutdown).await {
                return;
            }
        }
    }
}

/// Receives every node's payloads and hands them to `inbound`, resubscribing after a loss.
async fn subscriber(
    client: redis::Client,
    channel: String,
    mut inbound: impl Inbound,
    mut shutdown: watch::Receiver<bool>,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let mut connected_before = false;
    let mut backoff = Duration::from_millis(100);
    loop {
        let pubsub = async {
            let mut p = client.get_async_pubsub().await?;
            p.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(p)
        };
        let pubsub = tokio::select! {
            p = pubsub => p,
            _ = shutdown.changed() => return,
        };
        let pubsub = match pubsub {
            Ok(p) => p,
            Err(error) => {
                tracing::warn!(%error, "Redis subscribe failed; retrying");
                if !back_off(&mut backoff, &mut shutdown).await {
                    return;
                }
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        inbound.connected(connected_before).await;
        connected_before = true;
        if let Some(r) = ready.take() {
            let _ = r.send(());
        }
        let mut messages = pubsub.into_on_message();
        loop {
            let msg = tokio::select! {
                m = messages.next() => m,
                _ = shutdown.changed() => return,
            };
            let Some(msg) = msg else {
                tracing::warn!("Redis bus connection lost");
                break;
            };
            if let Ok(payload) = msg.get_payload::<Vec<u8>>() {
                inbound.received(payload).await;
            }
        }
    }
}
