/*
 * Password hashing and verification with argon2id (libsodium), off the
 * request workers. Both functions park the request, run the hash on the
 * CPU pool, store the outcome in r->pw and then re-run the route's handler
 * on a worker: handlers are written to be re-entered, checking r->pw.state
 * first. Passwords are never logged and are wiped after use.
 */
#ifndef MYELIN_SVC_PASSWORD_H
#define MYELIN_SVC_PASSWORD_H

#include "http/req.h"

/* Starts hashing `password`; on re-entry r->pw.state is PW_HASHED with
 * r->pw.hash set (or PW_FAILED). Returns REQ_PARKED. */
int password_hash_async(struct req *r, const char *password);

/* Starts checking `password` against the argon2id string `hash` (NULL
 * hash: always fails, in the same time); on re-entry r->pw.state is PW_OK
 * or PW_BAD. Returns REQ_PARKED. */
int password_verify_async(struct req *r, const char *hash, const char *password);

/* Synchronous hashing for the command line. Returns 0 or -ERR_NOMEM. */
int password_hash_now(const char *password, char *out, size_t out_size);

#endif
