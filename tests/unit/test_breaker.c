/*
 * Circuit breakers: when they trip (ratio over the window and over its last
 * second, volume, consecutive failures, slow calls) and when they do not,
 * the open -> half-open -> closed cycle with its one-at-a-time probes at a
 * steady cadence, the ramp after closing, the doubled open time of a
 * relapse, operator forcing, reloads, the rolling windows, the log lines,
 * and concurrent workers; and whole outages at 1000 and 50 req/s simulated
 * on a fake clock (trip within a second, recovery within a second, no
 * burst). Time is a plain argument (a fake clock): nothing sleeps.
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "modules/circuit_breaker/breaker.h"
#include "check_suite.h"

/* window 10s, min 20, ratio 0.5, open 1s (probes every 500ms), relapses up
 * to 3s, 3 probes */
static struct gw_breaker_conf test_conf(void)
{
	struct gw_breaker_conf c = gw_breaker_conf_default;

	c.open_duration_ms = 1000;
	c.max_open_duration_ms = 3000;
	c.half_open_requests = 3;
	return c;
}

static void record_n(struct gw_breaker *b, uint64_t now, int n, bool failure)
{
	for (int i = 0; i < n; i++)
		gw_breaker_record(b, now, failure, 5, false);
}

/* Trips a fresh test_conf breaker at now with 20 failures. */
static void trip_now(struct gw_breaker *b, uint64_t now)
{
	record_n(b, now, 20, true);
	ck_assert_int_eq(gw_breaker_state(b, now), GW_BREAKER_OPEN);
}

/* One probe at now, which must be granted, with its outcome. */
static void probe(struct gw_breaker *b, uint64_t now, bool failure)
{
	ck_assert_int_eq(gw_breaker_admit(b, now, NULL), GW_BREAKER_PROBE);
	gw_breaker_record(b, now, failure, 5, true);
}

/* n successful probes in a row at now. */
static void probes_ok(struct gw_breaker *b, uint64_t now, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		probe(b, now, false);
}

/* Expects a rejection telling the client to come back in retry_after ms. */
static void assert_rejects(struct gw_breaker *b, uint64_t now, uint64_t retry_after)
{
	uint64_t ra = 12345;

	ck_assert_int_eq(gw_breaker_admit(b, now, &ra), GW_BREAKER_REJECT);
	ck_assert_uint_eq(ra, retry_after);
}

#include "stderr_capture.h"

/* ---- tripping ---------------------------------------------------------- */

START_TEST(breaker_starts_closed_and_allows)
{
	struct gw_breaker_conf c = test_conf();
	struct gw_breaker *b = gw_breaker_new(&c, "r");
	struct gw_breaker_counts counts;

	ck_assert_int_eq(gw_breaker_state(b, 0), GW_BREAKER_CLOSED);
	ck_assert_int_eq(gw_breaker_admit(b, 0, NULL), GW_BREAKER_ALLOW);
	ck_assert_int_eq(gw_breaker_forced(b), GW_BREAKER_FORCE_AUTO);
	gw_breaker_counts(b, 0, &counts);
	ck_assert_uint_eq(counts.tries, 0);
	ck_assert_uint_eq(counts.open_duration_ms, 1000);
	ck_assert_str_eq(gw_breaker_state_name(GW_BREAKER_HALF_OPEN), "half-open");
	gw_breaker_free(b);
}
END_TEST

START_TEST(breaker_does_not_trip_below_min_requests)
{
	struct gw_breaker_conf c = test_conf();
	struct gw_breaker *b = gw_breaker_new(&c, "r");

	/* 19 failures out of 19: every try failed, but too few to judge. */
	record_n(b, 1000, 19, true);
	ck_assert_int_eq(gw_breaker_state(b, 1000), GW_BREAKER_CLOSED);
	ck_assert_int_eq(gw_breaker_admit(b, 1000, NULL), GW_BREAKER_ALLOW);
	/* The 20th reaches the volume. */
	record_n(b, 1000, 1, true);
	ck_assert_int_eq(gw_breaker_state(b, 1000), GW_BREAKER_OPEN);
	gw_breaker_free(b);
}
END_TEST

START_TEST(breaker_opens_exactly_at_failure_ratio)
{
	struct gw_breaker_conf c = test_conf();
	struct gw_breaker *b = gw_breaker_new(&c, "r");

	record_n(b, 1000, 10, false);
	record_n(b, 1000, 9, true);
	ck_assert_int_eq(gw_breaker_state(b, 1000), GW_BREAKER_CLOSED);
	/* 10 of 20 = 0.5: the ratio is met, not just exceeded. */
	record_n(b, 1000, 1, true);
	ck_assert_int_eq(gw_breaker_state(b, 1000), GW_BREAKER_OPEN);
	gw_breaker_free(b);
}
END_TEST

START_TEST(breaker_stays_closed_just_below_failure_ratio)
{
	struct gw_breaker_conf c = test_conf();
	struct gw_breaker *b = gw_breaker_new(&c, "r");

	record_n(b, 1000, 11, false);
	record_n(b, 1000, 9, true); /* 9 / 20 = 0.45 */
	ck_assert_int_eq(gw_breaker_state(b, 1000), GW_BREAKER_CLOSED);
	record_n(b, 1000, 1, true); /* 10 / 21 = 0.476 */
	ck_assert_int_eq(gw_breaker_state(b, 1000), GW_BREAKER_CLOSED);
	record_n(b, 1000, 1, true); /* 11 / 22 = 0.5 */
	ck_assert_int_eq(gw_breaker_state(b, 1000), GW_BREAKER_OPEN);
	gw_breaker_free(b);
}
END_TEST

START_TEST(breaker_a_success_can_complete_the_volume)
{
	struct gw_breaker_conf c = test_conf();
	struct gw_breaker *b = gw_breaker_new(&c, "r");

	/* 19 failures, then a success: 19 / 20 >= 0.5 with the volume met. */
	record_n(b, 1000, 19, true);
	record_n(b, 1000, 1, false);
	ck_assert_int_eq(gw_breaker_state(b, 1000), GW_BREAKER_OPEN);
	gw_breaker_free(b);
}
END_TEST

START_TEST(breaker_trips_on_consecutive_failures)
{
	struct gw_breaker_conf c = test_conf();
	struct gw_breaker *b;

	c.min_requests = 1000; /* the ratio rule cannot fire */
	c.consecutive_failures = 5;
	b = gw_breaker_new(&c, "r");
	record_n(b, 1000, 4, true);
	record_n(b, 1000, 1, false); /* a success ends the run */
	record_n(b, 1000, 4, true);
	ck_assert_int_eq(gw_breaker_state(b, 1000), GW_BREAKER_CLOSED);
	record_n(b, 1000, 1, true);
	ck_assert_int_eq(gw_breaker_state(b, 1000), GW_BREAKER_OPEN);
	gw_breaker_free(b);
}
END_TEST

START_TEST(breaker_consecutive_rule_off_by_default)
{
	struct gw_breaker_conf c = test_conf();
	struct gw_breaker *b;

	c.min_requests = 1000;
	b = gw_breaker_new(&c, "r");
	record_n(b, 1000, 999, true);
	ck_assert_int_eq(gw_breaker_state(b, 1000), GW_BREAKER_CLOSED);
	gw_breaker_free(b);
}
END_TEST

