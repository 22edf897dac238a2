/*
 * Registration, login, logout, token refresh and whoami (spec: Client-Server
 * API "Account registration and management", "Login", "Refreshing access
 * tokens").
 *
 * Handlers that hash or verify a password are re-entered: the first pass
 * validates and parks the request while argon2id runs on the CPU pool
 * (svc/password), the second pass (r->pw.state set) finishes the work.
 */
#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "api/client/client.h"
#include "api/handlers.h"
#include "base/err.h"
#include "base/json.h"
#include "config.h"
#include "core/id.h"
#include "store/store.h"
#include "svc/auth.h"
#include "svc/password.h"
#include "svc/srv.h"
#include "svc/uia.h"

#define PASSWORD_MAX_BYTES CLIENT_PASSWORD_MAX_BYTES
#define DEVICE_ID_MAX_BYTES CLIENT_DEVICE_ID_MAX_BYTES
#define DISPLAY_NAME_MAX_BYTES CLIENT_DISPLAY_NAME_MAX_BYTES

/* ---- helpers shared by the client handlers (client.h) ---- */

int client__check_localpart(struct req *r, const char *localpart)
{
    size_t len = strlen(localpart);
    if (!id_localpart_valid(localpart, len)) {
        return req_fail(r, -ERR_INVALID_USERNAME,
                        "User ID can only contain characters a-z, 0-9, or '=_-./+'");
    }
    if (localpart[0] == '_') {
        return req_fail(r, -ERR_INVALID_USERNAME, "User ID may not begin with '_'");
    }
    bool numeric = true;
    for (size_t i = 0; i < len; i++) {
        numeric &= isdigit((unsigned char)localpart[i]) != 0;
    }
    if (numeric) {
        return req_fail(r, -ERR_INVALID_USERNAME, "Numeric user IDs are reserved for guests");
    }
    if (1 + len + 1 + strlen(r->srv->cfg->server_name) > ID_MAX_LEN) {
        return req_fail(r, -ERR_INVALID_USERNAME, "User ID is too long");
    }
    return 0;
}

char *client__user_id(struct req *r, const char *localpart)
{
    return arena_printf(&r->arena, "@%s:%s", localpart, r->srv->cfg->server_name);
}

int client__check_user_free(struct req *r, const char *user_id)
{
    struct store_user existing;
    int rc = store_user_get(r->db, &r->arena, user_id, &existing);
    if (rc == 0) {
        return req_fail(r, -ERR_USER_IN_USE, "User ID already taken");
    }
    return rc == -ERR_NOT_FOUND ? 0 : rc;
}

char *client__local_part(struct req *r, const char *user_id)
{
    const char *colon = user_id[0] == '@' ? strchr(user_id, ':') : NULL;
    if (!colon || colon == user_id + 1 || strlen(user_id) > ID_MAX_LEN ||
        strcmp(colon + 1, r->srv->cfg->server_name) != 0) {
        return NULL;
    }
    return arena_strndup(&r->arena, user_id + 1, (size_t)(colon - user_id - 1));
}

int client__user_create(struct req *r, const char *user_id, const char *password_hash,
                        bool is_admin, bool is_guest, const char *displayname)
{
    int rc = store_user_create(r->db, user_id, password_hash, is_admin, is_guest, req_now_ms());
    if (rc < 0) {
        return rc;
    }
    /* Every account starts with a profile whose display name is its
     * localpart, so clients show a name before the user picks one. */
    struct store_profile p = {0};
    p.displayname = displayname && *displayname ? (char *)displayname
                                                 : client__local_part(r, user_id);
    return store_profile_set(r->db, user_id, &p);
}

