/*
 * Durations and sizes as the config file spells them (units.h).
 *
 * Both parsers are hand-written rather than built on strtoull: strtoull
 * accepts leading spaces, signs and "0x", and silently saturates on
 * overflow, which are all things a config value must not do.
 */
#include "units.h"

#include <stdbool.h>
#include <string.h>

/*
 * Reads the leading run of decimal digits of text into *value. Returns the
 * number of digits read (0 when text does not start with a digit), or -1 when
 * the number does not fit in 64 bits.
 */
static int read_digits(const char *text, uint64_t *value)
{
	uint64_t v = 0;
	int n = 0;

	while (text[n] >= '0' && text[n] <= '9') {
		unsigned digit = (unsigned)(text[n] - '0');

		if (v > (UINT64_MAX - digit) / 10)
			return -1;
		v = v * 10 + digit;
		n++;
	}
	*value = v;
	return n;
}

/* *out = a * b, or -1 when the product does not fit in 64 bits. */
static int mul_checked(uint64_t a, uint64_t b, uint64_t *out)
{
	if (b != 0 && a > UINT64_MAX / b)
		return -1;
	*out = a * b;
	return 0;
}

struct unit {
	const char *suffix;
	uint64_t factor;
};

static const struct unit duration_units[] = {
    {"ms", 1},
    {"s", 1000},
    {"m", 60 * 1000},
    {"h", 60 * 60 * 1000},
};

static const struct unit size_units[] = {
    {"", 1}, {"k", 1024}, {"K", 1024}, {"m", 1024 * 1024}, {"M", 1024 * 1024},
};

/*
 * A number immediately followed by one of the units, the whole text used.
 * Units are compared whole ("ms" is never "m" followed by junk), so the
 * order of the table does not matter.
 */
static int parse_with_units(const char *text, const struct unit *units, size_t nunits,
                            uint64_t *out)
{
	uint64_t value;
	int n = read_digits(text, &value);

	if (n <= 0)
		return -1;
	for (size_t i = 0; i < nunits; i++)
		if (strcmp(text + n, units[i].suffix) == 0)
			return mul_checked(value, units[i].factor, out);
	return -1;
}

int gw_parse_duration_ms(const char *text, uint64_t *ms)
{
	uint64_t v;

	if (!text)
		return -1;
	if (strcmp(text, "0") == 0) {
		*ms = 0;
		return 0;
	}
	if (parse_with_units(text, duration_units,
	                     sizeof(duration_units) / sizeof(duration_units[0]), &v) < 0)
		return -1;
	*ms = v;
	return 0;
}

int gw_parse_size(const char *text, uint64_t *bytes)
{
	uint64_t v;

	if (!text)
		return -1;
	if (parse_with_units(text, size_units, sizeof(size_units) / sizeof(size_units[0]), &v) < 0)
		return -1;
	*bytes = v;
	return 0;
}