START_TEST(breaker_trips_on_slow_call_ratio)
{
	struct gw_breaker_conf c = test_conf();
	struct gw_breaker *b;
	struct gw_breaker_counts counts;

	c.slow_call_duration_ms = 100;
	c.slow_call_ratio = 0.5;
	b = gw_breaker_new(&c, "r");
	/* All successes; 100ms exactly is not slower than 100ms. */
	for (int i = 0; i < 10; i++)
		gw_breaker_record(b, 1000, false, 100, false);
	for (int i = 0; i < 9; i++)
		gw_breaker_record(b, 1000, false, 101, false);
	gw_breaker_counts(b, 1000, &counts);
	ck_assert_uint_eq(counts.tries, 19);
	ck_assert_uint_eq(counts.slow, 9);
	ck_assert_uint_eq(counts.failures, 0);
	ck_assert_int_eq(gw_breaker_state(b, 1000), GW_BREAKER_CLOSED);
	gw_breaker_record(b, 1000, false, 5000, false); /* 10 / 20 slow */
	ck_assert_int_eq(gw_breaker_state(b, 1000), GW_BREAKER_OPEN);
	gw_breaker_free(b);
}
END_TEST

START_TEST(breaker_ignores_slowness_when_slow_call_duration_is_off)
{
	struct gw_breaker_conf c = test_conf();
	struct gw_breaker *b = gw_breaker_new(&c, "r");
	struct gw_breaker_counts counts;

	for (int i = 0; i < 100; i++)
		gw_breaker_record(b, 1000, false, 60000, false);
	gw_breaker_counts(b, 1000, &counts);
	ck_assert_uint_eq(counts.slow, 0);
	ck_assert_int_eq(gw_breaker_state(b, 1000), GW_BREAKER_CLOSED);
	gw_breaker_free(b);
}
END_TEST

/* ---- the window -------------------------------------------------------- */

START_TEST(breaker_forgets_failures_after_the_window)
{
	struct gw_breaker_conf c = test_conf();
	struct gw_breaker *b1 = gw_breaker_new(&c, "r1");
	struct gw_breaker *b2 = gw_breaker_new(&c, "r2");
	struct gw_breaker_counts counts;

	/* Buckets of 1s: failures at 0..999 are still there at 9999 ... */
	record_n(b1, 500, 19, true);
	record_n(b1, 9999, 1, true);
	ck_assert_int_eq(gw_breaker_state(b1, 9999), GW_BREAKER_OPEN);
	/* ... and gone at 10000. */
	record_n(b2, 500, 19, true);
	gw_breaker_counts(b2, 9999, &counts);
	ck_assert_uint_eq(counts.failures, 19);
	gw_breaker_counts(b2, 10000, &counts);
	ck_assert_uint_eq(counts.failures, 0);
	ck_assert_uint_eq(counts.tries, 0);
	record_n(b2, 10000, 1, true);
	ck_assert_int_eq(gw_breaker_state(b2, 10000), GW_BREAKER_CLOSED);
	gw_breaker_free(b1);
	gw_breaker_free(b2);
}
END_TEST

START_TEST(breaker_window_slides_bucket_by_bucket)
{
	struct gw_breaker_conf c = test_conf();
	struct gw_breaker *b;
	struct gw_breaker_counts counts;

	c.min_requests = 1000; /* never trips: only the counting is watched */
	b = gw_breaker_new(&c, "r");
	/* A failure and a success per second: the window holds the last ten seconds. */
	for (uint64_t s = 0; s < 15; s++) {
		record_n(b, s * 1000 + 300, 1, true);
		record_n(b, s * 1000 + 600, 1, false);
		gw_breaker_counts(b, s * 1000 + 999, &counts);
		ck_assert_uint_eq(counts.tries, 2 * (s < 10 ? s + 1 : 10));
		ck_assert_uint_eq(counts.failures, s < 10 ? s + 1 : 10);
	}
	ck_assert_int_eq(gw_breaker_state(b, 14999), GW_BREAKER_CLOSED);
	gw_breaker_free(b);
}
END_TEST

/* ---- the last second --------------------------------------------------- */

START_TEST(breaker_last_second_trips_despite_a_window_of_successes)
{
	struct gw_breaker_conf c = test_conf();
	struct gw_breaker *b = gw_breaker_new(&c, "r");
	struct gw_breaker_counts counts;
	struct captured cap;
	char *text;

	/* 1000 successes in each of 9 seconds, then 30 tries at 9500: 15 fail. */
	for (uint64_t s = 0; s < 9; s++)
		record_n(b, s * 1000 + 500, 1000, false);
	record_n(b, 9500, 15, false);
	cap = capture_start();
	record_n(b, 9500, 14, true);
	ck_assert_int_eq(gw_breaker_state(b, 9500), GW_BREAKER_CLOSED);
	record_n(b, 9500, 1, true); /* 15 / 30 in the last second */
	text = capture_end(&cap);
	ck_assert_int_eq(gw_breaker_state(b, 9500), GW_BREAKER_OPEN);
	gw_breaker_counts(b, 9500, &counts);
	ck_assert_uint_eq(counts.tries, 9030); /* the window alone: 15 / 9030 */
	ck_assert_msg(strstr(text, "closed -> open (failure ratio 0.50 >= 0.50 over 30 tries in "
	                           "the last second); open for 1s, then a probe every 500ms\n"),
	              "got: %s", text);
	free(text);
	gw_breaker_free(b);
}
END_TEST

START_TEST(breaker_last_second_needs_min_requests)
{
	struct gw_breaker_conf c = test_conf();
	struct gw_breaker *b = gw_breaker_new(&c, "r");

	record_n(b, 500, 1000, false);
	/* 19 failures, all of the last second's tries: too few to judge. */
	record_n(b, 5000, 19, true);
	ck_assert_int_eq(gw_breaker_state(b, 5000), GW_BREAKER_CLOSED);
	/* Its buckets are 100 ms: those 19 are forgotten 0.9 to 1 s later. */
	record_n(b, 5950, 1, true);
	ck_assert_int_eq(gw_breaker_state(b, 5950), GW_BREAKER_OPEN);
	gw_breaker_free(b);

	b = gw_breaker_new(&c, "r");
	record_n(b, 500, 1000, false);
	record_n(b, 5000, 19, true);
	record_n(b, 6000, 1, true);
	ck_assert_int_eq(gw_breaker_state(b, 6000), GW_BREAKER_CLOSED);
	gw_breaker_free(b);
}
END_TEST

START_TEST(breaker_last_second_judges_slowness_too)
{
	struct gw_breaker_conf c = test_conf();
	struct gw_breaker *b;

	c.slow_call_duration_ms = 100;
	c.slow_call_ratio = 0.8;
	b = gw_breaker_new(&c, "r");
	record_n(b, 500, 1000, false);
	for (int i = 0; i < 19; i++)
		gw_breaker_record(b, 5000, false, 300, false);
	ck_assert_int_eq(gw_breaker_state(b, 5000), GW_BREAKER_CLOSED);
	gw_breaker_record(b, 5000, false, 300, false); /* 20 of 20 slow */
	ck_assert_int_eq(gw_breaker_state(b, 5000), GW_BREAKER_OPEN);
	gw_breaker_free(b);
}
END_TEST

START_TEST(breaker_one_second_window_is_its_own_last_second)
{
	struct gw_breaker_conf c = test_conf();
	struct gw_breaker *b;
	struct gw_breaker_counts counts;

	c.window_ms = 1000;
	b = gw_breaker_new(&c, "r");
	record_n(b, 50, 19, true);
	gw_breaker_counts(b, 999, &counts);
	ck_assert_uint_eq(counts.tries, 19);
	gw_breaker_counts(b, 1000, &counts); /* 100 ms buckets */
	ck_assert_uint_eq(counts.tries, 0);
	record_n(b, 1000, 19, true);
	ck_assert_int_eq(gw_breaker_state(b, 1000), GW_BREAKER_CLOSED);
	record_n(b, 1000, 1, true);
	ck_assert_int_eq(gw_breaker_state(b, 1000), GW_BREAKER_OPEN);
	gw_breaker_free(b);
}
END_TEST

/* ---- open and half-open ------------------------------------------------ */

