/*
 * The resilience module interface.
 *
 * A module is a const vtable: its YAML key under a route, how to parse and
 * check that key, the state it keeps per route (shared by all workers), and
 * the hooks a request passes through. modules/registry.c lists the modules in
 * the order they run, so one glance shows the whole request pipeline.
 *
 * Every hook is optional (NULL = not interested).
 */
#ifndef GW_MODULES_MODULE_H
#define GW_MODULES_MODULE_H

#include <stddef.h>

#include "../gateway/config/yaml_tree.h"
#include "../gateway/util/errlist.h"

struct gw_txn;
struct gw_route_conf;

enum gw_verdict {
	GW_VERDICT_NEXT = 0, /* go on with the next module, then the upstream */
	GW_VERDICT_DONE,     /* the module answered the request itself */
};

/* What one upstream try ended with, as modules see it. */
enum gw_try_result {
	GW_TRY_OK = 0,
	GW_TRY_CONNECT_FAILURE,
	GW_TRY_RESET,
	GW_TRY_TIMEOUT,
	GW_TRY_INVALID_RESPONSE,
	GW_TRY_STATUS_FAILURE, /* a 5xx the module counts as failure */
};

struct gw_try {
	enum gw_try_result result;
	int status; /* 0 when no response head arrived */
	unsigned long long duration_us;
};

struct gw_module {
	const char *name; /* its YAML key under a route */
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
	void *(*state_new)(const void *conf);
	void (*state_free)(void *state);
	enum gw_verdict (*on_request)(void *state, struct gw_txn *txn);
	void (*on_try_done)(void *state, struct gw_txn *txn, const struct gw_try *t);
};

/* The registry: modules in the order they run. */
extern const struct gw_module *const gw_modules[];
extern const size_t gw_modules_count;

/* Index of the module whose YAML key is name, or -1. */
int gw_module_find(const char *name);

#endif
