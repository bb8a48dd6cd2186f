/*
 * The process-wide overload level: in-flight and loop-lag thresholds, raised
 * at once, lowered one step per calm second with a margin, the reason
 * string, the max_inflight check and which ranks each level sheds. Time is a
 * plain argument (a fake clock): nothing sleeps.
 */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "modules/shedding/overload.h"
#include "check_suite.h"

#define SAMPLE_MS 20

static const struct gw_overload_conf conf = {.max_inflight = 2000, .max_loop_lag_ms = 50};

/* Samples every SAMPLE_MS in (from, to], each returning `want`. */
static void hold_steady(struct gw_overload *o, uint64_t from, uint64_t to, uint32_t inflight,
                        uint64_t lag, unsigned want)
{
	for (uint64_t t = from + SAMPLE_MS; t <= to; t += SAMPLE_MS)
		ck_assert_msg(gw_overload_update(o, t, inflight, lag) == want,
		              "at %llu ms with in-flight %u, lag %llu: level %u, want %u",
		              (unsigned long long)t, inflight, (unsigned long long)lag,
		              gw_overload_level(o), want);
}

/* ---- thresholds ---------------------------------------------------------- */

START_TEST(inflight_gives_level_1_at_70_and_2_at_85_percent)
{
	static const struct {
		uint32_t max, inflight;
		unsigned level;
	} table[] = {
	    {2000, 0, 0},
	    {2000, 1399, 0},
	    {2000, 1400, 1},
	    {2000, 1699, 1},
	    {2000, 1700, 2},
	    {2000, 2000, 2},
	    {2000, 9000, 2},
	    {10, 6, 0},
	    {10, 7, 1},
	    {10, 8, 1},
	    {10, 9, 2},
	    {1, 0, 0},
	    {1, 1, 2},
	    {UINT32_MAX, UINT32_MAX, 2},
	    {UINT32_MAX, UINT32_MAX / 2, 0},
	};

	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		struct gw_overload_conf c = {.max_inflight = table[i].max, .max_loop_lag_ms = 50};
		struct gw_overload o;

		ck_assert_msg(gw_overload_instant_level(&c, table[i].inflight) == table[i].level,
		              "row %zu: %u/%u should be level %u", i, table[i].inflight,
		              table[i].max, table[i].level);
		gw_overload_init(&o, &c);
		ck_assert_uint_eq(gw_overload_update(&o, 1000, table[i].inflight, 0),
		                  table[i].level);
	}
}
END_TEST

START_TEST(loop_lag_gives_level_1_above_max_and_2_above_twice)
{
	static const struct {
		uint64_t lag;
		unsigned level;
	} table[] = {{0, 0},    {49, 0},         {50, 0},
	             {51, 1},   {100, 1},        {101, 2},
	             {5000, 2}, {UINT64_MAX, 2}, {UINT64_MAX / 4, 2}};

	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		struct gw_overload o;

		gw_overload_init(&o, &conf);
		ck_assert_msg(gw_overload_update(&o, 1000, 10, table[i].lag) == table[i].level,
		              "row %zu: lag %llu should be level %u", i,
		              (unsigned long long)table[i].lag, table[i].level);
	}
}
END_TEST

START_TEST(the_higher_input_sets_the_level)
{
	struct gw_overload o;

	gw_overload_init(&o, &conf);
	ck_assert_uint_eq(gw_overload_update(&o, 0, 1400, 101), 2);
	gw_overload_init(&o, &conf);
	ck_assert_uint_eq(gw_overload_update(&o, 0, 1700, 51), 2);
	gw_overload_init(&o, &conf);
	ck_assert_uint_eq(gw_overload_update(&o, 0, 1400, 51), 1);
}
END_TEST

START_TEST(zero_turns_an_input_off)
{
	struct gw_overload_conf c = {.max_inflight = 0, .max_loop_lag_ms = 0};
	struct gw_overload o;

	gw_overload_init(&o, &c);
	ck_assert_uint_eq(gw_overload_update(&o, 0, UINT32_MAX, UINT64_MAX), 0);
	ck_assert_uint_eq(gw_overload_instant_level(&c, UINT32_MAX), 0);
	ck_assert(!gw_overload_at_max(&c, UINT32_MAX));
	ck_assert_str_eq(gw_overload_reason(&o), "normal");
}
END_TEST

START_TEST(max_inflight_itself_is_reached_at_max)
{
	ck_assert(!gw_overload_at_max(&conf, 0));
	ck_assert(!gw_overload_at_max(&conf, 1999));
	ck_assert(gw_overload_at_max(&conf, 2000));
	ck_assert(gw_overload_at_max(&conf, 2001));
}
END_TEST

/* ---- raise at once, fall with hysteresis --------------------------------- */

