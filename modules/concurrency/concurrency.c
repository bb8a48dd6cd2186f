#include "concurrency.h"
#include "climit.h"
#include "prio_queue.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "../shedding/shedding.h"
#include "../../gateway/generation.h"
#include "../../gateway/stats.h"
#include "../../gateway/txn.h"
#include "../../gateway/util/alloc.h"
#include "../../gateway/util/clock.h"
#include "../../gateway/worker.h"

/* Bounds of a learned limit, per worker. */
#define CLIMIT_MIN     1
#define CLIMIT_MAX     10000
#define CLIMIT_INITIAL 20
/* CoDel interval: a queue standing above target this long is overload, not a burst. */
#define CC_QUEUE_INTERVAL_MS 100

/* One upstream in one worker: its limit, its slots in use, its queue. */
struct cc_upstream {
	const struct gw_upstream_conf *conf;
	bool adaptive;
	uint32_t fixed;    /* the worker's share of a fixed limit */
	uint32_t inflight; /* requests holding a slot */
	struct gw_climit limit;
	struct gw_pq queue;
	bool dispatching; /* dispatch() is on the stack: it will see freed slots */
	/* The process's totals for this upstream (cc_process), and the limit
	 * this worker last added to total_limit. NULL without a process state. */
	_Atomic uint32_t *total_inflight;
	_Atomic int64_t *total_limit;
	uint32_t published;
};

/*
 * Process-wide, per upstream: until when each class is being shed by some
 * worker's queue. Each worker has its own queue, so without this a worker
 * whose queue is calm would keep sending sheddable requests to an upstream
 * that another worker's queue is shedding them from: the classes would mix
 * again at the upstream, normal waiting in one worker while sheddable takes
 * the slots in the other. A queue that refuses a class marks it here for
 * an interval; every worker then refuses that class at once too. Owned by
 * the pipeline; freed after the workers.
 */
struct cc_process {
	size_t nups;
	_Atomic uint64_t (*shed_until_ms)[GW_PRIORITY_COUNT]; /* [upstream][rank] */
	/* Per upstream: slots held by all workers, and the sum of their limits. */
	_Atomic uint32_t *total_inflight;
	_Atomic int64_t *total_limit;
};

/* Per worker: every upstream of the config the worker started with. Owned by the worker. */
struct cc_worker {
	struct cc_process *p;
	struct gw_worker *w;
	struct cc_upstream *ups; /* indexed like config->upstreams; unused for limit off */
	size_t nups;
	struct event *tick_ev;
};

/* Per request. */
struct cc_slot {
	struct gw_pq_entry entry; /* while parked */
	struct gw_txn *txn;
	struct cc_upstream *up; /* where it holds or waits for a slot */
	bool held;              /* holds a slot */
	uint32_t inflight_at_admit;
};

static uint32_t limit_of(const struct cc_upstream *u)
{
	return u->adaptive ? gw_climit_get(&u->limit) : u->fixed;
}

static void take_slot(struct cc_upstream *u, struct cc_slot *slot)
{
	slot->held = true;
	slot->up = u;
	slot->inflight_at_admit = ++u->inflight;
	if (u->total_inflight)
		atomic_fetch_add_explicit(u->total_inflight, 1, memory_order_relaxed);
}

static void give_slot_back(struct cc_upstream *u, struct cc_slot *slot)
{
	slot->held = false;
	u->inflight--;
	if (u->total_inflight)
		atomic_fetch_sub_explicit(u->total_inflight, 1, memory_order_relaxed);
}

/* Keeps this worker's part of total_limit up to date. */
static void publish_limit(struct cc_upstream *u)
{
	uint32_t now = limit_of(u);

	if (!u->total_limit || now == u->published)
		return;
	atomic_fetch_add_explicit(u->total_limit, (int64_t)now - (int64_t)u->published,
	                          memory_order_relaxed);
	u->published = now;
}

/*
 * A critical request whose worker has no free slot may take one that
 * another worker leaves unused: each worker learns its own share of the
 * upstream, and without this a critical request would wait for its own
 * worker's slot while the process as a whole is under the upstream's limit.
 */
