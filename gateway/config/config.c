/*
 * The configuration loader (config.h): YAML tree to a validated snapshot.
 *
 * The loader walks the tree once, in file order, and reports every problem
 * it meets instead of stopping at the first, so an operator fixes a file in
 * one round. A value that fails keeps its default and the walk goes on; the
 * snapshot is thrown away at the end if anything was reported. Checks that
 * need the whole file (a route naming an upstream defined further down) run
 * after the walk; the errors are then sorted into file order.
 *
 * Messages name the key and where it is, "'timeout' in route 'checkout': 2h
 * is out of range (1ms..1h)", and point at the offending node: the key for
 * an unknown key, the value for a bad value, the mapping for a missing key.
 */
#include "config.h"
#include "conf_read.h"
#include "units.h"
#include "yaml_tree.h"
#include "../tls/tls_conf.h"
#include "../util/alloc.h"
#include "../../modules/module.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <unistd.h>

#define SEC  1000ull
#define MIN  (60 * SEC)
#define HOUR (60 * MIN)
#define KIB  1024ull
#define MIB  (1024 * KIB)

#define GW_MAX_WORKERS 256

/*
 * One load in progress. It borrows the tree and the error list; the
 * snapshot (cfg) is its own until handed to the caller. The per-route node
 * arrays point into the tree and live only as long as the load.
 */
struct loader {
	const char *file;
	struct gw_errlist *errs;
	struct gw_config *cfg;
	const struct gw_node **route_names;     /* valid 'name' values, else NULL */
	const struct gw_node **route_upstreams; /* 'upstream' values, else NULL */
	const struct gw_node **route_when_off;  /* 'upstream' of flag.when_off, else NULL */
	size_t current_route;                   /* the route being read */
	bool flags_parsed;                      /* `flags` is read before everything else */
};

/* ---- messages ---------------------------------------------------------- */

static void error_at(struct loader *ld, const struct gw_node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void bad_value(struct loader *ld, const struct gw_node *n, const char *key,
                      const char *where, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Adds "FILE:LINE:COL: message" for node n. */
static void error_at(struct loader *ld, const struct gw_node *n, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	gw_errlist_add(ld->errs, "%s:%u:%u: %s", ld->file, n->line, n->col, msg);
}

/* "'KEY' in WHERE: message", or "'KEY': message" at the top level. */
static void bad_value(struct loader *ld, const struct gw_node *n, const char *key,
                      const char *where, const char *fmt, ...)
{
	char msg[640];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (where)
		error_at(ld, n, "'%s' in %s: %s", key, where, msg);
	else
		error_at(ld, n, "'%s': %s", key, msg);
}

static void missing_key(struct loader *ld, const struct gw_node *map, const char *key,
                        const char *where)
{
	if (where)
		error_at(ld, map, "missing required key '%s' in %s", key, where);
	else
		error_at(ld, map, "missing required key '%s' at top level", key);
}

/* ---- typed values ------------------------------------------------------ */

static bool want_map(struct loader *ld, const struct gw_node *n, const char *key, const char *where)
{
	if (n->type == GW_NODE_MAP)
		return true;
	bad_value(ld, n, key, where, "expected a mapping, got %s", gw_node_type_name(n));
	return false;
}

/* A list with at least one item; what names the items for the message. */
static bool want_list(struct loader *ld, const struct gw_node *n, const char *key,
                      const char *where, const char *what)
{
	if (n->type != GW_NODE_SEQ) {
		bad_value(ld, n, key, where, "expected a list of %s, got %s", what,
		          gw_node_type_name(n));
		return false;
	}
	if (n->count == 0) {
		bad_value(ld, n, key, where, "must not be empty");
		return false;
	}
	return true;
}

/* A scalar that is not YAML's null; what names the expected value. */
static bool want_scalar(struct loader *ld, const struct gw_node *n, const char *key,
                        const char *where, const char *what)
{
	if (n->type == GW_NODE_SCALAR && !gw_node_is_null(n))
		return true;
	bad_value(ld, n, key, where, "expected %s, got %s", what, gw_node_type_name(n));
	return false;
}

/* A non-empty string, duplicated into *out (freeing what was there). */
static int get_string(struct loader *ld, const struct gw_node *n, const char *key,
                      const char *where, char **out)
{
	if (!want_scalar(ld, n, key, where, "a string"))
		return -1;
	if (n->value[0] == '\0') {
		bad_value(ld, n, key, where, "must not be empty");
		return -1;
	}
	free(*out);
	*out = gw_strdup(n->value);
	return 0;
}

/*
 * Plain decimal only. 0 when *v is set; -1 when the text is not an integer;
 * -2 when it is one that no range here can hold (negative or over 64 bits),
 * so the message can say "out of range" rather than "not a number".
 */
static int parse_uint(const char *s, uint64_t *v)
{
	const char *digits = s[0] == '-' ? s + 1 : s;
	size_t n = strspn(digits, "0123456789");
	uint64_t acc = 0;

	if (n == 0 || digits[n] != '\0')
		return -1;
	if (digits != s)
		return -2;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (acc > (UINT64_MAX - d) / 10)
			return -2;
		acc = acc * 10 + d;
	}
	*v = acc;
	return 0;
}

static int get_uint(struct loader *ld, const struct gw_node *n, const char *key, const char *where,
                    uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	int rc;

	if (!want_scalar(ld, n, key, where, "an integer"))
		return -1;
	rc = parse_uint(n->value, &v);
	if (rc == -1) {
		bad_value(ld, n, key, where, "expected an integer, got '%s'", n->value);
		return -1;
	}
	if (rc == -2 || v < min || v > max) {
		bad_value(ld, n, key, where, "%s is out of range (%llu..%llu)", n->value,
		          (unsigned long long)min, (unsigned long long)max);
		return -1;
	}
	*out = v;
	return 0;
}

/*
 * Tells overflow from nonsense after a unit parser refused text: the same
 * text with its number replaced by 1 parses only when the unit was right,
 * so the number itself was too large.
 */
static bool unit_overflowed(const char *text, int (*parse)(const char *, uint64_t *))
{
	size_t n = strspn(text, "0123456789");
	char probe[16];
	uint64_t ignored;

	if (n == 0 || strlen(text + n) + 2 > sizeof(probe))
		return false;
	snprintf(probe, sizeof(probe), "1%s", text + n);
	return parse(probe, &ignored) == 0;
}

/* A duration or a size (parse says which) within [min, max]. */
static int get_unit_value(struct loader *ld, const struct gw_node *n, const char *key,
                          const char *where, int (*parse)(const char *, uint64_t *),
                          const char *kind, uint64_t min, uint64_t max, const char *range,
                          uint64_t *out)
{
	uint64_t v;

	if (!want_scalar(ld, n, key, where, kind))
		return -1;
	if (parse(n->value, &v) < 0) {
		if (unit_overflowed(n->value, parse))
			bad_value(ld, n, key, where, "%s is out of range (%s)", n->value, range);
		else
			bad_value(ld, n, key, where, "expected %s, got '%s'", kind, n->value);
		return -1;
	}
	if (v < min || v > max) {
		bad_value(ld, n, key, where, "%s is out of range (%s)", n->value, range);
		return -1;
	}
	*out = v;
	return 0;
}

static int get_bool(struct loader *ld, const struct gw_node *n, const char *key, const char *where,
                    bool *out)
{
	if (!want_scalar(ld, n, key, where, "true or false"))
		return -1;
	if (strcmp(n->value, "true") == 0) {
		*out = true;
		return 0;
	}
	if (strcmp(n->value, "false") == 0) {
		*out = false;
		return 0;
	}
	bad_value(ld, n, key, where, "expected true or false, got '%s'", n->value);
	return -1;
}

/* Names: what appears in metrics, Redis keys and the admin API. */
static bool valid_name(const char *s)
{
	return s[0] != '\0' &&
	       s[strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")] ==
	           '\0';
}

/*
 * A route's name is what operators read on the status page and type in
 * commands: printable ASCII with inner spaces, at most 128 bytes, no '/'
 * (it is a path segment of the admin API). Every consumer escapes it
 * (JSON, metrics labels, HTML).
 */
bool gw_config_valid_route_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 128 || s[0] == ' ' || s[n - 1] == ' ')
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < ' ' || (unsigned char)*s >= 0x7f || *s == '/')
			return false;
	return true;
}

/* RFC 9110 token, the syntax of a header name. */
static bool valid_token(const char *s)
{
	return s[0] != '\0' && s[strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                                   "0123456789!#$%&'*+-.^_`|~")] == '\0';
}

/* No spaces, control characters or DEL: they never occur in a path or host. */
static bool printable_word(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f)
			return false;
	return true;
}

/* ---- addresses --------------------------------------------------------- */

static int parse_port(const char *s, bool allow_zero, unsigned *port, const char **why)
{
	size_t n = strspn(s, "0123456789");
	unsigned long v;

	if (n == 0 || s[n] != '\0' || n > 5) {
		*why = n == 0 && s[0] == '\0' ? "missing port" : "invalid port";
		return -1;
	}
	v = strtoul(s, NULL, 10);
	if (v > 65535 || (v == 0 && !allow_zero)) {
		*why = allow_zero ? "port must be 0..65535" : "port must be 1..65535";
		return -1;
	}
	*port = (unsigned)v;
	return 0;
}

