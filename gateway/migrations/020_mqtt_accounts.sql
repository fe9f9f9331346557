-- MQTT accounts (gateway/accounts.py owns these tables; docs/security.md).
-- username: panel.<site>.<device> | gateway[.<id>] | counts.<id> | operator.<id>.
-- pw_hash: the active password as Mosquitto's $7$ PBKDF2-SHA512 hash; NULL: the account cannot
-- log in (a panel whose password was not delivered yet, or a revoked account). No plaintext is
-- ever stored: a rotation keeps only the hash of the password delivered to the panel
-- (pending_hash) until the panel confirms holding version pending_ver.
CREATE TABLE mqtt_accounts (
    username     TEXT    PRIMARY KEY,
    role         TEXT    NOT NULL,
    site         TEXT,
    device       TEXT,
    all_sites    INTEGER NOT NULL DEFAULT 0,
    pw_hash      TEXT,
    ver          BIGINT  NOT NULL DEFAULT 0,
    pending_ver  BIGINT,
    pending_hash TEXT,
    created_ms   BIGINT  NOT NULL,
    changed_ms   BIGINT  NOT NULL,
    revoked_ms   BIGINT
);

-- The sites a counts or operator account covers (none with all_sites = 1).
CREATE TABLE mqtt_account_sites (
    username TEXT NOT NULL,
    site     TEXT NOT NULL,
    PRIMARY KEY (username, site)
);
