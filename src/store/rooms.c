/*
 * Room and event queries (schema 003_rooms): interning, events and their
 * graph, state snapshots as layers, current state, forward extremities,
 * transaction IDs, and reading state at a past snapshot (history
 * visibility, state as a former member saw it). The layering policy itself
 * lives in svc/room.c; this file only reads and writes rows.
 */
#include <stdint.h>

#include "base/err.h"
#include "base/map.h"
#include "store/store_int.h"

/* ---- sequences ---- */

static int max_of(struct store_conn *c, const char *sql, int64_t *out)
{
    int rc = store__get_int(c, out, sql, "");
    if (rc == -ERR_NOT_FOUND) {
        *out = 0;
        return 0;
    }
    return rc;
}

int store_nids_max(struct store_conn *c, struct store_nid_max *out)
{
    int rc = max_of(c, "SELECT COALESCE(MAX(room_nid), 0) FROM rooms", &out->room);
    if (!rc) {
        rc = max_of(c, "SELECT COALESCE(MAX(event_nid), 0) FROM events", &out->event);
    }
    if (!rc) {
        rc = max_of(c, "SELECT COALESCE(MAX(snapshot_nid), 0) FROM state_snapshots",
                    &out->snapshot);
    }
    if (!rc) {
        rc = max_of(c, "SELECT COALESCE(MAX(stream_ordering), 0) FROM events", &out->stream);
    }
    if (!rc) {
        rc = max_of(c, "SELECT COALESCE(MAX(type_nid), 0) FROM event_types", &out->type);
    }
    if (!rc) {
        rc = max_of(c, "SELECT COALESCE(MAX(state_key_nid), 0) FROM state_keys",
                    &out->state_key);
    }
    return rc;
}

int store_intern_get(struct store_conn *c, enum store_intern kind, const char *s, int64_t *nid)
{
    return store__get_int(c, nid,
                          kind == STORE_INTERN_TYPE
                              ? "SELECT type_nid FROM event_types WHERE type = ?"
                              : "SELECT state_key_nid FROM state_keys WHERE state_key = ?",
                          "t", s);
}

int store_intern_add(struct store_conn *c, enum store_intern kind, int64_t nid, const char *s)
{
    return store__ok(store__exec(c,
                                 kind == STORE_INTERN_TYPE
                                     ? "INSERT INTO event_types (type_nid, type) VALUES (?, ?)"
                                     : "INSERT INTO state_keys (state_key_nid, state_key) "
                                       "VALUES (?, ?)",
                                 "it", nid, s));
}

/* ---- rooms ---- */

int store_room_insert(struct store_conn *c, const struct store_room *room)
{
    return store__ok(store__exec(c,
                                 "INSERT INTO rooms (room_nid, room_id, room_version, created_ts, "
                                 "published) VALUES (?, ?, ?, ?, ?)",
                                 "ittib", room->nid, room->room_id, room->room_version,
                                 room->created_ts, (int)room->published));
}

int store_room_get(struct store_conn *c, struct arena *arena, const char *room_id,
                   struct store_room *out)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT room_nid, room_id, room_version, created_ts, published "
                          "FROM rooms WHERE room_id = ?",
                          "t", room_id);
    if (rc < 0) {
        return rc;
    }
    rc = store__step_one(st);
    if (rc == 0) {
        out->nid = db_column_int64(st, 0);
        out->room_id = store__col_str(st, 1, arena);
        out->room_version = store__col_str(st, 2, arena);
        out->created_ts = db_column_int64(st, 3);
        out->published = db_column_int64(st, 4) != 0;
    }
    db_finalize(st);
    return rc;
}

int store_room_set_published(struct store_conn *c, int64_t room_nid, bool published)
{
    return store__ok(store__exec(c, "UPDATE rooms SET published = ? WHERE room_nid = ?", "bi",
                                 (int)published, room_nid));
}

int store_room_head_get(struct store_conn *c, int64_t room_nid, int64_t *snapshot_nid)
{
    int rc = store__get_int(c, snapshot_nid,
                            "SELECT snapshot_nid FROM room_heads WHERE room_nid = ?", "i",
                            room_nid);
    if (rc == -ERR_NOT_FOUND) {
        *snapshot_nid = 0;
        return 0;
    }
    return rc;
}

