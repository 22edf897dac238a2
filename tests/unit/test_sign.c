/*
 * Unit tests for signing: the spec's JSON signing and event signing test
 * vectors (tests/vectors/signing.json, event_signing.json; appendix
 * "Cryptographic Test Vectors"), verification failures (tampered content,
 * wrong key, missing or malformed signatures), unpadded base64 in both
 * alphabets, content and reference hashes, event IDs for the v3 and v4
 * formats and the v12 room ID (tests/vectors/event_ids.json), and which
 * servers must sign an event.
 */
#include <string.h>

#include "base/arena.h"
#include "base/buf.h"
#include "base/err.h"
#include "core/canonjson.h"
#include "core/keys.h"
#include "core/pdu.h"
#include "core/redact.h"
#include "core/roomver.h"
#include "core/sign.h"
#include "unit.h"
#include "vectors.h"

/* The key of a vector file: "ed25519 <version> <seed>" from its fields. */
static void vector_key(const json_t *doc, struct signing_key *key)
{
    const char *key_id = json_string_value(json_object_get(doc, "key_id"));
    const char *seed = json_string_value(json_object_get(doc, "seed"));
    char line[128];
    snprintf(line, sizeof(line), "ed25519 %s %s", strchr(key_id, ':') + 1, seed);
    assert_int_equal(keys_parse(line, strlen(line), key), 0);
    assert_string_equal(key->key_id, key_id);
}

static void assert_json_equal(const json_t *got, const json_t *want)
{
    if (!json_equal((json_t *)got, (json_t *)want)) {
        char *g = json_dumps(got, JSON_SORT_KEYS | JSON_COMPACT);
        char *w = json_dumps(want, JSON_SORT_KEYS | JSON_COMPACT);
        print_error("got  %s\nwant %s\n", g, w);
        free(g);
        free(w);
        fail();
    }
}

static const char *sig_of(const json_t *obj, const char *entity, const char *key_id)
{
    return json_string_value(
        json_object_get(json_object_get(json_object_get(obj, "signatures"), entity), key_id));
}

/* ---- base64 ---- */

static void test_base64(void **state)
{
    /* Appendix "Unpadded Base64" examples. */
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const enc[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        char out[16];
        size_t n = keys_b64_encode((const unsigned char *)plain[i], strlen(plain[i]), out);
        assert_int_equal(n, strlen(enc[i]));
        assert_string_equal(out, enc[i]);
        keys_b64url_encode((const unsigned char *)plain[i], strlen(plain[i]), out);
        assert_string_equal(out, enc[i]);
    }
    /* 62 and 63: '+' '/' in the standard alphabet, '-' '_' URL-safe. */
    const unsigned char hi[] = {0xfb, 0xff, 0xbf};
    char std[8], url[8];
    keys_b64_encode(hi, 3, std);
    keys_b64url_encode(hi, 3, url);
    assert_string_equal(std, "+/+/");
    assert_string_equal(url, "-_-_");
}

/* ---- JSON signing ---- */

static void test_json_vectors(void **state)
{
    json_t *doc = vectors_load("signing.json");
    struct signing_key key;
    vector_key(doc, &key);
    const char *entity = json_string_value(json_object_get(doc, "server_name"));
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(doc, "cases"), i, c) {
        json_t *obj = json_deep_copy(json_object_get(c, "input"));
        const json_t *want = json_object_get(c, "output");
        assert_int_equal(sign_json_add(obj, &key, entity, CANONJSON_STRICT), 0);
        assert_json_equal(obj, want);
        /* The published signatures verify with the published key. */
        assert_int_equal(sign_json_verify(want, entity, key.key_id, key.pk, CANONJSON_STRICT), 0);
        json_decref(obj);
    }
    keys_wipe(&key);
    json_decref(doc);
}

