"""Checks on what enters a room, and room-wide side effects.

Send-side relation checks (spec "Avoiding duplicate annotations",
"Validation of m.thread relationships", same-room parents): duplicate
reactions refused with M_DUPLICATE_ANNOTATION until redacted, threads
refused from events that have a relation, parents in another room or
unknown refused. GET /threads ordered by latest activity through the
threads table, with paging and redacted replies. Profile changes sent as
m.room.member events into every joined room. createRoom refusing power
levels that list a v12 creator (or strand a pre-v12 creator) before
anything is stored. Room upgrades: a new room that fails part way leaves
the old room untouched; the recommended state is copied. Every test runs
on SQLite and on PostgreSQL."""

import urllib.parse

from test_rooms import V3, User, assert_error, q, redact, unique

V1 = "/_matrix/client/v1"


def relate(user, room_id, parent, rel_type, etype="m.room.message",
           body="child", **rel):
    content = {"m.relates_to": {"rel_type": rel_type, "event_id": parent,
                                **rel}}
    if etype == "m.room.message":
        content.update({"msgtype": "m.text", "body": body})
    return user.send(room_id, etype=etype, content=content)


def react(user, room_id, parent, key):
    return relate(user, room_id, parent, "m.annotation", etype="m.reaction",
                  key=key)


def ok(resp):
    assert resp.status == 200, resp
    return resp.json["event_id"]


def threads(user, room_id, **params):
    query = urllib.parse.urlencode(params)
    resp = user.get(f"{V1}/rooms/{q(room_id)}/threads" +
                    (f"?{query}" if query else ""))
    assert resp.status == 200, resp
    return resp.json


def thread_ids(user, room_id, limit=None):
    """Every thread root by paging /threads `limit` at a time."""
    got, token = [], None
    for _ in range(50):
        params = {"limit": limit} if limit else {}
        if token:
            params["from"] = token
        page = threads(user, room_id, **params)
        if limit:
            assert len(page["chunk"]) <= limit
        got += [e["event_id"] for e in page["chunk"]]
        token = page.get("next_batch")
        if not token:
            return got
    raise AssertionError("/threads did not end")


# ---------------------------------------------------------------------------
# Relations on sending
# ---------------------------------------------------------------------------

def test_duplicate_annotation(server):
    alice, bob = User(server), User(server)
    room = alice.create_room(preset="public_chat")
    assert bob.join(room).status == 200
    msg = alice.send_ok(room, "react to me")

    first = ok(react(alice, room, msg, "👍"))
    assert_error(react(alice, room, msg, "👍"), 400, "M_DUPLICATE_ANNOTATION")
    ok(react(alice, room, msg, "👎"))          # another key
    ok(react(bob, room, msg, "👍"))            # another sender
    other = alice.send_ok(room, "another event")
    ok(react(alice, room, other, "👍"))        # another parent
    # Another event type with the same key is another annotation.
    ok(relate(alice, room, msg, "m.annotation", etype="org.example.vote",
              key="👍"))
    # Once redacted, the reaction may be sent again.
    assert redact(alice, room, first).status == 200
    again = ok(react(alice, room, msg, "👍"))
    assert again != first
    assert_error(react(alice, room, msg, "👍"), 400, "M_DUPLICATE_ANNOTATION")

    # An annotation needs a key, of at most 500 characters.
    assert_error(relate(alice, room, msg, "m.annotation", etype="m.reaction"),
                 400, "M_UNKNOWN")
    assert_error(react(alice, room, msg, "k" * 501), 400, "M_UNKNOWN")
    ok(react(alice, room, msg, "k" * 500))

    # Only live reactions count: the counts served agree.
    resp = alice.get(f"{V1}/rooms/{q(room)}/relations/{q(msg)}/m.annotation"
                     "?limit=50")
    assert resp.status == 200, resp
    keys = sorted((e["sender"], e["content"]["m.relates_to"]["key"])
                  for e in resp.json["chunk"] if e["type"] == "m.reaction")
    assert keys == sorted([(alice.user_id, "👍"), (alice.user_id, "👎"),
                           (bob.user_id, "👍"), (alice.user_id, "k" * 500)])


