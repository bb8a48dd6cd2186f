/*
 * Upstream health (health.h): outlier detection fed by the workers, and the
 * active checker that runs on the main thread's event loop.
 */
#include "health.h"
#include "../http/response_head.h"
#include "../tls/tls_io.h"
#include "../util/alloc.h"
#include "../util/clock.h"
#include "../util/log.h"
#include "../util/log_limit.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SEC_MS  1000ull
#define MIN_MS  (60 * SEC_MS)
#define HOUR_MS (60 * MIN_MS)

/* How often the checker ends the ejections that are over (for the log). */
#define GW_HEALTH_SWEEP_MS 1000
/* Longest response head a check reads; a larger one fails the check. */
#define GW_HEALTH_MAX_HEAD 4096

/*
 * One server. Every field but address is shared by all threads.
 * Ownership: lives in its upstream's array; owns address.
 */
struct gw_health_server {
	char *address;                     /* as written in the config */
	atomic_bool up;                    /* by active checks; written by the checker only */
	atomic_uint failures;              /* failed tries in a row */
	_Atomic uint64_t ejected_until_ms; /* 0: no ejection on record */
	atomic_uint ejections;             /* so far, the one in progress included */
	_Atomic uint64_t back_ms;          /* last return (marked up, ejection over); 0: none */
	struct gw_log_limit conn_log;      /* gw_health_log_limit */
};

/*
 * One upstream. od and max_ejected are fixed at creation; nejected counts
 * the ejections on record, including ones whose time is over but that no
 * sweep has ended yet (so it errs on the side of ejecting fewer).
 * Ownership: lives in gw_health's array; owns name and servers.
 */
struct gw_health_upstream {
	char *name;
	bool outlier; /* has outlier_detection */
	struct gw_outlier_conf od;
	uint64_t slow_start_ms; /* 0: a returning server gets its full share at once */
	unsigned max_ejected;   /* servers that may be ejected at once */
	atomic_uint nejected;
	struct gw_health_server *servers;
	size_t nservers;
};

/* Ownership: the caller of gw_health_new; owns the upstream array. */
struct gw_health {
	struct gw_health_upstream *ups;
	size_t nups;
};

/* "30s", "1m", "1500ms": the largest unit that writes ms exactly. */
static void format_duration(uint64_t ms, char *buf, size_t size)
{
	if (ms != 0 && ms % HOUR_MS == 0)
		snprintf(buf, size, "%lluh", (unsigned long long)(ms / HOUR_MS));
	else if (ms != 0 && ms % MIN_MS == 0)
		snprintf(buf, size, "%llum", (unsigned long long)(ms / MIN_MS));
	else if (ms != 0 && ms % SEC_MS == 0)
		snprintf(buf, size, "%llus", (unsigned long long)(ms / SEC_MS));
	else
		snprintf(buf, size, "%llums", (unsigned long long)ms);
}

/*
 * max_ejection_percent of n servers, rounded down, except that a pool of two
 * or more may always have one server ejected: otherwise a 10% cap would
 * protect a pool of two from its own broken half. 0% is an operator saying
 * "never eject" (detection stays on for the log and /status): none.
 */
static unsigned max_ejected(size_t n, unsigned percent)
{
	size_t m = n * percent / 100;

	if (m == 0 && n >= 2 && percent > 0)
		m = 1;
	return (unsigned)m;
}

struct gw_health *gw_health_new(const struct gw_config *cfg)
{
	struct gw_health *h = gw_calloc(1, sizeof(*h));

