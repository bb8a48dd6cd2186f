/*
 * Upstream health (gateway/upstream/health.h):
 *
 *   - outlier detection driven by a fake clock: when a server is ejected,
 *     for how long, when it comes back, and the max_ejection_percent cap,
 *     also under concurrent workers;
 *   - active checks against real loopback listeners run by this test on the
 *     checker's own event loop (one answers 200, one 500, one port closed,
 *     one accepts and never answers), each loop run bounded by a deadline;
 *   - the health_check and outlier_detection config keys, with their exact
 *     error messages.
 *
 * Log lines go to stderr; tests that count them capture it in a temporary
 * file (each test runs in its own process).
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gateway/config/config.h"
#include "gateway/upstream/health.h"
#include "gateway/util/clock.h"
#include "gateway/util/errlist.h"
#include "check_suite.h"

/* ---- helpers: config --------------------------------------------------- */

static struct gw_config *load_ok(const char *yaml)
{
	struct gw_errlist errs = {0};
	struct gw_config *cfg = gw_config_load_string("test.yaml", yaml, &errs);

	ck_assert_msg(cfg != NULL && errs.count == 0, "should load, first error: %s\n%s",
	              errs.count ? errs.items[0] : "(none)", yaml);
	gw_errlist_free(&errs);
	return cfg;
}

/*
 * One upstream "u" of n servers 127.0.0.1:9001.. and one route, plus extra
 * lines under the upstream (indented by four spaces).
 */
static struct gw_config *load_pool(size_t n, const char *extra)
{
	char yaml[4096];
	size_t len;

	len = (size_t)snprintf(yaml, sizeof(yaml), "upstreams:\n  u:\n    servers:\n");
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(yaml + len, sizeof(yaml) - len,
		                        "      - \"127.0.0.1:%zu\"\n", 9001 + i);
	snprintf(yaml + len, sizeof(yaml) - len, "%s\nroutes:\n  - { name: r, upstream: u }\n",
	         extra);
	return load_ok(yaml);
}

/* Loads yaml expecting failure with exactly the errors given (NULL-ended). */
static void load_fails(const char *yaml, ...)
{
	struct gw_errlist errs = {0};
	struct gw_config *cfg = gw_config_load_string("mem.yaml", yaml, &errs);
	const char *want;
	size_t i = 0;
	va_list ap;

	ck_assert_msg(cfg == NULL, "should fail:\n%s", yaml);
	va_start(ap, yaml);
	while ((want = va_arg(ap, const char *)) != NULL) {
		ck_assert_msg(i < errs.count, "missing error %zu: %s", i + 1, want);
		ck_assert_msg(strcmp(errs.items[i], want) == 0,
		              "error %zu:\n  expected %s\n  got      %s", i + 1, want,
		              errs.items[i]);
		i++;
	}
	va_end(ap);
	ck_assert_msg(i == errs.count, "%zu errors more than expected, first: %s", errs.count - i,
	              errs.count > i ? errs.items[i] : "");
	gw_errlist_free(&errs);
}

/* ---- helpers: captured log --------------------------------------------- */

static FILE *log_file;

static void capture_log(void)
{
	log_file = tmpfile();
	ck_assert_ptr_nonnull(log_file);
	fflush(stderr);
	ck_assert_int_ge(dup2(fileno(log_file), STDERR_FILENO), 0);
}

/* How many captured log lines contain text. */
static unsigned log_count(const char *text)
{
	char line[2048];
	unsigned n = 0;

	fflush(stderr);
	rewind(log_file);
	while (fgets(line, sizeof(line), log_file))
		if (strstr(line, text))
			n++;
	return n;
}

/* ---- outlier detection ------------------------------------------------- */

#define OD_5_10S "    outlier_detection: { consecutive_failures: 5, base_ejection_time: 10s }"

static void fail_n(struct gw_health *h, size_t srv, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		gw_health_record(h, 0, srv, true, gw_clock_now_ms());
}

