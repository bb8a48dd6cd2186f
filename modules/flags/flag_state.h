/*
 * Feature flags and operator toggles: the values, where each one comes
 * from, and the immutable snapshot that workers read on the request path.
 *
 * Why modules/flags/ and not gateway/: flags are one of the admission
 * steps of a request (flags, rate limit, shedding, breaker), like the other
 * resilience modules; the gateway core only calls gw_flags_admit from txn.c
 * and hands snapshots to its workers. The Redis client they use is core
 * (gateway/redis/), because it knows nothing about flags.
 *
 * The pieces:
 *
 *   flag_value.h   spelling of values, FNV bucketing (pure functions)
 *   flag_state.h   layers of values -> a resolved snapshot (pure, this file)
 *   flag_cache.h   the last good Redis values on disk
 *   flag_sync.h    the main-thread runtime: Redis reads, polling, hand-over
 *                  of snapshots to workers, forced breakers, the cache file
 *
 * A value can come from four places. Each one is a layer, and a value is
 * resolved from the first layer that has it (SPEC section 6):
 *
 *   1. override  the admin API on this gateway (a later feature; the slot
 *                is here and tested)
 *   2. ops       Redis gw:ops:* keys: gw:ops:shed_level, gw:ops:breaker:R,
 *                and gw:ops:profile, whose profile sets flags and a level
 *   3. gw:flags  the Redis hash of flag values
 *   4. default   the YAML `flags` section (shed level and breakers: auto)
 *
 * Layers 2 and 3 are one struct gw_flags_layer, "remote": what the last good
 * read of Redis said, or what the cache file said when Redis could not be
 * read at start. For the shed level, an explicit gw:ops:shed_level (0, 1
 * or 2) wins over the level of the active profile; "auto" or no key leaves
 * it to the profile, if any, else to the gateway's detector.
 *
 * Every value keeps its source (default, cache, redis, profile, override),
 * shown in logs ("flag checkout_v2 = 30% (redis)") and, later, /status.
 */
#ifndef GW_MODULES_FLAGS_FLAG_STATE_H
#define GW_MODULES_FLAGS_FLAG_STATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flag_value.h"
#include "../circuit_breaker/breaker.h"
#include "../../gateway/config/config.h"

struct evkeyvalq;

enum gw_flag_source {
	GW_FLAG_SRC_DEFAULT = 0, /* YAML default (auto for shed level and breakers) */
	GW_FLAG_SRC_CACHE,       /* Redis values from the cache file (Redis down at start) */
	GW_FLAG_SRC_REDIS,       /* gw:flags or gw:ops:* */
	GW_FLAG_SRC_PROFILE,     /* the profile named by gw:ops:profile */
	GW_FLAG_SRC_OVERRIDE,    /* admin API, this gateway only */
};

/* "default", "cache", "redis", "profile", "override". */
const char *gw_flag_source_name(enum gw_flag_source s);

/* Positions of the ops keys in struct gw_flags_read and in the MGET. */
enum gw_ops_key {
	GW_OPS_SHED_LEVEL = 0,
	GW_OPS_PROFILE = 1,
	GW_OPS_BREAKER0 = 2, /* + route index: gw:ops:breaker:ROUTE */
};

/*
 * One layer of optional values (remote or override). Arrays are indexed
 * like config->flags and config->routes. An ops value read with a TTL
 * carries its wall-clock end (expires_ms, CLOCK_REALTIME ms; 0 = none): it
 * reverts at that time even when Redis cannot be read then, and a cache
 * file read after it is over does not bring it back.
 *
 * Ownership: gw_flags_layer_new; the arrays belong to the layer and go with
 * gw_flags_layer_free.
 */
struct gw_flags_layer {
	size_t nflags, nroutes;
	bool *has_flag;
	struct gw_flag_value *flags;

	bool has_shed_level; /* 0..2; "auto" is no value */
	int shed_level;
	int64_t shed_expires_ms;

	bool has_profile; /* index into config->profiles */
	size_t profile;
	int64_t profile_expires_ms;

	bool *has_breaker; /* open or closed; "auto" is no value */
	enum gw_breaker_force *breakers;
	int64_t *breaker_expires_ms;

	bool cached; /* from the cache file, not from a read of Redis */
};

struct gw_flags_layer *gw_flags_layer_new(const struct gw_config *config);
struct gw_flags_layer *gw_flags_layer_copy(const struct gw_flags_layer *l);
/* The values of l (made for config from) for config to, matched by name:
 * flags, profile and route breakers the new config lacks are dropped. */
struct gw_flags_layer *gw_flags_layer_rekey(const struct gw_flags_layer *l,
                                            const struct gw_config *from,
                                            const struct gw_config *to);
void gw_flags_layer_free(struct gw_flags_layer *l);
/* Same values; expiry times within slack_ms of each other count as equal. */
bool gw_flags_layer_equal(const struct gw_flags_layer *a, const struct gw_flags_layer *b,
                          int64_t slack_ms);

