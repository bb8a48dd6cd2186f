/*
 * loadgen: an open-loop HTTP/1.1 load generator.
 *
 *   loadgen --url http://127.0.0.1:8080/path[@weight] [--url ...] [--rate R]
 *           [--connections N] [--duration D] [--timeout T] [--header 'N: v']
 *           [--method M] [--body-size B] [--json FILE] [--progress]
 *           [--split-connections] [--warmup W] [--connect-first S] [--log FILE]
 *
 * Requests are sent at a fixed rate whether or not answers come back, over a
 * fixed set of keep-alive connections with at most one request in flight on
 * each. Latency runs from the moment a request was due (start + i/rate) to
 * the last byte of its response, so time spent waiting for a free connection
 * counts: a server that stalls cannot make the generator slow down and hide
 * the stall (no coordinated omission). --rate 0 is closed-loop instead: each
 * connection sends its next request as soon as the previous one is answered,
 * like wrk, and latency then runs from the actual send.
 *
 * One thread, one event loop; no allocation per request: requests are built
 * once per URL, waiting requests sit in a ring, connections are a fixed array
 * and the response parser keeps its state in the connection.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/util.h>

#define NS_PER_US      1000ull
#define NS_PER_MS      1000000ull
#define NS_PER_S       1000000000ull
#define DRAIN_NS       (5 * NS_PER_S)
#define SCAN_NS        (10 * NS_PER_MS) /* how often in-flight requests are checked */
#define STALL_WARN_NS  (2 * NS_PER_MS)  /* tick lateness worth a warning */
#define MAX_URLS       64
#define MAX_HEADERS    64
#define HEAD_MAX       16384        /* largest response head accepted */
#define RBUF_SIZE      (256 * 1024) /* one recv() */
#define BACKOFF_MIN_MS 10
#define BACKOFF_MAX_MS 1000
#define N_CODES        1000

/* ---------------------------------------------------------------------- */
/* Latency histogram                                                       */
/* ---------------------------------------------------------------------- */

/*
 * An HDR-style log-linear histogram of microseconds. Latencies span six
 * orders of magnitude (50 us on loopback to seconds in overload) and every
 * response is recorded, so it must be fixed-size, O(1) to record and keep a
 * bounded relative error everywhere. Values below 2^HIST_SUB_BITS get a
 * bucket each; above, each power of two [2^e, 2^(e+1)) is split into
 * HIST_HALF equal buckets, so a bucket is at most 1/HIST_HALF (0.8%) of its
 * value wide. The index is computed with one count-leading-zeros:
 *
 *   v <  2^8:  idx = v
 *   v >= 2^8:  m = floor(log2 v) - 7, idx = m * 128 + (v >> m)
 *
 * which is contiguous (m = 1 starts at 256). Values reach 2^40 us (12 days)
 * in 34 * 128 buckets: 35 KiB per histogram. Percentiles report the highest
 * value of the bucket they fall in (capped at the exact maximum), as HDR does.
 */
#define HIST_SUB_BITS 8
#define HIST_HALF     (1u << (HIST_SUB_BITS - 1))
#define HIST_MAX_BITS 40
#define HIST_BUCKETS  ((HIST_MAX_BITS - HIST_SUB_BITS + 2) * HIST_HALF)

struct hist {
	uint64_t count;
	uint64_t min;
	uint64_t max;
	uint64_t sum;
	uint64_t b[HIST_BUCKETS];
};

static unsigned hist_index(uint64_t v)
{
	unsigned m;

	if (v >= (1ull << HIST_MAX_BITS))
		v = (1ull << HIST_MAX_BITS) - 1;
	if (v < 2 * HIST_HALF)
		return (unsigned)v;
	m = (unsigned)(63 - __builtin_clzll(v)) - (HIST_SUB_BITS - 1);
	return m * HIST_HALF + (unsigned)(v >> m);
}

static uint64_t hist_bucket_high(unsigned idx)
{
	unsigned m;
	uint64_t sub;

	if (idx < 2 * HIST_HALF)
		return idx;
	m = idx / HIST_HALF - 1;
	sub = idx - m * HIST_HALF;
	return ((sub + 1) << m) - 1;
}

static void hist_record(struct hist *h, uint64_t us)
{
	if (h->count == 0 || us < h->min)
		h->min = us;
	if (us > h->max)
		h->max = us;
	h->count++;
	h->sum += us;
	h->b[hist_index(us)]++;
}

static void hist_add(struct hist *dst, const struct hist *src)
{
	unsigned i;

	if (src->count == 0)
		return;
	if (dst->count == 0 || src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
	dst->count += src->count;
	dst->sum += src->sum;
	for (i = 0; i < HIST_BUCKETS; i++)
		dst->b[i] += src->b[i];
}

/* Value at percentile p (0..100]: the smallest bucket holding ceil(p% of count). */
static uint64_t hist_percentile(const struct hist *h, double p)
{
	uint64_t want, seen = 0;
	unsigned i;

	if (h->count == 0)
		return 0;
	want = (uint64_t)ceil(p / 100.0 * (double)h->count);
	if (want < 1)
		want = 1;
	for (i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= want) {
			uint64_t v = hist_bucket_high(i);

			return v > h->max ? h->max : v;
		}
	}
	return h->max;
}

/* ---------------------------------------------------------------------- */
/* Configuration and state                                                 */
/* ---------------------------------------------------------------------- */

enum err_kind { E_CONNECT, E_RESET, E_TIMEOUT, E_PARSE, E_COUNT };

static const char *const err_names[E_COUNT] = {"connect", "reset", "timeout", "parse"};

struct stats {
	uint64_t sched;  /* requests generated */
	uint64_t sent;   /* requests written to a socket */
	uint64_t cls[6]; /* answers by status class: cls[2] is 2xx */
	uint64_t err[E_COUNT];
	uint64_t codes[N_CODES];
	struct hist lat;  /* scheduled time -> last byte */
	struct hist svc;  /* actual send -> last byte (what wrk measures) */
	struct hist ok;   /* lat of the 2xx answers only */
	struct hist shed; /* lat of the 429 and 503 answers (load shedding) */
};

struct url {
	char *text;
	char *host; /* as written, for Host: */
	char *port;
	char *path;
	int weight;
	int cur;   /* smooth weighted round-robin state */
	char *req; /* the whole request, built once */
	size_t req_len;
	struct stats st;
	struct stats warm; /* requests due during --warmup: counted apart, not reported */
};

enum rstate {
	R_HEAD,
	R_BODY_CL,
	R_BODY_CLOSE,
	R_CHUNK_SIZE,
	R_CHUNK_EXT,
	R_CHUNK_SIZE_LF,
	R_CHUNK_DATA,
	R_CHUNK_DATA_CR,
	R_CHUNK_DATA_LF,
	R_TRAILER,
	R_TRAILER_LF,
	R_DONE,
};

/* Response parser state, kept in the connection between reads. */
struct resp {
	enum rstate st;
	int status;
	bool close;
	uint64_t left;   /* body bytes left (Content-Length, chunk data) */
	unsigned digits; /* hex digits in the current chunk size */
	size_t line_len; /* bytes in the current trailer line */
};

struct conn {
	evutil_socket_t fd;
	int pool; /* index in G.pools */
	bool connected;
	bool has_req;
	bool idle; /* on the idle list */
	bool wr_armed;
	unsigned backoff_ms;
	struct event rd;
	struct event wr;
	struct event retry;
	TAILQ_ENTRY(conn) idle_link;
	/* the request in flight */
	int url;
	uint64_t sched;
	uint64_t sent;
	size_t woff;
	struct resp r;
	char *head; /* a head split across reads is gathered here */
	size_t head_len;
};

/* A request waiting for a free connection. */
struct qent {
	uint64_t sched;
	int url;
};

/*
 * Connections and the FIFO of requests waiting for one. There is one pool,
 * or with --split-connections one per URL, so that requests to a slow URL
 * never wait behind another URL's (like independent client populations).
 */
