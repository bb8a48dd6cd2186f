#include "json_out.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

void gw_json_str(struct evbuffer *out, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	char buf[256];
	size_t n = 0;

	if (!s) {
		evbuffer_add(out, "null", 4);
		return;
	}
	buf[n++] = '"';
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (n > sizeof(buf) - 8) {
			evbuffer_add(out, buf, n);
			n = 0;
		}
		if (ch == '"' || ch == '\\') {
			buf[n++] = '\\';
			buf[n++] = (char)ch;
		} else if (ch < 0x20 || ch >= 0x7f) {
			memcpy(buf + n, "\\u00", 4);
			n += 4;
			buf[n++] = hex[ch >> 4];
			buf[n++] = hex[ch & 15];
		} else {
			buf[n++] = (char)ch;
		}
	}
	buf[n++] = '"';
	evbuffer_add(out, buf, n);
}

void gw_json_key(struct evbuffer *out, const char *key, bool first)
{
	if (!first)
		evbuffer_add(out, ",", 1);
	gw_json_str(out, key);
	evbuffer_add(out, ":", 1);
}

void gw_json_u64(struct evbuffer *out, uint64_t v)
{
	evbuffer_add_printf(out, "%" PRIu64, v);
}

void gw_json_num(struct evbuffer *out, double v)
{
	if (!isfinite(v))
		evbuffer_add(out, "null", 4);
	else
		evbuffer_add_printf(out, "%.6g", v);
}

void gw_json_bool(struct evbuffer *out, bool v)
{
	if (v)
		evbuffer_add(out, "true", 4);
	else
		evbuffer_add(out, "false", 5);
}
