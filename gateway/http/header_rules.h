/*
 * Header rules shared by both directions of the proxy (SPEC section 3).
 */
#ifndef GW_HTTP_HEADER_RULES_H
#define GW_HTTP_HEADER_RULES_H

#include <stdbool.h>
#include <stddef.h>

/*
 * True when the header must not be forwarded: the fixed hop-by-hop set
 * (Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding,
 * Upgrade) or a name listed in the Connection header's value
 * (connection_value may be NULL). Case-insensitive.
 */
bool gw_header_is_hop_by_hop(const char *name, size_t name_len, const char *connection_value,
                             size_t connection_len);

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
