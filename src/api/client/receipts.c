/*
 * Receipts, read markers and typing (spec "Receipts", "Fully read
 * markers", "Typing Notifications").
 *
 * A receipt is stored per room, type, user and thread with the stream
 * ordering of the event it points at; a receipt on an older event than
 * the one already stored is acknowledged and ignored, as receipts only
 * move forward. Each stored receipt takes a STREAM_RECEIPTS position and
 * wakes the room's parked /syncs (m.read.private only its owner's).
 * m.fully_read is the room account data event of the same name. Typing
 * lives in svc/typing.
 *
 * Other servers in the room (Server-Server API "Receipts", "Typing
 * Notifications") get a public m.read receipt as an m.receipt EDU queued
 * in the receipt's own transaction (svc/fedqueue), and every typing
 * request (a refresh too, which keeps the typist alive there: receivers
 * expire remote typists on their own) as an m.typing EDU queued in a
 * small transaction of its own. Private receipts and m.fully_read stay
 * here.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api/client/client.h"
#include "api/handlers.h"
#include "base/err.h"
#include "base/json.h"
#include "http/req.h"
#include "store/store.h"
#include "svc/fedqueue.h"
#include "svc/notify.h"
#include "svc/room.h"
#include "svc/srv.h"
#include "svc/streams.h"
#include "svc/typing.h"

/* Adds one receipt to an m.receipt content object (spec "Receipts"):
 * {event_id: {type: {user_id: {ts, thread_id?}}}}; another user's private
 * receipts are left out. */
void client__receipt_add(json_t *content, const struct store_receipt *rc, const char *viewer)
{
    if (strcmp(rc->type, "m.read.private") == 0 && strcmp(rc->user_id, viewer) != 0) {
        return;
    }
    json_t *by_event = json_object_get(content, rc->event_id);
    if (!by_event) {
        by_event = json_object();
        json_object_set_new(content, rc->event_id, by_event);
    }
    json_t *by_type = json_object_get(by_event, rc->type);
    if (!by_type) {
        by_type = json_object();
        json_object_set_new(by_event, rc->type, by_type);
    }
    json_t *r = json_pack("{s:I}", "ts", (json_int_t)rc->ts);
    if (rc->thread_id && *rc->thread_id) {
        json_object_set_new(r, "thread_id", json_string(rc->thread_id));
    }
    json_object_set_new(by_type, rc->user_id, r);
}

/* The room's servers other than this one (arena array; none without a
 * federation queue). */
static int other_servers(struct req *r, const char *room_id, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!r->srv->fedqueue) {
        return 0;
    }
    char **all = NULL;
    size_t n_all = 0;
    int rc = room_servers(r, room_id, &all, &n_all);
    if (rc < 0 || n_all < 2) {
        return rc < 0 ? rc : 0;
    }
    *out = all + 1; /* this server comes first */
    *n = n_all - 1;
    return 0;
}

/* Queues the EDU {type, content} (content consumed) for each server,
 * inside the caller's transaction. */
static int queue_edu(struct req *r, char **servers, size_t n, const char *type, json_t *content)
{
    char *text = content ? json_dumps(content, JSON_COMPACT) : NULL;
    json_decref(content);
    if (!text) {
        return -ERR_NOMEM;
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = fedqueue_add_edu(r->srv->fedqueue, r->db, servers[i], type, text);
    }
    free(text);
    return rc;
}

static void wake_servers(struct req *r, char **servers, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        fedqueue_wake(r->srv->fedqueue, servers[i]);
    }
}

/* The m.receipt EDU content of one receipt (spec: Server-Server API
 * "Receipts"): {room_id: {"m.read": {user: {event_ids, data: {ts,
 * thread_id?}}}}}. */
static json_t *receipt_edu(const struct store_receipt *rec)
{
    json_t *data = json_pack("{s:I}", "ts", (json_int_t)rec->ts);
    if (data && rec->thread_id && *rec->thread_id) {
        json_object_set_new(data, "thread_id", json_string(rec->thread_id));
    }
    return json_pack("{s:{s:{s:{s:[s],s:o}}}}", rec->room_id, "m.read", rec->user_id,
                     "event_ids", rec->event_id, "data", data);
}

/* Stores one m.read or m.read.private receipt on `event_id`; a public
 * one is also queued for the room's other servers. */
static int put_receipt(struct req *r, const char *room_id, const char *type,
                       const char *event_id, const char *thread_id)
{
    struct store_event se;
    struct store_room room;
    int rc = client__room_event(r, room_id, event_id, &se, &room);
    if (rc) {
        return rc;
    }
    bool private = strcmp(type, "m.read.private") == 0;
    char **servers = NULL;
    size_t n_servers = 0;
    if (!private) {
        rc = other_servers(r, room_id, &servers, &n_servers);
        if (rc < 0) {
            return req_fail(r, rc, NULL);
        }
    }
    struct store_receipt rec = {
        .room_id = (char *)room_id,
        .type = (char *)type,
        .user_id = (char *)r->auth.user_id,
        .thread_id = (char *)(thread_id ? thread_id : ""),
        .event_id = (char *)event_id,
        .event_stream = se.stream_ordering,
        .ts = req_now_ms(),
    };
    struct streams *st = r->srv->streams;
    rec.stream_pos = streams_reserve(st, STREAM_RECEIPTS);
    rc = store_begin(r->db);
    int stored = 0;
    if (rc == 0) {
        stored = store_receipt_put(r->db, &rec);
        rc = stored < 0 ? stored : 0;
        if (stored == 1) {
            rc = store_stream_bump(r->db, STREAM_RECEIPTS, rec.stream_pos);
        }
        if (rc == 0 && stored == 1 && n_servers > 0) {
            rc = queue_edu(r, servers, n_servers, "m.receipt", receipt_edu(&rec));
        }
        rc = store_end(r->db, rc);
    }
    streams_publish(st, STREAM_RECEIPTS, rec.stream_pos);
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    if (stored == 1) {
        wake_servers(r, servers, n_servers);
    }
    if (stored == 1 && r->srv->notify) {
        char *rooms[1] = {(char *)room_id};
        notify_stream(r->srv->notify, STREAM_RECEIPTS, rec.stream_pos, r->auth.user_id,
                      private ? NULL : rooms, private ? 0 : 1);
    }
    return 0;
}

