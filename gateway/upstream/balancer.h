/*
 * Load balancers: pick one server of an upstream pool for a try.
 *
 * Each worker owns its balancers (no locks). A balancer sees which servers
 * may take the try (usable: healthy, not ejected, not already tried by this
 * request when another is available) and how many requests each has in flight.
 *
 *   round_robin    smooth weighted round robin (the sequence for weights 5,1,1
 *                  is a a b a c a a, never a burst of five a's)
 *   least_request  fewest in-flight requests relative to weight; ties go
 *                  round robin so equal servers share load evenly
 *   random         weighted random
 *
 * Ownership: gw_balancer_new returns an object the caller frees with
 * gw_balancer_free; it keeps a pointer to the upstream's config, which must
 * outlive it.
 */
#ifndef GW_UPSTREAM_BALANCER_H
#define GW_UPSTREAM_BALANCER_H

#include <stdbool.h>
#include <stdint.h>

#include "../config/config.h"

struct gw_balancer;

struct gw_balancer *gw_balancer_new(const struct gw_upstream_conf *upstream, uint64_t seed);
void gw_balancer_free(struct gw_balancer *b);

/*
 * Index of the chosen server, or -1 when no server is usable.
 * usable[i] and inflight[i] are indexed like upstream->servers.
 */
int gw_balancer_pick(struct gw_balancer *b, const bool *usable, const uint32_t *inflight);

#endif
