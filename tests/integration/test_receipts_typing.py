"""Receipts, read markers and typing, seen through /sync: m.read receipts
reach the other members (in initial and incremental syncs, and waking a
parked long poll), private receipts reach only their owner, threaded
receipts carry thread_id, receipts only move forward, read markers set
m.fully_read, and typing notifications start, stop and expire. Errors for
bad receipt types, unknown events, strangers and other users' typing.
Every test runs on SQLite and PostgreSQL."""

import time

from test_rooms import V3, assert_error, q
from test_sync import User, in_thread


def ephemeral(body, room_id, etype):
    room = body["rooms"]["join"].get(room_id)
    if not room:
        return None
    for ev in room["ephemeral"]["events"]:
        if ev["type"] == etype:
            return ev
    return None


def receipt(user, room_id, event_id, rtype="m.read", body=None):
    return user.req("POST", f"{V3}/rooms/{q(room_id)}/receipt/{q(rtype)}/"
                    f"{q(event_id)}", json=body if body is not None else {})


def typing(user, room_id, on, timeout=None, target=None):
    body = {"typing": on}
    if timeout is not None:
        body["timeout"] = timeout
    return user.req("PUT", f"{V3}/rooms/{q(room_id)}/typing/"
                    f"{q(target or user.user_id)}", json=body)


def pair(server):
    alice, bob = User(server), User(server)
    room = alice.create_room(preset="public_chat")
    bob.join(room)
    return alice, bob, room


def test_read_receipt_in_incremental_and_initial_sync(server):
    alice, bob, room = pair(server)
    ev = alice.send(room, "read me")
    since = alice.sync()["next_batch"]
    resp = receipt(bob, room, ev)
    assert resp.status == 200 and resp.json == {}, resp
    body = alice.sync(since=since)
    r = ephemeral(body, room, "m.receipt")
    assert r is not None, body["rooms"]["join"].get(room)
    entry = r["content"][ev]["m.read"][bob.user_id]
    assert isinstance(entry["ts"], int) and entry["ts"] > 0
    assert "thread_id" not in entry
    # Nothing new since: the room does not come back.
    again = alice.sync(since=body["next_batch"])
    assert room not in again["rooms"]["join"]
    # A fresh initial sync carries the receipt too.
    init = alice.sync()
    assert bob.user_id in ephemeral(init, room, "m.receipt")["content"][ev]["m.read"]


def test_private_receipt_only_for_owner(server):
    alice, bob, room = pair(server)
    ev = alice.send(room)
    a_since = alice.sync()["next_batch"]
    b_since = bob.sync()["next_batch"]
    assert receipt(bob, room, ev, "m.read.private").status == 200
    mine = ephemeral(bob.sync(since=b_since), room, "m.receipt")
    assert bob.user_id in mine["content"][ev]["m.read.private"]
    theirs = alice.sync(since=a_since)
    r = ephemeral(theirs, room, "m.receipt")
    assert r is None or ev not in r["content"], r
    init = ephemeral(alice.sync(), room, "m.receipt")
    assert init is None or "m.read.private" not in init["content"].get(ev, {})


def test_threaded_receipt_and_forward_only(server):
    alice, bob, room = pair(server)
    first = alice.send(room, "one")
    second = alice.send(room, "two")
    assert receipt(bob, room, second, body={"thread_id": "main"}).status == 200
    # An older event does not move the receipt back.
    assert receipt(bob, room, first, body={"thread_id": "main"}).status == 200
    content = ephemeral(alice.sync(), room, "m.receipt")["content"]
    assert content[second]["m.read"][bob.user_id]["thread_id"] == "main"
    assert first not in content


def test_receipt_errors(server):
    alice, bob, room = pair(server)
    ev = alice.send(room)
    assert_error(receipt(bob, room, ev, "m.bogus"), 400, "M_INVALID_PARAM")
    assert_error(receipt(bob, room, "$nope:example.org"), 404, "M_NOT_FOUND")
    assert_error(receipt(bob, room, ev, body={"thread_id": "bad"}), 400,
                 "M_INVALID_PARAM")
    assert_error(receipt(bob, room, ev, "m.fully_read", body={"thread_id": "main"}),
                 400, "M_INVALID_PARAM")
    stranger = User(server)
    assert_error(receipt(stranger, room, ev), 403, "M_FORBIDDEN")


