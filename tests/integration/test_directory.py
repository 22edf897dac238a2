"""Room aliases and the published room directory, seen from outside:
PUT/GET/DELETE /directory/room/{roomAlias}, GET /rooms/{roomId}/aliases,
the m.room.canonical_alias check on the state PUT path (M_BAD_ALIAS),
GET/PUT /directory/list/room/{roomId}, and GET/POST /publicRooms with
paging, filters and the `server` parameter. Good and bad inputs and the
permission failures of each; matrix-nio's directory helpers. Every test
runs on SQLite and on PostgreSQL."""

import asyncio

from test_accounts import make_admin
from test_rooms import V3, User, assert_error, nio_client, q, unique

R0 = "/_matrix/client/r0"


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

class Admin(User):
    """A server admin registered through the shared-secret admin API."""

    def __init__(self, server):  # pylint: disable=super-init-not-called
        self.server = server
        body = make_admin(server)
        self.user_id = body["user_id"]
        self.token = body["access_token"]
        self.device_id = body["device_id"]


def alias_of(server, name=None):
    return f"#{name or unique('a')}:{server.server_name}"


def put_alias(user, alias, room_id):
    return user.put(f"{V3}/directory/room/{q(alias)}", json={"room_id": room_id})


def put_alias_ok(user, alias, room_id):
    resp = put_alias(user, alias, room_id)
    assert resp.status == 200, resp
    assert resp.json == {}, resp


def get_alias(server, alias, prefix=V3):
    return server.get(f"{prefix}/directory/room/{q(alias)}")


def delete_alias(user, alias):
    return user.req("DELETE", f"{V3}/directory/room/{q(alias)}")


def local_aliases(user, room_id):
    return user.get(f"{V3}/rooms/{q(room_id)}/aliases")


def visibility(server, room_id, prefix=V3):
    return server.get(f"{prefix}/directory/list/room/{q(room_id)}")


def set_visibility(user, room_id, value=None):
    body = {} if value is None else {"visibility": value}
    return user.put(f"{V3}/directory/list/room/{q(room_id)}", json=body)


def public_rooms(srv, user=None, **params):
    query = "&".join(f"{k}={q(str(v))}" for k, v in params.items())
    path = f"{V3}/publicRooms" + (f"?{query}" if query else "")
    return user.get(path) if user else srv.get(path)


def guest(server):
    resp = server.post(f"{V3}/register?kind=guest", json={})
    assert resp.status == 200, resp
    return {"Authorization": f"Bearer {resp.json['access_token']}"}


# ---------------------------------------------------------------------------
# PUT/GET/DELETE /directory/room/{roomAlias}
# ---------------------------------------------------------------------------

