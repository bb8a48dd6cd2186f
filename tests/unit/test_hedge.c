/*
 * Hedged requests (modules/retry/hedge.h, retry_module.c): the `auto`
 * latency tracker (gw_latency_add / gw_latency_p95_us) on a fake clock,
 * the `hedge` keys through the real loader (values, defaults and every
 * error with its FILE:LINE:COL), and the retry module's hedge decisions
 * (delay set at admission, method rules, `max`, the shared retry budget)
 * called directly with a transaction that has no connection at all.
 * Nothing sleeps: time is an argument.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "gateway/config/config.h"
#include "gateway/pipeline.h"
#include "gateway/txn.h"
#include "gateway/util/errlist.h"
#include "gateway/worker.h"
#include "modules/module.h"
#include "modules/retry/hedge.h"
#include "modules/retry/retry.h"
#include "check_suite.h"

/* A clock far from 0: epoch 0 is the tracker's "never computed" value. */
#define T0     1000000ull
#define PERIOD GW_HEDGE_LATENCY_DECAY_MS

/* ---- helpers: the tracker ---------------------------------------------- */

static struct gw_latency *latency_new(void)
{
	return calloc(1, sizeof(struct gw_latency));
}

static void add_n(struct gw_latency *l, unsigned n, uint64_t us)
{
	for (unsigned i = 0; i < n; i++)
		gw_latency_add(l, us);
}

static uint64_t total_count(struct gw_latency *l)
{
	uint64_t n = 0;

	for (unsigned b = 0; b < GW_HEDGE_LATENCY_BUCKETS; b++)
		n += atomic_load(&l->count[b]);
	return n;
}

/* Within one bucket of the true p95 v: at least v, at most a quarter doubling above. */
static void assert_p95_near(uint64_t got, uint64_t v, const char *what)
{
	ck_assert_msg(got >= v && got <= v + v / 4 + 1,
	              "%s: p95 %llu us, expected the top of the bucket holding %llu us "
	              "(in [%llu, %llu])",
	              what, (unsigned long long)got, (unsigned long long)v, (unsigned long long)v,
	              (unsigned long long)(v + v / 4 + 1));
}

/* ---- the tracker: minimum samples --------------------------------------- */

START_TEST(latency_no_value_before_min_samples)
{
	struct gw_latency *a = latency_new(), *b = latency_new(), *empty = latency_new();

	ck_assert_uint_eq(gw_latency_p95_us(empty, T0), 0);
	ck_assert_uint_eq(gw_latency_p95_us(empty, T0 + PERIOD), 0);

	add_n(a, GW_HEDGE_AUTO_MIN_SAMPLES - 1, 30000);
	ck_assert_uint_eq(gw_latency_p95_us(a, T0), 0);

	add_n(b, GW_HEDGE_AUTO_MIN_SAMPLES, 30000);
	assert_p95_near(gw_latency_p95_us(b, T0), 30000, "exactly the minimum of samples");
	free(a);
	free(b);
	free(empty);
}
END_TEST

/* ---- the tracker: p95 of known distributions ---------------------------- */

START_TEST(latency_p95_of_a_known_distribution)
{
	struct gw_latency *l = latency_new();
	uint64_t got;

	/* 1000 samples: 1 ms .. 1000 ms in 1 ms steps. The 950th is 950 ms. */
	for (unsigned i = 1; i <= 1000; i++)
		gw_latency_add(l, (uint64_t)i * 1000);
	got = gw_latency_p95_us(l, T0);
	/* the bucket of 950 ms is [917.5 ms, 1048.6 ms): the p95 is its top, or
	 * at worst the next bucket's when 95 % falls on an edge */
	ck_assert_msg(got >= 950000 && got <= 950000 * 5 / 4, "p95 %llu us for 1..1000 ms",
	              (unsigned long long)got);
	free(l);

	/* 94 fast and 6 slow: the p95 is the slow value's bucket. */
	l = latency_new();
	add_n(l, 94, 2000);
	add_n(l, 6, 400000);
	assert_p95_near(gw_latency_p95_us(l, T0), 400000, "94 x 2 ms + 6 x 400 ms");
	free(l);

	/* 96 fast and 4 slow: under 5 % slow, the fast bucket's top. */
	l = latency_new();
	add_n(l, 96, 2000);
	add_n(l, 4, 400000);
	assert_p95_near(gw_latency_p95_us(l, T0), 2000, "96 x 2 ms + 4 x 400 ms");
	free(l);

	/* One value, several magnitudes: always the top of its own bucket. */
	static const uint64_t values[] = {400, 1000, 1234, 5000, 9999, 50000, 123456, 2000000};

	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		char what[64];

		l = latency_new();
		add_n(l, 40, values[i]);
		snprintf(what, sizeof(what), "40 x %llu us", (unsigned long long)values[i]);
		assert_p95_near(gw_latency_p95_us(l, T0), values[i], what);
		free(l);
	}
}
END_TEST

