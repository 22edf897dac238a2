/*
 * Inbound federation transactions (spec: Server-Server API
 * "Transactions", "PUT /_matrix/federation/v1/send/{txnId}", "EDUs"):
 * another server pushes up to 50 PDUs and 100 EDUs; the answer lists the
 * outcome of each PDU it could name. PDUs go through pdu.c (room
 * ingestion is not implemented yet). EDUs are checked and applied here,
 * one by one; a bad EDU is logged and dropped and never fails the
 * transaction:
 *   m.direct_to_device    queued for local devices like /sendToDevice
 *                         (sender of the origin; once per message_id)
 *   m.typing              svc/typing, for a joined user of the origin
 *   m.receipt             m.read receipts of joined users of the origin
 *   m.device_list_update,
 *   m.signing_key_update  a device-list change of the user (their keys
 *                         are fetched by /keys/query, not cached here)
 *   m.presence            svc/presence, for users of the origin (held
 *                         without local timeouts: the origin decides)
 * Typing and receipts name a room, so the room's server ACL must allow
 * the origin ("Server Access Control Lists (ACLs)").
 *
 * A transaction is idempotent per (origin, txnId): its answer is stored
 * (schema 021_fed_txns, kept a day) and a repeat gets it back without
 * anything being processed again. Two copies racing each other may both
 * run, which is harmless: to-device messages are deduplicated by message
 * ID in the transaction that queues them, and everything else sets
 * state.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api/client/client.h"
#include "api/federation/federation.h"
#include "api/handlers.h"
#include "base/err.h"
#include "base/json.h"
#include "base/log.h"
#include "core/acl.h"
#include "core/id.h"
#include "http/req.h"
#include "store/store.h"
#include "svc/notify.h"
#include "svc/presence.h"
#include "svc/room.h"
#include "svc/srv.h"
#include "svc/streams.h"
#include "svc/typing.h"

#define FED_TXN_PDUS_MAX 50 /* spec "Transactions" */
#define FED_TXN_EDUS_MAX 100
/* How long stored answers and message IDs are kept. */
#define FED_TXN_KEEP_MS (24 * 3600 * 1000LL)
/* Remote typists stop after this without a new EDU (as Synapse does). */
#define FED_TYPING_TIMEOUT_MS 60000
/* The spec says 32 code points; be lenient with other servers. */
#define FED_MESSAGE_ID_MAX 255
#define FED_TYPE_MAX 255
/* As PUT /presence allows locally. */
#define FED_STATUS_MSG_MAX 4096

/* ---- checks shared by the EDUs ---- */

/* Whether `user_id` is a user ID of server `origin`. */
static bool user_of(const char *user_id, const char *origin)
{
    if (!user_id || !id_user_valid(user_id, strlen(user_id), false)) {
        return false;
    }
    const char *server = id_server_part(user_id);
    return server && strcmp(server, origin) == 0;
}

/* Whether `user_id` is joined to `room_id` here (false for unknown rooms). */
static bool joined(struct req *r, const char *room_id, const char *user_id)
{
    const char *m = NULL;
    return room_membership(r, room_id, user_id, &m) == 0 && m && strcmp(m, "join") == 0;
}

bool fed__acl_allows(struct req *r, const char *room_id, const char *origin)
{
    json_t *ev = NULL;
    int rc = room_state_event(r, room_id, "m.room.server_acl", "", &ev);
    if (rc == -ERR_NOT_FOUND) {
        return true; /* nothing here to protect */
    }
    if (rc < 0) {
        LOG_WARN("fed", "cannot read the server ACL of %s: %s", room_id, err_message(rc));
        return false;
    }
    bool ok = acl_server_allowed(ev ? json_object_get(ev, "content") : NULL, origin);
    json_decref(ev);
    return ok;
}

/* The room checks of typing and receipts: the room's ACL allows the
 * origin and the user is joined. Logs and returns false otherwise. */
static bool room_allows(struct req *r, const char *origin, const char *edu_type,
                        const char *room_id, const char *user_id)
{
    if (!fed__acl_allows(r, room_id, origin)) {
        LOG_INFO("fed", "%s from %s dropped: denied by the server ACL of %s", edu_type, origin,
                 room_id);
        return false;
    }
    if (!joined(r, room_id, user_id)) {
        LOG_INFO("fed", "%s from %s dropped: %s is not joined to %s", edu_type, origin, user_id,
                 room_id);
        return false;
    }
    return true;
}

/* ---- EDUs ---- */

/* The users whose device lists changed in this transaction, marked
 * together at the end. */
