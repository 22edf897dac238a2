"""Server-side key backups (spec "Server-side key backups"), seen from
outside: the version lifecycle (create, current, read, update, delete;
numbers never reused; another user sees nothing; guests refused), the
keys at their three levels (all rooms, one room, one session) for GET,
PUT and DELETE with the etag and count they report, the rule choosing
between two uploads of one session (verified, then lower
first_message_index, then lower forwarded_count), uploads to a version
that is not the current one (403 M_WRONG_ROOM_KEYS_VERSION with
current_version), bad input, and a real round trip: a session exported
from an Olm megolm session, encrypted to a backup key made with
python-olm's PkDecryption as m.megolm_backup.v1.curve25519-aes-sha2
describes, uploaded, downloaded, decrypted and used to decrypt a
message. Deactivation drops the user's backups.

The scenarios are grouped into few tests because each test starts a
server; every test runs on SQLite and PostgreSQL."""

import json
import re
import sqlite3

import pytest

from test_accounts import PASSWORD, uia
from test_foundation import parse_raw, stream_request
from test_rooms import V3, User, assert_error, q, unique

olm = pytest.importorskip("olm")

R0 = "/_matrix/client/r0"
ALG = "m.megolm_backup.v1.curve25519-aes-sha2"
ALG_MSC3270 = "org.matrix.msc3270.v1.aes-hmac-sha2"
ROOM = "!backup:example.org"
ROOM2 = "!other:example.org"


def key(fmi=0, fc=0, verified=False, marker="x"):
    """A KeyBackupData whose session_data names `marker`, to tell which
    upload the server kept."""
    return {"first_message_index": fmi, "forwarded_count": fc,
            "is_verified": verified,
            "session_data": {"ephemeral": "e", "ciphertext": marker,
                             "mac": "m"}}


def create_version(user, algorithm=ALG, auth_data=None, prefix=V3):
    resp = user.post(f"{prefix}/room_keys/version", json={
        "algorithm": algorithm,
        "auth_data": auth_data if auth_data is not None else {"public_key": "abc"}})
    assert resp.status == 200, resp
    assert isinstance(resp.json["version"], str), resp
    return resp.json["version"]


def keys_path(version, room=None, session=None, prefix=V3):
    path = f"{prefix}/room_keys/keys"
    if room is not None:
        path += f"/{q(room)}"
    if session is not None:
        path += f"/{q(session)}"
    return f"{path}?version={q(version)}"


def put_keys(user, version, body, room=None, session=None, prefix=V3):
    return user.put(keys_path(version, room, session, prefix), json=body)


def put_ok(user, version, body, room=None, session=None):
    resp = put_keys(user, version, body, room, session)
    assert resp.status == 200, resp
    assert set(resp.json) == {"etag", "count"}, resp
    assert isinstance(resp.json["etag"], str), resp
    return resp.json


def get_keys(user, version, room=None, session=None, prefix=V3):
    return user.get(keys_path(version, room, session, prefix))


def delete_keys(user, version, room=None, session=None):
    resp = user.req("DELETE", keys_path(version, room, session))
    assert resp.status == 200, resp
    return resp.json


def version_info(user, version=None):
    path = f"{V3}/room_keys/version" + (f"/{q(version)}" if version else "")
    resp = user.get(path)
    assert resp.status == 200, resp
    return resp.json


def stored_rows(server, table, user_id):
    """Rows of `table` for `user_id`, read straight from the database."""
    if server.engine == "postgres":
        out = server.pg.psql(
            f"SELECT 'n=' || COUNT(*) FROM {table} WHERE user_id = "
            f"'{user_id}'", dbconninfo=server.pg_conninfo)
        return int(re.search(r"n=(\d+)", out).group(1))
    db = sqlite3.connect(server.config["database"]["path"])
    try:
        return db.execute(f"SELECT COUNT(*) FROM {table} WHERE user_id = ?",
                          (user_id,)).fetchone()[0]
    finally:
        db.close()


