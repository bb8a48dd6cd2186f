#include "client_conn.h"

#include <errno.h>
#include <limits.h>
#include <linux/sockios.h> /* SIOCOUTQ */
#include <linux/tcp.h>     /* struct tcp_info with tcpi_bytes_acked (glibc's lacks it) */
#include <netinet/in.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>

#include "access_log.h"
#include "body_budget.h"
#include "evhttp_adapter.h"
#include "http/header_rules.h"
#include "http/request_head.h"
#include "reply.h"
#include "router.h"
#include "conn_cap.h"
#include "upstream_request.h"
#include "tls/tls_server.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/log_limit.h"
#include "worker.h"

/* How long a refused connection is drained before it is closed, so that the
 * client reads the error instead of a reset (lingering close). */
#define GW_LINGER_MS        2000
#define GW_LINGER_MAX_BYTES (1024 * 1024)

/* send_timeout: a client with response bytes waiting must take this many
 * (or all of them) within each send_timeout. */
#define GW_SEND_PROGRESS_BYTES (32 * 1024)

/*
 * Socket -> connection. Sockets are unique in the process while open and
 * each entry is only touched by the worker that owns that socket.
 *
 * Two levels: a directory of chunks of GW_CONN_CHUNK entries, each chunk
 * allocated when a socket in its range first opens (and kept). So the
 * memory follows the sockets really open, which limits.max_connections
 * bounds (plus upstream and other fds: about 8 bytes a socket), never
 * RLIMIT_NOFILE: where soft = hard = 2^30 a flat table would be 8 GiB. The
 * directory is 8 bytes per GW_CONN_CHUNK possible fds (2 MiB at 2^30, in
 * zero pages never touched above the fds in use).
 */
#define GW_CONN_CHUNK 4096

struct conn_chunk {
	_Atomic(struct gw_client_conn *) e[GW_CONN_CHUNK];
};

static _Atomic(struct conn_chunk *) *conn_dir;
static size_t conn_dir_size;
static atomic_size_t conn_chunks;

void gw_client_conn_table_init_for(uint64_t max_fds)
{
	if (max_fds > (uint64_t)INT_MAX + 1)
		max_fds = (uint64_t)INT_MAX + 1;
	conn_dir_size = (size_t)((max_fds + GW_CONN_CHUNK - 1) / GW_CONN_CHUNK);
	if (conn_dir_size == 0)
		conn_dir_size = 1;
	conn_dir = gw_calloc(conn_dir_size, sizeof(*conn_dir));
}

void gw_client_conn_table_init(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		if (rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max > (1 << 20) ? (1 << 20) : rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
			getrlimit(RLIMIT_NOFILE, &rl);
		}
		gw_client_conn_table_init_for((uint64_t)rl.rlim_cur);
	} else {
		gw_client_conn_table_init_for(65536);
	}
}

size_t gw_client_conn_table_bytes(void)
{
	return conn_dir_size * sizeof(*conn_dir) +
	       atomic_load(&conn_chunks) * sizeof(struct conn_chunk);
}

/* The table's entry for fd; its chunk is made when create says so. NULL
 * for a socket outside the table (or without a chunk yet). */
static _Atomic(struct gw_client_conn *) *conn_slot(evutil_socket_t fd, bool create)
{
	size_t i = (size_t)fd / GW_CONN_CHUNK;
	struct conn_chunk *c;

	if (fd < 0 || i >= conn_dir_size)
		return NULL;
	c = atomic_load_explicit(&conn_dir[i], memory_order_acquire);
	if (!c && create) {
		struct conn_chunk *fresh = gw_calloc(1, sizeof(*fresh));

		/* Two workers may race for a new chunk: one wins, the other
		 * uses the winner's. */
		if (atomic_compare_exchange_strong_explicit(
		        &conn_dir[i], &c, fresh, memory_order_acq_rel, memory_order_acquire)) {
			c = fresh;
			atomic_fetch_add(&conn_chunks, 1);
		} else {
			free(fresh);
		}
	}
	return c ? &c->e[(size_t)fd % GW_CONN_CHUNK] : NULL;
}

void gw_client_conn_table_set(evutil_socket_t fd, struct gw_client_conn *cc)
{
	_Atomic(struct gw_client_conn *) *slot = conn_slot(fd, cc != NULL);

	if (slot)
		atomic_store_explicit(slot, cc, memory_order_relaxed);
}

