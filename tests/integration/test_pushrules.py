"""Push rules API and push actions, seen from outside: the predefined rule
set in the spec's order (also under r0 and with trailing slashes), user
rules placed with before/after and read back in order, enabling,
disabling and re-actioning server-default rules, deleting, the error
answers (unknown kind, missing rule, reserved IDs, bad bodies, bad
before/after), and the push actions the push thread stores for each
committed event (read straight from the database, since no endpoint shows
them yet): one per local member the event notifies, with highlight and
thread. Every test runs on SQLite and on PostgreSQL."""

import sqlite3
import time
import urllib.parse
import uuid

V3 = "/_matrix/client/v3"
R0 = "/_matrix/client/r0"

OVERRIDE_IDS = [
    ".m.rule.master", ".m.rule.suppress_notices", ".m.rule.invite_for_me",
    ".m.rule.member_event", ".m.rule.is_user_mention",
    ".m.rule.is_room_mention", ".m.rule.tombstone", ".m.rule.reaction",
    ".m.rule.room.server_acl", ".m.rule.suppress_edits",
]
UNDERRIDE_IDS = [
    ".m.rule.call", ".m.rule.encrypted_room_one_to_one",
    ".m.rule.room_one_to_one", ".m.rule.message", ".m.rule.encrypted",
]


def q(s):
    return urllib.parse.quote(s, safe="")


class User:
    def __init__(self, server):
        self.server = server
        resp = server.post(f"{V3}/register",
                           json={"auth": {"type": "m.login.dummy"},
                                 "username": f"u{uuid.uuid4().hex[:10]}"})
        assert resp.status == 200, resp
        self.user_id = resp.json["user_id"]
        self.token = resp.json["access_token"]

    def req(self, method, path, json=None, body=None):
        return self.server.request(method, path, json=json, body=body,
                                   headers={"Authorization":
                                            f"Bearer {self.token}"})

    def get(self, path):
        return self.req("GET", path)

    def put(self, path, json=None, body=None):
        return self.req("PUT", path, json=json, body=body)

    def rules(self):
        resp = self.get(f"{V3}/pushrules/")
        assert resp.status == 200, resp
        return resp.json["global"]

    def send(self, room_id, content, etype="m.room.message"):
        resp = self.put(f"{V3}/rooms/{q(room_id)}/send/{q(etype)}/"
                        f"t{uuid.uuid4().hex}", json=content)
        assert resp.status == 200, resp
        return resp.json["event_id"]


def ids(rules):
    return [r["rule_id"] for r in rules]


def rule_url(kind, rule_id, suffix="", prefix=V3):
    return f"{prefix}/pushrules/global/{kind}/{q(rule_id)}{suffix}"


# ---- reading the default rule set -------------------------------------------

def test_default_ruleset(server):
    alice = User(server)
    resp = alice.get(f"{V3}/pushrules/")
    assert resp.status == 200, resp
    rules = resp.json["global"]
    assert ids(rules["override"]) == OVERRIDE_IDS
    assert ids(rules["underride"]) == UNDERRIDE_IDS
    assert rules["content"] == [] and rules["room"] == [] and \
        rules["sender"] == []
    for rule in rules["override"] + rules["underride"]:
        assert rule["default"] is True
        assert isinstance(rule["enabled"], bool)
        assert isinstance(rule["actions"], list)
        assert isinstance(rule["conditions"], list)
    master = rules["override"][0]
    assert master["enabled"] is False and master["actions"] == []
    mention = rules["override"][4]
    assert mention["conditions"] == [{
        "kind": "event_property_contains",
        "key": "content.m\\.mentions.user_ids", "value": alice.user_id}]
    invite = rules["override"][2]
    assert invite["conditions"][2]["pattern"] == alice.user_id

    # /pushrules/global/, the r0 prefix and one kind give the same data.
    for path in (f"{V3}/pushrules/global/", f"{V3}/pushrules/global",
                 f"{R0}/pushrules/global/"):
        resp = alice.get(path)
        assert resp.status == 200, (path, resp)
        assert resp.json == rules
    resp = alice.get(f"{V3}/pushrules/global/underride/")
    assert resp.status == 200 and ids(resp.json) == UNDERRIDE_IDS

    resp = alice.get(rule_url("underride", ".m.rule.message"))
    assert resp.status == 200
    assert resp.json == rules["underride"][3]

    resp = server.get(f"{V3}/pushrules/")
    assert resp.status == 401 and resp.errcode == "M_MISSING_TOKEN"


# ---- user rules ---------------------------------------------------------------

