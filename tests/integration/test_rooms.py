"""Rooms, seen from outside: createRoom (presets, name, topic, alias,
initial_state, invites, power level overrides, creation content, every
room version), sending with transaction IDs, state (including the empty
state key with and without a trailing slash), single events, /messages
pagination, members and joined members, and the membership actions
(join by ID or alias, leave, invite, kick, ban, unban) with the power
checks of the authorization rules. Driven with raw HTTP and with
matrix-nio; every test runs on SQLite and on PostgreSQL. The last test
restarts the server on the same database to check that rooms reload.

Users register without a password (the dummy flow), which skips the
deliberately slow password hashing. The helpers at the top (User, q,
unique, assert_error, nio_client, restart, ...) are shared: the other test
files import them rather than keep copies."""

import asyncio
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

V3 = "/_matrix/client/v3"
ALL_VERSIONS = [str(v) for v in range(1, 13)]


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def q(s):
    return urllib.parse.quote(s, safe="")


def unique(prefix="u"):
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def assert_error(resp, status, errcode):
    assert resp.status == status, f"expected {status} {errcode}, got {resp!r}"
    assert isinstance(resp.json, dict), resp
    assert resp.json.get("errcode") == errcode, \
        f"expected {errcode}, got {resp!r}"
    assert isinstance(resp.json.get("error"), str) and resp.json["error"], resp


class User:
    """A registered user (or a guest) and the raw HTTP calls the tests make
    as them. The one implementation for every file: test_sync.User extends
    it with /sync, and files with calls of their own subclass either."""

    def __init__(self, server, name=None, password=None, guest=False):
        self.server = server
        if guest:
            resp = server.post(f"{V3}/register?kind=guest", json={})
        else:
            body = {"auth": {"type": "m.login.dummy"},
                    "username": name or unique()}
            if password:
                body["password"] = password
            resp = server.post(f"{V3}/register", json=body)
        assert resp.status == 200, resp
        self.user_id = resp.json["user_id"]
        self.token = resp.json["access_token"]
        self.device_id = resp.json["device_id"]

    @property
    def auth(self):
        return {"Authorization": f"Bearer {self.token}"}

    def req(self, method, path, json=None, body=None, timeout=30):
        return self.server.request(method, path, json=json, body=body,
                                   headers=self.auth, timeout=timeout)

    def get(self, path, timeout=30):
        return self.req("GET", path, timeout=timeout)

    def post(self, path, json=None):
        return self.req("POST", path, json=json if json is not None else {})

    def put(self, path, json=None, body=None):
        return self.req("PUT", path, json=json, body=body)

    # -- rooms --

    def create_room(self, **body):
        resp = self.post(f"{V3}/createRoom", json=body)
        assert resp.status == 200, resp
        assert resp.json["room_id"].startswith("!"), resp
        return resp.json["room_id"]

    def send(self, room_id, body="hello", txn=None, etype="m.room.message",
             content=None):
        txn = txn or unique("txn")
        if content is None:
            content = {"msgtype": "m.text", "body": body}
        return self.put(f"{V3}/rooms/{q(room_id)}/send/{q(etype)}/{q(txn)}",
                        json=content)

    def send_ok(self, room_id, body="hello", **kw):
        # User.send, not self.send: test_sync.User's send is this method.
        resp = User.send(self, room_id, body, **kw)
        assert resp.status == 200, resp
        assert resp.json["event_id"].startswith("$"), resp
        return resp.json["event_id"]

    def put_state(self, room_id, etype, content, state_key=""):
        return self.put(f"{V3}/rooms/{q(room_id)}/state/{q(etype)}/"
                        f"{q(state_key)}", json=content)

    def state(self, room_id, etype, state_key="", fmt=None):
        path = f"{V3}/rooms/{q(room_id)}/state/{q(etype)}/{q(state_key)}"
        if fmt:
            path += f"?format={fmt}"
        return self.get(path)

    def state_content(self, room_id, etype, state_key=""):
        resp = self.state(room_id, etype, state_key)
        assert resp.status == 200, resp
        return resp.json

    def state_event(self, room_id, etype, state_key=""):
        resp = self.state(room_id, etype, state_key, fmt="event")
        assert resp.status == 200, resp
        return resp.json

    def join(self, room_or_alias):
        return self.post(f"{V3}/join/{q(room_or_alias)}")

    def leave(self, room_id):
        return self.post(f"{V3}/rooms/{q(room_id)}/leave")

    def action(self, room_id, action, target, reason=None):
        body = {"user_id": target.user_id if isinstance(target, User)
                else target}
        if reason:
            body["reason"] = reason
        return self.post(f"{V3}/rooms/{q(room_id)}/{action}", json=body)

    def messages(self, room_id, **params):
        query = urllib.parse.urlencode(params)
        return self.get(f"{V3}/rooms/{q(room_id)}/messages" +
                        (f"?{query}" if query else ""))

    def members(self, room_id, **params):
        query = urllib.parse.urlencode(params)
        resp = self.get(f"{V3}/rooms/{q(room_id)}/members" +
                        (f"?{query}" if query else ""))
        assert resp.status == 200, resp
        return {ev["state_key"]: ev["content"]["membership"]
                for ev in resp.json["chunk"]}

    def joined_rooms(self):
        resp = self.get(f"{V3}/joined_rooms")
        assert resp.status == 200, resp
        return resp.json["joined_rooms"]

    def membership(self, room_id, user):
        """The target's membership as `self` sees it in the current state."""
        return self.members(room_id).get(
            user.user_id if isinstance(user, User) else user)


def nio_client(server, user):
    import nio
    client = nio.AsyncClient(server.base_url, user.user_id)
    client.user_id = user.user_id
    client.device_id = user.device_id
    client.access_token = user.token
    return client


def run(coro):
    return asyncio.run(coro)


def all_messages(user, room_id, direction="b", limit=10, start=None):
    """Pages /messages until no `end`; returns (events, pages)."""
    events, pages = [], 0
    token = start
    while True:
        params = {"dir": direction, "limit": limit}
        if token is not None:
            params["from"] = token
        resp = user.messages(room_id, **params)
        assert resp.status == 200, resp
        pages += 1
        assert pages < 100, "pagination does not terminate"
        if token is not None:
            assert resp.json["start"] == token, resp
        chunk = resp.json["chunk"]
        assert len(chunk) <= limit, resp
        events.extend(chunk)
        if "end" not in resp.json:
            return events, pages
        assert chunk, f"an empty chunk must not carry an end token: {resp!r}"
        token = resp.json["end"]


def bodies(events):
    return [e["content"]["body"] for e in events
            if e["type"] == "m.room.message"]


