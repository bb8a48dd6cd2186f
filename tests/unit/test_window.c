/*
 * The rolling-window counter (gateway/util/window.h): what a sum holds and
 * when a count leaves it, counters kept apart, bucket reuse, lagging
 * clocks, add_below's exact bound, the stamps' wrap, and concurrent
 * workers. Time is a plain argument (a fake clock): nothing sleeps.
 */
#include <check.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/util/window.h"
#include "check_suite.h"

/* xorshift64*: a fixed sequence, so a failure can be replayed. */
static uint64_t next_random(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

static void add_n(struct gw_window *w, unsigned counter, uint64_t now, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		gw_window_add(w, counter, now);
}

/* ---- counting ---------------------------------------------------------- */

START_TEST(window_starts_empty_and_keeps_counters_apart)
{
	struct gw_window *w = gw_window_new(10, 1000, 3);
	uint64_t sums[3];

	ck_assert_uint_eq(gw_window_sum(w, 0, 0), 0);
	ck_assert_uint_eq(gw_window_sum(w, 2, 123456), 0);
	add_n(w, 0, 5000, 3);
	add_n(w, 1, 5000, 1);
	add_n(w, 0, 5999, 2);
	ck_assert_uint_eq(gw_window_sum(w, 0, 5999), 5);
	ck_assert_uint_eq(gw_window_sum(w, 1, 5999), 1);
	ck_assert_uint_eq(gw_window_sum(w, 2, 5999), 0);
	gw_window_sums(w, 5000, sums);
	ck_assert_uint_eq(sums[0], 5);
	ck_assert_uint_eq(sums[1], 1);
	ck_assert_uint_eq(sums[2], 0);
	gw_window_free(w);
}
END_TEST

START_TEST(window_forgets_a_count_exactly_n_buckets_after_its_own)
{
	struct gw_window *w = gw_window_new(10, 1000, 1);
	struct gw_window *v = gw_window_new(3, 7, 1);

	/* Made at 1500 (bucket 1): there up to 10999 (bucket 10), gone at 11000. */
	gw_window_add(w, 0, 1500);
	ck_assert_uint_eq(gw_window_sum(w, 0, 1000), 1);
	ck_assert_uint_eq(gw_window_sum(w, 0, 10999), 1);
	ck_assert_uint_eq(gw_window_sum(w, 0, 11000), 0);
	/* 3 buckets of 7 ms: made at 20 (bucket 2), there through bucket 4 (28..34). */
	gw_window_add(v, 0, 20);
	ck_assert_uint_eq(gw_window_sum(v, 0, 14), 1);
	ck_assert_uint_eq(gw_window_sum(v, 0, 34), 1);
	ck_assert_uint_eq(gw_window_sum(v, 0, 35), 0);
	gw_window_free(w);
	gw_window_free(v);
}
END_TEST

START_TEST(window_slides_bucket_by_bucket)
{
	struct gw_window *w = gw_window_new(10, 1000, 2);

	/* One of each per second: the sum is the last ten seconds. */
	for (uint64_t s = 0; s < 25; s++) {
		gw_window_add(w, 0, s * 1000 + 300);
		gw_window_add(w, 1, s * 1000 + 600);
		gw_window_add(w, 1, s * 1000 + 700);
		ck_assert_uint_eq(gw_window_sum(w, 0, s * 1000 + 999), s < 10 ? s + 1 : 10);
		ck_assert_uint_eq(gw_window_sum(w, 1, s * 1000 + 999), 2 * (s < 10 ? s + 1 : 10));
	}
	/* Silence: it drains one bucket a second, then stays empty. */
	for (uint64_t s = 25; s < 40; s++)
		ck_assert_uint_eq(gw_window_sum(w, 0, s * 1000), s < 34 ? 34 - s : 0);
	gw_window_free(w);
}
END_TEST

START_TEST(window_reused_bucket_restarts_from_zero)
{
	struct gw_window *w = gw_window_new(10, 1000, 1);

	add_n(w, 0, 3000, 5);
	add_n(w, 0, 13000, 1); /* bucket 3 again, one turn later */
	ck_assert_uint_eq(gw_window_sum(w, 0, 13000), 1);
	add_n(w, 0, 33500, 2); /* two turns later */
	ck_assert_uint_eq(gw_window_sum(w, 0, 33999), 2);
	ck_assert_uint_eq(gw_window_sum(w, 0, 42999), 2);
	ck_assert_uint_eq(gw_window_sum(w, 0, 43000), 0);
	gw_window_free(w);
}
END_TEST

START_TEST(window_lagging_clock_never_wipes_newer_counts)
{
	struct gw_window *w = gw_window_new(10, 1000, 1);

	add_n(w, 0, 15000, 4); /* bucket 5 */
	/* A thread still at second 5 (bucket 5 too) adds nothing ... */
	gw_window_add(w, 0, 5000);
	ck_assert(!gw_window_add_below(w, 0, 5000, 1000));
	ck_assert_uint_eq(gw_window_sum(w, 0, 15000), 4);
	/* ... one at second 14, still in the window, counts. */
	gw_window_add(w, 0, 14000);
	ck_assert_uint_eq(gw_window_sum(w, 0, 15000), 5);
	/* A lagging reader sees its own window: second 14 and before. */
	ck_assert_uint_eq(gw_window_sum(w, 0, 14999), 1);
	gw_window_free(w);
}
END_TEST

START_TEST(window_clear_forgets_everything)
{
	struct gw_window *w = gw_window_new(4, 250, 2);

	add_n(w, 0, 100, 3);
	add_n(w, 1, 600, 2);
	gw_window_clear(w);
	ck_assert_uint_eq(gw_window_sum(w, 0, 600), 0);
	ck_assert_uint_eq(gw_window_sum(w, 1, 600), 0);
	add_n(w, 1, 700, 1);
	ck_assert_uint_eq(gw_window_sum(w, 1, 700), 1);
	gw_window_free(w);
}
END_TEST

START_TEST(window_shapes_out_of_range_are_clamped)
{
	struct gw_window *w = gw_window_new(0, 0, 0); /* one bucket of 1 ms, one counter */
	struct gw_window *big = gw_window_new(100000, 1, 1);

	gw_window_add(w, 0, 5);
	ck_assert_uint_eq(gw_window_sum(w, 0, 5), 1);
	ck_assert_uint_eq(gw_window_sum(w, 0, 6), 0);
	/* 65536 buckets at most */
	gw_window_add(big, 0, 10);
	ck_assert_uint_eq(gw_window_sum(big, 0, 10 + 65535), 1);
	ck_assert_uint_eq(gw_window_sum(big, 0, 10 + 65536), 0);
	gw_window_free(w);
	gw_window_free(big);
}
END_TEST

/*
 * Stamps keep 32 bits of the epoch: across their wrap (1 ms buckets, 2^32
 * ms in), the ring keeps its order and every sum stays exact.
 */
START_TEST(window_stays_exact_across_the_stamp_wrap)
{
	const uint64_t wrap = 1ull << 32;
	struct gw_window *w = gw_window_new(10, 1, 1);

	for (uint64_t t = wrap - 15; t < wrap + 25; t++) {
		uint64_t made = t - (wrap - 15) + 1;

		gw_window_add(w, 0, t);
		ck_assert_uint_eq(gw_window_sum(w, 0, t), made < 10 ? made : 10);
	}
	ck_assert_uint_eq(gw_window_sum(w, 0, wrap + 33), 1);
	ck_assert_uint_eq(gw_window_sum(w, 0, wrap + 34), 0);
	gw_window_free(w);
}
END_TEST

/*
 * Against the plain definition, for many shapes and clocks that jump:
 * with time never going back, a sum at epoch e is the number of adds made
 * at epochs e-N+1 .. e.
 */
START_TEST(window_matches_a_plain_count_of_recent_adds)
{
	uint64_t seed = 0x9e3779b97f4a7c15ull;

	for (int round = 0; round < 200; round++) {
		unsigned buckets = 1 + (unsigned)(next_random(&seed) % 16);
		uint64_t width = 1 + next_random(&seed) % 50;
		uint64_t now = next_random(&seed) % (1ull << 40),
		         *made = calloc(400, sizeof(*made));
		struct gw_window *w = gw_window_new(buckets, width, 2);
		size_t n = 0;

		for (int step = 0; step < 400; step++) {
			uint64_t r = next_random(&seed), epoch, expect = 0;

			/* mostly small steps, sometimes a whole window or more */
			now += r % 8 == 0 ? r % (width * buckets * 3) : r % (width + 1);
			epoch = now / width;
			if (r % 3 != 0) {
				gw_window_add(w, 1, now);
				made[n++] = epoch;
			}
			for (size_t i = 0; i < n; i++)
				expect += made[i] + buckets > epoch;
			ck_assert_msg(gw_window_sum(w, 1, now) == expect,
			              "round %d step %d: %u buckets of %llu ms at %llu: sum %llu, "
			              "expected %llu",
			              round, step, buckets, (unsigned long long)width,
			              (unsigned long long)now,
			              (unsigned long long)gw_window_sum(w, 1, now),
			              (unsigned long long)expect);
			ck_assert_uint_eq(gw_window_sum(w, 0, now), 0);
		}
		free(made);
		gw_window_free(w);
	}
}
END_TEST

/* ---- add_below --------------------------------------------------------- */

START_TEST(window_add_below_takes_exactly_up_to_the_limit)
{
	struct gw_window *w = gw_window_new(10, 1000, 2);

	ck_assert(!gw_window_add_below(w, 0, 0, 0));
	for (int i = 0; i < 3; i++)
		ck_assert_msg(gw_window_add_below(w, 0, 100, 3), "take %d of 3 refused", i + 1);
	ck_assert(!gw_window_add_below(w, 0, 100, 3));
	ck_assert_uint_eq(gw_window_sum(w, 0, 100), 3);
	/* The other buckets of the window count against it ... */
	ck_assert(gw_window_add_below(w, 0, 4000, 4));
	ck_assert(!gw_window_add_below(w, 0, 4000, 4));
	/* ... the other counters do not ... */
	add_n(w, 1, 4000, 50);
	ck_assert(gw_window_add_below(w, 0, 4000, 5));
	/* ... and neither do buckets that left the window. */
	ck_assert_uint_eq(gw_window_sum(w, 0, 10000), 2);
	ck_assert(gw_window_add_below(w, 0, 10000, 3));
	ck_assert(!gw_window_add_below(w, 0, 10000, 3));
	ck_assert_uint_eq(gw_window_sum(w, 0, 10000), 3);
	gw_window_free(w);
}
END_TEST

/* ---- concurrent workers ------------------------------------------------ */

struct worker {
	struct gw_window *w;
	uint64_t now;
	unsigned n;
	uint64_t limit; /* 0: plain adds */
	unsigned taken;
	pthread_barrier_t *start;
};

static void *work(void *arg)
{
	struct worker *k = arg;

	pthread_barrier_wait(k->start);
	for (unsigned i = 0; i < k->n; i++) {
		if (k->limit == 0)
			gw_window_add(k->w, 0, k->now);
		else
			k->taken += gw_window_add_below(k->w, 0, k->now, k->limit);
	}
	return NULL;
}

/* Four workers at once, at nows[i]; returns what add_below took in all. */
static unsigned run_workers(struct gw_window *w, const uint64_t nows[4], unsigned n, uint64_t limit)
{
	pthread_t t[4];
	struct worker k[4];
	pthread_barrier_t start;
	unsigned taken = 0;

	pthread_barrier_init(&start, NULL, 4);
	for (int i = 0; i < 4; i++) {
		k[i] = (struct worker){
		    .w = w, .now = nows[i], .n = n, .limit = limit, .start = &start};
		ck_assert_int_eq(pthread_create(&t[i], NULL, work, &k[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		taken += k[i].taken;
	}
	pthread_barrier_destroy(&start);
	return taken;
}

START_TEST(window_concurrent_adds_are_all_counted)
{
	const uint64_t same[4] = {7000, 7000, 7500, 7999};
	const uint64_t two_buckets[4] = {7999, 8000, 7999, 8000}; /* clocks a bucket apart */

	for (int round = 0; round < 10; round++) {
		struct gw_window *w = gw_window_new(10, 1000, 1);

		run_workers(w, same, 50000, 0);
		ck_assert_uint_eq(gw_window_sum(w, 0, 7999), 4 * 50000);
		run_workers(w, two_buckets, 50000, 0);
		ck_assert_uint_eq(gw_window_sum(w, 0, 8000), 8 * 50000);
		ck_assert_uint_eq(gw_window_sum(w, 0, 17999), 2 * 50000); /* second 8 alone */
		gw_window_free(w);
	}
}
END_TEST

START_TEST(window_concurrent_add_below_never_passes_the_limit)
{
	const uint64_t now[4] = {42000, 42000, 42000, 42000};

	for (int round = 0; round < 20; round++) {
		struct gw_window *w = gw_window_new(10, 1000, 1);

		add_n(w, 0, 35000, 500); /* another bucket of the window */
		ck_assert_uint_eq(run_workers(w, now, 2000, 2500), 2000);
		ck_assert_uint_eq(gw_window_sum(w, 0, 42000), 2500);
		gw_window_free(w);
	}
}
END_TEST

/* ---- suite ------------------------------------------------------------- */

static Suite *window_suite(void)
{
	Suite *s = suite_create("window");

	gw_test_add_case(s, "window_starts_empty_and_keeps_counters_apart",
	                 window_starts_empty_and_keeps_counters_apart, 60);
	gw_test_add_case(s, "window_forgets_a_count_exactly_n_buckets_after_its_own",
	                 window_forgets_a_count_exactly_n_buckets_after_its_own, 60);
	gw_test_add_case(s, "window_slides_bucket_by_bucket", window_slides_bucket_by_bucket, 60);
	gw_test_add_case(s, "window_reused_bucket_restarts_from_zero",
	                 window_reused_bucket_restarts_from_zero, 60);
	gw_test_add_case(s, "window_lagging_clock_never_wipes_newer_counts",
	                 window_lagging_clock_never_wipes_newer_counts, 60);
	gw_test_add_case(s, "window_clear_forgets_everything", window_clear_forgets_everything, 60);
	gw_test_add_case(s, "window_shapes_out_of_range_are_clamped",
	                 window_shapes_out_of_range_are_clamped, 60);
	gw_test_add_case(s, "window_stays_exact_across_the_stamp_wrap",
	                 window_stays_exact_across_the_stamp_wrap, 60);
	gw_test_add_case(s, "window_matches_a_plain_count_of_recent_adds",
	                 window_matches_a_plain_count_of_recent_adds, 60);
	gw_test_add_case(s, "window_add_below_takes_exactly_up_to_the_limit",
	                 window_add_below_takes_exactly_up_to_the_limit, 60);
	gw_test_add_case(s, "window_concurrent_adds_are_all_counted",
	                 window_concurrent_adds_are_all_counted, 60);
	gw_test_add_case(s, "window_concurrent_add_below_never_passes_the_limit",
	                 window_concurrent_add_below_never_passes_the_limit, 60);
	return s;
}

int main(void)
{
	return gw_test_run_suite(window_suite(), CK_FORK);
}
