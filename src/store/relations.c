/*
 * Queries over the relations index (schema 005_relations, spec "Forming
 * relationships between events"): the child events of a parent for
 * GET /relations, the children that bundled aggregations summarise
 * (edits, references, thread summaries) for a page of parents, and the
 * thread roots of a room by latest activity for GET /threads.
 *
 * A relation counts only while its child is neither rejected nor redacted
 * (redaction prunes m.relates_to, which breaks the relationship; the row
 * stays so the index never needs rewriting) and while parent and child
 * share a room. Pages of parents are bound as IN lists of fixed sizes
 * (1, 16 or 64 placeholders, padded by repeating an ID), so the statement
 * cache, keyed by SQL text, holds three variants of each query.
 *
 * Also the `threads` table (schema 011): one row per thread with its
 * latest live child, kept by the event writer as replies are stored and
 * redacted, which GET /threads pages through; and the lookups behind the
 * send-side checks of relations (duplicate annotations, unknown parents).
 */
#include <stdint.h>
#include <string.h>

#include "store/store_int.h"

/* ---- IN lists ---- */

#define IN1 "?"
#define IN2 IN1 "," IN1
#define IN4 IN2 "," IN2
#define IN8 IN4 "," IN4
#define IN16 IN8 "," IN8
#define IN32 IN16 "," IN16
#define IN64 IN32 "," IN32

/* The three sizes of parent lists; the variant index picks the SQL text. */
static const size_t in_sizes[] = {1, 16, 64};
#define IN_MAX 64

/* The variant that holds min(n, IN_MAX) IDs. */
static int in_variant(size_t n)
{
    return n <= 1 ? 0 : n <= 16 ? 1 : 2;
}

/*
 * Binds ids[0..take) to placeholders first..first+in_sizes[v]-1, repeating
 * the last ID to fill the list (duplicates in IN change nothing).
 */
static int bind_ids(struct db_stmt *st, int first, int v, const char *const *ids, size_t take)
{
    int rc = 0;
    for (size_t i = 0; i < in_sizes[v] && rc == 0; i++) {
        rc = db_bind_cstr(st, first + (int)i, ids[i < take ? i : take - 1]);
    }
    return rc;
}

static int bind_i64(struct db_stmt *st, int idx, int64_t v) { return db_bind_int64(st, idx, v); }

static int bind_opt(struct db_stmt *st, int idx, const char *s)
{
    return s ? db_bind_cstr(st, idx, s) : db_bind_null(st, idx);
}

/* ---- GET /relations ---- */

/*
 * The children of one parent, followed through at most `max_depth` levels.
 * Filters apply at every level, so a matching event reached only through a
 * non-matching one is left out (spec "Relationships API"). The depth bound
 * ends the walk even when relations form a cycle.
 */
#define RELATIONS_CTE                                                                          \
    "WITH RECURSIVE rel(event_nid, event_id, depth) AS ("                                      \
    "SELECT r.event_nid, c.event_id, 1 FROM event_relations r "                                \
    "JOIN events c ON c.event_nid = r.event_nid "                                              \
    "WHERE r.relates_to = ? AND r.room_nid = ? AND c.redacted_by IS NULL AND c.rejected = 0 "  \
    "AND (CAST(? AS TEXT) IS NULL OR r.rel_type = ?) "                                         \
    "AND (CAST(? AS TEXT) IS NULL OR r.event_type = ?) "                                       \
    "UNION "                                                                                   \
    "SELECT r.event_nid, c.event_id, rel.depth + 1 FROM rel "                                  \
    "JOIN event_relations r ON r.relates_to = rel.event_id "                                   \
    "JOIN events c ON c.event_nid = r.event_nid "                                              \
    "WHERE rel.depth < ? AND r.room_nid = ? AND c.redacted_by IS NULL AND c.rejected = 0 "     \
    "AND (CAST(? AS TEXT) IS NULL OR r.rel_type = ?) "                                         \
    "AND (CAST(? AS TEXT) IS NULL OR r.event_type = ?)) "                                      \
    "SELECT " STORE__EVENT_COLS " FROM events e "                                              \
    "WHERE e.event_nid IN (SELECT event_nid FROM rel) AND e.stream_ordering IS NOT NULL "

