/*
 * Store tests. Every test runs twice: on SQLite (a fresh temporary file
 * under /tmp) and on PostgreSQL. For PostgreSQL, MYELIN_TEST_PG holds a
 * libpq conninfo for a running server; each test creates a database of its
 * own through it and drops it afterwards. Without the variable the
 * PostgreSQL variants are skipped.
 */
#include <libpq-fe.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "unit.h"

#include "base/arena.h"
#include "base/buf.h"
#include "base/err.h"
#include "store/db.h"
#include "store/store.h"

struct fixture {
    bool skip;               /* PostgreSQL variant without MYELIN_TEST_PG */
    struct config_db cfg;    /* what the test hands to store_open */
    char path[64];           /* SQLite: the temporary database file */
    char *admin_conninfo;    /* PostgreSQL: MYELIN_TEST_PG */
    char dbname[64];         /* PostgreSQL: the per-test database */
};

/* ---- SQLite fixture ---- */

static int setup_sqlite(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    snprintf(f->path, sizeof(f->path), "/tmp/myelin-store-XXXXXX");
    int fd = mkstemp(f->path);
    if (fd < 0) {
        free(f);
        return -1;
    }
    close(fd);
    f->cfg.engine = DB_ENGINE_SQLITE;
    f->cfg.path = f->path;
    *state = f;
    return 0;
}

/* ---- PostgreSQL fixture ---- */

static int pg_admin_exec(const char *conninfo, const char *sql)
{
    PGconn *conn = PQconnectdb(conninfo);
    int rc = -1;
    if (PQstatus(conn) == CONNECTION_OK) {
        PGresult *res = PQexec(conn, sql);
        ExecStatusType status = PQresultStatus(res);
        if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
            rc = 0;
        } else {
            fprintf(stderr, "test_store: %s: %s", sql, PQresultErrorMessage(res));
        }
        PQclear(res);
    } else {
        fprintf(stderr, "test_store: cannot connect: %s", PQerrorMessage(conn));
    }
    PQfinish(conn);
    return rc;
}

/* `base` with its dbname replaced, for keyword=value and URI forms alike. */
static char *conninfo_with_dbname(const char *base, const char *dbname)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(base, &err);
    if (opts == NULL) {
        fprintf(stderr, "test_store: bad MYELIN_TEST_PG: %s", err ? err : "?");
        PQfreemem(err);
        return NULL;
    }
    struct buf b = BUF_INIT;
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        const char *v = strcmp(o->keyword, "dbname") == 0 ? dbname : o->val;
        if (v == NULL) {
            continue;
        }
        buf_printf(&b, "%s='", o->keyword);
        for (const char *p = v; *p != '\0'; p++) {
            if (*p == '\'' || *p == '\\') {
                buf_append_char(&b, '\\');
            }
            buf_append_char(&b, *p);
        }
        buf_append_cstr(&b, "' ");
    }
    PQconninfoFree(opts);
    return buf_detach(&b, NULL);
}

