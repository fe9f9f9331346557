-- Settings history, derived tables and expert verdicts (gateway part 2). Portable SQL, see
-- gateway/db.py. Times are epoch milliseconds. Everything here except site_*, verdicts and
-- config_pushes is derived: `rating rebuild` drops and re-creates it from raw_events + history.

-- One row per `rating site apply` that changed something.
CREATE TABLE site_revisions (
    rev        BIGINT  PRIMARY KEY,
    applied_ms BIGINT  NOT NULL,
    source     TEXT    NOT NULL,   -- the file name given
    sha256     TEXT    NOT NULL,   -- of the file text
    changes    BIGINT  NOT NULL
);

-- Append-only settings history (gateway/site.py). data is JSON, NULL = removed from the file.
-- The value at time t: greatest valid_from_ms <= t, ties -> greatest rev.
CREATE TABLE site_history (
    kind          TEXT    NOT NULL,  -- deployment|site|question|employee|panel|roster
    key           TEXT    NOT NULL,
    valid_from_ms BIGINT  NOT NULL,
    rev           BIGINT  NOT NULL,
    explicit_from INTEGER NOT NULL,  -- 1: `from` given in the file; 0: stamped with the apply time
    data          TEXT,
    PRIMARY KEY (kind, key, valid_from_ms, rev)
);

-- Derived: one row per poll. Identity (site, device, open_seq) = "site/device/seq".
CREATE TABLE polls (
    site          TEXT    NOT NULL,
    device        TEXT    NOT NULL,
    open_seq      BIGINT  NOT NULL,
    opened_ms     BIGINT  NOT NULL,
    closes_ms     BIGINT  NOT NULL,  -- end of the response window
    answer        TEXT,              -- yes|no|unsure, NULL = silent
    answer_seq    BIGINT,
    answered_ms   BIGINT,
    extra_presses BIGINT  NOT NULL,  -- further answer presses in the same window
    seller_presses BIGINT NOT NULL,  -- seller_short presses merged into this poll (1 = no duplicate)
    time_source   TEXT    NOT NULL,  -- device|repaired|arrival (of the opening press)
    employee      TEXT,              -- roster at opened_ms
    question      TEXT,              -- question id configured at opened_ms
    kind          TEXT,              -- staff|office|loyalty
    video_url     TEXT,
    provisional   INTEGER NOT NULL,  -- 1: closed by the clock, may still change when late events arrive
    PRIMARY KEY (site, device, open_seq)
);
CREATE INDEX polls_opened ON polls (opened_ms);

-- Derived: force-majeure reports (a long press, or a run of them). Identity (site, device, seq).
CREATE TABLE force_majeure (
    site        TEXT    NOT NULL,
    device      TEXT    NOT NULL,
    seq         BIGINT  NOT NULL,    -- the first long press
    pressed_ms  BIGINT  NOT NULL,
    start_ms    BIGINT  NOT NULL,
    end_ms      BIGINT  NOT NULL,
    presses     BIGINT  NOT NULL,
    time_source TEXT    NOT NULL,
    employee    TEXT,
    video_url   TEXT,
    provisional INTEGER NOT NULL,
    PRIMARY KEY (site, device, seq)
);
CREATE INDEX force_majeure_start ON force_majeure (start_ms);

-- Derived: answer presses with no open window (never polls; counted).
CREATE TABLE unsolicited (
    site        TEXT    NOT NULL,
    device      TEXT    NOT NULL,
    seq         BIGINT  NOT NULL,
    at_ms       BIGINT  NOT NULL,
    ev          TEXT    NOT NULL,
    time_source TEXT    NOT NULL,
    PRIMARY KEY (site, device, seq)
);

-- Derived: input the window builder found odd (time going backwards, out of order ...).
CREATE TABLE anomalies (
    site     TEXT    NOT NULL,
    device   TEXT    NOT NULL,
    seq      BIGINT  NOT NULL,
    n        BIGINT  NOT NULL,       -- several anomalies may name one seq
    at_ms    BIGINT,
    kind     TEXT    NOT NULL,
    detail   TEXT    NOT NULL,
    PRIMARY KEY (site, device, seq, n)
);

-- Derived bookkeeping for incremental updates (gateway/derive.py): the window builder's state
-- after the last fed event, and what would force a per-panel re-derivation.
CREATE TABLE derive_state (
    site       TEXT    NOT NULL,
    device     TEXT    NOT NULL,
    fed_seq    BIGINT  NOT NULL,
    fed_count  BIGINT  NOT NULL,
    snapshot   TEXT    NOT NULL,
    watch      TEXT    NOT NULL,     -- JSON: boot offsets used, settings revision
    updated_ms BIGINT  NOT NULL,
    PRIMARY KEY (site, device)
);

-- Expert verdicts, append-only: the latest (by id) per target wins; all are the audit trail.
CREATE TABLE verdicts (
    id        {{AUTO_ID}},
    target    TEXT    NOT NULL,      -- poll|fm
    site      TEXT    NOT NULL,
    device    TEXT    NOT NULL,
    seq       BIGINT  NOT NULL,
    verdict   TEXT    NOT NULL,      -- poll: invalid|valid; fm: confirm|reject
    from_ms   BIGINT,                -- fm confirm: the confirmed period (NULL = as reported)
    to_ms     BIGINT,
    reason    TEXT    NOT NULL,
    by_name   TEXT    NOT NULL,
    at_ms     BIGINT  NOT NULL
);
CREATE INDEX verdicts_target ON verdicts (target, site, device, seq);

-- Config messages published (retained) to panels; the newest ver per panel is what it should run.
CREATE TABLE config_pushes (
    site      TEXT    NOT NULL,
    device    TEXT    NOT NULL,
    ver       BIGINT  NOT NULL,
    payload   TEXT    NOT NULL,
    pushed_ms BIGINT  NOT NULL,
    PRIMARY KEY (site, device, ver)
);