struct dl_users {
    const char **users;
    size_t n, cap;
};

static void dl_add(struct req *r, struct dl_users *dl, const char *user_id)
{
    for (size_t i = 0; i < dl->n; i++) {
        if (strcmp(dl->users[i], user_id) == 0) {
            return;
        }
    }
    if (dl->n == dl->cap) {
        size_t cap = dl->cap ? dl->cap * 2 : 8;
        const char **users = ARENA_ARRAY(&r->arena, const char *, cap);
        if (dl->n) {
            memcpy(users, dl->users, dl->n * sizeof(*users));
        }
        dl->users = users;
        dl->cap = cap;
    }
    dl->users[dl->n++] = arena_strdup(&r->arena, user_id);
}

/* m.direct_to_device {sender, type, message_id, messages} (spec
 * "Send-to-device messaging"). */
static void edu_to_device(struct req *r, const char *origin, json_t *content)
{
    const char *sender = json_get_str(content, "sender");
    const char *type = json_get_str(content, "type");
    const char *message_id = json_get_str(content, "message_id");
    json_t *messages = json_object_get(content, "messages");
    if (!user_of(sender, origin)) {
        LOG_INFO("fed", "m.direct_to_device from %s dropped: sender is not one of its users",
                 origin);
        return;
    }
    if (!type || !*type || strlen(type) > FED_TYPE_MAX || !message_id || !*message_id ||
        strlen(message_id) > FED_MESSAGE_ID_MAX || !json_is_object(messages)) {
        LOG_INFO("fed", "m.direct_to_device from %s dropped: malformed", origin);
        return;
    }
    const char *user_id;
    json_t *by_device;
    json_object_foreach(messages, user_id, by_device)
    {
        const char *device_id;
        json_t *msg;
        bool ok = id_user_valid(user_id, strlen(user_id), false) && json_is_object(by_device);
        json_object_foreach(by_device, device_id, msg)
        {
            ok &= *device_id && json_is_object(msg);
        }
        if (!ok) {
            LOG_INFO("fed", "m.direct_to_device from %s dropped: malformed messages", origin);
            return;
        }
    }
    int rc = client__to_device_deliver(r, origin, message_id, sender, type, messages);
    if (rc < 0) {
        LOG_WARN("fed", "m.direct_to_device %s from %s not queued: %s", message_id, origin,
                 err_message(rc));
    } else if (rc == 0) {
        LOG_DEBUG("fed", "m.direct_to_device %s from %s already queued", message_id, origin);
    }
}

/* m.typing {room_id, user_id, typing} (spec "Typing Notifications"). */
static void edu_typing(struct req *r, const char *origin, json_t *content)
{
    const char *room_id = json_get_str(content, "room_id");
    const char *user_id = json_get_str(content, "user_id");
    json_t *typing = json_object_get(content, "typing");
    if (!room_id || !id_room_valid(room_id, strlen(room_id)) || !json_is_boolean(typing)) {
        LOG_INFO("fed", "m.typing from %s dropped: malformed", origin);
        return;
    }
    if (!user_of(user_id, origin)) {
        LOG_INFO("fed", "m.typing from %s dropped: the user is not one of its users", origin);
        return;
    }
    if (!room_allows(r, origin, "m.typing", room_id, user_id)) {
        return;
    }
    typing_set(r->srv->typing, room_id, user_id, json_is_true(typing), FED_TYPING_TIMEOUT_MS);
}

/* Stores one m.read receipt as POST /receipt does: one STREAM_RECEIPTS
 * position, the room's syncs woken. */
static int receipt_put(struct req *r, struct store_receipt *rec)
{
    struct streams *st = r->srv->streams;
    rec->stream_pos = streams_reserve(st, STREAM_RECEIPTS);
    int stored = 0;
    int rc = store_begin(r->db);
    if (rc == 0) {
        stored = store_receipt_put(r->db, rec);
        rc = stored < 0 ? stored : 0;
        if (stored == 1) {
            rc = store_stream_bump(r->db, STREAM_RECEIPTS, rec->stream_pos);
        }
        rc = store_end(r->db, rc);
    }
    streams_publish(st, STREAM_RECEIPTS, rec->stream_pos);
    if (rc == 0 && stored == 1 && r->srv->notify) {
        char *rooms[1] = {rec->room_id};
        notify_stream(r->srv->notify, STREAM_RECEIPTS, rec->stream_pos, rec->user_id, rooms, 1);
    }
    return rc;
}

