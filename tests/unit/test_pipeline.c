/*
 * The module pipeline: which modules each route runs, in registry order,
 * per hook, as built from a config; module states made once per route and
 * found again by module; the request slots' layout. And the config of the
 * modules that arrived with it (priority, shedding, concurrency_limit,
 * rate_limit).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/config/config.h"
#include "gateway/pipeline.h"
#include "modules/circuit_breaker/breaker.h"
#include "modules/concurrency/concurrency.h"
#include "modules/fallback/fallback.h"
#include "modules/flags/flags_module.h"
#include "modules/module.h"
#include "modules/rate_limit/rate_limit.h"
#include "modules/retry/retry.h"
#include "modules/shedding/shedding.h"
#include "gateway/util/clock.h"
#include "check_suite.h"

static const char *const head =
    "listen: [\"127.0.0.1:0\"]\n"
    "flags: { beta: off }\n"
    "upstreams:\n"
    "  a: { servers: [\"127.0.0.1:9001\"] }\n"
    "  b: { servers: [\"127.0.0.1:9002\"], concurrency_limit: adaptive }\n"
    "  c: { servers: [\"127.0.0.1:9003\"], concurrency_limit: 40 }\n"
    "routes:\n";

static struct gw_config *load(const char *routes, struct gw_errlist *errs)
{
	size_t n = strlen(head) + strlen(routes) + 1;
	char *yaml = malloc(n);
	struct gw_config *cfg;

	snprintf(yaml, n, "%s%s", head, routes);
	cfg = gw_config_load_string("p.yaml", yaml, errs);
	free(yaml);
	return cfg;
}

static struct gw_config *load_ok(const char *routes)
{
	struct gw_errlist errs = {0};
	struct gw_config *cfg = load(routes, &errs);

	ck_assert_msg(cfg != NULL, "should load: %s", errs.count ? errs.items[0] : "?");
	gw_errlist_free(&errs);
	return cfg;
}

/* The only error of routes, or fails. */
static void fails_with(const char *routes, const char *expect)
{
	struct gw_errlist errs = {0};
	struct gw_config *cfg = load(routes, &errs);

	ck_assert_ptr_null(cfg);
	ck_assert_uint_eq(errs.count, 1);
	ck_assert_str_eq(errs.items[0], expect);
	gw_errlist_free(&errs);
}

static bool list_has(const uint8_t *list, size_t n, const struct gw_module *m)
{
	for (size_t i = 0; i < n; i++)
		if (gw_modules[list[i]] == m)
			return true;
	return false;
}

