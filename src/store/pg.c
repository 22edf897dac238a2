/*
 * The PostgreSQL engine behind db.h, on libpq. One PGconn per connection,
 * used by one thread at a time. Queries written with `?` are rewritten to
 * `$1..$n` once and prepared on the server once per connection (PQprepare,
 * keyed by the SQL text), so repeated queries skip parsing and planning.
 *
 * Parameters travel as text (integers, strings) or binary (blobs) with
 * types inferred by the server; results come back as text. Transactions
 * run at read committed. Schema migration between processes is serialised
 * by a session advisory lock.
 *
 * A connection that drops outside a transaction is re-established on its
 * next use, and its statements are prepared again; inside a transaction
 * the failure is reported and the caller rolls back.
 */
#include <libpq-fe.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/log.h"
#include "base/xmalloc.h"
#include "store/db.h"

/* The advisory lock key that guards migrations: "myelin" in ASCII. */
#define PG_MIGRATE_LOCK_KEY "120368160074094"
#define SQL_QUOTE_MAX 200
/* SQLSTATE unique_violation. */
#define PG_UNIQUE_VIOLATION "23505"

struct pg_db {
    struct db base;
    PGconn *conn;
    struct db_cache cache; /* SQL text -> struct pg_stmt */
    unsigned next_name;    /* numbers the server-side statement names */
    bool in_txn;
};

struct pg_stmt {
    struct db_stmt base;
    char *text;     /* the SQL with $n placeholders */
    int nparams;
    char name[24];  /* server-side name; cached statements only */
    bool cached;    /* owned by the cache, reused after db_finalize */
    bool prepared;  /* PQprepare succeeded on the current session */
    bool in_use;
    char **values;  /* nparams bound values, xmalloc'd, NULL for SQL NULL */
    int *lengths;
    int *formats;   /* 0 text, 1 binary */
    PGresult *res;  /* set once executed */
    int row;        /* current row of res */
    int nrows;
    unsigned char **blobs; /* unescaped bytea values of the current row */
    int nblobs;
    int capblobs;
};

static struct pg_db *to_db(struct db *d)
{
    return (struct pg_db *)d;
}

static struct pg_stmt *to_stmt(struct db_stmt *st)
{
    return (struct pg_stmt *)st;
}

/* libpq messages end with a newline; log without it. */
static int msg_len(const char *msg)
{
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) {
        n--;
    }
    return (int)n;
}

/*
 * Logs a failed result, keeps its message on the connection and maps it:
 * unique violations to DB_UNIQUE, the rest to ERR_DB.
 */
static int fail_res(struct pg_db *d, const PGresult *res, const char *sql)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorMessage(res) : "no result";
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
    if (primary != NULL) {
        snprintf(d->base.error, sizeof(d->base.error), "%s%s%s%s", primary,
                 detail ? " (" : "", detail ? detail : "", detail ? ")" : "");
    } else {
        snprintf(d->base.error, sizeof(d->base.error), "%.*s", msg_len(msg), msg);
    }
    if (state != NULL && strcmp(state, PG_UNIQUE_VIOLATION) == 0) {
        LOG_DEBUG("store", "postgres: %.*s", msg_len(msg), msg);
        return DB_UNIQUE;
    }
    LOG_ERROR("store", "postgres: %.*s in: %.*s", msg_len(msg), msg, SQL_QUOTE_MAX, sql);
    return -ERR_DB;
}

static void notice(void *arg, const char *msg)
{
    LOG_DEBUG("store", "postgres: %.*s", msg_len(msg), msg);
}

/*
 * Makes sure the session is usable. A broken connection outside a
 * transaction is reset, which loses every server-side prepared statement;
 * inside one, the transaction is gone and the caller must roll back.
 */
static int ensure_conn(struct pg_db *d)
{
    if (PQstatus(d->conn) == CONNECTION_OK) {
        return 0;
    }
    if (d->in_txn) {
        LOG_ERROR("store", "postgres: connection lost inside a transaction");
        return -ERR_DB;
    }
    PQreset(d->conn);
    if (PQstatus(d->conn) != CONNECTION_OK) {
        const char *msg = PQerrorMessage(d->conn);
        LOG_ERROR("store", "postgres: reconnect failed: %.*s", msg_len(msg), msg);
        return -ERR_DB;
    }
    LOG_WARN("store", "postgres: connection lost and re-established");
    for (size_t i = 0; i < d->cache.cap; i++) {
        if (d->cache.slots[i].sql != NULL) {
            ((struct pg_stmt *)d->cache.slots[i].value)->prepared = false;
        }
    }
    return 0;
}

/* ---- statements ---- */

