"""The smaller room endpoints: /context around an event (limits, filters,
tokens that continue in /messages), timestamp_to_event in both directions,
forgetting rooms, knocking (by join rule and room version, invite after a
knock, leaving to retract), restricted joins through membership of an
allowed room (v8 restricted, v10 knock_restricted, v12), and the `at`
parameter of /members. Every test runs on SQLite and on PostgreSQL."""

import json
import time
import urllib.parse

import pytest

from test_rooms import V3, User, assert_error, q, unique

V1 = "/_matrix/client/v1"


def context(user, room_id, event_id, **params):
    query = urllib.parse.urlencode(params)
    return user.get(f"{V3}/rooms/{q(room_id)}/context/{q(event_id)}" +
                    (f"?{query}" if query else ""))


def ts_to_event(user, room_id, **params):
    query = urllib.parse.urlencode(params)
    return user.get(f"{V1}/rooms/{q(room_id)}/timestamp_to_event" +
                    (f"?{query}" if query else ""))


def knock(user, room_or_alias, reason=None):
    body = {"reason": reason} if reason else {}
    return user.post(f"{V3}/knock/{q(room_or_alias)}", json=body)


def forget(user, room_id):
    return user.post(f"{V3}/rooms/{q(room_id)}/forget")


def bodies(events):
    return [e["content"]["body"] for e in events]


def send_numbered(user, room_id, n, pause=0.0):
    ids = []
    for i in range(n):
        ids.append(user.send_ok(room_id, f"m{i}"))
        if pause:
            time.sleep(pause)
    return ids


# ---------------------------------------------------------------------------
# /context
# ---------------------------------------------------------------------------

def test_context_limits_and_tokens(server):
    alice = User(server)
    room = alice.create_room(preset="public_chat")
    ids = send_numbered(alice, room, 10)

    resp = context(alice, room, ids[5], limit=4)
    assert resp.status == 200, resp
    body = resp.json
    assert body["event"]["event_id"] == ids[5]
    assert body["event"]["content"]["body"] == "m5"
    assert body["event"]["room_id"] == room
    assert bodies(body["events_before"]) == ["m4", "m3"]
    assert bodies(body["events_after"]) == ["m6", "m7"]
    types = {(e["type"], e.get("state_key")) for e in body["state"]}
    assert ("m.room.create", "") in types
    assert ("m.room.member", alice.user_id) in types

    # The tokens continue in /messages: backwards from start, forwards
    # from end, without repeating or skipping an event.
    back = alice.messages(room, dir="b", limit=2, **{"from": body["start"]})
    assert back.status == 200, back
    assert bodies(back.json["chunk"]) == ["m2", "m1"]
    fwd = alice.messages(room, dir="f", limit=10, **{"from": body["end"]})
    assert fwd.status == 200, fwd
    assert bodies(fwd.json["chunk"]) == ["m8", "m9"]

    # Odd limits put the extra event after; limit 0 returns the event only.
    resp = context(alice, room, ids[5], limit=3)
    assert bodies(resp.json["events_before"]) == ["m4"]
    assert bodies(resp.json["events_after"]) == ["m6", "m7"]
    resp = context(alice, room, ids[5], limit=0)
    assert resp.status == 200, resp
    assert resp.json["events_before"] == [] and resp.json["events_after"] == []
    assert resp.json["event"]["event_id"] == ids[5]
    back = alice.messages(room, dir="b", limit=1, **{"from": resp.json["start"]})
    assert bodies(back.json["chunk"]) == ["m4"]
    fwd = alice.messages(room, dir="f", limit=1, **{"from": resp.json["end"]})
    assert bodies(fwd.json["chunk"]) == ["m6"]

    # Default limit 10: five before (reaching into the room's state
    # events), five after (only four exist).
    resp = context(alice, room, ids[5])
    assert len(resp.json["events_before"]) == 5
    assert bodies(resp.json["events_before"]) == ["m4", "m3", "m2", "m1", "m0"]
    assert bodies(resp.json["events_after"]) == ["m6", "m7", "m8", "m9"]
    fwd = alice.messages(room, dir="f", **{"from": resp.json["end"]})
    assert fwd.json["chunk"] == []

    # The newest event: nothing after, and end pages forwards to new events.
    resp = context(alice, room, ids[9], limit=2)
    assert bodies(resp.json["events_before"]) == ["m8"]
    assert resp.json["events_after"] == []
    later = alice.send_ok(room, "later")
    fwd = alice.messages(room, dir="f", **{"from": resp.json["end"]})
    assert [e["event_id"] for e in fwd.json["chunk"]] == [later]

    # The legacy r0 prefix serves it too.
    resp = alice.get(f"/_matrix/client/r0/rooms/{q(room)}/context/{q(ids[1])}")
    assert resp.status == 200, resp
    assert resp.json["event"]["event_id"] == ids[1]


