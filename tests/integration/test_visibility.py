"""History visibility (spec "Room History Visibility") on every endpoint
that reads room events or state: /messages, /context, /event, /relations,
/state, /members, /joined_members and timestamp_to_event, for `joined`,
`shared`, `invited` and `world_readable` rooms, joined members, former
members (nothing after the leave, state as of the leave), non-members and
guests. Also the RoomEventFilter of /messages (types, not_types, senders,
contains_url, lazy_load_members), pagination through pages the filter
empties, `to` tokens, and /members?at=. Every test runs on SQLite and on
PostgreSQL and checks exact event IDs."""

import json
import time
import urllib.parse

from test_rooms import V3, User, assert_error, q

V1 = "/_matrix/client/v1"


def set_visibility(user, room, visibility):
    """Sets the room's history visibility; returns the event ID."""
    resp = user.put_state(room, "m.room.history_visibility",
                          {"history_visibility": visibility})
    assert resp.status == 200, resp
    return resp.json["event_id"]


def hv_room(alice, visibility, **body):
    room = alice.create_room(preset="public_chat", **body)
    set_visibility(alice, room, visibility)
    return room


def messages(user, room, **params):
    if "filter" in params and not isinstance(params["filter"], str):
        params["filter"] = json.dumps(params["filter"])
    return user.messages(room, **params)


def page(user, room, **params):
    """The events of one /messages page (up to 100 unless a limit is
    given), oldest first whatever the direction."""
    params.setdefault("limit", 100)
    resp = messages(user, room, **params)
    assert resp.status == 200, resp
    chunk = resp.json["chunk"]
    if params.get("dir", "b") == "b":
        chunk = list(reversed(chunk))
    return chunk


def message_ids(user, room, **params):
    """Event IDs of the m.room.message events of one page (see page)."""
    return [e["event_id"] for e in page(user, room, **params)
            if e["type"] == "m.room.message"]


def all_ids(user, room, **params):
    """Every event ID of one page (see page)."""
    return [e["event_id"] for e in page(user, room, **params)]


def context(user, room, event_id, **params):
    query = urllib.parse.urlencode(params)
    return user.get(f"{V3}/rooms/{q(room)}/context/{q(event_id)}" +
                    (f"?{query}" if query else ""))


def event(user, room, event_id):
    return user.get(f"{V3}/rooms/{q(room)}/event/{q(event_id)}")


def sees_only(user, room, shown, hidden):
    """user's /messages gives exactly the messages `shown`, and /event
    refuses the `hidden` one as not found."""
    assert message_ids(user, room) == shown
    assert_error(event(user, room, hidden), 404, "M_NOT_FOUND")


# ---------------------------------------------------------------------------
# joined / shared / invited
# ---------------------------------------------------------------------------

def test_joined_visibility_hides_history_before_join(server):
    alice, bob = User(server), User(server)
    room = hv_room(alice, "joined")
    before = [alice.send_ok(room, f"before {i}") for i in range(3)]
    assert bob.join(room).status == 200
    after = [alice.send_ok(room, f"after {i}") for i in range(2)]

    assert message_ids(alice, room) == before + after
    assert message_ids(bob, room) == after
    assert message_ids(bob, room, dir="f") == after
    # Bob's own join is visible to him; alice's messages before it are
    # not. The room's first events were sent under "shared" (the preset)
    # and the change to "joined" is visible by the rule before it.
    bob_ids = all_ids(bob, room)
    join_id = alice.state_event(room, "m.room.member", bob.user_id)["event_id"]
    hv_id = alice.state_event(room, "m.room.history_visibility")["event_id"]
    assert bob_ids[-(len(after) + 2):] == [hv_id, join_id] + after
    assert not set(before) & set(bob_ids)

    for ev in before:
        assert_error(event(bob, room, ev), 404, "M_NOT_FOUND")
        assert_error(context(bob, room, ev), 404, "M_NOT_FOUND")
    resp = event(bob, room, after[0])
    assert resp.status == 200 and resp.json["event_id"] == after[0], resp
    resp = context(bob, room, after[0], limit=6)
    assert resp.status == 200, resp
    assert [e["event_id"] for e in resp.json["events_before"]] == [join_id]
    assert [e["event_id"] for e in resp.json["events_after"]] == after[1:]
    # Alice sees the events around the same event.
    resp = context(alice, room, after[0], limit=10)
    assert before[-1] in [e["event_id"] for e in resp.json["events_before"]]


