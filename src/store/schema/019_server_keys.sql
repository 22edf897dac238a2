-- 019_server_keys: other servers' signing keys (spec: Server-Server API
-- "Retrieving server keys"), as fetched from /_matrix/key/v2/server (or a
-- notary) and checked: one row per (server, key ID) with the public key
-- and until when it may be trusted. valid_until_ts is for keys in
-- verify_keys; expired_ts is non-zero for old_verify_keys (trusted for what was
-- signed before it). key_json is the whole signed response the key came
-- in, which /_matrix/key/v2/query serves on to others as a notary.
CREATE TABLE server_keys (
    server_name TEXT NOT NULL,
    key_id TEXT NOT NULL,
    public_key TEXT NOT NULL,
    valid_until_ts BIGINT NOT NULL,
    expired_ts BIGINT NOT NULL DEFAULT 0, -- 0: a current key
    fetched_ts BIGINT NOT NULL,
    key_json TEXT NOT NULL,
    PRIMARY KEY (server_name, key_id)
);
