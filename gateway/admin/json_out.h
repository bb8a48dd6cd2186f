/*
 * A small JSON writer into an evbuffer, for the admin API: the caller
 * writes the structure, this escapes strings and formats numbers.
 *
 * Strings come from the config and from Redis: every byte that is not
 * printable ASCII is written as \u00XX, so the output is valid JSON (and
 * plain ASCII) whatever they hold.
 */
#ifndef GW_ADMIN_JSON_OUT_H
#define GW_ADMIN_JSON_OUT_H

#include <stdbool.h>
#include <stdint.h>

struct evbuffer;

/* "text" with escapes; NULL writes null. */
void gw_json_str(struct evbuffer *out, const char *s);
/* "key": then the value is the caller's; comma before unless first. */
void gw_json_key(struct evbuffer *out, const char *key, bool first);
void gw_json_u64(struct evbuffer *out, uint64_t v);
void gw_json_num(struct evbuffer *out, double v);
void gw_json_bool(struct evbuffer *out, bool v);

#endif