	h->nups = cfg->nupstreams;
	h->ups = gw_calloc(h->nups ? h->nups : 1, sizeof(*h->ups));
	for (size_t i = 0; i < h->nups; i++) {
		const struct gw_upstream_conf *uc = &cfg->upstreams[i];
		struct gw_health_upstream *u = &h->ups[i];

		u->name = gw_strdup(uc->name);
		u->outlier = uc->has_outlier_detection;
		u->od = uc->outlier_detection;
		u->slow_start_ms = uc->slow_start_ms;
		u->nservers = uc->nservers;
		u->max_ejected =
		    max_ejected(uc->nservers, uc->outlier_detection.max_ejection_percent);
		atomic_init(&u->nejected, 0);
		u->servers = gw_calloc(u->nservers ? u->nservers : 1, sizeof(*u->servers));
		for (size_t s = 0; s < u->nservers; s++) {
			struct gw_health_server *hs = &u->servers[s];

			hs->address = gw_strdup(uc->servers[s].address);
			atomic_init(&hs->up, true);
			atomic_init(&hs->failures, 0);
			atomic_init(&hs->ejected_until_ms, 0);
			atomic_init(&hs->ejections, 0);
			atomic_init(&hs->back_ms, 0);
		}
	}
	return h;
}

/*
 * A reload keeps what is known of the servers that keep their upstream's
 * name and their address: a server marked down stays down until its
 * checks pass again, an ejection runs its course, the next ejection is as
 * long as if no reload had happened, and a server in its slow start goes
 * on ramping up from where it was (under the new config's slow_start).
 */
void gw_health_carry(struct gw_health *h, const struct gw_health *old)
{
	for (size_t i = 0; old && i < h->nups; i++) {
		struct gw_health_upstream *u = &h->ups[i];
		const struct gw_health_upstream *ou = NULL;
		unsigned nejected = 0;

		for (size_t j = 0; j < old->nups && !ou; j++)
			if (strcmp(old->ups[j].name, u->name) == 0)
				ou = &old->ups[j];
		for (size_t s = 0; ou && s < u->nservers; s++) {
			struct gw_health_server *hs = &u->servers[s];

			for (size_t t = 0; t < ou->nservers; t++) {
				const struct gw_health_server *os = &ou->servers[t];
				uint64_t until = atomic_load(&os->ejected_until_ms);

				if (strcmp(os->address, hs->address) != 0)
					continue;
				atomic_store(&hs->up, atomic_load(&os->up));
				atomic_store(&hs->failures, atomic_load(&os->failures));
				atomic_store(&hs->ejections, atomic_load(&os->ejections));
				atomic_store(&hs->back_ms, atomic_load(&os->back_ms));
				if (u->outlier && until) {
					atomic_store(&hs->ejected_until_ms, until);
					nejected++;
				}
				break;
			}
		}
		atomic_store(&u->nejected, nejected);
	}
}

void gw_health_free(struct gw_health *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->nups; i++) {
		for (size_t s = 0; s < h->ups[i].nservers; s++)
			free(h->ups[i].servers[s].address);
		free(h->ups[i].servers);
		free(h->ups[i].name);
	}
	free(h->ups);
	free(h);
}

static struct gw_health_server *server_of(const struct gw_health *h, size_t up, size_t srv)
{
	assert(up < h->nups && srv < h->ups[up].nservers);
	return &h->ups[up].servers[srv];
}

struct gw_log_limit *gw_health_log_limit(struct gw_health *h, size_t up, size_t srv)
{
	return &server_of(h, up, srv)->conn_log;
}

bool gw_health_is_up(const struct gw_health *h, size_t up, size_t srv)
{
	return atomic_load_explicit(&server_of(h, up, srv)->up, memory_order_relaxed);
}

bool gw_health_is_ejected(const struct gw_health *h, size_t up, size_t srv, uint64_t now_ms)
{
	uint64_t until =
	    atomic_load_explicit(&server_of(h, up, srv)->ejected_until_ms, memory_order_relaxed);

	return until != 0 && now_ms < until;
}

unsigned gw_health_ejections(const struct gw_health *h, size_t up, size_t srv)
{
	return atomic_load_explicit(&server_of(h, up, srv)->ejections, memory_order_relaxed);
}

bool gw_health_usable(const struct gw_health *h, size_t up, size_t srv, uint64_t now_ms)
{
	return gw_health_is_up(h, up, srv) && !gw_health_is_ejected(h, up, srv, now_ms);
}

