/*
 * The cache file (flag_cache.h): a tiny JSON writer and reader for the one
 * shape the file has.
 */
#include "flag_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../gateway/util/alloc.h"
#include "../../gateway/util/clock.h"

#define CACHE_VERSION  1
#define CACHE_MAX_SIZE (1024 * 1024)
#define JSON_MAX_DEPTH 8

/* ---- writing ------------------------------------------------------------- */

/* A JSON string; names and values are plain ASCII here, but escape anyway. */
static void put_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static void put_op(FILE *f, const char *value, int64_t expires_ms)
{
	fputs("{\"value\":", f);
	put_string(f, value);
	fprintf(f, ",\"expires_ms\":%lld}", (long long)expires_ms);
}

static const char *force_name(enum gw_breaker_force force)
{
	return force == GW_BREAKER_FORCE_OPEN ? "open" : "closed";
}

static void put_layer(FILE *f, const struct gw_config *config, const struct gw_flags_layer *l)
{
	char when[40], value[GW_FLAG_VALUE_TEXT];
	bool first = true;

	gw_clock_iso8601(when, sizeof(when));
	fprintf(f, "{\"version\":%d,\"written\":", CACHE_VERSION);
	put_string(f, when);
	fputs(",\n\"flags\":{", f);
	for (size_t i = 0; i < l->nflags; i++) {
		if (!l->has_flag[i])
			continue;
		fputs(first ? "" : ",", f);
		first = false;
		put_string(f, config->flags[i].name);
		fputc(':', f);
		put_string(f, gw_flag_value_format(l->flags[i], value, sizeof(value)));
	}
	fputs("}", f);
	if (l->has_shed_level) {
		fputs(",\n\"shed_level\":", f);
		put_op(f, gw_shed_level_name(l->shed_level), l->shed_expires_ms);
	}
	if (l->has_profile) {
		fputs(",\n\"profile\":", f);
		put_op(f, config->profiles[l->profile].name, l->profile_expires_ms);
	}
	fputs(",\n\"breakers\":{", f);
	first = true;
	for (size_t r = 0; r < l->nroutes; r++) {
		if (!l->has_breaker[r])
			continue;
		fputs(first ? "" : ",", f);
		first = false;
		put_string(f, config->routes[r].name);
		fputc(':', f);
		put_op(f, force_name(l->breakers[r]), l->breaker_expires_ms[r]);
	}
	fputs("}}\n", f);
}

/* The directory entry of the rename must reach the disk too. */
static void sync_dir_of(const char *path)
{
	char *copy = gw_strdup(path);
	int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	free(copy);
}

int gw_flags_cache_write(const char *path, const struct gw_config *config,
                         const struct gw_flags_layer *layer, char *why, size_t why_size)
{
	size_t len = strlen(path);
	char *tmp = gw_malloc(len + 8);
	FILE *f = NULL;
	int fd;

	snprintf(tmp, len + 8, "%s.XXXXXX", path);
	fd = mkstemp(tmp);
	if (fd < 0) {
		snprintf(why, why_size, "cannot create a temporary file next to %s: %s", path,
		         strerror(errno));
		free(tmp);
		return -1;
	}
	fchmod(fd, 0644);
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		goto fail;
	}
	put_layer(f, config, layer);
	if (fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0)
		goto fail;
	if (fclose(f) != 0) {
		f = NULL;
		goto fail;
	}
	f = NULL;
	if (rename(tmp, path) != 0)
		goto fail;
	sync_dir_of(path);
	free(tmp);
	return 0;
fail:
	snprintf(why, why_size, "cannot write %s: %s", path, strerror(errno));
	if (f)
		fclose(f);
	unlink(tmp);
	free(tmp);
	return -1;
}

/* ---- a small JSON reader ------------------------------------------------ */

enum json_type { JSON_NULL = 0, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_OBJECT, JSON_ARRAY };

