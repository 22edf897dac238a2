"""End-to-end encryption keys across servers (Server-Server API "End-to-End
Encryption" and "Device Management"), with two real Myelin servers on
loopback (the `federation` fixture) and a scripted peer (FedPeer):

- users on hs1 and hs2 upload device keys (python3-olm accounts), one-time
  and fallback keys and cross-signing keys; each queries the other through
  their own server (POST /keys/query -> POST /user/keys/query), device
  keys arriving with their self-signatures intact and the display name
  under `unsigned`, master and self-signing keys but never another user's
  user-signing key; claims across servers hand out each one-time key once,
  then the fallback key;
- a server that never answers and one that refuses connections land in
  `failures` within the request's `timeout`, the live server's keys still
  answered;
- the federation endpoints called directly with signed requests: the
  answer shapes, only local users answered, no user-signing keys, claims
  once each, GET /user/devices refusing other servers' users (403) and
  unknown ones (404), unsigned requests refused (401);
- a peer serving forged, tampered, misplaced and unasked-for keys: only
  the valid ones reach the client; claimed keys of devices or algorithms
  not asked for are dropped; a peer answering an error or non-object JSON
  lands in `failures`;
- two matrix-nio clients on different servers: one queries the other's
  device keys and claims a one-time key through its own server, nio
  creates an outbound Olm session from it and sends an Olm-encrypted
  to-device message, which travels hs1 -> hs2 (m.direct_to_device) and
  is opened by the other device's Olm account.

Every test runs on SQLite and on PostgreSQL."""

import asyncio
import json
import socket
import time
from types import SimpleNamespace

import nio
import pytest
from nio.event_builders import ToDeviceMessage

from fedpeer import FedPeer
from test_cross_signing import Identity, cs_upload, sig_upload, sign_with
from test_keys_e2ee import ALG, Device, signable, upload_ok, verify_signed
from test_rooms import V3, assert_error, q
from test_sync import User

olm = pytest.importorskip("olm")

FED = "/_matrix/federation/v1"


@pytest.fixture
def peer(test_ca):
    p = FedPeer(test_ca)
    yield p
    p.close()


def keys_query(user, device_keys, **extra):
    resp = user.post(f"{V3}/keys/query", json=dict(extra, device_keys=device_keys))
    assert resp.status == 200, resp
    for field in ("device_keys", "failures", "master_keys", "self_signing_keys",
                  "user_signing_keys"):
        assert isinstance(resp.json.get(field), dict), resp
    return resp.json


def keys_claim(user, wanted, **extra):
    resp = user.post(f"{V3}/keys/claim", json=dict(extra, one_time_keys=wanted))
    assert resp.status == 200, resp
    assert isinstance(resp.json["failures"], dict), resp
    assert isinstance(resp.json["one_time_keys"], dict), resp
    return resp.json


def one_key(body, user_id, device_id):
    keys = body["one_time_keys"].get(user_id, {}).get(device_id)
    if keys is None:
        return None
    assert len(keys) == 1, body
    return next(iter(keys.items()))


def with_keys(user, n_otks=2, name=None):
    """An Olm device for `user` with device keys, n one-time keys and a
    fallback key uploaded; returns (device, otks, fallback)."""
    dev = Device(user)
    if name:
        resp = user.put(f"{V3}/devices/{q(user.device_id)}", json={"display_name": name})
        assert resp.status == 200, resp
    otks = dev.one_time_keys(n_otks)
    fallback = dev.fallback_key()
    upload_ok(user, {"device_keys": dev.device_keys(), "one_time_keys": otks,
                     "fallback_keys": fallback})
    return dev, otks, fallback


# ---------------------------------------------------------------------------
# Two Myelin servers


