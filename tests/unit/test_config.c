/*
 * The configuration loader through its public API: valid files give the
 * values they say (and the documented defaults), every invalid file in
 * tests/data/invalid fails with exactly the errors its "# expect:" header
 * lines declare, in order, and snapshots are reference counted.
 */
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/config/config.h"
#include "gateway/config/yaml_tree.h"
#include "gateway/util/errlist.h"
#include "check_suite.h"

#define VALID_DIR   GW_TEST_DATA "/valid"
#define INVALID_DIR GW_TEST_DATA "/invalid"
#define EXAMPLE     GW_TEST_DATA "/../../conf/gateway.yaml"

/* ---- helpers ----------------------------------------------------------- */

/* The .yaml files of a directory, sorted; owned by the caller. */
struct file_list {
	char **names;
	size_t count;
};

static struct file_list valid_files, invalid_files;

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static struct file_list list_yaml(const char *dir)
{
	struct file_list l = {0};
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return l;
	while ((e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);

		if (n < 6 || strcmp(e->d_name + n - 5, ".yaml") != 0)
			continue;
		l.names = realloc(l.names, (l.count + 1) * sizeof(*l.names));
		l.names[l.count++] = strdup(e->d_name);
	}
	closedir(d);
	qsort(l.names, l.count, sizeof(*l.names), cmp_str);
	return l;
}

static void free_list(struct file_list *l)
{
	for (size_t i = 0; i < l->count; i++)
		free(l->names[i]);
	free(l->names);
}

static struct gw_config *load_ok(const char *path)
{
	struct gw_errlist errs = {0};
	struct gw_config *cfg = gw_config_load(path, &errs);
	char *all = gw_test_join_errors(&errs);

	ck_assert_msg(cfg != NULL, "%s should load, got:%s", path, all);
	ck_assert_msg(errs.count == 0, "%s loaded but reported:%s", path, all);
	free(all);
	gw_errlist_free(&errs);
	return cfg;
}

static struct gw_config *load_string_ok(const char *yaml)
{
	struct gw_errlist errs = {0};
	struct gw_config *cfg = gw_config_load_string("test.yaml", yaml, &errs);
	char *all = gw_test_join_errors(&errs);

	ck_assert_msg(cfg != NULL && errs.count == 0, "should load, got:%s", all);
	free(all);
	gw_errlist_free(&errs);
	return cfg;
}

/* Loads yaml from memory expecting failure with exactly one error, msg. */
static void load_string_fails(const char *yaml, const char *msg)
{
	struct gw_errlist errs = {0};
	struct gw_config *cfg = gw_config_load_string("mem.yaml", yaml, &errs);
	char *all = gw_test_join_errors(&errs);

	ck_assert_msg(cfg == NULL, "should fail: %s", yaml);
	ck_assert_msg(errs.count == 1 && strcmp(errs.items[0], msg) == 0,
	              "expected exactly:\n  %s\ngot:%s", msg, all);
	free(all);
	gw_errlist_free(&errs);
}

static unsigned port_of(const struct gw_sockaddr *a)
{
	if (a->ss.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
	if (a->ss.ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
	return 0;
}

/* The address as text ("127.0.0.1", "::1"), in a static buffer. */
static const char *ip_of(const struct gw_sockaddr *a)
{
	static char buf[INET6_ADDRSTRLEN];

	if (a->ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)&a->ss)->sin_addr, buf,
		          sizeof(buf));
	else if (a->ss.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&a->ss)->sin6_addr, buf,
		          sizeof(buf));
	else
		snprintf(buf, sizeof(buf), "family %d", a->ss.ss_family);
	return buf;
}

static void assert_loopback(const struct gw_sockaddr *a, unsigned port)
{
	const char *ip = ip_of(a);

	ck_assert_msg(strcmp(ip, "127.0.0.1") == 0 || strcmp(ip, "::1") == 0,
	              "localhost resolved to %s", ip);
	ck_assert_uint_eq(port_of(a), port);
	ck_assert_uint_eq(a->len, a->ss.ss_family == AF_INET ? sizeof(struct sockaddr_in)
	                                                     : sizeof(struct sockaddr_in6));
}

static unsigned expected_workers(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > 256 ? 256 : (unsigned)n;
}

/*
 * The "# expect: LINE:COL: message" lines of the comment block that opens
 * a file, each turned into the full message "PATH:LINE:COL: message".
 */
static size_t read_expectations(const char *path, char ***out)
{
	FILE *f = fopen(path, "rb");
	char line[1024];
	char **exp = NULL;
	size_t n = 0;

	ck_assert_msg(f != NULL, "cannot open %s", path);
	while (fgets(line, sizeof(line), f) && line[0] == '#') {
		static const char tag[] = "# expect: ";
		size_t len = strcspn(line, "\n");

		line[len] = '\0';
		if (strncmp(line, tag, sizeof(tag) - 1) != 0)
			continue;
		exp = realloc(exp, (n + 1) * sizeof(*exp));
		exp[n] = malloc(strlen(path) + len + 2);
		sprintf(exp[n], "%s:%s", path, line + sizeof(tag) - 1);
		n++;
	}
	fclose(f);
	*out = exp;
	return n;
}

/* ---- every file in the data directories -------------------------------- */

START_TEST(every_valid_file_loads)
{
	char path[512];
	struct gw_config *cfg;

	ck_assert_msg(valid_files.count >= 4, "only %zu valid files", valid_files.count);
	snprintf(path, sizeof(path), "%s/%s", VALID_DIR, valid_files.names[_i]);
	cfg = load_ok(path);
	ck_assert_str_eq(cfg->file, path);
	ck_assert_uint_ge(cfg->nroutes, 1);
	ck_assert_uint_ge(cfg->nupstreams, 1);
	for (size_t i = 0; i < cfg->nroutes; i++) {
		ck_assert_ptr_nonnull(cfg->routes[i].upstream);
		ck_assert_uint_eq(cfg->routes[i].index, i);
	}
	gw_config_unref(cfg);
}
END_TEST

