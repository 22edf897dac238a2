"""Device-list tracking (spec "Tracking the device list for a user"): a
user's new login, renamed or deleted device and uploaded device keys show
up in device_lists.changed of the incremental /sync of everyone sharing a
room with them (themselves included) and in GET /keys/changes, not for
strangers; a user who joins a shared room is "changed", one who leaves the
last shared room is "left"; a profile change (a join over a join) is not
news; a parked /sync wakes for a key upload. Every test runs on SQLite
and PostgreSQL."""

from test_keys_e2ee import Device, upload_ok
from test_rooms import V3, assert_error, q
from test_sync import User, in_thread
from test_to_device import PASSWORD, with_devices


def dl(body):
    d = body["device_lists"]
    return sorted(d.get("changed", [])), sorted(d.get("left", []))


def changes(user, since, to):
    resp = user.get(f"{V3}/keys/changes?from={q(since)}&to={q(to)}")
    assert resp.status == 200, resp
    return sorted(resp.json["changed"]), sorted(resp.json["left"])


def login(server, user):
    name = user.user_id[1:].split(":")[0]
    resp = server.post(f"{V3}/login", json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": name},
        "password": PASSWORD})
    assert resp.status == 200, resp
    s = User.__new__(User)
    s.server, s.user_id = server, user.user_id
    s.token, s.device_id = resp.json["access_token"], resp.json["device_id"]
    return s


def shared_room(alice, *others):
    room = alice.create_room(preset="public_chat")
    for o in others:
        o.join(room)
    return room


def test_new_login_seen_by_room_members_only(server):
    (alice,) = with_devices(server)
    bob, carol = User(server), User(server)
    shared_room(alice, bob)
    bob_since = bob.sync()["next_batch"]
    carol_since = carol.sync()["next_batch"]
    alice_since = alice.sync()["next_batch"]
    alice2 = login(server, alice)
    assert dl(bob.sync(since=bob_since)) == ([alice.user_id], [])
    # Carol shares no room with Alice; Alice sees her own new device.
    assert dl(carol.sync(since=carol_since, timeout=0)) == ([], [])
    assert dl(alice.sync(since=alice_since)) == ([alice.user_id], [])
    now = bob.sync()["next_batch"]
    assert changes(bob, bob_since, now) == ([alice.user_id], [])
    assert changes(carol, carol_since, now) == ([], [])
    # Nothing since then.
    assert changes(bob, now, now) == ([], [])

    # Renaming and deleting the device are changes too.
    since = now
    resp = alice2.put(f"{V3}/devices/{q(alice2.device_id)}", json={"display_name": "phone"})
    assert resp.status == 200, resp
    body = bob.sync(since=since)
    assert dl(body) == ([alice.user_id], [])
    since = body["next_batch"]
    resp = alice2.post(f"{V3}/logout")
    assert resp.status == 200, resp
    assert dl(bob.sync(since=since)) == ([alice.user_id], [])


def test_key_upload_wakes_a_parked_sync(server):
    alice, bob = User(server), User(server)
    shared_room(alice, bob)
    since = bob.sync()["next_batch"]
    poll = in_thread(lambda: bob.sync(since=since, timeout=10000))
    dev = Device(alice)
    upload_ok(alice, {"device_keys": dev.device_keys()})
    body, took = poll()
    assert took < 5, took
    assert dl(body) == ([alice.user_id], [])


def test_join_and_leave(server):
    alice, bob, carol = User(server), User(server), User(server)
    room = shared_room(alice, bob)
    other = alice.create_room(preset="public_chat")
    since_a = alice.sync()["next_batch"]
    since_b = bob.sync()["next_batch"]
    # Carol joins: new to both; her own first incremental sync lists both.
    carol_since = carol.sync()["next_batch"]
    carol.join(room)
    assert dl(alice.sync(since=since_a)) == ([carol.user_id], [])
    body = bob.sync(since=since_b)
    assert dl(body) == ([carol.user_id], [])
    since_b = body["next_batch"]
    assert dl(carol.sync(since=carol_since)) == (sorted([alice.user_id, bob.user_id]), [])
    now = alice.sync()["next_batch"]
    assert changes(bob, since_b, now) == ([], [])

    # A profile change is a member event but not a newcomer.
    resp = carol.put(f"{V3}/profile/{q(carol.user_id)}/displayname",
                     json={"displayname": "Caroline"})
    assert resp.status == 200, resp
    body = bob.sync(since=since_b)
    assert dl(body) == ([], [])
    since_b = body["next_batch"]

    # Carol leaves: Bob no longer shares a room with her.
    since_a = alice.sync()["next_batch"]
    carol.join(other)
    carol.leave(room)
    body = bob.sync(since=since_b)
    assert dl(body) == ([], [carol.user_id])
    since_b = body["next_batch"]
    # Alice still shares "other" with her: not left.
    assert carol.user_id not in dl(alice.sync(since=since_a))[1]

    # Bob leaving the room leaves Alice (and Bob leaves her list).
    since_a = alice.sync()["next_batch"]
    bob.leave(room)
    assert dl(bob.sync(since=since_b)) == ([], [alice.user_id])
    assert dl(alice.sync(since=since_a)) == ([], [bob.user_id])


def test_keys_changes_errors(server):
    alice = User(server)
    now = alice.sync()["next_batch"]
    assert_error(alice.get(f"{V3}/keys/changes?from={q(now)}"), 400, "M_MISSING_PARAM")
    assert_error(alice.get(f"{V3}/keys/changes?to={q(now)}"), 400, "M_MISSING_PARAM")
    assert_error(alice.get(f"{V3}/keys/changes?from=garbage&to={q(now)}"), 400,
                 "M_INVALID_PARAM")
    # The r0 path answers too, and a token from the future is clamped.
    resp = alice.get(f"/_matrix/client/r0/keys/changes?from={q(now)}&to=s999999999")
    assert resp.status == 200 and resp.json == {"changed": [], "left": []}, resp
    resp = server.get(f"{V3}/keys/changes?from={q(now)}&to={q(now)}")
    assert_error(resp, 401, "M_MISSING_TOKEN")