/* ---- the tracker: bucket edges ----------------------------------------- */

START_TEST(latency_bucket_edges_zero_and_huge)
{
	struct gw_latency *l = latency_new();
	/* the last bucket: 100 us x 2^19 x 2, about 105 s */
	const uint64_t last_top = 100ull * (1ull << 19) * 2;
	uint64_t got;

	/* 0 us: the first bucket, a small non-zero p95 (0 means "unknown") */
	add_n(l, 30, 0);
	ck_assert_uint_eq(atomic_load(&l->count[0]), 30);
	got = gw_latency_p95_us(l, T0);
	ck_assert_msg(got > 0 && got <= 200, "p95 %llu us for 0 us samples",
	              (unsigned long long)got);
	free(l);

	/* Beyond 100 s, 1 h, UINT64_MAX: all in the last bucket, no overflow. */
	l = latency_new();
	add_n(l, 10, 3600ull * 1000 * 1000);
	add_n(l, 10, UINT64_MAX);
	add_n(l, 10, 200ull * 1000 * 1000);
	ck_assert_uint_eq(atomic_load(&l->count[GW_HEDGE_LATENCY_BUCKETS - 1]), 30);
	ck_assert_uint_eq(total_count(l), 30);
	ck_assert_uint_eq(gw_latency_p95_us(l, T0), last_top);
	free(l);

	/* Just under the last bucket's top: still counted, as the last bucket. */
	l = latency_new();
	add_n(l, 30, 100ull * 1000 * 1000);
	ck_assert_uint_eq(atomic_load(&l->count[GW_HEDGE_LATENCY_BUCKETS - 1]), 30);
	ck_assert_uint_eq(gw_latency_p95_us(l, T0), last_top);
	free(l);
}
END_TEST

/*
 * bucket_top_us is documented as "the upper bound of bucket b", and the
 * p95 is that top: it must never be below the samples it summarises. Under
 * 400 us the 100 us granularity of bucket_of puts 100..199 us in bucket 0
 * (top 125 us), 200..299 us in bucket 4 (top 250 us), 300..399 us in bucket
 * 6 (top 350 us).
 */
START_TEST(latency_p95_is_never_below_small_samples)
{
	static const uint64_t values[] = {99, 100, 150, 199, 200, 275, 299, 300, 399};
	char bad[512] = "";
	size_t len = 0;

	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		struct gw_latency *l = latency_new();
		uint64_t got;

		add_n(l, 40, values[i]);
		got = gw_latency_p95_us(l, T0);
		if (got < values[i] || got > values[i] + 100)
			len += (size_t)snprintf(
			    bad + len, sizeof(bad) - len, " %llu us -> p95 %llu us;",
			    (unsigned long long)values[i], (unsigned long long)got);
		free(l);
	}
	ck_assert_msg(len == 0, "40 samples of one value, p95 below the value:%s", bad);
}
END_TEST

/* ---- the tracker: once per period, and decay ---------------------------- */