# ---------------------------------------------------------------------------
# Every room version: createRoom, send, state, join by alias (raw and nio)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_room_version_basics(server, version):
    import nio

    alice, bob, carol = User(server), User(server), User(server)
    alias_name = unique("raw")

    # Raw HTTP: create with alias, name, topic.
    room_id = alice.create_room(room_version=version, preset="public_chat",
                                room_alias_name=alias_name, name="Raw room",
                                topic="About raw things")
    if version == "12":
        assert ":" not in room_id, room_id
    else:
        assert room_id.endswith(":" + server.server_name), room_id

    create = alice.state_event(room_id, "m.room.create")
    assert create["sender"] == alice.user_id
    assert create["state_key"] == ""
    assert create["content"]["room_version"] == version
    if int(version) <= 10:
        assert create["content"]["creator"] == alice.user_id, create
    else:
        assert "creator" not in create["content"], create
    assert create["event_id"].startswith("$")
    assert create["room_id"] == room_id

    pl = alice.state_content(room_id, "m.room.power_levels")
    if version == "12":
        assert alice.user_id not in pl.get("users", {}), pl
        assert pl["events"]["m.room.tombstone"] > pl["state_default"], pl
    else:
        assert pl["users"][alice.user_id] == 100, pl

    assert alice.state_content(room_id, "m.room.name") == {"name": "Raw room"}
    assert alice.state_content(room_id, "m.room.topic")["topic"] == \
        "About raw things"
    alias = f"#{alias_name}:{server.server_name}"
    assert alice.state_content(room_id, "m.room.canonical_alias") == \
        {"alias": alias}
    assert alice.state_content(room_id, "m.room.join_rules") == \
        {"join_rule": "public"}

    event_id = alice.send_ok(room_id, "first")
    resp = alice.get(f"{V3}/rooms/{q(room_id)}/event/{q(event_id)}")
    assert resp.status == 200, resp
    assert resp.json["event_id"] == event_id
    assert resp.json["content"]["body"] == "first"
    assert resp.json["room_id"] == room_id
    for hidden in ("hashes", "signatures", "auth_events", "prev_events",
                   "depth"):
        assert hidden not in resp.json, resp.json

    resp = alice.put_state(room_id, "org.example.custom", {"k": version},
                           state_key="some key")
    assert resp.status == 200, resp
    assert alice.state_content(room_id, "org.example.custom", "some key") == \
        {"k": version}

    resp = bob.join(alias)
    assert resp.status == 200, resp
    assert resp.json["room_id"] == room_id
    bob.send_ok(room_id, "from bob")
    assert set(bob.members(room_id, membership="join")) == \
        {alice.user_id, bob.user_id}

    # matrix-nio: create, send, state, join by alias, read back.
    nio_alias = unique("nio")

    async def with_nio():
        a = nio_client(server, alice)
        c = nio_client(server, carol)
        try:
            resp = await a.room_create(
                visibility=nio.RoomVisibility.public, alias=nio_alias,
                name="Nio room", room_version=version,
                preset=nio.RoomPreset.public_chat)
            assert isinstance(resp, nio.RoomCreateResponse), resp
            rid = resp.room_id
            resp = await a.room_send(rid, "m.room.message",
                                     {"msgtype": "m.text", "body": "nio says"})
            assert isinstance(resp, nio.RoomSendResponse), resp
            sent = resp.event_id
            resp = await a.room_put_state(rid, "m.room.topic",
                                          {"topic": "nio topic"})
            assert isinstance(resp, nio.RoomPutStateResponse), resp
            resp = await a.room_get_state_event(rid, "m.room.topic")
            assert isinstance(resp, nio.RoomGetStateEventResponse), resp
            assert resp.content == {"topic": "nio topic"}
            resp = await c.join(f"#{nio_alias}:{server.server_name}")
            assert isinstance(resp, nio.JoinResponse), resp
            assert resp.room_id == rid
            resp = await c.room_get_state(rid)
            assert isinstance(resp, nio.RoomGetStateResponse), resp
            types = {(e["type"], e["state_key"]) for e in resp.events}
            assert ("m.room.create", "") in types
            assert ("m.room.member", carol.user_id) in types
            resp = await c.room_messages(rid, start="", limit=50)
            assert isinstance(resp, nio.RoomMessagesResponse), resp
            ids = [e.event_id for e in resp.chunk]
            assert sent in ids, ids
            resp = await c.joined_rooms()
            assert isinstance(resp, nio.JoinedRoomsResponse), resp
            assert rid in resp.rooms
            return rid
        finally:
            await a.close()
            await c.close()

    rid = run(with_nio())
    create = carol.state_event(rid, "m.room.create")
    assert create["content"]["room_version"] == version
    assert create["content"].get("m.federate") is True, create
    assert ("creator" in create["content"]) == (int(version) <= 10), create


def test_default_room_version_and_errors(server):
    alice = User(server)
    room_id = alice.create_room()
    caps = alice.get(f"{V3}/capabilities")
    assert caps.status == 200, caps
    default = caps.json["capabilities"]["m.room_versions"]["default"]
    create = alice.state_content(room_id, "m.room.create")
    assert create["room_version"] == default

    assert_error(alice.post(f"{V3}/createRoom", json={"room_version": "99"}),
                 400, "M_UNSUPPORTED_ROOM_VERSION")
    assert_error(alice.post(f"{V3}/createRoom", json={"preset": "party"}),
                 400, "M_INVALID_PARAM")
    assert_error(alice.post(f"{V3}/createRoom",
                            json={"visibility": "secret"}),
                 400, "M_INVALID_PARAM")
    assert_error(alice.post(f"{V3}/createRoom", json={"invite": ["bob"]}),
                 400, "M_INVALID_PARAM")
    name = unique("taken")
    alice.create_room(room_alias_name=name)
    assert_error(alice.post(f"{V3}/createRoom",
                            json={"room_alias_name": name}),
                 400, "M_ROOM_IN_USE")
    assert_error(server.post(f"{V3}/createRoom", json={}), 401,
                 "M_MISSING_TOKEN")


# ---------------------------------------------------------------------------
# createRoom options
# ---------------------------------------------------------------------------

