/*
 * Circuit breakers (breaker.h): the `circuit_breaker` section and the
 * breaker state machine.
 */
#include "breaker.h"
#include "../../gateway/config/conf_read.h"
#include "../../gateway/util/alloc.h"
#include "../../gateway/util/log.h"
#include "../../gateway/util/window.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#define SEC  1000ull
#define MIN  (60 * SEC)
#define HOUR (60 * MIN)
#define PPM  1000000ull

const struct gw_breaker_conf gw_breaker_conf_default = {
    .window_ms = 10 * SEC,
    .min_requests = 20,
    .failure_ratio = 0.5,
    .consecutive_failures = 0,
    .slow_call_duration_ms = 0,
    .slow_call_ratio = 1.0,
    .open_duration_ms = 30 * SEC,
    .max_open_duration_ms = 5 * MIN,
    .half_open_requests = 5,
};

/* ---- the `circuit_breaker` section ------------------------------------- */

/*
 * Without max_open_duration, a long open_duration raises the cap with it
 * rather than failing against a default nobody wrote.
 */
static void breaker_check(const struct gw_conf_section *s)
{
	struct gw_breaker_conf *c = s->obj;
	const struct gw_node *max_open = gw_conf_section_value(s, "max_open_duration");
	char a[32], b[32];

	if (gw_conf_section_refused(s, "open_duration") ||
	    gw_conf_section_refused(s, "max_open_duration"))
		return;
	if (!max_open && c->open_duration_ms > c->max_open_duration_ms)
		c->max_open_duration_ms = c->open_duration_ms;
	if (c->open_duration_ms > c->max_open_duration_ms) {
		gw_conf_format_duration(c->max_open_duration_ms, a, sizeof(a));
		gw_conf_format_duration(c->open_duration_ms, b, sizeof(b));
		gw_conf_bad_value(s->ctx, max_open, "max_open_duration",
		                  "%s is less than open_duration (%s)", a, b);
	}
}

#define CONF struct gw_breaker_conf

/* The defaults are gw_breaker_conf_default's (a unit test compares them). */
const struct gw_conf_field gw_breaker_fields[] = {
    {GW_CONF_DURATION("window", CONF, window_ms, SEC, 10 * MIN, 10 * SEC)},
    {GW_CONF_U32("min_requests", CONF, min_requests, 1, 1000000, 20)},
    {GW_CONF_DOUBLE("failure_ratio", CONF, failure_ratio, 0, 1, true, 0.5)},
    {GW_CONF_U32("consecutive_failures", CONF, consecutive_failures, 0, 1000000, 0)},
    {GW_CONF_DURATION("slow_call_duration", CONF, slow_call_duration_ms, 0, HOUR, 0)},
    {GW_CONF_DOUBLE("slow_call_ratio", CONF, slow_call_ratio, 0, 1, true, 1.0)},
    {GW_CONF_DURATION("open_duration", CONF, open_duration_ms, 1, HOUR, 30 * SEC)},
    {GW_CONF_DURATION("max_open_duration", CONF, max_open_duration_ms, 1, HOUR, 5 * MIN)},
    {GW_CONF_U32("half_open_requests", CONF, half_open_requests, 1, 1000, 5)},
    {.key = NULL, .check = breaker_check},
};

#undef CONF

/*
 * where names the route (module.h): messages say "in circuit_breaker of
 * route 'x'".
 */
int gw_breaker_conf_parse(void *conf, const struct gw_node *node, const char *where,
                          const char *file, struct gw_errlist *errs)
{
	return gw_module_conf_read(&gw_breaker_module, conf, node, where, file, errs);
}

const struct gw_breaker_conf *gw_breaker_conf_of(const struct gw_route_conf *route)
{
	for (size_t i = 0; i < gw_modules_count && i < GW_MAX_MODULES; i++)
		if (gw_modules[i] == &gw_breaker_module)
			return route->module_conf[i];
	return NULL;
}

/* ---- the breaker ------------------------------------------------------- */

