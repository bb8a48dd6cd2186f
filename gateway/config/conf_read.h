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

/* ---- spelling values back ---------------------------------------------- */

/*
 * A duration the way the file would spell it, in the largest exact unit:
 * 0 -> "0", 1500 -> "1500ms", 3000 -> "3s", 3600000 -> "1h". Returns buf.
 */
const char *gw_conf_format_duration(uint64_t ms, char *buf, size_t size);
/* A size the same way: 16384 -> "16k", 1048576 -> "1m", 100 -> "100". */
const char *gw_conf_format_size(uint64_t bytes, char *buf, size_t size);

#endif
