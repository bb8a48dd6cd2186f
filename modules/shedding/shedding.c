#include "shedding.h"
#include "overload.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>

#include "../flags/flag_state.h"
#include "../../gateway/pipeline.h"
#include "../../gateway/server.h"
#include "../../gateway/stats.h"
#include "../../gateway/txn.h"
#include "../../gateway/util/alloc.h"
#include "../../gateway/util/clock.h"
#include "../../gateway/util/log.h"
#include "../../gateway/util/log_limit.h"
#include "../../gateway/worker.h"

/*
 * Process-wide: the detector (main thread only) and what workers read and
 * count (atomics). Owned by the pipeline; freed after the workers.
 */
struct shed_process {
	struct gw_shedding_conf conf;
	struct gw_overload_conf oconf;
	struct gw_overload detector; /* main thread only */
	struct event *sample_ev;     /* on the main loop, every GW_SHED_SAMPLE_MS */
	atomic_uint level;           /* the detector's last level */
	atomic_uint inflight;        /* requests between admission and their end */
	_Atomic uint64_t max_lag_ms; /* worst loop lag since the last sample */
	uint64_t prev_lag_ms;        /* the previous sample's (main thread only) */
	atomic_ullong shed[GW_PRIORITY_COUNT], dry_run[GW_PRIORITY_COUNT];
	struct gw_log_limit shed_log; /* one line a second about refused requests */
};

/* Per worker: the loop-lag probe and the dry-run log limiter. Owned by the worker. */
struct shed_worker {
	struct shed_process *p;
	struct event *lag_ev;
	uint64_t lag_expected_us; /* when the probe should fire next */
	uint64_t last_log_ms;
};

/* Per request: it is counted in shed_process.inflight. */
struct shed_slot {
	bool counted;
};

uint64_t gw_shed_retry_after_ms(const struct gw_shedding_conf *c, uint64_t random64)
{
	/* uniform in [0.8, 1.2] x retry_after, so refused clients spread out */
	uint64_t span = c->retry_after_ms * 2 / 5;

	return c->retry_after_ms - c->retry_after_ms / 5 + (span ? random64 % (span + 1) : 0);
}

void gw_shed_count(struct gw_txn *txn, const char *why, bool dry_run)
{
	struct gw_worker *w = txn->worker;
	const struct gw_route_conf *route = txn->route;
	struct shed_worker *sw = gw_worker_mod_state(w, &gw_shedding_module);
	uint64_t now;

	gw_stats_event(txn->rs ? txn->rs->stats : NULL, w->id,
	               dry_run ? GW_EV_SHED_DRY_RUN : GW_EV_SHED);
	if (!sw || !sw->p)
		return;
	atomic_fetch_add_explicit(dry_run ? &sw->p->dry_run[route->priority]
	                                  : &sw->p->shed[route->priority],
	                          1, memory_order_relaxed);
	now = gw_clock_now_ms();
	if (!dry_run) {
		/* An operator sees shedding in the log as it happens (and in
		 * /metrics): at most one line a second for the whole process,
		 * with how many refusals it stands for. */
		unsigned more;

		if (gw_log_limit_pass(&sw->p->shed_log, now, 1000, &more))
			gw_log(GW_LOG_WARN,
			       "shedding: refused a request of route %s (%s): %s (%u more since "
			       "the last line)",
			       route->name, gw_priority_name(route->priority), why, more);
		return;
	}
	if (now - sw->last_log_ms < 1000 && sw->last_log_ms)
		return;
	sw->last_log_ms = now;
	gw_log(GW_LOG_WARN, "shedding dry run: would shed route %s (%s): %s", route->name,
	       gw_priority_name(route->priority), why);
}

void gw_shed_stats(const void *state, struct gw_shed_stats *out)
{
	struct shed_process *p = (struct shed_process *)state;

	out->level = atomic_load(&p->level);
	out->inflight = atomic_load(&p->inflight);
	for (unsigned i = 0; i < GW_PRIORITY_COUNT; i++) {
		out->shed[i] = atomic_load(&p->shed[i]);
		out->dry_run[i] = atomic_load(&p->dry_run[i]);
	}
	snprintf(out->reason, sizeof(out->reason), "%s", gw_overload_reason(&p->detector));
}

/* ---- the detector, on the main thread ------------------------------------ */

/*
 * Every GW_SHED_SAMPLE_MS: in-flight and loop lag into the detector. The lag
 * must be sustained, seen in two samples in a row: a loop that is really
 * saturated is late at every probe, while a single late probe is usually
 * the process being descheduled for a moment on a busy machine, which is no
 * reason to shed anybody.
 */
static void on_sample(evutil_socket_t fd, short what, void *arg)
{
	struct shed_process *p = arg;
	uint64_t seen = atomic_exchange(&p->max_lag_ms, 0);
	uint64_t lag = seen < p->prev_lag_ms ? seen : p->prev_lag_ms;
	unsigned before = gw_overload_level(&p->detector);
	unsigned level;

	p->prev_lag_ms = seen;
	level = gw_overload_update(&p->detector, gw_clock_now_ms(), atomic_load(&p->inflight), lag);

	atomic_store_explicit(&p->level, level, memory_order_relaxed);
	if (level != before)
		gw_log(GW_LOG_WARN, "overload level %u -> %u: %s", before, level,
		       gw_overload_reason(&p->detector));
}

