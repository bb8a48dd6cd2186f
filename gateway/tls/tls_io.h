/*
 * TLS over a non-blocking socket that the caller drives with its own
 * events: the gateway's upstream connections (upstream/upconn.c) and its
 * health checks (upstream/health.c), which do not use bufferevents.
 *
 * Every call makes what progress it can without blocking and says what it
 * waits for next:
 *
 *   GW_TLS_IO_WANT_READ   call again once the socket is readable
 *   GW_TLS_IO_WANT_WRITE  call again once the socket is writable
 *
 * A read may want a write and a write may want a read (TLS 1.3 key
 * updates, alerts): the caller waits for what is asked, not for what it
 * was doing. A read can also stop with decrypted bytes still inside the
 * SSL object, which no socket event will ever announce: after a read that
 * returned GW_TLS_IO_OK, SSL_has_pending(ssl) says whether to read again
 * without waiting.
 *
 * OpenSSL's error queue is per thread and shared with every other SSL
 * object of the thread (the client side's bufferevent_openssl included,
 * whose SSL_get_error would misread a stale entry): each call here starts
 * and ends with it empty.
 */
#ifndef GW_TLS_TLS_IO_H
#define GW_TLS_TLS_IO_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/types.h>

#include "../config/config.h"

struct evbuffer;

enum gw_tls_io {
	GW_TLS_IO_OK = 0,     /* done (handshake), or everything asked for was moved */
	GW_TLS_IO_WANT_READ,  /* wait for the socket to be readable, then call again */
	GW_TLS_IO_WANT_WRITE, /* wait for the socket to be writable, then call again */
	GW_TLS_IO_EOF,        /* the server closed: close_notify, or a plain TCP close */
	GW_TLS_IO_ERROR,      /* the connection is unusable; errno says why when a syscall failed */
};

/*
 * What connections to one server need to speak TLS to it, copied out of
 * the upstream's `tls` so that a holder keeps no reference to the config
 * snapshot (the health checker promises none; the pools outlive nothing
 * but keep the same shape).
 *
 * Ownership: the holder's, freed with gw_tls_peer_free; holds one
 * reference to ctx and owns the strings.
 */
struct gw_tls_peer {
	SSL_CTX *ctx;      /* the upstream's context (NULL when it was not built) */
	char *server_name; /* `server_name` of the upstream; NULL: host */
	bool verify;
	char *host; /* host part of the server's address as written; NULL: too long */
};

/* For the server whose address (as written: "api.internal:443") is given. */
struct gw_tls_peer *gw_tls_peer_new(const struct gw_tls_upstream_conf *tls, const char *address);
void gw_tls_peer_free(struct gw_tls_peer *peer); /* NULL-safe */

/*
 * A new SSL (the caller's: gw_tls_io_close frees it) for one connection to
 * the peer over fd, a connected non-blocking socket that stays the
 * caller's: SNI and name check as gw_tls_client_ssl_new does them, partial
 * writes from a buffer that may move between retries, and read-ahead
 * (whole records per read() rather than a header and a body each). NULL
 * when OpenSSL fails.
 */
SSL *gw_tls_peer_ssl_new(const struct gw_tls_peer *peer, int fd);

/*
 * One step of the client handshake. GW_TLS_IO_OK once it is complete;
 * GW_TLS_IO_ERROR (an EOF during the handshake included) with why filled
 * in one line: "certificate is not valid for host name 'x' (hostname
 * mismatch)", "is the server speaking TLS? (wrong version number)", ...
 */
enum gw_tls_io gw_tls_io_handshake(SSL *ssl, char *why, size_t why_len);

/*
 * Decrypts up to len bytes into buf, as many records as the SSL holds or
 * one read() brings; *nread: how many. GW_TLS_IO_OK only when buf is full
 * (more may be pending); otherwise the status that stopped it, which
 * holds for the bytes after the *nread ones (GW_TLS_IO_WANT_READ when the
 * SSL has nothing more, EOF after the last byte of a close-delimited
 * body, ...): use the bytes first, then act on the status.
 */
enum gw_tls_io gw_tls_io_read_buf(SSL *ssl, void *buf, size_t len, size_t *nread);
/* The same into up to max bytes of new space at the end of in. */
enum gw_tls_io gw_tls_io_read(SSL *ssl, struct evbuffer *in, size_t max, size_t *nread);

/*
 * Encrypts and sends len bytes of buf; *nsent: how many were sent.
 * GW_TLS_IO_OK when all were. After a want, call again with the bytes
 * from *nsent on (the same bytes, wherever they are by then, and
 * possibly more).
 */
enum gw_tls_io gw_tls_io_send(SSL *ssl, const void *buf, size_t len, size_t *nsent);
/* Sends and drains out until it is empty (GW_TLS_IO_OK) or a want or error. */
enum gw_tls_io gw_tls_io_write(SSL *ssl, struct evbuffer *out);

/*
 * Why the last GW_TLS_IO_ERROR of a read or send on ssl happened, in one
 * line (as gw_tls_io_handshake's why): "the server requires a client
 * certificate (tlsv13 alert certificate required)". Call it right after,
 * on the same thread. Returns buf.
 *
 * In TLS 1.3 the client's handshake is complete before the server has
 * checked the client's certificate: a server that refuses it says so with
 * an alert that the first read finds.
 */
const char *gw_tls_io_why(SSL *ssl, char *buf, size_t len);

/*
 * Ends the TLS connection without blocking and frees ssl (NULL-safe);
 * the socket stays the caller's, to close afterwards. notify: try once to
 * send close_notify (pass false after GW_TLS_IO_ERROR: nothing more may
 * be written then; and pointless when the server has closed already).
 *
 * The session stays resumable either way (tls_io.c says why): a server
 * that closes idle connections costs the next one no full handshake.
 */
void gw_tls_io_close(SSL *ssl, bool notify);

#endif