struct gw_client_conn *gw_client_conn_table_get(evutil_socket_t fd)
{
	_Atomic(struct gw_client_conn *) *slot = conn_slot(fd, false);

	return slot ? atomic_load_explicit(slot, memory_order_relaxed) : NULL;
}

static const struct gw_limits_conf *limits_of(const struct gw_client_conn *cc)
{
	return &cc->worker->config->limits;
}

static void arm_timer(struct gw_client_conn *cc, uint64_t ms)
{
	struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
	                     .tv_usec = (suseconds_t)(ms % 1000) * 1000};

	evtimer_add(cc->timer, &tv);
}

/* ---- lingering close ---------------------------------------------------- */

/* Refused connections lingering now, in the whole process. At most
 * linger_cap() of them: past it a refused connection is closed at once
 * (its answer may then be lost to a reset), so a flood of bad requests
 * holds no more sockets than that beyond limits.max_connections. */
static atomic_uint lingering;
static atomic_bool linger_full_logged;

static unsigned linger_cap(const struct gw_limits_conf *lim)
{
	return lim->max_connections / 4 + 1;
}

static void linger_done(void *arg)
{
	(void)arg;
	if (atomic_fetch_sub(&lingering, 1) == 1)
		atomic_store(&linger_full_logged, false);
}

/* Lets the refused connection's answer reach the client before the close
 * (gw_evhttp_sock_linger), within linger_cap(). */
static void linger(struct gw_client_conn *cc)
{
	if (atomic_fetch_add(&lingering, 1) < linger_cap(limits_of(cc))) {
		if (!gw_evhttp_sock_linger(cc->worker->base, cc->fd, GW_LINGER_MS,
		                           GW_LINGER_MAX_BYTES, linger_done, NULL))
			atomic_fetch_sub(&lingering, 1);
		return;
	}
	atomic_fetch_sub(&lingering, 1);
	if (!atomic_exchange(&linger_full_logged, true))
		gw_log_warn("%u refused connections linger: further ones are closed at once",
		            linger_cap(limits_of(cc)));
}

/* ---- refusing a request before evhttp parses it ------------------------- */

void gw_client_conn_tls_info(const struct gw_client_conn *cc, const char **version,
                             const char **sni)
{
	*version = *sni = NULL;
	if (cc && cc->ssl)
		gw_tls_server_info(cc->ssl, version, sni);
}

static void log_refusal(struct gw_client_conn *cc, const struct gw_error_reply *e)
{
	struct gw_access_entry entry = {
	    .request_id = e->request_id,
	    .client = cc->client_ip,
	    .status = e->status,
	    .error = e->code,
	};

	gw_client_conn_tls_info(cc, &entry.tls_version, &entry.tls_sni);
	gw_access_log_add(cc->worker->log_buf, &entry);
}

/* The methods the gateway proxies: method_known's list, as an Allow value. */
#define GW_ALLOWED_METHODS "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH"

/* Writes the error straight to the socket and closes the connection. */
static void send_refusal(struct gw_client_conn *cc)
{
	char id[33];
	char raw[512];
	struct gw_error_reply e = {
	    .status = cc->reject_status,
	    .code = cc->reject_code,
	    .request_id = id,
	    .close = true,
	};
	size_t len;

	if (e.status == 405) /* CONNECT, TRACE or an unknown method (RFC 9110 15.5.6) */
		e.allow = GW_ALLOWED_METHODS;
	if (e.status == 503) /* the body budget is spent: come back later */
		e.retry_after_s = gw_body_budget_retry_after_s(&cc->worker->config->shedding,
		                                               gw_worker_random(cc->worker));
	gw_request_id_new(id);
	len = gw_reply_error_raw(&e, raw, sizeof(raw));
	log_refusal(cc, &e);
	if (!gw_evhttp_send_now(cc->bev, raw, len))
		gw_log_debug("refusal to %s not sent: %s", cc->client_ip, strerror(errno));
	linger(cc);
	evhttp_connection_free(cc->evcon); /* our close callback frees cc */
}

