/*
 * The read keeper (gateway/evhttp_adapter.h) on a real event loop.
 *
 * A bufferevent on one end of a non-blocking AF_UNIX socket pair, the
 * keeper beside it, and libevent's epoll back end. Whether the socket is in
 * the epoll set is read from the kernel (/proc/self/fdinfo of the epoll
 * descriptor lists every registered descriptor as "tfd: N"), so "no
 * epoll_ctl when reading stops and starts" is checked where it happens.
 *
 * What is proven: without a keeper, stopping to read takes the socket out
 * of the set (the cost the keeper removes); with one it stays through any
 * number of stops and starts; a wake-up in the same turn as the read that
 * stopped reading keeps the hold; bytes that wait while nothing reads make
 * the keeper let go by the second wake-up (no busy loop), and rearming
 * takes hold again and the bytes are read; a freed keeper leaves nothing
 * registered once the bufferevent stops reading.
 */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "gateway/evhttp_adapter.h"
#include "check_suite.h"

/* ---- the kernel's view --------------------------------------------------- */

/* The epoll descriptors this process has open, as a bit set of fd numbers. */
static void epoll_fds(bool out[1024])
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	memset(out, 0, 1024 * sizeof(bool));
	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) != NULL) {
		char path[300], target[64];
		int fd = atoi(e->d_name);
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		n = readlink(path, target, sizeof(target) - 1);
		if (n <= 0 || fd < 0 || fd >= 1024)
			continue;
		target[n] = '\0';
		if (strcmp(target, "anon_inode:[eventpoll]") == 0)
			out[fd] = true;
	}
	closedir(d);
}

/* Is fd in the epoll set of epfd? */
static bool registered(int epfd, int fd)
{
	char path[64], line[256];
	FILE *f;
	bool found = false;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", epfd);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f)) {
		int tfd;

		if (sscanf(line, "tfd: %d", &tfd) == 1 && tfd == fd)
			found = true;
	}
	fclose(f);
	return found;
}

/* ---- fixture -------------------------------------------------------------- */

struct loop {
	struct event_base *base;
	int epfd;
	int sv[2];               /* sv[0]: the gateway's end, sv[1]: the client's */
	struct bufferevent *bev; /* on sv[0] */
	size_t bytes_read;
	bool stop_after_read; /* the read callback stops reading, as evhttp does */
};

static void on_read(struct bufferevent *bev, void *arg)
{
	struct loop *l = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	l->bytes_read += evbuffer_get_length(in);
	evbuffer_drain(in, evbuffer_get_length(in));
	if (l->stop_after_read)
		bufferevent_disable(bev, EV_READ);
}

static void loop_open(struct loop *l)
{
	bool before[1024], after[1024];

	memset(l, 0, sizeof(*l));
	epoll_fds(before);
	l->base = event_base_new();
	ck_assert_ptr_nonnull(l->base);
	ck_assert_str_eq(event_base_get_method(l->base), "epoll");
	epoll_fds(after);
	l->epfd = -1;
	for (int fd = 0; fd < 1024; fd++)
		if (after[fd] && !before[fd])
			l->epfd = fd;
	ck_assert_int_ge(l->epfd, 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, l->sv), 0);
	l->bev = bufferevent_socket_new(l->base, l->sv[0], BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(l->bev, on_read, NULL, NULL, l);
	ck_assert_int_eq(bufferevent_enable(l->bev, EV_READ), 0);
	ck_assert(registered(l->epfd, l->sv[0]));
}

static void loop_close(struct loop *l)
{
	bufferevent_free(l->bev);
	close(l->sv[1]);
	event_base_free(l->base);
}