def test_alias_create_resolve(server):
    alice, bob = User(server), User(server)
    admin = Admin(server)
    room_id = alice.create_room(preset="public_chat")
    alias = alias_of(server)

    put_alias_ok(alice, alias, room_id)
    # Resolving needs no access token; this server is the one to join via.
    for prefix in (V3, R0):
        resp = get_alias(server, alias, prefix)
        assert resp.status == 200, resp
        assert resp.json == {"room_id": room_id,
                             "servers": [server.server_name]}, resp
    # The alias works for joining.
    resp = bob.join(alias)
    assert resp.status == 200 and resp.json["room_id"] == room_id, resp

    # Taken: 409 M_UNKNOWN (spec), also for the same room and another user.
    assert_error(put_alias(alice, alias, room_id), 409, "M_UNKNOWN")
    assert_error(put_alias(bob, alias, room_id), 409, "M_UNKNOWN")

    # Aliases of other servers and malformed aliases.
    assert_error(put_alias(alice, "#x:other.example.org", room_id), 400,
                 "M_INVALID_PARAM")
    for bad in ("nosigil", "#nocolon", "#a:", "!room:" + server.server_name,
                "#" + "x" * 260 + ":" + server.server_name):
        assert_error(put_alias(alice, bad, room_id), 400, "M_INVALID_PARAM")

    # The body: room_id required, and a room ID.
    fresh = alias_of(server)
    path = f"{V3}/directory/room/{q(fresh)}"
    assert_error(alice.put(path, json={}), 400, "M_MISSING_PARAM")
    for bad in (12, None, "not-a-room", "#alias:x"):
        assert_error(alice.put(path, json={"room_id": bad}), 400,
                     "M_INVALID_PARAM")
    assert_error(alice.put(path, body=b"{nope"), 400, "M_NOT_JSON")

    # Only members create aliases; admins are exempt, and learn of
    # unknown rooms.
    carol = User(server)
    assert_error(put_alias(carol, fresh, room_id), 403, "M_FORBIDDEN")
    unknown_room = f"!nowhere:{server.server_name}"
    assert_error(put_alias(carol, fresh, unknown_room), 403, "M_FORBIDDEN")
    assert_error(put_alias(admin, fresh, unknown_room), 404, "M_NOT_FOUND")
    put_alias_ok(admin, fresh, room_id)
    # A member who left may no longer create one.
    assert bob.leave(room_id).status == 200
    assert_error(put_alias(bob, alias_of(server), room_id), 403, "M_FORBIDDEN")

    # Authentication: a token, and not a guest's.
    assert_error(server.put(path, json={"room_id": room_id}), 401,
                 "M_MISSING_TOKEN")
    assert_error(server.put(f"{V3}/directory/room/{q(alias_of(server))}",
                            json={"room_id": room_id}, headers=guest(server)),
                 403, "M_GUEST_ACCESS_FORBIDDEN")

    # Resolving what does not exist.
    assert_error(get_alias(server, alias_of(server)), 404, "M_NOT_FOUND")
    # Another server's alias is asked of that server, unreachable here.
    assert_error(get_alias(server, "#x:other.example.org"), 502, "M_UNKNOWN")
    assert_error(get_alias(server, "nosigil"), 400, "M_INVALID_PARAM")

    # An alias to a room the user created via createRoom is listed too.
    named = unique("named")
    other = alice.create_room(room_alias_name=named)
    resp = get_alias(server, alias_of(server, named))
    assert resp.status == 200 and resp.json["room_id"] == other, resp


def test_alias_delete_permissions(server):
    alice, bob, carol, dave = (User(server) for _ in range(4))
    admin = Admin(server)
    room_id = alice.create_room(preset="public_chat")
    assert bob.join(room_id).status == 200
    assert carol.join(room_id).status == 200

    # Alice (power 100) deletes an alias Bob created.
    by_bob = alias_of(server)
    put_alias_ok(bob, by_bob, room_id)
    assert delete_alias(alice, by_bob).status == 200
    assert_error(get_alias(server, by_bob), 404, "M_NOT_FOUND")

    # The creator may delete their alias without any power.
    by_bob = alias_of(server)
    put_alias_ok(bob, by_bob, room_id)
    resp = delete_alias(bob, by_bob)
    assert resp.status == 200 and resp.json == {}, resp

    # Without power, someone else's alias stays; outsiders neither.
    by_alice = alias_of(server)
    put_alias_ok(alice, by_alice, room_id)
    assert_error(delete_alias(carol, by_alice), 403, "M_FORBIDDEN")
    assert_error(delete_alias(dave, by_alice), 403, "M_FORBIDDEN")
    assert get_alias(server, by_alice).status == 200

    # Power to send m.room.canonical_alias is what counts.
    pl = alice.state_content(room_id, "m.room.power_levels")
    pl["users"][carol.user_id] = pl["events"]["m.room.canonical_alias"]
    assert alice.put_state(room_id, "m.room.power_levels", pl).status == 200
    assert delete_alias(carol, by_alice).status == 200

    # A server admin outside the room may delete any alias.
    by_alice = alias_of(server)
    put_alias_ok(alice, by_alice, room_id)
    assert delete_alias(admin, by_alice).status == 200
    assert_error(get_alias(server, by_alice), 404, "M_NOT_FOUND")

    # Unknown, remote and malformed aliases; a missing token.
    assert_error(delete_alias(alice, by_alice), 404, "M_NOT_FOUND")
    assert_error(delete_alias(alice, "#x:other.example.org"), 404,
                 "M_NOT_FOUND")
    assert_error(delete_alias(alice, "nosigil"), 400, "M_INVALID_PARAM")
    assert_error(server.request("DELETE",
                                f"{V3}/directory/room/{q(alias_of(server))}"),
                 401, "M_MISSING_TOKEN")


