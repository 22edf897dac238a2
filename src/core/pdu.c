/*
 * PDU hashing, event and room IDs, and event signatures on top of
 * canonjson, redact and sign. SHA-256 and ed25519 come from libsodium.
 */
#include "core/pdu.h"

#include <sodium.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"
#include "core/canonjson.h"
#include "core/redact.h"
#include "core/sign.h"

/* "Calculating the content hash": unsigned, signatures and hashes go. */
static const char *const content_hash_skip[] = {"unsigned", "signatures", "hashes", NULL};
/* "Calculating the reference hash" and "Signing Details". */
static const char *const signature_skip[] = {"signatures", "unsigned", NULL};

static void sha256(const struct buf *b, unsigned char out[PDU_HASH_BYTES])
{
    crypto_hash_sha256(out, (const unsigned char *)b->p, b->len);
}

/* ---- hashes ---- */

int pdu_content_hash(const struct room_version *rv, const json_t *pdu,
                     unsigned char out[PDU_HASH_BYTES])
{
    struct buf canon = BUF_INIT;
    int rc = canonjson_write_except(&canon, pdu, canonjson_mode_for(rv), content_hash_skip);
    if (rc == 0) {
        sha256(&canon, out);
    }
    buf_release(&canon);
    return rc;
}

static json_t *hashes_object(const unsigned char hash[PDU_HASH_BYTES])
{
    char b64[64];
    keys_b64_encode(hash, PDU_HASH_BYTES, b64);
    return json_pack("{s:s}", "sha256", b64);
}

int pdu_hash_add(const struct room_version *rv, json_t *pdu)
{
    unsigned char hash[PDU_HASH_BYTES];
    int rc = pdu_content_hash(rv, pdu, hash);
    if (rc) {
        return rc;
    }
    json_object_set_new(pdu, "hashes", hashes_object(hash));
    return 0;
}

int pdu_check_hash(const struct room_version *rv, const json_t *pdu)
{
    const char *b64 = json_string_value(json_object_get(json_object_get(pdu, "hashes"), "sha256"));
    if (!b64) {
        return -ERR_BAD_JSON;
    }
    size_t len = strlen(b64);
    unsigned char claimed[64];
    if (len > 64 || keys_b64_decode(b64, len, claimed) != PDU_HASH_BYTES) {
        return -ERR_BAD_JSON;
    }
    unsigned char actual[PDU_HASH_BYTES];
    int rc = pdu_content_hash(rv, pdu, actual);
    if (rc) {
        return rc;
    }
    return memcmp(claimed, actual, PDU_HASH_BYTES) == 0 ? 0 : -ERR_FORBIDDEN;
}

/* Canonical JSON of the redacted PDU without signatures and unsigned. */
static int redacted_canon(const struct room_version *rv, const json_t *pdu, struct buf *canon,
                          json_t **redacted)
{
    json_t *r;
    int rc = redact_event(rv, pdu, &r);
    if (rc) {
        return rc;
    }
    rc = canonjson_write_except(canon, r, canonjson_mode_for(rv), signature_skip);
    if (rc == 0 && redacted) {
        *redacted = r;
    } else {
        json_decref(r);
    }
    return rc;
}

int pdu_reference_hash(const struct room_version *rv, const json_t *pdu,
                       unsigned char out[PDU_HASH_BYTES])
{
    struct buf canon = BUF_INIT;
    int rc = redacted_canon(rv, pdu, &canon, NULL);
    if (rc == 0) {
        sha256(&canon, out);
    }
    buf_release(&canon);
    return rc;
}

/* ---- identifiers ---- */

/* sigil + base64 (standard or URL-safe) of the reference hash, in arena. */
static int hash_id(const struct room_version *rv, const json_t *pdu, char sigil, bool url_safe,
                   struct arena *arena, const char **out)
{
    unsigned char hash[PDU_HASH_BYTES];
    int rc = pdu_reference_hash(rv, pdu, hash);
    if (rc) {
        return rc;
    }
    char *id = arena_alloc(arena, keys_b64_len(PDU_HASH_BYTES) + 2);
    id[0] = sigil;
    if (url_safe) {
        keys_b64url_encode(hash, PDU_HASH_BYTES, id + 1);
    } else {
        keys_b64_encode(hash, PDU_HASH_BYTES, id + 1);
    }
    *out = id;
    return 0;
}