/* Runs up to n loop turns that do not wait. */
static void turns(struct loop *l, int n)
{
	for (int i = 0; i < n; i++)
		event_base_loop(l->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

/* ---- tests ---------------------------------------------------------------- */

START_TEST(test_without_keeper_a_stop_leaves_the_set)
{
	struct loop l;

	loop_open(&l);
	bufferevent_disable(l.bev, EV_READ);
	ck_assert_msg(!registered(l.epfd, l.sv[0]),
	              "a bufferevent that stops reading leaves the epoll set (epoll_ctl DEL)");
	bufferevent_enable(l.bev, EV_READ);
	ck_assert(registered(l.epfd, l.sv[0]));
	loop_close(&l);
}
END_TEST

START_TEST(test_keeper_holds_through_stops_and_starts)
{
	struct loop l;
	struct gw_read_keeper *k;

	loop_open(&l);
	k = gw_evhttp_read_keeper_new(l.base, l.bev);
	for (int i = 0; i < 100; i++) {
		bufferevent_disable(l.bev, EV_READ);
		ck_assert_msg(registered(l.epfd, l.sv[0]), "stop %d took the socket out", i);
		turns(&l, 1);
		gw_evhttp_read_keeper_rearm(k);
		bufferevent_enable(l.bev, EV_READ);
		ck_assert(registered(l.epfd, l.sv[0]));
	}
	gw_evhttp_read_keeper_free(k);
	loop_close(&l);
}
END_TEST

START_TEST(test_wakeup_in_the_turn_of_the_stopping_read_keeps_the_hold)
{
	struct loop l;
	struct gw_read_keeper *k;

	loop_open(&l);
	k = gw_evhttp_read_keeper_new(l.base, l.bev);
	l.stop_after_read = true;
	for (int i = 0; i < 20; i++) {
		ck_assert_int_eq(write(l.sv[1], "GET / HTTP/1.1\r\n\r\n", 18), 18);
		turns(&l, 3);
		ck_assert_uint_eq(l.bytes_read, 18 * (size_t)(i + 1));
		ck_assert_msg(registered(l.epfd, l.sv[0]), "request %d: the keeper let go", i);
		gw_evhttp_read_keeper_rearm(k); /* the answer ends */
		bufferevent_enable(l.bev, EV_READ);
	}
	gw_evhttp_read_keeper_free(k);
	loop_close(&l);
}
END_TEST

START_TEST(test_unread_bytes_make_the_keeper_let_go_until_rearmed)
{
	struct loop l;
	struct gw_read_keeper *k;

	loop_open(&l);
	k = gw_evhttp_read_keeper_new(l.base, l.bev);
	bufferevent_disable(l.bev, EV_READ);
	ck_assert_int_eq(write(l.sv[1], "next", 4), 4);
	turns(&l, 2);
	ck_assert_msg(!registered(l.epfd, l.sv[0]),
	              "bytes wait while nothing reads: the keeper must let go, not wake the loop "
	              "on every turn");
	/* Nothing wakes the loop now: a turn that may wait returns at once. */
	ck_assert_int_eq(event_base_loop(l.base, EVLOOP_NONBLOCK), 1);
	ck_assert_uint_eq(l.bytes_read, 0);

	gw_evhttp_read_keeper_rearm(k);
	bufferevent_enable(l.bev, EV_READ);
	ck_assert(registered(l.epfd, l.sv[0]));
	turns(&l, 2);
	ck_assert_uint_eq(l.bytes_read, 4);
	bufferevent_disable(l.bev, EV_READ);
	ck_assert_msg(registered(l.epfd, l.sv[0]), "rearmed: the keeper holds again");
	gw_evhttp_read_keeper_free(k);
	loop_close(&l);
}
END_TEST

START_TEST(test_freed_keeper_leaves_nothing_registered)
{
	struct loop l;
	struct gw_read_keeper *k;

	loop_open(&l);
	k = gw_evhttp_read_keeper_new(l.base, l.bev);
	gw_evhttp_read_keeper_free(k);
	bufferevent_disable(l.bev, EV_READ);
	ck_assert(!registered(l.epfd, l.sv[0]));
	gw_evhttp_read_keeper_free(NULL);
	gw_evhttp_read_keeper_rearm(NULL);
	loop_close(&l);
}
END_TEST

static Suite *read_keeper_suite(void)
{
	Suite *s = suite_create("read_keeper");

	gw_test_add_case(s, "without_keeper_a_stop_leaves_the_set",
	                 test_without_keeper_a_stop_leaves_the_set, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "keeper_holds_through_stops_and_starts",
	                 test_keeper_holds_through_stops_and_starts, GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "wakeup_in_the_turn_of_the_stopping_read_keeps_the_hold",
	                 test_wakeup_in_the_turn_of_the_stopping_read_keeps_the_hold,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "unread_bytes_make_the_keeper_let_go_until_rearmed",
	                 test_unread_bytes_make_the_keeper_let_go_until_rearmed,
	                 GW_TEST_DEFAULT_TIMEOUT);
	gw_test_add_case(s, "freed_keeper_leaves_nothing_registered",
	                 test_freed_keeper_leaves_nothing_registered, GW_TEST_DEFAULT_TIMEOUT);
	return s;
}

int main(void)
{
	return gw_test_run_suite(read_keeper_suite(), CK_FORK_GETENV);
}
