/*
 * Relationships between events (spec: Client-Server API "Forming
 * relationships between events" and the modules on threads, edits and
 * references): GET /relations for the children of an event, GET /threads
 * for a room's threads by latest activity, and the bundled aggregations
 * ("Aggregations of child events") that every endpoint serving timeline
 * events adds under unsigned["m.relations"].
 *
 * The relations index (schema 005) is written by svc/room when an event
 * is stored. Reading follows history visibility (visibility.c), as
 * elsewhere in the room endpoints: the parent must be visible, and
 * children and thread roots the user may not see are left out. Tokens
 * are the stream tokens of /messages ("s<N>"), so
 * a /messages token can start a /relations page as the spec allows.
 */
#include <stdlib.h>
#include <string.h>

#include "api/client/client.h"
#include "api/handlers.h"
#include "base/err.h"
#include "base/json.h"
#include "base/log.h"
#include "store/store.h"
#include "svc/room.h"
#include "svc/srv.h"

#define RELATIONS_DEFAULT_LIMIT 5
#define RELATIONS_MAX_LIMIT 1000
/* Levels followed with recurse=true; the spec asks for at least 3. */
#define RELATIONS_RECURSE_DEPTH 3
#define THREADS_DEFAULT_LIMIT 5
#define THREADS_MAX_LIMIT 100

static bool streq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

/* ---- bundled aggregations ---- */

/* content["m.relates_to"]["rel_type"] of a served event, or NULL. */
static const char *rel_type_of(const json_t *ev)
{
    const json_t *rel = json_get_obj(json_get_obj(ev, "content"), "m.relates_to");
    return rel ? json_get_str(rel, "rel_type") : NULL;
}

/* The m.relations object collected for `id` in `rels`, created on first use. */
static json_t *relations_of(json_t *rels, const char *id)
{
    json_t *o = json_object_get(rels, id);
    if (!o) {
        o = json_object();
        json_object_set_new(rels, id, o);
    }
    return o;
}

/*
 * Spec "Validity of replacement events": same sender and type as the
 * original, no state key, and m.new_content present. The room is checked
 * by the store, and originals that are edits themselves never get here.
 * Returns the edit in the client format (a new reference) or NULL.
 */
static json_t *valid_edit(const json_t *parent, const struct store_relation_child *ch)
{
    if (!ch->json || !streq(ch->sender, json_get_str(parent, "sender")) ||
        !streq(ch->event_type, json_get_str(parent, "type"))) {
        return NULL;
    }
    json_error_t e;
    json_t *pdu = json_loads(ch->json, 0, &e);
    if (!pdu) {
        return NULL;
    }
    json_t *ev = NULL;
    if (!json_object_get(pdu, "state_key") &&
        json_get_obj(json_get_obj(pdu, "content"), "m.new_content")) {
        ev = client__event(pdu, ch->event_id);
    }
    json_decref(pdu);
    return ev;
}

/* Spec "Server-side aggregation of m.replace relationships": the most
 * recent edit by origin_server_ts, ties to the larger event ID. */
static bool edit_newer(const json_t *cand, const json_t *cur)
{
    long long a = 0, b = 0;
    json_get_int(cand, "origin_server_ts", &a);
    json_get_int(cur, "origin_server_ts", &b);
    if (a != b) {
        return a > b;
    }
    return strcmp(json_get_str(cand, "event_id"), json_get_str(cur, "event_id")) > 0;
}

/*
 * Adds the m.replace and m.reference aggregations of the children of
 * ids[0..n) to `rels`. `by_id` maps each ID to its served event.
 */
