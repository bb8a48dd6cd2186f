#include "upconn.h"
#include "health.h"
#include "pool.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "../util/alloc.h"
#include "../util/clock.h"
#include "../util/log.h"
#include "../util/log_limit.h"

/* Largest response head accepted from an upstream. */
#define GW_UPSTREAM_MAX_HEAD (64 * 1024)
/* One read from the socket: far above evbuffer_read's 4 KiB. */
#define GW_UPSTREAM_READ_SIZE (64 * 1024)
/* At most one log line per server this often about its TLS failures. */
#define GW_TLS_LOG_INTERVAL_MS 1000

static void on_readable(evutil_socket_t fd, short what, void *arg);
static void on_writable(evutil_socket_t fd, short what, void *arg);
static void on_timer(evutil_socket_t fd, short what, void *arg);
static void tls_log(struct gw_pool_server *s, const char *what, const char *why);
static void tls_on_readable(struct gw_upconn *c);
static void tls_on_writable(struct gw_upconn *c);
static void tls_handshake(struct gw_upconn *c);
static int tls_flush_out(struct gw_upconn *c);
static void tls_write_failed(struct gw_upconn *c);

/* The read event stays armed across requests on a kept-alive connection:
 * arming it again for every request would cost a syscall each time. */
static void read_on(struct gw_upconn *c)
{
	if (!c->reading) {
		event_add(c->read_ev, NULL);
		c->reading = true;
	}
}

static void read_off(struct gw_upconn *c)
{
	if (c->reading) {
		event_del(c->read_ev);
		c->reading = false;
	}
}

static struct event_base *base_of(const struct gw_upconn *c)
{
	return c->server->pool->env.base;
}

static void set_timer_ms(struct gw_upconn *c, uint64_t ms)
{
	struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
	                     .tv_usec = (suseconds_t)(ms % 1000) * 1000};

	evtimer_add(c->timer_ev, &tv);
}

struct gw_upconn *gw_upconn_connect(struct gw_pool_server *server)
{
	const struct gw_sockaddr *addr = &server->conf->addr;
	struct gw_upconn *c;
	SSL *ssl = NULL;
	int one = 1;
	int fd;

	fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (const struct sockaddr *)&addr->ss, addr->len) < 0 &&
	    errno != EINPROGRESS) {
		int err = errno;
		close(fd);
		errno = err;
		return NULL;
	}
	if (server->tls) {
		ssl = gw_tls_peer_ssl_new(server->tls, fd);
		if (!ssl) {
			tls_log(server, "cannot start TLS", "OpenSSL could not make a connection");
			close(fd);
			errno = ENOMEM;
			return NULL;
		}
	}
	c = gw_calloc(1, sizeof(*c));
	c->server = server;
	c->fd = fd;
	c->state = GW_UPCONN_CONNECTING;
	c->in = evbuffer_new();
	c->out = evbuffer_new();
	c->body = evbuffer_new();
	c->read_ev = event_new(base_of(c), fd, EV_READ | EV_PERSIST, on_readable, c);
	c->write_ev = event_new(base_of(c), fd, EV_WRITE, on_writable, c);
	c->timer_ev = evtimer_new(base_of(c), on_timer, c);
	event_add(c->write_ev, NULL);
	set_timer_ms(c, server->pool->conf->connect_timeout_ms);
	server->nopen++;
	c->ssl = ssl;
	return c;
}

void gw_upconn_close(struct gw_upconn *c)
{
	struct gw_pool_server *server = c->server;

	if (c->state == GW_UPCONN_IDLE) {
		TAILQ_REMOVE(&server->idle, c, link);
		server->nidle--;
	}
	event_free(c->read_ev);
	event_free(c->write_ev);
	event_free(c->timer_ev);
	evbuffer_free(c->in);
	evbuffer_free(c->out);
	evbuffer_free(c->body);
	if (c->ssl)
		gw_tls_io_close(c->ssl, !c->tls_failed);
	close(c->fd);
	free(c->head_copy);
	free(c);
	server->nopen--;
	gw_pool_closed(server);
}

