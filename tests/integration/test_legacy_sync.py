"""The syncing endpoints from before /sync (spec old_sync.yaml,
room_initial_sync.yaml, peeking_events.yaml): GET /events with its tokens,
long poll, typing and receipts; the peeking form /events?room_id= for
world_readable rooms (guests included); GET /initialSync with joined,
invited and (archived) left rooms; GET /rooms/{roomId}/initialSync for
members, strangers and room previews; GET /events/{eventId}; the same
under the r0 prefix. Raw HTTP; every test runs on SQLite and on
PostgreSQL.

Timing checks are generous bounds, never benchmarks."""

import time
import urllib.parse

import test_sync
from test_rooms import V3, q
from test_sync import in_thread

R0 = "/_matrix/client/r0"


class User(test_sync.User):
    """test_sync.User (a registered user, or a guest with guest=True) whose
    GET takes query parameters, with GET /events."""

    def get(self, path, http_timeout=30, **params):
        """GET with query parameters (`timeout` is the endpoint's)."""
        if params:
            path += "?" + urllib.parse.urlencode(params)
        return self.req("GET", path, timeout=http_timeout)

    def events(self, prefix=V3, http_timeout=30, **params):
        resp = self.get(f"{prefix}/events", http_timeout=http_timeout, **params)
        assert resp.status == 200, resp
        body = resp.json
        assert isinstance(body["chunk"], list), body
        assert body["start"].startswith("s") and body["end"].startswith("s"), body
        return body


def now_token(user):
    """A token for "now": /events without `from` and no wait."""
    return user.events(timeout=0)["end"]


def pair_in_room(server):
    """alice and bob, both in a public room of alice's."""
    alice = User(server)
    bob = User(server)
    room = alice.create_room(preset="public_chat")
    bob.join(room)
    return alice, bob, room


def world_readable_room(alice):
    room = alice.create_room(preset="public_chat")
    alice.put_state(room, "m.room.history_visibility",
                    {"history_visibility": "world_readable"})
    return room


def not_presence(chunk):
    """The chunk without m.presence: with presence enabled a user's own
    /events makes them online, which may arrive at any moment."""
    return [e for e in chunk if e.get("type") != "m.presence"]


def bodies(chunk):
    return [e["content"].get("body") for e in chunk
            if e.get("type") == "m.room.message"]


# ---------------------------------------------------------------------------
# GET /events
# ---------------------------------------------------------------------------

def test_events_after_from_and_end_continues(server):
    alice = User(server)
    room = alice.create_room()
    start = now_token(alice)
    eid = alice.send(room, "first")

    body = alice.events(**{"from": start, "timeout": "0"})
    assert body["start"] == start
    msgs = [e for e in body["chunk"] if e.get("type") == "m.room.message"]
    assert [m["event_id"] for m in msgs] == [eid], body
    assert msgs[0]["room_id"] == room
    assert msgs[0]["sender"] == alice.user_id
    assert "origin_server_ts" in msgs[0] and "unsigned" in msgs[0]

    # `end` continues: nothing new yet, then only what came after it.
    end = body["end"]
    again = alice.events(**{"from": end, "timeout": "0"})
    assert bodies(again["chunk"]) == [], again
    alice.send(room, "second")
    later = alice.events(**{"from": end, "timeout": "0"})
    assert bodies(later["chunk"]) == ["second"], later


def test_events_timeout_zero_is_empty(server):
    alice = User(server)
    room = alice.create_room()
    alice.send(room, "before")
    t0 = time.monotonic()
    body = alice.events(timeout="0")
    # Without `from`: starts from now, so earlier messages are not in it.
    assert not_presence(body["chunk"]) == [], body
    assert time.monotonic() - t0 < 5
    body2 = alice.events(**{"from": body["end"], "timeout": "0"})
    assert not_presence(body2["chunk"]) == [], body2


def test_events_long_poll_wakes_on_message(server):
    alice, bob, room = pair_in_room(server)
    start = now_token(alice)

    def poll():
        # Presence changes may answer a poll first; follow `end` until the
        # message comes. Returns (the answer with it, those before, when).
        token, early = start, []
        for _ in range(10):
            body = alice.events(http_timeout=40, **{"from": token, "timeout": "20000"})
            if bodies(body["chunk"]):
                return body, early, time.monotonic()
            early.append(body)
            token = body["end"]
        raise AssertionError(f"no message in ten answers: {early!r}")

    join = in_thread(poll)
    time.sleep(0.5)
    assert join.running(), "the poll gave up before anything happened"
    sent_at = time.monotonic()
    bob.send(room, "wake up")
    (body, early, at), _ = join(30)
    assert bodies(body["chunk"]) == ["wake up"], body
    assert at - sent_at < 1.0, (at - sent_at, body)
    for body in early:
        assert not_presence(body["chunk"]) == [], early


