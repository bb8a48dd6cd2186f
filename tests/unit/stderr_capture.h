/*
 * Test helper: capture what the code under test logs on stderr, to assert
 * on log lines. Only for Check tests (uses ck_assert).
 */
#ifndef GW_TEST_STDERR_CAPTURE_H
#define GW_TEST_STDERR_CAPTURE_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* stderr captured into a file (log lines), in this test process only. */
struct captured {
	FILE *file;
	int saved;
};

static inline struct captured capture_start(void)
{
	struct captured c;

	fflush(stderr);
	c.file = tmpfile();
	ck_assert_ptr_nonnull(c.file);
	c.saved = dup(2);
	dup2(fileno(c.file), 2);
	return c;
}

/* Restores stderr; returns what was written to it (the caller frees). */
static inline char *capture_end(struct captured *c)
{
	long len;
	char *text;

	fflush(stderr);
	dup2(c->saved, 2);
	close(c->saved);
	len = ftell(c->file);
	ck_assert_int_ge(len, 0);
	text = calloc(1, (size_t)len + 1);
	rewind(c->file);
	ck_assert_uint_eq(fread(text, 1, (size_t)len, c->file), (size_t)len);
	fclose(c->file);
	return text;
}

#endif