def test_presets_initial_state_and_override(server):
    alice, bob = User(server), User(server)

    room_id = alice.create_room(room_version="10", preset="private_chat")
    assert alice.state_content(room_id, "m.room.join_rules") == \
        {"join_rule": "invite"}
    assert alice.state_content(room_id, "m.room.history_visibility") == \
        {"history_visibility": "shared"}
    assert alice.state_content(room_id, "m.room.guest_access") == \
        {"guest_access": "can_join"}

    # visibility=public without a preset means public_chat.
    room_id = alice.create_room(visibility="public")
    assert alice.state_content(room_id, "m.room.join_rules") == \
        {"join_rule": "public"}
    assert_error(alice.state(room_id, "m.room.guest_access"), 404,
                 "M_NOT_FOUND")

    # initial_state overrides the preset; name overrides initial_state.
    room_id = alice.create_room(
        room_version="10", preset="public_chat", name="The name",
        initial_state=[
            {"type": "m.room.join_rules", "content": {"join_rule": "invite"}},
            {"type": "m.room.name", "content": {"name": "overridden"}},
            {"type": "org.example.keyed", "state_key": "k1",
             "content": {"v": 1}},
        ],
        power_level_content_override={
            "users": {alice.user_id: 100, bob.user_id: 42},
            "events": {"m.room.name": 75},
            "state_default": 60,
        })
    assert alice.state_content(room_id, "m.room.join_rules") == \
        {"join_rule": "invite"}
    assert alice.state_content(room_id, "m.room.name") == {"name": "The name"}
    assert alice.state_content(room_id, "org.example.keyed", "k1") == {"v": 1}
    pl = alice.state_content(room_id, "m.room.power_levels")
    assert pl["users"] == {alice.user_id: 100, bob.user_id: 42}, pl
    assert pl["events"] == {"m.room.name": 75}, pl
    assert pl["state_default"] == 60, pl
    assert pl["ban"] == 50 and pl["kick"] == 50, pl

    # creation_content keys reach the create event; creator is ours.
    room_id = alice.create_room(
        room_version="9",
        creation_content={"m.federate": False, "creator": "@evil:example.org",
                          "type": "org.example.kind"})
    create = alice.state_content(room_id, "m.room.create")
    assert create["m.federate"] is False
    assert create["creator"] == alice.user_id
    assert create["type"] == "org.example.kind"
    assert create["room_version"] == "9"

    # A bad creation_content or override is rejected before anything exists.
    assert_error(alice.post(f"{V3}/createRoom",
                            json={"creation_content": []}),
                 400, "M_BAD_JSON")
    assert_error(alice.post(f"{V3}/createRoom",
                            json={"power_level_content_override": 5}),
                 400, "M_BAD_JSON")


@pytest.mark.parametrize("version", ["11", "12"])
def test_trusted_private_chat(server, version):
    alice, bob, carol = User(server), User(server), User(server)
    room_id = alice.create_room(room_version=version,
                                preset="trusted_private_chat",
                                invite=[bob.user_id], is_direct=True)
    pl = alice.state_content(room_id, "m.room.power_levels")
    create = alice.state_content(room_id, "m.room.create")
    if version == "12":
        # Invitees become additional creators (MSC4289) and, like every
        # creator, are not listed in the users map.
        assert create["additional_creators"] == [bob.user_id], create
        assert bob.user_id not in pl.get("users", {}), pl
        assert alice.user_id not in pl.get("users", {}), pl
        assert pl["events"]["m.room.tombstone"] > pl["state_default"], pl
    else:
        assert pl["users"][bob.user_id] == 100, pl
        assert pl["users"][alice.user_id] == 100, pl
    member = alice.state_content(room_id, "m.room.member", bob.user_id)
    assert member["membership"] == "invite"
    assert member["is_direct"] is True
    assert alice.state_content(room_id, "m.room.join_rules") == \
        {"join_rule": "invite"}

    assert_error(carol.join(room_id), 403, "M_FORBIDDEN")
    assert bob.join(room_id).status == 200
    # The invitee has the creator's power: it can rename the room and
    # change power levels.
    resp = bob.put_state(room_id, "m.room.name", {"name": "bob's"})
    assert resp.status == 200, resp
    assert alice.state_content(room_id, "m.room.name") == {"name": "bob's"}


# ---------------------------------------------------------------------------
# Permissions and membership
# ---------------------------------------------------------------------------

def test_member_without_power_cannot_rename(server):
    alice, bob = User(server), User(server)
    room_id = alice.create_room(preset="public_chat", name="Original")
    assert bob.join(room_id).status == 200
    resp = bob.put_state(room_id, "m.room.name", {"name": "Hijacked"})
    assert_error(resp, 403, "M_FORBIDDEN")
    assert alice.state_content(room_id, "m.room.name") == {"name": "Original"}
    # Messages need only events_default (0).
    bob.send_ok(room_id, "just talking")
    # nio sees the same refusal.
    import nio

    async def with_nio():
        b = nio_client(server, bob)
        try:
            resp = await b.room_put_state(room_id, "m.room.name",
                                          {"name": "nio hijack"})
            assert isinstance(resp, nio.RoomPutStateError), resp
            assert resp.status_code == "M_FORBIDDEN", resp
        finally:
            await b.close()

    run(with_nio())
    # Once promoted, bob may rename.
    pl = alice.state_content(room_id, "m.room.power_levels")
    pl["users"][bob.user_id] = 50
    assert alice.put_state(room_id, "m.room.power_levels", pl).status == 200
    assert bob.put_state(room_id, "m.room.name", {"name": "Bob's"}).status \
        == 200


def test_private_chat_invites(server):
    alice, bob, carol = User(server), User(server), User(server)
    room_id = alice.create_room(preset="private_chat")

    assert_error(carol.join(room_id), 403, "M_FORBIDDEN")
    assert_error(carol.send(room_id), 403, "M_FORBIDDEN")
    assert_error(carol.get(f"{V3}/rooms/{q(room_id)}/messages"), 403,
                 "M_FORBIDDEN")

    resp = alice.action(room_id, "invite", bob, reason="come along")
    assert resp.status == 200, resp
    assert resp.json == {}
    member = alice.state_content(room_id, "m.room.member", bob.user_id)
    assert member == {"membership": "invite", "reason": "come along"}
    # An invitee cannot read yet (history visibility comes later) ...
    assert_error(bob.get(f"{V3}/rooms/{q(room_id)}/state"), 403,
                 "M_FORBIDDEN")
    # ... but can join.
    resp = bob.post(f"{V3}/rooms/{q(room_id)}/join")
    assert resp.status == 200 and resp.json == {"room_id": room_id}, resp
    assert room_id in bob.joined_rooms()
    # Carol is still not invited; bob, joined, cannot be invited again.
    assert_error(carol.join(room_id), 403, "M_FORBIDDEN")
    assert_error(alice.action(room_id, "invite", bob), 403, "M_FORBIDDEN")
    # An invitee may decline by leaving.
    dave = User(server)
    assert alice.action(room_id, "invite", dave).status == 200
    assert dave.leave(room_id).status == 200
    assert alice.membership(room_id, dave) == "leave"
    assert_error(dave.join(room_id), 403, "M_FORBIDDEN")

    # nio: invite and join.
    import nio

    async def with_nio():
        a = nio_client(server, alice)
        c = nio_client(server, carol)
        try:
            resp = await a.room_invite(room_id, carol.user_id)
            assert isinstance(resp, nio.RoomInviteResponse), resp
            resp = await c.join(room_id)
            assert isinstance(resp, nio.JoinResponse), resp
            resp = await c.joined_members(room_id)
            assert isinstance(resp, nio.JoinedMembersResponse), resp
            assert {m.user_id for m in resp.members} == \
                {alice.user_id, bob.user_id, carol.user_id}
            resp = await c.room_leave(room_id)
            assert isinstance(resp, nio.RoomLeaveResponse), resp
            resp = await c.joined_rooms()
            assert room_id not in resp.rooms
        finally:
            await a.close()
            await c.close()

    run(with_nio())
    # Having left, carol cannot come back without a new invite; she still
    # reads the state as of her leave (history visibility, Synapse-style).
    assert_error(carol.join(room_id), 403, "M_FORBIDDEN")
    assert carol.state_content(room_id, "m.room.member",
                               carol.user_id)["membership"] == "leave"


