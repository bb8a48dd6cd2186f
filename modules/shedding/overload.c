/*
 * The overload level (overload.h): thresholds, hysteresis and the reason
 * string.
 */
#include "overload.h"

#include <inttypes.h>
#include <stdio.h>

/*
 * The overload detector
 * ---------------------
 *
 * Two inputs say the gateway has more work than it can do well:
 *
 * - In-flight requests, against max_inflight. Room in flight is what every
 *   class shares (memory, sockets, upstream slots), so the level rises with
 *   it early enough that the lower classes can never fill the room the
 *   higher ones need: level 1 at 70% (sheddable gets at most 70% of the
 *   room), level 2 at 85% (normal at most 85%); the last 15% is critical's,
 *   and at 100% every new request is shed, critical too (gw_overload_at_max,
 *   the caller's check).
 *
 * - Event-loop lag: how late a worker gets to an event that is ready. When
 *   it grows, the gateway's own CPU is the bottleneck and every request, a
 *   critical one too, waits that long before anything happens to it. A shed
 *   costs microseconds where a proxied request costs far more, so shedding
 *   the lower classes gives the CPU back to the higher ones: level 1 when
 *   the lag is above max_loop_lag, level 2 above twice that.
 *
 * The level is raised at once, by the first sample that crosses a
 * threshold: overload hurts within one sample period, and the request path
 * raises it between samples by the in-flight count of the moment.
 *
 * It falls slowly, because shedding works: it lowers both inputs at once,
 * and a detector that followed them down would let the shed class back in,
 * overload again, shed again, every sample. So a level is held while the
 * inputs stay above lower thresholds (a margin, so noise around a threshold
 * does not flip the level), and falls one step only after every sample for
 * GW_OVERLOAD_HOLD_MS (1 s) was below them; the next step needs another
 * full second, so the classes come back one at a time:
 *
 *            raised at once when        held while              falls
 *   level 1  in-flight >= 70%           in-flight >= 60%        1 s below
 *            or lag > max_loop_lag      or lag > 0.75 x max     both
 *   level 2  in-flight >= 85%           in-flight >= 75%        1 s below
 *            or lag > 2 x max_loop_lag  or lag > 1.5 x max      both
 *
 * The calm second is counted from the first calm sample or from the last
 * change of level, whichever is later; a sample above a hold threshold of
 * the current level starts it again.
 */

/* Thresholds of levels 1 and 2: percent of max_inflight, quarters of max_loop_lag. */
struct thresholds {
	unsigned inflight_pct[2];
	unsigned lag_quarters[2];
};

static const struct thresholds raise_at = {{70, 85}, {4, 8}};
static const struct thresholds hold_at = {{60, 75}, {3, 6}};

/* in-flight >= pct% of max_inflight, in integers. */
static unsigned inflight_level(const struct gw_overload_conf *c, uint32_t inflight,
                               const struct thresholds *t)
{
	uint64_t scaled = (uint64_t)inflight * 100;

	if (!c->max_inflight)
		return 0;
	if (scaled >= (uint64_t)c->max_inflight * t->inflight_pct[1])
		return 2;
	if (scaled >= (uint64_t)c->max_inflight * t->inflight_pct[0])
		return 1;
	return 0;
}

/* lag > quarters/4 of max_loop_lag: lag * 4 > max * quarters, saturating. */
static bool lag_above(uint64_t lag, uint64_t max, unsigned quarters)
{
	if (max > UINT64_MAX / quarters)
		return false; /* no lag in milliseconds is that long */
	if (lag > UINT64_MAX / 4)
		return true;
	return lag * 4 > max * quarters;
}

static unsigned lag_level(const struct gw_overload_conf *c, uint64_t lag,
                          const struct thresholds *t)
{
	if (!c->max_loop_lag_ms)
		return 0;
	if (lag_above(lag, c->max_loop_lag_ms, t->lag_quarters[1]))
		return 2;
	if (lag_above(lag, c->max_loop_lag_ms, t->lag_quarters[0]))
		return 1;
	return 0;
}

static unsigned max_of(unsigned a, unsigned b)
{
	return a > b ? a : b;
}

/* Appends to o->reason (truncating, never overflowing). */
static void append(struct gw_overload *o, size_t *len, const char *text)
{
	int n = snprintf(o->reason + *len, sizeof(o->reason) - *len, "%s", text);

	if (n > 0)
		*len +=
		    (size_t)n < sizeof(o->reason) - *len ? (size_t)n : sizeof(o->reason) - *len - 1;
}

/*
 * "in-flight 1500/2000"; "loop lag 80ms > 50ms", "loop lag 40ms (max 50ms)"
 * (held by the margin) or, plain, "loop lag 3ms".
 */