static bool valid_hostname(const char *host)
{
	return strlen(host) <= 253 &&
	       host[strspn(host,
	                   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")] ==
	           '\0' &&
	       host[0] != '.' && host[0] != '-';
}

/* getaddrinfo's first answer. Blocking: only ever called at load time. */
static int resolve_host(const char *host, unsigned port, struct gw_sockaddr *out, const char **why)
{
	static _Thread_local char buf[320];
	struct addrinfo hints = {
	    .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	char service[8];
	int rc;

	snprintf(service, sizeof(service), "%u", port);
	rc = getaddrinfo(host, service, &hints, &res);
	if (rc != 0 || !res) {
		snprintf(buf, sizeof(buf), "cannot resolve '%s': %s", host,
		         rc ? gai_strerror(rc) : "no address");
		*why = buf;
		if (res)
			freeaddrinfo(res);
		return -1;
	}
	memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
	out->len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/*
 * "IPv4:PORT", "[IPv6]:PORT" or "HOST:PORT". Literal addresses never touch
 * the resolver; a dotted-digits host that is not a valid IPv4 address is
 * refused rather than handed to getaddrinfo, which would read "10.1" as
 * 10.0.0.1.
 */
static int parse_sockaddr(const char *text, bool allow_port0, struct gw_sockaddr *out,
                          const char **why)
{
	char host[256];
	const char *port_text, *end;
	size_t hlen;
	unsigned port;
	bool bracketed = text[0] == '[';

	memset(out, 0, sizeof(*out));
	if (bracketed) {
		end = strchr(text, ']');
		if (!end) {
			*why = "missing ']' after the IPv6 address";
			return -1;
		}
		hlen = (size_t)(end - text - 1);
		if (end[1] != ':') {
			*why = "missing port (expected [IPv6]:PORT)";
			return -1;
		}
		port_text = end + 2;
		text++;
	} else {
		end = strrchr(text, ':');
		if (!end) {
			*why = "missing port (expected HOST:PORT)";
			return -1;
		}
		hlen = (size_t)(end - text);
		port_text = end + 1;
		if (memchr(text, ':', hlen)) {
			*why = "IPv6 addresses go in brackets, as in [::1]:8080";
			return -1;
		}
	}
	if (hlen == 0 || hlen >= sizeof(host)) {
		*why = hlen ? "host name too long" : "missing host";
		return -1;
	}
	memcpy(host, text, hlen);
	host[hlen] = '\0';
	if (parse_port(port_text, allow_port0, &port, why) < 0)
		return -1;

	if (bracketed) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;

		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
			*why = "invalid IPv6 address";
			return -1;
		}
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		out->len = sizeof(*sin6);
		return 0;
	}
	if (host[strspn(host, "0123456789.")] == '\0') {
		struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;

		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
			*why = "invalid IPv4 address";
			return -1;
		}
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		out->len = sizeof(*sin);
		return 0;
	}
	if (!valid_hostname(host)) {
		*why = "invalid host name";
		return -1;
	}
	return resolve_host(host, port, out, why);
}

int gw_parse_sockaddr(const char *text, struct gw_sockaddr *out, const char **why)
{
	return parse_sockaddr(text, false, out, why);
}

int gw_parse_bind_sockaddr(const char *text, struct gw_sockaddr *out, const char **why)
{
	return parse_sockaddr(text, true, out, why);
}

/* An address value: a string, resolved now, kept as written in *text. */
static int get_address(struct loader *ld, const struct gw_node *n, const char *key,
                       const char *where, bool bind, char **text, struct gw_sockaddr *addr)
{
	const char *why = NULL;
	int rc;

	if (!want_scalar(ld, n, key, where, bind ? "an address ADDR:PORT" : "an address HOST:PORT"))
		return -1;
	rc = bind ? gw_parse_bind_sockaddr(n->value, addr, &why)
	          : gw_parse_sockaddr(n->value, addr, &why);
	if (rc < 0) {
		bad_value(ld, n, key, where, "invalid address '%s': %s", n->value, why);
		return -1;
	}
	free(*text);
	*text = gw_strdup(n->value);
	return 0;
}

/* ---- mappings as tables of keys ---------------------------------------- */

enum field_kind {
	FIELD_U32,      /* integer in [min, max] into a uint32_t */
	FIELD_DURATION, /* duration in ms in [min, max] into a uint64_t */
	FIELD_SIZE,     /* size in bytes in [min, max] into a uint64_t */
	FIELD_BOOL,
	FIELD_CUSTOM, /* custom() does everything */
};

/*
 * One known key of a mapping: its type, where it goes in the object being
 * filled, its range and its default, in one line of a table.
 */
struct field {
	const char *key;
	enum field_kind kind;
	size_t offset;
	uint64_t min, max, def;
	const char *range; /* for durations and sizes, as the file spells them */
	void (*custom)(struct loader *ld, const struct gw_node *value, const char *where,
	               void *obj);
};

#define U32(k, type, member, lo, hi, d)                                                            \
	{                                                                                          \
		.key = k, .kind = FIELD_U32, .offset = offsetof(type, member), .min = lo,          \
		.max = hi, .def = d                                                                \
	}
#define DURATION(k, type, member, lo, hi, d, text)                                                 \
	{                                                                                          \
		.key = k, .kind = FIELD_DURATION, .offset = offsetof(type, member), .min = lo,     \
		.max = hi, .def = d, .range = text                                                 \
	}
#define SIZE(k, type, member, lo, hi, d, text)                                                     \
	{                                                                                          \
		.key = k, .kind = FIELD_SIZE, .offset = offsetof(type, member), .min = lo,         \
		.max = hi, .def = d, .range = text                                                 \
	}
#define BOOL(k, type, member, d)                                                                   \
	{                                                                                          \
		.key = k, .kind = FIELD_BOOL, .offset = offsetof(type, member), .def = d           \
	}
#define CUSTOM(k, fn)                                                                              \
	{                                                                                          \
		.key = k, .kind = FIELD_CUSTOM, .custom = fn                                       \
	}
#define FIELDS_END                                                                                 \
	{                                                                                          \
		.key = NULL                                                                        \
	}

static void apply_defaults(const struct field *fields, void *obj)
{
	for (const struct field *f = fields; f->key; f++) {
		char *p = (char *)obj + f->offset;

		switch (f->kind) {
		case FIELD_U32:
			*(uint32_t *)p = (uint32_t)f->def;
			break;
		case FIELD_DURATION:
		case FIELD_SIZE:
			*(uint64_t *)p = f->def;
			break;
		case FIELD_BOOL:
			*(bool *)p = f->def != 0;
			break;
		case FIELD_CUSTOM:
			break;
		}
	}
}

static void parse_field(struct loader *ld, const struct field *f, const struct gw_node *value,
                        const char *where, void *obj)
{
	char *p = (char *)obj + f->offset;
	uint64_t v;

	switch (f->kind) {
	case FIELD_U32:
		if (get_uint(ld, value, f->key, where, f->min, f->max, &v) == 0)
			*(uint32_t *)p = (uint32_t)v;
		break;
	case FIELD_DURATION:
		get_unit_value(ld, value, f->key, where, gw_parse_duration_ms,
		               "a duration such as 250ms, 2s, 1m or 1h", f->min, f->max, f->range,
		               (uint64_t *)p);
		break;
	case FIELD_SIZE:
		get_unit_value(ld, value, f->key, where, gw_parse_size,
		               "a size such as 512, 16k or 8m", f->min, f->max, f->range,
		               (uint64_t *)p);
		break;
	case FIELD_BOOL:
		get_bool(ld, value, f->key, where, (bool *)p);
		break;
	case FIELD_CUSTOM:
		f->custom(ld, value, where, obj);
		break;
	}
}

/*
 * Every key of map, through its table line, in file order. extra, when
 * given, handles a key that the table does not know: 0 when it did, -1 for
 * "unknown key".
 */
static void walk_map(struct loader *ld, const struct gw_node *map, const char *where,
                     const struct field *fields, void *obj,
                     int (*extra)(struct loader *ld, const struct gw_node *key,
                                  const struct gw_node *value, const char *where, void *obj))
{
	for (size_t i = 0; i < map->count; i++) {
		const struct gw_node *key = map->keys[i];
		const struct field *f = fields;

		while (f->key && strcmp(f->key, key->value) != 0)
			f++;
		if (f->key)
			parse_field(ld, f, map->items[i], where, obj);
		else if (!extra || extra(ld, key, map->items[i], where, obj) < 0)
			error_at(ld, key, "unknown key '%s' %s%s", key->value,
			         where ? "in " : "at top level", where ? where : "");
	}
}

/* ---- listen ------------------------------------------------------------ */

static void listen_address(struct loader *ld, const struct gw_node *value, const char *where,
                           void *obj)
{
	struct gw_listen_conf *l = obj;

	get_address(ld, value, "address", where, true, &l->address, &l->addr);
}

/*
 * tls: read, and its contexts built, by gateway/tls/tls_conf.c (through
 * the shared readers of conf_read.h: the same messages as here).
 */
static void listen_tls(struct loader *ld, const struct gw_node *value, const char *where, void *obj)
{
	struct gw_listen_conf *l = obj;
	struct gw_conf_ctx ctx = {.file = ld->file, .errs = ld->errs, .where = where};

	gw_tls_listen_conf_free(l->tls);
	l->tls = gw_tls_listen_conf_read(&ctx, value);
}

static const struct field listen_fields[] = {
    CUSTOM("address", listen_address),
    CUSTOM("tls", listen_tls),
    FIELDS_END,
};

static void parse_listen_entry(struct loader *ld, const struct gw_node *n, size_t i,
                               struct gw_listen_conf *l)
{
	char where[64];

	if (n->type == GW_NODE_SCALAR) {
		get_address(ld, n, "listen", NULL, true, &l->address, &l->addr);
		return;
	}
	if (n->type != GW_NODE_MAP) {
		bad_value(ld, n, "listen", NULL, "expected an address or a mapping, got %s",
		          gw_node_type_name(n));
		return;
	}
	snprintf(where, sizeof(where), "listen entry %zu", i + 1);
	walk_map(ld, n, where, listen_fields, l, NULL);
	if (!gw_node_get(n, "address"))
		missing_key(ld, n, "address", where);
}

static void parse_listen(struct loader *ld, const struct gw_node *value, const char *where,
                         void *obj)
{
	struct gw_config *cfg = obj;

	if (value->type == GW_NODE_SCALAR && !gw_node_is_null(value)) {
		cfg->listens = gw_calloc(1, sizeof(*cfg->listens));
		cfg->nlistens = 1;
		get_address(ld, value, "listen", where, true, &cfg->listens[0].address,
		            &cfg->listens[0].addr);
		return;
	}
	if (!want_list(ld, value, "listen", where, "addresses"))
		return;
	cfg->listens = gw_calloc(value->count, sizeof(*cfg->listens));
	cfg->nlistens = value->count;
	for (size_t i = 0; i < value->count; i++)
		parse_listen_entry(ld, value->items[i], i, &cfg->listens[i]);
}

/* The listener used when the file has no 'listen' key. */
static void default_listen(struct gw_config *cfg)
{
	const char *why;

	cfg->listens = gw_calloc(1, sizeof(*cfg->listens));
	cfg->nlistens = 1;
	cfg->listens[0].address = gw_strdup("0.0.0.0:8080");
	gw_parse_bind_sockaddr(cfg->listens[0].address, &cfg->listens[0].addr, &why);
}

/* ---- workers, access_log, limits --------------------------------------- */

static unsigned online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		return 1;
	return n > GW_MAX_WORKERS ? GW_MAX_WORKERS : (unsigned)n;
}

