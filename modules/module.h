/*
 * The resilience module interface: the only way a request reaches a module.
 *
 * A module is a const vtable: its YAML key under a route (if it has one),
 * how to parse and check that key, the state it keeps, and the hooks a
 * request passes through. modules/registry.c lists the modules in the order
 * they run, so one glance shows the whole request pipeline; the core
 * (gateway/pipeline.c) builds each route's list of interested modules once,
 * when the config loads, and calls nothing else.
 *
 * A request's way through the hooks (gateway/txn.c drives it):
 *
 *   on_admit     in registry order, before any upstream work. A module says
 *                go on (NEXT), answer now (ANSWER: status, error code,
 *                Retry-After), wait (PARK: the module keeps the request in a
 *                queue and later calls gw_txn_resume or gw_txn_refuse), or
 *                send the request as another route (REROUTE: a flag's
 *                when_off upstream). The request's deadline runs while it
 *                is parked.
 *   on_try_done  once per upstream try, whatever ended it.
 *   may_retry    after a failed try: every interested module must agree.
 *                A module that spends something to say yes (the retry
 *                budget) must come after the modules that may still say no.
 *   on_answer    the gateway is about to send one of its own error answers
 *                (circuit_open, shed, ...) for a routed request: a module
 *                may rewrite it (a route's fallback).
 *   on_end       always, once, however the request ended (answered,
 *                failed, client gone, deadline while parked): give back
 *                what on_admit took (a probe slot, a concurrency slot).
 *
 * State, at three lifetimes:
 *   process  one per module (process_state_new), e.g. the overload level;
 *   route    one per route (route_state_new), shared by every worker and
 *            keyed by the route's name, so a reload can carry it over;
 *   worker   one per module per worker thread (worker_state_new), for what
 *            must not take a lock (queues, counters);
 *   request  slot_size bytes inside the transaction, zeroed when it starts:
 *            no allocation per request.
 *
 * A reload builds every state anew from the new config, then calls the
 * carry hooks: the new state takes over what must survive the reload from
 * the old one (an open breaker stays open, a learned limit stays learned),
 * for the route of the same name and the worker of the same id. The old
 * state stays in use by the requests that started on it until they end.
 *
 * Every hook and state is optional (NULL = not interested).
 */
#ifndef GW_MODULES_MODULE_H
#define GW_MODULES_MODULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../gateway/config/yaml_tree.h"
#include "../gateway/try_result.h"
#include "../gateway/util/errlist.h"

struct gw_txn;
struct gw_worker;
struct gw_config;
struct gw_route_conf;
struct gw_error_reply;
struct event_base;
struct gw_conf_field;

enum gw_admit {
	GW_ADMIT_NEXT = 0, /* go on with the next module, then the upstream */
	GW_ADMIT_ANSWER,   /* answer now with env->answer */
	GW_ADMIT_PARK,     /* the module queued the request; it resumes or refuses it later */
	GW_ADMIT_REROUTE,  /* go on as env->reroute (same name and state, other upstream) */
};

/* An answer the gateway makes itself (SPEC section 4). */
struct gw_admit_answer {
	int status;
	const char *code;        /* "shed", "circuit_open", ... (static storage) */
	uint64_t retry_after_ms; /* > 0: Retry-After, rounded up to whole seconds */
};

/*
 * What a hook sees: the request, and this module's part of each state. Built
 * by the core for each call; valid during the call only.
 */
struct gw_mod_env {
	struct gw_txn *txn;
	struct gw_worker *worker;
	const struct gw_route_conf *route;
	uint64_t now_ms;
	const void *conf;   /* the route's section of this module, NULL without one */
	void *route_state;  /* route_state_new's result for this route */
	void *worker_state; /* worker_state_new's result for this worker */
	void *slot;         /* slot_size bytes in the transaction */
	/* filled by on_admit */
	struct gw_admit_answer answer;       /* with GW_ADMIT_ANSWER */
	const struct gw_route_conf *reroute; /* with GW_ADMIT_REROUTE */
};

/*
 * A module's report for /status and /metrics: name/value pairs added one by
 * one ("state", "tries", ...). The consumer owns the struct.
 */
