-- Webhooks (issue #13). An endpoint belongs to a site and subscribes to event types (a bit
-- mask: bit N for WebhookEventType N). Each event an endpoint must receive is a delivery row,
-- written in the transaction of the message (or visitor change) that made it: the outbox.
-- The dispatcher sends, per endpoint, only the oldest pending delivery of each chain (a
-- conversation, or a visitor's own events), so order per conversation holds through retries.
CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY,
    site_id TEXT NOT NULL,
    url TEXT NOT NULL,
    events BIGINT NOT NULL,
    -- "whsec_" + base64: the HMAC key; kept as is, since the server must sign with it.
    secret TEXT NOT NULL,
    enabled BIGINT NOT NULL DEFAULT 1,
    description TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    disabled_reason TEXT NOT NULL DEFAULT '',
    failing_since BIGINT NOT NULL DEFAULT 0,
    last_success_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX webhook_endpoints_by_site ON webhook_endpoints (site_id, enabled);

CREATE TABLE webhook_deliveries (
    endpoint_id TEXT NOT NULL,
    -- Stable over attempts and resends: the `webhook-id` header.
    event_id TEXT NOT NULL,
    event_type BIGINT NOT NULL,
    site_id TEXT NOT NULL,
    -- '' for visitor events.
    conversation_id TEXT NOT NULL,
    -- The message that made the event (0 for visitor events).
    seq BIGINT NOT NULL,
    -- Ordering: deliveries of one chain go out one at a time, by ord.
    chain TEXT NOT NULL,
    ord BIGINT NOT NULL,
    visitor_id TEXT NOT NULL,
    -- Visitor events: the visitor as it was (JSON); '' otherwise (read at delivery).
    payload TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    -- 1 pending, 2 delivered, 3 failed (WebhookDeliveryState).
    state BIGINT NOT NULL DEFAULT 1,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    -- A node sending it holds it until then (a node killed mid-send: another resends).
    lease_until BIGINT NOT NULL DEFAULT 0,
    last_attempt_at BIGINT NOT NULL DEFAULT 0,
    last_status BIGINT NOT NULL DEFAULT 0,
    last_latency_ms BIGINT NOT NULL DEFAULT 0,
    last_response TEXT NOT NULL DEFAULT '',
    last_error TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (endpoint_id, state, next_attempt_at);
CREATE INDEX webhook_deliveries_chain ON webhook_deliveries (endpoint_id, chain, state, ord);
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (endpoint_id, created_at);
