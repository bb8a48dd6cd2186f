/*
 * Retries (retry.h): the `retry` section, the retry rules, backoff and the
 * retry budget.
 */
#include "retry.h"
#include "hedge.h"
#include "../../gateway/config/conf_read.h"
#include "../../gateway/util/alloc.h"
#include "../../gateway/util/window.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEC  1000ull
#define MIN  (60 * SEC)
#define HOUR (60 * MIN)

/* 502, 503 and 504 as bits of on_status[0]. */
#define DEFAULT_STATUS_BITS ((1ull << 2) | (1ull << 3) | (1ull << 4))

/* Shared by gw_retry_conf_default and the section's table. */
#define DEFAULT_BACKOFF_BASE_MS       25
#define DEFAULT_BACKOFF_MAX_MS        250
#define DEFAULT_BUDGET_RATIO          0.2
#define DEFAULT_BUDGET_MIN_PER_SECOND 10

const struct gw_retry_conf gw_retry_conf_default = {
    .attempts = 1,
    .per_try_timeout_ms = 0,
    .on = GW_RETRY_ON_CONNECT_FAILURE | GW_RETRY_ON_RESET | GW_RETRY_ON_TIMEOUT,
    .on_status = {DEFAULT_STATUS_BITS, 0},
    .backoff_base_ms = DEFAULT_BACKOFF_BASE_MS,
    .backoff_max_ms = DEFAULT_BACKOFF_MAX_MS,
    .budget_ratio = DEFAULT_BUDGET_RATIO,
    .budget_min_per_second = DEFAULT_BUDGET_MIN_PER_SECOND,
};

/* ---- the `retry` section ----------------------------------------------- */

static void status_set(uint64_t bits[2], unsigned status)
{
	unsigned i = status - GW_RETRY_STATUS_MIN;

	bits[i / 64] |= 1ull << (i % 64);
}

static bool status_has(const uint64_t bits[2], int status)
{
	unsigned i;

	if (status < GW_RETRY_STATUS_MIN || status > GW_RETRY_STATUS_MAX)
		return false;
	i = (unsigned)(status - GW_RETRY_STATUS_MIN);
	return (bits[i / 64] >> (i % 64)) & 1;
}

/* One item of `on`: a condition name or a status 500..599. */
static int parse_on_item(const struct gw_conf_ctx *ctx, const struct gw_node *n, unsigned *on,
                         uint64_t status[2])
{
	static const struct {
		const char *name;
		unsigned bit;
	} names[] = {
	    {"connect_failure", GW_RETRY_ON_CONNECT_FAILURE},
	    {"reset", GW_RETRY_ON_RESET},
	    {"timeout", GW_RETRY_ON_TIMEOUT},
	};
	size_t digits;

	if (!gw_conf_want_scalar(ctx, n, "on", "a retry condition"))
		return -1;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(n->value, names[i].name) == 0) {
			*on |= names[i].bit;
			return 0;
		}
	}
	digits = strspn(n->value, "0123456789");
	if (digits == 0 || n->value[digits] != '\0') {
		gw_conf_bad_value(ctx, n, "on",
		                  "unknown retry condition '%s' (expected connect_failure, reset, "
		                  "timeout or a status %d..%d)",
		                  n->value, GW_RETRY_STATUS_MIN, GW_RETRY_STATUS_MAX);
		return -1;
	}
	if (digits > 3 || atoi(n->value) < GW_RETRY_STATUS_MIN ||
	    atoi(n->value) > GW_RETRY_STATUS_MAX) {
		gw_conf_bad_value(ctx, n, "on", "status %s is out of range (%d..%d)", n->value,
		                  GW_RETRY_STATUS_MIN, GW_RETRY_STATUS_MAX);
		return -1;
	}
	status_set(status, (unsigned)atoi(n->value));
	return 0;
}

/*
 * `on` replaces the default list as a whole, and only when all of it is
 * valid; its default is set by gw_retry_conf_parse.
 */
