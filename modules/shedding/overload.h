/*
 * The process-wide overload level (SPEC section 5, load shedding): 0
 * normal, 1 shed `sheddable` routes, 2 shed `normal` routes too. Critical
 * routes are shed only at max_inflight itself, a check of its own
 * (gw_overload_at_max).
 *
 * One detector per process, fed by one thread with periodic samples of
 * the in-flight count and the worst event-loop lag; the request path reads
 * the sampled level and raises it by the in-flight count of the moment
 * (gw_overload_instant_level). The numbers and why they are what they are
 * are in overload.c. Time comes in as now_ms: nothing here reads a clock.
 */
#ifndef GW_MODULES_SHEDDING_OVERLOAD_H
#define GW_MODULES_SHEDDING_OVERLOAD_H

#include <stdbool.h>
#include <stdint.h>

#define GW_OVERLOAD_LEVELS 3 /* 0, 1, 2 */

/* A level falls one step after its inputs stayed calm this long. */
#define GW_OVERLOAD_HOLD_MS 1000

/*
 * The detector's inputs' bounds (the `shedding` section). Plain values,
 * owned by whoever holds them; 0 turns that input off.
 */
struct gw_overload_conf {
	uint32_t max_inflight;    /* requests in flight in the process */
	uint64_t max_loop_lag_ms; /* event-loop lag that means overload */
};

/*
 * The detector. Plain data, one per process, embedded in its owner (the
 * shedding module's process state); updated by one thread only (the one
 * that samples); nothing to free.
 */
struct gw_overload {
	struct gw_overload_conf conf; /* a copy */
	unsigned level;
	bool calm;              /* the inputs have been below the level's hold thresholds ... */
	uint64_t calm_since_ms; /* ... since this sample (or the last change of level) */
	uint64_t changed_ms;    /* the last change of level */
	uint32_t inflight;      /* the last sample */
	uint64_t lag_ms;
	char reason[160]; /* why the level is what it is */
};

void gw_overload_init(struct gw_overload *o, const struct gw_overload_conf *c);

/*
 * A periodic sample (every 10..50 ms, from one thread): the requests in
 * flight in the process and the worst loop lag any worker saw since the
 * last sample. Returns the level, 0..2: raised at once, lowered one step
 * per GW_OVERLOAD_HOLD_MS of calm.
 */
unsigned gw_overload_update(struct gw_overload *o, uint64_t now_ms, uint32_t inflight,
                            uint64_t loop_lag_ms);

unsigned gw_overload_level(const struct gw_overload *o);

/*
 * Why the level is what it is, as of the last sample: "normal",
 * "in-flight 1500/2000", "loop lag 80ms > 50ms" (both, joined by ", ", when
 * both count), or while it waits to fall "calm (in-flight 900/2000, loop
 * lag 3ms), level 0 in 400ms". Points into o; valid until the next update.
 */
const char *gw_overload_reason(const struct gw_overload *o);

/*
 * The level in-flight alone gives at once: 1 from 70%, 2 from 85% of
 * max_inflight (0 when max_inflight is 0). For the request path between
 * samples: level = max(sampled, instant).
 */
unsigned gw_overload_instant_level(const struct gw_overload_conf *c, uint32_t inflight);

/*
 * Whether a new request finds max_inflight reached (inflight: those in
 * flight without it): then every request is shed, critical included.
 * Never with max_inflight 0.
 */
bool gw_overload_at_max(const struct gw_overload_conf *c, uint32_t inflight);

/*
 * Whether a request of this priority rank (0 critical, 1 normal, 2
 * sheddable; past 2 counts as 2) is shed at this level: level 1 sheds rank
 * 2, level 2 (or more) ranks 1 and 2; rank 0 never.
 */
bool gw_overload_sheds(unsigned level, unsigned rank);

#endif