def test_thread_from_relation_refused(server):
    alice = User(server)
    room = alice.create_room(preset="public_chat")
    root = alice.send_ok(room, "root")
    reply = ok(relate(alice, room, root, "m.thread", body="in thread"))
    reaction = ok(react(alice, room, root, "🎉"))
    edit = ok(alice.send(room, content={
        "msgtype": "m.text", "body": "* root!",
        "m.new_content": {"msgtype": "m.text", "body": "root!"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": root}}))
    for child in (reply, reaction, edit):
        resp = relate(alice, room, child, "m.thread", body="nested")
        assert_error(resp, 400, "M_UNKNOWN")
        assert "relation" in resp.json["error"]
    # A rich reply has m.relates_to without rel_type: a fine thread root.
    rich = ok(alice.send(room, content={
        "msgtype": "m.text", "body": "a reply",
        "m.relates_to": {"m.in_reply_to": {"event_id": root}}}))
    ok(relate(alice, room, rich, "m.thread", body="thread on a reply"))
    # A redacted child has lost its relation and may start a thread.
    assert redact(alice, room, reaction).status == 200
    ok(relate(alice, room, reaction, "m.thread", body="after redaction"))
    # Other relations to a thread reply stay allowed (edits, reactions).
    ok(react(alice, room, reply, "👀"))


def test_relation_parent_must_be_in_room(server):
    alice, bob = User(server), User(server)
    room = alice.create_room(preset="public_chat")
    other = alice.create_room(preset="public_chat")
    elsewhere = alice.send_ok(other, "in the other room")
    for rel_type in ("m.thread", "m.annotation", "m.reference", "m.replace"):
        resp = relate(alice, room, elsewhere, rel_type, key="x")
        assert_error(resp, 400, "M_UNKNOWN")
        resp = relate(alice, room, "$unknown-event-id", rel_type, key="x")
        assert_error(resp, 400, "M_UNKNOWN")
    # Nothing of the refused sends reached the other room's event.
    resp = alice.get(f"{V1}/rooms/{q(other)}/relations/{q(elsewhere)}")
    assert resp.status == 200 and resp.json["chunk"] == [], resp
    # A stranger is refused by the auth rules, learning nothing more.
    assert_error(react(bob, room, elsewhere, "x"), 403, "M_FORBIDDEN")


# ---------------------------------------------------------------------------
# GET /threads through the threads table
# ---------------------------------------------------------------------------

def test_threads_latest_activity_order_and_paging(server):
    alice, bob = User(server), User(server)
    room = alice.create_room(preset="public_chat")
    assert bob.join(room).status == 200
    roots = [alice.send_ok(room, f"root {i}") for i in range(6)]
    # Activity in a scrambled order; the last reply decides.
    order = [2, 0, 4, 1, 5, 3, 0, 2]
    replies = {}
    for n, i in enumerate(order):
        who = bob if n % 2 else alice
        replies.setdefault(i, []).append(
            ok(relate(who, room, roots[i], "m.thread", body=f"reply {n}")))
    expected = [roots[i] for i in (2, 0, 3, 5, 1, 4)]
    assert thread_ids(alice, room) == expected
    for limit in (1, 2, 4):
        assert thread_ids(alice, room, limit=limit) == expected
    page = threads(alice, room, limit=2)
    assert [e["event_id"] for e in page["chunk"]] == expected[:2]
    summary = page["chunk"][0]["unsigned"]["m.relations"]["m.thread"]
    assert summary["count"] == 2
    assert summary["latest_event"]["event_id"] == replies[2][-1]

    # Redacting a thread's latest reply moves it back to its previous one.
    assert redact(alice, room, replies[2][-1]).status == 200
    expected = [roots[i] for i in (0, 3, 5, 1, 4, 2)]
    assert thread_ids(alice, room, limit=2) == expected
    # Redacting every reply of a thread removes it.
    for reply in replies[4]:
        assert redact(alice, room, reply).status == 200
    expected.remove(roots[4])
    assert thread_ids(alice, room, limit=3) == expected
    # New activity brings a thread to the front again.
    ok(relate(bob, room, roots[4], "m.thread", body="back"))
    assert thread_ids(alice, room)[0] == roots[4]

    # include=participated: bob replied in threads 0, 1, 3 (odd n), 4.
    got = [e["event_id"] for e in
           threads(bob, room, include="participated", limit=10)["chunk"]]
    assert got == [roots[i] for i in (4, 0, 3, 1)]


# ---------------------------------------------------------------------------
# Profile changes reach the rooms
# ---------------------------------------------------------------------------

def largest(send):
    """Bisects the largest n for which send(n) succeeds (events are limited
    to 65536 bytes), and sends it last. Returns n."""
    lo, hi = 60000, 65536
    while lo < hi:
        mid = (lo + hi + 1) // 2
        resp = send(mid)
        if resp.status == 200:
            lo = mid
        else:
            assert_error(resp, 413, "M_TOO_LARGE")
            hi = mid - 1
    resp = send(lo)
    assert resp.status == 200, resp
    return lo


def member_content(user, room, target):
    return user.state_content(room, "m.room.member", target.user_id)


def test_profile_change_updates_member_events(server):
    alice, bob = User(server), User(server)
    rooms = [alice.create_room(preset="public_chat") for _ in range(3)]
    left = bob.create_room(preset="public_chat")
    assert alice.join(left).status == 200
    assert alice.leave(left).status == 200
    invited = bob.create_room(preset="private_chat")
    assert bob.action(invited, "invite", alice).status == 200
    shared = bob.create_room(preset="public_chat")
    assert alice.join(shared).status == 200
    rooms.append(shared)

    resp = alice.put(f"{V3}/profile/{q(alice.user_id)}/displayname",
                     json={"displayname": "Alice Liddell"})
    assert resp.status == 200, resp
    for room in rooms:
        content = member_content(alice, room, alice)
        assert content["membership"] == "join"
        assert content["displayname"] == "Alice Liddell", room
    # Rooms alice is not joined to are left alone.
    assert member_content(bob, left, alice)["membership"] == "leave"
    content = member_content(bob, invited, alice)
    assert content["membership"] == "invite" and "displayname" not in content

    resp = alice.put(f"{V3}/profile/{q(alice.user_id)}/avatar_url",
                     json={"avatar_url": "mxc://example.org/alice"})
    assert resp.status == 200, resp
    content = member_content(alice, rooms[0], alice)
    assert content == {"membership": "join", "displayname": "Alice Liddell",
                       "avatar_url": "mxc://example.org/alice"}

    # The same value again sends nothing new.
    before = alice.state_event(rooms[0], "m.room.member", alice.user_id)
    resp = alice.put(f"{V3}/profile/{q(alice.user_id)}/displayname",
                     json={"displayname": "Alice Liddell"})
    assert resp.status == 200, resp
    after = alice.state_event(rooms[0], "m.room.member", alice.user_id)
    assert after["event_id"] == before["event_id"]

    # Removing the display name removes it from the member events.
    resp = alice.req("DELETE", f"{V3}/profile/{q(alice.user_id)}/displayname")
    assert resp.status == 200, resp
    for room in rooms:
        content = member_content(alice, room, alice)
        assert "displayname" not in content
        assert content["avatar_url"] == "mxc://example.org/alice"
    # The change is a timeline event too, and custom fields change nothing.
    resp = alice.messages(rooms[1], limit=1)
    assert resp.json["chunk"][0]["type"] == "m.room.member"
    event_id = resp.json["chunk"][0]["event_id"]
    resp = alice.put(f"{V3}/profile/{q(alice.user_id)}/m.tz",
                     json={"m.tz": "Europe/London"})
    assert resp.status == 200, resp
    assert alice.messages(rooms[1], limit=1).json["chunk"][0][
        "event_id"] == event_id


def test_profile_change_survives_a_refusing_room(server):
    """A room that refuses the updated member event (here: it would grow
    past the event size limit) is skipped; the others get it and the
    profile change succeeds."""
    alice = User(server)
    mine = alice.create_room(preset="public_chat")
    full = alice.create_room(preset="public_chat")
    # Alice's own member event in `full`, padded to the size limit.
    largest(lambda n: alice.put_state(full, "m.room.member",
                                      {"membership": "join", "pad": "p" * n},
                                      state_key=alice.user_id))
    resp = alice.put(f"{V3}/profile/{q(alice.user_id)}/displayname",
                     json={"displayname": "Still Alice, with a long name"})
    assert resp.status == 200, resp
    assert member_content(alice, mine, alice)["displayname"] == \
        "Still Alice, with a long name"
    assert "displayname" not in member_content(alice, full, alice)
    resp = alice.get(f"{V3}/profile/{q(alice.user_id)}/displayname")
    assert resp.json == {"displayname": "Still Alice, with a long name"}


# ---------------------------------------------------------------------------
# createRoom: power levels refused before anything is stored
# ---------------------------------------------------------------------------

def test_create_room_refuses_creator_in_v12_users(server):
    alice, bob = User(server), User(server)
    before = sorted(alice.joined_rooms())
    create = f"{V3}/createRoom"
    cases = [
        {"room_version": "12",
         "power_level_content_override": {"users": {alice.user_id: 100}}},
        # Trusted invitees become additional creators in v12.
        {"room_version": "12", "preset": "trusted_private_chat",
         "invite": [bob.user_id],
         "power_level_content_override": {"users": {bob.user_id: 100}}},
        {"room_version": "12",
         "creation_content": {"additional_creators": [bob.user_id]},
         "power_level_content_override": {"users": {bob.user_id: 50}}},
        {"room_version": "12", "initial_state": [
            {"type": "m.room.power_levels", "state_key": "",
             "content": {"users": {alice.user_id: 100}}}]},
        # Before v12: levels that leave the creator unable to go on.
        {"room_version": "11",
         "power_level_content_override": {"users": {bob.user_id: 100}}},
        {"room_version": "10", "name": "x",
         "power_level_content_override": {
             "events": {"m.room.name": 101}}},
        {"room_version": "11",
         "power_level_content_override": {"users": "everyone"}},
    ]
    for body in cases:
        resp = alice.post(create, json=body)
        assert_error(resp, 400, "M_INVALID_ROOM_STATE")
    assert sorted(alice.joined_rooms()) == before
    assert bob.joined_rooms() == []
    # Bob was invited to nothing either.
    resp = bob.get(f"{V3}/sync?timeout=0")
    assert resp.status == 200 and not resp.json.get("rooms", {}).get(
        "invite"), resp

    # Listing other users is fine, as is an explicit level for the
    # creator before v12.
    room = alice.create_room(room_version="12", power_level_content_override={
        "users": {bob.user_id: 50}})
    assert alice.state_content(room, "m.room.power_levels")["users"] == {
        bob.user_id: 50}
    room = alice.create_room(room_version="11", name="n",
                             power_level_content_override={
                                 "users": {alice.user_id: 100,
                                           bob.user_id: 50}})
    assert alice.state_content(room, "m.room.name") == {"name": "n"}
    assert len(alice.joined_rooms()) == len(before) + 2


# ---------------------------------------------------------------------------
# Room upgrades
# ---------------------------------------------------------------------------

def upgrade(user, room_id, version):
    return user.post(f"{V3}/rooms/{q(room_id)}/upgrade",
                     json={"new_version": version})


def largest_topic(user, room):
    """Sets the longest topic the room accepts."""
    return largest(lambda n: user.put_state(room, "m.room.topic",
                                            {"topic": "t" * n}))


def test_upgrade_failing_part_way_leaves_old_room(server):
    alice = User(server)
    alias_name = unique("keep")
    room = alice.create_room(preset="public_chat", room_version="10",
                             name="Kept", room_alias_name=alias_name)
    alias = alice.state_content(room, "m.room.canonical_alias")["alias"]
    pl_before = alice.state_content(room, "m.room.power_levels")
    # A topic at the size limit of a v10 event does not fit a v1 event,
    # whose references carry hashes: the copy into the new room fails.
    largest_topic(alice, room)
    resp = upgrade(alice, room, "1")
    assert_error(resp, 413, "M_TOO_LARGE")
    # The old room was not retired: no tombstone, alias, levels as before.
    assert alice.state(room, "m.room.tombstone").status == 404
    assert alice.state_content(room, "m.room.canonical_alias")["alias"] == alias
    assert alice.state_content(room, "m.room.power_levels") == pl_before
    resp = server.get(f"{V3}/directory/room/{q(alias)}")
    assert resp.status == 200 and resp.json["room_id"] == room, resp
    alice.send_ok(room, "still usable")
    # With a smaller topic the same upgrade goes through.
    assert alice.put_state(room, "m.room.topic",
                           {"topic": "small"}).status == 200
    resp = upgrade(alice, room, "1")
    assert resp.status == 200, resp
    new = resp.json["replacement_room"]
    assert alice.state_content(room, "m.room.tombstone")[
        "replacement_room"] == new
    resp = server.get(f"{V3}/directory/room/{q(alias)}")
    assert resp.status == 200 and resp.json["room_id"] == new, resp


def test_upgrade_copies_recommended_state(server):
    """Spec "Room Upgrades", server behaviour step 3: the recommended
    state events all reach the new room; membership does not."""
    alice, bob = User(server), User(server)
    room = alice.create_room(preset="private_chat", room_version="11",
                             name="Name", topic="Topic")
    state = {
        "m.room.server_acl": {"allow": ["*"], "deny": ["evil.example"],
                              "allow_ip_literals": False},
        "m.room.encryption": {"algorithm": "m.megolm.v1.aes-sha2"},
        "m.room.avatar": {"url": "mxc://example.org/avatar"},
        "m.room.guest_access": {"guest_access": "forbidden"},
        "m.room.history_visibility": {"history_visibility": "joined"},
        "m.room.join_rules": {"join_rule": "knock"},
    }
    for etype, content in state.items():
        assert alice.put_state(room, etype, content).status == 200
    pl = alice.state_content(room, "m.room.power_levels")
    pl["users"][bob.user_id] = 42
    pl["events"]["org.example.custom"] = 75
    assert alice.put_state(room, "m.room.power_levels", pl).status == 200
    assert alice.put_state(room, "org.example.custom",
                           {"not": "copied"}).status == 200

    resp = upgrade(alice, room, "12")
    assert resp.status == 200, resp
    new = resp.json["replacement_room"]
    state.update({"m.room.name": {"name": "Name"},
                  "m.room.topic": {"topic": "Topic"}})
    for etype, content in state.items():
        got = alice.state_content(new, etype)
        for key, value in content.items():
            assert got.get(key) == value, (etype, got)
    new_pl = alice.state_content(new, "m.room.power_levels")
    assert new_pl["users"] == {bob.user_id: 42}  # the v12 creator left out
    assert new_pl["events"]["org.example.custom"] == 75
    assert alice.state(new, "org.example.custom").status == 404
    assert alice.members(new) == {alice.user_id: "join"}


def test_guest_access_join_rule_and_removal(server):
    """Spec "Guest access": guests join only rooms whose m.room.guest_access
    is can_join, and leave when it stops being so."""
    alice = User(server)
    room = alice.create_room(preset="public_chat")
    guest = User(server, guest=True)
    resp = guest.post(f"{V3}/rooms/{q(room)}/join")
    assert_error(resp, 403, "M_GUEST_ACCESS_FORBIDDEN")
    resp = alice.req("PUT", f"{V3}/rooms/{q(room)}/state/m.room.guest_access/",
                     json={"guest_access": "can_join"})
    assert resp.status == 200, resp
    resp = guest.post(f"{V3}/rooms/{q(room)}/join")
    assert resp.status == 200, resp
    # A registered user is not affected by the change; the guest leaves.
    bob = User(server)
    assert bob.post(f"{V3}/join/{q(room)}").status == 200
    resp = alice.req("PUT", f"{V3}/rooms/{q(room)}/state/m.room.guest_access/",
                     json={"guest_access": "forbidden"})
    assert resp.status == 200, resp
    members = alice.get(f"{V3}/rooms/{q(room)}/joined_members").json["joined"]
    assert guest.user_id not in members and bob.user_id in members, members
    state = alice.get(f"{V3}/rooms/{q(room)}/state/m.room.member/{q(guest.user_id)}")
    assert state.json["membership"] == "leave"
