/*
 * Log line rate limit (log_limit.h).
 */
#include "log_limit.h"

/*
 * The thread whose compare-and-swap moves next_ms forward owns the line;
 * anyone who finds next_ms in the future, or loses the swap to another
 * thread doing the same, counts one suppressed line. The count is taken
 * with an exchange, so every suppressed line is reported exactly once
 * (a line counted while the winner reads the count goes with the next
 * line).
 */
bool gw_log_limit_pass(struct gw_log_limit *l, uint64_t now_ms, uint64_t interval_ms,
                       unsigned *suppressed)
{
	uint64_t next = atomic_load_explicit(&l->next_ms, memory_order_relaxed);

	if (now_ms < next ||
	    !atomic_compare_exchange_strong_explicit(&l->next_ms, &next, now_ms + interval_ms,
	                                             memory_order_relaxed, memory_order_relaxed)) {
		atomic_fetch_add_explicit(&l->suppressed, 1, memory_order_relaxed);
		return false;
	}
	*suppressed = atomic_exchange_explicit(&l->suppressed, 0, memory_order_relaxed);
	return true;
}
