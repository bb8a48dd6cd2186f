/*
 * The order in which resilience modules see a request. Admission modules
 * (flags, rate limit, shedding, circuit breaker) come first, so a refused
 * request costs no upstream work.
 */
#include "module.h"

#include <string.h>

const struct gw_module *const gw_modules[] = {
    NULL, /* sentinel: keeps the array non-empty until modules register */
};

const size_t gw_modules_count = 0;

int gw_module_find(const char *name)
{
	for (size_t i = 0; i < gw_modules_count; i++)
		if (strcmp(gw_modules[i]->name, name) == 0)
			return (int)i;
	return -1;
}