START_TEST(latency_recomputes_at_most_once_per_period)
{
	struct gw_latency *l = latency_new();
	uint64_t first;

	add_n(l, 100, 5000);
	first = gw_latency_p95_us(l, T0);
	assert_p95_near(first, 5000, "first computation");
	/* halved once by that computation */
	ck_assert_uint_eq(total_count(l), 50);
	/* a new slow regime within the same period: the cached value, nothing halved */
	add_n(l, 200, 800000);
	for (uint64_t t = T0; t < T0 + PERIOD; t += 7)
		ck_assert_uint_eq(gw_latency_p95_us(l, t), first);
	ck_assert_uint_eq(total_count(l), 250);
	/* the next period: recomputed (the slow samples show) and halved once */
	assert_p95_near(gw_latency_p95_us(l, T0 + PERIOD), 800000, "next period");
	ck_assert_uint_eq(total_count(l), 125);
	ck_assert_uint_eq(gw_latency_p95_us(l, T0 + PERIOD + PERIOD - 1),
	                  gw_latency_p95_us(l, T0 + PERIOD));
	ck_assert_uint_eq(total_count(l), 125);
	free(l);
}
END_TEST

/* 100 samples a period at old_us for 10 periods, then new_us: the number of
 * periods until the p95 is new_us's bucket (0: never within 20 periods). */
static unsigned periods_to_switch(uint64_t old_us, uint64_t new_us, uint64_t *p95_before)
{
	struct gw_latency *l = latency_new();
	uint64_t t = T0;
	unsigned k;

	for (unsigned i = 0; i < 10; i++, t += PERIOD) {
		add_n(l, 100, old_us);
		*p95_before = gw_latency_p95_us(l, t);
	}
	for (k = 1; k <= 20; k++, t += PERIOD) {
		uint64_t p;

		add_n(l, 100, new_us);
		p = gw_latency_p95_us(l, t);
		if (p >= new_us && p <= new_us + new_us / 4 + 1)
			break;
	}
	free(l);
	return k <= 20 ? k : 0;
}

START_TEST(latency_decay_lets_a_new_regime_take_over)
{
	uint64_t before = 0;
	unsigned k;

	/* slower: 5 % of slow samples are enough, the first period shows it */
	k = periods_to_switch(2000, 300000, &before);
	assert_p95_near(before, 2000, "steady fast regime");
	ck_assert_msg(k == 1, "a slow regime took %u periods to show (0: never)", k);

	/* faster: the old slow samples must fade, halved each period */
	k = periods_to_switch(300000, 2000, &before);
	assert_p95_near(before, 300000, "steady slow regime");
	ck_assert_msg(k >= 2, "the old regime vanished at once (%u): no smoothing", k);
	ck_assert_msg(k >= 1 && k <= 6, "a fast regime took %u periods to take over (0: never)", k);
}
END_TEST

/*
 * The header: counts are "halved every GW_HEDGE_LATENCY_DECAY_MS so that
 * the last few seconds weigh most". A route idle for 10 periods, then with
 * traffic again: the samples of before the idle time are 10 halvings old
 * and must not outweigh the new traffic for long. Today they are halved
 * once per recompute, not once per period, so they take as long to fade as
 * if there had been no idle time at all (about 6 periods, see above).
 */
START_TEST(latency_idle_periods_decay_too)
{
	struct gw_latency *l = latency_new();
	uint64_t t = T0 + 11 * PERIOD, p = 0;
	unsigned k;

	add_n(l, 1000, 300000);
	assert_p95_near(gw_latency_p95_us(l, T0), 300000, "before the idle time");
	/* 10 periods with no request at all, then 100 fast tries a period */
	for (k = 1; k <= 10; k++, t += PERIOD) {
		add_n(l, 100, 2000);
		p = gw_latency_p95_us(l, t);
		if (p >= 2000 && p <= 2501)
			break;
	}
	ck_assert_msg(k <= 2,
	              "after 10 idle periods, the samples from before still set the p95 for %u "
	              "periods of new traffic (p95 %llu us); expected the new regime (2000 us) by "
	              "the 2nd period",
	              k, (unsigned long long)p);
	free(l);
}
END_TEST

/* ---- config ------------------------------------------------------------- */

/* Lines 1-7; a test's route keys start on line 8, indented by 4. */
static const char head[] = "upstreams:\n"
                           "  u:\n"
                           "    servers: [\"127.0.0.1:9001\", \"127.0.0.1:9002\"]\n"
                           "routes:\n"
                           "  - name: r\n"
                           "    upstream: u\n"
                           "    timeout: 3s\n";

