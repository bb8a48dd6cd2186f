/*
 * Reason phrases (issue 11 defect 10): every registered status has its
 * standard phrase, an unregistered one an empty phrase (never "Error").
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/reply.h"
#include "check_suite.h"

/* RFC 9110 section 15, and the other codes of the IANA registry. */
static const struct {
	int status;
	const char *phrase;
} registry[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {102, "Processing"},
    {103, "Early Hints"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {203, "Non-Authoritative Information"},
    {204, "No Content"},
    {205, "Reset Content"},
    {206, "Partial Content"},
    {207, "Multi-Status"},
    {208, "Already Reported"},
    {226, "IM Used"},
    {300, "Multiple Choices"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {305, "Use Proxy"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {402, "Payment Required"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {407, "Proxy Authentication Required"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Range Not Satisfiable"},
    {417, "Expectation Failed"},
    {421, "Misdirected Request"},
    {422, "Unprocessable Content"},
    {423, "Locked"},
    {424, "Failed Dependency"},
    {425, "Too Early"},
    {426, "Upgrade Required"},
    {428, "Precondition Required"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {451, "Unavailable For Legal Reasons"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
    {506, "Variant Also Negotiates"},
    {507, "Insufficient Storage"},
    {508, "Loop Detected"},
    {511, "Network Authentication Required"},
};

START_TEST(test_registered_statuses_have_standard_phrases)
{
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
		ck_assert_str_eq(gw_reply_reason(registry[i].status), registry[i].phrase);
}
END_TEST

/* Unregistered and "(Unused)" codes: an empty phrase, the one a client
 * cannot misread; every phrase is printable ASCII without CR/LF. */
START_TEST(test_other_statuses_have_empty_phrases)
{
	for (int status = 0; status < 1000; status++) {
		const char *p = gw_reply_reason(status);
		bool registered = false;

		ck_assert_ptr_nonnull(p);
		ck_assert_str_ne(p, "Error");
		for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
			registered |= registry[i].status == status;
		if (!registered)
			ck_assert_msg(p[0] == '\0', "%d: '%s'", status, p);
		for (const char *c = p; *c; c++)
			ck_assert_msg(*c >= 0x20 && *c < 0x7f, "%d: byte %d", status, *c);
	}
	ck_assert_str_eq(gw_reply_reason(306), "");
	ck_assert_str_eq(gw_reply_reason(418), "");
	ck_assert_str_eq(gw_reply_reason(299), "");
}
END_TEST

/* The raw form (answers written before evhttp parsed a request). */
START_TEST(test_raw_reply_status_line)
{
	struct gw_error_reply e = {
	    .status = 431,
	    .code = "header_too_large",
	    .request_id = "0123456789abcdef0123456789abcdef",
	    .close = true,
	};
	char out[512];
	size_t n = gw_reply_error_raw(&e, out, sizeof(out));

	ck_assert_uint_gt(n, 0);
	ck_assert_ptr_eq(strstr(out, "HTTP/1.1 431 Request Header Fields Too Large\r\nDate: "),
	                 out);
	ck_assert_ptr_nonnull(strstr(out, " GMT\r\n"));
}
END_TEST

static Suite *reason_suite(void)
{
	Suite *s = suite_create("reason");

	gw_test_add_case(s, "registered_statuses_have_standard_phrases",
	                 test_registered_statuses_have_standard_phrases, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "other_statuses_have_empty_phrases",
	                 test_other_statuses_have_empty_phrases, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "raw_reply_status_line", test_raw_reply_status_line,
	                 GW_TEST_DEFAULT_TIMEOUT);
	return s;
}

int main(void)
{
	return gw_test_run_suite(reason_suite(), CK_FORK_GETENV);
}
