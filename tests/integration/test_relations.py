"""Relationships between events: GET /relations (pagination both ways
with tokens, rel_type and event type filters, recurse with its depth),
GET /threads (latest activity first, include=participated, paging), and
the bundled aggregations served by /event, /messages, /context and
/relations: the latest valid edit, thread summaries, references, and the
effect of redactions. Every test runs on SQLite and on PostgreSQL."""

import urllib.parse

from test_rooms import V3, User, assert_error, q, redact

V1 = "/_matrix/client/v1"


def relations(user, room_id, event_id, rel_type=None, event_type=None,
              **params):
    path = f"{V1}/rooms/{q(room_id)}/relations/{q(event_id)}"
    if rel_type:
        path += f"/{q(rel_type)}"
        if event_type:
            path += f"/{q(event_type)}"
    query = urllib.parse.urlencode(params)
    return user.get(path + (f"?{query}" if query else ""))


def threads(user, room_id, **params):
    query = urllib.parse.urlencode(params)
    return user.get(f"{V1}/rooms/{q(room_id)}/threads" +
                    (f"?{query}" if query else ""))


def related(user, room_id, parent, rel_type, body="child", etype=None,
            content=None, **rel):
    content = dict(content or {"msgtype": "m.text", "body": body})
    content["m.relates_to"] = {"rel_type": rel_type, "event_id": parent,
                               **rel}
    return user.send_ok(room_id, etype=etype or "m.room.message",
                        content=content)


def edit(user, room_id, parent, new_body):
    return related(user, room_id, parent, "m.replace", content={
        "msgtype": "m.text", "body": f"* {new_body}",
        "m.new_content": {"msgtype": "m.text", "body": new_body}})


def thread_reply(user, room_id, root, body):
    return related(user, room_id, root, "m.thread", body=body)


def event(user, room_id, event_id):
    resp = user.get(f"{V3}/rooms/{q(room_id)}/event/{q(event_id)}")
    assert resp.status == 200, resp
    return resp.json


def rels_of(ev):
    return ev.get("unsigned", {}).get("m.relations", {})


def ids(chunk):
    return [e["event_id"] for e in chunk]


def setup_room(server):
    alice = User(server)
    room_id = alice.create_room(preset="public_chat")
    return alice, room_id


# ---------------------------------------------------------------------------
# GET /relations
# ---------------------------------------------------------------------------

def test_relations_paginate_both_directions(server):
    alice, room_id = setup_room(server)
    root = alice.send_ok(room_id, "root")
    children = [related(alice, room_id, root, "m.reference", body=f"c{i}")
                for i in range(7)]
    alice.send_ok(room_id, "unrelated")

    # Backwards (the default): newest first, pages of 3 until no token.
    seen, token, pages = [], None, 0
    while True:
        params = {"limit": 3}
        if token:
            params["from"] = token
        resp = relations(alice, room_id, root, **params)
        assert resp.status == 200, resp
        pages += 1
        assert len(resp.json["chunk"]) <= 3
        if token:
            assert resp.json["prev_batch"] == token
        else:
            assert "prev_batch" not in resp.json
        assert "recursion_depth" not in resp.json
        seen += ids(resp.json["chunk"])
        token = resp.json.get("next_batch")
        if not token:
            break
        assert pages < 10
    assert seen == children[::-1]
    assert pages == 3

    # Forwards: oldest first.
    seen, token = [], None
    while True:
        params = {"limit": 4, "dir": "f"}
        if token:
            params["from"] = token
        resp = relations(alice, room_id, root, **params)
        assert resp.status == 200, resp
        seen += ids(resp.json["chunk"])
        token = resp.json.get("next_batch")
        if not token:
            break
    assert seen == children

    # An exact page leaves no next_batch behind.
    resp = relations(alice, room_id, root, limit=7)
    assert ids(resp.json["chunk"]) == children[::-1]
    assert "next_batch" not in resp.json

    # `to` stops the page: backwards from the newest down to (excluding)
    # the token's position, so the token of a page is a valid bound.
    first = relations(alice, room_id, root, limit=2)
    resp = relations(alice, room_id, root, dir="f", to=first.json["next_batch"])
    assert ids(resp.json["chunk"]) == children[:5]
    assert "next_batch" not in resp.json

    # A /messages token starts a page too.
    start = alice.messages(room_id, limit=1).json["start"]
    resp = relations(alice, room_id, root, **{"from": start, "limit": 2})
    assert ids(resp.json["chunk"]) == children[::-1][:2]

    # Bad parameters.
    assert_error(relations(alice, room_id, root, dir="x"), 400,
                 "M_INVALID_PARAM")
    assert_error(relations(alice, room_id, root, **{"from": "bogus"}), 400,
                 "M_INVALID_PARAM")
    assert_error(relations(alice, room_id, root, limit="x"), 400,
                 "M_INVALID_PARAM")
    assert_error(relations(alice, room_id, root, recurse="maybe"), 400,
                 "M_INVALID_PARAM")


