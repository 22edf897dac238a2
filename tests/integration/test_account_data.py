"""Account data and room tags (spec "Client Config" and "Room Tagging"),
seen from outside: global and per-room GET/PUT round trips, 404 for
unknown and deleted (empty-content, MSC3391) entries, 403 for another
user's data, the 405 M_BAD_JSON refusal of the server-managed types
m.fully_read and m.push_rules, malformed room IDs and bodies, tags with
and without an order (and bad orders), tag names over 255 bytes, tagging
without membership, the r0 prefix, and a restart keeping the data.

The tests in the "Through /sync" section expect account data in /sync
(`account_data.events` and `rooms.join.<id>.account_data.events`); they
need api/client/sync.c to call the client__account_data_* functions.

Driven with raw HTTP, and matrix-nio for the tag callback; every test
runs on SQLite and on PostgreSQL."""

import asyncio
import threading
import time

import test_sync
from test_rooms import V3, nio_client, q, restart, unique
from test_sync import in_thread

R0 = "/_matrix/client/r0"
MSC3391 = "/_matrix/client/unstable/org.matrix.msc3391"


class User(test_sync.User):
    """test_sync.User (whose syncs leave presence alone, so that a first
    sync marking the user online wakes no long poll) with the account data
    calls."""

    # -- account data paths (owner defaults to self) --

    def gpath(self, etype, owner=None, prefix=V3):
        return f"{prefix}/user/{q(owner or self.user_id)}/account_data/{q(etype)}"

    def rpath(self, room_id, etype, owner=None, prefix=V3):
        return (f"{prefix}/user/{q(owner or self.user_id)}/rooms/{q(room_id)}"
                f"/account_data/{q(etype)}")

    def tpath(self, room_id, tag=None, owner=None, prefix=V3):
        p = f"{prefix}/user/{q(owner or self.user_id)}/rooms/{q(room_id)}/tags"
        return p if tag is None else f"{p}/{q(tag)}"

    def put_global(self, etype, content):
        resp = self.req("PUT", self.gpath(etype), json=content)
        assert resp.status == 200, resp
        assert resp.json == {}, resp

    def put_room(self, room_id, etype, content):
        resp = self.req("PUT", self.rpath(room_id, etype), json=content)
        assert resp.status == 200, resp
        assert resp.json == {}, resp

    def put_tag(self, room_id, tag, body=None):
        resp = self.req("PUT", self.tpath(room_id, tag),
                        json=body if body is not None else {})
        assert resp.status == 200, resp
        assert resp.json == {}, resp

    def tags(self, room_id):
        resp = self.req("GET", self.tpath(room_id))
        assert resp.status == 200, resp
        return resp.json["tags"]


# ---------------------------------------------------------------------------
# Global account data
# ---------------------------------------------------------------------------

def test_global_round_trip(server):
    alice = User(server)
    content = {"theme": "dark", "nested": {"list": [1, 2.5, None, True],
                                           "unicode": "h\u00e9llo \u2603"}}
    alice.put_global("org.example.config", content)
    resp = alice.req("GET", alice.gpath("org.example.config"))
    assert resp.status == 200, resp
    assert resp.json == content
    # Replacing keeps only the new content.
    alice.put_global("org.example.config", {"theme": "light"})
    resp = alice.req("GET", alice.gpath("org.example.config"))
    assert resp.json == {"theme": "light"}, resp
    # Types are separate; a type with "/" or spaces survives the path.
    alice.put_global("m.direct", {"@bob:example.org": ["!a:example.org"]})
    alice.put_global("org.example/odd type", {"x": 1})
    assert alice.req("GET", alice.gpath("m.direct")).json == {
        "@bob:example.org": ["!a:example.org"]}
    assert alice.req("GET", alice.gpath("org.example/odd type")).json == {"x": 1}
    assert alice.req("GET", alice.gpath("org.example.config")).json == {
        "theme": "light"}


def test_global_unknown_type_is_404(server):
    alice = User(server)
    resp = alice.req("GET", alice.gpath("org.example.never_set"))
    assert resp.status == 404, resp
    assert resp.errcode == "M_NOT_FOUND", resp


