-- CRM follow-up of dissatisfied customers (gateway/followups.py owns these tables; nothing else
-- reads or writes them). Times are epoch milliseconds.

-- One row per No or silent poll once its hold is over (docs/integrations.md): what was decided
-- for it and whether the receivers hold a live follow-up of it. The poll's stable identity
-- (site, device, open_seq) is the key, so a `rating rebuild` never makes a second one.
CREATE TABLE followups (
    site        TEXT    NOT NULL,
    device      TEXT    NOT NULL,
    open_seq    BIGINT  NOT NULL,
    opened_ms   BIGINT  NOT NULL,
    state       TEXT    NOT NULL,          -- held|sent|retracted|excluded
    reason      TEXT,                      -- why held, retracted or excluded (invalid, force_majeure, answered, fm_pending)
    live        INTEGER NOT NULL,          -- 1: the last event issued is a follow-up not retracted since
    events      BIGINT  NOT NULL,          -- events issued for it so far (the next one's number is events + 1)
    created_ms  BIGINT  NOT NULL,
    updated_ms  BIGINT  NOT NULL,
    PRIMARY KEY (site, device, open_seq)
);
CREATE INDEX followups_state ON followups (state, opened_ms);
CREATE INDEX followups_opened ON followups (site, opened_ms);

-- The feed: every follow-up and retraction issued, in order. `id` is the API's cursor order;
-- `event_id` ("followup:site/device/seq:n") is the receivers' idempotency key.
CREATE TABLE followup_events (
    id          {{AUTO_ID}},
    event_id    TEXT    NOT NULL UNIQUE,
    site        TEXT    NOT NULL,
    device      TEXT    NOT NULL,
    open_seq    BIGINT  NOT NULL,
    kind        TEXT    NOT NULL,          -- followup|retraction
    payload     TEXT    NOT NULL,          -- JSON, as sent and as the API returns it
    created_ms  BIGINT  NOT NULL
);
CREATE INDEX followup_events_site ON followup_events (site, id);

-- The durable webhook outbox: one row per (event, integration), written in the same transaction
-- as the event, delivered by the worker with retries and back-off until the receiver takes it.
CREATE TABLE followup_outbox (
    id           {{AUTO_ID}},
    event_id     BIGINT  NOT NULL REFERENCES followup_events (id),
    channel      TEXT    NOT NULL,         -- the integration's name ([followups.webhooks.<name>])
    payload      TEXT    NOT NULL,
    created_ms   BIGINT  NOT NULL,
    attempts     BIGINT  NOT NULL,
    next_ms      BIGINT  NOT NULL,
    delivered_ms BIGINT,
    last_error   TEXT
);
CREATE INDEX followup_outbox_due ON followup_outbox (delivered_ms, next_ms);

-- What the incremental pass remembers: the polls' time it has looked through, the last verdict read.
CREATE TABLE followup_marks (
    key   TEXT   PRIMARY KEY,
    value BIGINT NOT NULL
);
