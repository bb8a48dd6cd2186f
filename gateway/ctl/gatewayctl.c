/*
 * gatewayctl: the operator's command line. It steers the whole fleet
 * through Redis (feature flags in PREFIXflags, forced overload level,
 * breakers and profile in PREFIXops:*, each change announced on
 * PREFIXevents) and one gateway through its admin API (status, reload).
 *
 * Every command runs in the same three steps, so that a mistake never
 * leaves half a change behind:
 *
 *   1. the command line: command, arity, value syntax (on/off/N%, levels,
 *      states, durations) -> exit 2 with one line and a hint to --help;
 *   2. the file: Redis and admin addresses, flag, route and profile names
 *      -> exit 1 when the file is unreadable, 2 for a name it lacks;
 *   3. Redis or the admin API, with timeouts -> exit 1 with one line naming
 *      the address and the reason. A Redis write and its announcement go
 *      in one MULTI/EXEC: both happen or neither does.
 */
#include "ctl_conf.h"
#include "ctl_http.h"
#include "ctl_json.h"
#include "ctl_redis.h"
#include "../config/conf_read.h"
#include "../config/config.h"
#include "../config/units.h"
#include "../util/alloc.h"
#include "../util/errlist.h"

#include <ctype.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CTL_DEFAULT_CONFIG "conf/gateway.yaml"
#define CTL_MAX_WORDS      4
#define CTL_OPT_FOR        1u /* takes --for DURATION */
#define CTL_OPT_JSON       2u /* takes --json */
#define CTL_ADMIN_API      4u /* talks to the admin API: needs only admin: from the file */

enum ctl_exit {
	CTL_OK = 0,
	CTL_FAIL = 1,
	CTL_USAGE = 2,
};

struct ctl_args {
	const char *config;
	const char *admin; /* --admin ADDR: that gateway instead of admin.listen */
	bool help;
	bool json; /* --json: status prints the gateway's JSON as is */
	bool has_for;
	uint64_t for_ms;
	const char *for_text;
	const char *words[CTL_MAX_WORDS];
	size_t nwords;
};

/* One run: the command line, the file, the Redis connection (NULL c until opened). */
struct ctl {
	struct ctl_args args;
	struct ctl_conf conf;
	struct ctl_redis redis;
	char value[16]; /* a flag value as it goes to Redis: "on", "off", "25%" */
};

struct ctl_command {
	const char *name;
	const char *sub;      /* "flag list" and friends; NULL for one-word commands */
	size_t nwords;        /* words on the command line, the command's included */
	const char *synopsis; /* for messages */
	unsigned traits;      /* CTL_OPT_* (options beyond -c and --admin), CTL_ADMIN_API */
	int (*check)(struct ctl *ctl); /* syntax, before the file is read; may be NULL */
	int (*run)(struct ctl *ctl);
};

static const char usage_text[] =
    "usage: gatewayctl [-c FILE] COMMAND [ARGS] [--for DURATION] [--json]\n"
    "\n"
    "Steers the whole fleet of gateways through Redis, and one gateway through its\n"
    "admin API. FILE is the gateway's configuration (default " CTL_DEFAULT_CONFIG ");\n"
    "gatewayctl reads redis:, admin:, flags:, routes: and profiles: from it.\n"
    "\n"
    "Fleet-wide, through Redis (keys under redis.prefix, \"gw:\" by default; every\n"
    "change is announced on PREFIXevents):\n"
    "  flag list                    every flag: NAME VALUE SOURCE (profile, redis or\n"
    "                               default)\n"
    "  flag get NAME                one flag: the value in force and its source\n"
    "  flag set NAME on|off|N%      set it in PREFIXflags (N: 0..100, a rollout that\n"
    "                               is sticky per user)\n"
    "  flag unset NAME              remove it from PREFIXflags: back to the default\n"
    "  shed auto|0|1|2              force the overload level (PREFIXops:shed_level):\n"
    "                               0 shed nothing, 1 shed sheddable routes, 2 shed\n"
    "                               normal routes too; auto: the gateways decide\n"
    "  breaker ROUTE open|closed|auto\n"
    "                               force a route's circuit breaker\n"
    "                               (PREFIXops:breaker:ROUTE); auto: not forced\n"
    "  profile NAME|none            apply a profile of the file's profiles:\n"
    "                               (PREFIXops:profile); none: no profile\n"
    "  ops                          what is forced now, with the time left\n"
    "\n"
    "One gateway, through its admin API (admin.listen; the bearer token comes from\n"
    "the variable named by admin.token_env):\n"
    "  status [--json]              its state (GET /status): the configuration in\n"
    "                               force, overload, in-flight requests and\n"
    "                               connections, Redis, then tables of routes\n"
    "                               (breakers and counters), upstreams, servers\n"
    "                               and flags; --json: the gateway's JSON as is\n"
    "  reload                       make it reload its configuration file (POST\n"
    "                               /reload): prints the file and its hash, or\n"
    "                               the errors for which it refused the file and\n"
    "                               keeps serving with its current configuration\n"
    "\n"
    "Options:\n"
    "  -c, --config FILE            the configuration file\n"
    "  --for DURATION               shed, breaker, profile: the toggle reverts by\n"
    "                               itself after DURATION (250ms, 30s, 5m, 2h):\n"
    "                               Redis expires the key. Without --for it stays\n"
    "                               until changed back\n"
    "  --admin ADDR                 status, reload: the gateway at ADDR (IP:PORT)\n"
    "                               instead of admin.listen\n"
    "  --json                       status: print the gateway's JSON answer as is\n"
    "                               instead of tables\n"
    "  -h, --help                   this help\n"
    "\n"
    "Exit status: 0 done; 1 Redis or the gateway unreachable, too slow or refusing\n"
    "(a reload refused, an answer not as expected), or the file unreadable or\n"
    "invalid; 2 usage error (unknown command, bad value, unknown flag, route or\n"
    "profile), and then nothing was written.\n"
    "\n"
    "Examples:\n"
    "  gatewayctl profile peak --for 2h\n"
    "  gatewayctl shed 1 --for 30m\n"
    "  gatewayctl flag set recommendations off\n"
    "  gatewayctl breaker checkout open --for 5m\n"
    "  gatewayctl ops\n"
    "  gatewayctl status\n"
    "  gatewayctl status --json\n"
    "  gatewayctl reload\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One line: the reason and a hint to --help. */
static int usage_error(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "gatewayctl: %s (see gatewayctl --help)\n", msg);
	return CTL_USAGE;
}

/* ---- values ------------------------------------------------------------ */

/* Names as the gateway's config allows them: letters, digits, '_', '.', '-'. */
static bool valid_name(const char *s)
{
	return s[0] != '\0' &&
	       s[strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")] ==
	           '\0';
}

/* on, off, or an integer 0..100 followed by '%', normalized ("007%" -> "7%") into out. */
static bool parse_flag_value(const char *text, char *out, size_t size)
{
	size_t digits = strspn(text, "0123456789");
	unsigned v = 0;

	if (strcmp(text, "on") == 0 || strcmp(text, "off") == 0) {
		snprintf(out, size, "%s", text);
		return true;
	}
	if (digits == 0 || digits > 3 || strcmp(text + digits, "%") != 0)
		return false;
	for (size_t i = 0; i < digits; i++)
		v = v * 10 + (unsigned)(text[i] - '0');
	if (v > 100)
		return false;
	snprintf(out, size, "%u%%", v);
	return true;
}

static bool one_of(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(s, *list) == 0)
			return true;
	return false;
}

