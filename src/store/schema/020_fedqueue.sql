-- 020_fedqueue: the outbound federation queue (spec: Server-Server API
-- "Transactions"), written by svc/fedqueue.
--
-- fed_queue holds every PDU and EDU not yet acknowledged by its
-- destination, in the order it was queued (seq, per destination). An item
-- is deleted only when a transaction carrying it got a 200, so nothing is
-- lost across restarts. txn_id is set when the item is first put in a
-- transaction: until that transaction succeeds it is retried with the
-- same ID and exactly the same items (the receiver deduplicates by
-- origin and txn ID, so new items must never ride on an old ID). A PDU
-- row keeps its own copy of the PDU JSON; an EDU row its type and content.
CREATE TABLE fed_queue (
    destination TEXT NOT NULL,
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('pdu', 'edu')),
    edu_type TEXT,          -- EDUs: the edu_type
    event_id TEXT,          -- PDUs: for logs
    json TEXT NOT NULL,     -- the PDU, or the EDU's content
    txn_id TEXT,            -- the transaction it went out in, NULL before
    added_ts BIGINT NOT NULL,
    PRIMARY KEY (destination, seq)
);

-- Per destination: the last seq handed out (adders take the next one with
-- an upsert, which also orders concurrent adders' commits), the last
-- transaction counter used (transaction IDs are never reused, even after
-- a restart), and the backoff: retry_ms is the current interval (0: the
-- destination is healthy), retry_at the wall-clock time (ms) before which
-- no transaction is attempted.
CREATE TABLE fed_destinations (
    destination TEXT PRIMARY KEY,
    last_seq BIGINT NOT NULL DEFAULT 0,
    last_txn BIGINT NOT NULL DEFAULT 0,
    retry_ms BIGINT NOT NULL DEFAULT 0,
    retry_at BIGINT NOT NULL DEFAULT 0
);
