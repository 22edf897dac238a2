/*
 * Reads that federation needs of rooms: the auth chain of a set of events
 * (event_auth_edges followed to the roots, spec "Auth chain"), and events
 * by nid. Nid lists are bound in batches, so any number works on both
 * engines.
 */
#include <stdint.h>
#include <string.h>

#include "base/map.h"
#include "store/store_int.h"

/* Most nids one statement binds (far below both engines' limits). */
#define NIDS_PER_STATEMENT 500

/* Prepares `sql_fmt` (one %s for the placeholder list) bound to nids. */
static int prepare_nids(struct store_conn *c, struct arena *a, const char *sql_fmt,
                        const int64_t *nids, size_t n, struct db_stmt **out)
{
    char *ph = arena_alloc(a, n * 2 + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (i) {
            ph[k++] = ',';
        }
        ph[k++] = '?';
    }
    ph[k] = '\0';
    struct db_stmt *st;
    int rc = db_prepare(c->db, arena_printf(a, sql_fmt, ph), &st);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = db_bind_int64(st, (int)i + 1, nids[i]);
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
        int rc = prepare_nids(c, arena,
                              "SELECT " STORE__EVENT_COLS " FROM events e WHERE e.event_nid IN (%s)",
                              nids + off, m, &st);
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
            rc = prepare_nids(c, arena,
                              "SELECT DISTINCT auth_nid FROM event_auth_edges "
                              "WHERE event_nid IN (%s)",
                              frontier + off, m, &st);
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
