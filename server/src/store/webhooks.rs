//! Webhook endpoints and their outbox (migration 0005), written once for both engines.
//!
//! The outbox rows are written by [`enqueue_for_message`] and [`enqueue_for_visitor`] inside
//! the transaction of the message or visitor change that made the event, so an event is
//! delivered if and only if what made it was committed. A site without endpoints pays one
//! `INSERT ... SELECT` that selects nothing.

use async_trait::async_trait;
use wsmschat::v1;

use super::db::{Db, Row};
use super::sql_store::{Engine, SqlStore};
use super::{StoreError, StoreResult};
use crate::args;
use crate::util::now_ms;

/// Pending, delivered, failed (as `WebhookDeliveryState`).
pub const PENDING: i64 = v1::WebhookDeliveryState::Pending as i64;
pub const DELIVERED: i64 = v1::WebhookDeliveryState::Delivered as i64;
pub const FAILED: i64 = v1::WebhookDeliveryState::Failed as i64;

/// The mask bit of an event type.
pub fn bit(t: v1::WebhookEventType) -> i64 {
    1 << (t as i64)
}

/// The event types of a mask.
pub fn types_of(mask: i64) -> Vec<i32> {
    (1..=16)
        .filter(|t| mask & (1 << t) != 0)
        .filter(|t| v1::WebhookEventType::try_from(*t).is_ok())
        .collect()
}

/// A delivery the dispatcher may send now.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub endpoint_id: String,
    pub url: String,
    pub secret: String,
    pub event_id: String,
    pub event_type: i32,
    pub site_id: String,
    pub conversation_id: String,
    pub seq: u64,
    pub visitor_id: String,
    /// Visitor events: the visitor at the event, as JSON.
    pub payload: String,
    pub created_at: i64,
    /// Attempts before this one.
    pub attempts: u32,
}

/// What became of an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx.
    Delivered,
    /// Try again at this time (ms since epoch).
    Retry(i64),
    /// Retries ran out.
    Failed,
}

/// One attempt, as recorded in the delivery log.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub outcome: Outcome,
    pub at: i64,
    pub status: u32,
    pub latency_ms: u32,
    pub response: String,
    pub error: String,
}

const ENDPOINT_COLUMNS: &str = "id, site_id, url, events, enabled, description, created_at, \
     disabled_reason, failing_since, last_success_at, \
     (SELECT COUNT(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.state = 1), \
     (SELECT COUNT(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.state = 3)";

fn endpoint_from_row(r: &Row) -> v1::WebhookEndpoint {
    v1::WebhookEndpoint {
        id: r.text(0),
        site_id: r.text(1),
        url: r.text(2),
        events: types_of(r.int(3)),
        enabled: r.bool(4),
        description: r.text(5),
        created_at_ms: r.int(6),
        disabled_reason: r.text(7),
        failing_since_ms: r.int(8),
        last_success_at_ms: r.int(9),
        pending: r.u32(10),
        failed: r.u32(11),
    }
}

fn mask_of(events: &[i32]) -> i64 {
    events
        .iter()
        .filter_map(|e| v1::WebhookEventType::try_from(*e).ok())
        .filter(|e| *e != v1::WebhookEventType::Unspecified)
        .fold(0, |m, e| m | bit(e))
}

pub async fn load_endpoint(db: &mut dyn Db, id: &str) -> StoreResult<v1::WebhookEndpoint> {
    let row = db
        .query_one(
            &format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints e WHERE id = $1"),
            args![id],
            "webhook",
        )
        .await?;
    Ok(endpoint_from_row(&row))
}

pub async fn create_endpoint(
    db: &mut dyn Db,
    e: &v1::WebhookEndpoint,
    secret: &str,
) -> StoreResult<v1::WebhookEndpoint> {
    db.exec(
        "INSERT INTO webhook_endpoints (id, site_id, url, events, secret, enabled, description, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        args![
            &e.id,
            &e.site_id,
            &e.url,
            mask_of(&e.events),
            secret,
            e.enabled,
            &e.description,
            now_ms()
        ],
    )
    .await?;
    load_endpoint(db, &e.id).await
}

