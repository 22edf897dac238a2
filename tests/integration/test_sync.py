"""/sync and filters, seen from outside: initial and incremental syncs,
limited timelines whose prev_batch pages on in /messages, invites with
stripped state, leaves and kicks, include_leave, long polls that wake on a
relevant event (and not on an unrelated one) and time out with an empty
answer, filters stored by ID and given inline (timeline limit, types,
senders, rooms, event_fields, lazy-loaded members), tokens that survive a
restart, and a clean SIGTERM with parked syncs. Driven with raw HTTP and
with matrix-nio (sync and sync_forever with callbacks); every test runs on
SQLite and on PostgreSQL.

Timing checks are generous bounds, never benchmarks (bench/run.py
measures the latency)."""

import asyncio
import json
import threading
import time
import urllib.parse

import test_rooms
from test_rooms import V3, nio_client, q, restart


class User(test_rooms.User):
    """test_rooms.User whose calls assert success and return what these
    tests need (send and put_state give the event ID), with /sync."""

    def send(self, room_id, body="hello", etype="m.room.message", content=None):
        return self.send_ok(room_id, body, etype=etype, content=content)

    def put_state(self, room_id, etype, content, state_key=""):
        resp = super().put_state(room_id, etype, content, state_key)
        assert resp.status == 200, resp
        return resp.json["event_id"]

    def join(self, room_id):
        resp = super().join(room_id)
        assert resp.status == 200, resp

    def invite(self, room_id, user):
        resp = self.action(room_id, "invite", user)
        assert resp.status == 200, resp

    def leave(self, room_id):
        resp = super().leave(room_id)
        assert resp.status == 200, resp

    def sync_raw(self, since=None, timeout=None, filter=None, http_timeout=30,
                 set_presence="offline", **extra):
        # Presence is left alone unless a test asks (test_presence.py covers
        # it): a first sync marking the user online would wake long polls.
        # set_presence=None sends none, which marks the user online.
        params = {} if set_presence is None else {"set_presence": set_presence}
        params.update(extra)
        if since is not None:
            params["since"] = since
        if timeout is not None:
            params["timeout"] = str(timeout)
        # Other users' presence (they turn online when they send) is left
        # out of the answer unless the filter names it, so a long poll wakes
        # for what the test is about.
        if filter is None:
            filter = {"presence": {"not_types": ["*"]}}
        elif isinstance(filter, dict) and "presence" not in filter:
            filter = {**filter, "presence": {"not_types": ["*"]}}
        if filter is not None:
            params["filter"] = (filter if isinstance(filter, str)
                                else json.dumps(filter))
        path = f"{V3}/sync"
        if params:
            path += "?" + urllib.parse.urlencode(params)
        return self.req("GET", path, timeout=http_timeout)

    def sync(self, **kw):
        resp = self.sync_raw(**kw)
        assert resp.status == 200, resp
        check_shape(resp.json)
        return resp.json


def check_shape(body):
    """The parts every answer has, whatever is in it."""
    assert isinstance(body["next_batch"], str) and body["next_batch"], body
    for section in ("join", "invite", "leave"):
        assert isinstance(body["rooms"][section], dict), body
    for key in ("account_data", "presence", "to_device"):
        assert isinstance(body[key]["events"], list), body
    assert sorted(body["device_lists"]) == ["changed", "left"], body
    assert all(isinstance(v, list) for v in body["device_lists"].values()), body
    assert isinstance(body["device_one_time_keys_count"], dict), body
    for rid, room in body["rooms"]["join"].items():
        assert rid.startswith("!"), rid
        assert isinstance(room["timeline"]["events"], list), room
        assert isinstance(room["timeline"]["limited"], bool), room
        assert room["timeline"]["prev_batch"].startswith("s"), room
        state_key = next((k for k in ("state_after", "org.matrix.msc4222.state_after")
                          if k in room), "state")
        assert isinstance(room[state_key]["events"], list), room
        assert isinstance(room["ephemeral"]["events"], list), room
        assert isinstance(room["account_data"]["events"], list), room
        counts = room["unread_notifications"]
        assert isinstance(counts["highlight_count"], int), room
        assert isinstance(counts["notification_count"], int), room
        ids = [e["event_id"] for e in room["timeline"]["events"]]
        state_ids = {e["event_id"] for e in room[state_key]["events"]}
        if state_key == "state":
            assert not state_ids & set(ids), "an event is in both state and timeline"
        # ClientEventWithoutRoomID: the room is the key.
        for e in room["timeline"]["events"] + room[state_key]["events"]:
            assert "room_id" not in e, e
            assert "hashes" not in e and "signatures" not in e, e


