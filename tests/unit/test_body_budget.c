/*
 * The process-wide budget of buffered request bodies (gateway/body_budget.h)
 * and its configuration key, limits.max_buffered_body_bytes: shares are
 * taken up to the bound and never past it (also from many threads at once),
 * settled to a body's real length, given back once; the key's default,
 * its derivation from max_body_bytes, and its refusal below max_body_bytes.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/body_budget.h"
#include "gateway/config/config.h"
#include "gateway/http/request_head.h"
#include "gateway/util/errlist.h"
#include "check_suite.h"

#define MIB (1024ull * 1024)

START_TEST(take_fits_up_to_the_bound_and_not_past_it)
{
	uint64_t a = 0, b = 0, c = 0;

	ck_assert_uint_eq(gw_body_budget_used(), 0);
	ck_assert(gw_body_budget_take(&a, 600, 1000));
	ck_assert(gw_body_budget_take(&b, 400, 1000)); /* exactly the bound */
	ck_assert_uint_eq(gw_body_budget_used(), 1000);
	ck_assert(!gw_body_budget_take(&c, 1, 1000));
	ck_assert_uint_eq(c, 0);
	ck_assert(gw_body_budget_take(&c, 0, 1000)); /* no body: always fits */
	ck_assert_uint_eq(gw_body_budget_used(), 1000);
	gw_body_budget_release(&a);
	ck_assert_uint_eq(a, 0);
	gw_body_budget_release(&a); /* given back once */
	ck_assert_uint_eq(gw_body_budget_used(), 400);
	ck_assert(!gw_body_budget_take(&c, 601, 1000));
	ck_assert(gw_body_budget_take(&c, 600, 1000));
	gw_body_budget_release(&b);
	gw_body_budget_release(&c);
	ck_assert_uint_eq(gw_body_budget_used(), 0);
	ck_assert(!gw_body_budget_take(&c, 1001, 1000)); /* larger than the whole bound */
	ck_assert(!gw_body_budget_take(&c, UINT64_MAX, UINT64_MAX - 1));
	ck_assert_uint_eq(gw_body_budget_used(), 0);
}
END_TEST

START_TEST(a_new_take_gives_the_old_share_back_first)
{
	uint64_t a = 0;

	ck_assert(gw_body_budget_take(&a, 700, 1000));
	/* the next request on the same connection: 700 back, 900 taken */
	ck_assert(gw_body_budget_take(&a, 900, 1000));
	ck_assert_uint_eq(gw_body_budget_used(), 900);
	/* refused: the old share is gone all the same */
	ck_assert(!gw_body_budget_take(&a, 1001, 1000));
	ck_assert_uint_eq(a, 0);
	ck_assert_uint_eq(gw_body_budget_used(), 0);
}
END_TEST

START_TEST(settle_shrinks_to_the_real_length_only)
{
	uint64_t a = 0;

	ck_assert(gw_body_budget_take(&a, 8 * MIB, 16 * MIB));
	gw_body_budget_settle(&a, 9 * MIB); /* never grows */
	ck_assert_uint_eq(a, 8 * MIB);
	gw_body_budget_settle(&a, 1234);
	ck_assert_uint_eq(a, 1234);
	ck_assert_uint_eq(gw_body_budget_used(), 1234);
	gw_body_budget_release(&a);
	ck_assert_uint_eq(gw_body_budget_used(), 0);
}
END_TEST

START_TEST(admit_takes_content_length_or_max_body_when_chunked)
{
	struct gw_limits_conf lim = {.max_body_bytes = 8 * MIB,
	                             .max_buffered_body_bytes = 20 * MIB};
	struct gw_request_head cl = {.has_content_length = true, .content_length = 5 * MIB};
	struct gw_request_head chunked = {.chunked = true};
	struct gw_request_head none = {0};
	uint64_t a = 0, b = 0, c = 0, d = 0;

	ck_assert(gw_body_budget_admit(&a, &cl, &lim));
	ck_assert_uint_eq(a, 5 * MIB);
	ck_assert(gw_body_budget_admit(&b, &chunked, &lim));
	ck_assert_uint_eq(b, 8 * MIB);
	ck_assert(gw_body_budget_admit(&c, &none, &lim));
	ck_assert_uint_eq(c, 0);
	ck_assert(!gw_body_budget_admit(&d, &chunked, &lim)); /* 13 + 8 > 20 */
	ck_assert(gw_body_budget_admit(&d, &cl, &lim));       /* 13 + 5 <= 20 */
	ck_assert_uint_eq(gw_body_budget_used(), 18 * MIB);
	gw_body_budget_release(&a);
	gw_body_budget_release(&b);
	gw_body_budget_release(&d);
	ck_assert_uint_eq(gw_body_budget_used(), 0);
}
END_TEST

#define THREADS 8
#define ROUNDS  20000
#define BOUND   1000

static _Atomic int over_bound;

static void *taker(void *arg)
{
	uint64_t share = 0;

	for (int i = 0; i < ROUNDS; i++) {
		if (gw_body_budget_take(&share, 100 + (uint64_t)(i % 7) * 50, BOUND)) {
			if (gw_body_budget_used() > BOUND)
				over_bound = 1;
			gw_body_budget_release(&share);
		}
	}
	return arg;
}

