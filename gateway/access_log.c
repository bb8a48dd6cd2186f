#include "access_log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/clock.h"

#define GW_ACCESS_LOG_BUF (32 * 1024)

/*
 * fd never changes once opened: workers read it without a lock. A reopen
 * replaces the file behind that number with dup3(), which the kernel does
 * atomically with respect to write(): each write() goes wholly to the old
 * file or wholly to the new one.
 */
struct gw_access_log {
	int fd;                      /* -1: off */
	bool own_fd;                 /* close it at the end */
	char *path;                  /* the file's path when own_fd, for reopen */
	pthread_mutex_t reopen_lock; /* one reopen at a time */
};

struct gw_access_log_buf {
	struct gw_access_log *log;
	char *data;
	size_t len;
};

struct gw_access_log *gw_access_log_open(const char *target, const char **why)
{
	struct gw_access_log *log = gw_calloc(1, sizeof(*log));

	pthread_mutex_init(&log->reopen_lock, NULL);
	if (strcmp(target, "off") == 0) {
		log->fd = -1;
	} else if (strcmp(target, "stdout") == 0) {
		log->fd = STDOUT_FILENO;
	} else {
		log->fd = open(target, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (log->fd < 0) {
			*why = strerror(errno);
			pthread_mutex_destroy(&log->reopen_lock);
			free(log);
			return NULL;
		}
		log->own_fd = true;
		log->path = gw_strdup(target);
	}
	return log;
}

int gw_access_log_reopen(struct gw_access_log *log, const char **why)
{
	int fd, rc = 0;

	if (!log->own_fd)
		return 0; /* stdout or off */
	pthread_mutex_lock(&log->reopen_lock);
	fd = open(log->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		*why = strerror(errno);
		rc = -1;
	} else {
		/* dup3 (not dup2) keeps O_CLOEXEC on log->fd. */
		while (dup3(fd, log->fd, O_CLOEXEC) < 0) {
			if (errno == EINTR || errno == EBUSY)
				continue;
			*why = strerror(errno);
			rc = -1;
			break;
		}
		close(fd);
	}
	pthread_mutex_unlock(&log->reopen_lock);
	return rc;
}

void gw_access_log_close(struct gw_access_log *log)
{
	if (!log)
		return;
	if (log->own_fd)
		close(log->fd);
	free(log->path);
	pthread_mutex_destroy(&log->reopen_lock);
	free(log);
}

struct gw_access_log_buf *gw_access_log_buf_new(struct gw_access_log *log)
{
	struct gw_access_log_buf *buf = gw_calloc(1, sizeof(*buf));

	buf->log = log;
	buf->data = gw_malloc(GW_ACCESS_LOG_BUF);
	return buf;
}

void gw_access_log_buf_free(struct gw_access_log_buf *buf)
{
	if (!buf)
		return;
	gw_access_log_flush(buf);
	free(buf->data);
	free(buf);
}

void gw_access_log_flush(struct gw_access_log_buf *buf)
{
	size_t off = 0;

	while (off < buf->len && buf->log->fd >= 0) {
		ssize_t n = write(buf->log->fd, buf->data + off, buf->len - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break; /* a full disk or closed pipe must not stop the proxy */
		}
		off += (size_t)n;
	}
	buf->len = 0;
}

size_t gw_json_escape(const char *s, char *out, size_t out_size)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

	for (; s && *s && n + 7 < out_size; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\') {
			out[n++] = '\\';
			out[n++] = (char)ch;
		} else if (ch < 0x20 || ch >= 0x7f) {
			out[n++] = '\\';
			out[n++] = 'u';
			out[n++] = '0';
			out[n++] = '0';
			out[n++] = hex[ch >> 4];
			out[n++] = hex[ch & 15];
		} else {
			out[n++] = (char)ch;
		}
	}
	out[n] = '\0';
	return n;
}

static void add_field(char *line, size_t *len, size_t cap, const char *key, const char *value)
{
	char esc[2048];

	if (!value) {
		*len += (size_t)snprintf(line + *len, cap - *len, ",\"%s\":null", key);
	} else {
		gw_json_escape(value, esc, sizeof(esc));
		*len += (size_t)snprintf(line + *len, cap - *len, ",\"%s\":\"%s\"", key, esc);
	}
	if (*len >= cap)
		*len = cap - 1;
}

void gw_access_log_add(struct gw_access_log_buf *buf, const struct gw_access_entry *e)
{
	char line[8192];
	char when[40];
	size_t len;

	if (buf->log->fd < 0)
		return;
	gw_clock_iso8601(when, sizeof(when));
	len = (size_t)snprintf(line, sizeof(line), "{\"time\":\"%s\"", when);
	add_field(line, &len, sizeof(line), "request_id", e->request_id);
	add_field(line, &len, sizeof(line), "client", e->client);
	add_field(line, &len, sizeof(line), "method", e->method);
	add_field(line, &len, sizeof(line), "path", e->path);
	add_field(line, &len, sizeof(line), "route", e->route);
	add_field(line, &len, sizeof(line), "upstream", e->upstream);
	add_field(line, &len, sizeof(line), "server", e->server);
	len += (size_t)snprintf(line + len, sizeof(line) - len,
	                        ",\"status\":%d,\"tries\":%u,\"bytes\":%llu,\"duration_ms\":%.3f",
	                        e->status, e->tries, (unsigned long long)e->bytes,
	                        (double)e->duration_us / 1000.0);
	if (len >= sizeof(line))
		len = sizeof(line) - 1;
	add_field(line, &len, sizeof(line), "error", e->error);
	if (e->tls_version) {
		add_field(line, &len, sizeof(line), "tls", e->tls_version);
		add_field(line, &len, sizeof(line), "sni", e->tls_sni);
	}
	if (len + 2 >= sizeof(line))
		len = sizeof(line) - 3;
	line[len++] = '}';
	line[len++] = '\n';
	if (buf->len + len > GW_ACCESS_LOG_BUF)
		gw_access_log_flush(buf);
	memcpy(buf->data + buf->len, line, len);
	buf->len += len;
}
