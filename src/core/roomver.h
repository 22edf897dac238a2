/*
 * Room versions 1-12 as one table of rule switches (spec: "Room Versions").
 * Code that differs between versions asks the table, never compares
 * version strings: `if (rv->knock) ...`.
 */
#ifndef MYELIN_CORE_ROOMVER_H
#define MYELIN_CORE_ROOMVER_H

#include <stdbool.h>
#include <stddef.h>

enum event_format {
    EVENT_FORMAT_V1 = 1, /* v1-v2: event_id in the PDU ("$local:server"), [id, hashes] refs */
    EVENT_FORMAT_V2 = 2, /* v3: event ID = "$" + unpadded base64 of the reference hash */
    EVENT_FORMAT_V3 = 3, /* v4+: as V2 with URL-safe base64 */
};

enum stateres_algo {
    STATERES_V1 = 1,   /* room version 1 */
    STATERES_V2 = 2,   /* room versions 2-11 */
    STATERES_V2_1 = 3, /* room version 12 */
};

enum redaction_rules {
    REDACTION_V1 = 1,   /* v1-v5: aliases content kept */
    REDACTION_V6 = 6,   /* v6-v7: m.room.aliases content no longer kept */
    REDACTION_V8 = 8,   /* v8: join_rules keeps "allow" */
    REDACTION_V9 = 9,   /* v9-v10: member keeps "join_authorised_via_users_server" */
    REDACTION_V11 = 11, /* v11+: MSC2176/MSC3821/MSC3989 changes */
};

struct room_version {
    const char *id;                        /* "1" .. "12" */
    bool stable;                           /* advertised as stable in capabilities */
    enum event_format event_format;
    enum stateres_algo stateres;
    enum redaction_rules redaction;
    bool enforce_key_validity;             /* v5+: signing keys must be valid at origin_server_ts */
    bool special_case_aliases_auth;        /* v1-v5: m.room.aliases auth special case */
    bool strict_canonical_json;            /* v6+: integers in range, no floats */
    bool limit_notifications_power_levels; /* v6+: "notifications" checked in PL changes */
    bool redaction_domain_check_in_auth;   /* v1-v2: redaction auth compares domains */
    bool knock;                            /* v7+: join rule "knock", membership "knock" */
    bool restricted_join;                  /* v8+: join rule "restricted" */
    bool knock_restricted;                 /* v10+: join rule "knock_restricted" */
    bool integer_power_levels;             /* v10+: power levels must be JSON integers */
    bool implicit_room_creator;            /* v11+: no "creator" in create content; sender is */
    bool room_id_is_create_hash;           /* v12: room ID = "!" + create event reference hash */
    bool privileged_creators;              /* v12: creators (sender + additional_creators) have infinite power */
};

/* The version with this identifier, or NULL if unknown. */
const struct room_version *roomver_get(const char *id);
/* All known versions in order; *count receives the number. */
const struct room_version *roomver_all(size_t *count);
/* The version new rooms get unless the request names one. */
#define ROOMVER_DEFAULT "12"

#endif