/* A parsed value. Owns its strings and children; json_free releases them. */
struct json {
	enum json_type type;
	char *str;          /* JSON_STRING */
	long long number;   /* JSON_NUMBER: integers only */
	char **keys;        /* JSON_OBJECT */
	struct json *items; /* JSON_OBJECT, JSON_ARRAY */
	size_t count;
};

/* Borrows the text being parsed (p..end), which outlives the parser. */
struct json_parser {
	const char *p, *end;
	const char *error; /* first error, static text */
};

static void json_free(struct json *j)
{
	free(j->str);
	for (size_t i = 0; i < j->count; i++) {
		if (j->keys)
			free(j->keys[i]);
		json_free(&j->items[i]);
	}
	free(j->keys);
	free(j->items);
	memset(j, 0, sizeof(*j));
}

static void skip_space(struct json_parser *jp)
{
	while (jp->p < jp->end &&
	       (*jp->p == ' ' || *jp->p == '\t' || *jp->p == '\n' || *jp->p == '\r'))
		jp->p++;
}

static int fail(struct json_parser *jp, const char *error)
{
	if (!jp->error)
		jp->error = error;
	return -1;
}

static int hex4(const char *p, unsigned *out)
{
	unsigned v = 0;

	for (int i = 0; i < 4; i++) {
		char c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* A string after its opening quote; \u escapes of the BMP become UTF-8. */
static int parse_string(struct json_parser *jp, char **out)
{
	size_t cap = 16, n = 0;
	char *s = gw_malloc(cap);

	for (;;) {
		unsigned ch;

		if (jp->p >= jp->end) {
			free(s);
			return fail(jp, "unterminated string");
		}
		ch = (unsigned char)*jp->p++;
		if (n + 4 >= cap)
			s = gw_realloc(s, cap *= 2);
		if (ch == '"')
			break;
		if (ch < 0x20) {
			free(s);
			return fail(jp, "control character in a string");
		}
		if (ch != '\\') {
			s[n++] = (char)ch;
			continue;
		}
		if (jp->p >= jp->end) {
			free(s);
			return fail(jp, "unterminated string");
		}
		ch = (unsigned char)*jp->p++;
		switch (ch) {
		case '"':
		case '\\':
		case '/':
			s[n++] = (char)ch;
			break;
		case 'b':
			s[n++] = '\b';
			break;
		case 'f':
			s[n++] = '\f';
			break;
		case 'n':
			s[n++] = '\n';
			break;
		case 'r':
			s[n++] = '\r';
			break;
		case 't':
			s[n++] = '\t';
			break;
		case 'u':
			if (jp->end - jp->p < 4 || hex4(jp->p, &ch) < 0 || ch == 0) {
				free(s);
				return fail(jp, "bad \\u escape");
			}
			jp->p += 4;
			if (ch < 0x80) {
				s[n++] = (char)ch;
			} else if (ch < 0x800) {
				s[n++] = (char)(0xc0 | (ch >> 6));
				s[n++] = (char)(0x80 | (ch & 0x3f));
			} else {
				s[n++] = (char)(0xe0 | (ch >> 12));
				s[n++] = (char)(0x80 | ((ch >> 6) & 0x3f));
				s[n++] = (char)(0x80 | (ch & 0x3f));
			}
			break;
		default:
			free(s);
			return fail(jp, "bad escape in a string");
		}
	}
	s[n] = '\0';
	*out = s;
	return 0;
}

static int parse_value(struct json_parser *jp, struct json *out, int depth);

/* An object or an array after its opening bracket. */
static int parse_container(struct json_parser *jp, struct json *out, int depth, bool object)
{
	char close = object ? '}' : ']';
	size_t cap = 0;

	out->type = object ? JSON_OBJECT : JSON_ARRAY;
	skip_space(jp);
	if (jp->p < jp->end && *jp->p == close) {
		jp->p++;
		return 0;
	}
	for (;;) {
		if (out->count == cap) {
			cap = cap ? cap * 2 : 4;
			out->items = gw_realloc(out->items, cap * sizeof(*out->items));
			if (object)
				out->keys = gw_realloc(out->keys, cap * sizeof(*out->keys));
		}
		memset(&out->items[out->count], 0, sizeof(out->items[0]));
		if (object) {
			out->keys[out->count] = NULL;
			skip_space(jp);
			if (jp->p >= jp->end || *jp->p != '"')
				return fail(jp, "expected a key");
			jp->p++;
			if (parse_string(jp, &out->keys[out->count]) < 0)
				return -1;
			skip_space(jp);
			if (jp->p >= jp->end || *jp->p != ':') {
				out->count++;
				return fail(jp, "expected ':'");
			}
			jp->p++;
		}
		out->count++;
		if (parse_value(jp, &out->items[out->count - 1], depth + 1) < 0)
			return -1;
		skip_space(jp);
		if (jp->p < jp->end && *jp->p == ',') {
			jp->p++;
			continue;
		}
		if (jp->p < jp->end && *jp->p == close) {
			jp->p++;
			return 0;
		}
		return fail(jp, object ? "expected ',' or '}'" : "expected ',' or ']'");
	}
}

static bool take_word(struct json_parser *jp, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(jp->end - jp->p) < n || memcmp(jp->p, word, n) != 0)
		return false;
	jp->p += n;
	return true;
}

/*
 * An integer: an optional '-', decimal digits, no fraction or exponent, in
 * the range of long long. Reads nothing past jp->end (the text need not be
 * NUL-terminated).
 */
static int parse_integer(struct json_parser *jp, struct json *out)
{
	const char *p = jp->p;
	bool neg = p < jp->end && *p == '-';
	unsigned long long v = 0, limit = neg ? (unsigned long long)LLONG_MAX + 1 : LLONG_MAX;

	if (neg)
		p++;
	if (p >= jp->end || *p < '0' || *p > '9')
		return fail(jp, "expected an integer");
	for (; p < jp->end && *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (limit - d) / 10)
			return fail(jp, "expected an integer");
		v = v * 10 + d;
	}
	if (p < jp->end && (*p == '.' || *p == 'e' || *p == 'E'))
		return fail(jp, "expected an integer");
	out->number = !neg ? (long long)v : v > LLONG_MAX ? LLONG_MIN : -(long long)v;
	out->type = JSON_NUMBER;
	jp->p = p;
	return 0;
}

