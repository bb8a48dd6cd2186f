/*
 * Durations and sizes as the config file spells them.
 *
 * Durations: an unsigned integer followed by a unit, "250ms", "2s", "1m",
 * "1h"; the bare number 0 also means zero. Sizes: bytes ("512"), or a number
 * with "k" or "m" (KiB, MiB; upper case accepted). Anything else, overflow
 * included, is refused.
 */
#ifndef GW_CONFIG_UNITS_H
#define GW_CONFIG_UNITS_H

#include <stdint.h>

/* 0 on success with *ms set; -1 when the text is not a duration. */
int gw_parse_duration_ms(const char *text, uint64_t *ms);
/* 0 on success with *bytes set; -1 when the text is not a size. */
int gw_parse_size(const char *text, uint64_t *bytes);

#endif
