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
 * Every algorithm takes a server's weight times its share (slow start, see
 * upstream/health.h): a server back from an ejection or a failed health
 * state gets a small but growing part of what its weight alone would give it.
 * least_request also lets such a server into a pick only with probability
 * share (see balancer.c: in-flight counts of 0 or 1 would otherwise ignore
 * the weight).
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
 * usable[i], inflight[i] and share[i] are indexed like upstream->servers;
 * share[i] is the part of its weight server i gets, in thousandths
 * (GW_HEALTH_SHARE_MIN..GW_HEALTH_SHARE_FULL of health.h; 0 counts as 1,
 * more than 1000 as 1000). NULL usable: all usable; NULL inflight: none in
 * flight; NULL share: all at full share.
 */
int gw_balancer_pick(struct gw_balancer *b, const bool *usable, const uint32_t *inflight,
                     const uint16_t *share);

#endif
