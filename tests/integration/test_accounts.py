"""Accounts, seen from outside: registration (dummy, registration tokens,
guests, shared secret), login and logout, token refresh, whoami, password
change, deactivation, devices, profiles, capabilities, the third-party
identifier endpoints a server without email/SMS answers, client start-up
probes, the registration-token admin API and rate limiting. Driven with
raw HTTP and with matrix-nio; every test that starts a server runs on
SQLite and on PostgreSQL.

Password hashing is deliberately slow (argon2id), so tests register few
accounts each."""

import asyncio
import hashlib
import hmac
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

V3 = "/_matrix/client/v3"
R0 = "/_matrix/client/r0"
ADMIN = "/_synapse/admin/v1"
PASSWORD = "correct horse battery staple"


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def assert_error(resp, status, errcode):
    assert resp.status == status, f"expected {status} {errcode}, got {resp!r}"
    assert isinstance(resp.json, dict), resp
    assert resp.json.get("errcode") == errcode, \
        f"expected {errcode}, got {resp!r}"
    assert isinstance(resp.json.get("error"), str), resp


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def q(s):
    return urllib.parse.quote(s, safe="")


def unique(prefix="u"):
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def register(server, username=None, password=PASSWORD, prefix=V3, **extra):
    """Registers through the dummy UIA flow in one request; returns the
    response JSON (asserting success)."""
    body = {"auth": {"type": "m.login.dummy"}}
    if username is not None:
        body["username"] = username
    if password is not None:
        body["password"] = password
    body.update(extra)
    resp = server.post(f"{prefix}/register", json=body)
    assert resp.status == 200, resp
    return resp.json


def login(server, user, password=PASSWORD, **extra):
    body = {"type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": password}
    body.update(extra)
    return server.post(f"{V3}/login", json=body)


def whoami(server, token):
    return server.get(f"{V3}/account/whoami", headers=bearer(token))


def password_auth(user_id, password=PASSWORD, session=None):
    auth = {"type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user_id},
            "password": password}
    if session:
        auth["session"] = session
    return auth


def uia(server, method, path, token, user_id, body=None, password=PASSWORD):
    """Runs a UIA-protected request: the 401 challenge (which must offer
    m.login.password), then the same request with the password."""
    body = dict(body or {})
    first = server.request(method, path, json=body, headers=bearer(token))
    assert first.status == 401, first
    assert {"stages": ["m.login.password"]} in first.json["flows"], first
    body["auth"] = password_auth(user_id, password, first.json["session"])
    return server.request(method, path, json=body, headers=bearer(token))


def shared_secret_mac(secret, nonce, user, password, admin, user_type=None):
    parts = [nonce.encode(), user.encode(), password.encode(),
             b"admin" if admin else b"notadmin"]
    if user_type:
        parts.append(user_type.encode())
    return hmac.new(secret.encode(), b"\x00".join(parts),
                    hashlib.sha1).hexdigest()


def nonce(server):
    resp = server.get(f"{ADMIN}/register")
    assert resp.status == 200, resp
    return resp.json["nonce"]


def register_shared(server, user, admin=False, password=PASSWORD, **extra):
    n = nonce(server)
    body = {"nonce": n, "username": user, "password": password,
            "admin": admin,
            "mac": shared_secret_mac(server.shared_secret, n, user, password,
                                     admin)}
    body.update(extra)
    return server.post(f"{ADMIN}/register", json=body)


def make_admin(server):
    resp = register_shared(server, unique("admin"), admin=True)
    assert resp.status == 200, resp
    return resp.json


# ---------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------

def test_register_dummy_flow_and_username_checks(server):
    name = unique("alice")
    first = server.post(f"{V3}/register",
                        json={"username": name, "password": PASSWORD})
    assert first.status == 401, first
    assert first.json["flows"] == [{"stages": ["m.login.dummy"]}]
    session = first.json["session"]
    assert isinstance(session, str) and session

    resp = server.post(f"{V3}/register", json={
        "username": name, "password": PASSWORD,
        "auth": {"type": "m.login.dummy", "session": session}})
    assert resp.status == 200, resp
    body = resp.json
    assert body["user_id"] == f"@{name}:{server.server_name}"
    assert body["home_server"] == server.server_name
    assert body["access_token"] and body["device_id"]
    assert "refresh_token" not in body

    me = whoami(server, body["access_token"])
    assert me.status == 200
    assert me.json == {"user_id": body["user_id"], "is_guest": False,
                       "device_id": body["device_id"]}

    # A new account's profile carries its localpart as display name.
    prof = server.get(f"{V3}/profile/{q(body['user_id'])}")
    assert prof.status == 200 and prof.json == {"displayname": name}

    taken = server.post(f"{V3}/register", json={
        "username": name, "password": PASSWORD,
        "auth": {"type": "m.login.dummy"}})
    assert_error(taken, 400, "M_USER_IN_USE")
    avail = server.get(f"{V3}/register/available?username={name}")
    assert_error(avail, 400, "M_USER_IN_USE")
    free = server.get(f"{V3}/register/available?username={unique()}")
    assert free.status == 200 and free.json == {"available": True}

    for bad in ("Has Space", "_reserved", "12345", "a" * 300, "é"):
        resp = server.post(f"{V3}/register", json={
            "username": bad, "password": PASSWORD,
            "auth": {"type": "m.login.dummy"}})
        assert_error(resp, 400, "M_INVALID_USERNAME")

    # The legacy r0 prefix serves the same endpoint.
    r0 = register(server, unique("r0user"), prefix=R0)
    assert whoami(server, r0["access_token"]).status == 200