static int bundle_children(struct req *r, json_t *by_id, json_t *rels, const char **ids, size_t n)
{
    struct store_relation_child *ch = NULL;
    size_t n_ch = 0;
    int rc = store_relation_children(r->db, &r->arena, ids, n, &ch, &n_ch);
    if (rc < 0) {
        return rc;
    }
    for (size_t i = 0; i < n_ch; i++) {
        json_t *parent = json_object_get(by_id, ch[i].parent_id);
        if (!parent) {
            continue;
        }
        if (streq(ch[i].rel_type, "m.reference")) {
            json_t *agg = relations_of(rels, ch[i].parent_id);
            json_t *ref = json_object_get(agg, "m.reference");
            if (!ref) {
                ref = json_pack("{s:[]}", "chunk");
                json_object_set_new(agg, "m.reference", ref);
            }
            json_array_append_new(json_object_get(ref, "chunk"),
                                  json_pack("{s:s}", "event_id", ch[i].event_id));
            continue;
        }
        /* m.replace. A redacted original gets no edit bundled (spec
         * "Redactions of edited events"). */
        if (json_object_get(json_object_get(parent, "unsigned"), "redacted_because")) {
            continue;
        }
        json_t *edit = valid_edit(parent, &ch[i]);
        if (!edit) {
            continue;
        }
        json_t *agg = relations_of(rels, ch[i].parent_id);
        json_t *cur = json_object_get(agg, "m.replace");
        if (!cur || edit_newer(edit, cur)) {
            json_object_set_new(agg, "m.replace", edit);
        } else {
            json_decref(edit);
        }
    }
    return 0;
}

static void bundle(struct req *r, json_t *events, int level);

/*
 * Adds the m.thread aggregations (spec "Server-side aggregation of
 * m.thread relationships") of roots[0..n) to `rels`. The latest event
 * carries its own aggregations, one level down.
 */
static int bundle_threads(struct req *r, json_t *by_id, json_t *rels, const char **roots,
                          size_t n, int level)
{
    struct store_thread *ts = NULL;
    size_t n_ts = 0;
    int rc = store_thread_summaries(r->db, &r->arena, r->auth.user_id, roots, n, &ts, &n_ts);
    if (rc < 0) {
        return rc;
    }
    json_t *latest = json_arena(&r->arena, json_array());
    for (size_t i = 0; i < n_ts; i++) {
        json_t *root = json_object_get(by_id, ts[i].root_id);
        json_t *ev = ts[i].latest.json ? client__stored_event(r, &ts[i].latest) : NULL;
        if (!root || !ev) {
            json_decref(ev);
            continue;
        }
        bool mine = ts[i].participated || streq(json_get_str(root, "sender"), r->auth.user_id);
        json_object_set_new(relations_of(rels, ts[i].root_id), "m.thread",
                            json_pack("{s:O,s:I,s:b}", "latest_event", ev, "count",
                                      (json_int_t)ts[i].count, "current_user_participated",
                                      mine));
        json_array_append_new(latest, ev);
    }
    bundle(r, latest, level + 1);
    return 0;
}

/*
 * Bundles aggregations into the events of `events` (an array, or one
 * event). `level` 0 is the events a client asked for; the latest events
 * of threads are bundled at level 1, where threads are not summarised
 * again (m.thread cannot target a child event, so no deeper level exists).
 */
static void bundle(struct req *r, json_t *events, int level)
{
    size_t n = json_is_array(events) ? json_array_size(events) : 1;
    if (n == 0) {
        return;
    }
    const char **ids = arena_alloc(&r->arena, n * sizeof(*ids));
    const char **roots = arena_alloc(&r->arena, n * sizeof(*roots));
    size_t n_ids = 0, n_roots = 0;
    json_t *by_id = json_object(), *rels = json_object();
    for (size_t i = 0; i < n; i++) {
        json_t *ev = json_is_array(events) ? json_array_get(events, i) : events;
        const char *id = json_get_str(ev, "event_id");
        /* State events get no aggregations (spec "Aggregations of child
         * events"), and edits and annotations no children of their own. */
        if (!json_is_object(ev) || !id || json_object_get(ev, "state_key")) {
            continue;
        }
        const char *rel = rel_type_of(ev);
        if (streq(rel, "m.replace") || streq(rel, "m.annotation")) {
            continue;
        }
        if (!json_object_get(by_id, id)) {
            json_object_set(by_id, id, ev);
            ids[n_ids++] = id;
            /* A thread root is an event without a relation of its own
             * (module "Threading"). */
            if (!rel && level == 0) {
                roots[n_roots++] = id;
            }
        }
    }
    int rc = 0;
    if (n_ids) {
        rc = bundle_children(r, by_id, rels, ids, n_ids);
    }
    if (rc == 0 && n_roots) {
        rc = bundle_threads(r, by_id, rels, roots, n_roots, level);
    }
    if (rc < 0) {
        LOG_WARN("relations", "bundled aggregations skipped: %s", err_message(rc));
    } else {
        const char *id;
        json_t *agg;
        json_object_foreach(rels, id, agg)
        {
            json_t *ev = json_object_get(by_id, id);
            json_t *u = json_object_get(ev, "unsigned");
            if (!json_is_object(u)) {
                u = json_object();
                json_object_set_new(ev, "unsigned", u);
            }
            json_object_set(u, "m.relations", agg);
        }
    }
    json_decref(by_id);
    json_decref(rels);
}

