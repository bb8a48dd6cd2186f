/*
 * Adaptive concurrency limit (climit.h).
 *
 * The question: how many requests may this worker have in flight to this
 * upstream? Too few and the upstream idles while requests wait in the
 * gateway's queue; too many and they wait in the upstream's own queue,
 * where the gateway can no longer put critical requests first. The answer
 * is learned from round-trip times, in the spirit of TCP Vegas, Netflix's
 * Gradient2Limit and Envoy's adaptive concurrency filter.
 *
 * What is measured
 * ----------------
 * Each finished request gives (rtt, in flight at send, ok). Samples are
 * gathered in windows of at least CLIMIT_WINDOW_MIN samples spanning at
 * least one no-load RTT (about one round trip of traffic), for their mean
 * RTT (`rtt`), mean in flight at send and peak in flight at send.
 *
 * The no-load RTT (`min_rtt`) is measured by a probe at the start of every
 * period (see below): it is the median of the last three probes' mean
 * RTTs (the lower of two when there are two; before the first probe, the
 * lowest single RTT seen). Means are compared with means: a minimum of
 * samples sits at the fast end of the service-time spread and would make
 * an idle upstream look queued; a minimum of many window means drifts low
 * the same way, which is why windows do not feed min_rtt at all.
 *
 * The update rule (once per window)
 * ---------------------------------
 * Below its capacity C an upstream answers in about min_rtt whatever the
 * number in flight; above it requests queue and, by Little's law, rtt =
 * min_rtt * inflight / C. So inflight * min_rtt / rtt estimates C from the
 * same requests' in-flight counts and RTTs, whatever the limit was when
 * they were sent (no lag between cause and effect, so no oscillation).
 * The limit is steered to C * (1 + tol): the upstream always has work,
 * with a queue of tol * C and an RTT of (1 + tol) * min_rtt. With r = rtt
 * / min_rtt (at least 1):
 *
 *   r > 1 + tol   congested: target = mean in flight * (1 + tol) / r. The
 *                 limit only goes down here, and not below half what it
 *                 was at the start of the period unless r > CLIMIT_SURE_QUEUE
 *                 (see "upstream slower" below).
 *   r <= 1 + tol  if the limit was reached in the window (a request was
 *                 sent at the limit): target = limit * (1 + tol) / r, and
 *                 at least limit + 1 while r < 1 + tol / 2 (small limits
 *                 would otherwise gain less than a request and stay put).
 *                 A limit not reached is left alone: light load neither
 *                 grows it (without bound) nor shrinks it (a burst would
 *                 then wait).
 *
 *   limit += CLIMIT_SMOOTHING * (target - limit)
 *
 * Growth needs requests sent at the new limit, so it compounds at most
 * once per round trip (+7% per RTT at most: 10 -> 40 in about 0.3 s at a
 * 10 ms RTT). A timeout or reset multiplies the limit by GW_CLIMIT_BACKOFF
 * at once, but once per flight (as TCP): a failed request sent before the
 * last cut was answered by that cut, so a burst of timeouts is one cut,
 * not a fall to min_limit. Samples sent before a cut, during a probe or
 * in the RTT after it (when the queue is still empty at any limit)
 * describe a limit that no longer holds and are left out of the windows.
 *
 * tol is a share, not a count of requests, so N workers sharing one
 * upstream (each sees the same r) still add up to C * (1 + tol).
 *
 * The probe, and an upstream that became slower
 * ---------------------------------------------
 * At the operating point the upstream always has a small queue, so no
 * window shows the no-load RTT, and a no-load RTT that never expired could
 * not follow an upstream that became slower for good: the slowness would
 * read as a queue and the limit would fall for ever. So each period starts
 * with a probe: the limit drops to GW_CLIMIT_PROBE_SHARE of itself (less
 * when the last window saw r > 1 + tol: the share then scales by (1 + tol)
 * / r, so the lowered limit is below the capacity estimate), one RTT is
 * left for the requests sent before (and the upstream's queue) to drain,
 * and the RTTs of requests sent over the next CLIMIT_PROBE_SEND_RTTS
 * no-load RTTs are averaged. They are chosen by send time, not by arrival:
 * the first back are the fastest, and their mean would read low. A quarter
 * period at most. 0.75 * 1.15 < 1: the queue drains, and these requests
 * see the no-load RTT. It costs the upstream work only while its queue is
 * empty: about 0.5% of the time.
 *
 * Periods are CLIMIT_PERIOD_RTTS no-load RTTs rounded up to a power of two
 * of milliseconds (1.024 s at 10 ms) and start at multiples of their
 * length on the caller's clock, the probe's schedule too: the workers of a
 * process share that clock, so they drain the queue together (a probe by
 * one of eight workers would not). Gateways on other hosts do not share
 * it: their probes may not drain the queue, min_rtt then reads high and
 * the limits settle higher; keep tol's budget in mind there.
 *
 * When the upstream becomes slower, r rises, the limit falls (by at most
 * half per period), and two probes later the median has the new no-load
 * RTT: the limit is back at C * (1 + tol) within about two seconds at
 * 10 ms. A real overload of more than CLIMIT_SURE_QUEUE times the no-load
 * RTT is no drift or noise: the limit then falls as far as the rule says.
 *
 * The limit admitted against is est (a double) dithered to whole numbers
 * (publish()), so a small share keeps its fraction.
 *
 * Parameters and why
 * ------------------
 * GW_CLIMIT_TOLERANCE 0.15  the queue kept inside the upstream, as a share
 *     of its capacity, and the latency added to its no-load RTT. Half of
 *     the 30% the gateway accepts (critical requests should see about the
 *     unloaded latency), and well above the noise of a window mean.
 * CLIMIT_SMOOTHING 0.5      each window moves the limit half way to its
 *     target: one noisy window does not halve the limit; a real change is
 *     followed within a few round trips.
 * GW_CLIMIT_BACKOFF 0.5     a timeout or reset is late, strong evidence of
 *     overload (the request waited out a whole timeout): halve, as TCP.
 * GW_CLIMIT_PROBE_SHARE 0.75 below 1 / (1 + tol) with margin, so the queue
 *     drains even when the workers' limits overshoot a little.
 * CLIMIT_PROBE_SEND_RTTS 2, CLIMIT_PROBE_WAIT_RTTS 4: about 1.5 * limit
 *     samples per probe; the wait covers RTTs up to ~5x the mean.
 * CLIMIT_PERIOD_RTTS 100 (1.024 s .. 32.768 s): a probe per ~100 RTTs
 *     costs ~0.5% of the upstream's time, and a slower upstream is
 *     believed within two to three periods.
 * CLIMIT_PERIOD_FLOOR 0.5, CLIMIT_SURE_QUEUE 3: a wrong no-load RTT can
 *     cost at most half the limit per period; a queue of 3x no-load is
 *     never a wrong estimate and is followed at once.
 * CLIMIT_WINDOW_MIN 4, CLIMIT_SEED_SAMPLES 8: a mean, not one request.
 *
 * Bounds: the learned limit is clamped to [min_limit, max_limit] at every
 * change, and so is what gw_climit_get returns (probe and dithering
 * included). RTTs are clamped to [1 us, 2^32 us] and windows to 65536
 * samples, so no sum can overflow. O(1) per sample, no allocation.
 */
