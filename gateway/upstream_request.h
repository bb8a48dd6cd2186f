/*
 * Writes the request a transaction sends to its upstream: request line with
 * the route's path rewriting, the client's end-to-end headers, and the
 * headers the gateway sets (Host, X-Forwarded-*, Via, X-Request-ID,
 * X-Request-Timeout-Ms, Content-Length). The body is referenced, not
 * copied, and stays in the client request for a retry.
 */
#ifndef GW_UPSTREAM_REQUEST_H
#define GW_UPSTREAM_REQUEST_H

struct evbuffer;
struct gw_txn;

/* The longest request target the gateway forwards is one byte less: the
 * connection guard (client_conn.c) answers a longer one 414 before any
 * upstream work. Rewriting (strip_prefix) never makes a target longer. */
#define GW_UPSTREAM_TARGET_MAX 8192

/* Appends the request to dst. -1 when the rewritten target is too long
 * (a backstop: client_conn.c refused such a request already). */
int gw_upstream_request_write(const struct gw_txn *txn, struct evbuffer *dst);

/* "GET", ... for a GW_METHOD_* bit. */
const char *gw_method_name(unsigned method);
/* The request target without scheme and authority (absolute-form). */
const char *gw_origin_target(const char *uri);

#endif
