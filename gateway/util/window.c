/*
 * Rolling-window counters (window.h).
 *
 * The window is N buckets of W ms. Time is cut into epochs, epoch =
 * now / W, and epoch e counts in bucket e % N, so the buckets are reused
 * round and round and the window ending at epoch e is epochs e-N+1 .. e.
 * Every counter of every bucket is one 64-bit atomic word holding
 *
 *     (epoch << 32) | count
 *
 * the epoch it counts for and how many so far. That stamp is the whole
 * trick:
 *
 *   - Adding at epoch e to a word stamped e adds one; to a word stamped
 *     with an older epoch (it counted a past turn of the ring) restarts it
 *     at (e, 1); to a word stamped with a newer epoch (this thread's clock
 *     lags another's) does nothing, so a lagging clock never wipes newer
 *     counts. A word that counts nothing (every word starts as 0, whatever
 *     the clock says then) is restarted whatever its stamp: there is
 *     nothing in it to wipe. Stamp and count change in one compare-and-
 *     swap: no thread can add to a count that another thread is
 *     restarting, no add is lost or counted twice, and nothing (no timer,
 *     no sweeping thread) ever has to clear old buckets.
 *   - A sum at epoch e reads the N words of the counter and keeps the counts
 *     stamped with one of the window's epochs, e-N+1 .. e (the wrapped
 *     difference e - stamp is below N); a word still holding a past turn of
 *     the ring counts zero.
 *   - add_below reads the other N-1 buckets once, then checks and adds in
 *     one compare-and-swap on the current bucket's word, which every
 *     add_below of that epoch writes: of two threads that both see one left,
 *     one CAS fails, reads the new count and is refused.
 *
 * How exact it is:
 *
 *   - In time: a count made at epoch e is in every sum from e to e+N-1 and
 *     in none after, so it is forgotten between (N-1)*W and N*W after it was
 *     made (the budget's 10 buckets of 1 s: between 9 and 10 s). The edge
 *     is coarse on purpose: O(N*K) memory, no allocation per add.
 *   - Under concurrent adds, a sum is N relaxed loads, not a snapshot: it
 *     holds every add that finished before it began and none that began
 *     after it ended; adds in between may or may not be in it. The K
 *     counters of a bucket are separate words, so a reader racing a writer
 *     may see its failure before its try; the writer's own sum after its
 *     adds sees both.
 *   - add_below never lets concurrent callers of one epoch take more than
 *     limit: the other buckets only change by being restarted, which can
 *     only lower the sum. Callers whose clocks disagree on the epoch (a
 *     worker's cached clock lagging into the previous bucket) count in
 *     different words; the bound can then be passed by the adds of the
 *     lagging callers at that moment.
 *   - Limits: a bucket's count saturates at 2^32 - 1 (further adds to it are
 *     dropped, never carried into the stamp), so a sum is below N * 2^32.
 *     Stamps keep the low 32 bits of the epoch and are compared by their
 *     wrapped difference (the bucket is the whole epoch % N, so the ring
 *     keeps its order when they wrap): a word left untouched for 2^31
 *     epochs would take a later epoch for an older one and refuse adds for
 *     as long again. That is 68 years of 1 s buckets and 6.8 years of the
 *     breaker's smallest (100 ms); millisecond buckets would want wider
 *     stamps. At most 65536 buckets.
 *
 * Cost: an add is one CAS on one word (a few when threads collide on it),
 * and no division: the epoch and bucket of "now" come from a hint that
 * changes once a bucket (struct gw_window). A sum is N loads, in a row.
 * Nothing takes a lock. A running total would make sums O(1), but staying
 * exact while buckets expire and clocks lag needs the total and its bucket
 * to change together (a lock, or a two-word CAS), and every add would pay a
 * second atomic write to a line that every worker writes; N loads of lines
 * that mostly stay in each core's cache cost less. The breaker, which sums
 * after every try, reads only the counters its rules need.
 */
#include "window.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_LINE 64

/* The most buckets a window has: the hint keeps a slot in 16 bits. */
#define MAX_BUCKETS 65536u