#include "climit.h"

#define CLIMIT_SMOOTHING       0.5
#define CLIMIT_PERIOD_FLOOR    0.5
#define CLIMIT_SURE_QUEUE      3.0
#define CLIMIT_PROBE_SEND_RTTS 2
#define CLIMIT_PROBE_WAIT_RTTS 4
#define CLIMIT_SEED_SAMPLES    8
#define CLIMIT_PERIOD_RTTS     100
#define CLIMIT_PERIOD_MIN_MS   1024u
#define CLIMIT_PERIOD_MAX_MS   32768u
#define CLIMIT_WINDOW_MIN      4
#define CLIMIT_WINDOW_MAX      65536u
#define CLIMIT_RTT_MAX_US      (1ull << 32)

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

/*
 * The admission limit: est, lowered while probing, as a whole number. A
 * rounded limit would hide a fraction that matters when a worker's share
 * is small (1.6 and 2.4 both admit 2: a 25% dead zone the update rule
 * could not see through), so the fraction is spread over successive
 * samples (error diffusion): at 1.6 the limit is 2 three times in five
 * and 1 otherwise, and the mean in flight follows est.
 */
static void publish(struct gw_climit *l, uint64_t now_us)
{
	double x;
	uint32_t whole;

	l->lowered = l->probing && now_us < l->probe_send_end_us;
	x = clamp_est(l, l->lowered ? l->est * l->probe_share : l->est);
	whole = (uint32_t)x;
	l->dither += x - whole;
	if (l->dither >= 1 && whole < l->max_limit) {
		l->dither -= 1;
		whole++;
	}
	if (!(l->dither >= 0 && l->dither < 1))
		l->dither = 0;
	l->limit = whole;
}

