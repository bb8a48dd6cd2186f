/*
 * Fallback responses (fallback.h): the `fallback` section.
 */
#include "fallback.h"
#include "../../gateway/config/conf_read.h"
#include "../../gateway/reply.h"
#include "../../gateway/util/alloc.h"

#include <stdlib.h>
#include <string.h>

static const char *const fallback_keys[] = {"status", "content_type", "body", NULL};

/* A header value goes out as written: no CR, LF or other control bytes. */
static bool valid_header_value(const char *s)
{
	for (; *s; s++)
		if (((unsigned char)*s < ' ' && *s != '\t') || *s == 0x7f)
			return false;
	return true;
}

static int parse_fallback(struct gw_fallback_conf *c, const struct gw_node *node,
                          const struct gw_conf_ctx *route_ctx)
{
	struct gw_conf_ctx key_ctx = *route_ctx, ctx;
	const struct gw_node *v;
	char where[GW_CONF_WHERE_MAX], *content_type = NULL;
	uint64_t status;
	size_t errors_before = route_ctx->errs->count;

	/* Defaults first: conf_free releases them even when parsing fails. */
	c->status = 503;
	c->content_type = gw_strdup("application/json");
	c->body = gw_strdup("");
	c->body_len = 0;
	if (!key_ctx.where)
		key_ctx.where = "a route";
	if (!gw_conf_want_map(&key_ctx, node, "fallback"))
		return -1;
	gw_conf_ctx_enter(route_ctx, "fallback", &ctx, where);
	gw_conf_check_keys(&ctx, node, fallback_keys);
	if ((v = gw_node_get(node, "status")) &&
	    gw_conf_uint(&ctx, v, "status", 200, 599, &status) == 0)
		c->status = (unsigned)status;
	if ((v = gw_node_get(node, "content_type")) &&
	    gw_conf_string(&ctx, v, "content_type", false, &content_type) == 0) {
		if (valid_header_value(content_type)) {
			free(c->content_type);
			c->content_type = content_type;
		} else {
			gw_conf_bad_value(&ctx, v, "content_type",
			                  "must not contain control characters");
			free(content_type);
		}
	}
	if ((v = gw_node_get(node, "body")) && gw_conf_string(&ctx, v, "body", true, &c->body) == 0)
		c->body_len = strlen(c->body);
	return route_ctx->errs->count == errors_before ? 0 : -1;
}

/* where names the route (module.h): messages say "in fallback of route 'x'". */
static int fallback_conf_parse(void *conf, const struct gw_node *node, const char *where,
                               const char *file, struct gw_errlist *errs)
{
	struct gw_conf_ctx ctx = {.file = file, .errs = errs, .where = where};

	return parse_fallback(conf, node, &ctx);
}

static void fallback_conf_free(void *conf)
{
	struct gw_fallback_conf *c = conf;

	free(c->content_type);
	free(c->body);
}

/* A route that fails fast (circuit open) answers with its fallback instead. */
static void fallback_on_answer(struct gw_mod_env *env, struct gw_error_reply *e)
{
	const struct gw_fallback_conf *fb = env->conf;

	if (strcmp(e->code, "circuit_open") != 0)
		return;
	e->status = (int)fb->status;
	e->content_type = fb->content_type;
	e->body = fb->body;
	e->body_len = fb->body_len;
}

const struct gw_module gw_fallback_module = {
    .name = "fallback",
    .route_key = "fallback",
    .on_answer = fallback_on_answer,
    .conf_size = sizeof(struct gw_fallback_conf),
    .conf_parse = fallback_conf_parse,
    .conf_check = NULL,
    .conf_free = fallback_conf_free,
};

const struct gw_fallback_conf *gw_fallback_conf_of(const struct gw_route_conf *route)
{
	for (size_t i = 0; i < gw_modules_count && i < GW_MAX_MODULES; i++)
		if (gw_modules[i] == &gw_fallback_module)
			return route->module_conf[i];
	return NULL;
}
