/*
 * The response head the gateway writes for the client: which upstream
 * headers pass, which it replaces, and the body framing it announces.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "gateway/http/header_rules.h"
#include "gateway/relay.h"
#include "gateway/util/outbuf.h"
#include "check_suite.h"

static struct gw_response_head upstream;

static void add(const char *name, const char *value)
{
	struct gw_header_ref *r = &upstream.headers[upstream.nheaders++];
	r->name = name;
	r->name_len = strlen(name);
	r->value = value;
	r->value_len = strlen(value);
}

/* Formats a head and returns it as a NUL-terminated string (caller frees). */
static char *format(enum gw_relay_framing framing, uint64_t length, const char *connection)
{
	struct evbuffer *out = evbuffer_new();
	struct gw_relay_head h = {
	    .upstream = &upstream,
	    .framing = framing,
	    .length = length,
	    .request_id = "0123456789abcdef0123456789abcdef",
	    .connection = connection,
	};
	size_t n = gw_relay_format_head(&h, out);
	char *text = malloc(n + 1);

	ck_assert_uint_eq(n, evbuffer_get_length(out));
	evbuffer_remove(out, text, n);
	text[n] = '\0';
	evbuffer_free(out);
	return text;
}

static void setup(void)
{
	memset(&upstream, 0, sizeof(upstream));
	upstream.status = 200;
	upstream.version_minor = 1;
}

START_TEST(test_status_line_and_end_to_end_headers_pass)
{
	char *t;

	add("Content-Type", "application/json");
	add("Date", "Sun, 06 Nov 1994 08:49:37 GMT");
	add("Cache-Control", "no-store");
	t = format(GW_RELAY_LENGTH, 5, NULL);
	ck_assert_str_eq(t, "HTTP/1.1 200 OK\r\n"
	                    "Content-Type: application/json\r\n"
	                    "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
	                    "Cache-Control: no-store\r\n"
	                    "Content-Length: 5\r\n"
	                    "X-Request-ID: 0123456789abcdef0123456789abcdef\r\n"
	                    "\r\n");
	free(t);
}
END_TEST

START_TEST(test_hop_by_hop_and_connection_listed_headers_removed)
{
	char *t;

	add("Connection", "keep-alive, X-Secret");
	add("Keep-Alive", "timeout=5");
	add("X-Secret", "1");
	add("Transfer-Encoding", "chunked");
	add("Upgrade", "h2c");
	add("X-Kept", "yes");
	t = format(GW_RELAY_CHUNKED, 0, NULL);
	ck_assert_ptr_null(strstr(t, "Keep-Alive"));
	ck_assert_ptr_null(strstr(t, "X-Secret"));
	ck_assert_ptr_null(strstr(t, "Upgrade"));
	ck_assert_ptr_null(strstr(t, "Connection"));
	ck_assert_ptr_nonnull(strstr(t, "X-Kept: yes\r\n"));
	/* exactly one Transfer-Encoding: the gateway's own framing */
	ck_assert_ptr_nonnull(strstr(t, "Transfer-Encoding: chunked\r\n"));
	ck_assert_ptr_null(strstr(strstr(t, "Transfer-Encoding") + 1, "Transfer-Encoding"));
	free(t);
}
END_TEST

START_TEST(test_upstream_length_replaced_unless_no_body)
{
	char *t;

	add("Content-Length", "999");
	upstream.length_announced = true; /* as the parser says */
	upstream.announced_length = 999;
	t = format(GW_RELAY_LENGTH, 12, NULL);
	ck_assert_ptr_null(strstr(t, "999"));
	ck_assert_ptr_nonnull(strstr(t, "Content-Length: 12\r\n"));
	free(t);
	/* HEAD and 304: the length describes a body that is not sent */
	t = format(GW_RELAY_NO_BODY, 0, NULL);
	ck_assert_ptr_nonnull(strstr(t, "Content-Length: 999\r\n"));
	free(t);
}
END_TEST

START_TEST(test_request_id_is_the_gateways)
{
	char *t;

	add("X-Request-ID", "from-upstream");
	t = format(GW_RELAY_LENGTH, 0, NULL);
	ck_assert_ptr_null(strstr(t, "from-upstream"));
	ck_assert_ptr_nonnull(strstr(t, "X-Request-ID: 0123456789abcdef0123456789abcdef\r\n"));
	free(t);
}
END_TEST

