/*
 * Rate limits per route (SPEC section 5): a token bucket per key.
 *
 *   rate_limit:
 *     rate: 100          # tokens per `per` (required; more than 0, at most 100000)
 *     per: 1s            # 1ms..1h, default 1s
 *     burst: 50          # the bucket's size: requests allowed at once; default: rate, rounded up
 *     by: client_ip      # client_ip | route | header:NAME (default client_ip)
 *     max_keys: 100000   # keys remembered at most; default 100000
 *
 * Over the limit: 429 rate_limited, Retry-After = time until the next token.
 * With by: header:NAME, requests without that header share one bucket.
 * The buckets of a route are shared by every worker (bucket_table.h), in a
 * table of fixed size: memory stays bounded whatever the number of keys.
 */
#ifndef GW_MODULES_RATE_LIMIT_RATE_LIMIT_H
#define GW_MODULES_RATE_LIMIT_RATE_LIMIT_H

#include <stdint.h>

#include "../module.h"

enum gw_rate_limit_key {
	GW_RL_BY_CLIENT_IP = 0,
	GW_RL_BY_ROUTE,
	GW_RL_BY_HEADER,
};

/* A route's `rate_limit` section. Owned by the config snapshot (header freed by conf_free). */
struct gw_rate_limit_conf {
	double rate;
	uint64_t per_ms;
	uint32_t burst; /* >= 1 once parsed */
	enum gw_rate_limit_key by;
	char *header; /* with GW_RL_BY_HEADER */
	uint32_t max_keys;
};

extern const struct gw_module gw_rate_limit_module;

/* Requests refused by the route's limit since start (route state of the module). */
uint64_t gw_rate_limit_refused(const void *route_state);

#endif
