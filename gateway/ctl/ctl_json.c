/*
 * A small, strict JSON parser (ctl_json.h): recursive descent over a
 * bounded buffer, one function per value kind, each either returning a
 * complete node or freeing what it built and leaving the first error in
 * the parser.
 */
#include "ctl_json.h"
#include "../util/alloc.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct parser {
	const unsigned char *text;
	size_t len, pos;
	unsigned depth;
	struct ctl_json_error *err;
	bool failed;
};

static void fail_at(struct parser *p, size_t offset, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records the first error only: later ones are consequences. */
static void fail_at(struct parser *p, size_t offset, const char *fmt, ...)
{
	va_list ap;

	if (p->failed)
		return;
	p->failed = true;
	p->err->offset = offset;
	va_start(ap, fmt);
	vsnprintf(p->err->message, sizeof(p->err->message), fmt, ap);
	va_end(ap);
}

/* The byte at pos, for a message: 'x', or its code when not printable. */
static const char *describe_byte(unsigned char c, char *buf, size_t size)
{
	if (c >= 0x20 && c < 0x7f)
		snprintf(buf, size, "'%c'", c);
	else
		snprintf(buf, size, "byte 0x%02x", c);
	return buf;
}

static void fail_unexpected(struct parser *p, const char *wanted)
{
	char b[16];

	if (p->pos >= p->len)
		fail_at(p, p->pos, "unexpected end of input: expected %s", wanted);
	else
		fail_at(p, p->pos, "unexpected %s: expected %s",
		        describe_byte(p->text[p->pos], b, sizeof(b)), wanted);
}

static void skip_space(struct parser *p)
{
	while (p->pos < p->len) {
		unsigned char c = p->text[p->pos];

		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			return;
		p->pos++;
	}
}

static struct ctl_json *new_node(enum ctl_json_type type)
{
	struct ctl_json *v = gw_calloc(1, sizeof(*v));

	v->type = type;
	return v;
}

static struct ctl_json *parse_value(struct parser *p);

/* ---- literals and numbers ---------------------------------------------- */

static struct ctl_json *parse_literal(struct parser *p, const char *word, enum ctl_json_type type,
                                      bool boolean)
{
	size_t n = strlen(word);
	struct ctl_json *v;

	for (size_t i = 0; i < n; i++) {
		if (p->pos + i >= p->len || p->text[p->pos + i] != (unsigned char)word[i]) {
			char b[16];

			if (p->pos + i >= p->len)
				fail_at(p, p->pos + i, "unexpected end of input in '%s'", word);
			else
				fail_at(p, p->pos + i, "unexpected %s in '%s'",
				        describe_byte(p->text[p->pos + i], b, sizeof(b)), word);
			return NULL;
		}
	}
	p->pos += n;
	v = new_node(type);
	v->u.boolean = boolean;
	return v;
}

static bool is_digit(const struct parser *p, size_t at)
{
	return at < p->len && p->text[at] >= '0' && p->text[at] <= '9';
}

/* At least one digit from p->pos on; false (error set) when there is none. */
static bool digits(struct parser *p, const char *what)
{
	if (!is_digit(p, p->pos)) {
		fail_unexpected(p, what);
		return false;
	}
	while (is_digit(p, p->pos))
		p->pos++;
	return true;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static struct ctl_json *parse_number(struct parser *p)
{
	size_t start = p->pos;
	struct ctl_json *v;
	char *text, *end;
	double d;

	if (p->text[p->pos] == '-')
		p->pos++;
	if (p->pos < p->len && p->text[p->pos] == '0') {
		p->pos++;
		if (is_digit(p, p->pos)) {
			fail_at(p, p->pos, "leading zero in a number");
			return NULL;
		}
	} else if (!digits(p, "a digit")) {
		return NULL;
	}
	if (p->pos < p->len && p->text[p->pos] == '.') {
		p->pos++;
		if (!digits(p, "a digit after the decimal point"))
			return NULL;
	}
	if (p->pos < p->len && (p->text[p->pos] == 'e' || p->text[p->pos] == 'E')) {
		p->pos++;
		if (p->pos < p->len && (p->text[p->pos] == '+' || p->text[p->pos] == '-'))
			p->pos++;
		if (!digits(p, "a digit in the exponent"))
			return NULL;
	}
	text = gw_strndup((const char *)p->text + start, p->pos - start);
	d = strtod(text, &end);
	if (*end != '\0' || isinf(d) || isnan(d)) {
		fail_at(p, start, "number out of range");
		free(text);
		return NULL;
	}
	v = new_node(CTL_JSON_NUMBER);
	v->u.number.value = d;
	v->u.number.text = text;
	return v;
}

/* ---- strings ------------------------------------------------------------- */

static int hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The four hex digits after "\u" at p->pos (which is at the backslash); -1 on error. */
static long read_u_escape(struct parser *p)
{
	long cp = 0;

	for (size_t i = 2; i < 6; i++) {
		int h;

		if (p->pos + i >= p->len) {
			fail_at(p, p->len, "unterminated string");
			return -1;
		}
		h = hex_value(p->text[p->pos + i]);
		if (h < 0) {
			char b[16];

			fail_at(p, p->pos + i, "invalid \\u escape: %s is not a hex digit",
			        describe_byte(p->text[p->pos + i], b, sizeof(b)));
			return -1;
		}
		cp = cp * 16 + h;
	}
	p->pos += 6;
	return cp;
}

static size_t put_utf8(char *out, unsigned long cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* A \uXXXX escape (or a surrogate pair of them) at p->pos, as UTF-8 into out; 0 on error. */
static size_t decode_u_escape(struct parser *p, char *out)
{
	size_t at = p->pos;
	long hi = read_u_escape(p), lo;

	if (hi < 0)
		return 0;
	if (hi >= 0xdc00 && hi <= 0xdfff) {
		fail_at(p, at, "invalid \\u escape: lone low surrogate \\u%04lX", hi);
		return 0;
	}
	if (hi < 0xd800 || hi > 0xdbff)
		return put_utf8(out, (unsigned long)hi);
	if (p->pos + 1 >= p->len || p->text[p->pos] != '\\' || p->text[p->pos + 1] != 'u') {
		fail_at(p, at,
		        "invalid \\u escape: high surrogate \\u%04lX not followed by a low one",
		        hi);
		return 0;
	}
	at = p->pos;
	lo = read_u_escape(p);
	if (lo < 0)
		return 0;
	if (lo < 0xdc00 || lo > 0xdfff) {
		fail_at(p, at, "invalid \\u escape: \\u%04lX after a high surrogate is no low one",
		        lo);
		return 0;
	}
	return put_utf8(out, 0x10000 + (((unsigned long)hi - 0xd800) << 10) +
	                         ((unsigned long)lo - 0xdc00));
}

/* The length of the valid UTF-8 sequence at p->pos (a byte >= 0x80), or 0. */
static size_t utf8_length(const struct parser *p)
{
	const unsigned char *s = p->text + p->pos;
	size_t left = p->len - p->pos, n;
	unsigned char lo = 0x80, hi = 0xbf; /* the range of the second byte */

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0;
	if (s[0] == 0xe0)
		lo = 0xa0; /* overlong */
	else if (s[0] == 0xed)
		hi = 0x9f; /* surrogates */
	else if (s[0] == 0xf0)
		lo = 0x90; /* overlong */
	else if (s[0] == 0xf4)
		hi = 0x8f; /* above U+10FFFF */
	if (left < n || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

/*
 * The decoded string between the quote at p->pos and its closing quote
 * into a new buffer (*len its length); NULL on error. A first scan finds
 * the closing quote: the decoded text is never longer than the raw one.
 */
static char *parse_string_data(struct parser *p, size_t *len)
{
	size_t end = p->pos + 1, n = 0;
	char *out;

	while (end < p->len && p->text[end] != '"')
		end += p->text[end] == '\\' ? 2 : 1;
	if (end >= p->len) {
		fail_at(p, p->len, "unterminated string");
		return NULL;
	}
	out = gw_malloc(end - p->pos);
	p->pos++;
	while (p->text[p->pos] != '"') {
		unsigned char c = p->text[p->pos];
		size_t k;

		if (c < 0x20) {
			fail_at(p, p->pos,
			        "control character 0x%02x in a string (write it as \\u%04x)", c, c);
			break;
		}
		if (c >= 0x80) {
			k = utf8_length(p);
			if (k == 0) {
				fail_at(p, p->pos, "invalid UTF-8 in a string");
				break;
			}
			memcpy(out + n, p->text + p->pos, k);
			n += k;
			p->pos += k;
			continue;
		}
		if (c != '\\') {
			out[n++] = (char)c;
			p->pos++;
			continue;
		}
		switch (p->text[p->pos + 1]) {
		case '"':
		case '\\':
		case '/':
			out[n++] = (char)p->text[p->pos + 1];
			break;
		case 'b':
			out[n++] = '\b';
			break;
		case 'f':
			out[n++] = '\f';
			break;
		case 'n':
			out[n++] = '\n';
			break;
		case 'r':
			out[n++] = '\r';
			break;
		case 't':
			out[n++] = '\t';
			break;
		case 'u':
			k = decode_u_escape(p, out + n);
			if (k == 0)
				goto bad;
			n += k;
			continue;
		default: {
			char b[16];

			fail_at(p, p->pos, "invalid escape \\%s in a string",
			        describe_byte(p->text[p->pos + 1], b, sizeof(b)));
			goto bad;
		}
		}
		p->pos += 2;
	}
	if (p->failed)
		goto bad;
	p->pos++;
	out[n] = '\0';
	*len = n;
	return out;
bad:
	free(out);
	return NULL;
}

static struct ctl_json *parse_string(struct parser *p)
{
	size_t len;
	char *data = parse_string_data(p, &len);
	struct ctl_json *v;

	if (!data)
		return NULL;
	v = new_node(CTL_JSON_STRING);
	v->u.string.data = data;
	v->u.string.len = len;
	return v;
}

/* ---- arrays and objects -------------------------------------------------- */

/* Past the opening bracket at p->pos, with the depth checked. */
static bool enter(struct parser *p)
{
	if (p->depth >= CTL_JSON_MAX_DEPTH) {
		fail_at(p, p->pos, "nested deeper than %d arrays and objects", CTL_JSON_MAX_DEPTH);
		return false;
	}
	p->depth++;
	p->pos++;
	skip_space(p);
	return true;
}

/* After an item: true to go on (past a ','), false at the closing bracket or on error. */
static bool next_item(struct parser *p, unsigned char close, bool *ok)
{
	skip_space(p);
	if (p->pos < p->len && p->text[p->pos] == ',') {
		p->pos++;
		skip_space(p);
		return true;
	}
	if (p->pos < p->len && p->text[p->pos] == close) {
		p->pos++;
		p->depth--;
		return false;
	}
	fail_unexpected(p, close == ']' ? "',' or ']'" : "',' or '}'");
	*ok = false;
	return false;
}

static struct ctl_json *parse_array(struct parser *p)
{
	struct ctl_json *v;
	size_t cap = 0;
	bool ok = true;

	if (!enter(p))
		return NULL;
	v = new_node(CTL_JSON_ARRAY);
	if (p->pos < p->len && p->text[p->pos] == ']') {
		p->pos++;
		p->depth--;
		return v;
	}
	do {
		struct ctl_json *item = parse_value(p);

		if (!item) {
			ok = false;
			break;
		}
		if (v->u.array.len == cap) {
			cap = cap ? cap * 2 : 4;
			v->u.array.items =
			    gw_realloc(v->u.array.items, cap * sizeof(*v->u.array.items));
		}
		v->u.array.items[v->u.array.len++] = item;
	} while (next_item(p, ']', &ok));
	if (!ok) {
		ctl_json_free(v);
		return NULL;
	}
	return v;
}

static struct ctl_json *parse_object(struct parser *p)
{
	struct ctl_json *v;
	size_t cap = 0;
	bool ok = true;

	if (!enter(p))
		return NULL;
	v = new_node(CTL_JSON_OBJECT);
	if (p->pos < p->len && p->text[p->pos] == '}') {
		p->pos++;
		p->depth--;
		return v;
	}
	do {
		struct ctl_json_member m = {0};

		if (p->pos >= p->len || p->text[p->pos] != '"') {
			fail_unexpected(p, "a string (an object's key)");
			ok = false;
			break;
		}
		m.key = parse_string_data(p, &m.key_len);
		if (!m.key) {
			ok = false;
			break;
		}
		skip_space(p);
		if (p->pos >= p->len || p->text[p->pos] != ':') {
			fail_unexpected(p, "':' after an object's key");
			free(m.key);
			ok = false;
			break;
		}
		p->pos++;
		m.value = parse_value(p);
		if (!m.value) {
			free(m.key);
			ok = false;
			break;
		}
		if (v->u.object.len == cap) {
			cap = cap ? cap * 2 : 4;
			v->u.object.members =
			    gw_realloc(v->u.object.members, cap * sizeof(*v->u.object.members));
		}
		v->u.object.members[v->u.object.len++] = m;
	} while (next_item(p, '}', &ok));
	if (!ok) {
		ctl_json_free(v);
		return NULL;
	}
	return v;
}

/* Any value, with the whitespace before it. */
static struct ctl_json *parse_value(struct parser *p)
{
	skip_space(p);
	if (p->pos >= p->len) {
		fail_unexpected(p, "a value");
		return NULL;
	}
	switch (p->text[p->pos]) {
	case '{':
		return parse_object(p);
	case '[':
		return parse_array(p);
	case '"':
		return parse_string(p);
	case 't':
		return parse_literal(p, "true", CTL_JSON_BOOL, true);
	case 'f':
		return parse_literal(p, "false", CTL_JSON_BOOL, false);
	case 'n':
		return parse_literal(p, "null", CTL_JSON_NULL, false);
	case '-':
	case '0':
	case '1':
	case '2':
	case '3':
	case '4':
	case '5':
	case '6':
	case '7':
	case '8':
	case '9':
		return parse_number(p);
	default:
		fail_unexpected(p, "a value");
		return NULL;
	}
}

struct ctl_json *ctl_json_parse(const char *text, size_t len, struct ctl_json_error *err)
{
	struct parser p = {.text = (const unsigned char *)text, .len = len, .err = err};
	struct ctl_json *v;

	memset(err, 0, sizeof(*err));
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
		fail_at(&p, 0, "byte order mark before the value");
		return NULL;
	}
	v = parse_value(&p);
	if (!v)
		return NULL;
	skip_space(&p);
	if (p.pos < p.len) {
		fail_unexpected(&p, "the end of input after the value");
		ctl_json_free(v);
		return NULL;
	}
	return v;
}

void ctl_json_free(struct ctl_json *v)
{
	if (!v)
		return;
	switch (v->type) {
	case CTL_JSON_NUMBER:
		free(v->u.number.text);
		break;
	case CTL_JSON_STRING:
		free(v->u.string.data);
		break;
	case CTL_JSON_ARRAY:
		for (size_t i = 0; i < v->u.array.len; i++)
			ctl_json_free(v->u.array.items[i]);
		free(v->u.array.items);
		break;
	case CTL_JSON_OBJECT:
		for (size_t i = 0; i < v->u.object.len; i++) {
			free(v->u.object.members[i].key);
			ctl_json_free(v->u.object.members[i].value);
		}
		free(v->u.object.members);
		break;
	case CTL_JSON_NULL:
	case CTL_JSON_BOOL:
		break;
	}
	free(v);
}

/* ---- lookups ------------------------------------------------------------- */

const struct ctl_json *ctl_json_get(const struct ctl_json *v, const char *key)
{
	size_t klen = strlen(key);

	if (!v || v->type != CTL_JSON_OBJECT)
		return NULL;
	for (size_t i = 0; i < v->u.object.len; i++) {
		const struct ctl_json_member *m = &v->u.object.members[i];

		if (m->key_len == klen && memcmp(m->key, key, klen) == 0)
			return m->value;
	}
	return NULL;
}

size_t ctl_json_len(const struct ctl_json *v)
{
	if (v && v->type == CTL_JSON_ARRAY)
		return v->u.array.len;
	if (v && v->type == CTL_JSON_OBJECT)
		return v->u.object.len;
	return 0;
}

const struct ctl_json *ctl_json_at(const struct ctl_json *v, size_t i)
{
	if (!v || v->type != CTL_JSON_ARRAY || i >= v->u.array.len)
		return NULL;
	return v->u.array.items[i];
}

bool ctl_json_is(const struct ctl_json *v, enum ctl_json_type type)
{
	return v && v->type == type;
}

bool ctl_json_is_null(const struct ctl_json *v)
{
	return ctl_json_is(v, CTL_JSON_NULL);
}

const char *ctl_json_as_string(const struct ctl_json *v, size_t *len)
{
	if (!ctl_json_is(v, CTL_JSON_STRING))
		return NULL;
	if (len)
		*len = v->u.string.len;
	return v->u.string.data;
}

bool ctl_json_as_number(const struct ctl_json *v, double *out)
{
	if (!ctl_json_is(v, CTL_JSON_NUMBER))
		return false;
	*out = v->u.number.value;
	return true;
}

bool ctl_json_as_bool(const struct ctl_json *v, bool *out)
{
	if (!ctl_json_is(v, CTL_JSON_BOOL))
		return false;
	*out = v->u.boolean;
	return true;
}

const char *ctl_json_type_name(enum ctl_json_type type)
{
	static const char *const names[] = {
	    [CTL_JSON_NULL] = "null",     [CTL_JSON_BOOL] = "boolean", [CTL_JSON_NUMBER] = "number",
	    [CTL_JSON_STRING] = "string", [CTL_JSON_ARRAY] = "array",  [CTL_JSON_OBJECT] = "object",
	};

	return (size_t)type < sizeof(names) / sizeof(names[0]) ? names[type] : "?";
}