def test_register_bad_inputs(server):
    dummy = {"type": "m.login.dummy"}
    cases = [
        ({"username": 5, "password": PASSWORD, "auth": dummy},
         "M_INVALID_PARAM"),
        ({"username": unique(), "password": ["x"], "auth": dummy},
         "M_INVALID_PARAM"),
        ({"username": unique(), "password": PASSWORD, "auth": dummy,
          "inhibit_login": "yes"}, "M_INVALID_PARAM"),
        ({"username": unique(), "password": PASSWORD, "auth": dummy,
          "device_id": 7}, "M_INVALID_PARAM"),
        ({"username": unique(), "password": "p" * 600, "auth": dummy},
         "M_INVALID_PARAM"),
    ]
    for body, errcode in cases:
        assert_error(server.post(f"{V3}/register", json=body), 400, errcode)
    assert_error(server.post(f"{V3}/register?kind=robot", json={}), 400,
                 "M_INVALID_PARAM")
    assert_error(server.post(f"{V3}/register", body="{nope"), 400,
                 "M_NOT_JSON")
    # An unknown UIA session is a client error, not a server one.
    resp = server.post(f"{V3}/register", json={
        "username": unique(), "password": PASSWORD,
        "auth": {"type": "m.login.dummy", "session": "no-such-session"}})
    assert_error(resp, 400, "M_UNKNOWN")
    # A stage the flows do not offer is answered with the challenge.
    resp = server.post(f"{V3}/register", json={
        "username": unique(), "password": PASSWORD,
        "auth": {"type": "m.login.recaptcha"}})
    assert resp.status == 401 and "flows" in resp.json, resp
    assert server.get(f"{V3}/register/available").status == 400


def test_register_inhibit_login_device_id_and_display_name(server):
    name = unique("quiet")
    body = register(server, name, inhibit_login=True)
    assert body == {"user_id": f"@{name}:{server.server_name}",
                    "home_server": server.server_name}
    assert login(server, name).status == 200

    name2 = unique("dev")
    body = register(server, name2, device_id="MYDEVICE",
                    initial_device_display_name="Phone")
    assert body["device_id"] == "MYDEVICE"
    dev = server.get(f"{V3}/devices/MYDEVICE",
                     headers=bearer(body["access_token"]))
    assert dev.status == 200
    assert dev.json["device_id"] == "MYDEVICE"
    assert dev.json["display_name"] == "Phone"


def test_refresh_token_rotation(server):
    body = register(server, unique("fresh"), refresh_token=True)
    assert body["refresh_token"] and body["expires_in_ms"] > 0
    old_access, old_refresh = body["access_token"], body["refresh_token"]
    assert whoami(server, old_access).status == 200

    resp = server.post(f"{V3}/refresh", json={"refresh_token": old_refresh})
    assert resp.status == 200, resp
    new = resp.json
    assert new["access_token"] != old_access
    assert new["refresh_token"] != old_refresh
    assert new["expires_in_ms"] > 0

    # The old pair is gone at once, the new one works.
    assert_error(whoami(server, old_access), 401, "M_UNKNOWN_TOKEN")
    again = server.post(f"{V3}/refresh", json={"refresh_token": old_refresh})
    assert_error(again, 401, "M_UNKNOWN_TOKEN")
    assert again.json["soft_logout"] is False
    assert whoami(server, new["access_token"]).status == 200
    assert_error(server.post(f"{V3}/refresh", json={}), 400,
                 "M_MISSING_PARAM")

    # Login can ask for refresh tokens too.
    name = unique("fresh")
    register(server, name, inhibit_login=True)
    lg = login(server, name, refresh_token=True)
    assert lg.status == 200 and lg.json["refresh_token"]


def test_guests(server):
    resp = server.post(f"{V3}/register?kind=guest", json={})
    assert resp.status == 200, resp
    guest = resp.json
    localpart = guest["user_id"][1:].split(":")[0]
    assert localpart.isdigit()
    me = whoami(server, guest["access_token"])
    assert me.json["is_guest"] is True
    token = bearer(guest["access_token"])

    for method, path, body in [
            ("POST", "/account/password", {"new_password": "x"}),
            ("POST", "/account/deactivate", {}),
            ("GET", "/pushers", None),
            ("GET", "/account/3pid", None),
            ("POST", "/delete_devices", {"devices": []}),
            ("DELETE", f"/devices/{guest['device_id']}", {})]:
        resp = server.request(method, V3 + path, json=body, headers=token)
        assert_error(resp, 403, "M_GUEST_ACCESS_FORBIDDEN")

    # Guests may read devices and capabilities and set a display name,
    # nothing else of their profile.
    assert server.get(f"{V3}/devices", headers=token).status == 200
    assert server.get(f"{V3}/capabilities", headers=token).status == 200
    uid = q(guest["user_id"])
    resp = server.put(f"{V3}/profile/{uid}/displayname",
                      json={"displayname": "Visitor"}, headers=token)
    assert resp.status == 200, resp
    resp = server.put(f"{V3}/profile/{uid}/avatar_url",
                      json={"avatar_url": "mxc://x/y"}, headers=token)
    assert_error(resp, 403, "M_FORBIDDEN")


def test_guest_registration_can_be_disabled(server_factory):
    srv = server_factory(start=False)
    srv.config["registration"]["guests"] = False
    srv.write_config()
    srv.start()
    resp = srv.post(f"{V3}/register?kind=guest", json={})
    assert_error(resp, 403, "M_GUEST_ACCESS_FORBIDDEN")


# ---------------------------------------------------------------------------
# Registration tokens and their admin API
# ---------------------------------------------------------------------------

def token_register(server, name, token):
    """Registration in a token-gated server: challenge, then the token."""
    first = server.post(f"{V3}/register",
                        json={"username": name, "password": PASSWORD})
    assert first.status == 401, first
    assert first.json["flows"] == \
        [{"stages": ["m.login.registration_token"]}]
    return server.post(f"{V3}/register", json={
        "username": name, "password": PASSWORD,
        "auth": {"type": "m.login.registration_token", "token": token,
                 "session": first.json["session"]}})


def validity(server, token):
    resp = server.get("/_matrix/client/v1/register/"
                      f"m.login.registration_token/validity?token={q(token)}")
    assert resp.status == 200, resp
    return resp.json["valid"]


