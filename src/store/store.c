/*
 * The store: every query Myelin runs, written once with `?` placeholders
 * against the engine interface in db.h, plus opening the database and
 * applying the embedded migrations (schema.h). The engines (sqlite.c,
 * pg.c) own everything that differs between SQLite and PostgreSQL.
 *
 * A `struct store` holds what every connection needs (engine, target) and
 * is shared by all threads; a `struct store_conn` is one engine connection
 * owned by one thread. docs/STORAGE.md describes the design.
 */
#include "store/store.h"

#include <assert.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/err.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "store/db.h"
#include "store/schema.h"
#include "store/store_int.h"

/* ---- schema version ---- */

int store_schema_latest(void)
{
    return schema_migrations[schema_migrations_count - 1].version;
}

/* Reads the recorded version; 0 for a database without the version table. */
static int read_version(struct db *d, int *version)
{
    bool exists = false;
    int rc = db_table_exists(d, "schema_version", &exists);
    if (rc < 0) {
        return rc;
    }
    if (!exists) {
        *version = 0;
        return 0;
    }
    struct db_stmt *st;
    rc = db_prepare(d, "SELECT MAX(version) FROM schema_version", &st);
    if (rc < 0) {
        return rc;
    }
    rc = db_step(st);
    if (rc == DB_ROW) {
        *version = (int)db_column_int64(st, 0); /* NULL (no rows) reads as 0 */
        rc = 0;
    } else if (rc == DB_DONE) {
        rc = -ERR_DB;
    }
    db_finalize(st);
    return rc;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int record_version(struct db *d, const struct schema_migration *m)
{
    struct db_stmt *st;
    int rc = db_prepare(d,
                        "INSERT INTO schema_version (version, name, applied_ts) "
                        "VALUES (?, ?, ?)",
                        &st);
    if (rc < 0) {
        return rc;
    }
    rc = db_bind_int64(st, 1, m->version);
    if (rc == 0) {
        rc = db_bind_cstr(st, 2, m->name);
    }
    if (rc == 0) {
        rc = db_bind_int64(st, 3, now_ms());
    }
    if (rc == 0) {
        rc = db_step(st);
    }
    db_finalize(st);
    return rc < 0 ? (rc == DB_UNIQUE ? -ERR_DB : rc) : 0;
}

/*
 * Applies pending migrations one transaction each. The version is read
 * again inside every transaction, so two processes starting on the same
 * database never apply a migration twice: SQLite's BEGIN IMMEDIATE and
 * PostgreSQL's advisory lock (db_migrate_lock) serialise them.
 */
static int migrate(struct store *s, struct db *d)
{
    int latest = store_schema_latest();
    int rc = db_migrate_lock(d);
    if (rc < 0) {
        return rc;
    }
    for (;;) {
        rc = db_begin(d);
        if (rc < 0) {
            break;
        }
        int version = 0;
        rc = read_version(d, &version);
        if (rc < 0) {
            db_rollback(d);
            break;
        }
        if (version > latest) {
            LOG_ERROR("store", "database schema version %d is newer than this binary supports (%d)",
                      version, latest);
            db_rollback(d);
            rc = -ERR_SCHEMA_TOO_NEW;
            break;
        }
        if (version == latest) {
            rc = db_commit(d);
            break;
        }
        const struct schema_migration *m = &schema_migrations[version];
        assert(m->version == version + 1);
        rc = db_exec(d, s->engine->kind == DB_KIND_PG ? m->pg : m->sqlite);
        if (rc == 0) {
            rc = record_version(d, m);
        }
        if (rc < 0) {
            LOG_ERROR("store", "migration %03d_%s failed%s", m->version, m->name,
                      rc == DB_UNIQUE ? ": a unique constraint was violated" : "");
            db_rollback(d);
            rc = rc == DB_UNIQUE ? -ERR_DB : rc;
            break;
        }
        rc = db_commit(d);
        if (rc < 0) {
            break;
        }
        LOG_INFO("store", "applied migration %03d_%s", m->version, m->name);
    }
    int urc = db_migrate_unlock(d);
    return rc < 0 ? rc : urc;
}

/* ---- store lifecycle ---- */

int store_open(const struct config_db *cfg, struct store **out)
{
    struct store *s = xcalloc(1, sizeof(*s));
    atomic_init(&s->nconns, 0);
    bool memory = false;
    switch (cfg->engine) {
    case DB_ENGINE_SQLITE:
        if (cfg->path == NULL || cfg->path[0] == '\0') {
            LOG_ERROR("store", "sqlite: no database path configured");
            free(s);
            return -ERR_CONFIG;
        }
        s->engine = &db_engine_sqlite;
        if (strcmp(cfg->path, ":memory:") == 0) {
            /*
             * A plain ":memory:" is private to one connection. The memdb
             * VFS shares a database named "/..." between the connections
             * of this process, with normal locking; the store's address
             * makes the name unique.
             */
            char uri[64];
            snprintf(uri, sizeof(uri), "file:/myelin-%p?vfs=memdb", (void *)s);
            s->target = xstrdup(uri);
            memory = true;
        } else {
            s->target = xstrdup(cfg->path);
        }
        break;
    case DB_ENGINE_POSTGRES:
        /* An empty conninfo means libpq's defaults (PGHOST, PGDATABASE, ...). */
        s->engine = &db_engine_pg;
        s->target = xstrdup(cfg->conninfo ? cfg->conninfo : "");
        break;
    default:
        LOG_ERROR("store", "unknown database engine %d", (int)cfg->engine);
        free(s);
        return -ERR_CONFIG;
    }

    struct db *d = NULL;
    int rc = db_open(s->engine, s->target, &d);
    if (rc == 0) {
        rc = migrate(s, d);
    }
    if (rc < 0) {
        db_close(d);
        free(s->target);
        free(s);
        return rc;
    }
    if (memory) {
        /* The in-memory database lives as long as one connection does. */
        s->keeper = d;
    } else {
        db_close(d);
    }
    *out = s;
    return 0;
}

void store_close(struct store *s)
{
    if (s == NULL) {
        return;
    }
    assert(atomic_load(&s->nconns) == 0);
    db_close(s->keeper);
    free(s->target);
    free(s);
}

const char *store_engine_name(const struct store *s)
{
    return s->engine->name;
}

int store_conn_open(struct store *s, struct store_conn **out)
{
    struct db *d;
    int rc = db_open(s->engine, s->target, &d);
    if (rc < 0) {
        return rc;
    }
    struct store_conn *c = xcalloc(1, sizeof(*c));
    c->store = s;
    c->db = d;
    atomic_fetch_add(&s->nconns, 1);
    *out = c;
    return 0;
}

int store_conn_set_relaxed(struct store_conn *c)
{
    const char *sql = c->store->engine->kind == DB_KIND_PG ? "SET synchronous_commit TO off"
                                                            : "PRAGMA synchronous=NORMAL";
    int rc = db_exec(c->db, sql);
    return rc < 0 ? rc : 0;
}

void store_conn_close(struct store_conn *c)
{
    if (c == NULL) {
        return;
    }
    if (c->in_txn) {
        db_rollback(c->db);
    }
    db_close(c->db);
    atomic_fetch_sub(&c->store->nconns, 1);
    free(c);
}

/* ---- transactions ---- */

int store_begin(struct store_conn *c)
{
    assert(!c->in_txn);
    c->db->error[0] = '\0';
    int rc = db_begin(c->db);
    if (rc == 0) {
        c->in_txn = true;
    }
    return rc;
}

const char *store_conn_error(const struct store_conn *c)
{
    return db_error(c->db);
}

int store_commit(struct store_conn *c)
{
    assert(c->in_txn);
    c->in_txn = false;
    int rc = db_commit(c->db);
    if (rc < 0) {
        db_rollback(c->db);
    }
    return rc;
}

int store_rollback(struct store_conn *c)
{
    if (!c->in_txn) {
        return 0;
    }
    c->in_txn = false;
    return db_rollback(c->db);
}

int store_end(struct store_conn *c, int rc)
{
    if (rc == 0) {
        return store_commit(c);
    }
    store_rollback(c);
    return rc;
}

/* ---- queries ---- */

int store_ping(struct store_conn *c)
{
    struct db_stmt *st;
    int rc = db_prepare(c->db, "SELECT 1", &st);
    if (rc < 0) {
        return rc;
    }
    rc = db_step(st);
    if (rc == DB_ROW) {
        rc = db_column_int64(st, 0) == 1 ? 0 : -ERR_DB;
    } else if (rc == DB_DONE) {
        rc = -ERR_DB;
    }
    db_finalize(st);
    return rc;
}

int store_schema_version(struct store_conn *c, int *version)
{
    return read_version(c->db, version);
}

int store_user_create(struct store_conn *c, const char *user_id, const char *password_hash,
                      bool is_admin, bool is_guest, int64_t created_ts)
{
    struct db_stmt *st;
    int rc = db_prepare(c->db,
                        "INSERT INTO users (user_id, password_hash, is_admin, is_guest, "
                        "deactivated, created_ts) VALUES (?, ?, ?, ?, 0, ?)",
                        &st);
    if (rc < 0) {
        return rc;
    }
    rc = db_bind_cstr(st, 1, user_id);
    if (rc == 0) {
        rc = db_bind_cstr(st, 2, password_hash);
    }
    if (rc == 0) {
        rc = db_bind_int64(st, 3, is_admin);
    }
    if (rc == 0) {
        rc = db_bind_int64(st, 4, is_guest);
    }
    if (rc == 0) {
        rc = db_bind_int64(st, 5, created_ts);
    }
    if (rc == 0) {
        rc = db_step(st);
    }
    db_finalize(st);
    if (rc == DB_UNIQUE) {
        return -ERR_USER_IN_USE;
    }
    return rc < 0 ? rc : 0;
}

int store_user_get(struct store_conn *c, struct arena *arena, const char *user_id,
                   struct store_user *out)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT user_id, password_hash, is_admin, is_guest, deactivated, "
                          "created_ts FROM users WHERE user_id = ?",
                          "t", user_id);
    if (rc < 0) {
        return rc;
    }
    rc = store__step_one(st);
    if (rc == 0) {
        out->user_id = store__col_str(st, 0, arena);
        out->password_hash = store__col_str(st, 1, arena);
        out->is_admin = db_column_int64(st, 2) != 0;
        out->is_guest = db_column_int64(st, 3) != 0;
        out->deactivated = db_column_int64(st, 4) != 0;
        out->created_ts = db_column_int64(st, 5);
    }
    db_finalize(st);
    return rc;
}

