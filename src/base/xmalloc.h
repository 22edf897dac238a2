/*
 * Allocation for long-lived data. xmalloc and friends abort the process
 * when memory runs out, so callers never check for NULL. Sizes chosen by
 * a peer must be bounded before they reach these functions.
 */
#ifndef MYELIN_BASE_XMALLOC_H
#define MYELIN_BASE_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif
