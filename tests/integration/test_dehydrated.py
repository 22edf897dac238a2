"""Dehydrated devices (MSC3814, unstable prefix org.matrix.msc3814.v1):
PUT/GET/DELETE /dehydrated_device with keys made by a real Olm account
(its Curve25519 key as device ID), replacing an earlier one with its keys,
the device in /keys/query, GET /devices and other users' device_lists,
its to-device queue read through POST (and GET) /dehydrated_device/{id}/
events in batches that delete nothing, an Olm message from another user
(who claimed its one-time key) decrypted from that queue, and bad input.
Every test runs on SQLite and PostgreSQL."""

import json

import pytest

from test_keys_e2ee import ALG, Device, claim, claimed_key, query, verify_signed
from test_rooms import V3, assert_error, q
from test_sync import User
from test_to_device import send_ok

olm = pytest.importorskip("olm")

MSC = "/_matrix/client/unstable/org.matrix.msc3814.v1"
DATA = {"algorithm": "org.matrix.msc3814.v1.olm", "device_pickle": "opaque"}


def dehydrated(user):
    """A Device whose ID is its Curve25519 key, as the MSC requires."""
    dev = Device(user)
    dev.device_id = dev.curve25519
    return dev


def put_body(dev, otks=0, fallback=False, data=DATA, **extra):
    body = {"device_id": dev.device_id, "device_data": data,
            "device_keys": dev.device_keys()}
    if otks:
        body["one_time_keys"] = dev.one_time_keys(otks)
    if fallback:
        body["fallback_keys"] = dev.fallback_key()
    body.update(extra)
    return body


def put(user, body):
    return user.put(f"{MSC}/dehydrated_device", json=body)


def put_ok(user, dev, **kw):
    resp = put(user, put_body(dev, **kw))
    assert resp.status == 200 and resp.json == {"device_id": dev.device_id}, resp
    return dev


def fetch(user, device_id, next_batch=None, limit=None):
    path = f"{MSC}/dehydrated_device/{q(device_id)}/events"
    if limit is not None:
        path += f"?limit={limit}"
    return user.post(path, json={} if next_batch is None else {"next_batch": next_batch})


def fetch_ok(user, device_id, **kw):
    resp = fetch(user, device_id, **kw)
    assert resp.status == 200, resp
    assert isinstance(resp.json["next_batch"], str), resp
    return resp.json


def test_lifecycle_keys_and_device_lists(server):
    alice, bob = User(server), User(server)
    room = alice.create_room(preset="public_chat")
    bob.join(room)
    assert_error(alice.get(f"{MSC}/dehydrated_device"), 404, "M_NOT_FOUND")
    assert_error(alice.req("DELETE", f"{MSC}/dehydrated_device"), 404, "M_NOT_FOUND")
    resp = alice.get("/_matrix/client/versions")
    assert resp.json["unstable_features"].get("org.matrix.msc3814") is True, resp

    since = bob.sync()["next_batch"]
    dev = put_ok(alice, dehydrated(alice), otks=3, fallback=True,
                 initial_device_display_name="Dehydrated")
    resp = alice.get(f"{MSC}/dehydrated_device")
    assert resp.status == 200, resp
    assert resp.json == {"device_id": dev.device_id, "device_data": DATA}
    # Others see the new device and can encrypt to it.
    assert alice.user_id in bob.sync(since=since)["device_lists"]["changed"]
    got = query(bob, {alice.user_id: []})["device_keys"][alice.user_id]
    assert set(got) == {dev.device_id}, got  # her session uploaded none
    assert got[dev.device_id]["unsigned"] == {"device_display_name": "Dehydrated"}
    verify_signed(dev, got[dev.device_id])
    devices = {d["device_id"] for d in alice.get(f"{V3}/devices").json["devices"]}
    assert devices == {alice.device_id, dev.device_id}  # listed, as Synapse does
    name, key = claimed_key(claim(bob, {alice.user_id: {dev.device_id: ALG}}), dev)
    assert name.startswith(f"{ALG}:") and key["key"], key

    # Replacing it deletes the old device with its keys and queue.
    send_ok(bob, {alice.user_id: {dev.device_id: {"old": True}}})
    since = bob.sync()["next_batch"]
    dev2 = put_ok(alice, dehydrated(alice), otks=1)
    assert alice.get(f"{MSC}/dehydrated_device").json["device_id"] == dev2.device_id
    got = query(bob, {alice.user_id: []})["device_keys"][alice.user_id]
    assert set(got) == {dev2.device_id}, got
    assert alice.user_id in bob.sync(since=since)["device_lists"]["changed"]
    assert claim(bob, {alice.user_id: {dev.device_id: ALG}})["one_time_keys"] == {}
    assert_error(fetch(alice, dev.device_id), 403, "M_FORBIDDEN")
    assert fetch_ok(alice, dev2.device_id)["events"] == []

    # Re-uploading with the same ID replaces it too (no key mixing).
    put_ok(alice, dev2, otks=1)

    since = bob.sync()["next_batch"]
    resp = alice.req("DELETE", f"{MSC}/dehydrated_device")
    assert resp.status == 200 and resp.json == {"device_id": dev2.device_id}, resp
    assert_error(alice.get(f"{MSC}/dehydrated_device"), 404, "M_NOT_FOUND")
    assert query(bob, {alice.user_id: []})["device_keys"][alice.user_id] == {}
    assert alice.user_id in bob.sync(since=since)["device_lists"]["changed"]
    assert_error(fetch(alice, dev2.device_id), 403, "M_FORBIDDEN")


