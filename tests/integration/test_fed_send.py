"""Inbound federation transactions (Server-Server API "Transactions", PUT
/_matrix/federation/v1/send/{txnId}) from a scripted peer: unsigned
requests, a body `origin` that is not the signer, too many PDUs or EDUs
and malformed bodies are refused; a transaction ID seen before gets the
stored answer without being processed again; m.direct_to_device reaches a
local device's /sync once per message ID, a forged sender is dropped and
a bad EDU does not fail the others; typing and receipts of users who are
not joined are dropped; PDUs are named (reference hash in known rooms,
their own event_id otherwise) and answered with an error, the room's
server ACL first; device-list and signing-key updates move the device-list
stream. Every test runs on SQLite and PostgreSQL."""

import base64
import copy
import hashlib
import time

import pytest
from canonicaljson import encode_canonical_json

import harness
from fedpeer import FedPeer
from test_receipts_typing import ephemeral, receipt, typing
from test_rooms import V3, assert_error, q, unique
from test_sync import User

SEND = "/_matrix/federation/v1/send"
DEVICE_LISTS = 5  # index of STREAM_DEVICE_LISTS in a sync token


@pytest.fixture
def peer(test_ca):
    p = FedPeer(test_ca)
    yield p
    p.close()


def txn_body(peer, pdus=(), edus=(), origin=None):
    return {"origin": origin or peer.server_name,
            "origin_server_ts": int(time.time() * 1000),
            "pdus": list(pdus), "edus": list(edus)}


def send_txn(peer, hs, ctx, txn=None, body=None, **kw):
    txn = txn or unique("txn")
    return peer.request(hs, "PUT", f"{SEND}/{q(txn)}", body or txn_body(peer, **kw),
                        ssl_context=ctx)


def send_ok(peer, hs, ctx, **kw):
    resp = send_txn(peer, hs, ctx, **kw)
    assert resp.status == 200, resp
    return resp.json


def to_device_edu(sender, messages, message_id=None, etype="m.room_key_request"):
    return {"edu_type": "m.direct_to_device",
            "content": {"sender": sender, "type": etype,
                        "message_id": unique("msg") if message_id is None else message_id,
                        "messages": messages}}


def to_device(body):
    return body["to_device"]["events"]


def token_part(token, i):
    return int(token[1:].split("_")[i])


def test_refused_transactions(federation, test_ca, peer):
    (hs,) = federation(1)
    ctx = test_ca.client_context()
    body = txn_body(peer)
    uri = f"{SEND}/{unique('txn')}"
    # Not signed at all.
    resp = harness.http_request(hs.federation_url, "PUT", uri,
                                body=encode_canonical_json(body), ssl_context=ctx)
    assert_error(resp, 401, "M_UNAUTHORIZED")
    # Claiming another origin in the body than the one that signed.
    assert_error(send_txn(peer, hs, ctx, body=txn_body(peer, origin="other.example")),
                 403, "M_FORBIDDEN")
    no_origin = txn_body(peer)
    del no_origin["origin"]
    assert_error(send_txn(peer, hs, ctx, body=no_origin), 400, "M_MISSING_PARAM")
    # More than 50 PDUs or 100 EDUs.
    pdu = {"type": "m.room.message", "room_id": "!nowhere:other.example", "content": {}}
    assert_error(send_txn(peer, hs, ctx, pdus=[pdu] * 51), 400, "M_BAD_JSON")
    edu = {"edu_type": "org.example.unknown", "content": {}}
    assert_error(send_txn(peer, hs, ctx, edus=[edu] * 101), 400, "M_BAD_JSON")
    # Shapes.
    for bad in ({**body, "pdus": {}}, {**body, "edus": "x"}, {**body, "pdus": [1]},
                {**body, "origin_server_ts": "now"}):
        assert_error(send_txn(peer, hs, ctx, body=bad), 400, "M_BAD_JSON")
    resp = peer.request(hs, "PUT", uri, [body], ssl_context=ctx)
    assert_error(resp, 400, "M_BAD_JSON")
    # The limits themselves are fine; unknown and malformed EDUs are
    # ignored, PDUs this server cannot name are left out of the answer.
    assert send_ok(peer, hs, ctx, pdus=[pdu] * 50, edus=[edu] * 100) == {"pdus": {}}
    assert send_ok(peer, hs, ctx, edus=[1, {"edu_type": "m.typing"},
                                        {"content": {}}]) == {"pdus": {}}
    # No pdus key at all: an EDU-only transaction.
    body = txn_body(peer)
    del body["pdus"]
    assert send_ok(peer, hs, ctx, body=body) == {"pdus": {}}


