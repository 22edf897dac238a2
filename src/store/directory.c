/*
 * Published room directory queries (rooms.published, schema 003_rooms):
 * the rooms listed by /publicRooms with their joined member counts. The
 * alias table's queries live with the other room queries in rooms.c.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

/* Most joined members first, then by room ID compared bytewise: sorted
 * here rather than in SQL, where PostgreSQL would compare the IDs by the
 * database's collation. */
static int by_members(const void *a, const void *b)
{
    const struct store_published_room *x = a, *y = b;
    if (x->joined != y->joined) {
        return x->joined > y->joined ? -1 : 1;
    }
    return strcmp(x->room_id, y->room_id);
}

static void published_row(struct db_stmt *st, struct arena *arena, void *row)
{
    struct store_published_room *p = row;
    p->room_id = store__col_str(st, 0, arena);
    p->joined = db_column_int64(st, 1);
}

int store_published_rooms(struct store_conn *c, struct arena *arena,
                          struct store_published_room **out, size_t *n)
{
    struct db_stmt *st;
    /* The member count reads room_current_state by its primary key prefix
     * (room_nid), so the cost is the published rooms' state sizes. */
    int rc = store__query(c, &st,
                          "SELECT r.room_id, (SELECT COUNT(*) FROM room_current_state s "
                          "WHERE s.room_nid = r.room_nid AND s.membership = ?) AS joined "
                          "FROM rooms r WHERE r.published = 1",
                          "t", "join");
    if (rc < 0) {
        return rc;
    }
    struct store_published_room *list;
    size_t count;
    rc = store__collect(st, arena, sizeof(*list), published_row, &list, &count);
    if (rc < 0) {
        return rc;
    }
    if (count > 1) {
        qsort(list, count, sizeof(*list), by_members);
    }
    *out = list;
    *n = count;
    return 0;
}