START_TEST(breaker_rejects_while_open_with_time_until_half_open)
{
	struct gw_breaker_conf c = test_conf();
	struct gw_breaker *b = gw_breaker_new(&c, "r");

	trip_now(b, 5000);
	assert_rejects(b, 5000, 1000);
	assert_rejects(b, 5200, 800);
	assert_rejects(b, 5999, 1);
	ck_assert_int_eq(gw_breaker_state(b, 5999), GW_BREAKER_OPEN);
	/* Without a request, the state already reads half-open when time is up. */
	ck_assert_int_eq(gw_breaker_state(b, 6000), GW_BREAKER_HALF_OPEN);
	gw_breaker_free(b);
}
END_TEST

START_TEST(breaker_half_open_lets_one_probe_at_a_time)
{
	struct gw_breaker_conf c = test_conf();
	struct gw_breaker *b = gw_breaker_new(&c, "r");

	trip_now(b, 5000);
	ck_assert_int_eq(gw_breaker_admit(b, 6000, NULL), GW_BREAKER_PROBE);
	ck_assert_int_eq(gw_breaker_state(b, 6000), GW_BREAKER_HALF_OPEN);
	/* The probe is out: nobody else, however many ask. */
	for (int i = 0; i < 100; i++)
		assert_rejects(b, 6000 + (uint64_t)i, GW_BREAKER_PROBING_RETRY_AFTER_MS);
	/* It succeeds: the next request is the next probe, at once. */
	gw_breaker_record(b, 6100, false, 5, true);
	ck_assert_int_eq(gw_breaker_state(b, 6100), GW_BREAKER_HALF_OPEN);
	ck_assert_int_eq(gw_breaker_admit(b, 6100, NULL), GW_BREAKER_PROBE);
	assert_rejects(b, 6100, GW_BREAKER_PROBING_RETRY_AFTER_MS);
	gw_breaker_record(b, 6101, false, 5, true);
	ck_assert_int_eq(gw_breaker_state(b, 6101), GW_BREAKER_HALF_OPEN);
	probe(b, 6101, false); /* the third in a row */
	ck_assert_int_eq(gw_breaker_state(b, 6101), GW_BREAKER_CLOSED);
	gw_breaker_free(b);
}
END_TEST

START_TEST(breaker_closes_when_all_probes_succeed)
{
	struct gw_breaker_conf c = test_conf();
	struct gw_breaker *b = gw_breaker_new(&c, "r");
	struct gw_breaker_counts counts;

	trip_now(b, 5000);
	probes_ok(b, 6000, 3);
	ck_assert_int_eq(gw_breaker_state(b, 6000), GW_BREAKER_CLOSED);
	ck_assert_int_eq(gw_breaker_admit(b, 6100, NULL), GW_BREAKER_RAMP); /* see the ramp */
	gw_breaker_ramp_done(b);
	ck_assert_int_eq(gw_breaker_admit(b, 7000, NULL), GW_BREAKER_ALLOW);
	/* The window was cleared: the 20 failures that tripped it are gone. */
	gw_breaker_counts(b, 6100, &counts);
	ck_assert_uint_eq(counts.tries, 0);
	ck_assert_uint_eq(counts.failures, 0);
	record_n(b, 6200, 19, true);
	ck_assert_int_eq(gw_breaker_state(b, 6200), GW_BREAKER_CLOSED);
	gw_breaker_free(b);
}
END_TEST

START_TEST(breaker_failed_probe_waits_the_probe_interval)
{
	struct gw_breaker_conf c = test_conf(); /* open 1s: probes every 500ms */
	struct gw_breaker *b = gw_breaker_new(&c, "r");
	struct gw_breaker_counts counts;

	trip_now(b, 10000);
	assert_rejects(b, 10000, 1000);
	ck_assert_int_eq(gw_breaker_admit(b, 11000, NULL), GW_BREAKER_PROBE);
	gw_breaker_record(b, 11010, true, 10, true);
	/* Still half-open, the next probe 500 ms after the failed one was sent. */
	ck_assert_int_eq(gw_breaker_state(b, 11010), GW_BREAKER_HALF_OPEN);
	assert_rejects(b, 11010, 490);
	assert_rejects(b, 11499, 1);
	probe(b, 11500, true);
	assert_rejects(b, 11500, 500);
	/* Not doubled, however many fail. */
	for (uint64_t t = 12000; t < 20000; t += 500) {
		assert_rejects(b, t - 1, 1);
		probe(b, t, true);
	}
	gw_breaker_counts(b, 20000, &counts);
	ck_assert_uint_eq(counts.open_duration_ms, 1000);
	/* A probe slower than the interval: the next one may go as it ends. */
	ck_assert_int_eq(gw_breaker_admit(b, 20000, NULL), GW_BREAKER_PROBE);
	gw_breaker_record(b, 20700, true, 700, true);
	/* Successes count in a row: a failure starts the count again. */
	probes_ok(b, 20700, 2);
	probe(b, 20701, true);
	assert_rejects(b, 21200, 1);
	probes_ok(b, 21201, 2);
	ck_assert_int_eq(gw_breaker_state(b, 21201), GW_BREAKER_HALF_OPEN);
	probes_ok(b, 21201, 1);
	ck_assert_int_eq(gw_breaker_state(b, 21201), GW_BREAKER_CLOSED);
	gw_breaker_free(b);
}
END_TEST

START_TEST(breaker_probe_interval_is_open_duration_when_shorter)
{
	struct gw_breaker_conf c = test_conf();
	struct gw_breaker *b;

	c.open_duration_ms = 200;
	b = gw_breaker_new(&c, "r");
	trip_now(b, 1000);
	assert_rejects(b, 1000, 200);
	probe(b, 1200, true);
	assert_rejects(b, 1200, 200);
	probe(b, 1400, true);
	gw_breaker_free(b);
}
END_TEST

START_TEST(breaker_relapse_doubles_the_open_time_up_to_max)
{
	struct gw_breaker_conf c = test_conf(); /* open 1s, max 3s, window 10s */
	struct gw_breaker *b = gw_breaker_new(&c, "r");
	static const uint64_t open_for[] = {2000, 3000, 3000};
	struct gw_breaker_counts counts;
	uint64_t now = 10000;

	trip_now(b, now);
	assert_rejects(b, now, 1000);
	now += 1000;
	for (size_t i = 0; i < sizeof(open_for) / sizeof(open_for[0]); i++) {
		probes_ok(b, now, 3); /* closed ... */
		gw_breaker_counts(b, now, &counts);
		ck_assert_uint_eq(counts.open_duration_ms, open_for[i]); /* a trip now would be */
		now += 2000;
		trip_now(b, now); /* ... and open again 2 s later: a relapse */
		assert_rejects(b, now, open_for[i]);
		gw_breaker_counts(b, now, &counts);
		ck_assert_uint_eq(counts.open_duration_ms, open_for[i]);
		now += open_for[i];
	}
	/* A trip more than a window after closing is a new outage. */
	probes_ok(b, now, 3);
	now += 9999;
	gw_breaker_counts(b, now, &counts);
	ck_assert_uint_eq(counts.open_duration_ms, 3000);
	now += 1;
	gw_breaker_counts(b, now, &counts);
	ck_assert_uint_eq(counts.open_duration_ms, 1000);
	trip_now(b, now);
	assert_rejects(b, now, 1000);
	gw_breaker_free(b);
}
END_TEST

START_TEST(breaker_abandoned_probe_gives_its_slot_back)
{
	struct gw_breaker_conf c = test_conf();
	struct gw_breaker *b = gw_breaker_new(&c, "r");

	gw_breaker_abandon_probe(b); /* closed: nothing to give back */
	trip_now(b, 5000);
	gw_breaker_abandon_probe(b); /* open: nothing either */
	ck_assert_int_eq(gw_breaker_admit(b, 6000, NULL), GW_BREAKER_PROBE);
	assert_rejects(b, 6000, GW_BREAKER_PROBING_RETRY_AFTER_MS);
	gw_breaker_abandon_probe(b);
	/* Not spent: the next request probes at once, no interval. */
	ck_assert_int_eq(gw_breaker_admit(b, 6001, NULL), GW_BREAKER_PROBE);
	assert_rejects(b, 6001, GW_BREAKER_PROBING_RETRY_AFTER_MS);
	/* Three successes in a row still close it. */
	gw_breaker_record(b, 6002, false, 5, true);
	probes_ok(b, 6002, 2);
	ck_assert_int_eq(gw_breaker_state(b, 6002), GW_BREAKER_CLOSED);
	gw_breaker_free(b);
}
END_TEST

