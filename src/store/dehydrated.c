/*
 * Dehydrated devices, MSC3814 (schema 018_dehydrated_devices): a
 * dehydrated device is a row of `devices` whose dehydrated_data is set, at
 * most one per user. Its keys, to-device queue and deletion are those of
 * any device (keys.c, to_device.c, accounts.c); only reading and creating
 * it as dehydrated live here.
 */
#include <stdint.h>

#include "base/err.h"
#include "store/store_int.h"

int store_dehydrated_get(struct store_conn *c, struct arena *arena, const char *user_id,
                         char **device_id, char **device_data)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT device_id, dehydrated_data FROM devices "
                          "WHERE user_id = ? AND dehydrated_data IS NOT NULL",
                          "t", user_id);
    if (rc < 0) {
        return rc;
    }
    rc = store__step_one(st);
    if (rc == 0) {
        *device_id = store__col_str(st, 0, arena);
        *device_data = store__col_str(st, 1, arena);
    }
    db_finalize(st);
    return rc;
}

int store_dehydrated_create(struct store_conn *c, const char *user_id, const char *device_id,
                            const char *display_name, const char *device_data, int64_t ts)
{
    /* A plain INSERT: the primary key refuses an existing device, the
     * partial unique index a second dehydrated device. */
    return store__ok(store__exec(c,
                                 "INSERT INTO devices (user_id, device_id, display_name, "
                                 "created_ts, dehydrated_data) VALUES (?, ?, ?, ?, ?)",
                                 "tttit", user_id, device_id, display_name, ts, device_data));
}
