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
struct gw_conn_cap;
struct gw_pool;
struct gw_client_conn;
struct gw_access_log_buf;
struct evbuffer;
struct gw_flags_snap;
struct gw_gen;
struct gw_module;

TAILQ_HEAD(gw_client_conn_list, gw_client_conn);

/*
 * This worker's part of a generation (generation.h): what its requests on
 * that config use. The current one takes new requests; a replaced one is
 * retired and freed, on this worker's thread, when its last request ends.
 * Ownership: the worker; holds a reference to its generation.
 */
struct gw_worker_gen {
	struct gw_gen *gen;              /* reference */
	struct gw_pool **pools;          /* owned; indexed like gen->config->upstreams */
	void *mod_state[GW_MAX_MODULES]; /* owned: each module's state for this worker */
	unsigned users;                  /* transactions running on it */
	TAILQ_ENTRY(gw_worker_gen) link; /* in the worker's retired list */
};
TAILQ_HEAD(gw_worker_gen_list, gw_worker_gen);

/*
 * A TLS listener's side of the worker: evhttp has one bufferevent callback
 * per evhttp, so the connections of each TLS listener go to an evhttp of
 * their own, whose callback makes TLS bufferevents with the certificates
 * of conf. A reload that keeps the listener points conf at the new
 * config's certificates: new connections get them, open ones keep theirs.
 *
 * Ownership: the worker's (tls_listeners), freed with the worker: a
 * listener a reload removes stops accepting at once, but its evhttp still
 * owns the connections it accepted. Allocated apart from the listener
 * array, which a reload rebuilds: evhttp keeps a pointer to it.
 */
struct gw_tls_listener {
	struct gw_worker *worker;
	struct evhttp *http;                   /* owned */
	const struct gw_tls_listen_conf *conf; /* the worker's current config's */
	TAILQ_ENTRY(gw_tls_listener) link;     /* in worker->tls_listeners */
};
TAILQ_HEAD(gw_tls_listener_list, gw_tls_listener);

/* One listening socket, by the address the config gives it. */
struct gw_worker_listener {
	struct gw_sockaddr conf_addr;    /* as configured (port 0 stays 0) */
	struct evconnlistener *listener; /* owned by evhttp once bound */
	struct evhttp_bound_socket *bound;
	struct gw_tls_listener *tls; /* NULL: plain HTTP, on the worker's evhttp */
};

struct gw_worker {
	unsigned id;
	pthread_t thread;
	struct gw_server *server;
	struct gw_conn_cap *conn_cap; /* the server's: counts this worker's client connections */
	/* The config new requests use: wg->gen->config (no reference of its own). */
	struct gw_config *config;
	struct gw_worker_gen *wg;          /* current; owned */
	struct gw_worker_gen_list retired; /* replaced, with requests still running */
	_Atomic(struct gw_gen *) next_gen; /* a reference handed over, not taken yet */
	struct event *gen_ev;              /* activated by the main thread (reload) */

	struct event_base *base;
	struct evhttp *http;                       /* plain-HTTP listeners' connections */
	struct gw_tls_listener_list tls_listeners; /* each with its evhttp */
	struct gw_worker_listener *listeners;      /* owned array */
	size_t nlisteners;                         /* 0 once draining: listeners are closed */

	struct event *wakeup_ev; /* activated by the main thread (drain) */
	struct event *tick_ev;   /* 100 ms housekeeping: log flush, drain check, stats */

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
	struct gw_flags_snap
	    *flags_prev; /* reference: the snapshot of the config before a reload */
};

/* Module m's state in this worker's current generation. */
void *gw_worker_mod_state(struct gw_worker *w, const struct gw_module *m);

/* A transaction starts on (leaves) the worker's current generation wg. */
static inline struct gw_worker_gen *gw_worker_gen_enter(struct gw_worker *w)
{
	w->wg->users++;
	return w->wg;
}
void gw_worker_gen_leave(struct gw_worker *w, struct gw_worker_gen *wg);

/*
 * Thread-safe: gen (a reference, handed over) becomes the worker's current
 * generation on its own thread: new pools and module states (taking over
 * the old ones' learned state), listeners added and removed, limits.
 */
void gw_worker_install_gen(struct gw_worker *w, struct gw_gen *gen);

/* Creates the worker's loop, evhttp and listeners (binding is done here, in
 * the main thread, so start-up errors are reported before anything runs). */
struct gw_worker *gw_worker_new(struct gw_server *server, unsigned id, struct gw_gen *gen,
                                char *err, size_t errlen);
int gw_worker_start(struct gw_worker *w);
void gw_worker_join(struct gw_worker *w);
void gw_worker_free(struct gw_worker *w);
/* Thread-safe: asks the worker to start draining. */
void gw_worker_request_drain(struct gw_worker *w);
/* Thread-safe: asks the worker to stop at once (drain deadline passed). */
void gw_worker_request_stop(struct gw_worker *w);
/* Pauses or resumes the worker's listeners. On the worker's own thread only,
 * with the connection cap's lock held: disabling another worker's listener from
 * here would wait for its accept callback, which may be waiting for the lock. */
void gw_worker_set_accepting(struct gw_worker *w, bool accepting);

/* Per-worker xorshift random number. */
uint64_t gw_worker_random(struct gw_worker *w);

#endif