/* Ends the try with an error: the owner hears it once, then the socket goes. */
static void fail(struct gw_upconn *c, enum gw_try_result result, int err)
{
	const struct gw_upconn_handler *h = c->handler;
	void *owner = c->owner;
	bool answered = c->got_response_bytes;

	(void)err;
	c->handler = NULL;
	c->owner = NULL;
	gw_upconn_close(c);
	if (h)
		h->on_error(owner, result, answered);
}

void gw_upconn_abandon(struct gw_upconn *c)
{
	c->handler = NULL;
	c->owner = NULL;
	if (c->in_callback)
		c->abandoned = true; /* closed when the callback returns */
	else
		gw_upconn_close(c);
}

/* Calls on_head or on_body (not last) and closes the connection afterwards
 * if the owner abandoned it meanwhile. Returns false when it is gone. */
static bool notify(struct gw_upconn *c, bool head)
{
	c->in_callback = true;
	if (head)
		c->handler->on_head(c->owner, &c->head);
	else
		c->handler->on_body(c->owner, c->body, false);
	c->in_callback = false;
	if (c->abandoned) {
		gw_upconn_close(c);
		return false;
	}
	return true;
}

/* The response is complete: hand the connection back or close it. */
static void finish(struct gw_upconn *c, bool reusable)
{
	c->handler = NULL;
	c->owner = NULL;
	c->requests++;
	if (c->ssl) {
		/* TLS 1.3 sessions come after the handshake: with the response. */
		gw_tls_session_slot_save(&c->server->tls_session, c->ssl);
		if (c->tls_end != GW_TLS_IO_OK || SSL_pending(c->ssl) > 0)
			reusable = false; /* closed by the server, or sent more than asked */
	}
	if (!reusable || evbuffer_get_length(c->in) > 0 || evbuffer_get_length(c->out) > 0) {
		gw_upconn_close(c);
		return;
	}
	gw_pool_release(c);
}

void gw_upconn_make_idle(struct gw_upconn *c)
{
	c->state = GW_UPCONN_IDLE;
	c->paused = false;
	c->idle_since_ms = gw_clock_now_ms(); /* the pool's sweep closes it after a while */
	read_on(c);                           /* an idle socket that turns readable is closing */
	/* TLS records read ahead are no socket event: see tls_idle_readable. */
	if (c->ssl && SSL_has_pending(c->ssl))
		event_active(c->read_ev, EV_READ, 0);
}

static int flush_out(struct gw_upconn *c)
{
	if (c->ssl)
		return tls_flush_out(c);
	while (evbuffer_get_length(c->out) > 0) {
		int n = evbuffer_write(c->out, c->fd);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				event_add(c->write_ev, NULL);
				return 0;
			}
			return -1;
		}
	}
	return 0;
}

void gw_upconn_start(struct gw_upconn *c, const struct gw_upconn_handler *h, void *owner,
                     bool head_request)
{
	c->handler = h;
	c->owner = owner;
	c->head_request = head_request;
	c->got_response_bytes = false;
	c->paused = false;
	if (c->state == GW_UPCONN_CONNECTING || c->state == GW_UPCONN_HANDSHAKE)
		return; /* sent once connected (and the TLS handshake done) */
	c->state = GW_UPCONN_WAITING;
	if (flush_out(c) < 0) {
		fail(c, GW_TRY_RESET, errno);
		return;
	}
	read_on(c);
}

void gw_upconn_pause(struct gw_upconn *c, bool paused)
{
	if (c->paused == paused)
		return;
	c->paused = paused;
	if (paused) {
		read_off(c);
	} else {
		read_on(c);
		/* Decrypted bytes may wait inside the SSL: no socket event
		 * would announce them. A read attempt costs little. */
		if (c->ssl)
			event_active(c->read_ev, EV_READ, 0);
	}
}

/*
 * One warn line about a server's TLS, at most one per server per second
 * for the whole process (the limit is shared through the health state),
 * saying how many were left out before it: a server with a bad
 * certificate fails every connection to it, and every request would log.
 */