struct pool {
	TAILQ_HEAD(, conn) idle_list;
	struct qent *q;
	size_t qcap, qhead, qn, qmax;
	int nconns; /* connections of this pool so far */
	int max;    /* --max-connections: it may grow to this */
};

static struct {
	/* options */
	struct url urls[MAX_URLS];
	int nurls;
	int total_weight;
	const char *headers[MAX_HEADERS];
	int nheaders;
	const char *method;
	size_t body_size;
	double rate;
	int nconns;    /* opened at the start */
	int max_conns; /* --max-connections (>= nconns) */
	int nopen;     /* G.conns[0..nopen) are in use */
	double duration_s;
	double measured_s; /* goodput divisor: duration_s, or less after ^C */
	uint64_t duration_ns;
	uint64_t timeout_ns;
	uint64_t tick_ns;
	const char *json_path;
	const char *log_path; /* --log: one line per request */
	struct logrec *log;
	size_t log_n, log_cap;
	uint64_t start_real; /* CLOCK_REALTIME ns at G.start */
	bool progress;
	double connect_first_s; /* > 0: start the clock once every connection is up */
	uint64_t warmup_ns;     /* --warmup: requests due before start + this are not reported */
	bool head_method;
	/* target */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	/* run state */
	struct event_base *base;
	struct event tick;
	struct event sigint;
	struct conn *conns;
	struct pool pools[MAX_URLS];
	int npools; /* 1, or nurls with --split-connections */
	bool split;
	size_t qn; /* requests waiting, all pools */
	int busy;  /* connections holding a request */
	uint64_t start, end, hard_end;
	uint64_t next_idx, total_reqs;
	uint64_t next_scan;
	uint64_t last_tick, max_tick_gap;
	bool stopping;
	bool interrupted;
	char *rbuf;
	uint64_t connect_attempts, connect_failures, unsolicited;
	int nconnected; /* connections that ever came up (--connect-first) */
	bool clock_started;
	struct event connect_wait;
	/* --progress */
	struct hist iv_lat;
	uint64_t iv_sent, iv_done, next_progress;
} G;

/* --log: how one request ended. outcome: the status code, or -1 - enum err_kind. */
struct logrec {
	uint64_t sched; /* due time (G.start clock) */
	uint64_t end;   /* last byte, or the error */
	int16_t outcome;
	uint8_t url;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static bool open_loop(void)
{
	return G.rate > 0;
}

static void conn_connect(struct conn *c, uint64_t now);
static void conn_release(struct conn *c, uint64_t now);
static void mark_connected(struct conn *c);
static void pool_grow(struct pool *p, uint64_t now);
static void on_retry(evutil_socket_t fd, short what, void *arg);
static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);

/* ---------------------------------------------------------------------- */
/* Request mix and queue                                                   */
/* ---------------------------------------------------------------------- */

/*
 * Smooth weighted round-robin (nginx's): every pick adds each URL's weight to
 * its credit, takes the URL with the most credit and charges it the total.
 * The mix is exact over every window of total_weight requests and evenly
 * interleaved (weights 2:1 give a b a a b a ..., not a a ... b b), with no random
 * numbers, so two runs send the very same sequence.
 */
static int pick_url(void)
{
	int i, best = 0;

	if (G.nurls == 1)
		return 0;
	for (i = 0; i < G.nurls; i++) {
		G.urls[i].cur += G.urls[i].weight;
		if (G.urls[i].cur > G.urls[best].cur)
			best = i;
	}
	G.urls[best].cur -= G.total_weight;
	return best;
}

static struct pool *pool_of_url(int url)
{
	return &G.pools[G.split ? url : 0];
}

static void queue_grow(struct pool *p)
{
	size_t ncap = p->qcap ? p->qcap * 2 : 1024;
	struct qent *nq = malloc(ncap * sizeof(*nq));
	size_t i;

	if (!nq) {
		fprintf(stderr, "loadgen: out of memory for the queue\n");
		exit(1);
	}
	for (i = 0; i < p->qn; i++)
		nq[i] = p->q[(p->qhead + i) % p->qcap];
	free(p->q);
	p->q = nq;
	p->qcap = ncap;
	p->qhead = 0;
}

static void queue_push(struct pool *p, int url, uint64_t sched)
{
	if (p->qn == p->qcap)
		queue_grow(p);
	p->q[(p->qhead + p->qn) % p->qcap] = (struct qent){.sched = sched, .url = url};
	p->qn++;
	G.qn++;
	if (p->qn > p->qmax)
		p->qmax = p->qn;
}

static struct qent queue_pop(struct pool *p)
{
	struct qent e = p->q[p->qhead];

	p->qhead = (p->qhead + 1) % p->qcap;
	p->qn--;
	G.qn--;
	return e;
}

/* The longest any pool's queue got. */
static size_t queue_max(void)
{
	size_t m = 0;
	int i;

	for (i = 0; i < G.npools; i++) {
		if (G.pools[i].qmax > m)
			m = G.pools[i].qmax;
	}
	return m;
}

/* Where a request due at sched is counted: in the results, or apart (--warmup). */
static struct stats *stats_for(int url, uint64_t sched)
{
	if (G.warmup_ns && sched < G.start + G.warmup_ns)
		return &G.urls[url].warm;
	return &G.urls[url].st;
}

/* --log: remember how this request ended (the array grows only in closed loop). */
static void log_request(int url, uint64_t sched, uint64_t end, int outcome)
{
	if (!G.log_path)
		return;
	if (G.log_n == G.log_cap) {
		size_t cap = G.log_cap ? 2 * G.log_cap : 65536;
		struct logrec *n = realloc(G.log, cap * sizeof(*n));

		if (!n)
			return; /* lines missing from the log; the counts are unaffected */
		G.log = n;
		G.log_cap = cap;
	}
	G.log[G.log_n++] = (struct logrec){
	    .sched = sched, .end = end, .outcome = (int16_t)outcome, .url = (uint8_t)url};
}

static void count_error(int url, uint64_t sched, enum err_kind kind)
{
	log_request(url, sched, now_ns(), -1 - (int)kind);
	stats_for(url, sched)->err[kind]++;
	G.iv_done++;
}

/* Requests are queued in scheduled order: expired ones are at the head. */
static void pool_expire(struct pool *p, uint64_t now)
{
	while (p->qn > 0 && now - p->q[p->qhead].sched > G.timeout_ns) {
		struct qent e = queue_pop(p);

		count_error(e.url, e.sched, E_TIMEOUT);
	}
}

static void queue_expire(uint64_t now)
{
	int i;

	for (i = 0; i < G.npools; i++)
		pool_expire(&G.pools[i], now);
}

/* ---------------------------------------------------------------------- */
/* Connections                                                             */
/* ---------------------------------------------------------------------- */

static void idle_add(struct conn *c)
{
	if (!c->idle) {
		TAILQ_INSERT_TAIL(&G.pools[c->pool].idle_list, c, idle_link);
		c->idle = true;
	}
}

static void idle_remove(struct conn *c)
{
	if (c->idle) {
		TAILQ_REMOVE(&G.pools[c->pool].idle_list, c, idle_link);
		c->idle = false;
	}
}

static void set_write(struct conn *c, bool on)
{
	if (on && !c->wr_armed)
		event_add(&c->wr, NULL);
	else if (!on && c->wr_armed)
		event_del(&c->wr);
	c->wr_armed = on;
}

static void drop_request(struct conn *c, enum err_kind kind)
{
	if (!c->has_req)
		return;
	count_error(c->url, c->sched, kind);
	c->has_req = false;
	G.busy--;
}

/*
 * Close the socket; the request on it, if any, fails with kind. Then connect
 * again, at once or after a back-off (a refused connect would otherwise spin).
 */