def test_user_rules_before_after(server):
    alice = User(server)

    def content_ids():
        return ids(alice.rules()["content"])

    def put(rule_id, pattern, **params):
        query = ("?" + urllib.parse.urlencode(params)) if params else ""
        resp = alice.put(rule_url("content", rule_id) + query,
                         json={"pattern": pattern, "actions": ["notify"]})
        assert resp.status == 200, resp
        assert resp.json == {}

    put("cake", "cake")
    put("cakelie", "cake*lie", before="cake")
    assert content_ids() == ["cakelie", "cake"]
    put("z", "z", after="cake")
    assert content_ids() == ["cakelie", "cake", "z"]
    put("first", "f")  # new without before/after: most important
    assert content_ids() == ["first", "cakelie", "cake", "z"]
    put("mid", "m", after="first", before="z")  # before wins
    assert content_ids() == ["first", "cakelie", "cake", "mid", "z"]
    put("cake", "cakes")  # an update keeps its place
    assert content_ids() == ["first", "cakelie", "cake", "mid", "z"]
    put("cake", "cake", after="z")  # ... unless moved
    assert content_ids() == ["first", "cakelie", "mid", "z", "cake"]

    resp = alice.get(rule_url("content", "cakelie"))
    assert resp.status == 200
    assert resp.json == {"rule_id": "cakelie", "pattern": "cake*lie",
                         "actions": ["notify"], "enabled": True,
                         "default": False}

    # Override rules sit after .m.rule.master and before the other defaults.
    beer = {"conditions": [
                {"kind": "event_match", "key": "content.body",
                 "pattern": "beer"},
                {"kind": "room_member_count", "is": "<=10"}],
            "actions": ["notify", {"set_tweak": "sound",
                                   "value": "beeroclock.wav"}]}
    resp = alice.put(rule_url("override", "beer", prefix=R0), json=beer)
    assert resp.status == 200, resp
    override = alice.rules()["override"]
    assert ids(override) == [OVERRIDE_IDS[0], "beer"] + OVERRIDE_IDS[1:]
    assert override[1]["conditions"] == beer["conditions"]
    assert override[1]["actions"] == beer["actions"]
    assert override[1]["default"] is False

    # Room and sender rules are keyed by room and user ID.
    room_id = "!dj234r78wl45Gh4D:matrix.org"
    resp = alice.put(rule_url("room", room_id), json={"actions": []})
    assert resp.status == 200, resp
    resp = alice.put(rule_url("sender", "@spambot:matrix.org"),
                     json={"actions": ["dont_notify"]})
    assert resp.status == 200, resp
    rules = alice.rules()
    assert ids(rules["room"]) == [room_id]
    assert ids(rules["sender"]) == ["@spambot:matrix.org"]

    # Someone else's rules are untouched.
    bob = User(server)
    assert bob.rules()["content"] == []


def test_enable_and_actions(server):
    alice = User(server)
    bob = User(server)
    url = rule_url("override", ".m.rule.master", "/enabled")
    resp = alice.get(url)
    assert resp.status == 200 and resp.json == {"enabled": False}
    resp = alice.put(url, json={"enabled": True})
    assert resp.status == 200 and resp.json == {}
    assert alice.get(url).json == {"enabled": True}
    assert alice.rules()["override"][0]["enabled"] is True
    assert bob.get(url).json == {"enabled": False}

    url = rule_url("underride", ".m.rule.message", "/actions")
    assert alice.get(url).json == {"actions": ["notify"]}
    new = ["notify", {"set_tweak": "sound", "value": "bing"}]
    resp = alice.put(url, json={"actions": new})
    assert resp.status == 200, resp
    assert alice.get(url).json == {"actions": new}
    msg = alice.rules()["underride"][3]
    assert msg["rule_id"] == ".m.rule.message" and msg["actions"] == new
    assert msg["default"] is True and msg["enabled"] is True
    # Changing actions kept the enabled edit of the other rule, and vice versa.
    resp = alice.put(rule_url("underride", ".m.rule.message", "/enabled"),
                     json={"enabled": False})
    assert resp.status == 200
    msg = alice.rules()["underride"][3]
    assert msg["actions"] == new and msg["enabled"] is False

    # User rules too.
    resp = alice.put(rule_url("content", "tea"),
                     json={"pattern": "tea", "actions": ["notify"]})
    assert resp.status == 200
    resp = alice.put(rule_url("content", "tea", "/enabled"),
                     json={"enabled": False})
    assert resp.status == 200
    resp = alice.put(rule_url("content", "tea", "/actions"),
                     json={"actions": []})
    assert resp.status == 200
    assert alice.get(rule_url("content", "tea")).json == {
        "rule_id": "tea", "pattern": "tea", "actions": [], "enabled": False,
        "default": False}
    # Re-putting the rule keeps it disabled.
    resp = alice.put(rule_url("content", "tea"),
                     json={"pattern": "tea", "actions": ["notify"]})
    assert resp.status == 200
    assert alice.get(rule_url("content", "tea", "/enabled")).json == \
        {"enabled": False}