START_TEST(every_invalid_file_fails_with_its_declared_errors)
{
	char path[512];
	struct gw_errlist errs = {0};
	struct gw_config *cfg;
	char **exp;
	size_t nexp;
	char *all;

	ck_assert_msg(invalid_files.count > 0, "no files in %s", INVALID_DIR);
	snprintf(path, sizeof(path), "%s/%s", INVALID_DIR, invalid_files.names[_i]);
	nexp = read_expectations(path, &exp);
	ck_assert_msg(nexp > 0, "%s declares no '# expect:' line", path);
	cfg = gw_config_load(path, &errs);
	all = gw_test_join_errors(&errs);
	ck_assert_msg(cfg == NULL, "%s loaded but should not", path);
	ck_assert_msg(errs.count == nexp, "%s: expected %zu errors, got %zu:%s", path, nexp,
	              errs.count, all);
	for (size_t i = 0; i < nexp; i++)
		ck_assert_msg(strcmp(errs.items[i], exp[i]) == 0,
		              "error %zu:\n  expected %s\n  got      %s", i + 1, exp[i],
		              errs.items[i]);
	for (size_t i = 0; i < nexp; i++)
		free(exp[i]);
	free(exp);
	free(all);
	gw_errlist_free(&errs);
}
END_TEST

START_TEST(invalid_directory_covers_at_least_25_cases)
{
	ck_assert_uint_ge(invalid_files.count, 25);
}
END_TEST

/* ---- values of the valid files ----------------------------------------- */