def test_delete_updates_canonical_alias(server):
    alice, bob = User(server), User(server)
    admin = Admin(server)
    name = unique("main")
    room_id = alice.create_room(preset="public_chat", room_alias_name=name)
    main = alias_of(server, name)
    alt1, alt2 = alias_of(server), alias_of(server)
    put_alias_ok(alice, alt1, room_id)
    put_alias_ok(alice, alt2, room_id)
    content = {"alias": main, "alt_aliases": [alt1, alt2]}
    assert alice.put_state(room_id, "m.room.canonical_alias",
                           content).status == 200

    # Deleting an alt alias drops it from the event.
    assert delete_alias(alice, alt1).status == 200
    assert alice.state_content(room_id, "m.room.canonical_alias") == \
        {"alias": main, "alt_aliases": [alt2]}
    # Deleting the main alias drops "alias".
    assert delete_alias(alice, main).status == 200
    assert alice.state_content(room_id, "m.room.canonical_alias") == \
        {"alt_aliases": [alt2]}

    # An admin outside the room deletes the alias; the event stays as it
    # was (they may not send it), and the answer is still success.
    assert delete_alias(admin, alt2).status == 200
    assert_error(get_alias(server, alt2), 404, "M_NOT_FOUND")
    assert alice.state_content(room_id, "m.room.canonical_alias") == \
        {"alt_aliases": [alt2]}
    # An alias already in the event is not checked again (spec), even
    # though it no longer points anywhere.
    resp = alice.put_state(room_id, "m.room.canonical_alias",
                           {"alt_aliases": [alt2], "note": "kept"})
    assert resp.status == 200, resp

    # A member's own alias, deleted without the power to send the event:
    # the alias goes, the event stays.
    assert bob.join(room_id).status == 200
    by_bob = alias_of(server)
    put_alias_ok(bob, by_bob, room_id)
    assert alice.put_state(room_id, "m.room.canonical_alias",
                           {"alias": by_bob}).status == 200
    assert delete_alias(bob, by_bob).status == 200
    assert alice.state_content(room_id, "m.room.canonical_alias") == \
        {"alias": by_bob}


# ---------------------------------------------------------------------------
# GET /rooms/{roomId}/aliases
# ---------------------------------------------------------------------------

def test_room_local_aliases(server):
    alice, bob, outsider = User(server), User(server), User(server)
    admin = Admin(server)
    room_id = alice.create_room(preset="public_chat")

    resp = local_aliases(alice, room_id)
    assert resp.status == 200 and resp.json == {"aliases": []}, resp

    made = sorted(alias_of(server) for _ in range(3))
    for a in made:
        put_alias_ok(alice, a, room_id)
    other_room = alice.create_room()
    put_alias_ok(alice, alias_of(server), other_room)

    resp = local_aliases(alice, room_id)
    assert resp.status == 200 and sorted(resp.json["aliases"]) == made, resp
    assert alice.get(f"{R0}/rooms/{q(room_id)}/aliases").status == 200

    # Members only; admins too; unknown rooms look like closed ones.
    assert_error(local_aliases(outsider, room_id), 403, "M_FORBIDDEN")
    assert bob.join(room_id).status == 200
    assert sorted(local_aliases(bob, room_id).json["aliases"]) == made
    assert bob.leave(room_id).status == 200
    assert_error(local_aliases(bob, room_id), 403, "M_FORBIDDEN")
    resp = local_aliases(admin, room_id)
    assert resp.status == 200 and sorted(resp.json["aliases"]) == made, resp
    assert_error(local_aliases(alice, f"!nowhere:{server.server_name}"), 403,
                 "M_FORBIDDEN")
    assert_error(local_aliases(alice, "not-a-room"), 400, "M_INVALID_PARAM")
    assert_error(server.get(f"{V3}/rooms/{q(room_id)}/aliases"), 401,
                 "M_MISSING_TOKEN")

    # world_readable history opens the list to anyone.
    assert alice.put_state(room_id, "m.room.history_visibility",
                           {"history_visibility": "world_readable"}
                           ).status == 200
    resp = local_aliases(outsider, room_id)
    assert resp.status == 200 and sorted(resp.json["aliases"]) == made, resp


# ---------------------------------------------------------------------------
# m.room.canonical_alias validation
# ---------------------------------------------------------------------------

