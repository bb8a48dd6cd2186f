/*
 * The one clock of the gateway. Everything that measures time (deadlines,
 * breaker windows, budgets, rate limits) asks gw_clock_now_ms(), so tests can
 * drive it with a fake clock instead of sleeping.
 *
 * The real clock is CLOCK_MONOTONIC in milliseconds. A fake clock, once set
 * with gw_clock_set_fake(), only moves when a test moves it.
 */
#ifndef GW_UTIL_CLOCK_H
#define GW_UTIL_CLOCK_H

#include <stdint.h>

uint64_t gw_clock_now_ms(void);
/* Monotonic microseconds, for request durations in logs and metrics. */
uint64_t gw_clock_now_us(void);
/* Wall clock as an ISO 8601 UTC string with milliseconds; buf >= 32 bytes. */
void gw_clock_iso8601(char *buf, unsigned size);

/* Wall clock (CLOCK_REALTIME) in ms since the epoch: for "loaded at" times. */
int64_t gw_clock_wall_ms(void);

void gw_clock_set_fake(uint64_t now_ms);
void gw_clock_advance_fake(uint64_t delta_ms);
void gw_clock_use_real(void);

#endif