/*
 * The state machine:
 *
 *   closed --trip--> open --open time over--> half-open --N probes in a row ok--> closed
 *     ^  (ramp)                                 |    ^                               |
 *     |                                         +----+ a probe fails: the next one   |
 *     |                                                waits the probe interval      |
 *     +------------------------------------------------------------------------------+
 *
 * Closed: every try lands in two rolling windows, the configured one (10
 * buckets of window/10) and the last second (10 buckets of 100 ms). The
 * breaker trips when either window holds at least min_requests tries and
 * failures/tries >= failure_ratio, or (slow_call_duration > 0) slow/tries
 * >= slow_call_ratio; or when consecutive_failures (> 0) tries in a row
 * failed, whatever the volume. The short window is what makes an outage
 * trip within a second: a 10 s window still holds the successes of the
 * seconds before the outage (at 1000 req/s, 10000 of them), so its ratio
 * reaches 0.5 only seconds later, while the last second's reaches it about
 * failure_ratio x 1 s into the outage (0.5 s at 0.5). It takes
 * min_requests tries of its own, so it judges only routes with at least
 * min_requests tries a second (20 by default; the test drives 50 req/s);
 * slower routes are judged over the window alone, as before. A window of 1
 * s is its own last second: no second window then. Ratios are compared in
 * integers (millionths): 10 failures in 20 tries meet 0.5 exactly, with no
 * rounding to argue about.
 *
 * Open: requests are rejected without touching the upstream for the open
 * time, open_duration after a trip. A relapse, a trip less than one window
 * after the breaker closed (the window then holds nothing but tries made
 * since it closed), doubles the open time of the trip before it, up to
 * max_open_duration; a trip later than that is a new outage and is open for
 * open_duration again. This is where "doubles on each re-trip" went: a
 * relapse cost a burst of real traffic to a sick upstream, so it earns a
 * longer rest; a failed probe cost one request, so it earns none (below).
 *
 * Half-open: probes go one at a time, never two at once, and never more
 * often than the probe interval, min(open_duration, 500 ms): a probe that
 * succeeds lets the next request be the next probe at once; a probe that
 * fails restarts the count, and the next probe goes one probe interval
 * after the failed one was sent (at once, if that one took longer). When
 * half_open_requests probes in a row have succeeded, it closes. So a dead
 * upstream costs two requests a second, and an upstream that heals is
 * noticed within a probe interval plus a try's time (0.5 s plus a few ms
 * for one answering 503), where doubling the open time on every failed
 * probe made a long outage's recovery wait up to max_open_duration. A
 * probe is judged by failure alone, not by slowness: slowness is a ratio,
 * and N probes are too few to measure one. The open -> half-open move
 * happens in admit, on the first request after the open time, so an idle
 * breaker needs no timer. Every probe must come back, through record or,
 * for a probe that never reached the upstream, abandon_probe; should one
 * get lost all the same, a probe out for max(open time, 15 s) is given up
 * and another one goes, so a lost probe cannot wedge the breaker.
 *
 * Closing, the ramp: the upstream that just answered N probes one at a time
 * is not sent every waiting client at once. For a second after closing,
 * requests in flight admitted by the breaker are limited: N at first, twice
 * as many every 100 ms (N, 2N, 4N, ... 512N), no limit after 1 s. A request
 * over the limit is rejected like an open breaker's (circuit_open or the
 * fallback, Retry-After 1 s). Concurrency, not a share of requests: a route
 * whose requests are quick never has many in flight, so it loses nothing to
 * the ramp; the limit bites where a burst would hurt, when many clients
 * come back together (they were all told the same Retry-After) or the
 * upstream is still slow. The window starts empty (the failures that tripped
 * it are history) and judges the ramp's tries as any others: a relapse
 * trips it again, with a doubled open time.
 *
 * Concurrency: the request path reads the state with one atomic load;
 * closed-state tries update the windows with atomics; a request in the ramp
 * takes its place with a compare-and-swap that never counts past the limit.
 * Transitions, and handing out a probe and judging it, take the mutex
 * (probes are a few a second); each re-checks under it that the state is
 * still the one it moves from, so that of several threads seeing the same
 * condition exactly one acts and logs. A rejected request takes no lock.
 * Fields a transition writes before publishing the new state are stored
 * before the state's release store and read after its acquire load. Tries
 * finishing late (admitted before a trip, or a probe given up as lost) are
 * not told apart from current ones beyond the state they find: a non-probe
 * try outside closed is dropped, a probe's outcome while no probe is out is
 * dropped, and a lost probe's outcome arriving while its successor is out
 * counts for the successor; all rare and harmless.
 *
 * Log lines: each trip, the first probe, closing and operator changes once;
 * failed probes at the 1st, 2nd, 4th, 8th... of a half-open period, so a
 * long outage logs a line now and then, not two a second.
 */
struct gw_breaker {
	struct gw_breaker_conf conf; /* a copy: the snapshot may go away */
	bool manual;                 /* no circuit_breaker section: only forced, never trips */
	char *name;                  /* owned; for log lines */
	uint64_t failure_ppm;        /* failure_ratio in millionths */
	uint64_t slow_ppm;           /* slow_call_ratio in millionths */
	uint64_t probe_interval_ms;  /* min(open_duration, 500 ms) */
	struct gw_window *window;    /* owned: the configured window (below) */
	struct gw_window *recent;    /* owned: the last second; NULL when window is 1s */