int store_room_head_set(struct store_conn *c, int64_t room_nid, int64_t snapshot_nid)
{
    return store__ok(store__exec(c,
                                 "INSERT INTO room_heads (room_nid, snapshot_nid) VALUES (?, ?) "
                                 "ON CONFLICT (room_nid) DO UPDATE SET "
                                 "snapshot_nid = excluded.snapshot_nid",
                                 "ii", room_nid, snapshot_nid));
}

/* ---- events and the graph ---- */

int store_event_insert(struct store_conn *c, const struct store_event_row *ev)
{
    /* NULLIF turns the 0 "none" markers into NULLs with one statement. */
    return store__ok(store__exec(
        c,
        "INSERT INTO events (event_nid, event_id, room_nid, type_nid, state_key_nid, sender, "
        "depth, origin_server_ts, stream_ordering, state_before_nid, rejected, json) "
        "VALUES (?, ?, ?, ?, NULLIF(?, 0), ?, ?, ?, NULLIF(?, 0), NULLIF(?, 0), ?, ?)",
        "itiiitiiiibt", ev->nid, ev->event_id, ev->room_nid, ev->type_nid, ev->state_key_nid,
        ev->sender, ev->depth, ev->origin_server_ts, ev->stream_ordering, ev->state_before_nid,
        (int)ev->rejected, ev->json));
}

int store_event_edges_add(struct store_conn *c, int64_t event_nid, const int64_t *prev,
                          size_t n_prev, const int64_t *auth, size_t n_auth)
{
    for (size_t i = 0; i < n_prev; i++) {
        int rc = store__ok(store__exec(c,
                                       "INSERT INTO event_edges (event_nid, prev_nid) VALUES (?, ?) "
                                       "ON CONFLICT DO NOTHING",
                                       "ii", event_nid, prev[i]));
        if (rc < 0) {
            return rc;
        }
    }
    for (size_t i = 0; i < n_auth; i++) {
        int rc = store__ok(store__exec(c,
                                       "INSERT INTO event_auth_edges (event_nid, auth_nid) "
                                       "VALUES (?, ?) ON CONFLICT DO NOTHING",
                                       "ii", event_nid, auth[i]));
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

int store_extremities_replace(struct store_conn *c, int64_t room_nid, const int64_t *remove,
                              size_t n_remove, int64_t add)
{
    for (size_t i = 0; i < n_remove; i++) {
        int rc = store__ok(store__exec(
            c, "DELETE FROM forward_extremities WHERE room_nid = ? AND event_nid = ?", "ii",
            room_nid, remove[i]));
        if (rc < 0) {
            return rc;
        }
    }
    return store__ok(store__exec(c,
                                 "INSERT INTO forward_extremities (room_nid, event_nid) "
                                 "VALUES (?, ?) ON CONFLICT DO NOTHING",
                                 "ii", room_nid, add));
}

/* ---- state snapshots ---- */

int store_snapshot_insert(struct store_conn *c, int64_t snapshot_nid, int64_t room_nid,
                          int64_t parent_nid, int64_t state_size,
                          const struct store_layer_entry *entries, size_t n)
{
    int rc = store__ok(store__exec(c,
                                   "INSERT INTO state_snapshots (snapshot_nid, room_nid, "
                                   "parent_nid, layer_size, state_size) "
                                   "VALUES (?, ?, NULLIF(?, 0), ?, ?)",
                                   "iiiii", snapshot_nid, room_nid, parent_nid, (int64_t)n,
                                   state_size));
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = store__ok(store__exec(c,
                                   "INSERT INTO state_layers (snapshot_nid, type_nid, "
                                   "state_key_nid, event_nid) VALUES (?, ?, ?, NULLIF(?, 0))",
                                   "iiii", snapshot_nid, entries[i].type_nid,
                                   entries[i].state_key_nid, entries[i].event_nid));
    }
    return rc;
}

static void layer_row(struct db_stmt *st, struct arena *arena, void *row)
{
    (void)arena;
    struct store_layer_entry *l = row;
    l->type_nid = db_column_int64(st, 0);
    l->state_key_nid = db_column_int64(st, 1);
    l->event_nid = db_column_int64(st, 2);
}

int store_snapshot_get(struct store_conn *c, struct arena *arena, int64_t snapshot_nid,
                       int64_t *parent_nid, int64_t *state_size,
                       struct store_layer_entry **entries, size_t *n)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT COALESCE(parent_nid, 0), state_size FROM state_snapshots "
                          "WHERE snapshot_nid = ?",
                          "i", snapshot_nid);
    if (rc < 0) {
        return rc;
    }
    rc = store__step_one(st);
    if (rc == 0) {
        *parent_nid = db_column_int64(st, 0);
        *state_size = db_column_int64(st, 1);
    }
    db_finalize(st);
    if (rc < 0) {
        return rc;
    }
    rc = store__query(c, &st,
                      "SELECT type_nid, state_key_nid, COALESCE(event_nid, 0) FROM state_layers "
                      "WHERE snapshot_nid = ?",
                      "i", snapshot_nid);
    if (rc < 0) {
        return rc;
    }
    return store__collect(st, arena, sizeof(**entries), layer_row, entries, n);
}

