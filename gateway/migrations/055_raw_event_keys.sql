-- The ledger of stored events: one narrow row per (site, device, seq) ever stored, with the
-- time it arrived (gateway/store.py). Unpartitioned on every engine, so it stays the one
-- unique key of an event when raw_events is partitioned by month on PostgreSQL (a unique
-- constraint there must include the partition key, received_ms: the same seq resent months
-- later, with another arrival time, would be a second row). It is kept when event rows are
-- archived and purged (gateway/archive.py): a resend of a purged event is still a duplicate,
-- and the ack rule and gap checks, which read it, do not see a hole where purged events were.
CREATE TABLE raw_event_keys (
    site        TEXT    NOT NULL,
    device      TEXT    NOT NULL,
    seq         BIGINT  NOT NULL,
    received_ms BIGINT  NOT NULL,   -- the stored row's; finds it in its month's partition
    PRIMARY KEY (site, device, seq)
);
INSERT INTO raw_event_keys (site, device, seq, received_ms) SELECT site, device, seq, received_ms FROM raw_events;
