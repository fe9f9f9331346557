-- Accounts of the web console (`rating web`), owned by gateway/users.py. Portable SQL, see
-- gateway/db.py. Times are epoch milliseconds; booleans INTEGER 0/1.

-- One row per person (or integration) who signs in. Scope: the offices (site ids) and regions
-- of the site file the account may see; all_offices = 1 sees every office.
CREATE TABLE users (
    id            {{AUTO_ID}},
    username      TEXT    NOT NULL UNIQUE,
    name          TEXT    NOT NULL,
    role          TEXT    NOT NULL,   -- admin|expert|analyst|store-manager|technician
    all_offices   INTEGER NOT NULL,
    offices       TEXT    NOT NULL,   -- JSON list of site ids
    regions       TEXT    NOT NULL,   -- JSON list of region names
    lang          TEXT,               -- ru|en; NULL: the deployment's language
    password_hash TEXT    NOT NULL,   -- Argon2id (pwdlib), never the password
    must_change   INTEGER NOT NULL,   -- 1: the next sign-in must set a new password
    disabled      INTEGER NOT NULL,
    epoch         BIGINT  NOT NULL,   -- +1 on a new password or disable: every session ends
    created_ms    BIGINT  NOT NULL,
    updated_ms    BIGINT  NOT NULL
);

-- Bearer tokens for integrations (JSON API). Only a hash is stored; the token is shown once.
CREATE TABLE api_tokens (
    id           {{AUTO_ID}},
    user_id      BIGINT  NOT NULL REFERENCES users (id),
    name         TEXT    NOT NULL,
    token_hash   TEXT    NOT NULL UNIQUE,   -- hex sha256 of the token
    prefix       TEXT    NOT NULL,          -- its first characters, to recognise it in a listing
    created_ms   BIGINT  NOT NULL,
    created_by   TEXT    NOT NULL,
    last_used_ms BIGINT,
    revoked_ms   BIGINT
);

-- Sign-in attempts, for the login rate limit (per account name and per client address).
CREATE TABLE login_attempts (
    id       {{AUTO_ID}},
    username TEXT    NOT NULL,
    client   TEXT    NOT NULL,
    at_ms    BIGINT  NOT NULL,
    ok       INTEGER NOT NULL
);
CREATE INDEX login_attempts_user ON login_attempts (username, at_ms);
CREATE INDEX login_attempts_client ON login_attempts (client, at_ms);

-- Secrets the console generates for itself (the session-cookie signing key), shared by every
-- console process on this database.
CREATE TABLE console_secrets (
    name       TEXT   PRIMARY KEY,
    value      TEXT   NOT NULL,
    created_ms BIGINT NOT NULL
);
