/*
 * libFuzzer harness for what the gateway reads from Redis and from its
 * flags cache file (modules/flags): byte 0 picks the target, the rest is
 * the text.
 *
 *   0  gw_flag_value_parse   a flag value (HGETALL gw:flags, YAML)
 *   1  gw_shed_level_parse   gw:ops:shed_level
 *   2  gw_flags_layer_update a whole re-read of Redis (see read_from), then
 *                            gw_flags_resolve on the layer
 *   3  gw_flags_cache_parse  the cache file's JSON, then gw_flags_resolve
 *
 * Invariants beyond the sanitizers: a parsed value is in range and formats
 * back to text that parses to the same value; a word is one of the words
 * the format documents, in any case; a value that does not parse leaves
 * *out alone; a layer and a resolved snapshot only hold indexes and values
 * the config allows; applying the same Redis read twice, or reading the
 * same cache file twice, gives equal layers; a cache file that does not
 * parse says why and leaves the layer empty.
 *
 * The config is fixed (flags a..d, profiles peak and calm, routes r0 and
 * r1) and built once, from IP literals only (no DNS).
 *
 * Dictionary: flags.dict
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway/config/config.h"
#include "gateway/util/log.h"
#include "modules/flags/flag_cache.h"
#include "modules/flags/flag_state.h"
#include "modules/flags/flag_value.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW 1800000000000LL /* a wall-clock time in ms, 2027 */

/* An invariant: when it does not hold, say which and crash for libFuzzer. */
#define require(cond) require_at((cond), #cond, __LINE__)

static void require_at(int cond, const char *what, int line)
{
	if (!cond) {
		fprintf(stderr, "invariant failed at line %d: %s\n", line, what);
		abort();
	}
}

static const char config_yaml[] = "redis: { address: \"127.0.0.1:6379\" }\n"
                                  "flags: { a: on, b: \"10%\", c: off, d: true }\n"
                                  "profiles:\n"
                                  "  peak: { flags: { a: off, b: \"50%\" }, shed_level: 1 }\n"
                                  "  calm: { flags: { c: on } }\n"
                                  "upstreams:\n"
                                  "  u: { servers: [\"127.0.0.1:9001\"] }\n"
                                  "  old: { servers: [\"127.0.0.1:9002\"] }\n"
                                  "routes:\n"
                                  "  - name: r0\n"
                                  "    match: { path_prefix: /a }\n"
                                  "    upstream: u\n"
                                  "    circuit_breaker: {}\n"
                                  "    flag: { name: a, when_off: { upstream: old } }\n"
                                  "  - name: r1\n"
                                  "    upstream: u\n"
                                  "    flag: { name: b, when_off: { status: 410 } }\n";

static struct gw_config *config(void)
{
	static struct gw_config *cfg;

	if (!cfg) {
		struct gw_errlist errs = {0};

		gw_log_set_level(GW_LOG_ERROR); /* bad values are logged as warnings */
		cfg = gw_config_load_string("fuzz-flags.yaml", config_yaml, &errs);
		if (!cfg) {
			fprintf(stderr, "fuzz_flags config: %s\n",
			        errs.count ? errs.items[0] : "?");
			abort();
		}
		gw_errlist_free(&errs);
	}
	return cfg;
}