/*
 * Slow start: GW_HEALTH_SHARE_MIN at the moment of the return, growing
 * linearly to GW_HEALTH_SHARE_FULL over slow_start. The return is the later
 * of the last recorded one (marked up by checks, ejection ended) and an
 * ejection whose time is over but that no one has ended yet: an ejection
 * ends when its time does (gw_health_usable), so its ramp starts then too.
 */
unsigned gw_health_share(const struct gw_health *h, size_t up, size_t srv, uint64_t now_ms)
{
	const struct gw_health_server *s = server_of(h, up, srv);
	uint64_t window = h->ups[up].slow_start_ms, back, until;

	if (window == 0)
		return GW_HEALTH_SHARE_FULL;
	back = atomic_load_explicit(&s->back_ms, memory_order_relaxed);
	until = atomic_load_explicit(&s->ejected_until_ms, memory_order_relaxed);
	if (until != 0 && until <= now_ms && until > back)
		back = until;
	if (back == 0 || now_ms >= back + window)
		return GW_HEALTH_SHARE_FULL;
	if (now_ms <= back) /* another thread's clock read a moment later */
		return GW_HEALTH_SHARE_MIN;
	return GW_HEALTH_SHARE_MIN +
	       (unsigned)((GW_HEALTH_SHARE_FULL - GW_HEALTH_SHARE_MIN) * (now_ms - back) / window);
}

/* ---- outlier detection ------------------------------------------------- */

/*
 * Ends the ejection recorded as `until` once its time is over. Whoever
 * notices first (a sweep, or a try outcome for that server) wins the
 * compare-and-swap, so the slot is given back and the return logged exactly
 * once. The server comes back with a clean failure count, and its slow
 * start counts from the end of the ejection (until), not from when the end
 * was noticed; back_ms is written before the ejection is cleared, so a
 * reader never sees the server usable without its ramp.
 */
static void end_ejection(struct gw_health_upstream *u, struct gw_health_server *s, uint64_t until,
                         uint64_t now_ms)
{
	char took[32];
	uint64_t back;
	unsigned n;

	if (until == 0 || now_ms < until)
		return;
	back = atomic_load_explicit(&s->back_ms, memory_order_relaxed);
	while (back < until &&
	       !atomic_compare_exchange_weak_explicit(&s->back_ms, &back, until,
	                                              memory_order_relaxed, memory_order_relaxed))
		;
	if (!atomic_compare_exchange_strong(&s->ejected_until_ms, &until, 0))
		return;
	atomic_store_explicit(&s->failures, 0, memory_order_relaxed);
	atomic_fetch_sub(&u->nejected, 1);
	n = atomic_load_explicit(&s->ejections, memory_order_relaxed);
	format_duration(u->od.base_ejection_time_ms * n, took, sizeof(took));
	gw_log_info("upstream %s: %s returns after ejection %u (%s)", u->name, s->address, n, took);
}

static void sweep_upstream(struct gw_health_upstream *u, uint64_t now_ms)
{
	for (size_t i = 0; i < u->nservers; i++) {
		struct gw_health_server *s = &u->servers[i];

		end_ejection(u, s, atomic_load(&s->ejected_until_ms), now_ms);
	}
}

void gw_health_sweep(struct gw_health *h, uint64_t now_ms)
{
	for (size_t i = 0; i < h->nups; i++)
		if (h->ups[i].outlier)
			sweep_upstream(&h->ups[i], now_ms);
}

/*
 * Ejects server s after its nfail-th failure in a row, without a lock
 * although any worker may get here at the same time for any server:
 *
 * 1. Reserve one of the pool's max_ejected slots with a compare-and-swap
 *    on nejected. When none is free, first end the ejections whose time is
 *    over (they hold a slot until someone notices), then try again; still
 *    none: the server stays in, its failures keep counting, and each next
 *    failure tries again, so it goes as soon as a slot frees up.
 * 2. Claim the server: compare-and-swap ejected_until_ms from 0. Losing
 *    means another thread ejected it first: give the slot back.
 *
 * The ejection lasts base_ejection_time x the server's ejections so far,
 * this one included: a server that keeps failing stays out longer each time.
 */