def test_kick_needs_power_and_lower_target(server):
    alice, mod, bob, carol = (User(server), User(server), User(server),
                              User(server))
    room_id = alice.create_room(
        room_version="10", preset="public_chat",
        power_level_content_override={
            "users": {alice.user_id: 100, mod.user_id: 50}})
    for u in (mod, bob, carol):
        assert u.join(room_id).status == 200

    # A PL 0 member cannot kick.
    assert_error(bob.action(room_id, "kick", carol), 403, "M_FORBIDDEN")
    assert carol.membership(room_id, carol) == "join"
    # A moderator cannot kick its equal or its superior.
    assert_error(mod.action(room_id, "kick", alice), 403, "M_FORBIDDEN")
    pl = alice.state_content(room_id, "m.room.power_levels")
    pl["users"][bob.user_id] = 50
    assert alice.put_state(room_id, "m.room.power_levels", pl).status == 200
    assert_error(mod.action(room_id, "kick", bob), 403, "M_FORBIDDEN")
    # ... but can kick a lower member, with a reason.
    resp = mod.action(room_id, "kick", carol, reason="spam")
    assert resp.status == 200, resp
    member = alice.state_event(room_id, "m.room.member", carol.user_id)
    assert member["content"] == {"membership": "leave", "reason": "spam"}
    assert member["sender"] == mod.user_id
    assert room_id not in carol.joined_rooms()
    # A kick is not a ban: carol may rejoin the public room.
    assert carol.join(room_id).status == 200

    # Kicking through nio.
    import nio

    async def with_nio():
        a = nio_client(server, alice)
        try:
            resp = await a.room_kick(room_id, carol.user_id, reason="again")
            assert isinstance(resp, nio.RoomKickResponse), resp
        finally:
            await a.close()

    run(with_nio())
    assert alice.membership(room_id, carol) == "leave"


def test_ban_unban(server):
    alice, bob, carol = User(server), User(server), User(server)
    room_id = alice.create_room(preset="public_chat")
    for u in (bob, carol):
        assert u.join(room_id).status == 200

    # Bob (PL 0) cannot ban.
    assert_error(bob.action(room_id, "ban", carol), 403, "M_FORBIDDEN")
    # Unbanning someone who is not banned is refused.
    assert_error(alice.action(room_id, "unban", carol), 403, "M_FORBIDDEN")
    assert alice.membership(room_id, carol) == "join"

    resp = alice.action(room_id, "ban", carol, reason="bye")
    assert resp.status == 200, resp
    assert alice.state_content(room_id, "m.room.member", carol.user_id) == \
        {"membership": "ban", "reason": "bye"}
    # A banned user cannot rejoin, even a public room, nor send.
    assert_error(carol.join(room_id), 403, "M_FORBIDDEN")
    assert_error(carol.send(room_id), 403, "M_FORBIDDEN")
    assert_error(carol.leave(room_id), 403, "M_FORBIDDEN")
    assert alice.membership(room_id, carol) == "ban"
    # Bob cannot lift the ban.
    assert_error(bob.action(room_id, "unban", carol), 403, "M_FORBIDDEN")

    # Banning someone who never joined works too.
    dave = User(server)
    assert alice.action(room_id, "ban", dave).status == 200
    assert_error(dave.join(room_id), 403, "M_FORBIDDEN")

    import nio

    async def with_nio():
        a = nio_client(server, alice)
        try:
            resp = await a.room_unban(room_id, carol.user_id)
            assert isinstance(resp, nio.RoomUnbanResponse), resp
            resp = await a.room_ban(room_id, bob.user_id, reason="nio ban")
            assert isinstance(resp, nio.RoomBanResponse), resp
        finally:
            await a.close()

    run(with_nio())
    assert alice.membership(room_id, carol) == "leave"
    assert carol.join(room_id).status == 200
    assert alice.membership(room_id, bob) == "ban"
    assert_error(bob.join(room_id), 403, "M_FORBIDDEN")
    resp = alice.action(room_id, "unban", dave)
    assert resp.status == 200, resp
    assert alice.membership(room_id, dave) == "leave"

    # Bad bodies.
    assert_error(alice.post(f"{V3}/rooms/{q(room_id)}/ban", json={}),
                 400, "M_MISSING_PARAM")
    assert_error(alice.action(room_id, "ban", "not-a-user"), 400,
                 "M_INVALID_PARAM")


def test_leave_and_joined_rooms(server):
    alice, bob = User(server), User(server)
    r1 = alice.create_room(preset="public_chat")
    r2 = alice.create_room(preset="public_chat")
    assert set(alice.joined_rooms()) >= {r1, r2}
    assert bob.joined_rooms() == []
    assert bob.join(r1).status == 200
    assert bob.join(r2).status == 200
    assert set(bob.joined_rooms()) == {r1, r2}
    resp = bob.leave(r1)
    assert resp.status == 200 and resp.json == {}, resp
    assert bob.joined_rooms() == [r2]
    assert alice.membership(r1, bob) == "leave"
    # A former member sees the members as of the leave.
    assert bob.members(r1) == {alice.user_id: "join", bob.user_id: "leave"}
    assert_error(bob.send(r1), 403, "M_FORBIDDEN")
    # Leaving a room one is not in is refused.
    assert_error(bob.leave(r1), 403, "M_FORBIDDEN")
    # Joining twice is harmless.
    assert bob.join(r2).status == 200
    assert bob.join(r2).status == 200
    assert set(alice.members(r2, membership="join")) == \
        {alice.user_id, bob.user_id}


# ---------------------------------------------------------------------------
# Sending
# ---------------------------------------------------------------------------