static int read_on(const struct gw_conf_ctx *ctx, const struct gw_node *n, const char *key,
                   void *obj)
{
	struct gw_retry_conf *c = obj;
	uint64_t status[2] = {0, 0};
	unsigned on = 0;
	int rc = 0;

	if (!gw_conf_want_list(ctx, n, key, "retry conditions"))
		return -1;
	for (size_t i = 0; i < n->count; i++)
		if (parse_on_item(ctx, n->items[i], &on, status) < 0)
			rc = -1;
	if (rc < 0)
		return -1;
	c->on = on;
	c->on_status[0] = status[0];
	c->on_status[1] = status[1];
	return 0;
}

/* base <= max; blame the value that was written: max when there is one. */
static void backoff_check(const struct gw_conf_section *s)
{
	const struct gw_retry_conf *c = s->obj;
	const struct gw_node *max = gw_conf_section_value(s, "max");
	char a[32], b[32];

	if (gw_conf_section_refused(s, "base") || gw_conf_section_refused(s, "max") ||
	    c->backoff_base_ms <= c->backoff_max_ms)
		return;
	gw_conf_format_duration(c->backoff_base_ms, a, sizeof(a));
	gw_conf_format_duration(c->backoff_max_ms, b, sizeof(b));
	if (max)
		gw_conf_bad_value(s->ctx, max, "max", "%s is less than base (%s)", b, a);
	else
		gw_conf_bad_value(s->ctx, gw_conf_section_value(s, "base"), "base",
		                  "%s is more than max (%s)", a, b);
}

/* Where per_try_timeout was written, for the check against the route timeout. */
static void retry_check(const struct gw_conf_section *s)
{
	struct gw_retry_conf *c = s->obj;
	const struct gw_node *v = gw_conf_section_value(s, "per_try_timeout");

	if (v && !gw_conf_section_refused(s, "per_try_timeout")) {
		c->per_try_timeout_line = v->line;
		c->per_try_timeout_col = v->col;
	}
}

#define CONF struct gw_retry_conf

static const struct gw_conf_field backoff_fields[] = {
    {GW_CONF_DURATION("base", CONF, backoff_base_ms, 0, MIN, DEFAULT_BACKOFF_BASE_MS)},
    {GW_CONF_DURATION("max", CONF, backoff_max_ms, 0, MIN, DEFAULT_BACKOFF_MAX_MS)},
    {.key = NULL, .check = backoff_check},
};

static const struct gw_conf_field budget_fields[] = {
    {GW_CONF_DOUBLE("ratio", CONF, budget_ratio, 0, 1, false, DEFAULT_BUDGET_RATIO)},
    {GW_CONF_U32("min_per_second", CONF, budget_min_per_second, 0, 100000,
                 DEFAULT_BUDGET_MIN_PER_SECOND)},
    {.key = NULL},
};

/* attempts: 3 when `retry:` is written at all (gw_retry_conf_default has 1). */
const struct gw_conf_field gw_retry_fields[] = {
    {GW_CONF_U32("attempts", CONF, attempts, 1, 10, 3)},
    {GW_CONF_DURATION("per_try_timeout", CONF, per_try_timeout_ms, 1, HOUR, 0)},
    {GW_CONF_CUSTOM("on", read_on)},
    {GW_CONF_MAP("backoff", backoff_fields)},
    {GW_CONF_MAP("budget", budget_fields)},
    {GW_CONF_MAP("hedge", gw_hedge_fields)},
    {.key = NULL, .check = retry_check},
};

#undef CONF

/* where names the route (module.h): messages say "in retry of route 'x'". */
int gw_retry_conf_parse(void *conf, const struct gw_node *node, const char *where, const char *file,
                        struct gw_errlist *errs)
{
	struct gw_retry_conf *c = conf;

	c->on = gw_retry_conf_default.on;
	c->on_status[0] = gw_retry_conf_default.on_status[0];
	c->on_status[1] = gw_retry_conf_default.on_status[1];
	return gw_module_conf_read(&gw_retry_module, conf, node, where, file, errs);
}

