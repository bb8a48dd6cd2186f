/*
 * Retries (retry.h): the `retry` section, the retry rules, backoff and the
 * retry budget.
 */
#include "retry.h"
#include "../../gateway/config/conf_read.h"
#include "../../gateway/util/alloc.h"

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

const struct gw_retry_conf gw_retry_conf_default = {
    .attempts = 1,
    .per_try_timeout_ms = 0,
    .on = GW_RETRY_ON_CONNECT_FAILURE | GW_RETRY_ON_RESET | GW_RETRY_ON_TIMEOUT,
    .on_status = {DEFAULT_STATUS_BITS, 0},
    .backoff_base_ms = 25,
    .backoff_max_ms = 250,
    .budget_ratio = 0.2,
    .budget_min_per_second = 10,
};

/* ---- the `retry` section ----------------------------------------------- */

static const char *const retry_keys[] = {"attempts", "per_try_timeout", "on",
                                         "backoff",  "budget",          NULL};
static const char *const backoff_keys[] = {"base", "max", NULL};
static const char *const budget_keys[] = {"ratio", "min_per_second", NULL};

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

/* `on` replaces the default list as a whole, and only when all of it is valid. */
static void parse_on(struct gw_retry_conf *c, const struct gw_conf_ctx *ctx,
                     const struct gw_node *n)
{
	uint64_t status[2] = {0, 0};
	unsigned on = 0;
	int rc = 0;

	if (!gw_conf_want_list(ctx, n, "on", "retry conditions"))
		return;
	for (size_t i = 0; i < n->count; i++)
		if (parse_on_item(ctx, n->items[i], &on, status) < 0)
			rc = -1;
	if (rc < 0)
		return;
	c->on = on;
	c->on_status[0] = status[0];
	c->on_status[1] = status[1];
}

static void parse_backoff(struct gw_retry_conf *c, const struct gw_conf_ctx *ctx,
                          const struct gw_node *n)
{
	const struct gw_node *base, *max;
	struct gw_conf_ctx sub;
	char where[GW_CONF_WHERE_MAX], a[32], b[32];
	int rc = 0;

	if (!gw_conf_want_map(ctx, n, "backoff"))
		return;
	gw_conf_ctx_enter(ctx, "backoff", &sub, where);
	gw_conf_check_keys(&sub, n, backoff_keys);
	if ((base = gw_node_get(n, "base")))
		rc |= gw_conf_duration(&sub, base, "base", 0, MIN, &c->backoff_base_ms);
	if ((max = gw_node_get(n, "max")))
		rc |= gw_conf_duration(&sub, max, "max", 0, MIN, &c->backoff_max_ms);
	if (rc < 0 || c->backoff_base_ms <= c->backoff_max_ms)
		return;
	/* Blame the value that was written: max when there is one. */
	gw_conf_format_duration(c->backoff_base_ms, a, sizeof(a));
	gw_conf_format_duration(c->backoff_max_ms, b, sizeof(b));
	if (max)
		gw_conf_bad_value(&sub, max, "max", "%s is less than base (%s)", b, a);
	else
		gw_conf_bad_value(&sub, base, "base", "%s is more than max (%s)", a, b);
}

static void parse_budget(struct gw_retry_conf *c, const struct gw_conf_ctx *ctx,
                         const struct gw_node *n)
{
	const struct gw_node *v;
	struct gw_conf_ctx sub;
	char where[GW_CONF_WHERE_MAX];

	if (!gw_conf_want_map(ctx, n, "budget"))
		return;
	gw_conf_ctx_enter(ctx, "budget", &sub, where);
	gw_conf_check_keys(&sub, n, budget_keys);
	if ((v = gw_node_get(n, "ratio")))
		gw_conf_double(&sub, v, "ratio", 0, 1, false, &c->budget_ratio);
	if ((v = gw_node_get(n, "min_per_second")))
		gw_conf_u32(&sub, v, "min_per_second", 0, 100000, &c->budget_min_per_second);
}

/*
 * node is the value of `retry`; route_ctx names the route ("route 'x'"),
 * or has a NULL where when the caller does not know it ("in a route" and
 * "in retry" then).
 */
