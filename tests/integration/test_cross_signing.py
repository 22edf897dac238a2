"""Cross-signing (spec "Cross-signing"), with real ed25519 keys
(python3-olm: olm.PkSigning for the cross-signing keys, olm.Account for
devices) and canonical JSON signatures computed here:

- POST /keys/device_signing/upload (and its /unstable path, which Element
  probes): the first upload needs no UIA (v1.11, MSC3967), repeating the
  stored keys neither; replacing keys, or a request without the stored
  master key, is a 401 challenge offering m.login.password and then goes
  through with the password; key shapes, a self-signing or user-signing
  key not signed by the master key (M_INVALID_SIGNATURE), no master key
  at all (M_MISSING_PARAM), a key equal to a device ID (403).
- POST /keys/query: master and self-signing keys for everyone, the
  user-signing key only for its owner, uploaded signatures merged in, and
  signatures by another user's user-signing key seen only by the signer.
- POST /keys/signatures/upload: a device signed by the self-signing key,
  the master key signed by a device, another user's master key signed by
  the user-signing key; forged, tampered, unknown and misdirected
  signatures land in `failures` and are not stored.
- Device-list changes (GET /keys/changes) for uploads and signatures;
  replaced keys (cross-signing keys, a device's identity) and deleted
  devices dropping the signatures they no longer back; deactivation
  dropping the keys.

matrix-nio has no cross-signing calls, so everything is raw HTTP. Every
test runs on SQLite and on PostgreSQL."""

import json

import pytest

from test_accounts import PASSWORD, password_auth, uia
from test_keys_e2ee import Device, query, upload_ok
from test_rooms import V3, assert_error, q
from test_sync import User

olm = pytest.importorskip("olm")

UNSTABLE = "/_matrix/client/unstable"


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def signable(obj):
    return {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}


def sign_with(obj, signer, user_id, key_id):
    """Adds signer's (olm.PkSigning or olm.Account) signature of obj."""
    sig = signer.sign(canonical(signable(obj)))
    obj.setdefault("signatures", {}).setdefault(user_id, {})[key_id] = sig
    return obj


def verify(pub, obj, user_id, key_id):
    olm.ed25519_verify(pub, canonical(signable(obj)),
                       obj["signatures"][user_id][key_id])


class Identity:
    """A user's three cross-signing key pairs."""

    def __init__(self, user):
        self.user_id = user.user_id
        self.master = olm.PkSigning(olm.PkSigning.generate_seed())
        self.ssk = olm.PkSigning(olm.PkSigning.generate_seed())
        self.usk = olm.PkSigning(olm.PkSigning.generate_seed())

    @staticmethod
    def kid(signing):
        return f"ed25519:{signing.public_key}"

    def key(self, usage, signing, signed_by=None):
        obj = {"user_id": self.user_id, "usage": [usage],
               "keys": {self.kid(signing): signing.public_key}}
        if signed_by is not None:
            sign_with(obj, signed_by, self.user_id, self.kid(signed_by))
        return obj

    def master_key(self):
        return self.key("master", self.master)

    def ssk_key(self, signed_by="master"):
        return self.key("self_signing", self.ssk,
                        self.master if signed_by == "master" else signed_by)

    def usk_key(self, signed_by="master"):
        return self.key("user_signing", self.usk,
                        self.master if signed_by == "master" else signed_by)

    def body(self):
        return {"master_key": self.master_key(),
                "self_signing_key": self.ssk_key(),
                "user_signing_key": self.usk_key()}


def cs_upload(user, body, prefix=V3):
    return user.req("POST", f"{prefix}/keys/device_signing/upload", json=body)


def cs_upload_uia(user, body, prefix=V3):
    """A replacement: the 401 challenge with m.login.password, then the
    same request with the password."""
    first = cs_upload(user, body, prefix)
    assert first.status == 401, first
    assert {"stages": ["m.login.password"]} in first.json["flows"], first
    body = dict(body, auth=password_auth(user.user_id,
                                         session=first.json["session"]))
    resp = cs_upload(user, body, prefix)
    assert resp.status == 200, resp
    assert resp.json == {}, resp


def sig_upload(user, body, prefix=V3):
    resp = user.req("POST", f"{prefix}/keys/signatures/upload", json=body)
    assert resp.status == 200, resp
    assert isinstance(resp.json["failures"], dict), resp
    return resp.json["failures"]


