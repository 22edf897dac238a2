/*
 * The SQLite engine behind db.h. One sqlite3 handle per connection, opened
 * in multi-thread mode (SQLITE_OPEN_NOMUTEX): a connection is used by one
 * thread at a time, so SQLite's per-handle mutex would only cost.
 *
 * Durability and concurrency: the database runs in WAL mode so readers
 * never block the writer, with synchronous=FULL so a commit is fsynced
 * before it is acknowledged, and foreign keys enforced. Writers take the
 * write lock up front (BEGIN IMMEDIATE) so two transactions never deadlock
 * trying to upgrade a read lock. A busy database is waited out first by
 * sqlite3_busy_timeout and then by a retry loop, which also covers
 * SQLITE_LOCKED from shared-cache in-memory databases (the busy handler
 * is not consulted there).
 *
 * Prepared statements are cached per connection, keyed by SQL text, and
 * prepared with SQLITE_PREPARE_PERSISTENT.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/log.h"
#include "base/xmalloc.h"
#include "store/db.h"

/* How long SQLite's own busy handler waits per attempt. */
#define SQLITE_BUSY_TIMEOUT_MS 5000
/* How long the retry loop keeps trying a busy operation in total. */
#define SQLITE_RETRY_MS 30000
/* How much of a statement an error message quotes. */
#define SQL_QUOTE_MAX 200

struct sqlite_db {
    struct db base;
    sqlite3 *h;
    struct db_cache cache; /* SQL text -> struct sqlite_stmt */
};

struct sqlite_stmt {
    struct db_stmt base;
    sqlite3_stmt *h;
    bool cached;  /* owned by the cache, reused after db_finalize */
    bool in_use;  /* handed out by db_prepare and not yet finalized */
    bool stepped; /* has produced a row or finished since the last reset */
};

static struct sqlite_db *to_db(struct db *d)
{
    return (struct sqlite_db *)d;
}

static struct sqlite_stmt *to_stmt(struct db_stmt *st)
{
    return (struct sqlite_stmt *)st;
}

static bool is_busy(int rc)
{
    return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED;
}

/*
 * Logs a failure, keeps its message on the connection and maps it: unique
 * violations to DB_UNIQUE, the rest to ERR_DB.
 */
static int fail(struct sqlite_db *d, int rc, const char *sql)
{
    const char *msg = d->h ? sqlite3_errmsg(d->h) : sqlite3_errstr(rc);
    snprintf(d->base.error, sizeof(d->base.error), "%s", msg);
    if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        LOG_DEBUG("store", "sqlite: %s", msg);
        return DB_UNIQUE;
    }
    LOG_ERROR("store", "sqlite: %s (code %d) in: %.*s", msg, rc, SQL_QUOTE_MAX, sql ? sql : "?");
    return -ERR_DB;
}

/*
 * Runs one parameterless statement, retrying while the database is busy.
 * Only for single statements: a retried multi-statement string would run
 * its first statements twice.
 */
static int exec_retry(struct sqlite_db *d, const char *sql)
{
    int64_t deadline = db_now_ms() + SQLITE_RETRY_MS;
    for (int attempt = 0;; attempt++) {
        int rc = sqlite3_exec(d->h, sql, NULL, NULL, NULL);
        if (rc == SQLITE_OK) {
            return 0;
        }
        if (!is_busy(rc) || !db_busy_wait(attempt, deadline)) {
            return fail(d, sqlite3_extended_errcode(d->h), sql);
        }
    }
}

/* ---- connections ---- */

static void sqlite_close(struct db *base)
{
    struct sqlite_db *d = to_db(base);
    for (size_t i = 0; i < d->cache.cap; i++) {
        struct sqlite_stmt *st = d->cache.slots[i].value;
        if (d->cache.slots[i].sql != NULL) {
            sqlite3_finalize(st->h);
            free(st);
        }
    }
    db_cache_release(&d->cache);
    /* An open transaction is rolled back by sqlite3_close. */
    int rc = sqlite3_close(d->h);
    if (rc != SQLITE_OK) {
        LOG_ERROR("store", "sqlite: closing a connection with statements in use: %s",
                  sqlite3_errmsg(d->h));
        sqlite3_close_v2(d->h);
    }
    free(d);
}

