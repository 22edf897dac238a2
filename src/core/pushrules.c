/*
 * Push rules: the predefined rules, merging, validation and evaluation
 * (spec: Client-Server API "Push Rules", appendices "Glob-style matching"
 * and "Dot-separated property paths"). Pure: no I/O; see pushrules.h.
 */
#include "core/pushrules.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[PUSHRULE_KINDS] = {"override", "content", "room", "sender",
                                                       "underride"};

const char *pushrules_kind_name(enum pushrule_kind k)
{
    return (unsigned)k < PUSHRULE_KINDS ? kind_names[k] : "";
}

int pushrules_kind_parse(const char *name)
{
    for (int k = 0; k < PUSHRULE_KINDS; k++) {
        if (name && strcmp(name, kind_names[k]) == 0) {
            return k;
        }
    }
    return -1;
}

bool pushrules_is_default_id(const char *rule_id)
{
    return rule_id && rule_id[0] == '.';
}

/* ---- the predefined rules (spec "Predefined Rules", v1.17+) ---- */

/*
 * The server-default rules in the spec's order. "@USER@" stands for the
 * user's Matrix ID and is filled in by pushrules_defaults. The legacy
 * body-mention rules (.m.rule.contains_display_name, .m.rule.roomnotif,
 * .m.rule.contains_user_name) were removed in v1.17 and are not served.
 */
static const char defaults_json[] =
    "{\"override\": ["
    "{\"rule_id\": \".m.rule.master\", \"default\": true, \"enabled\": false,"
    " \"conditions\": [], \"actions\": []},"
    "{\"rule_id\": \".m.rule.suppress_notices\", \"default\": true, \"enabled\": true,"
    " \"conditions\": [{\"kind\": \"event_match\", \"key\": \"content.msgtype\","
    " \"pattern\": \"m.notice\"}], \"actions\": []},"
    "{\"rule_id\": \".m.rule.invite_for_me\", \"default\": true, \"enabled\": true,"
    " \"conditions\": [{\"key\": \"type\", \"kind\": \"event_match\", \"pattern\": \"m.room.member\"},"
    " {\"key\": \"content.membership\", \"kind\": \"event_match\", \"pattern\": \"invite\"},"
    " {\"key\": \"state_key\", \"kind\": \"event_match\", \"pattern\": \"@USER@\"}],"
    " \"actions\": [\"notify\", {\"set_tweak\": \"sound\", \"value\": \"default\"}]},"
    "{\"rule_id\": \".m.rule.member_event\", \"default\": true, \"enabled\": true,"
    " \"conditions\": [{\"key\": \"type\", \"kind\": \"event_match\", \"pattern\": \"m.room.member\"}],"
    " \"actions\": []},"
    "{\"rule_id\": \".m.rule.is_user_mention\", \"default\": true, \"enabled\": true,"
    " \"conditions\": [{\"kind\": \"event_property_contains\","
    " \"key\": \"content.m\\\\.mentions.user_ids\", \"value\": \"@USER@\"}],"
    " \"actions\": [\"notify\", {\"set_tweak\": \"sound\", \"value\": \"default\"},"
    " {\"set_tweak\": \"highlight\"}]},"
    "{\"rule_id\": \".m.rule.is_room_mention\", \"default\": true, \"enabled\": true,"
    " \"conditions\": [{\"kind\": \"event_property_is\", \"key\": \"content.m\\\\.mentions.room\","
    " \"value\": true}, {\"kind\": \"sender_notification_permission\", \"key\": \"room\"}],"
    " \"actions\": [\"notify\", {\"set_tweak\": \"highlight\"}]},"
    "{\"rule_id\": \".m.rule.tombstone\", \"default\": true, \"enabled\": true,"
    " \"conditions\": [{\"kind\": \"event_match\", \"key\": \"type\", \"pattern\": \"m.room.tombstone\"},"
    " {\"kind\": \"event_match\", \"key\": \"state_key\", \"pattern\": \"\"}],"
    " \"actions\": [\"notify\", {\"set_tweak\": \"highlight\"}]},"
    "{\"rule_id\": \".m.rule.reaction\", \"default\": true, \"enabled\": true,"
    " \"conditions\": [{\"kind\": \"event_match\", \"key\": \"type\", \"pattern\": \"m.reaction\"}],"
    " \"actions\": []},"
    "{\"rule_id\": \".m.rule.room.server_acl\", \"default\": true, \"enabled\": true,"
    " \"conditions\": [{\"kind\": \"event_match\", \"key\": \"type\", \"pattern\": \"m.room.server_acl\"},"
    " {\"kind\": \"event_match\", \"key\": \"state_key\", \"pattern\": \"\"}],"
    " \"actions\": []},"
    "{\"rule_id\": \".m.rule.suppress_edits\", \"default\": true, \"enabled\": true,"
    " \"conditions\": [{\"kind\": \"event_property_is\","
    " \"key\": \"content.m\\\\.relates_to.rel_type\", \"value\": \"m.replace\"}],"
    " \"actions\": []}"
    "],"
    "\"content\": [], \"room\": [], \"sender\": [],"
    "\"underride\": ["
    "{\"rule_id\": \".m.rule.call\", \"default\": true, \"enabled\": true,"
    " \"conditions\": [{\"key\": \"type\", \"kind\": \"event_match\", \"pattern\": \"m.call.invite\"}],"
    " \"actions\": [\"notify\", {\"set_tweak\": \"sound\", \"value\": \"ring\"}]},"
    "{\"rule_id\": \".m.rule.encrypted_room_one_to_one\", \"default\": true, \"enabled\": true,"
    " \"conditions\": [{\"kind\": \"room_member_count\", \"is\": \"2\"},"
    " {\"kind\": \"event_match\", \"key\": \"type\", \"pattern\": \"m.room.encrypted\"}],"
    " \"actions\": [\"notify\", {\"set_tweak\": \"sound\", \"value\": \"default\"}]},"
    "{\"rule_id\": \".m.rule.room_one_to_one\", \"default\": true, \"enabled\": true,"
    " \"conditions\": [{\"kind\": \"room_member_count\", \"is\": \"2\"},"
    " {\"kind\": \"event_match\", \"key\": \"type\", \"pattern\": \"m.room.message\"}],"
    " \"actions\": [\"notify\", {\"set_tweak\": \"sound\", \"value\": \"default\"}]},"
    "{\"rule_id\": \".m.rule.message\", \"default\": true, \"enabled\": true,"
    " \"conditions\": [{\"kind\": \"event_match\", \"key\": \"type\", \"pattern\": \"m.room.message\"}],"
    " \"actions\": [\"notify\"]},"
    "{\"rule_id\": \".m.rule.encrypted\", \"default\": true, \"enabled\": true,"
    " \"conditions\": [{\"kind\": \"event_match\", \"key\": \"type\", \"pattern\": \"m.room.encrypted\"}],"
    " \"actions\": [\"notify\"]}"
    "]}";