/// Replaces url, events, description and enabled (enabling clears the server's reason and
/// the failure streak); a new secret when given.
pub async fn update_endpoint(
    db: &mut dyn Db,
    e: &v1::WebhookEndpoint,
    secret: Option<&str>,
) -> StoreResult<v1::WebhookEndpoint> {
    let n = db
        .exec(
            "UPDATE webhook_endpoints SET url = $2, events = $3, description = $4, \
             disabled_reason = CASE WHEN CAST($5 AS BIGINT) = 1 THEN '' ELSE disabled_reason END, \
             failing_since = CASE WHEN CAST($5 AS BIGINT) = 1 AND enabled = 0 THEN 0 ELSE failing_since END, \
             enabled = $5 WHERE id = $1",
            args![
                &e.id,
                &e.url,
                mask_of(&e.events),
                &e.description,
                e.enabled
            ],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound("webhook"));
    }
    if let Some(secret) = secret {
        db.exec(
            "UPDATE webhook_endpoints SET secret = $2 WHERE id = $1",
            args![&e.id, secret],
        )
        .await?;
    }
    load_endpoint(db, &e.id).await
}

pub async fn delete_endpoint(db: &mut dyn Db, id: &str) -> StoreResult<()> {
    db.exec(
        "DELETE FROM webhook_deliveries WHERE endpoint_id = $1",
        args![id],
    )
    .await?;
    if db
        .exec("DELETE FROM webhook_endpoints WHERE id = $1", args![id])
        .await?
        == 0
    {
        return Err(StoreError::NotFound("webhook"));
    }
    Ok(())
}

pub async fn list_endpoints(
    db: &mut dyn Db,
    site_id: Option<&str>,
) -> StoreResult<Vec<v1::WebhookEndpoint>> {
    let rows = match site_id {
        Some(site) => {
            db.query(
                &format!(
                    "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints e WHERE site_id = $1 \
                     ORDER BY created_at, id"
                ),
                args![site],
            )
            .await?
        }
        None => {
            db.query(
                &format!(
                    "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints e ORDER BY created_at, id"
                ),
                &[],
            )
            .await?
        }
    };
    Ok(rows.iter().map(endpoint_from_row).collect())
}

/// The events a message makes: (type, event id suffix, order within the conversation).
fn message_events(
    m: &v1::Message,
    created: bool,
) -> Vec<(v1::WebhookEventType, &'static str, i64)> {
    use v1::WebhookEventType as T;
    let ord = m.seq as i64 * 2;
    let mut out = Vec::with_capacity(2);
    if created {
        out.push((T::ConversationCreated, "c", ord - 1));
    }
    let kind = v1::MessageKind::try_from(m.kind).unwrap_or_default();
    let t = match kind {
        v1::MessageKind::Text => Some(T::MessageCreated),
        v1::MessageKind::Note => Some(T::NoteCreated),
        v1::MessageKind::System => m.system.as_ref().and_then(|s| {
            match v1::SystemEventKind::try_from(s.kind).unwrap_or_default() {
                v1::SystemEventKind::Assigned
                | v1::SystemEventKind::Joined
                | v1::SystemEventKind::Transferred => Some(T::ConversationAssigned),
                v1::SystemEventKind::Resolved => Some(T::ConversationResolved),
                v1::SystemEventKind::Reopened => Some(T::ConversationReopened),
                v1::SystemEventKind::Rated => Some(T::RatingSubmitted),
                // The site's own out-of-office text, no news for a backend.
                v1::SystemEventKind::Away | v1::SystemEventKind::Unspecified => None,
            }
        }),
        v1::MessageKind::Unspecified => None,
    };
    if let Some(t) = t {
        out.push((t, "m", ord));
    }
    out
}

