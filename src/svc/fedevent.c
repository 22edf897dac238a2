/*
 * Received PDUs: shape, event ID, signatures, content hash (see
 * fedevent.h).
 */
#include "svc/fedevent.h"

#include <stdint.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/json.h"
#include "core/canonjson.h"
#include "core/pdu.h"
#include "core/redact.h"
#include "svc/keyring.h"
#include "svc/srv.h"

struct lookup_ctx {
    struct req *r;
};

/* pdu_key_lookup_fn over the keyring. Before room version 5 a key's
 * validity period is not enforced: any time it was current counts. */
static int lookup(void *ctx, const char *server_name, const char *key_id,
                  int64_t origin_server_ts, bool enforce_valid_until,
                  unsigned char pk[KEYS_PUBLIC_BYTES])
{
    struct lookup_ctx *lc = ctx;
    if (!lc->r->srv->keyring) {
        return -ERR_NOT_FOUND;
    }
    int64_t at = enforce_valid_until ? origin_server_ts : 0;
    int rc = keyring_get(lc->r->srv->keyring, lc->r->db, server_name, key_id, at, pk);
    return rc == 0 ? 0 : -ERR_NOT_FOUND;
}

int fedevent_check(struct req *r, const struct room_version *rv, const json_t *pdu,
                   struct event **out, const char **why)
{
    *why = NULL;
    if (!json_is_object(pdu)) {
        *why = "not an object";
        return -ERR_BAD_JSON;
    }
    json_t *copy = json_arena(&r->arena, json_deep_copy(pdu));
    json_object_del(copy, "unsigned"); /* never trusted from another server */
    const char *event_id = NULL;
    if (event_compute_id(rv, copy, &r->arena, &event_id) != 0) {
        *why = "no event ID can be derived";
        return -ERR_BAD_JSON;
    }
    struct event *ev;
    if (event_parse(&r->arena, rv, copy, event_id, &ev, why) != 0) {
        return -ERR_BAD_JSON;
    }
    struct lookup_ctx lc = {r};
    int rc = pdu_verify_signatures(rv, copy, lookup, &lc);
    if (rc == -ERR_UNAUTHORIZED) {
        *why = "signatures do not verify";
        return rc;
    }
    if (rc < 0) {
        *why = "signatures cannot be checked";
        return -ERR_BAD_JSON;
    }
    rc = pdu_check_hash(rv, copy);
    if (rc == -ERR_FORBIDDEN) {
        /* Spec: a wrong content hash leaves only the redacted event. */
        json_t *pruned = NULL;
        if (redact_event(rv, copy, &pruned) != 0) {
            *why = "cannot be redacted";
            return -ERR_BAD_JSON;
        }
        json_arena(&r->arena, pruned);
        if (event_parse(&r->arena, rv, pruned, event_id, &ev, why) != 0) {
            return -ERR_BAD_JSON;
        }
    } else if (rc < 0) {
        *why = "bad content hash";
        return -ERR_BAD_JSON;
    }
    *out = ev;
    return 0;
}

char *fedevent_canonical(struct req *r, const struct event *ev)
{
    struct buf b = BUF_INIT;
    char *s = NULL;
    if (canonjson_write(&b, ev->json, canonjson_mode_for(ev->rv)) == 0) {
        s = arena_strndup(&r->arena, b.p ? b.p : "", b.len);
    }
    buf_release(&b);
    return s;
}
