"""Room upgrades, spaces and room summaries, and content reports.

Upgrades: the power check, unknown versions, the new room's create event
(predecessor, type, additional creators in v12), the copied state and
power levels (v12 creators left out of "users", a raised level restored),
bans, moved aliases and canonical alias, the tombstone and the closed old
room, across several room version transitions. Spaces: /hierarchy order,
depth, suggested_only, paging tokens and visibility; /room_summary for
members, public and world-readable rooms and strangers. Reports: events,
rooms and users with the membership rules of the spec, and the admin
listings. Every test runs on SQLite and on PostgreSQL."""

import urllib.parse

import pytest

from test_accounts import make_admin
from test_rooms import V3, User, assert_error, q, unique

V1 = "/_matrix/client/v1"
ADMIN = "/_synapse/admin/v1"


def upgrade(user, room_id, version, **extra):
    return user.post(f"{V3}/rooms/{q(room_id)}/upgrade",
                     json={"new_version": version, **extra})


def upgrade_ok(user, room_id, version, **extra):
    resp = upgrade(user, room_id, version, **extra)
    assert resp.status == 200, resp
    new = resp.json["replacement_room"]
    assert new.startswith("!") and new != room_id, resp
    return new


# ---------------------------------------------------------------------------
# Upgrades
# ---------------------------------------------------------------------------

def test_upgrade_permissions_and_bad_versions(server):
    alice, bob = User(server), User(server)
    room = alice.create_room(preset="public_chat", room_version="11")
    assert bob.join(room).status == 200
    assert_error(upgrade(bob, room, "12"), 403, "M_FORBIDDEN")
    outsider = User(server)
    assert_error(upgrade(outsider, room, "12"), 403, "M_FORBIDDEN")
    assert_error(upgrade(alice, room, "9999"), 400,
                 "M_UNSUPPORTED_ROOM_VERSION")
    resp = alice.post(f"{V3}/rooms/{q(room)}/upgrade", json={})
    assert_error(resp, 400, "M_MISSING_PARAM")
    resp = alice.post(f"{V3}/rooms/{q(room)}/upgrade",
                      json={"new_version": 12})
    assert_error(resp, 400, "M_BAD_JSON")
    # Nothing was tombstoned by the failures.
    assert alice.state(room, "m.room.tombstone").status == 404


@pytest.mark.parametrize("old,new", [("10", "11"), ("11", "12"),
                                     ("1", "12"), ("12", "12"),
                                     ("12", "11"), ("5", "9")])
def test_upgrade_transitions(server, old, new):
    alice, bob = User(server), User(server)
    alias_name = unique("up")
    room = alice.create_room(preset="public_chat", room_version=old,
                             name="Old name", topic="Old topic",
                             room_alias_name=alias_name)
    alias = alice.state_content(room, "m.room.canonical_alias")["alias"]
    assert bob.join(room).status == 200
    assert alice.put_state(room, "m.room.history_visibility",
                           {"history_visibility": "world_readable"}
                           ).status == 200
    assert alice.put_state(room, "m.room.avatar",
                           {"url": "mxc://x/y"}).status == 200
    before_event = alice.send_ok(room, "last words")

    new_room = upgrade_ok(alice, room, new)

    # The old room: tombstone, closed, alias gone.
    tomb = alice.state_event(room, "m.room.tombstone")
    assert tomb["content"]["replacement_room"] == new_room
    assert isinstance(tomb["content"]["body"], str)
    old_pl = alice.state_content(room, "m.room.power_levels")
    assert old_pl["events_default"] >= 50 and old_pl["invite"] >= 50
    assert bob.send(room, "still here?").status == 403
    assert "alias" not in alice.state_content(room, "m.room.canonical_alias")

    # The new room: create event, copied state, alias.
    create = alice.state_event(new_room, "m.room.create")
    assert create["content"]["room_version"] == new
    pred = create["content"]["predecessor"]
    assert pred["room_id"] == room
    assert pred.get("event_id") in (None, before_event)
    assert alice.state_content(new_room, "m.room.name")["name"] == "Old name"
    assert alice.state_content(new_room, "m.room.topic")["topic"] == \
        "Old topic"
    assert alice.state_content(new_room, "m.room.join_rules")[
        "join_rule"] == "public"
    assert alice.state_content(new_room, "m.room.history_visibility")[
        "history_visibility"] == "world_readable"
    assert alice.state_content(new_room, "m.room.avatar")["url"] == \
        "mxc://x/y"
    assert alice.state_content(new_room, "m.room.canonical_alias")[
        "alias"] == alias
    resp = server.get(f"{V3}/directory/room/{q(alias)}")
    assert resp.status == 200 and resp.json["room_id"] == new_room, resp
    assert alice.members(new_room) == {alice.user_id: "join"}

    pl = alice.state_content(new_room, "m.room.power_levels")
    if new == "12":
        assert alice.user_id not in pl.get("users", {})
    else:
        assert pl["users"][alice.user_id] >= 100
    # The upgrader can still act in the new room, and bob can join it.
    alice.send_ok(new_room, "new home")
    assert bob.join(new_room).status == 200
    bob.send_ok(new_room, "hi")


