-- 005_relations: the m.relates_to index (spec "Forming relationships
-- between events"), filled when an event is stored, so relations,
-- threads and bundled aggregations are index lookups.
CREATE TABLE event_relations (
    event_nid BIGINT PRIMARY KEY,      -- the child event
    room_nid BIGINT NOT NULL,
    relates_to TEXT NOT NULL,          -- the parent's event ID
    rel_type TEXT NOT NULL,
    event_type TEXT NOT NULL,
    sender TEXT NOT NULL,
    key TEXT                           -- m.annotation key, or NULL
);
CREATE INDEX event_relations_parent ON event_relations (relates_to, rel_type, event_nid);