START_TEST(test_connection_header_written_when_asked)
{
	char *t = format(GW_RELAY_LENGTH, 0, "close");

	ck_assert_ptr_nonnull(strstr(t, "\r\nConnection: close\r\n\r\n"));
	free(t);
}
END_TEST

START_TEST(test_reason_phrase_follows_status)
{
	char *t;

	upstream.status = 503;
	t = format(GW_RELAY_LENGTH, 0, NULL);
	ck_assert_ptr_eq(strstr(t, "HTTP/1.1 503 Service Unavailable\r\n"), t);
	free(t);
}
END_TEST

/* Issue 11 defect 9: RFC 9110 8.6, no Content-Length on 1xx and 204. */
START_TEST(test_length_stripped_on_204_kept_on_304_and_head)
{
	char *t;

	add("Content-Length", "5");
	upstream.length_announced = true;
	upstream.announced_length = 5;
	upstream.status = 204;
	t = format(GW_RELAY_NO_BODY, 0, NULL);
	ck_assert_ptr_null(strstr(t, "Content-Length"));
	ck_assert_ptr_eq(strstr(t, "HTTP/1.1 204 No Content\r\n"), t);
	free(t);
	upstream.status = 103;
	t = format(GW_RELAY_NO_BODY, 0, NULL);
	ck_assert_ptr_null(strstr(t, "Content-Length"));
	free(t);
	upstream.status = 304;
	t = format(GW_RELAY_NO_BODY, 0, NULL);
	ck_assert_ptr_nonnull(strstr(t, "Content-Length: 5\r\n"));
	free(t);
	upstream.status = 200; /* HEAD */
	t = format(GW_RELAY_NO_BODY, 0, NULL);
	ck_assert_ptr_nonnull(strstr(t, "Content-Length: 5\r\n"));
	free(t);
}
END_TEST

/* Duplicates ("5" twice, "5, 5") reach the client as one Content-Length;
 * none beside Transfer-Encoding (found by the upstream malformed table). */
START_TEST(test_no_body_length_is_written_once_from_the_parsed_value)
{
	char *t;

	add("Content-Length", "5");
	add("Content-Length", "5, 5");
	upstream.length_announced = true;
	upstream.announced_length = 5;
	upstream.status = 304;
	t = format(GW_RELAY_NO_BODY, 0, NULL);
	ck_assert_ptr_nonnull(strstr(t, "Content-Length: 5\r\n"));
	ck_assert_ptr_null(strstr(strstr(t, "Content-Length") + 1, "Content-Length"));
	ck_assert_ptr_null(strstr(t, "5, 5"));
	free(t);
	upstream.length_announced = false; /* it came with Transfer-Encoding */
	t = format(GW_RELAY_NO_BODY, 0, NULL);
	ck_assert_ptr_null(strstr(t, "Content-Length"));
	free(t);
}
END_TEST

