#include "txn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "access_log.h"
#include "body_budget.h"
#include "client_conn.h"
#include "evhttp_adapter.h"
#include "generation.h"
#include "http/header_rules.h"
#include "pipeline.h"
#include "relay.h"
#include "upstream_request.h"
#include "reply.h"
#include "router.h"
#include "server.h"
#include "stats.h"
#include "upstream/health.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/log.h"
#include "worker.h"

/* Client output above this pauses reading from the upstream. */
#define GW_CLIENT_OUT_HIGH (256 * 1024)

/* Entry points (see "entry points" below). */
static const struct gw_upconn_handler upstream_handler;
static const struct gw_upconn_handler hedge_handler;
static void on_client_drained(struct evhttp_connection *evcon, void *arg);
static void on_connection_ready(struct gw_pool_waiter *w, struct gw_upconn *c);
static void on_try_timer(evutil_socket_t fd, short what, void *arg);
static void on_deadline(evutil_socket_t fd, short what, void *arg);
static void on_hedge_timer(evutil_socket_t fd, short what, void *arg);
static void on_client_gone(void *owner);

static void start_try(struct gw_txn *txn);
static void hedge_adopt(struct gw_txn *txn);
static void hedge_cancel(struct gw_txn *txn);

static void set_deadline(struct gw_txn *txn, uint64_t ms)
{
	txn->deadline_armed = true;
	struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
	                     .tv_usec = (suseconds_t)(ms % 1000) * 1000};

	evtimer_add(&txn->deadline_ev, &tv);
}

/* ---- end of a transaction ---------------------------------------------- */

static void log_access(struct gw_txn *txn)
{
	const struct gw_route_conf *route = txn->route;
	const char *uri = txn->req ? evhttp_request_get_uri(txn->req) : NULL;
	struct gw_access_entry e = {
	    .request_id = txn->request_id,
	    .client = txn->cc ? txn->cc->client_ip : NULL,
	    .method = gw_method_name(txn->method),
	    .path = uri ? gw_origin_target(uri) : NULL,
	    .route = route ? route->name : NULL,
	    .upstream = route ? route->upstream->name : NULL,
	    .server = route && txn->server_idx >= 0
	                  ? route->upstream->servers[txn->server_idx].address
	                  : NULL,
	    .status = txn->status,
	    .tries = txn->tries,
	    .bytes = txn->bytes_sent,
	    .duration_us = gw_clock_now_us() - txn->start_us,
	    .error = txn->error_code,
	};

	gw_client_conn_tls_info(txn->cc, &e.tls_version, &e.tls_sni);
	gw_access_log_add(txn->worker->log_buf, &e);
	gw_stats_answer(txn->rs ? txn->rs->stats : txn->worker->server->stats->unrouted,
	                txn->worker->id, txn->status, e.duration_us);
}

/* Ends the current try's bookkeeping (least_request counts), once. */
static void try_done(struct gw_txn *txn)
{
	evtimer_del(&txn->hedge_ev);
	if (txn->try_active) {
		txn->pool->inflight[txn->server_idx]--;
		txn->try_active = false;
	}
}

/* The statuses that count as a failed try (SPEC section 5); 4xx never do. */
static bool status_is_failure(int status)
{
	return status == 500 || status == 502 || status == 503 || status == 504;
}

/* The try as modules see it. */
static struct gw_try try_of(const struct gw_txn *txn, enum gw_try_result result, int status)
{
	/* A streamed answer's duration is the time to its head. */
	uint64_t us = txn->body_pending ? txn->head_us : gw_clock_now_us() - txn->try_start_us;
	struct gw_try t = {
	    .result = result,
	    .status = status,
	    .failure = result != GW_TRY_OK || status_is_failure(status),
	    .duration_ms = us / 1000,
	    .duration_us = us,
	};

	return t;
}

/*
 * One try is over: outlier detection and the modules (breaker, concurrency
 * limit) learn how it went. Called once per try, whatever ended it.
 */
static void record_outcome(struct gw_txn *txn, int server, const struct gw_try *t)
{
	/* tries of a flag's when_off upstream are labelled with that upstream */
	int which = txn->route->upstream != txn->config->routes[txn->route->index].upstream;

	gw_pipeline_try_done(txn, t);
	gw_health_record(txn->pool->health, txn->route->upstream->index, (size_t)server, t->failure,
	                 gw_clock_now_ms());
	gw_stats_try(txn->rs->stats, txn->worker->id, which,
	             t->result == GW_TRY_OK && t->failure ? GW_TRY_STATUS_FAILURE : t->result);
}

static void record_try(struct gw_txn *txn, enum gw_try_result result, int status)
{
	struct gw_try t = try_of(txn, result, status);

	evtimer_del(&txn->try_ev);
	txn->body_pending = false;
	record_outcome(txn, txn->server_idx, &t);
}