static void tls_log(struct gw_pool_server *s, const char *what, const char *why)
{
	struct gw_pool *pool = s->pool;
	struct gw_log_limit *limit =
	    pool->health ? gw_health_log_limit(pool->health, pool->conf->index, s->index)
	                 : &s->tls_log;
	unsigned left_out;

	if (!gw_log_limit_pass(limit, gw_clock_now_ms(), GW_TLS_LOG_INTERVAL_MS, &left_out))
		return;
	if (left_out)
		gw_log_warn("upstream %s server %s: %s: %s (and %u more TLS failures since the "
		            "last line)",
		            pool->conf->name, s->conf->address, what, why, left_out);
	else
		gw_log_warn("upstream %s server %s: %s: %s", pool->conf->name, s->conf->address,
		            what, why);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct gw_upconn *c = arg;
	char why[64];

	if (c->state == GW_UPCONN_HANDSHAKE) {
		snprintf(why, sizeof(why), "no answer within connect_timeout (%llu ms)",
		         (unsigned long long)c->server->pool->conf->connect_timeout_ms);
		tls_log(c->server, "TLS handshake failed", why);
	}
	if (c->state == GW_UPCONN_CONNECTING || c->state == GW_UPCONN_HANDSHAKE)
		fail(c, GW_TRY_CONNECT_FAILURE, ETIMEDOUT);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
	struct gw_upconn *c = arg;

	if (c->state == GW_UPCONN_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);

		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err != 0) {
			fail(c, GW_TRY_CONNECT_FAILURE, err);
			return;
		}
		if (c->ssl) {
			/* The connect deadline runs on over the handshake. */
			c->state = GW_UPCONN_HANDSHAKE;
			gw_tls_session_slot_apply(&c->server->tls_session, c->ssl);
			tls_handshake(c);
			return;
		}
		evtimer_del(c->timer_ev);
		if (!c->handler) {
			gw_upconn_close(c); /* nobody waits for it any more */
			return;
		}
		c->state = GW_UPCONN_WAITING;
		read_on(c);
	} else if (c->ssl) {
		tls_on_writable(c);
		return;
	}
	if (flush_out(c) < 0)
		fail(c, GW_TRY_RESET, errno);
}

/* Copies the parsed head out of the input buffer so it can be drained. */
static void keep_head(struct gw_upconn *c, const char *base)
{
	size_t len = c->head.head_len;

	if (c->head_copy_cap < len) {
		free(c->head_copy);
		c->head_copy_cap = len < 4096 ? 4096 : len;
		c->head_copy = gw_malloc(c->head_copy_cap);
	}
	memcpy(c->head_copy, base, len);
#define REBASE(p) ((p) = (p) ? c->head_copy + ((p)-base) : NULL)
	REBASE(c->head.reason);
	for (size_t i = 0; i < c->head.nheaders; i++) {
		REBASE(c->head.headers[i].name);
		REBASE(c->head.headers[i].value);
	}
#undef REBASE
}

/*
 * Moves the body bytes available now into c->body. Returns 1 when the body
 * is complete, 0 when more is to come, -1 when the framing is invalid.
 */
static int take_body(struct gw_upconn *c, bool eof)
{
	switch (c->head.framing) {
	case GW_BODY_NONE:
		return 1;
	case GW_BODY_LENGTH: {
		size_t avail = evbuffer_get_length(c->in);
		size_t n = avail < c->body_left ? avail : (size_t)c->body_left;
		evbuffer_remove_buffer(c->in, c->body, n);
		c->body_left -= n;
		return c->body_left == 0 ? 1 : 0;
	}
	case GW_BODY_CHUNKED:
		switch (gw_chunked_decode(&c->chunked, c->in, c->body, SIZE_MAX)) {
		case GW_CHUNKED_FINISHED:
			return 1;
		case GW_CHUNKED_MORE:
			return 0;
		default:
			return -1;
		}
	case GW_BODY_CLOSE:
		evbuffer_add_buffer(c->body, c->in);
		return eof ? 1 : 0;
	}
	return -1;
}