static void try_eject(struct gw_health_upstream *u, struct gw_health_server *s, unsigned nfail,
                      uint64_t now_ms)
{
	unsigned k = atomic_load(&u->nejected), count;
	uint64_t zero = 0, duration;
	char took[32];

	if (k >= u->max_ejected) {
		sweep_upstream(u, now_ms);
		k = atomic_load(&u->nejected);
	}
	do {
		if (k >= u->max_ejected) {
			if (nfail == u->od.consecutive_failures)
				gw_log_warn(
				    "upstream %s: %s not ejected after %u consecutive failures "
				    "(max_ejection_percent %u: at most %u of %zu servers "
				    "ejected at once)",
				    u->name, s->address, nfail, u->od.max_ejection_percent,
				    u->max_ejected, u->nservers);
			return;
		}
	} while (!atomic_compare_exchange_weak(&u->nejected, &k, k + 1));

	count = atomic_load(&s->ejections) + 1;
	duration = u->od.base_ejection_time_ms * count;
	if (!atomic_compare_exchange_strong(&s->ejected_until_ms, &zero, now_ms + duration)) {
		atomic_fetch_sub(&u->nejected, 1);
		return;
	}
	atomic_store(&s->ejections, count);
	atomic_store_explicit(&s->failures, 0, memory_order_relaxed);
	format_duration(duration, took, sizeof(took));
	gw_log_warn("upstream %s: %s ejected for %s (%u consecutive failures, ejection %u)",
	            u->name, s->address, took, nfail, count);
}

/*
 * Whether another server of the upstream still answers: not ejected, and
 * its last try (if any) did not fail. When none does, the whole upstream
 * is failing (an outage, a bad deploy everywhere): ejecting servers one
 * by one then only keeps healthy-again servers out after the outage ends,
 * and moves the same failures onto fewer servers. The breaker and the
 * retry budget are what protects an upstream that fails as a whole.
 */
static bool another_answers(const struct gw_health_upstream *u, const struct gw_health_server *s,
                            uint64_t now_ms)
{
	if (u->nservers < 2)
		return true; /* no peer to compare with: max_ejection_percent decides */
	for (size_t i = 0; i < u->nservers; i++) {
		const struct gw_health_server *o = &u->servers[i];
		uint64_t until = atomic_load_explicit(&o->ejected_until_ms, memory_order_relaxed);

		if (o == s || (until != 0 && now_ms < until))
			continue;
		if (atomic_load_explicit(&o->failures, memory_order_relaxed) == 0)
			return true;
	}
	return false;
}

/*
 * The request path: one atomic load for a success that follows a success,
 * one atomic add for a failure; the rest only when a server reaches the
 * threshold or comes back.
 */
void gw_health_record(struct gw_health *h, size_t up, size_t srv, bool failure, uint64_t now_ms)
{
	struct gw_health_upstream *u = &h->ups[up];
	struct gw_health_server *s = server_of(h, up, srv);
	uint64_t until;
	unsigned nfail;

	if (!u->outlier)
		return;
	until = atomic_load_explicit(&s->ejected_until_ms, memory_order_relaxed);
	if (until != 0) {
		if (now_ms < until)
			return; /* a try that was in flight when the server was ejected */
		end_ejection(u, s, until, now_ms);
	}
	if (!failure) {
		if (atomic_load_explicit(&s->failures, memory_order_relaxed) != 0)
			atomic_store_explicit(&s->failures, 0, memory_order_relaxed);
		return;
	}
	nfail = atomic_fetch_add_explicit(&s->failures, 1, memory_order_relaxed) + 1;
	if (nfail < u->od.consecutive_failures)
		return;
	if (another_answers(u, s, now_ms))
		try_eject(u, s, nfail, now_ms);
	else if (nfail == u->od.consecutive_failures)
		gw_log_warn(
		    "upstream %s: %s not ejected after %u consecutive failures: every other "
		    "server is failing too",
		    u->name, s->address, nfail);
}

/* ---- active checks ----------------------------------------------------- */

