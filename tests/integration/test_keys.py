"""GET /_matrix/key/v2/server (Server-Server API "Publishing Keys"), checked
with an independent implementation of signed JSON: python3-signedjson and
python3-nacl verify the self-signature, python3-canonicaljson checks that
the body is canonical JSON, and the key file written by `myelin init` is
read with signedjson to confirm the published key and signature are the
ones that key produces."""

import base64
import re
import time

# Hard imports: scripts/install-deps.sh installs these, and a skip would
# hide the whole key-publishing check.
import canonicaljson
import nacl.signing as nacl_signing
import signedjson.key as signedjson_key
import signedjson.sign as signedjson_sign
import pytest

KEYS = "/_matrix/key/v2/server"
DAY_MS = 24 * 3600 * 1000


def b64decode_unpadded(s):
    return base64.b64decode(s + "=" * (-len(s) % 4))


def fetch_keys(server):
    resp = server.get(KEYS)
    assert resp.status == 200, resp
    ctype = resp.header("Content-Type", "")
    assert ctype.split(";")[0].strip().lower() == "application/json", ctype
    assert isinstance(resp.json, dict), resp
    return resp


def server_signing_key(server):
    """The server's signing key, read from its key file with signedjson."""
    with open(server.data_dir / "signing.key") as f:
        keys = signedjson_key.read_signing_keys(f)
    assert len(keys) == 1
    return keys[0]


def test_key_response_shape(server):
    before = int(time.time() * 1000)
    body = fetch_keys(server).json
    after = int(time.time() * 1000)

    assert body["server_name"] == server.server_name
    assert set(body) == {"server_name", "verify_keys", "old_verify_keys",
                         "valid_until_ts", "signatures"}
    assert body["old_verify_keys"] == {}
    assert len(body["verify_keys"]) == 1
    (key_id, entry), = body["verify_keys"].items()
    assert re.fullmatch(r"ed25519:[a-zA-Z0-9_]+", key_id), key_id
    assert set(entry) == {"key"}
    assert "=" not in entry["key"]
    assert len(b64decode_unpadded(entry["key"])) == 32

    # Valid for more than an hour (the spec asks for no less) and no more
    # than the 7 days readers honour.
    valid_until = body["valid_until_ts"]
    assert isinstance(valid_until, int)
    assert valid_until > before + 3600 * 1000
    assert valid_until <= after + 7 * DAY_MS

    assert list(body["signatures"]) == [server.server_name]
    assert list(body["signatures"][server.server_name]) == [key_id]


def test_key_response_signature_verifies(server):
    body = fetch_keys(server).json
    (key_id, entry), = body["verify_keys"].items()
    verify_key = signedjson_key.decode_verify_key_bytes(
        key_id, b64decode_unpadded(entry["key"]))
    # Raises SignatureVerifyException on failure.
    signedjson_sign.verify_signed_json(body, server.server_name, verify_key)

    # Any change to a signed member breaks it.
    for field, value in (("valid_until_ts", body["valid_until_ts"] + 1),
                         ("server_name", "evil.example.org"),
                         ("old_verify_keys", {"ed25519:x": {"key": entry["key"],
                                                            "expired_ts": 1}})):
        tampered = dict(body)
        tampered[field] = value
        with pytest.raises(signedjson_sign.SignatureVerifyException):
            signedjson_sign.verify_signed_json(tampered, server.server_name,
                                               verify_key)


def test_key_response_is_canonical_json(server):
    resp = fetch_keys(server)
    assert resp.body == canonicaljson.encode_canonical_json(resp.json)


def test_published_key_is_the_key_file(server):
    """The published key and the signature are exactly what the key in the
    data directory gives with signedjson (ed25519 signatures are
    deterministic)."""
    body = fetch_keys(server).json
    signing_key = server_signing_key(server)
    key_id = f"{signing_key.alg}:{signing_key.version}"
    assert list(body["verify_keys"]) == [key_id]
    assert body["verify_keys"][key_id]["key"] == \
        signedjson_key.encode_verify_key_base64(signing_key.verify_key)

    unsigned_body = {k: v for k, v in body.items() if k != "signatures"}
    ours = signedjson_sign.sign_json(unsigned_body, server.server_name,
                                     signing_key)
    assert ours["signatures"] == body["signatures"]

    # And with plain nacl, over the canonical bytes.
    message = canonicaljson.encode_canonical_json(
        {k: v for k, v in body.items() if k != "signatures"})
    signature = b64decode_unpadded(
        body["signatures"][server.server_name][key_id])
    nacl_signing.VerifyKey(bytes(signing_key.verify_key)).verify(message,
                                                                  signature)


def test_key_id_path_form_is_gone(server):
    """/_matrix/key/v2/server/{keyId} was removed from the spec in v1.7."""
    body = fetch_keys(server).json
    (key_id, _), = body["verify_keys"].items()
    resp = server.get(f"{KEYS}/{key_id}")
    assert resp.status == 404, resp
    assert resp.errcode == "M_UNRECOGNIZED"


def test_key_response_other_methods(server):
    resp = server.post(KEYS, json={})
    assert resp.status == 405, resp
    assert resp.errcode == "M_UNRECOGNIZED"


def test_old_signing_keys_are_published(server_factory):
    """Keys named in old_signing_keys appear in old_verify_keys with their
    expiry, and the response still verifies with the current key."""
    srv = server_factory(start=False)
    old_key = nacl_signing.SigningKey.generate().verify_key
    old_b64 = base64.b64encode(bytes(old_key)).decode().rstrip("=")
    srv.config["old_signing_keys"] = {
        "ed25519:old1": {"key": old_b64, "expired_ts": 1700000000000}}
    srv.write_config()
    srv.start()
    body = fetch_keys(srv).json
    assert body["old_verify_keys"] == {
        "ed25519:old1": {"key": old_b64, "expired_ts": 1700000000000}}
    verify_key = signedjson_key.get_verify_key(server_signing_key(srv))
    signedjson_sign.verify_signed_json(body, srv.server_name, verify_key)