int store_relations_page(struct store_conn *c, struct arena *arena,
                         const struct store_relations_query *q, struct store_event **out,
                         size_t *n)
{
    static const char *const sql_b =
        RELATIONS_CTE "AND e.stream_ordering < ? ORDER BY e.stream_ordering DESC LIMIT ?";
    static const char *const sql_f =
        RELATIONS_CTE "AND e.stream_ordering > ? ORDER BY e.stream_ordering ASC LIMIT ?";
    struct db_stmt *st;
    int rc = store__query(c, &st, q->backwards ? sql_b : sql_f, "tittttiittttii", q->parent_id,
                          q->room_nid, q->rel_type, q->rel_type, q->event_type, q->event_type,
                          (int64_t)q->max_depth, q->room_nid, q->rel_type, q->rel_type,
                          q->event_type, q->event_type, q->from, (int64_t)q->limit);
    if (rc < 0) {
        return rc;
    }
    return store__collect(st, arena, sizeof(**out), store__event_row, out, n);
}

/* ---- bundled aggregations ---- */

/* Edits and references of the listed parents, children in the parent's
 * room only; the JSON is read for edits alone (the aggregation serves the
 * winning edit whole, references only by ID). */
#define CHILDREN_SQL(IN)                                                                       \
    "SELECT r.relates_to, r.rel_type, c.event_id, c.sender, r.event_type, "                    \
    "c.origin_server_ts, CASE WHEN r.rel_type = 'm.replace' THEN c.json END "                  \
    "FROM event_relations r JOIN events c ON c.event_nid = r.event_nid "                       \
    "JOIN events p ON p.event_id = r.relates_to AND p.room_nid = r.room_nid "                  \
    "WHERE r.relates_to IN (" IN ") AND r.rel_type IN ('m.replace', 'm.reference') "           \
    "AND c.redacted_by IS NULL AND c.rejected = 0 ORDER BY c.stream_ordering"

int store_relation_children(struct store_conn *c, struct arena *arena,
                            const char *const *parents, size_t n_parents,
                            struct store_relation_child **out, size_t *n)
{
    static const char *const sql[] = {CHILDREN_SQL(IN1), CHILDREN_SQL(IN16),
                                      CHILDREN_SQL(IN64)};
    size_t cap = 0, count = 0;
    struct store_relation_child *list = NULL;
    for (size_t done = 0; done < n_parents;) {
        size_t take = n_parents - done < IN_MAX ? n_parents - done : IN_MAX;
        int v = in_variant(take);
        struct db_stmt *st;
        int rc = db_prepare(c->db, sql[v], &st);
        if (rc < 0) {
            return rc;
        }
        rc = bind_ids(st, 1, v, parents + done, take);
        while (rc == 0 && (rc = db_step(st)) == DB_ROW) {
            list = store__grow(arena, list, sizeof(*list), count, &cap);
            struct store_relation_child *ch = &list[count++];
            ch->parent_id = store__col_str(st, 0, arena);
            ch->rel_type = store__col_str(st, 1, arena);
            ch->event_id = store__col_str(st, 2, arena);
            ch->sender = store__col_str(st, 3, arena);
            ch->event_type = store__col_str(st, 4, arena);
            ch->origin_server_ts = db_column_int64(st, 5);
            ch->json = store__col_str(st, 6, arena);
            rc = 0;
        }
        db_finalize(st);
        if (rc < 0) {
            return rc;
        }
        done += take;
    }
    *out = list;
    *n = count;
    return 0;
}

/* Per thread root: the m.thread children, the latest of them by stream
 * ordering, and whether `user_id` sent one. */
#define THREADS_SQL(IN)                                                                        \
    "SELECT r.relates_to, COUNT(*), MAX(c.stream_ordering), "                                  \
    "MAX(CASE WHEN r.sender = ? THEN 1 ELSE 0 END) "                                           \
    "FROM event_relations r JOIN events c ON c.event_nid = r.event_nid "                       \
    "JOIN events p ON p.event_id = r.relates_to AND p.room_nid = r.room_nid "                  \
    "WHERE r.relates_to IN (" IN ") AND r.rel_type = 'm.thread' "                              \
    "AND c.redacted_by IS NULL AND c.rejected = 0 AND c.stream_ordering IS NOT NULL "          \
    "GROUP BY r.relates_to"

