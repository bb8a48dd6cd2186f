/*
 * What one upstream try ended with. Neutral ground: the upstream connection
 * code reports it, the request path and the resilience modules read it.
 */
#ifndef GW_TRY_RESULT_H
#define GW_TRY_RESULT_H

#include <stdbool.h>
#include <stdint.h>

enum gw_try_result {
	GW_TRY_OK = 0, /* a response head arrived (its status may still be a failure) */
	GW_TRY_CONNECT_FAILURE,
	GW_TRY_RESET,
	GW_TRY_TIMEOUT,
	GW_TRY_INVALID_RESPONSE,
	GW_TRY_STATUS_FAILURE, /* a 5xx counted as failure */
};

/* One finished try, as modules see it (on_try_done, may_retry). */
struct gw_try {
	enum gw_try_result result;
	int status;           /* 0 when no response head arrived */
	bool failure;         /* SPEC 5: connect failure, reset, timeout, 500/502/503/504 */
	bool stale;           /* reset on a reused keep-alive connection before any byte:
	                         the request never reached the server (may_retry only) */
	bool hedge;           /* may_retry only: no head yet after the hedge delay; may the
	                         same request go to another server meanwhile? */
	uint64_t duration_ms; /* try start to its end (to the head for a streamed body) */
	uint64_t duration_us;
};

#endif