static void refuse(struct gw_client_conn *cc, int status, const char *code)
{
	struct evbuffer *in = bufferevent_get_input(cc->bev);

	cc->phase = GW_CONN_REJECT;
	cc->reject_status = status;
	cc->reject_code = code;
	/* evhttp must never parse these bytes: they are gone. */
	evbuffer_drain(in, evbuffer_get_length(in));
	/* The callback that noticed may be inside libevent's read path; the
	 * connection is freed from the timer, outside of it. */
	event_active(cc->timer, EV_TIMEOUT, 1);
}

static void refuse_verdict(struct gw_client_conn *cc, enum gw_head_verdict v)
{
	switch (v) {
	case GW_HEAD_HEADERS_TOO_LARGE:
		refuse(cc, 431, "headers_too_large");
		break;
	case GW_HEAD_URI_TOO_LONG:
		refuse(cc, 414, "uri_too_long");
		break;
	case GW_HEAD_VERSION:
		refuse(cc, 505, "version_not_supported");
		break;
	case GW_HEAD_METHOD:
		refuse(cc, 405, "method_not_allowed");
		break;
	case GW_HEAD_BODY_TOO_LARGE:
		refuse(cc, 413, "body_too_large");
		break;
	default:
		refuse(cc, 400, "bad_request");
		break;
	}
}

static bool method_known(const char *m, size_t len)
{
	static const char *const known[] = {"GET",    "HEAD",    "POST", "PUT",
	                                    "DELETE", "OPTIONS", "PATCH"};
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strlen(known[i]) == len && memcmp(known[i], m, len) == 0)
			return true;
	return false;
}

/*
 * A head that arrives whole in one read (the common case) is checked in
 * place and nothing is copied. One that arrives in pieces is moved into the
 * gateway's own copy as it comes, checked from where the last read's check
 * stopped, and held back from evhttp until it is whole and good: evhttp
 * would otherwise search a partial line for its end again on every read
 * (O(n^2) for a long header line trickled in). Then it is put back in front
 * of the input for evhttp to parse at once (release_head).
 */
static void head_copy_reset(struct gw_client_conn *cc)
{
	free(cc->head_buf);
	cc->head_buf = NULL;
	cc->head_len = cc->head_cap = 0;
	gw_head_scan_init(&cc->head_scan);
}

/* Appends n bytes at offset of buf to the copy, up to the head limit + 4
 * (enough to see that the limit is passed). */
static size_t head_copy_add(struct gw_client_conn *cc, struct evbuffer *buf, size_t offset,
                            size_t n)
{
	size_t cap = (size_t)limits_of(cc)->max_header_bytes + 4;
	struct evbuffer_ptr pos;

	if (cc->head_len + n > cap)
		n = cap - cc->head_len;
	if (n == 0)
		return 0;
	if (cc->head_len + n > cc->head_cap) {
		size_t want = cc->head_cap ? cc->head_cap : 1024;
		while (want < cc->head_len + n)
			want *= 2;
		cc->head_cap = want < cap ? want : cap;
		cc->head_buf = gw_realloc(cc->head_buf, cc->head_cap);
	}
	evbuffer_ptr_set(buf, &pos, offset, EVBUFFER_PTR_SET);
	evbuffer_copyout_from(buf, &pos, cc->head_buf + cc->head_len, n);
	cc->head_len += n;
	return n;
}

/*
 * The byte watcher is only needed while a head or a chunked body arrives;
 * switched off otherwise, evhttp's own reads and drains do not call it.
 */
static void watch_input(struct gw_client_conn *cc, bool on)
{
	struct evbuffer *in = bufferevent_get_input(cc->bev);

	if (on)
		evbuffer_cb_set_flags(in, cc->input_cb, EVBUFFER_CB_ENABLED);
	else
		evbuffer_cb_clear_flags(in, cc->input_cb, EVBUFFER_CB_ENABLED);
}

/* Follows a chunked body's framing over n bytes at offset of buf. */
static void body_bytes(struct gw_client_conn *cc, struct evbuffer *buf, size_t offset, size_t n);

static void body_scan(struct gw_client_conn *cc, const char *p, size_t n)
{
	size_t used = 0;

	if (!cc->body_chunked || cc->phase != GW_CONN_BODY || n == 0)
		return;
	switch (gw_chunk_scan_feed(&cc->body_scan, p, n, limits_of(cc)->max_body_bytes, &used)) {
	case GW_CSCAN_MORE:
		break;
	case GW_CSCAN_FINISHED:
		cc->body_chunked = false; /* what follows is the next request */
		watch_input(cc, false);
		break;
	case GW_CSCAN_BAD:
		refuse(cc, 400, "bad_request");
		break;
	case GW_CSCAN_TOO_LARGE:
		refuse(cc, 413, "body_too_large");
		break;
	}
}