static char *with_head(const char *tail)
{
	char *yaml = malloc(sizeof(head) + strlen(tail));

	strcpy(yaml, head);
	strcat(yaml, tail);
	return yaml;
}

static struct gw_config *load_ok(const char *tail)
{
	struct gw_errlist errs = {0};
	char *yaml = with_head(tail);
	struct gw_config *cfg = gw_config_load_string("h.yaml", yaml, &errs);
	char *all = gw_test_join_errors(&errs);

	ck_assert_msg(cfg != NULL && errs.count == 0, "should load:\n%s\ngot:%s", yaml, all);
	free(all);
	free(yaml);
	gw_errlist_free(&errs);
	return cfg;
}

static void load_fails(const char *tail, const char *const expect[])
{
	struct gw_errlist errs = {0};
	char *yaml = with_head(tail);
	struct gw_config *cfg = gw_config_load_string("h.yaml", yaml, &errs);
	char *all = gw_test_join_errors(&errs);
	size_t n = 0;

	ck_assert_msg(cfg == NULL, "should fail:\n%s", yaml);
	while (expect[n])
		n++;
	ck_assert_msg(errs.count == n, "expected %zu errors for:\n%s\ngot:%s", n, yaml, all);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(strcmp(errs.items[i], expect[i]) == 0,
		              "error %zu:\nexpected: %s\ngot:%s", i, expect[i], all);
	free(all);
	free(yaml);
	gw_errlist_free(&errs);
}

#define FAILS(tail, ...) load_fails(tail, (const char *const[]){__VA_ARGS__, NULL})