static void test_verify_failures(void **state)
{
    json_t *doc = vectors_load("signing.json");
    struct signing_key key, other;
    vector_key(doc, &key);
    const char *line = "ed25519 2 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    assert_int_equal(keys_parse(line, strlen(line), &other), 0);
    json_t *signed_ = json_deep_copy(
        json_object_get(json_array_get(json_object_get(doc, "cases"), 1), "output"));

    /* Wrong key. */
    assert_int_equal(sign_json_verify(signed_, "domain", "ed25519:1", other.pk, CANONJSON_STRICT),
                     -ERR_UNAUTHORIZED);
    /* Missing: unknown entity, unknown key ID, an algorithm we do not know. */
    assert_int_equal(sign_json_verify(signed_, "other", "ed25519:1", key.pk, CANONJSON_STRICT),
                     -ERR_NOT_FOUND);
    assert_int_equal(sign_json_verify(signed_, "domain", "ed25519:2", key.pk, CANONJSON_STRICT),
                     -ERR_NOT_FOUND);
    assert_int_equal(sign_json_verify(signed_, "domain", "curve:1", key.pk, CANONJSON_STRICT),
                     -ERR_NOT_FOUND);
    /* `unsigned` is not covered: adding it keeps the signature valid. */
    json_object_set_new(signed_, "unsigned", json_pack("{s:i}", "age_ts", 5));
    assert_int_equal(sign_json_verify(signed_, "domain", "ed25519:1", key.pk, CANONJSON_STRICT), 0);
    /* Tampered content. */
    json_object_set_new(signed_, "two", json_string("Three"));
    assert_int_equal(sign_json_verify(signed_, "domain", "ed25519:1", key.pk, CANONJSON_STRICT),
                     -ERR_UNAUTHORIZED);
    json_object_set_new(signed_, "two", json_string("Two"));
    json_object_set_new(signed_, "three", json_integer(3));
    assert_int_equal(sign_json_verify(signed_, "domain", "ed25519:1", key.pk, CANONJSON_STRICT),
                     -ERR_UNAUTHORIZED);
    json_object_del(signed_, "three");
    assert_int_equal(sign_json_verify(signed_, "domain", "ed25519:1", key.pk, CANONJSON_STRICT), 0);
    /* Malformed signatures: not base64, truncated, a number. */
    json_t *mine = json_object_get(json_object_get(signed_, "signatures"), "domain");
    json_object_set_new(mine, "ed25519:x", json_string("!!!!"));
    json_object_set_new(mine, "ed25519:y", json_string("KqmLSbO39"));
    json_object_set_new(mine, "ed25519:z", json_integer(1));
    assert_int_equal(sign_json_verify(signed_, "domain", "ed25519:x", key.pk, CANONJSON_STRICT),
                     -ERR_UNAUTHORIZED);
    assert_int_equal(sign_json_verify(signed_, "domain", "ed25519:y", key.pk, CANONJSON_STRICT),
                     -ERR_UNAUTHORIZED);
    assert_int_equal(sign_json_verify(signed_, "domain", "ed25519:z", key.pk, CANONJSON_STRICT),
                     -ERR_NOT_FOUND);
    /* A float makes the object unverifiable in strict mode. */
    json_object_set_new(signed_, "f", json_real(0.5));
    assert_int_equal(sign_json_verify(signed_, "domain", "ed25519:1", key.pk, CANONJSON_STRICT),
                     -ERR_BAD_JSON);
    json_decref(signed_);
    keys_wipe(&key);
    keys_wipe(&other);
    json_decref(doc);
}

