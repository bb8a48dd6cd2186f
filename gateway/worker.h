/*
 * A worker: one event-loop thread with its own evhttp server, client
 * connections, upstream connection pools and access-log buffer. Nothing in a
 * worker is touched by another thread except through event_active on its
 * wakeup event.
 *
 * Ownership: created and freed by the server; a worker owns its pools, its
 * client connections (freed through evhttp) and its evhttp.
 */
#ifndef GW_WORKER_H
#define GW_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "config/config.h"

struct event_base;
struct event;
struct evhttp;
struct evconnlistener;
struct evhttp_bound_socket;
struct gw_server;
struct gw_pool;
struct gw_client_conn;
struct gw_access_log_buf;
struct evbuffer;
struct gw_flags_snap;

TAILQ_HEAD(gw_client_conn_list, gw_client_conn);

struct gw_worker {
	unsigned id;
	pthread_t thread;
	struct gw_server *server;
	struct gw_config *config; /* reference; the snapshot new requests use */

	struct event_base *base;
	struct evhttp *http;
	struct evconnlistener **listeners; /* owned by evhttp once bound */
	struct evhttp_bound_socket **bound;
	size_t nlisteners; /* 0 once draining: listeners are closed */

	struct event *wakeup_ev; /* activated by the main thread (drain) */
	struct event *tick_ev;   /* 100 ms housekeeping: log flush, drain check */

	struct gw_pool **pools; /* one per upstream, indexed like config->upstreams */

	struct gw_client_conn_list conns; /* open client connections */
	unsigned nconns;
	unsigned inflight; /* requests between routing and the end of their reply */
	bool draining;

	struct gw_access_log_buf *log_buf;
	struct evbuffer *scratch; /* owned: response bytes on their way out, empty between uses */
	uint64_t rng;             /* per-worker random state */
	/* Reference: the flag values new requests use. Only this thread reads or
	 * writes the pointer; modules/flags/flag_sync.c hands new snapshots over
	 * through an event on base and drops the last reference at exit. */
	struct gw_flags_snap *flags;
	/* Each module's state for this worker (gateway/pipeline.h), owned. */
	void *mod_state[GW_MAX_MODULES];
};

/* Creates the worker's loop, evhttp and listeners (binding is done here, in
 * the main thread, so start-up errors are reported before anything runs). */
struct gw_worker *gw_worker_new(struct gw_server *server, unsigned id, char *err, size_t errlen);
int gw_worker_start(struct gw_worker *w);
void gw_worker_join(struct gw_worker *w);
void gw_worker_free(struct gw_worker *w);
/* Thread-safe: asks the worker to start draining. */
void gw_worker_request_drain(struct gw_worker *w);
/* Thread-safe: asks the worker to stop at once (drain deadline passed). */
void gw_worker_request_stop(struct gw_worker *w);
/* Pauses or resumes the worker's listeners (thread-safe listeners). */
void gw_worker_set_accepting(struct gw_worker *w, bool accepting);

/* Per-worker xorshift random number. */
uint64_t gw_worker_random(struct gw_worker *w);

#endif