static void body_bytes(struct gw_client_conn *cc, struct evbuffer *buf, size_t offset, size_t n)
{
	struct evbuffer_ptr pos;
	struct evbuffer_iovec vec[8];

	/* Walks the buffer's chains without copying. */
	while (n > 0 && cc->body_chunked && cc->phase == GW_CONN_BODY) {
		int nvec;

		if (evbuffer_ptr_set(buf, &pos, offset, EVBUFFER_PTR_SET) < 0)
			return;
		nvec = evbuffer_peek(buf, (ev_ssize_t)n, &pos, vec, 8);
		for (int i = 0; i < nvec && i < 8 && n > 0; i++) {
			size_t take = vec[i].iov_len < n ? vec[i].iov_len : n;
			body_scan(cc, vec[i].iov_base, take);
			offset += take;
			n -= take;
		}
		if (nvec <= 0)
			return;
	}
}

/* Checks a head; p/len are what is known of it; the extra bytes at
 * extra_off of buf arrived too but are not in p. Returns true while more
 * bytes are needed. */
static bool check_head(struct gw_client_conn *cc, const char *p, size_t len, struct evbuffer *buf,
                       size_t extra_off, size_t extra)
{
	const struct gw_limits_conf *lim = limits_of(cc);
	struct gw_request_head head;
	const char *why = NULL;
	enum gw_head_verdict v;

	/* Resumes where the last read's check stopped: a head that arrives a
	 * byte at a time costs one pass, not one per read. */
	v = gw_head_scan_feed(&cc->head_scan, p, len, lim->max_header_bytes, lim->max_body_bytes,
	                      &head, &why);
	if (v == GW_HEAD_INCOMPLETE)
		return true;
	gw_head_scan_init(&cc->head_scan); /* spent: the next head starts afresh */
	if (v != GW_HEAD_OK) {
		gw_log_debug("refused request from %s: %s", cc->client_ip, why ? why : "");
		refuse_verdict(cc, v);
		return false;
	}
	/* The upstream request line has room for a target of
	 * GW_UPSTREAM_TARGET_MAX - 1 bytes (the rewritten target is never
	 * longer than the origin-form one): a longer one is refused here,
	 * before routing, the breaker or a pooled connection are touched. */
	if ((head.absolute_form ? (head.path_len ? head.path_len : 1) : head.target_len) >=
	    GW_UPSTREAM_TARGET_MAX) {
		gw_log_debug("refused request from %s: target over %d bytes", cc->client_ip,
		             GW_UPSTREAM_TARGET_MAX - 1);
		refuse(cc, 414, "uri_too_long");
		return false;
	}
	if (!method_known(head.method, head.method_len)) {
		refuse(cc, 405, "method_not_allowed");
		return false;
	}
	/* evhttp buffers the body whole: it needs room in the process's body
	 * budget before a byte of it is read (gateway/body_budget.h). */
	if (!gw_body_budget_admit(&cc->body_share, &head, lim)) {
		refuse(cc, 503, "shed");
		return false;
	}
	cc->phase = GW_CONN_BODY;
	cc->body_chunked = head.chunked;
	if (!head.chunked)
		watch_input(cc, false); /* evhttp reads exactly Content-Length bytes */
	/* Target rules (router.h), and what evhttp would answer itself about
	 * the body (http/chunked_scan.h): refused here, with the gateway's error. */
	int status = gw_target_is_safe(head.path, head.path_len, head.host, head.host_len)
	                 ? gw_chunk_scan_start(&cc->body_scan, p, &head, lim->max_header_bytes)
	                 : 400;
	if (status) {
		refuse(cc, status, status == 417 ? "expectation_failed" : "bad_request");
		return false;
	}
	body_scan(cc, p + head.head_len, len - head.head_len);
	body_bytes(cc, buf, extra_off, extra);
	/* The body deadline only matters when the body is not all here yet
	 * (most requests: evhttp hands the request over right after this). */
	if (cc->phase == GW_CONN_BODY &&
	    (cc->body_chunked ||
	     (head.has_content_length && head.content_length > len - head.head_len + extra)))
		arm_timer(cc, lim->body_timeout_ms);
	return false;
}