def test_global_data_is_per_user(server):
    alice, bob = User(server), User(server)
    alice.put_global("org.example.mine", {"owner": "alice"})
    resp = bob.req("GET", bob.gpath("org.example.mine"))
    assert resp.status == 404, resp
    bob.put_global("org.example.mine", {"owner": "bob"})
    assert alice.req("GET", alice.gpath("org.example.mine")).json == {"owner": "alice"}
    assert bob.req("GET", bob.gpath("org.example.mine")).json == {"owner": "bob"}


def test_other_users_data_is_forbidden(server):
    alice, bob = User(server), User(server)
    rid = alice.create_room()
    alice.put_global("org.example.secret", {"s": 1})
    alice.put_room(rid, "org.example.secret", {"s": 2})
    for method, path, body in [
        ("GET", bob.gpath("org.example.secret", owner=alice.user_id), None),
        ("PUT", bob.gpath("org.example.secret", owner=alice.user_id), {"s": 3}),
        ("GET", bob.rpath(rid, "org.example.secret", owner=alice.user_id), None),
        ("PUT", bob.rpath(rid, "org.example.secret", owner=alice.user_id), {"s": 3}),
        ("GET", bob.tpath(rid, owner=alice.user_id), None),
        ("PUT", bob.tpath(rid, "u.x", owner=alice.user_id), {}),
        ("DELETE", bob.tpath(rid, "u.x", owner=alice.user_id), None),
        ("GET", bob.gpath("org.example.secret", owner="@nobody:elsewhere.example"), None),
    ]:
        resp = bob.req(method, path, json=body)
        assert resp.status == 403, (method, path, resp)
        assert resp.errcode == "M_FORBIDDEN", resp
    # Nothing changed.
    assert alice.req("GET", alice.gpath("org.example.secret")).json == {"s": 1}
    assert alice.req("GET", alice.rpath(rid, "org.example.secret")).json == {"s": 2}


def test_unauthenticated_is_401(server):
    alice = User(server)
    resp = server.get(alice.gpath("m.direct"))
    assert resp.status == 401, resp
    assert resp.errcode == "M_MISSING_TOKEN", resp


def test_server_managed_types_are_refused(server):
    alice = User(server)
    rid = alice.create_room()
    for etype in ("m.fully_read", "m.push_rules"):
        for path in (alice.gpath(etype), alice.rpath(rid, etype)):
            resp = alice.req("PUT", path, json={"event_id": "$x"})
            assert resp.status == 405, (path, resp)
            assert resp.errcode == "M_BAD_JSON", resp
            # Readable as usual (nothing was stored by the refused PUT).
            resp = alice.req("GET", path)
            assert resp.status in (200, 404), (path, resp)
            assert resp.json != {"event_id": "$x"}, resp
    # Similar names are ordinary types.
    alice.put_global("m.fully_read.not", {"a": 1})
    alice.put_room(rid, "m.push_rules_x", {"a": 2})


def test_bad_bodies(server):
    alice = User(server)
    rid = alice.create_room()
    for path in (alice.gpath("org.example.t"), alice.rpath(rid, "org.example.t")):
        resp = alice.req("PUT", path, body=b"{not json")
        assert resp.status == 400, resp
        assert resp.errcode == "M_NOT_JSON", resp
        for body in (b"[1, 2]", b"\"text\"", b"42", b"null"):
            resp = alice.req("PUT", path, body=body)
            assert resp.status == 400, (body, resp)
            assert resp.errcode in ("M_BAD_JSON", "M_NOT_JSON"), (body, resp)
        # Duplicate keys are refused by the JSON intake.
        resp = alice.req("PUT", path, body=b'{"a": 1, "a": 2}')
        assert resp.status == 400, resp
        resp = alice.req("GET", path)
        assert resp.status == 404, resp


def test_long_type_is_refused(server):
    alice = User(server)
    resp = alice.req("PUT", alice.gpath("x" * 256), json={"a": 1})
    assert resp.status == 400, resp
    assert resp.errcode == "M_INVALID_PARAM", resp
    alice.put_global("y" * 255, {"a": 1})
    assert alice.req("GET", alice.gpath("y" * 255)).json == {"a": 1}