int event_compute_id(const struct room_version *rv, const json_t *pdu, struct arena *arena,
                     const char **out)
{
    switch (rv->event_format) {
    case EVENT_FORMAT_V1: {
        /* v1/v2: the ID was chosen by the origin server and travels in the PDU. */
        const char *id = json_string_value(json_object_get(pdu, "event_id"));
        if (!id) {
            return -ERR_BAD_JSON;
        }
        *out = arena_strdup(arena, id);
        return 0;
    }
    case EVENT_FORMAT_V2:
        /* v3: standard alphabet. */
        return hash_id(rv, pdu, '$', false, arena, out);
    case EVENT_FORMAT_V3:
        /* v4+: URL-safe alphabet. */
        return hash_id(rv, pdu, '$', true, arena, out);
    }
    return -ERR_BAD_JSON;
}

int event_compute_room_id(const struct room_version *rv, const json_t *create,
                          struct arena *arena, const char **out)
{
    const char *type = json_string_value(json_object_get(create, "type"));
    if (!rv->room_id_is_create_hash || !type || strcmp(type, "m.room.create") != 0) {
        return -ERR_BAD_JSON;
    }
    /* v12: the room ID is the create event's (URL-safe) event ID with "!". */
    return hash_id(rv, create, '!', true, arena, out);
}

/* ---- signing ---- */

int pdu_sign(const struct room_version *rv, json_t *pdu, const struct signing_key *key,
             const char *server_name)
{
    if (!json_is_object(pdu)) {
        return -ERR_BAD_JSON;
    }
    json_t *sigs = json_object_get(pdu, "signatures");
    json_t *mine = json_object_get(sigs, server_name);
    if ((sigs && !json_is_object(sigs)) || (mine && !json_is_object(mine))) {
        return -ERR_BAD_JSON;
    }
    unsigned char hash[PDU_HASH_BYTES];
    int rc = pdu_content_hash(rv, pdu, hash);
    if (rc) {
        return rc;
    }
    json_t *hashes = hashes_object(hash);

    /* Sign the redacted form carrying the new hash, so the pdu stays
     * untouched until everything has worked. */
    json_t *redacted;
    rc = redact_event(rv, pdu, &redacted);
    if (rc) {
        json_decref(hashes);
        return rc;
    }
    json_object_set(redacted, "hashes", hashes);
    rc = sign_json_add(redacted, key, server_name, canonjson_mode_for(rv));
    if (rc) {
        json_decref(redacted);
        json_decref(hashes);
        return rc;
    }
    json_t *sig = json_object_get(json_object_get(json_object_get(redacted, "signatures"),
                                                  server_name),
                                  key->key_id);

    json_object_set_new(pdu, "hashes", hashes);
    if (!sigs) {
        sigs = json_object();
        json_object_set_new(pdu, "signatures", sigs);
    }
    if (!mine) {
        mine = json_object();
        json_object_set_new(sigs, server_name, mine);
    }
    json_object_set(mine, key->key_id, sig);
    json_decref(redacted);
    return 0;
}

/* ---- verification ---- */

/* The server name of "@user:server", "$opaque:server" (arena copy), or NULL. */
static const char *domain_of(struct arena *arena, const char *id)
{
    const char *colon = id ? strchr(id, ':') : NULL;
    if (!colon || colon == id || colon[1] == '\0') {
        return NULL;
    }
    return arena_strdup(arena, colon + 1);
}

static bool is_3pid_invite(const json_t *pdu)
{
    const char *type = json_string_value(json_object_get(pdu, "type"));
    const json_t *content = json_object_get(pdu, "content");
    const char *membership = json_string_value(json_object_get(content, "membership"));
    return type && strcmp(type, "m.room.member") == 0 && membership &&
           strcmp(membership, "invite") == 0 && json_object_get(content, "third_party_invite");
}