/* Gives evhttp the bytes of a head that arrived in pieces, now that it is
 * whole and good, in front of whatever followed them. */
static void release_head(struct gw_client_conn *cc, struct evbuffer *buf)
{
	bool chunked = cc->body_chunked;

	watch_input(cc, false); /* these bytes were seen already */
	evbuffer_prepend(buf, cc->head_buf, cc->head_len);
	if (chunked)
		watch_input(cc, true);
}

/* New bytes (n at offset) while a head is read. */
static void head_bytes(struct gw_client_conn *cc, struct evbuffer *buf, size_t offset, size_t n)
{
	size_t copied;

	if (cc->head_len == 0 && offset == 0) {
		size_t len = evbuffer_get_length(buf);
		unsigned char lead[4];
		size_t skip = 0;

		/* RFC 9112 2.2: empty lines before a request line are ignored
		 * (evhttp would refuse them, so they go before it looks). */
		evbuffer_copyout(buf, lead, len < 4 ? len : 4);
		while (skip + 1 < len && skip < 4 && lead[skip] == '\r' && lead[skip + 1] == '\n')
			skip += 2;
		if (skip) {
			evbuffer_drain(buf, skip);
			len -= skip;
			if (len == 0)
				return;
		}
		size_t cap = (size_t)limits_of(cc)->max_header_bytes + 4;
		size_t want = len < cap ? len : cap;
		const char *p = (const char *)evbuffer_pullup(buf, (ev_ssize_t)want);

		gw_head_scan_init(&cc->head_scan); /* a new head */
		if (check_head(cc, p, want, buf, want, len - want)) {
			head_copy_add(cc, buf, 0, want);
			evbuffer_drain(buf, want); /* held back (want == len here) */
		}
		return;
	}
	/* What is before offset was copied by an earlier read: all of it is
	 * held back with the new bytes. */
	copied = head_copy_add(cc, buf, offset, n);
	evbuffer_drain(buf, offset + copied);
	if (!check_head(cc, cc->head_buf, cc->head_len, buf, 0, n - copied)) {
		if (cc->phase == GW_CONN_BODY)
			release_head(cc, buf);
		head_copy_reset(cc);
	}
}

static void attach(struct gw_client_conn *cc);

/* Every byte from the client passes here before evhttp parses it. */
static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct gw_client_conn *cc = arg;

	if (info->n_added == 0)
		return;
	if (cc->phase == GW_CONN_ATTACHING)
		attach(cc);
	if (cc->tls_failed) {
		evbuffer_drain(buf, evbuffer_get_length(buf)); /* closed by the timer */
		return;
	}
	switch (cc->phase) {
	case GW_CONN_IDLE:
		cc->phase = GW_CONN_HEAD;
		head_bytes(cc, buf, info->orig_size, info->n_added);
		/* header_timeout runs from the first byte, unless the head was
		 * whole in that first read (the common case: no timer work). */
		if (cc->phase == GW_CONN_HEAD)
			arm_timer(cc, limits_of(cc)->header_timeout_ms);
		break;
	case GW_CONN_HEAD:
		head_bytes(cc, buf, info->orig_size, info->n_added);
		break;
	case GW_CONN_BODY:
		body_bytes(cc, buf, info->orig_size, info->n_added);
		break;
	case GW_CONN_REJECT:
		evbuffer_drain(buf, evbuffer_get_length(buf));
		break;
	default:
		break;
	}
}

/* ---- life cycle ---------------------------------------------------------- */

static void on_closed(struct evhttp_connection *evcon, void *arg)
{
	struct gw_client_conn *cc = arg;
	struct gw_worker *w = cc->worker;

	if (cc->owner)
		cc->owner_gone(cc->owner);
	if (gw_client_conn_table_get(cc->fd) == cc)
		gw_client_conn_table_set(cc->fd, NULL);
	evbuffer_remove_cb(bufferevent_get_input(cc->bev), on_input, cc);
	event_free(cc->timer);
	if (cc->closed_ev)
		event_free(cc->closed_ev);
	gw_evhttp_read_keeper_free(cc->read_keeper);
	head_copy_reset(cc);
	gw_body_budget_release(&cc->body_share);
	TAILQ_REMOVE(&w->conns, cc, link);
	w->nconns--;
	gw_conn_cap_closed(w->conn_cap, w);
	free(cc);
}

