/*
 * Push rules API (spec "Push Rules: API", data/api/client-server/
 * pushrules.yaml): reading the merged rule set, one rule, its `enabled`
 * flag and its `actions`; creating, replacing, reordering (`before` /
 * `after`) and deleting the user's own rules; enabling, disabling and
 * changing the actions of server-default rules (IDs starting with '.'),
 * whose conditions and patterns cannot be changed. Only the `global` scope
 * exists. Rule sets come from svc/push (push_rules_load); every change
 * drops the push thread's cached copy.
 *
 * Errors: an unknown kind is 400 M_UNRECOGNIZED (as Synapse); a missing
 * rule 404 M_NOT_FOUND; a bad rule ID or body 400 M_INVALID_PARAM (missing
 * keys M_MISSING_PARAM); a `before`/`after` that names no user rule of the
 * kind 400 M_UNKNOWN.
 */
#include <stdlib.h>
#include <string.h>

#include "api/client/client.h"
#include "api/handlers.h"
#include "base/err.h"
#include "base/json.h"
#include "core/pushrules.h"
#include "store/store.h"
#include "svc/push.h"
#include "svc/srv.h"

/* The merged rule set of the caller, owned by the request arena. */
static int load_rules(struct req *r, json_t **out)
{
    json_t *rules = NULL;
    int rc = push_rules_load(r->db, r->auth.user_id, &rules);
    if (rc < 0) {
        return req_fail(r, rc, "could not read push rules");
    }
    *out = json_arena(&r->arena, rules);
    return 0;
}

/* The path's {kind} (param 0) or the M_UNRECOGNIZED failure. */
static int path_kind(struct req *r, enum pushrule_kind *kind)
{
    int k = pushrules_kind_parse(r->param[0].p);
    if (k < 0) {
        return req_fail(r, -ERR_UNSUPPORTED, "unknown push rule kind '%s'", r->param[0].p);
    }
    *kind = (enum pushrule_kind)k;
    return 0;
}

/* The rule `rule_id` of `kind` in a merged set, or NULL. */
static json_t *find_rule(json_t *rules, enum pushrule_kind kind, const char *rule_id)
{
    json_t *arr = json_object_get(rules, pushrules_kind_name(kind));
    size_t i;
    json_t *rule;
    json_array_foreach(arr, i, rule)
    {
        const char *id = json_string_value(json_object_get(rule, "rule_id"));
        if (id && strcmp(id, rule_id) == 0) {
            return rule;
        }
    }
    return NULL;
}

/* Loads the rules and finds the path's rule: 0 and *rule, or the failure. */
static int path_rule(struct req *r, enum pushrule_kind *kind, json_t **rule)
{
    int rc = path_kind(r, kind);
    json_t *rules = NULL;
    if (rc == 0) {
        rc = load_rules(r, &rules);
    }
    if (rc < 0) {
        return rc;
    }
    *rule = find_rule(rules, *kind, r->param[1].p);
    if (!*rule) {
        return req_fail(r, -ERR_NOT_FOUND, "The push rule was not found.");
    }
    return 0;
}

/*
 * After every successful change. The push thread re-reads the user's
 * rules; /sync's m.push_rules account data (push_rules_account_data) is
 * where the account-data stream wiring hooks in.
 */
static int changed(struct req *r)
{
    push_rules_changed(r->srv->push, r->auth.user_id);
    /* Clients learn of the new rules as m.push_rules account data. */
    json_t *content = NULL;
    int rc = push_rules_account_data(r->db, r->auth.user_id, &content);
    if (rc == 0) {
        json_arena(&r->arena, content);
        rc = client__account_data_put(r, r->auth.user_id, NULL, "m.push_rules", content);
    }
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    return req_json(r, 200, json_object());
}

static char *dump(struct req *r, const json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    char *copy = arena_strdup(&r->arena, s ? s : "[]");
    free(s);
    return copy;
}

/* ---- reading ---- */

int client_pushrules_get_all(struct req *r)
{
    json_t *rules = NULL;
    int rc = load_rules(r, &rules);
    if (rc < 0) {
        return rc;
    }
    return req_json(r, 200, json_pack("{s:O}", "global", rules));
}

int client_pushrules_get_global(struct req *r)
{
    json_t *rules = NULL;
    int rc = load_rules(r, &rules);
    if (rc < 0) {
        return rc;
    }
    return req_json(r, 200, json_incref(rules));
}