/* ---- current state and extremities ---- */

int store_current_state_put(struct store_conn *c, int64_t room_nid, int64_t type_nid,
                            int64_t state_key_nid, int64_t event_nid, const char *membership)
{
    return store__ok(store__exec(c,
                                 "INSERT INTO room_current_state (room_nid, type_nid, "
                                 "state_key_nid, event_nid, membership) VALUES (?, ?, ?, ?, ?) "
                                 "ON CONFLICT (room_nid, type_nid, state_key_nid) DO UPDATE SET "
                                 "event_nid = excluded.event_nid, membership = excluded.membership",
                                 "iiiit", room_nid, type_nid, state_key_nid, event_nid,
                                 membership));
}

static void state_row(struct db_stmt *st, struct arena *arena, void *row)
{
    struct store_state_row *s = row;
    s->type = store__col_str(st, 0, arena);
    s->state_key = store__col_str(st, 1, arena);
    s->type_nid = db_column_int64(st, 2);
    s->state_key_nid = db_column_int64(st, 3);
    s->event_nid = db_column_int64(st, 4);
    s->event_id = store__col_str(st, 5, arena);
    s->json = store__col_str(st, 6, arena);
}

int store_current_state_load(struct store_conn *c, struct arena *arena, int64_t room_nid,
                             struct store_state_row **rows, size_t *n)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT t.type, k.state_key, s.type_nid, s.state_key_nid, s.event_nid, "
                          "e.event_id, e.json FROM room_current_state s "
                          "JOIN event_types t ON t.type_nid = s.type_nid "
                          "JOIN state_keys k ON k.state_key_nid = s.state_key_nid "
                          "JOIN events e ON e.event_nid = s.event_nid WHERE s.room_nid = ?",
                          "i", room_nid);
    if (rc < 0) {
        return rc;
    }
    return store__collect(st, arena, sizeof(**rows), state_row, rows, n);
}

static void ext_row(struct db_stmt *st, struct arena *arena, void *row)
{
    struct store_ext_row *x = row;
    x->event_nid = db_column_int64(st, 0);
    x->event_id = store__col_str(st, 1, arena);
    x->depth = db_column_int64(st, 2);
}

int store_extremities_load(struct store_conn *c, struct arena *arena, int64_t room_nid,
                           struct store_ext_row **rows, size_t *n)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT e.event_nid, e.event_id, e.depth FROM forward_extremities f "
                          "JOIN events e ON e.event_nid = f.event_nid WHERE f.room_nid = ? "
                          "ORDER BY e.depth DESC, e.event_nid DESC",
                          "i", room_nid);
    if (rc < 0) {
        return rc;
    }
    return store__collect(st, arena, sizeof(**rows), ext_row, rows, n);
}

/* ---- reading events ---- */

int store_event_get(struct store_conn *c, struct arena *arena, const char *event_id,
                    struct store_event *out)
{
    struct db_stmt *st;
    int rc = store__query(c, &st, "SELECT " STORE__EVENT_COLS " FROM events e WHERE event_id = ?",
                          "t", event_id);
    if (rc < 0) {
        return rc;
    }
    rc = store__step_one(st);
    if (rc == 0) {
        store__read_event(st, arena, out);
    }
    db_finalize(st);
    return rc;
}