/// Writes the deliveries a committed-to-be message makes for its site's enabled endpoints
/// that subscribe to them; returns how many rows were written.
pub async fn enqueue_for_message(
    db: &mut dyn Db,
    m: &v1::Message,
    visitor_id: &str,
    created: bool,
) -> StoreResult<u64> {
    let mut n = 0;
    for (t, suffix, ord) in message_events(m, created) {
        let event_id = format!("evt_{}_{}{}", m.conversation_id, m.seq, suffix);
        n += db
            .exec(
                "INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, site_id, \
                 conversation_id, seq, chain, ord, visitor_id, created_at, next_attempt_at) \
                 SELECT e.id, CAST($2 AS TEXT), CAST($3 AS BIGINT), e.site_id, CAST($1 AS TEXT), \
                 CAST($4 AS BIGINT), CAST($1 AS TEXT), CAST($5 AS BIGINT), CAST($6 AS TEXT), \
                 CAST($7 AS BIGINT), CAST($7 AS BIGINT) \
                 FROM webhook_endpoints e \
                 WHERE e.site_id = (SELECT site_id FROM conversations WHERE id = $1) \
                 AND e.enabled = 1 AND (e.events & $8) <> 0",
                args![
                    &m.conversation_id,
                    event_id,
                    t as i64,
                    m.seq,
                    ord,
                    visitor_id,
                    m.created_at_ms,
                    bit(t)
                ],
            )
            .await?;
    }
    Ok(n)
}

/// Writes a "visitor.identified" delivery (the visitor as JSON) for the site's endpoints.
pub async fn enqueue_for_visitor(db: &mut dyn Db, visitor: &v1::Visitor) -> StoreResult<u64> {
    let t = v1::WebhookEventType::VisitorIdentified;
    let now = now_ms();
    let payload = serde_json::to_string(visitor).map_err(StoreError::internal)?;
    db.exec(
        "INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, site_id, \
         conversation_id, seq, chain, ord, visitor_id, payload, created_at, next_attempt_at) \
         SELECT e.id, CAST($2 AS TEXT), CAST($3 AS BIGINT), e.site_id, '', 0, CAST($4 AS TEXT), \
         CAST($5 AS BIGINT), CAST($6 AS TEXT), CAST($7 AS TEXT), CAST($5 AS BIGINT), \
         CAST($5 AS BIGINT) \
         FROM webhook_endpoints e WHERE e.site_id = $1 AND e.enabled = 1 AND (e.events & $8) <> 0",
        args![
            &visitor.site_id,
            crate::util::new_id("evt_"),
            t as i64,
            format!("visitor:{}", visitor.id),
            now,
            &visitor.id,
            payload,
            bit(t)
        ],
    )
    .await
}

/// Enabled endpoints (the dispatcher asks each that is idle for its due deliveries).
pub async fn enabled_endpoints(db: &mut dyn Db) -> StoreResult<Vec<String>> {
    Ok(db
        .query("SELECT id FROM webhook_endpoints WHERE enabled = 1", &[])
        .await?
        .iter()
        .map(|r| r.text(0))
        .collect())
}

/// An enabled endpoint's deliveries due at `now`: per chain only the oldest pending one
/// (order), not held by a node; the longest-waiting first.
pub async fn due(
    db: &mut dyn Db,
    endpoint_id: &str,
    now: i64,
    limit: u32,
) -> StoreResult<Vec<DueDelivery>> {
    let rows = db
        .query(
            "SELECT d.endpoint_id, e.url, e.secret, d.event_id, d.event_type, d.site_id, \
             d.conversation_id, d.seq, d.visitor_id, d.payload, d.created_at, d.attempts \
             FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
             WHERE d.endpoint_id = $1 AND d.state = 1 AND d.next_attempt_at <= $2 \
             AND d.lease_until <= $2 AND e.enabled = 1 \
             AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p WHERE p.endpoint_id = d.endpoint_id \
             AND p.chain = d.chain AND p.state = 1 AND p.ord < d.ord) \
             ORDER BY d.next_attempt_at, d.ord LIMIT $3",
            args![endpoint_id, now, limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| DueDelivery {
            endpoint_id: r.text(0),
            url: r.text(1),
            secret: r.text(2),
            event_id: r.text(3),
            event_type: r.i32(4),
            site_id: r.text(5),
            conversation_id: r.text(6),
            seq: r.u64(7),
            visitor_id: r.text(8),
            payload: r.text(9),
            created_at: r.int(10),
            attempts: r.u32(11),
        })
        .collect())
}