static void conn_reset(struct conn *c, enum err_kind kind, bool backoff, uint64_t now)
{
	drop_request(c, kind);
	idle_remove(c);
	if (c->fd >= 0) {
		event_del(&c->rd);
		set_write(c, false);
		evutil_closesocket(c->fd);
		c->fd = -1;
	}
	c->connected = false;
	c->head_len = 0;
	if (backoff) {
		struct timeval tv;

		c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
		if (c->backoff_ms > BACKOFF_MAX_MS)
			c->backoff_ms = BACKOFF_MAX_MS;
		tv.tv_sec = c->backoff_ms / 1000;
		tv.tv_usec = (suseconds_t)(c->backoff_ms % 1000) * 1000;
		evtimer_add(&c->retry, &tv);
		return;
	}
	conn_connect(c, now);
}

/* Close and reconnect a connection that carries no request: nothing is counted. */
static void conn_reopen(struct conn *c, uint64_t now)
{
	conn_reset(c, E_RESET, false, now);
}

static void connect_failed(struct conn *c, uint64_t now)
{
	G.connect_failures++;
	conn_reset(c, E_CONNECT, true, now);
}

/* A socket error: before the connection is up it is a connect error. */
static void sock_error(struct conn *c, uint64_t now)
{
	if (!c->connected)
		connect_failed(c, now);
	else
		conn_reset(c, E_RESET, false, now);
}

static void conn_connect(struct conn *c, uint64_t now)
{
	int one = 1;

	G.connect_attempts++;
	c->fd = socket(G.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		fprintf(stderr, "loadgen: socket: %s\n", strerror(errno));
		exit(1);
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	event_assign(&c->rd, G.base, c->fd, EV_READ | EV_PERSIST, on_read, c);
	event_assign(&c->wr, G.base, c->fd, EV_WRITE | EV_PERSIST, on_write, c);
	c->wr_armed = false;
	if (connect(c->fd, (struct sockaddr *)&G.addr, G.addrlen) < 0 && errno != EINPROGRESS) {
		G.connect_failures++;
		conn_reset(c, E_CONNECT, true, now);
		return;
	}
	event_add(&c->rd, NULL);
	set_write(c, true); /* writable = connected (or failed) */
	conn_release(c, now);
}

/* One more connection for pool p; conn_connect() hands it the oldest waiting request. */
static void pool_grow(struct pool *p, uint64_t now)
{
	struct conn *c = &G.conns[G.nopen++];

	c->fd = -1;
	c->pool = (int)(p - G.pools);
	p->nconns++;
	evtimer_assign(&c->retry, G.base, on_retry, c);
	conn_connect(c, now);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	if (!G.interrupted)
		conn_connect(arg, now_ns());
}

/* ---------------------------------------------------------------------- */
/* Sending                                                                 */
/* ---------------------------------------------------------------------- */

/* Write (the rest of) the request. Returns -1 when the connection was reset. */
static int write_request(struct conn *c, uint64_t now)
{
	const struct url *u = &G.urls[c->url];
	ssize_t n;

	if (c->woff == 0) {
		if (!open_loop())
			c->sched = now;
		c->sent = now;
		stats_for(c->url, c->sched)->sent++;
		G.iv_sent++;
	}
	n = send(c->fd, u->req + c->woff, u->req_len - c->woff, MSG_NOSIGNAL);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
			set_write(c, true);
			return 0;
		}
		sock_error(c, now);
		return -1;
	}
	c->woff += (size_t)n;
	set_write(c, c->woff < u->req_len);
	return 0;
}

/* Give c the request (url, sched); it goes out now or once c is connected. */
static void start_request(struct conn *c, int url, uint64_t sched, uint64_t now)
{
	idle_remove(c);
	c->has_req = true;
	c->url = url;
	c->sched = sched;
	c->sent = now; /* until it is written: the in-flight timeout runs from here */
	c->woff = 0;
	memset(&c->r, 0, sizeof(c->r));
	c->head_len = 0;
	G.busy++;
	if (c->connected)
		write_request(c, now);
}

/* A new request is due: send it on an idle connection, or queue it. */
static void dispatch(int url, uint64_t sched, uint64_t now)
{
	struct pool *p = pool_of_url(url);
	struct conn *c = TAILQ_FIRST(&p->idle_list);

	stats_for(url, sched)->sched++;
	if (!c) {
		queue_push(p, url, sched);
		/* --max-connections: a new connection rather than a wait */
		if (p->nconns < p->max && G.nopen < G.max_conns && !G.interrupted)
			pool_grow(p, now);
		return;
	}
	start_request(c, url, sched, now);
}

/* c has no request: give it the oldest waiting one, a new one, or a rest. */
static void conn_release(struct conn *c, uint64_t now)
{
	if (G.interrupted)
		return;
	if (open_loop()) {
		struct pool *p = &G.pools[c->pool];

		pool_expire(p, now);
		if (p->qn > 0) {
			struct qent e = queue_pop(p);

			start_request(c, e.url, e.sched, now);
			return;
		}
	} else if (!G.stopping) {
		int url = G.split ? c->pool : pick_url();

		stats_for(url, now)->sched++;
		start_request(c, url, now, now);
		return;
	}
	idle_add(c);
}

/* ---------------------------------------------------------------------- */
/* Response parser                                                         */
/* ---------------------------------------------------------------------- */

