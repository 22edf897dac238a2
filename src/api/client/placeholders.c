/*
 * Endpoints that clients call at start-up before the features behind them
 * exist here. Each answers what the spec allows for "nothing configured"
 * so that clients carry on instead of reporting an error:
 *
 *  - OAuth 2.0 discovery (MSC2965 unstable auth_issuer, spec v1.15
 *    auth_metadata): 404 M_UNRECOGNIZED tells clients to use the classic
 *    password login. Explicit routes, so the answer is deliberate.
 *  - GET /thirdparty/protocols: {} (no application-service bridges).
 *  - GET /voip/turnServer: {} (no TURN server configured).
 *  - GET /pushers: no pushers yet.
 */
#include "api/handlers.h"
#include "base/err.h"

int client_oauth_probe(struct req *r)
{
    return req_fail(r, -ERR_UNRECOGNIZED, "OAuth 2.0 is not supported; use password login");
}

int client_thirdparty_protocols(struct req *r)
{
    return req_json(r, 200, json_object());
}

int client_voip_turnserver(struct req *r)
{
    return req_json(r, 200, json_object());
}

int client_pushers_get(struct req *r)
{
    return req_json(r, 200, json_pack("{s:[]}", "pushers"));
}
