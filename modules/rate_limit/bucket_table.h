/*
 * Token buckets per key (SPEC section 5, "Rate limits"), in a table of fixed
 * memory shared by every worker thread of the process.
 *
 * A route's `rate_limit: { rate: R, per: P, burst: B, by: ... }` gives each
 * key (a client address, a header's value, or "" for the whole route) a
 * bucket that:
 *   - holds at most B tokens (B = 0 means B = ceil(R), and at least 1: the
 *     bucket then absorbs one `per` worth of requests at once);
 *   - starts full, so a key never seen before may send B requests at once;
 *   - refills at R tokens per P, continuously (a fraction of a token carries
 *     over, so R = 7 per 1s admits exactly 7 per second in steady state);
 *   - gives one token per request; with less than one token left the request
 *     is refused, and gw_bucket_take says when the next token will be there.
 *
 * Memory is fixed when the table is made: room for max_keys keys, about
 * 45 bytes each (gw_bucket_table_bytes), whatever the number of distinct
 * keys the clients send. A new key in a full table evicts a bucket that has
 * refilled to full (forgetting it loses nothing: a full bucket is what an
 * unknown key gets) or else, among the least recently used, the one closest
 * to full. bucket_table.c explains the policy and what it guarantees.
 *
 * Keys are byte strings of any length (NUL bytes included), identified by a
 * 64-bit keyed hash: the key itself is not stored. Two keys with the same
 * hash share one bucket; with a random hash key per table an attacker can
 * neither aim for that nor predict it, and among 100 000 keys held at once
 * the odds of any such pair are about 3 in 10^10.
 *
 * Time is an argument (the worker's cached monotonic clock, in ms): nothing
 * here reads a clock or sleeps, so tests drive it with a fake one.
 */
#ifndef GW_MODULES_RATE_LIMIT_BUCKET_TABLE_H
#define GW_MODULES_RATE_LIMIT_BUCKET_TABLE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Opaque. Owned by its creator (the rate-limit module's route state), freed
 * with gw_bucket_table_free once no thread uses it any more. Every other
 * call is safe from any number of threads at once.
 */
struct gw_bucket_table;

/*
 * A table for R = rate tokens per per_ms, buckets of `burst` tokens (0:
 * ceil(rate)), holding at most max_keys keys (0 is taken as 1). All its
 * memory is allocated here; allocation failure aborts (util/alloc.h).
 * Out-of-range arguments are clamped rather than refused (the config layer
 * validates them): rate to [1e-9, 1e12], per_ms to [1, 2^30].
 */
struct gw_bucket_table *gw_bucket_table_new(double rate, uint64_t per_ms, uint32_t burst,
                                            uint32_t max_keys);
void gw_bucket_table_free(struct gw_bucket_table *t);

/*
 * Takes one token of key's bucket at now_ms. Returns 0 when the request is
 * allowed; else the ms until the next token (>= 1), and the request is
 * refused (its Retry-After). key may be NULL when key_len is 0. A now_ms
 * older than one already seen for this key (workers cache their clocks
 * separately) refills nothing and never moves the bucket back in time.
 * Thread-safe: one short critical section on the key's shard.
 */
uint64_t gw_bucket_take(struct gw_bucket_table *t, const char *key, size_t key_len,
                        uint64_t now_ms);

/* Keys held now (<= max_keys). Locks each shard in turn: for reports, not the hot path. */
uint32_t gw_bucket_table_keys(struct gw_bucket_table *t);

/* Bytes allocated by the table: fixed at creation, whatever the keys seen since. */
size_t gw_bucket_table_bytes(const struct gw_bucket_table *t);

#endif
