/*
 * The room version table (spec: "Room Versions", each version's page).
 * One row per version; every rule difference is a column.
 */
#include "core/roomver.h"

#include <string.h>

/* clang-format off */
static const struct room_version versions[] = {
    /* id    stable fmt              stateres       redaction      keyval aliases strict notif reddom knock restr knrestr intpl implcr idhash privcr */
    {"1",  true, EVENT_FORMAT_V1, STATERES_V1,   REDACTION_V1,  false, true,  false, false, true,  false, false, false, false, false, false, false},
    {"2",  true, EVENT_FORMAT_V1, STATERES_V2,   REDACTION_V1,  false, true,  false, false, true,  false, false, false, false, false, false, false},
    {"3",  true, EVENT_FORMAT_V2, STATERES_V2,   REDACTION_V1,  false, true,  false, false, false, false, false, false, false, false, false, false},
    {"4",  true, EVENT_FORMAT_V3, STATERES_V2,   REDACTION_V1,  false, true,  false, false, false, false, false, false, false, false, false, false},
    {"5",  true, EVENT_FORMAT_V3, STATERES_V2,   REDACTION_V1,  true,  true,  false, false, false, false, false, false, false, false, false, false},
    {"6",  true, EVENT_FORMAT_V3, STATERES_V2,   REDACTION_V6,  true,  false, true,  true,  false, false, false, false, false, false, false, false},
    {"7",  true, EVENT_FORMAT_V3, STATERES_V2,   REDACTION_V6,  true,  false, true,  true,  false, true,  false, false, false, false, false, false},
    {"8",  true, EVENT_FORMAT_V3, STATERES_V2,   REDACTION_V8,  true,  false, true,  true,  false, true,  true,  false, false, false, false, false},
    {"9",  true, EVENT_FORMAT_V3, STATERES_V2,   REDACTION_V9,  true,  false, true,  true,  false, true,  true,  false, false, false, false, false},
    {"10", true, EVENT_FORMAT_V3, STATERES_V2,   REDACTION_V9,  true,  false, true,  true,  false, true,  true,  true,  true,  false, false, false},
    {"11", true, EVENT_FORMAT_V3, STATERES_V2,   REDACTION_V11, true,  false, true,  true,  false, true,  true,  true,  true,  true,  false, false},
    {"12", true, EVENT_FORMAT_V3, STATERES_V2_1, REDACTION_V11, true,  false, true,  true,  false, true,  true,  true,  true,  true,  true,  true},
};
/* clang-format on */

const struct room_version *roomver_get(const char *id)
{
    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
        if (strcmp(versions[i].id, id) == 0) {
            return &versions[i];
        }
    }
    return NULL;
}

const struct room_version *roomver_all(size_t *count)
{
    *count = sizeof(versions) / sizeof(versions[0]);
    return versions;
}
