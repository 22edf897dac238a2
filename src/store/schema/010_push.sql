-- 010_push: push rules (spec "Push Rules") and the push actions of
-- events, the input of unread notification counts.
--
-- push_rules holds a user's own rules; `position` orders the rules of one
-- kind, lowest first (most important). `conditions` (override/underride)
-- and `actions` are JSON array text, `pattern` is for content rules.
CREATE TABLE push_rules (
    user_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    conditions TEXT,
    pattern TEXT,
    actions TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    PRIMARY KEY (user_id, kind, rule_id)
);

-- A user's edits of server-default rules (IDs starting with '.'): NULL
-- columns keep the default.
CREATE TABLE push_rule_defaults (
    user_id TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    enabled INTEGER CHECK (enabled IN (0, 1)),
    actions TEXT,
    PRIMARY KEY (user_id, rule_id)
);

-- One row per (local user, event) whose push rules said "notify", written
-- by the push thread (svc/push.c) shortly after the event commits.
-- thread_id is the thread root for events in a thread, NULL for the main
-- timeline. Unread counts are ranges of the primary key after the user's
-- read position; the stream index serves redactions.
CREATE TABLE event_push_actions (
    user_id TEXT NOT NULL,
    room_nid BIGINT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    notify INTEGER NOT NULL CHECK (notify IN (0, 1)),
    highlight INTEGER NOT NULL CHECK (highlight IN (0, 1)),
    thread_id TEXT,
    PRIMARY KEY (user_id, room_nid, stream_ordering)
);
CREATE INDEX event_push_actions_stream ON event_push_actions (stream_ordering);
-- /sync: the rooms whose unread counts changed for a user since a token.
CREATE INDEX event_push_actions_user_stream ON event_push_actions (user_id, stream_ordering);
