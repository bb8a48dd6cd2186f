/*
 * Fallback responses: the route key `fallback`, the answer a route gives
 * instead of the gateway's JSON error when it fails fast (circuit open,
 * shed, no healthy upstream ...).
 *
 *   fallback: { status: 503, content_type: application/json, body: '{"message":"try again soon"}' }
 *
 * Configuration only: the request path (txn.c) writes the response.
 */
#ifndef GW_MODULES_FALLBACK_FALLBACK_H
#define GW_MODULES_FALLBACK_FALLBACK_H

#include <stddef.h>
#include <stdint.h>

#include "../module.h"
#include "../../gateway/config/config.h"

/*
 * A route's `fallback` section. Owned by the config snapshot: the strings
 * are freed by the module's conf_free with the snapshot.
 */
struct gw_fallback_conf {
	uint32_t status;    /* 200..599, default 503: a 1xx answer cannot end a request */
	char *content_type; /* default "application/json"; no control characters */
	char *body;         /* default ""; any text */
	size_t body_len;
};

/* The module (registry.c): parses `fallback`; no hooks. */
extern const struct gw_module gw_fallback_module;

/* The route's fallback, or NULL when it has none. */
const struct gw_fallback_conf *gw_fallback_conf_of(const struct gw_route_conf *route);

#endif
