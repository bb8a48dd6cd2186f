/*
 * TLS to upstream servers: the OpenSSL context of an upstream's `tls`,
 * built when the configuration loads, one SSL per connection, session
 * reuse across the pooled connections of a server, and a one-line reason
 * when a handshake fails.
 *
 * The context: TLS 1.2 to 1.3, peer verification on unless `verify:
 * false` (the `ca` bundle, else the system's default paths), the client
 * certificate for mutual TLS, no renegotiation, and
 * SSL_OP_IGNORE_UNEXPECTED_EOF: OpenSSL 3 otherwise reports a server that
 * closes without close_notify as an error, which would fail every
 * close-delimited response body (libevent 2.1.12).
 *
 * One connection to one server (upconn, health check), libevent 2.1:
 *
 *   char host[256];
 *   SSL *ssl = gw_tls_client_ssl_new(u->tls, gw_tls_address_host(server->address,
 *                                                                 host, sizeof(host)));
 *   gw_tls_session_slot_apply(&slot_of_that_server, ssl);
 *   bev = bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_CONNECTING,
 *                                        BEV_OPT_CLOSE_ON_FREE);   (the bufferevent owns ssl)
 *   ... on BEV_EVENT_CONNECTED: gw_tls_session_slot_save(&slot, ssl);
 *   ... when the connection goes back to the pool: gw_tls_session_slot_save(&slot, ssl);
 *   ... on BEV_EVENT_ERROR before CONNECTED:
 *       log "upstream %s server %s: TLS handshake failed: %s",
 *           gw_tls_handshake_reason(ssl, bufferevent_get_openssl_error(bev), buf, sizeof(buf))
 */
#ifndef GW_TLS_TLS_CLIENT_H
#define GW_TLS_TLS_CLIENT_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "../config/config.h"
#include "tls_report.h"

/*
 * Builds conf->ctx. Problems (the CA file, the client certificate or key)
 * go to report; an expired client certificate is a warning. 0, or -1 with
 * nothing built.
 */
int gw_tls_client_build(struct gw_tls_upstream_conf *conf, const struct gw_tls_report *report);

/* Releases the snapshot's reference to the context (NULL-safe). */
void gw_tls_client_release(struct gw_tls_upstream_conf *conf);

/*
 * The host part of a server address as written: "api.internal:443" ->
 * "api.internal", "10.0.0.1:443" -> "10.0.0.1", "[::1]:443" -> "::1".
 * Written into buf; returns buf, or NULL when it does not fit.
 */
const char *gw_tls_address_host(const char *address, char *buf, size_t size);

/*
 * A new client-side SSL (the caller's) for one connection to the server
 * whose host is server_host (the host part of its address as written,
 * brackets allowed). The name it sends and checks is tls->server_name
 * when set, else server_host:
 *   - a DNS name: sent as SNI, and the certificate must be valid for it
 *     (SSL_set1_host; no partial wildcards);
 *   - an IP literal: no SNI (RFC 6066 forbids it), and the certificate
 *     must be valid for that IP address (an IP subjectAltName).
 * With verify false neither is checked (SNI is still sent). NULL when
 * OpenSSL fails, or when there is no name at all.
 */
SSL *gw_tls_client_ssl_new(const struct gw_tls_upstream_conf *tls, const char *server_host);

/*
 * The newest TLS session of one server, offered on the next connection to
 * it so that its handshake is an abbreviated one. One slot per server per
 * upstream conf; zero-initialised is empty. Not locked: a slot belongs to
 * one thread (the worker's pool of that server).
 *
 * A session is only ever offered on a connection made from the context it
 * came from: resumption skips certificate verification, so a session made
 * under another configuration (another CA, verify off) must not be
 * reused. A slot whose context is no longer the connection's is emptied.
 *
 * Ownership: the slot holds one reference to its session and one to the
 * context it came from; gw_tls_session_slot_free drops both (the slot
 * itself is the caller's, usually embedded).
 */
struct gw_tls_session_slot {
	SSL_SESSION *session; /* a copy: see gw_tls_session_slot_save */
	SSL_CTX *ctx;         /* the context it came from */
};

/*
 * Keeps a copy of ssl's session when the handshake is complete and the
 * session is resumable, replacing (and freeing) the one kept before; the
 * session already kept (the same session id: for a ticket, its hash) is
 * not copied again. Call it after the handshake
 * and again when the connection goes back to the pool: a TLS 1.3 server
 * sends its tickets after the handshake, so they arrive with the first
 * response bytes.
 *
 * A copy (SSL_SESSION_dup), because OpenSSL marks the session of a
 * connection freed without a close_notify as not resumable, and the
 * gateway closes upstream connections without one (errors, idle
 * timeouts, bufferevent_free): the original would die with the first
 * such close.
 */
void gw_tls_session_slot_save(struct gw_tls_session_slot *slot, SSL *ssl);
/*
 * Offers the kept session on ssl, before its handshake. A copy: so
 * SSL_get0_session(ssl) is never slot->session; compare sessions with
 * gw_tls_session_slot_forget, by id.
 */
void gw_tls_session_slot_apply(struct gw_tls_session_slot *slot, SSL *ssl);
/*
 * Forgets the kept session when it is the one ssl holds (offered or
 * resumed: the same session id), as OpenSSL drops the session of a failed
 * connection from its own cache. Call it when a connection fails.
 */
void gw_tls_session_slot_forget(struct gw_tls_session_slot *slot, const SSL *ssl);
void gw_tls_session_slot_free(struct gw_tls_session_slot *slot);

/*
 * Why the handshake of ssl failed, in one line for the log: the
 * certificate check ("certificate is not valid for host name
 * 'api.internal' (hostname mismatch)", "certificate verification failed:
 * unable to get local issuer certificate"), else OpenSSL's reason for
 * err ("the server requires a client certificate (tlsv13 alert
 * certificate required)", "wrong version number: is the server speaking
 * TLS?"), else "connection closed during the TLS handshake". Returns buf.
 *
 * With bufferevent_openssl pass err = bufferevent_get_openssl_error(bev):
 * libevent has already emptied OpenSSL's error queue into the bufferevent.
 */
const char *gw_tls_handshake_reason(SSL *ssl, unsigned long err, char *buf, size_t len);
/* Same, taking the reason from this thread's OpenSSL error queue (emptied). */
const char *gw_tls_verify_reason(SSL *ssl, char *buf, size_t len);

#endif
