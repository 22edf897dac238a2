"""EDUs sent to other servers (Server-Server API "Typing Notifications",
"Receipts", "Device Management", "End-to-End Encryption"), between two
Myelin servers on loopback sharing a room (alice on hs1 creates it, bob
on hs2 joins through make_join/send_join):

- alice's typing on hs1 reaches bob's /sync on hs2 (m.typing in the
  room's ephemeral events), and so does its end; bob's typing reaches
  alice the other way;
- alice's public read receipt (with its thread) reaches bob's /sync as
  m.receipt, her private receipt (m.read.private) never leaves hs1;
- alice's new login, its key upload, its logout and her cross-signing
  keys each put alice into bob's device_lists.changed on hs2 (the
  inbound m.device_list_update / m.signing_key_update of a remote user
  who shares a room with him), and bob's /keys/query of alice (over
  federation) then shows the new device with its keys, no longer shows
  it after the logout, and shows her master and self-signing keys;
  carol on hs2, who shares no room with alice, is not told.

Every wait polls /sync with a short timeout under a bounded deadline.
Every test runs on SQLite and on PostgreSQL."""

import time

import pytest

from test_accounts import PASSWORD
from test_cross_signing import Identity, cs_upload, login_device
from test_keys_e2ee import Device, upload_ok
from test_rooms import V3, q
from test_federation_rooms import bodies, joined, wait_for
from test_sync import User

olm = pytest.importorskip("olm")

TIMEOUT = 20


def shared_room(federation):
    """hs1, hs2, alice (hs1), bob (hs2) and the room they are both in."""
    hs1, hs2 = federation(2)
    alice = User(hs1, password=PASSWORD)
    bob = User(hs2)
    room = alice.create_room(preset="public_chat", name="EDUs")
    resp = bob.post(f"{V3}/join/{q(room)}?server_name={q(hs1.server_name)}")
    assert resp.status == 200 and resp.json["room_id"] == room, resp
    wait_for(lambda: joined(alice, room) == {alice.user_id, bob.user_id}, "bob's join on hs1")
    return hs1, hs2, alice, bob, room