def timeline(body, room_id, section="join"):
    return body["rooms"][section][room_id]["timeline"]["events"]


def state_of(body, room_id, section="join"):
    return body["rooms"][section][room_id]["state"]["events"]


def bodies(events):
    return [e["content"]["body"] for e in events if e["type"] == "m.room.message"]


def member_keys(events):
    return {e["state_key"] for e in events if e["type"] == "m.room.member"}


def in_thread(fn):
    """Runs fn() in a thread; returns a callable that joins and returns
    (result, seconds taken). Its `running()` says whether fn is still
    under way (a long poll still parked)."""
    box = {}

    def run():
        start = time.monotonic()
        try:
            box["result"] = fn()
        except Exception as exc:  # surfaced by the caller
            box["error"] = exc
        box["took"] = time.monotonic() - start

    t = threading.Thread(target=run, daemon=True)
    t.start()

    def join(timeout=60):
        t.join(timeout)
        assert not t.is_alive(), "the request did not return"
        if "error" in box:
            raise box["error"]
        return box["result"], box["took"]
    join.running = t.is_alive
    return join


# ---------------------------------------------------------------------------
# Initial and incremental syncs
# ---------------------------------------------------------------------------

def test_initial_sync_shows_joined_rooms(server):
    alice = User(server)
    rid = alice.create_room(name="Sync room", topic="about syncing")
    for i in range(3):
        alice.send(rid, f"m{i}")
    other = alice.create_room()
    # Unknown parameters are ignored; set_presence is accepted.
    body = alice.sync(set_presence="online", _cacheBuster="123",
                      **{"org.example.unknown_parameter": "true"})
    assert set(body["rooms"]["join"]) == {rid, other}
    assert body["rooms"]["invite"] == {} and body["rooms"]["leave"] == {}
    tl = timeline(body, rid)
    assert bodies(tl)[-3:] == ["m0", "m1", "m2"]
    # State and timeline together hold the whole current state.
    events = tl + state_of(body, rid)
    types = {(e["type"], e.get("state_key")) for e in events if "state_key" in e}
    for want in [("m.room.create", ""), ("m.room.power_levels", ""),
                 ("m.room.join_rules", ""), ("m.room.name", ""),
                 ("m.room.topic", ""), ("m.room.member", alice.user_id)]:
        assert want in types, (want, types)
    # createRoom makes more than 7 events: 10 newest in stream order.
    assert len(tl) == 10 and timeline(body, rid)[-1]["content"]["body"] == "m2"
    assert body["rooms"]["join"][rid]["timeline"]["limited"] is True
    summary = body["rooms"]["join"][rid]["summary"]
    assert summary["m.joined_member_count"] == 1
    assert summary["m.invited_member_count"] == 0
    assert summary["m.heroes"] == []
    assert body["next_batch"].startswith("s")
    # The same through the legacy r0 prefix.
    resp = alice.get("/_matrix/client/r0/sync")
    assert resp.status == 200 and rid in resp.json["rooms"]["join"], resp


