/*
 * Fallback responses (fallback.h): the `fallback` section.
 */
#include "fallback.h"
#include "../../gateway/config/conf_read.h"
#include "../../gateway/reply.h"
#include "../../gateway/util/alloc.h"

#include <stdlib.h>
#include <string.h>

/* A header value goes out as written: no CR, LF or other control bytes. */
static bool valid_header_value(const char *s)
{
	for (; *s; s++)
		if (((unsigned char)*s < ' ' && *s != '\t') || *s == 0x7f)
			return false;
	return true;
}

/* A non-empty string fit for a header; its default is set by fallback_conf_parse. */
static int read_content_type(const struct gw_conf_ctx *ctx, const struct gw_node *v,
                             const char *key, void *obj)
{
	struct gw_fallback_conf *c = obj;
	char *content_type = NULL;

	if (gw_conf_string(ctx, v, key, false, &content_type) < 0)
		return -1;
	if (!valid_header_value(content_type)) {
		gw_conf_bad_value(ctx, v, key, "must not contain control characters");
		free(content_type);
		return -1;
	}
	free(c->content_type);
	c->content_type = content_type;
	return 0;
}

static void fallback_check(const struct gw_conf_section *s)
{
	struct gw_fallback_conf *c = s->obj;

	c->body_len = strlen(c->body);
}

static const struct gw_conf_field fallback_fields[] = {
    {GW_CONF_U32("status", struct gw_fallback_conf, status, 200, 599, 503)},
    {GW_CONF_CUSTOM("content_type", read_content_type)},
    {GW_CONF_STRING("body", struct gw_fallback_conf, body, true, "")},
    {.key = NULL, .check = fallback_check},
};

/* where names the route (module.h): messages say "in fallback of route 'x'". */
static int fallback_conf_parse(void *conf, const struct gw_node *node, const char *where,
                               const char *file, struct gw_errlist *errs)
{
	struct gw_fallback_conf *c = conf;

	/* Defaults first: conf_free releases them even when parsing fails. */
	c->content_type = gw_strdup("application/json");
	return gw_module_conf_read(&gw_fallback_module, conf, node, where, file, errs);
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
    .fields = fallback_fields,
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