	_Atomic int force;              /* enum gw_breaker_force */
	_Atomic int state;              /* enum gw_breaker_state of the state machine */
	_Atomic uint64_t open_until_ms; /* open: when half-open begins */
	_Atomic uint64_t open_ms;       /* the current (or last) open time */
	/* half-open (written under the lock) */
	_Atomic bool probe_out;         /* the probe is out */
	_Atomic uint64_t probe_sent_ms; /* when it was handed out */
	_Atomic uint64_t next_probe_ms; /* no probe before */
	_Atomic uint32_t probes_ok;     /* successes in a row */
	_Atomic uint32_t probes_failed; /* failed probes of this half-open period */
	_Atomic uint32_t consecutive;   /* closed: failures in a row */
	_Atomic uint64_t closed_at_ms;  /* when probes last closed it; NEVER */
	_Atomic uint64_t ramp_until_ms; /* closed: ramping until then; 0 = no ramp */
	_Atomic uint32_t ramp_inflight; /* GW_BREAKER_RAMP requests not yet done */
	pthread_mutex_t lock;           /* transitions and probes */
};

#define NEVER UINT64_MAX

/*
 * The windows: 10 buckets each (util/window.h), so a try is forgotten
 * between 0.9 and 1.0 window after it was made; the buckets make that edge
 * coarse on purpose, in exchange for O(1) memory and no per-try allocation.
 * Its three counters are not updated as one, so a reader racing a writer
 * may see a try's failure before its try; the writer's own check after its
 * update sees both.
 */
#define BUCKETS 10

enum { TRIES = 0, FAILURES, SLOW, COUNTERS };

static const char *const state_names[] = {
    [GW_BREAKER_CLOSED] = "closed",
    [GW_BREAKER_OPEN] = "open",
    [GW_BREAKER_HALF_OPEN] = "half-open",
};

const char *gw_breaker_state_name(enum gw_breaker_state s)
{
	return (unsigned)s < sizeof(state_names) / sizeof(state_names[0]) ? state_names[s] : "?";
}

static uint64_t ratio_ppm(double r)
{
	if (!(r > 0))
		return 0;
	return r >= 1 ? PPM : (uint64_t)llround(r * (double)PPM);
}

struct gw_breaker *gw_breaker_new(const struct gw_breaker_conf *c, const char *route_name)
{
	struct gw_breaker *b = gw_calloc(1, sizeof(*b));

	b->manual = c == NULL;
	if (!c)
		c = &gw_breaker_conf_default; /* open_duration: a forced open's Retry-After */
	b->conf = *c;
	/* The loader guarantees these; a breaker made by hand gets sane ones. */
	if (b->conf.half_open_requests == 0)
		b->conf.half_open_requests = 1;
	if (b->conf.max_open_duration_ms < b->conf.open_duration_ms)
		b->conf.max_open_duration_ms = b->conf.open_duration_ms;
	b->name = gw_strdup(route_name ? route_name : "?");
	b->window = gw_window_new(BUCKETS, c->window_ms / BUCKETS, COUNTERS); /* 0 ms: 1 */
	if (c->window_ms > GW_BREAKER_RECENT_MS)
		b->recent = gw_window_new(BUCKETS, GW_BREAKER_RECENT_MS / BUCKETS, COUNTERS);
	b->failure_ppm = ratio_ppm(c->failure_ratio);
	b->slow_ppm = ratio_ppm(c->slow_call_ratio);
	b->probe_interval_ms = b->conf.open_duration_ms < GW_BREAKER_PROBE_INTERVAL_MAX_MS
	                           ? b->conf.open_duration_ms
	                           : GW_BREAKER_PROBE_INTERVAL_MAX_MS;
	atomic_init(&b->force, GW_BREAKER_FORCE_AUTO);
	atomic_init(&b->state, GW_BREAKER_CLOSED);
	atomic_init(&b->open_until_ms, 0);
	atomic_init(&b->open_ms, b->conf.open_duration_ms);
	atomic_init(&b->probe_out, false);
	atomic_init(&b->probe_sent_ms, 0);
	atomic_init(&b->next_probe_ms, 0);
	atomic_init(&b->probes_ok, 0);
	atomic_init(&b->probes_failed, 0);
	atomic_init(&b->consecutive, 0);
	atomic_init(&b->closed_at_ms, NEVER);
	atomic_init(&b->ramp_until_ms, 0);
	atomic_init(&b->ramp_inflight, 0);
	pthread_mutex_init(&b->lock, NULL);
	return b;
}

