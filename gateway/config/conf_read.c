/*
 * Typed reads of YAML values for modules (conf_read.h).
 *
 * The messages are the core loader's, word for word, so an operator cannot
 * tell a module's section from a core one by the way its errors read. The
 * core loader keeps its own copies of these helpers (they are static there);
 * when one side changes a message, the other should follow.
 */
#include "conf_read.h"
#include "units.h"
#include "../util/alloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void gw_conf_ctx_enter(const struct gw_conf_ctx *ctx, const char *section, struct gw_conf_ctx *sub,
                       char buf[GW_CONF_WHERE_MAX])
{
	if (ctx->where)
		snprintf(buf, GW_CONF_WHERE_MAX, "%s of %s", section, ctx->where);
	else
		snprintf(buf, GW_CONF_WHERE_MAX, "%s", section);
	sub->file = ctx->file;
	sub->errs = ctx->errs;
	sub->where = buf;
}

/* ---- messages ---------------------------------------------------------- */

void gw_conf_error(const struct gw_conf_ctx *ctx, const struct gw_node *node, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	gw_errlist_add(ctx->errs, "%s:%u:%u: %s", ctx->file, node->line, node->col, msg);
}

void gw_conf_bad_value(const struct gw_conf_ctx *ctx, const struct gw_node *node, const char *key,
                       const char *fmt, ...)
{
	char msg[640];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (ctx->where)
		gw_conf_error(ctx, node, "'%s' in %s: %s", key, ctx->where, msg);
	else
		gw_conf_error(ctx, node, "'%s': %s", key, msg);
}

void gw_conf_missing_key(const struct gw_conf_ctx *ctx, const struct gw_node *map, const char *key)
{
	if (ctx->where)
		gw_conf_error(ctx, map, "missing required key '%s' in %s", key, ctx->where);
	else
		gw_conf_error(ctx, map, "missing required key '%s' at top level", key);
}

static void unknown_key(const struct gw_conf_ctx *ctx, const struct gw_node *key)
{
	gw_conf_error(ctx, key, "unknown key '%s' %s%s", key->value,
	              ctx->where ? "in " : "at top level", ctx->where ? ctx->where : "");
}

int gw_conf_check_keys(const struct gw_conf_ctx *ctx, const struct gw_node *map,
                       const char *const allowed[])
{
	int rc = 0;

	for (size_t i = 0; i < map->count; i++) {
		const struct gw_node *key = map->keys[i];
		const char *const *a = allowed;

		while (*a && strcmp(*a, key->value) != 0)
			a++;
		if (*a)
			continue;
		unknown_key(ctx, key);
		rc = -1;
	}
	return rc;
}

/* ---- shapes ------------------------------------------------------------ */

bool gw_conf_want_map(const struct gw_conf_ctx *ctx, const struct gw_node *node, const char *key)
{
	if (node->type == GW_NODE_MAP)
		return true;
	gw_conf_bad_value(ctx, node, key, "expected a mapping, got %s", gw_node_type_name(node));
	return false;
}

bool gw_conf_want_list(const struct gw_conf_ctx *ctx, const struct gw_node *node, const char *key,
                       const char *what)
{
	if (node->type != GW_NODE_SEQ) {
		gw_conf_bad_value(ctx, node, key, "expected a list of %s, got %s", what,
		                  gw_node_type_name(node));
		return false;
	}
	if (node->count == 0) {
		gw_conf_bad_value(ctx, node, key, "must not be empty");
		return false;
	}
	return true;
}

bool gw_conf_want_scalar(const struct gw_conf_ctx *ctx, const struct gw_node *node, const char *key,
                         const char *what)
{
	if (node->type == GW_NODE_SCALAR && !gw_node_is_null(node))
		return true;
	gw_conf_bad_value(ctx, node, key, "expected %s, got %s", what, gw_node_type_name(node));
	return false;
}

/* ---- numbers ----------------------------------------------------------- */