enum gw_probe_state {
	GW_PROBE_IDLE = 0,   /* waiting for the next check */
	GW_PROBE_CONNECTING, /* non-blocking connect in progress */
	GW_PROBE_HANDSHAKE,  /* TLS upstreams: the handshake */
	GW_PROBE_SENDING,    /* writing the request */
	GW_PROBE_READING,    /* reading the response head */
};

/*
 * The checks of one server. One timer serves both waits: between checks it
 * is the next check, during a check it is the check's timeout.
 *
 * A server of an upstream with `tls` is checked over TLS with the
 * upstream's context, SNI and verification, a full handshake every time
 * (no session reuse): a check then proves what a new connection from a
 * worker would find, a certificate gone bad included. A failed handshake
 * is a failed check, its reason in the "is down" line.
 *
 * Ownership: lives in the checker's array; owns request, tls, fd, ssl, io
 * and timer (fd, ssl and io only during a check).
 */
struct gw_probe {
	struct gw_health_checker *checker;
	size_t up, srv;
	const char *upstream; /* names and address belong to the gw_health */
	const char *address;
	struct gw_sockaddr addr;
	uint64_t interval_ms, timeout_ms;
	unsigned unhealthy_threshold, healthy_threshold;
	char *request;
	size_t request_len;
	struct gw_tls_peer *tls; /* NULL: plain TCP */

	enum gw_probe_state state;
	int fd;
	SSL *ssl;
	struct event *io;
	short io_what; /* what io waits for */
	struct event *timer;
	uint64_t started_ms;
	size_t sent;
	unsigned fails, passes; /* checks in a row */
	char head[GW_HEALTH_MAX_HEAD];
	size_t head_len;
};

/* Ownership: whoever started it; owns probes and the sweep timer. */
struct gw_health_checker {
	struct gw_health *health;
	struct event_base *base;
	struct gw_probe *probes;
	size_t nprobes;
	struct event *sweep;
};

static void probe_on_timer(evutil_socket_t fd, short what, void *arg);
static void probe_on_io(evutil_socket_t fd, short what, void *arg);

static void arm_timer(struct event *ev, uint64_t ms)
{
	struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
	                     .tv_usec = (suseconds_t)(ms % 1000) * 1000};

	evtimer_add(ev, &tv);
}

static void probe_close(struct gw_probe *p)
{
	if (p->ssl) {
		gw_tls_io_close(p->ssl, false); /* the check is over: no close_notify */
		p->ssl = NULL;
	}
	if (p->io) {
		event_free(p->io);
		p->io = NULL;
	}
	if (p->fd >= 0) {
		close(p->fd);
		p->fd = -1;
	}
}

/* Waits for what on the check's socket (replacing the previous wait). */
static void probe_wait(struct gw_probe *p, short what)
{
	if (p->io)
		event_free(p->io);
	p->io = event_new(p->checker->base, p->fd, what, probe_on_io, p);
	if (!p->io) {
		gw_log_error("health check: cannot create an event");
		abort();
	}
	p->io_what = what;
	event_add(p->io, NULL);
}

/* Waits for what a TLS call wants (want: GW_TLS_IO_WANT_*): the socket
 * readable (a persistent wait, as a plain read's) or writable. */
static void probe_wait_tls(struct gw_probe *p, enum gw_tls_io want)
{
	short what = want == GW_TLS_IO_WANT_WRITE ? EV_WRITE : EV_READ | EV_PERSIST;

	if (!p->io || p->io_what != what || !event_pending(p->io, what, NULL))
		probe_wait(p, what);
}

/*
 * The end of one check: counts it, flips the server when a threshold is
 * reached (logged once per transition), and schedules the next check.
 *
 * The next check normally starts one interval after this one started, so
 * checks keep their pace whatever they take (a check never lasts longer than
 * timeout <= interval). Not after a pass that leaves a down server down:
 * then the next check starts one interval after this answer. A down server
 * so comes back only on healthy_threshold answers at least an interval
 * apart, i.e. after it has been seen healthy for (healthy_threshold - 1)
 * intervals. Without this, a check that was in flight when a stalled server
 * resumed (a SIGSTOPed process: the kernel accepted the connection and took
 * the request, the answer came when the process ran again, within the
 * timeout) passed at once and the next check followed as little as
 * interval - timeout later: healthy_threshold 2 at interval 500ms marked
 * such a server up 0.26 s after SIGCONT (issue 10).
 */
