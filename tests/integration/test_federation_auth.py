"""Federation foundations between real servers on loopback (TLS with the
test CA, server names 127.0.0.1:<port>): a client's profile lookup of a
user on another Myelin goes out signed (X-Matrix), the other server
fetches and checks the signer's keys and answers; notary key queries
(GET and POST /_matrix/key/v2/query) serve keys countersigned; and a
scripted peer's requests are refused with 401 M_UNAUTHORIZED whenever the
signature, key, destination, URI or body do not match. Every test runs
on SQLite and PostgreSQL."""

import time

import pytest
import signedjson.key
import signedjson.sign

from fedpeer import FedPeer
from test_rooms import V3, assert_error, q
from test_sync import User

PROFILE = "/_matrix/federation/v1/query/profile"


@pytest.fixture
def peer(test_ca):
    p = FedPeer(test_ca)
    yield p
    p.close()


def verify_signed(obj, server, key_b64, key_id):
    vk = signedjson.key.decode_verify_key_base64("ed25519", key_id.split(":")[1], key_b64)
    signedjson.sign.verify_signed_json(obj, server, vk)


def test_remote_profile_between_two_servers(federation, test_ca):
    hs1, hs2 = federation(2)
    alice = User(hs1)
    bob = User(hs2)
    resp = bob.put(f"{V3}/profile/{q(bob.user_id)}/displayname",
                   json={"displayname": "Bob on hs2"})
    assert resp.status == 200, resp
    assert bob.user_id.endswith(":" + hs2.server_name)

    resp = alice.get(f"{V3}/profile/{q(bob.user_id)}")
    assert resp.status == 200, resp
    assert resp.json["displayname"] == "Bob on hs2"
    resp = alice.get(f"{V3}/profile/{q(bob.user_id)}/displayname")
    assert resp.status == 200 and resp.json == {"displayname": "Bob on hs2"}, resp
    # A field the user has not set, and a user that does not exist.
    assert_error(alice.get(f"{V3}/profile/{q(bob.user_id)}/m.tz"), 404, "M_NOT_FOUND")
    nobody = f"@nobody:{hs2.server_name}"
    assert_error(alice.get(f"{V3}/profile/{q(nobody)}"), 404, "M_NOT_FOUND")
    # Legacy prefix too.
    resp = alice.get(f"/_matrix/client/r0/profile/{q(bob.user_id)}/displayname")
    assert resp.status == 200 and resp.json == {"displayname": "Bob on hs2"}, resp

    # hs2 now holds hs1's key and vouches for it as a notary.
    ctx = test_ca.client_context()
    resp = hs2.get(f"/_matrix/key/v2/query/{q(hs1.server_name)}",
                   base_url=hs2.federation_url, ssl_context=ctx)
    assert resp.status == 200, resp
    (keys,) = resp.json["server_keys"]
    assert keys["server_name"] == hs1.server_name
    assert set(keys["signatures"]) == {hs1.server_name, hs2.server_name}
    (key_id, v), = keys["verify_keys"].items()
    verify_signed(keys, hs1.server_name, v["key"], key_id)
    own = hs1.get("/_matrix/key/v2/server", base_url=hs1.federation_url, ssl_context=ctx)
    assert own.json["verify_keys"] == keys["verify_keys"]
    hs2_key = hs2.get("/_matrix/key/v2/server", base_url=hs2.federation_url,
                      ssl_context=ctx).json
    (k2, v2), = hs2_key["verify_keys"].items()
    verify_signed(keys, hs2.server_name, v2["key"], k2)


def test_unreachable_server(server):
    alice = User(server)
    # Nothing listens there: the client gets an error, not a hang.
    start = time.monotonic()
    resp = alice.get(f"{V3}/profile/{q('@x:127.0.0.1:1')}")
    assert_error(resp, 502, "M_UNKNOWN")
    assert time.monotonic() - start < 15


