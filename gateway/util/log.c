#include "log.h"
#include "clock.h"

#include <stdarg.h>
#include <stdio.h>

static enum gw_log_level min_level = GW_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void gw_log_set_level(enum gw_log_level level)
{
	min_level = level;
}

void gw_log(enum gw_log_level level, const char *fmt, ...)
{
	char line[2048];
	char when[40];
	int n;
	va_list ap;

	if (level < min_level)
		return;
	gw_clock_iso8601(when, sizeof(when));
	n = snprintf(line, sizeof(line), "%s %s ", when, level_names[level]);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	/* One fputs per line: stdio locks the stream, so lines never interleave. */
	fprintf(stderr, "%s\n", line);
}
