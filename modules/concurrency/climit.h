/*
 * Adaptive concurrency limit of one upstream in one worker: learns, from the
 * round-trip times the worker sees, how many requests the upstream takes in
 * flight before its latency rises, and keeps the worker's in-flight count
 * there (concurrency.c parks the rest in the upstream's priority queue).
 *
 * Pure arithmetic on the caller's numbers: nothing here reads a clock,
 * allocates, locks or logs. The algorithm and the reasons for each constant
 * are in the block comment of climit.c.
 */
#ifndef GW_MODULES_CONCURRENCY_CLIMIT_H
#define GW_MODULES_CONCURRENCY_CLIMIT_H

#include <stdbool.h>
#include <stdint.h>

/* Latency allowed above the no-load RTT before the limit shrinks (0.15 = 15%). */
#define GW_CLIMIT_TOLERANCE 0.15
/* A timeout or reset multiplies the limit by this, at most once per flight. */
#define GW_CLIMIT_BACKOFF 0.5
/* While the no-load RTT is re-measured, the limit is this share of the learned one. */
#define GW_CLIMIT_PROBE_SHARE 0.75
/* The delivery floor: completions counted in bins of this width, the best
 * bin of the last GW_CLIMIT_RATE_BINS, times the no-load RTT, times this share. */
#define GW_CLIMIT_RATE_BIN_MS 100
#define GW_CLIMIT_RATE_BINS   10
#define GW_CLIMIT_FLOOR_SHARE 0.9

/*
 * One upstream's adaptive limit in one worker: plain data embedded in its
 * owner (no allocation, nothing to free), owned by the worker's pool; not
 * thread-safe (one thread). Fields are private to climit.c: read them
 * through the functions below.
 */
struct gw_climit {
	uint32_t limit; /* what gw_climit_get returns: est dithered, lower while probing */
	uint32_t min_limit, max_limit; /* 1 <= min_limit <= max_limit */
	double est;                    /* the learned limit, fractional, in [min, max] */
	double dither;                 /* fraction of est carried to the next limit, in [0, 1) */

	/* The window being gathered: ok samples sent after ignore_before_us. */
	uint64_t win_start_us;     /* completion time of its first sample */
	uint64_t win_rtt_sum_us;   /* sum of the RTTs */
	uint64_t win_inflight_sum; /* sum of the in-flight counts at send */
	uint32_t win_n;            /* samples */
	uint32_t win_peak;         /* highest in-flight count at send */
	uint64_t win_min_us;       /* lowest RTT, while seeding no_load_us */
	uint64_t rtt_us;           /* mean RTT of the last closed window, 0 before the first */

	/* The no-load RTT: the median of the last three probes' mean RTTs. */
	uint64_t probes_us[3];
	uint32_t nprobes;    /* 0..3 of probes_us hold a value */
	uint32_t probe_next; /* where the next one goes */
	uint64_t no_load_us; /* their median (the lower of two), or a seed; 0: none yet */
	double period_floor; /* RTT-based decreases stop here until the next period */
	uint64_t period_id;  /* now_ms / period_ms of the current period */
	uint32_t period_ms;  /* a power of two, so workers' periods line up */
	bool started;        /* a sample was seen: period_id is meaningful */

	/*
	 * The probe that re-measures the no-load RTT at the start of each
	 * period: the limit is lowered from probe_start_us to
	 * probe_send_end_us; the RTTs of requests sent from
	 * probe_send_from_us (the queue drained) are averaged until
	 * probe_end_us.
	 */
	bool probing; /* probe_* are meaningful */
	bool lowered; /* the limit is lowered */
	uint64_t probe_start_us, probe_send_from_us, probe_send_end_us, probe_end_us;
	uint64_t probe_sum_us;
	uint32_t probe_n;
	double probe_share; /* of est while lowered */

	/* Completions per GW_CLIMIT_RATE_BIN_MS over the last bins (ring), for
	 * the delivery floor. */
	uint32_t rate_bins[GW_CLIMIT_RATE_BINS];
	uint64_t rate_epoch; /* now_ms / GW_CLIMIT_RATE_BIN_MS of rate_bins[rate_epoch % N] */

	uint64_t ignore_before_us; /* samples sent earlier saw a limit that is gone */
	uint64_t cut_us;           /* time of the last loss backoff */
};

/* min_limit >= 1, max_limit >= min_limit (both forced so), initial clamped into [min, max]. */
void gw_climit_init(struct gw_climit *l, uint32_t initial, uint32_t min_limit, uint32_t max_limit);

/*
 * One finished request that held a slot: rtt_us its round-trip time to the
 * upstream, inflight the requests in flight to the upstream in this worker
 * when it was sent (itself included), ok false when it ended in a timeout
 * or reset (congestion: the limit is cut at once, multiplicatively). now_ms
 * is the caller's clock (a fake one in tests); it should not go backwards,
 * but nothing breaks if it does.
 */
void gw_climit_sample(struct gw_climit *l, uint64_t now_ms, uint64_t rtt_us, uint32_t inflight,
                      bool ok);

/*
 * The limit to admit against now, always within [min_limit, max_limit].
 * It is the learned limit (its fraction spread over successive calls of
 * gw_climit_sample: 2.4 gives 2 or 3, 3 two times in five), except for a
 * few RTTs at the start of each period when it is GW_CLIMIT_PROBE_SHARE of
 * it or less (the no-load RTT probe).
 */
uint32_t gw_climit_get(const struct gw_climit *l);

/* The learned limit, rounded: what gw_climit_get gives on average outside probes. */
uint32_t gw_climit_learned(const struct gw_climit *l);

/* For status/metrics: the no-load RTT estimate and the recent RTT, in us (0: none yet). */
uint64_t gw_climit_min_rtt_us(const struct gw_climit *l);
uint64_t gw_climit_rtt_us(const struct gw_climit *l);

#endif
