/*
 * Test helper: the Check boilerplate every unit test program shares. Adds
 * one test per TCase (named, with its timeout and optional fixture) and runs
 * a suite, returning the program's exit code. Prints nothing beyond what
 * Check prints (its "100%: Checks: N, Failures: 0, Errors: 0" line is read
 * by CI). Only for Check tests.
 */
#ifndef GW_TEST_CHECK_SUITE_H
#define GW_TEST_CHECK_SUITE_H

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/util/errlist.h"

/* Timeout argument meaning "leave Check's default" (CK_DEFAULT_TIMEOUT, else 4 s). */
#define GW_TEST_DEFAULT_TIMEOUT 0.0

/* Adds a TCase called name holding test, with a checked fixture (either may be NULL). */
static inline void gw_test_add_fixture_case(Suite *s, const char *name, const TTest *test,
                                            double timeout_s, SFun setup, SFun teardown)
{
	TCase *tc = tcase_create(name);

	if (setup != NULL || teardown != NULL)
		tcase_add_checked_fixture(tc, setup, teardown);
	if (timeout_s > 0)
		tcase_set_timeout(tc, timeout_s);
	tcase_add_test(tc, test);
	suite_add_tcase(s, tc);
}

/* Adds a TCase called name holding test. */
static inline void gw_test_add_case(Suite *s, const char *name, const TTest *test, double timeout_s)
{
	gw_test_add_fixture_case(s, name, test, timeout_s, NULL, NULL);
}

/*
 * Runs every test of s (CK_NORMAL output) and frees it. fork is CK_FORK,
 * CK_NOFORK, or CK_FORK_GETENV (Check's default: the CK_FORK variable).
 * Returns EXIT_SUCCESS when nothing failed, else EXIT_FAILURE.
 */
static inline int gw_test_run_suite(Suite *s, enum fork_status fork)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_set_fork_status(sr, fork);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* All errors of errs, one per line, for failure messages (the caller frees). */
static inline char *gw_test_join_errors(const struct gw_errlist *errs)
{
	size_t len = 1;
	char *s;

	for (size_t i = 0; i < errs->count; i++)
		len += strlen(errs->items[i]) + 3;
	s = calloc(1, len);
	for (size_t i = 0; i < errs->count; i++) {
		strcat(s, "\n  ");
		strcat(s, errs->items[i]);
	}
	return s;
}

#endif
