/*
 * Push rules and push actions (schema 010_push): a user's own rules in
 * priority order, their edits of server-default rules, the push actions
 * the push thread (svc/push.c) records per (user, event) that notified,
 * the unread notification counts read from them, and the few room reads
 * the push thread needs (joined members, a current state event, an
 * event's relation parent).
 */
#include <stdint.h>

#include "store/store_int.h"

/* ---- rules ---- */

static void rule_row(struct db_stmt *st, struct arena *arena, void *row)
{
    struct store_push_rule *r = row;
    r->kind = store__col_str(st, 0, arena);
    r->rule_id = store__col_str(st, 1, arena);
    r->conditions = store__col_str(st, 2, arena);
    r->pattern = store__col_str(st, 3, arena);
    r->actions = store__col_str(st, 4, arena);
    r->enabled = db_column_int64(st, 5) != 0;
}

int store_push_rules_list(struct store_conn *c, struct arena *arena, const char *user_id,
                          struct store_push_rule **out, size_t *n)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT kind, rule_id, conditions, pattern, actions, enabled "
                          "FROM push_rules WHERE user_id = ? ORDER BY kind, position, rule_id",
                          "t", user_id);
    if (rc < 0) {
        return rc;
    }
    return store__collect(st, arena, sizeof(**out), rule_row, out, n);
}

int store_push_rule_put(struct store_conn *c, const char *user_id,
                        const struct store_push_rule *rule)
{
    return store__ok(store__exec(
        c,
        "INSERT INTO push_rules (user_id, kind, rule_id, position, conditions, pattern, "
        "actions, enabled) VALUES (?, ?, ?, 0, ?, ?, ?, 1) "
        "ON CONFLICT (user_id, kind, rule_id) DO UPDATE SET conditions = excluded.conditions, "
        "pattern = excluded.pattern, actions = excluded.actions",
        "tttttt", user_id, rule->kind, rule->rule_id, rule->conditions, rule->pattern,
        rule->actions));
}

int store_push_rules_order(struct store_conn *c, const char *user_id, const char *kind,
                           const char *const *rule_ids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = store__ok(store__exec(c,
                                       "UPDATE push_rules SET position = ? WHERE user_id = ? "
                                       "AND kind = ? AND rule_id = ?",
                                       "ittt", (int64_t)i, user_id, kind, rule_ids[i]));
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

int store_push_rule_delete(struct store_conn *c, const char *user_id, const char *kind,
                           const char *rule_id)
{
    return store__changed_one(store__exec(
        c, "DELETE FROM push_rules WHERE user_id = ? AND kind = ? AND rule_id = ?", "ttt",
        user_id, kind, rule_id));
}

int store_push_rule_set_enabled(struct store_conn *c, const char *user_id, const char *kind,
                                const char *rule_id, bool enabled)
{
    return store__changed_one(store__exec(c,
                                          "UPDATE push_rules SET enabled = ? WHERE user_id = ? "
                                          "AND kind = ? AND rule_id = ?",
                                          "bttt", enabled, user_id, kind, rule_id));
}

int store_push_rule_set_actions(struct store_conn *c, const char *user_id, const char *kind,
                                const char *rule_id, const char *actions)
{
    return store__changed_one(store__exec(c,
                                          "UPDATE push_rules SET actions = ? WHERE user_id = ? "
                                          "AND kind = ? AND rule_id = ?",
                                          "tttt", actions, user_id, kind, rule_id));
}

static void default_row(struct db_stmt *st, struct arena *arena, void *row)
{
    struct store_push_default *d = row;
    d->rule_id = store__col_str(st, 0, arena);
    d->enabled = db_column_is_null(st, 1) ? -1 : db_column_int64(st, 1) != 0;
    d->actions = store__col_str(st, 2, arena);
}

int store_push_defaults_list(struct store_conn *c, struct arena *arena, const char *user_id,
                             struct store_push_default **out, size_t *n)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT rule_id, enabled, actions FROM push_rule_defaults "
                          "WHERE user_id = ? ORDER BY rule_id",
                          "t", user_id);
    if (rc < 0) {
        return rc;
    }
    return store__collect(st, arena, sizeof(**out), default_row, out, n);
}

