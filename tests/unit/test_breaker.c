/*
 * Circuit breakers: when they trip (ratio, volume, consecutive failures,
 * slow calls) and when they do not, the open -> half-open -> closed cycle
 * with its probes and its doubling open time, operator forcing, the rolling
 * window, the log lines, and concurrent workers. Time is a plain argument
 * (a fake clock): nothing sleeps.
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

/* window 10s, min 20, ratio 0.5, open 1s doubling up to 3s, 3 probes */
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

/* Takes every probe at now; all of them must be granted. */
static void take_probes(struct gw_breaker *b, uint64_t now, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		ck_assert_int_eq(gw_breaker_admit(b, now, NULL), GW_BREAKER_PROBE);
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

START_TEST(breaker_half_open_admits_exactly_n_probes)
{
	struct gw_breaker_conf c = test_conf();
	struct gw_breaker *b = gw_breaker_new(&c, "r");

	trip_now(b, 5000);
	take_probes(b, 6000, 3);
	ck_assert_int_eq(gw_breaker_state(b, 6000), GW_BREAKER_HALF_OPEN);
	for (int i = 0; i < 100; i++)
		assert_rejects(b, 6000 + (uint64_t)i, GW_BREAKER_PROBING_RETRY_AFTER_MS);
	/* Two of three succeed: still half-open, still rejecting. */
	gw_breaker_record(b, 6100, false, 5, true);
	gw_breaker_record(b, 6100, false, 5, true);
	ck_assert_int_eq(gw_breaker_state(b, 6100), GW_BREAKER_HALF_OPEN);
	assert_rejects(b, 6100, GW_BREAKER_PROBING_RETRY_AFTER_MS);
	gw_breaker_free(b);
}
END_TEST

START_TEST(breaker_closes_when_all_probes_succeed)
{
	struct gw_breaker_conf c = test_conf();
	struct gw_breaker *b = gw_breaker_new(&c, "r");
	struct gw_breaker_counts counts;

	trip_now(b, 5000);
	take_probes(b, 6000, 3);
	for (int i = 0; i < 3; i++)
		gw_breaker_record(b, 6100, false, 5, true);
	ck_assert_int_eq(gw_breaker_state(b, 6100), GW_BREAKER_CLOSED);
	ck_assert_int_eq(gw_breaker_admit(b, 6100, NULL), GW_BREAKER_ALLOW);
	/* The window was cleared: the 20 failures that tripped it are gone. */
	gw_breaker_counts(b, 6100, &counts);
	ck_assert_uint_eq(counts.tries, 0);
	ck_assert_uint_eq(counts.failures, 0);
	record_n(b, 6200, 19, true);
	ck_assert_int_eq(gw_breaker_state(b, 6200), GW_BREAKER_CLOSED);
	gw_breaker_free(b);
}
END_TEST

START_TEST(breaker_reopens_with_doubled_time_capped_at_max)
{
	struct gw_breaker_conf c = test_conf(); /* open 1s, max 3s */
	struct gw_breaker *b = gw_breaker_new(&c, "r");
	static const uint64_t open_for[] = {2000, 3000, 3000};
	uint64_t now = 10000;

	trip_now(b, now);
	assert_rejects(b, now, 1000);
	now += 1000;
	for (size_t i = 0; i < sizeof(open_for) / sizeof(open_for[0]); i++) {
		take_probes(b, now, 3);
		gw_breaker_record(b, now + 10, false, 5, true);
		gw_breaker_record(b, now + 10, true, 5, true); /* one fails */
		ck_assert_int_eq(gw_breaker_state(b, now + 10), GW_BREAKER_OPEN);
		assert_rejects(b, now + 10, open_for[i]);
		assert_rejects(b, now + 10 + open_for[i] - 1, 1);
		now += 10 + open_for[i];
	}
	/* A full recovery resets the open time to open_duration. */
	take_probes(b, now, 3);
	for (int i = 0; i < 3; i++)
		gw_breaker_record(b, now, false, 5, true);
	ck_assert_int_eq(gw_breaker_state(b, now), GW_BREAKER_CLOSED);
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
	take_probes(b, 6000, 3);
	assert_rejects(b, 6000, GW_BREAKER_PROBING_RETRY_AFTER_MS);
	gw_breaker_abandon_probe(b);
	take_probes(b, 6001, 1);
	assert_rejects(b, 6001, GW_BREAKER_PROBING_RETRY_AFTER_MS);
	/* Three successes still close it. */
	for (int i = 0; i < 3; i++)
		gw_breaker_record(b, 6002, false, 5, true);
	ck_assert_int_eq(gw_breaker_state(b, 6002), GW_BREAKER_CLOSED);
	gw_breaker_free(b);
}
END_TEST

START_TEST(breaker_lost_probes_are_handed_out_again_after_an_open_time)
{
	struct gw_breaker_conf c = test_conf();
	struct gw_breaker *b = gw_breaker_new(&c, "r");
	struct captured cap;
	char *text;

	trip_now(b, 5000);
	take_probes(b, 6000, 3);
	gw_breaker_record(b, 6100, false, 5, true); /* one came back; two are lost */
	assert_rejects(b, 6999, GW_BREAKER_PROBING_RETRY_AFTER_MS);
	cap = capture_start();
	take_probes(b, 7000, 3); /* a new round: three more probes, no more */
	text = capture_end(&cap);
	ck_assert_msg(strstr(text, " warn breaker r: half-open, admitting 3 probes again (no "
	                           "outcome within 1s)\n") != NULL,
	              "got: %s", text);
	free(text);
	assert_rejects(b, 7000, GW_BREAKER_PROBING_RETRY_AFTER_MS);
	/* The new round needs all three of its own successes. */
	gw_breaker_record(b, 7001, false, 5, true);
	gw_breaker_record(b, 7001, false, 5, true);
	ck_assert_int_eq(gw_breaker_state(b, 7001), GW_BREAKER_HALF_OPEN);
	gw_breaker_record(b, 7001, false, 5, true);
	ck_assert_int_eq(gw_breaker_state(b, 7001), GW_BREAKER_CLOSED);
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
	take_probes(b, 6000, 3);
	/* Non-probe successes during half-open do not close it ... */
	record_n(b, 6001, 50, false);
	ck_assert_int_eq(gw_breaker_state(b, 6001), GW_BREAKER_HALF_OPEN);
	/* ... nor do non-probe failures reopen it. */
	record_n(b, 6002, 50, true);
	ck_assert_int_eq(gw_breaker_state(b, 6002), GW_BREAKER_HALF_OPEN);
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

START_TEST(breaker_force_closed_overrides_an_open_breaker)
{
	struct gw_breaker_conf c = test_conf();
	struct gw_breaker *b = gw_breaker_new(&c, "r");
	struct gw_breaker_counts counts;

	trip_now(b, 5000);
	take_probes(b, 6000, 3);
	gw_breaker_record(b, 6000, true, 5, true); /* re-trip: open for 2s */
	gw_breaker_force(b, GW_BREAKER_FORCE_CLOSED);
	ck_assert_int_eq(gw_breaker_admit(b, 6001, NULL), GW_BREAKER_ALLOW);
	gw_breaker_force(b, GW_BREAKER_FORCE_AUTO);
	ck_assert_int_eq(gw_breaker_admit(b, 6002, NULL), GW_BREAKER_ALLOW);
	gw_breaker_counts(b, 6002, &counts);
	ck_assert_uint_eq(counts.open_duration_ms, 1000); /* doubling forgotten */
	/* Forcing the mode it already has changes nothing. */
	gw_breaker_force(b, GW_BREAKER_FORCE_AUTO);
	ck_assert_int_eq(gw_breaker_state(b, 6002), GW_BREAKER_CLOSED);
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
	take_probes(b, 2000, 3);
	for (int i = 0; i < 5; i++)
		assert_rejects(b, 2000, GW_BREAKER_PROBING_RETRY_AFTER_MS);
	gw_breaker_record(b, 2001, true, 5, true);
	gw_breaker_record(b, 2001, true, 5, true); /* the second failed probe: already open */
	take_probes(b, 4001, 3);
	for (int i = 0; i < 3; i++)
		gw_breaker_record(b, 4002, false, 5, true);
	gw_breaker_force(b, GW_BREAKER_FORCE_OPEN);
	gw_breaker_force(b, GW_BREAKER_FORCE_AUTO);
	text = capture_end(&cap);

	ck_assert_msg(count_lines(text) == 7, "expected 7 lines, got:\n%s", text);
	assert_line_ends(text, 0,
	                 " warn breaker checkout: closed -> open (failure ratio 0.55 >= 0.50 "
	                 "over 20 tries); open for 1s");
	assert_line_ends(text, 1,
	                 " info breaker checkout: open -> half-open (open for 1s; admitting 3 "
	                 "probes)");
	assert_line_ends(text, 2,
	                 " warn breaker checkout: half-open -> open (a probe failed); open for 2s");
	assert_line_ends(text, 3,
	                 " info breaker checkout: open -> half-open (open for 2s; admitting 3 "
	                 "probes)");
	assert_line_ends(text, 4,
	                 " info breaker checkout: half-open -> closed (3 of 3 probes succeeded)");
	assert_line_ends(text, 5,
	                 " warn breaker checkout: closed -> open (forced open by operator)");
	assert_line_ends(text, 6,
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
	                 "breaker a: closed -> open (3 consecutive failures); open for 1s");
	assert_line_ends(text, 1,
	                 "breaker b: closed -> open (slow call ratio 0.75 >= 0.75 over 4 tries "
	                 "slower than 250ms); open for 1s");
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
	int probes; /* admit: probes granted */
};

static void *fail_many(void *arg)
{
	struct worker *w = arg;

	pthread_barrier_wait(w->start);
	for (int i = 0; i < w->n; i++)
		gw_breaker_record(w->b, 1000, true, 5, false);
	return NULL;
}

static void *admit_many(void *arg)
{
	struct worker *w = arg;

	pthread_barrier_wait(w->start);
	for (int i = 0; i < w->n; i++)
		w->probes += gw_breaker_admit(w->b, 2000, NULL) == GW_BREAKER_PROBE;
	return NULL;
}

static int run_workers(struct gw_breaker *b, void *(*fn)(void *), int n)
{
	pthread_t t[4];
	struct worker w[4];
	pthread_barrier_t start;
	int probes = 0;

	pthread_barrier_init(&start, NULL, 4);
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){.b = b, .start = &start, .n = n};
		ck_assert_int_eq(pthread_create(&t[i], NULL, fn, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		probes += w[i].probes;
	}
	pthread_barrier_destroy(&start);
	return probes;
}

START_TEST(breaker_concurrent_failures_trip_once_and_probes_stay_exact)
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
		run_workers(b, fail_many, 200);
		probes = run_workers(b, admit_many, 1000); /* at 2000: half-open */
		text = capture_end(&cap);
		ck_assert_int_eq(probes, 7);
		ck_assert_msg(count_lines(text) == 2, "expected 2 lines, got:\n%s", text);
		ck_assert_ptr_nonnull(strstr(text, "closed -> open"));
		ck_assert_ptr_nonnull(strstr(text, "open -> half-open"));
		free(text);
		gw_breaker_free(b);
	}
}
END_TEST

