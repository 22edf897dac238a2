/*
 * Presence endpoints (spec "Presence", GET and PUT
 * /presence/{userId}/status). The state lives in svc/presence; this file
 * checks input and who may see what. Only the user sets their own
 * presence (M_FORBIDDEN otherwise); the user and those sharing a joined
 * room with them may read it (M_FORBIDDEN otherwise, as Synapse answers).
 * A remote user's presence is what their server last sent us (m.presence
 * EDUs, svc/presence); M_NOT_FOUND when we hold nothing for them.
 * With presence disabled PUT is accepted and ignored and GET answers
 * {"presence": "offline"}, as Synapse does.
 */
#include <jansson.h>
#include <string.h>

#include "api/client/client.h"
#include "api/handlers.h"
#include "base/err.h"
#include "core/id.h"
#include "store/store.h"
#include "svc/presence.h"
#include "svc/srv.h"

#define STATUS_MSG_MAX_BYTES 4096

/* 0 for a well-formed user ID, else the M_INVALID_PARAM failure. */
static int check_user_id(struct req *r, const char *user_id)
{
    if (!id_user_valid(user_id, strlen(user_id), false)) {
        return req_fail(r, -ERR_INVALID_PARAM, "Invalid user ID");
    }
    return 0;
}

/* GET /presence/{userId}/status */
int client_presence_get(struct req *r)
{
    const char *user_id = r->param[0].p;
    int rc = check_user_id(r, user_id);
    if (rc) {
        return rc;
    }
    struct presence *p = r->srv->presence;
    if (!presence_enabled(p)) {
        return req_json(r, 200, json_pack("{s:s}", "presence", "offline"));
    }
    if (strcmp(user_id, r->auth.user_id) != 0) {
        bool shared = false;
        rc = store_presence_share_room(r->db, r->auth.user_id, user_id, &shared);
        if (rc < 0) {
            return req_fail(r, rc, NULL);
        }
        if (!shared) {
            return req_fail(r, -ERR_FORBIDDEN, "You are not allowed to see their presence");
        }
    }
    if (!client__local_part(r, user_id)) {
        json_t *held = presence_lookup(p, user_id);
        if (!held) {
            return req_fail(r, -ERR_NOT_FOUND, "No presence known for this user");
        }
        return req_json(r, 200, held);
    }
    return req_json(r, 200, presence_get(p, user_id));
}

/* PUT /presence/{userId}/status {presence, status_msg?} */
int client_presence_put(struct req *r)
{
    const char *user_id = r->param[0].p;
    int rc = check_user_id(r, user_id);
    if (rc) {
        return rc;
    }
    if (strcmp(user_id, r->auth.user_id) != 0) {
        return req_fail(r, -ERR_FORBIDDEN, "You can only set your own presence state");
    }
    const char *state = NULL, *status_msg = NULL;
    rc = client__opt_string(r, "presence", 32, &state);
    if (rc == 0) {
        rc = client__opt_string(r, "status_msg", STATUS_MSG_MAX_BYTES, &status_msg);
    }
    if (rc) {
        return rc;
    }
    if (!state) {
        return req_fail(r, -ERR_MISSING_PARAM, "'presence' is required");
    }
    int st = presence_state_parse(state);
    if (st < 0) {
        return req_fail(r, -ERR_INVALID_PARAM,
                        "'presence' must be online, unavailable or offline, not '%s'", state);
    }
    rc = presence_set(r->srv->presence, r->db, user_id, (enum presence_state)st, status_msg);
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    return req_json(r, 200, json_object());
}