/* Parses the head when it is all there. 1 parsed, 0 need more, -1 failed. */
static int parse_head(struct gw_upconn *c)
{
	for (;;) {
		size_t len = evbuffer_get_length(c->in);
		size_t want = len < GW_UPSTREAM_MAX_HEAD ? len : GW_UPSTREAM_MAX_HEAD;
		const char *p = (const char *)evbuffer_pullup(c->in, (ev_ssize_t)want);
		enum gw_response_parse r = gw_response_head_parse(p, want, GW_UPSTREAM_MAX_HEAD,
		                                                  c->head_request, &c->head);

		if (r == GW_RESPONSE_INCOMPLETE)
			return len >= GW_UPSTREAM_MAX_HEAD ? -1 : 0;
		if (r != GW_RESPONSE_DONE)
			return -1;
		if (c->head.status >= 100 && c->head.status < 200) {
			if (c->head.status == 101)
				return -1; /* no protocol switch through this proxy */
			evbuffer_drain(c->in, c->head.head_len); /* 100, 103: informational */
			continue;
		}
		keep_head(c, p);
		evbuffer_drain(c->in, c->head.head_len);
		c->body_left = c->head.framing == GW_BODY_LENGTH ? c->head.content_length : 0;
		gw_chunked_init(&c->chunked);
		return 1;
	}
}

/*
 * The response is complete: the owner hears it last (whole, or as the last
 * body piece), forgets the connection, and the connection goes back to its
 * pool when the server allows it.
 */
static void complete(struct gw_upconn *c, bool whole)
{
	const struct gw_upconn_handler *h = c->handler;
	void *owner = c->owner;
	bool reusable = c->head.keep_alive;

	c->handler = NULL;
	c->owner = NULL;
	if (whole)
		h->on_response(owner, &c->head, c->body);
	else
		h->on_body(owner, c->body, true);
	evbuffer_drain(c->body, evbuffer_get_length(c->body));
	finish(c, reusable);
}

/*
 * Reads what arrived: the head first (then the whole response at once when
 * its body is already here, the common small case), then body pieces.
 */
static void process_input(struct gw_upconn *c, bool eof)
{
	bool head_now = false;
	int done;

	if (c->state == GW_UPCONN_WAITING || c->state == GW_UPCONN_HEAD) {
		int r = parse_head(c);
		if (r == 0) {
			c->state = GW_UPCONN_HEAD;
			if (eof)
				fail(c, GW_TRY_INVALID_RESPONSE, 0);
			return;
		}
		if (r < 0) {
			fail(c, GW_TRY_INVALID_RESPONSE, 0);
			return;
		}
		head_now = true;
	} else if (c->state != GW_UPCONN_BODY) {
		return;
	}
	done = take_body(c, eof);
	if (done < 0) {
		fail(c, GW_TRY_INVALID_RESPONSE, 0);
		return;
	}
	if (done) {
		complete(c, head_now);
		return;
	}
	if (head_now) {
		c->state = GW_UPCONN_BODY;
		if (!notify(c, true))
			return;
	} else if (eof) {
		fail(c, GW_TRY_RESET, 0); /* truncated body */
		return;
	}
	if (evbuffer_get_length(c->body) > 0)
		notify(c, false);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct gw_upconn *c = arg;
	struct evbuffer_iovec vec[2];
	struct iovec iov[2];
	bool eof = false;
	ssize_t n;
	int nvec;

	if (c->ssl) {
		tls_on_readable(c);
		return;
	}
	if (c->state == GW_UPCONN_IDLE) {
		/* Data or EOF on an idle connection: the server closes it or
		 * misbehaves; either way it cannot carry a request. */
		gw_upconn_close(c);
		return;
	}
	nvec = evbuffer_reserve_space(c->in, GW_UPSTREAM_READ_SIZE, vec, 2);
	for (int i = 0; i < nvec; i++) {
		iov[i].iov_base = vec[i].iov_base;
		iov[i].iov_len = vec[i].iov_len;
	}
	n = readv(fd, iov, nvec);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		fail(c, c->state == GW_UPCONN_CONNECTING ? GW_TRY_CONNECT_FAILURE : GW_TRY_RESET,
		     errno);
		return;
	}
	if (n == 0) {
		eof = true;
		if (!c->got_response_bytes) {
			fail(c, GW_TRY_RESET, 0); /* closed before answering */
			return;
		}
	} else {
		int used = 0;
		for (int i = 0; i < nvec && n > 0; i++, used++) {
			size_t take = (size_t)n < vec[i].iov_len ? (size_t)n : vec[i].iov_len;
			vec[i].iov_len = take;
			n -= (ssize_t)take;
		}
		evbuffer_commit_space(c->in, vec, used);
		c->got_response_bytes = true;
	}
	process_input(c, eof);
}