/* ---- suite ------------------------------------------------------------- */

static Suite *breaker_suite(void)
{
	Suite *s = suite_create("breaker");

	gw_test_add_case(s, "breaker_starts_closed_and_allows", breaker_starts_closed_and_allows,
	                 60);
	gw_test_add_case(s, "breaker_does_not_trip_below_min_requests",
	                 breaker_does_not_trip_below_min_requests, 60);
	gw_test_add_case(s, "breaker_opens_exactly_at_failure_ratio",
	                 breaker_opens_exactly_at_failure_ratio, 60);
	gw_test_add_case(s, "breaker_stays_closed_just_below_failure_ratio",
	                 breaker_stays_closed_just_below_failure_ratio, 60);
	gw_test_add_case(s, "breaker_a_success_can_complete_the_volume",
	                 breaker_a_success_can_complete_the_volume, 60);
	gw_test_add_case(s, "breaker_trips_on_consecutive_failures",
	                 breaker_trips_on_consecutive_failures, 60);
	gw_test_add_case(s, "breaker_consecutive_rule_off_by_default",
	                 breaker_consecutive_rule_off_by_default, 60);
	gw_test_add_case(s, "breaker_trips_on_slow_call_ratio", breaker_trips_on_slow_call_ratio,
	                 60);
	gw_test_add_case(s, "breaker_ignores_slowness_when_slow_call_duration_is_off",
	                 breaker_ignores_slowness_when_slow_call_duration_is_off, 60);
	gw_test_add_case(s, "breaker_forgets_failures_after_the_window",
	                 breaker_forgets_failures_after_the_window, 60);
	gw_test_add_case(s, "breaker_window_slides_bucket_by_bucket",
	                 breaker_window_slides_bucket_by_bucket, 60);
	gw_test_add_case(s, "breaker_rejects_while_open_with_time_until_half_open",
	                 breaker_rejects_while_open_with_time_until_half_open, 60);
	gw_test_add_case(s, "breaker_half_open_admits_exactly_n_probes",
	                 breaker_half_open_admits_exactly_n_probes, 60);
	gw_test_add_case(s, "breaker_closes_when_all_probes_succeed",
	                 breaker_closes_when_all_probes_succeed, 60);
	gw_test_add_case(s, "breaker_reopens_with_doubled_time_capped_at_max",
	                 breaker_reopens_with_doubled_time_capped_at_max, 60);
	gw_test_add_case(s, "breaker_abandoned_probe_gives_its_slot_back",
	                 breaker_abandoned_probe_gives_its_slot_back, 60);
	gw_test_add_case(s, "breaker_lost_probes_are_handed_out_again_after_an_open_time",
	                 breaker_lost_probes_are_handed_out_again_after_an_open_time, 60);
	gw_test_add_case(s, "breaker_late_tries_do_not_move_it", breaker_late_tries_do_not_move_it,
	                 60);
	gw_test_add_case(s, "breaker_force_open_closed_and_auto",
	                 breaker_force_open_closed_and_auto, 60);
	gw_test_add_case(s, "breaker_force_closed_overrides_an_open_breaker",
	                 breaker_force_closed_overrides_an_open_breaker, 60);
	gw_test_add_case(s, "breaker_logs_each_state_change_once_with_its_reason",
	                 breaker_logs_each_state_change_once_with_its_reason, 60);
	gw_test_add_case(s, "breaker_logs_consecutive_and_slow_reasons",
	                 breaker_logs_consecutive_and_slow_reasons, 60);
	gw_test_add_case(s, "breaker_concurrent_failures_trip_once_and_probes_stay_exact",
	                 breaker_concurrent_failures_trip_once_and_probes_stay_exact, 60);
	return s;
}

int main(void)
{
	return gw_test_run_suite(breaker_suite(), CK_FORK);
}
