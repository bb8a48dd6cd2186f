/*
 * Retries: the route key `retry`, the rules that decide whether a failed
 * try may be tried again, the backoff between tries, and the retry budget
 * that keeps retries from multiplying the load on a failing upstream.
 *
 *   retry:
 *     attempts: 3                  # tries in all, the first included (1..10)
 *     per_try_timeout: 1s          # 1ms..1h, at most the route timeout
 *     on: [connect_failure, reset, timeout, 502, 503, 504]
 *     backoff: { base: 25ms, max: 250ms }        # 0..1m each, base <= max
 *     budget: { ratio: 0.2, min_per_second: 10 } # 0..1, 0..100000
 *     hedge: { after: 50ms, max: 1 }             # or after: auto (hedge.h)
 *
 * Everything here but the budget is a pure function of its arguments; the
 * request path (txn.c) calls them and keeps the state of its own tries.
 */
#ifndef GW_MODULES_RETRY_RETRY_H
#define GW_MODULES_RETRY_RETRY_H

#include <stdbool.h>
#include <stdint.h>

#include "../module.h"
#include "../../gateway/config/conf_read.h"
#include "../../gateway/config/config.h"

/* Try outcomes a route retries on (gw_retry_conf.on). */
enum gw_retry_on {
	GW_RETRY_ON_CONNECT_FAILURE = 1 << 0,
	GW_RETRY_ON_RESET = 1 << 1, /* also an invalid response */
	GW_RETRY_ON_TIMEOUT = 1 << 2,
};

/* The statuses `on` may list. */
#define GW_RETRY_STATUS_MIN 500
#define GW_RETRY_STATUS_MAX 599

/*
 * A route's `retry` section. Plain values only: owned by whoever holds it
 * (the config snapshot for a parsed one), nothing inside to free.
 */
struct gw_retry_conf {
	uint32_t attempts;              /* tries in all: 3 when `retry:` is present, 1 without */
	uint64_t per_try_timeout_ms;    /* 0 = none: only the route timeout bounds a try */
	unsigned on;                    /* GW_RETRY_ON_* bits */
	uint64_t on_status[2];          /* bit (status - 500) for each status listed */
	uint64_t backoff_base_ms;       /* default 25ms */
	uint64_t backoff_max_ms;        /* default 250ms; >= base */
	double budget_ratio;            /* default 0.2 */
	uint32_t budget_min_per_second; /* default 10 */
	/* `hedge` (hedge.h): present, its delay (or auto), hedges per request */
	bool has_hedge;
	bool hedge_auto;
	uint64_t hedge_after_ms;
	uint32_t hedge_max;
	/* Where per_try_timeout was written (0 when it was not), for conf_check. */
	unsigned per_try_timeout_line, per_try_timeout_col;
};

/*
 * The module (registry.c, retry_module.c): counts requests into the budget,
 * sets the per-try timeout, and decides retries (conditions, method rules,
 * room before the deadline, then the budget). Runs on every route: the
 * budget is on by default. Its route state is the route's budget.
 */
extern const struct gw_module gw_retry_module;
/* The keys of `retry` (the module's fields), its conf_parse and conf_check (retry.c). */
extern const struct gw_conf_field gw_retry_fields[];
int gw_retry_conf_parse(void *conf, const struct gw_node *node, const char *where, const char *file,
                        struct gw_errlist *errs);
int gw_retry_conf_check(const void *conf, const struct gw_route_conf *route, const char *file,
                        struct gw_errlist *errs);

/*
 * What a route without a `retry` key gets: one try (no retries), every
 * other value at its default, the budget included (SPEC: the budget is on
 * even where a route sets none).
 */
extern const struct gw_retry_conf gw_retry_conf_default;

/* The route's retry section, or &gw_retry_conf_default. Never NULL. */
const struct gw_retry_conf *gw_retry_conf_of(const struct gw_route_conf *route);

/*
 * Whether a try that ended with r (and status, for GW_TRY_STATUS_FAILURE)
 * is one the route retries on. An invalid response counts as a reset;
 * GW_TRY_OK never matches.
 */
bool gw_retry_condition_matches(const struct gw_retry_conf *c, enum gw_try_result r, int status);

/*
 * Whether the request's method lets it be sent again after a try that ended
 * with r. A connect failure never reached the upstream: any method. Else
 * GET, HEAD, OPTIONS, PUT and DELETE (idempotent by RFC 9110), and POST and
 * PATCH only when the request carries an Idempotency-Key header.
 * method_bit is one GW_METHOD_* bit.
 */
bool gw_retry_method_allows(unsigned method_bit, bool has_idempotency_key, enum gw_try_result r);

/*
 * The wait before retry number retry_index (0 before the second try, 1
 * before the third, ...): exponential backoff with full jitter, uniform in
 * [0, min(max, base * 2^retry_index)], drawn from random64 (any 64 random
 * bits; the caller owns the generator).
 */
uint64_t gw_retry_backoff_ms(const struct gw_retry_conf *c, unsigned retry_index,
                             uint64_t random64);

/* ---- the budget -------------------------------------------------------- */

/* The budget's long window: 10 buckets of one second (the ratio over time). */
#define GW_RETRY_BUDGET_BUCKETS   10
#define GW_RETRY_BUDGET_BUCKET_MS 1000
/*
 * Its short window, which bounds every single second: slices of 20 ms,
 * requests counted in the 50 newest (the last 0.98 to 1 s), retries in the
 * 51 newest (the last 1 to 1.02 s). retry.c says why.
 */
#define GW_RETRY_BUDGET_SECOND_SLICES   50
#define GW_RETRY_BUDGET_SECOND_SLICE_MS 20

/*
 * A route's retry budget, shared by every worker thread (lock-free). Owned
 * by whoever made it with gw_retry_budget_new; gw_retry_budget_free when no
 * thread uses it any more.
 */
struct gw_retry_budget;

/*
 * ratio: retries allowed per first try (0..1); min_per_second: retries
 * allowed per second whatever the traffic (0..100000).
 */
struct gw_retry_budget *gw_retry_budget_new(double ratio, uint32_t min_per_second);
void gw_retry_budget_free(struct gw_retry_budget *b);
/*
 * A reload: the budget goes on with what old has counted (both windows, so
 * the retries already spent in this second and these 10 s stay spent).
 */
void gw_retry_budget_carry(struct gw_retry_budget *b, const struct gw_retry_budget *old);
/* Counts one request (its first try) at now_ms. */
void gw_retry_budget_on_request(struct gw_retry_budget *b, uint64_t now_ms);
/*
 * Takes one retry from the budget: true (and the retry counted) when both
 *
 *   - the retries of the last second are fewer than ratio * requests of the
 *     last second + min_per_second, and
 *   - the retries of the last 10 s are fewer than ratio * requests of the
 *     last 10 s + min_per_second * 10;
 *
 * false (and a refusal counted) otherwise. So no one-second span ever holds
 * more than ratio * requests of that second + min_per_second retries
 * (rounded up), however the failures bunch up and however much was saved
 * before (retry.c has the exact bound).
 */
bool gw_retry_budget_acquire(struct gw_retry_budget *b, uint64_t now_ms);
/* Refusals since the budget was made (gateway_retry_budget_exhausted_total). */
uint64_t gw_retry_budget_exhausted(const struct gw_retry_budget *b);
/* Requests and retries counted in the 10 s window that ends at now_ms. */
void gw_retry_budget_window(const struct gw_retry_budget *b, uint64_t now_ms, uint64_t *requests,
                            uint64_t *retries);

#endif
