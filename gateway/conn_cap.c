#include "conn_cap.h"

#include "util/log.h"

void gw_conn_cap_init(struct gw_conn_cap *cap, unsigned max,
                      void (*switch_listeners)(void *ctx, void *self, bool accepting), void *ctx)
{
	atomic_init(&cap->connections, 0);
	atomic_init(&cap->max, max);
	atomic_init(&cap->paused, false);
	pthread_mutex_init(&cap->lock, NULL);
	cap->switch_listeners = switch_listeners;
	cap->ctx = ctx;
}

void gw_conn_cap_destroy(struct gw_conn_cap *cap)
{
	pthread_mutex_destroy(&cap->lock);
}

void gw_conn_cap_set_max(struct gw_conn_cap *cap, unsigned max)
{
	atomic_store(&cap->max, max);
}

unsigned gw_conn_cap_count(struct gw_conn_cap *cap)
{
	return atomic_load(&cap->connections);
}

bool gw_conn_cap_lock(struct gw_conn_cap *cap)
{
	pthread_mutex_lock(&cap->lock);
	return atomic_load(&cap->paused);
}

void gw_conn_cap_unlock(struct gw_conn_cap *cap)
{
	pthread_mutex_unlock(&cap->lock);
}

/*
 * Pausing and resuming, from any worker. paused changes under the lock;
 * the close path reads it without the lock (an atomic), so that a close
 * below the limit, the common case, takes no lock. The two sides are
 * ordered like Dekker's: the opener sets paused before it reads the count
 * again, the closer lowers the count before it reads paused. So either the
 * closer sees the pause (and resumes, under the lock, if the count is still
 * below the limit), or the opener sees the lower count and does not pause:
 * listeners never stay paused below the limit.
 */
void gw_conn_cap_opened(struct gw_conn_cap *cap, void *self)
{
	unsigned n = atomic_fetch_add(&cap->connections, 1) + 1;
	unsigned max = atomic_load_explicit(&cap->max, memory_order_relaxed);

	if (n < max)
		return;
	pthread_mutex_lock(&cap->lock);
	if (!atomic_load(&cap->paused)) {
		atomic_store(&cap->paused, true);
		if (atomic_load(&cap->connections) >= max) {
			cap->switch_listeners(cap->ctx, self, false);
			gw_log_warn("limits.max_connections (%u) reached: not accepting", max);
		} else {
			atomic_store(&cap->paused, false); /* one closed meanwhile */
		}
	}
	pthread_mutex_unlock(&cap->lock);
}

void gw_conn_cap_closed(struct gw_conn_cap *cap, void *self)
{
	unsigned n = atomic_fetch_sub(&cap->connections, 1) - 1;
	unsigned max = atomic_load_explicit(&cap->max, memory_order_relaxed);

	if (n >= max || !atomic_load(&cap->paused))
		return;
	pthread_mutex_lock(&cap->lock);
	if (atomic_load(&cap->paused) && atomic_load(&cap->connections) < max) {
		atomic_store(&cap->paused, false);
		cap->switch_listeners(cap->ctx, self, true);
		gw_log_info("accepting connections again");
	}
	pthread_mutex_unlock(&cap->lock);
}