def test_events_long_poll_times_out_empty(server):
    alice = User(server)
    alice.create_room()
    start = now_token(alice)
    t0 = time.monotonic()
    body = alice.events(**{"from": start, "timeout": "600"})
    assert not_presence(body["chunk"]) == [], body
    assert time.monotonic() - t0 < 5
    # A guest peeking has no presence: the poll runs to its timeout.
    room = world_readable_room(alice)
    guest = User(server, guest=True)
    start = guest.events(room_id=room, timeout="0")["end"]
    t0 = time.monotonic()
    body = guest.events(room_id=room, **{"from": start, "timeout": "600"})
    elapsed = time.monotonic() - t0
    assert body["chunk"] == [], body
    assert body["start"] == start
    assert 0.5 <= elapsed < 5, elapsed


def test_events_without_from_waits_from_arrival(server):
    """A long poll without `from` still returns what happened after it
    arrived (the start position survives the wake-up). A guest peeking, so
    that no presence change answers first."""
    alice = User(server)
    room = world_readable_room(alice)
    guest = User(server, guest=True)
    join = in_thread(lambda: guest.events(http_timeout=40, room_id=room,
                                          timeout="20000"))
    time.sleep(0.5)
    assert join.running()
    alice.send(room, "after arrival")
    body, _ = join(30)
    assert bodies(body["chunk"]) == ["after arrival"], body


def test_events_only_own_rooms_and_ephemeral(server):
    alice = User(server)
    stranger = User(server)
    room = alice.create_room()
    other = stranger.create_room()
    start = now_token(alice)
    eid = alice.send(room, "mine")
    stranger.send(other, "not yours")
    resp = alice.req("PUT", f"{V3}/rooms/{q(room)}/typing/{q(alice.user_id)}",
                     json={"typing": True, "timeout": 30000})
    assert resp.status == 200, resp
    resp = alice.post(f"{V3}/rooms/{q(room)}/receipt/m.read/{q(eid)}")
    assert resp.status == 200, resp

    body = alice.events(**{"from": start, "timeout": "0"})
    assert bodies(body["chunk"]) == ["mine"], body
    typing = [e for e in body["chunk"] if e["type"] == "m.typing"]
    assert typing and typing[0]["room_id"] == room, body
    assert typing[0]["content"]["user_ids"] == [alice.user_id]
    receipts = [e for e in body["chunk"] if e["type"] == "m.receipt"]
    assert receipts and receipts[0]["room_id"] == room, body
    assert alice.user_id in receipts[0]["content"][eid]["m.read"]
    assert all(e.get("room_id") != other for e in body["chunk"])


def test_events_presence(server):
    alice, bob, room = pair_in_room(server)
    start = now_token(bob)
    resp = alice.req("PUT", f"{V3}/presence/{q(alice.user_id)}/status",
                     json={"presence": "online", "status_msg": "legacy"})
    assert resp.status == 200, resp
    body = bob.events(**{"from": start, "timeout": "0"})
    mine = [e for e in body["chunk"] if e["type"] == "m.presence"
            and e["sender"] == alice.user_id]
    assert mine and mine[-1]["content"]["status_msg"] == "legacy", body
    init = bob.get(f"{V3}/initialSync").json
    assert any(e["sender"] == alice.user_id for e in init["presence"]), init
    rinit = bob.get(f"{V3}/rooms/{q(room)}/initialSync").json
    got = {e["content"]["user_id"]: e["content"] for e in rinit["presence"]}
    assert got[alice.user_id]["presence"] == "online", rinit


def test_events_invite_arrives(server):
    alice = User(server)
    bob = User(server)
    room = alice.create_room()
    start = now_token(bob)
    resp = alice.post(f"{V3}/rooms/{q(room)}/invite", json={"user_id": bob.user_id})
    assert resp.status == 200, resp
    body = bob.events(**{"from": start, "timeout": "0"})
    invites = [e for e in body["chunk"] if e["type"] == "m.room.member"]
    assert len(invites) == 1, body
    assert invites[0]["state_key"] == bob.user_id
    assert invites[0]["content"]["membership"] == "invite"
    assert invites[0]["room_id"] == room


