"""Black-box harness for the Myelin integration suite.

Everything here drives the real `myelin` binary from the outside: it writes
config files, starts and stops `myelin serve`, talks HTTP to it with the
standard library, and brings up the services the server needs (a throwaway
PostgreSQL cluster, a test certificate authority for federation TLS).

Nothing in this module depends on pytest, so tests/run_all.py and
scripts/with-postgres reuse the PostgreSQL part as well. conftest.py turns
these pieces into fixtures.
"""

import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
import atexit
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# Lines that mean a sanitizer fired, whatever the exit code says.
SANITIZER_PATTERNS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
)

DEFAULT_RESOURCES = ["client", "federation", "media", "keys"]


# ---------------------------------------------------------------------------
# Small utilities
# ---------------------------------------------------------------------------

def myelin_binary():
    """Path of the binary under test: $MYELIN_BIN, else build-asan/myelin,
    else build/myelin (relative to the repository root)."""
    env = os.environ.get("MYELIN_BIN")
    if env:
        path = Path(env)
        if not path.is_absolute():
            path = REPO_ROOT / path
        return path
    for rel in ("build-asan/myelin", "build/myelin"):
        path = REPO_ROOT / rel
        if path.exists():
            return path
    return REPO_ROOT / "build-asan/myelin"


def sanitizer_env(base=None):
    """Environment for any myelin process: sanitizers report leaks and
    stop on undefined behaviour, with symbolized stacks where possible."""
    env = dict(os.environ if base is None else base)
    env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0"
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    if "ASAN_SYMBOLIZER_PATH" not in env:
        for cand in ("/usr/bin/llvm-symbolizer", "/usr/bin/llvm-symbolizer-14"):
            if os.path.exists(cand):
                env["ASAN_SYMBOLIZER_PATH"] = cand
                break
    return env


def sanitizer_reports(text):
    """Return the lines of `text` that carry a sanitizer report."""
    return [line for line in text.splitlines()
            if any(p in line for p in SANITIZER_PATTERNS)]


# Ports handed out by this process: a server that is stopped for a restart
# keeps its port, which must not be given to another server meanwhile.
_ports_given = set()
# Each pytest-xdist worker takes ports from a range of its own, below the
# kernel's ephemeral range (client sockets), so parallel workers never hand
# out the same port.
_PORTS_PER_WORKER = 4000
_PORTS_BASE = 20000


