/*
 * Balancers: smooth weighted round robin, least request and weighted random
 * over hand-built upstream pools (no config loader involved).
 */
#include <check.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/upstream/balancer.h"
#include "check_suite.h"

#define GW_TEST_MAX_SERVERS 8

/* Ownership: the pool owns nothing on the heap; server addresses are literals. */
struct gw_test_pool {
	struct gw_upstream_conf upstream;
	struct gw_server_conf servers[GW_TEST_MAX_SERVERS];
	bool usable[GW_TEST_MAX_SERVERS];
	uint32_t inflight[GW_TEST_MAX_SERVERS];
	uint16_t share[GW_TEST_MAX_SERVERS]; /* slow start; 1000: full */
};

static void gw_test_pool_init(struct gw_test_pool *p, enum gw_balance balance,
                              const uint32_t *weights, size_t n)
{
	size_t i;

	ck_assert_uint_le(n, GW_TEST_MAX_SERVERS);
	memset(p, 0, sizeof(*p));
	p->upstream.name = "pool";
	p->upstream.servers = p->servers;
	p->upstream.nservers = n;
	p->upstream.balance = balance;
	for (i = 0; i < n; i++) {
		p->servers[i].address = "127.0.0.1:9000";
		p->servers[i].weight = weights[i];
		p->usable[i] = true;
		p->share[i] = 1000;
	}
}

static int gw_test_pick(struct gw_balancer *b, struct gw_test_pool *p)
{
	return gw_balancer_pick(b, p->usable, p->inflight, p->share);
}

/* Picks n times and counts the servers chosen; fails on -1. */
static void gw_test_count(struct gw_balancer *b, struct gw_test_pool *p, int n, int *counts)
{
	int i, s;

	for (i = 0; i < n; i++) {
		s = gw_test_pick(b, p);
		ck_assert_int_ge(s, 0);
		ck_assert_int_lt(s, (int)p->upstream.nservers);
		counts[s]++;
	}
}

START_TEST(test_round_robin_equal_weights_exactly_even)
{
	static const uint32_t w[] = {1, 1, 1};
	struct gw_test_pool p;
	struct gw_balancer *b;
	int counts[3] = {0}, i;

	gw_test_pool_init(&p, GW_BALANCE_ROUND_ROBIN, w, 3);
	b = gw_balancer_new(&p.upstream, 1);
	gw_test_count(b, &p, 3000, counts);
	ck_assert_int_eq(counts[0], 1000);
	ck_assert_int_eq(counts[1], 1000);
	ck_assert_int_eq(counts[2], 1000);
	/* and in strict rotation */
	for (i = 0; i < 9; i++)
		ck_assert_int_eq(gw_test_pick(b, &p), i % 3);
	gw_balancer_free(b);
}
END_TEST

START_TEST(test_round_robin_weights_5_1_1_smooth_sequence)
{
	static const uint32_t w[] = {5, 1, 1};
	static const int expect[] = {0, 0, 1, 0, 2, 0, 0}; /* a a b a c a a */
	struct gw_test_pool p;
	struct gw_balancer *b;
	int round, i;

	gw_test_pool_init(&p, GW_BALANCE_ROUND_ROBIN, w, 3);
	b = gw_balancer_new(&p.upstream, 1);
	/* the sequence repeats every sum(weights) picks */
	for (round = 0; round < 3; round++) {
		for (i = 0; i < 7; i++)
			ck_assert_int_eq(gw_test_pick(b, &p), expect[i]);
	}
	gw_balancer_free(b);
}
END_TEST

START_TEST(test_round_robin_weights_5_1_1_exact_proportions)
{
	static const uint32_t w[] = {5, 1, 1};
	struct gw_test_pool p;
	struct gw_balancer *b;
	int counts[3] = {0}, i, run = 0, s, last = -1;

	gw_test_pool_init(&p, GW_BALANCE_ROUND_ROBIN, w, 3);
	b = gw_balancer_new(&p.upstream, 1);
	gw_test_count(b, &p, 7000, counts);
	ck_assert_int_eq(counts[0], 5000);
	ck_assert_int_eq(counts[1], 1000);
	ck_assert_int_eq(counts[2], 1000);
	/* never a burst of five: at most 4 in a row, across a cycle's end (.. a a | a a b ..) */
	for (i = 0; i < 700; i++) {
		s = gw_test_pick(b, &p);
		run = s == last ? run + 1 : 1;
		last = s;
		ck_assert_int_le(run, 4);
	}
	gw_balancer_free(b);
}
END_TEST

