/*
 * Header rules shared by both directions of the proxy (SPEC section 3).
 */
#ifndef GW_HTTP_HEADER_RULES_H
#define GW_HTTP_HEADER_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * True when the header must not be forwarded: the fixed hop-by-hop set
 * (Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding,
 * Upgrade) or a name listed in the Connection header's value
 * (connection_value may be NULL). Case-insensitive.
 */
bool gw_header_is_hop_by_hop(const char *name, size_t name_len, const char *connection_value,
                             size_t connection_len);

/*
 * True when a request header is not passed to the upstream: hop-by-hop (as
 * above), or its name contains '_' and keep_underscores is false
 * (limits.underscores_in_headers: drop, the default). Backends behind CGI or
 * WSGI see "Transfer_Encoding" and "Transfer-Encoding" as the same
 * variable, so such a name could smuggle a second framing header past the
 * gateway; nginx drops them for the same reason.
 */
bool gw_request_header_dropped(const char *name, size_t name_len, const char *connection_value,
                               size_t connection_len, bool keep_underscores);

/* An IMF-fixdate (RFC 9110 5.6.7), "Sun, 06 Nov 1994 08:49:37 GMT". */
#define GW_HTTP_DATE_LEN 29
/* Formats epoch seconds (UTC) into out (GW_HTTP_DATE_LEN bytes and a NUL). */
void gw_http_date_format(int64_t epoch_s, char out[GW_HTTP_DATE_LEN + 1]);
/*
 * The current time as an IMF-fixdate, for Date headers. Formatted at most
 * once per second per thread; the pointer stays valid on this thread and
 * its contents change when the second does.
 */
const char *gw_http_date_now(void);

/* Writes 32 lowercase hex digits (128 random bits) and a NUL into out[33]. */
void gw_request_id_new(char out[33]);

/* A client-supplied X-Request-ID is kept when it is 1..128 printable ASCII
 * bytes without spaces or quotes; otherwise the gateway makes a new one.
 * Backslash is refused too: the id goes into JSON bodies and logs. */
bool gw_request_id_acceptable(const char *value, size_t len);

/*
 * Iterates over the elements of a comma-separated header value (RFC 9110
 * 5.6.1): *pos advances from value towards end; each call stores the next
 * non-empty element, OWS trimmed, in *elem / *elem_len and returns true, or
 * returns false when none is left. Empty elements ("a, ,b") are skipped.
 */
bool gw_http_list_next(const char **pos, const char *end, const char **elem, size_t *elem_len);

/* True when the comma-separated value contains token (case-insensitive). */
bool gw_http_list_has(const char *value, size_t len, const char *token, size_t token_len);

#endif