static bool is_tchar(unsigned char ch)
{
	return isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static bool name_is(const char *name, size_t len, const char *want)
{
	return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

/* Does the comma-separated list v contain token (case-insensitive)? */
static bool list_has(const char *v, size_t len, const char *token)
{
	size_t tl = strlen(token);
	size_t i = 0;

	while (i < len) {
		size_t s, e;

		while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		s = i;
		while (i < len && v[i] != ',')
			i++;
		e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e - s == tl && strncasecmp(v + s, token, tl) == 0)
			return true;
	}
	return false;
}

/* Is token the last element of the list v? */
static bool list_last_is(const char *v, size_t len, const char *token)
{
	const char *comma = memrchr(v, ',', len);
	size_t tl = strlen(token);

	if (comma) {
		len -= (size_t)(comma + 1 - v);
		v = comma + 1;
	}
	while (len > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		len--;
	}
	return len == tl && strncasecmp(v, token, tl) == 0;
}

static int parse_decimal(const char *v, size_t len, uint64_t *out)
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

/* "HTTP/1.x SSS reason" (the reason may be absent). Sets status, HTTP/1.0. */
static int parse_status_line(const char *p, size_t len, int *status, bool *v10)
{
	size_t i;

	if (len < 12 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') ||
	    p[8] != ' ' || p[9] < '1' || p[9] > '5' || !isdigit((unsigned char)p[10]) ||
	    !isdigit((unsigned char)p[11]) || (len > 12 && p[12] != ' '))
		return -1;
	for (i = 13; i < len; i++) {
		unsigned char ch = (unsigned char)p[i];

		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return -1;
	}
	*status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	*v10 = p[7] == '0';
	return 0;
}

struct head_info {
	bool cl_seen;
	uint64_t cl;
	bool te_seen;
	bool chunked;
	bool conn_close;
	bool conn_keepalive;
};

/* One header field line (no CRLF): strict name, no control bytes in the value. */
static int parse_field(const char *p, size_t len, struct head_info *hi)
{
	const char *colon = memchr(p, ':', len);
	const char *v, *ve;
	size_t nlen, i;

	if (!colon || colon == p)
		return -1;
	nlen = (size_t)(colon - p);
	for (i = 0; i < nlen; i++) {
		if (!is_tchar((unsigned char)p[i]))
			return -1;
	}
	for (v = colon + 1; v < p + len && (*v == ' ' || *v == '\t'); v++)
		;
	for (ve = p + len; ve > v && (ve[-1] == ' ' || ve[-1] == '\t'); ve--)
		;
	for (i = 0; i < (size_t)(ve - v); i++) {
		unsigned char ch = (unsigned char)v[i];

		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return -1;
	}
	if (name_is(p, nlen, "content-length")) {
		uint64_t n;

		if (parse_decimal(v, (size_t)(ve - v), &n) < 0 || (hi->cl_seen && n != hi->cl))
			return -1;
		hi->cl = n;
		hi->cl_seen = true;
	} else if (name_is(p, nlen, "transfer-encoding")) {
		hi->te_seen = true;
		hi->chunked = list_last_is(v, (size_t)(ve - v), "chunked");
	} else if (name_is(p, nlen, "connection")) {
		hi->conn_close |= list_has(v, (size_t)(ve - v), "close");
		hi->conn_keepalive |= list_has(v, (size_t)(ve - v), "keep-alive");
	}
	return 0;
}

/*
 * Parse a complete response head [p, p + len), which ends with CRLFCRLF, and
 * pick how its body is delimited (RFC 9112 section 6.3). Lines must end with
 * CRLF; obs-fold, a field name with spaces, differing Content-Length values
 * and Content-Length together with Transfer-Encoding are errors.
 */
static int parse_head(struct conn *c, const char *p, size_t len)
{
	const char *end = p + len - 2; /* the final empty line */
	const char *lf = memchr(p, '\n', len);
	struct head_info hi = {0};
	bool v10;

	if (!lf || lf == p || lf[-1] != '\r' ||
	    parse_status_line(p, (size_t)(lf - 1 - p), &c->r.status, &v10) < 0)
		return -1;
	for (p = lf + 1; p < end; p = lf + 1) {
		lf = memchr(p, '\n', (size_t)(end + 2 - p));
		if (lf[-1] != '\r' || parse_field(p, (size_t)(lf - 1 - p), &hi) < 0)
			return -1;
	}
	c->r.close = hi.conn_close || (v10 && !hi.conn_keepalive);
	if (c->r.status < 200) {
		/* Interim (100 Continue, 103): the real answer follows. */
		if (c->r.status == 101)
			return -1;
		c->r.st = R_HEAD;
		return 0;
	}
	if (G.head_method || c->r.status == 204 || c->r.status == 304) {
		c->r.st = R_DONE;
	} else if (hi.te_seen && hi.cl_seen) {
		return -1;
	} else if (hi.te_seen) {
		c->r.st = hi.chunked ? R_CHUNK_SIZE : R_BODY_CLOSE;
	} else if (hi.cl_seen) {
		c->r.left = hi.cl;
		c->r.st = hi.cl ? R_BODY_CL : R_DONE;
	} else {
		c->r.st = R_BODY_CLOSE;
	}
	if (c->r.st == R_BODY_CLOSE)
		c->r.close = true;
	return 0;
}

static size_t head_end(const char *p, size_t len)
{
	const char *e = memmem(p, len, "\r\n\r\n", 4);

	return e ? (size_t)(e + 4 - p) : 0;
}

/*
 * Consume head bytes. A head that arrives whole in one read is parsed where
 * it lies; one split over reads is gathered in c->head. Returns bytes used,
 * or -1 on a parse error.
 */
static ssize_t feed_head(struct conn *c, const char *p, size_t n)
{
	size_t old = c->head_len, room, e, from;

	if (old == 0) {
		e = head_end(p, n);
		if (e)
			return parse_head(c, p, e) < 0 ? -1 : (ssize_t)e;
	}
	if (!c->head && !(c->head = malloc(HEAD_MAX)))
		return -1;
	room = HEAD_MAX - old;
	if (n > room)
		n = room;
	memcpy(c->head + old, p, n);
	c->head_len += n;
	from = old >= 3 ? old - 3 : 0;
	e = head_end(c->head + from, c->head_len - from);
	if (!e) {
		if (c->head_len == HEAD_MAX)
			return -1;
		return (ssize_t)n;
	}
	e += from;
	c->head_len = 0;
	return parse_head(c, c->head, e) < 0 ? -1 : (ssize_t)(e - old);
}

static int hex_digit(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = (char)(ch | 0x20);
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

/* One byte of chunk framing (sizes, extensions, CRLFs, trailers). */
static int chunk_byte(struct resp *r, char ch)
{
	int d;

	switch (r->st) {
	case R_CHUNK_SIZE:
		d = hex_digit(ch);
		if (d >= 0 && r->digits < 15) {
			r->left = r->left * 16 + (uint64_t)d;
			r->digits++;
		} else if (r->digits > 0 && (ch == ';' || ch == '\r')) {
			r->st = ch == ';' ? R_CHUNK_EXT : R_CHUNK_SIZE_LF;
		} else {
			return -1;
		}
		return 0;
	case R_CHUNK_EXT:
		if (ch == '\r')
			r->st = R_CHUNK_SIZE_LF;
		else if (ch == '\n')
			return -1;
		return 0;
	case R_CHUNK_SIZE_LF:
		if (ch != '\n')
			return -1;
		r->st = r->left ? R_CHUNK_DATA : R_TRAILER;
		r->line_len = 0;
		return 0;
	case R_CHUNK_DATA_CR:
		r->st = R_CHUNK_DATA_LF;
		return ch == '\r' ? 0 : -1;
	case R_CHUNK_DATA_LF:
		r->st = R_CHUNK_SIZE;
		r->digits = 0;
		r->left = 0;
		return ch == '\n' ? 0 : -1;
	case R_TRAILER:
		if (ch == '\r')
			r->st = R_TRAILER_LF;
		else if (ch == '\n' || ++r->line_len > HEAD_MAX)
			return -1;
		return 0;
	case R_TRAILER_LF:
		if (ch != '\n')
			return -1;
		r->st = r->line_len ? R_TRAILER : R_DONE;
		r->line_len = 0;
		return 0;
	default:
		return -1;
	}
}

/* Consume chunked-body bytes; data is skipped in bulk. Returns used or -1. */
static ssize_t feed_chunked(struct resp *r, const char *p, size_t n)
{
	size_t i = 0;

	while (i < n && r->st != R_DONE) {
		if (r->st == R_CHUNK_DATA) {
			size_t take = n - i < r->left ? n - i : (size_t)r->left;

			i += take;
			r->left -= take;
			if (r->left == 0)
				r->st = R_CHUNK_DATA_CR;
			continue;
		}
		if (chunk_byte(r, p[i++]) < 0)
			return -1;
	}
	return (ssize_t)i;
}

/* ---------------------------------------------------------------------- */
/* Completion                                                              */
/* ---------------------------------------------------------------------- */

static void record_answer(struct conn *c, uint64_t now)
{
	struct stats *st = stats_for(c->url, c->sched);
	uint64_t lat = (now - c->sched) / NS_PER_US;

	log_request(c->url, c->sched, now, c->r.status);
	st->cls[c->r.status / 100]++;
	st->codes[c->r.status]++;
	hist_record(&st->lat, lat);
	hist_record(&st->svc, (now - c->sent) / NS_PER_US);
	if (c->r.status / 100 == 2)
		hist_record(&st->ok, lat);
	else if (c->r.status == 429 || c->r.status == 503)
		hist_record(&st->shed, lat);
	if (G.progress)
		hist_record(&G.iv_lat, lat);
	G.iv_done++;
}

/*
 * The response on c is complete. Returns -1 when the connection was closed
 * (Connection: close, or bytes after the response that nobody asked for).
 */
static int complete(struct conn *c, size_t extra, uint64_t now)
{
	record_answer(c, now);
	c->has_req = false;
	G.busy--;
	if (extra > 0)
		G.unsolicited++;
	if (extra > 0 || c->r.close) {
		conn_reopen(c, now);
		return -1;
	}
	conn_release(c, now);
	return 0;
}

/* Feed received bytes to the parser. Returns -1 when c was reset. */
static int feed(struct conn *c, const char *p, size_t n, uint64_t now)
{
	while (n > 0) {
		ssize_t used;

		if (!c->has_req) {
			G.unsolicited++;
			conn_reopen(c, now);
			return -1;
		}
		switch (c->r.st) {
		case R_HEAD:
			used = feed_head(c, p, n);
			break;
		case R_BODY_CL:
			used = (ssize_t)(n < c->r.left ? n : c->r.left);
			c->r.left -= (uint64_t)used;
			if (c->r.left == 0)
				c->r.st = R_DONE;
			break;
		case R_BODY_CLOSE:
			used = (ssize_t)n;
			break;
		default:
			used = feed_chunked(&c->r, p, n);
			break;
		}
		if (used < 0) {
			conn_reset(c, E_PARSE, false, now);
			return -1;
		}
		p += used;
		n -= (size_t)used;
		if (c->r.st == R_DONE && complete(c, n, now) < 0)
			return -1;
	}
	return 0;
}

/* The peer closed: this ends a close-delimited body, or fails the request. */
static void on_eof(struct conn *c, uint64_t now)
{
	if (c->has_req && c->r.st == R_BODY_CLOSE) {
		c->r.st = R_DONE;
		complete(c, 0, now);
		return;
	}
	conn_reset(c, E_RESET, false, now);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	uint64_t now;
	ssize_t n;

	for (;;) {
		n = recv(c->fd, G.rbuf, RBUF_SIZE, 0);
		now = now_ns();
		if (n > 0) {
			if (!c->connected)
				mark_connected(c);
			if (feed(c, G.rbuf, (size_t)n, now) < 0 || n < RBUF_SIZE)
				return;
			continue;
		}
		if (n == 0) {
			on_eof(c, now);
			return;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		sock_error(c, now);
		return;
	}
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	uint64_t now = now_ns();

	if (!c->connected) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
			connect_failed(c, now);
			return;
		}
		mark_connected(c);
	}
	if (c->has_req && c->woff < G.urls[c->url].req_len)
		write_request(c, now);
	else
		set_write(c, false);
}

/* ---------------------------------------------------------------------- */
/* Scheduler                                                               */
/* ---------------------------------------------------------------------- */

/*
 * A request in flight (from its send) for longer than --timeout fails and its
 * connection is reopened. The clock starts at the send, not at the due time:
 * a request that waited 4.9 s in the queue still gets its full answer, and a
 * late answer does not cost a reconnect; the queue has its own limit.
 */
static void scan_inflight(uint64_t now)
{
	int i;

	for (i = 0; i < G.nopen; i++) {
		struct conn *c = &G.conns[i];

		if (c->has_req && now - c->sent > G.timeout_ns)
			conn_reset(c, E_TIMEOUT, false, now);
	}
}

/*
 * Open-loop scheduling. Request i is due at start + i / rate. A 1 ms periodic
 * timer (drift-free: libevent re-arms persistent timers from the previous
 * deadline, and the base uses a timerfd for sub-millisecond precision) sends
 * every request that has come due since the previous tick. One timer per
 * request would cost a heap insert and often a wake-up each; batching costs
 * at most one tick of send lag, which is counted in the latency, because
 * latency always runs from the due time, never from the actual send.
 */
static void schedule_due(uint64_t now)
{
	uint64_t due = (uint64_t)((double)(now - G.start) * G.rate / 1e9) + 1;

	if (due > G.total_reqs)
		due = G.total_reqs;
	while (G.next_idx < due) {
		uint64_t sched = G.start + (uint64_t)((double)G.next_idx * 1e9 / G.rate);

		dispatch(pick_url(), sched, now);
		G.next_idx++;
	}
	if (G.next_idx >= G.total_reqs)
		G.stopping = true;
}

static void print_progress(uint64_t now)
{
	fprintf(stderr,
	        "t=%5.1fs sent %6" PRIu64 "/s done %6" PRIu64 "/s queue %6zu"
	        " busy %5d p50 %9.3fms p99 %9.3fms max %9.3fms\n",
	        (double)(now - G.start) / 1e9, G.iv_sent, G.iv_done, G.qn, G.busy,
	        (double)hist_percentile(&G.iv_lat, 50) / 1e3,
	        (double)hist_percentile(&G.iv_lat, 99) / 1e3, (double)G.iv_lat.max / 1e3);
	memset(&G.iv_lat, 0, sizeof(G.iv_lat));
	G.iv_sent = G.iv_done = 0;
}

/* Count what never finished, and stop the loop. */
static void finish(void)
{
	int i;

	for (i = 0; i < G.npools; i++) {
		while (G.pools[i].qn > 0) {
			struct qent e = queue_pop(&G.pools[i]);

			count_error(e.url, e.sched, E_TIMEOUT);
		}
	}
	for (i = 0; i < G.nopen; i++)
		drop_request(&G.conns[i], E_TIMEOUT);
	event_base_loopbreak(G.base);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	uint64_t now = now_ns();

	if (G.last_tick && now - G.last_tick > G.max_tick_gap)
		G.max_tick_gap = now - G.last_tick;
	G.last_tick = now;
	if (!G.stopping) {
		if (open_loop())
			schedule_due(now);
		else if (now >= G.end)
			G.stopping = true;
	}
	queue_expire(now);
	if (now >= G.next_scan) {
		scan_inflight(now);
		G.next_scan = now + SCAN_NS;
	}
	if (G.progress && now >= G.next_progress) {
		print_progress(now);
		G.next_progress += NS_PER_S;
	}
	if ((G.stopping && G.busy == 0 && G.qn == 0) || now >= G.hard_end)
		finish();
}

static void on_sigint(evutil_socket_t fd, short what, void *arg)
{
	G.interrupted = true;
	if (now_ns() < G.end) {
		uint64_t from = G.start + G.warmup_ns;

		G.measured_s = now_ns() > from ? (double)(now_ns() - from) / 1e9 : 0.001;
	}
	finish();
}

/* ---------------------------------------------------------------------- */
/* Report                                                                  */
/* ---------------------------------------------------------------------- */

static void stats_add(struct stats *dst, const struct stats *src)
{
	int i;

	dst->sched += src->sched;
	dst->sent += src->sent;
	for (i = 0; i < 6; i++)
		dst->cls[i] += src->cls[i];
	for (i = 0; i < E_COUNT; i++)
		dst->err[i] += src->err[i];
	for (i = 0; i < N_CODES; i++)
		dst->codes[i] += src->codes[i];
	hist_add(&dst->lat, &src->lat);
	hist_add(&dst->svc, &src->svc);
	hist_add(&dst->ok, &src->ok);
	hist_add(&dst->shed, &src->shed);
}

static const double pcts[] = {50, 90, 99, 99.9};
static const char *const pct_names[] = {"p50", "p90", "p99", "p99_9"};
#define N_PCTS 4

static double goodput(const struct stats *st)
{
	return (double)st->cls[2] / G.measured_s;
}

static void print_counts_row(const char *name, int w, const struct stats *st)
{
	printf("%-*s %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %6" PRIu64 " %6" PRIu64 " %6" PRIu64
	       " %7" PRIu64 " %6" PRIu64 " %7" PRIu64 " %6" PRIu64 " %10.1f\n",
	       w, name, st->sched, st->sent, st->cls[2], st->cls[3], st->cls[4], st->cls[5],
	       st->err[E_CONNECT], st->err[E_RESET], st->err[E_TIMEOUT], st->err[E_PARSE],
	       goodput(st));
}

static void print_lat_row(const char *name, int w, const struct hist *h)
{
	int i;

	printf("%-*s", w, name);
	for (i = 0; i < N_PCTS; i++)
		printf(" %9.3f", (double)hist_percentile(h, pcts[i]) / 1e3);
	printf(" %9.3f %9.3f %9" PRIu64 "\n", (double)h->max / 1e3,
	       h->count ? (double)h->sum / (double)h->count / 1e3 : 0.0, h->count);
}

/* Which histogram of a struct stats a latency table shows. */
static const struct hist *pick_hist(const struct stats *st, char which)
{
	switch (which) {
	case 's':
		return &st->svc;
	case 'o':
		return &st->ok;
	case 'x':
		return &st->shed;
	default:
		return &st->lat;
	}
}

static void print_lat_table(const char *title, int w, const struct stats *total, char which)
{
	int i;

	printf("\n%s\n%-*s %9s %9s %9s %9s %9s %9s %9s\n", title, w, "url", "p50", "p90", "p99",
	       "p99.9", "max", "mean", "count");
	for (i = 0; i < G.nurls; i++)
		print_lat_row(G.urls[i].text, w, pick_hist(&G.urls[i].st, which));
	print_lat_row("total", w, pick_hist(total, which));
}

static void print_codes(const char *name, const struct stats *st)
{
	int i;

	printf("  %s:", name);
	for (i = 0; i < N_CODES; i++) {
		if (st->codes[i])
			printf(" %d=%" PRIu64, i, st->codes[i]);
	}
	printf("\n");
}

static void print_report(const struct stats *total)
{
	int w = 5, i;

	for (i = 0; i < G.nurls; i++) {
		if ((int)strlen(G.urls[i].text) > w)
			w = (int)strlen(G.urls[i].text);
	}
	if (open_loop())
		printf("open loop: %.0f req/s", G.rate);
	else
		printf("closed loop");
	printf(", %d connections%s", G.nconns, G.split ? " (split by URL)" : "");
	if (G.max_conns > G.nconns)
		printf(" + %d opened on demand (max %d)", G.nopen - G.nconns, G.max_conns);
	printf(", %.1f s, timeout %.1f s", G.duration_s, (double)G.timeout_ns / 1e9);
	if (G.warmup_ns)
		printf(" (after a %.1f s warm-up, not counted)", (double)G.warmup_ns / 1e9);
	printf("\n\n");
	printf("%-*s %8s %8s %8s %6s %6s %6s %7s %6s %7s %6s %10s\n", w, "url", "sched", "sent",
	       "2xx", "3xx", "4xx", "5xx", "connect", "reset", "timeout", "parse", "goodput/s");
	for (i = 0; i < G.nurls; i++)
		print_counts_row(G.urls[i].text, w, &G.urls[i].st);
	print_counts_row("total", w, total);
	print_lat_table(open_loop() ? "latency ms, scheduled send -> last byte (no coordinated "
	                              "omission)"
	                            : "latency ms, send -> last byte",
	                w, total, 'l');
	if (open_loop())
		print_lat_table("service time ms, actual send -> last byte (as wrk measures)", w,
		                total, 's');
	/* only when they differ from the first table */
	if (total->ok.count != total->lat.count)
		print_lat_table("latency ms of the 2xx answers only", w, total, 'o');
	if (total->shed.count > 0)
		print_lat_table("latency ms of the 429 and 503 answers (shed)", w, total, 'x');
	printf("\nstatus codes:\n");
	for (i = 0; i < G.nurls; i++)
		print_codes(G.urls[i].text, &G.urls[i].st);
	print_codes("total", total);
	printf("connects %" PRIu64 " (failed %" PRIu64
	       "), max queue %zu, unsolicited bytes %" PRIu64 ", max tick gap %.3f ms%s\n",
	       G.connect_attempts, G.connect_failures, queue_max(), G.unsolicited,
	       (double)G.max_tick_gap / 1e6, G.interrupted ? ", INTERRUPTED" : "");
	if (open_loop() && G.max_tick_gap > 2 * G.tick_ns + STALL_WARN_NS)
		printf("warning: the generator itself stalled for up to %.1f ms (busy machine?); "
		       "those stalls are in the latencies above\n",
		       (double)(G.max_tick_gap - G.tick_ns) / 1e6);
}

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static void json_hist(FILE *f, const char *name, const struct hist *h)
{
	int i;

	fprintf(f, "\"%s\": {", name);
	for (i = 0; i < N_PCTS; i++)
		fprintf(f, "\"%s\": %" PRIu64 ", ", pct_names[i], hist_percentile(h, pcts[i]));
	fprintf(f,
	        "\"min\": %" PRIu64 ", \"max\": %" PRIu64 ", \"mean\": %.1f, \"count\": %" PRIu64
	        "}",
	        h->min, h->max, h->count ? (double)h->sum / (double)h->count : 0.0, h->count);
}

static void json_stats(FILE *f, const struct stats *st)
{
	bool first = true;
	int i;

	fprintf(f, "\"scheduled\": %" PRIu64 ", \"sent\": %" PRIu64 ", \"answered\": {", st->sched,
	        st->sent);
	for (i = 1; i <= 5; i++)
		fprintf(f, "%s\"%dxx\": %" PRIu64, i > 1 ? ", " : "", i, st->cls[i]);
	fprintf(f, "}, \"errors\": {");
	for (i = 0; i < E_COUNT; i++)
		fprintf(f, "%s\"%s\": %" PRIu64, i ? ", " : "", err_names[i], st->err[i]);
	fprintf(f, "}, \"goodput_rps\": %.1f, ", goodput(st));
	json_hist(f, "latency_us", &st->lat);
	fprintf(f, ", ");
	json_hist(f, "service_us", &st->svc);
	fprintf(f, ", ");
	json_hist(f, "latency_2xx_us", &st->ok);
	fprintf(f, ", ");
	json_hist(f, "latency_shed_us", &st->shed);
	fprintf(f, ", \"status\": {");
	for (i = 0; i < N_CODES; i++) {
		if (st->codes[i]) {
			fprintf(f, "%s\"%d\": %" PRIu64, first ? "" : ", ", i, st->codes[i]);
			first = false;
		}
	}
	fprintf(f, "}");
}

static int write_json(const char *path, const struct stats *total)
{
	FILE *f = fopen(path, "w");
	int i;

	if (!f) {
		fprintf(stderr, "loadgen: %s: %s\n", path, strerror(errno));
		return -1;
	}
	fprintf(f,
	        "{\"mode\": \"%s\", \"rate\": %.1f, \"connections\": %d, "
	        "\"connections_opened\": %d, \"max_connections\": %d, \"duration_s\": %.3f, "
	        "\"timeout_s\": %.3f, \"warmup_s\": %.3f, \"start_realtime_ns\": %" PRIu64
	        ",\n \"urls\": [",
	        open_loop() ? "open" : "closed", G.rate, G.nconns, G.nopen, G.max_conns,
	        G.duration_s, (double)G.timeout_ns / 1e9, (double)G.warmup_ns / 1e9, G.start_real);
	for (i = 0; i < G.nurls; i++) {
		fprintf(f, "%s\n  {\"url\": ", i ? "," : "");
		json_string(f, G.urls[i].text);
		fprintf(f, ", \"weight\": %d, ", G.urls[i].weight);
		if (G.split)
			fprintf(f, "\"connections\": %d, \"max_queue\": %zu, ", G.pools[i].nconns,
			        G.pools[i].qmax);
		json_stats(f, &G.urls[i].st);
		fprintf(f, "}");
	}
	fprintf(f, "],\n \"total\": {");
	json_stats(f, total);
	fprintf(f,
	        "},\n \"connect_attempts\": %" PRIu64 ", \"connect_failures\": %" PRIu64
	        ", \"max_queue\": %zu, \"unsolicited\": %" PRIu64 ", \"max_tick_gap_us\": %" PRIu64
	        ", \"interrupted\": %s}\n",
	        G.connect_attempts, G.connect_failures, queue_max(), G.unsolicited,
	        (uint64_t)(G.max_tick_gap / NS_PER_US), G.interrupted ? "true" : "false");
	return fclose(f) == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------------- */
/* Options                                                                 */
/* ---------------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr,
	        "usage: loadgen --url http://HOST:PORT/PATH[@WEIGHT] [options]\n"
	        "  --url U[@W]        target URL, repeatable; W is its share of requests (1)\n"
	        "  --rate R           requests/s, open loop (1000); 0 = closed loop like wrk\n"
	        "  --connections N    keep-alive connections, one request in flight each (10)\n"
	        "  --max-connections M  open loop: when a request is due and every connection\n"
	        "                     is busy, open another, up to M in all (= N: fixed)\n"
	        "  --duration D       seconds of sending (10); then up to 5 s drain\n"
	        "  --timeout T        seconds a request may wait queued, and then in flight (5)\n"
	        "  --header 'N: v'    extra request header, repeatable\n"
	        "  --method M         request method (GET, or POST with --body-size)\n"
	        "  --body-size B      request body of B bytes with Content-Length\n"
	        "  --tick-us U        scheduler period in microseconds (1000)\n"
	        "  --json FILE        write the results as JSON too\n"
	        "  --log FILE         one line per request: due and end (us from the start),\n"
	        "                     status or error, URL index (written at the end)\n"
	        "  --progress         print one line per second to stderr\n"
	        "  --connect-first S  open loop: open every connection before the clock starts\n"
	        "                     (waiting at most S seconds)\n"
	        "  --split-connections  one pool of connections (and one queue) per URL, sized\n"
	        "                     by the weights: a slow URL does not delay the others\n"
	        "  --warmup W         send for W seconds more first; requests due then are not\n"
	        "                     counted (results cover the --duration after the warm-up)\n"
	        "All URLs must name the same host and port.\n");
	exit(2);
}

static double parse_double(const char *s, double min, double max)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= min && v <= max))
		usage();
	return v;
}

static char *xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);

	if (!p) {
		fprintf(stderr, "loadgen: out of memory\n");
		exit(1);
	}
	return p;
}

/* "http://host[:port]/path[@weight]" */
static void add_url(const char *arg)
{
	struct url *u = &G.urls[G.nurls];
	const char *at = strrchr(arg, '@');
	const char *auth, *slash, *colon;
	size_t len = strlen(arg);

	if (G.nurls == MAX_URLS)
		usage();
	u->weight = 1;
	if (at && at[1] && strspn(at + 1, "0123456789") == strlen(at + 1)) {
		u->weight = atoi(at + 1);
		len = (size_t)(at - arg);
	}
	if (u->weight < 1 || u->weight > 1000000 || strncmp(arg, "http://", 7) != 0) {
		fprintf(stderr, "loadgen: bad --url %s (http:// only, weight 1..1000000)\n", arg);
		exit(2);
	}
	u->text = xstrndup(arg, len);
	auth = u->text + 7;
	slash = strchr(auth, '/');
	u->path = slash ? xstrndup(slash, strlen(slash)) : xstrndup("/", 1);
	u->host = xstrndup(auth, slash ? (size_t)(slash - auth) : strlen(auth));
	colon = strrchr(u->host, ':');
	u->port = xstrndup(colon ? colon + 1 : "80", colon ? strlen(colon + 1) : 2);
	G.nurls++;
	G.total_weight += u->weight;
}

static void add_header(const char *h)
{
	const char *colon = strchr(h, ':');

	if (G.nheaders == MAX_HEADERS || !colon || colon == h || strpbrk(h, "\r\n")) {
		fprintf(stderr, "loadgen: bad --header '%s' (want 'Name: value')\n", h);
		exit(2);
	}
	G.headers[G.nheaders++] = h;
}

static void parse_args(int argc, char **argv)
{
	double timeout_s = 5, tick_us = 1000, warmup_s = 0;
	int i;

	G.rate = 1000;
	G.nconns = 10;
	G.duration_s = 10;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--progress") == 0) {
			G.progress = true;
			continue;
		}
		if (strcmp(a, "--split-connections") == 0) {
			G.split = true;
			continue;
		}
		if (i + 1 >= argc)
			usage();
		if (strcmp(a, "--url") == 0)
			add_url(argv[++i]);
		else if (strcmp(a, "--rate") == 0)
			G.rate = parse_double(argv[++i], 0, 1e7);
		else if (strcmp(a, "--connections") == 0)
			G.nconns = (int)parse_double(argv[++i], 1, 100000);
		else if (strcmp(a, "--max-connections") == 0)
			G.max_conns = (int)parse_double(argv[++i], 1, 1000000);
		else if (strcmp(a, "--duration") == 0)
			G.duration_s = parse_double(argv[++i], 0.001, 86400);
		else if (strcmp(a, "--timeout") == 0)
			timeout_s = parse_double(argv[++i], 0.001, 3600);
		else if (strcmp(a, "--tick-us") == 0)
			tick_us = parse_double(argv[++i], 10, 100000);
		else if (strcmp(a, "--header") == 0)
			add_header(argv[++i]);
		else if (strcmp(a, "--method") == 0)
			G.method = argv[++i];
		else if (strcmp(a, "--body-size") == 0)
			G.body_size = (size_t)parse_double(argv[++i], 0, 1 << 30);
		else if (strcmp(a, "--json") == 0)
			G.json_path = argv[++i];
		else if (strcmp(a, "--log") == 0)
			G.log_path = argv[++i];
		else if (strcmp(a, "--connect-first") == 0)
			G.connect_first_s = parse_double(argv[++i], 0, 600);
		else if (strcmp(a, "--warmup") == 0)
			warmup_s = parse_double(argv[++i], 0, 86400);
		else
			usage();
	}
	if (G.nurls == 0)
		usage();
	if (G.max_conns < G.nconns || !open_loop())
		G.max_conns = G.nconns;
	if (G.split && G.nconns < G.nurls) {
		fprintf(stderr,
		        "loadgen: --split-connections needs at least one connection per URL\n");
		exit(2);
	}
	if (!G.method)
		G.method = G.body_size ? "POST" : "GET";
	G.head_method = strcmp(G.method, "HEAD") == 0;
	G.warmup_ns = (uint64_t)(warmup_s * 1e9);
	G.duration_ns = (uint64_t)((warmup_s + G.duration_s) * 1e9);
	G.measured_s = G.duration_s;
	G.timeout_ns = (uint64_t)(timeout_s * 1e9);
	G.tick_ns = (uint64_t)(tick_us * 1e3);
	G.total_reqs = (uint64_t)(G.rate * (warmup_s + G.duration_s));
	if (G.log_path && open_loop()) {
		/* every generated request ends exactly once: no growth in the loop */
		G.log_cap = G.total_reqs + 1;
		G.log = malloc(G.log_cap * sizeof(*G.log));
		if (!G.log) {
			fprintf(stderr, "loadgen: out of memory\n");
			exit(1);
		}
	}
}

