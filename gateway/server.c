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
#include "pipeline.h"
#include "upstream/health.h"
#include "util/alloc.h"
#include "util/log.h"
#include "worker.h"

static void format_addr(const struct gw_sockaddr *a, char *out, size_t size)
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
static int probe_port_free(const struct gw_listen_conf *l, char *err, size_t errlen)
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
	gw_log_warn("SIGHUP: configuration reload is not available; restart to apply changes");
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

struct gw_server *gw_server_start(struct gw_config *config)
{
	struct gw_server *server = gw_calloc(1, sizeof(*server));
	const char *why = NULL;
	sigset_t block, old;
	char err[512];
	char addr[80];

	server->config = gw_config_ref(config);
	pthread_mutex_init(&server->pause_lock, NULL);
	server->access_log = gw_access_log_open(config->access_log, &why);
	if (!server->access_log) {
		fprintf(stderr, "gateway: cannot open access_log %s: %s\n", config->access_log,
		        why);
		gw_server_free(server);
		return NULL;
	}
	server->bound_addrs = gw_calloc(config->nlistens, sizeof(*server->bound_addrs));
	for (size_t i = 0; i < config->nlistens; i++) {
		if (probe_port_free(&config->listens[i], err, sizeof(err)) < 0) {
			fprintf(stderr, "gateway: %s\n", err);
			gw_server_free(server);
			return NULL;
		}
		server->bound_addrs[i] = config->listens[i].addr;
	}
	server->main_base = event_base_new();
	server->health = gw_health_new(config);
	server->pipeline = gw_pipeline_new(config, server->main_base);
	server->workers_done_ev = event_new(server->main_base, -1, 0, on_workers_done, server);
	server->nworkers = config->workers;
	server->workers = gw_calloc(server->nworkers, sizeof(*server->workers));
	for (unsigned i = 0; i < server->nworkers; i++) {
		server->workers[i] = gw_worker_new(server, i, err, sizeof(err));
		if (!server->workers[i]) {
			fprintf(stderr, "gateway: %s\n", err);
			gw_server_free(server);
			return NULL;
		}
	}
	/* Flags before the workers run, so they start with the fleet's values. */
	server->flags =
	    gw_flags_sync_new(config, server->main_base, server->pipeline, err, sizeof(err));
	if (!server->flags) {
		fprintf(stderr, "gateway: %s\n", err);
		gw_server_free(server);
		return NULL;
	}
	gw_flags_sync_start(server->flags);
	for (unsigned i = 0; i < server->nworkers; i++)
		gw_flags_sync_attach(server->flags, server->workers[i]->base,
		                     &server->workers[i]->flags);
	signal(SIGPIPE, SIG_IGN);
	server->sigterm_ev = evsignal_new(server->main_base, SIGTERM, on_signal, server);
	server->sigint_ev = evsignal_new(server->main_base, SIGINT, on_signal, server);
	server->sighup_ev = evsignal_new(server->main_base, SIGHUP, on_sighup, server);
	evsignal_add(server->sigterm_ev, NULL);
	evsignal_add(server->sigint_ev, NULL);
	evsignal_add(server->sighup_ev, NULL);
	server->drain_deadline_ev = evtimer_new(server->main_base, on_drain_deadline, server);

	/* Signals go to the main thread only. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	atomic_store(&server->workers_running, server->nworkers);
	for (unsigned i = 0; i < server->nworkers; i++) {
		if (gw_worker_start(server->workers[i]) < 0) {
			fprintf(stderr, "gateway: cannot start worker thread\n");
			exit(1);
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	server->health_checker = gw_health_checker_start(server->health, config, server->main_base);
	for (size_t i = 0; i < config->nlistens; i++) {
		format_addr(&server->bound_addrs[i], addr, sizeof(addr));
		gw_log_info("listening on %s (%u workers)", addr, server->nworkers);
	}
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
	gw_health_checker_stop(server->health_checker);
	gw_flags_sync_free(server->flags); /* before the worker bases its events live on */
	for (unsigned i = 0; server->workers && i < server->nworkers; i++)
		gw_worker_free(server->workers[i]);
	if (server->health)
		gw_health_free(server->health);
	gw_pipeline_free(server->pipeline);
	free(server->workers);
	if (server->sigterm_ev)
		event_free(server->sigterm_ev);
	if (server->sigint_ev)
		event_free(server->sigint_ev);
	if (server->sighup_ev)
		event_free(server->sighup_ev);
	if (server->drain_deadline_ev)
		event_free(server->drain_deadline_ev);
	if (server->workers_done_ev)
		event_free(server->workers_done_ev);
	if (server->main_base)
		event_base_free(server->main_base);
	gw_access_log_close(server->access_log);
	free(server->bound_addrs);
	pthread_mutex_destroy(&server->pause_lock);
	gw_config_unref(server->config);
	free(server);
}

void gw_server_connection_opened(struct gw_server *server)
{
	unsigned n = atomic_fetch_add(&server->connections, 1) + 1;

	if (n < server->config->limits.max_connections)
		return;
	pthread_mutex_lock(&server->pause_lock);
	if (!server->listeners_paused) {
		server->listeners_paused = true;
		for (unsigned i = 0; i < server->nworkers; i++)
			gw_worker_set_accepting(server->workers[i], false);
		gw_log_warn("limits.max_connections (%u) reached: not accepting",
		            server->config->limits.max_connections);
	}
	pthread_mutex_unlock(&server->pause_lock);
}

void gw_server_connection_closed(struct gw_server *server)
{
	unsigned n = atomic_fetch_sub(&server->connections, 1) - 1;

	if (n >= server->config->limits.max_connections || !server->listeners_paused)
		return;
	pthread_mutex_lock(&server->pause_lock);
	if (server->listeners_paused) {
		server->listeners_paused = false;
		for (unsigned i = 0; i < server->nworkers; i++)
			gw_worker_set_accepting(server->workers[i], true);
		gw_log_info("accepting connections again");
	}
	pthread_mutex_unlock(&server->pause_lock);
}
