"""The federation read endpoints (Server-Server API "Retrieving events",
"Backfilling and retrieving missing events", "Querying for information")
between real servers: hs1 has a room that hs2 and a scripted peer
(FedPeer.join: make_join + signed send_join) have joined, and the peer
reads it as a member server would: /event, /state, /state_ids,
/event_auth (shapes, the state before the event, closed auth chains,
event IDs recomputed from the served PDUs), /backfill and
/get_missing_events (order, limits and caps, min_depth, earliest_events),
/timestamp_to_event, and history visibility for servers (events a server
may not see come redacted). A server not in the room and one denied by
the server ACL get 403. Aliases: /query/directory, a client's lookup of
another server's alias and a join by that alias. Runs on SQLite and
PostgreSQL."""

import time

import pytest

from fedpeer import FedPeer, compute_event_id, quote
from test_rooms import V3, assert_error, q
from test_federation_rooms import wait_for
from test_sync import User

FED = "/_matrix/federation/v1"
VERSION = "12"  # the default room version


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


class Reader:
    """Signed requests of a peer to one server."""

    def __init__(self, peer, target, test_ca):
        self.peer, self.target, self.ctx = peer, target, test_ca.client_context()

    def get(self, uri):
        return self.peer.request(self.target, "GET", uri, ssl_context=self.ctx)

    def post(self, uri, body):
        return self.peer.request(self.target, "POST", uri, body, ssl_context=self.ctx)

    def event(self, event_id):
        resp = self.get(f"{FED}/event/{quote(event_id)}")
        assert resp.status == 200, resp
        (pdu,) = resp.json["pdus"]
        return pdu


def ids_of(pdus):
    return [compute_event_id(p, VERSION) for p in pdus]


def shared_room(federation, test_ca, peers, before_peer=None, **room):
    """hs1's public room with bob of hs2 and the peer's user joined."""
    hs1, hs2 = federation(2)
    alice = User(hs1)
    bob = User(hs2)
    room_id = alice.create_room(preset="public_chat", **room)
    resp = bob.post(f"{V3}/join/{q(room_id)}?server_name={q(hs1.server_name)}")
    assert resp.status == 200, resp
    extra = before_peer(alice, room_id) if before_peer else None
    peer = peers()
    join_id, answer = peer.join(hs1, room_id, "pete")
    assert answer["event"]["sender"] == f"@pete:{peer.server_name}"
    return hs1, hs2, alice, bob, room_id, peer, join_id, extra


def client_state_ids(user, room_id):
    resp = user.get(f"{V3}/rooms/{q(room_id)}/state")
    assert resp.status == 200, resp
    return {e["event_id"] for e in resp.json}


def assert_closed(pdus, chain_ids):
    """Every auth event of `pdus` is in chain_ids."""
    for p in pdus:
        missing = set(p["auth_events"]) - set(chain_ids)
        assert not missing, (p["type"], missing)


