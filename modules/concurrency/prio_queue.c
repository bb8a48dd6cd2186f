/*
 * The upstream priority queue (prio_queue.h): three FIFO lists by class
 * and a CoDel-style overload detector over them.
 */
#include "prio_queue.h"

#include <assert.h>
#include <stddef.h>

/*
 * Overload: a standing queue, not a burst
 * ---------------------------------------
 *
 * A queue that fills and drains is the queue doing its job: a burst of
 * requests above the concurrency limit waits a little and is served. A queue
 * that never drains is different: the upstream cannot keep up, every waiting
 * request adds latency and nothing more, and the only useful answer is to
 * shed. CoDel (Nichols & Jacobson, ACM Queue 2012) tells the two apart with
 * one signal: the queue delay, here the age of the oldest entry of any rank.
 * A burst pushes it above target for a while; a standing queue keeps it
 * there. So the queue is OVERLOADED once the delay has stayed above
 * target_ms for a whole interval_ms (the minimum delay over the interval
 * exceeded target), as folly's Codel "overloaded" says too.
 *
 * In O(1), with no timer: between two changes of the queue the delay is
 * t - anchor, with anchor the enqueue time of the oldest entry; it only grows
 * with time and only drops when the oldest entry leaves. So at each change
 * the moment it will cross target is known, anchor + target, and a watch
 * (struct gw_pq_watch) keeps two times: last_low (the delay is at or below
 * target up to it, above after it until the next change) and low_from (the
 * start of the latest stretch at or below target). A change that leaves the
 * delay above target continues the stretch above; a change that brings it
 * down starts a stretch below. Every call first settles the state as of
 * now from those times (settle()), then applies its change, so a state
 * reached between two calls is dated when it was reached, not when seen.
 *
 * Classes: the lowest rank is served first, so a lower class only gets the
 * slots the higher ones leave. Under overload it starves, and its own delay
 * (the age of its own oldest entry: one watch per rank) stands above target.
 * A class whose delay stands for an interval while the queue is overloaded
 * sets the episode's floor: from then on, until the episode ends, new
 * requests of ranks >= floor are refused at admission (a 503 in
 * microseconds instead of a wait that ends in a 503 anyway), and waiting ones
 * that waited more than target are shed, the lowest class first, the oldest
 * first. At 2x load, when critical and normal fit, only the sheddable class
 * stands: it alone is refused. At 4x normal stands too and the floor falls to
 * it. The floor never rises within an episode: letting a class back in while
 * the overload lasts would only make its requests wait and be shed late.
 * Critical is never refused nor shed here: it only waits, bounded by its
 * route deadline, which the caller enforces (gw_pq_remove). A standing
 * critical class sets the floor to 1: everything else would starve behind
 * it. A class below the floor also leaves free slots to the floor class
 * (gw_pq_yield): at 4x, normal is refused only when it would wait, and the
 * slots critical leaves free must go to normal, not to whichever sheddable
 * request arrives first.
 *
 * Hysteresis: the episode ends only when the queue delay has stayed at or
 * below target (or the queue was empty) for a hold time, measured inside the
 * episode. Why: refusing the floor classes drains the queue, and a detector
 * without memory would call that calm one interval later, let the refused
 * class in again, watch it stand for another target + interval and shed it
 * late, over and over. The hold starts at one interval. If the refused class
 * alone still needs more than what the higher ones leave, that cycle can
 * still happen, so each relapse (an episode that begins within target +
 * GW_PQ_RELAPSE_INTERVALS intervals of the end of the last) doubles the
 * hold, up to GW_PQ_HOLD_MAX_INTERVALS intervals (3.2 s at a 100 ms
 * interval): the share of the cycle spent admitting requests that will be
 * shed late falls from about a half to about 1/33 (and, with refusal as
 * soon as a class's own oldest request passes target, that share is about
 * target / hold of the arrivals), and the cost is that a
 * flapping queue takes up to 32 intervals of calm to let the class back in.
 * An episode that begins later than that starts again from one interval.
 */

/* ---- the delay watch ----------------------------------------------------- */

static bool watch_high(const struct gw_pq_watch *w, uint64_t now)
{
	return w->busy && now > w->last_low_ms;
}

/* How long the delay has been above target, 0 when it is not. */
static uint64_t watch_high_for(const struct gw_pq_watch *w, uint64_t now)
{
	return watch_high(w, now) ? now - w->last_low_ms : 0;
}

static uint64_t watch_delay(const struct gw_pq_watch *w, uint64_t now)
{
	return w->busy && now > w->anchor_ms ? now - w->anchor_ms : 0;
}

