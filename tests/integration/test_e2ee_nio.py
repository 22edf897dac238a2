"""End-to-end encryption with real clients: two matrix-nio clients (Olm and
Megolm through python3-olm) exchange encrypted room messages through
Myelin in both directions, each decrypting the other's, with the room keys
travelling as Olm-encrypted to-device messages; the server only ever
holds m.room.encrypted events. A device that logs in later is announced
through device_lists.changed, the sender's client fetches its keys and
the new device decrypts what is sent afterwards. Runs on SQLite and
PostgreSQL."""

import asyncio

import nio

from test_rooms import V3, q, run
from test_sync import User
from test_to_device import PASSWORD, with_devices

TIMEOUT = 30  # seconds for one side to see what the other sent


def client(server, user, tmp_path):
    path = tmp_path / f"{user.user_id.strip('@').replace(':', '_')}-{user.device_id}"
    path.mkdir()
    config = nio.AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False)
    c = nio.AsyncClient(server.base_url, user.user_id, device_id=user.device_id,
                        store_path=str(path), config=config)
    c.restore_login(user.user_id, user.device_id, user.token)
    return c


async def sync(c):
    resp = await c.sync(timeout=0, full_state=c.next_batch is None)
    assert isinstance(resp, nio.SyncResponse), resp
    if c.should_upload_keys:
        up = await c.keys_upload()
        assert isinstance(up, nio.KeysUploadResponse), up
    if c.should_query_keys:
        kq = await c.keys_query()
        assert isinstance(kq, nio.KeysQueryResponse), kq
    return resp


async def send_encrypted(c, room_id, body):
    resp = await c.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": body},
                             ignore_unverified_devices=True)
    assert isinstance(resp, nio.RoomSendResponse), resp
    return resp.event_id