def test_read_markers_set_fully_read_and_receipt(server):
    alice, bob, room = pair(server)
    ev = alice.send(room)
    since = bob.sync()["next_batch"]
    a_since = alice.sync()["next_batch"]
    resp = bob.post(f"{V3}/rooms/{q(room)}/read_markers",
                    json={"m.fully_read": ev, "m.read": ev})
    assert resp.status == 200, resp
    body = bob.sync(since=since)
    data = body["rooms"]["join"][room]["account_data"]["events"]
    assert {"type": "m.fully_read", "content": {"event_id": ev}} in data, data
    r = ephemeral(body, room, "m.receipt")
    assert bob.user_id in r["content"][ev]["m.read"]
    # m.fully_read is private to bob.
    other = alice.sync(since=a_since)["rooms"]["join"].get(room, {})
    assert all(e["type"] != "m.fully_read"
               for e in other.get("account_data", {}).get("events", []))
    assert_error(bob.post(f"{V3}/rooms/{q(room)}/read_markers",
                          json={"m.fully_read": 5}), 400, "M_INVALID_PARAM")


def test_receipt_wakes_parked_sync(server):
    alice, bob, room = pair(server)
    ev = alice.send(room)
    since = alice.sync()["next_batch"]
    join = in_thread(lambda: alice.sync(since=since, timeout=20000,
                                        http_timeout=40))
    time.sleep(0.5)
    assert receipt(bob, room, ev).status == 200
    body, took = join(30)
    assert took < 10, took
    assert ephemeral(body, room, "m.receipt") is not None


def test_typing_start_stop_and_expiry(server):
    alice, bob, room = pair(server)
    since = alice.sync()["next_batch"]
    assert typing(bob, room, True, timeout=30000).status == 200
    body = alice.sync(since=since)
    assert ephemeral(body, room, "m.typing")["content"]["user_ids"] == [bob.user_id]
    # Typing again changes nothing: no new typing event.
    since = body["next_batch"]
    assert typing(bob, room, True, timeout=30000).status == 200
    assert ephemeral(alice.sync(since=since), room, "m.typing") is None
    # Stopping wakes a parked sync with an empty list.
    join = in_thread(lambda: alice.sync(since=since, timeout=20000,
                                        http_timeout=40))
    time.sleep(0.5)
    assert typing(bob, room, False).status == 200
    body, _ = join(30)
    assert ephemeral(body, room, "m.typing")["content"]["user_ids"] == []
    # A short timeout expires by itself and the sync sees it go.
    since = body["next_batch"]
    assert typing(bob, room, True, timeout=300).status == 200
    body = alice.sync(since=since)
    assert ephemeral(body, room, "m.typing")["content"]["user_ids"] == [bob.user_id]
    body = alice.sync(since=body["next_batch"], timeout=10000, http_timeout=30)
    assert ephemeral(body, room, "m.typing")["content"]["user_ids"] == []


def test_typing_errors(server):
    alice, bob, room = pair(server)
    assert_error(typing(alice, room, True, target=bob.user_id), 403, "M_FORBIDDEN")
    assert_error(alice.req("PUT", f"{V3}/rooms/{q(room)}/typing/{q(alice.user_id)}",
                           json={"typing": "yes"}), 400, "M_BAD_JSON")
    stranger = User(server)
    assert_error(typing(stranger, room, True), 403, "M_FORBIDDEN")


def test_multi_stream_token_shape(server):
    alice, _, room = pair(server)
    token = alice.sync()["next_batch"]
    parts = token[1:].split("_")
    assert token.startswith("s") and len(parts) >= 7 and all(p.isdigit() for p in parts)
    # Old single-part tokens still work.
    body = alice.sync(since="s1")
    assert room in body["rooms"]["join"]
    assert_error(alice.sync_raw(since="s1_x"), 400, "M_INVALID_PARAM")