/* "1h59m58s", "2s", "750ms": a time left, as a duration is written. */
static const char *format_left(long long ms, char *buf, size_t size)
{
	long long h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60;
	int n = 0;

	if (ms < 1000) {
		snprintf(buf, size, "%lldms", ms);
		return buf;
	}
	if (h)
		n += snprintf(buf + n, size - (size_t)n, "%lldh", h);
	if (m)
		n += snprintf(buf + n, size - (size_t)n, "%lldm", m);
	if (s || n == 0)
		snprintf(buf + n, size - (size_t)n, "%llds", s);
	return buf;
}

/* ---- the command line -------------------------------------------------- */

static int take_for(struct ctl_args *a, const char *text)
{
	if (a->has_for)
		return usage_error("--for given twice");
	if (!text || gw_parse_duration_ms(text, &a->for_ms) < 0)
		return usage_error(
		    "--for: expected a duration such as 250ms, 30s, 5m or 2h, got '%s'",
		    text ? text : "");
	if (a->for_ms == 0)
		return usage_error("--for: the duration must be more than 0");
	a->has_for = true;
	a->for_text = text;
	return CTL_OK;
}

static int take_word(struct ctl_args *a, const char *word)
{
	if (a->nwords == CTL_MAX_WORDS)
		return usage_error("too many arguments ('%s')", word);
	a->words[a->nwords++] = word;
	return CTL_OK;
}

/* An option at argv[*i] (it may consume the next argument too). */
static int take_option(int argc, char **argv, int *i, struct ctl_args *a)
{
	const char *opt = argv[*i], *next = *i + 1 < argc ? argv[*i + 1] : NULL;

	if (strcmp(opt, "-h") == 0 || strcmp(opt, "--help") == 0) {
		a->help = true;
		return CTL_OK;
	}
	if (strcmp(opt, "--json") == 0) {
		a->json = true;
		return CTL_OK;
	}
	if (strncmp(opt, "--for=", 6) == 0)
		return take_for(a, opt + 6);
	if (strncmp(opt, "--config=", 9) == 0) {
		a->config = opt + 9;
		return CTL_OK;
	}
	if (strncmp(opt, "--admin=", 8) == 0) {
		a->admin = opt + 8;
		return CTL_OK;
	}
	if (strcmp(opt, "--for") != 0 && strcmp(opt, "-c") != 0 && strcmp(opt, "--config") != 0 &&
	    strcmp(opt, "--admin") != 0)
		return usage_error("unknown option '%s'", opt);
	if (!next)
		return usage_error("%s needs a value", opt);
	(*i)++;
	if (strcmp(opt, "--for") == 0)
		return take_for(a, next);
	if (strcmp(opt, "--admin") == 0)
		a->admin = next;
	else
		a->config = next;
	return CTL_OK;
}

static int parse_args(int argc, char **argv, struct ctl_args *a)
{
	bool options = true;
	int rc = CTL_OK;

	a->config = CTL_DEFAULT_CONFIG;
	for (int i = 1; i < argc && rc == CTL_OK; i++) {
		const char *arg = argv[i];

		if (options && strcmp(arg, "--") == 0)
			options = false;
		else if (options && arg[0] == '-' && arg[1] != '\0' &&
		         !isdigit((unsigned char)arg[1]))
			rc = take_option(argc, argv, &i, a);
		else
			rc = take_word(a, arg);
	}
	return rc;
}

/* ---- Redis helpers ----------------------------------------------------- */

static int open_redis(struct ctl *ctl)
{
	if (!ctl->conf.has_redis) {
		fprintf(stderr,
		        "gatewayctl: %s has no redis: section, so the gateways read no flags or "
		        "toggles from Redis\n",
		        ctl->conf.file);
		return CTL_FAIL;
	}
	return ctl_redis_open(&ctl->redis, &ctl->conf.redis) < 0 ? CTL_FAIL : CTL_OK;
}

/* GET key into a new string (NULL when absent) and its PTTL; -1 on failure. */
static int get_with_ttl(struct ctl *ctl, const char *key, char **value, long long *pttl)
{
	const char *get[] = {"GET", key}, *ttl[] = {"PTTL", key};
	redisReply *r = ctl_redis_command(&ctl->redis, 2, get);

	*value = NULL;
	if (!r)
		return -1;
	if (r->type == REDIS_REPLY_STRING)
		*value = gw_strndup(r->str, r->len);
	freeReplyObject(r);
	r = ctl_redis_command(&ctl->redis, 2, ttl);
	if (!r) {
		free(*value);
		*value = NULL;
		return -1;
	}
	*pttl = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
	freeReplyObject(r);
	return 0;
}

/* Prints what a write did, from EXEC's reply (the command's, then PUBLISH's). */
static void report_write(struct ctl *ctl, const char *what, const redisReply *exec)
{
	long long listeners = exec->element[1]->integer;
	char *channel = ctl_redis_key(&ctl->conf.redis, "events", NULL);

	printf("%s\n", what);
	if (listeners > 0)
		printf("announced on %s to %lld subscriber%s\n", channel, listeners,
		       listeners == 1 ? "" : "s");
	else
		printf("announced on %s; no gateway is subscribed now: they pick it up at their "
		       "next poll\n",
		       channel);
	free(channel);
}

/*
 * SET key value [PX ms] (DEL key when value is NULL), announced as
 * "event"; then prints what was done.
 */
static int write_ops_key(struct ctl *ctl, const char *suffix, const char *more, const char *value,
                         const char *event)
{
	char *key = ctl_redis_key(&ctl->conf.redis, suffix, more), px[32], what[512];
	const char *argv[5] = {value ? "SET" : "DEL", key, value, "PX", px};
	int argc = !value ? 2 : ctl->args.has_for ? 5 : 3, rc = CTL_FAIL;
	redisReply *exec;

	snprintf(px, sizeof(px), "%llu", (unsigned long long)ctl->args.for_ms);
	exec = ctl_redis_write(&ctl->redis, argc, argv, event);
	if (exec) {
		if (!value)
			snprintf(what, sizeof(what), "deleted %s (%s)", key,
			         exec->element[0]->integer ? "was set" : "was not set");
		else if (ctl->args.has_for)
			snprintf(what, sizeof(what), "set %s = %s, expires in %s", key, value,
			         ctl->args.for_text);
		else
			snprintf(what, sizeof(what),
			         "set %s = %s, with no expiry: it stays until "
			         "changed back",
			         key, value);
		report_write(ctl, what, exec);
		freeReplyObject(exec);
		rc = CTL_OK;
	}
	free(key);
	return rc;
}

/* ---- flags ------------------------------------------------------------- */

/*
 * What decides a flag on the fleet, in the gateways' order: the profile in
 * force (when it names the flag), PREFIXflags, the file's default.
 */
struct flag_view {
	redisReply *hash;                  /* HGETALL PREFIXflags */
	char *profile;                     /* PREFIXops:profile, or NULL */
	const struct ctl_profile *applied; /* its entry in the file, or NULL */
};