static int parse_retry(struct gw_retry_conf *c, const struct gw_node *node,
                       const struct gw_conf_ctx *route_ctx)
{
	struct gw_conf_ctx key_ctx = *route_ctx, ctx;
	const struct gw_node *v;
	char where[GW_CONF_WHERE_MAX];
	size_t errors_before = route_ctx->errs->count;

	*c = gw_retry_conf_default;
	c->attempts = 3;
	if (!key_ctx.where)
		key_ctx.where = "a route";
	if (!gw_conf_want_map(&key_ctx, node, "retry"))
		return -1;
	gw_conf_ctx_enter(route_ctx, "retry", &ctx, where);
	gw_conf_check_keys(&ctx, node, retry_keys);
	if ((v = gw_node_get(node, "attempts")))
		gw_conf_u32(&ctx, v, "attempts", 1, 10, &c->attempts);
	if ((v = gw_node_get(node, "per_try_timeout")) &&
	    gw_conf_duration(&ctx, v, "per_try_timeout", 1, HOUR, &c->per_try_timeout_ms) == 0) {
		c->per_try_timeout_line = v->line;
		c->per_try_timeout_col = v->col;
	}
	if ((v = gw_node_get(node, "on")))
		parse_on(c, &ctx, v);
	if ((v = gw_node_get(node, "backoff")))
		parse_backoff(c, &ctx, v);
	if ((v = gw_node_get(node, "budget")))
		parse_budget(c, &ctx, v);
	return route_ctx->errs->count == errors_before ? 0 : -1;
}

