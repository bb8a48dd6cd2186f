/*
 * Token buckets per key: the bucket arithmetic (burst, refill, exact steady
 * rates, Retry-After), keys kept apart, memory bounded under a flood of keys
 * with limited keys kept through it, the eviction order, and takes from
 * several threads at once. Time is a plain argument (a fake clock): nothing
 * sleeps.
 */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modules/rate_limit/bucket_table.h"
#include "check_suite.h"

#define SEC  1000ull
#define MIN  (60 * SEC)
#define HOUR (60 * MIN)

/* xorshift64*: a fixed sequence, so a failure can be replayed. */
static uint64_t next_random(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

static uint64_t take(struct gw_bucket_table *t, const char *key, uint64_t now)
{
	return gw_bucket_take(t, key, strlen(key), now);
}

/* Requests granted out of n made at now. */
static unsigned take_n(struct gw_bucket_table *t, const char *key, uint64_t now, unsigned n)
{
	unsigned got = 0;

	for (unsigned i = 0; i < n; i++)
		got += take(t, key, now) == 0;
	return got;
}

/* Requests granted at now until the first refusal. */
static unsigned drain(struct gw_bucket_table *t, const char *key, uint64_t now)
{
	unsigned got = 0;

	while (take(t, key, now) == 0)
		got++;
	return got;
}

/* ---- arithmetic -------------------------------------------------------- */

START_TEST(bucket_starts_full_then_refills_at_the_rate_up_to_burst)
{
	struct gw_bucket_table *t = gw_bucket_table_new(100, SEC, 50, 1000);

	ck_assert_uint_eq(take_n(t, "k", 0, 60), 50);
	ck_assert_uint_eq(take_n(t, "k", 9, 5), 0);  /* 0.9 of a token */
	ck_assert_uint_eq(take_n(t, "k", 10, 5), 1); /* one token per 10 ms */
	ck_assert_uint_eq(take_n(t, "k", 110, 20), 10);
	ck_assert_uint_eq(take_n(t, "k", 600, 60), 49);   /* refilled to 49 ... */
	ck_assert_uint_eq(take_n(t, "k", 10000, 60), 50); /* ... and never past 50 */
	ck_assert_uint_eq(take_n(t, "k", 1000000000, 60), 50);
	gw_bucket_table_free(t);
}
END_TEST

START_TEST(burst_zero_means_rate_rounded_up)
{
	static const struct {
		double rate;
		unsigned burst;
	} table[] = {{7, 7}, {100, 100}, {2.5, 3}, {0.5, 1}, {0.001, 1}};

	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		struct gw_bucket_table *t = gw_bucket_table_new(table[i].rate, SEC, 0, 100);

		ck_assert_msg(drain(t, "k", 5000) == table[i].burst, "rate %g: burst %u",
		              table[i].rate, table[i].burst);
		gw_bucket_table_free(t);
	}
}
END_TEST

/*
 * Drains the bucket at 0, then makes `per_ms` takes each ms and counts the
 * grants in each of `windows` windows of window_ms, (k * w, (k + 1) * w].
 */
static void check_steady_rate(double rate, uint64_t per_ms, uint32_t burst, uint64_t window_ms,
                              unsigned windows, unsigned takes_per_ms, unsigned expected)
{
	struct gw_bucket_table *t = gw_bucket_table_new(rate, per_ms, burst, 100);
	uint64_t now = 0;

	ck_assert_uint_eq(drain(t, "k", 0), burst);
	for (unsigned w = 0; w < windows; w++) {
		unsigned got = 0;

		for (uint64_t ms = 0; ms < window_ms; ms++)
			got += take_n(t, "k", ++now, takes_per_ms);
		ck_assert_msg(got == expected, "rate %g per %llu ms, window %u: %u granted, not %u",
		              rate, (unsigned long long)per_ms, w, got, expected);
	}
	gw_bucket_table_free(t);
}

START_TEST(steady_state_admits_exactly_rate_per_period)
{
	check_steady_rate(1, SEC, 1, SEC, 20, 2, 1);
	check_steady_rate(7, SEC, 7, SEC, 20, 2, 7);
	check_steady_rate(3, SEC, 2, SEC, 20, 2, 3); /* a token every 333.33 ms */
	check_steady_rate(100, SEC, 50, SEC, 10, 2, 100);
	check_steady_rate(1000, SEC, 1000, SEC, 10, 3, 1000);
	check_steady_rate(5, MIN, 5, MIN, 5, 1, 5);
	check_steady_rate(0.5, SEC, 1, 2 * SEC, 10, 1, 1);
	check_steady_rate(1.25, SEC, 2, 4 * SEC, 5, 1, 5);
}
END_TEST

