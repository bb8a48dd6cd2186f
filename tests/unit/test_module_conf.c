/*
 * Module configuration: the typed readers modules share (conf_read.h) and
 * their tables of keys (gw_conf_read_table), the registry, and the `retry`,
 * `circuit_breaker` and `fallback` route keys through the real loader
 * (gw_config_load_string): the values and defaults they give, and every
 * error with its exact FILE:LINE:COL message.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/config/conf_read.h"
#include "gateway/config/config.h"
#include "gateway/config/yaml_tree.h"
#include "gateway/util/errlist.h"
#include "modules/circuit_breaker/breaker.h"
#include "modules/concurrency/concurrency.h"
#include "modules/fallback/fallback.h"
#include "modules/flags/flags_module.h"
#include "modules/module.h"
#include "modules/rate_limit/rate_limit.h"
#include "modules/retry/retry.h"
#include "modules/shedding/shedding.h"
#include "check_suite.h"

/* ---- helpers ----------------------------------------------------------- */

/* Lines 1-7; a test's route keys start on line 8, indented by 4. */
static const char head[] = "upstreams:\n"
                           "  u:\n"
                           "    servers: [\"127.0.0.1:9001\"]\n"
                           "routes:\n"
                           "  - name: r\n"
                           "    upstream: u\n"
                           "    timeout: 3s\n";

/* All errors, one per line, for failure messages; the caller frees. */
static char *with_head(const char *tail)
{
	char *yaml = malloc(sizeof(head) + strlen(tail));

	strcpy(yaml, head);
	strcat(yaml, tail);
	return yaml;
}

/* head + tail must load without a word; the caller unrefs. */
static struct gw_config *load_ok(const char *tail)
{
	struct gw_errlist errs = {0};
	char *yaml = with_head(tail);
	struct gw_config *cfg = gw_config_load_string("m.yaml", yaml, &errs);
	char *all = gw_test_join_errors(&errs);

	ck_assert_msg(cfg != NULL && errs.count == 0, "should load:\n%s\ngot:%s", yaml, all);
	free(all);
	free(yaml);
	gw_errlist_free(&errs);
	return cfg;
}

/* head + tail must fail with exactly the messages of expect (NULL-ended). */
static void load_fails(const char *tail, const char *const expect[])
{
	struct gw_errlist errs = {0};
	char *yaml = with_head(tail);
	struct gw_config *cfg = gw_config_load_string("m.yaml", yaml, &errs);
	char *all = gw_test_join_errors(&errs);
	size_t n = 0;

	ck_assert_msg(cfg == NULL, "should fail:\n%s", yaml);
	while (expect[n])
		n++;
	ck_assert_msg(errs.count == n, "expected %zu errors for:\n%s\ngot:%s", n, yaml, all);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(strcmp(errs.items[i], expect[i]) == 0,
		              "error %zu:\nexpected: %s\ngot:%s", i, expect[i], all);
	free(all);
	free(yaml);
	gw_errlist_free(&errs);
}

#define FAILS(tail, ...) load_fails(tail, (const char *const[]){__VA_ARGS__, NULL})

/*
 * A YAML document whose top-level mapping holds the values the conf_read
 * tests read. Owned by the test: doc_free.
 */
static struct gw_yaml_doc doc_load(const char *yaml)
{
	struct gw_yaml_doc doc;
	struct gw_errlist errs = {0};

	ck_assert_int_eq(gw_yaml_load_string("t.yaml", yaml, strlen(yaml), &doc, &errs), 0);
	ck_assert_uint_eq(errs.count, 0);
	return doc;
}

/* Exactly one error was added, and it is msg; the list is emptied. */
static void assert_one_error(struct gw_errlist *errs, const char *msg)
{
	char *all = gw_test_join_errors(errs);

	ck_assert_msg(errs->count == 1 && strcmp(errs->items[0], msg) == 0,
	              "expected exactly:\n  %s\ngot:%s", msg, all);
	free(all);
	gw_errlist_free(errs);
}

/* ---- conf_read --------------------------------------------------------- */

START_TEST(conf_read_where_nests_sections)
{
	struct gw_errlist errs = {0};
	struct gw_conf_ctx top = {.file = "f", .errs = &errs, .where = NULL};
	struct gw_conf_ctx route = {.file = "f", .errs = &errs, .where = "route 'checkout'"};
	struct gw_conf_ctx a, b, c;
	char wa[GW_CONF_WHERE_MAX], wb[GW_CONF_WHERE_MAX], wc[GW_CONF_WHERE_MAX];

	gw_conf_ctx_enter(&route, "retry", &a, wa);
	gw_conf_ctx_enter(&a, "backoff", &b, wb);
	gw_conf_ctx_enter(&top, "limits", &c, wc);
	ck_assert_str_eq(a.where, "retry of route 'checkout'");
	ck_assert_str_eq(b.where, "backoff of retry of route 'checkout'");
	ck_assert_str_eq(c.where, "limits");
	ck_assert_str_eq(b.file, "f");
	ck_assert_ptr_eq(b.errs, &errs);
}
END_TEST

START_TEST(conf_read_duration_spells_its_range_like_the_file)
{
	struct gw_yaml_doc doc = doc_load("a: 3601s\nb: 2 s\nc: 99999999999999999999ms\n"
	                                  "d: [1s]\ne: 250ms\nf: 0\ng:\n");
	struct gw_errlist errs = {0};
	struct gw_conf_ctx ctx = {.file = "t.yaml", .errs = &errs, .where = "route 'r'"};
	const struct gw_node *root = doc.root;
	uint64_t v = 77;

	ck_assert_int_eq(gw_conf_duration(&ctx, gw_node_get(root, "a"), "a", 1, 3600000, &v), -1);
	assert_one_error(&errs, "t.yaml:1:4: 'a' in route 'r': 3601s is out of range (1ms..1h)");
	ck_assert_int_eq(gw_conf_duration(&ctx, gw_node_get(root, "b"), "b", 1, 3600000, &v), -1);
	assert_one_error(&errs, "t.yaml:2:4: 'b' in route 'r': expected a duration such as 250ms, "
	                        "2s, 1m or 1h, got '2 s'");
	ck_assert_int_eq(gw_conf_duration(&ctx, gw_node_get(root, "c"), "c", 0, 3600000, &v), -1);
	assert_one_error(&errs, "t.yaml:3:4: 'c' in route 'r': 99999999999999999999ms is out of "
	                        "range (0..1h)");
	ck_assert_int_eq(gw_conf_duration(&ctx, gw_node_get(root, "d"), "d", 1000, 600000, &v), -1);
	assert_one_error(&errs, "t.yaml:4:4: 'd' in route 'r': expected a duration such as 250ms, "
	                        "2s, 1m or 1h, got a list");
	ck_assert_int_eq(gw_conf_duration(&ctx, gw_node_get(root, "g"), "g", 1000, 1500, &v), -1);
	assert_one_error(&errs, "t.yaml:7:3: 'g' in route 'r': expected a duration such as 250ms, "
	                        "2s, 1m or 1h, got an empty value");
	ck_assert_uint_eq(v, 77); /* failures leave the default */
	ck_assert_int_eq(gw_conf_duration(&ctx, gw_node_get(root, "e"), "e", 1, 3600000, &v), 0);
	ck_assert_uint_eq(v, 250);
	ck_assert_int_eq(gw_conf_duration(&ctx, gw_node_get(root, "f"), "f", 0, 1, &v), 0);
	ck_assert_uint_eq(v, 0);
	ck_assert_int_eq(gw_conf_duration(&ctx, gw_node_get(root, "f"), "f", 1, 1500, &v), -1);
	assert_one_error(&errs, "t.yaml:6:4: 'f' in route 'r': 0 is out of range (1ms..1500ms)");
	gw_yaml_free(&doc);
}
END_TEST

