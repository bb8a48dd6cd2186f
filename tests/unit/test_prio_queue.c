/*
 * The upstream priority queue: service order, removal, the CoDel-style
 * overload detector (bursts pass, standing queues overload, hysteresis and
 * relapses), refusal and shedding by class, the stats, and two small load
 * simulations (2x and 4x an upstream's capacity) that drive the queue the
 * way modules/concurrency does. Time is a plain argument (a fake clock):
 * nothing sleeps.
 */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "modules/concurrency/prio_queue.h"
#include "check_suite.h"

#define TARGET   10
#define INTERVAL 100

enum { CRIT = 0, NORM = 1, SHED = 2 };

static void init(struct gw_pq *q)
{
	gw_pq_init(q, TARGET, INTERVAL);
}

/*
 * Keeps the given ranks' delay low (each entry waits 1 ms) from t0 to t1:
 * one entry of each rank pushed every ms and popped the next. Ranks of a
 * lower class than those waiting in the queue are never reached by pop, so
 * only use it with the queue holding nothing of a higher class.
 */
static void trickle(struct gw_pq *q, struct gw_pq_entry *e, unsigned rank, uint64_t t0, uint64_t t1)
{
	for (uint64_t t = t0; t < t1; t++) {
		gw_pq_push(q, e, rank, t);
		ck_assert_ptr_eq(gw_pq_pop(q, t + 1), e);
	}
}

/* Builds an overload in which only `stands` has a standing delay, entered at 110. */
static void overload_with_standing(struct gw_pq *q, struct gw_pq_entry *old, unsigned stands)
{
	gw_pq_push(q, old, stands, 0);
	ck_assert(!gw_pq_overloaded(q, 109));
	ck_assert(gw_pq_overloaded(q, 110));
}

/* ---- order --------------------------------------------------------------- */

START_TEST(pop_serves_critical_then_normal_then_sheddable_fifo_within)
{
	struct gw_pq q;
	struct gw_pq_entry e[9] = {0};
	static const unsigned ranks[9] = {SHED, NORM, SHED, CRIT, NORM, CRIT, SHED, CRIT, NORM};
	static const unsigned order[9] = {3, 5, 7, 1, 4, 8, 0, 2, 6};

	init(&q);
	ck_assert_ptr_null(gw_pq_pop(&q, 0));
	for (unsigned i = 0; i < 9; i++)
		gw_pq_push(&q, &e[i], ranks[i], i);
	ck_assert_uint_eq(gw_pq_total(&q), 9);
	ck_assert_uint_eq(gw_pq_len(&q, CRIT), 3);
	ck_assert_uint_eq(gw_pq_len(&q, NORM), 3);
	ck_assert_uint_eq(gw_pq_len(&q, SHED), 3);
	for (unsigned i = 0; i < 9; i++) {
		struct gw_pq_entry *got = gw_pq_pop(&q, 9);

		ck_assert_ptr_eq(got, &e[order[i]]);
		ck_assert(!got->queued);
	}
	ck_assert_ptr_null(gw_pq_pop(&q, 10));
	ck_assert_uint_eq(gw_pq_total(&q), 0);
}
END_TEST

START_TEST(rank_past_the_last_queues_as_sheddable)
{
	struct gw_pq q;
	struct gw_pq_entry a = {0}, b = {0};

	init(&q);
	gw_pq_push(&q, &a, 7, 0);
	gw_pq_push(&q, &b, NORM, 1);
	ck_assert_uint_eq(a.rank, SHED);
	ck_assert_uint_eq(gw_pq_len(&q, SHED), 1);
	ck_assert_uint_eq(gw_pq_len(&q, 7), 0);
	ck_assert_ptr_eq(gw_pq_pop(&q, 2), &b);
	ck_assert_ptr_eq(gw_pq_pop(&q, 2), &a);
}
END_TEST

START_TEST(remove_of_a_middle_entry_keeps_the_others_in_order)
{
	struct gw_pq q;
	struct gw_pq_entry e[4] = {0};

	init(&q);
	for (unsigned i = 0; i < 4; i++)
		gw_pq_push(&q, &e[i], NORM, i);
	gw_pq_remove(&q, &e[2], 5);
	ck_assert(!e[2].queued);
	ck_assert_uint_eq(gw_pq_len(&q, NORM), 3);
	/* Gone already (client gone, then deadline): a no-op. */
	gw_pq_remove(&q, &e[2], 6);
	ck_assert_uint_eq(gw_pq_len(&q, NORM), 3);
	ck_assert_ptr_eq(gw_pq_pop(&q, 7), &e[0]);
	ck_assert_ptr_eq(gw_pq_pop(&q, 7), &e[1]);
	ck_assert_ptr_eq(gw_pq_pop(&q, 7), &e[3]);
	ck_assert_ptr_null(gw_pq_pop(&q, 7));
	/* An entry already popped: a no-op too. */
	gw_pq_remove(&q, &e[0], 8);
	ck_assert_uint_eq(gw_pq_total(&q), 0);
	/* A removed entry can wait again. */
	gw_pq_push(&q, &e[2], CRIT, 9);
	ck_assert_ptr_eq(gw_pq_pop(&q, 9), &e[2]);
}
END_TEST