static void probe_done(struct gw_probe *p, bool pass, const char *why)
{
	struct gw_health_server *s = server_of(p->checker->health, p->up, p->srv);
	uint64_t now = gw_clock_now_ms();
	uint64_t elapsed = now - p->started_ms;
	bool up = atomic_load_explicit(&s->up, memory_order_relaxed);

	probe_close(p);
	p->state = GW_PROBE_IDLE;
	if (pass) {
		p->fails = 0;
		p->passes++;
		if (!up && p->passes >= p->healthy_threshold) {
			atomic_store_explicit(&s->back_ms, now ? now : 1, memory_order_relaxed);
			atomic_store_explicit(&s->up, true, memory_order_relaxed);
			gw_log_info("upstream %s: %s is up (%u passed checks)", p->upstream,
			            p->address, p->passes);
		} else if (!up) {
			elapsed = 0; /* the next check one interval after this answer */
		}
	} else {
		p->passes = 0;
		p->fails++;
		if (up && p->fails >= p->unhealthy_threshold) {
			atomic_store_explicit(&s->up, false, memory_order_relaxed);
			gw_log_warn("upstream %s: %s is down (%u failed checks: %s)", p->upstream,
			            p->address, p->fails, why);
		} else {
			gw_log_debug("upstream %s: %s failed a check: %s", p->upstream, p->address,
			             why);
		}
	}
	evtimer_del(p->timer);
	arm_timer(p->timer, elapsed < p->interval_ms ? p->interval_ms - elapsed : 0);
}

/* strerror, starting in lower case as log messages do. */
static void probe_fail_errno(struct gw_probe *p, int err)
{
	char why[128];

	snprintf(why, sizeof(why), "%s", strerror(err));
	why[0] = (char)tolower((unsigned char)why[0]);
	probe_done(p, false, why);
}

static void probe_start(struct gw_probe *p)
{
	const struct sockaddr *sa = (const struct sockaddr *)&p->addr.ss;

	p->started_ms = gw_clock_now_ms();
	p->sent = 0;
	p->head_len = 0;
	p->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->fd < 0) {
		probe_fail_errno(p, errno);
		return;
	}
	p->state = GW_PROBE_CONNECTING;
	evtimer_del(p->timer);
	arm_timer(p->timer, p->timeout_ms);
	if (connect(p->fd, sa, p->addr.len) < 0 && errno != EINPROGRESS) {
		probe_fail_errno(p, errno);
		return;
	}
	probe_wait(p, EV_WRITE);
}

static void probe_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct gw_probe *p = arg;
	char why[64], took[32];

	(void)fd;
	(void)what;
	if (p->state == GW_PROBE_IDLE) {
		probe_start(p);
		return;
	}
	format_duration(p->timeout_ms, took, sizeof(took));
	snprintf(why, sizeof(why), "timed out after %s", took);
	probe_done(p, false, why);
}

/*
 * Reads more of the response head into p->head: the byte count, or 0 when
 * the check has ended or waits for the socket (both handled here).
 */