static void arm_try_timer(struct gw_txn *txn, uint64_t ms)
{
	struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
	                     .tv_usec = (suseconds_t)(ms % 1000) * 1000};

	evtimer_add(&txn->try_ev, &tv);
}

/*
 * After a failed try, is another one allowed? The modules decide (the
 * retry rules and budget, no retry for a breaker's probe); when they agree,
 * the next try starts after the backoff they ask for.
 */
static bool retry_later(struct gw_txn *txn, enum gw_try_result result, int status)
{
	struct gw_try t = try_of(txn, result, status);
	uint64_t backoff;

	if (txn->hedge && !txn->client_gone) {
		hedge_adopt(txn); /* the hedge already running is the retry */
		return true;
	}
	if (txn->client_gone || !gw_pipeline_may_retry(txn, &t, &backoff))
		return false;
	gw_stats_event(txn->rs->stats, txn->worker->id, GW_EV_RETRY);
	txn->backoff_pending = true;
	arm_try_timer(txn, backoff);
	return true;
}

/* Drops whatever the current try holds: connection, place in a queue. */
static void stop_upstream(struct gw_txn *txn)
{
	if (txn->up) {
		gw_upconn_abandon(txn->up);
		txn->up = NULL;
	}
	if (txn->waiter.queued)
		gw_pool_cancel_wait(txn->pool, (size_t)txn->server_idx, &txn->waiter);
	try_done(txn);
}

/*
 * Ending a transaction.
 *
 * The end is explicit (txn_end: the reply is finished, or cannot be) and
 * releases at once everything the transaction holds; its memory goes only
 * when the outermost callback into it returns. An end can come deep inside
 * a chain that runs back through the transaction (abort_reply ->
 * evhttp_connection_free -> the connection's close callback ->
 * the transaction's on_client_gone -> txn_end), and every frame of that chain may still
 * read the transaction as it unwinds. So each entry point (evhttp, the
 * upstream connection, the pool, timers, modules) is bracketed by
 * txn_enter and txn_leave, and the txn_leave that brings the depth back to
 * zero frees an ended transaction.
 */
static void txn_enter(struct gw_txn *txn)
{
	txn->depth++;
}

static void txn_leave(struct gw_txn *txn)
{
	if (--txn->depth == 0 && txn->ended)
		free(txn);
}

/* Releases what the transaction holds; the reply is finished (or cannot
 * be). Freed by the txn_leave of the outermost entry point. */
static void txn_end(struct gw_txn *txn)
{
	if (txn->ended)
		return;
	txn->ended = true;
	if (!txn->logged)
		log_access(txn);
	stop_upstream(txn);
	hedge_cancel(txn);
	/* Whatever the modules took at admission goes back (a probe that never
	 * made a try, a concurrency slot, a place in a queue). */
	if (txn->rs)
		gw_pipeline_end(txn);
	/* The request body is freed now, and its share of the body budget
	 * goes back with it (a closed connection gives it back itself). */
	if (txn->req) {
		struct evbuffer *body = evhttp_request_get_input_buffer(txn->req);
		evbuffer_drain(body, evbuffer_get_length(body));
	}
	if (txn->cc) {
		gw_body_budget_release(&txn->cc->body_share);
		gw_client_conn_request_ends(txn->cc, txn->bytes_sent);
	}
	event_del(&txn->deadline_ev);
	event_del(&txn->try_ev);
	event_del(&txn->hedge_ev);
	txn->worker->inflight--;
	gw_worker_gen_leave(txn->worker, txn->wg); /* may free its pools: last */
	txn->wg = NULL;
	txn->pool = NULL;
}

/* Answers with a gateway error (only before any reply byte). */
static void send_error(struct gw_txn *txn, struct gw_error_reply *e)
{
	if (txn->rs)
		gw_pipeline_answer(txn, e); /* a route's fallback may replace it */
	e->request_id = txn->request_id;
	e->close = e->close || txn->worker->draining;
	txn->status = e->status;
	txn->error_code = e->code;
	if (txn->req)
		txn->bytes_sent = gw_reply_error(txn->req, e);
	txn_end(txn);
}

static void fail_request(struct gw_txn *txn, int status, const char *code, const char *allow,
                         bool close)
{
	struct gw_error_reply e = {
	    .status = status,
	    .code = code,
	    .close = close,
	    .allow = allow,
	};

	send_error(txn, &e);
}

/* A module's answer (shed, rate_limited, circuit_open, ...). */
static void send_answer(struct gw_txn *txn, const struct gw_admit_answer *a)
{
	struct gw_error_reply e = {
	    .status = a->status,
	    .code = a->code,
	};

	if (a->retry_after_ms) {
		uint64_t s = (a->retry_after_ms + 999) / 1000;
		e.retry_after_s = s > 86400 ? 86400 : (int)s;
	}
	send_error(txn, &e);
}

