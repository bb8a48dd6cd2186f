/*
 * gatewayctl's JSON parser (gateway/ctl/ctl_json.c): what RFC 8259 allows
 * is read to the exact value, everything else is refused with the byte
 * offset where it went wrong, and the lookup helpers answer safely for
 * missing fields and wrong types.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/ctl/ctl_json.h"
#include "check_suite.h"

/* Parses len bytes of text (strlen when len is (size_t)-1); fails the test when refused. */
static struct ctl_json *parse_n(const char *text, size_t len)
{
	struct ctl_json_error err;
	struct ctl_json *v;

	if (len == (size_t)-1)
		len = strlen(text);
	v = ctl_json_parse(text, len, &err);
	ck_assert_msg(v != NULL, "'%.*s' should parse; refused at byte %zu: %s", (int)len, text,
	              err.offset, err.message);
	return v;
}

static struct ctl_json *parse(const char *text)
{
	return parse_n(text, (size_t)-1);
}

/* Expects len bytes of text to be refused; returns the error. */
static struct ctl_json_error refuse_n(const char *text, size_t len)
{
	struct ctl_json_error err;
	struct ctl_json *v = ctl_json_parse(text, len, &err);

	ck_assert_msg(v == NULL, "'%.*s' should be refused", (int)len, text);
	ck_assert_msg(err.message[0] != '\0', "'%.*s': refused without a message", (int)len, text);
	ck_assert_msg(err.offset <= len, "'%.*s': offset %zu beyond the input", (int)len, text,
	              err.offset);
	return err;
}

static struct ctl_json_error refuse(const char *text)
{
	return refuse_n(text, strlen(text));
}

/* Refused at byte offset, with a message containing word. */
static void refuse_at(const char *text, size_t offset, const char *word)
{
	struct ctl_json_error err = refuse(text);

	ck_assert_msg(err.offset == offset, "'%s': refused at byte %zu (%s), expected %zu", text,
	              err.offset, err.message, offset);
	ck_assert_msg(strstr(err.message, word) != NULL, "'%s': message '%s' lacks '%s'", text,
	              err.message, word);
}

/* The string value of a one-string document, compared byte for byte (NULs included). */
static void string_is(const char *json, const char *want, size_t want_len)
{
	struct ctl_json *v = parse(json);
	size_t len = 12345;
	const char *s = ctl_json_as_string(v, &len);

	ck_assert_msg(s != NULL, "'%s' is no string", json);
	ck_assert_msg(len == want_len, "'%s': length %zu, expected %zu", json, len, want_len);
	ck_assert_msg(memcmp(s, want, want_len) == 0, "'%s': wrong bytes", json);
	ck_assert_msg(s[len] == '\0', "'%s': not NUL-terminated", json);
	ctl_json_free(v);
}

static double number_is(const char *json)
{
	struct ctl_json *v = parse(json);
	double d = -12345;

	ck_assert_msg(ctl_json_as_number(v, &d), "'%s' is no number", json);
	ck_assert_str_eq(v->u.number.text, json);
	ctl_json_free(v);
	return d;
}

static const char status_doc[] =
    "{\n"
    "  \"version\": \"0.1.0\", \"pid\": 1234, \"uptime_seconds\": 12.5, \"draining\": false,\n"
    "  \"config\": {\"file\": \"conf/gateway.yaml\", \"hash\": \"9f2c0011aabbccdd\",\n"
    "             \"reloads\": 0, \"last_reload_error\": null},\n"
    "  \"routes\": [\n"
    "    {\"name\": \"checkout\", \"breaker\": {\"state\": \"closed\", \"forced\": null},\n"
    "     \"responses\": {\"5xx\": 20}},\n"
    "    {\"name\": \"catalog\", \"breaker\": {\"state\": \"open\", \"forced\": \"open\"},\n"
    "     \"responses\": {\"5xx\": 0}}\n"
    "  ],\n"
    "  \"upstreams\": [], \"flags\": [{}], \"empty\": {}\n"
    "}\n";

