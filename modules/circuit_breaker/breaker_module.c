/*
 * The circuit breaker as a module (module.h): admission, probes, and what
 * each try tells the breaker. The breaker itself is breaker.c.
 */
#include "breaker.h"

#include "../../gateway/txn.h"
#include "../../gateway/util/clock.h"

/* Per request: whether it is a half-open breaker's probe, or holds a place
 * in the ramp after closing. */
struct breaker_slot {
	bool probe;      /* admitted as a probe */
	bool probe_done; /* its try was recorded */
	bool ramp;       /* admitted by the ramp: give the place back at the end */
};

/* Every route has a breaker: without a circuit_breaker section a manual one,
 * so that an operator can force any route open (gw:ops:breaker:ROUTE). */
static bool breaker_active(const struct gw_route_conf *route)
{
	(void)route;
	return true;
}

static void *breaker_route_state_new(const void *conf, const struct gw_route_conf *route)
{
	return gw_breaker_new(conf, route->name); /* conf NULL: manual */
}

static void breaker_route_state_free(void *state)
{
	gw_breaker_free(state);
}

static void breaker_route_state_carry(void *state, const void *old)
{
	gw_breaker_carry(state, old, gw_clock_now_ms());
}

static enum gw_admit breaker_on_admit(struct gw_mod_env *env)
{
	struct breaker_slot *slot = env->slot;
	uint64_t retry_after = 0;

	switch (gw_breaker_admit(env->route_state, env->now_ms, &retry_after)) {
	case GW_BREAKER_REJECT:
		env->answer.status = 503;
		env->answer.code = "circuit_open";
		/* the time until it lets a probe through; at least a second */
		env->answer.retry_after_ms = retry_after ? retry_after : 1;
		return GW_ADMIT_ANSWER; /* no upstream connection at all */
	case GW_BREAKER_PROBE:
		slot->probe = true;
		break;
	case GW_BREAKER_RAMP:
		slot->ramp = true;
		break;
	case GW_BREAKER_ALLOW:
		break;
	}
	return GW_ADMIT_NEXT;
}

static void breaker_on_try_done(struct gw_mod_env *env, const struct gw_try *t)
{
	struct breaker_slot *slot = env->slot;

	slot->probe_done = true;
	if (!gw_breaker_is_manual(env->route_state))
		gw_breaker_record(env->route_state, env->now_ms, t->failure, t->duration_ms,
		                  slot->probe);
}

/* A probe's one try decides: it is never retried. A stale connection's
 * re-send is not a new try, so a probe keeps it. */
static bool breaker_may_retry(struct gw_mod_env *env, const struct gw_try *t, uint64_t *backoff)
{
	const struct breaker_slot *slot = env->slot;

	return t->stale || !slot->probe;
}

/* A probe that never made a try (no healthy server, client gone, shed while
 * queued) gives its place back, or the breaker would wait for it; a request
 * of the ramp gives its place back however it ended. */
static void breaker_on_end(struct gw_mod_env *env)
{
	const struct breaker_slot *slot = env->slot;

	if (slot->probe && !slot->probe_done)
		gw_breaker_abandon_probe(env->route_state);
	if (slot->ramp)
		gw_breaker_ramp_done(env->route_state);
}

static void breaker_report(const void *state, struct gw_report *out)
{
	struct gw_breaker_counts c;
	uint64_t now = gw_clock_now_ms();

	gw_breaker_counts(state, now, &c);
	out->add(out, "state", (double)gw_breaker_state(state, now));
	out->add(out, "window_tries", (double)c.tries);
	out->add(out, "window_failures", (double)c.failures);
	out->add(out, "window_slow", (double)c.slow);
	out->add(out, "consecutive_failures", (double)c.consecutive_failures);
}

const struct gw_module gw_breaker_module = {
    .name = "circuit_breaker",
    .route_key = "circuit_breaker",
    .active = breaker_active,
    .fields = gw_breaker_fields,
    .conf_size = sizeof(struct gw_breaker_conf),
    .conf_parse = gw_breaker_conf_parse,
    .slot_size = sizeof(struct breaker_slot),
    .route_state_new = breaker_route_state_new,
    .route_state_free = breaker_route_state_free,
    .route_state_carry = breaker_route_state_carry,
    .on_admit = breaker_on_admit,
    .on_try_done = breaker_on_try_done,
    .may_retry = breaker_may_retry,
    .on_end = breaker_on_end,
    .report = breaker_report,
};
