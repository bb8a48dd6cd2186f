/*
 * The Redis client (redis_client.h).
 *
 * Two connections, each a small state machine driven by one timer:
 *
 *   WAITING --timer--> CONNECTING --connect cb ok--> HANDSHAKE --AUTH/PING ok-->
 *     READY (command connection)
 *     SUBSCRIBING --SUBSCRIBE ack--> READY (pub/sub connection)
 *
 * and from any state but WAITING, on a failure, back to WAITING with the
 * timer armed for the next attempt. The timer means, by state: the next
 * attempt (WAITING), the connect timeout (CONNECTING), the step after the
 * connect callback (HANDSHAKE: hiredis forbids commands from inside its
 * connect callback), the acknowledgement timeout (SUBSCRIBING), and a
 * teardown decided inside a hiredis callback (fail_pending: hiredis forbids
 * freeing a context from inside its own callbacks).
 *
 * hiredis rules this file keeps (NOTES-LIBS.md, checked with probes):
 *   - a failed connect calls the connect callback with REDIS_ERR, fails the
 *     pending callbacks and frees the context itself: no disconnect
 *     callback, and the context must be forgotten there;
 *   - a connection hiredis drops (EOF, reset) fails every pending callback
 *     with a NULL reply, calls the disconnect callback, and frees itself;
 *   - redisAsyncFree (ours, from a timer) fails every pending callback with
 *     a NULL reply, the subscription's included, then calls the disconnect
 *     callback (state CLOSING tells it apart) and frees;
 *   - so a command's privdata (struct cmd) lives until its callback, which
 *     always comes, and is freed there.
 */
#include "redis_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "../util/alloc.h"
#include "../util/log.h"

/* Room for a failure's reason: hiredis's errstr is at most 128 bytes, a
 * refusal quotes Redis's error text. */
#define WHY_SIZE 320

const char gw_redis_err_timeout[] = "command timed out";
const char gw_redis_err_disconnected[] = "connection lost";
const char gw_redis_err_closed[] = "client closed";
const char gw_redis_err_reply[] = "error reply";

enum conn_state {
	CONN_WAITING = 0, /* no context; the timer makes the next attempt */
	CONN_CONNECTING,  /* connect in progress; the timer is the connect timeout */
	CONN_HANDSHAKE,   /* connected; the timer (0) sends AUTH or PING, then it is in flight */
	CONN_SUBSCRIBING, /* SUBSCRIBE sent; the timer is the acknowledgement timeout */
	CONN_READY,       /* commands accepted (command), subscribed (pub/sub) */
	CONN_CLOSING,     /* inside our own redisAsyncFree */
};

struct conn;

/*
 * One command in flight: hiredis's privdata. Owned by the connection's
 * pending list from gw_redis_command until its hiredis callback, which
 * frees it.
 */
struct cmd {
	struct conn *conn;
	void (*cb)(const struct redisReply *reply, const char *err, void *arg);
	void *arg;
	struct event timer; /* command_timeout */
	bool timed_out;
	TAILQ_ENTRY(cmd) link;
};

TAILQ_HEAD(cmd_list, cmd);

/* One connection; embedded in the client, which owns its timer and context. */
struct conn {
	struct gw_redis *r;
	const char *name; /* "command" or "pub/sub", for log lines */
	bool pubsub;
	redisAsyncContext *ac; /* NULL while WAITING; hiredis may free it (see above) */
	enum conn_state state;
	struct event *timer;
	bool fail_pending; /* the timer tears the connection down, for why */
	bool dying;        /* hiredis is failing the pending callbacks: send nothing */
	bool was_ready;    /* reached READY since the last failure */
	unsigned failures; /* failed attempts in a row: the backoff exponent */
	struct cmd_list pending;
	char why[WHY_SIZE];
};