def test_relations_filters_and_recurse(server):
    alice, room_id = setup_room(server)
    root = alice.send_ok(room_id, "root")
    t1 = thread_reply(alice, room_id, root, "t1")
    ref = related(alice, room_id, root, "m.reference", body="ref")
    react = related(alice, room_id, root, "m.annotation",
                    etype="m.reaction", content={}, key="👍")
    t2 = thread_reply(alice, room_id, root, "t2")
    # Children of children: an edit of a thread reply, a reference to it,
    # and a reference to that reference (depth 3), then depth 4.
    t1_edit = edit(alice, room_id, t1, "t1 edited")
    t1_ref = related(alice, room_id, t1, "m.reference", body="ref of t1")
    d3 = related(alice, room_id, t1_ref, "m.reference", body="depth 3")
    d4 = related(alice, room_id, d3, "m.reference", body="depth 4")

    resp = relations(alice, room_id, root, limit=50)
    assert set(ids(resp.json["chunk"])) == {t1, ref, react, t2}

    resp = relations(alice, room_id, root, "m.thread", limit=50)
    assert ids(resp.json["chunk"]) == [t2, t1]
    resp = relations(alice, room_id, root, "m.annotation", "m.reaction")
    assert ids(resp.json["chunk"]) == [react]
    assert resp.json["chunk"][0]["content"]["m.relates_to"]["key"] == "👍"
    resp = relations(alice, room_id, root, "m.annotation", "m.room.message")
    assert resp.json["chunk"] == []
    resp = relations(alice, room_id, root, "m.unknown")
    assert resp.status == 200 and resp.json["chunk"] == []

    resp = relations(alice, room_id, root, recurse="true", limit=50)
    assert resp.json["recursion_depth"] == 3
    assert set(ids(resp.json["chunk"])) == {
        t1, ref, react, t2, t1_edit, t1_ref, d3}
    assert d4 not in ids(resp.json["chunk"])
    resp = relations(alice, room_id, root, recurse="false", limit=50)
    assert resp.json["recursion_depth"] == 1
    assert set(ids(resp.json["chunk"])) == {t1, ref, react, t2}

    # Filters apply at every level: t1_ref and d3 are references, but
    # they reach the root only through the thread reply t1, so filtering
    # on m.reference from the root leaves them out.
    resp = relations(alice, room_id, root, "m.reference", recurse="true",
                     limit=50)
    assert set(ids(resp.json["chunk"])) == {ref}
    resp = relations(alice, room_id, t1, "m.reference", recurse="true",
                     limit=50)
    assert ids(resp.json["chunk"]) == [d4, d3, t1_ref]

    # Children paged while recursing, with tokens.
    got, token = [], None
    while True:
        params = {"recurse": "true", "limit": 2}
        if token:
            params["from"] = token
        resp = relations(alice, room_id, root, **params)
        got += ids(resp.json["chunk"])
        token = resp.json.get("next_batch")
        if not token:
            break
    assert got == [d3, t1_ref, t1_edit, t2, react, ref, t1]


def test_relations_permissions_and_unknown(server):
    alice, room_id = setup_room(server)
    root = alice.send_ok(room_id, "root")
    related(alice, room_id, root, "m.reference")
    other_room = alice.create_room()
    elsewhere = alice.send_ok(other_room, "elsewhere")

    bob = User(server)
    assert_error(relations(bob, room_id, root), 403, "M_FORBIDDEN")
    assert_error(threads(bob, room_id), 403, "M_FORBIDDEN")
    assert bob.join(room_id).status == 200
    assert len(relations(bob, room_id, root).json["chunk"]) == 1
    assert bob.leave(room_id).status == 200
    # A former member reads what it could see up to its leave, nothing later.
    related(alice, room_id, root, "m.reference")
    assert len(relations(bob, room_id, root).json["chunk"]) == 1
    assert len(relations(alice, room_id, root).json["chunk"]) == 2
    # Forgetting the room ends that.
    assert bob.post(f"{V3}/rooms/{q(room_id)}/forget").status == 200
    assert_error(relations(bob, room_id, root), 403, "M_FORBIDDEN")

    assert_error(relations(alice, room_id, "$nope"), 404, "M_NOT_FOUND")
    assert_error(relations(alice, room_id, elsewhere), 404, "M_NOT_FOUND")
    assert_error(relations(alice, "!nope:example.org", root), 403,
                 "M_FORBIDDEN")
    assert_error(threads(alice, room_id, include="some"), 400,
                 "M_INVALID_PARAM")
    assert_error(threads(alice, room_id, limit="0"), 400, "M_INVALID_PARAM")
    resp = server.get(f"{V1}/rooms/{q(room_id)}/relations/{q(root)}")
    assert_error(resp, 401, "M_MISSING_TOKEN")


