#include "rate_limit.h"
#include "bucket_table.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../../gateway/config/conf_read.h"
#include "../../gateway/config/config.h"
#include "../../gateway/txn.h"
#include "../../gateway/util/alloc.h"

#define SEC  1000ull
#define HOUR (3600 * SEC)

/* ---- the `rate_limit` section -------------------------------------------- */

static const char *const rate_limit_keys[] = {"rate", "per", "burst", "by", "max_keys", NULL};

static void parse_by(struct gw_rate_limit_conf *c, const struct gw_conf_ctx *ctx,
                     const struct gw_node *v)
{
	if (!gw_conf_want_scalar(ctx, v, "by", "client_ip, route or header:NAME"))
		return;
	if (strcmp(v->value, "client_ip") == 0) {
		c->by = GW_RL_BY_CLIENT_IP;
	} else if (strcmp(v->value, "route") == 0) {
		c->by = GW_RL_BY_ROUTE;
	} else if (strncmp(v->value, "header:", 7) == 0 && v->value[7] &&
	           strspn(v->value + 7, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                                "0123456789-_") == strlen(v->value + 7)) {
		c->by = GW_RL_BY_HEADER;
		free(c->header);
		c->header = gw_strdup(v->value + 7);
	} else {
		gw_conf_bad_value(ctx, v, "by", "expected client_ip, route or header:NAME, got '%s'",
		                  v->value);
	}
}

static int rate_limit_conf_parse(void *conf, const struct gw_node *node, const char *where,
                                 const char *file, struct gw_errlist *errs)
{
	struct gw_rate_limit_conf *c = conf;
	struct gw_conf_ctx route_ctx = {.file = file, .errs = errs, .where = where}, key_ctx, ctx;
	const struct gw_node *v;
	char buf[GW_CONF_WHERE_MAX];
	size_t errors_before = errs->count;
	bool burst_set = false;

	c->per_ms = SEC;
	c->by = GW_RL_BY_CLIENT_IP;
	c->max_keys = 100000;
	c->rate = 1;
	key_ctx = route_ctx;
	if (!key_ctx.where)
		key_ctx.where = "a route";
	if (!gw_conf_want_map(&key_ctx, node, "rate_limit"))
		return -1;
	gw_conf_ctx_enter(&route_ctx, "rate_limit", &ctx, buf);
	gw_conf_check_keys(&ctx, node, rate_limit_keys);
	if ((v = gw_node_get(node, "rate")))
		gw_conf_double(&ctx, v, "rate", 0, 100000, true, &c->rate);
	else
		gw_conf_missing_key(&ctx, node, "rate");
	if ((v = gw_node_get(node, "per")))
		gw_conf_duration(&ctx, v, "per", 1, HOUR, &c->per_ms);
	if ((v = gw_node_get(node, "burst")))
		burst_set = gw_conf_u32(&ctx, v, "burst", 1, 100000000, &c->burst) == 0;
	if ((v = gw_node_get(node, "by")))
		parse_by(c, &ctx, v);
	if ((v = gw_node_get(node, "max_keys")))
		gw_conf_u32(&ctx, v, "max_keys", 1, 10000000, &c->max_keys);
	if (!burst_set)
		c->burst = c->rate < 1 ? 1 : (uint32_t)fmin(ceil(c->rate), 100000000);
	return errs->count == errors_before ? 0 : -1;
}

static void rate_limit_conf_free(void *conf)
{
	struct gw_rate_limit_conf *c = conf;

	free(c->header);
}

/* ---- the admission step -------------------------------------------------- */

/* A route's buckets and what they refused. Owned by the pipeline. */
struct rl_route {
	struct gw_bucket_table *table;
	atomic_ullong refused;
};

static void *rl_route_state_new(const void *conf, const struct gw_route_conf *route)
{
	const struct gw_rate_limit_conf *c = conf;
	struct rl_route *rl = gw_calloc(1, sizeof(*rl));

	/* by: route has one key: no room for more */
	rl->table = gw_bucket_table_new(c->rate, c->per_ms, c->burst,
	                                c->by == GW_RL_BY_ROUTE ? 1 : c->max_keys);
	return rl;
}

static void rl_route_state_free(void *state)
{
	struct rl_route *rl = state;

	gw_bucket_table_free(rl->table);
	free(rl);
}

static enum gw_admit rl_on_admit(struct gw_mod_env *env)
{
	const struct gw_rate_limit_conf *c = env->conf;
	struct rl_route *rl = env->route_state;
	const char *key = "";
	uint64_t wait;

	if (c->by == GW_RL_BY_CLIENT_IP)
		key = gw_txn_client_ip(env->txn);
	else if (c->by == GW_RL_BY_HEADER && !(key = gw_txn_header(env->txn, c->header)))
		key = ""; /* no header: one shared bucket */
	wait = gw_bucket_take(rl->table, key, strlen(key), env->now_ms);
	if (wait == 0)
		return GW_ADMIT_NEXT;
	atomic_fetch_add_explicit(&rl->refused, 1, memory_order_relaxed);
	env->answer.status = 429;
	env->answer.code = "rate_limited";
	env->answer.retry_after_ms = wait;
	return GW_ADMIT_ANSWER;
}

uint64_t gw_rate_limit_refused(const void *route_state)
{
	const struct rl_route *rl = route_state;

	return rl ? atomic_load(&((struct rl_route *)rl)->refused) : 0;
}

static void rl_report(const void *state, struct gw_report *out)
{
	struct rl_route *rl = (struct rl_route *)state;

	out->add(out, "rate_limited", (double)gw_rate_limit_refused(state));
	out->add(out, "keys", (double)gw_bucket_table_keys(rl->table));
}

const struct gw_module gw_rate_limit_module = {
    .name = "rate_limit",
    .route_key = "rate_limit",
    .conf_size = sizeof(struct gw_rate_limit_conf),
    .conf_parse = rate_limit_conf_parse,
    .conf_free = rate_limit_conf_free,
    .route_state_new = rl_route_state_new,
    .route_state_free = rl_route_state_free,
    .on_admit = rl_on_admit,
    .report = rl_report,
};
