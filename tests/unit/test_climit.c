/*
 * Adaptive concurrency limit, against a simulated upstream.
 *
 * The simulation is discrete-event, on a fake clock in microseconds, with a
 * seeded RNG, so every run is the same run. The upstream serves at most
 * `capacity` requests at once, each for `service` +-5% (uniform, `spread`);
 * requests beyond the capacity wait FIFO inside it, so their RTT grows.
 * Each client (one per worker, each with its own gw_climit) offers an
 * open-loop load (evenly spaced or Poisson arrivals) and sends only while
 * its in-flight count is below gw_climit_get(). The rest wait outside, in
 * the client's own queue (the gateway's priority queue), which holds
 * SIM_WAIT_MAX requests; beyond that they are dropped (shed). A request
 * that waits outside is sent the moment a slot frees, and its wait there
 * is not part of its RTT: the limiter sees the round trip to the upstream
 * only, as in the gateway.
 *
 * Once a period the limiter probes the no-load RTT by lowering
 * gw_climit_get() for a few RTTs, so "the limit stays within [a, b]" is
 * checked every simulated millisecond on the learned limit
 * (gw_climit_learned), and gw_climit_get() must be within [a, b] at least
 * 95% of the time.
 */
#include <check.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "modules/concurrency/climit.h"
#include "check_suite.h"

