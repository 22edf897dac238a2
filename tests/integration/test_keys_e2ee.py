"""End-to-end encryption keys, seen from outside (the first slice of E2EE):
POST /keys/upload with device keys signed by a real Olm account
(python3-olm), signed one-time keys and fallback keys; the checks that
protect other users (forged, tampered or missing self-signatures, another
user's or device's keys, one-time keys not signed by the device key,
a held one-time key ID with different content); POST /keys/query (device
display names under `unsigned`, device filters, remote users in
`failures`); POST /keys/claim handing out each one-time key exactly once,
also under concurrent claims from many threads, then the fallback key
again and again; and device deletion, logout and deactivation removing a
device's keys. A matrix-nio client with its own Olm store uploads, queries
and claims through its ordinary calls. Every test runs on SQLite and on
PostgreSQL.

The /sync test needs client__keys_sync_counts wired into api/client/sync.c
(device_one_time_keys_count, device_unused_fallback_key_types); until then
it is an expected failure, and SYNC_WIRED = True turns it into a plain test.

(tests/integration/test_keys.py is about the federation key server.)"""

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from test_accounts import PASSWORD, login, uia
from test_rooms import V3, User, assert_error, q, run, unique

olm = pytest.importorskip("olm")

ALG = "signed_curve25519"

# Whether GET /sync reports the counts yet (client__keys_sync_counts wired
# into api/client/sync.c); until then that test is an expected failure.
SYNC_WIRED = True
needs_sync_wiring = pytest.mark.xfail(
    not SYNC_WIRED, strict=True,
    reason="needs client__keys_sync_counts in sync.c")


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def signable(obj):
    return {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}


class Device:
    """An Olm account standing for one device of `user`."""

    def __init__(self, user, device_id=None):
        self.user = user
        self.user_id = user.user_id
        self.device_id = device_id or user.device_id
        self.acc = olm.Account()
        self.ed25519 = self.acc.identity_keys["ed25519"]
        self.curve25519 = self.acc.identity_keys["curve25519"]

    def sign(self, obj, acc=None):
        sig = (acc or self.acc).sign(canonical(signable(obj)))
        obj.setdefault("signatures", {}).setdefault(self.user_id, {})[
            f"ed25519:{self.device_id}"] = sig
        return obj

    def device_keys(self, user_id=None, device_id=None):
        device_id = device_id or self.device_id
        keys = {
            "user_id": user_id or self.user_id,
            "device_id": device_id,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2",
                           "m.megolm.v1.aes-sha2"],
            "keys": {f"curve25519:{device_id}": self.curve25519,
                     f"ed25519:{device_id}": self.ed25519},
        }
        return self.sign(keys)

    def one_time_keys(self, n):
        self.acc.generate_one_time_keys(n)
        out = {}
        for key_id, key in self.acc.one_time_keys["curve25519"].items():
            out[f"{ALG}:{key_id}"] = self.sign({"key": key})
        self.acc.mark_keys_as_published()
        return out

    def fallback_key(self):
        self.acc.generate_fallback_key()
        (key_id, key), = self.acc.fallback_key["curve25519"].items()
        return {f"{ALG}:{key_id}": self.sign({"key": key, "fallback": True})}


def upload(user, body, token=None):
    hdr = {"Authorization": f"Bearer {token or user.token}"}
    return user.server.request("POST", f"{V3}/keys/upload", json=body,
                               headers=hdr)


def upload_ok(user, body, token=None):
    resp = upload(user, body, token)
    assert resp.status == 200, resp
    counts = resp.json["one_time_key_counts"]
    assert isinstance(counts, dict), resp
    return counts


def query(user, device_keys):
    resp = user.post(f"{V3}/keys/query", json={"device_keys": device_keys})
    assert resp.status == 200, resp
    for field in ("failures", "master_keys", "self_signing_keys",
                  "user_signing_keys"):
        assert isinstance(resp.json.get(field), dict), resp
    return resp.json