/* The reply started and cannot be finished properly: cut the client off so
 * that it sees a truncated response rather than a wrong one. */
static void abort_reply(struct gw_txn *txn)
{
	struct gw_client_conn *cc = txn->cc;

	if (txn->status == 0)
		txn->status = 502;
	if (cc && txn->close_delimited)
		gw_evhttp_sock_reset(cc->fd); /* the close ends such a body: a FIN
		                                 would pass the cut body off as whole */
	if (cc)
		gw_client_conn_abort(cc); /* evhttp frees the request; txn ends via client_gone */
	else
		txn_end(txn);
}

static void client_gone(struct gw_txn *txn)
{
	struct evhttp_request *req = txn->req;

	txn->client_gone = true;
	stop_upstream(txn);
	hedge_cancel(txn);
	if (!txn->reply_started || txn->status == 0)
		txn->status = 499; /* client closed the request */
	/* Logged now, while the connection and request are still there to
	 * name the client and path. */
	log_access(txn);
	txn->logged = true;
	txn->cc = NULL;
	/* A request evhttp detached from its dead connection is ours to free. */
	if (req && evhttp_request_get_connection(req) == NULL) {
		if (txn->reply_started)
			evhttp_send_reply_end(req);
		else
			evhttp_send_reply(req, 500, "Gone", NULL);
	}
	txn->req = NULL;
	txn_end(txn);
}

/* ---- response relay ----------------------------------------------------- */

/* The last bytes are handed over: the transaction ends, then evhttp
 * completes the reply (which may free the request and the connection at
 * once). */
static void finish_reply(struct gw_txn *txn)
{
	struct evhttp_request *req = txn->req;

	txn_end(txn);
	if (req)
		gw_relay_end(req);
}

/* Writes the response head into the worker's scratch buffer. */
static void begin_reply(struct gw_txn *txn, const struct gw_response_head *h,
                        enum gw_relay_framing framing, uint64_t length)
{
	/* a close-delimited body ends with the connection */
	bool close = txn->worker->draining || framing == GW_RELAY_CLOSE;
	struct gw_relay_head rh = {
	    .upstream = h,
	    .framing = framing,
	    .length = length,
	    .request_id = txn->request_id,
	    .connection = gw_relay_will_close(txn->req, close),
	};

	gw_relay_format_head(&rh, txn->worker->scratch);
	txn->status = h->status;
	txn->reply_started = true;
}

static void response_arrived(struct gw_txn *txn, const struct gw_response_head *h,
                             struct evbuffer *body)
{
	struct evbuffer *out = txn->worker->scratch;

	txn->up = NULL;
	try_done(txn);
	record_try(txn, GW_TRY_OK, h->status);
	if (status_is_failure(h->status) && retry_later(txn, GW_TRY_STATUS_FAILURE, h->status))
		return;    /* this answer is dropped; another server gets a try */
	hedge_cancel(txn); /* this answer wins */
	gw_client_conn_watch_close(txn->cc, false);
	if (h->framing == GW_BODY_NONE) {
		begin_reply(txn, h, GW_RELAY_NO_BODY, 0);
	} else {
		txn->bytes_sent = evbuffer_get_length(body);
		begin_reply(txn, h, GW_RELAY_LENGTH, txn->bytes_sent);
		evbuffer_add_buffer(out, body);
	}
	gw_relay_send(txn->req, out, NULL, NULL);
	finish_reply(txn);
}

static void client_drained(struct gw_txn *txn)
{
	if (txn->up)
		gw_upconn_pause(txn->up, false);
}

static void head_arrived(struct gw_txn *txn, const struct gw_response_head *h)
{
	if (status_is_failure(h->status)) {
		/* Nothing has reached the client yet: drop this answer (and its
		 * connection) and try elsewhere, if the rules allow. */
		struct gw_upconn *c = txn->up;
		txn->up = NULL;
		try_done(txn);
		record_try(txn, GW_TRY_OK, h->status);
		if (retry_later(txn, GW_TRY_STATUS_FAILURE, h->status)) {
			gw_upconn_abandon(c);
			return;
		}
		txn->up = c; /* no retry after all: relay this answer */
	} else {
		/* This head wins over a hedge still waiting for its own. */
		hedge_cancel(txn);
		/* A good head is not yet a good try: the body may still break
		 * off. The try is judged when the body ends (record_try). */
		txn->body_pending = true;
		txn->head_us = gw_clock_now_us() - txn->try_start_us;
	}
	txn->status = h->status;
	/* From now on the route timeout bounds the silence between pieces. */
	set_deadline(txn, txn->route->timeout_ms);
	if (h->framing == GW_BODY_LENGTH) {
		begin_reply(txn, h, GW_RELAY_LENGTH, h->content_length);
	} else if (txn->client_http10) {
		/* No chunked coding in HTTP/1.0: the body streams as it comes
		 * and the connection closes at its end (RFC 9112 6.3). */
		begin_reply(txn, h, GW_RELAY_CLOSE, 0);
		txn->close_delimited = true;
	} else {
		begin_reply(txn, h, GW_RELAY_CHUNKED, 0);
		txn->chunked_out = true;
	}
	gw_relay_send(txn->req, txn->worker->scratch, on_client_drained, txn);
}