struct gw_window {
	uint64_t bucket_ms;
	unsigned buckets, counters;
	/*
	 * (epoch << 16 | slot) of the newest epoch an add has computed: for
	 * every call made during that bucket, its epoch and slot are a
	 * multiplication and a comparison away, where computing them takes
	 * two 64-bit divisions, dearer than the rest of an add. Any value it
	 * holds is right for some instant, and a call uses it only after
	 * checking that now_ms falls in that epoch, so racing stores are
	 * harmless. It changes once a bucket.
	 */
	_Atomic uint64_t hint;
	/*
	 * words[counter * buckets + bucket]: stamped counters, as above, a
	 * counter's buckets side by side (a sum reads them in a row), from the
	 * next cache line on, so that the adds of every worker do not keep
	 * taking the read-only fields above away from the readers.
	 */
	_Alignas(CACHE_LINE) _Atomic uint64_t words[];
};

static uint64_t stamp(uint32_t epoch, uint32_t count)
{
	return (uint64_t)epoch << 32 | count;
}

/* The count of a stamped word if its epoch is one of the window's ending at epoch. */
static uint64_t stamped_count(uint64_t v, uint32_t epoch, unsigned buckets)
{
	uint32_t age = epoch - (uint32_t)(v >> 32); /* wraps: a newer stamp is "very old" */

	/* a mask, not a branch: the sums add without waiting on a compare */
	return (uint32_t)v & (0 - (uint64_t)(age < buckets));
}

/* Where a time counts: its epoch (as stamped: the low 32 bits) and its bucket. */
struct place {
	uint32_t epoch;
	unsigned slot; /* epoch % buckets, of the whole epoch */
};

/* place_of the slow way, by division; an add (publish) moves the hint on. */
static struct place place_computed(const struct gw_window *w, uint64_t now_ms, bool publish)
{
	uint64_t epoch = now_ms / w->bucket_ms;
	struct place p = {.epoch = (uint32_t)epoch, .slot = (unsigned)(epoch % w->buckets)};
	uint64_t hint = atomic_load_explicit(&w->hint, memory_order_relaxed);

	if (publish && epoch > hint >> 16 && epoch < 1ull << 48)
		atomic_store_explicit((_Atomic uint64_t *)&w->hint, epoch << 16 | p.slot,
		                      memory_order_relaxed);
	return p;
}

static inline struct place place_of(const struct gw_window *w, uint64_t now_ms, bool publish)
{
	uint64_t hint = atomic_load_explicit(&w->hint, memory_order_relaxed), epoch = hint >> 16;

	if (now_ms - epoch * w->bucket_ms < w->bucket_ms) /* epoch * bucket_ms <= now_ms: no wrap */
		return (struct place){.epoch = (uint32_t)epoch, .slot = (unsigned)(hint & 0xffff)};
	return place_computed(w, now_ms, publish);
}

struct gw_window *gw_window_new(unsigned buckets, uint64_t bucket_ms, unsigned counters)
{
	struct gw_window *w;
	size_t n, size;

