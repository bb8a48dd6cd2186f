/*
 * Feature flags: value spelling, FNV bucketing (known vectors and the
 * spread of a percentage), how a Redis read updates the remote layer (bad
 * values keep the previous one and are logged once), the resolution order
 * and the sources it records, TTL ends, snapshots (equality, reference
 * counts), the request-path decision, the cache file, and the Redis
 * client's reconnect backoff. No Redis, no clock: times are arguments.
 */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "gateway/config/config.h"
#include "gateway/redis/redis_client.h"
#include "gateway/util/alloc.h"
#include "modules/flags/flag_cache.h"
#include "modules/flags/flag_state.h"
#include "modules/flags/flag_value.h"
#include "check_suite.h"

#define NOW 1800000000000LL /* a wall-clock time in ms, 2027 */

/* Flags a..d, profile peak (a off, b 50%, shed 1), routes r0 (breaker), r1. */
static const char test_yaml[] = "redis: { address: \"127.0.0.1:6379\" }\n"
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

static struct gw_config *test_config(void)
{
	struct gw_errlist errs = {0};
	struct gw_config *cfg = gw_config_load_string("flags.yaml", test_yaml, &errs);

	ck_assert_msg(cfg != NULL, "test config: %s", errs.count ? errs.items[0] : "?");
	gw_errlist_free(&errs);
	return cfg;
}

static struct gw_flag_value fv(const char *text)
{
	struct gw_flag_value v;

	ck_assert_int_eq(gw_flag_value_parse(text, strlen(text), &v), GW_FLAG_PARSE_OK);
	return v;
}

static const char *fmt(struct gw_flag_value v)
{
	static char buf[GW_FLAG_VALUE_TEXT];

	return gw_flag_value_format(v, buf, sizeof(buf));
}

#include "stderr_capture.h"

static int count_occurrences(const char *text, const char *needle)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

/* A read of Redis as flag_sync.c builds it: fields/values, then ops. */
static void read_init(struct gw_flags_read *rd, const struct gw_config *cfg)
{
	memset(rd, 0, sizeof(*rd));
	rd->nops = GW_OPS_BREAKER0 + cfg->nroutes;
	rd->ops = gw_calloc(rd->nops, sizeof(*rd->ops));
	rd->ops_pttl = gw_calloc(rd->nops, sizeof(*rd->ops_pttl));
	for (size_t i = 0; i < rd->nops; i++)
		rd->ops_pttl[i] = -1;
	rd->fields = gw_calloc(8, sizeof(*rd->fields));
	rd->values = gw_calloc(8, sizeof(*rd->values));
}

static void read_field(struct gw_flags_read *rd, const char *field, const char *value)
{
	rd->fields[rd->nfields] = gw_strdup(field);
	rd->values[rd->nfields++] = gw_strdup(value);
}

static void read_op(struct gw_flags_read *rd, size_t key, const char *value, int64_t pttl)
{
	free(rd->ops[key]);
	rd->ops[key] = value ? gw_strdup(value) : NULL;
	rd->ops_pttl[key] = pttl;
}

/* ---- values and bucketing ---------------------------------------------- */

START_TEST(fnv1a32_matches_the_reference_vectors)
{
	ck_assert_uint_eq(gw_fnv1a32(GW_FNV1A32_INIT, "", 0), 0x811c9dc5u);
	ck_assert_uint_eq(gw_fnv1a32(GW_FNV1A32_INIT, "a", 1), 0xe40c292cu);
	ck_assert_uint_eq(gw_fnv1a32(GW_FNV1A32_INIT, "foobar", 6), 0xbf9cf968u);
	/* Streaming: hashing in two pieces is hashing the whole. */
	ck_assert_uint_eq(gw_fnv1a32(gw_fnv1a32(GW_FNV1A32_INIT, "foo", 3), "bar", 3), 0xbf9cf968u);
}
END_TEST

START_TEST(bucket_is_fnv_of_flag_colon_key_mod_100)
{
	uint32_t seed = gw_flag_seed("checkout_v2");

	/* Values computed independently (Python) from "checkout_v2:" + key. */
	ck_assert_uint_eq(gw_flag_bucket(seed, "user-42", 7), 8);
	ck_assert_uint_eq(gw_flag_bucket(seed, "alice", 5), 64);
	ck_assert_uint_eq(gw_flag_bucket(seed, "10.1.2.3", 8), 95);
	ck_assert_uint_eq(gw_flag_bucket(seed, "alice", 5),
	                  gw_fnv1a32(GW_FNV1A32_INIT, "checkout_v2:alice", 17) % 100);
	/* on when the bucket is below N: alice (64) is in at 65%, out at 64%. */
	ck_assert(gw_flag_value_on(fv("65%"), seed, "alice", 5));
	ck_assert(!gw_flag_value_on(fv("64%"), seed, "alice", 5));
}
END_TEST