/* ---- query helpers (store_int.h) ---- */

char *store__col_str(struct db_stmt *st, int col, struct arena *arena)
{
    size_t len;
    const char *s = db_column_text(st, col, &len);
    return s ? arena_strndup(arena, s, len) : NULL;
}

static int bind_va(struct db_stmt *st, const char *types, va_list ap)
{
    int rc = 0;
    for (int i = 0; types[i] && rc == 0; i++) {
        switch (types[i]) {
        case 't': {
            const char *v = va_arg(ap, const char *);
            rc = v ? db_bind_cstr(st, i + 1, v) : db_bind_null(st, i + 1);
            break;
        }
        case 'i':
            rc = db_bind_int64(st, i + 1, va_arg(ap, int64_t));
            break;
        case 'b':
            rc = db_bind_int64(st, i + 1, va_arg(ap, int) ? 1 : 0);
            break;
        default:
            assert(!"unknown bind type");
            rc = -ERR_DB;
        }
    }
    return rc;
}

/* Prepares `sql` and binds the arguments in `ap`; finalizes on failure. */
static int query_va(struct store_conn *c, struct db_stmt **out, const char *sql,
                    const char *types, va_list ap)
{
    struct db_stmt *st;
    int rc = db_prepare(c->db, sql, &st);
    if (rc < 0) {
        return rc;
    }
    rc = bind_va(st, types, ap);
    if (rc < 0) {
        db_finalize(st);
        return rc;
    }
    *out = st;
    return 0;
}