static int setup_pg(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    *state = f;
    const char *env = getenv("MYELIN_TEST_PG");
    if (env == NULL || env[0] == '\0') {
        f->skip = true;
        return 0;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(f->dbname, sizeof(f->dbname), "myelin_test_%ld_%ld_%ld", (long)getpid(),
             (long)ts.tv_sec, ts.tv_nsec);
    f->admin_conninfo = strdup(env);
    char sql[128];
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", f->dbname);
    if (pg_admin_exec(env, sql) < 0) {
        f->dbname[0] = '\0';
        return -1;
    }
    f->cfg.engine = DB_ENGINE_POSTGRES;
    f->cfg.conninfo = conninfo_with_dbname(env, f->dbname);
    return f->cfg.conninfo ? 0 : -1;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    int rc = 0;
    if (f->path[0] != '\0') {
        char side[80];
        unlink(f->path);
        snprintf(side, sizeof(side), "%s-wal", f->path);
        unlink(side);
        snprintf(side, sizeof(side), "%s-shm", f->path);
        unlink(side);
        snprintf(side, sizeof(side), "%s-journal", f->path);
        unlink(side);
    }
    if (f->dbname[0] != '\0') {
        char sql[160];
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", f->dbname);
        rc = pg_admin_exec(f->admin_conninfo, sql);
    }
    free(f->cfg.conninfo);
    free(f->admin_conninfo);
    free(f);
    return rc;
}

/* The fixture, or a skip when this is a PostgreSQL variant without a server. */
static struct fixture *fixture(void **state)
{
    struct fixture *f = *state;
    if (f->skip) {
        skip();
    }
    return f;
}

/* Records schema version `version` behind the store's back. */
static int force_version(struct fixture *f, int version)
{
    char sql[160];
    snprintf(sql, sizeof(sql),
             "INSERT INTO schema_version (version, name, applied_ts) VALUES (%d, 'future', 0)",
             version);
    if (f->cfg.engine == DB_ENGINE_POSTGRES) {
        return pg_admin_exec(f->cfg.conninfo, sql);
    }
    sqlite3 *db = NULL;
    int rc = sqlite3_open(f->path, &db);
    if (rc == SQLITE_OK) {
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    }
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

/* ---- tests ---- */

static void migrations_apply(void **state)
{
    struct fixture *f = fixture(state);
    struct store *s = NULL;
    assert_int_equal(store_open(&f->cfg, &s), 0);
    assert_non_null(s);
    assert_string_equal(store_engine_name(s),
                        f->cfg.engine == DB_ENGINE_SQLITE ? "sqlite" : "postgres");
    struct store_conn *c = NULL;
    assert_int_equal(store_conn_open(s, &c), 0);
    int version = -1;
    assert_int_equal(store_schema_version(c, &version), 0);
    assert_true(store_schema_latest() >= 1);
    assert_int_equal(version, store_schema_latest());
    /* The users table from 001 exists. */
    assert_int_equal(store_user_create(c, "@probe:test", NULL, false, false, 1), 0);
    store_conn_close(c);
    store_close(s);
}

static void reopen_idempotent(void **state)
{
    struct fixture *f = fixture(state);
    struct store *s = NULL;
    struct store_conn *c = NULL;
    assert_int_equal(store_open(&f->cfg, &s), 0);
    assert_int_equal(store_conn_open(s, &c), 0);
    assert_int_equal(store_user_create(c, "@kept:test", "hash", false, false, 7), 0);
    store_conn_close(c);
    store_close(s);

    for (int i = 0; i < 2; i++) {
        s = NULL;
        assert_int_equal(store_open(&f->cfg, &s), 0);
        assert_int_equal(store_conn_open(s, &c), 0);
        int version = -1;
        assert_int_equal(store_schema_version(c, &version), 0);
        assert_int_equal(version, store_schema_latest());
        struct arena a;
        arena_init(&a);
        struct store_user u;
        assert_int_equal(store_user_get(c, &a, "@kept:test", &u), 0);
        assert_int_equal(u.created_ts, 7);
        arena_release(&a);
        store_conn_close(c);
        store_close(s);
    }
}

static void newer_version_refused(void **state)
{
    struct fixture *f = fixture(state);
    struct store *s = NULL;
    assert_int_equal(store_open(&f->cfg, &s), 0);
    store_close(s);

    assert_int_equal(force_version(f, store_schema_latest() + 1), 0);
    s = NULL;
    assert_int_equal(store_open(&f->cfg, &s), -ERR_SCHEMA_TOO_NEW);
    assert_null(s);
}

static void user_roundtrip(void **state)
{
    struct fixture *f = fixture(state);
    struct store *s = NULL;
    struct store_conn *c = NULL;
    assert_int_equal(store_open(&f->cfg, &s), 0);
    assert_int_equal(store_conn_open(s, &c), 0);

    const char *hash = "$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA";
    assert_int_equal(store_user_create(c, "@alice:test", hash, true, false, 1700000000123), 0);
    assert_int_equal(store_user_create(c, "@guest1:test", NULL, false, true, 42), 0);

    struct arena a;
    arena_init(&a);
    struct store_user u;
    memset(&u, 0, sizeof(u));
    assert_int_equal(store_user_get(c, &a, "@alice:test", &u), 0);
    assert_string_equal(u.user_id, "@alice:test");
    assert_non_null(u.password_hash);
    assert_string_equal(u.password_hash, hash);
    assert_true(u.is_admin);
    assert_false(u.is_guest);
    assert_false(u.deactivated);
    assert_int_equal(u.created_ts, 1700000000123);

    memset(&u, 0, sizeof(u));
    assert_int_equal(store_user_get(c, &a, "@guest1:test", &u), 0);
    assert_string_equal(u.user_id, "@guest1:test");
    assert_null(u.password_hash);
    assert_false(u.is_admin);
    assert_true(u.is_guest);
    assert_int_equal(u.created_ts, 42);
    arena_release(&a);

    store_conn_close(c);
    store_close(s);
}

static void user_duplicate(void **state)
{
    struct fixture *f = fixture(state);
    struct store *s = NULL;
    struct store_conn *c = NULL;
    assert_int_equal(store_open(&f->cfg, &s), 0);
    assert_int_equal(store_conn_open(s, &c), 0);

    assert_int_equal(store_user_create(c, "@bob:test", "first", false, false, 1), 0);
    assert_int_equal(store_user_create(c, "@bob:test", "second", true, false, 2),
                     -ERR_USER_IN_USE);

    /* Inside a transaction too; after a rollback the connection still works.
     * The database's own message stays on the connection for logs. */
    assert_int_equal(store_begin(c), 0);
    assert_string_equal(store_conn_error(c), "");
    assert_int_equal(store_user_create(c, "@bob:test", "third", false, false, 3),
                     -ERR_USER_IN_USE);
    const char *why = store_conn_error(c);
    assert_true(strstr(why, "UNIQUE") || strstr(why, "unique"));
    assert_int_equal(store_rollback(c), 0);

    struct arena a;
    arena_init(&a);
    struct store_user u;
    assert_int_equal(store_user_get(c, &a, "@bob:test", &u), 0);
    assert_string_equal(u.password_hash, "first");
    assert_false(u.is_admin);
    assert_int_equal(u.created_ts, 1);
    arena_release(&a);

    store_conn_close(c);
    store_close(s);
}

static void user_missing(void **state)
{
    struct fixture *f = fixture(state);
    struct store *s = NULL;
    struct store_conn *c = NULL;
    assert_int_equal(store_open(&f->cfg, &s), 0);
    assert_int_equal(store_conn_open(s, &c), 0);
    assert_int_equal(store_user_create(c, "@present:test", NULL, false, false, 1), 0);

    struct arena a;
    arena_init(&a);
    struct store_user u;
    assert_int_equal(store_user_get(c, &a, "@absent:test", &u), -ERR_NOT_FOUND);
    /* Lookups are exact: no case folding, no prefix match. */
    assert_int_equal(store_user_get(c, &a, "@PRESENT:test", &u), -ERR_NOT_FOUND);
    assert_int_equal(store_user_get(c, &a, "@present:tes", &u), -ERR_NOT_FOUND);
    arena_release(&a);

    store_conn_close(c);
    store_close(s);
}

static void rollback_discards(void **state)
{
    struct fixture *f = fixture(state);
    struct store *s = NULL;
    struct store_conn *c = NULL;
    struct store_conn *other = NULL;
    assert_int_equal(store_open(&f->cfg, &s), 0);
    assert_int_equal(store_conn_open(s, &c), 0);
    assert_int_equal(store_conn_open(s, &other), 0);

    struct arena a;
    arena_init(&a);
    struct store_user u;

    assert_int_equal(store_begin(c), 0);
    assert_int_equal(store_user_create(c, "@gone:test", NULL, false, false, 1), 0);
    assert_int_equal(store_user_get(c, &a, "@gone:test", &u), 0);
    assert_int_equal(store_rollback(c), 0);
    assert_int_equal(store_user_get(c, &a, "@gone:test", &u), -ERR_NOT_FOUND);
    assert_int_equal(store_user_get(other, &a, "@gone:test", &u), -ERR_NOT_FOUND);

    /* A committed transaction is visible to another connection. */
    assert_int_equal(store_begin(c), 0);
    assert_int_equal(store_user_create(c, "@stays:test", NULL, false, false, 2), 0);
    assert_int_equal(store_commit(c), 0);
    assert_int_equal(store_user_get(other, &a, "@stays:test", &u), 0);
    assert_int_equal(u.created_ts, 2);

    /* Closing a connection mid-transaction rolls back. */
    assert_int_equal(store_begin(c), 0);
    assert_int_equal(store_user_create(c, "@unfinished:test", NULL, false, false, 3), 0);
    store_conn_close(c);
    assert_int_equal(store_user_get(other, &a, "@unfinished:test", &u), -ERR_NOT_FOUND);
    arena_release(&a);

    store_conn_close(other);
    store_close(s);
}

#define WRITERS 4
#define WRITES_PER_WRITER 200

struct writer {
    pthread_t thread;
    struct store *store;
    int id;
    int failures;  /* operations that returned an error */
    int last_err;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    struct store_conn *c = NULL;
    int rc = store_conn_open(w->store, &c);
    if (rc < 0) {
        w->failures = WRITES_PER_WRITER;
        w->last_err = rc;
        return NULL;
    }
    struct arena a;
    arena_init(&a);
    for (int i = 0; i < WRITES_PER_WRITER; i++) {
        char id[64];
        snprintf(id, sizeof(id), "@w%d_%d:test", w->id, i);
        struct store_user u;
        rc = store_begin(c);
        if (rc == 0) {
            rc = store_user_create(c, id, "hash", false, false, i);
        }
        if (rc == 0) {
            /* Read inside the write transaction, as real handlers do. */
            rc = store_user_get(c, &a, id, &u);
        }
        if (rc == 0) {
            rc = store_commit(c);
        } else {
            store_rollback(c);
        }
        if (rc < 0) {
            w->failures++;
            w->last_err = rc;
        }
    }
    arena_release(&a);
    store_conn_close(c);
    return NULL;
}

static void concurrent_writers(void **state)
{
    struct fixture *f = fixture(state);
    struct store *s = NULL;
    assert_int_equal(store_open(&f->cfg, &s), 0);

    struct writer w[WRITERS];
    memset(w, 0, sizeof(w));
    for (int i = 0; i < WRITERS; i++) {
        w[i].store = s;
        w[i].id = i;
        assert_int_equal(pthread_create(&w[i].thread, NULL, writer_main, &w[i]), 0);
    }
    for (int i = 0; i < WRITERS; i++) {
        assert_int_equal(pthread_join(w[i].thread, NULL), 0);
    }
    for (int i = 0; i < WRITERS; i++) {
        assert_int_equal(w[i].last_err, 0);
        assert_int_equal(w[i].failures, 0);
    }

    /* Every row arrived, with its own values. */
    struct store_conn *c = NULL;
    assert_int_equal(store_conn_open(s, &c), 0);
    struct arena a;
    arena_init(&a);
    int found = 0;
    for (int t = 0; t < WRITERS; t++) {
        for (int i = 0; i < WRITES_PER_WRITER; i++) {
            char id[64];
            snprintf(id, sizeof(id), "@w%d_%d:test", t, i);
            struct store_user u;
            if (store_user_get(c, &a, id, &u) == 0 && u.created_ts == i) {
                found++;
            }
        }
    }
    arena_release(&a);
    assert_int_equal(found, WRITERS * WRITES_PER_WRITER);
    store_conn_close(c);
    store_close(s);
}

#define OPENERS 4

struct opener {
    pthread_t thread;
    const struct config_db *cfg;
    int rc;
};

static void *opener_main(void *arg)
{
    struct opener *o = arg;
    struct store *s = NULL;
    o->rc = store_open(o->cfg, &s);
    store_close(s);
    return NULL;
}

/* Processes starting together on a new database migrate it exactly once. */
static void concurrent_open(void **state)
{
    struct fixture *f = fixture(state);
    struct opener o[OPENERS];
    memset(o, 0, sizeof(o));
    for (int i = 0; i < OPENERS; i++) {
        o[i].cfg = &f->cfg;
        o[i].rc = 1;
        assert_int_equal(pthread_create(&o[i].thread, NULL, opener_main, &o[i]), 0);
    }
    for (int i = 0; i < OPENERS; i++) {
        assert_int_equal(pthread_join(o[i].thread, NULL), 0);
    }
    for (int i = 0; i < OPENERS; i++) {
        assert_int_equal(o[i].rc, 0);
    }
    struct store *s = NULL;
    struct store_conn *c = NULL;
    assert_int_equal(store_open(&f->cfg, &s), 0);
    assert_int_equal(store_conn_open(s, &c), 0);
    int version = -1;
    assert_int_equal(store_schema_version(c, &version), 0);
    assert_int_equal(version, store_schema_latest());
    store_conn_close(c);
    store_close(s);
}

/*
 * A repeated query reuses its prepared statement; the same query prepared
 * again while the first is still in use gets a separate one.
 */
static void statement_reuse(void **state)
{
    struct fixture *f = fixture(state);
    bool pg = f->cfg.engine == DB_ENGINE_POSTGRES;
    struct db *d = NULL;
    assert_int_equal(db_open(pg ? &db_engine_pg : &db_engine_sqlite,
                             pg ? f->cfg.conninfo : f->cfg.path, &d),
                     0);
    static const char sql[] = "SELECT ? + 1";
    struct db_stmt *first = NULL;
    for (int i = 0; i < 3; i++) {
        struct db_stmt *st = NULL;
        assert_int_equal(db_prepare(d, sql, &st), 0);
        if (first == NULL) {
            first = st;
        }
        assert_ptr_equal(st, first);
        assert_int_equal(db_bind_int64(st, 1, i), 0);
        assert_int_equal(db_step(st), DB_ROW);
        assert_int_equal(db_column_int64(st, 0), i + 1);
        assert_int_equal(db_step(st), DB_DONE);
        db_finalize(st);
    }

    struct db_stmt *outer = NULL;
    struct db_stmt *inner = NULL;
    assert_int_equal(db_prepare(d, sql, &outer), 0);
    assert_int_equal(db_prepare(d, sql, &inner), 0);
    assert_ptr_not_equal(outer, inner);
    assert_int_equal(db_bind_int64(outer, 1, 10), 0);
    assert_int_equal(db_bind_int64(inner, 1, 20), 0);
    assert_int_equal(db_step(outer), DB_ROW);
    assert_int_equal(db_step(inner), DB_ROW);
    assert_int_equal(db_column_int64(outer, 0), 11);
    assert_int_equal(db_column_int64(inner, 0), 21);
    db_finalize(inner);
    db_finalize(outer);

    if (pg) {
        /* Prepared on the server once, under its rewritten text. */
        struct db_stmt *st = NULL;
        assert_int_equal(
            db_prepare(d, "SELECT count(*) FROM pg_prepared_statements WHERE statement = ?", &st),
            0);
        assert_int_equal(db_bind_cstr(st, 1, "SELECT $1 + 1"), 0);
        assert_int_equal(db_step(st), DB_ROW);
        assert_int_equal(db_column_int64(st, 0), 1);
        db_finalize(st);
    }
    db_close(d);
}

static void ping(void **state)
{
    struct fixture *f = fixture(state);
    struct store *s = NULL;
    struct store_conn *c = NULL;
    assert_int_equal(store_open(&f->cfg, &s), 0);
    assert_int_equal(store_conn_open(s, &c), 0);
    assert_int_equal(store_ping(c), 0);
    /* Inside a transaction as well. */
    assert_int_equal(store_begin(c), 0);
    assert_int_equal(store_ping(c), 0);
    assert_int_equal(store_commit(c), 0);
    store_conn_close(c);
    store_close(s);
}

/* ":memory:" is one database per store, shared by the store's connections. */
static void sqlite_memory(void **state)
{
    struct config_db cfg = {.engine = DB_ENGINE_SQLITE, .path = ":memory:"};
    struct store *s1 = NULL;
    struct store *s2 = NULL;
    struct store_conn *a1 = NULL;
    struct store_conn *b1 = NULL;
    struct store_conn *c2 = NULL;
    assert_int_equal(store_open(&cfg, &s1), 0);
    assert_int_equal(store_open(&cfg, &s2), 0);
    assert_int_equal(store_conn_open(s1, &a1), 0);
    assert_int_equal(store_conn_open(s1, &b1), 0);
    assert_int_equal(store_conn_open(s2, &c2), 0);

    int version = -1;
    assert_int_equal(store_schema_version(b1, &version), 0);
    assert_int_equal(version, store_schema_latest());

    assert_int_equal(store_user_create(a1, "@mem:test", NULL, false, false, 5), 0);
    struct arena a;
    arena_init(&a);
    struct store_user u;
    assert_int_equal(store_user_get(b1, &a, "@mem:test", &u), 0);
    assert_int_equal(u.created_ts, 5);
    assert_int_equal(store_user_get(c2, &a, "@mem:test", &u), -ERR_NOT_FOUND);
    arena_release(&a);

    store_conn_close(a1);
    store_conn_close(b1);
    store_conn_close(c2);
    store_close(s1);
    store_close(s2);
}

/* The `?` -> `$n` rewrite leaves quoted text and comments alone. */
static void pg_placeholders(void **state)
{
    int n = -1;
    char *out = db_rewrite_placeholders(
        "SELECT ?, 'it''s ?', \"col?\" FROM t -- why?\nWHERE a = ? /* ? */ AND b=?", &n);
    assert_string_equal(out, "SELECT $1, 'it''s ?', \"col?\" FROM t -- why?\n"
                             "WHERE a = $2 /* ? */ AND b=$3");
    assert_int_equal(n, 3);
    free(out);

    out = db_rewrite_placeholders("SELECT 1", &n);
    assert_string_equal(out, "SELECT 1");
    assert_int_equal(n, 0);
    free(out);
}

/* The statement cache keeps every key reachable across growth. */
static void statement_cache(void **state)
{
    static const char *const keys[] = {"SELECT 1", "SELECT 2", "SELECT 3"};
    struct db_cache c;
    db_cache_init(&c);
    assert_null(db_cache_get(&c, keys[0]));
    char names[100][16];
    for (int i = 0; i < 100; i++) {
        snprintf(names[i], sizeof(names[i]), "Q%d", i);
        db_cache_put(&c, names[i], &names[i]);
    }
    db_cache_put(&c, keys[1], (void *)keys[1]);
    for (int i = 0; i < 100; i++) {
        char probe[16];
        snprintf(probe, sizeof(probe), "Q%d", i); /* equal text, other pointer */
        assert_ptr_equal(db_cache_get(&c, probe), &names[i]);
    }
    assert_ptr_equal(db_cache_get(&c, "SELECT 2"), keys[1]);
    assert_null(db_cache_get(&c, keys[2]));
    db_cache_release(&c);
}

/* Forgotten rooms last while the membership they were recorded for is
 * current; timestamp lookups pick the nearest timeline event either way. */
static void room_extras(void **state)
{
    struct fixture *f = fixture(state);
    struct store *s = NULL;
    struct store_conn *c = NULL;
    assert_int_equal(store_open(&f->cfg, &s), 0);
    assert_int_equal(store_conn_open(s, &c), 0);
    struct arena a;
    arena_init(&a);

    struct store_room room = {.nid = 1, .room_id = "!r:test", .room_version = "10"};
    assert_int_equal(store_room_insert(c, &room), 0);
    assert_int_equal(store_intern_add(c, STORE_INTERN_TYPE, 3, "m.room.member"), 0);
    assert_int_equal(store_intern_add(c, STORE_INTERN_STATE_KEY, 7, "@u:test"), 0);
    assert_int_equal(store_current_state_put(c, 1, 3, 7, 100, "leave"), 0);

    char **ids = NULL;
    size_t n = 9;
    assert_int_equal(store_room_forget(c, "@u:test", 1, 5), 0);
    assert_int_equal(store_user_forgotten_rooms(c, &a, "@u:test", &ids, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(ids[0], "!r:test");
    /* A new membership ends it; forgetting again (twice) records anew. */
    assert_int_equal(store_current_state_put(c, 1, 3, 7, 101, "join"), 0);
    assert_int_equal(store_user_forgotten_rooms(c, &a, "@u:test", &ids, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(store_current_state_put(c, 1, 3, 7, 102, "leave"), 0);
    assert_int_equal(store_room_forget(c, "@u:test", 1, 6), 0);
    assert_int_equal(store_room_forget(c, "@u:test", 1, 7), 0);
    assert_int_equal(store_user_forgotten_rooms(c, &a, "@u:test", &ids, &n), 0);
    assert_int_equal(n, 1);
    /* Without a membership there is nothing to record. */
    assert_int_equal(store_room_forget(c, "@nobody:test", 1, 5), 0);
    assert_int_equal(store_user_forgotten_rooms(c, &a, "@nobody:test", &ids, &n), 0);
    assert_int_equal(n, 0);

    /* Events at ts 10, 20, 20 (stream 2, 3), 30 (rejected), 40. */
    static const int64_t ts[] = {10, 20, 20, 30, 40};
    for (int i = 0; i < 5; i++) {
        struct store_event_row ev = {.nid = 200 + i,
                                     .event_id = arena_printf(&a, "$e%d", i),
                                     .room_nid = 1,
                                     .type_nid = 3,
                                     .sender = "@u:test",
                                     .depth = i + 1,
                                     .origin_server_ts = ts[i],
                                     .stream_ordering = i + 1,
                                     .rejected = i == 3,
                                     .json = "{}"};
        assert_int_equal(store_event_insert(c, &ev), 0);
    }
    char *id = NULL;
    int64_t at = 0;
    assert_int_equal(store_event_at_ts(c, &a, 1, 15, true, &id, &at), 0);
    assert_string_equal(id, "$e1");
    assert_int_equal(at, 20);
    assert_int_equal(store_event_at_ts(c, &a, 1, 25, false, &id, &at), 0);
    assert_string_equal(id, "$e2");
    assert_int_equal(store_event_at_ts(c, &a, 1, 21, true, &id, &at), 0);
    assert_string_equal(id, "$e4"); /* the rejected event does not count */
    assert_int_equal(store_event_at_ts(c, &a, 1, 10, false, &id, &at), 0);
    assert_string_equal(id, "$e0");
    assert_int_equal(store_event_at_ts(c, &a, 1, 9, false, &id, &at), -ERR_NOT_FOUND);
    assert_int_equal(store_event_at_ts(c, &a, 1, 41, true, &id, &at), -ERR_NOT_FOUND);
    assert_int_equal(store_event_at_ts(c, &a, 2, 0, true, &id, &at), -ERR_NOT_FOUND);

    arena_release(&a);
    store_conn_close(c);
    store_close(s);
}

#define BOTH(fn)                                         \
    {"sqlite/" #fn, fn, setup_sqlite, teardown, NULL},  \
    {"postgres/" #fn, fn, setup_pg, teardown, NULL}

int test_store(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(migrations_apply),
        BOTH(reopen_idempotent),
        BOTH(newer_version_refused),
        BOTH(user_roundtrip),
        BOTH(user_duplicate),
        BOTH(user_missing),
        BOTH(rollback_discards),
        BOTH(concurrent_writers),
        BOTH(concurrent_open),
        BOTH(statement_reuse),
        BOTH(ping),
        BOTH(room_extras),
        cmocka_unit_test(sqlite_memory),
        cmocka_unit_test(pg_placeholders),
        cmocka_unit_test(statement_cache),
    };
    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
