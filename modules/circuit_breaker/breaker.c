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
 *   closed --trip--> open --open time over--> half-open --all N probes ok--> closed
 *                      ^                          |
 *                      +------ a probe fails -----+  (open time doubled, up to the max)
 *
 * Closed: every try lands in the window; the breaker trips when the window
 * holds at least min_requests tries and failures/tries >= failure_ratio, or
 * (slow_call_duration > 0) slow/tries >= slow_call_ratio, or when
 * consecutive_failures (> 0) tries in a row failed, whatever the volume.
 * Ratios are compared in integers (millionths): 10 failures in 20 tries
 * meet 0.5 exactly, with no rounding to argue about.
 *
 * Open: requests are rejected without touching the upstream for the open
 * time. The first open time is open_duration; each re-trip from half-open
 * doubles it, up to max_open_duration, so an upstream that stays down is
 * probed less and less often; a full recovery (closing) resets it.
 *
 * Half-open: exactly half_open_requests requests are let through as
 * probes, every other one is rejected. One failed probe reopens the
 * breaker at once; when all of them have succeeded it closes, with an empty
 * window (the failures that tripped it are history). A probe is judged by
 * failure alone, not by slowness: slowness is a ratio, and N probes are too
 * few to measure one. The open -> half-open move happens in admit, on the
 * first request after the open time, so an idle breaker needs no timer.
 * Every probe must come back, through record or, for a probe that never
 * reached the upstream, abandon_probe; should one get lost all the same, a
 * round with every probe out that has not ended one open time after it
 * began hands its probes out again, so a lost probe cannot wedge the
 * breaker half-open for good.
 *
 * Concurrency: the request path reads the state with one atomic load;
 * closed-state tries update the window with atomics; probes are handed out
 * with a compare-and-swap that never counts past N. Only transitions take
 * the mutex, and each re-checks under it that the state is still the one it
 * moves from, so that of several threads seeing the same trip condition
 * exactly one moves and logs. Fields a transition writes before publishing
 * the new state (open until, the probe counts) are stored before the
 * state's release store and read after its acquire load. Tries finishing
 * late (admitted before a trip, or a probe of an earlier half-open round)
 * are not told apart from current ones beyond the state they find: a
 * non-probe try outside closed is dropped, a stray probe may count in a
 * later round; both are rare and harmless (at worst one probe fewer is
 * needed).
 */
struct gw_breaker {
	struct gw_breaker_conf conf; /* a copy: the snapshot may go away */
	char *name;                  /* owned; for log lines */
	uint64_t failure_ppm;        /* failure_ratio in millionths */
	uint64_t slow_ppm;           /* slow_call_ratio in millionths */
	struct gw_window *window;    /* owned: tries, failures, slow tries (below) */

	_Atomic int force;               /* enum gw_breaker_force */
	_Atomic int state;               /* enum gw_breaker_state of the state machine */
	_Atomic uint64_t open_until_ms;  /* open: when half-open begins */
	_Atomic uint64_t open_ms;        /* the next (or current) open time */
	_Atomic uint32_t probes_issued;  /* half-open: probes out or done, <= N */
	_Atomic uint32_t probes_ok;      /* half-open: probes that succeeded */
	_Atomic uint64_t round_start_ms; /* half-open: when the probes were handed out */
	_Atomic uint32_t consecutive;    /* closed: failures in a row */
	pthread_mutex_t lock;            /* transitions only */
};