def test_incremental_sync_after_messages(server):
    alice, bob = User(server), User(server)
    rid = alice.create_room(preset="public_chat")
    bob.join(rid)
    first = bob.sync()
    since = first["next_batch"]
    # Nothing new: no rooms, same position.
    again = bob.sync(since=since)
    assert again["rooms"]["join"] == {}
    # Same position, except perhaps the unread-count stream: on a loaded
    # machine the push thread may store the room's first push actions
    # after the 50 ms a sync waits for it.
    assert again["next_batch"].split("_")[:-1] == since.split("_")[:-1]
    e1 = alice.send(rid, "one")
    e2 = alice.send(rid, "two")
    body = bob.sync(since=since)
    tl = timeline(body, rid)
    assert [e["event_id"] for e in tl] == [e1, e2]
    assert body["rooms"]["join"][rid]["timeline"]["limited"] is False
    assert state_of(body, rid) == []
    assert tl[0]["sender"] == alice.user_id and "age" in tl[0]["unsigned"]
    # A room without news stays out; the next token moves on.
    quiet = alice.create_room()
    body2 = alice.sync(since=body["next_batch"])
    assert quiet in body2["rooms"]["join"] and rid not in body2["rooms"]["join"]
    assert bob.sync(since=body["next_batch"])["rooms"]["join"] == {}
    # The sending device sees its transaction ID; nobody else does.
    since = body["next_batch"]
    resp = alice.req("PUT", f"{V3}/rooms/{q(rid)}/send/m.room.message/my%2Ftxn",
                     json={"msgtype": "m.text", "body": "txn"})
    assert resp.status == 200, resp
    mine = timeline(alice.sync(since=since), rid)
    assert mine[-1]["unsigned"]["transaction_id"] == "my/txn", mine
    theirs = timeline(bob.sync(since=since), rid)
    assert "transaction_id" not in theirs[-1]["unsigned"], theirs
    # Bad tokens are refused; tokens with extra stream parts are accepted.
    resp = bob.sync_raw(since="nonsense")
    assert resp.status == 400 and resp.json["errcode"] == "M_INVALID_PARAM", resp
    assert bob.sync(since=since + "_0_0")["rooms"]["join"][rid]


def test_limited_timeline_and_prev_batch(server):
    alice, bob = User(server), User(server)
    rid = alice.create_room(preset="public_chat", name="before")
    bob.join(rid)
    since = bob.sync()["next_batch"]
    alice.put_state(rid, "m.room.name", {"name": "during the gap"})
    for i in range(15):
        alice.send(rid, f"n{i}")
    body = bob.sync(since=since, filter={"room": {"timeline": {"limit": 5}}})
    room = body["rooms"]["join"][rid]
    assert bodies(room["timeline"]["events"]) == [f"n{i}" for i in range(10, 15)]
    assert room["timeline"]["limited"] is True
    # The name change happened in the gap: it comes as state.
    names = [e for e in room["state"]["events"] if e["type"] == "m.room.name"]
    assert names and names[0]["content"]["name"] == "during the gap", room
    # prev_batch continues backwards in /messages without overlap.
    resp = bob.get(f"{V3}/rooms/{q(rid)}/messages?dir=b&limit=10&from="
                   f"{q(room['timeline']['prev_batch'])}")
    assert resp.status == 200, resp
    assert bodies(resp.json["chunk"]) == [f"n{i}" for i in range(9, -1, -1)]
    # next_batch is a valid /messages token too.
    resp = bob.get(f"{V3}/rooms/{q(rid)}/messages?dir=b&limit=1&from="
                   f"{q(body['next_batch'])}")
    assert resp.status == 200 and bodies(resp.json["chunk"]) == ["n14"], resp


def test_full_state(server):
    alice = User(server)
    rid = alice.create_room(name="full")
    since = alice.sync()["next_batch"]
    alice.send(rid, "x")
    body = alice.sync(since=since, full_state="true", timeout=5000)
    events = timeline(body, rid) + state_of(body, rid)
    assert ("m.room.name", "") in {(e["type"], e.get("state_key")) for e in events}
    # full_state never waits.
    start = time.monotonic()
    body = alice.sync(since=body["next_batch"], full_state="true", timeout=5000)
    assert time.monotonic() - start < 3
    assert rid in body["rooms"]["join"]


# ---------------------------------------------------------------------------
# Invites, joins, leaves
# ---------------------------------------------------------------------------