static int load_flag_view(struct ctl *ctl, struct flag_view *v)
{
	char *key = ctl_redis_key(&ctl->conf.redis, "flags", NULL);
	char *pkey = ctl_redis_key(&ctl->conf.redis, "ops:profile", NULL);
	const char *argv[] = {"HGETALL", key};
	long long pttl;
	int rc = -1;

	memset(v, 0, sizeof(*v));
	v->hash = ctl_redis_command(&ctl->redis, 2, argv);
	if (v->hash && get_with_ttl(ctl, pkey, &v->profile, &pttl) == 0) {
		v->applied = v->profile ? ctl_conf_profile(&ctl->conf, v->profile) : NULL;
		rc = 0;
	}
	free(key);
	free(pkey);
	return rc;
}

static void free_flag_view(struct flag_view *v)
{
	if (v->hash)
		freeReplyObject(v->hash);
	free(v->profile);
}

static const char *hash_value(const struct flag_view *v, const char *name)
{
	if (v->hash->type != REDIS_REPLY_ARRAY)
		return NULL;
	for (size_t i = 0; i + 1 < v->hash->elements; i += 2)
		if (strcmp(v->hash->element[i]->str, name) == 0)
			return v->hash->element[i + 1]->str;
	return NULL;
}

static const char *profile_value(const struct flag_view *v, const char *name)
{
	if (!v->applied)
		return NULL;
	for (size_t i = 0; i < v->applied->nflags; i++)
		if (strcmp(v->applied->flags[i].name, name) == 0)
			return v->applied->flags[i].value;
	return NULL;
}

/* The value in force and its source; false when nothing knows the flag. */
static bool resolve_flag(const struct ctl *ctl, const struct flag_view *v, const char *name,
                         const char **value, char *source, size_t size)
{
	const struct ctl_flag *def = ctl_conf_flag(&ctl->conf, name);
	const char *redis = hash_value(v, name), *prof = profile_value(v, name);
	const char *unknown = !def ? ", not in the file" : "";

	if (prof) {
		*value = prof;
		if (redis)
			snprintf(source, size, "profile %s (redis: %s)", v->profile, redis);
		else
			snprintf(source, size, "profile %s", v->profile);
	} else if (redis) {
		*value = redis;
		snprintf(source, size, "redis%s", unknown);
	} else if (def) {
		*value = def->value;
		snprintf(source, size, "default");
	} else {
		return false;
	}
	return true;
}

struct flag_row {
	const char *name;
	const char *value;
	char source[160];
};

static int row_cmp(const void *pa, const void *pb)
{
	const struct flag_row *a = pa, *b = pb;

	return strcmp(a->name, b->name);
}

static bool has_row(const struct flag_row *rows, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(rows[i].name, name) == 0)
			return true;
	return false;
}

static void add_row(const struct ctl *ctl, const struct flag_view *v, const char *name,
                    struct flag_row *rows, size_t *n)
{
	if (has_row(rows, *n, name))
		return;
	rows[*n].name = name;
	if (resolve_flag(ctl, v, name, &rows[*n].value, rows[*n].source, sizeof(rows[*n].source)))
		(*n)++;
}

static void print_rows(const struct flag_row *rows, size_t n)
{
	int wn = 4, wv = 5;

	for (size_t i = 0; i < n; i++) {
		if ((int)strlen(rows[i].name) > wn)
			wn = (int)strlen(rows[i].name);
		if ((int)strlen(rows[i].value) > wv)
			wv = (int)strlen(rows[i].value);
	}
	printf("%-*s  %-*s  %s\n", wn, "NAME", wv, "VALUE", "SOURCE");
	for (size_t i = 0; i < n; i++)
		printf("%-*s  %-*s  %s\n", wn, rows[i].name, wv, rows[i].value, rows[i].source);
}

/* The file's flags in file order, then those only Redis or the profile know, by name. */
static void list_flags(const struct ctl *ctl, const struct flag_view *v)
{
	size_t nhash = v->hash->type == REDIS_REPLY_ARRAY ? v->hash->elements / 2 : 0;
	size_t nprof = v->applied ? v->applied->nflags : 0, n = 0, first_extra;
	struct flag_row *rows = gw_calloc(ctl->conf.nflags + nhash + nprof + 1, sizeof(*rows));

	for (size_t i = 0; i < ctl->conf.nflags; i++)
		add_row(ctl, v, ctl->conf.flags[i].name, rows, &n);
	first_extra = n;
	for (size_t i = 0; i < nhash; i++)
		add_row(ctl, v, v->hash->element[2 * i]->str, rows, &n);
	for (size_t i = 0; i < nprof; i++)
		add_row(ctl, v, v->applied->flags[i].name, rows, &n);
	qsort(rows + first_extra, n - first_extra, sizeof(*rows), row_cmp);
	print_rows(rows, n);
	free(rows);
}

static int cmd_flag_list(struct ctl *ctl)
{
	struct flag_view v;
	int rc = open_redis(ctl);

	if (rc != CTL_OK)
		return rc;
	if (load_flag_view(ctl, &v) < 0) {
		free_flag_view(&v);
		return CTL_FAIL;
	}
	list_flags(ctl, &v);
	free_flag_view(&v);
	return CTL_OK;
}

static int cmd_flag_get(struct ctl *ctl)
{
	const char *name = ctl->args.words[2];
	struct flag_row row;
	struct flag_view v;
	int rc = open_redis(ctl);

	if (rc != CTL_OK)
		return rc;
	if (load_flag_view(ctl, &v) < 0) {
		free_flag_view(&v);
		return CTL_FAIL;
	}
	row.name = name;
	if (resolve_flag(ctl, &v, name, &row.value, row.source, sizeof(row.source)))
		print_rows(&row, 1);
	else
		rc = usage_error("unknown flag '%s': not in %s nor in Redis", name, ctl->conf.file);
	free_flag_view(&v);
	return rc;
}

static int check_flag_name(struct ctl *ctl)
{
	const char *name = ctl->args.words[2];

	if (!valid_name(name))
		return usage_error("invalid flag name '%s' (letters, digits, '_', '.', '-')", name);
	return CTL_OK;
}

static int check_flag_set(struct ctl *ctl)
{
	const char *value = ctl->args.words[3];

	if (check_flag_name(ctl) != CTL_OK)
		return CTL_USAGE;
	if (!parse_flag_value(value, ctl->value, sizeof(ctl->value)))
		return usage_error(
		    "invalid flag value '%s': expected on, off, or N%% with N in 0..100", value);
	return CTL_OK;
}

/* Gateways only know the flags with a default in the file: any other is a typo. */
static int known_flag(struct ctl *ctl, const char *name)
{
	if (!ctl_conf_flag(&ctl->conf, name))
		return usage_error("unknown flag '%s': %s has no default for it under flags:", name,
		                   ctl->conf.file);
	return CTL_OK;
}

/* Tells the operator when the profile in force overrides the flag just written. */
static void warn_profile_override(struct ctl *ctl, const char *name)
{
	struct flag_view v;
	const char *prof;

	if (load_flag_view(ctl, &v) == 0 && (prof = profile_value(&v, name)))
		printf("note: profile '%s' is in force and sets %s = %s, which wins over %sflags "
		       "until the profile ends\n",
		       v.profile, name, prof, ctl->conf.redis.prefix);
	free_flag_view(&v);
}