static void window_reset(struct gw_climit *l)
{
	l->win_n = 0;
	l->win_peak = 0;
	l->win_rtt_sum_us = 0;
	l->win_inflight_sum = 0;
}

/* Samples sent before t_us are left out of the windows from here on. */
static void restart_windows(struct gw_climit *l, uint64_t t_us)
{
	if (t_us > l->ignore_before_us)
		l->ignore_before_us = t_us;
	window_reset(l);
}

/* A new no-load measurement: the median of the last three, the lower of two. */
static void probe_record(struct gw_climit *l, uint64_t mean_us)
{
	uint64_t a, b, c;

	l->probes_us[l->probe_next] = mean_us ? mean_us : 1;
	l->probe_next = (l->probe_next + 1) % 3;
	if (l->nprobes < 3)
		l->nprobes++;
	a = l->probes_us[0];
	b = l->probes_us[1];
	c = l->probes_us[2];
	if (l->nprobes == 1) /* probes_forget starts them at 0 */
		l->no_load_us = a;
	else if (l->nprobes == 2)
		l->no_load_us = a < b ? a : b;
	else
		l->no_load_us =
		    a > b ? (b > c ? b : (a > c ? c : a)) : (a > c ? a : (b > c ? c : b));
}

static void probes_forget(struct gw_climit *l)
{
	l->nprobes = 0;
	l->probe_next = 0;
	l->no_load_us = 0;
}