def failed(failures, user_id, key_id, errcode):
    got = failures.get(user_id, {}).get(key_id)
    assert got and got["errcode"] == errcode, failures
    assert isinstance(got["error"], str), failures


def changes(user, since):
    now = user.sync(timeout=0)["next_batch"]
    resp = user.get(f"{V3}/keys/changes?from={q(since)}&to={q(now)}")
    assert resp.status == 200, resp
    return sorted(resp.json["changed"])


# ---------------------------------------------------------------------------
# Uploading cross-signing keys
# ---------------------------------------------------------------------------

def test_upload_without_then_with_uia(server):
    alice = User(server, password=PASSWORD)
    bob = User(server, password=PASSWORD)
    room = alice.create_room(preset="public_chat")
    bob.join(room)
    ident = Identity(alice)

    # Element's probe on a fresh account: nothing stored, no UIA needed.
    resp = cs_upload(alice, {}, UNSTABLE)
    assert resp.status == 200 and resp.json == {}, resp

    def bad(body, errcode="M_INVALID_PARAM", status=400):
        assert_error(cs_upload(alice, body), status, errcode)

    # No master key anywhere to check the others against.
    bad({"self_signing_key": ident.ssk_key()}, "M_MISSING_PARAM")
    # Shapes: another user, wrong usage, two keys, a key name that is not
    # its value, a key that is not 32 bytes.
    bad({"master_key": dict(ident.master_key(), user_id=bob.user_id)})
    bad({"master_key": dict(ident.master_key(), usage=["self_signing"])})
    two = ident.master_key()
    two["keys"][ident.kid(ident.ssk)] = ident.ssk.public_key
    bad({"master_key": two})
    bad({"master_key": dict(ident.master_key(),
                            keys={ident.kid(ident.master): ident.ssk.public_key})})
    bad({"master_key": dict(ident.master_key(), keys={"ed25519:AAAA": "AAAA"})})
    bad({"master_key": "nope"})
    # Self-signing and user-signing keys must be signed by the master key:
    # unsigned, signed by another key, a forged signature.
    bad({"master_key": ident.master_key(),
         "self_signing_key": ident.key("self_signing", ident.ssk)},
        "M_INVALID_SIGNATURE")
    bad({"master_key": ident.master_key(),
         "user_signing_key": ident.usk_key(signed_by=ident.usk)},
        "M_INVALID_SIGNATURE")
    forged = ident.usk_key(signed_by=ident.usk)
    forged["signatures"] = {alice.user_id: {
        ident.kid(ident.master): forged["signatures"][alice.user_id][
            ident.kid(ident.usk)]}}
    bad({"master_key": ident.master_key(), "user_signing_key": forged},
        "M_INVALID_SIGNATURE")
    # None of that stored anything.
    body = query(alice, {alice.user_id: []})
    assert alice.user_id not in body["master_keys"], body

    # The first upload needs no UIA; it is a device-list change.
    since = alice.sync()["next_batch"]
    bob_since = bob.sync()["next_batch"]
    resp = cs_upload(alice, ident.body())
    assert resp.status == 200 and resp.json == {}, resp
    assert alice.user_id in changes(alice, since)
    assert alice.user_id in changes(bob, bob_since)
    # Repeating the same keys is idempotent, still without UIA, also
    # just the master key again.
    for body in (ident.body(), {"master_key": ident.master_key()}):
        resp = cs_upload(alice, body)
        assert resp.status == 200 and resp.json == {}, resp

    # Query shapes: master and self-signing keys for everyone; the
    # user-signing key only for Alice herself.
    body = query(bob, {alice.user_id: [], bob.user_id: []})
    assert body["master_keys"] == {alice.user_id: ident.master_key()}
    assert body["self_signing_keys"] == {alice.user_id: ident.ssk_key()}
    assert body["user_signing_keys"] == {}
    verify(ident.master.public_key, body["self_signing_keys"][alice.user_id],
           alice.user_id, ident.kid(ident.master))
    body = query(alice, {alice.user_id: []})
    assert body["user_signing_keys"] == {alice.user_id: ident.usk_key()}
    assert body["master_keys"][alice.user_id] == ident.master_key()

    # Once a master key exists: a request without it (Element's probe), a
    # new self-signing key and a new master key all need UIA.
    first = cs_upload(alice, {}, UNSTABLE)
    assert first.status == 401, first
    assert {"stages": ["m.login.password"]} in first.json["flows"], first
    old_ssk = ident.ssk
    ident.ssk = olm.PkSigning(olm.PkSigning.generate_seed())
    resp = cs_upload(alice, {"self_signing_key": ident.ssk_key()})
    assert resp.status == 401, resp
    wrong = password_auth(alice.user_id, "wrong", resp.json["session"])
    resp = cs_upload(alice, {"self_signing_key": ident.ssk_key(), "auth": wrong})
    assert resp.status == 401 and resp.json["errcode"] == "M_FORBIDDEN", resp
    assert query(bob, {alice.user_id: []})["self_signing_keys"][
        alice.user_id]["keys"] == {ident.kid(old_ssk): old_ssk.public_key}
    cs_upload_uia(alice, {"self_signing_key": ident.ssk_key()})
    assert query(bob, {alice.user_id: []})["self_signing_keys"] == {
        alice.user_id: ident.ssk_key()}
    # A self-signing key signed by a master key that is not Alice's.
    other = Identity(alice)
    bad({"self_signing_key": other.ssk_key()}, "M_INVALID_SIGNATURE")

    # A whole new identity, over the unstable path.
    new = Identity(alice)
    cs_upload_uia(alice, new.body(), UNSTABLE)
    body = query(alice, {alice.user_id: []})
    assert body["master_keys"][alice.user_id] == new.master_key()
    assert body["self_signing_keys"][alice.user_id] == new.ssk_key()
    assert body["user_signing_keys"][alice.user_id] == new.usk_key()
    # Guests cannot upload cross-signing keys.
    guest = User(server, guest=True)
    assert cs_upload(guest, Identity(guest).body()).status == 403


