/*
 * The server admin API that deployment tools and tests rely on, under the
 * widely used /_synapse/admin prefix:
 *
 *  - Shared-secret registration (GET/POST /_synapse/admin/v1/register): a
 *    client fetches a nonce, then proves knowledge of
 *    registration.shared_secret with
 *      mac = hex(HMAC-SHA1(secret, nonce \0 username \0 password \0
 *                          "admin"|"notadmin" [\0 user_type]))
 *    and gets an account with a logged-in device. Nonces are single-use
 *    and live 60 s (svc/nonce). Without a configured secret both methods
 *    answer 400 M_UNKNOWN.
 *  - Registration tokens (/_synapse/admin/v1/registration_tokens...), for
 *    server admins: list, create, read, update, delete.
 */
#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>
#include <string.h>

#include "api/client/client.h"
#include "api/handlers.h"
#include "base/err.h"
#include "base/json.h"
#include "core/id.h"
#include "store/store.h"
#include "svc/auth.h"
#include "svc/nonce.h"
#include "svc/password.h"
#include "svc/srv.h"

/* ---- shared-secret registration ---- */

static const char *shared_secret(const struct req *r)
{
    const char *s = r->srv->cfg->registration.shared_secret;
    return s && *s ? s : NULL;
}

int admin_register_nonce(struct req *r)
{
    if (!shared_secret(r) || !r->srv->nonces) {
        return req_fail(r, -ERR_BAD_REQUEST, "Shared secret registration is not enabled");
    }
    char nonce[NONCE_HEX_LEN + 1];
    nonces_issue(r->srv->nonces, req_now_ms(), nonce);
    return req_json(r, 200, json_pack("{s:s}", "nonce", nonce));
}

/* Required string field (NULL after setting the failure). */
static const char *need_string(struct req *r, const char *key, size_t max)
{
    const char *v;
    if (client__opt_string(r, key, max, &v)) {
        return NULL;
    }
    if (!v) {
        req_fail(r, -ERR_MISSING_PARAM, "'%s' is required", key);
    }
    return v;
}

/* True when `mac_hex` is the HMAC the request's fields call for. */
static bool mac_matches(const struct req *r, const char *mac_hex, const char *nonce,
                        const char *username, const char *password, bool admin,
                        const char *user_type)
{
    const char *secret = shared_secret(r);
    struct buf msg;
    buf_init(&msg);
    buf_append(&msg, nonce, strlen(nonce) + 1);
    buf_append(&msg, username, strlen(username) + 1);
    buf_append(&msg, password, strlen(password) + 1);
    const char *role = admin ? "admin" : "notadmin";
    buf_append(&msg, role, strlen(role));
    if (user_type) {
        buf_append(&msg, "", 1);
        buf_append(&msg, user_type, strlen(user_type));
    }
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    HMAC(EVP_sha1(), secret, (int)strlen(secret), (const unsigned char *)msg.p, msg.len, digest,
         &dlen);
    sodium_memzero(msg.p, msg.len);
    buf_release(&msg);
    char want[2 * EVP_MAX_MD_SIZE + 1];
    sodium_bin2hex(want, sizeof(want), digest, dlen);
    /* Case-insensitive hex, compared in constant time. */
    char got[2 * EVP_MAX_MD_SIZE + 1] = {0};
    size_t n = strlen(mac_hex);
    if (n != 2 * (size_t)dlen) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        got[i] = (char)tolower((unsigned char)mac_hex[i]);
    }
    return CRYPTO_memcmp(got, want, n) == 0;
}

/*
 * POST /_synapse/admin/v1/register. Re-entered once the password hash is
 * ready (svc/password); the nonce and MAC are checked on the first pass
 * only, and only that pass can lead to PW_HASHED.
 */
