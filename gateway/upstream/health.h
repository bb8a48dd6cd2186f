/*
 * Health of every upstream server, for the whole process.
 *
 * Two sources decide whether a server may take new tries:
 *
 *   - Active health checks (upstream `health_check`): the checker sends
 *     `GET PATH` to each server every interval from the main thread's event
 *     loop; unhealthy_threshold failed checks in a row mark the server down,
 *     healthy_threshold passed checks in a row mark it up again, their
 *     answers at least an interval apart (after a pass that leaves a down
 *     server down, the next check starts one interval after that answer:
 *     a check that was in flight when a stalled server resumed cannot mark
 *     it up sooner than healthy_threshold - 1 intervals later). Servers
 *     start up. An upstream with `tls` is checked over TLS (its context,
 *     SNI and verification; a full handshake each time): a failed
 *     handshake is a failed check.
 *   - Outlier detection (upstream `outlier_detection`): workers report the
 *     outcome of every try; consecutive_failures failed tries in a row eject
 *     the server for base_ejection_time x its number of ejections so far,
 *     never more than max_ejection_percent of the pool at once (a pool of two
 *     or more servers may always have one ejected). An ejection ends by
 *     itself when its time is over.
 *
 * Slow start (upstream `slow_start`): a server that returns (marked up by
 * its checks, or at the end of an ejection) does not get its full share of
 * new tries at once: the balancers scale its weight by gw_health_share,
 * 10% at the return growing linearly to 100% over slow_start. The ramp
 * only shifts load between usable servers; a server alone in its pool, or
 * with every other server unusable, still takes every try.
 *
 * Every worker thread reads and writes the state through atomics: no lock on
 * the request path. Time enters as now_ms arguments (gw_clock_now_ms() in
 * the gateway, a fake clock in tests).
 *
 * Servers are indexed like cfg->upstreams[up].servers[srv] of the config the
 * state was made from.
 *
 * Ownership: gw_health_new returns state owned by the caller, freed with
 * gw_health_free once no worker and no checker uses it. The state copies
 * what it needs from the config (names, addresses, settings; the checker
 * takes its own reference to each TLS context) and keeps no reference to
 * it. A checker belongs to whoever started it and is stopped
 * (and freed) with gw_health_checker_stop on the thread that runs its event
 * base, before the state is freed.
 */
#ifndef GW_UPSTREAM_HEALTH_H
#define GW_UPSTREAM_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../config/config.h"

struct event_base;
struct gw_log_limit;
struct gw_health;
struct gw_health_checker;

struct gw_health *gw_health_new(const struct gw_config *cfg);
void gw_health_free(struct gw_health *h);
/* Takes over old's state of the servers that keep their upstream name and
 * address (a reload). Before any worker uses h. */
void gw_health_carry(struct gw_health *h, const struct gw_health *old);

/* May server srv of upstream up take a new try: up by active checks and not
 * ejected at now_ms. */
bool gw_health_usable(const struct gw_health *h, size_t up, size_t srv, uint64_t now_ms);

/*
 * The outcome of one try (failure: connect failure, reset, timeout, invalid
 * response or 5xx), for outlier detection; may eject the server. A no-op
 * for an upstream without outlier_detection, and for a server ejected at
 * now_ms (tries that were in flight when it was ejected do not count).
 */
void gw_health_record(struct gw_health *h, size_t up, size_t srv, bool failure, uint64_t now_ms);

/*
 * The share of its weight a usable server gets at now_ms, in thousandths:
 * GW_HEALTH_SHARE_MIN right after a return, GW_HEALTH_SHARE_FULL once its
 * slow start is over (and always without slow_start, or for a server that
 * never returned: servers start at full share).
 */
#define GW_HEALTH_SHARE_MIN  100u
#define GW_HEALTH_SHARE_FULL 1000u
unsigned gw_health_share(const struct gw_health *h, size_t up, size_t srv, uint64_t now_ms);

/* Ends (and logs) the ejections that are over at now_ms. Optional: an
 * ejection is over when its time is, whether or not this runs; the checker
 * calls it every second so that returns are logged when they happen. */
void gw_health_sweep(struct gw_health *h, uint64_t now_ms);

/*
 * The rate limit of the log lines about server srv's connections (TLS
 * handshake failures, upstream/upconn.c), one per server shared by every
 * worker: a server that fails every handshake logs once a second for the
 * whole process, not once per worker.
 */
struct gw_log_limit *gw_health_log_limit(struct gw_health *h, size_t up, size_t srv);

/* Introspection, for the status page and metrics. */
bool gw_health_is_up(const struct gw_health *h, size_t up, size_t srv);
bool gw_health_is_ejected(const struct gw_health *h, size_t up, size_t srv, uint64_t now_ms);
unsigned gw_health_ejections(const struct gw_health *h, size_t up, size_t srv);

/*
 * Starts the active checks of every upstream that has a health_check (the
 * first round right away) on base, and the once-a-second ejection sweep
 * when an upstream has outlier_detection. cfg must be the config h was made
 * from; the checker copies what it needs. Never NULL.
 */
struct gw_health_checker *gw_health_checker_start(struct gw_health *h, const struct gw_config *cfg,
                                                  struct event_base *base);
/* Cancels checks in progress and frees the checker; NULL is a no-op. */
void gw_health_checker_stop(struct gw_health_checker *checker);

#endif
