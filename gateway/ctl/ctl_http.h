/*
 * A minimal blocking HTTP/1.1 client for the gateway's admin API: one
 * request per connection (Connection: close) over a plain socket, bounded
 * by a connect timeout and a deadline for the whole exchange.
 *
 * Ownership: a filled struct ctl_http_reply owns its body, released by
 * ctl_http_reply_free.
 */
#ifndef GW_CTL_CTL_HTTP_H
#define GW_CTL_CTL_HTTP_H

#include <stddef.h>
#include <stdint.h>

#define CTL_HTTP_CONNECT_TIMEOUT_MS 2000
#define CTL_HTTP_REPLY_TIMEOUT_MS   15000
#define CTL_HTTP_MAX_REPLY          (32u << 20)

struct ctl_http_reply {
	int status;
	char *body; /* NUL-terminated (the body itself may hold NULs) */
	size_t body_len;
};

/*
 * METHOD PATH on address ("IP:PORT", "[IPv6]:PORT" or "HOST:PORT"; a
 * wildcard address such as 0.0.0.0 means this host), with "Authorization:
 * Bearer token" when token is not NULL. 0 with *reply filled, whatever the
 * status; -1 with why set to a short reason in lower case ("connection
 * refused", "no answer within 15s").
 */
int ctl_http_call(const char *address, const char *method, const char *path, const char *token,
                  struct ctl_http_reply *reply, char *why, size_t why_size);
void ctl_http_reply_free(struct ctl_http_reply *reply);

#endif