static void clear_row(struct pg_stmt *st)
{
    for (int i = 0; i < st->nblobs; i++) {
        PQfreemem(st->blobs[i]);
    }
    st->nblobs = 0;
}

/* Forgets the result and the bound values; the statement can run again. */
static void reset_stmt(struct pg_stmt *st)
{
    clear_row(st);
    PQclear(st->res);
    st->res = NULL;
    st->row = -1;
    st->nrows = 0;
    for (int i = 0; i < st->nparams; i++) {
        free(st->values[i]);
        st->values[i] = NULL;
        st->lengths[i] = 0;
        st->formats[i] = 0;
    }
}

static void free_stmt(struct pg_stmt *st)
{
    reset_stmt(st);
    free(st->blobs);
    free(st->values);
    free(st->lengths);
    free(st->formats);
    free(st->text);
    free(st);
}

static struct pg_stmt *new_stmt(struct pg_db *d, const char *sql, bool cached)
{
    struct pg_stmt *st = xcalloc(1, sizeof(*st));
    st->base.db = &d->base;
    st->text = db_rewrite_placeholders(sql, &st->nparams);
    st->cached = cached;
    st->row = -1;
    if (st->nparams > 0) {
        st->values = xcalloc((size_t)st->nparams, sizeof(*st->values));
        st->lengths = xcalloc((size_t)st->nparams, sizeof(*st->lengths));
        st->formats = xcalloc((size_t)st->nparams, sizeof(*st->formats));
    }
    if (cached) {
        snprintf(st->name, sizeof(st->name), "myelin_%u", d->next_name++);
    }
    return st;
}

static int pg_prepare(struct db *base, const char *sql, struct db_stmt **out)
{
    struct pg_db *d = to_db(base);
    struct pg_stmt *st = db_cache_get(&d->cache, sql);
    if (st != NULL && !st->in_use) {
        st->in_use = true;
        *out = &st->base;
        return 0;
    }
    /*
     * The cached statement is in use by an enclosing loop: run this one as
     * an unnamed statement (PQexecParams) instead of preparing a duplicate.
     */
    bool cached = st == NULL;
    st = new_stmt(d, sql, cached);
    st->in_use = true;
    if (cached) {
        db_cache_put(&d->cache, sql, st);
    }
    *out = &st->base;
    return 0;
}

static void pg_finalize(struct db_stmt *base)
{
    struct pg_stmt *st = to_stmt(base);
    if (!st->cached) {
        free_stmt(st);
        return;
    }
    reset_stmt(st);
    st->in_use = false;
}

static int check_idx(struct pg_stmt *st, int idx)
{
    if (idx < 1 || idx > st->nparams) {
        LOG_ERROR("store", "postgres: parameter %d out of range (1..%d) in: %.*s", idx,
                  st->nparams, SQL_QUOTE_MAX, st->text);
        return -ERR_DB;
    }
    return 0;
}

static void set_param(struct pg_stmt *st, int idx, char *value, int len, int format)
{
    free(st->values[idx - 1]);
    st->values[idx - 1] = value;
    st->lengths[idx - 1] = len;
    st->formats[idx - 1] = format;
}

static int pg_bind_int64(struct db_stmt *base, int idx, int64_t v)
{
    struct pg_stmt *st = to_stmt(base);
    if (check_idx(st, idx) < 0) {
        return -ERR_DB;
    }
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%" PRId64, v);
    set_param(st, idx, xstrdup(tmp), n, 0);
    return 0;
}

static int pg_bind_text(struct db_stmt *base, int idx, const char *s, size_t len)
{
    struct pg_stmt *st = to_stmt(base);
    if (check_idx(st, idx) < 0) {
        return -ERR_DB;
    }
    if (len > INT32_MAX) {
        LOG_ERROR("store", "postgres: text parameter of %zu bytes is too large", len);
        return -ERR_DB;
    }
    set_param(st, idx, xstrndup(s, len), (int)len, 0);
    return 0;
}

static int pg_bind_blob(struct db_stmt *base, int idx, const void *p, size_t len)
{
    struct pg_stmt *st = to_stmt(base);
    if (check_idx(st, idx) < 0) {
        return -ERR_DB;
    }
    if (len > INT32_MAX) {
        LOG_ERROR("store", "postgres: blob parameter of %zu bytes is too large", len);
        return -ERR_DB;
    }
    /* One extra byte so an empty blob is a non-NULL pointer. */
    char *copy = xmalloc(len + 1);
    if (len > 0) {
        memcpy(copy, p, len);
    }
    set_param(st, idx, copy, (int)len, 1);
    return 0;
}

