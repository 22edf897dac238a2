"""Public rooms and space hierarchies across servers (Server-Server API
"Public Room Directory" and "Spaces"): hs1's published rooms listed
through hs2's client API with ?server=hs1 (GET and POST, search filter,
paging tokens, hs2's own rooms kept apart), the federation GET/POST
/publicRooms as a signed FedPeer sees them (networks, bad arguments,
unsigned requests), another server's bad or missing answers (502), and
GET /hierarchy/{roomId} for a peer: children it may and may not see,
suggested_only, restricted rooms opened by joining the space, rooms
unknown here left out, 404 for private or unknown spaces and the server
ACL. Runs on SQLite and PostgreSQL."""

import json
import socket

import pytest

import harness
from fedpeer import FedPeer, quote
from test_rooms import V3, assert_error, q
from test_sync import User

FED = "/_matrix/federation/v1"


@pytest.fixture
def peers(test_ca):
    made = []

    def make():
        p = FedPeer(test_ca)
        made.append(p)
        return p
    yield make
    for p in made:
        p.close()


def ids(chunk):
    return [c["room_id"] for c in chunk]


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def remote_list(user, server, **params):
    params["server"] = server.server_name
    query = "&".join(f"{k}={q(str(v))}" for k, v in params.items())
    return user.get(f"{V3}/publicRooms?{query}")


def remote_post(user, server, body):
    return user.post(f"{V3}/publicRooms?server={q(server.server_name)}", json=body)


def test_public_rooms_through_other_server(federation):
    hs1, hs2 = federation(2)
    alice, bob = User(hs1), User(hs2)
    cheese = alice.create_room(visibility="public", preset="public_chat",
                               name="Cheese Lovers", topic="all about cheddar")
    others = [alice.create_room(visibility="public", preset="public_chat",
                                name=f"Room {i}") for i in range(3)]
    alice.create_room(preset="public_chat", name="Cheese unlisted")
    mine = bob.create_room(visibility="public", preset="public_chat", name="Cheese on hs2")

    local = alice.get(f"{V3}/publicRooms")
    assert local.status == 200, local
    assert sorted(ids(local.json["chunk"])) == sorted([cheese] + others)

    # GET ?server=hs1 through hs2: hs1's own listing, passed through.
    resp = remote_list(bob, hs1)
    assert resp.status == 200, resp
    assert resp.json == local.json, resp
    assert mine not in ids(resp.json["chunk"])
    # hs2's local listing is still its own.
    resp = bob.get(f"{V3}/publicRooms")
    assert resp.status == 200 and ids(resp.json["chunk"]) == [mine], resp
    resp = remote_list(bob, hs2)  # ?server= naming itself: local
    assert resp.status == 200 and ids(resp.json["chunk"]) == [mine], resp

    # POST with a search filter.
    resp = remote_post(bob, hs1, {"filter": {"generic_search_term": "CHEESE"}})
    assert resp.status == 200, resp
    assert ids(resp.json["chunk"]) == [cheese], resp
    chunk = resp.json["chunk"][0]
    assert chunk["name"] == "Cheese Lovers" and chunk["topic"] == "all about cheddar"
    assert chunk["num_joined_members"] == 1 and chunk["join_rule"] == "public"
    resp = remote_post(bob, hs1, {"filter": {"generic_search_term": "no such room"}})
    assert resp.status == 200 and resp.json["chunk"] == [], resp

    # Paging with hs1's tokens, GET and POST: every room once.
    for post in (False, True):
        seen, since, pages = [], None, 0
        while True:
            if post:
                body = {"limit": 2}
                if since:
                    body["since"] = since
                resp = remote_post(bob, hs1, body)
            else:
                params = {"limit": 2}
                if since:
                    params["since"] = since
                resp = remote_list(bob, hs1, **params)
            assert resp.status == 200, resp
            assert len(resp.json["chunk"]) <= 2
            assert resp.json["total_room_count_estimate"] == 4
            seen += ids(resp.json["chunk"])
            pages += 1
            if pages > 1:
                assert "prev_batch" in resp.json, resp
            since = resp.json.get("next_batch")
            if not since:
                break
            assert pages < 10
        assert pages == 2
        assert seen == ids(local.json["chunk"]), (post, seen)

    # hs1 refuses a token it did not make: its 400 comes through.
    assert_error(remote_list(bob, hs1, since="bogus"), 400, "M_INVALID_PARAM")
    assert_error(remote_post(bob, hs1, {"limit": "ten"}), 400, "M_INVALID_PARAM")
    # Another server's listing needs an access token.
    assert_error(hs2.get(f"{V3}/publicRooms?server={q(hs1.server_name)}"), 401,
                 "M_MISSING_TOKEN")