/*
 * What one full re-read found in Redis, as text: HGETALL gw:flags (fields
 * and values; NUL bytes replaced by '?', so they never parse), then the ops keys in
 * enum gw_ops_key order (NULL: no such key) and their PTTL (-1: no TTL).
 * Ownership: whoever fills it (flag_sync.c); gw_flags_read_clear frees.
 */
struct gw_flags_read {
	bool flags_bad; /* gw:flags is not a hash: the flag values stay as they were */
	size_t nfields;
	char **fields, **values;
	size_t nops; /* 2 + nroutes */
	char **ops;
	int64_t *ops_pttl;
};

void gw_flags_read_clear(struct gw_flags_read *rd);

/*
 * Remembers the values already complained about, so that a bad value in
 * Redis is logged once, not at every poll. Owned by the runtime;
 * gw_flags_complaints_free releases it.
 */
struct gw_flags_complaints {
	size_t nslots;
	char **bad; /* per flag, then per ops key, then one for gw:flags itself */
	char **unknown;
	size_t nunknown;
};

void gw_flags_complaints_init(struct gw_flags_complaints *c, const struct gw_config *config);
void gw_flags_complaints_free(struct gw_flags_complaints *c);

/*
 * Applies a read to the remote layer: a value that parses replaces the
 * layer's, a key that is absent clears it, a value that does not parse is
 * ignored with one log line and the previous value stays. The ops keys get
 * their end time from their PTTL at now_wall_ms. Clears layer->cached.
 */
void gw_flags_layer_update(struct gw_flags_layer *layer, const struct gw_config *config,
                           const struct gw_flags_read *rd, struct gw_flags_complaints *c,
                           int64_t now_wall_ms);

/*
 * What requests see: every value resolved, with its source. Immutable once
 * built. Reference counted: the runtime holds one, each worker holds one
 * for the snapshot it uses; the last gw_flags_snap_unref frees it, in
 * whichever thread that is. It holds a reference to its config.
 */
struct gw_flag_resolved {
	struct gw_flag_value value;
	enum gw_flag_source source;
};

struct gw_flags_snap {
	atomic_int refs;
	struct gw_config *config; /* reference: names, seeds, profiles, routes */
	size_t nflags;
	struct gw_flag_resolved *flags; /* indexed like config->flags */
	int shed_level;                 /* GW_SHED_LEVEL_AUTO or 0..2 */
	enum gw_flag_source shed_source;
	int profile; /* index into config->profiles, or -1 */
	enum gw_flag_source profile_source;
	size_t nroutes;
	enum gw_breaker_force *breakers; /* indexed like config->routes */
	enum gw_flag_source *breaker_sources;
};

/*
 * Resolves every value from the layers (override may be NULL), treating an
 * ops value whose end time is at or before now_wall_ms as absent. Returns
 * a snapshot with one reference.
 */
struct gw_flags_snap *gw_flags_resolve(struct gw_config *config,
                                       const struct gw_flags_layer *remote,
                                       const struct gw_flags_layer *override, int64_t now_wall_ms);
struct gw_flags_snap *gw_flags_snap_ref(struct gw_flags_snap *s);
void gw_flags_snap_unref(struct gw_flags_snap *s);
/* Same values and sources (what a worker would see is the same). */
bool gw_flags_snap_equal(const struct gw_flags_snap *a, const struct gw_flags_snap *b);

/*
 * One log line per value that differs between old and new ("flag
 * checkout_v2 = 30% (redis)", "shed_level = 1 (profile peak)", "breaker
 * checkout = open (redis)", "profile = peak (redis)"). With old NULL,
 * every value that is not its default is logged (start-up).
 */
void gw_flags_log_changes(const struct gw_flags_snap *old, const struct gw_flags_snap *new_snap);

/*
 * Is flag index on for this request? key is the X-User-ID header, or the
 * client address when there is none.
 */
bool gw_flags_is_on(const struct gw_flags_snap *s, size_t index, const char *key, size_t key_len);

/*
 * The request path's whole use of flags (txn.c), right after routing: the
 * route to go on with. route itself when it has no flag or its flag is on
 * for this request; route->flag->when_off_route when the flag is off and
 * when_off names an upstream; NULL when the flag is off and the request
 * must be answered flag_off with route->flag->when_off_status. config is
 * the snapshot the request runs on (txn->config); a flags snapshot built
 * for another config (none handed over yet, or a reload in progress) is
 * not used: the YAML defaults of config are. No lock, no atomic, no
 * allocation.
 */
const struct gw_route_conf *gw_flags_admit(const struct gw_flags_snap *s,
                                           const struct gw_config *config,
                                           const struct gw_route_conf *route,
                                           const struct evkeyvalq *headers, const char *client_ip);

#endif
