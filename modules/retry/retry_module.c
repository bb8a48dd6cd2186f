/*
 * Retry as a module (module.h): the budget counts every request, and after
 * a failed try the rules of SPEC section 5 decide whether another one goes.
 */
#include <stdatomic.h>
#include <stdlib.h>

#include "hedge.h"
#include "retry.h"

#include "../../gateway/pipeline.h"
#include "../../gateway/stats.h"
#include "../../gateway/txn.h"
#include "../../gateway/worker.h"
#include "../../gateway/util/alloc.h"
#include "../../gateway/util/clock.h"

static bool retry_active(const struct gw_route_conf *route)
{
	return true; /* the budget is on even where a route sets no `retry` */
}

/* A route's state: its budget, and its recent latency for `hedge: {after: auto}`. */
struct retry_route {
	struct gw_retry_budget *budget; /* owned */
	struct gw_latency latency;
};

static void *retry_route_state_new(const void *conf, const struct gw_route_conf *route)
{
	const struct gw_retry_conf *rc = conf ? conf : &gw_retry_conf_default;
	struct retry_route *rr = gw_calloc(1, sizeof(*rr));

	rr->budget = gw_retry_budget_new(rc->budget_ratio, rc->budget_min_per_second);
	return rr;
}

static void retry_route_state_free(void *state)
{
	struct retry_route *rr = state;

	gw_retry_budget_free(rr->budget);
	free(rr);
}

static void retry_route_state_carry(void *state, const void *old_state)
{
	struct retry_route *rr = state;
	const struct retry_route *old = old_state;

	gw_retry_budget_carry(rr->budget, old->budget);
	for (unsigned b = 0; b < GW_HEDGE_LATENCY_BUCKETS; b++)
		atomic_store(&rr->latency.count[b], atomic_load(&old->latency.count[b]));
	atomic_store(&rr->latency.p95_us, atomic_load(&old->latency.p95_us));
}

/* The hedge delay of this request: the configured one, or the route's recent p95. */
static uint64_t hedge_delay_ms(const struct gw_retry_conf *rc, struct retry_route *rr,
                               uint64_t now_ms)
{
	uint64_t p95_ms;

	if (!rc->has_hedge)
		return 0;
	if (!rc->hedge_auto)
		return rc->hedge_after_ms;
	p95_ms = (gw_latency_p95_us(&rr->latency, now_ms) + 999) / 1000;
	if (p95_ms == 0)
		return GW_HEDGE_AUTO_DEFAULT_MS;
	return p95_ms < GW_HEDGE_AUTO_FLOOR_MS ? GW_HEDGE_AUTO_FLOOR_MS : p95_ms;
}

static enum gw_admit retry_on_admit(struct gw_mod_env *env)
{
	const struct gw_retry_conf *rc = env->conf ? env->conf : &gw_retry_conf_default;

	struct retry_route *rr = env->route_state;

	env->txn->per_try_timeout_ms = rc->per_try_timeout_ms;
	env->txn->hedge_after_ms = hedge_delay_ms(rc, rr, env->now_ms);
	gw_retry_budget_on_request(rr->budget, env->now_ms);
	return GW_ADMIT_NEXT;
}

/*
 * After a failed try, is another one allowed (SPEC section 5)? The route's
 * attempts and retry conditions; the method rules (a connect failure never
 * reached the upstream, anything else only for idempotent requests); room
 * left before the route deadline for the backoff and a whole try; and,
 * last, the route's retry budget, shared by all workers, so that a failing
 * upstream never sees a retry storm. The wait before the next try is an
 * exponential backoff with full jitter.
 *
 * A stale keep-alive connection (t->stale) is re-sent at once, once, when
 * the method allows it, and within the budget: see txn.c.
 */
static bool retry_may_retry(struct gw_mod_env *env, const struct gw_try *t, uint64_t *backoff_ms)
{
	const struct gw_retry_conf *rc = env->conf ? env->conf : &gw_retry_conf_default;
	struct gw_txn *txn = env->txn;
	bool idempotency_key = gw_txn_header(txn, "Idempotency-Key") != NULL;
	uint64_t backoff, need;

	struct retry_route *rr = env->route_state;

	if (t->stale) {
		*backoff_ms = 0;
		return gw_retry_method_allows(txn->method, idempotency_key, GW_TRY_RESET) &&
		       gw_retry_budget_acquire(rr->budget, env->now_ms);
	}
	if (t->hedge) {
		/* the same rules as a retry after a timeout, and the same budget */
		*backoff_ms = 0;
		if (!rc->has_hedge || txn->hedges >= rc->hedge_max || txn->tries >= rc->attempts ||
		    !gw_retry_method_allows(txn->method, idempotency_key, GW_TRY_TIMEOUT))
			return false;
		if (!gw_retry_budget_acquire(rr->budget, env->now_ms)) {
			gw_stats_event(txn->rs->stats, env->worker->id, GW_EV_BUDGET_EXHAUSTED);
			return false;
		}
		return true;
	}
	if (txn->tries >= rc->attempts)
		return false;
	if (!gw_retry_condition_matches(rc, t->result, t->status))
		return false;
	if (!gw_retry_method_allows(txn->method, idempotency_key, t->result))
		return false;
	backoff = gw_retry_backoff_ms(rc, txn->tries - 1, gw_worker_random(txn->worker));
	need = backoff + (rc->per_try_timeout_ms ? rc->per_try_timeout_ms : 1);
	if (env->now_ms + need > txn->deadline_ms)
		return false;
	if (!gw_retry_budget_acquire(rr->budget, env->now_ms)) {
		gw_stats_event(txn->rs->stats, env->worker->id, GW_EV_BUDGET_EXHAUSTED);
		return false;
	}
	*backoff_ms = backoff;
	return true;
}

/* Successful tries teach `after: auto` the route's latency. */
static void retry_on_try_done(struct gw_mod_env *env, const struct gw_try *t)
{
	const struct gw_retry_conf *rc = env->conf;
	struct retry_route *rr = env->route_state;

	if (rc && rc->hedge_auto && !t->failure)
		gw_latency_add(&rr->latency, t->duration_us);
}

static void retry_report(const void *state, struct gw_report *out)
{
	const struct retry_route *rr = state;
	uint64_t requests, retries;

	gw_retry_budget_window(rr->budget, gw_clock_now_ms(), &requests, &retries);
	out->add(out, "window_requests", (double)requests);
	out->add(out, "window_retries", (double)retries);
	out->add(out, "budget_exhausted", (double)gw_retry_budget_exhausted(rr->budget));
}

const struct gw_module gw_retry_module = {
    .name = "retry",
    .route_key = "retry",
    .fields = gw_retry_fields,
    .conf_size = sizeof(struct gw_retry_conf),
    .conf_parse = gw_retry_conf_parse,
    .conf_check = gw_retry_conf_check,
    .active = retry_active,
    .route_state_new = retry_route_state_new,
    .route_state_free = retry_route_state_free,
    .route_state_carry = retry_route_state_carry,
    .on_admit = retry_on_admit,
    .on_try_done = retry_on_try_done,
    .may_retry = retry_may_retry,
    .report = retry_report,
};
