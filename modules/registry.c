/*
 * The order in which resilience modules see a request. Admission modules
 * (flags, rate limit, shedding, circuit breaker) come first, so a refused
 * request costs no upstream work.
 */
#include "module.h"
#include "circuit_breaker/breaker.h"
#include "fallback/fallback.h"
#include "retry/retry.h"

#include <string.h>

const struct gw_module *const gw_modules[] = {
    &gw_breaker_module,  /* circuit_breaker: fail fast while the route's upstream is down */
    &gw_retry_module,    /* retry: try again, within the budget */
    &gw_fallback_module, /* fallback: the answer given instead of a gateway error */
};

const size_t gw_modules_count = sizeof(gw_modules) / sizeof(gw_modules[0]);

_Static_assert(sizeof(gw_modules) / sizeof(gw_modules[0]) <= GW_MAX_MODULES,
               "route_conf.module_conf has one slot per module");

int gw_module_find(const char *name)
{
	for (size_t i = 0; i < gw_modules_count; i++)
		if (strcmp(gw_modules[i]->name, name) == 0)
			return (int)i;
	return -1;
}