START_TEST(several_tokens_per_ms_are_admitted_without_rounding_loss)
{
	/* 10 and 2.5 tokens per ms: the fraction carries over to the next ms. */
	check_steady_rate(10000, SEC, 100, 1, 200, 30, 10);
	check_steady_rate(2500, SEC, 10, 2, 200, 30, 5);
	check_steady_rate(2500, SEC, 10, SEC, 3, 30, 2500);
}
END_TEST

/* ---- Retry-After ------------------------------------------------------- */

START_TEST(refusal_says_time_until_next_token)
{
	struct gw_bucket_table *t = gw_bucket_table_new(1, SEC, 1, 100);

	ck_assert_uint_eq(take(t, "k", 0), 0);
	ck_assert_uint_eq(take(t, "k", 0), 1000);
	ck_assert_uint_eq(take(t, "k", 250), 750);
	ck_assert_uint_eq(take(t, "k", 999), 1);
	ck_assert_uint_eq(take(t, "k", 1000), 0);
	ck_assert_uint_eq(take(t, "k", 1000), 1000);
	gw_bucket_table_free(t);

	t = gw_bucket_table_new(3, SEC, 2, 100); /* 333.33 ms: rounded up, never early */
	ck_assert_uint_eq(drain(t, "k", 0), 2);
	ck_assert_uint_eq(take(t, "k", 0), 334);
	ck_assert_uint_eq(take(t, "k", 333), 1);
	ck_assert_uint_eq(take(t, "k", 334), 0);
	ck_assert_uint_eq(take(t, "k", 334), 333); /* the 0.67 ms past the token carried */
	gw_bucket_table_free(t);

	t = gw_bucket_table_new(5, MIN, 5, 100);
	ck_assert_uint_eq(drain(t, "k", 0), 5);
	ck_assert_uint_eq(take(t, "k", 0), 12000);
	ck_assert_uint_eq(take(t, "k", 11999), 1);
	gw_bucket_table_free(t);

	t = gw_bucket_table_new(0.001, HOUR, 3, 100); /* a token every 1000 hours */
	ck_assert_uint_eq(drain(t, "k", 7), 3);
	ck_assert_uint_eq(take(t, "k", 7), 1000 * HOUR);
	gw_bucket_table_free(t);
}
END_TEST

START_TEST(refusal_waits_at_least_one_ms_even_below_a_ms_per_token)
{
	struct gw_bucket_table *t = gw_bucket_table_new(10000, SEC, 5, 100);

	ck_assert_uint_eq(drain(t, "k", 42), 5);
	ck_assert_uint_eq(take(t, "k", 42), 1);       /* the next token is 0.1 ms away */
	ck_assert_uint_eq(take_n(t, "k", 43, 20), 5); /* a ms later: 10, capped at 5 */
	gw_bucket_table_free(t);
}
END_TEST

START_TEST(retry_after_is_neither_early_nor_late)
{
	static const struct {
		double rate;
		uint64_t per_ms;
	} rates[] = {{1, SEC}, {3, SEC}, {7, SEC}, {100, SEC}, {1000, SEC}, {5, MIN}, {0.7, SEC}};
	uint64_t seed = 0x2545f4914f6cdd1dull;

	for (size_t r = 0; r < sizeof(rates) / sizeof(rates[0]); r++) {
		struct gw_bucket_table *t =
		    gw_bucket_table_new(rates[r].rate, rates[r].per_ms, 3, 100);
		uint64_t now = 1000, wait;
		unsigned early = 0, late = 0;

		for (int i = 0; i < 2000; i++) {
			now += next_random(&seed) % 50;
			while ((wait = take(t, "k", now)) == 0)
				continue; /* down to the first refusal */
			/* A refused take changes nothing: one ms earlier is still too early. */
			if (wait > 1 && take(t, "k", now + wait - 1) != 1)
				early++;
			if (take(t, "k", now + wait) != 0)
				late++;
			now += wait;
		}
		ck_assert_uint_eq(early, 0);
		ck_assert_uint_eq(late, 0);
		gw_bucket_table_free(t);
	}
}
END_TEST

