-- Where `rating broker config` last wrote Mosquitto's password and ACL files (gateway/accounts.py
-- owns this table; docs/security.md). One row at most. `rating site apply`, `rating panel
-- credentials` and the gateway's password rotation rewrite those two files after a change of
-- accounts and signal the Mosquitto whose pid is in pid_file (NULL: say what to run instead).
CREATE TABLE broker_files (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    folder     TEXT    NOT NULL,
    root       TEXT    NOT NULL,
    grp        TEXT,
    pid_file   TEXT,
    written_ms BIGINT  NOT NULL
);