static int parse_value(struct json_parser *jp, struct json *out, int depth)
{
	if (depth > JSON_MAX_DEPTH)
		return fail(jp, "nested too deep");
	skip_space(jp);
	if (jp->p >= jp->end)
		return fail(jp, "unexpected end");
	switch (*jp->p) {
	case '{':
	case '[':
		return parse_container(jp, out, depth, *jp->p++ == '{');
	case '"':
		jp->p++;
		out->type = JSON_STRING;
		return parse_string(jp, &out->str);
	}
	if (take_word(jp, "true") || take_word(jp, "false")) {
		out->type = JSON_BOOL;
		return 0;
	}
	if (take_word(jp, "null")) {
		out->type = JSON_NULL;
		return 0;
	}
	if (*jp->p == '-' || (*jp->p >= '0' && *jp->p <= '9'))
		return parse_integer(jp, out);
	return fail(jp, "unexpected character");
}

static const struct json *json_get(const struct json *obj, const char *key)
{
	if (!obj || obj->type != JSON_OBJECT)
		return NULL;
	for (size_t i = 0; i < obj->count; i++)
		if (strcmp(obj->keys[i], key) == 0)
			return &obj->items[i];
	return NULL;
}

/* {"value": "...", "expires_ms": N}: the value, unless it has run out. */
static const char *op_value(const struct json *op, int64_t now, int64_t *expires)
{
	const struct json *v = json_get(op, "value"), *e = json_get(op, "expires_ms");

	if (!v || v->type != JSON_STRING)
		return NULL;
	*expires = e && e->type == JSON_NUMBER ? e->number : 0;
	if (*expires < 0 || (*expires != 0 && *expires <= now))
		return NULL;
	return v->str;
}