START_TEST(remove_of_the_oldest_entry_moves_the_queue_delay_to_the_next)
{
	struct gw_pq q;
	struct gw_pq_entry a = {0}, b = {0};
	struct gw_pq_stats s;

	init(&q);
	gw_pq_push(&q, &a, SHED, 0);
	gw_pq_push(&q, &b, CRIT, 40);
	gw_pq_stats(&q, 50, &s);
	ck_assert_uint_eq(s.delay_ms, 50);
	gw_pq_remove(&q, &a, 50);
	gw_pq_stats(&q, 50, &s);
	ck_assert_uint_eq(s.delay_ms, 10);
	ck_assert_uint_eq(s.above_ms, 0);
	/* b alone crosses target at 50 and stands at 150, not at 110. */
	ck_assert(!gw_pq_overloaded(&q, 149));
	ck_assert(gw_pq_overloaded(&q, 150));
}
END_TEST

/* ---- overload detection -------------------------------------------------- */

START_TEST(burst_above_target_for_less_than_an_interval_does_not_overload)
{
	struct gw_pq q;
	struct gw_pq_entry e[50] = {0};

	init(&q);
	/* 50 requests at once, the oldest served last at 109: above target 10..109. */
	for (unsigned i = 0; i < 50; i++)
		gw_pq_push(&q, &e[i], i % GW_PQ_RANKS, 0);
	for (unsigned i = 0; i < 50; i++) {
		ck_assert(!gw_pq_overloaded(&q, 60 + i));
		ck_assert_ptr_nonnull(gw_pq_pop(&q, 60 + i));
	}
	ck_assert(!gw_pq_overloaded(&q, 109));
	ck_assert(!gw_pq_overloaded(&q, 10000));
}
END_TEST

START_TEST(queue_that_drains_every_interval_does_not_overload)
{
	struct gw_pq q;
	struct gw_pq_entry e[4] = {0};

	init(&q);
	/* Each request waits 90ms (far above target), but the queue empties every 95ms. */
	for (uint64_t t = 0; t < 10000; t += 95) {
		for (unsigned i = 0; i < 4; i++)
			gw_pq_push(&q, &e[i], NORM, t);
		for (unsigned i = 0; i < 4; i++)
			ck_assert_ptr_nonnull(gw_pq_pop(&q, t + 90));
		ck_assert(!gw_pq_overloaded(&q, t + 94));
	}
}
END_TEST

START_TEST(standing_queue_overloads_after_an_interval_above_target)
{
	struct gw_pq q;
	struct gw_pq_entry e[40] = {0};
	unsigned in = 0, out = 0;

	init(&q);
	/*
	 * One request in every 5ms, one served every 5ms from 30 on: every
	 * request waits 30ms. The oldest changes all the time, the delay never
	 * falls to target: above it from 10 on, overload at 110.
	 */
	for (uint64_t t = 0; t <= 160; t += 5) {
		if (t >= 30)
			ck_assert_ptr_eq(gw_pq_pop(&q, t), &e[out++]);
		ck_assert(gw_pq_overloaded(&q, t) == (t >= 110));
		gw_pq_push(&q, &e[in++], NORM, t);
	}
}
END_TEST

START_TEST(overload_is_dated_when_reached_not_when_looked_at)
{
	struct gw_pq q;
	struct gw_pq_entry a = {0};
	struct gw_pq_stats s;

	init(&q);
	gw_pq_push(&q, &a, NORM, 1000);
	/* Nothing calls between 1000 and 5000: overloaded since 1110. */
	gw_pq_stats(&q, 5000, &s);
	ck_assert(s.overloaded);
	ck_assert_uint_eq(s.episode_ms, 5000 - 1110);
	ck_assert_uint_eq(s.above_ms, 5000 - 1010);
	ck_assert_uint_eq(s.delay_ms, 4000);
	ck_assert_uint_eq(s.episodes, 1);
}
END_TEST

START_TEST(overload_holds_until_delay_at_or_below_target_for_an_interval)
{
	struct gw_pq q;
	struct gw_pq_entry a = {0}, b = {0};

	init(&q);
	gw_pq_push(&q, &a, NORM, 0);
	ck_assert(gw_pq_overloaded(&q, 110));
	/* Empty from 200: still overloaded until 300. */
	ck_assert_ptr_eq(gw_pq_pop(&q, 200), &a);
	ck_assert(gw_pq_overloaded(&q, 250));
	/* A new request waits above target from 260 to 280: the calm starts again at 280. */
	gw_pq_push(&q, &b, NORM, 250);
	ck_assert(gw_pq_overloaded(&q, 279));
	ck_assert_ptr_eq(gw_pq_pop(&q, 280), &b);
	ck_assert(gw_pq_overloaded(&q, 379));
	ck_assert(!gw_pq_overloaded(&q, 380));
}
END_TEST

