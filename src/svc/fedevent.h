/*
 * Checking PDUs received from other servers (spec: Server-Server API
 * "Checks performed on receipt of a PDU", steps 1-3 and the hash rule):
 * the shape for the room version, the event ID (the reference hash from
 * v3; the PDU's own from v1/v2), the signatures of every server that must
 * sign it (keys from svc/keyring, which may fetch them), and the content
 * hash, with the event kept redacted when the hash does not match. What
 * comes after (auth against auth events, state before, current state) is
 * the room service's part.
 */
#ifndef MYELIN_SVC_FEDEVENT_H
#define MYELIN_SVC_FEDEVENT_H

#include <jansson.h>

#include "core/event.h"
#include "core/roomver.h"
#include "http/req.h"

/*
 * Checks `pdu` (borrowed) for room version rv. On success returns 0 with
 * *out parsed in r's arena (its json the PDU as kept: redacted when the
 * content hash did not match, signatures and unsigned as received minus
 * `unsigned`). Returns -ERR_BAD_JSON (malformed), -ERR_UNAUTHORIZED (bad
 * or missing signatures) with *why set.
 */
int fedevent_check(struct req *r, const struct room_version *rv, const json_t *pdu,
                   struct event **out, const char **why);

/* The canonical JSON of a checked event, for storage (arena string). */
char *fedevent_canonical(struct req *r, const struct event *ev);

#endif