def test_federation_public_rooms_endpoint(federation, test_ca, peers):
    (hs1,) = federation(1)
    alice = User(hs1)
    rooms = sorted(alice.create_room(visibility="public", preset="public_chat",
                                     name=f"Topic {i}") for i in range(3))
    space = alice.create_room(visibility="public", preset="public_chat", name="A space",
                              creation_content={"type": "m.space"})
    peer = peers()
    ctx = test_ca.client_context()

    def get(uri):
        return peer.request(hs1, "GET", uri, ssl_context=ctx)

    def post(body):
        return peer.request(hs1, "POST", f"{FED}/publicRooms", body, ssl_context=ctx)

    resp = get(f"{FED}/publicRooms")
    assert resp.status == 200, resp
    assert sorted(ids(resp.json["chunk"])) == sorted(rooms + [space])
    assert resp.json["total_room_count_estimate"] == 4
    first = get(f"{FED}/publicRooms?limit=3")
    assert first.status == 200 and len(first.json["chunk"]) == 3, first
    rest = get(f"{FED}/publicRooms?limit=3&since={quote(first.json['next_batch'])}")
    assert rest.status == 200 and len(rest.json["chunk"]) == 1, rest
    assert "next_batch" not in rest.json and "prev_batch" in rest.json
    assert ids(first.json["chunk"] + rest.json["chunk"]) == ids(resp.json["chunk"])

    # Networks: all of them is ours; a third-party network has nothing.
    resp = get(f"{FED}/publicRooms?include_all_networks=true")
    assert resp.status == 200 and len(resp.json["chunk"]) == 4, resp
    resp = get(f"{FED}/publicRooms?third_party_instance_id=irc")
    assert resp.status == 200 and resp.json["chunk"] == [], resp
    assert_error(get(f"{FED}/publicRooms?include_all_networks=true&third_party_instance_id=irc"),
                 400, "M_INVALID_PARAM")
    assert_error(get(f"{FED}/publicRooms?limit=-1"), 400, "M_INVALID_PARAM")
    assert_error(get(f"{FED}/publicRooms?since=zzz"), 400, "M_INVALID_PARAM")

    # POST: filters, room types, paging.
    resp = post({"filter": {"generic_search_term": "topic 1"}})
    assert resp.status == 200, resp
    assert [c["name"] for c in resp.json["chunk"]] == ["Topic 1"]
    resp = post({"filter": {"room_types": ["m.space"]}})
    assert resp.status == 200 and ids(resp.json["chunk"]) == [space], resp
    resp = post({"limit": 1, "filter": {"room_types": [None]}})
    assert resp.status == 200 and len(resp.json["chunk"]) == 1, resp
    resp = post({"limit": 1, "since": resp.json["next_batch"], "filter": {"room_types": [None]}})
    assert resp.status == 200 and len(resp.json["chunk"]) == 1, resp
    assert resp.json["total_room_count_estimate"] == 3
    resp = post({"third_party_instance_id": "irc"})
    assert resp.status == 200 and resp.json["chunk"] == [], resp
    assert_error(post({"filter": "cheese"}), 400, "M_INVALID_PARAM")
    assert_error(post({"include_all_networks": True, "third_party_instance_id": "irc"}),
                 400, "M_INVALID_PARAM")

    # Unsigned requests are refused.
    resp = harness.http_request(hs1.federation_url, "GET", f"{FED}/publicRooms",
                                ssl_context=ctx)
    assert resp.status == 401, resp


