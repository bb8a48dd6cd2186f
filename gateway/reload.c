/*
 * Reload (SPEC section 9): the config file loaded again, on the main
 * thread, off the request path.
 *
 *   1. load and validate the file: any error refuses the reload, and the
 *      old config keeps serving;
 *   2. check what the running process cannot take: a new listen port that
 *      is busy refuses the reload; `workers`, `access_log` and `admin`
 *      changes are logged as needing a restart and otherwise ignored;
 *   3. build the new generation (generation.h), which takes over the
 *      state of the routes and upstreams that keep their names (and TLS
 *      listeners that stay keep their session ticket keys);
 *   4. switch: health checks, flags and Redis keys, then each worker takes
 *      the new generation on its own thread (requests in flight finish on
 *      the old one, which is freed when the last of them ends).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../modules/flags/flag_sync.h"
#include "generation.h"
#include "server.h"
#include "tls/tls_server.h"
#include "upstream/health.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/errlist.h"
#include "util/log.h"
#include "worker.h"

static bool same_text(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* The running listener on l's address, or NULL. */
static const struct gw_listen_conf *listened_before(const struct gw_config *old,
                                                    const struct gw_listen_conf *l)
{
	for (size_t i = 0; i < old->nlistens; i++)
		if (old->listens[i].addr.len == l->addr.len &&
		    memcmp(&old->listens[i].addr.ss, &l->addr.ss, l->addr.len) == 0)
			return &old->listens[i];
	return NULL;
}

/* A TLS listener that stays keeps its session ticket keys: clients resume
 * across the reload instead of all making full handshakes at once. */
static void keep_ticket_keys(const struct gw_config *cur, struct gw_config *next)
{
	for (size_t i = 0; i < next->nlistens; i++) {
		const struct gw_listen_conf *was = listened_before(cur, &next->listens[i]);

		if (was && was->tls && next->listens[i].tls)
			gw_tls_server_keep_tickets(next->listens[i].tls, was->tls);
	}
}

/* What a running process cannot change: logged, the running value kept. */
static void keep_restart_only(const struct gw_server *server, struct gw_config *next)
{
	const struct gw_config *cur = server->config;

	if (next->workers != server->nworkers) {
		gw_log_warn(
		    "reload: 'workers' changed (%u -> %u): takes effect at the next restart",
		    server->nworkers, next->workers);
		next->workers = server->nworkers;
	}
	if (!same_text(cur->access_log, next->access_log))
		gw_log_warn("reload: 'access_log' changed: takes effect at the next restart "
		            "(SIGUSR1 reopens the current file)");
	if (cur->has_admin != next->has_admin ||
	    (cur->has_admin && (!same_text(cur->admin.listen, next->admin.listen) ||
	                        !same_text(cur->admin.token_env, next->admin.token_env))))
		gw_log_warn("reload: 'admin' changed: takes effect at the next restart");
	if (cur->has_redis != next->has_redis ||
	    (cur->has_redis && (!same_text(cur->redis.address, next->redis.address) ||
	                        !same_text(cur->redis.prefix, next->redis.prefix) ||
	                        !same_text(cur->redis.password_env, next->redis.password_env))))
		gw_log_warn(
		    "reload: the redis connection changed: takes effect at the next restart");
}

static int check_new_listeners(const struct gw_server *server, const struct gw_config *next,
                               struct gw_errlist *errs)
{
	char err[512];
	int rc = 0;

	for (size_t i = 0; i < next->nlistens; i++) {
		if (listened_before(server->config, &next->listens[i]))
			continue;
		if (gw_probe_port_free(&next->listens[i], err, sizeof(err)) < 0) {
			gw_errlist_add(errs, "%s: %s", next->file, err);
			rc = -1;
		}
	}
	return rc;
}

static void refuse(struct gw_server *server, struct gw_errlist *errs, size_t first)
{
	server->reloads_failed++;
	free(server->last_reload_error);
	server->last_reload_error =
	    errs->count > first ? gw_strdup(errs->items[first]) : gw_strdup("reload failed");
	for (size_t i = first; i < errs->count; i++)
		gw_log_error("reload refused: %s", errs->items[i]);
	gw_log_error("reload refused: the running configuration (%s) keeps serving",
	             server->config->hash[0] ? server->config->hash : server->config->file);
}

int gw_server_reload(struct gw_server *server, struct gw_errlist *errs)
{
	size_t first = errs->count;
	struct gw_config *next = gw_config_load(server->config->file, errs);
	struct gw_gen *gen, *old = server->gen;

	if (!next) {
		refuse(server, errs, first);
		return -1;
	}
	if (atomic_load(&server->draining)) {
		gw_errlist_add(errs, "%s: the gateway is draining", next->file);
		gw_config_unref(next);
		refuse(server, errs, first);
		return -1;
	}
	keep_restart_only(server, next);
	if (check_new_listeners(server, next, errs) < 0) {
		gw_config_unref(next);
		refuse(server, errs, first);
		return -1;
	}

	keep_ticket_keys(server->config, next);
	gen = gw_gen_new(next, old, server->main_base, server->stats, server->nworkers);
	gw_health_checker_stop(server->health_checker);
	server->health_checker = gw_health_checker_start(gen->health, next, server->main_base);
	gw_flags_sync_reconfigure(server->flags, next, gen->pipeline);
	gw_conn_cap_set_max(&server->conn_cap, next->limits.max_connections);
	for (unsigned i = 0; i < server->nworkers; i++)
		gw_worker_install_gen(server->workers[i], gw_gen_ref(gen));

	server->gen = gen;
	server->retired =
	    gw_realloc(server->retired, (server->nretired + 1) * sizeof(*server->retired));
	server->retired[server->nretired++] = old;
	gw_gen_unref(old);

	free(server->bound_addrs);
	server->nbound = next->nlistens;
	server->bound_addrs =
	    gw_calloc(next->nlistens ? next->nlistens : 1, sizeof(*server->bound_addrs));
	for (size_t i = 0; i < next->nlistens; i++)
		server->bound_addrs[i] = next->listens[i].addr;
	gw_config_unref(server->config);
	server->config = next; /* the load's reference */
	server->loaded_wall_ms = gw_clock_wall_ms();
	server->reloads_ok++;
	free(server->last_reload_error);
	server->last_reload_error = NULL;
	gw_log_info("reload: %s (%s) serves new requests: %zu routes, %zu upstreams", next->file,
	            next->hash, next->nroutes, next->nupstreams);
	return 0;
}