int client__opt_string(struct req *r, const char *key, size_t max, const char **out)
{
    json_t *v = json_object_get(r->json, key);
    *out = NULL;
    if (!v || json_is_null(v)) {
        return 0;
    }
    if (!json_is_string(v)) {
        return req_fail(r, -ERR_INVALID_PARAM, "'%s' must be a string", key);
    }
    if (json_string_length(v) > max) {
        return req_fail(r, -ERR_INVALID_PARAM, "'%s' is too long", key);
    }
    *out = json_string_value(v);
    return 0;
}

int client__opt_bool(struct req *r, const char *key, bool *out)
{
    json_t *v = json_object_get(r->json, key);
    *out = false;
    if (!v || json_is_null(v)) {
        return 0;
    }
    if (!json_is_boolean(v)) {
        return req_fail(r, -ERR_INVALID_PARAM, "'%s' must be a boolean", key);
    }
    *out = json_is_true(v);
    return 0;
}

int client__session_response(struct req *r, const char *user_id, const char *device_id,
                             const char *display_name, bool refresh, json_t **out)
{
    int rc = store_device_ensure(r->db, user_id, device_id, display_name, req_now_ms());
    char *access = NULL, *rtoken = NULL;
    int64_t expires_in = 0;
    if (rc == 0) {
        rc = auth_issue_tokens(r, user_id, device_id, refresh, &access, &rtoken, &expires_in);
    }
    if (rc < 0) {
        return rc;
    }
    json_t *body = json_pack("{s:s,s:s,s:s,s:s}", "user_id", user_id, "access_token", access,
                             "device_id", device_id, "home_server", r->srv->cfg->server_name);
    if (refresh) {
        json_object_set_new(body, "refresh_token", json_string(rtoken));
        json_object_set_new(body, "expires_in_ms", json_integer(expires_in));
    }
    *out = body;
    return 0;
}

/* ---- registration ---- */

static const struct uia_flow flow_dummy[] = {{{"m.login.dummy"}, 1}};
static const struct uia_flow flow_token[] = {{{"m.login.registration_token"}, 1}};

/* A fresh numeric localpart for a guest. */
static char *guest_localpart(struct req *r)
{
    uint64_t n;
    randombytes_buf(&n, sizeof(n));
    return arena_printf(&r->arena, "%llu", (unsigned long long)(n % 1000000000000ULL));
}

/* A fresh localpart for a registration that named none. */
static char *random_localpart(struct req *r)
{
    char *s = arena_alloc(&r->arena, 13);
    memcpy(s, "user", 4);
    for (int i = 4; i < 12; i++) {
        s[i] = (char)('a' + randombytes_uniform(26));
    }
    s[12] = '\0';
    return s;
}

static int register_guest(struct req *r)
{
    const struct config *cfg = r->srv->cfg;
    if (!cfg->registration.guests) {
        return req_fail(r, -ERR_GUEST_ACCESS_FORBIDDEN, "Guest access is disabled");
    }
    const char *display_name;
    int rc = client__opt_string(r, "initial_device_display_name", DISPLAY_NAME_MAX_BYTES, &display_name);
    if (rc) {
        return rc;
    }
    /* Guests get a generated device; a requested device_id is ignored as
     * the spec allows. */
    for (int attempt = 0; attempt < 5; attempt++) {
        char *user_id = client__user_id(r, guest_localpart(r));
        rc = store_begin(r->db);
        if (rc == 0) {
            rc = client__user_create(r, user_id, NULL, false, true, NULL);
        }
        json_t *body = NULL;
        if (rc == 0) {
            rc = client__session_response(r, user_id, auth_new_device_id(&r->arena), display_name,
                                  false, &body);
        }
        rc = store_end(r->db, rc);
        if (rc == 0) {
            return req_json(r, 200, body);
        }
        json_decref(body);
        if (rc != -ERR_USER_IN_USE) {
            return rc;
        }
    }
    return req_fail(r, -ERR_UNKNOWN, "Could not allocate a guest user ID");
}

int client_register(struct req *r)
{
    const struct config *cfg = r->srv->cfg;
    const char *kind = req_query(r, "kind");
    if (kind && strcmp(kind, "guest") == 0) {
        return register_guest(r);
    }
    if (kind && strcmp(kind, "user") != 0) {
        return req_fail(r, -ERR_INVALID_PARAM, "Unknown registration kind '%s'", kind);
    }
    if (!cfg->registration.enabled) {
        return req_fail(r, -ERR_FORBIDDEN, "Registration has been disabled");
    }

    const char *username, *password, *device_id, *display_name;
    bool inhibit_login, refresh;
    int rc = client__opt_string(r, "username", 4 * ID_MAX_LEN, &username);
    if (!rc) {
        rc = client__opt_string(r, "password", PASSWORD_MAX_BYTES, &password);
    }
    if (!rc) {
        rc = client__opt_string(r, "device_id", DEVICE_ID_MAX_BYTES, &device_id);
    }
    if (!rc) {
        rc = client__opt_string(r, "initial_device_display_name", DISPLAY_NAME_MAX_BYTES, &display_name);
    }
    if (!rc) {
        rc = client__opt_bool(r, "inhibit_login", &inhibit_login);
    }
    if (!rc) {
        rc = client__opt_bool(r, "refresh_token", &refresh);
    }
    if (rc) {
        return rc;
    }

    /* Validate the name before the UIA dance so clients learn early. */
    char *user_id = NULL;
    if (username) {
        rc = client__check_localpart(r, username);
        if (rc) {
            return rc;
        }
        user_id = client__user_id(r, username);
        if (r->pw.state == PW_NONE) {
            rc = client__check_user_free(r, user_id);
            if (rc) {
                return rc;
            }
        }
    }

    const char *session = NULL;
    if (r->pw.state == PW_NONE) {
        bool tokens = cfg->registration.tokens_required;
        rc = uia_check(r, "register", tokens ? flow_token : flow_dummy, 1, NULL, NULL, &session);
        if (rc) {
            return rc;
        }
        if (password) {
            /* Re-entered below once the hash is ready. */
            return password_hash_async(r, password);
        }
    } else {
        const json_t *auth = json_get_obj(r->json, "auth");
        session = auth ? json_get_str(auth, "session") : NULL;
        if (r->pw.state != PW_HASHED) {
            return req_fail(r, -ERR_NOMEM, "Could not hash the password");
        }
    }

    if (!user_id) {
        user_id = client__user_id(r, random_localpart(r));
    }
    if (!device_id) {
        device_id = auth_new_device_id(&r->arena);
    }
    rc = store_begin(r->db);
    if (rc == 0) {
        rc = client__user_create(r, user_id, r->pw.state == PW_HASHED ? r->pw.hash : NULL,
                                 false, false, NULL);
    }
    json_t *body = NULL;
    if (rc == 0 && !inhibit_login) {
        rc = client__session_response(r, user_id, device_id, display_name, refresh, &body);
    }
    const char *regtoken = session ? uia_session_regtoken(r->srv->uia, &r->arena, session) : NULL;
    if (rc == 0 && regtoken) {
        rc = store_regtoken_finish(r->db, regtoken, true);
    }
    rc = store_end(r->db, rc);
    if (rc < 0) {
        json_decref(body);
        return req_fail(r, rc, rc == -ERR_USER_IN_USE ? "User ID already taken" : NULL);
    }
    if (session) {
        uia_session_end(r->srv->uia, session);
    }
    if (!body) {
        body = json_pack("{s:s,s:s}", "user_id", user_id, "home_server", cfg->server_name);
    }
    return req_json(r, 200, body);
}

int client_register_available(struct req *r)
{
    if (!r->srv->cfg->registration.enabled) {
        return req_fail(r, -ERR_FORBIDDEN, "Registration has been disabled");
    }
    const char *username = req_query(r, "username");
    if (!username || !*username) {
        return req_fail(r, -ERR_MISSING_PARAM, "Missing 'username'");
    }
    int rc = client__check_localpart(r, username);
    if (rc) {
        return rc;
    }
    rc = client__check_user_free(r, client__user_id(r, username));
    if (rc) {
        return rc;
    }
    return req_json(r, 200, json_pack("{s:b}", "available", 1));
}