START_TEST(conf_read_integers_and_sizes)
{
	struct gw_yaml_doc doc = doc_load("a: abc\nb: -1\nc: 7\nd: 2m\ne: 16k\n"
	                                  "f: 99999999999999999999999\n");
	struct gw_errlist errs = {0};
	struct gw_conf_ctx ctx = {.file = "t.yaml", .errs = &errs, .where = NULL};
	const struct gw_node *root = doc.root;
	uint64_t v = 0;
	uint32_t w = 0;

	ck_assert_int_eq(gw_conf_uint(&ctx, gw_node_get(root, "a"), "a", 0, 10, &v), -1);
	assert_one_error(&errs, "t.yaml:1:4: 'a': expected an integer, got 'abc'");
	ck_assert_int_eq(gw_conf_u32(&ctx, gw_node_get(root, "b"), "b", 0, 10, &w), -1);
	assert_one_error(&errs, "t.yaml:2:4: 'b': -1 is out of range (0..10)");
	ck_assert_int_eq(gw_conf_uint(&ctx, gw_node_get(root, "f"), "f", 0, 10, &v), -1);
	assert_one_error(&errs, "t.yaml:6:4: 'f': 99999999999999999999999 is out of range (0..10)");
	ck_assert_int_eq(gw_conf_u32(&ctx, gw_node_get(root, "c"), "c", 0, 10, &w), 0);
	ck_assert_uint_eq(w, 7);
	ck_assert_int_eq(gw_conf_u32(&ctx, gw_node_get(root, "c"), "c", 8, 10, &w), -1);
	assert_one_error(&errs, "t.yaml:3:4: 'c': 7 is out of range (8..10)");
	ck_assert_int_eq(gw_conf_size(&ctx, gw_node_get(root, "d"), "d", 1024, 1048576, &v), -1);
	assert_one_error(&errs, "t.yaml:4:4: 'd': 2m is out of range (1k..1m)");
	ck_assert_int_eq(gw_conf_size(&ctx, gw_node_get(root, "e"), "e", 0, 1048576, &v), 0);
	ck_assert_uint_eq(v, 16384);
	ck_assert_int_eq(gw_conf_size(&ctx, gw_node_get(root, "a"), "a", 0, 1048576, &v), -1);
	assert_one_error(&errs,
	                 "t.yaml:1:4: 'a': expected a size such as 512, 16k or 8m, got 'abc'");
	gw_yaml_free(&doc);
}
END_TEST

START_TEST(conf_read_numbers_are_plain_decimals)
{
	static const char *const good[] = {"0", "1", "0.5", "1.0", "0.25", "00.75"};
	static const char *const bad[] = {".5", "1.",  "1e3", "1e-3",  "nan", "inf",
	                                  "+1", "0x1", "1,5", "0.5.1", "- 1"};
	struct gw_errlist errs = {0};
	struct gw_conf_ctx ctx = {.file = "t.yaml", .errs = &errs, .where = "budget"};
	char yaml[64], msg[160];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct gw_yaml_doc doc;
		double v = -1;

		snprintf(yaml, sizeof(yaml), "r: '%s'\n", good[i]);
		doc = doc_load(yaml);
		ck_assert_int_eq(
		    gw_conf_double(&ctx, gw_node_get(doc.root, "r"), "r", 0, 1, false, &v), 0);
		ck_assert_double_eq(v, strtod(good[i], NULL));
		gw_yaml_free(&doc);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct gw_yaml_doc doc;
		double v = -1;

		snprintf(yaml, sizeof(yaml), "r: '%s'\n", bad[i]);
		doc = doc_load(yaml);
		ck_assert_int_eq(
		    gw_conf_double(&ctx, gw_node_get(doc.root, "r"), "r", 0, 1, false, &v), -1);
		snprintf(msg, sizeof(msg), "t.yaml:1:4: 'r' in budget: expected a number, got '%s'",
		         bad[i]);
		assert_one_error(&errs, msg);
		ck_assert_double_eq(v, -1);
		gw_yaml_free(&doc);
	}
}
END_TEST

START_TEST(conf_read_number_ranges_inclusive_and_exclusive)
{
	struct gw_yaml_doc doc = doc_load("a: -0.1\nb: 1.5\nc: 0\nd: 0.000001\ne: 1\n");
	struct gw_errlist errs = {0};
	struct gw_conf_ctx ctx = {.file = "t.yaml", .errs = &errs, .where = "x"};
	const struct gw_node *root = doc.root;
	double v = 9;

	ck_assert_int_eq(gw_conf_double(&ctx, gw_node_get(root, "a"), "a", 0, 1, false, &v), -1);
	assert_one_error(&errs, "t.yaml:1:4: 'a' in x: -0.1 is out of range (0..1)");
	ck_assert_int_eq(gw_conf_double(&ctx, gw_node_get(root, "b"), "b", 0, 1, false, &v), -1);
	assert_one_error(&errs, "t.yaml:2:4: 'b' in x: 1.5 is out of range (0..1)");
	ck_assert_int_eq(gw_conf_double(&ctx, gw_node_get(root, "c"), "c", 0, 1, false, &v), 0);
	ck_assert_double_eq(v, 0);
	ck_assert_int_eq(gw_conf_double(&ctx, gw_node_get(root, "c"), "c", 0, 1, true, &v), -1);
	assert_one_error(&errs, "t.yaml:3:4: 'c' in x: 0 is out of range (more than 0, at most 1)");
	ck_assert_int_eq(gw_conf_double(&ctx, gw_node_get(root, "d"), "d", 0, 1, true, &v), 0);
	ck_assert_double_eq(v, 0.000001);
	ck_assert_int_eq(gw_conf_double(&ctx, gw_node_get(root, "e"), "e", 0, 1, true, &v), 0);
	ck_assert_double_eq(v, 1);
	gw_yaml_free(&doc);
}
END_TEST

START_TEST(conf_read_bools_enums_and_strings)
{
	static const char *const balances[] = {"round_robin", "least_request", "random"};
	struct gw_yaml_doc doc = doc_load("a: true\nb: yes\nc: random\nd: fastest\ne: ''\n"
	                                  "f: text\ng: ~\nh: {x: 1}\n");
	struct gw_errlist errs = {0};
	struct gw_conf_ctx ctx = {.file = "t.yaml", .errs = &errs, .where = "upstream 'u'"};
	const struct gw_node *root = doc.root;
	bool flag = false;
	unsigned e = 9;
	char *s = NULL;

	ck_assert_int_eq(gw_conf_bool(&ctx, gw_node_get(root, "a"), "a", &flag), 0);
	ck_assert(flag);
	ck_assert_int_eq(gw_conf_bool(&ctx, gw_node_get(root, "b"), "b", &flag), -1);
	assert_one_error(&errs,
	                 "t.yaml:2:4: 'b' in upstream 'u': expected true or false, got 'yes'");
	ck_assert_int_eq(gw_conf_enum(&ctx, gw_node_get(root, "c"), "c", balances, 3, &e), 0);
	ck_assert_uint_eq(e, 2);
	ck_assert_int_eq(gw_conf_enum(&ctx, gw_node_get(root, "d"), "d", balances, 3, &e), -1);
	assert_one_error(&errs, "t.yaml:4:4: 'd' in upstream 'u': expected round_robin, "
	                        "least_request or random, got 'fastest'");
	ck_assert_int_eq(gw_conf_enum(&ctx, gw_node_get(root, "h"), "h", balances, 2, &e), -1);
	assert_one_error(&errs, "t.yaml:8:4: 'h' in upstream 'u': expected round_robin or "
	                        "least_request, got a mapping");
	ck_assert_int_eq(gw_conf_string(&ctx, gw_node_get(root, "e"), "e", false, &s), -1);
	assert_one_error(&errs, "t.yaml:5:4: 'e' in upstream 'u': must not be empty");
	ck_assert_ptr_null(s);
	ck_assert_int_eq(gw_conf_string(&ctx, gw_node_get(root, "e"), "e", true, &s), 0);
	ck_assert_str_eq(s, "");
	ck_assert_int_eq(gw_conf_string(&ctx, gw_node_get(root, "f"), "f", false, &s), 0);
	ck_assert_str_eq(s, "text");
	ck_assert_int_eq(gw_conf_string(&ctx, gw_node_get(root, "g"), "g", true, &s), -1);
	assert_one_error(&errs, "t.yaml:7:4: 'g' in upstream 'u': expected a string, got an empty "
	                        "value");
	ck_assert_str_eq(s, "text");
	free(s);
	gw_yaml_free(&doc);
}
END_TEST