static bool spare_elsewhere(const struct cc_upstream *u)
{
	return u->total_inflight &&
	       (int64_t)atomic_load_explicit(u->total_inflight, memory_order_relaxed) <
	           atomic_load_explicit(u->total_limit, memory_order_relaxed);
}

static struct cc_slot *slot_of(struct gw_pq_entry *e)
{
	return (struct cc_slot *)((char *)e - offsetof(struct cc_slot, entry));
}

static void shed_waiter(struct cc_worker *cw, struct cc_slot *slot)
{
	struct gw_txn *txn = slot->txn;
	const struct gw_shedding_conf *sc = &cw->w->config->shedding;
	struct gw_admit_answer a = {
	    .status = 503,
	    .code = "shed",
	    .retry_after_ms = gw_shed_retry_after_ms(sc, gw_worker_random(cw->w)),
	};

	gw_shed_count(txn, "upstream queue standing above target_queue_delay", false);
	gw_txn_refuse(txn, &a); /* may free txn */
}

/* gateway_upstream_queue_wait_seconds: how long a waiter waited, served or shed. */
static void record_wait(struct cc_worker *cw, struct cc_slot *slot, uint64_t now)
{
	struct gw_txn *txn = slot->txn;
	struct gw_upstream_stats *us = txn->wg->gen->upstream_stats[txn->route->upstream->index];
	uint64_t waited = now > slot->entry.enqueued_ms ? now - slot->entry.enqueued_ms : 0;

	if (us)
		gw_histogram_observe(&us->w[cw->w->id].wait[slot->entry.rank], waited * 1000);
}

/*
 * Hands free slots to waiters, highest class first, and sheds what the
 * queue says must go. Resuming a request may end it at once (and end()
 * frees its slot): the dispatching flag turns that recursion into more
 * turns of this loop.
 */
static void dispatch(struct cc_worker *cw, struct cc_upstream *u)
{
	struct gw_pq_entry *e;
	uint64_t now = gw_clock_now_ms();

	if (u->dispatching)
		return;
	u->dispatching = true;
	if (!cw->w->config->shedding.dry_run)
		while ((e = gw_pq_shed_next(&u->queue, now)) != NULL) {
			record_wait(cw, slot_of(e), now);
			shed_waiter(cw, slot_of(e));
		}
	while ((u->inflight < limit_of(u) || (gw_pq_len(&u->queue, 0) > 0 && spare_elsewhere(u))) &&
	       (e = gw_pq_pop(&u->queue, now)) != NULL) {
		struct cc_slot *slot = slot_of(e);

		record_wait(cw, slot, now);
		take_slot(u, slot);
		gw_txn_resume(slot->txn); /* may free it */
	}
	u->dispatching = false;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct cc_worker *cw = arg;

	for (size_t i = 0; i < cw->nups; i++)
		if (cw->ups[i].conf && gw_pq_total(&cw->ups[i].queue) > 0)
			dispatch(cw, &cw->ups[i]);
}

static void *cc_process_new(const struct gw_config *config, struct event_base *main_base)
{
	struct cc_process *p = gw_calloc(1, sizeof(*p));

	p->nups = config->nupstreams;
	p->shed_until_ms = gw_calloc(p->nups ? p->nups : 1, sizeof(*p->shed_until_ms));
	p->total_inflight = gw_calloc(p->nups ? p->nups : 1, sizeof(*p->total_inflight));
	p->total_limit = gw_calloc(p->nups ? p->nups : 1, sizeof(*p->total_limit));
	return p;
}

static void cc_process_free(void *state)
{
	struct cc_process *p = state;

	free(p->shed_until_ms);
	free((void *)p->total_inflight);
	free((void *)p->total_limit);
	free(p);
}

/* This worker's queue refuses rank (and every lower class): tell the others. */
static void mark_shed(struct cc_worker *cw, size_t up, unsigned rank, uint64_t now)
{
	_Atomic uint64_t *until;

	if (!cw->p || up >= cw->p->nups || rank == 0 || rank >= GW_PRIORITY_COUNT)
		return;
	until = &cw->p->shed_until_ms[up][rank];
	if (atomic_load_explicit(until, memory_order_relaxed) < now + CC_QUEUE_INTERVAL_MS)
		atomic_store_explicit(until, now + CC_QUEUE_INTERVAL_MS, memory_order_relaxed);
}

