#include "evhttp_adapter.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "util/alloc.h"
#include "util/clock.h"

/* Checked against 2.1.12-stable only: see evhttp_adapter.h. */
#if LIBEVENT_VERSION_NUMBER < 0x02010c00 || LIBEVENT_VERSION_NUMBER >= 0x02020000
#error "gateway/evhttp_adapter.c relies on evhttp internals checked on libevent 2.1.12 only"
#endif

bool gw_evhttp_request_is_http10(const struct evhttp_request *req)
{
	return req->major == 1 && req->minor == 0;
}

bool gw_evhttp_request_adopt(struct evhttp_request *req)
{
	/* evhttp answers with the request's version: 1.2 and up are 1.1. */
	if (req->major == 1 && req->minor > 1)
		req->minor = 1;
	/* evhttp marks an absolute-form target EVHTTP_PROXY_REQUEST, which
	 * makes it keep HTTP/1.0 connections alive on its own terms. */
	req->flags &= ~EVHTTP_PROXY_REQUEST;
	return gw_evhttp_request_is_http10(req);
}

/*
 * The same through TLS, in records of up to GW_TLS_WRITE_PIECE bytes made
 * contiguous first: a response's head and body sit in separate chains, and
 * one SSL_write per chain would send two records and make two write calls
 * for a small answer. What SSL_write does not finish stays at the front of
 * data and goes through evhttp, that is to bufferevent_openssl, which
 * writes its output from the same chains: when OpenSSL holds a
 * half-written record (SSL_ERROR_WANT_WRITE), the retry it requires comes
 * with the same bytes and at least the same length (the contexts set
 * SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER for the address).
 */
#define GW_TLS_WRITE_PIECE 16384

static void write_now_tls(SSL *ssl, struct evbuffer *data)
{
	size_t left;

	while ((left = evbuffer_get_length(data)) > 0) {
		size_t piece = left < GW_TLS_WRITE_PIECE ? left : GW_TLS_WRITE_PIECE;
		unsigned char *p = evbuffer_pullup(data, (ev_ssize_t)piece);
		int n;

		if (!p)
			return;
		ERR_clear_error();
		n = SSL_write(ssl, p, (int)piece);
		if (n <= 0) {
			ERR_clear_error(); /* the bufferevent reports what stays wrong */
			return;
		}
		evbuffer_drain(data, (size_t)n);
	}
}

/*
 * When nothing is queued for the client, the bytes go to the socket at once:
 * evhttp would otherwise enable the write event and write one loop iteration
 * later, an extra epoll_ctl and wakeup per response. What the socket does not
 * take goes through evhttp as usual. On a TLS connection through SSL_write.
 */
static void write_now(struct evhttp_request *req, struct evbuffer *data)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(req->evcon);
	evutil_socket_t fd = bufferevent_getfd(bev);
	SSL *ssl;

	if (fd < 0 || evbuffer_get_length(bufferevent_get_output(bev)) > 0)
		return; /* keep the order: earlier bytes are still queued */
	ssl = bufferevent_openssl_get_ssl(bev);
	if (ssl) {
		write_now_tls(ssl, data);
		return;
	}
	while (evbuffer_get_length(data) > 0)
		if (evbuffer_write(data, fd) <= 0)
			break; /* EAGAIN or an error: evhttp's path takes over */
}

void gw_evhttp_send_framed(struct evhttp_request *req, struct evbuffer *data,
                           void (*drained)(struct evhttp_connection *, void *), void *arg)
{
	enum evhttp_cmd_type type = req->type;

	if (req->evcon) {
		write_now(req, data);
		if (evbuffer_get_length(data) == 0)
			return;
	}
	/* evhttp writes nothing for HEAD requests; the gateway has already left
	 * the body out, so the bytes here are a head and must go. The chunked
	 * flag is set while a chunked request body was read: cleared, evhttp
	 * adds no chunk framing of its own. */
	req->type = EVHTTP_REQ_GET;
	req->chunked = 0;
	evhttp_send_reply_chunk_with_cb(req, data, drained, arg);
	req->type = type;
	evbuffer_drain(data,
	               evbuffer_get_length(data)); /* nothing left behind if the client is gone */
}

void gw_evhttp_end_framed(struct evhttp_request *req)
{
	req->chunked = 0; /* no "0\r\n\r\n" from evhttp: the gateway framed it */
	evhttp_send_reply_end(req);
}

struct evhttp_connection *gw_evhttp_connection_of(struct bufferevent *bev)
{
	void *cbarg = NULL;

	/* evhttp_connection_base_bufferevent_new sets the connection as the
	 * bufferevent's callback argument (http.c, 2.1.12). */
	bufferevent_getcb(bev, NULL, NULL, NULL, &cbarg);
	return cbarg;
}

bool gw_evhttp_send_now(struct bufferevent *bev, const void *data, size_t len)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	ssize_t n;

	if (evbuffer_get_length(bufferevent_get_output(bev)) > 0)
		return false; /* bytes of an earlier answer are queued: they would be cut */
	if (ssl) {
		/* The handshake is done (a request byte came). One record,
		 * written to the socket at once or not at all. */
		ERR_clear_error();
		return SSL_write(ssl, data, (int)len) == (int)len;
	}
	n = send(bufferevent_getfd(bev), data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	return n == (ssize_t)len;
}