def test_shared_visibility_shows_earlier_history(server):
    alice, bob = User(server), User(server)
    room = hv_room(alice, "shared")
    before = [alice.send_ok(room, f"before {i}") for i in range(3)]
    # Not yet a member: nothing is readable.
    assert_error(messages(bob, room), 403, "M_FORBIDDEN")
    assert_error(event(bob, room, before[0]), 403, "M_FORBIDDEN")
    assert bob.join(room).status == 200
    after = alice.send_ok(room, "after")
    assert message_ids(bob, room) == before + [after]
    assert event(bob, room, before[0]).json["event_id"] == before[0]
    resp = context(bob, room, before[1], limit=2)
    assert resp.status == 200, resp
    assert [e["event_id"] for e in resp.json["events_before"]] == [before[0]]
    assert [e["event_id"] for e in resp.json["events_after"]] == [before[2]]


def test_invited_visibility_from_the_invite(server):
    alice, bob = User(server), User(server)
    room = hv_room(alice, "invited")
    early = alice.send_ok(room, "before the invite")
    assert alice.action(room, "invite", bob).status == 200
    invite_id = alice.state_event(room, "m.room.member", bob.user_id)["event_id"]
    while_invited = alice.send_ok(room, "while invited")
    assert bob.join(room).status == 200
    joined = alice.send_ok(room, "joined")

    assert message_ids(bob, room) == [while_invited, joined]
    assert invite_id in all_ids(bob, room)
    assert_error(event(bob, room, early), 404, "M_NOT_FOUND")
    assert event(bob, room, while_invited).status == 200
    # Under "joined" the event sent while bob was invited stays hidden.
    alice2, carol = User(server), User(server)
    room2 = hv_room(alice2, "joined")
    assert alice2.action(room2, "invite", carol).status == 200
    hidden = alice2.send_ok(room2, "while invited")
    assert carol.join(room2).status == 200
    shown = alice2.send_ok(room2, "joined")
    sees_only(carol, room2, [shown], hidden)


def test_visibility_change_applies_from_the_change(server):
    """The rule is the one in force when each event was sent."""
    alice, bob = User(server), User(server)
    room = hv_room(alice, "shared")
    shared_msg = alice.send_ok(room, "sent while shared")
    hv_change = set_visibility(alice, room, "joined")
    joined_msg = alice.send_ok(room, "sent while joined-only")
    assert bob.join(room).status == 200
    later = alice.send_ok(room, "later")
    ids = all_ids(bob, room)
    assert shared_msg in ids
    assert joined_msg not in ids
    # The change itself: visible because the visibility before it allowed it.
    assert hv_change in ids
    assert message_ids(bob, room) == [shared_msg, later]


# ---------------------------------------------------------------------------
# world_readable, non-members and guests
# ---------------------------------------------------------------------------