void gw_breaker_carry(struct gw_breaker *b, const struct gw_breaker *old, uint64_t now_ms)
{
	int state = atomic_load(&old->state);
	uint64_t next;

	gw_window_copy(b->window, old->window);
	if (b->recent && old->recent)
		gw_window_copy(b->recent, old->recent);
	atomic_store(&b->force, atomic_load(&old->force));
	atomic_store(&b->consecutive, atomic_load(&old->consecutive));
	atomic_store(&b->open_ms, atomic_load(&old->open_ms));
	atomic_store(&b->closed_at_ms, atomic_load(&old->closed_at_ms));
	if (state == GW_BREAKER_CLOSED) {
		atomic_store(&b->ramp_until_ms, atomic_load(&old->ramp_until_ms));
		return;
	}
	atomic_store(&b->open_until_ms, atomic_load(&old->open_until_ms));
	if (state == GW_BREAKER_HALF_OPEN) {
		next = atomic_load(&old->next_probe_ms);
		if (atomic_load(&old->probe_out))
			next = atomic_load(&old->probe_sent_ms) + b->probe_interval_ms;
		atomic_store(&b->next_probe_ms, next > now_ms ? next : now_ms);
		atomic_store(&b->probes_ok, atomic_load(&old->probes_ok));
		atomic_store(&b->probes_failed, atomic_load(&old->probes_failed));
	}
	atomic_store(&b->state, state);
}

void gw_breaker_free(struct gw_breaker *b)
{
	if (!b)
		return;
	pthread_mutex_destroy(&b->lock);
	gw_window_free(b->window);
	gw_window_free(b->recent);
	free(b->name);
	free(b);
}

static void windows_add(struct gw_breaker *b, uint64_t now_ms, bool failure, bool slow)
{
	struct gw_window *w[2] = {b->window, b->recent};

	for (size_t i = 0; i < 2 && w[i]; i++) {
		gw_window_add(w[i], TRIES, now_ms);
		if (failure)
			gw_window_add(w[i], FAILURES, now_ms);
		if (slow)
			gw_window_add(w[i], SLOW, now_ms);
	}
}

static void windows_clear(struct gw_breaker *b)
{
	gw_window_clear(b->window);
	if (b->recent)
		gw_window_clear(b->recent);
}

/* Under the lock: the half-open bookkeeping back to nothing. */
static void clear_probes(struct gw_breaker *b)
{
	atomic_store_explicit(&b->probe_out, false, memory_order_relaxed);
	atomic_store_explicit(&b->probes_ok, 0, memory_order_relaxed);
	atomic_store_explicit(&b->probes_failed, 0, memory_order_relaxed);
}

/* Under the lock: closed, with nothing remembered and no ramp. */
static void reset_closed(struct gw_breaker *b)
{
	windows_clear(b);
	clear_probes(b);
	atomic_store_explicit(&b->consecutive, 0, memory_order_relaxed);
	atomic_store_explicit(&b->open_ms, b->conf.open_duration_ms, memory_order_relaxed);
	atomic_store_explicit(&b->closed_at_ms, NEVER, memory_order_relaxed);
	atomic_store_explicit(&b->ramp_until_ms, 0, memory_order_relaxed);
	atomic_store_explicit(&b->state, GW_BREAKER_CLOSED, memory_order_release);
}

static bool automatic(const struct gw_breaker *b)
{
	return !b->manual &&
	       atomic_load_explicit(&b->force, memory_order_relaxed) == GW_BREAKER_FORCE_AUTO;
}

static bool state_is(const struct gw_breaker *b, enum gw_breaker_state s)
{
	return atomic_load_explicit(&b->state, memory_order_relaxed) == (int)s;
}

/* The open time of a trip at now_ms (closed) or the current one (not closed);
 * *relapse: a trip now would be a relapse. */
static uint64_t next_open_ms(const struct gw_breaker *b, uint64_t now_ms, bool *relapse)
{
	uint64_t open = atomic_load_explicit(&b->open_ms, memory_order_relaxed);
	uint64_t closed_at = atomic_load_explicit(&b->closed_at_ms, memory_order_relaxed);

	*relapse = false;
	if (!state_is(b, GW_BREAKER_CLOSED))
		return open;
	if (closed_at == NEVER || (now_ms >= closed_at && now_ms - closed_at >= b->conf.window_ms))
		return b->conf.open_duration_ms;
	*relapse = true;
	return open > b->conf.max_open_duration_ms / 2 ? b->conf.max_open_duration_ms : open * 2;
}