/* Events of a room by stream ordering (the latest event of each thread). */
#define BY_STREAM_SQL(IN)                                                                      \
    "SELECT " STORE__EVENT_COLS " FROM events e WHERE e.stream_ordering IN (" IN ")"

/* Reads the latest events of summaries[0..n) into their `latest` field. */
static int thread_latest(struct store_conn *c, struct arena *arena, struct store_thread *ts,
                         size_t n)
{
    static const char *const sql[] = {BY_STREAM_SQL(IN1), BY_STREAM_SQL(IN16),
                                      BY_STREAM_SQL(IN64)};
    for (size_t done = 0; done < n;) {
        size_t take = n - done < IN_MAX ? n - done : IN_MAX;
        int v = in_variant(take);
        struct db_stmt *st;
        int rc = db_prepare(c->db, sql[v], &st);
        if (rc < 0) {
            return rc;
        }
        for (size_t i = 0; i < in_sizes[v] && rc == 0; i++) {
            rc = bind_i64(st, 1 + (int)i, ts[done + (i < take ? i : take - 1)].latest_stream);
        }
        while (rc == 0 && (rc = db_step(st)) == DB_ROW) {
            struct store_event e;
            store__read_event(st, arena, &e);
            for (size_t i = done; i < done + take; i++) {
                if (ts[i].latest_stream == e.stream_ordering) {
                    ts[i].latest = e;
                }
            }
            rc = 0;
        }
        db_finalize(st);
        if (rc < 0) {
            return rc;
        }
        done += take;
    }
    return 0;
}

int store_thread_summaries(struct store_conn *c, struct arena *arena, const char *user_id,
                           const char *const *roots, size_t n_roots, struct store_thread **out,
                           size_t *n)
{
    static const char *const sql[] = {THREADS_SQL(IN1), THREADS_SQL(IN16), THREADS_SQL(IN64)};
    size_t cap = 0, count = 0;
    struct store_thread *list = NULL;
    for (size_t done = 0; done < n_roots;) {
        size_t take = n_roots - done < IN_MAX ? n_roots - done : IN_MAX;
        int v = in_variant(take);
        struct db_stmt *st;
        int rc = db_prepare(c->db, sql[v], &st);
        if (rc < 0) {
            return rc;
        }
        rc = bind_opt(st, 1, user_id);
        if (rc == 0) {
            rc = bind_ids(st, 2, v, roots + done, take);
        }
        while (rc == 0 && (rc = db_step(st)) == DB_ROW) {
            list = store__grow(arena, list, sizeof(*list), count, &cap);
            struct store_thread *t = &list[count++];
            memset(t, 0, sizeof(*t));
            t->root_id = store__col_str(st, 0, arena);
            t->count = db_column_int64(st, 1);
            t->latest_stream = db_column_int64(st, 2);
            t->participated = db_column_int64(st, 3) != 0;
            rc = 0;
        }
        db_finalize(st);
        if (rc < 0) {
            return rc;
        }
        done += take;
    }
    int rc = thread_latest(c, arena, list, count);
    if (rc < 0) {
        return rc;
    }
    *out = list;
    *n = count;
    return 0;
}

/* ---- GET /threads ---- */

static void thread_root_row(struct db_stmt *st, struct arena *arena, void *row)
{
    struct store_thread_root *t = row;
    store__read_event(st, arena, &t->root);
    t->latest_stream = db_column_int64(st, STORE__EVENT_NCOLS);
}