static int cmd_flag_set(struct ctl *ctl)
{
	const char *name = ctl->args.words[2];
	char *key, event[256], what[512];
	const char *argv[4] = {"HSET", NULL, name, ctl->value};
	redisReply *exec;
	int rc = known_flag(ctl, name);

	if (rc == CTL_OK)
		rc = open_redis(ctl);
	if (rc != CTL_OK)
		return rc;
	key = ctl_redis_key(&ctl->conf.redis, "flags", NULL);
	argv[1] = key;
	snprintf(event, sizeof(event), "flags:%s=%s", name, ctl->value);
	exec = ctl_redis_write(&ctl->redis, 4, argv, event);
	if (exec) {
		snprintf(what, sizeof(what), "set %s %s = %s", key, name, ctl->value);
		report_write(ctl, what, exec);
		freeReplyObject(exec);
		warn_profile_override(ctl, name);
	}
	free(key);
	return exec ? CTL_OK : CTL_FAIL;
}

static int cmd_flag_unset(struct ctl *ctl)
{
	const char *name = ctl->args.words[2];
	const struct ctl_flag *def;
	char *key, event[256], what[512];
	const char *argv[3] = {"HDEL", NULL, name};
	redisReply *exec;
	int rc = open_redis(ctl);

	if (rc != CTL_OK)
		return rc;
	def = ctl_conf_flag(&ctl->conf, name);
	key = ctl_redis_key(&ctl->conf.redis, "flags", NULL);
	argv[1] = key;
	snprintf(event, sizeof(event), "flags:%s=default", name);
	exec = ctl_redis_write(&ctl->redis, 3, argv, event);
	if (exec) {
		snprintf(what, sizeof(what), "removed %s from %s (%s); in force now: %s%s", name,
		         key, exec->element[0]->integer ? "was set" : "was not set",
		         def ? def->value : "nothing (no default in the file)",
		         def ? " (the file's default)" : "");
		report_write(ctl, what, exec);
		freeReplyObject(exec);
	}
	free(key);
	return exec ? CTL_OK : CTL_FAIL;
}

/* ---- ops toggles --------------------------------------------------------- */

static const char *const shed_levels[] = {"auto", "0", "1", "2", NULL};
static const char *const breaker_states[] = {"open", "closed", "auto", NULL};

/* --for with a value that deletes the key means nothing. */
static int check_for_delete(struct ctl *ctl, const char *value, const char *deleting)
{
	if (ctl->args.has_for && strcmp(value, deleting) == 0)
		return usage_error("--for does not apply to '%s', which removes the toggle now",
		                   deleting);
	return CTL_OK;
}

static int check_shed(struct ctl *ctl)
{
	const char *level = ctl->args.words[1];

	if (!one_of(level, shed_levels))
		return usage_error("invalid shed level '%s': expected auto, 0, 1 or 2", level);
	return check_for_delete(ctl, level, "auto");
}

static int cmd_shed(struct ctl *ctl)
{
	const char *level = ctl->args.words[1];
	bool del = strcmp(level, "auto") == 0;
	char event[64];
	int rc = open_redis(ctl);

	if (rc != CTL_OK)
		return rc;
	snprintf(event, sizeof(event), "ops:shed_level=%s", level);
	return write_ops_key(ctl, "ops:shed_level", NULL, del ? NULL : level, event);
}

static int check_breaker(struct ctl *ctl)
{
	const char *route = ctl->args.words[1], *state = ctl->args.words[2];

	if (!gw_config_valid_route_name(route))
		return usage_error("invalid route name '%s'", route);
	if (!one_of(state, breaker_states))
		return usage_error("invalid breaker state '%s': expected open, closed or auto",
		                   state);
	return check_for_delete(ctl, state, "auto");
}

static int cmd_breaker(struct ctl *ctl)
{
	const char *route = ctl->args.words[1], *state = ctl->args.words[2];
	char event[256];
	int rc;

	if (!ctl_conf_has_route(&ctl->conf, route))
		return usage_error("unknown route '%s': %s has no route of that name", route,
		                   ctl->conf.file);
	rc = open_redis(ctl);
	if (rc != CTL_OK)
		return rc;
	snprintf(event, sizeof(event), "ops:breaker:%s=%s", route, state);
	return write_ops_key(ctl, "ops:breaker:", route, strcmp(state, "auto") == 0 ? NULL : state,
	                     event);
}

static int check_profile(struct ctl *ctl)
{
	const char *name = ctl->args.words[1];

	if (!valid_name(name))
		return usage_error("invalid profile name '%s'", name);
	return check_for_delete(ctl, name, "none");
}

static int cmd_profile(struct ctl *ctl)
{
	const char *name = ctl->args.words[1];
	bool del = strcmp(name, "none") == 0;
	char event[256];
	int rc;

	if (!del && ctl->conf.nprofiles && !ctl_conf_profile(&ctl->conf, name))
		return usage_error("unknown profile '%s': not under profiles: in %s", name,
		                   ctl->conf.file);
	rc = open_redis(ctl);
	if (rc != CTL_OK)
		return rc;
	snprintf(event, sizeof(event), "ops:profile=%s", name);
	return write_ops_key(ctl, "ops:profile", NULL, del ? NULL : name, event);
}

/* ---- ops: what is forced now --------------------------------------------- */

/* The EXPIRES IN column: "-" (no key), "never" (no TTL), "now" (gone meanwhile), or the time. */
static const char *time_left(const char *value, long long pttl, char *buf, size_t size)
{
	if (!value)
		return "-";
	if (pttl == -1)
		return "never";
	if (pttl < 0)
		return "now";
	return format_left(pttl, buf, size);
}

/* One row of `ops`; *kept (when not NULL) receives the value, the caller's to free. */
static int show_key(struct ctl *ctl, const char *label, const char *suffix, const char *more,
                    const char *absent, char **kept)
{
	char *key = ctl_redis_key(&ctl->conf.redis, suffix, more), *value, left[64];
	long long pttl;
	int rc = get_with_ttl(ctl, key, &value, &pttl);

	if (rc == 0) {
		printf("%-24s  %-10s  %s\n", label, value ? value : absent,
		       time_left(value, pttl, left, sizeof(left)));
		if (kept)
			*kept = value;
		else
			free(value);
	}
	free(key);
	return rc;
}

/* What the profile in force sets, from the file. */
static void show_profile(const struct ctl *ctl, const char *name)
{
	const struct ctl_profile *p = ctl_conf_profile(&ctl->conf, name);

	if (!p) {
		printf("\nprofile '%s' is not in %s: gateways running this file ignore it\n", name,
		       ctl->conf.file);
		return;
	}
	printf("\nprofile %s sets:", p->name);
	for (size_t i = 0; i < p->nflags; i++)
		printf(" %s=%s", p->flags[i].name, p->flags[i].value);
	if (p->shed_level >= 0)
		printf(" shed_level=%d (unless shed_level above is 0, 1 or 2)", p->shed_level);
	if (!p->nflags && p->shed_level < 0)
		printf(" nothing");
	printf("\n");
}

static int cmd_ops(struct ctl *ctl)
{
	char label[256], *profile = NULL;
	int rc = open_redis(ctl);

	if (rc != CTL_OK)
		return rc;
	printf("%-24s  %-10s  %s\n", "TOGGLE", "VALUE", "EXPIRES IN");
	rc = show_key(ctl, "profile", "ops:profile", NULL, "none", &profile);
	if (rc == 0)
		rc = show_key(ctl, "shed_level", "ops:shed_level", NULL, "auto", NULL);
	for (size_t i = 0; rc == 0 && i < ctl->conf.nroutes; i++) {
		snprintf(label, sizeof(label), "breaker %s", ctl->conf.routes[i]);
		rc = show_key(ctl, label, "ops:breaker:", ctl->conf.routes[i], "auto", NULL);
	}
	if (rc == 0 && profile)
		show_profile(ctl, profile);
	free(profile);
	return rc == 0 ? CTL_OK : CTL_FAIL;
}