def test_invite_then_join(server):
    alice, bob = User(server), User(server)
    since = bob.sync()["next_batch"]
    rid = alice.create_room(name="Invited here", preset="private_chat")
    alice.put_state(rid, "m.room.canonical_alias", {})
    alice.invite(rid, bob)
    body = bob.sync(since=since)
    assert body["rooms"]["join"] == {}
    inv = body["rooms"]["invite"][rid]["invite_state"]["events"]
    by_type = {e["type"]: e for e in inv}
    assert by_type["m.room.name"]["content"]["name"] == "Invited here"
    assert by_type["m.room.create"]["sender"] == alice.user_id
    assert by_type["m.room.join_rules"]["content"]["join_rule"] == "invite"
    member = by_type["m.room.member"]
    assert member["state_key"] == bob.user_id
    assert member["content"]["membership"] == "invite"
    assert member["sender"] == alice.user_id
    for e in inv:
        assert set(e) >= {"type", "state_key", "content", "sender"}, e
    # Still invited on an initial sync; gone once handled.
    assert rid in bob.sync()["rooms"]["invite"]
    since = body["next_batch"]
    assert bob.sync(since=since)["rooms"]["invite"] == {}
    bob.join(rid)
    body = bob.sync(since=since)
    assert rid not in body["rooms"]["invite"]
    room = body["rooms"]["join"][rid]
    # A newly joined room comes with its full state.
    events = room["timeline"]["events"] + room["state"]["events"]
    keys = {(e["type"], e.get("state_key")) for e in events}
    assert ("m.room.name", "") in keys and ("m.room.create", "") in keys
    joins = [e for e in room["timeline"]["events"] if e["type"] == "m.room.member"
             and e["state_key"] == bob.user_id]
    assert joins and joins[-1]["content"]["membership"] == "join"
    assert room["summary"]["m.joined_member_count"] == 2
    assert room["summary"]["m.heroes"] == [alice.user_id]


def test_leave_kick_and_include_leave(server):
    alice, bob, carol = User(server), User(server), User(server)
    rid = alice.create_room(preset="public_chat")
    bob.join(rid)
    carol.join(rid)
    since_b = bob.sync()["next_batch"]
    since_c = carol.sync()["next_batch"]
    alice.send(rid, "before bob left")
    bob.leave(rid)
    alice.send(rid, "after bob left")
    body = bob.sync(since=since_b)
    assert rid not in body["rooms"]["join"]
    tl = timeline(body, rid, "leave")
    assert bodies(tl) == ["before bob left"]
    assert tl[-1]["type"] == "m.room.member" and tl[-1]["state_key"] == bob.user_id
    assert tl[-1]["content"]["membership"] == "leave"
    # Kicked.
    resp = alice.post(f"{V3}/rooms/{q(rid)}/kick", json={"user_id": carol.user_id,
                                                       "reason": "test"})
    assert resp.status == 200, resp
    body = carol.sync(since=since_c)
    tl = timeline(body, rid, "leave")
    assert tl[-1]["sender"] == alice.user_id
    assert tl[-1]["content"]["membership"] == "leave"
    assert "after bob left" in bodies(tl)
    # Left rooms appear on initial syncs only with include_leave.
    assert rid not in bob.sync()["rooms"]["leave"]
    body = bob.sync(filter={"room": {"include_leave": True}})
    assert rid in body["rooms"]["leave"]
    assert timeline(body, rid, "leave")[-1]["state_key"] == bob.user_id
    # Forgotten rooms never come back.
    resp = bob.post(f"{V3}/rooms/{q(rid)}/forget")
    assert resp.status == 200, resp
    body = bob.sync(filter={"room": {"include_leave": True}})
    assert rid not in body["rooms"]["leave"]


# ---------------------------------------------------------------------------
# Long polls
# ---------------------------------------------------------------------------

def test_parked_sync_wakes_on_relevant_events(server):
    alice, bob, carol = User(server), User(server), User(server)
    shared = alice.create_room(preset="public_chat")
    bob.join(shared)
    unrelated = carol.create_room()
    since = bob.sync()["next_batch"]

    # A message in a shared room wakes the parked sync at once.
    join = in_thread(lambda: bob.sync(since=since, timeout=20000))
    time.sleep(0.5)
    sent_at = time.monotonic()
    eid = alice.send(shared, "wake up")
    body, took = join()
    woke_after = time.monotonic() - sent_at
    assert [e["event_id"] for e in timeline(body, shared)] == [eid]
    assert took >= 0.4, "the sync did not wait"
    assert woke_after < 1.0, f"woken {woke_after:.3f}s after the send"

    # A message in a room bob is not in does not.
    since = body["next_batch"]
    join = in_thread(lambda: bob.sync(since=since, timeout=1500))
    time.sleep(0.3)
    carol.send(unrelated, "not for bob")
    body, took = join()
    assert took >= 1.3, f"returned after {took:.3f}s"
    assert body["rooms"]["join"] == {} and body["rooms"]["invite"] == {}

    # An invite to a new room wakes it (the user index, not a room).
    since = body["next_batch"]
    new_room = carol.create_room()
    since = bob.sync(since=since)["next_batch"]
    join = in_thread(lambda: bob.sync(since=since, timeout=20000))
    time.sleep(0.5)
    carol.invite(new_room, bob)
    body, took = join()
    assert new_room in body["rooms"]["invite"]
    assert took < 5


