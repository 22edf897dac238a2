"""Memberships across servers (Server-Server API "Inviting to a room",
"Leaving Rooms (Rejecting Invites)", "Knocking upon a room") between two
Myelin servers, and from a scripted peer:

- alice@hs1 invites bob@hs2 to a private room: hs2 signs the invite (PUT
  /v2/invite) before hs1 stores it; bob's /sync lists the room under
  rooms.invite with its stripped state; bob joins with no server given
  (through the inviter's server) and both talk;
- bob rejects another invite, made by createRoom (make_leave/send_leave
  through hs1): alice
  sees his membership 'leave', bob's /sync moves the room to rooms.leave;
- bob leaves a joined room and alice sees it;
- bob knocks on a knockable room of hs1 (make_knock/send_knock), sees it
  under rooms.knock, alice accepts by inviting, bob joins;
- a peer's invites: a bad signature, a sender of another server, an
  invitee of another server, an unknown room version are refused; a good
  one is signed and shown, and rejecting it while the peer does not
  answer leaves the room locally.

Every test runs on SQLite and PostgreSQL."""

import base64
import copy
import hashlib
import time

import pytest
import signedjson.sign
from canonicaljson import encode_canonical_json

import test_rooms
from fedpeer import FedPeer
from test_rooms import V3, assert_error, q, unique
from test_federation_rooms import bodies, joined, wait_for
from test_sync import User

INVITE = "/_matrix/federation/v2/invite"


def membership(user, room_id, target):
    resp = user.get(f"{V3}/rooms/{q(room_id)}/state/m.room.member/{q(target)}")
    return resp.json.get("membership") if resp.status == 200 else None


def rooms_section(user, section, room_id):
    return user.sync()["rooms"][section].get(room_id)


def test_invite_join_and_talk(federation):
    hs1, hs2 = federation(2)
    alice = User(hs1)
    bob = User(hs2)
    room = alice.create_room(preset="private_chat", name="Secret plans")
    alice.send(room, "before bob")

    resp = alice.action(room, "invite", bob.user_id, reason="come in")
    assert resp.status == 200, resp
    assert resp.json == {}, resp
    # hs1 stored the invite, signed by hs2 as well.
    member = alice.state_event(room, "m.room.member", bob.user_id)
    assert member["content"]["membership"] == "invite", member
    assert member["content"]["reason"] == "come in", member

    # bob's /sync: rooms.invite with the room's stripped state.
    entry = wait_for(lambda: rooms_section(bob, "invite", room), "the invite on hs2")
    events = entry["invite_state"]["events"]
    names = [e for e in events if e["type"] == "m.room.name"]
    assert names and names[0]["content"] == {"name": "Secret plans"}, events
    creates = [e for e in events if e["type"] == "m.room.create"]
    assert creates and creates[0]["sender"] == alice.user_id, events
    mine = [e for e in events if e["type"] == "m.room.member" and
            e["state_key"] == bob.user_id]
    assert mine and mine[0]["content"]["membership"] == "invite", events
    assert mine[0]["sender"] == alice.user_id
    assert room not in bob.sync()["rooms"]["join"]
    # Nothing may be sent into a room known only by the invite.
    resp = test_rooms.User.send(bob, room, "x")
    assert_error(resp, 403, "M_FORBIDDEN")

    # Joining needs no server name: the inviter's server is asked.
    resp = bob.post(f"{V3}/join/{q(room)}")
    assert resp.status == 200 and resp.json["room_id"] == room, resp
    assert joined(bob, room) == {alice.user_id, bob.user_id}
    wait_for(lambda: joined(alice, room) == {alice.user_id, bob.user_id}, "bob's join on hs1")
    assert bob.state_content(room, "m.room.name") == {"name": "Secret plans"}
    body = bob.sync()
    assert room in body["rooms"]["join"] and room not in body["rooms"]["invite"], body["rooms"]

    alice.send(room, "hello bob")
    wait_for(lambda: "hello bob" in bodies(bob, room), "alice's message on hs2")
    bob.send(room, "hi alice")
    wait_for(lambda: "hi alice" in bodies(alice, room), "bob's message on hs1")

    # Bob leaves the joined room; alice sees it.
    bob.leave(room)
    wait_for(lambda: membership(alice, room, bob.user_id) == "leave", "bob's leave on hs1")
    assert joined(alice, room) == {alice.user_id}


