#include "clock.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>

static atomic_bool fake_enabled;
static _Atomic uint64_t fake_now_ms;

uint64_t gw_clock_now_us(void)
{
	struct timespec ts;

	if (atomic_load_explicit(&fake_enabled, memory_order_relaxed))
		return atomic_load(&fake_now_ms) * 1000;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t gw_clock_now_ms(void)
{
	return gw_clock_now_us() / 1000;
}

void gw_clock_iso8601(char *buf, unsigned size)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

int64_t gw_clock_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void gw_clock_set_fake(uint64_t now_ms)
{
	atomic_store(&fake_now_ms, now_ms);
	atomic_store(&fake_enabled, true);
}

void gw_clock_advance_fake(uint64_t delta_ms)
{
	atomic_fetch_add(&fake_now_ms, delta_ms);
}

void gw_clock_use_real(void)
{
	atomic_store(&fake_enabled, false);
}
