-- Bounded dead letters (gateway/README.md, "Limits"): a letter keeps at most the first 1 KB of
-- its payload (every valid message is smaller), with the size and the sha256 of the whole one.
-- Rows from before keep their whole payload: size is its length.
ALTER TABLE dead_letters ADD COLUMN size BIGINT;
ALTER TABLE dead_letters ADD COLUMN payload_sha256 TEXT;
UPDATE dead_letters SET size = length(payload);

-- What the per-panel limits refused (over the message rate, over the dead-letter budget), counted
-- per panel and window instead of stored one by one. site = device = '' for messages that belong
-- to no configured panel (made-up ids share one counter).
CREATE TABLE refusals (
    site      TEXT    NOT NULL,
    device    TEXT    NOT NULL,
    window_ms BIGINT  NOT NULL,     -- start of the window
    reason    TEXT    NOT NULL,
    messages  BIGINT  NOT NULL,
    bytes     BIGINT  NOT NULL,
    first_ms  BIGINT  NOT NULL,
    last_ms   BIGINT  NOT NULL,
    PRIMARY KEY (site, device, window_ms, reason)
);
CREATE INDEX refusals_last ON refusals (last_ms);
