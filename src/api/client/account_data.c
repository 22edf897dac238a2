/*
 * Account data and room tags (spec: Client-Server API "Client Config" and
 * "Room Tagging"): GET/PUT of global and per-room account data, the tag
 * endpoints, and the reads /sync makes of both.
 *
 * Every entry is one row of the account_data table (store/account_data.c)
 * keyed by user, room ("" for global data) and type. Tags are not a table
 * of their own: they are the room's m.tag entry, {"tags": {tag: {...}}},
 * which the tag endpoints read, modify and write back in one transaction,
 * so /sync delivers them as the m.tag room account data event.
 *
 * Each write takes a STREAM_ACCOUNT_DATA position (svc/streams.h): the
 * stream's writer lock is held from streams_reserve to streams_publish,
 * the row carries the position and store_stream_bump records it in the
 * same transaction, and after publishing the user's parked syncs are
 * woken (svc/notify.h).
 *
 * Rules (spec "Server Behaviour" of Client Config, Synapse where the spec
 * is silent):
 * - only the user themself reads or writes their data (403 M_FORBIDDEN);
 * - m.fully_read and m.push_rules are managed by the server: setting them
 *   here is 405 M_BAD_JSON (global and room data alike); they are read as
 *   usual. The server writes them through client__account_data_put;
 * - a malformed room ID is 400 M_INVALID_PARAM; room account data of a
 *   room the server does not know is still stored (as Synapse does);
 * - an empty object means deleted (MSC3391, as Synapse with it enabled):
 *   PUT {} deletes, GET of a deleted entry is 404 M_NOT_FOUND, initial
 *   syncs leave it out and incremental syncs deliver the empty content.
 *   The unstable MSC3391 DELETE endpoints do the same as PUT {};
 * - tags: a tag name is at most 255 bytes (400 M_INVALID_PARAM); adding a
 *   tag needs some membership of the room (403, as Synapse); "order", when
 *   present, must be a number in [0, 1] (400 M_INVALID_PARAM); other keys
 *   of the body are kept. Removing a tag that is not there succeeds.
 */
#include <stdlib.h>
#include <string.h>

#include "api/client/client.h"
#include "api/handlers.h"
#include "base/err.h"
#include "base/json.h"
#include "core/id.h"
#include "store/store.h"
#include "svc/notify.h"
#include "svc/room.h"
#include "svc/srv.h"
#include "svc/streams.h"

#define TYPE_MAX_BYTES 255 /* as event types of PDUs */
#define TAG_MAX_BYTES 255  /* spec "Room Tagging" */

/* ---- writing ---- */

/*
 * Computes the new content text of an entry from the old one (NULL when
 * there is none), inside the write transaction. Sets *out to the new text
 * (arena), or leaves it NULL when nothing changes. Returns 0 or a negative
 * ERR_* (which may set a failure on r).
 */
typedef int edit_fn(struct req *r, const char *old, void *ctx, char **out);

/* The compact JSON text of `v` in the arena, or NULL when out of memory. */
static char *dump(struct req *r, const json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT);
    if (!text) {
        return NULL;
    }
    char *copy = arena_strdup(&r->arena, text);
    free(text);
    return copy;
}

/*
 * Writes one entry under a new stream position: `text` as it is, or what
 * `edit` makes of the stored content. The position is recorded even when
 * the edit changes nothing, so it is never handed out twice across a
 * restart. Publishes the position on every path and wakes the user's
 * syncs after a successful write. Returns 0 or a negative ERR_*.
 */
