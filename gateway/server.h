/*
 * The gateway process: its workers (event-loop threads), its listeners, and
 * the process-wide counters they share.
 *
 * Each worker has its own event_base and evhttp and its own SO_REUSEPORT
 * listening socket per `listen` address, so the kernel spreads connections
 * over workers and no lock sits on the request path. The main thread only
 * handles signals and drain.
 *
 * Ownership: gw_server_start returns a server owned by the caller (main),
 * which runs it with gw_server_run and frees it with gw_server_free. The
 * server holds one reference to the config snapshot it runs.
 */
#ifndef GW_SERVER_H
#define GW_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"

struct event_base;
struct event;
struct gw_worker;
struct gw_access_log;
struct gw_health;
struct gw_pipeline;
struct gw_health_checker;
struct gw_flags_sync;

struct gw_server {
	struct gw_config *config;
	struct gw_worker **workers;
	unsigned nworkers;
	struct event_base *main_base;
	struct event *sigterm_ev, *sigint_ev, *sighup_ev, *drain_deadline_ev, *workers_done_ev;
	struct gw_access_log *access_log;
	struct gw_health *health;                 /* shared by workers: server up/ejected */
	struct gw_pipeline *pipeline;             /* shared by workers: module states */
	struct gw_health_checker *health_checker; /* runs on main_base */
	struct gw_flags_sync *flags;              /* runs on main_base: flags from Redis */

	/* Client connections open in the whole process (limits.max_connections). */
	atomic_uint connections;
	/* Listeners paused because connections reached the limit. */
	pthread_mutex_t pause_lock;
	bool listeners_paused;

	atomic_bool draining;
	atomic_uint workers_running;
	/* The listen addresses, ports filled in after binding "...:0". */
	struct gw_sockaddr *bound_addrs;
};

/* Binds every listener and starts the workers. NULL after printing one
 * clear line on a fatal error (port in use, ...). Takes a config reference. */
struct gw_server *gw_server_start(struct gw_config *config);
/* Runs until drained after SIGTERM/SIGINT. Returns the exit code. */
int gw_server_run(struct gw_server *server);
void gw_server_free(struct gw_server *server);

/* Called by workers when a client connection opens or closes: enforces
 * limits.max_connections by pausing and resuming every listener. */
void gw_server_connection_opened(struct gw_server *server);
void gw_server_connection_closed(struct gw_server *server);

#endif
