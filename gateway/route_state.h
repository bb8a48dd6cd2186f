/*
 * What each route keeps for the whole process, shared by all workers: its
 * circuit breaker and its retry budget. Config snapshots are immutable; this
 * state lives beside them.
 *
 * Ownership: the server owns the table (gw_route_states_new at start-up,
 * gw_route_states_free at exit); entries are indexed like config->routes.
 */
#ifndef GW_ROUTE_STATE_H
#define GW_ROUTE_STATE_H

#include <stddef.h>

#include "config/config.h"

struct gw_breaker;
struct gw_retry_budget;

struct gw_route_state {
	struct gw_breaker *breaker;     /* NULL: the route has no circuit_breaker */
	struct gw_retry_budget *budget; /* always: the budget is on by default */
};

struct gw_route_states {
	struct gw_route_state *routes;
	size_t nroutes;
};

struct gw_route_states *gw_route_states_new(const struct gw_config *config);
void gw_route_states_free(struct gw_route_states *states);

#endif