/* CLIMIT_PERIOD_RTTS no-load RTTs, as a power of two of ms within the bounds. */
static uint32_t period_for(uint64_t min_rtt_us)
{
	uint64_t want_ms = min_rtt_us * CLIMIT_PERIOD_RTTS / 1000;
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
	l->period_floor = l->est * CLIMIT_PERIOD_FLOOR;
	l->period_ms = CLIMIT_PERIOD_MIN_MS;
	publish(l, 0);
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/*
 * The probe (see the block comment), on a schedule every worker derives
 * alike from the period's start (start_us), not from when a sample came.
 */
static void probe_start(struct gw_climit *l, uint64_t start_us, uint64_t m)
{
	uint64_t most_us = (uint64_t)l->period_ms * 1000 / 4;
	uint64_t drain_us = l->rtt_us > m ? l->rtt_us : m;
	/*
	 * The lowered limit must be below the upstream's capacity: when the
	 * last window saw the RTT at r times the no-load one, that is about
	 * the limit * (1 + tol) / r, not the limit.
	 */
	l->probe_share = GW_CLIMIT_PROBE_SHARE;
	if (l->no_load_us && l->rtt_us > l->no_load_us * (1 + GW_CLIMIT_TOLERANCE))
		l->probe_share *= (1 + GW_CLIMIT_TOLERANCE) * (double)l->no_load_us / l->rtt_us;
	l->probing = true;
	l->probe_start_us = start_us;
	l->probe_send_from_us = start_us + min_u64(drain_us, most_us / 4);
	l->probe_send_end_us =
	    l->probe_send_from_us + min_u64(CLIMIT_PROBE_SEND_RTTS * m, most_us / 4);
	l->probe_end_us = l->probe_send_end_us + min_u64(CLIMIT_PROBE_WAIT_RTTS * m, most_us / 2);
	l->probe_sum_us = 0;
	l->probe_n = 0;
	/* The first RTT after the probe finds the queue empty at any limit: not a sign of room. */
	restart_windows(l, l->probe_send_end_us + drain_us);
}

/*
 * A new period starts with a probe and a new floor. A jump over a whole
 * period (no traffic, or a clock that went back) forgets the probes: the
 * upstream may have changed since, and the first samples seed them again.
 */
static void roll_period(struct gw_climit *l, uint64_t now_ms, uint64_t now_us, uint64_t rtt_us)
{
	uint64_t id = now_ms / l->period_ms;

	if (!l->started) {
		l->started = true;
		l->period_id = id;
		return;
	}
	if (id == l->period_id)
		return;
	if (id != l->period_id + 1)
		probes_forget(l);
	l->period_ms = period_for(l->no_load_us ? l->no_load_us : rtt_us);
	l->period_id = now_ms / l->period_ms;
	l->period_floor = l->est * CLIMIT_PERIOD_FLOOR;
	probe_start(l, now_us - now_ms % l->period_ms * 1000,
	            l->no_load_us ? l->no_load_us : rtt_us);
}

/* Multiplicative decrease, once per flight: see the block comment. */
static void backoff(struct gw_climit *l, uint64_t now_us, uint64_t sent_us)
{
	if (sent_us < l->cut_us)
		return;
	l->est = clamp_est(l, l->est * GW_CLIMIT_BACKOFF);
	if (l->period_floor > l->est)
		l->period_floor = l->est;
	l->cut_us = now_us;
	restart_windows(l, now_us);
}

/*
 * The probe's requests are chosen by send time, not by arrival: the first
 * to come back are the fastest, and a mean of them would read low.
 */
static void probe_sample(struct gw_climit *l, uint64_t now_us, uint64_t sent_us, uint64_t rtt_us)
{
	if (sent_us >= l->probe_send_from_us && sent_us < l->probe_send_end_us) {
		l->probe_sum_us += rtt_us;
		l->probe_n++;
	}
	if (now_us >= l->probe_start_us && now_us < l->probe_end_us)
		return;
	if (l->probe_n > 0)
		probe_record(l, l->probe_sum_us / l->probe_n);
	l->probing = false;
}

/*
 * The delivery floor. Round-trip times measured by a busy event loop
 * include the time the loop took to get to the answer: a gateway that is
 * itself swamped (thousands of connections at 4x, every one wanting an
 * answer) sees RTTs two or three times the upstream's while the upstream is
 * fine, and a limit driven by RTT alone collapses, starving the upstream
 * and queueing critical requests behind the gateway's own mistake. The
 * number of answers per second is not fooled: an upstream that just
 * completed R requests per second with a no-load RTT of T took R x T
 * requests in flight without queueing (Little's law, the idea of BBR's
 * bandwidth-delay product). So an RTT-driven decrease never goes below
 * GW_CLIMIT_FLOOR_SHARE of what the best recent GW_CLIMIT_RATE_BIN_MS
 * bin delivered; a real loss of capacity lowers the delivered rate, and the
 * floor follows within GW_CLIMIT_RATE_BINS bins (a second).
 */
static void rate_count(struct gw_climit *l, uint64_t now_ms)
{
	uint64_t epoch = now_ms / GW_CLIMIT_RATE_BIN_MS;

	if (epoch > l->rate_epoch) {
		uint64_t skip = epoch - l->rate_epoch;

		for (uint64_t i = 1; i <= skip && i <= GW_CLIMIT_RATE_BINS; i++)
			l->rate_bins[(l->rate_epoch + i) % GW_CLIMIT_RATE_BINS] = 0;
		l->rate_epoch = epoch;
	}
	if (epoch == l->rate_epoch)
		l->rate_bins[epoch % GW_CLIMIT_RATE_BINS]++;
}

static double delivery_floor(const struct gw_climit *l)
{
	uint32_t best = 0;

	/* complete bins only: the current one is still filling */
	for (uint64_t i = 1; i < GW_CLIMIT_RATE_BINS; i++) {
		uint32_t n =
		    l->rate_bins[(l->rate_epoch + GW_CLIMIT_RATE_BINS - i) % GW_CLIMIT_RATE_BINS];
		if (n > best)
			best = n;
	}
	return GW_CLIMIT_FLOOR_SHARE * best * (double)l->no_load_us /
	       (GW_CLIMIT_RATE_BIN_MS * 1000.0);
}

/* The update rule of the block comment, on a closed window. */
static void window_close(struct gw_climit *l)
{
	uint64_t mean = l->win_rtt_sum_us / l->win_n;
	double r, target, tol = GW_CLIMIT_TOLERANCE;

	l->rtt_us = mean;
	r = (double)mean / (double)l->no_load_us;
	if (r < 1)
		r = 1; /* noise, or a faster upstream: the next probe will tell */
	if (r > 1 + tol) {
		target = (double)l->win_inflight_sum / l->win_n * (1 + tol) / r;
		if (target < l->period_floor && r < CLIMIT_SURE_QUEUE)
			target = l->period_floor;
		if (target < delivery_floor(l))
			target = delivery_floor(l);
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
	if (l->win_n == 0)
		l->win_start_us = now_us;
	l->win_rtt_sum_us += rtt_us;
	l->win_inflight_sum += inflight;
	if (inflight > l->win_peak)
		l->win_peak = inflight;
	l->win_n++;
	if (l->no_load_us == 0) {
		/*
		 * Nothing measured yet: the lowest of the first RTTs stands in
		 * until the first probe. A worker's first requests find its
		 * share of the upstream's queue empty; the lowest of them errs
		 * low, and a no-load RTT too low costs at most half the limit
		 * for a period, where one too high would hide a queue.
		 */
		if (l->win_n == 1 || rtt_us < l->win_min_us)
			l->win_min_us = rtt_us;
		if (l->win_n >= CLIMIT_SEED_SAMPLES) {
			l->no_load_us = l->win_min_us;
			window_reset(l);
		}
		return;
	}
	if (l->win_n >= CLIMIT_WINDOW_MAX ||
	    (l->win_n >= CLIMIT_WINDOW_MIN &&
	     (now_us < l->win_start_us || now_us - l->win_start_us >= l->no_load_us)))
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

	roll_period(l, now_ms, now_us, rtt_us);
	if (!ok) {
		backoff(l, now_us, sent_us);
	} else {
		/* Until the first probe, the lowest RTT seen stands in for it (see window_sample). */
		if (l->nprobes == 0 && l->no_load_us && rtt_us < l->no_load_us)
			l->no_load_us = rtt_us;
		rate_count(l, now_ms);
		if (l->probing)
			probe_sample(l, now_us, sent_us, rtt_us);
		if (sent_us >= l->ignore_before_us)
			window_sample(l, now_us, rtt_us, inflight);
	}
	publish(l, now_us);
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
	return l->no_load_us;
}

uint64_t gw_climit_rtt_us(const struct gw_climit *l)
{
	return l->rtt_us;
}
