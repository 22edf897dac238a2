/*
 * The redaction algorithm of every room version (room version pages,
 * "Redactions"; fragments v1-, v6-, v9- and v11-redactions and the v8 note
 * on join_rules "allow"; v12 keeps the v11 rules). Redaction is what event
 * signatures and reference hashes (event IDs) are computed over, so it must
 * match other servers byte for byte.
 *
 * The result is a new JSON object; the input is never modified.
 */
#ifndef MYELIN_CORE_REDACT_H
#define MYELIN_CORE_REDACT_H

#include <jansson.h>

#include "core/roomver.h"

/*
 * Redacts the PDU `pdu` under the rules of `rv` (rv->redaction): keeps only
 * the protected top-level keys and, per event type, the protected keys of
 * `content`. `content` is always present in the result (an empty object
 * when the event had none or it was not an object). Kept values are deep
 * copies, so the result can be changed (signed) freely.
 *
 * Returns 0 and a new reference in *out, or -ERR_BAD_JSON when `pdu` is not
 * an object.
 */
int redact_event(const struct room_version *rv, const json_t *pdu, json_t **out);

#endif