START_TEST(breaker_lost_probe_is_replaced_after_a_while)
{
	struct gw_breaker_conf c = test_conf();
	struct gw_breaker *b = gw_breaker_new(&c, "r");
	struct captured cap;
	char *text;

	trip_now(b, 5000);
	ck_assert_int_eq(gw_breaker_admit(b, 6000, NULL), GW_BREAKER_PROBE); /* never returns */
	assert_rejects(b, 6000 + GW_BREAKER_PROBE_LOST_MS - 1, GW_BREAKER_PROBING_RETRY_AFTER_MS);
	cap = capture_start();
	ck_assert_int_eq(gw_breaker_admit(b, 6000 + GW_BREAKER_PROBE_LOST_MS, NULL),
	                 GW_BREAKER_PROBE);
	text = capture_end(&cap);
	ck_assert_msg(strstr(text, " warn breaker r: half-open, a probe had no outcome within "
	                           "15s; sending another\n") != NULL,
	              "got: %s", text);
	free(text);
	assert_rejects(b, 21000, GW_BREAKER_PROBING_RETRY_AFTER_MS); /* one at a time still */
	/* The lost one's late outcome counts for its successor (harmless). */
	gw_breaker_record(b, 21001, false, 5, true);
	probes_ok(b, 21001, 2);
	ck_assert_int_eq(gw_breaker_state(b, 21001), GW_BREAKER_CLOSED);
	gw_breaker_free(b);

	/* An open time longer than that is the bound instead. */
	c.open_duration_ms = c.max_open_duration_ms = 60000;
	b = gw_breaker_new(&c, "r");
	trip_now(b, 0);
	ck_assert_int_eq(gw_breaker_admit(b, 60000, NULL), GW_BREAKER_PROBE);
	assert_rejects(b, 119999, GW_BREAKER_PROBING_RETRY_AFTER_MS);
	cap = capture_start();
	ck_assert_int_eq(gw_breaker_admit(b, 120000, NULL), GW_BREAKER_PROBE);
	free(capture_end(&cap));
	gw_breaker_free(b);
}
END_TEST

START_TEST(breaker_late_tries_do_not_move_it)
{
	struct gw_breaker_conf c = test_conf();
	struct gw_breaker *b = gw_breaker_new(&c, "r");

	trip_now(b, 5000);
	/* Tries admitted before the trip, finishing while open: ignored. */
	record_n(b, 5100, 50, false);
	ck_assert_int_eq(gw_breaker_state(b, 5100), GW_BREAKER_OPEN);
	ck_assert_int_eq(gw_breaker_admit(b, 6000, NULL), GW_BREAKER_PROBE);
	/* Non-probe successes during half-open do not close it ... */
	record_n(b, 6001, 50, false);
	ck_assert_int_eq(gw_breaker_state(b, 6001), GW_BREAKER_HALF_OPEN);
	/* ... nor do non-probe failures change anything. */
	record_n(b, 6002, 50, true);
	ck_assert_int_eq(gw_breaker_state(b, 6002), GW_BREAKER_HALF_OPEN);
	ck_assert_int_eq(gw_breaker_admit(b, 6002, NULL), GW_BREAKER_REJECT);
	/* The probe's own outcome counts once; a probe outcome with no probe out
	 * (a stray) is dropped: two more are needed, not one. */
	gw_breaker_record(b, 6003, false, 5, true);
	gw_breaker_record(b, 6003, false, 5, true);
	probe(b, 6003, false);
	ck_assert_int_eq(gw_breaker_state(b, 6003), GW_BREAKER_HALF_OPEN);
	probe(b, 6003, false);
	ck_assert_int_eq(gw_breaker_state(b, 6003), GW_BREAKER_CLOSED);
	gw_breaker_free(b);
}
END_TEST

/* ---- the ramp after closing -------------------------------------------- */

START_TEST(breaker_ramp_limits_requests_in_flight_after_closing)
{
	struct gw_breaker_conf c = test_conf(); /* 3 probes: 3 in flight at first */
	struct gw_breaker *b = gw_breaker_new(&c, "r");

	trip_now(b, 5000);
	probes_ok(b, 6000, 3);
	ck_assert_int_eq(gw_breaker_state(b, 6000), GW_BREAKER_CLOSED);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(gw_breaker_admit(b, 6000, NULL), GW_BREAKER_RAMP);
	for (int i = 0; i < 1000; i++)
		assert_rejects(b, 6000, GW_BREAKER_RAMP_RETRY_AFTER_MS);
	assert_rejects(b, 6099, GW_BREAKER_RAMP_RETRY_AFTER_MS);
	ck_assert_int_eq(gw_breaker_state(b, 6099), GW_BREAKER_CLOSED);
	/* One ends: its place is free. */
	gw_breaker_ramp_done(b);
	ck_assert_int_eq(gw_breaker_admit(b, 6099, NULL), GW_BREAKER_RAMP);
	assert_rejects(b, 6099, GW_BREAKER_RAMP_RETRY_AFTER_MS);
	/* Twice as many every 100 ms: 6, then 12, ... */
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(gw_breaker_admit(b, 6100, NULL), GW_BREAKER_RAMP);
	assert_rejects(b, 6199, GW_BREAKER_RAMP_RETRY_AFTER_MS);
	for (int i = 0; i < 6; i++)
		ck_assert_int_eq(gw_breaker_admit(b, 6200, NULL), GW_BREAKER_RAMP);
	assert_rejects(b, 6200, GW_BREAKER_RAMP_RETRY_AFTER_MS);
	/* 900 ms: 3 x 512 = 1536 in flight (12 are). */
	for (int i = 0; i < 1536 - 12; i++)
		ck_assert_int_eq(gw_breaker_admit(b, 6999, NULL), GW_BREAKER_RAMP);
	assert_rejects(b, 6999, GW_BREAKER_RAMP_RETRY_AFTER_MS);
	/* From 1 s on, no limit and nothing to give back. */
	for (int i = 0; i < 10000; i++)
		ck_assert_int_eq(gw_breaker_admit(b, 7000, NULL), GW_BREAKER_ALLOW);
	/* More done calls than places taken never go below zero. */
	for (int i = 0; i < 2000; i++)
		gw_breaker_ramp_done(b);
	/* A relapse and a new recovery: a new ramp, from 3 again. */
	trip_now(b, 7000);
	probes_ok(b, 9000, 3);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(gw_breaker_admit(b, 9000, NULL), GW_BREAKER_RAMP);
	assert_rejects(b, 9000, GW_BREAKER_RAMP_RETRY_AFTER_MS);
	gw_breaker_free(b);
}
END_TEST

START_TEST(breaker_ramp_never_refuses_a_sequential_client)
{
	struct gw_breaker_conf c = test_conf();
	struct gw_breaker *b;

	c.half_open_requests = 1;
	b = gw_breaker_new(&c, "r");
	trip_now(b, 5000);
	probes_ok(b, 6000, 1);
	for (uint64_t t = 6000; t < 7000; t++) {
		ck_assert_int_eq(gw_breaker_admit(b, t, NULL), GW_BREAKER_RAMP);
		gw_breaker_record(b, t, false, 1, false);
		gw_breaker_ramp_done(b);
	}
	ck_assert_int_eq(gw_breaker_admit(b, 7000, NULL), GW_BREAKER_ALLOW);
	gw_breaker_free(b);
}
END_TEST

