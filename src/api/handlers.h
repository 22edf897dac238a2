/*
 * Declarations of every endpoint handler, generated from routes.def so the
 * table and the declarations cannot drift apart.
 */
#ifndef MYELIN_API_HANDLERS_H
#define MYELIN_API_HANDLERS_H

#include "http/req.h"

#define ROUTE(methods, path, handler, auth, rl, limit, flags) int handler(struct req *r);
#include "api/routes.def"
#undef ROUTE

#endif