static size_t probe_recv(struct gw_probe *p)
{
	size_t room = sizeof(p->head) - p->head_len;
	enum gw_tls_io st;
	size_t got;
	ssize_t n;
	char why[128];

	if (p->ssl) {
		/* An EOF or error right after the bytes shows on the next read. */
		st = gw_tls_io_read_buf(p->ssl, p->head + p->head_len, room, &got);
		if (got > 0)
			return got;
		if (st == GW_TLS_IO_WANT_READ || st == GW_TLS_IO_WANT_WRITE) {
			probe_wait_tls(p, st);
		} else if (st == GW_TLS_IO_EOF) {
			probe_done(p, false, "connection closed before a response");
		} else {
			snprintf(why, sizeof(why), "TLS connection failed (%s)", strerror(errno));
			probe_done(p, false, why);
		}
		return 0;
	}
	for (;;) {
		n = recv(p->fd, p->head + p->head_len, room, 0);
		if (n > 0)
			return (size_t)n;
		if (n == 0) {
			probe_done(p, false, "connection closed before a response");
			return 0;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			probe_fail_errno(p, errno);
		return 0;
	}
}

/* A complete head decides: 2xx passes, anything else fails. */
static void probe_read(struct gw_probe *p)
{
	struct gw_response_head head;
	enum gw_response_parse rc;
	char why[64];
	size_t n;

	for (;;) {
		n = probe_recv(p);
		if (n == 0)
			return;
		p->head_len += n;
		rc = gw_response_head_parse(p->head, p->head_len, sizeof(p->head), false, &head);
		switch (rc) {
		case GW_RESPONSE_DONE:
			if (head.status >= 200 && head.status <= 299) {
				probe_done(p, true, NULL);
			} else {
				snprintf(why, sizeof(why), "status %d", head.status);
				probe_done(p, false, why);
			}
			return;
		case GW_RESPONSE_INCOMPLETE:
			if (p->head_len < sizeof(p->head))
				continue;
			probe_done(p, false, "response head too large");
			return;
		case GW_RESPONSE_TOO_LARGE:
			probe_done(p, false, "response head too large");
			return;
		case GW_RESPONSE_INVALID:
			probe_done(p, false, "invalid response");
			return;
		}
	}
}

/* Sends (the rest of) the request, then waits for the response. */
static void probe_send(struct gw_probe *p)
{
	enum gw_tls_io st;
	char why[128];
	size_t sent;
	ssize_t n;

	while (p->sent < p->request_len) {
		if (p->ssl) {
			st = gw_tls_io_send(p->ssl, p->request + p->sent, p->request_len - p->sent,
			                    &sent);
			p->sent += sent;
			if (st == GW_TLS_IO_OK)
				continue;
			if (st == GW_TLS_IO_WANT_READ || st == GW_TLS_IO_WANT_WRITE) {
				probe_wait_tls(p, st);
				return;
			}
			snprintf(why, sizeof(why), "TLS connection failed (%s)", strerror(errno));
			probe_done(p, false, why);
			return;
		}
		n = send(p->fd, p->request + p->sent, p->request_len - p->sent, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			probe_wait(p, EV_WRITE);
			return;
		}
		if (n < 0) {
			probe_fail_errno(p, errno);
			return;
		}
		p->sent += (size_t)n;
	}
	p->state = GW_PROBE_READING;
	probe_wait(p, EV_READ | EV_PERSIST);
}

/* One step of the TLS handshake; a failure fails the check with its reason. */
static void probe_handshake(struct gw_probe *p)
{
	char why[256], msg[300];
	enum gw_tls_io st = gw_tls_io_handshake(p->ssl, why, sizeof(why));

	switch (st) {
	case GW_TLS_IO_OK:
		p->state = GW_PROBE_SENDING;
		probe_send(p);
		return;
	case GW_TLS_IO_WANT_READ:
	case GW_TLS_IO_WANT_WRITE:
		probe_wait_tls(p, st);
		return;
	default:
		snprintf(msg, sizeof(msg), "TLS handshake failed: %s", why);
		probe_done(p, false, msg);
		return;
	}
}

/* connect -> (TLS handshake) -> send the request -> read the response head. */
static void probe_on_io(evutil_socket_t fd, short what, void *arg)
{
	struct gw_probe *p = arg;
	socklen_t len = sizeof(int);
	int err = 0;

	(void)what;
	switch (p->state) {
	case GW_PROBE_IDLE:
		return;
	case GW_PROBE_CONNECTING:
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err) {
			probe_fail_errno(p, err);
			return;
		}
		if (!p->tls) {
			p->state = GW_PROBE_SENDING;
			probe_send(p);
			return;
		}
		p->ssl = gw_tls_peer_ssl_new(p->tls, fd);
		if (!p->ssl) {
			probe_done(p, false,
			           "cannot start TLS (OpenSSL could not make a connection)");
			return;
		}
		p->state = GW_PROBE_HANDSHAKE;
		probe_handshake(p);
		return;
	case GW_PROBE_HANDSHAKE:
		probe_handshake(p);
		return;
	case GW_PROBE_SENDING:
		probe_send(p);
		return;
	case GW_PROBE_READING:
		probe_read(p);
		return;
	}
}

