/*
 * TLS termination: the OpenSSL contexts of a TLS listener, built when the
 * configuration loads, and what the access log says about a connection.
 *
 * One SSL_CTX per certificate, all configured alike: TLS 1.2 (or 1.3) to
 * 1.3, the listener's cipher lists, no renegotiation, the server's cipher
 * preference, ALPN "http/1.1" only, session tickets under the listener's
 * rotated keys (tls_tickets.h; the stateful session cache is off). Every
 * connection starts on the first context (conf->ctx); its SNI callback
 * moves the connection to the context of the certificate the client asked
 * for (SSL_set_SSL_CTX), or leaves it on the first, the default.
 *
 * The listener side, for each accepted socket (libevent 2.1):
 *
 *   SSL *ssl = gw_tls_server_ssl_new(listen->tls);   (in the accepting state)
 *   bev = bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_OPEN,
 *                                        BEV_OPT_CLOSE_ON_FREE);   (the bufferevent owns ssl)
 *
 * BUFFEREVENT_SSL_OPEN, not _ACCEPTING: the handshake then runs inside the
 * bufferevent's first SSL_read calls, on the one read event evhttp enables,
 * instead of on handshake events of its own that libevent adds, swaps and
 * deletes around the handshake (four epoll_ctl calls more per connection).
 *
 * Everything the callbacks read hangs off the SSL_CTX objects and lives as
 * long as they do, so a connection may outlive the snapshot it was
 * accepted under (a reload) and still finish its handshake.
 */
#ifndef GW_TLS_TLS_SERVER_H
#define GW_TLS_TLS_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "../config/config.h"
#include "tls_report.h"

/* The TLS 1.2 cipher list used when a listener sets no `ciphers`:
 * forward-secret AEAD ciphers only, for ECDSA and RSA certificates. */
#define GW_TLS_DEFAULT_CIPHERS                                                                     \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                               \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                               \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/*
 * Checks a `ciphers` value (TLS 1.2 and below, OpenSSL syntax): every
 * cipher or family it names must exist (OpenSSL alone would skip unknown
 * names when another one matches), and the whole list must select at
 * least one cipher. 0, or -1 with why set ("unknown cipher 'FOO'").
 */
int gw_tls_check_ciphers(const char *list, char *why, size_t size);
/* Same for `ciphersuites` (TLS 1.3 names, separated by ':'). */
int gw_tls_check_ciphersuites(const char *list, char *why, size_t size);

/*
 * Builds certificates[i].ctx for every certificate and sets conf->ctx.
 * Every problem goes to report (which key, which certificate); an
 * expired or not yet valid certificate, or a server name the certificate
 * does not cover, is a warning. 0 when every context was built; -1
 * otherwise, with nothing left built.
 */
int gw_tls_server_build(struct gw_tls_listen_conf *conf, const struct gw_tls_report *report);

/*
 * A reload: next (built, not serving yet) takes over the session ticket
 * keys of cur, the same listener's running conf, so that tickets issued
 * before the reload still resume. Only when both issue tickets with the
 * same ticket_key_rotation; otherwise next keeps its own new keys.
 * Returns true when the keys were taken over.
 */
bool gw_tls_server_keep_tickets(struct gw_tls_listen_conf *next,
                                const struct gw_tls_listen_conf *cur);

/* Releases the snapshot's references to the contexts (NULL-safe). */
void gw_tls_server_release(struct gw_tls_listen_conf *conf);

/* A new server-side SSL for one accepted connection (the caller's), or NULL. */
SSL *gw_tls_server_ssl_new(const struct gw_tls_listen_conf *conf);

/*
 * For the access log: *version is "TLSv1.2" or "TLSv1.3", *sni the server
 * name the client sent, as it sent it; "-" when there is none (and both
 * "-" for ssl NULL, plain HTTP). The client chose the SNI bytes (OpenSSL
 * only refuses NUL in them): escape it like any other client text. Valid
 * while ssl lives.
 */
void gw_tls_server_info(const SSL *ssl, const char **version, const char **sni);

#endif