START_TEST(overload_ends_with_a_queue_that_waits_at_most_target)
{
	struct gw_pq q;
	struct gw_pq_entry a = {0}, b = {0};

	init(&q);
	gw_pq_push(&q, &a, NORM, 0);
	ck_assert(gw_pq_overloaded(&q, 110));
	ck_assert_ptr_eq(gw_pq_pop(&q, 200), &a);
	/* Never empty again, but every wait is at most target (exactly 10). */
	for (uint64_t t = 200; t < 400; t += 10) {
		gw_pq_push(&q, &b, NORM, t);
		ck_assert(gw_pq_overloaded(&q, t) == (t < 300));
		ck_assert_ptr_eq(gw_pq_pop(&q, t + 10), &b);
	}
}
END_TEST

START_TEST(calm_before_the_overload_does_not_end_it)
{
	struct gw_pq q;
	struct gw_pq_entry a = {0};

	init(&q);
	/* Calm (empty) from 0 to 1000, then standing: the calm long before counts for nothing. */
	ck_assert(!gw_pq_overloaded(&q, 1000));
	gw_pq_push(&q, &a, NORM, 1000);
	ck_assert(gw_pq_overloaded(&q, 1110));
	ck_assert(gw_pq_overloaded(&q, 1111));
	ck_assert_ptr_eq(gw_pq_pop(&q, 1200), &a);
	ck_assert(gw_pq_overloaded(&q, 1299));
	ck_assert(!gw_pq_overloaded(&q, 1300));
}
END_TEST

/* One episode: a request waits from `at` until `at + 150` (overload from at + 110). */
static uint64_t one_episode(struct gw_pq *q, struct gw_pq_entry *e, uint64_t at)
{
	gw_pq_push(q, e, NORM, at);
	ck_assert(gw_pq_overloaded(q, at + 110));
	ck_assert_ptr_eq(gw_pq_pop(q, at + 150), e);
	return at + 150;
}

START_TEST(relapse_doubles_the_hold_up_to_thirty_two_intervals)
{
	struct gw_pq q;
	struct gw_pq_entry a = {0};
	struct gw_pq_stats s;
	uint64_t calm_from, t = 0;
	static const uint64_t holds[] = {100, 200, 400, 800, 1600, 3200, 3200, 3200};

	init(&q);
	for (unsigned i = 0; i < sizeof(holds) / sizeof(holds[0]); i++) {
		calm_from = one_episode(&q, &a, t);
		gw_pq_stats(&q, calm_from, &s);
		ck_assert_uint_eq(s.hold_ms, holds[i]);
		ck_assert(gw_pq_overloaded(&q, calm_from + holds[i] - 1));
		ck_assert(!gw_pq_overloaded(&q, calm_from + holds[i]));
		/* The next episode begins 110 + 50 after this one ended: a relapse. */
		t = calm_from + holds[i] + 50;
	}
	/* A calm gap longer than target + 4 intervals: back to one interval. */
	calm_from = one_episode(&q, &a, t + 1000);
	gw_pq_stats(&q, calm_from, &s);
	ck_assert_uint_eq(s.hold_ms, 100);
	ck_assert_uint_eq(s.episodes, sizeof(holds) / sizeof(holds[0]) + 1);
}
END_TEST

START_TEST(relapse_window_is_target_plus_four_intervals)
{
	struct gw_pq q;
	struct gw_pq_entry a = {0};
	struct gw_pq_stats s;
	uint64_t end, t;

	init(&q);
	end = one_episode(&q, &a, 0) + 100; /* ended at 250 */
	ck_assert(!gw_pq_overloaded(&q, end));
	/* Begins at end + 409 (< 10 + 400): a relapse. */
	t = one_episode(&q, &a, end + 409 - 110);
	gw_pq_stats(&q, t, &s);
	ck_assert_uint_eq(s.hold_ms, 200);

	init(&q);
	end = one_episode(&q, &a, 0) + 100;
	ck_assert(!gw_pq_overloaded(&q, end));
	/* Begins at end + 410: a new overload, not a relapse. */
	t = one_episode(&q, &a, end + 410 - 110);
	gw_pq_stats(&q, t, &s);
	ck_assert_uint_eq(s.hold_ms, 100);
}
END_TEST

/* ---- refusal and shedding ------------------------------------------------ */

