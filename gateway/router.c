/*
 * Route selection (router.h). Runs on every request: no allocation, no
 * locale-dependent calls, one pass over the routes in the common case.
 */
#include "router.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

static inline unsigned char gw_ascii_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

/* Does the NUL-terminated want equal have[0..have_len) ignoring ASCII case? */
static bool gw_router_case_equal(const char *want, const char *have, size_t have_len)
{
	size_t i;

	for (i = 0; i < have_len; i++) {
		if (want[i] == '\0' || gw_ascii_lower((unsigned char)want[i]) !=
		                           gw_ascii_lower((unsigned char)have[i]))
			return false;
	}
	return want[i] == '\0';
}

bool gw_router_prefix_matches(const char *prefix, size_t prefix_len, const char *path,
                              size_t path_len)
{
	if (prefix_len == 0)
		return true;
	if (path_len < prefix_len || memcmp(prefix, path, prefix_len) != 0)
		return false;
	/* "/api/" matches everything below it; "/api" only whole segments. */
	if (prefix[prefix_len - 1] == '/')
		return true;
	return path_len == prefix_len || path[prefix_len] == '/';
}

/*
 * The route's host against a Host value: the ":port" is ignored, so is one
 * trailing dot of a fully qualified name ("shop.example.com."). An IPv6
 * literal keeps its brackets ("[::1]:8080" is "[::1]"); a route written
 * without them ("::1") matches too.
 */
static bool gw_router_host_matches(const char *want, const char *host, size_t host_len)
{
	size_t len = host_len;
	const char *end;

	if (host == NULL || host_len == 0)
		return false;
	if (host[0] == '[') {
		end = memchr(host, ']', host_len);
		if (end == NULL)
			return false;
		len = (size_t)(end - host) + 1;
		if (want[0] != '[')
			return gw_router_case_equal(want, host + 1, len - 2);
		return gw_router_case_equal(want, host, len);
	}
	end = memchr(host, ':', host_len);
	if (end != NULL)
		len = (size_t)(end - host);
	if (len > 1 && host[len - 1] == '.')
		len--;
	return gw_router_case_equal(want, host, len);
}

/* First value of each named header, compared exactly; absent never matches. */
static bool gw_router_headers_match(const struct gw_route_conf *route,
                                    const struct evkeyvalq *headers)
{
	const char *value;
	size_t i;

	if (route->nheaders == 0)
		return true;
	if (headers == NULL)
		return false;
	for (i = 0; i < route->nheaders; i++) {
		value = evhttp_find_header(headers, route->headers[i].name);
		if (value == NULL || strcmp(value, route->headers[i].value) != 0)
			return false;
	}
	return true;
}

/* Every condition but the method. */
static bool gw_router_route_matches(const struct gw_route_conf *route,
                                    const struct gw_route_query *q)
{
	if (!gw_router_prefix_matches(route->path_prefix, route->path_prefix_len, q->path,
	                              q->path_len))
		return false;
	if (route->host != NULL && !gw_router_host_matches(route->host, q->host, q->host_len))
		return false;
	return gw_router_headers_match(route, q->headers);
}

static inline bool gw_router_method_allowed(const struct gw_route_conf *route, unsigned method)
{
	return route->methods == 0 || (route->methods & method) != 0;
}

const struct gw_route_conf *gw_router_match(const struct gw_config *config,
                                            const struct gw_route_query *q, unsigned *allow)
{
	const struct gw_route_conf *route;
	bool method_missed = false;
	size_t i;

	if (allow != NULL)
		*allow = 0;
	/*
	 * The method is one AND: test it first and leave the other conditions
	 * of routes it excludes to the second pass, which only a request about
	 * to fail with 404 or 405 pays for.
	 */
	for (i = 0; i < config->nroutes; i++) {
		route = &config->routes[i];
		if (!gw_router_method_allowed(route, q->method)) {
			method_missed = true;
			continue;
		}
		if (gw_router_route_matches(route, q))
			return route;
	}
	if (!method_missed || allow == NULL)
		return NULL;
	for (i = 0; i < config->nroutes; i++) {
		route = &config->routes[i];
		if (!gw_router_method_allowed(route, q->method) &&
		    gw_router_route_matches(route, q))
			*allow |= route->methods;
	}
	return NULL;
}

int gw_router_strip_prefix(const struct gw_route_conf *route, const char *path, size_t path_len,
                           const char *query, char *out, size_t out_size)
{
	const char *rest = path;
	size_t rest_len = path_len;
	size_t query_len = query != NULL ? strlen(query) : 0;
	bool slash = false;
	size_t len;

	if (route->strip_prefix &&
	    gw_router_prefix_matches(route->path_prefix, route->path_prefix_len, path, path_len)) {
		rest = path + route->path_prefix_len;
		rest_len = path_len - route->path_prefix_len;
		/* "/api/" stripped from "/api/x" leaves "x": the upstream needs "/x". */
		slash = rest_len == 0 || rest[0] != '/';
	}
	len = slash + rest_len + (query != NULL ? 1 + query_len : 0);
	if (len >= out_size || len > INT_MAX)
		return -1;
	if (slash)
		*out++ = '/';
	memcpy(out, rest, rest_len);
	out += rest_len;
	if (query != NULL) {
		*out++ = '?';
		memcpy(out, query, query_len);
		out += query_len;
	}
	*out = '\0';
	return (int)len;
}