/* ---- whole outages on a fake clock ------------------------------------- */

/* The config the issue measured with: window 10s, min 20, ratio 0.5, open 5s. */
static struct gw_breaker_conf expert_conf(void)
{
	struct gw_breaker_conf c = gw_breaker_conf_default;

	c.open_duration_ms = 5000;
	return c;
}

/*
 * One request every gap ms, each a single try of latency ms; the upstream
 * fails fail_pct % of the tries sent in [down_from, down_until) (the ones
 * whose send time mod 100 is below it), none otherwise.
 */
#define SIM_SLOTS 600 /* of 100 ms: a minute */
#define SIM_QUEUE 4096

struct sim_try {
	uint64_t sent, done;
	bool failure, probe, ramp;
};

struct sim {
	struct gw_breaker *b;
	uint64_t gap, latency, down_from, down_until;
	unsigned fail_pct;
	struct sim_try q[SIM_QUEUE];
	size_t head, tail;
	/* what happened */
	uint64_t tripped_at;  /* first rejection at or after down_from; 0 = none */
	uint64_t closed_at;   /* when it closed after tripping; 0 = not yet */
	uint64_t first_ok;    /* first success of a try sent at or after down_until */
	uint64_t last_reject; /* the last rejection */
	unsigned probes_out, max_probes_out;
	uint64_t probes[1024]; /* send times */
	size_t nprobes;
	uint64_t sent[SIM_SLOTS], offered[SIM_SLOTS], rejected[SIM_SLOTS];
	uint8_t sent_ms[SIM_SLOTS * 100]; /* tries sent in each ms */
};

static void sim_init(struct sim *s, struct gw_breaker *b, uint64_t gap, uint64_t latency,
                     uint64_t down_from, uint64_t down_until)
{
	memset(s, 0, sizeof(*s));
	s->b = b;
	s->gap = gap;
	s->latency = latency;
	s->down_from = down_from;
	s->down_until = down_until;
	s->fail_pct = 100;
}

static void sim_finish(struct sim *s, uint64_t t)
{
	while (s->head != s->tail && s->q[s->head % SIM_QUEUE].done <= t) {
		struct sim_try *x = &s->q[s->head++ % SIM_QUEUE];

		gw_breaker_record(s->b, t, x->failure, s->latency, x->probe);
		if (x->probe)
			s->probes_out--;
		if (x->ramp)
			gw_breaker_ramp_done(s->b);
		if (!x->failure && x->sent >= s->down_until && !s->first_ok)
			s->first_ok = t;
		if (s->tripped_at && !s->closed_at &&
		    gw_breaker_state(s->b, t) == GW_BREAKER_CLOSED)
			s->closed_at = t;
	}
}

static void sim_arrive(struct sim *s, uint64_t t)
{
	enum gw_breaker_admit v = gw_breaker_admit(s->b, t, NULL);
	struct sim_try *x;

	s->offered[t / 100]++;
	if (v == GW_BREAKER_REJECT) {
		s->rejected[t / 100]++;
		s->last_reject = t;
		if (!s->tripped_at && t >= s->down_from)
			s->tripped_at = t;
		return;
	}
	ck_assert_uint_lt(s->tail - s->head, SIM_QUEUE);
	x = &s->q[s->tail++ % SIM_QUEUE];
	x->sent = t;
	x->done = t + s->latency;
	x->failure = t >= s->down_from && t < s->down_until && t % 100 < s->fail_pct;
	x->probe = v == GW_BREAKER_PROBE;
	x->ramp = v == GW_BREAKER_RAMP;
	s->sent[t / 100]++;
	s->sent_ms[t]++;
	if (x->probe) {
		ck_assert_uint_lt(s->nprobes, sizeof(s->probes) / sizeof(s->probes[0]));
		s->probes[s->nprobes++] = t;
		if (++s->probes_out > s->max_probes_out)
			s->max_probes_out = s->probes_out;
	}
}

static void sim_run(struct sim *s, uint64_t from, uint64_t until)
{
	for (uint64_t t = from; t < until; t++) {
		sim_finish(s, t);
		if (t % s->gap == 0)
			sim_arrive(s, t);
	}
}

/* Tries sent to the upstream in [from, until), and requests offered. */
static uint64_t sim_sum(const uint64_t *per_slot, uint64_t from, uint64_t until)
{
	uint64_t n = 0;

	for (uint64_t i = from / 100; i < until / 100; i++)
		n += per_slot[i];
	return n;
}

static void outage_trips_within_a_second(uint64_t gap)
{
	struct gw_breaker_conf c = expert_conf();
	struct gw_breaker *b = gw_breaker_new(&c, "r");
	struct sim *s = calloc(1, sizeof(*s));
	struct captured cap;
	char *text;

	sim_init(s, b, gap, 2, 10000, 30000);
	sim_run(s, 0, 10000); /* a window full of successes */
	ck_assert_int_eq(gw_breaker_state(b, 10000), GW_BREAKER_CLOSED);
	cap = capture_start();
	sim_run(s, 10000, 11000);
	text = capture_end(&cap);
	ck_assert_msg(s->tripped_at >= 10000 && s->tripped_at < 11000,
	              "one request every %llums: tripped at %llu, outage from 10000",
	              (unsigned long long)gap, (unsigned long long)s->tripped_at);
	ck_assert_msg(strstr(text, " in the last second)") != NULL, "got: %s", text);
	free(text);
	free(s);
	gw_breaker_free(b);
}

START_TEST(breaker_outage_trips_within_a_second_at_1000_per_second)
{
	outage_trips_within_a_second(1);
}
END_TEST

START_TEST(breaker_outage_trips_within_a_second_at_50_per_second)
{
	outage_trips_within_a_second(20);
}
END_TEST

START_TEST(breaker_below_min_requests_a_second_only_the_window_judges)
{
	struct gw_breaker_conf c = expert_conf();
	struct gw_breaker *b = gw_breaker_new(&c, "r");
	struct sim *s = calloc(1, sizeof(*s));

	/* 10 a second: never 20 in the last second, so the 10 s window
	 * (100 successes) decides, half-way through. */
	sim_init(s, b, 100, 2, 10000, 30000);
	sim_run(s, 0, 11000);
	ck_assert_uint_eq(s->tripped_at, 0);
	sim_run(s, 11000, 20000);
	ck_assert_msg(s->tripped_at > 14000 && s->tripped_at < 16000, "tripped at %llu",
	              (unsigned long long)s->tripped_at);
	free(s);
	gw_breaker_free(b);
}
END_TEST

START_TEST(breaker_a_second_of_some_failures_does_not_trip)
{
	struct gw_breaker_conf c = expert_conf();
	struct gw_breaker *b = gw_breaker_new(&c, "r");
	struct sim *s = calloc(1, sizeof(*s));

	sim_init(s, b, 1, 2, 10000, 12000);
	s->fail_pct = 45; /* below failure_ratio, for 2 s */
	sim_run(s, 0, 20000);
	ck_assert_uint_eq(s->tripped_at, 0);
	ck_assert_uint_eq(s->last_reject, 0);
	free(s);
	gw_breaker_free(b);
}
END_TEST