START_TEST(refuse_nothing_while_not_overloaded)
{
	struct gw_pq q;
	struct gw_pq_entry a = {0};

	init(&q);
	gw_pq_push(&q, &a, SHED, 0);
	for (unsigned r = 0; r < GW_PQ_RANKS; r++)
		ck_assert(!gw_pq_refuse(&q, r, TARGET));
	/* past target its own class is refused (a newcomer would wait
	 * longer), the others are not; nothing is shed */
	ck_assert(!gw_pq_refuse(&q, CRIT, 109));
	ck_assert(!gw_pq_refuse(&q, NORM, 109));
	ck_assert(gw_pq_refuse(&q, SHED, 109));
	ck_assert_ptr_null(gw_pq_shed_next(&q, 109));
	ck_assert_uint_eq(gw_pq_len(&q, SHED), 1);
}
END_TEST

START_TEST(refuse_at_2x_only_sheddable_while_critical_and_normal_keep_up)
{
	struct gw_pq q;
	struct gw_pq_entry old[3] = {0}, c = {0}, n = {0};

	init(&q);
	/* Sheddable requests starve; critical and normal are served in 1ms. */
	for (unsigned i = 0; i < 3; i++)
		gw_pq_push(&q, &old[i], SHED, i);
	for (uint64_t t = 3; t < 300; t++) {
		gw_pq_push(&q, t % 2 ? &c : &n, t % 2 ? CRIT : NORM, t);
		ck_assert_ptr_eq(gw_pq_pop(&q, t + 1), t % 2 ? &c : &n);
		/* the starving sheddable class is refused once its oldest waited
		 * past target, before the overload is declared */
		if (t + 1 <= TARGET)
			ck_assert(!gw_pq_refuse(&q, SHED, t + 1));
		else if (t + 1 < 110)
			ck_assert(gw_pq_refuse(&q, SHED, t + 1));
	}
	ck_assert(gw_pq_overloaded(&q, 300));
	ck_assert(gw_pq_refuse(&q, SHED, 300));
	ck_assert(!gw_pq_refuse(&q, NORM, 300));
	ck_assert(!gw_pq_refuse(&q, CRIT, 300));
	/* Shed oldest first; then sheddable stays refused while the overload lasts. */
	for (unsigned i = 0; i < 3; i++)
		ck_assert_ptr_eq(gw_pq_shed_next(&q, 300), &old[i]);
	ck_assert_ptr_null(gw_pq_shed_next(&q, 300));
	ck_assert(gw_pq_overloaded(&q, 399));
	ck_assert(gw_pq_refuse(&q, SHED, 399));
	ck_assert(!gw_pq_refuse(&q, NORM, 399));
	/* Calm for an interval from 300: the episode ends, sheddable is let in again. */
	ck_assert(!gw_pq_overloaded(&q, 400));
	ck_assert(!gw_pq_refuse(&q, SHED, 400));
}
END_TEST

START_TEST(refuse_at_4x_normal_too_when_normal_stands)
{
	struct gw_pq q;
	struct gw_pq_entry s[2] = {0}, n[2] = {0}, c = {0};

	init(&q);
	/* Sheddable and normal both starve; critical is served in 1ms. */
	gw_pq_push(&q, &s[0], SHED, 0);
	gw_pq_push(&q, &n[0], NORM, 50);
	gw_pq_push(&q, &s[1], SHED, 55);
	gw_pq_push(&q, &n[1], NORM, 60);
	trickle(&q, &c, CRIT, 61, 109);
	/* Overloaded at 110 with sheddable standing; normal stands from 160.
	 * Before that, a class is refused anyway once its own oldest request
	 * waited past target: a newcomer would wait longer. */
	ck_assert(!gw_pq_overloaded(&q, 109));
	ck_assert(gw_pq_refuse(&q, SHED, 109));
	ck_assert(gw_pq_refuse(&q, SHED, 110));
	trickle(&q, &c, CRIT, 110, 159);
	ck_assert(gw_pq_refuse(&q, SHED, 159));
	ck_assert(gw_pq_refuse(&q, NORM, 160));
	ck_assert(!gw_pq_refuse(&q, CRIT, 160));
	trickle(&q, &c, CRIT, 160, 300);
	/* Sheddable first, oldest first, then normal; critical never. */
	ck_assert_ptr_eq(gw_pq_shed_next(&q, 300), &s[0]);
	ck_assert_ptr_eq(gw_pq_shed_next(&q, 300), &s[1]);
	ck_assert_ptr_eq(gw_pq_shed_next(&q, 300), &n[0]);
	ck_assert_ptr_eq(gw_pq_shed_next(&q, 300), &n[1]);
	ck_assert_ptr_null(gw_pq_shed_next(&q, 300));
	/* Nothing of normal waits any more: normal stays refused for the episode. */
	ck_assert(gw_pq_refuse(&q, NORM, 350));
	ck_assert(gw_pq_refuse(&q, SHED, 350));
	ck_assert(!gw_pq_refuse(&q, CRIT, 350));
}
END_TEST

