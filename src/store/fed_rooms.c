/*
 * Reads that federation needs of rooms: the auth chain of a set of events
 * (event_auth_edges followed to the roots, spec "Auth chain"), and events
 * by nid. Nid lists are bound in batches of fixed-size IN lists, so any
 * number works on both engines and the statement cache stays small.
 */
#include <stdint.h>
#include <string.h>

#include "base/map.h"
#include "store/store_int.h"

/*
 * Nid lists are bound as IN lists of fixed sizes (1, 16, 64 or 256
 * placeholders, padded by repeating a nid: duplicates in IN change
 * nothing), because the statement cache is keyed by SQL text that must
 * outlive the connection; longer lists take several statements.
 */
#define IN1 "?"
#define IN2 IN1 "," IN1
#define IN4 IN2 "," IN2
#define IN8 IN4 "," IN4
#define IN16 IN8 "," IN8
#define IN32 IN16 "," IN16
#define IN64 IN32 "," IN32
#define IN128 IN64 "," IN64
#define IN256 IN128 "," IN128
#define NIDS_PER_STATEMENT 256

static const size_t in_sizes[] = {1, 16, 64, 256};

#define EVENTS_SQL(in) "SELECT " STORE__EVENT_COLS " FROM events e WHERE e.event_nid IN (" in ")"
#define AUTH_SQL(in) "SELECT DISTINCT auth_nid FROM event_auth_edges WHERE event_nid IN (" in ")"

enum nids_query { Q_EVENTS, Q_AUTH_EDGES };

static const char *const nids_sql[][4] = {
    [Q_EVENTS] = {EVENTS_SQL(IN1), EVENTS_SQL(IN16), EVENTS_SQL(IN64), EVENTS_SQL(IN256)},
    [Q_AUTH_EDGES] = {AUTH_SQL(IN1), AUTH_SQL(IN16), AUTH_SQL(IN64), AUTH_SQL(IN256)},
};

/* Prepares query `q` bound to nids[0..n), 1 <= n <= NIDS_PER_STATEMENT. */
static int prepare_nids(struct store_conn *c, enum nids_query q, const int64_t *nids, size_t n,
                        struct db_stmt **out)
{
    int v = n <= 1 ? 0 : n <= 16 ? 1 : n <= 64 ? 2 : 3;
    struct db_stmt *st = NULL;
    int rc = db_prepare(c->db, nids_sql[q][v], &st);
    for (size_t i = 0; rc == 0 && i < in_sizes[v]; i++) {
        rc = db_bind_int64(st, (int)i + 1, nids[i < n ? i : n - 1]);
    }
    if (rc < 0) {
        if (st) {
            db_finalize(st);
        }
        return rc;
    }
    *out = st;
    return 0;
}

int store_events_by_nids(struct store_conn *c, struct arena *arena, const int64_t *nids,
                         size_t n, struct store_event **out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    struct store_event *all = n ? arena_alloc(arena, n * sizeof(*all)) : NULL;
    size_t got = 0;
    for (size_t off = 0; off < n; off += NIDS_PER_STATEMENT) {
        size_t m = n - off < NIDS_PER_STATEMENT ? n - off : NIDS_PER_STATEMENT;
        struct db_stmt *st;
        int rc = prepare_nids(c, Q_EVENTS, nids + off, m, &st);
        if (rc < 0) {
            return rc;
        }
        struct store_event *part;
        size_t np;
        rc = store__collect(st, arena, sizeof(*part), store__event_row, &part, &np);
        if (rc < 0) {
            return rc;
        }
        for (size_t i = 0; i < np && got < n; i++) {
            all[got++] = part[i];
        }
    }
    *out = all;
    *n_out = got;
    return 0;
}

static void nid_row(struct db_stmt *st, struct arena *arena, void *row)
{
    (void)arena;
    *(int64_t *)row = db_column_int64(st, 0);
}

int store_auth_chain(struct store_conn *c, struct arena *arena, const int64_t *nids, size_t n,
                     struct store_event **out, size_t *n_out)
{
    struct map seen;
    map_init(&seen);
    int64_t *chain = NULL;
    size_t n_chain = 0, cap = 0;
    const int64_t *frontier = nids;
    size_t n_front = n;
    int rc = 0;
    while (n_front > 0 && rc == 0) {
        size_t start = n_chain;
        for (size_t off = 0; off < n_front && rc == 0; off += NIDS_PER_STATEMENT) {
            size_t m = n_front - off < NIDS_PER_STATEMENT ? n_front - off : NIDS_PER_STATEMENT;
            struct db_stmt *st;
            rc = prepare_nids(c, Q_AUTH_EDGES, frontier + off, m, &st);
            int64_t *found = NULL;
            size_t nf = 0;
            if (rc == 0) {
                rc = store__collect(st, arena, sizeof(*found), nid_row, &found, &nf);
            }
            for (size_t i = 0; rc == 0 && i < nf; i++) {
                int64_t *key = arena_alloc(arena, sizeof(*key));
                *key = found[i];
                struct str k = {(const char *)key, sizeof(*key)};
                if (map_has(&seen, k)) {
                    continue;
                }
                map_put(&seen, k, (void *)1);
                if (n_chain == cap) {
                    cap = cap ? cap * 2 : 64;
                    int64_t *grown = arena_alloc(arena, cap * sizeof(*grown));
                    if (n_chain) {
                        memcpy(grown, chain, n_chain * sizeof(*grown));
                    }
                    chain = grown;
                }
                chain[n_chain++] = found[i];
            }
        }
        frontier = chain + start;
        n_front = n_chain - start;
    }
    map_release(&seen);
    if (rc < 0) {
        return rc;
    }
    return store_events_by_nids(c, arena, chain, n_chain, out, n_out);
}