static int write_entry(struct req *r, const char *user_id, const char *room_id,
                       const char *type, const char *text, edit_fn *edit, void *ctx)
{
    struct streams *st = r->srv->streams;
    int64_t pos = streams_reserve(st, STREAM_ACCOUNT_DATA);
    bool wrote = false;
    int rc = store_begin(r->db);
    if (rc == 0) {
        if (edit) {
            char *old = NULL;
            char *edited = NULL;
            rc = store_account_data_get(r->db, &r->arena, user_id, room_id, type, &old);
            if (rc == -ERR_NOT_FOUND) {
                rc = 0;
            }
            if (rc == 0) {
                rc = edit(r, old, ctx, &edited);
            }
            text = edited;
        }
        if (rc == 0 && text) {
            rc = store_account_data_put(r->db, user_id, room_id, type, text, pos);
            wrote = rc == 0;
        }
        if (rc == 0) {
            rc = store_stream_bump(r->db, STREAM_ACCOUNT_DATA, pos);
        }
        rc = store_end(r->db, rc);
    }
    streams_publish(st, STREAM_ACCOUNT_DATA, pos);
    if (rc == 0 && wrote) {
        notify_stream(r->srv->notify, STREAM_ACCOUNT_DATA, pos, user_id, NULL, 0);
    }
    return rc;
}

int client__account_data_put(struct req *r, const char *user_id, const char *room_id,
                             const char *type, json_t *content)
{
    char *text = dump(r, content);
    if (!text) {
        return -ERR_NOMEM;
    }
    return write_entry(r, user_id, room_id ? room_id : "", type, text, NULL, NULL);
}

/* ---- reading for /sync ---- */

/* The {"type", "content"} event of a row (a new reference), or NULL when
 * the row is to be left out: unreadable, or deleted in an initial sync. */
static json_t *row_event(const struct store_account_data *row, bool initial)
{
    json_t *content = json_loads(row->content, 0, NULL);
    if (!json_is_object(content) || (initial && json_object_size(content) == 0)) {
        json_decref(content);
        return NULL;
    }
    return json_pack("{s:s,s:o}", "type", row->type, "content", content);
}

/* Appends the events of rows[0..n) to `events`. */
static void append_rows(const struct store_account_data *rows, size_t n, bool initial,
                        json_t *events)
{
    for (size_t i = 0; i < n; i++) {
        json_t *ev = row_event(&rows[i], initial);
        if (ev) {
            json_array_append_new(events, ev);
        }
    }
}

int client__account_data_global(struct req *r, const char *user_id, int64_t since, int64_t upto,
                                json_t *events)
{
    struct store_account_data *rows = NULL;
    size_t n = 0;
    int rc = store_account_data_between(r->db, &r->arena, user_id, "", since, upto, &rows, &n);
    if (rc == 0) {
        append_rows(rows, n, since < 0, events);
    }
    return rc;
}

int client__account_data_rooms_changed(struct req *r, const char *user_id, int64_t since,
                                       int64_t upto, char ***room_ids, size_t *n)
{
    *room_ids = NULL;
    *n = 0;
    return store_account_data_rooms(r->db, &r->arena, user_id, since, upto, room_ids, n);
}

int client__account_data_room(struct req *r, const char *user_id, const char *room_id,
                              int64_t since, int64_t upto, json_t *events)
{
    struct store_account_data *rows = NULL;
    size_t n = 0;
    int rc =
        store_account_data_between(r->db, &r->arena, user_id, room_id, since, upto, &rows, &n);
    if (rc == 0) {
        append_rows(rows, n, since < 0, events);
    }
    return rc;
}

int client__account_data_rooms(struct req *r, const char *user_id, int64_t since, int64_t upto,
                               json_t **by_room)
{
    struct store_account_data *rows = NULL;
    size_t n = 0;
    int rc = store_account_data_between(r->db, &r->arena, user_id, NULL, since, upto, &rows, &n);
    if (rc < 0) {
        return rc;
    }
    json_t *map = json_arena(&r->arena, json_object());
    for (size_t i = 0; i < n; i++) {
        json_t *ev = row_event(&rows[i], since < 0);
        if (!ev) {
            continue;
        }
        json_t *arr = json_object_get(map, rows[i].room_id);
        if (!arr) {
            arr = json_array();
            json_object_set_new(map, rows[i].room_id, arr);
        }
        json_array_append_new(arr, ev);
    }
    *by_room = map;
    return 0;
}

/* ---- checks shared by the handlers ---- */

/* 403 unless the path's user is the caller. */
static int check_owner(struct req *r, const char *user_id, const char *what)
{
    if (strcmp(user_id, r->auth.user_id) != 0) {
        return req_fail(r, -ERR_FORBIDDEN, "Cannot %s for other users", what);
    }
    return 0;
}

