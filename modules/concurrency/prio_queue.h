/*
 * The upstream priority queue: where a request over its upstream's
 * concurrency limit waits for a slot (SPEC section 5), one queue per
 * upstream per worker thread, used by that thread only.
 *
 * Three classes by rank: 0 critical, 1 normal, 2 sheddable. The next to be
 * served is the oldest entry of the lowest rank waiting. The queue also
 * watches its own delay, CoDel-style, and says when it is overloaded (a
 * standing queue, not a burst), which classes to refuse at admission and
 * which waiting entries to shed; the algorithm is described in
 * prio_queue.c.
 *
 * Entries are intrusive: a gw_pq_entry lives inside the waiting request,
 * nothing here allocates. Time comes in as now_ms (the worker's cached
 * monotonic clock, a fake clock in tests): nothing here reads a clock.
 * Every operation is O(1) (a few steps per rank, never a walk of the
 * entries).
 */
#ifndef GW_MODULES_CONCURRENCY_PRIO_QUEUE_H
#define GW_MODULES_CONCURRENCY_PRIO_QUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

/* Ranks: 0 critical, 1 normal, 2 sheddable (as enum gw_priority). */
#define GW_PQ_RANKS 3

/*
 * Each relapse (a new overload episode that begins within target +
 * GW_PQ_RELAPSE_INTERVALS intervals of the end of the last one) doubles
 * the calm time needed to end it, from one interval up to
 * GW_PQ_HOLD_MAX_INTERVALS intervals. See "Hysteresis" in prio_queue.c.
 */
#define GW_PQ_RELAPSE_INTERVALS  4
#define GW_PQ_HOLD_MAX_INTERVALS 32

/*
 * One waiting request's place in the queue. Embedded in the request and
 * owned by it; zero it (calloc) before its first push. The queue only links
 * it: the request may be freed once it is not queued (after pop, remove or
 * shed_next returned it).
 */
struct gw_pq_entry {
	TAILQ_ENTRY(gw_pq_entry) link;
	uint64_t enqueued_ms; /* now_ms of its push */
	unsigned rank;        /* its class, 0..GW_PQ_RANKS-1 */
	bool queued;          /* linked in a queue */
};

TAILQ_HEAD(gw_pq_list, gw_pq_entry);

/*
 * A delay signal d(t) = t - anchor while something waits, 0 otherwise (the
 * anchor is the enqueue time of the oldest entry), tracked as stretches
 * above and at-or-below the target. Internal to prio_queue.c; plain data.
 */
struct gw_pq_watch {
	uint64_t anchor_ms;   /* valid when busy */
	uint64_t last_low_ms; /* d <= target up to here, > target after it (until a change) */
	uint64_t low_from_ms; /* start of the latest stretch with d <= target */
	bool busy;            /* something waits */
};

/* Counters of one rank, since init. */
struct gw_pq_counts {
	uint64_t pushed, popped, removed, shed, refused;
	uint64_t wait_sum_ms, wait_max_ms; /* of popped entries */
};

/*
 * The queue. Plain data embedded in its owner (the worker's upstream
 * state), which must not copy it after gw_pq_init (the list heads point
 * into it). Nothing to free; the owner removes or pops the entries it
 * still holds before freeing the requests.
 */
struct gw_pq {
	struct gw_pq_list list[GW_PQ_RANKS]; /* FIFO per rank */
	uint32_t len[GW_PQ_RANKS];
	uint64_t target_ms, interval_ms;
	struct gw_pq_watch all;               /* the queue delay: oldest of any rank */
	struct gw_pq_watch rank[GW_PQ_RANKS]; /* each rank's own delay */
	/* The overload episode. */
	bool overloaded;
	unsigned floor;      /* ranks >= floor are refused and shed; GW_PQ_RANKS = none */
	uint64_t entered_ms; /* when the current (or last) episode began */
	uint64_t left_ms;    /* when the last episode ended */
	uint64_t hold_ms;    /* calm time that ends the current episode */
	uint64_t episodes;   /* episodes begun since init */
	struct gw_pq_counts counts[GW_PQ_RANKS];
};

/*
 * target_ms: the delay a queue may keep standing (shedding.target_queue_delay);
 * interval_ms: how long it must stand before it is overload (CoDel uses
 * 100ms); at least 1 (0 is taken as 1).
 */