START_TEST(lagging_clock_refills_nothing_and_counts_from_its_own_now)
{
	struct gw_bucket_table *t = gw_bucket_table_new(1, SEC, 1, 100);

	ck_assert_uint_eq(take(t, "k", 5000), 0);
	/* Another worker's cached clock, behind: the token is due at 6000. */
	ck_assert_uint_eq(take(t, "k", 4000), 2000);
	ck_assert_uint_eq(take(t, "k", 5999), 1);
	ck_assert_uint_eq(take(t, "k", 4500), 1500);
	ck_assert_uint_eq(take(t, "k", 6000), 0);
	/* The interval 4000..6000 was not counted twice. */
	ck_assert_uint_eq(take(t, "k", 6000), 1000);
	ck_assert_uint_eq(take(t, "k", 0), 7000);
	gw_bucket_table_free(t);
}
END_TEST

/* ---- keys -------------------------------------------------------------- */

START_TEST(separate_keys_have_separate_buckets)
{
	struct gw_bucket_table *t = gw_bucket_table_new(10, SEC, 5, 1000);

	ck_assert_uint_eq(drain(t, "10.0.0.1", 0), 5);
	ck_assert_uint_eq(take_n(t, "10.0.0.2", 0, 10), 5);
	ck_assert_uint_eq(take_n(t, "10.0.0.10", 0, 10), 5);
	ck_assert_uint_eq(take_n(t, "10.0.0.1 ", 0, 10), 5);
	ck_assert_uint_eq(take_n(t, "", 0, 10), 5);
	ck_assert_uint_eq(take_n(t, "10.0.0.1", 0, 10), 0);
	ck_assert_uint_eq(take_n(t, "10.0.0.1", 100, 10), 1);
	ck_assert_uint_eq(gw_bucket_table_keys(t), 5);
	gw_bucket_table_free(t);
}
END_TEST

START_TEST(long_and_binary_keys_are_told_apart_by_every_byte)
{
	struct gw_bucket_table *t = gw_bucket_table_new(1, HOUR, 2, 1000);
	size_t len = 64 * 1024;
	char *a = malloc(len), *b = malloc(len);

	memset(a, 'x', len);
	memcpy(b, a, len);
	b[len - 1] = 'y';
	ck_assert_uint_eq(gw_bucket_take(t, a, len, 0), 0);
	ck_assert_uint_eq(gw_bucket_take(t, a, len, 0), 0);
	ck_assert_uint_gt(gw_bucket_take(t, a, len, 0), 0);
	ck_assert_uint_eq(gw_bucket_take(t, b, len, 0), 0);     /* differs in the last byte */
	ck_assert_uint_eq(gw_bucket_take(t, a, len - 1, 0), 0); /* a prefix is another key */
	ck_assert_uint_gt(gw_bucket_take(t, a, len, 0), 0); /* the same bytes: the same bucket */
	b[len - 1] = 'x';
	ck_assert_uint_gt(gw_bucket_take(t, b, len, 0), 0);
	/* NUL is a byte like any other; the empty key is a key. */
	ck_assert_uint_eq(gw_bucket_take(t, "a\0b", 3, 0), 0);
	ck_assert_uint_eq(gw_bucket_take(t, "a\0b", 3, 0), 0);
	ck_assert_uint_eq(gw_bucket_take(t, "a\0c", 3, 0), 0);
	ck_assert_uint_eq(gw_bucket_take(t, "a", 1, 0), 0);
	ck_assert_uint_eq(gw_bucket_take(t, NULL, 0, 0), 0);
	ck_assert_uint_eq(gw_bucket_take(t, "", 0, 0), 0);
	ck_assert_uint_gt(gw_bucket_take(t, NULL, 0, 0), 0);
	ck_assert_uint_eq(gw_bucket_table_keys(t), 7);
	free(a);
	free(b);
	gw_bucket_table_free(t);
}
END_TEST

/* ---- memory ------------------------------------------------------------ */

