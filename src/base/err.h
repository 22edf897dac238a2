/*
 * Error codes. Functions return 0 on success or a negative ERR_* value;
 * the list lives in err.def, which also maps each code to its Matrix
 * errcode, HTTP status and default message.
 */
#ifndef MYELIN_BASE_ERR_H
#define MYELIN_BASE_ERR_H

enum err_code {
    ERR_OK = 0,
#define ERR(name, errcode, status, msg) ERR_##name,
#include "base/err.def"
#undef ERR
    ERR__COUNT
};

/* The Matrix errcode string ("M_FORBIDDEN") for a code, positive or negative. */
const char *err_errcode(int code);
/* The HTTP status the code is rendered with. */
int err_status(int code);
/* The default human-readable message. */
const char *err_message(int code);

#endif