START_TEST(minimal_file_gets_every_default)
{
	struct gw_config *cfg = load_ok(VALID_DIR "/minimal.yaml");
	const struct gw_upstream_conf *u;
	const struct gw_route_conf *r;

	ck_assert_uint_eq(cfg->nlistens, 1);
	ck_assert_str_eq(cfg->listens[0].address, "0.0.0.0:8080");
	ck_assert_int_eq(cfg->listens[0].addr.ss.ss_family, AF_INET);
	ck_assert_str_eq(ip_of(&cfg->listens[0].addr), "0.0.0.0");
	ck_assert_uint_eq(port_of(&cfg->listens[0].addr), 8080);
	ck_assert_ptr_null(cfg->listens[0].tls);
	ck_assert_uint_eq(cfg->workers, expected_workers());
	ck_assert_uint_eq(cfg->drain_timeout_ms, 10000);
	ck_assert_str_eq(cfg->access_log, "stdout");

	ck_assert_uint_eq(cfg->limits.max_connections, 10000);
	ck_assert_uint_eq(cfg->limits.max_header_bytes, 16 * 1024);
	ck_assert_uint_eq(cfg->limits.max_body_bytes, 8 * 1024 * 1024);
	ck_assert_uint_eq(cfg->limits.header_timeout_ms, 10000);
	ck_assert_uint_eq(cfg->limits.body_timeout_ms, 30000);
	ck_assert_uint_eq(cfg->limits.idle_timeout_ms, 60000);

	ck_assert_uint_eq(cfg->nupstreams, 1);
	u = &cfg->upstreams[0];
	ck_assert_str_eq(u->name, "backend");
	ck_assert_uint_eq(u->index, 0);
	ck_assert_uint_eq(u->nservers, 1);
	ck_assert_str_eq(u->servers[0].address, "127.0.0.1:9001");
	ck_assert_str_eq(ip_of(&u->servers[0].addr), "127.0.0.1");
	ck_assert_uint_eq(port_of(&u->servers[0].addr), 9001);
	ck_assert_uint_eq(u->servers[0].weight, 1);
	ck_assert_int_eq(u->balance, GW_BALANCE_LEAST_REQUEST);
	ck_assert_uint_eq(u->connect_timeout_ms, 1000);
	ck_assert_uint_eq(u->max_connections, 256);
	ck_assert_uint_eq(u->keepalive, 32);
	ck_assert_ptr_null(u->tls);

	ck_assert_uint_eq(cfg->nroutes, 1);
	r = &cfg->routes[0];
	ck_assert_str_eq(r->name, "all");
	ck_assert_str_eq(r->path_prefix, "/");
	ck_assert_uint_eq(r->path_prefix_len, 1);
	ck_assert_ptr_null(r->host);
	ck_assert_uint_eq(r->methods, 0);
	ck_assert_uint_eq(r->nheaders, 0);
	ck_assert_ptr_eq(r->upstream, u);
	ck_assert(!r->strip_prefix);
	ck_assert_uint_eq(r->timeout_ms, 15000);
	ck_assert_int_eq(r->priority, GW_PRIORITY_NORMAL);
	for (size_t i = 0; i < GW_MAX_MODULES; i++)
		ck_assert_ptr_null(r->module_conf[i]);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(full_file_sets_every_key)
{
	struct gw_config *cfg = load_ok(VALID_DIR "/full.yaml");
	const struct gw_upstream_conf *cat, *chk;
	const struct gw_route_conf *r;

	ck_assert_uint_eq(cfg->nlistens, 3);
	ck_assert_str_eq(cfg->listens[0].address, "127.0.0.1:18080");
	ck_assert_str_eq(ip_of(&cfg->listens[0].addr), "127.0.0.1");
	ck_assert_uint_eq(port_of(&cfg->listens[0].addr), 18080);
	ck_assert_str_eq(cfg->listens[1].address, "[::1]:18081");
	ck_assert_int_eq(cfg->listens[1].addr.ss.ss_family, AF_INET6);
	ck_assert_str_eq(ip_of(&cfg->listens[1].addr), "::1");
	ck_assert_uint_eq(port_of(&cfg->listens[1].addr), 18081);
	ck_assert_uint_eq(cfg->listens[1].addr.len, sizeof(struct sockaddr_in6));
	ck_assert_str_eq(cfg->listens[2].address, "localhost:0");
	assert_loopback(&cfg->listens[2].addr, 0);

	ck_assert_uint_eq(cfg->workers, 1);
	ck_assert_uint_eq(cfg->drain_timeout_ms, 0);
	ck_assert_str_eq(cfg->access_log, "/var/log/gateway/access.log");
	ck_assert_uint_eq(cfg->limits.max_connections, 1);
	ck_assert_uint_eq(cfg->limits.max_header_bytes, 1024);
	ck_assert_uint_eq(cfg->limits.max_body_bytes, 0);
	ck_assert_uint_eq(cfg->limits.header_timeout_ms, 1);
	ck_assert_uint_eq(cfg->limits.body_timeout_ms, 250);
	ck_assert_uint_eq(cfg->limits.idle_timeout_ms, 2000);

	ck_assert_uint_eq(cfg->nupstreams, 2);
	cat = &cfg->upstreams[0];
	chk = &cfg->upstreams[1];
	ck_assert_str_eq(cat->name, "catalog");
	ck_assert_uint_eq(cat->nservers, 3);
	ck_assert_str_eq(cat->servers[1].address, "127.0.0.1:9002");
	ck_assert_uint_eq(port_of(&cat->servers[1].addr), 9002);
	ck_assert_uint_eq(cat->servers[0].weight, 1);
	ck_assert_uint_eq(cat->servers[1].weight, 2);
	ck_assert_uint_eq(cat->servers[2].weight, 1);
	ck_assert_str_eq(ip_of(&cat->servers[2].addr), "::1");
	ck_assert_uint_eq(port_of(&cat->servers[2].addr), 9003);
	ck_assert_int_eq(cat->balance, GW_BALANCE_LEAST_REQUEST);
	ck_assert_uint_eq(cat->connect_timeout_ms, 1);
	ck_assert_uint_eq(cat->max_connections, 1);
	ck_assert_uint_eq(cat->keepalive, 0);
	ck_assert_str_eq(chk->name, "checkout");
	ck_assert_uint_eq(chk->index, 1);
	assert_loopback(&chk->servers[0].addr, 9004);
	ck_assert_int_eq(chk->balance, GW_BALANCE_RANDOM);
	ck_assert_uint_eq(chk->connect_timeout_ms, 500);
	ck_assert_uint_eq(chk->max_connections, 100);
	ck_assert_uint_eq(chk->keepalive, 7);

	ck_assert_uint_eq(cfg->nroutes, 2);
	r = &cfg->routes[0];
	ck_assert_str_eq(r->name, "checkout.v2_a-B");
	ck_assert_str_eq(r->path_prefix, "/api/checkout");
	ck_assert_uint_eq(r->path_prefix_len, strlen("/api/checkout"));
	ck_assert_str_eq(r->host, "shop.example.com");
	ck_assert_uint_eq(r->methods, GW_METHOD_GET | GW_METHOD_HEAD | GW_METHOD_POST |
	                                  GW_METHOD_PUT | GW_METHOD_DELETE | GW_METHOD_OPTIONS |
	                                  GW_METHOD_PATCH);
	ck_assert_uint_eq(r->nheaders, 2);
	ck_assert_str_eq(r->headers[0].name, "X-Tenant");
	ck_assert_str_eq(r->headers[0].value, "acme");
	ck_assert_str_eq(r->headers[1].name, "X-Empty");
	ck_assert_str_eq(r->headers[1].value, "");
	ck_assert_ptr_eq(r->upstream, chk);
	ck_assert(r->strip_prefix);
	ck_assert_uint_eq(r->timeout_ms, 1);

	r = &cfg->routes[1];
	ck_assert_str_eq(r->name, "catalog");
	ck_assert_uint_eq(r->index, 1);
	ck_assert_uint_eq(r->methods, GW_METHOD_POST);
	ck_assert_ptr_null(r->host);
	ck_assert_ptr_eq(r->upstream, cat);
	ck_assert(!r->strip_prefix);
	ck_assert_uint_eq(r->timeout_ms, 3000);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(upper_bounds_are_accepted)
{
	struct gw_config *cfg = load_ok(VALID_DIR "/upper_bounds.yaml");
	const struct gw_upstream_conf *u = &cfg->upstreams[0];

	ck_assert_uint_eq(cfg->nlistens, 1);
	ck_assert_str_eq(cfg->listens[0].address, "0.0.0.0:65535");
	ck_assert_uint_eq(port_of(&cfg->listens[0].addr), 65535);
	ck_assert_uint_eq(cfg->workers, 256);
	ck_assert_uint_eq(cfg->drain_timeout_ms, 3600000);
	ck_assert_uint_eq(cfg->limits.max_connections, 1000000);
	ck_assert_uint_eq(cfg->limits.max_header_bytes, 1048576);
	ck_assert_uint_eq(cfg->limits.max_body_bytes, 1073741824);
	ck_assert_uint_eq(cfg->limits.header_timeout_ms, 3600000);
	ck_assert_uint_eq(cfg->limits.body_timeout_ms, 3600000);
	ck_assert_uint_eq(cfg->limits.idle_timeout_ms, 3600000);
	ck_assert_uint_eq(u->servers[0].weight, 1000);
	ck_assert_uint_eq(port_of(&u->servers[0].addr), 65535);
	ck_assert_uint_eq(u->connect_timeout_ms, 60000);
	ck_assert_uint_eq(u->max_connections, 100000);
	ck_assert_uint_eq(u->keepalive, 10000);
	ck_assert_uint_eq(cfg->routes[0].timeout_ms, 3600000);
	gw_config_unref(cfg);
}
END_TEST

START_TEST(flow_style_quotes_and_key_order_do_not_matter)
{
	struct gw_config *cfg = load_ok(VALID_DIR "/flow_style_and_quoting.yaml");

	ck_assert_uint_eq(cfg->workers, 2);
	ck_assert_str_eq(cfg->access_log, "off");
	ck_assert_str_eq(cfg->routes[0].name, "api");
	ck_assert_str_eq(cfg->routes[0].path_prefix, "/");
	ck_assert_ptr_eq(cfg->routes[0].upstream, &cfg->upstreams[0]);
	ck_assert_str_eq(cfg->upstreams[0].servers[0].address, "127.0.0.1:9001");
	gw_config_unref(cfg);
}
END_TEST

START_TEST(workers_auto_means_online_cpus)
{
	struct gw_config *cfg = load_string_ok("workers: auto\n"
	                                       "upstreams: { a: { servers: ['127.0.0.1:1'] } }\n"
	                                       "routes: [ { name: r, upstream: a } ]\n");

	ck_assert_uint_eq(cfg->workers, expected_workers());
	gw_config_unref(cfg);
}
END_TEST

START_TEST(shipped_example_config_loads)
{
	struct gw_config *cfg = load_ok(EXAMPLE);
	const struct gw_upstream_conf *catalog = gw_config_find_upstream(cfg, "catalog");
	const struct gw_upstream_conf *checkout = gw_config_find_upstream(cfg, "checkout");

	ck_assert_uint_eq(cfg->nlistens, 1);
	ck_assert_str_eq(cfg->listens[0].address, "0.0.0.0:8080");
	ck_assert_uint_eq(cfg->workers, expected_workers());
	ck_assert_str_eq(cfg->access_log, "stdout");
	ck_assert_uint_eq(cfg->limits.max_header_bytes, 16 * 1024);
	ck_assert_ptr_nonnull(catalog);
	ck_assert_ptr_nonnull(checkout);
	ck_assert_uint_eq(catalog->nservers, 2);
	ck_assert_int_eq(catalog->balance, GW_BALANCE_ROUND_ROBIN);
	ck_assert_uint_eq(checkout->nservers, 1);
	ck_assert_uint_eq(port_of(&checkout->servers[0].addr), 9003);

	ck_assert_uint_eq(cfg->nroutes, 4);
	ck_assert_str_eq(cfg->routes[0].name, "checkout");
	ck_assert_int_eq(cfg->routes[0].priority, GW_PRIORITY_CRITICAL);
	ck_assert_int_eq(catalog->climit_mode, GW_CLIMIT_ADAPTIVE);
	ck_assert_uint_eq(cfg->shedding.max_inflight, 2000);
	ck_assert_uint_eq(cfg->shedding.target_queue_delay_ms, 20);
	ck_assert_str_eq(cfg->routes[2].name, "recommendations");
	ck_assert_int_eq(cfg->routes[2].priority, GW_PRIORITY_SHEDDABLE);
	ck_assert_str_eq(cfg->routes[0].path_prefix, "/api/checkout");
	ck_assert_uint_eq(cfg->routes[0].methods, GW_METHOD_GET | GW_METHOD_POST);
	ck_assert_ptr_eq(cfg->routes[0].upstream, checkout);
	ck_assert_uint_eq(cfg->routes[0].timeout_ms, 3000);
	ck_assert_str_eq(cfg->routes[1].name, "catalog");
	ck_assert_str_eq(cfg->routes[1].path_prefix, "/api/catalog");
	ck_assert_ptr_eq(cfg->routes[1].upstream, catalog);
	ck_assert(!cfg->routes[1].strip_prefix);
	ck_assert_str_eq(cfg->routes[3].name, "default");
	ck_assert_str_eq(cfg->routes[3].path_prefix, "/");
	ck_assert_ptr_eq(cfg->routes[2].upstream, catalog);
	gw_config_unref(cfg);
}
END_TEST

/* ---- errors that no data file can hold ---------------------------------- */

START_TEST(unreadable_file_names_the_system_error)
{
	struct gw_errlist errs = {0};
	const char *missing = GW_TEST_DATA "/no-such-file.yaml";

	ck_assert_ptr_null(gw_config_load(missing, &errs));
	ck_assert_uint_eq(errs.count, 1);
	ck_assert_str_eq(errs.items[0],
	                 GW_TEST_DATA "/no-such-file.yaml: cannot open: No such file or directory");
	gw_errlist_free(&errs);

	ck_assert_ptr_null(gw_config_load(VALID_DIR, &errs));
	ck_assert_uint_eq(errs.count, 1);
	ck_assert_str_eq(errs.items[0], VALID_DIR ": cannot read: Is a directory");
	gw_errlist_free(&errs);
}
END_TEST

START_TEST(empty_input_is_an_error)
{
	load_string_fails("", "mem.yaml:1:1: empty configuration");
	load_string_fails("\n\n   \n", "mem.yaml:1:1: empty configuration");
	load_string_fails("~\n", "mem.yaml:1:1: empty configuration");
}
END_TEST

START_TEST(errors_are_appended_after_existing_ones_in_file_order)
{
	struct gw_errlist errs = {0};

	/* Found first (during the walk) but sorted after the 1:1 errors. */
	gw_errlist_add(&errs, "earlier");
	ck_assert_ptr_null(gw_config_load_string("x.yaml", "workers: 0\n", &errs));
	ck_assert_uint_eq(errs.count, 4);
	ck_assert_str_eq(errs.items[0], "earlier");
	ck_assert_str_eq(errs.items[1],
	                 "x.yaml:1:1: missing required key 'upstreams' at top level");
	ck_assert_str_eq(errs.items[2], "x.yaml:1:1: missing required key 'routes' at top level");
	ck_assert_str_eq(errs.items[3],
	                 "x.yaml:1:10: 'workers': 0 is out of range (1..256, or auto)");
	gw_errlist_free(&errs);
}
END_TEST

START_TEST(nul_inside_a_string_is_refused)
{
	load_string_fails("access_log: \"a\\0b\"\n",
	                  "mem.yaml:1:13: NUL characters are not allowed");
}
END_TEST

START_TEST(complex_mapping_key_is_refused)
{
	load_string_fails("? [a, b]\n: 1\n"
	                  "upstreams: { a: { servers: ['127.0.0.1:1'] } }\n"
	                  "routes: [ { name: r, upstream: a } ]\n",
	                  "mem.yaml:1:3: mapping keys must be strings, got a list");
}
END_TEST

/* ---- tls: the schema (files and handshakes: test_tls.c) ------------------ */

/* A listener whose tls section is body (lines after "    tls:", from line 8). */
#define TLS_LISTEN(body)                                                                           \
	"upstreams:\n"                                                                             \
	"  a: { servers: [\"127.0.0.1:9001\"] }\n"                                                 \
	"routes:\n"                                                                                \
	"  - { name: r, upstream: a }\n"                                                           \
	"listen:\n"                                                                                \
	"  - address: \"127.0.0.1:0\"\n"                                                           \
	"    tls:\n" body

/* An upstream whose tls section is body (lines after "    tls:", from line 7). */
#define TLS_UPSTREAM(body)                                                                         \
	"routes:\n"                                                                                \
	"  - { name: r, upstream: a }\n"                                                           \
	"upstreams:\n"                                                                             \
	"  a:\n"                                                                                   \
	"    servers: [\"127.0.0.1:9001\"]\n"                                                      \
	"    tls:\n" body

/* Loads yaml expecting failure with exactly the n messages of msgs, in order. */
static void load_string_fails_with(const char *yaml, size_t n, const char *const msgs[])
{
	struct gw_errlist errs = {0};
	struct gw_config *cfg = gw_config_load_string("mem.yaml", yaml, &errs);
	char *all = gw_test_join_errors(&errs);

	ck_assert_msg(cfg == NULL, "should fail: %s", yaml);
	ck_assert_msg(errs.count == n, "expected %zu errors, got:%s", n, all);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(strcmp(errs.items[i], msgs[i]) == 0, "expected:\n  %s\ngot:%s",
		              msgs[i], all);
	free(all);
	gw_errlist_free(&errs);
}

START_TEST(tls_listen_needs_one_form_of_certificates)
{
	load_string_fails(
	    TLS_LISTEN("      cert: a.pem\n"
	               "      key: a.key\n"
	               "      certificates: [{cert: b.pem, key: b.key}]\n"),
	    "mem.yaml:8:7: 'tls' in listen entry 1: give either 'cert' and 'key' (one "
	    "certificate) or 'certificates', not both");
	load_string_fails(TLS_LISTEN("      cert: a.pem\n"),
	                  "mem.yaml:8:7: missing required key 'key' in tls of listen entry 1");
	load_string_fails(TLS_LISTEN("      key: a.key\n"),
	                  "mem.yaml:8:7: missing required key 'cert' in tls of listen entry 1");
	load_string_fails(
	    TLS_LISTEN("      min_version: TLSv1.2\n"),
	    "mem.yaml:8:7: missing required keys in tls of listen entry 1: 'cert' and "
	    "'key', or 'certificates'");
	load_string_fails(
	    TLS_LISTEN("      certificates: []\n"),
	    "mem.yaml:8:21: 'certificates' in tls of listen entry 1: must not be empty");
	load_string_fails(
	    "upstreams:\n"
	    "  a: { servers: [\"127.0.0.1:9001\"] }\n"
	    "routes: [ { name: r, upstream: a } ]\n"
	    "listen:\n"
	    "  - { address: \"127.0.0.1:0\", tls: yes }\n",
	    "mem.yaml:5:36: 'tls' in listen entry 1: expected a mapping, got a string");
	load_string_fails(TLS_LISTEN("      certificates:\n"
	                             "        - { cert: a.pem, key: a.key }\n"
	                             "        - { cert: b.pem, key: b.key }\n"),
	                  "mem.yaml:10:11: missing required key 'server_names' in certificate 2 of "
	                  "tls of listen entry 1 (only the first certificate, the default, may go "
	                  "without)");
	load_string_fails(TLS_LISTEN("      certificates:\n"
	                             "        - { cert: a.pem }\n"),
	                  "mem.yaml:9:11: missing required key 'key' in certificate 1 of tls of "
	                  "listen entry 1");
}
END_TEST

START_TEST(tls_listen_values_are_checked)
{
	load_string_fails(
	    TLS_LISTEN("      cert: a\n"
	               "      key: b\n"
	               "      min_version: TLSv1.1\n"),
	    "mem.yaml:10:20: 'min_version' in tls of listen entry 1: TLSv1.1 is "
	    "refused: versions before TLS 1.2 are obsolete (RFC 8996); use TLSv1.2 or "
	    "TLSv1.3");
	load_string_fails(
	    TLS_LISTEN("      cert: a\n"
	               "      key: b\n"
	               "      min_version: tls1.3\n"),
	    "mem.yaml:10:20: 'min_version' in tls of listen entry 1: expected TLSv1.2 "
	    "or TLSv1.3, got 'tls1.3'");
	load_string_fails(
	    TLS_LISTEN("      cert: a\n"
	               "      key: b\n"
	               "      ciphers: ECDHE-RSA-AES128-GCM-SHA256:NOPE\n"),
	    "mem.yaml:10:16: 'ciphers' in tls of listen entry 1: unknown cipher 'NOPE'");
	load_string_fails(TLS_LISTEN("      cert: a\n"
	                             "      key: b\n"
	                             "      ciphers: TLS_AES_128_GCM_SHA256\n"),
	                  "mem.yaml:10:16: 'ciphers' in tls of listen entry 1: "
	                  "'TLS_AES_128_GCM_SHA256' is a TLS 1.3 cipher suite: list it under "
	                  "'ciphersuites'");
	load_string_fails(TLS_LISTEN("      cert: a\n"
	                             "      key: b\n"
	                             "      ciphers: \"!ALL\"\n"),
	                  "mem.yaml:10:16: 'ciphers' in tls of listen entry 1: '!ALL' selects no "
	                  "cipher");
	load_string_fails(TLS_LISTEN("      cert: a\n"
	                             "      key: b\n"
	                             "      ciphersuites: TLS_AES_128_GCM_SHA256:TLS_NOPE\n"),
	                  "mem.yaml:10:21: 'ciphersuites' in tls of listen entry 1: unknown cipher "
	                  "suite 'TLS_NOPE'");
	load_string_fails(
	    TLS_LISTEN("      cert: a\n"
	               "      key: b\n"
	               "      ticket_key_rotation: 0\n"),
	    "mem.yaml:10:28: 'ticket_key_rotation' in tls of listen entry 1: 0 is out "
	    "of range (1s..24h)");
	load_string_fails(TLS_LISTEN("      cert: a\n"
	                             "      key: b\n"
	                             "      ticket_key_rotation: 25h\n"),
	                  "mem.yaml:10:28: 'ticket_key_rotation' in tls of listen entry 1: 25h is "
	                  "out of range (1s..24h)");
	load_string_fails(
	    TLS_LISTEN("      cert: a\n"
	               "      key: b\n"
	               "      session_tickets: yes\n"),
	    "mem.yaml:10:24: 'session_tickets' in tls of listen entry 1: expected true "
	    "or false, got 'yes'");
	load_string_fails(TLS_LISTEN("      cert: a\n"
	                             "      key: b\n"
	                             "      foo: 1\n"),
	                  "mem.yaml:10:7: unknown key 'foo' in tls of listen entry 1");
	load_string_fails(TLS_LISTEN("      cert: ''\n"
	                             "      key: b\n"),
	                  "mem.yaml:8:13: 'cert' in tls of listen entry 1: must not be empty");
}
END_TEST

START_TEST(tls_server_names_are_dns_names_used_once)
{
	static const char *const invalid[] = {
	    "mem.yaml:9:45: 'server_names' in certificate 1 of tls of listen entry 1: invalid "
	    "server name 'bad name' (a DNS name, or *.DOMAIN for one more label)",
	    "mem.yaml:9:57: 'server_names' in certificate 1 of tls of listen entry 1: '10.0.0.1' "
	    "is "
	    "an IP address: clients never send one as SNI",
	    "mem.yaml:9:83: 'server_names' in certificate 1 of tls of listen entry 1: invalid "
	    "server name '*' (a DNS name, or *.DOMAIN for one more label)",
	};

	load_string_fails_with(
	    TLS_LISTEN("      certificates:\n"
	               "        - { cert: a, key: b, server_names: [\"bad name\", 10.0.0.1, "
	               "\"*.ok.example\", \"*\"] }\n"),
	    3, invalid);
	load_string_fails(
	    TLS_LISTEN("      certificates:\n"
	               "        - { cert: a, key: b, server_names: [a.example.com] }\n"
	               "        - { cert: c, key: d, server_names: [b.example.com, "
	               "A.Example.com] }\n"),
	    "mem.yaml:10:60: 'server_names' in certificate 2 of tls of listen entry 1: "
	    "'A.Example.com' is already a server name of certificate 1 (at 9:45)");
}
END_TEST

START_TEST(tls_upstream_schema)
{
	struct gw_config *cfg;
	const struct gw_tls_upstream_conf *tls;

	load_string_fails(TLS_UPSTREAM("      cert: c.pem\n"),
	                  "mem.yaml:7:7: missing required key 'key' in tls of upstream 'a'");
	load_string_fails(TLS_UPSTREAM("      key: k.pem\n"),
	                  "mem.yaml:7:7: missing required key 'cert' in tls of upstream 'a'");
	load_string_fails(
	    TLS_UPSTREAM("      server_name: \"bad name\"\n"),
	    "mem.yaml:7:20: 'server_name' in tls of upstream 'a': invalid server name "
	    "'bad name' (a DNS name or an IP address)");
	load_string_fails(TLS_UPSTREAM("      verify: maybe\n"),
	                  "mem.yaml:7:15: 'verify' in tls of upstream 'a': expected true or false, "
	                  "got 'maybe'");
	load_string_fails(TLS_UPSTREAM("      ca: ''\n"),
	                  "mem.yaml:7:11: 'ca' in tls of upstream 'a': must not be empty");
	load_string_fails(TLS_UPSTREAM("      ciphers: HIGH\n"),
	                  "mem.yaml:7:7: unknown key 'ciphers' in tls of upstream 'a'");
	load_string_fails(TLS_UPSTREAM("      - ca.pem\n"),
	                  "mem.yaml:7:7: 'tls' in upstream 'a': expected a mapping, got a list");

	/* tls: {} is TLS with the system's CAs and verification on */
	cfg = load_string_ok(TLS_UPSTREAM("      {}\n"));
	tls = cfg->upstreams[0].tls;
	ck_assert_ptr_nonnull(tls);
	ck_assert(tls->verify);
	ck_assert_ptr_null(tls->ca);
	ck_assert_ptr_null(tls->server_name);
	ck_assert_ptr_null(tls->cert);
	ck_assert_ptr_null(tls->key);
	ck_assert_ptr_nonnull(tls->ctx);
	gw_config_unref(cfg);

	cfg = load_string_ok(TLS_UPSTREAM("      verify: false\n"
	                                  "      server_name: api.internal\n"));
	tls = cfg->upstreams[0].tls;
	ck_assert(!tls->verify);
	ck_assert_str_eq(tls->server_name, "api.internal");
	gw_config_unref(cfg);

	cfg = load_string_ok(TLS_UPSTREAM("      server_name: \"::1\"\n"));
	ck_assert_str_eq(cfg->upstreams[0].tls->server_name, "::1");
	gw_config_unref(cfg);
}
END_TEST

/* ---- snapshots ----------------------------------------------------------- */

START_TEST(ref_and_unref_count_owners)
{
	struct gw_config *cfg = load_ok(VALID_DIR "/minimal.yaml");

	ck_assert_int_eq(atomic_load(&cfg->refs), 1);
	ck_assert_ptr_eq(gw_config_ref(cfg), cfg);
	ck_assert_ptr_eq(gw_config_ref(cfg), cfg);
	ck_assert_int_eq(atomic_load(&cfg->refs), 3);
	gw_config_unref(cfg);
	gw_config_unref(cfg);
	/* Still owned once: still readable (the sanitizer build checks this). */
	ck_assert_int_eq(atomic_load(&cfg->refs), 1);
	ck_assert_str_eq(cfg->routes[0].name, "all");
	gw_config_unref(cfg);
	gw_config_unref(NULL);
	ck_assert_ptr_null(gw_config_ref(NULL));
}
END_TEST

START_TEST(find_upstream_by_name)
{
	struct gw_config *cfg = load_ok(VALID_DIR "/full.yaml");

	ck_assert_ptr_eq(gw_config_find_upstream(cfg, "catalog"), &cfg->upstreams[0]);
	ck_assert_ptr_eq(gw_config_find_upstream(cfg, "checkout"), &cfg->upstreams[1]);
	ck_assert_ptr_null(gw_config_find_upstream(cfg, "Catalog"));
	ck_assert_ptr_null(gw_config_find_upstream(cfg, "catalog "));
	ck_assert_ptr_null(gw_config_find_upstream(cfg, ""));
	ck_assert_ptr_null(gw_config_find_upstream(cfg, NULL));
	ck_assert_ptr_null(gw_config_find_upstream(NULL, "catalog"));
	gw_config_unref(cfg);
}
END_TEST

/* ---- addresses ----------------------------------------------------------- */

START_TEST(sockaddr_accepts_ipv4_ipv6_and_hostnames)
{
	struct gw_sockaddr a;
	const char *why = NULL;

	ck_assert_int_eq(gw_parse_sockaddr("10.1.2.3:80", &a, &why), 0);
	ck_assert_str_eq(ip_of(&a), "10.1.2.3");
	ck_assert_uint_eq(port_of(&a), 80);
	ck_assert_uint_eq(a.len, sizeof(struct sockaddr_in));

	ck_assert_int_eq(gw_parse_sockaddr("[2001:db8::7]:65535", &a, &why), 0);
	ck_assert_int_eq(a.ss.ss_family, AF_INET6);
	ck_assert_str_eq(ip_of(&a), "2001:db8::7");
	ck_assert_uint_eq(port_of(&a), 65535);

	ck_assert_int_eq(gw_parse_sockaddr("localhost:1", &a, &why), 0);
	assert_loopback(&a, 1);

	ck_assert_int_eq(gw_parse_bind_sockaddr("0.0.0.0:0", &a, &why), 0);
	ck_assert_uint_eq(port_of(&a), 0);
}
END_TEST

static void sockaddr_bad(const char *text, const char *reason)
{
	struct gw_sockaddr a;
	const char *why = NULL;

	ck_assert_msg(gw_parse_sockaddr(text, &a, &why) == -1, "'%s' should be refused", text);
	ck_assert_msg(why && strcmp(why, reason) == 0, "'%s': expected '%s', got '%s'", text,
	              reason, why ? why : "(null)");
}

START_TEST(sockaddr_refuses_malformed_addresses_with_a_reason)
{
	sockaddr_bad("10.0.0.1:0", "port must be 1..65535");
	sockaddr_bad("10.0.0.1:65536", "port must be 1..65535");
	sockaddr_bad("10.0.0.1:123456", "invalid port");
	sockaddr_bad("10.0.0.1:+80", "invalid port");
	sockaddr_bad("10.0.0.1: 80", "invalid port");
	sockaddr_bad("10.0.0.1:", "missing port");
	sockaddr_bad("10.0.0.1", "missing port (expected HOST:PORT)");
	sockaddr_bad(":80", "missing host");
	sockaddr_bad("10.1:80", "invalid IPv4 address");
	sockaddr_bad("256.0.0.1:80", "invalid IPv4 address");
	sockaddr_bad("::1:80", "IPv6 addresses go in brackets, as in [::1]:8080");
	sockaddr_bad("[::1]80", "missing port (expected [IPv6]:PORT)");
	sockaddr_bad("[::1", "missing ']' after the IPv6 address");
	sockaddr_bad("[]:80", "missing host");
	sockaddr_bad("[10.0.0.1]:80", "invalid IPv6 address");
	sockaddr_bad("exa mple.com:80", "invalid host name");
	sockaddr_bad("-example.com:80", "invalid host name");
	sockaddr_bad("", "missing port (expected HOST:PORT)");
}
END_TEST

START_TEST(bind_sockaddr_still_refuses_ports_over_65535)
{
	struct gw_sockaddr a;
	const char *why = NULL;

	ck_assert_int_eq(gw_parse_bind_sockaddr("0.0.0.0:65536", &a, &why), -1);
	ck_assert_str_eq(why, "port must be 0..65535");
}
END_TEST

/* ---- the YAML tree ------------------------------------------------------- */

START_TEST(yaml_tree_records_positions_quoting_and_nulls)
{
	static const char text[] = "a: 1\n"
	                           "b:\n"
	                           "  - 'x'\n"
	                           "  - ~\n"
	                           "c: \"\"\n";
	struct gw_errlist errs = {0};
	struct gw_yaml_doc doc;
	const struct gw_node *b, *c;

	ck_assert_int_eq(gw_yaml_load_string("t.yaml", text, sizeof(text) - 1, &doc, &errs), 0);
	ck_assert_uint_eq(doc.nerrors, 0);
	ck_assert_str_eq(doc.file, "t.yaml");
	ck_assert_int_eq(doc.root->type, GW_NODE_MAP);
	ck_assert_uint_eq(doc.root->count, 3);
	ck_assert_str_eq(gw_node_get(doc.root, "a")->value, "1");
	ck_assert(!gw_node_get(doc.root, "a")->quoted);
	b = gw_node_get(doc.root, "b");
	ck_assert_int_eq(b->type, GW_NODE_SEQ);
	ck_assert_uint_eq(b->line, 3);
	ck_assert_uint_eq(b->col, 3);
	ck_assert_str_eq(gw_node_type_name(b), "a list");
	ck_assert(b->items[0]->quoted);
	ck_assert_uint_eq(b->items[0]->line, 3);
	ck_assert_uint_eq(b->items[0]->col, 5);
	ck_assert(!gw_node_is_null(b->items[0]));
	ck_assert(gw_node_is_null(b->items[1]));
	ck_assert_str_eq(gw_node_type_name(b->items[1]), "an empty value");
	c = gw_node_get(doc.root, "c");
	ck_assert(c->quoted);
	ck_assert(!gw_node_is_null(c));
	ck_assert_str_eq(gw_node_type_name(c), "a string");
	ck_assert_ptr_null(gw_node_get(doc.root, "d"));
	ck_assert_ptr_null(gw_node_get(b, "a"));
	ck_assert_uint_eq(errs.count, 0);
	gw_yaml_free(&doc);
	ck_assert_ptr_null(doc.root);
}
END_TEST

START_TEST(yaml_duplicate_keys_keep_the_first_and_are_counted)
{
	static const char text[] = "a: 1\nb: 2\na: 3\na: 4\n";
	struct gw_errlist errs = {0};
	struct gw_yaml_doc doc;

	ck_assert_int_eq(gw_yaml_load_string("t.yaml", text, sizeof(text) - 1, &doc, &errs), 0);
	ck_assert_uint_eq(doc.nerrors, 2);
	ck_assert_uint_eq(doc.root->count, 2);
	ck_assert_str_eq(gw_node_get(doc.root, "a")->value, "1");
	ck_assert_uint_eq(errs.count, 2);
	ck_assert_str_eq(errs.items[0], "t.yaml:3:1: duplicate key 'a' (first defined at 1:1)");
	ck_assert_str_eq(errs.items[1], "t.yaml:4:1: duplicate key 'a' (first defined at 1:1)");
	gw_yaml_free(&doc);
	gw_errlist_free(&errs);
}
END_TEST

START_TEST(yaml_self_referencing_alias_is_refused)
{
	static const char text[] = "a: &x [ *x ]\n";
	struct gw_errlist errs = {0};
	struct gw_yaml_doc doc;

	ck_assert_int_eq(gw_yaml_load_string("t.yaml", text, sizeof(text) - 1, &doc, &errs), -1);
	ck_assert_ptr_null(doc.root);
	ck_assert_uint_eq(errs.count, 2);
	ck_assert_str_eq(errs.items[0], "t.yaml:1:4: anchors are not allowed (&x)");
	ck_assert_str_eq(errs.items[1], "t.yaml:1:9: aliases are not allowed (*x)");
	gw_errlist_free(&errs);
}
END_TEST

/* ---- suite --------------------------------------------------------------- */

static void add_loop_case(Suite *s, const char *name, const TTest *test, size_t n)
{
	TCase *tc = tcase_create(name);

	/* At least one iteration, so an empty directory fails instead of passing. */
	tcase_add_loop_test(tc, test, 0, n ? (int)n : 1);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);
}

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");

	add_loop_case(s, "every_valid_file_loads", every_valid_file_loads, valid_files.count);
	add_loop_case(s, "every_invalid_file_fails_with_its_declared_errors",
	              every_invalid_file_fails_with_its_declared_errors, invalid_files.count);
	gw_test_add_case(s, "invalid_directory_covers_at_least_25_cases",
	                 invalid_directory_covers_at_least_25_cases, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "minimal_file_gets_every_default", minimal_file_gets_every_default,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "full_file_sets_every_key", full_file_sets_every_key,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "upper_bounds_are_accepted", upper_bounds_are_accepted,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "flow_style_quotes_and_key_order_do_not_matter",
	                 flow_style_quotes_and_key_order_do_not_matter, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "workers_auto_means_online_cpus", workers_auto_means_online_cpus,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "shipped_example_config_loads", shipped_example_config_loads,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "unreadable_file_names_the_system_error",
	                 unreadable_file_names_the_system_error, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "empty_input_is_an_error", empty_input_is_an_error,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "errors_are_appended_after_existing_ones_in_file_order",
	                 errors_are_appended_after_existing_ones_in_file_order,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "nul_inside_a_string_is_refused", nul_inside_a_string_is_refused,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "complex_mapping_key_is_refused", complex_mapping_key_is_refused,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "tls_listen_needs_one_form_of_certificates",
	                 tls_listen_needs_one_form_of_certificates, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "tls_listen_values_are_checked", tls_listen_values_are_checked,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "tls_server_names_are_dns_names_used_once",
	                 tls_server_names_are_dns_names_used_once, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "tls_upstream_schema", tls_upstream_schema, 10);
	gw_test_add_case(s, "ref_and_unref_count_owners", ref_and_unref_count_owners,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "find_upstream_by_name", find_upstream_by_name,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "sockaddr_accepts_ipv4_ipv6_and_hostnames",
	                 sockaddr_accepts_ipv4_ipv6_and_hostnames, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "sockaddr_refuses_malformed_addresses_with_a_reason",
	                 sockaddr_refuses_malformed_addresses_with_a_reason,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "bind_sockaddr_still_refuses_ports_over_65535",
	                 bind_sockaddr_still_refuses_ports_over_65535, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "yaml_tree_records_positions_quoting_and_nulls",
	                 yaml_tree_records_positions_quoting_and_nulls, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "yaml_duplicate_keys_keep_the_first_and_are_counted",
	                 yaml_duplicate_keys_keep_the_first_and_are_counted,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "yaml_self_referencing_alias_is_refused",
	                 yaml_self_referencing_alias_is_refused, GW_TEST_DEFAULT_TIMEOUT);
	return s;
}

int main(void)
{
	int rc;

	valid_files = list_yaml(VALID_DIR);
	invalid_files = list_yaml(INVALID_DIR);
	rc = gw_test_run_suite(config_suite(), CK_FORK_GETENV);
	free_list(&valid_files);
	free_list(&invalid_files);
	return rc;
}