static int pg_bind_null(struct db_stmt *base, int idx)
{
    struct pg_stmt *st = to_stmt(base);
    if (check_idx(st, idx) < 0) {
        return -ERR_DB;
    }
    set_param(st, idx, NULL, 0, 0);
    return 0;
}

static int execute(struct pg_db *d, struct pg_stmt *st)
{
    int rc = ensure_conn(d);
    if (rc < 0) {
        return rc;
    }
    if (st->cached && !st->prepared) {
        PGresult *res = PQprepare(d->conn, st->name, st->text, st->nparams, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            rc = fail_res(d, res, st->text);
            PQclear(res);
            return rc < 0 ? rc : -ERR_DB;
        }
        PQclear(res);
        st->prepared = true;
    }
    const char *const *values = (const char *const *)st->values;
    PGresult *res;
    if (st->cached) {
        res = PQexecPrepared(d->conn, st->name, st->nparams, values, st->lengths, st->formats, 0);
    } else {
        res = PQexecParams(d->conn, st->text, st->nparams, NULL, values, st->lengths,
                           st->formats, 0);
    }
    ExecStatusType status = PQresultStatus(res);
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
        rc = fail_res(d, res, st->text);
        PQclear(res);
        return rc;
    }
    st->res = res;
    st->nrows = status == PGRES_TUPLES_OK ? PQntuples(res) : 0;
    st->row = -1;
    return 0;
}

static int64_t pg_changes(struct db_stmt *base)
{
    struct pg_stmt *st = to_stmt(base);
    const char *n = st->res ? PQcmdTuples(st->res) : "";
    return n[0] ? strtoll(n, NULL, 10) : 0;
}

static int pg_step(struct db_stmt *base)
{
    struct pg_stmt *st = to_stmt(base);
    clear_row(st);
    if (st->res == NULL) {
        int rc = execute(to_db(base->db), st);
        if (rc < 0) {
            return rc;
        }
    }
    if (st->row < st->nrows) {
        st->row++;
    }
    return st->row < st->nrows ? DB_ROW : DB_DONE;
}

static bool pg_column_is_null(struct db_stmt *base, int col)
{
    struct pg_stmt *st = to_stmt(base);
    return PQgetisnull(st->res, st->row, col) != 0;
}

static int64_t pg_column_int64(struct db_stmt *base, int col)
{
    struct pg_stmt *st = to_stmt(base);
    if (PQgetisnull(st->res, st->row, col)) {
        return 0;
    }
    return strtoll(PQgetvalue(st->res, st->row, col), NULL, 10);
}

static const char *pg_column_text(struct db_stmt *base, int col, size_t *len)
{
    struct pg_stmt *st = to_stmt(base);
    if (PQgetisnull(st->res, st->row, col)) {
        if (len != NULL) {
            *len = 0;
        }
        return NULL;
    }
    if (len != NULL) {
        *len = (size_t)PQgetlength(st->res, st->row, col);
    }
    return PQgetvalue(st->res, st->row, col);
}

static const void *pg_column_blob(struct db_stmt *base, int col, size_t *len)
{
    struct pg_stmt *st = to_stmt(base);
    *len = 0;
    if (PQgetisnull(st->res, st->row, col)) {
        return NULL;
    }
    /* Text-format results carry bytea hex-escaped. */
    size_t n = 0;
    unsigned char *p =
        PQunescapeBytea((const unsigned char *)PQgetvalue(st->res, st->row, col), &n);
    if (p == NULL) {
        LOG_ERROR("store", "postgres: cannot decode a bytea column");
        return NULL;
    }
    if (st->nblobs == st->capblobs) {
        st->capblobs = st->capblobs ? st->capblobs * 2 : 4;
        st->blobs = xrealloc(st->blobs, (size_t)st->capblobs * sizeof(*st->blobs));
    }
    st->blobs[st->nblobs++] = p;
    *len = n;
    return p;
}

/* ---- connections ---- */

static void pg_close(struct db *base)
{
    struct pg_db *d = to_db(base);
    for (size_t i = 0; i < d->cache.cap; i++) {
        if (d->cache.slots[i].sql != NULL) {
            free_stmt(d->cache.slots[i].value);
        }
    }
    db_cache_release(&d->cache);
    /* The server rolls back an open transaction when the session ends. */
    PQfinish(d->conn);
    free(d);
}

