/*
 * Allocation helpers. Allocation failure is not recoverable in the gateway:
 * these print one line naming the call site size and abort.
 */
#ifndef GW_UTIL_ALLOC_H
#define GW_UTIL_ALLOC_H

#include <stddef.h>

void *gw_malloc(size_t size);
void *gw_calloc(size_t n, size_t size);
void *gw_realloc(void *ptr, size_t size);
char *gw_strdup(const char *s);
char *gw_strndup(const char *s, size_t n);

#endif