int client_regtoken_validity(struct req *r)
{
    const char *token = req_query(r, "token");
    if (!token || !*token) {
        return req_fail(r, -ERR_MISSING_PARAM, "Missing 'token'");
    }
    struct store_regtoken t;
    int rc = store_regtoken_get(r->db, &r->arena, token, &t);
    if (rc < 0 && rc != -ERR_NOT_FOUND) {
        return rc;
    }
    bool valid = rc == 0 && (t.expiry_time == 0 || t.expiry_time > req_now_ms()) &&
                 (t.uses_allowed < 0 || t.pending + t.completed < t.uses_allowed);
    return req_json(r, 200, json_pack("{s:b}", "valid", valid));
}

/* ---- login ---- */

int client_login_flows(struct req *r)
{
    return req_json(r, 200, json_pack("{s:[{s:s}]}", "flows", "type", "m.login.password"));
}

/* The user a login names: identifier m.id.user or the legacy "user",
 * localpart or full ID; localparts are matched in lower case. */
static int login_user(struct req *r, char **user_id)
{
    const char *user = NULL;
    const json_t *ident = json_object_get(r->json, "identifier");
    if (ident) {
        if (!json_is_object(ident)) {
            return req_fail(r, -ERR_INVALID_PARAM, "'identifier' must be an object");
        }
        const char *type = json_get_str(ident, "type");
        if (!type) {
            return req_fail(r, -ERR_INVALID_PARAM, "'identifier.type' is required");
        }
        if (strcmp(type, "m.id.user") != 0) {
            return req_fail(r, -ERR_BAD_REQUEST, "Unsupported identifier type '%s'", type);
        }
        user = json_get_str(ident, "user");
    } else {
        user = json_get_str(r->json, "user");
    }
    if (!user || !*user) {
        return req_fail(r, -ERR_INVALID_PARAM, "A user identifier is required");
    }
    const char *localpart = user;
    size_t len = strlen(user);
    if (user[0] == '@') {
        const char *colon = strchr(user, ':');
        if (!colon || strcmp(colon + 1, r->srv->cfg->server_name) != 0) {
            return req_fail(r, -ERR_FORBIDDEN, "Invalid username or password");
        }
        localpart = user + 1;
        len = (size_t)(colon - localpart);
    }
    if (len == 0 || len > ID_MAX_LEN) {
        return req_fail(r, -ERR_FORBIDDEN, "Invalid username or password");
    }
    char *lower = arena_strndup(&r->arena, localpart, len);
    for (char *p = lower; *p; p++) {
        *p = (char)tolower((unsigned char)*p);
    }
    *user_id = client__user_id(r, lower);
    return 0;
}

