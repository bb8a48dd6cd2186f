/*
 * The socket -> connection table (client_conn.c): its memory follows the
 * sockets in use, never RLIMIT_NOFILE (issue 11 defect 6: where soft = hard
 * = 2^30, start-up allocated a flat table of 8 GiB).
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/client_conn.h"
#include "check_suite.h"

/* A field of /proc/self/status ("VmSize:", "VmRSS:"), in KiB. */
static long status_kib(const char *field)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, field, strlen(field)) == 0)
			v = strtol(line + strlen(field), NULL, 10);
	fclose(f);
	ck_assert_int_ge(v, 0);
	return v;
}

/* Each test runs in its own process (Check forks), so each sets up the
 * process-wide table once. */
START_TEST(nofile_2_30_costs_little)
{
	long vm0 = status_kib("VmSize:"), rss0 = status_kib("VmRSS:");
	struct gw_client_conn *a = (struct gw_client_conn *)(uintptr_t)0x1000;
	struct gw_client_conn *b = (struct gw_client_conn *)(uintptr_t)0x2000;

	gw_client_conn_table_init_for((uint64_t)1 << 30);
	/* a directory of 8 bytes per 4096 fds: 2 MiB for 2^30 */
	ck_assert_uint_le(gw_client_conn_table_bytes(), 2u << 20);
	ck_assert_int_le(status_kib("VmSize:") - vm0, 8 * 1024);
	/* the directory may be touched whole (meson test sets MALLOC_PERTURB_,
	 * which makes calloc write every byte): 2 MiB, never GiBs */
	ck_assert_int_le(status_kib("VmRSS:") - rss0, 4 * 1024);

	/* sockets low and high: a chunk each, made on first use */
	ck_assert_ptr_null(gw_client_conn_table_get(7));
	gw_client_conn_table_set(7, a);
	gw_client_conn_table_set((1 << 30) - 1, b);
	ck_assert_ptr_eq(gw_client_conn_table_get(7), a);
	ck_assert_ptr_eq(gw_client_conn_table_get((1 << 30) - 1), b);
	ck_assert_ptr_null(gw_client_conn_table_get(8));
	ck_assert_ptr_null(gw_client_conn_table_get(1 << 29));
	ck_assert_uint_le(gw_client_conn_table_bytes(), (2u << 20) + 2 * 4096 * sizeof(void *));
	gw_client_conn_table_set(7, NULL);
	ck_assert_ptr_null(gw_client_conn_table_get(7));

	/* outside the table: nothing stored, nothing found */
	gw_client_conn_table_set(1 << 30, a);
	ck_assert_ptr_null(gw_client_conn_table_get(1 << 30));
	ck_assert_ptr_null(gw_client_conn_table_get(-1));
	ck_assert_int_le(status_kib("VmRSS:") - rss0, 5 * 1024);
}
END_TEST

/* 20 000 sockets in use (max_connections 10 000 and their upstreams): the
 * table holds about 8 bytes for each. */
START_TEST(memory_follows_sockets_in_use)
{
	struct gw_client_conn *c = (struct gw_client_conn *)(uintptr_t)0x1000;
	size_t empty;

	gw_client_conn_table_init_for(1048576);
	empty = gw_client_conn_table_bytes();
	ck_assert_uint_le(empty, 4096);
	for (int fd = 0; fd < 20000; fd++)
		gw_client_conn_table_set(fd, c);
	for (int fd = 0; fd < 20000; fd++)
		ck_assert_ptr_eq(gw_client_conn_table_get(fd), c);
	ck_assert_uint_le(gw_client_conn_table_bytes() - empty, (20000 + 4096) * sizeof(void *));
}
END_TEST

/* No bound at all (RLIM_INFINITY): the directory covers every int fd. */
START_TEST(unbounded_limit_is_clamped)
{
	gw_client_conn_table_init_for(UINT64_MAX);
	ck_assert_uint_le(gw_client_conn_table_bytes(), 4u << 20);
	gw_client_conn_table_set(0x7ffffffe, (struct gw_client_conn *)(uintptr_t)0x1000);
	ck_assert_ptr_nonnull(gw_client_conn_table_get(0x7ffffffe));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("conn_table");

	gw_test_add_case(s, "nofile_2_30_costs_little", nofile_2_30_costs_little, 30);
	gw_test_add_case(s, "memory_follows_sockets_in_use", memory_follows_sockets_in_use, 30);
	gw_test_add_case(s, "unbounded_limit_is_clamped", unbounded_limit_is_clamped, 30);
	return gw_test_run_suite(s, CK_FORK);
}