/*
 * Plain decimal only. 0 when *v is set; -1 when the text is not an integer;
 * -2 when it is one that no range can hold (negative or over 64 bits), so
 * the message can say "out of range" rather than "not a number".
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

int gw_conf_uint(const struct gw_conf_ctx *ctx, const struct gw_node *node, const char *key,
                 uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	int rc;

	if (!gw_conf_want_scalar(ctx, node, key, "an integer"))
		return -1;
	rc = parse_uint(node->value, &v);
	if (rc == -1) {
		gw_conf_bad_value(ctx, node, key, "expected an integer, got '%s'", node->value);
		return -1;
	}
	if (rc == -2 || v < min || v > max) {
		gw_conf_bad_value(ctx, node, key, "%s is out of range (%llu..%llu)", node->value,
		                  (unsigned long long)min, (unsigned long long)max);
		return -1;
	}
	*out = v;
	return 0;
}

int gw_conf_u32(const struct gw_conf_ctx *ctx, const struct gw_node *node, const char *key,
                uint32_t min, uint32_t max, uint32_t *out)
{
	uint64_t v;

	if (gw_conf_uint(ctx, node, key, min, max, &v) < 0)
		return -1;
	*out = (uint32_t)v;
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
static int unit_value(const struct gw_conf_ctx *ctx, const struct gw_node *node, const char *key,
                      int (*parse)(const char *, uint64_t *), const char *kind, uint64_t min,
                      uint64_t max, const char *range, uint64_t *out)
{
	uint64_t v;

	if (!gw_conf_want_scalar(ctx, node, key, kind))
		return -1;
	if (parse(node->value, &v) < 0) {
		if (unit_overflowed(node->value, parse))
			gw_conf_bad_value(ctx, node, key, "%s is out of range (%s)", node->value,
			                  range);
		else
			gw_conf_bad_value(ctx, node, key, "expected %s, got '%s'", kind,
			                  node->value);
		return -1;
	}
	if (v < min || v > max) {
		gw_conf_bad_value(ctx, node, key, "%s is out of range (%s)", node->value, range);
		return -1;
	}
	*out = v;
	return 0;
}

int gw_conf_duration(const struct gw_conf_ctx *ctx, const struct gw_node *node, const char *key,
                     uint64_t min_ms, uint64_t max_ms, uint64_t *out)
{
	char lo[32], hi[32], range[72];

	snprintf(range, sizeof(range), "%s..%s", gw_conf_format_duration(min_ms, lo, sizeof(lo)),
	         gw_conf_format_duration(max_ms, hi, sizeof(hi)));
	return unit_value(ctx, node, key, gw_parse_duration_ms,
	                  "a duration such as 250ms, 2s, 1m or 1h", min_ms, max_ms, range, out);
}

int gw_conf_size(const struct gw_conf_ctx *ctx, const struct gw_node *node, const char *key,
                 uint64_t min, uint64_t max, uint64_t *out)
{
	char lo[32], hi[32], range[72];

	snprintf(range, sizeof(range), "%s..%s", gw_conf_format_size(min, lo, sizeof(lo)),
	         gw_conf_format_size(max, hi, sizeof(hi)));
	return unit_value(ctx, node, key, gw_parse_size, "a size such as 512, 16k or 8m", min, max,
	                  range, out);
}

/*
 * Digits with an optional fraction: the only numbers a ratio needs. strtod
 * alone would also take " 1", "+1", "1e3", "0x1p3", "inf" and "nan", none
 * of which an operator means. A leading '-' is read as a number, so the
 * message can say "out of range" rather than "not a number".
 */
static bool plain_decimal(const char *s)
{
	size_t n;

	if (*s == '-')
		s++;
	n = strspn(s, "0123456789");
	if (n == 0)
		return false;
	s += n;
	if (*s == '.') {
		s++;
		n = strspn(s, "0123456789");
		if (n == 0)
			return false;
		s += n;
	}
	return *s == '\0';
}

int gw_conf_double(const struct gw_conf_ctx *ctx, const struct gw_node *node, const char *key,
                   double min, double max, bool min_exclusive, double *out)
{
	double v;

	if (!gw_conf_want_scalar(ctx, node, key, "a number"))
		return -1;
	if (!plain_decimal(node->value)) {
		gw_conf_bad_value(ctx, node, key, "expected a number, got '%s'", node->value);
		return -1;
	}
	v = strtod(node->value, NULL);
	if (v < min || v > max || (min_exclusive && v == min)) {
		if (min_exclusive)
			gw_conf_bad_value(ctx, node, key,
			                  "%s is out of range (more than %g, at most %g)",
			                  node->value, min, max);
		else
			gw_conf_bad_value(ctx, node, key, "%s is out of range (%g..%g)",
			                  node->value, min, max);
		return -1;
	}
	*out = v;
	return 0;
}

/* ---- words ------------------------------------------------------------- */

int gw_conf_bool(const struct gw_conf_ctx *ctx, const struct gw_node *node, const char *key,
                 bool *out)
{
	if (!gw_conf_want_scalar(ctx, node, key, "true or false"))
		return -1;
	if (strcmp(node->value, "true") == 0) {
		*out = true;
		return 0;
	}
	if (strcmp(node->value, "false") == 0) {
		*out = false;
		return 0;
	}
	gw_conf_bad_value(ctx, node, key, "expected true or false, got '%s'", node->value);
	return -1;
}