/* Issue 11 defect 10: the upstream's phrase when printable, else the standard one. */
START_TEST(test_reason_phrase_upstream_or_standard)
{
	static const struct {
		int status;
		const char *upstream, *sent;
	} cases[] = {
	    {204, "", "No Content"},         {304, "", "Not Modified"},
	    {301, "", "Moved Permanently"},  {200, "Fine, thanks", "Fine, thanks"},
	    {200, "tab\there", "tab\there"}, {404, "Nicht gefunden \xfc", "Not Found"},
	    {502, "del\x7f", "Bad Gateway"}, {299, "", ""},
	    {299, "Custom", "Custom"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char line[128];
		char *t;

		upstream.status = cases[i].status;
		upstream.reason = cases[i].upstream;
		upstream.reason_len = strlen(cases[i].upstream);
		t = format(GW_RELAY_LENGTH, 0, NULL);
		snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", cases[i].status, cases[i].sent);
		ck_assert_msg(strncmp(t, line, strlen(line)) == 0, "case %zu: %s", i, t);
		free(t);
	}
}
END_TEST

/* Issue 11 defect 14: a Date unless the upstream sent one, exactly one. */
START_TEST(test_date_added_when_missing)
{
	char *t;
	char *d;

	t = format(GW_RELAY_LENGTH, 0, NULL);
	d = strstr(t, "\r\nDate: ");
	ck_assert_ptr_nonnull(d);
	ck_assert_uint_eq(strcspn(d + 8, "\r"), GW_HTTP_DATE_LEN);
	ck_assert_ptr_null(strstr(d + 3, "Date:"));
	free(t);
	add("date", "Sun, 06 Nov 1994 08:49:37 GMT");
	t = format(GW_RELAY_LENGTH, 0, NULL);
	ck_assert_ptr_nonnull(strstr(t, "date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"));
	ck_assert_ptr_null(strstr(t, "Date:"));
	free(t);
	/* a Date the upstream names in Connection is removed: one is added */
	add("Connection", "date");
	t = format(GW_RELAY_LENGTH, 0, NULL);
	ck_assert_ptr_null(strstr(t, "date: Sun"));
	ck_assert_ptr_nonnull(strstr(t, "\r\nDate: "));
	free(t);
}
END_TEST

START_TEST(test_chunk_framing_and_empty_pieces)
{
	struct evbuffer *out = evbuffer_new();
	struct evbuffer *data = evbuffer_new();
	char text[64] = {0};

	gw_relay_frame_chunk(out, data); /* empty: nothing, or it would end the body */
	ck_assert_uint_eq(evbuffer_get_length(out), 0);
	evbuffer_add(data, "0123456789abcdefXYZ", 19);
	gw_relay_frame_chunk(out, data);
	gw_relay_frame_end(out);
	ck_assert_uint_eq(evbuffer_get_length(data), 0);
	evbuffer_remove(out, text, sizeof(text) - 1);
	ck_assert_str_eq(text, "13\r\n0123456789abcdefXYZ\r\n0\r\n\r\n");
	evbuffer_free(out);
	evbuffer_free(data);
}
END_TEST

START_TEST(test_outbuf_numbers_and_overflow)
{
	struct evbuffer *out = evbuffer_new();
	struct gw_outbuf o;
	char big[GW_OUTBUF_SIZE + 100];
	char text[64] = {0};

	gw_outbuf_init(&o, out);
	gw_outbuf_add_u64(&o, 0);
	gw_outbuf_add_lit(&o, " ");
	gw_outbuf_add_u64(&o, 18446744073709551615ULL);
	gw_outbuf_add_lit(&o, " ");
	gw_outbuf_add_hex(&o, 0xabc);
	gw_outbuf_flush(&o);
	evbuffer_remove(out, text, sizeof(text) - 1);
	ck_assert_str_eq(text, "0 18446744073709551615 abc");
	/* more than the stack buffer holds still arrives whole and in order */
	memset(big, 'x', sizeof(big));
	gw_outbuf_add_lit(&o, "<");
	gw_outbuf_add(&o, big, sizeof(big));
	gw_outbuf_add_lit(&o, ">");
	gw_outbuf_flush(&o);
	ck_assert_uint_eq(evbuffer_get_length(out), sizeof(big) + 2);
	evbuffer_free(out);
}
END_TEST

static Suite *relay_suite(void)
{
	Suite *s = suite_create("relay");
	struct {
		const char *name;
		const TTest *test;
	} cases[] = {
	    {"status_line_and_end_to_end_headers_pass",
	     test_status_line_and_end_to_end_headers_pass},
	    {"hop_by_hop_and_connection_listed_headers_removed",
	     test_hop_by_hop_and_connection_listed_headers_removed},
	    {"upstream_length_replaced_unless_no_body",
	     test_upstream_length_replaced_unless_no_body},
	    {"request_id_is_the_gateways", test_request_id_is_the_gateways},
	    {"connection_header_written_when_asked", test_connection_header_written_when_asked},
	    {"reason_phrase_follows_status", test_reason_phrase_follows_status},
	    {"length_stripped_on_204_kept_on_304_and_head",
	     test_length_stripped_on_204_kept_on_304_and_head},
	    {"no_body_length_is_written_once_from_the_parsed_value",
	     test_no_body_length_is_written_once_from_the_parsed_value},
	    {"reason_phrase_upstream_or_standard", test_reason_phrase_upstream_or_standard},
	    {"date_added_when_missing", test_date_added_when_missing},
	    {"chunk_framing_and_empty_pieces", test_chunk_framing_and_empty_pieces},
	    {"outbuf_numbers_and_overflow", test_outbuf_numbers_and_overflow},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		gw_test_add_fixture_case(s, cases[i].name, cases[i].test, GW_TEST_DEFAULT_TIMEOUT,
		                         setup, NULL);
	}
	return s;
}

int main(void)
{
	return gw_test_run_suite(relay_suite(), CK_FORK_GETENV);
}