def test_world_readable_for_non_members_and_guests(server):
    alice, bob = User(server), User(server)
    room = hv_room(alice, "world_readable")
    msgs = [alice.send_ok(room, f"public {i}") for i in range(3)]
    resp = alice.put_state(room, "m.room.topic", {"topic": "open"})
    topic_id = resp.json["event_id"]

    assert message_ids(bob, room) == msgs
    assert event(bob, room, msgs[1]).json["event_id"] == msgs[1]
    resp = context(bob, room, msgs[1], limit=2)
    assert [e["event_id"] for e in resp.json["events_before"]] == [msgs[0]]
    resp = bob.get(f"{V3}/rooms/{q(room)}/state/m.room.topic/")
    assert resp.status == 200 and resp.json == {"topic": "open"}, resp
    resp = bob.get(f"{V3}/rooms/{q(room)}/state")
    assert topic_id in [e["event_id"] for e in resp.json], resp
    assert bob.members(room) == {alice.user_id: "join"}
    # Bob is no member: he still cannot send.
    assert_error(bob.send(room), 403, "M_FORBIDDEN")

    guest = User(server, guest=True)
    assert message_ids(guest, room, limit=50) == msgs
    resp = event(guest, room, msgs[0])
    assert resp.status == 200 and resp.json["event_id"] == msgs[0], resp
    resp = guest.get(f"{V3}/rooms/{q(room)}/state/m.room.topic")
    assert resp.status == 200 and resp.json == {"topic": "open"}, resp

    # Once the room stops being world_readable, non-members are out, and a
    # guest with them.
    set_visibility(alice, room, "shared")
    assert_error(messages(bob, room), 403, "M_FORBIDDEN")
    assert_error(bob.get(f"{V3}/rooms/{q(room)}/state"), 403, "M_FORBIDDEN")
    assert_error(guest.messages(room), 403, "M_FORBIDDEN")


def test_world_readable_only_covers_its_own_period(server):
    """A peeker sees the events sent while the room was world_readable."""
    alice, bob = User(server), User(server)
    room = hv_room(alice, "joined")
    private = alice.send_ok(room, "private")
    set_visibility(alice, room, "world_readable")
    public = alice.send_ok(room, "public")
    sees_only(bob, room, [public], private)


def test_non_member_is_forbidden_everywhere(server):
    alice, bob = User(server), User(server)
    room = hv_room(alice, "shared")
    ev = alice.send_ok(room, "x")
    for path in (f"{V3}/rooms/{q(room)}/messages",
                 f"{V3}/rooms/{q(room)}/event/{q(ev)}",
                 f"{V3}/rooms/{q(room)}/context/{q(ev)}",
                 f"{V3}/rooms/{q(room)}/state",
                 f"{V3}/rooms/{q(room)}/state/m.room.create/",
                 f"{V3}/rooms/{q(room)}/members",
                 f"{V3}/rooms/{q(room)}/joined_members",
                 f"{V1}/rooms/{q(room)}/relations/{q(ev)}",
                 f"{V1}/rooms/{q(room)}/threads",
                 f"{V1}/rooms/{q(room)}/timestamp_to_event?ts=0&dir=f"):
        assert_error(bob.get(path), 403, "M_FORBIDDEN")


# ---------------------------------------------------------------------------
# Former members
# ---------------------------------------------------------------------------

def test_left_user_sees_history_until_the_leave(server):
    alice, bob = User(server), User(server)
    room = hv_room(alice, "shared", name="Before")
    early = [alice.send_ok(room, f"early {i}") for i in range(2)]
    assert bob.join(room).status == 200
    during = alice.send_ok(room, "during")
    assert bob.leave(room).status == 200
    leave_id = alice.state_event(room, "m.room.member", bob.user_id)["event_id"]
    after = alice.send_ok(room, "after the leave")
    assert alice.put_state(room, "m.room.name",
                           {"name": "After"}).status == 200

    assert message_ids(bob, room) == early + [during]
    assert message_ids(bob, room, dir="f") == early + [during]
    assert all_ids(bob, room)[-1] == leave_id
    assert_error(event(bob, room, after), 404, "M_NOT_FOUND")
    assert_error(context(bob, room, after), 404, "M_NOT_FOUND")
    assert event(bob, room, during).json["event_id"] == during
    resp = context(bob, room, during, limit=10)
    assert resp.status == 200, resp
    assert [e["event_id"] for e in resp.json["events_after"]] == [leave_id]

    # State as of the leave: the old name, bob's own leave.
    assert bob.state_content(room, "m.room.name") == {"name": "Before"}
    state = bob.get(f"{V3}/rooms/{q(room)}/state").json
    names = [e for e in state if e["type"] == "m.room.name"]
    assert [e["content"] for e in names] == [{"name": "Before"}]
    mine = [e for e in state if e["type"] == "m.room.member"
            and e["state_key"] == bob.user_id]
    assert [e["event_id"] for e in mine] == [leave_id]
    assert bob.members(room) == {alice.user_id: "join", bob.user_id: "leave"}
    resp = bob.get(f"{V3}/rooms/{q(room)}/joined_members")
    assert set(resp.json["joined"]) == {alice.user_id}
    # Context state is the state at the leave too.
    resp = context(bob, room, during)
    assert [e["content"] for e in resp.json["state"]
            if e["type"] == "m.room.name"] == [{"name": "Before"}]

    # A later join opens the events in between again (shared).
    assert bob.join(room).status == 200
    assert message_ids(bob, room) == early + [during, after]


