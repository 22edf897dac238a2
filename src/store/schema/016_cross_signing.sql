-- 016_cross_signing: cross-signing keys of local users and the
-- signatures uploaded for keys (spec "Cross-signing").
--
-- e2e_cross_signing_keys holds each user's master, self-signing and
-- user-signing key as uploaded to /keys/device_signing/upload (canonical
-- JSON without `unsigned`); public_key is its unpadded base64 ed25519
-- key, so the key ID is "ed25519:" || public_key. Deactivation deletes a
-- user's rows.
CREATE TABLE e2e_cross_signing_keys (
    user_id TEXT NOT NULL,
    key_type TEXT NOT NULL CHECK (key_type IN ('master', 'self_signing', 'user_signing')),
    public_key TEXT NOT NULL,
    key_json TEXT NOT NULL,
    updated_ts BIGINT NOT NULL,
    PRIMARY KEY (user_id, key_type)
);

-- Signatures from /keys/signatures/upload, merged into the signed object
-- by /keys/query: of user_id's device `target_id` (by user_id's
-- self-signing key) or of user_id's master key, target_id then being its
-- public key (by one of user_id's devices, or by another user's
-- user-signing key; signer_id is who signed). signing_key_id is the key
-- ID under signatures[signer_id].
CREATE TABLE e2e_cross_signing_signatures (
    user_id TEXT NOT NULL,
    target_id TEXT NOT NULL,
    signer_id TEXT NOT NULL,
    signing_key_id TEXT NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (user_id, target_id, signer_id, signing_key_id)
);
CREATE INDEX e2e_cross_signing_signatures_signer
    ON e2e_cross_signing_signatures (signer_id);