/* --log: "due_us end_us outcome url" per request, in the order they ended. */
static int write_log(void)
{
	FILE *f = fopen(G.log_path, "w");
	size_t i;

	if (!f) {
		fprintf(stderr, "loadgen: %s: %s\n", G.log_path, strerror(errno));
		return -1;
	}
	fprintf(f,
	        "# loadgen log: start_realtime_ns %" PRIu64 " rate %.1f warmup_s %.3f\n"
	        "# due_us end_us (from the start) outcome (status, or connect/reset/timeout/parse) "
	        "url\n",
	        G.start_real, G.rate, (double)G.warmup_ns / 1e9);
	for (i = 0; i < G.log_n; i++) {
		const struct logrec *r = &G.log[i];

		fprintf(f, "%" PRIu64 " %" PRIu64 " ", (uint64_t)((r->sched - G.start) / NS_PER_US),
		        (uint64_t)((r->end - G.start) / NS_PER_US));
		if (r->outcome >= 0)
			fprintf(f, "%d", r->outcome);
		else
			fputs(err_names[-1 - r->outcome], f);
		fprintf(f, " %d\n", r->url);
	}
	return fclose(f) == 0 ? 0 : -1;
}

static bool user_sent_host(void)
{
	int i;

	for (i = 0; i < G.nheaders; i++) {
		if (strncasecmp(G.headers[i], "host:", 5) == 0)
			return true;
	}
	return false;
}