static void checker_on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct gw_health_checker *c = arg;

	(void)fd;
	(void)what;
	gw_health_sweep(c->health, gw_clock_now_ms());
}

static void probe_init(struct gw_probe *p, struct gw_health_checker *c,
                       const struct gw_upstream_conf *uc, size_t up, size_t srv)
{
	const struct gw_health_check_conf *hc = &uc->health_check;
	const char *fmt = "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: gateway-health-check\r\n"
	                  "Connection: close\r\n\r\n";
	const char *address = c->health->ups[up].servers[srv].address;
	int n;

	p->checker = c;
	p->up = up;
	p->srv = srv;
	p->upstream = c->health->ups[up].name;
	p->address = address;
	p->addr = uc->servers[srv].addr;
	p->interval_ms = hc->interval_ms;
	p->timeout_ms = hc->timeout_ms;
	p->unhealthy_threshold = hc->unhealthy_threshold;
	p->healthy_threshold = hc->healthy_threshold;
	n = snprintf(NULL, 0, fmt, hc->path, address);
	p->request = gw_malloc((size_t)n + 1);
	snprintf(p->request, (size_t)n + 1, fmt, hc->path, address);
	p->request_len = (size_t)n;
	if (uc->tls)
		p->tls = gw_tls_peer_new(uc->tls, address);
	p->state = GW_PROBE_IDLE;
	p->fd = -1;
	p->timer = evtimer_new(c->base, probe_on_timer, p);
	if (!p->timer) {
		gw_log_error("health check: cannot create a timer");
		abort();
	}
	arm_timer(p->timer, 0); /* the first check right away */
}

struct gw_health_checker *gw_health_checker_start(struct gw_health *h, const struct gw_config *cfg,
                                                  struct event_base *base)
{
	struct gw_health_checker *c = gw_calloc(1, sizeof(*c));
	bool outlier = false;
	size_t n = 0;

	c->health = h;
	c->base = base;
	for (size_t u = 0; u < cfg->nupstreams; u++) {
		if (cfg->upstreams[u].has_health_check)
			n += cfg->upstreams[u].nservers;
		outlier = outlier || cfg->upstreams[u].has_outlier_detection;
	}
	c->probes = gw_calloc(n ? n : 1, sizeof(*c->probes));
	for (size_t u = 0; u < cfg->nupstreams; u++) {
		if (!cfg->upstreams[u].has_health_check)
			continue;
		for (size_t s = 0; s < cfg->upstreams[u].nservers; s++)
			probe_init(&c->probes[c->nprobes++], c, &cfg->upstreams[u], u, s);
	}
	if (outlier) {
		struct timeval tv = {.tv_sec = GW_HEALTH_SWEEP_MS / 1000,
		                     .tv_usec = (GW_HEALTH_SWEEP_MS % 1000) * 1000};

		c->sweep = event_new(base, -1, EV_PERSIST, checker_on_sweep, c);
		if (!c->sweep) {
			gw_log_error("health check: cannot create a timer");
			abort();
		}
		event_add(c->sweep, &tv);
	}
	return c;
}

void gw_health_checker_stop(struct gw_health_checker *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nprobes; i++) {
		probe_close(&c->probes[i]);
		event_free(c->probes[i].timer);
		free(c->probes[i].request);
		gw_tls_peer_free(c->probes[i].tls);
	}
	if (c->sweep)
		event_free(c->sweep);
	free(c->probes);
	free(c);
}
