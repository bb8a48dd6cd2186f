/*
 * The flags runtime (flag_sync.h).
 */
#include "flag_sync.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "flag_cache.h"
#include "../../gateway/redis/redis_client.h"
#include "../../gateway/pipeline.h"
#include "../../gateway/util/alloc.h"
#include "../../gateway/util/log.h"

/* Expiry times read twice may differ by the round trip: not a change. */
#define EXPIRY_SLACK_MS 1000

/*
 * One worker's mailbox for snapshots. Owned by the runtime (one allocation
 * each: the event points at it); the event lives on the worker's base.
 */
struct mailbox {
	struct event *ev;
	_Atomic(struct gw_flags_snap *) next; /* a reference handed over, not taken yet */
	struct gw_flags_snap **slot;          /* the worker's pointer: only its thread writes */
	struct gw_flags_snap **prev_slot;     /* the one before, for requests of an older config */
};

struct reread;

struct gw_flags_sync {
	struct gw_config *config; /* reference */
	struct event_base *base;
	struct gw_pipeline *pipeline; /* the server's; breakers forced from here */
	struct gw_redis *redis;       /* owned; NULL without a redis section */
	struct event *poll_ev;        /* every redis.poll_interval */
	struct event *expire_ev;      /* the next end of a TTL'd ops value */
	struct event *start_ev;       /* bound on the wait for the first read */

	struct gw_flags_layer *remote;   /* owned: the last good Redis (or cache) values */
	struct gw_flags_layer *override; /* owned: admin overrides (empty until the admin API) */
	struct gw_flags_layer *written;  /* owned: what the cache file holds, NULL: unknown */
	struct gw_flags_snap *current;   /* reference */
	enum gw_breaker_force *applied;  /* per route: what gw_breaker_force last set */
	struct gw_flags_complaints complaints;

	struct mailbox **mailboxes; /* owned */
	size_t nmailboxes;

	struct reread *reading; /* the read in flight, or NULL */
	bool again;             /* something changed during that read: read again after it */
	bool starting, start_done, start_ok;
	bool closing;
	char cache_error[320]; /* last cache write error logged */

	char *flags_key; /* PREFIXflags */
	char **ops_keys; /* PREFIXops:shed_level, PREFIXops:profile, PREFIXops:breaker:ROUTE... */
	size_t nops;
};

/*
 * One full re-read in flight. Owned by the runtime (fs->reading) until its
 * last reply; every command's callback comes exactly once (redis_client.h),
 * so pending reaches zero and finish() frees it.
 */
struct pttl_arg {
	struct reread *rr;
	size_t key;
};

struct reread {
	struct gw_flags_sync *fs;
	unsigned pending; /* commands in flight, + 1 while commands are being sent */
	bool failed, stage2;
	char why[160];
	struct gw_flags_read rd;
	struct pttl_arg *pttl; /* one per ops key */
};

static void reread_start(struct gw_flags_sync *fs);

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void arm(struct event *ev, uint64_t ms)
{
	struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
	                     .tv_usec = (suseconds_t)(ms % 1000) * 1000};

	evtimer_add(ev, &tv);
}

static char *concat(const char *a, const char *b, const char *c)
{
	size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
	char *s = gw_malloc(n);

	snprintf(s, n, "%s%s%s", a, b, c);
	return s;
}

/* ---- snapshot hand-over -------------------------------------------------- */

/*
 * Snapshot hand-over. Workers read their snapshot with no lock and no
 * atomic: w->flags is a plain pointer that only the worker's thread
 * writes. The main thread never touches it; it puts a reference to the new
 * snapshot in the worker's mailbox (an atomic exchange: a snapshot the
 * worker has not taken yet is simply replaced, and its reference dropped)
 * and wakes the worker with event_active on the mailbox event. The worker,
 * in its own loop, takes the snapshot out of the mailbox, swaps its
 * pointer, and drops its reference to the old one. Snapshots are reference
 * counted (atomically, once per hand-over, never per request): the old one
 * is freed by whichever thread drops the last reference, the runtime's
 * included. A request that started on a snapshot keeps no pointer to it:
 * admission reads it once, before anything can swap it.
 */