def test_events_paging_without_deletion(server):
    alice, bob = User(server), User(server)
    dev = put_ok(alice, dehydrated(alice))
    for i in range(5):
        send_ok(bob, {alice.user_id: {dev.device_id: {"n": i}}}, etype="m.test")
    # A message to the caller's own device does not show up here.
    send_ok(bob, {alice.user_id: {alice.device_id: {"n": "mine"}}})

    seen, token, batches = [], None, 0
    while True:
        body = fetch_ok(alice, dev.device_id, next_batch=token, limit=2)
        assert len(body["events"]) <= 2, body
        seen += body["events"]
        batches += 1
        if not body["events"]:
            break
        token = body["next_batch"]
    assert [e["content"]["n"] for e in seen] == list(range(5))
    assert seen[0] == {"sender": bob.user_id, "type": "m.test", "content": {"n": 0}}
    assert batches == 4  # 2 + 2 + 1, then the empty last batch
    # Nothing was deleted: starting over gives everything again (MSC3814).
    again = fetch_ok(alice, dev.device_id, limit=10)
    assert [e["content"]["n"] for e in again["events"]] == list(range(5))
    last = again["next_batch"]
    assert fetch_ok(alice, dev.device_id, next_batch=last)["events"] == []
    send_ok(bob, {alice.user_id: {"*": {"n": 5}}})  # "*" includes it
    body = fetch_ok(alice, dev.device_id, next_batch=last)
    assert [e["content"]["n"] for e in body["events"]] == [5]

    # The GET form: ?from=, next_batch only while more is left.
    path = f"{MSC}/dehydrated_device/{q(dev.device_id)}/events"
    resp = alice.get(f"{path}?limit=4")
    assert resp.status == 200 and len(resp.json["events"]) == 4, resp
    resp = alice.get(f"{path}?from={q(resp.json['next_batch'])}")
    assert resp.status == 200, resp
    assert [e["content"]["n"] for e in resp.json["events"]] == [4, 5]
    assert "next_batch" not in resp.json, resp

    # Someone else's dehydrated device, a wrong ID, bad tokens and limits.
    assert_error(fetch(bob, dev.device_id), 403, "M_FORBIDDEN")
    assert_error(fetch(alice, "NOTIT"), 403, "M_FORBIDDEN")
    for bad in ("x5", "d", "d-1", "d1x", "12"):
        assert_error(fetch(alice, dev.device_id, next_batch=bad), 400, "M_INVALID_PARAM")
    assert_error(fetch(alice, dev.device_id, next_batch=7), 400, "M_INVALID_PARAM")
    assert_error(fetch(alice, dev.device_id, limit=0), 400, "M_INVALID_PARAM")
    assert_error(alice.get(f"{path}?limit=x"), 400, "M_INVALID_PARAM")


