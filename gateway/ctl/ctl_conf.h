/*
 * What gatewayctl needs from the gateway's YAML file: where Redis is (and
 * the key prefix, password variable and timeouts), where the admin API is,
 * the flag defaults, the route names and the profiles.
 *
 * The file goes through the gateway's own loader (gw_config_load), so
 * gatewayctl accepts exactly the files the gateway accepts and reports the
 * same FILE:LINE:COL errors. The admin: section, which the loader does not
 * know yet, is looked up in the YAML tree.
 *
 * Ownership: ctl_conf_load fills a struct ctl_conf whose strings and arrays
 * are all its own (copied out of the snapshot, which is released at once),
 * released together by ctl_conf_free.
 */
#ifndef GW_CTL_CTL_CONF_H
#define GW_CTL_CTL_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../util/errlist.h"

#define CTL_DEFAULT_ADMIN_LISTEN "127.0.0.1:9901"

/* A flag and its value as gatewayctl shows it ("on", "off", "10%"). */
struct ctl_flag {
	char *name;
	char *value;
};

/* A profile of the profiles: section and the flags it sets. */
struct ctl_profile {
	char *name;
	struct ctl_flag *flags;
	size_t nflags;
	int shed_level; /* 0..2, or -1 (auto: the profile sets none) */
};

struct ctl_redis_conf {
	char *address; /* as written: "127.0.0.1:6379", "[::1]:6379", "/run/redis.sock" */
	char *host;    /* TCP: the IP literal and port; NULL for a unix socket */
	int port;
	char *unix_path;             /* a unix socket; NULL for TCP */
	char *password_env;          /* the variable holding the password; NULL = none */
	char *prefix;                /* default "gw:" */
	uint64_t connect_timeout_ms; /* default 250ms */
	uint64_t command_timeout_ms; /* default 250ms */
};

struct ctl_admin_conf {
	char *listen;    /* as written; default "127.0.0.1:9901" */
	char *token_env; /* the variable holding the bearer token; NULL = none */
};

struct ctl_conf {
	char *file;
	bool has_redis; /* a redis: section */
	struct ctl_redis_conf redis;
	bool has_admin; /* an admin: section */
	struct ctl_admin_conf admin;
	struct ctl_flag *flags; /* the flags: defaults, file order */
	size_t nflags;
	char **routes; /* route names, file order */
	size_t nroutes;
	struct ctl_profile *profiles; /* file order */
	size_t nprofiles;
};

/*
 * Reads FILE into *conf. 0 on success; -1 after adding "FILE:LINE:COL:
 * message" lines (or "FILE: reason" for an unreadable file) to errs, with
 * *conf left empty.
 */
int ctl_conf_load(const char *file, struct ctl_conf *conf, struct gw_errlist *errs);
/*
 * Reads only the admin: section of FILE (and its name) into *conf, from the
 * YAML tree, for the admin API commands when ctl_conf_load refuses the
 * file: the gateway still runs what it loaded before, `status` should show
 * it, and `reload` is how the operator hears the gateway's own verdict on
 * the new file. 0 on success; -1 after adding lines to errs (a file that is
 * not YAML, an admin: section of the wrong shape), *conf left empty.
 */
int ctl_conf_load_admin(const char *file, struct ctl_conf *conf, struct gw_errlist *errs);
void ctl_conf_free(struct ctl_conf *conf);

const struct ctl_flag *ctl_conf_flag(const struct ctl_conf *conf, const char *name);
const struct ctl_profile *ctl_conf_profile(const struct ctl_conf *conf, const char *name);
bool ctl_conf_has_route(const struct ctl_conf *conf, const char *name);

#endif
