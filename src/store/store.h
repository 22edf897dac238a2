/*
 * The only door to the database. One function per query, typed arguments,
 * results copied into the caller's arena. SQL lives only in src/store;
 * store.c holds the queries written once, and the engine files (sqlite.c,
 * pg.c) handle placeholders, upserts, transactions and busy retries.
 *
 * Threading: a `struct store` is shared by the whole process; each thread
 * that touches the database holds its own `struct store_conn` from
 * store_conn_open and uses it from that thread only.
 */
#ifndef MYELIN_STORE_STORE_H
#define MYELIN_STORE_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/arena.h"
#include "config.h"

struct store;
struct store_conn;

/*
 * Opens the database described by `cfg`, creating it if needed, and applies
 * every pending numbered migration, each inside its own transaction. A
 * SQLite path of ":memory:" gives an in-memory database private to this
 * store and shared by all its connections; it is gone after store_close. A database whose
 * schema is newer than this binary knows is refused with ERR_SCHEMA_TOO_NEW
 * (and a log line saying which versions). Returns 0 or a negative ERR_*.
 */
int store_open(const struct config_db *cfg, struct store **out);
/* Closes the store; every store_conn must have been closed first. */
void store_close(struct store *s);

/* Opens a connection for the calling thread. Returns 0 or a negative ERR_*. */
int store_conn_open(struct store *s, struct store_conn **out);
void store_conn_close(struct store_conn *c);

/*
 * Transactions. Nested begin is an error (assert). store_begin starts a
 * write transaction (SQLite: BEGIN IMMEDIATE, waiting while another
 * writer holds the lock), so a transaction that reads and then writes never
 * fails half-way for want of the write lock. A failed store_commit has
 * rolled the transaction back. store_rollback outside a transaction does
 * nothing and returns 0, so error paths may call it unconditionally. On
 * PostgreSQL a failed statement aborts the whole transaction: roll back.
 */
int store_begin(struct store_conn *c);
int store_commit(struct store_conn *c);
int store_rollback(struct store_conn *c);

/* "sqlite" or "postgres". */
const char *store_engine_name(const struct store *s);
/* The highest schema version this binary knows. */
int store_schema_latest(void);

/* ---- queries ---- */

/* Cheap liveness probe (SELECT 1). */
int store_ping(struct store_conn *c);

/* The schema version recorded in the database. */
int store_schema_version(struct store_conn *c, int *version);

/*
 * Creates a local account. `password_hash` is an argon2id string from
 * libsodium's crypto_pwhash_str (never the password). Returns 0,
 * -ERR_USER_IN_USE when user_id already exists, or another negative ERR_*.
 */
int store_user_create(struct store_conn *c, const char *user_id, const char *password_hash,
                      bool is_admin, bool is_guest, int64_t created_ts);

struct store_user {
    char *user_id;
    char *password_hash; /* NULL when the account has no password */
    bool is_admin;
    bool is_guest;
    bool deactivated;
    int64_t created_ts;
};

/*
 * Looks up a local account. Returns 0 and fills *out (strings in `arena`),
 * -ERR_NOT_FOUND when there is no such user, or another negative ERR_*.
 */
int store_user_get(struct store_conn *c, struct arena *arena, const char *user_id,
                   struct store_user *out);

#endif