static void body_arrived(struct gw_txn *txn, struct evbuffer *data, bool last)
{
	struct evbuffer *out = txn->worker->scratch;
	struct evhttp_connection *evcon;

	if (last) {
		txn->up = NULL;
		try_done(txn);
		if (txn->body_pending)
			record_try(txn, GW_TRY_OK, txn->status);
		gw_client_conn_watch_close(txn->cc, false);
	}
	txn->bytes_sent += evbuffer_get_length(data);
	if (txn->chunked_out) {
		gw_relay_frame_chunk(out, data);
		if (last)
			gw_relay_frame_end(out);
	} else {
		evbuffer_add_buffer(out, data);
	}
	if (evbuffer_get_length(out) > 0)
		gw_relay_send(txn->req, out, on_client_drained, txn);
	if (last) {
		finish_reply(txn);
		return;
	}
	set_deadline(txn, txn->route->timeout_ms);
	/* Backpressure: stop reading the upstream while the client lags. */
	evcon = evhttp_request_get_connection(txn->req);
	if (evcon && evbuffer_get_length(bufferevent_get_output(
	                 evhttp_connection_get_bufferevent(evcon))) > GW_CLIENT_OUT_HIGH)
		gw_upconn_pause(txn->up, true);
}

/*
 * A reset on a kept-alive connection before any response byte usually means
 * the server had closed it while it sat idle: the request never reached the
 * server. It goes once more, on a new connection (the server's other idle
 * connections are likely dead too, so they are dropped), when the request is
 * safe to send again. It is not a try of its own and says nothing about the
 * server's health, but it does count against the route's retry budget, so a
 * server that resets reused connections cannot double its own load.
 */
static bool resend_after_stale(struct gw_txn *txn)
{
	struct gw_try t = try_of(txn, GW_TRY_RESET, 0);
	uint64_t backoff;

	t.stale = true;
	if (!txn->up_reused || txn->stale_retries >= 1)
		return false;
	if (!gw_pipeline_may_retry(txn, &t, &backoff))
		return false;
	gw_stats_event(txn->rs->stats, txn->worker->id, GW_EV_RETRY);
	gw_pool_drop_idle(txn->pool, (size_t)txn->server_idx);
	txn->stale_retries++;
	txn->tries--;
	if (txn->server_idx < 64)
		txn->tried &= ~(1ull << txn->server_idx);
	start_try(txn);
	return true;
}

static void try_failed(struct gw_txn *txn, enum gw_try_result result, bool answered)
{
	txn->up = NULL;
	try_done(txn);
	if (txn->reply_started) {
		if (txn->body_pending)
			record_try(txn, result, 0);
		txn->error_code = "upstream_unavailable"; /* the reply broke off */
		abort_reply(txn);
		return;
	}
	/* A reset after the server began to answer is no stale connection:
	 * the request reached it. */
	if (result == GW_TRY_RESET && !answered && resend_after_stale(txn))
		return;
	record_try(txn, result, 0);
	if (retry_later(txn, result, 0))
		return;
	gw_client_conn_watch_close(txn->cc, false);
	if (result == GW_TRY_TIMEOUT)
		fail_request(txn, 504, "upstream_timeout", NULL, false);
	else
		fail_request(txn, 502, "upstream_unavailable", NULL, false);
}

/* ---- request to the upstream -------------------------------------------- */

static void send_on(struct gw_txn *txn, struct gw_upconn *c)
{
	txn->up = c;
	txn->up_reused = c->requests > 0;
	if (gw_upstream_request_write(txn, c->out) < 0) {
		gw_upconn_abandon(c);
		txn->up = NULL;
		try_done(txn);
		fail_request(txn, 414, "uri_too_long", NULL, false);
		return;
	}
	gw_upconn_start(c, &upstream_handler, txn, txn->head_request);
}

static void connection_ready(struct gw_txn *txn, struct gw_upconn *c)
{
	if (!c) {
		try_done(txn);
		record_try(txn, GW_TRY_CONNECT_FAILURE, 0);
		if (!retry_later(txn, GW_TRY_CONNECT_FAILURE, 0))
			fail_request(txn, 502, "upstream_unavailable", NULL, false);
		return;
	}
	send_on(txn, c);
}

