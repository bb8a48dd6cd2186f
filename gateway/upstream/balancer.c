/*
 * Load balancers (balancer.h): one small const vtable per algorithm, chosen
 * once at gw_balancer_new; a pick is one call through it, O(servers), and
 * allocates nothing.
 *
 * Inputs are trusted as the header states, with three conveniences: a NULL
 * usable means every server is usable, a NULL inflight means none has a
 * request in flight, a NULL share means every server has its full share.
 * A weight of 0 (never produced by the config loader, which enforces
 * 1..1000) counts as 1, so no algorithm divides by zero.
 *
 * The weight every algorithm uses is the configured weight times the share
 * in thousandths (1000 outside slow start): at most 1000 x 1000, so every
 * bound below holds with 2^20 in place of the largest weight. Scaling every
 * weight by the same 1000 changes no decision: a pool with no server in
 * slow start picks exactly as it would with the plain weights (and
 * least_request draws no random number).
 */
#include "balancer.h"

#include <stddef.h>
#include <stdlib.h>

#include "../util/alloc.h"

struct gw_balancer;

struct gw_balancer_ops {
	const char *name;
	int (*pick)(struct gw_balancer *b, const bool *usable, const uint32_t *inflight);
};

#define GW_BALANCER_SHARE_FULL 1000

/*
 * Ownership: allocated in one piece by gw_balancer_new (current[] is a
 * flexible array of upstream->nservers entries) and freed by
 * gw_balancer_free. upstream is borrowed from the config snapshot, which
 * outlives the balancer. Owned by one worker: never shared between threads.
 */
struct gw_balancer {
	const struct gw_balancer_ops *ops;
	const struct gw_upstream_conf *upstream; /* borrowed */
	uint64_t rng;                            /* random: splitmix64 state */
	const uint16_t *share;                   /* of the pick in progress (borrowed), or NULL */
	bool *drawn;       /* least_request with slow start: the servers in this pick */
	int64_t current[]; /* smooth WRR current weights */
};

static uint64_t gw_balancer_next_random(struct gw_balancer *b);

static inline bool gw_balancer_usable(const bool *usable, size_t i)
{
	return usable == NULL || usable[i];
}

static inline uint64_t gw_balancer_inflight(const uint32_t *inflight, size_t i)
{
	return inflight == NULL ? 0 : inflight[i];
}

/* The share of server i in the pick in progress, 1..1000 (0 as 1). */
static inline uint32_t gw_balancer_share(const struct gw_balancer *b, size_t i)
{
	uint32_t share = b->share == NULL ? GW_BALANCER_SHARE_FULL : b->share[i];

	if (share == 0)
		return 1;
	return share > GW_BALANCER_SHARE_FULL ? GW_BALANCER_SHARE_FULL : share;
}

/* The configured weight, 0 as 1. */
static inline int64_t gw_balancer_plain_weight(const struct gw_balancer *b, size_t i)
{
	uint32_t w = b->upstream->servers[i].weight;

	return w == 0 ? 1 : (int64_t)w;
}

/* The configured weight times the share (in thousandths). */
static inline int64_t gw_balancer_weight(const struct gw_balancer *b, size_t i)
{
	return gw_balancer_plain_weight(b, i) * (int64_t)gw_balancer_share(b, i);
}

/*
 * round_robin: smooth weighted round robin, as nginx does it. Each pick adds
 * every usable server's weight to its current weight, takes the server with
 * the largest current weight and subtracts the total of the usable weights
 * from it. Over any window of sum(weights) picks every server gets exactly
 * its share, and the picks of a heavy server are spread out (5,1,1 gives
 * a a b a c a a) instead of arriving as a burst of five, which would hit
 * one server with a spike while the others idle. A server that turns
 * unusable just stops accumulating, so its share goes to the others at
 * once and it rejoins smoothly when it comes back.
 *
 * The tie break (lowest index) keeps the sequence deterministic. Current
 * weights stay within +-(servers * max weight), far inside int64_t.
 *
 * plain_turns (least_request's rotation among its ties) takes the
 * configured weights without the shares: slow start has already been
 * applied by the draw that let a server into the pick.
 */
static int gw_balancer_rr_pick_among(struct gw_balancer *b, const bool *usable,
                                     const uint32_t *inflight, const uint64_t *tie_num,
                                     const uint64_t *tie_den, bool plain_turns)
{
	size_t n = b->upstream->nservers, i;
	int64_t total = 0, w;
	int best = -1;

	for (i = 0; i < n; i++) {
		if (!gw_balancer_usable(usable, i))
			continue;
		/* least_request restricts the rotation to the least loaded. */
		if (tie_num != NULL && gw_balancer_inflight(inflight, i) * *tie_den !=
		                           *tie_num * (uint64_t)gw_balancer_weight(b, i))
			continue;
		w = plain_turns ? gw_balancer_plain_weight(b, i) * GW_BALANCER_SHARE_FULL
		                : gw_balancer_weight(b, i);
		b->current[i] += w;
		total += w;
		if (best < 0 || b->current[i] > b->current[best])
			best = (int)i;
	}
	if (best >= 0)
		b->current[best] -= total;
	return best;
}

static int gw_balancer_rr_pick(struct gw_balancer *b, const bool *usable, const uint32_t *inflight)
{
	return gw_balancer_rr_pick_among(b, usable, inflight, NULL, NULL, false);
}

static const struct gw_balancer_ops gw_balancer_round_robin = {
    .name = "round_robin",
    .pick = gw_balancer_rr_pick,
};

