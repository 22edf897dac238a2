/*
 * GET /capabilities (spec: Client-Server API "Capabilities negotiation"):
 * what this server lets the calling user do. Password changes and profile
 * edits are open; third-party identifiers and login tokens are not
 * offered; room versions come from core/roomver.
 */
#include "api/handlers.h"
#include "core/roomver.h"

int client_capabilities(struct req *r)
{
    size_t n;
    const struct room_version *rv = roomver_all(&n);
    json_t *available = json_object();
    for (size_t i = 0; i < n; i++) {
        json_object_set_new(available, rv[i].id, json_string(rv[i].stable ? "stable" : "unstable"));
    }
    json_t *caps = json_object();
    json_object_set_new(caps, "m.change_password", json_pack("{s:b}", "enabled", 1));
    json_object_set_new(caps, "m.room_versions",
                        json_pack("{s:s,s:o}", "default", ROOMVER_DEFAULT, "available", available));
    /* Deprecated in v1.16 in favour of m.profile_fields, still read by
     * older clients. */
    json_object_set_new(caps, "m.set_displayname", json_pack("{s:b}", "enabled", 1));
    json_object_set_new(caps, "m.set_avatar_url", json_pack("{s:b}", "enabled", 1));
    json_object_set_new(caps, "m.profile_fields", json_pack("{s:b}", "enabled", 1));
    json_object_set_new(caps, "m.3pid_changes", json_pack("{s:b}", "enabled", 0));
    json_object_set_new(caps, "m.get_login_token", json_pack("{s:b}", "enabled", 0));
    return req_json(r, 200, json_pack("{s:o}", "capabilities", caps));
}