def test_canonical_alias_validation(server):
    alice, bob = User(server), User(server)
    name = unique("main")
    room_id = alice.create_room(preset="public_chat", room_alias_name=name)
    main = alias_of(server, name)
    other_room = alice.create_room(preset="public_chat")
    elsewhere = alias_of(server)
    put_alias_ok(alice, elsewhere, other_room)
    alt = alias_of(server)
    put_alias_ok(alice, alt, room_id)

    def put(content, user=alice, key=""):
        return user.put_state(room_id, "m.room.canonical_alias", content, key)

    # New aliases must exist here and point to this room.
    for content in ({"alias": alias_of(server)},
                    {"alias": elsewhere},
                    {"alias": main, "alt_aliases": [alt, elsewhere]},
                    {"alt_aliases": [alias_of(server)]},
                    {"alias": "#x:other.example.org"}):
        assert_error(put(content), 400, "M_BAD_ALIAS")
    # Malformed aliases and alt_aliases.
    for content in ({"alias": "nosigil"}, {"alias": 5},
                    {"alt_aliases": "#a:b"}, {"alt_aliases": [7]},
                    {"alt_aliases": ["#nocolon"]}, {"alt_aliases": {}}):
        assert_error(put(content), 400, "M_INVALID_PARAM")
    assert alice.state_content(room_id, "m.room.canonical_alias") == \
        {"alias": main}

    # Good updates: alias and alt_aliases of this room, removal, nulls.
    resp = put({"alias": main, "alt_aliases": [alt]})
    assert resp.status == 200 and resp.json["event_id"].startswith("$"), resp
    assert alice.state_content(room_id, "m.room.canonical_alias") == \
        {"alias": main, "alt_aliases": [alt]}
    assert put({"alias": None, "alt_aliases": None}).status == 200
    assert put({}).status == 200
    assert put({"alias": alt}).status == 200

    # Other state keys are checked against their own current event.
    assert_error(put({"alias": elsewhere}, key="odd"), 400, "M_BAD_ALIAS")
    assert put({"alias": alt}, key="odd").status == 200

    # A sender the auth rules refuse gets that refusal.
    assert_error(put({"alias": elsewhere}, user=bob), 403, "M_FORBIDDEN")
    assert bob.join(room_id).status == 200
    assert_error(put({"alias": main}, user=bob), 403, "M_FORBIDDEN")
    assert_error(put({"alias": elsewhere}, user=bob), 403, "M_FORBIDDEN")

    # Other event types are not looked at.
    assert alice.put_state(room_id, "org.example.aliases",
                           {"alias": elsewhere}).status == 200


# ---------------------------------------------------------------------------
# GET/PUT /directory/list/room/{roomId}
# ---------------------------------------------------------------------------

def test_directory_visibility(server):
    alice, bob, outsider = User(server), User(server), User(server)
    admin = Admin(server)
    private = alice.create_room(preset="public_chat")
    listed = alice.create_room(visibility="public")

    # Reading needs no token.
    for prefix in (V3, R0):
        resp = visibility(server, private, prefix)
        assert resp.status == 200 and resp.json == {"visibility": "private"}
        resp = visibility(server, listed, prefix)
        assert resp.status == 200 and resp.json == {"visibility": "public"}

    assert set_visibility(alice, private, "public").status == 200
    assert visibility(server, private).json == {"visibility": "public"}
    resp = set_visibility(alice, private, "private")
    assert resp.status == 200 and resp.json == {}, resp
    assert visibility(server, private).json == {"visibility": "private"}
    # The body's visibility defaults to public; repeating is fine.
    assert set_visibility(alice, private).status == 200
    assert set_visibility(alice, private).status == 200
    assert visibility(server, private).json == {"visibility": "public"}
    assert set_visibility(alice, private, "private").status == 200

    for bad in ("hidden", "", 1, None):
        assert_error(set_visibility(alice, private, bad) if bad is not None
                     else alice.put(f"{V3}/directory/list/room/{q(private)}",
                                    json={"visibility": None}),
                     400, "M_INVALID_PARAM")

    # Permissions: outsiders, members without power, admins.
    assert_error(set_visibility(outsider, private, "public"), 403,
                 "M_FORBIDDEN")
    assert bob.join(private).status == 200
    assert_error(set_visibility(bob, private, "public"), 403, "M_FORBIDDEN")
    pl = alice.state_content(private, "m.room.power_levels")
    pl["users"][bob.user_id] = 50
    assert alice.put_state(private, "m.room.power_levels", pl).status == 200
    assert set_visibility(bob, private, "public").status == 200
    assert set_visibility(admin, private, "private").status == 200
    assert visibility(server, private).json == {"visibility": "private"}

    # Unknown and malformed rooms; tokens.
    nowhere = f"!nowhere:{server.server_name}"
    assert_error(visibility(server, nowhere), 404, "M_NOT_FOUND")
    assert_error(set_visibility(alice, nowhere, "public"), 404, "M_NOT_FOUND")
    assert_error(visibility(server, "not-a-room"), 400, "M_INVALID_PARAM")
    assert_error(set_visibility(alice, "not-a-room", "public"), 400,
                 "M_INVALID_PARAM")
    assert_error(server.put(f"{V3}/directory/list/room/{q(private)}",
                            json={"visibility": "public"}), 401,
                 "M_MISSING_TOKEN")
    assert_error(server.put(f"{V3}/directory/list/room/{q(private)}",
                            json={"visibility": "public"},
                            headers=guest(server)),
                 403, "M_GUEST_ACCESS_FORBIDDEN")