static void check_flag_value(const char *s, size_t len)
{
	struct gw_flag_value v = {.kind = GW_FLAG_PERCENT, .percent = 777}, again;
	char text[GW_FLAG_VALUE_TEXT];
	enum gw_flag_parse r = gw_flag_value_parse(s, len, &v);

	require(r == GW_FLAG_PARSE_OK || r == GW_FLAG_PARSE_BAD || r == GW_FLAG_PARSE_RANGE);
	if (r != GW_FLAG_PARSE_OK) {
		require(v.kind == GW_FLAG_PERCENT && v.percent == 777);
		return;
	}
	require(v.kind == GW_FLAG_ON || v.kind == GW_FLAG_OFF || v.kind == GW_FLAG_PERCENT);
	require(v.kind != GW_FLAG_PERCENT || v.percent <= 100);
	gw_flag_value_format(v, text, sizeof(text));
	require(gw_flag_value_parse(text, strlen(text), &again) == GW_FLAG_PARSE_OK);
	require(gw_flag_value_equal(v, again));
	if (v.kind == GW_FLAG_ON)
		require((len == 2 && strncasecmp(s, "on", 2) == 0) ||
		        (len == 4 && strncasecmp(s, "true", 4) == 0));
	if (v.kind == GW_FLAG_OFF)
		require((len == 3 && strncasecmp(s, "off", 3) == 0) ||
		        (len == 5 && strncasecmp(s, "false", 5) == 0));
	if (v.kind == GW_FLAG_PERCENT)
		require(len >= 2 && s[len - 1] == '%');
	for (size_t i = 0; i < len; i++)
		require(s[i] != '\0' && s[i] != ' ');
	/* a percentage flag is on for its share of keys, from the same bucket */
	if (v.kind == GW_FLAG_PERCENT) {
		uint32_t seed = gw_flag_seed("f");
		unsigned b = gw_flag_bucket(seed, s, len);

		require(b < 100);
		require(gw_flag_value_on(v, seed, s, len) == (b < v.percent));
	}
}

static void check_shed_level(const char *s, size_t len)
{
	int level = 12345;

	if (gw_shed_level_parse(s, len, &level) != 0) {
		require(level == 12345);
		return;
	}
	require(level == GW_SHED_LEVEL_AUTO || (level >= 0 && level <= GW_SHED_LEVEL_MAX));
	require(strlen(gw_shed_level_name(level)) == len);
	require(strncasecmp(gw_shed_level_name(level), s, len) == 0);
}

static void check_layer(const struct gw_config *cfg, const struct gw_flags_layer *l)
{
	require(l->nflags == cfg->nflags && l->nroutes == cfg->nroutes);
	for (size_t i = 0; i < l->nflags; i++)
		if (l->has_flag[i])
			require(l->flags[i].kind != GW_FLAG_PERCENT || l->flags[i].percent <= 100);
	if (l->has_shed_level)
		require(l->shed_level >= 0 && l->shed_level <= GW_SHED_LEVEL_MAX);
	if (l->has_profile)
		require(l->profile < cfg->nprofiles);
	for (size_t r = 0; r < l->nroutes; r++)
		if (l->has_breaker[r])
			require(l->breakers[r] == GW_BREAKER_FORCE_OPEN ||
			        l->breakers[r] == GW_BREAKER_FORCE_CLOSED);
}

static void check_resolved(struct gw_config *cfg, const struct gw_flags_layer *l)
{
	struct gw_flags_snap *s = gw_flags_resolve(cfg, l, NULL, NOW);

	require(s && s->nflags == cfg->nflags && s->nroutes == cfg->nroutes);
	for (size_t i = 0; i < s->nflags; i++)
		require(s->flags[i].value.kind != GW_FLAG_PERCENT ||
		        s->flags[i].value.percent <= 100);
	require(s->shed_level == GW_SHED_LEVEL_AUTO ||
	        (s->shed_level >= 0 && s->shed_level <= GW_SHED_LEVEL_MAX));
	require(s->profile >= -1 && s->profile < (int)cfg->nprofiles);
	gw_flags_snap_unref(s);
}

/* The next record of text, up to a NUL byte (or the end). */
static char *next_record(const char **p, const char *end)
{
	const char *q = *p;
	char *rec;

	if (q >= end)
		return NULL;
	while (q < end && *q)
		q++;
	rec = malloc((size_t)(q - *p) + 1);
	require(rec != NULL);
	memcpy(rec, *p, (size_t)(q - *p));
	rec[q - *p] = '\0';
	*p = q < end ? q + 1 : q;
	return rec;
}

/*
 * A re-read of Redis from the bytes, as NUL-separated records: first a
 * header (its first byte: bit 7 = gw:flags is not a hash, bits 0-2 = number
 * of hash fields; bit 6 = a wrong number of ops keys), then field, value,
 * field, value..., then one record per ops key whose first byte says
 * absent (0xff) or the PTTL (below 0x80: none; else (b - 0x80) * 37 ms,
 * 0xfe: the largest PTTL), the value being the rest of the record.
 */