def test_registration_tokens(server_factory):
    srv = server_factory(start=False)
    srv.config["registration"]["tokens_required"] = True
    srv.write_config()
    srv.start()
    admin = bearer(make_admin(srv)["access_token"])

    # Dummy registration is no longer offered.
    resp = srv.post(f"{V3}/register", json={
        "username": unique(), "password": PASSWORD,
        "auth": {"type": "m.login.dummy"}})
    assert resp.status == 401 and resp.json["errcode"] == "M_UNRECOGNIZED"

    made = srv.post(f"{ADMIN}/registration_tokens/new",
                    json={"token": "once-only", "uses_allowed": 1},
                    headers=admin)
    assert made.status == 200, made
    assert made.json == {"token": "once-only", "uses_allowed": 1,
                         "pending": 0, "completed": 0, "expiry_time": None}
    assert validity(srv, "once-only") is True
    assert validity(srv, "never-made") is False

    bad = token_register(srv, unique(), "never-made")
    assert bad.status == 401 and bad.json["errcode"] == "M_UNAUTHORIZED"

    name = unique("tok")
    ok = token_register(srv, name, "once-only")
    assert ok.status == 200, ok
    assert whoami(srv, ok.json["access_token"]).status == 200
    got = srv.get(f"{ADMIN}/registration_tokens/once-only", headers=admin)
    assert got.json["pending"] == 0 and got.json["completed"] == 1
    assert validity(srv, "once-only") is False
    exhausted = token_register(srv, unique(), "once-only")
    assert exhausted.status == 401, exhausted
    assert exhausted.json["errcode"] == "M_UNAUTHORIZED"

    # Raising the limit makes it usable again.
    put = srv.put(f"{ADMIN}/registration_tokens/once-only",
                  json={"uses_allowed": 2}, headers=admin)
    assert put.status == 200 and put.json["uses_allowed"] == 2
    assert validity(srv, "once-only") is True

    # Expiry: a generated token that lapses shortly.
    soon = int(time.time() * 1000) + 1500
    made = srv.post(f"{ADMIN}/registration_tokens/new",
                    json={"expiry_time": soon, "length": 24}, headers=admin)
    assert made.status == 200, made
    short = made.json["token"]
    assert len(short) == 24 and made.json["uses_allowed"] is None
    assert made.json["expiry_time"] == soon
    assert validity(srv, short) is True
    time.sleep(1.7)
    assert validity(srv, short) is False
    assert token_register(srv, unique(), short).status == 401
    listed = srv.get(f"{ADMIN}/registration_tokens?valid=false",
                     headers=admin)
    assert short in [t["token"] for t in listed.json["registration_tokens"]]
    listed = srv.get(f"{ADMIN}/registration_tokens?valid=true",
                     headers=admin)
    assert [t["token"] for t in listed.json["registration_tokens"]] == \
        ["once-only"]
    put = srv.put(f"{ADMIN}/registration_tokens/{short}",
                  json={"expiry_time": None}, headers=admin)
    assert put.status == 200 and put.json["expiry_time"] is None
    assert validity(srv, short) is True

    # Deletion, and the admin API's error answers.
    assert srv.request("DELETE", f"{ADMIN}/registration_tokens/{short}",
                       headers=admin).status == 200
    for method in ("GET", "DELETE"):
        resp = srv.request(method, f"{ADMIN}/registration_tokens/{short}",
                           headers=admin)
        assert_error(resp, 404, "M_NOT_FOUND")
    for body in ({"token": "has space"}, {"token": "once-only"},
                 {"uses_allowed": -1}, {"uses_allowed": "1"},
                 {"length": 100}, {"expiry_time": 1000},
                 {"token": "x" * 65}):
        resp = srv.post(f"{ADMIN}/registration_tokens/new", json=body,
                        headers=admin)
        assert_error(resp, 400, "M_INVALID_PARAM")
    user = bearer(ok.json["access_token"])
    assert_error(srv.get(f"{ADMIN}/registration_tokens", headers=user),
                 403, "M_FORBIDDEN")
    assert_error(srv.get(f"{ADMIN}/registration_tokens"), 401,
                 "M_MISSING_TOKEN")


# ---------------------------------------------------------------------------
# Login, logout, whoami
# ---------------------------------------------------------------------------

def test_login_variants(server):
    name = unique("bob")
    uid = register(server, name, inhibit_login=True)["user_id"]

    flows = server.get(f"{V3}/login")
    assert {"type": "m.login.password"} in flows.json["flows"]

    for user in (name, uid, name.upper()):
        resp = login(server, user)
        assert resp.status == 200, (user, resp)
        assert resp.json["user_id"] == uid
        assert resp.json["well_known"]["m.homeserver"]["base_url"] == \
            server.public_baseurl
    legacy = server.post(f"{R0}/login", json={
        "type": "m.login.password", "user": name, "password": PASSWORD})
    assert legacy.status == 200 and legacy.json["user_id"] == uid

    # A device ID given at login is used (and reused).
    a = login(server, name, device_id="LAPTOP",
              initial_device_display_name="Laptop")
    b = login(server, name, device_id="LAPTOP")
    assert a.json["device_id"] == b.json["device_id"] == "LAPTOP"
    assert a.json["access_token"] != b.json["access_token"]

    assert_error(login(server, name, password="wrong"), 403, "M_FORBIDDEN")
    assert_error(login(server, unique("ghost")), 403, "M_FORBIDDEN")
    assert_error(login(server, f"@{name}:elsewhere.example"), 403,
                 "M_FORBIDDEN")
    assert_error(server.post(f"{V3}/login", json={
        "type": "m.login.magic", "user": name}), 400, "M_UNKNOWN")
    assert_error(server.post(f"{V3}/login", json={
        "type": "m.login.password", "password": PASSWORD,
        "identifier": {"type": "m.id.thirdparty", "medium": "email",
                       "address": "a@b.c"}}), 400, "M_UNKNOWN")
    assert_error(server.post(f"{V3}/login", json={
        "type": "m.login.password", "user": name}), 400, "M_INVALID_PARAM")
    assert_error(server.post(f"{V3}/login", json={
        "type": "m.login.password", "user": name, "password": 5}), 400,
        "M_INVALID_PARAM")
    assert_error(server.post(f"{V3}/login", json={
        "type": "m.login.password", "identifier": "bob",
        "password": PASSWORD}), 400, "M_INVALID_PARAM")


