/*
 * Upstream concurrency limits and the priority queue (SPEC section 5): the
 * last admission step. An upstream with `concurrency_limit: adaptive | N`
 * takes at most its limit of requests in flight from each worker (a fixed
 * N is split over the workers; an adaptive limit is learned by each worker
 * from the round-trip times it sees, climit.h). A request over the limit
 * parks in the upstream's priority queue (prio_queue.h): critical before
 * normal before sheddable, FIFO within a class. A finished request's slot
 * goes at once to the next waiter. When the queue stands above
 * shedding.target_queue_delay, the lowest class waiting is shed, and new
 * requests of that class are refused at once; critical requests only wait,
 * bounded by their route deadline.
 *
 * Every number a reader needs (limit, in flight, queue length and waits per
 * class) is in struct gw_concurrency_stats, for /status and /metrics.
 */
#ifndef GW_MODULES_CONCURRENCY_CONCURRENCY_H
#define GW_MODULES_CONCURRENCY_CONCURRENCY_H

#include <stdint.h>

#include "../module.h"
#include "../../gateway/config/config.h"

/* How often queues are checked for entries to shed when nothing else happens. */
#define GW_CONCURRENCY_TICK_MS 10

extern const struct gw_module gw_concurrency_module;

struct gw_concurrency_stats {
	uint32_t limit, inflight;
	uint32_t queued[GW_PRIORITY_COUNT];
	uint64_t min_rtt_us, rtt_us;
};

/* One upstream in one worker (call on that worker's thread). */
void gw_concurrency_stats(struct gw_worker *w, size_t upstream, struct gw_concurrency_stats *out);

#endif
