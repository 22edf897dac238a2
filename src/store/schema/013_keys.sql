-- 013_keys: end-to-end encryption keys of local devices (spec
-- "End-to-End Encryption": device keys, one-time and fallback keys).
-- JSON columns hold the objects as uploaded (device keys without their
-- `unsigned`, which the server fills in when serving them). Rows belong
-- to a device of `devices`; deleting a device deletes them too
-- (store_keys_prune_devices). Claims delete one-time keys, so a key
-- handed out once is gone.
CREATE TABLE e2e_device_keys (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    key_json TEXT NOT NULL,
    updated_ts BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id)
);

-- upload_seq orders claims by upload (one value per /keys/upload call).
CREATE TABLE e2e_one_time_keys (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    key_id TEXT NOT NULL,
    key_json TEXT NOT NULL,
    upload_seq BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id, algorithm, key_id)
);
CREATE INDEX e2e_one_time_keys_order
    ON e2e_one_time_keys (user_id, device_id, algorithm, upload_seq);

-- One fallback key per device and algorithm; `used` is set when a claim
-- hands it out and cleared when a different key replaces it.
CREATE TABLE e2e_fallback_keys (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    key_id TEXT NOT NULL,
    key_json TEXT NOT NULL,
    used INTEGER NOT NULL DEFAULT 0 CHECK (used IN (0, 1)),
    PRIMARY KEY (user_id, device_id, algorithm)
);