static void parse_workers(struct loader *ld, const struct gw_node *value, const char *where,
                          void *obj)
{
	struct gw_config *cfg = obj;
	uint64_t v;
	int rc;

	if (!want_scalar(ld, value, "workers", where, "an integer or auto"))
		return;
	if (strcmp(value->value, "auto") == 0) {
		cfg->workers = online_cpus();
		return;
	}
	rc = parse_uint(value->value, &v);
	if (rc == -1)
		bad_value(ld, value, "workers", where, "expected an integer or auto, got '%s'",
		          value->value);
	else if (rc == -2 || v < 1 || v > GW_MAX_WORKERS)
		bad_value(ld, value, "workers", where, "%s is out of range (1..%d, or auto)",
		          value->value, GW_MAX_WORKERS);
	else
		cfg->workers = (unsigned)v;
}

static void parse_access_log(struct loader *ld, const struct gw_node *value, const char *where,
                             void *obj)
{
	struct gw_config *cfg = obj;

	get_string(ld, value, "access_log", where, &cfg->access_log);
}

static void limits_underscores(struct loader *ld, const struct gw_node *value, const char *where,
                               void *obj)
{
	struct gw_limits_conf *l = obj;

	if (!want_scalar(ld, value, "underscores_in_headers", where, "drop or keep"))
		return;
	if (strcmp(value->value, "drop") == 0)
		l->keep_underscores_in_headers = false;
	else if (strcmp(value->value, "keep") == 0)
		l->keep_underscores_in_headers = true;
	else
		bad_value(ld, value, "underscores_in_headers", where,
		          "expected drop or keep, got '%s'", value->value);
}

static const struct field limits_fields[] = {
    U32("max_connections", struct gw_limits_conf, max_connections, 1, 1000000, 10000),
    SIZE("max_header_bytes", struct gw_limits_conf, max_header_bytes, KIB, MIB, 16 * KIB, "1k..1m"),
    SIZE("max_body_bytes", struct gw_limits_conf, max_body_bytes, 0, 1024 * MIB, 8 * MIB,
         "0..1024m"),
    SIZE("max_buffered_body_bytes", struct gw_limits_conf, max_buffered_body_bytes, MIB,
         1024 * 1024 * MIB, 256 * MIB, "1m..1048576m"),
    DURATION("header_timeout", struct gw_limits_conf, header_timeout_ms, 1, HOUR, 10 * SEC,
             "1ms..1h"),
    DURATION("body_timeout", struct gw_limits_conf, body_timeout_ms, 1, HOUR, 30 * SEC, "1ms..1h"),
    DURATION("idle_timeout", struct gw_limits_conf, idle_timeout_ms, 1, HOUR, 60 * SEC, "1ms..1h"),
    DURATION("send_timeout", struct gw_limits_conf, send_timeout_ms, 1, HOUR, 60 * SEC, "1ms..1h"),
    CUSTOM("underscores_in_headers", limits_underscores),
    FIELDS_END,
};

static const struct field shedding_fields[] = {
    U32("max_inflight", struct gw_shedding_conf, max_inflight, 1, 10000000, 2000),
    DURATION("target_queue_delay", struct gw_shedding_conf, target_queue_delay_ms, 1, MIN, 20,
             "1ms..1m"),
    DURATION("max_loop_lag", struct gw_shedding_conf, max_loop_lag_ms, 1, MIN, 50, "1ms..1m"),
    DURATION("retry_after", struct gw_shedding_conf, retry_after_ms, SEC, HOUR, 2 * SEC, "1s..1h"),
    BOOL("dry_run", struct gw_shedding_conf, dry_run, false),
    FIELDS_END,
};

static void parse_shedding(struct loader *ld, const struct gw_node *value, const char *where,
                           void *obj)
{
	struct gw_config *cfg = obj;

	if (want_map(ld, value, "shedding", where))
		walk_map(ld, value, "shedding", shedding_fields, &cfg->shedding, NULL);
}

static void parse_limits(struct loader *ld, const struct gw_node *value, const char *where,
                         void *obj)
{
	struct gw_config *cfg = obj;

	const struct gw_node *buffered;

	if (!want_map(ld, value, "limits", where))
		return;
	walk_map(ld, value, "limits", limits_fields, &cfg->limits, NULL);
	/* Every body allowed must fit in the body budget on its own. */
	buffered = gw_node_get(value, "max_buffered_body_bytes");
	if (!buffered) {
		if (cfg->limits.max_buffered_body_bytes < cfg->limits.max_body_bytes)
			cfg->limits.max_buffered_body_bytes = cfg->limits.max_body_bytes;
	} else if (buffered->type == GW_NODE_SCALAR &&
	           cfg->limits.max_buffered_body_bytes < cfg->limits.max_body_bytes) {
		bad_value(ld, buffered, "max_buffered_body_bytes", "limits",
		          "%s is below max_body_bytes (%llu bytes): every body allowed must fit",
		          buffered->value, (unsigned long long)cfg->limits.max_body_bytes);
	}
}

/* ---- upstreams --------------------------------------------------------- */

static void server_address(struct loader *ld, const struct gw_node *value, const char *where,
                           void *obj)
{
	struct gw_server_conf *s = obj;

	get_address(ld, value, "address", where, false, &s->address, &s->addr);
}

static const struct field server_fields[] = {
    CUSTOM("address", server_address),
    U32("weight", struct gw_server_conf, weight, 1, 1000, 1),
    FIELDS_END,
};

static void parse_server(struct loader *ld, const struct gw_node *n, size_t i,
                         const char *upstream_where, struct gw_server_conf *s)
{
	char where[192];

	apply_defaults(server_fields, s);
	if (n->type == GW_NODE_SCALAR) {
		get_address(ld, n, "servers", upstream_where, false, &s->address, &s->addr);
		return;
	}
	if (n->type != GW_NODE_MAP) {
		bad_value(ld, n, "servers", upstream_where,
		          "expected an address or a mapping, got %s", gw_node_type_name(n));
		return;
	}
	snprintf(where, sizeof(where), "server %zu of %s", i + 1, upstream_where);
	walk_map(ld, n, where, server_fields, s, NULL);
	if (!gw_node_get(n, "address"))
		missing_key(ld, n, "address", where);
}

