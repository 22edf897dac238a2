"""Unread notification counts in /sync, computed from push rules: plain
messages count in a one-to-one room, mentions highlight, read receipts
reset the count (also per thread with unread_thread_notifications),
disabling a rule stops counting, counts follow later joins and power
level changes, and push rules reach clients as
m.push_rules account data (initially and after a change). Every test runs
on SQLite and PostgreSQL."""

import json
import time

from test_rooms import V3, q
from test_sync import User


def counts(body, room_id):
    return body["rooms"]["join"][room_id]["unread_notifications"]


def wait_counts(user, room_id, want, since=None, flt=None, key="unread_notifications"):
    """Syncs until the room's counts equal `want` (the push thread works a
    moment after the commit; /sync waits for it briefly, so this is rare)."""
    deadline = time.monotonic() + 10
    while True:
        kw = {"filter": json.dumps(flt)} if flt else {}
        body = user.sync(**kw)
        got = body["rooms"]["join"][room_id].get(key)
        if got == want or time.monotonic() > deadline:
            return body, got
        time.sleep(0.1)


def dm(server):
    alice, bob = User(server), User(server)
    room = alice.create_room(preset="trusted_private_chat", invite=[bob.user_id],
                             is_direct=True)
    bob.join(room)
    return alice, bob, room


def test_messages_count_and_receipt_resets(server):
    alice, bob, room = dm(server)
    for i in range(3):
        last = bob.send(room, f"hello {i}")
    body, got = wait_counts(alice, room, {"highlight_count": 0, "notification_count": 3})
    assert got == {"highlight_count": 0, "notification_count": 3}, got
    # The sender's own messages never count for the sender.
    assert counts(bob.sync(), room)["notification_count"] == 0
    since = body["next_batch"]
    resp = alice.req("POST", f"{V3}/rooms/{q(room)}/receipt/m.read/{q(last)}", json={})
    assert resp.status == 200, resp
    inc = alice.sync(since=since)
    assert counts(inc, room) == {"highlight_count": 0, "notification_count": 0}
    # A private receipt counts as read too.
    newer = bob.send(room, "one more")
    body, got = wait_counts(alice, room, {"highlight_count": 0, "notification_count": 1})
    assert got["notification_count"] == 1
    alice.req("POST", f"{V3}/rooms/{q(room)}/receipt/m.read.private/{q(newer)}", json={})
    assert counts(alice.sync(), room)["notification_count"] == 0


def test_mention_highlights(server):
    alice, bob = User(server), User(server)
    room = alice.create_room(preset="public_chat")
    for _ in range(2):
        User(server).join(room)
    bob.join(room)
    bob.send(room, content={"msgtype": "m.text", "body": "hey you",
                            "m.mentions": {"user_ids": [alice.user_id]}})
    bob.send(room, "not for anyone")
    _, got = wait_counts(alice, room, {"highlight_count": 1, "notification_count": 2})
    # In a room of more than two, a plain message notifies (.m.rule.message)
    # and the mention also highlights.
    assert got == {"highlight_count": 1, "notification_count": 2}, got


def test_thread_counts_and_threaded_receipts(server):
    alice, bob, room = dm(server)
    root = alice.send(room, "thread root")
    bob.send(room, content={"msgtype": "m.text", "body": "in thread",
                            "m.relates_to": {"rel_type": "m.thread", "event_id": root}})
    main = bob.send(room, "main timeline")
    flt = {"room": {"timeline": {"unread_thread_notifications": True}}}
    body, got = wait_counts(alice, room, {root: {"highlight_count": 0, "notification_count": 1}},
                            flt=flt, key="unread_thread_notifications")
    assert got == {root: {"highlight_count": 0, "notification_count": 1}}, got
    assert counts(body, room) == {"highlight_count": 0, "notification_count": 1}
    # Without the filter flag, one total.
    assert counts(alice.sync(), room)["notification_count"] == 2
    # Reading the main timeline leaves the thread unread.
    alice.req("POST", f"{V3}/rooms/{q(room)}/receipt/m.read/{q(main)}",
              json={"thread_id": "main"})
    body = alice.sync(filter=json.dumps(flt))
    entry = body["rooms"]["join"][room]
    assert entry["unread_notifications"]["notification_count"] == 0
    assert entry["unread_thread_notifications"][root]["notification_count"] == 1


def test_disabled_rule_stops_counting_and_push_rules_account_data(server):
    alice, bob, room = dm(server)
    init = alice.sync()
    rules = [e for e in init["account_data"]["events"] if e["type"] == "m.push_rules"]
    assert rules and "underride" in rules[0]["content"]["global"], init["account_data"]
    since = init["next_batch"]
    for rule in (".m.rule.room_one_to_one", ".m.rule.message"):
        resp = alice.req("PUT", f"{V3}/pushrules/global/underride/{rule}/enabled",
                         json={"enabled": False})
        assert resp.status == 200, resp
    inc = alice.sync(since=since)
    changed = [e for e in inc["account_data"]["events"] if e["type"] == "m.push_rules"]
    assert changed, inc["account_data"]
    underride = {r["rule_id"]: r for r in changed[-1]["content"]["global"]["underride"]}
    assert underride[".m.rule.room_one_to_one"]["enabled"] is False
    bob.send(room, "quiet now")
    time.sleep(0.3)
    assert counts(alice.sync(), room)["notification_count"] == 0


def test_counts_follow_joins_and_power_levels(server):
    """The push thread keeps each room's members and power levels between
    events, updated from the state events it sees: a member who joins
    later gets counts from then on, and a power level change applies to the
    next event (an @room mention highlights only from a sender allowed to
    notify the room)."""
    alice, bob, carol = User(server), User(server), User(server)
    room = alice.create_room(preset="public_chat")
    bob.join(room)
    bob.send(room, "before carol")
    _, got = wait_counts(alice, room, {"highlight_count": 0, "notification_count": 1})
    assert got == {"highlight_count": 0, "notification_count": 1}, got
    carol.join(room)
    bob.send(room, "after carol")
    _, got = wait_counts(carol, room, {"highlight_count": 0, "notification_count": 1})
    assert got == {"highlight_count": 0, "notification_count": 1}, got
    mention = {"msgtype": "m.text", "body": "@room hi", "m.mentions": {"room": True}}
    bob.send(room, content=mention)
    _, got = wait_counts(alice, room, {"highlight_count": 0, "notification_count": 3})
    assert got == {"highlight_count": 0, "notification_count": 3}, got
    resp = alice.req("GET", f"{V3}/rooms/{q(room)}/state/m.room.power_levels")
    assert resp.status == 200, resp
    levels = resp.json
    levels.setdefault("users", {})[bob.user_id] = 50
    alice.put_state(room, "m.room.power_levels", levels)
    bob.send(room, content=mention)
    _, got = wait_counts(alice, room, {"highlight_count": 1, "notification_count": 4})
    assert got == {"highlight_count": 1, "notification_count": 4}, got
    _, got = wait_counts(carol, room, {"highlight_count": 1, "notification_count": 3})
    assert got == {"highlight_count": 1, "notification_count": 3}, got
