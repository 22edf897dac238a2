#!/usr/bin/env python3
"""Runs Myelin's benchmarks and prints their figures.

Starts the optimised binary on loopback with a throwaway data directory,
measures idle memory and HTTP figures with bench_http, /send, send-to-/sync
latency and /messages paging over a long room (--messages N or
BENCH_MESSAGES, default 100000 events; 0 skips it), memory per parked
/sync (BENCH_PARKED, default 10000), reads of a room with BENCH_BIG_ROOM
members (default 10000) and initial sync in many busy rooms
(BENCH_SYNC_ROOMS x BENCH_SYNC_MEMBERS x BENCH_SYNC_EVENTS, default
300 x 300 x 100; rooms 0 skips it; see sync_bench.py), federation
between two servers (fed_bench.py; BENCH_FED_MESSAGES, 0 skips it), then runs the core
benchmarks (signing, state resolution) when they are built. Benchmarks print
numbers; they never pass or fail on timing.
"""
import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import json
import urllib.parse
import urllib.request

import fed_bench
import sync_bench

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start_server(build, tmp):
    port = free_port()
    data = os.path.join(tmp, "data")
    subprocess.run([f"{build}/myelin", "init", "--server-name", f"127.0.0.1:{port}",
                    "--data-dir", data], check=True, stdout=subprocess.DEVNULL)
    cfg = os.path.join(data, "bench.yaml")
    with open(cfg, "w") as f:
        f.write(f"""server_name: "127.0.0.1:{port}"
public_baseurl: "http://127.0.0.1:{port}/"
listeners:
  - bind: "127.0.0.1:{port}"
    resources: [client, federation, media, keys]
database:
  engine: sqlite
  path: "{data}/myelin.db"
signing_key_path: "{data}/signing.key"
media_path: "{data}/media"
registration:
  enabled: true
rate_limits:
  enabled: false
log_level: warn
""")
    proc = subprocess.Popen([f"{build}/myelin", "serve", "--config", cfg],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("server did not start: " + proc.stderr.read().decode())


def call(port, method, path, body=None, token=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/_matrix/client/v3{path}",
                                 method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        return json.loads(e.read())


def register(port, user):
    first = call(port, "POST", "/register", {"username": user, "password": "bench-pw"})
    done = call(port, "POST", "/register", {"username": user, "password": "bench-pw",
                                            "auth": {"type": "m.login.dummy",
                                                     "session": first["session"]}})
    return done["access_token"]


def bench_send(build, port):
    token = register(port, "bencher")
    room = call(port, "POST", "/createRoom", {"preset": "public_chat"}, token)["room_id"]
    # bench_http expands "%d" (printf), so the room ID's escapes are doubled.
    quoted = urllib.parse.quote(room).replace("%", "%%")
    path = f"/_matrix/client/v3/rooms/{quoted}/send/m.room.message/txn%d"
    body = json.dumps({"msgtype": "m.text", "body": "hello from the benchmark"})
    http = f"{build}/bench/bench_http"
    for conns, reqs in ((1, 2000), (50, 100)):
        subprocess.run([http, "127.0.0.1", str(port), "PUT", path, str(conns), str(reqs),
                        body, token], check=False)


def bench_sync_latency(port, n=200):
    """Send -> receive through a waiting /sync: one connection parks a
    /sync, another sends a message into the shared room. For n messages it
    records when each answer reaches the client (the socket turns
    readable), measured from issuing the send: the /sync's is the figure,
    the send's own answer is printed beside it for comparison."""
    import http.client
    import select
    sender = register(port, "sync_sender")
    receiver = register(port, "sync_receiver")
    room = call(port, "POST", "/createRoom", {"preset": "public_chat"}, sender)["room_id"]
    call(port, "POST", f"/join/{urllib.parse.quote(room)}", {}, receiver)
    a = http.client.HTTPConnection("127.0.0.1", port)
    b = http.client.HTTPConnection("127.0.0.1", port)
    auth_a = {"Authorization": "Bearer " + sender, "Content-Type": "application/json"}
    auth_b = {"Authorization": "Bearer " + receiver}
    # The sender turns online when it sends; its presence is not the message.
    flt = urllib.parse.quote(json.dumps({"presence": {"not_types": ["*"]}}))
    b.request("GET", f"/_matrix/client/v3/sync?timeout=0&filter={flt}", headers=auth_b)
    since = json.loads(b.getresponse().read())["next_batch"]
    path = f"/_matrix/client/v3/rooms/{urllib.parse.quote(room)}/send/m.room.message/"
    body = json.dumps({"msgtype": "m.text", "body": "ping"})
    got_sync, got_send = [], []
    for i in range(n):
        b.request("GET", f"/_matrix/client/v3/sync?since={since}&timeout=30000&filter={flt}",
                  headers=auth_b)
        time.sleep(0.005)  # let the server park it
        t0 = time.perf_counter()
        a.request("PUT", path + f"lat{i}", body=body, headers=auth_a)
        pending = {a.sock: got_send, b.sock: got_sync}
        while pending:
            ready, _, _ = select.select(list(pending), [], [], 30)
            if not ready:
                raise SystemExit("sync latency: no answer within 30 s")
            now = time.perf_counter()
            for sock in ready:
                pending.pop(sock).append(now - t0)
        a.getresponse().read()
        resp = json.loads(b.getresponse().read())
        since = resp["next_batch"]
        if room not in resp["rooms"]["join"]:
            raise SystemExit("sync latency: the message did not arrive")

    def pct(v, p):
        v = sorted(v)
        return v[min(len(v) - 1, int(len(v) * p))] * 1000
    print(f"send -> receive through a waiting /sync ({n} messages): "
          f"p50 {pct(got_sync, 0.5):.2f} ms, p99 {pct(got_sync, 0.99):.2f} ms "
          f"(the send's own answer: p50 {pct(got_send, 0.5):.2f} ms, "
          f"p99 {pct(got_send, 0.99):.2f} ms)")


def bench_messages(build, port, n):
    """/messages over a long room: fills one room with n messages through
    bench_http (50 keep-alive connections of concurrent /send, which the
    writer group-commits), then pages /messages backwards with limit=100
    from the newest event to the first, and finally re-reads 50 pages at
    random tokens collected on the way (half backwards, half forwards).
    Prints the median and p99 time per page and the total."""
    import http.client
    import random
    if n <= 0:
        return
    token = register(port, "messages_bencher")
    room = call(port, "POST", "/createRoom", {"preset": "public_chat"}, token)["room_id"]
    quoted = urllib.parse.quote(room)
    conns = 50 if n >= 50 else 1
    per_conn = -(-n // conns)
    body = json.dumps({"msgtype": "m.text", "body": "a message of the /messages benchmark"})
    t0 = time.perf_counter()
    subprocess.run([f"{build}/bench/bench_http", "127.0.0.1", str(port), "PUT",
                    f"/_matrix/client/v3/rooms/{quoted.replace('%', '%%')}"
                    "/send/m.room.message/fill%d", str(conns), str(per_conn), body, token],
                   check=False, stdout=subprocess.DEVNULL)
    fill = time.perf_counter() - t0
    print(f"/messages: filled a room with {conns * per_conn} messages in {fill:.1f} s")

    conn = http.client.HTTPConnection("127.0.0.1", port)
    auth = {"Authorization": "Bearer " + token}
    base = f"/_matrix/client/v3/rooms/{quoted}/messages?limit=100"

    def page(query):
        t = time.perf_counter()
        conn.request("GET", base + query, headers=auth)
        resp = conn.getresponse()
        data = resp.read()
        took = time.perf_counter() - t
        if resp.status != 200:
            raise SystemExit(f"/messages answered {resp.status}: {data[:200]!r}")
        return json.loads(data), took

    def pct(v, p):
        v = sorted(v)
        return v[min(len(v) - 1, int(len(v) * p))] * 1000

    times, tokens, events = [], [], 0
    query = "&dir=b"
    t0 = time.perf_counter()
    while True:
        got, took = page(query)
        times.append(took)
        events += len(got["chunk"])
        if "end" not in got:
            break
        tokens.append(got["end"])
        query = "&dir=b&from=" + urllib.parse.quote(got["end"])
    total = time.perf_counter() - t0
    print(f"/messages backwards, limit 100, newest to first: {len(times)} pages, "
          f"{events} events, total {total:.2f} s, per page p50 {pct(times, 0.5):.2f} ms, "
          f"p99 {pct(times, 0.99):.2f} ms")
    rnd = random.Random(5)
    mid = []
    for i in range(50):
        tok = rnd.choice(tokens)
        _, took = page(("&dir=b" if i % 2 == 0 else "&dir=f") + "&from=" +
                       urllib.parse.quote(tok))
        mid.append(took)
    print(f"/messages at 50 random mid-room tokens (b and f), limit 100: "
          f"p50 {pct(mid, 0.5):.2f} ms, p99 {pct(mid, 0.99):.2f} ms")
    conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--messages", type=int,
                    default=int(os.environ.get("BENCH_MESSAGES", "100000")),
                    help="events in the /messages benchmark's room (env BENCH_MESSAGES; "
                         "0 skips it)")
    args = ap.parse_args()
    build = os.path.join(ROOT, args.build) if not os.path.isabs(args.build) else args.build
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_server(build, tmp)
        try:
            time.sleep(1.0)
            print(f"idle RSS after start: {rss_kib(proc.pid) / 1024:.1f} MiB")
            http = f"{build}/bench/bench_http"
            for conns, reqs in ((1, 5000), (50, 2000)):
                subprocess.run([http, "127.0.0.1", str(port), "GET", "/_matrix/client/versions",
                                str(conns), str(reqs)], check=False)
            subprocess.run([http, "127.0.0.1", str(port), "GET", "/_matrix/federation/v1/version",
                            "1", "5000"], check=False)
            bench_send(build, port)
            bench_sync_latency(port)
            bench_messages(build, port, args.messages)
            sync_bench.run(proc, port)
            print(f"RSS after load: {rss_kib(proc.pid) / 1024:.1f} MiB")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
    fed_bench.run(build, int(os.environ.get("BENCH_FED_MESSAGES", "1000")))
    for name in ("bench_sign", "bench_stateres"):
        path = f"{build}/bench/{name}"
        if os.path.exists(path):
            print(f"== {name}")
            sys.stdout.flush()
            subprocess.run([path], check=False)


if __name__ == "__main__":
    main()