void gw_evhttp_sock_reset(evutil_socket_t fd)
{
	/* connect() to AF_UNSPEC aborts a TCP connection with a reset at once
	 * (Linux, connect(2)), before evhttp's own close shuts it down with a
	 * FIN that would pass a cut body off as whole. */
	struct sockaddr unspec = {.sa_family = AF_UNSPEC};

	(void)connect(fd, &unspec, sizeof(unspec));
}

/* ---- lingering close ----------------------------------------------------- */

/* Ownership: made by gw_evhttp_sock_linger, frees itself with its socket. */
struct linger_state {
	evutil_socket_t fd; /* the duplicate: owned */
	size_t discarded;
	size_t max_bytes;
	uint64_t until_ms; /* EV_PERSIST restarts the timeout on each read */
	struct event *ev;  /* owned */
	void (*done)(void *);
	void *arg;
};

static void linger_end(struct linger_state *l)
{
	void (*done)(void *) = l->done;
	void *arg = l->arg;

	event_free(l->ev);
	close(l->fd);
	free(l);
	if (done)
		done(arg);
}

static void on_linger(evutil_socket_t fd, short what, void *arg)
{
	struct linger_state *l = arg;
	char scratch[16384];

	if (what & EV_TIMEOUT) {
		linger_end(l);
		return;
	}
	for (;;) {
		ssize_t n = recv(fd, scratch, sizeof(scratch), MSG_DONTWAIT);
		if (n > 0) {
			l->discarded += (size_t)n;
			if (l->discarded > l->max_bytes || gw_clock_now_ms() > l->until_ms)
				break;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		break; /* EOF or error */
	}
	linger_end(l);
}

bool gw_evhttp_sock_linger(struct event_base *base, evutil_socket_t fd, unsigned ms,
                           size_t max_bytes, void (*done)(void *), void *arg)
{
	struct linger_state *l;
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (suseconds_t)(ms % 1000) * 1000};
	evutil_socket_t keep = dup(fd);

	if (keep < 0)
		return false;
	l = gw_calloc(1, sizeof(*l));
	l->fd = keep;
	l->max_bytes = max_bytes;
	l->until_ms = gw_clock_now_ms() + ms;
	l->done = done;
	l->arg = arg;
	l->ev = event_new(base, keep, EV_READ | EV_PERSIST, on_linger, l);
	shutdown(keep, SHUT_WR);
	event_add(l->ev, &tv);
	return true;
}

/*
 * The read keeper (evhttp_adapter.h). evhttp disables reading when a
 * request is complete (evhttp_read_body: bufferevent_disable(EV_READ)) and
 * enables it again when the answer is sent (evhttp_send_done ->
 * evhttp_start_read_): with epoll each is an epoll_ctl on the socket, two
 * system calls per keep-alive request. libevent registers a socket with
 * epoll while any event on it wants EV_READ (evmap.c counts them), so a
 * second, persistent EV_READ event keeps the registration through both.
 *
 * Whether the bufferevent reads is whether its own read event is pending
 * (struct bufferevent's ev_read, event2/bufferevent_struct.h): that is false
 * too when it is suspended rather than disabled. The keeper's callback may
 * run right after the bufferevent's in the same loop turn (a request read
 * whole disables reading): one wake-up while not reading is allowed for
 * that; a second means bytes wait unread, and the keeper steps out (one
 * epoll_ctl) until the answer ends.
 */
struct gw_read_keeper {
	struct event *ev;        /* owned: EV_READ | EV_PERSIST on the socket */
	struct bufferevent *bev; /* not owned: evhttp's bufferevent of the connection */
	unsigned idle_wakeups;   /* wake-ups while the bufferevent did not read */
	bool held;               /* ev is added */
};

static void on_keeper_readable(evutil_socket_t fd, short what, void *arg)
{
	struct gw_read_keeper *k = arg;

	(void)fd;
	(void)what;
	if (event_pending(&k->bev->ev_read, EV_READ, NULL)) {
		k->idle_wakeups = 0;
		return;
	}
	if (++k->idle_wakeups >= 2) {
		event_del(k->ev);
		k->held = false;
	}
}

struct gw_read_keeper *gw_evhttp_read_keeper_new(struct event_base *base, struct bufferevent *bev)
{
	struct gw_read_keeper *k = gw_calloc(1, sizeof(*k));

	k->bev = bev;
	k->ev =
	    event_new(base, bufferevent_getfd(bev), EV_READ | EV_PERSIST, on_keeper_readable, k);
	k->held = event_add(k->ev, NULL) == 0;
	return k;
}

void gw_evhttp_read_keeper_rearm(struct gw_read_keeper *k)
{
	if (!k)
		return;
	k->idle_wakeups = 0;
	if (!k->held)
		k->held = event_add(k->ev, NULL) == 0;
}

void gw_evhttp_read_keeper_free(struct gw_read_keeper *k)
{
	if (!k)
		return;
	event_free(k->ev);
	free(k);
}
