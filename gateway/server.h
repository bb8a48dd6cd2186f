/*
 * The gateway process: its workers (event-loop threads), its listeners, and
 * the process-wide counters they share.
 *
 * Each worker has its own event_base and evhttp and its own SO_REUSEPORT
 * listening socket per `listen` address, so the kernel spreads connections
 * over workers and no lock sits on the request path. The main thread handles signals, drain, reloads, the admin API, health
 * checks and Redis; the workers only ever see a new config through a new
 * generation (generation.h) handed to them.
 *
 * Ownership: gw_server_start returns a server owned by the caller (main),
 * which runs it with gw_server_run and frees it with gw_server_free. The
 * server holds one reference to the current config and generation.
 */
#ifndef GW_SERVER_H
#define GW_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "conn_cap.h"

struct event_base;
struct event;
struct gw_worker;
struct gw_access_log;
struct gw_gen;
struct gw_stats;
struct gw_admin;
struct gw_errlist;
struct gw_health_checker;
struct gw_flags_sync;

struct gw_server {
	struct gw_config *config; /* reference: the current config (main thread) */
	struct gw_gen *gen;       /* reference: the current generation (main thread) */
	struct gw_gen **retired;  /* replaced generations, freed once unused (main thread) */
	size_t nretired;
	struct gw_worker **workers;
	unsigned nworkers;
	struct event_base *main_base;
	struct event *sigterm_ev, *sigint_ev, *sighup_ev, *sigusr1_ev;
	struct event *drain_deadline_ev, *workers_done_ev, *retire_ev;
	struct gw_access_log *access_log;
	struct gw_stats *stats;                   /* the counters, by name (stats.h) */
	struct gw_health_checker *health_checker; /* the current generation's; on main_base */
	struct gw_flags_sync *flags;              /* runs on main_base: flags from Redis */
	struct gw_admin *admin;                   /* the admin API on main_base; NULL: none */

	bool started; /* gw_server_start is done: reloads may run (main thread) */
	/* Reloads (main thread). */
	uint64_t started_ms;    /* monotonic, for the uptime */
	int64_t loaded_wall_ms; /* when the current config was loaded */
	unsigned reloads_ok, reloads_failed;
	char *last_reload_error; /* owned: the first error of the last refused reload; NULL */

	/* Client connections open in the whole process and
	 * limits.max_connections (copied there so that workers never read a
	 * config a reload may free); workers count through it. */
	struct gw_conn_cap conn_cap;

	atomic_bool draining;
	atomic_uint workers_running;
	/* The listen addresses, ports filled in after binding "...:0". */
	struct gw_sockaddr *bound_addrs;
	size_t nbound;
};

/* Binds every listener and starts the workers. NULL after printing one
 * clear line on a fatal error (port in use, ...). Takes a config reference. */
struct gw_server *gw_server_start(struct gw_config *config);
/* Runs until drained after SIGTERM/SIGINT. Returns the exit code. */
int gw_server_run(struct gw_server *server);
void gw_server_free(struct gw_server *server);

/*
 * Loads the config file again (SIGHUP, POST /reload), on the main thread.
 * 0: the new config serves new requests. -1: refused, every error added
 * to errs ("FILE:LINE:COL: message"), the old config keeps serving.
 */
int gw_server_reload(struct gw_server *server, struct gw_errlist *errs);

/* "127.0.0.1:8080", "[::1]:8080". */
void gw_format_sockaddr(const struct gw_sockaddr *a, char *out, size_t size);
/* Whether l's port is free (a plain bind, see server.c); -1 with err filled. */
int gw_probe_port_free(const struct gw_listen_conf *l, char *err, size_t errlen);

#endif