def test_delete(server):
    alice = User(server)
    resp = alice.put(rule_url("sender", "@x:example.org"), json={"actions": []})
    assert resp.status == 200
    resp = alice.req("DELETE", rule_url("sender", "@x:example.org"))
    assert resp.status == 200 and resp.json == {}
    assert alice.rules()["sender"] == []
    resp = alice.get(rule_url("sender", "@x:example.org"))
    assert resp.status == 404 and resp.errcode == "M_NOT_FOUND"
    resp = alice.req("DELETE", rule_url("sender", "@x:example.org"))
    assert resp.status == 404 and resp.errcode == "M_NOT_FOUND"
    resp = alice.req("DELETE", rule_url("override", ".m.rule.master"))
    assert resp.status == 404 and resp.errcode == "M_NOT_FOUND"
    assert ids(alice.rules()["override"]) == OVERRIDE_IDS


def test_errors(server):
    alice = User(server)
    ok = {"actions": ["notify"]}

    for method, body in (("GET", None), ("PUT", ok)):
        resp = alice.req(method, rule_url("sideways", "x"), json=body)
        assert resp.status == 400 and resp.errcode == "M_UNRECOGNIZED", resp
    resp = alice.get(rule_url("sideways", "x", "/enabled"))
    assert resp.status == 400 and resp.errcode == "M_UNRECOGNIZED"

    # Missing rules.
    for suffix in ("", "/enabled", "/actions"):
        resp = alice.get(rule_url("override", "nope", suffix))
        assert resp.status == 404 and resp.errcode == "M_NOT_FOUND", suffix
    resp = alice.put(rule_url("override", "nope", "/enabled"),
                     json={"enabled": True})
    assert resp.status == 404 and resp.errcode == "M_NOT_FOUND"
    resp = alice.put(rule_url("override", "nope", "/actions"), json=ok)
    assert resp.status == 404 and resp.errcode == "M_NOT_FOUND"
    # A default rule under the wrong kind does not exist either.
    resp = alice.get(rule_url("override", ".m.rule.message"))
    assert resp.status == 404 and resp.errcode == "M_NOT_FOUND"

    # Default rules: only enabled and actions may change.
    resp = alice.put(rule_url("underride", ".m.rule.message"),
                     json={"conditions": [], "actions": ["notify"]})
    assert resp.status == 400 and resp.errcode == "M_INVALID_PARAM"
    resp = alice.put(rule_url("content", ".my.rule"),
                     json={"pattern": "x", "actions": []})
    assert resp.status == 400 and resp.errcode == "M_INVALID_PARAM"
    assert ids(alice.rules()["underride"]) == UNDERRIDE_IDS
    assert alice.rules()["content"] == []

    # Slashes and backslashes are refused in rule IDs.
    for bad in ("a/b", "a\\b"):
        resp = alice.put(rule_url("override", bad), json=ok)
        assert resp.status == 400 and resp.errcode == "M_INVALID_PARAM", bad

    # before/after must name a user rule of the kind.
    resp = alice.put(rule_url("override", "r1"), json=ok)
    assert resp.status == 200
    for params in ({"before": "missing"}, {"after": "missing"},
                   {"before": ".m.rule.master"}, {"after": ".m.rule.tombstone"}):
        resp = alice.put(rule_url("override", "r2") + "?" +
                         urllib.parse.urlencode(params), json=ok)
        assert resp.status == 400 and resp.errcode == "M_UNKNOWN", params
    assert ids(alice.rules()["override"]) == \
        [OVERRIDE_IDS[0], "r1"] + OVERRIDE_IDS[1:]

    # Bodies.
    resp = alice.put(rule_url("override", "r3"), json={})
    assert resp.status == 400 and resp.errcode == "M_MISSING_PARAM"
    for actions in ("notify", ["explode"], [1], [{"value": 1}]):
        resp = alice.put(rule_url("override", "r3"), json={"actions": actions})
        assert resp.status == 400 and resp.errcode == "M_INVALID_PARAM", actions
    resp = alice.put(rule_url("override", "r3"),
                     json={"actions": [], "conditions": [{"key": "x"}]})
    assert resp.status == 400 and resp.errcode == "M_INVALID_PARAM"
    resp = alice.put(rule_url("override", "r3"),
                     json={"actions": [], "conditions": {}})
    assert resp.status == 400 and resp.errcode == "M_INVALID_PARAM"
    resp = alice.put(rule_url("content", "r3"), json=ok)
    assert resp.status == 400 and resp.errcode == "M_MISSING_PARAM"
    resp = alice.put(rule_url("content", "r3"),
                     json={"pattern": 5, "actions": []})
    assert resp.status == 400 and resp.errcode == "M_INVALID_PARAM"
    resp = alice.put(rule_url("override", ".m.rule.master", "/enabled"),
                     json={"enabled": "yes"})
    assert resp.status == 400 and resp.errcode == "M_INVALID_PARAM"
    resp = alice.put(rule_url("override", ".m.rule.master", "/enabled"),
                     json={})
    assert resp.status == 400 and resp.errcode == "M_MISSING_PARAM"
    resp = alice.put(rule_url("override", ".m.rule.master", "/actions"),
                     json={"actions": "notify"})
    assert resp.status == 400 and resp.errcode == "M_INVALID_PARAM"
    resp = alice.put(rule_url("override", "r3"), body=b"{not json")
    assert resp.status == 400 and resp.errcode == "M_NOT_JSON"
    assert ids(alice.rules()["override"]) == \
        [OVERRIDE_IDS[0], "r1"] + OVERRIDE_IDS[1:]
    assert alice.get(rule_url("override", ".m.rule.master", "/enabled")).json \
        == {"enabled": False}