int admin_register(struct req *r)
{
    if (!shared_secret(r) || !r->srv->nonces) {
        return req_fail(r, -ERR_BAD_REQUEST, "Shared secret registration is not enabled");
    }
    const char *username = need_string(r, "username", CLIENT_PASSWORD_MAX_BYTES);
    const char *password = username ? need_string(r, "password", CLIENT_PASSWORD_MAX_BYTES)
                                    : NULL;
    if (!password) {
        return -ERR_INVALID_PARAM; /* the failure is set */
    }
    const char *displayname, *user_type;
    bool admin;
    int rc = client__opt_bool(r, "admin", &admin);
    if (!rc) {
        rc = client__opt_string(r, "displayname", 256, &displayname);
    }
    if (!rc) {
        rc = client__opt_string(r, "user_type", 64, &user_type);
    }
    if (rc) {
        return rc;
    }
    char *localpart = arena_strdup(&r->arena, username);
    for (char *p = localpart; *p; p++) {
        *p = (char)tolower((unsigned char)*p);
    }
    char *user_id = client__user_id(r, localpart);

    if (r->pw.state == PW_NONE) {
        const char *nonce = json_get_str(r->json, "nonce");
        if (!nonce) {
            return req_fail(r, -ERR_MISSING_PARAM, "'nonce' is required");
        }
        /* Taken before anything else: a nonce is spent even by a failed try. */
        if (!nonces_take(r->srv->nonces, nonce, req_now_ms())) {
            return req_fail(r, -ERR_BAD_REQUEST, "Unrecognised nonce");
        }
        const char *mac = json_get_str(r->json, "mac");
        if (!mac) {
            return req_fail(r, -ERR_MISSING_PARAM, "'mac' is required");
        }
        if (!mac_matches(r, mac, nonce, username, password, admin, user_type)) {
            return req_fail(r, -ERR_FORBIDDEN, "HMAC incorrect");
        }
        rc = client__check_localpart(r, localpart);
        if (rc) {
            return rc;
        }
        rc = client__check_user_free(r, user_id);
        if (rc) {
            return rc;
        }
        return password_hash_async(r, password);
    }
    if (r->pw.state != PW_HASHED) {
        return req_fail(r, -ERR_NOMEM, "Could not hash the password");
    }
    json_t *body = NULL;
    rc = store_begin(r->db);
    if (rc == 0) {
        rc = client__user_create(r, user_id, r->pw.hash, admin, false, displayname);
    }
    if (rc == 0) {
        rc = client__session_response(r, user_id, auth_new_device_id(&r->arena), NULL, false,
                                      &body);
    }
    rc = store_end(r->db, rc);
    if (rc < 0) {
        json_decref(body);
        return req_fail(r, rc, rc == -ERR_USER_IN_USE ? "User ID already taken" : NULL);
    }
    return req_json(r, 200, body);
}

/* ---- registration tokens ---- */

#define REGTOKEN_MAX_LEN 64
#define REGTOKEN_DEFAULT_LEN 16
#define REGTOKEN_MAX_USES 2147483647LL

static json_t *regtoken_json(const struct store_regtoken *t)
{
    json_t *o = json_pack("{s:s,s:I,s:I}", "token", t->token, "pending", (json_int_t)t->pending,
                          "completed", (json_int_t)t->completed);
    json_object_set_new(o, "uses_allowed",
                        t->uses_allowed < 0 ? json_null() : json_integer(t->uses_allowed));
    json_object_set_new(o, "expiry_time",
                        t->expiry_time == 0 ? json_null() : json_integer(t->expiry_time));
    return o;
}

/* Token characters: [A-Za-z0-9._~-] (spec m.login.registration_token). */
static bool regtoken_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > REGTOKEN_MAX_LEN) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && c != '.' && c != '_' && c != '~' && c != '-') {
            return false;
        }
    }
    return true;
}

/*
 * Reads uses_allowed / expiry_time from the body: *set false when absent,
 * a null value means unlimited / never. M_INVALID_PARAM for negative
 * counts and expiry times in the past.
 */
static int regtoken_limits(struct req *r, bool *set_uses, int64_t *uses, bool *set_expiry,
                           int64_t *expiry)
{
    json_t *u = json_object_get(r->json, "uses_allowed");
    json_t *e = json_object_get(r->json, "expiry_time");
    *set_uses = u != NULL;
    *set_expiry = e != NULL;
    *uses = -1;
    *expiry = 0;
    if (u && !json_is_null(u)) {
        if (!json_is_integer(u) || json_integer_value(u) < 0 ||
            json_integer_value(u) > REGTOKEN_MAX_USES) {
            return req_fail(r, -ERR_INVALID_PARAM,
                            "'uses_allowed' must be a non-negative integer or null");
        }
        *uses = json_integer_value(u);
    }
    if (e && !json_is_null(e)) {
        if (!json_is_integer(e) || json_integer_value(e) < req_now_ms()) {
            return req_fail(r, -ERR_INVALID_PARAM,
                            "'expiry_time' must be a time in the future (ms) or null");
        }
        *expiry = json_integer_value(e);
    }
    return 0;
}