def test_to_device_messages(federation, test_ca, peer):
    (hs,) = federation(1)
    ctx = test_ca.client_context()
    bob = User(hs)
    alice = f"@alice:{peer.server_name}"
    since = bob.sync()["next_batch"]

    # A bad EDU first does not keep the good one from being applied.
    txn = unique("txn")
    edu = to_device_edu(alice, {bob.user_id: {bob.device_id: {"secret": 1}},
                                f"@carol:{peer.server_name}": {"*": {"x": 1}}},
                        message_id="m1")
    first = send_ok(peer, hs, ctx, txn=txn, edus=[{"edu_type": "m.direct_to_device",
                                                   "content": {"sender": alice}}, edu])
    assert first == {"pdus": {}}
    body = bob.sync(since=since)
    assert to_device(body) == [{"sender": alice, "type": "m.room_key_request",
                                "content": {"secret": 1}}], body
    since = body["next_batch"]

    # The same transaction ID again, even with other content: the stored
    # answer, nothing processed.
    again = send_txn(peer, hs, ctx, txn=txn, edus=[
        to_device_edu(alice, {bob.user_id: {"*": {"replayed": True}}}, message_id="m2")])
    assert again.status == 200 and again.json == first, again
    # The same message ID in another transaction: queued once.
    send_ok(peer, hs, ctx, edus=[edu])
    # A sender of another server than the origin: dropped.
    send_ok(peer, hs, ctx, edus=[to_device_edu("@mallory:other.example",
                                               {bob.user_id: {"*": {"forged": True}}})])
    # Malformed messages: dropped whole.
    send_ok(peer, hs, ctx, edus=[to_device_edu(alice, {bob.user_id: {"*": "no"}})])
    send_ok(peer, hs, ctx, edus=[to_device_edu(alice, {bob.user_id: {"*": {"x": 1}}},
                                               message_id="")])
    body = bob.sync(since=since)
    assert to_device(body) == [], body
    since = body["next_batch"]

    # A new message to every device of the user.
    send_ok(peer, hs, ctx, edus=[to_device_edu(alice, {bob.user_id: {"*": {"n": 2}}},
                                               etype="m.room.encrypted")])
    body = bob.sync(since=since)
    assert to_device(body) == [{"sender": alice, "type": "m.room.encrypted",
                                "content": {"n": 2}}], body


def reference_event_id(pdu):
    """The v4+ event ID of an m.room.message PDU with only the keys every
    room version keeps: redaction empties its content; signatures and
    unsigned go; URL-safe unpadded base64 of the SHA-256."""
    red = copy.deepcopy(pdu)
    red["content"] = {}
    red.pop("signatures", None)
    red.pop("unsigned", None)
    digest = hashlib.sha256(encode_canonical_json(red)).digest()
    return "$" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def test_pdus_are_named_and_refused(federation, test_ca, peer):
    (hs,) = federation(1)
    ctx = test_ca.client_context()
    bob = User(hs)
    room = bob.create_room(room_version="10")
    alice = f"@alice:{peer.server_name}"

    def message(room_id, **extra):
        return {"type": "m.room.message", "room_id": room_id, "sender": alice,
                "content": {"body": unique("hi")}, "depth": 5, "prev_events": [],
                "auth_events": [], "origin_server_ts": int(time.time() * 1000),
                "hashes": {"sha256": "x"}, **extra}

    known = message(room)
    v1 = message("!old:other.example", event_id=f"$abc:{peer.server_name}")
    nameless = message("!new:other.example")
    answer = send_ok(peer, hs, ctx, pdus=[known, v1, nameless])["pdus"]
    known_id = reference_event_id(known)
    assert set(answer) == {known_id, v1["event_id"]}, answer
    for result in answer.values():
        assert isinstance(result["error"], str) and result["error"], answer
    assert "ACL" not in answer[known_id]["error"]

    # The room denies IP literals, and the peer's server name is one.
    bob.put_state(room, "m.room.server_acl", {"allow": ["*"], "allow_ip_literals": False})
    known = message(room)
    answer = send_ok(peer, hs, ctx, pdus=[known])["pdus"]
    assert list(answer) == [reference_event_id(known)], answer
    assert "ACL" in answer[reference_event_id(known)]["error"], answer