int gw_retry_conf_check(const void *conf, const struct gw_route_conf *route, const char *file,
                        struct gw_errlist *errs)
{
	const struct gw_retry_conf *c = conf;
	char per_try[32], timeout[32];

	if (!c->per_try_timeout_line || c->per_try_timeout_ms <= route->timeout_ms)
		return 0;
	gw_conf_format_duration(c->per_try_timeout_ms, per_try, sizeof(per_try));
	gw_conf_format_duration(route->timeout_ms, timeout, sizeof(timeout));
	if (route->name)
		gw_errlist_add(errs,
		               "%s:%u:%u: 'per_try_timeout' in retry of route '%s': %s is more "
		               "than the route timeout (%s)",
		               file, c->per_try_timeout_line, c->per_try_timeout_col, route->name,
		               per_try, timeout);
	else
		gw_errlist_add(errs,
		               "%s:%u:%u: 'per_try_timeout' in retry of route %zu: %s is more "
		               "than the route timeout (%s)",
		               file, c->per_try_timeout_line, c->per_try_timeout_col,
		               route->index + 1, per_try, timeout);
	return -1;
}

const struct gw_retry_conf *gw_retry_conf_of(const struct gw_route_conf *route)
{
	for (size_t i = 0; i < gw_modules_count && i < GW_MAX_MODULES; i++)
		if (gw_modules[i] == &gw_retry_module && route->module_conf[i])
			return route->module_conf[i];
	return &gw_retry_conf_default;
}

/* ---- retry rules ------------------------------------------------------- */

bool gw_retry_condition_matches(const struct gw_retry_conf *c, enum gw_try_result r, int status)
{
	switch (r) {
	case GW_TRY_CONNECT_FAILURE:
		return c->on & GW_RETRY_ON_CONNECT_FAILURE;
	case GW_TRY_RESET:
	case GW_TRY_INVALID_RESPONSE:
		return c->on & GW_RETRY_ON_RESET;
	case GW_TRY_TIMEOUT:
		return c->on & GW_RETRY_ON_TIMEOUT;
	case GW_TRY_STATUS_FAILURE:
		return status_has(c->on_status, status);
	case GW_TRY_OK:
	default:
		return false;
	}
}

bool gw_retry_method_allows(unsigned method_bit, bool has_idempotency_key, enum gw_try_result r)
{
	const unsigned idempotent =
	    GW_METHOD_GET | GW_METHOD_HEAD | GW_METHOD_OPTIONS | GW_METHOD_PUT | GW_METHOD_DELETE;
	const unsigned with_key = GW_METHOD_POST | GW_METHOD_PATCH;

	if (r == GW_TRY_CONNECT_FAILURE)
		return true;
	/* Exactly one bit: a mask of several methods is no request's method. */
	if (method_bit == 0 || (method_bit & (method_bit - 1)) != 0)
		return false;
	if (method_bit & idempotent)
		return true;
	return (method_bit & with_key) && has_idempotency_key;
}

/*
 * Exponential backoff with "full jitter" (AWS Architecture Blog,
 * "Exponential Backoff And Jitter"): the wait before retry i is uniform in
 * [0, min(max, base * 2^i)]. Plain exponential backoff makes every client
 * that failed at the same moment retry at the same moment again; spreading
 * each wait over the whole interval breaks those waves up, and the cap
 * keeps a long outage from turning into minute-long waits.
 *
 * base * 2^i is computed without overflow: it stays under max exactly when
 * base <= max >> i. random64 % (cap + 1) has a bias of at most
 * (cap + 1) / 2^64, nothing a backoff can notice (cap is at most a minute).
 */
uint64_t gw_retry_backoff_ms(const struct gw_retry_conf *c, unsigned retry_index, uint64_t random64)
{
	uint64_t cap = c->backoff_max_ms;

	if (c->backoff_base_ms == 0)
		cap = 0;
	else if (retry_index < 64 && c->backoff_base_ms <= (cap >> retry_index))
		cap = c->backoff_base_ms << retry_index;
	if (cap == UINT64_MAX)
		return random64;
	return random64 % (cap + 1);
}

