//! Prometheus metrics, served as text at `/metrics`.

use std::sync::atomic::AtomicI64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The server's metrics. Cheap to update from hot paths (atomics).
pub struct Metrics {
    registry: Registry,
    /// Open TCP connections.
    pub connections: Gauge<i64, AtomicI64>,
    /// Connections closed at once (over the global or per-address cap).
    pub connections_refused: Counter,
    /// Connections closed because they sent nothing in time.
    pub connections_idle_closed: Counter,
    /// Open Subscribe/Chat streams.
    pub streams: Gauge<i64, AtomicI64>,
    /// Messages accepted and stored (not duplicates).
    pub messages_in: Counter,
    /// Message events written to streams.
    pub messages_out: Counter,
    /// Publishes answered with an error status.
    pub publish_errors: Counter,
    /// Streams told to resync because they fell behind.
    pub resyncs: Counter,
    /// Conversation snapshots sent to visitors because their queue position moved.
    pub queue_position_events: Counter,
    /// Time from publish received to ack, seconds.
    pub publish_latency: Histogram,
    /// Jobs per group-commit batch.
    pub batch_size: Histogram,
    /// Time to run and commit one batch, seconds.
    pub batch_seconds: Histogram,
    /// Files uploaded and stored.
    pub uploads: Counter,
    /// Bytes of those files.
    pub upload_bytes: Counter,
    /// Uploads refused, by reason (too_large, kind, rate, rights, invalid, storage).
    pub uploads_refused: Family<Reason, Counter>,
    /// Files kept and their bytes (thumbnails included), as last counted.
    pub files_stored: Gauge<i64, AtomicI64>,
    pub files_stored_bytes: Gauge<i64, AtomicI64>,
    /// Webhook attempts by result (delivered, retry, failed).
    pub webhook_attempts: Family<WebhookResult, Counter>,
    /// Seconds per webhook attempt (connect to the answer's first bytes).
    pub webhook_seconds: Histogram,
    /// Email attempts by result (sent, retry, failed).
    pub email_attempts: Family<WebhookResult, Counter>,
}

/// The label of a webhook attempt.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookResult {
    pub result: &'static str,
}

/// The label of a refused upload.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("wsmschat");
        let m = Self {
            connections: Gauge::default(),
            connections_refused: Counter::default(),
            connections_idle_closed: Counter::default(),
            streams: Gauge::default(),
            messages_in: Counter::default(),
            messages_out: Counter::default(),
            publish_errors: Counter::default(),
            resyncs: Counter::default(),
            queue_position_events: Counter::default(),
            publish_latency: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            batch_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            uploads: Counter::default(),
            upload_bytes: Counter::default(),
            uploads_refused: Family::default(),
            files_stored: Gauge::default(),
            files_stored_bytes: Gauge::default(),
            webhook_attempts: Family::default(),
            webhook_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            email_attempts: Family::default(),
            registry: Registry::default(),
        };
        registry.register("connections", "Open TCP connections", m.connections.clone());
        registry.register(
            "connections_refused",
            "Connections closed at once: over the connection cap or the per-address cap",
            m.connections_refused.clone(),
        );
        registry.register(
            "connections_idle_closed",
            "Connections closed because they sent no byte in time",
            m.connections_idle_closed.clone(),
        );
        registry.register("streams", "Open Subscribe/Chat streams", m.streams.clone());
        registry.register("messages_in", "Messages stored", m.messages_in.clone());
        registry.register(
            "messages_out",
            "Message events delivered to streams",
            m.messages_out.clone(),
        );
        registry.register(
            "queue_position_events",
            "Snapshots sent to visitors whose queue position moved",
            m.queue_position_events.clone(),
        );
        registry.register(
            "publish_errors",
            "Events refused with an error",
            m.publish_errors.clone(),
        );
        registry.register(
            "resyncs",
            "Streams told to resync after falling behind",
            m.resyncs.clone(),
        );
        registry.register(
            "publish_latency_seconds",
            "Publish received to ack",
            m.publish_latency.clone(),
        );
        registry.register(
            "commit_batch_size",
            "Writes per group commit",
            m.batch_size.clone(),
        );
        registry.register(
            "commit_batch_seconds",
            "Time to run and commit a batch",
            m.batch_seconds.clone(),
        );
        registry.register("uploads", "Files uploaded", m.uploads.clone());
        registry.register(
            "upload_bytes",
            "Bytes of uploaded files",
            m.upload_bytes.clone(),
        );
        registry.register(
            "uploads_refused",
            "Uploads refused, by reason",
            m.uploads_refused.clone(),
        );
        registry.register("files_stored", "Files kept", m.files_stored.clone());
        registry.register(
            "files_stored_bytes",
            "Bytes of the files kept (thumbnails included)",
            m.files_stored_bytes.clone(),
        );
        registry.register(
            "webhook_attempts",
            "Webhook delivery attempts by result (delivered, retry, failed)",
            m.webhook_attempts.clone(),
        );
        registry.register(
            "webhook_seconds",
            "Time per webhook delivery attempt",
            m.webhook_seconds.clone(),
        );
        registry.register(
            "email_attempts",
            "SMTP attempts by result (sent, retry, failed)",
            m.email_attempts.clone(),
        );
        Self { registry, ..m }
    }

    /// Counts an email attempt.
    pub fn email_attempt(&self, result: &'static str) {
        self.email_attempts
            .get_or_create(&WebhookResult { result })
            .inc();
    }

    /// Counts a webhook attempt.
    pub fn webhook_delivered(&self, result: &'static str, latency_ms: u32) {
        self.webhook_attempts
            .get_or_create(&WebhookResult { result })
            .inc();
        self.webhook_seconds.observe(f64::from(latency_ms) / 1000.0);
    }

    /// Records one group commit.
    pub fn observe_batch(&self, jobs: usize, took: Duration) {
        self.batch_size.observe(jobs as f64);
        self.batch_seconds.observe(took.as_secs_f64());
    }

    /// Counts a refused upload.
    pub fn upload_refused(&self, reason: &'static str) {
        self.uploads_refused.get_or_create(&Reason { reason }).inc();
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