void client__bundle_aggregations(struct req *r, json_t *events) { bundle(r, events, 0); }

/* ---- query parameters ---- */

/* Parses ?limit= into *limit (default `def`, capped at `max`); `min` is
 * the smallest value accepted. 0 or the M_INVALID_PARAM failure. */
static int parse_limit(struct req *r, long def, long min, long max, long *limit)
{
    *limit = def;
    const char *s = req_query(r, "limit");
    if (!s) {
        return 0;
    }
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || end == s || v < min) {
        return req_fail(r, -ERR_INVALID_PARAM, "'limit' must be an integer of at least %ld",
                        min);
    }
    *limit = v > max ? max : v;
    return 0;
}

/* Parses an optional stream token query argument; *set tells if given.
 * An empty value counts as absent, as for /messages. */
static int parse_token(struct req *r, const char *key, int64_t *out, bool *set)
{
    const char *s = req_query(r, key);
    *set = false;
    if (!s || !*s) {
        return 0;
    }
    if (!client__parse_stream_token(s, out)) {
        return req_fail(r, -ERR_INVALID_PARAM, "Unknown pagination token in '%s'", key);
    }
    *set = true;
    return 0;
}

/* ---- GET /relations ---- */

/*
 * GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}[/{relType}
 * [/{eventType}]] (spec "Relationships API"). Children come in stream
 * order, newest first by default (dir=b). Tokens follow /messages: "s<N>"
 * backwards gives N and older, forwards N+1 and newer. next_batch is
 * present only when more children exist; prev_batch echoes `from`.
 */