/* ---- admin API --------------------------------------------------------- */

/*
 * s[0, len) as it may reach the operator's terminal, in a new string:
 * printable ASCII as is, '\' doubled, anything else escaped (\n, \r, \t,
 * \xNN for other bytes, UTF-8 included). Strings from the gateway come
 * from its file and from Redis: none may send the terminal a control
 * sequence, and each shows in as many columns as it has bytes.
 */
static char *shown(const char *s, size_t len)
{
	char *out = gw_malloc(4 * len + 1), *o = out;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\\') {
			*o++ = '\\';
			*o++ = '\\';
		} else if (c >= 0x20 && c < 0x7f) {
			*o++ = (char)c;
		} else if (c == '\n' || c == '\r' || c == '\t') {
			*o++ = '\\';
			*o++ = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
		} else {
			o += sprintf(o, "\\x%02x", c);
		}
	}
	*o = '\0';
	return out;
}

/* The first line of a body, for a one-line message (escaped, a new string). */
static char *first_line(const struct ctl_http_reply *reply)
{
	size_t n = strcspn(reply->body, "\r\n");

	return shown(reply->body, n > 200 ? 200 : n);
}

/* --admin, else admin.listen, else NULL. */
static const char *admin_address(const struct ctl *ctl)
{
	if (ctl->args.admin)
		return ctl->args.admin;
	return ctl->conf.has_admin ? ctl->conf.admin.listen : NULL;
}

static void print_refused(const struct ctl *ctl, const char *method, const char *path,
                          const struct ctl_http_reply *reply)
{
	const char *env = ctl->conf.admin.token_env;
	char *line;

	if (reply->status == 401 || reply->status == 403) {
		if (env)
			fprintf(stderr,
			        "gatewayctl: the admin API at %s refused the token (%d): is $%s "
			        "set to the gateway's admin token?\n",
			        admin_address(ctl), reply->status, env);
		else
			fprintf(stderr,
			        "gatewayctl: the admin API at %s wants a token (%d), but %s "
			        "has no admin.token_env\n",
			        admin_address(ctl), reply->status, ctl->conf.file);
		return;
	}
	line = first_line(reply);
	fprintf(stderr, "gatewayctl: %s %s on the admin API at %s answered %d%s%s\n", method, path,
	        admin_address(ctl), reply->status, line[0] ? ": " : "", line);
	free(line);
}

/* Calls the admin API; 0 with *reply filled (any status), else prints why. */
static int admin_call(struct ctl *ctl, const char *method, const char *path,
                      struct ctl_http_reply *reply)
{
	const char *env = ctl->conf.admin.token_env, *token = env ? getenv(env) : NULL;
	const char *address = admin_address(ctl);
	char why[256];

	if (!address) {
		fprintf(stderr,
		        "gatewayctl: the gateway's admin API is not reachable: %s has no "
		        "admin: section (name a gateway with --admin ADDR)\n",
		        ctl->conf.file);
		return -1;
	}
	if (ctl_http_call(address, method, path, token && *token ? token : NULL, reply, why,
	                  sizeof(why)) < 0) {
		fprintf(stderr, "gatewayctl: the gateway's admin API is not reachable at %s: %s\n",
		        address, why);
		return -1;
	}
	return 0;
}

static void print_body(const struct ctl_http_reply *reply, FILE *out)
{
	fwrite(reply->body, 1, reply->body_len, out);
	if (reply->body_len && reply->body[reply->body_len - 1] != '\n')
		fputc('\n', out);
}

/*
 * Reading an answer's JSON against what the contract promises. Each
 * lookup names the field by its path ("routes[2].breaker.state"); the
 * first one missing or of the wrong type is kept in why, and every lookup
 * after it answers a placeholder, so that a caller reads a whole document
 * and checks failed once at the end.
 */
struct reader {
	bool failed;
	char why[256];
};

/* "a string", "an object", "null": a JSON type in a message. */
static const char *a_type(enum ctl_json_type type)
{
	switch (type) {
	case CTL_JSON_NULL:
		return "null";
	case CTL_JSON_BOOL:
		return "a boolean";
	case CTL_JSON_NUMBER:
		return "a number";
	case CTL_JSON_STRING:
		return "a string";
	case CTL_JSON_ARRAY:
		return "an array";
	case CTL_JSON_OBJECT:
		return "an object";
	}
	return "?";
}

static const struct ctl_json *need(struct reader *r, const struct ctl_json *obj, const char *path,
                                   const char *key, enum ctl_json_type type, bool nullable)
{
	const struct ctl_json *v = ctl_json_get(obj, key);
	const char *dot = path[0] ? "." : "";

	if (r->failed)
		return NULL;
	if (v && (v->type == type || (nullable && v->type == CTL_JSON_NULL)))
		return v;
	r->failed = true;
	if (!v) {
		snprintf(r->why, sizeof(r->why), "%s%s%s is missing", path, dot, key);
		return NULL;
	}
	snprintf(r->why, sizeof(r->why), "%s%s%s is %s, not %s%s", path, dot, key, a_type(v->type),
	         a_type(type), nullable ? " or null" : "");
	return NULL;
}

/* Item i of an array, which must be an object (path names it: "routes[2]"). */
static const struct ctl_json *item(struct reader *r, const struct ctl_json *array, size_t i,
                                   const char *path)
{
	const struct ctl_json *v = ctl_json_at(array, i);

	if (r->failed)
		return NULL;
	if (ctl_json_is(v, CTL_JSON_OBJECT))
		return v;
	r->failed = true;
	snprintf(r->why, sizeof(r->why), "%s is %s, not an object", path,
	         v ? a_type(v->type) : "missing");
	return NULL;
}

/* A string field, escaped (a new string; "" after a failure). */
static char *text_of(struct reader *r, const struct ctl_json *obj, const char *path,
                     const char *key)
{
	const struct ctl_json *v = need(r, obj, path, key, CTL_JSON_STRING, false);

	return v ? shown(v->u.string.data, v->u.string.len) : gw_strdup("");
}

/* A nullable string field, escaped (a new string), or NULL when null or after a failure. */
static char *text_or_null(struct reader *r, const struct ctl_json *obj, const char *path,
                          const char *key)
{
	const struct ctl_json *v = need(r, obj, path, key, CTL_JSON_STRING, true);

	return v && v->type == CTL_JSON_STRING ? shown(v->u.string.data, v->u.string.len) : NULL;
}

static double number_of(struct reader *r, const struct ctl_json *obj, const char *path,
                        const char *key)
{
	const struct ctl_json *v = need(r, obj, path, key, CTL_JSON_NUMBER, false);

	return v ? v->u.number.value : 0;
}

static bool bool_of(struct reader *r, const struct ctl_json *obj, const char *path, const char *key)
{
	const struct ctl_json *v = need(r, obj, path, key, CTL_JSON_BOOL, false);

	return v && v->u.boolean;
}