def test_event_state_and_auth(federation, test_ca, peers):
    hs1, hs2, alice, bob, room, peer, join_id, _ = shared_room(federation, test_ca, peers)
    rd = Reader(peer, hs1, test_ca)
    m1 = alice.send(room, "first")
    state_at_m1 = client_state_ids(alice, room)
    assert join_id in state_at_m1
    topic1 = alice.put_state(room, "m.room.topic", {"topic": "one"})
    topic2 = alice.put_state(room, "m.room.topic", {"topic": "two"})

    # /event: one PDU in federation format (v12: no event_id, signed).
    resp = rd.get(f"{FED}/event/{quote(m1)}")
    assert resp.status == 200, resp
    assert resp.json["origin"] == hs1.server_name
    assert isinstance(resp.json["origin_server_ts"], int)
    (pdu,) = resp.json["pdus"]
    assert "event_id" not in pdu and hs1.server_name in pdu["signatures"], pdu
    assert pdu["content"]["body"] == "first" and pdu["sender"] == alice.user_id
    assert pdu["room_id"] == room and compute_event_id(pdu, VERSION) == m1

    # /state_ids: the state before the event, and its auth chain.
    resp = rd.get(f"{FED}/state_ids/{quote(room)}?event_id={quote(m1)}")
    assert resp.status == 200, resp
    assert set(resp.json["pdu_ids"]) == state_at_m1
    ids_at_m1 = resp.json
    resp = rd.get(f"{FED}/state_ids/{quote(room)}?event_id={quote(topic2)}")
    assert resp.status == 200, resp
    assert topic1 in resp.json["pdu_ids"] and topic2 not in resp.json["pdu_ids"]
    assert set(resp.json["pdu_ids"]) == (state_at_m1 | {topic1})

    # /state: the same events in full; the auth chain is closed.
    resp = rd.get(f"{FED}/state/{quote(room)}?event_id={quote(m1)}")
    assert resp.status == 200, resp
    state, chain = resp.json["pdus"], resp.json["auth_chain"]
    assert set(ids_of(state)) == set(ids_at_m1["pdu_ids"])
    assert set(ids_of(chain)) == set(ids_at_m1["auth_chain_ids"])
    assert len(chain) == len(set(ids_of(chain)))
    # v12: the create event is named by the room ID, not by auth_events,
    # so it is in the state but in no auth chain.
    assert "m.room.create" in {p["type"] for p in state}
    assert {"m.room.power_levels", "m.room.join_rules", "m.room.member"} <= \
        {p["type"] for p in chain}
    assert_closed(state + chain, ids_of(chain))
    by_type = {(p["type"], p.get("state_key")): p for p in state}
    assert by_type[("m.room.member", f"@pete:{peer.server_name}")]["content"]["membership"] == "join"
    assert by_type[("m.room.member", bob.user_id)]["content"]["membership"] == "join"

    # /event_auth: the event's own auth chain, without the event.
    resp = rd.get(f"{FED}/event_auth/{quote(room)}/{quote(m1)}")
    assert resp.status == 200, resp
    auth = resp.json["auth_chain"]
    auth_ids = ids_of(auth)
    assert set(pdu["auth_events"]) <= set(auth_ids) and m1 not in auth_ids
    assert_closed(auth + [pdu], auth_ids)

    # Errors: unknown events, events of other rooms, missing arguments.
    other_room = alice.create_room(preset="public_chat")
    elsewhere = alice.send(other_room, "elsewhere")
    assert_error(rd.get(f"{FED}/event/{quote('$nosuchevent')}"), 404, "M_NOT_FOUND")
    assert_error(rd.get(f"{FED}/state_ids/{quote(room)}"), 400, "M_MISSING_PARAM")
    for path in (f"{FED}/state_ids/{quote(room)}?event_id={quote(elsewhere)}",
                 f"{FED}/state/{quote(room)}?event_id={quote('$nosuchevent')}",
                 f"{FED}/event_auth/{quote(room)}/{quote(elsewhere)}"):
        assert_error(rd.get(path), 404, "M_NOT_FOUND")
    # The peer is not in the other room.
    assert_error(rd.get(f"{FED}/event/{quote(elsewhere)}"), 403, "M_FORBIDDEN")
    assert_error(rd.get(f"{FED}/state_ids/{quote(other_room)}?event_id={quote(elsewhere)}"),
                 403, "M_FORBIDDEN")

    # hs2 learnt of the peer's join and serves the peer too.
    rd2 = Reader(peer, hs2, test_ca)
    pdu2 = wait_for(lambda: rd2.get(f"{FED}/event/{quote(m1)}").json.get("pdus"),
                    "hs2 serving the peer")
    assert ids_of(pdu2) == [m1]

    # A server with nobody in the room reads nothing.
    outsider = Reader(peers(), hs1, test_ca)
    for resp in (outsider.get(f"{FED}/event/{quote(m1)}"),
                 outsider.get(f"{FED}/state/{quote(room)}?event_id={quote(m1)}"),
                 outsider.get(f"{FED}/state_ids/{quote(room)}?event_id={quote(m1)}"),
                 outsider.get(f"{FED}/event_auth/{quote(room)}/{quote(m1)}"),
                 outsider.get(f"{FED}/backfill/{quote(room)}?v={quote(m1)}&limit=5"),
                 outsider.post(f"{FED}/get_missing_events/{quote(room)}",
                               {"earliest_events": [], "latest_events": [m1]}),
                 outsider.get(f"{FED}/timestamp_to_event/{quote(room)}?ts=0&dir=f"),
                 outsider.get(f"{FED}/state_ids/{quote('!unknown:' + hs1.server_name)}"
                              f"?event_id={quote(m1)}")):
        assert_error(resp, 403, "M_FORBIDDEN")

    # The server ACL shuts a member server out (ports do not count, so
    # denying 127.0.0.1 denies every test server).
    alice.put_state(room, "m.room.server_acl", {"allow": ["*"], "deny": ["127.0.0.1"],
                                                "allow_ip_literals": True})
    assert_error(rd.get(f"{FED}/event/{quote(m1)}"), 403, "M_FORBIDDEN")
    assert_error(rd.get(f"{FED}/state_ids/{quote(room)}?event_id={quote(m1)}"),
                 403, "M_FORBIDDEN")
    assert_error(rd.get(f"{FED}/backfill/{quote(room)}?v={quote(m1)}&limit=5"),
                 403, "M_FORBIDDEN")