/// Takes a delivery for one attempt until `lease_until`; false when another node has it or
/// it is no longer pending.
pub async fn claim(
    db: &mut dyn Db,
    endpoint_id: &str,
    event_id: &str,
    now: i64,
    lease_until: i64,
) -> StoreResult<bool> {
    Ok(db
        .exec(
            "UPDATE webhook_deliveries SET lease_until = $3, attempts = attempts + 1, \
             last_attempt_at = $4 WHERE endpoint_id = $1 AND event_id = $2 AND state = 1 \
             AND lease_until <= $4",
            args![endpoint_id, event_id, lease_until, now],
        )
        .await?
        == 1)
}

/// Claims a batch in one transaction; which were taken.
pub async fn claim_batch(
    db: &mut dyn Db,
    keys: &[(String, String)],
    now: i64,
    lease_until: i64,
) -> StoreResult<Vec<bool>> {
    let mut out = Vec::with_capacity(keys.len());
    for (endpoint_id, event_id) in keys {
        out.push(claim(db, endpoint_id, event_id, now, lease_until).await?);
    }
    Ok(out)
}

/// Records a batch of attempts in one transaction; the reason when the endpoint got disabled.
pub async fn record_batch(
    db: &mut dyn Db,
    attempts: &[(String, String, Attempt)],
    disable_after_ms: i64,
) -> StoreResult<Option<String>> {
    let mut disabled = None;
    for (endpoint_id, event_id, a) in attempts {
        if let Some(r) = record(db, endpoint_id, event_id, a, disable_after_ms).await? {
            disabled = Some(r);
        }
    }
    Ok(disabled)
}

/// Records an attempt; disables the endpoint when it has failed without a success since
/// longer than `disable_after_ms`. Returns the reason when it did.
pub async fn record(
    db: &mut dyn Db,
    endpoint_id: &str,
    event_id: &str,
    a: &Attempt,
    disable_after_ms: i64,
) -> StoreResult<Option<String>> {
    let (state, next) = match a.outcome {
        Outcome::Delivered => (DELIVERED, 0),
        Outcome::Retry(at) => (PENDING, at),
        Outcome::Failed => (FAILED, 0),
    };
    db.exec(
        "UPDATE webhook_deliveries SET state = $3, next_attempt_at = $4, lease_until = 0, \
         last_status = $5, last_latency_ms = $6, last_response = $7, last_error = $8 \
         WHERE endpoint_id = $1 AND event_id = $2",
        args![
            endpoint_id,
            event_id,
            state,
            next,
            a.status,
            a.latency_ms,
            &a.response,
            &a.error
        ],
    )
    .await?;
    if a.outcome == Outcome::Delivered {
        db.exec(
            "UPDATE webhook_endpoints SET failing_since = 0, last_success_at = $2 WHERE id = $1",
            args![endpoint_id, a.at],
        )
        .await?;
        return Ok(None);
    }
    db.exec(
        "UPDATE webhook_endpoints SET failing_since = $2 WHERE id = $1 AND failing_since = 0",
        args![endpoint_id, a.at],
    )
    .await?;
    let reason = format!(
        "disabled by the server: every delivery failed for {} days (last: {})",
        disable_after_ms / 86_400_000,
        if a.error.is_empty() {
            format!("HTTP {}", a.status)
        } else {
            a.error.clone()
        }
    );
    let n = db
        .exec(
            "UPDATE webhook_endpoints SET enabled = 0, disabled_reason = $2 \
             WHERE id = $1 AND enabled = 1 AND failing_since > 0 AND failing_since < $3",
            args![endpoint_id, &reason, a.at - disable_after_ms],
        )
        .await?;
    Ok((n > 0).then_some(reason))
}