START_TEST(test_round_robin_skips_unusable_and_redistributes)
{
	static const uint32_t w[] = {1, 1, 1};
	static const uint32_t w2[] = {2, 1, 1};
	struct gw_test_pool p;
	struct gw_balancer *b;
	int counts[3] = {0};

	gw_test_pool_init(&p, GW_BALANCE_ROUND_ROBIN, w, 3);
	b = gw_balancer_new(&p.upstream, 1);
	p.usable[1] = false;
	gw_test_count(b, &p, 3000, counts);
	ck_assert_int_eq(counts[1], 0);
	ck_assert_int_eq(counts[0], 1500);
	ck_assert_int_eq(counts[2], 1500);
	/* back in the pool: it gets its share again */
	p.usable[1] = true;
	memset(counts, 0, sizeof(counts));
	gw_test_count(b, &p, 3000, counts);
	ck_assert_int_ge(counts[1], 999);
	ck_assert_int_le(counts[1], 1001);
	gw_balancer_free(b);

	/* weighted: the heavy server down, the rest share evenly */
	gw_test_pool_init(&p, GW_BALANCE_ROUND_ROBIN, w2, 3);
	b = gw_balancer_new(&p.upstream, 1);
	p.usable[0] = false;
	memset(counts, 0, sizeof(counts));
	gw_test_count(b, &p, 1000, counts);
	ck_assert_int_eq(counts[0], 0);
	ck_assert_int_eq(counts[1], 500);
	ck_assert_int_eq(counts[2], 500);
	gw_balancer_free(b);
}
END_TEST

START_TEST(test_none_usable_returns_minus_one)
{
	static const uint32_t w[] = {1, 2, 3};
	static const enum gw_balance algos[] = {GW_BALANCE_ROUND_ROBIN, GW_BALANCE_LEAST_REQUEST,
	                                        GW_BALANCE_RANDOM};
	struct gw_test_pool p;
	struct gw_balancer *b;
	size_t a;
	int i;

	for (a = 0; a < 3; a++) {
		gw_test_pool_init(&p, algos[a], w, 3);
		memset(p.usable, 0, sizeof(p.usable));
		b = gw_balancer_new(&p.upstream, 7);
		for (i = 0; i < 10; i++)
			ck_assert_int_eq(gw_test_pick(b, &p), -1);
		/* and recovers when a server comes back */
		p.usable[2] = true;
		ck_assert_int_eq(gw_test_pick(b, &p), 2);
		gw_balancer_free(b);
	}
}
END_TEST

START_TEST(test_least_request_picks_least_loaded)
{
	static const uint32_t w[] = {1, 1, 1};
	struct gw_test_pool p;
	struct gw_balancer *b;
	int i;

	gw_test_pool_init(&p, GW_BALANCE_LEAST_REQUEST, w, 3);
	b = gw_balancer_new(&p.upstream, 1);
	p.inflight[0] = 5;
	p.inflight[1] = 2;
	p.inflight[2] = 9;
	for (i = 0; i < 10; i++)
		ck_assert_int_eq(gw_test_pick(b, &p), 1);
	/* the least loaded but unusable one is skipped */
	p.usable[1] = false;
	ck_assert_int_eq(gw_test_pick(b, &p), 0);
	/* picks that feed inflight back keep the pool level */
	p.usable[1] = true;
	memset(p.inflight, 0, sizeof(p.inflight));
	p.inflight[0] = 10;
	for (i = 0; i < 20; i++)
		p.inflight[gw_test_pick(b, &p)]++;
	ck_assert_uint_eq(p.inflight[0], 10);
	ck_assert_uint_eq(p.inflight[1], 10);
	ck_assert_uint_eq(p.inflight[2], 10);
	gw_balancer_free(b);
}
END_TEST