int client_login(struct req *r)
{
    const char *type = json_get_str(r->json, "type");
    if (!type) {
        return req_fail(r, -ERR_INVALID_PARAM, "'type' is required");
    }
    if (strcmp(type, "m.login.password") != 0) {
        return req_fail(r, -ERR_BAD_REQUEST, "Unknown login type %s", type);
    }
    char *user_id = NULL;
    int rc = login_user(r, &user_id);
    if (rc) {
        return rc;
    }
    const char *password, *device_id, *display_name;
    bool refresh;
    rc = client__opt_string(r, "password", PASSWORD_MAX_BYTES, &password);
    if (!rc) {
        rc = client__opt_string(r, "device_id", DEVICE_ID_MAX_BYTES, &device_id);
    }
    if (!rc) {
        rc = client__opt_string(r, "initial_device_display_name", DISPLAY_NAME_MAX_BYTES, &display_name);
    }
    if (!rc) {
        rc = client__opt_bool(r, "refresh_token", &refresh);
    }
    if (rc) {
        return rc;
    }
    if (!password) {
        return req_fail(r, -ERR_INVALID_PARAM, "'password' is required");
    }

    struct store_user acct;
    rc = store_user_get(r->db, &r->arena, user_id, &acct);
    if (rc < 0 && rc != -ERR_NOT_FOUND) {
        return rc;
    }
    bool found = rc == 0;
    if (found && acct.deactivated) {
        return req_fail(r, -ERR_USER_DEACTIVATED, "This account has been deactivated");
    }
    if (r->pw.state == PW_NONE) {
        /* Unknown users are checked against a dummy hash: same timing. */
        return password_verify_async(r, found ? acct.password_hash : NULL, password);
    }
    if (r->pw.state != PW_OK || !found) {
        return req_fail(r, -ERR_FORBIDDEN, "Invalid username or password");
    }
    if (!device_id) {
        device_id = auth_new_device_id(&r->arena);
    }
    json_t *body = NULL;
    rc = store_begin(r->db);
    if (rc == 0) {
        rc = client__session_response(r, user_id, device_id, display_name, refresh, &body);
    }
    rc = store_end(r->db, rc);
    if (rc == 0) {
        /* A new device: the users sharing a room re-read the device list. */
        rc = client__device_lists_changed(r, user_id, device_id);
    }
    if (rc < 0) {
        json_decref(body);
        return rc;
    }
    json_object_set_new(body, "well_known",
                        json_pack("{s:{s:s}}", "m.homeserver", "base_url",
                                  r->srv->cfg->public_baseurl));
    return req_json(r, 200, body);
}

/* ---- sessions ---- */

int client_whoami(struct req *r)
{
    json_t *body = json_pack("{s:s,s:b}", "user_id", r->auth.user_id, "is_guest",
                             r->auth.is_guest);
    if (r->auth.device_id) {
        json_object_set_new(body, "device_id", json_string(r->auth.device_id));
    }
    return req_json(r, 200, body);
}

/* The IDs of user_id's devices except `keep` (may be NULL), read in the
 * transaction before they are deleted, so other servers hear of each
 * deletion (arena array). */
static int device_ids(struct req *r, const char *user_id, const char *keep, const char ***out,
                      size_t *n)
{
    struct store_device *devs = NULL;
    size_t n_devs = 0;
    *out = NULL;
    *n = 0;
    int rc = store_device_list(r->db, &r->arena, user_id, &devs, &n_devs);
    if (rc < 0 || n_devs == 0) {
        return rc;
    }
    const char **ids = ARENA_ARRAY(&r->arena, const char *, n_devs);
    for (size_t i = 0; i < n_devs; i++) {
        if (!keep || strcmp(devs[i].device_id, keep) != 0) {
            ids[(*n)++] = devs[i].device_id;
        }
    }
    *out = ids;
    return 0;
}

int client_logout(struct req *r)
{
    /* Spec: logging out also deletes the device (and its keys). */
    int64_t dl = client__device_lists_reserve(r);
    int rc = store_begin(r->db);
    if (rc == 0) {
        rc = store_device_delete(r->db, r->auth.user_id, r->auth.device_id);
        if (rc == -ERR_NOT_FOUND) {
            rc = store_token_delete(r->db, r->auth.token_hash);
        }
    }
    if (rc == 0) {
        rc = store_keys_prune_devices(r->db, r->auth.user_id);
    }
    if (rc == 0) {
        rc = store_to_device_prune(r->db, r->auth.user_id);
    }
    if (rc == 0) {
        rc = client__device_lists_mark_devices(r, dl, r->auth.user_id, &r->auth.device_id, 1);
    }
    rc = store_end(r->db, rc);
    client__device_lists_publish(r, dl, &r->auth.user_id, 1);
    auth_cache_evict_device(r->srv->auth, r->auth.user_id, r->auth.device_id);
    auth_cache_evict_hash(r->srv->auth, r->auth.token_hash);
    if (rc < 0 && rc != -ERR_NOT_FOUND) {
        return rc;
    }
    return req_json(r, 200, json_object());
}