/* A counter as a new string: "123", or as the JSON wrote it when it is not a whole number. */
static char *count_of(struct reader *r, const struct ctl_json *obj, const char *path,
                      const char *key)
{
	const struct ctl_json *v = need(r, obj, path, key, CTL_JSON_NUMBER, false);
	double d = v ? v->u.number.value : 0;
	char buf[32];

	if (v && !(d >= 0 && d < 1e15 && d == (double)(long long)d))
		return shown(v->u.number.text, strlen(v->u.number.text));
	snprintf(buf, sizeof(buf), "%lld", (long long)d);
	return gw_strdup(buf);
}

/* A new string from a format. */
static char *str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *str_printf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	s = gw_malloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

/*
 * An aligned table: a header row (none when heads is NULL) and rows of
 * cells, columns two spaces apart, those marked 'r' in align right-aligned
 * (numbers), no trailing blanks. Ownership: the table owns its cells (each
 * given to table_put as a new string), released by table_free.
 */
struct table {
	const char *title;        /* printed above it; NULL = none */
	const char *const *heads; /* ncols of them, or NULL */
	const char *align;        /* 'l' or 'r' per column */
	size_t ncols;
	char **cells; /* row after row */
	size_t ncells, cap;
};

static void table_put(struct table *t, char *cell)
{
	if (t->ncells == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 64;
		t->cells = gw_realloc(t->cells, t->cap * sizeof(*t->cells));
	}
	t->cells[t->ncells++] = cell;
}

static void table_print(const struct table *t)
{
	size_t width[16] = {0}, nrows = t->ncells / t->ncols;

	for (size_t c = 0; c < t->ncols; c++) {
		width[c] = t->heads ? strlen(t->heads[c]) : 0;
		for (size_t i = 0; i < nrows; i++)
			if (strlen(t->cells[i * t->ncols + c]) > width[c])
				width[c] = strlen(t->cells[i * t->ncols + c]);
	}
	if (t->title)
		printf("%s\n", t->title);
	for (size_t i = t->heads ? 0 : 1; i <= nrows; i++) {
		const char *const *row =
		    i == 0 ? t->heads : (const char *const *)t->cells + (i - 1) * t->ncols;

		for (size_t c = 0; c < t->ncols; c++) {
			bool last = c + 1 == t->ncols, right = t->align[c] == 'r';
			int w = (int)width[c];

			if (right)
				printf("%*s", w, row[c]);
			else if (last)
				printf("%s", row[c]);
			else
				printf("%-*s", w, row[c]);
			printf("%s", last ? "\n" : "  ");
		}
	}
	if (t->title && nrows == 0)
		printf("(none)\n");
}

static void table_free(struct table *t)
{
	for (size_t i = 0; i < t->ncells; i++)
		free(t->cells[i]);
	free(t->cells);
}

/* One label and value of the summary block. */
static void summary_put(struct table *t, const char *label, char *value)
{
	table_put(t, gw_strdup(label));
	table_put(t, value);
}

/* The block above the tables: the process, its configuration, overload, Redis. */
static void read_summary(struct reader *r, const struct ctl_json *st, struct table *t)
{
	const struct ctl_json *config = need(r, st, "", "config", CTL_JSON_OBJECT, false);
	const struct ctl_json *ov = need(r, st, "", "overload", CTL_JSON_OBJECT, false);
	const struct ctl_json *shed = need(r, ov, "overload", "shed", CTL_JSON_OBJECT, false);
	const struct ctl_json *redis = need(r, st, "", "redis", CTL_JSON_OBJECT, false);
	char *version = text_of(r, st, "", "version"), *file = text_of(r, config, "config", "file");
	char *err = text_or_null(r, config, "config", "last_reload_error"), left[64];
	char *reason = text_of(r, ov, "overload", "reason"), *source;
	double pid = number_of(r, st, "", "pid"), up = number_of(r, st, "", "uptime_seconds");
	double reloads = number_of(r, config, "config", "reloads");
	bool draining = bool_of(r, st, "", "draining"), dry = bool_of(r, ov, "overload", "dry_run");
	bool configured = bool_of(r, redis, "redis", "configured");
	bool connected = bool_of(r, redis, "redis", "connected");

	summary_put(t, "gateway",
	            str_printf("%s, pid %.0f, up %s%s", version, pid,
	                       format_left(up > 0 && up < 1e12 ? (long long)(up * 1000) : 0, left,
	                                   sizeof(left)),
	                       draining ? ", DRAINING" : ""));
	summary_put(t, "config", file);
	summary_put(t, "hash", text_of(r, config, "config", "hash"));
	summary_put(t, "loaded at", text_of(r, config, "config", "loaded_at"));
	summary_put(t, "reloads",
	            str_printf("%.0f%s%s", reloads, err ? ", last error: " : "", err ? err : ""));
	source = text_of(r, ov, "overload", "source");
	summary_put(t, "overload",
	            str_printf("level %.0f (%s)%s%s%s", number_of(r, ov, "overload", "level"),
	                       source, reason[0] ? ": " : "", reason, dry ? ", dry run" : ""));
	summary_put(t, "shed",
	            str_printf("critical %.0f, normal %.0f, sheddable %.0f",
	                       number_of(r, shed, "overload.shed", "critical"),
	                       number_of(r, shed, "overload.shed", "normal"),
	                       number_of(r, shed, "overload.shed", "sheddable")));
	summary_put(t, "in-flight",
	            str_printf("%.0f of %.0f", number_of(r, st, "", "inflight"),
	                       number_of(r, ov, "overload", "max_inflight")));
	summary_put(t, "connections", str_printf("%.0f", number_of(r, st, "", "connections")));
	summary_put(t, "redis",
	            gw_strdup(!configured ? "not configured"
	                      : connected ? "connected"
	                                  : "DISCONNECTED"));
	free(version);
	free(err);
	free(reason);
	free(source);
}

static void read_routes(struct reader *r, const struct ctl_json *st, struct table *t)
{
	const struct ctl_json *routes = need(r, st, "", "routes", CTL_JSON_ARRAY, false);

	for (size_t i = 0; i < ctl_json_len(routes) && !r->failed; i++) {
		const struct ctl_json *route, *b, *resp;
		char path[48], bpath[64], rpath[64], *state, *forced;

		snprintf(path, sizeof(path), "routes[%zu]", i);
		snprintf(bpath, sizeof(bpath), "%s.breaker", path);
		snprintf(rpath, sizeof(rpath), "%s.responses", path);
		route = item(r, routes, i, path);
		if (!route)
			break;
		b = need(r, route, path, "breaker", CTL_JSON_OBJECT, false);
		resp = need(r, route, path, "responses", CTL_JSON_OBJECT, false);
		table_put(t, text_of(r, route, path, "name"));
		table_put(t, text_of(r, route, path, "priority"));
		state = text_of(r, b, bpath, "state");
		forced = text_or_null(r, b, bpath, "forced");
		table_put(t, str_printf("%s%s", state, forced ? " (forced)" : ""));
		free(state);
		free(forced);
		table_put(t, count_of(r, route, path, "requests"));
		table_put(t, count_of(r, resp, rpath, "5xx"));
		table_put(t, count_of(r, route, path, "retries"));
		table_put(t, count_of(r, route, path, "budget_exhausted"));
		table_put(t, count_of(r, route, path, "shed"));
		table_put(t, count_of(r, route, path, "rate_limited"));
	}
}

static void read_upstreams(struct reader *r, const struct ctl_json *st, struct table *ups,
                           struct table *servers)
{
	const struct ctl_json *list = need(r, st, "", "upstreams", CTL_JSON_ARRAY, false);