def test_upgrade_type_creators_bans_and_restored_level(server):
    alice, bob, carol, mallory = (User(server) for _ in range(4))
    space = alice.create_room(preset="public_chat", room_version="11",
                              creation_content={"type": "m.space"})
    child = alice.create_room(preset="public_chat")
    assert alice.put_state(space, "m.space.child", {"via": ["x"]},
                           state_key=child).status == 200
    assert mallory.join(space).status == 200
    assert alice.action(space, "ban", mallory, reason="spam").status == 200

    # v12 with additional creators; the type and children are carried over.
    new = upgrade_ok(alice, space, "12",
                     additional_creators=[bob.user_id, alice.user_id])
    create = alice.state_event(new, "m.room.create")["content"]
    assert create["type"] == "m.space"
    assert create["additional_creators"] == [bob.user_id]
    assert "event_id" in create["predecessor"]
    pl = alice.state_content(new, "m.room.power_levels")
    assert bob.user_id not in pl.get("users", {})
    assert alice.state_content(new, "m.space.child", child)["via"] == ["x"]
    assert alice.membership(new, mallory) == "ban"
    assert alice.state(new, "m.room.member", mallory.user_id,
                       fmt=None).json["reason"] == "spam"

    # A moderator allowed to tombstone but below state_default... raised
    # for the copy and restored afterwards.
    room = alice.create_room(
        preset="public_chat", room_version="10",
        power_level_content_override={
            "users": {alice.user_id: 100, carol.user_id: 60},
            "events": {"m.room.tombstone": 60, "m.room.power_levels": 60,
                       "m.room.history_visibility": 60}})
    assert carol.join(room).status == 200
    new = upgrade_ok(carol, room, "10")
    pl = carol.state_content(new, "m.room.power_levels")
    assert pl["users"][carol.user_id] == 60
    assert pl["users"][alice.user_id] == 100
    # The old room's levels: carol could close it (60 >= 50).
    old_pl = alice.state_content(room, "m.room.power_levels")
    assert old_pl["events_default"] == 50 and old_pl["invite"] == 50


def test_upgrade_moves_publication(server):
    alice = User(server)
    room = alice.create_room(visibility="public", room_version="10")
    new = upgrade_ok(alice, room, "11")
    vis = server.get(f"{V3}/directory/list/room/{q(room)}").json
    assert vis["visibility"] == "private"
    vis = server.get(f"{V3}/directory/list/room/{q(new)}").json
    assert vis["visibility"] == "public"


# ---------------------------------------------------------------------------
# Spaces and summaries
# ---------------------------------------------------------------------------

