#include "upconn.h"
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

#include "../util/alloc.h"
#include "../util/clock.h"
#include "../util/log.h"

/* Largest response head accepted from an upstream. */
#define GW_UPSTREAM_MAX_HEAD (64 * 1024)
/* One read from the socket: far above evbuffer_read's 4 KiB. */
#define GW_UPSTREAM_READ_SIZE (64 * 1024)

static void on_readable(evutil_socket_t fd, short what, void *arg);
static void on_writable(evutil_socket_t fd, short what, void *arg);
static void on_timer(evutil_socket_t fd, short what, void *arg);

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
}

static int flush_out(struct gw_upconn *c)
{
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
	if (c->state == GW_UPCONN_CONNECTING)
		return; /* on_writable sends once connected */
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
	if (paused)
		read_off(c);
	else
		read_on(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct gw_upconn *c = arg;

	if (c->state == GW_UPCONN_CONNECTING)
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
		evtimer_del(c->timer_ev);
		if (!c->handler) {
			gw_upconn_close(c); /* nobody waits for it any more */
			return;
		}
		c->state = GW_UPCONN_WAITING;
		read_on(c);
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
