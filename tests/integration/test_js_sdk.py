"""End-to-end encryption with the real matrix-js-sdk (tests/js).

tests/js/e2ee.mjs drives two matrix-js-sdk 36.2.0 clients with the SDK's
Rust crypto against the `server` fixture: two users register, one creates
an m.room.encryption (megolm) room and invites the other, and an encrypted
message goes each way and must decrypt to the plaintext sent, while the
events on the wire stay m.room.encrypted. See the script's header for the
details; it prints every non-2xx answer the SDK got, and any server gap it
recognises, so a failure here says which request went wrong.

The SDK comes from tests/js/package-lock.json: `npm ci` runs first when
tests/js/node_modules is missing or older than the lock file (under a
lock, so parallel runs don't install over each other). The tests skip
only when node or npm is not installed at all (scripts/install-deps.sh
installs them). A raw /sync test checks the one /sync shape the SDK
depends on that other suites don't (MSC4222's unstable key). Runs on
SQLite and PostgreSQL.
"""

import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from test_rooms import V3
from test_sync import User

REPO_ROOT = Path(__file__).resolve().parents[2]
JS_DIR = REPO_ROOT / "tests" / "js"
SCRIPT = JS_DIR / "e2ee.mjs"
LOCK = JS_DIR / "package-lock.json"
# npm ci and npm install both write this copy of the lock when they finish.
INSTALLED_MARKER = JS_DIR / "node_modules" / ".package-lock.json"

NODE = shutil.which("node")
NPM = shutil.which("npm")

needs_node = pytest.mark.skipif(
    NODE is None or NPM is None,
    reason="node/npm not installed (scripts/install-deps.sh installs them)")

ENCRYPTION_ALG = "m.megolm.v1.aes-sha2"
NPM_CI_TIMEOUT = 600
SCRIPT_TIMEOUT_MS = 60000


def _node_modules_stale():
    if not INSTALLED_MARKER.exists():
        return True
    if not (JS_DIR / "node_modules" / "matrix-js-sdk" / "package.json").exists():
        return True
    marker = INSTALLED_MARKER.stat().st_mtime
    return any(p.stat().st_mtime > marker
               for p in (LOCK, JS_DIR / "package.json"))


@pytest.fixture(scope="module")
def js_sdk():
    """tests/js/node_modules as package-lock.json pins it."""
    lock_path = Path(tempfile.gettempdir()) / "myelin-tests-js-npm-ci.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _node_modules_stale():
            started = time.monotonic()
            proc = subprocess.run(
                [NPM, "ci", "--no-audit", "--no-fund"], cwd=JS_DIR,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                errors="replace", stdin=subprocess.DEVNULL,
                timeout=NPM_CI_TIMEOUT)
            if proc.returncode != 0:
                pytest.fail(f"npm ci in {JS_DIR} failed (exit "
                            f"{proc.returncode}):\n{proc.stdout}",
                            pytrace=False)
            print(f"npm ci took {time.monotonic() - started:.1f} s")
    return JS_DIR


@needs_node
def test_js_sdk_encrypted_exchange(server, js_sdk):
    env = dict(os.environ)
    env["E2EE_TIMEOUT_MS"] = str(SCRIPT_TIMEOUT_MS)
    env.pop("E2EE_VERBOSE", None)
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [NODE, str(SCRIPT), server.base_url], cwd=REPO_ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            errors="replace", stdin=subprocess.DEVNULL,
            timeout=SCRIPT_TIMEOUT_MS / 1000 + 30)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"e2ee.mjs did not stop by itself:\n{exc.stdout}\n"
                    f"{exc.stderr}", pytrace=False)
    elapsed = time.monotonic() - started
    output = (f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
              f"\n(ran {elapsed:.1f} s, exit {proc.returncode})")
    print(output)
    assert proc.returncode == 0, f"js-sdk e2ee exchange failed:\n{output}"
    assert "e2ee: bob decrypted" in proc.stdout, output
    assert "e2ee: alice decrypted" in proc.stdout, output
    assert "e2ee: OK" in proc.stdout, output


def test_sync_names_state_after_as_asked(server):
    """What the SDK needs from /sync, raw: it asks for MSC4222 with the
    unstable `org.matrix.msc4222.use_state_after` and reads only
    `org.matrix.msc4222.state_after`, so a room joined since the last sync
    must bring its state (m.room.encryption among it) under that key; the
    stable parameter gets the stable `state_after`."""
    alice, bob = User(server), User(server)
    since = bob.sync(timeout=0)["next_batch"]
    resp = alice.req("POST", f"{V3}/createRoom", json={
        "preset": "private_chat", "invite": [bob.user_id],
        "initial_state": [{"type": "m.room.encryption", "state_key": "",
                           "content": {"algorithm": ENCRYPTION_ALG}}]})
    assert resp.status == 200, resp
    room_id = resp.json["room_id"]
    bob.join(room_id)
    for param, key in (("org.matrix.msc4222.use_state_after",
                        "org.matrix.msc4222.state_after"),
                       ("use_state_after", "state_after")):
        # sync_raw: test_sync's shape check knows only `state`.
        resp = bob.sync_raw(since=since, timeout=0, **{param: "true"})
        assert resp.status == 200, resp
        room = resp.json["rooms"]["join"][room_id]
        assert key in room, (param, sorted(room))
        assert "state" not in room, (param, sorted(room))
        encryption = [e for e in room[key]["events"]
                      if e["type"] == "m.room.encryption"]
        assert [e["content"] for e in encryption] == \
            [{"algorithm": ENCRYPTION_ALG}], (param, room[key])