struct gw_redis {
	struct event_base *base;
	char *address, *host, *unix_path, *password, *channel;
	unsigned port;
	uint64_t connect_timeout_ms, command_timeout_ms, backoff_base_ms, backoff_max_ms;
	struct gw_redis_handler h;
	void *arg;
	struct conn cmd, sub;
	/* Handler events decided inside hiredis callbacks run from here. */
	struct event *notify_ev;
	bool notify_ready, notify_lost, notify_subscribed;
	char lost_why[WHY_SIZE];
	bool outage;     /* the outage is logged; its end will be */
	bool ever_ready; /* the command connection was ready once */
	bool freeing;
	uint64_t rng;
};

static void conn_fail_later(struct conn *c, const char *why);

static void arm(struct event *ev, uint64_t ms)
{
	struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
	                     .tv_usec = (suseconds_t)(ms % 1000) * 1000};

	evtimer_add(ev, &tv);
}

static uint64_t next_random(struct gw_redis *r)
{
	/* xorshift64* */
	r->rng ^= r->rng >> 12;
	r->rng ^= r->rng << 25;
	r->rng ^= r->rng >> 27;
	return r->rng * 0x2545F4914F6CDD1DULL;
}

/*
 * Reconnect backoff: capped exponential with jitter. The n-th failed
 * attempt in a row waits base x 2^(n-1), at most max, then a random point
 * in the upper half of that (so never less than half of it): a fleet of
 * gateways that lost Redis together does not come back in lockstep, and a
 * Redis that is back is found again within max (1 s by default, so that
 * changes made after a recovery are seen within about a second). At 1000
 * gateways that is at most ~1000 connection attempts a second on a Redis
 * that is down, which it shrugs off once up. The count starts afresh once a
 * connection reaches READY.
 */
uint64_t gw_redis_backoff_ms(unsigned failures, uint64_t base_ms, uint64_t max_ms, uint64_t rnd)
{
	uint64_t d = base_ms, half;

	for (unsigned i = 1; i < failures && d < max_ms; i++)
		d *= 2;
	if (d > max_ms)
		d = max_ms;
	half = d / 2;
	return d - half + (half ? rnd % (half + 1) : 0);
}

static void notify(struct gw_redis *r)
{
	event_active(r->notify_ev, EV_TIMEOUT, 1);
}

/*
 * The context is gone (freed by hiredis or by us): wait, then try again.
 * Logs the outage of the command connection once, and a lost pub/sub
 * connection once per loss while Redis is otherwise fine.
 */
static void conn_lost(struct conn *c, const char *why)
{
	struct gw_redis *r = c->r;
	uint64_t delay;

	c->ac = NULL;
	c->state = CONN_WAITING;
	c->fail_pending = false;
	c->dying = false;
	c->failures++;
	delay =
	    gw_redis_backoff_ms(c->failures, r->backoff_base_ms, r->backoff_max_ms, next_random(r));
	evtimer_del(c->timer);
	arm(c->timer, delay);
	if (r->freeing)
		return;
	if (!c->pubsub) {
		if (!r->outage)
			gw_log_warn("redis %s unreachable: %s; serving last known values",
			            r->address, why);
		else
			gw_log_debug("redis %s: %s connection: %s; next attempt in %llums",
			             r->address, c->name, why, (unsigned long long)delay);
		r->outage = true;
		snprintf(r->lost_why, sizeof(r->lost_why), "%s", why);
		r->notify_lost = true;
		notify(r);
		/* A dead command connection says the pub/sub one may be dead too
		 * (a black-holed host answers nothing on either): start it afresh. */
		conn_fail_later(&r->sub, "the command connection failed");
	} else if (c->was_ready && !r->outage) {
		gw_log_warn("redis %s: pub/sub connection lost: %s; subscribing again", r->address,
		            why);
	} else {
		gw_log_debug("redis %s: %s connection: %s; next attempt in %llums", r->address,
		             c->name, why, (unsigned long long)delay);
	}
	c->was_ready = false;
}

/* Frees the context now: never from inside one of its hiredis callbacks. */
static void conn_teardown(struct conn *c, const char *why)
{
	redisAsyncContext *ac = c->ac;
	char text[WHY_SIZE];

	snprintf(text, sizeof(text), "%s", why); /* why may be c->why */
	c->state = CONN_CLOSING;
	evtimer_del(c->timer);
	if (ac)
		redisAsyncFree(ac); /* pending callbacks fail, then on_disconnect (ignored) */
	conn_lost(c, text);
}

