"""The outbound federation queue (spec: Server-Server API "Transactions")
and its first user, send-to-device messages to users of other servers
(the m.direct_to_device EDU, spec "Send-to-device messaging"). A scripted
FedPeer plays the other server: a to-device message to its user arrives
as an EDU in a PUT /send/{txnId} transaction signed by Myelin (checked
against Myelin's published key), messages queued while a transaction is
out go together in the next ones (at most 100 EDUs each), a failed
transaction is retried with the same ID and content and nothing is lost,
a restart while the peer is down still delivers everything, and a server
that never answers does not hold up another; between two Myelin servers
the message reaches the recipient's /sync. Backoff timings are made
small through federation.retry_min_ms / retry_max_ms. Every test runs on
SQLite and PostgreSQL."""

import json
import socket
import threading
import time
from urllib.parse import unquote

import pytest
import signedjson.key
import signedjson.sign

from fedpeer import FedPeer
from test_rooms import V3, q, restart, unique
from test_sync import User

SEND = "/_matrix/federation/v1/send/"


@pytest.fixture
def peer(test_ca):
    p = FedPeer(test_ca)
    yield p
    p.close()


def fast_server(server_factory, retry_min_ms=100, retry_max_ms=400):
    """A server with a TLS federation listener and short backoffs."""
    srv = server_factory(start=False, tls=True)
    srv.config["federation"]["retry_min_ms"] = retry_min_ms
    srv.config["federation"]["retry_max_ms"] = retry_max_ms
    srv.write_config()
    srv.start()
    return srv


class Inbox:
    """Collects the /send transactions a FedPeer receives. `script` gives
    the answers in order (a status, or a callable returning one); 200
    once it runs out."""

    def __init__(self, peer, script=()):
        self.lock = threading.Lock()
        self.txns = []  # dicts: txn_id, body, headers, path, status
        self.script = list(script)
        peer.handler = self

    def __call__(self, method, path, headers, body):
        if method != "PUT" or not path.startswith(SEND):
            return None
        with self.lock:
            step = self.script.pop(0) if self.script else 200
        status = step() if callable(step) else step
        with self.lock:
            self.txns.append({"txn_id": unquote(path[len(SEND):]), "path": path,
                              "body": json.loads(body), "headers": headers,
                              "status": status})
        if status == 200:
            return 200, {"pdus": {}}
        return status, {"errcode": "M_UNKNOWN", "error": "scripted failure"}

    def accepted(self):
        with self.lock:
            return [t for t in self.txns if t["status"] == 200]

    def all(self):
        with self.lock:
            return list(self.txns)

    def messages(self):
        """(sender, type, messages) of every m.direct_to_device EDU in
        accepted transactions, in order."""
        out = []
        for t in self.accepted():
            for edu in t["body"].get("edus", []):
                assert edu["edu_type"] == "m.direct_to_device", edu
                c = edu["content"]
                out.append((c["sender"], c["type"], c["messages"]))
        return out

    def wait(self, pred, timeout=20, what="transactions"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}: {self.all()}")


def send_to_device(user, messages, etype="m.test", txn=None):
    txn = txn or unique("txn")
    resp = user.req("PUT", f"{V3}/sendToDevice/{q(etype)}/{q(txn)}",
                    json={"messages": messages})
    assert resp.status == 200 and resp.json == {}, resp
    return resp


def verify_request(hs, peer, txn, test_ca):
    """Checks the X-Matrix signature of a transaction against the key hs
    publishes at /_matrix/key/v2/server."""
    header = txn["headers"].get("Authorization") or txn["headers"]["authorization"]
    assert header.startswith("X-Matrix "), header
    params = dict(p.split("=", 1) for p in header[len("X-Matrix "):].split(","))
    params = {k.strip(): v.strip().strip('"') for k, v in params.items()}
    assert params["origin"] == hs.server_name
    assert params["destination"] == peer.server_name
    keys = hs.get("/_matrix/key/v2/server", base_url=hs.federation_url,
                  ssl_context=test_ca.client_context()).json
    key_b64 = keys["verify_keys"][params["key"]]["key"]
    vk = signedjson.key.decode_verify_key_base64(
        "ed25519", params["key"].split(":", 1)[1], key_b64)
    obj = {"method": "PUT", "uri": txn["path"], "origin": params["origin"],
           "destination": params["destination"], "content": txn["body"],
           "signatures": {params["origin"]: {params["key"]: params["sig"]}}}
    signedjson.sign.verify_signed_json(obj, hs.server_name, vk)
    # A changed body no longer verifies: the check above can fail.
    obj["content"] = dict(txn["body"], origin_server_ts=1)
    with pytest.raises(signedjson.sign.SignatureVerifyException):
        signedjson.sign.verify_signed_json(obj, hs.server_name, vk)