def test_backfill_missing_events_and_timestamps(federation, test_ca, peers):
    hs1, hs2, alice, bob, room, peer, join_id, _ = shared_room(federation, test_ca, peers)
    rd = Reader(peer, hs1, test_ca)
    ids = [alice.send(room, f"m{i}") for i in range(12)]

    def backfill(*vs, limit):
        args = "&".join(f"v={quote(v)}" for v in vs)
        resp = rd.get(f"{FED}/backfill/{quote(room)}?{args}&limit={limit}")
        assert resp.status == 200, resp
        assert resp.json["origin"] == hs1.server_name
        return ids_of(resp.json["pdus"]), resp.json["pdus"]

    # The given events are included; then the ones before, newest first.
    got, _ = backfill(ids[11], limit=5)
    assert got == [ids[11], ids[10], ids[9], ids[8], ids[7]]
    # Two starting points: the deepest first.
    got, _ = backfill(ids[5], ids[9], limit=3)
    assert got == [ids[9], ids[8], ids[7]]
    got, _ = backfill(ids[11], limit=0)
    assert got == []
    # All the way back to the create event, depth never increasing.
    got, pdus = backfill(ids[11], limit=100)
    assert got[:12] == ids[::-1] and join_id in got
    assert pdus[-1]["type"] == "m.room.create"
    depths = [p["depth"] for p in pdus]
    assert depths == sorted(depths, reverse=True)
    # Unknown starting events give nothing.
    got, _ = backfill("$nosuchevent", limit=5)
    assert got == []
    for args in (f"v={quote(ids[1])}", "limit=5", f"v={quote(ids[1])}&limit=x"):
        resp = rd.get(f"{FED}/backfill/{quote(room)}?{args}")
        assert resp.status == 400 and resp.json["errcode"] in ("M_MISSING_PARAM",
                                                             "M_INVALID_PARAM"), resp

    def missing(body):
        resp = rd.post(f"{FED}/get_missing_events/{quote(room)}", body)
        assert resp.status == 200, resp
        return ids_of(resp.json["events"])

    # prev_events back from latest_events, stopping at earliest_events,
    # oldest first, latest_events themselves left out.
    assert missing({"earliest_events": [ids[3]], "latest_events": [ids[11]],
                    "limit": 3}) == [ids[8], ids[9], ids[10]]
    assert missing({"earliest_events": [ids[3]], "latest_events": [ids[11]],
                    "limit": 10}) == ids[4:11]
    assert missing({"earliest_events": [ids[3]], "latest_events": [ids[11]]}) == ids[4:11]
    depth6 = rd.event(ids[6])["depth"]
    assert missing({"earliest_events": [], "latest_events": [ids[11]],
                    "min_depth": depth6, "limit": 20}) == ids[6:11]
    assert missing({"earliest_events": [ids[10]], "latest_events": [ids[11]]}) == []
    for body, code in (({"earliest_events": []}, "M_MISSING_PARAM"),
                       ({"earliest_events": [], "latest_events": ids[11]}, "M_BAD_JSON"),
                       ({"earliest_events": [], "latest_events": [ids[11]], "limit": "x"},
                        "M_INVALID_PARAM")):
        assert_error(rd.post(f"{FED}/get_missing_events/{quote(room)}", body), 400, code)

    # /timestamp_to_event
    ts5 = rd.event(ids[5])["origin_server_ts"]
    for d in ("f", "b"):
        resp = rd.get(f"{FED}/timestamp_to_event/{quote(room)}?ts={ts5}&dir={d}")
        assert resp.status == 200, resp
        assert resp.json["origin_server_ts"] == ts5
        assert rd.event(resp.json["event_id"])["origin_server_ts"] == ts5
    last_ts = rd.event(ids[11])["origin_server_ts"]
    resp = rd.get(f"{FED}/timestamp_to_event/{quote(room)}?ts={last_ts + 1}&dir=b")
    assert resp.status == 200 and resp.json["event_id"] == ids[11], resp
    assert_error(rd.get(f"{FED}/timestamp_to_event/{quote(room)}?ts=0&dir=b"),
                 404, "M_NOT_FOUND")
    assert_error(rd.get(f"{FED}/timestamp_to_event/{quote(room)}?ts={last_ts + 10**9}&dir=f"),
                 404, "M_NOT_FOUND")
    assert_error(rd.get(f"{FED}/timestamp_to_event/{quote(room)}?ts=1&dir=x"),
                 400, "M_INVALID_PARAM")
    assert_error(rd.get(f"{FED}/timestamp_to_event/{quote(room)}?dir=f"),
                 400, "M_MISSING_PARAM")

    # Caps: 100 for /backfill, 20 for /get_missing_events.
    more = [alice.send(room, f"n{i}") for i in range(100)]
    got, _ = backfill(more[-1], limit=1000)
    assert got == more[::-1]
    assert missing({"earliest_events": [], "latest_events": [more[-1]],
                    "limit": 50}) == more[-21:-1]


