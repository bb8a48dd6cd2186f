/*
 * Retries: which outcomes and methods may be retried, the backoff bounds,
 * and the retry budget's arithmetic, window and behaviour under concurrent
 * workers. Time is a plain argument (a fake clock): nothing sleeps.
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

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

START_TEST(budget_floor_allows_min_per_second_times_ten)
{
	struct gw_retry_budget *b = gw_retry_budget_new(0.2, 3);

	/* No traffic at all: the floor alone, 3 per second over 10 s. */
	ck_assert_uint_eq(acquire_n(b, 100, 40), 30);
	ck_assert_uint_eq(gw_retry_budget_exhausted(b), 10);
	/* Ratio and floor add up: 50 requests * 0.2 = 10 more. */
	requests_n(b, 100, 50);
	ck_assert_uint_eq(acquire_n(b, 100, 20), 10);
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

		requests_n(b, 42000, 1000); /* 0.2 * 1000 + 5 * 10 = 250 */
		got = hammer(b, 42000, 2000, false);
		ck_assert_uint_eq(got, 250);
		ck_assert_uint_eq(gw_retry_budget_exhausted(b), 4 * 2000 - 250);
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
	gw_test_add_case(s, "budget_floor_allows_min_per_second_times_ten",
	                 budget_floor_allows_min_per_second_times_ten, 60);
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
	return s;
}

int main(void)
{
	return gw_test_run_suite(retry_suite(), CK_FORK);
}