static void test_sign_preserves(void **state)
{
    struct signing_key a, b;
    const char *la = "ed25519 a YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1";
    const char *lb = "ed25519 b AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    assert_int_equal(keys_parse(la, strlen(la), &a), 0);
    assert_int_equal(keys_parse(lb, strlen(lb), &b), 0);
    json_t *obj = json_pack("{s:s,s:{s:i},s:{s:{s:s}}}", "x", "y", "unsigned", "age", 1,
                            "signatures", "third.org", "ed25519:q", "c2ln");
    assert_int_equal(sign_json_add(obj, &a, "one.org", CANONJSON_STRICT), 0);
    assert_int_equal(sign_json_add(obj, &b, "one.org", CANONJSON_STRICT), 0);
    assert_int_equal(sign_json_add(obj, &b, "two.org", CANONJSON_STRICT), 0);
    assert_string_equal(sig_of(obj, "third.org", "ed25519:q"), "c2ln");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(obj, "unsigned"), "age")),
                     1);
    assert_int_equal(sign_json_verify(obj, "one.org", "ed25519:a", a.pk, CANONJSON_STRICT), 0);
    assert_int_equal(sign_json_verify(obj, "one.org", "ed25519:b", b.pk, CANONJSON_STRICT), 0);
    assert_int_equal(sign_json_verify(obj, "two.org", "ed25519:b", b.pk, CANONJSON_STRICT), 0);

    struct arena arena;
    arena_init(&arena);
    const char **ids;
    json_object_set_new(json_object_get(json_object_get(obj, "signatures"), "one.org"),
                        "curve25519:c", json_string("c2ln"));
    size_t n = sign_json_key_ids(obj, "one.org", &arena, &ids);
    assert_int_equal(n, 2);
    assert_true(strcmp(ids[0], "ed25519:a") == 0 || strcmp(ids[1], "ed25519:a") == 0);
    assert_int_equal(sign_json_key_ids(obj, "nobody.org", &arena, &ids), 0);
    arena_release(&arena);

    /* Shapes that cannot take a signature. */
    json_t *bad = json_pack("{s:s}", "signatures", "x");
    assert_int_equal(sign_json_add(bad, &a, "one.org", CANONJSON_STRICT), -ERR_BAD_JSON);
    json_decref(bad);
    bad = json_pack("{s:{s:i}}", "signatures", "one.org", 1);
    assert_int_equal(sign_json_add(bad, &a, "one.org", CANONJSON_STRICT), -ERR_BAD_JSON);
    json_decref(bad);
    bad = json_pack("{s:f}", "f", 1.5);
    assert_int_equal(sign_json_add(bad, &a, "one.org", CANONJSON_STRICT), -ERR_BAD_JSON);
    assert_null(json_object_get(bad, "signatures"));
    assert_int_equal(sign_json_add(bad, &a, "one.org", CANONJSON_LENIENT), 0);
    json_decref(bad);
    json_decref(obj);
    keys_wipe(&a);
    keys_wipe(&b);
}

/* ---- events ---- */

struct lookup_ctx {
    const char *server;
    const char *key_id;
    const unsigned char *pk;
    const char *server2; /* an optional second known key */
    const char *key_id2;
    const unsigned char *pk2;
    int calls;
    int64_t last_ts;
    bool last_enforce;
    int fail_with; /* returned instead of a key when non-zero */
};

static int lookup(void *p, const char *server_name, const char *key_id, int64_t ts, bool enforce,
                  unsigned char pk[KEYS_PUBLIC_BYTES])
{
    struct lookup_ctx *c = p;
    c->calls++;
    c->last_ts = ts;
    c->last_enforce = enforce;
    if (c->fail_with) {
        return c->fail_with;
    }
    if (strcmp(server_name, c->server) == 0 && strcmp(key_id, c->key_id) == 0) {
        memcpy(pk, c->pk, KEYS_PUBLIC_BYTES);
        return 0;
    }
    if (c->server2 && strcmp(server_name, c->server2) == 0 && strcmp(key_id, c->key_id2) == 0) {
        memcpy(pk, c->pk2, KEYS_PUBLIC_BYTES);
        return 0;
    }
    return -ERR_NOT_FOUND;
}