static void start_try(struct gw_txn *txn)
{
	uint64_t now;
	struct gw_upconn *c;
	int idx = gw_pool_pick(txn->pool, txn->tried, gw_clock_now_ms());

	if (idx < 0) {
		fail_request(txn, 503, "no_healthy_upstream", NULL, false);
		return;
	}
	txn->server_idx = idx;
	txn->tries++;
	if (idx < 64)
		txn->tried |= 1ull << idx;
	txn->pool->inflight[idx]++;
	txn->try_active = true;
	txn->try_start_us = gw_clock_now_us();
	now = txn->try_start_us / 1000;
	if (txn->per_try_timeout_ms && txn->deadline_ms > now &&
	    txn->deadline_ms - now > txn->per_try_timeout_ms)
		arm_try_timer(txn, txn->per_try_timeout_ms);
	if (txn->hedge_after_ms && !txn->hedge && txn->deadline_ms > now + txn->hedge_after_ms) {
		struct timeval tv = {.tv_sec = (time_t)(txn->hedge_after_ms / 1000),
		                     .tv_usec = (suseconds_t)(txn->hedge_after_ms % 1000) * 1000};

		evtimer_add(&txn->hedge_ev, &tv);
	}
	txn->waiter.ready = on_connection_ready;
	txn->waiter.deadline_ms = txn->deadline_ms;
	txn->waiter.rank = txn->route->priority;
	c = gw_pool_get(txn->pool, (size_t)idx, &txn->waiter);
	if (c) {
		send_on(txn, c);
		return;
	}
	if (txn->waiter.queued)
		return; /* a connection comes when one frees up */
	try_done(txn);
	record_try(txn, GW_TRY_CONNECT_FAILURE, 0);
	if (!retry_later(txn, GW_TRY_CONNECT_FAILURE, 0))
		fail_request(txn, 502, "upstream_unavailable", NULL, false);
}

/* The per-try timer: either the backoff before the next try is over, or
 * the current try took longer than per_try_timeout. */
static void try_timer_fired(struct gw_txn *txn)
{
	if (txn->backoff_pending) {
		txn->backoff_pending = false;
		start_try(txn);
		return;
	}
	stop_upstream(txn);
	record_try(txn, GW_TRY_TIMEOUT, 0);
	if (retry_later(txn, GW_TRY_TIMEOUT, 0))
		return;
	gw_client_conn_watch_close(txn->cc, false);
	fail_request(txn, 504, "upstream_timeout", NULL, false);
}

static void deadline_passed(struct gw_txn *txn)
{
	if (txn->reply_started) {
		/* the upstream went silent in the middle of a body */
		if (txn->body_pending)
			record_try(txn, GW_TRY_TIMEOUT, 0);
		txn->error_code = "upstream_timeout";
		stop_upstream(txn);
		abort_reply(txn);
		return;
	}
	if (txn->try_active)
		record_try(txn, GW_TRY_TIMEOUT, 0);
	stop_upstream(txn);
	gw_client_conn_watch_close(txn->cc, false);
	fail_request(txn, 504, "upstream_timeout", NULL, false);
}

/* ---- hedged tries (modules/retry/hedge.h) -------------------------------- */

/*
 * A hedge runs beside the current try: the same request to another server,
 * sent when the current try has no response head after the hedge delay.
 * The first usable head wins and becomes the transaction's current try
 * (connection, server, start time); the loser's connection is closed,
 * never reused, since it may still be carrying an answer nobody reads.
 * A hedge that fails first is recorded as a failed try of its server and
 * dropped, the current try goes on; a current try that fails while a hedge
 * runs is not retried: the hedge carries on as its retry (retry_later).
 *
 * Ownership: the transaction's (txn->hedge); the connection is the pool's,
 * lent to the hedge until it wins, fails or is abandoned.
 */
struct gw_hedge {
	struct gw_txn *txn;
	struct gw_upconn *up; /* NULL once its response completed or it failed */
	int server_idx;
	bool reused;
	uint64_t start_us;
};

static void hedge_free(struct gw_txn *txn)
{
	struct gw_hedge *h = txn->hedge;

	txn->pool->inflight[h->server_idx]--;
	free(h);
	txn->hedge = NULL;
}

static void hedge_cancel(struct gw_txn *txn)
{
	if (!txn->hedge)
		return;
	if (txn->hedge->up)
		gw_upconn_abandon(txn->hedge->up);
	hedge_free(txn);
}

