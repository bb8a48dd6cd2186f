/*
 * gatewayctl's reading of the gateway's YAML file (ctl_conf.h).
 *
 * gw_config_load validates the whole file (an invalid file is refused with
 * the gateway's own messages, so an operator never steers the fleet from a
 * file the gateways would not run); gatewayctl then copies the few values
 * it uses out of the snapshot and lets it go.
 */
#include "ctl_conf.h"
#include "../config/conf_read.h"
#include "../config/config.h"
#include "../config/yaml_tree.h"
#include "../util/alloc.h"
#include "../../modules/flags/flag_value.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- from the snapshot ------------------------------------------------- */

static char *dup_or_null(const char *s)
{
	return s ? gw_strdup(s) : NULL;
}

static void copy_redis(const struct gw_config *cfg, struct ctl_conf *conf)
{
	const struct gw_redis_conf *from = &cfg->redis;
	struct ctl_redis_conf *to = &conf->redis;

	conf->has_redis = cfg->has_redis;
	if (!cfg->has_redis)
		return;
	to->address = gw_strdup(from->address);
	to->host = dup_or_null(from->host);
	to->port = (int)from->port;
	to->unix_path = dup_or_null(from->unix_path);
	to->password_env = dup_or_null(from->password_env);
	to->prefix = gw_strdup(from->prefix);
	to->connect_timeout_ms = from->connect_timeout_ms;
	to->command_timeout_ms = from->command_timeout_ms;
}

static void set_flag(struct ctl_flag *f, const char *name, struct gw_flag_value value)
{
	char text[GW_FLAG_VALUE_TEXT];

	f->name = gw_strdup(name);
	f->value = gw_strdup(gw_flag_value_format(value, text, sizeof(text)));
}

static void copy_flags(const struct gw_config *cfg, struct ctl_conf *conf)
{
	conf->flags = gw_calloc(cfg->nflags ? cfg->nflags : 1, sizeof(*conf->flags));
	conf->nflags = cfg->nflags;
	for (size_t i = 0; i < cfg->nflags; i++)
		set_flag(&conf->flags[i], cfg->flags[i].name, cfg->flags[i].def);
}

static void copy_profiles(const struct gw_config *cfg, struct ctl_conf *conf)
{
	conf->profiles = gw_calloc(cfg->nprofiles ? cfg->nprofiles : 1, sizeof(*conf->profiles));
	conf->nprofiles = cfg->nprofiles;
	for (size_t i = 0; i < cfg->nprofiles; i++) {
		const struct gw_profile_conf *from = &cfg->profiles[i];
		struct ctl_profile *to = &conf->profiles[i];

		to->name = gw_strdup(from->name);
		to->shed_level = from->shed_level == GW_SHED_LEVEL_AUTO ? -1 : from->shed_level;
		to->flags = gw_calloc(from->nflags ? from->nflags : 1, sizeof(*to->flags));
		to->nflags = from->nflags;
		for (size_t f = 0; f < from->nflags; f++)
			set_flag(&to->flags[f], cfg->flags[from->flags[f].flag].name,
			         from->flags[f].value);
	}
}

static void copy_routes(const struct gw_config *cfg, struct ctl_conf *conf)
{
	conf->routes = gw_calloc(cfg->nroutes ? cfg->nroutes : 1, sizeof(*conf->routes));
	conf->nroutes = cfg->nroutes;
	for (size_t i = 0; i < cfg->nroutes; i++)
		conf->routes[i] = gw_strdup(cfg->routes[i].name);
}

/* ---- admin: from the YAML tree, until the loader knows the section ------ */

static void read_admin_map(const struct gw_conf_ctx *top, const struct gw_node *map,
                           struct ctl_conf *conf)
{
	char where[GW_CONF_WHERE_MAX];
	struct gw_conf_ctx ctx;
	const struct gw_node *n;