int store_threads_list(struct store_conn *c, struct arena *arena, int64_t room_nid,
                       const char *participant, int64_t before, int limit,
                       struct store_thread_root **out, size_t *n)
{
    /* Thread roots ordered by their latest (unredacted) m.thread child,
     * read backwards along threads_activity (schema 011), so a page costs
     * its own rows whatever the room's size. Each child belongs to one
     * thread, so latest stream orderings are distinct and make a stable
     * paging key. Participation (spec "Server-side aggregation of
     * m.thread relationships") is having sent the root or a live threaded
     * reply, one probe of event_relations_sender per candidate. */
    struct db_stmt *st;
    int rc = store__query(
        c, &st,
        "SELECT " STORE__EVENT_COLS ", t.latest_stream FROM threads t "
        "JOIN events e ON e.event_id = t.root_id AND e.room_nid = t.room_nid "
        "WHERE t.room_nid = ? AND t.latest_stream < ? AND e.rejected = 0 "
        "AND e.stream_ordering IS NOT NULL "
        "AND (CAST(? AS TEXT) IS NULL OR e.sender = ? OR EXISTS ("
        "SELECT 1 FROM event_relations r JOIN events c ON c.event_nid = r.event_nid "
        "WHERE r.relates_to = t.root_id AND r.rel_type = 'm.thread' AND r.sender = ? "
        "AND r.room_nid = t.room_nid AND c.redacted_by IS NULL AND c.rejected = 0)) "
        "ORDER BY t.latest_stream DESC LIMIT ?",
        "iittti", room_nid, before, participant, participant, participant, (int64_t)limit);
    if (rc < 0) {
        return rc;
    }
    return store__collect(st, arena, sizeof(**out), thread_root_row, out, n);
}

/* ---- keeping the threads table (written by the event writer) ---- */

int store_thread_touch(struct store_conn *c, int64_t room_nid, const char *root_id,
                       int64_t stream)
{
    return store__ok(store__exec(
        c,
        "INSERT INTO threads (room_nid, root_id, latest_stream) VALUES (?, ?, ?) "
        "ON CONFLICT (room_nid, root_id) DO UPDATE SET latest_stream = CASE "
        "WHEN excluded.latest_stream > threads.latest_stream THEN excluded.latest_stream "
        "ELSE threads.latest_stream END",
        "iti", room_nid, root_id, stream));
}

int store_thread_child_redacted(struct store_conn *c, struct arena *arena, int64_t event_nid)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT relates_to, room_nid FROM event_relations WHERE event_nid = ? "
                          "AND rel_type = 'm.thread'",
                          "i", event_nid);
    if (rc < 0) {
        return rc;
    }
    char *root = NULL;
    int64_t room_nid = 0;
    rc = store__step_one(st);
    if (rc == 0) {
        root = store__col_str(st, 0, arena);
        room_nid = db_column_int64(st, 1);
    }
    db_finalize(st);
    if (rc == -ERR_NOT_FOUND) {
        return 0; /* not a threaded reply */
    }
    if (rc == 0) {
        rc = store__ok(store__exec(c, "DELETE FROM threads WHERE room_nid = ? AND root_id = ?",
                                   "it", room_nid, root));
    }
    if (rc == 0) {
        /* The thread again, from its live children; none left, no row. */
        rc = store__ok(store__exec(
            c,
            "INSERT INTO threads (room_nid, root_id, latest_stream) "
            "SELECT r.room_nid, r.relates_to, MAX(c.stream_ordering) "
            "FROM event_relations r JOIN events c ON c.event_nid = r.event_nid "
            "WHERE r.relates_to = ? AND r.rel_type = 'm.thread' AND r.room_nid = ? "
            "AND c.redacted_by IS NULL AND c.rejected = 0 AND c.stream_ordering IS NOT NULL "
            "GROUP BY r.room_nid, r.relates_to",
            "ti", root, room_nid));
    }
    return rc;
}

/* ---- checks on sending ---- */

int store_annotation_exists(struct store_conn *c, const char *parent_id, const char *event_type,
                            const char *sender, const char *key)
{
    int64_t one = 0;
    return store__get_int(
        c, &one,
        "SELECT 1 FROM event_relations r JOIN events c ON c.event_nid = r.event_nid "
        "WHERE r.relates_to = ? AND r.rel_type = 'm.annotation' AND r.sender = ? "
        "AND r.key = ? AND r.event_type = ? AND c.redacted_by IS NULL AND c.rejected = 0 "
        "LIMIT 1",
        "tttt", parent_id, sender, key, event_type);
}

int store_relation_target_known(struct store_conn *c, const char *event_id, int64_t room_nid)
{
    int64_t one = 0;
    return store__get_int(c, &one,
                          "SELECT 1 FROM event_relations WHERE relates_to = ? AND room_nid = ? "
                          "LIMIT 1",
                          "ti", event_id, room_nid);
}