def test_context_state_at_last_event_returned(server):
    alice = User(server)
    room = alice.create_room(preset="public_chat", name="first name")
    ids = send_numbered(alice, room, 2)
    resp = alice.req("PUT", f"{V3}/rooms/{q(room)}/state/m.room.name/",
                     json={"name": "second name"})
    assert resp.status == 200, resp
    # limit 2: one event after ids[0] (ids[1]); the rename comes later.
    body = context(alice, room, ids[0], limit=2).json
    assert bodies(body["events_after"]) == ["m1"]
    names = [e["content"]["name"] for e in body["state"] if e["type"] == "m.room.name"]
    assert names == ["first name"], names
    # With the rename among the events returned, the state has it.
    body = context(alice, room, ids[1], limit=2).json
    assert [e["type"] for e in body["events_after"]] == ["m.room.name"]
    names = [e["content"]["name"] for e in body["state"] if e["type"] == "m.room.name"]
    assert names == ["second name"], names


def test_context_filter(server):
    alice, bob, carol = User(server), User(server), User(server)
    room = alice.create_room(preset="public_chat")
    for u in (bob, carol):
        assert u.join(room).status == 200
    alice.send_ok(room, "a1")
    bob.send_ok(room, "b1")
    mid = alice.send_ok(room, "a2")
    alice.put_state(room, "m.room.topic", {"topic": "t"})
    alice.send_ok(room, "a3")

    # lazy_load_members: only the members of the returned events' senders.
    flt = json.dumps({"lazy_load_members": True})
    resp = context(alice, room, mid, limit=2, filter=flt)
    assert resp.status == 200, resp
    members = {e["state_key"] for e in resp.json["state"]
               if e["type"] == "m.room.member"}
    assert members == {alice.user_id, bob.user_id}
    resp = context(alice, room, mid, limit=2)
    members = {e["state_key"] for e in resp.json["state"]
               if e["type"] == "m.room.member"}
    assert members == {alice.user_id, bob.user_id, carol.user_id}

    # types / senders apply to before, after and state, never to the event.
    flt = json.dumps({"types": ["m.room.message"], "not_senders": [bob.user_id]})
    resp = context(alice, room, mid, limit=4, filter=flt)
    assert resp.status == 200, resp
    assert bodies(resp.json["events_before"]) == ["a1"]
    assert bodies(resp.json["events_after"]) == ["a3"]
    assert resp.json["state"] == []
    flt = json.dumps({"types": ["m.room.*"], "not_types": ["m.room.message"]})
    resp = context(alice, room, mid, limit=4, filter=flt)
    assert [e["type"] for e in resp.json["events_after"]] == ["m.room.topic"]
    resp = context(alice, room, mid, limit=4,
                   filter=json.dumps({"senders": [carol.user_id]}))
    assert resp.json["event"]["event_id"] == mid
    assert all(e["sender"] == carol.user_id
               for e in resp.json["events_before"] + resp.json["state"])

    assert_error(context(alice, room, mid, filter="{nope"), 400, "M_INVALID_PARAM")
    assert_error(context(alice, room, mid, filter=json.dumps({"types": "x"})),
                 400, "M_INVALID_PARAM")