START_TEST(outlier_ejects_exactly_at_consecutive_failures)
{
	struct gw_config *cfg = load_pool(2, OD_5_10S);
	struct gw_health *h = gw_health_new(cfg);

	capture_log();
	gw_clock_set_fake(1000);
	fail_n(h, 0, 4);
	ck_assert(gw_health_usable(h, 0, 0, 1000));
	ck_assert(!gw_health_is_ejected(h, 0, 0, 1000));
	ck_assert_uint_eq(gw_health_ejections(h, 0, 0), 0);
	fail_n(h, 0, 1);
	ck_assert(!gw_health_usable(h, 0, 0, 1000));
	ck_assert(gw_health_is_ejected(h, 0, 0, 1000));
	ck_assert(gw_health_is_up(h, 0, 0)); /* ejected is not down */
	ck_assert_uint_eq(gw_health_ejections(h, 0, 0), 1);
	ck_assert(gw_health_usable(h, 0, 1, 1000));
	ck_assert_uint_eq(
	    log_count("upstream u: 127.0.0.1:9001 ejected for 10s (5 consecutive failures, "
	              "ejection 1)"),
	    1);
	gw_health_free(h);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(outlier_success_in_between_resets_the_count)
{
	struct gw_config *cfg = load_pool(2, OD_5_10S);
	struct gw_health *h = gw_health_new(cfg);

	gw_clock_set_fake(1000);
	fail_n(h, 0, 4);
	gw_health_record(h, 0, 0, false, 1000);
	fail_n(h, 0, 4);
	ck_assert(gw_health_usable(h, 0, 0, 1000));
	ck_assert_uint_eq(gw_health_ejections(h, 0, 0), 0);
	fail_n(h, 0, 1);
	ck_assert(!gw_health_usable(h, 0, 0, 1000));
	ck_assert(gw_health_usable(h, 0, 1, 1000)); /* counts are per server */
	gw_health_free(h);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(outlier_ejection_time_is_base_times_ejection_count)
{
	struct gw_config *cfg = load_pool(2, OD_5_10S);
	struct gw_health *h = gw_health_new(cfg);

	capture_log();
	gw_clock_set_fake(1000);
	fail_n(h, 0, 5); /* ejection 1: 10s, until 11000 */
	ck_assert(!gw_health_usable(h, 0, 0, 10999));
	ck_assert(gw_health_usable(h, 0, 0, 11000));
	gw_clock_set_fake(11000);
	fail_n(h, 0, 5); /* ejection 2: 20s, until 31000 */
	ck_assert_uint_eq(gw_health_ejections(h, 0, 0), 2);
	ck_assert(!gw_health_usable(h, 0, 0, 30999));
	ck_assert(gw_health_usable(h, 0, 0, 31000));
	gw_clock_set_fake(31000);
	fail_n(h, 0, 5); /* ejection 3: 30s */
	ck_assert(!gw_health_usable(h, 0, 0, 60999));
	ck_assert(gw_health_usable(h, 0, 0, 61000));
	ck_assert_uint_eq(log_count("127.0.0.1:9001 ejected for 20s (5 consecutive failures, "
	                            "ejection 2)"),
	                  1);
	ck_assert_uint_eq(log_count("127.0.0.1:9001 ejected for 30s (5 consecutive failures, "
	                            "ejection 3)"),
	                  1);
	gw_health_free(h);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(outlier_server_returns_after_its_time_with_a_fresh_count)
{
	struct gw_config *cfg = load_pool(2, OD_5_10S);
	struct gw_health *h = gw_health_new(cfg);

	capture_log();
	gw_clock_set_fake(1000);
	fail_n(h, 0, 5);
	/* tries still in flight when it was ejected do not count */
	gw_clock_advance_fake(5000);
	fail_n(h, 0, 20);
	ck_assert_uint_eq(gw_health_ejections(h, 0, 0), 1);
	ck_assert(!gw_health_usable(h, 0, 0, gw_clock_now_ms()));

	gw_clock_advance_fake(5000); /* 11000: the time is over */
	ck_assert(gw_health_usable(h, 0, 0, gw_clock_now_ms()));
	ck_assert(!gw_health_is_ejected(h, 0, 0, gw_clock_now_ms()));
	gw_health_sweep(h, gw_clock_now_ms());
	gw_health_sweep(h, gw_clock_now_ms());
	ck_assert_uint_eq(log_count("upstream u: 127.0.0.1:9001 returns after ejection 1 (10s)"),
	                  1);
	/* its consecutive count starts again from zero */
	fail_n(h, 0, 4);
	ck_assert(gw_health_usable(h, 0, 0, gw_clock_now_ms()));
	fail_n(h, 0, 1);
	ck_assert(!gw_health_usable(h, 0, 0, gw_clock_now_ms()));
	ck_assert_uint_eq(gw_health_ejections(h, 0, 0), 2);
	gw_health_free(h);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(outlier_return_without_sweep_is_noticed_by_the_next_try)
{
	struct gw_config *cfg = load_pool(2, OD_5_10S);
	struct gw_health *h = gw_health_new(cfg);

	capture_log();
	gw_clock_set_fake(1000);
	fail_n(h, 0, 5);
	gw_clock_set_fake(11000);
	gw_health_record(h, 0, 0, false, 11000);
	ck_assert_uint_eq(log_count("127.0.0.1:9001 returns after ejection 1"), 1);
	gw_health_free(h);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(outlier_max_ejection_percent_caps_ejected_servers)
{
	struct gw_config *cfg = load_pool(
	    10, "    outlier_detection: { consecutive_failures: 5, base_ejection_time: 10s, "
	        "max_ejection_percent: 30 }");
	struct gw_health *h = gw_health_new(cfg);

	capture_log();
	gw_clock_set_fake(1000);
	for (size_t s = 0; s < 3; s++)
		fail_n(h, s, 5);
	for (size_t s = 0; s < 3; s++)
		ck_assert(gw_health_is_ejected(h, 0, s, 1000));
	/* the 4th would make 40% */
	fail_n(h, 3, 5);
	ck_assert(!gw_health_is_ejected(h, 0, 3, 1000));
	ck_assert(gw_health_usable(h, 0, 3, 1000));
	fail_n(h, 3, 10);
	ck_assert(gw_health_usable(h, 0, 3, 1000));
	ck_assert_uint_eq(gw_health_ejections(h, 0, 3), 0);
	ck_assert_uint_eq(log_count("127.0.0.1:9004 not ejected after 5 consecutive failures "
	                            "(max_ejection_percent 30: at most 3 of 10 servers ejected "
	                            "at once)"),
	                  1);
	/* once the others are back, its next failure ejects it */
	gw_clock_set_fake(11000);
	fail_n(h, 3, 1);
	ck_assert(gw_health_is_ejected(h, 0, 3, 11000));
	ck_assert_uint_eq(gw_health_ejections(h, 0, 3), 1);
	gw_health_free(h);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(outlier_pool_of_two_ejects_one_never_both)
{
	struct gw_config *cfg = load_pool(
	    2, "    outlier_detection: { consecutive_failures: 5, base_ejection_time: 10s, "
	       "max_ejection_percent: 10 }");
	struct gw_health *h = gw_health_new(cfg);

	gw_clock_set_fake(1000);
	fail_n(h, 0, 5);
	ck_assert(gw_health_is_ejected(h, 0, 0, 1000));
	fail_n(h, 1, 50);
	ck_assert(!gw_health_is_ejected(h, 0, 1, 1000));
	ck_assert(gw_health_usable(h, 0, 1, 1000));
	gw_health_free(h);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(outlier_single_server_pool_follows_the_percent)
{
	struct gw_config *cfg10 = load_pool(1, OD_5_10S); /* default 10% */
	struct gw_config *cfg100 = load_pool(
	    1, "    outlier_detection: { consecutive_failures: 5, max_ejection_percent: 100 }");
	struct gw_health *h10 = gw_health_new(cfg10), *h100 = gw_health_new(cfg100);

	gw_clock_set_fake(1000);
	for (int i = 0; i < 10; i++) {
		gw_health_record(h10, 0, 0, true, 1000);
		gw_health_record(h100, 0, 0, true, 1000);
	}
	ck_assert(gw_health_usable(h10, 0, 0, 1000));
	ck_assert(!gw_health_usable(h100, 0, 0, 1000));
	/* 30s, the default base */
	ck_assert(!gw_health_usable(h100, 0, 0, 30999));
	ck_assert(gw_health_usable(h100, 0, 0, 31000));
	gw_health_free(h10);
	gw_health_free(h100);
	gw_config_unref(cfg10);
	gw_config_unref(cfg100);
}
END_TEST

START_TEST(outlier_off_without_the_key)
{
	struct gw_config *cfg = load_pool(2, "");
	struct gw_health *h = gw_health_new(cfg);

	gw_clock_set_fake(1000);
	fail_n(h, 0, 1000);
	ck_assert(gw_health_usable(h, 0, 0, 1000));
	ck_assert(gw_health_is_up(h, 0, 0));
	ck_assert_uint_eq(gw_health_ejections(h, 0, 0), 0);
	gw_health_free(h);
	gw_config_unref(cfg);
}
END_TEST

/* Workers reporting failures for every server of one pool at once. */
struct hammer {
	struct gw_health *h;
	size_t nservers;
};

static void *hammer_run(void *arg)
{
	struct hammer *hm = arg;

	for (int i = 0; i < 2000; i++)
		for (size_t s = 0; s < hm->nservers; s++)
			gw_health_record(hm->h, 0, s, true, 1000);
	return NULL;
}

START_TEST(outlier_cap_holds_under_concurrent_workers)
{
	struct gw_config *cfg = load_pool(
	    10, "    outlier_detection: { consecutive_failures: 1, base_ejection_time: 10s, "
	        "max_ejection_percent: 30 }");
	struct gw_health *h = gw_health_new(cfg);
	struct hammer hm = {.h = h, .nservers = 10};
	pthread_t threads[8];
	unsigned ejected = 0, ejections = 0;

	capture_log(); /* keeps the refusals out of the test output */
	for (size_t i = 0; i < 8; i++)
		ck_assert_int_eq(pthread_create(&threads[i], NULL, hammer_run, &hm), 0);
	for (size_t i = 0; i < 8; i++)
		pthread_join(threads[i], NULL);
	for (size_t s = 0; s < 10; s++) {
		ejected += gw_health_is_ejected(h, 0, s, 1000);
		ejections += gw_health_ejections(h, 0, s);
	}
	ck_assert_uint_eq(ejected, 3);
	ck_assert_uint_eq(ejections, 3);
	gw_health_free(h);
	gw_config_unref(cfg);
}
END_TEST

/* ---- active checks: loopback stubs on the test's event loop ------------ */

#define STUB_MAX_CONNS    64
#define STUB_MAX_REQUESTS 64

/*
 * A loopback HTTP server run by the same event loop as the checker.
 * status > 0: answers every request head with it; 0: reads the request and
 * never answers; -1: answers garbage. From request switch_at on (counting
 * from 0), status_after replaces status when switch_at is not 0.
 * up_at[i] is what the health state said of the server when request i
 * arrived: since the checker decides a check before it starts the next one,
 * it shows exactly after which check the server flipped, however late the
 * test looks.
 * Ownership: the test owns the stub; the stub owns its sockets and events.
 */
struct stub {
	struct event_base *base;
	int lfd;
	unsigned port;
	int status, status_after;
	unsigned switch_at;
	const struct gw_health *h; /* the server watched for up_at */
	size_t srv;
	unsigned accepted;
	unsigned requests;
	bool up_at[STUB_MAX_REQUESTS];
	char first_request[1024];
	struct event *accept_ev;
	struct stub_conn {
		struct stub *stub;
		int fd;
		struct event *ev;
		char buf[1024];
		size_t len;
	} conns[STUB_MAX_CONNS];
};

static void stub_conn_close(struct stub_conn *c)
{
	event_free(c->ev);
	close(c->fd);
	c->ev = NULL;
	c->fd = -1;
}

static void stub_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct stub_conn *c = arg;
	struct stub *st = c->stub;
	char resp[128];
	ssize_t n;
	int status;

	(void)what;
	n = recv(fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, 0);
	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			stub_conn_close(c);
		return;
	}
	c->len += (size_t)n;
	c->buf[c->len] = '\0';
	if (!strstr(c->buf, "\r\n\r\n"))
		return;
	if (st->requests == 0)
		snprintf(st->first_request, sizeof(st->first_request), "%s", c->buf);
	if (st->h && st->requests < STUB_MAX_REQUESTS)
		st->up_at[st->requests] = gw_health_is_up(st->h, 0, st->srv);
	status = st->switch_at && st->requests >= st->switch_at ? st->status_after : st->status;
	st->requests++;
	c->len = 0;
	if (status == 0)
		return;
	if (status < 0)
		snprintf(resp, sizeof(resp), "garbage\r\n\r\n");
	else
		snprintf(resp, sizeof(resp),
		         "HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", status);
	ck_assert_int_eq(send(fd, resp, strlen(resp), MSG_NOSIGNAL), (ssize_t)strlen(resp));
	stub_conn_close(c);
}

static void stub_on_accept(evutil_socket_t fd, short what, void *arg)
{
	struct stub *st = arg;
	int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	struct stub_conn *c = NULL;

	(void)what;
	if (cfd < 0)
		return;
	for (size_t i = 0; i < STUB_MAX_CONNS && !c; i++)
		if (st->conns[i].fd < 0)
			c = &st->conns[i];
	ck_assert_msg(c != NULL, "stub: too many connections");
	st->accepted++;
	c->stub = st;
	c->fd = cfd;
	c->len = 0;
	c->ev = event_new(st->base, cfd, EV_READ | EV_PERSIST, stub_on_read, c);
	event_add(c->ev, NULL);
}

/* A bound 127.0.0.1 socket on a free port; *port gets the port. */
static int bind_loopback(unsigned *port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

static void stub_start(struct stub *st, struct event_base *base, int status)
{
	memset(st, 0, sizeof(*st));
	st->base = base;
	st->status = status;
	for (size_t i = 0; i < STUB_MAX_CONNS; i++)
		st->conns[i].fd = -1;
	st->lfd = bind_loopback(&st->port);
	ck_assert_int_eq(listen(st->lfd, 16), 0);
	st->accept_ev = event_new(base, st->lfd, EV_READ | EV_PERSIST, stub_on_accept, st);
	event_add(st->accept_ev, NULL);
}

static void stub_stop(struct stub *st)
{
	for (size_t i = 0; i < STUB_MAX_CONNS; i++)
		if (st->conns[i].fd >= 0)
			stub_conn_close(&st->conns[i]);
	event_free(st->accept_ev);
	close(st->lfd);
}

/*
 * A port where nothing listens: bound but not listening, so connections are
 * refused and no other test can take the port meanwhile. Close *fd after.
 */
static unsigned refusing_port(int *fd)
{
	unsigned port;

	*fd = bind_loopback(&port);
	return port;
}

/*
 * Runs the loop until cond holds, polling it every 2 ms, or until
 * deadline_ms has passed. Returns whether cond holds.
 */
struct run_ctx {
	struct event_base *base;
	bool (*cond)(void *arg);
	void *arg;
};

static void run_on_poll(evutil_socket_t fd, short what, void *arg)
{
	struct run_ctx *r = arg;

	(void)fd;
	(void)what;
	if (r->cond(r->arg))
		event_base_loopbreak(r->base);
}

static void run_on_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

static bool run_until(struct event_base *base, bool (*cond)(void *), void *arg,
                      unsigned deadline_ms)
{
	struct run_ctx r = {.base = base, .cond = cond, .arg = arg};
	struct timeval poll_tv = {0, 2000};
	struct timeval deadline_tv = {deadline_ms / 1000, (deadline_ms % 1000) * 1000};
	struct event *poll = event_new(base, -1, EV_PERSIST, run_on_poll, &r);
	struct event *deadline = evtimer_new(base, run_on_deadline, base);

	event_add(poll, &poll_tv);
	evtimer_add(deadline, &deadline_tv);
	if (!cond(arg))
		event_base_loop(base, 0);
	event_free(poll);
	event_free(deadline);
	return cond(arg);
}

/* What the conditions look at. */
struct watch {
	struct gw_health *h;
	size_t srv, nsrv;
	struct stub *stub;
	unsigned min_requests;
	bool settled[8]; /* per server, the state expected at the end */
};

static bool watch_down(void *arg)
{
	struct watch *w = arg;

	return !gw_health_is_up(w->h, 0, w->srv);
}

static bool watch_requests(void *arg)
{
	struct watch *w = arg;

	return w->stub->requests >= w->min_requests;
}

static bool watch_all_settled(void *arg)
{
	struct watch *w = arg;

	for (size_t s = 0; s < w->nsrv; s++)
		if (gw_health_is_up(w->h, 0, s) != w->settled[s])
			return false;
	return true;
}

/* "1101": the stub's up_at for its first n requests. */
static const char *up_at(const struct stub *st, unsigned n)
{
	static char buf[STUB_MAX_REQUESTS + 1];

	for (unsigned i = 0; i < n && i < STUB_MAX_REQUESTS; i++)
		buf[i] = st->up_at[i] ? '1' : '0';
	buf[n < STUB_MAX_REQUESTS ? n : STUB_MAX_REQUESTS] = '\0';
	return buf;
}

/* Config of upstream "u" over the given ports with a health_check. */
static struct gw_config *load_checked(const unsigned *ports, size_t n, const char *health_check)
{
	char yaml[2048];
	size_t len;

	len = (size_t)snprintf(yaml, sizeof(yaml), "upstreams:\n  u:\n    servers:\n");
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(yaml + len, sizeof(yaml) - len,
		                        "      - \"127.0.0.1:%u\"\n", ports[i]);
	snprintf(yaml + len, sizeof(yaml) - len,
	         "    health_check: %s\nroutes:\n  - { name: r, upstream: u }\n", health_check);
	return load_ok(yaml);
}

#define FAST_CHECKS                                                                                \
	"{ path: /ready, interval: 100ms, timeout: 20ms, unhealthy_threshold: 3, "                 \
	"healthy_threshold: 2 }"

START_TEST(active_check_sends_the_documented_request_and_starts_at_once)
{
	struct event_base *base = event_base_new();
	struct stub ok;
	struct gw_config *cfg;
	struct gw_health *h;
	struct gw_health_checker *c;
	struct watch w = {.stub = &ok, .min_requests = 1};
	char want[256];

	stub_start(&ok, base, 200);
	/* interval 1h: only a check made at start can arrive in time */
	cfg = load_checked(&ok.port, 1, "{ path: /ready?deep=1, interval: 1h, timeout: 1s }");
	h = gw_health_new(cfg);
	c = gw_health_checker_start(h, cfg, base);
	ck_assert(run_until(base, watch_requests, &w, 2000));
	snprintf(want, sizeof(want),
	         "GET /ready?deep=1 HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nUser-Agent: "
	         "gateway-health-check\r\nConnection: close\r\n\r\n",
	         ok.port);
	ck_assert_str_eq(ok.first_request, want);
	ck_assert(gw_health_is_up(h, 0, 0));
	gw_health_checker_stop(c);
	stub_stop(&ok);
	gw_health_free(h);
	gw_config_unref(cfg);
	event_base_free(base);
}
END_TEST

START_TEST(active_check_500_marks_down_at_threshold_then_up_again)
{
	struct event_base *base = event_base_new();
	struct stub st;
	struct gw_config *cfg;
	struct gw_health *h;
	struct gw_health_checker *c;
	struct watch w = {.stub = &st, .min_requests = 7};
	char down[128], up[128];

	capture_log();
	stub_start(&st, base, 500);
	st.status_after = 204; /* 500 x3, then 204 */
	st.switch_at = 3;
	cfg = load_checked(&st.port, 1, FAST_CHECKS);
	h = gw_health_new(cfg);
	st.h = h;
	ck_assert(gw_health_is_up(h, 0, 0)); /* servers start up */
	c = gw_health_checker_start(h, cfg, base);
	ck_assert(run_until(base, watch_requests, &w, 5000));
	/* up through three 500s, down after the third, up after two 204s */
	ck_assert_str_eq(up_at(&st, 7), "1110011");
	ck_assert(gw_health_usable(h, 0, 0, gw_clock_now_ms()));
	gw_health_checker_stop(c);
	snprintf(down, sizeof(down),
	         "upstream u: 127.0.0.1:%u is down (3 failed checks: status 500)", st.port);
	snprintf(up, sizeof(up), "upstream u: 127.0.0.1:%u is up (2 passed checks)", st.port);
	ck_assert_uint_eq(log_count(down), 1);
	ck_assert_uint_eq(log_count(up), 1);
	stub_stop(&st);
	gw_health_free(h);
	gw_config_unref(cfg);
	event_base_free(base);
}
END_TEST

START_TEST(active_check_refused_connection_marks_down)
{
	struct event_base *base = event_base_new();
	int fd;
	unsigned port = refusing_port(&fd);
	struct gw_config *cfg = load_checked(&port, 1, FAST_CHECKS);
	struct gw_health *h = gw_health_new(cfg);
	struct gw_health_checker *c;
	struct watch w = {.h = h, .srv = 0};
	uint64_t start = gw_clock_now_ms();
	char down[128];

	capture_log();
	c = gw_health_checker_start(h, cfg, base);
	ck_assert(run_until(base, watch_down, &w, 5000));
	ck_assert(!gw_health_usable(h, 0, 0, gw_clock_now_ms()));
	/* checks at 0, 100 and 200 ms: three failures take two intervals
	 * (less a few ms: libevent times from its cached loop time) */
	ck_assert_uint_ge(gw_clock_now_ms() - start, 190);
	snprintf(down, sizeof(down),
	         "upstream u: 127.0.0.1:%u is down (3 failed checks: connection refused)", port);
	ck_assert_uint_eq(log_count(down), 1);
	gw_health_checker_stop(c);
	close(fd);
	gw_health_free(h);
	gw_config_unref(cfg);
	event_base_free(base);
}
END_TEST

START_TEST(active_check_silent_server_times_out)
{
	struct event_base *base = event_base_new();
	struct stub st;
	struct gw_config *cfg;
	struct gw_health *h;
	struct gw_health_checker *c;
	struct watch w = {.stub = &st, .min_requests = 4};
	uint64_t start;
	char down[128];

	capture_log();
	stub_start(&st, base, 0);
	cfg = load_checked(&st.port, 1, FAST_CHECKS);
	h = gw_health_new(cfg);
	st.h = h;
	start = gw_clock_now_ms();
	c = gw_health_checker_start(h, cfg, base);
	ck_assert(run_until(base, watch_requests, &w, 5000));
	/* the fourth check starts at 300 ms, after three that waited 20 ms */
	ck_assert_uint_ge(gw_clock_now_ms() - start, 290);
	ck_assert_str_eq(up_at(&st, 4), "1110");
	snprintf(down, sizeof(down),
	         "upstream u: 127.0.0.1:%u is down (3 failed checks: timed out after 20ms)",
	         st.port);
	ck_assert_uint_eq(log_count(down), 1);
	gw_health_checker_stop(c); /* with a check in flight or not: no leak */
	stub_stop(&st);
	gw_health_free(h);
	gw_config_unref(cfg);
	event_base_free(base);
}
END_TEST

START_TEST(active_check_invalid_response_fails)
{
	struct event_base *base = event_base_new();
	struct stub st;
	struct gw_config *cfg;
	struct gw_health *h;
	struct gw_health_checker *c;
	struct watch w = {.stub = &st, .min_requests = 2};

	capture_log();
	stub_start(&st, base, -1);
	cfg =
	    load_checked(&st.port, 1, "{ interval: 100ms, timeout: 20ms, unhealthy_threshold: 1 }");
	h = gw_health_new(cfg);
	st.h = h;
	c = gw_health_checker_start(h, cfg, base);
	ck_assert(run_until(base, watch_requests, &w, 5000));
	ck_assert_str_eq(up_at(&st, 2), "10");
	ck_assert_uint_eq(log_count("is down (1 failed checks: invalid response)"), 1);
	/* the default path */
	ck_assert(strncmp(st.first_request, "GET /healthz HTTP/1.1\r\n", 23) == 0);
	gw_health_checker_stop(c);
	stub_stop(&st);
	gw_health_free(h);
	gw_config_unref(cfg);
	event_base_free(base);
}
END_TEST

START_TEST(active_check_mixed_pool_only_failing_servers_go_down)
{
	struct event_base *base = event_base_new();
	struct stub ok, bad, silent;
	unsigned ports[4];
	int refusing;
	struct gw_config *cfg;
	struct gw_health *h;
	struct gw_health_checker *c;
	struct watch w = {.nsrv = 4, .settled = {true, false, false, false}};

	capture_log();
	stub_start(&ok, base, 200);
	stub_start(&bad, base, 500);
	stub_start(&silent, base, 0);
	ports[0] = ok.port;
	ports[1] = bad.port;
	ports[2] = refusing_port(&refusing);
	ports[3] = silent.port;
	cfg = load_checked(ports, 4, FAST_CHECKS);
	h = gw_health_new(cfg);
	w.h = h;
	c = gw_health_checker_start(h, cfg, base);
	ck_assert(run_until(base, watch_all_settled, &w, 5000));
	ck_assert(gw_health_usable(h, 0, 0, gw_clock_now_ms()));
	for (size_t s = 1; s < 4; s++)
		ck_assert(!gw_health_usable(h, 0, s, gw_clock_now_ms()));
	ck_assert_uint_ge(ok.requests, 3);
	ck_assert_uint_eq(log_count(" is down ("), 3);
	ck_assert_uint_eq(log_count(" is up ("), 0);
	gw_health_checker_stop(c);
	stub_stop(&ok);
	stub_stop(&bad);
	stub_stop(&silent);
	close(refusing);
	gw_health_free(h);
	gw_config_unref(cfg);
	event_base_free(base);
}
END_TEST

START_TEST(active_checks_only_for_upstreams_with_the_key)
{
	struct event_base *base = event_base_new();
	struct gw_config *cfg = load_pool(2, "");
	struct gw_health *h = gw_health_new(cfg);
	struct gw_health_checker *c = gw_health_checker_start(h, cfg, base);

	/* nothing scheduled: the loop has no events and returns at once */
	ck_assert_int_eq(event_base_loop(base, EVLOOP_NONBLOCK), 1);
	ck_assert(gw_health_is_up(h, 0, 0));
	gw_health_checker_stop(c);
	gw_health_checker_stop(NULL);
	gw_health_free(h);
	gw_health_free(NULL);
	gw_config_unref(cfg);
	event_base_free(base);
}
END_TEST

/* ---- configuration ----------------------------------------------------- */

START_TEST(config_keys_absent_mean_off)
{
	struct gw_config *cfg = load_pool(1, "");

	ck_assert(!cfg->upstreams[0].has_health_check);
	ck_assert(!cfg->upstreams[0].has_outlier_detection);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(config_empty_mappings_take_every_default)
{
	struct gw_config *cfg = load_pool(1, "    health_check: {}\n    outlier_detection: {}");
	const struct gw_upstream_conf *u = &cfg->upstreams[0];

	ck_assert(u->has_health_check);
	ck_assert_str_eq(u->health_check.path, "/healthz");
	ck_assert_uint_eq(u->health_check.interval_ms, 5000);
	ck_assert_uint_eq(u->health_check.timeout_ms, 1000);
	ck_assert_uint_eq(u->health_check.unhealthy_threshold, 3);
	ck_assert_uint_eq(u->health_check.healthy_threshold, 2);
	ck_assert(u->has_outlier_detection);
	ck_assert_uint_eq(u->outlier_detection.consecutive_failures, 5);
	ck_assert_uint_eq(u->outlier_detection.base_ejection_time_ms, 30000);
	ck_assert_uint_eq(u->outlier_detection.max_ejection_percent, 10);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(config_values_as_written)
{
	struct gw_config *cfg =
	    load_pool(1, "    health_check:\n"
	                 "      path: /status\n"
	                 "      interval: 2s\n"
	                 "      timeout: 2s\n" /* equal to interval is allowed */
	                 "      unhealthy_threshold: 100\n"
	                 "      healthy_threshold: 1\n"
	                 "    outlier_detection:\n"
	                 "      consecutive_failures: 1000\n"
	                 "      base_ejection_time: 1h\n"
	                 "      max_ejection_percent: 0");
	const struct gw_upstream_conf *u = &cfg->upstreams[0];

	ck_assert_str_eq(u->health_check.path, "/status");
	ck_assert_uint_eq(u->health_check.interval_ms, 2000);
	ck_assert_uint_eq(u->health_check.timeout_ms, 2000);
	ck_assert_uint_eq(u->health_check.unhealthy_threshold, 100);
	ck_assert_uint_eq(u->health_check.healthy_threshold, 1);
	ck_assert_uint_eq(u->outlier_detection.consecutive_failures, 1000);
	ck_assert_uint_eq(u->outlier_detection.base_ejection_time_ms, 3600000);
	ck_assert_uint_eq(u->outlier_detection.max_ejection_percent, 0);
	gw_config_unref(cfg);
}
END_TEST

#define HEAD "upstreams:\n  u:\n    servers: [\"127.0.0.1:9001\"]\n"
#define TAIL "routes:\n  - { name: r, upstream: u }\n"

START_TEST(config_health_check_errors)
{
	load_fails(HEAD "    health_check: { path: healthz, unhealthy_threshold: 0, "
	                "healthy_threshold: 101, port: 80 }\n" TAIL,
	           "mem.yaml:4:27: 'path' in health_check of upstream 'u': must start with '/', "
	           "got 'healthz'",
	           "mem.yaml:4:57: 'unhealthy_threshold' in health_check of upstream 'u': 0 is out "
	           "of range (1..100)",
	           "mem.yaml:4:79: 'healthy_threshold' in health_check of upstream 'u': 101 is out "
	           "of range (1..100)",
	           "mem.yaml:4:84: unknown key 'port' in health_check of upstream 'u'", NULL);
	load_fails(HEAD "    health_check: { path: \"/a b\", interval: 2h, timeout: 0 }\n" TAIL,
	           "mem.yaml:4:27: 'path' in health_check of upstream 'u': must not contain spaces "
	           "or control characters",
	           "mem.yaml:4:45: 'interval' in health_check of upstream 'u': 2h is out of range "
	           "(1ms..1h)",
	           "mem.yaml:4:58: 'timeout' in health_check of upstream 'u': 0 is out of range "
	           "(1ms..1h)",
	           NULL);
	load_fails(
	    HEAD "    health_check: /healthz\n" TAIL,
	    "mem.yaml:4:19: 'health_check' in upstream 'u': expected a mapping, got a string",
	    NULL);
	load_fails(
	    HEAD "    health_check: { interval: 1s, timeout: 2s }\n" TAIL,
	    "mem.yaml:4:44: 'timeout' in health_check of upstream 'u': 2s must not be longer "
	    "than interval (1s)",
	    NULL);
	load_fails(HEAD "    health_check: { timeout: 10s }\n" TAIL,
	           "mem.yaml:4:30: 'timeout' in health_check of upstream 'u': 10s must not be "
	           "longer than interval (5s, the default)",
	           NULL);
	load_fails(HEAD "    health_check: { interval: 500ms }\n" TAIL,
	           "mem.yaml:4:31: 'interval' in health_check of upstream 'u': 500ms must not be "
	           "shorter than timeout (1s, the default)",
	           NULL);
	load_fails(HEAD "    health_check: { interval: 5x, timeout: 10s }\n" TAIL,
	           "mem.yaml:4:31: 'interval' in health_check of upstream 'u': expected a duration "
	           "such as 250ms, 2s, 1m or 1h, got '5x'",
	           NULL); /* no second message about the timeout */
}
END_TEST

START_TEST(config_outlier_detection_errors)
{
	load_fails(HEAD "    outlier_detection: { consecutive_failures: 0, base_ejection_time: 2h, "
	                "max_ejection_percent: 101 }\n" TAIL,
	           "mem.yaml:4:48: 'consecutive_failures' in outlier_detection of upstream 'u': 0 "
	           "is out of range (1..1000)",
	           "mem.yaml:4:71: 'base_ejection_time' in outlier_detection of upstream 'u': 2h "
	           "is out of range (1ms..1h)",
	           "mem.yaml:4:97: 'max_ejection_percent' in outlier_detection of upstream 'u': "
	           "101 is out of range (0..100)",
	           NULL);
	load_fails(HEAD "    outlier_detection: { base_ejection_time: 30, interval: 1s }\n" TAIL,
	           "mem.yaml:4:46: 'base_ejection_time' in outlier_detection of upstream 'u': "
	           "expected a duration such as 250ms, 2s, 1m or 1h, got '30'",
	           "mem.yaml:4:50: unknown key 'interval' in outlier_detection of upstream 'u'",
	           NULL);
	load_fails(HEAD "    outlier_detection: [5]\n" TAIL,
	           "mem.yaml:4:24: 'outlier_detection' in upstream 'u': expected a mapping, got a "
	           "list",
	           NULL);
	load_fails(HEAD "    outlier_detection:\n" TAIL,
	           "mem.yaml:4:23: 'outlier_detection' in upstream 'u': expected a mapping, got an "
	           "empty value",
	           NULL);
}
END_TEST

/* ---- the suite --------------------------------------------------------- */

/* Outlier tests set a fake clock; active checks run on the real one. */
static void use_real_clock(void)
{
	gw_clock_use_real();
}

#define TCASE(s, fn) gw_test_add_fixture_case(s, #fn, fn, 30, use_real_clock, use_real_clock)

static Suite *health_suite(void)
{
	Suite *s = suite_create("health");

	TCASE(s, outlier_ejects_exactly_at_consecutive_failures);
	TCASE(s, outlier_success_in_between_resets_the_count);
	TCASE(s, outlier_ejection_time_is_base_times_ejection_count);
	TCASE(s, outlier_server_returns_after_its_time_with_a_fresh_count);
	TCASE(s, outlier_return_without_sweep_is_noticed_by_the_next_try);
	TCASE(s, outlier_max_ejection_percent_caps_ejected_servers);
	TCASE(s, outlier_pool_of_two_ejects_one_never_both);
	TCASE(s, outlier_single_server_pool_follows_the_percent);
	TCASE(s, outlier_off_without_the_key);
	TCASE(s, outlier_cap_holds_under_concurrent_workers);
	TCASE(s, active_check_sends_the_documented_request_and_starts_at_once);
	TCASE(s, active_check_500_marks_down_at_threshold_then_up_again);
	TCASE(s, active_check_refused_connection_marks_down);
	TCASE(s, active_check_silent_server_times_out);
	TCASE(s, active_check_invalid_response_fails);
	TCASE(s, active_check_mixed_pool_only_failing_servers_go_down);
	TCASE(s, active_checks_only_for_upstreams_with_the_key);
	TCASE(s, config_keys_absent_mean_off);
	TCASE(s, config_empty_mappings_take_every_default);
	TCASE(s, config_values_as_written);
	TCASE(s, config_health_check_errors);
	TCASE(s, config_outlier_detection_errors);
	return s;
}

int main(void)
{
	return gw_test_run_suite(health_suite(), CK_FORK);
}