def test_logout_revokes_immediately(server):
    name = unique("carol")
    register(server, name, inhibit_login=True)
    t1 = login(server, name).json["access_token"]
    t2 = login(server, name).json["access_token"]
    t3 = login(server, name).json["access_token"]
    for t in (t1, t2, t3):  # warm the token cache
        assert whoami(server, t).status == 200

    resp = server.post(f"{V3}/logout", headers=bearer(t1))
    assert resp.status == 200 and resp.json == {}
    assert_error(whoami(server, t1), 401, "M_UNKNOWN_TOKEN")
    assert whoami(server, t2).status == 200

    resp = server.post(f"{V3}/logout/all", headers=bearer(t2))
    assert resp.status == 200
    for t in (t2, t3):
        assert_error(whoami(server, t), 401, "M_UNKNOWN_TOKEN")
    assert_error(server.get(f"{V3}/account/whoami"), 401, "M_MISSING_TOKEN")
    assert_error(whoami(server, "myt_nonsense"), 401, "M_UNKNOWN_TOKEN")
    # The deprecated query parameter is still accepted.
    t4 = login(server, name).json["access_token"]
    assert server.get(f"{V3}/account/whoami?access_token={t4}").status == 200


# ---------------------------------------------------------------------------
# Password change and deactivation
# ---------------------------------------------------------------------------

def test_password_change(server):
    name = unique("dave")
    reg = register(server, name)
    uid, mine = reg["user_id"], reg["access_token"]
    other = login(server, name).json["access_token"]
    assert whoami(server, other).status == 200

    assert_error(server.post(f"{V3}/account/password", json={},
                             headers=bearer(mine)), 400, "M_MISSING_PARAM")
    assert_error(server.post(f"{V3}/account/password",
                             json={"new_password": "x",
                                   "logout_devices": "no"},
                             headers=bearer(mine)), 400, "M_INVALID_PARAM")

    # Wrong current password: the challenge again, with M_FORBIDDEN.
    first = server.post(f"{V3}/account/password",
                        json={"new_password": "second password"},
                        headers=bearer(mine))
    assert first.status == 401
    wrong = server.post(f"{V3}/account/password", json={
        "new_password": "second password",
        "auth": password_auth(uid, "not it", first.json["session"])},
        headers=bearer(mine))
    assert wrong.status == 401 and wrong.json["errcode"] == "M_FORBIDDEN"
    assert wrong.json["completed"] == []

    ok = server.post(f"{V3}/account/password", json={
        "new_password": "second password",
        "auth": password_auth(uid, PASSWORD, first.json["session"])},
        headers=bearer(mine))
    assert ok.status == 200 and ok.json == {}, ok
    # Other sessions end at once; the caller's survives.
    assert_error(whoami(server, other), 401, "M_UNKNOWN_TOKEN")
    assert whoami(server, mine).status == 200
    assert_error(login(server, name), 403, "M_FORBIDDEN")
    other = login(server, name, password="second password")
    assert other.status == 200
    other = other.json["access_token"]

    # logout_devices: false keeps the other sessions.
    resp = uia(server, "POST", f"{V3}/account/password", mine, uid,
               {"new_password": "third password", "logout_devices": False},
               password="second password")
    assert resp.status == 200, resp
    assert whoami(server, other).status == 200
    assert login(server, name, password="third password").status == 200


def test_deactivate(server):
    name = unique("erin")
    reg = register(server, name)
    uid, token = reg["user_id"], reg["access_token"]
    other = login(server, name).json["access_token"]
    assert whoami(server, other).status == 200
    server.put(f"{V3}/profile/{q(uid)}/org.example.bio",
               json={"org.example.bio": "hi"}, headers=bearer(token))

    assert_error(server.post(f"{V3}/account/deactivate",
                             json={"erase": "yes"}, headers=bearer(token)),
                 400, "M_INVALID_PARAM")
    first = server.post(f"{V3}/account/deactivate", json={},
                        headers=bearer(token))
    assert first.status == 401
    wrong = server.post(f"{V3}/account/deactivate", json={
        "auth": password_auth(uid, "nope", first.json["session"])},
        headers=bearer(token))
    assert wrong.status == 401 and wrong.json["errcode"] == "M_FORBIDDEN"
    assert whoami(server, token).status == 200

    resp = server.post(f"{V3}/account/deactivate", json={
        "erase": True,
        "auth": password_auth(uid, PASSWORD, first.json["session"])},
        headers=bearer(token))
    assert resp.status == 200, resp
    assert resp.json == {"id_server_unbind_result": "no-support"}
    for t in (token, other):
        assert_error(whoami(server, t), 401, "M_UNKNOWN_TOKEN")
    assert_error(login(server, name), 403, "M_USER_DEACTIVATED")
    assert_error(server.get(f"{V3}/profile/{q(uid)}"), 404, "M_NOT_FOUND")
    # The name stays taken.
    assert_error(server.get(f"{V3}/register/available?username={name}"),
                 400, "M_USER_IN_USE")


# ---------------------------------------------------------------------------
# Devices
# ---------------------------------------------------------------------------