static void on_peer_closed(evutil_socket_t fd, short what, void *arg)
{
	struct gw_client_conn *cc = arg;

	if (cc->owner)
		gw_client_conn_abort(cc); /* the upstream work is cancelled */
}

static void attach(struct gw_client_conn *cc)
{
	char *host = NULL;
	ev_uint16_t port = 0;
	int one = 1;

	cc->evcon = gw_evhttp_connection_of(cc->bev);
	evhttp_connection_set_closecb(cc->evcon, on_closed, cc);
	cc->fd = bufferevent_getfd(cc->bev);
	gw_client_conn_table_set(cc->fd, cc);
	setsockopt(cc->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	evhttp_connection_get_peer(cc->evcon, &host, &port);
	snprintf(cc->client_ip, sizeof(cc->client_ip), "%s", host ? host : "");
	cc->closed_ev = event_new(cc->worker->base, cc->fd, EV_CLOSED, on_peer_closed, cc);
	if (!cc->tls_failed)
		cc->read_keeper = gw_evhttp_read_keeper_new(cc->worker->base, cc->bev);
	cc->phase = GW_CONN_IDLE;
	/* A new connection gets header_timeout for its first request. */
	arm_timer(cc, limits_of(cc)->header_timeout_ms);
}

/* Closes a connection whose client reads too slowly, with a reset: the
 * bytes still queued for it are dropped, kernel buffers included. */
static void send_cut(struct gw_client_conn *cc)
{
	gw_log_info("closed the connection from %s: it took under %d bytes of its response in "
	            "send_timeout (%llums)",
	            cc->client_ip, GW_SEND_PROGRESS_BYTES,
	            (unsigned long long)limits_of(cc)->send_timeout_ms);
	gw_evhttp_sock_reset(cc->fd);
	evhttp_connection_free(cc->evcon); /* our close callback frees cc */
}

/* Bytes the kernel still holds for the client: not sent yet, or sent and
 * not acknowledged (SIOCOUTQ). 0 when unknown. */
static uint64_t kernel_queued(evutil_socket_t fd)
{
	int n = 0;

	return ioctl(fd, SIOCOUTQ, &n) == 0 && n > 0 ? (uint64_t)n : 0;
}

/* A slowloris shows in the log as it happens: at most one line a second
 * for the whole process, with how many connections it stands for. */
static void log_too_slow(const struct gw_client_conn *cc)
{
	static struct gw_log_limit limit;
	unsigned more;

	if (gw_log_limit_pass(&limit, gw_clock_now_ms(), 1000, &more))
		gw_log_warn(
		    "closed a connection from %s that did not send its request %s within %s "
		    "(%u more since the last line)",
		    cc->client_ip, cc->phase == GW_CONN_HEAD ? "head" : "body",
		    cc->phase == GW_CONN_HEAD ? "limits.header_timeout" : "limits.body_timeout",
		    more);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct gw_client_conn *cc = arg;

	if (cc->send_expired) {
		send_cut(cc);
		return;
	}
	switch (cc->phase) {
	case GW_CONN_ATTACHING:
		attach(cc);
		if (cc->tls_failed)
			evhttp_connection_free(cc->evcon); /* our close callback frees cc */
		break;
	case GW_CONN_IDLE:
		/* idle too long: close quietly, unless the client has not taken
		 * the last response yet (a FIN would leave the kernel holding
		 * it for the client's pace) */
		if (cc->kernel_watch && kernel_queued(cc->fd) > 0)
			gw_evhttp_sock_reset(cc->fd);
		evhttp_connection_free(cc->evcon);
		break;
	case GW_CONN_HEAD:
	case GW_CONN_BODY:
		log_too_slow(cc);
		cc->reject_status = 408;
		cc->reject_code = "request_timeout";
		cc->phase = GW_CONN_REJECT;
		evbuffer_drain(bufferevent_get_input(cc->bev),
		               evbuffer_get_length(bufferevent_get_input(cc->bev)));
		send_refusal(cc);
		break;
	case GW_CONN_REJECT:
		send_refusal(cc);
		break;
	case GW_CONN_BUSY:
		break;
	}
}

/* The guard of a new connection on bev (evhttp sets its socket after). */
static struct gw_client_conn *conn_new(struct gw_worker *w, struct event_base *base,
                                       struct bufferevent *bev, SSL *ssl)
{
	struct gw_client_conn *cc = gw_calloc(1, sizeof(*cc));

	cc->worker = w;
	cc->fd = -1;
	cc->phase = GW_CONN_ATTACHING;
	cc->bev = bev;
	cc->ssl = ssl;
	cc->timer = evtimer_new(base, on_timer, cc);
	cc->input_cb = evbuffer_add_cb(bufferevent_get_input(cc->bev), on_input, cc);
	TAILQ_INSERT_TAIL(&w->conns, cc, link);
	w->nconns++;
	gw_conn_cap_opened(w->conn_cap, w);
	/* evhttp finishes setting the connection up after this returns; the
	 * timer, activated now, runs before any byte can be read. */
	event_active(cc->timer, EV_TIMEOUT, 1);
	return cc;
}

struct bufferevent *gw_client_conn_bevcb(struct event_base *base, void *arg)
{
	return conn_new(arg, base, bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE), NULL)
	    ->bev;
}