static void on_mailbox(evutil_socket_t fd, short what, void *arg)
{
	struct mailbox *mb = arg;
	struct gw_flags_snap *s = atomic_exchange(&mb->next, NULL), *old;

	if (!s)
		return;
	old = *mb->slot;
	*mb->slot = s;
	/* Kept while it serves another config than the new one: after a reload,
	 * requests of the old config still find values made for it. */
	if (old && old->config != s->config) {
		gw_flags_snap_unref(*mb->prev_slot);
		*mb->prev_slot = old;
	} else {
		gw_flags_snap_unref(old);
	}
}

static void hand_over(struct gw_flags_sync *fs, struct gw_flags_snap *s)
{
	for (size_t i = 0; i < fs->nmailboxes; i++) {
		struct mailbox *mb = fs->mailboxes[i];
		struct gw_flags_snap *old = atomic_exchange(&mb->next, gw_flags_snap_ref(s));

		gw_flags_snap_unref(old);
		event_active(mb->ev, EV_READ, 1);
	}
}

/* ---- applying values -------------------------------------------------------- */

static void apply_breakers(struct gw_flags_sync *fs, const struct gw_flags_snap *s)
{
	for (size_t r = 0; r < s->nroutes; r++) {
		struct gw_breaker *b;

		if (s->breakers[r] == fs->applied[r])
			continue;
		fs->applied[r] = s->breakers[r];
		b = gw_pipeline_route_state(fs->pipeline, r, &gw_breaker_module);
		if (b)
			gw_breaker_force(b, s->breakers[r]);
	}
}

/* The earliest end of a TTL'd ops value still running, or 0. */
static int64_t next_expiry(const struct gw_flags_layer *l, int64_t now)
{
	int64_t next = 0;

#define CONSIDER(has, t)                                                                           \
	if ((has) && (t) > now && (next == 0 || (t) < next))                                       \
		next = (t);
	CONSIDER(l->has_shed_level, l->shed_expires_ms);
	CONSIDER(l->has_profile, l->profile_expires_ms);
	for (size_t r = 0; r < l->nroutes; r++)
		CONSIDER(l->has_breaker[r], l->breaker_expires_ms[r]);
#undef CONSIDER
	return next;
}

/*
 * Resolves the layers now; when anything a worker would see changed, logs
 * it, forces breakers and hands the new snapshot over.
 */
static void publish(struct gw_flags_sync *fs)
{
	int64_t now = wall_ms(), next;
	struct gw_flags_snap *s = gw_flags_resolve(fs->config, fs->remote, fs->override, now);

	next = next_expiry(fs->remote, now);
	evtimer_del(fs->expire_ev);
	if (next)
		arm(fs->expire_ev, (uint64_t)(next - now) + 1);
	bool same_config = fs->current && fs->current->config == s->config;

	if (same_config && gw_flags_snap_equal(fs->current, s)) {
		gw_flags_snap_unref(s);
		return;
	}
	/* after a reload the indexes differ: the reload itself is logged */
	if (same_config || !fs->current)
		gw_flags_log_changes(fs->current, s);
	apply_breakers(fs, s);
	gw_flags_snap_unref(fs->current);
	fs->current = s;
	hand_over(fs, s);
}

static void write_cache(struct gw_flags_sync *fs)
{
	const char *path = fs->config->redis.cache_file;
	char why[320];

	if (!path ||
	    (fs->written && gw_flags_layer_equal(fs->written, fs->remote, EXPIRY_SLACK_MS)))
		return;
	if (gw_flags_cache_write(path, fs->config, fs->remote, why, sizeof(why)) < 0) {
		if (strcmp(why, fs->cache_error) != 0)
			gw_log_warn("flags: %s", why);
		snprintf(fs->cache_error, sizeof(fs->cache_error), "%s", why);
		return;
	}
	if (fs->cache_error[0])
		gw_log_info("flags: cache file %s written again", path);
	fs->cache_error[0] = '\0';
	gw_flags_layer_free(fs->written);
	fs->written = gw_flags_layer_copy(fs->remote);
}

/* ---- reading Redis ---------------------------------------------------------- */

/* A bulk string as C text; NUL bytes become '?', which no value contains. */
static char *text_of(const redisReply *r)
{
	char *s = gw_malloc(r->len + 1);

	for (size_t i = 0; i < r->len; i++)
		s[i] = r->str[i] ? r->str[i] : '?';
	s[r->len] = '\0';
	return s;
}