START_TEST(flood_of_distinct_keys_keeps_keys_and_bytes_bounded)
{
	static const uint32_t sizes[] = {1, 2, 63, 64, 65, 1000, 2049, 100000};

	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		struct gw_bucket_table *t = gw_bucket_table_new(100, SEC, 50, sizes[s]);
		size_t bytes = gw_bucket_table_bytes(t);
		unsigned refused = 0, over = 0;
		char key[32];

		ck_assert_uint_eq(gw_bucket_table_keys(t), 0);
		ck_assert_uint_le(bytes, 4096 + 64 * (size_t)sizes[s]);
		/* Plain counts in the loop: a Check assertion costs a write to its pipe. */
		for (unsigned i = 0; i < 100000; i++) {
			snprintf(key, sizeof(key), "api-key-%u", i);
			refused += take(t, key, i / 100) != 0; /* a new key: a full bucket */
			if (i % 997 == 0 && gw_bucket_table_keys(t) > sizes[s])
				over++;
		}
		ck_assert_uint_eq(refused, 0);
		ck_assert_uint_eq(over, 0);
		/* Full once every shard is: when keys are ten times the room. */
		if (sizes[s] <= 10000)
			ck_assert_uint_eq(gw_bucket_table_keys(t), sizes[s]);
		ck_assert_uint_le(gw_bucket_table_keys(t), sizes[s]);
		ck_assert_uint_eq(gw_bucket_table_bytes(t), bytes);
		gw_bucket_table_free(t);
	}
}
END_TEST

START_TEST(busy_key_stays_limited_under_a_flood)
{
	struct gw_bucket_table *t = gw_bucket_table_new(10, SEC, 10, 1000);
	unsigned victim = 0, n = 0;
	char key[32];

	ck_assert_uint_eq(drain(t, "victim", 0), 10);
	for (uint64_t now = 1; now <= 1000; now++) {
		for (int i = 0; i < 100; i++) {
			snprintf(key, sizeof(key), "flood-%u", n++);
			take(t, key, now);
		}
		victim += take(t, "victim", now) == 0;
	}
	ck_assert_uint_eq(n, 100000);
	ck_assert_uint_eq(victim, 10); /* the refill of one second, no reset */
	gw_bucket_table_free(t);
}
END_TEST

START_TEST(limited_key_keeps_its_bucket_through_a_flood_of_one_shot_keys)
{
	struct gw_bucket_table *t = gw_bucket_table_new(10, SEC, 10, 1000);
	unsigned refused = 0;
	char key[32];

	/* Drained, then not used at all while 100 000 new keys arrive. */
	ck_assert_uint_eq(drain(t, "victim", 0), 10);
	for (unsigned i = 0; i < 100000; i++) {
		snprintf(key, sizeof(key), "flood-%u", i);
		refused += take(t, key, i / 1000) != 0;
	}
	ck_assert_uint_eq(refused, 0);
	ck_assert_uint_le(gw_bucket_table_keys(t), 1000);
	/* 100 ms later: the one token refilled, not a fresh bucket of 10. */
	ck_assert_uint_eq(take_n(t, "victim", 100, 20), 1);
	gw_bucket_table_free(t);
}
END_TEST

START_TEST(eviction_prefers_a_full_bucket_to_an_older_limited_one)
{
	/* Two keys fit (one shard: the whole table is the sample). */
	struct gw_bucket_table *t = gw_bucket_table_new(1, SEC, 2, 2);

	ck_assert_uint_eq(take_n(t, "a", 0, 2), 2); /* a: empty, least recently used */
	ck_assert_uint_eq(take_n(t, "b", 0, 1), 1); /* b: one left, full again at 1000 */
	ck_assert_uint_eq(take(t, "c", 1000), 0);   /* evicts b, which lost nothing */
	ck_assert_uint_eq(gw_bucket_table_keys(t), 2);
	ck_assert_uint_eq(take_n(t, "a", 1000, 5), 1); /* a kept its bucket: 1 token, not 2 */
	gw_bucket_table_free(t);
}
END_TEST

START_TEST(eviction_takes_the_bucket_closest_to_full_then_the_least_recent)
{
	struct gw_bucket_table *t = gw_bucket_table_new(1, HOUR, 10, 3);

	ck_assert_uint_eq(take_n(t, "a", 0, 10), 10); /* 0 left */
	ck_assert_uint_eq(take_n(t, "b", 0, 5), 5);   /* 5 left */
	ck_assert_uint_eq(take_n(t, "c", 0, 8), 8);   /* 2 left */
	ck_assert_uint_eq(take(t, "d", 0), 0);        /* evicts b: 5 tokens forgiven, the fewest */
	ck_assert_uint_eq(take_n(t, "a", 0, 20), 0);
	ck_assert_uint_eq(take_n(t, "c", 0, 20), 2);
	gw_bucket_table_free(t);

	/* Equal credit: the least recently used goes. */
	t = gw_bucket_table_new(1, HOUR, 1, 2);
	ck_assert_uint_eq(take(t, "a", 0), 0);
	ck_assert_uint_eq(take(t, "b", 0), 0);
	ck_assert_uint_eq(take(t, "c", 0), 0); /* evicts a */
	ck_assert_uint_gt(take(t, "b", 0), 0); /* b kept */
	ck_assert_uint_gt(take(t, "c", 0), 0); /* c kept */
	ck_assert_uint_eq(gw_bucket_table_keys(t), 2);
	gw_bucket_table_free(t);
}
END_TEST