START_TEST(test_least_request_respects_weights)
{
	static const uint32_t w[] = {4, 1};
	struct gw_test_pool p;
	struct gw_balancer *b;
	int i, s;

	gw_test_pool_init(&p, GW_BALANCE_LEAST_REQUEST, w, 2);
	b = gw_balancer_new(&p.upstream, 1);
	/* 3/4 < 1/1: the heavier server is less loaded relative to its weight */
	p.inflight[0] = 3;
	p.inflight[1] = 1;
	ck_assert_int_eq(gw_test_pick(b, &p), 0);
	/* 5/4 > 1/1 */
	p.inflight[0] = 5;
	ck_assert_int_eq(gw_test_pick(b, &p), 1);
	/* fed back, in-flight settles at the 4:1 ratio */
	memset(p.inflight, 0, sizeof(p.inflight));
	for (i = 0; i < 50; i++) {
		s = gw_test_pick(b, &p);
		p.inflight[s]++;
	}
	ck_assert_uint_eq(p.inflight[0], 40);
	ck_assert_uint_eq(p.inflight[1], 10);
	gw_balancer_free(b);
}
END_TEST

START_TEST(test_least_request_ties_rotate)
{
	static const uint32_t w[] = {1, 1, 1, 1};
	struct gw_test_pool p;
	struct gw_balancer *b;
	int counts[4] = {0}, i, s, last = -1;

	gw_test_pool_init(&p, GW_BALANCE_LEAST_REQUEST, w, 4);
	b = gw_balancer_new(&p.upstream, 1);
	/* an idle pool: every pick is a tie, load still spreads evenly */
	for (i = 0; i < 400; i++) {
		s = gw_test_pick(b, &p);
		ck_assert_int_ne(s, last);
		last = s;
		counts[s]++;
	}
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(counts[i], 100);
	/* ties among a subset: server 1 busy, the other three take turns */
	p.inflight[1] = 3;
	memset(counts, 0, sizeof(counts));
	gw_test_count(b, &p, 300, counts);
	ck_assert_int_eq(counts[1], 0);
	ck_assert_int_eq(counts[0], 100);
	ck_assert_int_eq(counts[2], 100);
	ck_assert_int_eq(counts[3], 100);
	gw_balancer_free(b);
}
END_TEST

START_TEST(test_least_request_idle_ties_follow_weights)
{
	static const uint32_t w[] = {5, 1, 1};
	struct gw_test_pool p;
	struct gw_balancer *b;
	int counts[3] = {0};

	gw_test_pool_init(&p, GW_BALANCE_LEAST_REQUEST, w, 3);
	b = gw_balancer_new(&p.upstream, 1);
	gw_test_count(b, &p, 700, counts);
	ck_assert_int_eq(counts[0], 500);
	ck_assert_int_eq(counts[1], 100);
	ck_assert_int_eq(counts[2], 100);
	gw_balancer_free(b);
}
END_TEST

START_TEST(test_random_weights_3_1_about_75_percent)
{
	static const uint32_t w[] = {3, 1};
	struct gw_test_pool p;
	struct gw_balancer *b;
	int counts[2] = {0};
	uint64_t seed;

	for (seed = 1; seed <= 5; seed++) {
		gw_test_pool_init(&p, GW_BALANCE_RANDOM, w, 2);
		b = gw_balancer_new(&p.upstream, seed * 0x1234567);
		counts[0] = counts[1] = 0;
		gw_test_count(b, &p, 20000, counts);
		ck_assert_int_ge(counts[0], 14400); /* 72% */
		ck_assert_int_le(counts[0], 15600); /* 78% */
		gw_balancer_free(b);
	}
}
END_TEST

START_TEST(test_random_never_picks_unusable)
{
	static const uint32_t w[] = {1, 5, 1, 1};
	struct gw_test_pool p;
	struct gw_balancer *b;
	int counts[4] = {0};

	gw_test_pool_init(&p, GW_BALANCE_RANDOM, w, 4);
	b = gw_balancer_new(&p.upstream, 42);
	p.usable[1] = false;
	p.usable[3] = false;
	gw_test_count(b, &p, 20000, counts);
	ck_assert_int_eq(counts[1], 0);
	ck_assert_int_eq(counts[3], 0);
	ck_assert_int_ge(counts[0], 9400);
	ck_assert_int_ge(counts[2], 9400);
	gw_balancer_free(b);
}
END_TEST