START_TEST(conf_fixed_delay_and_default_max)
{
	struct gw_config *cfg = load_ok("    retry: { attempts: 3, hedge: {after: 50ms} }\n");
	const struct gw_retry_conf *c = gw_retry_conf_of(&cfg->routes[0]);

	ck_assert(c->has_hedge);
	ck_assert(!c->hedge_auto);
	ck_assert_uint_eq(c->hedge_after_ms, 50);
	ck_assert_uint_eq(c->hedge_max, 1);
	ck_assert_uint_eq(c->attempts, 3);
	gw_config_unref(cfg);

	cfg = load_ok("    retry:\n"
	              "      hedge:\n"
	              "        after: 1m\n"
	              "        max: 3\n");
	c = gw_retry_conf_of(&cfg->routes[0]);
	ck_assert(c->has_hedge && !c->hedge_auto);
	ck_assert_uint_eq(c->hedge_after_ms, 60000);
	ck_assert_uint_eq(c->hedge_max, 3);
	gw_config_unref(cfg);

	cfg = load_ok("    retry: { hedge: {after: 1ms} }\n");
	c = gw_retry_conf_of(&cfg->routes[0]);
	ck_assert_uint_eq(c->hedge_after_ms, 1);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(conf_auto_delay)
{
	struct gw_config *cfg = load_ok("    retry: { hedge: {after: auto, max: 2} }\n");
	const struct gw_retry_conf *c = gw_retry_conf_of(&cfg->routes[0]);

	ck_assert(c->has_hedge);
	ck_assert(c->hedge_auto);
	ck_assert_uint_eq(c->hedge_max, 2);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(conf_no_hedge_without_the_key)
{
	struct gw_config *cfg = load_ok("    retry: { attempts: 2 }\n"
	                                "  - name: s\n"
	                                "    upstream: u\n");

	ck_assert(!gw_retry_conf_of(&cfg->routes[0])->has_hedge);
	ck_assert(!gw_retry_conf_of(&cfg->routes[1])->has_hedge);
	ck_assert(!gw_retry_conf_default.has_hedge);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(conf_errors_with_line_and_column)
{
	FAILS("    retry: { hedge: {} }\n",
	      "h.yaml:8:21: missing required key 'after' in hedge of retry of route 'r'");
	FAILS("    retry:\n"
	      "      hedge: { max: 2 }\n",
	      "h.yaml:9:14: missing required key 'after' in hedge of retry of route 'r'");
	FAILS("    retry:\n"
	      "      hedge: { after: 0 }\n",
	      "h.yaml:9:23: 'after' in hedge of retry of route 'r': 0 is out of range (1ms..1m)");
	FAILS("    retry:\n"
	      "      hedge: { after: 2m }\n",
	      "h.yaml:9:23: 'after' in hedge of retry of route 'r': 2m is out of range (1ms..1m)");
	FAILS("    retry:\n"
	      "      hedge: { after: soon }\n",
	      "h.yaml:9:23: 'after' in hedge of retry of route 'r': expected a duration such as "
	      "250ms, 2s, 1m or 1h, got 'soon'");
	FAILS("    retry:\n"
	      "      hedge: { after: 50ms, max: 9 }\n",
	      "h.yaml:9:34: 'max' in hedge of retry of route 'r': 9 is out of range (1..3)");
	FAILS("    retry:\n"
	      "      hedge: { after: 50ms, max: 0 }\n",
	      "h.yaml:9:34: 'max' in hedge of retry of route 'r': 0 is out of range (1..3)");
	FAILS("    retry:\n"
	      "      hedge:\n"
	      "        after: 50ms\n"
	      "        delay: 10ms\n",
	      "h.yaml:11:9: unknown key 'delay' in hedge of retry of route 'r'");
	FAILS("    retry:\n"
	      "      hedge: 50ms\n",
	      "h.yaml:9:14: 'hedge' in retry of route 'r': expected a mapping, got a string");
}
END_TEST

/* ---- the module's decisions --------------------------------------------- */

/*
 * One route's retry module, driven directly: a loaded config, the module's
 * route state, and a transaction with no request, connection or event base
 * (the module reads method, tries, hedges, the deadline and the
 * Idempotency-Key header).
 */
struct rig {
	struct gw_config *cfg;
	const struct gw_retry_conf *conf;
	void *state;
	struct gw_worker worker;
	struct gw_route_state rs;
	struct gw_txn txn;
	struct evhttp_request *req;
};

static void rig_open(struct rig *r, const char *tail)
{
	memset(r, 0, sizeof(*r));
	r->cfg = load_ok(tail);
	r->conf = gw_retry_conf_of(&r->cfg->routes[0]);
	r->state = gw_retry_module.route_state_new(r->conf, &r->cfg->routes[0]);
	r->txn.worker = &r->worker;
	r->txn.rs = &r->rs;
	r->txn.route = &r->cfg->routes[0];
	r->txn.method = GW_METHOD_GET;
	r->txn.deadline_ms = T0 + 10000;
	r->txn.server_idx = 0;
}

static void rig_close(struct rig *r)
{
	gw_retry_module.route_state_free(r->state);
	if (r->req)
		evhttp_request_free(r->req);
	gw_config_unref(r->cfg);
}

/* A request carrying header name: value (for Idempotency-Key). */
static void rig_header(struct rig *r, const char *name, const char *value)
{
	if (!r->req)
		r->req = evhttp_request_new(NULL, NULL);
	evhttp_add_header(evhttp_request_get_input_headers(r->req), name, value);
	r->txn.req = r->req;
}

static struct gw_mod_env env_at(struct rig *r, uint64_t now_ms)
{
	struct gw_mod_env env = {
	    .txn = &r->txn,
	    .worker = &r->worker,
	    .route = &r->cfg->routes[0],
	    .now_ms = now_ms,
	    .conf = r->conf == &gw_retry_conf_default ? NULL : r->conf,
	    .route_state = r->state,
	};
	return env;
}

/* A new request admitted at now_ms: its hedge delay. */
static uint64_t admit(struct rig *r, uint64_t now_ms)
{
	struct gw_mod_env env = env_at(r, now_ms);

	r->txn.hedge_after_ms = 12345;
	ck_assert_int_eq(gw_retry_module.on_admit(&env), GW_ADMIT_NEXT);
	return r->txn.hedge_after_ms;
}

static void try_done(struct rig *r, uint64_t now_ms, uint64_t us, bool failure)
{
	struct gw_mod_env env = env_at(r, now_ms);
	struct gw_try t = {
	    .result = failure ? GW_TRY_TIMEOUT : GW_TRY_OK,
	    .failure = failure,
	    .duration_ms = us / 1000,
	    .duration_us = us,
	};

	gw_retry_module.on_try_done(&env, &t);
}

/* May the current try be hedged now? */
static bool may_hedge(struct rig *r, uint64_t now_ms)
{
	struct gw_mod_env env = env_at(r, now_ms);
	struct gw_try t = {.result = GW_TRY_TIMEOUT, .failure = true, .hedge = true};
	uint64_t backoff = 777;
	bool yes = gw_retry_module.may_retry(&env, &t, &backoff);

	if (yes)
		ck_assert_uint_eq(backoff, 0); /* a hedge never waits */
	return yes;
}

/* May a try that timed out be retried now? */
static bool may_retry_timeout(struct rig *r, uint64_t now_ms)
{
	struct gw_mod_env env = env_at(r, now_ms);
	struct gw_try t = {.result = GW_TRY_TIMEOUT, .failure = true};
	uint64_t backoff = 0;

	return gw_retry_module.may_retry(&env, &t, &backoff);
}

START_TEST(module_sets_the_hedge_delay_at_admission)
{
	struct rig r;

	rig_open(&r, "    retry: { hedge: {after: 70ms} }\n");
	ck_assert_uint_eq(admit(&r, T0), 70);
	rig_close(&r);

	rig_open(&r, "    retry: { attempts: 3 }\n");
	ck_assert_uint_eq(admit(&r, T0), 0);
	rig_close(&r);

	/* a route with no retry key at all */
	rig_open(&r, "");
	ck_assert_ptr_eq(r.conf, &gw_retry_conf_default);
	ck_assert_uint_eq(admit(&r, T0), 0);
	rig_close(&r);
}
END_TEST

START_TEST(module_auto_delay_default_p95_and_floor)
{
	struct rig r;
	uint64_t t = T0, d;

	rig_open(&r, "    retry: { hedge: {after: auto} }\n");
	/* nothing known yet: the default */
	ck_assert_uint_eq(admit(&r, t), GW_HEDGE_AUTO_DEFAULT_MS);
	/* failed tries teach nothing, however slow */
	for (int i = 0; i < 100; i++)
		try_done(&r, t, 5000000, true);
	t += PERIOD;
	ck_assert_uint_eq(admit(&r, t), GW_HEDGE_AUTO_DEFAULT_MS);
	/* successful 200 ms tries: the p95 in ms, rounded up */
	for (int i = 0; i < 100; i++)
		try_done(&r, t, 200000, false);
	t += PERIOD;
	d = admit(&r, t);
	ck_assert_msg(d >= 200 && d <= 250, "hedge delay %llu ms for 200 ms tries",
	              (unsigned long long)d);
	/* the same all period long */
	ck_assert_uint_eq(admit(&r, t + PERIOD - 1), d);
	rig_close(&r);

	/* very fast tries: the floor */
	rig_open(&r, "    retry: { hedge: {after: auto} }\n");
	for (int i = 0; i < 100; i++)
		try_done(&r, T0, 1500, false);
	ck_assert_uint_eq(admit(&r, T0 + PERIOD), GW_HEDGE_AUTO_FLOOR_MS);
	rig_close(&r);

	/* a fixed delay learns nothing (and keeps its value) */
	rig_open(&r, "    retry: { hedge: {after: 30ms} }\n");
	for (int i = 0; i < 100; i++)
		try_done(&r, T0, 900000, false);
	ck_assert_uint_eq(admit(&r, T0 + PERIOD), 30);
	rig_close(&r);
}
END_TEST

START_TEST(module_hedges_only_methods_that_may_be_retried)
{
	static const unsigned yes[] = {GW_METHOD_GET, GW_METHOD_HEAD, GW_METHOD_PUT,
	                               GW_METHOD_DELETE, GW_METHOD_OPTIONS};
	static const unsigned no[] = {GW_METHOD_POST, GW_METHOD_PATCH};
	struct rig r;

	rig_open(&r,
	         "    retry: { hedge: {after: 50ms}, budget: {ratio: 1, min_per_second: 1000} }\n");
	admit(&r, T0);
	r.txn.tries = 1;
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		r.txn.method = yes[i];
		ck_assert_msg(may_hedge(&r, T0), "method bit %u not hedged", yes[i]);
	}
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		r.txn.method = no[i];
		ck_assert_msg(!may_hedge(&r, T0), "method bit %u hedged without Idempotency-Key",
		              no[i]);
	}
	/* with an Idempotency-Key: yes */
	rig_header(&r, "Idempotency-Key", "k-1");
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		r.txn.method = no[i];
		ck_assert_msg(may_hedge(&r, T0), "method bit %u not hedged with Idempotency-Key",
		              no[i]);
	}
	rig_close(&r);
}
END_TEST