static void reread_fail(struct reread *rr, const char *what, const redisReply *reply,
                        const char *err)
{
	if (rr->failed)
		return;
	rr->failed = true;
	snprintf(rr->why, sizeof(rr->why), "%s: %s%s%s", what, err,
	         err == gw_redis_err_reply && reply ? ": " : "",
	         err == gw_redis_err_reply && reply ? reply->str : "");
}

static void finish(struct reread *rr)
{
	struct gw_flags_sync *fs = rr->fs;

	fs->reading = NULL;
	if (!rr->failed) {
		gw_flags_layer_update(fs->remote, fs->config, &rr->rd, &fs->complaints, wall_ms());
		if (!fs->closing) {
			write_cache(fs);
			publish(fs);
		}
	} else {
		gw_log_debug("flags: read of redis failed: %s; keeping the last good values",
		             rr->why);
	}
	if (fs->starting) {
		fs->start_done = true;
		fs->start_ok = !rr->failed;
	}
	gw_flags_read_clear(&rr->rd);
	free(rr->pttl);
	free(rr);
	if (fs->again && !fs->closing) {
		fs->again = false;
		reread_start(fs);
	}
}

static void on_pttl(const struct redisReply *reply, const char *err, void *arg);

/* Stage 2: the TTL of each ops key that exists. */
static void ask_ttls(struct reread *rr)
{
	struct gw_flags_sync *fs = rr->fs;

	rr->stage2 = true;
	for (size_t i = 0; i < rr->rd.nops; i++) {
		const char *argv[2] = {"PTTL", fs->ops_keys[i]};

		if (!rr->rd.ops[i])
			continue;
		rr->pttl[i] = (struct pttl_arg){.rr = rr, .key = i};
		rr->pending++;
		if (gw_redis_command(fs->redis, on_pttl, &rr->pttl[i], 2, argv, NULL) < 0) {
			rr->pending--;
			reread_fail(rr, "PTTL", NULL, gw_redis_err_disconnected);
		}
	}
}

/* One command of the read is over; the last one finishes the read. */
static void reread_done(struct reread *rr)
{
	if (--rr->pending > 0)
		return;
	if (!rr->failed && !rr->stage2) {
		rr->pending = 1; /* held while stage 2 is being sent */
		ask_ttls(rr);
		if (--rr->pending > 0)
			return;
	}
	finish(rr);
}

static void on_pttl(const struct redisReply *reply, const char *err, void *arg)
{
	struct pttl_arg *pa = arg;
	struct reread *rr = pa->rr;

	if (err)
		reread_fail(rr, "PTTL", reply, err);
	else if (reply->type == REDIS_REPLY_INTEGER)
		/* -2: gone since the MGET; end it now, the next read confirms */
		rr->rd.ops_pttl[pa->key] = reply->integer == -2 ? 1 : reply->integer;
	reread_done(rr);
}

static void on_hgetall(const struct redisReply *reply, const char *err, void *arg)
{
	struct reread *rr = arg;

	if (err == gw_redis_err_reply && reply && strncmp(reply->str, "WRONGTYPE", 9) == 0) {
		rr->rd.flags_bad = true;
	} else if (err) {
		reread_fail(rr, "HGETALL", reply, err);
	} else if (reply->type != REDIS_REPLY_ARRAY || reply->elements % 2) {
		reread_fail(rr, "HGETALL", NULL, "unexpected reply");
	} else {
		size_t n = reply->elements / 2;

		rr->rd.fields = gw_calloc(n ? n : 1, sizeof(*rr->rd.fields));
		rr->rd.values = gw_calloc(n ? n : 1, sizeof(*rr->rd.values));
		for (size_t i = 0; i < n; i++) {
			const redisReply *k = reply->element[2 * i], *v = reply->element[2 * i + 1];

			if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
				continue;
			rr->rd.fields[rr->rd.nfields] = text_of(k);
			rr->rd.values[rr->rd.nfields++] = text_of(v);
		}
	}
	reread_done(rr);
}

static void on_mget(const struct redisReply *reply, const char *err, void *arg)
{
	struct reread *rr = arg;

	if (err) {
		reread_fail(rr, "MGET", reply, err);
	} else if (reply->type != REDIS_REPLY_ARRAY || reply->elements != rr->rd.nops) {
		reread_fail(rr, "MGET", NULL, "unexpected reply");
	} else {
		for (size_t i = 0; i < rr->rd.nops; i++)
			if (reply->element[i]->type == REDIS_REPLY_STRING)
				rr->rd.ops[i] = text_of(reply->element[i]);
	}
	reread_done(rr);
}