/* Build the request bytes of u once; every send reuses them. */
static void build_request(struct url *u)
{
	size_t cap = strlen(G.method) + strlen(u->path) + strlen(u->host) + 128 + G.body_size;
	size_t len;
	int i;

	for (i = 0; i < G.nheaders; i++)
		cap += strlen(G.headers[i]) + 2;
	u->req = malloc(cap);
	if (!u->req) {
		fprintf(stderr, "loadgen: out of memory\n");
		exit(1);
	}
	len = (size_t)sprintf(u->req, "%s %s HTTP/1.1\r\n", G.method, u->path);
	if (!user_sent_host())
		len += (size_t)sprintf(u->req + len, "Host: %s\r\n", u->host);
	for (i = 0; i < G.nheaders; i++)
		len += (size_t)sprintf(u->req + len, "%s\r\n", G.headers[i]);
	if (G.body_size || strcmp(G.method, "POST") == 0 || strcmp(G.method, "PUT") == 0)
		len += (size_t)sprintf(u->req + len, "Content-Length: %zu\r\n", G.body_size);
	len += (size_t)sprintf(u->req + len, "\r\n");
	memset(u->req + len, 'x', G.body_size);
	u->req_len = len + G.body_size;
}

/* Resolve the (single) target once, before the clock starts. */
static void resolve_target(void)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
	char *host = xstrndup(G.urls[0].host, strlen(G.urls[0].host));
	char *colon = strrchr(host, ':');
	int i, rc;

	for (i = 1; i < G.nurls; i++) {
		if (strcmp(G.urls[i].host, G.urls[0].host) != 0) {
			fprintf(stderr, "loadgen: all --url must share host and port\n");
			exit(2);
		}
	}
	if (colon)
		*colon = '\0';
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	rc = getaddrinfo(host, G.urls[0].port, &hints, &res);
	if (rc != 0) {
		fprintf(stderr, "loadgen: %s: %s\n", host, gai_strerror(rc));
		exit(2);
	}
	memcpy(&G.addr, res->ai_addr, res->ai_addrlen);
	G.addrlen = res->ai_addrlen;
	freeaddrinfo(res);
	free(host);
}

