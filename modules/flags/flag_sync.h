/*
 * The flags runtime, on the main thread: keeps the values of flag_state.h
 * in step with Redis and hands every new snapshot to the workers.
 *
 *   - reads everything (HGETALL PREFIXflags, MGET of PREFIXops:shed_level,
 *     PREFIXops:profile and PREFIXops:breaker:ROUTE for every route, then
 *     PTTL of the ops keys that exist) at start, after every (re)connect and
 *     re-subscribe, at once on any message on PREFIXevents, and every
 *     redis.poll_interval (so an expired key reverts even with no message);
 *   - a failed read changes nothing: the last good values stay;
 *   - a change builds a new snapshot, logs what changed, forces the routes'
 *     breakers, hands the snapshot to every worker, and writes the cache
 *     file;
 *   - at start it waits (a bounded time: connect_timeout + 2 x
 *     command_timeout) for the first read, so workers start with the
 *     fleet's values; when Redis cannot be read, with the cache file's,
 *     else with the YAML defaults.
 *
 * Without a `redis` section there is nothing to sync: workers get one
 * snapshot of the YAML defaults.
 *
 * Ownership: the server owns the runtime (gw_flags_sync_new at start-up,
 * gw_flags_sync_free after the workers stopped and before their event
 * bases go). It holds a config reference and the current snapshot; each
 * worker's slot holds a reference to the snapshot that worker uses, which
 * gw_flags_sync_free drops.
 */
#ifndef GW_MODULES_FLAGS_FLAG_SYNC_H
#define GW_MODULES_FLAGS_FLAG_SYNC_H

#include <stdbool.h>
#include <stddef.h>

#include "flag_state.h"

struct event_base;
struct gw_pipeline;
struct gw_flags_sync;

/*
 * routes: the breakers that ops keys force (server->routes). NULL with err
 * filled when the start cannot go on (redis.password_env names a variable
 * that is not set).
 */
struct gw_flags_sync *gw_flags_sync_new(struct gw_config *config, struct event_base *main_base,
                                        struct gw_pipeline *pipeline, char *err, size_t err_size);
/* Connects, waits for the first read (bounded), starts polling. */
void gw_flags_sync_start(struct gw_flags_sync *fs);
/*
 * A worker: *slot gets a reference to the current snapshot now, and every
 * later one through an event on worker_base (the worker's own thread swaps
 * the pointer). When a new snapshot is for another config (a reload), the
 * one it replaces moves to *prev_slot, for the requests still running on
 * the old config. Call after gw_flags_sync_start, before the worker runs.
 */
void gw_flags_sync_attach(struct gw_flags_sync *fs, struct event_base *worker_base,
                          struct gw_flags_snap **slot, struct gw_flags_snap **prev_slot);
/* The current snapshot (main thread): for /status and metrics, later. */
const struct gw_flags_snap *gw_flags_sync_current(const struct gw_flags_sync *fs);
/*
 * The admin override of one flag on this gateway (v NULL removes it):
 * applied at once. The admin API (a later feature) calls it.
 */
void gw_flags_sync_override_flag(struct gw_flags_sync *fs, size_t index,
                                 const struct gw_flag_value *v);
/* Admin overrides of the shed level (GW_SHED_LEVEL_AUTO removes it) and of
 * a route's breaker (GW_BREAKER_FORCE_AUTO removes it): applied at once. */
void gw_flags_sync_override_shed(struct gw_flags_sync *fs, int level);
void gw_flags_sync_override_breaker(struct gw_flags_sync *fs, size_t route,
                                    enum gw_breaker_force f);
bool gw_flags_sync_redis_connected(const struct gw_flags_sync *fs);
/*
 * A reload (main thread): from now on values are for config, and forced
 * breakers are those of pipeline. Workers get a snapshot for the new
 * config at once.
 */
void gw_flags_sync_reconfigure(struct gw_flags_sync *fs, struct gw_config *config,
                               struct gw_pipeline *pipeline);
void gw_flags_sync_free(struct gw_flags_sync *fs);

#endif