def test_sync_timeout_gives_empty_answer(server):
    alice = User(server)
    alice.create_room()
    since = alice.sync()["next_batch"]
    start = time.monotonic()
    body = alice.sync(since=since, timeout=700)
    took = time.monotonic() - start
    assert 0.6 <= took < 5, took
    assert body["rooms"] == {"join": {}, "invite": {}, "leave": {}, "knock": {}}
    assert body["next_batch"] == since
    # timeout=0 and initial syncs never wait.
    start = time.monotonic()
    alice.sync(since=since, timeout=0)
    alice.sync(timeout=10000)
    assert time.monotonic() - start < 3
    resp = alice.sync_raw(since=since, timeout="soon")
    assert resp.status == 400 and resp.json["errcode"] == "M_INVALID_PARAM", resp


def test_many_parked_syncs_each_woken_once(server):
    alice = User(server)
    users = [User(server) for _ in range(5)]
    rooms = []
    for u in users:
        rid = alice.create_room(preset="public_chat")
        u.join(rid)
        rooms.append(rid)
    tokens = [u.sync()["next_batch"] for u in users]
    # alice's first send makes her present; that is not what this test is about.
    no_presence = {"presence": {"not_types": ["*"]}}
    joins = [in_thread(lambda u=u, t=t: u.sync(since=t, timeout=20000, filter=no_presence))
             for u, t in zip(users, tokens)]
    time.sleep(0.5)
    # Only the third user's room gets a message.
    alice.send(rooms[2], "only you")
    body, took = joins[2]()
    assert bodies(timeline(body, rooms[2])) == ["only you"]
    assert took < 5
    # The others are still parked; answer them with messages one by one.
    for i in (0, 1, 3, 4):
        alice.send(rooms[i], f"for {i}")
        body, _ = joins[i]()
        assert list(body["rooms"]["join"]) == [rooms[i]]


# ---------------------------------------------------------------------------
# Filters
# ---------------------------------------------------------------------------

def test_filter_upload_and_get(server):
    alice, bob = User(server), User(server)
    definition = {"room": {"timeline": {"limit": 2, "types": ["m.room.message"]},
                           "state": {"lazy_load_members": True}},
                  "event_fields": ["type", "content.body", "event_id"],
                  "event_format": "client"}
    resp = alice.post(f"{V3}/user/{q(alice.user_id)}/filter", json=definition)
    assert resp.status == 200, resp
    fid = resp.json["filter_id"]
    assert isinstance(fid, str) and not fid.startswith("{")
    resp = alice.get(f"{V3}/user/{q(alice.user_id)}/filter/{q(fid)}")
    assert resp.status == 200 and resp.json == definition, resp
    # The same filter again gets the same ID; another one a new ID.
    resp = alice.post(f"{V3}/user/{q(alice.user_id)}/filter", json=definition)
    assert resp.json["filter_id"] == fid, resp
    resp = alice.post(f"{V3}/user/{q(alice.user_id)}/filter", json={})
    assert resp.status == 200 and resp.json["filter_id"] != fid, resp
    # Someone else's filters are out of reach.
    resp = bob.post(f"{V3}/user/{q(alice.user_id)}/filter", json={})
    assert resp.status == 403 and resp.json["errcode"] == "M_FORBIDDEN", resp
    resp = bob.get(f"{V3}/user/{q(alice.user_id)}/filter/{q(fid)}")
    assert resp.status == 403 and resp.json["errcode"] == "M_FORBIDDEN", resp
    resp = bob.get(f"{V3}/user/{q(bob.user_id)}/filter/{q(fid)}")
    assert resp.status == 404 and resp.json["errcode"] == "M_NOT_FOUND", resp
    resp = alice.get(f"{V3}/user/{q(alice.user_id)}/filter/nope")
    assert resp.status == 404, resp
    # Malformed filters are refused.
    for bad in ({"room": {"timeline": {"limit": "ten"}}},
                {"room": {"rooms": "!a:b"}},
                {"event_format": "xml"},
                {"room": {"timeline": {"types": [1]}}}):
        resp = alice.post(f"{V3}/user/{q(alice.user_id)}/filter", json=bad)
        assert resp.status == 400 and resp.json["errcode"] == "M_BAD_JSON", (bad, resp)

    # /sync with the stored filter: two messages, only the listed fields.
    rid = alice.create_room(name="filtered")
    for i in range(4):
        alice.send(rid, f"f{i}")
    body = alice.sync(filter=fid)
    tl = timeline(body, rid)
    assert [e["content"] for e in tl] == [{"body": "f2"}, {"body": "f3"}]
    assert all(set(e) == {"type", "content", "event_id"} for e in tl), tl
    resp = alice.sync_raw(filter="999999")
    assert resp.status == 404, resp
    resp = alice.sync_raw(filter="{not json")
    assert resp.status == 400, resp