/* The hedge becomes the current try; the current one is over already. */
static void hedge_adopt(struct gw_txn *txn)
{
	struct gw_hedge *h = txn->hedge;
	uint64_t elapsed_ms = (gw_clock_now_us() - h->start_us) / 1000;

	txn->server_idx = h->server_idx;
	txn->try_active = true; /* its pool->inflight count goes with it */
	txn->try_start_us = h->start_us;
	txn->up = h->up;
	txn->up_reused = h->reused;
	if (h->up)
		gw_upconn_set_owner(h->up, &upstream_handler, txn);
	free(h);
	txn->hedge = NULL;
	if (txn->per_try_timeout_ms)
		arm_try_timer(txn, txn->per_try_timeout_ms > elapsed_ms
		                       ? txn->per_try_timeout_ms - elapsed_ms
		                       : 1);
}

/*
 * A usable head came first on the hedge: the current try is dropped. Its
 * server counts it as a failed try for outlier detection (another server
 * answered while it said nothing): a black-holed or very slow server is
 * ejected after a few, instead of costing each request the hedge delay.
 * The breaker and the other modules never hear of the loser.
 */
static void hedge_wins(struct gw_txn *txn)
{
	if (txn->try_active)
		gw_health_record(txn->pool->health, txn->route->upstream->index,
		                 (size_t)txn->server_idx, true, gw_clock_now_ms());
	if (txn->up) {
		gw_upconn_abandon(txn->up);
		txn->up = NULL;
	}
	if (txn->waiter.queued)
		gw_pool_cancel_wait(txn->pool, (size_t)txn->server_idx, &txn->waiter);
	evtimer_del(&txn->try_ev);
	try_done(txn);
	hedge_adopt(txn);
}

/* The hedge failed: its server learns it, the current try goes on. */
static void hedge_failed(struct gw_txn *txn, enum gw_try_result result, int status)
{
	struct gw_hedge *h = txn->hedge;
	uint64_t us = gw_clock_now_us() - h->start_us;
	struct gw_try t = {
	    .result = result,
	    .status = status,
	    .failure = true,
	    .duration_ms = us / 1000,
	    .duration_us = us,
	};

	/* a reused connection the server had closed says nothing about it */
	if (!(h->reused && result == GW_TRY_RESET))
		record_outcome(txn, h->server_idx, &t);
	hedge_free(txn);
}

static void hedge_response(struct gw_hedge *h, const struct gw_response_head *head,
                           struct evbuffer *body)
{
	struct gw_txn *txn = h->txn;

	h->up = NULL; /* complete: the connection goes back to the pool */
	if (status_is_failure(head->status)) {
		hedge_failed(txn, GW_TRY_STATUS_FAILURE, head->status);
		return;
	}
	hedge_wins(txn);
	response_arrived(txn, head, body);
}

static void hedge_head(struct gw_hedge *h, const struct gw_response_head *head)
{
	struct gw_txn *txn = h->txn;

	if (status_is_failure(head->status)) {
		gw_upconn_abandon(h->up);
		h->up = NULL;
		hedge_failed(txn, GW_TRY_STATUS_FAILURE, head->status);
		return;
	}
	hedge_wins(txn);
	head_arrived(txn, head);
}

static void hedge_error(struct gw_hedge *h, enum gw_try_result result)
{
	h->up = NULL;
	hedge_failed(h->txn, result, 0);
}

/*
 * The hedge delay is over and the current try has no head yet: send the
 * request to another server, when the modules agree (the retry rules for
 * the method, the budget, no hedge for a breaker's probe) and a server
 * that has not had this request is usable with a connection free now (a
 * hedge never waits in a pool's queue).
 */
static void hedge_timer_fired(struct gw_txn *txn)
{
	struct gw_try t = {.result = GW_TRY_TIMEOUT, .failure = true, .hedge = true};
	struct gw_pool_waiter waiter = {.ready = NULL};
	struct gw_upconn *c;
	struct gw_hedge *h;
	uint64_t backoff;
	int idx;

	if (txn->hedge || !txn->try_active || txn->body_pending || txn->reply_started ||
	    txn->backoff_pending || txn->client_gone)
		return;
	idx = gw_pool_pick(txn->pool, txn->tried, gw_clock_now_ms());
	if (idx < 0 || idx == txn->server_idx || (idx < 64 && (txn->tried >> idx) & 1))
		return; /* no other server */
	if (!gw_pipeline_may_retry(txn, &t, &backoff))
		return;
	waiter.deadline_ms = txn->deadline_ms;
	waiter.rank = txn->route->priority;
	c = gw_pool_get(txn->pool, (size_t)idx, &waiter);
	if (!c) {
		if (waiter.queued)
			gw_pool_cancel_wait(txn->pool, (size_t)idx, &waiter);
		return;
	}
	if (gw_upstream_request_write(txn, c->out) < 0) {
		gw_upconn_abandon(c);
		return;
	}
	h = gw_calloc(1, sizeof(*h));
	h->txn = txn;
	h->up = c;
	h->server_idx = idx;
	h->reused = c->requests > 0;
	h->start_us = gw_clock_now_us();
	txn->hedge = h;
	txn->hedges++;
	txn->tries++;
	if (idx < 64)
		txn->tried |= 1ull << idx;
	txn->pool->inflight[idx]++;
	gw_stats_event(txn->rs->stats, txn->worker->id, GW_EV_HEDGE);
	gw_upconn_start(c, &hedge_handler, h, txn->head_request);
}