def test_txn_idempotency(server):
    alice = User(server, password="txn test password")
    r1 = alice.create_room(preset="public_chat")
    r2 = alice.create_room(preset="public_chat")

    first = alice.send_ok(r1, "once", txn="t1")
    again = alice.send_ok(r1, "once (retry)", txn="t1")
    assert again == first
    other_room = alice.send_ok(r2, "once", txn="t1")
    assert other_room != first
    other_type = alice.send_ok(r1, "typed", txn="t1", etype="org.example.x",
                               content={"body": "x"})
    assert other_type != first

    # A second device of the same user has its own transaction IDs.
    resp = server.post(f"{V3}/login", json={
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": alice.user_id},
        "password": "txn test password"})
    assert resp.status == 200, resp
    other_device = alice.server.request(
        "PUT", f"{V3}/rooms/{q(r1)}/send/m.room.message/t1",
        json={"msgtype": "m.text", "body": "other device"},
        headers={"Authorization": f"Bearer {resp.json['access_token']}"})
    assert other_device.status == 200, other_device
    assert other_device.json["event_id"] != first

    events, _ = all_messages(alice, r1, limit=50)
    assert bodies(events).count("once") == 1
    assert "once (retry)" not in bodies(events)

    # Through nio, with an explicit transaction ID.
    import nio

    async def with_nio():
        a = nio_client(server, alice)
        try:
            one = await a.room_send(r2, "m.room.message",
                                    {"msgtype": "m.text", "body": "nio"},
                                    tx_id="nio-txn")
            two = await a.room_send(r2, "m.room.message",
                                    {"msgtype": "m.text", "body": "nio"},
                                    tx_id="nio-txn")
            assert isinstance(one, nio.RoomSendResponse), one
            assert one.event_id == two.event_id
        finally:
            await a.close()

    run(with_nio())
    events, _ = all_messages(alice, r2, limit=50)
    assert bodies(events).count("nio") == 1


def test_event_size_limit(server):
    alice = User(server)
    room_id = alice.create_room(preset="public_chat")
    # A body over the limit is refused.
    resp = alice.send(room_id, content={"body": "x" * 70000})
    assert_error(resp, 413, "M_TOO_LARGE")
    # Content that fits the request but not the signed event.
    resp = alice.send(room_id, content={"body": "x" * 65400})
    assert_error(resp, 413, "M_TOO_LARGE")
    resp = alice.put_state(room_id, "org.example.big", {"v": "y" * 65400})
    assert_error(resp, 413, "M_TOO_LARGE")
    assert_error(alice.state(room_id, "org.example.big"), 404, "M_NOT_FOUND")
    # Something comfortably smaller goes through.
    event_id = alice.send_ok(room_id, content={"body": "z" * 60000})
    resp = alice.get(f"{V3}/rooms/{q(room_id)}/event/{q(event_id)}")
    assert resp.status == 200 and len(resp.json["content"]["body"]) == 60000


def room_endpoints(r):
    """Every room endpoint taking the (already quoted) room ID `r`."""
    return (
        ("PUT", f"{V3}/rooms/{r}/send/m.room.message/t1"),
        ("PUT", f"{V3}/rooms/{r}/state/m.room.name/"),
        ("GET", f"{V3}/rooms/{r}/state/m.room.name"),
        ("GET", f"{V3}/rooms/{r}/state"),
        ("GET", f"{V3}/rooms/{r}/messages"),
        ("GET", f"{V3}/rooms/{r}/members"),
        ("GET", f"{V3}/rooms/{r}/joined_members"),
        ("GET", f"{V3}/rooms/{r}/event/$abc"),
        ("POST", f"{V3}/rooms/{r}/leave"),
        ("POST", f"{V3}/rooms/{r}/invite"),
        ("POST", f"{V3}/rooms/{r}/kick"),
        ("POST", f"{V3}/rooms/{r}/ban"),
        ("POST", f"{V3}/rooms/{r}/join"),
        ("POST", f"{V3}/join/{r}"))


def room_request(user, method, path):
    body = {"user_id": user.user_id} if method == "POST" else {}
    return user.req(method, path, json=body if method != "GET" else None)


def test_bad_and_unknown_rooms(server):
    alice = User(server)
    room_id = alice.create_room(preset="public_chat")
    for bad in ("notaroom", "!", "!nocolon but spaces", "@alice:example.org"):
        for method, path in room_endpoints(q(bad)):
            assert_error(room_request(alice, method, path), 400,
                         "M_INVALID_PARAM")

    unknown = f"!unknownroomxyz:{server.server_name}"
    for method, path in room_endpoints(q(unknown)):
        # Joining a room unknown here would go through another server: with
        # none to ask (the room ID names this one), 404 as Synapse answers.
        joining = method == "POST" and ("/join/" in path or path.endswith("/join"))
        assert_error(room_request(alice, method, path), 404 if joining else 403,
                     "M_NOT_FOUND" if joining else "M_FORBIDDEN")

    # Unknown aliases are 404; malformed ones 400.
    assert_error(alice.join(f"#nothere:{server.server_name}"), 404,
                 "M_NOT_FOUND")
    assert_error(alice.join("#"), 400, "M_INVALID_PARAM")

    # Unknown events, and events of another room, are 404.
    other = alice.create_room(preset="public_chat")
    ev = alice.send_ok(other, "elsewhere")
    assert_error(alice.get(f"{V3}/rooms/{q(room_id)}/event/{q(ev)}"), 404,
                 "M_NOT_FOUND")
    assert_error(alice.get(f"{V3}/rooms/{q(room_id)}/event/"
                           f"{q('$doesnotexist')}"), 404, "M_NOT_FOUND")

    # Unauthenticated.
    assert_error(server.get(f"{V3}/rooms/{q(room_id)}/state"), 401,
                 "M_MISSING_TOKEN")


def test_concurrent_sends(server):
    """Sends from several threads into two rooms: every event lands once,
    and each room's timeline is a consistent chain."""
    alice, bob = User(server), User(server)
    r1 = alice.create_room(preset="public_chat")
    r2 = alice.create_room(preset="public_chat")
    assert bob.join(r1).status == 200
    assert bob.join(r2).status == 200

    def worker(n):
        user = alice if n % 2 else bob
        room = r1 if n % 3 else r2
        return room, [user.send_ok(room, f"w{n}-{i}") for i in range(5)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(worker, range(12)))
    for room in (r1, r2):
        expected = {f"w{n}-{i}" for n in range(12) if (r1 if n % 3 else r2)
                    == room for i in range(5)}
        events, _ = all_messages(alice, room, "b", limit=20)
        got = bodies(events)
        assert len(got) == len(set(got)) == len(expected)
        assert set(got) == expected
        ids = {e["event_id"] for e in events}
        for r, sent in results:
            if r == room:
                assert set(sent) <= ids
        # Each sender's own messages keep their order.
        for n in range(12):
            own = [b for b in reversed(got) if b.startswith(f"w{n}-")]
            assert own == sorted(own)