/* closed -> open, if the breaker is still closed; why says what tripped it. */
static void trip(struct gw_breaker *b, uint64_t now_ms, const char *why)
{
	char open_text[32], interval_text[32], since_text[32], relapse[96] = "";
	uint64_t open, closed_at;
	bool is_relapse;

	pthread_mutex_lock(&b->lock);
	if (automatic(b) && state_is(b, GW_BREAKER_CLOSED)) {
		open = next_open_ms(b, now_ms, &is_relapse);
		if (is_relapse) {
			/* the last open time, doubled, up to the max */
			closed_at = atomic_load_explicit(&b->closed_at_ms, memory_order_relaxed);
			snprintf(
			    relapse, sizeof(relapse), ", %s after closing",
			    gw_conf_format_duration(now_ms > closed_at ? now_ms - closed_at : 0,
			                            since_text, sizeof(since_text)));
		}
		atomic_store_explicit(&b->open_ms, open, memory_order_relaxed);
		atomic_store_explicit(&b->open_until_ms, now_ms + open, memory_order_relaxed);
		atomic_store_explicit(&b->ramp_until_ms, 0, memory_order_relaxed);
		atomic_store_explicit(&b->state, GW_BREAKER_OPEN, memory_order_release);
		gw_log_warn("breaker %s: closed -> open (%s%s); open for %s, then a probe every %s",
		            b->name, why, relapse,
		            gw_conf_format_duration(open, open_text, sizeof(open_text)),
		            gw_conf_format_duration(b->probe_interval_ms, interval_text,
		                                    sizeof(interval_text)));
	}
	pthread_mutex_unlock(&b->lock);
}

static void open_to_half_open(struct gw_breaker *b, uint64_t now_ms)
{
	char text[32];

	pthread_mutex_lock(&b->lock);
	if (automatic(b) && state_is(b, GW_BREAKER_OPEN) &&
	    now_ms >= atomic_load_explicit(&b->open_until_ms, memory_order_relaxed)) {
		clear_probes(b);
		atomic_store_explicit(&b->next_probe_ms, now_ms, memory_order_relaxed);
		atomic_store_explicit(&b->state, GW_BREAKER_HALF_OPEN, memory_order_release);
		gw_log_info(
		    "breaker %s: open -> half-open (open for %s; probing one request at a time, "
		    "%u in a row to close)",
		    b->name,
		    gw_conf_format_duration(atomic_load_explicit(&b->open_ms, memory_order_relaxed),
		                            text, sizeof(text)),
		    b->conf.half_open_requests);
	}
	pthread_mutex_unlock(&b->lock);
}

/* Under the lock, half-open: N probes succeeded. */
static void half_open_to_closed(struct gw_breaker *b, uint64_t now_ms)
{
	uint32_t n = b->conf.half_open_requests;
	uint32_t failed = atomic_load_explicit(&b->probes_failed, memory_order_relaxed);
	char after[48] = "";

	if (failed)
		snprintf(after, sizeof(after), ", after %u failed", failed);
	windows_clear(b);
	clear_probes(b);
	atomic_store_explicit(&b->consecutive, 0, memory_order_relaxed);
	atomic_store_explicit(&b->closed_at_ms, now_ms, memory_order_relaxed);
	atomic_store_explicit(&b->ramp_until_ms, now_ms + GW_BREAKER_RAMP_MS, memory_order_relaxed);
	atomic_store_explicit(&b->state, GW_BREAKER_CLOSED, memory_order_release);
	gw_log_info("breaker %s: half-open -> closed (%u of %u probes succeeded%s); ramping up "
	            "over 1s from %u requests in flight",
	            b->name, n, n, after, n);
}

/* Half-open, the probe out for too long: give it up, let another go. */
static void probe_lost(struct gw_breaker *b, uint64_t now_ms, uint64_t sent)
{
	char text[32];

	pthread_mutex_lock(&b->lock);
	if (automatic(b) && state_is(b, GW_BREAKER_HALF_OPEN) &&
	    atomic_load_explicit(&b->probe_out, memory_order_relaxed) &&
	    atomic_load_explicit(&b->probe_sent_ms, memory_order_relaxed) == sent) {
		atomic_store_explicit(&b->probe_out, false, memory_order_relaxed);
		atomic_store_explicit(&b->next_probe_ms, now_ms, memory_order_relaxed);
		gw_log_warn(
		    "breaker %s: half-open, a probe had no outcome within %s; sending another",
		    b->name, gw_conf_format_duration(now_ms - sent, text, sizeof(text)));
	}
	pthread_mutex_unlock(&b->lock);
}

