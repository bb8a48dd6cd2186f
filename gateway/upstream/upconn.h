/*
 * One connection from a worker to an upstream server, carrying at most one
 * request at a time (never evhttp's hidden queueing).
 *
 * The gateway drives the socket itself rather than through evhttp's client:
 * it needs its own strict response parser (http/response_head.h), separate
 * connect and response deadlines, reads larger than evbuffer_read's 4 KiB,
 * and streaming with backpressure. A response reaches its owner either whole
 * (on_response, the common small case: one reply, one write to the client)
 * or as a head followed by body pieces (on_head, on_body ... last).
 *
 * Over TLS (the upstream has `tls`), the TCP connect is followed by a
 * non-blocking handshake on the same socket, both within connect_timeout;
 * a handshake that fails is a connect failure. Then reads and writes go
 * through the connection's SSL (gateway/tls/tls_io.h) instead of the
 * socket; everything above them is the same. Plain TCP pays one pointer
 * test per step for it.
 *
 * Ownership: a connection belongs to its pool (pool.h). While a request is
 * on it, the owner (a transaction) is told exactly one of: on_response,
 * on_body(last=true), or on_error; after that the owner must forget it. An
 * owner that gives up earlier calls gw_upconn_abandon and also forgets it.
 */
#ifndef GW_UPSTREAM_UPCONN_H
#define GW_UPSTREAM_UPCONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/util.h>
#include <openssl/types.h>

#include "../http/chunked.h"
#include "../http/response_head.h"
#include "../tls/tls_io.h"
#include "../try_result.h"

struct event;
struct evbuffer;
struct gw_pool_server;

enum gw_upconn_state {
	GW_UPCONN_CONNECTING = 0,
	GW_UPCONN_HANDSHAKE, /* TLS: connected, handshake in progress */
	GW_UPCONN_IDLE,      /* in the pool, waiting for a request */
	GW_UPCONN_WAITING,   /* request sent or being sent, no response byte yet */
	GW_UPCONN_HEAD,      /* reading the response head */
	GW_UPCONN_BODY,      /* relaying the response body */
};

struct gw_upconn_handler {
	void (*on_response)(void *owner, const struct gw_response_head *head,
	                    struct evbuffer *body);
	void (*on_head)(void *owner, const struct gw_response_head *head);
	/* Owner takes what it wants from data; last: the response is complete. */
	void (*on_body)(void *owner, struct evbuffer *data, bool last);
	/* The try failed; the connection is already gone. answered: the
	 * server had sent bytes of its answer (a 1xx, part of a head) before
	 * it failed, so the request did reach it. */
	void (*on_error)(void *owner, enum gw_try_result result, bool answered);
};

struct gw_upconn {
	struct gw_pool_server *server; /* the pool slot it belongs to */
	evutil_socket_t fd;
	enum gw_upconn_state state;
	struct event *read_ev;  /* owned */
	struct event *write_ev; /* owned; also waits for connect */
	struct event *timer_ev; /* owned: connect deadline (the TLS handshake included) */
	struct evbuffer *in;    /* owned: bytes read, not yet parsed */
	struct evbuffer *out;   /* owned: request bytes not yet written */
	struct evbuffer *body;  /* owned: body bytes handed to the owner */

	unsigned requests; /* requests completed; > 0 means reused */
	bool got_response_bytes;
	bool head_request;
	bool paused;  /* owner asked to stop reading (backpressure) */
	bool reading; /* read_ev is armed */
	uint64_t idle_since_ms;
	bool in_callback; /* inside on_head/on_body: abandon is deferred */
	bool abandoned;

	struct gw_response_head head; /* pointers into head_copy */
	char *head_copy;              /* owned */
	size_t head_copy_cap;
	uint64_t body_left; /* GW_BODY_LENGTH */
	struct gw_chunked chunked;

	const struct gw_upconn_handler *handler;
	void *owner;

	/* TLS; ssl is NULL for plain TCP and the rest unused. */
	SSL *ssl;                  /* owned: freed at close, after one close_notify try */
	bool tls_read_wants_write; /* the last read waits for the socket to be writable */
	bool tls_write_wants_read; /* the last write waits for the socket to be readable */
	bool tls_failed;           /* a TLS or socket error: nothing more may be written */
	enum gw_tls_io tls_end;    /* EOF or ERROR met after bytes still to be parsed; else OK */

	TAILQ_ENTRY(gw_upconn) link; /* in the server's idle list */
};

/* Opens a new connection to the pool slot's server (non-blocking connect). */
struct gw_upconn *gw_upconn_connect(struct gw_pool_server *server);
/*
 * Sends the request bytes already appended to c->out and reads the response.
 * head_request: the request is HEAD (the response has no body).
 */
void gw_upconn_start(struct gw_upconn *c, const struct gw_upconn_handler *h, void *owner,
                     bool head_request);
/* Hands the request on c, and whatever is still to come of its response, to
 * another owner (a hedged try that won becomes the transaction's try). */
static inline void gw_upconn_set_owner(struct gw_upconn *c, const struct gw_upconn_handler *h,
                                       void *owner)
{
	c->handler = h;
	c->owner = owner;
}

/* Stops or resumes reading the response (backpressure from the client). */
void gw_upconn_pause(struct gw_upconn *c, bool paused);
/* The owner gives up: the connection is closed (its state is unknown). */
void gw_upconn_abandon(struct gw_upconn *c);
/* Idle keep-alive connections are closed after this long (pool sweep). */
#define GW_UPSTREAM_IDLE_MS 30000

/* Puts a connection that just finished a response into the idle state
 * (reading, to notice a close); the pool lists it. */
void gw_upconn_make_idle(struct gw_upconn *c);
/* Closes and frees (pool bookkeeping included). */
void gw_upconn_close(struct gw_upconn *c);

#endif