/*
 * A full re-read: HGETALL and MGET pipelined, then PTTL of the ops keys
 * found. A read already in flight is not doubled: it is followed by one
 * more, so a change announced while it ran is not missed.
 */
static void reread_start(struct gw_flags_sync *fs)
{
	struct reread *rr;
	const char *hgetall[2] = {"HGETALL", fs->flags_key};
	const char **mget;

	if (!fs->redis || fs->closing)
		return;
	if (fs->reading) {
		fs->again = true;
		return;
	}
	if (!gw_redis_ready(fs->redis))
		return;
	rr = gw_calloc(1, sizeof(*rr));
	rr->fs = fs;
	rr->rd.nops = fs->nops;
	rr->rd.ops = gw_calloc(fs->nops, sizeof(*rr->rd.ops));
	rr->rd.ops_pttl = gw_calloc(fs->nops, sizeof(*rr->rd.ops_pttl));
	for (size_t i = 0; i < fs->nops; i++)
		rr->rd.ops_pttl[i] = -1;
	rr->pttl = gw_calloc(fs->nops, sizeof(*rr->pttl));
	fs->reading = rr;

	mget = gw_malloc((fs->nops + 1) * sizeof(*mget));
	mget[0] = "MGET";
	for (size_t i = 0; i < fs->nops; i++)
		mget[i + 1] = fs->ops_keys[i];
	rr->pending = 3; /* two commands, and this function until both are sent */
	if (gw_redis_command(fs->redis, on_hgetall, rr, 2, hgetall, NULL) < 0) {
		rr->pending--;
		reread_fail(rr, "HGETALL", NULL, gw_redis_err_disconnected);
	}
	if (gw_redis_command(fs->redis, on_mget, rr, (int)fs->nops + 1, mget, NULL) < 0) {
		rr->pending--;
		reread_fail(rr, "MGET", NULL, gw_redis_err_disconnected);
	}
	free(mget);
	reread_done(rr);
}

/* ---- Redis events ------------------------------------------------------------ */

static void on_ready(void *arg)
{
	reread_start(arg);
}

static void on_subscribed(void *arg)
{
	/* Messages published while unsubscribed are lost: read everything. */
	reread_start(arg);
}

static void on_message(void *arg, const char *data, size_t len)
{
	(void)data;
	(void)len;
	reread_start(arg); /* any message means "re-read now" */
}

static void on_lost(void *arg, const char *why)
{
	struct gw_flags_sync *fs = arg;

	(void)why;
	if (fs->starting)
		fs->start_done = true; /* start_ok stays false */
}

static const struct gw_redis_handler redis_handler = {
    .ready = on_ready,
    .lost = on_lost,
    .subscribed = on_subscribed,
    .message = on_message,
};

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
	struct gw_flags_sync *fs = arg;

	publish(fs); /* ends TTL'd values that ran out, even with Redis away */
	reread_start(fs);
}

static void on_expire(evutil_socket_t fd, short what, void *arg)
{
	publish(arg);
}

static void on_start_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct gw_flags_sync *fs = arg;

	fs->start_done = true;
}

static void make_ops_keys(struct gw_flags_sync *fs)
{
	const struct gw_config *config = fs->config;
	const char *prefix = config->redis.prefix;

	for (size_t i = 0; i < fs->nops; i++)
		free(fs->ops_keys[i]);
	free(fs->ops_keys);
	fs->nops = GW_OPS_BREAKER0 + config->nroutes;
	fs->ops_keys = gw_calloc(fs->nops, sizeof(*fs->ops_keys));
	fs->ops_keys[GW_OPS_SHED_LEVEL] = concat(prefix, "ops:shed_level", "");
	fs->ops_keys[GW_OPS_PROFILE] = concat(prefix, "ops:profile", "");
	for (size_t r = 0; r < config->nroutes; r++)
		fs->ops_keys[GW_OPS_BREAKER0 + r] =
		    concat(prefix, "ops:breaker:", config->routes[r].name);
}

/* ---- life cycle ---------------------------------------------------------------- */