def test_to_device_goes_out_as_signed_edu(server_factory, peer, test_ca):
    hs = fast_server(server_factory)
    inbox = Inbox(peer)
    alice, bob = User(hs), User(hs)
    since = bob.sync()["next_batch"]
    x, y = f"@x:{peer.server_name}", f"@y:{peer.server_name}"
    send_to_device(alice, {
        x: {"DEV1": {"secret": 1}, "DEV2": {"secret": 2}},
        y: {"*": {"all": True}},
        bob.user_id: {bob.device_id: {"local": True}},
    }, etype="m.room_key", txn="t1")
    inbox.wait(lambda: len(inbox.accepted()) == 1)
    (txn,) = inbox.all()
    body = txn["body"]
    assert body["origin"] == hs.server_name
    assert isinstance(body["origin_server_ts"], int)
    assert abs(body["origin_server_ts"] - time.time() * 1000) < 60_000
    assert body["pdus"] == []
    (edu,) = body["edus"]
    assert edu["edu_type"] == "m.direct_to_device"
    c = edu["content"]
    assert c["sender"] == alice.user_id and c["type"] == "m.room_key"
    assert isinstance(c["message_id"], str) and 0 < len(c["message_id"]) <= 32
    assert c["messages"] == {x: {"DEV1": {"secret": 1}, "DEV2": {"secret": 2}},
                             y: {"*": {"all": True}}}
    verify_request(hs, peer, txn, test_ca)
    # The local recipient got its message as before.
    events = bob.sync(since=since)["to_device"]["events"]
    assert events == [{"sender": alice.user_id, "type": "m.room_key",
                       "content": {"local": True}}], events

    # A repeated client transaction sends nothing more; a new one sends a
    # new EDU with a new message_id in a transaction with a new ID.
    send_to_device(alice, {x: {"DEV1": {"secret": 1}}}, etype="m.room_key", txn="t1")
    send_to_device(alice, {x: {"DEV1": {"n": 2}}})
    inbox.wait(lambda: len(inbox.accepted()) >= 2)
    time.sleep(0.3)
    txns = inbox.all()
    assert len(txns) == 2, txns
    (edu2,) = txns[1]["body"]["edus"]
    assert edu2["content"]["messages"] == {x: {"DEV1": {"n": 2}}}
    assert edu2["content"]["message_id"] != c["message_id"]
    assert txns[1]["txn_id"] != txns[0]["txn_id"]
    verify_request(hs, peer, txns[1], test_ca)


def test_two_servers_get_their_own_users(server_factory, peer, test_ca):
    hs = fast_server(server_factory)
    peer2 = FedPeer(test_ca, name="peer2")
    try:
        inbox, inbox2 = Inbox(peer), Inbox(peer2)
        alice = User(hs)
        a, b = f"@a:{peer.server_name}", f"@b:{peer2.server_name}"
        send_to_device(alice, {a: {"D": {"to": "a"}}, b: {"D": {"to": "b"}}})
        inbox.wait(lambda: inbox.accepted())
        inbox2.wait(lambda: inbox2.accepted())
        assert [m for _, _, m in inbox.messages()] == [{a: {"D": {"to": "a"}}}]
        assert [m for _, _, m in inbox2.messages()] == [{b: {"D": {"to": "b"}}}]
    finally:
        peer2.close()


