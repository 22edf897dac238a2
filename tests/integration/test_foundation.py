"""The foundation of Myelin, seen from outside: the command line, the
config file, discovery endpoints, error shapes, CORS, request body limits,
robustness against malformed traffic, listeners, shutdown and the TLS
federation listener. Tests that involve a server run once per storage
engine."""

import asyncio
import base64
import random
import re
import select
import signal
import socket
import ssl
import stat
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import harness

MiB = 1024 * 1024
LOGIN = "/_matrix/client/v3/login"
CLIENT_PREFIXES = ["/_matrix/client/v3", "/_matrix/client/r0"]


# ---------------------------------------------------------------------------
# Assertion helpers
# ---------------------------------------------------------------------------

def assert_json_content_type(resp):
    ctype = resp.header("Content-Type", "")
    assert ctype.split(";")[0].strip().lower() == "application/json", \
        f"Content-Type {ctype!r} on {resp!r}"


def assert_error(resp, status, errcodes):
    """`resp` is a Matrix error: given status, JSON {"errcode","error"}."""
    if isinstance(errcodes, str):
        errcodes = {errcodes}
    assert resp.status == status, f"expected {status}, got {resp!r}"
    assert_json_content_type(resp)
    assert isinstance(resp.json, dict), f"error body is not an object: {resp!r}"
    assert resp.json.get("errcode") in errcodes, \
        f"errcode {resp.json.get('errcode')!r}, expected one of {errcodes}"
    assert isinstance(resp.json.get("error"), str), \
        f"error body lacks an 'error' string: {resp!r}"


def header_set(value, lower=True):
    items = {v.strip() for v in (value or "").split(",") if v.strip()}
    return {v.lower() for v in items} if lower else {v.upper() for v in items}


def assert_cors(resp):
    assert resp.header("Access-Control-Allow-Origin") == "*", \
        f"Access-Control-Allow-Origin missing or wrong on {resp!r}"
    methods = header_set(resp.header("Access-Control-Allow-Methods"),
                         lower=False)
    want = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"}
    assert want <= methods, f"Allow-Methods lacks {want - methods}"
    headers = header_set(resp.header("Access-Control-Allow-Headers"))
    want = {"authorization", "content-type", "x-requested-with"}
    assert want <= headers, f"Allow-Headers lacks {want - headers}"


def cli_version():
    proc = harness.run_cli(["version"])
    assert proc.returncode == 0, proc.stderr
    m = re.fullmatch(r"myelin (\d+\.\d+\.\d+)\s*", proc.stdout)
    assert m, f"unexpected `myelin version` output {proc.stdout!r}"
    return m.group(1)


def meson_version():
    text = (harness.REPO_ROOT / "meson.build").read_text()
    m = re.search(r"project\([^)]*?version\s*:\s*'([^']+)'", text, re.S)
    assert m, "no version in meson.build"
    return m.group(1)


def dechunk(body):
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2:]
    return out


def parse_raw(raw):
    """(status, headers, Response-like JSON body) of a raw HTTP reply."""
    status, headers, body = harness.split_raw_response(raw)
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = dechunk(body)
    elif "content-length" in headers:
        body = body[:int(headers["content-length"])]
    return status, headers, harness.Response(status, headers, body)


