-- Scheduled e-mailed reports (gateway/reportmail.py owns these tables; nothing else reads or
-- writes them). Times are epoch milliseconds.

-- One row per schedule: the report of a console account's scope (its offices, in its language),
-- or of a role's (the offices its enabled accounts see, in the deployment's language), every
-- day, ISO week or month, to the addresses listed.
CREATE TABLE report_schedules (
    id          {{AUTO_ID}},
    username    TEXT,                      -- the console account (gateway/users.py) whose scope it has
    role        TEXT,                      -- or the role (exactly one of the two is set)
    every       TEXT    NOT NULL,          -- day|week|month
    recipients  TEXT    NOT NULL,          -- JSON list of e-mail addresses
    created_ms  BIGINT  NOT NULL,
    last_period TEXT,                      -- the last period queued: 2026-12-03, 2026-W49, 2026-11
    last_error  TEXT                       -- why its last report could not be built (NULL: it could)
);

-- The durable outbox: one row per (schedule, period), the whole message as built (so a retry
-- sends the same bytes, with the same Message-ID), written in the same transaction that moves
-- the schedule's last_period on; sent with retries and back-off until the server takes it.
CREATE TABLE report_outbox (
    id           {{AUTO_ID}},
    schedule_id  BIGINT  NOT NULL REFERENCES report_schedules (id),
    period       TEXT    NOT NULL,
    recipients   TEXT    NOT NULL,         -- JSON list, as at queueing
    message      TEXT    NOT NULL,         -- RFC 5322, ASCII (attachments base64)
    created_ms   BIGINT  NOT NULL,
    attempts     BIGINT  NOT NULL,
    next_ms      BIGINT  NOT NULL,
    delivered_ms BIGINT,
    last_error   TEXT
);
CREATE UNIQUE INDEX report_outbox_period ON report_outbox (schedule_id, period);
CREATE INDEX report_outbox_due ON report_outbox (delivered_ms, next_ms);
