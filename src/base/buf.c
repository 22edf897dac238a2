/*
 * Growable byte buffer. Capacity doubles; the content stays NUL-terminated
 * so it can be handed to libc and jansson without a copy.
 */
#include "base/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/xmalloc.h"

void buf_init(struct buf *b) { *b = BUF_INIT; }

void buf_release(struct buf *b)
{
    free(b->p);
    *b = BUF_INIT;
}

void buf_reserve(struct buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap) {
        return;
    }
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        cap *= 2;
    }
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
}

void buf_append(struct buf *b, const void *data, size_t n)
{
    buf_reserve(b, n);
    if (n) {
        memcpy(b->p + b->len, data, n);
    }
    b->len += n;
    b->p[b->len] = '\0';
}

void buf_append_str(struct buf *b, struct str s) { buf_append(b, s.p, s.len); }
void buf_append_cstr(struct buf *b, const char *s) { buf_append(b, s, strlen(s)); }
void buf_append_char(struct buf *b, char c) { buf_append(b, &c, 1); }

void buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n <= 0) {
        return;
    }
    buf_reserve(b, (size_t)n);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->p) {
        b->p[0] = '\0';
    }
}

char *buf_detach(struct buf *b, size_t *len)
{
    if (!b->p) {
        buf_reserve(b, 0);
        b->p[0] = '\0';
    }
    char *p = b->p;
    if (len) {
        *len = b->len;
    }
    *b = BUF_INIT;
    return p;
}