/* 400 for a type over TYPE_MAX_BYTES. */
static int check_type(struct req *r, const char *type)
{
    if (strlen(type) > TYPE_MAX_BYTES) {
        return req_fail(r, -ERR_INVALID_PARAM, "Account data types are limited to %d bytes",
                        TYPE_MAX_BYTES);
    }
    return 0;
}

/*
 * Spec "Client Config", Server Behaviour: types the server manages cannot
 * be set by clients, with a 405 carrying M_BAD_JSON. err.def ties
 * M_BAD_JSON to 400, so the status is corrected after rendering.
 */
static int check_settable(struct req *r, const char *type)
{
    const char *hint = NULL;
    if (strcmp(type, "m.fully_read") == 0) {
        hint = "/rooms/{roomId}/read_markers";
    } else if (strcmp(type, "m.push_rules") == 0) {
        hint = "/pushrules";
    }
    if (!hint) {
        return 0;
    }
    int rc = req_fail(r, -ERR_BAD_JSON, "Cannot set %s through this API; use %s", type, hint);
    r->status = 405;
    return rc;
}

/* The checks of a write: owner, room ID (room data), type, settable. */
static int check_write(struct req *r, const char *user_id, const char *room_id,
                       const char *type)
{
    int rc = check_owner(r, user_id, "add account data");
    if (rc == 0 && room_id) {
        rc = client__check_room_id(r, room_id);
    }
    if (rc == 0) {
        rc = check_type(r, type);
    }
    if (rc == 0) {
        rc = check_settable(r, type);
    }
    return rc;
}

/* ---- account data endpoints ---- */

/* GET of one entry (room_id "" for global data): 404 when absent or
 * deleted. */
static int get_entry(struct req *r, const char *user_id, const char *room_id, const char *type)
{
    char *text = NULL;
    int rc = store_account_data_get(r->db, &r->arena, user_id, room_id, type, &text);
    if (rc < 0 && rc != -ERR_NOT_FOUND) {
        return rc;
    }
    json_t *content = rc == 0 ? json_loads(text, 0, NULL) : NULL;
    if (!json_is_object(content) || json_object_size(content) == 0) {
        json_decref(content);
        return req_fail(r, -ERR_NOT_FOUND, "%s not found",
                        *room_id ? "Room account data" : "Account data");
    }
    return req_json(r, 200, content);
}

/* PUT (content = r->json) or MSC3391 DELETE (content NULL) of an entry. */
static int put_entry(struct req *r, const char *user_id, const char *room_id, const char *type,
                     const json_t *content)
{
    int rc = check_write(r, user_id, room_id, type);
    if (rc) {
        return rc;
    }
    char *text = dump(r, content ? content : json_arena(&r->arena, json_object()));
    if (!text) {
        return -ERR_NOMEM;
    }
    rc = write_entry(r, user_id, room_id ? room_id : "", type, text, NULL, NULL);
    if (rc) {
        return rc;
    }
    return req_json(r, 200, json_object());
}

int client_account_data_get(struct req *r)
{
    const char *user_id = r->param[0].p;
    int rc = check_owner(r, user_id, "get account data");
    if (rc) {
        return rc;
    }
    return get_entry(r, user_id, "", r->param[1].p);
}

int client_account_data_put(struct req *r)
{
    return put_entry(r, r->param[0].p, NULL, r->param[1].p, r->json);
}

int client_account_data_delete(struct req *r)
{
    return put_entry(r, r->param[0].p, NULL, r->param[1].p, NULL);
}

int client_room_account_data_get(struct req *r)
{
    const char *user_id = r->param[0].p;
    const char *room_id = r->param[1].p;
    int rc = check_owner(r, user_id, "get account data");
    if (rc == 0) {
        rc = client__check_room_id(r, room_id);
    }
    if (rc) {
        return rc;
    }
    return get_entry(r, user_id, room_id, r->param[2].p);
}

int client_room_account_data_put(struct req *r)
{
    return put_entry(r, r->param[0].p, r->param[1].p, r->param[2].p, r->json);
}