# ---------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------

def test_state_empty_key_both_url_forms(server):
    alice = User(server)
    room_id = alice.create_room(preset="public_chat")
    base = f"{V3}/rooms/{q(room_id)}/state/m.room.topic"

    resp = alice.put(base, json={"topic": "no slash"})
    assert resp.status == 200, resp
    first = resp.json["event_id"]
    for path in (base, base + "/"):
        resp = alice.get(path)
        assert resp.status == 200 and resp.json == {"topic": "no slash"}, resp

    resp = alice.put(base + "/", json={"topic": "slash"})
    assert resp.status == 200, resp
    second = resp.json["event_id"]
    assert second != first
    for path in (base, base + "/"):
        resp = alice.get(path)
        assert resp.status == 200 and resp.json == {"topic": "slash"}, resp

    # ?format=event gives the whole client event.
    for path in (base + "?format=event", base + "/?format=event"):
        resp = alice.get(path)
        assert resp.status == 200, resp
        ev = resp.json
        assert ev["event_id"] == second
        assert ev["type"] == "m.room.topic"
        assert ev["state_key"] == ""
        assert ev["sender"] == alice.user_id
        assert ev["room_id"] == room_id
        assert ev["content"] == {"topic": "slash"}
        assert isinstance(ev["origin_server_ts"], int)
        assert "signatures" not in ev and "hashes" not in ev
    # format=content (or anything else) is the content.
    resp = alice.get(base + "?format=content")
    assert resp.json == {"topic": "slash"}

    # A state key that looks like a path, percent-encoded.
    resp = alice.put_state(room_id, "org.example.path", {"p": 1},
                           state_key="a/b c")
    assert resp.status == 200, resp
    assert alice.state_content(room_id, "org.example.path", "a/b c") == \
        {"p": 1}
    assert_error(alice.state(room_id, "org.example.path"), 404, "M_NOT_FOUND")
    assert_error(alice.state(room_id, "org.example.none"), 404, "M_NOT_FOUND")

    # Full state lists each (type, state_key) once, with the latest event.
    resp = alice.get(f"{V3}/rooms/{q(room_id)}/state")
    assert resp.status == 200, resp
    keys = [(e["type"], e["state_key"]) for e in resp.json]
    assert len(keys) == len(set(keys))
    topic = [e for e in resp.json if e["type"] == "m.room.topic"]
    assert [e["event_id"] for e in topic] == [second]
    assert ("org.example.path", "a/b c") in keys

    # A second create event is refused by the auth rules.
    assert_error(alice.put_state(room_id, "m.room.create",
                                 {"room_version": "1"}), 403, "M_FORBIDDEN")

    # Bad JSON bodies for state.
    assert_error(alice.put(base, body="not json"), 400, "M_NOT_JSON")
    assert_error(alice.put(base, json=[1, 2]), 400, "M_BAD_JSON")

    # Sending a state-less message through /state with a user's key is
    # checked by the auth rules: a key of another user is refused.
    bob = User(server)
    assert bob.join(room_id).status == 200
    pl = alice.state_content(room_id, "m.room.power_levels")
    pl["users"][bob.user_id] = 50
    assert alice.put_state(room_id, "m.room.power_levels", pl).status == 200
    assert_error(bob.put_state(room_id, "org.example.owned", {},
                               state_key=alice.user_id), 403, "M_FORBIDDEN")

    import nio

    async def with_nio():
        a = nio_client(server, alice)
        try:
            resp = await a.room_get_state_event(room_id, "m.room.topic")
            assert isinstance(resp, nio.RoomGetStateEventResponse), resp
            assert resp.content == {"topic": "slash"}
            resp = await a.room_get_state_event(room_id, "org.example.path",
                                                "a/b c")
            assert resp.content == {"p": 1}
            resp = await a.room_get_state_event(room_id, "org.example.none")
            assert isinstance(resp, nio.RoomGetStateEventError), resp
            assert resp.status_code == "M_NOT_FOUND"
        finally:
            await a.close()

    run(with_nio())


# ---------------------------------------------------------------------------
# /messages
# ---------------------------------------------------------------------------

def test_messages_pagination(server):
    alice, bob = User(server), User(server)
    room_id = alice.create_room(preset="public_chat", name="Paged")
    assert bob.join(room_id).status == 200
    sent = [alice.send_ok(room_id, f"m{i:02d}") for i in range(25)]

    # Backwards from the present, 10 at a time, until no `end`.
    back, pages = all_messages(bob, room_id, "b", limit=10)
    assert pages >= 3
    ids = [e["event_id"] for e in back]
    assert len(ids) == len(set(ids)), "an event was served twice"
    msg_ids = [e["event_id"] for e in back if e["type"] == "m.room.message"]
    assert msg_ids == list(reversed(sent))
    assert bodies(back) == [f"m{i:02d}" for i in reversed(range(25))]
    # The timeline reaches back to the create event, which comes last.
    assert back[-1]["type"] == "m.room.create"
    types = [e["type"] for e in back]
    for t in ("m.room.member", "m.room.power_levels", "m.room.join_rules",
              "m.room.name"):
        assert t in types
    member_events = [e for e in back if e["type"] == "m.room.member"]
    assert {e["state_key"] for e in member_events} == \
        {alice.user_id, bob.user_id}
    for e in back:
        assert e["room_id"] == room_id
        assert "unsigned" in e and e["unsigned"]["age"] >= 0

    # Forwards from the beginning gives the same events in order.
    fwd, _ = all_messages(bob, room_id, "f", limit=10)
    assert [e["event_id"] for e in fwd] == list(reversed(ids))

    # Round trips: forwards from the `end` of a backwards page returns that
    # page's events, oldest first.
    resp = bob.messages(room_id, dir="b", limit=10)
    page1 = resp.json
    assert [e["event_id"] for e in page1["chunk"]] == ids[:10]
    resp = bob.messages(room_id, dir="f", limit=10, **{"from": page1["end"]})
    assert resp.status == 200, resp
    assert [e["event_id"] for e in resp.json["chunk"]] == \
        list(reversed(ids[:10]))
    # Backwards from the `end` of a forwards page returns that page again.
    resp = bob.messages(room_id, dir="f", limit=7)
    fpage = resp.json
    assert [e["event_id"] for e in fpage["chunk"]] == \
        list(reversed(ids))[:7]
    resp = bob.messages(room_id, dir="b", limit=7, **{"from": fpage["end"]})
    assert [e["event_id"] for e in resp.json["chunk"]] == \
        list(reversed(list(reversed(ids))[:7]))

    # Forwards from the `start` of the newest page: nothing yet, then the
    # events sent since.
    start = page1["start"]
    resp = bob.messages(room_id, dir="f", **{"from": start})
    assert resp.status == 200 and resp.json["chunk"] == [], resp
    assert "end" not in resp.json
    later = alice.send_ok(room_id, "later")
    resp = bob.messages(room_id, dir="f", **{"from": start})
    assert [e["event_id"] for e in resp.json["chunk"]] == [later]

    # `to` bounds a page: backwards from now to the first page's start
    # gives just the new event.
    resp = bob.messages(room_id, dir="b", limit=50, to=start)
    assert [e["event_id"] for e in resp.json["chunk"]] == [later], resp
    resp = bob.messages(room_id, dir="f", limit=50, to=page1["end"])
    assert [e["event_id"] for e in resp.json["chunk"]] == \
        list(reversed(ids[10:])), resp

    # limit=0 gives nothing and no end; bad parameters are 400.
    resp = bob.messages(room_id, limit=0)
    assert resp.status == 200 and resp.json["chunk"] == [], resp
    assert "end" not in resp.json
    assert_error(bob.messages(room_id, dir="x"), 400, "M_INVALID_PARAM")
    assert_error(bob.messages(room_id, limit="ten"), 400, "M_INVALID_PARAM")
    assert_error(bob.messages(room_id, **{"from": "garbage"}), 400,
                 "M_INVALID_PARAM")

    # nio pages the same way.
    import nio

    async def with_nio():
        b = nio_client(server, bob)
        try:
            seen = []
            token = ""
            while True:
                resp = await b.room_messages(room_id, start=token, limit=10)
                assert isinstance(resp, nio.RoomMessagesResponse), resp
                seen.extend(e.event_id for e in resp.chunk)
                if not resp.end:
                    break
                token = resp.end
            return seen
        finally:
            await b.close()

    seen = run(with_nio())
    assert seen == [later] + ids


