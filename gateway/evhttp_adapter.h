/*
 * Every place where the gateway goes beyond evhttp's public API, in one file.
 *
 * evhttp's public API cannot say some things the gateway needs: send bytes
 * that are already a framed HTTP response, learn the request's HTTP version,
 * serve an absolute-form target as an origin server, write a refusal and
 * close before evhttp has parsed anything. The gateway does these by writing
 * fields of struct evhttp_request (event2/http_struct.h, the compatibility
 * view of the private structure), by relying on what evhttp puts in a
 * bufferevent's callback argument, and by working on the connection's socket
 * behind evhttp's back.
 *
 * Each function below says which private behaviour it relies on. They were
 * checked against libevent 2.1.12-stable (Debian 12's libevent-2.1-7): the
 * build refuses any other 2.1 release or a 2.2 (meson.build and
 * evhttp_adapter.c) until someone reads http.c of that version again and
 * checks every function here.
 */
#ifndef GW_EVHTTP_ADAPTER_H
#define GW_EVHTTP_ADAPTER_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/util.h>

struct bufferevent;
struct event_base;
struct evbuffer;
struct evhttp_connection;
struct evhttp_request;

/*
 * Prepares a request evhttp has just delivered for proxying: an HTTP/1.2+
 * request is answered as 1.1, and an absolute-form target does not make it
 * a forward-proxy request (which would change evhttp's keep-alive rules).
 * Returns true when the client speaks HTTP/1.0.
 */
bool gw_evhttp_request_adopt(struct evhttp_request *req);

/* Is the request HTTP/1.0? */
bool gw_evhttp_request_is_http10(const struct evhttp_request *req);

/*
 * Sends bytes that are already a framed response (moved out of data);
 * drained(arg) runs when the connection's output is empty again. evhttp adds
 * no framing of its own: the request's response code stays 0 and its
 * chunked flag off (see relay.h). When nothing is queued on a plain-TCP
 * connection the bytes are written to the socket at once.
 */
void gw_evhttp_send_framed(struct evhttp_request *req, struct evbuffer *data,
                           void (*drained)(struct evhttp_connection *, void *), void *arg);
/* The framed response is complete: evhttp's normal completion runs. */
void gw_evhttp_end_framed(struct evhttp_request *req);

/* The evhttp connection a bufferevent made by evhttp's bufferevent callback
 * belongs to, once evhttp has set it up. */
struct evhttp_connection *gw_evhttp_connection_of(struct bufferevent *bev);

/*
 * Raw-socket work on an evhttp connection's socket.
 *
 * gw_evhttp_send_now: writes len bytes to the connection of bev now,
 * without waiting and without evhttp (a refusal of a few hundred bytes
 * before evhttp parsed anything, on a connection with nothing queued: the
 * kernel takes them at once), through TLS on a TLS connection. Returns
 * false when they were not all taken.
 *
 * gw_evhttp_sock_reset: makes the coming close a reset, so that queued bytes
 * are dropped and the client sees an abort, not a clean end.
 *
 * gw_evhttp_sock_linger: keeps a duplicate of the socket open after evhttp
 * closes its own, reading and discarding what the client still sends for up
 * to ms milliseconds (or max_bytes), so that unread request bytes do not
 * turn the close into a reset that would destroy the answer before the
 * client reads it. done(arg) runs when the duplicate is closed. Returns
 * false when no duplicate could be made (done is not called).
 */
bool gw_evhttp_send_now(struct bufferevent *bev, const void *data, size_t len);
void gw_evhttp_sock_reset(evutil_socket_t fd);
bool gw_evhttp_sock_linger(struct event_base *base, evutil_socket_t fd, unsigned ms,
                           size_t max_bytes, void (*done)(void *), void *arg);

/*
 * A read keeper holds the connection's socket in the event loop's epoll set
 * while evhttp stops reading between a request and its answer, so that the
 * stop and the restart (each request's) make no epoll_ctl call: one more
 * EV_READ event on the socket, which does nothing while the bufferevent
 * reads. When the socket turns readable again while the bufferevent does
 * not read (a pipelined request, bytes sent early, a close), the keeper
 * lets go on the second such wake-up instead of waking the loop for ever;
 * gw_evhttp_read_keeper_rearm, at the end of each answer, takes hold again.
 *
 * The keeper must go (gw_evhttp_read_keeper_free) before the socket is
 * closed: the client connection's close callback, which evhttp calls first.
 */
struct gw_read_keeper;

struct gw_read_keeper *gw_evhttp_read_keeper_new(struct event_base *base, struct bufferevent *bev);
void gw_evhttp_read_keeper_rearm(struct gw_read_keeper *k);
void gw_evhttp_read_keeper_free(struct gw_read_keeper *k);

#endif