# ---------------------------------------------------------------------------
# Versions
# ---------------------------------------------------------------------------

def test_version_lifecycle(server):
    alice = User(server, password=PASSWORD)
    bob = User(server)

    # No backup yet: 404 M_NOT_FOUND (Element probes this at start-up).
    for prefix in (V3, R0):
        assert_error(alice.get(f"{prefix}/room_keys/version"), 404, "M_NOT_FOUND")

    # Bad creations.
    url = f"{V3}/room_keys/version"
    assert_error(alice.post(url, json={"auth_data": {}}), 400, "M_BAD_JSON")
    assert_error(alice.post(url, json={"algorithm": 5, "auth_data": {}}), 400, "M_BAD_JSON")
    assert_error(alice.post(url, json={"algorithm": ALG}), 400, "M_BAD_JSON")
    assert_error(alice.post(url, json={"algorithm": ALG, "auth_data": "opaque"}),
                 400, "M_BAD_JSON")
    assert_error(alice.post(url, json={"algorithm": "m.megolm_backup.v0",
                                       "auth_data": {}}), 400, "M_INVALID_PARAM")
    assert_error(alice.req("POST", url, body=b"[1, 2]"), 400, "M_BAD_JSON")
    assert_error(alice.req("POST", url, body=b"{not json"), 400, "M_NOT_JSON")
    assert_error(alice.get(f"{V3}/room_keys/version"), 404, "M_NOT_FOUND")

    # Create, read back (also under r0).
    auth_data = {"public_key": "pk1", "signatures": {alice.user_id: {"ed25519:X": "sig"}}}
    assert create_version(alice, auth_data=auth_data) == "1"
    expected = {"algorithm": ALG, "auth_data": auth_data, "count": 0,
                "etag": version_info(alice)["etag"], "version": "1"}
    assert version_info(alice) == expected
    assert version_info(alice, "1") == expected
    resp = alice.get(f"{R0}/room_keys/version/1")
    assert resp.status == 200 and resp.json == expected, resp

    # The MSC3270 algorithm is accepted too; the newest version is current.
    assert create_version(alice, algorithm=ALG_MSC3270, auth_data={"iv": "i", "mac": "m"},
                          prefix=R0) == "2"
    assert version_info(alice)["version"] == "2"
    assert version_info(alice)["algorithm"] == ALG_MSC3270
    assert version_info(alice, "1")["algorithm"] == ALG

    # Unknown and malformed versions.
    for bad in ("3", "99", "abc", "01", "-1", "1.0"):
        assert_error(alice.get(f"{V3}/room_keys/version/{q(bad)}"), 404, "M_NOT_FOUND")

    # Update: only auth_data changes.
    put = f"{V3}/room_keys/version/1"
    new_auth = {"public_key": "pk2"}
    resp = alice.put(put, json={"algorithm": ALG, "auth_data": new_auth, "version": "1"})
    assert resp.status == 200 and resp.json == {}, resp
    assert version_info(alice, "1")["auth_data"] == new_auth
    resp = alice.put(put, json={"algorithm": ALG, "auth_data": {"public_key": "pk3"}})
    assert resp.status == 200, resp
    assert version_info(alice, "1")["auth_data"] == {"public_key": "pk3"}
    assert_error(alice.put(put, json={"algorithm": ALG_MSC3270, "auth_data": {}}),
                 400, "M_INVALID_PARAM")
    assert_error(alice.put(put, json={"algorithm": ALG, "auth_data": {}, "version": "2"}),
                 400, "M_INVALID_PARAM")
    assert_error(alice.put(put, json={"algorithm": ALG, "auth_data": {}, "version": 1}),
                 400, "M_BAD_JSON")
    assert_error(alice.put(put, json={"algorithm": ALG}), 400, "M_BAD_JSON")
    assert_error(alice.put(put, json={"auth_data": {}}), 400, "M_BAD_JSON")
    assert_error(alice.put(f"{V3}/room_keys/version/7",
                           json={"algorithm": ALG, "auth_data": {}}), 404, "M_NOT_FOUND")
    assert version_info(alice, "1")["auth_data"] == {"public_key": "pk3"}

    # Another user sees none of it and cannot touch it.
    assert_error(bob.get(f"{V3}/room_keys/version"), 404, "M_NOT_FOUND")
    assert_error(bob.get(f"{V3}/room_keys/version/1"), 404, "M_NOT_FOUND")
    assert_error(bob.req("DELETE", f"{V3}/room_keys/version/1"), 404, "M_NOT_FOUND")
    assert_error(bob.put(put, json={"algorithm": ALG, "auth_data": {}}), 404, "M_NOT_FOUND")
    assert create_version(bob) == "1"  # numbers are per user

    # Delete: the version is gone; the previous one is current again; a
    # second delete of it succeeds (spec), an unknown one is 404.
    resp = alice.req("DELETE", f"{V3}/room_keys/version/2")
    assert resp.status == 200 and resp.json == {}, resp
    assert_error(alice.get(f"{V3}/room_keys/version/2"), 404, "M_NOT_FOUND")
    assert_error(alice.put(f"{V3}/room_keys/version/2",
                           json={"algorithm": ALG_MSC3270, "auth_data": {}}),
                 404, "M_NOT_FOUND")
    assert version_info(alice)["version"] == "1"
    resp = alice.req("DELETE", f"{V3}/room_keys/version/2")
    assert resp.status == 200, resp
    assert_error(alice.req("DELETE", f"{V3}/room_keys/version/9"), 404, "M_NOT_FOUND")
    assert_error(alice.req("DELETE", f"{V3}/room_keys/version/x"), 404, "M_NOT_FOUND")

    # A deleted number is never handed out again.
    assert create_version(alice) == "3"
    resp = alice.req("DELETE", f"{R0}/room_keys/version/3")
    assert resp.status == 200, resp
    resp = alice.req("DELETE", f"{V3}/room_keys/version/1")
    assert resp.status == 200, resp
    assert_error(alice.get(f"{V3}/room_keys/version"), 404, "M_NOT_FOUND")
    assert create_version(alice) == "4"

    # Guests may not use backups; anonymous callers are refused.
    guest = User(server, guest=True)
    assert_error(guest.get(f"{V3}/room_keys/version"), 403, "M_GUEST_ACCESS_FORBIDDEN")
    assert_error(guest.post(f"{V3}/room_keys/version",
                            json={"algorithm": ALG, "auth_data": {}}),
                 403, "M_GUEST_ACCESS_FORBIDDEN")
    assert_error(server.get(f"{V3}/room_keys/version"), 401, "M_MISSING_TOKEN")
    assert_error(server.get(f"{V3}/room_keys/keys?version=1"), 401, "M_MISSING_TOKEN")