/* Replaces every "@USER@" string value inside `j` (recursively) by `user_id`. */
static void fill_user(json_t *j, const char *user_id)
{
    if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v)
        {
            if (json_is_string(v) && strcmp(json_string_value(v), "@USER@") == 0) {
                json_string_set(v, user_id);
            } else {
                fill_user(v, user_id);
            }
        }
    } else if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v)
        {
            fill_user(v, user_id);
        }
    }
}

json_t *pushrules_defaults(const char *user_id)
{
    json_t *d = json_loads(defaults_json, 0, NULL);
    if (!d) {
        abort(); /* the constant above is valid JSON; a failure is a build bug or OOM */
    }
    fill_user(d, user_id ? user_id : "");
    return d;
}

/* A default rule with the user's edits applied (a new reference). */
static json_t *default_with_changes(json_t *rule, const json_t *changes)
{
    json_t *copy = json_deep_copy(rule);
    const char *id = json_string_value(json_object_get(rule, "rule_id"));
    const json_t *ch = changes && id ? json_object_get(changes, id) : NULL;
    if (json_is_object(ch)) {
        json_t *en = json_object_get(ch, "enabled");
        if (json_is_boolean(en)) {
            json_object_set(copy, "enabled", en);
        }
        json_t *ac = json_object_get(ch, "actions");
        if (json_is_array(ac)) {
            json_object_set_new(copy, "actions", json_deep_copy(ac));
        }
    }
    return copy;
}