START_TEST(a_document_parses_into_a_tree_with_lookups)
{
	struct ctl_json *st = parse(status_doc);
	const struct ctl_json *routes = ctl_json_get(st, "routes"), *b;
	double d = 0;
	bool flag = true;

	ck_assert(ctl_json_is(st, CTL_JSON_OBJECT));
	ck_assert_uint_eq(ctl_json_len(st), 9);
	ck_assert_str_eq(ctl_json_as_string(ctl_json_get(st, "version"), NULL), "0.1.0");
	ck_assert(ctl_json_as_number(ctl_json_get(st, "pid"), &d));
	ck_assert(d == 1234);
	ck_assert(ctl_json_as_number(ctl_json_get(st, "uptime_seconds"), &d));
	ck_assert(d == 12.5);
	ck_assert(ctl_json_as_bool(ctl_json_get(st, "draining"), &flag));
	ck_assert(!flag);
	ck_assert_str_eq(ctl_json_as_string(ctl_json_get(ctl_json_get(st, "config"), "file"), NULL),
	                 "conf/gateway.yaml");
	ck_assert(ctl_json_is_null(ctl_json_get(ctl_json_get(st, "config"), "last_reload_error")));

	ck_assert(ctl_json_is(routes, CTL_JSON_ARRAY));
	ck_assert_uint_eq(ctl_json_len(routes), 2);
	ck_assert_str_eq(ctl_json_as_string(ctl_json_get(ctl_json_at(routes, 1), "name"), NULL),
	                 "catalog");
	b = ctl_json_get(ctl_json_at(routes, 1), "breaker");
	ck_assert_str_eq(ctl_json_as_string(ctl_json_get(b, "forced"), NULL), "open");
	ck_assert(ctl_json_as_number(
	    ctl_json_get(ctl_json_get(ctl_json_at(routes, 0), "responses"), "5xx"), &d));
	ck_assert(d == 20);

	ck_assert_uint_eq(ctl_json_len(ctl_json_get(st, "upstreams")), 0);
	ck_assert(ctl_json_is(ctl_json_get(st, "upstreams"), CTL_JSON_ARRAY));
	ck_assert(ctl_json_is(ctl_json_get(st, "empty"), CTL_JSON_OBJECT));
	ck_assert_uint_eq(ctl_json_len(ctl_json_get(st, "empty")), 0);
	ck_assert_uint_eq(ctl_json_len(ctl_json_at(ctl_json_get(st, "flags"), 0)), 0);
	ctl_json_free(st);
}
END_TEST

START_TEST(lookups_answer_safely_for_missing_fields_and_wrong_types)
{
	struct ctl_json *st = parse(status_doc);
	const struct ctl_json *version = ctl_json_get(st, "version");
	double d = 7;
	bool b = true;
	size_t len = 7;

	ck_assert_ptr_null(ctl_json_get(st, "nope"));
	ck_assert_ptr_null(ctl_json_get(st, "Version")); /* keys are case-sensitive */
	ck_assert_ptr_null(ctl_json_get(NULL, "x"));
	ck_assert_ptr_null(ctl_json_get(version, "x")); /* a string has no members */
	ck_assert_ptr_null(ctl_json_get(ctl_json_get(ctl_json_get(st, "a"), "b"), "c"));
	ck_assert_ptr_null(ctl_json_at(ctl_json_get(st, "routes"), 2));
	ck_assert_ptr_null(ctl_json_at(st, 0)); /* an object is no array */
	ck_assert_ptr_null(ctl_json_at(NULL, 0));
	ck_assert_uint_eq(ctl_json_len(NULL), 0);
	ck_assert_uint_eq(ctl_json_len(version), 0);
	ck_assert_ptr_null(ctl_json_as_string(ctl_json_get(st, "pid"), &len));
	ck_assert_uint_eq(len, 7);
	ck_assert_ptr_null(ctl_json_as_string(NULL, NULL));
	ck_assert(!ctl_json_as_number(version, &d));
	ck_assert(!ctl_json_as_number(NULL, &d));
	ck_assert(d == 7);
	ck_assert(!ctl_json_as_bool(ctl_json_get(st, "pid"), &b));
	ck_assert(b);
	ck_assert(!ctl_json_is_null(NULL));
	ck_assert(!ctl_json_is_null(version));
	ck_assert(!ctl_json_is(NULL, CTL_JSON_NULL));
	ck_assert_str_eq(ctl_json_type_name(CTL_JSON_OBJECT), "object");
	ck_assert_str_eq(ctl_json_type_name(CTL_JSON_BOOL), "boolean");
	ctl_json_free(st);
	ctl_json_free(NULL);
}
END_TEST