# ---------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------

def test_keys_levels_etag_and_count(server):
    alice = User(server)
    v = create_version(alice)
    etag0 = version_info(alice)["etag"]

    # Nothing stored yet.
    resp = get_keys(alice, v)
    assert resp.status == 200 and resp.json == {"rooms": {}}, resp
    resp = get_keys(alice, v, ROOM)
    assert resp.status == 200 and resp.json == {"sessions": {}}, resp
    assert_error(get_keys(alice, v, ROOM, "s1"), 404, "M_NOT_FOUND")

    # One session.
    r1 = put_ok(alice, v, key(marker="a1"), ROOM, "s1")
    assert r1["count"] == 1 and r1["etag"] != etag0
    resp = get_keys(alice, v, ROOM, "s1")
    assert resp.status == 200 and resp.json == key(marker="a1"), resp

    # One room's sessions.
    r2 = put_ok(alice, v, {"sessions": {"s2": key(marker="a2"), "s3": key(marker="a3")}}, ROOM)
    assert r2["count"] == 3 and r2["etag"] not in (etag0, r1["etag"])
    resp = get_keys(alice, v, ROOM)
    assert resp.status == 200, resp
    assert resp.json == {"sessions": {"s1": key(marker="a1"), "s2": key(marker="a2"),
                                      "s3": key(marker="a3")}}

    # Several rooms at once.
    r3 = put_ok(alice, v, {"rooms": {
        ROOM: {"sessions": {"s4": key(marker="a4")}},
        ROOM2: {"sessions": {"t1": key(marker="b1")}}}})
    assert r3["count"] == 5 and r3["etag"] != r2["etag"]
    everything = {"rooms": {
        ROOM: {"sessions": {"s1": key(marker="a1"), "s2": key(marker="a2"),
                            "s3": key(marker="a3"), "s4": key(marker="a4")}},
        ROOM2: {"sessions": {"t1": key(marker="b1")}}}}
    resp = get_keys(alice, v)
    assert resp.status == 200 and resp.json == everything, resp
    resp = get_keys(alice, v, prefix=R0)
    assert resp.status == 200 and resp.json == everything, resp

    # The version reports the same etag and count.
    info = version_info(alice, v)
    assert (info["etag"], info["count"]) == (r3["etag"], 5)

    # Uploading the same keys again changes nothing, etag included; an
    # empty upload too.
    same = put_ok(alice, v, {"rooms": {ROOM2: {"sessions": {"t1": key(marker="b1")}}}})
    assert same == r3
    assert put_ok(alice, v, {"rooms": {}}) == r3
    assert put_ok(alice, v, {"sessions": {}}, ROOM2) == r3

    # Deleting at each level; deleting nothing keeps the etag.
    d1 = delete_keys(alice, v, ROOM, "s1")
    assert d1["count"] == 4 and d1["etag"] != r3["etag"]
    assert_error(get_keys(alice, v, ROOM, "s1"), 404, "M_NOT_FOUND")
    assert delete_keys(alice, v, ROOM, "s1") == d1
    assert delete_keys(alice, v, "!nothing:example.org") == d1
    d2 = delete_keys(alice, v, ROOM)
    assert d2["count"] == 1 and d2["etag"] != d1["etag"]
    resp = get_keys(alice, v, ROOM)
    assert resp.status == 200 and resp.json == {"sessions": {}}, resp
    resp = get_keys(alice, v)
    assert resp.json == {"rooms": {ROOM2: {"sessions": {"t1": key(marker="b1")}}}}, resp
    d3 = delete_keys(alice, v)
    assert d3["count"] == 0 and d3["etag"] != d2["etag"]
    resp = get_keys(alice, v)
    assert resp.status == 200 and resp.json == {"rooms": {}}, resp
    info = version_info(alice, v)
    assert (info["etag"], info["count"]) == (d3["etag"], 0)

    # ?version= is required; unknown versions are 404 at every level.
    for method in ("GET", "PUT", "DELETE"):
        for path in (f"{V3}/room_keys/keys", f"{V3}/room_keys/keys/{q(ROOM)}",
                     f"{V3}/room_keys/keys/{q(ROOM)}/s1"):
            body = key() if method == "PUT" and path.endswith("/s1") else None
            if method == "PUT" and body is None:
                body = {"rooms": {}} if path.endswith("keys") else {"sessions": {}}
            resp = alice.req(method, path, json=body)
            assert_error(resp, 400, "M_MISSING_PARAM")
            for bad in ("42", "zz", ""):
                resp = alice.req(method, f"{path}?version={bad}", json=body)
                assert_error(resp, 404, "M_NOT_FOUND")

    # Another user's version is not found for this one.
    bob = User(server)
    assert_error(get_keys(bob, v), 404, "M_NOT_FOUND")
    assert_error(put_keys(bob, v, key(), ROOM, "s1"), 404, "M_NOT_FOUND")

    # Bad bodies change nothing.
    put_ok(alice, v, key(marker="keep"), ROOM, "keep")
    before = version_info(alice, v)
    bad_keys = [
        {"forwarded_count": 0, "is_verified": False, "session_data": {}},
        {"first_message_index": "0", "forwarded_count": 0, "is_verified": False,
         "session_data": {}},
        {"first_message_index": 0, "forwarded_count": 1.5, "is_verified": False,
         "session_data": {}},
        {"first_message_index": 0, "forwarded_count": 0, "is_verified": 1,
         "session_data": {}},
        {"first_message_index": 0, "forwarded_count": 0, "is_verified": False,
         "session_data": "ciphertext"},
        {"first_message_index": 0, "forwarded_count": 0, "is_verified": False},
        [],
    ]
    for bad in bad_keys:
        if isinstance(bad, dict):
            assert_error(put_keys(alice, v, bad, ROOM, "s9"), 400, "M_BAD_JSON")
        assert_error(put_keys(alice, v, {"sessions": {"s9": bad}}, ROOM), 400, "M_BAD_JSON")
        assert_error(put_keys(alice, v, {"rooms": {ROOM: {"sessions": {
            "ok": key(), "s9": bad}}}}), 400, "M_BAD_JSON")
    assert_error(put_keys(alice, v, key(fmi=-1), ROOM, "s9"), 400, "M_INVALID_PARAM")
    assert_error(put_keys(alice, v, {}), 400, "M_BAD_JSON")
    assert_error(put_keys(alice, v, {"rooms": []}), 400, "M_BAD_JSON")
    assert_error(put_keys(alice, v, {"rooms": {ROOM: []}}), 400, "M_BAD_JSON")
    assert_error(put_keys(alice, v, {"rooms": {ROOM: {}}}), 400, "M_BAD_JSON")
    assert_error(put_keys(alice, v, {"sessions": []}, ROOM), 400, "M_BAD_JSON")
    assert_error(put_keys(alice, v, {"rooms": {"not-a-room": {"sessions": {}}}}),
                 400, "M_INVALID_PARAM")
    assert_error(put_keys(alice, v, key(), "not-a-room", "s9"), 400, "M_INVALID_PARAM")
    assert_error(put_keys(alice, v, {"sessions": {"": key()}}, ROOM), 400, "M_INVALID_PARAM")
    assert_error(put_keys(alice, v, {"sessions": {"x" * 300: key()}}, ROOM),
                 400, "M_INVALID_PARAM")
    resp = alice.req("PUT", keys_path(v, ROOM, "s9"), body=b"[]")
    assert_error(resp, 400, "M_BAD_JSON")
    resp = alice.req("PUT", keys_path(v, ROOM, "s9"), body=b"\xff\xfe")
    assert_error(resp, 400, "M_NOT_JSON")
    # A body over the request size limit (1 MiB by default) is refused;
    # streamed, since the server answers before reading it all.
    huge = json.dumps({"rooms": {ROOM: {"sessions": {
        f"s{i}": key(marker="z" * 1000) for i in range(2000)}}}}).encode()
    head = (f"PUT {keys_path(v)} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {alice.token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(huge)}\r\n"
            "Connection: close\r\n\r\n").encode()
    chunks = [huge[i:i + 65536] for i in range(0, len(huge), 65536)]
    status, _, resp = parse_raw(stream_request(server.port, head, chunks))
    assert_error(resp, 413, "M_TOO_LARGE")
    assert version_info(alice, v) == before
    resp = get_keys(alice, v)
    assert resp.json == {"rooms": {ROOM: {"sessions": {"keep": key(marker="keep")}}}}, resp

    # Deleting the version deletes its keys; a new version starts empty.
    resp = alice.req("DELETE", f"{V3}/room_keys/version/{v}")
    assert resp.status == 200, resp
    assert_error(get_keys(alice, v), 404, "M_NOT_FOUND")
    assert_error(get_keys(alice, v, ROOM, "keep"), 404, "M_NOT_FOUND")
    assert_error(put_keys(alice, v, key(), ROOM, "keep"), 404, "M_NOT_FOUND")
    assert_error(alice.req("DELETE", keys_path(v)), 404, "M_NOT_FOUND")
    assert stored_rows(server, "e2e_room_keys", alice.user_id) == 0
    v2 = create_version(alice)
    assert version_info(alice, v2)["count"] == 0
    resp = get_keys(alice, v2)
    assert resp.json == {"rooms": {}}, resp