def test_devices_crud_and_uia(server):
    name = unique("frank")
    reg = register(server, name, device_id="FIRST",
                   initial_device_display_name="First")
    uid, token = reg["user_id"], reg["access_token"]
    second = login(server, name, device_id="SECOND").json["access_token"]
    third = login(server, name, device_id="THIRD").json["access_token"]
    for t in (second, third):
        assert whoami(server, t).status == 200
    h = bearer(token)

    listed = server.get(f"{V3}/devices", headers=h)
    assert listed.status == 200
    devices = {d["device_id"]: d for d in listed.json["devices"]}
    assert set(devices) == {"FIRST", "SECOND", "THIRD"}
    assert devices["FIRST"]["display_name"] == "First"
    assert "display_name" not in devices["SECOND"]
    # Devices that made requests have been seen.
    assert devices["FIRST"]["last_seen_ts"] > 0
    assert devices["FIRST"]["last_seen_ip"] == "127.0.0.1"

    resp = server.put(f"{V3}/devices/SECOND",
                      json={"display_name": "Renamed"}, headers=h)
    assert resp.status == 200 and resp.json == {}
    got = server.get(f"{V3}/devices/SECOND", headers=h)
    assert got.json["display_name"] == "Renamed"
    assert server.put(f"{V3}/devices/SECOND", json={},
                      headers=h).status == 200
    assert server.get(f"{V3}/devices/SECOND",
                      headers=h).json["display_name"] == "Renamed"
    assert_error(server.put(f"{V3}/devices/SECOND",
                            json={"display_name": 3}, headers=h),
                 400, "M_INVALID_PARAM")
    assert_error(server.get(f"{V3}/devices/NOPE", headers=h), 404,
                 "M_NOT_FOUND")
    assert_error(server.put(f"{V3}/devices/NOPE", json={"display_name": "x"},
                            headers=h), 404, "M_NOT_FOUND")

    # DELETE /devices/{id}: challenge, bad session, wrong password, done.
    first = server.request("DELETE", f"{V3}/devices/SECOND", headers=h)
    assert first.status == 401
    assert first.json["flows"] == [{"stages": ["m.login.password"]}]
    assert first.json["completed"] == []
    bad_session = server.request("DELETE", f"{V3}/devices/SECOND", json={
        "auth": password_auth(uid, PASSWORD, "made-up")}, headers=h)
    assert_error(bad_session, 400, "M_UNKNOWN")
    wrong = server.request("DELETE", f"{V3}/devices/SECOND", json={
        "auth": password_auth(uid, "wrong", first.json["session"])},
        headers=h)
    assert wrong.status == 401 and wrong.json["errcode"] == "M_FORBIDDEN"
    other_user = server.request("DELETE", f"{V3}/devices/SECOND", json={
        "auth": password_auth("@someone:else", PASSWORD,
                              first.json["session"])}, headers=h)
    assert other_user.status == 401
    assert other_user.json["errcode"] == "M_FORBIDDEN"
    ok = server.request("DELETE", f"{V3}/devices/SECOND", json={
        "auth": password_auth(uid, PASSWORD, first.json["session"])},
        headers=h)
    assert ok.status == 200, ok
    assert_error(whoami(server, second), 401, "M_UNKNOWN_TOKEN")
    assert_error(server.get(f"{V3}/devices/SECOND", headers=h), 404,
                 "M_NOT_FOUND")
    # The completed session is spent.
    again = server.request("DELETE", f"{V3}/devices/THIRD", json={
        "auth": {"session": first.json["session"]}}, headers=h)
    assert_error(again, 400, "M_UNKNOWN")

    # A session belongs to its operation.
    pw_session = server.post(f"{V3}/account/password",
                             json={"new_password": "x"}, headers=h)
    cross = server.request("DELETE", f"{V3}/devices/THIRD", json={
        "auth": password_auth(uid, PASSWORD, pw_session.json["session"])},
        headers=h)
    assert_error(cross, 403, "M_FORBIDDEN")

    # POST /delete_devices, with an unknown ID among them.
    assert_error(server.post(f"{V3}/delete_devices", json={}, headers=h),
                 400, "M_MISSING_PARAM")
    assert_error(server.post(f"{V3}/delete_devices",
                             json={"devices": "THIRD"}, headers=h),
                 400, "M_INVALID_PARAM")
    assert_error(server.post(f"{V3}/delete_devices",
                             json={"devices": [1]}, headers=h),
                 400, "M_INVALID_PARAM")
    resp = uia(server, "POST", f"{V3}/delete_devices", token, uid,
               {"devices": ["THIRD", "UNKNOWN"]})
    assert resp.status == 200, resp
    assert_error(whoami(server, third), 401, "M_UNKNOWN_TOKEN")
    remaining = server.get(f"{V3}/devices", headers=h).json["devices"]
    assert [d["device_id"] for d in remaining] == ["FIRST"]
    # Through r0 as well.
    assert server.get(f"{R0}/devices", headers=h).status == 200


# ---------------------------------------------------------------------------
# Profiles
# ---------------------------------------------------------------------------