def claim(user, wanted):
    resp = user.post(f"{V3}/keys/claim", json={"one_time_keys": wanted})
    assert resp.status == 200, resp
    assert isinstance(resp.json["failures"], dict), resp
    return resp.json


def claimed_key(body, dev):
    """The one key claimed for `dev` as (name, object), or None."""
    keys = body["one_time_keys"].get(dev.user_id, {}).get(dev.device_id)
    if keys is None:
        return None
    assert len(keys) == 1, body
    return next(iter(keys.items()))


def verify_signed(dev, obj):
    """Checks the device's ed25519 signature on `obj` as a client would."""
    sig = obj["signatures"][dev.user_id][f"ed25519:{dev.device_id}"]
    olm.ed25519_verify(dev.ed25519, canonical(signable(obj)), sig)


# ---------------------------------------------------------------------------
# Upload and query
# ---------------------------------------------------------------------------

def test_upload_and_query_device_keys(server):
    alice = User(server)
    bob = User(server)
    resp = alice.put(f"{V3}/devices/{q(alice.device_id)}",
                     json={"display_name": "Alice's laptop"})
    assert resp.status == 200, resp
    dev = Device(alice)
    uploaded = dev.device_keys()
    uploaded["unsigned"] = {"from": "client"}  # not covered, not kept
    assert upload_ok(alice, {"device_keys": uploaded}) == {ALG: 0}

    body = query(bob, {alice.user_id: []})
    assert body["failures"] == {}
    got = body["device_keys"][alice.user_id][alice.device_id]
    assert got["unsigned"] == {"device_display_name": "Alice's laptop"}
    assert signable(got) == signable(uploaded)
    assert got["signatures"] == uploaded["signatures"]
    verify_signed(dev, got)

    # By device ID, an unknown device, an unknown local user, a user
    # without keys (present, empty, as Synapse answers), the r0 prefix.
    body = query(bob, {alice.user_id: [alice.device_id, "NOPE"],
                       bob.user_id: []})
    assert list(body["device_keys"][alice.user_id]) == [alice.device_id]
    assert body["device_keys"][bob.user_id] == {}
    assert query(bob, {alice.user_id: ["NOPE"]})["device_keys"] == \
        {alice.user_id: {}}
    resp = bob.post("/_matrix/client/r0/keys/query",
                    json={"device_keys": {alice.user_id: []}})
    assert resp.status == 200, resp
    assert alice.device_id in resp.json["device_keys"][alice.user_id]

    # Identical re-upload is fine; so is a new identity for the device,
    # properly self-signed (Synapse accepts it too); query shows the new.
    assert upload_ok(alice, {"device_keys": dev.device_keys()}) == {ALG: 0}
    dev2 = Device(alice)
    upload_ok(alice, {"device_keys": dev2.device_keys()})
    got = query(bob, {alice.user_id: []})["device_keys"][alice.user_id][
        alice.device_id]
    assert got["keys"][f"ed25519:{alice.device_id}"] == dev2.ed25519
    verify_signed(dev2, got)

    # Remote users go into failures; nothing else is listed for them.
    body = query(bob, {"@carol:remote.example": []})
    assert "remote.example" in body["failures"], body
    assert "@carol:remote.example" not in body["device_keys"]