def test_inline_filters(server):
    alice, bob = User(server), User(server)
    r1 = alice.create_room(preset="public_chat")
    r2 = alice.create_room(preset="public_chat")
    bob.join(r1)
    since = alice.sync()["next_batch"]
    alice.send(r1, "from alice")
    bob_msg = bob.send(r1, "from bob")
    alice.send(r1, "custom", etype="org.example.custom", content={"a": 1})
    alice.send(r1, "with url", content={"msgtype": "m.image", "body": "pic",
                                        "url": "mxc://x/y"})
    alice.send(r2, "other room")

    def tl(flt, room=r1):
        body = alice.sync(since=since, filter=flt)
        room_body = body["rooms"]["join"].get(room)
        return room_body["timeline"]["events"] if room_body else None

    assert [e["type"] for e in tl({"room": {"timeline": {"types": ["m.room.*"]}}})] \
        == ["m.room.message"] * 3
    assert [e["type"] for e in tl({"room": {"timeline": {
        "not_types": ["m.room.message"]}}})] == ["org.example.custom"]
    assert [e["event_id"] for e in tl({"room": {"timeline": {
        "senders": [bob.user_id]}}})] == [bob_msg]
    assert bob.user_id not in {e["sender"] for e in tl({"room": {"timeline": {
        "not_senders": [bob.user_id]}}})}
    assert bodies(tl({"room": {"timeline": {"contains_url": True}}})) == ["pic"]
    # rooms / not_rooms.
    body = alice.sync(since=since, filter={"room": {"rooms": [r2]}})
    assert list(body["rooms"]["join"]) == [r2]
    body = alice.sync(since=since, filter={"room": {"not_rooms": [r2]}})
    assert list(body["rooms"]["join"]) == [r1]
    # event_format=federation is accepted.
    body = alice.sync(since=since, filter={"event_format": "federation"})
    assert r1 in body["rooms"]["join"]
    # A type filter hides state events from the timeline, so a state change
    # comes as state instead of getting lost.
    since = body["next_batch"]
    alice.put_state(r1, "m.room.topic", {"topic": "new topic"})
    alice.send(r1, "after topic")
    alice.put_state(r1, "m.room.name", {"name": "named between messages"})
    alice.send(r1, "after name")
    body = alice.sync(since=since, filter={"room": {"timeline": {
        "types": ["m.room.message"]}}})
    room = body["rooms"]["join"][r1]
    assert bodies(room["timeline"]["events"]) == ["after topic", "after name"]
    assert room["timeline"]["limited"] is False
    state = {e["type"]: e["content"] for e in room["state"]["events"]}
    assert state == {"m.room.topic": {"topic": "new topic"},
                     "m.room.name": {"name": "named between messages"}}, state


