/*
 * A Redis client for the main thread's event loop: hiredis 0.14's async API
 * with the libevent adapter, plus what hiredis lacks (NOTES-LIBS.md):
 *
 *   - a connect timeout and a timeout per command: a command that gets no
 *     answer in time drops the connection, and every command pending on it
 *     fails at once (a paused or black-holed Redis never hangs anything);
 *   - reconnection from a timer, with capped exponential backoff and
 *     jitter, and AUTH before anything else on every new connection;
 *   - a second connection for pub/sub (SUBSCRIBE channel), subscribed again
 *     after every reconnect; the owner is told, so it can re-read what it
 *     may have missed;
 *   - addresses are IP literals or unix socket paths: hiredis resolves host
 *     names with a blocking getaddrinfo, so config load refuses them.
 *
 * Redis is never on the request path: only the main thread uses this.
 *
 * Callbacks: a command's callback runs exactly once, with the reply, or
 * with reply NULL and err one of the gw_redis_err_* symbols (compare by
 * pointer). The handler's events run from a timer or from a reply, never
 * from hiredis's connect or disconnect callbacks, so they may issue
 * commands. No callback may call gw_redis_free.
 *
 * Log lines: the outage once ("redis 127.0.0.1:6379 unreachable: ...;
 * serving last known values") and the recovery once; every further failed
 * attempt at debug level.
 *
 * Ownership: gw_redis_new returns a client owned by the caller, freed with
 * gw_redis_free (outside any callback), which fails every pending command
 * with gw_redis_err_closed. The options' strings are copied.
 */
#ifndef GW_REDIS_REDIS_CLIENT_H
#define GW_REDIS_REDIS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct redisReply;
struct gw_redis;

/* Why a command failed (reply NULL), or gw_redis_err_reply (reply given). */
extern const char gw_redis_err_timeout[];      /* no answer within command_timeout */
extern const char gw_redis_err_disconnected[]; /* the connection dropped first */
extern const char gw_redis_err_closed[];       /* gw_redis_free */
extern const char gw_redis_err_reply[];        /* Redis answered an error: reply->str */

struct gw_redis_options {
	const char *address; /* for log lines: "127.0.0.1:6379" or the socket path */
	const char *host;    /* IP literal; NULL with unix_path */
	unsigned port;
	const char *unix_path;       /* NULL for TCP */
	const char *password;        /* NULL: no AUTH */
	uint64_t connect_timeout_ms; /* > 0 */
	uint64_t command_timeout_ms; /* > 0; AUTH and the SUBSCRIBE acknowledgement too */
	const char *channel;         /* NULL: no pub/sub connection */
	uint64_t backoff_base_ms;    /* 0: GW_REDIS_BACKOFF_BASE_MS */
	uint64_t backoff_max_ms;     /* 0: GW_REDIS_BACKOFF_MAX_MS */
};

#define GW_REDIS_BACKOFF_BASE_MS 100
#define GW_REDIS_BACKOFF_MAX_MS  1000

/* What the owner hears about; every member may be NULL. */
struct gw_redis_handler {
	/* The command connection is ready (AUTH done): at start and after each reconnect. */
	void (*ready)(void *arg);
	/* The command connection failed or dropped (also a failed first attempt). */
	void (*lost)(void *arg, const char *why);
	/* SUBSCRIBE acknowledged: messages sent while unsubscribed were lost. */
	void (*subscribed)(void *arg);
	/* A message on the channel. */
	void (*message)(void *arg, const char *data, size_t len);
};

/* Starts connecting at once (from a zero timer on base). */
struct gw_redis *gw_redis_new(struct event_base *base, const struct gw_redis_options *options,
                              const struct gw_redis_handler *handler, void *arg);
void gw_redis_free(struct gw_redis *r);

/*
 * Sends a command (argv, lengths). 0: cb will run exactly once (reply or
 * error); reply is hiredis's, valid during cb only. -1: not connected (or
 * hiredis refused it); cb will not run.
 */
int gw_redis_command(struct gw_redis *r,
                     void (*cb)(const struct redisReply *reply, const char *err, void *arg),
                     void *arg, int argc, const char **argv, const size_t *argv_len);

/* The command connection is ready for commands. */
bool gw_redis_ready(const struct gw_redis *r);

/*
 * The reconnect delay after failures failed attempts in a row: base x 2^(n-1)
 * capped at max, then a random point in its upper half (rnd: any 64 random
 * bits). Exposed for tests.
 */
uint64_t gw_redis_backoff_ms(unsigned failures, uint64_t base_ms, uint64_t max_ms, uint64_t rnd);

#endif
