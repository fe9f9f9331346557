-- POS transactions and their matches to polls (gateway/transactions.py owns these tables;
-- nothing else reads or writes them). Times are epoch milliseconds. docs/transactions.md.

-- One row per sale, stored once per (site, tx_id) however often the POS sends it (MQTT QoS 1
-- redelivery, a CSV imported twice, an HTTP retry): the first arrival wins.
CREATE TABLE transactions (
    site        TEXT    NOT NULL,
    tx_id       TEXT    NOT NULL,   -- the POS's own id of the sale (receipt number)
    till        TEXT    NOT NULL,   -- the till (or panel) id the sale was made at
    at_ms       BIGINT  NOT NULL,   -- the POS's time of the sale
    loyalty     TEXT,               -- pseudonymous loyalty-card reference; NULL: none or purged
    source      TEXT    NOT NULL,   -- mqtt | csv:<file> | http:<account>
    received_ms BIGINT  NOT NULL,
    PRIMARY KEY (site, tx_id)
);
CREATE INDEX transactions_till_time ON transactions (site, till, at_ms);
CREATE INDEX transactions_received ON transactions (received_ms);

-- Derived (`rating rebuild` recreates it): which poll followed which sale, per the rules of
-- gateway/txmatch.py. A poll and a sale are each in at most one row.
CREATE TABLE tx_matches (
    site        TEXT    NOT NULL,
    device      TEXT    NOT NULL,
    open_seq    BIGINT  NOT NULL,
    till        TEXT    NOT NULL,
    poll_ms     BIGINT  NOT NULL,   -- the poll's opening (the seller's press)
    tx_id       TEXT    NOT NULL,
    tx_ms       BIGINT  NOT NULL,
    PRIMARY KEY (site, device, open_seq)
);
CREATE UNIQUE INDEX tx_matches_tx ON tx_matches (site, tx_id);
CREATE INDEX tx_matches_till_time ON tx_matches (site, till, poll_ms);

-- A secret per deployment for pseudonymising a raw card number that arrives (HMAC-SHA256).
CREATE TABLE tx_secrets (
    name        TEXT    PRIMARY KEY,
    secret      TEXT    NOT NULL,
    created_ms  BIGINT  NOT NULL
);