/* ---- admission ---------------------------------------------------------- */

/*
 * The route's admission steps (modules/registry.c: flags, rate limit,
 * shedding, breaker, budget, concurrency limit), from step `from`: the
 * request is answered, parked, or goes to the upstream. The route deadline
 * runs from the start, so a parked request keeps it.
 */
static void admit(struct gw_txn *txn, size_t from)
{
	struct gw_admit_answer a;

	switch (gw_pipeline_admit(txn, from, &a)) {
	case GW_PIPELINE_ANSWER:
		send_answer(txn, &a);
		return; /* decided before any upstream work */
	case GW_PIPELINE_PARKED:
		if (!txn->deadline_armed)
			set_deadline(txn, txn->deadline_ms - gw_clock_now_ms());
		gw_client_conn_watch_close(txn->cc, true);
		return;
	case GW_PIPELINE_GO:
		break;
	}
	if (!txn->deadline_armed) {
		uint64_t now = gw_clock_now_ms();
		set_deadline(txn, txn->deadline_ms > now ? txn->deadline_ms - now : 0);
		gw_client_conn_watch_close(txn->cc, true);
	}
	start_try(txn);
}

static void refused(struct gw_txn *txn, const struct gw_admit_answer *a)
{
	gw_client_conn_watch_close(txn->cc, false);
	send_answer(txn, a);
}

void gw_txn_reroute(struct gw_txn *txn, const struct gw_route_conf *r)
{
	txn->route = r;
	txn->pool = txn->wg->pools[r->upstream->index];
}

const char *gw_txn_header(const struct gw_txn *txn, const char *name)
{
	return txn->req ? evhttp_find_header(evhttp_request_get_input_headers(txn->req), name)
	                : NULL;
}

const char *gw_txn_client_ip(const struct gw_txn *txn)
{
	return txn->cc ? txn->cc->client_ip : "";
}

/* ---- entry ------------------------------------------------------------- */

static void pick_request_id(struct gw_txn *txn)
{
	const char *id =
	    evhttp_find_header(evhttp_request_get_input_headers(txn->req), "X-Request-ID");
	size_t len = id ? strlen(id) : 0;

	if (id && len < sizeof(txn->request_id) && gw_request_id_acceptable(id, len))
		memcpy(txn->request_id, id, len + 1);
	else
		gw_request_id_new(txn->request_id);
}

static void handle(struct gw_txn *txn, struct evhttp_request *req)
{
	struct gw_worker *w = txn->worker;
	const char *uri = gw_origin_target(evhttp_request_get_uri(req));
	const char *query = strchr(uri, '?');
	const struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	const char *host = evhttp_find_header(in, "Host");
	struct gw_route_query q;
	unsigned allow = 0;
	uint64_t now;

	txn->req = req;
	txn->cc = gw_client_conn_of(req);
	txn->wg = gw_worker_gen_enter(w);
	txn->config = txn->wg->gen->config;
	txn->start_us = gw_clock_now_us();
	txn->server_idx = -1;
	txn->method = (unsigned)evhttp_request_get_command(req);
	txn->head_request = txn->method == GW_METHOD_HEAD;
	/* HTTP/1.2 and up are served as 1.1; an absolute-form target is not a
	 * forward-proxy request here (the check against Host is done). */
	txn->client_http10 = gw_evhttp_request_adopt(req);
	evtimer_assign(&txn->deadline_ev, w->base, on_deadline, txn);
	evtimer_assign(&txn->try_ev, w->base, on_try_timer, txn);
	evtimer_assign(&txn->hedge_ev, w->base, on_hedge_timer, txn);
	w->inflight++;
	pick_request_id(txn);
	if (txn->cc) {
		gw_client_conn_request_begins(txn->cc, req, on_client_gone, txn);
		/* the body is all here: its share of the budget is its length */
		gw_body_budget_settle(&txn->cc->body_share,
		                      evbuffer_get_length(evhttp_request_get_input_buffer(req)));
	}

	q.method = txn->method;
	q.path = uri;
	q.path_len = query ? (size_t)(query - uri) : strlen(uri);
	q.host = host;
	q.host_len = host ? strlen(host) : 0;
	q.headers = in;
	if (!gw_path_is_safe(q.path, q.path_len)) {
		fail_request(txn, 400, "bad_request", NULL, true);
		return;
	}
	txn->route = gw_router_match(txn->config, &q, &allow);
	if (!txn->route) {
		if (allow) {
			char methods[96];
			gw_methods_format(allow, methods, sizeof(methods));
			fail_request(txn, 405, "method_not_allowed", methods, false);
		} else {
			fail_request(txn, 404, "no_route", NULL, false);
		}
		return;
	}
	txn->pool = txn->wg->pools[txn->route->upstream->index];
	txn->rs = &txn->wg->gen->pipeline->routes[txn->route->index];
	now = gw_clock_now_ms();
	txn->deadline_ms = now + txn->route->timeout_ms;
	admit(txn, 0);
}