struct gw_flags_sync *gw_flags_sync_new(struct gw_config *config, struct event_base *main_base,
                                        struct gw_pipeline *pipeline, char *err, size_t err_size)
{
	struct gw_flags_sync *fs;
	const struct gw_redis_conf *rc = &config->redis;
	const char *password = NULL;

	if (config->has_redis && rc->password_env) {
		password = getenv(rc->password_env);
		if (!password || !password[0]) {
			snprintf(err, err_size,
			         "redis.password_env: the environment variable %s is not set",
			         rc->password_env);
			return NULL;
		}
	}
	fs = gw_calloc(1, sizeof(*fs));
	fs->config = gw_config_ref(config);
	fs->base = main_base;
	fs->pipeline = pipeline;
	fs->remote = gw_flags_layer_new(config);
	fs->override = gw_flags_layer_new(config);
	fs->applied = gw_calloc(config->nroutes ? config->nroutes : 1, sizeof(*fs->applied));
	gw_flags_complaints_init(&fs->complaints, config);
	fs->expire_ev = evtimer_new(main_base, on_expire, fs);
	if (!config->has_redis)
		return fs;

	fs->flags_key = concat(rc->prefix, "flags", "");
	make_ops_keys(fs);
	fs->poll_ev = event_new(main_base, -1, EV_PERSIST, on_poll, fs);
	fs->start_ev = evtimer_new(main_base, on_start_deadline, fs);
	{
		char *channel = concat(rc->prefix, "events", "");
		struct gw_redis_options o = {
		    .address = rc->address,
		    .host = rc->host,
		    .port = rc->port,
		    .unix_path = rc->unix_path,
		    .password = password,
		    .connect_timeout_ms = rc->connect_timeout_ms,
		    .command_timeout_ms = rc->command_timeout_ms,
		    .channel = channel,
		};

		fs->redis = gw_redis_new(main_base, &o, &redis_handler, fs);
		free(channel);
	}
	return fs;
}

static void load_cache(struct gw_flags_sync *fs)
{
	const char *path = fs->config->redis.cache_file;
	char why[320];

	if (!path) {
		gw_log_warn("flags: redis %s could not be read at start and there is no "
		            "cache_file: starting with the YAML defaults",
		            fs->config->redis.address);
		return;
	}
	if (gw_flags_cache_read(path, fs->config, fs->remote, wall_ms(), why, sizeof(why)) < 0) {
		gw_log_warn("flags: redis %s could not be read at start and %s: starting with "
		            "the YAML defaults",
		            fs->config->redis.address, why);
		return;
	}
	gw_log_info("flags: redis %s could not be read at start: starting with the last known "
	            "values from %s",
	            fs->config->redis.address, path);
	/* What the file holds is known now: no rewrite until Redis says otherwise. */
	fs->written = gw_flags_layer_copy(fs->remote);
}

/*
 * The first read decides what workers start with, so the start waits for
 * it, but not for long: connect_timeout + 2 x command_timeout (AUTH, then
 * the read), after which a Redis that did not answer counts as down.
 */
void gw_flags_sync_start(struct gw_flags_sync *fs)
{
	const struct gw_redis_conf *rc = &fs->config->redis;

	if (fs->redis) {
		fs->starting = true;
		arm(fs->start_ev, rc->connect_timeout_ms + 2 * rc->command_timeout_ms + 50);
		while (!fs->start_done)
			event_base_loop(fs->base, EVLOOP_ONCE);
		evtimer_del(fs->start_ev);
		fs->starting = false;
		if (!fs->start_ok)
			load_cache(fs);
		arm(fs->poll_ev, rc->poll_interval_ms);
	}
	publish(fs);
}

void gw_flags_sync_attach(struct gw_flags_sync *fs, struct event_base *worker_base,
                          struct gw_flags_snap **slot, struct gw_flags_snap **prev_slot)
{
	struct mailbox *mb = gw_calloc(1, sizeof(*mb));

	mb->prev_slot = prev_slot;

	mb->ev = event_new(worker_base, -1, 0, on_mailbox, mb);
	atomic_init(&mb->next, NULL);
	mb->slot = slot;
	*slot = gw_flags_snap_ref(fs->current);
	fs->mailboxes = gw_realloc(fs->mailboxes, (fs->nmailboxes + 1) * sizeof(*fs->mailboxes));
	fs->mailboxes[fs->nmailboxes++] = mb;
}