static int pg_open(const char *conninfo, struct db **out)
{
    if (!PQisthreadsafe()) {
        LOG_ERROR("store", "postgres: libpq was built without thread support");
        return -ERR_DB;
    }
    PGconn *conn = PQconnectdb(conninfo);
    if (PQstatus(conn) != CONNECTION_OK) {
        const char *msg = PQerrorMessage(conn);
        LOG_ERROR("store", "postgres: cannot connect: %.*s", msg_len(msg), msg);
        PQfinish(conn);
        return -ERR_DB;
    }
    PQsetNoticeProcessor(conn, notice, NULL);
    if (PQsetClientEncoding(conn, "UTF8") != 0) {
        LOG_ERROR("store", "postgres: cannot set client encoding UTF8");
        PQfinish(conn);
        return -ERR_DB;
    }
    struct pg_db *d = xcalloc(1, sizeof(*d));
    d->base.engine = &db_engine_pg;
    d->conn = conn;
    db_cache_init(&d->cache);
    *out = &d->base;
    return 0;
}

/* Runs parameterless SQL; sets *tag to the command tag when not NULL. */
static int exec_tag(struct pg_db *d, const char *sql, char *tag, size_t tagsize)
{
    int rc = ensure_conn(d);
    if (rc < 0) {
        return rc;
    }
    PGresult *res = PQexec(d->conn, sql);
    ExecStatusType status = PQresultStatus(res);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
        rc = fail_res(d, res, sql);
        PQclear(res);
        return rc;
    }
    if (tag != NULL) {
        snprintf(tag, tagsize, "%s", PQcmdStatus(res));
    }
    PQclear(res);
    return 0;
}

static int pg_exec(struct db *base, const char *sql)
{
    return exec_tag(to_db(base), sql, NULL, 0);
}

static int pg_begin(struct db *base)
{
    struct pg_db *d = to_db(base);
    int rc = exec_tag(d, "BEGIN", NULL, 0);
    if (rc == 0) {
        d->in_txn = true;
    }
    return rc;
}

static int pg_commit(struct db *base)
{
    struct pg_db *d = to_db(base);
    char tag[32] = "";
    int rc = exec_tag(d, "COMMIT", tag, sizeof(tag));
    d->in_txn = false;
    if (rc < 0) {
        return rc;
    }
    /* COMMIT of a transaction that already failed succeeds as ROLLBACK. */
    if (strcmp(tag, "COMMIT") != 0) {
        LOG_ERROR("store", "postgres: transaction was aborted by an earlier error and rolled back");
        return -ERR_DB;
    }
    return 0;
}

static int pg_rollback(struct db *base)
{
    struct pg_db *d = to_db(base);
    d->in_txn = false;
    /* A dropped session has rolled back already; the next use reconnects. */
    if (PQstatus(d->conn) != CONNECTION_OK) {
        return 0;
    }
    return exec_tag(d, "ROLLBACK", NULL, 0);
}

/* ---- schema helpers ---- */

static int pg_table_exists(struct db *base, const char *table, bool *exists)
{
    struct db_stmt *st;
    int rc = pg_prepare(base, "SELECT CASE WHEN to_regclass(?) IS NULL THEN 0 ELSE 1 END", &st);
    if (rc < 0) {
        return rc;
    }
    rc = pg_bind_text(st, 1, table, strlen(table));
    if (rc == 0) {
        rc = pg_step(st);
    }
    if (rc == DB_ROW) {
        *exists = pg_column_int64(st, 0) == 1;
        rc = 0;
    } else if (rc == DB_DONE) {
        rc = -ERR_DB;
    }
    pg_finalize(st);
    return rc;
}

/* Session-level, so it spans the per-migration transactions. */
static int pg_migrate_lock(struct db *base)
{
    return exec_tag(to_db(base), "SELECT pg_advisory_lock(" PG_MIGRATE_LOCK_KEY ")", NULL, 0);
}

static int pg_migrate_unlock(struct db *base)
{
    return exec_tag(to_db(base), "SELECT pg_advisory_unlock(" PG_MIGRATE_LOCK_KEY ")", NULL, 0);
}

const struct db_engine db_engine_pg = {
    .name = "postgres",
    .kind = DB_KIND_PG,
    .open = pg_open,
    .close = pg_close,
    .exec = pg_exec,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .table_exists = pg_table_exists,
    .migrate_lock = pg_migrate_lock,
    .migrate_unlock = pg_migrate_unlock,
    .prepare = pg_prepare,
    .finalize = pg_finalize,
    .bind_int64 = pg_bind_int64,
    .bind_text = pg_bind_text,
    .bind_blob = pg_bind_blob,
    .bind_null = pg_bind_null,
    .step = pg_step,
    .column_is_null = pg_column_is_null,
    .column_int64 = pg_column_int64,
    .column_text = pg_column_text,
    .column_blob = pg_column_blob,
    .changes = pg_changes,
};
