"""Send-to-device messaging (spec "Send-to-Device messaging"), seen through
/sync: a message reaches the one device it names, "*" reaches every device
of the user, a repeated transaction ID sends nothing, a message stays
until a later since token acknowledges it (the same since token gets it
again), messages keep their order, a queue over 100 is split across
syncs, a parked /sync wakes for a message, deleting a device drops its
queue, unknown recipients are skipped (and remote ones leave the local
delivery alone; test_fedqueue.py follows them out), bad bodies are refused,
and guests may send and receive. Every test runs on SQLite and
PostgreSQL."""

import time

from test_rooms import V3, assert_error, q, unique
from test_sync import User, in_thread

PASSWORD = "to-device-password"


def send_to_device(user, messages, etype="m.test", txn=None, prefix=V3):
    txn = txn or unique("txn")
    return user.req("PUT", f"{prefix}/sendToDevice/{q(etype)}/{q(txn)}",
                    json={"messages": messages})


def send_ok(user, messages, **kw):
    resp = send_to_device(user, messages, **kw)
    assert resp.status == 200 and resp.json == {}, resp
    return resp


def to_device(body):
    return body["to_device"]["events"]


def with_devices(server, *device_ids):
    """A user with a password and one session per device ID, as User
    objects sharing the user ID (the first one registered it)."""
    name = unique()
    first = User(server, name=name, password=PASSWORD)
    sessions = [first]
    for device_id in device_ids:
        resp = server.post(f"{V3}/login", json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": name},
            "password": PASSWORD, "device_id": device_id})
        assert resp.status == 200, resp
        s = User.__new__(User)
        s.server, s.user_id = server, first.user_id
        s.token, s.device_id = resp.json["access_token"], resp.json["device_id"]
        sessions.append(s)
    return sessions


def test_message_to_one_device(server):
    alice = User(server)
    bob, bob2 = with_devices(server, "OTHER")
    since = bob.sync()["next_batch"]
    since2 = bob2.sync()["next_batch"]
    send_ok(alice, {bob.user_id: {bob.device_id: {"secret": 1}}}, etype="m.room_key")
    body = bob.sync(since=since)
    assert to_device(body) == [{"sender": alice.user_id, "type": "m.room_key",
                                "content": {"secret": 1}}], body
    # Only the device named: the other one and the sender get nothing.
    assert to_device(bob2.sync(since=since2)) == []
    assert to_device(alice.sync()) == []
    # An initial sync delivers pending messages too.
    send_ok(alice, {bob2.user_id: {bob2.device_id: {"n": 2}}})
    assert [e["content"] for e in to_device(bob2.sync())] == [{"n": 2}]


def test_star_reaches_every_device(server):
    alice = User(server)
    bob, bob2, bob3 = with_devices(server, "PHONE", "TABLET")
    send_ok(alice, {bob.user_id: {"*": {"all": True}}})
    for s in (bob, bob2, bob3):
        events = to_device(s.sync())
        assert events == [{"sender": alice.user_id, "type": "m.test",
                           "content": {"all": True}}], (s.device_id, events)


def test_repeated_transaction_sends_once(server):
    alice, bob = User(server), User(server)
    since = bob.sync()["next_batch"]
    msg = {bob.user_id: {bob.device_id: {"n": 1}}}
    send_ok(alice, msg, txn="t1")
    send_ok(alice, msg, txn="t1")  # a retry: 200, nothing sent
    body = bob.sync(since=since)
    assert [e["content"] for e in to_device(body)] == [{"n": 1}], body
    # The same txnId with another event type is another transaction.
    send_ok(alice, msg, txn="t1", etype="m.other")
    body = bob.sync(since=body["next_batch"])
    assert [e["type"] for e in to_device(body)] == ["m.other"], body
    # Another sender may use the same txnId.
    carol = User(server)
    send_ok(carol, msg, txn="t1")
    body2 = bob.sync(since=body["next_batch"])
    assert [e["sender"] for e in to_device(body2)] == [carol.user_id], body2


def test_message_stays_until_acknowledged(server):
    alice, bob = User(server), User(server)
    t1 = bob.sync()["next_batch"]
    send_ok(alice, {bob.user_id: {bob.device_id: {"keep": "me"}}})
    first = bob.sync(since=t1)
    assert [e["content"] for e in to_device(first)] == [{"keep": "me"}]
    t2 = first["next_batch"]
    # The answer got lost: the client syncs with the old token again.
    again = bob.sync(since=t1)
    assert [e["content"] for e in to_device(again)] == [{"keep": "me"}], again
    # The new token acknowledges it: gone, even for the old token after.
    assert to_device(bob.sync(since=t2)) == []
    assert to_device(bob.sync(since=t1)) == []
    assert to_device(bob.sync()) == []