void gw_pq_init(struct gw_pq *q, uint64_t target_ms, uint64_t interval_ms);

/* Queues e (not queued) at the back of its rank; a rank past the last is the last. */
void gw_pq_push(struct gw_pq *q, struct gw_pq_entry *e, unsigned rank, uint64_t now_ms);

/* Takes e out of the queue (client gone, deadline); a no-op when !e->queued. */
void gw_pq_remove(struct gw_pq *q, struct gw_pq_entry *e, uint64_t now_ms);

/*
 * The next to serve, taken out of the queue: the lowest rank first, FIFO
 * within a rank; NULL when empty. Counts its wait in the stats.
 */
struct gw_pq_entry *gw_pq_pop(struct gw_pq *q, uint64_t now_ms);

uint32_t gw_pq_len(const struct gw_pq *q, unsigned rank); /* 0 for a rank past the last */
uint32_t gw_pq_total(const struct gw_pq *q);

/*
 * Whether the queue is overloaded: its delay (the age of the oldest entry
 * of any rank) has stood above target for a whole interval, and it has not
 * yet been calm (at or below target, or empty) for the episode's hold
 * (one interval, more after relapses).
 */
bool gw_pq_overloaded(struct gw_pq *q, uint64_t now_ms);

/*
 * Whether a new request of this rank, about to wait, should be refused at
 * once (answered 503 `shed` in microseconds) instead of queued: the queue is
 * overloaded, rank > 0, and rank >= the episode's floor, the highest
 * priority class shed so far in this episode or standing in the queue (its
 * own oldest entry above target for an interval; a standing critical class
 * refuses every other); or, overloaded or not, the rank's own oldest entry
 * has already waited more than target (a newcomer would wait longer).
 * Critical is never refused. A true answer is counted as a refusal of that
 * rank.
 */
bool gw_pq_refuse(struct gw_pq *q, unsigned rank, uint64_t now_ms);

/*
 * Whether a request of this rank that finds a free slot (and nobody
 * waiting) must still leave it to a higher class being shed: the queue is
 * overloaded and rank > the floor. At 4x, normal stands and is refused
 * when it would wait; without this a sheddable request arriving first
 * would take the slots normal leaves free, an inversion. Call it before
 * taking a free slot; when it is true, gw_pq_refuse() is true as well
 * (answer 503 `shed` as for a refusal). A true answer is counted as a
 * refusal of that rank. At the floor rank itself it is false: the room the
 * higher classes leave is not wasted.
 */
bool gw_pq_yield(struct gw_pq *q, unsigned rank, uint64_t now_ms);

/*
 * While overloaded: takes out and returns the next waiting entry to shed,
 * NULL when none. Only ranks >= the floor (as for refuse), never critical,
 * only entries that waited more than target; the lowest class first, the
 * oldest first within it. The caller answers it 503 and calls again.
 */
struct gw_pq_entry *gw_pq_shed_next(struct gw_pq *q, uint64_t now_ms);

/* For /status and metrics: one rank. */
struct gw_pq_rank_stats {
	uint32_t waiting;
	uint64_t delay_ms; /* age of its oldest waiting entry, 0 when none */
	bool standing;     /* that delay has been above target for an interval */
	struct gw_pq_counts counts;
};

/* For /status and metrics: the queue. */
struct gw_pq_stats {
	struct gw_pq_rank_stats rank[GW_PQ_RANKS];
	uint64_t delay_ms;   /* the queue delay: age of the oldest entry of any rank */
	uint64_t above_ms;   /* how long that delay has been above target, 0 when not */
	bool overloaded;     /* the current episode ... */
	uint64_t episode_ms; /* ... has lasted this long */
	uint64_t hold_ms;    /* calm time that ends it */
	unsigned floor;      /* ranks >= floor refused and shed; GW_PQ_RANKS = none */
	uint64_t episodes;   /* since init */
	uint64_t target_ms, interval_ms;
};

/* Fills out as of now_ms (settling the overload state first, hence not const). */
void gw_pq_stats(struct gw_pq *q, uint64_t now_ms, struct gw_pq_stats *out);

#endif