def test_context_errors(server):
    alice, bob = User(server), User(server)
    room = alice.create_room(preset="public_chat")
    other = alice.create_room(preset="public_chat")
    ev = alice.send_ok(room, "x")
    elsewhere = alice.send_ok(other, "y")

    assert_error(context(alice, room, "$unknown"), 404, "M_NOT_FOUND")
    assert_error(context(alice, room, elsewhere), 404, "M_NOT_FOUND")
    assert_error(context(bob, room, ev), 403, "M_FORBIDDEN")
    assert_error(context(alice, room, ev, limit="many"), 400, "M_INVALID_PARAM")
    assert_error(context(alice, "not-a-room", ev), 400, "M_INVALID_PARAM")


# ---------------------------------------------------------------------------
# timestamp_to_event
# ---------------------------------------------------------------------------

def test_timestamp_to_event(server):
    alice, bob = User(server), User(server)
    room = alice.create_room(preset="public_chat")
    ids = send_numbered(alice, room, 3, pause=0.02)
    ts = []
    for eid in ids:
        resp = alice.get(f"{V3}/rooms/{q(room)}/event/{q(eid)}")
        assert resp.status == 200, resp
        ts.append(resp.json["origin_server_ts"])
    assert ts[0] < ts[1] < ts[2]

    def lookup(t, d):
        resp = ts_to_event(alice, room, ts=t, dir=d)
        assert resp.status == 200, resp
        return resp.json["event_id"], resp.json["origin_server_ts"]

    assert lookup(ts[1], "f") == (ids[1], ts[1])
    assert lookup(ts[1], "b") == (ids[1], ts[1])
    assert lookup(ts[1] + 1, "f") == (ids[2], ts[2])
    assert lookup(ts[1] + 1, "b") == (ids[1], ts[1])
    assert lookup(ts[2] + 10**6, "b") == (ids[2], ts[2])

    # Before the room existed backwards, after its last event forwards.
    assert_error(ts_to_event(alice, room, ts=1, dir="b"), 404, "M_NOT_FOUND")
    assert_error(ts_to_event(alice, room, ts=ts[2] + 10**6, dir="f"), 404,
                 "M_NOT_FOUND")
    # The oldest event of the room forwards from 0 is its create event.
    eid, _ = lookup(0, "f")
    create = alice.state_event(room, "m.room.create")
    assert eid == create["event_id"]

    assert_error(ts_to_event(alice, room, ts=ts[0]), 400, "M_MISSING_PARAM")
    assert_error(ts_to_event(alice, room, dir="f"), 400, "M_MISSING_PARAM")
    assert_error(ts_to_event(alice, room, ts=ts[0], dir="x"), 400, "M_INVALID_PARAM")
    assert_error(ts_to_event(alice, room, ts="soon", dir="f"), 400, "M_INVALID_PARAM")
    assert_error(ts_to_event(bob, room, ts=ts[0], dir="f"), 403, "M_FORBIDDEN")
    # v1 only.
    resp = alice.get(f"{V3}/rooms/{q(room)}/timestamp_to_event?ts=1&dir=f")
    assert resp.status in (404, 405), resp
    assert resp.json["errcode"] == "M_UNRECOGNIZED", resp


# ---------------------------------------------------------------------------
# forget
# ---------------------------------------------------------------------------

def test_forget(server):
    alice, bob, carol = User(server), User(server), User(server)
    room = alice.create_room(preset="private_chat")

    # Joined or invited: refused.
    assert_error(forget(alice, room), 400, "M_UNKNOWN")
    assert alice.action(room, "invite", bob).status == 200
    assert_error(forget(bob, room), 400, "M_UNKNOWN")

    # Rejecting the invite, then forgetting.
    assert bob.leave(room).status == 200
    resp = forget(bob, room)
    assert resp.status == 200 and resp.json == {}, resp
    assert room not in bob.joined_rooms()
    # Again: still fine.
    assert forget(bob, room).status == 200

    # A new invite and join end the forget; leaving again allows another.
    assert alice.action(room, "invite", bob).status == 200
    assert bob.join(room).status == 200
    assert room in bob.joined_rooms()
    assert_error(forget(bob, room), 400, "M_UNKNOWN")
    assert bob.leave(room).status == 200
    assert forget(bob, room).status == 200
    assert room not in bob.joined_rooms()

    # Banned users may forget; so may users who never were members.
    assert alice.action(room, "invite", carol).status == 200
    assert carol.join(room).status == 200
    assert alice.action(room, "ban", carol).status == 200
    assert forget(carol, room).status == 200
    other = alice.create_room(preset="public_chat")
    assert forget(carol, other).status == 200

    # r0 too, and a malformed room ID is a bad parameter.
    assert alice.leave(other).status == 200
    assert alice.post(f"/_matrix/client/r0/rooms/{q(other)}/forget").status == 200
    assert_error(forget(alice, "nonsense"), 400, "M_INVALID_PARAM")