static void *shed_process_new(const struct gw_config *config, struct event_base *main_base)
{
	struct shed_process *p = gw_calloc(1, sizeof(*p));
	struct timeval every = {.tv_sec = 0, .tv_usec = GW_SHED_SAMPLE_MS * 1000};

	p->conf = config->shedding;
	p->oconf.max_inflight = config->shedding.max_inflight;
	p->oconf.max_loop_lag_ms = config->shedding.max_loop_lag_ms;
	gw_overload_init(&p->detector, &p->oconf);
	if (main_base) {
		p->sample_ev = event_new(main_base, -1, EV_PERSIST, on_sample, p);
		event_add(p->sample_ev, &every);
	}
	return p;
}

/* A reload: the counts go on, and the detector keeps its level and calm
 * time (the new in-flight count starts from the requests of the new
 * config, and rises at once if they are many). */
static void shed_process_carry(void *state, const void *old_state)
{
	struct shed_process *p = state;
	const struct shed_process *old = old_state;

	for (unsigned i = 0; i < GW_PRIORITY_COUNT; i++) {
		atomic_store(&p->shed[i], atomic_load(&old->shed[i]));
		atomic_store(&p->dry_run[i], atomic_load(&old->dry_run[i]));
	}
	p->detector = old->detector;
	p->detector.conf = p->oconf; /* the new settings */
	atomic_store(&p->level, atomic_load(&old->level));
}

static void shed_process_free(void *state)
{
	struct shed_process *p = state;

	if (p->sample_ev)
		event_free(p->sample_ev);
	free(p);
}

/* ---- loop lag, in each worker -------------------------------------------- */

/*
 * A timer that should fire every GW_SHED_LAG_PROBE_MS fires late by as
 * long as the loop was busy with other work: that lateness is the loop
 * lag, the time a new event (a request) waits before the worker looks at
 * it. The worst since the detector's last sample is kept.
 */
static void on_lag_probe(evutil_socket_t fd, short what, void *arg)
{
	struct shed_worker *sw = arg;
	uint64_t now = gw_clock_now_us();
	uint64_t lag = now > sw->lag_expected_us ? (now - sw->lag_expected_us) / 1000 : 0;
	uint64_t seen = atomic_load_explicit(&sw->p->max_lag_ms, memory_order_relaxed);

	while (lag > seen && !atomic_compare_exchange_weak(&sw->p->max_lag_ms, &seen, lag))
		;
	sw->lag_expected_us = now + GW_SHED_LAG_PROBE_MS * 1000;
}

static void *shed_worker_new(void *process_state, struct gw_worker *w)
{
	struct shed_worker *sw = gw_calloc(1, sizeof(*sw));
	struct timeval every = {.tv_sec = 0, .tv_usec = GW_SHED_LAG_PROBE_MS * 1000};

	sw->p = process_state;
	if (sw->p) {
		sw->lag_ev = event_new(w->base, -1, EV_PERSIST, on_lag_probe, sw);
		sw->lag_expected_us = gw_clock_now_us() + GW_SHED_LAG_PROBE_MS * 1000;
		event_add(sw->lag_ev, &every);
	}
	return sw;
}

static void shed_worker_free(void *state)
{
	struct shed_worker *sw = state;

	if (sw->lag_ev)
		event_free(sw->lag_ev);
	free(sw);
}

/* ---- the admission step -------------------------------------------------- */

static bool shed_active(const struct gw_route_conf *route)
{
	return true; /* every route has a priority */
}

static enum gw_admit shed_on_admit(struct gw_mod_env *env)
{
	struct shed_worker *sw = env->worker_state;
	struct shed_process *p = sw->p;
	struct shed_slot *slot = env->slot;
	const struct gw_flags_snap *flags = env->worker->flags;
	unsigned rank = env->route->priority, level;
	uint32_t inflight;
	const char *why;

	if (!p)
		return GW_ADMIT_NEXT;
	inflight = atomic_fetch_add_explicit(&p->inflight, 1, memory_order_relaxed);
	slot->counted = true;
	if (inflight >= p->conf.max_inflight) {
		why = "max_inflight reached";
	} else {
		if (flags && flags->shed_level != GW_SHED_LEVEL_AUTO) {
			level = (unsigned)flags->shed_level;
			why = "level forced by the operator";
		} else {
			unsigned now_level = gw_overload_instant_level(&p->oconf, inflight + 1);
			level = atomic_load_explicit(&p->level, memory_order_relaxed);
			if (now_level > level)
				level = now_level;
			why = "overload level";
		}
		if (!gw_overload_sheds(level, rank))
			return GW_ADMIT_NEXT;
	}
	gw_shed_count(env->txn, why, p->conf.dry_run);
	if (p->conf.dry_run)
		return GW_ADMIT_NEXT;
	env->answer.status = 503;
	env->answer.code = "shed";
	env->answer.retry_after_ms =
	    gw_shed_retry_after_ms(&p->conf, gw_worker_random(env->worker));
	return GW_ADMIT_ANSWER;
}

static void shed_on_end(struct gw_mod_env *env)
{
	struct shed_worker *sw = env->worker_state;
	struct shed_slot *slot = env->slot;

	if (slot->counted)
		atomic_fetch_sub_explicit(&sw->p->inflight, 1, memory_order_relaxed);
}

const struct gw_module gw_shedding_module = {
    .name = "shedding",
    .route_key = NULL, /* the top-level `shedding` section and each route's priority */
    .active = shed_active,
    .slot_size = sizeof(struct shed_slot),
    .process_state_new = shed_process_new,
    .process_state_free = shed_process_free,
    .process_state_carry = shed_process_carry,
    .worker_state_new = shed_worker_new,
    .worker_state_free = shed_worker_free,
    .on_admit = shed_on_admit,
    .on_end = shed_on_end,
};
