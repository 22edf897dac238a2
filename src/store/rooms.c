/*
 * Room and event queries (schema 003_rooms): interning, events and their
 * graph, state snapshots as layers, current state, forward extremities,
 * transaction IDs. The layering policy itself lives in svc/room.c; this
 * file only reads and writes rows.
 */
#include <stdint.h>
#include <string.h>

#include "base/err.h"
#include "store/store_int.h"

static int ok_or_err(int rc)
{
    if (rc == DB_UNIQUE) {
        return -ERR_CONFLICT;
    }
    return rc < 0 ? rc : 0;
}

static int step_one(struct db_stmt *st)
{
    int rc = db_step(st);
    if (rc == DB_ROW) {
        return 0;
    }
    return rc == DB_DONE ? -ERR_NOT_FOUND : rc;
}

/* Grows an arena array by doubling; returns the (possibly new) array. */
static void *grow(struct arena *a, void *arr, size_t elem, size_t count, size_t *cap)
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

/* ---- sequences ---- */

static int max_of(struct store_conn *c, const char *sql, int64_t *out)
{
    struct db_stmt *st;
    int rc = store__query(c, &st, sql, "");
    if (rc < 0) {
        return rc;
    }
    rc = step_one(st);
    *out = rc == 0 ? db_column_int64(st, 0) : 0;
    db_finalize(st);
    return rc == -ERR_NOT_FOUND ? 0 : rc;
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
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          kind == STORE_INTERN_TYPE
                              ? "SELECT type_nid FROM event_types WHERE type = ?"
                              : "SELECT state_key_nid FROM state_keys WHERE state_key = ?",
                          "t", s);
    if (rc < 0) {
        return rc;
    }
    rc = step_one(st);
    if (rc == 0) {
        *nid = db_column_int64(st, 0);
    }
    db_finalize(st);
    return rc;
}

int store_intern_add(struct store_conn *c, enum store_intern kind, int64_t nid, const char *s)
{
    return ok_or_err(store__exec(c,
                                 kind == STORE_INTERN_TYPE
                                     ? "INSERT INTO event_types (type_nid, type) VALUES (?, ?)"
                                     : "INSERT INTO state_keys (state_key_nid, state_key) "
                                       "VALUES (?, ?)",
                                 "it", nid, s));
}

/* ---- rooms ---- */

