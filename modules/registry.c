/*
 * The order in which resilience modules see a request. Admission modules
 * come first, cheapest refusal first, so a refused request costs no
 * upstream work: a flag that is off, a client over its rate, a level of
 * overload that sheds the route's priority, an open breaker. Then the
 * retry budget counts the request, and the upstream's concurrency limit
 * lets it through or parks it in the priority queue. Retry decides
 * (may_retry) after the breaker, because it spends budget when it says yes.
 * Fallback only rewrites the gateway's own answers.
 *
 * Adding a module: its folder, and one line here.
 */
#include "module.h"
#include "circuit_breaker/breaker.h"
#include "concurrency/concurrency.h"
#include "fallback/fallback.h"
#include "flags/flags_module.h"
#include "rate_limit/rate_limit.h"
#include "retry/retry.h"
#include "shedding/shedding.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../gateway/config/conf_read.h"
#include "../gateway/config/config.h"

const struct gw_module *const gw_modules[] = {
    &gw_flags_module,       /* flag: off -> flag_off, or the when_off upstream */
    &gw_rate_limit_module,  /* rate_limit: token bucket per key -> 429 */
    &gw_shedding_module,    /* overload level by priority -> 503 shed */
    &gw_breaker_module,     /* circuit_breaker: fail fast while the upstream is down */
    &gw_retry_module,       /* retry: try again, within the budget */
    &gw_concurrency_module, /* upstream concurrency limit and priority queue */
    &gw_fallback_module,    /* fallback: the answer given instead of a gateway error */
};

const size_t gw_modules_count = sizeof(gw_modules) / sizeof(gw_modules[0]);

_Static_assert(sizeof(gw_modules) / sizeof(gw_modules[0]) <= GW_MAX_MODULES,
               "route_conf.module_conf has one slot per module");

size_t gw_module_slot_offset[GW_MAX_MODULES];

static pthread_once_t layout_once = PTHREAD_ONCE_INIT;

/* Slots one after the other, each aligned for any type. */
static void lay_out_slots(void)
{
	size_t off = 0, align = _Alignof(max_align_t);

	for (size_t i = 0; i < gw_modules_count; i++) {
		gw_module_slot_offset[i] = off;
		off += (gw_modules[i]->slot_size + align - 1) / align * align;
	}
	if (off > GW_TXN_SLOT_BYTES) {
		fprintf(stderr, "gateway: module slots need %zu bytes, GW_TXN_SLOT_BYTES is %d\n",
		        off, GW_TXN_SLOT_BYTES);
		abort();
	}
}

void gw_modules_init(void)
{
	pthread_once(&layout_once, lay_out_slots);
}

int gw_module_conf_read(const struct gw_module *m, void *conf, const struct gw_node *node,
                        const char *where, const char *file, struct gw_errlist *errs)
{
	struct gw_conf_ctx route = {.file = file, .errs = errs, .where = where}, key = route, ctx;
	char buf[GW_CONF_WHERE_MAX];

	if (!key.where)
		key.where = "a route";
	if (!gw_conf_want_map(&key, node, m->route_key)) {
		gw_conf_apply_defaults(m->fields, conf); /* conf_free finds what it expects */
		return -1;
	}
	gw_conf_ctx_enter(&route, m->route_key, &ctx, buf);
	return gw_conf_read_table(&ctx, node, m->fields, conf);
}

int gw_module_find(const char *key)
{
	for (size_t i = 0; i < gw_modules_count; i++)
		if (gw_modules[i]->route_key && strcmp(gw_modules[i]->route_key, key) == 0)
			return (int)i;
	return -1;
}

size_t gw_module_index(const struct gw_module *m)
{
	for (size_t i = 0; i < gw_modules_count; i++)
		if (gw_modules[i] == m)
			return i;
	abort(); /* an unregistered module is a programming error */
}
