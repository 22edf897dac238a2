/*
 * Event filters (spec "Filtering"): reading Filter and RoomEventFilter
 * objects and matching client-format events against them. /sync, the
 * filter endpoints and /context share this so a filter means the same
 * everywhere.
 */
#include "api/client/filter.h"

#include <string.h>

#include "base/err.h"
#include "base/json.h"

/* Checks that obj[key], when present and not null, is an array of
 * strings; *out (when given) is set to it, else left alone. */
static int str_array(const json_t *obj, const char *key, const json_t **out, const char **why)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        return 0;
    }
    if (!json_is_array(v)) {
        *why = key;
        return -ERR_BAD_JSON;
    }
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item)
    {
        if (!json_is_string(item)) {
            *why = key;
            return -ERR_BAD_JSON;
        }
    }
    if (out) {
        *out = v;
    }
    return 0;
}

static int opt_bool(const json_t *obj, const char *key, bool *out, const char **why)
{
    json_t *v = json_object_get(obj, key);
    if (v && !json_is_boolean(v)) {
        *why = key;
        return -ERR_BAD_JSON;
    }
    if (v && out) {
        *out = json_is_true(v);
    }
    return 0;
}

int filter_read_events(const json_t *obj, struct filter_events *f, const char **why)
{
    *f = (struct filter_events){.contains_url = -1, .limit = -1};
    if (!obj) {
        return 0;
    }
    if (!json_is_object(obj)) {
        *why = "filter";
        return -ERR_BAD_JSON;
    }
    int rc;
    if ((rc = str_array(obj, "types", &f->types, why)) ||
        (rc = str_array(obj, "not_types", &f->not_types, why)) ||
        (rc = str_array(obj, "senders", &f->senders, why)) ||
        (rc = str_array(obj, "not_senders", &f->not_senders, why)) ||
        (rc = str_array(obj, "rooms", &f->rooms, why)) ||
        (rc = str_array(obj, "not_rooms", &f->not_rooms, why)) ||
        (rc = opt_bool(obj, "lazy_load_members", &f->lazy_load_members, why)) ||
        (rc = opt_bool(obj, "include_redundant_members", &f->include_redundant_members, why)) ||
        (rc = opt_bool(obj, "unread_thread_notifications", &f->unread_thread_notifications,
                       why))) {
        return rc;
    }
    json_t *cu = json_object_get(obj, "contains_url");
    if (cu) {
        if (!json_is_boolean(cu)) {
            *why = "contains_url";
            return -ERR_BAD_JSON;
        }
        f->contains_url = json_is_true(cu);
    }
    json_t *lim = json_object_get(obj, "limit");
    if (lim) {
        if (!json_is_integer(lim) || json_integer_value(lim) < 0) {
            *why = "limit";
            return -ERR_BAD_JSON;
        }
        f->limit = json_integer_value(lim);
    }
    return 0;
}

int filter_read(const json_t *j, struct filter *f, const char **why)
{
    *f = (struct filter){0};
    struct filter_events *all[] = {&f->timeline,     &f->state,       &f->ephemeral,
                                   &f->room_account_data, &f->account_data, &f->presence};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        all[i]->contains_url = -1;
        all[i]->limit = -1;
    }
    if (!json_is_object(j)) {
        *why = "filter";
        return -ERR_BAD_JSON;
    }
    int rc = str_array(j, "event_fields", &f->event_fields, why);
    if (rc) {
        return rc;
    }
    json_t *fmt = json_object_get(j, "event_format");
    if (fmt && (!json_is_string(fmt) || (strcmp(json_string_value(fmt), "client") != 0 &&
                                         strcmp(json_string_value(fmt), "federation") != 0))) {
        *why = "event_format";
        return -ERR_BAD_JSON;
    }
    if ((rc = filter_read_events(json_object_get(j, "account_data"), &f->account_data, why)) ||
        (rc = filter_read_events(json_object_get(j, "presence"), &f->presence, why))) {
        return rc;
    }
    json_t *room = json_object_get(j, "room");
    if (!room) {
        return 0;
    }
    if (!json_is_object(room)) {
        *why = "room";
        return -ERR_BAD_JSON;
    }
    if ((rc = str_array(room, "rooms", &f->rooms, why)) ||
        (rc = str_array(room, "not_rooms", &f->not_rooms, why)) ||
        (rc = opt_bool(room, "include_leave", &f->include_leave, why)) ||
        (rc = filter_read_events(json_object_get(room, "timeline"), &f->timeline, why)) ||
        (rc = filter_read_events(json_object_get(room, "state"), &f->state, why)) ||
        (rc = filter_read_events(json_object_get(room, "ephemeral"), &f->ephemeral, why)) ||
        (rc = filter_read_events(json_object_get(room, "account_data"), &f->room_account_data,
                                 why))) {
        return rc;
    }
    return 0;
}

/* Type patterns: '*' matches any run of characters (spec "Filtering"). */
static bool glob_match(const char *p, const char *s)
{
    while (*p) {
        if (*p == '*') {
            while (*p == '*') {
                p++;
            }
            if (!*p) {
                return true;
            }
            for (; *s; s++) {
                if (glob_match(p, s)) {
                    return true;
                }
            }
            return false;
        }
        if (*p != *s) {
            return false;
        }
        p++;
        s++;
    }
    return !*s;
}

bool filter_list_has(const json_t *list, const char *s, bool glob)
{
    size_t i;
    json_t *item;
    json_array_foreach(list, i, item)
    {
        const char *v = json_string_value(item);
        if (v && (glob ? glob_match(v, s) : strcmp(v, s) == 0)) {
            return true;
        }
    }
    return false;
}

/* An absent list lets everything in; `not` lists win over allow lists. */
static bool list_allows(const json_t *allow, const json_t *deny, const char *s, bool glob)
{
    return !(deny && filter_list_has(deny, s, glob)) && !(allow && !filter_list_has(allow, s, glob));
}

bool filter_events_pass(const struct filter_events *f, const json_t *ev)
{
    const char *type = json_get_str(ev, "type");
    const char *sender = json_get_str(ev, "sender");
    const char *room = json_get_str(ev, "room_id");
    if (!list_allows(f->senders, f->not_senders, sender ? sender : "", false) ||
        !list_allows(f->types, f->not_types, type ? type : "", true) ||
        !list_allows(f->rooms, f->not_rooms, room ? room : "", false)) {
        return false;
    }
    if (f->contains_url >= 0) {
        const json_t *content = json_get_obj(ev, "content");
        bool has = content && json_is_string(json_object_get(content, "url"));
        if (has != (f->contains_url == 1)) {
            return false;
        }
    }
    return true;
}

bool filter_events_restrict(const struct filter_events *f)
{
    return f->types || f->not_types || f->senders || f->not_senders || f->rooms ||
           f->not_rooms || f->contains_url >= 0;
}