	if (buckets == 0)
		buckets = 1;
	if (buckets > MAX_BUCKETS)
		buckets = MAX_BUCKETS;
	if (counters == 0)
		counters = 1;
	n = (size_t)buckets * counters;
	size = (sizeof(*w) + n * sizeof(w->words[0]) + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
	w = aligned_alloc(CACHE_LINE, size);
	if (!w) {
		fprintf(stderr, "gateway: out of memory allocating %zu bytes\n", size);
		abort();
	}
	memset(w, 0, size);
	w->bucket_ms = bucket_ms ? bucket_ms : 1;
	w->buckets = buckets;
	w->counters = counters;
	atomic_init(&w->hint, 0);
	for (size_t i = 0; i < n; i++)
		atomic_init(&w->words[i], 0);
	return w;
}

void gw_window_free(struct gw_window *w)
{
	free(w);
}

void gw_window_copy(struct gw_window *dst, const struct gw_window *src)
{
	size_t n = (size_t)dst->buckets * dst->counters;

	/* stamps are epochs of bucket_ms: another shape would mean other times */
	if (dst->buckets != src->buckets || dst->counters != src->counters ||
	    dst->bucket_ms != src->bucket_ms)
		return;
	for (size_t i = 0; i < n; i++)
		atomic_store_explicit(&dst->words[i],
		                      atomic_load_explicit(&src->words[i], memory_order_relaxed),
		                      memory_order_relaxed);
	atomic_store_explicit(&dst->hint, atomic_load_explicit(&src->hint, memory_order_relaxed),
	                      memory_order_relaxed);
}

void gw_window_add(struct gw_window *w, unsigned counter, uint64_t now_ms)
{
	struct place p = place_of(w, now_ms, true);
	uint32_t epoch = p.epoch;
	_Atomic uint64_t *c = &w->words[(size_t)counter * w->buckets + p.slot];
	uint64_t v = atomic_load_explicit(c, memory_order_relaxed), next;

	do {
		uint32_t at = (uint32_t)(v >> 32);

		if (at == epoch && (uint32_t)v == UINT32_MAX)
			return; /* saturated: never carry into the stamp */
		if (at == epoch)
			next = v + 1;
		else if ((int32_t)(epoch - at) > 0 || (uint32_t)v == 0)
			next = stamp(epoch, 1);
		else
			return; /* stamped with a newer epoch: leave it alone */
	} while (!atomic_compare_exchange_weak_explicit(c, &v, next, memory_order_relaxed,
	                                                memory_order_relaxed));
}

/*
 * The sum of count stamped words from word on, in the window of buckets
 * ending at epoch. Two running sums, so that the loads of one word do not
 * wait for the additions of the one before.
 */
static inline uint64_t sum_words(const _Atomic uint64_t *word, unsigned count, uint32_t epoch,
                                 unsigned buckets)
{
	uint64_t a = 0, b = 0;
	unsigned i = 0;

	for (; i + 1 < count; i += 2, word += 2) {
		a += stamped_count(atomic_load_explicit(&word[0], memory_order_relaxed), epoch,
		                   buckets);
		b += stamped_count(atomic_load_explicit(&word[1], memory_order_relaxed), epoch,
		                   buckets);
	}
	if (i < count)
		a +=
		    stamped_count(atomic_load_explicit(word, memory_order_relaxed), epoch, buckets);
	return a + b;
}

bool gw_window_add_below(struct gw_window *w, unsigned counter, uint64_t now_ms, uint64_t limit)
{
	struct place p = place_of(w, now_ms, true);
	uint32_t epoch = p.epoch;
	unsigned cur = p.slot;
	_Atomic uint64_t *c = &w->words[(size_t)counter * w->buckets + cur];
	uint64_t others, v;

	/* every bucket but the current one, whose count the CAS checks */
	others = sum_words(c - cur, cur, epoch, w->buckets) +
	         sum_words(c + 1, w->buckets - cur - 1, epoch, w->buckets);
	v = atomic_load_explicit(c, memory_order_relaxed);
	for (;;) {
		uint32_t at = (uint32_t)(v >> 32), count;

		if (at == epoch && (uint32_t)v == UINT32_MAX)
			return false; /* saturated */
		if (at == epoch)
			count = (uint32_t)v;
		else if ((int32_t)(epoch - at) > 0 || (uint32_t)v == 0)
			count = 0; /* a past turn of the ring, or nothing: restart it */
		else
			return false; /* this thread's clock lags the bucket's */
		if (others + count >= limit)
			return false;
		if (atomic_compare_exchange_weak_explicit(
		        c, &v, stamp(epoch, count + 1), memory_order_relaxed, memory_order_relaxed))
			return true;
	}
}

uint64_t gw_window_sum(const struct gw_window *w, unsigned counter, uint64_t now_ms)
{
	return sum_words(&w->words[(size_t)counter * w->buckets], w->buckets,
	                 place_of(w, now_ms, false).epoch, w->buckets);
}

void gw_window_sums(const struct gw_window *w, uint64_t now_ms, uint64_t out[])
{
	unsigned counters = w->counters, buckets = w->buckets;
	uint32_t epoch = place_of(w, now_ms, false).epoch;

	for (unsigned k = 0; k < counters; k++)
		out[k] = sum_words(&w->words[(size_t)k * buckets], buckets, epoch, buckets);
}

void gw_window_clear(struct gw_window *w)
{
	for (size_t i = 0; i < (size_t)w->buckets * w->counters; i++)
		atomic_store_explicit(&w->words[i], 0, memory_order_relaxed);
}