static void upstream_servers(struct loader *ld, const struct gw_node *value, const char *where,
                             void *obj)
{
	struct gw_upstream_conf *u = obj;

	if (!want_list(ld, value, "servers", where, "servers"))
		return;
	u->servers = gw_calloc(value->count, sizeof(*u->servers));
	u->nservers = value->count;
	for (size_t i = 0; i < value->count; i++)
		parse_server(ld, value->items[i], i, where, &u->servers[i]);
}

static const char *const balance_names[] = {
    [GW_BALANCE_ROUND_ROBIN] = "round_robin",
    [GW_BALANCE_LEAST_REQUEST] = "least_request",
    [GW_BALANCE_RANDOM] = "random",
};

static void upstream_balance(struct loader *ld, const struct gw_node *value, const char *where,
                             void *obj)
{
	struct gw_upstream_conf *u = obj;

	if (!want_scalar(ld, value, "balance", where, "round_robin, least_request or random"))
		return;
	for (size_t i = 0; i < sizeof(balance_names) / sizeof(balance_names[0]); i++) {
		if (strcmp(value->value, balance_names[i]) == 0) {
			u->balance = (enum gw_balance)i;
			return;
		}
	}
	bad_value(ld, value, "balance", where,
	          "expected round_robin, least_request or random, got '%s'", value->value);
}

static void health_check_path(struct loader *ld, const struct gw_node *value, const char *where,
                              void *obj)
{
	struct gw_health_check_conf *hc = obj;

	if (!want_scalar(ld, value, "path", where, "a path"))
		return;
	if (value->value[0] != '/') {
		bad_value(ld, value, "path", where, "must start with '/', got '%s'", value->value);
		return;
	}
	if (!printable_word(value->value)) {
		bad_value(ld, value, "path", where,
		          "must not contain spaces or control characters");
		return;
	}
	free(hc->path);
	hc->path = gw_strdup(value->value);
}

static const struct field health_check_fields[] = {
    CUSTOM("path", health_check_path),
    DURATION("interval", struct gw_health_check_conf, interval_ms, 1, HOUR, 5 * SEC, "1ms..1h"),
    DURATION("timeout", struct gw_health_check_conf, timeout_ms, 1, HOUR, SEC, "1ms..1h"),
    U32("unhealthy_threshold", struct gw_health_check_conf, unhealthy_threshold, 1, 100, 3),
    U32("healthy_threshold", struct gw_health_check_conf, healthy_threshold, 1, 100, 2),
    FIELDS_END,
};

/*
 * A check must end before the next one starts, so timeout <= interval. The
 * message points at the timeout when the file gives one, else at the
 * interval that the default timeout outgrows. Checked only when both values
 * were read without error: a refused value keeps its default, and comparing
 * against that would be a second message about the same mistake.
 */
static void upstream_health_check(struct loader *ld, const struct gw_node *value, const char *where,
                                  void *obj)
{
	struct gw_upstream_conf *u = obj;
	struct gw_health_check_conf *hc = &u->health_check;
	const struct gw_node *interval, *timeout;
	size_t errors_before = ld->errs->count;
	char hc_where[224];

	if (!want_map(ld, value, "health_check", where))
		return;
	u->has_health_check = true;
	apply_defaults(health_check_fields, hc);
	snprintf(hc_where, sizeof(hc_where), "health_check of %s", where);
	walk_map(ld, value, hc_where, health_check_fields, hc, NULL);
	if (!hc->path)
		hc->path = gw_strdup("/healthz");
	if (ld->errs->count != errors_before || hc->timeout_ms <= hc->interval_ms)
		return;
	interval = gw_node_get(value, "interval");
	timeout = gw_node_get(value, "timeout");
	if (timeout)
		bad_value(ld, timeout, "timeout", hc_where,
		          "%s must not be longer than interval (%s)", timeout->value,
		          interval ? interval->value : "5s, the default");
	else
		bad_value(ld, interval, "interval", hc_where,
		          "%s must not be shorter than timeout (1s, the default)", interval->value);
}

static const struct field outlier_fields[] = {
    U32("consecutive_failures", struct gw_outlier_conf, consecutive_failures, 1, 1000, 5),
    DURATION("base_ejection_time", struct gw_outlier_conf, base_ejection_time_ms, 1, HOUR, 30 * SEC,
             "1ms..1h"),
    U32("max_ejection_percent", struct gw_outlier_conf, max_ejection_percent, 0, 100, 10),
    FIELDS_END,
};

static void upstream_outlier_detection(struct loader *ld, const struct gw_node *value,
                                       const char *where, void *obj)
{
	struct gw_upstream_conf *u = obj;
	char od_where[224];

	if (!want_map(ld, value, "outlier_detection", where))
		return;
	u->has_outlier_detection = true;
	apply_defaults(outlier_fields, &u->outlier_detection);
	snprintf(od_where, sizeof(od_where), "outlier_detection of %s", where);
	walk_map(ld, value, od_where, outlier_fields, &u->outlier_detection, NULL);
}

/* concurrency_limit: adaptive | N | off (the fixed limit is for the whole process). */
static void upstream_concurrency_limit(struct loader *ld, const struct gw_node *value,
                                       const char *where, void *obj)
{
	struct gw_upstream_conf *u = obj;
	uint64_t n;

	if (!want_scalar(ld, value, "concurrency_limit", where, "adaptive, off or a number"))
		return;
	if (strcmp(value->value, "adaptive") == 0) {
		u->climit_mode = GW_CLIMIT_ADAPTIVE;
	} else if (strcmp(value->value, "off") == 0) {
		u->climit_mode = GW_CLIMIT_OFF;
	} else if (value->value[0] >= '0' && value->value[0] <= '9') {
		if (get_uint(ld, value, "concurrency_limit", where, 1, 100000, &n) == 0) {
			u->climit_mode = GW_CLIMIT_FIXED;
			u->climit_fixed = (uint32_t)n;
		}
	} else {
		bad_value(ld, value, "concurrency_limit", where,
		          "expected adaptive, off or a number 1..100000, got '%s'", value->value);
	}
}

/* tls: see listen_tls. */
static void upstream_tls(struct loader *ld, const struct gw_node *value, const char *where,
                         void *obj)
{
	struct gw_upstream_conf *u = obj;
	struct gw_conf_ctx ctx = {.file = ld->file, .errs = ld->errs, .where = where};

	gw_tls_upstream_conf_free(u->tls);
	u->tls = gw_tls_upstream_conf_read(&ctx, value);
}

static const struct field upstream_fields[] = {
    CUSTOM("servers", upstream_servers),
    CUSTOM("concurrency_limit", upstream_concurrency_limit),
    CUSTOM("balance", upstream_balance),
    DURATION("connect_timeout", struct gw_upstream_conf, connect_timeout_ms, 1, MIN, SEC,
             "1ms..1m"),
    U32("max_connections", struct gw_upstream_conf, max_connections, 1, 100000, 256),
    U32("keepalive", struct gw_upstream_conf, keepalive, 0, 10000, 32),
    CUSTOM("health_check", upstream_health_check),
    CUSTOM("outlier_detection", upstream_outlier_detection),
    DURATION("slow_start", struct gw_upstream_conf, slow_start_ms, 0, HOUR, 5 * SEC, "0..1h"),
    CUSTOM("tls", upstream_tls),
    FIELDS_END,
};

static void parse_upstream(struct loader *ld, const struct gw_node *key,
                           const struct gw_node *value, struct gw_upstream_conf *u)
{
	char where[160];

	/* Kept even when invalid, so routes naming it get no second error. */
	u->name = gw_strdup(key->value);
	apply_defaults(upstream_fields, u);
	/* Fewest requests in flight: a server that stalls stops getting new
	 * requests after a few, where round robin keeps sending it its share
	 * until outlier detection ejects it (bench/RESULTS.md). */
	u->balance = GW_BALANCE_LEAST_REQUEST;
	if (!valid_name(key->value))
		error_at(ld, key, "invalid upstream name '%s' (use letters, digits, '_', '.', '-')",
		         key->value);
	snprintf(where, sizeof(where), "upstream '%s'", key->value);
	if (!want_map(ld, value, key->value, "upstreams"))
		return;
	walk_map(ld, value, where, upstream_fields, u, NULL);
	if (!gw_node_get(value, "servers"))
		missing_key(ld, value, "servers", where);
}

static void parse_upstreams(struct loader *ld, const struct gw_node *value, const char *where,
                            void *obj)
{
	struct gw_config *cfg = obj;

	if (!want_map(ld, value, "upstreams", where))
		return;
	if (value->count == 0) {
		bad_value(ld, value, "upstreams", where, "must not be empty");
		return;
	}
	cfg->upstreams = gw_calloc(value->count, sizeof(*cfg->upstreams));
	cfg->nupstreams = value->count;
	for (size_t i = 0; i < value->count; i++) {
		cfg->upstreams[i].index = i;
		parse_upstream(ld, value->keys[i], value->items[i], &cfg->upstreams[i]);
	}
}

/* ---- routes ------------------------------------------------------------ */

