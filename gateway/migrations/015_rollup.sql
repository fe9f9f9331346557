-- Additive rollups of the derived polls and force-majeure reports (gateway/rollup.py), the sums
-- every KPI of the method is a ratio of; `rating report` aggregates them in SQL instead of
-- loading every poll. Derived: maintained with each panel's derivation and with every verdict,
-- dropped and re-created by `rating rebuild`. Grain: panel x employee x question (and kind) x
-- local day of the office (in the timezone in force at the poll's time) - see docs/kpi.md.

-- Whether a poll counts toward exact conversion and visitor coverage (the panel's `conversion`
-- setting at its time): the report counts the contact polls inside the counted time in SQL.
-- NULL on rows derived before this migration: `rating rebuild` fills it.
ALTER TABLE polls ADD COLUMN contact INTEGER;

CREATE TABLE poll_rollup (
    site        TEXT    NOT NULL,
    device      TEXT    NOT NULL,
    employee    TEXT    NOT NULL,  -- '' = nobody on the roster
    question    TEXT    NOT NULL,  -- '' = no question configured
    kind        TEXT    NOT NULL,  -- staff|office|loyalty, '' = unknown
    tz          TEXT    NOT NULL,  -- the office timezone at the polls' time
    day         TEXT    NOT NULL,  -- local date YYYY-MM-DD
    week        TEXT    NOT NULL,  -- its ISO week YYYY-Www
    month       TEXT    NOT NULL,  -- YYYY-MM
    min_ms      BIGINT  NOT NULL,  -- first and last opening time of the row's polls
    max_ms      BIGINT  NOT NULL,
    polls       BIGINT  NOT NULL,  -- every poll, valid or not
    invalid     BIGINT  NOT NULL,  -- marked invalid by an expert (count nowhere else)
    yes         BIGINT  NOT NULL,  -- the rest: valid polls
    no          BIGINT  NOT NULL,
    unsure      BIGINT  NOT NULL,
    silent      BIGINT  NOT NULL,
    fm_no       BIGINT  NOT NULL,  -- staff No / silent inside a confirmed force-majeure period
    fm_silent   BIGINT  NOT NULL,
    contact     BIGINT  NOT NULL,  -- valid polls that count toward conversion / coverage
    t_device    BIGINT  NOT NULL,  -- valid polls by where their time came from
    t_repaired  BIGINT  NOT NULL,
    t_arrival   BIGINT  NOT NULL,
    PRIMARY KEY (site, device, employee, question, kind, tz, day)
);
CREATE INDEX poll_rollup_day ON poll_rollup (day);

CREATE TABLE fm_rollup (
    site        TEXT    NOT NULL,
    device      TEXT    NOT NULL,
    employee    TEXT    NOT NULL,
    question    TEXT    NOT NULL,  -- the panel's question when the report was pressed
    tz          TEXT    NOT NULL,
    day         TEXT    NOT NULL,  -- local date of the period's start
    week        TEXT    NOT NULL,
    month       TEXT    NOT NULL,
    min_ms      BIGINT  NOT NULL,  -- first and last start time of the row's reports
    max_ms      BIGINT  NOT NULL,
    reports     BIGINT  NOT NULL,
    confirmed   BIGINT  NOT NULL,
    rejected    BIGINT  NOT NULL,
    PRIMARY KEY (site, device, employee, question, tz, day)
);
CREATE INDEX fm_rollup_day ON fm_rollup (day);
