/*
 * limits.max_connections: the process-wide count of client connections and
 * the pause of every listener while the count is at the limit.
 *
 * The cap knows nothing of workers or listeners: whoever owns it (the
 * server) gives it a function that switches listeners on or off, and each
 * worker tells it, on its own thread, when a connection opens or closes.
 *
 * Ownership: embedded in its owner (struct gw_server); the owner's
 * switch_listeners context outlives it.
 */
#ifndef GW_CONN_CAP_H
#define GW_CONN_CAP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

struct gw_conn_cap {
	atomic_uint connections; /* open now, whole process */
	atomic_uint max;         /* limits.max_connections (a reload changes it) */
	/* Listeners paused because connections reached max. Changed under
	 * lock; read without it on the close path (atomic). */
	pthread_mutex_t lock;
	atomic_bool paused;
	/* Switches listeners to accepting or not; runs with lock held, on
	 * the thread of self (the worker whose connection crossed the limit). */
	void (*switch_listeners)(void *ctx, void *self, bool accepting);
	void *ctx;
};

void gw_conn_cap_init(struct gw_conn_cap *cap, unsigned max,
                      void (*switch_listeners)(void *ctx, void *self, bool accepting), void *ctx);
void gw_conn_cap_destroy(struct gw_conn_cap *cap);
void gw_conn_cap_set_max(struct gw_conn_cap *cap, unsigned max);
unsigned gw_conn_cap_count(struct gw_conn_cap *cap);

/* A client connection opened / closed on worker self (its own thread). */
void gw_conn_cap_opened(struct gw_conn_cap *cap, void *self);
void gw_conn_cap_closed(struct gw_conn_cap *cap, void *self);

/* Takes the cap's lock (a worker changing or switching its listeners must
 * not race a pause) and returns whether listeners are paused. */
bool gw_conn_cap_lock(struct gw_conn_cap *cap);
void gw_conn_cap_unlock(struct gw_conn_cap *cap);

#endif
