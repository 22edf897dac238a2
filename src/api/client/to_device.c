/*
 * Send-to-device messaging (spec "Send-to-Device messaging"): PUT
 * /sendToDevice/{eventType}/{txnId} queues messages for devices, and
 * client__to_device_sync hands a device its queue in /sync.
 *
 * A request takes one STREAM_TO_DEVICE position; its messages are stored
 * under it with the transaction ID in one transaction, so a repeated
 * transaction (same sending device, event type and txnId) sends nothing.
 * A message stays queued until the device syncs with a token whose
 * to-device part is at or past it (the client thereby shows it has it),
 * or until the device is deleted (store_to_device_prune).
 *
 * Messages to users of other servers are grouped by server into one
 * m.direct_to_device EDU each (spec: Server-Server API "Send-to-device
 * messaging") and queued in svc/fedqueue in the same transaction, so an
 * acknowledged request is never lost; the queue is woken after the commit.
 */
#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "api/client/client.h"
#include "api/handlers.h"
#include "base/err.h"
#include "base/json.h"
#include "core/id.h"
#include "http/req.h"
#include "store/store.h"
#include "svc/fedqueue.h"
#include "svc/notify.h"
#include "svc/srv.h"
#include "svc/streams.h"

#define TO_DEVICE_SYNC_LIMIT 100 /* messages per /sync (spec recommendation) */
#define TO_DEVICE_TYPE_MAX 255
#define TO_DEVICE_TXN_MAX 255

/* Checks {messages: {user ID: {device ID or "*": {content}}}} in full
 * before anything is stored. Returns 0 or the failure. */
static int check_body(struct req *r, json_t **messages)
{
    json_t *m = json_object_get(r->json, "messages");
    if (!json_is_object(m)) {
        return req_fail(r, -ERR_BAD_JSON, "'messages' must be an object");
    }
    const char *user_id;
    json_t *by_device;
    json_object_foreach(m, user_id, by_device)
    {
        if (!id_user_valid(user_id, strlen(user_id), false)) {
            return req_fail(r, -ERR_INVALID_PARAM, "'%s' is not a user ID", user_id);
        }
        if (!json_is_object(by_device)) {
            return req_fail(r, -ERR_BAD_JSON, "messages for '%s' must be an object", user_id);
        }
        const char *device_id;
        json_t *content;
        json_object_foreach(by_device, device_id, content)
        {
            if (!*device_id) {
                return req_fail(r, -ERR_INVALID_PARAM, "Empty device ID for '%s'", user_id);
            }
            if (!json_is_object(content)) {
                return req_fail(r, -ERR_BAD_JSON, "message for '%s' '%s' must be an object",
                                user_id, device_id);
            }
        }
    }
    *messages = m;
    return 0;
}

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

/* An arena cleanup dropping a JSON value. */
static void json_release(void *v) { json_decref(v); }

/*
 * Queues one m.direct_to_device EDU per other server for its users'
 * messages, and adds each server to `servers` (a JSON object used as a
 * set, for the wake-ups after the commit). Runs inside the caller's
 * transaction. Without a federation queue (no federation sender)
 * remote users are skipped.
 */
static int queue_remote(struct req *r, const char *type, json_t *messages, json_t *servers)
{
    struct fedqueue *q = r->srv->fedqueue;
    if (!q) {
        return 0;
    }
    json_t *by_server = json_object();
    arena_defer(&r->arena, json_release, by_server);
    const char *user_id;
    json_t *by_device;
    json_object_foreach(messages, user_id, by_device)
    {
        if (client__local_part(r, user_id)) {
            continue;
        }
        const char *server = id_server_part(user_id);
        json_t *m = json_object_get(by_server, server);
        if (!m) {
            m = json_object();
            json_object_set_new(by_server, server, m);
        }
        json_object_set(m, user_id, by_device);
    }
    const char *server;
    json_t *m;
    json_object_foreach(by_server, server, m)
    {
        /* message_id: unique, at most 32 codepoints (spec). */
        unsigned char raw[12];
        char message_id[2 * sizeof(raw) + 1];
        randombytes_buf(raw, sizeof(raw));
        sodium_bin2hex(message_id, sizeof(message_id), raw, sizeof(raw));
        json_t *edu = json_pack("{s:s,s:s,s:s,s:O}", "sender", r->auth.user_id, "type", type,
                                "message_id", message_id, "messages", m);
        char *text = edu ? dump(r, edu) : NULL;
        json_decref(edu);
        if (!text) {
            return -ERR_NOMEM;
        }
        int rc = fedqueue_add_edu(q, r->db, server, "m.direct_to_device", text);
        if (rc < 0) {
            return rc;
        }
        json_object_set_new(servers, server, json_true());
    }
    return 0;
}