START_TEST(degenerate_arguments_are_clamped_not_trusted)
{
	struct gw_bucket_table *t = gw_bucket_table_new(0, 0, 0, 0);

	/* rate 0: the smallest rate, burst 1; per 0: 1 ms; max_keys 0: one key. */
	ck_assert_uint_eq(take(t, "a", 0), 0);
	ck_assert_uint_ge(take(t, "a", 0), 1000000);
	ck_assert_uint_eq(take(t, "b", 0), 0);
	ck_assert_uint_eq(gw_bucket_table_keys(t), 1);
	gw_bucket_table_free(t);

	t = gw_bucket_table_new(NAN, 1, 1, 10);
	ck_assert_uint_eq(take(t, "a", 0), 0);
	ck_assert_uint_ge(take(t, "a", 0), 1);
	gw_bucket_table_free(t);

	/* The config's extremes: 10^9 per ms and 10^8 per hour still count exactly. */
	t = gw_bucket_table_new(1e9, 1, 100000000, 10);
	ck_assert_uint_eq(take_n(t, "a", 0, 1000), 1000);
	gw_bucket_table_free(t);
	t = gw_bucket_table_new(1e9, HOUR, 100000000, 10);
	ck_assert_uint_eq(take_n(t, "a", 0, 1000), 1000);
	gw_bucket_table_free(t);
	t = gw_bucket_table_new(100000, HOUR, 1, 10); /* 36 ms per token */
	ck_assert_uint_eq(take(t, "a", 0), 0);
	ck_assert_uint_eq(take(t, "a", 0), 36);
	ck_assert_uint_eq(take(t, "a", 35), 1);
	ck_assert_uint_eq(take_n(t, "a", 36, 5), 1);
	gw_bucket_table_free(t);
	gw_bucket_table_free(NULL);
}
END_TEST

/* ---- threads ----------------------------------------------------------- */

struct hammer {
	struct gw_bucket_table *t;
	const char *key;
	unsigned id;
	bool advance;   /* each thread walks its own clock 0..999 ms */
	bool flood;     /* and sends a new key of its own before each take */
	unsigned takes; /* per ms with advance, in all without */
	unsigned got;
	pthread_barrier_t *start;
};

static void *hammer_run(void *arg)
{
	struct hammer *h = arg;
	char key[32];
	unsigned n = 0;

	pthread_barrier_wait(h->start);
	for (uint64_t now = 0; now < (h->advance ? 1000 : 1); now++) {
		for (unsigned i = 0; i < h->takes; i++) {
			if (h->flood) {
				snprintf(key, sizeof(key), "t%u-%u", h->id, n++);
				take(h->t, key, now);
			}
			h->got += take(h->t, h->key, now) == 0;
		}
	}
	return NULL;
}

static unsigned hammer(struct gw_bucket_table *t, bool advance, bool flood, unsigned takes)
{
	pthread_t th[4];
	struct hammer h[4];
	pthread_barrier_t start;
	unsigned total = 0;

	pthread_barrier_init(&start, NULL, 4);
	for (unsigned i = 0; i < 4; i++) {
		h[i] = (struct hammer){.t = t,
		                       .key = "shared",
		                       .id = i,
		                       .advance = advance,
		                       .flood = flood,
		                       .takes = takes,
		                       .start = &start};
		ck_assert_int_eq(pthread_create(&th[i], NULL, hammer_run, &h[i]), 0);
	}
	for (unsigned i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		total += h[i].got;
	}
	pthread_barrier_destroy(&start);
	return total;
}

START_TEST(concurrent_takes_grant_exactly_the_tokens_available)
{
	for (int round = 0; round < 20; round++) {
		struct gw_bucket_table *t = gw_bucket_table_new(1, HOUR, 1000, 1000);

		ck_assert_uint_eq(hammer(t, false, false, 5000), 1000);
		ck_assert_uint_gt(take(t, "shared", 0), 0);
		gw_bucket_table_free(t);
	}
}
END_TEST