int client_relations(struct req *r)
{
    const char *room_id = r->param[0].p, *event_id = r->param[1].p;
    const char *rel_type = r->n_params > 2 ? r->param[2].p : NULL;
    const char *event_type = r->n_params > 3 ? r->param[3].p : NULL;
    struct client_room_access acc;
    int rc = client__room_access(r, room_id, &acc);
    if (rc) {
        return rc;
    }
    const char *dir = req_query(r, "dir");
    if (dir && !streq(dir, "b") && !streq(dir, "f")) {
        return req_fail(r, -ERR_INVALID_PARAM, "'dir' must be 'b' or 'f'");
    }
    bool backwards = !dir || streq(dir, "b");
    const char *recurse_s = req_query(r, "recurse");
    if (recurse_s && !streq(recurse_s, "true") && !streq(recurse_s, "false")) {
        return req_fail(r, -ERR_INVALID_PARAM, "'recurse' must be 'true' or 'false'");
    }
    int depth = streq(recurse_s, "true") ? RELATIONS_RECURSE_DEPTH : 1;
    long limit;
    int64_t from = 0, to = 0;
    bool has_from, has_to;
    rc = parse_limit(r, RELATIONS_DEFAULT_LIMIT, 0, RELATIONS_MAX_LIMIT, &limit);
    if (!rc) {
        rc = parse_token(r, "from", &from, &has_from);
    }
    if (!rc) {
        rc = parse_token(r, "to", &to, &has_to);
    }
    if (rc) {
        return rc;
    }
    if (!has_from) {
        from = backwards ? rooms_stream_pos(r->srv->rooms) : 0;
    }

    struct store_event parent;
    struct store_room room;
    rc = client__room_event(r, room_id, event_id, &parent, &room);
    if (rc) {
        return rc;
    }
    bool visible;
    rc = client__event_visible(r, &acc, &parent, &visible);
    if (rc) {
        return rc;
    }
    if (!visible) {
        return req_fail(r, -ERR_NOT_FOUND, "Event not found");
    }

    struct store_event *evs = NULL;
    size_t n = 0;
    if (limit > 0) {
        /* One more than asked, to know whether a next page exists. The
         * store reads strictly before or after its bound. */
        struct store_relations_query q = {
            .parent_id = event_id,
            .room_nid = room.nid,
            .rel_type = rel_type,
            .event_type = event_type,
            .max_depth = depth,
            .from = backwards ? (from < INT64_MAX ? from + 1 : from) : from,
            .backwards = backwards,
            .limit = (int)limit + 1,
        };
        rc = store_relations_page(r->db, &r->arena, &q, &evs, &n);
        if (rc < 0) {
            return req_fail(r, rc, NULL);
        }
    }
    /* Children the user may not see are left out of the page; the
     * tokens still count them, so paging goes on past them. */
    bool *keep = arena_alloc(&r->arena, (n + 1) * sizeof(*keep));
    rc = client__visible_events(r, &acc, evs, n, keep);
    if (rc) {
        return rc;
    }
    json_t *chunk = json_array();
    bool more = n > (size_t)limit;
    int64_t last = from;
    for (size_t i = 0; i < n && i < (size_t)limit; i++) {
        if (has_to && (backwards ? evs[i].stream_ordering <= to : evs[i].stream_ordering > to)) {
            more = false;
            break;
        }
        last = evs[i].stream_ordering;
        json_t *ev = keep[i] ? client__stored_event(r, &evs[i]) : NULL;
        if (ev) {
            json_array_append_new(chunk, ev);
        }
    }
    if (more && has_to && n > (size_t)limit) {
        /* The extra row decides: is it still inside the `to` bound? */
        int64_t so = evs[limit].stream_ordering;
        more = backwards ? so > to : so <= to;
    }
    client__bundle_aggregations(r, chunk);

    json_t *body = json_object();
    json_object_set_new(body, "chunk", chunk);
    if (more) {
        json_object_set_new(body, "next_batch",
                            json_string(arena_printf(&r->arena, "s%lld",
                                                     (long long)(backwards ? last - 1 : last))));
    }
    if (has_from) {
        json_object_set_new(body, "prev_batch", json_string(req_query(r, "from")));
    }
    if (recurse_s) {
        json_object_set_new(body, "recursion_depth", json_integer(depth));
    }
    return req_json(r, 200, body);
}

/* ---- GET /threads ---- */

/*
 * GET /_matrix/client/v1/rooms/{roomId}/threads (spec "Querying threads
 * in a room"): thread roots, the most recently active first, each with its
 * bundled aggregations. include=participated keeps the threads the caller
 * started or replied in. next_batch "s<N>" continues with the threads
 * whose latest event is at N or older.
 */
int client_threads(struct req *r)
{
    const char *room_id = r->param[0].p;
    struct client_room_access acc;
    int rc = client__room_access(r, room_id, &acc);
    if (rc) {
        return rc;
    }
    const char *include = req_query(r, "include");
    if (include && !streq(include, "all") && !streq(include, "participated")) {
        return req_fail(r, -ERR_INVALID_PARAM, "'include' must be 'all' or 'participated'");
    }
    long limit;
    int64_t from = 0;
    bool has_from;
    rc = parse_limit(r, THREADS_DEFAULT_LIMIT, 1, THREADS_MAX_LIMIT, &limit);
    if (!rc) {
        rc = parse_token(r, "from", &from, &has_from);
    }
    if (rc) {
        return rc;
    }
    struct store_room room;
    rc = store_room_get(r->db, &r->arena, room_id, &room);
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    struct store_thread_root *roots = NULL;
    size_t n = 0;
    int64_t before = has_from && from < INT64_MAX ? from + 1 : INT64_MAX;
    rc = store_threads_list(r->db, &r->arena, room.nid,
                            streq(include, "participated") ? r->auth.user_id : NULL, before,
                            (int)limit + 1, &roots, &n);
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    /* Roots the user may not see are left out (history visibility). */
    json_t *chunk = json_array();
    for (size_t i = 0; i < n && i < (size_t)limit; i++) {
        bool visible;
        rc = client__event_visible(r, &acc, &roots[i].root, &visible);
        if (rc) {
            json_decref(chunk);
            return rc;
        }
        json_t *ev = visible ? client__stored_event(r, &roots[i].root) : NULL;
        if (ev) {
            json_array_append_new(chunk, ev);
        }
    }
    client__bundle_aggregations(r, chunk);
    json_t *body = json_object();
    json_object_set_new(body, "chunk", chunk);
    if (n > (size_t)limit) {
        json_object_set_new(body, "next_batch",
                            json_string(arena_printf(
                                &r->arena, "s%lld",
                                (long long)(roots[limit - 1].latest_stream - 1))));
    }
    return req_json(r, 200, body);
}