# ---------------------------------------------------------------------------
# GET/POST /publicRooms
# ---------------------------------------------------------------------------

def all_pages(fetch, limit):
    """Pages with next_batch until it is absent; returns (rooms, pages)."""
    rooms, pages, since = [], [], None
    while True:
        resp = fetch(limit, since)
        assert resp.status == 200, resp
        assert len(resp.json["chunk"]) <= limit, resp
        pages.append(resp.json)
        rooms.extend(c["room_id"] for c in resp.json["chunk"])
        assert len(pages) < 50, "pagination does not terminate"
        if "next_batch" not in resp.json:
            return rooms, pages
        since = resp.json["next_batch"]


def test_public_rooms(server):
    users = [User(server) for _ in range(4)]
    alice = users[0]

    def room_with(n_members, **body):
        rid = alice.create_room(**body)
        for u in users[1:n_members]:
            assert u.join(rid).status == 200, rid
        return rid

    alpha = room_with(3, visibility="public", name="Alpha Cheese",
                      topic="tasty")
    bravo = room_with(2, visibility="public", name="Bravo",
                      topic="All about CHEESE")
    cheddar_name = unique("cheddar")
    cheddar = room_with(1, visibility="public", room_alias_name=cheddar_name)
    space = room_with(1, visibility="public", name="A space",
                      creation_content={"type": "m.space"})
    # Published but invite-only: left out; unless world_readable.
    hidden = alice.create_room(visibility="public", preset="private_chat")
    readable = alice.create_room(visibility="public", preset="private_chat",
                                 name="Readable")
    assert alice.put_state(readable, "m.room.history_visibility",
                           {"history_visibility": "world_readable"}
                           ).status == 200
    # Public join rule but not published.
    alice.create_room(preset="public_chat", name="Alpha unlisted")
    assert alice.put_state(alpha, "m.room.avatar",
                           {"url": "mxc://example.org/abc"}).status == 200

    ones = sorted([cheddar, space, readable])
    expected = [alpha, bravo] + ones

    resp = public_rooms(server)
    assert resp.status == 200, resp
    body = resp.json
    assert [c["room_id"] for c in body["chunk"]] == expected, body
    assert body["total_room_count_estimate"] == 5
    assert "next_batch" not in body and "prev_batch" not in body, body
    assert hidden not in [c["room_id"] for c in body["chunk"]]

    chunks = {c["room_id"]: c for c in body["chunk"]}
    assert chunks[alpha] == {
        "room_id": alpha, "num_joined_members": 3, "name": "Alpha Cheese",
        "topic": "tasty", "world_readable": False, "guest_can_join": False,
        "join_rule": "public", "avatar_url": "mxc://example.org/abc"}
    assert chunks[bravo]["num_joined_members"] == 2
    assert chunks[cheddar]["canonical_alias"] == \
        alias_of(server, cheddar_name)
    assert "name" not in chunks[cheddar] and "topic" not in chunks[cheddar]
    assert chunks[space]["room_type"] == "m.space"
    assert "room_type" not in chunks[alpha]
    assert chunks[readable]["world_readable"] is True
    assert chunks[readable]["join_rule"] == "invite"
    assert chunks[readable]["guest_can_join"] is True  # private_chat preset

    # Authenticated, guests, r0, POST with an empty body: the same list.
    assert [c["room_id"] for c in public_rooms(server, alice).json["chunk"]] \
        == expected
    resp = server.get(f"{V3}/publicRooms", headers=guest(server))
    assert resp.status == 200 and len(resp.json["chunk"]) == 5, resp
    assert len(server.get(f"{R0}/publicRooms").json["chunk"]) == 5
    resp = alice.post(f"{V3}/publicRooms", json={})
    assert resp.status == 200, resp
    assert [c["room_id"] for c in resp.json["chunk"]] == expected
    assert_error(server.post(f"{V3}/publicRooms", json={}), 401,
                 "M_MISSING_TOKEN")

    # Paging, GET and POST: every room once, in order, with prev_batch
    # leading back.
    def get_page(limit, since):
        params = {"limit": limit}
        if since:
            params["since"] = since
        return public_rooms(server, **params)

    def post_page(limit, since):
        body = {"limit": limit}
        if since:
            body["since"] = since
        return alice.post(f"{V3}/publicRooms", json=body)

    for fetch in (get_page, post_page):
        rooms, pages = all_pages(fetch, 2)
        assert rooms == expected
        assert len(pages) == 3
        assert "prev_batch" not in pages[0]
        for page in pages:
            assert page["total_room_count_estimate"] == 5
        back = fetch(2, pages[2]["prev_batch"]).json
        assert back["chunk"] == pages[1]["chunk"], back
        first = fetch(2, pages[1]["prev_batch"]).json
        assert first["chunk"] == pages[0]["chunk"], first
    # limit=0 (GET) means no limit; past the end, an empty chunk.
    assert len(public_rooms(server, limit=0).json["chunk"]) == 5
    resp = public_rooms(server, limit=2, since="o10")
    assert resp.status == 200 and resp.json["chunk"] == [], resp
    assert "next_batch" not in resp.json

    # The generic search term: case-insensitive, name/topic/alias.
    def search(term, **extra):
        body = {"filter": {"generic_search_term": term}}
        body.update(extra)
        resp = alice.post(f"{V3}/publicRooms", json=body)
        assert resp.status == 200, resp
        return resp.json

    found = search("cheese")
    assert [c["room_id"] for c in found["chunk"]] == [alpha, bravo], found
    assert found["total_room_count_estimate"] == 2
    assert [c["room_id"] for c in search("CHEDDAR")["chunk"]] == [cheddar]
    assert search("no such room")["chunk"] == []
    assert [c["room_id"] for c in search("")["chunk"]] == expected
    paged = search("cheese", limit=1)
    assert [c["room_id"] for c in paged["chunk"]] == [alpha]
    assert [c["room_id"] for c in
            search("cheese", limit=1, since=paged["next_batch"])["chunk"]] \
        == [bravo]

    # Room types.
    def typed(types):
        resp = alice.post(f"{V3}/publicRooms",
                          json={"filter": {"room_types": types}})
        assert resp.status == 200, resp
        return [c["room_id"] for c in resp.json["chunk"]]

    assert typed(["m.space"]) == [space]
    assert typed([None]) == [r for r in expected if r != space]
    assert typed([None, "m.space"]) == expected
    assert typed([]) == []

    # Networks: all networks is ours; a third-party network has no rooms.
    resp = alice.post(f"{V3}/publicRooms", json={"include_all_networks": True})
    assert [c["room_id"] for c in resp.json["chunk"]] == expected
    resp = alice.post(f"{V3}/publicRooms",
                      json={"third_party_instance_id": "irc-freenode"})
    assert resp.status == 200 and resp.json["chunk"] == [], resp
    assert_error(alice.post(f"{V3}/publicRooms",
                            json={"include_all_networks": True,
                                  "third_party_instance_id": "irc"}),
                 400, "M_INVALID_PARAM")

    # Unpublishing removes a room.
    assert set_visibility(alice, bravo, "private").status == 200
    assert bravo not in [c["room_id"] for c in public_rooms(server).json["chunk"]]


