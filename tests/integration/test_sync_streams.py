"""/sync details beyond the timeline: state_after (use_state_after, spec
v1.16, and its MSC4222 unstable name), heroes in the order members
arrived, the multi-stream token surviving a restart with receipts and
account data, and ephemeral/account-data filters. Every test runs on
SQLite and PostgreSQL."""

import json
import uuid

from test_rooms import V3, q
from test_sync import User


def named(server, prefix):
    return User(server, name=f"{prefix}{uuid.uuid4().hex[:8]}")


def test_state_after_incremental_includes_timeline_state(server):
    alice, bob = User(server), User(server)
    room = alice.create_room(preset="public_chat", name="before")
    bob.join(room)
    since = bob.sync()["next_batch"]
    topic_id = alice.put_state(room, "m.room.topic", {"topic": "new topic"})
    msg = alice.send(room, "after topic")
    # Classic: the topic is in the timeline, so not in state.
    classic = bob.sync(since=since)["rooms"]["join"][room]
    assert "state_after" not in classic
    assert [e["event_id"] for e in classic["timeline"]["events"]] == [topic_id, msg]
    assert classic["state"]["events"] == []
    # MSC4222's unstable parameter gets the unstable answer key (which is
    # all matrix-js-sdk reads), the stable one the stable key.
    for param, key in (("use_state_after", "state_after"),
                       ("org.matrix.msc4222.use_state_after",
                        "org.matrix.msc4222.state_after")):
        body = bob.sync(since=since, **{param: "true"})
        entry = body["rooms"]["join"][room]
        assert "state" not in entry, entry
        ids = [e["event_id"] for e in entry[key]["events"]]
        assert ids == [topic_id], entry
        assert [e["event_id"] for e in entry["timeline"]["events"]] == [topic_id, msg]


def test_state_after_initial_is_full_state(server):
    alice = User(server)
    room = alice.create_room(preset="private_chat", name="full")
    body = alice.sync(use_state_after="true", filter={"room": {"timeline": {"limit": 50}}})
    entry = body["rooms"]["join"][room]
    types = {e["type"] for e in entry["state_after"]["events"]}
    assert {"m.room.create", "m.room.power_levels", "m.room.name",
            "m.room.member", "m.room.join_rules"} <= types
    # The whole room fits in the timeline, and state_after still has it all.
    timeline_ids = {e["event_id"] for e in entry["timeline"]["events"]}
    state_ids = {e["event_id"] for e in entry["state_after"]["events"]}
    assert state_ids <= timeline_ids and len(state_ids) >= 5


def test_versions_advertise_msc4222(server):
    resp = server.get("/_matrix/client/versions")
    assert resp.json["unstable_features"].get("org.matrix.msc4222") is True


def test_heroes_in_join_order(server):
    viewer = named(server, "mm")
    room = viewer.create_room(preset="public_chat")
    first = named(server, "zz")
    first.join(room)
    second = named(server, "aa")
    second.join(room)
    body = viewer.sync()
    heroes = body["rooms"]["join"][room]["summary"]["m.heroes"]
    assert heroes == [first.user_id, second.user_id], heroes


def test_token_survives_restart_with_receipts(server):
    srv = server
    alice, bob = User(srv), User(srv)
    room = alice.create_room(preset="public_chat")
    bob.join(room)
    ev = alice.send(room)
    resp = bob.req("POST", f"{V3}/rooms/{q(room)}/receipt/m.read/{q(ev)}", json={})
    assert resp.status == 200, resp
    token = alice.sync()["next_batch"]
    assert srv.stop() == 0 and not srv.problems(), srv.problems()
    srv.proc = None
    srv.exit_code = None
    srv.start()
    # Nothing happened since the token: the receipt is not sent again.
    body = alice.sync(since=token)
    assert room not in body["rooms"]["join"], body["rooms"]["join"]
    ev2 = alice.send(room)
    resp = bob.req("POST", f"{V3}/rooms/{q(room)}/receipt/m.read/{q(ev2)}", json={})
    assert resp.status == 200, resp
    body = alice.sync(since=token)
    eph = body["rooms"]["join"][room]["ephemeral"]["events"]
    receipts = [e for e in eph if e["type"] == "m.receipt"]
    assert receipts and ev2 in receipts[0]["content"], eph
    # The new token is above the old one in the receipt stream.
    old = [int(x) for x in token[1:].split("_")]
    new = [int(x) for x in body["next_batch"][1:].split("_")]
    assert new[1] > old[1] and new[0] > old[0]


def test_ephemeral_filter(server):
    alice, bob = User(server), User(server)
    room = alice.create_room(preset="public_chat")
    bob.join(room)
    ev = alice.send(room)
    since = alice.sync()["next_batch"]
    assert bob.req("POST", f"{V3}/rooms/{q(room)}/receipt/m.read/{q(ev)}",
                   json={}).status == 200
    assert bob.req("PUT", f"{V3}/rooms/{q(room)}/typing/{q(bob.user_id)}",
                   json={"typing": True, "timeout": 30000}).status == 200
    flt = {"room": {"ephemeral": {"types": ["m.typing"]}}}
    body = alice.sync(since=since, filter=json.dumps(flt))
    types = [e["type"] for e in body["rooms"]["join"][room]["ephemeral"]["events"]]
    assert types == ["m.typing"], types
    flt = {"room": {"ephemeral": {"not_types": ["*"]}}}
    body = alice.sync(since=since, filter=json.dumps(flt))
    entry = body["rooms"]["join"].get(room)
    assert entry is None or entry["ephemeral"]["events"] == []


def test_lazy_members_not_resent_unless_redundant_asked(server):
    alice, bob, dave = User(server), User(server), User(server)
    room = alice.create_room(preset="public_chat")
    bob.join(room)
    dave.join(room)
    lazy = {"room": {"timeline": {"limit": 5}, "state": {"lazy_load_members": True}}}
    redundant = {"room": {"timeline": {"limit": 5},
                          "state": {"lazy_load_members": True,
                                    "include_redundant_members": True}}}

    def members(body):
        entry = body["rooms"]["join"][room]
        return {e["state_key"] for e in entry["state"]["events"]
                if e["type"] == "m.room.member"}

    since = dave.sync(filter=json.dumps(lazy))["next_batch"]
    bob.send(room, "first")
    body = dave.sync(since=since, filter=json.dumps(lazy))
    # bob's member event reached this device (now or in the initial sync).
    since = body["next_batch"]
    bob.send(room, "second")
    body = dave.sync(since=since, filter=json.dumps(lazy))
    assert bob.user_id not in members(body), body["rooms"]["join"][room]
    since = body["next_batch"]
    bob.send(room, "third")
    body = dave.sync(since=since, filter=json.dumps(redundant))
    assert bob.user_id in members(body), body["rooms"]["join"][room]
