/*
 * Hop-by-hop headers, request ids, and the list syntax behind them.
 */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gateway/http/header_rules.h"
#include "check_suite.h"

static bool hop(const char *name, const char *connection)
{
	return gw_header_is_hop_by_hop(name, strlen(name), connection,
	                               connection ? strlen(connection) : 0);
}

START_TEST(test_fixed_set_case_insensitive)
{
	static const char *const names[] = {
	    "Connection",        "connection", "CONNECTION",
	    "Keep-Alive",        "keep-alive", "Proxy-Connection",
	    "proxy-connection",  "TE",         "te",
	    "Trailer",           "TRAILER",    "Transfer-Encoding",
	    "transfer-encoding", "Upgrade",    "uPgRaDe",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		ck_assert_msg(hop(names[i], NULL), "%s should be hop-by-hop", names[i]);
}
END_TEST

START_TEST(test_end_to_end_headers_kept)
{
	static const char *const names[] = {
	    "Content-Type", "Content-Length", "Host", "X-Forwarded-For",
	    "traceparent",  "X-Request-ID",   "Tee",  "Connections",
	    "Trailers",     "Keep-Alive2",    "T",    "",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		ck_assert_msg(!hop(names[i], NULL), "%s should be kept", names[i]);
}
END_TEST

START_TEST(test_names_listed_in_connection)
{
	const char *conn = "keep-alive, X-Foo ,\tx-bar,,  ,X-Baz-Qux";

	ck_assert(hop("X-Foo", conn));
	ck_assert(hop("x-foo", conn));
	ck_assert(hop("X-BAR", conn));
	ck_assert(hop("x-baz-qux", conn));
	ck_assert(!hop("X-Baz", conn));
	ck_assert(!hop("X-Fo", conn));
	ck_assert(!hop("Content-Type", conn));
}
END_TEST

START_TEST(test_connection_value_not_nul_terminated)
{
	/* only the first connection_len bytes count */
	const char conn[] = "x-a, x-b";

	ck_assert(gw_header_is_hop_by_hop("x-a", 3, conn, 3));
	ck_assert(!gw_header_is_hop_by_hop("x-b", 3, conn, 3));
	ck_assert(!gw_header_is_hop_by_hop("x-b", 3, conn, 0));
}
END_TEST

START_TEST(test_list_iteration)
{
	static const char v[] = " , a ,b,\t c d ,";
	const char *pos = v;
	const char *e;
	size_t n;

	ck_assert(gw_http_list_next(&pos, v + sizeof(v) - 1, &e, &n));
	ck_assert_uint_eq(n, 1);
	ck_assert(e[0] == 'a');
	ck_assert(gw_http_list_next(&pos, v + sizeof(v) - 1, &e, &n));
	ck_assert_uint_eq(n, 1);
	ck_assert(e[0] == 'b');
	ck_assert(gw_http_list_next(&pos, v + sizeof(v) - 1, &e, &n));
	ck_assert_uint_eq(n, 3);
	ck_assert(memcmp(e, "c d", 3) == 0);
	ck_assert(!gw_http_list_next(&pos, v + sizeof(v) - 1, &e, &n));
	ck_assert(gw_http_list_has(v, sizeof(v) - 1, "B", 1));
	ck_assert(!gw_http_list_has(v, sizeof(v) - 1, "c", 1));
	ck_assert(!gw_http_list_has(NULL, 0, "a", 1));
}
END_TEST

static bool is_id(const char *s)
{
	if (strlen(s) != 32)
		return false;
	for (int i = 0; i < 32; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static int cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, 33);
}

START_TEST(test_request_ids_are_32_hex_and_unique)
{
	enum { N = 10000 };
	char(*ids)[33] = malloc(N * sizeof(*ids));

	for (int i = 0; i < N; i++) {
		memset(ids[i], 'Z', 33);
		gw_request_id_new(ids[i]);
		ck_assert_msg(is_id(ids[i]), "id %d: %.33s", i, ids[i]);
	}
	qsort(ids, N, sizeof(*ids), cmp_id);
	for (int i = 1; i < N; i++)
		ck_assert_msg(strcmp(ids[i - 1], ids[i]) != 0, "duplicate id %s", ids[i]);
	free(ids);
}
END_TEST

START_TEST(test_request_ids_use_all_hex_digits)
{
	unsigned int seen = 0;
	char id[33];

	for (int i = 0; i < 100; i++) {
		gw_request_id_new(id);
		for (int j = 0; j < 32; j++)
			seen |= 1u << (id[j] <= '9' ? id[j] - '0' : id[j] - 'a' + 10);
	}
	ck_assert_uint_eq(seen, 0xffff);
}
END_TEST

/* After fork the child must not repeat the parent's sequence. */
START_TEST(test_request_ids_differ_after_fork)
{
	char parent_id[33], child_id[33];
	int fds[2];
	pid_t pid;
	int status;

	gw_request_id_new(parent_id); /* seeds this thread before the fork */
	ck_assert_int_eq(pipe(fds), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		gw_request_id_new(child_id);
		_exit(write(fds[1], child_id, 33) == 33 ? 0 : 1);
	}
	gw_request_id_new(parent_id);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_eq(read(fds[0], child_id, 33), 33);
	ck_assert(is_id(child_id));
	ck_assert_str_ne(parent_id, child_id);
	close(fds[0]);
	close(fds[1]);
}
END_TEST

static void *thread_id(void *arg)
{
	gw_request_id_new(arg);
	return NULL;
}

START_TEST(test_request_ids_differ_across_threads)
{
	char a[33], b[33];
	pthread_t ta, tb;

	ck_assert_int_eq(pthread_create(&ta, NULL, thread_id, a), 0);
	ck_assert_int_eq(pthread_create(&tb, NULL, thread_id, b), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	ck_assert(is_id(a) && is_id(b));
	ck_assert_str_ne(a, b);
}
END_TEST

static bool ok_id(const char *s)
{
	return gw_request_id_acceptable(s, strlen(s));
}

START_TEST(test_acceptable_request_ids)
{
	char max[129];

	memset(max, 'a', 128);
	max[128] = '\0';
	ck_assert(ok_id("abc-123"));
	ck_assert(ok_id("0af7651916cd43dd8448eb211c80319c"));
	ck_assert(ok_id("req:42/x_y.z~!{}"));
	ck_assert(ok_id("a"));
	ck_assert(ok_id(max));
}
END_TEST

START_TEST(test_unacceptable_request_ids)
{
	char over[130];

	memset(over, 'a', 129);
	over[129] = '\0';
	ck_assert(!ok_id(""));
	ck_assert(!ok_id(over));
	ck_assert(!ok_id("has space"));
	ck_assert(!ok_id("tab\there"));
	ck_assert(!ok_id("dq\"uote"));
	ck_assert(!ok_id("sq'uote"));
	ck_assert(!ok_id("back\\slash"));
	ck_assert(!ok_id("ctl\x01"));
	ck_assert(!ok_id("del\x7f"));
	ck_assert(!ok_id("utf8-\xc3\xa9"));
	ck_assert(!gw_request_id_acceptable("nul\0x", 5));
	ck_assert(!gw_request_id_acceptable(NULL, 0));
}
END_TEST

/* Issue 11 defect 12: names with '_' are dropped unless configured. */
static bool dropped(const char *name, bool keep)
{
	return gw_request_header_dropped(name, strlen(name), NULL, 0, keep);
}

START_TEST(test_underscore_names_dropped_by_default)
{
	ck_assert(dropped("Transfer_Encoding", false));
	ck_assert(dropped("Content_Length", false));
	ck_assert(dropped("X_Custom", false));
	ck_assert(dropped("_", false));
	ck_assert(!dropped("X-Custom", false));
	ck_assert(!dropped("Content-Type", false));
	/* kept when configured, but hop-by-hop stays hop-by-hop */
	ck_assert(!dropped("Transfer_Encoding", true));
	ck_assert(!dropped("X_Custom", true));
	ck_assert(dropped("Transfer-Encoding", true));
	ck_assert(dropped("Connection", false));
	ck_assert(gw_request_header_dropped("X-Foo", 5, "x-foo", 5, true));
	/* the length bounds the name: a '_' past it does not count */
	ck_assert(!gw_request_header_dropped("X-A_B", 3, NULL, 0, false));
}
END_TEST

/* Issue 11 defect 14: IMF-fixdate (RFC 9110 5.6.7). */
START_TEST(test_http_date_format)
{
	static const struct {
		int64_t t;
		const char *want;
	} cases[] = {
	    {0, "Thu, 01 Jan 1970 00:00:00 GMT"},
	    {784111777, "Sun, 06 Nov 1994 08:49:37 GMT"}, /* RFC 9110's example */
	    {951782400, "Tue, 29 Feb 2000 00:00:00 GMT"},
	    {1709251199, "Thu, 29 Feb 2024 23:59:59 GMT"},
	    {4107456000, "Sun, 28 Feb 2100 00:00:00 GMT"},
	    {4107542400, "Mon, 01 Mar 2100 00:00:00 GMT"},
	    {253402300799, "Fri, 31 Dec 9999 23:59:59 GMT"},
	    {-1, "Wed, 31 Dec 1969 23:59:59 GMT"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[GW_HTTP_DATE_LEN + 1];

		memset(out, 'x', sizeof(out));
		gw_http_date_format(cases[i].t, out);
		ck_assert_str_eq(out, cases[i].want);
	}
}
END_TEST

START_TEST(test_http_date_now_is_now)
{
	char want[GW_HTTP_DATE_LEN + 1], want2[GW_HTTP_DATE_LEN + 1];
	time_t before = time(NULL);
	const char *now = gw_http_date_now();
	time_t after = time(NULL);

	gw_http_date_format((int64_t)before, want);
	gw_http_date_format((int64_t)after, want2);
	ck_assert_uint_eq(strlen(now), GW_HTTP_DATE_LEN);
	ck_assert_msg(strcmp(now, want) == 0 || strcmp(now, want2) == 0, "%s", now);
	/* cached: the same buffer within a thread */
	ck_assert_ptr_eq(gw_http_date_now(), now);
}
END_TEST

static Suite *header_rules_suite(void)
{
	Suite *s = suite_create("header_rules");

	gw_test_add_case(s, "fixed_set_case_insensitive", test_fixed_set_case_insensitive,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "end_to_end_headers_kept", test_end_to_end_headers_kept,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "names_listed_in_connection", test_names_listed_in_connection,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "connection_value_not_nul_terminated",
	                 test_connection_value_not_nul_terminated, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "list_iteration", test_list_iteration, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "request_ids_are_32_hex_and_unique",
	                 test_request_ids_are_32_hex_and_unique, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "request_ids_use_all_hex_digits", test_request_ids_use_all_hex_digits,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "request_ids_differ_after_fork", test_request_ids_differ_after_fork,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "request_ids_differ_across_threads",
	                 test_request_ids_differ_across_threads, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "acceptable_request_ids", test_acceptable_request_ids,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "unacceptable_request_ids", test_unacceptable_request_ids,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "underscore_names_dropped_by_default",
	                 test_underscore_names_dropped_by_default, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "http_date_format", test_http_date_format, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "http_date_now_is_now", test_http_date_now_is_now,
	                 GW_TEST_DEFAULT_TIMEOUT);
	return s;
}

int main(void)
{
	return gw_test_run_suite(header_rules_suite(), CK_FORK_GETENV);
}
