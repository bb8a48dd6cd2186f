/*
 * One request's life, start to end, in one place:
 *
 *   evhttp delivers a checked request -> route -> admit (modules) -> pick a
 *   server and get a pooled connection -> send the request with the gateway's
 *   header rules -> relay the response (whole, or streamed with backpressure)
 *   -> access log.
 *
 * Deadlines: the route timeout covers everything up to the response head
 * (504 upstream_timeout); while a body streams, the same duration bounds the
 * silence between two pieces, so a long download is not cut off while it
 * makes progress.
 *
 * Ownership: a transaction is created by gw_txn_handle and ends when the
 * reply is finished or the client is gone; it is freed when the callback
 * that ended it returns (see txn_end in txn.c). It runs on the generation
 * (config, pools, module states) it started on to the end, whatever
 * reloads happen meanwhile.
 */
#ifndef GW_TXN_H
#define GW_TXN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event_struct.h>

#include "../modules/module.h"
#include "config/config.h"
#include "upstream/pool.h"

struct evhttp_request;
struct gw_worker;
struct gw_client_conn;
struct gw_route_state;
struct gw_worker_gen;
struct gw_hedge;

struct gw_txn {
	struct gw_worker *worker;
	struct gw_client_conn *cc;  /* NULL once the connection is gone */
	struct evhttp_request *req; /* NULL once evhttp has freed it */
	struct gw_worker_gen *wg;   /* the generation it runs on (entered, left at the end) */
	struct gw_config *config;   /* wg's config */
	const struct gw_route_conf *route;
	struct gw_pool *pool;

	int server_idx;
	unsigned tries;       /* tries started, the first included */
	uint64_t tried;       /* bit i: server i has had a try (retries go elsewhere) */
	struct gw_upconn *up; /* the connection of the current try */
	bool up_reused;
	bool try_active; /* counted in pool->inflight[server_idx] */
	unsigned stale_retries;
	struct gw_pool_waiter waiter;
	struct event deadline_ev; /* embedded: no allocation per request */
	struct event try_ev;      /* per-try timeout, or the backoff before a retry */
	bool backoff_pending;
	bool deadline_armed;
	uint64_t try_start_us;
	uint64_t per_try_timeout_ms; /* 0: none; set by the retry module at admission */
	uint64_t hedge_after_ms;     /* 0: no hedging; set by the retry module at admission */
	unsigned hedges;             /* hedged tries started */
	struct gw_hedge *hedge;      /* owned: the hedged try in flight beside the current one */
	struct event hedge_ev;       /* the hedge delay of the current try */
	bool body_pending;           /* good head streamed; judged when the body ends */
	uint64_t head_us;            /* time from try start to its head */
	struct gw_route_state *rs;   /* the route's modules (gateway/pipeline.h) */
	size_t park_pos;             /* the admission step that parked it */

	uint64_t start_us;
	uint64_t deadline_ms;
	unsigned method;
	bool head_request;
	bool client_http10;
	char request_id[33];

	/* reply */
	int status;
	uint64_t bytes_sent;
	bool reply_started;
	bool chunked_out; /* the gateway frames the body in chunks */
	bool client_gone;
	bool logged; /* the access log line is written */
	const char *error_code;
	bool close_delimited; /* the body ends with the client connection (HTTP/1.0) */

	unsigned depth; /* entry points running (txn_enter/txn_leave in txn.c) */
	bool ended;     /* txn_end ran: freed when depth returns to 0 */

	/* Each module's per-request slot (modules/module.h), zeroed at start. */
	_Alignas(max_align_t) unsigned char mod_slots[GW_TXN_SLOT_BYTES];
};

/* evhttp_set_gencb callback: arg is the worker. */
void gw_txn_handle(struct evhttp_request *req, void *arg);

/*
 * For modules. A parked request goes on with the admission step after the
 * one that parked it (gw_txn_resume), or gets the answer a (gw_txn_refuse).
 * Either may end and free the transaction before returning.
 */
void gw_txn_resume(struct gw_txn *txn);
void gw_txn_refuse(struct gw_txn *txn, const struct gw_admit_answer *a);
/* Runs the request as route r from now on (same name and state, other upstream). */
void gw_txn_reroute(struct gw_txn *txn, const struct gw_route_conf *r);
/* A request header's value, or NULL. */
const char *gw_txn_header(const struct gw_txn *txn, const char *name);
/* The client's address as text ("" when unknown). */
const char *gw_txn_client_ip(const struct gw_txn *txn);

#endif
