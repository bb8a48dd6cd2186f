/*
 * The admin API (SPEC section 7): one evhttp server on the main thread's
 * loop, never on a proxy worker's, so it answers while every worker is
 * saturated.
 *
 *   GET  /healthz /readyz           liveness, readiness (503 while draining)
 *   GET  /status /metrics /         JSON state, Prometheus metrics, status page
 *   POST /reload                    reload the config file
 *   POST /breakers/ROUTE?state=     force a breaker (open, closed, auto)
 *   POST /shed?level=               force the overload level (auto, 0, 1, 2)
 *   POST /flags/NAME?value=         override a flag (on, off, N%, auto)
 *
 * With admin.token_env, every request but /healthz, /readyz and GET / needs
 * "Authorization: Bearer TOKEN" (compared in constant time), else 401.
 * Overrides rank above Redis (SPEC section 6) and last until set back to
 * auto or the process ends.
 *
 * Ownership: the server owns it (gw_admin_start after the workers exist,
 * gw_admin_free before the main loop goes).
 */
#ifndef GW_ADMIN_ADMIN_H
#define GW_ADMIN_ADMIN_H

#include <stddef.h>

struct gw_server;
struct gw_admin;

/* Binds config->admin.listen on the server's main loop; NULL with err filled. */
struct gw_admin *gw_admin_start(struct gw_server *server, char *err, size_t errlen);
void gw_admin_free(struct gw_admin *a);

#endif
