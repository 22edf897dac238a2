/*
 * Redaction as two tables: the protected top-level keys and the protected
 * content keys per event type, each row tagged with the redaction rules it
 * applies from (and, when it was dropped later, until). The two content
 * rules that are not "keep this key" are code below: v11 keeps all of an
 * m.room.create's content, and only the `signed` part of an
 * m.room.member's third_party_invite.
 */
#include "core/redact.h"

#include <string.h>

#include "base/err.h"

/* A row applies to rules r when since <= r and (until == 0 or r < until). */
struct keep {
    const char *key;
    enum redaction_rules since;
    enum redaction_rules until;
};

/* Fragments v1-redactions .. v11-redactions: "strip off any keys not in the
 * following list". v11 (MSC2176) dropped origin, membership, prev_state. */
static const struct keep top_keys[] = {
    {"event_id", REDACTION_V1, 0},
    {"type", REDACTION_V1, 0},
    {"room_id", REDACTION_V1, 0},
    {"sender", REDACTION_V1, 0},
    {"state_key", REDACTION_V1, 0},
    {"content", REDACTION_V1, 0},
    {"hashes", REDACTION_V1, 0},
    {"signatures", REDACTION_V1, 0},
    {"depth", REDACTION_V1, 0},
    {"prev_events", REDACTION_V1, 0},
    {"prev_state", REDACTION_V1, REDACTION_V11},
    {"auth_events", REDACTION_V1, 0},
    {"origin", REDACTION_V1, REDACTION_V11},
    {"origin_server_ts", REDACTION_V1, 0},
    {"membership", REDACTION_V1, REDACTION_V11},
};

struct content_keep {
    const char *type;
    struct keep keep;
};

static const struct content_keep content_keys[] = {
    {"m.room.member", {"membership", REDACTION_V1, 0}},
    /* v9 (fragment v9-redactions): restricted-join authorisation survives. */
    {"m.room.member", {"join_authorised_via_users_server", REDACTION_V9, 0}},
    /* v11 keeps the whole content instead (see below). */
    {"m.room.create", {"creator", REDACTION_V1, REDACTION_V11}},
    {"m.room.join_rules", {"join_rule", REDACTION_V1, 0}},
    /* v8 (room version 8 "Redactions"): join_rules keeps "allow". */
    {"m.room.join_rules", {"allow", REDACTION_V8, 0}},
    {"m.room.power_levels", {"ban", REDACTION_V1, 0}},
    {"m.room.power_levels", {"events", REDACTION_V1, 0}},
    {"m.room.power_levels", {"events_default", REDACTION_V1, 0}},
    /* v11 (fragment v11-redactions): "invite" is protected too. */
    {"m.room.power_levels", {"invite", REDACTION_V11, 0}},
    {"m.room.power_levels", {"kick", REDACTION_V1, 0}},
    {"m.room.power_levels", {"redact", REDACTION_V1, 0}},
    {"m.room.power_levels", {"state_default", REDACTION_V1, 0}},
    {"m.room.power_levels", {"users", REDACTION_V1, 0}},
    {"m.room.power_levels", {"users_default", REDACTION_V1, 0}},
    /* v6 (fragment v6-redactions) stopped protecting aliases. */
    {"m.room.aliases", {"aliases", REDACTION_V1, REDACTION_V6}},
    {"m.room.history_visibility", {"history_visibility", REDACTION_V1, 0}},
    /* v11 moved "redacts" into content, and protects it there. */
    {"m.room.redaction", {"redacts", REDACTION_V11, 0}},
};

static bool applies(const struct keep *k, enum redaction_rules r)
{
    return k->since <= r && (k->until == 0 || r < k->until);
}

static void copy_key(json_t *dst, const json_t *src, const char *key)
{
    json_t *v = json_object_get(src, key);
    if (v) {
        json_object_set_new(dst, key, json_deep_copy(v));
    }
}

static json_t *redact_content(enum redaction_rules rules, const char *type, const json_t *content)
{
    if (!json_is_object(content) || !type) {
        return json_object();
    }
    /* v11 (fragment v11-redactions): "m.room.create allows all keys". */
    if (rules >= REDACTION_V11 && strcmp(type, "m.room.create") == 0) {
        return json_deep_copy(content);
    }
    json_t *out = json_object();
    for (size_t i = 0; i < sizeof(content_keys) / sizeof(content_keys[0]); i++) {
        const struct content_keep *c = &content_keys[i];
        if (strcmp(c->type, type) == 0 && applies(&c->keep, rules)) {
            copy_key(out, content, c->keep.key);
        }
    }
    /*
     * v11 (MSC3821): a member event keeps the `signed` key of
     * third_party_invite and nothing else of it. The spec does not say what
     * happens to a third_party_invite object without `signed`; deployed
     * servers keep it as an empty object, and since this changes event IDs
     * we do the same.
     */
    if (rules >= REDACTION_V11 && strcmp(type, "m.room.member") == 0) {
        const json_t *tpi = json_object_get(content, "third_party_invite");
        if (json_is_object(tpi)) {
            json_t *kept = json_object();
            json_t *signed_ = json_object_get(tpi, "signed");
            if (signed_) {
                json_object_set_new(kept, "signed", json_deep_copy(signed_));
            }
            json_object_set_new(out, "third_party_invite", kept);
        }
    }
    return out;
}

int redact_event(const struct room_version *rv, const json_t *pdu, json_t **out)
{
    if (!json_is_object(pdu)) {
        return -ERR_BAD_JSON;
    }
    enum redaction_rules rules = rv->redaction;
    json_t *r = json_object();
    for (size_t i = 0; i < sizeof(top_keys) / sizeof(top_keys[0]); i++) {
        if (applies(&top_keys[i], rules) && strcmp(top_keys[i].key, "content") != 0) {
            copy_key(r, pdu, top_keys[i].key);
        }
    }
    const char *type = json_string_value(json_object_get(pdu, "type"));
    json_object_set_new(r, "content",
                        redact_content(rules, type, json_object_get(pdu, "content")));
    *out = r;
    return 0;
}