/* One user's entry {event_ids, data: {ts, thread_id?}} of an m.read. */
static void receipt_one(struct req *r, const char *origin, const char *room_id,
                        const struct store_room *room, const char *user_id, json_t *entry)
{
    if (!user_of(user_id, origin)) {
        LOG_INFO("fed", "m.receipt from %s dropped: %s is not one of its users", origin,
                 user_id);
        return;
    }
    json_t *ids = json_object_get(entry, "event_ids");
    json_t *data = json_object_get(entry, "data");
    const char *event_id = json_string_value(json_array_get(ids, 0));
    json_t *ts = json_object_get(data, "ts");
    json_t *thread = json_object_get(data, "thread_id");
    if (!event_id || !id_event_valid(event_id, strlen(event_id)) || !json_is_object(data) ||
        (ts && !json_is_integer(ts)) || (thread && !json_is_string(thread))) {
        LOG_INFO("fed", "m.receipt from %s dropped: malformed entry for %s", origin, user_id);
        return;
    }
    const char *thread_id = json_string_value(thread);
    if (thread_id && strcmp(thread_id, "main") != 0 &&
        !id_event_valid(thread_id, strlen(thread_id))) {
        LOG_INFO("fed", "m.receipt from %s dropped: bad thread_id", origin);
        return;
    }
    if (!joined(r, room_id, user_id)) {
        LOG_INFO("fed", "m.receipt from %s dropped: %s is not joined to %s", origin, user_id,
                 room_id);
        return;
    }
    struct store_event se;
    int rc = store_event_get(r->db, &r->arena, event_id, &se);
    if (rc == 0 && (se.room_nid != room->nid || se.rejected)) {
        rc = -ERR_NOT_FOUND;
    }
    if (rc < 0) {
        LOG_INFO("fed", "m.receipt from %s dropped: event %s of %s: %s", origin, event_id,
                 room_id, err_message(rc));
        return;
    }
    struct store_receipt rec = {
        .room_id = (char *)room_id,
        .type = "m.read",
        .user_id = (char *)user_id,
        .thread_id = (char *)(thread_id ? thread_id : ""),
        .event_id = (char *)event_id,
        .event_stream = se.stream_ordering,
        .ts = ts ? json_integer_value(ts) : req_now_ms(),
    };
    rc = receipt_put(r, &rec);
    if (rc < 0) {
        LOG_WARN("fed", "m.receipt from %s not stored: %s", origin, err_message(rc));
    }
}

/* m.receipt {room_id: {"m.read": {user_id: {event_ids, data}}}} (spec
 * "Receipts"). Other receipt types are ignored: only m.read is federated. */
static void edu_receipt(struct req *r, const char *origin, json_t *content)
{
    const char *room_id;
    json_t *by_type;
    json_object_foreach(content, room_id, by_type)
    {
        json_t *reads = json_object_get(by_type, "m.read");
        if (!id_room_valid(room_id, strlen(room_id)) || !json_is_object(reads)) {
            LOG_INFO("fed", "m.receipt from %s dropped: malformed room entry", origin);
            continue;
        }
        if (!fed__acl_allows(r, room_id, origin)) {
            LOG_INFO("fed", "m.receipt from %s dropped: denied by the server ACL of %s", origin,
                     room_id);
            continue;
        }
        struct store_room room;
        if (store_room_get(r->db, &r->arena, room_id, &room) < 0) {
            LOG_INFO("fed", "m.receipt from %s dropped: unknown room %s", origin, room_id);
            continue;
        }
        const char *user_id;
        json_t *entry;
        json_object_foreach(reads, user_id, entry)
        {
            receipt_one(r, origin, room_id, &room, user_id, entry);
        }
    }
}

/* m.presence {push: [{user_id, presence, ...}]} (spec "Presence"). */
static void edu_presence(struct req *r, const char *origin, json_t *content)
{
    if (strcmp(origin, r->srv->cfg->server_name) == 0) {
        return; /* our own users' presence is ours to decide */
    }
    json_t *push = json_object_get(content, "push");
    if (!json_is_array(push)) {
        LOG_INFO("fed", "m.presence from %s dropped: malformed", origin);
        return;
    }
    size_t i;
    json_t *u;
    json_array_foreach(push, i, u)
    {
        const char *user_id = json_get_str(u, "user_id");
        const char *state = json_get_str(u, "presence");
        json_t *msg = json_object_get(u, "status_msg");
        json_t *ago = json_object_get(u, "last_active_ago");
        json_t *active = json_object_get(u, "currently_active");
        if (!user_of(user_id, origin) || !state || presence_state_parse(state) < 0 ||
            (msg && !json_is_null(msg) &&
             (!json_is_string(msg) || json_string_length(msg) > FED_STATUS_MSG_MAX)) ||
            (ago && !(json_is_integer(ago) && json_integer_value(ago) >= 0)) ||
            (active && !json_is_boolean(active))) {
            LOG_INFO("fed", "m.presence from %s: entry %zu dropped: malformed or not its user",
                     origin, i);
            continue;
        }
        presence_remote_update(r->srv->presence, user_id,
                               (enum presence_state)presence_state_parse(state),
                               json_is_string(msg) ? json_string_value(msg) : NULL,
                               ago ? (int64_t)json_integer_value(ago) : -1,
                               json_is_true(active));
    }
}