def test_upload_rejects_bad_device_keys(server):
    alice = User(server)
    bob = User(server)
    dev = Device(alice)
    other = olm.Account()

    def bad(body, errcode="M_INVALID_PARAM"):
        assert_error(upload(alice, body), 400, errcode)

    # A signature by another key (forged), a tampered object, none at all.
    bad({"device_keys": dev.sign(dev.device_keys(), acc=other)})
    tampered = dev.device_keys()
    tampered["algorithms"].append("m.evil")
    bad({"device_keys": tampered})
    unsigned = dev.device_keys()
    del unsigned["signatures"]
    bad({"device_keys": unsigned})
    # Signed by the right key but under another key ID only.
    moved = dev.device_keys()
    sig = moved["signatures"][alice.user_id].pop(f"ed25519:{alice.device_id}")
    moved["signatures"][alice.user_id]["ed25519:OTHER"] = sig
    bad({"device_keys": moved})
    # Another user's or another device's keys, even validly self-signed.
    bad({"device_keys": dev.device_keys(user_id=bob.user_id)})
    fake = Device(alice, device_id="NOTMINE")
    bad({"device_keys": fake.device_keys()})
    # Key names must use the device's ID; an ed25519 key is required.
    wrong_name = dev.device_keys()
    wrong_name["keys"]["curve25519:ELSEWHERE"] = \
        wrong_name["keys"].pop(f"curve25519:{alice.device_id}")
    bad({"device_keys": dev.sign(wrong_name)})
    no_ed = dev.device_keys()
    del no_ed["keys"][f"ed25519:{alice.device_id}"]
    bad({"device_keys": dev.sign(no_ed)})
    bad({"device_keys": "nope"})
    bad({"device_keys": {**dev.device_keys(), "algorithms": "x"}})
    bad({"one_time_keys": []})
    # Malformed JSON bodies.
    resp = alice.req("POST", f"{V3}/keys/upload", body=b"{not json")
    assert resp.status == 400 and resp.json["errcode"] == "M_NOT_JSON", resp
    # Nothing was stored by any of these.
    assert query(bob, {alice.user_id: []})["device_keys"] == \
        {alice.user_id: {}}


def test_one_time_key_counts_and_conflicts(server):
    alice = User(server)
    dev = Device(alice)
    otks = dev.one_time_keys(5)
    counts = upload_ok(alice, {"device_keys": dev.device_keys(),
                               "one_time_keys": otks})
    assert counts == {ALG: 5}
    # The same keys again change nothing; so does a re-signed copy.
    assert upload_ok(alice, {"one_time_keys": otks}) == {ALG: 5}
    name = next(iter(otks))
    resigned = {name: dev.sign({"key": otks[name]["key"]})}
    assert upload_ok(alice, {"one_time_keys": resigned}) == {ALG: 5}
    # A held key ID with a different key is refused, and stores nothing.
    changed = {name: dev.sign({"key": Device(alice).curve25519}),
               f"{ALG}:fresh": dev.sign({"key": Device(alice).curve25519})}
    assert_error(upload(alice, {"one_time_keys": changed}), 400,
                 "M_INVALID_PARAM")
    # Signed keys must carry a valid signature by the device's key.
    forged = {f"{ALG}:forged": dev.sign({"key": dev.curve25519},
                                        acc=olm.Account())}
    assert_error(upload(alice, {"one_time_keys": forged}), 400,
                 "M_INVALID_PARAM")
    assert_error(upload(alice, {"one_time_keys": {f"{ALG}:nosig":
                                                  {"key": "abc"}}}),
                 400, "M_INVALID_PARAM")
    assert_error(upload(alice, {"one_time_keys": {"noalgorithm": "abc"}}),
                 400, "M_INVALID_PARAM")
    assert_error(upload(alice, {"one_time_keys": {f"{ALG}:num": 5}}),
                 400, "M_INVALID_PARAM")
    # Plain (unsigned) string keys of another algorithm are counted apart.
    counts = upload_ok(alice, {"one_time_keys": {"curve25519:AAAA": "k1",
                                                 "curve25519:AAAB": "k2"}})
    assert counts == {ALG: 5, "curve25519": 2}
    # Two fallback keys of one algorithm in one upload are refused.
    two = {**dev.fallback_key(), f"{ALG}:other":
           dev.sign({"key": "x", "fallback": True})}
    assert_error(upload(alice, {"fallback_keys": two}), 400,
                 "M_INVALID_PARAM")


