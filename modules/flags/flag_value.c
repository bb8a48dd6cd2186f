/*
 * Feature flag values (flag_value.h).
 */
#include "flag_value.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool word_is(const char *s, size_t len, const char *word)
{
	return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

enum gw_flag_parse gw_flag_value_parse(const char *s, size_t len, struct gw_flag_value *out)
{
	unsigned v = 0;
	size_t digits;

	if (word_is(s, len, "on") || word_is(s, len, "true")) {
		*out = (struct gw_flag_value){.kind = GW_FLAG_ON};
		return GW_FLAG_PARSE_OK;
	}
	if (word_is(s, len, "off") || word_is(s, len, "false")) {
		*out = (struct gw_flag_value){.kind = GW_FLAG_OFF};
		return GW_FLAG_PARSE_OK;
	}
	if (len < 2 || s[len - 1] != '%')
		return GW_FLAG_PARSE_BAD;
	digits = len - 1;
	for (size_t i = 0; i < digits; i++) {
		if (s[i] < '0' || s[i] > '9')
			return GW_FLAG_PARSE_BAD;
		if (v <= 100)
			v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > 100)
		return GW_FLAG_PARSE_RANGE;
	*out = (struct gw_flag_value){.kind = GW_FLAG_PERCENT, .percent = v};
	return GW_FLAG_PARSE_OK;
}

const char *gw_flag_value_format(struct gw_flag_value v, char *buf, size_t size)
{
	switch (v.kind) {
	case GW_FLAG_ON:
		snprintf(buf, size, "on");
		break;
	case GW_FLAG_OFF:
		snprintf(buf, size, "off");
		break;
	case GW_FLAG_PERCENT:
		snprintf(buf, size, "%u%%", v.percent);
		break;
	}
	return buf;
}

bool gw_flag_value_equal(struct gw_flag_value a, struct gw_flag_value b)
{
	return a.kind == b.kind && (a.kind != GW_FLAG_PERCENT || a.percent == b.percent);
}

int gw_shed_level_parse(const char *s, size_t len, int *out)
{
	if (word_is(s, len, "auto")) {
		*out = GW_SHED_LEVEL_AUTO;
		return 0;
	}
	if (len == 1 && s[0] >= '0' && s[0] <= '0' + GW_SHED_LEVEL_MAX) {
		*out = s[0] - '0';
		return 0;
	}
	return -1;
}

const char *gw_shed_level_name(int level)
{
	static const char *const names[] = {"0", "1", "2"};

	if (level < 0 || level > GW_SHED_LEVEL_MAX)
		return "auto";
	return names[level];
}

uint32_t gw_fnv1a32(uint32_t h, const void *data, size_t len)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 16777619u;
	}
	return h;
}

uint32_t gw_flag_seed(const char *flag_name)
{
	return gw_fnv1a32(gw_fnv1a32(GW_FNV1A32_INIT, flag_name, strlen(flag_name)), ":", 1);
}

unsigned gw_flag_bucket(uint32_t seed, const char *key, size_t key_len)
{
	return gw_fnv1a32(seed, key, key_len) % 100;
}

bool gw_flag_value_on(struct gw_flag_value v, uint32_t seed, const char *key, size_t key_len)
{
	switch (v.kind) {
	case GW_FLAG_ON:
		return true;
	case GW_FLAG_OFF:
		return false;
	case GW_FLAG_PERCENT:
		return gw_flag_bucket(seed, key, key_len) < v.percent;
	}
	return false;
}