/* m.device_list_update {user_id, device_id, stream_id, prev_id?, deleted?,
 * keys?, device_display_name?} (spec "Device Management"). */
static void edu_device_list(struct req *r, const char *origin, json_t *content,
                            struct dl_users *dl)
{
    const char *user_id = json_get_str(content, "user_id");
    const char *device_id = json_get_str(content, "device_id");
    json_t *stream_id = json_object_get(content, "stream_id");
    json_t *prev = json_object_get(content, "prev_id");
    json_t *deleted = json_object_get(content, "deleted");
    json_t *keys = json_object_get(content, "keys");
    if (!user_of(user_id, origin)) {
        LOG_INFO("fed", "m.device_list_update from %s dropped: not one of its users", origin);
        return;
    }
    if (!device_id || !*device_id || !json_is_integer(stream_id) ||
        (prev && !json_is_array(prev)) || (deleted && !json_is_boolean(deleted)) ||
        (keys && !json_is_object(keys))) {
        LOG_INFO("fed", "m.device_list_update from %s dropped: malformed", origin);
        return;
    }
    dl_add(r, dl, user_id);
}

/* m.signing_key_update {user_id, master_key?, self_signing_key?} (spec
 * "End-to-End Encryption"). */
static void edu_signing_key(struct req *r, const char *origin, json_t *content,
                            struct dl_users *dl)
{
    const char *user_id = json_get_str(content, "user_id");
    if (!user_of(user_id, origin)) {
        LOG_INFO("fed", "m.signing_key_update from %s dropped: not one of its users", origin);
        return;
    }
    dl_add(r, dl, user_id);
}

static void edu_apply(struct req *r, const char *origin, json_t *edu, struct dl_users *dl)
{
    const char *type = json_get_str(edu, "edu_type");
    json_t *content = json_object_get(edu, "content");
    if (!type || !json_is_object(content)) {
        LOG_INFO("fed", "an EDU from %s dropped: no edu_type or content", origin);
        return;
    }
    if (strcmp(type, "m.direct_to_device") == 0) {
        edu_to_device(r, origin, content);
    } else if (strcmp(type, "m.typing") == 0) {
        edu_typing(r, origin, content);
    } else if (strcmp(type, "m.receipt") == 0) {
        edu_receipt(r, origin, content);
    } else if (strcmp(type, "m.presence") == 0) {
        edu_presence(r, origin, content);
    } else if (strcmp(type, "m.device_list_update") == 0) {
        edu_device_list(r, origin, content, dl);
    } else if (strcmp(type, "m.signing_key_update") == 0) {
        edu_signing_key(r, origin, content, dl);
    } else {
        LOG_DEBUG("fed", "EDU type %s from %s ignored", type, origin);
    }
}

/* Records one device-list change for every user collected. */
static void device_lists_mark(struct req *r, const struct dl_users *dl)
{
    if (!dl->n) {
        return;
    }
    int64_t pos = client__device_lists_reserve(r);
    int rc = store_begin(r->db);
    if (rc == 0) {
        for (size_t i = 0; rc == 0 && i < dl->n; i++) {
            rc = client__device_lists_mark(r, pos, dl->users[i]);
        }
        rc = store_end(r->db, rc);
    }
    client__device_lists_publish(r, pos, dl->users, dl->n);
    if (rc < 0) {
        LOG_WARN("fed", "device-list changes of %zu remote user(s) not recorded: %s", dl->n,
                 err_message(rc));
    }
}

/* ---- the transaction ---- */