START_TEST(concurrent_takes_on_skewed_clocks_lose_and_double_no_token)
{
	for (int round = 0; round < 5; round++) {
		struct gw_bucket_table *t = gw_bucket_table_new(1000, SEC, 100, 1000);
		unsigned got = hammer(t, true, false, 3);

		/* 100 at start, one per ms from 0 to 999, whoever's clock ran ahead. */
		ck_assert_uint_eq(got + drain(t, "shared", 999), 100 + 999);
		gw_bucket_table_free(t);
	}
}
END_TEST

START_TEST(concurrent_flood_keeps_the_table_bounded_and_the_shared_key_exact)
{
	struct gw_bucket_table *t = gw_bucket_table_new(1000, SEC, 100, 500);
	size_t bytes = gw_bucket_table_bytes(t);
	unsigned got = hammer(t, true, true, 10); /* 40 000 distinct keys besides */

	ck_assert_uint_le(gw_bucket_table_keys(t), 500);
	ck_assert_uint_eq(gw_bucket_table_bytes(t), bytes);
	ck_assert_uint_eq(got + drain(t, "shared", 999), 100 + 999);
	gw_bucket_table_free(t);
}
END_TEST

/* ---- suite ------------------------------------------------------------- */

static Suite *bucket_table_suite(void)
{
	Suite *s = suite_create("bucket_table");

	gw_test_add_case(s, "bucket_starts_full_then_refills_at_the_rate_up_to_burst",
	                 bucket_starts_full_then_refills_at_the_rate_up_to_burst, 60);
	gw_test_add_case(s, "burst_zero_means_rate_rounded_up", burst_zero_means_rate_rounded_up,
	                 60);
	gw_test_add_case(s, "steady_state_admits_exactly_rate_per_period",
	                 steady_state_admits_exactly_rate_per_period, 60);
	gw_test_add_case(s, "several_tokens_per_ms_are_admitted_without_rounding_loss",
	                 several_tokens_per_ms_are_admitted_without_rounding_loss, 60);
	gw_test_add_case(s, "refusal_says_time_until_next_token",
	                 refusal_says_time_until_next_token, 60);
	gw_test_add_case(s, "refusal_waits_at_least_one_ms_even_below_a_ms_per_token",
	                 refusal_waits_at_least_one_ms_even_below_a_ms_per_token, 60);
	gw_test_add_case(s, "retry_after_is_neither_early_nor_late",
	                 retry_after_is_neither_early_nor_late, 60);
	gw_test_add_case(s, "lagging_clock_refills_nothing_and_counts_from_its_own_now",
	                 lagging_clock_refills_nothing_and_counts_from_its_own_now, 60);
	gw_test_add_case(s, "separate_keys_have_separate_buckets",
	                 separate_keys_have_separate_buckets, 60);
	gw_test_add_case(s, "long_and_binary_keys_are_told_apart_by_every_byte",
	                 long_and_binary_keys_are_told_apart_by_every_byte, 60);
	gw_test_add_case(s, "flood_of_distinct_keys_keeps_keys_and_bytes_bounded",
	                 flood_of_distinct_keys_keeps_keys_and_bytes_bounded, 60);
	gw_test_add_case(s, "busy_key_stays_limited_under_a_flood",
	                 busy_key_stays_limited_under_a_flood, 60);
	gw_test_add_case(s, "limited_key_keeps_its_bucket_through_a_flood_of_one_shot_keys",
	                 limited_key_keeps_its_bucket_through_a_flood_of_one_shot_keys, 60);
	gw_test_add_case(s, "eviction_prefers_a_full_bucket_to_an_older_limited_one",
	                 eviction_prefers_a_full_bucket_to_an_older_limited_one, 60);
	gw_test_add_case(s, "eviction_takes_the_bucket_closest_to_full_then_the_least_recent",
	                 eviction_takes_the_bucket_closest_to_full_then_the_least_recent, 60);
	gw_test_add_case(s, "degenerate_arguments_are_clamped_not_trusted",
	                 degenerate_arguments_are_clamped_not_trusted, 60);
	gw_test_add_case(s, "concurrent_takes_grant_exactly_the_tokens_available",
	                 concurrent_takes_grant_exactly_the_tokens_available, 60);
	gw_test_add_case(s, "concurrent_takes_on_skewed_clocks_lose_and_double_no_token",
	                 concurrent_takes_on_skewed_clocks_lose_and_double_no_token, 60);
	gw_test_add_case(s, "concurrent_flood_keeps_the_table_bounded_and_the_shared_key_exact",
	                 concurrent_flood_keeps_the_table_bounded_and_the_shared_key_exact, 60);
	return s;
}

int main(void)
{
	return gw_test_run_suite(bucket_table_suite(), CK_FORK);
}
