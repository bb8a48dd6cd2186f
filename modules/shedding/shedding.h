/*
 * Load shedding by priority (SPEC section 5): the admission step that
 * refuses the least important requests when the gateway is overloaded.
 *
 *   shedding:
 *     max_inflight: 2000        # hard ceiling: every new request is shed there
 *     target_queue_delay: 20ms  # standing queue delay that means overload
 *     max_loop_lag: 50ms        # event-loop lag that means overload
 *     retry_after: 2s           # Retry-After of shed answers, +-20% jitter
 *     dry_run: false            # count and log what would be shed, shed nothing
 *
 * The level (0 normal, 1 shed sheddable, 2 shed normal too) comes from the
 * operator when forced (gw:ops:shed_level, a profile), else from the
 * detector (overload.h) that a main-thread timer samples every
 * GW_SHED_SAMPLE_MS from the process's in-flight count and the worst
 * event-loop lag the workers measured, raised at once by the in-flight
 * count of the moment. The ceiling max_inflight holds whatever the level.
 * Queueing delay at an upstream sheds at that upstream's queue
 * (modules/concurrency), where it is measured.
 */
#ifndef GW_MODULES_SHEDDING_SHEDDING_H
#define GW_MODULES_SHEDDING_SHEDDING_H

#include <stdint.h>

#include "../module.h"
#include "../../gateway/config/config.h"

/* How often the detector samples, and how often workers measure loop lag. */
#define GW_SHED_SAMPLE_MS    20
#define GW_SHED_LAG_PROBE_MS 20

struct gw_txn;

extern const struct gw_module gw_shedding_module;

/* Retry-After for a shed answer: retry_after with +-20% jitter (random64: any random bits). */
uint64_t gw_shed_retry_after_ms(const struct gw_shedding_conf *c, uint64_t random64);

/*
 * Counts a request shed (or, in dry run, that would have been) at the
 * route's priority, and logs dry-run decisions at most once a second per
 * worker. Used by every module that sheds (this one, concurrency).
 */
void gw_shed_count(struct gw_txn *txn, const char *why, bool dry_run);

/* What the shedding of this process has counted, for /status and metrics. */
struct gw_shed_stats {
	unsigned level;    /* the level in force */
	uint32_t inflight; /* requests in flight */
	uint64_t shed[GW_PRIORITY_COUNT], dry_run[GW_PRIORITY_COUNT];
	char reason[160]; /* why the detector is at its level (main thread only) */
};
void gw_shed_stats(const void *process_state, struct gw_shed_stats *out);

#endif
