/*
 * The `tls` sections of the config file (tls_conf.h).
 */
#include "tls_conf.h"
#include "tls_client.h"
#include "tls_server.h"
#include "../util/alloc.h"
#include "../util/log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEC  1000ull
#define HOUR (3600 * SEC)

/* ---- names ------------------------------------------------------------- */

static bool is_ip_literal(const char *s)
{
	unsigned char addr[16];

	return inet_pton(AF_INET, s, addr) == 1 || inet_pton(AF_INET6, s, addr) == 1;
}

/* Letters, digits and '-' in labels of 1..63 bytes, 253 bytes at most. */
static bool valid_dns_name(const char *s)
{
	size_t label = 0;

	if (strlen(s) > 253)
		return false;
	for (;; s++) {
		if (*s == '.' || *s == '\0') {
			if (label == 0 || label > 63)
				return false;
			if (*s == '\0')
				return true;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)*s) && *s != '-')
			return false;
		label++;
	}
}

/* ---- reporting what the builders find ---------------------------------- */

/*
 * What a builder's report needs to point at the node a problem is about:
 * the tls mapping and its context, and the `certificates` list if any.
 */
struct report_nodes {
	const struct gw_conf_ctx *parent; /* names the listen entry or upstream */
	const struct gw_conf_ctx *ctx;    /* names the tls mapping */
	const struct gw_node *map;
	const struct gw_node *certificates; /* NULL: {cert, key} or an upstream */
};

static const char *const key_names[] = {
    [GW_TLS_KEY_CERT] = "cert",   [GW_TLS_KEY_KEY] = "key",
    [GW_TLS_KEY_CA] = "ca",       [GW_TLS_KEY_SERVER_NAME] = "server_names",
    [GW_TLS_KEY_SECTION] = "tls",
};

/*
 * "FILE:LINE:COL: 'cert' in tls of listen entry 2: message", as an error
 * (the load fails) or a warning (logged, the load goes on).
 */
static void report_problem(void *arg, const struct gw_tls_problem *p)
{
	const struct report_nodes *rn = arg;
	const struct gw_conf_ctx *ctx = rn->ctx;
	const struct gw_node *entry = rn->map, *node = NULL;
	const char *key = key_names[p->key];
	struct gw_conf_ctx sub;
	char where[GW_CONF_WHERE_MAX], section[48];

	if (p->key == GW_TLS_KEY_SECTION) {
		ctx = rn->parent;
		node = rn->map;
	} else if (rn->certificates && p->cert < rn->certificates->count) {
		snprintf(section, sizeof(section), "certificate %zu", p->cert + 1);
		gw_conf_ctx_enter(rn->ctx, section, &sub, where);
		ctx = &sub;
		entry = rn->certificates->items[p->cert];
	}
	if (!node)
		node = gw_node_get(entry, key);
	if (node && node->type == GW_NODE_SEQ && p->name < node->count)
		node = node->items[p->name];
	if (!node)
		node = entry;
	if (!p->warning)
		gw_conf_bad_value(ctx, node, key, "%s", p->msg);
	else if (ctx->where)
		gw_log_warn("%s:%u:%u: '%s' in %s: %s", ctx->file, node->line, node->col, key,
		            ctx->where, p->msg);
	else
		gw_log_warn("%s:%u:%u: '%s': %s", ctx->file, node->line, node->col, key, p->msg);
}

/* ---- a listener's certificates ----------------------------------------- */

/*
 * server_names: DNS names, or "*.DOMAIN" for one more label, stored in
 * lower case (SNI compares case-insensitively). An IP address is refused:
 * clients never send one as SNI.
 */