struct gw_report {
	void (*add)(struct gw_report *r, const char *name, double value);
	void *arg;
};

struct gw_module {
	const char *name;      /* in logs and reports */
	const char *route_key; /* its YAML key under a route; NULL: none */
	/*
	 * The keys of its route section, declared once with their bounds and
	 * defaults (conf_read.h); conf_parse reads them with
	 * gw_module_conf_read. NULL: the module parses by hand, or has none.
	 */
	const struct gw_conf_field *fields;
	size_t conf_size;
	/*
	 * Fill conf (zeroed, conf_size bytes) from node; add errors to errs.
	 * where names the route in messages ("route 'checkout'", or "route 3"
	 * before it has a usable name), so they read "'attempts' in retry of
	 * route 'checkout': ...". NULL when unknown: "in retry", "in a route".
	 */
	int (*conf_parse)(void *conf, const struct gw_node *node, const char *where,
	                  const char *file, struct gw_errlist *errs);
	/* Cross-checks against the route once everything is parsed. */
	int (*conf_check)(const void *conf, const struct gw_route_conf *route, const char *file,
	                  struct gw_errlist *errs);
	void (*conf_free)(void *conf);

	/* Whether a route runs this module; NULL: when it has the route key. */
	bool (*active)(const struct gw_route_conf *route);
	size_t slot_size; /* per-request bytes; at most GW_TXN_SLOT_BYTES in all */

	void *(*process_state_new)(const struct gw_config *config, struct event_base *main_base);
	void (*process_state_free)(void *state);
	/* Reload: takes over what old (same module, previous config) knows. */
	void (*process_state_carry)(void *state, const void *old);
	/* conf may be NULL (an active module without a route section). */
	void *(*route_state_new)(const void *conf, const struct gw_route_conf *route);
	void (*route_state_free)(void *state);
	/* Reload: old is the state of the route of the same name. */
	void (*route_state_carry)(void *state, const void *old);
	/* Made on the worker's thread (or before it runs), with w->config the
	 * config of the generation it belongs to. */
	void *(*worker_state_new)(void *process_state, struct gw_worker *w);
	void (*worker_state_free)(void *state);
	/* Reload, on the worker's thread: old is this worker's previous state. */
	void (*worker_state_carry)(void *state, const void *old);

	enum gw_admit (*on_admit)(struct gw_mod_env *env);
	void (*on_try_done)(struct gw_mod_env *env, const struct gw_try *t);
	/* *backoff_ms: the wait before the next try (the largest asked wins). */
	bool (*may_retry)(struct gw_mod_env *env, const struct gw_try *t, uint64_t *backoff_ms);
	void (*on_answer)(struct gw_mod_env *env, struct gw_error_reply *e);
	void (*on_end)(struct gw_mod_env *env);

	void (*report)(const void *route_state, struct gw_report *out);
};

/* The registry: modules in the order they run. */
extern const struct gw_module *const gw_modules[];
extern const size_t gw_modules_count;
/* Bytes of the per-request slots in every transaction (gw_txn.mod_slots). */
#define GW_TXN_SLOT_BYTES 256
/* Where each module's request slot starts in gw_txn.mod_slots (after gw_modules_init). */
extern size_t gw_module_slot_offset[];
/* Lays out the request slots; aborts when they do not fit. Idempotent, thread-safe. */
void gw_modules_init(void);

/*
 * The usual conf_parse of a module m with fields: node, the value of
 * m->route_key, must be a mapping ("'retry' in route 'r': expected a
 * mapping, got a list"; "in a route" when where is NULL), read with
 * gw_conf_read_table in "ROUTE_KEY of WHERE". Every default is set
 * whatever the shape. 0, or -1 when anything was reported.
 */
int gw_module_conf_read(const struct gw_module *m, void *conf, const struct gw_node *node,
                        const char *where, const char *file, struct gw_errlist *errs);

/* Index of the module whose route key is key, or -1. */
int gw_module_find(const char *key);
/* Index of module m in the registry (m must be registered). */
size_t gw_module_index(const struct gw_module *m);

#endif