/* Half-open: makes this request the probe if none is out and it is time. */
static bool take_probe(struct gw_breaker *b, uint64_t now_ms)
{
	bool taken = false;

	pthread_mutex_lock(&b->lock);
	if (automatic(b) && state_is(b, GW_BREAKER_HALF_OPEN) &&
	    !atomic_load_explicit(&b->probe_out, memory_order_relaxed) &&
	    now_ms >= atomic_load_explicit(&b->next_probe_ms, memory_order_relaxed)) {
		atomic_store_explicit(&b->probe_sent_ms, now_ms, memory_order_relaxed);
		atomic_store_explicit(&b->probe_out, true, memory_order_release);
		taken = true;
	}
	pthread_mutex_unlock(&b->lock);
	return taken;
}

/* Closed, ramping: takes a place under the limit of now_ms. */
static bool ramp_take(struct gw_breaker *b, uint64_t now_ms)
{
	uint64_t closed_at = atomic_load_explicit(&b->closed_at_ms, memory_order_relaxed);
	uint64_t steps = now_ms > closed_at ? (now_ms - closed_at) / GW_BREAKER_RAMP_STEP_MS : 0;
	uint64_t limit = steps >= 32 ? UINT32_MAX : (uint64_t)b->conf.half_open_requests << steps;
	uint32_t n = atomic_load_explicit(&b->ramp_inflight, memory_order_relaxed);

	while (n < limit)
		if (atomic_compare_exchange_weak_explicit(
		        &b->ramp_inflight, &n, n + 1, memory_order_relaxed, memory_order_relaxed))
			return true;
	return false;
}

void gw_breaker_ramp_done(struct gw_breaker *b)
{
	uint32_t n = atomic_load_explicit(&b->ramp_inflight, memory_order_relaxed);

	while (n > 0)
		if (atomic_compare_exchange_weak_explicit(
		        &b->ramp_inflight, &n, n - 1, memory_order_relaxed, memory_order_relaxed))
			return;
}

static uint64_t probe_lost_ms(const struct gw_breaker *b)
{
	uint64_t open = atomic_load_explicit(&b->open_ms, memory_order_relaxed);

	return open > GW_BREAKER_PROBE_LOST_MS ? open : GW_BREAKER_PROBE_LOST_MS;
}

enum gw_breaker_admit gw_breaker_admit(struct gw_breaker *b, uint64_t now_ms,
                                       uint64_t *retry_after_ms)
{
	uint64_t retry_after = 0, until, sent;
	enum gw_breaker_admit verdict;

	for (;;) {
		switch (atomic_load_explicit(&b->force, memory_order_relaxed)) {
		case GW_BREAKER_FORCE_OPEN:
			retry_after = b->conf.open_duration_ms;
			verdict = GW_BREAKER_REJECT;
			goto done;
		case GW_BREAKER_FORCE_CLOSED:
			return GW_BREAKER_ALLOW;
		default:
			break;
		}
		switch (atomic_load_explicit(&b->state, memory_order_acquire)) {
		case GW_BREAKER_CLOSED:
			if (now_ms >= atomic_load_explicit(&b->ramp_until_ms, memory_order_relaxed))
				return GW_BREAKER_ALLOW;
			if (ramp_take(b, now_ms))
				return GW_BREAKER_RAMP;
			retry_after = GW_BREAKER_RAMP_RETRY_AFTER_MS;
			verdict = GW_BREAKER_REJECT;
			goto done;
		case GW_BREAKER_OPEN:
			until = atomic_load_explicit(&b->open_until_ms, memory_order_relaxed);
			if (now_ms < until) {
				retry_after = until - now_ms;
				verdict = GW_BREAKER_REJECT;
				goto done;
			}
			open_to_half_open(b, now_ms);
			continue; /* see what the state is now */
		case GW_BREAKER_HALF_OPEN:
		default:
			if (atomic_load_explicit(&b->probe_out, memory_order_acquire)) {
				sent =
				    atomic_load_explicit(&b->probe_sent_ms, memory_order_relaxed);
				if (now_ms >= sent + probe_lost_ms(b)) {
					probe_lost(b, now_ms, sent);
					continue;
				}
				retry_after = GW_BREAKER_PROBING_RETRY_AFTER_MS;
				verdict = GW_BREAKER_REJECT;
				goto done;
			}
			until = atomic_load_explicit(&b->next_probe_ms, memory_order_relaxed);
			if (now_ms < until) {
				retry_after = until - now_ms;
				verdict = GW_BREAKER_REJECT;
				goto done;
			}
			if (take_probe(b, now_ms))
				return GW_BREAKER_PROBE;
			continue; /* another thread moved first: see what it did */
		}
	}
done:
	if (retry_after_ms)
		*retry_after_ms = retry_after;
	return verdict;
}