	conf->has_admin = true;
	conf->admin.listen = gw_strdup(CTL_DEFAULT_ADMIN_LISTEN);
	if (!gw_conf_want_map(top, map, "admin"))
		return;
	gw_conf_ctx_enter(top, "admin", &ctx, where);
	if ((n = gw_node_get(map, "listen")))
		gw_conf_string(&ctx, n, "listen", false, &conf->admin.listen);
	if ((n = gw_node_get(map, "token_env")))
		gw_conf_string(&ctx, n, "token_env", false, &conf->admin.token_env);
}

static int read_admin(const char *file, struct ctl_conf *conf, struct gw_errlist *errs)
{
	struct gw_conf_ctx top = {.file = file, .errs = errs, .where = NULL};
	size_t before = errs->count;
	const struct gw_node *admin;
	struct gw_yaml_doc doc;

	if (gw_yaml_load(file, &doc, errs) < 0)
		return -1;
	admin = doc.root->type == GW_NODE_MAP ? gw_node_get(doc.root, "admin") : NULL;
	if (admin)
		read_admin_map(&top, admin, conf);
	gw_yaml_free(&doc);
	return errs->count == before ? 0 : -1;
}

int ctl_conf_load(const char *file, struct ctl_conf *conf, struct gw_errlist *errs)
{
	struct gw_config *cfg;

	memset(conf, 0, sizeof(*conf));
	cfg = gw_config_load(file, errs);
	if (!cfg)
		return -1;
	conf->file = gw_strdup(file);
	copy_redis(cfg, conf);
	copy_flags(cfg, conf);
	copy_profiles(cfg, conf);
	copy_routes(cfg, conf);
	gw_config_unref(cfg);
	if (read_admin(file, conf, errs) < 0) {
		ctl_conf_free(conf);
		return -1;
	}
	return 0;
}

int ctl_conf_load_admin(const char *file, struct ctl_conf *conf, struct gw_errlist *errs)
{
	memset(conf, 0, sizeof(*conf));
	conf->file = gw_strdup(file);
	if (read_admin(file, conf, errs) < 0) {
		ctl_conf_free(conf);
		return -1;
	}
	return 0;
}

/* ---- lookups and cleanup ----------------------------------------------- */

static void free_flags(struct ctl_flag *flags, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		free(flags[i].name);
		free(flags[i].value);
	}
	free(flags);
}

void ctl_conf_free(struct ctl_conf *conf)
{
	free(conf->file);
	free(conf->redis.address);
	free(conf->redis.host);
	free(conf->redis.unix_path);
	free(conf->redis.password_env);
	free(conf->redis.prefix);
	free(conf->admin.listen);
	free(conf->admin.token_env);
	free_flags(conf->flags, conf->nflags);
	for (size_t i = 0; i < conf->nroutes; i++)
		free(conf->routes[i]);
	free(conf->routes);
	for (size_t i = 0; i < conf->nprofiles; i++) {
		free(conf->profiles[i].name);
		free_flags(conf->profiles[i].flags, conf->profiles[i].nflags);
	}
	free(conf->profiles);
	memset(conf, 0, sizeof(*conf));
}

const struct ctl_flag *ctl_conf_flag(const struct ctl_conf *conf, const char *name)
{
	for (size_t i = 0; i < conf->nflags; i++)
		if (strcmp(conf->flags[i].name, name) == 0)
			return &conf->flags[i];
	return NULL;
}

const struct ctl_profile *ctl_conf_profile(const struct ctl_conf *conf, const char *name)
{
	for (size_t i = 0; i < conf->nprofiles; i++)
		if (strcmp(conf->profiles[i].name, name) == 0)
			return &conf->profiles[i];
	return NULL;
}

bool ctl_conf_has_route(const struct ctl_conf *conf, const char *name)
{
	for (size_t i = 0; i < conf->nroutes; i++)
		if (strcmp(conf->routes[i], name) == 0)
			return true;
	return false;
}