json_t *pushrules_merge(const char *user_id, const json_t *user_rules,
                        const json_t *default_changes)
{
    json_t *defs = pushrules_defaults(user_id);
    json_t *out = json_object();
    for (int k = 0; k < PUSHRULE_KINDS; k++) {
        json_t *arr = json_array();
        json_t *darr = json_object_get(defs, kind_names[k]);
        size_t first_default = 0;
        if (k == PUSHRULE_OVERRIDE && json_array_size(darr) > 0) {
            /* .m.rule.master outranks every rule, the user's too. */
            json_array_append_new(arr, default_with_changes(json_array_get(darr, 0),
                                                            default_changes));
            first_default = 1;
        }
        const json_t *uarr = user_rules ? json_object_get(user_rules, kind_names[k]) : NULL;
        size_t i;
        json_t *r;
        json_array_foreach(uarr, i, r)
        {
            if (!json_is_object(r)) {
                continue;
            }
            json_t *copy = json_deep_copy(r);
            json_object_set_new(copy, "default", json_false());
            if (!json_is_boolean(json_object_get(copy, "enabled"))) {
                json_object_set_new(copy, "enabled", json_true());
            }
            json_array_append_new(arr, copy);
        }
        for (i = first_default; i < json_array_size(darr); i++) {
            json_array_append_new(arr, default_with_changes(json_array_get(darr, i),
                                                            default_changes));
        }
        json_object_set_new(out, kind_names[k], arr);
    }
    json_decref(defs);
    return out;
}

/* ---- validation ---- */

bool pushrules_check_actions(const json_t *actions, const char **why)
{
    if (!json_is_array(actions)) {
        *why = "actions must be an array";
        return false;
    }
    size_t i;
    json_t *a;
    json_array_foreach(actions, i, a)
    {
        if (json_is_string(a)) {
            const char *s = json_string_value(a);
            if (strcmp(s, "notify") != 0 && strcmp(s, "dont_notify") != 0 &&
                strcmp(s, "coalesce") != 0) {
                *why = "unknown action";
                return false;
            }
        } else if (json_is_object(a)) {
            if (!json_is_string(json_object_get(a, "set_tweak"))) {
                *why = "an action object needs a string set_tweak";
                return false;
            }
        } else {
            *why = "actions must be strings or objects";
            return false;
        }
    }
    return true;
}

bool pushrules_check_conditions(const json_t *conditions, const char **why)
{
    if (!json_is_array(conditions)) {
        *why = "conditions must be an array";
        return false;
    }
    size_t i;
    json_t *c;
    json_array_foreach(conditions, i, c)
    {
        if (!json_is_object(c) || !json_is_string(json_object_get(c, "kind"))) {
            *why = "each condition must be an object with a string kind";
            return false;
        }
    }
    return true;
}

/* ---- UTF-8 and case folding ---- */

/* Decodes one code point at *s (advancing it); bytes that are not valid
 * UTF-8 are taken one at a time as themselves. */