def test_olm_message_round_trip(server):
    alice, bob = User(server), User(server)
    dev = put_ok(alice, dehydrated(alice), otks=2)
    _, key = claimed_key(claim(bob, {alice.user_id: {dev.device_id: ALG}}), dev)
    verify_signed(dev, key)

    sender = olm.Account()
    session = olm.OutboundSession(sender, dev.curve25519, key["key"])
    payload = {"type": "m.room_key", "content": {"session_key": "megolm!"},
               "sender": bob.user_id, "recipient": alice.user_id,
               "recipient_keys": {"ed25519": dev.ed25519},
               "keys": {"ed25519": sender.identity_keys["ed25519"]}}
    msg = session.encrypt(json.dumps(payload))
    sender_key = sender.identity_keys["curve25519"]
    send_ok(bob, {alice.user_id: {dev.device_id: {
        "algorithm": "m.olm.v1.curve25519-aes-sha2", "sender_key": sender_key,
        "ciphertext": {dev.curve25519: {"type": msg.message_type,
                                        "body": msg.ciphertext}}}}},
        etype="m.room.encrypted")

    # Rehydrated: the dehydrated account decrypts what the queue holds.
    (ev,) = fetch_ok(alice, dev.device_id)["events"]
    assert ev["type"] == "m.room.encrypted" and ev["sender"] == bob.user_id, ev
    ct = ev["content"]["ciphertext"][dev.curve25519]
    assert ct["type"] == 0, ct
    prekey = olm.OlmPreKeyMessage(ct["body"])
    inbound = olm.InboundSession(dev.acc, prekey, ev["content"]["sender_key"])
    assert json.loads(inbound.decrypt(prekey)) == payload


def test_bad_put_bodies(server):
    alice, bob = User(server), User(server)
    first = put_ok(alice, dehydrated(alice))
    dev = dehydrated(alice)

    def bad(body, errcode="M_INVALID_PARAM"):
        assert_error(put(alice, body), 400, errcode)

    good = put_body(dev)
    bad({k: v for k, v in good.items() if k != "device_id"}, "M_MISSING_PARAM")
    bad({k: v for k, v in good.items() if k != "device_data"}, "M_MISSING_PARAM")
    bad({k: v for k, v in good.items() if k != "device_keys"}, "M_MISSING_PARAM")
    bad(dict(good, device_id=5))
    bad(dict(good, device_id=""))
    bad(dict(good, device_data="pickle"))
    bad(dict(good, device_data={"no": "algorithm"}))
    bad(dict(good, initial_device_display_name=["x"]))
    bad(dict(good, one_time_keys=[]))
    # Keys are checked as /keys/upload checks them: named for this device,
    # self-signed, signed one-time keys signed by it.
    bad(dict(good, device_id="OTHERID"))
    forged = dev.device_keys()
    forged["keys"][f"curve25519:{dev.device_id}"] = "AAAA"
    bad(dict(good, device_keys=forged))
    otks = dehydrated(alice).one_time_keys(1)
    bad(dict(good, one_time_keys=otks))
    bad(dict(good, device_keys=dev.device_keys(user_id=bob.user_id)))
    # Another device's ID (here the caller's own session) is not taken over.
    taken = Device(alice)
    bad(put_body(taken))
    resp = put(bob, put_body(dev))  # Bob uploading keys naming Alice
    assert_error(resp, 400, "M_INVALID_PARAM")
    assert_error(alice.req("PUT", f"{MSC}/dehydrated_device", body=b"{not json"),
                 400, "M_NOT_JSON")
    # None of that touched the dehydrated device or published keys.
    assert alice.get(f"{MSC}/dehydrated_device").json["device_id"] == first.device_id
    got = query(bob, {alice.user_id: []})["device_keys"][alice.user_id]
    assert set(got) == {first.device_id}, got
    assert claim(bob, {alice.user_id: {dev.device_id: ALG}})["one_time_keys"] == {}
    # Unauthenticated calls are refused.
    resp = server.request("GET", f"{MSC}/dehydrated_device")
    assert_error(resp, 401, "M_MISSING_TOKEN")