def test_empty_content_deletes(server):
    alice = User(server)
    rid = alice.create_room()
    alice.put_global("org.example.gone", {"a": 1})
    alice.put_global("org.example.gone", {})
    resp = alice.req("GET", alice.gpath("org.example.gone"))
    assert resp.status == 404, resp
    assert resp.errcode == "M_NOT_FOUND", resp
    alice.put_room(rid, "org.example.gone", {"a": 1})
    alice.put_room(rid, "org.example.gone", {})
    resp = alice.req("GET", alice.rpath(rid, "org.example.gone"))
    assert resp.status == 404, resp
    # Setting it again brings it back.
    alice.put_global("org.example.gone", {"b": 2})
    assert alice.req("GET", alice.gpath("org.example.gone")).json == {"b": 2}


def test_msc3391_delete(server):
    alice = User(server)
    rid = alice.create_room()
    alice.put_global("org.example.del", {"a": 1})
    alice.put_room(rid, "org.example.del", {"a": 1})
    resp = alice.req("DELETE", alice.gpath("org.example.del", prefix=MSC3391))
    assert resp.status == 200 and resp.json == {}, resp
    resp = alice.req("DELETE", alice.rpath(rid, "org.example.del", prefix=MSC3391))
    assert resp.status == 200 and resp.json == {}, resp
    assert alice.req("GET", alice.gpath("org.example.del")).status == 404
    assert alice.req("GET", alice.rpath(rid, "org.example.del")).status == 404
    resp = alice.req("DELETE", alice.gpath("m.push_rules", prefix=MSC3391))
    assert resp.status == 405 and resp.errcode == "M_BAD_JSON", resp


def test_r0_prefix(server):
    alice = User(server)
    rid = alice.create_room()
    resp = alice.req("PUT", alice.gpath("org.example.r0", prefix=R0), json={"r": 0})
    assert resp.status == 200, resp
    assert alice.req("GET", alice.gpath("org.example.r0")).json == {"r": 0}
    assert alice.req("GET", alice.gpath("org.example.r0", prefix=R0)).json == {"r": 0}
    resp = alice.req("PUT", alice.rpath(rid, "org.example.r0", prefix=R0), json={"r": 1})
    assert resp.status == 200, resp
    assert alice.req("GET", alice.rpath(rid, "org.example.r0", prefix=R0)).json == {"r": 1}
    resp = alice.req("PUT", alice.tpath(rid, "u.r0", prefix=R0), json={"order": 0.5})
    assert resp.status == 200, resp
    resp = alice.req("GET", alice.tpath(rid, prefix=R0))
    assert resp.status == 200 and resp.json == {"tags": {"u.r0": {"order": 0.5}}}, resp
    resp = alice.req("DELETE", alice.tpath(rid, "u.r0", prefix=R0))
    assert resp.status == 200, resp
    assert alice.tags(rid) == {}


def test_data_survives_restart(server):
    alice = User(server)
    rid = alice.create_room()
    alice.put_global("org.example.keep", {"k": 1})
    alice.put_tag(rid, "m.favourite", {"order": 0.25})
    restart(server)
    assert alice.req("GET", alice.gpath("org.example.keep")).json == {"k": 1}
    assert alice.tags(rid) == {"m.favourite": {"order": 0.25}}


# ---------------------------------------------------------------------------
# Room account data
# ---------------------------------------------------------------------------

def test_room_round_trip(server):
    alice = User(server)
    rid, other = alice.create_room(), alice.create_room()
    alice.put_room(rid, "org.example.room", {"per": "room"})
    assert alice.req("GET", alice.rpath(rid, "org.example.room")).json == {"per": "room"}
    # No fallback between rooms, nor between room and global data.
    assert alice.req("GET", alice.rpath(other, "org.example.room")).status == 404
    assert alice.req("GET", alice.gpath("org.example.room")).status == 404
    alice.put_global("org.example.room", {"per": "global"})
    assert alice.req("GET", alice.rpath(rid, "org.example.room")).json == {"per": "room"}
    assert alice.req("GET", alice.gpath("org.example.room")).json == {"per": "global"}
    alice.put_room(rid, "org.example.room", {"per": "room", "v": 2})
    assert alice.req("GET", alice.rpath(rid, "org.example.room")).json == {
        "per": "room", "v": 2}


