/*
 * Typed reads of YAML values for the modules' own config sections, with the
 * same messages as the core loader (config.c):
 *
 *   FILE:LINE:COL: 'KEY' in WHERE: 3601s is out of range (1ms..1h)
 *   FILE:LINE:COL: unknown key 'x' in WHERE
 *   FILE:LINE:COL: missing required key 'KEY' in WHERE
 *
 * A value error points at the value, an unknown key at the key, a missing
 * key at the mapping. Every reader returns 0 with *out set, or -1 after
 * adding one error and leaving *out as it was (so the default stays), which
 * lets a parser report every problem of a section in one pass.
 *
 * WHERE names the section, nesting outward: "route 'checkout'", then
 * "retry of route 'checkout'", then "backoff of retry of route 'checkout'"
 * (gw_conf_ctx_enter builds those). A NULL where means the top level:
 * "'KEY': message" and "unknown key 'x' at top level".
 */
#ifndef GW_CONFIG_CONF_READ_H
#define GW_CONFIG_CONF_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../util/errlist.h"
#include "yaml_tree.h"

/*
 * Where errors go and how to name the section being read. Borrowed
 * pointers only: the caller keeps file, errs and where alive while the
 * context is in use.
 */
struct gw_conf_ctx {
	const char *file;
	struct gw_errlist *errs;
	const char *where; /* NULL = top level */
};

/* Longest WHERE text gw_conf_ctx_enter builds (longer ones are cut). */
#define GW_CONF_WHERE_MAX 256

/*
 * A context for the section SECTION inside ctx: where becomes "SECTION of
 * WHERE" ("SECTION" alone at the top level), written into buf.
 */
void gw_conf_ctx_enter(const struct gw_conf_ctx *ctx, const char *section, struct gw_conf_ctx *sub,
                       char buf[GW_CONF_WHERE_MAX]);

/* ---- messages ---------------------------------------------------------- */

