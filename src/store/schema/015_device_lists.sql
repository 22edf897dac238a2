-- 015_device_lists: which users' device lists changed when (spec
-- "Tracking the device list for a user"). A row is written at the
-- STREAM_DEVICE_LISTS position of the transaction that added, renamed or
-- deleted a device, uploaded its identity keys or changed cross-signing
-- keys; /sync and /keys/changes read the users changed between two
-- positions. Older rows than any client could still hold are not needed
-- for correctness of new clients (an initial sync needs none of them).
CREATE TABLE device_list_changes (
    stream_pos BIGINT NOT NULL,
    user_id TEXT NOT NULL,
    PRIMARY KEY (stream_pos, user_id)
);
CREATE INDEX device_list_changes_user ON device_list_changes (user_id, stream_pos);
