/*
 * String-keyed hash map with open addressing. Keys are byte slices (any
 * bytes, including NUL, so composite keys like "type\0state_key" work);
 * values are pointers. The map copies nothing: keys and values must
 * outlive it (typically both live in the same arena). Storage is heap
 * (xmalloc) and released by map_release.
 */
#ifndef MYELIN_BASE_MAP_H
#define MYELIN_BASE_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/str.h"

struct map_entry {
    struct str key;
    void *value;
    uint64_t hash; /* 0 = empty slot */
};

struct map {
    struct map_entry *slots;
    size_t cap;   /* power of two, or 0 */
    size_t count;
};

void map_init(struct map *m);
void map_release(struct map *m);
/* Inserts or replaces; returns the previous value or NULL. */
void *map_put(struct map *m, struct str key, void *value);
/* The value for key, or NULL. */
void *map_get(const struct map *m, struct str key);
bool map_has(const struct map *m, struct str key);
/* Removes key; returns the removed value or NULL. */
void *map_del(struct map *m, struct str key);

/* Iteration: for (size_t i = 0; map_next(m, &i, &e);) { ... e->key ... } */
bool map_next(const struct map *m, size_t *i, const struct map_entry **e);

uint64_t map_hash(struct str key);

#endif