/* GET /registration_tokens[?valid=true|false] */
int admin_regtokens_list(struct req *r)
{
    const char *valid = req_query(r, "valid");
    if (valid && strcmp(valid, "true") != 0 && strcmp(valid, "false") != 0) {
        return req_fail(r, -ERR_INVALID_PARAM, "'valid' must be true or false");
    }
    struct store_regtoken *list;
    size_t n;
    int rc = store_regtoken_list(r->db, &r->arena, &list, &n);
    if (rc < 0) {
        return rc;
    }
    int64_t now = req_now_ms();
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        const struct store_regtoken *t = &list[i];
        bool usable = (t->expiry_time == 0 || t->expiry_time > now) &&
                      (t->uses_allowed < 0 || t->pending + t->completed < t->uses_allowed);
        if (!valid || usable == (strcmp(valid, "true") == 0)) {
            json_array_append_new(arr, regtoken_json(t));
        }
    }
    return req_json(r, 200, json_pack("{s:o}", "registration_tokens", arr));
}

/* POST /registration_tokens/new {token?, length?, uses_allowed?, expiry_time?} */
int admin_regtoken_new(struct req *r)
{
    const char *token;
    int rc = client__opt_string(r, "token", 1024, &token);
    if (rc) {
        return rc;
    }
    if (token && !regtoken_valid(token)) {
        return req_fail(r, -ERR_INVALID_PARAM,
                        "'token' must be 1-64 characters of A-Z, a-z, 0-9, '.', '_', '~', '-'");
    }
    json_t *l = json_object_get(r->json, "length");
    long long length = REGTOKEN_DEFAULT_LEN;
    if (l && !json_is_null(l)) {
        if (token || !json_is_integer(l) || json_integer_value(l) < 1 ||
            json_integer_value(l) > REGTOKEN_MAX_LEN) {
            return req_fail(r, -ERR_INVALID_PARAM,
                            "'length' must be an integer 1-64, and only without 'token'");
        }
        length = json_integer_value(l);
    }
    bool set_uses, set_expiry;
    int64_t uses, expiry;
    rc = regtoken_limits(r, &set_uses, &uses, &set_expiry, &expiry);
    if (rc) {
        return rc;
    }
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-";
    for (int attempt = 0; attempt < 5; attempt++) {
        const char *t = token;
        if (!t) {
            char *gen = arena_alloc(&r->arena, (size_t)length + 1);
            for (long long i = 0; i < length; i++) {
                gen[i] = alphabet[randombytes_uniform(sizeof(alphabet) - 1)];
            }
            gen[length] = '\0';
            t = gen;
        }
        rc = store_regtoken_create(r->db, t, uses, expiry);
        if (rc == -ERR_CONFLICT && !token) {
            continue; /* a generated token collided: draw again */
        }
        if (rc == -ERR_CONFLICT) {
            return req_fail(r, -ERR_INVALID_PARAM, "Token already exists");
        }
        if (rc < 0) {
            return rc;
        }
        struct store_regtoken created;
        rc = store_regtoken_get(r->db, &r->arena, t, &created);
        if (rc < 0) {
            return rc;
        }
        return req_json(r, 200, regtoken_json(&created));
    }
    return req_fail(r, -ERR_UNKNOWN, "Could not generate a unique token");
}

int admin_regtoken_get(struct req *r)
{
    struct store_regtoken t;
    int rc = store_regtoken_get(r->db, &r->arena, r->param[0].p, &t);
    if (rc == -ERR_NOT_FOUND) {
        return req_fail(r, -ERR_NOT_FOUND, "No such registration token");
    }
    if (rc < 0) {
        return rc;
    }
    return req_json(r, 200, regtoken_json(&t));
}

/* PUT /registration_tokens/{token} {uses_allowed?, expiry_time?} */
int admin_regtoken_put(struct req *r)
{
    bool set_uses, set_expiry;
    int64_t uses, expiry;
    int rc = regtoken_limits(r, &set_uses, &uses, &set_expiry, &expiry);
    if (rc) {
        return rc;
    }
    rc = store_regtoken_update(r->db, r->param[0].p, set_uses, uses, set_expiry, expiry);
    if (rc == -ERR_NOT_FOUND) {
        return req_fail(r, -ERR_NOT_FOUND, "No such registration token");
    }
    if (rc < 0) {
        return rc;
    }
    return admin_regtoken_get(r);
}

int admin_regtoken_delete(struct req *r)
{
    int rc = store_regtoken_delete(r->db, r->param[0].p);
    if (rc == -ERR_NOT_FOUND) {
        return req_fail(r, -ERR_NOT_FOUND, "No such registration token");
    }
    if (rc < 0) {
        return rc;
    }
    return req_json(r, 200, json_object());
}