/*
 * least_request: the fewest requests in flight relative to weight, like
 * nginx's least_conn. In-flight count is the cheapest signal of a slow or
 * overloaded server that a proxy sees without probing: a server that slows
 * down accumulates requests and stops receiving new ones, which round robin
 * would keep sending. Ratios are compared by cross-multiplying
 * (inflight[a] * weight[b] < inflight[b] * weight[a]), exact and with no
 * division; with inflight below 2^32 and weights below 2^32 nothing
 * overflows a uint64_t.
 *
 * Ties are common (an idle pool is all zeros) and go to smooth weighted
 * round robin among the tied servers, so equal servers share load evenly
 * (plain "first lowest index" would send every request of a quiet pool to
 * server 0) and a lightly loaded pool still follows the weights.
 *
 * Slow start: a server whose share is below 1000 takes part in a pick only
 * when a draw below its share (out of 1000) says so, and then its in-flight
 * count is weighed against weight x share. Scaling the weight alone is not
 * enough: with a request or two in flight per server, the fewest in flight
 * is the returning server whenever it has none, whatever its weight (three
 * equal servers, one at share 100, simulated with Poisson arrivals: it got
 * 17-22% of the picks at 1 to 3 requests in flight in the pool, against
 * 4.8% for round robin; with the draw, 3.5-6.7% at any load from 0.1 to 30
 * in flight). The draw keeps the idle case right (it joins the rotation in
 * about share of the picks) and the weighed ratio the loaded one. When no
 * usable server is drawn, all usable ones take part: the draw never leaves
 * a pick without a server.
 */
static const bool *gw_balancer_lr_draw(struct gw_balancer *b, const bool *usable)
{
	size_t n = b->upstream->nservers, i, in = 0;
	bool ramping = false;

	if (b->share == NULL)
		return usable;
	for (i = 0; i < n; i++) {
		uint32_t share = gw_balancer_share(b, i);

		b->drawn[i] = gw_balancer_usable(usable, i);
		if (b->drawn[i] && share < GW_BALANCER_SHARE_FULL) {
			ramping = true;
			b->drawn[i] = gw_balancer_next_random(b) % GW_BALANCER_SHARE_FULL < share;
		}
		in += b->drawn[i];
	}
	return ramping && in > 0 ? b->drawn : usable;
}

static int gw_balancer_lr_pick(struct gw_balancer *b, const bool *usable, const uint32_t *inflight)
{
	size_t n = b->upstream->nservers, i;
	uint64_t best_num = 0, best_den = 0, num, den;
	int best = -1;

	usable = gw_balancer_lr_draw(b, usable);
	for (i = 0; i < n; i++) {
		if (!gw_balancer_usable(usable, i))
			continue;
		num = gw_balancer_inflight(inflight, i);
		den = (uint64_t)gw_balancer_weight(b, i);
		if (best < 0 || num * best_den < best_num * den) {
			best = (int)i;
			best_num = num;
			best_den = den;
		}
	}
	if (best < 0)
		return -1;
	return gw_balancer_rr_pick_among(b, usable, inflight, &best_num, &best_den, true);
}

static const struct gw_balancer_ops gw_balancer_least_request = {
    .name = "least_request",
    .pick = gw_balancer_lr_pick,
};

/*
 * random: weighted random. It keeps no state shared between picks that
 * matters for fairness, so many gateways (or workers) that start at the same
 * moment do not march through the servers in lock step the way identically
 * seeded round robins can; in expectation each server gets weight/total of
 * the load. The generator is splitmix64, one per balancer (so one per worker,
 * no locks), seeded by the caller: fast, full period 2^64, and good enough
 * statistically for load spreading (not for anything secret). The modulo
 * bias of x % total is below total / 2^64, i.e. nothing.
 */
static uint64_t gw_balancer_next_random(struct gw_balancer *b)
{
	uint64_t z = (b->rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static int gw_balancer_random_pick(struct gw_balancer *b, const bool *usable,
                                   const uint32_t *inflight)
{
	size_t n = b->upstream->nservers, i;
	uint64_t total = 0, r;
	int last = -1;

	for (i = 0; i < n; i++) {
		if (gw_balancer_usable(usable, i))
			total += (uint64_t)gw_balancer_weight(b, i);
	}
	if (total == 0)
		return -1;
	r = gw_balancer_next_random(b) % total;
	for (i = 0; i < n; i++) {
		if (!gw_balancer_usable(usable, i))
			continue;
		last = (int)i;
		if (r < (uint64_t)gw_balancer_weight(b, i))
			break;
		r -= (uint64_t)gw_balancer_weight(b, i);
	}
	return last;
}

static const struct gw_balancer_ops gw_balancer_random = {
    .name = "random",
    .pick = gw_balancer_random_pick,
};

struct gw_balancer *gw_balancer_new(const struct gw_upstream_conf *upstream, uint64_t seed)
{
	struct gw_balancer *b;

	b = gw_calloc(1, sizeof(*b) + upstream->nservers * sizeof(b->current[0]));
	b->upstream = upstream;
	b->rng = seed;
	b->drawn = gw_calloc(upstream->nservers ? upstream->nservers : 1, sizeof(*b->drawn));
	switch (upstream->balance) {
	case GW_BALANCE_LEAST_REQUEST:
		b->ops = &gw_balancer_least_request;
		break;
	case GW_BALANCE_RANDOM:
		b->ops = &gw_balancer_random;
		break;
	case GW_BALANCE_ROUND_ROBIN:
	default:
		b->ops = &gw_balancer_round_robin;
		break;
	}
	return b;
}

void gw_balancer_free(struct gw_balancer *b)
{
	if (!b)
		return;
	free(b->drawn);
	free(b);
}

int gw_balancer_pick(struct gw_balancer *b, const bool *usable, const uint32_t *inflight,
                     const uint16_t *share)
{
	int idx;

	b->share = share;
	idx = b->ops->pick(b, usable, inflight);
	b->share = NULL;
	return idx;
}
