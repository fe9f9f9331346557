-- PostgreSQL: raw_events and polls become partitioned by calendar month (UTC) with native
-- declarative partitioning (PARTITION BY RANGE), so old months can be archived and dropped
-- whole, and a month's scans and index lookups touch one partition (docs/partitions.md).
--
-- Partition keys. raw_events: received_ms, the gateway's clock when the event was stored
-- (never NULL, never in a panel's wrong clock, and only ever "now": old months stop changing,
-- which is what makes them safe to archive). polls: opened_ms (what every report and page
-- ranges over). A unique key of a partitioned table must include its partition key, so
-- raw_events' key is (site, device, seq, received_ms): the one key of an event, whatever
-- month it arrived in, is raw_event_keys (migration 055, unpartitioned), which ingest checks
-- first. polls' key is (site, device, open_seq, opened_ms): derivation is the only writer, per
-- panel under its lock, and writes a poll once (gateway/derive.py).
--
-- Partitions are named <table>_YYYYMM; a DEFAULT partition (<table>_default) takes a row of a
-- month that has none yet (a panel clock years off), so nothing is ever refused. The gateway
-- creates the coming months ahead (gateway/partitions.py, every hour); creating a month moves
-- the rows the default partition holds for it.

CREATE OR REPLACE FUNCTION rating_month_partitions(parent TEXT, col TEXT, from_ms BIGINT, to_ms BIGINT)
RETURNS INTEGER LANGUAGE plpgsql AS $$
DECLARE
    m DATE := date_trunc('month', to_timestamp(from_ms / 1000.0) AT TIME ZONE 'UTC')::date;
    last DATE := date_trunc('month', to_timestamp(to_ms / 1000.0) AT TIME ZONE 'UTC')::date;
    lo BIGINT;
    hi BIGINT;
    part TEXT;
    made INTEGER := 0;
BEGIN
    -- one creator at a time (several gateways share the database)
    PERFORM pg_advisory_xact_lock(727002);
    IF to_regclass(parent || '_default') IS NULL THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF %I DEFAULT', parent || '_default', parent);
    END IF;
    WHILE m <= last LOOP
        part := parent || '_' || to_char(m, 'YYYYMM');
        IF to_regclass(part) IS NULL THEN
            lo := (extract(epoch FROM m::timestamp) * 1000)::bigint;
            hi := (extract(epoch FROM (m + interval '1 month')::timestamp) * 1000)::bigint;
            EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS)', part, parent);
            EXECUTE format(
                'WITH moved AS (DELETE FROM %I WHERE %I >= %s AND %I < %s RETURNING *) INSERT INTO %I SELECT * FROM moved',
                parent || '_default', col, lo, col, hi, part);
            EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%s) TO (%s)', parent, part, lo, hi);
            made := made + 1;
        END IF;
        m := (m + interval '1 month')::date;
    END LOOP;
    RETURN made;
END
$$;

-- raw_events: the rows move into a partitioned table of the same name and columns
ALTER TABLE raw_events RENAME TO raw_events_unpartitioned;
ALTER INDEX raw_events_pkey RENAME TO raw_events_unpartitioned_pkey;
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
    PRIMARY KEY (site, device, seq, received_ms)
) PARTITION BY RANGE (received_ms);
-- a partition per month that has events (within ten years of now; others wait in the default)
-- and the months around now
SELECT rating_month_partitions('raw_events', 'received_ms', m, m) FROM (
    SELECT DISTINCT (extract(epoch FROM date_trunc('month', to_timestamp(received_ms / 1000.0) AT TIME ZONE 'UTC')) * 1000)::bigint AS m
    FROM raw_events_unpartitioned) months
WHERE m BETWEEN (extract(epoch FROM now()) * 1000)::bigint - 3650 * CAST(86400000 AS BIGINT) AND (extract(epoch FROM now()) * 1000)::bigint + 62 * CAST(86400000 AS BIGINT);
SELECT rating_month_partitions('raw_events', 'received_ms',
    (extract(epoch FROM now()) * 1000)::bigint - 31 * CAST(86400000 AS BIGINT), (extract(epoch FROM now()) * 1000)::bigint + 62 * CAST(86400000 AS BIGINT));
INSERT INTO raw_events (site, device, seq, boot, up_ms, t_ms, ev, hold_ms, received_ms, payload)
SELECT site, device, seq, boot, up_ms, t_ms, ev, hold_ms, received_ms, payload FROM raw_events_unpartitioned;
DROP TABLE raw_events_unpartitioned;

-- polls: derived, but moved too (a rebuild is not needed after the upgrade)
ALTER TABLE polls RENAME TO polls_unpartitioned;
ALTER INDEX polls_pkey RENAME TO polls_unpartitioned_pkey;
DROP INDEX polls_opened;
DROP INDEX polls_site_opened;
CREATE TABLE polls (
    site          TEXT    NOT NULL,
    device        TEXT    NOT NULL,
    open_seq      BIGINT  NOT NULL,
    opened_ms     BIGINT  NOT NULL,
    closes_ms     BIGINT  NOT NULL,
    answer        TEXT,
    answer_seq    BIGINT,
    answered_ms   BIGINT,
    extra_presses BIGINT  NOT NULL,
    seller_presses BIGINT NOT NULL,
    time_source   TEXT    NOT NULL,
    employee      TEXT,
    question      TEXT,
    kind          TEXT,
    video_url     TEXT,
    provisional   INTEGER NOT NULL,
    contact       INTEGER,
    PRIMARY KEY (site, device, open_seq, opened_ms)
) PARTITION BY RANGE (opened_ms);
SELECT rating_month_partitions('polls', 'opened_ms', m, m) FROM (
    SELECT DISTINCT (extract(epoch FROM date_trunc('month', to_timestamp(opened_ms / 1000.0) AT TIME ZONE 'UTC')) * 1000)::bigint AS m
    FROM polls_unpartitioned) months
WHERE m BETWEEN (extract(epoch FROM now()) * 1000)::bigint - 3650 * CAST(86400000 AS BIGINT) AND (extract(epoch FROM now()) * 1000)::bigint + 62 * CAST(86400000 AS BIGINT);
SELECT rating_month_partitions('polls', 'opened_ms',
    (extract(epoch FROM now()) * 1000)::bigint - 31 * CAST(86400000 AS BIGINT), (extract(epoch FROM now()) * 1000)::bigint + 62 * CAST(86400000 AS BIGINT));
INSERT INTO polls (site, device, open_seq, opened_ms, closes_ms, answer, answer_seq, answered_ms, extra_presses,
    seller_presses, time_source, employee, question, kind, video_url, provisional, contact)
SELECT site, device, open_seq, opened_ms, closes_ms, answer, answer_seq, answered_ms, extra_presses,
    seller_presses, time_source, employee, question, kind, video_url, provisional, contact FROM polls_unpartitioned;
DROP TABLE polls_unpartitioned;
CREATE INDEX polls_opened ON polls (opened_ms);
CREATE INDEX polls_site_opened ON polls (site, opened_ms);