int client_logout_all(struct req *r)
{
    int64_t dl = client__device_lists_reserve(r);
    const char **ids = NULL;
    size_t n_ids = 0;
    int rc = store_begin(r->db);
    if (rc == 0) {
        rc = device_ids(r, r->auth.user_id, NULL, &ids, &n_ids);
    }
    if (rc == 0) {
        rc = store_devices_delete_all(r->db, r->auth.user_id, NULL);
    }
    if (rc == 0) {
        rc = store_keys_prune_devices(r->db, r->auth.user_id);
    }
    if (rc == 0) {
        rc = store_to_device_prune(r->db, r->auth.user_id);
    }
    if (rc == 0) {
        rc = client__device_lists_mark_devices(r, dl, r->auth.user_id, ids, n_ids);
    }
    rc = store_end(r->db, rc);
    client__device_lists_publish(r, dl, &r->auth.user_id, 1);
    auth_cache_evict_user(r->srv->auth, r->auth.user_id);
    if (rc < 0) {
        return rc;
    }
    return req_json(r, 200, json_object());
}

int client_refresh(struct req *r)
{
    const char *token = json_get_str(r->json, "refresh_token");
    if (!token) {
        return req_fail(r, -ERR_MISSING_PARAM, "'refresh_token' is required");
    }
    char hash[65];
    auth_token_hash(token, hash);
    char *user_id = NULL, *device_id = NULL;
    char *access = NULL, *rtoken = NULL;
    int64_t expires_in = 0;
    int rc = store_begin(r->db);
    if (rc == 0) {
        rc = store_refresh_take(r->db, &r->arena, hash, &user_id, &device_id);
    }
    if (rc == 0) {
        rc = auth_issue_tokens(r, user_id, device_id, true, &access, &rtoken, &expires_in);
    }
    rc = store_end(r->db, rc);
    if (rc == -ERR_NOT_FOUND) {
        return req_fail_json(r, -ERR_UNKNOWN_TOKEN, json_pack("{s:b}", "soft_logout", 0),
                             "Unknown refresh token");
    }
    if (rc < 0) {
        return rc;
    }
    /* The old access token went with the old refresh token. */
    auth_cache_evict_device(r->srv->auth, user_id, device_id);
    return req_json(r, 200,
                    json_pack("{s:s,s:s,s:I}", "access_token", access, "refresh_token", rtoken,
                              "expires_in_ms", (json_int_t)expires_in));
}

/* ---- password and deactivation (spec: "Account registration and management") ---- */

static const struct uia_flow flow_password[] = {{{"m.login.password"}, 1}};

/* The UIA session named by the request body, or NULL. */
static const char *body_session(struct req *r)
{
    const json_t *auth = json_get_obj(r->json, "auth");
    return auth ? json_get_str(auth, "session") : NULL;
}

/*
 * POST /account/password. Three passes: UIA (m.login.password, which
 * parks while the old password is verified), then hashing the new
 * password (parks again), then storing it. The third pass is reached only
 * through the first two, since only password_hash_async sets PW_HASHED.
 */
