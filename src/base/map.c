/*
 * Open-addressing hash map (linear probing, backward-shift deletion, load
 * factor <= 0.7) with FNV-1a hashing folded to never be 0, so a zero hash
 * marks an empty slot.
 */
#include "base/map.h"

#include <stdlib.h>
#include <string.h>

#include "base/xmalloc.h"

uint64_t map_hash(struct str key)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < key.len; i++) {
        h ^= (unsigned char)key.p[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 29;
    return h ? h : 1;
}

void map_init(struct map *m)
{
    m->slots = NULL;
    m->cap = 0;
    m->count = 0;
}

void map_release(struct map *m)
{
    free(m->slots);
    map_init(m);
}

static void grow(struct map *m)
{
    size_t cap = m->cap ? m->cap * 2 : 16;
    struct map_entry *old = m->slots;
    size_t old_cap = m->cap;
    m->slots = xcalloc(cap, sizeof(*m->slots));
    m->cap = cap;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].hash) {
            size_t j = old[i].hash & (cap - 1);
            while (m->slots[j].hash) {
                j = (j + 1) & (cap - 1);
            }
            m->slots[j] = old[i];
        }
    }
    free(old);
}

static struct map_entry *find(const struct map *m, struct str key, uint64_t h)
{
    if (!m->cap) {
        return NULL;
    }
    size_t j = h & (m->cap - 1);
    while (m->slots[j].hash) {
        if (m->slots[j].hash == h && str_eq(m->slots[j].key, key)) {
            return &m->slots[j];
        }
        j = (j + 1) & (m->cap - 1);
    }
    return NULL;
}

void *map_put(struct map *m, struct str key, void *value)
{
    uint64_t h = map_hash(key);
    struct map_entry *e = find(m, key, h);
    if (e) {
        void *old = e->value;
        e->value = value;
        e->key = key;
        return old;
    }
    if ((m->count + 1) * 10 > m->cap * 7) {
        grow(m);
    }
    size_t j = h & (m->cap - 1);
    while (m->slots[j].hash) {
        j = (j + 1) & (m->cap - 1);
    }
    m->slots[j] = (struct map_entry){key, value, h};
    m->count++;
    return NULL;
}

void *map_get(const struct map *m, struct str key)
{
    struct map_entry *e = find(m, key, map_hash(key));
    return e ? e->value : NULL;
}

bool map_has(const struct map *m, struct str key) { return find(m, key, map_hash(key)) != NULL; }

void *map_del(struct map *m, struct str key)
{
    struct map_entry *e = find(m, key, map_hash(key));
    if (!e) {
        return NULL;
    }
    void *old = e->value;
    size_t i = (size_t)(e - m->slots);
    size_t mask = m->cap - 1;
    /* Backward-shift deletion keeps probe chains intact without tombstones. */
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!m->slots[j].hash) {
            break;
        }
        size_t home = m->slots[j].hash & mask;
        bool between = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
        if (!between) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].hash = 0;
    m->slots[i].key = STR_NULL;
    m->slots[i].value = NULL;
    m->count--;
    return old;
}

bool map_next(const struct map *m, size_t *i, const struct map_entry **e)
{
    while (*i < m->cap) {
        size_t j = (*i)++;
        if (m->slots[j].hash) {
            *e = &m->slots[j];
            return true;
        }
    }
    return false;
}