def test_relations_in_other_room_ignored(server):
    alice, room_id = setup_room(server)
    root = alice.send_ok(room_id, "root")
    other = alice.create_room()
    # A child in another room does not relate (spec: same room only), and
    # sending one is refused (test_room_checks.py has the details).
    resp = alice.send(other, content={
        "msgtype": "m.text", "body": "cross-room",
        "m.relates_to": {"rel_type": "m.reference", "event_id": root}})
    assert_error(resp, 400, "M_UNKNOWN")
    assert relations(alice, room_id, root).json["chunk"] == []
    assert rels_of(event(alice, room_id, root)) == {}


# ---------------------------------------------------------------------------
# GET /threads
# ---------------------------------------------------------------------------

def test_threads_list(server):
    alice, room_id = setup_room(server)
    bob = User(server)
    assert bob.join(room_id).status == 200
    r1 = alice.send_ok(room_id, "root 1")
    r2 = bob.send_ok(room_id, "root 2")
    r3 = bob.send_ok(room_id, "root 3")
    alice.send_ok(room_id, "no thread here")
    thread_reply(bob, room_id, r1, "in 1")
    thread_reply(bob, room_id, r2, "in 2")
    thread_reply(bob, room_id, r3, "in 3")
    thread_reply(alice, room_id, r2, "alice in 2")

    resp = threads(alice, room_id)
    assert resp.status == 200, resp
    assert ids(resp.json["chunk"]) == [r2, r3, r1]  # latest activity first
    assert "next_batch" not in resp.json
    summary = rels_of(resp.json["chunk"][0])["m.thread"]
    assert summary["count"] == 2
    assert summary["current_user_participated"] is True
    assert summary["latest_event"]["content"]["body"] == "alice in 2"

    # Participated: alice started r1 and replied in r2, not in r3.
    resp = threads(alice, room_id, include="participated")
    assert ids(resp.json["chunk"]) == [r2, r1]
    resp = threads(bob, room_id, include="participated")
    assert ids(resp.json["chunk"]) == [r2, r3, r1]
    carol = User(server)
    assert carol.join(room_id).status == 200
    assert threads(carol, room_id, include="participated").json["chunk"] == []
    resp = threads(carol, room_id, include="all")
    assert rels_of(resp.json["chunk"][0])["m.thread"][
        "current_user_participated"] is False

    # Paging by one, and activity moving a thread to the front.
    thread_reply(bob, room_id, r1, "r1 again")
    got, token = [], None
    while True:
        params = {"limit": 1}
        if token:
            params["from"] = token
        resp = threads(alice, room_id, **params)
        assert len(resp.json["chunk"]) <= 1
        got += ids(resp.json["chunk"])
        token = resp.json.get("next_batch")
        if not token:
            break
    assert got == [r1, r2, r3]
    assert_error(threads(alice, room_id, **{"from": "zzz"}), 400,
                 "M_INVALID_PARAM")


# ---------------------------------------------------------------------------
# Bundled aggregations
# ---------------------------------------------------------------------------