/* Checks the body's shape; sets *pdus and *edus (NULL when absent). */
static int check_txn(struct req *r, json_t **pdus, json_t **edus)
{
    if (!json_is_object(r->json)) {
        return req_fail(r, -ERR_BAD_JSON, "The transaction must be an object");
    }
    const char *origin = json_get_str(r->json, "origin");
    if (!origin) {
        return req_fail(r, -ERR_MISSING_PARAM, "'origin' is required");
    }
    if (strcmp(origin, r->auth.server) != 0) {
        return req_fail(r, -ERR_FORBIDDEN, "'origin' %s is not the server that signed the "
                        "request", origin);
    }
    json_t *ts = json_object_get(r->json, "origin_server_ts");
    if (ts && !json_is_integer(ts)) {
        return req_fail(r, -ERR_BAD_JSON, "'origin_server_ts' must be an integer");
    }
    *pdus = json_object_get(r->json, "pdus");
    *edus = json_object_get(r->json, "edus");
    if ((*pdus && !json_is_array(*pdus)) || (*edus && !json_is_array(*edus))) {
        return req_fail(r, -ERR_BAD_JSON, "'pdus' and 'edus' must be arrays");
    }
    if (json_array_size(*pdus) > FED_TXN_PDUS_MAX || json_array_size(*edus) > FED_TXN_EDUS_MAX) {
        return req_fail(r, -ERR_BAD_JSON, "A transaction holds at most %d PDUs and %d EDUs",
                        FED_TXN_PDUS_MAX, FED_TXN_EDUS_MAX);
    }
    size_t i;
    json_t *pdu;
    json_array_foreach(*pdus, i, pdu)
    {
        if (!json_is_object(pdu)) {
            return req_fail(r, -ERR_BAD_JSON, "PDU %zu is not an object", i);
        }
    }
    return 0;
}

/* Records the transaction's answer (r->result) and sends it. */
static int txn_answer(struct req *r)
{
    const char *origin = r->auth.server, *txn_id = r->param[0].p;
    int64_t now = req_now_ms();
    int rc = store_fed_txn_put(r->db, origin, txn_id, r->result, now);
    if (rc >= 0) {
        rc = store_fed_txns_prune(r->db, now - FED_TXN_KEEP_MS);
    }
    if (rc < 0) {
        /* The work is done: answer anyway; a retry finds the PDUs known
         * and to-device messages deduplicated. */
        LOG_WARN("fed", "answer of transaction %s from %s not stored: %s", txn_id, origin,
                 err_message(rc));
    }
    buf_append_cstr(req_json_raw(r, 200), r->result);
    return 0;
}

/* PUT /_matrix/federation/v1/send/{txnId} {origin, origin_server_ts,
 * pdus, edus?}. */
int fed_send(struct req *r)
{
    const char *origin = r->auth.server, *txn_id = r->param[0].p;
    char *stored = NULL;
    int rc = store_fed_txn_get(r->db, &r->arena, origin, txn_id, &stored);
    if (rc == 0) {
        /* Seen before: the same answer, nothing processed again. */
        buf_append_cstr(req_json_raw(r, 200), stored);
        return 0;
    }
    if (rc != -ERR_NOT_FOUND) {
        return req_fail(r, rc, NULL);
    }
    json_t *pdus = NULL, *edus = NULL;
    rc = check_txn(r, &pdus, &edus);
    if (rc) {
        return rc;
    }

    json_t *results = json_object();
    size_t i;
    json_t *item;
    json_array_foreach(pdus, i, item)
    {
        char *event_id = NULL;
        const char *error = NULL;
        if (fed__process_pdu(r, origin, item, &event_id, &error) < 0) {
            LOG_INFO("fed", "PDU %zu of transaction %s from %s has no computable event ID", i,
                     txn_id, origin);
            continue;
        }
        json_object_set_new(results, event_id,
                            error ? json_pack("{s:s}", "error", error) : json_object());
    }
    struct dl_users dl = {0};
    json_array_foreach(edus, i, item)
    {
        if (json_is_object(item)) {
            edu_apply(r, origin, item, &dl);
        } else {
            LOG_INFO("fed", "EDU %zu of transaction %s from %s is not an object", i, txn_id,
                     origin);
        }
    }
    device_lists_mark(r, &dl);

    json_t *answer = json_pack("{s:o}", "pdus", results);
    char *text = json_dumps(answer, JSON_COMPACT);
    json_decref(answer);
    if (!text) {
        return req_fail(r, -ERR_NOMEM, NULL);
    }
    r->result = arena_strdup(&r->arena, text);
    free(text);
    /* Acknowledged only once the accepted PDUs are stored: a failed write
     * answers 500 and records nothing, so the sender tries again. */
    return room_wait_durable(r, txn_answer);
}