# ---------------------------------------------------------------------------
# knocking
# ---------------------------------------------------------------------------

def knock_room(alice, version, rule="knock", **kw):
    room = alice.create_room(room_version=version, preset="private_chat", **kw)
    resp = alice.put_state(room, "m.room.join_rules", {"join_rule": rule})
    assert resp.status == 200, resp
    return room


@pytest.mark.parametrize("version", ["7", "10", "12"])
def test_knock_invite_and_retract(server, version):
    alice, bob, carol = User(server), User(server), User(server)
    alias_name = unique("knock")
    room = knock_room(alice, version, room_alias_name=alias_name)

    # Knocking is not joining: the join rule "knock" acts as "invite".
    assert_error(bob.join(room), 403, "M_FORBIDDEN")

    resp = knock(bob, room, reason="let me in")
    assert resp.status == 200, resp
    assert resp.json == {"room_id": room}
    ev = alice.state_event(room, "m.room.member", bob.user_id)
    assert ev["content"]["membership"] == "knock"
    assert ev["content"]["reason"] == "let me in"
    assert ev["sender"] == bob.user_id
    assert alice.membership(room, bob) == "knock"

    # Knocking again is allowed while knocking... but not while invited.
    assert knock(bob, room).status == 200
    assert alice.action(room, "invite", bob).status == 200
    assert alice.membership(room, bob) == "invite"
    assert_error(knock(bob, room), 403, "M_FORBIDDEN")
    assert bob.join(room).status == 200
    assert alice.membership(room, bob) == "join"
    assert_error(knock(bob, room), 403, "M_FORBIDDEN")

    # Knock by alias, then retract by leaving.
    resp = knock(carol, f"#{alias_name}:{server.server_name}")
    assert resp.status == 200, resp
    assert resp.json["room_id"] == room
    assert alice.membership(room, carol) == "knock"
    assert carol.leave(room).status == 200
    assert alice.membership(room, carol) == "leave"

    # A banned user cannot knock.
    assert alice.action(room, "ban", carol).status == 200
    assert_error(knock(carol, room), 403, "M_FORBIDDEN")


def test_knock_refused(server):
    alice, bob = User(server), User(server)
    # Join rules that do not allow knocking.
    for rule in ("invite", "public"):
        room = knock_room(alice, "10", rule)
        assert_error(knock(bob, room), 403, "M_FORBIDDEN")
    # Room versions before 7 know no knocking, whatever the join rule says.
    room = knock_room(alice, "6")
    assert_error(knock(bob, room), 403, "M_FORBIDDEN")
    # knock_restricted exists from v10: in v8 knocking is refused, in v10 it
    # is a knock join rule.
    room = knock_room(alice, "8", "knock_restricted")
    assert_error(knock(bob, room), 403, "M_FORBIDDEN")
    room = knock_room(alice, "10", "knock_restricted")
    assert knock(bob, room).status == 200
    assert alice.membership(room, bob) == "knock"
    # Unknown rooms and aliases.
    assert_error(knock(bob, f"!nowhere:{server.server_name}"), 404, "M_NOT_FOUND")
    assert_error(knock(bob, f"#nowhere-{unique()}:{server.server_name}"), 404,
                 "M_NOT_FOUND")
    assert_error(knock(bob, "nonsense"), 400, "M_INVALID_PARAM")


