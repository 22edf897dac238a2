-- 003_rooms: rooms, events, the event graph, state snapshots as shared
-- deltas, current state, and transaction IDs for idempotent sends.
-- docs/STORAGE.md explains the design. Numeric IDs (nids) are assigned by
-- the server under its event write lock, so the SQL is the same on both
-- engines (no engine-specific auto-increment).

CREATE TABLE rooms (
    room_nid BIGINT PRIMARY KEY,
    room_id TEXT NOT NULL UNIQUE,
    room_version TEXT NOT NULL,
    created_ts BIGINT NOT NULL,
    published INTEGER NOT NULL DEFAULT 0 CHECK (published IN (0, 1))
);

CREATE TABLE event_types (
    type_nid BIGINT PRIMARY KEY,
    type TEXT NOT NULL UNIQUE
);

CREATE TABLE state_keys (
    state_key_nid BIGINT PRIMARY KEY,
    state_key TEXT NOT NULL UNIQUE
);

-- One row per event, its canonical PDU stored once in json.
CREATE TABLE events (
    event_nid BIGINT PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    room_nid BIGINT NOT NULL,
    type_nid BIGINT NOT NULL,
    state_key_nid BIGINT,
    sender TEXT NOT NULL,
    depth BIGINT NOT NULL,
    origin_server_ts BIGINT NOT NULL,
    stream_ordering BIGINT UNIQUE,
    state_before_nid BIGINT,
    rejected INTEGER NOT NULL DEFAULT 0 CHECK (rejected IN (0, 1)),
    redacted_by TEXT,
    json TEXT NOT NULL
);
CREATE INDEX events_room_stream ON events (room_nid, stream_ordering);

CREATE TABLE event_edges (
    event_nid BIGINT NOT NULL,
    prev_nid BIGINT NOT NULL,
    PRIMARY KEY (event_nid, prev_nid)
);
CREATE INDEX event_edges_prev ON event_edges (prev_nid);

CREATE TABLE event_auth_edges (
    event_nid BIGINT NOT NULL,
    auth_nid BIGINT NOT NULL,
    PRIMARY KEY (event_nid, auth_nid)
);

CREATE TABLE forward_extremities (
    room_nid BIGINT NOT NULL,
    event_nid BIGINT NOT NULL,
    PRIMARY KEY (room_nid, event_nid)
);

-- A snapshot is its layer (state_layers rows) over its parent snapshot.
CREATE TABLE state_snapshots (
    snapshot_nid BIGINT PRIMARY KEY,
    room_nid BIGINT NOT NULL,
    parent_nid BIGINT,
    layer_size BIGINT NOT NULL,
    state_size BIGINT NOT NULL
);

CREATE TABLE state_layers (
    snapshot_nid BIGINT NOT NULL,
    type_nid BIGINT NOT NULL,
    state_key_nid BIGINT NOT NULL,
    event_nid BIGINT,
    PRIMARY KEY (snapshot_nid, type_nid, state_key_nid)
);

-- The resolved state at the forward extremities only.
CREATE TABLE room_current_state (
    room_nid BIGINT NOT NULL,
    type_nid BIGINT NOT NULL,
    state_key_nid BIGINT NOT NULL,
    event_nid BIGINT NOT NULL,
    membership TEXT,
    PRIMARY KEY (room_nid, type_nid, state_key_nid)
);
CREATE INDEX room_current_state_member ON room_current_state (state_key_nid, membership);

-- The current snapshot of each room.
CREATE TABLE room_heads (
    room_nid BIGINT PRIMARY KEY,
    snapshot_nid BIGINT NOT NULL
);

-- PUT .../send and .../state with a transaction ID are idempotent per device.
CREATE TABLE event_txns (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    created_ts BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id)
);

CREATE TABLE room_aliases (
    alias TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    creator TEXT NOT NULL
);
CREATE INDEX room_aliases_room ON room_aliases (room_id);