def test_order_is_kept(server):
    alice, bob = User(server), User(server)
    carol = User(server)
    since = bob.sync()["next_batch"]
    for i in range(6):
        sender = alice if i % 2 == 0 else carol
        send_ok(sender, {bob.user_id: {bob.device_id: {"i": i}}})
    events = to_device(bob.sync(since=since))
    assert [e["content"]["i"] for e in events] == list(range(6)), events
    assert [e["sender"] for e in events] == \
        [alice.user_id if i % 2 == 0 else carol.user_id for i in range(6)]


def test_long_queue_is_split_across_syncs(server):
    alice, bob = User(server), User(server)
    since = bob.sync()["next_batch"]
    for i in range(150):
        send_ok(alice, {bob.user_id: {bob.device_id: {"i": i}}})
    first = bob.sync(since=since)
    got = [e["content"]["i"] for e in to_device(first)]
    assert got == list(range(100)), got
    second = bob.sync(since=first["next_batch"])
    got2 = [e["content"]["i"] for e in to_device(second)]
    assert got2 == list(range(100, 150)), got2
    # Repeating the first token delivers the rest again (not acknowledged
    # yet), but not the first hundred (acknowledged by that token).
    again = bob.sync(since=first["next_batch"])
    assert [e["content"]["i"] for e in to_device(again)] == list(range(100, 150))
    assert to_device(bob.sync(since=second["next_batch"])) == []


def test_long_queue_split_keeps_one_request_together(server):
    """"*" and the device's own ID in one request leave two messages at one
    position; a batch ends between positions, never inside one."""
    alice = User(server)
    bob, = with_devices(server)
    since = bob.sync()["next_batch"]
    for i in range(60):
        send_ok(alice, {bob.user_id: {"*": {"i": i, "k": "star"},
                                      bob.device_id: {"i": i, "k": "own"}}})
    seen = []
    tok = since
    for _ in range(4):
        body = bob.sync(since=tok)
        events = to_device(body)
        assert len(events) <= 100, len(events)
        ids = [e["content"]["i"] for e in events]
        # Each position's two messages come together.
        assert len(ids) % 2 == 0 and ids[::2] == ids[1::2], ids
        seen += events
        tok = body["next_batch"]
    assert [e["content"]["i"] for e in seen][::2] == list(range(60))
    assert len(seen) == 120


def test_parked_sync_wakes_for_a_message(server):
    alice, bob = User(server), User(server)
    since = bob.sync()["next_batch"]
    join = in_thread(lambda: bob.sync(since=since, timeout=20000))
    time.sleep(0.5)
    assert join.running(), "the long poll answered before anything was sent"
    sent_at = time.monotonic()
    send_ok(alice, {bob.user_id: {bob.device_id: {"wake": "up"}}})
    body, _ = join()
    assert time.monotonic() - sent_at < 1.0
    assert [e["content"] for e in to_device(body)] == [{"wake": "up"}], body


def test_message_to_other_device_does_not_wake(server):
    alice = User(server)
    bob, bob2 = with_devices(server, "SECOND")
    since = bob.sync()["next_batch"]
    start = time.monotonic()
    join = in_thread(lambda: bob.sync(since=since, timeout=1500))
    time.sleep(0.3)
    send_ok(alice, {bob2.user_id: {bob2.device_id: {"not": "yours"}}})
    body, _ = join()
    # Woken (same user), but nothing for this device: it waits out the rest.
    assert to_device(body) == [], body
    assert time.monotonic() - start >= 1.4


def test_deleted_device_loses_its_queue(server):
    alice = User(server)
    bob, phone = with_devices(server, "PHONE")
    send_ok(alice, {bob.user_id: {"PHONE": {"old": True}, bob.device_id: {"kept": 1}}})
    resp = phone.post(f"{V3}/logout")
    assert resp.status == 200, resp
    # Logging in again as PHONE makes a new device with an empty queue.
    resp = server.post(f"{V3}/login", json={
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": bob.user_id},
        "password": PASSWORD, "device_id": "PHONE"})
    assert resp.status == 200, resp
    phone.token = resp.json["access_token"]
    assert to_device(phone.sync()) == []
    assert [e["content"] for e in to_device(bob.sync())] == [{"kept": 1}]
    # A message to a device that no longer exists is dropped.
    gone = with_devices(server, "GONE")
    send_ok(alice, {gone[0].user_id: {"GONE": {"late": 1}}})
    assert gone[1].post(f"{V3}/logout").status == 200
    resp = server.post(f"{V3}/login", json={
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": gone[0].user_id},
        "password": PASSWORD, "device_id": "GONE"})
    gone[1].token = resp.json["access_token"]
    assert to_device(gone[1].sync()) == []