# ---- push actions ---------------------------------------------------------------

def push_actions(server):
    """Rows of event_push_actions as (event_id, user_id, highlight, thread)."""
    sql = ("SELECT e.event_id, a.user_id, a.highlight, a.thread_id "
           "FROM event_push_actions a JOIN events e "
           "ON e.stream_ordering = a.stream_ordering "
           "ORDER BY a.stream_ordering, a.user_id")
    if server.engine == "postgres":
        out = server.pg.psql(f"COPY ({sql}) TO STDOUT",
                             dbconninfo=server.pg_conninfo)
        rows = []
        for line in out.splitlines():
            ev, user, hl, thread = line.split("\t")
            rows.append((ev, user, int(hl), None if thread == "\\N" else thread))
        return rows
    db = sqlite3.connect(str(server.data_dir / "myelin.db"), timeout=10)
    try:
        return [tuple(r) for r in db.execute(sql).fetchall()]
    finally:
        db.close()


def wait_for_rows(server, predicate, timeout=10.0):
    deadline = time.time() + timeout
    while True:
        rows = push_actions(server)
        if predicate(rows) or time.time() > deadline:
            return rows
        time.sleep(0.05)


def test_push_actions_stored(server):
    alice = User(server)
    bob = User(server)
    resp = alice.req("POST", f"{V3}/createRoom", json={"preset": "private_chat"})
    assert resp.status == 200, resp
    room = resp.json["room_id"]
    resp = alice.req("POST", f"{V3}/rooms/{q(room)}/invite",
                     json={"user_id": bob.user_id})
    assert resp.status == 200, resp
    resp = bob.req("POST", f"{V3}/join/{q(room)}", json={})
    assert resp.status == 200, resp

    plain = alice.send(room, {"msgtype": "m.text", "body": "hello"})
    notice = alice.send(room, {"msgtype": "m.notice", "body": "bot"})
    mention = alice.send(room, {"msgtype": "m.text", "body": "hey",
                                "m.mentions": {"user_ids": [bob.user_id]}})
    reply = alice.send(room, {"msgtype": "m.text", "body": "in thread",
                              "m.relates_to": {"rel_type": "m.thread",
                                               "event_id": plain}})
    from_bob = bob.send(room, {"msgtype": "m.text", "body": "hi alice"})
    # Rules apply when the push thread reaches an event: let it get there
    # before the rules change.
    wait_for_rows(server, lambda rs: any(r[0] == from_bob for r in rs))

    # Bob silences everything; then a message leaves no row for him.
    resp = bob.put(rule_url("override", ".m.rule.master", "/enabled"),
                   json={"enabled": True})
    assert resp.status == 200
    silenced = alice.send(room, {"msgtype": "m.text", "body": "anyone?"})
    marker = bob.send(room, {"msgtype": "m.text", "body": "marker"})

    rows = wait_for_rows(server, lambda rs: any(r[0] == marker for r in rs))
    by_event = {}
    for ev, user, hl, thread in rows:
        by_event.setdefault(ev, []).append((user, hl, thread))
    assert by_event.get(plain) == [(bob.user_id, 0, None)], rows
    assert notice not in by_event, rows
    assert by_event.get(mention) == [(bob.user_id, 1, None)], rows
    assert by_event.get(reply) == [(bob.user_id, 0, plain)], rows
    assert by_event.get(from_bob) == [(alice.user_id, 0, None)], rows
    assert silenced not in by_event, rows
    assert by_event.get(marker) == [(alice.user_id, 0, None)], rows
    # The invite notified bob (.m.rule.invite_for_me) though he was not joined.
    invites = [r for r in rows if r[1] == bob.user_id and r[0] not in
               (plain, mention, reply)]
    assert len(invites) == 1, rows
    # Nobody is notified of their own events.
    for ev, user, _, _ in rows:
        assert not (ev in (plain, mention, reply, silenced) and
                    user == alice.user_id)