static uint32_t next_cp(const char **s, const char *end)
{
    const unsigned char *p = (const unsigned char *)*s;
    size_t left = (size_t)(end - *s);
    uint32_t c = p[0];
    size_t n = 1;
    if (c >= 0xC0 && c < 0xE0 && left >= 2 && (p[1] & 0xC0) == 0x80) {
        c = ((c & 0x1F) << 6) | (p[1] & 0x3F);
        n = 2;
    } else if (c >= 0xE0 && c < 0xF0 && left >= 3 && (p[1] & 0xC0) == 0x80 &&
               (p[2] & 0xC0) == 0x80) {
        c = ((c & 0x0F) << 12) | ((uint32_t)(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
        n = 3;
    } else if (c >= 0xF0 && c < 0xF8 && left >= 4 && (p[1] & 0xC0) == 0x80 &&
               (p[2] & 0xC0) == 0x80 && (p[3] & 0xC0) == 0x80) {
        c = ((c & 0x07) << 18) | ((uint32_t)(p[1] & 0x3F) << 12) |
            ((uint32_t)(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
        n = 4;
    }
    *s += n;
    return c;
}

/* Simple lower-casing: ASCII, Latin-1, basic Greek and Cyrillic capitals. */
static uint32_t fold(uint32_t c)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 0xC0 && c <= 0xDE && c != 0xD7) ||
        (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) || (c >= 0x410 && c <= 0x42F)) {
        return c + 32;
    }
    if (c >= 0x400 && c <= 0x40F) {
        return c + 80;
    }
    return c;
}

static bool is_word_byte(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_';
}

/* ---- glob matching ---- */

/*
 * Where a match may start or end. In whole-value mode only at the value's
 * ends; in word mode also next to a non-word character (word characters
 * are ASCII, so looking at single bytes is enough).
 */
struct span {
    const char *start, *end;
    bool words;
};

static bool start_ok(const struct span *v, const char *at)
{
    if (at == v->start) {
        return true;
    }
    return v->words && (!is_word_byte((unsigned char)at[-1]) ||
                        (at < v->end && !is_word_byte((unsigned char)at[0])));
}

static bool end_ok(const struct span *v, const char *at)
{
    if (at == v->end) {
        return true;
    }
    return v->words && (!is_word_byte((unsigned char)at[0]) ||
                        (at > v->start && !is_word_byte((unsigned char)at[-1])));
}

/*
 * Matches pattern bytes [p, pe) (no '*'; '?' is one code point unless
 * `literal`) at s; returns the end of the match or NULL.
 */
static const char *seg_at(const char *p, const char *pe, const char *s, const char *end,
                          bool literal)
{
    while (p < pe) {
        if (s >= end) {
            return NULL;
        }
        if (*p == '?' && !literal) {
            p++;
            next_cp(&s, end);
            continue;
        }
        uint32_t pc = fold(next_cp(&p, pe));
        uint32_t sc = fold(next_cp(&s, end));
        if (pc != sc) {
            return NULL;
        }
    }
    return s;
}

/* Advances s by one code point (or byte, in invalid UTF-8). */
static const char *step(const char *s, const char *end)
{
    next_cp(&s, end);
    return s;
}

/*
 * The pattern [p, pe) split at '*' into segments: the first must start at
 * a start position, the last must end at an end position, middle ones are
 * placed leftmost (which is optimal, as later segments only need to come
 * after them). Linear in value length times pattern length.
 */
static bool glob_span(const char *p, const char *pe, const struct span *v, bool literal)
{
    const char *star = literal ? NULL : memchr(p, '*', (size_t)(pe - p));
    if (!star) {
        /* One segment: some start position from which it matches and ends well. */
        for (const char *s = v->start;; s = step(s, v->end)) {
            if (start_ok(v, s)) {
                const char *e = seg_at(p, pe, s, v->end, literal);
                if (e && end_ok(v, e)) {
                    return true;
                }
            }
            if (s >= v->end || !v->words) {
                return false;
            }
        }
    }
    /* First segment [p, star): the earliest start where it matches. */
    const char *pos = NULL;
    for (const char *s = v->start;; s = step(s, v->end)) {
        if (start_ok(v, s)) {
            pos = seg_at(p, star, s, v->end, false);
            if (pos) {
                break;
            }
        }
        if (s >= v->end || !v->words) {
            return false;
        }
    }
    p = star;
    for (;;) {
        while (p < pe && *p == '*') {
            p++;
        }
        const char *next = memchr(p, '*', (size_t)(pe - p));
        if (!next) {
            break; /* [p, pe) is the last segment */
        }
        /* A middle segment: its leftmost occurrence at or after pos. */
        const char *found = NULL;
        for (const char *s = pos;; s = step(s, v->end)) {
            found = seg_at(p, next, s, v->end, false);
            if (found || s >= v->end) {
                break;
            }
        }
        if (!found) {
            return false;
        }
        pos = found;
        p = next;
    }
    /* The last segment (maybe empty): somewhere at or after pos, ending well. */
    for (const char *s = pos;; s = step(s, v->end)) {
        const char *e = seg_at(p, pe, s, v->end, false);
        if (e && end_ok(v, e)) {
            return true;
        }
        if (s >= v->end) {
            return false;
        }
    }
}

bool pushrules_glob(const char *pattern, const char *value, bool word_boundary)
{
    if (!pattern || !value) {
        return false;
    }
    struct span v = {value, value + strlen(value), word_boundary};
    return glob_span(pattern, pattern + strlen(pattern), &v, false);
}

/* A literal, case-insensitive, word-bounded search (contains_display_name). */
static bool contains_words(const char *needle, const char *hay)
{
    if (!needle || !*needle || !hay) {
        return false;
    }
    struct span v = {hay, hay + strlen(hay), true};
    return glob_span(needle, needle + strlen(needle), &v, true);
}

/* ---- dotted paths ---- */

#define PATH_PART_MAX 1024

const json_t *pushrules_path(const json_t *event, const char *key)
{
    if (!event || !key) {
        return NULL;
    }
    char part[PATH_PART_MAX];
    const json_t *cur = event;
    const char *k = key;
    for (;;) {
        size_t n = 0;
        while (*k && *k != '.') {
            char c = *k;
            if (c == '\\' && (k[1] == '.' || k[1] == '\\')) {
                c = k[1];
                k++;
            }
            if (n + 1 >= sizeof(part)) {
                return NULL;
            }
            part[n++] = c;
            k++;
        }
        part[n] = '\0';
        if (!json_is_object(cur)) {
            return NULL;
        }
        cur = json_object_get(cur, part);
        if (!cur) {
            return NULL;
        }
        if (!*k) {
            return cur;
        }
        k++; /* the separating dot */
    }
}

/* ---- conditions ---- */

#define MAX_SAFE_INT 9007199254740991LL

/* Exact equality of two non-compound values (strings, integers in the
 * canonical JSON range, booleans, null). */
static bool scalar_equal(const json_t *a, const json_t *b)
{
    if (!a || !b) {
        return false;
    }
    switch (json_typeof(b)) {
    case JSON_STRING:
        return json_is_string(a) && json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(b)) == 0;
    case JSON_INTEGER: {
        json_int_t x = json_integer_value(b);
        return json_is_integer(a) && x >= -MAX_SAFE_INT && x <= MAX_SAFE_INT &&
               json_integer_value(a) == x;
    }
    case JSON_TRUE:
    case JSON_FALSE:
    case JSON_NULL:
        return json_typeof(a) == json_typeof(b);
    default:
        return false;
    }
}