START_TEST(standing_critical_refuses_every_other_class_and_is_never_shed)
{
	struct gw_pq q;
	struct gw_pq_entry c[3] = {0}, n = {0};

	init(&q);
	for (unsigned i = 0; i < 3; i++)
		gw_pq_push(&q, &c[i], CRIT, 0);
	ck_assert(gw_pq_overloaded(&q, 110));
	ck_assert(gw_pq_refuse(&q, NORM, 110));
	ck_assert(gw_pq_refuse(&q, SHED, 110));
	ck_assert(!gw_pq_refuse(&q, CRIT, 110));
	ck_assert(!gw_pq_refuse(&q, CRIT, 5000));
	ck_assert_ptr_null(gw_pq_shed_next(&q, 5000));
	ck_assert_uint_eq(gw_pq_len(&q, CRIT), 3);
	/* A normal entry that got in anyway is shed once past target; critical still not. */
	gw_pq_push(&q, &n, NORM, 5000);
	ck_assert_ptr_null(gw_pq_shed_next(&q, 5010));
	ck_assert_ptr_eq(gw_pq_shed_next(&q, 5011), &n);
	ck_assert_ptr_null(gw_pq_shed_next(&q, 5011));
	ck_assert_ptr_eq(gw_pq_pop(&q, 5011), &c[0]);
}
END_TEST

START_TEST(yield_leaves_free_slots_to_the_class_being_shed)
{
	struct gw_pq q;
	struct gw_pq_entry s = {0}, n = {0};
	struct gw_pq_stats st;

	init(&q);
	for (unsigned r = 0; r < GW_PQ_RANKS; r++)
		ck_assert(!gw_pq_yield(&q, r, 0));
	/* 2x: sheddable stands, floor 2: sheddable may still use a free slot. */
	gw_pq_push(&q, &s, SHED, 0);
	ck_assert(gw_pq_overloaded(&q, 110));
	for (unsigned r = 0; r < GW_PQ_RANKS; r++)
		ck_assert(!gw_pq_yield(&q, r, 110));
	/* 4x: normal stands too, floor 1: sheddable leaves free slots to normal. */
	gw_pq_push(&q, &n, NORM, 20);
	ck_assert(!gw_pq_yield(&q, SHED, 129));
	ck_assert(gw_pq_yield(&q, SHED, 130));
	ck_assert(gw_pq_refuse(&q, SHED, 130));
	ck_assert(!gw_pq_yield(&q, NORM, 130));
	ck_assert(!gw_pq_yield(&q, CRIT, 130));
	gw_pq_stats(&q, 130, &st);
	ck_assert_uint_eq(st.rank[SHED].counts.refused, 2);
	ck_assert_uint_eq(st.rank[NORM].counts.refused, 0);
}
END_TEST

START_TEST(shed_next_takes_only_entries_that_waited_more_than_target)
{
	struct gw_pq q;
	struct gw_pq_entry old = {0}, young[2] = {0};

	init(&q);
	overload_with_standing(&q, &old, SHED);
	gw_pq_push(&q, &young[0], SHED, 105);
	gw_pq_push(&q, &young[1], SHED, 110);
	ck_assert_ptr_eq(gw_pq_shed_next(&q, 115), &old);
	ck_assert_ptr_null(gw_pq_shed_next(&q, 115));
	ck_assert_ptr_eq(gw_pq_shed_next(&q, 116), &young[0]);
	ck_assert_ptr_null(gw_pq_shed_next(&q, 120));
	ck_assert_ptr_eq(gw_pq_shed_next(&q, 121), &young[1]);
	ck_assert_ptr_null(gw_pq_shed_next(&q, 121));
	ck_assert_uint_eq(gw_pq_total(&q), 0);
}
END_TEST

START_TEST(shed_next_leaves_classes_above_the_floor)
{
	struct gw_pq q;
	struct gw_pq_entry s = {0}, n = {0}, c = {0};

	init(&q);
	/* Only sheddable stands; normal waited past target but has not stood. */
	gw_pq_push(&q, &s, SHED, 0);
	gw_pq_push(&q, &n, NORM, 80);
	gw_pq_push(&q, &c, CRIT, 80);
	ck_assert(gw_pq_overloaded(&q, 110));
	ck_assert_ptr_eq(gw_pq_shed_next(&q, 150), &s);
	ck_assert_ptr_null(gw_pq_shed_next(&q, 150));
	ck_assert_uint_eq(gw_pq_len(&q, NORM), 1);
	ck_assert_uint_eq(gw_pq_len(&q, CRIT), 1);
}
END_TEST