/*
 * Stores the transaction and the messages to local users under `pos`;
 * sets woken[i] for the users (in `messages` order) that got at least one
 * message; queues the messages to other servers' users, naming those
 * servers in `servers`. Runs inside the caller's transaction.
 */
static int store_messages(struct req *r, const char *type, const char *txn_id, json_t *messages,
                          int64_t pos, bool *woken, json_t *servers)
{
    int rc = store_to_device_txn_put(r->db, r->auth.user_id, r->auth.device_id, type, txn_id,
                                     req_now_ms());
    if (rc <= 0) {
        return rc; /* 0: a repeat, already delivered once */
    }
    int64_t seq = 0;
    size_t i = 0;
    const char *user_id;
    json_t *by_device;
    json_object_foreach(messages, user_id, by_device)
    {
        if (!client__local_part(r, user_id)) {
            i++;
            continue; /* another server's user: queue_remote */
        }
        const char *device_id;
        json_t *content;
        json_object_foreach(by_device, device_id, content)
        {
            char *text = dump(r, content);
            if (!text) {
                return -ERR_NOMEM;
            }
            rc = store_to_device_add(r->db, user_id, device_id, pos, seq++, r->auth.user_id,
                                     type, text);
            if (rc < 0) {
                return rc;
            }
            woken[i] |= rc > 0;
        }
        i++;
    }
    return queue_remote(r, type, messages, servers);
}

/* PUT /sendToDevice/{eventType}/{txnId} {messages} (spec "PUT
 * /_matrix/client/v3/sendToDevice/{eventType}/{txnId}"). */
int client_send_to_device(struct req *r)
{
    const char *type = r->param[0].p, *txn_id = r->param[1].p;
    if (!*type || strlen(type) > TO_DEVICE_TYPE_MAX) {
        return req_fail(r, -ERR_INVALID_PARAM, "Invalid event type");
    }
    if (!*txn_id || strlen(txn_id) > TO_DEVICE_TXN_MAX) {
        return req_fail(r, -ERR_INVALID_PARAM, "Invalid transaction ID");
    }
    json_t *messages = NULL;
    int rc = check_body(r, &messages);
    if (rc) {
        return rc;
    }
    size_t n_users = json_object_size(messages);
    bool *woken = ARENA_ARRAY(&r->arena, bool, n_users + 1);
    json_t *servers = json_object(); /* other servers with messages queued */
    arena_defer(&r->arena, json_release, servers);
    struct streams *st = r->srv->streams;
    int64_t pos = streams_reserve(st, STREAM_TO_DEVICE);
    rc = store_begin(r->db);
    if (rc == 0) {
        rc = store_messages(r, type, txn_id, messages, pos, woken, servers);
        /* Recorded even when nothing was queued: a position a token may
         * carry is never handed out again after a restart. */
        if (rc >= 0) {
            rc = store_stream_bump(r->db, STREAM_TO_DEVICE, pos);
        }
        rc = store_end(r->db, rc);
    }
    streams_publish(st, STREAM_TO_DEVICE, pos);
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    const char *server;
    json_t *yes;
    json_object_foreach(servers, server, yes)
    {
        fedqueue_wake(r->srv->fedqueue, server);
    }
    if (r->srv->notify) {
        size_t i = 0;
        const char *user_id;
        json_t *by_device;
        json_object_foreach(messages, user_id, by_device)
        {
            if (woken[i++]) {
                notify_stream(r->srv->notify, STREAM_TO_DEVICE, pos, user_id, NULL, 0);
            }
        }
    }
    return req_json(r, 200, json_object());
}