/* The signal changes at now: a new oldest entry (busy, anchor) or none waits. */
static void watch_change(struct gw_pq_watch *w, uint64_t target, bool busy, uint64_t anchor,
                         uint64_t now)
{
	bool was_high = watch_high(w, now);
	bool high = busy && now > anchor && now - anchor > target;

	if (high) {
		if (!was_high)
			w->last_low_ms = now; /* only with a clock that went back: crossed here */
	} else {
		if (was_high)
			w->low_from_ms = now;
		if (busy)
			w->last_low_ms =
			    anchor > UINT64_MAX - target ? UINT64_MAX : anchor + target;
	}
	w->busy = busy;
	w->anchor_ms = anchor;
}

/* After a change of rank r: both watches see the new oldest entries. */
static void refresh(struct gw_pq *q, unsigned r, uint64_t now)
{
	const struct gw_pq_entry *head = TAILQ_FIRST(&q->list[r]);
	const struct gw_pq_entry *oldest = NULL;

	watch_change(&q->rank[r], q->target_ms, head != NULL, head ? head->enqueued_ms : 0, now);
	for (unsigned i = 0; i < GW_PQ_RANKS; i++) {
		head = TAILQ_FIRST(&q->list[i]);
		if (head && (!oldest || head->enqueued_ms < oldest->enqueued_ms))
			oldest = head;
	}
	watch_change(&q->all, q->target_ms, oldest != NULL, oldest ? oldest->enqueued_ms : 0, now);
}

/* ---- the overload episode ------------------------------------------------ */