/* "a, b or c" into buf. */
static const char *names_text(const char *const names[], size_t count, char *buf, size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < count && len < size; i++) {
		const char *sep = i == 0 ? "" : i + 1 == count ? " or " : ", ";
		int n = snprintf(buf + len, size - len, "%s%s", sep, names[i]);

		if (n < 0)
			break;
		len += (size_t)n;
	}
	return buf;
}

int gw_conf_enum(const struct gw_conf_ctx *ctx, const struct gw_node *node, const char *key,
                 const char *const names[], size_t count, unsigned *out)
{
	char expected[256];

	names_text(names, count, expected, sizeof(expected));
	if (!gw_conf_want_scalar(ctx, node, key, expected))
		return -1;
	for (size_t i = 0; i < count; i++) {
		if (strcmp(node->value, names[i]) == 0) {
			*out = (unsigned)i;
			return 0;
		}
	}
	gw_conf_bad_value(ctx, node, key, "expected %s, got '%s'", expected, node->value);
	return -1;
}

int gw_conf_string(const struct gw_conf_ctx *ctx, const struct gw_node *node, const char *key,
                   bool allow_empty, char **out)
{
	/* A null (nothing, "~", "null") is never a string; '' is the empty one. */
	if (node->type != GW_NODE_SCALAR || gw_node_is_null(node)) {
		gw_conf_bad_value(ctx, node, key, "expected a string, got %s",
		                  gw_node_type_name(node));
		return -1;
	}
	if (node->value[0] == '\0' && !allow_empty) {
		gw_conf_bad_value(ctx, node, key, "must not be empty");
		return -1;
	}
	free(*out);
	*out = gw_strdup(node->value);
	return 0;
}

int gw_conf_string_list(const struct gw_conf_ctx *ctx, const struct gw_node *node, const char *key,
                        char ***out, size_t *count)
{
	char **items;
	int rc = 0;

	if (!gw_conf_want_list(ctx, node, key, "strings"))
		return -1;
	for (size_t i = 0; i < node->count; i++) {
		const struct gw_node *item = node->items[i];

		if (!gw_conf_want_scalar(ctx, item, key, "a string"))
			rc = -1;
		else if (item->value[0] == '\0') {
			gw_conf_bad_value(ctx, item, key, "must not contain empty strings");
			rc = -1;
		}
	}
	if (rc < 0)
		return -1;
	items = gw_calloc(node->count, sizeof(*items));
	for (size_t i = 0; i < node->count; i++)
		items[i] = gw_strdup(node->items[i]->value);
	*out = items;
	*count = node->count;
	return 0;
}

void gw_conf_strings_free(char **items, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(items[i]);
	free(items);
}

/* ---- tables of keys ---------------------------------------------------- */

void gw_conf_apply_defaults(const struct gw_conf_field *fields, void *obj)
{
	for (const struct gw_conf_field *f = fields; f->key; f++) {
		char *p = (char *)obj + f->offset;

		switch (f->kind) {
		case GW_CONF_U32:
			*(uint32_t *)p = (uint32_t)f->def;
			break;
		case GW_CONF_UINT64:
		case GW_CONF_DURATION:
		case GW_CONF_SIZE:
			*(uint64_t *)p = f->def;
			break;
		case GW_CONF_DOUBLE:
			*(double *)p = f->ddef;
			break;
		case GW_CONF_BOOL:
			*(bool *)p = f->def != 0;
			break;
		case GW_CONF_ENUM:
			*(unsigned *)p = (unsigned)f->def;
			break;
		case GW_CONF_STRING:
			free(*(char **)p);
			*(char **)p = f->sdef ? gw_strdup(f->sdef) : NULL;
			break;
		case GW_CONF_MAP:
			gw_conf_apply_defaults(f->fields, p);
			break;
		case GW_CONF_CUSTOM:
			break;
		}
	}
}

static int read_map(const struct gw_conf_ctx *ctx, const struct gw_node *map,
                    const struct gw_conf_field *fields, void *obj);