/*
 * The window: 10 buckets of window/10 each (util/window.h), so a try is
 * forgotten between 0.9 and 1.0 window after it was made; the buckets make
 * that edge coarse on purpose, in exchange for O(1) memory and no per-try
 * allocation. Its three counters are not updated as one, so a reader racing
 * a writer may see a try's failure before its try; the writer's own check
 * after its update sees both.
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

	b->conf = *c;
	/* The loader guarantees these; a breaker made by hand gets sane ones. */
	if (b->conf.half_open_requests == 0)
		b->conf.half_open_requests = 1;
	if (b->conf.max_open_duration_ms < b->conf.open_duration_ms)
		b->conf.max_open_duration_ms = b->conf.open_duration_ms;
	b->name = gw_strdup(route_name ? route_name : "?");
	b->window = gw_window_new(BUCKETS, c->window_ms / BUCKETS, COUNTERS); /* 0 ms: 1 */
	b->failure_ppm = ratio_ppm(c->failure_ratio);
	b->slow_ppm = ratio_ppm(c->slow_call_ratio);
	atomic_init(&b->force, GW_BREAKER_FORCE_AUTO);
	atomic_init(&b->state, GW_BREAKER_CLOSED);
	atomic_init(&b->open_until_ms, 0);
	atomic_init(&b->open_ms, b->conf.open_duration_ms);
	atomic_init(&b->probes_issued, 0);
	atomic_init(&b->probes_ok, 0);
	atomic_init(&b->round_start_ms, 0);
	atomic_init(&b->consecutive, 0);
	pthread_mutex_init(&b->lock, NULL);
	return b;
}

void gw_breaker_carry(struct gw_breaker *b, const struct gw_breaker *old, uint64_t now_ms)
{
	int state = atomic_load(&old->state);

	gw_window_copy(b->window, old->window);
	atomic_store(&b->force, atomic_load(&old->force));
	atomic_store(&b->consecutive, atomic_load(&old->consecutive));
	if (state == GW_BREAKER_CLOSED)
		return;
	atomic_store(&b->open_ms, atomic_load(&old->open_ms));
	atomic_store(&b->open_until_ms,
	             state == GW_BREAKER_HALF_OPEN ? now_ms : atomic_load(&old->open_until_ms));
	atomic_store(&b->state, GW_BREAKER_OPEN);
}

void gw_breaker_free(struct gw_breaker *b)
{
	if (!b)
		return;
	pthread_mutex_destroy(&b->lock);
	gw_window_free(b->window);
	free(b->name);
	free(b);
}

static void window_add(struct gw_breaker *b, uint64_t now_ms, bool failure, bool slow)
{
	gw_window_add(b->window, TRIES, now_ms);
	if (failure)
		gw_window_add(b->window, FAILURES, now_ms);
	if (slow)
		gw_window_add(b->window, SLOW, now_ms);
}

/* Under the lock: closed, with nothing remembered. */
static void reset_closed(struct gw_breaker *b)
{
	gw_window_clear(b->window);
	atomic_store_explicit(&b->consecutive, 0, memory_order_relaxed);
	atomic_store_explicit(&b->open_ms, b->conf.open_duration_ms, memory_order_relaxed);
	atomic_store_explicit(&b->probes_issued, 0, memory_order_relaxed);
	atomic_store_explicit(&b->probes_ok, 0, memory_order_relaxed);
	atomic_store_explicit(&b->state, GW_BREAKER_CLOSED, memory_order_release);
}

static bool automatic(const struct gw_breaker *b)
{
	return atomic_load_explicit(&b->force, memory_order_relaxed) == GW_BREAKER_FORCE_AUTO;
}

/* from -> open, if the breaker is still in from; why says what tripped it. */
static void trip(struct gw_breaker *b, uint64_t now_ms, enum gw_breaker_state from, const char *why)
{
	char text[32];

	pthread_mutex_lock(&b->lock);
	if (automatic(b) && atomic_load_explicit(&b->state, memory_order_relaxed) == (int)from) {
		uint64_t open = atomic_load_explicit(&b->open_ms, memory_order_relaxed);

		if (from == GW_BREAKER_HALF_OPEN) {
			open = open > b->conf.max_open_duration_ms / 2
			           ? b->conf.max_open_duration_ms
			           : open * 2;
			atomic_store_explicit(&b->open_ms, open, memory_order_relaxed);
		}
		atomic_store_explicit(&b->open_until_ms, now_ms + open, memory_order_relaxed);
		atomic_store_explicit(&b->state, GW_BREAKER_OPEN, memory_order_release);
		gw_log_warn("breaker %s: %s -> open (%s); open for %s", b->name,
		            gw_breaker_state_name(from), why,
		            gw_conf_format_duration(open, text, sizeof(text)));
	}
	pthread_mutex_unlock(&b->lock);
}