class Poller:
    """Incremental /syncs of one user from a token, each with a short
    long-poll, until a check of one answer holds or the deadline passes."""

    def __init__(self, user):
        self.user = user
        self.since = user.sync()["next_batch"]

    def until(self, check, what, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            body = self.user.sync(since=self.since, timeout=1000)
            self.since = body["next_batch"]
            got = check(body)
            if got:
                return got
            seen.append(body)
        raise AssertionError(f"timed out waiting for {what}; saw {seen[-3:]}")


def ephemeral(body, room_id, etype):
    room = body["rooms"]["join"].get(room_id)
    for ev in (room or {}).get("ephemeral", {}).get("events", []):
        if ev["type"] == etype:
            return ev
    return None


def typists(body, room_id):
    ev = ephemeral(body, room_id, "m.typing")
    return None if ev is None else sorted(ev["content"]["user_ids"])


def set_typing(user, room_id, typing, timeout=30000):
    body = {"typing": typing}
    if typing:
        body["timeout"] = timeout
    resp = user.put(f"{V3}/rooms/{q(room_id)}/typing/{q(user.user_id)}", json=body)
    assert resp.status == 200, resp


def test_typing_across_servers(federation):
    hs1, hs2, alice, bob, room = shared_room(federation)
    at_bob = Poller(bob)
    set_typing(alice, room, True)
    at_bob.until(lambda b: typists(b, room) == [alice.user_id], "alice typing on hs2")
    set_typing(alice, room, False)
    at_bob.until(lambda b: typists(b, room) == [], "alice stopped typing on hs2")

    # And the other way round: bob's typing on hs2 reaches alice on hs1.
    at_alice = Poller(alice)
    set_typing(bob, room, True)
    at_alice.until(lambda b: typists(b, room) == [bob.user_id], "bob typing on hs1")


def test_receipts_across_servers(federation):
    hs1, hs2, alice, bob, room = shared_room(federation)
    first = alice.send(room, "one")
    second = alice.send(room, "two")
    wait_for(lambda: "two" in bodies(bob, room), "alice's messages on hs2")
    at_bob = Poller(bob)

    # A private receipt stays on hs1; the public one after it travels
    # (EDUs to one server go out in order, so the private one would have
    # arrived first).
    resp = alice.post(f"{V3}/rooms/{q(room)}/receipt/m.read.private/{q(first)}", json={})
    assert resp.status == 200, resp
    resp = alice.post(f"{V3}/rooms/{q(room)}/receipt/m.read/{q(second)}",
                      json={"thread_id": "main"})
    assert resp.status == 200, resp

    def alice_read(body):
        ev = ephemeral(body, room, "m.receipt")
        return ev and ev["content"]

    content = at_bob.until(alice_read, "alice's receipt on hs2")
    assert first not in content, content
    mine = content[second]["m.read"][alice.user_id]
    assert mine.get("thread_id") == "main", content
    assert isinstance(mine["ts"], int), content
    assert "m.read.private" not in content[second], content

    # Bob's initial sync on hs2 has only the public receipt of alice.
    init = bob.sync()
    ev = ephemeral(init, room, "m.receipt")
    assert ev is not None, init
    assert alice.user_id in ev["content"][second]["m.read"], ev
    assert first not in ev["content"], ev

    # read_markers with m.read travels too.
    third = alice.send(room, "three")
    wait_for(lambda: "three" in bodies(bob, room), "the third message on hs2")
    resp = alice.post(f"{V3}/rooms/{q(room)}/read_markers",
                      json={"m.fully_read": third, "m.read": third})
    assert resp.status == 200, resp
    content = at_bob.until(lambda b: (alice_read(b) or {}).get(third),
                           "alice's read marker on hs2")
    assert alice.user_id in content["m.read"], content


def changed(body, user_id):
    return user_id in body["device_lists"]["changed"]


def query_alice(bob, alice):
    resp = bob.post(f"{V3}/keys/query", json={"device_keys": {alice.user_id: []}})
    assert resp.status == 200, resp
    assert resp.json["failures"] == {}, resp
    return resp.json


def test_device_lists_across_servers(federation):
    hs1, hs2, alice, bob, room = shared_room(federation)
    carol = User(hs2)  # on hs2 too, but in no room with alice
    at_bob = Poller(bob)
    at_carol = Poller(carol)

    # A new login of alice on hs1.
    phone = login_device(hs1, alice)
    at_bob.until(lambda b: changed(b, alice.user_id), "alice's new device in bob's sync")

    # Its identity keys.
    dev = Device(phone)
    upload_ok(phone, {"device_keys": dev.device_keys()})
    at_bob.until(lambda b: changed(b, alice.user_id), "alice's key upload in bob's sync")
    got = query_alice(bob, alice)["device_keys"][alice.user_id][phone.device_id]
    assert got["keys"][f"ed25519:{phone.device_id}"] == dev.ed25519, got
    assert got["keys"][f"curve25519:{phone.device_id}"] == dev.curve25519, got

    # Its deletion (logout).
    resp = hs1.request("POST", f"{V3}/logout", json={},
                       headers={"Authorization": f"Bearer {phone.token}"})
    assert resp.status == 200, resp
    at_bob.until(lambda b: changed(b, alice.user_id), "alice's logout in bob's sync")
    assert phone.device_id not in query_alice(bob, alice)["device_keys"][alice.user_id]

    # Cross-signing keys.
    ident = Identity(alice)
    resp = cs_upload(alice, ident.body())
    assert resp.status == 200, resp
    at_bob.until(lambda b: changed(b, alice.user_id), "alice's cross-signing keys in bob's sync")
    body = query_alice(bob, alice)
    master = body["master_keys"][alice.user_id]
    assert master["keys"] == {Identity.kid(ident.master): ident.master.public_key}, body
    ssk = body["self_signing_keys"][alice.user_id]
    assert ssk["keys"] == {Identity.kid(ident.ssk): ident.ssk.public_key}, body
    assert alice.user_id not in body["user_signing_keys"], body

    # Carol, on hs2 but in no room with alice, was told none of it.
    body = carol.sync(since=at_carol.since, timeout=0)
    assert not changed(body, alice.user_id), body