int store_room_insert(struct store_conn *c, const struct store_room *room)
{
    return ok_or_err(store__exec(c,
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
    rc = step_one(st);
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
    return ok_or_err(store__exec(c, "UPDATE rooms SET published = ? WHERE room_nid = ?", "bi",
                                 (int)published, room_nid));
}

int store_room_head_get(struct store_conn *c, int64_t room_nid, int64_t *snapshot_nid)
{
    struct db_stmt *st;
    int rc = store__query(c, &st, "SELECT snapshot_nid FROM room_heads WHERE room_nid = ?", "i",
                          room_nid);
    if (rc < 0) {
        return rc;
    }
    rc = step_one(st);
    *snapshot_nid = rc == 0 ? db_column_int64(st, 0) : 0;
    db_finalize(st);
    return rc == -ERR_NOT_FOUND ? 0 : rc;
}

int store_room_head_set(struct store_conn *c, int64_t room_nid, int64_t snapshot_nid)
{
    return ok_or_err(store__exec(c,
                                 "INSERT INTO room_heads (room_nid, snapshot_nid) VALUES (?, ?) "
                                 "ON CONFLICT (room_nid) DO UPDATE SET "
                                 "snapshot_nid = excluded.snapshot_nid",
                                 "ii", room_nid, snapshot_nid));
}

/* ---- events and the graph ---- */

int store_event_insert(struct store_conn *c, const struct store_event_row *ev)
{
    /* NULLIF turns the 0 "none" markers into NULLs with one statement. */
    return ok_or_err(store__exec(
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
        int rc = ok_or_err(store__exec(c,
                                       "INSERT INTO event_edges (event_nid, prev_nid) VALUES (?, ?) "
                                       "ON CONFLICT DO NOTHING",
                                       "ii", event_nid, prev[i]));
        if (rc < 0) {
            return rc;
        }
    }
    for (size_t i = 0; i < n_auth; i++) {
        int rc = ok_or_err(store__exec(c,
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
        int rc = ok_or_err(store__exec(
            c, "DELETE FROM forward_extremities WHERE room_nid = ? AND event_nid = ?", "ii",
            room_nid, remove[i]));
        if (rc < 0) {
            return rc;
        }
    }
    return ok_or_err(store__exec(c,
                                 "INSERT INTO forward_extremities (room_nid, event_nid) "
                                 "VALUES (?, ?) ON CONFLICT DO NOTHING",
                                 "ii", room_nid, add));
}

/* ---- state snapshots ---- */

int store_snapshot_insert(struct store_conn *c, int64_t snapshot_nid, int64_t room_nid,
                          int64_t parent_nid, int64_t state_size,
                          const struct store_layer_entry *entries, size_t n)
{
    int rc = ok_or_err(store__exec(c,
                                   "INSERT INTO state_snapshots (snapshot_nid, room_nid, "
                                   "parent_nid, layer_size, state_size) "
                                   "VALUES (?, ?, NULLIF(?, 0), ?, ?)",
                                   "iiiii", snapshot_nid, room_nid, parent_nid, (int64_t)n,
                                   state_size));
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = ok_or_err(store__exec(c,
                                   "INSERT INTO state_layers (snapshot_nid, type_nid, "
                                   "state_key_nid, event_nid) VALUES (?, ?, ?, NULLIF(?, 0))",
                                   "iiii", snapshot_nid, entries[i].type_nid,
                                   entries[i].state_key_nid, entries[i].event_nid));
    }
    return rc;
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
    rc = step_one(st);
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
    size_t cap = 0, count = 0;
    struct store_layer_entry *list = NULL;
    while ((rc = db_step(st)) == DB_ROW) {
        list = grow(arena, list, sizeof(*list), count, &cap);
        list[count].type_nid = db_column_int64(st, 0);
        list[count].state_key_nid = db_column_int64(st, 1);
        list[count].event_nid = db_column_int64(st, 2);
        count++;
    }
    db_finalize(st);
    if (rc < 0) {
        return rc;
    }
    *entries = list;
    *n = count;
    return 0;
}

/* ---- current state and extremities ---- */

int store_current_state_put(struct store_conn *c, int64_t room_nid, int64_t type_nid,
                            int64_t state_key_nid, int64_t event_nid, const char *membership)
{
    return ok_or_err(store__exec(c,
                                 "INSERT INTO room_current_state (room_nid, type_nid, "
                                 "state_key_nid, event_nid, membership) VALUES (?, ?, ?, ?, ?) "
                                 "ON CONFLICT (room_nid, type_nid, state_key_nid) DO UPDATE SET "
                                 "event_nid = excluded.event_nid, membership = excluded.membership",
                                 "iiiit", room_nid, type_nid, state_key_nid, event_nid,
                                 membership));
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
    size_t cap = 0, count = 0;
    struct store_state_row *list = NULL;
    while ((rc = db_step(st)) == DB_ROW) {
        list = grow(arena, list, sizeof(*list), count, &cap);
        struct store_state_row *row = &list[count++];
        row->type = store__col_str(st, 0, arena);
        row->state_key = store__col_str(st, 1, arena);
        row->type_nid = db_column_int64(st, 2);
        row->state_key_nid = db_column_int64(st, 3);
        row->event_nid = db_column_int64(st, 4);
        row->event_id = store__col_str(st, 5, arena);
        row->json = store__col_str(st, 6, arena);
    }
    db_finalize(st);
    if (rc < 0) {
        return rc;
    }
    *rows = list;
    *n = count;
    return 0;
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
    size_t cap = 0, count = 0;
    struct store_ext_row *list = NULL;
    while ((rc = db_step(st)) == DB_ROW) {
        list = grow(arena, list, sizeof(*list), count, &cap);
        list[count].event_nid = db_column_int64(st, 0);
        list[count].event_id = store__col_str(st, 1, arena);
        list[count].depth = db_column_int64(st, 2);
        count++;
    }
    db_finalize(st);
    if (rc < 0) {
        return rc;
    }
    *rows = list;
    *n = count;
    return 0;
}

/* ---- reading events ---- */

#define EVENT_COLS                                                                             \
    "event_nid, event_id, room_nid, COALESCE(stream_ordering, 0), depth, "                     \
    "COALESCE(state_before_nid, 0), rejected, redacted_by, json"

static void read_event(struct db_stmt *st, struct arena *arena, struct store_event *e)
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

int store_event_get(struct store_conn *c, struct arena *arena, const char *event_id,
                    struct store_event *out)
{
    struct db_stmt *st;
    int rc = store__query(c, &st, "SELECT " EVENT_COLS " FROM events WHERE event_id = ?", "t",
                          event_id);
    if (rc < 0) {
        return rc;
    }
    rc = step_one(st);
    if (rc == 0) {
        read_event(st, arena, out);
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
        backwards ? "SELECT " EVENT_COLS " FROM events WHERE room_nid = ? AND "
                    "stream_ordering < ? AND rejected = 0 ORDER BY stream_ordering DESC LIMIT ?"
                  : "SELECT " EVENT_COLS " FROM events WHERE room_nid = ? AND "
                    "stream_ordering > ? AND rejected = 0 ORDER BY stream_ordering ASC LIMIT ?",
        "iii", room_nid, from, (int64_t)limit);
    if (rc < 0) {
        return rc;
    }
    size_t cap = 0, count = 0;
    struct store_event *list = NULL;
    while ((rc = db_step(st)) == DB_ROW) {
        list = grow(arena, list, sizeof(*list), count, &cap);
        read_event(st, arena, &list[count++]);
    }
    db_finalize(st);
    if (rc < 0) {
        return rc;
    }
    *out = list;
    *n = count;
    return 0;
}

int store_event_set_redacted(struct store_conn *c, const char *event_id, const char *json,
                             const char *redacted_by)
{
    int rc = store__exec(c, "UPDATE events SET json = ?, redacted_by = ? WHERE event_id = ?",
                         "ttt", json, redacted_by, event_id);
    if (rc < 0) {
        return rc;
    }
    return rc == 0 ? -ERR_NOT_FOUND : 0;
}

int store_relation_add(struct store_conn *c, int64_t event_nid, int64_t room_nid,
                       const char *relates_to, const char *rel_type, const char *event_type,
                       const char *sender, const char *key)
{
    return ok_or_err(store__exec(c,
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
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT event_id FROM event_txns WHERE user_id = ? AND device_id = ? "
                          "AND txn_id = ?",
                          "ttt", user_id, device_id, txn_id);
    if (rc < 0) {
        return rc;
    }
    rc = step_one(st);
    if (rc == 0) {
        *event_id = store__col_str(st, 0, arena);
    }
    db_finalize(st);
    return rc;
}

int store_txn_put(struct store_conn *c, const char *user_id, const char *device_id,
                  const char *txn_id, const char *event_id, int64_t ts)
{
    return ok_or_err(store__exec(c,
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
    size_t cap = 0, count = 0;
    char **list = NULL;
    while ((rc = db_step(st)) == DB_ROW) {
        list = grow(arena, list, sizeof(*list), count, &cap);
        list[count++] = store__col_str(st, 0, arena);
    }
    db_finalize(st);
    if (rc < 0) {
        return rc;
    }
    *room_ids = list;
    *n = count;
    return 0;
}

/* ---- aliases ---- */

int store_alias_add(struct store_conn *c, const char *alias, const char *room_id,
                    const char *creator)
{
    return ok_or_err(store__exec(c,
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
    rc = step_one(st);
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
    int rc = store__exec(c, "DELETE FROM room_aliases WHERE alias = ?", "t", alias);
    if (rc < 0) {
        return rc;
    }
    return rc == 0 ? -ERR_NOT_FOUND : 0;
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
    size_t cap = 0, count = 0;
    char **list = NULL;
    while ((rc = db_step(st)) == DB_ROW) {
        list = grow(arena, list, sizeof(*list), count, &cap);
        list[count++] = store__col_str(st, 0, arena);
    }
    db_finalize(st);
    if (rc < 0) {
        return rc;
    }
    *aliases = list;
    *n = count;
    return 0;
}