/* Whether window w (the last `span` of time, NULL: the configured window)
 * calls for a trip; why says which rule. */
static bool ratios_trip(const struct gw_breaker *b, const struct gw_window *w, uint64_t now_ms,
                        const char *span, char *why, size_t size)
{
	const struct gw_breaker_conf *c = &b->conf;
	uint64_t tries, failures, slow;
	char text[32];

	/* Each count only when a rule needs it: every try pays for this. */
	tries = gw_window_sum(w, TRIES, now_ms);
	if (tries < c->min_requests || tries == 0)
		return false;
	failures = gw_window_sum(w, FAILURES, now_ms);
	if (failures * PPM >= b->failure_ppm * tries) {
		snprintf(why, size, "failure ratio %.2f >= %.2f over %llu tries%s",
		         (double)failures / (double)tries, c->failure_ratio,
		         (unsigned long long)tries, span);
		return true;
	}
	if (c->slow_call_duration_ms &&
	    (slow = gw_window_sum(w, SLOW, now_ms)) * PPM >= b->slow_ppm * tries) {
		snprintf(why, size, "slow call ratio %.2f >= %.2f over %llu tries%s slower than %s",
		         (double)slow / (double)tries, c->slow_call_ratio,
		         (unsigned long long)tries, span,
		         gw_conf_format_duration(c->slow_call_duration_ms, text, sizeof(text)));
		return true;
	}
	return false;
}

/* Whether the closed-state windows call for a trip; why says which rule. */
static bool should_trip(const struct gw_breaker *b, uint64_t now_ms, bool failure,
                        uint32_t consecutive, char *why, size_t size)
{
	if (b->conf.consecutive_failures && failure &&
	    consecutive >= b->conf.consecutive_failures) {
		snprintf(why, size, "%u consecutive failures", consecutive);
		return true;
	}
	return ratios_trip(b, b->window, now_ms, "", why, size) ||
	       (b->recent && ratios_trip(b, b->recent, now_ms, " in the last second", why, size));
}

/* Half-open: the probe's outcome. */
static void judge_probe(struct gw_breaker *b, uint64_t now_ms, bool failure)
{
	uint64_t next;
	uint32_t failed;
	char text[32];

	pthread_mutex_lock(&b->lock);
	if (automatic(b) && state_is(b, GW_BREAKER_HALF_OPEN) &&
	    atomic_load_explicit(&b->probe_out, memory_order_relaxed)) {
		if (failure) {
			next = atomic_load_explicit(&b->probe_sent_ms, memory_order_relaxed) +
			       b->probe_interval_ms;
			if (next < now_ms)
				next = now_ms;
			failed = atomic_load_explicit(&b->probes_failed, memory_order_relaxed) + 1;
			atomic_store_explicit(&b->probes_failed, failed, memory_order_relaxed);
			atomic_store_explicit(&b->probes_ok, 0, memory_order_relaxed);
			atomic_store_explicit(&b->next_probe_ms, next, memory_order_relaxed);
			atomic_store_explicit(&b->probe_out, false, memory_order_release);
			if ((failed & (failed - 1)) == 0) /* 1, 2, 4, 8, ... */
				gw_log_warn(
				    "breaker %s: half-open, probe failed (%u so far); next "
				    "probe in %s",
				    b->name, failed,
				    gw_conf_format_duration(next - now_ms, text, sizeof(text)));
		} else if (atomic_load_explicit(&b->probes_ok, memory_order_relaxed) + 1 >=
		           b->conf.half_open_requests) {
			half_open_to_closed(b, now_ms);
		} else {
			atomic_fetch_add_explicit(&b->probes_ok, 1, memory_order_relaxed);
			atomic_store_explicit(&b->probe_out, false, memory_order_release);
		}
	}
	pthread_mutex_unlock(&b->lock);
}

