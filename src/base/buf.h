/*
 * Growable byte buffer on the heap (xmalloc). Used for request bodies,
 * responses and anything built incrementally. The bytes are always
 * followed by a NUL that is not counted in len.
 */
#ifndef MYELIN_BASE_BUF_H
#define MYELIN_BASE_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "base/str.h"

struct buf {
    char *p;
    size_t len;
    size_t cap;
};

#define BUF_INIT ((struct buf){NULL, 0, 0})

void buf_init(struct buf *b);
void buf_release(struct buf *b);
void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *data, size_t n);
void buf_append_str(struct buf *b, struct str s);
void buf_append_cstr(struct buf *b, const char *s);
void buf_append_char(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap);
void buf_reset(struct buf *b);
/* Hands the bytes to the caller (free() them); the buffer is left empty. */
char *buf_detach(struct buf *b, size_t *len);

static inline struct str buf_str(const struct buf *b)
{
    return (struct str){b->p ? b->p : "", b->len};
}

#endif