/* xorshift64*: a fixed sequence, so a failure can be replayed. */
static uint64_t next_random(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

/* Uniform in (0, 1]. */
static double next_unit(uint64_t *s)
{
	return (double)((next_random(s) >> 11) + 1) / 9007199254740992.0;
}

/* ---- the simulated upstream and its clients ----------------------------- */

#define SIM_MS        1000ull
#define SIM_SEC       (1000 * SIM_MS)
#define SIM_QUEUE     8192 /* requests inside the upstream, waiting or served */
#define SIM_CLIENTS   8
#define SIM_WAIT_MAX  256 /* each client's own waiting room */
#define SIM_MIN_LIMIT 1
#define SIM_MAX_LIMIT 1000

struct sim_req {
	uint64_t sent_us, done_us;
	uint32_t inflight; /* the client's in-flight count when it was sent, itself included */
	unsigned client;
};

struct sim_client {
	struct gw_climit lim;
	uint32_t inflight, waiting;
	double per_sec; /* offered load, requests per second */
	bool poisson;
	double next_arrival_us;
	uint32_t peak_inflight; /* since sim_measure */
};

/* One simulation; lives on the test's stack, nothing to free. */
struct sim {
	uint64_t now_us, rng;
	uint32_t capacity, busy;
	uint64_t service_us;
	double spread;                  /* service time is service_us * (1 +- spread), uniform */
	struct sim_req fifo[SIM_QUEUE]; /* waiting inside the upstream */
	uint32_t fifo_head, fifo_len;
	struct sim_req heap[SIM_QUEUE]; /* in service, min-heap on done_us */
	uint32_t heap_len;
	struct sim_client clients[SIM_CLIENTS];
	unsigned nclients;
	/* since sim_measure */
	uint64_t m_start_us, busy_area, queue_area, rtt_sum_us, rtt_n;
};

static void heap_push(struct sim *s, struct sim_req r)
{
	uint32_t i = s->heap_len++;

	if (i >= SIM_QUEUE)
		ck_abort_msg("simulated upstream full");
	while (i > 0 && s->heap[(i - 1) / 2].done_us > r.done_us) {
		s->heap[i] = s->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	s->heap[i] = r;
}

static struct sim_req heap_pop(struct sim *s)
{
	struct sim_req top = s->heap[0], last = s->heap[--s->heap_len];
	uint32_t i = 0;

	for (;;) {
		uint32_t c = 2 * i + 1;

		if (c >= s->heap_len)
			break;
		if (c + 1 < s->heap_len && s->heap[c + 1].done_us < s->heap[c].done_us)
			c++;
		if (s->heap[c].done_us >= last.done_us)
			break;
		s->heap[i] = s->heap[c];
		i = c;
	}
	if (s->heap_len > 0)
		s->heap[i] = last;
	return top;
}

static void start_service(struct sim *s, struct sim_req r)
{
	double jitter = 1 - s->spread + 2 * s->spread * next_unit(&s->rng);

	s->busy++;
	r.done_us = s->now_us + (uint64_t)((double)s->service_us * jitter);
	heap_push(s, r);
}

static void start_queued(struct sim *s)
{
	while (s->busy < s->capacity && s->fifo_len > 0) {
		struct sim_req r = s->fifo[s->fifo_head];

		s->fifo_head = (s->fifo_head + 1) % SIM_QUEUE;
		s->fifo_len--;
		start_service(s, r);
	}
}

static void send_request(struct sim *s, unsigned c)
{
	struct sim_client *cl = &s->clients[c];
	struct sim_req r = {.sent_us = s->now_us, .inflight = ++cl->inflight, .client = c};

	if (cl->inflight > cl->peak_inflight)
		cl->peak_inflight = cl->inflight;
	if (s->busy < s->capacity) {
		start_service(s, r);
		return;
	}
	if (s->fifo_len >= SIM_QUEUE)
		ck_abort_msg("simulated upstream full");
	s->fifo[(s->fifo_head + s->fifo_len) % SIM_QUEUE] = r;
	s->fifo_len++;
}

static void send_waiting(struct sim *s, unsigned c)
{
	struct sim_client *cl = &s->clients[c];

	while (cl->waiting > 0 && cl->inflight < gw_climit_get(&cl->lim)) {
		cl->waiting--;
		send_request(s, c);
	}
}

static void schedule_arrival(struct sim *s, struct sim_client *cl)
{
	double gap = 1e6 / cl->per_sec;

	cl->next_arrival_us += cl->poisson ? -log(next_unit(&s->rng)) * gap : gap;
}

static void on_arrival(struct sim *s, unsigned c)
{
	struct sim_client *cl = &s->clients[c];

	if (cl->waiting == 0 && cl->inflight < gw_climit_get(&cl->lim))
		send_request(s, c);
	else if (cl->waiting < SIM_WAIT_MAX)
		cl->waiting++;
	schedule_arrival(s, cl);
}

static void on_done(struct sim *s)
{
	struct sim_req r = heap_pop(s);
	struct sim_client *cl = &s->clients[r.client];

	s->busy--;
	cl->inflight--;
	gw_climit_sample(&cl->lim, s->now_us / SIM_MS, s->now_us - r.sent_us, r.inflight, true);
	s->rtt_sum_us += s->now_us - r.sent_us;
	s->rtt_n++;
	start_queued(s);
	send_waiting(s, r.client);
}

/* Runs every event up to end_us, completions before arrivals at equal times. */
static void sim_run_until(struct sim *s, uint64_t end_us)
{
	for (;;) {
		uint64_t next = end_us;
		int who = -1; /* -1: a completion or the end, else the arriving client */

		if (s->heap_len > 0 && s->heap[0].done_us < next)
			next = s->heap[0].done_us;
		for (unsigned c = 0; c < s->nclients; c++) {
			uint64_t t = (uint64_t)s->clients[c].next_arrival_us;

			if (s->clients[c].per_sec > 0 && t < next) {
				next = t;
				who = (int)c;
			}
		}
		if (next > s->now_us) {
			s->busy_area +=
			    (s->busy < s->capacity ? s->busy : s->capacity) * (next - s->now_us);
			s->queue_area += s->fifo_len * (next - s->now_us);
			s->now_us = next;
		}
		if (who >= 0)
			on_arrival(s, (unsigned)who);
		else if (s->heap_len > 0 && s->heap[0].done_us <= next)
			on_done(s);
		else
			return;
	}
}

/* Offered load of client c: `times` the upstream's throughput capacity/service. */
static void sim_offer(struct sim *s, unsigned c, double times, bool poisson)
{
	struct sim_client *cl = &s->clients[c];

	cl->per_sec = times * s->capacity * (double)SIM_SEC / (double)s->service_us;
	cl->poisson = poisson;
	cl->next_arrival_us = (double)s->now_us;
	schedule_arrival(s, cl);
}

static void sim_init(struct sim *s, unsigned nclients, uint32_t capacity, uint64_t service_us,
                     uint32_t initial_limit, uint64_t seed)
{
	if (nclients > SIM_CLIENTS)
		ck_abort_msg("at most %d clients", SIM_CLIENTS);
	*s = (struct sim){
	    .rng = seed, .capacity = capacity, .service_us = service_us, .spread = 0.05};
	s->nclients = nclients;
	for (unsigned c = 0; c < nclients; c++)
		gw_climit_init(&s->clients[c].lim, initial_limit, SIM_MIN_LIMIT, SIM_MAX_LIMIT);
}

static void sim_set_capacity(struct sim *s, uint32_t capacity)
{
	s->capacity = capacity;
	start_queued(s);
}

/* Starts the measurement window of sim_utilisation, sim_mean_rtt and peak_inflight. */
static void sim_measure(struct sim *s)
{
	s->m_start_us = s->now_us;
	s->busy_area = 0;
	s->queue_area = 0;
	s->rtt_sum_us = 0;
	s->rtt_n = 0;
	for (unsigned c = 0; c < s->nclients; c++)
		s->clients[c].peak_inflight = s->clients[c].inflight;
}

static double sim_utilisation(const struct sim *s)
{
	return (double)s->busy_area / ((double)s->capacity * (double)(s->now_us - s->m_start_us));
}

/* Requests waiting inside the upstream, on average over time. */
static double sim_mean_queue(const struct sim *s)
{
	return (double)s->queue_area / (double)(s->now_us - s->m_start_us);
}

static double sim_mean_rtt_us(const struct sim *s)
{
	return s->rtt_n ? (double)s->rtt_sum_us / (double)s->rtt_n : 0;
}

static uint32_t learned_sum(const struct sim *s)
{
	uint32_t n = 0;

	for (unsigned c = 0; c < s->nclients; c++)
		n += gw_climit_learned(&s->clients[c].lim);
	return n;
}

static uint32_t get_sum(const struct sim *s)
{
	uint32_t n = 0;

	for (unsigned c = 0; c < s->nclients; c++)
		n += gw_climit_get(&s->clients[c].lim);
	return n;
}

/*
 * Runs for `ms` milliseconds and checks, every millisecond, that the
 * learned limits (summed over clients) stay within [lo, hi]; and that the
 * admission limits (gw_climit_get) do so at least 95% of the time (the
 * rest: probes).
 */
static void run_within(struct sim *s, uint64_t ms, uint32_t lo, uint32_t hi)
{
	uint64_t outside = 0;

	for (uint64_t i = 0; i < ms; i++) {
		uint32_t learned, got;

		sim_run_until(s, s->now_us + SIM_MS);
		learned = learned_sum(s);
		got = get_sum(s);
		/* ck_assert costs a syscall even when it holds: test first */
		if (learned < lo || learned > hi)
			ck_abort_msg("t=%.3fs: learned limit %u outside [%u, %u]",
			             (double)s->now_us / SIM_SEC, learned, lo, hi);
		outside += got < lo || got > hi;
	}
	ck_assert_msg(outside * 100 <= ms * 5, "limit outside [%u, %u] %llu ms of %llu", lo, hi,
	              (unsigned long long)outside, (unsigned long long)ms);
}

/* Runs until the learned limits sum to lo..hi, for at most ms; returns the time taken, in ms. */
static uint64_t run_until_within(struct sim *s, uint64_t ms, uint32_t lo, uint32_t hi)
{
	for (uint64_t i = 1; i <= ms; i++) {
		uint32_t learned;

		sim_run_until(s, s->now_us + SIM_MS);
		learned = learned_sum(s);
		if (learned >= lo && learned <= hi)
			return i;
	}
	ck_abort_msg("learned limit %u not within [%u, %u] after %llu ms", learned_sum(s), lo, hi,
	             (unsigned long long)ms);
	return ms;
}

/* The upstream kept busy, its own queue short, the RTT near the no-load one. */
static void check_service(const struct sim *s, double rtt_times, double queue_share)
{
	ck_assert_msg(sim_utilisation(s) >= 0.98, "utilisation %.4f", sim_utilisation(s));
	ck_assert_msg(sim_mean_rtt_us(s) <= rtt_times * (double)s->service_us, "mean rtt %.0f us",
	              sim_mean_rtt_us(s));
	ck_assert_msg(sim_mean_queue(s) <= queue_share * s->capacity, "upstream queue %.2f",
	              sim_mean_queue(s));
}

/* ---- convergence ------------------------------------------------------- */

/*
 * C=20, S=10ms, 4x offered: after 10 s the limit sits in [C, 1.3C], the
 * upstream is busy >= 98% of the time, its own queue stays under 0.3C and
 * the mean RTT under 1.3 S; with evenly spaced and with Poisson arrivals.
 */
static void check_converges(uint32_t initial, bool poisson, uint64_t seed)
{
	struct sim s;

	sim_init(&s, 1, 20, 10 * SIM_MS, initial, seed);
	sim_offer(&s, 0, 4.0, poisson);
	sim_run_until(&s, 10 * SIM_SEC);
	sim_measure(&s);
	run_within(&s, 5000, 20, 26);
	check_service(&s, 1.3, 0.3);
	ck_assert_uint_ge(gw_climit_min_rtt_us(&s.clients[0].lim), 9 * SIM_MS);
	ck_assert_uint_le(gw_climit_min_rtt_us(&s.clients[0].lim), 11 * SIM_MS);
	ck_assert_uint_ge(gw_climit_rtt_us(&s.clients[0].lim), 9 * SIM_MS);
	ck_assert_uint_le(gw_climit_rtt_us(&s.clients[0].lim), 13 * SIM_MS);
}

START_TEST(converges_to_capacity_with_a_short_upstream_queue)
{
	check_converges(20, false, 0x9e3779b97f4a7c15ull);
	check_converges(20, true, 0x2545f4914f6cdd1dull);
}
END_TEST

/* Started at min_limit or far above capacity, it settles the same. */
START_TEST(converges_from_min_limit_and_from_far_above_capacity)
{
	check_converges(SIM_MIN_LIMIT, true, 3);
	check_converges(200, true, 7);
}
END_TEST

/*
 * A service time spread of +-30% (not 5%) is no queue: the limit still
 * sits in [C, 1.35C], the upstream queue under 0.3C.
 */
START_TEST(converges_with_a_wide_service_time_spread)
{
	struct sim s;

	sim_init(&s, 1, 20, 10 * SIM_MS, 20, 31);
	s.spread = 0.3;
	sim_offer(&s, 0, 4.0, true);
	sim_run_until(&s, 10 * SIM_SEC);
	sim_measure(&s);
	run_within(&s, 5000, 20, 27);
	check_service(&s, 1.3, 0.3);
}
END_TEST

/* ---- following the upstream ---------------------------------------------- */

START_TEST(follows_capacity_down_within_3s)
{
	struct sim s;

	sim_init(&s, 1, 20, 10 * SIM_MS, 20, 11);
	sim_offer(&s, 0, 4.0, true);
	sim_run_until(&s, 10 * SIM_SEC);
	sim_set_capacity(&s, 10);
	sim_run_until(&s, 13 * SIM_SEC);
	sim_measure(&s);
	run_within(&s, 5000, 10, 13);
	check_service(&s, 1.3, 0.3);
}
END_TEST

START_TEST(follows_capacity_up_within_5s)
{
	struct sim s;

	sim_init(&s, 1, 10, 10 * SIM_MS, 20, 13);
	sim_offer(&s, 0, 4.0, true);
	sim_run_until(&s, 10 * SIM_SEC);
	ck_assert_uint_le(gw_climit_learned(&s.clients[0].lim), 13);
	sim_set_capacity(&s, 40);
	run_until_within(&s, 5000, 40, SIM_MAX_LIMIT);
	sim_run_until(&s, 15 * SIM_SEC);
	sim_measure(&s);
	run_within(&s, 5000, 40, 52);
	check_service(&s, 1.3, 0.3);
}
END_TEST

/*
 * The upstream becomes slower for good (10 ms -> 20 ms) at the same
 * capacity. The slowness first reads as a queue and the limit falls (by at
 * most half a period, never to min_limit); the probes measure the new
 * no-load RTT, and within 10 s the limit is back in [C, 1.3C] to stay.
 */
START_TEST(min_rtt_rises_when_the_upstream_slows_for_good)
{
	struct sim s;
	uint32_t low = UINT32_MAX;

	sim_init(&s, 1, 20, 10 * SIM_MS, 20, 17);
	sim_offer(&s, 0, 4.0, true);
	sim_run_until(&s, 10 * SIM_SEC);
	s.service_us = 20 * SIM_MS;
	for (int i = 0; i < 10000; i++) {
		sim_run_until(&s, s.now_us + SIM_MS);
		low = gw_climit_learned(&s.clients[0].lim) < low
		          ? gw_climit_learned(&s.clients[0].lim)
		          : low;
	}
	ck_assert_uint_gt(low, SIM_MIN_LIMIT);
	ck_assert_uint_ge(gw_climit_min_rtt_us(&s.clients[0].lim), 19 * SIM_MS);
	ck_assert_uint_le(gw_climit_min_rtt_us(&s.clients[0].lim), 21 * SIM_MS);
	sim_measure(&s);
	run_within(&s, 5000, 20, 26);
	check_service(&s, 1.3, 0.3);
}
END_TEST

/* ---- light load ---------------------------------------------------------- */

/*
 * 0.25x of C=20 (Poisson, 5 in flight on average): starting at 1, the
 * limit grows to what the bursts use and no further (at most twice the
 * peak in flight, and 1.25C); when the load jumps to 2x, it reaches C
 * within 3 s.
 */
START_TEST(light_load_does_not_inflate_the_limit_nor_collapse_it)
{
	struct sim s;
	uint32_t high = 0;

	sim_init(&s, 1, 20, 10 * SIM_MS, 1, 19);
	sim_offer(&s, 0, 0.25, true);
	sim_run_until(&s, 2 * SIM_SEC);
	sim_measure(&s);
	for (int i = 0; i < 30000; i++) {
		uint32_t l;

		sim_run_until(&s, s.now_us + SIM_MS);
		l = gw_climit_learned(&s.clients[0].lim);
		high = l > high ? l : high;
	}
	ck_assert_msg(high <= 2 * s.clients[0].peak_inflight && high <= 25,
	              "limit reached %u, peak in flight %u", high, s.clients[0].peak_inflight);
	ck_assert_msg(sim_mean_rtt_us(&s) <= 1.05 * 10 * SIM_MS, "mean rtt %.0f us",
	              sim_mean_rtt_us(&s));
	sim_offer(&s, 0, 2.0, true);
	run_until_within(&s, 3000, 20, SIM_MAX_LIMIT);
}
END_TEST

/* Light load under a high limit: the unused limit is neither grown nor cut. */
START_TEST(light_load_leaves_an_unused_limit_alone)
{
	struct sim s;

	sim_init(&s, 1, 20, 10 * SIM_MS, 50, 23);
	sim_offer(&s, 0, 0.25, true);
	for (int i = 0; i < 20000; i++) {
		sim_run_until(&s, s.now_us + SIM_MS);
		if (gw_climit_learned(&s.clients[0].lim) != 50)
			ck_abort_msg("t=%.3fs: limit %u", (double)s.now_us / SIM_SEC,
			             gw_climit_learned(&s.clients[0].lim));
	}
}
END_TEST

/* ---- loss ---------------------------------------------------------------- */

START_TEST(loss_cuts_multiplicatively_never_below_min)
{
	struct gw_climit l;
	uint64_t now = 1000;
	double want = 400;

	gw_climit_init(&l, 400, 5, 1000);
	/* each failure sent after the previous cut: one cut each */
	for (int i = 0; i < 20; i++) {
		want = want * GW_CLIMIT_BACKOFF < 5 ? 5 : want * GW_CLIMIT_BACKOFF;
		now += 10;
		gw_climit_sample(&l, now, 5000, gw_climit_learned(&l), false);
		ck_assert_uint_ge(gw_climit_get(&l), 5);
		ck_assert_uint_eq(gw_climit_learned(&l), (uint32_t)(want + 0.5));
	}
	ck_assert_uint_eq(gw_climit_learned(&l), 5);
}
END_TEST

/* Like TCP: the failures of requests sent before a cut were answered by that cut. */
START_TEST(loss_of_one_flight_cuts_once)
{
	struct gw_climit l;

	gw_climit_init(&l, 400, 1, 1000);
	/* 300 timeouts of requests sent at t=0..299 us, all reported at t=1000 ms: one cut */
	for (int i = 0; i < 300; i++)
		gw_climit_sample(&l, 1000, 1000 * 1000 - (uint64_t)i, 400, false);
	ck_assert_uint_eq(gw_climit_learned(&l), 200);
	/* a request sent after that cut fails: a second cut */
	gw_climit_sample(&l, 1100, 50 * 1000, 200, false);
	ck_assert_uint_eq(gw_climit_learned(&l), 100);
}
END_TEST

/* Under load, a burst of resets halves the limit; it grows back once requests succeed. */
START_TEST(loss_under_load_cuts_then_recovers)
{
	struct sim s;
	struct gw_climit *l = &s.clients[0].lim;
	uint32_t before;

	sim_init(&s, 1, 20, 10 * SIM_MS, 20, 37);
	sim_offer(&s, 0, 4.0, true);
	sim_run_until(&s, 10 * SIM_SEC);
	before = gw_climit_learned(l);
	for (uint32_t i = 0; i < 20; i++)
		gw_climit_sample(l, s.now_us / SIM_MS, 5 * SIM_MS, before, false);
	ck_assert_uint_le(gw_climit_learned(l), (before + 1) / 2);
	ck_assert_uint_ge(gw_climit_learned(l), before / 2 - 1);
	run_until_within(&s, 1000, 20, 26);
}
END_TEST

/* ---- bounds -------------------------------------------------------------- */

START_TEST(init_clamps_initial_and_bounds)
{
	struct gw_climit l;

	gw_climit_init(&l, 0, 3, 10);
	ck_assert_uint_eq(gw_climit_get(&l), 3);
	gw_climit_init(&l, 50, 3, 10);
	ck_assert_uint_eq(gw_climit_get(&l), 10);
	gw_climit_init(&l, 50, 0, 0);
	ck_assert_uint_eq(gw_climit_get(&l), 1);
	gw_climit_init(&l, 5, 8, 4);
	ck_assert_uint_eq(gw_climit_get(&l), 8);
	ck_assert_uint_eq(gw_climit_learned(&l), 8);
	ck_assert_uint_eq(gw_climit_min_rtt_us(&l), 0);
	ck_assert_uint_eq(gw_climit_rtt_us(&l), 0);
}
END_TEST

START_TEST(stays_within_bounds_under_random_samples)
{
	static const uint32_t bounds[][2] = {
	    {1, 1}, {1, 2}, {1, 1000}, {5, 5}, {3, 50}, {100, 10000}, {1, UINT32_MAX},
	};
	uint64_t seed = 0xdeadbeefcafef00dull;

	for (size_t b = 0; b < sizeof(bounds) / sizeof(bounds[0]); b++) {
		uint32_t lo = bounds[b][0], hi = bounds[b][1];
		struct gw_climit l;
		uint64_t now = next_random(&seed) % 100000;

		gw_climit_init(&l, (uint32_t)next_random(&seed), lo, hi);
		for (int i = 0; i < 200000; i++) {
			uint64_t x = next_random(&seed), rtt;
			uint32_t inflight;

			/* mostly small steps forward, sometimes large jumps or back */
			switch (x % 16) {
			case 0:
				now += next_random(&seed) % 100000;
				break;
			case 1:
				now -= now > 50 ? next_random(&seed) % 50 : 0;
				break;
			case 2:
				now = x % 64 == 2 ? next_random(&seed) : now;
				break;
			default:
				now += (x >> 8) % 3;
			}
			switch ((x >> 4) % 8) {
			case 0:
				rtt = 0;
				break;
			case 1:
				rtt = next_random(&seed);
				break;
			case 2:
				rtt = 1 + (x >> 20) % 100;
				break;
			default:
				rtt = 1000 + (x >> 20) % 100000;
			}
			inflight = (x >> 12) % 8 == 0 ? (uint32_t)next_random(&seed)
			                              : (uint32_t)((x >> 32) % 64);
			gw_climit_sample(&l, now, rtt, inflight, (x >> 40) % 50 != 0);
			if (gw_climit_get(&l) < lo || gw_climit_get(&l) > hi ||
			    gw_climit_learned(&l) < lo || gw_climit_learned(&l) > hi)
				ck_abort_msg("bounds [%u, %u], sample %d: limit %u, learned %u", lo,
				             hi, i, gw_climit_get(&l), gw_climit_learned(&l));
		}
	}
}
END_TEST

/* ---- workers sharing an upstream ----------------------------------------- */

/*
 * Two workers, each with its own limiter and 2x of C=20 (4x in all), share
 * one upstream: the sum of their limits settles within [C, 1.4C], the
 * upstream stays busy, its queue under 0.3C and the RTT under 1.3 S.
 */
START_TEST(two_workers_share_capacity)
{
	struct sim s;

	sim_init(&s, 2, 20, 10 * SIM_MS, 20, 29);
	sim_offer(&s, 0, 2.0, true);
	sim_offer(&s, 1, 2.0, true);
	sim_run_until(&s, 10 * SIM_SEC);
	sim_measure(&s);
	run_within(&s, 5000, 20, 28);
	check_service(&s, 1.3, 0.3);
}
END_TEST

/*
 * Eight workers start at 20 each (8x the upstream's capacity of 20) and
 * share 4x of load; each worker's share is 2 or 3, where one request is
 * 40% of it and min_limit (1) keeps a probe from lowering it. After 5 s
 * their limits sum to [C, 1.4C] on average, the upstream stays busy, its
 * queue under 0.4C (0.2C..0.33C over 40 seeds) and the RTT under 1.4 S.
 */
START_TEST(eight_workers_share_capacity_from_a_cold_start)
{
	struct sim s;
	uint64_t sum = 0;

	sim_init(&s, 8, 20, 10 * SIM_MS, 20, 41);
	for (unsigned c = 0; c < 8; c++)
		sim_offer(&s, c, 0.5, true);
	sim_run_until(&s, 5 * SIM_SEC);
	sim_measure(&s);
	for (int i = 0; i < 5000; i++) {
		sim_run_until(&s, s.now_us + SIM_MS);
		sum += learned_sum(&s);
	}
	ck_assert_msg(sum >= 20 * 5000 && sum <= 28 * 5000, "mean limit %.2f", sum / 5000.0);
	check_service(&s, 1.4, 0.4);
}
END_TEST

/* ---- suite ------------------------------------------------------------- */

static Suite *climit_suite(void)
{
	Suite *s = suite_create("climit");

	gw_test_add_case(s, "converges_to_capacity_with_a_short_upstream_queue",
	                 converges_to_capacity_with_a_short_upstream_queue,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "converges_from_min_limit_and_from_far_above_capacity",
	                 converges_from_min_limit_and_from_far_above_capacity,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "converges_with_a_wide_service_time_spread",
	                 converges_with_a_wide_service_time_spread, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "follows_capacity_down_within_3s", follows_capacity_down_within_3s,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "follows_capacity_up_within_5s", follows_capacity_up_within_5s,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "min_rtt_rises_when_the_upstream_slows_for_good",
	                 min_rtt_rises_when_the_upstream_slows_for_good, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "light_load_does_not_inflate_the_limit_nor_collapse_it",
	                 light_load_does_not_inflate_the_limit_nor_collapse_it,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "light_load_leaves_an_unused_limit_alone",
	                 light_load_leaves_an_unused_limit_alone, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "loss_cuts_multiplicatively_never_below_min",
	                 loss_cuts_multiplicatively_never_below_min, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "loss_of_one_flight_cuts_once", loss_of_one_flight_cuts_once,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "loss_under_load_cuts_then_recovers",
	                 loss_under_load_cuts_then_recovers, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "init_clamps_initial_and_bounds", init_clamps_initial_and_bounds,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "stays_within_bounds_under_random_samples",
	                 stays_within_bounds_under_random_samples, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "two_workers_share_capacity", two_workers_share_capacity,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "eight_workers_share_capacity_from_a_cold_start",
	                 eight_workers_share_capacity_from_a_cold_start, GW_TEST_DEFAULT_TIMEOUT);
	return s;
}

int main(void)
{
	return gw_test_run_suite(climit_suite(), CK_FORK);
}