def free_port():
    """A TCP port on 127.0.0.1 that nobody listens on right now and that
    this process has not handed out before."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    k = int(worker[2:]) if worker[2:].isdigit() else 0
    base = _PORTS_BASE + (k % 3) * _PORTS_PER_WORKER
    for _ in range(500):
        port = base + random.randrange(_PORTS_PER_WORKER)
        if port in _ports_given:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _ports_given.add(port)
        return port
    # Range exhausted: any port the kernel gives.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(text, lines=60):
    parts = text.splitlines()
    return "\n".join(parts[-lines:])


def run_cli(args, timeout=60, env=None, cwd=None):
    """Run `myelin ARGS...` to completion; returns CompletedProcess with
    text stdout/stderr."""
    cmd = [str(myelin_binary())] + [str(a) for a in args]
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, errors="replace", timeout=timeout,
                          env=sanitizer_env(env), cwd=cwd)


# Processes that must not outlive the test run, even if a test run is
# interrupted before its fixtures finalize.
_live_procs = set()
_live_lock = threading.Lock()


def _kill_leftovers():
    with _live_lock:
        procs = list(_live_procs)
    for proc in procs:
        if proc.poll() is None:
            try:
                proc.kill()
                proc.wait(timeout=5)
            except Exception:
                pass


atexit.register(_kill_leftovers)


# ---------------------------------------------------------------------------
# YAML writing (the config contract only needs maps, lists and scalars)
# ---------------------------------------------------------------------------

def _yaml_scalar(value):
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return str(value)
    # A JSON string is a valid YAML double-quoted scalar.
    return json.dumps(str(value))


def _yaml_lines(value, indent):
    pad = " " * indent
    out = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict):
                out.append(f"{pad}{key}:")
                out.extend(_yaml_lines(item, indent + 2))
            elif isinstance(item, list) and item and all(
                    isinstance(x, dict) for x in item):
                out.append(f"{pad}{key}:")
                out.extend(_yaml_lines(item, indent + 2))
            elif isinstance(item, list):
                flow = ", ".join(_yaml_scalar(x) for x in item)
                out.append(f"{pad}{key}: [{flow}]")
            else:
                out.append(f"{pad}{key}: {_yaml_scalar(item)}")
    elif isinstance(value, list):
        for item in value:
            sub = _yaml_lines(item, indent + 2)
            first = sub[0].lstrip()
            out.append(f"{pad}- {first}")
            out.extend(sub[1:])
    else:
        out.append(pad + _yaml_scalar(value))
    return out


def to_yaml(config):
    """Render a config dict as block YAML, keys in insertion order."""
    return "\n".join(_yaml_lines(config, 0)) + "\n"


# ---------------------------------------------------------------------------
# HTTP client helpers
# ---------------------------------------------------------------------------

class Response:
    """One HTTP response: status, headers (case-insensitive .get),
    raw body bytes and the parsed JSON body (None if not JSON)."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        self.json = None
        try:
            self.json = json.loads(body.decode("utf-8")) if body else None
        except (ValueError, UnicodeDecodeError):
            self.json = None

    @property
    def text(self):
        return self.body.decode("utf-8", errors="replace")

    @property
    def errcode(self):
        if isinstance(self.json, dict):
            return self.json.get("errcode")
        return None

    def header(self, name, default=None):
        return self.headers.get(name, default)

    def __repr__(self):
        snippet = self.text[:300]
        return f"<Response {self.status} {snippet!r}>"


def http_request(base_url, method, path, body=None, json_body=None,
                 headers=None, timeout=30, ssl_context=None):
    """Send one request on a fresh connection and return a Response.

    `body` is sent as-is (bytes or str); `json_body` is serialised and
    labelled application/json. Relative `path` is joined to `base_url`.
    """
    url = urllib.parse.urlsplit(base_url)
    hdrs = {"Connection": "close"}
    if headers:
        hdrs.update(headers)
    if json_body is not None:
        body = json.dumps(json_body)
        hdrs.setdefault("Content-Type", "application/json")
    if isinstance(body, str):
        body = body.encode("utf-8")
    if url.scheme == "https":
        conn = http.client.HTTPSConnection(url.hostname, url.port,
                                           timeout=timeout,
                                           context=ssl_context)
    else:
        conn = http.client.HTTPConnection(url.hostname, url.port,
                                          timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, resp.headers, data)
    finally:
        conn.close()


def raw_exchange(host, port, payload, read_timeout=5.0, close_write=False):
    """Write `payload` (bytes, or a list of byte chunks) on a raw TCP
    socket and return whatever the server sends back before it closes the
    connection or `read_timeout` passes. Write errors (the server hung up
    first) are tolerated; what was received so far is returned."""
    chunks = payload if isinstance(payload, list) else [payload]
    received = b""
    with socket.create_connection((host, port), timeout=read_timeout) as s:
        try:
            for chunk in chunks:
                s.sendall(chunk)
            if close_write:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        deadline = time.monotonic() + read_timeout
        while time.monotonic() < deadline:
            try:
                s.settimeout(max(0.05, deadline - time.monotonic()))
                data = s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                break
            if not data:
                break
            received += data
    return received


def parse_status(raw):
    """Status code of a raw HTTP response, or None if there is none."""
    m = re.match(rb"HTTP/1\.[01] (\d{3})", raw)
    return int(m.group(1)) if m else None