def hierarchy(user, room_id, **params):
    query = urllib.parse.urlencode(params)
    return user.get(f"{V1}/rooms/{q(room_id)}/hierarchy" +
                    (f"?{query}" if query else ""))


def add_child(user, space, child, **content):
    content.setdefault("via", ["example.org"])
    resp = user.put_state(space, "m.space.child", content, state_key=child)
    assert resp.status == 200, resp


def test_space_hierarchy(server):
    alice, bob = User(server), User(server)
    space = alice.create_room(preset="public_chat", name="Space",
                              creation_content={"type": "m.space"})
    sub = alice.create_room(preset="public_chat", name="Sub",
                            creation_content={"type": "m.space"})
    a = alice.create_room(preset="public_chat", name="A")
    b = alice.create_room(preset="public_chat", name="B")
    private = alice.create_room(preset="private_chat", name="Private")
    deep = alice.create_room(preset="public_chat", name="Deep")
    add_child(alice, space, b)                       # oldest, no order
    add_child(alice, space, a, order="a")            # ordered first
    add_child(alice, space, sub, suggested=True)
    add_child(alice, space, private)
    add_child(alice, space, "!gone:example.org")     # unknown: left out
    add_child(alice, sub, deep)
    add_child(alice, sub, space)                     # a loop
    # A removed child (no via) does not count.
    gone = alice.create_room(preset="public_chat")
    assert alice.put_state(space, "m.space.child", {},
                           state_key=gone).status == 200

    resp = hierarchy(bob, space)
    assert resp.status == 200, resp
    ids = [r["room_id"] for r in resp.json["rooms"]]
    assert ids == [space, a, b, sub, deep], ids
    root = resp.json["rooms"][0]
    assert root["room_type"] == "m.space" and root["name"] == "Space"
    assert root["num_joined_members"] == 1 and root["join_rule"] == "public"
    assert "room_version" in root
    keys = [c["state_key"] for c in root["children_state"]]
    assert keys[0] == a and set(keys) == {a, b, sub, private,
                                          "!gone:example.org"}
    for c in root["children_state"]:
        assert c["type"] == "m.space.child" and "origin_server_ts" in c
        assert c["sender"] == alice.user_id
    leaf = resp.json["rooms"][1]
    assert leaf["children_state"] == []
    assert "next_batch" not in resp.json

    # alice is in the private room, so she sees it.
    ids = [r["room_id"] for r in hierarchy(alice, space).json["rooms"]]
    assert ids == [space, a, b, sub, deep, private], ids

    assert [r["room_id"] for r in
            hierarchy(bob, space, max_depth=0).json["rooms"]] == [space]
    assert [r["room_id"] for r in
            hierarchy(bob, space, suggested_only="true").json["rooms"]] == \
        [space, sub]

    # Paging with tokens; the filters cannot change.
    page1 = hierarchy(bob, space, limit=2)
    assert page1.status == 200, page1
    assert [r["room_id"] for r in page1.json["rooms"]] == [space, a]
    token = page1.json["next_batch"]
    page2 = hierarchy(bob, space, limit=2, **{"from": token})
    assert [r["room_id"] for r in page2.json["rooms"]] == [b, sub]
    page3 = hierarchy(bob, space, limit=2,
                      **{"from": page2.json["next_batch"]})
    assert [r["room_id"] for r in page3.json["rooms"]] == [deep]
    assert "next_batch" not in page3.json
    assert_error(hierarchy(bob, space, limit=2, max_depth=1,
                           **{"from": token}), 400, "M_INVALID_PARAM")
    assert_error(hierarchy(bob, space, **{"from": "garbage"}), 400,
                 "M_INVALID_PARAM")
    assert_error(hierarchy(bob, space, limit=0), 400, "M_INVALID_PARAM")
    assert_error(hierarchy(bob, space, max_depth=-1), 400, "M_INVALID_PARAM")

    # A private space is hidden from strangers.
    secret = alice.create_room(preset="private_chat",
                               creation_content={"type": "m.space"})
    assert_error(hierarchy(bob, secret), 403, "M_FORBIDDEN")
    assert_error(hierarchy(bob, "!nope:example.org"), 403, "M_FORBIDDEN")