int store__query(struct store_conn *c, struct db_stmt **out, const char *sql, const char *types,
                 ...)
{
    va_list ap;
    va_start(ap, types);
    int rc = query_va(c, out, sql, types, ap);
    va_end(ap);
    return rc;
}

int store__exec(struct store_conn *c, const char *sql, const char *types, ...)
{
    struct db_stmt *st;
    va_list ap;
    va_start(ap, types);
    int rc = query_va(c, &st, sql, types, ap);
    va_end(ap);
    if (rc < 0) {
        return rc;
    }
    rc = db_step(st);
    if (rc == DB_DONE || rc == DB_ROW) {
        rc = (int)db_changes(st);
    }
    db_finalize(st);
    return rc;
}

/* The one-row read behind store__get_str and store__get_int: copies the
 * first column into whichever of *str and *num is asked for. */
static int get_first(struct store_conn *c, struct arena *arena, char **str, int64_t *num,
                     const char *sql, const char *types, va_list ap)
{
    struct db_stmt *st;
    int rc = query_va(c, &st, sql, types, ap);
    if (rc < 0) {
        return rc;
    }
    rc = store__step_one(st);
    if (rc == 0 && str) {
        *str = store__col_str(st, 0, arena);
    } else if (rc == 0) {
        *num = db_column_int64(st, 0);
    }
    db_finalize(st);
    return rc;
}