# ---------------------------------------------------------------------------
# Claims
# ---------------------------------------------------------------------------

def test_claim_each_key_once_then_fallback(server):
    alice = User(server)
    bob = User(server)
    dev = Device(alice)
    first = dev.one_time_keys(2)
    upload_ok(alice, {"device_keys": dev.device_keys(),
                      "one_time_keys": first})
    second = dev.one_time_keys(1)
    fallback = dev.fallback_key()
    assert upload_ok(alice, {"one_time_keys": second,
                             "fallback_keys": fallback}) == {ALG: 3}

    wanted = {alice.user_id: {alice.device_id: ALG}}
    got = []
    for _ in range(3):
        name, key = claimed_key(claim(bob, wanted), dev)
        verify_signed(dev, key)
        assert "fallback" not in key
        got.append(name)
    # Each once, the first upload's keys before the second's.
    assert len(set(got)) == 3
    assert set(got[:2]) == set(first) and got[2] in second
    counts = upload_ok(alice, {})
    assert counts == {ALG: 0}

    # Then the fallback key, every time, marked used.
    for _ in range(3):
        name, key = claimed_key(claim(bob, wanted), dev)
        assert {name: key} == fallback
        verify_signed(dev, key)
    # Uploading the same fallback key again keeps it used; a new one is
    # unused and replaces it.
    upload_ok(alice, {"fallback_keys": fallback})
    new_fallback = dev.fallback_key()
    upload_ok(alice, {"fallback_keys": new_fallback})
    name, key = claimed_key(claim(bob, wanted), dev)
    assert {name: key} == new_fallback
    # The unstable field name of MSC2732 is read too.
    unstable = dev.fallback_key()
    upload_ok(alice, {"org.matrix.msc2732.fallback_keys": unstable})
    assert dict([claimed_key(claim(bob, wanted), dev)]) == unstable

    # Unknown devices, users, algorithms: simply missing; remote: failures.
    body = claim(bob, {alice.user_id: {"NOPE": ALG,
                                       alice.device_id: "other_alg"},
                       f"@nobody{unique()}:{server.server_name}": {"X": ALG},
                       "@carol:remote.example": {"DEV": ALG}})
    assert body["one_time_keys"] == {}, body
    assert "remote.example" in body["failures"], body

    # Bad requests.
    assert_error(bob.post(f"{V3}/keys/claim", json={}), 400,
                 "M_MISSING_PARAM")
    assert_error(bob.post(f"{V3}/keys/claim",
                          json={"one_time_keys": {alice.user_id: []}}),
                 400, "M_INVALID_PARAM")
    assert_error(bob.post(f"{V3}/keys/claim", json={
        "one_time_keys": {alice.user_id: {alice.device_id: 1}}}),
        400, "M_INVALID_PARAM")
    assert_error(bob.post(f"{V3}/keys/claim", json={
        "one_time_keys": {"not-a-user": {"D": ALG}}}), 400, "M_INVALID_PARAM")
    assert_error(bob.post(f"{V3}/keys/query", json={}), 400,
                 "M_MISSING_PARAM")
    assert_error(bob.post(f"{V3}/keys/query",
                          json={"device_keys": {alice.user_id: "x"}}),
                 400, "M_INVALID_PARAM")


