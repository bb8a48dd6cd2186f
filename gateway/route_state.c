#include "route_state.h"

#include <stdlib.h>

#include "../modules/circuit_breaker/breaker.h"
#include "../modules/retry/retry.h"
#include "util/alloc.h"

struct gw_route_states *gw_route_states_new(const struct gw_config *config)
{
	struct gw_route_states *states = gw_calloc(1, sizeof(*states));

	states->nroutes = config->nroutes;
	states->routes = gw_calloc(config->nroutes, sizeof(*states->routes));
	for (size_t i = 0; i < config->nroutes; i++) {
		const struct gw_route_conf *route = &config->routes[i];
		const struct gw_breaker_conf *bc = gw_breaker_conf_of(route);
		const struct gw_retry_conf *rc = gw_retry_conf_of(route);

		if (bc)
			states->routes[i].breaker = gw_breaker_new(bc, route->name);
		states->routes[i].budget =
		    gw_retry_budget_new(rc->budget_ratio, rc->budget_min_per_second);
	}
	return states;
}

void gw_route_states_free(struct gw_route_states *states)
{
	if (!states)
		return;
	for (size_t i = 0; i < states->nroutes; i++) {
		if (states->routes[i].breaker)
			gw_breaker_free(states->routes[i].breaker);
		gw_retry_budget_free(states->routes[i].budget);
	}
	free(states->routes);
	free(states);
}
