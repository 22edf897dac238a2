-- 011_threads: the threads of each room by latest activity (spec
-- "Threading", GET /threads), kept by the event writer so /threads pages
-- through an index instead of grouping every m.thread relation of the
-- room; and an index on relation senders for the duplicate annotation
-- check (module "Event annotations and reactions") and thread
-- participation.
CREATE TABLE threads (
    room_nid BIGINT NOT NULL,
    root_id TEXT NOT NULL,             -- the thread root's event ID
    latest_stream BIGINT NOT NULL,     -- stream ordering of the latest live m.thread child
    PRIMARY KEY (room_nid, root_id)
);
CREATE INDEX threads_activity ON threads (room_nid, latest_stream);
CREATE INDEX event_relations_sender ON event_relations (relates_to, rel_type, sender, key);

-- Threads that exist already: their latest child neither rejected nor
-- redacted, as /threads counted them before.
INSERT INTO threads (room_nid, root_id, latest_stream)
SELECT r.room_nid, r.relates_to, MAX(c.stream_ordering)
FROM event_relations r JOIN events c ON c.event_nid = r.event_nid
WHERE r.rel_type = 'm.thread' AND c.redacted_by IS NULL AND c.rejected = 0
  AND c.stream_ordering IS NOT NULL
GROUP BY r.room_nid, r.relates_to;
