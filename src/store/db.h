/*
 * The database engine abstraction inside src/store. store.c writes every
 * query once, with `?` placeholders, against this interface; sqlite.c and
 * pg.c implement it. The engines own connection set-up, placeholder
 * rewriting, prepared-statement caching, transactions, busy retries and
 * error mapping, so store.c never branches on the engine.
 *
 * Nothing outside src/store includes this header.
 *
 * Return values: 0 on success or a negative ERR_*. Engines log database
 * errors themselves (LOG_ERROR "store") and return -ERR_DB. A violated
 * unique or primary-key constraint is the one expected failure: it is
 * returned as DB_UNIQUE and logged at debug level only, so a caller can
 * map it to a precise error (store_user_create -> -ERR_USER_IN_USE).
 * Either way the database's message stays on the connection (db_error),
 * so a caller that gives up can say why.
 *
 * A `struct db` is one connection, used by one thread at a time.
 */
#ifndef MYELIN_STORE_DB_H
#define MYELIN_STORE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/err.h"

/* A unique or primary-key constraint was violated. Never leaves src/store. */
#define DB_UNIQUE (-ERR_CONFLICT)

/* db_step results besides errors. */
enum db_step_result {
    DB_DONE = 0, /* no (more) rows */
    DB_ROW = 1,  /* a row is available through the db_column_* accessors */
};

enum db_kind {
    DB_KIND_SQLITE,
    DB_KIND_PG,
};

struct db;
struct db_stmt;

/*
 * One engine's implementation. Every function pointer is required. The
 * wrappers below document the contracts; callers use those.
 */
struct db_engine {
    const char *name; /* "sqlite", "postgres" */
    enum db_kind kind;
    int (*open)(const char *target, struct db **out);
    void (*close)(struct db *d);
    int (*exec)(struct db *d, const char *sql);
    int (*begin)(struct db *d);
    int (*commit)(struct db *d);
    int (*rollback)(struct db *d);
    int (*table_exists)(struct db *d, const char *table, bool *exists);
    int (*migrate_lock)(struct db *d);
    int (*migrate_unlock)(struct db *d);
    int (*prepare)(struct db *d, const char *sql, struct db_stmt **out);
    void (*finalize)(struct db_stmt *st);
    int (*bind_int64)(struct db_stmt *st, int idx, int64_t v);
    int (*bind_text)(struct db_stmt *st, int idx, const char *s, size_t len);
    int (*bind_blob)(struct db_stmt *st, int idx, const void *p, size_t len);
    int (*bind_null)(struct db_stmt *st, int idx);
    int (*step)(struct db_stmt *st);
    bool (*column_is_null)(struct db_stmt *st, int col);
    int64_t (*column_int64)(struct db_stmt *st, int col);
    const char *(*column_text)(struct db_stmt *st, int col, size_t *len);
    const void *(*column_blob)(struct db_stmt *st, int col, size_t *len);
    int64_t (*changes)(struct db_stmt *st);
};

/* How much of a database error message a connection keeps. */
#define DB_ERROR_MAX 256

/* Every engine connection and statement starts with these. */
struct db {
    const struct db_engine *engine;
    /* The database's message for the last failed statement, unique
     * violations included, "" if none; engines fill it where they log. */
    char error[DB_ERROR_MAX];
};

struct db_stmt {
    struct db *db;
};

extern const struct db_engine db_engine_sqlite;
extern const struct db_engine db_engine_pg;

/* ---- connections ---- */

/*
 * Opens a connection. `target` is the SQLite path (a path starting with
 * "file:" is a SQLite URI) or the libpq conninfo. A conninfo is never
 * logged, as it may hold a password. Returns 0 and sets *out, or -ERR_DB.
 */
static inline int db_open(const struct db_engine *e, const char *target, struct db **out)
{
    return e->open(target, out);
}

/* Closes a connection, rolling back an open transaction. NULL is a no-op. */
static inline void db_close(struct db *d)
{
    if (d != NULL) {
        d->engine->close(d);
    }
}

/* Runs one or more `;`-separated statements without parameters or rows. */
static inline int db_exec(struct db *d, const char *sql)
{
    return d->engine->exec(d, sql);
}

/* The message of the connection's last failure (see struct db). */
static inline const char *db_error(const struct db *d)
{
    return d->error;
}

/*
 * Starts a write transaction (SQLite: BEGIN IMMEDIATE, retried while the
 * database is busy; PostgreSQL: BEGIN, read committed).
 */
static inline int db_begin(struct db *d)
{
    return d->engine->begin(d);
}

static inline int db_commit(struct db *d)
{
    return d->engine->commit(d);
}

static inline int db_rollback(struct db *d)
{
    return d->engine->rollback(d);
}

/* Sets *exists to whether a table called `table` exists. */
static inline int db_table_exists(struct db *d, const char *table, bool *exists)
{
    return d->engine->table_exists(d, table, exists);
}