def test_batching_and_retry_with_same_content(server_factory, peer):
    """The first transaction is held open by the peer while 150 more
    messages are sent, then refused with 500: it is retried with the same
    ID and content, and the 150 follow in transactions of at most 100
    EDUs, in order, each exactly once."""
    hs = fast_server(server_factory)
    release = threading.Event()

    def hold_then_fail():
        release.wait(60)
        return 500

    inbox = Inbox(peer, script=[hold_then_fail])
    alice = User(hs)
    x = f"@x:{peer.server_name}"
    send_to_device(alice, {x: {"D": {"i": 0}}})
    inbox.wait(lambda: peer.requests, what="the first (held) transaction")
    for i in range(1, 151):
        send_to_device(alice, {x: {"D": {"i": i}}})
    release.set()
    inbox.wait(lambda: sum(len(t["body"]["edus"]) for t in inbox.accepted()) >= 151,
               timeout=30)
    txns = inbox.all()
    first, retry = txns[0], txns[1]
    assert first["status"] == 500 and retry["status"] == 200
    assert retry["txn_id"] == first["txn_id"]
    assert retry["body"]["edus"] == first["body"]["edus"]
    assert [e["content"]["messages"][x]["D"]["i"] for e in first["body"]["edus"]] == [0]
    rest = txns[2:]
    assert all(t["status"] == 200 for t in rest), rest
    sizes = [len(t["body"]["edus"]) for t in rest]
    assert max(sizes) == 100 and sum(sizes) == 150, sizes
    got = [m[x]["D"]["i"] for _, _, m in inbox.messages()]
    assert got == list(range(151)), got
    ids = [t["txn_id"] for t in txns[1:]]
    assert len(set(ids)) == len(ids), ids
    # Each EDU keeps its own message_id.
    mids = [e["content"]["message_id"] for t in inbox.accepted() for e in t["body"]["edus"]]
    assert len(set(mids)) == 151


def test_restart_while_peer_down_delivers_after(server_factory, peer):
    hs = fast_server(server_factory)
    inbox = Inbox(peer)
    alice = User(hs)
    x = f"@x:{peer.server_name}"
    send_to_device(alice, {x: {"D": {"n": "before"}}})
    inbox.wait(lambda: len(inbox.accepted()) == 1)
    first_id = inbox.accepted()[0]["txn_id"]

    peer.stop_listening()
    send_to_device(alice, {x: {"D": {"n": 1}}})
    send_to_device(alice, {x: {"D": {"n": 2}}})
    time.sleep(0.5)  # a few attempts fail meanwhile
    restart(hs)
    send_to_device(alice, {x: {"D": {"n": 3}}})
    time.sleep(0.6)  # attempts after the restart fail too
    assert len(inbox.all()) == 1  # nothing got through while down
    peer.listen()
    inbox.wait(lambda: len(inbox.messages()) >= 4, timeout=20)
    got = [m[x]["D"]["n"] for _, _, m in inbox.messages()]
    assert got == ["before", 1, 2, 3], got
    ids = [t["txn_id"] for t in inbox.accepted()]
    assert len(set(ids)) == len(ids) and first_id == ids[0], ids
    assert "failed" in hs.stderr()  # the failures were logged, not silent


def test_unreachable_destination_does_not_delay_others(server_factory, peer):
    """One destination accepts connections and never answers, another
    refuses them; the peer still gets each message at once."""
    hs = fast_server(server_factory)
    inbox = Inbox(peer)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))  # bound, not listening: refused
    try:
        alice = User(hs)
        dead = f"@z:127.0.0.1:{silent.getsockname()[1]}"
        gone = f"@w:127.0.0.1:{refused.getsockname()[1]}"
        x = f"@x:{peer.server_name}"
        for i in range(3):
            start = time.monotonic()
            send_to_device(alice, {dead: {"D": {"i": i}}, gone: {"D": {"i": i}},
                                   x: {"D": {"i": i}}})
            send_to_device(alice, {dead: {"D": {"only": i}}})
            inbox.wait(lambda: len(inbox.messages()) == i + 1, timeout=5,
                       what=f"message {i}")
            assert time.monotonic() - start < 5
        got = [m[x]["D"]["i"] for _, _, m in inbox.messages()]
        assert got == [0, 1, 2]
    finally:
        silent.close()
        refused.close()


def test_between_two_myelin_servers(federation):
    """hs1's queue delivers to hs2's inbound /send: bob on hs2 gets
    alice's message in /sync."""
    hs1, hs2 = federation(2)
    alice, bob = User(hs1), User(hs2)
    since = bob.sync()["next_batch"]
    send_to_device(alice, {bob.user_id: {bob.device_id: {"over": "federation"}}},
                   etype="m.room_key_request")
    deadline = time.monotonic() + 20
    events = []
    while time.monotonic() < deadline and not events:
        body = bob.sync(since=since, timeout=2000)
        events = body["to_device"]["events"]
    assert events == [{"sender": alice.user_id, "type": "m.room_key_request",
                       "content": {"over": "federation"}}], events