	for (size_t i = 0; i < ctl_json_len(list) && !r->failed; i++) {
		const struct ctl_json *u, *q, *limit, *srv;
		char path[48], qpath[64], spath[80], *name, *c, *n, *s;

		snprintf(path, sizeof(path), "upstreams[%zu]", i);
		snprintf(qpath, sizeof(qpath), "%s.queue", path);
		u = item(r, list, i, path);
		if (!u)
			break;
		q = need(r, u, path, "queue", CTL_JSON_OBJECT, false);
		limit = need(r, u, path, "concurrency_limit", CTL_JSON_NUMBER, true);
		srv = need(r, u, path, "servers", CTL_JSON_ARRAY, false);
		name = text_of(r, u, path, "name");
		table_put(ups, gw_strdup(name));
		table_put(ups, text_of(r, u, path, "balance"));
		table_put(ups, ctl_json_is(limit, CTL_JSON_NUMBER)
		                   ? count_of(r, u, path, "concurrency_limit")
		                   : gw_strdup("off"));
		table_put(ups, count_of(r, u, path, "inflight"));
		c = count_of(r, q, qpath, "critical");
		n = count_of(r, q, qpath, "normal");
		s = count_of(r, q, qpath, "sheddable");
		table_put(ups, str_printf("%s/%s/%s", c, n, s));
		free(c);
		free(n);
		free(s);
		for (size_t j = 0; j < ctl_json_len(srv) && !r->failed; j++) {
			const struct ctl_json *sv;

			snprintf(spath, sizeof(spath), "%s.servers[%zu]", path, j);
			sv = item(r, srv, j, spath);
			if (!sv)
				break;
			table_put(servers, gw_strdup(name));
			table_put(servers, text_of(r, sv, spath, "address"));
			table_put(servers,
			          gw_strdup(bool_of(r, sv, spath, "healthy") ? "up" : "DOWN"));
			table_put(servers,
			          gw_strdup(bool_of(r, sv, spath, "ejected") ? "yes" : "no"));
			table_put(servers, count_of(r, sv, spath, "ejections"));
			table_put(servers, count_of(r, sv, spath, "inflight"));
			table_put(servers, count_of(r, sv, spath, "open_connections"));
		}
		free(name);
	}
}

static void read_flags(struct reader *r, const struct ctl_json *st, struct table *t)
{
	const struct ctl_json *flags = need(r, st, "", "flags", CTL_JSON_ARRAY, false);

	for (size_t i = 0; i < ctl_json_len(flags) && !r->failed; i++) {
		const struct ctl_json *f;
		char path[48];

		snprintf(path, sizeof(path), "flags[%zu]", i);
		f = item(r, flags, i, path);
		if (!f)
			break;
		table_put(t, text_of(r, f, path, "name"));
		table_put(t, text_of(r, f, path, "value"));
		table_put(t, text_of(r, f, path, "source"));
	}
}

static const char *const route_heads[] = {"NAME",        "PRIORITY", "BREAKER",          "REQUESTS",
                                          "5XX",         "RETRIES",  "BUDGET_EXHAUSTED", "SHED",
                                          "RATE_LIMITED"};
static const char *const upstream_heads[] = {"NAME", "BALANCE", "LIMIT", "INFLIGHT", "QUEUE_C/N/S"};
static const char *const server_heads[] = {"UPSTREAM",  "SERVER",   "HEALTH",    "EJECTED",
                                           "EJECTIONS", "INFLIGHT", "OPEN_CONNS"};
static const char *const flag_heads[] = {"NAME", "VALUE", "SOURCE"};

/*
 * GET /status's JSON as the summary block and the ROUTES, UPSTREAMS,
 * SERVERS and FLAGS tables. Everything is read before anything is
 * printed: an answer that is not what the contract promises prints one
 * line naming the first field that is wrong, and nothing else.
 */
static int print_status(const struct ctl *ctl, const struct ctl_http_reply *reply)
{
	struct table sum = {.align = "ll", .ncols = 2};
	struct table routes = {"ROUTES", route_heads, "lllrrrrrr", 9, NULL, 0, 0};
	struct table ups = {"UPSTREAMS", upstream_heads, "llrrl", 5, NULL, 0, 0};
	struct table servers = {"SERVERS", server_heads, "llllrrr", 7, NULL, 0, 0};
	struct table flags = {"FLAGS", flag_heads, "lll", 3, NULL, 0, 0};
	struct ctl_json_error jerr;
	struct ctl_json *st = ctl_json_parse(reply->body, reply->body_len, &jerr);
	struct reader r = {0};

	if (!st) {
		fprintf(stderr,
		        "gatewayctl: GET /status on the admin API at %s answered something that is "
		        "not JSON (at byte %zu: %s); see it with status --json\n",
		        admin_address(ctl), jerr.offset, jerr.message);
		return CTL_FAIL;
	}
	if (!ctl_json_is(st, CTL_JSON_OBJECT)) {
		r.failed = true;
		snprintf(r.why, sizeof(r.why), "it is %s, not an object", a_type(st->type));
	}
	read_summary(&r, st, &sum);
	read_routes(&r, st, &routes);
	read_upstreams(&r, st, &ups, &servers);
	read_flags(&r, st, &flags);
	if (r.failed) {
		fprintf(stderr,
		        "gatewayctl: GET /status on the admin API at %s answered JSON that is not "
		        "the gateway's status (%s); see it with status --json\n",
		        admin_address(ctl), r.why);
	} else {
		table_print(&sum);
		printf("\n");
		table_print(&routes);
		printf("\n");
		table_print(&ups);
		printf("\n");
		table_print(&servers);
		printf("\n");
		table_print(&flags);
	}
	table_free(&sum);
	table_free(&routes);
	table_free(&ups);
	table_free(&servers);
	table_free(&flags);
	ctl_json_free(st);
	return r.failed ? CTL_FAIL : CTL_OK;
}

static int cmd_status(struct ctl *ctl)
{
	struct ctl_http_reply reply;
	int rc;

	if (admin_call(ctl, "GET", "/status", &reply) < 0)
		return CTL_FAIL;
	if (reply.status != 200) {
		print_refused(ctl, "GET", "/status", &reply);
		rc = CTL_FAIL;
	} else if (ctl->args.json) {
		print_body(&reply, stdout);
		rc = CTL_OK;
	} else {
		rc = print_status(ctl, &reply);
	}
	ctl_http_reply_free(&reply);
	return rc;
}

/* 200: {"ok":true,"config":{"file":...,"hash":...}} -> "reloaded: FILE (hash H)". */
static int print_reloaded(const struct ctl *ctl, const struct ctl_json *body, const char *jwhy)
{
	struct reader r = {0};
	const struct ctl_json *config = need(&r, body, "", "config", CTL_JSON_OBJECT, false);
	char *file = text_of(&r, config, "config", "file");
	char *hash = text_of(&r, config, "config", "hash");

	if (!body)
		snprintf(r.why, sizeof(r.why), "not JSON: %s", jwhy);
	if (!body || r.failed)
		fprintf(stderr,
		        "gatewayctl: POST /reload on the admin API at %s answered 200 (reloaded) "
		        "but not with the JSON expected (%s)\n",
		        admin_address(ctl), r.why);
	else
		printf("reloaded: %s (hash %s)\n", file, hash);
	free(file);
	free(hash);
	return !body || r.failed ? CTL_FAIL : CTL_OK;
}

