-- 007_sync: filters uploaded with POST /user/{userId}/filter (spec
-- "Filtering"). Filter IDs are numbers per user, handed out as strings;
-- the JSON is kept as uploaded (compact, keys sorted) so the same filter
-- uploaded again gets its old ID back.
CREATE TABLE user_filters (
    user_id TEXT NOT NULL,
    filter_id BIGINT NOT NULL,
    json TEXT NOT NULL,
    PRIMARY KEY (user_id, filter_id)
);

-- /sync puts unsigned.transaction_id on the events a device sent itself.
CREATE INDEX event_txns_event ON event_txns (event_id);
