"""Rooms under concurrent load: one user creating many rooms at once, many
users joining one room at once, and sends spread over many rooms at once.
Every request must succeed and every room must end up with its own,
complete state; the server must log no failed event write. Runs on SQLite
and on PostgreSQL.

Room IDs of version 12 are hashes of the create event, whose only
entropy is its millisecond timestamp, so one user's simultaneous
createRoom requests with the same body used to build the same room ID
(and the second room's events then failed to store)."""

import http.client
import json
import threading
from concurrent.futures import ThreadPoolExecutor

from test_rooms import V3, User, q

THREADS = 8


def run_together(n_threads, per_thread, fn):
    """Runs fn(thread, i) for i in range(per_thread) on n_threads threads,
    lining the threads up before each round so the requests arrive
    together. Returns the results, thread by thread."""
    barrier = threading.Barrier(n_threads)

    def worker(t):
        out = []
        for i in range(per_thread):
            barrier.wait(timeout=60)
            out.append(fn(t, i))
        return out

    with ThreadPoolExecutor(max_workers=n_threads) as pool:
        return list(pool.map(worker, range(n_threads)))


class KeepAlive:
    """One connection per thread, kept open, so that requests released
    together by the barrier reach the server together."""

    def __init__(self, server, user):
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        self.headers = {"Authorization": f"Bearer {user.token}",
                        "Content-Type": "application/json"}

    def post(self, path, body):
        self.conn.request("POST", path, body=json.dumps(body), headers=self.headers)
        resp = self.conn.getresponse()
        return resp.status, json.loads(resp.read())


def assert_no_failed_writes(server):
    log = server.stderr()
    assert "could not store event" not in log, \
        [line for line in log.splitlines() if "could not store" in line][:5]


def test_concurrent_create_room_same_user(server):
    alice = User(server)
    conns = [KeepAlive(server, alice) for _ in range(THREADS)]

    def create(t, i):
        # The same body in every request of a round: only the timestamp
        # (and the server) can tell the create events apart.
        return conns[t].post(f"{V3}/createRoom",
                             {"preset": "public_chat", "name": f"r{i}"})

    try:
        results = [res for per in run_together(THREADS, 10, create) for res in per]
    finally:
        for c in conns:
            c.conn.close()
    assert [status for status, _ in results] == [200] * len(results), \
        [body for status, body in results if status != 200][:3]
    room_ids = [body["room_id"] for _, body in results]
    assert len(set(room_ids)) == len(room_ids), "two requests got the same room"

    # Each room is whole and its own: one create, the creator joined, the
    # preset and a name sent by one of this round's requests.
    create_ids = set()
    for room_id in room_ids:
        resp = alice.get(f"{V3}/rooms/{q(room_id)}/state")
        assert resp.status == 200, resp
        state = {(e["type"], e["state_key"]): e for e in resp.json}
        create_ids.add(state[("m.room.create", "")]["event_id"])
        member = state[("m.room.member", alice.user_id)]
        assert member["content"]["membership"] == "join"
        assert state[("m.room.join_rules", "")]["content"]["join_rule"] == "public"
        assert state[("m.room.name", "")]["content"]["name"].startswith("r")
        for e in resp.json:
            assert e["room_id"] == room_id, e
    assert len(create_ids) == len(room_ids)
    assert sorted(alice.joined_rooms()) == sorted(room_ids)
    assert_no_failed_writes(server)


def test_concurrent_joins_one_room(server):
    alice = User(server)
    room_id = alice.create_room(preset="public_chat")
    users = [User(server) for _ in range(3 * THREADS)]

    def join(t, i):
        return users[t * 3 + i].join(room_id).status

    statuses = [s for per in run_together(THREADS, 3, join) for s in per]
    assert statuses == [200] * len(users), statuses
    members = alice.members(room_id)
    for u in users:
        assert members.get(u.user_id) == "join", u.user_id
    assert_no_failed_writes(server)


def test_concurrent_sends_many_rooms(server):
    alice, bob = User(server), User(server)
    rooms = [alice.create_room(preset="public_chat", name=f"s{i}")
             for i in range(THREADS)]
    for room_id in rooms:
        assert bob.join(room_id).status == 200

    def send(t, i):
        user = alice if (t + i) % 2 else bob
        room_id = rooms[(t + i) % len(rooms)]
        resp = user.send(room_id, f"m{t}-{i}")
        return room_id, f"m{t}-{i}", resp.status

    results = [res for per in run_together(THREADS, 6, send) for res in per]
    assert [s for _, _, s in results] == [200] * len(results), results
    for room_id in rooms:
        resp = alice.get(f"{V3}/rooms/{q(room_id)}/messages?dir=b&limit=100")
        assert resp.status == 200, resp
        got = sorted(e["content"]["body"] for e in resp.json["chunk"]
                     if e["type"] == "m.room.message")
        assert got == sorted(b for r, b, _ in results if r == room_id)
    assert_no_failed_writes(server)