static struct event_base *new_base(void)
{
	struct event_config *cfg = event_config_new();
	int flags = EVENT_BASE_FLAG_NOLOCK | EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST;
	struct event_base *base;

	/* Precise timers (timerfd) cost a syscall per loop: only the open loop needs them. */
	if (open_loop())
		flags |= EVENT_BASE_FLAG_PRECISE_TIMER;
	event_config_set_flag(cfg, flags);
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	if (!base) {
		fprintf(stderr, "loadgen: cannot create an event base\n");
		exit(1);
	}
	return base;
}

/* Time zero: request i is due at now + i / rate from here on. */
static void start_clock(uint64_t now)
{
	struct timeval tick = {.tv_sec = 0, .tv_usec = (suseconds_t)(G.tick_ns / NS_PER_US)};

	if (G.clock_started)
		return;
	G.clock_started = true;
	event_del(&G.connect_wait);
	G.start = now;
	G.start_real = realtime_ns() - (now_ns() - now);
	G.end = now + G.duration_ns;
	G.hard_end = G.end + DRAIN_NS;
	G.next_scan = now + SCAN_NS;
	G.next_progress = now + NS_PER_S;
	G.last_tick = 0;
	event_add(&G.tick, &tick);
	if (G.connect_first_s > 0) {
		fprintf(stderr,
		        "loadgen: clock started, %d of %d connections up (realtime %" PRIu64
		        ".%09" PRIu64 ")\n",
		        G.nconnected, G.nconns, (uint64_t)(G.start_real / NS_PER_S),
		        (uint64_t)(G.start_real % NS_PER_S));
		fflush(stderr);
	}
	if (open_loop())
		schedule_due(now);
}