def test_history_visibility_for_servers(federation, test_ca, peers):
    joined_only = [{"type": "m.room.history_visibility", "state_key": "",
                    "content": {"history_visibility": "joined"}}]

    def before_peer(alice, room):
        return alice.send(room, "secret")

    hs1, hs2, alice, bob, room, peer, join_id, secret = shared_room(
        federation, test_ca, peers, before_peer=before_peer, initial_state=joined_only)
    rd = Reader(peer, hs1, test_ca)
    after = alice.send(room, "after")

    # Sent while the peer had nobody in the room: redacted (same ID).
    hidden = rd.event(secret)
    assert hidden["content"] == {} and compute_event_id(hidden, VERSION) == secret, hidden
    assert hidden["type"] == "m.room.message" and hidden["signatures"]
    assert rd.event(after)["content"]["body"] == "after"
    # The peer's own join is visible to it (state after the event).
    assert rd.event(join_id)["content"]["membership"] == "join"

    resp = rd.get(f"{FED}/backfill/{quote(room)}?v={quote(after)}&limit=5")
    assert resp.status == 200, resp
    by_id = dict(zip(ids_of(resp.json["pdus"]), resp.json["pdus"]))
    assert by_id[after]["content"]["body"] == "after"
    assert by_id[secret]["content"] == {}
    assert by_id[join_id]["content"]["membership"] == "join"
    resp = rd.post(f"{FED}/get_missing_events/{quote(room)}",
                   {"earliest_events": [], "latest_events": [after], "limit": 5})
    assert resp.status == 200, resp
    by_id = dict(zip(ids_of(resp.json["events"]), resp.json["events"]))
    assert by_id[secret]["content"] == {} and secret in by_id

    # hs2 applies the same rule to its copy of the room.
    rd2 = Reader(peer, hs2, test_ca)
    wait_for(lambda: rd2.get(f"{FED}/event/{quote(after)}").status == 200, "after on hs2")
    assert rd2.event(secret)["content"] == {}
    assert rd2.event(after)["content"]["body"] == "after"

    # Opening the history later does not open what was sent before.
    alice.put_state(room, "m.room.history_visibility", {"history_visibility": "shared"})
    assert rd.event(secret)["content"] == {}
    open_msg = alice.send(room, "open")
    assert rd.event(open_msg)["content"]["body"] == "open"


