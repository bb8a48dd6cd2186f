/*
 * The gateway's guard on each client connection, around evhttp.
 *
 * evhttp parses leniently and has a single inactivity timer, so the gateway
 * watches every connection itself:
 *   - it sees every byte of a request head before evhttp does (an evbuffer
 *     callback on the connection's input) and checks it strictly
 *     (http/request_head.h); a bad head is answered 4xx/5xx with
 *     Connection: close and never reaches evhttp's parser or an upstream;
 *     a head arriving in pieces is checked incrementally and held back
 *     from evhttp until it is whole, so its cost is linear in its size;
 *   - it enforces real deadlines: header_timeout from the first byte of a
 *     head to its end (a slowloris that trickles a line a second is cut off
 *     on time), body_timeout for the body, idle_timeout between requests,
 *     send_timeout for a client too slow to read its response;
 *   - it counts connections for limits.max_connections, and bounds the
 *     refused ones that linger to deliver their answer;
 *   - it notices a client that goes away while its request waits for an
 *     upstream (EV_CLOSED), so that upstream work is cancelled.
 *
 * Phases of a connection:
 *
 *   IDLE --first byte--> HEAD --head ok--> BODY --evhttp delivers--> BUSY
 *     ^                   |  \--bad head/too slow--> REJECT (answer, close)
 *     +----reply sent-----+-------------------------------------------+
 *
 * Ownership: created by evhttp's bufferevent callback, freed when evhttp
 * frees the connection (its close callback). The worker lists it.
 */
#ifndef GW_CLIENT_CONN_H
#define GW_CLIENT_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/util.h>

#include "http/chunked_scan.h"
#include "http/request_head.h"

struct bufferevent;
struct evbuffer_cb_entry;
struct event;
struct event_base;
struct evhttp_connection;
struct evhttp_request;
struct gw_worker;

enum gw_conn_phase {
	GW_CONN_ATTACHING = 0, /* accepted; evhttp not yet done setting it up */
	GW_CONN_IDLE,          /* waiting for the first byte of a request */
	GW_CONN_HEAD,          /* reading a request head */
	GW_CONN_BODY,          /* head checked; evhttp reads the body */
	GW_CONN_BUSY,          /* request delivered; a transaction owns it */
	GW_CONN_REJECT,        /* answering a refused request, then closing */
};

struct gw_client_conn {
	struct gw_worker *worker;
	struct bufferevent *bev;         /* owned by evhttp */
	struct evhttp_connection *evcon; /* owned by evhttp */
	evutil_socket_t fd;
	enum gw_conn_phase phase;
	struct ssl_st *ssl; /* TLS: owned by bev; NULL for plain HTTP */
	bool tls_failed;    /* a TLS connection without its TLS object: closed at once */

	struct event *timer;                /* owned: deadlines, and deferred work */
	struct evbuffer_cb_entry *input_cb; /* the byte watcher, off while not needed */
	struct event *closed_ev;            /* owned: EV_CLOSED while a request waits */
	struct gw_read_keeper *read_keeper; /* owned: no epoll_ctl per request (evhttp_adapter.h) */
	bool watch_close;                   /* a request waits for its upstream */
	bool close_watched;                 /* closed_ev is armed */
	uint64_t watch_since_ms;

	char *head_buf; /* owned: copy of a head arriving in pieces */
	size_t head_len, head_cap;
	struct gw_head_scan head_scan;  /* the head check, resumed on each read */
	struct gw_chunk_scan body_scan; /* a chunked body's framing, checked */
	bool body_chunked;              /* and not finished yet */
	uint64_t body_share;            /* of the process's body budget (body_budget.h) */

	int reject_status; /* GW_CONN_REJECT: what to answer */
	const char *reject_code;

	/* send_timeout: while response bytes wait for the client, the window
	 * started at send_since_ms (0: none) when it had taken send_acked bytes. */
	uint64_t send_since_ms;
	uint64_t send_acked;
	bool send_expired; /* too slow a reader: closed from the timer */
	bool kernel_watch; /* a large reply may still sit in the kernel's buffer */

	/* The request being served (a transaction), or NULL; told when the
	 * connection closes under it. */
	void *owner;
	void (*owner_gone)(void *owner);
	unsigned requests; /* served on this connection */
	char client_ip[48];

	TAILQ_ENTRY(gw_client_conn) link; /* in worker->conns */
};

/* evhttp_set_bevcb callbacks: arg is the worker (plain HTTP), or the
 * struct gw_tls_listener (worker.h) whose certificates the TLS handshake
 * offers. The handshake runs before the first request byte, within the
 * first request's header_timeout. */
struct bufferevent *gw_client_conn_bevcb(struct event_base *base, void *arg);
struct bufferevent *gw_client_conn_bevcb_tls(struct event_base *base, void *arg);

/* For the access log: the TLS version and SNI of a TLS connection (see
 * gw_tls_server_info); both NULL for plain HTTP. Valid while cc lives. */
void gw_client_conn_tls_info(const struct gw_client_conn *cc, const char **version,
                             const char **sni);

/* The connection a request arrived on. */
struct gw_client_conn *gw_client_conn_of(struct evhttp_request *req);

/* The request was delivered to the gateway: stop head/body deadlines.
 * owner_gone(owner) runs if the connection closes before
 * gw_client_conn_request_ends. */
void gw_client_conn_request_begins(struct gw_client_conn *cc, struct evhttp_request *req,
                                   void (*owner_gone)(void *owner), void *owner);
/* Watch for the client going away while the request waits (EV_CLOSED). */
void gw_client_conn_watch_close(struct gw_client_conn *cc, bool on);
/* Housekeeping every worker tick: arms the close watch of slow requests. */
void gw_client_conn_tick(struct gw_client_conn *cc, uint64_t now_ms);
#define GW_CLOSE_WATCH_AFTER_MS 50
/* The transaction is done with the connection (reply finished or aborted);
 * reply_bytes: the body bytes it sent (a large reply is followed by the
 * send_timeout check until the client has taken it). */
void gw_client_conn_request_ends(struct gw_client_conn *cc, uint64_t reply_bytes);
/* Closes the connection now (client gone, reply impossible). */
void gw_client_conn_abort(struct gw_client_conn *cc);
/* Closes it now if no request is in progress (drain). */
void gw_client_conn_close_if_idle(struct gw_client_conn *cc);

/*
 * Process-wide table from socket to connection (gw_client_conn_of). Its
 * memory follows the sockets in use (limits.max_connections bounds them),
 * not RLIMIT_NOFILE: see client_conn.c. Set up once at start-up, for the
 * fds RLIMIT_NOFILE allows (raising the soft limit to the hard one, up to
 * 2^20), or for fds below max_fds (tests).
 */
void gw_client_conn_table_init(void);
void gw_client_conn_table_init_for(uint64_t max_fds);
/* What the table holds now, in bytes (tests). */
size_t gw_client_conn_table_bytes(void);
/* The entry of socket fd (tests; NULL for none). */
void gw_client_conn_table_set(evutil_socket_t fd, struct gw_client_conn *cc);
struct gw_client_conn *gw_client_conn_table_get(evutil_socket_t fd);

#endif