/* GET /pushrules/global/{kind}/ (not in the spec; Synapse answers it). */
int client_pushrules_get_kind(struct req *r)
{
    enum pushrule_kind kind = 0;
    json_t *rules = NULL;
    int rc = path_kind(r, &kind);
    if (rc == 0) {
        rc = load_rules(r, &rules);
    }
    if (rc < 0) {
        return rc;
    }
    return req_json(r, 200, json_incref(json_object_get(rules, pushrules_kind_name(kind))));
}

int client_pushrule_get(struct req *r)
{
    enum pushrule_kind kind = 0;
    json_t *rule;
    int rc = path_rule(r, &kind, &rule);
    if (rc < 0) {
        return rc;
    }
    return req_json(r, 200, json_incref(rule));
}

int client_pushrule_enabled_get(struct req *r)
{
    enum pushrule_kind kind = 0;
    json_t *rule;
    int rc = path_rule(r, &kind, &rule);
    if (rc < 0) {
        return rc;
    }
    return req_json(r, 200, json_pack("{s:O}", "enabled", json_object_get(rule, "enabled")));
}

int client_pushrule_actions_get(struct req *r)
{
    enum pushrule_kind kind = 0;
    json_t *rule;
    int rc = path_rule(r, &kind, &rule);
    if (rc < 0) {
        return rc;
    }
    return req_json(r, 200, json_pack("{s:O}", "actions", json_object_get(rule, "actions")));
}

/* ---- creating, replacing, deleting user rules ---- */

/* Spec: IDs starting with '.' are the server's; '/' and '\' are refused. */
static int check_new_rule_id(struct req *r, const char *rule_id)
{
    if (rule_id[0] == '\0') {
        return req_fail(r, -ERR_INVALID_PARAM, "the rule ID must not be empty");
    }
    if (pushrules_is_default_id(rule_id)) {
        return req_fail(r, -ERR_INVALID_PARAM,
                        "rule IDs starting with '.' are reserved for server-default rules");
    }
    if (strchr(rule_id, '/') || strchr(rule_id, '\\')) {
        return req_fail(r, -ERR_INVALID_PARAM, "rule IDs must not contain '/' or '\\'");
    }
    return 0;
}

static int check_actions(struct req *r, const json_t *actions)
{
    const char *why;
    if (!actions) {
        return req_fail(r, -ERR_MISSING_PARAM, "'actions' is required");
    }
    if (!pushrules_check_actions(actions, &why)) {
        return req_fail(r, -ERR_INVALID_PARAM, "%s", why);
    }
    return 0;
}

/* Where the rule goes among the kind's user rules `ids` (without it):
 * index, or -1 when `before`/`after` names none of them. */
static long insert_index(const char *const *ids, size_t n, const char *before,
                         const char *after, long old_index)
{
    const char *anchor = before ? before : after;
    if (!anchor) {
        return old_index >= 0 ? old_index : 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(ids[i], anchor) == 0) {
            return before ? (long)i : (long)i + 1;
        }
    }
    return -1;
}

/* Builds, in a transaction, the rule and the new order of its kind. */
static int put_rule(struct req *r, const struct store_push_rule *rule, const char *before,
                    const char *after)
{
    struct store_push_rule *all = NULL;
    size_t n_all = 0;
    int rc = store_push_rules_list(r->db, &r->arena, r->auth.user_id, &all, &n_all);
    if (rc < 0) {
        return rc;
    }
    const char **ids = ARENA_ARRAY(&r->arena, const char *, n_all + 1);
    size_t n = 0;
    long old_index = -1;
    for (size_t i = 0; i < n_all; i++) {
        if (strcmp(all[i].kind, rule->kind) != 0) {
            continue;
        }
        if (strcmp(all[i].rule_id, rule->rule_id) == 0) {
            old_index = (long)n;
            continue;
        }
        ids[n++] = all[i].rule_id;
    }
    long at = insert_index(ids, n, before, after, old_index);
    if (at < 0) {
        return req_fail(r, -ERR_BAD_REQUEST, "before/after rule not found: %s",
                        before ? before : after);
    }
    if ((size_t)at > n) {
        at = (long)n;
    }
    memmove(&ids[at + 1], &ids[at], sizeof(*ids) * (n - (size_t)at));
    ids[at] = rule->rule_id;
    n++;
    rc = store_push_rule_put(r->db, r->auth.user_id, rule);
    if (rc == 0) {
        rc = store_push_rules_order(r->db, r->auth.user_id, rule->kind, ids, n);
    }
    return rc;
}