const struct gw_flags_snap *gw_flags_sync_current(const struct gw_flags_sync *fs)
{
	return fs->current;
}

void gw_flags_sync_override_flag(struct gw_flags_sync *fs, size_t index,
                                 const struct gw_flag_value *v)
{
	if (index >= fs->override->nflags)
		return;
	fs->override->has_flag[index] = v != NULL;
	if (v)
		fs->override->flags[index] = *v;
	publish(fs);
}

void gw_flags_sync_override_shed(struct gw_flags_sync *fs, int level)
{
	fs->override->has_shed_level = level != GW_SHED_LEVEL_AUTO;
	fs->override->shed_level = level;
	fs->override->shed_expires_ms = 0;
	publish(fs);
}

void gw_flags_sync_override_breaker(struct gw_flags_sync *fs, size_t route, enum gw_breaker_force f)
{
	if (route >= fs->override->nroutes)
		return;
	fs->override->has_breaker[route] = f != GW_BREAKER_FORCE_AUTO;
	fs->override->breakers[route] = f;
	fs->override->breaker_expires_ms[route] = 0;
	publish(fs);
}

bool gw_flags_sync_redis_connected(const struct gw_flags_sync *fs)
{
	return fs->redis && gw_redis_ready(fs->redis);
}

/*
 * A reload: every value is carried to the new config by name (a flag, a
 * profile or a route the new file lacks is dropped), the breakers of the
 * new pipeline are what they were (the breaker module carried them), and
 * Redis is read again for the routes the old config did not have.
 */
void gw_flags_sync_reconfigure(struct gw_flags_sync *fs, struct gw_config *config,
                               struct gw_pipeline *pipeline)
{
	struct gw_config *old = fs->config;
	struct gw_flags_layer *l;
	enum gw_breaker_force *applied =
	    gw_calloc(config->nroutes ? config->nroutes : 1, sizeof(*applied));

	for (size_t r = 0; r < config->nroutes; r++)
		for (size_t j = 0; j < old->nroutes; j++)
			if (strcmp(old->routes[j].name, config->routes[r].name) == 0)
				applied[r] = fs->applied[j];
	free(fs->applied);
	fs->applied = applied;
	l = gw_flags_layer_rekey(fs->remote, old, config);
	gw_flags_layer_free(fs->remote);
	fs->remote = l;
	l = gw_flags_layer_rekey(fs->override, old, config);
	gw_flags_layer_free(fs->override);
	fs->override = l;
	gw_flags_layer_free(fs->written);
	fs->written = NULL;
	gw_flags_complaints_free(&fs->complaints);
	gw_flags_complaints_init(&fs->complaints, config);
	fs->config = gw_config_ref(config);
	fs->pipeline = pipeline;
	if (fs->redis)
		make_ops_keys(fs);
	gw_config_unref(old);
	publish(fs); /* a snapshot for the new config, even when no value changed */
	if (fs->redis)
		reread_start(fs);
}

void gw_flags_sync_free(struct gw_flags_sync *fs)
{
	if (!fs)
		return;
	fs->closing = true;
	gw_redis_free(fs->redis); /* a read in flight fails and is freed */
	if (fs->poll_ev)
		event_free(fs->poll_ev);
	if (fs->start_ev)
		event_free(fs->start_ev);
	event_free(fs->expire_ev);
	for (size_t i = 0; i < fs->nmailboxes; i++) {
		struct mailbox *mb = fs->mailboxes[i];

		gw_flags_snap_unref(atomic_exchange(&mb->next, NULL));
		gw_flags_snap_unref(*mb->slot);
		*mb->slot = NULL;
		gw_flags_snap_unref(*mb->prev_slot);
		*mb->prev_slot = NULL;
		event_free(mb->ev);
		free(mb);
	}
	free(fs->mailboxes);
	gw_flags_snap_unref(fs->current);
	gw_flags_layer_free(fs->remote);
	gw_flags_layer_free(fs->override);
	gw_flags_layer_free(fs->written);
	gw_flags_complaints_free(&fs->complaints);
	free(fs->applied);
	free(fs->flags_key);
	for (size_t i = 0; i < fs->nops; i++)
		free(fs->ops_keys[i]);
	free(fs->ops_keys);
	gw_config_unref(fs->config);
	free(fs);
}
