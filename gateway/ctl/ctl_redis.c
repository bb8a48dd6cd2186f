/*
 * gatewayctl's Redis connection (ctl_redis.h).
 *
 * hiredis 0.14.1's blocking API: redisConnectWithTimeout bounds the
 * connect (a non-blocking connect polled for the timeout), and
 * redisSetTimeout puts SO_RCVTIMEO/SO_SNDTIMEO on the socket, so a Redis
 * that accepts but never answers fails the command after command_timeout
 * with EAGAIN. Those errno strings are translated into what an operator
 * needs to read: which timeout expired, and its value.
 */
#include "ctl_redis.h"
#include "../config/conf_read.h"
#include "../util/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

/* After a write whose answer never came: it may have been applied. */
#define UNKNOWN_OUTCOME "; the change may or may not have been applied"

static struct timeval ms_to_timeval(uint64_t ms)
{
	struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
	                     .tv_usec = (suseconds_t)(ms % 1000) * 1000};

	return tv;
}

static bool errstr_is(const redisContext *c, int err)
{
	return strcmp(c->errstr, strerror(err)) == 0;
}

/* hiredis's error on a command: a timeout, or the connection gone; then "after". */
static void print_io_error(const struct ctl_redis *r, const char *after)
{
	char d[32];

	if (errstr_is(r->c, EAGAIN) || errstr_is(r->c, EWOULDBLOCK) || errstr_is(r->c, ETIMEDOUT))
		fprintf(stderr,
		        "gatewayctl: Redis at %s did not answer within %s "
		        "(redis.command_timeout)%s\n",
		        r->conf->address,
		        gw_conf_format_duration(r->conf->command_timeout_ms, d, sizeof(d)), after);
	else
		fprintf(stderr, "gatewayctl: lost the connection to Redis at %s: %s%s\n",
		        r->conf->address, r->c->errstr[0] ? r->c->errstr : "connection closed",
		        after);
}

static void print_error_reply(const struct ctl_redis *r, const redisReply *reply)
{
	const char *hint = "";

	if (strncmp(reply->str, "NOAUTH", 6) == 0)
		hint = r->conf->password_env
		           ? " (is the password variable set? see redis.password_env)"
		           : " (the file has no redis.password_env)";
	fprintf(stderr, "gatewayctl: Redis at %s answered: %s%s\n", r->conf->address, reply->str,
	        hint);
}

static int authenticate(struct ctl_redis *r)
{
	const char *password = r->conf->password_env ? getenv(r->conf->password_env) : NULL;
	const char *argv[2] = {"AUTH", password};
	redisReply *reply;

	if (!password || !*password)
		return 0;
	reply = redisCommandArgv(r->c, 2, argv, NULL);
	if (!reply) {
		print_io_error(r, "");
		return -1;
	}
	if (reply->type == REDIS_REPLY_ERROR) {
		fprintf(stderr, "gatewayctl: Redis at %s refused the password from $%s: %s\n",
		        r->conf->address, r->conf->password_env, reply->str);
		freeReplyObject(reply);
		return -1;
	}
	freeReplyObject(reply);
	return 0;
}

int ctl_redis_open(struct ctl_redis *r, const struct ctl_redis_conf *conf)
{
	struct timeval connect_tv = ms_to_timeval(conf->connect_timeout_ms);
	char d[32];

	r->conf = conf;
	if (conf->unix_path)
		r->c = redisConnectUnixWithTimeout(conf->unix_path, connect_tv);
	else
		r->c = redisConnectWithTimeout(conf->host, conf->port, connect_tv);
	if (!r->c) {
		fprintf(stderr, "gatewayctl: cannot reach Redis at %s: out of memory\n",
		        conf->address);
		return -1;
	}
	if (r->c->err) {
		if (errstr_is(r->c, ETIMEDOUT) || errstr_is(r->c, EINPROGRESS))
			fprintf(stderr,
			        "gatewayctl: cannot reach Redis at %s: no answer within %s "
			        "(redis.connect_timeout)\n",
			        conf->address,
			        gw_conf_format_duration(conf->connect_timeout_ms, d, sizeof(d)));
		else
			fprintf(stderr, "gatewayctl: cannot reach Redis at %s: %s\n", conf->address,
			        r->c->errstr);
		ctl_redis_close(r);
		return -1;
	}
	if (redisSetTimeout(r->c, ms_to_timeval(conf->command_timeout_ms)) != REDIS_OK) {
		fprintf(stderr, "gatewayctl: cannot set the command timeout on Redis at %s: %s\n",
		        conf->address, r->c->errstr);
		ctl_redis_close(r);
		return -1;
	}
	if (authenticate(r) < 0) {
		ctl_redis_close(r);
		return -1;
	}
	return 0;
}

void ctl_redis_close(struct ctl_redis *r)
{
	if (r->c)
		redisFree(r->c);
	r->c = NULL;
}

redisReply *ctl_redis_command(struct ctl_redis *r, int argc, const char **argv)
{
	redisReply *reply = redisCommandArgv(r->c, argc, argv, NULL);

	if (!reply) {
		print_io_error(r, "");
		return NULL;
	}
	if (reply->type == REDIS_REPLY_ERROR) {
		print_error_reply(r, reply);
		freeReplyObject(reply);
		return NULL;
	}
	return reply;
}

/* Reads the n replies of a pipeline; the last one is kept in *last. */
static int read_replies(struct ctl_redis *r, int n, redisReply **last)
{
	*last = NULL;
	for (int i = 0; i < n; i++) {
		void *reply = NULL;

		if (redisGetReply(r->c, &reply) != REDIS_OK) {
			print_io_error(r, UNKNOWN_OUTCOME);
			return -1;
		}
		if (((redisReply *)reply)->type == REDIS_REPLY_ERROR) {
			print_error_reply(r, reply);
			freeReplyObject(reply);
			return -1;
		}
		if (i == n - 1)
			*last = reply;
		else
			freeReplyObject(reply);
	}
	return 0;
}

redisReply *ctl_redis_write(struct ctl_redis *r, int argc, const char **argv, const char *message)
{
	char *channel = ctl_redis_key(r->conf, "events", NULL);
	const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
	const char *publish[] = {"PUBLISH", channel, message};
	redisReply *reply = NULL;

	redisAppendCommandArgv(r->c, 1, multi, NULL);
	redisAppendCommandArgv(r->c, argc, argv, NULL);
	redisAppendCommandArgv(r->c, 3, publish, NULL);
	redisAppendCommandArgv(r->c, 1, exec, NULL);
	free(channel);
	if (read_replies(r, 4, &reply) < 0)
		return NULL;
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
		fprintf(stderr,
		        "gatewayctl: Redis at %s did not apply the change (the "
		        "transaction was aborted)\n",
		        r->conf->address);
		freeReplyObject(reply);
		return NULL;
	}
	if (reply->element[0]->type == REDIS_REPLY_ERROR) {
		print_error_reply(r, reply->element[0]);
		freeReplyObject(reply);
		return NULL;
	}
	return reply;
}

char *ctl_redis_key(const struct ctl_redis_conf *conf, const char *part, const char *more)
{
	size_t lp = strlen(conf->prefix), la = strlen(part), lm = more ? strlen(more) : 0;
	char *key = gw_malloc(lp + la + lm + 1);

	memcpy(key, conf->prefix, lp);
	memcpy(key + lp, part, la);
	if (more)
		memcpy(key + lp + la, more, lm);
	key[lp + la + lm] = '\0';
	return key;
}