static void test_event_vectors(void **state)
{
    json_t *doc = vectors_load("event_signing.json");
    struct signing_key key;
    vector_key(doc, &key);
    const char *server = json_string_value(json_object_get(doc, "server_name"));
    const struct room_version *rv =
        roomver_get(json_string_value(json_object_get(doc, "room_version")));
    assert_non_null(rv);
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(doc, "cases"), i, c) {
        json_t *pdu = json_deep_copy(json_object_get(c, "input"));
        const json_t *want = json_object_get(c, "output");
        assert_int_equal(pdu_sign(rv, pdu, &key, server), 0);
        assert_json_equal(pdu, want);
        assert_int_equal(pdu_check_hash(rv, want), 0);
        /* Verification needs an event_id in v1/v2 (its domain must sign
         * too); versions 3-5 redact the same way, so the first vector is
         * checked under version 3. */
        const struct room_version *vrv = json_object_get(want, "event_id") ? rv : roomver_get("3");
        struct lookup_ctx ctx = {.server = server, .key_id = key.key_id, .pk = key.pk};
        assert_int_equal(pdu_verify_signatures(vrv, want, lookup, &ctx), 0);
        assert_int_equal(ctx.calls, 1);
        assert_int_equal(ctx.last_ts, 1000000);
        assert_false(ctx.last_enforce); /* v1-v4 ignore valid_until_ts */
        json_decref(pdu);
    }
    keys_wipe(&key);
    json_decref(doc);
}

static void test_event_tampering(void **state)
{
    json_t *doc = vectors_load("event_signing.json");
    struct signing_key key;
    vector_key(doc, &key);
    const struct room_version *rv = roomver_get("1");
    /* The message event: its body is redactable. */
    json_t *pdu =
        json_deep_copy(json_object_get(json_array_get(json_object_get(doc, "cases"), 1), "output"));
    struct lookup_ctx ctx = {.server = "domain", .key_id = "ed25519:1", .pk = key.pk};

    /* Changing redactable content breaks the hash but not the signature:
     * the receiver then keeps the redacted copy. */
    json_object_set_new(json_object_get(pdu, "content"), "body", json_string("forged"));
    assert_int_equal(pdu_check_hash(rv, pdu), -ERR_FORBIDDEN);
    assert_int_equal(pdu_verify_signatures(rv, pdu, lookup, &ctx), 0);
    /* The redacted copy still verifies (signatures survive redaction). */
    json_t *redacted;
    assert_int_equal(redact_event(rv, pdu, &redacted), 0);
    assert_int_equal(pdu_verify_signatures(rv, redacted, lookup, &ctx), 0);
    json_decref(redacted);
    /* Changing a protected key breaks the signature. */
    json_object_set_new(pdu, "origin_server_ts", json_integer(1000001));
    assert_int_equal(pdu_verify_signatures(rv, pdu, lookup, &ctx), -ERR_UNAUTHORIZED);
    json_object_set_new(pdu, "origin_server_ts", json_integer(1000000));
    assert_int_equal(pdu_verify_signatures(rv, pdu, lookup, &ctx), 0);

    /* Wrong key for the right key ID. */
    struct signing_key other;
    const char *line = "ed25519 1 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    assert_int_equal(keys_parse(line, strlen(line), &other), 0);
    struct lookup_ctx wrong = {.server = "domain", .key_id = "ed25519:1", .pk = other.pk};
    assert_int_equal(pdu_verify_signatures(rv, pdu, lookup, &wrong), -ERR_UNAUTHORIZED);
    /* Only unknown keys: no verifiable signature. */
    struct lookup_ctx unknown = {.server = "domain", .key_id = "ed25519:zz", .pk = key.pk};
    assert_int_equal(pdu_verify_signatures(rv, pdu, lookup, &unknown), -ERR_UNAUTHORIZED);
    /* A lookup failure other than "not found" is passed up. */
    struct lookup_ctx down = {.server = "domain", .key_id = "ed25519:1", .pk = key.pk, .fail_with = -ERR_UNAVAILABLE};
    assert_int_equal(pdu_verify_signatures(rv, pdu, lookup, &down), -ERR_UNAVAILABLE);
    /* An unknown extra key next to the good one is skipped. */
    json_t *mine = json_object_get(json_object_get(pdu, "signatures"), "domain");
    json_object_set_new(mine, "ed25519:old", json_string("c2ln"));
    assert_int_equal(pdu_verify_signatures(rv, pdu, lookup, &ctx), 0);
    /* Missing signature of the sender's server. */
    json_object_del(json_object_get(pdu, "signatures"), "domain");
    assert_int_equal(pdu_verify_signatures(rv, pdu, lookup, &ctx), -ERR_UNAUTHORIZED);
    /* Missing hash. */
    json_object_del(pdu, "hashes");
    assert_int_equal(pdu_check_hash(rv, pdu), -ERR_BAD_JSON);

    json_decref(pdu);
    keys_wipe(&key);
    keys_wipe(&other);
    json_decref(doc);
}

