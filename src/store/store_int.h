/*
 * Definitions shared by the files that implement store.h (store.c and the
 * per-area query files such as accounts.c), and small query helpers that
 * keep each query to a few lines. Nothing outside src/store includes this.
 */
#ifndef MYELIN_STORE_STORE_INT_H
#define MYELIN_STORE_STORE_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/*
 * Runs a query (as store__query) that reads at most one row and copies its
 * first column into *out: a string into `arena` (store__get_str, NULL
 * stays NULL) or an integer (store__get_int). Returns 0, -ERR_NOT_FOUND
 * when there is no row (*out untouched), or a negative ERR_*.
 */
int store__get_str(struct store_conn *c, struct arena *arena, char **out, const char *sql,
                   const char *types, ...);
int store__get_int(struct store_conn *c, int64_t *out, const char *sql, const char *types, ...);

/* ---- result mapping ---- */

/*
 * Steps a single-row query: 0 with the row available through the
 * db_column_* accessors, -ERR_NOT_FOUND when there is no row, or the
 * negative ERR_* of the step. The caller still finalizes `st`.
 */
int store__step_one(struct db_stmt *st);

/* Maps a store__exec result for statements where any row count is fine:
 * 0, -ERR_CONFLICT for a unique violation, or the negative ERR_*. */
int store__ok(int rc);

/* Maps a store__exec result for an UPDATE or DELETE that must change a
 * row: 0, -ERR_NOT_FOUND when it changed none, -ERR_CONFLICT for a unique
 * violation, or the negative ERR_*. */
int store__changed_one(int rc);

/* ---- collecting rows ---- */

/*
 * Makes room for element `count` of an arena array of `elem`-byte items
 * holding *cap of them, doubling the capacity (16 at first) into a new
 * arena block when it is full. Returns the (possibly new) array.
 */
void *store__grow(struct arena *a, void *arr, size_t elem, size_t count, size_t *cap);

/* Reads the current row of `st` into `row`, one element of the array
 * store__collect is filling; strings go into `arena`. */
typedef void store__row_fn(struct db_stmt *st, struct arena *arena, void *row);

/*
 * Steps `st` to its end, reading each row with `read` into an arena array
 * of `elem`-byte items, and finalizes `st` on every path. On success
 * returns 0, stores the array (NULL when there were no rows) through
 * `list`, the address of the caller's typed pointer such as a
 * `struct store_event **`, and the row count in *n. On failure returns
 * the negative ERR_* and leaves *list and *n untouched.
 */
int store__collect(struct db_stmt *st, struct arena *arena, size_t elem, store__row_fn *read,
                   void *list, size_t *n);

/* A store__row_fn for a single text column: the row is a `char *`. */
void store__str_row(struct db_stmt *st, struct arena *arena, void *row);

/* ---- events ---- */

/*
 * The columns of struct store_event, in the order store__read_event reads
 * them, for queries that name the events table `e`.
 */
#define STORE__EVENT_COLS                                                                      \
    "e.event_nid, e.event_id, e.room_nid, COALESCE(e.stream_ordering, 0), e.depth, "           \
    "COALESCE(e.state_before_nid, 0), e.rejected, e.redacted_by, e.json"
#define STORE__EVENT_NCOLS 9

/* Reads the STORE__EVENT_COLS of the current row into *e. */
void store__read_event(struct db_stmt *st, struct arena *arena, struct store_event *e);
/* store__read_event as a store__row_fn (the row is a struct store_event). */
void store__event_row(struct db_stmt *st, struct arena *arena, void *row);

#endif