pub async fn list_deliveries(
    db: &mut dyn Db,
    endpoint_id: &str,
    state: Option<i64>,
    before: (i64, &str),
    limit: u32,
) -> StoreResult<Vec<v1::WebhookDelivery>> {
    // The log's order is (created_at, event_id), newest first; the cursor is the last row seen.
    let (before_ms, before_id) = match before {
        (0, _) => (i64::MAX, ""),
        (ms, "") => (ms, ""),
        (ms, id) => (ms, id),
    };
    let cols = "event_id, endpoint_id, event_type, conversation_id, state, attempts, created_at, \
                next_attempt_at, last_attempt_at, last_status, last_latency_ms, last_response, last_error";
    let cursor = "(created_at < $2 OR (created_at = $2 AND event_id < $3))";
    let rows = match state {
        Some(s) => {
            db.query(
                &format!(
                    "SELECT {cols} FROM webhook_deliveries WHERE endpoint_id = $1 AND {cursor} \
                     AND state = $4 ORDER BY created_at DESC, event_id DESC LIMIT $5"
                ),
                args![endpoint_id, before_ms, before_id, s, limit],
            )
            .await?
        }
        None => {
            db.query(
                &format!(
                    "SELECT {cols} FROM webhook_deliveries WHERE endpoint_id = $1 AND {cursor} \
                     ORDER BY created_at DESC, event_id DESC LIMIT $4"
                ),
                args![endpoint_id, before_ms, before_id, limit],
            )
            .await?
        }
    };
    Ok(rows
        .iter()
        .map(|r| v1::WebhookDelivery {
            event_id: r.text(0),
            webhook_id: r.text(1),
            event_type: r.i32(2),
            conversation_id: r.text(3),
            state: r.i32(4),
            attempts: r.u32(5),
            created_at_ms: r.int(6),
            next_attempt_at_ms: if r.int(4) == PENDING { r.int(7) } else { 0 },
            last_attempt_at_ms: r.int(8),
            last_status_code: r.u32(9),
            last_latency_ms: r.u32(10),
            last_response: r.text(11),
            last_error: r.text(12),
        })
        .collect())
}

/// Queues failed (or delivered) deliveries again, due now, with a fresh retry budget.
pub async fn resend(
    db: &mut dyn Db,
    endpoint_id: &str,
    event_ids: &[String],
    all_failed: bool,
    now: i64,
) -> StoreResult<u32> {
    let mut n = 0;
    if all_failed {
        n += db
            .exec(
                "UPDATE webhook_deliveries SET state = 1, attempts = 0, next_attempt_at = $2, \
                 lease_until = 0 WHERE endpoint_id = $1 AND state = 3",
                args![endpoint_id, now],
            )
            .await?;
    }
    for id in event_ids {
        n += db
            .exec(
                "UPDATE webhook_deliveries SET state = 1, attempts = 0, next_attempt_at = $3, \
                 lease_until = 0 WHERE endpoint_id = $1 AND event_id = $2 AND state <> 1",
                args![endpoint_id, id, now],
            )
            .await?;
    }
    Ok(n as u32)
}

// ---------------------------------------------------------------- the store's side

/// Webhook endpoints and their delivery queue.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    async fn create_webhook(
        &self,
        endpoint: v1::WebhookEndpoint,
        secret: String,
    ) -> StoreResult<v1::WebhookEndpoint>;
    /// Replaces url, events, description, enabled; and the secret when given.
    async fn update_webhook(
        &self,
        endpoint: v1::WebhookEndpoint,
        secret: Option<String>,
    ) -> StoreResult<v1::WebhookEndpoint>;
    async fn delete_webhook(&self, id: String) -> StoreResult<()>;
    async fn webhook(&self, id: &str) -> StoreResult<v1::WebhookEndpoint>;
    async fn list_webhooks(&self, site_id: Option<String>)
    -> StoreResult<Vec<v1::WebhookEndpoint>>;
    /// Enabled webhook endpoints.
    async fn enabled_webhooks(&self) -> StoreResult<Vec<String>>;
    /// An endpoint's deliveries to attempt now (per conversation only the oldest pending).
    async fn due_webhook_deliveries(
        &self,
        endpoint_id: String,
        now: i64,
        limit: u32,
    ) -> StoreResult<Vec<DueDelivery>>;
    /// Takes deliveries for one attempt each (one transaction); which were taken (another
    /// node may hold some).
    async fn claim_webhook_deliveries(
        &self,
        keys: Vec<(String, String)>,
        now: i64,
        lease_until: i64,
    ) -> StoreResult<Vec<bool>>;
    /// Records attempts (one transaction); the reason when the endpoint got disabled.
    async fn record_webhook_attempts(
        &self,
        attempts: Vec<(String, String, Attempt)>,
        disable_after_ms: i64,
    ) -> StoreResult<Option<String>>;
    async fn list_webhook_deliveries(
        &self,
        endpoint_id: String,
        state: Option<i64>,
        before: (i64, String),
        limit: u32,
    ) -> StoreResult<Vec<v1::WebhookDelivery>>;
    /// Queues deliveries again; how many.
    async fn resend_webhook_deliveries(
        &self,
        endpoint_id: String,
        event_ids: Vec<String>,
        all_failed: bool,
        now: i64,
    ) -> StoreResult<u32>;
}