/* ---- entry points ------------------------------------------------------- */

/* Each runs its step between txn_enter and txn_leave (see txn_end). */

static void on_response(void *owner, const struct gw_response_head *h, struct evbuffer *body)
{
	struct gw_txn *txn = owner;

	txn_enter(txn);
	response_arrived(txn, h, body);
	txn_leave(txn);
}

static void on_head(void *owner, const struct gw_response_head *h)
{
	struct gw_txn *txn = owner;

	txn_enter(txn);
	head_arrived(txn, h);
	txn_leave(txn);
}

static void on_body(void *owner, struct evbuffer *data, bool last)
{
	struct gw_txn *txn = owner;

	txn_enter(txn);
	body_arrived(txn, data, last);
	txn_leave(txn);
}

static void on_error(void *owner, enum gw_try_result result, bool answered)
{
	struct gw_txn *txn = owner;

	txn_enter(txn);
	try_failed(txn, result, answered);
	txn_leave(txn);
}

static const struct gw_upconn_handler upstream_handler = {
    .on_response = on_response,
    .on_head = on_head,
    .on_body = on_body,
    .on_error = on_error,
};

static void hedge_on_response(void *owner, const struct gw_response_head *head,
                              struct evbuffer *body)
{
	struct gw_hedge *h = owner;
	struct gw_txn *txn = h->txn; /* the hedge may be freed meanwhile */

	txn_enter(txn);
	hedge_response(h, head, body);
	txn_leave(txn);
}

static void hedge_on_head(void *owner, const struct gw_response_head *head)
{
	struct gw_hedge *h = owner;
	struct gw_txn *txn = h->txn;

	txn_enter(txn);
	hedge_head(h, head);
	txn_leave(txn);
}

static void hedge_on_body(void *owner, struct evbuffer *data, bool last)
{
	struct gw_hedge *h = owner;

	/* not reached: a winning head hands the connection over */
	on_body(h->txn, data, last);
}

static void hedge_on_error(void *owner, enum gw_try_result result, bool answered)
{
	struct gw_hedge *h = owner;
	struct gw_txn *txn = h->txn;

	(void)answered;
	txn_enter(txn);
	hedge_error(h, result);
	txn_leave(txn);
}

static const struct gw_upconn_handler hedge_handler = {
    .on_response = hedge_on_response,
    .on_head = hedge_on_head,
    .on_body = hedge_on_body,
    .on_error = hedge_on_error,
};

static void on_client_drained(struct evhttp_connection *evcon, void *arg)
{
	struct gw_txn *txn = arg;

	(void)evcon;
	txn_enter(txn);
	client_drained(txn);
	txn_leave(txn);
}

static void on_connection_ready(struct gw_pool_waiter *w, struct gw_upconn *c)
{
	struct gw_txn *txn = (struct gw_txn *)((char *)w - offsetof(struct gw_txn, waiter));

	txn_enter(txn);
	connection_ready(txn, c);
	txn_leave(txn);
}

static void on_try_timer(evutil_socket_t fd, short what, void *arg)
{
	struct gw_txn *txn = arg;

	txn_enter(txn);
	try_timer_fired(txn);
	txn_leave(txn);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct gw_txn *txn = arg;

	txn_enter(txn);
	deadline_passed(txn);
	txn_leave(txn);
}

static void on_hedge_timer(evutil_socket_t fd, short what, void *arg)
{
	struct gw_txn *txn = arg;

	txn_enter(txn);
	hedge_timer_fired(txn);
	txn_leave(txn);
}

static void on_client_gone(void *owner)
{
	struct gw_txn *txn = owner;

	txn_enter(txn);
	client_gone(txn);
	txn_leave(txn);
}

void gw_txn_resume(struct gw_txn *txn)
{
	txn_enter(txn);
	admit(txn, txn->park_pos + 1);
	txn_leave(txn);
}

void gw_txn_refuse(struct gw_txn *txn, const struct gw_admit_answer *a)
{
	txn_enter(txn);
	refused(txn, a);
	txn_leave(txn);
}

void gw_txn_handle(struct evhttp_request *req, void *arg)
{
	struct gw_txn *txn = gw_calloc(1, sizeof(*txn));

	txn->worker = arg;
	txn_enter(txn);
	handle(txn, req);
	txn_leave(txn);
}
