-- 009_account_data: account data (spec "Client Config") and room tags
-- (spec "Room Tagging"). One row per user, room ('' for global account
-- data) and event type; tags are the room's m.tag entry, content
-- {"tags": {...}}. content is the JSON object as stored; an empty object
-- means deleted (MSC3391): GET answers 404 and initial syncs skip it,
-- while incremental syncs still deliver it. stream_pos is the
-- STREAM_ACCOUNT_DATA position of the last change (svc/streams.h).
CREATE TABLE account_data (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    content TEXT NOT NULL,
    stream_pos BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id, type)
);
CREATE INDEX account_data_user_stream ON account_data (user_id, stream_pos);