def test_events_limit_pages_without_loss(server):
    alice = User(server)
    room = alice.create_room()
    start = now_token(alice)
    for i in range(5):
        alice.send(room, f"m{i}")
    seen = []
    token = start
    for _ in range(10):
        body = alice.events(**{"from": token, "timeout": "0", "limit": "2"})
        got = bodies(body["chunk"])
        assert len(got) <= 2, body
        if not got:
            break
        seen += got
        token = body["end"]
    assert seen == [f"m{i}" for i in range(5)], seen


def test_events_bad_parameters(server):
    alice = User(server)
    for params in ({"from": "nonsense"}, {"timeout": "-1"}, {"timeout": "x"}):
        resp = alice.get(f"{V3}/events", **params)
        assert resp.status == 400, (params, resp)
        assert resp.errcode == "M_INVALID_PARAM", resp
    assert server.get(f"{V3}/events").status == 401


# ---------------------------------------------------------------------------
# Peeking: GET /events?room_id=
# ---------------------------------------------------------------------------

def test_events_peek_world_readable(server):
    alice = User(server)
    peeker = User(server)
    guest = User(server, guest=True)
    room = world_readable_room(alice)
    private = alice.create_room()

    start = now_token(peeker)
    alice.send(room, "look")
    for who in (peeker, guest):
        body = who.events(**{"from": start, "timeout": "0", "room_id": room})
        assert bodies(body["chunk"]) == ["look"], body
        assert all(e["room_id"] == room for e in body["chunk"])

    # A parked peek wakes on the room's next message.
    token = body["end"]
    join = in_thread(lambda: guest.events(http_timeout=40, room_id=room,
                                          **{"from": token, "timeout": "20000"}))
    time.sleep(0.5)
    sent_at = time.monotonic()
    alice.send(room, "still looking")
    body, _ = join(30)
    assert bodies(body["chunk"]) == ["still looking"], body
    assert time.monotonic() - sent_at < 1.5

    # Not world_readable: forbidden; guests must name a room.
    resp = peeker.get(f"{V3}/events", room_id=private, timeout="0")
    assert resp.status == 403 and resp.errcode == "M_FORBIDDEN", resp
    resp = guest.get(f"{V3}/events", timeout="0")
    assert resp.status == 400, resp


# ---------------------------------------------------------------------------
# GET /initialSync
# ---------------------------------------------------------------------------

def test_initial_sync(server):
    alice = User(server)
    bob = User(server)
    room = alice.create_room(name="Lobby")
    for i in range(3):
        alice.send(room, f"msg{i}")
    invited = bob.create_room()
    resp = bob.post(f"{V3}/rooms/{q(invited)}/invite", json={"user_id": alice.user_id})
    assert resp.status == 200, resp
    resp = alice.req("PUT", f"{V3}/user/{q(alice.user_id)}/account_data/org.example.cfg",
                     json={"k": "v"})
    assert resp.status == 200, resp
    resp = alice.req("PUT", f"{V3}/user/{q(alice.user_id)}/rooms/{q(room)}/tags/work",
                     json={"order": 0.5})
    assert resp.status == 200, resp

    resp = alice.get(f"{V3}/initialSync", limit="2")
    assert resp.status == 200, resp
    body = resp.json
    assert body["end"].startswith("s")
    assert isinstance(body["presence"], list)
    assert {"type": "org.example.cfg", "content": {"k": "v"}} in body["account_data"]
    rooms = {r["room_id"]: r for r in body["rooms"]}
    assert set(rooms) == {room, invited}, rooms

    joined = rooms[room]
    assert joined["membership"] == "join"
    assert joined["visibility"] == "private"
    chunk = joined["messages"]["chunk"]
    assert bodies(chunk) == ["msg1", "msg2"], chunk
    assert all(e["room_id"] == room for e in chunk)
    state_types = {(e["type"], e["state_key"]) for e in joined["state"]}
    assert ("m.room.create", "") in state_types
    assert ("m.room.name", "") in state_types
    assert ("m.room.member", alice.user_id) in state_types
    assert any(e["type"] == "m.tag" and "work" in e["content"]["tags"]
               for e in joined["account_data"]), joined

    # messages.start pages on backwards in /messages.
    resp = alice.get(f"{V3}/rooms/{q(room)}/messages", dir="b", limit="1",
                     **{"from": joined["messages"]["start"]})
    assert resp.status == 200, resp
    assert bodies(resp.json["chunk"]) == ["msg0"], resp.json

    inv = rooms[invited]
    assert inv["membership"] == "invite"
    assert inv["invite"]["content"]["membership"] == "invite"
    assert inv["invite"]["state_key"] == alice.user_id

    # `end` feeds /events.
    alice.send(room, "after")
    ev = alice.events(**{"from": body["end"], "timeout": "0"})
    assert bodies(ev["chunk"]) == ["after"], ev