START_TEST(scalars_whitespace_and_duplicate_keys)
{
	struct ctl_json *v;
	bool b = false;

	v = parse(" \t\r\n true \t\r\n ");
	ck_assert(ctl_json_as_bool(v, &b) && b);
	ctl_json_free(v);
	v = parse("false");
	ck_assert(ctl_json_as_bool(v, &b) && !b);
	ctl_json_free(v);
	v = parse("null");
	ck_assert(ctl_json_is_null(v));
	ctl_json_free(v);
	v = parse("[ 1 , [ ] , { } , \"x\" , null , true ]");
	ck_assert_uint_eq(ctl_json_len(v), 6);
	ck_assert(ctl_json_is(ctl_json_at(v, 1), CTL_JSON_ARRAY));
	ck_assert(ctl_json_is(ctl_json_at(v, 2), CTL_JSON_OBJECT));
	ctl_json_free(v);
	/* duplicate keys are kept: a lookup finds the first */
	v = parse("{\"a\": 1, \"a\": \"two\"}");
	ck_assert_uint_eq(ctl_json_len(v), 2);
	ck_assert(ctl_json_is(ctl_json_get(v, "a"), CTL_JSON_NUMBER));
	ctl_json_free(v);
	/* a key with an escape is looked up decoded; one holding a NUL is never "a" */
	v = parse("{\"a\\u0000b\": 1, \"\\u0061\": 2, \"\": 3}");
	ck_assert_uint_eq(ctl_json_len(v), 3);
	ck_assert_uint_eq(v->u.object.members[0].key_len, 3);
	ck_assert(ctl_json_get(v, "a") == v->u.object.members[1].value);
	ck_assert(ctl_json_get(v, "") == v->u.object.members[2].value);
	ctl_json_free(v);
	/* the input need not be NUL-terminated: only len bytes count */
	v = parse_n("[1]garbage", 3);
	ck_assert_uint_eq(ctl_json_len(v), 1);
	ctl_json_free(v);
}
END_TEST

START_TEST(every_escape_decodes)
{
	string_is("\"\"", "", 0);
	string_is("\"plain text\"", "plain text", 10);
	string_is("\"\\\"\"", "\"", 1);
	string_is("\"\\\\\"", "\\", 1);
	string_is("\"\\/\"", "/", 1);
	string_is("\"\\b\"", "\b", 1);
	string_is("\"\\f\"", "\f", 1);
	string_is("\"\\n\"", "\n", 1);
	string_is("\"\\r\"", "\r", 1);
	string_is("\"\\t\"", "\t", 1);
	string_is("\"a\\\"b\\\\c\\/d\\be\\ff\\ng\\rh\\ti\"", "a\"b\\c/d\be\ff\ng\rh\ti", 17);
	string_is("\"\\u0041\"", "A", 1);
	string_is("\"\\u0000\"", "\0", 1);
	string_is("\"a\\u0000b\"", "a\0b", 3);
	string_is("\"\\u001f\\u001B\"", "\x1f\x1b", 2);
	string_is("\"\\u007f\"", "\x7f", 1);
	string_is("\"\\u0080\"", "\xc2\x80", 2);
	string_is("\"\\u00e9\\u00E9\"", "\xc3\xa9\xc3\xa9", 4);
	string_is("\"\\u07ff\"", "\xdf\xbf", 2);
	string_is("\"\\u0800\"", "\xe0\xa0\x80", 3);
	string_is("\"\\u20AC\"", "\xe2\x82\xac", 3);
	string_is("\"\\uffff\"", "\xef\xbf\xbf", 3);
	string_is("\"\\ud7ff\\ue000\"", "\xed\x9f\xbf\xee\x80\x80", 6);
	/* raw UTF-8 and DEL pass as they are */
	string_is("\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \x7f\"",
	          "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \x7f", 16);
}
END_TEST

START_TEST(surrogate_pairs_become_one_utf8_character)
{
	string_is("\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80", 4);
	string_is("\"\\uD83D\\uDE00\"", "\xf0\x9f\x98\x80", 4);
	string_is("\"\\ud800\\udc00\"", "\xf0\x90\x80\x80", 4);
	string_is("\"\\udbff\\udfff\"", "\xf4\x8f\xbf\xbf", 4);
	string_is("\"x\\ud834\\udd1ey\"", "x\xf0\x9d\x84\x9ey", 6);
	string_is("\"\\ud83d\\ude00\\ud83d\\ude00\"", "\xf0\x9f\x98\x80\xf0\x9f\x98\x80", 8);
}
END_TEST

