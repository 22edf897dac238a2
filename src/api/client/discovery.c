/*
 * Discovery endpoints: /_matrix/client/versions, /.well-known/matrix/client
 * and /.well-known/matrix/server (spec: Client-Server API "Server
 * Discovery", Server-Server API "Resolving server names"), and /health.
 */
#include <stdio.h>
#include <string.h>

#include "api/handlers.h"
#include "base/err.h"
#include "base/json.h"
#include "config.h"
#include "svc/srv.h"

/*
 * Spec versions advertised to clients. A version is listed only when the
 * features clients switch on for it are present, since clients take the
 * list as a promise:
 *  - Clients refuse a server that lists none of v1.1-v1.9, the baseline
 *    kept here. The account features of those versions are all served:
 *    registration with dummy and registration-token UIA (v1.2), refresh
 *    tokens (v1.3), password change with logout_devices, deactivation,
 *    devices, profiles, capabilities, whoami with device_id and is_guest,
 *    and the third-party identifier endpoints answering "unsupported"
 *    (m.3pid_changes false).
 *  - v1.10 and v1.11 wait for the media repository: listing v1.11 makes
 *    clients use authenticated media (/_matrix/client/v1/media).
 *  - Custom profile fields (v1.16) are served but cannot be advertised by
 *    version before v1.10-v1.15 are complete; m.profile_fields in
 *    /capabilities tells clients about them meanwhile.
 */
static const char *const spec_versions[] = {
    "r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9",
};

int client_versions(struct req *r)
{
    json_t *versions = json_array();
    for (size_t i = 0; i < sizeof(spec_versions) / sizeof(spec_versions[0]); i++) {
        json_array_append_new(versions, json_string(spec_versions[i]));
    }
    /* MSC4222 (state_after in /sync, spec v1.16) is served; advertised
     * under its unstable name until v1.16 can be listed. MSC3814
     * (dehydrated devices, api/client/dehydrated.c) is unstable only. */
    return req_json(r, 200, json_pack("{s:o,s:{s:b,s:b}}", "versions", versions,
                                      "unstable_features", "org.matrix.msc4222", 1,
                                      "org.matrix.msc3814", 1));
}

int wellknown_client(struct req *r)
{
    const struct config *cfg = r->srv->cfg;
    json_t *body = json_pack("{s:{s:s}}", "m.homeserver", "base_url", cfg->public_baseurl);
    if (cfg->well_known.identity_server) {
        json_object_set_new(body, "m.identity_server",
                            json_pack("{s:s}", "base_url", cfg->well_known.identity_server));
    }
    return req_json(r, 200, body);
}

/* The host part of a server name ("[::1]:8448" -> "[::1]"). */
static size_t host_len(const char *name)
{
    const char *end = name[0] == '[' ? strchr(name, ']') : NULL;
    const char *colon = strrchr(end ? end : name, ':');
    return colon ? (size_t)(colon - name) : strlen(name);
}

int wellknown_server(struct req *r)
{
    const struct config *cfg = r->srv->cfg;
    if (!cfg->well_known.serve_server) {
        return req_fail(r, -ERR_NOT_FOUND, "No server delegation configured");
    }
    const char *target = cfg->well_known.server;
    if (!target) {
        /* Delegate to our own TLS federation listener when there is one. */
        for (size_t i = 0; i < cfg->n_listeners && !target; i++) {
            const struct config_listener *l = &cfg->listeners[i];
            if (l->tls && (l->resources & RESOURCE_FEDERATION)) {
                target = arena_printf(&r->arena, "%.*s:%u", (int)host_len(cfg->server_name),
                                      cfg->server_name, l->port);
            }
        }
    }
    if (!target) {
        target = cfg->server_name;
    }
    return req_json(r, 200, json_pack("{s:s}", "m.server", target));
}

int misc_health(struct req *r)
{
    return req_bytes(r, 200, "text/plain; charset=utf-8", "OK", 2);
}