# ---------------------------------------------------------------------------
# Members
# ---------------------------------------------------------------------------

def test_members_filters(server):
    alice, bob, carol, dave, erin = (User(server) for _ in range(5))
    room_id = alice.create_room(preset="public_chat")
    assert bob.join(room_id).status == 200
    assert carol.join(room_id).status == 200
    assert carol.leave(room_id).status == 200
    assert alice.action(room_id, "invite", dave).status == 200
    assert erin.join(room_id).status == 200
    assert alice.action(room_id, "ban", erin).status == 200

    everyone = {alice.user_id: "join", bob.user_id: "join",
                carol.user_id: "leave", dave.user_id: "invite",
                erin.user_id: "ban"}
    assert bob.members(room_id) == everyone
    assert bob.members(room_id, membership="join") == \
        {alice.user_id: "join", bob.user_id: "join"}
    assert bob.members(room_id, membership="invite") == \
        {dave.user_id: "invite"}
    assert bob.members(room_id, not_membership="leave") == \
        {u: m for u, m in everyone.items() if m != "leave"}
    assert bob.members(room_id, membership="leave",
                       not_membership="join") == {carol.user_id: "leave"}
    assert bob.members(room_id, membership="knock") == {}

    resp = bob.get(f"{V3}/rooms/{q(room_id)}/members")
    for ev in resp.json["chunk"]:
        assert ev["type"] == "m.room.member"
        assert ev["room_id"] == room_id
        assert ev["event_id"].startswith("$")

    # Invited and banned users are not members (as Synapse); carol, who
    # left, sees the member list as it was when she left.
    for outsider in (dave, erin):
        assert_error(outsider.get(f"{V3}/rooms/{q(room_id)}/members"),
                     403, "M_FORBIDDEN")
    assert carol.members(room_id) == {alice.user_id: "join",
                                      bob.user_id: "join",
                                      carol.user_id: "leave"}


def test_joined_members_display_names(server):
    alice, bob, carol = User(server), User(server), User(server)
    resp = alice.put(f"{V3}/profile/{q(alice.user_id)}/displayname",
                     json={"displayname": "Alice A."})
    assert resp.status == 200, resp
    resp = bob.put(f"{V3}/profile/{q(bob.user_id)}/avatar_url",
                   json={"avatar_url": "mxc://example.org/bob"})
    assert resp.status == 200, resp
    resp = bob.put(f"{V3}/profile/{q(bob.user_id)}/displayname",
                   json={"displayname": "Bob B."})
    assert resp.status == 200, resp

    room_id = alice.create_room(preset="public_chat")
    assert bob.join(room_id).status == 200
    assert carol.join(room_id).status == 200
    resp = alice.get(f"{V3}/rooms/{q(room_id)}/joined_members")
    assert resp.status == 200, resp
    joined = resp.json["joined"]
    assert set(joined) == {alice.user_id, bob.user_id, carol.user_id}
    assert joined[alice.user_id]["display_name"] == "Alice A."
    assert joined[bob.user_id]["display_name"] == "Bob B."
    assert joined[bob.user_id]["avatar_url"] == "mxc://example.org/bob"
    # Registration gave carol her localpart as display name.
    assert joined[carol.user_id]["display_name"] == \
        carol.user_id[1:].split(":")[0]
    assert joined[carol.user_id].get("avatar_url") is None
    # The join events carry the profile too.
    member = alice.state_content(room_id, "m.room.member", alice.user_id)
    assert member == {"membership": "join", "displayname": "Alice A."}

    assert carol.leave(room_id).status == 200
    resp = alice.get(f"{V3}/rooms/{q(room_id)}/joined_members")
    assert set(resp.json["joined"]) == {alice.user_id, bob.user_id}

    import nio

    async def with_nio():
        b = nio_client(server, bob)
        try:
            resp = await b.joined_members(room_id)
            assert isinstance(resp, nio.JoinedMembersResponse), resp
            names = {m.user_id: m.display_name for m in resp.members}
            assert names == {alice.user_id: "Alice A.",
                             bob.user_id: "Bob B."}
        finally:
            await b.close()

    run(with_nio())
    # Carol, who left, sees who was joined when she left.
    resp = carol.get(f"{V3}/rooms/{q(room_id)}/joined_members")
    assert resp.status == 200, resp
    assert set(resp.json["joined"]) == {alice.user_id, bob.user_id}


# ---------------------------------------------------------------------------
# Restart: the room cache reloads from the database
# ---------------------------------------------------------------------------

def restart(server):
    """Stops the server cleanly and starts it again on the same data."""
    code = server.stop()
    assert code == 0 and not server.problems(), server.problems()
    server.proc = None
    server.exit_code = None
    server.start()