def test_unknown_recipients_skipped_remote_queued(server):
    alice, bob = User(server), User(server)
    server_name = bob.user_id.split(":", 1)[1]
    since = bob.sync()["next_batch"]
    send_ok(alice, {
        f"@nobody-{unique()}:{server_name}": {"*": {"x": 1}, "DEV": {"x": 2}},
        # Queued for federation (test_fedqueue.py); the local ones are not
        # affected, and the request succeeds whatever remote.example does.
        "@someone:remote.example": {"DEV": {"x": 3}},
        bob.user_id: {"NOSUCHDEVICE": {"x": 4}, bob.device_id: {"x": 5}},
    })
    assert [e["content"] for e in to_device(bob.sync(since=since))] == [{"x": 5}]
    # An empty messages object is fine too.
    send_ok(alice, {})


def test_bad_bodies_are_refused(server):
    alice, bob = User(server), User(server)
    since = bob.sync()["next_batch"]
    base = f"{V3}/sendToDevice/m.test/"
    cases = [
        ({}, "M_BAD_JSON"),
        ({"messages": []}, "M_BAD_JSON"),
        ({"messages": "x"}, "M_BAD_JSON"),
        ({"messages": {bob.user_id: [1]}}, "M_BAD_JSON"),
        ({"messages": {bob.user_id: {bob.device_id: "text"}}}, "M_BAD_JSON"),
        ({"messages": {bob.user_id: {bob.device_id: {"ok": 1}, "X": 5}}}, "M_BAD_JSON"),
        ({"messages": {"not-a-user": {"DEV": {}}}}, "M_INVALID_PARAM"),
        ({"messages": {bob.user_id: {"": {}}}}, "M_INVALID_PARAM"),
    ]
    for body, errcode in cases:
        resp = alice.req("PUT", base + unique("txn"), json=body)
        assert_error(resp, 400, errcode)
    resp = alice.req("PUT", base + unique("txn"), body=b"{not json")
    assert_error(resp, 400, "M_NOT_JSON")
    resp = server.request("PUT", base + "t", json={"messages": {}})
    assert_error(resp, 401, "M_MISSING_TOKEN")
    # Nothing of a refused request was delivered, not even the valid part.
    assert to_device(bob.sync(since=since)) == []


def test_guests_send_and_receive(server):
    alice = User(server)
    guest = User(server, guest=True)
    since = guest.sync()["next_batch"]
    send_ok(alice, {guest.user_id: {"*": {"to": "guest"}}})
    assert [e["content"] for e in to_device(guest.sync(since=since))] == [{"to": "guest"}]
    a_since = alice.sync()["next_batch"]
    send_ok(guest, {alice.user_id: {alice.device_id: {"from": "guest"}}})
    events = to_device(alice.sync(since=a_since))
    assert events == [{"sender": guest.user_id, "type": "m.test",
                       "content": {"from": "guest"}}], events


def test_r0_path(server):
    alice, bob = User(server), User(server)
    send_ok(alice, {bob.user_id: {bob.device_id: {"legacy": True}}},
            prefix="/_matrix/client/r0")
    assert [e["content"] for e in to_device(bob.sync())] == [{"legacy": True}]


def test_matrix_nio_sends_and_receives(server):
    import nio

    from test_rooms import nio_client, run

    alice, bob = User(server), User(server)

    async def go():
        sender, receiver = nio_client(server, alice), nio_client(server, bob)
        try:
            first = await receiver.sync(timeout=0)
            assert isinstance(first, nio.SyncResponse), first
            msg = nio.ToDeviceMessage("m.key.verification.cancel", bob.user_id,
                                      bob.device_id,
                                      {"transaction_id": "tx1", "code": "m.user",
                                       "reason": "testing"})
            resp = await sender.to_device(msg, tx_id=unique("txn"))
            assert isinstance(resp, nio.ToDeviceResponse), resp
            got = await receiver.sync(timeout=5000, since=first.next_batch)
            assert isinstance(got, nio.SyncResponse), got
            return got.to_device_events
        finally:
            await sender.close()
            await receiver.close()

    events = run(go())
    assert len(events) == 1, events
    ev = events[0]
    assert isinstance(ev, nio.KeyVerificationCancel), ev
    assert ev.sender == alice.user_id and ev.transaction_id == "tx1", ev