/* A teardown decided inside a hiredis callback: done from the timer. */
static void conn_fail_later(struct conn *c, const char *why)
{
	if (c->state == CONN_WAITING || c->state == CONN_CLOSING || c->fail_pending || !c->timer)
		return;
	c->fail_pending = true;
	snprintf(c->why, sizeof(c->why), "%s", why);
	evtimer_del(c->timer);
	arm(c->timer, 0);
}

/* ---- commands ------------------------------------------------------------ */

static void on_reply(redisAsyncContext *ac, void *reply_ptr, void *privdata)
{
	struct cmd *cmd = privdata;
	struct conn *c = cmd->conn;
	redisReply *reply = reply_ptr;
	const char *err = NULL;

	(void)ac;
	evtimer_del(&cmd->timer);
	TAILQ_REMOVE(&c->pending, cmd, link);
	if (!reply) {
		c->dying = true;
		err = c->r->freeing    ? gw_redis_err_closed
		      : cmd->timed_out ? gw_redis_err_timeout
		                       : gw_redis_err_disconnected;
	} else if (reply->type == REDIS_REPLY_ERROR) {
		err = gw_redis_err_reply;
	}
	if (cmd->cb)
		cmd->cb(reply, err, cmd->arg);
	free(cmd);
}

/* A command that got no answer in time: the connection is useless. */
static void on_command_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct cmd *cmd = arg;
	struct conn *c = cmd->conn;
	char why[96];

	cmd->timed_out = true;
	snprintf(why, sizeof(why), "no answer within %llums",
	         (unsigned long long)c->r->command_timeout_ms);
	conn_teardown(c, why); /* frees cmd through on_reply */
}

static int conn_command(struct conn *c,
                        void (*cb)(const struct redisReply *reply, const char *err, void *arg),
                        void *arg, int argc, const char **argv, const size_t *argv_len)
{
	struct cmd *cmd;

	if (!c->ac || c->dying || c->fail_pending || c->state == CONN_CLOSING)
		return -1;
	cmd = gw_calloc(1, sizeof(*cmd));
	cmd->conn = c;
	cmd->cb = cb;
	cmd->arg = arg;
	evtimer_assign(&cmd->timer, c->r->base, on_command_timeout, cmd);
	if (redisAsyncCommandArgv(c->ac, on_reply, cmd, argc, argv, argv_len) != REDIS_OK) {
		free(cmd);
		return -1;
	}
	TAILQ_INSERT_TAIL(&c->pending, cmd, link);
	arm(&cmd->timer, c->r->command_timeout_ms);
	return 0;
}

int gw_redis_command(struct gw_redis *r,
                     void (*cb)(const struct redisReply *reply, const char *err, void *arg),
                     void *arg, int argc, const char **argv, const size_t *argv_len)
{
	if (r->cmd.state != CONN_READY)
		return -1;
	return conn_command(&r->cmd, cb, arg, argc, argv, argv_len);
}

bool gw_redis_ready(const struct gw_redis *r)
{
	return r->cmd.state == CONN_READY && !r->cmd.dying && !r->cmd.fail_pending;
}

/* ---- connecting ------------------------------------------------------------ */

static void on_sub_reply(redisAsyncContext *ac, void *reply_ptr, void *privdata)
{
	struct conn *c = privdata;
	struct gw_redis *r = c->r;
	redisReply *reply = reply_ptr;
	const char *kind;
	char why[WHY_SIZE];

	(void)ac;
	if (!reply)
		return; /* the connection is going away: conn_lost follows */
	if (reply->type == REDIS_REPLY_ERROR) {
		snprintf(why, sizeof(why), "SUBSCRIBE refused: %s", reply->str);
		conn_fail_later(c, why);
		return;
	}
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
	    reply->element[0]->type != REDIS_REPLY_STRING)
		return;
	kind = reply->element[0]->str;
	if (strcasecmp(kind, "subscribe") == 0 && c->state == CONN_SUBSCRIBING) {
		evtimer_del(c->timer);
		c->state = CONN_READY;
		c->was_ready = true;
		c->failures = 0;
		gw_log_debug("redis %s: subscribed to %s", r->address, r->channel);
		r->notify_subscribed = true;
		notify(r);
	} else if (strcasecmp(kind, "message") == 0 &&
	           reply->element[2]->type == REDIS_REPLY_STRING && r->h.message) {
		r->h.message(r->arg, reply->element[2]->str, reply->element[2]->len);
	}
}

