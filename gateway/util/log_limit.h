/*
 * A rate limit for one kind of log line about one subject ("the TLS
 * handshakes with server X fail"), so that a flood of identical failures
 * writes at most one line per interval, and the next line that is written
 * says how many were left out.
 *
 * Lock-free: every worker thread may ask at once for the same subject
 * (the limit is process-wide when the struct is shared, e.g. one per
 * upstream server in upstream/health.c). Time enters as now_ms, so tests
 * drive it with a fake clock.
 *
 * Suppressed lines are only counted, never written later: a burst that
 * stops leaves its count for the next line about that subject, whenever
 * that comes.
 *
 * Ownership: plain data, embedded in its owner; zero-initialised is ready
 * (the first line passes).
 */
#ifndef GW_UTIL_LOG_LIMIT_H
#define GW_UTIL_LOG_LIMIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct gw_log_limit {
	_Atomic uint64_t next_ms; /* no line before this time */
	atomic_uint suppressed;   /* lines left out since the last one written */
};

/*
 * May the line be written at now_ms? true at most once per interval_ms;
 * *suppressed then says how many were left out before it (and restarts
 * the count). false: the line is counted as left out.
 */
bool gw_log_limit_pass(struct gw_log_limit *l, uint64_t now_ms, uint64_t interval_ms,
                       unsigned *suppressed);

#endif