def test_reject_invite(federation):
    hs1, hs2 = federation(2)
    alice = User(hs1)
    bob = User(hs2)
    # createRoom's invites of users of other servers go through /v2/invite too.
    room = alice.create_room(preset="private_chat", name="Not for bob", invite=[bob.user_id])
    assert membership(alice, room, bob.user_id) == "invite"
    wait_for(lambda: rooms_section(bob, "invite", room), "the invite on hs2")
    since = bob.sync()["next_batch"]

    resp = bob.post(f"{V3}/rooms/{q(room)}/leave", json={"reason": "no thanks"})
    assert resp.status == 200, resp
    assert resp.json == {}
    # hs1 got the leave through send_leave.
    wait_for(lambda: membership(alice, room, bob.user_id) == "leave", "the rejection on hs1")
    leave = alice.state_event(room, "m.room.member", bob.user_id)
    assert leave["sender"] == bob.user_id and leave["content"]["reason"] == "no thanks", leave
    # Bob's /sync: the room is no longer an invite; it is left.
    body = bob.sync(since=since)
    assert room not in body["rooms"]["invite"], body["rooms"]
    assert room in body["rooms"]["leave"], body["rooms"]
    assert room not in bob.sync()["rooms"]["invite"]
    # Alice can invite him again; the new invite shows.
    alice.invite(room, bob.user_id)
    wait_for(lambda: rooms_section(bob, "invite", room), "the second invite on hs2")


def test_invite_refusals(federation):
    hs1, hs2 = federation(2)
    alice = User(hs1)
    room = alice.create_room(preset="private_chat")
    # No such user on hs2: hs2 refuses, nothing is stored.
    ghost = f"@nobody-{unique()}:{hs2.server_name}"
    resp = alice.action(room, "invite", ghost)
    assert resp.status in (403, 502, 503), resp
    assert membership(alice, room, ghost) is None
    # A room one is not in cannot invite anyone.
    carol = User(hs1)
    bob = User(hs2)
    resp = carol.action(room, "invite", bob.user_id)
    assert_error(resp, 403, "M_FORBIDDEN")
    assert "invite" not in bob.sync()["rooms"] or room not in bob.sync()["rooms"]["invite"]


def test_knock_then_invite(federation):
    hs1, hs2 = federation(2)
    alice = User(hs1)
    bob = User(hs2)
    room = alice.create_room(room_version="10", name="Knock first",
                             initial_state=[{"type": "m.room.join_rules", "state_key": "",
                                             "content": {"join_rule": "knock"}}])
    # Without a server to ask there is no knocking on an unknown room.
    # (Room IDs before v12 name their server, so give a v12-style ID.)
    resp = bob.post(f"{V3}/knock/{q('!unknownroomid')}", json={})
    assert resp.status in (400, 404), resp

    resp = bob.post(f"{V3}/knock/{q(room)}?server_name={q(hs1.server_name)}",
                    json={"reason": "let me in"})
    assert resp.status == 200 and resp.json == {"room_id": room}, resp
    wait_for(lambda: membership(alice, room, bob.user_id) == "knock", "the knock on hs1")
    knock = alice.state_event(room, "m.room.member", bob.user_id)
    assert knock["content"]["reason"] == "let me in", knock
    entry = rooms_section(bob, "knock", room)
    assert entry, bob.sync()["rooms"]
    events = entry["knock_state"]["events"]
    assert [e["content"] for e in events if e["type"] == "m.room.name"] == \
        [{"name": "Knock first"}], events
    assert [e["content"]["join_rule"] for e in events
            if e["type"] == "m.room.join_rules"] == ["knock"], events

    # Alice accepts by inviting; bob is invited on hs2, then joins.
    alice.invite(room, bob.user_id)
    entry = wait_for(lambda: rooms_section(bob, "invite", room), "the invite after the knock")
    assert room not in bob.sync()["rooms"]["knock"]
    resp = bob.post(f"{V3}/join/{q(room)}")
    assert resp.status == 200, resp
    wait_for(lambda: joined(alice, room) == {alice.user_id, bob.user_id}, "bob's join on hs1")
    alice.send(room, "welcome")
    wait_for(lambda: "welcome" in bodies(bob, room), "a message after the knock")


def test_knock_refused_where_not_allowed(federation):
    hs1, hs2 = federation(2)
    alice = User(hs1)
    bob = User(hs2)
    room = alice.create_room(room_version="10", preset="private_chat")
    resp = bob.post(f"{V3}/knock/{q(room)}?server_name={q(hs1.server_name)}", json={})
    assert_error(resp, 403, "M_FORBIDDEN")
    assert membership(alice, room, bob.user_id) is None
    assert room not in bob.sync()["rooms"]["knock"]


# ---- invites from a scripted peer ----

@pytest.fixture
def peer(test_ca):
    p = FedPeer(test_ca)
    yield p
    p.close()


def b64(data, urlsafe=False):
    enc = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    return enc(data).decode().rstrip("=")


