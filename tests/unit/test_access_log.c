/*
 * The access log's reopen (gateway/access_log.h), as logrotate uses it: the
 * file is renamed, gw_access_log_reopen() starts a new one at the path, the
 * renamed one keeps what was written before. Also: stdout and off are
 * no-ops, a failed reopen keeps the old file, the descriptor stays
 * close-on-exec, and workers flushing while the file is swapped lose and
 * split no line.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gateway/access_log.h"
#include "check_suite.h"

static char dir[PATH_MAX];

static void make_dir(void)
{
	snprintf(dir, sizeof(dir), "%s/gw-access-log-XXXXXX",
	         getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void remove_dir(void)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static void path_in_dir(char *out, size_t size, const char *name)
{
	ck_assert_int_lt(snprintf(out, size, "%s/%s", dir, name), (int)size);
}

static struct gw_access_entry entry(const char *path)
{
	struct gw_access_entry e = {
	    .request_id = "0123456789abcdef0123456789abcdef",
	    .client = "127.0.0.1",
	    .method = "GET",
	    .path = path,
	    .route = "r",
	    .upstream = "u",
	    .server = "127.0.0.1:9001",
	    .status = 200,
	    .tries = 1,
	    .bytes = 2,
	    .duration_us = 1500,
	    .error = NULL,
	};
	return e;
}

static void log_line(struct gw_access_log_buf *buf, const char *path)
{
	struct gw_access_entry e = entry(path);

	gw_access_log_add(buf, &e);
	gw_access_log_flush(buf);
}

/* The whole file, NUL-terminated (free it); "" when it does not exist. */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *data;
	long n;

	if (!f)
		return strdup("");
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	data = malloc((size_t)n + 1);
	ck_assert_uint_eq(fread(data, 1, (size_t)n, f), (size_t)n);
	data[n] = '\0';
	fclose(f);
	return data;
}

static unsigned count_lines(const char *text)
{
	unsigned n = 0;

	for (; *text; text++)
		n += *text == '\n';
	return n;
}

/* The descriptor of this process open on path, or -1. */
static int fd_of(const char *path)
{
	char link[64], target[PATH_MAX];

	for (int fd = 0; fd < 1024; fd++) {
		ssize_t n;

		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		n = readlink(link, target, sizeof(target) - 1);
		if (n < 0)
			continue;
		target[n] = '\0';
		if (strcmp(target, path) == 0)
			return fd;
	}
	return -1;
}

START_TEST(reopen_after_rename_starts_a_new_file)
{
	char path[PATH_MAX], rotated[PATH_MAX];
	const char *why = NULL;
	struct gw_access_log *log;
	struct gw_access_log_buf *buf;
	char *old_text, *new_text;
	int fd;

	make_dir();
	path_in_dir(path, sizeof(path), "access.log");
	path_in_dir(rotated, sizeof(rotated), "access.log.1");
	log = gw_access_log_open(path, &why);
	ck_assert_ptr_nonnull(log);
	buf = gw_access_log_buf_new(log);
	log_line(buf, "/before");
	ck_assert_int_eq(rename(path, rotated), 0);
	log_line(buf, "/renamed"); /* not reopened yet: still the renamed file */
	ck_assert_int_eq(gw_access_log_reopen(log, &why), 0);
	log_line(buf, "/after");

	old_text = slurp(rotated);
	new_text = slurp(path);
	ck_assert_uint_eq(count_lines(old_text), 2);
	ck_assert_ptr_nonnull(strstr(old_text, "\"path\":\"/before\""));
	ck_assert_ptr_nonnull(strstr(old_text, "\"path\":\"/renamed\""));
	ck_assert_uint_eq(count_lines(new_text), 1);
	ck_assert_ptr_nonnull(strstr(new_text, "\"path\":\"/after\""));

	/* The same descriptor number, now on the new file, still close-on-exec. */
	fd = fd_of(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fd_of(rotated), -1);
	ck_assert_int_ne(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);

	free(old_text);
	free(new_text);
	gw_access_log_buf_free(buf);
	gw_access_log_close(log);
	remove_dir();
}
END_TEST