def test_rooms_survive_restart(server):
    alice, bob = User(server), User(server)
    r12 = alice.create_room(preset="public_chat", name="Persistent",
                            room_alias_name=unique("keep"))
    r1 = alice.create_room(room_version="1", preset="public_chat")
    assert bob.join(r12).status == 200
    before = [alice.send_ok(r12, f"before {i}", txn=f"b{i}") for i in range(6)]
    old_v1 = alice.send_ok(r1, "v1 before")
    assert alice.put_state(r12, "m.room.topic", {"topic": "kept"}).status \
        == 200
    state_before = alice.get(f"{V3}/rooms/{q(r12)}/state").json
    top = alice.messages(r12, limit=1).json
    token_before = top["start"]
    last_before = top["chunk"][0]["event_id"]

    restart(server)

    # State and membership are back, from the database.
    state_after = alice.get(f"{V3}/rooms/{q(r12)}/state")
    assert state_after.status == 200, state_after
    key = lambda e: (e["type"], e["state_key"])  # noqa: E731
    assert sorted((key(e), e["event_id"]) for e in state_after.json) == \
        sorted((key(e), e["event_id"]) for e in state_before)
    assert alice.state_content(r12, "m.room.topic") == {"topic": "kept"}
    assert set(alice.joined_rooms()) == {r12, r1}
    assert bob.joined_rooms() == [r12]

    # The transaction IDs are remembered.
    assert alice.send_ok(r12, "dup", txn="b0") == before[0]

    # New events build on the old ones; stream positions continue.
    after = [bob.send_ok(r12, f"after {i}") for i in range(4)]
    assert alice.send_ok(r1, "v1 after") != old_v1
    resp = alice.messages(r12, dir="f", **{"from": token_before})
    assert [e["event_id"] for e in resp.json["chunk"]] == after, resp
    # Tokens are opaque, but a later one must page back to what we saw.
    resp = alice.messages(r12, limit=5)
    assert [e["event_id"] for e in resp.json["chunk"]] == \
        list(reversed(after)) + [last_before]

    # Power checks still hold after the reload.
    assert_error(bob.put_state(r12, "m.room.name", {"name": "x"}), 403,
                 "M_FORBIDDEN")
    assert alice.put_state(r12, "m.room.name", {"name": "Renamed"}).status \
        == 200
    carol = User(server)
    alias = alice.state_content(r12, "m.room.canonical_alias")["alias"]
    assert carol.join(alias).status == 200

    # /messages paginates across the restart.
    events, _ = all_messages(bob, r12, "b", limit=4)
    assert bodies(events) == [f"after {i}" for i in reversed(range(4))] + \
        [f"before {i}" for i in reversed(range(6))]
    ids = [e["event_id"] for e in events]
    assert ids.index(after[0]) < ids.index(last_before)
    fwd, _ = all_messages(bob, r12, "f", limit=4)
    assert [e["event_id"] for e in fwd] == list(reversed(ids))

    # And again, with nothing cached at all but the v1 room.
    restart(server)
    resp = alice.get(f"{V3}/rooms/{q(r1)}/event/{q(old_v1)}")
    assert resp.status == 200 and resp.json["content"]["body"] == "v1 before"
    alice.send_ok(r1, "v1 after second restart")
    events, _ = all_messages(alice, r1, "b", limit=3)
    assert bodies(events) == ["v1 after second restart", "v1 after",
                              "v1 before"]
    assert alice.state_content(r12, "m.room.name") == {"name": "Renamed"}


# -- redactions --

def redact(user, room_id, event_id, reason=None, txn=None):
    body = {"reason": reason} if reason else {}
    return user.put(f"{V3}/rooms/{q(room_id)}/redact/{q(event_id)}/"
                    f"{q(txn or unique('txn'))}", json=body)


def get_event(user, room_id, event_id):
    return user.get(f"{V3}/rooms/{q(room_id)}/event/{q(event_id)}")


@pytest.mark.parametrize("version", ["2", "10", "11", "12"])
def test_redactions(server, version):
    alice, bob = User(server), User(server)
    room_id = alice.create_room(preset="public_chat", room_version=version,
                                topic="a topic to redact")
    assert bob.join(room_id).status == 200
    mine = alice.send_ok(room_id, "regrettable")
    theirs = bob.send_ok(room_id, "bob's words")

    # Own events may be redacted; the stored event loses its content.
    resp = redact(alice, room_id, mine, reason="oops", txn="r1")
    assert resp.status == 200, resp
    redaction_id = resp.json["event_id"]
    again = redact(alice, room_id, mine, reason="oops", txn="r1")
    assert again.json["event_id"] == redaction_id  # idempotent per txn
    ev = get_event(alice, room_id, mine).json
    assert ev["content"] == {}, ev
    because = ev["unsigned"]["redacted_because"]
    assert because["event_id"] == redaction_id
    assert because["type"] == "m.room.redaction"
    assert because["content"].get("reason") == "oops"
    red = get_event(bob, room_id, redaction_id).json
    redacts = red["content"].get("redacts") if int(version) >= 11 \
        else red.get("redacts")
    assert redacts == mine, red

    # Others' events need the redact level (50 by default).
    resp = redact(bob, room_id, mine)
    assert_error(resp, 403, "M_FORBIDDEN")
    assert redact(alice, room_id, theirs).status == 200
    assert get_event(bob, room_id, theirs).json["content"] == {}

    # /messages serves the redacted form too.
    msgs = bob.messages(room_id, dir="b", limit=20).json["chunk"]
    by_id = {e["event_id"]: e for e in msgs}
    assert by_id[mine]["content"] == {}
    assert by_id[mine]["unsigned"]["redacted_because"]["event_id"] == \
        redaction_id

    # A redacted state event stays in the state, pruned.
    topic = alice.state_event(room_id, "m.room.topic")
    assert redact(alice, room_id, topic["event_id"]).status == 200
    assert alice.state_content(room_id, "m.room.topic") == {}

    # Unknown events and bad IDs.
    assert_error(redact(alice, room_id, "$nope"), 404, "M_NOT_FOUND")
    assert_error(redact(alice, room_id, "not-an-id"), 400, "M_INVALID_PARAM")


def test_redaction_through_send(server):
    """Spec v1.18: m.room.redaction may go through /send with
    content.redacts, under the same permission rule."""
    alice, bob = User(server), User(server)
    room_id = alice.create_room(preset="public_chat", room_version="11")
    assert bob.join(room_id).status == 200
    target = alice.send_ok(room_id, "to be removed")
    resp = bob.send(room_id, etype="m.room.redaction",
                    content={"redacts": target})
    assert_error(resp, 403, "M_FORBIDDEN")
    resp = alice.send(room_id, etype="m.room.redaction",
                      content={"redacts": target, "reason": "gone"})
    assert resp.status == 200, resp
    assert get_event(alice, room_id, target).json["content"] == {}
    resp = alice.send(room_id, etype="m.room.redaction", content={})
    assert_error(resp, 400, "M_MISSING_PARAM")