static int sqlite_open(const char *target, struct db **out)
{
    if (!sqlite3_threadsafe()) {
        LOG_ERROR("store", "sqlite: the SQLite library was built without thread support");
        return -ERR_DB;
    }
    sqlite3 *h = NULL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                SQLITE_OPEN_URI;
    int rc = sqlite3_open_v2(target, &h, flags, NULL);
    if (rc != SQLITE_OK) {
        LOG_ERROR("store", "sqlite: cannot open %s: %s", target,
                  h ? sqlite3_errmsg(h) : sqlite3_errstr(rc));
        sqlite3_close(h);
        return -ERR_DB;
    }
    sqlite3_extended_result_codes(h, 1);
    sqlite3_busy_timeout(h, SQLITE_BUSY_TIMEOUT_MS);

    struct sqlite_db *d = xcalloc(1, sizeof(*d));
    d->base.engine = &db_engine_sqlite;
    d->h = h;
    db_cache_init(&d->cache);

    /*
     * WAL persists in the file once set. An in-memory database reports
     * "memory" instead, which is expected.
     */
    sqlite3_stmt *st = NULL;
    int64_t deadline = db_now_ms() + SQLITE_RETRY_MS;
    for (int attempt = 0;; attempt++) {
        rc = sqlite3_prepare_v2(h, "PRAGMA journal_mode=WAL", -1, &st, NULL);
        if (rc == SQLITE_OK) {
            rc = sqlite3_step(st);
        }
        if (rc == SQLITE_ROW) {
            break;
        }
        sqlite3_finalize(st);
        st = NULL;
        if (!is_busy(rc) || !db_busy_wait(attempt, deadline)) {
            fail(d, sqlite3_extended_errcode(h), "PRAGMA journal_mode=WAL");
            sqlite_close(&d->base);
            return -ERR_DB;
        }
    }
    const char *mode = (const char *)sqlite3_column_text(st, 0);
    if (mode == NULL || (strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0)) {
        LOG_WARN("store", "sqlite: journal_mode is %s, not wal", mode ? mode : "unknown");
    }
    sqlite3_finalize(st);

    if (exec_retry(d, "PRAGMA synchronous=FULL") < 0 ||
        exec_retry(d, "PRAGMA foreign_keys=ON") < 0) {
        sqlite_close(&d->base);
        return -ERR_DB;
    }
    *out = &d->base;
    return 0;
}

static int sqlite_exec(struct db *base, const char *sql)
{
    struct sqlite_db *d = to_db(base);
    char *msg = NULL;
    int rc = sqlite3_exec(d->h, sql, NULL, NULL, &msg);
    sqlite3_free(msg);
    if (rc != SQLITE_OK) {
        return fail(d, sqlite3_extended_errcode(d->h), sql);
    }
    return 0;
}

static int sqlite_begin(struct db *base)
{
    return exec_retry(to_db(base), "BEGIN IMMEDIATE");
}

static int sqlite_commit(struct db *base)
{
    /* A busy COMMIT leaves the transaction open, so it may be retried. */
    return exec_retry(to_db(base), "COMMIT");
}

static int sqlite_rollback(struct db *base)
{
    struct sqlite_db *d = to_db(base);
    /* Some errors (SQLITE_FULL, SQLITE_IOERR) already rolled back. */
    if (sqlite3_get_autocommit(d->h)) {
        return 0;
    }
    return exec_retry(d, "ROLLBACK");
}

/* ---- statements ---- */

static int sqlite_prepare(struct db *base, const char *sql, struct db_stmt **out)
{
    struct sqlite_db *d = to_db(base);
    struct sqlite_stmt *st = db_cache_get(&d->cache, sql);
    if (st != NULL && !st->in_use) {
        st->in_use = true;
        st->stepped = false;
        *out = &st->base;
        return 0;
    }
    /* Not cached yet, or the cached one is in use by an enclosing loop. */
    bool cache = st == NULL;
    sqlite3_stmt *h = NULL;
    int64_t deadline = db_now_ms() + SQLITE_RETRY_MS;
    for (int attempt = 0;; attempt++) {
        int rc = sqlite3_prepare_v3(d->h, sql, -1, cache ? SQLITE_PREPARE_PERSISTENT : 0, &h,
                                    NULL);
        if (rc == SQLITE_OK) {
            break;
        }
        if (!is_busy(rc) || !db_busy_wait(attempt, deadline)) {
            return fail(d, sqlite3_extended_errcode(d->h), sql);
        }
    }
    st = xcalloc(1, sizeof(*st));
    st->base.db = base;
    st->h = h;
    st->cached = cache;
    st->in_use = true;
    if (cache) {
        db_cache_put(&d->cache, sql, st);
    }
    *out = &st->base;
    return 0;
}

static void sqlite_finalize(struct db_stmt *base)
{
    struct sqlite_stmt *st = to_stmt(base);
    if (!st->cached) {
        sqlite3_finalize(st->h);
        free(st);
        return;
    }
    /* Reset ends the statement's implicit read transaction. */
    sqlite3_reset(st->h);
    sqlite3_clear_bindings(st->h);
    st->in_use = false;
}

static int bind_result(struct db_stmt *base, int rc)
{
    if (rc == SQLITE_OK) {
        return 0;
    }
    struct sqlite_db *d = to_db(base->db);
    return fail(d, rc, sqlite3_sql(to_stmt(base)->h));
}

static int sqlite_bind_int64(struct db_stmt *base, int idx, int64_t v)
{
    return bind_result(base, sqlite3_bind_int64(to_stmt(base)->h, idx, v));
}

