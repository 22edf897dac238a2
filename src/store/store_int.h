/*
 * Definitions shared by the files that implement store.h (store.c and the
 * per-area query files such as accounts.c), and small query helpers that
 * keep each query to a few lines. Nothing outside src/store includes this.
 */
#ifndef MYELIN_STORE_STORE_INT_H
#define MYELIN_STORE_STORE_INT_H

#include <stdatomic.h>
#include <stdbool.h>

#include "base/arena.h"
#include "store/db.h"
#include "store/store.h"

struct store {
    const struct db_engine *engine;
    char *target;        /* SQLite path or URI, or libpq conninfo */
    struct db *keeper;   /* in-memory SQLite: keeps the database alive */
    atomic_int nconns;   /* open store_conns, for store_close's check */
};

struct store_conn {
    struct store *store;
    struct db *db;
    bool in_txn;
};

/*
 * Prepares `sql` and binds arguments described by `types`, one letter per
 * placeholder: 't' const char * (NULL binds NULL), 'i' int64_t, 'b' bool
 * (passed as int). Returns 0 and *out, or a negative ERR_*.
 */
int store__query(struct store_conn *c, struct db_stmt **out, const char *sql, const char *types,
                 ...);

/*
 * Runs a statement that returns no rows. Returns the number of rows it
 * changed (>= 0), DB_UNIQUE on a unique violation, or a negative ERR_*.
 */
int store__exec(struct store_conn *c, const char *sql, const char *types, ...);

/* Copies a text column into the arena; NULL stays NULL. */
char *store__col_str(struct db_stmt *st, int col, struct arena *arena);

#endif