def test_remote_directory_failures(federation, test_ca, peers):
    (hs2,) = federation(1)
    bob = User(hs2)
    # Nobody listening: 502.
    dead = f"127.0.0.1:{closed_port()}"
    for resp in (bob.get(f"{V3}/publicRooms?server={q(dead)}"),
                 bob.post(f"{V3}/publicRooms?server={q(dead)}", json={})):
        assert_error(resp, 502, "M_UNKNOWN")

    # A scripted server: its answer is passed through, with the client's
    # arguments, when it is an object with a chunk list.
    peer = peers()
    listing = {"chunk": [{"room_id": "!r:" + peer.server_name, "num_joined_members": 7,
                          "world_readable": False, "guest_can_join": False}],
               "next_batch": "their-token", "total_room_count_estimate": 9}
    peer.routes[("GET", f"{FED}/publicRooms")] = (200, listing)
    peer.routes[("POST", f"{FED}/publicRooms")] = (200, listing)
    resp = bob.get(f"{V3}/publicRooms?server={q(peer.server_name)}&limit=5&since=abc%2Fd")
    assert resp.status == 200 and resp.json == listing, resp
    method, path, headers, _ = peer.requests[-1]
    assert method == "GET" and path == f"{FED}/publicRooms?limit=5&since=abc%2Fd", path
    assert headers["Authorization"].startswith("X-Matrix "), headers
    resp = bob.post(f"{V3}/publicRooms?server={q(peer.server_name)}",
                    json={"limit": 3, "filter": {"generic_search_term": "x"}, "junk": 1})
    assert resp.status == 200 and resp.json == listing, resp
    method, path, _, body = peer.requests[-1]
    assert method == "POST" and path == f"{FED}/publicRooms"
    assert json.loads(body) == {"limit": 3, "filter": {"generic_search_term": "x"}}

    # Answers that are not a directory: 502; its refusals keep their code.
    for bad in ({"rooms": []}, {"chunk": "no"}):
        peer.routes[("GET", f"{FED}/publicRooms")] = (200, bad)
        assert_error(bob.get(f"{V3}/publicRooms?server={q(peer.server_name)}"), 502, "M_UNKNOWN")
    peer.routes[("GET", f"{FED}/publicRooms")] = (500, {"errcode": "M_UNKNOWN", "error": "x"})
    assert_error(bob.get(f"{V3}/publicRooms?server={q(peer.server_name)}"), 502, "M_UNKNOWN")
    peer.routes[("GET", f"{FED}/publicRooms")] = (403, {"errcode": "M_FORBIDDEN",
                                                         "error": "not for you"})
    assert_error(bob.get(f"{V3}/publicRooms?server={q(peer.server_name)}"), 403, "M_FORBIDDEN")


def child(user, space, room_id, via, suggested=False, order=None):
    content = {"via": [via]}
    if suggested:
        content["suggested"] = True
    if order:
        content["order"] = order
    user.put_state(space, "m.space.child", content, state_key=room_id)


