/*
 * A rolling-window counter: how many times each of K things happened in the
 * last N buckets of time, shared by every worker thread without a lock.
 * The circuit breaker counts tries, failures and slow tries in one; the
 * retry budget counts requests and retries in another.
 *
 *   struct gw_window *w = gw_window_new(10, 1000, 2); // 10 buckets of 1 s, 2 counters
 *   gw_window_add(w, REQUESTS, now_ms);
 *   if (gw_window_add_below(w, RETRIES, now_ms, limit)) ...  // take one, never past limit
 *   gw_window_sum(w, REQUESTS, now_ms);                       // the last 10 s
 *
 * Time comes in as now_ms (gw_clock_now_ms() on the request path, a fake
 * clock in tests); nothing here reads a clock. window.c explains the
 * algorithm and how exact the sums are.
 *
 * Ownership: gw_window_new's caller owns the window; gw_window_free once no
 * thread uses it any more.
 */
#ifndef GW_UTIL_WINDOW_H
#define GW_UTIL_WINDOW_H

#include <stdbool.h>
#include <stdint.h>

struct gw_window;

/*
 * buckets (1..65536) of bucket_ms each, counters (>= 1) counted in each;
 * out-of-range values are taken as the nearest valid ones (a bucket_ms of
 * 0 as 1). The window spans buckets * bucket_ms.
 */
struct gw_window *gw_window_new(unsigned buckets, uint64_t bucket_ms, unsigned counters);
void gw_window_free(struct gw_window *w);
/* Copies src's counts into dst when both have the same buckets, bucket
 * length and counters (a reload that keeps the settings); else nothing. */
void gw_window_copy(struct gw_window *dst, const struct gw_window *src);

/* Counts one of counter at now_ms. */
void gw_window_add(struct gw_window *w, unsigned counter, uint64_t now_ms);
/*
 * Counts one of counter at now_ms if the window ending at now_ms then holds
 * at most limit of them (that is, fewer than limit before): true when it
 * was counted. Concurrent callers never take more than limit between them.
 */
bool gw_window_add_below(struct gw_window *w, unsigned counter, uint64_t now_ms, uint64_t limit);
/* How many of counter the window ending at now_ms holds. */
uint64_t gw_window_sum(const struct gw_window *w, unsigned counter, uint64_t now_ms);
/* The same for every counter at once: out[0 .. counters). */
void gw_window_sums(const struct gw_window *w, uint64_t now_ms, uint64_t out[]);
/*
 * Forgets everything. Not atomic as a whole: an add racing a clear may
 * survive it (callers clear on a state change, under their own lock).
 */
void gw_window_clear(struct gw_window *w);

#endif
