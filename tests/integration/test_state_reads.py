"""Whole-state reads served from the room cache's renderings: GET /state,
/members (with and without membership filters) and /joined_members of
the current state are assembled from JSON text the cache keeps per state
event (svc/room room_state_walk). These tests check that what they serve
is what the per-event path serves (GET /state/{type}/{key}?format=event),
that the text follows every change of the state (replaced events, profile
changes, redactions, a restart), that unsigned.age is computed at each
read rather than cached, and the same in a room version 1 room (event IDs
inside the PDU). Every test runs on SQLite and on PostgreSQL."""

import time

from test_rooms import V3, User, q, restart, unique


def without_age(ev):
    ev = dict(ev)
    u = dict(ev.get("unsigned", {}))
    u.pop("age", None)
    ev["unsigned"] = u
    return ev


def keyed(events):
    out = {}
    for ev in events:
        key = (ev["type"], ev["state_key"])
        assert key not in out, f"two events for {key}"
        out[key] = ev
    return out


def whole_state(user, room_id):
    resp = user.get(f"{V3}/rooms/{q(room_id)}/state")
    assert resp.status == 200, resp
    assert resp.header("Content-Type", "").startswith("application/json"), resp
    return keyed(resp.json)


def check_against_single_reads(user, room_id):
    """GET /state, /members and /joined_members agree with the per-event
    reads of the same state; returns the state by (type, state_key)."""
    state = whole_state(user, room_id)
    for (etype, key), ev in state.items():
        single = user.state_event(room_id, etype, key)
        assert without_age(ev) == without_age(single), (etype, key)
        assert isinstance(ev["unsigned"]["age"], int), ev
        assert ev["unsigned"]["age"] >= 0, ev
        assert ev["room_id"] == room_id, ev
    members = {k: ev for k, ev in state.items() if k[0] == "m.room.member"}
    resp = user.get(f"{V3}/rooms/{q(room_id)}/members")
    assert resp.status == 200, resp
    chunk = keyed(resp.json["chunk"])
    assert {k: without_age(v) for k, v in chunk.items()} == \
        {k: without_age(v) for k, v in members.items()}
    for m in ("join", "leave", "invite", "ban"):
        resp = user.get(f"{V3}/rooms/{q(room_id)}/members?membership={m}")
        assert resp.status == 200, resp
        assert set(keyed(resp.json["chunk"])) == \
            {k for k, ev in members.items() if ev["content"].get("membership") == m}
        resp = user.get(f"{V3}/rooms/{q(room_id)}/members?not_membership={m}")
        assert resp.status == 200, resp
        assert set(keyed(resp.json["chunk"])) == \
            {k for k, ev in members.items() if ev["content"].get("membership") != m}
    resp = user.get(f"{V3}/rooms/{q(room_id)}/joined_members")
    assert resp.status == 200, resp
    expected = {}
    for (_, uid), ev in members.items():
        c = ev["content"]
        if c.get("membership") != "join":
            continue
        # Both keys always, null when unset (as Synapse; matrix-nio needs
        # display_name).
        info = {"display_name": None, "avatar_url": None}
        if isinstance(c.get("displayname"), str):
            info["display_name"] = c["displayname"]
        if isinstance(c.get("avatar_url"), str):
            info["avatar_url"] = c["avatar_url"]
        expected[uid] = info
    assert resp.json == {"joined": expected}
    return state


def redact(user, room_id, event_id):
    resp = user.put(f"{V3}/rooms/{q(room_id)}/redact/{q(event_id)}/{unique('r')}",
                    json={"reason": "test"})
    assert resp.status == 200, resp


