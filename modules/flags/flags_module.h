/*
 * Feature flags as an admission step (module.h): a route's `flag` that is
 * off for a request answers flag_off (or when_off.status), or sends the
 * request to the when_off upstream. The route's `flag` key is read by the
 * config loader (it names a flag of the top-level `flags` section and an
 * upstream, both checked there); the values come from the worker's flag
 * snapshot (flag_state.h), never from Redis on the request path.
 */
#ifndef GW_MODULES_FLAGS_FLAGS_MODULE_H
#define GW_MODULES_FLAGS_FLAGS_MODULE_H

#include "../module.h"

extern const struct gw_module gw_flags_module;

#endif
