#include "hedge.h"
#include "retry.h"

#include <string.h>

#define SEC 1000ull
#define MIN (60 * SEC)

/* `after`: a duration, or auto. */
static int read_after(const struct gw_conf_ctx *ctx, const struct gw_node *n, const char *key,
                      void *obj)
{
	struct gw_retry_conf *c = obj;

	c->has_hedge = true;
	if (n->type == GW_NODE_SCALAR && strcmp(n->value, "auto") == 0) {
		c->hedge_auto = true;
		return 0;
	}
	return gw_conf_duration(ctx, n, key, 1, MIN, &c->hedge_after_ms);
}

const struct gw_conf_field gw_hedge_fields[] = {
    {GW_CONF_CUSTOM("after", read_after), .required = true},
    {GW_CONF_U32("max", struct gw_retry_conf, hedge_max, 1, GW_HEDGE_MAX, 1)},
    {.key = NULL},
};

/* Bucket b holds [100 us x 2^(b/4), 100 us x 2^((b+1)/4)), roughly: the
 * doubling d = floor(log2(us / 100)), then which quarter of it. */
static unsigned bucket_of(uint64_t us)
{
	uint64_t v = us / 100;
	unsigned d, b;

	if (v == 0)
		return 0;
	d = 63u - (unsigned)__builtin_clzll(v);
	/* the quarter from us itself: us / 100 would lose what is below 100 us */
	b = d * 4 + (unsigned)((us - (100ull << d)) * 4 / (100ull << d));
	return b < GW_HEDGE_LATENCY_BUCKETS ? b : GW_HEDGE_LATENCY_BUCKETS - 1;
}

/* The upper bound of bucket b in microseconds. */
static uint64_t bucket_top_us(unsigned b)
{
	return (100ull << (b / 4)) * (4 + b % 4 + 1) / 4;
}

void gw_latency_add(struct gw_latency *l, uint64_t us)
{
	atomic_fetch_add_explicit(&l->count[bucket_of(us)], 1, memory_order_relaxed);
}

uint64_t gw_latency_p95_us(struct gw_latency *l, uint64_t now_ms)
{
	uint64_t epoch = now_ms / GW_HEDGE_LATENCY_DECAY_MS;
	uint64_t seen = atomic_load_explicit(&l->epoch, memory_order_relaxed);
	uint32_t counts[GW_HEDGE_LATENCY_BUCKETS];
	uint64_t total = 0, acc = 0, p95 = 0;

	if (seen == epoch ||
	    !atomic_compare_exchange_strong_explicit(&l->epoch, &seen, epoch, memory_order_relaxed,
	                                             memory_order_relaxed))
		return atomic_load_explicit(&l->p95_us, memory_order_relaxed);
	/* this thread recomputes, then halves once per period gone by (an idle
	 * spell fades old samples as much as a busy one): older samples fade */
	{
		uint64_t periods = epoch > seen && seen ? epoch - seen : 1;
		unsigned shift = periods > 31 ? 31 : (unsigned)periods;

		for (unsigned b = 0; b < GW_HEDGE_LATENCY_BUCKETS; b++) {
			counts[b] = atomic_load_explicit(&l->count[b], memory_order_relaxed);
			total += counts[b];
			atomic_store_explicit(&l->count[b], counts[b] >> shift,
			                      memory_order_relaxed);
		}
	}
	if (total >= GW_HEDGE_AUTO_MIN_SAMPLES) {
		for (unsigned b = 0; b < GW_HEDGE_LATENCY_BUCKETS; b++) {
			acc += counts[b];
			if (acc * 100 >= total * 95) {
				p95 = bucket_top_us(b);
				break;
			}
		}
	}
	atomic_store_explicit(&l->p95_us, p95, memory_order_relaxed);
	return p95;
}