/* 400: {"ok":false,"errors":["FILE:LINE:COL: message", ...]}, one line each. */
static void print_reload_refused(const struct ctl_http_reply *reply, const struct ctl_json *body,
                                 const char *jwhy)
{
	struct reader r = {0};
	const struct ctl_json *errors = need(&r, body, "", "errors", CTL_JSON_ARRAY, false);
	char *line;

	fprintf(stderr, "reload refused, the gateway keeps its current configuration:\n");
	for (size_t i = 0; i < ctl_json_len(errors); i++) {
		size_t len;
		const char *e = ctl_json_as_string(ctl_json_at(errors, i), &len);

		line = e ? shown(e, len) : gw_strdup("(an error that is not a string)");
		fprintf(stderr, "%s\n", line);
		free(line);
	}
	if (body && !r.failed)
		return;
	line = first_line(reply);
	fprintf(stderr, "gatewayctl: the answer does not list the errors (%s): %s\n",
	        body ? r.why : jwhy, line);
	free(line);
}

static int cmd_reload(struct ctl *ctl)
{
	struct ctl_http_reply reply;
	struct ctl_json_error jerr;
	struct ctl_json *body = NULL;
	char jwhy[192] = "";
	int rc = CTL_FAIL;

	if (admin_call(ctl, "POST", "/reload", &reply) < 0)
		return CTL_FAIL;
	if (reply.status == 200 || reply.status == 400) {
		body = ctl_json_parse(reply.body, reply.body_len, &jerr);
		if (!body)
			snprintf(jwhy, sizeof(jwhy), "at byte %zu: %s", jerr.offset, jerr.message);
	}
	if (reply.status == 200)
		rc = print_reloaded(ctl, body, jwhy);
	else if (reply.status == 400)
		print_reload_refused(&reply, body, jwhy);
	else
		print_refused(ctl, "POST", "/reload", &reply);
	ctl_json_free(body);
	ctl_http_reply_free(&reply);
	return rc;
}

/* ---- dispatch ---------------------------------------------------------- */

static const struct ctl_command commands[] = {
    {"flag", "list", 2, "flag list", 0, NULL, cmd_flag_list},
    {"flag", "get", 3, "flag get NAME", 0, check_flag_name, cmd_flag_get},
    {"flag", "set", 4, "flag set NAME on|off|N%", 0, check_flag_set, cmd_flag_set},
    {"flag", "unset", 3, "flag unset NAME", 0, check_flag_name, cmd_flag_unset},
    {"shed", NULL, 2, "shed auto|0|1|2 [--for DURATION]", CTL_OPT_FOR, check_shed, cmd_shed},
    {"breaker", NULL, 3, "breaker ROUTE open|closed|auto [--for DURATION]", CTL_OPT_FOR,
     check_breaker, cmd_breaker},
    {"profile", NULL, 2, "profile NAME|none [--for DURATION]", CTL_OPT_FOR, check_profile,
     cmd_profile},
    {"ops", NULL, 1, "ops", 0, NULL, cmd_ops},
    {"status", NULL, 1, "status [--json]", CTL_ADMIN_API | CTL_OPT_JSON, NULL, cmd_status},
    {"reload", NULL, 1, "reload", CTL_ADMIN_API, NULL, cmd_reload},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

/* The command named by the words, or NULL after a usage error. */
static const struct ctl_command *find_command(const struct ctl_args *a)
{
	const char *name = a->words[0], *sub = a->nwords > 1 ? a->words[1] : NULL;
	bool known = false;

	for (size_t i = 0; i < NCOMMANDS; i++) {
		const struct ctl_command *c = &commands[i];

		if (strcmp(c->name, name) != 0)
			continue;
		known = true;
		if (!c->sub || (sub && strcmp(c->sub, sub) == 0))
			return c;
	}
	if (!known)
		usage_error("unknown command '%s'", name);
	else if (sub)
		usage_error("unknown command '%s %s': expected %s list, get, set or unset", name,
		            sub, name);
	else
		usage_error("'%s' needs a subcommand: list, get, set or unset", name);
	return NULL;
}

/* The command line's words and options, against the command's synopsis. */
static int check_command(const struct ctl_command *c, struct ctl *ctl)
{
	if (ctl->args.nwords != c->nwords)
		return usage_error("%s arguments: usage: gatewayctl %s",
		                   ctl->args.nwords < c->nwords ? "missing" : "too many",
		                   c->synopsis);
	if (ctl->args.has_for && !(c->traits & CTL_OPT_FOR))
		return usage_error("--for applies to shed, breaker and profile, not to %s",
		                   c->synopsis);
	if (ctl->args.json && !(c->traits & CTL_OPT_JSON))
		return usage_error("--json applies to status, not to %s", c->synopsis);
	return c->check ? c->check(ctl) : CTL_OK;
}

/*
 * The file, all of it. A command of the admin API makes do with the file's
 * admin: section when the rest does not load: the gateway runs what it
 * loaded before; status notes the errors (the first one), reload leaves
 * them to the gateway, which answers with its own.
 */
static int load_conf(struct ctl *ctl, const struct ctl_command *cmd)
{
	struct gw_errlist errs = {0}, admin_errs = {0};

	if (ctl_conf_load(ctl->args.config, &ctl->conf, &errs) == 0)
		return CTL_OK;
	if ((cmd->traits & CTL_ADMIN_API) && errs.count > 0 &&
	    ctl_conf_load_admin(ctl->args.config, &ctl->conf, &admin_errs) == 0) {
		if (cmd->run == cmd_status)
			fprintf(stderr,
			        "gatewayctl: note: %s does not load (%s; %zu error%s in all); the "
			        "gateway runs what it loaded before\n",
			        ctl->args.config, errs.items[0], errs.count,
			        errs.count == 1 ? "" : "s");
		gw_errlist_free(&errs);
		return CTL_OK;
	}
	gw_errlist_free(&admin_errs);
	for (size_t i = 0; i < errs.count; i++)
		fprintf(stderr, "gatewayctl: %s\n", errs.items[i]);
	if (errs.count == 0)
		fprintf(stderr, "gatewayctl: cannot read %s\n", ctl->args.config);
	gw_errlist_free(&errs);
	return CTL_FAIL;
}

int main(int argc, char **argv)
{
	const struct ctl_command *cmd;
	struct ctl ctl;
	int rc;

	memset(&ctl, 0, sizeof(ctl));
	signal(SIGPIPE, SIG_IGN);
	rc = parse_args(argc, argv, &ctl.args);
	if (rc != CTL_OK)
		return rc;
	if (ctl.args.help || (ctl.args.nwords == 1 && strcmp(ctl.args.words[0], "help") == 0)) {
		fputs(usage_text, stdout);
		return CTL_OK;
	}
	if (ctl.args.nwords == 0)
		return usage_error("missing command");
	cmd = find_command(&ctl.args);
	if (!cmd)
		return CTL_USAGE;
	rc = check_command(cmd, &ctl);
	if (rc == CTL_OK)
		rc = load_conf(&ctl, cmd);
	if (rc == CTL_OK)
		rc = cmd->run(&ctl);
	ctl_redis_close(&ctl.redis);
	ctl_conf_free(&ctl.conf);
	return fflush(stdout) == 0 || rc != CTL_OK ? rc : CTL_FAIL;
}