/* ---- checks on sending ---- */

/* Longest annotation key accepted, in characters, as Synapse. */
#define ANNOTATION_KEY_MAX 500

/*
 * Refuses relations a client should not send (spec "Forming relationships
 * between events", "Avoiding duplicate annotations", "Validation of
 * m.thread relationships"; Synapse's behaviour where the spec is silent):
 * the parent must be in the sender's room (a parent unknown here is
 * accepted only while other events of the room already relate to it), an
 * m.annotation needs a key and may not repeat a live annotation of the
 * same sender, type and key (M_DUPLICATE_ANNOTATION), and a thread cannot
 * start from an event that has a relation itself. Senders who are not
 * joined are left to the auth rules, so nothing is said about events of
 * rooms they cannot see. Returns 0 or the 400 failure set on r.
 */
int client__check_relation(struct req *r, const char *room_id, const char *type,
                           const json_t *content)
{
    const json_t *rel = json_get_obj(content, "m.relates_to");
    const char *rel_type = rel ? json_get_str(rel, "rel_type") : NULL;
    const char *parent_id = rel ? json_get_str(rel, "event_id") : NULL;
    if (!rel_type || !parent_id) {
        return 0; /* no relation (a reply's m.in_reply_to is not one) */
    }
    const char *membership = NULL;
    if (room_membership(r, room_id, r->auth.user_id, &membership) != 0 ||
        !streq(membership, "join")) {
        return 0;
    }
    struct store_room room;
    struct store_event parent;
    int rc = store_room_get(r->db, &r->arena, room_id, &room);
    if (rc == 0) {
        rc = store_event_get(r->db, &r->arena, parent_id, &parent);
    }
    if (rc == 0 && (parent.room_nid != room.nid)) {
        return req_fail(r, -ERR_BAD_REQUEST, "Relations must be in the same room");
    }
    bool known = rc == 0 && parent.json && !parent.rejected;
    if (rc == -ERR_NOT_FOUND || (rc == 0 && !known)) {
        rc = store_relation_target_known(r->db, parent_id, room.nid);
        if (rc == -ERR_NOT_FOUND) {
            return req_fail(r, -ERR_BAD_REQUEST, "Can't send relation to unknown event");
        }
    }
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    if (streq(rel_type, "m.annotation")) {
        const char *key = json_get_str(rel, "key");
        if (!key) {
            return req_fail(r, -ERR_BAD_REQUEST, "Missing aggregation key");
        }
        size_t chars = 0;
        for (const char *k = key; *k; k++) {
            chars += ((unsigned char)*k & 0xC0) != 0x80;
        }
        if (chars > ANNOTATION_KEY_MAX) {
            return req_fail(r, -ERR_BAD_REQUEST, "Aggregation key is too long");
        }
        rc = store_annotation_exists(r->db, parent_id, type, r->auth.user_id, key);
        if (rc == 0) {
            return req_fail(r, -ERR_DUPLICATE_ANNOTATION, "Can't send the same reaction twice");
        }
        return rc == -ERR_NOT_FOUND ? 0 : req_fail(r, rc, NULL);
    }
    if (streq(rel_type, "m.thread") && known) {
        /* Module "Threading": a parent with m.relates_to.rel_type is
         * itself a child, and threads do not nest. A redacted parent has
         * lost its relation and may start one. */
        json_error_t e;
        json_t *pdu = json_arena(&r->arena, json_loads(parent.json, 0, &e));
        const json_t *prel = json_get_obj(json_get_obj(pdu, "content"), "m.relates_to");
        if (prel && json_get_str(prel, "rel_type") && json_get_str(prel, "event_id")) {
            return req_fail(r, -ERR_BAD_REQUEST,
                            "Cannot start threads from an event with a relation");
        }
    }
    return 0;
}