static uint64_t at_most(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* Ends the episode if the queue has been calm for the hold inside it. */
static void settle_leave(struct gw_pq *q, uint64_t now)
{
	const struct gw_pq_watch *w = &q->all;
	uint64_t from = w->low_from_ms;
	uint64_t to = watch_high(w, now) ? w->last_low_ms : now;

	if (from < q->entered_ms || to < from || to - from < q->hold_ms)
		return;
	q->overloaded = false;
	q->left_ms = from + q->hold_ms;
	q->floor = GW_PQ_RANKS;
}

/* Begins an episode if the queue delay has stood above target for an interval. */
static void settle_enter(struct gw_pq *q, uint64_t now)
{
	uint64_t began, relapse_window;

	if (watch_high_for(&q->all, now) < q->interval_ms)
		return;
	began = q->all.last_low_ms + q->interval_ms;
	relapse_window = q->target_ms + GW_PQ_RELAPSE_INTERVALS * q->interval_ms;
	if (q->episodes > 0 && began >= q->left_ms && began - q->left_ms < relapse_window)
		q->hold_ms = at_most(q->hold_ms * 2, GW_PQ_HOLD_MAX_INTERVALS * q->interval_ms);
	else
		q->hold_ms = q->interval_ms;
	q->overloaded = true;
	q->entered_ms = began;
	q->episodes++;
	q->floor = GW_PQ_RANKS;
}

/* The highest priority class standing lowers the floor (never below 1). */
static void settle_floor(struct gw_pq *q, uint64_t now)
{
	for (unsigned r = 0; r < GW_PQ_RANKS; r++) {
		if (watch_high_for(&q->rank[r], now) >= q->interval_ms) {
			unsigned f = r > 0 ? r : 1;

			if (f < q->floor)
				q->floor = f;
			return;
		}
	}
}

/* The state as of now, before any change at now. */
static void settle(struct gw_pq *q, uint64_t now)
{
	if (q->overloaded)
		settle_leave(q, now);
	if (!q->overloaded)
		settle_enter(q, now);
	if (q->overloaded)
		settle_floor(q, now);
}

/* ---- the lists ----------------------------------------------------------- */

void gw_pq_init(struct gw_pq *q, uint64_t target_ms, uint64_t interval_ms)
{
	*q = (struct gw_pq){0};
	for (unsigned r = 0; r < GW_PQ_RANKS; r++)
		TAILQ_INIT(&q->list[r]);
	q->target_ms = target_ms;
	q->interval_ms = interval_ms ? interval_ms : 1;
	q->hold_ms = q->interval_ms;
	q->floor = GW_PQ_RANKS;
}

static void detach(struct gw_pq *q, struct gw_pq_entry *e, uint64_t now)
{
	TAILQ_REMOVE(&q->list[e->rank], e, link);
	q->len[e->rank]--;
	e->queued = false;
	refresh(q, e->rank, now);
}

static uint64_t waited(const struct gw_pq_entry *e, uint64_t now)
{
	return now > e->enqueued_ms ? now - e->enqueued_ms : 0;
}

void gw_pq_push(struct gw_pq *q, struct gw_pq_entry *e, unsigned rank, uint64_t now_ms)
{
	assert(!e->queued);
	if (rank >= GW_PQ_RANKS)
		rank = GW_PQ_RANKS - 1;
	settle(q, now_ms);
	e->enqueued_ms = now_ms;
	e->rank = rank;
	e->queued = true;
	TAILQ_INSERT_TAIL(&q->list[rank], e, link);
	q->len[rank]++;
	q->counts[rank].pushed++;
	refresh(q, rank, now_ms);
}

void gw_pq_remove(struct gw_pq *q, struct gw_pq_entry *e, uint64_t now_ms)
{
	if (!e->queued)
		return;
	settle(q, now_ms);
	q->counts[e->rank].removed++;
	detach(q, e, now_ms);
}

struct gw_pq_entry *gw_pq_pop(struct gw_pq *q, uint64_t now_ms)
{
	settle(q, now_ms);
	for (unsigned r = 0; r < GW_PQ_RANKS; r++) {
		struct gw_pq_entry *e = TAILQ_FIRST(&q->list[r]);
		struct gw_pq_counts *c = &q->counts[r];
		uint64_t w;

		if (!e)
			continue;
		w = waited(e, now_ms);
		c->popped++;
		c->wait_sum_ms += w;
		if (w > c->wait_max_ms)
			c->wait_max_ms = w;
		detach(q, e, now_ms);
		return e;
	}
	return NULL;
}

uint32_t gw_pq_len(const struct gw_pq *q, unsigned rank)
{
	return rank < GW_PQ_RANKS ? q->len[rank] : 0;
}

uint32_t gw_pq_total(const struct gw_pq *q)
{
	uint32_t n = 0;

	for (unsigned r = 0; r < GW_PQ_RANKS; r++)
		n += q->len[r];
	return n;
}

/* ---- overload, refusal, shedding ----------------------------------------- */

bool gw_pq_overloaded(struct gw_pq *q, uint64_t now_ms)
{
	settle(q, now_ms);
	return q->overloaded;
}

bool gw_pq_refuse(struct gw_pq *q, unsigned rank, uint64_t now_ms)
{
	if (rank >= GW_PQ_RANKS)
		rank = GW_PQ_RANKS - 1;
	settle(q, now_ms);
	if (rank == 0)
		return false;
	/* Overloaded, and the class is at or below the episode's floor; or,
	 * overloaded or not, the class's own oldest request has already
	 * waited past target: a newcomer of that class would wait at least as
	 * long, so it is refused now, in microseconds, instead of being shed
	 * after its wait. */
	if ((!q->overloaded || rank < q->floor) &&
	    watch_delay(&q->rank[rank], now_ms) <= q->target_ms)
		return false;
	if (q->overloaded && rank < q->floor)
		q->floor = rank; /* refused in this episode: it joins the floor */
	q->counts[rank].refused++;
	return true;
}

bool gw_pq_yield(struct gw_pq *q, unsigned rank, uint64_t now_ms)
{
	if (rank >= GW_PQ_RANKS)
		rank = GW_PQ_RANKS - 1;
	settle(q, now_ms);
	if (!q->overloaded || rank == 0 || rank <= q->floor)
		return false;
	q->counts[rank].refused++;
	return true;
}

struct gw_pq_entry *gw_pq_shed_next(struct gw_pq *q, uint64_t now_ms)
{
	settle(q, now_ms);
	if (!q->overloaded)
		return NULL;
	for (unsigned r = GW_PQ_RANKS - 1; r >= q->floor && r > 0; r--) {
		struct gw_pq_entry *e = TAILQ_FIRST(&q->list[r]);

		if (e && waited(e, now_ms) > q->target_ms) {
			q->counts[r].shed++;
			detach(q, e, now_ms);
			return e;
		}
	}
	return NULL;
}

void gw_pq_stats(struct gw_pq *q, uint64_t now_ms, struct gw_pq_stats *out)
{
	settle(q, now_ms);
	*out = (struct gw_pq_stats){0};
	for (unsigned r = 0; r < GW_PQ_RANKS; r++) {
		struct gw_pq_rank_stats *s = &out->rank[r];

		s->waiting = q->len[r];
		s->delay_ms = watch_delay(&q->rank[r], now_ms);
		s->standing = watch_high_for(&q->rank[r], now_ms) >= q->interval_ms;
		s->counts = q->counts[r];
	}
	out->delay_ms = watch_delay(&q->all, now_ms);
	out->above_ms = watch_high_for(&q->all, now_ms);
	out->overloaded = q->overloaded;
	out->episode_ms = q->overloaded && now_ms > q->entered_ms ? now_ms - q->entered_ms : 0;
	out->hold_ms = q->hold_ms;
	out->floor = q->floor;
	out->episodes = q->episodes;
	out->target_ms = q->target_ms;
	out->interval_ms = q->interval_ms;
}
