-- 008_streams: the last position handed out on each persistent /sync
-- stream other than room events (svc/streams.h numbers them), so a
-- restart carries on above every token already given to a client.
CREATE TABLE stream_positions (
    stream INTEGER PRIMARY KEY,
    pos BIGINT NOT NULL
);

-- Read receipts (spec "Receipts"): the newest receipt per room, type,
-- user and thread ('' for an unthreaded receipt). event_stream is the
-- stream ordering of the receipted event (unread counts start after it);
-- stream_pos is the receipt stream position of the last change.
CREATE TABLE receipts (
    room_id TEXT NOT NULL,
    receipt_type TEXT NOT NULL,
    user_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_stream BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    stream_pos BIGINT NOT NULL,
    PRIMARY KEY (room_id, receipt_type, user_id, thread_id)
);
CREATE INDEX receipts_stream ON receipts (stream_pos);
CREATE INDEX receipts_user_room ON receipts (user_id, room_id);
