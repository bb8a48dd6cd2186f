#include "errlist.h"
#include "alloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void gw_errlist_add(struct gw_errlist *errs, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (errs->count == errs->cap) {
		errs->cap = errs->cap ? errs->cap * 2 : 8;
		errs->items = gw_realloc(errs->items, errs->cap * sizeof(*errs->items));
	}
	errs->items[errs->count++] = gw_strdup(buf);
}

void gw_errlist_free(struct gw_errlist *errs)
{
	for (size_t i = 0; i < errs->count; i++)
		free(errs->items[i]);
	free(errs->items);
	errs->items = NULL;
	errs->count = errs->cap = 0;
}