static const char *const gw_method_names[] = {
    "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE", "CONNECT", "PATCH",
};

void gw_methods_format(unsigned methods, char *out, size_t out_size)
{
	size_t used = 0, need, n;
	unsigned bit;

	if (out_size == 0)
		return;
	out[0] = '\0';
	for (bit = 0; bit < sizeof(gw_method_names) / sizeof(gw_method_names[0]); bit++) {
		if (!(methods & (1u << bit)))
			continue;
		n = strlen(gw_method_names[bit]);
		need = (used > 0 ? 2 : 0) + n;
		if (used + need >= out_size)
			return; /* whole names only */
		if (used > 0) {
			memcpy(out + used, ", ", 2);
			used += 2;
		}
		memcpy(out + used, gw_method_names[bit], n + 1);
		used += n;
	}
}

/* Length of a "." written plainly or as %2e at p, 0 when there is none. */
static size_t dot_at(const char *p, const char *end)
{
	if (p < end && *p == '.')
		return 1;
	if (end - p >= 3 && p[0] == '%' && p[1] == '2' && (p[2] == 'e' || p[2] == 'E'))
		return 3;
	return 0;
}

bool gw_path_is_safe(const char *path, size_t len)
{
	const char *end = path + len;

	for (const char *p = path; p < end; p++) {
		size_t d1, d2;
		const char *q;

		if (*p != '/')
			continue;
		q = p + 1;
		d1 = dot_at(q, end);
		if (!d1)
			continue;
		q += d1;
		if (q == end || *q == '/')
			return false; /* "/." */
		d2 = dot_at(q, end);
		if (d2 && (q + d2 == end || q[d2] == '/'))
			return false; /* "/.." */
	}
	return true;
}

static bool is_unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

static bool is_sub_delim(unsigned char c)
{
	return c != '\0' && strchr("!$&'()*+,;=", c) != NULL;
}

static int hex_digit(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The byte a "%HH" at p (before end) stands for, or -1 when malformed. */
static int pct_decoded(const char *p, const char *end)
{
	int hi, lo;

	if (end - p < 3)
		return -1;
	hi = hex_digit((unsigned char)p[1]);
	lo = hex_digit((unsigned char)p[2]);
	return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

/* IP-literal without its brackets: an IPv6 address or IPvFuture. */
static bool ip_literal_is_valid(const char *a, size_t n)
{
	char text[INET6_ADDRSTRLEN];
	struct in6_addr addr;
	size_t i = 1;

	if (n > 0 && (a[0] == 'v' || a[0] == 'V')) {
		/* "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ) */
		while (i < n && hex_digit((unsigned char)a[i]) >= 0)
			i++;
		if (i == 1 || i >= n - 1 || a[i] != '.')
			return false;
		for (i++; i < n; i++)
			if (!is_unreserved((unsigned char)a[i]) &&
			    !is_sub_delim((unsigned char)a[i]) && a[i] != ':')
				return false;
		return true;
	}
	if (n == 0 || n >= sizeof(text))
		return false;
	memcpy(text, a, n);
	text[n] = '\0';
	return inet_pton(AF_INET6, text, &addr) == 1;
}

/* host [":" port], the way RFC 3986 3.2.2 and evhttp's URI parser read it:
 * the port is the digits after the last ":" (may be empty). */
static bool authority_is_valid(const char *a, size_t n)
{
	size_t hend = n;
	size_t i = n;

	while (i > 0 && a[i - 1] >= '0' && a[i - 1] <= '9')
		i--;
	if (i > 0 && a[i - 1] == ':') {
		unsigned long port = 0;
		for (size_t d = i; d < n; d++) {
			port = port * 10 + (unsigned long)(a[d] - '0');
			if (port > 65535)
				return false;
		}
		hend = i - 1;
	}
	if (hend == 0)
		return false; /* no host */
	if (a[0] == '[')
		return hend >= 2 && a[hend - 1] == ']' && ip_literal_is_valid(a + 1, hend - 2);
	for (i = 0; i < hend; i++) {
		unsigned char c = (unsigned char)a[i];
		if (c == '%') {
			if (pct_decoded(a + i, a + hend) < 0)
				return false;
			i += 2;
		} else if (!is_unreserved(c) && !is_sub_delim(c)) {
			return false;
		}
	}
	return true;
}

bool gw_target_is_safe(const char *path, size_t len, const char *host, size_t host_len)
{
	const char *end = path + len;
	const char *q = memchr(path, '?', len);
	const char *pend = q ? q : end;

	if (host_len > 0 && !authority_is_valid(host, host_len))
		return false;
	if (len == 1 && path[0] == '*')
		return true;
	if (memchr(path, '#', len))
		return false; /* a fragment is never sent (RFC 9110 7.1) */
	for (const char *p = path; p < pend; p++) {
		int d;

		switch (*p) {
		case '\\':
			return false;
		case '/':
			if (p + 1 < pend && p[1] == '/')
				return false;
			break;
		case '%':
			d = pct_decoded(p, pend);
			if (d < 0 || d == 0 || d == '/' || d == '\\' ||
			    is_unreserved((unsigned char)d))
				return false;
			p += 2;
			break;
		}
	}
	return gw_path_is_safe(path, (size_t)(pend - path));
}
