-- Archives of raw events and their retention (gateway/archive.py, docs/partitions.md).

-- One row per archived month of raw events (by received_ms, UTC; a partition on PostgreSQL):
-- the file written, what it holds, and when its events were purged from the database.
CREATE TABLE raw_archives (
    month       TEXT    PRIMARY KEY,   -- YYYY-MM
    from_ms     BIGINT  NOT NULL,
    to_ms       BIGINT  NOT NULL,
    file        TEXT    NOT NULL,      -- absolute path of the archive written
    events      BIGINT  NOT NULL,      -- events in it
    sha256      TEXT    NOT NULL,      -- of the file
    archived_ms BIGINT  NOT NULL,
    purged_ms   BIGINT,                -- NULL: its events are still in raw_events
    purged      BIGINT  NOT NULL DEFAULT 0  -- events deleted by the purge
);

-- Where a panel's derivation restarts once its oldest events are purged: the window builder's
-- state after feeding every event through seq (gateway/derive.py). The polls, reports,
-- unsolicited presses and anomalies derived before it are kept by `rating rebuild` and by a
-- re-derivation after `rating site apply` (their events are only in the archive now).
CREATE TABLE derive_checkpoints (
    site      TEXT    NOT NULL,
    device    TEXT    NOT NULL,
    seq       BIGINT  NOT NULL,
    fed_count BIGINT  NOT NULL,
    snapshot  TEXT    NOT NULL,
    made_ms   BIGINT  NOT NULL,
    PRIMARY KEY (site, device)
);
