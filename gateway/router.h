/*
 * Route selection: the routes of a snapshot are tried in file order and the
 * first whose every match condition holds wins.
 *
 * path_prefix matches whole path segments: "/api" matches "/api", "/api/"
 * and "/api/x" but not "/apix"; a prefix ending in "/" matches anything
 * below it. The query string is not part of the path.
 */
#ifndef GW_ROUTER_H
#define GW_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"

struct evkeyvalq;

struct gw_route_query {
	unsigned method;  /* one GW_METHOD_* bit, 0 for a method outside that set */
	const char *path; /* without the query string, need not be NUL-terminated */
	size_t path_len;
	const char *host; /* Host header value, may carry ":port"; NULL when absent */
	size_t host_len;
	const struct evkeyvalq *headers; /* request headers, for header matches */
};

/*
 * Returns the winning route or NULL. When NULL, *allow receives the methods
 * of routes that would have matched but for the method (0 when none): the
 * caller answers 405 with an Allow header then, 404 otherwise.
 */
const struct gw_route_conf *gw_router_match(const struct gw_config *config,
                                            const struct gw_route_query *q, unsigned *allow);

/* Does prefix match path by the segment rule above? */
bool gw_router_prefix_matches(const char *prefix, size_t prefix_len, const char *path,
                              size_t path_len);

/*
 * The upstream path for a route with strip_prefix: the path with the prefix
 * removed, "/" when nothing is left. Writes into out (size out_size) with the
 * query string (query may be NULL) and returns the length, or -1 when it does
 * not fit.
 */
int gw_router_strip_prefix(const struct gw_route_conf *route, const char *path, size_t path_len,
                           const char *query, char *out, size_t out_size);

/*
 * False when the path holds a dot segment ("/./", "/../", or "." / ".." at the
 * end), also percent-encoded (%2e): upstreams that normalise paths would
 * otherwise see a request outside the prefix that routed it.
 */
bool gw_path_is_safe(const char *path, size_t len);

/*
 * The request-target rules (README "Request handling"), checked on every
 * request before evhttp parses it, so that the router, evhttp's URI parser
 * and the upstream all read the target the same way. False when:
 * - the target has a fragment ("#", in the path or the query);
 * - the path (the part before "?") holds a backslash, an empty segment
 *   ("//", a leading one included), a dot segment ("/./", "/../", also
 *   percent-encoded), a malformed percent-encoding ("%" not followed by two
 *   hex digits), or a percent-encoded unreserved character (ALPHA, DIGIT,
 *   "-", ".", "_", "~", RFC 3986 2.3: "%2e" is "."), "/" ("%2f"), "\"
 *   ("%5c") or NUL ("%00"): a backend that decodes or normalises them would
 *   see another path than the one the route was chosen on;
 * - host is not host[:port] (RFC 3986 3.2.2: a reg-name of unreserved,
 *   sub-delims and percent-encodings, or a bracketed IPv6 / IPvFuture
 *   literal; the port digits only, at most 65535), or its host is empty.
 *
 * path: the target's origin-form part, path and query ("/a?b"), or "*", or,
 * for an absolute-form target, what follows its authority (may be empty).
 * host: the Host value, or the absolute-form target's authority; NULL or
 * empty when there is none (HTTP/1.0).
 */
bool gw_target_is_safe(const char *path, size_t len, const char *host, size_t host_len);

/* "GET, POST" for a method mask; out at least 80 bytes. */
void gw_methods_format(unsigned methods, char *out, size_t out_size);

#endif