START_TEST(floor_resets_when_the_episode_ends)
{
	struct gw_pq q;
	struct gw_pq_entry n = {0}, s = {0};

	init(&q);
	overload_with_standing(&q, &n, NORM);
	ck_assert(gw_pq_refuse(&q, NORM, 110));
	ck_assert_ptr_eq(gw_pq_shed_next(&q, 120), &n);
	ck_assert(gw_pq_refuse(&q, NORM, 219));
	ck_assert(!gw_pq_refuse(&q, NORM, 220));
	ck_assert(!gw_pq_refuse(&q, SHED, 220));
	/* A new episode where only sheddable stands refuses only sheddable. */
	gw_pq_push(&q, &s, SHED, 1000);
	ck_assert(gw_pq_refuse(&q, SHED, 1110));
	ck_assert(!gw_pq_refuse(&q, NORM, 1110));
}
END_TEST

/* ---- stats --------------------------------------------------------------- */

START_TEST(stats_count_waits_per_rank_and_the_current_delay)
{
	struct gw_pq q;
	struct gw_pq_entry e[6] = {0};
	struct gw_pq_stats s;

	init(&q);
	gw_pq_push(&q, &e[0], CRIT, 0);
	gw_pq_push(&q, &e[1], CRIT, 10);
	gw_pq_push(&q, &e[2], NORM, 20);
	gw_pq_push(&q, &e[3], SHED, 30);
	gw_pq_push(&q, &e[4], SHED, 35);
	gw_pq_push(&q, &e[5], NORM, 40);
	ck_assert_ptr_eq(gw_pq_pop(&q, 50), &e[0]); /* waited 50 */
	ck_assert_ptr_eq(gw_pq_pop(&q, 52), &e[1]); /* waited 42 */
	ck_assert_ptr_eq(gw_pq_pop(&q, 60), &e[2]); /* waited 40 */
	gw_pq_remove(&q, &e[5], 61);
	gw_pq_stats(&q, 70, &s);
	ck_assert_uint_eq(s.target_ms, TARGET);
	ck_assert_uint_eq(s.interval_ms, INTERVAL);
	ck_assert_uint_eq(s.rank[CRIT].counts.pushed, 2);
	ck_assert_uint_eq(s.rank[CRIT].counts.popped, 2);
	ck_assert_uint_eq(s.rank[CRIT].counts.wait_sum_ms, 92);
	ck_assert_uint_eq(s.rank[CRIT].counts.wait_max_ms, 50);
	ck_assert_uint_eq(s.rank[CRIT].waiting, 0);
	ck_assert_uint_eq(s.rank[CRIT].delay_ms, 0);
	ck_assert_uint_eq(s.rank[NORM].counts.popped, 1);
	ck_assert_uint_eq(s.rank[NORM].counts.wait_sum_ms, 40);
	ck_assert_uint_eq(s.rank[NORM].counts.wait_max_ms, 40);
	ck_assert_uint_eq(s.rank[NORM].counts.removed, 1);
	ck_assert_uint_eq(s.rank[SHED].waiting, 2);
	ck_assert_uint_eq(s.rank[SHED].delay_ms, 40);
	ck_assert_uint_eq(s.rank[SHED].counts.popped, 0);
	ck_assert(!s.rank[SHED].standing);
	ck_assert_uint_eq(s.delay_ms, 40);
	ck_assert_uint_eq(s.above_ms, 60); /* e[0], e[1], e[2], e[3] in turn: above since 10 */
	ck_assert(!s.overloaded);
	ck_assert_uint_eq(s.floor, GW_PQ_RANKS);

	/* Overload from 110; sheddable stands from 140: a refusal, a shed. */
	ck_assert(gw_pq_refuse(&q, SHED, 150));
	ck_assert_ptr_eq(gw_pq_shed_next(&q, 150), &e[3]);
	gw_pq_stats(&q, 160, &s);
	ck_assert(s.overloaded);
	ck_assert_uint_eq(s.episode_ms, 50);
	ck_assert_uint_eq(s.episodes, 1);
	ck_assert_uint_eq(s.floor, SHED);
	ck_assert(s.rank[SHED].standing);
	ck_assert_uint_eq(s.rank[SHED].delay_ms, 125);
	ck_assert_uint_eq(s.rank[SHED].counts.refused, 1);
	ck_assert_uint_eq(s.rank[SHED].counts.shed, 1);
	ck_assert_uint_eq(s.rank[SHED].counts.pushed, 2);
}
END_TEST

/* ---- load simulations ---------------------------------------------------- */

/*
 * An upstream with SLOTS concurrent requests of SERVICE ms each, driven as
 * modules/concurrency drives its queue: a request takes a free slot only
 * when nobody waits (and, with `yield`, when gw_pq_yield allows), else it
 * is refused or queued; a freed slot goes to the next in the queue after
 * the queue sheds what it must; a 10ms tick does the same; a waiter past
 * its route deadline leaves the queue.
 */