/* where names the route (module.h): messages say "in retry of route 'x'". */
int gw_retry_conf_parse(void *conf, const struct gw_node *node, const char *where,
                            const char *file, struct gw_errlist *errs)
{
	struct gw_conf_ctx ctx = {.file = file, .errs = errs, .where = where};

	return parse_retry(conf, node, &ctx);
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
 * The retry budget (after Finagle's RetryBudget and Envoy's retry_budget).
 *
 * A retry is allowed while
 *
 *     retries(10 s) < ratio * requests(10 s) + min_per_second * 10
 *
 * where requests are first tries and both counts cover the last ten
 * seconds. An upstream that fails everything then receives at most
 * (1 + ratio) times its normal load, plus a small floor so that a route with
 * little traffic still gets its occasional retry: retries amplify a brief
 * failure, never a lasting one.
 *
 * The window is ten buckets of one second, bucket (second % 10). Each
 * counter is one 64-bit atomic holding (second << 32 | count): a counter
 * stamped with an older second is stale and restarts at 1 on its next use,
 * so nothing has to sweep the buckets, and the stamp and the count change
 * together in one compare-and-swap (no thread can add to a count that
 * another thread is resetting). A sum reads the counters stamped with one
 * of the last ten seconds, the current one included: a count is forgotten
 * between 9 and 10 s after it was made.
 *
 * The check and the increment of an acquire are one CAS on the current
 * second's retry counter, which every concurrent acquire of that second
 * writes: of two threads that both see one retry left, one CAS fails, reads
 * the new count and is refused. So the allowance is never exceeded, however
 * many workers ask at once. (The other nine buckets only change by being
 * restarted, which can only lower the sum.)
 *
 * The arithmetic is integral: ratio is kept in millionths and the
 * comparison is retries * 10^6 < ratio_ppm * requests + floor * 10^6, so
 * ratio 0.2 of 100 requests is exactly 20 retries, not 20.000000000000004.
 * The comparison is strict, so the allowance is the ratio rounded up:
 * 101 requests allow 21 retries, and a single request one.
 * The counts cannot overflow it: a bucket holds under 2^32, so the sums
 * stay under 2^36 and the products under 2^56.
 */
struct gw_retry_budget {
	uint64_t ratio_ppm; /* ratio in millionths, 0..10^6 */
	uint64_t floor;     /* min_per_second * 10: retries the window always allows */
	_Atomic uint64_t requests[GW_RETRY_BUDGET_BUCKETS]; /* stamped counters */
	_Atomic uint64_t retries[GW_RETRY_BUDGET_BUCKETS];
	_Atomic uint64_t exhausted; /* refusals, for the metric */
};

#define PPM 1000000ull

static uint64_t stamp(uint32_t second, uint32_t count)
{
	return (uint64_t)second << 32 | count;
}

/* The count of a stamped counter if its second is one of the window's. */
static uint64_t stamped_count(uint64_t v, uint32_t second)
{
	uint32_t age = second - (uint32_t)(v >> 32); /* wraps: a newer stamp is "very old" */

	return age < GW_RETRY_BUDGET_BUCKETS ? (uint32_t)v : 0;
}

/*
 * Adds one to the counter for second, restarting it when it counts an older
 * second. A counter already stamped with a newer second (a thread whose
 * clock lags ten seconds behind another's) is left alone.
 */
static void stamped_add(_Atomic uint64_t *c, uint32_t second)
{
	uint64_t v = atomic_load_explicit(c, memory_order_relaxed), next;

	do {
		uint32_t at = (uint32_t)(v >> 32);

		if (at == second && (uint32_t)v == UINT32_MAX)
			return; /* saturated: never carry into the stamp */
		if (at == second)
			next = v + 1;
		else if ((int32_t)(second - at) > 0)
			next = stamp(second, 1);
		else
			return;
	} while (!atomic_compare_exchange_weak_explicit(c, &v, next, memory_order_relaxed,
	                                                memory_order_relaxed));
}

struct gw_retry_budget *gw_retry_budget_new(double ratio, uint32_t min_per_second)
{
	struct gw_retry_budget *b = gw_calloc(1, sizeof(*b));

	if (!(ratio >= 0)) /* NaN too */
		ratio = 0;
	if (ratio > 1)
		ratio = 1;
	b->ratio_ppm = (uint64_t)llround(ratio * (double)PPM);
	b->floor = (uint64_t)min_per_second * GW_RETRY_BUDGET_BUCKETS;
	for (size_t i = 0; i < GW_RETRY_BUDGET_BUCKETS; i++) {
		atomic_init(&b->requests[i], 0);
		atomic_init(&b->retries[i], 0);
	}
	atomic_init(&b->exhausted, 0);
	return b;
}

void gw_retry_budget_free(struct gw_retry_budget *b)
{
	free(b);
}

void gw_retry_budget_on_request(struct gw_retry_budget *b, uint64_t now_ms)
{
	uint32_t second = (uint32_t)(now_ms / GW_RETRY_BUDGET_BUCKET_MS);

	stamped_add(&b->requests[second % GW_RETRY_BUDGET_BUCKETS], second);
}

bool gw_retry_budget_acquire(struct gw_retry_budget *b, uint64_t now_ms)
{
	uint32_t second = (uint32_t)(now_ms / GW_RETRY_BUDGET_BUCKET_MS);
	size_t cur = second % GW_RETRY_BUDGET_BUCKETS;
	uint64_t requests = 0, others = 0, allowance, v, count;

	for (size_t i = 0; i < GW_RETRY_BUDGET_BUCKETS; i++) {
		requests += stamped_count(
		    atomic_load_explicit(&b->requests[i], memory_order_relaxed), second);
		if (i != cur)
			others += stamped_count(
			    atomic_load_explicit(&b->retries[i], memory_order_relaxed), second);
	}
	allowance = b->ratio_ppm * requests + b->floor * PPM;
	v = atomic_load_explicit(&b->retries[cur], memory_order_relaxed);
	for (;;) {
		uint32_t at = (uint32_t)(v >> 32);

		if (at == second && (uint32_t)v == UINT32_MAX)
			break;
		if (at == second)
			count = (uint32_t)v;
		else if ((int32_t)(second - at) > 0)
			count = 0;
		else
			break; /* this thread's clock lags the bucket's: refuse */
		if ((others + count) * PPM >= allowance)
			break;
		if (atomic_compare_exchange_weak_explicit(
		        &b->retries[cur], &v, stamp(second, (uint32_t)count + 1),
		        memory_order_relaxed, memory_order_relaxed))
			return true;
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
	uint32_t second = (uint32_t)(now_ms / GW_RETRY_BUDGET_BUCKET_MS);

	*requests = *retries = 0;
	for (size_t i = 0; i < GW_RETRY_BUDGET_BUCKETS; i++) {
		*requests += stamped_count(
		    atomic_load_explicit(&b->requests[i], memory_order_relaxed), second);
		*retries += stamped_count(
		    atomic_load_explicit(&b->retries[i], memory_order_relaxed), second);
	}
}