def test_query_and_claim_between_two_servers(federation):
    hs1, hs2 = federation(2)
    alice, bob = User(hs1), User(hs2)
    da, a_otks, _ = with_keys(alice, name="Alice's laptop")
    db, b_otks, b_fallback = with_keys(bob, name="Bob's phone")
    bob_id = Identity(bob)
    resp = cs_upload(bob, bob_id.body())
    assert resp.status == 200, resp

    # Alice (hs1) reads Bob's keys (hs2) through hs1.
    body = keys_query(alice, {bob.user_id: []})
    assert body["failures"] == {}, body
    got = body["device_keys"][bob.user_id]
    assert set(got) == {bob.device_id}, body
    dk = got[bob.device_id]
    assert signable(dk) == signable(db.device_keys()), dk
    assert dk["unsigned"] == {"device_display_name": "Bob's phone"}, dk
    verify_signed(db, dk)
    assert signable(body["master_keys"][bob.user_id]) == bob_id.master_key(), body
    assert signable(body["self_signing_keys"][bob.user_id]) == signable(bob_id.ssk_key())
    assert body["user_signing_keys"] == {}, body

    # And the other way round, with a device filter and a local user too.
    body = keys_query(bob, {alice.user_id: [alice.device_id], bob.user_id: []})
    assert body["failures"] == {}, body
    verify_signed(da, body["device_keys"][alice.user_id][alice.device_id])
    assert body["device_keys"][alice.user_id][alice.device_id]["unsigned"] == {
        "device_display_name": "Alice's laptop"}
    assert set(body["device_keys"][bob.user_id]) == {bob.device_id}
    # Bob's own user-signing key only for Bob, from his own server.
    assert bob.user_id in body["user_signing_keys"], body
    body = keys_query(bob, {alice.user_id: ["NOPE"]})
    assert body["device_keys"].get(alice.user_id, {}) == {}, body
    # Someone unknown on hs2: no failure, no keys.
    body = keys_query(alice, {f"@nobody:{hs2.server_name}": []})
    assert body["failures"] == {} and not any(body["device_keys"].values()), body

    # Claims across servers: each one-time key once, then the fallback.
    wanted = {bob.user_id: {bob.device_id: ALG}}
    seen = []
    for _ in range(len(b_otks)):
        body = keys_claim(alice, wanted)
        assert body["failures"] == {}, body
        name, key = one_key(body, bob.user_id, bob.device_id)
        assert name in b_otks and b_otks[name] == key, body
        verify_signed(db, key)
        seen.append(name)
    assert sorted(seen) == sorted(b_otks)
    for _ in range(2):
        body = keys_claim(alice, wanted)
        assert dict([one_key(body, bob.user_id, bob.device_id)]) == b_fallback, body
    assert upload_ok(bob, {}) == {ALG: 0}
    # Bob claims Alice's key the other way, with his own server's keys in
    # the same request; unknown devices and algorithms are just missing.
    body = keys_claim(bob, {alice.user_id: {alice.device_id: ALG, "NOPE": ALG},
                            bob.user_id: {bob.device_id: "other_alg"}})
    assert body["failures"] == {}, body
    name, key = one_key(body, alice.user_id, alice.device_id)
    assert a_otks[name] == key
    assert set(body["one_time_keys"]) == {alice.user_id}, body


