/*
 * Federation queries (spec: Server-Server API "Querying for information"):
 * GET /_matrix/federation/v1/query/profile for local users. Answers the
 * public profile (every field; one with `field`), 404 M_NOT_FOUND for an
 * unknown or deactivated user, a user of another server or a missing
 * field.
 */
#include <string.h>

#include "api/client/client.h"
#include "api/handlers.h"
#include "base/err.h"
#include "base/json.h"

int fed_query_profile(struct req *r)
{
    const char *user_id = req_query(r, "user_id");
    const char *field = req_query(r, "field");
    if (!user_id) {
        return req_fail(r, -ERR_MISSING_PARAM, "'user_id' is required");
    }
    json_t *obj;
    int rc = client__profile_load(r, user_id, &obj);
    if (rc) {
        return rc;
    }
    if (field) {
        json_t *v = json_object_get(obj, field);
        if (!v) {
            return req_fail(r, -ERR_NOT_FOUND, "The profile has no field '%s'", field);
        }
        return req_json(r, 200, json_pack("{s:O}", field, v));
    }
    return req_json(r, 200, json_incref(obj));
}
