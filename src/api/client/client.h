/*
 * Helpers shared by the client-server handlers in src/api/client: reading
 * optional body fields with the right errors, local user IDs, and creating
 * accounts and sessions the same way from every registration path.
 */
#ifndef MYELIN_API_CLIENT_CLIENT_H
#define MYELIN_API_CLIENT_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "http/req.h"

#define CLIENT_PASSWORD_MAX_BYTES 512
#define CLIENT_DEVICE_ID_MAX_BYTES 255
#define CLIENT_DISPLAY_NAME_MAX_BYTES 255

/*
 * Reads an optional string field of r->json: 0 with *out NULL when absent
 * or null, 0 with *out set, or the M_INVALID_PARAM failure when the value
 * has another type or is longer than `max` bytes.
 */
int client__opt_string(struct req *r, const char *key, size_t max, const char **out);
/* As client__opt_string for a boolean; *out is false when absent. */
int client__opt_bool(struct req *r, const char *key, bool *out);

/*
 * Checks a localpart for a new account: the user ID grammar, not purely
 * numeric (guests), not starting with '_' (application services), the
 * whole ID within 255 bytes. Returns 0 or the M_INVALID_USERNAME failure.
 */
int client__check_localpart(struct req *r, const char *localpart);

/* "@localpart:server_name" in the request arena. */
char *client__user_id(struct req *r, const char *localpart);

/* The localpart of a user ID of this server (arena copy), or NULL when
 * the ID is malformed or belongs to another server. */
char *client__local_part(struct req *r, const char *user_id);

/*
 * Creates an account and its profile (display name = `displayname`, or
 * the localpart when NULL) inside the caller's transaction. Returns 0,
 * -ERR_USER_IN_USE, or another negative ERR_*.
 */
int client__user_create(struct req *r, const char *user_id, const char *password_hash,
                        bool is_admin, bool is_guest, const char *displayname);

/*
 * Creates (or reuses) a device and mints its tokens inside the caller's
 * transaction, and builds the login/registration body (user_id,
 * access_token, device_id, home_server, and with `refresh` the
 * refresh_token and expires_in_ms) into *out (a new reference).
 */
int client__session_response(struct req *r, const char *user_id, const char *device_id,
                             const char *display_name, bool refresh, json_t **out);

#endif