START_TEST(invalid_surrogates_are_refused)
{
	refuse_at("\"\\ud83d\"", 1, "high surrogate");
	refuse_at("\"\\ud83dx\"", 1, "high surrogate");
	refuse_at("\"\\ud83d\\n\"", 1, "high surrogate");
	refuse_at("\"\\ud83d\\ud83d\"", 7, "no low one");
	refuse_at("\"\\ud83d\\u0041\"", 7, "no low one");
	refuse_at("\"\\ude00\"", 1, "lone low surrogate");
	refuse_at("\"\\udfff\\ud800\"", 1, "lone low surrogate");
	refuse_at("\"\\ud83d\\ude0", 12, "unterminated");
	refuse_at("\"\\ud83d\\udeXY\"", 11, "hex digit");
	refuse_at("\"\\ud83d", 7, "unterminated");
}
END_TEST

START_TEST(bad_escapes_are_refused)
{
	refuse_at("\"\\x41\"", 1, "invalid escape");
	refuse_at("\"\\a\"", 1, "invalid escape");
	refuse_at("\"\\'\"", 1, "invalid escape");
	refuse_at("\"\\U0041\"", 1, "invalid escape");
	refuse_at("\"\\0\"", 1, "invalid escape");
	refuse_at("\"\\u\"", 3, "hex digit");
	refuse_at("\"\\u12\"", 5, "hex digit");
	refuse_at("\"\\u12g4\"", 5, "hex digit");
	refuse_at("\"\\u-123\"", 3, "hex digit");
	refuse_at("\"\\", 2, "unterminated");
	refuse_at("\"abc\\\"", 6, "unterminated");
}
END_TEST

START_TEST(control_characters_in_strings_are_refused)
{
	char doc[] = "\"a?b\"";

	for (int c = 0; c < 0x20; c++) {
		struct ctl_json_error err;

		doc[2] = (char)c;
		err = refuse_n(doc, 5);
		ck_assert_msg(err.offset == 2, "control 0x%02x: offset %zu", c, err.offset);
		ck_assert_msg(strstr(err.message, "control character") != NULL,
		              "control 0x%02x: message '%s'", c, err.message);
	}
	/* in a key too */
	refuse_at("{\"a\tb\": 1}", 3, "control character");
}
END_TEST

