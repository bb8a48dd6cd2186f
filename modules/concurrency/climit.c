/*
 * Adaptive concurrency limit (climit.h).
 *
 * What is measured
 * ----------------
 * Each finished request gives (rtt, inflight at send, ok). Samples are
 * gathered in windows of at least CLIMIT_WINDOW_MIN samples spanning at
 * least one no-load RTT, so a window is about one round trip of traffic
 * and its mean RTT is not the noise of one request. From the windows:
 *
 *   rtt      the mean RTT of the last window;
 *   min_rtt  the no-load RTT: the lowest window mean (and probe mean, see
 *            below) of the current and the previous period.
 *
 * Means are compared with means: a minimum of single samples would sit at
 * the fast end of the service-time spread and make an idle upstream look
 * queued, eating the tolerance.
 *
 * The update rule (once per window)
 * ---------------------------------
 * Below its capacity C an upstream answers in about min_rtt whatever the
 * in-flight count; above it, requests queue and, by Little's law, rtt =
 * min_rtt * inflight / C. So inflight * min_rtt / rtt estimates C, whatever
 * the limit was (the in-flight counts and RTTs of the same requests are
 * used, so the one-RTT lag between a change of limit and its effect on the
 * RTT does not make the rule oscillate). The limit is steered towards
 *
 *   target = C_estimate * (1 + tolerance)
 *
 * i.e. the upstream is kept busy with a queue of tolerance * C in front of
 * it, and the RTT at tolerance above min_rtt. With r = rtt / min_rtt:
 *
 *   r > 1 + tol:  congested. target = mean inflight * (1 + tol) / r; the
 *                 limit only goes down on this branch.
 *   r <= 1 + tol: not congested. If the limit was reached in the window
 *                 (some request was sent at the limit), grow to limit *
 *                 (1 + tol) / r, and by at least 1 while r < 1 + tol / 2
 *                 (small limits would otherwise grow by less than one
 *                 request and stay put). A limit that was not reached is
 *                 left alone: light load neither grows it (it would grow
 *                 without bound) nor shrinks it (a burst would then wait).
 *
 *   limit += CLIMIT_SMOOTHING * (target - limit)
 *
 * Growth needs requests actually sent at the new limit, so it compounds at
 * most once per round trip (about +7% per RTT): a few hundred milliseconds
 * from 10 to 40 at a 10 ms RTT. A timeout or reset multiplies the limit by
 * GW_CLIMIT_BACKOFF at once, but only once per flight: a failure of a
 * request sent before the last cut was already answered (as TCP does), so
 * a burst of timeouts is one cut, not a collapse to min_limit. Samples
 * sent before a cut or a probe describe a limit that no longer holds and
 * are left out of the windows.
 *
 * Re-measuring the no-load RTT
 * ----------------------------
 * At the chosen operating point the upstream always has a small queue, so
 * no window shows the no-load RTT any more, and a minimum that never
 * expires could not follow an upstream that became slower for good (it
 * would read the slowness as queueing and cut the limit to min_limit for
 * ever). So the minimum is kept per period (the lowest of this period and
 * the previous one: a value lives one to two periods), and each period
 * starts with a probe: the limit drops to GW_CLIMIT_PROBE_SHARE of the
 * learned one until CLIMIT_PROBE_SAMPLES requests sent after the drop have
 * come back. 0.75 * 1.15 < 1: the upstream's queue drains and these
 * requests see the no-load RTT. The probe costs a few RTTs at 75% of the
 * limit, and the upstream loses work only while its queue is empty: well
 * under 1% of its time.
 *
 * Periods are CLIMIT_PERIOD_RTTS no-load RTTs rounded up to a power of two
 * of milliseconds (1.024 s for 10 ms) and start at multiples of their
 * length on the caller's clock: the workers of one process share that
 * clock, so they probe together and drain the queue together. (Gateway
 * processes on other hosts do not; a probe of one of many clients may not
 * drain the queue, the minimum then reads a little high and the limit
 * settles a little higher.)
 *
 * Parameters and why
 * ------------------
 * GW_CLIMIT_TOLERANCE 0.15  the standing queue inside the upstream, as a
 *     share of its capacity, and the latency added to the no-load RTT. The
 *     gateway wants critical requests served at about their unloaded
 *     latency: 15% is half of the 30% it can live with, and well above
 *     the noise of a window mean (the service-time spread over ~C requests).
 *     A share, not a count, so N workers sharing an upstream still add up
 *     to 15% of its capacity (each sees the same RTT ratio).
 * CLIMIT_SMOOTHING 0.5      each window moves the limit half way to its
 *     target: one noisy window cannot halve the limit, and a real change
 *     is followed within a few round trips.
 * GW_CLIMIT_BACKOFF 0.5     a timeout or reset is late, strong evidence of
 *     overload (the request waited a whole timeout): halve, like TCP.
 * GW_CLIMIT_PROBE_SHARE 0.75 below 1 / (1 + tolerance) with margin, so the
 *     queue drains even when two workers' limits overshoot a little.
 * CLIMIT_PROBE_SAMPLES 8    enough for a mean, few enough to end within
 *     about two RTTs at a limit of 10 or more.
 * CLIMIT_PERIOD_RTTS 100, period 1.024 s .. 32.768 s: a probe every ~100
 *     RTTs costs well under 1%, and a no-load RTT that rose is believed
 *     within two periods (about 2 s at 10 ms).
 * CLIMIT_WINDOW_MIN 4       samples in a window: a mean, not one request.
 *
 * Bounds: the learned limit is clamped to [min_limit, max_limit] after each
 * change, the probe limit too; RTTs are clamped to [1 us, ~71 min] and
 * windows to 65536 samples so no sum can overflow.
 */
