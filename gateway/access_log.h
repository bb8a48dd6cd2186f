/*
 * The access log: one JSON object per request, on stdout or in a file.
 *
 * Each worker fills its own buffer and writes it out when it holds 32 KiB or
 * every 100 ms (and at exit), so logging costs no syscall per request and
 * lines from different workers never interleave.
 *
 * Ownership: the server owns the gw_access_log (the file); each worker owns
 * its gw_access_log_buf.
 */
#ifndef GW_ACCESS_LOG_H
#define GW_ACCESS_LOG_H

#include <stddef.h>
#include <stdint.h>

struct gw_access_log;
struct gw_access_log_buf;

struct gw_access_entry {
	const char *request_id;
	const char *client;
	const char *method;
	const char *path;
	const char *route;    /* NULL: no route */
	const char *upstream; /* NULL: none */
	const char *server;   /* NULL: none */
	int status;
	unsigned tries; /* upstream tries, retries included */
	uint64_t bytes;
	uint64_t duration_us;
	const char *error; /* X-Gateway-Error code, or NULL */
	/* TLS connections only ("tls" and "sni" fields; absent for plain
	 * HTTP): the protocol version and the server name the client sent
	 * ("-": none). */
	const char *tls_version;
	const char *tls_sni;
};

/* "stdout", "off" or a path. NULL with *why set when the file cannot open. */
struct gw_access_log *gw_access_log_open(const char *target, const char **why);
void gw_access_log_close(struct gw_access_log *log);

/*
 * Reopens a file log at its path (after logrotate renamed it): opens the
 * path again (created 0644 if missing) and puts the new file behind the
 * log's descriptor in one atomic dup3(), so workers flushing at that moment
 * write each buffer wholly to the old file or wholly to the new one: no line
 * is lost or split by the swap. Returns 0 (also for "stdout" and "off",
 * which have nothing to reopen), or -1 with *why set, the old file kept.
 * Any thread; callers need no lock against the workers.
 */
int gw_access_log_reopen(struct gw_access_log *log, const char **why);

struct gw_access_log_buf *gw_access_log_buf_new(struct gw_access_log *log);
void gw_access_log_buf_free(struct gw_access_log_buf *buf);
void gw_access_log_add(struct gw_access_log_buf *buf, const struct gw_access_entry *e);
void gw_access_log_flush(struct gw_access_log_buf *buf);

/* Appends s to out as the inside of a JSON string (quotes not included).
 * Returns the bytes written, at most out_size - 1; out is NUL-terminated. */
size_t gw_json_escape(const char *s, char *out, size_t out_size);

#endif