def test_lazy_loading_members(server):
    owner = User(server)
    members = [User(server) for _ in range(8)]
    rid = owner.create_room(preset="public_chat")
    for m in members:
        m.join(rid)
    talker, reader = members[0], members[-1]
    talker.send(rid, "last words")
    lazy = {"room": {"timeline": {"limit": 1}, "state": {"lazy_load_members": True}}}
    body = reader.sync(filter=lazy)
    room = body["rooms"]["join"][rid]
    assert bodies(room["timeline"]["events"]) == ["last words"]
    heroes = set(room["summary"]["m.heroes"])
    assert len(heroes) == 5 and reader.user_id not in heroes
    assert room["summary"]["m.joined_member_count"] == 9
    # Only the timeline's sender, the reader and the heroes (whose member
    # events must come along); 9 members, so some are always left out.
    keys = member_keys(room["state"]["events"])
    assert keys == heroes | {talker.user_id, reader.user_id}, keys
    assert len(keys) <= 7
    # Without lazy loading every member is there.
    body = reader.sync(filter={"room": {"timeline": {"limit": 1}}})
    assert len(member_keys(state_of(body, rid))) == 9
    # Incremental: a new sender's member event comes along (one the
    # device was not sent yet: neither a hero nor the first talker).
    newcomer = members[6]
    assert newcomer.user_id not in keys
    since = body["next_batch"]
    newcomer.send(rid, "hi from 6")
    body = reader.sync(since=since, filter=lazy)
    assert newcomer.user_id in member_keys(state_of(body, rid))


# ---------------------------------------------------------------------------
# Restarts and shutdown
# ---------------------------------------------------------------------------

def test_tokens_survive_restart(server):
    alice, bob = User(server), User(server)
    rid = alice.create_room(preset="public_chat")
    bob.join(rid)
    alice.send(rid, "before restart")
    since = bob.sync()["next_batch"]
    restart(server)
    assert bob.sync(since=since)["rooms"]["join"] == {}
    alice.send(rid, "after restart")
    body = bob.sync(since=since, timeout=5000)
    assert bodies(timeline(body, rid)) == ["after restart"]


def test_sigterm_answers_parked_syncs(server):
    alice = User(server)
    alice.create_room()
    since = alice.sync()["next_batch"]
    joins = [in_thread(lambda: alice.sync_raw(since=since, timeout=60000))
             for _ in range(3)]
    time.sleep(0.7)
    start = time.monotonic()
    assert server.stop() == 0
    assert time.monotonic() - start < 8
    for join in joins:
        resp, took = join()
        assert resp.status == 200, resp
        assert resp.json["rooms"]["join"] == {}
        assert resp.json["next_batch"] == since


# ---------------------------------------------------------------------------
# matrix-nio
# ---------------------------------------------------------------------------

def test_nio_sync_and_callbacks(server):
    import nio
    alice, bob = User(server), User(server)
    rid = alice.create_room(name="nio room", preset="public_chat")
    bob.join(rid)
    alice.send(rid, "hello nio")

    async def scenario():
        client = nio_client(server, bob)
        try:
            resp = await client.sync(timeout=0, full_state=True,
                                     sync_filter={"room": {"timeline": {"limit": 5}}})
            assert isinstance(resp, nio.SyncResponse), resp
            assert rid in resp.rooms.join
            assert rid in client.rooms
            assert client.rooms[rid].display_name == "nio room"
            assert client.rooms[rid].member_count == 2
            texts = [e.body for e in resp.rooms.join[rid].timeline.events
                     if isinstance(e, nio.RoomMessageText)]
            assert texts == ["hello nio"]

            # sync_forever with an event callback sees a live message.
            got = asyncio.get_running_loop().create_future()

            async def on_message(room, event):
                if event.body == "live" and not got.done():
                    got.set_result((room.room_id, event.sender))
            client.add_event_callback(on_message, nio.RoomMessageText)
            task = asyncio.create_task(client.sync_forever(timeout=10000))
            await asyncio.sleep(0.5)
            await asyncio.get_running_loop().run_in_executor(
                None, alice.send, rid, "live")
            room_id, sender = await asyncio.wait_for(got, 10)
            assert (room_id, sender) == (rid, alice.user_id)

            # An invite reaches nio's invite callback.
            invited = asyncio.get_running_loop().create_future()

            async def on_invite(room, event):
                if not invited.done():
                    invited.set_result(room.room_id)
            client.add_event_callback(on_invite, nio.InviteMemberEvent)
            other = await asyncio.get_running_loop().run_in_executor(
                None, lambda: alice.create_room(name="come in"))
            await asyncio.get_running_loop().run_in_executor(
                None, alice.invite, other, bob)
            assert await asyncio.wait_for(invited, 10) == other
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        finally:
            await client.close()

    asyncio.run(scenario())
