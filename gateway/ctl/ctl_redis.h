/*
 * gatewayctl's Redis connection: synchronous hiredis with the file's
 * connect and command timeouts, the password from the environment, and
 * every failure turned into one line on stderr that names Redis's address
 * and what went wrong ("gatewayctl: cannot reach Redis at 127.0.0.1:6379:
 * Connection refused").
 *
 * Ownership: a struct ctl_redis borrows its conf (which must outlive it) and
 * owns its hiredis context, released by ctl_redis_close. Replies returned
 * are the caller's, released with freeReplyObject.
 */
#ifndef GW_CTL_CTL_REDIS_H
#define GW_CTL_CTL_REDIS_H

#include <hiredis/hiredis.h>

#include "ctl_conf.h"

struct ctl_redis {
	redisContext *c;
	const struct ctl_redis_conf *conf;
};

/* Connects and authenticates: 0, or -1 after printing why. */
int ctl_redis_open(struct ctl_redis *r, const struct ctl_redis_conf *conf);
void ctl_redis_close(struct ctl_redis *r);

/* One command (argv[0..argc) are NUL-terminated): its reply, or NULL after
 * printing why (no answer in time, connection lost, an error reply). */
redisReply *ctl_redis_command(struct ctl_redis *r, int argc, const char **argv);

/*
 * A write and its announcement as one transaction: MULTI, the command,
 * PUBLISH PREFIXevents message, EXEC, so that either both happen or
 * neither does. Returns EXEC's reply (an array: the command's reply, then
 * the number of subscribers that got the message), or NULL after printing
 * why.
 */
redisReply *ctl_redis_write(struct ctl_redis *r, int argc, const char **argv, const char *message);

/* A new string: the prefix followed by the parts, e.g. "gw:" "ops:breaker:" "checkout". */
char *ctl_redis_key(const struct ctl_redis_conf *conf, const char *part, const char *more);

#endif