START_TEST(test_random_same_seed_same_sequence)
{
	static const uint32_t w[] = {1, 1, 1, 1};
	struct gw_test_pool p;
	struct gw_balancer *a, *b, *c;
	int i, differ = 0;

	gw_test_pool_init(&p, GW_BALANCE_RANDOM, w, 4);
	a = gw_balancer_new(&p.upstream, 99);
	b = gw_balancer_new(&p.upstream, 99);
	c = gw_balancer_new(&p.upstream, 100);
	for (i = 0; i < 100; i++) {
		int x = gw_test_pick(a, &p);

		ck_assert_int_eq(x, gw_test_pick(b, &p));
		differ += x != gw_test_pick(c, &p);
	}
	ck_assert_int_gt(differ, 0);
	gw_balancer_free(a);
	gw_balancer_free(b);
	gw_balancer_free(c);
}
END_TEST

START_TEST(test_single_server_pool)
{
	static const uint32_t w[] = {3};
	static const enum gw_balance algos[] = {GW_BALANCE_ROUND_ROBIN, GW_BALANCE_LEAST_REQUEST,
	                                        GW_BALANCE_RANDOM};
	struct gw_test_pool p;
	struct gw_balancer *b;
	size_t a;
	int i;

	for (a = 0; a < 3; a++) {
		gw_test_pool_init(&p, algos[a], w, 1);
		b = gw_balancer_new(&p.upstream, 5);
		for (i = 0; i < 100; i++) {
			p.inflight[0] = (uint32_t)i;
			ck_assert_int_eq(gw_test_pick(b, &p), 0);
		}
		p.usable[0] = false;
		ck_assert_int_eq(gw_test_pick(b, &p), -1);
		p.usable[0] = true;
		ck_assert_int_eq(gw_test_pick(b, &p), 0);
		gw_balancer_free(b);
	}
}
END_TEST

START_TEST(test_null_usable_and_inflight_mean_all_usable_and_idle)
{
	static const uint32_t w[] = {1, 1};
	struct gw_test_pool p;
	struct gw_balancer *b;
	int i;

	gw_test_pool_init(&p, GW_BALANCE_LEAST_REQUEST, w, 2);
	b = gw_balancer_new(&p.upstream, 1);
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(gw_balancer_pick(b, NULL, NULL, NULL), i % 2);
	gw_balancer_free(b);
}
END_TEST

/* ---- slow start: a share below 1000 scales a server's weight ------------ */

START_TEST(test_share_round_robin_scales_weight_exactly_and_smoothly)
{
	static const uint32_t w[] = {1, 1, 1};
	struct gw_test_pool p;
	struct gw_balancer *b;
	int counts[3] = {0}, i, s, gap = 0, min_gap = 1000, seen = 0;

	gw_test_pool_init(&p, GW_BALANCE_ROUND_ROBIN, w, 3);
	b = gw_balancer_new(&p.upstream, 1);
	p.share[0] = 100; /* just back: 10% of its weight */
	gw_test_count(b, &p, 2100, counts);
	ck_assert_int_eq(counts[0], 100);
	ck_assert_int_eq(counts[1], 1000);
	ck_assert_int_eq(counts[2], 1000);
	/* spread out, not in a burst: about one pick in 21 */
	for (i = 0; i < 2100; i++) {
		s = gw_test_pick(b, &p);
		gap++;
		if (s == 0) {
			if (seen++)
				min_gap = gap < min_gap ? gap : min_gap;
			gap = 0;
		}
	}
	ck_assert_int_eq(seen, 100);
	ck_assert_int_ge(min_gap, 20);
	/* weight 3 at 50%: as much as weight 1.5 */
	p.servers[1].weight = 3;
	p.share[0] = 1000;
	p.share[1] = 500;
	memset(counts, 0, sizeof(counts));
	gw_test_count(b, &p, 3500, counts);
	ck_assert_int_eq(counts[1], 1500);
	ck_assert_int_eq(counts[0], 1000);
	ck_assert_int_eq(counts[2], 1000);
	gw_balancer_free(b);
}
END_TEST

START_TEST(test_share_full_or_null_picks_as_plain_weights)
{
	static const uint32_t w[] = {5, 1, 2};
	static const enum gw_balance algos[] = {GW_BALANCE_ROUND_ROBIN, GW_BALANCE_LEAST_REQUEST,
	                                        GW_BALANCE_RANDOM};
	struct gw_test_pool p;
	struct gw_balancer *a, *b;
	size_t k;
	int i;

	for (k = 0; k < 3; k++) {
		gw_test_pool_init(&p, algos[k], w, 3);
		a = gw_balancer_new(&p.upstream, 77);
		b = gw_balancer_new(&p.upstream, 77);
		for (i = 0; i < 500; i++) {
			p.inflight[i % 3] = (uint32_t)(i % 7);
			ck_assert_int_eq(gw_balancer_pick(a, p.usable, p.inflight, NULL),
			                 gw_balancer_pick(b, p.usable, p.inflight, p.share));
		}
		gw_balancer_free(a);
		gw_balancer_free(b);
	}
}
END_TEST

