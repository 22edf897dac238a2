-- 017_room_keys: server-side key backups (spec "Server-side key
-- backups"): each user's backup versions and the encrypted megolm
-- session keys stored in them. The server cannot read the keys; it keeps
-- one row per (version, room, session) and chooses between two uploads of
-- the same session by their metadata (store_room_keys_put).
--
-- Versions are numbered per user 1, 2, ... and a deleted version keeps its
-- row with deleted = 1, so its number is never handed out again and a
-- second DELETE of it still succeeds. The current version is the highest
-- one not deleted. etag counts the changes to the version's keys.
CREATE TABLE e2e_room_keys_versions (
    user_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    algorithm TEXT NOT NULL,
    auth_data TEXT NOT NULL,
    etag BIGINT NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
    PRIMARY KEY (user_id, version)
);

-- session_data is the algorithm's encrypted object as uploaded (JSON text).
CREATE TABLE e2e_room_keys (
    user_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    room_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    first_message_index BIGINT NOT NULL,
    forwarded_count BIGINT NOT NULL,
    is_verified INTEGER NOT NULL CHECK (is_verified IN (0, 1)),
    session_data TEXT NOT NULL,
    PRIMARY KEY (user_id, version, room_id, session_id)
);