/* ---- TLS ------------------------------------------------------------------ */

/*
 * After a TLS or socket error nothing more may be written (no close_notify
 * at close). A TLS protocol error (an alert, a record that fails its
 * check: errno EPROTO) also ends the connection's session, so that no
 * later connection offers it again: OpenSSL's rule for the sessions of its
 * own cache, applied to the server's slot, which is the cache here.
 */
static void tls_error(struct gw_upconn *c)
{
	struct gw_tls_session_slot *slot = &c->server->tls_session;
	int err = errno;

	c->tls_failed = true;
	if (err == EPROTO && slot->session && slot->session == SSL_get0_session(c->ssl))
		gw_tls_session_slot_free(slot);
	errno = err;
}

/*
 * The handshake, one step per socket event, after the TCP connect and
 * within the same deadline. The server's newest session was offered
 * (on_writable): when the server takes it back, the handshake is an
 * abbreviated one, and the session it ends with is the server's newest.
 * A failure is a failed connect for the try (502 upstream_unavailable once
 * retries are spent) and one warn line with the reason.
 */
static void tls_handshake(struct gw_upconn *c)
{
	char why[256];
	int err;

	switch (gw_tls_io_handshake(c->ssl, why, sizeof(why))) {
	case GW_TLS_IO_OK:
		break;
	case GW_TLS_IO_WANT_READ:
		read_on(c);
		return;
	case GW_TLS_IO_WANT_WRITE:
		event_add(c->write_ev, NULL);
		return;
	default:
		err = errno;
		tls_error(c);
		tls_log(c->server, "TLS handshake failed", why);
		fail(c, GW_TRY_CONNECT_FAILURE, err);
		return;
	}
	evtimer_del(c->timer_ev);
	gw_tls_session_slot_save(&c->server->tls_session, c->ssl); /* TLS 1.2 */
	if (!c->handler) {
		gw_upconn_close(c); /* nobody waits for it any more */
		return;
	}
	c->state = GW_UPCONN_WAITING;
	read_on(c);
	if (flush_out(c) < 0)
		tls_write_failed(c);
}

static int tls_flush_out(struct gw_upconn *c)
{
	switch (gw_tls_io_write(c->ssl, c->out)) {
	case GW_TLS_IO_OK:
		return 0;
	case GW_TLS_IO_WANT_WRITE:
		event_add(c->write_ev, NULL);
		return 0;
	case GW_TLS_IO_WANT_READ:
		c->tls_write_wants_read = true;
		read_on(c);
		return 0;
	default:
		tls_error(c);
		return -1; /* errno says why */
	}
}

/*
 * A read failed. A TLS error before the first byte of a new connection's
 * first response is the server refusing the TLS connection itself: in
 * TLS 1.3 the client's handshake is over before the server has checked
 * the client certificate (mutual TLS), and its refusal is an alert that
 * the first read finds. That is a failed handshake, so a connect failure
 * with its log line, as if the handshake had failed on this side; the
 * request was never processed. Anything else is a broken connection.
 */
static void tls_read_failed(struct gw_upconn *c)
{
	int err = errno;
	char why[256];

	if (err == EPROTO && c->requests == 0 && !c->got_response_bytes) {
		gw_tls_io_why(c->ssl, why, sizeof(why));
		tls_log(c->server, "TLS handshake failed", why);
		fail(c, GW_TRY_CONNECT_FAILURE, err);
		return;
	}
	fail(c, GW_TRY_RESET, err);
}

/*
 * A write failed. On a new connection before its first response this is
 * most often the same refusal as in tls_read_failed, seen from the other
 * side: the server sent its alert and closed (a reset, as our Finished was
 * still unread), and the request's write found the reset before anyone
 * read the alert. The alert is still there to read (the kernel hands
 * queued bytes out before a reset, and read-ahead may hold it already):
 * one read tells the refusal from a plain reset.
 */
static void tls_write_failed(struct gw_upconn *c)
{
	int err = errno;
	char byte;
	size_t n;

	if (c->requests == 0 && !c->got_response_bytes &&
	    gw_tls_io_read_buf(c->ssl, &byte, 1, &n) == GW_TLS_IO_ERROR && n == 0 &&
	    errno == EPROTO) {
		tls_error(c);
		tls_read_failed(c);
		return;
	}
	fail(c, GW_TRY_RESET, err);
}

