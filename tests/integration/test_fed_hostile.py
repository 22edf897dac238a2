"""Events another server sends into a shared room, checked as the spec's
"Checks performed on receipt of a PDU" says: a scripted peer joins a room
of a Myelin server for real, then sends PDUs in transactions. A valid
message is accepted and served; one with a bad signature, a sender of
another server, an unknown previous event nobody can supply, or one the
auth rules refuse (a member changing power levels) is answered with an
error and never reaches clients; one whose content does not match its
hash is kept redacted. Three servers: a user of hs3 joining through hs2
(which joined through hs1) gets hs1's messages, and hs1 gets hs3's. A
destination down while messages are sent gets them all, in order, once
it is back. Runs on SQLite and PostgreSQL."""

import time

import signedjson.key

from fedpeer import FedPeer, compute_event_id, sign_event
from test_federation_rooms import bodies, joined, wait_for
from test_rooms import V3, q
from test_sync import User


def state_ids(answer, version):
    """{(type, state_key): event_id} of a send_join answer's state."""
    return {(e["type"], e["state_key"]): compute_event_id(e, version) for e in answer["state"]}


def make_event(peer, room_id, version, join_id, state, etype, content, depth,
               state_key=None, sender=None, prev=None, key=None):
    sender = sender or f"@peeruser:{peer.server_name}"
    auth = [state[("m.room.power_levels", "")], join_id]
    if version not in ("12",):
        auth.insert(0, state[("m.room.create", "")])
    ev = {"room_id": room_id, "sender": sender, "type": etype, "content": content,
          "origin_server_ts": int(time.time() * 1000), "depth": depth,
          "prev_events": prev or [join_id], "auth_events": auth}
    if state_key is not None:
        ev["state_key"] = state_key
    return sign_event(ev, version, peer.server_name, key or peer.key)


def send_txn(peer, hs, pdus, ctx):
    txn = f"t{time.monotonic_ns()}"
    resp = peer.request(hs, "PUT", f"/_matrix/federation/v1/send/{txn}",
                        {"origin": peer.server_name,
                         "origin_server_ts": int(time.time() * 1000),
                         "pdus": pdus, "edus": []}, ssl_context=ctx)
    assert resp.status == 200, resp
    return resp.json["pdus"]


def test_peer_events_checked(federation, test_ca):
    (hs1,) = federation(1)
    ctx = test_ca.client_context()
    peer = FedPeer(test_ca)
    try:
        alice = User(hs1)
        room = alice.create_room(preset="public_chat")
        version = alice.state_content(room, "m.room.create")["room_version"]
        join_id, answer = peer.join(hs1, room, ssl_context=ctx)
        state = state_ids(answer, version)
        wait_for(lambda: f"@peeruser:{peer.server_name}" in joined(alice, room), "peer joined")
        depth = 100

        good = make_event(peer, room, version, join_id, state, "m.room.message",
                          {"msgtype": "m.text", "body": "hello from the peer"}, depth)
        good_id = compute_event_id(good, version)
        # Signed with a key the peer does not publish.
        other_key = signedjson.key.generate_signing_key("peer1")
        forged = make_event(peer, room, version, join_id, state, "m.room.message",
                            {"msgtype": "m.text", "body": "forged signature"}, depth,
                            key=other_key)
        # A sender of another server (hs1's alice), signed by the peer.
        spoofed = make_event(peer, room, version, join_id, state, "m.room.message",
                             {"msgtype": "m.text", "body": "spoofed sender"}, depth,
                             sender=alice.user_id)
        # Not allowed: a member without power changing the power levels.
        powered = make_event(peer, room, version, join_id, state, "m.room.power_levels",
                             {"users": {f"@peeruser:{peer.server_name}": 100}}, depth,
                             state_key="")
        # A previous event nobody can give us (the peer answers nothing).
        orphan = make_event(peer, room, version, join_id, state, "m.room.message",
                            {"msgtype": "m.text", "body": "orphan"}, depth,
                            prev=["$" + "A" * 43])
        # Content changed after signing: kept, redacted.
        tampered = make_event(peer, room, version, join_id, state, "m.room.message",
                              {"msgtype": "m.text", "body": "original"}, depth)
        tampered_id = compute_event_id(tampered, version)
        tampered["content"] = {"msgtype": "m.text", "body": "tampered"}

        results = send_txn(peer, hs1, [good, forged, spoofed, powered, orphan, tampered], ctx)
        assert results[good_id] == {}, results
        assert results[tampered_id] == {}, results
        for ev in (forged, spoofed, powered, orphan):
            eid = compute_event_id(ev, version)
            assert "error" in results.get(eid, {"error": "absent"}), (ev["content"], results)

        seen = bodies(alice, room)
        assert "hello from the peer" in seen
        for bad in ("forged signature", "spoofed sender", "orphan", "tampered", "original"):
            assert bad not in seen, seen
        resp = alice.get(f"{V3}/rooms/{q(room)}/event/{q(tampered_id)}")
        assert resp.status == 200 and resp.json["content"] == {}, resp
        # The power levels did not change; the room still works.
        pl = alice.state_content(room, "m.room.power_levels")
        assert f"@peeruser:{peer.server_name}" not in pl.get("users", {})
        alice.send(room, "still fine")
        # The same transaction again changes nothing.
        assert "hello from the peer" in bodies(alice, room)
    finally:
        peer.close()


def test_three_servers_and_a_destination_that_returns(federation):
    hs1, hs2, hs3 = federation(3)
    alice, bob, carol = User(hs1), User(hs2), User(hs3)
    room = alice.create_room(preset="public_chat")
    assert bob.post(f"{V3}/join/{q(room)}?server_name={q(hs1.server_name)}").status == 200
    # Carol joins through hs2, which joined through hs1.
    resp = carol.post(f"{V3}/join/{q(room)}?server_name={q(hs2.server_name)}")
    assert resp.status == 200, resp
    everyone = {alice.user_id, bob.user_id, carol.user_id}
    for user in (alice, bob, carol):
        wait_for(lambda u=user: joined(u, room) == everyone, f"all joined on {user.user_id}")
    alice.send(room, "to all")
    carol.send(room, "from hs3")
    for user in (alice, bob, carol):
        wait_for(lambda u=user: {"to all", "from hs3"} <= set(bodies(u, room)),
                 f"both messages on {user.user_id}")

    # hs3 goes down; hs1 keeps talking; hs3 comes back and gets it all.
    code = hs3.stop()
    assert code == 0 and not hs3.problems(), hs3.problems()
    sent = [f"while down {i}" for i in range(12)]
    for body in sent:
        alice.send(room, body)
    hs3.proc = None
    hs3.exit_code = None
    hs3.start()
    carol.send(room, "back")  # hs3 talking again resets hs1's backoff
    wait_for(lambda: [b for b in bodies(carol, room) if b and b.startswith("while down")] ==
             sent, "the queued messages on hs3, in order", timeout=60)
    wait_for(lambda: "back" in bodies(alice, room), "hs3's message on hs1")