# ---------------------------------------------------------------------------
# restricted joins
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("version,rule", [("8", "restricted"),
                                          ("10", "knock_restricted"),
                                          ("12", "restricted")])
def test_restricted_join(server, version, rule):
    alice, bob, carol, dave = User(server), User(server), User(server), User(server)
    space = alice.create_room(preset="public_chat")
    assert bob.join(space).status == 200
    room = alice.create_room(room_version=version, preset="private_chat",
                             initial_state=[{
                                 "type": "m.room.join_rules",
                                 "content": {"join_rule": rule, "allow": [
                                     {"type": "m.room_membership",
                                      "room_id": f"!unknown:{server.server_name}"},
                                     {"type": "m.room_membership",
                                      "room_id": space}]}}])

    # A member of the allowed room joins, authorised by alice.
    resp = bob.join(room)
    assert resp.status == 200, resp
    ev = alice.state_event(room, "m.room.member", bob.user_id)
    assert ev["content"]["membership"] == "join"
    assert ev["content"]["join_authorised_via_users_server"] == alice.user_id

    # Others cannot.
    assert_error(carol.join(room), 403, "M_FORBIDDEN")
    assert alice.membership(room, carol) is None

    # An invite bypasses the conditions and names no authoriser.
    assert alice.action(room, "invite", carol).status == 200
    assert carol.join(room).status == 200
    ev = alice.state_event(room, "m.room.member", carol.user_id)
    assert "join_authorised_via_users_server" not in ev["content"]

    # Rejoining after leaving checks again; leaving the allowed room loses it.
    assert bob.leave(room).status == 200
    assert bob.join(room).status == 200
    assert bob.leave(room).status == 200
    assert bob.leave(space).status == 200
    assert_error(bob.join(room), 403, "M_FORBIDDEN")

    if rule == "knock_restricted":
        # Knocking works for those who do not meet the conditions.
        assert knock(dave, room).status == 200
        assert alice.membership(room, dave) == "knock"
        # A knocker who joins the allowed room can then join directly.
        assert dave.join(space).status == 200
        assert dave.join(room).status == 200
        assert alice.membership(room, dave) == "join"
    else:
        assert_error(knock(dave, room), 403, "M_FORBIDDEN")


def test_restricted_join_needs_an_authoriser(server):
    alice, bob = User(server), User(server)
    space = alice.create_room(preset="public_chat")
    assert bob.join(space).status == 200
    room = alice.create_room(room_version="9", preset="private_chat",
                             power_level_content_override={
                                 "users": {alice.user_id: 50}, "events": {}, "invite": 100},
                             initial_state=[{
                                 "type": "m.room.join_rules",
                                 "content": {"join_rule": "restricted", "allow": [
                                     {"type": "m.room_membership", "room_id": space}]}}])
    # Nobody here reaches the invite level, so nobody can authorise.
    assert_error(bob.join(room), 400, "M_UNABLE_TO_GRANT_JOIN")
    assert alice.membership(room, bob) is None


def test_restricted_rule_before_v8(server):
    """Room version 7 knows no restricted joins: nobody joins uninvited."""
    alice, bob = User(server), User(server)
    space = alice.create_room(preset="public_chat")
    assert bob.join(space).status == 200
    room = alice.create_room(room_version="7", preset="private_chat",
                             initial_state=[{
                                 "type": "m.room.join_rules",
                                 "content": {"join_rule": "restricted", "allow": [
                                     {"type": "m.room_membership", "room_id": space}]}}])
    assert_error(bob.join(room), 403, "M_FORBIDDEN")


# ---------------------------------------------------------------------------
# /members?at=
# ---------------------------------------------------------------------------

def test_members_at(server):
    alice, bob = User(server), User(server)
    room = alice.create_room(preset="public_chat")
    assert bob.join(room).status == 200
    resp = alice.messages(room, dir="b", limit=1)
    token = resp.json["start"]
    assert alice.members(room, at=token) == {alice.user_id: "join",
                                              bob.user_id: "join"}
    assert alice.members(room, at=token, membership="join") == alice.members(room)