def test_room_unknown_type_is_404(server):
    alice = User(server)
    rid = alice.create_room()
    resp = alice.req("GET", alice.rpath(rid, "org.example.none"))
    assert resp.status == 404, resp
    assert resp.errcode == "M_NOT_FOUND", resp


def test_room_invalid_room_id(server):
    alice = User(server)
    for bad in ("not-a-room", "@user:example.org", "#alias:example.org", "!"):
        for method, body in (("GET", None), ("PUT", {"a": 1})):
            resp = alice.req(method, alice.rpath(bad, "org.example.x"), json=body)
            assert resp.status == 400, (bad, method, resp)
            assert resp.errcode == "M_INVALID_PARAM", resp
        resp = alice.req("PUT", alice.tpath(bad, "u.x"), json={})
        assert resp.status == 400 and resp.errcode == "M_INVALID_PARAM", resp


def test_room_data_for_unknown_room_is_stored(server):
    # Synapse stores room account data without looking at the room.
    alice = User(server)
    rid = f"!{unique('nowhere')}:{alice.user_id.split(':', 1)[1]}"
    alice.put_room(rid, "org.example.x", {"a": 1})
    assert alice.req("GET", alice.rpath(rid, "org.example.x")).json == {"a": 1}


# ---------------------------------------------------------------------------
# Tags
# ---------------------------------------------------------------------------

def test_tags_put_get_delete(server):
    alice = User(server)
    rid = alice.create_room()
    assert alice.tags(rid) == {}
    alice.put_tag(rid, "m.favourite", {"order": 0.1})
    alice.put_tag(rid, "u.Work", {"order": 0.7})
    alice.put_tag(rid, "u.Customers")
    alice.put_tag(rid, "u.Ends", {"order": 1})
    alice.put_tag(rid, "u.Starts", {"order": 0})
    assert alice.tags(rid) == {"m.favourite": {"order": 0.1},
                               "u.Work": {"order": 0.7},
                               "u.Customers": {},
                               "u.Ends": {"order": 1},
                               "u.Starts": {"order": 0}}
    # Re-tagging replaces that tag's object only.
    alice.put_tag(rid, "u.Work", {"order": 0.3, "org.example.extra": "kept"})
    assert alice.tags(rid)["u.Work"] == {"order": 0.3, "org.example.extra": "kept"}
    # Deleting one tag leaves the others.
    resp = alice.req("DELETE", alice.tpath(rid, "u.Work"))
    assert resp.status == 200 and resp.json == {}, resp
    tags = alice.tags(rid)
    assert "u.Work" not in tags and tags["m.favourite"] == {"order": 0.1}
    # Deleting a tag that is not there succeeds.
    resp = alice.req("DELETE", alice.tpath(rid, "u.NeverSet"))
    assert resp.status == 200 and resp.json == {}, resp
    for tag in ("m.favourite", "u.Customers", "u.Ends", "u.Starts"):
        assert alice.req("DELETE", alice.tpath(rid, tag)).status == 200
    assert alice.tags(rid) == {}


def test_tags_are_per_room_and_user(server):
    alice, bob = User(server), User(server)
    rid = alice.create_room(preset="public_chat")
    other = alice.create_room()
    bob.join(rid)
    alice.put_tag(rid, "m.lowpriority")
    bob.put_tag(rid, "m.favourite", {"order": 0.5})
    assert alice.tags(rid) == {"m.lowpriority": {}}
    assert bob.tags(rid) == {"m.favourite": {"order": 0.5}}
    assert alice.tags(other) == {}


def test_tags_are_the_m_tag_room_account_data(server):
    alice = User(server)
    rid = alice.create_room()
    alice.put_tag(rid, "m.favourite", {"order": 0.2})
    resp = alice.req("GET", alice.rpath(rid, "m.tag"))
    assert resp.status == 200, resp
    assert resp.json == {"tags": {"m.favourite": {"order": 0.2}}}
    # Writing m.tag as room account data sets the tags wholesale.
    alice.put_room(rid, "m.tag", {"tags": {"u.a": {}, "u.b": {"order": 0.9}}})
    assert alice.tags(rid) == {"u.a": {}, "u.b": {"order": 0.9}}
    # Malformed m.tag content reads as no tags, and tagging repairs it.
    alice.put_room(rid, "m.tag", {"tags": "nonsense"})
    assert alice.tags(rid) == {}
    alice.put_tag(rid, "u.c")
    assert alice.tags(rid) == {"u.c": {}}


