#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "access_log.h"
#include "../modules/flags/flag_sync.h"
#include "admin/admin.h"
#include "generation.h"
#include "pipeline.h"
#include "stats.h"
#include "util/clock.h"
#include "util/errlist.h"
#include "upstream/health.h"
#include "util/alloc.h"
#include "util/log.h"
#include "worker.h"

void gw_format_sockaddr(const struct gw_sockaddr *a, char *out, size_t size)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (a->ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a->ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
		snprintf(out, size, "[%s]:%u", ip, ntohs(s6->sin6_port));
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)&a->ss;
		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
		snprintf(out, size, "%s:%u", ip, ntohs(s4->sin_port));
	}
}

static uint16_t port_of(const struct gw_sockaddr *a)
{
	if (a->ss.ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
	return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
}

/*
 * SO_REUSEPORT lets two processes of the same user share a port silently, so
 * a second gateway started by mistake would steal half the traffic. A plain
 * bind first tells whether the port is really free.
 */
int gw_probe_port_free(const struct gw_listen_conf *l, char *err, size_t errlen)
{
	int one = 1;
	int fd;

	if (port_of(&l->addr) == 0)
		return 0;
	fd = socket(l->addr.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", l->address, strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&l->addr.ss, l->addr.len) < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", l->address, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct gw_server *server = arg;
	struct timeval deadline = {
	    .tv_sec = (time_t)(server->config->drain_timeout_ms / 1000),
	    .tv_usec = (suseconds_t)(server->config->drain_timeout_ms % 1000) * 1000,
	};

	if (atomic_exchange(&server->draining, true)) {
		gw_log_warn("second signal: stopping now");
		for (unsigned i = 0; i < server->nworkers; i++)
			gw_worker_request_stop(server->workers[i]);
		return;
	}
	gw_log_info("%s: draining (up to %llums), no new connections",
	            sig == SIGTERM ? "SIGTERM" : "SIGINT",
	            (unsigned long long)server->config->drain_timeout_ms);
	for (unsigned i = 0; i < server->nworkers; i++)
		gw_worker_request_drain(server->workers[i]);
	evtimer_add(server->drain_deadline_ev, &deadline);
}

static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
	struct gw_errlist errs = {0};

	if (!((struct gw_server *)arg)->started) {
		gw_log_warn("SIGHUP during start-up: ignored (send it again once started)");
		return;
	}
	gw_log_info("SIGHUP: reloading %s", ((struct gw_server *)arg)->config->file);
	gw_server_reload(arg, &errs);
	gw_errlist_free(&errs);
}

static void on_sigusr1(evutil_socket_t sig, short what, void *arg)
{
	struct gw_server *server = arg;
	const char *why = NULL;

	if (gw_access_log_reopen(server->access_log, &why) < 0)
		gw_log_error("SIGUSR1: cannot reopen the access log: %s (still writing to the old "
		             "file)",
		             why);
	else
		gw_log_info("SIGUSR1: access log reopened");
}

static void on_drain_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct gw_server *server = arg;

	gw_log_warn("drain_timeout reached: closing the remaining connections");
	for (unsigned i = 0; i < server->nworkers; i++)
		gw_worker_request_stop(server->workers[i]);
}

static void on_workers_done(evutil_socket_t fd, short what, void *arg)
{
	struct gw_server *server = arg;

	event_base_loopbreak(server->main_base);
}

/* Frees the replaced generations whose last request has ended. */
static void on_retire(evutil_socket_t fd, short what, void *arg)
{
	struct gw_server *server = arg;
	size_t n = 0;

	for (size_t i = 0; i < server->nretired; i++) {
		if (gw_gen_unused(server->retired[i]))
			gw_gen_free(server->retired[i]);
		else
			server->retired[n++] = server->retired[i];
	}
	server->nretired = n;
}

static struct event *add_signal(struct gw_server *server, int sig, event_callback_fn fn)
{
	struct event *ev = evsignal_new(server->main_base, sig, fn, server);

	evsignal_add(ev, NULL);
	return ev;
}

static void switch_listeners(void *ctx, void *self, bool accepting);

struct gw_server *gw_server_start(struct gw_config *config)
{
	struct gw_server *server = gw_calloc(1, sizeof(*server));
	struct timeval retire_every = {.tv_sec = 0, .tv_usec = 250 * 1000};
	const char *why = NULL;
	sigset_t block, old;
	char err[512];
	char addr[80];