/* Whether some worker sheds a class of rank from..to (1 <= from) of upstream up now. */
static bool shed_elsewhere(const struct cc_worker *cw, size_t up, unsigned from, unsigned to,
                           uint64_t now)
{
	if (!cw->p || up >= cw->p->nups)
		return false;
	for (unsigned r = from ? from : 1; r <= to && r < GW_PRIORITY_COUNT; r++)
		if (now < atomic_load_explicit(&cw->p->shed_until_ms[up][r], memory_order_relaxed))
			return true;
	return false;
}

static void *cc_worker_new(void *process_state, struct gw_worker *w)
{
	const struct gw_config *config = w->config;
	struct cc_worker *cw = gw_calloc(1, sizeof(*cw));
	struct timeval every = {.tv_sec = 0, .tv_usec = GW_CONCURRENCY_TICK_MS * 1000};
	unsigned nworkers = config->workers ? config->workers : 1;
	bool any = false;

	cw->p = process_state;
	cw->w = w;
	cw->nups = config->nupstreams;
	cw->ups = gw_calloc(cw->nups ? cw->nups : 1, sizeof(*cw->ups));
	for (size_t i = 0; i < cw->nups; i++) {
		const struct gw_upstream_conf *uc = &config->upstreams[i];
		struct cc_upstream *u = &cw->ups[i];

		if (uc->climit_mode == GW_CLIMIT_OFF)
			continue;
		any = true;
		u->conf = uc;
		u->adaptive = uc->climit_mode == GW_CLIMIT_ADAPTIVE;
		u->fixed = (uc->climit_fixed + nworkers - 1) / nworkers;
		gw_climit_init(&u->limit, CLIMIT_INITIAL, CLIMIT_MIN, CLIMIT_MAX);
		if (cw->p && i < cw->p->nups) {
			u->total_inflight = &cw->p->total_inflight[i];
			u->total_limit = &cw->p->total_limit[i];
		}
		gw_pq_init(&u->queue, config->shedding.target_queue_delay_ms, CC_QUEUE_INTERVAL_MS);
		publish_limit(u);
	}
	if (any) {
		cw->tick_ev = event_new(w->base, -1, EV_PERSIST, on_tick, cw);
		event_add(cw->tick_ev, &every);
	}
	return cw;
}

static void cc_worker_free(void *state)
{
	struct cc_worker *cw = state;

	if (cw->tick_ev)
		event_free(cw->tick_ev);
	free(cw->ups);
	free(cw);
}

/* A reload: each upstream that keeps its name and stays adaptive keeps
 * what its limit has learned (its queue starts empty: waiters stay with
 * the old state until they are served). */
static void cc_worker_carry(void *state, const void *old_state)
{
	struct cc_worker *cw = state;
	const struct cc_worker *old = old_state;

	for (size_t i = 0; i < cw->nups; i++) {
		struct cc_upstream *u = &cw->ups[i];

		if (!u->conf || !u->adaptive)
			continue;
		for (size_t j = 0; j < old->nups; j++) {
			const struct cc_upstream *o = &old->ups[j];

			if (o->conf && o->adaptive && strcmp(o->conf->name, u->conf->name) == 0) {
				u->limit = o->limit;
				publish_limit(u);
				break;
			}
		}
	}
}

static bool cc_active(const struct gw_route_conf *route)
{
	return route->upstream->climit_mode != GW_CLIMIT_OFF;
}

static enum gw_admit cc_on_admit(struct gw_mod_env *env)
{
	struct cc_worker *cw = env->worker_state;
	struct cc_slot *slot = env->slot;
	struct cc_upstream *u;
	unsigned rank = env->route->priority;

	if (env->route->upstream->index >= cw->nups)
		return GW_ADMIT_NEXT; /* an upstream newer than this worker's table */
	u = &cw->ups[env->route->upstream->index];
	if (!u->conf)
		return GW_ADMIT_NEXT; /* rerouted to an upstream without a limit */
	/* A free slot goes to a class the queue is not shedding (gw_pq_yield:
	 * at 4x a sheddable request must not take the slot a normal one is
	 * being refused for). */
	size_t up = env->route->upstream->index;
	/* A class above this one is shed somewhere: free slots go to it, not
	 * to this one (at 4x a sheddable request must not take the slot a
	 * normal one is refused for in another worker). */
	bool refuse = rank > 1 && shed_elsewhere(cw, up, 1, rank - 1, env->now_ms);

