/*
 * A minimal blocking HTTP/1.1 client for the admin API (ctl_http.h).
 *
 * The socket is non-blocking and every wait is a poll() bounded by the
 * time left, so neither a black-holed address nor a gateway that accepts
 * and never answers can hang gatewayctl. The request says Connection:
 * close; the reply is read until the peer closes, or until its
 * Content-Length is complete, then framed by Content-Length, chunked
 * encoding, or the close.
 */
#include "ctl_http.h"
#include "../config/config.h"
#include "../config/conf_read.h"
#include "../util/alloc.h"
#include "../util/clock.h"

#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

struct http_buf {
	char *data;
	size_t len, cap;
};

static void set_why(char *why, size_t size, const char *text)
{
	snprintf(why, size, "%s", text);
	if (why[0])
		why[0] = (char)tolower((unsigned char)why[0]);
}

static void set_why_timeout(char *why, size_t size, uint64_t ms)
{
	char d[32];

	snprintf(why, size, "no answer within %s", gw_conf_format_duration(ms, d, sizeof(d)));
}

/* The address to connect to: a wildcard one means this host. */
static int resolve(const char *address, struct gw_sockaddr *sa, char *why, size_t size)
{
	const char *reason = NULL;

	if (gw_parse_sockaddr(address, sa, &reason) < 0) {
		snprintf(why, size, "invalid address (%s)", reason ? reason : "?");
		return -1;
	}
	if (sa->ss.ss_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&sa->ss;

		if (in->sin_addr.s_addr == htonl(INADDR_ANY))
			in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else if (sa->ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&sa->ss;

		if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
			in6->sin6_addr = in6addr_loopback;
	}
	return 0;
}

/* 1 when fd is ready for events before deadline, 0 on timeout, -1 on error. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
	struct pollfd p = {.fd = fd, .events = events};

	for (;;) {
		uint64_t now = gw_clock_now_ms();
		int rc;

		if (now >= deadline)
			return 0;
		rc = poll(&p, 1, (int)(deadline - now));
		if (rc >= 0)
			return rc;
		if (errno != EINTR)
			return -1;
	}
}

static int connect_to(const struct gw_sockaddr *sa, int *out, char *why, size_t size)
{
	uint64_t deadline = gw_clock_now_ms() + CTL_HTTP_CONNECT_TIMEOUT_MS;
	int fd = socket(sa->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int err = 0, rc;
	socklen_t len = sizeof(err);

	if (fd < 0) {
		set_why(why, size, strerror(errno));
		return -1;
	}
	if (connect(fd, (const struct sockaddr *)&sa->ss, sa->len) < 0) {
		if (errno != EINPROGRESS) {
			set_why(why, size, strerror(errno));
			close(fd);
			return -1;
		}
		rc = wait_fd(fd, POLLOUT, deadline);
		if (rc <= 0) {
			if (rc == 0)
				set_why_timeout(why, size, CTL_HTTP_CONNECT_TIMEOUT_MS);
			else
				set_why(why, size, strerror(errno));
			close(fd);
			return -1;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
			set_why(why, size, strerror(err ? err : errno));
			close(fd);
			return -1;
		}
	}
	*out = fd;
	return 0;
}

static int send_all(int fd, const char *data, size_t len, uint64_t deadline, char *why, size_t size)
{
	while (len > 0) {
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
		int rc;

		if (n > 0) {
			data += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			set_why(why, size, strerror(errno));
			return -1;
		}
		rc = wait_fd(fd, POLLOUT, deadline);
		if (rc <= 0) {
			set_why_timeout(why, size, CTL_HTTP_REPLY_TIMEOUT_MS);
			return -1;
		}
	}
	return 0;
}

/* The end of the head (just past the blank line) in buf, or NULL. */
static const char *head_end(const struct http_buf *buf)
{
	const char *p = memmem(buf->data, buf->len, "\r\n\r\n", 4);

	return p ? p + 4 : NULL;
}

/* The value of header name in the head [start, end), or NULL; *vlen its length. */
static const char *find_header(const char *start, const char *end, const char *name, size_t *vlen)
{
	size_t nlen = strlen(name);
	const char *line = memchr(start, '\n', (size_t)(end - start));

	while (line && line + 1 < end) {
		const char *l = line + 1, *eol = memchr(l, '\r', (size_t)(end - l));

		if (!eol)
			break;
		if ((size_t)(eol - l) > nlen && l[nlen] == ':' && strncasecmp(l, name, nlen) == 0) {
			const char *v = l + nlen + 1;

			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			*vlen = (size_t)(eol - v);
			while (*vlen && (v[*vlen - 1] == ' ' || v[*vlen - 1] == '\t'))
				(*vlen)--;
			return v;
		}
		line = eol + 1;
	}
	return NULL;
}

/* Content-Length of the head [start, end) into *cl; false when absent or invalid. */
static bool content_length(const char *start, const char *end, size_t *cl)
{
	size_t vlen, v = 0;
	const char *val = find_header(start, end, "Content-Length", &vlen);

	if (!val || vlen == 0 || vlen > 12)
		return false;
	for (size_t i = 0; i < vlen; i++) {
		if (!isdigit((unsigned char)val[i]))
			return false;
		v = v * 10 + (size_t)(val[i] - '0');
	}
	*cl = v;
	return true;
}

/* True once buf holds a head and the whole Content-Length body. */
static bool reply_complete(const struct http_buf *buf)
{
	const char *end = head_end(buf);
	size_t cl;

	if (!end || !content_length(buf->data, end, &cl))
		return false;
	return (size_t)(buf->data + buf->len - end) >= cl;
}

static int read_reply(int fd, struct http_buf *buf, uint64_t deadline, char *why, size_t size)
{
	for (;;) {
		ssize_t n;
		int rc;

		if (buf->cap - buf->len < 4096) {
			buf->cap = buf->cap ? buf->cap * 2 : 16384;
			buf->data = gw_realloc(buf->data, buf->cap + 1);
		}
		n = recv(fd, buf->data + buf->len, buf->cap - buf->len, 0);
		if (n > 0) {
			buf->len += (size_t)n;
			if (buf->len > CTL_HTTP_MAX_REPLY) {
				set_why(why, size, "reply too large");
				return -1;
			}
			if (reply_complete(buf))
				return 0;
			continue;
		}
		if (n == 0)
			return 0;
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			set_why(why, size, strerror(errno));
			return -1;
		}
		rc = wait_fd(fd, POLLIN, deadline);
		if (rc <= 0) {
			set_why_timeout(why, size, CTL_HTTP_REPLY_TIMEOUT_MS);
			return -1;
		}
	}
}