def test_replace_rule_and_wrong_version(server):
    alice = User(server)
    v1 = create_version(alice)

    def stored(session):
        resp = get_keys(alice, v1, ROOM, session)
        assert resp.status == 200, resp
        return resp.json["session_data"]["ciphertext"]

    def upload(session, k):
        before = version_info(alice, v1)["etag"]
        etag = put_ok(alice, v1, k, ROOM, session)["etag"]
        return etag != before  # whether the stored key changed

    # is_verified decides first: a verified key wins over any unverified
    # one, whatever its index or forwarding count.
    assert upload("v", key(fmi=10, fc=5, verified=False, marker="unverified"))
    assert upload("v", key(fmi=20, fc=9, verified=True, marker="verified"))
    assert stored("v") == "verified"
    assert not upload("v", key(fmi=0, fc=0, verified=False, marker="unverified-better"))
    assert stored("v") == "verified"

    # Then the lower first_message_index, whatever the forwarding count.
    assert upload("i", key(fmi=5, fc=0, marker="index5"))
    assert not upload("i", key(fmi=6, fc=0, marker="index6"))
    assert stored("i") == "index5"
    assert upload("i", key(fmi=3, fc=7, marker="index3"))
    assert stored("i") == "index3"
    # ... also among verified keys.
    assert upload("i", key(fmi=9, fc=0, verified=True, marker="v-index9"))
    assert upload("i", key(fmi=1, fc=3, verified=True, marker="v-index1"))
    assert not upload("i", key(fmi=2, fc=0, verified=True, marker="v-index2"))
    assert stored("i") == "v-index1"

    # Then the lower forwarded_count; a full tie keeps the stored key.
    assert upload("f", key(fmi=2, fc=4, marker="fc4"))
    assert not upload("f", key(fmi=2, fc=5, marker="fc5"))
    assert upload("f", key(fmi=2, fc=1, marker="fc1"))
    assert not upload("f", key(fmi=2, fc=1, marker="fc1-again"))
    assert stored("f") == "fc1"

    # The same rule applies in bulk uploads.
    resp = put_ok(alice, v1, {"rooms": {ROOM: {"sessions": {
        "f": key(fmi=2, fc=0, marker="fc0"), "i": key(fmi=0, fc=0, marker="worse")}}}})
    assert resp["count"] == 3
    assert stored("f") == "fc0" and stored("i") == "v-index1"

    # Only the current version takes uploads: 403 with current_version.
    v2 = create_version(alice)
    assert version_info(alice)["version"] == v2
    for resp in (put_keys(alice, v1, key(), ROOM, "new"),
                 put_keys(alice, v1, {"sessions": {"new": key()}}, ROOM),
                 put_keys(alice, v1, {"rooms": {ROOM: {"sessions": {"new": key()}}}},
                          prefix=R0)):
        assert_error(resp, 403, "M_WRONG_ROOM_KEYS_VERSION")
        assert resp.json["current_version"] == v2, resp
    # The old version still serves (and deletes) its keys.
    resp = get_keys(alice, v1, ROOM)
    assert resp.status == 200 and set(resp.json["sessions"]) == {"v", "i", "f"}, resp
    assert delete_keys(alice, v1, ROOM, "v")["count"] == 2
    # Versions that do not exist are 404, not 403.
    assert_error(put_keys(alice, "99", key(), ROOM, "new"), 404, "M_NOT_FOUND")
    # The new version has its own keys.
    assert put_ok(alice, v2, key(marker="in-v2"), ROOM, "f")["count"] == 1
    assert stored("f") == "fc0"
    # Once v2 is deleted, v1 is current again and takes uploads.
    resp = alice.req("DELETE", f"{V3}/room_keys/version/{v2}")
    assert resp.status == 200, resp
    assert_error(put_keys(alice, v2, key(), ROOM, "new"), 404, "M_NOT_FOUND")
    assert put_ok(alice, v1, key(marker="new"), ROOM, "new")["count"] == 3
    v3 = create_version(alice)
    resp = put_keys(alice, v1, key(), ROOM, "newer")
    assert_error(resp, 403, "M_WRONG_ROOM_KEYS_VERSION")
    assert resp.json["current_version"] == v3, resp