int store_push_default_set(struct store_conn *c, const char *user_id, const char *rule_id,
                           int enabled, const char *actions)
{
    int rc = store__ok(store__exec(c,
                                   "INSERT INTO push_rule_defaults (user_id, rule_id) "
                                   "VALUES (?, ?) ON CONFLICT (user_id, rule_id) DO NOTHING",
                                   "tt", user_id, rule_id));
    if (rc == 0 && enabled >= 0) {
        rc = store__ok(store__exec(c,
                                   "UPDATE push_rule_defaults SET enabled = ? WHERE user_id = ? "
                                   "AND rule_id = ?",
                                   "btt", enabled != 0, user_id, rule_id));
    }
    if (rc == 0 && actions) {
        rc = store__ok(store__exec(c,
                                   "UPDATE push_rule_defaults SET actions = ? WHERE user_id = ? "
                                   "AND rule_id = ?",
                                   "ttt", actions, user_id, rule_id));
    }
    return rc;
}

/* ---- push actions ---- */

int store_push_actions_add(struct store_conn *c, const struct store_push_action *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct store_push_action *a = &rows[i];
        int rc = store__ok(store__exec(
            c,
            "INSERT INTO event_push_actions (user_id, room_nid, stream_ordering, notify, "
            "highlight, thread_id) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (user_id, room_nid, stream_ordering) DO NOTHING",
            "tiibbt", a->user_id, a->room_nid, a->stream_ordering, a->notify, a->highlight,
            a->thread_id));
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

int store_push_actions_remove_event(struct store_conn *c, const char *event_id)
{
    return store__ok(store__exec(c,
                                 "DELETE FROM event_push_actions WHERE stream_ordering = "
                                 "(SELECT stream_ordering FROM events WHERE event_id = ?)",
                                 "t", event_id));
}

static void thread_counts_row(struct db_stmt *st, struct arena *arena, void *row)
{
    struct store_push_thread_counts *t = row;
    t->thread_id = store__col_str(st, 0, arena);
    t->counts.notify = db_column_int64(st, 1);
    t->counts.highlight = db_column_int64(st, 2);
}

int store_push_unread_counts(struct store_conn *c, struct arena *arena, const char *user_id,
                             const char *room_id, int64_t after, struct store_push_counts *total,
                             struct store_push_thread_counts **threads, size_t *n_threads)
{
    struct db_stmt *st;
    int rc = store__query(
        c, &st,
        "SELECT a.thread_id, COALESCE(SUM(a.notify), 0), COALESCE(SUM(a.highlight), 0) "
        "FROM rooms r JOIN event_push_actions a ON a.room_nid = r.room_nid "
        "WHERE r.room_id = ? AND a.user_id = ? AND a.stream_ordering > ? "
        "GROUP BY a.thread_id ORDER BY a.thread_id",
        "tti", room_id, user_id, after);
    if (rc < 0) {
        return rc;
    }
    struct store_push_thread_counts *rows = NULL;
    size_t n = 0;
    rc = store__collect(st, arena, sizeof(*rows), thread_counts_row, &rows, &n);
    if (rc < 0) {
        return rc;
    }
    *total = (struct store_push_counts){0};
    for (size_t i = 0; i < n; i++) {
        total->notify += rows[i].counts.notify;
        total->highlight += rows[i].counts.highlight;
    }
    if (threads) {
        *threads = rows;
        *n_threads = n;
    }
    return 0;
}

int store_push_unread_thread(struct store_conn *c, const char *user_id, const char *room_id,
                             const char *thread_id, int64_t after, struct store_push_counts *out)
{
    struct db_stmt *st;
    int rc = thread_id
                 ? store__query(c, &st,
                                "SELECT COALESCE(SUM(a.notify), 0), COALESCE(SUM(a.highlight), 0) "
                                "FROM rooms r JOIN event_push_actions a ON a.room_nid = r.room_nid "
                                "WHERE r.room_id = ? AND a.user_id = ? AND a.stream_ordering > ? "
                                "AND a.thread_id = ?",
                                "ttit", room_id, user_id, after, thread_id)
                 : store__query(c, &st,
                                "SELECT COALESCE(SUM(a.notify), 0), COALESCE(SUM(a.highlight), 0) "
                                "FROM rooms r JOIN event_push_actions a ON a.room_nid = r.room_nid "
                                "WHERE r.room_id = ? AND a.user_id = ? AND a.stream_ordering > ? "
                                "AND a.thread_id IS NULL",
                                "tti", room_id, user_id, after);
    if (rc < 0) {
        return rc;
    }
    rc = db_step(st);
    *out = (struct store_push_counts){0};
    if (rc == DB_ROW) {
        out->notify = db_column_int64(st, 0);
        out->highlight = db_column_int64(st, 1);
    }
    db_finalize(st);
    return rc < 0 ? rc : 0;
}

/* ---- reads for the push thread ---- */

static void member_row(struct db_stmt *st, struct arena *arena, void *row)
{
    struct store_push_member *m = row;
    m->user_id = store__col_str(st, 0, arena);
    m->stream_ordering = db_column_int64(st, 1);
}

int store_push_room_members(struct store_conn *c, struct arena *arena, int64_t room_nid,
                            struct store_push_member **out, size_t *n)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT k.state_key, COALESCE(e.stream_ordering, 0) "
                          "FROM room_current_state s "
                          "JOIN state_keys k ON k.state_key_nid = s.state_key_nid "
                          "JOIN events e ON e.event_nid = s.event_nid "
                          "WHERE s.room_nid = ? AND s.membership = 'join'",
                          "i", room_nid);
    if (rc < 0) {
        return rc;
    }
    return store__collect(st, arena, sizeof(**out), member_row, out, n);
}