/* A minimal v4+-shaped event sent by @a:<sender_server>. */
static json_t *make_event(const char *type, const char *sender, json_t *content)
{
    return json_pack("{s:s,s:s,s:s,s:i,s:i,s:[],s:[],s:o,s:{}}", "type", type, "room_id",
                     "!r:one.org", "sender", sender, "origin_server_ts", 1234, "depth", 3,
                     "prev_events", "auth_events", "content", content, "signatures");
}

static void test_signing_servers(void **state)
{
    struct arena arena;
    arena_init(&arena);
    const char **servers;

    /* v3+: the sender's server only. */
    json_t *ev = make_event("m.room.message", "@a:one.org", json_object());
    assert_int_equal(pdu_signing_servers(roomver_get("10"), ev, &arena, &servers), 1);
    assert_string_equal(servers[0], "one.org");
    /* v1/v2: also the event ID's domain, once. */
    json_object_set_new(ev, "event_id", json_string("$x:two.org"));
    assert_int_equal(pdu_signing_servers(roomver_get("1"), ev, &arena, &servers), 2);
    assert_string_equal(servers[1], "two.org");
    json_object_set_new(ev, "event_id", json_string("$x:one.org"));
    assert_int_equal(pdu_signing_servers(roomver_get("2"), ev, &arena, &servers), 1);
    json_object_del(ev, "event_id");
    assert_int_equal(pdu_signing_servers(roomver_get("1"), ev, &arena, &servers), -ERR_BAD_JSON);
    json_object_set_new(ev, "sender", json_string("nocolon"));
    assert_int_equal(pdu_signing_servers(roomver_get("10"), ev, &arena, &servers), -ERR_BAD_JSON);
    json_decref(ev);

    /* v8+: a restricted join also needs the authorising user's server. */
    ev = make_event("m.room.member", "@a:one.org",
                    json_pack("{s:s,s:s}", "membership", "join",
                              "join_authorised_via_users_server", "@b:three.org:8448"));
    assert_int_equal(pdu_signing_servers(roomver_get("7"), ev, &arena, &servers), 1);
    assert_int_equal(pdu_signing_servers(roomver_get("8"), ev, &arena, &servers), 2);
    assert_string_equal(servers[1], "three.org:8448");
    assert_int_equal(pdu_signing_servers(roomver_get("12"), ev, &arena, &servers), 2);
    json_decref(ev);

    /* Invites from third-party invites may come from another server. */
    ev = make_event("m.room.member", "@a:one.org",
                    json_pack("{s:s,s:{s:{}}}", "membership", "invite", "third_party_invite",
                              "signed"));
    assert_int_equal(pdu_signing_servers(roomver_get("10"), ev, &arena, &servers), 0);
    json_decref(ev);
    arena_release(&arena);
}