class Headers(dict):
    """Header map with case-insensitive keys (stored lower-cased)."""

    def __setitem__(self, key, value):
        super().__setitem__(key.lower(), value)

    def __getitem__(self, key):
        return super().__getitem__(key.lower())

    def __contains__(self, key):
        return super().__contains__(key.lower())

    def get(self, key, default=None):
        return super().get(key.lower(), default)


def split_raw_response(raw):
    """(status, Headers, body bytes) of a raw response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = parse_status(lines[0]) if lines else None
    headers = Headers()
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode("latin-1")] = \
            value.strip().decode("latin-1")
    return status, headers, body


# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------

def postgres_bin_dir():
    """The bin directory of the newest PostgreSQL under /usr/lib/postgresql,
    or None when PostgreSQL is not installed."""
    root = Path("/usr/lib/postgresql")
    best = None
    if root.is_dir():
        for entry in root.iterdir():
            if not (entry / "bin" / "initdb").exists():
                continue
            try:
                version = float(entry.name)
            except ValueError:
                continue
            if best is None or version > best[0]:
                best = (version, entry / "bin")
    if best:
        return best[1]
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _psql_path():
    bindir = postgres_bin_dir()
    if bindir and (bindir / "psql").exists():
        return str(bindir / "psql")
    psql = shutil.which("psql")
    if not psql:
        raise RuntimeError("psql not found (install postgresql-client)")
    return psql


def conninfo_with_dbname(conninfo, dbname):
    """`conninfo` pointing at database `dbname` instead of its own."""
    if conninfo.startswith(("postgres://", "postgresql://")):
        parts = urllib.parse.urlsplit(conninfo)
        return urllib.parse.urlunsplit(parts._replace(path="/" + dbname))
    # libpq keeps the last value of a repeated keyword.
    return f"{conninfo} dbname={dbname}"


class Postgres:
    """A PostgreSQL server reachable through a libpq conninfo string, able
    to create and drop scratch databases for individual servers."""

    _counter = 0
    _counter_lock = threading.Lock()

    def __init__(self, conninfo):
        self.conninfo = conninfo

    def psql(self, sql, dbconninfo=None):
        cmd = [_psql_path(), "-X", "-q", "-v", "ON_ERROR_STOP=1",
               "-d", dbconninfo or self.conninfo, "-c", sql]
        env = dict(os.environ)
        env.setdefault("PGCONNECT_TIMEOUT", "10")
        proc = subprocess.run(cmd, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env,
                              timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"psql failed ({sql}): {proc.stderr.strip()}")
        return proc.stdout

    def create_database(self, prefix="myelin_test"):
        """Create a fresh empty database; returns (name, conninfo)."""
        with Postgres._counter_lock:
            Postgres._counter += 1
            n = Postgres._counter
        name = f"{prefix}_{os.getpid()}_{n}_{random.randrange(1 << 32):08x}"
        self.psql(f'CREATE DATABASE "{name}" TEMPLATE template0 '
                  f"ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'")
        return name, conninfo_with_dbname(self.conninfo, name)

    def drop_database(self, name):
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self):
        pass


class PostgresCluster(Postgres):
    """A private PostgreSQL cluster in a temporary directory, listening on
    127.0.0.1 at a free port with trust authentication for user
    `postgres`. initdb refuses to run as root, so when we are root the
    cluster runs as the `postgres` system user."""

    def __init__(self):
        self.bindir = postgres_bin_dir()
        if self.bindir is None:
            raise RuntimeError("PostgreSQL binaries not found "
                               "(run scripts/install-deps.sh)")
        self.root = Path(tempfile.mkdtemp(prefix="myelin-pg-"))
        self.datadir = self.root / "data"
        self.sockdir = self.root / "sock"
        self.logfile = self.root / "postgres.log"
        self.port = free_port()
        self.started = False
        super().__init__(f"host=127.0.0.1 port={self.port} user=postgres "
                         f"dbname=postgres")

    def _as_owner(self, cmd):
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--"] + cmd
        return cmd

    def _run(self, cmd, timeout=120):
        proc = subprocess.run(self._as_owner(cmd), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True,
                              timeout=timeout, cwd=str(self.root))
        if proc.returncode != 0:
            log = ""
            if self.logfile.exists():
                log = tail(self.logfile.read_text(errors="replace"))
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{log}")
        return proc.stdout

    def start(self):
        self.sockdir.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.sockdir, "postgres", "postgres")
        self._run([str(self.bindir / "initdb"), "-D", str(self.datadir),
                   "-U", "postgres", "--auth=trust", "-E", "UTF8",
                   "--locale=C", "--no-sync"])
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} "
                f"-k {self.sockdir} -c fsync=off -c synchronous_commit=off "
                f"-c full_page_writes=off -c max_connections=300")
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.datadir),
                   "-l", str(self.logfile), "-w", "-t", "60", "-o", opts,
                   "start"])
        self.started = True
        # pg_ctl -w waits for readiness; make sure TCP answers too.
        deadline = time.monotonic() + 30
        while True:
            try:
                self.psql("SELECT 1")
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        return self

    def stop(self):
        try:
            if self.started:
                self._run([str(self.bindir / "pg_ctl"), "-D",
                           str(self.datadir), "-m", "fast", "-w", "stop"])
                self.started = False
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def postgres_from_env_or_start():
    """The PostgreSQL named by $MYELIN_TEST_PG, or a fresh private cluster.
    The caller calls .stop() on the result (a no-op for the external one)."""
    conninfo = os.environ.get("MYELIN_TEST_PG")
    if conninfo:
        return Postgres(conninfo)
    return PostgresCluster().start()


# ---------------------------------------------------------------------------
# Test certificate authority (federation TLS)
# ---------------------------------------------------------------------------

class TestCA:
    """A throwaway CA made with the openssl CLI, issuing server
    certificates for 127.0.0.1 / localhost."""

    def __init__(self, directory):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.key = self.dir / "ca.key"
        self.cert = self.dir / "ca.pem"
        self._n = 0
        self._lock = threading.Lock()
        self._openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes",
                       "-keyout", self.key, "-out", self.cert, "-days", "3",
                       "-subj", "/CN=Myelin Test CA",
                       "-addext", "basicConstraints=critical,CA:TRUE",
                       "-addext", "keyUsage=critical,keyCertSign,cRLSign"])

    def _openssl(self, args):
        proc = subprocess.run(["openssl"] + [str(a) for a in args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"openssl {args[0]} failed: {proc.stderr}")

    def issue(self, name, ips=("127.0.0.1",), dns=("localhost",)):
        """Issue a server certificate; returns (cert_path, key_path)."""
        with self._lock:
            self._n += 1
            serial = self._n
        key = self.dir / f"{name}.key"
        csr = self.dir / f"{name}.csr"
        cert = self.dir / f"{name}.pem"
        ext = self.dir / f"{name}.ext"
        san = ",".join([f"IP:{ip}" for ip in ips] + [f"DNS:{d}" for d in dns])
        ext.write_text(
            f"subjectAltName={san}\n"
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\n")
        self._openssl(["req", "-new", "-newkey", "rsa:2048", "-nodes",
                       "-keyout", key, "-out", csr, "-subj", f"/CN={ips[0]}"])
        self._openssl(["x509", "-req", "-in", csr, "-CA", self.cert,
                       "-CAkey", self.key, "-set_serial",
                       str(1000 + serial), "-days", "2", "-out", cert,
                       "-extfile", ext])
        os.chmod(key, 0o600)
        return cert, key

    def client_context(self):
        """An SSL context that trusts only this CA and checks hostnames."""
        ctx = ssl.create_default_context(cafile=str(self.cert))
        ctx.check_hostname = True
        return ctx


# ---------------------------------------------------------------------------
# The server under test
# ---------------------------------------------------------------------------

class MyelinServer:
    """One `myelin serve` process with its own data directory and config.

    Build it, adjust `.config` if needed, then `start()`. `stop()` sends a
    signal and returns the exit code; `problems()` lists what makes the
    run unclean (non-zero exit, sanitizer reports)."""

    def __init__(self, data_dir, engine="sqlite", pg=None, tls=None,
                 name="myelin"):
        self.name = name
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.engine = engine
        self.pg = pg
        self.pg_dbname = None
        self.port = free_port()
        self.tls_port = None
        self.tls = tls  # (ca, cert, key) when a TLS listener is wanted
        self.proc = None
        self.exit_code = None
        self.config_path = self.data_dir / "myelin.yaml"
        self.stderr_path = self.data_dir / "serve.stderr"
        self.stdout_path = self.data_dir / "serve.stdout"
        self._stderr_file = None
        self._stdout_file = None
        self._stopped_ok = True

        if tls:
            self.tls_port = free_port()
            while self.tls_port == self.port:
                self.tls_port = free_port()
            self.server_name = f"127.0.0.1:{self.tls_port}"
        else:
            self.server_name = f"127.0.0.1:{self.port}"
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.public_baseurl = f"http://127.0.0.1:{self.port}/"
        self.federation_url = (f"https://127.0.0.1:{self.tls_port}"
                               if tls else None)
        self.shared_secret = "myelin-test-shared-secret-%08x" % \
            random.randrange(1 << 32)

        self.init_output = self._init()
        if engine == "postgres":
            if pg is None:
                raise RuntimeError("postgres engine needs a Postgres")
            self.pg_dbname, self.pg_conninfo = pg.create_database()
        self.config = self.default_config()
        self.write_config()

    # -- set-up -------------------------------------------------------------

    def _init(self):
        proc = run_cli(["init", "--server-name", self.server_name,
                        "--data-dir", self.data_dir])
        if proc.returncode != 0 or sanitizer_reports(proc.stderr):
            raise RuntimeError(
                f"myelin init failed (exit {proc.returncode}):\n"
                f"{proc.stdout}\n{proc.stderr}")
        return proc

    def default_config(self):
        listeners = [{
            "bind": f"127.0.0.1:{self.port}",
            "tls": False,
            "resources": list(DEFAULT_RESOURCES),
        }]
        federation = {"verify_tls": True}
        if self.tls:
            ca, cert, key = self.tls
            listeners.append({
                "bind": f"127.0.0.1:{self.tls_port}",
                "tls": True,
                "tls_cert": str(cert),
                "tls_key": str(key),
                "resources": list(DEFAULT_RESOURCES),
            })
            federation["extra_ca_file"] = str(ca.cert)
        if self.engine == "postgres":
            database = {"engine": "postgres", "conninfo": self.pg_conninfo}
        else:
            database = {"engine": "sqlite",
                        "path": str(self.data_dir / "myelin.db")}
        return {
            "server_name": self.server_name,
            "public_baseurl": self.public_baseurl,
            "listeners": listeners,
            "database": database,
            "signing_key_path": str(self.data_dir / "signing.key"),
            "media_path": str(self.data_dir / "media"),
            "registration": {
                "enabled": True,
                "tokens_required": False,
                "shared_secret": self.shared_secret,
                "guests": True,
            },
            "rate_limits": {"enabled": False},
            "federation": federation,
            "log_level": "info",
        }

    def write_config(self, text=None):
        """Write `.config` (or the given YAML text) to config_path."""
        if text is None:
            text = ("# Myelin config written by the integration test "
                    "harness.\n" + to_yaml(self.config))
        self.config_path.write_text(text)
        return self.config_path

    # -- running ------------------------------------------------------------

    def start(self, wait=True, timeout=20.0):
        if self.proc is not None:
            raise RuntimeError("server already started")
        self._stderr_file = open(self.stderr_path, "wb")
        self._stdout_file = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen(
            [str(myelin_binary()), "serve", "--config",
             str(self.config_path)],
            stdout=self._stdout_file, stderr=self._stderr_file,
            stdin=subprocess.DEVNULL, env=sanitizer_env(),
            cwd=str(self.data_dir))
        with _live_lock:
            _live_procs.add(self.proc)
        if wait:
            self.wait_healthy(timeout)
            if self.tls_port:
                self.wait_port(self.tls_port, timeout)
        return self

    def wait_port(self, port, timeout=20.0):
        """Wait until `port` accepts TCP connections."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2):
                    return
            except OSError as exc:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"port {port} never accepted connections ({exc!r}); "
                        f"stderr:\n{tail(self.stderr())}")
                time.sleep(0.05)

    def wait_healthy(self, timeout=20.0, url=None):
        """Poll GET /health until it answers 200; raise with the server's
        stderr if the process dies or the deadline passes."""
        url = url or self.base_url
        deadline = time.monotonic() + timeout
        last = None
        while True:
            code = self.proc.poll()
            if code is not None:
                self._close_files()
                raise RuntimeError(
                    f"myelin serve exited with {code} before becoming "
                    f"healthy; stderr:\n{tail(self.stderr())}")
            try:
                resp = http_request(url, "GET", "/health", timeout=2)
                if resp.status == 200:
                    return
                last = f"status {resp.status}"
            except OSError as exc:
                last = repr(exc)
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"myelin serve not healthy after {timeout}s ({last}); "
                    f"stderr:\n{tail(self.stderr())}")
            time.sleep(0.05)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=20.0):
        """Signal the server and wait for it. Returns the exit code, or
        None if it had to be killed after `timeout` seconds."""
        if self.proc is None:
            return self.exit_code
        if self.exit_code is not None or self.proc.returncode is not None:
            self.exit_code = self.proc.returncode
            self._close_files()
            return self.exit_code
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                self._stopped_ok = False
                self._close_files()
                self.exit_code = None
                return None
        self.exit_code = self.proc.returncode
        self._close_files()
        return self.exit_code

    def _close_files(self):
        with _live_lock:
            _live_procs.discard(self.proc)
        for f in (self._stderr_file, self._stdout_file):
            if f is not None and not f.closed:
                f.close()

    def stderr(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def problems(self):
        """Reasons this server's run counts as unclean; empty if clean.
        Call after stop()."""
        out = []
        if self.proc is not None:
            if not self._stopped_ok:
                out.append("did not exit within the timeout after the "
                           "signal (killed)")
            elif self.exit_code != 0:
                out.append(f"exit code {self.exit_code} (expected 0)")
        reports = sanitizer_reports(self.stderr())
        if reports:
            out.append("sanitizer reports:\n  " + "\n  ".join(reports[:10]))
        return out

    def cleanup(self):
        """Stop if still running and drop the PostgreSQL database."""
        if self.running():
            self.stop()
        if self.pg is not None and self.pg_dbname:
            try:
                self.pg.drop_database(self.pg_dbname)
            except Exception:
                pass
            self.pg_dbname = None

    # -- requests -----------------------------------------------------------

    def request(self, method, path, body=None, json=None, headers=None,
                timeout=30, base_url=None, ssl_context=None):
        return http_request(base_url or self.base_url, method, path,
                            body=body, json_body=json, headers=headers,
                            timeout=timeout, ssl_context=ssl_context)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, json=None, body=None, **kw):
        return self.request("POST", path, json=json, body=body, **kw)

    def put(self, path, json=None, body=None, **kw):
        return self.request("PUT", path, json=json, body=body, **kw)

    def raw(self, payload, read_timeout=5.0, port=None, close_write=False):
        return raw_exchange("127.0.0.1", port or self.port, payload,
                            read_timeout=read_timeout,
                            close_write=close_write)

    def cli(self, *args, timeout=60):
        """Run `myelin COMMAND --config <this config> ARGS...`."""
        return run_cli([args[0], "--config", self.config_path] +
                       list(args[1:]), timeout=timeout)

    def __repr__(self):
        return f"<MyelinServer {self.name} {self.engine} {self.base_url}>"