/*
 * Serialises schema migration between processes sharing one database
 * (PostgreSQL: a session advisory lock). SQLite needs none: each migration
 * step re-reads the version inside its BEGIN IMMEDIATE transaction.
 */
static inline int db_migrate_lock(struct db *d)
{
    return d->engine->migrate_lock(d);
}

static inline int db_migrate_unlock(struct db *d)
{
    return d->engine->migrate_unlock(d);
}

/* ---- statements ---- */

/*
 * Prepares `sql`, which uses `?` placeholders. `sql` must outlive the
 * connection (a string literal): engines cache prepared statements keyed
 * by its text, so a repeated query is parsed once per connection. The
 * statement must be released with db_finalize before the connection closes.
 */
static inline int db_prepare(struct db *d, const char *sql, struct db_stmt **out)
{
    return d->engine->prepare(d, sql, out);
}

/* Resets the statement and returns it to the cache. NULL is a no-op. */
static inline void db_finalize(struct db_stmt *st)
{
    if (st != NULL) {
        st->db->engine->finalize(st);
    }
}

/* Binds parameter `idx` (1-based). Bound values are copied. */
static inline int db_bind_int64(struct db_stmt *st, int idx, int64_t v)
{
    return st->db->engine->bind_int64(st, idx, v);
}

static inline int db_bind_text(struct db_stmt *st, int idx, const char *s, size_t len)
{
    return st->db->engine->bind_text(st, idx, s, len);
}

/* Binds a NUL-terminated string, or SQL NULL when `s` is NULL. */
static inline int db_bind_cstr(struct db_stmt *st, int idx, const char *s)
{
    if (s == NULL) {
        return st->db->engine->bind_null(st, idx);
    }
    return st->db->engine->bind_text(st, idx, s, strlen(s));
}

static inline int db_bind_blob(struct db_stmt *st, int idx, const void *p, size_t len)
{
    return st->db->engine->bind_blob(st, idx, p, len);
}

static inline int db_bind_null(struct db_stmt *st, int idx)
{
    return st->db->engine->bind_null(st, idx);
}

/*
 * Runs the statement or advances to its next row. Returns DB_ROW, DB_DONE,
 * DB_UNIQUE or another negative ERR_*.
 */
static inline int db_step(struct db_stmt *st)
{
    return st->db->engine->step(st);
}

/*
 * Column accessors for the current row (0-based). Returned pointers stay
 * valid until the next db_step or db_finalize; copy what you keep. Text is
 * NUL-terminated; a NULL column reads as NULL text, 0 or an empty blob.
 */
static inline bool db_column_is_null(struct db_stmt *st, int col)
{
    return st->db->engine->column_is_null(st, col);
}

static inline int64_t db_column_int64(struct db_stmt *st, int col)
{
    return st->db->engine->column_int64(st, col);
}

static inline const char *db_column_text(struct db_stmt *st, int col, size_t *len)
{
    return st->db->engine->column_text(st, col, len);
}

static inline const void *db_column_blob(struct db_stmt *st, int col, size_t *len)
{
    return st->db->engine->column_blob(st, col, len);
}

/* Rows inserted, updated or deleted by the statement's last execution. */
static inline int64_t db_changes(struct db_stmt *st)
{
    return st->db->engine->changes(st);
}

/* ---- shared helpers (db.c) ---- */

/*
 * A per-connection map from SQL text to the engine's cached statement.
 * Keys are compared by content and not copied (they are literals).
 */
struct db_cache {
    struct db_cache_slot *slots;
    size_t cap;   /* power of two, or 0 */
    size_t count;
};

struct db_cache_slot {
    const char *sql;
    void *value;
};

void db_cache_init(struct db_cache *c);
/* Frees the table; the values are the engine's to free beforehand. */
void db_cache_release(struct db_cache *c);
/* The value stored for `sql`, or NULL. */
void *db_cache_get(const struct db_cache *c, const char *sql);
/* Stores `value` for `sql`, which must not be present yet. */
void db_cache_put(struct db_cache *c, const char *sql, void *value);

/*
 * Rewrites `?` placeholders to PostgreSQL's `$1..$n`, leaving `?` inside
 * quoted literals, quoted identifiers and comments alone. Returns a
 * malloc'd string (free it) and sets *nparams to the number of placeholders.
 */
char *db_rewrite_placeholders(const char *sql, int *nparams);

/*
 * Sleeps before retry number `attempt` (0-based) of an operation that found
 * the database busy, with exponential back-off capped at 20 ms. Returns
 * false, without sleeping, once `deadline_ms` (CLOCK_MONOTONIC, see
 * db_now_ms) has passed.
 */
bool db_busy_wait(int attempt, int64_t deadline_ms);

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t db_now_ms(void);

#endif