/* "FILE:LINE:COL: message" for node. */
void gw_conf_error(const struct gw_conf_ctx *ctx, const struct gw_node *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "FILE:LINE:COL: 'KEY' in WHERE: message" for node. */
void gw_conf_bad_value(const struct gw_conf_ctx *ctx, const struct gw_node *node, const char *key,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* "FILE:LINE:COL: missing required key 'KEY' in WHERE", at the mapping. */
void gw_conf_missing_key(const struct gw_conf_ctx *ctx, const struct gw_node *map, const char *key);

/*
 * "unknown key 'x' in WHERE" for every key of map not in allowed (a
 * NULL-terminated list). 0 when every key is known, else -1.
 */
int gw_conf_check_keys(const struct gw_conf_ctx *ctx, const struct gw_node *map,
                       const char *const allowed[]);

/* ---- shapes ------------------------------------------------------------ */

/* True for a mapping; else "'KEY' in WHERE: expected a mapping, got a list". */
bool gw_conf_want_map(const struct gw_conf_ctx *ctx, const struct gw_node *node, const char *key);
/* True for a non-empty list; what names the items ("expected a list of what"). */
bool gw_conf_want_list(const struct gw_conf_ctx *ctx, const struct gw_node *node, const char *key,
                       const char *what);
/* True for a scalar that is not YAML's null; what names the expected value. */
bool gw_conf_want_scalar(const struct gw_conf_ctx *ctx, const struct gw_node *node, const char *key,
                         const char *what);

/* ---- values ------------------------------------------------------------ */

/* A plain decimal integer in [min, max]. */
int gw_conf_uint(const struct gw_conf_ctx *ctx, const struct gw_node *node, const char *key,
                 uint64_t min, uint64_t max, uint64_t *out);
/* Same into a uint32_t (max must fit). */
int gw_conf_u32(const struct gw_conf_ctx *ctx, const struct gw_node *node, const char *key,
                uint32_t min, uint32_t max, uint32_t *out);
/*
 * A duration ("250ms", "2s", "1m", "1h", or 0) in [min_ms, max_ms], into
 * milliseconds. The range in messages is spelled like the file: "1ms..1h".
 */
int gw_conf_duration(const struct gw_conf_ctx *ctx, const struct gw_node *node, const char *key,
                     uint64_t min_ms, uint64_t max_ms, uint64_t *out);
/* A size ("512", "16k", "8m") in [min, max] bytes; range spelled "1k..1m". */
int gw_conf_size(const struct gw_conf_ctx *ctx, const struct gw_node *node, const char *key,
                 uint64_t min, uint64_t max, uint64_t *out);
/*
 * A decimal number, digits with an optional fraction ("0.5", "1", "1.0"; no
 * exponent, no sign, no nan) in [min, max], or (min, max] when
 * min_exclusive: "0 is out of range (more than 0, at most 1)".
 */
int gw_conf_double(const struct gw_conf_ctx *ctx, const struct gw_node *node, const char *key,
                   double min, double max, bool min_exclusive, double *out);
/* true or false, nothing else (as config.c). */
int gw_conf_bool(const struct gw_conf_ctx *ctx, const struct gw_node *node, const char *key,
                 bool *out);
/*
 * One of names[0..count) into *out (its index): "expected round_robin,
 * least_request or random, got 'x'".
 */
int gw_conf_enum(const struct gw_conf_ctx *ctx, const struct gw_node *node, const char *key,
                 const char *const names[], size_t count, unsigned *out);
/*
 * A string duplicated into *out (the previous *out is freed on success).
 * The empty string ('' in the file) is refused unless allow_empty; YAML's
 * null (nothing, "~", "null") is never a string.
 */
int gw_conf_string(const struct gw_conf_ctx *ctx, const struct gw_node *node, const char *key,
                   bool allow_empty, char **out);
/*
 * A non-empty list of non-empty strings. On success *out is a new array of
 * new strings (the caller's, freed with gw_conf_strings_free) and *count its
 * length; on failure every bad item has its error and nothing is allocated.
 */
int gw_conf_string_list(const struct gw_conf_ctx *ctx, const struct gw_node *node, const char *key,
                        char ***out, size_t *count);
void gw_conf_strings_free(char **items, size_t count);

/* ---- tables of keys ---------------------------------------------------- */

/*
 * A mapping described as a table, one line per key (after redis's config.c
 * and the core loader's own tables): its kind, where its value goes in the
 * object being filled, its bounds and its default. gw_conf_read_table
 * reads a mapping through one, so a section lists each key once and its
 * messages are those of the readers above, word for word:
 *
 *   static const struct gw_conf_field backoff_fields[] = {
 *       {GW_CONF_DURATION("base", struct gw_retry_conf, backoff_base_ms, 0, MIN, 25)},
 *       {GW_CONF_DURATION("max", struct gw_retry_conf, backoff_max_ms, 0, MIN, 250)},
 *       {.key = NULL, .check = backoff_check},
 *   };
 *
 * The GW_CONF_* macros give a line's designators, so a line can add its
 * own: {GW_CONF_DOUBLE(...), .required = true}. A line whose key is NULL
 * ends the table; it may carry the table's check, the rule across keys
 * (base <= max) run once every key has been read. At most
 * GW_CONF_FIELDS_MAX keys a table.
 */
enum gw_conf_kind {
	GW_CONF_U32 = 0,  /* integer in [min, max] into a uint32_t (gw_conf_u32) */
	GW_CONF_UINT64,   /* integer in [min, max] into a uint64_t (gw_conf_uint) */
	GW_CONF_DURATION, /* milliseconds in [min, max] into a uint64_t (gw_conf_duration) */
	GW_CONF_SIZE,     /* bytes in [min, max] into a uint64_t (gw_conf_size) */
	GW_CONF_DOUBLE,   /* number in [dmin, dmax], or (dmin, dmax], into a double */
	GW_CONF_BOOL,     /* true or false into a bool */
	GW_CONF_ENUM,     /* one of names[0..count) into an unsigned: its index */
	GW_CONF_STRING,   /* into a char * that the object owns (the caller frees it) */
	GW_CONF_MAP,      /* a nested mapping read through its own table (fields) */
	GW_CONF_CUSTOM,   /* read() does it all; no default (see below) */
};

#define GW_CONF_FIELDS_MAX 64

struct gw_conf_section;

struct gw_conf_field {
	const char *key; /* NULL ends the table */
	enum gw_conf_kind kind;
	size_t offset; /* of the value in the object; MAP: of the nested table's object */
	bool required; /* "missing required key" when absent (the default stays) */
	/* U32, UINT64, DURATION, SIZE: bounds and default; BOOL, ENUM: def */
	uint64_t min, max, def;
	/* DOUBLE */
	double dmin, dmax, ddef;
	bool min_exclusive;
	/* ENUM: the names a value may take; def is an index into them */
	const char *const *names;
	size_t count;
	/* STRING: the default (copied; NULL: none) and whether '' is a value */
	const char *sdef;
	bool allow_empty;
	/* MAP */
	const struct gw_conf_field *fields;
	/*
	 * CUSTOM: reads value (the key's node) into obj, the object the whole
	 * table fills; 0, or -1 after adding its errors through ctx. A custom
	 * key has no default here: obj keeps what it held before the read (set
	 * it first), or the table's check sets it.
	 */
	int (*read)(const struct gw_conf_ctx *ctx, const struct gw_node *value, const char *key,
	            void *obj);
	/* The ending line only: the table's check (may be NULL). */
	void (*check)(const struct gw_conf_section *s);
};

/*
 * offsetof(type, member), refused at compile time unless member is a ctype
 * (comparing pointers to different types is an error with -Werror).
 */
#define GW_CONF_OFFSET(type, member, ctype)                                                        \
	(offsetof(type, member) + 0 * sizeof((ctype *)0 == &((type *)0)->member))

/* A line's designators, by kind: {GW_CONF_U32("attempts", struct c, attempts, 1, 10, 3)}. */
#define GW_CONF_U32(k, type, member, lo, hi, d)                                                    \
	.key = (k), .kind = GW_CONF_U32, .offset = GW_CONF_OFFSET(type, member, uint32_t),         \
	.min = (lo), .max = (hi), .def = (d)
#define GW_CONF_UINT64(k, type, member, lo, hi, d)                                                 \
	.key = (k), .kind = GW_CONF_UINT64, .offset = GW_CONF_OFFSET(type, member, uint64_t),      \
	.min = (lo), .max = (hi), .def = (d)
#define GW_CONF_DURATION(k, type, member, lo_ms, hi_ms, d_ms)                                      \
	.key = (k), .kind = GW_CONF_DURATION, .offset = GW_CONF_OFFSET(type, member, uint64_t),    \
	.min = (lo_ms), .max = (hi_ms), .def = (d_ms)
#define GW_CONF_SIZE(k, type, member, lo, hi, d)                                                   \
	.key = (k), .kind = GW_CONF_SIZE, .offset = GW_CONF_OFFSET(type, member, uint64_t),        \
	.min = (lo), .max = (hi), .def = (d)
#define GW_CONF_DOUBLE(k, type, member, lo, hi, lo_exclusive, d)                                   \
	.key = (k), .kind = GW_CONF_DOUBLE, .offset = GW_CONF_OFFSET(type, member, double),        \
	.dmin = (lo), .dmax = (hi), .min_exclusive = (lo_exclusive), .ddef = (d)
#define GW_CONF_BOOL(k, type, member, d)                                                           \
	.key = (k), .kind = GW_CONF_BOOL, .offset = GW_CONF_OFFSET(type, member, bool), .def = (d)
/* names: an array (its length is taken with sizeof); d: the default's index. */
#define GW_CONF_ENUM(k, type, member, names_array, d)                                              \
	.key = (k), .kind = GW_CONF_ENUM, .offset = GW_CONF_OFFSET(type, member, unsigned),        \
	.names = (names_array), .count = sizeof(names_array) / sizeof((names_array)[0]),           \
	.def = (d)
#define GW_CONF_STRING(k, type, member, empty_ok, d)                                               \
	.key = (k), .kind = GW_CONF_STRING, .offset = GW_CONF_OFFSET(type, member, char *),        \
	.allow_empty = (empty_ok), .sdef = (d)
/* A nested mapping whose keys fill the same object (retry's backoff). */
#define GW_CONF_MAP(k, sub) .key = (k), .kind = GW_CONF_MAP, .offset = 0, .fields = (sub)
/* A nested mapping whose keys fill the struct member of the object. */
#define GW_CONF_MAP_IN(k, type, member, sub)                                                       \
	.key = (k), .kind = GW_CONF_MAP, .offset = offsetof(type, member), .fields = (sub)
#define GW_CONF_CUSTOM(k, fn) .key = (k), .kind = GW_CONF_CUSTOM, .read = (fn)

/*
 * A mapping as gw_conf_read_table read it, for its table's check: the
 * context names the mapping itself ("backoff of retry of route 'r'"), obj
 * is the object its table fills, and refused has bit i set when the key of
 * fields[i] was written and something was reported about its value (which
 * then kept its default).
 */
struct gw_conf_section {
	const struct gw_conf_ctx *ctx;
	const struct gw_node *map;
	const struct gw_conf_field *fields;
	void *obj;
	uint64_t refused;
};

/* The value node of key in the mapping, or NULL when it was not written. */
const struct gw_node *gw_conf_section_value(const struct gw_conf_section *s, const char *key);
/* Whether key was written with a value that was refused. */
bool gw_conf_section_refused(const struct gw_conf_section *s, const char *key);

/*
 * Sets every default of fields in obj, nested tables included (custom keys
 * excepted). String members must be NULL or a string obj owns: the old one
 * is freed.
 */
void gw_conf_apply_defaults(const struct gw_conf_field *fields, void *obj);

/*
 * Reads the mapping node through fields into obj, in one pass:
 *
 *   1. every default (gw_conf_apply_defaults);
 *   2. every key of node in file order: an unknown one is reported ("unknown
 *      key 'x' in WHERE", at the key), a known one read by its kind with the
 *      readers above (a refused value keeps its default);
 *   3. each required key that is absent ("missing required key", at node);
 *   4. the table's check, if it has one.
 *
 * ctx names the mapping itself (gw_conf_ctx_enter); node must be a mapping
 * (the caller checks its shape with gw_conf_want_map, which names its key;
 * anything else is reported as "expected a mapping" at node). Returns 0, or
 * -1 when anything was reported, after reporting every problem.
 */
int gw_conf_read_table(const struct gw_conf_ctx *ctx, const struct gw_node *node,
                       const struct gw_conf_field *fields, void *obj);

/* ---- spelling values back ---------------------------------------------- */

/*
 * A duration the way the file would spell it, in the largest exact unit:
 * 0 -> "0", 1500 -> "1500ms", 3000 -> "3s", 3600000 -> "1h". Returns buf.
 */
const char *gw_conf_format_duration(uint64_t ms, char *buf, size_t size);
/* A size the same way: 16384 -> "16k", 1048576 -> "1m", 100 -> "100". */
const char *gw_conf_format_size(uint64_t bytes, char *buf, size_t size);

#endif