static void test_restricted_join_signatures(void **state)
{
    struct signing_key a, b;
    const char *la = "ed25519 a YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1";
    const char *lb = "ed25519 b AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    assert_int_equal(keys_parse(la, strlen(la), &a), 0);
    assert_int_equal(keys_parse(lb, strlen(lb), &b), 0);
    const struct room_version *rv = roomver_get("9");
    json_t *ev = make_event("m.room.member", "@a:one.org",
                            json_pack("{s:s,s:s}", "membership", "join",
                                      "join_authorised_via_users_server", "@b:two.org"));
    json_object_set_new(ev, "state_key", json_string("@a:one.org"));
    assert_int_equal(pdu_sign(rv, ev, &a, "one.org"), 0);
    struct lookup_ctx ctx = {.server = "one.org", .key_id = "ed25519:a", .pk = a.pk};
    /* Without two.org's signature the event fails. */
    assert_int_equal(pdu_verify_signatures(rv, ev, lookup, &ctx), -ERR_UNAUTHORIZED);
    assert_int_equal(pdu_sign(rv, ev, &b, "two.org"), 0);
    assert_non_null(sig_of(ev, "one.org", "ed25519:a"));
    assert_non_null(sig_of(ev, "two.org", "ed25519:b"));
    assert_int_equal(pdu_check_hash(rv, ev), 0);
    assert_int_equal(pdu_verify_signatures(rv, ev, lookup, &ctx), -ERR_UNAUTHORIZED);
    ctx.server2 = "two.org";
    ctx.key_id2 = "ed25519:b";
    ctx.pk2 = b.pk;
    assert_int_equal(pdu_verify_signatures(rv, ev, lookup, &ctx), 0);
    /* Before v8 the authorising server's signature is not required. */
    struct lookup_ctx one = {.server = "one.org", .key_id = "ed25519:a", .pk = a.pk};
    json_t *copy = make_event("m.room.member", "@a:one.org",
                              json_pack("{s:s,s:s}", "membership", "join",
                                        "join_authorised_via_users_server", "@b:two.org"));
    assert_int_equal(pdu_sign(roomver_get("7"), copy, &a, "one.org"), 0);
    assert_int_equal(pdu_verify_signatures(roomver_get("7"), copy, lookup, &one), 0);
    assert_int_equal(pdu_verify_signatures(roomver_get("8"), copy, lookup, &one), -ERR_UNAUTHORIZED);
    json_decref(copy);
    assert_true(ctx.last_enforce); /* v5+: valid_until_ts applies */
    assert_int_equal(ctx.last_ts, 1234);
    json_decref(ev);
    keys_wipe(&a);
    keys_wipe(&b);
}