def summary(server, room, user=None):
    path = f"{V1}/room_summary/{q(room)}"
    return user.get(path) if user else server.get(path)


def test_room_summary(server):
    alice, bob = User(server), User(server)
    alias_name = unique("sum")
    room = alice.create_room(preset="public_chat", name="Summary",
                             topic="About", room_alias_name=alias_name,
                             room_version="11")
    alias = alice.state_content(room, "m.room.canonical_alias")["alias"]
    assert alice.put_state(room, "m.room.encryption",
                           {"algorithm": "m.megolm.v1.aes-sha2"}
                           ).status == 200
    resp = summary(server, alias, bob)
    assert resp.status == 200, resp
    s = resp.json
    assert s["room_id"] == room and s["name"] == "Summary"
    assert s["topic"] == "About" and s["canonical_alias"] == alias
    assert s["num_joined_members"] == 1 and s["join_rule"] == "public"
    assert s["room_version"] == "11"
    assert s["encryption"] == "m.megolm.v1.aes-sha2"
    assert s["world_readable"] is False and s["guest_can_join"] is False
    assert s["membership"] == "leave"
    assert "room_type" not in s
    assert summary(server, room, alice).json["membership"] == "join"
    # Unauthenticated: public rooms only, and no membership.
    resp = summary(server, room)
    assert resp.status == 200 and "membership" not in resp.json, resp
    # Unstable MSC3266 path.
    resp = server.get("/_matrix/client/unstable/im.nheko.summary/summary/"
                      f"{q(room)}")
    assert resp.status == 200 and resp.json["room_id"] == room, resp

    private = alice.create_room(preset="private_chat")
    assert_error(summary(server, private, bob), 404, "M_NOT_FOUND")
    assert_error(summary(server, private), 404, "M_NOT_FOUND")
    assert alice.action(private, "invite", bob).status == 200
    assert summary(server, private, bob).json["membership"] == "invite"
    assert alice.put_state(private, "m.room.history_visibility",
                           {"history_visibility": "world_readable"}
                           ).status == 200
    assert summary(server, private).json["world_readable"] is True
    assert_error(summary(server, "!unknown:example.org", bob), 404,
                 "M_NOT_FOUND")
    assert_error(summary(server, f"#nope:{alias.split(':', 1)[1]}", bob),
                 404, "M_NOT_FOUND")

    # Restricted rooms list their allowed rooms and admit their members.
    gate = alice.create_room(preset="public_chat")
    restricted = alice.create_room(
        preset="private_chat", room_version="10",
        initial_state=[{"type": "m.room.join_rules", "content": {
            "join_rule": "restricted",
            "allow": [{"type": "m.room_membership", "room_id": gate}]}}])
    assert_error(summary(server, restricted, bob), 404, "M_NOT_FOUND")
    assert bob.join(gate).status == 200
    s = summary(server, restricted, bob).json
    assert s["allowed_room_ids"] == [gate] and s["join_rule"] == "restricted"


# ---------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------

def admin_get(server, token, path):
    return server.request("GET", path,
                          headers={"Authorization": f"Bearer {token}"})