START_TEST(reopen_of_an_unmoved_file_appends)
{
	char path[PATH_MAX];
	const char *why = NULL;
	struct gw_access_log *log;
	struct gw_access_log_buf *buf;
	char *text;

	make_dir();
	path_in_dir(path, sizeof(path), "access.log");
	log = gw_access_log_open(path, &why);
	buf = gw_access_log_buf_new(log);
	log_line(buf, "/one");
	ck_assert_int_eq(gw_access_log_reopen(log, &why), 0);
	ck_assert_int_eq(gw_access_log_reopen(log, &why), 0);
	log_line(buf, "/two");
	text = slurp(path);
	ck_assert_uint_eq(count_lines(text), 2);
	ck_assert_ptr_nonnull(strstr(text, "/two"));
	ck_assert(strstr(text, "/one") < strstr(text, "/two"));
	free(text);
	gw_access_log_buf_free(buf);
	gw_access_log_close(log);
	remove_dir();
}
END_TEST

START_TEST(reopen_of_stdout_and_off_does_nothing)
{
	const char *why = NULL;
	struct gw_access_log *out = gw_access_log_open("stdout", &why);
	struct gw_access_log *off = gw_access_log_open("off", &why);

	ck_assert_int_eq(gw_access_log_reopen(out, &why), 0);
	ck_assert_int_eq(gw_access_log_reopen(off, &why), 0);
	ck_assert_ptr_null(why);
	ck_assert_int_ne(fcntl(STDOUT_FILENO, F_GETFD), -1); /* stdout left open */
	gw_access_log_close(out);
	gw_access_log_close(off);
}
END_TEST

START_TEST(failed_reopen_keeps_the_old_file)
{
	char sub[PATH_MAX], path[PATH_MAX], moved[PATH_MAX];
	const char *why = NULL;
	struct gw_access_log *log;
	struct gw_access_log_buf *buf;
	char *text;

	make_dir();
	path_in_dir(sub, sizeof(sub), "logs");
	path_in_dir(moved, sizeof(moved), "logs.moved");
	ck_assert_int_eq(mkdir(sub, 0700), 0);
	ck_assert_int_lt(snprintf(path, sizeof(path), "%s/access.log", sub), (int)sizeof(path));
	log = gw_access_log_open(path, &why);
	buf = gw_access_log_buf_new(log);
	log_line(buf, "/first");
	/* The directory is gone from the path: the path cannot be opened again. */
	ck_assert_int_eq(rename(sub, moved), 0);
	ck_assert_int_eq(gw_access_log_reopen(log, &why), -1);
	ck_assert_ptr_nonnull(why);
	ck_assert_str_eq(why, strerror(ENOENT));
	log_line(buf, "/second");
	ck_assert_int_lt(snprintf(path, sizeof(path), "%s/access.log", moved), (int)sizeof(path));
	text = slurp(path);
	ck_assert_uint_eq(count_lines(text), 2);
	ck_assert_ptr_nonnull(strstr(text, "/second"));
	free(text);
	gw_access_log_buf_free(buf);
	gw_access_log_close(log);
	remove_dir();
}
END_TEST

/* ---- workers flushing during reopens ------------------------------------ */

#define WRITERS          4
#define LINES_PER_WRITER 20000
#define ROTATIONS        40

struct writer {
	pthread_t thread;
	struct gw_access_log *log;
	unsigned id;
};

static void *write_lines(void *arg)
{
	struct writer *w = arg;
	struct gw_access_log_buf *buf = gw_access_log_buf_new(w->log);
	char path[64];

	for (unsigned i = 0; i < LINES_PER_WRITER; i++) {
		struct gw_access_entry e;

		snprintf(path, sizeof(path), "/w%u/%u", w->id, i);
		e = entry(path);
		gw_access_log_add(buf, &e);
		if (i % 37 == 0)
			gw_access_log_flush(buf); /* small batches too, not only 32 KiB ones */
	}
	gw_access_log_buf_free(buf); /* flushes the rest */
	return NULL;
}

