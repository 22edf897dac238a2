/*
 * Third-party identifiers (spec: Client-Server API "Adding Account
 * Administrative Contact Information", the requestToken endpoints of
 * registration and password reset). Myelin sends no email or SMS and
 * binds nothing at identity servers, so every endpoint validates its body
 * and then answers what the spec names for a server without the feature
 * (capability m.3pid_changes is false):
 *
 *  - GET /account/3pid: no identifiers.
 *  - POST /account/3pid, /account/3pid/add: no validation session can
 *    exist, so 403 M_THREEPID_AUTH_FAILED.
 *  - POST /account/3pid/bind: 403 M_THREEPID_DENIED (nothing is bound).
 *  - POST /account/3pid/delete, /unbind: the account has no such
 *    identifier and no identity server knows it: 200 with
 *    id_server_unbind_result "no-support", as the spec prescribes when no
 *    identity server is known.
 *  - POST /account/3pid/{email,msisdn}/requestToken: 400
 *    M_THREEPID_MEDIUM_NOT_SUPPORTED.
 *  - POST /register/{email,msisdn}/requestToken: 403 M_THREEPID_DENIED.
 *  - POST /account/password/{email,msisdn}/requestToken: 400
 *    M_THREEPID_NOT_FOUND, since no account has an identifier.
 */
#include <string.h>

#include "api/handlers.h"
#include "base/err.h"
#include "base/json.h"
#include "http/router.h"

/* ---- body validation ---- */

enum field_type { FT_STRING, FT_INT, FT_OBJECT, FT_SECRET, FT_MEDIUM };

struct field {
    const char *key;
    enum field_type type;
    bool required;
};

#define FIELDS_END {NULL, FT_STRING, false}

static const struct field email_token[] = {
    {"client_secret", FT_SECRET, true}, {"email", FT_STRING, true},
    {"send_attempt", FT_INT, true},     {"next_link", FT_STRING, false},
    {"id_server", FT_STRING, false},    {"id_access_token", FT_STRING, false},
    FIELDS_END,
};
static const struct field msisdn_token[] = {
    {"client_secret", FT_SECRET, true}, {"country", FT_STRING, true},
    {"phone_number", FT_STRING, true},  {"send_attempt", FT_INT, true},
    {"next_link", FT_STRING, false},    {"id_server", FT_STRING, false},
    {"id_access_token", FT_STRING, false}, FIELDS_END,
};
static const struct field add_fields[] = {
    {"client_secret", FT_SECRET, true}, {"sid", FT_STRING, true}, FIELDS_END,
};
static const struct field legacy_add_fields[] = {
    {"three_pid_creds", FT_OBJECT, true}, FIELDS_END,
};
static const struct field bind_fields[] = {
    {"client_secret", FT_SECRET, true},   {"id_server", FT_STRING, true},
    {"id_access_token", FT_STRING, true}, {"sid", FT_STRING, true},
    FIELDS_END,
};
static const struct field remove_fields[] = {
    {"medium", FT_MEDIUM, true}, {"address", FT_STRING, true},
    {"id_server", FT_STRING, false}, FIELDS_END,
};

/* client_secret: [0-9a-zA-Z.=_-]{1,255} (spec "Adding Account
 * Administrative Contact Information"). */
static bool secret_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 255) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '.' || c == '=' || c == '_' || c == '-')) {
            return false;
        }
    }
    return true;
}

/* Checks r->json against a field table: M_MISSING_PARAM for an absent
 * required field, M_INVALID_PARAM for a wrong type or value. */
static int check_fields(struct req *r, const struct field *fields)
{
    for (const struct field *f = fields; f->key; f++) {
        json_t *v = json_object_get(r->json, f->key);
        if (!v || json_is_null(v)) {
            if (f->required) {
                return req_fail(r, -ERR_MISSING_PARAM, "'%s' is required", f->key);
            }
            continue;
        }
        bool ok;
        switch (f->type) {
        case FT_INT:
            ok = json_is_integer(v);
            break;
        case FT_OBJECT:
            ok = json_is_object(v);
            break;
        case FT_SECRET:
            ok = json_is_string(v) && secret_valid(json_string_value(v));
            break;
        case FT_MEDIUM:
            ok = json_is_string(v) && (strcmp(json_string_value(v), "email") == 0 ||
                                       strcmp(json_string_value(v), "msisdn") == 0);
            break;
        case FT_STRING:
        default:
            ok = json_is_string(v);
            break;
        }
        if (!ok) {
            return req_fail(r, -ERR_INVALID_PARAM, "Invalid '%s'", f->key);
        }
    }
    return 0;
}

/* ---- handlers ---- */

int client_3pid_get(struct req *r)
{
    return req_json(r, 200, json_pack("{s:[]}", "threepids"));
}

int client_3pid_post(struct req *r)
{
    int rc = check_fields(r, legacy_add_fields);
    if (rc) {
        return rc;
    }
    return req_fail(r, -ERR_THREEPID_AUTH_FAILED,
                    "This server does not validate third-party identifiers");
}

int client_3pid_add(struct req *r)
{
    int rc = check_fields(r, add_fields);
    if (rc) {
        return rc;
    }
    return req_fail(r, -ERR_THREEPID_AUTH_FAILED,
                    "This server does not validate third-party identifiers");
}

int client_3pid_bind(struct req *r)
{
    int rc = check_fields(r, bind_fields);
    if (rc) {
        return rc;
    }
    return req_fail(r, -ERR_THREEPID_DENIED,
                    "This server does not bind third-party identifiers");
}

/* POST /account/3pid/delete and /account/3pid/unbind. */
int client_3pid_remove(struct req *r)
{
    int rc = check_fields(r, remove_fields);
    if (rc) {
        return rc;
    }
    return req_json(r, 200, json_pack("{s:s}", "id_server_unbind_result", "no-support"));
}

static bool is_msisdn(const struct req *r)
{
    return strstr(r->route->path, "/msisdn/") != NULL;
}

int client_3pid_request_token(struct req *r)
{
    int rc = check_fields(r, is_msisdn(r) ? msisdn_token : email_token);
    if (rc) {
        return rc;
    }
    return req_fail(r, -ERR_THREEPID_MEDIUM_NOT_SUPPORTED,
                    "This server cannot send %s", is_msisdn(r) ? "SMS" : "email");
}

int client_register_request_token(struct req *r)
{
    int rc = check_fields(r, is_msisdn(r) ? msisdn_token : email_token);
    if (rc) {
        return rc;
    }
    return req_fail(r, -ERR_THREEPID_DENIED,
                    "Registration with a third-party identifier is not supported");
}

int client_password_request_token(struct req *r)
{
    int rc = check_fields(r, is_msisdn(r) ? msisdn_token : email_token);
    if (rc) {
        return rc;
    }
    return req_fail(r, -ERR_THREEPID_NOT_FOUND,
                    "No account has this third-party identifier");
}