	server->config = gw_config_ref(config);
	server->started_ms = gw_clock_now_ms();
	server->loaded_wall_ms = gw_clock_wall_ms();
	gw_conn_cap_init(&server->conn_cap, config->limits.max_connections, switch_listeners,
	                 server);
	server->access_log = gw_access_log_open(config->access_log, &why);
	if (!server->access_log) {
		fprintf(stderr, "gateway: cannot open access_log %s: %s\n", config->access_log,
		        why);
		gw_server_free(server);
		return NULL;
	}
	server->nbound = config->nlistens;
	server->bound_addrs =
	    gw_calloc(config->nlistens ? config->nlistens : 1, sizeof(*server->bound_addrs));
	for (size_t i = 0; i < config->nlistens; i++) {
		if (gw_probe_port_free(&config->listens[i], err, sizeof(err)) < 0) {
			fprintf(stderr, "gateway: %s\n", err);
			gw_server_free(server);
			return NULL;
		}
		server->bound_addrs[i] = config->listens[i].addr;
	}
	server->main_base = event_base_new();
	/* Handlers before any listener is bound: a client can connect from then
	 * on, and a SIGHUP or SIGUSR1 sent as soon as the port answers must not
	 * find their default action (termination). */
	signal(SIGPIPE, SIG_IGN);
	server->sigterm_ev = add_signal(server, SIGTERM, on_signal);
	server->sigint_ev = add_signal(server, SIGINT, on_signal);
	server->sighup_ev = add_signal(server, SIGHUP, on_sighup);
	server->sigusr1_ev = add_signal(server, SIGUSR1, on_sigusr1);
	server->drain_deadline_ev = evtimer_new(server->main_base, on_drain_deadline, server);
	server->nworkers = config->workers;
	server->stats = gw_stats_new(server->nworkers);
	server->gen = gw_gen_new(config, NULL, server->main_base, server->stats, server->nworkers);
	server->workers_done_ev = event_new(server->main_base, -1, 0, on_workers_done, server);
	server->retire_ev = event_new(server->main_base, -1, EV_PERSIST, on_retire, server);
	event_add(server->retire_ev, &retire_every);
	server->workers = gw_calloc(server->nworkers, sizeof(*server->workers));
	for (unsigned i = 0; i < server->nworkers; i++) {
		server->workers[i] = gw_worker_new(server, i, server->gen, err, sizeof(err));
		if (!server->workers[i]) {
			fprintf(stderr, "gateway: %s\n", err);
			gw_server_free(server);
			return NULL;
		}
	}
	if (config->has_admin) {
		server->admin = gw_admin_start(server, err, sizeof(err));
		if (!server->admin) {
			fprintf(stderr, "gateway: %s\n", err);
			gw_server_free(server);
			return NULL;
		}
	}
	/* Flags before the workers run, so they start with the fleet's values. */
	server->flags =
	    gw_flags_sync_new(config, server->main_base, server->gen->pipeline, err, sizeof(err));
	if (!server->flags) {
		fprintf(stderr, "gateway: %s\n", err);
		gw_server_free(server);
		return NULL;
	}
	gw_flags_sync_start(server->flags);
	for (unsigned i = 0; i < server->nworkers; i++)
		gw_flags_sync_attach(server->flags, server->workers[i]->base,
		                     &server->workers[i]->flags, &server->workers[i]->flags_prev);

	/* Signals go to the main thread only. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	atomic_store(&server->workers_running, server->nworkers);
	for (unsigned i = 0; i < server->nworkers; i++) {
		if (gw_worker_start(server->workers[i]) < 0) {
			fprintf(stderr, "gateway: cannot start worker thread\n");
			exit(1);
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	server->health_checker =
	    gw_health_checker_start(server->gen->health, config, server->main_base);
	for (size_t i = 0; i < config->nlistens; i++) {
		gw_format_sockaddr(&server->bound_addrs[i], addr, sizeof(addr));
		gw_log_info("listening on %s (%u workers)", addr, server->nworkers);
	}
	server->started = true;
	return server;
}

int gw_server_run(struct gw_server *server)
{
	event_base_dispatch(server->main_base);
	for (unsigned i = 0; i < server->nworkers; i++)
		gw_worker_join(server->workers[i]);
	gw_log_info("stopped");
	return 0;
}

void gw_server_free(struct gw_server *server)
{
	if (!server)
		return;
	gw_admin_free(server->admin);
	gw_health_checker_stop(server->health_checker);
	gw_flags_sync_free(server->flags); /* before the worker bases its events live on */
	for (unsigned i = 0; server->workers && i < server->nworkers; i++)
		gw_worker_free(server->workers[i]);
	free(server->workers);
	for (size_t i = 0; i < server->nretired; i++)
		gw_gen_free(server->retired[i]);
	free(server->retired);
	if (server->gen) {
		gw_gen_unref(server->gen);
		gw_gen_free(server->gen);
	}
	gw_stats_free(server->stats);
	struct event *evs[] = {server->sigterm_ev,        server->sigint_ev,
	                       server->sighup_ev,         server->sigusr1_ev,
	                       server->drain_deadline_ev, server->workers_done_ev,
	                       server->retire_ev};
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		if (evs[i])
			event_free(evs[i]);
	if (server->main_base)
		event_base_free(server->main_base);
	gw_access_log_close(server->access_log);
	free(server->bound_addrs);
	free(server->last_reload_error);
	gw_conn_cap_destroy(&server->conn_cap);
	gw_config_unref(server->config);
	free(server);
}

/*
 * Switching listeners for limits.max_connections (conn_cap.h). A worker
 * only ever touches its own listeners. The one whose connection crossed the
 * limit switches its own at once (it may be inside its listener's accept
 * loop, which stops as soon as the listener is disabled); the others are
 * asked, through an event on their base, to apply whatever the cap says
 * when they get to it. Disabling another worker's listener directly
 * deadlocked: event_del waits for that listener's callback to return when
 * it runs in another thread, and that callback (an accept) was itself
 * waiting for the cap's lock, held by the worker doing the event_del.
 */
static void on_accepting_changed(evutil_socket_t fd, short what, void *arg)
{
	struct gw_worker *w = arg;
	bool paused = gw_conn_cap_lock(w->conn_cap);

	gw_worker_set_accepting(w, !paused);
	gw_conn_cap_unlock(w->conn_cap);
}

/* With the cap's lock held, on self's thread. */
static void switch_listeners(void *ctx, void *self, bool accepting)
{
	static const struct timeval now = {0, 0};
	struct gw_server *server = ctx;

	for (unsigned i = 0; i < server->nworkers; i++) {
		struct gw_worker *w = server->workers[i];

		if (w == self)
			gw_worker_set_accepting(w, accepting);
		else if (event_base_once(w->base, -1, EV_TIMEOUT, on_accepting_changed, w, &now) <
		         0)
			gw_log_error("cannot tell worker %u to %s accepting", w->id,
			             accepting ? "resume" : "stop");
	}
}