@pytest.mark.parametrize("with_fallback", [False, True])
def test_concurrent_claims_hand_out_each_key_once(server, with_fallback):
    """16 threads claim 192 times from 160 one-time keys uploaded in four
    batches: every key exactly once, and no claim falls back (or comes back
    empty) while one-time keys remain, which on PostgreSQL needs the claim
    that lost a race for a key to try the next one."""
    alice = User(server)
    dev = Device(alice)
    upload_ok(alice, {"device_keys": dev.device_keys()})
    for _ in range(4):
        upload_ok(alice, {"one_time_keys": dev.one_time_keys(40)})
    fallback = dev.fallback_key() if with_fallback else None
    if fallback:
        upload_ok(alice, {"fallback_keys": fallback})
    assert upload_ok(alice, {}) == {ALG: 160}

    claimers = [User(server) for _ in range(16)]
    wanted = {alice.user_id: {alice.device_id: ALG}}
    start = threading.Barrier(len(claimers))

    def run_claims(user):
        start.wait()
        out = []
        for _ in range(12):
            key = claimed_key(claim(user, wanted), dev)
            out.append(key[0] if key else None)
        return out

    with ThreadPoolExecutor(len(claimers)) as pool:
        per_thread = list(pool.map(run_claims, claimers))
    results = [k for ks in per_thread for k in ks]
    assert len(results) == 192
    fallback_name = next(iter(fallback)) if fallback else None
    otks = [k for k in results if k is not None and k != fallback_name]
    assert len(set(otks)) == len(otks), "a one-time key was handed out twice"
    assert len(otks) == 160, f"{160 - len(otks)} claims fell back too early"
    # Within one claimer, nothing after the first fallback is a key.
    for ks in per_thread:
        rest = ks[next((i for i, k in enumerate(ks)
                        if k is None or k == fallback_name), len(ks)):]
        assert set(rest) <= {fallback_name}, ks
    assert upload_ok(alice, {}) == {ALG: 0}


@needs_sync_wiring
def test_sync_reports_key_counts(server):
    alice = User(server)
    bob = User(server)
    dev = Device(alice)

    def sync_counts():
        resp = alice.get(f"{V3}/sync?timeout=0")
        assert resp.status == 200, resp
        return (resp.json.get("device_one_time_keys_count", {}),
                resp.json["device_unused_fallback_key_types"])

    assert sync_counts() == ({ALG: 0}, [])
    upload_ok(alice, {"device_keys": dev.device_keys(),
                      "one_time_keys": dev.one_time_keys(2),
                      "fallback_keys": dev.fallback_key()})
    assert sync_counts() == ({ALG: 2}, [ALG])
    wanted = {alice.user_id: {alice.device_id: ALG}}
    claim(bob, wanted)
    assert sync_counts() == ({ALG: 1}, [ALG])
    claim(bob, wanted)
    claim(bob, wanted)  # the fallback key, now used
    counts, unused = sync_counts()
    assert counts.get(ALG, 0) == 0 and unused == []


# ---------------------------------------------------------------------------
# Device deletion
# ---------------------------------------------------------------------------