START_TEST(conf_read_string_lists)
{
	struct gw_yaml_doc doc = doc_load("a: [x, y, z]\nb: []\nc: x\nd: [x, '', [y], ~]\n");
	struct gw_errlist errs = {0};
	struct gw_conf_ctx ctx = {.file = "t.yaml", .errs = &errs, .where = "flags"};
	const struct gw_node *root = doc.root;
	char **items = NULL;
	size_t n = 0;
	char *all;

	ck_assert_int_eq(gw_conf_string_list(&ctx, gw_node_get(root, "a"), "a", &items, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(items[0], "x");
	ck_assert_str_eq(items[2], "z");
	gw_conf_strings_free(items, n);
	items = NULL;
	ck_assert_int_eq(gw_conf_string_list(&ctx, gw_node_get(root, "b"), "b", &items, &n), -1);
	assert_one_error(&errs, "t.yaml:2:4: 'b' in flags: must not be empty");
	ck_assert_int_eq(gw_conf_string_list(&ctx, gw_node_get(root, "c"), "c", &items, &n), -1);
	assert_one_error(&errs,
	                 "t.yaml:3:4: 'c' in flags: expected a list of strings, got a string");
	ck_assert_int_eq(gw_conf_string_list(&ctx, gw_node_get(root, "d"), "d", &items, &n), -1);
	ck_assert_ptr_null(items);
	all = gw_test_join_errors(&errs);
	ck_assert_msg(errs.count == 3, "got:%s", all);
	free(all);
	ck_assert_str_eq(errs.items[0], "t.yaml:4:8: 'd' in flags: must not contain empty strings");
	ck_assert_str_eq(errs.items[1], "t.yaml:4:12: 'd' in flags: expected a string, got a list");
	ck_assert_str_eq(errs.items[2],
	                 "t.yaml:4:17: 'd' in flags: expected a string, got an empty value");
	gw_errlist_free(&errs);
	gw_yaml_free(&doc);
}
END_TEST

START_TEST(conf_read_keys_shapes_and_missing_keys)
{
	static const char *const allowed[] = {"a", "b", NULL};
	struct gw_yaml_doc doc = doc_load("a: 1\nzz: 2\nb: [1]\nm: {}\nq: []\n");
	struct gw_errlist errs = {0};
	struct gw_conf_ctx top = {.file = "t.yaml", .errs = &errs, .where = NULL};
	struct gw_conf_ctx in = {.file = "t.yaml", .errs = &errs, .where = "retry"};
	const struct gw_node *root = doc.root;

	ck_assert_int_eq(gw_conf_check_keys(&in, root, allowed), -1);
	ck_assert_uint_eq(errs.count, 3);
	ck_assert_str_eq(errs.items[0], "t.yaml:2:1: unknown key 'zz' in retry");
	ck_assert_str_eq(errs.items[1], "t.yaml:4:1: unknown key 'm' in retry");
	ck_assert_str_eq(errs.items[2], "t.yaml:5:1: unknown key 'q' in retry");
	gw_errlist_free(&errs);
	ck_assert_int_eq(gw_conf_check_keys(&top, gw_node_get(root, "m"), allowed), 0);
	ck_assert_int_eq(gw_conf_check_keys(&top, root, allowed), -1);
	ck_assert_str_eq(errs.items[0], "t.yaml:2:1: unknown key 'zz' at top level");
	gw_errlist_free(&errs);

	ck_assert(gw_conf_want_map(&in, gw_node_get(root, "m"), "m"));
	ck_assert(!gw_conf_want_map(&in, gw_node_get(root, "b"), "b"));
	assert_one_error(&errs, "t.yaml:3:4: 'b' in retry: expected a mapping, got a list");
	ck_assert(!gw_conf_want_list(&in, gw_node_get(root, "q"), "q", "things"));
	assert_one_error(&errs, "t.yaml:5:4: 'q' in retry: must not be empty");
	ck_assert(!gw_conf_want_list(&in, gw_node_get(root, "a"), "a", "things"));
	assert_one_error(&errs,
	                 "t.yaml:1:4: 'a' in retry: expected a list of things, got a string");
	gw_conf_missing_key(&in, gw_node_get(root, "m"), "base");
	assert_one_error(&errs, "t.yaml:4:4: missing required key 'base' in retry");
	gw_conf_missing_key(&top, root, "routes");
	assert_one_error(&errs, "t.yaml:1:1: missing required key 'routes' at top level");
	gw_conf_error(&top, root, "plain %d", 42);
	assert_one_error(&errs, "t.yaml:1:1: plain 42");
	gw_yaml_free(&doc);
}
END_TEST

START_TEST(conf_read_spells_durations_and_sizes_back)
{
	static const struct {
		uint64_t v;
		const char *duration, *size;
	} table[] = {
	    {0, "0", "0"},
	    {1, "1ms", "1"},
	    {999, "999ms", "999"},
	    {1000, "1s", "1000"},
	    {1024, "1024ms", "1k"},
	    {1500, "1500ms", "1500"},
	    {60000, "1m", "60000"},
	    {90000, "90s", "90000"},
	    {3600000, "1h", "3600000"},
	    {7200000, "2h", "7200000"},
	    {1048576, "1048576ms", "1m"},
	    {3145728, "3145728ms", "3m"},
	};
	char buf[32];

	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		ck_assert_str_eq(gw_conf_format_duration(table[i].v, buf, sizeof(buf)),
		                 table[i].duration);
		ck_assert_str_eq(gw_conf_format_size(table[i].v, buf, sizeof(buf)), table[i].size);
	}
}
END_TEST

/* ---- tables of keys (gw_conf_read_table) ------------------------------ */

/* An object with a key of every kind, for the table reader's tests. */
struct sample_sub {
	uint32_t depth;
	bool on;
};

struct sample {
	uint32_t count; /* required */
	uint64_t big;
	uint64_t wait_ms;
	uint64_t buf;
	double ratio;
	bool verbose;
	unsigned mode;
	char *label;
	uint64_t lo_ms, hi_ms; /* `range`: a nested mapping into this object, lo <= hi */
	struct sample_sub sub; /* `sub`: a nested mapping into a member */
	int color;             /* custom; no default of its own */
	unsigned checks;       /* how often the table's check ran */
	uint64_t refused;      /* what the check was told */
};

static const char *const sample_modes[] = {"fast", "safe", "off"};

static int read_color(const struct gw_conf_ctx *ctx, const struct gw_node *v, const char *key,
                      void *obj)
{
	struct sample *o = obj;

	if (!gw_conf_want_scalar(ctx, v, key, "red or blue"))
		return -1;
	if (strcmp(v->value, "red") != 0 && strcmp(v->value, "blue") != 0) {
		gw_conf_bad_value(ctx, v, key, "expected red or blue, got '%s'", v->value);
		return -1;
	}
	o->color = v->value[0] == 'r' ? 1 : 2;
	return 0;
}

static void sample_check(const struct gw_conf_section *s)
{
	struct sample *o = s->obj;

	o->checks++;
	o->refused = s->refused;
}

/* lo <= hi, blamed on hi when it was written, else on lo (as retry's backoff). */
static void range_check(const struct gw_conf_section *s)
{
	const struct sample *o = s->obj;
	const struct gw_node *hi = gw_conf_section_value(s, "hi");
	char a[32], b[32];

	if (gw_conf_section_refused(s, "lo") || gw_conf_section_refused(s, "hi") ||
	    o->lo_ms <= o->hi_ms)
		return;
	gw_conf_format_duration(o->lo_ms, a, sizeof(a));
	gw_conf_format_duration(o->hi_ms, b, sizeof(b));
	if (hi)
		gw_conf_bad_value(s->ctx, hi, "hi", "%s is less than lo (%s)", b, a);
	else
		gw_conf_bad_value(s->ctx, gw_conf_section_value(s, "lo"), "lo",
		                  "%s is more than hi (%s)", a, b);
}

static const struct gw_conf_field range_fields[] = {
    {GW_CONF_DURATION("lo", struct sample, lo_ms, 0, 60000, 100)},
    {GW_CONF_DURATION("hi", struct sample, hi_ms, 0, 60000, 2000)},
    {.key = NULL, .check = range_check},
};

static const struct gw_conf_field sub_fields[] = {
    {GW_CONF_U32("depth", struct sample_sub, depth, 0, 10, 4)},
    {GW_CONF_BOOL("on", struct sample_sub, on, true)},
    {.key = NULL},
};

static const struct gw_conf_field sample_fields[] = {
    {GW_CONF_U32("count", struct sample, count, 1, 100, 5), .required = true},
    {GW_CONF_UINT64("big", struct sample, big, 0, UINT64_MAX, 1ull << 40)},
    {GW_CONF_DURATION("wait", struct sample, wait_ms, 1, 3600000, 1500)},
    {GW_CONF_SIZE("buf", struct sample, buf, 1024, 1048576, 16384)},
    {GW_CONF_DOUBLE("ratio", struct sample, ratio, 0, 1, true, 0.5)},
    {GW_CONF_BOOL("verbose", struct sample, verbose, false)},
    {GW_CONF_ENUM("mode", struct sample, mode, sample_modes, 1)},
    {GW_CONF_STRING("label", struct sample, label, false, "none")},
    {GW_CONF_MAP("range", range_fields)},
    {GW_CONF_MAP_IN("sub", struct sample, sub, sub_fields)},
    {GW_CONF_CUSTOM("color", read_color)},
    {.key = NULL, .check = sample_check},
};

/* Bit of sample_fields' key in gw_conf_section.refused. */
static uint64_t sample_bit(const char *key)
{
	for (size_t i = 0; sample_fields[i].key; i++)
		if (strcmp(sample_fields[i].key, key) == 0)
			return 1ull << i;
	ck_abort_msg("no key %s", key);
	return 0;
}

/* Every value at its default (color: the value it had before the read). */
static void assert_sample_defaults(const struct sample *o)
{
	ck_assert_uint_eq(o->count, 5);
	ck_assert_uint_eq(o->big, 1ull << 40);
	ck_assert_uint_eq(o->wait_ms, 1500);
	ck_assert_uint_eq(o->buf, 16384);
	ck_assert_double_eq(o->ratio, 0.5);
	ck_assert(!o->verbose);
	ck_assert_uint_eq(o->mode, 1);
	ck_assert_str_eq(o->label, "none");
	ck_assert_uint_eq(o->lo_ms, 100);
	ck_assert_uint_eq(o->hi_ms, 2000);
	ck_assert_uint_eq(o->sub.depth, 4);
	ck_assert(o->sub.on);
	ck_assert_int_eq(o->color, 7);
}

/* Reads yaml's top-level mapping through sample_fields, in "sample" (where). */
static int read_sample(const char *yaml, const char *where, struct sample *o,
                       struct gw_errlist *errs)
{
	struct gw_yaml_doc doc = doc_load(yaml);
	struct gw_conf_ctx ctx = {.file = "t.yaml", .errs = errs, .where = where};
	int rc;

	memset(o, 0, sizeof(*o));
	o->color = 7;
	rc = gw_conf_read_table(&ctx, doc.root, sample_fields, o);
	gw_yaml_free(&doc);
	return rc;
}

/* errs holds exactly expect (NULL-ended), in that order; the list is emptied. */
static void assert_errors(struct gw_errlist *errs, const char *const expect[])
{
	char *all = gw_test_join_errors(errs);
	size_t n = 0;

	while (expect[n])
		n++;
	ck_assert_msg(errs->count == n, "expected %zu errors, got:%s", n, all);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(strcmp(errs->items[i], expect[i]) == 0,
		              "error %zu:\nexpected: %s\ngot:%s", i, expect[i], all);
	free(all);
	gw_errlist_free(errs);
}

#define ERRORS(errs, ...) assert_errors(errs, (const char *const[]){__VA_ARGS__, NULL})

START_TEST(table_applies_every_default)
{
	struct gw_errlist errs = {0};
	struct sample o;

	ck_assert_int_eq(read_sample("count: 5\n", "sample", &o, &errs), 0);
	ck_assert_uint_eq(errs.count, 0);
	assert_sample_defaults(&o);
	ck_assert_uint_eq(o.checks, 1);
	ck_assert_uint_eq(o.refused, 0);
	free(o.label);
	/* an empty nested mapping: its defaults, and its check runs */
	ck_assert_int_eq(read_sample("count: 5\nrange: {}\nsub: {}\n", "sample", &o, &errs), 0);
	assert_sample_defaults(&o);
	free(o.label);
	/* defaults alone (a section that is absent) */
	memset(&o, 0, sizeof(o));
	o.color = 7;
	gw_conf_apply_defaults(sample_fields, &o);
	assert_sample_defaults(&o);
	ck_assert_uint_eq(o.checks, 0);
	free(o.label);
}
END_TEST

START_TEST(table_reads_every_kind)
{
	struct gw_errlist errs = {0};
	struct sample o;

	ck_assert_int_eq(read_sample("count: 100\n"
	                             "big: 18446744073709551615\n"
	                             "wait: 1h\n"
	                             "buf: 1m\n"
	                             "ratio: 1\n"
	                             "verbose: true\n"
	                             "mode: off\n"
	                             "label: 'x y'\n"
	                             "range: {lo: 0, hi: 1m}\n"
	                             "sub: {depth: 0, on: false}\n"
	                             "color: blue\n",
	                             "sample", &o, &errs),
	                 0);
	ck_assert_uint_eq(errs.count, 0);
	ck_assert_uint_eq(o.count, 100);
	ck_assert_uint_eq(o.big, UINT64_MAX);
	ck_assert_uint_eq(o.wait_ms, 3600000);
	ck_assert_uint_eq(o.buf, 1048576);
	ck_assert_double_eq(o.ratio, 1);
	ck_assert(o.verbose);
	ck_assert_uint_eq(o.mode, 2);
	ck_assert_str_eq(o.label, "x y");
	ck_assert_uint_eq(o.lo_ms, 0);
	ck_assert_uint_eq(o.hi_ms, 60000);
	ck_assert_uint_eq(o.sub.depth, 0);
	ck_assert(!o.sub.on);
	ck_assert_int_eq(o.color, 2);
	ck_assert_uint_eq(o.checks, 1);
	ck_assert_uint_eq(o.refused, 0);
	free(o.label);
}
END_TEST

START_TEST(table_reports_every_error_in_file_order_and_keeps_defaults)
{
	struct gw_errlist errs = {0};
	struct sample o;

	ck_assert_int_eq(read_sample("sub: {depth: 11, deep: 1, on: 1}\n"
	                             "count: 0\n"
	                             "big: -1\n"
	                             "wait: 2 s\n"
	                             "extra: 1\n"
	                             "buf: 2m\n"
	                             "ratio: 0\n"
	                             "verbose: yes\n"
	                             "mode: fastest\n"
	                             "label: ''\n"
	                             "range: [1]\n"
	                             "color: green\n",
	                             "sample", &o, &errs),
	                 -1);
	ERRORS(&errs, "t.yaml:1:14: 'depth' in sub of sample: 11 is out of range (0..10)",
	       "t.yaml:1:18: unknown key 'deep' in sub of sample",
	       "t.yaml:1:31: 'on' in sub of sample: expected true or false, got '1'",
	       "t.yaml:2:8: 'count' in sample: 0 is out of range (1..100)",
	       "t.yaml:3:6: 'big' in sample: -1 is out of range (0..18446744073709551615)",
	       "t.yaml:4:7: 'wait' in sample: expected a duration such as 250ms, 2s, 1m or 1h, "
	       "got '2 s'",
	       "t.yaml:5:1: unknown key 'extra' in sample",
	       "t.yaml:6:6: 'buf' in sample: 2m is out of range (1k..1m)",
	       "t.yaml:7:8: 'ratio' in sample: 0 is out of range (more than 0, at most 1)",
	       "t.yaml:8:10: 'verbose' in sample: expected true or false, got 'yes'",
	       "t.yaml:9:7: 'mode' in sample: expected fast, safe or off, got 'fastest'",
	       "t.yaml:10:8: 'label' in sample: must not be empty",
	       "t.yaml:11:8: 'range' in sample: expected a mapping, got a list",
	       "t.yaml:12:8: 'color' in sample: expected red or blue, got 'green'");
	assert_sample_defaults(&o);
	/* the check ran once, told which keys were refused (an unknown key is none) */
	ck_assert_uint_eq(o.checks, 1);
	ck_assert_uint_eq(o.refused, sample_bit("sub") | sample_bit("count") | sample_bit("big") |
	                                 sample_bit("wait") | sample_bit("buf") |
	                                 sample_bit("ratio") | sample_bit("verbose") |
	                                 sample_bit("mode") | sample_bit("label") |
	                                 sample_bit("range") | sample_bit("color"));
	free(o.label);

	/* YAML's null and the wrong shapes are values like any other */
	ck_assert_int_eq(
	    read_sample("count: [1]\nlabel: ~\nmode: {}\nsub: 3\n", "sample", &o, &errs), -1);
	ERRORS(&errs, "t.yaml:1:8: 'count' in sample: expected an integer, got a list",
	       "t.yaml:2:8: 'label' in sample: expected a string, got an empty value",
	       "t.yaml:3:7: 'mode' in sample: expected fast, safe or off, got a mapping",
	       "t.yaml:4:6: 'sub' in sample: expected a mapping, got a string");
	assert_sample_defaults(&o);
	free(o.label);
}
END_TEST

START_TEST(table_reports_missing_required_keys_after_the_others)
{
	struct gw_errlist errs = {0};
	struct sample o;

	ck_assert_int_eq(read_sample("wait: 0\nzz: 1\n", "sample", &o, &errs), -1);
	ERRORS(&errs, "t.yaml:1:7: 'wait' in sample: 0 is out of range (1ms..1h)",
	       "t.yaml:2:1: unknown key 'zz' in sample",
	       "t.yaml:1:1: missing required key 'count' in sample");
	assert_sample_defaults(&o);
	ck_assert_uint_eq(o.checks, 1);
	free(o.label);
	/* at the top level, the messages say so */
	ck_assert_int_eq(read_sample("zz: 1\nratio: 2\n", NULL, &o, &errs), -1);
	ERRORS(&errs, "t.yaml:1:1: unknown key 'zz' at top level",
	       "t.yaml:2:8: 'ratio': 2 is out of range (more than 0, at most 1)",
	       "t.yaml:1:1: missing required key 'count' at top level");
	free(o.label);
}
END_TEST

START_TEST(table_check_runs_on_what_was_read)
{
	struct gw_errlist errs = {0};
	struct sample o;

	/* both written: blamed at hi */
	ck_assert_int_eq(read_sample("count: 1\nrange: {lo: 5s, hi: 1s}\n", "sample", &o, &errs),
	                 -1);
	ERRORS(&errs, "t.yaml:2:21: 'hi' in range of sample: 1s is less than lo (5s)");
	free(o.label);
	/* lo refused: the check does not pile on */
	ck_assert_int_eq(read_sample("count: 1\nrange: {lo: 2m, hi: 1s}\n", "sample", &o, &errs),
	                 -1);
	ERRORS(&errs, "t.yaml:2:13: 'lo' in range of sample: 2m is out of range (0..1m)");
	ck_assert_uint_eq(o.lo_ms, 100);
	ck_assert_uint_eq(o.refused, sample_bit("range"));
	free(o.label);
	/* an error elsewhere does not stop it */
	ck_assert_int_eq(read_sample("count: 0\nrange: {lo: 3s}\n", "sample", &o, &errs), -1);
	ERRORS(&errs, "t.yaml:1:8: 'count' in sample: 0 is out of range (1..100)",
	       "t.yaml:2:13: 'lo' in range of sample: 3s is more than hi (2s)");
	free(o.label);
}
END_TEST

START_TEST(table_wants_a_mapping)
{
	struct gw_yaml_doc doc = doc_load("a: text\n");
	struct gw_errlist errs = {0};
	struct gw_conf_ctx ctx = {.file = "t.yaml", .errs = &errs, .where = "sample"};
	struct sample o = {.color = 7};

	ck_assert_int_eq(gw_conf_read_table(&ctx, gw_node_get(doc.root, "a"), sample_fields, &o),
	                 -1);
	assert_one_error(&errs, "t.yaml:1:4: expected a mapping, got a string");
	assert_sample_defaults(&o);
	free(o.label);
	gw_yaml_free(&doc);
}
END_TEST

START_TEST(module_section_without_a_route_name)
{
	struct gw_yaml_doc doc = doc_load("a: [1]\nb: {attempts: 2, x: 1}\n");
	struct gw_errlist errs = {0};
	struct gw_retry_conf c = {0};

	ck_assert_ptr_eq(gw_retry_module.fields, gw_retry_fields);
	ck_assert_int_eq(
	    gw_retry_module.conf_parse(&c, gw_node_get(doc.root, "a"), NULL, "t.yaml", &errs), -1);
	assert_one_error(&errs, "t.yaml:1:4: 'retry' in a route: expected a mapping, got a list");
	ck_assert_uint_eq(c.attempts, 3); /* the defaults all the same */
	ck_assert_int_eq(
	    gw_retry_module.conf_parse(&c, gw_node_get(doc.root, "b"), NULL, "t.yaml", &errs), -1);
	assert_one_error(&errs, "t.yaml:2:18: unknown key 'x' in retry");
	ck_assert_uint_eq(c.attempts, 2);
	gw_yaml_free(&doc);
}
END_TEST

/* ---- the registry ------------------------------------------------------ */

START_TEST(registry_lists_modules_in_pipeline_order)
{
	const struct gw_module *const order[] = {
	    &gw_flags_module, &gw_rate_limit_module,  &gw_shedding_module, &gw_breaker_module,
	    &gw_retry_module, &gw_concurrency_module, &gw_fallback_module,
	};

	ck_assert_uint_eq(gw_modules_count, sizeof(order) / sizeof(order[0]));
	for (size_t i = 0; i < gw_modules_count; i++) {
		ck_assert_ptr_eq(gw_modules[i], order[i]);
		ck_assert_uint_eq(gw_module_index(order[i]), i);
		ck_assert_ptr_nonnull(gw_modules[i]->name);
		/* a module with a route key parses it */
		if (gw_modules[i]->route_key) {
			ck_assert_ptr_nonnull(gw_modules[i]->conf_parse);
			ck_assert_uint_gt(gw_modules[i]->conf_size, 0);
		}
	}
	ck_assert_int_eq(gw_module_find("circuit_breaker"), 3);
	ck_assert_int_eq(gw_module_find("retry"), 4);
	ck_assert_int_eq(gw_module_find("fallback"), 6);
	ck_assert_int_eq(gw_module_find("rate_limit"), 1);
	ck_assert_int_eq(gw_module_find("Retry"), -1);
	/* modules configured elsewhere have no route key */
	ck_assert_int_eq(gw_module_find("shedding"), -1);
	ck_assert_int_eq(gw_module_find("flags"), -1);
}
END_TEST

START_TEST(request_slots_fit_and_do_not_overlap)
{
	gw_modules_init();
	for (size_t i = 0; i < gw_modules_count; i++) {
		size_t end = gw_module_slot_offset[i] + gw_modules[i]->slot_size;

		ck_assert_uint_le(end, GW_TXN_SLOT_BYTES);
		if (i + 1 < gw_modules_count)
			ck_assert_uint_le(end, gw_module_slot_offset[i + 1]);
		ck_assert_uint_eq(gw_module_slot_offset[i] % _Alignof(max_align_t), 0);
	}
}
END_TEST

START_TEST(route_without_module_keys_gets_module_defaults)
{
	struct gw_config *cfg = load_ok("");
	const struct gw_route_conf *r = &cfg->routes[0];
	const struct gw_retry_conf *rc = gw_retry_conf_of(r);

	ck_assert_ptr_eq(rc, &gw_retry_conf_default);
	ck_assert_uint_eq(rc->attempts, 1); /* no retries */
	ck_assert_double_eq(rc->budget_ratio, 0.2);
	ck_assert_uint_eq(rc->budget_min_per_second, 10);
	ck_assert_ptr_null(gw_breaker_conf_of(r));
	ck_assert_ptr_null(gw_fallback_conf_of(r));
	gw_config_unref(cfg);
}
END_TEST

/* ---- retry ------------------------------------------------------------- */

START_TEST(retry_empty_section_gets_every_default)
{
	struct gw_config *cfg = load_ok("    retry: {}\n");
	const struct gw_retry_conf *c = gw_retry_conf_of(&cfg->routes[0]);

	ck_assert_ptr_ne(c, &gw_retry_conf_default);
	ck_assert_uint_eq(c->attempts, 3);
	ck_assert_uint_eq(c->per_try_timeout_ms, 0);
	ck_assert_uint_eq(c->on,
	                  GW_RETRY_ON_CONNECT_FAILURE | GW_RETRY_ON_RESET | GW_RETRY_ON_TIMEOUT);
	for (int s = 500; s <= 599; s++)
		ck_assert_int_eq(gw_retry_condition_matches(c, GW_TRY_STATUS_FAILURE, s),
		                 s == 502 || s == 503 || s == 504);
	ck_assert_uint_eq(c->backoff_base_ms, 25);
	ck_assert_uint_eq(c->backoff_max_ms, 250);
	ck_assert_double_eq(c->budget_ratio, 0.2);
	ck_assert_uint_eq(c->budget_min_per_second, 10);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(retry_full_section_sets_every_key)
{
	struct gw_config *cfg = load_ok("    retry:\n"
	                                "      attempts: 4\n"
	                                "      per_try_timeout: 750ms\n"
	                                "      on: [timeout, 500, 599, 503]\n"
	                                "      backoff: { base: 10ms, max: 1s }\n"
	                                "      budget: { ratio: 0.35, min_per_second: 0 }\n");
	const struct gw_retry_conf *c = gw_retry_conf_of(&cfg->routes[0]);

	ck_assert_uint_eq(c->attempts, 4);
	ck_assert_uint_eq(c->per_try_timeout_ms, 750);
	ck_assert_uint_eq(c->on, GW_RETRY_ON_TIMEOUT);
	ck_assert(!gw_retry_condition_matches(c, GW_TRY_CONNECT_FAILURE, 0));
	ck_assert(!gw_retry_condition_matches(c, GW_TRY_RESET, 0));
	ck_assert(gw_retry_condition_matches(c, GW_TRY_TIMEOUT, 0));
	for (int s = 500; s <= 599; s++)
		ck_assert_int_eq(gw_retry_condition_matches(c, GW_TRY_STATUS_FAILURE, s),
		                 s == 500 || s == 503 || s == 599);
	ck_assert_uint_eq(c->backoff_base_ms, 10);
	ck_assert_uint_eq(c->backoff_max_ms, 1000);
	ck_assert_double_eq(c->budget_ratio, 0.35);
	ck_assert_uint_eq(c->budget_min_per_second, 0);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(retry_bounds_are_accepted)
{
	struct gw_config *cfg = load_ok("    retry:\n"
	                                "      attempts: 10\n"
	                                "      per_try_timeout: 3s\n" /* = the route timeout */
	                                "      on: [reset]\n"
	                                "      backoff: { base: 1m, max: 1m }\n"
	                                "      budget: { ratio: 1, min_per_second: 100000 }\n"
	                                "  - name: s\n"
	                                "    upstream: u\n"
	                                "    retry:\n"
	                                "      attempts: 1\n"
	                                "      per_try_timeout: 1ms\n"
	                                "      backoff: { base: 0, max: 0 }\n"
	                                "      budget: { ratio: 0 }\n");
	const struct gw_retry_conf *a = gw_retry_conf_of(&cfg->routes[0]);
	const struct gw_retry_conf *b = gw_retry_conf_of(&cfg->routes[1]);

	ck_assert_uint_eq(a->attempts, 10);
	ck_assert_uint_eq(a->per_try_timeout_ms, 3000);
	ck_assert_uint_eq(a->backoff_base_ms, 60000);
	ck_assert_double_eq(a->budget_ratio, 1);
	ck_assert_uint_eq(a->budget_min_per_second, 100000);
	ck_assert_uint_eq(b->attempts, 1);
	ck_assert_uint_eq(b->per_try_timeout_ms, 1);
	ck_assert_uint_eq(b->backoff_max_ms, 0);
	ck_assert_double_eq(b->budget_ratio, 0);
	ck_assert_uint_eq(b->budget_min_per_second, 10);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(retry_attempts_out_of_range)
{
	FAILS("    retry: { attempts: 11 }\n",
	      "m.yaml:8:24: 'attempts' in retry of route 'r': 11 is out of range (1..10)");
	FAILS("    retry:\n"
	      "      attempts: 0\n",
	      "m.yaml:9:17: 'attempts' in retry of route 'r': 0 is out of range (1..10)");
	FAILS("    retry:\n"
	      "      attempts: three\n",
	      "m.yaml:9:17: 'attempts' in retry of route 'r': expected an integer, got 'three'");
	/* A route without a usable name is named by its position. */
	FAILS("  - upstream: u\n"
	      "    retry: { attempts: 11 }\n",
	      "m.yaml:8:5: missing required key 'name' in route 2",
	      "m.yaml:9:24: 'attempts' in retry of route 2: 11 is out of range (1..10)");
}
END_TEST

START_TEST(retry_per_try_timeout_must_fit_the_route_timeout)
{
	FAILS("    retry:\n"
	      "      per_try_timeout: 3001ms\n",
	      "m.yaml:9:24: 'per_try_timeout' in retry of route 'r': 3001ms is more than the "
	      "route timeout (3s)");
	/* Against the default route timeout, 15s. */
	FAILS("  - name: s\n"
	      "    upstream: u\n"
	      "    retry: { per_try_timeout: 16s }\n",
	      "m.yaml:10:31: 'per_try_timeout' in retry of route 's': 16s is more than the route "
	      "timeout (15s)");
	FAILS("    retry:\n"
	      "      per_try_timeout: 2h\n",
	      "m.yaml:9:24: 'per_try_timeout' in retry of route 'r': 2h is out of range (1ms..1h)");
	FAILS("    retry:\n"
	      "      per_try_timeout: 0\n",
	      "m.yaml:9:24: 'per_try_timeout' in retry of route 'r': 0 is out of range (1ms..1h)");
	FAILS("    retry:\n"
	      "      per_try_timeout: soon\n",
	      "m.yaml:9:24: 'per_try_timeout' in retry of route 'r': expected a duration such as "
	      "250ms, 2s, 1m or 1h, got 'soon'");
}
END_TEST

START_TEST(retry_on_takes_conditions_and_5xx_statuses_only)
{
	FAILS("    retry:\n"
	      "      on: [connect_failure, refused, 404, 5000, 500, {a: 1}, invalid_response]\n",
	      "m.yaml:9:29: 'on' in retry of route 'r': unknown retry condition 'refused' "
	      "(expected connect_failure, reset, timeout or a status 500..599)",
	      "m.yaml:9:38: 'on' in retry of route 'r': status 404 is out of range (500..599)",
	      "m.yaml:9:43: 'on' in retry of route 'r': status 5000 is out of range (500..599)",
	      "m.yaml:9:54: 'on' in retry of route 'r': expected a retry condition, got a mapping",
	      "m.yaml:9:62: 'on' in retry of route 'r': unknown retry condition "
	      "'invalid_response' (expected connect_failure, reset, timeout or a status 500..599)");
	FAILS("    retry:\n"
	      "      on: []\n",
	      "m.yaml:9:11: 'on' in retry of route 'r': must not be empty");
	FAILS("    retry:\n"
	      "      on: timeout\n",
	      "m.yaml:9:11: 'on' in retry of route 'r': expected a list of retry conditions, got "
	      "a string");
}
END_TEST

START_TEST(retry_backoff_base_must_not_exceed_max)
{
	FAILS("    retry:\n"
	      "      backoff: { base: 300ms, max: 200ms }\n",
	      "m.yaml:9:36: 'max' in backoff of retry of route 'r': 200ms is less than base "
	      "(300ms)");
	/* Only base written: it is compared with the default max, 250ms. */
	FAILS("    retry:\n"
	      "      backoff: { base: 300ms }\n",
	      "m.yaml:9:24: 'base' in backoff of retry of route 'r': 300ms is more than max "
	      "(250ms)");
	/* Only max written: compared with the default base, 25ms. */
	FAILS("    retry:\n"
	      "      backoff: { max: 10ms }\n",
	      "m.yaml:9:23: 'max' in backoff of retry of route 'r': 10ms is less than base (25ms)");
	FAILS("    retry:\n"
	      "      backoff: { base: 2m, max: x }\n",
	      "m.yaml:9:24: 'base' in backoff of retry of route 'r': 2m is out of range (0..1m)",
	      "m.yaml:9:33: 'max' in backoff of retry of route 'r': expected a duration such as "
	      "250ms, 2s, 1m or 1h, got 'x'");
	FAILS("    retry:\n"
	      "      backoff: 25ms\n",
	      "m.yaml:9:16: 'backoff' in retry of route 'r': expected a mapping, got a string");
}
END_TEST

START_TEST(retry_budget_ranges)
{
	FAILS("    retry:\n"
	      "      budget: { ratio: 1.5, min_per_second: 100001 }\n",
	      "m.yaml:9:24: 'ratio' in budget of retry of route 'r': 1.5 is out of range (0..1)",
	      "m.yaml:9:45: 'min_per_second' in budget of retry of route 'r': 100001 is out of "
	      "range (0..100000)");
	FAILS("    retry:\n"
	      "      budget: { ratio: 20%, min_per_second: -1 }\n",
	      "m.yaml:9:24: 'ratio' in budget of retry of route 'r': expected a number, got '20%'",
	      "m.yaml:9:45: 'min_per_second' in budget of retry of route 'r': -1 is out of range "
	      "(0..100000)");
}
END_TEST

START_TEST(retry_unknown_keys_at_every_level)
{
	FAILS("    retry:\n"
	      "      attempt: 2\n"
	      "      backoff: { base: 1ms, jitter: full }\n"
	      "      budget: { ratio: 0.1, per_second: 3 }\n",
	      "m.yaml:9:7: unknown key 'attempt' in retry of route 'r'",
	      "m.yaml:10:29: unknown key 'jitter' in backoff of retry of route 'r'",
	      "m.yaml:11:29: unknown key 'per_second' in budget of retry of route 'r'");
}
END_TEST

START_TEST(retry_must_be_a_mapping)
{
	FAILS("    retry: 3\n",
	      "m.yaml:8:12: 'retry' in route 'r': expected a mapping, got a string");
	FAILS("    retry:\n", "m.yaml:8:11: 'retry' in route 'r': expected a mapping, got an empty "
	                      "value");
	FAILS("    retry: [attempts]\n",
	      "m.yaml:8:12: 'retry' in route 'r': expected a mapping, got a list");
}
END_TEST

/* ---- circuit_breaker --------------------------------------------------- */

START_TEST(breaker_empty_section_gets_every_default)
{
	struct gw_config *cfg = load_ok("    circuit_breaker: {}\n");
	const struct gw_breaker_conf *c = gw_breaker_conf_of(&cfg->routes[0]);

	ck_assert_ptr_nonnull(c);
	ck_assert_uint_eq(c->window_ms, 10000);
	ck_assert_uint_eq(c->min_requests, 20);
	ck_assert_double_eq(c->failure_ratio, 0.5);
	ck_assert_uint_eq(c->consecutive_failures, 0);
	ck_assert_uint_eq(c->slow_call_duration_ms, 0);
	ck_assert_double_eq(c->slow_call_ratio, 1.0);
	ck_assert_uint_eq(c->open_duration_ms, 30000);
	ck_assert_uint_eq(c->max_open_duration_ms, 300000);
	ck_assert_uint_eq(c->half_open_requests, 5);
	ck_assert_int_eq(memcmp(c, &gw_breaker_conf_default, sizeof(*c)), 0);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(breaker_full_section_sets_every_key)
{
	struct gw_config *cfg = load_ok("    circuit_breaker:\n"
	                                "      window: 30s\n"
	                                "      min_requests: 50\n"
	                                "      failure_ratio: 0.25\n"
	                                "      consecutive_failures: 7\n"
	                                "      slow_call_duration: 800ms\n"
	                                "      slow_call_ratio: 0.9\n"
	                                "      open_duration: 5s\n"
	                                "      max_open_duration: 1m\n"
	                                "      half_open_requests: 2\n");
	const struct gw_breaker_conf *c = gw_breaker_conf_of(&cfg->routes[0]);

	ck_assert_uint_eq(c->window_ms, 30000);
	ck_assert_uint_eq(c->min_requests, 50);
	ck_assert_double_eq(c->failure_ratio, 0.25);
	ck_assert_uint_eq(c->consecutive_failures, 7);
	ck_assert_uint_eq(c->slow_call_duration_ms, 800);
	ck_assert_double_eq(c->slow_call_ratio, 0.9);
	ck_assert_uint_eq(c->open_duration_ms, 5000);
	ck_assert_uint_eq(c->max_open_duration_ms, 60000);
	ck_assert_uint_eq(c->half_open_requests, 2);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(breaker_bounds_are_accepted)
{
	struct gw_config *cfg = load_ok("    circuit_breaker:\n"
	                                "      window: 1s\n"
	                                "      min_requests: 1\n"
	                                "      failure_ratio: 1\n"
	                                "      consecutive_failures: 1000000\n"
	                                "      slow_call_duration: 1h\n"
	                                "      slow_call_ratio: 0.001\n"
	                                "      open_duration: 1h\n"
	                                "      max_open_duration: 1h\n"
	                                "      half_open_requests: 1000\n"
	                                "  - name: s\n"
	                                "    upstream: u\n"
	                                "    circuit_breaker:\n"
	                                "      window: 10m\n"
	                                "      min_requests: 1000000\n"
	                                "      open_duration: 1ms\n"
	                                "      max_open_duration: 1ms\n"
	                                "      half_open_requests: 1\n");
	const struct gw_breaker_conf *a = gw_breaker_conf_of(&cfg->routes[0]);
	const struct gw_breaker_conf *b = gw_breaker_conf_of(&cfg->routes[1]);

	ck_assert_uint_eq(a->window_ms, 1000);
	ck_assert_double_eq(a->failure_ratio, 1);
	ck_assert_uint_eq(a->slow_call_duration_ms, 3600000);
	ck_assert_uint_eq(a->max_open_duration_ms, 3600000);
	ck_assert_uint_eq(b->window_ms, 600000);
	ck_assert_uint_eq(b->min_requests, 1000000);
	ck_assert_uint_eq(b->open_duration_ms, 1);
	ck_assert_uint_eq(b->max_open_duration_ms, 1);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(breaker_long_open_duration_raises_the_default_max)
{
	struct gw_config *cfg = load_ok("    circuit_breaker: { open_duration: 10m }\n");
	const struct gw_breaker_conf *c = gw_breaker_conf_of(&cfg->routes[0]);

	ck_assert_uint_eq(c->open_duration_ms, 600000);
	ck_assert_uint_eq(c->max_open_duration_ms, 600000);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(breaker_values_out_of_range)
{
	FAILS("    circuit_breaker:\n"
	      "      window: 500ms\n"
	      "      min_requests: 0\n"
	      "      failure_ratio: 0\n"
	      "      consecutive_failures: 1000001\n"
	      "      slow_call_duration: 2h\n"
	      "      slow_call_ratio: 1.01\n"
	      "      open_duration: 0\n"
	      "      half_open_requests: 1001\n",
	      "m.yaml:9:15: 'window' in circuit_breaker of route 'r': 500ms is out of range "
	      "(1s..10m)",
	      "m.yaml:10:21: 'min_requests' in circuit_breaker of route 'r': 0 is out of range "
	      "(1..1000000)",
	      "m.yaml:11:22: 'failure_ratio' in circuit_breaker of route 'r': 0 is out of range "
	      "(more than 0, at most 1)",
	      "m.yaml:12:29: 'consecutive_failures' in circuit_breaker of route 'r': 1000001 is "
	      "out of range (0..1000000)",
	      "m.yaml:13:27: 'slow_call_duration' in circuit_breaker of route 'r': 2h is out of "
	      "range (0..1h)",
	      "m.yaml:14:24: 'slow_call_ratio' in circuit_breaker of route 'r': 1.01 is out of "
	      "range (more than 0, at most 1)",
	      "m.yaml:15:22: 'open_duration' in circuit_breaker of route 'r': 0 is out of range "
	      "(1ms..1h)",
	      "m.yaml:16:27: 'half_open_requests' in circuit_breaker of route 'r': 1001 is out "
	      "of range (1..1000)");
	FAILS("    circuit_breaker: { window: 11m, failure_ratio: half }\n",
	      "m.yaml:8:32: 'window' in circuit_breaker of route 'r': 11m is out of range "
	      "(1s..10m)",
	      "m.yaml:8:52: 'failure_ratio' in circuit_breaker of route 'r': expected a number, "
	      "got 'half'");
}
END_TEST

START_TEST(breaker_max_open_duration_must_not_be_below_open_duration)
{
	FAILS("    circuit_breaker:\n"
	      "      open_duration: 2m\n"
	      "      max_open_duration: 90s\n",
	      "m.yaml:10:26: 'max_open_duration' in circuit_breaker of route 'r': 90s is less than "
	      "open_duration (2m)");
	/* Against the default open_duration, 30s. */
	FAILS("    circuit_breaker: { max_open_duration: 10s }\n",
	      "m.yaml:8:43: 'max_open_duration' in circuit_breaker of route 'r': 10s is less than "
	      "open_duration (30s)");
}
END_TEST

START_TEST(breaker_unknown_keys_and_shape)
{
	FAILS("    circuit_breaker:\n"
	      "      window: 10s\n"
	      "      failure_rate: 0.5\n"
	      "      half_open: 3\n",
	      "m.yaml:10:7: unknown key 'failure_rate' in circuit_breaker of route 'r'",
	      "m.yaml:11:7: unknown key 'half_open' in circuit_breaker of route 'r'");
	FAILS("    circuit_breaker: on\n",
	      "m.yaml:8:22: 'circuit_breaker' in route 'r': expected a mapping, got a string");
}
END_TEST

/* ---- fallback ---------------------------------------------------------- */

START_TEST(fallback_empty_section_gets_every_default)
{
	struct gw_config *cfg = load_ok("    fallback: {}\n");
	const struct gw_fallback_conf *c = gw_fallback_conf_of(&cfg->routes[0]);

	ck_assert_ptr_nonnull(c);
	ck_assert_uint_eq(c->status, 503);
	ck_assert_str_eq(c->content_type, "application/json");
	ck_assert_str_eq(c->body, "");
	ck_assert_uint_eq(c->body_len, 0);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(fallback_full_section_sets_every_key)
{
	struct gw_config *cfg =
	    load_ok("    fallback: { status: 200, content_type: 'text/plain; charset=utf-8',"
	            " body: '{\"message\":\"try again soon\"}' }\n"
	            "  - name: s\n"
	            "    upstream: u\n"
	            "    fallback:\n"
	            "      status: 599\n"
	            "      body: |\n"
	            "        line one\n"
	            "        line two\n");
	const struct gw_fallback_conf *a = gw_fallback_conf_of(&cfg->routes[0]);
	const struct gw_fallback_conf *b = gw_fallback_conf_of(&cfg->routes[1]);

	ck_assert_uint_eq(a->status, 200);
	ck_assert_str_eq(a->content_type, "text/plain; charset=utf-8");
	ck_assert_str_eq(a->body, "{\"message\":\"try again soon\"}");
	ck_assert_uint_eq(a->body_len, strlen(a->body));
	ck_assert_uint_eq(b->status, 599);
	ck_assert_str_eq(b->content_type, "application/json");
	ck_assert_str_eq(b->body, "line one\nline two\n");
	ck_assert_uint_eq(b->body_len, 18);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(fallback_invalid_values)
{
	FAILS("    fallback:\n"
	      "      status: 99\n"
	      "      content_type: \"text/plain\\r\\nX-Injected: 1\"\n"
	      "      body: ~\n"
	      "      headers: {}\n",
	      "m.yaml:9:15: 'status' in fallback of route 'r': 99 is out of range (200..599)",
	      "m.yaml:10:21: 'content_type' in fallback of route 'r': must not contain control "
	      "characters",
	      "m.yaml:11:13: 'body' in fallback of route 'r': expected a string, got an empty "
	      "value",
	      "m.yaml:12:7: unknown key 'headers' in fallback of route 'r'");
	FAILS("    fallback: { status: 600, content_type: '' }\n",
	      "m.yaml:8:25: 'status' in fallback of route 'r': 600 is out of range (200..599)",
	      "m.yaml:8:44: 'content_type' in fallback of route 'r': must not be empty");
	FAILS("    fallback: 503\n",
	      "m.yaml:8:15: 'fallback' in route 'r': expected a mapping, got a string");
}
END_TEST

/* ---- all together ------------------------------------------------------ */

START_TEST(module_errors_join_core_errors_in_file_order)
{
	FAILS("    retry: { attempts: 0 }\n"
	      "    circuit_breaker: { window: 1h }\n"
	      "    fallback: { status: 1000 }\n"
	      "    timeot: 1s\n"
	      "  - name: s\n"
	      "    upstream: nowhere\n"
	      "    retry: { per_try_timeout: 20s, on: [418] }\n",
	      "m.yaml:8:24: 'attempts' in retry of route 'r': 0 is out of range (1..10)",
	      "m.yaml:9:32: 'window' in circuit_breaker of route 'r': 1h is out of range (1s..10m)",
	      "m.yaml:10:25: 'status' in fallback of route 'r': 1000 is out of range (200..599)",
	      "m.yaml:11:5: unknown key 'timeot' in route 'r'",
	      "m.yaml:13:15: 'upstream' in route 's': unknown upstream 'nowhere'",
	      "m.yaml:14:31: 'per_try_timeout' in retry of route 's': 20s is more than the route "
	      "timeout (15s)",
	      "m.yaml:14:41: 'on' in retry of route 's': status 418 is out of range (500..599)");
}
END_TEST

START_TEST(module_sections_are_freed_with_the_snapshot)
{
	/* Under the sanitizer build, LeakSanitizer checks both paths. */
	struct gw_config *cfg = load_ok("    retry: {}\n"
	                                "    circuit_breaker: {}\n"
	                                "    fallback: { body: 'x', content_type: text/html }\n");

	ck_assert_ptr_eq(gw_config_ref(cfg), cfg);
	gw_config_unref(cfg);
	gw_config_unref(cfg);
	FAILS("    fallback: { body: 'x', content_type: text/html, status: 0 }\n",
	      "m.yaml:8:61: 'status' in fallback of route 'r': 0 is out of range (200..599)");
}
END_TEST

/* ---- suite ------------------------------------------------------------- */

static Suite *module_conf_suite(void)
{
	Suite *s = suite_create("module_conf");

	gw_test_add_case(s, "conf_read_where_nests_sections", conf_read_where_nests_sections,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "conf_read_duration_spells_its_range_like_the_file",
	                 conf_read_duration_spells_its_range_like_the_file,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "conf_read_integers_and_sizes", conf_read_integers_and_sizes,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "conf_read_numbers_are_plain_decimals",
	                 conf_read_numbers_are_plain_decimals, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "conf_read_number_ranges_inclusive_and_exclusive",
	                 conf_read_number_ranges_inclusive_and_exclusive, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "conf_read_bools_enums_and_strings", conf_read_bools_enums_and_strings,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "conf_read_string_lists", conf_read_string_lists,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "conf_read_keys_shapes_and_missing_keys",
	                 conf_read_keys_shapes_and_missing_keys, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "conf_read_spells_durations_and_sizes_back",
	                 conf_read_spells_durations_and_sizes_back, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "table_applies_every_default", table_applies_every_default,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "table_reads_every_kind", table_reads_every_kind,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "table_reports_every_error_in_file_order_and_keeps_defaults",
	                 table_reports_every_error_in_file_order_and_keeps_defaults,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "table_reports_missing_required_keys_after_the_others",
	                 table_reports_missing_required_keys_after_the_others,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "table_check_runs_on_what_was_read", table_check_runs_on_what_was_read,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "table_wants_a_mapping", table_wants_a_mapping,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "module_section_without_a_route_name",
	                 module_section_without_a_route_name, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "registry_lists_modules_in_pipeline_order",
	                 registry_lists_modules_in_pipeline_order, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "request_slots_fit_and_do_not_overlap",
	                 request_slots_fit_and_do_not_overlap, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "route_without_module_keys_gets_module_defaults",
	                 route_without_module_keys_gets_module_defaults, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "retry_empty_section_gets_every_default",
	                 retry_empty_section_gets_every_default, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "retry_full_section_sets_every_key", retry_full_section_sets_every_key,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "retry_bounds_are_accepted", retry_bounds_are_accepted,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "retry_attempts_out_of_range", retry_attempts_out_of_range,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "retry_per_try_timeout_must_fit_the_route_timeout",
	                 retry_per_try_timeout_must_fit_the_route_timeout, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "retry_on_takes_conditions_and_5xx_statuses_only",
	                 retry_on_takes_conditions_and_5xx_statuses_only, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "retry_backoff_base_must_not_exceed_max",
	                 retry_backoff_base_must_not_exceed_max, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "retry_budget_ranges", retry_budget_ranges, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "retry_unknown_keys_at_every_level", retry_unknown_keys_at_every_level,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "retry_must_be_a_mapping", retry_must_be_a_mapping,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "breaker_empty_section_gets_every_default",
	                 breaker_empty_section_gets_every_default, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "breaker_full_section_sets_every_key",
	                 breaker_full_section_sets_every_key, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "breaker_bounds_are_accepted", breaker_bounds_are_accepted,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "breaker_long_open_duration_raises_the_default_max",
	                 breaker_long_open_duration_raises_the_default_max,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "breaker_values_out_of_range", breaker_values_out_of_range,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "breaker_max_open_duration_must_not_be_below_open_duration",
	                 breaker_max_open_duration_must_not_be_below_open_duration,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "breaker_unknown_keys_and_shape", breaker_unknown_keys_and_shape,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "fallback_empty_section_gets_every_default",
	                 fallback_empty_section_gets_every_default, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "fallback_full_section_sets_every_key",
	                 fallback_full_section_sets_every_key, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "fallback_invalid_values", fallback_invalid_values,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "module_errors_join_core_errors_in_file_order",
	                 module_errors_join_core_errors_in_file_order, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "module_sections_are_freed_with_the_snapshot",
	                 module_sections_are_freed_with_the_snapshot, GW_TEST_DEFAULT_TIMEOUT);
	return s;
}

int main(void)
{
	return gw_test_run_suite(module_conf_suite(), CK_FORK);
}