START_TEST(percentage_flag_covers_about_n_percent_of_keys)
{
	uint32_t seed = gw_flag_seed("checkout_v2");
	unsigned on30 = 0, on0 = 0, on100 = 0;
	char key[32];

	for (int i = 0; i < 10000; i++) {
		int n = snprintf(key, sizeof(key), "user-%d", i);

		on30 += gw_flag_value_on(fv("30%"), seed, key, (size_t)n);
		on0 += gw_flag_value_on(fv("0%"), seed, key, (size_t)n);
		on100 += gw_flag_value_on(fv("100%"), seed, key, (size_t)n);
	}
	ck_assert_uint_ge(on30, 2800);
	ck_assert_uint_le(on30, 3200);
	ck_assert_uint_eq(on0, 0);
	ck_assert_uint_eq(on100, 10000);
}
END_TEST

START_TEST(flag_values_parse_strictly)
{
	static const char *const bad[] = {"",     "o", "on ", " on", "50",   "50 %", "-1%",
	                                  "3.5%", "%", "yes", "1",   "on\n", "0x5%"};
	struct gw_flag_value v = {.kind = GW_FLAG_PERCENT, .percent = 77};

	ck_assert_str_eq(fmt(fv("on")), "on");
	ck_assert_str_eq(fmt(fv("ON")), "on");
	ck_assert_str_eq(fmt(fv("true")), "on");
	ck_assert_str_eq(fmt(fv("off")), "off");
	ck_assert_str_eq(fmt(fv("False")), "off");
	ck_assert_str_eq(fmt(fv("0%")), "0%");
	ck_assert_str_eq(fmt(fv("30%")), "30%");
	ck_assert_str_eq(fmt(fv("100%")), "100%");
	ck_assert_str_eq(fmt(fv("007%")), "7%");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(gw_flag_value_parse(bad[i], strlen(bad[i]), &v) == GW_FLAG_PARSE_BAD,
		              "'%s' should not parse", bad[i]);
	ck_assert_int_eq(gw_flag_value_parse("101%", 4, &v), GW_FLAG_PARSE_RANGE);
	ck_assert_int_eq(gw_flag_value_parse("99999999999999999999%", 21, &v), GW_FLAG_PARSE_RANGE);
	/* A failed parse leaves the value alone. */
	ck_assert_int_eq(v.kind, GW_FLAG_PERCENT);
	ck_assert_uint_eq(v.percent, 77);
	ck_assert(gw_flag_value_equal(fv("5%"), fv("5%")));
	ck_assert(!gw_flag_value_equal(fv("5%"), fv("6%")));
	ck_assert(gw_flag_value_equal(fv("on"), fv("true")));
}
END_TEST

START_TEST(shed_levels_parse_auto_and_0_to_2)
{
	int level = 99;

	ck_assert_int_eq(gw_shed_level_parse("auto", 4, &level), 0);
	ck_assert_int_eq(level, GW_SHED_LEVEL_AUTO);
	ck_assert_int_eq(gw_shed_level_parse("2", 1, &level), 0);
	ck_assert_int_eq(level, 2);
	ck_assert_int_eq(gw_shed_level_parse("3", 1, &level), -1);
	ck_assert_int_eq(gw_shed_level_parse("01", 2, &level), -1);
	ck_assert_int_eq(gw_shed_level_parse("", 0, &level), -1);
	ck_assert_int_eq(level, 2);
	ck_assert_str_eq(gw_shed_level_name(GW_SHED_LEVEL_AUTO), "auto");
	ck_assert_str_eq(gw_shed_level_name(1), "1");
}
END_TEST

/* ---- the config ------------------------------------------------------------ */