static void read_from(const struct gw_config *cfg, const char *p, const char *end,
                      struct gw_flags_read *rd)
{
	char *head = next_record(&p, end);
	unsigned h = head && head[0] ? (unsigned char)head[0] : 0;

	free(head);
	memset(rd, 0, sizeof(*rd));
	rd->flags_bad = h & 0x80;
	rd->nfields = h & 7;
	rd->fields = calloc(rd->nfields + 1, sizeof(char *));
	rd->values = calloc(rd->nfields + 1, sizeof(char *));
	for (size_t i = 0; i < rd->nfields; i++) {
		rd->fields[i] = next_record(&p, end);
		rd->values[i] = next_record(&p, end);
		if (!rd->fields[i])
			rd->fields[i] = strdup("");
	}
	rd->nops = GW_OPS_BREAKER0 + cfg->nroutes - (h & 0x40 ? 1 : 0);
	rd->ops = calloc(rd->nops, sizeof(char *));
	rd->ops_pttl = calloc(rd->nops, sizeof(int64_t));
	for (size_t k = 0; k < rd->nops; k++) {
		char *rec = next_record(&p, end);
		unsigned b = rec && rec[0] ? (unsigned char)rec[0] : 0xff;

		rd->ops_pttl[k] = b == 0xfe ? INT64_MAX : b < 0x80 ? -1 : (int64_t)(b - 0x80) * 37;
		if (rec && b != 0xff)
			rd->ops[k] = strdup(rec + 1);
		free(rec);
	}
}

static void check_redis_read(const char *p, size_t len)
{
	struct gw_config *cfg = config();
	struct gw_flags_layer *l = gw_flags_layer_new(cfg);
	struct gw_flags_complaints c;
	struct gw_flags_read rd;

	gw_flags_complaints_init(&c, cfg);
	read_from(cfg, p, p + len, &rd);
	gw_flags_layer_update(l, cfg, &rd, &c, NOW);
	require(!l->cached);
	check_layer(cfg, l);
	check_resolved(cfg, l);
	/* the same read again changes nothing */
	{
		struct gw_flags_layer *again = gw_flags_layer_copy(l);

		gw_flags_layer_update(again, cfg, &rd, &c, NOW);
		require(gw_flags_layer_equal(l, again, 0));
		gw_flags_layer_free(again);
	}
	gw_flags_read_clear(&rd);
	gw_flags_complaints_free(&c);
	gw_flags_layer_free(l);
}

static void check_cache(const char *text, size_t len)
{
	struct gw_config *cfg = config();
	struct gw_flags_layer *l = gw_flags_layer_new(cfg), *again = gw_flags_layer_new(cfg);
	char why[256] = "", why2[256] = "";
	int rc = gw_flags_cache_parse("cache.json", text, len, cfg, l, NOW, why, sizeof(why));

	require(rc == 0 || rc == -1);
	if (rc == 0) {
		require(l->cached);
		check_layer(cfg, l);
		check_resolved(cfg, l);
		require(gw_flags_cache_parse("cache.json", text, len, cfg, again, NOW, why2,
		                             sizeof(why2)) == 0);
		require(gw_flags_layer_equal(l, again, 0));
	} else {
		require(why[0] != '\0' && strlen(why) < sizeof(why));
		require(!l->cached && !l->has_shed_level && !l->has_profile);
		for (size_t i = 0; i < l->nflags; i++)
			require(!l->has_flag[i]);
		for (size_t r = 0; r < l->nroutes; r++)
			require(!l->has_breaker[r]);
	}
	gw_flags_layer_free(l);
	gw_flags_layer_free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data + 1;
	size_t len = size ? size - 1 : 0;

	if (size < 1)
		return 0;
	switch (data[0] & 3) {
	case 0:
		check_flag_value(text, len);
		break;
	case 1:
		check_shed_level(text, len);
		break;
	case 2:
		check_redis_read(text, len);
		break;
	case 3:
		check_cache(text, len);
		break;
	}
	return 0;
}