int store_room_events(struct store_conn *c, struct arena *arena, int64_t room_nid, int64_t from,
                      bool backwards, int limit, struct store_event **out, size_t *n)
{
    struct db_stmt *st;
    int rc = store__query(
        c, &st,
        backwards ? "SELECT " STORE__EVENT_COLS " FROM events e WHERE room_nid = ? AND "
                    "stream_ordering < ? AND rejected = 0 ORDER BY stream_ordering DESC LIMIT ?"
                  : "SELECT " STORE__EVENT_COLS " FROM events e WHERE room_nid = ? AND "
                    "stream_ordering > ? AND rejected = 0 ORDER BY stream_ordering ASC LIMIT ?",
        "iii", room_nid, from, (int64_t)limit);
    if (rc < 0) {
        return rc;
    }
    return store__collect(st, arena, sizeof(**out), store__event_row, out, n);
}

/* ---- state at a snapshot (history visibility, state of past members) ---- */

/*
 * The snapshot's chain, nearest layer first: `lvl` 0 is the snapshot's own
 * layer, 1 its parent's, and so on up to the base snapshot.
 */
#define SNAPSHOT_CHAIN                                                                         \
    "WITH RECURSIVE chain(snapshot_nid, lvl) AS ("                                             \
    "SELECT snapshot_nid, 0 FROM state_snapshots WHERE snapshot_nid = ? "                      \
    "UNION ALL SELECT s.parent_nid, chain.lvl + 1 FROM chain "                                 \
    "JOIN state_snapshots s ON s.snapshot_nid = chain.snapshot_nid "                           \
    "WHERE s.parent_nid IS NOT NULL) "

int store_snapshot_lookup(struct store_conn *c, struct arena *arena, int64_t snapshot_nid,
                          int64_t type_nid, int64_t state_key_nid, struct store_event *out)
{
    *out = (struct store_event){0};
    if (!snapshot_nid) {
        return 0;
    }
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          SNAPSHOT_CHAIN "SELECT " STORE__EVENT_COLS " FROM chain "
                                         "JOIN state_layers l ON l.snapshot_nid = chain.snapshot_nid "
                                         "AND l.type_nid = ? AND l.state_key_nid = ? "
                                         "LEFT JOIN events e ON e.event_nid = l.event_nid "
                                         "ORDER BY chain.lvl LIMIT 1",
                          "iii", snapshot_nid, type_nid, state_key_nid);
    if (rc < 0) {
        return rc;
    }
    rc = store__step_one(st);
    if (rc == 0) {
        /* A NULL event_nid in the nearest layer removes the key. */
        store__read_event(st, arena, out);
    }
    db_finalize(st);
    return rc == -ERR_NOT_FOUND ? 0 : rc;
}

int store_snapshot_state(struct store_conn *c, struct arena *arena, int64_t snapshot_nid,
                         struct store_state_row **rows, size_t *n)
{
    *rows = NULL;
    *n = 0;
    if (!snapshot_nid) {
        return 0;
    }
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          SNAPSHOT_CHAIN "SELECT t.type, k.state_key, l.type_nid, l.state_key_nid, "
                                         "COALESCE(l.event_nid, 0), e.event_id, e.json FROM chain "
                                         "JOIN state_layers l ON l.snapshot_nid = chain.snapshot_nid "
                                         "JOIN event_types t ON t.type_nid = l.type_nid "
                                         "JOIN state_keys k ON k.state_key_nid = l.state_key_nid "
                                         "LEFT JOIN events e ON e.event_nid = l.event_nid "
                                         "ORDER BY chain.lvl",
                          "i", snapshot_nid);
    if (rc < 0) {
        return rc;
    }
    struct store_state_row *all = NULL;
    size_t n_all = 0;
    rc = store__collect(st, arena, sizeof(*all), state_row, &all, &n_all);
    if (rc < 0) {
        return rc;
    }
    /* The nearest layer decides each key; a removal (event 0) drops it. */
    struct map seen;
    map_init(&seen);
    size_t k = 0;
    for (size_t i = 0; i < n_all; i++) {
        int64_t *key = arena_alloc(arena, 2 * sizeof(int64_t));
        key[0] = all[i].type_nid;
        key[1] = all[i].state_key_nid;
        struct str ks = {(const char *)key, 2 * sizeof(int64_t)};
        if (map_has(&seen, ks)) {
            continue;
        }
        map_put(&seen, ks, &all[i]);
        if (all[i].event_nid && all[i].json) {
            all[k++] = all[i];
        }
    }
    map_release(&seen);
    *rows = all;
    *n = k;
    return 0;
}

