-- 014_to_device: send-to-device messages (spec "Send-to-Device
-- messaging") waiting for their device, and the transaction IDs of
-- PUT /sendToDevice.
--
-- A message stays until the device acknowledges it by syncing with a
-- token past its stream_pos (the STREAM_TO_DEVICE position of the request
-- that sent it, recorded in stream_positions in the same transaction), or
-- until the device is deleted. One request may leave several messages for
-- one device at the same position ("*" and its device ID); seq (the
-- message's index in the request) keeps them apart and in order.
CREATE TABLE to_device_messages (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    stream_pos BIGINT NOT NULL,
    seq INTEGER NOT NULL,
    sender TEXT NOT NULL,
    type TEXT NOT NULL,
    content TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, stream_pos, seq)
);

-- PUT /sendToDevice/{eventType}/{txnId} is idempotent per sending device,
-- event type and transaction ID (spec "Transaction identifiers").
CREATE TABLE to_device_txns (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    ts BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id, event_type, txn_id)
);