START_TEST(breaker_outage_probes_steadily_and_recovery_is_seen_within_a_second)
{
	struct gw_breaker_conf c = expert_conf(); /* open 5s: probes every 500ms; 5 probes */
	struct gw_breaker *b = gw_breaker_new(&c, "r");
	struct sim *s = calloc(1, sizeof(*s));
	size_t failed = 0;

	/* 1000 req/s, answers in 2 ms; every try fails from 10 s until 1 ms
	 * after a probe went at 25 s (the worst moment to heal: the probe that
	 * would have seen it has just gone). */
	sim_init(s, b, 1, 2, 10000, 25001);
	sim_run(s, 0, 30000);
	ck_assert_msg(s->tripped_at >= 10000 && s->tripped_at < 11000, "tripped at %llu",
	              (unsigned long long)s->tripped_at);
	/* Fully open for open_duration, then one probe every 500 ms, one at a time. */
	ck_assert_uint_eq(s->max_probes_out, 1);
	ck_assert_uint_ge(s->nprobes, 2);
	ck_assert_uint_ge(s->probes[0], s->tripped_at + 5000);
	ck_assert_uint_lt(s->probes[0], s->tripped_at + 5000 + 5);
	for (size_t i = 0; i < s->nprobes && s->probes[i] < s->down_until; i++, failed++)
		if (i > 0)
			ck_assert_uint_eq(s->probes[i] - s->probes[i - 1], 500);
	ck_assert_uint_eq(s->probes[failed - 1], 25000);
	ck_assert_uint_ge(failed, 19); /* 9.5 s of probing, twice a second */
	/* While open, the upstream sees the probes and nothing else. */
	ck_assert_uint_eq(sim_sum(s->sent, s->tripped_at / 100 * 100 + 100, 25100), failed);
	/* The first success comes with the next probe, within a second of the
	 * heal; the other 4 probes follow at once, and it closes. */
	ck_assert_msg(s->first_ok > 25001 && s->first_ok < 26000, "first success at %llu",
	              (unsigned long long)s->first_ok);
	ck_assert_msg(s->closed_at >= s->first_ok && s->closed_at < s->first_ok + 50,
	              "closed at %llu, first success at %llu", (unsigned long long)s->closed_at,
	              (unsigned long long)s->first_ok);
	/* Quick answers: the ramp refuses nobody, and no second gets more tries
	 * than requests (there is nothing to burst). */
	ck_assert_uint_lt(s->last_reject, s->closed_at);
	ck_assert_uint_eq(sim_sum(s->sent, s->closed_at / 100 * 100 + 100, 30000),
	                  sim_sum(s->offered, s->closed_at / 100 * 100 + 100, 30000));
	ck_assert_int_eq(gw_breaker_state(b, 30000), GW_BREAKER_CLOSED);
	free(s);
	gw_breaker_free(b);
}
END_TEST

START_TEST(breaker_ramp_holds_back_a_burst_after_recovery)
{
	struct gw_breaker_conf c = expert_conf(); /* 5 probes: 5 in flight at first */
	struct gw_breaker *b = gw_breaker_new(&c, "r");
	struct sim *s = calloc(1, sizeof(*s));
	uint64_t t0;

	/* 1000 req/s at 50 ms each: 50 in flight when all is well. */
	sim_init(s, b, 1, 50, 10000, 20000);
	sim_run(s, 0, 25000);
	ck_assert_msg(s->first_ok > 20000 && s->first_ok < 21000, "first success at %llu",
	              (unsigned long long)s->first_ok);
	t0 = s->closed_at;
	ck_assert_uint_gt(t0, 0);
	/* 5 in flight at first, 10 from 100 ms on, ...: each try takes 50 ms,
	 * so in step k (100 ms) at most 2 x (5 << k) tries go, where 100
	 * requests come: 10 in the first 100 ms, 20 in the next, ... */
	for (uint64_t k = 0; k < 10; k++) {
		uint64_t n = 0;

		for (uint64_t t = t0 + 100 * k; t < t0 + 100 * (k + 1); t++)
			n += s->sent_ms[t];
		ck_assert_msg(n <= 2 * (5u << k), "%llu tries in ms %llu..%llu after closing",
		              (unsigned long long)n, (unsigned long long)(100 * k),
		              (unsigned long long)(100 * k + 99));
		if (k == 0)
			ck_assert_uint_eq(n, 10);
	}
	/* From 400 ms on the limit (80) is above what the route needs: the
	 * last refusal comes before; a second after closing, all flows. */
	ck_assert_uint_lt(s->last_reject, t0 + 400);
	ck_assert_uint_eq(sim_sum(s->sent, t0 + 1100 - t0 % 100, 25000),
	                  sim_sum(s->offered, t0 + 1100 - t0 % 100, 25000));
	free(s);
	gw_breaker_free(b);
}
END_TEST

/* ---- reloads ----------------------------------------------------------- */

START_TEST(breaker_carry_keeps_probing_ramp_and_relapse)
{
	struct gw_breaker_conf c = test_conf();
	struct gw_breaker *old = gw_breaker_new(&c, "r"), *b;

	/* Half-open, one probe succeeded, the second out since 6000. */
	trip_now(old, 5000);
	probe(old, 6000, false);
	ck_assert_int_eq(gw_breaker_admit(old, 6000, NULL), GW_BREAKER_PROBE);
	b = gw_breaker_new(&c, "r");
	gw_breaker_carry(b, old, 6100);
	ck_assert_int_eq(gw_breaker_state(b, 6100), GW_BREAKER_HALF_OPEN);
	/* old's probe reports to old: b sends its own a probe interval later */
	assert_rejects(b, 6100, 400);
	probes_ok(b, 6500, 1);
	ck_assert_int_eq(gw_breaker_state(b, 6500), GW_BREAKER_HALF_OPEN);
	probes_ok(b, 6500, 1); /* 1 carried + 2 */
	ck_assert_int_eq(gw_breaker_state(b, 6500), GW_BREAKER_CLOSED);
	gw_breaker_free(old);

	/* Closed and ramping: the ramp goes on; a relapse is still one. */
	old = b;
	b = gw_breaker_new(&c, "r");
	gw_breaker_carry(b, old, 6600);
	for (int i = 0; i < 6; i++)
		ck_assert_int_eq(gw_breaker_admit(b, 6600, NULL), GW_BREAKER_RAMP);
	assert_rejects(b, 6600, GW_BREAKER_RAMP_RETRY_AFTER_MS);
	ck_assert_int_eq(gw_breaker_admit(b, 7500, NULL), GW_BREAKER_ALLOW);
	trip_now(b, 8000);
	assert_rejects(b, 8000, 2000);
	gw_breaker_free(old);

	/* Open: until the same time. */
	old = b;
	b = gw_breaker_new(&c, "r");
	gw_breaker_carry(b, old, 8500);
	assert_rejects(b, 8500, 1500);
	ck_assert_int_eq(gw_breaker_admit(b, 10000, NULL), GW_BREAKER_PROBE);
	gw_breaker_free(old);
	gw_breaker_free(b);
}
END_TEST

/* ---- forcing ----------------------------------------------------------- */

START_TEST(breaker_force_open_closed_and_auto)
{
	struct gw_breaker_conf c = test_conf();
	struct gw_breaker *b = gw_breaker_new(&c, "r");
	struct gw_breaker_counts counts;

	gw_breaker_force(b, GW_BREAKER_FORCE_OPEN);
	ck_assert_int_eq(gw_breaker_forced(b), GW_BREAKER_FORCE_OPEN);
	ck_assert_int_eq(gw_breaker_state(b, 0), GW_BREAKER_OPEN);
	/* No end is known: clients are told open_duration. */
	assert_rejects(b, 0, 1000);
	assert_rejects(b, 999999, 1000);

	gw_breaker_force(b, GW_BREAKER_FORCE_CLOSED);
	ck_assert_int_eq(gw_breaker_state(b, 1000000), GW_BREAKER_CLOSED);
	record_n(b, 1000000, 100, true); /* counted, never tripping */
	ck_assert_int_eq(gw_breaker_admit(b, 1000000, NULL), GW_BREAKER_ALLOW);
	ck_assert_int_eq(gw_breaker_state(b, 1000000), GW_BREAKER_CLOSED);
	gw_breaker_counts(b, 1000000, &counts);
	ck_assert_uint_eq(counts.failures, 100);

	/* Back to automatic: a fresh start, closed with an empty window. */
	gw_breaker_force(b, GW_BREAKER_FORCE_AUTO);
	ck_assert_int_eq(gw_breaker_forced(b), GW_BREAKER_FORCE_AUTO);
	ck_assert_int_eq(gw_breaker_state(b, 1000000), GW_BREAKER_CLOSED);
	gw_breaker_counts(b, 1000000, &counts);
	ck_assert_uint_eq(counts.tries, 0);
	record_n(b, 1000000, 19, true);
	ck_assert_int_eq(gw_breaker_state(b, 1000000), GW_BREAKER_CLOSED);
	record_n(b, 1000000, 1, true);
	ck_assert_int_eq(gw_breaker_state(b, 1000000), GW_BREAKER_OPEN);
	gw_breaker_free(b);
}
END_TEST

