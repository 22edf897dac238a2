/*
 * Region allocator. A request, a job or a test owns one arena; everything
 * allocated from it (parsed JSON, row copies, the response) is released
 * together by arena_release. Cleanups registered on the arena run first,
 * in reverse order, so statements, fds and locks held for a request are
 * released on every exit path.
 */
#ifndef MYELIN_BASE_ARENA_H
#define MYELIN_BASE_ARENA_H

#include <stdarg.h>
#include <stddef.h>

#include "base/str.h"

struct arena_block;
struct arena_cleanup;

struct arena {
    struct arena_block *head;
    struct arena_cleanup *cleanups;
    size_t total; /* bytes handed out, for limits and statistics */
};

typedef void arena_cleanup_fn(void *data);

void arena_init(struct arena *a);
/* Runs the cleanups, then frees every block. The arena can be reused. */
void arena_release(struct arena *a);

/* Aligned allocation; aborts when memory runs out. Never returns NULL. */
void *arena_alloc(struct arena *a, size_t n);
void *arena_zalloc(struct arena *a, size_t n);
char *arena_strndup(struct arena *a, const char *s, size_t n);
char *arena_strdup(struct arena *a, const char *s);
struct str arena_str(struct arena *a, struct str s);
char *arena_printf(struct arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
char *arena_vprintf(struct arena *a, const char *fmt, va_list ap);

/* Registers fn(data) to run when the arena is released. */
void arena_defer(struct arena *a, arena_cleanup_fn *fn, void *data);

#define ARENA_NEW(a, type) ((type *)arena_zalloc((a), sizeof(type)))
#define ARENA_ARRAY(a, type, n) ((type *)arena_zalloc((a), sizeof(type) * (n)))

#endif