/* room_member_count's "is": an optional ==, <, >, <=, >= and a decimal. */
static bool member_count_matches(const char *is, int64_t count)
{
    if (!is) {
        return false;
    }
    int op = '='; /* '=', '<', '>', 'l' (<=), 'g' (>=) */
    if (strncmp(is, "==", 2) == 0) {
        is += 2;
    } else if (strncmp(is, "<=", 2) == 0) {
        op = 'l';
        is += 2;
    } else if (strncmp(is, ">=", 2) == 0) {
        op = 'g';
        is += 2;
    } else if (*is == '<' || *is == '>') {
        op = *is++;
    }
    if (*is < '0' || *is > '9') {
        return false;
    }
    int64_t n = 0;
    for (; *is >= '0' && *is <= '9'; is++) {
        if (n > (INT64_MAX - 9) / 10) {
            return false;
        }
        n = n * 10 + (*is - '0');
    }
    if (*is) {
        return false;
    }
    switch (op) {
    case '<':
        return count < n;
    case '>':
        return count > n;
    case 'l':
        return count <= n;
    case 'g':
        return count >= n;
    default:
        return count == n;
    }
}

/* The level power_levels.notifications[key] asks for (default 50; integer
 * strings are read as old room versions allow). */
static int64_t notification_level(const json_t *pl, const char *key)
{
    const json_t *n = pl ? json_object_get(pl, "notifications") : NULL;
    const json_t *v = json_is_object(n) ? json_object_get(n, key) : NULL;
    if (json_is_integer(v)) {
        return json_integer_value(v);
    }
    if (json_is_string(v)) {
        char *end;
        const char *s = json_string_value(v);
        long long x = strtoll(s, &end, 10);
        if (*s && !*end) {
            return x;
        }
    }
    return 50;
}

bool pushrules_condition(const json_t *cond, const struct pushrules_input *in)
{
    const char *kind = json_string_value(json_object_get(cond, "kind"));
    if (!kind) {
        return false;
    }
    const char *key = json_string_value(json_object_get(cond, "key"));
    if (strcmp(kind, "event_match") == 0) {
        const char *pattern = json_string_value(json_object_get(cond, "pattern"));
        const json_t *v = key && pattern ? pushrules_path(in->event, key) : NULL;
        return json_is_string(v) &&
               pushrules_glob(pattern, json_string_value(v), strcmp(key, "content.body") == 0);
    }
    if (strcmp(kind, "event_property_is") == 0) {
        const json_t *want = json_object_get(cond, "value");
        return key && want && scalar_equal(pushrules_path(in->event, key), want);
    }
    if (strcmp(kind, "event_property_contains") == 0) {
        const json_t *want = json_object_get(cond, "value");
        const json_t *arr = key && want ? pushrules_path(in->event, key) : NULL;
        size_t i;
        json_t *item;
        json_array_foreach(arr, i, item)
        {
            if (scalar_equal(item, want)) {
                return true;
            }
        }
        return false;
    }
    if (strcmp(kind, "contains_display_name") == 0) {
        const json_t *body = pushrules_path(in->event, "content.body");
        return json_is_string(body) && contains_words(in->display_name, json_string_value(body));
    }
    if (strcmp(kind, "room_member_count") == 0) {
        return member_count_matches(json_string_value(json_object_get(cond, "is")),
                                    in->member_count);
    }
    if (strcmp(kind, "sender_notification_permission") == 0) {
        return key && in->sender_power >= notification_level(in->power_levels, key);
    }
    return false; /* unknown conditions never match */
}

