/*
 * The module pipeline (modules/module.h): each module's state, and each
 * route's list of the modules it runs, built once when the config loads;
 * and the calls through which the request path reaches the modules.
 *
 * Ownership: the server owns the pipeline (gw_pipeline_new at start-up,
 * gw_pipeline_free at exit); each worker owns its worker states
 * (gw_pipeline_worker_new/free). Route states are indexed like
 * config->routes and carry the route's name: a reload keeps the state of
 * the routes that keep their names.
 */
#ifndef GW_PIPELINE_H
#define GW_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "try_result.h"

struct gw_module;
struct gw_txn;
struct gw_worker;
struct gw_error_reply;
struct gw_admit_answer;
struct event_base;
struct gw_stats;
struct gw_route_stats;

/* One route: its modules' states and, per hook, the modules that have it. */
struct gw_route_state {
	char *name;                   /* owned */
	struct gw_route_stats *stats; /* its counters (stats.h); NULL without a registry */
	void *mod[GW_MAX_MODULES];    /* route_state_new's results; NULL for none */
	uint8_t admit[GW_MAX_MODULES], nadmit;
	uint8_t try_done[GW_MAX_MODULES], ntry_done;
	uint8_t retry[GW_MAX_MODULES], nretry;
	uint8_t answer[GW_MAX_MODULES], nanswer;
	uint8_t end[GW_MAX_MODULES], nend;
};

struct gw_pipeline {
	void *process[GW_MAX_MODULES]; /* process_state_new's results */
	struct gw_route_state *routes; /* indexed like config->routes */
	size_t nroutes;
};

/*
 * main_base: the main thread's loop, for modules that keep process-wide
 * timers. stats (may be NULL): where routes find their counters. old (may
 * be NULL): the pipeline of the previous config, whose states the new ones
 * take over (modules' carry hooks): process states, and route states by
 * route name.
 */
struct gw_pipeline *gw_pipeline_new(const struct gw_config *config, struct event_base *main_base,
                                    struct gw_stats *stats, const struct gw_pipeline *old);
void gw_pipeline_free(struct gw_pipeline *p);

/* Module m's state for route index route (NULL when the route does not run m). */
void *gw_pipeline_route_state(const struct gw_pipeline *p, size_t route, const struct gw_module *m);
/* Module m's process state. */
void *gw_pipeline_process_state(const struct gw_pipeline *p, const struct gw_module *m);

/*
 * Fills mod_state with worker w's module states for p (on w's thread, or
 * before it runs; w->config is p's config), taking over old's (the
 * worker's states of the previous config; NULL: none).
 * gw_pipeline_worker_free releases them.
 */
void gw_pipeline_worker_new(struct gw_pipeline *p, struct gw_worker *w, void **mod_state,
                            void *const *old);
void gw_pipeline_worker_free(void **mod_state);

/* ---- the request path ---------------------------------------------------- */

/* What the admission steps decided (gw_pipeline_admit). */
enum gw_pipeline_verdict {
	GW_PIPELINE_GO = 0, /* every module let it through: on to the upstream */
	GW_PIPELINE_ANSWER, /* *answer says what to send */
	GW_PIPELINE_PARKED, /* a module keeps it; it calls gw_txn_resume or gw_txn_refuse */
};

/*
 * Runs on_admit of txn->rs's modules from position from (0 at first; after
 * a park, the one after the parking module). A REROUTE changes txn->route
 * and txn->pool and goes on.
 */
enum gw_pipeline_verdict gw_pipeline_admit(struct gw_txn *txn, size_t from,
                                           struct gw_admit_answer *answer);
void gw_pipeline_try_done(struct gw_txn *txn, const struct gw_try *t);
/* Whether every interested module lets the failed try t be tried again. */
bool gw_pipeline_may_retry(struct gw_txn *txn, const struct gw_try *t, uint64_t *backoff_ms);
void gw_pipeline_answer(struct gw_txn *txn, struct gw_error_reply *e);
void gw_pipeline_end(struct gw_txn *txn);

#endif