int client_room_account_data_delete(struct req *r)
{
    return put_entry(r, r->param[0].p, r->param[1].p, r->param[2].p, NULL);
}

/* ---- tags ---- */

/* The "tags" object of an m.tag content text (NULL: none), as a new
 * object reference; anything malformed reads as no tags. */
static json_t *tags_of(const char *text)
{
    json_t *content = text ? json_loads(text, 0, NULL) : NULL;
    json_t *tags = json_object_get(content, "tags");
    tags = json_is_object(tags) ? json_incref(tags) : json_object();
    json_decref(content);
    return tags;
}

struct tag_edit {
    const char *tag;
    const json_t *body; /* NULL: remove the tag */
};

/* edit_fn: sets or removes one tag of the m.tag content. */
static int edit_tags(struct req *r, const char *old, void *ctx, char **out)
{
    const struct tag_edit *e = ctx;
    json_t *tags = tags_of(old);
    if (!e->body && !json_object_get(tags, e->tag)) {
        json_decref(tags); /* nothing to remove */
        return 0;
    }
    if (e->body) {
        json_object_set_new(tags, e->tag, json_deep_copy(e->body));
    } else {
        json_object_del(tags, e->tag);
    }
    json_t *content = json_pack("{s:o}", "tags", tags);
    *out = dump(r, content);
    json_decref(content);
    return *out ? 0 : -ERR_NOMEM;
}

/* The checks shared by the tag endpoints: owner, room ID, tag length. */
static int check_tag_path(struct req *r, const char *what)
{
    int rc = check_owner(r, r->param[0].p, what);
    if (rc == 0) {
        rc = client__check_room_id(r, r->param[1].p);
    }
    if (rc == 0 && r->n_params > 2 && r->param[2].len > TAG_MAX_BYTES) {
        rc = req_fail(r, -ERR_INVALID_PARAM, "Tags are limited to %d bytes", TAG_MAX_BYTES);
    }
    return rc;
}

int client_tags_get(struct req *r)
{
    int rc = check_tag_path(r, "get tags");
    if (rc) {
        return rc;
    }
    char *text = NULL;
    rc = store_account_data_get(r->db, &r->arena, r->param[0].p, r->param[1].p, "m.tag", &text);
    if (rc < 0 && rc != -ERR_NOT_FOUND) {
        return rc;
    }
    return req_json(r, 200, json_pack("{s:o}", "tags", tags_of(rc == 0 ? text : NULL)));
}

int client_tag_put(struct req *r)
{
    const char *user_id = r->param[0].p;
    const char *room_id = r->param[1].p;
    int rc = check_tag_path(r, "add tags");
    if (rc) {
        return rc;
    }
    json_t *order = json_object_get(r->json, "order");
    if (order && (!json_is_number(order) || json_number_value(order) < 0.0 ||
                  json_number_value(order) > 1.0)) {
        return req_fail(r, -ERR_INVALID_PARAM, "'order' must be a number between 0 and 1");
    }
    /* Synapse: tagging a room needs some membership of it. */
    const char *membership = NULL;
    rc = room_membership(r, room_id, user_id, &membership);
    if (rc == -ERR_NOT_FOUND || (rc == 0 && !membership)) {
        return req_fail(r, -ERR_FORBIDDEN, "%s has no membership in %s", user_id, room_id);
    }
    if (rc < 0) {
        return rc;
    }
    struct tag_edit e = {.tag = r->param[2].p, .body = r->json};
    rc = write_entry(r, user_id, room_id, "m.tag", NULL, edit_tags, &e);
    if (rc) {
        return rc;
    }
    return req_json(r, 200, json_object());
}

int client_tag_delete(struct req *r)
{
    int rc = check_tag_path(r, "remove tags");
    if (rc) {
        return rc;
    }
    struct tag_edit e = {.tag = r->param[2].p, .body = NULL};
    rc = write_entry(r, r->param[0].p, r->param[1].p, "m.tag", NULL, edit_tags, &e);
    if (rc) {
        return rc;
    }
    return req_json(r, 200, json_object());
}