/* AUTH done (or not needed). */
static void conn_authenticated(struct conn *c)
{
	struct gw_redis *r = c->r;

	if (c->pubsub) {
		const char *argv[] = {"SUBSCRIBE", r->channel};

		if (redisAsyncCommandArgv(c->ac, on_sub_reply, c, 2, argv, NULL) != REDIS_OK) {
			conn_fail_later(c, "cannot send SUBSCRIBE");
			return;
		}
		c->state = CONN_SUBSCRIBING;
		arm(c->timer, r->command_timeout_ms);
		return;
	}
	c->state = CONN_READY;
	c->was_ready = true;
	c->failures = 0;
	if (r->outage)
		gw_log_info("redis %s reachable again", r->address);
	else if (!r->ever_ready)
		gw_log_info("redis %s connected", r->address);
	r->outage = false;
	r->ever_ready = true;
	r->notify_ready = true;
	notify(r);
}

static void on_auth(const struct redisReply *reply, const char *err, void *arg)
{
	struct conn *c = arg;
	char why[WHY_SIZE];

	if (err == gw_redis_err_reply) {
		snprintf(why, sizeof(why), "%s refused: %s", c->r->password ? "AUTH" : "PING",
		         reply->str);
		conn_fail_later(c, why);
	} else if (!err) {
		conn_authenticated(c);
	} /* else the connection is going away: conn_lost follows */
}

/*
 * AUTH when there is a password. Without one, the command connection still
 * sends PING before it counts as ready: a stopped (SIGSTOP) Redis lets the
 * kernel complete the TCP handshake, and only an answer proves it is back.
 * The pub/sub connection has the SUBSCRIBE acknowledgement for that.
 */
static void conn_handshake(struct conn *c)
{
	struct gw_redis *r = c->r;
	const char *auth[] = {"AUTH", r->password}, *ping[] = {"PING"};

	if (r->password) {
		if (conn_command(c, on_auth, c, 2, auth, NULL) < 0)
			conn_teardown(c, "cannot send AUTH");
	} else if (!c->pubsub) {
		if (conn_command(c, on_auth, c, 1, ping, NULL) < 0)
			conn_teardown(c, "cannot send PING");
	} else {
		conn_authenticated(c);
	}
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct conn *c = ac->data;

	evtimer_del(c->timer);
	if (status != REDIS_OK) {
		conn_lost(c, ac->errstr); /* hiredis frees the context after this */
		return;
	}
	c->state = CONN_HANDSHAKE;
	arm(c->timer, 0); /* no command from inside the connect callback */
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct conn *c = ac->data;

	(void)status;
	if (c->state == CONN_CLOSING)
		return; /* our own redisAsyncFree: conn_teardown goes on */
	conn_lost(c, ac->err ? ac->errstr : "connection closed by the server");
}