START_TEST(test_share_least_request_idle_and_loaded)
{
	static const uint32_t w[] = {1, 1, 1};
	struct gw_test_pool p;
	struct gw_balancer *b;
	int counts[3] = {0}, i, s;

	gw_test_pool_init(&p, GW_BALANCE_LEAST_REQUEST, w, 3);
	b = gw_balancer_new(&p.upstream, 1);
	p.share[2] = 250;
	/* idle pool: it joins the rotation in about a quarter of the picks
	 * (round robin would give it 250 / 2250 = 11%) */
	gw_test_count(b, &p, 9000, counts);
	ck_assert_int_ge(counts[2], 450);
	ck_assert_int_le(counts[2], 1100);
	ck_assert_int_ge(counts[0], 3900);
	ck_assert_int_ge(counts[1], 3900);
	/* loaded: in flight relative to weight x share, 1 at 25% weighs as 4 */
	p.inflight[0] = 3;
	p.inflight[1] = 3;
	p.inflight[2] = 1;
	for (i = 0; i < 200; i++)
		ck_assert_int_ne(gw_test_pick(b, &p), 2);
	/* 5, 5 and 1 (as 4): it is the least loaded, when drawn (1 pick in 4) */
	p.inflight[0] = 5;
	p.inflight[1] = 5;
	memset(counts, 0, sizeof(counts));
	gw_test_count(b, &p, 1000, counts);
	ck_assert_int_ge(counts[2], 180);
	ck_assert_int_le(counts[2], 320);
	/* fed back from empty, in flight settles near 4:4:1 */
	memset(p.inflight, 0, sizeof(p.inflight));
	for (i = 0; i < 900; i++) {
		s = gw_test_pick(b, &p);
		p.inflight[s]++;
	}
	ck_assert_uint_ge(p.inflight[2], 90);
	ck_assert_uint_le(p.inflight[2], 110);
	gw_balancer_free(b);
}
END_TEST

/*
 * least_request under moderate load: three equal servers, one in slow start
 * at share 100, Poisson arrivals with 2 requests in flight in the pool on
 * average, each lasting one time unit. Weighing the in-flight count alone
 * gave the returning server about 22% of the picks (it has nothing in
 * flight more often than not); it must stay near what round robin gives it,
 * 100 / 2100 = 4.8%, and the other two must share the rest evenly.
 */
static uint64_t gw_test_rng = 0x5eed;