def test_space_hierarchy_for_servers(federation, test_ca, peers):
    (hs1,) = federation(1)
    alice = User(hs1)
    me = hs1.server_name
    space = alice.create_room(preset="public_chat", name="The Space", topic="space topic",
                              creation_content={"type": "m.space"})
    public = alice.create_room(preset="public_chat", name="Public child")
    private = alice.create_room(preset="private_chat", name="Private child")
    readable = alice.create_room(preset="private_chat", name="Readable child")
    alice.put_state(readable, "m.room.history_visibility",
                           {"history_visibility": "world_readable"})
    restricted = alice.create_room(
        preset="private_chat", name="Restricted child",
        initial_state=[{"type": "m.room.join_rules", "state_key": "",
                        "content": {"join_rule": "restricted",
                                    "allow": [{"type": "m.room_membership",
                                               "room_id": space}]}}])
    subspace = alice.create_room(preset="public_chat", name="Sub",
                                 creation_content={"type": "m.space"})
    unknown = f"!nowhere:{me}"
    child(alice, space, public, me, suggested=True, order="a")
    child(alice, space, private, me)
    child(alice, space, readable, me, suggested=True, order="b")
    child(alice, space, restricted, me)
    child(alice, space, subspace, me, order="c")
    child(alice, space, unknown, me, suggested=True)
    child(alice, subspace, public, me)
    # A child without via is removed: not listed.
    alice.put_state(space, "m.space.child", {}, state_key=private + "x")

    peer = peers()
    ctx = test_ca.client_context()

    def hierarchy(room_id, query=""):
        return peer.request(hs1, "GET", f"{FED}/hierarchy/{quote(room_id)}{query}",
                            ssl_context=ctx)

    resp = hierarchy(space)
    assert resp.status == 200, resp
    body = resp.json
    room = body["room"]
    assert room["room_id"] == space and room["room_type"] == "m.space"
    assert room["name"] == "The Space" and room["topic"] == "space topic"
    assert room["join_rule"] == "public" and room["num_joined_members"] == 1
    assert room["world_readable"] is False and room["guest_can_join"] is False
    cs = room["children_state"]
    assert {e["state_key"] for e in cs} == {public, private, readable, restricted, subspace,
                                            unknown}
    for e in cs:
        assert e["type"] == "m.space.child" and e["sender"] == alice.user_id
        assert isinstance(e["origin_server_ts"], int) and e["content"]["via"] == [me]
    # Ordered: by order first, then timestamp.
    assert [e["state_key"] for e in cs][:3] == [public, readable, subspace]
    # The peer may see public and world_readable rooms; the rest are
    # inaccessible; the room this server is not in is left out.
    kids = {c["room_id"]: c for c in body["children"]}
    assert set(kids) == {public, readable, subspace}, body
    assert sorted(body["inaccessible_children"]) == sorted([private, restricted]), body
    assert kids[public]["name"] == "Public child" and kids[public]["join_rule"] == "public"
    assert kids[readable]["world_readable"] is True and kids[readable]["join_rule"] == "invite"
    assert kids[public]["children_state"] == []
    assert [e["state_key"] for e in kids[subspace]["children_state"]] == [public]
    assert kids[subspace]["room_type"] == "m.space"
    assert unknown not in body["inaccessible_children"]

    # suggested_only: only the suggested children.
    resp = hierarchy(space, "?suggested_only=true")
    assert resp.status == 200, resp
    assert {e["state_key"] for e in resp.json["room"]["children_state"]} == {
        public, readable, unknown}
    assert {c["room_id"] for c in resp.json["children"]} == {public, readable}
    assert resp.json["inaccessible_children"] == []
    resp = hierarchy(space, "?suggested_only=false")
    assert resp.status == 200 and len(resp.json["room"]["children_state"]) == 6
    assert_error(hierarchy(space, "?suggested_only=maybe"), 400, "M_INVALID_PARAM")

    # A room that is not a space: itself, no children.
    resp = hierarchy(public)
    assert resp.status == 200, resp
    assert resp.json["room"]["children_state"] == [] and resp.json["children"] == []

    # Private or unknown spaces, and bad room IDs.
    assert_error(hierarchy(private), 404, "M_NOT_FOUND")
    assert_error(hierarchy(unknown), 404, "M_NOT_FOUND")
    assert_error(hierarchy("not-a-room"), 400, "M_INVALID_PARAM")
    resp = harness.http_request(hs1.federation_url, "GET", f"{FED}/hierarchy/{quote(space)}",
                                ssl_context=ctx)
    assert resp.status == 401, resp

    # Once a user of the peer is in the space, the restricted child opens.
    peer.join(hs1, space, "pete")
    resp = hierarchy(space)
    assert resp.status == 200, resp
    assert {c["room_id"] for c in resp.json["children"]} == {public, readable, subspace,
                                                              restricted}
    assert resp.json["inaccessible_children"] == [private]

    # Server ACLs (ports do not count: denying 127.0.0.1 denies the peer):
    # a child that denies it is inaccessible; a space that does is 403.
    acl = {"allow": ["*"], "deny": ["127.0.0.1"], "allow_ip_literals": True}
    alice.put_state(public, "m.room.server_acl", acl)
    resp = hierarchy(space)
    assert resp.status == 200, resp
    assert public not in {c["room_id"] for c in resp.json["children"]}
    assert sorted(resp.json["inaccessible_children"]) == sorted([private, public])
    alice.put_state(space, "m.room.server_acl", acl)
    assert_error(hierarchy(space), 403, "M_FORBIDDEN")