def test_profile_fields(server):
    name = unique("gina")
    reg = register(server, name)
    uid, h = reg["user_id"], bearer(reg["access_token"])
    base = f"{V3}/profile/{q(uid)}"

    assert server.get(base).json == {"displayname": name}
    assert server.put(f"{base}/displayname", json={"displayname": "Gina"},
                      headers=h).status == 200
    assert server.put(f"{base}/avatar_url",
                      json={"avatar_url": "mxc://example.org/abc"},
                      headers=h).status == 200
    assert server.put(f"{base}/m.tz", json={"m.tz": "Europe/Paris"},
                      headers=h).status == 200
    custom = {"nested": [1, 2, {"x": None}], "ok": True}
    assert server.put(f"{base}/org.example.custom-field",
                      json={"org.example.custom-field": custom},
                      headers=h).status == 200
    assert server.put(f"{base}/org.example.nothing",
                      json={"org.example.nothing": None},
                      headers=h).status == 200

    full = server.get(base)
    assert full.status == 200
    assert full.json == {"displayname": "Gina",
                         "avatar_url": "mxc://example.org/abc",
                         "m.tz": "Europe/Paris",
                         "org.example.custom-field": custom,
                         "org.example.nothing": None}
    one = server.get(f"{base}/org.example.custom-field")
    assert one.json == {"org.example.custom-field": custom}
    assert server.get(f"{R0}/profile/{q(uid)}/displayname").json == \
        {"displayname": "Gina"}

    # Deleting: the field goes; deleting again is fine.
    for _ in range(2):
        resp = server.request("DELETE", f"{base}/org.example.custom-field",
                              headers=h)
        assert resp.status == 200, resp
    assert_error(server.get(f"{base}/org.example.custom-field"), 404,
                 "M_NOT_FOUND")
    # An empty display name or avatar clears it.
    assert server.put(f"{base}/avatar_url", json={"avatar_url": ""},
                      headers=h).status == 200
    assert "avatar_url" not in server.get(base).json

    # Bad keys and values.
    assert_error(server.put(f"{base}/Bad Key".replace(" ", "%20"),
                            json={"Bad Key": 1}, headers=h),
                 400, "M_INVALID_PARAM")
    long_key = "org.example." + "k" * 250
    assert_error(server.put(f"{base}/{long_key}", json={long_key: 1},
                            headers=h), 400, "M_KEY_TOO_LARGE")
    assert_error(server.get(f"{base}/{long_key}"), 400, "M_KEY_TOO_LARGE")
    assert_error(server.put(f"{base}/displayname", json={"other": "x"},
                            headers=h), 400, "M_MISSING_PARAM")
    assert_error(server.put(f"{base}/displayname", json={"displayname": 5},
                            headers=h), 400, "M_INVALID_PARAM")
    assert_error(server.put(f"{base}/displayname",
                            json={"displayname": None}, headers=h),
                 400, "M_INVALID_PARAM")
    assert_error(server.put(f"{base}/displayname",
                            json={"displayname": "n" * 300}, headers=h),
                 400, "M_INVALID_PARAM")
    assert_error(server.put(f"{base}/avatar_url",
                            json={"avatar_url": "https://example.org/a.png"},
                            headers=h), 400, "M_INVALID_PARAM")
    assert_error(server.put(f"{base}/displayname", body="[]", headers=h),
                 400, "M_BAD_JSON")

    # The whole profile must stay under 64 KiB.
    big = "b" * 40000
    assert server.put(f"{base}/org.example.big1",
                      json={"org.example.big1": big}, headers=h).status == 200
    resp = server.put(f"{base}/org.example.big2",
                      json={"org.example.big2": big}, headers=h)
    assert_error(resp, 400, "M_PROFILE_TOO_LARGE")
    resp = server.put(f"{base}/org.example.big1",
                      json={"org.example.big1": "c" * 70000}, headers=h)
    assert_error(resp, 400, "M_PROFILE_TOO_LARGE")
    assert server.get(f"{base}/org.example.big1").json == \
        {"org.example.big1": big}

    # Only the owner changes a profile; anyone may read it.
    other = register(server, unique("hank"))
    oh = bearer(other["access_token"])
    assert_error(server.put(f"{base}/displayname",
                            json={"displayname": "Mallory"}, headers=oh),
                 403, "M_FORBIDDEN")
    assert_error(server.request("DELETE", f"{base}/m.tz", headers=oh),
                 403, "M_FORBIDDEN")
    assert server.get(base, headers=oh).json["displayname"] == "Gina"
    assert_error(server.put(f"{base}/displayname",
                            json={"displayname": "x"}), 401,
                 "M_MISSING_TOKEN")

    # Unknown, remote and malformed users.
    ghost = q(f"@{unique('ghost')}:{server.server_name}")
    assert_error(server.get(f"{V3}/profile/{ghost}"), 404, "M_NOT_FOUND")
    assert_error(server.get(f"{V3}/profile/{ghost}/displayname"), 404,
                 "M_NOT_FOUND")
    # A user of a server that cannot be reached: 502, as Synapse answers.
    assert_error(server.get(f"{V3}/profile/{q('@a:remote.example')}"), 502,
                 "M_UNKNOWN")
    assert_error(server.get(f"{V3}/profile/not-a-user"), 400,
                 "M_INVALID_PARAM")


def test_profile_with_nio(server):
    import nio

    name = unique("nio")
    uid = register(server, name, inhibit_login=True)["user_id"]

    async def run():
        client = nio.AsyncClient(server.base_url, uid)
        try:
            resp = await client.login(PASSWORD, device_name="nio test")
            assert isinstance(resp, nio.LoginResponse), resp
            resp = await client.set_displayname("Nio Person")
            assert isinstance(resp, nio.ProfileSetDisplayNameResponse), resp
            resp = await client.set_avatar("mxc://example.org/nio")
            assert isinstance(resp, nio.ProfileSetAvatarResponse), resp
            prof = await client.get_profile()
            assert isinstance(prof, nio.ProfileGetResponse), prof
            assert prof.displayname == "Nio Person"
            assert prof.avatar_url == "mxc://example.org/nio"
            dn = await client.get_displayname(uid)
            assert dn.displayname == "Nio Person"
            devices = await client.devices()
            assert isinstance(devices, nio.DevicesResponse), devices
            assert [d.display_name for d in devices.devices] == ["nio test"]
            resp = await client.update_device(client.device_id,
                                              {"display_name": "renamed"})
            assert isinstance(resp, nio.UpdateDeviceResponse), resp
            who = await client.whoami()
            assert who.user_id == uid
            resp = await client.logout()
            assert isinstance(resp, nio.LogoutResponse), resp
        finally:
            await client.close()

    asyncio.run(run())


# ---------------------------------------------------------------------------
# Registration and login through matrix-nio
# ---------------------------------------------------------------------------

