/*
 * Engine-independent helpers of the database layer: the statement cache
 * map both engines key by SQL text, the `?` to `$n` placeholder rewrite
 * PostgreSQL needs, and the back-off used while SQLite reports busy.
 */
#include "store/db.h"

#include <stdlib.h>
#include <time.h>

#include "base/buf.h"
#include "base/xmalloc.h"

/* ---- statement cache ---- */

static uint64_t hash_sql(const char *s)
{
    /* FNV-1a; the keys are our own SQL, so no adversary picks them. */
    uint64_t h = 1469598103934665603ULL;
    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

void db_cache_init(struct db_cache *c)
{
    c->slots = NULL;
    c->cap = 0;
    c->count = 0;
}

void db_cache_release(struct db_cache *c)
{
    free(c->slots);
    db_cache_init(c);
}

void *db_cache_get(const struct db_cache *c, const char *sql)
{
    if (c->cap == 0) {
        return NULL;
    }
    size_t mask = c->cap - 1;
    for (size_t i = (size_t)hash_sql(sql) & mask;; i = (i + 1) & mask) {
        const struct db_cache_slot *slot = &c->slots[i];
        if (slot->sql == NULL) {
            return NULL;
        }
        if (slot->sql == sql || strcmp(slot->sql, sql) == 0) {
            return slot->value;
        }
    }
}

static void cache_insert(struct db_cache_slot *slots, size_t cap, const char *sql, void *value)
{
    size_t mask = cap - 1;
    size_t i = (size_t)hash_sql(sql) & mask;
    while (slots[i].sql != NULL) {
        i = (i + 1) & mask;
    }
    slots[i].sql = sql;
    slots[i].value = value;
}

void db_cache_put(struct db_cache *c, const char *sql, void *value)
{
    /* Keep the load factor at or below one half. */
    if ((c->count + 1) * 2 > c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        struct db_cache_slot *slots = xcalloc(cap, sizeof(*slots));
        for (size_t i = 0; i < c->cap; i++) {
            if (c->slots[i].sql != NULL) {
                cache_insert(slots, cap, c->slots[i].sql, c->slots[i].value);
            }
        }
        free(c->slots);
        c->slots = slots;
        c->cap = cap;
    }
    cache_insert(c->slots, c->cap, sql, value);
    c->count++;
}

/* ---- placeholders ---- */

/*
 * Our SQL uses plain '...' literals and "..." identifiers only; E'...'
 * escape strings and $$ dollar quoting would need more states here.
 */
char *db_rewrite_placeholders(const char *sql, int *nparams)
{
    struct buf out = BUF_INIT;
    int n = 0;
    const char *p = sql;
    while (*p != '\0') {
        if (*p == '\'' || *p == '"') {
            /* A quoted literal or identifier; a doubled quote escapes it. */
            char q = *p;
            const char *start = p++;
            while (*p != '\0') {
                if (*p == q && p[1] == q) {
                    p += 2;
                } else if (*p == q) {
                    p++;
                    break;
                } else {
                    p++;
                }
            }
            buf_append(&out, start, (size_t)(p - start));
        } else if (p[0] == '-' && p[1] == '-') {
            const char *start = p;
            while (*p != '\0' && *p != '\n') {
                p++;
            }
            buf_append(&out, start, (size_t)(p - start));
        } else if (p[0] == '/' && p[1] == '*') {
            const char *start = p;
            const char *end = strstr(p + 2, "*/");
            p = end ? end + 2 : p + strlen(p);
            buf_append(&out, start, (size_t)(p - start));
        } else if (*p == '?') {
            buf_printf(&out, "$%d", ++n);
            p++;
        } else {
            buf_append_char(&out, *p);
            p++;
        }
    }
    *nparams = n;
    return buf_detach(&out, NULL);
}

/* ---- busy back-off ---- */

int64_t db_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool db_busy_wait(int attempt, int64_t deadline_ms)
{
    int64_t now = db_now_ms();
    if (now >= deadline_ms) {
        return false;
    }
    int64_t ms = attempt < 5 ? (int64_t)1 << attempt : 20;
    if (ms > 20) {
        ms = 20;
    }
    if (ms > deadline_ms - now) {
        ms = deadline_ms - now;
    }
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    return true;
}