static void route_name(struct loader *ld, const struct gw_node *value, const char *where, void *obj)
{
	struct gw_route_conf *r = obj;
	const struct gw_node **names = ld->route_names;

	if (get_string(ld, value, "name", where, &r->name) < 0)
		return;
	if (!gw_config_valid_route_name(value->value)) {
		bad_value(
		    ld, value, "name", where,
		    "invalid route name '%s' (printable ASCII, no '/', no leading or trailing "
		    "space, at most 128 bytes)",
		    value->value);
		return;
	}
	for (size_t i = 0; i < r->index; i++) {
		if (names[i] && strcmp(names[i]->value, value->value) == 0) {
			error_at(ld, value, "duplicate route name '%s' (first defined at %u:%u)",
			         value->value, names[i]->line, names[i]->col);
			return;
		}
	}
	names[r->index] = value;
}

static void match_path_prefix(struct loader *ld, const struct gw_node *value, const char *where,
                              void *obj)
{
	struct gw_route_conf *r = obj;

	if (!want_scalar(ld, value, "path_prefix", where, "a path"))
		return;
	if (value->value[0] != '/') {
		bad_value(ld, value, "path_prefix", where, "must start with '/', got '%s'",
		          value->value);
		return;
	}
	if (!printable_word(value->value)) {
		bad_value(ld, value, "path_prefix", where,
		          "must not contain spaces or control characters");
		return;
	}
	free(r->path_prefix);
	r->path_prefix = gw_strdup(value->value);
}

static void match_host(struct loader *ld, const struct gw_node *value, const char *where, void *obj)
{
	struct gw_route_conf *r = obj;

	if (!want_scalar(ld, value, "host", where, "a host name"))
		return;
	if (!printable_word(value->value) || strchr(value->value, '/')) {
		bad_value(ld, value, "host", where, "invalid host '%s'", value->value);
		return;
	}
	free(r->host);
	r->host = gw_strdup(value->value);
}

static const struct {
	const char *name;
	unsigned bit;
} method_names[] = {
    {"GET", GW_METHOD_GET},     {"HEAD", GW_METHOD_HEAD},     {"POST", GW_METHOD_POST},
    {"PUT", GW_METHOD_PUT},     {"DELETE", GW_METHOD_DELETE}, {"OPTIONS", GW_METHOD_OPTIONS},
    {"PATCH", GW_METHOD_PATCH},
};

static void match_method(struct loader *ld, const struct gw_node *n, const char *where,
                         struct gw_route_conf *r)
{
	if (!want_scalar(ld, n, "methods", where, "a method name"))
		return;
	for (size_t i = 0; i < sizeof(method_names) / sizeof(method_names[0]); i++) {
		if (strcmp(n->value, method_names[i].name) == 0) {
			r->methods |= method_names[i].bit;
			return;
		}
	}
	if (strcmp(n->value, "CONNECT") == 0 || strcmp(n->value, "TRACE") == 0)
		bad_value(ld, n, "methods", where,
		          "%s is not allowed (the gateway refuses CONNECT and TRACE)", n->value);
	else
		bad_value(ld, n, "methods", where,
		          "unknown method '%s' (expected GET, HEAD, POST, PUT, DELETE, OPTIONS "
		          "or PATCH, in upper case)",
		          n->value);
}

static void match_methods(struct loader *ld, const struct gw_node *value, const char *where,
                          void *obj)
{
	if (!want_list(ld, value, "methods", where, "methods"))
		return;
	for (size_t i = 0; i < value->count; i++)
		match_method(ld, value->items[i], where, obj);
}

/*
 * Header names compare case-insensitively, so "X-Tenant" and "x-tenant" are
 * the same condition twice even though YAML sees two different keys.
 */
static void match_headers(struct loader *ld, const struct gw_node *value, const char *where,
                          void *obj)
{
	struct gw_route_conf *r = obj;
	char value_where[224];

	if (!want_map(ld, value, "headers", where))
		return;
	snprintf(value_where, sizeof(value_where), "headers of %s", where);
	r->headers = gw_calloc(value->count ? value->count : 1, sizeof(*r->headers));
	for (size_t i = 0; i < value->count; i++) {
		const struct gw_node *key = value->keys[i], *v = value->items[i];
		bool dup = false;

		if (!valid_token(key->value)) {
			bad_value(ld, key, "headers", where, "invalid header name '%s'",
			          key->value);
			continue;
		}
		for (size_t j = 0; j < i && !dup; j++) {
			if (strcasecmp(value->keys[j]->value, key->value) == 0) {
				error_at(ld, key, "duplicate header '%s' (first defined at %u:%u)",
				         key->value, value->keys[j]->line, value->keys[j]->col);
				dup = true;
			}
		}
		if (dup || v->type != GW_NODE_SCALAR || gw_node_is_null(v)) {
			if (!dup)
				bad_value(ld, v, key->value, value_where,
				          "expected a string, got %s", gw_node_type_name(v));
			continue;
		}
		r->headers[r->nheaders].name = gw_strdup(key->value);
		r->headers[r->nheaders++].value = gw_strdup(v->value);
	}
}

static const struct field match_fields[] = {
    CUSTOM("path_prefix", match_path_prefix),
    CUSTOM("host", match_host),
    CUSTOM("methods", match_methods),
    CUSTOM("headers", match_headers),
    FIELDS_END,
};

static void route_match(struct loader *ld, const struct gw_node *value, const char *where,
                        void *obj)
{
	char match_where[192];

	if (!want_map(ld, value, "match", where))
		return;
	snprintf(match_where, sizeof(match_where), "match of %s", where);
	walk_map(ld, value, match_where, match_fields, obj, NULL);
}

static void route_upstream(struct loader *ld, const struct gw_node *value, const char *where,
                           void *obj)
{
	struct gw_route_conf *r = obj;

	if (want_scalar(ld, value, "upstream", where, "an upstream name"))
		ld->route_upstreams[r->index] = value;
}

/* ---- flag (of a route) ------------------------------------------------- */

static void route_flag_name(struct loader *ld, const struct gw_node *value, const char *where,
                            void *obj)
{
	struct gw_route_flag *f = obj;
	int idx;

	if (get_string(ld, value, "name", where, &f->name) < 0)
		return;
	idx = gw_config_find_flag(ld->cfg, value->value);
	if (idx < 0)
		bad_value(ld, value, "name", where,
		          "flag '%s' has no default in the top-level 'flags' section",
		          value->value);
	else
		f->index = (size_t)idx;
}

static void when_off_status(struct loader *ld, const struct gw_node *value, const char *where,
                            void *obj)
{
	struct gw_route_flag *f = obj;
	uint64_t v;

	if (get_uint(ld, value, "status", where, 400, 599, &v) == 0)
		f->when_off_status = (unsigned)v;
}

/* The name is resolved once every upstream is known (finish_routes). */
static void when_off_upstream(struct loader *ld, const struct gw_node *value, const char *where,
                              void *obj)
{
	(void)obj;
	if (want_scalar(ld, value, "upstream", where, "an upstream name"))
		ld->route_when_off[ld->current_route] = value;
}

static const struct field when_off_fields[] = {
    CUSTOM("status", when_off_status),
    CUSTOM("upstream", when_off_upstream),
    FIELDS_END,
};

static void route_flag_when_off(struct loader *ld, const struct gw_node *value, const char *where,
                                void *obj)
{
	char when_off_where[256];
	bool status, upstream;

	if (!want_map(ld, value, "when_off", where))
		return;
	snprintf(when_off_where, sizeof(when_off_where), "when_off of %s", where);
	walk_map(ld, value, when_off_where, when_off_fields, obj, NULL);
	status = gw_node_get(value, "status") != NULL;
	upstream = gw_node_get(value, "upstream") != NULL;
	if (status && upstream)
		bad_value(ld, value, "when_off", where,
		          "give either 'status' or 'upstream', not both");
	else if (!status && !upstream)
		bad_value(ld, value, "when_off", where, "needs 'status' or 'upstream'");
}

static const struct field route_flag_fields[] = {
    CUSTOM("name", route_flag_name),
    CUSTOM("when_off", route_flag_when_off),
    FIELDS_END,
};

/*
 * flag: {name, when_off: {status: N} | {upstream: NAME}}. The flag must
 * have a default in the top-level `flags` section (read before the
 * routes); when_off defaults to status 404.
 */
static void route_flag(struct loader *ld, const struct gw_node *value, const char *where, void *obj)
{
	struct gw_route_conf *r = obj;
	char flag_where[224];

	if (!want_map(ld, value, "flag", where))
		return;
	snprintf(flag_where, sizeof(flag_where), "flag of %s", where);
	r->flag = gw_calloc(1, sizeof(*r->flag));
	r->flag->when_off_status = 404;
	ld->current_route = r->index;
	walk_map(ld, value, flag_where, route_flag_fields, r->flag, NULL);
	if (!gw_node_get(value, "name"))
		missing_key(ld, value, "name", flag_where);
}

static const char *const priority_names[] = {"critical", "normal", "sheddable"};

const char *gw_priority_name(enum gw_priority p)
{
	return (unsigned)p < GW_PRIORITY_COUNT ? priority_names[p] : "normal";
}