static void load_layer(const struct json *root, const struct gw_config *config,
                       struct gw_flags_layer *l, int64_t now)
{
	const struct json *flags = json_get(root, "flags"), *breakers = json_get(root, "breakers");
	const char *v;
	int64_t expires;
	int level, idx;

	for (size_t i = 0; flags && flags->type == JSON_OBJECT && i < flags->count; i++) {
		struct gw_flag_value fv;

		idx = gw_config_find_flag(config, flags->keys[i]);
		if (idx < 0 || flags->items[i].type != JSON_STRING ||
		    gw_flag_value_parse(flags->items[i].str, strlen(flags->items[i].str), &fv) !=
		        GW_FLAG_PARSE_OK)
			continue;
		l->has_flag[idx] = true;
		l->flags[idx] = fv;
	}
	v = op_value(json_get(root, "shed_level"), now, &expires);
	if (v && gw_shed_level_parse(v, strlen(v), &level) == 0 && level != GW_SHED_LEVEL_AUTO) {
		l->has_shed_level = true;
		l->shed_level = level;
		l->shed_expires_ms = expires;
	}
	v = op_value(json_get(root, "profile"), now, &expires);
	if (v && (idx = gw_config_find_profile(config, v)) >= 0) {
		l->has_profile = true;
		l->profile = (size_t)idx;
		l->profile_expires_ms = expires;
	}
	for (size_t r = 0; breakers && breakers->type == JSON_OBJECT && r < config->nroutes; r++) {
		v = op_value(json_get(breakers, config->routes[r].name), now, &expires);
		if (!v || (strcmp(v, "open") != 0 && strcmp(v, "closed") != 0))
			continue;
		l->has_breaker[r] = true;
		l->breakers[r] =
		    strcmp(v, "open") == 0 ? GW_BREAKER_FORCE_OPEN : GW_BREAKER_FORCE_CLOSED;
		l->breaker_expires_ms[r] = expires;
	}
}

int gw_flags_cache_parse(const char *name, const char *text, size_t len,
                         const struct gw_config *config, struct gw_flags_layer *layer,
                         int64_t now_wall_ms, char *why, size_t why_size)
{
	struct json_parser jp = {.p = text, .end = text + len};
	struct json root = {0};
	const struct json *version;
	int rc = -1;

	if (parse_value(&jp, &root, 0) == 0) {
		skip_space(&jp);
		if (jp.p != jp.end)
			fail(&jp, "text after the object");
	}
	version = json_get(&root, "version");
	if (jp.error) {
		snprintf(why, why_size, "%s is not valid JSON: %s at byte %zu", name, jp.error,
		         (size_t)(jp.p - text));
	} else if (root.type != JSON_OBJECT || !version || version->type != JSON_NUMBER ||
	           version->number != CACHE_VERSION) {
		snprintf(why, why_size, "%s is not a cache file of version %d", name,
		         CACHE_VERSION);
	} else {
		load_layer(&root, config, layer, now_wall_ms);
		layer->cached = true;
		rc = 0;
	}
	json_free(&root);
	return rc;
}

int gw_flags_cache_read(const char *path, const struct gw_config *config,
                        struct gw_flags_layer *layer, int64_t now_wall_ms, char *why,
                        size_t why_size)
{
	char *text = gw_malloc(CACHE_MAX_SIZE + 1);
	size_t len;
	int rc;
	FILE *f = fopen(path, "re");

	if (!f) {
		snprintf(why, why_size, "cannot open %s: %s", path, strerror(errno));
		free(text);
		return -1;
	}
	len = fread(text, 1, CACHE_MAX_SIZE + 1, f);
	fclose(f);
	if (len > CACHE_MAX_SIZE) {
		snprintf(why, why_size, "%s is larger than %d bytes", path, CACHE_MAX_SIZE);
		free(text);
		return -1;
	}
	rc = gw_flags_cache_parse(path, text, len, config, layer, now_wall_ms, why, why_size);
	free(text);
	return rc;
}
