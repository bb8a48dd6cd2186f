/*
 * Circuit breakers: the route key `circuit_breaker` and the breaker itself,
 * one per route, shared by every worker thread.
 *
 *   circuit_breaker:
 *     window: 10s                # rolling window, 1s..10m
 *     min_requests: 20           # no trip below this many tries in the window
 *     failure_ratio: 0.5         # trip at this share of failed tries (0 < r <= 1)
 *     consecutive_failures: 0    # also trip after N failures in a row; 0 = off
 *     slow_call_duration: 0      # a try slower than this is slow; 0 = off (0..1h)
 *     slow_call_ratio: 1.0       # trip at this share of slow tries (0 < r <= 1)
 *     open_duration: 30s         # fully open this long, then probing (1ms..1h)
 *     max_open_duration: 5m      # a relapse doubles open_duration, up to this
 *     half_open_requests: 5      # probes, one at a time: N in a row succeed -> closed
 *
 * In short (breaker.c has the whole story): the ratios are judged over the
 * window and over its last second alone, each with min_requests tries, so
 * the successes of a healthy past cannot delay a trip; after open_duration
 * one probe at a time goes through, at most one every probe interval
 * (min(open_duration, 500ms)); N successful probes in a row close it, and a
 * closed breaker lets traffic back in a one-second ramp of concurrency.
 *
 * Time comes in as now_ms (gw_clock_now_ms() on the request path, a fake
 * clock in tests): nothing here reads a clock.
 */
#ifndef GW_MODULES_CIRCUIT_BREAKER_BREAKER_H
#define GW_MODULES_CIRCUIT_BREAKER_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

#include "../module.h"
#include "../../gateway/config/conf_read.h"
#include "../../gateway/config/config.h"

/* Values as in the metric gateway_circuit_state. */
enum gw_breaker_state {
	GW_BREAKER_CLOSED = 0,
	GW_BREAKER_OPEN = 1,
	GW_BREAKER_HALF_OPEN = 2,
};

enum gw_breaker_admit {
	GW_BREAKER_ALLOW = 0, /* closed: go on */
	GW_BREAKER_PROBE,     /* half-open: go on; this request is the probe */
	GW_BREAKER_REJECT,    /* fail fast: circuit_open (or the route's fallback) */
	/* closed, ramping up after a recovery: go on, and call
	 * gw_breaker_ramp_done once the request has ended */
	GW_BREAKER_RAMP,
};

/* What an operator forces (admin API, Redis gw:ops:breaker:ROUTE). */
enum gw_breaker_force {
	GW_BREAKER_FORCE_AUTO = 0, /* the state machine decides */
	GW_BREAKER_FORCE_OPEN,
	GW_BREAKER_FORCE_CLOSED,
};

/*
 * While half-open with the probe out, a rejected request is told to come
 * back in this long: the probe decides within a try's time, so the answer
 * is near, and the smallest Retry-After (1 s) says so. The same for a
 * request refused by the ramp after closing (it is over within a second).
 */
#define GW_BREAKER_PROBING_RETRY_AFTER_MS 1000
#define GW_BREAKER_RAMP_RETRY_AFTER_MS    1000

/* The short window judged besides the configured one: the last second, in
 * buckets of 100 ms. */
#define GW_BREAKER_RECENT_MS 1000
/* While half-open, probes go at most every min(open_duration, this). */
#define GW_BREAKER_PROBE_INTERVAL_MAX_MS 500
/* A probe out for longer than max(open time, this) (the default route
 * timeout) is taken as lost, and another one goes. */
#define GW_BREAKER_PROBE_LOST_MS 15000
/* After closing: half_open_requests requests in flight at once, twice as
 * many every RAMP_STEP, no limit once RAMP is over. */
#define GW_BREAKER_RAMP_MS      1000
#define GW_BREAKER_RAMP_STEP_MS 100

/* A route's `circuit_breaker` section: plain values, nothing to free. */
struct gw_breaker_conf {
	uint64_t window_ms;             /* default 10s */
	uint32_t min_requests;          /* default 20 */
	double failure_ratio;           /* default 0.5 */
	uint32_t consecutive_failures;  /* default 0 = off */
	uint64_t slow_call_duration_ms; /* default 0 = off */
	double slow_call_ratio;         /* default 1.0 */
	uint64_t open_duration_ms;      /* default 30s */
	/* default 5m, or open_duration when that is longer; >= open_duration */
	uint64_t max_open_duration_ms;
	uint32_t half_open_requests; /* default 5 */
};

/*
 * The module (registry.c, breaker_module.c): fails fast while open, makes
 * probes while half-open, learns from every try. Its route state is the
 * route's struct gw_breaker.
 */