/* ---- the budget -------------------------------------------------------- */

/*
 * The retry budget (after Finagle's RetryBudget and Envoy's retry_budget):
 * retries amplify a brief failure, never a lasting one. A retry is allowed
 * while both
 *
 *     retries(1 s)  < ratio * requests(1 s)  + min_per_second        (the second)
 *     retries(10 s) < ratio * requests(10 s) + min_per_second * 10   (the window)
 *
 * where requests are first tries, so an upstream that fails everything
 * receives at most (1 + ratio) times its normal load plus a small floor,
 * and a route with little traffic still gets its occasional retry.
 *
 * Why a second as well as 10 s. With the 10 s window alone, an outage that
 * follows a healthy period finds ten seconds of requests and almost no
 * retries in it: every failure is retried until 10 s of allowance is gone,
 * and a third of that went out in the first second of the outage (2.3x the
 * offered load, measured, with ratio 0.2). Counting over the last second
 * too means no second can spend more than one second's allowance, however
 * long the calm before.
 *
 * Why a sliding second and not a token bucket. A bucket refilled by
 * requests and capped at C tokens lets C + one second's income through in
 * the first second of an outage: 2x the allowance with C = one second's
 * worth. To stay within one second's allowance C would have to be a small
 * fraction of it, and then a burst of failures in a healthy second (a
 * server that dies with fifty requests in flight) is mostly refused though
 * that second had room for all of them. The sliding second allows exactly
 * what the bound allows: any mix of failures, as long as the retries of
 * every one-second span stay within ratio of its requests. (In a lasting
 * outage it spends each second's allowance on the first failures of that
 * second; it is bounded per second, not spread evenly within one.)
 *
 * Why keep the 10 s window. Both checks round the allowance up (below), so
 * a route with one request a second could retry once a second, ratio 1,
 * on the second alone; the window holds it to ratio over 10 s (2 retries
 * for 10 requests at 0.2). It is also what the status page reports.
 *
 * How exact the second is. It is cut in slices of W = 20 ms: requests are
 * counted in the newest 50 slices, that is the last 980 to 1000 ms;
 * retries in the newest 51, the last 1000 to 1020 ms. Take any span of one
 * second and the last retry allowed in it, at t: the 51 slices counted at t
 * reach back to t - 1000 ms at least, so they hold every retry of the span,
 * and the 50 slices of requests reach back less than 1000 ms. So
 *
 *     retries in any 1 s <= ceil(ratio * requests in the 1 s before the
 *                                last of them + min_per_second)
 *
 * with no margin for the slicing: at a steady rate R, never more than
 * ratio * R + min_per_second + 1. The price is in the other direction: a
 * steady outage gets about 98% of ratio (retries over a slightly longer
 * span than the requests that pay for them). Finer slices would narrow
 * that and cost more words to sum; 20 ms keeps the stamps of window.c good
 * for a slice left untouched 2^31 times, 1.3 years.
 *
 * Concurrency. Three gw_windows (util/window.h): the 10 s window (requests
 * and retries, one slot each per second), the second's requests and the
 * second's retries. An acquire checks the window by reading it, then takes
 * its retry from the second in one compare-and-swap (gw_window_add_below on
 * the current slice, which every concurrent acquire of that slice writes),
 * then counts it in the window. So the second's bound holds exactly however
 * many workers ask at once; the window's can be passed by the acquires that
 * race for its last retry (each within the second's bound), by at most one
 * per racing worker. A request costs two atomic adds, an acquire about 120
 * loads and two adds; memory is fixed (about 1 KB a route), nothing is
 * allocated after gw_retry_budget_new.
 *
 * The arithmetic is integral: ratio is kept in millionths and a limit is
 * ceil((ratio_ppm * requests + floor * 10^6) / 10^6), retries < limit, so
 * ratio 0.2 of 100 requests is exactly 20 retries, not 20.000000000000004.
 * The comparison is strict, so the allowance is the ratio rounded up: 101
 * requests allow 21 retries, and a single request one. The counts cannot
 * overflow it: a slot holds under 2^32, so the sums stay under 2^38 and the
 * products under 2^58.
 */