static void test_event_ids(void **state)
{
    json_t *doc = vectors_load("event_ids.json");
    struct arena arena;
    arena_init(&arena);
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(doc, "cases"), i, c) {
        const json_t *pdu = json_object_get(c, "pdu");
        const char *want_canon = json_string_value(json_object_get(c, "redacted_canonical"));
        size_t j;
        json_t *v;
        json_array_foreach(json_object_get(c, "room_versions"), j, v) {
            const struct room_version *rv = roomver_get(json_string_value(v));
            json_t *redacted;
            assert_int_equal(redact_event(rv, pdu, &redacted), 0);
            static const char *const skip[] = {"signatures", "unsigned", NULL};
            struct buf canon = BUF_INIT;
            assert_int_equal(
                canonjson_write_except(&canon, redacted, canonjson_mode_for(rv), skip), 0);
            assert_string_equal(canon.p, want_canon);
            buf_release(&canon);
            json_decref(redacted);
        }
        const char *key;
        json_object_foreach(json_object_get(c, "event_id"), key, v) {
            const char *id;
            assert_int_equal(event_compute_id(roomver_get(key), pdu, &arena, &id), 0);
            assert_string_equal(id, json_string_value(v));
        }
        const char *want_room = json_string_value(json_object_get(c, "room_id"));
        if (want_room) {
            const char *room;
            assert_int_equal(event_compute_room_id(roomver_get("12"), pdu, &arena, &room), 0);
            assert_string_equal(room, want_room);
            /* Only v12 derives the room ID from the create event. */
            assert_int_equal(event_compute_room_id(roomver_get("11"), pdu, &arena, &room),
                             -ERR_BAD_JSON);
        }
    }
    /* v3 and v4 differ only in the alphabet: "+/" against "-_". */
    const json_t *first = json_object_get(json_array_get(json_object_get(doc, "cases"), 0), "pdu");
    const char *v3, *v4;
    assert_int_equal(event_compute_id(roomver_get("3"), first, &arena, &v3), 0);
    assert_int_equal(event_compute_id(roomver_get("4"), first, &arena, &v4), 0);
    assert_true(strpbrk(v3, "+/") != NULL);
    assert_null(strpbrk(v4, "+/"));
    assert_int_equal(strlen(v3), 44);
    assert_int_equal(strlen(v4), 44);
    for (size_t k = 0; v3[k]; k++) {
        char want = v3[k] == '+' ? '-' : v3[k] == '/' ? '_' : v3[k];
        assert_int_equal(v4[k], want);
    }
    /* v1/v2 take the ID from the PDU, and need one. */
    const char *id;
    assert_int_equal(event_compute_id(roomver_get("1"), first, &arena, &id), -ERR_BAD_JSON);
    json_t *with_id = json_deep_copy(first);
    json_object_set_new(with_id, "event_id", json_string("$abc:example.org"));
    assert_int_equal(event_compute_id(roomver_get("2"), with_id, &arena, &id), 0);
    assert_string_equal(id, "$abc:example.org");
    /* The ID covers only the redacted form: unsigned and content do not
     * change it, protected keys do. */
    const char *before, *after;
    assert_int_equal(event_compute_id(roomver_get("10"), with_id, &arena, &before), 0);
    json_object_set_new(with_id, "unsigned", json_pack("{s:i}", "age", 99));
    json_object_set_new(json_object_get(with_id, "content"), "body", json_string("changed"));
    assert_int_equal(event_compute_id(roomver_get("10"), with_id, &arena, &after), 0);
    assert_string_equal(before, after);
    json_object_set_new(with_id, "depth", json_integer(8));
    assert_int_equal(event_compute_id(roomver_get("10"), with_id, &arena, &after), 0);
    assert_string_not_equal(before, after);
    /* Strict versions refuse what has no canonical form. */
    json_object_set_new(with_id, "depth", json_real(8.5));
    assert_int_equal(event_compute_id(roomver_get("10"), with_id, &arena, &after), -ERR_BAD_JSON);
    assert_int_equal(event_compute_id(roomver_get("4"), with_id, &arena, &after), 0);
    json_decref(with_id);
    arena_release(&arena);
    json_decref(doc);
}

static void test_content_hash(void **state)
{
    const struct room_version *rv = roomver_get("12");
    json_t *ev = make_event("m.room.message", "@a:one.org", json_pack("{s:s}", "body", "x"));
    assert_int_equal(pdu_check_hash(rv, ev), -ERR_BAD_JSON); /* no hashes yet */
    assert_int_equal(pdu_hash_add(rv, ev), 0);
    assert_int_equal(pdu_check_hash(rv, ev), 0);
    /* signatures, unsigned and hashes themselves are outside the hash. */
    json_object_set_new(ev, "unsigned", json_pack("{s:i}", "age", 1));
    json_object_set_new(json_object_get(ev, "signatures"), "x.org", json_object());
    assert_int_equal(pdu_check_hash(rv, ev), 0);
    /* Padded base64 is accepted too. */
    char padded[64];
    snprintf(padded, sizeof(padded), "%s=",
             json_string_value(json_object_get(json_object_get(ev, "hashes"), "sha256")));
    json_object_set_new(json_object_get(ev, "hashes"), "sha256", json_string(padded));
    assert_int_equal(pdu_check_hash(rv, ev), 0);
    json_object_set_new(json_object_get(ev, "hashes"), "sha256", json_string("c2hvcnQ"));
    assert_int_equal(pdu_check_hash(rv, ev), -ERR_BAD_JSON);
    json_decref(ev);
}

int test_sign(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_json_vectors),
        cmocka_unit_test(test_verify_failures),
        cmocka_unit_test(test_sign_preserves),
        cmocka_unit_test(test_event_vectors),
        cmocka_unit_test(test_event_tampering),
        cmocka_unit_test(test_signing_servers),
        cmocka_unit_test(test_restricted_join_signatures),
        cmocka_unit_test(test_event_ids),
        cmocka_unit_test(test_content_hash),
    };
    return cmocka_run_group_tests_name("sign", tests, NULL, NULL);
}