def test_initial_sync_archived(server):
    alice, bob, room = pair_in_room(server)
    bob.send(room, "before leaving")
    bob.leave(room)
    alice.send(room, "after bob left")

    plain = bob.get(f"{V3}/initialSync").json
    assert room not in {r["room_id"] for r in plain["rooms"]}, plain
    arch = bob.get(f"{V3}/initialSync", archived="true").json
    rooms = {r["room_id"]: r for r in arch["rooms"]}
    assert rooms[room]["membership"] == "leave"
    got = bodies(rooms[room]["messages"]["chunk"])
    assert "before leaving" in got and "after bob left" not in got, got
    members = {e["state_key"]: e["content"]["membership"]
               for e in rooms[room]["state"] if e["type"] == "m.room.member"}
    assert members[bob.user_id] == "leave"


# ---------------------------------------------------------------------------
# GET /rooms/{roomId}/initialSync
# ---------------------------------------------------------------------------

def test_room_initial_sync_member_and_stranger(server):
    alice = User(server)
    stranger = User(server)
    room = alice.create_room()
    alice.send(room, "hi")
    resp = alice.get(f"{V3}/rooms/{q(room)}/initialSync")
    assert resp.status == 200, resp
    body = resp.json
    assert body["room_id"] == room
    assert body["membership"] == "join"
    assert bodies(body["messages"]["chunk"])[-1:] == ["hi"]
    assert body["messages"]["end"].startswith("s")
    assert any(e["type"] == "m.room.create" for e in body["state"])
    assert body["visibility"] == "private"
    assert isinstance(body["account_data"], list)
    assert isinstance(body["presence"], list)

    resp = stranger.get(f"{V3}/rooms/{q(room)}/initialSync")
    assert resp.status == 403 and resp.errcode == "M_FORBIDDEN", resp
    resp = stranger.get(f"{V3}/rooms/{q('!nope:localhost')}/initialSync")
    assert resp.status == 403, resp
    resp = stranger.get(f"{V3}/rooms/not-a-room/initialSync")
    assert resp.status == 400, resp


def test_room_initial_sync_world_readable_preview(server):
    alice = User(server)
    stranger = User(server)
    guest = User(server, guest=True)
    room = alice.create_room(preset="public_chat")
    alice.send(room, "hidden: before world_readable")
    alice.put_state(room, "m.room.history_visibility",
                    {"history_visibility": "world_readable"})
    alice.send(room, "public words")
    for who in (stranger, guest):
        resp = who.get(f"{V3}/rooms/{q(room)}/initialSync")
        assert resp.status == 200, resp
        body = resp.json
        got = bodies(body["messages"]["chunk"])
        assert "public words" in got, got
        assert "hidden: before world_readable" not in got, got
        assert "membership" not in body, body
        assert any(e["type"] == "m.room.history_visibility" for e in body["state"])


# ---------------------------------------------------------------------------
# GET /events/{eventId}
# ---------------------------------------------------------------------------

def test_event_by_id(server):
    alice = User(server)
    stranger = User(server)
    room = alice.create_room()
    eid = alice.send(room, "find me")
    resp = alice.get(f"{V3}/events/{q(eid)}")
    assert resp.status == 200, resp
    assert resp.json["event_id"] == eid
    assert resp.json["room_id"] == room
    assert resp.json["content"]["body"] == "find me"
    resp = stranger.get(f"{V3}/events/{q(eid)}")
    assert resp.status == 404 and resp.errcode == "M_NOT_FOUND", resp
    resp = alice.get(f"{V3}/events/{q('$doesnotexist')}")
    assert resp.status == 404 and resp.errcode == "M_NOT_FOUND", resp


# ---------------------------------------------------------------------------
# r0
# ---------------------------------------------------------------------------

def test_r0_prefix(server):
    alice = User(server)
    room = alice.create_room()
    start = alice.events(prefix=R0, timeout="0")["end"]
    eid = alice.send(room, "old api")
    body = alice.events(prefix=R0, **{"from": start, "timeout": "0"})
    assert bodies(body["chunk"]) == ["old api"]
    assert alice.get(f"{R0}/initialSync").status == 200
    assert alice.get(f"{R0}/rooms/{q(room)}/initialSync").status == 200
    assert alice.get(f"{R0}/events/{q(eid)}").status == 200