START_TEST(module_hedges_at_most_max_and_only_when_configured)
{
	struct rig r;

	rig_open(&r, "    retry: { attempts: 10, hedge: {after: 50ms, max: 2}, budget: {ratio: 1, "
	             "min_per_second: 1000} }\n");
	admit(&r, T0);
	r.txn.tries = 1;
	r.txn.hedges = 0;
	ck_assert(may_hedge(&r, T0));
	r.txn.hedges = 1;
	r.txn.tries = 2;
	ck_assert(may_hedge(&r, T0));
	r.txn.hedges = 2;
	r.txn.tries = 3;
	ck_assert(!may_hedge(&r, T0));
	rig_close(&r);

	rig_open(&r, "    retry: { attempts: 3, budget: {ratio: 1, min_per_second: 1000} }\n");
	admit(&r, T0);
	r.txn.tries = 1;
	ck_assert(!may_hedge(&r, T0));
	ck_assert(may_retry_timeout(&r, T0)); /* retries themselves are allowed */
	rig_close(&r);

	rig_open(&r, "");
	admit(&r, T0);
	r.txn.tries = 1;
	ck_assert(!may_hedge(&r, T0));
	rig_close(&r);
}
END_TEST

/*
 * README: a hedge "counts as a try for `attempts`". With attempts 2 and two
 * tries already made (the second one a retry), a hedge would be a third.
 */
