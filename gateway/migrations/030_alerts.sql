-- Alerts (gateway/alerts.py owns these tables; nothing else reads or writes them).
-- Times are epoch milliseconds.

-- One row per alert raised. `dedup` is the rule and its subject ("panel_offline:s1/p1"): while
-- an alert with that key is not resolved, the rule firing again only updates last_ms / fired;
-- after it is resolved, a new alert of the key waits for the rule's cooldown.
CREATE TABLE alerts (
    id          {{AUTO_ID}},
    dedup       TEXT    NOT NULL,
    rule        TEXT    NOT NULL,
    severity    TEXT    NOT NULL,          -- info|warning|critical
    site        TEXT,                      -- the office (scope); NULL: the whole deployment
    region      TEXT,                      -- the site file's region of the office, when it has one
    subject     TEXT    NOT NULL,          -- panel "site/device", employee id, office id, "deadletters"
    summary     TEXT    NOT NULL,          -- one English line (channels); the console and CLI translate
    detail      TEXT    NOT NULL,          -- JSON: the figures the rule saw
    raised_ms   BIGINT  NOT NULL,
    last_ms     BIGINT  NOT NULL,          -- the rule's last firing
    fired       BIGINT  NOT NULL,          -- evaluations that found it firing
    cleared_ms  BIGINT,                    -- the condition was last seen gone (NULL: still on)
    acked_ms    BIGINT,
    acked_by    TEXT,
    resolved_ms BIGINT,
    resolved_by TEXT
);
CREATE INDEX alerts_dedup ON alerts (dedup, resolved_ms);
CREATE INDEX alerts_raised ON alerts (raised_ms);

-- What the rules remember between evaluations: counters last seen (dead letters, dropped
-- events), since when a condition holds (config not applied), where a sequential test restarts.
CREATE TABLE alert_marks (
    key   TEXT   PRIMARY KEY,
    value BIGINT NOT NULL
);

-- The durable outbox: one row per (alert, channel), written in the same transaction as the
-- alert, delivered by the worker with retries and back-off until the channel takes it.
CREATE TABLE alert_outbox (
    id           {{AUTO_ID}},
    alert_id     BIGINT  NOT NULL REFERENCES alerts (id),
    channel      TEXT    NOT NULL,         -- email|webhook|mqtt
    payload      TEXT    NOT NULL,         -- JSON, as sent (the idempotency key is in it)
    created_ms   BIGINT  NOT NULL,
    attempts     BIGINT  NOT NULL,
    next_ms      BIGINT  NOT NULL,
    delivered_ms BIGINT,
    last_error   TEXT
);
CREATE INDEX alert_outbox_due ON alert_outbox (delivered_ms, next_ms);