#include "climit.h"

#define CLIMIT_SMOOTHING     0.5
#define CLIMIT_PROBE_SAMPLES 8
#define CLIMIT_PERIOD_RTTS   100
#define CLIMIT_PERIOD_MIN_MS 1024u
#define CLIMIT_PERIOD_MAX_MS 32768u
#define CLIMIT_WINDOW_MIN    4
#define CLIMIT_WINDOW_MAX    65536u
#define CLIMIT_RTT_MAX_US    (1ull << 32)
#define CLIMIT_NONE          UINT64_MAX

static uint32_t clamp_round(const struct gw_climit *l, double x)
{
	uint32_t v;

	if (!(x >= l->min_limit)) /* also NaN */
		return l->min_limit;
	if (x >= l->max_limit)
		return l->max_limit;
	v = (uint32_t)(x + 0.5);
	return v > l->max_limit ? l->max_limit : v;
}

static double clamp_est(const struct gw_climit *l, double x)
{
	if (!(x >= l->min_limit))
		return l->min_limit;
	if (x > l->max_limit)
		return l->max_limit;
	return x;
}

static uint64_t no_load_us(const struct gw_climit *l)
{
	return l->min_cur_us < l->min_prev_us ? l->min_cur_us : l->min_prev_us;
}

static void publish(struct gw_climit *l)
{
	l->limit = clamp_round(l, l->probing ? l->est * GW_CLIMIT_PROBE_SHARE : l->est);
}

static void window_reset(struct gw_climit *l)
{
	l->win_n = 0;
	l->win_peak = 0;
	l->win_rtt_sum_us = 0;
	l->win_inflight_sum = 0;
}

/* Samples sent before now_us are left out of the windows from here on. */
static void restart_windows(struct gw_climit *l, uint64_t now_us)
{
	l->ignore_before_us = now_us;
	window_reset(l);
}

/* CLIMIT_PERIOD_RTTS no-load RTTs, as a power of two of ms within the bounds. */
static uint32_t period_for(uint64_t min_rtt_us)
{
	uint64_t want_ms = min_rtt_us == CLIMIT_NONE ? 0 : min_rtt_us * CLIMIT_PERIOD_RTTS / 1000;
	uint32_t p = CLIMIT_PERIOD_MIN_MS;

	while (p < CLIMIT_PERIOD_MAX_MS && p < want_ms)
		p <<= 1;
	return p;
}

void gw_climit_init(struct gw_climit *l, uint32_t initial, uint32_t min_limit, uint32_t max_limit)
{
	*l = (struct gw_climit){0};
	l->min_limit = min_limit ? min_limit : 1;
	l->max_limit = max_limit > l->min_limit ? max_limit : l->min_limit;
	l->est = clamp_est(l, initial);
	l->min_cur_us = CLIMIT_NONE;
	l->min_prev_us = CLIMIT_NONE;
	l->period_ms = CLIMIT_PERIOD_MIN_MS;
	publish(l);
}

/*
 * A new period: the older minimum expires, and a probe starts (when there
 * is a no-load RTT to refresh). A jump over a whole period (no traffic, or
 * a clock that went back) forgets both minimums.
 */
static void roll_period(struct gw_climit *l, uint64_t now_ms, uint64_t now_us)
{
	uint64_t id = now_ms / l->period_ms;

	if (!l->started) {
		l->started = true;
		l->period_id = id;
		return;
	}
	if (id == l->period_id)
		return;
	l->min_prev_us = id == l->period_id + 1 ? l->min_cur_us : CLIMIT_NONE;
	l->min_cur_us = CLIMIT_NONE;
	l->period_ms = period_for(no_load_us(l));
	l->period_id = now_ms / l->period_ms;
	if (no_load_us(l) == CLIMIT_NONE)
		return;
	l->probing = true;
	l->probe_start_us = now_us;
	l->probe_sum_us = 0;
	l->probe_n = 0;
	window_reset(l);
}

