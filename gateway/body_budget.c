#include "body_budget.h"

#include <stdatomic.h>

#include "../modules/shedding/shedding.h"
#include "config/config.h"
#include "http/request_head.h"
#include "util/clock.h"
#include "util/log.h"

static _Atomic uint64_t used;
static _Atomic uint64_t last_warn_ms; /* refusals are logged once a second at most */

bool gw_body_budget_take(uint64_t *share, uint64_t bytes, uint64_t limit)
{
	uint64_t cur;

	gw_body_budget_release(share);
	if (bytes == 0)
		return true;
	cur = atomic_load_explicit(&used, memory_order_relaxed);
	do {
		if (bytes > limit || cur > limit - bytes)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(
	    &used, &cur, cur + bytes, memory_order_relaxed, memory_order_relaxed));
	*share = bytes;
	return true;
}

/* Tells the operator, once a second at most, that bodies are being shed. */
static void warn_shed(uint64_t bytes, uint64_t limit)
{
	uint64_t now = gw_clock_now_ms();
	uint64_t last = atomic_load_explicit(&last_warn_ms, memory_order_relaxed);

	if (now - last < 1000 || !atomic_compare_exchange_strong(&last_warn_ms, &last, now))
		return;
	gw_log_warn("request bodies buffered: %llu bytes, limits.max_buffered_body_bytes %llu:"
	            " a %llu-byte body is shed (503)",
	            (unsigned long long)gw_body_budget_used(), (unsigned long long)limit,
	            (unsigned long long)bytes);
}

bool gw_body_budget_admit(uint64_t *share, const struct gw_request_head *head,
                          const struct gw_limits_conf *limits)
{
	uint64_t bytes = 0;

	if (head->chunked)
		bytes = limits->max_body_bytes;
	else if (head->has_content_length)
		bytes = head->content_length;
	if (gw_body_budget_take(share, bytes, limits->max_buffered_body_bytes))
		return true;
	warn_shed(bytes, limits->max_buffered_body_bytes);
	return false;
}

void gw_body_budget_settle(uint64_t *share, uint64_t bytes)
{
	if (bytes >= *share)
		return;
	atomic_fetch_sub_explicit(&used, *share - bytes, memory_order_relaxed);
	*share = bytes;
}

void gw_body_budget_release(uint64_t *share)
{
	if (*share == 0)
		return;
	atomic_fetch_sub_explicit(&used, *share, memory_order_relaxed);
	*share = 0;
}

uint64_t gw_body_budget_used(void)
{
	return atomic_load_explicit(&used, memory_order_relaxed);
}

int gw_body_budget_retry_after_s(const struct gw_shedding_conf *shedding, uint64_t random64)
{
	uint64_t s = (gw_shed_retry_after_ms(shedding, random64) + 999) / 1000;

	return s < 1 ? 1 : s > 86400 ? 86400 : (int)s;
}