static void open_to_half_open(struct gw_breaker *b, uint64_t now_ms)
{
	char text[32];

	pthread_mutex_lock(&b->lock);
	if (automatic(b) &&
	    atomic_load_explicit(&b->state, memory_order_relaxed) == GW_BREAKER_OPEN &&
	    now_ms >= atomic_load_explicit(&b->open_until_ms, memory_order_relaxed)) {
		atomic_store_explicit(&b->probes_issued, 0, memory_order_relaxed);
		atomic_store_explicit(&b->probes_ok, 0, memory_order_relaxed);
		atomic_store_explicit(&b->round_start_ms, now_ms, memory_order_relaxed);
		atomic_store_explicit(&b->state, GW_BREAKER_HALF_OPEN, memory_order_release);
		gw_log_info(
		    "breaker %s: open -> half-open (open for %s; admitting %u probes)", b->name,
		    gw_conf_format_duration(atomic_load_explicit(&b->open_ms, memory_order_relaxed),
		                            text, sizeof(text)),
		    b->conf.half_open_requests);
	}
	pthread_mutex_unlock(&b->lock);
}

static void half_open_to_closed(struct gw_breaker *b)
{
	uint32_t n = b->conf.half_open_requests;

	pthread_mutex_lock(&b->lock);
	if (automatic(b) &&
	    atomic_load_explicit(&b->state, memory_order_relaxed) == GW_BREAKER_HALF_OPEN &&
	    atomic_load_explicit(&b->probes_ok, memory_order_relaxed) >= n) {
		reset_closed(b);
		gw_log_info("breaker %s: half-open -> closed (%u of %u probes succeeded)", b->name,
		            n, n);
	}
	pthread_mutex_unlock(&b->lock);
}

/* Half-open, every probe out for an open time already: hand them out again. */
static void restart_round(struct gw_breaker *b, uint64_t now_ms, uint64_t started)
{
	char text[32];

	pthread_mutex_lock(&b->lock);
	if (automatic(b) &&
	    atomic_load_explicit(&b->state, memory_order_relaxed) == GW_BREAKER_HALF_OPEN &&
	    atomic_load_explicit(&b->round_start_ms, memory_order_relaxed) == started) {
		atomic_store_explicit(&b->probes_ok, 0, memory_order_relaxed);
		atomic_store_explicit(&b->round_start_ms, now_ms, memory_order_relaxed);
		atomic_store_explicit(&b->probes_issued, 0, memory_order_release);
		gw_log_warn(
		    "breaker %s: half-open, admitting %u probes again (no outcome within %s)",
		    b->name, b->conf.half_open_requests,
		    gw_conf_format_duration(now_ms - started, text, sizeof(text)));
	}
	pthread_mutex_unlock(&b->lock);
}

/* Takes one probe slot of the current round, never counting past N. */
static bool take_probe(struct gw_breaker *b)
{
	uint32_t n = atomic_load_explicit(&b->probes_issued, memory_order_relaxed);

	while (n < b->conf.half_open_requests)
		if (atomic_compare_exchange_weak_explicit(
		        &b->probes_issued, &n, n + 1, memory_order_relaxed, memory_order_relaxed))
			return true;
	return false;
}

enum gw_breaker_admit gw_breaker_admit(struct gw_breaker *b, uint64_t now_ms,
                                       uint64_t *retry_after_ms)
{
	uint64_t started;
	uint64_t retry_after = 0, until;
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
			return GW_BREAKER_ALLOW;
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
			if (take_probe(b))
				return GW_BREAKER_PROBE;
			started = atomic_load_explicit(&b->round_start_ms, memory_order_relaxed);
			if (now_ms >=
			    started + atomic_load_explicit(&b->open_ms, memory_order_relaxed)) {
				restart_round(b, now_ms, started);
				continue;
			}
			retry_after = GW_BREAKER_PROBING_RETRY_AFTER_MS;
			verdict = GW_BREAKER_REJECT;
			goto done;
		}
	}
