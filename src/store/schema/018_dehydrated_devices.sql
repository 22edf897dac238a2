-- 018_dehydrated_devices: dehydrated devices (MSC3814, unstable prefix
-- org.matrix.msc3814.v1). A dehydrated device is an ordinary row of
-- `devices` (so its keys, /keys/query, /keys/claim, to-device delivery and
-- every device deletion path treat it like any device) whose
-- dehydrated_data holds the client's opaque `device_data` JSON; NULL for
-- devices that log in. It never has an access token. A user has at most
-- one; deleting the row (any path) ends its dehydrated state with it.
ALTER TABLE devices ADD COLUMN dehydrated_data TEXT;
CREATE UNIQUE INDEX devices_one_dehydrated ON devices (user_id)
    WHERE dehydrated_data IS NOT NULL;