#define SLOTS    8
#define SERVICE  20
#define DEADLINE 1000
#define SIM_MS   20000
#define WAITERS  4096

struct sim_req {
	struct gw_pq_entry entry; /* first: the entry is the request */
	bool used;
};

struct sim_rank {
	uint64_t arrived, served, refused, shed, timed_out, wait_max;
};

struct sim {
	struct gw_pq q;
	struct sim_req reqs[WAITERS];
	uint64_t busy_until[SLOTS];
	struct sim_rank r[GW_PQ_RANKS];
	uint64_t overloaded_ms;
	bool yield; /* free slots go to the class being shed first (gw_pq_yield) */
};

static int free_slot(struct sim *s, uint64_t t)
{
	for (int i = 0; i < SLOTS; i++)
		if (s->busy_until[i] <= t)
			return i;
	return -1;
}

static void sim_dispatch(struct sim *s, uint64_t t)
{
	struct gw_pq_entry *e;
	int slot;

	while ((e = gw_pq_shed_next(&s->q, t)) != NULL) {
		s->r[e->rank].shed++;
		((struct sim_req *)e)->used = false;
	}
	while ((slot = free_slot(s, t)) >= 0 && (e = gw_pq_pop(&s->q, t)) != NULL) {
		uint64_t w = t - e->enqueued_ms;

		s->r[e->rank].served++;
		if (w > s->r[e->rank].wait_max)
			s->r[e->rank].wait_max = w;
		((struct sim_req *)e)->used = false;
		s->busy_until[slot] = t + SERVICE;
	}
}

static void sim_arrive(struct sim *s, unsigned rank, uint64_t t)
{
	int slot = free_slot(s, t);
	struct sim_req *req = NULL;

	s->r[rank].arrived++;
	if (slot >= 0 && gw_pq_total(&s->q) == 0 && !(s->yield && gw_pq_yield(&s->q, rank, t))) {
		s->r[rank].served++;
		s->busy_until[slot] = t + SERVICE;
		return;
	}
	if (gw_pq_refuse(&s->q, rank, t)) {
		s->r[rank].refused++;
		return;
	}
	for (int i = 0; i < WAITERS && !req; i++)
		if (!s->reqs[i].used)
			req = &s->reqs[i];
	ck_assert_ptr_nonnull(req);
	req->used = true;
	gw_pq_push(&s->q, &req->entry, rank, t);
}

/*
 * per_period[r] requests of rank r arrive every `period` ms, spread evenly
 * with a small offset per rank. The upstream serves SLOTS per SERVICE ms.
 */
static void simulate(struct sim *s, const unsigned per_period[GW_PQ_RANKS], unsigned period)
{
	gw_pq_init(&s->q, 20, 100);
	for (uint64_t t = 0; t < SIM_MS; t++) {
		for (int i = 0; i < WAITERS; i++) {
			struct gw_pq_entry *e = &s->reqs[i].entry;

			if (s->reqs[i].used && t - e->enqueued_ms >= DEADLINE) {
				s->r[e->rank].timed_out++;
				gw_pq_remove(&s->q, e, t);
				s->reqs[i].used = false;
			}
		}
		sim_dispatch(s, t);
		for (unsigned r = 0; r < GW_PQ_RANKS; r++)
			for (unsigned k = 0; k < per_period[r]; k++)
				if (t % period == (k * period / per_period[r] + r) % period)
					sim_arrive(s, r, t);
		if (t % 10 == 0)
			sim_dispatch(s, t);
		if (gw_pq_overloaded(&s->q, t))
			s->overloaded_ms++;
	}
}

START_TEST(load_at_2x_refuses_sheddable_fast_and_serves_critical_and_normal)
{
	struct sim *s = calloc(1, sizeof(*s));
	/* Capacity 8 per 20ms. Critical 3 and normal 3 (75%), sheddable 10: 2x in all. */
	static const unsigned per_period[GW_PQ_RANKS] = {3, 3, 10};

	s->yield = true;

	simulate(s, per_period, 20);
	for (unsigned r = CRIT; r <= NORM; r++) {
		ck_assert_uint_eq(s->r[r].served + gw_pq_len(&s->q, r), s->r[r].arrived);
		ck_assert_uint_eq(s->r[r].refused, 0);
		ck_assert_uint_eq(s->r[r].shed, 0);
		ck_assert_uint_eq(s->r[r].timed_out, 0);
		ck_assert_uint_le(s->r[r].wait_max, SERVICE);
	}
	/*
	 * Sheddable takes the room left over (2 per 20ms); the rest is refused
	 * at once, and less than a tenth waits to be shed late (about half with
	 * a hold that never grows after relapses).
	 */
	ck_assert_uint_ge(s->r[SHED].served, SIM_MS / 20 * 2 * 9 / 10);
	ck_assert_uint_le(s->r[SHED].shed, s->r[SHED].arrived / 10);
	ck_assert_uint_eq(s->r[SHED].timed_out, 0);
	ck_assert_uint_ge(s->overloaded_ms, SIM_MS * 8 / 10);
	free(s);
}
END_TEST