START_TEST(concurrent_takes_never_pass_the_bound_and_all_come_back)
{
	pthread_t t[THREADS];

	for (int i = 0; i < THREADS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, taker, NULL), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	ck_assert_int_eq(over_bound, 0);
	ck_assert_uint_eq(gw_body_budget_used(), 0);
}
END_TEST

START_TEST(retry_after_is_shedding_retry_after_rounded_up)
{
	struct gw_shedding_conf sh = {.retry_after_ms = 2000};

	for (uint64_t r = 0; r < 1000; r += 37) {
		int s = gw_body_budget_retry_after_s(&sh, r);
		ck_assert_int_ge(s, 2); /* 1.6 s .. 2.4 s, rounded up */
		ck_assert_int_le(s, 3);
	}
}
END_TEST

/* ---- limits.max_buffered_body_bytes ------------------------------------ */

static const char *const tail = "upstreams:\n"
                                "  a: { servers: [\"127.0.0.1:9001\"] }\n"
                                "routes:\n"
                                "  - { name: r, upstream: a }\n";

static struct gw_config *load(const char *limits, struct gw_errlist *errs)
{
	char yaml[1024];

	snprintf(yaml, sizeof(yaml), "%s%s", limits, tail);
	return gw_config_load_string("t.yaml", yaml, errs);
}

static uint64_t buffered_of(const char *limits)
{
	struct gw_errlist errs = {0};
	struct gw_config *cfg = load(limits, &errs);
	uint64_t v;

	ck_assert_msg(cfg != NULL, "should load: %s (%s)", limits, errs.count ? errs.items[0] : "");
	v = cfg->limits.max_buffered_body_bytes;
	gw_config_unref(cfg);
	gw_errlist_free(&errs);
	return v;
}

START_TEST(config_default_is_256m_or_max_body_bytes_when_larger)
{
	ck_assert_uint_eq(buffered_of(""), 256 * MIB);
	ck_assert_uint_eq(buffered_of("limits: { max_connections: 5 }\n"), 256 * MIB);
	ck_assert_uint_eq(buffered_of("limits: { max_body_bytes: 1024m }\n"), 1024 * MIB);
	ck_assert_uint_eq(buffered_of("limits: { max_buffered_body_bytes: 32m }\n"), 32 * MIB);
	ck_assert_uint_eq(buffered_of("limits: { max_buffered_body_bytes: 8m }\n"), 8 * MIB);
	ck_assert_uint_eq(
	    buffered_of("limits: { max_body_bytes: 1m, max_buffered_body_bytes: 1m }\n"), MIB);
	ck_assert_uint_eq(buffered_of("limits: { max_buffered_body_bytes: 1048576m }\n"),
	                  1024 * 1024 * MIB);
}
END_TEST

static void load_fails(const char *limits, const char *msg)
{
	struct gw_errlist errs = {0};
	struct gw_config *cfg = load(limits, &errs);

	ck_assert_msg(cfg == NULL, "should fail: %s", limits);
	ck_assert_msg(errs.count == 1 && strcmp(errs.items[0], msg) == 0, "expected %s, got %s",
	              msg, errs.count ? errs.items[0] : "(nothing)");
	gw_errlist_free(&errs);
}

START_TEST(config_refuses_a_budget_below_max_body_bytes_or_out_of_range)
{
	load_fails("limits: { max_buffered_body_bytes: 4m }\n",
	           "t.yaml:1:36: 'max_buffered_body_bytes' in limits: 4m is below max_body_bytes"
	           " (8388608 bytes): every body allowed must fit");
	load_fails("limits: { max_buffered_body_bytes: 1023k }\n",
	           "t.yaml:1:36: 'max_buffered_body_bytes' in limits: 1023k is out of range"
	           " (1m..1048576m)");
}
END_TEST

static Suite *body_budget_suite(void)
{
	Suite *s = suite_create("body_budget");

	gw_test_add_case(s, "take_fits_up_to_the_bound_and_not_past_it",
	                 take_fits_up_to_the_bound_and_not_past_it, 60);
	gw_test_add_case(s, "a_new_take_gives_the_old_share_back_first",
	                 a_new_take_gives_the_old_share_back_first, 60);
	gw_test_add_case(s, "settle_shrinks_to_the_real_length_only",
	                 settle_shrinks_to_the_real_length_only, 60);
	gw_test_add_case(s, "admit_takes_content_length_or_max_body_when_chunked",
	                 admit_takes_content_length_or_max_body_when_chunked, 60);
	gw_test_add_case(s, "concurrent_takes_never_pass_the_bound_and_all_come_back",
	                 concurrent_takes_never_pass_the_bound_and_all_come_back, 60);
	gw_test_add_case(s, "retry_after_is_shedding_retry_after_rounded_up",
	                 retry_after_is_shedding_retry_after_rounded_up, 60);
	gw_test_add_case(s, "config_default_is_256m_or_max_body_bytes_when_larger",
	                 config_default_is_256m_or_max_body_bytes_when_larger, 60);
	gw_test_add_case(s, "config_refuses_a_budget_below_max_body_bytes_or_out_of_range",
	                 config_refuses_a_budget_below_max_body_bytes_or_out_of_range, 60);
	return s;
}

int main(void)
{
	return gw_test_run_suite(body_budget_suite(), CK_FORK);
}