START_TEST(module_hedge_respects_attempts)
{
	struct rig r;

	rig_open(&r, "    retry: { attempts: 2, hedge: {after: 50ms, max: 3}, budget: {ratio: 1, "
	             "min_per_second: 1000} }\n");
	admit(&r, T0);
	r.txn.tries = 2;
	ck_assert_msg(!may_retry_timeout(&r, T0), "a third try after attempts 2");
	ck_assert_msg(!may_hedge(&r, T0), "a hedge as the third try of a route with attempts 2");
	rig_close(&r);

	rig_open(&r, "    retry: { attempts: 1, hedge: {after: 50ms}, budget: {ratio: 1, "
	             "min_per_second: 1000} }\n");
	admit(&r, T0);
	r.txn.tries = 1;
	ck_assert_msg(!may_hedge(&r, T0), "a hedge as the second try of a route with attempts 1");
	rig_close(&r);
}
END_TEST

START_TEST(module_hedges_spend_the_retry_budget)
{
	struct rig r;
	unsigned hedges = 0, retries = 0;

	/* an empty budget: no hedge (the refusals are counted: see below) */
	rig_open(&r,
	         "    retry: { hedge: {after: 50ms}, budget: {ratio: 0, min_per_second: 0} }\n");
	admit(&r, T0);
	r.txn.tries = 1;
	ck_assert(!may_hedge(&r, T0));
	ck_assert(!may_hedge(&r, T0 + 5));
	rig_close(&r);

	/* a small budget: hedges take from it until it is empty ... */
	rig_open(&r,
	         "    retry: { hedge: {after: 50ms}, budget: {ratio: 0, min_per_second: 1} }\n");
	admit(&r, T0);
	r.txn.tries = 1;
	while (hedges < 1000 && may_hedge(&r, T0))
		hedges++;
	ck_assert_msg(hedges > 0 && hedges < 1000, "%u hedges from a budget of 1 a second", hedges);
	/* ... and the retries of the same route then find it empty */
	ck_assert(!may_retry_timeout(&r, T0));
	rig_close(&r);

	/* the other way round: retries empty it, then no hedge */
	rig_open(&r, "    retry: { attempts: 10, hedge: {after: 50ms}, budget: {ratio: 0, "
	             "min_per_second: 1} }\n");
	admit(&r, T0);
	r.txn.tries = 1;
	while (retries < 1000 && may_retry_timeout(&r, T0))
		retries++;
	ck_assert_uint_eq(retries, hedges);
	ck_assert(!may_hedge(&r, T0));
	rig_close(&r);
}
END_TEST