def test_deleting_devices_deletes_their_keys(server):
    name = unique()
    resp = server.post(f"{V3}/register", json={
        "auth": {"type": "m.login.dummy"}, "username": name,
        "password": PASSWORD})
    assert resp.status == 200, resp
    alice = User.__new__(User)
    alice.server = server
    alice.user_id = resp.json["user_id"]
    alice.token = resp.json["access_token"]
    alice.device_id = resp.json["device_id"]
    bob = User(server)

    def second_device():
        resp = login(server, alice.user_id)
        assert resp.status == 200, resp
        dev = Device(alice, device_id=resp.json["device_id"])
        upload_ok(alice, {"device_keys": dev.device_keys(),
                          "one_time_keys": dev.one_time_keys(3),
                          "fallback_keys": dev.fallback_key()},
                  token=resp.json["access_token"])
        return dev, resp.json["access_token"]

    main = Device(alice)
    upload_ok(alice, {"device_keys": main.device_keys(),
                      "one_time_keys": main.one_time_keys(2)})
    d2, _ = second_device()
    d3, _ = second_device()
    assert set(query(bob, {alice.user_id: []})["device_keys"][
        alice.user_id]) == {alice.device_id, d2.device_id, d3.device_id}

    # DELETE /devices/{id} (behind UIA) and POST /delete_devices.
    resp = uia(server, "DELETE", f"{V3}/devices/{q(d2.device_id)}",
               alice.token, alice.user_id)
    assert resp.status == 200, resp
    resp = uia(server, "POST", f"{V3}/delete_devices", alice.token,
               alice.user_id, body={"devices": [d3.device_id]})
    assert resp.status == 200, resp
    assert set(query(bob, {alice.user_id: []})["device_keys"][
        alice.user_id]) == {alice.device_id}
    body = claim(bob, {alice.user_id: {d2.device_id: ALG,
                                       d3.device_id: ALG}})
    assert body["one_time_keys"] == {}, body

    # A new login reusing a deleted device ID starts without keys.
    resp = login(server, alice.user_id, device_id=d2.device_id)
    assert resp.status == 200, resp
    assert upload_ok(alice, {}, token=resp.json["access_token"]) == {ALG: 0}
    assert claim(bob, {alice.user_id: {d2.device_id: ALG}})[
        "one_time_keys"] == {}

    # Logout deletes the device, and its keys.
    d4, token4 = second_device()
    resp = server.post(f"{V3}/logout", json={},
                       headers={"Authorization": f"Bearer {token4}"})
    assert resp.status == 200, resp
    assert d4.device_id not in query(bob, {alice.user_id: []})[
        "device_keys"][alice.user_id]
    assert claim(bob, {alice.user_id: {d4.device_id: ALG}})[
        "one_time_keys"] == {}

    # Deactivation removes every device's keys.
    resp = uia(server, "POST", f"{V3}/account/deactivate", alice.token,
               alice.user_id)
    assert resp.status == 200, resp
    assert query(bob, {alice.user_id: []})["device_keys"] == \
        {alice.user_id: {}}
    assert claim(bob, {alice.user_id: {alice.device_id: ALG}})[
        "one_time_keys"] == {}


# ---------------------------------------------------------------------------
# matrix-nio
# ---------------------------------------------------------------------------

def test_nio_uploads_queries_and_claims(server, tmp_path):
    import nio

    alice = User(server)
    bob = User(server)

    async def scenario():
        config = nio.AsyncClientConfig(encryption_enabled=True,
                                       store_sync_tokens=False)
        clients = []
        for user in (alice, bob):
            path = tmp_path / user.user_id.strip("@").replace(":", "_")
            path.mkdir()
            c = nio.AsyncClient(server.base_url, user.user_id,
                                device_id=user.device_id,
                                store_path=str(path), config=config)
            c.restore_login(user.user_id, user.device_id, user.token)
            clients.append(c)
        na, nb = clients
        try:
            # nio signs and uploads its device keys and one-time keys.
            assert na.should_upload_keys
            resp = await na.keys_upload()
            assert isinstance(resp, nio.KeysUploadResponse), resp
            assert resp.signed_curve25519_count > 0
            uploaded = resp.signed_curve25519_count
            resp = await nb.keys_upload()
            assert isinstance(resp, nio.KeysUploadResponse), resp

            # Bob's nio learns Alice's device (and checks its signature).
            nb.olm.users_for_key_query.add(alice.user_id)
            resp = await nb.keys_query()
            assert isinstance(resp, nio.KeysQueryResponse), resp
            devices = nb.device_store[alice.user_id]
            assert alice.device_id in devices
            assert devices[alice.device_id].ed25519 == \
                na.olm.account.identity_keys["ed25519"]

            # And claims one of her one-time keys, which nio verifies and
            # turns into an Olm session.
            resp = await nb.keys_claim({alice.user_id: [alice.device_id]})
            assert isinstance(resp, nio.KeysClaimResponse), resp
            assert alice.device_id in resp.one_time_keys[alice.user_id]
            session = nb.olm.session_store.get(
                devices[alice.device_id].curve25519)
            assert session is not None

            # Alice's count went down by one.
            counts = upload_ok(alice, {})
            assert counts[ALG] == uploaded - 1
        finally:
            for c in clients:
                await c.close()

    run(scenario())
