#include "outbuf.h"

#include <event2/buffer.h>

void gw_outbuf_flush(struct gw_outbuf *o)
{
	if (o->len > 0)
		evbuffer_add(o->dst, o->buf, o->len);
	o->len = 0;
}

void gw_outbuf_add_slow(struct gw_outbuf *o, const void *p, size_t n)
{
	gw_outbuf_flush(o);
	if (n > GW_OUTBUF_SIZE) {
		evbuffer_add(o->dst, p, n);
		return;
	}
	memcpy(o->buf, p, n);
	o->len = n;
}

void gw_outbuf_add_u64(struct gw_outbuf *o, uint64_t v)
{
	char digits[20];
	size_t n = 0;

	do {
		digits[sizeof(digits) - 1 - n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	gw_outbuf_add(o, digits + sizeof(digits) - n, n);
}

void gw_outbuf_add_hex(struct gw_outbuf *o, uint64_t v)
{
	static const char hex[] = "0123456789abcdef";
	char digits[16];
	size_t n = 0;

	do {
		digits[sizeof(digits) - 1 - n++] = hex[v & 15];
		v >>= 4;
	} while (v);
	gw_outbuf_add(o, digits + sizeof(digits) - n, n);
}