/* Decodes a chunked body [p, end) into out; -1 when it is malformed or cut short. */
static int dechunk(const char *p, const char *end, struct http_buf *out)
{
	for (;;) {
		const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		char *stop;
		unsigned long size;

		if (!eol || !isxdigit((unsigned char)*p))
			return -1;
		size = strtoul(p, &stop, 16);
		if (stop > eol || (*stop != '\r' && *stop != ';' && *stop != ' '))
			return -1;
		p = eol + 2;
		if (size == 0)
			return 0;
		if (size > (size_t)(end - p) || (size_t)(end - p) - size < 2)
			return -1;
		memcpy(out->data + out->len, p, size);
		out->len += size;
		p += size + 2;
	}
}

static int parse_reply(const struct http_buf *buf, struct ctl_http_reply *reply, char *why,
                       size_t size)
{
	const char *end = head_end(buf), *body_end = buf->data + buf->len, *te;
	struct http_buf body = {0};
	size_t cl, tlen;

	if (buf->len < 12 || strncmp(buf->data, "HTTP/1.", 7) != 0 || buf->data[8] != ' ' ||
	    !isdigit((unsigned char)buf->data[9]) || !end) {
		set_why(why, size,
		        buf->len ? "not an HTTP reply" : "connection closed without a reply");
		return -1;
	}
	reply->status = atoi(buf->data + 9);
	body.data = gw_malloc((size_t)(body_end - end) + 1);
	te = find_header(buf->data, end, "Transfer-Encoding", &tlen);
	if (te && tlen >= 7 && strncasecmp(te + tlen - 7, "chunked", 7) == 0) {
		if (dechunk(end, body_end, &body) < 0) {
			free(body.data);
			set_why(why, size, "malformed chunked reply");
			return -1;
		}
	} else if (content_length(buf->data, end, &cl)) {
		if ((size_t)(body_end - end) < cl) {
			free(body.data);
			set_why(why, size, "reply cut short");
			return -1;
		}
		memcpy(body.data, end, cl);
		body.len = cl;
	} else {
		memcpy(body.data, end, (size_t)(body_end - end));
		body.len = (size_t)(body_end - end);
	}
	body.data[body.len] = '\0';
	reply->body = body.data;
	reply->body_len = body.len;
	return 0;
}

static char *build_request(const char *address, const char *method, const char *path,
                           const char *token)
{
	size_t size =
	    strlen(address) + strlen(method) + strlen(path) + (token ? strlen(token) : 0) + 256;
	char *req = gw_malloc(size);
	int n = snprintf(req, size, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: gatewayctl/%s\r\n",
	                 method, path, address, GW_VERSION);

	if (token)
		n += snprintf(req + n, size - (size_t)n, "Authorization: Bearer %s\r\n", token);
	snprintf(req + n, size - (size_t)n,
	         "Accept: application/json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
	return req;
}

int ctl_http_call(const char *address, const char *method, const char *path, const char *token,
                  struct ctl_http_reply *reply, char *why, size_t why_size)
{
	uint64_t deadline = gw_clock_now_ms() + CTL_HTTP_REPLY_TIMEOUT_MS;
	struct http_buf buf = {0};
	struct gw_sockaddr sa;
	char *req;
	int fd, rc;

	memset(reply, 0, sizeof(*reply));
	if (resolve(address, &sa, why, why_size) < 0 || connect_to(&sa, &fd, why, why_size) < 0)
		return -1;
	req = build_request(address, method, path, token);
	rc = send_all(fd, req, strlen(req), deadline, why, why_size);
	free(req);
	if (rc == 0)
		rc = read_reply(fd, &buf, deadline, why, why_size);
	close(fd);
	if (rc == 0)
		rc = parse_reply(&buf, reply, why, why_size);
	free(buf.data);
	return rc;
}

void ctl_http_reply_free(struct ctl_http_reply *reply)
{
	free(reply->body);
	memset(reply, 0, sizeof(*reply));
}