static void route_priority(struct loader *ld, const struct gw_node *value, const char *where,
                           void *obj)
{
	struct gw_route_conf *r = obj;

	if (!want_scalar(ld, value, "priority", where, "critical, normal or sheddable"))
		return;
	for (unsigned i = 0; i < GW_PRIORITY_COUNT; i++) {
		if (strcmp(value->value, priority_names[i]) == 0) {
			r->priority = (enum gw_priority)i;
			return;
		}
	}
	bad_value(ld, value, "priority", where, "expected critical, normal or sheddable, got '%s'",
	          value->value);
}

static const struct field route_fields[] = {
    CUSTOM("name", route_name),
    CUSTOM("priority", route_priority),
    CUSTOM("match", route_match),
    CUSTOM("upstream", route_upstream),
    CUSTOM("flag", route_flag),
    BOOL("strip_prefix", struct gw_route_conf, strip_prefix, false),
    DURATION("timeout", struct gw_route_conf, timeout_ms, 1, HOUR, 15 * SEC, "1ms..1h"),
    FIELDS_END,
};

/*
 * A route key that is not core belongs to a module (modules/module.h): the
 * module parses its own section into a zeroed block the snapshot owns.
 */
static int route_module_key(struct loader *ld, const struct gw_node *key,
                            const struct gw_node *value, const char *where, void *obj)
{
	struct gw_route_conf *r = obj;
	int idx = gw_module_find(key->value);
	const struct gw_module *m;

	if (idx < 0 || idx >= GW_MAX_MODULES)
		return -1;
	m = gw_modules[idx];
	r->module_conf[idx] = gw_calloc(1, m->conf_size);
	if (m->conf_parse)
		m->conf_parse(r->module_conf[idx], value, where, ld->file, ld->errs);
	return 0;
}

static void parse_route(struct loader *ld, const struct gw_node *n, struct gw_route_conf *r)
{
	const struct gw_node *name = gw_node_get(n, "name");
	char where[160];

	apply_defaults(route_fields, r);
	r->priority = GW_PRIORITY_NORMAL;
	if (n->type != GW_NODE_MAP) {
		bad_value(ld, n, "routes", NULL, "expected a mapping for each route, got %s",
		          gw_node_type_name(n));
		return;
	}
	/* Name the route in messages by its name as soon as it has a usable one. */
	if (name && name->type == GW_NODE_SCALAR && valid_name(name->value))
		snprintf(where, sizeof(where), "route '%s'", name->value);
	else
		snprintf(where, sizeof(where), "route %zu", r->index + 1);
	walk_map(ld, n, where, route_fields, r, route_module_key);
	if (!name)
		missing_key(ld, n, "name", where);
	if (!gw_node_get(n, "upstream"))
		missing_key(ld, n, "upstream", where);
}

static void parse_routes(struct loader *ld, const struct gw_node *value, const char *where,
                         void *obj)
{
	struct gw_config *cfg = obj;

	if (!want_list(ld, value, "routes", where, "routes"))
		return;
	cfg->routes = gw_calloc(value->count, sizeof(*cfg->routes));
	cfg->nroutes = value->count;
	ld->route_names = gw_calloc(value->count, sizeof(*ld->route_names));
	ld->route_upstreams = gw_calloc(value->count, sizeof(*ld->route_upstreams));
	ld->route_when_off = gw_calloc(value->count, sizeof(*ld->route_when_off));
	for (size_t i = 0; i < value->count; i++) {
		cfg->routes[i].index = i;
		parse_route(ld, value->items[i], &cfg->routes[i]);
	}
}

/*
 * A flag's when_off upstream, once every upstream is known, and the copy of
 * the route that sends there (config.h, struct gw_route_flag).
 */
static void finish_route_flag(struct loader *ld, struct gw_route_conf *r)
{
	const struct gw_node *up = ld->route_when_off[r->index];
	struct gw_route_flag *f = r->flag;
	char where[224];

	if (!f || !up || !ld->cfg->upstreams)
		return;
	f->when_off_upstream =
	    (struct gw_upstream_conf *)gw_config_find_upstream(ld->cfg, up->value);
	if (!f->when_off_upstream) {
		if (ld->route_names[r->index])
			snprintf(where, sizeof(where), "when_off of flag of route '%s'",
			         ld->route_names[r->index]->value);
		else
			snprintf(where, sizeof(where), "when_off of flag of route %zu",
			         r->index + 1);
		bad_value(ld, up, "upstream", where, "unknown upstream '%s'", up->value);
		return;
	}
	f->when_off_route = gw_malloc(sizeof(*f->when_off_route));
	*f->when_off_route = *r;
	f->when_off_route->upstream = f->when_off_upstream;
	f->when_off_route->flag = NULL;
}

/* Once everything is read: upstream references, defaults, module checks. */
static void finish_routes(struct loader *ld)
{
	struct gw_config *cfg = ld->cfg;

	for (size_t i = 0; i < cfg->nroutes; i++) {
		struct gw_route_conf *r = &cfg->routes[i];
		const struct gw_node *up = ld->route_upstreams[i];
		char where[160];

		if (!r->path_prefix)
			r->path_prefix = gw_strdup("/");
		r->path_prefix_len = strlen(r->path_prefix);
		/* Without usable upstreams, every reference would be one more error
		 * saying the same thing as the one already reported. */
		if (!up || !cfg->upstreams)
			continue;
		r->upstream = (struct gw_upstream_conf *)gw_config_find_upstream(cfg, up->value);
		if (r->upstream)
			continue;
		if (ld->route_names[i])
			snprintf(where, sizeof(where), "route '%s'", ld->route_names[i]->value);
		else
			snprintf(where, sizeof(where), "route %zu", i + 1);
		bad_value(ld, up, "upstream", where, "unknown upstream '%s'", up->value);
	}
	for (size_t i = 0; i < cfg->nroutes; i++)
		finish_route_flag(ld, &cfg->routes[i]);
	for (size_t i = 0; i < cfg->nroutes; i++) {
		for (size_t m = 0; m < gw_modules_count && m < GW_MAX_MODULES; m++) {
			const void *conf = cfg->routes[i].module_conf[m];

			if (conf && gw_modules[m]->conf_check)
				gw_modules[m]->conf_check(conf, &cfg->routes[i], ld->file,
				                          ld->errs);
		}
	}
}

/* ---- redis ------------------------------------------------------------- */

/*
 * redis.address: an IP literal with its port, or a unix socket path
 * (starting with '/'). A host name is refused: hiredis would resolve it
 * with a blocking getaddrinfo on the event loop at every reconnect.
 */
static void redis_address(struct loader *ld, const struct gw_node *value, const char *where,
                          void *obj)
{
	struct gw_redis_conf *rc = obj;
	const char *v, *colon, *why = NULL;
	struct gw_sockaddr sa;
	char ip[INET6_ADDRSTRLEN] = "";

	if (!want_scalar(ld, value, "address", where, "an address IP:PORT or a unix socket path"))
		return;
	v = value->value;
	if (v[0] == '/') {
		if (strlen(v) >= sizeof(((struct sockaddr_un *)NULL)->sun_path)) {
			bad_value(ld, value, "address", where,
			          "unix socket path too long (at most %zu bytes)",
			          sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1);
			return;
		}
		if (!printable_word(v)) {
			bad_value(ld, value, "address", where,
			          "must not contain spaces or control characters");
			return;
		}
		rc->unix_path = gw_strdup(v);
		rc->address = gw_strdup(v);
		return;
	}
	colon = strrchr(v, ':');
	if (v[0] != '[' && colon && !memchr(v, ':', (size_t)(colon - v)) &&
	    strspn(v, "0123456789.") < (size_t)(colon - v)) {
		bad_value(ld, value, "address", where,
		          "'%s' is not an IP address: use \"IP:PORT\" or a unix socket path "
		          "(host names are not resolved for Redis)",
		          v);
		return;
	}
	if (gw_parse_sockaddr(v, &sa, &why) < 0) {
		bad_value(ld, value, "address", where, "invalid address '%s': %s", v, why);
		return;
	}
	if (sa.ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&sa.ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
		rc->port = ntohs(s6->sin6_port);
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)&sa.ss;

		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
		rc->port = ntohs(s4->sin_port);
	}
	rc->host = gw_strdup(ip);
	rc->address = gw_strdup(v);
}