struct gw_retry_budget {
	uint64_t ratio_ppm;             /* ratio in millionths, 0..10^6 */
	uint64_t floor;                 /* min_per_second: retries a second always allows */
	struct gw_window *window;       /* owned: requests and retries of the last 10 s */
	struct gw_window *second_reqs;  /* owned: requests of the last 0.98..1 s */
	struct gw_window *second_tries; /* owned: retries of the last 1..1.02 s */
	_Atomic uint64_t exhausted;     /* refusals, for the metric */
};

enum { REQUESTS = 0, RETRIES, COUNTERS };

#define PPM 1000000ull

struct gw_retry_budget *gw_retry_budget_new(double ratio, uint32_t min_per_second)
{
	struct gw_retry_budget *b = gw_calloc(1, sizeof(*b));

	if (!(ratio >= 0)) /* NaN too */
		ratio = 0;
	if (ratio > 1)
		ratio = 1;
	b->ratio_ppm = (uint64_t)llround(ratio * (double)PPM);
	b->floor = min_per_second;
	b->window = gw_window_new(GW_RETRY_BUDGET_BUCKETS, GW_RETRY_BUDGET_BUCKET_MS, COUNTERS);
	b->second_reqs =
	    gw_window_new(GW_RETRY_BUDGET_SECOND_SLICES, GW_RETRY_BUDGET_SECOND_SLICE_MS, 1);
	b->second_tries =
	    gw_window_new(GW_RETRY_BUDGET_SECOND_SLICES + 1, GW_RETRY_BUDGET_SECOND_SLICE_MS, 1);
	atomic_init(&b->exhausted, 0);
	return b;
}

void gw_retry_budget_free(struct gw_retry_budget *b)
{
	if (!b)
		return;
	gw_window_free(b->window);
	gw_window_free(b->second_reqs);
	gw_window_free(b->second_tries);
	free(b);
}

void gw_retry_budget_carry(struct gw_retry_budget *b, const struct gw_retry_budget *old)
{
	gw_window_copy(b->window, old->window);
	gw_window_copy(b->second_reqs, old->second_reqs);
	gw_window_copy(b->second_tries, old->second_tries);
	atomic_store(&b->exhausted, atomic_load(&old->exhausted));
}

void gw_retry_budget_on_request(struct gw_retry_budget *b, uint64_t now_ms)
{
	gw_window_add(b->window, REQUESTS, now_ms);
	gw_window_add(b->second_reqs, 0, now_ms);
}

/* ceil((ratio * requests + floor) in whole retries): retries < it are allowed. */
static uint64_t limit_of(const struct gw_retry_budget *b, uint64_t requests, uint64_t floor)
{
	return (b->ratio_ppm * requests + floor * PPM + PPM - 1) / PPM;
}

bool gw_retry_budget_acquire(struct gw_retry_budget *b, uint64_t now_ms)
{
	uint64_t n[COUNTERS], second;

	gw_window_sums(b->window, now_ms, n);
	if (n[RETRIES] < limit_of(b, n[REQUESTS], b->floor * GW_RETRY_BUDGET_BUCKETS)) {
		second = gw_window_sum(b->second_reqs, 0, now_ms);
		if (gw_window_add_below(b->second_tries, 0, now_ms,
		                        limit_of(b, second, b->floor))) {
			gw_window_add(b->window, RETRIES, now_ms);
			return true;
		}
	}
	atomic_fetch_add_explicit(&b->exhausted, 1, memory_order_relaxed);
	return false;
}

uint64_t gw_retry_budget_exhausted(const struct gw_retry_budget *b)
{
	return atomic_load_explicit(&b->exhausted, memory_order_relaxed);
}

void gw_retry_budget_window(const struct gw_retry_budget *b, uint64_t now_ms, uint64_t *requests,
                            uint64_t *retries)
{
	uint64_t n[COUNTERS];

	gw_window_sums(b->window, now_ms, n);
	*requests = n[REQUESTS];
	*retries = n[RETRIES];
}