/*
 * A TLS connection: an OpenSSL bufferevent over an SSL object in the
 * accepting state, whose socket evhttp sets right after; the handshake runs
 * in its first reads. Everything above it (the byte watcher, the deadlines,
 * evhttp) sees the decrypted stream. A client that never completes the
 * handshake sends no request byte: the first request's header_timeout
 * closes it. One that speaks plain HTTP fails the handshake and is closed by
 * evhttp's error callback.
 */
struct bufferevent *gw_client_conn_bevcb_tls(struct event_base *base, void *arg)
{
	struct gw_tls_listener *t = arg;
	SSL *ssl = gw_tls_server_ssl_new(t->conf);
	struct bufferevent *bev;

	if (!ssl) {
		/* evhttp needs a bufferevent: a plain one, whose connection
		 * the guard closes as soon as it is set up (never served in
		 * clear text on a TLS port). */
		struct gw_client_conn *cc = conn_new(
		    t->worker, base, bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE), NULL);

		gw_log_error("TLS: cannot make a connection object (out of memory?)");
		cc->tls_failed = true;
		return cc->bev;
	}
	/* Open at once: the handshake runs in the first reads (tls_server.h). */
	bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_OPEN,
	                                     BEV_OPT_CLOSE_ON_FREE);
	/* A client may close without close_notify (most do): EOF, not an error. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return conn_new(t->worker, base, bev, ssl)->bev;
}

struct gw_client_conn *gw_client_conn_of(struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	evutil_socket_t fd;
	struct gw_client_conn *cc;

	if (!evcon)
		return NULL;
	fd = bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
	cc = gw_client_conn_table_get(fd);
	return cc && cc->evcon == evcon ? cc : NULL;
}

/* ---- the request's view ----------------------------------------------------- */

static void on_reply_complete(struct evhttp_request *req, void *arg)
{
	struct gw_client_conn *cc = arg;
	struct evbuffer *in = bufferevent_get_input(cc->bev);

	cc->phase = GW_CONN_IDLE;
	if (!cc->kernel_watch) /* else the send window goes on (check_send) */
		cc->send_since_ms = 0;
	cc->send_expired = false;
	arm_timer(cc, limits_of(cc)->idle_timeout_ms);
	watch_input(cc, true);
	gw_evhttp_read_keeper_rearm(cc->read_keeper);
	if (evbuffer_get_length(in) > 0) {
		/* A pipelined request is already buffered: check it before
		 * evhttp's deferred read parses it. */
		cc->phase = GW_CONN_HEAD;
		head_bytes(cc, in, 0, evbuffer_get_length(in));
		if (cc->phase == GW_CONN_HEAD)
			arm_timer(cc, limits_of(cc)->header_timeout_ms);
	}
}

void gw_client_conn_request_begins(struct gw_client_conn *cc, struct evhttp_request *req,
                                   void (*owner_gone)(void *owner), void *owner)
{
	cc->phase = GW_CONN_BUSY;
	cc->requests++;
	cc->owner = owner;
	cc->owner_gone = owner_gone;
	/* The connection's timer may stay armed: it does nothing while BUSY,
	 * and the reply's completion re-arms it for idle_timeout. */
	evhttp_request_set_on_complete_cb(req, on_reply_complete, cc);
}

