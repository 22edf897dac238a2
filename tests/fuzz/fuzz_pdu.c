/*
 * Fuzz target: PDUs. The input is parsed once and treated as a PDU of
 * every room version: event ID, content and reference hashes, redaction,
 * event_parse, the signing servers and a signature check against a fixed
 * key. Nothing may crash, leak or trip the sanitizers, and a few
 * invariants must hold (redaction is idempotent; an event's ID does not
 * change when it is redacted).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"
#include "base/err.h"
#include "core/canonjson.h"
#include "core/event.h"
#include "core/pdu.h"
#include "core/redact.h"
#include "core/roomver.h"

static int lookup(void *ctx, const char *server_name, const char *key_id, int64_t ts,
                  bool enforce, unsigned char pk[KEYS_PUBLIC_BYTES])
{
    if (strcmp(key_id, "ed25519:1") != 0) {
        return -ERR_NOT_FOUND;
    }
    memset(pk, 0x42, KEYS_PUBLIC_BYTES);
    return 0;
}

static void one_version(const struct room_version *rv, json_t *pdu)
{
    struct arena arena;
    arena_init(&arena);
    unsigned char hash[PDU_HASH_BYTES];
    const char *id = NULL;
    int id_rc = event_compute_id(rv, pdu, &arena, &id);
    (void)pdu_content_hash(rv, pdu, hash);
    (void)pdu_check_hash(rv, pdu);
    (void)pdu_verify_signatures(rv, pdu, lookup, NULL);
    const char **servers;
    (void)pdu_signing_servers(rv, pdu, &arena, &servers);
    const char *room_id;
    (void)event_compute_room_id(rv, pdu, &arena, &room_id);

    json_t *r1 = NULL, *r2 = NULL;
    if (redact_event(rv, pdu, &r1) == 0) {
        if (redact_event(rv, r1, &r2) != 0 || !json_equal(r1, r2)) {
            abort(); /* redacting a redacted event changes nothing */
        }
        if (id_rc == 0 && rv->event_format != EVENT_FORMAT_V1) {
            const char *id2 = NULL;
            if (event_compute_id(rv, r1, &arena, &id2) != 0 || strcmp(id, id2) != 0) {
                abort(); /* the reference hash covers only the redacted form */
            }
        }
    }
    json_decref(r1);
    json_decref(r2);

    struct event *ev;
    const char *why = NULL;
    if (event_parse(&arena, rv, pdu, id_rc == 0 ? id : NULL, &ev, &why) != 0 && !why) {
        abort();
    }
    arena_release(&arena);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *pdu = NULL;
    if (canonjson_parse((const char *)data, size, &pdu, NULL) != 0) {
        return 0;
    }
    size_t n;
    const struct room_version *all = roomver_all(&n);
    for (size_t i = 0; i < n; i++) {
        one_version(&all[i], pdu);
    }
    json_decref(pdu);
    return 0;
}
