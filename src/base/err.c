/*
 * Lookup tables generated from err.def: errcode, HTTP status and default
 * message for every ERR_* code. Unknown codes map to M_UNKNOWN / 500.
 */
#include "base/err.h"

struct err_info {
    const char *errcode;
    int status;
    const char *message;
};

static const struct err_info table[ERR__COUNT] = {
    [ERR_OK] = {"M_UNKNOWN", 200, "OK"},
#define ERR(name, errcode, status, msg) [ERR_##name] = {errcode, status, msg},
#include "base/err.def"
#undef ERR
};

static const struct err_info *lookup(int code)
{
    if (code < 0) {
        code = -code;
    }
    if (code <= 0 || code >= ERR__COUNT) {
        return &table[ERR_UNKNOWN];
    }
    return &table[code];
}

const char *err_errcode(int code) { return lookup(code)->errcode; }
int err_status(int code) { return lookup(code)->status; }
const char *err_message(int code) { return lookup(code)->message; }