int client__to_device_sync(struct req *r, const char *user_id, const char *device_id,
                           int64_t since, int64_t upto, json_t *events, int64_t *delivered_upto)
{
    *delivered_upto = upto;
    if (!device_id) {
        return 0;
    }
    if (since > 0) {
        int rc = store_to_device_ack(r->db, user_id, device_id, since);
        if (rc < 0) {
            return rc;
        }
    }
    int64_t after = since < 0 ? 0 : since;
    if (after >= upto) {
        return 0;
    }
    struct store_to_device *ms = NULL;
    size_t n = 0;
    int rc = store_to_device_between(r->db, &r->arena, user_id, device_id, after, upto,
                                     TO_DEVICE_SYNC_LIMIT + 1, &ms, &n);
    if (rc < 0) {
        return rc;
    }
    if (n > TO_DEVICE_SYNC_LIMIT) {
        /* More than a batch: stop before the first position left out, so
         * the token's to-device part says where the next sync resumes. */
        int64_t cut = ms[TO_DEVICE_SYNC_LIMIT].stream_pos;
        if (ms[0].stream_pos == cut) {
            /* One request left more than a batch at a single position
             * (several keys for one device): deliver that position whole. */
            rc = store_to_device_between(r->db, &r->arena, user_id, device_id, after, cut, 0,
                                         &ms, &n);
            if (rc < 0) {
                return rc;
            }
            *delivered_upto = cut;
        } else {
            while (n > 0 && ms[n - 1].stream_pos >= cut) {
                n--;
            }
            *delivered_upto = cut - 1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        json_t *content = json_loads(ms[i].content, JSON_DECODE_ANY, NULL);
        if (!content) {
            content = json_object();
        }
        json_array_append_new(events, json_pack("{s:s,s:s,s:o}", "sender", ms[i].sender, "type",
                                                ms[i].type, "content", content));
    }
    return 0;
}

/* ---- messages from other servers (api/federation/send.c) ---- */

int client__to_device_deliver(struct req *r, const char *origin, const char *message_id,
                              const char *sender, const char *type, const json_t *messages)
{
    json_t *m = (json_t *)messages; /* json_object_foreach takes no const */
    size_t n_users = json_object_size(m);
    bool *woken = ARENA_ARRAY(&r->arena, bool, n_users + 1);
    struct streams *st = r->srv->streams;
    int64_t pos = streams_reserve(st, STREAM_TO_DEVICE);
    int fresh = 0;
    int rc = store_begin(r->db);
    if (rc == 0) {
        /* The message ID is recorded with the messages, so a message that
         * arrives twice (a retried or concurrent transaction) is queued
         * once, whichever copy commits first. */
        fresh = store_fed_to_device_seen(r->db, origin, message_id, req_now_ms());
        rc = fresh < 0 ? fresh : 0;
        int64_t seq = 0;
        size_t i = 0;
        const char *user_id;
        json_t *by_device;
        json_object_foreach(m, user_id, by_device)
        {
            if (fresh <= 0 || rc < 0) {
                break;
            }
            if (client__local_part(r, user_id)) {
                const char *device_id;
                json_t *content;
                json_object_foreach(by_device, device_id, content)
                {
                    char *text = dump(r, content);
                    rc = text ? store_to_device_add(r->db, user_id, device_id, pos, seq++,
                                                    sender, type, text)
                              : -ERR_NOMEM;
                    if (rc < 0) {
                        break;
                    }
                    woken[i] |= rc > 0;
                    rc = 0;
                }
            }
            i++;
        }
        if (rc >= 0) {
            rc = store_stream_bump(r->db, STREAM_TO_DEVICE, pos);
        }
        rc = store_end(r->db, rc);
    }
    streams_publish(st, STREAM_TO_DEVICE, pos);
    if (rc < 0) {
        return rc;
    }
    if (r->srv->notify) {
        size_t i = 0;
        const char *user_id;
        json_t *by_device;
        json_object_foreach(m, user_id, by_device)
        {
            if (woken[i++]) {
                notify_stream(r->srv->notify, STREAM_TO_DEVICE, pos, user_id, NULL, 0);
            }
        }
    }
    return fresh;
}
