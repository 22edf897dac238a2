-- 006_reports: content reports from users (spec "Reporting content"):
-- events, rooms and users, kept for the server's administrators.

-- One row per report. `kind` says what was reported: 'event' (room_id and
-- event_id set), 'room' (room_id set) or 'user' (target_user_id set).
-- IDs are assigned as max+1 by the insert itself; reports are rare and
-- a collision between two concurrent inserts is retried by the store.
CREATE TABLE reports (
    id BIGINT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('event', 'room', 'user')),
    received_ts BIGINT NOT NULL,
    reporter TEXT NOT NULL,
    room_id TEXT,
    event_id TEXT,
    target_user_id TEXT,
    reason TEXT,
    score BIGINT
);

CREATE INDEX reports_kind ON reports (kind, id);