async def receive(c, room_id, event_id):
    """Syncs until the event arrives; returns it (decrypted by nio when it
    could be)."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while asyncio.get_running_loop().time() < deadline:
        resp = await sync(c)
        room = resp.rooms.join.get(room_id)
        for ev in room.timeline.events if room else []:
            if ev.event_id == event_id:
                return ev
        await asyncio.sleep(0.05)
    raise AssertionError(f"{c.user_id}/{c.device_id} never saw {event_id}")


def raw_event(user, room_id, event_id):
    resp = user.get(f"{V3}/rooms/{q(room_id)}/event/{q(event_id)}")
    assert resp.status == 200, resp
    return resp.json


def test_megolm_both_ways_and_a_new_device(server, tmp_path):
    alice = User(server)
    (bob,) = with_devices(server)

    async def scenario():
        na, nb = client(server, alice, tmp_path), client(server, bob, tmp_path)
        clients = [na, nb]
        try:
            for c in clients:
                await sync(c)
            resp = await na.room_create(
                invite=[bob.user_id],
                initial_state=[{"type": "m.room.encryption", "state_key": "",
                                "content": {"algorithm": "m.megolm.v1.aes-sha2"}}])
            assert isinstance(resp, nio.RoomCreateResponse), resp
            room_id = resp.room_id
            await sync(nb)
            joined = await nb.join(room_id)
            assert isinstance(joined, nio.JoinResponse), joined
            for c in clients:
                await sync(c)
            assert na.rooms[room_id].encrypted and nb.rooms[room_id].encrypted

            # Alice -> Bob.
            eid = await send_encrypted(na, room_id, "hello bob, secretly")
            ev = await receive(nb, room_id, eid)
            assert isinstance(ev, nio.RoomMessageText), ev
            assert ev.body == "hello bob, secretly" and ev.decrypted
            # Bob -> Alice.
            eid2 = await send_encrypted(nb, room_id, "hi alice, also secret")
            ev = await receive(na, room_id, eid2)
            assert isinstance(ev, nio.RoomMessageText), ev
            assert ev.body == "hi alice, also secret" and ev.decrypted

            # The server holds ciphertext only.
            for e in (eid, eid2):
                raw = raw_event(alice, room_id, e)
                assert raw["type"] == "m.room.encrypted", raw
                assert raw["content"]["algorithm"] == "m.megolm.v1.aes-sha2", raw
                assert "secret" not in str(raw)

            # Bob logs in on a second device; Alice's client learns it from
            # device_lists.changed and encrypts for it too.
            resp = server.post(f"{V3}/login", json={
                "type": "m.login.password", "password": PASSWORD,
                "identifier": {"type": "m.id.user", "user": bob.user_id[1:].split(":")[0]}})
            assert resp.status == 200, resp
            bob2 = User.__new__(User)
            bob2.server, bob2.user_id = server, bob.user_id
            bob2.token, bob2.device_id = resp.json["access_token"], resp.json["device_id"]
            nb2 = client(server, bob2, tmp_path)
            clients.append(nb2)
            await sync(nb2)
            assert not nb2.should_upload_keys
            deadline = asyncio.get_running_loop().time() + TIMEOUT
            while bob2.device_id not in na.device_store[bob.user_id]:
                assert asyncio.get_running_loop().time() < deadline, "new device never seen"
                await sync(na)
            eid3 = await send_encrypted(na, room_id, "for both of bob's devices")
            for c in (nb2, nb):
                ev = await receive(c, room_id, eid3)
                assert isinstance(ev, nio.RoomMessageText), (c.device_id, ev)
                assert ev.body == "for both of bob's devices"
        finally:
            for c in clients:
                await c.close()

    run(scenario())


def test_megolm_between_two_servers(federation, tmp_path):
    """The same exchange with Alice on hs1 and Bob on hs2: the room is
    joined over federation, keys are queried and claimed across servers and
    the room keys travel as to-device messages between the servers."""
    hs1, hs2 = federation(2)
    alice = User(hs1)
    bob = User(hs2)

    async def scenario():
        na, nb = client(hs1, alice, tmp_path), client(hs2, bob, tmp_path)
        try:
            for c in (na, nb):
                await sync(c)
            resp = await na.room_create(
                initial_state=[{"type": "m.room.encryption", "state_key": "",
                                "content": {"algorithm": "m.megolm.v1.aes-sha2"}}],
                preset=nio.RoomPreset.public_chat)
            assert isinstance(resp, nio.RoomCreateResponse), resp
            room_id = resp.room_id
            joined = bob.post(f"{V3}/join/{q(room_id)}?server_name={q(hs1.server_name)}")
            assert joined.status == 200, joined
            deadline = asyncio.get_running_loop().time() + TIMEOUT
            while bob.user_id not in na.rooms.get(room_id, nio.MatrixRoom(room_id, "")).users:
                assert asyncio.get_running_loop().time() < deadline, "bob's join never seen"
                await sync(na)
            await sync(nb)
            assert na.rooms[room_id].encrypted and nb.rooms[room_id].encrypted
            for c in (na, nb):
                members = await c.joined_members(room_id)
                assert isinstance(members, nio.JoinedMembersResponse), members

            eid = await send_encrypted(na, room_id, "across servers, secretly")
            ev = await receive(nb, room_id, eid)
            assert isinstance(ev, nio.RoomMessageText), ev
            assert ev.body == "across servers, secretly" and ev.decrypted
            eid2 = await send_encrypted(nb, room_id, "and back again")
            ev = await receive(na, room_id, eid2)
            assert isinstance(ev, nio.RoomMessageText), ev
            assert ev.body == "and back again" and ev.decrypted
            # Both servers hold only ciphertext.
            for user, e, text in ((alice, eid2, "and back again"),
                                  (bob, eid, "across servers, secretly")):
                raw = raw_event(user, room_id, e)
                assert raw["type"] == "m.room.encrypted" and text not in str(raw), raw
        finally:
            for c in (na, nb):
                await c.close()

    run(scenario())