/* A route without circuit_breaker: only an operator moves its breaker. */
START_TEST(breaker_manual_never_trips_and_obeys_force)
{
	struct gw_breaker *b = gw_breaker_new(NULL, "bare");

	ck_assert(gw_breaker_is_manual(b));
	record_n(b, 0, 1000, true);
	ck_assert_int_eq(gw_breaker_admit(b, 0, NULL), GW_BREAKER_ALLOW);
	ck_assert_int_eq(gw_breaker_state(b, 0), GW_BREAKER_CLOSED);

	gw_breaker_force(b, GW_BREAKER_FORCE_OPEN);
	ck_assert_int_eq(gw_breaker_state(b, 0), GW_BREAKER_OPEN);
	/* Retry-After: the default open_duration (30 s), as for any forced open */
	assert_rejects(b, 0, gw_breaker_conf_default.open_duration_ms);
	assert_rejects(b, 3600000, gw_breaker_conf_default.open_duration_ms);

	gw_breaker_force(b, GW_BREAKER_FORCE_AUTO);
	record_n(b, 3600000, 1000, true);
	ck_assert_int_eq(gw_breaker_admit(b, 3600000, NULL), GW_BREAKER_ALLOW);
	ck_assert_int_eq(gw_breaker_state(b, 3600000), GW_BREAKER_CLOSED);
	gw_breaker_force(b, GW_BREAKER_FORCE_CLOSED);
	ck_assert_int_eq(gw_breaker_admit(b, 3600000, NULL), GW_BREAKER_ALLOW);
	gw_breaker_free(b);
	b = gw_breaker_new(&gw_breaker_conf_default, "configured");
	ck_assert(!gw_breaker_is_manual(b));
	gw_breaker_free(b);
}
END_TEST

START_TEST(breaker_force_closed_overrides_an_open_breaker)
{
	struct gw_breaker_conf c = test_conf();
	struct gw_breaker *b = gw_breaker_new(&c, "r");
	struct gw_breaker_counts counts;

	trip_now(b, 5000);
	probes_ok(b, 6000, 3);
	trip_now(b, 6500); /* a relapse: open for 2s */
	gw_breaker_counts(b, 6500, &counts);
	ck_assert_uint_eq(counts.open_duration_ms, 2000);
	gw_breaker_force(b, GW_BREAKER_FORCE_CLOSED);
	ck_assert_int_eq(gw_breaker_admit(b, 6501, NULL), GW_BREAKER_ALLOW);
	gw_breaker_force(b, GW_BREAKER_FORCE_AUTO);
	/* No ramp: the operator decided. */
	ck_assert_int_eq(gw_breaker_admit(b, 6502, NULL), GW_BREAKER_ALLOW);
	gw_breaker_counts(b, 6502, &counts);
	ck_assert_uint_eq(counts.open_duration_ms, 1000); /* doubling forgotten */
	/* Forcing the mode it already has changes nothing. */
	gw_breaker_force(b, GW_BREAKER_FORCE_AUTO);
	ck_assert_int_eq(gw_breaker_state(b, 6502), GW_BREAKER_CLOSED);
	/* A trip now is not a relapse. */
	trip_now(b, 6600);
	assert_rejects(b, 6600, 1000);
	gw_breaker_free(b);
}
END_TEST

/* ---- log lines --------------------------------------------------------- */

static int count_lines(const char *text)
{
	int n = 0;

	for (; *text; text++)
		n += *text == '\n';
	return n;
}

/* Line i (0-based) of text ends with suffix. */
static void assert_line_ends(const char *text, int i, const char *suffix)
{
	const char *line = text, *end;

	while (i-- > 0)
		line = strchr(line, '\n') + 1;
	end = strchr(line, '\n');
	ck_assert_msg((size_t)(end - line) >= strlen(suffix) &&
	                  strncmp(end - strlen(suffix), suffix, strlen(suffix)) == 0,
	              "line '%.*s' should end with '%s'", (int)(end - line), line, suffix);
}

START_TEST(breaker_logs_each_state_change_once_with_its_reason)
{
	struct gw_breaker_conf c = test_conf();
	struct gw_breaker *b = gw_breaker_new(&c, "checkout");
	struct captured cap = capture_start();
	char *text;

	record_n(b, 1000, 9, false);
	record_n(b, 1000, 11, true); /* 11 / 20 = 0.55 */
	record_n(b, 1000, 30, true); /* already open: nothing more to say */
	ck_assert_int_eq(gw_breaker_admit(b, 2000, NULL), GW_BREAKER_PROBE);
	for (int i = 0; i < 5; i++)
		assert_rejects(b, 2000, GW_BREAKER_PROBING_RETRY_AFTER_MS);
	gw_breaker_record(b, 2001, true, 5, true);
	gw_breaker_record(b, 2001, true, 5, true); /* no probe out: nothing */
	for (uint64_t t = 2500; t <= 4000; t += 500)
		probe(b, t, true); /* the 2nd and 4th failed probes say so */
	probes_ok(b, 4500, 3);
	record_n(b, 5000, 20, true); /* a relapse */
	probes_ok(b, 7000, 3);
	gw_breaker_force(b, GW_BREAKER_FORCE_OPEN);
	gw_breaker_force(b, GW_BREAKER_FORCE_AUTO);
	text = capture_end(&cap);

	ck_assert_msg(count_lines(text) == 11, "expected 11 lines, got:\n%s", text);
	assert_line_ends(text, 0,
	                 " warn breaker checkout: closed -> open (failure ratio 0.55 >= 0.50 "
	                 "over 20 tries); open for 1s, then a probe every 500ms");
	assert_line_ends(text, 1,
	                 " info breaker checkout: open -> half-open (open for 1s; probing one "
	                 "request at a time, 3 in a row to close)");
	assert_line_ends(text, 2,
	                 " warn breaker checkout: half-open, probe failed (1 so far); next probe "
	                 "in 499ms");
	assert_line_ends(text, 3,
	                 " warn breaker checkout: half-open, probe failed (2 so far); next probe "
	                 "in 500ms");
	assert_line_ends(text, 4,
	                 " warn breaker checkout: half-open, probe failed (4 so far); next probe "
	                 "in 500ms");
	assert_line_ends(text, 5,
	                 " info breaker checkout: half-open -> closed (3 of 3 probes succeeded, "
	                 "after 5 failed); ramping up over 1s from 3 requests in flight");
	assert_line_ends(text, 6,
	                 " warn breaker checkout: closed -> open (failure ratio 1.00 >= 0.50 "
	                 "over 20 tries, 500ms after closing); open for 2s, then a probe every "
	                 "500ms");
	assert_line_ends(text, 7,
	                 " info breaker checkout: open -> half-open (open for 2s; probing one "
	                 "request at a time, 3 in a row to close)");
	assert_line_ends(text, 8,
	                 " info breaker checkout: half-open -> closed (3 of 3 probes succeeded); "
	                 "ramping up over 1s from 3 requests in flight");
	assert_line_ends(text, 9,
	                 " warn breaker checkout: closed -> open (forced open by operator)");
	assert_line_ends(text, 10,
	                 " info breaker checkout: open -> closed (automatic again, by operator; "
	                 "window cleared)");
	free(text);
	gw_breaker_free(b);
}
END_TEST