/* The name of an environment variable (letters, digits and '_', not a digit first). */
static void get_env_name(struct loader *ld, const struct gw_node *value, const char *key,
                         const char *where, char **out)
{
	const char *v = value->value;

	if (!want_scalar(ld, value, key, where, "an environment variable name"))
		return;
	if (!((v[0] >= 'A' && v[0] <= 'Z') || (v[0] >= 'a' && v[0] <= 'z') || v[0] == '_') ||
	    v[strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")] !=
	        '\0') {
		bad_value(ld, value, key, where,
		          "invalid environment variable name '%s' (letters, digits and '_')", v);
		return;
	}
	free(*out);
	*out = gw_strdup(v);
}

static void redis_password_env(struct loader *ld, const struct gw_node *value, const char *where,
                               void *obj)
{
	struct gw_redis_conf *rc = obj;

	get_env_name(ld, value, "password_env", where, &rc->password_env);
}

/* Any text without spaces or control characters; '' (no prefix) too. */
static void redis_prefix(struct loader *ld, const struct gw_node *value, const char *where,
                         void *obj)
{
	struct gw_redis_conf *rc = obj;

	if (!want_scalar(ld, value, "prefix", where, "a key prefix"))
		return;
	if (!printable_word(value->value)) {
		bad_value(ld, value, "prefix", where,
		          "must not contain spaces or control characters");
		return;
	}
	free(rc->prefix);
	rc->prefix = gw_strdup(value->value);
}

static void redis_cache_file(struct loader *ld, const struct gw_node *value, const char *where,
                             void *obj)
{
	struct gw_redis_conf *rc = obj;

	get_string(ld, value, "cache_file", where, &rc->cache_file);
}

static const struct field redis_fields[] = {
    CUSTOM("address", redis_address),
    CUSTOM("password_env", redis_password_env),
    CUSTOM("prefix", redis_prefix),
    DURATION("connect_timeout", struct gw_redis_conf, connect_timeout_ms, 1, MIN, 250, "1ms..1m"),
    DURATION("command_timeout", struct gw_redis_conf, command_timeout_ms, 1, MIN, 250, "1ms..1m"),
    DURATION("poll_interval", struct gw_redis_conf, poll_interval_ms, 10, HOUR, 5 * SEC,
             "10ms..1h"),
    CUSTOM("cache_file", redis_cache_file),
    FIELDS_END,
};

static void parse_redis(struct loader *ld, const struct gw_node *value, const char *where,
                        void *obj)
{
	struct gw_config *cfg = obj;

	if (!want_map(ld, value, "redis", where))
		return;
	cfg->has_redis = true;
	apply_defaults(redis_fields, &cfg->redis);
	walk_map(ld, value, "redis", redis_fields, &cfg->redis, NULL);
	if (!cfg->redis.prefix)
		cfg->redis.prefix = gw_strdup("gw:");
	if (!gw_node_get(value, "address"))
		missing_key(ld, value, "address", "redis");
}

/* ---- admin ------------------------------------------------------------ */

static void admin_listen(struct loader *ld, const struct gw_node *value, const char *where,
                         void *obj)
{
	struct gw_admin_conf *ac = obj;

	get_address(ld, value, "listen", where, true, &ac->listen, &ac->addr);
}

static void admin_token_env(struct loader *ld, const struct gw_node *value, const char *where,
                            void *obj)
{
	struct gw_admin_conf *ac = obj;

	get_env_name(ld, value, "token_env", where, &ac->token_env);
}

static const struct field admin_fields[] = {
    CUSTOM("listen", admin_listen),
    CUSTOM("token_env", admin_token_env),
    FIELDS_END,
};

static bool is_loopback(const struct gw_sockaddr *a)
{
	if (a->ss.ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr) >> 24) == 127;
	if (a->ss.ss_family == AF_INET6) {
		const struct in6_addr *in6 = &((const struct sockaddr_in6 *)&a->ss)->sin6_addr;

		return IN6_IS_ADDR_LOOPBACK(in6) ||
		       (IN6_IS_ADDR_V4MAPPED(in6) && in6->s6_addr[12] == 127);
	}
	return false;
}

/*
 * The admin API can force breakers and shed levels and reload the config:
 * anywhere but loopback it needs a token, or anyone who reaches the port
 * steers the gateway.
 */
static void parse_admin(struct loader *ld, const struct gw_node *value, const char *where,
                        void *obj)
{
	struct gw_config *cfg = obj;
	const struct gw_node *listen;
	const char *why;

	if (!gw_node_is_null(value) && !want_map(ld, value, "admin", where))
		return;
	cfg->has_admin = true;
	if (value->type == GW_NODE_MAP)
		walk_map(ld, value, "admin", admin_fields, &cfg->admin, NULL);
	if (!cfg->admin.listen) {
		cfg->admin.listen = gw_strdup("127.0.0.1:9901");
		gw_parse_bind_sockaddr(cfg->admin.listen, &cfg->admin.addr, &why);
	}
	listen = value->type == GW_NODE_MAP ? gw_node_get(value, "listen") : NULL;
	if (listen && cfg->admin.listen && !cfg->admin.token_env && !is_loopback(&cfg->admin.addr))
		bad_value(ld, listen, "listen", "admin",
		          "'%s' is not a loopback address: an admin API reachable from other "
		          "hosts needs a token (set admin.token_env)",
		          listen->value);
}

/* ---- flags and profiles ------------------------------------------------ */

/* on, off, true, false, or a percentage "N%" (0..100). */
static int get_flag_value(struct loader *ld, const struct gw_node *n, const char *key,
                          const char *where, struct gw_flag_value *out)
{
	if (!want_scalar(ld, n, key, where, "on, off or a percentage such as 30%"))
		return -1;
	switch (gw_flag_value_parse(n->value, strlen(n->value), out)) {
	case GW_FLAG_PARSE_OK:
		return 0;
	case GW_FLAG_PARSE_RANGE:
		bad_value(ld, n, key, where, "%s is out of range (0%%..100%%)", n->value);
		return -1;
	case GW_FLAG_PARSE_BAD:
		break;
	}
	bad_value(ld, n, key, where, "expected on, off or a percentage such as 30%%, got '%s'",
	          n->value);
	return -1;
}

/*
 * flags: NAME -> default. Read before the rest of the file, so that routes
 * and profiles anywhere in it can name flags. A flag with a bad value is
 * kept (with the default off) so that routes naming it get no second error.
 */
static void parse_flags(struct loader *ld, const struct gw_node *value, const char *where,
                        void *obj)
{
	struct gw_config *cfg = obj;

	if (ld->flags_parsed)
		return;
	ld->flags_parsed = true;
	if (!want_map(ld, value, "flags", where))
		return;
	cfg->flags = gw_calloc(value->count ? value->count : 1, sizeof(*cfg->flags));
	cfg->nflags = value->count;
	for (size_t i = 0; i < value->count; i++) {
		const struct gw_node *key = value->keys[i];
		struct gw_flag_conf *f = &cfg->flags[i];

		f->name = gw_strdup(key->value);
		f->seed = gw_flag_seed(f->name);
		if (!valid_name(key->value))
			error_at(ld, key,
			         "invalid flag name '%s' (use letters, digits, '_', '.', '-')",
			         key->value);
		get_flag_value(ld, value->items[i], key->value, "flags", &f->def);
	}
}

static void profile_flags(struct loader *ld, const struct gw_node *value, const char *where,
                          void *obj)
{
	struct gw_profile_conf *p = obj;
	char flags_where[224];

	if (!want_map(ld, value, "flags", where))
		return;
	snprintf(flags_where, sizeof(flags_where), "flags of %s", where);
	p->flags = gw_calloc(value->count ? value->count : 1, sizeof(*p->flags));
	for (size_t i = 0; i < value->count; i++) {
		const struct gw_node *key = value->keys[i];
		int idx = gw_config_find_flag(ld->cfg, key->value);
		struct gw_flag_value v;

		if (idx < 0) {
			error_at(ld, key,
			         "unknown flag '%s' in %s: every flag needs a default in the "
			         "top-level 'flags' section",
			         key->value, flags_where);
			continue;
		}
		if (get_flag_value(ld, value->items[i], key->value, flags_where, &v) == 0)
			p->flags[p->nflags++] =
			    (struct gw_profile_flag){.flag = (size_t)idx, .value = v};
	}
}

static void profile_shed_level(struct loader *ld, const struct gw_node *value, const char *where,
                               void *obj)
{
	struct gw_profile_conf *p = obj;
	int level;

	if (!want_scalar(ld, value, "shed_level", where, "auto, 0, 1 or 2"))
		return;
	if (gw_shed_level_parse(value->value, strlen(value->value), &level) < 0)
		bad_value(ld, value, "shed_level", where, "expected auto, 0, 1 or 2, got '%s'",
		          value->value);
	else
		p->shed_level = level;
}

static const struct field profile_fields[] = {
    CUSTOM("flags", profile_flags),
    CUSTOM("shed_level", profile_shed_level),
    FIELDS_END,
};

/* profiles: NAME -> {flags: {NAME: value}, shed_level}. */
static void parse_profiles(struct loader *ld, const struct gw_node *value, const char *where,
                           void *obj)
{
	struct gw_config *cfg = obj;

	if (!want_map(ld, value, "profiles", where))
		return;
	cfg->profiles = gw_calloc(value->count ? value->count : 1, sizeof(*cfg->profiles));
	cfg->nprofiles = value->count;
	for (size_t i = 0; i < value->count; i++) {
		const struct gw_node *key = value->keys[i];
		struct gw_profile_conf *p = &cfg->profiles[i];
		char profile_where[160];

		p->name = gw_strdup(key->value);
		p->shed_level = GW_SHED_LEVEL_AUTO;
		if (!valid_name(key->value))
			error_at(ld, key,
			         "invalid profile name '%s' (use letters, digits, '_', '.', '-')",
			         key->value);
		else if (strcmp(key->value, "none") == 0)
			error_at(ld, key, "profile name 'none' is reserved: it means no profile");
		snprintf(profile_where, sizeof(profile_where), "profile '%s'", key->value);
		if (want_map(ld, value->items[i], key->value, "profiles"))
			walk_map(ld, value->items[i], profile_where, profile_fields, p, NULL);
	}
}