START_TEST(invalid_utf8_is_refused)
{
	static const char *const bad[] = {
	    "\"\x80\"",             /* a lone continuation byte */
	    "\"\xbf\"",             /* another */
	    "\"\xc0\xaf\"",         /* overlong '/' */
	    "\"\xc1\xbf\"",         /* overlong */
	    "\"\xe0\x80\xaf\"",     /* overlong, three bytes */
	    "\"\xe0\x9f\xbf\"",     /* overlong, three bytes */
	    "\"\xf0\x80\x80\xaf\"", /* overlong, four bytes */
	    "\"\xed\xa0\x80\"",     /* an encoded surrogate (U+D800) */
	    "\"\xed\xbf\xbf\"",     /* an encoded surrogate (U+DFFF) */
	    "\"\xf4\x90\x80\x80\"", /* above U+10FFFF */
	    "\"\xf5\x80\x80\x80\"", /* never valid */
	    "\"\xff\"",             /* never valid */
	    "\"\xe2\x82\"",         /* cut short before the quote */
	    "\"\xe2\x28\xa1\"",     /* a continuation that is not one */
	    "\"\xc3\"",             /* cut short */
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		refuse_at(bad[i], 1, "UTF-8");
	refuse_at("\"ok\xc3\xa9\xc3\"", 5, "UTF-8");
	/* outside a string, a non-ASCII byte is just unexpected */
	refuse_at("[\xc3\xa9]", 1, "byte 0xc3");
}
END_TEST

START_TEST(numbers_follow_the_json_grammar)
{
	ck_assert(number_is("0") == 0);
	ck_assert(number_is("-0") == 0);
	ck_assert(number_is("7") == 7);
	ck_assert(number_is("123") == 123);
	ck_assert(number_is("-123") == -123);
	ck_assert(number_is("1.5") == 1.5);
	ck_assert(number_is("-0.25") == -0.25);
	ck_assert(number_is("0.5") == 0.5);
	ck_assert(number_is("1e3") == 1000);
	ck_assert(number_is("1E3") == 1000);
	ck_assert(number_is("1e+3") == 1000);
	ck_assert(number_is("1e-3") == 0.001);
	ck_assert(number_is("2.5E-1") == 0.25);
	ck_assert(number_is("-0.0e0") == 0);
	ck_assert(number_is("10e00") == 10);
	ck_assert(number_is("9007199254740992") == 9007199254740992.0);
	ck_assert(number_is("1.7976931348623157e308") == 1.7976931348623157e308);
	ck_assert(number_is("5e-324") > 0);
	ck_assert(number_is("1e-400") == 0); /* underflow: rounds to zero */
	{
		struct ctl_json *v = parse("[1,-2,3.5e1]");
		double d;

		ck_assert(ctl_json_as_number(ctl_json_at(v, 2), &d) && d == 35);
		ctl_json_free(v);
	}
}
END_TEST

START_TEST(bad_numbers_are_refused)
{
	refuse_at("01", 1, "leading zero");
	refuse_at("-01", 2, "leading zero");
	refuse_at("00", 1, "leading zero");
	refuse_at("-", 1, "digit");
	refuse_at("-x", 1, "digit");
	refuse_at("--1", 1, "digit");
	refuse_at("- 1", 1, "digit");
	refuse_at("+1", 0, "value");
	refuse_at(".5", 0, "value");
	refuse_at("1.", 2, "decimal point");
	refuse_at("1.e3", 2, "decimal point");
	refuse_at("1e", 2, "exponent");
	refuse_at("1e+", 3, "exponent");
	refuse_at("1E-x", 3, "exponent");
	refuse_at("0x10", 1, "end of input");
	refuse_at("1.5.2", 3, "end of input");
	refuse_at("NaN", 0, "value");
	refuse_at("Infinity", 0, "value");
	refuse_at("-Infinity", 1, "digit");
	refuse_at("1e400", 0, "out of range");
	refuse_at("[1, -1e999]", 4, "out of range");
}
END_TEST

START_TEST(bad_literals_are_refused)
{
	refuse_at("tru", 3, "end of input");
	refuse_at("trUe", 2, "in 'true'");
	refuse_at("nul", 3, "end of input");
	refuse_at("nulL", 3, "in 'null'");
	refuse_at("fals", 4, "end of input");
	refuse_at("True", 0, "value");
	refuse_at("NULL", 0, "value");
	refuse_at("truex", 4, "end of input");
	refuse_at("null null", 5, "end of input");
	refuse_at("undefined", 0, "value");
}
END_TEST

START_TEST(structure_errors_name_the_offset)
{
	refuse_at("", 0, "end of input");
	refuse_at(" \n\t ", 4, "end of input");
	refuse_at("[1,]", 3, "value");
	refuse_at("[,1]", 1, "value");
	refuse_at("[1 2]", 3, "',' or ']'");
	refuse_at("{\"a\":1,}", 7, "key");
	refuse_at("{\"a\" 1}", 5, "':'");
	refuse_at("{\"a\":}", 5, "value");
	refuse_at("{a:1}", 1, "key");
	refuse_at("{'a':1}", 1, "key");
	refuse_at("{1:1}", 1, "key");
	refuse_at("{\"a\":1 \"b\":2}", 7, "',' or '}'");
	refuse_at("[1}", 2, "',' or ']'");
	refuse_at("{\"a\":1]", 6, "',' or '}'");
	refuse_at("[1] // comment", 4, "end of input");
	refuse_at("/* c */ 1", 0, "value");
	refuse_at("\xef\xbb\xbf{}", 0, "byte order mark");
	refuse_at("[\v1]", 1, "byte 0x0b"); /* not JSON whitespace */
	refuse_at("[\f1]", 1, "byte 0x0c");
	refuse_at("[\xc2\xa0 1]", 1, "byte 0xc2"); /* nor is U+00A0 */
	{
		struct ctl_json_error err = refuse_n("[1,\0 2]", 7);

		ck_assert_uint_eq(err.offset, 3);
		ck_assert_ptr_nonnull(strstr(err.message, "byte 0x00"));
	}
}
END_TEST

START_TEST(trailing_garbage_is_refused)
{
	refuse_at("{} x", 3, "end of input");
	refuse_at("[]]", 2, "end of input");
	refuse_at("{}}", 2, "end of input");
	refuse_at("{}{}", 2, "end of input");
	refuse_at("1 2", 2, "end of input");
	refuse_at("\"a\"\"b\"", 3, "end of input");
	refuse_at("[1],", 3, "end of input");
	refuse_n("{}\n\0", 4);
}
END_TEST

/* Every proper prefix of a document (none of which is a document itself) is refused. */
START_TEST(every_truncation_is_refused)
{
	static const char doc[] = "{\"a\": [1, -2.5e+3, true, false, null, \"x\\u00e9\\ud83d\\ude00"
	                          "\\n\"], \"b\": {\"c\": {}}, \"d\": \"caf\xc3\xa9\"}";
	size_t len = strlen(doc);

	ctl_json_free(parse(doc));
	for (size_t n = 0; n < len; n++) {
		struct ctl_json_error err = refuse_n(doc, n);

		ck_assert_msg(err.offset <= n, "prefix of %zu bytes: offset %zu", n, err.offset);
	}
}
END_TEST

static char *nested(size_t depth, const char *open, const char *inner, const char *close)
{
	size_t o = strlen(open), c = strlen(close), i = strlen(inner);
	char *s = malloc(depth * (o + c) + i + 1), *p = s;

	for (size_t k = 0; k < depth; k++, p += o)
		memcpy(p, open, o);
	memcpy(p, inner, i);
	p += i;
	for (size_t k = 0; k < depth; k++, p += c)
		memcpy(p, close, c);
	*p = '\0';
	return s;
}

START_TEST(nesting_is_limited_to_64)
{
	char *ok = nested(CTL_JSON_MAX_DEPTH, "[", "1", "]");
	char *deep = nested(CTL_JSON_MAX_DEPTH + 1, "[", "1", "]");
	char *objs = nested(CTL_JSON_MAX_DEPTH, "{\"k\":", "{}", "}");
	char *mixed = nested(CTL_JSON_MAX_DEPTH / 2, "[{\"k\":", "0", "}]");
	char *huge = nested(1000000, "[", "", "]");

	ck_assert_int_eq(CTL_JSON_MAX_DEPTH, 64);
	ctl_json_free(parse(ok));
	ctl_json_free(parse(mixed));
	refuse_at(deep, CTL_JSON_MAX_DEPTH, "nested deeper than 64");
	/* 64 objects around a 65th, empty one: that one is too deep too */
	refuse_at(objs, CTL_JSON_MAX_DEPTH * 5, "nested deeper than 64");
	/* a million brackets are refused at the 65th, without a deep recursion */
	refuse_at(huge, CTL_JSON_MAX_DEPTH, "nested deeper");
	/* depth counts nesting, not siblings: many arrays side by side are fine */
	{
		struct ctl_json *v = parse("[[[]],[[]],[[[]]],[],[[],[]]]");

		ck_assert_uint_eq(ctl_json_len(v), 5);
		ctl_json_free(v);
	}
	free(ok);
	free(deep);
	free(objs);
	free(mixed);
	free(huge);
}
END_TEST

/* A large array of objects: the tree grows with the input, and frees cleanly. */
START_TEST(large_documents_parse)
{
	size_t n = 20000, cap = n * 40 + 16, len = 0;
	char *doc = malloc(cap);
	struct ctl_json *v;
	double d = 0;

	len += (size_t)snprintf(doc + len, cap - len, "[");
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(doc + len, cap - len, "%s{\"i\":%zu,\"s\":\"r%zu\"}",
		                        i ? "," : "", i, i);
	len += (size_t)snprintf(doc + len, cap - len, "]");
	v = parse_n(doc, len);
	ck_assert_uint_eq(ctl_json_len(v), n);
	ck_assert(ctl_json_as_number(ctl_json_get(ctl_json_at(v, n - 1), "i"), &d));
	ck_assert(d == (double)(n - 1));
	ck_assert_str_eq(ctl_json_as_string(ctl_json_get(ctl_json_at(v, 77), "s"), NULL), "r77");
	ctl_json_free(v);
	free(doc);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ctl_json");

	gw_test_add_case(s, "document", a_document_parses_into_a_tree_with_lookups,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "lookups", lookups_answer_safely_for_missing_fields_and_wrong_types,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "scalars", scalars_whitespace_and_duplicate_keys,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "escapes", every_escape_decodes, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "surrogates", surrogate_pairs_become_one_utf8_character,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "bad_surrogates", invalid_surrogates_are_refused,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "bad_escapes", bad_escapes_are_refused, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "control_chars", control_characters_in_strings_are_refused,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "bad_utf8", invalid_utf8_is_refused, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "numbers", numbers_follow_the_json_grammar, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "bad_numbers", bad_numbers_are_refused, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "bad_literals", bad_literals_are_refused, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "structure", structure_errors_name_the_offset, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "trailing", trailing_garbage_is_refused, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "truncated", every_truncation_is_refused, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "depth", nesting_is_limited_to_64, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "large", large_documents_parse, GW_TEST_DEFAULT_TIMEOUT);
	return gw_test_run_suite(s, CK_FORK_GETENV);
}