def test_left_user_joined_visibility(server):
    alice, bob = User(server), User(server)
    room = hv_room(alice, "joined")
    hidden = alice.send_ok(room, "before bob")
    assert bob.join(room).status == 200
    seen = alice.send_ok(room, "while bob is here")
    assert bob.leave(room).status == 200
    gone = alice.send_ok(room, "after bob")
    assert message_ids(bob, room) == [seen]
    for ev in (hidden, gone):
        assert_error(event(bob, room, ev), 404, "M_NOT_FOUND")


def test_forgotten_and_banned_rooms_are_closed(server):
    alice, bob, carol = User(server), User(server), User(server)
    room = hv_room(alice, "shared")
    alice.send_ok(room, "x")
    assert bob.join(room).status == 200
    assert carol.join(room).status == 200
    assert bob.leave(room).status == 200
    assert messages(bob, room).status == 200
    assert bob.post(f"{V3}/rooms/{q(room)}/forget").status == 200
    assert_error(messages(bob, room), 403, "M_FORBIDDEN")
    assert alice.action(room, "ban", carol).status == 200
    assert_error(messages(carol, room), 403, "M_FORBIDDEN")


def test_relations_and_timestamp_follow_visibility(server):
    alice, bob = User(server), User(server)
    room = hv_room(alice, "joined")
    time.sleep(0.01)
    root = alice.send_ok(room, "root")
    root_ts = event(alice, room, root).json["origin_server_ts"]
    time.sleep(0.01)
    assert bob.join(room).status == 200
    child = alice.send_ok(room, "child", content={
        "msgtype": "m.text", "body": "reply",
        "m.relates_to": {"rel_type": "m.thread", "event_id": root}})
    # The root predates bob's join: hidden from him, also via /relations.
    assert_error(bob.get(f"{V1}/rooms/{q(room)}/relations/{q(root)}"),
                 404, "M_NOT_FOUND")
    resp = alice.get(f"{V1}/rooms/{q(room)}/relations/{q(root)}")
    assert [e["event_id"] for e in resp.json["chunk"]] == [child]
    resp = bob.get(f"{V1}/rooms/{q(room)}/threads")
    assert resp.status == 200 and resp.json["chunk"] == [], resp
    resp = alice.get(f"{V1}/rooms/{q(room)}/threads")
    assert [e["event_id"] for e in resp.json["chunk"]] == [root]

    # timestamp_to_event: the event at the root's time is the root, which
    # alice sees and bob does not.
    path = f"{V1}/rooms/{q(room)}/timestamp_to_event?ts={root_ts}&dir=f"
    resp = alice.get(path)
    assert resp.status == 200 and resp.json["event_id"] == root, resp
    assert_error(bob.get(path), 404, "M_NOT_FOUND")
    resp = bob.get(f"{V1}/rooms/{q(room)}/timestamp_to_event"
                   f"?ts={int(time.time() * 1000) + 60000}&dir=b")
    assert resp.status == 200 and resp.json["event_id"] == child, resp


# ---------------------------------------------------------------------------
# /messages filters and pagination
# ---------------------------------------------------------------------------