int client_account_password(struct req *r)
{
    const char *new_password;
    json_t *lo = json_object_get(r->json, "logout_devices");
    int rc = client__opt_string(r, "new_password", PASSWORD_MAX_BYTES, &new_password);
    if (rc) {
        return rc;
    }
    if (!new_password || !*new_password) {
        return req_fail(r, -ERR_MISSING_PARAM, "'new_password' is required");
    }
    if (lo && !json_is_null(lo) && !json_is_boolean(lo)) {
        return req_fail(r, -ERR_INVALID_PARAM, "'logout_devices' must be a boolean");
    }
    bool logout_devices = !lo || json_is_null(lo) || json_is_true(lo);

    if (r->pw.state != PW_HASHED) {
        if (r->pw.state == PW_FAILED) {
            return req_fail(r, -ERR_NOMEM, "Could not hash the password");
        }
        const char *session;
        rc = uia_check(r, "password", flow_password, 1, r->auth.user_id, NULL, &session);
        if (rc) {
            return rc;
        }
        return password_hash_async(r, new_password);
    }

    int64_t dl = client__device_lists_reserve(r);
    const char **ids = NULL;
    size_t n_ids = 0;
    rc = store_begin(r->db);
    if (rc == 0) {
        rc = store_user_set_password(r->db, r->auth.user_id, r->pw.hash);
    }
    if (rc == 0 && logout_devices) {
        rc = device_ids(r, r->auth.user_id, r->auth.device_id, &ids, &n_ids);
    }
    if (rc == 0 && logout_devices) {
        /* Spec: other devices and their tokens go; the caller's stays. */
        rc = store_devices_delete_all(r->db, r->auth.user_id, r->auth.device_id);
    }
    if (rc == 0 && logout_devices) {
        rc = store_keys_prune_devices(r->db, r->auth.user_id);
    }
    if (rc == 0 && logout_devices) {
        rc = store_to_device_prune(r->db, r->auth.user_id);
    }
    if (rc == 0 && logout_devices) {
        rc = client__device_lists_mark_devices(r, dl, r->auth.user_id, ids, n_ids);
    }
    rc = store_end(r->db, rc);
    client__device_lists_publish(r, dl, &r->auth.user_id, 1);
    if (logout_devices) {
        /* The caller's own entry is refilled from the database on its next
         * request; every other token of the user is gone. */
        auth_cache_evict_user(r->srv->auth, r->auth.user_id);
    }
    if (rc < 0) {
        return rc;
    }
    const char *session = body_session(r);
    if (session) {
        uia_session_end(r->srv->uia, session);
    }
    return req_json(r, 200, json_object());
}

/*
 * POST /account/deactivate. After UIA the account is marked deactivated,
 * loses its password, devices and tokens (and with `erase` its profile);
 * logging in then fails with M_USER_DEACTIVATED. No identity server is
 * ever bound, hence "no-support".
 */
int client_account_deactivate(struct req *r)
{
    bool erase;
    const char *id_server;
    int rc = client__opt_bool(r, "erase", &erase);
    if (!rc) {
        rc = client__opt_string(r, "id_server", 255, &id_server);
    }
    if (rc) {
        return rc;
    }
    const char *session;
    rc = uia_check(r, "deactivate", flow_password, 1, r->auth.user_id, NULL, &session);
    if (rc) {
        return rc;
    }
    int64_t dl = client__device_lists_reserve(r);
    const char **ids = NULL;
    size_t n_ids = 0;
    rc = store_begin(r->db);
    if (rc == 0) {
        rc = device_ids(r, r->auth.user_id, NULL, &ids, &n_ids);
    }
    if (rc == 0) {
        rc = store_user_deactivate(r->db, r->auth.user_id, erase);
    }
    if (rc == 0) {
        rc = store_keys_prune_devices(r->db, r->auth.user_id);
    }
    if (rc == 0) {
        rc = store_to_device_prune(r->db, r->auth.user_id);
    }
    if (rc == 0) {
        rc = client__device_lists_mark_devices(r, dl, r->auth.user_id, ids, n_ids);
    }
    rc = store_end(r->db, rc);
    client__device_lists_publish(r, dl, &r->auth.user_id, 1);
    auth_cache_evict_user(r->srv->auth, r->auth.user_id);
    if (rc < 0) {
        return rc;
    }
    uia_session_end(r->srv->uia, session);
    return req_json(r, 200, json_pack("{s:s}", "id_server_unbind_result", "no-support"));
}
