/*
 * Responses the gateway makes itself (SPEC section 4): the status, the
 * X-Gateway-Error header, a JSON body {"error":CODE,"request_id":ID}, and
 * Retry-After or Allow where they apply.
 */
#ifndef GW_REPLY_H
#define GW_REPLY_H

#include <stdbool.h>
#include <stddef.h>

struct evhttp_request;

struct gw_error_reply {
	int status;
	const char *code;       /* "no_route", ... */
	const char *request_id; /* 32 hex */
	bool close;             /* add Connection: close */
	const char *allow;      /* Allow header value, or NULL */
	int retry_after_s;      /* > 0: Retry-After */
	/* A route fallback replaces the JSON body (status included). */
	const char *content_type; /* NULL: application/json and the JSON body */
	const char *body;
	size_t body_len;
};

/* Sends it through evhttp. Returns the body bytes sent. */
size_t gw_reply_error(struct evhttp_request *req, const struct gw_error_reply *e);
/* Formats it as raw HTTP/1.1 bytes (for connections evhttp has not parsed a
 * request on yet). Returns the length, or 0 when out is too small. */
size_t gw_reply_error_raw(const struct gw_error_reply *e, char *out, size_t out_size);
/* The reason phrase of a status code. */
const char *gw_reply_reason(int status);

#endif