static int sqlite_bind_text(struct db_stmt *base, int idx, const char *s, size_t len)
{
    return bind_result(base, sqlite3_bind_text64(to_stmt(base)->h, idx, s, len,
                                                 SQLITE_TRANSIENT, SQLITE_UTF8));
}

static int sqlite_bind_blob(struct db_stmt *base, int idx, const void *p, size_t len)
{
    /* A NULL pointer would bind SQL NULL; an empty blob is still a blob. */
    return bind_result(base, sqlite3_bind_blob64(to_stmt(base)->h, idx, len ? p : "", len,
                                                 SQLITE_TRANSIENT));
}

static int sqlite_bind_null(struct db_stmt *base, int idx)
{
    return bind_result(base, sqlite3_bind_null(to_stmt(base)->h, idx));
}

static int64_t sqlite_changes(struct db_stmt *base)
{
    return sqlite3_changes64(to_db(base->db)->h);
}

static int sqlite_step(struct db_stmt *base)
{
    struct sqlite_stmt *st = to_stmt(base);
    struct sqlite_db *d = to_db(base->db);
    int64_t deadline = 0;
    for (int attempt = 0;; attempt++) {
        int rc = sqlite3_step(st->h);
        if (rc == SQLITE_ROW) {
            st->stepped = true;
            return DB_ROW;
        }
        if (rc == SQLITE_DONE) {
            st->stepped = true;
            return DB_DONE;
        }
        /*
         * A busy statement that has not produced anything yet is rolled
         * back to its start by the reset and can run again; one that has
         * already returned rows cannot be resumed.
         */
        if (is_busy(rc) && !st->stepped) {
            if (deadline == 0) {
                deadline = db_now_ms() + SQLITE_RETRY_MS;
            }
            sqlite3_reset(st->h);
            if (db_busy_wait(attempt, deadline)) {
                continue;
            }
        }
        rc = sqlite3_extended_errcode(d->h);
        int err = fail(d, rc, sqlite3_sql(st->h));
        sqlite3_reset(st->h);
        return err;
    }
}

static bool sqlite_column_is_null(struct db_stmt *base, int col)
{
    return sqlite3_column_type(to_stmt(base)->h, col) == SQLITE_NULL;
}

static int64_t sqlite_column_int64(struct db_stmt *base, int col)
{
    return sqlite3_column_int64(to_stmt(base)->h, col);
}

static const char *sqlite_column_text(struct db_stmt *base, int col, size_t *len)
{
    sqlite3_stmt *h = to_stmt(base)->h;
    const char *s = (const char *)sqlite3_column_text(h, col);
    if (len != NULL) {
        *len = s ? (size_t)sqlite3_column_bytes(h, col) : 0;
    }
    return s;
}

static const void *sqlite_column_blob(struct db_stmt *base, int col, size_t *len)
{
    sqlite3_stmt *h = to_stmt(base)->h;
    const void *p = sqlite3_column_blob(h, col);
    *len = p ? (size_t)sqlite3_column_bytes(h, col) : 0;
    return p;
}

/* ---- schema helpers ---- */

static int sqlite_table_exists(struct db *base, const char *table, bool *exists)
{
    struct db_stmt *st;
    int rc = sqlite_prepare(base, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                            &st);
    if (rc < 0) {
        return rc;
    }
    rc = sqlite_bind_text(st, 1, table, strlen(table));
    if (rc == 0) {
        rc = sqlite_step(st);
    }
    sqlite_finalize(st);
    if (rc < 0) {
        return rc;
    }
    *exists = rc == DB_ROW;
    return 0;
}

/* Each migration re-reads the version inside BEGIN IMMEDIATE instead. */
static int sqlite_migrate_lock(struct db *base)
{
    return 0;
}

static int sqlite_migrate_unlock(struct db *base)
{
    return 0;
}

const struct db_engine db_engine_sqlite = {
    .name = "sqlite",
    .kind = DB_KIND_SQLITE,
    .open = sqlite_open,
    .close = sqlite_close,
    .exec = sqlite_exec,
    .begin = sqlite_begin,
    .commit = sqlite_commit,
    .rollback = sqlite_rollback,
    .table_exists = sqlite_table_exists,
    .migrate_lock = sqlite_migrate_lock,
    .migrate_unlock = sqlite_migrate_unlock,
    .prepare = sqlite_prepare,
    .finalize = sqlite_finalize,
    .bind_int64 = sqlite_bind_int64,
    .bind_text = sqlite_bind_text,
    .bind_blob = sqlite_bind_blob,
    .bind_null = sqlite_bind_null,
    .step = sqlite_step,
    .column_is_null = sqlite_column_is_null,
    .column_int64 = sqlite_column_int64,
    .column_text = sqlite_column_text,
    .column_blob = sqlite_column_blob,
    .changes = sqlite_changes,
};
