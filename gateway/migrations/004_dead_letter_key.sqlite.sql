-- Dead letters get an idempotency key: the same bad message (a broker redelivery, `rating replay`
-- run twice, a panel resending) is stored once, with how often it was seen and when last.
-- msg_key = hex sha256 of (topic UTF-8, one NUL byte, payload): gateway/store.py dead_letter_key.
-- The panel (site, device) and seq of an event that could not be stored, where readable.
-- Only the key expression differs between the dialect files.
ALTER TABLE dead_letters ADD COLUMN msg_key TEXT;
-- SQLite has no sha256: gateway/db.py registers rating_dead_letter_key for migrations.
ALTER TABLE dead_letters ADD COLUMN seen BIGINT NOT NULL DEFAULT 1;
ALTER TABLE dead_letters ADD COLUMN last_seen_ms BIGINT;
ALTER TABLE dead_letters ADD COLUMN site TEXT;
ALTER TABLE dead_letters ADD COLUMN device TEXT;
ALTER TABLE dead_letters ADD COLUMN seq BIGINT;
UPDATE dead_letters SET msg_key = rating_dead_letter_key(topic, payload), last_seen_ms = received_ms;

-- letters stored more than once before this migration (a stalled panel's resends: maybe
-- tens of thousands of copies): keep the first, with the count and the last arrival of all
-- copies. One grouping pass and lookups by id: a per-row MIN(id) subquery is quadratic when
-- the planner walks the primary key (PostgreSQL without statistics for msg_key does).
CREATE TEMP TABLE dead_letters_merge (keep BIGINT PRIMARY KEY, n BIGINT NOT NULL, last_ms BIGINT NOT NULL);
INSERT INTO dead_letters_merge (keep, n, last_ms)
SELECT MIN(id), COUNT(*), MAX(received_ms) FROM dead_letters GROUP BY msg_key;
UPDATE dead_letters SET
    seen = (SELECT m.n FROM dead_letters_merge m WHERE m.keep = dead_letters.id),
    last_seen_ms = (SELECT m.last_ms FROM dead_letters_merge m WHERE m.keep = dead_letters.id)
WHERE id IN (SELECT keep FROM dead_letters_merge WHERE n > 1);
DELETE FROM dead_letters
WHERE NOT EXISTS (SELECT 1 FROM dead_letters_merge m WHERE m.keep = dead_letters.id);
DROP TABLE dead_letters_merge;
CREATE UNIQUE INDEX dead_letters_key ON dead_letters (msg_key);
CREATE INDEX dead_letters_last_seen ON dead_letters (last_seen_ms);
CREATE INDEX dead_letters_panel ON dead_letters (site, device, seq);

-- Seqs of a panel that count as handled for its cumulative ack without a stored event: a
-- dead-lettered event whose seq could be read (inferred = 0), or the gap an unreadable event
-- message of that panel stands in for (inferred = 1; the rule: gateway/README.md, "Acks and
-- lost events"). The ack run goes over raw_events and these; status and reports show them lost.
CREATE TABLE dead_seqs (
    site        TEXT    NOT NULL,
    device      TEXT    NOT NULL,
    seq         BIGINT  NOT NULL,
    msg_key     TEXT    NOT NULL,   -- the dead letter (dead_letters.msg_key)
    inferred    INTEGER NOT NULL,
    received_ms BIGINT  NOT NULL,
    PRIMARY KEY (site, device, seq)
);