START_TEST(breaker_logs_consecutive_and_slow_reasons)
{
	struct gw_breaker_conf c = test_conf();
	struct gw_breaker *b1, *b2;
	struct captured cap;
	char *text;

	c.consecutive_failures = 3;
	c.min_requests = 1000;
	b1 = gw_breaker_new(&c, "a");
	c.consecutive_failures = 0;
	c.min_requests = 4;
	c.slow_call_duration_ms = 250;
	c.slow_call_ratio = 0.75;
	b2 = gw_breaker_new(&c, "b");
	cap = capture_start();
	record_n(b1, 0, 3, true);
	gw_breaker_record(b2, 0, false, 10, false);
	for (int i = 0; i < 3; i++)
		gw_breaker_record(b2, 0, false, 300, false);
	text = capture_end(&cap);
	ck_assert_msg(count_lines(text) == 2, "expected 2 lines, got:\n%s", text);
	assert_line_ends(text, 0,
	                 "breaker a: closed -> open (3 consecutive failures); open for 1s, then a "
	                 "probe every 500ms");
	assert_line_ends(text, 1,
	                 "breaker b: closed -> open (slow call ratio 0.75 >= 0.75 over 4 tries "
	                 "slower than 250ms); open for 1s, then a probe every 500ms");
	free(text);
	gw_breaker_free(b1);
	gw_breaker_free(b2);
}
END_TEST

/* ---- concurrency ------------------------------------------------------- */

struct worker {
	struct gw_breaker *b;
	pthread_barrier_t *start;
	int n;
	uint64_t now;
	int probes; /* admit: probes granted */
	int ramps;  /* admit: places in the ramp granted */
};

static void *fail_many(void *arg)
{
	struct worker *w = arg;

	pthread_barrier_wait(w->start);
	for (int i = 0; i < w->n; i++)
		gw_breaker_record(w->b, w->now, true, 5, false);
	return NULL;
}

static void *admit_many(void *arg)
{
	struct worker *w = arg;

	pthread_barrier_wait(w->start);
	for (int i = 0; i < w->n; i++)
		switch (gw_breaker_admit(w->b, w->now, NULL)) {
		case GW_BREAKER_PROBE:
			w->probes++;
			break;
		case GW_BREAKER_RAMP:
			w->ramps++;
			break;
		default:
			break;
		}
	return NULL;
}

/* Runs fn in 4 threads, n calls each at now; the probes (or ramps) granted. */
static int run_workers(struct gw_breaker *b, void *(*fn)(void *), int n, uint64_t now, bool ramps)
{
	pthread_t t[4];
	struct worker w[4];
	pthread_barrier_t start;
	int got = 0;

	pthread_barrier_init(&start, NULL, 4);
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){.b = b, .start = &start, .n = n, .now = now};
		ck_assert_int_eq(pthread_create(&t[i], NULL, fn, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		got += ramps ? w[i].ramps : w[i].probes;
	}
	pthread_barrier_destroy(&start);
	return got;
}

START_TEST(breaker_concurrent_failures_trip_once_and_one_probe_goes)
{
	for (int round = 0; round < 20; round++) {
		struct gw_breaker_conf c = test_conf();
		struct gw_breaker *b;
		struct captured cap;
		char *text;
		int probes;

		c.half_open_requests = 7;
		b = gw_breaker_new(&c, "r");
		cap = capture_start();
		run_workers(b, fail_many, 200, 1000, false);
		probes = run_workers(b, admit_many, 1000, 2000, false); /* half-open */
		text = capture_end(&cap);
		ck_assert_int_eq(probes, 1);
		ck_assert_msg(count_lines(text) == 2, "expected 2 lines, got:\n%s", text);
		ck_assert_ptr_nonnull(strstr(text, "closed -> open"));
		ck_assert_ptr_nonnull(strstr(text, "open -> half-open"));
		free(text);
		gw_breaker_free(b);
	}
}
END_TEST

START_TEST(breaker_concurrent_ramp_never_passes_its_limit)
{
	for (int round = 0; round < 20; round++) {
		struct gw_breaker_conf c = test_conf();
		struct gw_breaker *b;
		struct captured cap;

		c.half_open_requests = 7;
		b = gw_breaker_new(&c, "r");
		cap = capture_start();
		trip_now(b, 1000);
		probes_ok(b, 2000, 7);
		free(capture_end(&cap));
		ck_assert_int_eq(run_workers(b, admit_many, 1000, 2000, true), 7);
		ck_assert_int_eq(run_workers(b, admit_many, 1000, 2150, true), 7);
		gw_breaker_free(b);
	}
}
END_TEST

/* ---- suite ------------------------------------------------------------- */

#define ADD(s, name) gw_test_add_case(s, #name, name, 60)

static Suite *breaker_suite(void)
{
	Suite *s = suite_create("breaker");

	ADD(s, breaker_starts_closed_and_allows);
	ADD(s, breaker_does_not_trip_below_min_requests);
	ADD(s, breaker_opens_exactly_at_failure_ratio);
	ADD(s, breaker_stays_closed_just_below_failure_ratio);
	ADD(s, breaker_a_success_can_complete_the_volume);
	ADD(s, breaker_trips_on_consecutive_failures);
	ADD(s, breaker_consecutive_rule_off_by_default);
	ADD(s, breaker_trips_on_slow_call_ratio);
	ADD(s, breaker_ignores_slowness_when_slow_call_duration_is_off);
	ADD(s, breaker_forgets_failures_after_the_window);
	ADD(s, breaker_window_slides_bucket_by_bucket);
	ADD(s, breaker_last_second_trips_despite_a_window_of_successes);
	ADD(s, breaker_last_second_needs_min_requests);
	ADD(s, breaker_last_second_judges_slowness_too);
	ADD(s, breaker_one_second_window_is_its_own_last_second);
	ADD(s, breaker_rejects_while_open_with_time_until_half_open);
	ADD(s, breaker_half_open_lets_one_probe_at_a_time);
	ADD(s, breaker_closes_when_all_probes_succeed);
	ADD(s, breaker_failed_probe_waits_the_probe_interval);
	ADD(s, breaker_probe_interval_is_open_duration_when_shorter);
	ADD(s, breaker_relapse_doubles_the_open_time_up_to_max);
	ADD(s, breaker_abandoned_probe_gives_its_slot_back);
	ADD(s, breaker_lost_probe_is_replaced_after_a_while);
	ADD(s, breaker_late_tries_do_not_move_it);
	ADD(s, breaker_ramp_limits_requests_in_flight_after_closing);
	ADD(s, breaker_ramp_never_refuses_a_sequential_client);
	ADD(s, breaker_outage_trips_within_a_second_at_1000_per_second);
	ADD(s, breaker_outage_trips_within_a_second_at_50_per_second);
	ADD(s, breaker_below_min_requests_a_second_only_the_window_judges);
	ADD(s, breaker_a_second_of_some_failures_does_not_trip);
	ADD(s, breaker_outage_probes_steadily_and_recovery_is_seen_within_a_second);
	ADD(s, breaker_ramp_holds_back_a_burst_after_recovery);
	ADD(s, breaker_carry_keeps_probing_ramp_and_relapse);
	ADD(s, breaker_force_open_closed_and_auto);
	ADD(s, breaker_manual_never_trips_and_obeys_force);
	ADD(s, breaker_force_closed_overrides_an_open_breaker);
	ADD(s, breaker_logs_each_state_change_once_with_its_reason);
	ADD(s, breaker_logs_consecutive_and_slow_reasons);
	ADD(s, breaker_concurrent_failures_trip_once_and_one_probe_goes);
	ADD(s, breaker_concurrent_ramp_never_passes_its_limit);
	return s;
}

int main(void)
{
	return gw_test_run_suite(breaker_suite(), CK_FORK);
}
