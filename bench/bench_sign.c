/*
 * Signing benchmark. Prints, for a typical ~1 KB message PDU in room
 * version 12:
 *   - signing throughput (events/s): content hash, redaction, canonical
 *     JSON of the redacted event and an ed25519 signature (pdu_sign);
 *   - verification throughput (events/s): content hash check plus
 *     redaction, canonical JSON and one ed25519 verification
 *     (pdu_check_hash + pdu_verify_signatures);
 *   - event ID throughput (events/s): the reference hash (event_compute_id);
 *   - canonical JSON encoding throughput (MB/s of output) for the PDU.
 * Each figure is the best of a few timed rounds.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/arena.h"
#include "base/buf.h"
#include "base/err.h"
#include "core/canonjson.h"
#include "core/keys.h"
#include "core/pdu.h"
#include "core/roomver.h"

#define ROUNDS 5

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A message of about 1 KB: a formatted body, mentions, relations. */
static json_t *make_pdu(void)
{
    char body[80];
    memset(body, 'x', sizeof(body) - 1);
    body[sizeof(body) - 1] = '\0';
    return json_pack(
        "{s:s,s:s,s:s,s:I,s:i,s:[s,s,s],s:[s,s],s:{s:s,s:s,s:s,s:s,s:{s:[s]},"
        "s:{s:{s:s}}},s:{},s:{s:i}}",
        "type", "m.room.message", "room_id", "!Nhcu5BS-UMnFX7hBVfVSoXiD7OgH6iRT-xyIuqDnpYQ",
        "sender", "@alice:example.org", "origin_server_ts", (json_int_t)1700000000000LL, "depth",
        4242, "auth_events", "$Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg",
        "$zvlMy2q4oaBEAJCE8zcbfB4xmpfZ2xrxu1BwiaaDFOE", "$fLfMBYVHmu9jH2LQqv0jIWSFsUbg6OnIVNB2LZgvDx4",
        "prev_events", "$WXLVNPoC7RPhFJUEfP9Awq2YTNmoLekpG7tP68BnJZQ",
        "$3brEpwR3y6JxrN9eTUvrURfVWoJxVZmAWxGd4aUCV3g", "content", "msgtype", "m.text", "body",
        body, "format", "org.matrix.custom.html", "formatted_body",
        "<p>Hello <b>world</b>, this is a benchmark message with a little markup.</p>",
        "m.mentions", "user_ids", "@bob:example.org", "m.relates_to", "m.in_reply_to",
        "event_id", "$rVAUh3Jdu9k8GFZ4aBB4zjOcGKn1kPQaVQdVbnxeG8c", "signatures", "unsigned",
        "age", 12);
}

static int lookup(void *ctx, const char *server_name, const char *key_id, int64_t ts,
                  bool enforce, unsigned char pk[KEYS_PUBLIC_BYTES])
{
    const struct signing_key *key = ctx;
    if (strcmp(key_id, key->key_id) != 0) {
        return -ERR_NOT_FOUND;
    }
    memcpy(pk, key->pk, KEYS_PUBLIC_BYTES);
    return 0;
}

int main(void)
{
    const struct room_version *rv = roomver_get("12");
    struct signing_key key;
    const char *line = "ed25519 bench YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1";
    if (keys_parse(line, strlen(line), &key) != 0) {
        fprintf(stderr, "bench_sign: key\n");
        return 1;
    }
    json_t *pdu = make_pdu();
    struct buf canon = BUF_INIT;
    if (pdu_sign(rv, pdu, &key, "example.org") != 0 ||
        canonjson_write(&canon, pdu, CANONJSON_STRICT) != 0) {
        fprintf(stderr, "bench_sign: cannot sign the sample PDU\n");
        return 1;
    }
    size_t pdu_bytes = canon.len;
    printf("sample PDU: %zu bytes of canonical JSON (room version %s)\n", pdu_bytes, rv->id);

    const int n_sign = 20000, n_encode = 200000;
    double best_sign = 0, best_verify = 0, best_id = 0, best_mb = 0;
    for (int round = 0; round < ROUNDS; round++) {
        double t0 = now_s();
        for (int i = 0; i < n_sign; i++) {
            /* A shallow copy: pdu_sign replaces "hashes" on the copy and
             * re-sets the same signature in the shared signatures object. */
            json_t *copy = json_copy(pdu);
            pdu_sign(rv, copy, &key, "example.org");
            json_decref(copy);
        }
        double rate = n_sign / (now_s() - t0);
        best_sign = rate > best_sign ? rate : best_sign;

        t0 = now_s();
        for (int i = 0; i < n_sign; i++) {
            if (pdu_check_hash(rv, pdu) != 0 || pdu_verify_signatures(rv, pdu, lookup, &key) != 0) {
                fprintf(stderr, "bench_sign: verification failed\n");
                return 1;
            }
        }
        rate = n_sign / (now_s() - t0);
        best_verify = rate > best_verify ? rate : best_verify;

        t0 = now_s();
        for (int i = 0; i < n_sign; i++) {
            struct arena a;
            arena_init(&a);
            const char *id;
            event_compute_id(rv, pdu, &a, &id);
            arena_release(&a);
        }
        rate = n_sign / (now_s() - t0);
        best_id = rate > best_id ? rate : best_id;

        t0 = now_s();
        for (int i = 0; i < n_encode; i++) {
            buf_reset(&canon);
            canonjson_write(&canon, pdu, CANONJSON_STRICT);
        }
        double mb = (double)n_encode * (double)pdu_bytes / 1e6 / (now_s() - t0);
        best_mb = mb > best_mb ? mb : best_mb;
    }
    printf("sign     (content hash, redact, canonical, ed25519):  %8.0f events/s\n", best_sign);
    printf("verify   (hash check, redact, canonical, ed25519):    %8.0f events/s\n", best_verify);
    printf("event ID (redact, canonical, SHA-256):                %8.0f events/s\n", best_id);
    printf("canonical JSON encode:                                %8.1f MB/s\n", best_mb);
    buf_release(&canon);
    json_decref(pdu);
    keys_wipe(&key);
    return 0;
}
