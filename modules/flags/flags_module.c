#include "flags_module.h"

#include <event2/http.h>

#include "flag_state.h"
#include "../../gateway/txn.h"
#include "../../gateway/worker.h"

static bool flags_active(const struct gw_route_conf *route)
{
	return route->flag != NULL;
}

static enum gw_admit flags_on_admit(struct gw_mod_env *env)
{
	struct gw_txn *txn = env->txn;
	/* a request of the config before a reload reads the values made for it */
	const struct gw_flags_snap *snap =
	    env->worker->flags && env->worker->flags->config != txn->config &&
	            env->worker->flags_prev && env->worker->flags_prev->config == txn->config
	        ? env->worker->flags_prev
	        : env->worker->flags;
	const struct gw_route_conf *r = gw_flags_admit(
	    snap, txn->config, env->route,
	    txn->req ? evhttp_request_get_input_headers(txn->req) : NULL, gw_txn_client_ip(txn));

	if (!r) {
		env->answer.status = (int)env->route->flag->when_off_status;
		env->answer.code = "flag_off";
		return GW_ADMIT_ANSWER;
	}
	if (r == env->route)
		return GW_ADMIT_NEXT;
	env->reroute = r;
	return GW_ADMIT_REROUTE;
}

const struct gw_module gw_flags_module = {
    .name = "flags",
    .route_key = NULL, /* the route's `flag`, read by the config loader */
    .active = flags_active,
    .on_admit = flags_on_admit,
};