static void describe_input(struct gw_overload *o, size_t *len, bool inflight, bool sep, bool plain)
{
	char part[80];

	if (inflight)
		snprintf(part, sizeof(part), "%sin-flight %" PRIu32 "/%" PRIu32, sep ? ", " : "",
		         o->inflight, o->conf.max_inflight);
	else if (plain)
		snprintf(part, sizeof(part), "%sloop lag %" PRIu64 "ms", sep ? ", " : "",
		         o->lag_ms);
	else if (o->lag_ms > o->conf.max_loop_lag_ms)
		snprintf(part, sizeof(part), "%sloop lag %" PRIu64 "ms > %" PRIu64 "ms",
		         sep ? ", " : "", o->lag_ms, o->conf.max_loop_lag_ms);
	else
		snprintf(part, sizeof(part), "%sloop lag %" PRIu64 "ms (max %" PRIu64 "ms)",
		         sep ? ", " : "", o->lag_ms, o->conf.max_loop_lag_ms);
	append(o, len, part);
}

static void describe(struct gw_overload *o, uint64_t now)
{
	bool in_counts, lag_counts;
	size_t len = 0;

	o->reason[0] = '\0';
	if (o->level == 0) {
		append(o, &len, "normal");
		return;
	}
	if (o->calm) {
		uint64_t calm_for = now > o->calm_since_ms ? now - o->calm_since_ms : 0;
		char tail[64];

		/* Every input, since none counts. */
		in_counts = o->conf.max_inflight > 0;
		lag_counts = o->conf.max_loop_lag_ms > 0;
		append(o, &len, "calm (");
		if (in_counts)
			describe_input(o, &len, true, false, true);
		if (lag_counts)
			describe_input(o, &len, false, in_counts, true);
		snprintf(tail, sizeof(tail), "), level %u in %" PRIu64 "ms", o->level - 1,
		         GW_OVERLOAD_HOLD_MS - calm_for);
		append(o, &len, tail);
		return;
	}
	/* The inputs that hold the level (those that raised it do too). */
	in_counts = inflight_level(&o->conf, o->inflight, &hold_at) >= o->level;
	lag_counts = lag_level(&o->conf, o->lag_ms, &hold_at) >= o->level;
	if (in_counts)
		describe_input(o, &len, true, false, false);
	if (lag_counts)
		describe_input(o, &len, false, in_counts, false);
}

void gw_overload_init(struct gw_overload *o, const struct gw_overload_conf *c)
{
	*o = (struct gw_overload){.conf = *c};
	describe(o, 0);
}

unsigned gw_overload_update(struct gw_overload *o, uint64_t now_ms, uint32_t inflight,
                            uint64_t loop_lag_ms)
{
	unsigned raise = max_of(inflight_level(&o->conf, inflight, &raise_at),
	                        lag_level(&o->conf, loop_lag_ms, &raise_at));
	unsigned hold = max_of(inflight_level(&o->conf, inflight, &hold_at),
	                       lag_level(&o->conf, loop_lag_ms, &hold_at));

	o->inflight = inflight;
	o->lag_ms = loop_lag_ms;
	if (raise > o->level) {
		o->level = raise;
		o->changed_ms = now_ms;
		o->calm = false;
	} else if (hold >= o->level) {
		o->calm = false;
	} else {
		if (!o->calm) {
			o->calm = true;
			o->calm_since_ms = now_ms > o->changed_ms ? now_ms : o->changed_ms;
		}
		if (now_ms >= o->calm_since_ms &&
		    now_ms - o->calm_since_ms >= GW_OVERLOAD_HOLD_MS) {
			o->level--;
			o->changed_ms = now_ms;
			o->calm_since_ms = now_ms;
			o->calm = hold < o->level;
		}
	}
	describe(o, now_ms);
	return o->level;
}

unsigned gw_overload_level(const struct gw_overload *o)
{
	return o->level;
}

const char *gw_overload_reason(const struct gw_overload *o)
{
	return o->reason;
}

unsigned gw_overload_instant_level(const struct gw_overload_conf *c, uint32_t inflight)
{
	return inflight_level(c, inflight, &raise_at);
}

bool gw_overload_at_max(const struct gw_overload_conf *c, uint32_t inflight)
{
	return c->max_inflight > 0 && inflight >= c->max_inflight;
}

bool gw_overload_sheds(unsigned level, unsigned rank)
{
	if (rank == 0 || level == 0)
		return false; /* critical is shed only at max_inflight */
	if (level >= 2)
		return true; /* normal and sheddable */
	return rank >= 2;    /* level 1: sheddable */
}