#[async_trait]
impl<E: Engine> WebhookStore for SqlStore<E> {
    async fn create_webhook(
        &self,
        endpoint: v1::WebhookEndpoint,
        secret: String,
    ) -> StoreResult<v1::WebhookEndpoint> {
        self.write(move |ctx| {
            let (endpoint, secret) = (endpoint.clone(), secret.clone());
            Box::pin(async move { create_endpoint(ctx.db, &endpoint, &secret).await })
        })
        .await
    }

    async fn update_webhook(
        &self,
        endpoint: v1::WebhookEndpoint,
        secret: Option<String>,
    ) -> StoreResult<v1::WebhookEndpoint> {
        self.write(move |ctx| {
            let (endpoint, secret) = (endpoint.clone(), secret.clone());
            Box::pin(async move { update_endpoint(ctx.db, &endpoint, secret.as_deref()).await })
        })
        .await
    }

    async fn delete_webhook(&self, id: String) -> StoreResult<()> {
        self.write(move |ctx| {
            let id = id.clone();
            Box::pin(async move { delete_endpoint(ctx.db, &id).await })
        })
        .await
    }

    async fn webhook(&self, id: &str) -> StoreResult<v1::WebhookEndpoint> {
        let id = id.to_owned();
        self.read(move |db| Box::pin(async move { load_endpoint(db, &id).await }))
            .await
    }

    async fn list_webhooks(
        &self,
        site_id: Option<String>,
    ) -> StoreResult<Vec<v1::WebhookEndpoint>> {
        self.read(move |db| Box::pin(async move { list_endpoints(db, site_id.as_deref()).await }))
            .await
    }

    async fn enabled_webhooks(&self) -> StoreResult<Vec<String>> {
        self.read(move |db| Box::pin(async move { enabled_endpoints(db).await }))
            .await
    }

    async fn due_webhook_deliveries(
        &self,
        endpoint_id: String,
        now: i64,
        limit: u32,
    ) -> StoreResult<Vec<DueDelivery>> {
        self.read(move |db| Box::pin(async move { due(db, &endpoint_id, now, limit).await }))
            .await
    }

    async fn claim_webhook_deliveries(
        &self,
        keys: Vec<(String, String)>,
        now: i64,
        lease_until: i64,
    ) -> StoreResult<Vec<bool>> {
        self.write(move |ctx| {
            let keys = keys.clone();
            Box::pin(async move { claim_batch(ctx.db, &keys, now, lease_until).await })
        })
        .await
    }

    async fn record_webhook_attempts(
        &self,
        attempts: Vec<(String, String, Attempt)>,
        disable_after_ms: i64,
    ) -> StoreResult<Option<String>> {
        self.write(move |ctx| {
            let attempts = attempts.clone();
            Box::pin(async move { record_batch(ctx.db, &attempts, disable_after_ms).await })
        })
        .await
    }

    async fn list_webhook_deliveries(
        &self,
        endpoint_id: String,
        state: Option<i64>,
        before: (i64, String),
        limit: u32,
    ) -> StoreResult<Vec<v1::WebhookDelivery>> {
        self.read(move |db| {
            Box::pin(async move {
                list_deliveries(db, &endpoint_id, state, (before.0, &before.1), limit).await
            })
        })
        .await
    }

    async fn resend_webhook_deliveries(
        &self,
        endpoint_id: String,
        event_ids: Vec<String>,
        all_failed: bool,
        now: i64,
    ) -> StoreResult<u32> {
        self.write(move |ctx| {
            let (endpoint_id, event_ids) = (endpoint_id.clone(), event_ids.clone());
            Box::pin(async move { resend(ctx.db, &endpoint_id, &event_ids, all_failed, now).await })
        })
        .await
    }
}