void gw_breaker_record(struct gw_breaker *b, uint64_t now_ms, bool failure, uint64_t duration_ms,
                       bool probe)
{
	bool slow = b->conf.slow_call_duration_ms && duration_ms > b->conf.slow_call_duration_ms;
	int state = atomic_load_explicit(&b->state, memory_order_acquire);
	uint32_t consecutive = 0;
	char why[160];

	if (!automatic(b)) {
		/* Counted for /status; an operator decides the state. */
		windows_add(b, now_ms, failure, slow);
		return;
	}
	if (state == GW_BREAKER_HALF_OPEN) {
		if (probe)
			judge_probe(b, now_ms, failure);
		/* else: admitted before the trip, finished only now */
		return;
	}
	if (state != GW_BREAKER_CLOSED)
		return; /* open: a try admitted before the trip, finished only now */
	windows_add(b, now_ms, failure, slow);
	if (failure)
		consecutive =
		    atomic_fetch_add_explicit(&b->consecutive, 1, memory_order_relaxed) + 1;
	else if (atomic_load_explicit(&b->consecutive, memory_order_relaxed) != 0)
		atomic_store_explicit(&b->consecutive, 0, memory_order_relaxed);
	if (should_trip(b, now_ms, failure, consecutive, why, sizeof(why)))
		trip(b, now_ms, why);
}

void gw_breaker_abandon_probe(struct gw_breaker *b)
{
	if (atomic_load_explicit(&b->state, memory_order_acquire) != GW_BREAKER_HALF_OPEN)
		return;
	pthread_mutex_lock(&b->lock);
	/* next_probe_ms stays: the probe was not spent, the next request may go */
	if (state_is(b, GW_BREAKER_HALF_OPEN))
		atomic_store_explicit(&b->probe_out, false, memory_order_release);
	pthread_mutex_unlock(&b->lock);
}

void gw_breaker_force(struct gw_breaker *b, enum gw_breaker_force f)
{
	static const char *const reasons[] = {
	    [GW_BREAKER_FORCE_AUTO] = "automatic again, by operator; window cleared",
	    [GW_BREAKER_FORCE_OPEN] = "forced open by operator",
	    [GW_BREAKER_FORCE_CLOSED] = "forced closed by operator",
	};
	enum gw_breaker_state from, to;
	int old;

	if ((unsigned)f > GW_BREAKER_FORCE_CLOSED)
		return;
	pthread_mutex_lock(&b->lock);
	old = atomic_load_explicit(&b->force, memory_order_relaxed);
	if (old == (int)f) {
		pthread_mutex_unlock(&b->lock);
		return;
	}
	if (old == GW_BREAKER_FORCE_OPEN)
		from = GW_BREAKER_OPEN;
	else if (old == GW_BREAKER_FORCE_CLOSED)
		from = GW_BREAKER_CLOSED;
	else
		from = (enum gw_breaker_state)atomic_load_explicit(&b->state, memory_order_relaxed);
	if (f == GW_BREAKER_FORCE_AUTO)
		reset_closed(b);
	atomic_store_explicit(&b->force, (int)f, memory_order_release);
	to = f == GW_BREAKER_FORCE_OPEN ? GW_BREAKER_OPEN : GW_BREAKER_CLOSED;
	if (to == GW_BREAKER_OPEN)
		gw_log_warn("breaker %s: %s -> %s (%s)", b->name, gw_breaker_state_name(from),
		            gw_breaker_state_name(to), reasons[f]);
	else
		gw_log_info("breaker %s: %s -> %s (%s)", b->name, gw_breaker_state_name(from),
		            gw_breaker_state_name(to), reasons[f]);
	pthread_mutex_unlock(&b->lock);
}

bool gw_breaker_is_manual(const struct gw_breaker *b)
{
	return b->manual;
}

enum gw_breaker_force gw_breaker_forced(const struct gw_breaker *b)
{
	return (enum gw_breaker_force)atomic_load_explicit(&b->force, memory_order_relaxed);
}

enum gw_breaker_state gw_breaker_state(const struct gw_breaker *b, uint64_t now_ms)
{
	int s;

	switch (atomic_load_explicit(&b->force, memory_order_relaxed)) {
	case GW_BREAKER_FORCE_OPEN:
		return GW_BREAKER_OPEN;
	case GW_BREAKER_FORCE_CLOSED:
		return GW_BREAKER_CLOSED;
	default:
		break;
	}
	s = atomic_load_explicit(&b->state, memory_order_acquire);
	if (s == GW_BREAKER_OPEN &&
	    now_ms >= atomic_load_explicit(&b->open_until_ms, memory_order_relaxed))
		return GW_BREAKER_HALF_OPEN;
	return (enum gw_breaker_state)s;
}

void gw_breaker_counts(const struct gw_breaker *b, uint64_t now_ms, struct gw_breaker_counts *out)
{
	uint64_t n[COUNTERS];
	bool relapse;

	gw_window_sums(b->window, now_ms, n);
	out->tries = n[TRIES];
	out->failures = n[FAILURES];
	out->slow = n[SLOW];
	out->consecutive_failures = atomic_load_explicit(&b->consecutive, memory_order_relaxed);
	out->open_duration_ms = next_open_ms(b, now_ms, &relapse);
}