/* Sets the m.fully_read marker (room account data) to `event_id`. */
static int put_fully_read(struct req *r, const char *room_id, const char *event_id)
{
    struct store_event se;
    struct store_room room;
    int rc = client__room_event(r, room_id, event_id, &se, &room);
    if (rc) {
        return rc;
    }
    json_t *content = json_arena(&r->arena, json_pack("{s:s}", "event_id", event_id));
    rc = client__account_data_put(r, r->auth.user_id, room_id, "m.fully_read", content);
    return rc < 0 ? req_fail(r, rc, NULL) : 0;
}

static bool valid_event_id(const char *id) { return id && id[0] == '$' && id[1]; }

/*
 * POST /rooms/{roomId}/receipt/{receiptType}/{eventId}, body
 * {"thread_id"?}: "main" or a thread root's event ID (not for
 * m.fully_read).
 */
int client_receipt(struct req *r)
{
    const char *room_id = r->param[0].p, *type = r->param[1].p, *event_id = r->param[2].p;
    int rc = client__require_joined_room(r, room_id);
    if (rc) {
        return rc;
    }
    bool fully = strcmp(type, "m.fully_read") == 0;
    if (!fully && strcmp(type, "m.read") != 0 && strcmp(type, "m.read.private") != 0) {
        return req_fail(r, -ERR_INVALID_PARAM, "Unknown receipt type '%s'", type);
    }
    if (!valid_event_id(event_id)) {
        return req_fail(r, -ERR_INVALID_PARAM, "'%s' is not an event ID", event_id);
    }
    const char *thread_id = NULL;
    rc = client__opt_string(r, "thread_id", 255, &thread_id);
    if (rc) {
        return rc;
    }
    if (thread_id) {
        if (fully) {
            return req_fail(r, -ERR_INVALID_PARAM, "m.fully_read receipts cannot have a thread");
        }
        if (strcmp(thread_id, "main") != 0 && !valid_event_id(thread_id)) {
            return req_fail(r, -ERR_INVALID_PARAM,
                            "'thread_id' must be \"main\" or the event ID of a thread root");
        }
    }
    rc = fully ? put_fully_read(r, room_id, event_id)
               : put_receipt(r, room_id, type, event_id, thread_id);
    return rc ? rc : req_json(r, 200, json_object());
}

/* POST /rooms/{roomId}/read_markers {m.fully_read?, m.read?, m.read.private?}. */
int client_read_markers(struct req *r)
{
    const char *room_id = r->param[0].p;
    int rc = client__require_joined_room(r, room_id);
    if (rc) {
        return rc;
    }
    static const char *const keys[] = {"m.fully_read", "m.read", "m.read.private"};
    const char *ids[3] = {0};
    for (int i = 0; i < 3; i++) {
        rc = client__opt_string(r, keys[i], 255, &ids[i]);
        if (rc) {
            return rc;
        }
        if (ids[i] && !valid_event_id(ids[i])) {
            return req_fail(r, -ERR_INVALID_PARAM, "'%s' is not an event ID", keys[i]);
        }
    }
    for (int i = 1; i < 3; i++) {
        if (ids[i]) {
            rc = put_receipt(r, room_id, keys[i], ids[i], NULL);
            if (rc) {
                return rc;
            }
        }
    }
    if (ids[0]) {
        rc = put_fully_read(r, room_id, ids[0]);
        if (rc) {
            return rc;
        }
    }
    return req_json(r, 200, json_object());
}

/* PUT /rooms/{roomId}/typing/{userId} {"typing": bool, "timeout"?: ms}. */
int client_typing(struct req *r)
{
    const char *room_id = r->param[0].p, *user_id = r->param[1].p;
    if (strcmp(user_id, r->auth.user_id) != 0) {
        return req_fail(r, -ERR_FORBIDDEN, "Cannot set another user's typing state");
    }
    json_t *typing = json_object_get(r->json, "typing");
    if (!json_is_boolean(typing)) {
        return req_fail(r, -ERR_BAD_JSON, "'typing' must be a boolean");
    }
    json_t *timeout = json_object_get(r->json, "timeout");
    if (timeout && !json_is_integer(timeout)) {
        return req_fail(r, -ERR_BAD_JSON, "'timeout' must be an integer");
    }
    int rc = client__require_joined_room(r, room_id);
    if (rc) {
        return rc;
    }
    typing_set(r->srv->typing, room_id, user_id, json_is_true(typing),
               timeout ? json_integer_value(timeout) : 0);
    /* Typing is ephemeral: nothing else to commit with the EDUs. */
    char **servers = NULL;
    size_t n_servers = 0;
    rc = other_servers(r, room_id, &servers, &n_servers);
    if (rc == 0 && n_servers > 0) {
        json_t *c = json_pack("{s:s,s:s,s:b}", "room_id", room_id, "user_id", user_id,
                              "typing", json_is_true(typing));
        rc = store_begin(r->db);
        if (rc == 0) {
            rc = store_end(r->db, queue_edu(r, servers, n_servers, "m.typing", c));
        } else {
            json_decref(c);
        }
        if (rc == 0) {
            wake_servers(r, servers, n_servers);
        }
    }
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    return req_json(r, 200, json_object());
}
