#!/usr/bin/env python3
"""Federation figures between two Myelin servers on loopback (TLS, a
throwaway self-signed certificate each, certificate checks off as in test
setups): the time a user of hs2 takes to join a room of hs1 (make_join,
send_join with the state and auth chain checked event by event), the
latency from a message sent on hs1 to a waiting /sync on hs2 (p50, p95),
and how long hs2 takes to hold N messages sent on hs1 one after the other
(BENCH_FED_MESSAGES, default 1000; 0 skips the whole benchmark), which
exercises the outbound queue's batching (50 PDUs a transaction) and the
inbound checks (signatures, hashes, auth rules). Prints figures; never
fails on timing.

    bench/fed_bench.py [--build build]
"""
import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(build, tmp, name):
    port, tls_port = free_port(), free_port()
    data = os.path.join(tmp, name)
    server_name = f"127.0.0.1:{tls_port}"
    subprocess.run([f"{build}/myelin", "init", "--server-name", server_name, "--data-dir", data],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", f"{data}/tls.key", "-out", f"{data}/tls.crt"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cfg = os.path.join(data, "bench.yaml")
    with open(cfg, "w") as f:
        f.write(f"""server_name: "{server_name}"
public_baseurl: "http://127.0.0.1:{port}/"
listeners:
  - bind: "127.0.0.1:{port}"
    resources: [client, federation, media, keys]
  - bind: "127.0.0.1:{tls_port}"
    tls: true
    tls_cert: "{data}/tls.crt"
    tls_key: "{data}/tls.key"
    resources: [federation, keys]
database:
  engine: sqlite
  path: "{data}/myelin.db"
signing_key_path: "{data}/signing.key"
media_path: "{data}/media"
registration:
  enabled: true
rate_limits:
  enabled: false
federation:
  verify_tls: false
log_level: warn
""")
    proc = subprocess.Popen([f"{build}/myelin", "serve", "--config", cfg],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
            return proc, port, server_name
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"{name} did not start")


def call(port, method, path, body=None, token=None, timeout=60):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/_matrix/client/v3{path}",
                                 method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        return json.loads(e.read())


def register(port, user):
    first = call(port, "POST", "/register", {"username": user, "password": "bench-pw"})
    done = call(port, "POST", "/register", {"username": user, "password": "bench-pw",
                                            "auth": {"type": "m.login.dummy",
                                                     "session": first["session"]}})
    return done["access_token"]


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def run(build, n_messages):
    if n_messages <= 0:
        return
    with tempfile.TemporaryDirectory() as tmp:
        hs1, port1, name1 = start(build, tmp, "hs1")
        hs2, port2, _ = start(build, tmp, "hs2")
        try:
            alice = register(port1, "alice")
            bob = register(port2, "bob")
            room = call(port1, "POST", "/createRoom", {"preset": "public_chat"},
                        alice)["room_id"]
            q = urllib.parse.quote(room)
            t0 = time.perf_counter()
            joined = call(port2, "POST", f"/join/{q}?server_name={urllib.parse.quote(name1)}",
                          {}, bob)
            join_ms = (time.perf_counter() - t0) * 1000
            if joined.get("room_id") != room:
                print(f"fed: join failed: {joined}")
                return
            print(f"fed: remote join of a fresh room: {join_ms:.1f} ms")

            since = call(port2, "GET", "/sync?timeout=0", token=bob)["next_batch"]
            lat = []
            for i in range(100):
                box = {}

                def poll(start=since, want=f"lat {i}"):
                    # Until the message is there (other streams may wake it first).
                    tok = start
                    for _ in range(50):
                        body = call(port2, "GET",
                                    f"/sync?timeout=10000&since={urllib.parse.quote(tok)}",
                                    token=bob)
                        tok = body["next_batch"]
                        events = body["rooms"]["join"].get(room, {}).get("timeline", {})
                        if any(e["content"].get("body") == want
                               for e in events.get("events", [])):
                            break
                    box["t"] = time.perf_counter()
                    box["body"] = body
                th = threading.Thread(target=poll)
                th.start()
                time.sleep(0.02)
                t0 = time.perf_counter()
                call(port1, "PUT", f"/rooms/{q}/send/m.room.message/lat{i}",
                     {"msgtype": "m.text", "body": f"lat {i}"}, alice)
                th.join()
                lat.append((box["t"] - t0) * 1000)
                since = box["body"]["next_batch"]
            print(f"fed: send on hs1 -> waiting /sync on hs2: p50 {statistics.median(lat):.1f} "
                  f"ms, p95 {pct(lat, 0.95):.1f} ms")

            t0 = time.perf_counter()
            for i in range(n_messages):
                call(port1, "PUT", f"/rooms/{q}/send/m.room.message/bulk{i}",
                     {"msgtype": "m.text", "body": f"bulk {i}"}, alice)
            sent_s = time.perf_counter() - t0
            last = f"bulk {n_messages - 1}"
            while True:
                page = call(port2, "GET", f"/rooms/{q}/messages?dir=b&limit=1", token=bob)
                chunk = page.get("chunk", [])
                if chunk and chunk[0]["content"].get("body") == last:
                    break
                if time.perf_counter() - t0 > 300:
                    print("fed: gave up waiting for the bulk messages")
                    return
                time.sleep(0.05)
            all_s = time.perf_counter() - t0
            print(f"fed: {n_messages} messages sent on hs1 in {sent_s:.2f} s "
                  f"({n_messages / sent_s:.0f}/s); all on hs2 after {all_s:.2f} s "
                  f"({n_messages / all_s:.0f}/s end to end)")
        finally:
            for p in (hs1, hs2):
                p.send_signal(signal.SIGTERM)
            for p in (hs1, hs2):
                p.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    args = ap.parse_args()
    build = os.path.join(ROOT, args.build) if not os.path.isabs(args.build) else args.build
    run(build, int(os.environ.get("BENCH_FED_MESSAGES", "1000")))


if __name__ == "__main__":
    main()
