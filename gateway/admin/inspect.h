/*
 * What the admin API shows: GET /status (JSON) and GET /metrics
 * (Prometheus text format 0.0.4), both read on the main thread from the
 * server's current generation, the stats registry, the flags runtime and
 * what workers publish each tick. Nothing here takes a lock a worker
 * waits on.
 */
#ifndef GW_ADMIN_INSPECT_H
#define GW_ADMIN_INSPECT_H

struct evbuffer;
struct gw_server;

/* The /status document (its schema is in README, "Admin API"). */
void gw_admin_status_json(struct gw_server *server, struct evbuffer *out);
/* The config part of /status and of POST /reload's answer: {"file":...}. */
void gw_admin_config_json(struct gw_server *server, struct evbuffer *out);
/* The /metrics exposition. */
void gw_admin_metrics(struct gw_server *server, struct evbuffer *out);

#endif