/* Multiplicative decrease, once per flight: see the block comment. */
static void backoff(struct gw_climit *l, uint64_t now_us, uint64_t sent_us)
{
	if (sent_us < l->cut_us)
		return;
	l->est = clamp_est(l, l->est * GW_CLIMIT_BACKOFF);
	l->cut_us = now_us;
	restart_windows(l, now_us);
}

static void probe_sample(struct gw_climit *l, uint64_t now_us, uint64_t sent_us, uint64_t rtt_us)
{
	uint32_t need = l->limit < CLIMIT_PROBE_SAMPLES ? l->limit : CLIMIT_PROBE_SAMPLES;

	if (sent_us >= l->probe_start_us) {
		l->probe_sum_us += rtt_us;
		l->probe_n++;
	}
	/* Light traffic may never bring enough: a probe lasts a quarter period at most. */
	if (l->probe_n < need && now_us >= l->probe_start_us &&
	    now_us - l->probe_start_us < (uint64_t)l->period_ms * 1000 / 4)
		return;
	if (l->probe_n > 0) {
		uint64_t mean = l->probe_sum_us / l->probe_n;

		if (mean < l->min_cur_us)
			l->min_cur_us = mean;
	}
	l->probing = false;
	restart_windows(l, now_us);
}

/* The update rule of the block comment, on a closed window. */
static void window_close(struct gw_climit *l)
{
	uint64_t mean = l->win_rtt_sum_us / l->win_n;
	double r, target, tol = GW_CLIMIT_TOLERANCE;

	l->rtt_us = mean;
	if (no_load_us(l) == CLIMIT_NONE)
		l->min_cur_us = l->win_min_us; /* the first window: see the block comment */
	if (mean < l->min_cur_us)
		l->min_cur_us = mean;
	r = (double)mean / (double)no_load_us(l); /* >= 1: the minimum includes this mean */
	if (r > 1 + tol) {
		target = (double)l->win_inflight_sum / l->win_n * (1 + tol) / r;
		if (target > l->est)
			target = l->est;
	} else if (l->win_peak >= clamp_round(l, l->est)) {
		target = l->est * (1 + tol) / r;
		if (r < 1 + tol / 2 && target < l->est + 1)
			target = l->est + 1;
	} else {
		target = l->est;
	}
	l->est = clamp_est(l, l->est + CLIMIT_SMOOTHING * (target - l->est));
	window_reset(l);
}

static void window_sample(struct gw_climit *l, uint64_t now_us, uint64_t rtt_us, uint32_t inflight)
{
	uint64_t span_us;

	if (l->win_n == 0) {
		l->win_start_us = now_us;
		l->win_min_us = rtt_us;
	}
	if (rtt_us < l->win_min_us)
		l->win_min_us = rtt_us;
	l->win_rtt_sum_us += rtt_us;
	l->win_inflight_sum += inflight;
	if (inflight > l->win_peak)
		l->win_peak = inflight;
	l->win_n++;
	span_us = no_load_us(l) == CLIMIT_NONE ? l->win_rtt_sum_us / l->win_n : no_load_us(l);
	if (l->win_n >= CLIMIT_WINDOW_MAX ||
	    (l->win_n >= CLIMIT_WINDOW_MIN &&
	     (now_us < l->win_start_us || now_us - l->win_start_us >= span_us)))
		window_close(l);
}

void gw_climit_sample(struct gw_climit *l, uint64_t now_ms, uint64_t rtt_us, uint32_t inflight,
                      bool ok)
{
	uint64_t now_us = now_ms > UINT64_MAX / 1000 ? UINT64_MAX : now_ms * 1000;
	uint64_t sent_us;

	if (rtt_us == 0)
		rtt_us = 1;
	if (rtt_us > CLIMIT_RTT_MAX_US)
		rtt_us = CLIMIT_RTT_MAX_US;
	if (inflight == 0)
		inflight = 1;
	sent_us = now_us > rtt_us ? now_us - rtt_us : 0;

	roll_period(l, now_ms, now_us);
	if (!ok)
		backoff(l, now_us, sent_us);
	else if (l->probing)
		probe_sample(l, now_us, sent_us, rtt_us);
	else if (sent_us >= l->ignore_before_us)
		window_sample(l, now_us, rtt_us, inflight);
	publish(l);
}

uint32_t gw_climit_get(const struct gw_climit *l)
{
	return l->limit;
}

uint32_t gw_climit_learned(const struct gw_climit *l)
{
	return clamp_round(l, l->est);
}

uint64_t gw_climit_min_rtt_us(const struct gw_climit *l)
{
	uint64_t m = no_load_us(l);

	return m == CLIMIT_NONE ? 0 : m;
}

uint64_t gw_climit_rtt_us(const struct gw_climit *l)
{
	return l->rtt_us;
}
