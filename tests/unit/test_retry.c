/*
 * Retries: which outcomes and methods may be retried, the backoff bounds,
 * and the retry budget's arithmetic, window and behaviour under concurrent
 * workers. Time is a plain argument (a fake clock): nothing sleeps.
 */
#include <check.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "modules/retry/retry.h"
#include "check_suite.h"

/* xorshift64*: a fixed sequence, so a failure can be replayed. */
static uint64_t next_random(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

/* ---- conditions -------------------------------------------------------- */

START_TEST(default_conditions_are_connect_reset_timeout_and_502_503_504)
{
	const struct gw_retry_conf *c = &gw_retry_conf_default;

	ck_assert(gw_retry_condition_matches(c, GW_TRY_CONNECT_FAILURE, 0));
	ck_assert(gw_retry_condition_matches(c, GW_TRY_RESET, 0));
	ck_assert(gw_retry_condition_matches(c, GW_TRY_TIMEOUT, 0));
	ck_assert(gw_retry_condition_matches(c, GW_TRY_INVALID_RESPONSE, 0));
	ck_assert(gw_retry_condition_matches(c, GW_TRY_STATUS_FAILURE, 502));
	ck_assert(gw_retry_condition_matches(c, GW_TRY_STATUS_FAILURE, 503));
	ck_assert(gw_retry_condition_matches(c, GW_TRY_STATUS_FAILURE, 504));
	ck_assert(!gw_retry_condition_matches(c, GW_TRY_STATUS_FAILURE, 500));
	ck_assert(!gw_retry_condition_matches(c, GW_TRY_STATUS_FAILURE, 501));
	ck_assert(!gw_retry_condition_matches(c, GW_TRY_STATUS_FAILURE, 505));
	ck_assert(!gw_retry_condition_matches(c, GW_TRY_STATUS_FAILURE, 404));
	ck_assert(!gw_retry_condition_matches(c, GW_TRY_OK, 200));
	ck_assert(!gw_retry_condition_matches(c, GW_TRY_OK, 502));
	ck_assert_uint_eq(c->attempts, 1);
}
END_TEST

START_TEST(configured_conditions_match_only_what_is_listed)
{
	struct gw_retry_conf c = gw_retry_conf_default;

	/* on: [reset, 500, 563, 564, 599]: bit (status - 500) of on_status */
	c.on = GW_RETRY_ON_RESET;
	c.on_status[0] = 1ull << 0 | 1ull << 63;
	c.on_status[1] = 1ull << 0 | 1ull << 35;
	ck_assert(gw_retry_condition_matches(&c, GW_TRY_RESET, 0));
	ck_assert(gw_retry_condition_matches(&c, GW_TRY_INVALID_RESPONSE, 0));
	ck_assert(!gw_retry_condition_matches(&c, GW_TRY_CONNECT_FAILURE, 0));
	ck_assert(!gw_retry_condition_matches(&c, GW_TRY_TIMEOUT, 0));
	ck_assert(gw_retry_condition_matches(&c, GW_TRY_STATUS_FAILURE, 500));
	ck_assert(gw_retry_condition_matches(&c, GW_TRY_STATUS_FAILURE, 563));
	ck_assert(gw_retry_condition_matches(&c, GW_TRY_STATUS_FAILURE, 564));
	ck_assert(gw_retry_condition_matches(&c, GW_TRY_STATUS_FAILURE, 599));
	ck_assert(!gw_retry_condition_matches(&c, GW_TRY_STATUS_FAILURE, 502));
	ck_assert(!gw_retry_condition_matches(&c, GW_TRY_STATUS_FAILURE, 499));
	ck_assert(!gw_retry_condition_matches(&c, GW_TRY_STATUS_FAILURE, 600));
	ck_assert(!gw_retry_condition_matches(&c, GW_TRY_STATUS_FAILURE, -1));
	ck_assert(!gw_retry_condition_matches(&c, GW_TRY_STATUS_FAILURE, 0));
}
END_TEST

/* ---- methods ----------------------------------------------------------- */

START_TEST(method_rules_follow_the_table)
{
	static const struct {
		unsigned method;
		bool key;
		enum gw_try_result r;
		bool allowed;
	} table[] = {
	    /* a connect failure never reached the upstream: any method */
	    {GW_METHOD_POST, false, GW_TRY_CONNECT_FAILURE, true},
	    {GW_METHOD_PATCH, false, GW_TRY_CONNECT_FAILURE, true},
	    {GW_METHOD_GET, false, GW_TRY_CONNECT_FAILURE, true},
	    /* idempotent methods: any failure */
	    {GW_METHOD_GET, false, GW_TRY_RESET, true},
	    {GW_METHOD_HEAD, false, GW_TRY_TIMEOUT, true},
	    {GW_METHOD_OPTIONS, false, GW_TRY_STATUS_FAILURE, true},
	    {GW_METHOD_PUT, false, GW_TRY_INVALID_RESPONSE, true},
	    {GW_METHOD_DELETE, false, GW_TRY_RESET, true},
	    /* POST and PATCH only with an Idempotency-Key */
	    {GW_METHOD_POST, false, GW_TRY_RESET, false},
	    {GW_METHOD_POST, false, GW_TRY_TIMEOUT, false},
	    {GW_METHOD_POST, false, GW_TRY_STATUS_FAILURE, false},
	    {GW_METHOD_PATCH, false, GW_TRY_INVALID_RESPONSE, false},
	    {GW_METHOD_POST, true, GW_TRY_RESET, true},
	    {GW_METHOD_POST, true, GW_TRY_TIMEOUT, true},
	    {GW_METHOD_PATCH, true, GW_TRY_STATUS_FAILURE, true},
	    /* never seen on the request path, refused all the same */
	    {GW_METHOD_TRACE, true, GW_TRY_RESET, false},
	    {GW_METHOD_CONNECT, true, GW_TRY_TIMEOUT, false},
	    {0, true, GW_TRY_RESET, false},
	    {GW_METHOD_GET | GW_METHOD_POST, true, GW_TRY_RESET, false},
	};

	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		ck_assert_msg(gw_retry_method_allows(table[i].method, table[i].key, table[i].r) ==
		                  table[i].allowed,
		              "row %zu: method %#x key %d result %d should be %s", i,
		              table[i].method, table[i].key, table[i].r,
		              table[i].allowed ? "allowed" : "refused");
}
END_TEST

/* ---- backoff ----------------------------------------------------------- */

START_TEST(backoff_stays_within_full_jitter_bounds)
{
	struct gw_retry_conf c = gw_retry_conf_default; /* base 25ms, max 250ms */
	static const uint64_t caps[] = {25, 50, 100, 200, 250, 250, 250};
	uint64_t seed = 0x9e3779b97f4a7c15ull;

	for (unsigned i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		uint64_t lo = UINT64_MAX, hi = 0;

		for (int n = 0; n < 20000; n++) {
			uint64_t w = gw_retry_backoff_ms(&c, i, next_random(&seed));

			ck_assert_uint_le(w, caps[i]);
			lo = w < lo ? w : lo;
			hi = w > hi ? w : hi;
		}
		/* Full jitter: the whole interval is used, both ends included. */
		ck_assert_uint_eq(lo, 0);
		ck_assert_uint_eq(hi, caps[i]);
	}
}
END_TEST

START_TEST(backoff_is_capped_at_max_for_any_retry_index)
{
	struct gw_retry_conf c = gw_retry_conf_default;
	static const unsigned indexes[] = {6, 7, 31, 32, 62, 63, 64, 65, 1000, UINT32_MAX};

	c.backoff_base_ms = 30;
	c.backoff_max_ms = 1000;
	for (size_t i = 0; i < sizeof(indexes) / sizeof(indexes[0]); i++) {
		/* random % (cap + 1): these land on the cap itself or just below */
		ck_assert_uint_eq(gw_retry_backoff_ms(&c, indexes[i], 1000), 1000);
		ck_assert_uint_eq(gw_retry_backoff_ms(&c, indexes[i], 1001), 0);
		ck_assert_uint_le(gw_retry_backoff_ms(&c, indexes[i], UINT64_MAX), 1000);
	}
	/* 30, 60, 120, 240, 480, 960, then the cap */
	ck_assert_uint_eq(gw_retry_backoff_ms(&c, 5, 960), 960);
	ck_assert_uint_eq(gw_retry_backoff_ms(&c, 5, 961), 0);
	ck_assert_uint_eq(gw_retry_backoff_ms(&c, 6, 1000), 1000);
}
END_TEST

START_TEST(backoff_with_zero_base_never_waits)
{
	struct gw_retry_conf c = gw_retry_conf_default;
	uint64_t seed = 42;

	c.backoff_base_ms = 0;
	for (unsigned i = 0; i < 70; i++)
		ck_assert_uint_eq(gw_retry_backoff_ms(&c, i, next_random(&seed)), 0);
	c.backoff_max_ms = 0;
	ck_assert_uint_eq(gw_retry_backoff_ms(&c, 3, UINT64_MAX), 0);
}
END_TEST

/* ---- the budget -------------------------------------------------------- */

static unsigned acquire_n(struct gw_retry_budget *b, uint64_t now, unsigned n)
{
	unsigned got = 0;

	for (unsigned i = 0; i < n; i++)
		got += gw_retry_budget_acquire(b, now);
	return got;
}

static void requests_n(struct gw_retry_budget *b, uint64_t now, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		gw_retry_budget_on_request(b, now);
}

START_TEST(budget_allows_exactly_ratio_of_requests)
{
	struct gw_retry_budget *b = gw_retry_budget_new(0.2, 0);
	uint64_t requests, retries;

	requests_n(b, 5000, 100);
	for (int i = 0; i < 20; i++)
		ck_assert_msg(gw_retry_budget_acquire(b, 5000), "retry %d of 20 refused", i + 1);
	ck_assert_uint_eq(gw_retry_budget_exhausted(b), 0);
	ck_assert(!gw_retry_budget_acquire(b, 5000));
	ck_assert_uint_eq(gw_retry_budget_exhausted(b), 1);
	ck_assert(!gw_retry_budget_acquire(b, 5000));
	ck_assert_uint_eq(gw_retry_budget_exhausted(b), 2);
	gw_retry_budget_window(b, 5000, &requests, &retries);
	ck_assert_uint_eq(requests, 100);
	ck_assert_uint_eq(retries, 20); /* refusals are not retries */
	/* The allowance is the ratio rounded up: 101 requests allow 21 retries
	 * (20 < 20.2), 105 still 21 (21 < 21 fails), 106 allow 22. */
	requests_n(b, 5000, 1);
	ck_assert(gw_retry_budget_acquire(b, 5000));
	ck_assert(!gw_retry_budget_acquire(b, 5000));
	requests_n(b, 5000, 4);
	ck_assert(!gw_retry_budget_acquire(b, 5000));
	requests_n(b, 5000, 1);
	ck_assert(gw_retry_budget_acquire(b, 5000));
	ck_assert(!gw_retry_budget_acquire(b, 5000));
	ck_assert_uint_eq(gw_retry_budget_exhausted(b), 5);
	gw_retry_budget_free(b);
}
END_TEST

START_TEST(budget_without_requests_or_floor_allows_nothing_and_rounds_up)
{
	struct gw_retry_budget *b = gw_retry_budget_new(0.2, 0);

	ck_assert(!gw_retry_budget_acquire(b, 0));
	ck_assert(!gw_retry_budget_acquire(b, 999));
	ck_assert_uint_eq(gw_retry_budget_exhausted(b), 2);
	/* One request: 0 < 0.2, so one retry; then 1 < 0.2 fails. */
	gw_retry_budget_on_request(b, 0);
	ck_assert(gw_retry_budget_acquire(b, 0));
	ck_assert(!gw_retry_budget_acquire(b, 0));
	ck_assert_uint_eq(gw_retry_budget_exhausted(b), 3);
	gw_retry_budget_free(b);
}
END_TEST

START_TEST(budget_floor_allows_min_per_second_each_second)
{
	struct gw_retry_budget *b = gw_retry_budget_new(0.2, 3);

	/* No traffic at all: the floor alone, 3 in any one second (no longer
	 * the 30 of a whole 10 s window at once). */
	ck_assert_uint_eq(acquire_n(b, 100, 40), 3);
	ck_assert_uint_eq(gw_retry_budget_exhausted(b), 37);
	/* Ratio and floor add up: 50 requests * 0.2 = 10 more. */
	requests_n(b, 100, 50);
	ck_assert_uint_eq(acquire_n(b, 100, 20), 10);
	ck_assert_uint_eq(gw_retry_budget_exhausted(b), 47);
	/* Those 13 retries are held for 1 to 1.02 s: still there 1 s later
	 * (t = 1100 is slice 55, and the retries' slice 5 is the 51st newest),
	 * gone one slice after. The requests are gone by then too: the floor. */
	ck_assert_uint_eq(acquire_n(b, 1100, 5), 0);
	ck_assert_uint_eq(acquire_n(b, 1120, 5), 3);
	gw_retry_budget_free(b);

	/* Over 10 s, second by second: 3 a second, like the old window's floor
	 * of min_per_second * 10, only never all at once (a second's retries
	 * are held 1 to 1.02 s: one slice more than a second). */
	b = gw_retry_budget_new(0.2, 3);
	for (uint64_t t = 20; t < 10000; t += 1020)
		ck_assert_uint_eq(acquire_n(b, t, 5), 3);
	ck_assert_uint_eq(gw_retry_budget_exhausted(b), 20);
	gw_retry_budget_free(b);
}
END_TEST

START_TEST(budget_ratio_one_allows_one_retry_per_request)
{
	struct gw_retry_budget *b = gw_retry_budget_new(1.0, 0);

	requests_n(b, 0, 7);
	ck_assert_uint_eq(acquire_n(b, 0, 10), 7);
	gw_retry_budget_free(b);
}
END_TEST

START_TEST(budget_window_forgets_counts_after_ten_seconds)
{
	struct gw_retry_budget *b = gw_retry_budget_new(0.2, 0);
	uint64_t requests, retries;

	/* Second 0: 100 requests, all 20 retries used. */
	requests_n(b, 0, 100);
	ck_assert_uint_eq(acquire_n(b, 0, 21), 20);
	/* Second 9 still sees second 0: 200 requests allow 40 retries in all. */
	requests_n(b, 9999, 100);
	ck_assert_uint_eq(acquire_n(b, 9999, 21), 20);
	gw_retry_budget_window(b, 9999, &requests, &retries);
	ck_assert_uint_eq(requests, 200);
	ck_assert_uint_eq(retries, 40);
	/* Second 10: second 0 is gone, requests and retries alike. */
	gw_retry_budget_window(b, 10000, &requests, &retries);
	ck_assert_uint_eq(requests, 100);
	ck_assert_uint_eq(retries, 20);
	ck_assert(!gw_retry_budget_acquire(b, 10000));
	/* Second 19: second 9 is gone too; the window is empty. */
	gw_retry_budget_window(b, 19000, &requests, &retries);
	ck_assert_uint_eq(requests, 0);
	ck_assert_uint_eq(retries, 0);
	ck_assert(!gw_retry_budget_acquire(b, 19000));
	requests_n(b, 19000, 10);
	ck_assert_uint_eq(acquire_n(b, 19000, 5), 2);
	/* A bucket reused ten seconds on restarts from zero. */
	gw_retry_budget_window(b, 29000, &requests, &retries);
	ck_assert_uint_eq(requests, 0);
	requests_n(b, 29000, 5);
	gw_retry_budget_window(b, 29000, &requests, &retries);
	ck_assert_uint_eq(requests, 5);
	ck_assert_uint_eq(retries, 0);
	gw_retry_budget_free(b);
}
END_TEST

START_TEST(budget_lagging_clock_never_wipes_newer_counts)
{
	struct gw_retry_budget *b = gw_retry_budget_new(0.5, 0);
	uint64_t requests, retries;

	requests_n(b, 15000, 10); /* second 15, bucket 5 */
	ck_assert_uint_eq(acquire_n(b, 15000, 2), 2);
	/* A thread still at second 5 (same bucket) adds nothing and is refused. */
	gw_retry_budget_on_request(b, 5000);
	ck_assert(!gw_retry_budget_acquire(b, 5000));
	gw_retry_budget_window(b, 15000, &requests, &retries);
	ck_assert_uint_eq(requests, 10);
	ck_assert_uint_eq(retries, 2);
	gw_retry_budget_free(b);
}
END_TEST

/* Four workers hammer one budget at the same instant. */
struct hammer {
	struct gw_retry_budget *b;
	uint64_t now;
	unsigned attempts;
	bool with_requests; /* one request before each acquire */
	unsigned acquired;
	pthread_barrier_t *start;
};

static void *hammer_run(void *arg)
{
	struct hammer *h = arg;

	pthread_barrier_wait(h->start);
	for (unsigned i = 0; i < h->attempts; i++) {
		if (h->with_requests)
			gw_retry_budget_on_request(h->b, h->now);
		h->acquired += gw_retry_budget_acquire(h->b, h->now);
	}
	return NULL;
}

static unsigned hammer(struct gw_retry_budget *b, uint64_t now, unsigned attempts,
                       bool with_requests)
{
	pthread_t t[4];
	struct hammer h[4];
	pthread_barrier_t start;
	unsigned total = 0;

	pthread_barrier_init(&start, NULL, 4);
	for (int i = 0; i < 4; i++) {
		h[i] = (struct hammer){.b = b,
		                       .now = now,
		                       .attempts = attempts,
		                       .with_requests = with_requests,
		                       .start = &start};
		ck_assert_int_eq(pthread_create(&t[i], NULL, hammer_run, &h[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		total += h[i].acquired;
	}
	pthread_barrier_destroy(&start);
	return total;
}

START_TEST(budget_concurrent_acquire_never_exceeds_allowance)
{
	for (int round = 0; round < 20; round++) {
		struct gw_retry_budget *b = gw_retry_budget_new(0.2, 5);
		unsigned got;

		/* 10 s: 0.2 * 1000 + 5 * 10 = 250; this second: 0.2 * 1000 + 5 = 205 */
		requests_n(b, 42000, 1000);
		got = hammer(b, 42000, 2000, false);
		ck_assert_uint_eq(got, 205);
		ck_assert_uint_eq(gw_retry_budget_exhausted(b), 4 * 2000 - 205);
		gw_retry_budget_free(b);
	}
}
END_TEST

START_TEST(budget_concurrent_requests_and_retries_stay_within_ratio)
{
	struct gw_retry_budget *b = gw_retry_budget_new(0.25, 0);
	uint64_t requests, retries;
	unsigned got = hammer(b, 7000, 20000, true);

	gw_retry_budget_window(b, 7000, &requests, &retries);
	ck_assert_uint_eq(requests, 4 * 20000);
	ck_assert_uint_eq(retries, got);
	ck_assert_uint_le(got, 4 * 20000 / 4);
	/* Refused only when the ratio was met at that moment: most of the allowance is used. */
	ck_assert_uint_ge(got, 4 * 20000 / 4 - 4);
	ck_assert_uint_eq(gw_retry_budget_exhausted(b), 4 * 20000 - got);
	gw_retry_budget_free(b);
}
END_TEST

/* ---- the budget in time: outages, steady state, reloads ---------------- */

/*
 * Traffic on a fake clock, one millisecond at a time from `from` to `to`: a
 * request every period_ms; before outage_ms one request in fail_every fails
 * once (0: none fails), from outage_ms on every try fails and each request
 * asks for `want` retries, giving up at the first refusal (as txn.c does).
 * Adds the retries allowed at each ms t to grants[t] and the requests to
 * requests[t] (either may be NULL).
 */
struct traffic {
	uint64_t period_ms, outage_ms;
	unsigned fail_every, want;
};

static void run_traffic(struct gw_retry_budget *b, const struct traffic *tr, uint64_t from,
                        uint64_t to, uint32_t *grants, uint32_t *requests)
{
	uint64_t n = 0;

	for (uint64_t t = from; t < to; t++) {
		unsigned want;

		if (t % tr->period_ms)
			continue;
		gw_retry_budget_on_request(b, t);
		if (requests)
			requests[t]++;
		n++;
		if (t >= tr->outage_ms)
			want = tr->want;
		else
			want = tr->fail_every && n % tr->fail_every == 0;
		for (unsigned i = 0; i < want; i++) {
			if (!gw_retry_budget_acquire(b, t))
				break;
			if (grants)
				grants[t]++;
		}
	}
}

/* The most of counts[] in any 1000 consecutive ms of [from, to). */
static uint64_t max_in_any_second(const uint32_t *counts, uint64_t from, uint64_t to)
{
	uint64_t sum = 0, best = 0;

	for (uint64_t t = from; t < to; t++) {
		sum += counts[t];
		if (t >= from + 1000)
			sum -= counts[t - 1000];
		if (sum > best)
			best = sum;
	}
	return best;
}

/* The sum of counts[] over [from, to). */
static uint64_t total_of(const uint32_t *counts, uint64_t from, uint64_t to)
{
	uint64_t sum = 0;

	for (uint64_t t = from; t < to; t++)
		sum += counts[t];
	return sum;
}

/*
 * The issue 10 measurement: 20 s healthy at R req/s (2% of requests fail
 * once), then all tries fail for 15 s and every request wants 2 retries.
 * The old budget spent the 10 s allowance saved up in the calm: 2.3x the
 * offered load in the first second. Now no 1 s span, wherever it starts,
 * holds more than ratio * R + min_per_second retries (both are whole here,
 * so the rounding up adds nothing), and each second of the outage still
 * gets most of that.
 */
static void check_outage(double ratio, uint32_t mps, uint64_t period_ms, uint64_t outage_ms)
{
	enum { END = 35000 };
	struct traffic tr = {
	    .period_ms = period_ms, .outage_ms = outage_ms, .fail_every = 50, .want = 2};
	uint32_t *grants = calloc(END, sizeof(*grants)), *requests = calloc(END, sizeof(*requests));
	struct gw_retry_budget *b = gw_retry_budget_new(ratio, mps);
	uint64_t per_second, bound, worst;

	ck_assert_ptr_nonnull(grants);
	ck_assert_ptr_nonnull(requests);
	run_traffic(b, &tr, 0, END, grants, requests);
	per_second = max_in_any_second(requests, 0, END); /* R, counted in any 1 s */
	bound = (uint64_t)ceil(ratio * (double)per_second + mps - 1e-9);
	worst = max_in_any_second(grants, 0, END);
	ck_assert_msg(worst <= bound,
	              "ratio %.2f, %u/s floor, a request every %" PRIu64 " ms (%" PRIu64
	              " a second): %" PRIu64 " retries in one second, bound %" PRIu64,
	              ratio, mps, period_ms, per_second, worst, bound);
	/* The first second of the outage, and every whole second after it, is
	 * allowed most of its share: bounded, not starved. */
	for (uint64_t t = outage_ms; t + 1000 <= END; t += 1000) {
		uint64_t got = total_of(grants, t, t + 1000);

		ck_assert_msg(got * 100 >= bound * 90,
		              "second %" PRIu64 " of the outage: %" PRIu64 " retries of %" PRIu64,
		              (t - outage_ms) / 1000, got, bound);
	}
	gw_retry_budget_free(b);
	free(grants);
	free(requests);
}

START_TEST(budget_outage_after_calm_bounds_every_second)
{
	check_outage(0.2, 10, 1, 20000);   /* 1000 req/s: <= 210 retries a second */
	check_outage(0.2, 10, 1, 20013);   /* the outage starts inside a slice */
	check_outage(0.2, 0, 3, 20007);    /* 333-334 req/s, no floor */
	check_outage(0.5, 25, 2, 20010);   /* another ratio */
	check_outage(0.05, 100, 1, 19999); /* the floor is most of it */
}
END_TEST

/*
 * A long outage, from a fresh budget: over 20 s the retries are about ratio
 * of the requests plus the floor (a steady outage gets about 98% of it:
 * retry.c), never more; and a healthy route whose failures stay under the
 * ratio gets every retry it asks for, refused none.
 */
START_TEST(budget_steady_state_allows_ratio_of_requests)
{
	enum { END = 30000 };
	struct traffic outage = {.period_ms = 1, .outage_ms = 0, .want = 2};
	struct traffic healthy = {.period_ms = 1, .outage_ms = END, .fail_every = 7, .want = 1};
	uint32_t *grants = calloc(END, sizeof(*grants));
	struct gw_retry_budget *b = gw_retry_budget_new(0.2, 10);
	uint64_t got, allowance = (uint64_t)(0.2 * 20000) + 10 * 20;

	ck_assert_ptr_nonnull(grants);
	run_traffic(b, &outage, 0, END, grants, NULL);
	got = total_of(grants, 10000, END); /* 20 s after the first 10 */
	ck_assert_msg(got <= allowance + 20, "%" PRIu64 " retries for %" PRIu64, got, allowance);
	ck_assert_msg(got * 100 >= allowance * 96, "%" PRIu64 " retries for %" PRIu64, got,
	              allowance);
	gw_retry_budget_free(b);

	/* 1 request in 7 fails once: 14% < 20%, at every moment */
	b = gw_retry_budget_new(0.2, 0);
	memset(grants, 0, END * sizeof(*grants));
	run_traffic(b, &healthy, 0, END, grants, NULL);
	ck_assert_uint_eq(gw_retry_budget_exhausted(b), 0);
	ck_assert_uint_eq(total_of(grants, 0, END), END / 7);
	gw_retry_budget_free(b);
	free(grants);
}
END_TEST

/*
 * At low rates: 2 requests a second that all fail and want 2 retries each
 * get them all from the floor (4 a second < 10); without a floor, 1 request
 * a second still keeps to ratio over 10 s (the 10 s window), not the one
 * retry a second that the second's rounding up alone would allow.
 */
START_TEST(budget_floor_and_ratio_hold_at_low_rates)
{
	enum { END = 60000 };
	struct traffic slow = {.period_ms = 500, .outage_ms = 0, .want = 2};
	struct traffic slower = {.period_ms = 1000, .outage_ms = 0, .want = 2};
	uint32_t *grants = calloc(END, sizeof(*grants));
	struct gw_retry_budget *b = gw_retry_budget_new(0.2, 10);
	uint64_t got;

	ck_assert_ptr_nonnull(grants);
	run_traffic(b, &slow, 0, END, grants, NULL);
	ck_assert_uint_eq(gw_retry_budget_exhausted(b), 0);
	ck_assert_uint_eq(total_of(grants, 0, END), 2 * 2 * END / 1000);
	gw_retry_budget_free(b);

	b = gw_retry_budget_new(0.2, 0);
	memset(grants, 0, END * sizeof(*grants));
	run_traffic(b, &slower, 0, END, grants, NULL);
	got = total_of(grants, 10000, END); /* 50 requests: 0.2 * 50 = 10 */
	ck_assert_msg(got >= 9 && got <= 12, "%" PRIu64 " retries for 50 requests", got);
	gw_retry_budget_free(b);
	free(grants);
}
END_TEST

/*
 * A reload carries the budget: what the old one spent stays spent in the
 * new one, in this second and in the 10 s window, and the new one's
 * settings apply to the carried counts at once.
 */
START_TEST(budget_carry_keeps_the_balance)
{
	struct traffic calm = {.period_ms = 1, .outage_ms = 12000, .want = 2};
	struct gw_retry_budget *old = gw_retry_budget_new(0.2, 10), *b, *fresh;
	uint64_t requests, retries, old_requests, old_retries, spent;
	uint32_t *grants = calloc(14000, sizeof(*grants));

	ck_assert_ptr_nonnull(grants);
	/* 12 s calm at 1000 req/s, then 300 ms of outage: the second is spent */
	run_traffic(old, &calm, 0, 12300, grants, NULL);
	spent = total_of(grants, 12000, 12300);
	ck_assert_uint_eq(spent, 210);
	ck_assert(!gw_retry_budget_acquire(old, 12300));

	/* The same settings after a reload: nothing more this second */
	b = gw_retry_budget_new(0.2, 10);
	gw_retry_budget_carry(b, old);
	ck_assert_uint_eq(gw_retry_budget_exhausted(b), gw_retry_budget_exhausted(old));
	gw_retry_budget_window(old, 12300, &old_requests, &old_retries);
	gw_retry_budget_window(b, 12300, &requests, &retries);
	ck_assert_uint_eq(requests, old_requests);
	ck_assert_uint_eq(retries, old_retries);
	ck_assert(!gw_retry_budget_acquire(b, 12300));
	/* ... and the outage goes on within the bound across the reload */
	run_traffic(b, &calm, 12300, 14000, grants, NULL);
	ck_assert_uint_le(max_in_any_second(grants, 11000, 14000), 210);
	/* A new budget without carry would have spent 10 more (its floor). */
	fresh = gw_retry_budget_new(0.2, 10);
	ck_assert_uint_eq(acquire_n(fresh, 12300, 20), 10);
	gw_retry_budget_free(fresh);
	gw_retry_budget_free(b);

	/* A reload that raises the ratio to 0.5: 0.5 * ~1000 + 10 this second,
	 * less the 210 already spent. */
	b = gw_retry_budget_new(0.5, 10);
	gw_retry_budget_carry(b, old);
	{
		unsigned got = acquire_n(b, 12300, 1000);

		ck_assert_msg(got >= 290 && got <= 300, "%u more retries after the reload", got);
	}
	gw_retry_budget_free(b);
	gw_retry_budget_free(old);
	free(grants);
}
END_TEST

/*
 * Four workers in lockstep on one clock: at each ms every worker sends a
 * request and, from the outage on, asks for 2 retries. Whatever the
 * interleaving, no 1 s span holds more than ratio * 4000 + min_per_second.
 */
enum { LOCKSTEP_THREADS = 4, LOCKSTEP_CALM = 11000, LOCKSTEP_END = 14000 };

struct lockstep {
	struct gw_retry_budget *b;
	pthread_barrier_t *step;
	uint32_t grants[LOCKSTEP_END];
};

static void *lockstep_run(void *arg)
{
	struct lockstep *l = arg;

	for (uint64_t t = LOCKSTEP_CALM; t < LOCKSTEP_END; t++) {
		pthread_barrier_wait(l->step); /* all at t, none still at t - 1 */
		gw_retry_budget_on_request(l->b, t);
		for (int i = 0; i < 2 && gw_retry_budget_acquire(l->b, t); i++)
			l->grants[t]++;
	}
	return NULL;
}

START_TEST(budget_concurrent_outage_never_exceeds_the_second)
{
	static struct lockstep l[LOCKSTEP_THREADS];
	static uint32_t all[LOCKSTEP_END];
	struct gw_retry_budget *b = gw_retry_budget_new(0.2, 10);
	pthread_t th[LOCKSTEP_THREADS];
	pthread_barrier_t step;
	uint64_t requests, retries, total = 0;

	/* the calm, 4 requests a ms, before the workers start */
	for (uint64_t t = 0; t < LOCKSTEP_CALM; t++)
		requests_n(b, t, LOCKSTEP_THREADS);
	pthread_barrier_init(&step, NULL, LOCKSTEP_THREADS);
	for (int i = 0; i < LOCKSTEP_THREADS; i++) {
		l[i].b = b;
		l[i].step = &step;
		memset(l[i].grants, 0, sizeof(l[i].grants));
		ck_assert_int_eq(pthread_create(&th[i], NULL, lockstep_run, &l[i]), 0);
	}
	for (int i = 0; i < LOCKSTEP_THREADS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&step);
	memset(all, 0, sizeof(all));
	for (int i = 0; i < LOCKSTEP_THREADS; i++)
		for (uint64_t t = 0; t < LOCKSTEP_END; t++) {
			all[t] += l[i].grants[t];
			total += l[i].grants[t];
		}
	ck_assert_uint_le(max_in_any_second(all, 0, LOCKSTEP_END), 810); /* 0.2 * 4000 + 10 */
	ck_assert_uint_ge(total_of(all, LOCKSTEP_CALM, LOCKSTEP_CALM + 1000), 800);
	gw_retry_budget_window(b, LOCKSTEP_END - 1, &requests, &retries);
	ck_assert_uint_eq(requests, 10 * 1000 * LOCKSTEP_THREADS);
	ck_assert_uint_eq(retries, total);
	gw_retry_budget_free(b);
}
END_TEST

/* ---- suite ------------------------------------------------------------- */

static Suite *retry_suite(void)
{
	Suite *s = suite_create("retry");

	gw_test_add_case(s, "default_conditions_are_connect_reset_timeout_and_502_503_504",
	                 default_conditions_are_connect_reset_timeout_and_502_503_504, 60);
	gw_test_add_case(s, "configured_conditions_match_only_what_is_listed",
	                 configured_conditions_match_only_what_is_listed, 60);
	gw_test_add_case(s, "method_rules_follow_the_table", method_rules_follow_the_table, 60);
	gw_test_add_case(s, "backoff_stays_within_full_jitter_bounds",
	                 backoff_stays_within_full_jitter_bounds, 60);
	gw_test_add_case(s, "backoff_is_capped_at_max_for_any_retry_index",
	                 backoff_is_capped_at_max_for_any_retry_index, 60);
	gw_test_add_case(s, "backoff_with_zero_base_never_waits",
	                 backoff_with_zero_base_never_waits, 60);
	gw_test_add_case(s, "budget_allows_exactly_ratio_of_requests",
	                 budget_allows_exactly_ratio_of_requests, 60);
	gw_test_add_case(s, "budget_without_requests_or_floor_allows_nothing_and_rounds_up",
	                 budget_without_requests_or_floor_allows_nothing_and_rounds_up, 60);
	gw_test_add_case(s, "budget_floor_allows_min_per_second_each_second",
	                 budget_floor_allows_min_per_second_each_second, 60);
	gw_test_add_case(s, "budget_ratio_one_allows_one_retry_per_request",
	                 budget_ratio_one_allows_one_retry_per_request, 60);
	gw_test_add_case(s, "budget_window_forgets_counts_after_ten_seconds",
	                 budget_window_forgets_counts_after_ten_seconds, 60);
	gw_test_add_case(s, "budget_lagging_clock_never_wipes_newer_counts",
	                 budget_lagging_clock_never_wipes_newer_counts, 60);
	gw_test_add_case(s, "budget_concurrent_acquire_never_exceeds_allowance",
	                 budget_concurrent_acquire_never_exceeds_allowance, 60);
	gw_test_add_case(s, "budget_concurrent_requests_and_retries_stay_within_ratio",
	                 budget_concurrent_requests_and_retries_stay_within_ratio, 60);
	gw_test_add_case(s, "budget_outage_after_calm_bounds_every_second",
	                 budget_outage_after_calm_bounds_every_second, 60);
	gw_test_add_case(s, "budget_steady_state_allows_ratio_of_requests",
	                 budget_steady_state_allows_ratio_of_requests, 60);
	gw_test_add_case(s, "budget_floor_and_ratio_hold_at_low_rates",
	                 budget_floor_and_ratio_hold_at_low_rates, 60);
	gw_test_add_case(s, "budget_carry_keeps_the_balance", budget_carry_keeps_the_balance, 60);
	gw_test_add_case(s, "budget_concurrent_outage_never_exceeds_the_second",
	                 budget_concurrent_outage_never_exceeds_the_second, 60);
	return s;
}

int main(void)
{
	return gw_test_run_suite(retry_suite(), CK_FORK);
}