class Blackhole:
    """A TCP port that accepts connections (the kernel does) but never
    speaks: a server that hangs."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.server_name = f"127.0.0.1:{self.sock.getsockname()[1]}"

    def close(self):
        self.sock.close()


def closed_port_name():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    name = f"127.0.0.1:{s.getsockname()[1]}"
    s.close()
    return name


def test_dead_servers_are_failures_within_the_timeout(federation):
    hs1, hs2 = federation(2)
    alice, bob = User(hs1), User(hs2)
    db, b_otks, _ = with_keys(bob)
    # First contact (hs2 fetching hs1's signing key, TLS set-up) with the
    # default timeout, so the short timeouts below measure only the waits.
    assert keys_query(alice, {bob.user_id: []})["failures"] == {}
    hole = Blackhole()
    refused = closed_port_name()
    try:
        ghost = f"@ghost:{hole.server_name}"
        gone = f"@gone:{refused}"
        start = time.monotonic()
        body = keys_query(alice, {bob.user_id: [], ghost: [], gone: []}, timeout=2000)
        took = time.monotonic() - start
        assert took < 6, took
        assert set(body["failures"]) == {hole.server_name, refused}, body
        for failure in body["failures"].values():
            assert isinstance(failure, dict) and failure, body
        verify_signed(db, body["device_keys"][bob.user_id][bob.device_id])
        assert ghost not in body["device_keys"] and gone not in body["device_keys"]

        start = time.monotonic()
        body = keys_claim(alice, {bob.user_id: {bob.device_id: ALG},
                                  ghost: {"D": ALG}}, timeout=1500)
        took = time.monotonic() - start
        assert took < 5.5, took
        assert set(body["failures"]) == {hole.server_name}, body
        name, key = one_key(body, bob.user_id, bob.device_id)
        assert b_otks[name] == key
        # The hung server, still holding hs1's earlier connections, does
        # not hold up a request that does not name it.
        body = keys_query(alice, {bob.user_id: []})
        assert body["failures"] == {}, body
        verify_signed(db, body["device_keys"][bob.user_id][bob.device_id])
    finally:
        hole.close()
    assert_error(alice.post(f"{V3}/keys/query", json={"device_keys": {}, "timeout": "soon"}),
                 400, "M_INVALID_PARAM")


# ---------------------------------------------------------------------------
# The federation endpoints, called by a signed peer


def test_federation_endpoints_answer_local_users_only(federation, test_ca, peer):
    (hs1,) = federation(1)
    ctx = test_ca.client_context()
    alice, carol = User(hs1), User(hs1)
    da, otks, fallback = with_keys(alice, n_otks=1, name="Alice's laptop")
    ident = Identity(alice)
    resp = cs_upload(alice, ident.body())
    assert resp.status == 200, resp
    # Alice's device signed by her self-signing key: hers, so served.
    signed_dev = sign_with(da.device_keys(), ident.ssk, alice.user_id, Identity.kid(ident.ssk))
    assert sig_upload(alice, {alice.user_id: {alice.device_id: signed_dev}}) == {}
    # Carol signs Alice's master key with her user-signing key: only
    # Carol may see that, never another server.
    carol_id = Identity(carol)
    assert cs_upload(carol, carol_id.body()).status == 200
    signed_master = sign_with(ident.master_key(), carol_id.usk, carol.user_id,
                              Identity.kid(carol_id.usk))
    assert sig_upload(carol, {alice.user_id: {ident.master.public_key: signed_master}}) == {}

    remote = f"@someone:{peer.server_name}"
    resp = peer.request(hs1, "POST", f"{FED}/user/keys/query",
                        {"device_keys": {alice.user_id: [], remote: []}}, ssl_context=ctx)
    assert resp.status == 200, resp
    body = resp.json
    assert set(body) == {"device_keys", "master_keys", "self_signing_keys"}, body
    assert set(body["device_keys"]) == {alice.user_id}, body
    dk = body["device_keys"][alice.user_id][alice.device_id]
    verify_signed(da, dk)
    assert dk["unsigned"] == {"device_display_name": "Alice's laptop"}
    assert Identity.kid(ident.ssk) in dk["signatures"][alice.user_id], dk
    master = body["master_keys"][alice.user_id]
    assert signable(master) == ident.master_key(), body
    assert carol.user_id not in master.get("signatures", {}), master
    assert signable(body["self_signing_keys"][alice.user_id]) == signable(ident.ssk_key())
    # A device filter; only users of this server.
    resp = peer.request(hs1, "POST", f"{FED}/user/keys/query",
                        {"device_keys": {alice.user_id: ["NOPE"]}}, ssl_context=ctx)
    assert resp.status == 200 and resp.json["device_keys"] == {alice.user_id: {}}, resp
    resp = peer.request(hs1, "POST", f"{FED}/user/keys/query",
                        {"device_keys": {remote: []}}, ssl_context=ctx)
    assert resp.status == 200 and resp.json["device_keys"] == {}, resp
    assert_error(peer.request(hs1, "POST", f"{FED}/user/keys/query", {"device_keys": []},
                              ssl_context=ctx), 400, "M_INVALID_PARAM")
    assert_error(peer.request(hs1, "POST", f"{FED}/user/keys/query", {},
                              ssl_context=ctx), 400, "M_MISSING_PARAM")

    # Claims: the one-time key once, then the fallback key.
    wanted = {"one_time_keys": {alice.user_id: {alice.device_id: ALG}, remote: {"X": ALG}}}
    resp = peer.request(hs1, "POST", f"{FED}/user/keys/claim", wanted, ssl_context=ctx)
    assert resp.status == 200, resp
    assert resp.json == {"one_time_keys": {alice.user_id: {alice.device_id: otks}}}, resp
    for _ in range(2):
        resp = peer.request(hs1, "POST", f"{FED}/user/keys/claim", wanted, ssl_context=ctx)
        assert resp.status == 200, resp
        assert resp.json["one_time_keys"][alice.user_id][alice.device_id] == fallback
    assert_error(peer.request(hs1, "POST", f"{FED}/user/keys/claim",
                              {"one_time_keys": {alice.user_id: {"D": 1}}}, ssl_context=ctx),
                 400, "M_INVALID_PARAM")

    # The device list.
    resp = peer.request(hs1, "GET", f"{FED}/user/devices/{q(alice.user_id)}", ssl_context=ctx)
    assert resp.status == 200, resp
    body = resp.json
    assert body["user_id"] == alice.user_id and isinstance(body["stream_id"], int), body
    (dev,) = body["devices"]
    assert dev["device_id"] == alice.device_id
    assert dev["device_display_name"] == "Alice's laptop"
    assert "unsigned" not in dev["keys"]
    verify_signed(da, dev["keys"])
    assert signable(body["master_key"]) == ident.master_key()
    assert signable(body["self_signing_key"]) == signable(ident.ssk_key())
    assert "user_signing_key" not in body
    # A user without keys has an empty list; other servers' users and
    # unknown users are refused.
    resp = peer.request(hs1, "GET", f"{FED}/user/devices/{q(User(hs1).user_id)}",
                        ssl_context=ctx)
    assert resp.status == 200 and resp.json["devices"] == [], resp
    assert "master_key" not in resp.json
    assert_error(peer.request(hs1, "GET", f"{FED}/user/devices/{q(remote)}", ssl_context=ctx),
                 403, "M_FORBIDDEN")
    assert_error(peer.request(hs1, "GET", f"{FED}/user/devices/{q('@nobody:' + hs1.server_name)}",
                              ssl_context=ctx), 404, "M_NOT_FOUND")
    assert_error(peer.request(hs1, "GET", f"{FED}/user/devices/not-a-user", ssl_context=ctx),
                 400, "M_INVALID_PARAM")

    # Unsigned requests are refused.
    resp = hs1.request("POST", f"{FED}/user/keys/query", base_url=hs1.federation_url,
                       ssl_context=ctx, json={"device_keys": {alice.user_id: []}})
    assert_error(resp, 401, "M_UNAUTHORIZED")
    resp = hs1.request("GET", f"{FED}/user/devices/{q(alice.user_id)}",
                       base_url=hs1.federation_url, ssl_context=ctx)
    assert_error(resp, 401, "M_UNAUTHORIZED")


# ---------------------------------------------------------------------------
# A peer that lies


def peer_device(user_id, device_id):
    return Device(SimpleNamespace(user_id=user_id, device_id=device_id))


def test_forged_keys_from_a_peer_are_dropped(federation, test_ca, peer):
    (hs1,) = federation(1)
    alice = User(hs1)
    carol = f"@carol:{peer.server_name}"
    dave = f"@dave:{peer.server_name}"
    mallory = f"@mallory:{hs1.server_name}"

    good = peer_device(carol, "GOOD")
    forged = peer_device(carol, "FORGED")  # signed by another key
    forged_keys = forged.device_keys()
    impostor = olm.Account()
    forged.sign(forged_keys, acc=impostor)
    tampered = peer_device(carol, "TAMPERED")  # changed after signing
    tampered_keys = tampered.device_keys()
    tampered_keys["keys"][f"curve25519:TAMPERED"] = good.curve25519
    misplaced = peer_device(carol, "REAL")  # listed under another ID
    unsigned = peer_device(carol, "UNSIGNED")
    unsigned_keys = unsigned.device_keys()
    del unsigned_keys["signatures"]
    other_user = peer_device(dave, "GOOD")  # valid, but for Dave
    good_keys = good.device_keys()
    good_keys["unsigned"] = {"device_display_name": "Carol's", "injected": True}

    carol_id = Identity(SimpleNamespace(user_id=carol))
    bad_ssk = carol_id.ssk_key(signed_by=olm.PkSigning(olm.PkSigning.generate_seed()))
    answer = {
        "device_keys": {
            carol: {"GOOD": good_keys, "FORGED": forged_keys, "TAMPERED": tampered_keys,
                    "WRONGID": misplaced.device_keys(), "UNSIGNED": unsigned_keys,
                    "OTHER": other_user.device_keys()},
            dave: {"GOOD": other_user.device_keys()},
            mallory: {"M": peer_device(mallory, "M").device_keys()},
        },
        "master_keys": {carol: carol_id.master_key(),
                        dave: Identity(SimpleNamespace(user_id=dave)).master_key()},
        "self_signing_keys": {carol: bad_ssk},
        "user_signing_keys": {carol: carol_id.usk_key()},
    }
    peer.routes[("POST", f"{FED}/user/keys/query")] = (200, answer)

    body = keys_query(alice, {carol: []})
    assert body["failures"] == {}, body
    assert body["device_keys"] == {carol: {"GOOD": dict(good_keys, unsigned={
        "device_display_name": "Carol's"})}}, body
    assert body["master_keys"] == {carol: carol_id.master_key()}, body
    assert body["self_signing_keys"] == {} and body["user_signing_keys"] == {}, body
    # The request went out signed, for Carol only.
    (method, path, headers, raw), = [r for r in peer.requests if r[1].endswith("/keys/query")]
    assert method == "POST" and headers["Authorization"].startswith("X-Matrix ")
    assert json.loads(raw) == {"device_keys": {carol: []}}
    # A device filter is applied to what the peer answers.
    body = keys_query(alice, {carol: ["FORGED"]})
    assert body["device_keys"] == {carol: {}}, body
    # With a properly signed self-signing key, it is served.
    answer["self_signing_keys"] = {carol: carol_id.ssk_key()}
    body = keys_query(alice, {carol: []})
    assert body["self_signing_keys"] == {carol: carol_id.ssk_key()}, body

    # Claims: only the devices and algorithm asked for, one key each.
    claim_answer = {"one_time_keys": {
        carol: {"GOOD": {f"{ALG}:AAAA": good.sign({"key": "k1"}),
                         f"{ALG}:BBBB": good.sign({"key": "k2"})},
                "WRONGALG": {"curve25519:CCCC": "k3"},
                "NOTASKED": {f"{ALG}:DDDD": {"key": "k4"}},
                "BROKEN": {f"{ALG}:EEEE": 42}},
        mallory: {"M": {f"{ALG}:FFFF": {"key": "k5"}}},
    }}
    peer.routes[("POST", f"{FED}/user/keys/claim")] = (200, claim_answer)
    body = keys_claim(alice, {carol: {"GOOD": ALG, "WRONGALG": ALG, "BROKEN": ALG}})
    assert body["failures"] == {}, body
    assert set(body["one_time_keys"]) == {carol}, body
    assert set(body["one_time_keys"][carol]) == {"GOOD"}, body
    (name, key), = body["one_time_keys"][carol]["GOOD"].items()
    assert claim_answer["one_time_keys"][carol]["GOOD"][name] == key

    # A peer answering an error, or something other than an object.
    peer.routes[("POST", f"{FED}/user/keys/query")] = (500, {"errcode": "M_UNKNOWN"})
    body = keys_query(alice, {carol: []})
    assert body["failures"][peer.server_name]["status"] == 500, body
    assert body["device_keys"] == {}, body
    peer.routes[("POST", f"{FED}/user/keys/claim")] = (200, ["not", "an", "object"])
    body = keys_claim(alice, {carol: {"GOOD": ALG}})
    assert peer.server_name in body["failures"] and body["one_time_keys"] == {}, body


# ---------------------------------------------------------------------------
# Real clients on different servers


def nio_client(server, user, tmp_path):
    path = tmp_path / f"{user.user_id.strip('@').replace(':', '_')}-{user.device_id}"
    path.mkdir()
    config = nio.AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False)
    c = nio.AsyncClient(server.base_url, user.user_id, device_id=user.device_id,
                        store_path=str(path), config=config)
    c.restore_login(user.user_id, user.device_id, user.token)
    return c


def test_olm_session_between_nio_clients_on_two_servers(federation, tmp_path):
    hs1, hs2 = federation(2)
    alice, bob = User(hs1), User(hs2)

    async def scenario():
        na, nb = nio_client(hs1, alice, tmp_path), nio_client(hs2, bob, tmp_path)
        try:
            for c in (na, nb):
                resp = await c.sync(timeout=0, full_state=True)
                assert isinstance(resp, nio.SyncResponse), resp
                up = await c.keys_upload()
                assert isinstance(up, nio.KeysUploadResponse), up
            # Bob's client publishes one-time keys; Alice's asks hs1 for
            # Bob's device keys (hs1 asks hs2).
            na.olm.users_for_key_query.add(bob.user_id)
            kq = await na.keys_query()
            assert isinstance(kq, nio.KeysQueryResponse), kq
            assert kq.failures == {}, kq.failures
            device = na.device_store[bob.user_id][bob.device_id]
            assert device.ed25519 == nb.olm.account.identity_keys["ed25519"]
            assert device.curve25519 == nb.olm.account.identity_keys["curve25519"]

            # Alice's client claims a one-time key of Bob's device across
            # servers and opens an outbound Olm session with it.
            kc = await na.keys_claim({bob.user_id: [bob.device_id]})
            assert isinstance(kc, nio.KeysClaimResponse), kc
            assert kc.failures == {}, kc.failures
            (name, key), = kc.one_time_keys[bob.user_id][bob.device_id].items()
            assert name.startswith(f"{ALG}:")
            session = na.olm.session_store.get(device.curve25519)
            assert session is not None, "nio created no Olm session"

            # Alice's client sends Bob an Olm-encrypted to-device message:
            # hs1 passes it to hs2 (m.direct_to_device), Bob's device gets
            # it in /sync, and his Olm account opens the pre-key message
            # made with the session from the claimed key.
            since = bob.sync(timeout=0)["next_batch"]
            content = na.olm._olm_encrypt(session, device, "m.test.fedkeys",
                                          {"hello": "from hs1"})
            sent = await na.to_device(ToDeviceMessage(
                "m.room.encrypted", bob.user_id, bob.device_id, content))
            assert isinstance(sent, nio.ToDeviceResponse), sent
            got = None
            deadline = time.monotonic() + 30
            while got is None and time.monotonic() < deadline:
                body = await asyncio.to_thread(bob.sync, since=since, timeout=2000)
                since = body["next_batch"]
                got = next((e for e in body["to_device"]["events"]
                            if e["type"] == "m.room.encrypted"), None)
            assert got is not None, "the to-device message never reached hs2"
            assert got["sender"] == alice.user_id, got
            ciphertext = got["content"]["ciphertext"][device.curve25519]
            assert ciphertext["type"] == 0  # a pre-key message
            msg = olm.OlmPreKeyMessage(ciphertext["body"])
            inbound = olm.InboundSession(nb.olm.account, msg, got["content"]["sender_key"])
            payload = json.loads(inbound.decrypt(msg))
            assert payload["type"] == "m.test.fedkeys", payload
            assert payload["content"] == {"hello": "from hs1"}, payload
            assert payload["sender"] == alice.user_id
            assert payload["recipient"] == bob.user_id

            # The one-time key is gone from hs2: the next claim gets no
            # one-time key of the same name.
            kc2 = await na.keys_claim({bob.user_id: [bob.device_id]})
            assert isinstance(kc2, nio.KeysClaimResponse), kc2
            again = kc2.one_time_keys.get(bob.user_id, {}).get(bob.device_id, {})
            assert name not in again, kc2.one_time_keys
        finally:
            await na.close()
            await nb.close()

    asyncio.run(scenario())