def test_public_rooms_bad_input_and_server(server):
    alice = User(server)
    rid = alice.create_room(visibility="public", name="Only")

    for params in ({"limit": -1}, {"limit": "abc"}, {"limit": ""},
                   {"since": "garbage"}, {"since": "o-1"}, {"since": "o"}):
        assert_error(public_rooms(server, **params), 400, "M_INVALID_PARAM")
    for body in ({"limit": "5"}, {"limit": -2}, {"limit": 1.5},
                 {"since": 5}, {"since": "x1"}, {"filter": "cheese"},
                 {"filter": {"generic_search_term": 5}},
                 {"filter": {"room_types": "m.space"}},
                 {"filter": {"room_types": [5]}},
                 {"include_all_networks": "yes"},
                 {"third_party_instance_id": 5}):
        assert_error(alice.post(f"{V3}/publicRooms", json=body), 400,
                     "M_INVALID_PARAM")
    assert_error(alice.req("POST", f"{V3}/publicRooms", body=b"[1]"), 400,
                 "M_BAD_JSON")
    # Nulls count as absent.
    resp = alice.post(f"{V3}/publicRooms",
                      json={"limit": None, "since": None, "filter": None,
                            "third_party_instance_id": None})
    assert resp.status == 200 and len(resp.json["chunk"]) == 1, resp

    # `server`: this server's name lists locally; another server is asked
    # over federation (needs a token; one that cannot be reached: 502;
    # test_fed_public.py covers real ones).
    resp = public_rooms(server, server=server.server_name)
    assert resp.status == 200 and resp.json["chunk"][0]["room_id"] == rid
    resp = alice.post(f"{V3}/publicRooms?server={q(server.server_name)}",
                      json={})
    assert resp.status == 200 and len(resp.json["chunk"]) == 1, resp
    assert_error(public_rooms(server, server="other.example.org"), 401,
                 "M_MISSING_TOKEN")
    assert_error(public_rooms(server, alice, server="other.example.org"), 502,
                 "M_UNKNOWN")
    assert_error(alice.post(f"{V3}/publicRooms?server=other.example.org",
                            json={}), 502, "M_UNKNOWN")
    assert_error(public_rooms(server, alice, server="bad name!"), 400,
                 "M_INVALID_PARAM")
    # A bad token is refused even though none is needed.
    assert_error(server.get(f"{V3}/publicRooms",
                            headers={"Authorization": "Bearer nope"}),
                 401, "M_UNKNOWN_TOKEN")


