/*
 * The process-wide budget of buffered request bodies.
 *
 * evhttp reads a request body whole before the gateway's handler runs (nginx
 * too buffers bodies by default), so every body that is being read or that
 * waits for its upstream is memory the gateway holds. Unbounded, that is
 * limits.max_connections x max_body_bytes (10 000 x 8 MiB by default). The
 * budget, limits.max_buffered_body_bytes, bounds the sum over the process:
 *
 *   - a body takes its share when its head has been checked, before evhttp
 *     reads a byte of it: its Content-Length, or max_body_bytes for a
 *     chunked body (whose length is unknown until its last chunk). A share
 *     that does not fit is refused: the client gets 503 `shed` with
 *     Retry-After and the connection closes, the body unread;
 *   - when the body is all there and its request starts, the share becomes
 *     the body's real length (a chunked body usually gives most back);
 *   - the share goes back when the request ends (the transaction frees the
 *     body then), or when the connection closes first.
 *
 * One counter for the process, atomic, no lock: a take is a compare-and-swap
 * loop that never passes the bound, a release a subtraction. Each client
 * connection keeps its current share in a uint64_t of its own (one body at
 * a time per connection), touched only by the worker that owns it.
 */
#ifndef GW_BODY_BUDGET_H
#define GW_BODY_BUDGET_H

#include <stdbool.h>
#include <stdint.h>

struct gw_limits_conf;
struct gw_request_head;
struct gw_shedding_conf;

/*
 * Takes bytes of the budget (bound: limit) as *share, after giving back what
 * *share held before. Returns false, taking nothing, when they do not fit.
 * bytes == 0 always fits.
 */
bool gw_body_budget_take(uint64_t *share, uint64_t bytes, uint64_t limit);

/* The share a checked request head needs (its Content-Length, max_body_bytes
 * when chunked, 0 without a body), taken as gw_body_budget_take does. */
bool gw_body_budget_admit(uint64_t *share, const struct gw_request_head *head,
                          const struct gw_limits_conf *limits);

/* The body is all there: *share becomes its real length (never more than
 * it was). */
void gw_body_budget_settle(uint64_t *share, uint64_t bytes);

/* Gives *share back (and zeroes it); nothing when it is 0. */
void gw_body_budget_release(uint64_t *share);

/* Bytes taken in the process now. */
uint64_t gw_body_budget_used(void);

/* Retry-After (seconds) of a refusal: shedding.retry_after with its jitter
 * (random64: any random bits), rounded up. */
int gw_body_budget_retry_after_s(const struct gw_shedding_conf *shedding, uint64_t random64);

#endif