def test_notary_post_and_own_keys(federation, test_ca, peer):
    (hs1,) = federation(1)
    ctx = test_ca.client_context()
    future = int(time.time() * 1000) + 60_000
    resp = hs1.post("/_matrix/key/v2/query", base_url=hs1.federation_url, ssl_context=ctx,
                    json={"server_keys": {
                        hs1.server_name: {},
                        peer.server_name: {peer.key_id: {"minimum_valid_until_ts": future}}}})
    assert resp.status == 200, resp
    by_name = {k["server_name"]: k for k in resp.json["server_keys"]}
    assert set(by_name) == {hs1.server_name, peer.server_name}
    got = by_name[peer.server_name]
    assert got["verify_keys"] == {peer.key_id: {"key": peer.verify_key_b64()}}
    verify_signed(got, peer.server_name, peer.verify_key_b64(), peer.key_id)
    assert hs1.server_name in got["signatures"]
    # A key the peer served but did not sign is not vouched for.
    bad = FedPeer(test_ca, name="unsigned")
    try:
        unsigned = bad.signed_keys()
        del unsigned["signatures"]
        bad.key_response = unsigned
        resp = hs1.get(f"/_matrix/key/v2/query/{q(bad.server_name)}",
                       base_url=hs1.federation_url, ssl_context=ctx)
        assert resp.status == 200 and resp.json == {"server_keys": []}, resp
    finally:
        bad.close()
    assert_error(hs1.post("/_matrix/key/v2/query", base_url=hs1.federation_url,
                          ssl_context=ctx, json={"server_keys": []}), 400, "M_BAD_JSON")


def test_signed_requests_from_a_peer(federation, test_ca, peer):
    (hs1,) = federation(1)
    ctx = test_ca.client_context()
    bob = User(hs1)
    uri = f"{PROFILE}?user_id={q(bob.user_id)}"

    resp = peer.request(hs1, "GET", uri, ssl_context=ctx)
    assert resp.status == 200, resp
    assert resp.json["displayname"]

    def refused(resp):
        assert_error(resp, 401, "M_UNAUTHORIZED")

    # No header, a malformed one, another scheme.
    refused(peer.request(hs1, "GET", uri, ssl_context=ctx, header="X-Matrix nonsense"))
    refused(peer.request(hs1, "GET", uri, ssl_context=ctx, header="Bearer abc"))
    # Signed for another URI, method, destination or with a body.
    refused(peer.request(hs1, "GET", uri, ssl_context=ctx,
                         header=peer.auth_header("GET", uri + "x", hs1.server_name)))
    refused(peer.request(hs1, "GET", uri, ssl_context=ctx,
                         header=peer.auth_header("POST", uri, hs1.server_name)))
    refused(peer.request(hs1, "GET", uri, ssl_context=ctx,
                         header=peer.auth_header("GET", uri, "elsewhere.example")))
    refused(peer.request(hs1, "GET", uri, ssl_context=ctx,
                         header=peer.auth_header("GET", uri, hs1.server_name, {"a": 1})))
    # Signed by a key the peer does not publish, or claiming its key ID.
    other = signedjson.key.generate_signing_key("peer1")
    refused(peer.request(hs1, "GET", uri, ssl_context=ctx, key=other))
    refused(peer.request(hs1, "GET", uri, ssl_context=ctx,
                         header=peer.auth_header("GET", uri, hs1.server_name,
                                                 key_id="ed25519:unknown")))
    # Claiming to be another server (whose keys are not the peer's).
    refused(peer.request(hs1, "GET", uri, ssl_context=ctx,
                         header=peer.auth_header("GET", uri, hs1.server_name,
                                                 origin=hs1.server_name)))
    # A request without a signature at all.
    import harness
    refused(harness.http_request(hs1.federation_url, "GET", uri, ssl_context=ctx))
    # Still fine afterwards.
    resp = peer.request(hs1, "GET", uri, ssl_context=ctx)
    assert resp.status == 200, resp
    # Missing parameter and unknown user.
    resp = peer.request(hs1, "GET", PROFILE, ssl_context=ctx)
    assert_error(resp, 400, "M_MISSING_PARAM")
    resp = peer.request(hs1, "GET", f"{PROFILE}?user_id={q('@nope:' + hs1.server_name)}",
                        ssl_context=ctx)
    assert_error(resp, 404, "M_NOT_FOUND")
