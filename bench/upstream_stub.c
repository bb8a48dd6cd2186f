/*
 * upstream_stub: an HTTP/1.1 origin for benchmarks, built never to be the
 * bottleneck of what it measures.
 *
 *   upstream_stub [--port P] [--threads N] [--delay-ms D] [--slow-ms S]
 *                 [--max-concurrent N --service-ms S]
 *
 * Every response is built once at start-up; a request costs one read(), a
 * scan for the end of its head, a reference to a static buffer and one
 * writev(). There is no evhttp and no bufferevent: the read event stays in
 * epoll for the connection's whole life and a write event is added only when
 * the socket buffer is full, so the steady state does no epoll_ctl at all.
 * With --threads N, N event loops each own a listener bound to the same port
 * with SO_REUSEPORT, and the kernel spreads connections over them.
 *
 * Paths: /small (12 bytes), /16k (16384 bytes), /1m (1 MiB), /healthz ("ok"),
 * anything else as /small. Request bodies with Content-Length are read and
 * discarded; chunked request bodies get 501 and a close.
 *
 * Fault injection and counters, for resilience tests (bench/resilience.sh):
 * SIGUSR1 toggles "slow" (every request, /healthz included, is answered
 * --slow-ms later), SIGUSR2 toggles "503" (every answer but /healthz becomes
 * 503 Service Unavailable), SIGHUP prints one `stats ...` line with the
 * requests received so far, SIGTERM/SIGINT print it and exit 0.
 * --timeline FILE also counts requests per --timeline-ms bucket of the time
 * the kernel received them (SO_TIMESTAMPNS, CLOCK_REALTIME), so that a stub
 * stopped with SIGSTOP still dates what arrived while it was stopped; the
 * file is rewritten on SIGHUP, SIGTERM and SIGINT.
 *
 * A fixed-capacity upstream, for overload tests (bench/overload):
 * --max-concurrent N --service-ms S serves at most N requests at once, each
 * answered S ms after its service starts; complete requests beyond N wait in
 * one FIFO (across connections) until a slot frees, so the capacity is
 * N / S requests per ms. The stats line then also reports the time-averaged
 * number of busy slots (and that / N, the utilisation) and of waiting
 * requests since the previous stats line.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/listener.h>
#include <event2/util.h>

/* Request heads larger than this get 431 and a close. */
#define IN_MAX 16384
/* Bodies up to this size travel in the same buffer as their head. */
#define INLINE_BODY_MAX 1024
#define RESP_HEAD_MAX   192
#define MAX_THREADS     64
#define LISTEN_BACKLOG  4096
/* Bodies from this size on are sent with sendfile() (unless --no-sendfile). */
#define SENDFILE_MIN (64 * 1024)
#define N_ROUTES_MAX 8

enum variant {
	V_KEEP,   /* HTTP/1.1, persistent */
	V_CLOSE,  /* Connection: close */
	V_KEEP10, /* HTTP/1.0 client that asked for keep-alive */
	V_COUNT,
};

struct route {
	const char *path;
	const char *status; /* "200 OK" when NULL */
	const char *body;
	size_t body_len;
	char resp[V_COUNT][RESP_HEAD_MAX + INLINE_BODY_MAX];
	size_t head_len[V_COUNT];
	size_t resp_len[V_COUNT]; /* head, plus the body when it is inline */
	int memfd;                /* a copy of a large body for sendfile(), or -1 */
};

static char body_16k[16384];
static char body_1m[1 << 20];

static struct route routes[] = {
    {.path = "/small", .body = "hello world\n", .body_len = 12},
    {.path = "/16k", .body = body_16k, .body_len = sizeof(body_16k)},
    {.path = "/1m", .body = body_1m, .body_len = sizeof(body_1m)},
    {.path = "/healthz", .body = "ok\n", .body_len = 3},
};
#define HEALTHZ_ROUTE (&routes[3])

/* What every path but /healthz answers while the 503 fault is on. */
static struct route route_503 = {
    .path = "", .status = "503 Service Unavailable", .body = "unavailable\n", .body_len = 12};

#define N_ROUTES      (sizeof(routes) / sizeof(routes[0]))
#define DEFAULT_ROUTE (&routes[0])
_Static_assert(N_ROUTES <= N_ROUTES_MAX, "raise N_ROUTES_MAX");