/* The refusals of an empty budget show in the module's report. */
struct report_rec {
	struct gw_report base;
	double budget_exhausted;
	int seen;
};

static void report_add(struct gw_report *rep, const char *name, double value)
{
	struct report_rec *r = (struct report_rec *)rep;

	if (strcmp(name, "budget_exhausted") == 0) {
		r->budget_exhausted = value;
		r->seen++;
	}
}

START_TEST(module_budget_refusals_of_hedges_are_counted)
{
	struct rig r;
	struct report_rec rep = {.base = {.add = report_add}};

	rig_open(&r,
	         "    retry: { hedge: {after: 50ms}, budget: {ratio: 0, min_per_second: 0} }\n");
	admit(&r, T0);
	r.txn.tries = 1;
	ck_assert(!may_hedge(&r, T0));
	ck_assert(!may_hedge(&r, T0));
	ck_assert(!may_hedge(&r, T0));
	gw_retry_module.report(r.state, &rep.base);
	ck_assert_int_eq(rep.seen, 1);
	ck_assert_double_eq(rep.budget_exhausted, 3);
	/* a hedge refused for its method does not touch the budget */
	r.txn.method = GW_METHOD_POST;
	ck_assert(!may_hedge(&r, T0));
	gw_retry_module.report(r.state, &rep.base);
	ck_assert_double_eq(rep.budget_exhausted, 3);
	rig_close(&r);
}
END_TEST

static Suite *hedge_suite(void)
{
	Suite *s = suite_create("hedge");

	gw_test_add_case(s, "latency_no_value_before_min_samples",
	                 latency_no_value_before_min_samples, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "latency_p95_of_a_known_distribution",
	                 latency_p95_of_a_known_distribution, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "latency_bucket_edges_zero_and_huge",
	                 latency_bucket_edges_zero_and_huge, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "latency_p95_is_never_below_small_samples",
	                 latency_p95_is_never_below_small_samples, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "latency_recomputes_at_most_once_per_period",
	                 latency_recomputes_at_most_once_per_period, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "latency_decay_lets_a_new_regime_take_over",
	                 latency_decay_lets_a_new_regime_take_over, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "latency_idle_periods_decay_too", latency_idle_periods_decay_too,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "conf_fixed_delay_and_default_max", conf_fixed_delay_and_default_max,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "conf_auto_delay", conf_auto_delay, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "conf_no_hedge_without_the_key", conf_no_hedge_without_the_key,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "conf_errors_with_line_and_column", conf_errors_with_line_and_column,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "module_sets_the_hedge_delay_at_admission",
	                 module_sets_the_hedge_delay_at_admission, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "module_auto_delay_default_p95_and_floor",
	                 module_auto_delay_default_p95_and_floor, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "module_hedges_only_methods_that_may_be_retried",
	                 module_hedges_only_methods_that_may_be_retried, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "module_hedges_at_most_max_and_only_when_configured",
	                 module_hedges_at_most_max_and_only_when_configured,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "module_hedge_respects_attempts", module_hedge_respects_attempts,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "module_hedges_spend_the_retry_budget",
	                 module_hedges_spend_the_retry_budget, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "module_budget_refusals_of_hedges_are_counted",
	                 module_budget_refusals_of_hedges_are_counted, GW_TEST_DEFAULT_TIMEOUT);
	return s;
}

int main(void)
{
	return gw_test_run_suite(hedge_suite(), CK_FORK);
}