def test_state_reads_follow_changes(server):
    alice, bob, carol, dave = (User(server) for _ in range(4))
    room_id = alice.create_room(preset="public_chat", name="Cached", topic="first topic")
    for u in (bob, carol):
        assert u.join(room_id).status == 200
    assert alice.action(room_id, "invite", dave).status == 200
    assert carol.leave(room_id).status == 200
    assert alice.put_state(room_id, "org.example.custom", {"k": "v"}, "x").status == 200
    state = check_against_single_reads(alice, room_id)  # renders everything
    assert state[("m.room.topic", "")]["content"]["topic"] == "first topic"

    # Replaced events: the new ones are served, the old ones are gone.
    assert alice.put_state(room_id, "m.room.topic", {"topic": "second topic"}).status == 200
    resp = bob.put(f"{V3}/profile/{q(bob.user_id)}/displayname",
                   json={"displayname": "Bob \u00e9 \"quoted\""})
    assert resp.status == 200, resp
    resp = bob.put(f"{V3}/profile/{q(bob.user_id)}/avatar_url",
                   json={"avatar_url": "mxc://example.org/bob"})
    assert resp.status == 200, resp
    state = check_against_single_reads(alice, room_id)
    assert state[("m.room.topic", "")]["content"]["topic"] == "second topic"
    joined = alice.get(f"{V3}/rooms/{q(room_id)}/joined_members").json["joined"]
    assert joined[bob.user_id] == {"display_name": "Bob \u00e9 \"quoted\"",
                                   "avatar_url": "mxc://example.org/bob"}

    # Redacted state events stay in the state, pruned.
    topic_id = state[("m.room.topic", "")]["event_id"]
    bob_id = state[("m.room.member", bob.user_id)]["event_id"]
    custom_id = state[("org.example.custom", "x")]["event_id"]
    for ev_id in (topic_id, bob_id, custom_id):
        redact(alice, room_id, ev_id)
    state = check_against_single_reads(alice, room_id)
    assert state[("m.room.topic", "")]["event_id"] == topic_id
    assert state[("m.room.topic", "")]["content"] == {}
    assert state[("org.example.custom", "x")]["content"] == {}
    assert state[("m.room.member", bob.user_id)]["content"] == {"membership": "join"}
    joined = alice.get(f"{V3}/rooms/{q(room_id)}/joined_members").json["joined"]
    assert joined[bob.user_id] == {"display_name": None, "avatar_url": None}
    assert alice.members(room_id, membership="join") == \
        {alice.user_id: "join", bob.user_id: "join"}

    # Reloaded from the database, the room serves the same state.
    restart(server)
    after = check_against_single_reads(alice, room_id)
    assert {k: without_age(v) for k, v in after.items()} == \
        {k: without_age(v) for k, v in state.items()}


def test_state_age_is_computed_per_read(server):
    alice = User(server)
    room_id = alice.create_room(preset="private_chat", topic="aging")
    first = whole_state(alice, room_id)[("m.room.topic", "")]
    members_first = alice.get(f"{V3}/rooms/{q(room_id)}/members").json["chunk"][0]
    time.sleep(1.2)
    second = whole_state(alice, room_id)[("m.room.topic", "")]
    members_second = alice.get(f"{V3}/rooms/{q(room_id)}/members").json["chunk"][0]
    assert second["unsigned"]["age"] >= first["unsigned"]["age"] + 1000, (first, second)
    assert members_second["unsigned"]["age"] >= members_first["unsigned"]["age"] + 1000
    now_ms = int(time.time() * 1000)
    assert abs(now_ms - second["origin_server_ts"] - second["unsigned"]["age"]) < 5000


def test_state_reads_room_version_1(server):
    alice, bob = User(server), User(server)
    room_id = alice.create_room(room_version="1", preset="public_chat", topic="v1")
    assert bob.join(room_id).status == 200
    state = check_against_single_reads(bob, room_id)
    for ev in state.values():
        assert ev["event_id"].startswith("$") and ":" in ev["event_id"], ev
    redact(alice, room_id, state[("m.room.topic", "")]["event_id"])
    state = check_against_single_reads(bob, room_id)
    assert state[("m.room.topic", "")]["content"] == {}


def test_state_reads_by_a_peeker(server):
    """world_readable rooms are read from the cache by non-members too."""
    alice, eve = User(server), User(server)
    room_id = alice.create_room(preset="public_chat",
                                initial_state=[{"type": "m.room.history_visibility",
                                                "state_key": "",
                                                "content": {"history_visibility":
                                                            "world_readable"}}])
    state = check_against_single_reads(eve, room_id)
    assert ("m.room.member", alice.user_id) in state
    assert ("m.room.member", eve.user_id) not in state


def test_state_reads_big_state_concurrent_changes(server):
    """More state events than the cache renders under its lock: after a
    restart the first reads render them unlocked while the state changes."""
    from concurrent.futures import ThreadPoolExecutor

    alice, bob = User(server), User(server)
    initial = [{"type": "org.example.item", "state_key": f"k{i}", "content": {"n": i}}
               for i in range(120)]
    room_id = alice.create_room(preset="public_chat", initial_state=initial)
    assert bob.join(room_id).status == 200
    state = check_against_single_reads(bob, room_id)
    assert len([k for k in state if k[0] == "org.example.item"]) == 120
    restart(server)

    def change(i):
        resp = alice.put_state(room_id, "org.example.item", {"n": i, "changed": True}, f"k{i}")
        assert resp.status == 200, resp

    def read(_):
        for path in ("state", "members", "joined_members"):
            resp = bob.get(f"{V3}/rooms/{q(room_id)}/{path}")
            assert resp.status == 200, resp

    with ThreadPoolExecutor(6) as ex:
        futures = [ex.submit(read, i) for i in range(6)] + \
                  [ex.submit(change, i) for i in range(0, 120, 7)]
        for f in futures:
            f.result()
    state = check_against_single_reads(bob, room_id)
    for i in range(120):
        content = state[("org.example.item", f"k{i}")]["content"]
        assert content == ({"n": i, "changed": True} if i % 7 == 0 else {"n": i}), content