static double gw_test_uniform(void)
{
	uint64_t z = (gw_test_rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	return ((double)(z >> 11) + 0.5) / 9007199254740992.0; /* (0, 1) */
}

START_TEST(test_share_least_request_under_moderate_load)
{
	static const uint32_t w[] = {1, 1, 1};
	enum { PICKS = 60000, MAXQ = 256 };
	static const double load[] = {0.5, 1.0, 2.0, 3.0, 6.0};
	struct gw_test_pool p;
	struct gw_balancer *b;
	double ends[MAXQ], t;
	int who[MAXQ], nq, counts[3], i, k, l, s;

	for (l = 0; l < 5; l++) {
		gw_test_pool_init(&p, GW_BALANCE_LEAST_REQUEST, w, 3);
		p.share[0] = 100;
		b = gw_balancer_new(&p.upstream, 11);
		t = 0;
		nq = 0;
		counts[0] = counts[1] = counts[2] = 0;
		for (i = 0; i < PICKS; i++) {
			/* exponential gaps, so load[l] in flight on average */
			t += -log(gw_test_uniform()) / load[l];
			for (k = 0; k < nq;) {
				if (ends[k] <= t) {
					p.inflight[who[k]]--;
					ends[k] = ends[nq - 1];
					who[k] = who[--nq];
				} else {
					k++;
				}
			}
			s = gw_test_pick(b, &p);
			ck_assert_int_ge(s, 0);
			ck_assert_int_lt(nq, MAXQ);
			counts[s]++;
			p.inflight[s]++;
			ends[nq] = t + 1.0;
			who[nq++] = s;
		}
		ck_assert_msg(counts[0] >= PICKS * 2 / 100 && counts[0] <= PICKS * 8 / 100,
		              "load %.1f: the server at share 100 got %d of %d picks", load[l],
		              counts[0], PICKS);
		ck_assert_int_ge(counts[1], PICKS * 44 / 100);
		ck_assert_int_ge(counts[2], PICKS * 44 / 100);
		gw_balancer_free(b);
	}
}
END_TEST

START_TEST(test_share_random_about_its_part)
{
	static const uint32_t w[] = {1, 1};
	struct gw_test_pool p;
	struct gw_balancer *b;
	int counts[2] = {0};

	gw_test_pool_init(&p, GW_BALANCE_RANDOM, w, 2);
	b = gw_balancer_new(&p.upstream, 0xabcdef);
	p.share[0] = 100; /* 100 / 1100: about 9.1% */
	gw_test_count(b, &p, 20000, counts);
	ck_assert_int_ge(counts[0], 1500);
	ck_assert_int_le(counts[0], 2140);
	gw_balancer_free(b);
}
END_TEST

START_TEST(test_share_out_of_range_is_clamped_and_never_excludes)
{
	static const uint32_t w[] = {1, 1};
	static const enum gw_balance algos[] = {GW_BALANCE_ROUND_ROBIN, GW_BALANCE_LEAST_REQUEST,
	                                        GW_BALANCE_RANDOM};
	struct gw_test_pool p;
	struct gw_balancer *b;
	size_t k;
	int counts[2];

	for (k = 0; k < 3; k++) {
		gw_test_pool_init(&p, algos[k], w, 2);
		b = gw_balancer_new(&p.upstream, 3);
		/* share 0 counts as 1 (0.1%), over 1000 as 1000 */
		p.share[0] = 0;
		p.share[1] = 60000;
		counts[0] = counts[1] = 0;
		gw_test_count(b, &p, 10010, counts);
		ck_assert_int_ge(counts[0], 1);
		ck_assert_int_le(counts[0], 40);
		/* alone in its pool, a server in slow start takes everything */
		p.usable[1] = false;
		ck_assert_int_eq(gw_test_pick(b, &p), 0);
		gw_balancer_free(b);
	}
}
END_TEST

#define GW_TCASE(s, fn) gw_test_add_case(s, #fn, fn, GW_TEST_DEFAULT_TIMEOUT)

static Suite *gw_balancer_suite(void)
{
	Suite *s = suite_create("balancer");

	GW_TCASE(s, test_round_robin_equal_weights_exactly_even);
	GW_TCASE(s, test_round_robin_weights_5_1_1_smooth_sequence);
	GW_TCASE(s, test_round_robin_weights_5_1_1_exact_proportions);
	GW_TCASE(s, test_round_robin_skips_unusable_and_redistributes);
	GW_TCASE(s, test_none_usable_returns_minus_one);
	GW_TCASE(s, test_least_request_picks_least_loaded);
	GW_TCASE(s, test_least_request_respects_weights);
	GW_TCASE(s, test_least_request_ties_rotate);
	GW_TCASE(s, test_least_request_idle_ties_follow_weights);
	GW_TCASE(s, test_random_weights_3_1_about_75_percent);
	GW_TCASE(s, test_random_never_picks_unusable);
	GW_TCASE(s, test_random_same_seed_same_sequence);
	GW_TCASE(s, test_single_server_pool);
	GW_TCASE(s, test_null_usable_and_inflight_mean_all_usable_and_idle);
	GW_TCASE(s, test_share_round_robin_scales_weight_exactly_and_smoothly);
	GW_TCASE(s, test_share_full_or_null_picks_as_plain_weights);
	GW_TCASE(s, test_share_least_request_idle_and_loaded);
	/* 300 000 picks: seconds under a sanitizer on a busy machine */
	gw_test_add_case(s, "test_share_least_request_under_moderate_load",
	                 test_share_least_request_under_moderate_load, 60);
	GW_TCASE(s, test_share_random_about_its_part);
	GW_TCASE(s, test_share_out_of_range_is_clamped_and_never_excludes);
	return s;
}

int main(void)
{
	return gw_test_run_suite(gw_balancer_suite(), CK_FORK);
}
