-- 021_fed_txns: what inbound federation transactions need to be
-- idempotent (spec: Server-Server API "Transactions",
-- "Send-to-device messaging"), written by api/federation/send.c.
--
-- fed_txns keeps the answer given to each transaction (origin, txn ID):
-- a sender that retries after a lost response gets the same answer and
-- nothing is processed twice. fed_to_device_ids keeps the message_id of
-- each m.direct_to_device EDU delivered, so the same message arriving
-- again (in another transaction) is queued once; the row is written in
-- the transaction that queues the message. Rows older than a day are
-- pruned (ts, ms since the epoch); senders retry far sooner than that.
CREATE TABLE fed_txns (
    origin TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    response TEXT NOT NULL,
    ts BIGINT NOT NULL,
    PRIMARY KEY (origin, txn_id)
);
CREATE INDEX fed_txns_ts ON fed_txns (ts);

CREATE TABLE fed_to_device_ids (
    origin TEXT NOT NULL,
    message_id TEXT NOT NULL,
    ts BIGINT NOT NULL,
    PRIMARY KEY (origin, message_id)
);
CREATE INDEX fed_to_device_ids_ts ON fed_to_device_ids (ts);