done:
	if (retry_after_ms)
		*retry_after_ms = retry_after;
	return verdict;
}

/* Whether the closed-state window calls for a trip; why says which rule. */
static bool should_trip(const struct gw_breaker *b, uint64_t now_ms, bool failure,
                        uint32_t consecutive, char *why, size_t size)
{
	const struct gw_breaker_conf *c = &b->conf;
	uint64_t tries, failures, slow;
	char text[32];

	if (c->consecutive_failures && failure && consecutive >= c->consecutive_failures) {
		snprintf(why, size, "%u consecutive failures", consecutive);
		return true;
	}
	/* Each count only when a rule needs it: every try pays for this. */
	tries = gw_window_sum(b->window, TRIES, now_ms);
	if (tries < c->min_requests || tries == 0)
		return false;
	failures = gw_window_sum(b->window, FAILURES, now_ms);
	if (failures * PPM >= b->failure_ppm * tries) {
		snprintf(why, size, "failure ratio %.2f >= %.2f over %llu tries",
		         (double)failures / (double)tries, c->failure_ratio,
		         (unsigned long long)tries);
		return true;
	}
	if (c->slow_call_duration_ms &&
	    (slow = gw_window_sum(b->window, SLOW, now_ms)) * PPM >= b->slow_ppm * tries) {
		snprintf(why, size, "slow call ratio %.2f >= %.2f over %llu tries slower than %s",
		         (double)slow / (double)tries, c->slow_call_ratio,
		         (unsigned long long)tries,
		         gw_conf_format_duration(c->slow_call_duration_ms, text, sizeof(text)));
		return true;
	}
	return false;
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
		window_add(b, now_ms, failure, slow);
		return;
	}
	if (state == GW_BREAKER_HALF_OPEN) {
		if (!probe)
			return; /* admitted before the trip, finished only now */
		if (failure)
			trip(b, now_ms, GW_BREAKER_HALF_OPEN, "a probe failed");
		else if (atomic_fetch_add_explicit(&b->probes_ok, 1, memory_order_relaxed) + 1 >=
		         b->conf.half_open_requests)
			half_open_to_closed(b);
		return;
	}
	if (state != GW_BREAKER_CLOSED)
		return; /* open: a try admitted before the trip, finished only now */
	window_add(b, now_ms, failure, slow);
	if (failure)
		consecutive =
		    atomic_fetch_add_explicit(&b->consecutive, 1, memory_order_relaxed) + 1;
	else if (atomic_load_explicit(&b->consecutive, memory_order_relaxed) != 0)
		atomic_store_explicit(&b->consecutive, 0, memory_order_relaxed);
	if (should_trip(b, now_ms, failure, consecutive, why, sizeof(why)))
		trip(b, now_ms, GW_BREAKER_CLOSED, why);
}

void gw_breaker_abandon_probe(struct gw_breaker *b)
{
	uint32_t n = atomic_load_explicit(&b->probes_issued, memory_order_relaxed);

	if (atomic_load_explicit(&b->state, memory_order_acquire) != GW_BREAKER_HALF_OPEN)
		return;
	while (n > 0)
		if (atomic_compare_exchange_weak_explicit(
		        &b->probes_issued, &n, n - 1, memory_order_relaxed, memory_order_relaxed))
			return;
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

	gw_window_sums(b->window, now_ms, n);
	out->tries = n[TRIES];
	out->failures = n[FAILURES];
	out->slow = n[SLOW];
	out->consecutive_failures = atomic_load_explicit(&b->consecutive, memory_order_relaxed);
	out->open_duration_ms = atomic_load_explicit(&b->open_ms, memory_order_relaxed);
}