/*
 * Watching for the client's close costs two epoll_ctl calls per request, and
 * most requests are answered within milliseconds. So the watch only starts
 * once a request has waited GW_CLOSE_WATCH_AFTER_MS (gw_client_conn_tick):
 * a client that leaves is still noticed promptly, and fast requests pay
 * nothing.
 */
void gw_client_conn_watch_close(struct gw_client_conn *cc, bool on)
{
	if (!cc || !cc->closed_ev)
		return;
	cc->watch_close = on;
	cc->watch_since_ms = on ? gw_clock_now_ms() : 0;
	if (!on && cc->close_watched) {
		event_del(cc->closed_ev);
		cc->close_watched = false;
	}
}

/* Bytes of the connection's output the client's TCP has acknowledged. */
static bool bytes_acked(evutil_socket_t fd, uint64_t *acked)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 ||
	    len < offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof(ti.tcpi_bytes_acked))
		return false;
	*acked = ti.tcpi_bytes_acked;
	return true;
}

/*
 * send_timeout. While a response has bytes waiting for the client, in the
 * connection's output (the socket's buffer is full: the client is the one
 * behind) or in the kernel's socket buffer once the gateway handed it all
 * over (a response of up to a few MiB on loopback), the client must take
 * GW_SEND_PROGRESS_BYTES of them (or all) within each send_timeout,
 * measured by what its TCP acknowledged; a queue that empties ends the
 * window. Otherwise it is a slow reader (slowhttptest -X reads a few bytes
 * every few seconds and would hold its slot and buffers for ever) and is
 * cut with a reset. Checked on the worker's tick: a syscall or two per
 * window. The kernel's queue is only watched after a response of
 * GW_SEND_PROGRESS_BYTES or more (kernel_watch): smaller ones cost nothing.
 */
static void check_send(struct gw_client_conn *cc, uint64_t now_ms)
{
	uint64_t acked;
	bool queued_here;

	if (cc->send_expired || !cc->bev)
		return;
	queued_here = evbuffer_get_length(bufferevent_get_output(cc->bev)) > 0;
	if (!queued_here && !cc->kernel_watch) {
		cc->send_since_ms = 0;
		return;
	}
	if (cc->send_since_ms != 0 && now_ms - cc->send_since_ms < limits_of(cc)->send_timeout_ms)
		return;
	if (!queued_here && kernel_queued(cc->fd) == 0) {
		cc->kernel_watch = false; /* all delivered */
		cc->send_since_ms = 0;
		return;
	}
	if (!bytes_acked(cc->fd, &acked))
		return; /* unknown: never cut on a guess */
	if (cc->send_since_ms == 0 || acked - cc->send_acked >= GW_SEND_PROGRESS_BYTES) {
		cc->send_since_ms = now_ms; /* a new window */
		cc->send_acked = acked;
		return;
	}
	/* Closed from the timer: the tick walks the worker's list of
	 * connections, which closing now would change under it. */
	cc->send_expired = true;
	event_active(cc->timer, EV_TIMEOUT, 1);
}

void gw_client_conn_tick(struct gw_client_conn *cc, uint64_t now_ms)
{
	if (cc->watch_close && !cc->close_watched &&
	    now_ms - cc->watch_since_ms >= GW_CLOSE_WATCH_AFTER_MS) {
		event_add(cc->closed_ev, NULL);
		cc->close_watched = true;
	}
	if (cc->phase == GW_CONN_BUSY || cc->kernel_watch)
		check_send(cc, now_ms);
}

void gw_client_conn_request_ends(struct gw_client_conn *cc, uint64_t reply_bytes)
{
	if (reply_bytes >= GW_SEND_PROGRESS_BYTES)
		cc->kernel_watch = true;
	cc->owner = NULL;
	cc->owner_gone = NULL;
	gw_client_conn_watch_close(cc, false);
}

void gw_client_conn_abort(struct gw_client_conn *cc)
{
	evhttp_connection_free(cc->evcon);
}

void gw_client_conn_close_if_idle(struct gw_client_conn *cc)
{
	if (cc->phase == GW_CONN_IDLE && cc->evcon)
		evhttp_connection_free(cc->evcon);
}
