/*
 * Feature flag values and the operator toggles kept beside them: how they
 * are spelled (in YAML, in Redis, in the cache file), and how a percentage
 * flag decides for one user.
 *
 *   on | off | N%          a flag (N = 0..100); true/false are on/off
 *   auto | 0 | 1 | 2       a forced overload level (gw:ops:shed_level)
 *   auto | open | closed   a forced circuit breaker (gw:ops:breaker:ROUTE)
 *
 * A percentage flag is sticky per user and the same on every gateway: the
 * bucket is FNV-1a-32(flag_name + ":" + key) % 100 and the flag is on when
 * the bucket is below N. key is the X-User-ID header, or the client address
 * when the request has none.
 *
 * Plain values: nothing here allocates or keeps state.
 */
#ifndef GW_MODULES_FLAGS_FLAG_VALUE_H
#define GW_MODULES_FLAGS_FLAG_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum gw_flag_kind {
	GW_FLAG_OFF = 0,
	GW_FLAG_ON,
	GW_FLAG_PERCENT, /* on for percent% of the keys */
};

struct gw_flag_value {
	enum gw_flag_kind kind;
	unsigned percent; /* 0..100, GW_FLAG_PERCENT only */
};

/* "auto" as an overload level: the gateway's own detector decides. */
#define GW_SHED_LEVEL_AUTO (-1)
#define GW_SHED_LEVEL_MAX  2

/* Longest text gw_flag_value_format writes, NUL included ("100%"). */
#define GW_FLAG_VALUE_TEXT 8

enum gw_flag_parse {
	GW_FLAG_PARSE_OK = 0,
	GW_FLAG_PARSE_BAD = -1,   /* not a flag value */
	GW_FLAG_PARSE_RANGE = -2, /* a percentage over 100% */
};

/*
 * s[0..len) as a flag value: "on", "off", "true", "false" (any case), or
 * digits followed by '%' (0% .. 100%). Nothing else: no spaces, no signs,
 * no fractions. *out is set only on GW_FLAG_PARSE_OK.
 */
enum gw_flag_parse gw_flag_value_parse(const char *s, size_t len, struct gw_flag_value *out);
/* "on", "off" or "N%" into buf (at least GW_FLAG_VALUE_TEXT bytes); returns buf. */
const char *gw_flag_value_format(struct gw_flag_value v, char *buf, size_t size);
bool gw_flag_value_equal(struct gw_flag_value a, struct gw_flag_value b);

/* "auto" -> GW_SHED_LEVEL_AUTO, "0".."2" -> 0..2; -1 for anything else. */
int gw_shed_level_parse(const char *s, size_t len, int *out);
/* "auto", "0", "1", "2". */
const char *gw_shed_level_name(int level);

/* FNV-1a, 32 bits: the offset basis, and one more piece of input. */
#define GW_FNV1A32_INIT 2166136261u
uint32_t gw_fnv1a32(uint32_t h, const void *data, size_t len);

/* The hash state after flag_name + ":": what every bucket of the flag starts from. */
uint32_t gw_flag_seed(const char *flag_name);
/* FNV-1a-32(flag_name + ":" + key) % 100, from the flag's seed. */
unsigned gw_flag_bucket(uint32_t seed, const char *key, size_t key_len);
/* Is v on for key? seed is the flag's gw_flag_seed. */
bool gw_flag_value_on(struct gw_flag_value v, uint32_t seed, const char *key, size_t key_len);

#endif