static void conn_connect(struct conn *c)
{
	struct gw_redis *r = c->r;
	redisAsyncContext *ac;
	char why[WHY_SIZE];

	ac = r->unix_path ? redisAsyncConnectUnix(r->unix_path)
	                  : redisAsyncConnect(r->host, (int)r->port);
	if (!ac) {
		gw_log_error("redis: out of memory");
		abort();
	}
	if (ac->err) {
		snprintf(why, sizeof(why), "%s", ac->errstr);
		redisAsyncFree(ac);
		conn_lost(c, why);
		return;
	}
	ac->data = c;
	redisLibeventAttach(ac, r->base);
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	c->ac = ac;
	c->state = CONN_CONNECTING;
	arm(c->timer, r->connect_timeout_ms);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	char why[96];

	if (c->fail_pending) {
		c->fail_pending = false;
		conn_teardown(c, c->why);
		return;
	}
	switch (c->state) {
	case CONN_WAITING:
		conn_connect(c);
		break;
	case CONN_CONNECTING:
		snprintf(why, sizeof(why), "connect timed out after %llums",
		         (unsigned long long)c->r->connect_timeout_ms);
		conn_teardown(c, why);
		break;
	case CONN_HANDSHAKE:
		conn_handshake(c);
		break;
	case CONN_SUBSCRIBING:
		snprintf(why, sizeof(why), "no answer to SUBSCRIBE within %llums",
		         (unsigned long long)c->r->command_timeout_ms);
		conn_teardown(c, why);
		break;
	case CONN_READY:
	case CONN_CLOSING:
		break;
	}
}

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
	struct gw_redis *r = arg;

	if (r->notify_lost) {
		r->notify_lost = false;
		if (r->h.lost)
			r->h.lost(r->arg, r->lost_why);
	}
	if (r->notify_ready) {
		r->notify_ready = false;
		if (r->h.ready && gw_redis_ready(r))
			r->h.ready(r->arg);
	}
	if (r->notify_subscribed) {
		r->notify_subscribed = false;
		if (r->h.subscribed && r->sub.state == CONN_READY)
			r->h.subscribed(r->arg);
	}
}

static void conn_init(struct gw_redis *r, struct conn *c, const char *name, bool pubsub)
{
	c->r = r;
	c->name = name;
	c->pubsub = pubsub;
	c->state = CONN_WAITING;
	TAILQ_INIT(&c->pending);
	c->timer = evtimer_new(r->base, on_timer, c);
	arm(c->timer, 0);
}

static char *dup_or_null(const char *s)
{
	return s ? gw_strdup(s) : NULL;
}

struct gw_redis *gw_redis_new(struct event_base *base, const struct gw_redis_options *o,
                              const struct gw_redis_handler *handler, void *arg)
{
	struct gw_redis *r = gw_calloc(1, sizeof(*r));
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	r->base = base;
	r->address = gw_strdup(o->address);
	r->host = dup_or_null(o->host);
	r->unix_path = dup_or_null(o->unix_path);
	r->password = dup_or_null(o->password);
	r->channel = dup_or_null(o->channel);
	r->port = o->port;
	r->connect_timeout_ms = o->connect_timeout_ms;
	r->command_timeout_ms = o->command_timeout_ms;
	r->backoff_base_ms = o->backoff_base_ms ? o->backoff_base_ms : GW_REDIS_BACKOFF_BASE_MS;
	r->backoff_max_ms = o->backoff_max_ms ? o->backoff_max_ms : GW_REDIS_BACKOFF_MAX_MS;
	if (handler)
		r->h = *handler;
	r->arg = arg;
	r->rng = ((uint64_t)now.tv_nsec << 20) ^ (uint64_t)now.tv_sec ^ ((uint64_t)getpid() << 40) ^
	         (uint64_t)(uintptr_t)r;
	if (!r->rng)
		r->rng = 0x9E3779B97F4A7C15ULL;
	r->notify_ev = event_new(base, -1, 0, on_notify, r);
	conn_init(r, &r->cmd, "command", false);
	if (r->channel)
		conn_init(r, &r->sub, "pub/sub", true);
	return r;
}

static void conn_close(struct conn *c)
{
	if (!c->timer)
		return;
	evtimer_del(c->timer);
	if (c->ac) {
		c->state = CONN_CLOSING;
		redisAsyncFree(c->ac); /* pending callbacks get gw_redis_err_closed */
		c->ac = NULL;
	}
	event_free(c->timer);
	c->timer = NULL;
}

void gw_redis_free(struct gw_redis *r)
{
	if (!r)
		return;
	r->freeing = true;
	conn_close(&r->cmd);
	conn_close(&r->sub);
	event_free(r->notify_ev);
	free(r->address);
	free(r->host);
	free(r->unix_path);
	free(r->password);
	free(r->channel);
	free(r);
}
