/*
 * Process log on stderr: one line per event, "time level message".
 * The access log (one JSON object per request) is separate: access_log.h.
 */
#ifndef GW_UTIL_LOG_H
#define GW_UTIL_LOG_H

enum gw_log_level { GW_LOG_DEBUG = 0, GW_LOG_INFO, GW_LOG_WARN, GW_LOG_ERROR };

void gw_log_set_level(enum gw_log_level level);
void gw_log(enum gw_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define gw_log_info(...)  gw_log(GW_LOG_INFO, __VA_ARGS__)
#define gw_log_warn(...)  gw_log(GW_LOG_WARN, __VA_ARGS__)
#define gw_log_error(...) gw_log(GW_LOG_ERROR, __VA_ARGS__)
#define gw_log_debug(...) gw_log(GW_LOG_DEBUG, __VA_ARGS__)

#endif
