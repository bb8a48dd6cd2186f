/*
 * A list of error messages, collected so that every problem is reported at
 * once (config validation prints them all, one per line).
 *
 * Ownership: the list owns its strings; gw_errlist_free releases them.
 */
#ifndef GW_UTIL_ERRLIST_H
#define GW_UTIL_ERRLIST_H

#include <stddef.h>

struct gw_errlist {
	char **items;
	size_t count;
	size_t cap;
};

/* Appends a printf-formatted message. */
void gw_errlist_add(struct gw_errlist *errs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void gw_errlist_free(struct gw_errlist *errs);

#endif
