/*
 * Canonical JSON (spec appendix "Signing JSON" / "Canonical JSON"): the one
 * byte encoding of a JSON value that signatures, content hashes and
 * reference hashes are computed over. Written here rather than with
 * jansson's dumper because the spec fixes details jansson does differently
 * (lowercase \u00xx escapes, keys ordered by code point, numbers).
 *
 * The encoding: object keys sorted by Unicode code point (which is the byte
 * order of their UTF-8), no insignificant whitespace, UTF-8 output with only
 * the required escapes (\" \\ \b \t \n \f \r, other characters below U+0020
 * as lowercase \u00XX), numbers as integers without exponent, fraction or
 * negative zero.
 *
 * Two modes:
 *   - CANONJSON_STRICT (room versions 6+, spec fragment "v6-canonical-json",
 *     and every non-event object we sign or verify: key responses, request
 *     signatures): a number must have an integer value within
 *     [-(2^53)+1, 2^53-1]; anything else is -ERR_BAD_JSON.
 *   - CANONJSON_LENIENT (room versions 1-5, fragment "v1-canonical-json":
 *     servers "MUST NOT strictly enforce" the format, and those rooms hold
 *     out-of-range integers and float power levels): integers of any
 *     magnitude jansson holds are written in decimal, and numbers with a
 *     fraction are written in the shortest form that reads back as the same
 *     double, spelled the way the events' creators encoded them: fixed
 *     notation ("50.57", "0.0001") for decimal exponents -4 < e <= 16,
 *     otherwise d.ddde+XX ("1e+16", "1e-05").
 *
 * In both modes a number whose value is an integer in the safe range is
 * written as that integer whatever its spelling, as the appendix's last
 * example requires ({"a": -0, "b": 1e10} -> {"a":0,"b":10000000000}).
 */
#ifndef MYELIN_CORE_CANONJSON_H
#define MYELIN_CORE_CANONJSON_H

#include <jansson.h>
#include <stddef.h>

#include "base/buf.h"
#include "core/roomver.h"

/* Deepest nesting the writer follows; deeper values are -ERR_BAD_JSON. */
#define CANONJSON_MAX_DEPTH 128

enum canonjson_mode {
    CANONJSON_STRICT = 0,
    CANONJSON_LENIENT = 1,
};

/* The mode events of room version `rv` are encoded with. */
enum canonjson_mode canonjson_mode_for(const struct room_version *rv);

/*
 * Appends the canonical encoding of `v` to `out`. Returns 0, or
 * -ERR_BAD_JSON when `v` has no canonical encoding in `mode` (a float or
 * out-of-range integer in strict mode, a non-finite real, nesting beyond
 * CANONJSON_MAX_DEPTH); `out` is then left as it was.
 */
int canonjson_write(struct buf *out, const json_t *v, enum canonjson_mode mode);

/*
 * As canonjson_write for an object, leaving out the top-level members whose
 * names are in `skip` (a NULL-terminated list, or NULL). This is how
 * signatures and hashes are computed over "the object without signatures
 * and unsigned" without copying it. Returns -ERR_BAD_JSON if `obj` is not
 * an object.
 */
int canonjson_write_except(struct buf *out, const json_t *obj, enum canonjson_mode mode,
                           const char *const *skip);

/*
 * Parses untrusted JSON for canonicalisation: json_parse_input with the
 * usual depth bound, so duplicate keys, invalid UTF-8, NUL characters and
 * integers beyond 64 bits are rejected. Returns 0 and a new reference in
 * *out, or -ERR_NOT_JSON / -ERR_BAD_JSON with *why (if not NULL) set.
 */
int canonjson_parse(const char *text, size_t len, json_t **out, const char **why);

#endif