def test_nio_register_login_delete_devices(server):
    import nio

    name = unique("nioreg")

    async def run():
        client = nio.AsyncClient(server.base_url)
        other = nio.AsyncClient(server.base_url,
                                f"@{name}:{server.server_name}")
        try:
            resp = await client.register(name, PASSWORD, "registered")
            assert isinstance(resp, nio.RegisterResponse), resp
            assert client.access_token
            resp = await other.login(PASSWORD, device_name="second")
            assert isinstance(resp, nio.LoginResponse), resp
            resp = await client.delete_devices([other.device_id])
            assert isinstance(resp, nio.DeleteDevicesAuthResponse), resp
            auth = {"type": "m.login.password", "session": resp.session,
                    "user": client.user_id, "password": PASSWORD}
            resp = await client.delete_devices([other.device_id], auth)
            assert isinstance(resp, nio.DeleteDevicesResponse), resp
            who = await other.whoami()
            assert isinstance(who, nio.ErrorResponse), who
            assert who.status_code == "M_UNKNOWN_TOKEN", who
            resp = await client.logout(all_devices=True)
            assert isinstance(resp, nio.LogoutResponse), resp
        finally:
            await client.close()
            await other.close()

    asyncio.run(run())


# ---------------------------------------------------------------------------
# Capabilities, third-party IDs, probes, versions
# ---------------------------------------------------------------------------

def test_capabilities(server):
    token = register(server, unique("cap"))["access_token"]
    assert_error(server.get(f"{V3}/capabilities"), 401, "M_MISSING_TOKEN")
    for prefix in (V3, R0):
        resp = server.get(f"{prefix}/capabilities", headers=bearer(token))
        assert resp.status == 200, resp
        caps = resp.json["capabilities"]
        assert caps["m.change_password"] == {"enabled": True}
        assert caps["m.set_displayname"] == {"enabled": True}
        assert caps["m.set_avatar_url"] == {"enabled": True}
        assert caps["m.3pid_changes"] == {"enabled": False}
        assert caps["m.get_login_token"] == {"enabled": False}
        assert caps["m.profile_fields"]["enabled"] is True
        rv = caps["m.room_versions"]
        assert rv["default"] == "12"
        assert rv["available"] == {str(v): "stable" for v in range(1, 13)}


def test_third_party_identifiers(server):
    reg = register(server, unique("tp"))
    h = bearer(reg["access_token"])
    email = {"client_secret": "secret-1", "email": "a@example.org",
             "send_attempt": 1}
    msisdn = {"client_secret": "secret-1", "country": "GB",
              "phone_number": "07700900000", "send_attempt": 1}

    resp = server.get(f"{V3}/account/3pid", headers=h)
    assert resp.status == 200 and resp.json == {"threepids": []}
    assert server.get(f"{R0}/account/3pid", headers=h).status == 200

    cases = [
        ("/account/3pid/email/requestToken", email, h, 400,
         "M_THREEPID_MEDIUM_NOT_SUPPORTED"),
        ("/account/3pid/msisdn/requestToken", msisdn, h, 400,
         "M_THREEPID_MEDIUM_NOT_SUPPORTED"),
        ("/register/email/requestToken", email, None, 403,
         "M_THREEPID_DENIED"),
        ("/register/msisdn/requestToken", msisdn, None, 403,
         "M_THREEPID_DENIED"),
        ("/account/password/email/requestToken", email, None, 400,
         "M_THREEPID_NOT_FOUND"),
        ("/account/password/msisdn/requestToken", msisdn, None, 400,
         "M_THREEPID_NOT_FOUND"),
        ("/account/3pid/add", {"client_secret": "s", "sid": "1"}, h, 403,
         "M_THREEPID_AUTH_FAILED"),
        ("/account/3pid", {"three_pid_creds": {"client_secret": "s",
                                               "sid": "1"}}, h, 403,
         "M_THREEPID_AUTH_FAILED"),
        ("/account/3pid/bind", {"client_secret": "s", "sid": "1",
                                "id_server": "id.example",
                                "id_access_token": "t"}, h, 403,
         "M_THREEPID_DENIED"),
    ]
    for path, body, headers, status, errcode in cases:
        assert_error(server.post(V3 + path, json=body, headers=headers),
                     status, errcode)
    for path in ("/account/3pid/delete", "/account/3pid/unbind"):
        resp = server.post(V3 + path, json={"medium": "email",
                                            "address": "a@example.org"},
                           headers=h)
        assert resp.status == 200, resp
        assert resp.json == {"id_server_unbind_result": "no-support"}
        assert_error(server.post(V3 + path, json={"medium": "pigeon",
                                                  "address": "x"},
                                 headers=h), 400, "M_INVALID_PARAM")
        assert_error(server.post(V3 + path, json={"medium": "email"},
                                 headers=h), 400, "M_MISSING_PARAM")
    # Bodies are checked before the refusal.
    assert_error(server.post(f"{V3}/register/email/requestToken",
                             json={"email": "a@example.org",
                                   "send_attempt": 1}),
                 400, "M_MISSING_PARAM")
    assert_error(server.post(f"{V3}/register/email/requestToken",
                             json=dict(email, client_secret="bad secret!")),
                 400, "M_INVALID_PARAM")
    assert_error(server.post(f"{V3}/register/email/requestToken",
                             json=dict(email, send_attempt="1")),
                 400, "M_INVALID_PARAM")
    assert_error(server.post(f"{V3}/account/3pid/add", json={}), 401,
                 "M_MISSING_TOKEN")


def test_client_startup_probes(server):
    for path in ("/_matrix/client/unstable/org.matrix.msc2965/auth_issuer",
                 "/_matrix/client/v1/auth_metadata"):
        assert_error(server.get(path), 404, "M_UNRECOGNIZED")
    token = register(server, unique("probe"))["access_token"]
    h = bearer(token)
    for path, want in (("/thirdparty/protocols", {}),
                       ("/voip/turnServer", {}),
                       ("/pushers", {"pushers": []})):
        assert_error(server.get(V3 + path), 401, "M_MISSING_TOKEN")
        resp = server.get(V3 + path, headers=h)
        assert resp.status == 200 and resp.json == want, (path, resp)
        assert server.get(R0 + path, headers=h).json == want

    versions = server.get("/_matrix/client/versions").json["versions"]
    for v in ("v1.1", "v1.2", "v1.3", "v1.9"):
        assert v in versions
    # Authenticated media is not served yet, so v1.11 must not be claimed.
    assert "v1.11" not in versions