static const char resp_400[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                               "Connection: close\r\n\r\n";
static const char resp_431[] = "HTTP/1.1 431 Request Header Fields Too Large\r\n"
                               "Content-Length: 0\r\nConnection: close\r\n\r\n";
static const char resp_501[] = "HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\n"
                               "Connection: close\r\n\r\n";

struct worker {
	int id;
	struct event_base *base;
	struct evconnlistener *listener;
	const struct timeval *delay; /* common timeout, NULL without --delay-ms */
	const struct timeval *slow;  /* common timeout of --slow-ms, for the slow fault */
	/* requests received (complete), written by this thread only */
	_Atomic uint64_t n_requests, n_healthz, n_slowed, n_failed;
	/* per thread, so that their reference counts need no lock */
	struct evbuffer_file_segment *seg[N_ROUTES_MAX];
	pthread_t thread;
	/* --max-concurrent / --service-ms (one thread only, so plain fields) */
	uint64_t service_ns;        /* --service-ms */
	TAILQ_HEAD(, sconn) waitq;  /* complete requests waiting for a slot, FIFO */
	unsigned busy;              /* requests being served */
	unsigned waiting;           /* requests in waitq */
	uint64_t last_ns;           /* when busy/waiting last changed */
	uint64_t busy_ns;           /* integral of busy over time (slot-ns) */
	uint64_t wait_ns;           /* integral of waiting over time */
	uint64_t served;            /* services completed (answered or abandoned) */
	uint64_t dropped_waiting;   /* left the FIFO because their connection closed */
	uint64_t abandoned_serving; /* connection closed during service; slot held anyway */
	unsigned max_waiting;       /* since the previous stats line */
	uint64_t mark_ns, mark_busy_ns, mark_wait_ns; /* at the previous stats line */
	/* --timeline: per bucket, written by this thread only */
	struct tl_bucket *tl;
};

/* --timeline: what arrived in one bucket of time. */
struct tl_bucket {
	_Atomic uint32_t requests, healthz, failed;
};

/* What the parser found in one request head. */
struct req {
	const struct route *route;
	enum variant var;
	bool head_only;
	bool close;
	uint64_t body_len;
};

struct sconn {
	struct worker *w;
	evutil_socket_t fd;
	struct event rd;
	struct event wr;
	struct event delay_ev;
	struct evbuffer *out;
	struct req req; /* the request being read or answered */
	bool in_body;   /* req's head is parsed, its body is being read */
	bool delaying;  /* req waits for the --delay-ms timer */
	bool closing;   /* close once out is written */
	bool wr_armed;
	bool rd_paused;
	bool waiting;       /* in w->waitq */
	bool serving;       /* holds a slot; delay_ev ends the service */
	bool zombie;        /* closed during its service: freed when the service ends */
	uint64_t rx_ns;     /* --timeline: CLOCK_REALTIME of the last bytes received */
	uint64_t arrive_ns; /* when the request was complete */
	uint64_t vend_ns;   /* when its service ends (see start_service) */
	TAILQ_ENTRY(sconn) wait_link;
	size_t in_off; /* start of unparsed bytes in in[] */
	size_t in_len; /* end of bytes in in[] */
	size_t scan;   /* where the search for CRLFCRLF resumes */
	char in[IN_MAX];
};

static int opt_port;
static int opt_threads = 1;
static long opt_delay_ms;
static bool opt_no_sendfile;
static long opt_slow_ms = 2000;
static long opt_max_concurrent;    /* 0: no cap */
static double opt_service_ms = -1; /* < 0: no capacity model */
static struct worker workers[MAX_THREADS];
static const char *opt_timeline;      /* --timeline FILE */
static long opt_timeline_ms = 10;     /* --timeline-ms */
static long opt_timeline_max_s = 900; /* --timeline-max-s */
static uint64_t tl_base_ms;           /* realtime ms of bucket 0 */
static size_t tl_n;                   /* buckets */
static _Atomic uint64_t tl_overflow;  /* requests outside the buckets */

/* The faults, toggled by signals (main thread), read by every worker. */
static atomic_bool fault_slow, fault_503;

static void build_route(struct route *r)
{
	static const char *const conn_hdr[V_COUNT] = {"", "Connection: close\r\n",
	                                              "Connection: keep-alive\r\n"};
	static const char *const version[V_COUNT] = {"HTTP/1.1", "HTTP/1.1", "HTTP/1.0"};
	int v;

	r->memfd = -1;
	for (v = 0; v < V_COUNT; v++) {
		int n = snprintf(r->resp[v], RESP_HEAD_MAX,
		                 "%s %s\r\nContent-Type: text/plain\r\n"
		                 "Content-Length: %zu\r\n%s\r\n",
		                 version[v], r->status ? r->status : "200 OK", r->body_len,
		                 conn_hdr[v]);

		r->head_len[v] = (size_t)n;
		r->resp_len[v] = (size_t)n;
		if (r->body_len <= INLINE_BODY_MAX) {
			memcpy(r->resp[v] + n, r->body, r->body_len);
			r->resp_len[v] += r->body_len;
		}
	}
}

static void build_responses(void)
{
	size_t i;

	for (i = 0; i < sizeof(body_16k); i++)
		body_16k[i] = (char)('a' + i % 26);
	for (i = 0; i < sizeof(body_1m); i++)
		body_1m[i] = (char)('a' + i % 26);
	for (i = 0; i < N_ROUTES; i++)
		build_route(&routes[i]);
	build_route(&route_503);
}

/*
 * Large bodies: writev() from user memory copies every byte into the socket
 * (measured on /1m: 240-290 us of CPU per response, against nginx's 65-120 us
 * with sendfile from the page cache). A memfd holding the body lets the
 * kernel send its pages by reference, as nginx does.
 */
static void make_memfds(void)
{
	size_t i;

	for (i = 0; i < N_ROUTES; i++) {
		struct route *r = &routes[i];
		int fd;

		if (opt_no_sendfile || r->body_len < SENDFILE_MIN)
			continue;
		fd = memfd_create(r->path, MFD_CLOEXEC);
		if (fd < 0)
			continue;
		if (write(fd, r->body, r->body_len) != (ssize_t)r->body_len) {
			close(fd);
			continue;
		}
		r->memfd = fd;
	}
}

static void make_segments(struct worker *w)
{
	size_t i;

	for (i = 0; i < N_ROUTES; i++) {
		if (routes[i].memfd >= 0)
			w->seg[i] = evbuffer_file_segment_new(routes[i].memfd, 0,
			                                      (ev_off_t)routes[i].body_len,
			                                      EVBUF_FS_DISABLE_LOCKING);
	}
}

static const struct route *find_route(const char *path, size_t len)
{
	const char *q = memchr(path, '?', len);
	size_t i;

	if (q)
		len = (size_t)(q - path);
	for (i = 0; i < N_ROUTES; i++) {
		if (strlen(routes[i].path) == len && memcmp(routes[i].path, path, len) == 0)
			return &routes[i];
	}
	return DEFAULT_ROUTE;
}

static bool name_is(const char *name, size_t len, const char *want)
{
	return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

static bool has_token(const char *v, size_t len, const char *token)
{
	size_t tl = strlen(token);
	size_t i;

	for (i = 0; i + tl <= len; i++) {
		if (strncasecmp(v + i, token, tl) == 0)
			return true;
	}
	return false;
}

static int parse_content_length(const char *v, size_t len, uint64_t *out)
{
	uint64_t n = 0;
	size_t i;

	if (len == 0 || len > 18)
		return -1;
	for (i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		n = n * 10 + (uint64_t)(v[i] - '0');
	}
	*out = n;
	return 0;
}

/*
 * Parse the request line. Only what picks the response matters: the method
 * (HEAD gets no body), the path and the version (1.0 defaults to close).
 */
static int parse_request_line(const char *p, const char *eol, struct req *r, bool *v10)
{
	const char *sp1 = memchr(p, ' ', (size_t)(eol - p));
	const char *sp2;

	if (!sp1 || sp1 == p)
		return -1;
	sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
	if (!sp2 || sp2 == sp1 + 1 || eol - sp2 - 1 != 8 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0)
		return -1;
	r->head_only = (sp1 - p == 4 && memcmp(p, "HEAD", 4) == 0);
	r->route = find_route(sp1 + 1, (size_t)(sp2 - sp1 - 1));
	*v10 = sp2[8] == '0';
	return 0;
}

/*
 * Parse one request head, [p, end) ending with CRLFCRLF. Returns 0, or the
 * error response to send before closing.
 */
static const char *parse_head(const char *p, const char *end, struct req *r)
{
	const char *eol = memchr(p, '\r', (size_t)(end - p));
	bool v10 = false, ka = false, cl_seen = false;

	memset(r, 0, sizeof(*r));
	if (!eol || eol[1] != '\n' || parse_request_line(p, eol, r, &v10) < 0)
		return resp_400;
	for (p = eol + 2; p < end - 2; p = eol + 2) {
		const char *colon, *v, *ve;

		eol = memchr(p, '\r', (size_t)(end - p));
		colon = memchr(p, ':', (size_t)(eol - p));
		if (!colon || eol[1] != '\n')
			return resp_400;
		for (v = colon + 1; v < eol && (*v == ' ' || *v == '\t'); v++)
			;
		for (ve = eol; ve > v && (ve[-1] == ' ' || ve[-1] == '\t'); ve--)
			;
		if (name_is(p, (size_t)(colon - p), "content-length")) {
			uint64_t n;

			if (parse_content_length(v, (size_t)(ve - v), &n) < 0 ||
			    (cl_seen && n != r->body_len))
				return resp_400;
			r->body_len = n;
			cl_seen = true;
		} else if (name_is(p, (size_t)(colon - p), "transfer-encoding")) {
			return resp_501;
		} else if (name_is(p, (size_t)(colon - p), "connection")) {
			r->close |= has_token(v, (size_t)(ve - v), "close");
			ka |= has_token(v, (size_t)(ve - v), "keep-alive");
		}
	}
	if (v10 && !ka)
		r->close = true;
	r->var = r->close ? V_CLOSE : v10 ? V_KEEP10 : V_KEEP;
	return NULL;
}

static bool capacity_model(void)
{
	return opt_service_ms >= 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Integrate busy and waiting up to now; call before either changes. */
static void account(struct worker *w)
{
	uint64_t now = now_ns();

	w->busy_ns += (uint64_t)w->busy * (now - w->last_ns);
	w->wait_ns += (uint64_t)w->waiting * (now - w->last_ns);
	w->last_ns = now;
}

/*
 * Start serving c as of vstart (<= now). A slot's time is virtual: when a
 * service ends, the next waiting request starts at the moment the previous
 * one was due to end (or at its own arrival, if later), not when the timer
 * actually fired, so timer lateness (0.1-0.3 ms per wake-up on a busy
 * machine) delays answers but never lowers the capacity below N / S.
 */
static void start_service(struct sconn *c, uint64_t vstart)
{
	struct worker *w = c->w;
	uint64_t now = now_ns(), left;
	struct timeval tv;

	account(w);
	w->busy++;
	c->serving = true;
	c->vend_ns = vstart + w->service_ns;
	left = c->vend_ns > now ? c->vend_ns - now : 0;
	tv.tv_sec = (time_t)(left / 1000000000u);
	tv.tv_usec = (suseconds_t)(left % 1000000000u / 1000u);
	event_add(&c->delay_ev, &tv);
}

/* A slot became free at (virtual) time free_at: the oldest waiting request takes it. */
static void start_next(struct worker *w, uint64_t free_at)
{
	struct sconn *c;

	if (opt_max_concurrent > 0 && w->busy >= (unsigned)opt_max_concurrent)
		return;
	c = TAILQ_FIRST(&w->waitq);
	if (!c)
		return;
	account(w);
	TAILQ_REMOVE(&w->waitq, c, wait_link);
	w->waiting--;
	c->waiting = false;
	start_service(c, c->arrive_ns > free_at ? c->arrive_ns : free_at);
}

/* The service of c is over (answered or not): free its slot. */
static void end_service(struct sconn *c)
{
	struct worker *w = c->w;

	account(w);
	w->busy--;
	w->served++;
	c->serving = false;
}

static void conn_free(struct sconn *c)
{
	event_del(&c->rd);
	event_del(&c->wr);
	if (c->waiting) {
		account(c->w);
		TAILQ_REMOVE(&c->w->waitq, c, wait_link);
		c->w->waiting--;
		c->w->dropped_waiting++;
		c->waiting = false;
	}
	if (c->serving) {
		/* The work goes on (a server does not notice a client that left
		 * until it writes): the slot stays busy until the service ends. */
		if (!c->zombie) {
			c->zombie = true;
			c->w->abandoned_serving++;
			evutil_closesocket(c->fd);
			c->fd = -1;
		}
		return;
	}
	event_del(&c->delay_ev);
	evbuffer_free(c->out);
	if (c->fd >= 0)
		evutil_closesocket(c->fd);
	free(c);
}

/* A counter written by its own thread only: no locked instruction. */
static void bump(_Atomic uint64_t *n)
{
	atomic_store_explicit(n, atomic_load_explicit(n, memory_order_relaxed) + 1,
	                      memory_order_relaxed);
}

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* --timeline: the bucket of c's request (dated by its last bytes' arrival), or NULL. */
static struct tl_bucket *tl_bucket(struct sconn *c)
{
	uint64_t ms, idx;

	if (!c->w->tl)
		return NULL;
	ms = (c->rx_ns ? c->rx_ns : realtime_ns()) / 1000000u;
	idx = ms < tl_base_ms ? 0 : (ms - tl_base_ms) / (uint64_t)opt_timeline_ms;
	if (idx >= tl_n) {
		atomic_fetch_add_explicit(&tl_overflow, 1, memory_order_relaxed);
		return NULL;
	}
	return &c->w->tl[idx];
}

static void bump32(_Atomic uint32_t *n)
{
	atomic_store_explicit(n, atomic_load_explicit(n, memory_order_relaxed) + 1,
	                      memory_order_relaxed);
}

static void queue_static(struct sconn *c, const char *buf, size_t len)
{
	evbuffer_add_reference(c->out, buf, len, NULL, NULL);
}

/* Append the response for c->req to the output; no byte is copied. */
static void queue_response(struct sconn *c)
{
	const struct route *rt = c->req.route;
	struct evbuffer_file_segment *seg;
	enum variant v = c->req.var;

	if (rt != HEALTHZ_ROUTE && atomic_load_explicit(&fault_503, memory_order_relaxed)) {
		struct tl_bucket *b = tl_bucket(c);

		rt = &route_503;
		bump(&c->w->n_failed);
		if (b)
			bump32(&b->failed);
	}
	seg = rt == &route_503 ? NULL : c->w->seg[rt - routes];

	if (c->req.head_only) {
		queue_static(c, rt->resp[v], rt->head_len[v]);
	} else {
		queue_static(c, rt->resp[v], rt->resp_len[v]);
		if (seg)
			evbuffer_add_file_segment(c->out, seg, 0, (ev_off_t)rt->body_len);
		else if (rt->body_len > INLINE_BODY_MAX)
			queue_static(c, rt->body, rt->body_len);
	}
	if (c->req.close)
		c->closing = true;
}

static void queue_error(struct sconn *c, const char *resp)
{
	queue_static(c, resp, strlen(resp));
	c->closing = true;
}

/* The whole request is in: answer now or after the delay. */
static void request_done(struct sconn *c)
{
	struct tl_bucket *b = tl_bucket(c);

	c->in_body = false;
	bump(c->req.route == HEALTHZ_ROUTE ? &c->w->n_healthz : &c->w->n_requests);
	if (b)
		bump32(c->req.route == HEALTHZ_ROUTE ? &b->healthz : &b->requests);
	if (atomic_load_explicit(&fault_slow, memory_order_relaxed)) {
		bump(&c->w->n_slowed);
		c->delaying = true;
		event_add(&c->delay_ev, c->w->slow);
		return;
	}
	if (c->w->delay) {
		c->delaying = true;
		event_add(&c->delay_ev, c->w->delay);
		return;
	}
	if (capacity_model()) {
		struct worker *w = c->w;

		c->delaying = true;
		c->arrive_ns = now_ns();
		if (opt_max_concurrent == 0 || w->busy < (unsigned)opt_max_concurrent) {
			start_service(c, c->arrive_ns);
			return;
		}
		account(w);
		TAILQ_INSERT_TAIL(&w->waitq, c, wait_link);
		c->waiting = true;
		w->waiting++;
		if (w->waiting > w->max_waiting)
			w->max_waiting = w->waiting;
		return;
	}
	queue_response(c);
}

static void consume_body(struct sconn *c)
{
	size_t avail = c->in_len - c->in_off;
	size_t take = avail < c->req.body_len ? avail : (size_t)c->req.body_len;

	c->in_off += take;
	c->scan = c->in_off; /* never look for the next head inside a body */
	c->req.body_len -= take;
	if (c->req.body_len == 0)
		request_done(c);
}

/*
 * Parse every complete request in the input buffer. The search for the end
 * of a head resumes where the previous one stopped (less three bytes, as the
 * CRLFCRLF may straddle two reads), so a head that trickles in byte by byte
 * is not rescanned from its start each time.
 */
static void process_input(struct sconn *c)
{
	while (!c->delaying && !c->closing) {
		const char *start, *end;
		const char *err;

		if (c->in_body) {
			consume_body(c);
			if (c->in_body)
				break;
			continue;
		}
		start = c->in + c->scan;
		end = memmem(start, c->in_len - c->scan, "\r\n\r\n", 4);
		if (!end) {
			c->scan = c->in_len - c->in_off >= 3 ? c->in_len - 3 : c->in_off;
			break;
		}
		end += 4;
		err = parse_head(c->in + c->in_off, end, &c->req);
		c->in_off = c->scan = (size_t)(end - c->in);
		if (err) {
			queue_error(c, err);
			break;
		}
		c->in_body = true;
	}
	if (c->in_off == c->in_len) {
		c->in_off = c->in_len = c->scan = 0;
	} else if (c->in_off > 0 && c->in_len == IN_MAX) {
		memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
		c->in_len -= c->in_off;
		c->scan -= c->in_off;
		c->in_off = 0;
	}
	if (c->in_len == IN_MAX && !c->in_body && !c->delaying && !c->closing)
		queue_error(c, resp_431);
}

static void set_reading(struct sconn *c, bool on)
{
	if (on && c->rd_paused) {
		event_add(&c->rd, NULL);
		c->rd_paused = false;
	} else if (!on && !c->rd_paused) {
		event_del(&c->rd);
		c->rd_paused = true;
	}
}

/*
 * Write what is queued. Returns -1 when the connection was freed. The write
 * event is armed only while the kernel buffer is full.
 */
static int flush_output(struct sconn *c)
{
	while (evbuffer_get_length(c->out) > 0) {
		int n = evbuffer_write(c->out, c->fd);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			break;
		if (n <= 0) {
			conn_free(c);
			return -1;
		}
	}
	if (evbuffer_get_length(c->out) > 0) {
		if (!c->wr_armed) {
			event_add(&c->wr, NULL);
			c->wr_armed = true;
		}
		return 0;
	}
	if (c->wr_armed) {
		event_del(&c->wr);
		c->wr_armed = false;
	}
	if (c->closing) {
		shutdown(c->fd, SHUT_WR);
		conn_free(c);
		return -1;
	}
	/* A full input buffer (a request waiting on its delay) stops reading. */
	set_reading(c, c->in_len < IN_MAX);
	return 0;
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	struct sconn *c = arg;
	ssize_t n;

	if (c->in_len == IN_MAX) {
		set_reading(c, false);
		return;
	}
	if (c->w->tl) {
		/* the kernel's receive time of the last bytes read (SO_TIMESTAMPNS) */
		struct iovec iov = {.iov_base = c->in + c->in_len, .iov_len = IN_MAX - c->in_len};
		union {
			char buf[CMSG_SPACE(sizeof(struct timespec))];
			struct cmsghdr align;
		} cm;
		struct msghdr mh = {.msg_iov = &iov,
		                    .msg_iovlen = 1,
		                    .msg_control = cm.buf,
		                    .msg_controllen = sizeof(cm.buf)};
		struct cmsghdr *h;

		n = recvmsg(fd, &mh, 0);
		if (n > 0)
			c->rx_ns = 0; /* realtime_ns() at the count, unless the kernel dated it */
		for (h = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL; h; h = CMSG_NXTHDR(&mh, h)) {
			if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_TIMESTAMPNS) {
				struct timespec ts;

				memcpy(&ts, CMSG_DATA(h), sizeof(ts));
				c->rx_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
			}
		}
	} else {
		n = recv(fd, c->in + c->in_len, IN_MAX - c->in_len, 0);
	}
	if (n <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		conn_free(c);
		return;
	}
	c->in_len += (size_t)n;
	if (c->closing)
		return;
	process_input(c);
	flush_output(c);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	flush_output(arg);
}

static void on_delay(evutil_socket_t fd, short what, void *arg)
{
	struct sconn *c = arg;
	struct worker *w = c->w;

	uint64_t vend = c->vend_ns;
	bool served = c->serving;

	if (served) {
		end_service(c);
		if (c->zombie) {
			conn_free(c);
			start_next(w, vend);
			return;
		}
	}
	c->delaying = false;
	queue_response(c);
	/* the next waiting request starts before this answer is written */
	if (served)
		start_next(w, vend);
	process_input(c);
	flush_output(c);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
	struct worker *w = arg;
	struct sconn *c = malloc(sizeof(*c));
	int one = 1;

	if (!c) {
		evutil_closesocket(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	memset(c, 0, offsetof(struct sconn, in));
	c->w = w;
	c->fd = fd;
	c->out = evbuffer_new();
	/* file segments turn into sendfile() only in a buffer that drains to a socket */
	evbuffer_set_flags(c->out, EVBUFFER_FLAG_DRAINS_TO_FD);
	event_assign(&c->rd, w->base, fd, EV_READ | EV_PERSIST, on_read, c);
	event_assign(&c->wr, w->base, fd, EV_WRITE | EV_PERSIST, on_write, c);
	evtimer_assign(&c->delay_ev, w->base, on_delay, c);
	event_add(&c->rd, NULL);
}

static struct event_base *new_base(void)
{
	struct event_config *cfg = event_config_new();
	int flags = EVENT_BASE_FLAG_NOLOCK | EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST;
	struct event_base *base;

	/* epoll_wait() rounds timeouts up to whole ms; a timerfd keeps --delay-ms exact. */
	if (opt_delay_ms > 0 || opt_service_ms > 0)
		flags |= EVENT_BASE_FLAG_PRECISE_TIMER;
	/* EVENT_BASE_FLAG_NOLOCK: signals are handled by worker 0's loop only,
	 * and the fault flags are atomics. */
	event_config_set_flag(cfg, flags);
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return base;
}

/* Bind worker w to port (0: any); returns the port bound, or -1. */
static int worker_listen(struct worker *w, int port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT |
	                 LEV_OPT_CLOSE_ON_EXEC;
	socklen_t len = sizeof(sin);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	w->listener = evconnlistener_new_bind(w->base, on_accept, w, flags, LISTEN_BACKLOG,
	                                      (struct sockaddr *)&sin, sizeof(sin));
	if (!w->listener)
		return -1;
	if (opt_timeline) {
		int one = 1;

		/* accepted sockets inherit it */
		if (setsockopt(evconnlistener_get_fd(w->listener), SOL_SOCKET, SO_TIMESTAMPNS, &one,
		               sizeof(one)) < 0)
			return -1;
	}
	if (getsockname(evconnlistener_get_fd(w->listener), (struct sockaddr *)&sin, &len) < 0)
		return -1;
	return ntohs(sin.sin_port);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	event_base_dispatch(w->base);
	return NULL;
}

static int setup_worker(struct worker *w, int id, int port)
{
	w->id = id;
	w->base = new_base();
	if (!w->base)
		return -1;
	if (opt_delay_ms > 0) {
		struct timeval tv = {.tv_sec = opt_delay_ms / 1000,
		                     .tv_usec = (opt_delay_ms % 1000) * 1000};

		/* Every delay has the same length: a common timeout queue, O(1). */
		w->delay = event_base_init_common_timeout(w->base, &tv);
	}
	{
		struct timeval tv = {.tv_sec = opt_slow_ms / 1000,
		                     .tv_usec = (opt_slow_ms % 1000) * 1000};

		w->slow = event_base_init_common_timeout(w->base, &tv);
	}
	TAILQ_INIT(&w->waitq);
	if (capacity_model()) {
		w->service_ns = (uint64_t)(opt_service_ms * 1e6 + 0.5);
		w->last_ns = w->mark_ns = now_ns();
	}
	make_segments(w);
	if (opt_timeline) {
		w->tl = calloc(tl_n, sizeof(*w->tl));
		if (!w->tl)
			return -1;
	}
	return worker_listen(w, port);
}

static void usage(void)
{
	fprintf(
	    stderr,
	    "usage: upstream_stub [--port P] [--threads N] [--delay-ms D] [--slow-ms S]\n"
	    "                     [--no-sendfile] [--max-concurrent N --service-ms S]\n"
	    "                     [--timeline FILE [--timeline-ms W] [--timeline-max-s S]]\n"
	    "  --port P       listen on 127.0.0.1:P (0, the default: any free port)\n"
	    "  --threads N    N event loops sharing the port with SO_REUSEPORT (1)\n"
	    "  --delay-ms D   answer every request D ms after it is complete (0)\n"
	    "  --slow-ms S    the delay of the slow fault (SIGUSR1 toggles it) (2000)\n"
	    "  --no-sendfile  send large bodies with writev() from memory too\n"
	    "  --max-concurrent N  serve at most N requests at once; more wait FIFO (0: no cap)\n"
	    "  --service-ms S      each request is answered S ms (fractions allowed) after its\n"
	    "                      service starts; with N: capacity N/S per ms (needs --threads "
	    "1)\n"
	    "  --timeline FILE     count requests per W ms (10) of their kernel receive time\n"
	    "                      (CLOCK_REALTIME), for S s (900); FILE is rewritten on\n"
	    "                      HUP, TERM and INT (--timeline-ms W, --timeline-max-s S)\n"
	    "paths: /small 12 B, /16k, /1m, /healthz; others as /small\n"
	    "signals: USR1 toggles slow, USR2 toggles 503 (all but /healthz),\n"
	    "         HUP prints a stats line, TERM/INT print it and exit\n");
	exit(2);
}

static long parse_long(const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		usage();
	return v;
}

static void parse_args(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--no-sendfile") == 0) {
			opt_no_sendfile = true;
			continue;
		}
		if (i + 1 >= argc)
			usage();
		if (strcmp(a, "--port") == 0)
			opt_port = (int)parse_long(argv[++i], 0, 65535);
		else if (strcmp(a, "--threads") == 0)
			opt_threads = (int)parse_long(argv[++i], 1, MAX_THREADS);
		else if (strcmp(a, "--delay-ms") == 0)
			opt_delay_ms = parse_long(argv[++i], 0, 3600 * 1000);
		else if (strcmp(a, "--slow-ms") == 0)
			opt_slow_ms = parse_long(argv[++i], 0, 3600 * 1000);
		else if (strcmp(a, "--timeline") == 0)
			opt_timeline = argv[++i];
		else if (strcmp(a, "--timeline-ms") == 0)
			opt_timeline_ms = parse_long(argv[++i], 1, 60000);
		else if (strcmp(a, "--timeline-max-s") == 0)
			opt_timeline_max_s = parse_long(argv[++i], 1, 7 * 86400);
		else if (strcmp(a, "--max-concurrent") == 0)
			opt_max_concurrent = parse_long(argv[++i], 0, 1000000);
		else if (strcmp(a, "--service-ms") == 0) {
			char *end;

			errno = 0;
			opt_service_ms = strtod(argv[++i], &end);
			if (errno || end == argv[i] || *end ||
			    !(opt_service_ms >= 0 && opt_service_ms <= 3600e3))
				usage();
		} else
			usage();
	}
	if (opt_max_concurrent > 0 && opt_service_ms < 0) {
		fprintf(stderr, "upstream_stub: --max-concurrent needs --service-ms\n");
		exit(2);
	}
	if (capacity_model() && (opt_threads != 1 || opt_delay_ms > 0)) {
		fprintf(stderr,
		        "upstream_stub: --service-ms needs --threads 1 and no --delay-ms\n");
		exit(2);
	}
}

/* One line: requests received (complete heads and bodies) so far. */
static void print_stats(void)
{
	uint64_t req = 0, hz = 0, slowed = 0, failed = 0;
	int i;

	for (i = 0; i < opt_threads; i++) {
		req += atomic_load_explicit(&workers[i].n_requests, memory_order_relaxed);
		hz += atomic_load_explicit(&workers[i].n_healthz, memory_order_relaxed);
		slowed += atomic_load_explicit(&workers[i].n_slowed, memory_order_relaxed);
		failed += atomic_load_explicit(&workers[i].n_failed, memory_order_relaxed);
	}
	printf("stats requests %llu healthz %llu slowed %llu answered_503 %llu slow %s 503 %s",
	       (unsigned long long)req, (unsigned long long)hz, (unsigned long long)slowed,
	       (unsigned long long)failed, atomic_load(&fault_slow) ? "on" : "off",
	       atomic_load(&fault_503) ? "on" : "off");
	if (capacity_model()) {
		/* one thread: this runs on the thread that owns these fields */
		struct worker *w = &workers[0];
		double iv, busy_avg, wait_avg;

		account(w);
		iv = (double)(w->last_ns - w->mark_ns) / 1e9;
		busy_avg = iv > 0 ? (double)(w->busy_ns - w->mark_busy_ns) / 1e9 / iv : 0;
		wait_avg = iv > 0 ? (double)(w->wait_ns - w->mark_wait_ns) / 1e9 / iv : 0;
		printf(" cap %ld service_ms %g busy_avg %.3f util %.4f waiting_avg %.3f"
		       " max_waiting %u interval_s %.3f busy %u waiting %u served %llu"
		       " dropped_waiting %llu abandoned_serving %llu busy_slot_s %.3f",
		       opt_max_concurrent, opt_service_ms, busy_avg,
		       opt_max_concurrent > 0 ? busy_avg / (double)opt_max_concurrent : 0.0,
		       wait_avg, w->max_waiting, iv, w->busy, w->waiting,
		       (unsigned long long)w->served, (unsigned long long)w->dropped_waiting,
		       (unsigned long long)w->abandoned_serving, (double)w->busy_ns / 1e9);
		w->mark_ns = w->last_ns;
		w->mark_busy_ns = w->busy_ns;
		w->mark_wait_ns = w->wait_ns;
		w->max_waiting = w->waiting;
	}
	printf("\n");
	fflush(stdout);
}

/*
 * --timeline: (re)write FILE with every non-empty bucket, summed over the
 * threads: "T_MS REQUESTS HEALTHZ ANSWERED_503", T_MS the bucket's start in
 * CLOCK_REALTIME milliseconds. Written to FILE.tmp, then renamed.
 */
static void write_timeline(void)
{
	char tmp[PATH_MAX];
	FILE *f;
	size_t i;

	if (!opt_timeline)
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", opt_timeline);
	f = fopen(tmp, "w");
	if (!f) {
		fprintf(stderr, "upstream_stub: %s: %s\n", tmp, strerror(errno));
		return;
	}
	fprintf(f,
	        "# upstream_stub timeline: bucket_ms %ld pid %d overflow %llu\n"
	        "# t_ms (CLOCK_REALTIME, kernel receive time) requests healthz answered_503\n",
	        opt_timeline_ms, (int)getpid(),
	        (unsigned long long)atomic_load_explicit(&tl_overflow, memory_order_relaxed));
	for (i = 0; i < tl_n; i++) {
		unsigned long long r = 0, h = 0, x = 0;
		int t;

		for (t = 0; t < opt_threads; t++) {
			struct tl_bucket *b = &workers[t].tl[i];

			r += atomic_load_explicit(&b->requests, memory_order_relaxed);
			h += atomic_load_explicit(&b->healthz, memory_order_relaxed);
			x += atomic_load_explicit(&b->failed, memory_order_relaxed);
		}
		if (r || h || x)
			fprintf(f, "%llu %llu %llu %llu\n",
			        (unsigned long long)(tl_base_ms + i * (uint64_t)opt_timeline_ms), r,
			        h, x);
	}
	if (fclose(f) != 0 || rename(tmp, opt_timeline) != 0)
		fprintf(stderr, "upstream_stub: %s: %s\n", opt_timeline, strerror(errno));
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	switch (sig) {
	case SIGUSR1:
		atomic_store(&fault_slow, !atomic_load(&fault_slow));
		printf("fault slow %s (%ld ms)\n", atomic_load(&fault_slow) ? "on" : "off",
		       opt_slow_ms);
		fflush(stdout);
		break;
	case SIGUSR2:
		atomic_store(&fault_503, !atomic_load(&fault_503));
		printf("fault 503 %s\n", atomic_load(&fault_503) ? "on" : "off");
		fflush(stdout);
		break;
	case SIGHUP:
		write_timeline(); /* before the stats line: the line says the file is complete */
		print_stats();
		break;
	default: /* SIGTERM, SIGINT */
		write_timeline();
		print_stats();
		_exit(0);
	}
}

static void add_signals(struct event_base *base)
{
	static const int sigs[] = {SIGUSR1, SIGUSR2, SIGHUP, SIGTERM, SIGINT};
	size_t i;

	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		struct event *ev = evsignal_new(base, sigs[i], on_signal, NULL);

		if (!ev || event_add(ev, NULL) < 0) {
			fprintf(stderr, "upstream_stub: cannot handle signal %d\n", sigs[i]);
			exit(1);
		}
	}
}

int main(int argc, char **argv)
{
	int port, i;

	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	build_responses();
	make_memfds();
	if (opt_timeline) {
		tl_base_ms = realtime_ns() / 1000000u;
		tl_base_ms -= tl_base_ms % (uint64_t)opt_timeline_ms;
		tl_n = (size_t)(opt_timeline_max_s * 1000 / opt_timeline_ms) + 1;
	}
	port = opt_port;
	for (i = 0; i < opt_threads; i++) {
		port = setup_worker(&workers[i], i, port);
		if (port < 0) {
			fprintf(stderr, "upstream_stub: cannot listen: %s\n", strerror(errno));
			return 1;
		}
	}
	add_signals(workers[0].base);
	printf("listening on 127.0.0.1:%d\n", port);
	fflush(stdout);
	for (i = 1; i < opt_threads; i++) {
		if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0) {
			fprintf(stderr, "upstream_stub: pthread_create failed\n");
			return 1;
		}
	}
	worker_main(&workers[0]);
	return 0;
}
