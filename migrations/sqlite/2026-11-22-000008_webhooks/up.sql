-- Issue 9: organizers' webhook endpoints and the durable queue of their deliveries.
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    -- A JSON array of the subscribed event types.
    events TEXT NOT NULL,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    disabled_reason TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX webhooks_user_idx ON webhooks (user_id);

CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_type TEXT NOT NULL,
    event_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at TIMESTAMP NOT NULL,
    locked_until TIMESTAMP,
    delivered_at TIMESTAMP,
    failed_at TIMESTAMP,
    last_status INTEGER,
    last_error TEXT
);
-- The claim looks at pending rows only, per (webhook, event) queue in id order.
CREATE INDEX webhook_deliveries_pending_idx ON webhook_deliveries (webhook_id, event_id, id)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX webhook_deliveries_log_idx ON webhook_deliveries (webhook_id, id);
