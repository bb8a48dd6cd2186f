#include "alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void out_of_memory(size_t size)
{
	fprintf(stderr, "gateway: out of memory allocating %zu bytes\n", size);
	abort();
}

void *gw_malloc(size_t size)
{
	void *p = malloc(size ? size : 1);
	if (!p)
		out_of_memory(size);
	return p;
}

void *gw_calloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		out_of_memory(n * size);
	return p;
}

void *gw_realloc(void *ptr, size_t size)
{
	void *p = realloc(ptr, size ? size : 1);
	if (!p)
		out_of_memory(size);
	return p;
}

char *gw_strndup(const char *s, size_t n)
{
	char *p = gw_malloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *gw_strdup(const char *s)
{
	return gw_strndup(s, strlen(s));
}