extern const struct gw_module gw_breaker_module;
/* The keys of `circuit_breaker` (the module's fields) and its conf_parse (breaker.c). */
extern const struct gw_conf_field gw_breaker_fields[];
int gw_breaker_conf_parse(void *conf, const struct gw_node *node, const char *where,
                          const char *file, struct gw_errlist *errs);

/* Every default, as a route's `circuit_breaker: {}` gets them. */
extern const struct gw_breaker_conf gw_breaker_conf_default;

/* The route's breaker section, or NULL: a route without one has no breaker. */
const struct gw_breaker_conf *gw_breaker_conf_of(const struct gw_route_conf *route);

/*
 * One route's breaker. Every route has one: a route without a
 * `circuit_breaker` section gets a manual breaker (c NULL), which an
 * operator can force open or closed and which never trips by itself (it
 * learns nothing from tries: record is not called for it).
 *
 * Owned by whoever made it (the module state that outlives config
 * snapshots, keyed by route name); gw_breaker_free once no thread uses it.
 * It keeps a copy of conf and of the name.
 */
struct gw_breaker;

struct gw_breaker *gw_breaker_new(const struct gw_breaker_conf *c, const char *route_name);
void gw_breaker_free(struct gw_breaker *b);
/*
 * A reload: b (new, unused) takes over old's state. A forced state stays
 * forced; an open breaker stays open until the same time (with its open
 * time as doubled so far); a half-open one stays half-open with its
 * successful probes so far, the probe old has out reporting to old (b sends
 * its own once the probe interval since that one is over); a closed one
 * keeps its ramp (its requests in flight count in old, not in b). The
 * window keeps its tries when its length did not change, the last second
 * always.
 */
void gw_breaker_carry(struct gw_breaker *b, const struct gw_breaker *old, uint64_t now_ms);

/*
 * May a request go to the upstream now? On GW_BREAKER_REJECT,
 * *retry_after_ms (when not NULL) is the time until half-open while open,
 * the time until the next probe may go while half-open (or
 * GW_BREAKER_PROBING_RETRY_AFTER_MS while the probe is out),
 * GW_BREAKER_RAMP_RETRY_AFTER_MS when the ramp after closing is full, and
 * open_duration while forced open (no end is known then).
 */
enum gw_breaker_admit gw_breaker_admit(struct gw_breaker *b, uint64_t now_ms,
                                       uint64_t *retry_after_ms);

/*
 * One finished try of a request that admit let through. failure: the try
 * failed (connect failure, reset, timeout, a failure status); duration_ms:
 * how long it took; probe: admit said GW_BREAKER_PROBE for its request.
 */
void gw_breaker_record(struct gw_breaker *b, uint64_t now_ms, bool failure, uint64_t duration_ms,
                       bool probe);

/*
 * A request admitted as a probe that ended without a try (the client went
 * away, no healthy server, shed after admission): gives its slot back, so
 * that another request can probe. Every GW_BREAKER_PROBE must end in
 * exactly one gw_breaker_record(..., probe = true) or one of these.
 */
void gw_breaker_abandon_probe(struct gw_breaker *b);

/* A request admitted with GW_BREAKER_RAMP has ended (however it ended):
 * its place in the ramp is free. Exactly one per GW_BREAKER_RAMP. */
void gw_breaker_ramp_done(struct gw_breaker *b);

/*
 * Forces the breaker open or closed, or hands it back to the state machine
 * (AUTO), which then starts afresh: closed (without a ramp: the operator
 * decided), empty window, open_duration back to its configured value.
 */
void gw_breaker_force(struct gw_breaker *b, enum gw_breaker_force f);
enum gw_breaker_force gw_breaker_forced(const struct gw_breaker *b);
/* Made without a circuit_breaker section (only forcing moves it). */
bool gw_breaker_is_manual(const struct gw_breaker *b);

/*
 * The state as gateway_circuit_state and /status show it. An open breaker
 * whose open time has passed reads as half-open: the next request will be
 * a probe. Half-open lasts from the first probe until N in a row have
 * succeeded (failed probes in between do not make it read open); a breaker
 * ramping up after closing reads closed.
 */
enum gw_breaker_state gw_breaker_state(const struct gw_breaker *b, uint64_t now_ms);
/* "closed", "open", "half-open". */
const char *gw_breaker_state_name(enum gw_breaker_state s);

/* What the window holds at now_ms, and the rest of the state, for /status. */
struct gw_breaker_counts {
	uint64_t tries, failures, slow; /* in the rolling window */
	uint32_t consecutive_failures;  /* current run of failures */
	/* the current open time (open, half-open), or that of a trip now (closed:
	 * open_duration, or doubled within a window of closing) */
	uint64_t open_duration_ms;
};

void gw_breaker_counts(const struct gw_breaker *b, uint64_t now_ms, struct gw_breaker_counts *out);

#endif