START_TEST(load_at_4x_refuses_normal_too_and_never_critical)
{
	struct sim *s = calloc(1, sizeof(*s));
	/* Capacity 8 per 20ms. Critical 4 (50%), normal 12, sheddable 16: 4x in all. */
	static const unsigned per_period[GW_PQ_RANKS] = {4, 12, 16};

	s->yield = true;

	simulate(s, per_period, 20);
	ck_assert_uint_eq(s->r[CRIT].refused, 0);
	ck_assert_uint_eq(s->r[CRIT].shed, 0);
	ck_assert_uint_eq(s->r[CRIT].timed_out, 0);
	ck_assert_uint_eq(s->r[CRIT].served + gw_pq_len(&s->q, CRIT), s->r[CRIT].arrived);
	ck_assert_uint_le(s->r[CRIT].wait_max, SERVICE);
	/* Normal takes the room critical leaves (4 per 20ms), sheddable next to nothing. */
	ck_assert_uint_ge(s->r[NORM].served, SIM_MS / 20 * 4 * 9 / 10);
	ck_assert_uint_gt(s->r[NORM].refused, s->r[NORM].arrived / 2);
	ck_assert_uint_le(s->r[NORM].shed + s->r[NORM].timed_out, s->r[NORM].arrived / 10);
	ck_assert_uint_le(s->r[SHED].served, s->r[SHED].arrived / 100);
	ck_assert_uint_gt(s->r[SHED].refused, s->r[SHED].arrived * 8 / 10);
	ck_assert_uint_eq(s->r[SHED].timed_out, 0);
	free(s);
}
END_TEST

START_TEST(load_below_capacity_sheds_nothing)
{
	struct sim *s = calloc(1, sizeof(*s));
	/* Capacity 8 per 20ms; 7 per 20ms arrive. */
	static const unsigned per_period[GW_PQ_RANKS] = {2, 2, 3};

	simulate(s, per_period, 20);
	for (unsigned r = 0; r < GW_PQ_RANKS; r++) {
		ck_assert_uint_eq(s->r[r].refused + s->r[r].shed + s->r[r].timed_out, 0);
		ck_assert_uint_eq(s->r[r].served, s->r[r].arrived);
	}
	ck_assert_uint_eq(s->overloaded_ms, 0);
	free(s);
}
END_TEST

/* ---- suite --------------------------------------------------------------- */

#define ADD(s, t) gw_test_add_case(s, #t, t, 60)

static Suite *prio_queue_suite(void)
{
	Suite *s = suite_create("prio_queue");

	ADD(s, pop_serves_critical_then_normal_then_sheddable_fifo_within);
	ADD(s, rank_past_the_last_queues_as_sheddable);
	ADD(s, remove_of_a_middle_entry_keeps_the_others_in_order);
	ADD(s, remove_of_the_oldest_entry_moves_the_queue_delay_to_the_next);
	ADD(s, burst_above_target_for_less_than_an_interval_does_not_overload);
	ADD(s, queue_that_drains_every_interval_does_not_overload);
	ADD(s, standing_queue_overloads_after_an_interval_above_target);
	ADD(s, overload_is_dated_when_reached_not_when_looked_at);
	ADD(s, overload_holds_until_delay_at_or_below_target_for_an_interval);
	ADD(s, overload_ends_with_a_queue_that_waits_at_most_target);
	ADD(s, calm_before_the_overload_does_not_end_it);
	ADD(s, relapse_doubles_the_hold_up_to_thirty_two_intervals);
	ADD(s, relapse_window_is_target_plus_four_intervals);
	ADD(s, refuse_nothing_while_not_overloaded);
	ADD(s, refuse_at_2x_only_sheddable_while_critical_and_normal_keep_up);
	ADD(s, refuse_at_4x_normal_too_when_normal_stands);
	ADD(s, standing_critical_refuses_every_other_class_and_is_never_shed);
	ADD(s, yield_leaves_free_slots_to_the_class_being_shed);
	ADD(s, shed_next_takes_only_entries_that_waited_more_than_target);
	ADD(s, shed_next_leaves_classes_above_the_floor);
	ADD(s, floor_resets_when_the_episode_ends);
	ADD(s, stats_count_waits_per_rank_and_the_current_delay);
	ADD(s, load_at_2x_refuses_sheddable_fast_and_serves_critical_and_normal);
	ADD(s, load_at_4x_refuses_normal_too_and_never_critical);
	ADD(s, load_below_capacity_sheds_nothing);
	return s;
}

int main(void)
{
	return gw_test_run_suite(prio_queue_suite(), CK_FORK);
}