/* One written key, by its line of the table. */
static int read_value(const struct gw_conf_ctx *ctx, const struct gw_conf_field *f,
                      const struct gw_node *value, void *obj)
{
	char *p = (char *)obj + f->offset;
	struct gw_conf_ctx sub;
	char where[GW_CONF_WHERE_MAX];

	switch (f->kind) {
	case GW_CONF_U32:
		return gw_conf_u32(ctx, value, f->key, (uint32_t)f->min, (uint32_t)f->max,
		                   (uint32_t *)p);
	case GW_CONF_UINT64:
		return gw_conf_uint(ctx, value, f->key, f->min, f->max, (uint64_t *)p);
	case GW_CONF_DURATION:
		return gw_conf_duration(ctx, value, f->key, f->min, f->max, (uint64_t *)p);
	case GW_CONF_SIZE:
		return gw_conf_size(ctx, value, f->key, f->min, f->max, (uint64_t *)p);
	case GW_CONF_DOUBLE:
		return gw_conf_double(ctx, value, f->key, f->dmin, f->dmax, f->min_exclusive,
		                      (double *)p);
	case GW_CONF_BOOL:
		return gw_conf_bool(ctx, value, f->key, (bool *)p);
	case GW_CONF_ENUM:
		return gw_conf_enum(ctx, value, f->key, f->names, f->count, (unsigned *)p);
	case GW_CONF_STRING:
		return gw_conf_string(ctx, value, f->key, f->allow_empty, (char **)p);
	case GW_CONF_MAP:
		if (!gw_conf_want_map(ctx, value, f->key))
			return -1;
		gw_conf_ctx_enter(ctx, f->key, &sub, where);
		return read_map(&sub, value, f->fields, p);
	case GW_CONF_CUSTOM:
		return f->read(ctx, value, f->key, obj);
	}
	return -1;
}

/*
 * Steps 2 to 4 of gw_conf_read_table (the defaults are set once, for the
 * nested tables too, before the outermost mapping is read).
 */
static int read_map(const struct gw_conf_ctx *ctx, const struct gw_node *map,
                    const struct gw_conf_field *fields, void *obj)
{
	struct gw_conf_section s = {.ctx = ctx, .map = map, .fields = fields, .obj = obj};
	size_t before = ctx->errs->count, n = 0;

	while (fields[n].key)
		n++;
	if (n > GW_CONF_FIELDS_MAX) {
		/* a programming error, found by the first read of the table */
		fprintf(stderr, "gateway: a config table has %zu keys, at most %d\n", n,
		        GW_CONF_FIELDS_MAX);
		abort();
	}
	for (size_t i = 0; i < map->count; i++) {
		const struct gw_node *key = map->keys[i];
		size_t errors = ctx->errs->count, k = 0;

		while (k < n && strcmp(fields[k].key, key->value) != 0)
			k++;
		if (k == n) {
			unknown_key(ctx, key);
			continue;
		}
		if (read_value(ctx, &fields[k], map->items[i], obj) < 0 ||
		    ctx->errs->count != errors)
			s.refused |= 1ull << k;
	}
	for (size_t k = 0; k < n; k++)
		if (fields[k].required && !gw_node_get(map, fields[k].key))
			gw_conf_missing_key(ctx, map, fields[k].key);
	if (fields[n].check)
		fields[n].check(&s);
	return ctx->errs->count == before ? 0 : -1;
}

int gw_conf_read_table(const struct gw_conf_ctx *ctx, const struct gw_node *node,
                       const struct gw_conf_field *fields, void *obj)
{
	gw_conf_apply_defaults(fields, obj);
	if (node->type != GW_NODE_MAP) {
		gw_conf_error(ctx, node, "expected a mapping, got %s", gw_node_type_name(node));
		return -1;
	}
	return read_map(ctx, node, fields, obj);
}

const struct gw_node *gw_conf_section_value(const struct gw_conf_section *s, const char *key)
{
	return gw_node_get(s->map, key);
}

bool gw_conf_section_refused(const struct gw_conf_section *s, const char *key)
{
	for (size_t k = 0; s->fields[k].key; k++)
		if (strcmp(s->fields[k].key, key) == 0)
			return (s->refused >> k) & 1;
	return false;
}

/* ---- spelling values back ---------------------------------------------- */

const char *gw_conf_format_duration(uint64_t ms, char *buf, size_t size)
{
	static const struct {
		uint64_t factor;
		const char *unit;
	} units[] = {{3600000, "h"}, {60000, "m"}, {1000, "s"}};

	if (ms == 0) {
		snprintf(buf, size, "0");
		return buf;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (ms % units[i].factor == 0) {
			snprintf(buf, size, "%llu%s", (unsigned long long)(ms / units[i].factor),
			         units[i].unit);
			return buf;
		}
	}
	snprintf(buf, size, "%llums", (unsigned long long)ms);
	return buf;
}

const char *gw_conf_format_size(uint64_t bytes, char *buf, size_t size)
{
	if (bytes != 0 && bytes % (1024 * 1024) == 0)
		snprintf(buf, size, "%llum", (unsigned long long)(bytes / (1024 * 1024)));
	else if (bytes != 0 && bytes % 1024 == 0)
		snprintf(buf, size, "%lluk", (unsigned long long)(bytes / 1024));
	else
		snprintf(buf, size, "%llu", (unsigned long long)bytes);
	return buf;
}