def test_key_equal_to_device_id_is_refused(server):
    carol = User(server, password=PASSWORD)
    ident = Identity(carol)
    name = carol.user_id[1:].split(":")[0]
    resp = server.post(f"{V3}/login", json={
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": name},
        "password": PASSWORD, "device_id": ident.master.public_key})
    assert resp.status == 200, resp
    assert_error(cs_upload(carol, ident.body()), 403, "M_FORBIDDEN")
    assert query(carol, {carol.user_id: []})["master_keys"] == {}


# ---------------------------------------------------------------------------
# Uploading signatures
# ---------------------------------------------------------------------------

def login_device(server, user, device_id=None):
    name = user.user_id[1:].split(":")[0]
    body = {"type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": name},
            "password": PASSWORD}
    if device_id:
        body["device_id"] = device_id
    resp = server.post(f"{V3}/login", json=body)
    assert resp.status == 200, resp
    s = User.__new__(User)
    s.server, s.user_id = server, user.user_id
    s.token, s.device_id = resp.json["access_token"], resp.json["device_id"]
    return s


def test_signatures(server):
    alice = User(server, password=PASSWORD)
    alice2 = login_device(server, alice)
    bob = User(server, password=PASSWORD)
    carol = User(server, password=PASSWORD)
    dev, dev2 = Device(alice), Device(alice2)
    upload_ok(alice, {"device_keys": dev.device_keys()})
    upload_ok(alice2, {"device_keys": dev2.device_keys()})
    ident, bob_ident = Identity(alice), Identity(bob)
    assert cs_upload(alice, ident.body()).status == 200
    assert cs_upload(bob, bob_ident.body()).status == 200
    ssk_id, usk_id = ident.kid(ident.ssk), bob_ident.kid(bob_ident.usk)
    mpub = ident.master.public_key

    def alice_view(viewer):
        return query(viewer, {alice.user_id: []})

    # Alice's self-signing key signs her first device; the signature is
    # merged into the device keys /keys/query serves, to anyone.
    since = alice.sync()["next_batch"]
    signed = sign_with(dev.device_keys(), ident.ssk, alice.user_id, ssk_id)
    assert sig_upload(alice, {alice.user_id: {dev.device_id: signed}}) == {}
    assert alice.user_id in changes(alice, since)
    got = alice_view(bob)["device_keys"][alice.user_id][dev.device_id]
    verify(ident.ssk.public_key, got, alice.user_id, ssk_id)
    verify(dev.ed25519, got, alice.user_id, f"ed25519:{dev.device_id}")

    # A forged signature (another key's, under the self-signing key ID),
    # a tampered object, an unsigned one, an unknown device: failures, and
    # the second device stays unsigned.
    forged = dev2.device_keys()
    sign_with(forged, olm.PkSigning(olm.PkSigning.generate_seed()),
              alice.user_id, ssk_id)
    tampered = sign_with(dev2.device_keys(), ident.ssk, alice.user_id, ssk_id)
    tampered["keys"][f"curve25519:{dev2.device_id}"] = dev.curve25519
    failures = sig_upload(alice, {alice.user_id: {dev2.device_id: forged,
                                                  "NOSUCHDEV": signed}})
    failed(failures, alice.user_id, dev2.device_id, "M_INVALID_SIGNATURE")
    failed(failures, alice.user_id, "NOSUCHDEV", "M_NOT_FOUND")
    failures = sig_upload(alice, {alice.user_id: {dev2.device_id: tampered}})
    failed(failures, alice.user_id, dev2.device_id, "M_INVALID_PARAM")
    failures = sig_upload(alice, {alice.user_id: {
        dev2.device_id: dev2.device_keys()}})
    failed(failures, alice.user_id, dev2.device_id, "M_INVALID_SIGNATURE")
    got = alice_view(bob)["device_keys"][alice.user_id][dev2.device_id]
    assert ssk_id not in got["signatures"][alice.user_id], got

    # Alice's device signs her master key (the key ID is its public key);
    # a forged device signature is refused.
    master = sign_with(ident.master_key(), dev.acc, alice.user_id,
                       f"ed25519:{dev.device_id}")
    assert sig_upload(alice, {alice.user_id: {mpub: master}}) == {}
    got = alice_view(carol)["master_keys"][alice.user_id]
    verify(dev.ed25519, got, alice.user_id, f"ed25519:{dev.device_id}")
    bad_master = sign_with(ident.master_key(), dev.acc, alice.user_id,
                           f"ed25519:{dev2.device_id}")
    failures = sig_upload(alice, {alice.user_id: {mpub: bad_master}})
    failed(failures, alice.user_id, mpub, "M_INVALID_SIGNATURE")
    dev2_on_master = f"ed25519:{dev2.device_id}"
    got = alice_view(carol)["master_keys"][alice.user_id]
    assert dev2_on_master not in got["signatures"][alice.user_id], got
    # The master key's own signature is checked but not needed; a forged
    # one fails the whole object, valid device signature included.
    for signer, ok in ((dev.acc, False), (ident.master, True)):
        obj = sign_with(ident.master_key(), signer, alice.user_id,
                        ident.kid(ident.master))
        sign_with(obj, dev2.acc, alice.user_id, dev2_on_master)
        failures = sig_upload(alice, {alice.user_id: {mpub: obj}})
        if ok:
            assert failures == {}
        else:
            failed(failures, alice.user_id, mpub, "M_INVALID_SIGNATURE")
            got = alice_view(carol)["master_keys"][alice.user_id]
            assert dev2_on_master not in got["signatures"][alice.user_id]
    got = alice_view(carol)["master_keys"][alice.user_id]
    verify(dev2.ed25519, got, alice.user_id, dev2_on_master)
    assert ident.kid(ident.master) not in got["signatures"][alice.user_id]

    # Bob's user-signing key signs Alice's master key: Bob sees it (and
    # his own device list changes), Alice and Carol do not (spec "Key and
    # signature security"). Over the unstable path too.
    bob_since = bob.sync()["next_batch"]
    bob_master = sign_with(ident.master_key(), bob_ident.usk, bob.user_id,
                           usk_id)
    assert sig_upload(bob, {alice.user_id: {mpub: bob_master}}, UNSTABLE) == {}
    assert bob.user_id in changes(bob, bob_since)
    got = alice_view(bob)["master_keys"][alice.user_id]
    verify(bob_ident.usk.public_key, got, bob.user_id, usk_id)
    verify(dev.ed25519, got, alice.user_id, f"ed25519:{dev.device_id}")
    for viewer in (alice, carol):
        got = alice_view(viewer)["master_keys"][alice.user_id]
        assert bob.user_id not in got["signatures"], got

    # Refused for another user: a forged user-signing signature, a key
    # that is not the master key, no user-signing key at all (Carol), and
    # a remote user.
    forged = sign_with(ident.master_key(), bob_ident.ssk, bob.user_id, usk_id)
    failures = sig_upload(bob, {alice.user_id: {
        mpub: forged, ident.ssk.public_key: bob_master}})
    failed(failures, alice.user_id, mpub, "M_INVALID_SIGNATURE")
    failed(failures, alice.user_id, ident.ssk.public_key, "M_NOT_FOUND")
    failures = sig_upload(carol, {alice.user_id: {mpub: bob_master},
                                  "@dave:remote.example": {"K": {}}})
    failed(failures, alice.user_id, mpub, "M_NOT_FOUND")
    failed(failures, "@dave:remote.example", "K", "M_NOT_FOUND")
    got = alice_view(bob)["master_keys"][alice.user_id]
    assert got["signatures"][bob.user_id][usk_id] == \
        bob_master["signatures"][bob.user_id][usk_id]

    # Malformed requests are refused as a whole.
    for body in ({alice.user_id: "x"}, {alice.user_id: {"K": 1}},
                 {"not-a-user": {}}):
        resp = alice.req("POST", f"{V3}/keys/signatures/upload", json=body)
        assert_error(resp, 400, "M_INVALID_PARAM")

    # A new self-signing key drops the signatures the old one made; a new
    # master key drops the signatures of the old one.
    new = Identity(alice)
    new.usk = ident.usk
    cs_upload_uia(alice, new.body())
    body = alice_view(bob)
    got = body["device_keys"][alice.user_id][dev.device_id]
    assert ssk_id not in got["signatures"][alice.user_id], got
    assert body["master_keys"][alice.user_id] == new.master_key()
    # Deleting a device drops the signatures of it: a device logged in
    # again under the same ID with the same keys comes back unsigned.
    new_ssk_id = new.kid(new.ssk)
    signed2 = sign_with(dev2.device_keys(), new.ssk, alice.user_id, new_ssk_id)
    assert sig_upload(alice, {alice.user_id: {dev2.device_id: signed2}}) == {}
    got = alice_view(bob)["device_keys"][alice.user_id][dev2.device_id]
    verify(new.ssk.public_key, got, alice.user_id, new_ssk_id)
    resp = uia(server, "DELETE", f"{V3}/devices/{q(dev2.device_id)}",
               alice.token, alice.user_id)
    assert resp.status == 200, resp
    again = login_device(server, alice, dev2.device_id)
    upload_ok(again, {"device_keys": dev2.device_keys()})
    got = alice_view(bob)["device_keys"][alice.user_id][dev2.device_id]
    assert new_ssk_id not in got["signatures"][alice.user_id], got

    # A device re-uploading its keys keeps its signature; a device with a
    # new identity loses it.
    signed = sign_with(dev.device_keys(), new.ssk, alice.user_id, new_ssk_id)
    assert sig_upload(alice, {alice.user_id: {dev.device_id: signed}}) == {}
    upload_ok(alice, {"device_keys": dev.device_keys()})
    got = alice_view(bob)["device_keys"][alice.user_id][dev.device_id]
    verify(new.ssk.public_key, got, alice.user_id, new_ssk_id)
    upload_ok(alice, {"device_keys": Device(alice).device_keys()})
    got = alice_view(bob)["device_keys"][alice.user_id][dev.device_id]
    assert new_ssk_id not in got["signatures"][alice.user_id], got


def test_deactivation_drops_cross_signing_keys(server):
    alice = User(server, password=PASSWORD)
    bob = User(server, password=PASSWORD)
    ident = Identity(alice)
    assert cs_upload(alice, ident.body()).status == 200
    bob_ident = Identity(bob)
    assert cs_upload(bob, bob_ident.body()).status == 200
    signed = sign_with(ident.master_key(), bob_ident.usk, bob.user_id,
                       bob_ident.kid(bob_ident.usk))
    assert sig_upload(bob, {alice.user_id: {
        ident.master.public_key: signed}}) == {}
    assert query(bob, {alice.user_id: []})["master_keys"] != {}

    first = alice.req("POST", f"{V3}/account/deactivate", json={})
    assert first.status == 401, first
    resp = alice.req("POST", f"{V3}/account/deactivate", json={
        "auth": password_auth(alice.user_id, session=first.json["session"])})
    assert resp.status == 200, resp
    body = query(bob, {alice.user_id: []})
    assert body["master_keys"] == {} and body["self_signing_keys"] == {}, body