def test_tag_order_validation(server):
    alice = User(server)
    rid = alice.create_room()
    for body in ({"order": "0.5"}, {"order": -0.1}, {"order": 1.5},
                 {"order": None}, {"order": [0.5]}, {"order": True}):
        resp = alice.req("PUT", alice.tpath(rid, "u.bad"), json=body)
        assert resp.status == 400, (body, resp)
        assert resp.errcode == "M_INVALID_PARAM", resp
    for body in (b"[0.5]", b"0.5"):
        resp = alice.req("PUT", alice.tpath(rid, "u.bad"), body=body)
        assert resp.status == 400, (body, resp)
        assert resp.errcode in ("M_BAD_JSON", "M_NOT_JSON"), resp
    resp = alice.req("PUT", alice.tpath(rid, "u.bad"), body=b"{oops")
    assert resp.status == 400 and resp.errcode == "M_NOT_JSON", resp
    assert alice.tags(rid) == {}
    # An empty body is the empty object: a tag without an order.
    resp = alice.req("PUT", alice.tpath(rid, "u.empty"), body=b"")
    assert resp.status == 200, resp
    assert alice.tags(rid) == {"u.empty": {}}


def test_tag_name_length(server):
    alice = User(server)
    rid = alice.create_room()
    resp = alice.req("PUT", alice.tpath(rid, "u." + "x" * 254), json={})
    assert resp.status == 400, resp
    assert resp.errcode == "M_INVALID_PARAM", resp
    # 255 bytes counted in UTF-8: 2 + 84 * 3 + 1 = 255.
    tag = "u." + "\u2603" * 84 + "x"
    assert len(tag.encode()) == 255
    alice.put_tag(rid, tag)
    assert alice.tags(rid) == {tag: {}}
    too_long = "u." + "\u2603" * 85
    resp = alice.req("PUT", alice.tpath(rid, too_long), json={})
    assert resp.status == 400 and resp.errcode == "M_INVALID_PARAM", resp


def test_tagging_needs_membership(server):
    alice, bob = User(server), User(server)
    rid = alice.create_room(preset="public_chat")
    resp = bob.req("PUT", bob.tpath(rid, "u.x"), json={})
    assert resp.status == 403 and resp.errcode == "M_FORBIDDEN", resp
    unknown = f"!{unique('nowhere')}:{alice.user_id.split(':', 1)[1]}"
    resp = alice.req("PUT", alice.tpath(unknown, "u.x"), json={})
    assert resp.status == 403 and resp.errcode == "M_FORBIDDEN", resp
    # Any membership will do: a room left can still be tagged.
    bob.join(rid)
    bob.leave(rid)
    bob.put_tag(rid, "u.old")
    assert bob.tags(rid) == {"u.old": {}}