START_TEST(level_is_raised_by_the_first_sample)
{
	struct gw_overload o;

	gw_overload_init(&o, &conf);
	ck_assert_uint_eq(gw_overload_level(&o), 0);
	hold_steady(&o, 0, 1000, 100, 5, 0);
	ck_assert_uint_eq(gw_overload_update(&o, 1020, 1700, 5), 2);
	ck_assert_uint_eq(gw_overload_level(&o), 2);

	gw_overload_init(&o, &conf);
	ck_assert_uint_eq(gw_overload_update(&o, 20, 1400, 5), 1);
	ck_assert_uint_eq(gw_overload_update(&o, 40, 1700, 5), 2);
}
END_TEST

START_TEST(level_falls_one_step_per_calm_second)
{
	struct gw_overload o;

	gw_overload_init(&o, &conf);
	ck_assert_uint_eq(gw_overload_update(&o, 0, 1700, 0), 2);
	/* Calm from the sample at 20: level 2 until 1020, then 1 until 2020. */
	hold_steady(&o, 0, 1000, 100, 0, 2);
	ck_assert_uint_eq(gw_overload_update(&o, 1019, 100, 0), 2);
	ck_assert_uint_eq(gw_overload_update(&o, 1020, 100, 0), 1);
	hold_steady(&o, 1020, 2000, 100, 0, 1);
	ck_assert_uint_eq(gw_overload_update(&o, 2019, 100, 0), 1);
	ck_assert_uint_eq(gw_overload_update(&o, 2020, 100, 0), 0);
	hold_steady(&o, 2020, 10000, 100, 0, 0);
}
END_TEST

START_TEST(inflight_within_the_margin_holds_the_level)
{
	struct gw_overload o;

	gw_overload_init(&o, &conf);
	ck_assert_uint_eq(gw_overload_update(&o, 0, 1700, 0), 2);
	/* 75% holds level 2 for as long as it lasts. */
	hold_steady(&o, 0, 10000, 1500, 0, 2);
	/* Below 75%: level 1 a second later; 60% holds level 1. */
	hold_steady(&o, 10000, 10999, 1499, 0, 2);
	ck_assert_uint_eq(gw_overload_update(&o, 11020, 1499, 0), 1);
	hold_steady(&o, 11020, 20000, 1200, 0, 1);
	/* Below 60%: level 0 a second later. */
	hold_steady(&o, 20000, 20999, 1199, 0, 1);
	ck_assert_uint_eq(gw_overload_update(&o, 21020, 1199, 0), 0);
}
END_TEST

START_TEST(loop_lag_within_the_margin_holds_the_level)
{
	struct gw_overload o;

	gw_overload_init(&o, &conf);
	ck_assert_uint_eq(gw_overload_update(&o, 0, 0, 101), 2);
	/* Above 1.5 x 50ms holds level 2, above 0.75 x 50ms level 1. */
	hold_steady(&o, 0, 5000, 0, 76, 2);
	hold_steady(&o, 5000, 5999, 0, 75, 2);
	ck_assert_uint_eq(gw_overload_update(&o, 6020, 0, 75), 1);
	hold_steady(&o, 6020, 10000, 0, 38, 1);
	hold_steady(&o, 10000, 10999, 0, 37, 1);
	ck_assert_uint_eq(gw_overload_update(&o, 11020, 0, 37), 0);
}
END_TEST

START_TEST(a_sample_above_the_margin_restarts_the_calm_second)
{
	struct gw_overload o;

	gw_overload_init(&o, &conf);
	ck_assert_uint_eq(gw_overload_update(&o, 0, 1700, 0), 2);
	hold_steady(&o, 0, 900, 100, 0, 2);
	/* One sample at 80% (above 75%, below 85%) holds 2: the calm starts again at 940. */
	ck_assert_uint_eq(gw_overload_update(&o, 920, 1600, 0), 2);
	hold_steady(&o, 920, 1920, 100, 0, 2);
	ck_assert_uint_eq(gw_overload_update(&o, 1939, 100, 0), 2);
	ck_assert_uint_eq(gw_overload_update(&o, 1940, 100, 0), 1);
}
END_TEST

START_TEST(a_raise_during_the_calm_second_takes_effect_at_once)
{
	struct gw_overload o;

	gw_overload_init(&o, &conf);
	ck_assert_uint_eq(gw_overload_update(&o, 0, 1400, 0), 1);
	hold_steady(&o, 0, 500, 100, 0, 1);
	ck_assert_uint_eq(gw_overload_update(&o, 520, 1700, 0), 2);
	/* The calm second counts from the new level's sample. */
	hold_steady(&o, 520, 1520, 100, 0, 2);
	ck_assert_uint_eq(gw_overload_update(&o, 1540, 100, 0), 1);
}
END_TEST

/* ---- reason -------------------------------------------------------------- */

