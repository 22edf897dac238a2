-- 012_presence: the presence of local users (spec "Presence"), so it
-- survives a restart. svc/presence keeps the live state in memory and
-- writes a row only when something visible changes (state, status
-- message, currently_active), not on every activity bump: last_active_ts
-- is as of that change. stream_pos is the STREAM_PRESENCE position of the
-- change (recorded in stream_positions in the same transaction).
CREATE TABLE presence (
    user_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    status_msg TEXT,
    last_active_ts BIGINT NOT NULL,
    stream_pos BIGINT NOT NULL
);
