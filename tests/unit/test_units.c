/*
 * Durations and sizes as the config file spells them: what is accepted, to
 * the exact value, and everything that must be refused.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "gateway/config/units.h"
#include "check_suite.h"

static uint64_t duration_ok(const char *text)
{
	uint64_t ms = 12345;

	ck_assert_msg(gw_parse_duration_ms(text, &ms) == 0, "'%s' should be a duration", text);
	return ms;
}

static void duration_bad(const char *text)
{
	uint64_t ms = 12345;

	const char *shown = text ? text : "(null)";

	ck_assert_msg(gw_parse_duration_ms(text, &ms) == -1, "'%s' should be refused", shown);
	ck_assert_msg(ms == 12345, "'%s' must leave the output alone", shown);
}

static uint64_t size_ok(const char *text)
{
	uint64_t bytes = 12345;

	ck_assert_msg(gw_parse_size(text, &bytes) == 0, "'%s' should be a size", text);
	return bytes;
}

static void size_bad(const char *text)
{
	uint64_t bytes = 12345;

	const char *shown = text ? text : "(null)";

	ck_assert_msg(gw_parse_size(text, &bytes) == -1, "'%s' should be refused", shown);
	ck_assert_msg(bytes == 12345, "'%s' must leave the output alone", shown);
}

START_TEST(duration_units_scale_to_milliseconds)
{
	ck_assert_uint_eq(duration_ok("250ms"), 250);
	ck_assert_uint_eq(duration_ok("2s"), 2000);
	ck_assert_uint_eq(duration_ok("1m"), 60000);
	ck_assert_uint_eq(duration_ok("1h"), 3600000);
	ck_assert_uint_eq(duration_ok("90s"), 90000);
	ck_assert_uint_eq(duration_ok("0ms"), 0);
	ck_assert_uint_eq(duration_ok("0s"), 0);
	ck_assert_uint_eq(duration_ok("007s"), 7000);
}
END_TEST

START_TEST(duration_bare_zero_is_the_only_unitless_value)
{
	ck_assert_uint_eq(duration_ok("0"), 0);
	duration_bad("1");
	duration_bad("250");
	duration_bad("00");
}
END_TEST

START_TEST(duration_refuses_malformed_text)
{
	static const char *const bad[] = {
	    "",      "s",     "ms",   "-1s",  "+1s", " 1s", "1s ", "1 s",  "1.5s", "1,5s",
	    "0x10s", "1S",    "1MS",  "1sec", "1d",  "1us", "1ns", "1ms1", "1sm",  "s1",
	    "1e3ms", "1h30m", "\t1s", "1s\n", "１s", "inf", "nan", "-0",   "+0",   "0.0",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		duration_bad(bad[i]);
	duration_bad(NULL);
}
END_TEST

START_TEST(duration_largest_values_and_overflow)
{
	/* 2^64-1 milliseconds is representable; one more is not. */
	ck_assert_uint_eq(duration_ok("18446744073709551615ms"), UINT64_MAX);
	duration_bad("18446744073709551616ms");
	duration_bad("99999999999999999999999ms");
	/* Overflow in the multiplication by the unit, not in the number. */
	ck_assert_uint_eq(duration_ok("18446744073709551s"), 18446744073709551000ull);
	duration_bad("18446744073709552s");
	ck_assert_uint_eq(duration_ok("5124095576030h"), 5124095576030ull * 3600000);
	duration_bad("5124095576031h");
}
END_TEST

START_TEST(size_plain_bytes_and_binary_suffixes)
{
	ck_assert_uint_eq(size_ok("0"), 0);
	ck_assert_uint_eq(size_ok("512"), 512);
	ck_assert_uint_eq(size_ok("16k"), 16384);
	ck_assert_uint_eq(size_ok("16K"), 16384);
	ck_assert_uint_eq(size_ok("8m"), 8388608);
	ck_assert_uint_eq(size_ok("8M"), 8388608);
	ck_assert_uint_eq(size_ok("0k"), 0);
	ck_assert_uint_eq(size_ok("1024m"), 1073741824);
}
END_TEST

START_TEST(size_refuses_malformed_text)
{
	static const char *const bad[] = {
	    "",     "k",   "m",  "-1",  "+1",   " 1",  "1 ",  "1 k", "1.5k",
	    "0x10", "1g",  "1G", "1kb", "1KiB", "1b",  "1mk", "k1",  "1e3",
	    "1,5",  "\n1", "1t", "1\t", "-0",   "0.0", "1kk", "1mm",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		size_bad(bad[i]);
	size_bad(NULL);
}
END_TEST

START_TEST(size_largest_values_and_overflow)
{
	ck_assert_uint_eq(size_ok("18446744073709551615"), UINT64_MAX);
	size_bad("18446744073709551616");
	ck_assert_uint_eq(size_ok("18014398509481983k"), 18014398509481983ull * 1024);
	size_bad("18014398509481984k");
	ck_assert_uint_eq(size_ok("17592186044415m"), 17592186044415ull * 1048576);
	size_bad("17592186044416M");
}
END_TEST

static Suite *units_suite(void)
{
	Suite *s = suite_create("units");
	struct {
		const char *name;
		const TTest *test;
	} cases[] = {
	    {"duration_units_scale_to_milliseconds", duration_units_scale_to_milliseconds},
	    {"duration_bare_zero_is_the_only_unitless_value",
	     duration_bare_zero_is_the_only_unitless_value},
	    {"duration_refuses_malformed_text", duration_refuses_malformed_text},
	    {"duration_largest_values_and_overflow", duration_largest_values_and_overflow},
	    {"size_plain_bytes_and_binary_suffixes", size_plain_bytes_and_binary_suffixes},
	    {"size_refuses_malformed_text", size_refuses_malformed_text},
	    {"size_largest_values_and_overflow", size_largest_values_and_overflow},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		gw_test_add_case(s, cases[i].name, cases[i].test, GW_TEST_DEFAULT_TIMEOUT);
	}
	return s;
}

int main(void)
{
	return gw_test_run_suite(units_suite(), CK_FORK_GETENV);
}
