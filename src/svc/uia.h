/*
 * User-interactive authentication (spec: Client-Server API "User-Interactive
 * Authentication API"). Sessions live in memory for UIA_SESSION_TTL_MS,
 * bound to the operation (`kind`) and, where a password is proved, the
 * account. Supported stages: m.login.dummy, m.login.password,
 * m.login.registration_token.
 */
#ifndef MYELIN_SVC_UIA_H
#define MYELIN_SVC_UIA_H

#include <jansson.h>
#include <stddef.h>

#include "http/req.h"

#define UIA_SESSION_TTL_MS (30 * 60 * 1000)
#define UIA_MAX_STAGES 3

struct uia;

struct uia_flow {
    const char *stages[UIA_MAX_STAGES];
    size_t n;
};

struct uia *uia_new(void);
void uia_free(struct uia *u);

/*
 * Runs one round of UIA for request r (whose body is r->json).
 *  - kind: the operation ("register", "password", "deactivate",
 *    "delete_devices", "device_signing"); a session is valid for one kind.
 *  - user_id: the account m.login.password must prove (NULL: none allowed).
 *  - params: stage parameters for the challenge (stolen; may be NULL).
 * Returns 0 when a flow is complete (*session set to the session ID, an
 * arena string), REQ_PARKED while a password is being checked (return it:
 * the handler re-runs), or a negative ERR_* with the 401 challenge or
 * the error already set as the response (return it).
 */
int uia_check(struct req *r, const char *kind, const struct uia_flow *flows, size_t n_flows,
              const char *user_id, json_t *params, const char **session);

/* The registration token reserved by the session, or NULL (arena copy). */
const char *uia_session_regtoken(struct uia *u, struct arena *arena, const char *session);

/* Ends a session after its operation succeeded. */
void uia_session_end(struct uia *u, const char *session);

#endif