def test_reports(server):
    admin = make_admin(server)["access_token"]
    alice, bob, eve = User(server), User(server), User(server)
    room = alice.create_room(preset="public_chat", name="Reported")
    assert bob.join(room).status == 200
    event = alice.send_ok(room, "bad words")

    # Events: joined members only; 404 otherwise and for unknown events.
    resp = bob.post(f"{V3}/rooms/{q(room)}/report/{q(event)}",
                    json={"reason": "rude", "score": -100})
    assert resp.status == 200 and resp.json == {}, resp
    resp = bob.post(f"{V3}/rooms/{q(room)}/report/{q(event)}", json={})
    assert resp.status == 200, resp
    assert_error(eve.post(f"{V3}/rooms/{q(room)}/report/{q(event)}",
                          json={"reason": "x"}), 404, "M_NOT_FOUND")
    assert_error(bob.post(f"{V3}/rooms/{q(room)}/report/{q('$nope')}",
                          json={"reason": "x"}), 404, "M_NOT_FOUND")
    other = alice.create_room(preset="public_chat")
    assert bob.join(other).status == 200
    assert_error(bob.post(f"{V3}/rooms/{q(other)}/report/{q(event)}",
                          json={"reason": "x"}), 404, "M_NOT_FOUND")
    assert_error(bob.post(f"{V3}/rooms/{q(room)}/report/{q(event)}",
                          json={"reason": 5}), 400, "M_BAD_JSON")
    assert_error(bob.post(f"{V3}/rooms/{q(room)}/report/{q(event)}",
                          json={"score": "high"}), 400, "M_BAD_JSON")

    # Rooms: no membership needed; unknown rooms are 404.
    resp = eve.post(f"{V3}/rooms/{q(room)}/report", json={"reason": ""})
    assert resp.status == 200, resp
    assert_error(eve.post(f"{V3}/rooms/{q('!no:example.org')}/report",
                          json={"reason": "x"}), 404, "M_NOT_FOUND")
    assert_error(eve.post(f"{V3}/rooms/{q(room)}/report", json={}), 400,
                 "M_MISSING_PARAM")

    # Users: unknown and remote users answer 200 but are not stored.
    resp = eve.post(f"{V3}/users/{q(alice.user_id)}/report",
                    json={"reason": "harassment"})
    assert resp.status == 200, resp
    for target in (f"@{unique('ghost')}:{alice.user_id.split(':', 1)[1]}",
                   "@someone:elsewhere.example"):
        resp = eve.post(f"{V3}/users/{q(target)}/report",
                        json={"reason": "x"})
        assert resp.status == 200, resp
    assert_error(eve.post(f"{V3}/users/{q('not-a-user')}/report",
                          json={"reason": "x"}), 400, "M_INVALID_PARAM")
    assert_error(eve.post(f"{V3}/users/{q(alice.user_id)}/report",
                          json={"reason": "x" * 1001}), 400, "M_BAD_JSON")

    # The admin listings.
    assert_error(bob.get(f"{ADMIN}/event_reports"), 403, "M_FORBIDDEN")
    resp = admin_get(server, admin, f"{ADMIN}/event_reports")
    assert resp.status == 200, resp
    assert resp.json["total"] == 2 and "next_token" not in resp.json
    newest, oldest = resp.json["event_reports"]
    assert newest["id"] > oldest["id"]
    assert oldest["event_id"] == event and oldest["room_id"] == room
    assert oldest["user_id"] == bob.user_id and oldest["sender"] == \
        alice.user_id
    assert oldest["reason"] == "rude" and oldest["score"] == -100
    assert oldest["name"] == "Reported"
    assert newest["reason"] is None and newest["score"] is None
    resp = admin_get(server, admin, f"{ADMIN}/event_reports?limit=1&dir=f")
    assert resp.json["event_reports"][0]["id"] == oldest["id"]
    assert resp.json["next_token"] == 1
    resp = admin_get(server, admin, f"{ADMIN}/event_reports?limit=1&from=1"
                     "&dir=f")
    assert resp.json["event_reports"][0]["id"] == newest["id"]
    assert "next_token" not in resp.json

    rooms = admin_get(server, admin, f"{ADMIN}/room_reports").json
    assert rooms["total"] == 1
    assert rooms["room_reports"][0]["room_id"] == room
    assert rooms["room_reports"][0]["user_id"] == eve.user_id
    users = admin_get(server, admin, f"{ADMIN}/user_reports").json
    assert users["total"] == 1
    assert users["user_reports"][0]["target_user_id"] == alice.user_id
    assert users["user_reports"][0]["reason"] == "harassment"