START_TEST(bare_route_runs_shedding_manual_breaker_and_retry_budget_only)
{
	struct gw_config *cfg = load_ok("  - { name: r, upstream: a }\n");
	struct gw_pipeline *p = gw_pipeline_new(cfg, NULL, NULL, NULL);
	const struct gw_route_state *rs = &p->routes[0];
	const struct gw_breaker *b;

	ck_assert_str_eq(rs->name, "r");
	/* admission: shedding (every route has a priority), the breaker (every
	 * route has one an operator can force), retry (the budget is on by default) */
	ck_assert_uint_eq(rs->nadmit, 3);
	ck_assert_ptr_eq(gw_modules[rs->admit[0]], &gw_shedding_module);
	ck_assert_ptr_eq(gw_modules[rs->admit[1]], &gw_breaker_module);
	ck_assert_ptr_eq(gw_modules[rs->admit[2]], &gw_retry_module);
	ck_assert(list_has(rs->retry, rs->nretry, &gw_retry_module));
	ck_assert(!list_has(rs->admit, rs->nadmit, &gw_concurrency_module));
	ck_assert(!list_has(rs->admit, rs->nadmit, &gw_flags_module));
	ck_assert_uint_eq(rs->nanswer, 0);
	ck_assert_ptr_nonnull(gw_pipeline_route_state(p, 0, &gw_retry_module)); /* the budget */
	b = gw_pipeline_route_state(p, 0, &gw_breaker_module);
	ck_assert_ptr_nonnull(b);
	ck_assert(gw_breaker_is_manual(b));
	ck_assert_ptr_null(gw_pipeline_route_state(p, 1, &gw_retry_module)); /* no such route */
	ck_assert_ptr_nonnull(gw_pipeline_process_state(p, &gw_shedding_module));
	gw_pipeline_free(p);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(full_route_runs_every_module_in_registry_order)
{
	struct gw_config *cfg = load_ok("  - name: r\n"
	                                "    upstream: b\n"
	                                "    priority: critical\n"
	                                "    flag: { name: beta, when_off: { upstream: c } }\n"
	                                "    rate_limit: { rate: 10 }\n"
	                                "    circuit_breaker: {}\n"
	                                "    retry: {}\n"
	                                "    fallback: { status: 200 }\n");
	struct gw_pipeline *p = gw_pipeline_new(cfg, NULL, NULL, NULL);
	const struct gw_route_state *rs = &p->routes[0];
	const struct gw_module *admit[] = {&gw_flags_module,    &gw_rate_limit_module,
	                                   &gw_shedding_module, &gw_breaker_module,
	                                   &gw_retry_module,    &gw_concurrency_module};

	ck_assert_uint_eq(rs->nadmit, sizeof(admit) / sizeof(admit[0]));
	for (size_t i = 0; i < rs->nadmit; i++)
		ck_assert_ptr_eq(gw_modules[rs->admit[i]], admit[i]);
	/* the breaker may veto before the budget is spent */
	ck_assert_uint_eq(rs->nretry, 2);
	ck_assert_ptr_eq(gw_modules[rs->retry[0]], &gw_breaker_module);
	ck_assert_ptr_eq(gw_modules[rs->retry[1]], &gw_retry_module);
	ck_assert(list_has(rs->try_done, rs->ntry_done, &gw_breaker_module));
	ck_assert(list_has(rs->try_done, rs->ntry_done, &gw_concurrency_module));
	ck_assert(list_has(rs->answer, rs->nanswer, &gw_fallback_module));
	ck_assert(list_has(rs->end, rs->nend, &gw_breaker_module));
	ck_assert(list_has(rs->end, rs->nend, &gw_shedding_module));
	ck_assert(list_has(rs->end, rs->nend, &gw_concurrency_module));
	ck_assert_ptr_nonnull(gw_pipeline_route_state(p, 0, &gw_breaker_module));
	ck_assert_ptr_nonnull(gw_pipeline_route_state(p, 0, &gw_rate_limit_module));
	gw_pipeline_free(p);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(priority_shedding_and_concurrency_keys_parse)
{
	struct gw_config *cfg = load_ok("  - { name: c, upstream: a, priority: critical }\n"
	                                "  - { name: n, upstream: a }\n"
	                                "  - { name: s, upstream: a, priority: sheddable }\n");
	const struct gw_upstream_conf *b = gw_config_find_upstream(cfg, "b");
	const struct gw_upstream_conf *c = gw_config_find_upstream(cfg, "c");

	ck_assert_int_eq(cfg->routes[0].priority, GW_PRIORITY_CRITICAL);
	ck_assert_int_eq(cfg->routes[1].priority, GW_PRIORITY_NORMAL);
	ck_assert_int_eq(cfg->routes[2].priority, GW_PRIORITY_SHEDDABLE);
	ck_assert_str_eq(gw_priority_name(GW_PRIORITY_SHEDDABLE), "sheddable");
	ck_assert_int_eq(gw_config_find_upstream(cfg, "a")->climit_mode, GW_CLIMIT_OFF);
	ck_assert_int_eq(b->climit_mode, GW_CLIMIT_ADAPTIVE);
	ck_assert_int_eq(c->climit_mode, GW_CLIMIT_FIXED);
	ck_assert_uint_eq(c->climit_fixed, 40);
	ck_assert_uint_eq(cfg->shedding.max_inflight, 2000);
	ck_assert_uint_eq(cfg->shedding.target_queue_delay_ms, 20);
	ck_assert_uint_eq(cfg->shedding.max_loop_lag_ms, 50);
	ck_assert_uint_eq(cfg->shedding.retry_after_ms, 2000);
	ck_assert(!cfg->shedding.dry_run);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(bad_priority_and_rate_limit_are_located_errors)
{
	fails_with("  - { name: r, upstream: a, priority: urgent }\n",
	           "p.yaml:8:39: 'priority' in route 'r': expected critical, normal or sheddable, "
	           "got 'urgent'");
	fails_with("  - { name: r, upstream: a, rate_limit: { per: 1s } }\n",
	           "p.yaml:8:41: missing required key 'rate' in rate_limit of route 'r'");
	fails_with("  - { name: r, upstream: a, rate_limit: { rate: 0 } }\n",
	           "p.yaml:8:49: 'rate' in rate_limit of route 'r': 0 is out of range (more than "
	           "0, at most 100000)");
	fails_with("  - { name: r, upstream: a, rate_limit: { rate: 5, by: 'header:' } }\n",
	           "p.yaml:8:56: 'by' in rate_limit of route 'r': expected client_ip, route or "
	           "header:NAME, got 'header:'");
}
END_TEST

START_TEST(rate_limit_defaults)
{
	struct gw_config *cfg =
	    load_ok("  - { name: r, upstream: a, rate_limit: { rate: 2.5 } }\n"
	            "  - { name: s, upstream: a, rate_limit: { rate: 5, per: 1m, burst: 9, by: "
	            "'header:X-Api-Key', max_keys: 7 } }\n");
	const struct gw_rate_limit_conf *r =
	    cfg->routes[0].module_conf[gw_module_index(&gw_rate_limit_module)];
	const struct gw_rate_limit_conf *s =
	    cfg->routes[1].module_conf[gw_module_index(&gw_rate_limit_module)];

	ck_assert_double_eq(r->rate, 2.5);
	ck_assert_uint_eq(r->per_ms, 1000);
	ck_assert_uint_eq(r->burst, 3); /* the rate, rounded up */
	ck_assert_int_eq(r->by, GW_RL_BY_CLIENT_IP);
	ck_assert_uint_eq(r->max_keys, 100000);
	ck_assert_uint_eq(s->per_ms, 60000);
	ck_assert_uint_eq(s->burst, 9);
	ck_assert_int_eq(s->by, GW_RL_BY_HEADER);
	ck_assert_str_eq(s->header, "X-Api-Key");
	ck_assert_uint_eq(s->max_keys, 7);
	gw_config_unref(cfg);
}
END_TEST

/* Collects a module's report: names joined, values summed. */
struct collected {
	struct gw_report r;
	char names[256];
	double sum;
};

static void collect(struct gw_report *r, const char *name, double value)
{
	struct collected *c = (struct collected *)r;

	strncat(c->names, name, sizeof(c->names) - strlen(c->names) - 2);
	strcat(c->names, " ");
	c->sum += value;
}

START_TEST(every_route_state_reports_for_status_and_metrics)
{
	struct gw_config *cfg = load_ok("  - name: r\n"
	                                "    upstream: a\n"
	                                "    rate_limit: { rate: 10 }\n"
	                                "    circuit_breaker: {}\n");
	struct gw_pipeline *p = gw_pipeline_new(cfg, NULL, NULL, NULL);
	const struct gw_module *mods[] = {&gw_breaker_module, &gw_retry_module,
	                                  &gw_rate_limit_module};
	const char *expect[] = {"state ", "budget_exhausted ", "rate_limited "};

	for (size_t i = 0; i < sizeof(mods) / sizeof(mods[0]); i++) {
		struct collected c = {.r = {.add = collect}};

		ck_assert_ptr_nonnull(mods[i]->report);
		mods[i]->report(gw_pipeline_route_state(p, 0, mods[i]), &c.r);
		ck_assert_msg(strstr(c.names, expect[i]) != NULL, "%s reports '%s'", mods[i]->name,
		              c.names);
		ck_assert(c.sum == 0); /* nothing happened yet */
	}
	gw_pipeline_free(p);
	gw_config_unref(cfg);
}
END_TEST

/*
 * A reload builds a new pipeline from the old one: a route that keeps its
 * name keeps its breaker (open stays open, forced stays forced) wherever
 * it moved in the file; a new route starts afresh.
 */
START_TEST(reload_carries_route_state_by_name)
{
	struct gw_config *c1 = load_ok("  - { name: r, upstream: a, circuit_breaker: {} }\n"
	                               "  - { name: s, upstream: a, circuit_breaker: {} }\n");
	struct gw_config *c2 = load_ok("  - { name: n, upstream: a, circuit_breaker: {} }\n"
	                               "  - { name: s, upstream: b, circuit_breaker: {} }\n"
	                               "  - { name: r, upstream: a, circuit_breaker: {} }\n");
	struct gw_pipeline *p1 = gw_pipeline_new(c1, NULL, NULL, NULL), *p2;
	struct gw_breaker *r1 = gw_pipeline_route_state(p1, 0, &gw_breaker_module);
	uint64_t now = gw_clock_now_ms();

	for (int i = 0; i < 30; i++)
		gw_breaker_record(r1, now, true, 1, false);
	ck_assert_int_eq(gw_breaker_state(r1, now), GW_BREAKER_OPEN);
	gw_breaker_force(gw_pipeline_route_state(p1, 1, &gw_breaker_module), GW_BREAKER_FORCE_OPEN);
	p2 = gw_pipeline_new(c2, NULL, NULL, p1);
	ck_assert_str_eq(p2->routes[2].name, "r");
	ck_assert_int_eq(gw_breaker_state(gw_pipeline_route_state(p2, 2, &gw_breaker_module), now),
	                 GW_BREAKER_OPEN);
	ck_assert_int_eq(gw_breaker_forced(gw_pipeline_route_state(p2, 1, &gw_breaker_module)),
	                 GW_BREAKER_FORCE_OPEN);
	ck_assert_int_eq(gw_breaker_state(gw_pipeline_route_state(p2, 0, &gw_breaker_module), now),
	                 GW_BREAKER_CLOSED);
	gw_pipeline_free(p1);
	gw_pipeline_free(p2);
	gw_config_unref(c1);
	gw_config_unref(c2);
}
END_TEST

static Suite *pipeline_suite(void)
{
	Suite *s = suite_create("pipeline");
	struct {
		const char *name;
		const TTest *test;
	} cases[] = {
	    {"bare_route_runs_shedding_manual_breaker_and_retry_budget_only",
	     bare_route_runs_shedding_manual_breaker_and_retry_budget_only},
	    {"full_route_runs_every_module_in_registry_order",
	     full_route_runs_every_module_in_registry_order},
	    {"priority_shedding_and_concurrency_keys_parse",
	     priority_shedding_and_concurrency_keys_parse},
	    {"bad_priority_and_rate_limit_are_located_errors",
	     bad_priority_and_rate_limit_are_located_errors},
	    {"rate_limit_defaults", rate_limit_defaults},
	    {"every_route_state_reports_for_status_and_metrics",
	     every_route_state_reports_for_status_and_metrics},
	    {"reload_carries_route_state_by_name", reload_carries_route_state_by_name},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		gw_test_add_case(s, cases[i].name, cases[i].test, GW_TEST_DEFAULT_TIMEOUT);
	}
	return s;
}

int main(void)
{
	return gw_test_run_suite(pipeline_suite(), CK_FORK_GETENV);
}