START_TEST(config_reads_flags_profiles_redis_and_route_flags)
{
	struct gw_config *cfg = test_config();
	const struct gw_route_flag *f0 = cfg->routes[0].flag, *f1 = cfg->routes[1].flag;

	ck_assert_uint_eq(cfg->nflags, 4);
	ck_assert_str_eq(cfg->flags[1].name, "b");
	ck_assert_str_eq(fmt(cfg->flags[1].def), "10%");
	ck_assert_str_eq(fmt(cfg->flags[3].def), "on");
	ck_assert_uint_eq(cfg->flags[1].seed, gw_flag_seed("b"));
	ck_assert_uint_eq(cfg->nprofiles, 2);
	ck_assert_int_eq(cfg->profiles[0].shed_level, 1);
	ck_assert_int_eq(cfg->profiles[1].shed_level, GW_SHED_LEVEL_AUTO);
	ck_assert_uint_eq(cfg->profiles[0].nflags, 2);
	/* redis defaults */
	ck_assert(cfg->has_redis);
	ck_assert_str_eq(cfg->redis.host, "127.0.0.1");
	ck_assert_uint_eq(cfg->redis.port, 6379);
	ck_assert_str_eq(cfg->redis.prefix, "gw:");
	ck_assert_uint_eq(cfg->redis.connect_timeout_ms, 250);
	ck_assert_uint_eq(cfg->redis.command_timeout_ms, 250);
	ck_assert_uint_eq(cfg->redis.poll_interval_ms, 5000);
	ck_assert_ptr_null(cfg->redis.cache_file);
	ck_assert_ptr_null(cfg->redis.password_env);
	/* route flags: the when_off copy shares the route but not its upstream */
	ck_assert_uint_eq(f0->index, 0);
	ck_assert_str_eq(f0->when_off_upstream->name, "old");
	ck_assert_ptr_nonnull(f0->when_off_route);
	ck_assert_ptr_eq(f0->when_off_route->upstream, f0->when_off_upstream);
	ck_assert_str_eq(f0->when_off_route->name, "r0");
	ck_assert_uint_eq(f0->when_off_route->index, 0);
	ck_assert_ptr_null(f0->when_off_route->flag);
	ck_assert_ptr_eq(f0->when_off_route->module_conf[0], cfg->routes[0].module_conf[0]);
	ck_assert_uint_eq(f1->index, 1);
	ck_assert_uint_eq(f1->when_off_status, 410);
	ck_assert_ptr_null(f1->when_off_route);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(config_unix_socket_and_defaults_without_redis)
{
	struct gw_errlist errs = {0};
	struct gw_config *cfg = gw_config_load_string(
	    "u.yaml",
	    "redis: { address: /run/redis.sock, prefix: '', cache_file: /tmp/x.json }\n"
	    "upstreams: { u: { servers: [\"127.0.0.1:9001\"] } }\n"
	    "routes: [ { name: r, upstream: u } ]\n",
	    &errs);

	ck_assert_msg(cfg != NULL, "%s", errs.count ? errs.items[0] : "?");
	ck_assert_str_eq(cfg->redis.unix_path, "/run/redis.sock");
	ck_assert_ptr_null(cfg->redis.host);
	ck_assert_str_eq(cfg->redis.prefix, "");
	ck_assert_str_eq(cfg->redis.cache_file, "/tmp/x.json");
	ck_assert_uint_eq(cfg->nflags, 0);
	ck_assert_ptr_null(cfg->routes[0].flag);
	gw_config_unref(cfg);
	gw_errlist_free(&errs);
}
END_TEST

/* ---- reads of Redis into the remote layer --------------------------------- */

START_TEST(read_sets_values_and_absent_keys_clear_them)
{
	struct gw_config *cfg = test_config();
	struct gw_flags_layer *l = gw_flags_layer_new(cfg);
	struct gw_flags_complaints c;
	struct gw_flags_read rd;

	gw_flags_complaints_init(&c, cfg);
	read_init(&rd, cfg);
	read_field(&rd, "b", "30%");
	read_op(&rd, GW_OPS_SHED_LEVEL, "2", 500);
	read_op(&rd, GW_OPS_PROFILE, "calm", -1);
	read_op(&rd, GW_OPS_BREAKER0 + 0, "open", 7200000);
	gw_flags_layer_update(l, cfg, &rd, &c, NOW);
	ck_assert(!l->has_flag[0]);
	ck_assert(l->has_flag[1]);
	ck_assert_str_eq(fmt(l->flags[1]), "30%");
	ck_assert(l->has_shed_level);
	ck_assert_int_eq(l->shed_level, 2);
	ck_assert_int_eq(l->shed_expires_ms, NOW + 500);
	ck_assert(l->has_profile);
	ck_assert_uint_eq(l->profile, 1);
	ck_assert_int_eq(l->profile_expires_ms, 0);
	ck_assert(l->has_breaker[0]);
	ck_assert_int_eq(l->breakers[0], GW_BREAKER_FORCE_OPEN);
	ck_assert_int_eq(l->breaker_expires_ms[0], NOW + 7200000);
	gw_flags_read_clear(&rd);

	/* Everything gone from Redis (deleted, or expired there). */
	read_init(&rd, cfg);
	gw_flags_layer_update(l, cfg, &rd, &c, NOW);
	ck_assert(!l->has_flag[1]);
	ck_assert(!l->has_shed_level);
	ck_assert(!l->has_profile);
	ck_assert(!l->has_breaker[0]);
	gw_flags_read_clear(&rd);

	/* "auto", "none" and "" are the same as no key. */
	read_init(&rd, cfg);
	read_op(&rd, GW_OPS_SHED_LEVEL, "auto", -1);
	read_op(&rd, GW_OPS_PROFILE, "none", -1);
	read_op(&rd, GW_OPS_BREAKER0 + 1, "auto", -1);
	gw_flags_layer_update(l, cfg, &rd, &c, NOW);
	ck_assert(!l->has_shed_level);
	ck_assert(!l->has_profile);
	ck_assert(!l->has_breaker[1]);
	gw_flags_read_clear(&rd);
	gw_flags_complaints_free(&c);
	gw_flags_layer_free(l);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(bad_values_keep_the_previous_value_and_are_logged_once)
{
	struct gw_config *cfg = test_config();
	struct gw_flags_layer *l = gw_flags_layer_new(cfg);
	struct gw_flags_complaints c;
	struct gw_flags_read rd;
	struct captured cap;
	char *log;

	gw_flags_complaints_init(&c, cfg);
	read_init(&rd, cfg);
	read_field(&rd, "b", "30%");
	read_op(&rd, GW_OPS_SHED_LEVEL, "1", -1);
	read_op(&rd, GW_OPS_PROFILE, "peak", -1);
	read_op(&rd, GW_OPS_BREAKER0 + 0, "closed", -1);
	gw_flags_layer_update(l, cfg, &rd, &c, NOW);
	gw_flags_read_clear(&rd);

	cap = capture_start();
	for (int round = 0; round < 3; round++) {
		read_init(&rd, cfg);
		read_field(&rd, "b", "banana");
		read_field(&rd, "zz", "on"); /* not a flag of this gateway */
		read_op(&rd, GW_OPS_SHED_LEVEL, "7", -1);
		read_op(&rd, GW_OPS_PROFILE, "no-such-profile", -1);
		read_op(&rd, GW_OPS_BREAKER0 + 0, "ajar\x01", -1);
		gw_flags_layer_update(l, cfg, &rd, &c, NOW);
		gw_flags_read_clear(&rd);
	}
	log = capture_end(&cap);
	ck_assert_str_eq(fmt(l->flags[1]), "30%");
	ck_assert_int_eq(l->shed_level, 1);
	ck_assert_uint_eq(l->profile, 0);
	ck_assert_int_eq(l->breakers[0], GW_BREAKER_FORCE_CLOSED);
	ck_assert_int_eq(count_occurrences(log, "\n"), 5);
	ck_assert_int_eq(count_occurrences(log, "ignoring gw:flags b = 'banana' (expected on, off "
	                                        "or N%); keeping 30%"),
	                 1);
	ck_assert_int_eq(count_occurrences(log, "gw:flags has 'zz'"), 1);
	ck_assert_int_eq(count_occurrences(log, "ignoring gw:ops:shed_level = '7'"), 1);
	ck_assert_int_eq(count_occurrences(log, "ignoring gw:ops:profile = 'no-such-profile'"), 1);
	ck_assert_int_eq(count_occurrences(log, "ignoring gw:ops:breaker:r0 = 'ajar\\x01'"), 1);
	free(log);

	/* Another bad value is news again; a good one clears the memory. */
	cap = capture_start();
	read_init(&rd, cfg);
	read_field(&rd, "b", "lots");
	gw_flags_layer_update(l, cfg, &rd, &c, NOW);
	gw_flags_read_clear(&rd);
	read_init(&rd, cfg);
	read_field(&rd, "b", "40%");
	gw_flags_layer_update(l, cfg, &rd, &c, NOW);
	gw_flags_read_clear(&rd);
	read_init(&rd, cfg);
	read_field(&rd, "b", "lots");
	gw_flags_layer_update(l, cfg, &rd, &c, NOW);
	gw_flags_read_clear(&rd);
	log = capture_end(&cap);
	ck_assert_int_eq(count_occurrences(log, "'lots'"), 2);
	ck_assert_str_eq(fmt(l->flags[1]), "40%");
	free(log);

	/* gw:flags of the wrong type: the flags stay, once logged. */
	cap = capture_start();
	read_init(&rd, cfg);
	rd.flags_bad = true;
	gw_flags_layer_update(l, cfg, &rd, &c, NOW);
	gw_flags_layer_update(l, cfg, &rd, &c, NOW);
	gw_flags_read_clear(&rd);
	log = capture_end(&cap);
	ck_assert_int_eq(count_occurrences(log, "gw:flags is not a hash"), 1);
	ck_assert(l->has_flag[1]);
	free(log);
	gw_flags_complaints_free(&c);
	gw_flags_layer_free(l);
	gw_config_unref(cfg);
}
END_TEST

/* ---- resolution ---------------------------------------------------------------- */

START_TEST(resolution_order_is_override_profile_redis_default)
{
	struct gw_config *cfg = test_config();
	struct gw_flags_layer *remote = gw_flags_layer_new(cfg), *ov = gw_flags_layer_new(cfg);
	struct gw_flags_snap *s;

	/* Redis: a off, b 30%, c on; profile peak sets a off, b 50%. */
	remote->has_flag[0] = remote->has_flag[1] = remote->has_flag[2] = true;
	remote->flags[0] = fv("off");
	remote->flags[1] = fv("30%");
	remote->flags[2] = fv("on");
	remote->has_profile = true;
	remote->profile = 0;
	/* The override wins for a. */
	ov->has_flag[0] = true;
	ov->flags[0] = fv("on");
	s = gw_flags_resolve(cfg, remote, ov, NOW);
	ck_assert_str_eq(fmt(s->flags[0].value), "on");
	ck_assert_int_eq(s->flags[0].source, GW_FLAG_SRC_OVERRIDE);
	ck_assert_str_eq(fmt(s->flags[1].value), "50%");
	ck_assert_int_eq(s->flags[1].source, GW_FLAG_SRC_PROFILE);
	ck_assert_str_eq(fmt(s->flags[2].value), "on");
	ck_assert_int_eq(s->flags[2].source, GW_FLAG_SRC_REDIS);
	ck_assert_str_eq(fmt(s->flags[3].value), "on");
	ck_assert_int_eq(s->flags[3].source, GW_FLAG_SRC_DEFAULT);
	ck_assert_int_eq(s->profile, 0);
	ck_assert_int_eq(s->profile_source, GW_FLAG_SRC_REDIS);
	gw_flags_snap_unref(s);

	/* Without override or profile: Redis, then defaults. */
	remote->has_profile = false;
	s = gw_flags_resolve(cfg, remote, NULL, NOW);
	ck_assert_str_eq(fmt(s->flags[0].value), "off");
	ck_assert_int_eq(s->flags[0].source, GW_FLAG_SRC_REDIS);
	ck_assert_str_eq(fmt(s->flags[1].value), "30%");
	ck_assert_int_eq(s->profile, -1);
	gw_flags_snap_unref(s);

	/* Nothing anywhere: every default, from the default. */
	s = gw_flags_resolve(cfg, NULL, NULL, NOW);
	for (size_t i = 0; i < cfg->nflags; i++) {
		ck_assert(gw_flag_value_equal(s->flags[i].value, cfg->flags[i].def));
		ck_assert_int_eq(s->flags[i].source, GW_FLAG_SRC_DEFAULT);
	}
	ck_assert_int_eq(s->shed_level, GW_SHED_LEVEL_AUTO);
	ck_assert_int_eq(s->breakers[0], GW_BREAKER_FORCE_AUTO);
	gw_flags_snap_unref(s);
	gw_flags_layer_free(remote);
	gw_flags_layer_free(ov);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(shed_level_key_beats_profile_level_and_override_beats_both)
{
	struct gw_config *cfg = test_config();
	struct gw_flags_layer *remote = gw_flags_layer_new(cfg), *ov = gw_flags_layer_new(cfg);
	struct gw_flags_snap *s;

	remote->has_profile = true;
	remote->profile = 0; /* peak: shed_level 1 */
	s = gw_flags_resolve(cfg, remote, ov, NOW);
	ck_assert_int_eq(s->shed_level, 1);
	ck_assert_int_eq(s->shed_source, GW_FLAG_SRC_PROFILE);
	gw_flags_snap_unref(s);

	remote->has_shed_level = true;
	remote->shed_level = 2;
	s = gw_flags_resolve(cfg, remote, ov, NOW);
	ck_assert_int_eq(s->shed_level, 2);
	ck_assert_int_eq(s->shed_source, GW_FLAG_SRC_REDIS);
	gw_flags_snap_unref(s);

	ov->has_shed_level = true;
	ov->shed_level = 0;
	s = gw_flags_resolve(cfg, remote, ov, NOW);
	ck_assert_int_eq(s->shed_level, 0);
	ck_assert_int_eq(s->shed_source, GW_FLAG_SRC_OVERRIDE);
	gw_flags_snap_unref(s);

	/* A profile with no level of its own leaves the detector in charge. */
	remote->has_shed_level = false;
	remote->profile = 1;
	s = gw_flags_resolve(cfg, remote, NULL, NOW);
	ck_assert_int_eq(s->shed_level, GW_SHED_LEVEL_AUTO);
	ck_assert_int_eq(s->shed_source, GW_FLAG_SRC_DEFAULT);
	gw_flags_snap_unref(s);
	gw_flags_layer_free(remote);
	gw_flags_layer_free(ov);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(ops_values_end_with_their_ttl)
{
	struct gw_config *cfg = test_config();
	struct gw_flags_layer *remote = gw_flags_layer_new(cfg);
	struct gw_flags_snap *s;

	remote->has_shed_level = true;
	remote->shed_level = 2;
	remote->shed_expires_ms = NOW + 500;
	remote->has_profile = true;
	remote->profile = 0;
	remote->profile_expires_ms = NOW + 1000;
	remote->has_breaker[0] = true;
	remote->breakers[0] = GW_BREAKER_FORCE_OPEN;
	remote->breaker_expires_ms[0] = NOW + 500;

	s = gw_flags_resolve(cfg, remote, NULL, NOW + 499);
	ck_assert_int_eq(s->shed_level, 2);
	ck_assert_int_eq(s->breakers[0], GW_BREAKER_FORCE_OPEN);
	ck_assert_int_eq(s->profile, 0);
	gw_flags_snap_unref(s);

	/* At its end the key's value is gone: the profile's level shows. */
	s = gw_flags_resolve(cfg, remote, NULL, NOW + 500);
	ck_assert_int_eq(s->shed_level, 1);
	ck_assert_int_eq(s->shed_source, GW_FLAG_SRC_PROFILE);
	ck_assert_int_eq(s->breakers[0], GW_BREAKER_FORCE_AUTO);
	ck_assert_int_eq(s->breaker_sources[0], GW_FLAG_SRC_DEFAULT);
	gw_flags_snap_unref(s);

	s = gw_flags_resolve(cfg, remote, NULL, NOW + 1000);
	ck_assert_int_eq(s->profile, -1);
	ck_assert_int_eq(s->shed_level, GW_SHED_LEVEL_AUTO);
	ck_assert_str_eq(fmt(s->flags[0].value), "on");
	ck_assert_int_eq(s->flags[0].source, GW_FLAG_SRC_DEFAULT);
	gw_flags_snap_unref(s);
	gw_flags_layer_free(remote);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(cached_values_say_cache)
{
	struct gw_config *cfg = test_config();
	struct gw_flags_layer *remote = gw_flags_layer_new(cfg);
	struct gw_flags_snap *s;

	remote->cached = true;
	remote->has_flag[2] = true;
	remote->flags[2] = fv("on");
	s = gw_flags_resolve(cfg, remote, NULL, NOW);
	ck_assert_int_eq(s->flags[2].source, GW_FLAG_SRC_CACHE);
	ck_assert_str_eq(gw_flag_source_name(s->flags[2].source), "cache");
	gw_flags_snap_unref(s);
	gw_flags_layer_free(remote);
	gw_config_unref(cfg);
}
END_TEST

/* ---- snapshots -------------------------------------------------------------------- */

START_TEST(snapshots_compare_by_values_and_sources_and_count_references)
{
	struct gw_config *cfg = test_config();
	struct gw_flags_layer *remote = gw_flags_layer_new(cfg);
	struct gw_flags_snap *a, *b;

	a = gw_flags_resolve(cfg, remote, NULL, NOW);
	b = gw_flags_resolve(cfg, remote, NULL, NOW);
	ck_assert(gw_flags_snap_equal(a, b));
	gw_flags_snap_unref(b);
	/* Same value from another source is a change (it is logged). */
	remote->has_flag[0] = true;
	remote->flags[0] = fv("on");
	b = gw_flags_resolve(cfg, remote, NULL, NOW);
	ck_assert_str_eq(fmt(b->flags[0].value), fmt(a->flags[0].value));
	ck_assert(!gw_flags_snap_equal(a, b));
	gw_flags_snap_unref(b);

	/* The snapshot keeps its config alive. */
	ck_assert_int_eq(atomic_load(&cfg->refs), 2);
	ck_assert_ptr_eq(gw_flags_snap_ref(a), a);
	ck_assert_int_eq(atomic_load(&a->refs), 2);
	gw_flags_snap_unref(a);
	gw_config_unref(cfg);
	ck_assert_str_eq(a->config->flags[0].name, "a");
	gw_flags_snap_unref(a);
	gw_flags_layer_free(remote);
}
END_TEST

START_TEST(changes_are_logged_with_value_and_source)
{
	struct gw_config *cfg = test_config();
	struct gw_flags_layer *remote = gw_flags_layer_new(cfg);
	struct gw_flags_snap *a, *b;
	struct captured cap;
	char *log;

	a = gw_flags_resolve(cfg, remote, NULL, NOW);
	remote->has_flag[1] = true;
	remote->flags[1] = fv("30%");
	remote->has_profile = true;
	remote->profile = 1; /* calm: c on */
	remote->has_breaker[0] = true;
	remote->breakers[0] = GW_BREAKER_FORCE_OPEN;
	remote->has_breaker[1] = true;
	remote->breakers[1] = GW_BREAKER_FORCE_CLOSED;
	b = gw_flags_resolve(cfg, remote, NULL, NOW);
	cap = capture_start();
	gw_flags_log_changes(a, b);
	gw_flags_log_changes(b, b);
	log = capture_end(&cap);
	ck_assert_int_eq(count_occurrences(log, "\n"), 5);
	ck_assert_int_eq(count_occurrences(log, "info profile = calm (redis)\n"), 1);
	ck_assert_int_eq(count_occurrences(log, "info flag b = 30% (redis)\n"), 1);
	ck_assert_int_eq(count_occurrences(log, "info flag c = on (profile calm)\n"), 1);
	ck_assert_int_eq(count_occurrences(log, "info breaker r0 = open (redis)\n"), 1);
	ck_assert_int_eq(count_occurrences(log, "info breaker r1 = closed (redis)\n"), 1);
	free(log);

	/* At start-up (no previous snapshot) only what is not a default. */
	cap = capture_start();
	gw_flags_log_changes(NULL, a);
	log = capture_end(&cap);
	ck_assert_str_eq(log, "");
	free(log);
	gw_flags_snap_unref(a);
	gw_flags_snap_unref(b);
	gw_flags_layer_free(remote);
	gw_config_unref(cfg);
}
END_TEST

/* ---- the request path -------------------------------------------------------------- */

START_TEST(admit_routes_on_answers_or_reroutes_off)
{
	struct gw_config *cfg = test_config();
	struct gw_flags_layer *remote = gw_flags_layer_new(cfg);
	struct evkeyvalq headers;
	struct gw_flags_snap *s;
	const struct gw_route_conf *r0 = &cfg->routes[0], *r1 = &cfg->routes[1];
	uint32_t seed_b = gw_flag_seed("b");
	int on = 0;

	TAILQ_INIT(&headers);
	/* Defaults: a on -> r0 itself. */
	s = gw_flags_resolve(cfg, remote, NULL, NOW);
	ck_assert_ptr_eq(gw_flags_admit(s, cfg, r0, &headers, "10.0.0.1"), r0);
	gw_flags_snap_unref(s);

	/* a off: r0 goes to its when_off copy; b off: r1 is answered (NULL). */
	remote->has_flag[0] = remote->has_flag[1] = true;
	remote->flags[0] = fv("off");
	remote->flags[1] = fv("off");
	s = gw_flags_resolve(cfg, remote, NULL, NOW);
	ck_assert_ptr_eq(gw_flags_admit(s, cfg, r0, &headers, "10.0.0.1"),
	                 r0->flag->when_off_route);
	ck_assert_ptr_null(gw_flags_admit(s, cfg, r1, &headers, "10.0.0.1"));
	gw_flags_snap_unref(s);

	/* b 30%: the X-User-ID header decides, and the same user always gets
	 * the same answer; without the header, the client address. */
	remote->flags[1] = fv("30%");
	s = gw_flags_resolve(cfg, remote, NULL, NOW);
	for (int i = 0; i < 1000; i++) {
		char user[16];
		bool expect, got;

		snprintf(user, sizeof(user), "u%d", i);
		expect = gw_flag_bucket(seed_b, user, strlen(user)) < 30;
		evhttp_add_header(&headers, "X-User-ID", user);
		got = gw_flags_admit(s, cfg, r1, &headers, "10.0.0.1") == r1;
		ck_assert_int_eq(got, expect);
		ck_assert_int_eq(gw_flags_admit(s, cfg, r1, &headers, "10.9.9.9") == r1, got);
		evhttp_clear_headers(&headers);
		on += got;
	}
	ck_assert_int_gt(on, 230);
	ck_assert_int_lt(on, 370);
	ck_assert_int_eq(gw_flags_admit(s, cfg, r1, &headers, "10.1.2.3") == r1,
	                 gw_flag_bucket(seed_b, "10.1.2.3", 8) < 30);
	evhttp_add_header(&headers, "X-User-ID", ""); /* empty: the address */
	ck_assert_int_eq(gw_flags_admit(s, cfg, r1, &headers, "10.1.2.3") == r1,
	                 gw_flag_bucket(seed_b, "10.1.2.3", 8) < 30);
	evhttp_clear_headers(&headers);
	gw_flags_snap_unref(s);

	/* No snapshot for this config: the YAML defaults (b 10%). */
	evhttp_add_header(&headers, "x-user-id", "alice");
	ck_assert_int_eq(gw_flags_admit(NULL, cfg, r1, &headers, NULL) == r1,
	                 gw_flag_bucket(seed_b, "alice", 5) < 10);
	evhttp_clear_headers(&headers);
	gw_flags_layer_free(remote);
	gw_config_unref(cfg);
}
END_TEST

/* ---- the cache file ------------------------------------------------------------------ */

static char *temp_path(void)
{
	char *path = strdup("/tmp/gw-flags-test-XXXXXX");
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	close(fd);
	return path;
}

START_TEST(cache_file_round_trips_and_drops_ended_values)
{
	struct gw_config *cfg = test_config();
	struct gw_flags_layer *l = gw_flags_layer_new(cfg), *back = gw_flags_layer_new(cfg);
	char *path = temp_path(), why[320] = "";

	l->has_flag[1] = true;
	l->flags[1] = fv("30%");
	l->has_flag[2] = true;
	l->flags[2] = fv("on");
	l->has_shed_level = true;
	l->shed_level = 2;
	l->shed_expires_ms = NOW + 500;
	l->has_profile = true;
	l->profile = 0;
	l->has_breaker[1] = true;
	l->breakers[1] = GW_BREAKER_FORCE_CLOSED;
	l->breaker_expires_ms[1] = NOW + 60000;
	ck_assert_msg(gw_flags_cache_write(path, cfg, l, why, sizeof(why)) == 0, "%s", why);
	ck_assert_msg(gw_flags_cache_read(path, cfg, back, NOW, why, sizeof(why)) == 0, "%s", why);
	ck_assert(back->cached);
	l->cached = true;
	ck_assert(gw_flags_layer_equal(l, back, 0));
	gw_flags_layer_free(back);

	/* Read later: the shed level has ended, the rest stays. */
	back = gw_flags_layer_new(cfg);
	ck_assert_int_eq(gw_flags_cache_read(path, cfg, back, NOW + 501, why, sizeof(why)), 0);
	ck_assert(!back->has_shed_level);
	ck_assert(back->has_profile);
	ck_assert(back->has_breaker[1]);
	ck_assert_str_eq(fmt(back->flags[1]), "30%");
	gw_flags_layer_free(back);
	unlink(path);
	free(path);
	gw_flags_layer_free(l);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(cache_file_that_is_missing_or_corrupt_is_refused_with_a_reason)
{
	static const char *const corrupt[] = {
	    "",
	    "{",
	    "{\"version\":1,\"flags\":{\"a\":\"on\"}",
	    "{\"version\":2,\"flags\":{}}",
	    "[1,2]",
	    "{\"version\":1} trailing",
	    "{\"version\":1,\"flags\":{\"a\":\"on\\q\"}}",
	};
	struct gw_config *cfg = test_config();
	char *path = temp_path(), why[320];

	for (size_t i = 0; i < sizeof(corrupt) / sizeof(corrupt[0]); i++) {
		struct gw_flags_layer *l = gw_flags_layer_new(cfg);
		FILE *f = fopen(path, "w");

		fputs(corrupt[i], f);
		fclose(f);
		why[0] = '\0';
		ck_assert_msg(gw_flags_cache_read(path, cfg, l, NOW, why, sizeof(why)) == -1,
		              "'%s' was accepted", corrupt[i]);
		ck_assert_msg(strstr(why, path) != NULL, "reason '%s'", why);
		ck_assert(!l->has_flag[0] && !l->cached);
		gw_flags_layer_free(l);
	}
	/* Unknown names and bad values are skipped, the rest is kept. */
	{
		struct gw_flags_layer *l = gw_flags_layer_new(cfg);
		FILE *f = fopen(path, "w");

		fputs("{\"version\":1,\"flags\":{\"gone\":\"on\",\"a\":\"maybe\",\"c\":\"on\"},"
		      "\"profile\":{\"value\":\"nope\",\"expires_ms\":0},"
		      "\"breakers\":{\"r0\":{\"value\":\"open\",\"expires_ms\":0}}}",
		      f);
		fclose(f);
		ck_assert_int_eq(gw_flags_cache_read(path, cfg, l, NOW, why, sizeof(why)), 0);
		ck_assert(!l->has_flag[0]);
		ck_assert(l->has_flag[2]);
		ck_assert(!l->has_profile);
		ck_assert(l->has_breaker[0]);
		gw_flags_layer_free(l);
	}
	unlink(path);
	{
		struct gw_flags_layer *l = gw_flags_layer_new(cfg);

		ck_assert_int_eq(gw_flags_cache_read(path, cfg, l, NOW, why, sizeof(why)), -1);
		ck_assert(strstr(why, "No such file") != NULL);
		gw_flags_layer_free(l);
	}
	free(path);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(cache_write_into_a_missing_directory_fails_cleanly)
{
	struct gw_config *cfg = test_config();
	struct gw_flags_layer *l = gw_flags_layer_new(cfg);
	char why[320];

	ck_assert_int_eq(
	    gw_flags_cache_write("/nonexistent-dir/flags.json", cfg, l, why, sizeof(why)), -1);
	ck_assert(strstr(why, "/nonexistent-dir/flags.json") != NULL);
	gw_flags_layer_free(l);
	gw_config_unref(cfg);
}
END_TEST

/* ---- reconnect backoff ----------------------------------------------------------------- */

START_TEST(reconnect_backoff_doubles_to_its_cap_with_jitter_in_the_upper_half)
{
	static const uint64_t full[] = {100, 200, 400, 800, 1000, 1000, 1000};

	for (unsigned n = 1; n <= 7; n++) {
		uint64_t d = full[n - 1];

		ck_assert_uint_eq(gw_redis_backoff_ms(n, 100, 1000, 0), d - d / 2);
		ck_assert_uint_eq(gw_redis_backoff_ms(n, 100, 1000, d / 2), d);
		for (uint64_t rnd = 0; rnd < 5000; rnd += 37) {
			uint64_t v = gw_redis_backoff_ms(n, 100, 1000, rnd * 2654435761u);

			ck_assert_uint_ge(v, d - d / 2);
			ck_assert_uint_le(v, d);
		}
	}
	/* No overflow however long the outage. */
	ck_assert_uint_le(gw_redis_backoff_ms(100000, 100, 5000, UINT64_MAX), 5000);
}
END_TEST

/* ---- suite ------------------------------------------------------------------------------ */

static Suite *flags_suite(void)
{
	Suite *s = suite_create("flags");

	gw_test_add_case(s, "fnv1a32_matches_the_reference_vectors",
	                 fnv1a32_matches_the_reference_vectors, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "bucket_is_fnv_of_flag_colon_key_mod_100",
	                 bucket_is_fnv_of_flag_colon_key_mod_100, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "percentage_flag_covers_about_n_percent_of_keys",
	                 percentage_flag_covers_about_n_percent_of_keys, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "flag_values_parse_strictly", flag_values_parse_strictly,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "shed_levels_parse_auto_and_0_to_2", shed_levels_parse_auto_and_0_to_2,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "config_reads_flags_profiles_redis_and_route_flags",
	                 config_reads_flags_profiles_redis_and_route_flags,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "config_unix_socket_and_defaults_without_redis",
	                 config_unix_socket_and_defaults_without_redis, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "read_sets_values_and_absent_keys_clear_them",
	                 read_sets_values_and_absent_keys_clear_them, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "bad_values_keep_the_previous_value_and_are_logged_once",
	                 bad_values_keep_the_previous_value_and_are_logged_once,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "resolution_order_is_override_profile_redis_default",
	                 resolution_order_is_override_profile_redis_default,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "shed_level_key_beats_profile_level_and_override_beats_both",
	                 shed_level_key_beats_profile_level_and_override_beats_both,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "ops_values_end_with_their_ttl", ops_values_end_with_their_ttl,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "cached_values_say_cache", cached_values_say_cache,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "snapshots_compare_by_values_and_sources_and_count_references",
	                 snapshots_compare_by_values_and_sources_and_count_references,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "changes_are_logged_with_value_and_source",
	                 changes_are_logged_with_value_and_source, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "admit_routes_on_answers_or_reroutes_off",
	                 admit_routes_on_answers_or_reroutes_off, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "cache_file_round_trips_and_drops_ended_values",
	                 cache_file_round_trips_and_drops_ended_values, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "cache_file_that_is_missing_or_corrupt_is_refused_with_a_reason",
	                 cache_file_that_is_missing_or_corrupt_is_refused_with_a_reason,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "cache_write_into_a_missing_directory_fails_cleanly",
	                 cache_write_into_a_missing_directory_fails_cleanly,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "reconnect_backoff_doubles_to_its_cap_with_jitter_in_the_upper_half",
	                 reconnect_backoff_doubles_to_its_cap_with_jitter_in_the_upper_half,
	                 GW_TEST_DEFAULT_TIMEOUT);
	return s;
}

int main(void)
{
	return gw_test_run_suite(flags_suite(), CK_FORK);
}
