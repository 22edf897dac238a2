"""Rooms across two Myelin servers on loopback: a user of hs2 joins a room
of hs1 through make_join/send_join (checked state and auth chain), both
sides then see the same members and state, messages flow both ways
through the outbound queue and inbound transactions and reach each side's
/sync and /messages in order, and later state changes (a topic) arrive.
A join through a server that refuses (invite-only room) fails with 403;
a join with no server to ask is 404. Runs on SQLite and PostgreSQL."""

import time

from test_rooms import V3, assert_error, q
from test_sync import User

TIMEOUT = 20


def wait_for(fn, what, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last})")


def bodies(user, room_id):
    resp = user.get(f"{V3}/rooms/{q(room_id)}/messages?dir=b&limit=50")
    assert resp.status == 200, resp
    return [e["content"].get("body") for e in reversed(resp.json["chunk"])
            if e["type"] == "m.room.message"]


def joined(user, room_id):
    resp = user.get(f"{V3}/rooms/{q(room_id)}/joined_members")
    if resp.status != 200:
        return set()
    return set(resp.json["joined"])


def test_join_and_talk_across_servers(federation):
    hs1, hs2 = federation(2)
    alice = User(hs1)
    bob = User(hs2)
    room = alice.create_room(preset="public_chat", name="Across")
    alice.send(room, "before bob")

    resp = bob.post(f"{V3}/join/{q(room)}?server_name={q(hs1.server_name)}")
    assert resp.status == 200 and resp.json["room_id"] == room, resp

    # Both servers agree on who is in the room and on its name.
    assert joined(bob, room) == {alice.user_id, bob.user_id}
    wait_for(lambda: joined(alice, room) == {alice.user_id, bob.user_id}, "bob's join on hs1")
    assert bob.state_content(room, "m.room.name") == {"name": "Across"}
    # Bob's /sync shows the room joined, with its state.
    body = bob.sync()
    entry = body["rooms"]["join"][room]
    names = [e for e in entry["state"]["events"] + entry["timeline"]["events"]
             if e["type"] == "m.room.name"]
    assert names and names[0]["content"] == {"name": "Across"}, entry

    # Messages both ways, in order.
    alice.send(room, "hello bob")
    wait_for(lambda: "hello bob" in bodies(bob, room), "alice's message on hs2")
    bob.send(room, "hi alice")
    wait_for(lambda: "hi alice" in bodies(alice, room), "bob's message on hs1")
    for i in range(5):
        alice.send(room, f"a{i}")
    wait_for(lambda: [b for b in bodies(bob, room) if b and b.startswith("a")] ==
             [f"a{i}" for i in range(5)], "five messages in order on hs2")

    # A state change made on hs1 reaches hs2's current state.
    alice.put_state(room, "m.room.topic", {"topic": "federated"})
    wait_for(lambda: bob.get(f"{V3}/rooms/{q(room)}/state/m.room.topic").json ==
             {"topic": "federated"}, "topic on hs2")

    # Bob's incremental sync on hs2 gets Alice's next message.
    since = bob.sync()["next_batch"]
    alice.send(room, "via sync")
    def synced():
        b = bob.sync(since=since, timeout=1000)
        ev = b["rooms"]["join"].get(room, {}).get("timeline", {}).get("events", [])
        return [e for e in ev if e["content"].get("body") == "via sync"]
    (ev,) = wait_for(synced, "message in bob's sync")
    assert ev["sender"] == alice.user_id


def test_join_refused_and_unknown(federation):
    hs1, hs2 = federation(2)
    alice = User(hs1)
    bob = User(hs2)
    room = alice.create_room(preset="private_chat")
    resp = bob.post(f"{V3}/join/{q(room)}?server_name={q(hs1.server_name)}")
    assert_error(resp, 403, "M_FORBIDDEN")
    assert joined(alice, room) == {alice.user_id}
    # A v12 room ID names no server, and none is given.
    resp = bob.post(f"{V3}/join/{q('!nosuchroomidhere')}")
    assert resp.status in (400, 404), resp


def test_state_changes_and_bans_both_ways(federation):
    hs1, hs2 = federation(2)
    alice = User(hs1)
    bob = User(hs2)
    room = alice.create_room(preset="public_chat")
    assert bob.post(f"{V3}/join/{q(room)}?server_name={q(hs1.server_name)}").status == 200
    wait_for(lambda: joined(alice, room) == {alice.user_id, bob.user_id}, "bob joined")

    # Bob may not set the name until Alice gives him power (checked by hs2
    # against the state it holds, and by hs1 when it receives it).
    resp = bob.put(f"{V3}/rooms/{q(room)}/state/m.room.name/", json={"name": "by bob"})
    assert resp.status == 403, resp
    pl = alice.state_content(room, "m.room.power_levels")
    pl.setdefault("users", {})[bob.user_id] = 50
    alice.put_state(room, "m.room.power_levels", pl)
    wait_for(lambda: bob.state_content(room, "m.room.power_levels")
             .get("users", {}).get(bob.user_id) == 50, "bob's power on hs2")
    bob.put_state(room, "m.room.name", {"name": "by bob"})
    wait_for(lambda: alice.get(f"{V3}/rooms/{q(room)}/state/m.room.name").json ==
             {"name": "by bob"}, "bob's name on hs1")

    # Alice bans Bob: hs2 learns it and refuses Bob's messages.
    resp = alice.post(f"{V3}/rooms/{q(room)}/ban", json={"user_id": bob.user_id})
    assert resp.status == 200, resp
    def banned_on_hs2():
        left = bob.sync(filter={"room": {"include_leave": True}})["rooms"]["leave"].get(room)
        events = (left or {}).get("timeline", {}).get("events", [])
        return any(e["type"] == "m.room.member" and e["state_key"] == bob.user_id and
                   e["content"]["membership"] == "ban" for e in events)
    wait_for(banned_on_hs2, "the ban in bob's sync on hs2")
    resp = bob.req("PUT", f"{V3}/rooms/{q(room)}/send/m.room.message/t1",
                   json={"msgtype": "m.text", "body": "after the ban"})
    assert resp.status == 403, resp
    assert joined(alice, room) == {alice.user_id}