def test_aliases_across_servers(federation, test_ca, peers):
    hs1, hs2 = federation(2)
    alice = User(hs1)
    bob = User(hs2)
    local = f"fr{int(time.time() * 1000) % 10**8}"
    room = alice.create_room(preset="public_chat", room_alias_name=local)
    alias = f"#{local}:{hs1.server_name}"
    peer = peers()
    rd = Reader(peer, hs1, test_ca)

    # The federation query: the room and its servers (hs1 first).
    resp = rd.get(f"{FED}/query/directory?room_alias={quote(alias)}")
    assert resp.status == 200, resp
    assert resp.json == {"room_id": room, "servers": [hs1.server_name]}
    assert_error(rd.get(f"{FED}/query/directory?room_alias={quote('#nope:' + hs1.server_name)}"),
                 404, "M_NOT_FOUND")
    assert_error(rd.get(f"{FED}/query/directory?room_alias={quote('#x:' + hs2.server_name)}"),
                 404, "M_NOT_FOUND")
    assert_error(rd.get(f"{FED}/query/directory"), 400, "M_MISSING_PARAM")

    # A client of hs2 resolves hs1's alias through hs1.
    resp = bob.get(f"{V3}/directory/room/{q(alias)}")
    assert resp.status == 200, resp
    assert resp.json == {"room_id": room, "servers": [hs1.server_name]}
    assert_error(bob.get(f"{V3}/directory/room/{q('#nope:' + hs1.server_name)}"),
                 404, "M_NOT_FOUND")
    assert hs2.get(f"{V3}/directory/room/{q(alias)}").json["room_id"] == room

    # ... and joins by it.
    resp = bob.post(f"{V3}/join/{q(alias)}")
    assert resp.status == 200 and resp.json["room_id"] == room, resp
    wait_for(lambda: bob.user_id in alice.get(
        f"{V3}/rooms/{q(room)}/joined_members").json["joined"], "bob's join on hs1")
    assert_error(bob.post(f"{V3}/join/{q('#nope:' + hs1.server_name)}"), 404, "M_NOT_FOUND")

    # hs1 now names hs2 among the room's servers.
    resp = rd.get(f"{FED}/query/directory?room_alias={quote(alias)}")
    assert resp.status == 200 and resp.json["servers"] == [hs1.server_name, hs2.server_name]
    resp = alice.get(f"{V3}/directory/room/{q(alias)}")
    assert resp.json["servers"] == [hs1.server_name, hs2.server_name], resp
    # A second local user of hs2 joins by alias while hs2 is in the room
    # already: a local join.
    carol = User(hs2)
    resp = carol.post(f"{V3}/join/{q(alias)}")
    assert resp.status == 200 and resp.json["room_id"] == room, resp
    wait_for(lambda: carol.user_id in alice.get(
        f"{V3}/rooms/{q(room)}/joined_members").json["joined"], "carol's join on hs1")