static int read_server_names(const struct gw_conf_ctx *ctx, const struct gw_node *value,
                             const char *key, void *obj)
{
	struct gw_tls_cert_conf *c = obj;
	char **names;
	size_t n = 0;
	int rc = 0;

	if (!gw_conf_want_list(ctx, value, key, "server names"))
		return -1;
	names = gw_calloc(value->count, sizeof(*names));
	for (size_t i = 0; i < value->count; i++) {
		const struct gw_node *item = value->items[i];
		char *name;

		if (!gw_conf_want_scalar(ctx, item, key, "a server name")) {
			rc = -1;
			continue;
		}
		name = gw_strdup(item->value);
		for (char *p = name; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		if (is_ip_literal(name)) {
			gw_conf_bad_value(ctx, item, key,
			                  "'%s' is an IP address: clients never send one as SNI",
			                  item->value);
			rc = -1;
		} else if (!valid_dns_name(strncmp(name, "*.", 2) == 0 ? name + 2 : name)) {
			gw_conf_bad_value(
			    ctx, item, key,
			    "invalid server name '%s' (a DNS name, or *.DOMAIN for one "
			    "more label)",
			    item->value);
			rc = -1;
		}
		if (rc < 0) {
			free(name);
			continue;
		}
		names[n++] = name;
	}
	if (rc < 0) {
		gw_conf_strings_free(names, n);
		return -1;
	}
	gw_conf_strings_free(c->server_names, c->nserver_names);
	c->server_names = names;
	c->nserver_names = n;
	return 0;
}

static const struct gw_conf_field certificate_fields[] = {
    {GW_CONF_STRING("cert", struct gw_tls_cert_conf, cert, false, NULL), .required = true},
    {GW_CONF_STRING("key", struct gw_tls_cert_conf, key, false, NULL), .required = true},
    {GW_CONF_CUSTOM("server_names", read_server_names)},
    {.key = NULL},
};

/* certificates: [{cert, key, server_names}, ...]; only the first may go without names. */
static int read_certificates(const struct gw_conf_ctx *ctx, const struct gw_node *value,
                             const char *key, void *obj)
{
	struct gw_tls_listen_conf *conf = obj;
	int rc = 0;

	if (!gw_conf_want_list(ctx, value, key, "certificates"))
		return -1;
	conf->certificates = gw_calloc(value->count, sizeof(*conf->certificates));
	conf->ncertificates = value->count;
	for (size_t i = 0; i < value->count; i++) {
		const struct gw_node *item = value->items[i];
		struct gw_conf_ctx sub;
		char where[GW_CONF_WHERE_MAX], section[48];

		if (!gw_conf_want_map(ctx, item, key)) {
			rc = -1;
			continue;
		}
		snprintf(section, sizeof(section), "certificate %zu", i + 1);
		gw_conf_ctx_enter(ctx, section, &sub, where);
		if (gw_conf_read_table(&sub, item, certificate_fields, &conf->certificates[i]) < 0)
			rc = -1;
		if (i > 0 && !gw_node_get(item, "server_names")) {
			gw_conf_error(&sub, item,
			              "missing required key 'server_names' in %s (only the first "
			              "certificate, the default, may go without)",
			              sub.where);
			rc = -1;
		}
	}
	return rc;
}

/* `cert` and `key` of the one-certificate form fill certificates[0]. */
static struct gw_tls_cert_conf *single_certificate(struct gw_tls_listen_conf *conf)
{
	if (!conf->certificates) {
		conf->certificates = gw_calloc(1, sizeof(*conf->certificates));
		conf->ncertificates = 1;
	}
	return &conf->certificates[0];
}

static int read_single_cert(const struct gw_conf_ctx *ctx, const struct gw_node *value,
                            const char *key, void *obj)
{
	return gw_conf_string(ctx, value, key, false, &single_certificate(obj)->cert);
}

static int read_single_key(const struct gw_conf_ctx *ctx, const struct gw_node *value,
                           const char *key, void *obj)
{
	return gw_conf_string(ctx, value, key, false, &single_certificate(obj)->key);
}

/* min_version: TLSv1.2 or TLSv1.3; anything older is named and refused. */
static int read_min_version(const struct gw_conf_ctx *ctx, const struct gw_node *value,
                            const char *key, void *obj)
{
	static const char *const obsolete[] = {"SSLv2", "SSLv3", "TLSv1", "TLSv1.0", "TLSv1.1"};
	struct gw_tls_listen_conf *conf = obj;

	if (!gw_conf_want_scalar(ctx, value, key, "TLSv1.2 or TLSv1.3"))
		return -1;
	if (strcmp(value->value, "TLSv1.2") == 0) {
		conf->min_version = GW_TLS_VERSION_1_2;
		return 0;
	}
	if (strcmp(value->value, "TLSv1.3") == 0) {
		conf->min_version = GW_TLS_VERSION_1_3;
		return 0;
	}
	for (size_t i = 0; i < sizeof(obsolete) / sizeof(obsolete[0]); i++) {
		if (strcmp(value->value, obsolete[i]) == 0) {
			gw_conf_bad_value(
			    ctx, value, key,
			    "%s is refused: versions before TLS 1.2 are obsolete (RFC "
			    "8996); use TLSv1.2 or TLSv1.3",
			    value->value);
			return -1;
		}
	}
	gw_conf_bad_value(ctx, value, key, "expected TLSv1.2 or TLSv1.3, got '%s'", value->value);
	return -1;
}

/* A cipher list, checked name by name (tls_server.h) before it replaces *out. */
static int read_cipher_list(const struct gw_conf_ctx *ctx, const struct gw_node *value,
                            const char *key, bool tls13, char **out)
{
	char why[256];
	char *list = NULL;
	int rc;

	if (gw_conf_string(ctx, value, key, false, &list) < 0)
		return -1;
	rc = tls13 ? gw_tls_check_ciphersuites(list, why, sizeof(why))
	           : gw_tls_check_ciphers(list, why, sizeof(why));
	if (rc < 0) {
		gw_conf_bad_value(ctx, value, key, "%s", why);
		free(list);
		return -1;
	}
	free(*out);
	*out = list;
	return 0;
}

static int read_ciphers(const struct gw_conf_ctx *ctx, const struct gw_node *value, const char *key,
                        void *obj)
{
	return read_cipher_list(ctx, value, key, false,
	                        &((struct gw_tls_listen_conf *)obj)->ciphers);
}

static int read_ciphersuites(const struct gw_conf_ctx *ctx, const struct gw_node *value,
                             const char *key, void *obj)
{
	return read_cipher_list(ctx, value, key, true,
	                        &((struct gw_tls_listen_conf *)obj)->ciphersuites);
}

/* The one-certificate form needs both of its keys. */
static void listen_check(const struct gw_conf_section *s)
{
	const struct gw_node *cert = gw_conf_section_value(s, "cert");
	const struct gw_node *key = gw_conf_section_value(s, "key");

	if (gw_conf_section_value(s, "certificates"))
		return;
	if (!cert && !key) {
		gw_conf_error(s->ctx, s->map,
		              "missing required keys in %s: 'cert' and 'key', or 'certificates'",
		              s->ctx->where);
		return;
	}
	if (!cert)
		gw_conf_missing_key(s->ctx, s->map, "cert");
	if (!key)
		gw_conf_missing_key(s->ctx, s->map, "key");
}

static const struct gw_conf_field listen_fields[] = {
    {GW_CONF_CUSTOM("cert", read_single_cert)},
    {GW_CONF_CUSTOM("key", read_single_key)},
    {GW_CONF_CUSTOM("certificates", read_certificates)},
    {GW_CONF_CUSTOM("min_version", read_min_version)},
    {GW_CONF_CUSTOM("ciphers", read_ciphers)},
    {GW_CONF_CUSTOM("ciphersuites", read_ciphersuites)},
    {GW_CONF_BOOL("session_tickets", struct gw_tls_listen_conf, session_tickets, true)},
    {GW_CONF_DURATION("ticket_key_rotation", struct gw_tls_listen_conf, ticket_key_rotation_ms, SEC,
                      24 * HOUR, HOUR)},
    {.key = NULL, .check = listen_check},
};

/*
 * A server name picks one certificate: the same name twice (in any case)
 * is an error at its second place. Run only on a section read without
 * errors, so server_names[j] is the j-th item of the list in the file.
 */
static void check_duplicate_names(const struct gw_conf_ctx *ctx, const struct gw_node *list,
                                  const struct gw_tls_listen_conf *conf)
{
	for (size_t c = 0; list && c < conf->ncertificates; c++) {
		const struct gw_tls_cert_conf *cert = &conf->certificates[c];
		const struct gw_node *names = gw_node_get(list->items[c], "server_names");

		for (size_t n = 0; n < cert->nserver_names; n++) {
			for (size_t pc = 0; pc <= c; pc++) {
				const struct gw_tls_cert_conf *prev = &conf->certificates[pc];
				const struct gw_node *prev_names =
				    gw_node_get(list->items[pc], "server_names");
				size_t end = pc == c ? n : prev->nserver_names;
				struct gw_conf_ctx sub;
				char where[GW_CONF_WHERE_MAX], section[48];

				for (size_t pn = 0; pn < end; pn++) {
					const struct gw_node *first = prev_names->items[pn];

					if (strcmp(prev->server_names[pn], cert->server_names[n]) !=
					    0)
						continue;
					snprintf(section, sizeof(section), "certificate %zu",
					         c + 1);
					gw_conf_ctx_enter(ctx, section, &sub, where);
					gw_conf_bad_value(
					    &sub, names->items[n], "server_names",
					    "'%s' is already a server name of certificate "
					    "%zu (at %u:%u)",
					    names->items[n]->value, pc + 1, first->line,
					    first->col);
					pc = c + 1; /* one message per duplicate */
					break;
				}
			}
		}
	}
}

void gw_tls_listen_conf_free(struct gw_tls_listen_conf *conf)
{
	if (!conf)
		return;
	gw_tls_server_release(conf);
	for (size_t i = 0; i < conf->ncertificates; i++) {
		free(conf->certificates[i].cert);
		free(conf->certificates[i].key);
		gw_conf_strings_free(conf->certificates[i].server_names,
		                     conf->certificates[i].nserver_names);
	}
	free(conf->certificates);
	free(conf->ciphers);
	free(conf->ciphersuites);
	free(conf);
}

struct gw_tls_listen_conf *gw_tls_listen_conf_read(const struct gw_conf_ctx *parent,
                                                   const struct gw_node *value)
{
	struct gw_tls_listen_conf *conf;
	struct gw_conf_ctx ctx;
	struct report_nodes nodes;
	struct gw_tls_report report = {.problem = report_problem, .arg = &nodes};
	const struct gw_node *list;
	size_t before = parent->errs->count;
	char where[GW_CONF_WHERE_MAX];

	if (!gw_conf_want_map(parent, value, "tls"))
		return NULL;
	gw_conf_ctx_enter(parent, "tls", &ctx, where);
	list = gw_node_get(value, "certificates");
	if (list && (gw_node_get(value, "cert") || gw_node_get(value, "key"))) {
		gw_conf_bad_value(
		    parent, value, "tls",
		    "give either 'cert' and 'key' (one certificate) or 'certificates', "
		    "not both");
		return NULL;
	}
	conf = gw_calloc(1, sizeof(*conf));
	conf->ciphers = gw_strdup(GW_TLS_DEFAULT_CIPHERS);
	gw_conf_read_table(&ctx, value, listen_fields, conf);
	if (parent->errs->count == before)
		check_duplicate_names(&ctx, list, conf);
	if (parent->errs->count != before) {
		gw_tls_listen_conf_free(conf);
		return NULL;
	}
	nodes = (struct report_nodes){
	    .parent = parent, .ctx = &ctx, .map = value, .certificates = list};
	if (gw_tls_server_build(conf, &report) < 0) {
		gw_tls_listen_conf_free(conf);
		return NULL;
	}
	return conf;
}

/* ---- an upstream's tls ------------------------------------------------- */

/* server_name: a DNS name or an IP address, as the servers' certificates name them. */
static int read_server_name(const struct gw_conf_ctx *ctx, const struct gw_node *value,
                            const char *key, void *obj)
{
	struct gw_tls_upstream_conf *conf = obj;

	if (!gw_conf_want_scalar(ctx, value, key, "a server name"))
		return -1;
	if (!valid_dns_name(value->value) && !is_ip_literal(value->value)) {
		gw_conf_bad_value(ctx, value, key,
		                  "invalid server name '%s' (a DNS name or an IP address)",
		                  value->value);
		return -1;
	}
	return gw_conf_string(ctx, value, key, false, &conf->server_name);
}

/* Mutual TLS: a client certificate needs its key, and a key its certificate. */
static void upstream_check(const struct gw_conf_section *s)
{
	bool cert = gw_conf_section_value(s, "cert") != NULL;
	bool key = gw_conf_section_value(s, "key") != NULL;

	if (cert && !key)
		gw_conf_missing_key(s->ctx, s->map, "key");
	else if (key && !cert)
		gw_conf_missing_key(s->ctx, s->map, "cert");
}

static const struct gw_conf_field upstream_fields[] = {
    {GW_CONF_STRING("ca", struct gw_tls_upstream_conf, ca, false, NULL)},
    {GW_CONF_CUSTOM("server_name", read_server_name)},
    {GW_CONF_BOOL("verify", struct gw_tls_upstream_conf, verify, true)},
    {GW_CONF_STRING("cert", struct gw_tls_upstream_conf, cert, false, NULL)},
    {GW_CONF_STRING("key", struct gw_tls_upstream_conf, key, false, NULL)},
    {.key = NULL, .check = upstream_check},
};

void gw_tls_upstream_conf_free(struct gw_tls_upstream_conf *conf)
{
	if (!conf)
		return;
	gw_tls_client_release(conf);
	free(conf->ca);
	free(conf->server_name);
	free(conf->cert);
	free(conf->key);
	free(conf);
}

struct gw_tls_upstream_conf *gw_tls_upstream_conf_read(const struct gw_conf_ctx *parent,
                                                       const struct gw_node *value)
{
	struct gw_tls_upstream_conf *conf;
	struct gw_conf_ctx ctx;
	struct report_nodes nodes;
	struct gw_tls_report report = {.problem = report_problem, .arg = &nodes};
	char where[GW_CONF_WHERE_MAX];

	if (!gw_conf_want_map(parent, value, "tls"))
		return NULL;
	gw_conf_ctx_enter(parent, "tls", &ctx, where);
	conf = gw_calloc(1, sizeof(*conf));
	if (gw_conf_read_table(&ctx, value, upstream_fields, conf) < 0) {
		gw_tls_upstream_conf_free(conf);
		return NULL;
	}
	nodes = (struct report_nodes){.parent = parent, .ctx = &ctx, .map = value};
	if (gw_tls_client_build(conf, &report) < 0) {
		gw_tls_upstream_conf_free(conf);
		return NULL;
	}
	return conf;
}