/* ---- evaluation ---- */

static bool rule_matches(enum pushrule_kind kind, const json_t *rule,
                         const struct pushrules_input *in)
{
    const char *id = json_string_value(json_object_get(rule, "rule_id"));
    switch (kind) {
    case PUSHRULE_CONTENT: {
        const char *pattern = json_string_value(json_object_get(rule, "pattern"));
        const json_t *body = pushrules_path(in->event, "content.body");
        return pattern && json_is_string(body) &&
               pushrules_glob(pattern, json_string_value(body), true);
    }
    case PUSHRULE_ROOM: {
        const char *room = json_string_value(json_object_get(in->event, "room_id"));
        return id && room && strcmp(id, room) == 0;
    }
    case PUSHRULE_SENDER: {
        const char *sender = json_string_value(json_object_get(in->event, "sender"));
        return id && sender && strcmp(id, sender) == 0;
    }
    default: {
        const json_t *conds = json_object_get(rule, "conditions");
        size_t i;
        json_t *c;
        json_array_foreach(conds, i, c)
        {
            if (!pushrules_condition(c, in)) {
                return false;
            }
        }
        return true; /* no conditions: matches every event */
    }
    }
}

static void apply_actions(const json_t *actions, struct pushrules_result *out)
{
    size_t i;
    json_t *a;
    json_array_foreach(actions, i, a)
    {
        if (json_is_string(a)) {
            /* "dont_notify" and "coalesce" are historical: ignored. */
            out->notify |= strcmp(json_string_value(a), "notify") == 0;
            continue;
        }
        const char *tweak = json_string_value(json_object_get(a, "set_tweak"));
        if (!tweak) {
            continue;
        }
        const json_t *value = json_object_get(a, "value");
        if (strcmp(tweak, "highlight") == 0) {
            out->highlight = !value || json_is_true(value);
        } else if (strcmp(tweak, "sound") == 0 && json_is_string(value)) {
            out->sound = json_string_value(value);
        }
    }
}

void pushrules_eval(const json_t *ruleset, const struct pushrules_input *in,
                    struct pushrules_result *out)
{
    *out = (struct pushrules_result){0};
    for (int k = 0; k < PUSHRULE_KINDS; k++) {
        const json_t *arr = json_object_get(ruleset, kind_names[k]);
        size_t i;
        json_t *rule;
        json_array_foreach(arr, i, rule)
        {
            if (!json_is_true(json_object_get(rule, "enabled")) ||
                !rule_matches((enum pushrule_kind)k, rule, in)) {
                continue;
            }
            out->rule_id = json_string_value(json_object_get(rule, "rule_id"));
            apply_actions(json_object_get(rule, "actions"), out);
            return;
        }
    }
}

bool pushrules_needs_display_name(const json_t *ruleset)
{
    static const enum pushrule_kind with_conditions[] = {PUSHRULE_OVERRIDE, PUSHRULE_UNDERRIDE};
    for (size_t k = 0; k < 2; k++) {
        const json_t *arr = json_object_get(ruleset, kind_names[with_conditions[k]]);
        size_t i;
        json_t *rule;
        json_array_foreach(arr, i, rule)
        {
            if (!json_is_true(json_object_get(rule, "enabled"))) {
                continue;
            }
            size_t j;
            json_t *c;
            json_array_foreach(json_object_get(rule, "conditions"), j, c)
            {
                const char *kind = json_string_value(json_object_get(c, "kind"));
                if (kind && strcmp(kind, "contains_display_name") == 0) {
                    return true;
                }
            }
        }
    }
    return false;
}