def test_room_edus_need_a_joined_user(federation, test_ca, peer):
    (hs,) = federation(1)
    ctx = test_ca.client_context()
    bob = User(hs)
    room = bob.create_room(preset="public_chat")
    ev = bob.send(room, "read me")
    since = bob.sync()["next_batch"]
    alice = f"@alice:{peer.server_name}"
    receipt_edu = {"edu_type": "m.receipt", "content": {room: {"m.read": {
        alice: {"event_ids": [ev], "data": {"ts": 1234}},
        "@mallory:other.example": {"event_ids": [ev], "data": {"ts": 1234}}}}}}
    send_ok(peer, hs, ctx, edus=[
        {"edu_type": "m.typing", "content": {"room_id": room, "user_id": alice,
                                             "typing": True}},
        {"edu_type": "m.typing", "content": {"room_id": room,
                                             "user_id": "@mallory:other.example",
                                             "typing": True}},
        receipt_edu])
    # Bob's own typing and receipt show the room's ephemeral events are
    # served; the remote users who are not members are not in them.
    assert typing(bob, room, True, timeout=30000).status == 200
    assert receipt(bob, room, ev).status == 200
    body = bob.sync(since=since)
    assert ephemeral(body, room, "m.typing")["content"]["user_ids"] == [bob.user_id], body
    readers = ephemeral(body, room, "m.receipt")["content"][ev]["m.read"]
    assert set(readers) == {bob.user_id}, readers
    # Receipts of a room this server does not know: dropped, no error.
    send_ok(peer, hs, ctx, edus=[{"edu_type": "m.receipt", "content": {
        "!unknown:other.example": {"m.read": {alice: {"event_ids": [ev],
                                                      "data": {"ts": 1}}}}}}])
    # Presence of the origin's users is accepted (and not kept).
    send_ok(peer, hs, ctx, edus=[{"edu_type": "m.presence", "content": {"push": [
        {"user_id": alice, "presence": "online", "last_active_ago": 5}]}}])


def test_device_list_updates(federation, test_ca, peer):
    (hs,) = federation(1)
    ctx = test_ca.client_context()
    bob = User(hs)
    alice = f"@alice:{peer.server_name}"

    def position():
        return token_part(bob.sync()["next_batch"], DEVICE_LISTS)

    before = position()
    update = {"edu_type": "m.device_list_update",
              "content": {"user_id": alice, "device_id": "PHONE", "stream_id": 6,
                          "prev_id": [5], "deleted": False,
                          "device_display_name": "Alice's phone"}}
    send_ok(peer, hs, ctx, edus=[update])
    after = position()
    assert after > before
    # Users of another server, and malformed updates: nothing recorded.
    forged = copy.deepcopy(update)
    forged["content"]["user_id"] = "@mallory:other.example"
    no_stream = copy.deepcopy(update)
    del no_stream["content"]["stream_id"]
    send_ok(peer, hs, ctx, edus=[forged, no_stream,
                                 {"edu_type": "m.signing_key_update",
                                  "content": {"user_id": "@mallory:other.example"}}])
    assert position() == after
    # A cross-signing key update of the origin's user is a change too.
    send_ok(peer, hs, ctx, edus=[{"edu_type": "m.signing_key_update",
                                  "content": {"user_id": alice}}])
    assert position() > after