int store__get_str(struct store_conn *c, struct arena *arena, char **out, const char *sql,
                   const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    int rc = get_first(c, arena, out, NULL, sql, types, ap);
    va_end(ap);
    return rc;
}

int store__get_int(struct store_conn *c, int64_t *out, const char *sql, const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    int rc = get_first(c, NULL, NULL, out, sql, types, ap);
    va_end(ap);
    return rc;
}

int store__step_one(struct db_stmt *st)
{
    int rc = db_step(st);
    if (rc == DB_ROW) {
        return 0;
    }
    return rc == DB_DONE ? -ERR_NOT_FOUND : rc;
}

int store__ok(int rc)
{
    if (rc == DB_UNIQUE) {
        return -ERR_CONFLICT;
    }
    return rc < 0 ? rc : 0;
}

int store__changed_one(int rc)
{
    if (rc == 0) {
        return -ERR_NOT_FOUND;
    }
    return store__ok(rc);
}

/* ---- collecting rows (store_int.h) ---- */

void *store__grow(struct arena *a, void *arr, size_t elem, size_t count, size_t *cap)
{
    if (count < *cap) {
        return arr;
    }
    size_t ncap = *cap ? *cap * 2 : 16;
    void *n = arena_alloc(a, elem * ncap);
    if (count) {
        memcpy(n, arr, elem * count);
    }
    *cap = ncap;
    return n;
}

int store__collect(struct db_stmt *st, struct arena *arena, size_t elem, store__row_fn *read,
                   void *list, size_t *n)
{
    size_t cap = 0, count = 0;
    unsigned char *arr = NULL;
    int rc;
    while ((rc = db_step(st)) == DB_ROW) {
        arr = store__grow(arena, arr, elem, count, &cap);
        read(st, arena, arr + elem * count++);
    }
    db_finalize(st);
    if (rc < 0) {
        return rc;
    }
    /* `list` points at the caller's typed pointer; object pointers share
     * one representation on every platform Myelin builds for (POSIX). */
    void *out = arr;
    memcpy(list, &out, sizeof(out));
    *n = count;
    return 0;
}

void store__str_row(struct db_stmt *st, struct arena *arena, void *row)
{
    char **s = row;
    *s = store__col_str(st, 0, arena);
}

/* ---- events (store_int.h) ---- */

void store__read_event(struct db_stmt *st, struct arena *arena, struct store_event *e)
{
    e->nid = db_column_int64(st, 0);
    e->event_id = store__col_str(st, 1, arena);
    e->room_nid = db_column_int64(st, 2);
    e->stream_ordering = db_column_int64(st, 3);
    e->depth = db_column_int64(st, 4);
    e->state_before_nid = db_column_int64(st, 5);
    e->rejected = db_column_int64(st, 6) != 0;
    e->redacted_by = store__col_str(st, 7, arena);
    e->json = store__col_str(st, 8, arena);
}

void store__event_row(struct db_stmt *st, struct arena *arena, void *row)
{
    store__read_event(st, arena, row);
}
