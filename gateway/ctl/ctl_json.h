/*
 * A small, strict JSON parser for gatewayctl: the admin API's answers
 * (GET /status, POST /reload) are JSON, and gatewayctl reads them.
 *
 * Why not a library: gatewayctl is the tool an operator reaches for when
 * the gateway misbehaves, so it builds from this repository with the
 * gateway's own dependencies and nothing more (no JSON library to find,
 * version or ship on every host). What it needs is small: parse one
 * bounded document into a tree and look fields up.
 *
 * What it accepts is RFC 8259 and nothing else: one value (object, array,
 * string, number, true, false, null) with optional whitespace around it,
 * UTF-8 throughout (overlong forms, encoded surrogates and code points
 * above U+10FFFF are refused), strings with the escapes \" \\ \/ \b \f
 * \n \r \t and \uXXXX (a surrogate pair becomes one UTF-8 character; a
 * lone surrogate is an error), numbers in the JSON grammar only (no
 * leading zeros, '+', hex, NaN or Infinity; a number beyond a double's
 * range is an error). No comments, no trailing commas, no byte order
 * mark, nothing after the value. Arrays and objects nest at most
 * CTL_JSON_MAX_DEPTH deep. Duplicate keys are kept; lookups find the
 * first. Every error names the byte offset where the text went wrong.
 *
 * Bounded: the recursion is at most CTL_JSON_MAX_DEPTH deep, and every
 * node comes from at least one byte of input, so the tree's size is linear
 * in the input's (which the caller bounds: ctl_http caps a reply).
 */
#ifndef GW_CTL_CTL_JSON_H
#define GW_CTL_CTL_JSON_H

#include <stdbool.h>
#include <stddef.h>

#define CTL_JSON_MAX_DEPTH 64

enum ctl_json_type {
	CTL_JSON_NULL,
	CTL_JSON_BOOL,
	CTL_JSON_NUMBER,
	CTL_JSON_STRING,
	CTL_JSON_ARRAY,
	CTL_JSON_OBJECT,
};

struct ctl_json;

/*
 * One member of an object. Ownership: the object owns its members array,
 * each member its key (NUL-terminated; it may hold NULs from \u0000, hence
 * key_len) and its value.
 */
struct ctl_json_member {
	char *key;
	size_t key_len;
	struct ctl_json *value;
};

/*
 * A node of the tree. Ownership: a node owns everything below it (its
 * string, number text, items and members), released by ctl_json_free on
 * the root. The lookup helpers return pointers into the tree, valid until
 * then; they never allocate.
 */
struct ctl_json {
	enum ctl_json_type type;
	union {
		bool boolean;
		struct {
			double value;
			char *text; /* the number as written, NUL-terminated */
		} number;
		struct {
			char *data; /* UTF-8, NUL-terminated; may hold NULs (\u0000) */
			size_t len;
		} string;
		struct {
			struct ctl_json **items;
			size_t len;
		} array;
		struct {
			struct ctl_json_member *members; /* in document order */
			size_t len;
		} object;
	} u;
};

/* Why a parse failed: the byte offset in the input and a message in lower case. */
struct ctl_json_error {
	size_t offset;
	char message[128];
};

/*
 * Parses text[0, len) (it need not be NUL-terminated; a NUL byte in it is
 * an error). The tree on success, the caller's to free with ctl_json_free;
 * NULL with *err filled on failure.
 */
struct ctl_json *ctl_json_parse(const char *text, size_t len, struct ctl_json_error *err);
void ctl_json_free(struct ctl_json *v);

/*
 * Lookups. Each accepts NULL (and answers NULL, 0 or false), so that
 * lookups chain: ctl_json_get(ctl_json_get(root, "config"), "file").
 */

/* The value of the first member named key of an object; NULL when absent or v is no object. */
const struct ctl_json *ctl_json_get(const struct ctl_json *v, const char *key);
/* Items of an array, members of an object; 0 for anything else. */
size_t ctl_json_len(const struct ctl_json *v);
/* Item i of an array; NULL when out of range or v is no array. */
const struct ctl_json *ctl_json_at(const struct ctl_json *v, size_t i);

bool ctl_json_is(const struct ctl_json *v, enum ctl_json_type type);
bool ctl_json_is_null(const struct ctl_json *v);
/* The string (and its length when len is not NULL); NULL when v is no string. */
const char *ctl_json_as_string(const struct ctl_json *v, size_t *len);
/* false when v is no number (*out untouched). */
bool ctl_json_as_number(const struct ctl_json *v, double *out);
/* false when v is no boolean (*out untouched). */
bool ctl_json_as_bool(const struct ctl_json *v, bool *out);

/* "object", "array", "string", "number", "boolean", "null": for messages. */
const char *ctl_json_type_name(enum ctl_json_type type);

#endif