START_TEST(reason_says_which_input_sets_the_level)
{
	struct gw_overload o;

	gw_overload_init(&o, &conf);
	ck_assert_str_eq(gw_overload_reason(&o), "normal");
	gw_overload_update(&o, 0, 1500, 10);
	ck_assert_str_eq(gw_overload_reason(&o), "in-flight 1500/2000");

	gw_overload_init(&o, &conf);
	gw_overload_update(&o, 0, 10, 80);
	ck_assert_str_eq(gw_overload_reason(&o), "loop lag 80ms > 50ms");
	/* Held by the margin: the lag is under max but above 0.75 x max. */
	gw_overload_update(&o, 20, 10, 40);
	ck_assert_str_eq(gw_overload_reason(&o), "loop lag 40ms (max 50ms)");

	gw_overload_init(&o, &conf);
	gw_overload_update(&o, 0, 1800, 120);
	ck_assert_str_eq(gw_overload_reason(&o), "in-flight 1800/2000, loop lag 120ms > 50ms");
	/* Only the inputs that hold the level are named. */
	gw_overload_update(&o, 20, 1800, 60);
	ck_assert_str_eq(gw_overload_reason(&o), "in-flight 1800/2000");
}
END_TEST

START_TEST(reason_counts_down_while_the_level_waits_to_fall)
{
	struct gw_overload o;
	struct gw_overload_conf c = {.max_inflight = 2000, .max_loop_lag_ms = 0};

	gw_overload_init(&o, &conf);
	gw_overload_update(&o, 0, 1500, 10);
	gw_overload_update(&o, 20, 900, 3);
	ck_assert_str_eq(gw_overload_reason(&o),
	                 "calm (in-flight 900/2000, loop lag 3ms), level 0 in 1000ms");
	gw_overload_update(&o, 420, 900, 3);
	ck_assert_str_eq(gw_overload_reason(&o),
	                 "calm (in-flight 900/2000, loop lag 3ms), level 0 in 600ms");
	gw_overload_update(&o, 1020, 900, 3);
	ck_assert_str_eq(gw_overload_reason(&o), "normal");

	/* An input turned off is not named. */
	gw_overload_init(&o, &c);
	gw_overload_update(&o, 0, 1900, 500);
	ck_assert_str_eq(gw_overload_reason(&o), "in-flight 1900/2000");
	gw_overload_update(&o, 20, 100, 500);
	ck_assert_str_eq(gw_overload_reason(&o), "calm (in-flight 100/2000), level 1 in 1000ms");
}
END_TEST

START_TEST(reason_of_the_largest_values_fits)
{
	struct gw_overload_conf c = {.max_inflight = UINT32_MAX, .max_loop_lag_ms = UINT64_MAX / 8};
	struct gw_overload o;

	gw_overload_init(&o, &c);
	gw_overload_update(&o, 0, UINT32_MAX, UINT64_MAX);
	ck_assert_str_eq(gw_overload_reason(&o),
	                 "in-flight 4294967295/4294967295, loop lag 18446744073709551615ms > "
	                 "2305843009213693951ms");
	gw_overload_update(&o, 20, 0, 0);
	ck_assert_str_eq(gw_overload_reason(&o),
	                 "calm (in-flight 0/4294967295, loop lag 0ms), level 1 in 1000ms");
}
END_TEST

/* ---- sheds --------------------------------------------------------------- */

START_TEST(sheds_follows_the_table)
{
	/* [level][rank]: critical never; level 1 sheddable; level 2 normal too. */
	static const bool table[4][4] = {
	    {false, false, false, false},
	    {false, false, true, true},
	    {false, true, true, true},
	    {false, true, true, true},
	};

	for (unsigned level = 0; level < 4; level++)
		for (unsigned rank = 0; rank < 4; rank++)
			ck_assert_msg(gw_overload_sheds(level, rank) == table[level][rank],
			              "level %u rank %u", level, rank);
}
END_TEST

/* ---- suite --------------------------------------------------------------- */

#define ADD(s, t) gw_test_add_case(s, #t, t, 60)

static Suite *overload_suite(void)
{
	Suite *s = suite_create("overload");

	ADD(s, inflight_gives_level_1_at_70_and_2_at_85_percent);
	ADD(s, loop_lag_gives_level_1_above_max_and_2_above_twice);
	ADD(s, the_higher_input_sets_the_level);
	ADD(s, zero_turns_an_input_off);
	ADD(s, max_inflight_itself_is_reached_at_max);
	ADD(s, level_is_raised_by_the_first_sample);
	ADD(s, level_falls_one_step_per_calm_second);
	ADD(s, inflight_within_the_margin_holds_the_level);
	ADD(s, loop_lag_within_the_margin_holds_the_level);
	ADD(s, a_sample_above_the_margin_restarts_the_calm_second);
	ADD(s, a_raise_during_the_calm_second_takes_effect_at_once);
	ADD(s, reason_says_which_input_sets_the_level);
	ADD(s, reason_counts_down_while_the_level_waits_to_fall);
	ADD(s, reason_of_the_largest_values_fits);
	ADD(s, sheds_follows_the_table);
	return s;
}

int main(void)
{
	return gw_test_run_suite(overload_suite(), CK_FORK);
}