def peer_invite(peer, room_id, target, sender=None, sign=True):
    """A v10 invite PDU from the peer, hashed and signed (or not)."""
    ev = {"type": "m.room.member", "room_id": room_id,
          "sender": sender or f"@mallory:{peer.server_name}", "state_key": target,
          "content": {"membership": "invite"}, "depth": 7, "prev_events": [],
          "auth_events": [], "origin_server_ts": int(time.time() * 1000)}
    ev["hashes"] = {"sha256": b64(hashlib.sha256(encode_canonical_json(ev)).digest())}
    if sign:
        # Every key is kept by redaction (membership content included), so
        # the redacted event is the event itself.
        ev = signedjson.sign.sign_json(ev, peer.server_name, peer.key)
    else:
        ev["signatures"] = {peer.server_name: {peer.key_id: b64(b"\0" * 64)}}
    red = {k: v for k, v in ev.items() if k not in ("signatures", "unsigned")}
    event_id = "$" + b64(hashlib.sha256(encode_canonical_json(red)).digest(), urlsafe=True)
    return ev, event_id


def send_invite(peer, hs, ctx, ev, event_id, version="10", state=None):
    body = {"room_version": version, "event": ev,
            "invite_room_state": state if state is not None else []}
    return peer.request(hs, "PUT", f"{INVITE}/{q(ev['room_id'])}/{q(event_id)}", body,
                        ssl_context=ctx)


def test_peer_invites(federation, test_ca, peer):
    (hs,) = federation(1)
    ctx = test_ca.client_context()
    bob = User(hs)
    room = f"!peerroom{unique()}:{peer.server_name}"
    name_event = {"type": "m.room.name", "state_key": "", "sender": f"@mallory:{peer.server_name}",
                  "content": {"name": "Peer room"}}

    # A forged signature is refused and nothing reaches bob.
    forged, forged_id = peer_invite(peer, room, bob.user_id, sign=False)
    resp = send_invite(peer, hs, ctx, forged, forged_id, state=[name_event])
    assert_error(resp, 400, "M_INVALID_PARAM")
    # A sender of another server than the one asking.
    other, other_id = peer_invite(peer, room, bob.user_id, sender="@eve:elsewhere.example")
    assert_error(send_invite(peer, hs, ctx, other, other_id), 400, "M_INVALID_PARAM")
    # An invitee of another server.
    remote, remote_id = peer_invite(peer, room, "@someone:elsewhere.example")
    assert_error(send_invite(peer, hs, ctx, remote, remote_id), 400, "M_INVALID_PARAM")
    # A tampered event: the path's event ID no longer matches.
    good, good_id = peer_invite(peer, room, bob.user_id)
    tampered = copy.deepcopy(good)
    tampered["depth"] = 8
    assert_error(send_invite(peer, hs, ctx, tampered, good_id), 400, "M_INVALID_PARAM")
    # An unknown room version.
    resp = send_invite(peer, hs, ctx, good, good_id, version="9999")
    assert_error(resp, 400, "M_INCOMPATIBLE_ROOM_VERSION")
    assert resp.json["room_version"] == "9999"
    assert room not in bob.sync()["rooms"]["invite"]

    # A good one: signed by hs and shown to bob with the stripped state.
    resp = send_invite(peer, hs, ctx, good, good_id, state=[name_event])
    assert resp.status == 200, resp
    signed = resp.json["event"]
    assert set(signed["signatures"]) == {peer.server_name, hs.server_name}, signed
    assert {k: v for k, v in signed.items() if k != "signatures"} == \
        {k: v for k, v in good.items() if k != "signatures"}
    assert signed["signatures"][peer.server_name] == good["signatures"][peer.server_name]
    # The same invite again is answered the same way, stored once.
    assert send_invite(peer, hs, ctx, good, good_id, state=[name_event]).status == 200
    entry = wait_for(lambda: rooms_section(bob, "invite", room), "the peer's invite")
    events = entry["invite_state"]["events"]
    assert [e["content"] for e in events if e["type"] == "m.room.name"] == \
        [{"name": "Peer room"}], events
    assert any(e["type"] == "m.room.member" and e["state_key"] == bob.user_id and
               e["content"]["membership"] == "invite" for e in events), events

    # The peer does not serve make_leave: bob rejects the invite locally.
    since = bob.sync()["next_batch"]
    resp = bob.post(f"{V3}/rooms/{q(room)}/leave", json={})
    assert resp.status == 200, resp
    assert any("/make_leave/" in path for _, path, _, _ in peer.requests), peer.requests
    body = bob.sync(since=since)
    assert room not in body["rooms"]["invite"]
    assert room in body["rooms"]["leave"], body["rooms"]
    assert room not in bob.sync()["rooms"]["invite"]
