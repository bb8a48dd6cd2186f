/*
 * A small stack buffer in front of an evbuffer, for writing HTTP heads.
 *
 * Every evbuffer_add takes the buffer's lock and walks its chain; a head is
 * dozens of small pieces. Gathering them with memcpy and adding them to the
 * evbuffer once costs a fraction of that.
 *
 * Ownership: lives on the caller's stack; gw_outbuf_flush must be called
 * before it goes out of scope (the destination evbuffer is the caller's).
 */
#ifndef GW_UTIL_OUTBUF_H
#define GW_UTIL_OUTBUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct evbuffer;

#define GW_OUTBUF_SIZE 4096

struct gw_outbuf {
	struct evbuffer *dst;
	size_t len;
	char buf[GW_OUTBUF_SIZE];
};

void gw_outbuf_flush(struct gw_outbuf *o);
/* Slow path of gw_outbuf_add: flushes, then copies or adds directly. */
void gw_outbuf_add_slow(struct gw_outbuf *o, const void *p, size_t n);
void gw_outbuf_add_u64(struct gw_outbuf *o, uint64_t v);
void gw_outbuf_add_hex(struct gw_outbuf *o, uint64_t v);

static inline void gw_outbuf_init(struct gw_outbuf *o, struct evbuffer *dst)
{
	o->dst = dst;
	o->len = 0;
}

static inline void gw_outbuf_add(struct gw_outbuf *o, const void *p, size_t n)
{
	if (n > GW_OUTBUF_SIZE || n > GW_OUTBUF_SIZE - o->len) {
		gw_outbuf_add_slow(o, p, n);
		return;
	}
	memcpy(o->buf + o->len, p, n);
	o->len += n;
}

/* Adds a string literal (its length known at compile time). */
#define gw_outbuf_add_lit(o, lit) gw_outbuf_add((o), "" lit, sizeof(lit) - 1)

static inline void gw_outbuf_add_str(struct gw_outbuf *o, const char *s)
{
	gw_outbuf_add(o, s, strlen(s));
}

/* "Name: value\r\n" */
static inline void gw_outbuf_add_header(struct gw_outbuf *o, const char *name, size_t name_len,
                                        const char *value, size_t value_len)
{
	gw_outbuf_add(o, name, name_len);
	gw_outbuf_add(o, ": ", 2);
	gw_outbuf_add(o, value, value_len);
	gw_outbuf_add(o, "\r\n", 2);
}

#endif