static void add_server(const char **list, long *n, const char *server)
{
    for (long i = 0; i < *n; i++) {
        if (strcmp(list[i], server) == 0) {
            return;
        }
    }
    list[(*n)++] = server;
}

long pdu_signing_servers(const struct room_version *rv, const json_t *pdu, struct arena *arena,
                         const char ***out)
{
    const char **list = ARENA_ARRAY(arena, const char *, 3);
    long n = 0;
    const char *sender = json_string_value(json_object_get(pdu, "sender"));
    const char *origin = domain_of(arena, sender);
    if (!origin || sender[0] != '@') {
        return -ERR_BAD_JSON;
    }
    /* "For room versions 3 and later, unless the event is a 3rd party
     * invite, only the signature(s) from the originating server ... are
     * required". The 3pid exemption holds in every version. */
    if (!is_3pid_invite(pdu)) {
        add_server(list, &n, origin);
    }
    if (rv->event_format == EVENT_FORMAT_V1) {
        /* v1/v2: "also require that a signature is present from the domain
         * in the event_id, if it differs from the originating server". */
        const char *event_id = json_string_value(json_object_get(pdu, "event_id"));
        const char *domain = domain_of(arena, event_id);
        if (!domain || event_id[0] != '$') {
            return -ERR_BAD_JSON;
        }
        add_server(list, &n, domain);
    }
    if (rv->restricted_join) {
        /* v8+ auth rule: a join authorised by a user of another server must
         * be signed by that server. */
        const char *type = json_string_value(json_object_get(pdu, "type"));
        const json_t *via =
            json_object_get(json_object_get(pdu, "content"), "join_authorised_via_users_server");
        if (via && type && strcmp(type, "m.room.member") == 0) {
            const char *user = json_string_value(via);
            const char *domain = domain_of(arena, user);
            if (!domain || user[0] != '@') {
                return -ERR_BAD_JSON;
            }
            add_server(list, &n, domain);
        }
    }
    *out = list;
    return n;
}

int pdu_verify_signatures(const struct room_version *rv, const json_t *pdu,
                          pdu_key_lookup_fn *lookup, void *ctx)
{
    if (!json_is_object(pdu)) {
        return -ERR_BAD_JSON;
    }
    struct arena arena;
    arena_init(&arena);
    struct buf canon = BUF_INIT;
    json_t *redacted = NULL;
    const char **servers;
    long n = pdu_signing_servers(rv, pdu, &arena, &servers);
    int rc = n < 0 ? (int)n : redacted_canon(rv, pdu, &canon, &redacted);
    if (rc) {
        goto done;
    }
    long long ts = 0;
    json_t *tsv = json_object_get(pdu, "origin_server_ts");
    if (!json_is_integer(tsv)) {
        rc = -ERR_BAD_JSON;
        goto done;
    }
    ts = json_integer_value(tsv);
    const json_t *sigs = json_object_get(redacted, "signatures");
    for (long i = 0; i < n && rc == 0; i++) {
        const char **key_ids;
        size_t nk = sign_json_key_ids(redacted, servers[i], &arena, &key_ids);
        int verified = 0;
        for (size_t k = 0; k < nk && rc == 0; k++) {
            unsigned char pk[KEYS_PUBLIC_BYTES];
            int lr = lookup(ctx, servers[i], key_ids[k], ts, rv->enforce_key_validity, pk);
            if (lr == -ERR_NOT_FOUND) {
                continue; /* "If a signature is from an unknown or expired key, it is skipped." */
            }
            if (lr < 0) {
                rc = lr;
                break;
            }
            rc = sign_json_verify_bytes(sigs, servers[i], key_ids[k], pk, canon.p, canon.len);
            verified += rc == 0;
        }
        if (rc == 0 && verified == 0) {
            rc = -ERR_UNAUTHORIZED;
        }
    }
done:
    json_decref(redacted);
    buf_release(&canon);
    arena_release(&arena);
    return rc;
}
