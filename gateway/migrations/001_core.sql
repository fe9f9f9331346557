-- Core ingest tables (gateway part 1). Portable SQL: see gateway/db.py for the two tokens.
-- Times are epoch milliseconds (BIGINT). Booleans are INTEGER 0/1.

-- Every event a panel sent, exactly once per (site, device, seq). Never edited.
-- t_ms is the panel's wall clock (NULL before the panel had NTP time); the repaired time is
-- derived (gateway/timerepair.py), never written back here.
CREATE TABLE raw_events (
    site        TEXT    NOT NULL,
    device      TEXT    NOT NULL,
    seq         BIGINT  NOT NULL,
    boot        BIGINT  NOT NULL,
    up_ms       BIGINT  NOT NULL,
    t_ms        BIGINT,
    ev          TEXT    NOT NULL,
    hold_ms     BIGINT,
    received_ms BIGINT  NOT NULL,
    payload     TEXT    NOT NULL,
    PRIMARY KEY (site, device, seq)
);

-- Per boot of a panel: wall clock minus uptime (t - up), learnt from the first message of that
-- boot that carried both. Repairs events of the same boot whose t was NULL.
CREATE TABLE boot_clock (
    site        TEXT    NOT NULL,
    device      TEXT    NOT NULL,
    boot        BIGINT  NOT NULL,
    offset_ms   BIGINT  NOT NULL,
    source      TEXT    NOT NULL,   -- 'event:<seq>' or 'state'
    received_ms BIGINT  NOT NULL,
    PRIMARY KEY (site, device, boot)
);

-- The latest state (heartbeat / birth / last will) of each panel, plus last_seen from any message.
CREATE TABLE panel_state (
    site         TEXT    NOT NULL,
    device       TEXT    NOT NULL,
    online       INTEGER,
    last_seen_ms BIGINT,
    state_ms     BIGINT,            -- when the last state message arrived
    boot         BIGINT,
    up_ms        BIGINT,
    t_ms         BIGINT,
    fw           TEXT,
    last_seq     BIGINT,            -- the panel's newest seq
    pending      BIGINT,            -- events the panel still holds (not covered by an ack)
    dropped      BIGINT,            -- events the panel discarded (journal overflow), cumulative
    heap         BIGINT,
    rssi         BIGINT,
    faults       TEXT,              -- JSON
    cfg          TEXT,              -- the config version/hash the panel runs
    cfg_err      TEXT,
    payload      TEXT,              -- the last state message as received
    PRIMARY KEY (site, device)
);

-- Anything that could not be stored as what it claimed to be: bad topic, bad payload, a seq
-- re-used with different content. Kept with the raw bytes for support.
CREATE TABLE dead_letters (
    id          {{AUTO_ID}},
    topic       TEXT    NOT NULL,
    payload     {{BLOB}} NOT NULL,
    reason      TEXT    NOT NULL,
    received_ms BIGINT  NOT NULL
);
CREATE INDEX dead_letters_received ON dead_letters (received_ms);

-- Transactions and visitors per interval, per site (device '') or per panel.
CREATE TABLE counts (
    site         TEXT    NOT NULL,
    device       TEXT    NOT NULL DEFAULT '',
    from_ms      BIGINT  NOT NULL,
    to_ms        BIGINT  NOT NULL,
    transactions BIGINT,
    visitors     BIGINT,
    source       TEXT    NOT NULL,  -- 'mqtt' or 'csv:<file name>'
    received_ms  BIGINT  NOT NULL,
    PRIMARY KEY (site, device, from_ms, to_ms)
);

-- The cumulative ack last published (retained) to each panel.
CREATE TABLE acks (
    site         TEXT    NOT NULL,
    device       TEXT    NOT NULL,
    acked_seq    BIGINT  NOT NULL,
    published_ms BIGINT  NOT NULL,
    PRIMARY KEY (site, device)
);