	if (!refuse && u->inflight < limit_of(u) && gw_pq_total(&u->queue) == 0) {
		if (!gw_pq_yield(&u->queue, rank, env->now_ms)) {
			take_slot(u, slot);
			return GW_ADMIT_NEXT;
		}
		refuse = true; /* gw_pq_yield implies gw_pq_refuse */
		mark_shed(cw, up, rank, env->now_ms);
	}
	if (rank == 0 && gw_pq_len(&u->queue, 0) == 0 && spare_elsewhere(u)) {
		take_slot(u, slot);
		return GW_ADMIT_NEXT;
	}
	/* No free slot: a class shed somewhere does not wait here either. */
	if (!refuse && rank > 0 && shed_elsewhere(cw, up, 1, rank, env->now_ms))
		refuse = true;
	if (!refuse && gw_pq_refuse(&u->queue, rank, env->now_ms)) {
		refuse = true;
		mark_shed(cw, up, rank, env->now_ms);
	}
	if (refuse) {
		bool dry = cw->w->config->shedding.dry_run;

		gw_shed_count(env->txn, "upstream queue standing above target", dry);
		if (!dry) {
			env->answer.status = 503;
			env->answer.code = "shed";
			env->answer.retry_after_ms = gw_shed_retry_after_ms(
			    &cw->w->config->shedding, gw_worker_random(env->worker));
			return GW_ADMIT_ANSWER;
		}
	}
	slot->txn = env->txn;
	slot->up = u;
	gw_pq_push(&u->queue, &slot->entry, rank, env->now_ms);
	return GW_ADMIT_PARK;
}

static void cc_on_try_done(struct gw_mod_env *env, const struct gw_try *t)
{
	struct cc_slot *slot = env->slot;

	if (slot->held && slot->up->adaptive) {
		gw_climit_sample(&slot->up->limit, env->now_ms, t->duration_us,
		                 slot->inflight_at_admit,
		                 t->result != GW_TRY_TIMEOUT && t->result != GW_TRY_RESET);
		publish_limit(slot->up);
	}
}

static void cc_on_end(struct gw_mod_env *env)
{
	struct cc_slot *slot = env->slot;
	struct cc_upstream *u = slot->up;

	if (!u)
		return;
	gw_pq_remove(&u->queue, &slot->entry, env->now_ms);
	if (slot->held) {
		give_slot_back(u, slot);
		dispatch(env->worker_state, u);
	}
}

void gw_concurrency_stats(struct gw_worker *w, size_t upstream, struct gw_concurrency_stats *out)
{
	struct cc_worker *cw = gw_worker_mod_state(w, &gw_concurrency_module);
	const struct cc_upstream *u;

	*out = (struct gw_concurrency_stats){0};
	if (!cw || upstream >= cw->nups || !cw->ups[upstream].conf)
		return;
	u = &cw->ups[upstream];
	out->limit = u->adaptive ? gw_climit_learned(&u->limit) : u->fixed;
	out->inflight = u->inflight;
	for (unsigned r = 0; r < GW_PRIORITY_COUNT; r++)
		out->queued[r] = gw_pq_len(&u->queue, r);
	out->min_rtt_us = u->adaptive ? gw_climit_min_rtt_us(&u->limit) : 0;
	out->rtt_us = u->adaptive ? gw_climit_rtt_us(&u->limit) : 0;
}

const struct gw_module gw_concurrency_module = {
    .name = "concurrency",
    .route_key = NULL, /* the upstream's concurrency_limit */
    .active = cc_active,
    .slot_size = sizeof(struct cc_slot),
    .process_state_new = cc_process_new,
    .process_state_free = cc_process_free,
    .worker_state_new = cc_worker_new,
    .worker_state_free = cc_worker_free,
    .worker_state_carry = cc_worker_carry,
    .on_admit = cc_on_admit,
    .on_try_done = cc_on_try_done,
    .on_end = cc_on_end,
};