def test_messages_filters(server):
    alice, bob = User(server), User(server)
    room = alice.create_room(preset="public_chat")
    assert bob.join(room).status == 200
    a1 = alice.send_ok(room, "a1")
    b1 = bob.send_ok(room, "b1")
    img = alice.send_ok(room, content={"msgtype": "m.image", "body": "pic",
                                       "url": "mxc://example.org/pic"})
    note = alice.send_ok(room, etype="org.example.note",
                         content={"body": "custom"})
    b2 = bob.send_ok(room, "b2")

    def ids(flt, **kw):
        return all_ids(alice, room, filter=flt, **kw)

    assert ids({"types": ["m.room.message"]}) == [a1, b1, img, b2]
    assert ids({"types": ["org.example.*"]}) == [note]
    assert ids({"not_types": ["m.room.*"]}) == [note]
    assert ids({"senders": [bob.user_id],
                "types": ["m.room.message"]}) == [b1, b2]
    bob_join = alice.state_event(room, "m.room.member", bob.user_id)
    assert ids({"not_senders": [alice.user_id]}) == \
        [bob_join["event_id"], b1, b2]
    assert ids({"contains_url": True}) == [img]
    assert ids({"contains_url": False, "types": ["m.room.message"]}) == \
        [a1, b1, b2]
    assert ids({"rooms": ["!other:example.org"]}) == []
    assert ids({"types": ["m.room.message"], "limit": 2}) == [img, b2]
    # Forwards with the same filter.
    assert ids({"senders": [bob.user_id], "types": ["m.room.message"]},
               dir="f") == [b1, b2]
    # A malformed filter is refused.
    assert_error(messages(alice, room, filter="{not json"), 400,
                 "M_INVALID_PARAM")
    assert_error(messages(alice, room, filter=json.dumps({"types": "x"})),
                 400, "M_INVALID_PARAM")


def test_messages_lazy_load_members(server):
    alice, bob, carol = User(server), User(server), User(server)
    room = alice.create_room(preset="public_chat")
    assert bob.join(room).status == 200
    assert carol.join(room).status == 200
    alice.send_ok(room, "from alice")
    bob.send_ok(room, "from bob")
    flt = {"lazy_load_members": True, "types": ["m.room.message"]}
    resp = messages(alice, room, filter=flt, limit=1)
    assert resp.status == 200, resp
    assert [e["sender"] for e in resp.json["chunk"]] == [bob.user_id]
    state = resp.json["state"]
    assert [(e["type"], e["state_key"], e["content"]["membership"])
            for e in state] == [("m.room.member", bob.user_id, "join")]
    bob_join = alice.state_event(room, "m.room.member", bob.user_id)
    assert state[0]["event_id"] == bob_join["event_id"]
    resp = messages(alice, room, filter=flt, limit=2)
    assert {e["state_key"] for e in resp.json["state"]} == \
        {alice.user_id, bob.user_id}
    # Without lazy loading there is no state.
    resp = messages(alice, room, limit=2)
    assert "state" not in resp.json


def test_messages_lazy_members_as_of_the_chunk(server):
    """The member events come from the state at the chunk's first event,
    not from the current state."""
    alice, bob = User(server), User(server)
    room = alice.create_room(preset="public_chat")
    assert bob.join(room).status == 200
    old_msg = bob.send_ok(room, "as Bob")
    old_member = alice.state_event(room, "m.room.member", bob.user_id)
    assert bob.put_state(room, "m.room.member",
                         {"membership": "join", "displayname": "Renamed"},
                         state_key=bob.user_id).status == 200
    resp = context(alice, room, old_msg, limit=0)
    assert resp.status == 200
    token = resp.json["end"]  # just after old_msg
    flt = json.dumps({"lazy_load_members": True})
    resp = messages(alice, room, filter=flt, limit=1, **{"from": token})
    assert [e["event_id"] for e in resp.json["chunk"]] == [old_msg]
    assert [e["event_id"] for e in resp.json["state"]] == \
        [old_member["event_id"]]