def test_concurrent_tag_writes_lose_nothing(server):
    alice = User(server)
    rid = alice.create_room()
    errors = []

    def tag(i):
        try:
            resp = alice.req("PUT", alice.tpath(rid, f"u.t{i}"), json={"order": i / 20})
            if resp.status != 200:
                errors.append(resp)
        except Exception as exc:  # surfaced below
            errors.append(exc)
    threads = [threading.Thread(target=tag, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert alice.tags(rid) == {f"u.t{i}": {"order": i / 20} for i in range(16)}


# ---------------------------------------------------------------------------
# Through /sync (need the account data wiring in api/client/sync.c)
# ---------------------------------------------------------------------------

def events_of(section):
    return {e["type"]: e["content"] for e in section["events"]}


def room_account_data(body, rid):
    return events_of(body["rooms"]["join"][rid]["account_data"])


def test_sync_global_account_data(server):
    alice = User(server)
    alice.put_global("org.example.a", {"a": 1})
    alice.put_global("org.example.b", {"b": 1})
    alice.put_global("org.example.deleted", {"d": 1})
    alice.put_global("org.example.deleted", {})
    body = alice.sync()
    got = events_of(body["account_data"])
    assert got["org.example.a"] == {"a": 1} and got["org.example.b"] == {"b": 1}
    # Initial syncs leave deleted entries out.
    assert "org.example.deleted" not in got
    since = body["next_batch"]
    # Nothing changed: nothing repeated.
    body = alice.sync(since=since)
    assert body["account_data"]["events"] == []
    alice.put_global("org.example.b", {"b": 2})
    body = alice.sync(since=since)
    assert events_of(body["account_data"]) == {"org.example.b": {"b": 2}}
    since = body["next_batch"]
    # Deletion is delivered to incremental syncs as empty content.
    alice.put_global("org.example.a", {})
    body = alice.sync(since=since)
    assert events_of(body["account_data"]) == {"org.example.a": {}}
    assert "org.example.a" not in events_of(alice.sync()["account_data"])


def test_sync_room_account_data_and_tags(server):
    alice = User(server)
    rid, quiet = alice.create_room(), alice.create_room()
    alice.put_room(rid, "org.example.r", {"r": 1})
    alice.put_tag(rid, "m.favourite", {"order": 0.5})
    body = alice.sync()
    got = room_account_data(body, rid)
    assert got["org.example.r"] == {"r": 1}
    assert got["m.tag"] == {"tags": {"m.favourite": {"order": 0.5}}}
    assert body["rooms"]["join"][quiet]["account_data"]["events"] == []
    # Room data is not global data.
    assert "org.example.r" not in events_of(body["account_data"])
    since = body["next_batch"]
    # A room with nothing but an account data change appears.
    alice.put_tag(quiet, "u.later")
    body = alice.sync(since=since)
    assert quiet in body["rooms"]["join"], body
    assert room_account_data(body, quiet) == {"m.tag": {"tags": {"u.later": {}}}}
    assert rid not in body["rooms"]["join"]
    since = body["next_batch"]
    # Removing the last tag sends an empty tags object.
    resp = alice.req("DELETE", alice.tpath(quiet, "u.later"))
    assert resp.status == 200, resp
    body = alice.sync(since=since)
    assert room_account_data(body, quiet) == {"m.tag": {"tags": {}}}


def test_sync_wakes_on_account_data(server):
    alice = User(server)
    rid = alice.create_room()
    since = alice.sync()["next_batch"]

    def woken_by(since, change):
        """A long poll from `since`, answered by change(): its body."""
        join = in_thread(lambda: alice.sync(since=since, timeout=20000,
                                            http_timeout=60))
        time.sleep(0.5)
        change()
        body, took = join(30)
        assert took < 10, took
        return body

    body = woken_by(since, lambda: alice.put_global("org.example.wake", {"w": 1}))
    assert events_of(body["account_data"]) == {"org.example.wake": {"w": 1}}

    body = woken_by(body["next_batch"], lambda: alice.put_tag(rid, "u.wake"))
    assert room_account_data(body, rid) == {"m.tag": {"tags": {"u.wake": {}}}}


def test_sync_account_data_survives_restart(server):
    alice = User(server)
    alice.put_global("org.example.before", {"n": 1})
    since = alice.sync()["next_batch"]
    restart(server)
    assert alice.sync(since=since)["account_data"]["events"] == []
    alice.put_global("org.example.after", {"n": 2})
    body = alice.sync(since=since)
    assert events_of(body["account_data"]) == {"org.example.after": {"n": 2}}


def test_sync_nio_tag_callback(server):
    import nio
    alice = User(server)
    rid = alice.create_room()
    alice.put_tag(rid, "m.favourite", {"order": 0.25})

    async def scenario():
        client = nio_client(server, alice)
        tags = []

        async def on_tag(room, event):
            tags.append((room.room_id, event.tags))
        client.add_room_account_data_callback(on_tag, nio.TagEvent)
        try:
            resp = await client.sync(timeout=0)
            assert isinstance(resp, nio.SyncResponse), resp
            assert (rid, {"m.favourite": {"order": 0.25}}) in tags, tags
        finally:
            await client.close()

    asyncio.run(scenario())