static void mark_connected(struct conn *c)
{
	c->connected = true;
	c->backoff_ms = 0;
	if (++G.nconnected == G.nconns && !G.clock_started)
		start_clock(now_ns());
}

static void on_connect_wait(evutil_socket_t fd, short what, void *arg)
{
	fprintf(stderr, "loadgen: only %d of %d connections up after %.1f s; starting anyway\n",
	        G.nconnected, G.nconns, G.connect_first_s);
	start_clock(now_ns());
}

static void setup(void)
{
	uint64_t now;
	int i;

	for (i = 0; i < G.nurls; i++)
		build_request(&G.urls[i]);
	resolve_target();
	G.base = new_base();
	G.rbuf = malloc(RBUF_SIZE);
	{
		/* every connection is a descriptor: use the hard limit, and stay within it */
		struct rlimit rl;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
			if (rl.rlim_cur != RLIM_INFINITY &&
			    (rlim_t)G.max_conns + 64 > rl.rlim_cur) {
				int m = rl.rlim_cur > 64 + (rlim_t)G.nconns
				            ? (int)(rl.rlim_cur - 64)
				            : G.nconns;

				if (G.max_conns > G.nconns || m < G.nconns)
					fprintf(stderr,
					        "loadgen: open-file limit %llu: at most %d "
					        "connections\n",
					        (unsigned long long)rl.rlim_cur, m);
				G.max_conns = m > G.nconns ? m : G.nconns;
			}
		}
	}
	G.conns = calloc((size_t)G.max_conns, sizeof(*G.conns));
	if (!G.rbuf || !G.conns) {
		fprintf(stderr, "loadgen: out of memory\n");
		exit(1);
	}
	G.npools = G.split ? G.nurls : 1;
	for (i = 0; i < G.npools; i++) {
		struct pool *p = &G.pools[i];
		double share = G.split ? (double)G.urls[i].weight / G.total_weight : 1.0;

		TAILQ_INIT(&p->idle_list);
		/* room for everything that can be due within one timeout */
		while (open_loop() &&
		       p->qcap < (size_t)(G.rate * share * ((double)G.timeout_ns / 1e9 + 1)) &&
		       p->qcap < (1u << 24))
			queue_grow(p);
	}
	/* --split-connections: connections in proportion to the weights, at least 1 each */
	for (i = 0; i < G.nconns; i++) {
		int k = 0;

		if (G.split) {
			double best = -1e300;
			int j;

			/* the pool furthest below its share so far */
			for (j = 0; j < G.npools; j++) {
				double want = (double)(i + 1) * G.urls[j].weight / G.total_weight;
				double gap = want - G.pools[j].nconns;

				if (gap > best) {
					best = gap;
					k = j;
				}
			}
		}
		G.conns[i].pool = k;
		G.pools[k].nconns++;
	}
	G.nopen = G.nconns;
	for (i = 0; i < G.npools; i++) {
		double share = G.split ? (double)G.urls[i].weight / G.total_weight : 1.0;
		int m = (int)(G.max_conns * share);

		G.pools[i].max = m > G.pools[i].nconns ? m : G.pools[i].nconns;
	}
	event_assign(&G.tick, G.base, -1, EV_PERSIST, on_tick, NULL);
	evsignal_assign(&G.sigint, G.base, SIGINT, on_sigint, NULL);
	event_add(&G.sigint, NULL);
	evtimer_assign(&G.connect_wait, G.base, on_connect_wait, NULL);
	now = now_ns();
	if (!(open_loop() && G.connect_first_s > 0))
		start_clock(now);
	else {
		struct timeval tv = {.tv_sec = (time_t)G.connect_first_s,
		                     .tv_usec = (suseconds_t)((G.connect_first_s -
		                                               (double)(time_t)G.connect_first_s) *
		                                              1e6)};

		G.start = now;
		G.end = UINT64_MAX; /* until the clock starts */
		evtimer_add(&G.connect_wait, &tv);
	}
	for (i = 0; i < G.nconns; i++) {
		G.conns[i].fd = -1;
		evtimer_assign(&G.conns[i].retry, G.base, on_retry, &G.conns[i]);
		conn_connect(&G.conns[i], now);
	}
}

int main(int argc, char **argv)
{
	static struct stats total;
	int i;

	signal(SIGPIPE, SIG_IGN);
	parse_args(argc, argv);
	setup();
	event_base_dispatch(G.base);
	for (i = 0; i < G.nurls; i++)
		stats_add(&total, &G.urls[i].st);
	print_report(&total);
	if (G.json_path && write_json(G.json_path, &total) < 0)
		return 1;
	if (G.log_path && write_log() < 0)
		return 1;
	return 0;
}