# ---------------------------------------------------------------------------
# matrix-nio
# ---------------------------------------------------------------------------

def test_nio_directory(server):
    import nio

    alice, bob = User(server), User(server)
    room_id = alice.create_room(preset="public_chat")
    alias, alt = alias_of(server), alias_of(server)

    async def go():
        a = nio_client(server, alice)
        b = nio_client(server, bob)
        try:
            resp = await a.room_put_alias(alias, room_id)
            assert isinstance(resp, nio.responses.RoomPutAliasResponse), resp
            resp = await b.room_resolve_alias(alias)
            assert isinstance(resp, nio.responses.RoomResolveAliasResponse), resp
            assert resp.room_id == room_id
            assert resp.servers == [server.server_name]
            # nio 0.20 parses every answer to this call as a success, so
            # the refusal shows only in the HTTP status.
            resp = await b.room_put_alias(alias_of(server), room_id)
            assert resp.transport_response.status == 403, resp

            resp = await a.room_get_visibility(room_id)
            assert isinstance(resp, nio.responses.RoomGetVisibilityResponse), resp
            assert resp.visibility == "private"

            # Canonical alias through nio's helper (puts the aliases, then
            # the state event).
            resp = await a.room_update_aliases(room_id, alias, [alt])
            assert isinstance(resp, nio.responses.RoomUpdateAliasResponse), resp
            resp = await a.room_get_state_event(room_id,
                                                "m.room.canonical_alias")
            assert resp.content == {"alias": alias, "alt_aliases": [alt]}
            # A bad alias is refused with M_BAD_ALIAS.
            resp = await a.room_put_state(
                room_id, "m.room.canonical_alias",
                {"alias": alias_of(server)})
            assert isinstance(resp, nio.RoomPutStateError), resp
            assert resp.status_code == "M_BAD_ALIAS"

            resp = await a.room_delete_alias(alt)
            assert isinstance(resp, nio.responses.RoomDeleteAliasResponse), resp
            resp = await b.room_resolve_alias(alt)
            assert isinstance(resp, nio.responses.RoomResolveAliasError), resp
            assert resp.status_code == "M_NOT_FOUND"
            resp = await a.room_get_state_event(room_id,
                                                "m.room.canonical_alias")
            assert resp.content == {"alias": alias}
        finally:
            await a.close()
            await b.close()

    asyncio.run(go())
