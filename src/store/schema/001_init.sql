-- 001_init: the migration log and local accounts.
--
-- Shared by SQLite and PostgreSQL. Booleans are INTEGER 0/1 on both
-- engines so the queries in store.c bind and read them the same way.

-- One row per applied migration; the schema version is the highest.
CREATE TABLE schema_version (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_ts BIGINT NOT NULL
);

-- Local accounts. password_hash is an argon2id string, NULL when the
-- account cannot log in with a password.
CREATE TABLE users (
    user_id TEXT PRIMARY KEY,
    password_hash TEXT,
    is_admin INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
    is_guest INTEGER NOT NULL DEFAULT 0 CHECK (is_guest IN (0, 1)),
    deactivated INTEGER NOT NULL DEFAULT 0 CHECK (deactivated IN (0, 1)),
    created_ts BIGINT NOT NULL
);
