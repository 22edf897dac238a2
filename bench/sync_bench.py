"""/sync benchmarks (called from bench/run.py): memory per parked long
poll, and initial sync for a user in many busy rooms. Figures only."""
import http.client
import json
import os
import resource
import select
import socket
import statistics
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor


def _rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Conn:
    """One keep-alive connection with JSON calls."""

    def __init__(self, port, token=None):
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.token = token

    def call(self, method, path, body=None):
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        self.c.request(method, "/_matrix/client/v3" + path,
                       body=json.dumps(body) if body is not None else None, headers=headers)
        resp = self.c.getresponse()
        data = resp.read()
        return resp.status, json.loads(data) if data else None


def _register(port, name):
    c = Conn(port)
    st, body = c.call("POST", "/register", {"username": name, "password": "bench-pw",
                                            "auth": {"type": "m.login.dummy"}})
    if st != 200:
        st, first = c.call("POST", "/register", {"username": name, "password": "bench-pw"})
        st, body = c.call("POST", "/register", {"username": name, "password": "bench-pw",
                                                "auth": {"type": "m.login.dummy",
                                                         "session": first["session"]}})
    return body["access_token"]


def parked_syncs(proc, port, n):
    """Parks n /sync long polls (raw sockets, one request each) and reports
    the server's RSS growth per parked request."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, n + 1024)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        soft = want
    n = min(n, soft - 512)
    token = _register(port, "parker")
    c = Conn(port, token)
    room = c.call("POST", "/createRoom", {"preset": "private_chat"})[1]["room_id"]
    # Presence stays out of it: a sync marking the user online would wake
    # (answer) every parked request at once.
    quiet = "set_presence=offline&filter=" + urllib.parse.quote(
        json.dumps({"presence": {"not_types": ["*"]}}))
    since = c.call("GET", f"/sync?timeout=0&{quiet}")[1]["next_batch"]
    req = (f"GET /_matrix/client/v3/sync?since={since}&timeout=120000&{quiet} HTTP/1.1\r\n"
           f"Host: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n").encode()
    # Warm up the allocator and the worker threads with a few first.
    socks = []
    for _ in range(50):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(req)
        socks.append(s)
    time.sleep(1.0)
    before = _rss_kib(proc.pid)
    t0 = time.perf_counter()
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(req)
        socks.append(s)
    time.sleep(3.0)
    after = _rss_kib(proc.pid)
    took = time.perf_counter() - t0
    print(f"parked /sync: {n} held open in {took:.1f} s, RSS {before / 1024:.1f} -> "
          f"{after / 1024:.1f} MiB, {(after - before) / n:.2f} KiB per parked /sync")
    # None may have been answered yet (else the figure is not for parked ones).
    poller = select.poll()
    for s_ in socks:
        poller.register(s_, select.POLLIN)
    early = len(poller.poll(0))
    if early:
        print(f"parked /sync: {early} were answered before the wake-up (figure not valid)")
    # One message wakes them all.
    t0 = time.perf_counter()
    c.call("PUT", f"/rooms/{urllib.parse.quote(room)}/send/m.room.message/wake",
           {"msgtype": "m.text", "body": "wake"})
    answered = 0
    for s in socks:
        s.settimeout(60)
        try:
            if s.recv(1):
                answered += 1
        except OSError:
            pass
    print(f"parked /sync: one message answered {answered}/{len(socks)} in "
          f"{time.perf_counter() - t0:.2f} s")
    for s in socks:
        s.close()


def initial_sync(port, rooms, members, events):
    """A user in `rooms` rooms of `members` members and `events` messages
    each; times initial /sync with timeline limits 10 and 20, with and
    without lazy-loading."""
    t0 = time.perf_counter()
    with ThreadPoolExecutor(16) as ex:
        tokens = list(ex.map(lambda i: _register(port, f"isync{i}"), range(members)))
    owner = tokens[0]
    room_ids = []

    def make_room(i):
        c = Conn(port, owner)
        st, body = c.call("POST", "/createRoom", {"preset": "public_chat", "name": f"room {i}"})
        if st != 200:
            raise SystemExit(f"createRoom: {st} {body}")
        return body["room_id"]

    with ThreadPoolExecutor(8) as ex:
        room_ids = list(ex.map(make_room, range(rooms)))

    def join_all(tok):
        c = Conn(port, tok)
        for rid in room_ids:
            c.call("POST", f"/join/{urllib.parse.quote(rid)}", {})

    with ThreadPoolExecutor(16) as ex:
        list(ex.map(join_all, tokens[1:]))

    def fill(rid):
        c = Conn(port, owner)
        q = urllib.parse.quote(rid)
        for k in range(events):
            c.call("PUT", f"/rooms/{q}/send/m.room.message/f{k}",
                   {"msgtype": "m.text", "body": f"message {k}"})

    with ThreadPoolExecutor(16) as ex:
        list(ex.map(fill, room_ids))
    print(f"initial sync setup: {rooms} rooms x {members} members x {events} events "
          f"in {time.perf_counter() - t0:.0f} s")
    reader = Conn(port, tokens[1])
    for limit in (10, 20):
        for lazy in (False, True):
            flt = {"room": {"timeline": {"limit": limit},
                            "state": {"lazy_load_members": lazy}}}
            path = "/sync?filter=" + urllib.parse.quote(json.dumps(flt))
            times, size = [], 0
            for _ in range(3):
                t = time.perf_counter()
                reader.c.request("GET", "/_matrix/client/v3" + path,
                                 headers={"Authorization": "Bearer " + tokens[1]})
                resp = reader.c.getresponse()
                data = resp.read()
                times.append(time.perf_counter() - t)
                size = len(data)
            print(f"initial sync, {rooms} rooms, timeline limit {limit}, lazy members "
                  f"{'on ' if lazy else 'off'}: median {statistics.median(times) * 1000:.0f} ms, "
                  f"{size / 1e6:.1f} MB")


def big_room(proc, port, members):
    """A room with `members` joined members (accounts without passwords):
    times reading its current state, its members and a member's initial
    sync with lazy-loaded members."""
    t0 = time.perf_counter()

    def reg(i):
        c = Conn(port)
        st, body = c.call("POST", "/register", {"username": f"big{i}",
                                                "auth": {"type": "m.login.dummy"}})
        if st != 200:
            raise SystemExit(f"register: {st} {body}")
        return body["access_token"], body["user_id"]

    with ThreadPoolExecutor(8) as ex:
        accounts = list(ex.map(reg, range(members)))
    tokens = [a[0] for a in accounts]
    owner = Conn(port, tokens[0])
    room = owner.call("POST", "/createRoom", {"preset": "public_chat"})[1]["room_id"]
    q = urllib.parse.quote(room)

    def join(tok):
        st, body = Conn(port, tok).call("POST", f"/join/{q}", {})
        if st != 200:
            raise SystemExit(f"join: {st} {body}")

    with ThreadPoolExecutor(16) as ex:
        list(ex.map(join, tokens[1:]))
    print(f"big room: {members} members joined in {time.perf_counter() - t0:.0f} s")
    big_room_reads(port, proc, room, accounts)


def big_room_reads(port, proc, room, accounts, reps=5):
    """Times the whole-state reads of a big room as its last member: GET
    /state, /joined_members, /members (all, and with membership filters),
    one member's state event and an initial /sync with lazy-loaded members;
    the server's RSS before and after them."""
    q = urllib.parse.quote(room)
    token = accounts[-1][0]
    reader = Conn(port, token)
    before = _rss_kib(proc.pid)
    lazy = urllib.parse.quote(json.dumps({"room": {"timeline": {"limit": 10},
                                                   "state": {"lazy_load_members": True}}}))
    members = len(accounts)
    for label, path in (("GET /state", f"/rooms/{q}/state"),
                        ("GET /joined_members", f"/rooms/{q}/joined_members"),
                        ("GET /members", f"/rooms/{q}/members"),
                        ("GET /members?membership=join", f"/rooms/{q}/members?membership=join"),
                        ("GET /members?not_membership=join",
                         f"/rooms/{q}/members?not_membership=join"),
                        ("GET /state/m.room.member/<one>",
                         f"/rooms/{q}/state/m.room.member/{urllib.parse.quote(accounts[5][1])}"),
                        ("initial /sync, lazy members", f"/sync?filter={lazy}")):
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            reader.c.request("GET", "/_matrix/client/v3" + path,
                             headers={"Authorization": "Bearer " + token})
            resp = reader.c.getresponse()
            data = resp.read()
            times.append(time.perf_counter() - t)
        print(f"big room ({members} members), {label}: median "
              f"{statistics.median(times) * 1000:.1f} ms (first {times[0] * 1000:.1f} ms), "
              f"{len(data) / 1e6:.2f} MB, status {resp.status}")
    print(f"big room: RSS {before / 1024:.1f} -> {_rss_kib(proc.pid) / 1024:.1f} MiB "
          f"over the reads")


def run(proc, port):
    parked = int(os.environ.get("BENCH_PARKED", "10000"))
    if parked:
        parked_syncs(proc, port, parked)
    big = int(os.environ.get("BENCH_BIG_ROOM", "10000"))
    if big:
        big_room(proc, port, big)
    rooms = int(os.environ.get("BENCH_SYNC_ROOMS", "300"))
    if rooms:
        initial_sync(port, rooms, int(os.environ.get("BENCH_SYNC_MEMBERS", "300")),
                     int(os.environ.get("BENCH_SYNC_EVENTS", "100")))