# ---------------------------------------------------------------------------
# Shared-secret registration
# ---------------------------------------------------------------------------

def test_shared_secret_registration(server):
    name = unique("ss")
    resp = register_shared(server, name, displayname="Shared Secret")
    assert resp.status == 200, resp
    body = resp.json
    assert body["user_id"] == f"@{name}:{server.server_name}"
    assert body["home_server"] == server.server_name
    assert body["device_id"] and body["access_token"]
    assert whoami(server, body["access_token"]).json["user_id"] == \
        body["user_id"]
    assert server.get(f"{V3}/profile/{q(body['user_id'])}").json == \
        {"displayname": "Shared Secret"}
    assert login(server, name).status == 200
    # Not an admin.
    assert_error(server.get(f"{ADMIN}/registration_tokens",
                            headers=bearer(body["access_token"])),
                 403, "M_FORBIDDEN")

    # Bad MAC: 403, and the nonce is spent anyway.
    n = nonce(server)
    user = unique("ss")
    good = {"nonce": n, "username": user, "password": PASSWORD,
            "admin": False,
            "mac": shared_secret_mac(server.shared_secret, n, user,
                                     PASSWORD, False)}
    bad = dict(good, mac=shared_secret_mac("wrong secret", n, user,
                                           PASSWORD, False))
    assert_error(server.post(f"{ADMIN}/register", json=bad), 403,
                 "M_FORBIDDEN")
    assert_error(server.post(f"{ADMIN}/register", json=good), 400,
                 "M_UNKNOWN")
    # The MAC covers the admin flag.
    n = nonce(server)
    forged = {"nonce": n, "username": user, "password": PASSWORD,
              "admin": True,
              "mac": shared_secret_mac(server.shared_secret, n, user,
                                       PASSWORD, False)}
    assert_error(server.post(f"{ADMIN}/register", json=forged), 403,
                 "M_FORBIDDEN")

    # Replayed nonce.
    n = nonce(server)
    good = {"nonce": n, "username": user, "password": PASSWORD,
            "admin": False,
            "mac": shared_secret_mac(server.shared_secret, n, user,
                                     PASSWORD, False)}
    assert server.post(f"{ADMIN}/register", json=good).status == 200
    replay = dict(good, username=unique("ss"))
    replay["mac"] = shared_secret_mac(server.shared_secret, n,
                                      replay["username"], PASSWORD, False)
    assert_error(server.post(f"{ADMIN}/register", json=replay), 400,
                 "M_UNKNOWN")
    assert_error(server.post(f"{ADMIN}/register",
                             json=dict(good, nonce="0" * 32)), 400,
                 "M_UNKNOWN")
    # Taken name (with a fresh nonce and a valid MAC).
    assert_error(register_shared(server, user), 400, "M_USER_IN_USE")
    assert_error(server.post(f"{ADMIN}/register",
                             json={"nonce": nonce(server)}), 400,
                 "M_MISSING_PARAM")
    assert_error(server.post(f"{ADMIN}/register",
                             json={"nonce": nonce(server), "username": 3,
                                   "password": PASSWORD, "mac": "00"}),
                 400, "M_INVALID_PARAM")

    # The admin flag makes the admin API usable.
    admin = make_admin(server)
    resp = server.get(f"{ADMIN}/registration_tokens",
                      headers=bearer(admin["access_token"]))
    assert resp.status == 200 and resp.json == {"registration_tokens": []}


def test_shared_secret_registration_disabled(server_factory):
    srv = server_factory(start=False)
    srv.config["registration"]["shared_secret"] = None
    srv.write_config()
    srv.start()
    assert_error(srv.get(f"{ADMIN}/register"), 400, "M_UNKNOWN")
    assert_error(srv.post(f"{ADMIN}/register", json={
        "nonce": "x", "username": "a", "password": "b", "mac": "c"}),
        400, "M_UNKNOWN")


# ---------------------------------------------------------------------------
# Load and rate limits
# ---------------------------------------------------------------------------

def test_parallel_registrations(server):
    names = [unique("par") for _ in range(100)]

    def one(name):
        return server.post(f"{V3}/register", json={
            "username": name, "password": PASSWORD,
            "auth": {"type": "m.login.dummy"}}, timeout=120)

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(one, names))
    assert all(r.status == 200 for r in results), \
        [r for r in results if r.status != 200][:3]
    assert len({r.json["user_id"] for r in results}) == 100
    assert len({r.json["access_token"] for r in results}) == 100
    for r in results[::20]:
        assert whoami(server, r.json["access_token"]).json["user_id"] == \
            r.json["user_id"]


def test_rate_limits(server_factory):
    srv = server_factory(start=False)
    srv.config["rate_limits"] = {"enabled": True}
    srv.write_config()
    srv.start()
    statuses = []
    limited = None
    for _ in range(6):
        resp = srv.post(f"{V3}/login", json={
            "type": "m.login.password", "user": "nobody",
            "password": "wrong"})
        statuses.append(resp.status)
        if resp.status == 429:
            limited = resp
            break
    assert limited is not None, statuses
    assert statuses[:3] == [403, 403, 403], statuses
    assert_error(limited, 429, "M_LIMIT_EXCEEDED")
    assert isinstance(limited.json["retry_after_ms"], int)
    assert limited.json["retry_after_ms"] > 0
    assert int(limited.header("Retry-After")) >= 1
    # Other classes are not affected.
    assert srv.get(f"{V3}/login").status == 200