/* ---- the snapshot ------------------------------------------------------ */

static const struct field top_fields[] = {
    CUSTOM("listen", parse_listen),
    CUSTOM("workers", parse_workers),
    DURATION("drain_timeout", struct gw_config, drain_timeout_ms, 0, HOUR, 10 * SEC, "0..1h"),
    CUSTOM("access_log", parse_access_log),
    CUSTOM("limits", parse_limits),
    CUSTOM("shedding", parse_shedding),
    CUSTOM("upstreams", parse_upstreams),
    CUSTOM("routes", parse_routes),
    CUSTOM("admin", parse_admin),
    CUSTOM("redis", parse_redis),
    CUSTOM("flags", parse_flags),
    CUSTOM("profiles", parse_profiles),
    FIELDS_END,
};

static void free_route(struct gw_route_conf *r)
{
	free(r->name);
	free(r->path_prefix);
	free(r->host);
	for (size_t i = 0; i < r->nheaders; i++) {
		free(r->headers[i].name);
		free(r->headers[i].value);
	}
	free(r->headers);
	if (r->flag) {
		free(r->flag->name);
		free(r->flag->when_off_route); /* a shallow copy: its strings are r's */
		free(r->flag);
	}
	for (size_t m = 0; m < gw_modules_count && m < GW_MAX_MODULES; m++) {
		if (!r->module_conf[m])
			continue;
		if (gw_modules[m]->conf_free)
			gw_modules[m]->conf_free(r->module_conf[m]);
		free(r->module_conf[m]);
	}
}

/* Frees a snapshot, complete or abandoned half-way through a load. */
static void config_free(struct gw_config *cfg)
{
	for (size_t i = 0; i < cfg->nlistens; i++) {
		free(cfg->listens[i].address);
		gw_tls_listen_conf_free(cfg->listens[i].tls);
	}
	free(cfg->listens);
	for (size_t i = 0; i < cfg->nupstreams; i++) {
		struct gw_upstream_conf *u = &cfg->upstreams[i];

		for (size_t s = 0; s < u->nservers; s++)
			free(u->servers[s].address);
		free(u->servers);
		free(u->health_check.path);
		free(u->name);
		gw_tls_upstream_conf_free(u->tls);
	}
	free(cfg->upstreams);
	for (size_t i = 0; i < cfg->nroutes; i++)
		free_route(&cfg->routes[i]);
	free(cfg->routes);
	free(cfg->access_log);
	free(cfg->admin.listen);
	free(cfg->admin.token_env);
	free(cfg->redis.address);
	free(cfg->redis.host);
	free(cfg->redis.unix_path);
	free(cfg->redis.password_env);
	free(cfg->redis.prefix);
	free(cfg->redis.cache_file);
	for (size_t i = 0; i < cfg->nflags; i++)
		free(cfg->flags[i].name);
	free(cfg->flags);
	for (size_t i = 0; i < cfg->nprofiles; i++) {
		free(cfg->profiles[i].name);
		free(cfg->profiles[i].flags);
	}
	free(cfg->profiles);
	free(cfg->file);
	free(cfg);
}

static struct gw_config *config_from_doc(const struct gw_yaml_doc *doc, struct gw_errlist *errs)
{
	struct gw_config *cfg = gw_calloc(1, sizeof(*cfg));
	struct loader ld = {.file = doc->file, .errs = errs, .cfg = cfg};
	const struct gw_node *root = doc->root;
	size_t errors_before = errs->count;

	atomic_init(&cfg->refs, 1);
	cfg->file = gw_strdup(doc->file);
	cfg->workers = online_cpus();
	cfg->access_log = gw_strdup("stdout");
	apply_defaults(top_fields, cfg);
	apply_defaults(limits_fields, &cfg->limits);
	apply_defaults(shedding_fields, &cfg->shedding);

	if (root->type != GW_NODE_MAP) {
		error_at(&ld, root, "top level must be a mapping, got %s", gw_node_type_name(root));
	} else {
		const struct gw_node *flags = gw_node_get(root, "flags");

		if (flags)
			parse_flags(&ld, flags, NULL, cfg);
		walk_map(&ld, root, NULL, top_fields, cfg, NULL);
		if (!gw_node_get(root, "listen"))
			default_listen(cfg);
		if (!gw_node_get(root, "upstreams"))
			missing_key(&ld, root, "upstreams", NULL);
		if (!gw_node_get(root, "routes"))
			missing_key(&ld, root, "routes", NULL);
		finish_routes(&ld);
	}
	free(ld.route_names);
	free(ld.route_upstreams);
	free(ld.route_when_off);
	if (doc->nerrors || errs->count != errors_before) {
		config_free(cfg);
		return NULL;
	}
	return cfg;
}

/* An error message and where it points, for sorting. */
struct sorted_error {
	unsigned long line, col;
	size_t seq;
	char *text;
};

static int sorted_error_cmp(const void *pa, const void *pb)
{
	const struct sorted_error *a = pa, *b = pb;

	if (a->line != b->line)
		return a->line < b->line ? -1 : 1;
	if (a->col != b->col)
		return a->col < b->col ? -1 : 1;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/*
 * Puts errors[first..] in file order. They are found in several passes (the
 * YAML reader, the walk, the checks made at the end, the modules), but an
 * operator reads them against the file, top to bottom. Errors at the same
 * place keep the order they were found in; a message without a position
 * goes last.
 */
static void sort_errors(struct gw_errlist *errs, size_t first, const char *file)
{
	size_t n = errs->count - first, flen = strlen(file);
	struct sorted_error *e;

	if (n < 2)
		return;
	e = gw_malloc(n * sizeof(*e));
	for (size_t i = 0; i < n; i++) {
		char *text = errs->items[first + i], *end;

		e[i] = (struct sorted_error){
		    .line = ULONG_MAX, .col = ULONG_MAX, .seq = i, .text = text};
		if (strncmp(text, file, flen) != 0 || text[flen] != ':')
			continue;
		e[i].line = strtoul(text + flen + 1, &end, 10);
		if (*end == ':')
			e[i].col = strtoul(end + 1, NULL, 10);
	}
	qsort(e, n, sizeof(*e), sorted_error_cmp);
	for (size_t i = 0; i < n; i++)
		errs->items[first + i] = e[i].text;
	free(e);
}

/* 64-bit FNV-1a of the file's bytes, in hex: which version of the file runs. */
static void hash_file(const char *file, char out[17])
{
	uint64_t h = 0xcbf29ce484222325ULL;
	unsigned char buf[8192];
	FILE *f = fopen(file, "rb");
	size_t n;

	out[0] = '\0';
	if (!f)
		return;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		for (size_t i = 0; i < n; i++)
			h = (h ^ buf[i]) * 0x100000001b3ULL;
	fclose(f);
	snprintf(out, 17, "%016llx", (unsigned long long)h);
}

struct gw_config *gw_config_load(const char *file, struct gw_errlist *errs)
{
	struct gw_yaml_doc doc;
	struct gw_config *cfg = NULL;
	size_t first = errs->count;

	if (gw_yaml_load(file, &doc, errs) == 0) {
		cfg = config_from_doc(&doc, errs);
		gw_yaml_free(&doc);
	}
	sort_errors(errs, first, file);
	if (cfg)
		hash_file(file, cfg->hash);
	return cfg;
}

struct gw_config *gw_config_load_string(const char *name, const char *yaml, struct gw_errlist *errs)
{
	struct gw_yaml_doc doc;
	struct gw_config *cfg = NULL;
	size_t first = errs->count;

	if (gw_yaml_load_string(name, yaml, strlen(yaml), &doc, errs) == 0) {
		cfg = config_from_doc(&doc, errs);
		gw_yaml_free(&doc);
	}
	sort_errors(errs, first, name);
	return cfg;
}

struct gw_config *gw_config_ref(struct gw_config *config)
{
	if (config)
		atomic_fetch_add_explicit(&config->refs, 1, memory_order_relaxed);
	return config;
}

void gw_config_unref(struct gw_config *config)
{
	/* acq_rel: the last owner must see every write made through the others. */
	if (config && atomic_fetch_sub_explicit(&config->refs, 1, memory_order_acq_rel) == 1)
		config_free(config);
}

const struct gw_upstream_conf *gw_config_find_upstream(const struct gw_config *config,
                                                       const char *name)
{
	if (!config || !name)
		return NULL;
	for (size_t i = 0; i < config->nupstreams; i++)
		if (config->upstreams[i].name && strcmp(config->upstreams[i].name, name) == 0)
			return &config->upstreams[i];
	return NULL;
}

int gw_config_find_flag(const struct gw_config *config, const char *name)
{
	for (size_t i = 0; config && name && i < config->nflags; i++)
		if (config->flags[i].name && strcmp(config->flags[i].name, name) == 0)
			return (int)i;
	return -1;
}

int gw_config_find_profile(const struct gw_config *config, const char *name)
{
	for (size_t i = 0; config && name && i < config->nprofiles; i++)
		if (config->profiles[i].name && strcmp(config->profiles[i].name, name) == 0)
			return (int)i;
	return -1;
}