int store_push_state_json(struct store_conn *c, struct arena *arena, int64_t room_nid,
                          const char *type, const char *state_key, char **event_id, char **json)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT e.event_id, e.json FROM room_current_state s "
                          "JOIN event_types t ON t.type_nid = s.type_nid "
                          "JOIN state_keys k ON k.state_key_nid = s.state_key_nid "
                          "JOIN events e ON e.event_nid = s.event_nid "
                          "WHERE s.room_nid = ? AND t.type = ? AND k.state_key = ?",
                          "itt", room_nid, type, state_key);
    if (rc < 0) {
        return rc;
    }
    rc = store__step_one(st);
    if (rc == 0) {
        *event_id = store__col_str(st, 0, arena);
        *json = store__col_str(st, 1, arena);
    }
    db_finalize(st);
    return rc;
}

int store_push_relation_parent(struct store_conn *c, struct arena *arena, const char *event_id,
                               char **rel_type, char **relates_to)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT r.rel_type, r.relates_to FROM events e "
                          "JOIN event_relations r ON r.event_nid = e.event_nid "
                          "WHERE e.event_id = ?",
                          "t", event_id);
    if (rc < 0) {
        return rc;
    }
    rc = store__step_one(st);
    if (rc == 0) {
        *rel_type = store__col_str(st, 0, arena);
        *relates_to = store__col_str(st, 1, arena);
    }
    db_finalize(st);
    return rc;
}

int store_push_rooms_changed(struct store_conn *c, struct arena *arena, const char *user_id,
                             int64_t after, int64_t upto, char ***room_ids, size_t *n)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT DISTINCT r.room_id FROM event_push_actions a "
                          "JOIN rooms r ON r.room_nid = a.room_nid "
                          "WHERE a.user_id = ? AND a.stream_ordering > ? "
                          "AND a.stream_ordering <= ?",
                          "tii", user_id, after, upto);
    if (rc < 0) {
        return rc;
    }
    return store__collect(st, arena, sizeof(**room_ids), store__str_row, room_ids, n);
}