# ---------------------------------------------------------------------------
# A real backup, encrypted with python-olm
# ---------------------------------------------------------------------------

def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def test_round_trip_with_olm_and_deactivation(server):
    alice = User(server, password=PASSWORD)
    device = olm.Account()

    # The backup key pair; auth_data carries the public key, signed by the
    # device as clients do (the server stores it as it is).
    backup_key = olm.pk.PkDecryption()
    auth_data = {"public_key": backup_key.public_key}
    auth_data["signatures"] = {alice.user_id: {
        f"ed25519:{alice.device_id}": device.sign(canonical(auth_data))}}
    version = create_version(alice, auth_data=auth_data)
    assert version_info(alice)["auth_data"] == auth_data

    # A megolm session; its export is what a backup holds.
    room_id = f"!{unique('room')}:{server.server_name}"
    outbound = olm.OutboundGroupSession()
    session_key = outbound.session_key
    ciphertext = outbound.encrypt("secret message")
    inbound = olm.InboundGroupSession(session_key)
    backed_up = {
        "algorithm": "m.megolm.v1.aes-sha2",
        "forwarding_curve25519_key_chain": [],
        "sender_key": device.identity_keys["curve25519"],
        "sender_claimed_keys": {"ed25519": device.identity_keys["ed25519"]},
        "session_key": inbound.export_session(inbound.first_known_index),
    }
    # Encrypted to the backup's public key as the algorithm describes.
    message = olm.pk.PkEncryption(auth_data["public_key"]).encrypt(json.dumps(backed_up))
    session_data = {"ephemeral": message.ephemeral_key,
                    "ciphertext": message.ciphertext, "mac": message.mac}
    upload = {"first_message_index": inbound.first_known_index,
              "forwarded_count": 0, "is_verified": True,
              "session_data": session_data}
    resp = put_ok(alice, version, {"rooms": {room_id: {"sessions": {
        outbound.id: upload}}}})
    assert resp["count"] == 1

    # Another device downloads everything, decrypts with the private key
    # and reads the message with the recovered session.
    resp = get_keys(alice, version)
    assert resp.status == 200, resp
    got = resp.json["rooms"][room_id]["sessions"][outbound.id]
    assert got == upload
    sd = got["session_data"]
    plain = backup_key.decrypt(olm.pk.PkMessage(sd["ephemeral"], sd["mac"], sd["ciphertext"]))
    restored = json.loads(plain)
    assert restored == backed_up
    session = olm.InboundGroupSession.import_session(restored["session_key"])
    assert session.id == outbound.id
    assert session.decrypt(ciphertext)[0] == "secret message"

    # A key for another backup public key cannot be read with this one.
    other = olm.pk.PkDecryption()
    with pytest.raises(olm.pk.PkDecryptionError):
        other.decrypt(olm.pk.PkMessage(sd["ephemeral"], sd["mac"], sd["ciphertext"]))

    # Deactivation drops the user's backups.
    assert stored_rows(server, "e2e_room_keys", alice.user_id) == 1
    assert stored_rows(server, "e2e_room_keys_versions", alice.user_id) == 1
    resp = uia(server, "POST", f"{V3}/account/deactivate", alice.token, alice.user_id)
    assert resp.status == 200, resp
    assert stored_rows(server, "e2e_room_keys", alice.user_id) == 0
    assert stored_rows(server, "e2e_room_keys_versions", alice.user_id) == 0
