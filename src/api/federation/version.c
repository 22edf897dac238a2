/*
 * GET /_matrix/federation/v1/version (Server-Server API "Server
 * Implementation"): the name and version of this server.
 */
#include "api/handlers.h"
#include "myelin_version.h"

int fed_version(struct req *r)
{
    return req_json(r, 200,
                    json_pack("{s:{s:s,s:s}}", "server", "name", "Myelin", "version",
                              MYELIN_VERSION));
}
