/*
 * Hedged requests: `retry.hedge` of a route.
 *
 *   retry:
 *     hedge: { after: 50ms, max: 1 }   # or after: auto
 *
 * When a try has no response head `after` its start, the same request goes
 * to another server and the first answer wins (txn.c runs both tries and
 * cancels the loser). A server that black-holes requests or turns slow
 * then costs a client `after` plus a healthy server's latency, long before
 * outlier detection or a health check could take it out. Only requests
 * that may be retried are hedged (SPEC section 5: not POST or PATCH
 * without Idempotency-Key), never a breaker's probe, and each hedge spends
 * the route's retry budget: under a general slowdown the budget, not the
 * hedges, decides the extra load.
 *
 * `after: auto` waits the route's recent p95 latency (successful tries),
 * at least GW_HEDGE_AUTO_FLOOR_MS; before GW_HEDGE_AUTO_MIN_SAMPLES tries
 * are known, GW_HEDGE_AUTO_DEFAULT_MS.
 */
#ifndef GW_MODULES_RETRY_HEDGE_H
#define GW_MODULES_RETRY_HEDGE_H

#include <stdatomic.h>
#include <stdint.h>

#include "../../gateway/config/conf_read.h"

#define GW_HEDGE_AUTO_FLOOR_MS    10
#define GW_HEDGE_AUTO_DEFAULT_MS  50
#define GW_HEDGE_AUTO_MIN_SAMPLES 20
#define GW_HEDGE_MAX              3

/* The keys of `hedge` (into struct gw_retry_conf). */
extern const struct gw_conf_field gw_hedge_fields[];

/*
 * A route's recent latency, for `after: auto`: counts per bucket (each
 * doubling from 100 us cut in four equal parts, up to about 100 s), halved every
 * GW_HEDGE_LATENCY_DECAY_MS so that the last few seconds weigh most, and the p95
 * recomputed at most once a decay period by whichever thread notices the
 * period changed. Lock-free: workers add with relaxed atomics; a sample
 * lost to a racing halving changes nothing that matters.
 */
#define GW_HEDGE_LATENCY_BUCKETS  80
#define GW_HEDGE_LATENCY_DECAY_MS 1000

struct gw_latency {
	_Atomic uint32_t count[GW_HEDGE_LATENCY_BUCKETS];
	_Atomic uint64_t epoch;  /* now_ms / GW_HEDGE_LATENCY_DECAY_MS of the last recompute */
	_Atomic uint64_t p95_us; /* 0: not enough samples */
};

void gw_latency_add(struct gw_latency *l, uint64_t us);
/* The recent p95 in microseconds (0 while fewer than GW_HEDGE_AUTO_MIN_SAMPLES). */
uint64_t gw_latency_p95_us(struct gw_latency *l, uint64_t now_ms);

#endif