int client_pushrule_put(struct req *r)
{
    enum pushrule_kind kind = 0;
    int rc = path_kind(r, &kind);
    if (rc < 0) {
        return rc;
    }
    const char *rule_id = r->param[1].p;
    if ((rc = check_new_rule_id(r, rule_id)) < 0) {
        return rc;
    }
    const json_t *actions = json_object_get(r->json, "actions");
    if ((rc = check_actions(r, actions)) < 0) {
        return rc;
    }
    struct store_push_rule rule = {
        .kind = pushrules_kind_name(kind),
        .rule_id = rule_id,
        .actions = dump(r, actions),
    };
    if (kind == PUSHRULE_OVERRIDE || kind == PUSHRULE_UNDERRIDE) {
        const json_t *conds = json_object_get(r->json, "conditions");
        const char *why;
        if (conds && !pushrules_check_conditions(conds, &why)) {
            return req_fail(r, -ERR_INVALID_PARAM, "%s", why);
        }
        rule.conditions = conds ? dump(r, conds) : "[]";
    } else if (kind == PUSHRULE_CONTENT) {
        const json_t *pattern = json_object_get(r->json, "pattern");
        if (!pattern) {
            return req_fail(r, -ERR_MISSING_PARAM, "content rules need a 'pattern'");
        }
        if (!json_is_string(pattern)) {
            return req_fail(r, -ERR_INVALID_PARAM, "'pattern' must be a string");
        }
        rule.pattern = json_string_value(pattern);
    }
    const char *before = req_query(r, "before");
    const char *after = req_query(r, "after");
    if ((before && pushrules_is_default_id(before)) || (after && pushrules_is_default_id(after))) {
        return req_fail(r, -ERR_BAD_REQUEST, "before/after rule not found: %s",
                        before ? before : after);
    }
    rc = store_begin(r->db);
    if (rc == 0) {
        rc = store_end(r->db, put_rule(r, &rule, before, after));
    }
    return rc < 0 ? rc : changed(r);
}

int client_pushrule_delete(struct req *r)
{
    enum pushrule_kind kind = 0;
    int rc = path_kind(r, &kind);
    if (rc < 0) {
        return rc;
    }
    rc = store_push_rule_delete(r->db, r->auth.user_id, pushrules_kind_name(kind),
                                r->param[1].p);
    if (rc == -ERR_NOT_FOUND) {
        return req_fail(r, rc, "The push rule was not found.");
    }
    return rc < 0 ? rc : changed(r);
}

/* ---- enabled and actions, of user and default rules ---- */

int client_pushrule_enabled_put(struct req *r)
{
    enum pushrule_kind kind = 0;
    json_t *rule;
    int rc = path_rule(r, &kind, &rule);
    if (rc < 0) {
        return rc;
    }
    const json_t *enabled = json_object_get(r->json, "enabled");
    if (!enabled) {
        return req_fail(r, -ERR_MISSING_PARAM, "'enabled' is required");
    }
    if (!json_is_boolean(enabled)) {
        return req_fail(r, -ERR_INVALID_PARAM, "'enabled' must be a boolean");
    }
    const char *rule_id = r->param[1].p;
    if (pushrules_is_default_id(rule_id)) {
        rc = store_push_default_set(r->db, r->auth.user_id, rule_id, json_is_true(enabled), NULL);
    } else {
        rc = store_push_rule_set_enabled(r->db, r->auth.user_id, pushrules_kind_name(kind),
                                         rule_id, json_is_true(enabled));
    }
    if (rc == -ERR_NOT_FOUND) {
        return req_fail(r, rc, "The push rule was not found.");
    }
    return rc < 0 ? rc : changed(r);
}

int client_pushrule_actions_put(struct req *r)
{
    enum pushrule_kind kind = 0;
    json_t *rule;
    int rc = path_rule(r, &kind, &rule);
    if (rc < 0) {
        return rc;
    }
    const json_t *actions = json_object_get(r->json, "actions");
    if ((rc = check_actions(r, actions)) < 0) {
        return rc;
    }
    const char *rule_id = r->param[1].p;
    if (pushrules_is_default_id(rule_id)) {
        rc = store_push_default_set(r->db, r->auth.user_id, rule_id, -1, dump(r, actions));
    } else {
        rc = store_push_rule_set_actions(r->db, r->auth.user_id, pushrules_kind_name(kind),
                                         rule_id, dump(r, actions));
    }
    if (rc == -ERR_NOT_FOUND) {
        return req_fail(r, rc, "The push rule was not found.");
    }
    return rc < 0 ? rc : changed(r);
}