/*
 * Reads the response through the SSL. Two things differ from a socket:
 *
 *   - The SSL can hold decrypted bytes that no socket event will announce
 *     (a read stops once it has GW_UPSTREAM_READ_SIZE bytes, and read-ahead
 *     may have pulled in more records than that). The read event is then
 *     made active by hand: this runs again in the same loop iteration's
 *     next round, after the other connections had their turn, unless the
 *     owner pauses reading meanwhile (gw_upconn_pause makes it active again
 *     on resume) or the connection ends.
 *   - One read can return the last bytes of a close-delimited body and the
 *     EOF after them (or an error). The bytes go up first, exactly as a
 *     socket read would return them; the EOF or error is kept in tls_end
 *     and handled in the next round, by which time the response may be
 *     complete and the connection gone (finish() sees tls_end and closes).
 */
static void tls_read(struct gw_upconn *c)
{
	enum gw_tls_io st = c->tls_end;
	size_t n = 0;

	if (c->paused)
		return;
	if (st == GW_TLS_IO_OK) {
		st = gw_tls_io_read(c->ssl, c->in, GW_UPSTREAM_READ_SIZE, &n);
	} else {
		c->tls_end = GW_TLS_IO_OK; /* kept from the last round */
		errno = ECONNRESET;
	}
	if (st == GW_TLS_IO_WANT_WRITE) {
		c->tls_read_wants_write = true;
		event_add(c->write_ev, NULL);
	}
	if (st == GW_TLS_IO_ERROR)
		tls_error(c);
	if (n > 0) {
		c->got_response_bytes = true;
		if (st == GW_TLS_IO_EOF || st == GW_TLS_IO_ERROR) {
			c->tls_end = st;
			event_active(c->read_ev, EV_READ, 0);
		} else if (st == GW_TLS_IO_OK && SSL_has_pending(c->ssl)) {
			event_active(c->read_ev, EV_READ, 0);
		}
		process_input(c, false);
		return;
	}
	if (st == GW_TLS_IO_EOF) {
		if (!c->got_response_bytes)
			fail(c, GW_TRY_RESET, 0); /* closed before answering */
		else
			process_input(c, true);
	} else if (st == GW_TLS_IO_ERROR) {
		tls_read_failed(c);
	}
}

/*
 * An idle TLS connection turned readable: the server closed it (a
 * close_notify, a FIN), sent bytes it should not have, or sent a TLS
 * message that is no data (a late session ticket, a key update): only
 * that last one leaves the connection usable, and a ticket is kept.
 */
static void tls_idle_readable(struct gw_upconn *c)
{
	char byte;
	size_t n;
	enum gw_tls_io st = gw_tls_io_read_buf(c->ssl, &byte, 1, &n);

	if (n == 0 && st == GW_TLS_IO_WANT_READ) {
		gw_tls_session_slot_save(&c->server->tls_session, c->ssl);
		return;
	}
	if (st == GW_TLS_IO_ERROR)
		tls_error(c);
	gw_upconn_close(c);
}

static void tls_on_readable(struct gw_upconn *c)
{
	switch (c->state) {
	case GW_UPCONN_CONNECTING:
		return; /* on_writable says when the connect is done */
	case GW_UPCONN_HANDSHAKE:
		tls_handshake(c);
		return;
	case GW_UPCONN_IDLE:
		tls_idle_readable(c);
		return;
	default:
		break;
	}
	if (c->tls_write_wants_read) {
		c->tls_write_wants_read = false;
		if (flush_out(c) < 0) {
			tls_write_failed(c);
			return;
		}
	}
	tls_read(c);
}

static void tls_on_writable(struct gw_upconn *c)
{
	if (c->state == GW_UPCONN_HANDSHAKE) {
		tls_handshake(c);
		return;
	}
	if (flush_out(c) < 0) {
		tls_write_failed(c);
		return;
	}
	if (c->tls_read_wants_write && !c->paused) {
		c->tls_read_wants_write = false;
		tls_on_readable(c); /* last: it may end the connection */
	}
}
