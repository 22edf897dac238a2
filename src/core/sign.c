/*
 * ed25519 signatures over canonical JSON (spec appendix "Signing JSON"),
 * using libsodium's detached signatures.
 */
#include "core/sign.h"

#include <sodium.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"

/* Members a signature never covers ("Signing Details"). */
static const char *const unsigned_members[] = {"signatures", "unsigned", NULL};

static bool is_ed25519(const char *key_id) { return strncmp(key_id, "ed25519:", 8) == 0; }

int sign_json_add(json_t *obj, const struct signing_key *key, const char *entity,
                  enum canonjson_mode mode)
{
    if (!json_is_object(obj)) {
        return -ERR_BAD_JSON;
    }
    json_t *sigs = json_object_get(obj, "signatures");
    json_t *mine = NULL;
    if (sigs) {
        if (!json_is_object(sigs)) {
            return -ERR_BAD_JSON;
        }
        mine = json_object_get(sigs, entity);
        if (mine && !json_is_object(mine)) {
            return -ERR_BAD_JSON;
        }
    }

    struct buf canon = BUF_INIT;
    int rc = canonjson_write_except(&canon, obj, mode, unsigned_members);
    if (rc) {
        buf_release(&canon);
        return rc;
    }
    unsigned char sig[crypto_sign_BYTES];
    crypto_sign_detached(sig, NULL, (const unsigned char *)canon.p, canon.len, key->sk);
    buf_release(&canon);

    char sig64[128];
    keys_b64_encode(sig, sizeof(sig), sig64);
    if (!sigs) {
        sigs = json_object();
        json_object_set_new(obj, "signatures", sigs);
    }
    if (!mine) {
        mine = json_object();
        json_object_set_new(sigs, entity, mine);
    }
    json_object_set_new(mine, key->key_id, json_string(sig64));
    return 0;
}

int sign_json_verify_bytes(const json_t *sigs, const char *entity, const char *key_id,
                           const unsigned char pk[KEYS_PUBLIC_BYTES], const char *canon,
                           size_t canon_len)
{
    if (!is_ed25519(key_id)) {
        return -ERR_NOT_FOUND;
    }
    const char *sig64 = json_string_value(json_object_get(json_object_get(sigs, entity), key_id));
    if (!sig64) {
        return -ERR_NOT_FOUND;
    }
    size_t len = strlen(sig64);
    unsigned char sig[128];
    if (len > 100) { /* 64 bytes are 86 characters; a little slack for padding */
        return -ERR_UNAUTHORIZED;
    }
    long n = keys_b64_decode(sig64, len, sig);
    if (n != crypto_sign_BYTES) {
        return -ERR_UNAUTHORIZED;
    }
    if (crypto_sign_verify_detached(sig, (const unsigned char *)canon, canon_len, pk) != 0) {
        return -ERR_UNAUTHORIZED;
    }
    return 0;
}

int sign_json_verify(const json_t *obj, const char *entity, const char *key_id,
                     const unsigned char pk[KEYS_PUBLIC_BYTES], enum canonjson_mode mode)
{
    if (!json_is_object(obj)) {
        return -ERR_BAD_JSON;
    }
    const json_t *sigs = json_object_get(obj, "signatures");
    if (!is_ed25519(key_id) ||
        !json_is_string(json_object_get(json_object_get(sigs, entity), key_id))) {
        return -ERR_NOT_FOUND;
    }
    struct buf canon = BUF_INIT;
    int rc = canonjson_write_except(&canon, obj, mode, unsigned_members);
    if (rc == 0) {
        rc = sign_json_verify_bytes(sigs, entity, key_id, pk, canon.p, canon.len);
    }
    buf_release(&canon);
    return rc;
}

size_t sign_json_key_ids(const json_t *obj, const char *entity, struct arena *arena,
                         const char ***ids)
{
    const json_t *mine = json_object_get(json_object_get(obj, "signatures"), entity);
    size_t n = json_is_object(mine) ? json_object_size(mine) : 0;
    const char **out = ARENA_ARRAY(arena, const char *, n ? n : 1);
    size_t k = 0;
    const char *key_id;
    json_t *val;
    if (n) {
        json_object_foreach((json_t *)mine, key_id, val) {
            if (k < n && is_ed25519(key_id) && json_is_string(val)) {
                out[k++] = arena_strdup(arena, key_id);
            }
        }
    }
    *ids = out;
    return k;
}