def test_messages_filtered_pages_keep_paginating(server):
    """Pages the filter empties still carry an `end` token; `end` goes away
    only at the end of history."""
    alice = User(server)
    room = alice.create_room(preset="public_chat")
    wanted = alice.send_ok(room, etype="org.example.rare",
                           content={"body": "rare"})
    for i in range(130):
        alice.send_ok(room, f"noise {i}")
    flt = json.dumps({"types": ["org.example.rare"]})
    got, token, pages, empty_pages = [], None, 0, 0
    while True:
        params = {"limit": 1, "filter": flt}
        if token:
            params["from"] = token
        resp = messages(alice, room, **params)
        assert resp.status == 200, resp
        got += [e["event_id"] for e in resp.json["chunk"]]
        pages += 1
        assert pages < 200
        if "end" not in resp.json:
            break
        empty_pages += not resp.json["chunk"]
        token = resp.json["end"]
    assert got == [wanted]
    # One request examines a bounded number of events: the noise takes
    # more than one page, and an empty page still led on.
    assert empty_pages >= 1


def test_messages_to_tokens(server):
    alice = User(server)
    room = alice.create_room(preset="public_chat")
    ids = [alice.send_ok(room, f"m{i}") for i in range(6)]
    # A token between m1 and m2: the backwards "end" after m2..m5.
    resp = messages(alice, room, limit=4)
    assert [e["event_id"] for e in resp.json["chunk"]] == ids[:1:-1]
    mid = resp.json["end"]
    # Backwards from now down to mid: m5..m2, and no end (reached `to`).
    resp = messages(alice, room, limit=50, to=mid)
    assert [e["event_id"] for e in resp.json["chunk"]] == ids[:1:-1]
    assert "end" not in resp.json
    # Forwards from the start up to mid.
    resp = messages(alice, room, dir="f", limit=50, to=mid)
    chunk = [e["event_id"] for e in resp.json["chunk"]
             if e["type"] == "m.room.message"]
    assert chunk == ids[:2]
    assert "end" not in resp.json
    # Forwards from mid: the rest.
    resp = messages(alice, room, dir="f", limit=50, **{"from": mid})
    assert [e["event_id"] for e in resp.json["chunk"]] == ids[2:]
    # A /sync-style token with extra stream parts is accepted.
    resp = messages(alice, room, limit=1, **{"from": mid + "_0_0"})
    assert resp.status == 200, resp
    assert [e["event_id"] for e in resp.json["chunk"]] == [ids[1]]
    assert_error(messages(alice, room, to="bogus"), 400, "M_INVALID_PARAM")


# ---------------------------------------------------------------------------
# /members?at=
# ---------------------------------------------------------------------------

def test_members_at_gives_the_old_list(server):
    alice, bob, carol = User(server), User(server), User(server)
    room = alice.create_room(preset="public_chat")
    assert bob.join(room).status == 200
    alice.send_ok(room, "marker")
    old = messages(alice, room, limit=1).json["start"]
    assert carol.join(room).status == 200
    assert bob.leave(room).status == 200
    assert alice.action(room, "ban", carol).status == 200

    assert alice.members(room) == {alice.user_id: "join",
                                   bob.user_id: "leave",
                                   carol.user_id: "ban"}
    assert alice.members(room, at=old) == {alice.user_id: "join",
                                           bob.user_id: "join"}
    assert alice.members(room, at=old, membership="join") == \
        {alice.user_id: "join", bob.user_id: "join"}
    assert alice.members(room, at=old, not_membership="join") == {}
    assert alice.members(room, not_membership="join") == \
        {bob.user_id: "leave", carol.user_id: "ban"}
    # A /sync token works as `at` too.
    assert alice.members(room, at=old + "_5") == \
        {alice.user_id: "join", bob.user_id: "join"}
    # Bob left: `at` cannot reach past his leave.
    assert bob.members(room, at="s999999999") == \
        {alice.user_id: "join", bob.user_id: "leave", carol.user_id: "join"}
    assert_error(alice.get(f"{V3}/rooms/{q(room)}/members?at=junk"), 400,
                 "M_INVALID_PARAM")