/* Checks every line of text is one whole record; counts them in seen. */
static unsigned check_records(const char *text, unsigned char *seen)
{
	unsigned n = 0;
	const char *line = text;

	while (*line) {
		const char *end = strchr(line, '\n');
		const char *p;
		unsigned id, i;

		ck_assert_msg(end != NULL, "last line not terminated: %s", line);
		ck_assert_msg(strncmp(line, "{\"time\":\"", 9) == 0 && end[-1] == '}',
		              "torn line: %.*s", (int)(end - line), line);
		/* memmem within the line: strstr (ASan's in particular) and
		 * sscanf measure the whole rest of the text first, which makes
		 * this loop quadratic */
		p = memmem(line, (size_t)(end - line), "\"path\":\"/w", 10);
		ck_assert_msg(p != NULL && p < end, "no path in: %.*s", (int)(end - line), line);
		{
			char *q;

			id = (unsigned)strtoul(p + 10, &q, 10);
			ck_assert_msg(*q == '/', "bad path in: %.*s", (int)(end - line), line);
			i = (unsigned)strtoul(q + 1, &q, 10);
			ck_assert_msg(*q == '"', "bad path in: %.*s", (int)(end - line), line);
		}
		ck_assert_uint_lt(id, WRITERS);
		ck_assert_uint_lt(i, LINES_PER_WRITER);
		ck_assert_msg(!seen[id * LINES_PER_WRITER + i], "line w%u/%u twice", id, i);
		seen[id * LINES_PER_WRITER + i] = 1;
		n++;
		line = end + 1;
	}
	return n;
}

static void rotated_path(char *out, size_t size, unsigned r)
{
	char name[32];

	snprintf(name, sizeof(name), "access.log.%u", r + 1);
	path_in_dir(out, size, name);
}

START_TEST(no_line_lost_or_torn_while_workers_flush)
{
	char path[PATH_MAX], rotated[PATH_MAX];
	const char *why = NULL;
	struct gw_access_log *log;
	struct writer writers[WRITERS];
	unsigned char *seen = calloc(WRITERS * LINES_PER_WRITER, 1);
	unsigned total = 0;

	make_dir();
	path_in_dir(path, sizeof(path), "access.log");
	log = gw_access_log_open(path, &why);
	ck_assert_ptr_nonnull(log);
	for (unsigned i = 0; i < WRITERS; i++) {
		writers[i].log = log;
		writers[i].id = i;
		ck_assert_int_eq(pthread_create(&writers[i].thread, NULL, write_lines, &writers[i]),
		                 0);
	}
	for (unsigned r = 0; r < ROTATIONS; r++) {
		rotated_path(rotated, sizeof(rotated), r);
		ck_assert_int_eq(rename(path, rotated), 0); /* reopen created the path */
		ck_assert_int_eq(gw_access_log_reopen(log, &why), 0);
		usleep(500);
	}
	for (unsigned i = 0; i < WRITERS; i++)
		pthread_join(writers[i].thread, NULL);

	for (unsigned r = 0; r <= ROTATIONS; r++) {
		char *text;

		/* Every rotated file, then the one at the path now. */
		if (r < ROTATIONS)
			rotated_path(rotated, sizeof(rotated), r);
		text = slurp(r < ROTATIONS ? rotated : path);
		total += check_records(text, seen);
		free(text);
	}
	ck_assert_uint_eq(total, WRITERS * LINES_PER_WRITER);
	free(seen);
	gw_access_log_close(log);
	remove_dir();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("access_log");

	gw_test_add_case(s, "reopen after rename", reopen_after_rename_starts_a_new_file,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "reopen unmoved", reopen_of_an_unmoved_file_appends,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "reopen stdout/off", reopen_of_stdout_and_off_does_nothing,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "failed reopen", failed_reopen_keeps_the_old_file,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "concurrent flushes", no_line_lost_or_torn_while_workers_flush, 60.0);
	return gw_test_run_suite(s, CK_FORK_GETENV);
}
