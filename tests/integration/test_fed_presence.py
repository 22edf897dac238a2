"""Presence over federation (Server-Server API "Presence"): a change of a
local user's presence goes out as an m.presence EDU to the other servers
sharing a room, and the receiving server shows it in /sync (initial and
a woken incremental one) and GET /presence/{userId}/status; a remote user
we hold nothing for is 404. An m.presence entry for a user who does not
belong to the sending server, or a malformed one, is dropped while a good
one in the same EDU is kept. Every test runs on SQLite and PostgreSQL."""

import json
import time

import pytest

from fedpeer import FedPeer
from test_presence import User as PresenceUser
from test_presence import presence_of
from test_rooms import V3, assert_error, q, unique
from test_federation_rooms import joined, wait_for
from test_sync import User

SEND = "/_matrix/federation/v1/send"


def presence_raw(reader, user_id):
    return reader.req("GET", f"{V3}/presence/{q(user_id)}/status")


def presence_is(reader, user_id, state, status_msg):
    """The presence content when `reader` sees user_id so, else None."""
    resp = presence_raw(reader, user_id)
    if resp.status == 200 and resp.json.get("presence") == state and \
            resp.json.get("status_msg") == status_msg:
        return resp.json
    return None


@pytest.fixture
def peer(test_ca):
    p = FedPeer(test_ca)
    yield p
    p.close()


def test_presence_between_servers(federation):
    hs1, hs2 = federation(2)
    alice = PresenceUser(hs1)
    bob = PresenceUser(hs2)
    room = alice.create_room()
    resp = bob.post(f"{V3}/join/{q(room)}?server_name={q(hs1.server_name)}")
    assert resp.status == 200 and resp.json["room_id"] == room, resp
    wait_for(lambda: joined(alice, room) == {alice.user_id, bob.user_id}, "bob's join on hs1")

    # hs2 holds nothing for alice yet.
    assert_error(presence_raw(bob, alice.user_id), 404, "M_NOT_FOUND")

    alice.set_presence("online", "federating")
    got = wait_for(lambda: presence_is(bob, alice.user_id, "online", "federating"),
                   "alice's presence on hs2")
    assert got["currently_active"] is True, got
    assert 0 <= got["last_active_ago"] < 60000, got

    # Bob's initial /sync on hs2 carries it.
    body = bob.sync()
    content = presence_of(body, alice.user_id)
    assert content and content["presence"] == "online", body["presence"]
    assert content["status_msg"] == "federating", content

    # A later change wakes bob's parked incremental /sync.
    since = body["next_batch"]
    alice.set_presence("unavailable", "away now")

    def woken():
        b = bob.sync(since=since, timeout=5000)
        c = presence_of(b, alice.user_id)
        return c if c and c["presence"] == "unavailable" else None
    c = wait_for(woken, "alice unavailable in bob's sync")
    assert c["status_msg"] == "away now", c
    assert "currently_active" not in c or c["currently_active"] is False, c
    assert presence_is(bob, alice.user_id, "unavailable", "away now")


def test_peer_presence_checked(federation, test_ca, peer):
    hs1, hs2 = federation(2)
    ctx = test_ca.client_context()
    alice = PresenceUser(hs1)
    bob = User(hs2)  # syncs with set_presence=offline: hs2 sends nothing of him
    room = alice.create_room()
    assert bob.post(f"{V3}/join/{q(room)}?server_name={q(hs1.server_name)}").status == 200
    peer.join(hs1, room, "pete", ssl_context=ctx)
    pete = f"@pete:{peer.server_name}"
    wait_for(lambda: joined(alice, room) == {alice.user_id, bob.user_id, pete}, "joins on hs1")
    assert_error(presence_raw(alice, bob.user_id), 404, "M_NOT_FOUND")

    def entry(user_id, presence="online", **kw):
        return {"user_id": user_id, "presence": presence, "last_active_ago": 5000, **kw}
    edu = {"edu_type": "m.presence", "content": {"push": [
        entry(bob.user_id, status_msg="forged"),           # not the peer's user
        entry(pete, presence="busy"),                      # not a state
        entry(pete, last_active_ago="soon"),               # not an integer
        entry(pete, status_msg="from pete", currently_active=True),
    ]}}
    body = {"origin": peer.server_name, "origin_server_ts": int(time.time() * 1000),
            "pdus": [], "edus": [edu]}
    resp = peer.request(hs1, "PUT", f"{SEND}/{unique('txn')}", body, ssl_context=ctx)
    assert resp.status == 200, resp

    # Applied before the answer: pete's good entry is held, the rest not.
    got = presence_is(alice, pete, "online", "from pete")
    assert got, presence_raw(alice, pete)
    assert got["currently_active"] is True and 5000 <= got["last_active_ago"] < 60000, got
    assert_error(presence_raw(alice, bob.user_id), 404, "M_NOT_FOUND")
    synced = alice.sync()
    assert presence_of(synced, pete)["status_msg"] == "from pete", synced["presence"]
    assert presence_of(synced, bob.user_id) is None, synced["presence"]

    # Alice's own change goes to both other servers in the room.
    alice.set_presence("online", "to everyone")
    wait_for(lambda: presence_is(bob, alice.user_id, "online", "to everyone"),
             "alice's presence on hs2")

    def peer_got():
        for method, path, _headers, raw in list(peer.requests):
            if method != "PUT" or not path.startswith(SEND + "/"):
                continue
            for e in json.loads(raw).get("edus", []):
                for p in e.get("content", {}).get("push", []):
                    if e.get("edu_type") == "m.presence" and p.get("user_id") == alice.user_id \
                            and p.get("status_msg") == "to everyone":
                        return p
        return None
    p = wait_for(peer_got, "alice's m.presence at the peer")
    assert p["presence"] == "online" and isinstance(p["last_active_ago"], int), p
    assert p["currently_active"] is True, p