int store_event_at_stream(struct store_conn *c, struct arena *arena, int64_t room_nid,
                          int64_t pos, struct store_event *out)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT " STORE__EVENT_COLS " FROM events e WHERE room_nid = ? AND "
                          "stream_ordering <= ? AND rejected = 0 "
                          "ORDER BY stream_ordering DESC LIMIT 1",
                          "ii", room_nid, pos);
    if (rc < 0) {
        return rc;
    }
    rc = store__step_one(st);
    if (rc == 0) {
        store__read_event(st, arena, out);
    }
    db_finalize(st);
    return rc;
}

int store_event_set_redacted(struct store_conn *c, const char *event_id, const char *json,
                             const char *redacted_by)
{
    return store__changed_one(store__exec(
        c, "UPDATE events SET json = ?, redacted_by = ? WHERE event_id = ?", "ttt", json,
        redacted_by, event_id));
}

int store_relation_add(struct store_conn *c, int64_t event_nid, int64_t room_nid,
                       const char *relates_to, const char *rel_type, const char *event_type,
                       const char *sender, const char *key)
{
    return store__ok(store__exec(c,
                                 "INSERT INTO event_relations (event_nid, room_nid, relates_to, "
                                 "rel_type, event_type, sender, key) VALUES (?, ?, ?, ?, ?, ?, ?) "
                                 "ON CONFLICT DO NOTHING",
                                 "iitttt" "t", event_nid, room_nid, relates_to, rel_type,
                                 event_type, sender, key));
}

/* ---- transaction IDs ---- */

int store_txn_get(struct store_conn *c, struct arena *arena, const char *user_id,
                  const char *device_id, const char *txn_id, char **event_id)
{
    return store__get_str(c, arena, event_id,
                          "SELECT event_id FROM event_txns WHERE user_id = ? AND device_id = ? "
                          "AND txn_id = ?",
                          "ttt", user_id, device_id, txn_id);
}

int store_txn_put(struct store_conn *c, const char *user_id, const char *device_id,
                  const char *txn_id, const char *event_id, int64_t ts)
{
    return store__ok(store__exec(c,
                                 "INSERT INTO event_txns (user_id, device_id, txn_id, event_id, "
                                 "created_ts) VALUES (?, ?, ?, ?, ?)",
                                 "tttti", user_id, device_id, txn_id, event_id, ts));
}

/* ---- membership ---- */

int store_user_rooms(struct store_conn *c, struct arena *arena, const char *user_id,
                     const char *membership, char ***room_ids, size_t *n)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT r.room_id FROM state_keys k "
                          "JOIN room_current_state s ON s.state_key_nid = k.state_key_nid "
                          "JOIN rooms r ON r.room_nid = s.room_nid "
                          "WHERE k.state_key = ? AND s.membership = ? ORDER BY r.room_nid",
                          "tt", user_id, membership);
    if (rc < 0) {
        return rc;
    }
    return store__collect(st, arena, sizeof(**room_ids), store__str_row, room_ids, n);
}

/* ---- aliases ---- */

int store_alias_add(struct store_conn *c, const char *alias, const char *room_id,
                    const char *creator)
{
    return store__ok(store__exec(c,
                                 "INSERT INTO room_aliases (alias, room_id, creator) VALUES (?, ?, ?)",
                                 "ttt", alias, room_id, creator));
}

int store_alias_get(struct store_conn *c, struct arena *arena, const char *alias, char **room_id,
                    char **creator)
{
    struct db_stmt *st;
    int rc = store__query(c, &st, "SELECT room_id, creator FROM room_aliases WHERE alias = ?",
                          "t", alias);
    if (rc < 0) {
        return rc;
    }
    rc = store__step_one(st);
    if (rc == 0) {
        *room_id = store__col_str(st, 0, arena);
        if (creator) {
            *creator = store__col_str(st, 1, arena);
        }
    }
    db_finalize(st);
    return rc;
}

int store_alias_delete(struct store_conn *c, const char *alias)
{
    return store__changed_one(
        store__exec(c, "DELETE FROM room_aliases WHERE alias = ?", "t", alias));
}

int store_aliases_of_room(struct store_conn *c, struct arena *arena, const char *room_id,
                          char ***aliases, size_t *n)
{
    struct db_stmt *st;
    int rc = store__query(c, &st, "SELECT alias FROM room_aliases WHERE room_id = ? ORDER BY alias",
                          "t", room_id);
    if (rc < 0) {
        return rc;
    }
    return store__collect(st, arena, sizeof(**aliases), store__str_row, aliases, n);
}