def stream_request(port, head, chunks, early_wait=0.0, timeout=20.0):
    """Send `head`, then the body `chunks`, stopping as soon as the
    server answers or hangs up; return everything it sent back.
    `early_wait` seconds are given to the server to answer after the
    head alone (for checks that must happen before the body)."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head)

        def readable(wait):
            r, _, _ = select.select([s], [], [], wait)
            return bool(r)

        answered = early_wait > 0 and readable(early_wait)
        if not answered:
            for chunk in chunks:
                if readable(0):
                    break
                try:
                    s.sendall(chunk)
                except OSError:
                    break
        s.settimeout(timeout)
        while True:
            try:
                data = s.recv(65536)
            except OSError:
                break
            if not data:
                break
            received += data
            if b"\r\n\r\n" in received:
                status, headers, body = harness.split_raw_response(received)
                n = headers.get("content-length")
                if n is not None and len(body) >= int(n):
                    break
    return received


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def test_version_command():
    assert cli_version() == meson_version()


def test_unknown_command_fails():
    proc = harness.run_cli(["no-such-command"])
    assert proc.returncode != 0
    assert (proc.stderr + proc.stdout).strip(), "no message for a bad command"
    assert not harness.sanitizer_reports(proc.stderr), proc.stderr


def test_init_writes_config_and_private_key(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    proc = harness.run_cli(["init", "--server-name", "example.test",
                            "--data-dir", data])
    assert proc.returncode == 0, proc.stderr
    assert not harness.sanitizer_reports(proc.stderr), proc.stderr

    config = (data / "myelin.yaml").read_text()
    assert "example.test" in config
    assert re.search(r"^\s*#", config, re.M), "config has no comments"
    for key in ("server_name", "public_baseurl", "listeners", "database",
                "signing_key_path", "media_path", "registration",
                "rate_limits", "federation", "log_level"):
        assert re.search(rf"^\s*#?\s*{key}:", config, re.M), \
            f"init config does not mention {key}"

    key_path = data / "signing.key"
    mode = stat.S_IMODE(key_path.stat().st_mode)
    assert mode == 0o600, f"signing.key mode {oct(mode)}"
    key = key_path.read_text()
    m = re.fullmatch(r"ed25519 (a_[A-Za-z0-9_]+) ([A-Za-z0-9+/]+)\n?", key)
    assert m, f"signing.key format: {key!r}"
    seed = m.group(2)
    assert len(seed) == 43, "seed is not unpadded base64 of 32 bytes"
    assert len(base64.b64decode(seed + "=")) == 32


def test_init_keys_differ(tmp_path):
    keys = []
    for name in ("a", "b"):
        d = tmp_path / name
        d.mkdir()
        proc = harness.run_cli(["init", "--server-name", f"{name}.test",
                                "--data-dir", d])
        assert proc.returncode == 0, proc.stderr
        keys.append((d / "signing.key").read_text().split()[2])
    assert keys[0] != keys[1], "two inits produced the same signing key"


def test_serve_without_config_file_fails(tmp_path):
    proc = harness.run_cli(["serve", "--config", tmp_path / "missing.yaml"],
                           timeout=30)
    assert proc.returncode != 0
    assert proc.stderr.strip()
    assert not harness.sanitizer_reports(proc.stderr), proc.stderr


def _replace_line(text, startswith, new):
    lines = text.splitlines()
    for i, line in enumerate(lines):
        body = line.lstrip(" -")
        if body.startswith(startswith):
            lines[i] = line[:len(line) - len(body)] + new
            return "\n".join(lines) + "\n", i + 1
    raise AssertionError(f"no line starting with {startswith!r}")


def _insert_after(text, startswith, new):
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(startswith):
            lines.insert(i + 1, new)
            return "\n".join(lines) + "\n", i + 2
    raise AssertionError(f"no line starting with {startswith!r}")


def _append(text, new):
    lines = text.splitlines() + [new]
    return "\n".join(lines) + "\n", len(lines)


BAD_CONFIGS = {
    "unknown-top-level-key": lambda t: _append(t, "no_such_option: 1"),
    "unknown-nested-key": lambda t: _insert_after(t, "registration:",
                                                  "  colour: blue"),
    "bad-log-level": lambda t: _replace_line(t, "log_level:",
                                             'log_level: "loud"'),
    "bad-engine": lambda t: _replace_line(t, "engine:", 'engine: "mongodb"'),
    "bad-bind-port": lambda t: _replace_line(t, "bind:",
                                             'bind: "127.0.0.1:notaport"'),
    "bad-boolean": lambda t: _replace_line(t, "tokens_required:",
                                           'tokens_required: "maybe"'),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_is_rejected_with_file_and_line(tmp_path, case):
    srv = harness.MyelinServer(tmp_path / "srv", engine="sqlite")
    good = srv.config_path.read_text()
    text, line = BAD_CONFIGS[case](good)
    srv.write_config(text)
    proc = subprocess.Popen(
        [str(harness.myelin_binary()), "serve", "--config",
         str(srv.config_path)], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=harness.sanitizer_env(), text=True,
        errors="replace")
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"serve kept running with a bad config ({case}):\n{err}")
    assert proc.returncode != 0, f"serve accepted a bad config ({case})"
    assert not harness.sanitizer_reports(err), err
    locations = re.findall(r"myelin\.yaml:(\d+):", err)
    assert locations, f"no FILE:LINE in stderr:\n{err}"
    assert str(line) in locations, \
        f"expected line {line}, stderr says {locations}:\n{err}"
    # It must not have served anything.
    try:
        resp = harness.http_request(srv.base_url, "GET", "/health", timeout=2)
        pytest.fail(f"something answered on the bad config's port: {resp!r}")
    except OSError:
        pass


# ---------------------------------------------------------------------------
# Discovery and plain endpoints
# ---------------------------------------------------------------------------

def test_health(server):
    resp = server.get("/health")
    assert resp.status == 200
    assert resp.body == b"OK"


def test_client_versions(server):
    resp = server.get("/_matrix/client/versions")
    assert resp.status == 200, resp
    assert_json_content_type(resp)
    versions = resp.json["versions"]
    assert isinstance(versions, list) and versions
    for v in versions:
        assert isinstance(v, str) and re.fullmatch(r"v1\.\d+|r0\.\d+\.\d+", v), v
    assert set(versions) & {f"v1.{n}" for n in range(1, 10)}, \
        f"none of v1.1..v1.9 in {versions}"
    unstable = resp.json["unstable_features"]
    assert isinstance(unstable, dict)
    assert all(isinstance(v, bool) for v in unstable.values()), unstable


def test_well_known_client(server):
    resp = server.get("/.well-known/matrix/client")
    assert resp.status == 200, resp
    assert_json_content_type(resp)
    assert resp.json["m.homeserver"]["base_url"].rstrip("/") == \
        server.public_baseurl.rstrip("/")


def test_well_known_server(server):
    resp = server.get("/.well-known/matrix/server")
    assert resp.status == 200, resp
    assert_json_content_type(resp)
    assert resp.json == {"m.server": server.server_name}


def test_nio_discovery(server):
    """matrix-nio finds the homeserver through /.well-known/matrix/client."""
    import nio

    async def discover():
        client = nio.AsyncClient(server.base_url)
        try:
            return await client.discovery_info()
        finally:
            await client.close()

    resp = asyncio.run(discover())
    assert isinstance(resp, nio.DiscoveryInfoResponse), resp
    assert resp.homeserver_url == server.public_baseurl.rstrip("/")


def test_federation_version(server):
    resp = server.get("/_matrix/federation/v1/version")
    assert resp.status == 200, resp
    assert_json_content_type(resp)
    assert resp.json["server"]["name"] == "Myelin"
    assert resp.json["server"]["version"] == cli_version()


# ---------------------------------------------------------------------------
# Errors and CORS
# ---------------------------------------------------------------------------

UNKNOWN_PATHS = [
    "/_matrix/client/v3/definitely_not_an_endpoint",
    "/_matrix/client/r0/definitely_not_an_endpoint",
    "/_matrix/client/unstable/org.matrix.msc2965/auth_issuer",
    "/_matrix/federation/v1/definitely_not_an_endpoint",
    "/_matrix/media/v3/definitely_not_an_endpoint",
    "/no/such/thing",
    "/_matrix/client/versions/extra",
]


@pytest.mark.parametrize("path", UNKNOWN_PATHS)
def test_unknown_endpoint_is_404_unrecognized(server, path):
    resp = server.get(path)
    assert_error(resp, 404, "M_UNRECOGNIZED")
    assert_cors(resp)


WRONG_METHODS = [
    ("POST", "/_matrix/client/versions"),
    ("DELETE", "/.well-known/matrix/client"),
    ("PUT", "/_matrix/federation/v1/version"),
    ("PUT", "/_matrix/client/v3/login"),
    ("DELETE", "/_matrix/client/r0/login"),
]


@pytest.mark.parametrize("method,path", WRONG_METHODS)
def test_wrong_method_is_405_unrecognized(server, method, path):
    resp = server.request(method, path, body=b"{}",
                          headers={"Content-Type": "application/json"})
    assert_error(resp, 405, "M_UNRECOGNIZED")
    assert_cors(resp)


def test_cors_on_success_and_error_responses(server):
    responses = {
        "versions": server.get("/_matrix/client/versions"),
        "health": server.get("/health"),
        "well-known": server.get("/.well-known/matrix/client"),
        "404": server.get("/_matrix/client/v3/nope"),
        "405": server.request("POST", "/_matrix/client/versions", body=b"{}"),
        "400": server.post(LOGIN, body=b"{nope",
                           headers={"Content-Type": "application/json"}),
    }
    for name, resp in responses.items():
        try:
            assert_cors(resp)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None


PREFLIGHT_PATHS = [
    "/_matrix/client/versions",
    "/_matrix/client/v3/login",
    "/_matrix/client/r0/login",
    "/_matrix/client/v3/account/whoami",
    "/_matrix/client/v3/rooms/!room:example.test/send/m.room.message/txn1",
    "/_matrix/client/v3/definitely_not_an_endpoint",
    "/not/matrix/at/all",
]


@pytest.mark.parametrize("path", PREFLIGHT_PATHS)
def test_options_preflight_answers_any_path(server, path):
    resp = server.request("OPTIONS", path, headers={
        "Origin": "https://app.example.test",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    })
    assert resp.status == 200, resp
    assert_cors(resp)


def test_options_ignores_bad_credentials(server):
    resp = server.request("OPTIONS", "/_matrix/client/v3/account/whoami",
                          headers={"Authorization": "Bearer not-a-token"})
    assert resp.status == 200, resp
    assert_cors(resp)


# ---------------------------------------------------------------------------
# Request bodies
# ---------------------------------------------------------------------------

NOT_JSON = {
    "broken-object": b"{not json",
    "unterminated": b'{"type": "m.login.password"',
    "trailing-garbage": b'{"type": "m.login.password"} trailing',
    "bare-word": b"hello",
    "invalid-utf8": b'{"type": "\xff\xfe"}',
}
WRONG_SHAPE = {
    "array": b"[1, 2, 3]",
    "string": b'"m.login.password"',
    "number": b"42",
    "null": b"null",
    "boolean": b"true",
}


@pytest.mark.parametrize("prefix", CLIENT_PREFIXES)
@pytest.mark.parametrize("case", sorted(NOT_JSON))
def test_malformed_json_is_not_json(server, prefix, case):
    resp = server.post(prefix + "/login", body=NOT_JSON[case],
                       headers={"Content-Type": "application/json"})
    assert_error(resp, 400, "M_NOT_JSON")
    assert_cors(resp)


@pytest.mark.parametrize("prefix", CLIENT_PREFIXES)
@pytest.mark.parametrize("case", sorted(WRONG_SHAPE))
def test_json_that_is_not_an_object_is_bad_json(server, prefix, case):
    resp = server.post(prefix + "/login", body=WRONG_SHAPE[case],
                       headers={"Content-Type": "application/json"})
    assert_error(resp, 400, "M_BAD_JSON")


def test_r0_and_v3_login_answer_alike(server):
    body = {"type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "nobody"},
            "password": "wrong"}
    v3 = server.post("/_matrix/client/v3/login", json=body)
    r0 = server.post("/_matrix/client/r0/login", json=body)
    assert v3.status not in (404, 405, 500), v3
    assert (r0.status, r0.errcode) == (v3.status, v3.errcode), (r0, v3)


def _login_body_of_size(size):
    prefix = b'{"type":"m.login.password","password":"x","pad":"'
    suffix = b'"}'
    return prefix + b"a" * (size - len(prefix) - len(suffix)) + suffix


def test_body_under_limit_is_accepted(server):
    body = _login_body_of_size(1_000_000)
    resp = server.post(LOGIN, body=body,
                       headers={"Content-Type": "application/json"})
    assert resp.status not in (404, 405, 413, 500), resp


def test_body_of_exactly_one_mib_is_accepted(server):
    body = _login_body_of_size(MiB)
    resp = server.post(LOGIN, body=body,
                       headers={"Content-Type": "application/json"})
    assert resp.status not in (404, 405, 413, 500), resp


def test_body_one_byte_over_limit_is_413(server):
    head = (f"POST {LOGIN} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {MiB + 1}\r\n"
            "Connection: close\r\n\r\n").encode()
    body = _login_body_of_size(MiB + 1)
    chunks = [body[i:i + 65536] for i in range(0, len(body), 65536)]
    status, _, resp = parse_raw(stream_request(server.port, head, chunks))
    assert status == 413, resp
    assert_error(resp, 413, "M_TOO_LARGE")
    assert_cors(resp)
    assert server.get("/health").status == 200


def test_content_length_over_limit_is_413_before_the_body(server):
    """The declared length alone is enough to refuse the request."""
    head = (f"POST {LOGIN} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\n"
            f"Content-Length: {2 * MiB}\r\nConnection: close\r\n\r\n").encode()
    raw = harness.raw_exchange("127.0.0.1", server.port, head,
                               read_timeout=5.0)
    status, _, resp = parse_raw(raw)
    assert status == 413, f"no 413 before the body was sent: {raw[:300]!r}"
    assert_error(resp, 413, "M_TOO_LARGE")
    assert server.get("/health").status == 200


def test_chunked_body_over_limit_is_413(server):
    head = (f"POST {LOGIN} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
    piece = b'{"pad":"' + b"a" * 65000
    chunks = []
    total = 0
    while total < 2 * MiB:
        chunks.append(b"%x\r\n%s\r\n" % (len(piece), piece))
        total += len(piece)
    chunks.append(b"0\r\n\r\n")
    status, _, resp = parse_raw(stream_request(server.port, head, chunks))
    assert status == 413, resp
    assert_error(resp, 413, "M_TOO_LARGE")
    assert server.get("/health").status == 200


def test_small_chunked_body_is_read(server):
    head = (f"POST {LOGIN} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
    chunks = [b"5\r\n[1, 2\r\n", b"3\r\n, 3\r\n", b"1\r\n]\r\n", b"0\r\n\r\n"]
    status, _, resp = parse_raw(stream_request(server.port, head, chunks))
    assert_error(resp, 400, "M_BAD_JSON")


NESTED = {
    "10000-open-brackets": b"[" * 10000,
    "10000-deep-array": b"[" * 10000 + b"]" * 10000,
    "100-deep-object": b'{"a":' * 100 + b"1" + b"}" * 100,
    "70-deep-object": b'{"a":' * 70 + b"1" + b"}" * 70,
}


@pytest.mark.parametrize("case", sorted(NESTED))
def test_deep_nesting_is_rejected(server, case):
    resp = server.post(LOGIN, body=NESTED[case],
                       headers={"Content-Type": "application/json"})
    assert_error(resp, 400, {"M_BAD_JSON", "M_NOT_JSON"})
    assert server.get("/health").status == 200


# ---------------------------------------------------------------------------
# Malformed traffic
# ---------------------------------------------------------------------------

_rng = random.Random(0x4D79656C)

GARBAGE = {
    # name: (payload chunks, close write side, statuses allowed if answered)
    "binary-junk": ([bytes(_rng.randrange(256) for _ in range(4096))],
                    False, "error"),
    "binary-junk-after-request-line": (
        [b"GET /health HTTP/1.1\r\n" +
         bytes(_rng.randrange(256) for _ in range(2048)) + b"\r\n\r\n"],
        False, "any"),
    "long-header-line": (
        [b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Junk: " +
         b"a" * MiB + b"\r\n\r\n"], False, "error"),
    "many-headers": (
        [b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
         b"".join(b"X-H%d: v\r\n" % i for i in range(20000)) + b"\r\n"],
        False, "error"),
    "long-url": ([b"GET /" + b"a" * (2 * MiB) + b" HTTP/1.1\r\n\r\n"],
                 False, "error"),
    "bare-lf": ([b"GET /health HTTP/1.1\nHost: 127.0.0.1\n\n"], False, "any"),
    "no-blank-line": ([b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"],
                      True, "any"),
    "no-crlf-at-all": ([b"GET /health HTTP/1.1"], True, "any"),
    "invalid-method-token": ([b"G\x00T /health HTTP/1.1\r\nHost: x\r\n\r\n"],
                             False, "error"),
    "unknown-method": ([b"BREW /health HTTP/1.1\r\nHost: x\r\n\r\n"],
                       False, "error"),
    "bad-http-version": ([b"GET /health HTTP/9.9\r\nHost: x\r\n\r\n"],
                         False, "error"),
    "nul-in-header": ([b"GET /health HTTP/1.1\r\nHo\x00st: x\r\n\r\n"],
                      False, "any"),
    "content-length-not-a-number": (
        [b"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: x\r\n"
         b"Content-Length: abc\r\n\r\n{}"], False, "error"),
    "content-length-negative": (
        [b"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: x\r\n"
         b"Content-Length: -5\r\n\r\n{}"], False, "error"),
    "content-length-overflow": (
        [b"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: x\r\n"
         b"Content-Length: 999999999999999999999999999\r\n\r\n{}"],
        False, "error"),
    "bad-chunk-size": (
        [b"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: x\r\n"
         b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"],
        False, "error"),
    "truncated-body-then-close": (
        [b"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: x\r\n"
         b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
         b'{"type": "m.lo'], True, "any"),
    "truncated-headers-then-close": (
        [b"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: x\r\nContent-Le"],
        True, "any"),
    "connect-and-close": ([b""], True, "any"),
}


@pytest.mark.parametrize("case", sorted(GARBAGE))
def test_malformed_traffic_leaves_server_healthy(server, case):
    chunks, close_write, allowed = GARBAGE[case]
    raw = server.raw(chunks, read_timeout=5.0, close_write=close_write)
    status = harness.parse_status(raw)
    if allowed == "error" and status is not None:
        assert 400 <= status < 500 or status in (501, 505), \
            f"{case}: answered {raw[:200]!r}"
    if raw and status is None:
        pytest.fail(f"{case}: reply is not HTTP: {raw[:200]!r}")
    resp = server.get("/health")
    assert resp.status == 200 and resp.body == b"OK"
    assert server.running()


def test_many_concurrent_connections(server):
    threads, per_thread = 50, 20
    paths = ["/health", "/_matrix/client/versions",
             "/_matrix/federation/v1/version", "/_matrix/client/v3/nope"]
    expected = {"/health": 200, "/_matrix/client/versions": 200,
                "/_matrix/federation/v1/version": 200,
                "/_matrix/client/v3/nope": 404}
    barrier = threading.Barrier(threads)

    def worker(n):
        barrier.wait(timeout=60)
        bad = []
        for i in range(per_thread):
            path = paths[(n + i) % len(paths)]
            try:
                resp = server.get(path, timeout=60)
                if resp.status != expected[path]:
                    bad.append(f"{path}: {resp.status}")
            except OSError as exc:
                bad.append(f"{path}: {exc!r}")
        return bad

    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(worker, range(threads)))
    failures = [f for r in results for f in r]
    assert not failures, \
        f"{len(failures)} of {threads * per_thread} failed: {failures[:10]}"


# ---------------------------------------------------------------------------
# Listeners, shutdown, accounts
# ---------------------------------------------------------------------------

def test_two_listeners_both_answer(server_factory):
    srv = server_factory(start=False)
    port2 = harness.free_port()
    srv.config["listeners"].append({
        "bind": f"127.0.0.1:{port2}", "tls": False,
        "resources": list(harness.DEFAULT_RESOURCES)})
    srv.write_config()
    srv.start()
    for port in (srv.port, port2):
        base = f"http://127.0.0.1:{port}"
        assert srv.get("/health", base_url=base).body == b"OK"
        resp = srv.get("/_matrix/client/versions", base_url=base)
        assert resp.status == 200 and "versions" in resp.json, resp


def test_listener_resources_limit_routes(server_factory):
    """A listener without the `client` resource does not serve client
    endpoints; one without `federation` does not serve federation."""
    srv = server_factory(start=False)
    port2 = harness.free_port()
    srv.config["listeners"][0]["resources"] = ["client"]
    srv.config["listeners"].append({
        "bind": f"127.0.0.1:{port2}", "tls": False,
        "resources": ["federation", "keys"]})
    srv.write_config()
    srv.start()
    fed = f"http://127.0.0.1:{port2}"
    assert srv.get("/_matrix/client/versions").status == 200
    assert_error(srv.get("/_matrix/federation/v1/version"), 404,
                 "M_UNRECOGNIZED")
    assert srv.get("/_matrix/federation/v1/version", base_url=fed).status == 200
    assert_error(srv.get("/_matrix/client/versions", base_url=fed), 404,
                 "M_UNRECOGNIZED")


def test_sigint_exits_cleanly(server_factory):
    srv = server_factory()
    assert srv.get("/health").status == 200
    code = srv.stop(signal.SIGINT)
    assert code == 0, f"exit {code} after SIGINT:\n{harness.tail(srv.stderr())}"
    assert not srv.problems(), srv.problems()


def test_sigterm_exits_cleanly_after_traffic(server_factory):
    srv = server_factory()
    for _ in range(20):
        srv.get("/_matrix/client/versions")
        srv.post(LOGIN, body=b"{bad", headers={"Content-Type": "application/json"})
    code = srv.stop(signal.SIGTERM)
    assert code == 0, f"exit {code} after SIGTERM:\n{harness.tail(srv.stderr())}"
    assert not srv.problems(), srv.problems()


def test_sigterm_with_idle_open_connection(server_factory):
    """An idle keep-alive connection must not hold shutdown up."""
    srv = server_factory()
    sock = socket.create_connection(("127.0.0.1", srv.port))
    try:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(5)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        code = srv.stop(signal.SIGTERM, timeout=20)
    finally:
        sock.close()
    assert code == 0, srv.problems()


def _register(srv, user, *extra):
    return srv.cli("register-user", "--user", user, "--password",
                   "correct horse battery staple", *extra)


def test_register_user_before_serving(server_factory):
    srv = server_factory(start=False)
    first = _register(srv, "alice")
    assert first.returncode == 0, first.stderr
    admin = _register(srv, "bob", "--admin")
    assert admin.returncode == 0, admin.stderr
    again = _register(srv, "alice")
    assert again.returncode != 0, "registering alice twice succeeded"
    message = (again.stderr + again.stdout).lower()
    assert "alice" in message or "exist" in message or "taken" in message, \
        f"no useful message: {again.stderr!r}"
    for proc in (first, admin, again):
        assert not harness.sanitizer_reports(proc.stderr), proc.stderr
    srv.start()
    assert srv.get("/health").status == 200


def test_register_user_while_serving(server):
    first = _register(server, "carol")
    assert first.returncode == 0, first.stderr
    again = _register(server, "carol")
    assert again.returncode != 0
    assert (again.stderr + again.stdout).strip()
    assert server.get("/health").status == 200


# ---------------------------------------------------------------------------
# Federation listener (TLS)
# ---------------------------------------------------------------------------

def test_federation_listeners_serve_version_over_tls(federation, test_ca):
    servers = federation(2)
    ctx = test_ca.client_context()
    names = set()
    for srv in servers:
        resp = srv.get("/_matrix/federation/v1/version",
                       base_url=srv.federation_url, ssl_context=ctx)
        assert resp.status == 200, resp
        assert resp.json["server"]["name"] == "Myelin"
        wk = srv.get("/.well-known/matrix/server",
                     base_url=srv.federation_url, ssl_context=ctx)
        assert wk.json == {"m.server": srv.server_name}
        assert srv.get("/_matrix/client/versions").status == 200
        names.add(srv.server_name)
    assert len(names) == 2


def test_federation_tls_fails_without_the_ca(federation, tmp_path):
    srv = federation(1)[0]
    port = srv.tls_port
    with pytest.raises(ssl.SSLCertVerificationError):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            ssl.create_default_context().wrap_socket(
                s, server_hostname="127.0.0.1")
    other = harness.TestCA(tmp_path / "other-ca")
    with pytest.raises(ssl.SSLCertVerificationError):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            other.client_context().wrap_socket(s, server_hostname="127.0.0.1")
    assert srv.get("/health").status == 200


def test_federation_three_servers_and_plain_http_on_tls_port(federation,
                                                             test_ca):
    servers = federation(3)
    assert len({s.server_name for s in servers}) == 3
    ctx = test_ca.client_context()
    for srv in servers:
        raw = srv.raw([b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"],
                      port=srv.tls_port, read_timeout=3.0)
        assert harness.parse_status(raw) != 200, \
            "plain HTTP was served on the TLS listener"
        resp = srv.get("/health", base_url=srv.federation_url,
                       ssl_context=ctx)
        assert resp.status == 200 and resp.body == b"OK"