def test_edits_bundled(server):
    alice, room_id = setup_room(server)
    bob = User(server)
    assert bob.join(room_id).status == 200
    orig = alice.send_ok(room_id, "original")
    e1 = edit(alice, room_id, orig, "first edit")
    e2 = edit(alice, room_id, orig, "second edit")
    # Invalid edits: another sender, another type, no m.new_content.
    edit(bob, room_id, orig, "bob's edit")
    related(alice, room_id, orig, "m.replace", etype="m.room.other",
            content={"body": "x", "m.new_content": {"body": "x"}})
    related(alice, room_id, orig, "m.replace", body="no new content")

    ev = event(alice, room_id, orig)
    assert ev["content"]["body"] == "original"  # content left intact
    bundled = rels_of(ev)["m.replace"]
    assert bundled["event_id"] == e2
    assert bundled["content"]["m.new_content"]["body"] == "second edit"
    assert bundled["sender"] == alice.user_id
    assert "m.relations" not in ev.get("unsigned", {}).get("m.replace", {})

    # The same through /messages and /context, and the edit itself gets
    # no aggregation of its own.
    chunk = alice.messages(room_id, limit=20).json["chunk"]
    by_id = {e["event_id"]: e for e in chunk}
    assert rels_of(by_id[orig])["m.replace"]["event_id"] == e2
    assert rels_of(by_id[e1]) == {}
    resp = alice.get(f"{V3}/rooms/{q(room_id)}/context/{q(e1)}?limit=20")
    assert resp.status == 200, resp
    ctx = {e["event_id"]: e for e in
           resp.json["events_before"] + resp.json["events_after"]}
    assert rels_of(ctx[orig])["m.replace"]["event_id"] == e2
    resp = alice.get(f"{V3}/rooms/{q(room_id)}/context/{q(orig)}")
    assert rels_of(resp.json["event"])["m.replace"]["event_id"] == e2

    # Redacting the latest edit falls back to the one before.
    assert redact(alice, room_id, e2).status == 200
    assert rels_of(event(alice, room_id, orig))["m.replace"]["event_id"] == e1
    assert e2 not in ids(relations(alice, room_id, orig, limit=50).json["chunk"])
    assert redact(alice, room_id, e1).status == 200
    assert "m.replace" not in rels_of(event(alice, room_id, orig))

    # A redacted original gets no edit bundled, even a valid one.
    e3 = edit(alice, room_id, orig, "third edit")
    assert rels_of(event(alice, room_id, orig))["m.replace"]["event_id"] == e3
    assert redact(alice, room_id, orig).status == 200
    ev = event(alice, room_id, orig)
    assert "redacted_because" in ev["unsigned"]
    assert "m.replace" not in rels_of(ev)


def test_thread_summary_and_references(server):
    alice, room_id = setup_room(server)
    bob = User(server)
    assert bob.join(room_id).status == 200
    root = bob.send_ok(room_id, "root")
    replies = [thread_reply(bob, room_id, root, f"reply {i}")
               for i in range(3)]
    last_edit = edit(bob, room_id, replies[-1], "reply 2 edited")
    refs = [related(alice, room_id, root, "m.reference", body=f"ref {i}")
            for i in range(2)]

    ev = event(alice, room_id, root)
    rels = rels_of(ev)
    assert rels["m.thread"]["count"] == 3
    assert rels["m.thread"]["current_user_participated"] is False
    latest = rels["m.thread"]["latest_event"]
    assert latest["event_id"] == replies[-1]
    # The latest event carries its own aggregations (its edit).
    assert rels_of(latest)["m.replace"]["event_id"] == last_edit
    assert rels["m.reference"] == {"chunk": [{"event_id": r} for r in refs]}
    assert "m.annotation" not in rels

    # The sender of the root participates; so does anyone replying.
    assert rels_of(event(bob, room_id, root))["m.thread"][
        "current_user_participated"] is True
    mine = thread_reply(alice, room_id, root, "alice joins in")
    rels = rels_of(event(alice, room_id, root))
    assert rels["m.thread"]["count"] == 4
    assert rels["m.thread"]["current_user_participated"] is True
    assert rels["m.thread"]["latest_event"]["event_id"] == mine

    # Redacted children no longer count.
    assert redact(alice, room_id, mine).status == 200
    assert redact(alice, room_id, refs[0]).status == 200
    rels = rels_of(event(alice, room_id, root))
    assert rels["m.thread"]["count"] == 3
    assert rels["m.thread"]["latest_event"]["event_id"] == replies[-1]
    assert rels["m.thread"]["current_user_participated"] is False
    assert rels["m.reference"] == {"chunk": [{"event_id": refs[1]}]}

    # /relations serves children with their aggregations.
    resp = relations(alice, room_id, root, "m.thread")
    by_id = {e["event_id"]: e for e in resp.json["chunk"]}
    assert rels_of(by_id[replies[-1]])["m.replace"]["event_id"] == last_edit

    # Thread replies are no thread roots themselves; state events get
    # nothing bundled.
    chunk = alice.messages(room_id, limit=30).json["chunk"]
    by_id = {e["event_id"]: e for e in chunk}
    assert "m.thread" not in rels_of(by_id[replies[0]])
    assert rels_of(by_id[root])["m.thread"]["count"] == 3
    create = [e for e in chunk if e["type"] == "m.room.create"]
    if create:
        assert rels_of(create[0]) == {}


def test_relation_to_state_event_not_bundled(server):
    alice, room_id = setup_room(server)
    resp = alice.put_state(room_id, "m.room.topic", {"topic": "t"})
    assert resp.status == 200, resp
    topic = resp.json["event_id"]
    related(alice, room_id, topic, "m.reference")
    assert rels_of(event(alice, room_id, topic)) == {}
    # /relations still lists the child.
    assert len(relations(alice, room_id, topic).json["chunk"]) == 1

