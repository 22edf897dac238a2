-- 004_room_extras: per-user forgotten rooms (POST /rooms/{roomId}/forget)
-- and the index behind GET /timestamp_to_event.

-- A forget applies to the membership the user had when forgetting: the
-- row names that m.room.member event, so a later invite or join (a new
-- membership event) ends it without touching this table.
CREATE TABLE room_forgotten (
    user_id TEXT NOT NULL,
    room_nid BIGINT NOT NULL,
    member_event_nid BIGINT NOT NULL,
    forgotten_ts BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_nid)
);

CREATE INDEX events_room_ts ON events (room_nid, origin_server_ts);
